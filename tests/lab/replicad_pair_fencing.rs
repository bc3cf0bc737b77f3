//! `fencing: resource-and-stonith` on a replicad pair: a Primary that loses
//! its peer freezes its I/O while its `fence-peer` handler runs, as DRBD
//! does, so that no write is answered without the peer before the peer is
//! known fenced.
//!
//! - The handler exits 7 (STONITH) once the test lets it: until then a
//!   write whose peer ack was lost, and a write and a read issued after the
//!   loss, are all unanswered, status says `suspended:fencing` and events a resource
//!   change; then both are answered and the data is on ha1's disk.
//! - The handler exits 1 (fencing failed): I/O stays frozen, `haadm check`
//!   is CRITICAL, and only `haadm resume-io` lets the write through.
//! - `resource-only`: the same loss freezes nothing, even while the handler
//!   still runs.
//!
//! The handler is a script that marks its call in a file beside the
//! node's backing file, then waits (at most a minute) for a release file
//! there before it exits with the code under test.

use std::ops::Range;
use std::path::PathBuf;
use std::time::Duration;

use hapair_lab::{Proc, RESOURCE, ReplicadNode, lab_lock, path_arg, program, require_root};
use nix::sys::signal::Signal;

use crate::replicad_pair_kit::{
    Extras, Pair, backing_bytes, synced_pair, wait_for, wait_for_status,
};

const MIB: u64 = 1024 * 1024;
/// Written while the peer is stopped, so its ack is lost with the peer.
const IN_FLIGHT: Range<u64> = 2 * MIB..2 * MIB + 64 * 1024;
/// Written once the peer is lost.
const AFTER_LOSS: Range<u64> = 5 * MIB..5 * MIB + 64 * 1024;
/// Read once the peer is lost: no write holds it.
const UNTOUCHED: u64 = 8 * MIB;
const PATTERN: u8 = 0x6c;
/// How long a write that must wait is watched waiting.
const HELD: Duration = Duration::from_secs(3);
/// How long a write may take to be answered once I/O resumed.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(30);

/// A pair with `fencing` and a `fence-peer` handler that exits with
/// `exit_code` once released (see the module documentation).
fn fencing_pair(fencing: &str, exit_code: i32) -> Pair {
    let handler = format!(
        "  fence-peer: {{shell: 'd=$(dirname \"$DRBD_BACKING_DEV\"); touch \"$d/fence-peer.called\"; \
         for _ in $(seq 600); do if [ -e \"$d/fence-peer.release\" ]; then exit {exit_code}; fi; \
         sleep 0.1; done; exit 1'}}\n"
    );
    synced_pair(&Extras {
        net: format!("fencing: {fencing},"),
        handlers_yaml: handler,
        ..Extras::default()
    })
}

/// The file of `node`'s handler named `name` (`called`, `release`).
fn handler_file(node: &ReplicadNode, name: &str) -> PathBuf {
    node.backing_path()
        .with_file_name(format!("fence-peer.{name}"))
}

/// Lets the node's waiting handler exit.
fn release_handler(node: &ReplicadNode) {
    let release = handler_file(node, "release");
    std::fs::write(&release, b"")
        .unwrap_or_else(|error| panic!("cannot create {}: {error}", release.display()));
}

fn wait_for_handler_call(node: &ReplicadNode) {
    wait_for(
        &format!("the fence-peer call on {}", node.name()),
        || handler_file(node, "called").exists(),
        || node.daemon().log(),
    );
}

/// A qemu-io running `command` on `node`'s export. Its output is
/// line-buffered, so that the line saying the request was answered shows
/// at once ([`answered`]): the client's end says less, as qemu-io sends a
/// FLUSH when it closes, which waits on its own.
fn start_qemu_io(node: &ReplicadNode, command: &str) -> Proc {
    let (stdbuf, qemu_io) = (program("stdbuf"), program("qemu-io"));
    node.spawn(
        &[
            path_arg(&stdbuf),
            "-oL",
            path_arg(&qemu_io),
            "-f",
            "raw",
            &node.nbd_uri(),
            "-c",
            command,
        ],
        &[("QEMU_IO_OPTIONS", "")],
    )
}

/// A qemu-io writing [`PATTERN`] over `range` on `node`.
fn start_writing(node: &ReplicadNode, range: &Range<u64>) -> Proc {
    start_qemu_io(
        node,
        &format!(
            "write -P {PATTERN} {} {}",
            range.start,
            range.end - range.start
        ),
    )
}

/// True once qemu-io printed that its request was answered (`wrote N/N
/// bytes at offset X`, `read ...`).
fn answered(client: &Proc) -> bool {
    client.log().contains(" bytes at offset ")
}

fn assert_unanswered(client: &mut Proc, node: &ReplicadNode, what: &str) {
    let ended = client.wait_timeout(HELD);
    assert!(
        ended.is_none() && !answered(client),
        "{what}: the request must wait while I/O is suspended ({ended:?}):\n{}\n{}",
        client.log(),
        node.daemon().log()
    );
}

fn assert_answered(client: &mut Proc, node: &ReplicadNode, what: &str) {
    let ended = client.wait_timeout(ANSWER_TIMEOUT);
    let output = client.log();
    assert!(
        ended.is_some_and(|status| status.success())
            && answered(client)
            && !output.contains("error"),
        "{what}: the request should be answered within {ANSWER_TIMEOUT:?} ({ended:?}):\n{output}\n{}",
        node.daemon().log()
    );
}

fn suspended(node: &ReplicadNode) -> bool {
    node.status()["suspended"] == true
}

fn assert_on_disk(node: &ReplicadNode, range: &Range<u64>) {
    assert!(
        backing_bytes(node, range).iter().all(|&b| b == PATTERN),
        "{}: {range:?} holds the written pattern",
        node.name()
    );
}

/// `haadm events` on `node`, once it printed the present state.
fn watch(node: &ReplicadNode) -> Proc {
    let events = node.events();
    wait_for(
        &format!("the `exists -` line of {}'s events", node.name()),
        || events.log().lines().any(|line| line == "exists -"),
        || events.log(),
    );
    events
}

#[test]
fn a_frozen_primary_answers_nothing_until_fence_peer_stoniths_the_peer() {
    let _lock = lab_lock();
    if !require_root() {
        return;
    }
    let mut pair = fencing_pair("resource-and-stonith", 7);
    let events = watch(&pair.ha1);
    // A write waits for ha2's ack while ha2 is stopped; once it is on
    // ha1's disk only that ack is missing.
    pair.ha2.daemon().kill(Signal::SIGSTOP);
    let mut in_flight = start_writing(&pair.ha1, &IN_FLIGHT);
    wait_for(
        "the write on ha1's disk, waiting for ha2's ack",
        || {
            backing_bytes(&pair.ha1, &IN_FLIGHT)
                .iter()
                .all(|&b| b == PATTERN)
        },
        || in_flight.log(),
    );
    pair.ha2.crash();
    wait_for_status(&pair.ha1, "I/O suspended", |s| s["suspended"] == true);
    wait_for_handler_call(&pair.ha1);
    let mut after_loss = start_writing(&pair.ha1, &AFTER_LOSS);
    let mut read = start_qemu_io(&pair.ha1, &format!("read {UNTOUCHED} 4096"));
    assert_unanswered(&mut in_flight, &pair.ha1, "the write whose ack was lost");
    assert_unanswered(&mut after_loss, &pair.ha1, "the write after the loss");
    assert_unanswered(&mut read, &pair.ha1, "a read after the loss");
    assert!(
        suspended(&pair.ha1),
        "still suspended while fence-peer runs"
    );
    let text = pair.ha1.haadm(&["status", RESOURCE]);
    text.expect_code(0);
    assert!(
        text.stdout
            .starts_with(&format!("{RESOURCE} role:Primary suspended:fencing\n")),
        "status names the freeze as drbdsetup does:\n{}",
        text.stdout
    );

    release_handler(&pair.ha1);
    assert_answered(&mut in_flight, &pair.ha1, "the write whose ack was lost");
    assert_answered(&mut after_loss, &pair.ha1, "the write after the loss");
    assert_answered(&mut read, &pair.ha1, "the read after the loss");
    assert!(!suspended(&pair.ha1), "resumed once the peer was fenced");
    assert_on_disk(&pair.ha1, &AFTER_LOSS);
    assert!(
        pair.ha1
            .daemon()
            .log()
            .contains("I/O resumed: the peer was fenced off the cluster (STONITH)"),
        "{}",
        pair.ha1.daemon().log()
    );
    let frozen = format!("change resource name:{RESOURCE} role:Primary suspended:fencing");
    let thawed = format!("change resource name:{RESOURCE} role:Primary suspended:no");
    wait_for(
        "events showing the freeze, then its end",
        || {
            let log = events.log();
            let at = |line: &str| log.lines().position(|seen| seen == line);
            at(&frozen).zip(at(&thawed)).is_some_and(|(f, t)| f < t)
        },
        || events.log(),
    );
}

#[test]
fn a_failed_fence_peer_keeps_io_frozen_until_resume_io() {
    let _lock = lab_lock();
    if !require_root() {
        return;
    }
    let mut pair = fencing_pair("resource-and-stonith", 1);
    // The handler exits 1 at once.
    release_handler(&pair.ha1);
    pair.ha2.crash();
    wait_for_status(&pair.ha1, "I/O suspended", |s| s["suspended"] == true);
    wait_for(
        "the error that says what to do",
        || {
            pair.ha1
                .daemon()
                .log()
                .contains("then resume with `haadm resume-io r0`")
        },
        || pair.ha1.daemon().log(),
    );
    let mut client = start_writing(&pair.ha1, &AFTER_LOSS);
    assert_unanswered(&mut client, &pair.ha1, "a write after the failed fencing");
    assert!(
        suspended(&pair.ha1),
        "the freeze outlives the failed handler"
    );
    let check = pair.ha1.haadm(&["check"]);
    assert_eq!(check.code(), Some(2), "CRITICAL: {}", check.stdout);
    assert!(
        check.stdout.contains("r0: I/O suspended (fencing)")
            && check.stdout.contains("haadm resume-io r0"),
        "{}",
        check.stdout
    );

    pair.ha1.haadm(&["resume-io", RESOURCE]).expect_code(0);
    assert_answered(&mut client, &pair.ha1, "the write after resume-io");
    assert!(!suspended(&pair.ha1));
    assert_on_disk(&pair.ha1, &AFTER_LOSS);
}

#[test]
fn resource_only_freezes_nothing_while_fence_peer_runs() {
    let _lock = lab_lock();
    if !require_root() {
        return;
    }
    let mut pair = fencing_pair("resource-only", 7);
    pair.ha2.crash();
    wait_for_handler_call(&pair.ha1);
    let mut client = start_writing(&pair.ha1, &AFTER_LOSS);
    assert_answered(&mut client, &pair.ha1, "a write while fence-peer runs");
    assert!(!suspended(&pair.ha1), "resource-only never suspends I/O");
    assert_on_disk(&pair.ha1, &AFTER_LOSS);
    release_handler(&pair.ha1);
}
