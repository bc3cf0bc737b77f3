//! replicad's `on-io-error` policies on one node whose backing disk starts
//! failing: the disk is nbdkit's memory plugin behind its error filter,
//! exposed as a regular file by nbdfuse, and every request to it fails
//! with EIO while a trigger file exists. The metadata is external, in an
//! ordinary file, so that only data I/O fails.
//!
//! The disk is [`FailingDisk`], shared with the storage pair's harness.
//!
//! The backing file is read through the kernel's page cache, so before the
//! disk fails the test evicts the file's cached pages (`dd iflag=nocache`):
//! the failing read then really reaches the disk. qemu-io's NBD client keeps
//! no cache of its own.
//!
//! - `pass_on`: the client gets EIO, the volume stays UpToDate and works
//!   again once the disk does.
//! - `detach`: the volume becomes Diskless, and stays so, failing every
//!   request, after the disk recovers, until it is brought down and up.
//! - `call-local-io-error`: the client gets EIO and the `local-io-error`
//!   handler runs with the resource in its environment.

use std::fs;
use std::process::Command;
use std::time::Duration;

/// The failing disk (also used by `replicad_pair_disk_errors`): it lives
/// with the storage pair's harness, whose chaos test fails it too.
pub use hapair_lab::storage_pair::FailingDisk;
use hapair_lab::{
    Finished, NODE, RESOURCE, ReplicadNode, free_loopback_port, lab_lock, path_arg, program,
    require_root, run_bounded, wait_until,
};

const MIB: u64 = 1 << 20;
/// Written and read back while the disk works, read again once it fails.
const WRITTEN_OFFSET: u64 = 0;
const WRITTEN_PATTERN: u8 = 0xa5;
/// First written while the disk fails (and again once it works).
const LATER_OFFSET: u64 = 8 * MIB;
const LATER_PATTERN: u8 = 0x5a;
const TIMEOUT: Duration = Duration::from_secs(30);
const POLL: Duration = Duration::from_millis(50);
/// What a client prints for EIO.
const EIO_TEXT: &str = "Input/output error";

/// The resource on `disk` with `on-io-error: policy`, metadata external
/// beside the node's (unused) default backing file, and `handlers` (YAML
/// lines under `handlers:`, or none).
fn node_on(disk: &FailingDisk, policy: &str, handlers: &str) -> ReplicadNode {
    let disk_file = disk.disk.file();
    let mut node = ReplicadNode::with_config(NODE, None, 0, |unused_backing| {
        let (disk, meta) = (path_arg(&disk_file), unused_backing.with_extension("md"));
        let meta = path_arg(&meta);
        let port = free_loopback_port();
        let handlers = if handlers.is_empty() {
            String::new()
        } else {
            format!("handlers:\n{handlers}")
        };
        format!(
            "resource: {RESOURCE}\n\
             protocol: C\n\
             disk: {{on-io-error: {policy}}}\n\
             {handlers}\
             nodes:\n  \
               {NODE}: {{address: \"127.0.0.1:{port}\", disk: {disk}, meta-disk: {meta}}}\n  \
               ha2: {{address: \"127.0.0.2:{port}\", disk: {disk}, meta-disk: {meta}}}\n"
        )
    });
    node.start();
    node.haadm(&["up", RESOURCE]).expect_code(0);
    node.haadm(&["primary", RESOURCE, "--force"]).expect_code(0);
    node
}

fn qemu_io(node: &ReplicadNode, command: &str) -> Finished {
    let mut qemu_io = Command::new(program("qemu-io"));
    qemu_io
        .args(["-f", "raw", &node.nbd_uri(), "-c", command])
        .env_remove("QEMU_IO_OPTIONS");
    run_bounded(qemu_io, TIMEOUT)
}

fn assert_succeeds(node: &ReplicadNode, command: &str) {
    let finished = qemu_io(node, command);
    let output = finished.all_output();
    assert!(
        finished.code() == Some(0) && !output.contains("fail") && !output.contains("error"),
        "qemu-io -c '{command}' should succeed ({}): {output}",
        finished.status
    );
}

fn assert_fails_with_eio(node: &ReplicadNode, command: &str) {
    let finished = qemu_io(node, command);
    let output = finished.all_output();
    assert!(
        output.contains(EIO_TEXT),
        "qemu-io -c '{command}' should fail with {EIO_TEXT} ({}): {output}",
        finished.status
    );
}

fn write_written() -> String {
    format!("write -P {WRITTEN_PATTERN:#x} {WRITTEN_OFFSET} {MIB}")
}

fn read_written() -> String {
    format!("read -P {WRITTEN_PATTERN:#x} {WRITTEN_OFFSET} {MIB}")
}

fn write_later() -> String {
    format!("write -P {LATER_PATTERN:#x} {LATER_OFFSET} {MIB}")
}

fn read_later() -> String {
    format!("read -P {LATER_PATTERN:#x} {LATER_OFFSET} {MIB}")
}

/// The disk state, checking on the way that the daemon still runs and
/// answers `haadm status`.
fn disk_state_of(node: &ReplicadNode) -> String {
    let status = node.status();
    assert_eq!(status["role"], "Primary", "still Primary: {status}");
    status["disk"]
        .as_str()
        .unwrap_or_else(|| panic!("haadm status has no disk state: {status}"))
        .to_owned()
}

/// Writes and reads back data on the working disk, then makes it fail
/// with the data evicted from the page cache; the node is UpToDate.
fn written_then_failing(policy: &str, handlers: &str) -> (FailingDisk, ReplicadNode) {
    let disk = FailingDisk::start();
    let node = node_on(&disk, policy, handlers);
    assert_eq!(disk_state_of(&node), "UpToDate");
    assert_succeeds(&node, &write_written());
    assert_succeeds(&node, &read_written());
    disk.evict_cache();
    disk.fail();
    (disk, node)
}

/// Checks that the daemon's log holds `expected`.
fn assert_logged(node: &ReplicadNode, expected: &str) {
    let log = node.daemon().log();
    assert!(
        log.contains(expected),
        "replicad should log {expected:?}:\n{log}"
    );
}

#[test]
fn pass_on_gives_the_client_eio_and_keeps_the_disk() {
    let _lock = lab_lock();
    if !require_root() {
        return;
    }
    let (disk, node) = written_then_failing("pass_on", "");
    assert_fails_with_eio(&node, &read_written());
    assert_fails_with_eio(&node, &write_later());
    assert!(
        disk.disk.server_log().contains("injecting EIO error"),
        "the errors came from the disk: {}",
        disk.disk.server_log()
    );
    assert_eq!(disk_state_of(&node), "UpToDate");
    assert_logged(&node, "I/O error passed on to the client");

    disk.heal();
    assert_succeeds(&node, &read_written());
    assert_succeeds(&node, &write_later());
    assert_succeeds(&node, &read_later());
    assert_eq!(disk_state_of(&node), "UpToDate");
}

#[test]
fn detach_makes_the_volume_diskless_until_down_and_up() {
    let _lock = lab_lock();
    if !require_root() {
        return;
    }
    let (disk, node) = written_then_failing("detach", "");
    // The read is the first request to meet the failing disk: it detaches.
    assert_fails_with_eio(&node, &read_written());
    assert_eq!(disk_state_of(&node), "Diskless");
    assert_logged(&node, "detached (on-io-error detach)");
    assert_logged(&node, "disk detached:");
    assert_fails_with_eio(&node, &write_later());

    disk.heal();
    // The disk works again, but a detached volume does not go back to it.
    assert_fails_with_eio(&node, &read_written());
    assert_fails_with_eio(&node, &write_later());
    assert_eq!(disk_state_of(&node), "Diskless");

    node.haadm(&["secondary", RESOURCE]).expect_code(0);
    node.haadm(&["down", RESOURCE]).expect_code(0);
    node.haadm(&["up", RESOURCE]).expect_code(0);
    node.haadm(&["primary", RESOURCE, "--force"]).expect_code(0);
    assert_eq!(disk_state_of(&node), "UpToDate");
    assert_succeeds(&node, &read_written());
}

#[test]
fn call_local_io_error_runs_the_handler_and_keeps_the_disk() {
    let _lock = lab_lock();
    if !require_root() {
        return;
    }
    let record = tempfile::NamedTempFile::new()
        .unwrap_or_else(|error| panic!("cannot create a handler record: {error}"));
    let handlers = format!(
        "  local-io-error: {{shell: \"env | grep -E '^(DRBD|HAPAIR)_' | sort >> {}\"}}\n",
        path_arg(record.path())
    );
    let (disk, node) = written_then_failing("call-local-io-error", &handlers);
    assert_eq!(
        fs::read_to_string(record.path()).unwrap_or_default(),
        "",
        "the handler runs only on an I/O error"
    );
    assert_fails_with_eio(&node, &write_later());
    let mut recorded = String::new();
    wait_until(TIMEOUT, POLL, || {
        recorded = fs::read_to_string(record.path()).unwrap_or_default();
        recorded.contains("HAPAIR_HANDLER=local-io-error\n")
    })
    .unwrap_or_else(|| panic!("local-io-error did not run within {TIMEOUT:?}: {recorded:?}"));
    for expected in [
        format!("DRBD_RESOURCE={RESOURCE}\n"),
        format!("DRBD_BACKING_DEV={}\n", path_arg(&disk.disk.file())),
    ] {
        assert!(
            recorded.contains(&expected),
            "the handler gets {expected:?}: {recorded}"
        );
    }
    assert_logged(&node, "calling the local-io-error handler");
    assert_eq!(disk_state_of(&node), "UpToDate");
}
