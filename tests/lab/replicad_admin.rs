//! haadm's reporting and metadata commands against a real replicad:
//! `events` (DRBD's events2 lines, as a stream), `dump` (the normalized
//! configuration), `create-md` refusing to overwrite metadata, and
//! `status` and `check` giving up on a replicad that does not answer.

use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use hapair_lab::{
    NODE, RESOURCE, ReplicadNode, binary, lab_lock, path_arg, require_root, wait_until,
};

const BACKING_SIZE: u64 = 64 << 20;
const EVENT_TIMEOUT: Duration = Duration::from_secs(15);

/// A node started and brought up (Secondary, Inconsistent).
fn up_node() -> ReplicadNode {
    let mut node = ReplicadNode::new(BACKING_SIZE);
    node.start();
    node.haadm(&["up", RESOURCE]).expect_code(0);
    node
}

#[test]
fn events_lists_the_state_then_streams_a_promotion() {
    let _lock = lab_lock();
    if !require_root() {
        return;
    }
    let mut node = up_node();
    let (config, run) = (node.config_dir(), node.run_dir());
    let events = node.spawn(
        &[
            path_arg(&binary("haadm")),
            "-c",
            path_arg(&config),
            "--node",
            NODE,
            "--run-dir",
            path_arg(&run),
            "events",
        ],
        &[],
    );
    // The log's first line is the command itself.
    let lines = || -> Vec<String> { events.log().lines().skip(1).map(str::to_owned).collect() };
    wait_until(EVENT_TIMEOUT, Duration::from_millis(20), || {
        lines().iter().any(|line| line == "exists -")
    })
    .unwrap_or_else(|| panic!("haadm events printed no `exists -` line: {}", events.log()));

    let initial = lines();
    let end_of_state = initial
        .iter()
        .position(|line| line == "exists -")
        .expect("seen above");
    let state = &initial[..end_of_state];
    assert!(
        state
            .iter()
            .any(|line| line.starts_with("exists resource name:r0 role:Secondary")),
        "the state lists r0 as Secondary: {state:?}"
    );
    assert!(
        state
            .iter()
            .any(|line| line.starts_with("exists device name:r0 volume:0 disk:Inconsistent")),
        "the state lists r0's disk: {state:?}"
    );
    assert!(
        state.iter().all(|line| line.starts_with("exists ")),
        "only `exists` lines before `exists -`: {state:?}"
    );
    assert_eq!(
        initial.len(),
        end_of_state + 1,
        "nothing changed yet: {initial:?}"
    );

    node.haadm(&["primary", RESOURCE, "--force"]).expect_code(0);
    let promoted = |line: &String| line.starts_with("change resource name:r0 role:Primary");
    wait_until(EVENT_TIMEOUT, Duration::from_millis(20), || {
        lines().iter().any(promoted)
    })
    .unwrap_or_else(|| {
        panic!(
            "haadm events printed no `change resource name:r0 role:Primary` line: {}",
            events.log()
        )
    });
    wait_until(EVENT_TIMEOUT, Duration::from_millis(20), || {
        lines()
            .iter()
            .any(|line| line.starts_with("change device name:r0 volume:0 disk:UpToDate"))
    })
    .unwrap_or_else(|| panic!("haadm events printed no UpToDate change: {}", events.log()));

    // The stream ends when the daemon does, and haadm then exits.
    node.stop();
    let mut events = events;
    let status = events
        .wait_timeout(EVENT_TIMEOUT)
        .unwrap_or_else(|| panic!("haadm events outlived replicad: {}", events.log()));
    assert!(status.success(), "haadm events: {status}: {}", events.log());
}

#[test]
fn dump_prints_the_normalized_configuration() {
    let _lock = lab_lock();
    if !require_root() {
        return;
    }
    let node = ReplicadNode::new(BACKING_SIZE);
    let finished = node.haadm(&["dump"]);
    finished.expect_code(0);
    let dump = &finished.stdout;
    for expected in [
        "resource r0 {",
        "on ha1 {",
        "on ha2 {",
        "protocol           C;",
        path_arg(node.backing_path()),
    ] {
        assert!(dump.contains(expected), "dump lacks {expected:?}:\n{dump}");
    }
    let one = node.haadm(&["dump", RESOURCE]);
    one.expect_code(0);
    assert_eq!(one.stdout, *dump, "dump r0 is the same one resource");
}

#[test]
fn create_md_refuses_to_overwrite_metadata_without_force() {
    let _lock = lab_lock();
    if !require_root() {
        return;
    }
    let node = ReplicadNode::new(BACKING_SIZE);
    let before = node.dump_md();

    let refused = node.haadm(&["create-md", RESOURCE]);
    refused.expect_code(1);
    assert!(
        refused.stderr.contains(path_arg(node.backing_path())),
        "the refusal names the metadata file: {}",
        refused.stderr
    );
    assert!(refused.stderr.contains("--force"), "{}", refused.stderr);
    assert_eq!(node.dump_md(), before, "nothing was written");

    node.haadm(&["create-md", RESOURCE, "--force"])
        .expect_code(0);
    let after = node.dump_md();
    let uuid = |dump: &hapair_lab::MetadataDump| {
        dump.text
            .lines()
            .find(|line| line.starts_with("device-uuid:"))
            .map(str::to_owned)
    };
    assert!(uuid(&before).is_some(), "{}", before.text);
    assert_ne!(uuid(&after), uuid(&before), "--force wrote new metadata");
}

/// Sends SIGCONT to a stopped process when dropped, so that a failing test
/// leaves a daemon its teardown can stop.
struct Stopped(Pid);

impl Stopped {
    fn stop(pid: u32) -> Stopped {
        let pid = Pid::from_raw(pid as i32);
        kill(pid, Signal::SIGSTOP).expect("SIGSTOP replicad");
        Stopped(pid)
    }
}

impl Drop for Stopped {
    fn drop(&mut self) {
        let _ = kill(self.0, Signal::SIGCONT);
    }
}

/// A replicad that takes questions and never answers (here stopped with
/// SIGSTOP, as one stuck on a backing disk that hangs would be) must not
/// hang the monitoring: `haadm status` fails and `haadm check` reports
/// UNKNOWN, each after its 10 s and saying why.
#[test]
fn status_and_check_give_up_on_a_replicad_that_does_not_answer() {
    let _lock = lab_lock();
    if !require_root() {
        return;
    }
    let node = up_node();
    let stopped = Stopped::stop(node.daemon().pid());

    for (command, code, words) in [("status", 1, "did not answer"), ("check", 3, "UNKNOWN")] {
        let started = Instant::now();
        let finished = node.haadm(&[command]);
        let waited = started.elapsed();
        assert_eq!(finished.code(), Some(code), "{}", finished.all_output());
        assert!(
            finished.all_output().contains(words)
                && finished.all_output().contains("did not answer"),
            "haadm {command} says why: {}",
            finished.all_output()
        );
        assert!(
            waited >= Duration::from_secs(9) && waited < Duration::from_secs(30),
            "haadm {command} gave up after {waited:?}, not after its 10 s"
        );
    }

    drop(stopped);
    assert_eq!(node.status()["role"], "Secondary", "answering again");
}
