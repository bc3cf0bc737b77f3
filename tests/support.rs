//! Small things every lab test needs: the lab-wide lock, the root check,
//! finding the programs under test, and waiting for a condition.

use std::env;
use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use nix::fcntl::{Flock, FlockArg};

/// Serialises the lab tests of this process.
static LAB_LOCK: Mutex<()> = Mutex::new(());

/// The file whose exclusive flock serialises labs across processes: the
/// one `scripts/lib/lab.sh` takes, so a demo, a benchmark and a test run
/// never share the machine at once.
const LAB_LOCK_FILE: &str = "/run/lock/hapair-lab.lock";

/// Held for the whole run of one lab test: this process's lock and, when
/// the lock file can be opened, the machine-wide flock.
pub struct LabLock {
    _machine: Option<Flock<File>>,
    _process: MutexGuard<'static, ()>,
}

/// Takes the lab-wide lock. Every lab test holds it for its whole run, so
/// that tests whose outcome depends on time never share the machine's two
/// cores with another lab, in this process (`cargo test` may start them on
/// parallel threads) or in another one. A test that panicked while holding
/// the lock does not poison it for the others.
pub fn lab_lock() -> LabLock {
    let process = LAB_LOCK.lock().unwrap_or_else(PoisonError::into_inner);
    let machine = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(LAB_LOCK_FILE)
        .ok()
        .and_then(|file| Flock::lock(file, FlockArg::LockExclusive).ok());
    LabLock {
        _machine: machine,
        _process: process,
    }
}

/// True when this process is root, as the lab needs. Otherwise it prints
/// "skipping: needs root" and returns false, so the test can return early —
/// except under CI (`CI` set in the environment), which runs as root: there
/// a lab that silently skipped would pass without testing anything, so it
/// panics instead.
pub fn require_root() -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    if env::var_os("CI").is_some() {
        panic!(
            "the network-namespace lab needs root, and CI is set: CI must run the lab tests \
             as root (run `sudo scripts/test.sh`), not skip them"
        );
    }
    eprintln!("skipping: needs root");
    false
}

/// The workspace's built binary `name` (target/debug/NAME), found next to
/// the directory of this test executable (target/debug/deps/lab-HASH).
/// Panics when it has not been built.
pub fn binary(name: &str) -> PathBuf {
    let test_exe = env::current_exe().expect("the path of the running test executable");
    let profile_dir = test_exe
        .parent()
        .and_then(Path::parent)
        .unwrap_or_else(|| panic!("{} has no target/<profile>/deps parent", test_exe.display()));
    let path = profile_dir.join(name);
    assert!(
        path.is_file(),
        "{} is missing: the lab runs the workspace's own binaries; \
         run `cargo build --workspace` first (or `cargo test --workspace`)",
        path.display()
    );
    path
}

/// The absolute path of the installed program `name`, looked up in `PATH`
/// and in the sbin directories (where Debian puts ip and keepalived).
/// Panics, naming the Debian `package` to install, when it is not found.
pub fn installed_program(name: &str, package: &str) -> PathBuf {
    let path_dirs = env::var_os("PATH").unwrap_or_default();
    env::split_paths(&path_dirs)
        .chain(["/usr/sbin", "/sbin", "/usr/bin", "/bin"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| {
            panic!(
                "{name} is not installed: `apt-get install -y {package}` \
                 (scripts/test.sh installs it)"
            )
        })
}

/// Polls `condition` every `poll_interval` until it holds or `timeout` has
/// passed. Returns how long it took to hold (measured when it was seen to
/// hold), or `None` when it never did.
pub fn wait_until(
    timeout: Duration,
    poll_interval: Duration,
    mut condition: impl FnMut() -> bool,
) -> Option<Duration> {
    let start = Instant::now();
    loop {
        if condition() {
            return Some(start.elapsed());
        }
        if start.elapsed() >= timeout {
            return None;
        }
        thread::sleep(poll_interval);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    #[test]
    fn wait_until_reports_the_time_the_condition_took() {
        let start = Instant::now();
        let took = wait_until(Duration::from_secs(5), Duration::from_millis(5), || {
            start.elapsed() >= Duration::from_millis(100)
        })
        .expect("the condition becomes true after 100 ms");
        assert!(took >= Duration::from_millis(100), "took {took:?}");
        assert!(took < Duration::from_secs(2), "took {took:?}");
    }

    #[test]
    fn wait_until_gives_up_after_the_timeout() {
        let calls = Cell::new(0);
        let start = Instant::now();
        let result = wait_until(
            Duration::from_millis(100),
            Duration::from_millis(10),
            || {
                calls.set(calls.get() + 1);
                false
            },
        );
        assert_eq!(result, None);
        assert!(start.elapsed() >= Duration::from_millis(100));
        assert!(calls.get() >= 2, "polled {} times", calls.get());
    }

    #[test]
    fn wait_until_checks_once_before_sleeping() {
        let took = wait_until(Duration::ZERO, Duration::from_secs(60), || true);
        assert!(took.is_some_and(|took| took < Duration::from_secs(1)));
    }
}
