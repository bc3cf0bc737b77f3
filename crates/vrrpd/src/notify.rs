//! What vrrpd does when an instance (or a sync group) changes state: the
//! hooks it runs, with keepalived's arguments, and the `notify_fifo` line.
//!
//! `notify_master` / `notify_backup` / `notify_fault` / `notify_stop` get
//! only their configured arguments; the generic `notify` gets four more,
//! `INSTANCE|GROUP <name> <STATE> <priority>`. Both see the same facts in
//! the environment, with the virtual addresses and the path of vrrpd's
//! state file (`HAPAIR_STATE_FILE`), which holds the instance's state as it
//! is now: a hook that takes long (the promote hook retrying while the peer
//! is still Primary) reads it to learn that vrrpd moved on and a later hook
//! is queued behind it. The daemon writes the file before it queues the
//! hooks of a change, so that a hook never reads a state older than its
//! own. Each state change is an event numbered per queue (the instance's
//! or group's name); its hooks run on that queue in order and are
//! journalled with that number.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use hapair_config::{HookCommand, HookSettings, SyncGroup, VrrpInstance};
use hookrun::{
    FIFO_QUEUE_LINES, HookRunner, JOURNAL_FILE_NAME, Job, Journal, NotifyFifo, NotifyKind, RunAs,
    RunSettings, Service, notify_line,
};
use log::{info, warn};
use vrrp::State;

/// How long, at shutdown, the last lines get to reach the FIFO.
const FIFO_FLUSH: Duration = Duration::from_secs(1);

/// How long, at shutdown, the FIFO's reader gets to read to end of file and
/// exit by itself before it is stopped.
const FIFO_READER_GRACE: Duration = Duration::from_secs(3);

/// The queue (and journal name) of the `notify_fifo_script`.
const FIFO_SCRIPT_QUEUE: &str = "notify_fifo_script";

/// The state word hooks see: keepalived's, with STOP for a stopped instance.
pub fn state_word(state: State) -> &'static str {
    match state {
        State::Initialize => "STOP",
        other => other.name(),
    }
}

/// The hooks an instance or a sync group has configured.
#[derive(Debug, Clone, Copy)]
pub struct NotifyHooks<'a> {
    pub master: Option<&'a HookCommand>,
    pub backup: Option<&'a HookCommand>,
    pub fault: Option<&'a HookCommand>,
    pub stop: Option<&'a HookCommand>,
    /// Run on every transition, with keepalived's four extra arguments.
    pub notify: Option<&'a HookCommand>,
    /// How long each may run.
    pub timeout: Duration,
}

impl<'a> NotifyHooks<'a> {
    pub fn of_instance(instance: &'a VrrpInstance) -> Self {
        Self {
            master: instance.notify_master.as_ref(),
            backup: instance.notify_backup.as_ref(),
            fault: instance.notify_fault.as_ref(),
            stop: instance.notify_stop.as_ref(),
            notify: instance.notify.as_ref(),
            timeout: instance.notify_timeout,
        }
    }

    pub fn of_group(group: &'a SyncGroup) -> Self {
        Self {
            master: group.notify_master.as_ref(),
            backup: group.notify_backup.as_ref(),
            fault: group.notify_fault.as_ref(),
            stop: group.notify_stop.as_ref(),
            notify: group.notify.as_ref(),
            timeout: group.notify_timeout,
        }
    }

    /// The state's own hook and its config key, for a state word.
    fn for_state(&self, state: &str) -> Option<(&'static str, &'a HookCommand)> {
        let (key, command) = match state {
            "MASTER" => ("notify_master", self.master),
            "BACKUP" => ("notify_backup", self.backup),
            "FAULT" => ("notify_fault", self.fault),
            "STOP" => ("notify_stop", self.stop),
            _ => return None,
        };
        Some((key, command?))
    }
}

/// One state change of an instance or a sync group.
#[derive(Debug, Clone)]
pub struct Transition<'a> {
    pub kind: NotifyKind,
    /// The instance's or group's name; also its hook queue.
    pub name: &'a str,
    /// keepalived's word: MASTER, BACKUP, FAULT, STOP.
    pub state: &'static str,
    /// The effective priority; 0 for groups, as keepalived reports them.
    pub priority: u8,
    /// `address/prefix` words, space-separated (empty for groups).
    pub addresses: String,
    pub hooks: NotifyHooks<'a>,
}

impl<'a> Transition<'a> {
    /// `instance` entered `state` with effective priority `priority`.
    pub fn instance(instance: &'a VrrpInstance, state: State, priority: u8) -> Self {
        let addresses = instance
            .virtual_ipaddress
            .iter()
            .map(|vip| format!("{}/{}", vip.address, vip.prefix_len))
            .collect::<Vec<_>>()
            .join(" ");
        Self {
            kind: NotifyKind::Instance,
            name: &instance.name,
            state: state_word(state),
            priority,
            addresses,
            hooks: NotifyHooks::of_instance(instance),
        }
    }

    /// Sync group `name` entered `state` (a word such as MASTER).
    pub fn group(name: &'a str, state: &'static str, hooks: NotifyHooks<'a>) -> Self {
        Self {
            kind: NotifyKind::Group,
            name,
            state,
            priority: 0,
            addresses: String::new(),
            hooks,
        }
    }

    /// The jobs to run, in order: the state's own hook, then `notify`;
    /// `state_file` is vrrpd's state file, for `HAPAIR_STATE_FILE`.
    pub fn jobs(&self, event: u64, state_file: &Path) -> Vec<Job> {
        let job = |hook_name: &str, command: &HookCommand, extra: &[String]| {
            let mut argv = command.argv.clone();
            argv.extend_from_slice(extra);
            let subject = match self.kind {
                NotifyKind::Instance => "HAPAIR_INSTANCE",
                NotifyKind::Group => "HAPAIR_GROUP",
            };
            let job = Job::new(
                format!("{} {hook_name}", self.name),
                argv,
                self.hooks.timeout,
            )
            .for_event(event)
            .with_env(subject, self.name)
            .with_env("HAPAIR_STATE", self.state)
            .with_env("HAPAIR_PRIORITY", self.priority.to_string())
            .with_env("HAPAIR_STATE_FILE", state_file.display().to_string());
            match self.kind {
                NotifyKind::Instance => job.with_env("HAPAIR_VIRTUAL_ADDRESSES", &self.addresses),
                NotifyKind::Group => job,
            }
        };
        let mut jobs = Vec::new();
        if let Some((key, command)) = self.hooks.for_state(self.state) {
            jobs.push(job(key, command, &[]));
        }
        if let Some(command) = self.hooks.notify {
            let extra = [
                self.kind.word().to_owned(),
                self.name.to_owned(),
                self.state.to_owned(),
                self.priority.to_string(),
            ];
            jobs.push(job("notify", command, &extra));
        }
        jobs
    }

    /// keepalived's `notify_fifo` line: `INSTANCE "VI_1" MASTER 100`.
    pub fn fifo_line(&self) -> String {
        notify_line(self.kind, self.name, self.state, self.priority)
    }
}

/// Carries out transitions: runs their hooks on per-name queues, writes
/// their FIFO lines, and keeps the FIFO's reader running.
pub struct Notifier {
    runner: HookRunner,
    fifo: Option<NotifyFifo>,
    fifo_reader: Option<Service>,
    /// vrrpd's state file, which the hooks are told about.
    state_file: PathBuf,
    /// The last event number of each queue.
    events: HashMap<String, u64>,
}

impl Notifier {
    /// Sets up the hook journal (`<run_dir>/hooks.journal` unless
    /// configured), script security, the hook user and the `notify_fifo`
    /// with its reader; the hooks are told that vrrpd's state file is
    /// `state_file`. Must run inside the Tokio runtime.
    pub fn start(settings: &HookSettings, run_dir: &Path, state_file: &Path) -> Result<Notifier> {
        let journal_path = settings
            .journal
            .clone()
            .unwrap_or_else(|| run_dir.join(JOURNAL_FILE_NAME));
        let run_as = hook_user(settings)?;
        if !settings.script_security {
            warn!(
                "hooks.script_security is off: hooks run as root even when others than root \
                 can change them"
            );
        }
        let run_settings = RunSettings {
            journal: Some(Arc::new(Journal::new(
                journal_path,
                settings.journal_max_bytes,
            ))),
            script_security: settings.script_security,
            run_as,
        };
        let fifo = settings
            .notify_fifo
            .as_deref()
            .map(|path| NotifyFifo::open(path, FIFO_QUEUE_LINES))
            .transpose()?;
        let fifo_reader = match (&fifo, &settings.notify_fifo_script) {
            (Some(fifo), Some(script)) => {
                let mut argv = script.argv.clone();
                argv.push(fifo.path().display().to_string());
                // Run long: the timeout does not apply to a service.
                let job = Job::new(FIFO_SCRIPT_QUEUE, argv, Duration::MAX);
                info!("starting notify_fifo_script {:?}", job.argv);
                Some(Service::start(FIFO_SCRIPT_QUEUE, job, run_settings.clone()))
            }
            _ => None,
        };
        Ok(Notifier {
            runner: HookRunner::with_settings(run_settings),
            fifo,
            fifo_reader,
            state_file: state_file.to_path_buf(),
            events: HashMap::new(),
        })
    }

    /// Queues the transition's hooks behind the earlier ones of its name
    /// and writes its FIFO line. The state file must already hold the
    /// transition's state. Returns at once: nothing waits for the
    /// hooks, so adverts keep flowing while they run. Returns the outcome
    /// of the state's own hook (`notify_master`, ...) when one is
    /// configured, for callers that act on it (`master_hook_failure`).
    pub fn notify(
        &mut self,
        transition: &Transition,
    ) -> Option<tokio::sync::oneshot::Receiver<hookrun::Outcome>> {
        let event = self.events.entry(transition.name.to_owned()).or_default();
        *event += 1;
        let has_own_hook = transition.hooks.for_state(transition.state).is_some();
        // The runner logs and journals every outcome.
        let mut outcomes: Vec<_> = transition
            .jobs(*event, &self.state_file)
            .into_iter()
            .map(|job| self.runner.submit(transition.name, job))
            .collect();
        if let Some(fifo) = &self.fifo {
            fifo.send(transition.fifo_line());
        }
        (has_own_hook && !outcomes.is_empty()).then(|| outcomes.swap_remove(0))
    }

    /// At shutdown: waits up to `bound` for every queued hook, writes the
    /// last FIFO lines and closes it, gives the reader a moment to read to
    /// end of file, then stops the reader.
    pub async fn shutdown(&mut self, bound: Duration) {
        if tokio::time::timeout(bound, self.runner.idle())
            .await
            .is_err()
        {
            warn!("stop hooks still running at exit");
        }
        if let Some(fifo) = self.fifo.take() {
            fifo.close(FIFO_FLUSH).await;
        }
        if let Some(reader) = self.fifo_reader.take() {
            reader.stop(FIFO_READER_GRACE).await;
        }
    }
}

/// The user hooks and track scripts run as (`hooks.script_user`), looked
/// up once; `None` runs them as vrrpd's own user.
pub fn hook_user(settings: &HookSettings) -> Result<Option<RunAs>> {
    settings
        .script_user
        .as_ref()
        .map(|user| RunAs::lookup(&user.user, user.group.as_deref()))
        .transpose()
        .map_err(anyhow::Error::msg)
        .context("hooks.script_user")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn instance() -> VrrpInstance {
        let text = "instances:\n  - name: VI_1\n    interface: eth0\n    virtual_router_id: 51\n    \
                    virtual_ipaddress: [10.0.0.100/24, 10.0.0.101/24]\n    \
                    notify_master: [/hooks/promote, r0]\n    notify: /hooks/log 'two words'\n";
        hapair_config::VrrpConfig::parse(text, "test.yaml", None)
            .unwrap()
            .instances
            .remove(0)
    }

    const STATE_FILE: &str = "/run/hapair/vrrp/state.json";

    /// Whether `job` has `key` set to `value` in its environment.
    fn has_env(job: &Job, key: &str, value: &str) -> bool {
        job.env.contains(&(key.into(), value.into()))
    }

    #[test]
    fn master_runs_its_hook_then_notify_with_keepalived_arguments() {
        let instance = instance();
        let jobs =
            Transition::instance(&instance, State::Master, 150).jobs(7, Path::new(STATE_FILE));
        assert_eq!(jobs.len(), 2);
        assert_eq!(jobs[0].argv, ["/hooks/promote", "r0"]);
        assert_eq!(jobs[0].name, "VI_1 notify_master");
        assert_eq!(
            jobs[1].argv,
            [
                "/hooks/log",
                "two words",
                "INSTANCE",
                "VI_1",
                "MASTER",
                "150"
            ]
        );
        assert!(has_env(
            &jobs[1],
            "HAPAIR_VIRTUAL_ADDRESSES",
            "10.0.0.100/24 10.0.0.101/24"
        ));
        assert!(has_env(&jobs[0], "HAPAIR_STATE", "MASTER"));
        assert!(jobs.iter().all(|job| job.event == Some(7)));
        // Each hook can look up the instance's state as it is now.
        assert!(
            jobs.iter()
                .all(|job| has_env(job, "HAPAIR_INSTANCE", "VI_1")
                    && has_env(job, "HAPAIR_STATE_FILE", STATE_FILE))
        );
    }

    #[test]
    fn unconfigured_hooks_run_nothing_and_stop_says_stop() {
        let instance = instance();
        let transition = Transition::instance(&instance, State::Initialize, 150);
        let jobs = transition.jobs(1, Path::new(STATE_FILE));
        assert_eq!(jobs.len(), 1);
        assert_eq!(jobs[0].argv[2..], ["INSTANCE", "VI_1", "STOP", "150"]);
        assert_eq!(transition.fifo_line(), "INSTANCE \"VI_1\" STOP 150\n");
    }

    #[test]
    fn groups_notify_with_group_and_priority_zero() {
        let instance = instance();
        let hooks = NotifyHooks {
            master: None,
            fault: instance.notify_master.as_ref(),
            ..NotifyHooks::of_instance(&instance)
        };
        let transition = Transition::group("G1", "FAULT", hooks);
        let jobs = transition.jobs(3, Path::new(STATE_FILE));
        assert_eq!(jobs[0].name, "G1 notify_fault");
        assert_eq!(jobs[1].argv[2..], ["GROUP", "G1", "FAULT", "0"]);
        assert!(jobs.iter().all(|job| has_env(job, "HAPAIR_GROUP", "G1")
            && has_env(job, "HAPAIR_STATE", "FAULT")
            && has_env(job, "HAPAIR_STATE_FILE", STATE_FILE)));
        assert!(
            !jobs[1]
                .env
                .iter()
                .any(|(key, _)| key == "HAPAIR_VIRTUAL_ADDRESSES")
        );
        assert_eq!(transition.fifo_line(), "GROUP \"G1\" FAULT 0\n");
    }
}
