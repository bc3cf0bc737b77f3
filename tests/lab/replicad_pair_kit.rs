//! What the `replicad_pair_*` tests share: a pair of replicad nodes (ha1 on
//! lab host h1 at 10.99.0.1, ha2 on h2 at 10.99.0.2) with extra options in
//! their configuration, handlers that record their environment, waiting
//! for a status, and writing and checking patterns through the export.

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use hapair_lab::{
    Finished, Lab, RESOURCE, ReplicadNode, path_arg, program, read_file_range, run_bounded,
    wait_until,
};
use serde_json::Value;

pub const BACKING_SIZE: u64 = 64 << 20;
/// How long a connect plus a full sync of the volume may take.
pub const SYNC_TIMEOUT: Duration = Duration::from_secs(60);
const POLL: Duration = Duration::from_millis(100);

/// Every handler a test may record, by its drbd.conf name.
pub const RECORDED_HANDLERS: [&str; 5] = [
    "split-brain",
    "initial-split-brain",
    "before-resync-target",
    "after-resync-target",
    "disconnected",
];

/// The pair's `net` timing unless [`Extras::net`] says otherwise: quick
/// reconnects and a generous ping timeout for a loaded machine.
pub const NET_DEFAULTS: [(&str, &str); 4] = [
    ("ping-int", "2"),
    ("ping-timeout", "15"),
    ("timeout", "15"),
    ("connect-int", "2"),
];

/// The `net` entries of a node's configuration: `extra`, then each of
/// [`NET_DEFAULTS`] that `extra` does not set.
fn net_options(extra: &str) -> String {
    let given: Vec<&str> = extra
        .split(',')
        .filter_map(|entry| entry.split(':').next())
        .map(str::trim)
        .collect();
    let mut options = extra.to_string();
    for (key, value) in NET_DEFAULTS {
        if !given.contains(&key) {
            options.push_str(&format!(" {key}: {value},"));
        }
    }
    options
}

/// What a pair's configuration adds to the basic one.
#[derive(Default)]
pub struct Extras {
    /// More `net` options, as `key: value` entries ending with a comma;
    /// one of [`NET_DEFAULTS`] given here replaces the default.
    pub net: String,
    /// More `disk` options, the same way.
    pub disk: String,
    /// Handlers that append their name and environment to
    /// [`handler_log`] of the node.
    pub recorded_handlers: Vec<&'static str>,
    /// The exit code of the recorded handlers (0 unless set).
    pub recorded_exit_code: i32,
    /// Handlers written out as YAML lines under `handlers:`.
    pub handlers_yaml: String,
    /// The size of each node's backing file; `None`: [`BACKING_SIZE`].
    pub backing_size: Option<u64>,
    /// The replication protocol; empty: C.
    pub protocol: &'static str,
    /// A disk of ha1's other than its backing file (e.g. one that fails on
    /// demand). With it (or `ha2_disk`) both nodes keep their metadata
    /// external, beside the backing file, so that the disk is all data and
    /// both volumes have the disk's size.
    pub ha1_disk: Option<PathBuf>,
    /// The same for ha2.
    pub ha2_disk: Option<PathBuf>,
    /// Internal metadata even with a disk of a node's own: that disk then
    /// holds its node's metadata too (give `backing_size` the disk's size,
    /// so that both volumes have the same size).
    pub internal_meta: bool,
}

/// The pair. Fields drop in order: the daemons die before the lab goes.
pub struct Pair {
    pub ha1: ReplicadNode,
    pub ha2: ReplicadNode,
    /// Kept until the daemons are gone.
    lab: Lab,
}

impl Pair {
    /// The lab the nodes' hosts are in (h1 for ha1, h2 for ha2).
    pub fn lab(&self) -> &Lab {
        &self.lab
    }

    /// Sets `eth0` of the lab host of ha2 `up` or `down`: the link between
    /// the nodes comes and goes while both daemons run.
    pub fn set_ha2_link(&self, state: &str) {
        let namespace = self.lab.host(2).namespace();
        let status = std::process::Command::new("ip")
            .args(["-n", namespace, "link", "set", "eth0", state])
            .status()
            .expect("ip runs");
        assert!(status.success(), "ip link set eth0 {state} in {namespace}");
    }
}

/// The file the recorded handlers of the node with backing file `backing`
/// append to.
fn handler_log_beside(backing: &Path) -> PathBuf {
    backing.with_file_name("handlers.log")
}

/// The node's record of handler calls: one block per call, `HANDLER=name`
/// first, then the `DRBD_*` and `HAPAIR_*` variables, then `--`.
pub fn handler_log(node: &ReplicadNode) -> String {
    std::fs::read_to_string(handler_log_beside(node.backing_path())).unwrap_or_default()
}

/// The calls of `handler` in the node's record, each as its lines; a call
/// whose record is still being written (no `--` yet) is not counted.
pub fn handler_calls(node: &ReplicadNode, handler: &str) -> Vec<String> {
    handler_log(node)
        .split_inclusive("--\n")
        .filter_map(|call| call.strip_suffix("--\n"))
        .filter(|call| call.starts_with(&format!("HANDLER={handler}\n")))
        .map(str::to_string)
        .collect()
}

fn resource_yaml(extras: &Extras, node: &str, backing: &Path) -> String {
    let log = handler_log_beside(backing);
    let own_disk = if node == "ha1" {
        &extras.ha1_disk
    } else {
        &extras.ha2_disk
    };
    let disk = own_disk.clone().unwrap_or_else(|| backing.to_path_buf());
    let own_disks = extras.ha1_disk.is_some() || extras.ha2_disk.is_some();
    let meta_disk = if own_disks && !extras.internal_meta {
        path_arg(&backing.with_extension("md")).to_string()
    } else {
        "internal".to_string()
    };
    let disk = path_arg(&disk);
    let protocol = if extras.protocol.is_empty() {
        "C"
    } else {
        extras.protocol
    };
    let mut handlers = extras.handlers_yaml.clone();
    for name in &extras.recorded_handlers {
        handlers.push_str(&format!(
            "  {name}: {{shell: \"(echo HANDLER={name}; env | grep -E '^(DRBD|HAPAIR)_' | sort; \
             echo --) >> {}; exit {}\"}}\n",
            log.display(),
            extras.recorded_exit_code
        ));
    }
    let handlers = if handlers.is_empty() {
        String::new()
    } else {
        format!("handlers:\n{handlers}")
    };
    format!(
        "resource: {RESOURCE}\n\
         protocol: {protocol}\n\
         net: {{{} shared-secret: \"pair-secret\"}}\n\
         disk: {{{} on-io-error: detach}}\n\
         {handlers}\
         nodes:\n  \
           ha1: {{address: \"10.99.0.1:7789\", disk: {disk}, meta-disk: {meta_disk}}}\n  \
           ha2: {{address: \"10.99.0.2:7789\", disk: {disk}, meta-disk: {meta_disk}}}\n",
        net_options(&extras.net),
        extras.disk
    )
}

/// Both nodes started and up (Secondary, fresh metadata).
pub fn fresh_pair(extras: &Extras) -> Pair {
    let lab = Lab::new(2);
    let node = |name: &str, host: usize| {
        let mut node = ReplicadNode::with_config(
            name,
            Some(lab.host(host).namespace()),
            extras.backing_size.unwrap_or(BACKING_SIZE),
            |backing| resource_yaml(extras, name, backing),
        );
        node.start();
        node.haadm(&["up", RESOURCE]).expect_code(0);
        node
    };
    let ha1 = node("ha1", 1);
    let ha2 = node("ha2", 2);
    Pair { ha1, ha2, lab }
}

/// A fresh pair after `primary --force` on ha1 and the full sync to ha2,
/// with ha1 still Primary.
pub fn synced_pair(extras: &Extras) -> Pair {
    let pair = fresh_pair(extras);
    pair.ha1
        .haadm(&["primary", RESOURCE, "--force"])
        .expect_code(0);
    wait_for_status(&pair.ha1, "the full sync", in_sync);
    wait_for_status(&pair.ha2, "the full sync", in_sync);
    pair
}

/// Waits until `check` holds for the node's status, or panics showing it.
pub fn wait_for_status(node: &ReplicadNode, what: &str, check: impl Fn(&Value) -> bool) -> Value {
    let mut last = Value::Null;
    let found = wait_until(SYNC_TIMEOUT, POLL, || {
        last = node.status();
        check(&last)
    });
    found.map(|_| last.clone()).unwrap_or_else(|| {
        panic!(
            "{}: {what} did not happen within {SYNC_TIMEOUT:?}; last status: {last}\n{}",
            node.name(),
            node.daemon().log()
        )
    })
}

/// Waits until `check` holds, or panics with `what` and `context()`.
pub fn wait_for(what: &str, check: impl Fn() -> bool, context: impl Fn() -> String) {
    if wait_until(SYNC_TIMEOUT, POLL, check).is_none() {
        panic!(
            "{what} did not happen within {SYNC_TIMEOUT:?}\n{}",
            context()
        );
    }
}

pub fn in_sync(status: &Value) -> bool {
    status["disk"] == "UpToDate"
        && status["peer"]["connection"] == "Connected"
        && status["peer"]["disk"] == "UpToDate"
        && status["peer"]["replication"] == "Established"
}

pub fn resynced_bytes(node: &ReplicadNode) -> u64 {
    node.status()["peer"]["resynced_bytes"]
        .as_u64()
        .expect("status has peer.resynced_bytes")
}

pub fn qemu_io(node: &ReplicadNode, commands: &[String]) -> Finished {
    let mut command = std::process::Command::new(program("qemu-io"));
    command.args(["-f", "raw", &node.nbd_uri()]);
    for each in commands {
        command.args(["-c", each]);
    }
    let finished = run_bounded(command, Duration::from_secs(60));
    let output = finished.all_output();
    assert!(
        finished.code() == Some(0) && !output.contains("failed") && !output.contains("error"),
        "qemu-io on {} failed ({}):\n{output}",
        node.name(),
        finished.status
    );
    finished
}

/// Writes `pattern` over `range` of the node's export.
pub fn write_pattern(node: &ReplicadNode, range: &Range<u64>, pattern: u8) {
    qemu_io(
        node,
        &[format!(
            "write -P {pattern} {} {}",
            range.start,
            range.end - range.start
        )],
    );
}

/// The bytes of `range` in the node's backing file.
pub fn backing_bytes(node: &ReplicadNode, range: &Range<u64>) -> Vec<u8> {
    read_file_range(
        node.backing_path(),
        range.start,
        (range.end - range.start) as usize,
    )
    .expect("backing file readable")
}

/// Disconnects both nodes; then `ha1` writes `ha1_writes` with 0x11 and
/// `ha2` (promoted in turn) writes `ha2_writes` with 0x22, both Secondary
/// at the end: both started a generation of their own.
pub fn make_split_brain(pair: &Pair, ha1_writes: &Range<u64>, ha2_writes: &Range<u64>) {
    for node in [&pair.ha1, &pair.ha2] {
        node.haadm(&["disconnect", RESOURCE]).expect_code(0);
    }
    if !ha1_writes.is_empty() {
        write_pattern(&pair.ha1, ha1_writes, 0x11);
    }
    pair.ha1.haadm(&["secondary", RESOURCE]).expect_code(0);
    pair.ha2.haadm(&["primary", RESOURCE]).expect_code(0);
    if !ha2_writes.is_empty() {
        write_pattern(&pair.ha2, ha2_writes, 0x22);
    }
    pair.ha2.haadm(&["secondary", RESOURCE]).expect_code(0);
}
