//! Helpers the hookrun test binaries share: reading the pid a job wrote,
//! and telling from /proc whether that process still runs.

use std::fs;
use std::path::Path;

/// The pid a job wrote to `path`.
pub fn read_pid(path: &Path) -> i32 {
    fs::read_to_string(path)
        .unwrap_or_else(|error| panic!("{}: {error}", path.display()))
        .trim()
        .parse()
        .expect("the job wrote a pid")
}

/// Whether `pid` is a live process (zombies waiting for init count as dead).
pub fn is_alive(pid: i32) -> bool {
    let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // The state follows the parenthesised command name.
    let state = stat
        .rsplit_once(')')
        .and_then(|(_, rest)| rest.trim_start().chars().next());
    !matches!(state, Some('Z' | 'X') | None)
}
