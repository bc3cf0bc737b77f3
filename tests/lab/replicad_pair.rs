//! Two replicad nodes on two lab hosts (ha1 on h1 at 10.99.0.1, ha2 on h2
//! at 10.99.0.2): the first full sync, protocol C mirroring, a bitmap
//! resync of only what was written while the link was down, a refused
//! shared secret, and a split brain that is reported and not resolved.

use std::ops::Range;
use std::time::Duration;

use hapair_lab::{
    Lab, RESOURCE, ReplicadNode, lab_lock, path_arg, read_file_range, require_root, wait_until,
};

use crate::replicad_pair_kit::{in_sync, qemu_io, resynced_bytes, wait_for_status, write_pattern};

const BACKING_SIZE: u64 = 64 << 20;
/// How long a connect plus a full sync of the volume may take.
const SYNC_TIMEOUT: Duration = Duration::from_secs(60);
const POLL: Duration = Duration::from_millis(100);
const REFUSED: i32 = 11;

/// The pair. Fields drop in order: the daemons die before the lab goes.
struct Pair {
    ha1: ReplicadNode,
    ha2: ReplicadNode,
    lab: Lab,
}

fn resource_yaml(secret: &str, disk: &str) -> String {
    format!(
        "resource: {RESOURCE}\n\
         protocol: C\n\
         net: {{shared-secret: \"{secret}\", ping-int: 2, ping-timeout: 15, timeout: 15, connect-int: 2}}\n\
         disk: {{on-io-error: detach}}\n\
         nodes:\n  \
           ha1: {{address: \"10.99.0.1:7789\", disk: {disk}, meta-disk: internal}}\n  \
           ha2: {{address: \"10.99.0.2:7789\", disk: {disk}, meta-disk: internal}}\n"
    )
}

/// Both nodes started and up (Secondary, fresh metadata).
fn pair_with_secrets(secret1: &str, secret2: &str) -> Pair {
    let lab = Lab::new(2);
    let node = |name: &str, host: usize, secret: &str| {
        let mut node = ReplicadNode::with_config(
            name,
            Some(lab.host(host).namespace()),
            BACKING_SIZE,
            |backing| resource_yaml(secret, path_arg(backing)),
        );
        node.start();
        node.haadm(&["up", RESOURCE]).expect_code(0);
        node
    };
    let ha1 = node("ha1", 1, secret1);
    let ha2 = node("ha2", 2, secret2);
    Pair { ha1, ha2, lab }
}

/// A fresh pair after `primary --force` on ha1 and the full sync to ha2.
fn synced_pair() -> Pair {
    let pair = pair_with_secrets("pair-secret", "pair-secret");
    pair.ha1
        .haadm(&["primary", RESOURCE, "--force"])
        .expect_code(0);
    wait_for_status(&pair.ha1, "the full sync", in_sync);
    wait_for_status(&pair.ha2, "the full sync", in_sync);
    pair
}

/// Checks through the node's export that `range` holds `pattern`.
fn assert_pattern(node: &ReplicadNode, range: &Range<u64>, pattern: u8) {
    qemu_io(
        node,
        &[format!(
            "read -P {pattern} {} {}",
            range.start,
            range.end - range.start
        )],
    );
}

/// Demotes `from`, promotes `to` (no --force: it must be UpToDate).
fn switch_roles(from: &ReplicadNode, to: &ReplicadNode) {
    from.haadm(&["secondary", RESOURCE]).expect_code(0);
    wait_for_status(to, "the peer's demotion", |s| {
        s["peer"]["role"] == "Secondary"
    });
    to.haadm(&["primary", RESOURCE]).expect_code(0);
}

#[test]
fn a_forced_primary_fully_syncs_its_peer_which_then_serves_the_same_bytes() {
    let _lock = lab_lock();
    if !require_root() {
        return;
    }
    let pair = synced_pair();
    let usable = pair.ha2.status()["size"].as_u64().expect("size");
    assert_eq!(
        resynced_bytes(&pair.ha2),
        usable,
        "a full sync copies the whole volume"
    );
    let text = pair.ha1.haadm(&["status", RESOURCE]);
    assert!(
        text.stdout
            .contains("  ha2 role:Secondary\n    peer-disk:UpToDate"),
        "haadm status shows the connected peer in DRBD's layout: {}",
        text.stdout
    );
    // The Primary cannot be joined by a second one.
    let refused = pair.ha2.haadm(&["primary", RESOURCE]);
    refused.expect_code(REFUSED);
    assert!(
        refused.stderr.contains("peer ha1 is Primary"),
        "promotion refusal names the Primary peer: {}",
        refused.stderr
    );

    let written = 3 * 1024 * 1024 + 512..5 * 1024 * 1024;
    write_pattern(&pair.ha1, &written, 0x5a);
    assert_eq!(
        resynced_bytes(&pair.ha2),
        usable,
        "mirrored writes are not resynced"
    );
    switch_roles(&pair.ha1, &pair.ha2);
    assert_pattern(&pair.ha2, &written, 0x5a);
    drop(pair.lab);
}

#[test]
fn after_a_link_outage_only_the_blocks_written_meanwhile_are_resynced() {
    let _lock = lab_lock();
    if !require_root() {
        return;
    }
    let pair = synced_pair();
    let before = resynced_bytes(&pair.ha2);
    let namespace = pair.lab.host(2).namespace().to_string();
    let link = |state: &str| {
        let status = std::process::Command::new("ip")
            .args(["-n", &namespace, "link", "set", "eth0", state])
            .status()
            .expect("ip runs");
        assert!(status.success(), "ip link set eth0 {state} in {namespace}");
    };
    link("down");
    // Protocol C with the peer gone: the write still completes (after the
    // link is declared dead), and its blocks are marked out of sync.
    let written = 8 * 1024 * 1024..8 * 1024 * 1024 + 256 * 1024;
    write_pattern(&pair.ha1, &written, 0x3c);
    let alone = pair.ha1.status();
    assert_ne!(alone["peer"]["connection"], "Connected", "{alone}");
    link("up");
    wait_for_status(&pair.ha1, "the reconnect and resync", in_sync);
    wait_for_status(&pair.ha2, "the reconnect and resync", in_sync);
    let copied = resynced_bytes(&pair.ha2) - before;
    assert_eq!(
        copied,
        written.end - written.start,
        "only the 4 KiB blocks written while apart cross the link"
    );
    switch_roles(&pair.ha1, &pair.ha2);
    assert_pattern(&pair.ha2, &written, 0x3c);
}

#[test]
fn a_wrong_shared_secret_never_connects_and_the_log_says_why() {
    let _lock = lab_lock();
    if !require_root() {
        return;
    }
    let pair = pair_with_secrets("secret-one", "secret-two");
    let refused = wait_until(SYNC_TIMEOUT, POLL, || {
        pair.ha2.daemon().log().contains("failed authentication")
    });
    assert!(
        refused.is_some(),
        "ha2 logs the failed authentication:\n{}",
        pair.ha2.daemon().log()
    );
    for node in [&pair.ha1, &pair.ha2] {
        let status = node.status();
        assert_ne!(status["peer"]["connection"], "Connected", "{status}");
    }
}

#[test]
fn a_split_brain_is_reported_applies_nothing_and_discard_my_data_resolves_it() {
    let _lock = lab_lock();
    if !require_root() {
        return;
    }
    let pair = synced_pair();
    for node in [&pair.ha1, &pair.ha2] {
        node.haadm(&["disconnect", RESOURCE]).expect_code(0);
    }
    let first = 1024 * 1024..1024 * 1024 + 64 * 1024;
    let second = 2 * 1024 * 1024..2 * 1024 * 1024 + 64 * 1024;
    write_pattern(&pair.ha1, &first, 0x11);
    pair.ha1.haadm(&["secondary", RESOURCE]).expect_code(0);
    pair.ha2.haadm(&["primary", RESOURCE]).expect_code(0);
    write_pattern(&pair.ha2, &second, 0x22);
    pair.ha2.haadm(&["secondary", RESOURCE]).expect_code(0);
    for node in [&pair.ha1, &pair.ha2] {
        node.haadm(&["connect", RESOURCE]).expect_code(0);
    }
    for node in [&pair.ha1, &pair.ha2] {
        let status = wait_for_status(node, "split-brain detection", |s| {
            s["peer"]["split_brain"] == true
        });
        assert_eq!(status["peer"]["connection"], "StandAlone", "{status}");
        let text = node.haadm(&["status", RESOURCE]).stdout;
        assert!(
            text.contains("connection:StandAlone split-brain:yes"),
            "{text}"
        );
        assert!(
            node.daemon().log().contains("split brain"),
            "the log names the split brain"
        );
    }
    let bytes = |node: &ReplicadNode, range: &Range<u64>| {
        read_file_range(
            node.backing_path(),
            range.start,
            (range.end - range.start) as usize,
        )
        .expect("backing file readable")
    };
    assert!(bytes(&pair.ha1, &first).iter().all(|&b| b == 0x11));
    assert!(
        bytes(&pair.ha1, &second).iter().all(|&b| b == 0),
        "ha2's write was not applied on ha1"
    );
    assert!(bytes(&pair.ha2, &second).iter().all(|&b| b == 0x22));
    assert!(
        bytes(&pair.ha2, &first).iter().all(|&b| b == 0),
        "ha1's write was not applied on ha2"
    );

    // The operator drops ha2's changes: ha2 resyncs both nodes' changed
    // blocks from ha1 and ends identical to it.
    let before = resynced_bytes(&pair.ha2);
    pair.ha2
        .haadm(&["connect", RESOURCE, "--discard-my-data"])
        .expect_code(0);
    pair.ha1.haadm(&["connect", RESOURCE]).expect_code(0);
    wait_for_status(&pair.ha1, "the resolution's resync", in_sync);
    wait_for_status(&pair.ha2, "the resolution's resync", in_sync);
    assert_eq!(
        resynced_bytes(&pair.ha2) - before,
        (first.end - first.start) + (second.end - second.start),
        "the blocks either node changed, and only those, are resynced"
    );
    assert!(bytes(&pair.ha2, &first).iter().all(|&b| b == 0x11));
    assert!(bytes(&pair.ha2, &second).iter().all(|&b| b == 0));
}
