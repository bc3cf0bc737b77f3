//! One hook job: check it may run (script security), exec it in its own
//! process group with stdin on /dev/null, log its output, enforce its
//! timeout by signalling the whole group, reap it, report an [`Outcome`]
//! and journal it.

use std::fmt;
use std::os::unix::process::ExitStatusExt;
use std::process::{ExitStatus, Stdio};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use log::{debug, info, warn};
use nix::errno::Errno;
use nix::sys::signal::{Signal, killpg};
use nix::sys::wait::{Id, WaitPidFlag, WaitStatus, waitid};
use nix::unistd::{Pid, geteuid};
use tokio::process::{Child, Command};
use tokio::time::{Instant, sleep};

use crate::journal::{Journal, JournalEntry};
use crate::output::OutputLoggers;
use crate::security::{RunAs, check_script};

/// How long a timed-out job's process group has between SIGTERM and SIGKILL
/// (as keepalived's `vrrp_script`). The group is killed sooner when the
/// group's leader exits on SIGTERM.
pub const KILL_GRACE: Duration = Duration::from_secs(2);

/// How long the job's stdout and stderr are still read after the job's
/// leader process has been reaped. A background process that inherited the
/// pipes can keep them open forever; after this bound they are closed.
pub const OUTPUT_DRAIN_LIMIT: Duration = Duration::from_millis(500);

/// How often a timed-out leader is checked for exit during [`KILL_GRACE`].
const EXIT_POLL_INTERVAL: Duration = Duration::from_millis(10);

/// One command to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    /// Names the job in logs, e.g. `VI_1 notify_master`.
    pub name: String,
    /// Program and arguments, exec'd directly (no shell). The program is
    /// looked up in `PATH` when it has no slash.
    pub argv: Vec<String>,
    /// Variables added to the daemon's own environment.
    pub env: Vec<(String, String)>,
    /// Time from start until the process group is terminated.
    pub timeout: Duration,
    /// The number of the event that runs it, for the journal.
    pub event: Option<u64>,
    /// A periodic check (a track script): its outcome is logged at debug
    /// level only, since the caller logs when the check's verdict changes.
    pub periodic: bool,
}

impl Job {
    /// A job with no extra environment variables.
    pub fn new(name: impl Into<String>, argv: Vec<String>, timeout: Duration) -> Self {
        Self {
            name: name.into(),
            argv,
            env: Vec::new(),
            timeout,
            event: None,
            periodic: false,
        }
    }

    /// Marks the job as a periodic check whose every run need not be logged.
    pub fn periodic(mut self) -> Self {
        self.periodic = true;
        self
    }

    /// Records the number of the event that runs the job.
    pub fn for_event(mut self, event: u64) -> Self {
        self.event = Some(event);
        self
    }

    /// Adds one environment variable for the job.
    pub fn with_env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }
}

/// How a job ended. Durations run from the start of the job until its
/// leader process was reaped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The leader exited by itself with this code.
    Exited { code: i32, duration: Duration },
    /// The leader was killed by this signal, not sent by the runner.
    Signalled { signal: i32, duration: Duration },
    /// The job outran its timeout and its process group was killed.
    TimedOut { duration: Duration },
    /// A long-running job was stopped on purpose (its group terminated).
    Stopped { duration: Duration },
    /// Script security refused to run it as root; `error` names the path
    /// and why.
    Refused { error: String },
    /// The job could not be started; `error` names the program and the cause.
    SpawnFailed { error: String },
    /// The job was started but its exit status could not be collected.
    WaitFailed { error: String, duration: Duration },
}

impl Outcome {
    /// True only for exit code 0.
    pub fn success(&self) -> bool {
        matches!(self, Self::Exited { code: 0, .. })
    }

    /// How long it ran; `None` when it never started.
    pub fn duration(&self) -> Option<Duration> {
        match self {
            Self::Exited { duration, .. }
            | Self::Signalled { duration, .. }
            | Self::TimedOut { duration }
            | Self::Stopped { duration }
            | Self::WaitFailed { duration, .. } => Some(*duration),
            Self::Refused { .. } | Self::SpawnFailed { .. } => None,
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Exited { code, duration } => {
                write!(f, "exited with code {code} after {}", millis(*duration))
            }
            Self::Signalled { signal, duration } => {
                let name = Signal::try_from(*signal).map_or("unknown signal", Signal::as_str);
                write!(
                    f,
                    "killed by signal {signal} ({name}) after {}",
                    millis(*duration)
                )
            }
            Self::TimedOut { duration } => write!(
                f,
                "timed out; its process group was killed after {}",
                millis(*duration)
            ),
            Self::Stopped { duration } => write!(f, "stopped after {}", millis(*duration)),
            Self::Refused { error } => f.write_str(error),
            Self::SpawnFailed { error } => write!(f, "could not be started: {error}"),
            Self::WaitFailed { error, duration } => write!(
                f,
                "lost after {}: cannot collect its exit status: {error}",
                millis(*duration)
            ),
        }
    }
}

fn millis(duration: Duration) -> String {
    format!("{} ms", duration.as_millis())
}

/// How jobs are run, for every job of a runner.
#[derive(Debug, Clone)]
pub struct RunSettings {
    /// Where finished runs are recorded, if anywhere.
    pub journal: Option<Arc<Journal>>,
    /// Refuse to run as root a program that others than root can change.
    pub script_security: bool,
    /// Run jobs as this user instead of the daemon's own.
    pub run_as: Option<RunAs>,
}

impl Default for RunSettings {
    /// No journal, script security on, jobs run as the daemon's user.
    fn default() -> Self {
        Self {
            journal: None,
            script_security: true,
            run_as: None,
        }
    }
}

/// Why a job's process group is terminated before it exits by itself.
enum Cut {
    TimedOut,
    Stopped,
}

/// Runs `job` (of queue `queue`) to its end, or until `stop` resolves;
/// logs the outcome (info on success, warn otherwise; debug for a periodic
/// check) and journals it.
pub(crate) async fn run(
    queue: &str,
    job: &Job,
    settings: &RunSettings,
    stop: impl Future<Output = ()>,
) -> Outcome {
    let started_at = SystemTime::now();
    let (outcome, pid) = match refusal(job, settings) {
        Some(error) => (Outcome::Refused { error }, None),
        None => execute(job, settings.run_as, stop).await,
    };
    if job.periodic {
        debug!("{}: {outcome}", job.name);
    } else if outcome.success() {
        info!("{}: {outcome}", job.name);
    } else {
        warn!("{}: {outcome}", job.name);
    }
    if let Some(journal) = &settings.journal {
        let entry = JournalEntry {
            queue: queue.to_owned(),
            hook: job.name.clone(),
            argv: job.argv.clone(),
            event: job.event,
            start: started_at,
            duration_us: outcome
                .duration()
                .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX)),
            outcome: (&outcome).into(),
            pid,
        };
        if let Err(error) = journal.append(&entry) {
            warn!("{}: {error}", job.name);
        }
    }
    outcome
}

/// Script security's verdict: why the job may not run, if it may not.
fn refusal(job: &Job, settings: &RunSettings) -> Option<String> {
    let runs_as_root = match settings.run_as {
        Some(user) => user.uid == 0,
        None => geteuid().is_root(),
    };
    if !(settings.script_security && runs_as_root) {
        return None;
    }
    let program = job.argv.first()?;
    check_script(program).err()
}

async fn execute(
    job: &Job,
    run_as: Option<RunAs>,
    stop: impl Future<Output = ()>,
) -> (Outcome, Option<u32>) {
    let Some((program, args)) = job.argv.split_first() else {
        let error = "the command is empty (configure a program to run)".to_owned();
        return (Outcome::SpawnFailed { error }, None);
    };
    let mut command = Command::new(program);
    command
        .args(args)
        .envs(job.env.iter().map(|(key, value)| (key, value)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    if let Some(user) = run_as {
        // setgid, then setuid (dropping supplementary groups), before exec.
        command.gid(user.gid).uid(user.uid);
    }
    let started = Instant::now();
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(error) => {
            let error = format!("{program}: {error} (check that it exists and is executable)");
            return (Outcome::SpawnFailed { error }, None);
        }
    };
    let leader = child
        .id()
        .expect("a child that has not been waited for has a pid");
    // process_group(0) makes the leader's pid its process group id.
    let group = Pid::from_raw(i32::try_from(leader).expect("Linux pids fit in i32"));
    debug!("{}: started {:?} as pid {leader}", job.name, job.argv);
    let output = OutputLoggers::start(&job.name, child.stdout.take(), child.stderr.take());

    let cut = async {
        tokio::select! {
            () = sleep(job.timeout) => Cut::TimedOut,
            () = stop => Cut::Stopped,
        }
    };
    let outcome = tokio::select! {
        status = child.wait() => match status {
            Ok(status) => outcome_of(status, started.elapsed()),
            Err(error) => Outcome::WaitFailed {
                error: error.to_string(),
                duration: started.elapsed(),
            },
        },
        cut = cut => {
            match cut {
                Cut::TimedOut => warn!(
                    "{}: still running after its timeout of {}; sending SIGTERM to its process group",
                    job.name,
                    millis(job.timeout)
                ),
                Cut::Stopped => info!("{}: stopping it: SIGTERM to its process group", job.name),
            }
            match terminate_group(&job.name, &mut child, group).await {
                Ok(_status) => match cut {
                    Cut::TimedOut => Outcome::TimedOut { duration: started.elapsed() },
                    Cut::Stopped => Outcome::Stopped { duration: started.elapsed() },
                },
                Err(error) => Outcome::WaitFailed {
                    error: error.to_string(),
                    duration: started.elapsed(),
                },
            }
        }
    };
    output.finish(OUTPUT_DRAIN_LIMIT).await;
    (outcome, Some(leader))
}

fn outcome_of(status: ExitStatus, duration: Duration) -> Outcome {
    match (status.code(), status.signal()) {
        (Some(code), _) => Outcome::Exited { code, duration },
        (None, Some(signal)) => Outcome::Signalled { signal, duration },
        // Neither code nor signal: only possible for a stopped process, which
        // wait() does not report.
        (None, None) => Outcome::WaitFailed {
            error: format!("unexpected wait status {status}"),
            duration,
        },
    }
}

/// SIGTERMs the group, waits up to [`KILL_GRACE`] for the leader to exit,
/// then SIGKILLs whatever is left of the group and reaps the leader.
///
/// The leader is reaped only after the SIGKILL: until then it exists (at
/// least as a zombie), so its pid cannot be reused and the group id still
/// names this job's group.
async fn terminate_group(name: &str, child: &mut Child, group: Pid) -> std::io::Result<ExitStatus> {
    signal_group(name, group, Signal::SIGTERM);
    let deadline = Instant::now() + KILL_GRACE;
    loop {
        // The group id is the leader's pid.
        if has_exited(group) {
            debug!("{name}: exited on SIGTERM; killing anything left in its process group");
            break;
        }
        if Instant::now() >= deadline {
            warn!(
                "{name}: still running {} after SIGTERM; sending SIGKILL to its process group",
                millis(KILL_GRACE)
            );
            break;
        }
        sleep(EXIT_POLL_INTERVAL).await;
    }
    signal_group(name, group, Signal::SIGKILL);
    child.wait().await
}

/// Whether the leader has exited, without reaping it.
fn has_exited(leader: Pid) -> bool {
    let flags = WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG | WaitPidFlag::WNOWAIT;
    // An error (ECHILD) means it is no longer ours to wait for: stop waiting.
    !matches!(waitid(Id::Pid(leader), flags), Ok(WaitStatus::StillAlive))
}

fn signal_group(name: &str, group: Pid, signal: Signal) {
    match killpg(group, signal) {
        Ok(()) | Err(Errno::ESRCH) => {}
        Err(error) => warn!(
            "{name}: cannot send {signal} to process group {group}: {error} \
             (did the hook change its user?)"
        ),
    }
}
