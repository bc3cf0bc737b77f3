//! `hookrun run`: exit statuses as coreutils' timeout gives them, and the
//! whole process group killed at the timeout.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::{is_alive, read_pid};

fn hookrun(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_hookrun"))
        .args(args)
        .output()
        .expect("hookrun runs")
}

/// True once `pid` no longer runs, waiting up to `limit` for that.
fn gone_within(pid: i32, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    while is_alive(pid) {
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    true
}

#[test]
fn the_commands_exit_code_is_passed_through() {
    assert_eq!(
        hookrun(&["run", "--", "sh", "-c", "exit 3"]).status.code(),
        Some(3)
    );
    assert_eq!(hookrun(&["run", "--", "true"]).status.code(), Some(0));
    assert_eq!(
        hookrun(&["run", "--", "sh", "-c", "kill -9 $$"])
            .status
            .code(),
        Some(137)
    );
}

#[test]
fn a_missing_program_is_127_and_named() {
    let output = hookrun(&["run", "--", "/nonexistent/hook"]);
    assert_eq!(output.status.code(), Some(127));
    assert!(String::from_utf8_lossy(&output.stderr).contains("/nonexistent/hook"));
}

#[test]
fn a_timeout_kills_the_group_and_is_124() {
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("child.pid");
    let script = format!("sleep 60 & echo $! > {}; wait", pid_file.display());
    let started = Instant::now();
    let output = hookrun(&[
        "run",
        "--timeout",
        "0.3",
        "--name",
        "slow",
        "--",
        "sh",
        "-c",
        &script,
    ]);
    assert_eq!(output.status.code(), Some(124));
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );
    let child = read_pid(&pid_file);
    assert!(
        gone_within(child, Duration::from_secs(3)),
        "the background child {child} survived"
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("slow") && stderr.contains("timed out"),
        "{stderr}"
    );
}

#[test]
fn output_is_logged_under_the_name_and_bad_timeouts_are_refused() {
    let output = hookrun(&["run", "--name", "greeter", "--", "echo", "hello there"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("greeter") && stderr.contains("hello there"),
        "{stderr}"
    );
    let refused = hookrun(&["run", "--timeout", "-1", "--", "true"]);
    assert_eq!(refused.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("-1"));
}

#[test]
fn journal_records_the_run_and_root_refuses_insecure_commands() {
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("hooks.journal");
    let journal_arg = journal.to_str().unwrap();
    let output = hookrun(&[
        "run",
        "--name",
        "nightly",
        "--journal",
        journal_arg,
        "--",
        "sh",
        "-c",
        "exit 4",
    ]);
    assert_eq!(output.status.code(), Some(4));
    let contents = hookrun::read_journal(&journal).unwrap();
    assert_eq!(contents.entries.len(), 1);
    assert_eq!(contents.entries[0].queue, "nightly");
    assert_eq!(
        contents.entries[0].outcome,
        hookrun::JournalOutcome::Exited { exit_code: 4 }
    );
    if !nix::unistd::geteuid().is_root() {
        return;
    }
    // A script anyone may rewrite, run as root: refused with 126.
    let script = dir.path().join("open");
    std::fs::write(&script, "#!/bin/sh\nexit 0\n").unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
    let output = hookrun(&["run", "--", script.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(126));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&format!("{} is writable by everyone", script.display())),
        "{stderr}"
    );
    let output = hookrun(&[
        "run",
        "--no-script-security",
        "--",
        script.to_str().unwrap(),
    ]);
    assert_eq!(output.status.code(), Some(0));
}
