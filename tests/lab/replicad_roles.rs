//! DRBD's role rules as replicad and haadm enforce them on one node, seen
//! through real NBD clients and haadm's exit codes: no export while
//! Secondary, no demotion while held open, no promotion of Inconsistent
//! data without --force, no `down` while Primary, unknown resources and a
//! missing daemon reported as such.

use std::process::Command;
use std::time::Duration;

use hapair_lab::{RESOURCE, ReplicadNode, lab_lock, path_arg, program, require_root, run_bounded};
use nix::sys::signal::Signal;

const BACKING_SIZE: u64 = 64 << 20;
const NBD_TIMEOUT: Duration = Duration::from_secs(30);

/// Haadm's exit codes (see `haadm --help`).
const REFUSED: i32 = 11;
const NEEDS_UP_TO_DATE: i32 = 17;
const INVALID: i32 = 10;
const NOT_RUNNING: i32 = 3;

/// `nbdinfo` against the export with libnbd's debug output on: its exit
/// code and everything it printed.
fn nbdinfo_debug(node: &ReplicadNode) -> (Option<i32>, String) {
    let mut command = Command::new(program("nbdinfo"));
    command.arg(node.nbd_uri()).env("LIBNBD_DEBUG", "1");
    let finished = run_bounded(command, NBD_TIMEOUT);
    (finished.code(), finished.all_output())
}

#[test]
fn the_export_is_refused_while_secondary_with_the_reason() {
    let _lock = lab_lock();
    if !require_root() {
        return;
    }
    let mut node = ReplicadNode::new(BACKING_SIZE);
    node.start();
    node.haadm(&["up", RESOURCE]).expect_code(0);

    let (code, output) = nbdinfo_debug(&node);
    assert_ne!(code, Some(0), "nbdinfo must fail on a Secondary: {output}");
    assert!(
        output.contains("r0 is Secondary on ha1"),
        "the client should see replicad's reason: {output}"
    );

    node.haadm(&["primary", RESOURCE, "--force"]).expect_code(0);
    let (code, output) = nbdinfo_debug(&node);
    assert_eq!(code, Some(0), "nbdinfo works on the Primary: {output}");

    node.haadm(&["secondary", RESOURCE]).expect_code(0);
    let (code, output) = nbdinfo_debug(&node);
    assert_ne!(code, Some(0), "refused again after demotion: {output}");
    assert!(output.contains("is Secondary"), "{output}");
}

#[test]
fn promotion_of_inconsistent_data_needs_force() {
    let _lock = lab_lock();
    if !require_root() {
        return;
    }
    let mut node = ReplicadNode::new(BACKING_SIZE);
    node.start();
    node.haadm(&["up", RESOURCE]).expect_code(0);
    assert_eq!(
        node.haadm(&["dstate", RESOURCE]).stdout.trim(),
        "Inconsistent"
    );

    let refused = node.haadm(&["primary", RESOURCE]);
    refused.expect_code(NEEDS_UP_TO_DATE);
    assert!(
        refused.stderr.contains("Inconsistent") && refused.stderr.contains("--force"),
        "the refusal says why and what to do: {}",
        refused.stderr
    );
    assert_eq!(node.haadm(&["role", RESOURCE]).stdout.trim(), "Secondary");

    node.haadm(&["primary", RESOURCE, "--force"]).expect_code(0);
    assert_eq!(node.haadm(&["role", RESOURCE]).stdout.trim(), "Primary");
    assert_eq!(node.haadm(&["dstate", RESOURCE]).stdout.trim(), "UpToDate");
}

#[test]
fn demotion_is_refused_while_a_client_holds_the_export_open() {
    let _lock = lab_lock();
    if !require_root() {
        return;
    }
    let node = ReplicadNode::primary(BACKING_SIZE);
    // qemu-io stays connected while it sleeps (a minute at most).
    let mut client = node.spawn(
        &[
            path_arg(&program("qemu-io")),
            "-f",
            "raw",
            &node.nbd_uri(),
            "-c",
            "sleep 60000",
        ],
        &[],
    );
    node.wait_for_open_count(1);

    let refused = node.haadm(&["secondary", RESOURCE]);
    refused.expect_code(REFUSED);
    assert!(
        refused.stderr.contains("held open"),
        "the refusal names the reason: {}",
        refused.stderr
    );
    assert_eq!(node.haadm(&["role", RESOURCE]).stdout.trim(), "Primary");
    assert!(client.is_running(), "the client was not disturbed");

    client.kill(Signal::SIGKILL);
    client
        .wait_timeout(NBD_TIMEOUT)
        .expect("qemu-io dies of SIGKILL");
    node.wait_for_open_count(0);
    node.haadm(&["secondary", RESOURCE]).expect_code(0);
    assert_eq!(node.haadm(&["role", RESOURCE]).stdout.trim(), "Secondary");
}

#[test]
fn down_is_refused_while_primary() {
    let _lock = lab_lock();
    if !require_root() {
        return;
    }
    let node = ReplicadNode::primary(BACKING_SIZE);
    let refused = node.haadm(&["down", RESOURCE]);
    refused.expect_code(REFUSED);
    assert!(refused.stderr.contains("Primary"), "{}", refused.stderr);
    assert_eq!(node.haadm(&["role", RESOURCE]).stdout.trim(), "Primary");
    assert_eq!(node.haadm(&["dstate", RESOURCE]).stdout.trim(), "UpToDate");

    node.haadm(&["secondary", RESOURCE]).expect_code(0);
    node.haadm(&["down", RESOURCE]).expect_code(0);
    assert_eq!(node.haadm(&["dstate", RESOURCE]).stdout.trim(), "Diskless");
}

#[test]
fn an_unknown_resource_is_invalid() {
    let _lock = lab_lock();
    if !require_root() {
        return;
    }
    let node = ReplicadNode::primary(BACKING_SIZE);
    for command in [
        &["primary", "r9"][..],
        &["secondary", "r9"],
        &["up", "r9"],
        &["down", "r9"],
        &["status", "r9"],
        &["role", "r9"],
        &["dump-md", "r9"],
        &["create-md", "r9"],
    ] {
        let finished = node.haadm(command);
        finished.expect_code(INVALID);
        assert!(
            finished.stderr.contains("r9"),
            "haadm {command:?} names the resource: {}",
            finished.stderr
        );
    }
    assert_eq!(node.haadm(&["role", RESOURCE]).stdout.trim(), "Primary");
}

#[test]
fn haadm_without_replicad_names_the_socket() {
    let _lock = lab_lock();
    if !require_root() {
        return;
    }
    let mut node = ReplicadNode::new(BACKING_SIZE);
    node.start();
    node.haadm(&["status"]).expect_code(0);
    assert!(node.stop().success(), "replicad exits 0 on SIGTERM");

    let socket = node.control_socket();
    let socket = path_arg(&socket);
    for command in [
        &["status"][..],
        &["up", RESOURCE],
        &["primary", RESOURCE],
        &["role", RESOURCE],
        &["events"],
    ] {
        let finished = node.haadm(command);
        finished.expect_code(NOT_RUNNING);
        assert!(
            finished.stderr.contains(socket),
            "haadm {command:?} names the socket {socket}: {}",
            finished.stderr
        );
    }
}
