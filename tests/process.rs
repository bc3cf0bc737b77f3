//! Processes the lab starts: each runs in its own process group with its
//! output in a log file, and is SIGKILLed with its whole group when dropped.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;

/// How often [`Proc::wait_timeout`] looks whether the process has exited.
const EXIT_POLL_INTERVAL: Duration = Duration::from_millis(10);

/// The process groups a lab has started and not yet reaped, so that
/// dropping the lab can kill whatever its tests left running.
#[derive(Default)]
pub(crate) struct ProcessGroups {
    leaders: Mutex<Vec<Pid>>,
}

impl ProcessGroups {
    fn add(&self, leader: Pid) {
        self.leaders
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(leader);
    }

    fn remove(&self, leader: Pid) {
        self.leaders
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|&pid| pid != leader);
    }

    /// SIGKILLs every group still registered.
    pub(crate) fn kill_all(&self) {
        for leader in self
            .leaders
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
        {
            kill_group_quietly(*leader, Signal::SIGKILL);
        }
    }
}

/// Sends `signal` to the process group led by `leader`; a group that is
/// already gone is fine.
fn kill_group_quietly(leader: Pid, signal: Signal) {
    match killpg(leader, signal) {
        Ok(()) | Err(Errno::ESRCH) => {}
        Err(error) => eprintln!("lab: cannot send {signal} to process group {leader}: {error}"),
    }
}

/// A process started in a lab host (see [`crate::Host::spawn`]), leading its
/// own process group. Dropping it SIGKILLs the group and reaps the process.
pub struct Proc {
    child: Child,
    /// Names the process in messages: host and program.
    label: String,
    log: PathBuf,
    /// Set once the process has been reaped; its pid may be reused after.
    exit: Option<ExitStatus>,
    groups: Arc<ProcessGroups>,
}

impl Proc {
    /// Starts `command` in a new process group, stdin from /dev/null, stdout
    /// and stderr appended to `log` after a line showing the command.
    pub(crate) fn spawn(
        mut command: Command,
        label: String,
        log: PathBuf,
        groups: Arc<ProcessGroups>,
    ) -> Proc {
        let mut log_file = File::create(&log)
            .unwrap_or_else(|error| panic!("cannot create the log {}: {error}", log.display()));
        writeln!(log_file, "$ {command:?}")
            .unwrap_or_else(|error| panic!("cannot write the log {}: {error}", log.display()));
        let stderr = log_file
            .try_clone()
            .unwrap_or_else(|error| panic!("cannot duplicate the log {}: {error}", log.display()));
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        let child = command
            .stdin(Stdio::null())
            .stdout(log_file)
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|error| panic!("{label}: cannot start {command:?}: {error}"));
        groups.add(pid_of(&child));
        Proc {
            child,
            label,
            log,
            exit: None,
            groups,
        }
    }

    /// The process id (also its process group id).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends `signal` to the process alone. Panics if it was already reaped
    /// (its pid may belong to another process by now).
    pub fn kill(&self, signal: Signal) {
        self.assert_not_reaped(signal);
        kill(pid_of(&self.child), signal)
            .unwrap_or_else(|error| panic!("{}: cannot send {signal}: {error}", self.label));
    }

    /// Sends `signal` to the process and every process in its group (the
    /// children it did not move to a group of their own).
    pub fn kill_group(&self, signal: Signal) {
        self.assert_not_reaped(signal);
        kill_group_quietly(pid_of(&self.child), signal);
    }

    fn assert_not_reaped(&self, signal: Signal) {
        if let Some(status) = self.exit {
            panic!(
                "{}: cannot send {signal}: the process already exited ({status}); log {}",
                self.label,
                self.log.display()
            );
        }
    }

    /// Waits up to `timeout` for the process to exit; its exit status, or
    /// `None` if it is still running.
    pub fn wait_timeout(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let start = Instant::now();
        loop {
            if let Some(status) = self.try_wait() {
                return Some(status);
            }
            if start.elapsed() >= timeout {
                return None;
            }
            thread::sleep(EXIT_POLL_INTERVAL);
        }
    }

    /// True while the process has not exited.
    pub fn is_running(&mut self) -> bool {
        self.try_wait().is_none()
    }

    fn try_wait(&mut self) -> Option<ExitStatus> {
        if self.exit.is_none() {
            self.exit = self
                .child
                .try_wait()
                .unwrap_or_else(|error| panic!("{}: cannot check its status: {error}", self.label));
        }
        self.exit
    }

    /// Host and program, for messages.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// The file holding its stdout and stderr.
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// Everything it wrote so far.
    pub fn log(&self) -> String {
        fs::read(&self.log)
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
            .unwrap_or_else(|error| format!("(cannot read {}: {error})", self.log.display()))
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let leader = pid_of(&self.child);
        // The group id stays reserved while any member lives, even after
        // the leader was reaped, so this cannot hit a stranger.
        kill_group_quietly(leader, Signal::SIGKILL);
        if self.exit.is_none()
            && let Err(error) = self.child.wait()
        {
            eprintln!("lab: {}: cannot reap it: {error}", self.label);
        }
        self.groups.remove(leader);
    }
}

fn pid_of(child: &Child) -> Pid {
    Pid::from_raw(i32::try_from(child.id()).expect("Linux pids fit in an i32"))
}

/// True while process `pid` exists and has not exited: a zombie (exited,
/// waiting for its parent to reap it) counts as gone.
pub fn process_is_alive(pid: u32) -> bool {
    let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // "pid (comm) STATE ...": comm may hold spaces and parentheses.
    let state = stat
        .rfind(')')
        .and_then(|end| stat[end + 1..].split_whitespace().next());
    !matches!(state, Some("Z" | "X") | None)
}
