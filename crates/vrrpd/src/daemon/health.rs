//! Health tracking, the daemon's side: it runs the track scripts (through
//! hookrun, so each gets a process group and its timeout), keeps the link
//! state of tracked interfaces (fed by netlink link events), reads track
//! files every [`FILE_READ_INTERVAL`], and reports what each tracked thing
//! does to an instance. Counting and weighing are `vrrp::track`'s.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{ErrorKind, Read as _};
use std::time::{Duration, Instant};

use anyhow::Result;
use hapair_config::{HookSettings, TrackFile, Tracked, VrrpConfig, VrrpInstance, VrrpScript};
use hookrun::{HookRunner, Job, Outcome, RunSettings};
use log::{info, warn};
use tokio::sync::mpsc;
use vrrp::track::{self, Effect, ScriptSchedule, ScriptTracker};

/// How often track files are read (keepalived watches them with inotify).
pub const FILE_READ_INTERVAL: Duration = Duration::from_secs(1);
/// A track file holds one number: more than this is not read.
const MAX_TRACK_FILE_BYTES: u64 = 4096;

/// Something health tracking learned, for the event loop.
#[derive(Debug)]
pub enum HealthEvent {
    /// A track script run ended.
    ScriptDone {
        name: String,
        /// Which definition of the script ran (reloads replace them).
        generation: u64,
        outcome: Outcome,
    },
}

/// One tracked thing, read now.
#[derive(Debug, Clone)]
pub struct Reading {
    /// `script`, `interface` or `file`.
    pub kind: &'static str,
    pub name: String,
    pub weight: i32,
    pub reverse: bool,
    pub health: track::Health,
    /// A track file's value.
    pub value: Option<i64>,
    pub effect: Effect,
}

struct ScriptRun {
    config: VrrpScript,
    tracker: ScriptTracker,
    generation: u64,
}

struct FileRead {
    config: TrackFile,
    value: i64,
    next_read: Instant,
    /// The last problem reported, so that it is logged once.
    problem: Option<String>,
}

/// The health of everything the instances track.
pub struct Health {
    scripts: BTreeMap<String, ScriptRun>,
    files: BTreeMap<String, FileRead>,
    /// Link state by interface name; an interface absent here is down.
    links: BTreeMap<String, bool>,
    runner: HookRunner,
    events: mpsc::UnboundedSender<HealthEvent>,
    generations: u64,
}

impl Health {
    /// Health tracking for what `config`'s instances track; `links` is
    /// every interface's current link state.
    pub fn new(
        config: &VrrpConfig,
        links: BTreeMap<String, bool>,
        events: mpsc::UnboundedSender<HealthEvent>,
        now: Instant,
    ) -> Result<Health> {
        let mut health = Health {
            scripts: BTreeMap::new(),
            files: BTreeMap::new(),
            links,
            runner: track_script_runner(&config.hooks)?,
            events,
            generations: 0,
        };
        health.reconfigure(config, now);
        Ok(health)
    }

    /// Takes the tracked scripts and files of a new config: those whose
    /// definition did not change keep their state, the others start anew.
    pub fn reconfigure(&mut self, config: &VrrpConfig, now: Instant) {
        let tracked = |list: fn(&VrrpInstance) -> &Vec<Tracked>, name: &str| {
            config
                .instances
                .iter()
                .any(|instance| list(instance).iter().any(|t| t.name == name))
        };
        let mut scripts = BTreeMap::new();
        for script in &config.vrrp_scripts {
            if !tracked(|i| &i.track_script, &script.name) {
                info!(
                    "vrrp_scripts.{}: tracked by no instance, not run",
                    script.name
                );
                continue;
            }
            let run = match self.scripts.remove(&script.name) {
                Some(run) if run.config == *script => run,
                _ => {
                    self.generations += 1;
                    ScriptRun {
                        tracker: ScriptTracker::new(schedule(script), now),
                        config: script.clone(),
                        generation: self.generations,
                    }
                }
            };
            scripts.insert(script.name.clone(), run);
        }
        self.scripts = scripts;
        let mut files = BTreeMap::new();
        for file in &config.track_files {
            if !tracked(|i| &i.track_file, &file.name) {
                continue;
            }
            let read = match self.files.remove(&file.name) {
                Some(read) if read.config == *file => read,
                _ => {
                    let mut read = FileRead {
                        config: file.clone(),
                        value: 0,
                        next_read: now,
                        problem: None,
                    };
                    read.refresh(now);
                    read
                }
            };
            files.insert(file.name.clone(), read);
        }
        self.files = files;
        for instance in &config.instances {
            for interface in &instance.track_interface {
                if !self.links.contains_key(&interface.name) {
                    warn!(
                        "{}: tracked interface {} does not exist; it counts as down",
                        instance.name, interface.name
                    );
                }
            }
        }
    }

    /// When a script run or a file read is due next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let scripts = self.scripts.values().map(|run| run.tracker.poll_timeout());
        let files = self.files.values().map(|read| read.next_read);
        scripts.chain(files).min()
    }

    /// Starts the script runs and reads the files that are due. Returns
    /// true when a file's value changed.
    pub fn handle_timeout(&mut self, now: Instant) -> bool {
        for (name, run) in &mut self.scripts {
            let skipped = run.tracker.skipped();
            if run.tracker.handle_timeout(now) {
                start_script(&self.runner, &self.events, name, run);
            } else if run.tracker.skipped() > skipped {
                warn!("track script {name}: the previous run is still going; this one is skipped");
            }
        }
        let mut changed = false;
        for read in self.files.values_mut() {
            if now >= read.next_read {
                changed |= read.refresh(now);
            }
        }
        changed
    }

    /// A script run ended. Returns true when the script's health changed.
    pub fn handle_script_done(&mut self, name: &str, generation: u64, outcome: &Outcome) -> bool {
        let Some(run) = self
            .scripts
            .get_mut(name)
            .filter(|run| run.generation == generation)
        else {
            return false;
        };
        let changed = run.tracker.handle_result(outcome.success());
        if changed {
            let health = run.tracker.health();
            let word = health.name();
            match health {
                track::Health::Ok => info!("track script {name}: now {word}"),
                _ => warn!("track script {name}: now {word} (last run {outcome})"),
            }
        }
        changed
    }

    /// An interface's link changed. Returns true when its state changed.
    pub fn handle_link(&mut self, name: &str, up: bool) -> bool {
        let before = self.links.insert(name.to_owned(), up);
        before != Some(up)
    }

    /// Every tracked thing of `instance`, read now.
    pub fn readings(&self, instance: &VrrpInstance) -> Vec<Reading> {
        let reading = |kind, tracked: &Tracked, health, value, effect| Reading {
            kind,
            name: tracked.name.clone(),
            weight: tracked.weight,
            reverse: tracked.reverse,
            health,
            value,
            effect,
        };
        let scripts = instance.track_script.iter().map(|tracked| {
            let health = self
                .scripts
                .get(&tracked.name)
                .map_or(track::Health::Unknown, |run| run.tracker.health());
            let effect = track::check_effect(health, tracked.weight, tracked.reverse);
            reading("script", tracked, health, None, effect)
        });
        let interfaces = tracked_interfaces(instance).map(|tracked| {
            let health = if self.links.get(&tracked.name).copied().unwrap_or(false) {
                track::Health::Ok
            } else {
                track::Health::Failed
            };
            let effect = track::check_effect(health, tracked.weight, tracked.reverse);
            reading("interface", &tracked, health, None, effect)
        });
        let files = instance.track_file.iter().map(|tracked| {
            let value = self.files.get(&tracked.name).map_or(0, |read| read.value);
            let effect = track::file_effect(value, tracked.weight, tracked.reverse);
            let health = match effect {
                Effect::Fault => track::Health::Failed,
                Effect::Priority(_) => track::Health::Ok,
            };
            reading("file", tracked, health, Some(value), effect)
        });
        scripts.chain(interfaces).chain(files).collect()
    }
}

/// The interfaces `instance` tracks: its `track_interface` list, and its own
/// interface with weight 0 (FAULT while its link is down) unless the list
/// names it. As keepalived does (without `dont_track_primary`): a node
/// whose link is down hears no adverts, and must not become MASTER of a
/// network it cannot reach.
pub fn tracked_interfaces(instance: &VrrpInstance) -> impl Iterator<Item = Tracked> + '_ {
    let own = Tracked {
        name: instance.interface.clone(),
        weight: 0,
        reverse: false,
    };
    let listed = instance
        .track_interface
        .iter()
        .any(|tracked| tracked.name == own.name);
    instance
        .track_interface
        .iter()
        .cloned()
        .chain((!listed).then_some(own))
}

fn schedule(script: &VrrpScript) -> ScriptSchedule {
    ScriptSchedule {
        interval: script.interval,
        rise: script.rise,
        fall: script.fall,
        init_fail: script.init_fail,
    }
}

/// Track scripts run as hooks do (same user, same script security), on a
/// runner of their own that keeps no journal: they run every few seconds.
fn track_script_runner(settings: &HookSettings) -> Result<HookRunner> {
    Ok(HookRunner::with_settings(RunSettings {
        journal: None,
        script_security: settings.script_security,
        run_as: crate::notify::hook_user(settings)?,
    }))
}

/// Runs the script on its own queue; its outcome comes back as an event.
fn start_script(
    runner: &HookRunner,
    events: &mpsc::UnboundedSender<HealthEvent>,
    name: &str,
    run: &ScriptRun,
) {
    let job = Job::new(
        format!("track_script {name}"),
        run.config.script.argv.clone(),
        run.config.timeout,
    )
    .periodic();
    let outcome = runner.submit(&format!("track_script {name}"), job);
    let events = events.clone();
    let name = name.to_owned();
    let generation = run.generation;
    tokio::spawn(async move {
        let outcome = outcome.await.unwrap_or_else(|_| Outcome::SpawnFailed {
            error: "the hook runner dropped the run (this is a bug in hookrun)".to_owned(),
        });
        // The daemon is stopping when nobody listens any more.
        let _ = events.send(HealthEvent::ScriptDone {
            name,
            generation,
            outcome,
        });
    });
}

impl FileRead {
    /// Reads the file again; returns true when its value changed. A
    /// missing file counts as 0 (as in keepalived); a file that cannot be
    /// read or holds no number keeps the last value.
    fn refresh(&mut self, now: Instant) -> bool {
        self.next_read = now + FILE_READ_INTERVAL;
        let path = &self.config.file;
        let read = File::open(path).and_then(|file| {
            let mut text = String::new();
            file.take(MAX_TRACK_FILE_BYTES).read_to_string(&mut text)?;
            Ok(text)
        });
        let value = match read {
            Ok(text) => track::parse_track_file(&text)
                .map_err(|reason| format!("{}: {reason}; keeping {}", path.display(), self.value)),
            Err(error) if error.kind() == ErrorKind::NotFound => Ok(0),
            Err(error) => Err(format!(
                "{}: cannot read it: {error}; keeping {}",
                path.display(),
                self.value
            )),
        };
        match value {
            Ok(value) => {
                self.problem = None;
                let changed = value != self.value;
                if changed {
                    info!(
                        "track file {}: {} (was {})",
                        self.config.name, value, self.value
                    );
                }
                self.value = value;
                changed
            }
            Err(problem) => {
                if self.problem.as_ref() != Some(&problem) {
                    warn!("track file {}: {problem}", self.config.name);
                    self.problem = Some(problem);
                }
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(file: &std::path::Path) -> VrrpConfig {
        let text = format!(
            "track_files:\n  health: {{file: {}, weight: 3}}\n\
             instances:\n  - name: VI_1\n    interface: eth0\n    virtual_router_id: 51\n    \
             virtual_ipaddress: [10.0.0.100/24]\n    track_file: [health]\n    \
             track_interface: [eth1, \"eth2 weight -10\"]\n",
            file.display()
        );
        VrrpConfig::parse(&text, "test.yaml", None).unwrap()
    }

    fn effects(health: &Health, config: &VrrpConfig) -> Vec<(String, Effect)> {
        health
            .readings(&config.instances[0])
            .into_iter()
            .map(|reading| (reading.name, reading.effect))
            .collect()
    }

    #[test]
    fn files_and_links_become_effects() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("health");
        let config = config(&file);
        let (events, _incoming) = mpsc::unbounded_channel();
        let links = BTreeMap::from([("eth0".to_owned(), true), ("eth1".to_owned(), true)]);
        let t0 = Instant::now();
        let mut health = Health::new(&config, links, events, t0).unwrap();
        // A missing file is 0; eth2 does not exist, so it is down; eth0,
        // the instance's own interface, is tracked too.
        assert_eq!(
            effects(&health, &config),
            [
                ("eth1".to_owned(), Effect::Priority(0)),
                ("eth2".to_owned(), Effect::Priority(-10)),
                ("eth0".to_owned(), Effect::Priority(0)),
                ("health".to_owned(), Effect::Priority(0)),
            ]
        );
        assert_eq!(health.poll_timeout(), Some(t0 + FILE_READ_INTERVAL));

        std::fs::write(&file, "-10\n").unwrap();
        assert!(!health.handle_timeout(t0), "not due yet");
        assert!(health.handle_timeout(t0 + FILE_READ_INTERVAL));
        assert!(health.handle_link("eth1", false));
        assert!(!health.handle_link("eth1", false), "no change");
        assert!(health.handle_link("eth2", true));
        assert!(health.handle_link("eth0", false));
        assert_eq!(
            effects(&health, &config),
            [
                ("eth1".to_owned(), Effect::Fault),
                ("eth2".to_owned(), Effect::Priority(0)),
                ("eth0".to_owned(), Effect::Fault),
                ("health".to_owned(), Effect::Priority(-30)),
            ]
        );

        // Garbage keeps the last good value.
        std::fs::write(&file, "lots\n").unwrap();
        assert!(!health.handle_timeout(t0 + FILE_READ_INTERVAL * 2));
        assert_eq!(
            effects(&health, &config)[3],
            ("health".to_owned(), Effect::Priority(-30))
        );
    }

    #[test]
    fn the_own_interface_is_tracked_once_with_weight_zero_unless_listed() {
        let config = |track: &str| {
            let text = format!(
                "instances:\n  - name: VI_1\n    interface: eth0\n    virtual_router_id: 51\n    \
                 virtual_ipaddress: [10.0.0.100/24]\n    track_interface: {track}\n"
            );
            VrrpConfig::parse(&text, "test.yaml", None).unwrap()
        };
        let tracked = |config: &VrrpConfig| {
            tracked_interfaces(&config.instances[0])
                .map(|tracked| (tracked.name, tracked.weight))
                .collect::<Vec<_>>()
        };
        assert_eq!(tracked(&config("[]")), [("eth0".to_owned(), 0)]);
        assert_eq!(
            tracked(&config("[eth1]")),
            [("eth1".to_owned(), 0), ("eth0".to_owned(), 0)]
        );
        assert_eq!(
            tracked(&config("[\"eth0 weight -20\"]")),
            [("eth0".to_owned(), -20)],
            "a listed own interface keeps its weight"
        );
    }
}
