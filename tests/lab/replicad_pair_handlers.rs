//! Handlers and split-brain policies on a replicad pair: the resync
//! handlers run on the target around a resync, an unresolved split brain
//! calls `split-brain` once per node with DRBD's environment, and the
//! `after-sb-0pri` policies `discard-zero-changes` and
//! `discard-least-changes` resolve a split brain by themselves, leaving
//! both nodes identical.

use hapair_lab::{RESOURCE, ReplicadNode, lab_lock, require_root};

use crate::replicad_pair_kit::{
    Extras, RECORDED_HANDLERS, backing_bytes, handler_calls, handler_log, in_sync,
    make_split_brain, resynced_bytes, synced_pair, wait_for, wait_for_status,
};

const MIB: u64 = 1024 * 1024;

fn recording(net: &str) -> Extras {
    Extras {
        net: net.to_string(),
        recorded_handlers: RECORDED_HANDLERS.to_vec(),
        ..Extras::default()
    }
}

/// Waits until the node recorded `count` calls of `handler`.
fn wait_for_calls(node: &ReplicadNode, handler: &str, count: usize) {
    wait_for(
        &format!("{count} call(s) of {handler} on {}", node.name()),
        || handler_calls(node, handler).len() >= count,
        || format!("{}\n{}", handler_log(node), node.daemon().log()),
    );
}

#[test]
fn resync_handlers_run_around_the_resync_and_split_brain_calls_its_handler_once() {
    let _lock = lab_lock();
    if !require_root() {
        return;
    }
    let pair = synced_pair(&recording(""));
    // The first full sync: ha2 was its target, ha1 its source.
    wait_for_calls(&pair.ha2, "after-resync-target", 1);
    let log = handler_log(&pair.ha2);
    let before = log
        .find("HANDLER=before-resync-target")
        .expect("before ran");
    let after = log.find("HANDLER=after-resync-target").expect("after ran");
    assert!(before < after, "before-resync-target runs first:\n{log}");
    assert!(
        handler_calls(&pair.ha1, "before-resync-target").is_empty(),
        "the source is no resync target:\n{}",
        handler_log(&pair.ha1)
    );

    let events = pair.ha1.events();
    make_split_brain(&pair, &(MIB..2 * MIB), &(3 * MIB..4 * MIB));
    for node in [&pair.ha1, &pair.ha2] {
        node.haadm(&["connect", RESOURCE]).expect_code(0);
    }
    for (node, peer, peer_address) in [
        (&pair.ha1, "ha2", "10.99.0.2"),
        (&pair.ha2, "ha1", "10.99.0.1"),
    ] {
        wait_for_status(node, "split-brain detection", |s| {
            s["peer"]["split_brain"] == true
        });
        wait_for_calls(node, "split-brain", 1);
        let calls = handler_calls(node, "split-brain");
        assert_eq!(calls.len(), 1, "split-brain runs once: {calls:?}");
        for expected in [
            format!("DRBD_RESOURCE={RESOURCE}\n"),
            format!("DRBD_PEER={peer}\n"),
            format!("DRBD_PEER_ADDRESS={peer_address}\n"),
            format!("DRBD_BACKING_DEV={}\n", node.backing_path().display()),
            format!("HAPAIR_PEER={peer}\n"),
        ] {
            assert!(
                calls[0].contains(&expected),
                "{} has {expected:?}: {}",
                node.name(),
                calls[0]
            );
        }
        assert_eq!(
            handler_calls(node, "initial-split-brain").len(),
            1,
            "initial-split-brain runs whenever one is found"
        );
        assert!(
            !handler_calls(node, "disconnected").is_empty(),
            "the operator's disconnect called `disconnected`"
        );
    }
    wait_for(
        "the split brain on the events stream",
        || {
            events
                .log()
                .contains("call helper name:r0 conn-name:ha2 volume:0 helper:split-brain")
        },
        || events.log(),
    );
}

/// Splits the brain with the writes given, connects both and waits until
/// the policy's resync made them identical; returns the bytes ha1 and ha2
/// received as resync target.
fn resolved_by_policy(
    policy: &str,
    ha1_writes: std::ops::Range<u64>,
    ha2_writes: std::ops::Range<u64>,
) -> (crate::replicad_pair_kit::Pair, u64, u64) {
    let pair = synced_pair(&recording(&format!("after-sb-0pri: {policy},")));
    make_split_brain(&pair, &ha1_writes, &ha2_writes);
    let received_before = (resynced_bytes(&pair.ha1), resynced_bytes(&pair.ha2));
    for node in [&pair.ha1, &pair.ha2] {
        node.haadm(&["connect", RESOURCE]).expect_code(0);
    }
    for node in [&pair.ha1, &pair.ha2] {
        wait_for_status(node, "the policy's resync", in_sync);
        wait_for_calls(node, "initial-split-brain", 1);
        assert!(
            handler_calls(node, "split-brain").is_empty(),
            "a resolved split brain does not call for help:\n{}",
            handler_log(node)
        );
    }
    for range in [&ha1_writes, &ha2_writes] {
        assert_eq!(
            backing_bytes(&pair.ha1, range),
            backing_bytes(&pair.ha2, range),
            "both nodes end identical over {range:?}"
        );
    }
    let ha1 = resynced_bytes(&pair.ha1) - received_before.0;
    let ha2 = resynced_bytes(&pair.ha2) - received_before.1;
    (pair, ha1, ha2)
}

#[test]
fn discard_zero_changes_keeps_the_only_node_that_wrote() {
    let _lock = lab_lock();
    if !require_root() {
        return;
    }
    // ha2 was promoted while apart but wrote nothing: its (empty) changes go.
    let written = MIB..MIB + 256 * 1024;
    let (pair, _, ha2_received) = resolved_by_policy("discard-zero-changes", written.clone(), 0..0);
    assert_eq!(
        ha2_received,
        written.end - written.start,
        "ha2 became SyncTarget for exactly ha1's changes"
    );
    assert!(
        backing_bytes(&pair.ha2, &written)
            .iter()
            .all(|&b| b == 0x11)
    );
    assert_eq!(pair.ha2.status()["disk"], "UpToDate");
}

#[test]
fn discard_least_changes_keeps_the_node_that_changed_more() {
    let _lock = lab_lock();
    if !require_root() {
        return;
    }
    let small = MIB..MIB + 64 * 1024;
    let large = 4 * MIB..5 * MIB;
    let (pair, ha1_received, _) =
        resolved_by_policy("discard-least-changes", small.clone(), large.clone());
    assert_eq!(
        ha1_received,
        (small.end - small.start) + (large.end - large.start),
        "ha1 changed less and takes both nodes' changed blocks from ha2"
    );
    assert!(backing_bytes(&pair.ha1, &large).iter().all(|&b| b == 0x22));
    assert!(
        backing_bytes(&pair.ha1, &small).iter().all(|&b| b == 0),
        "ha1's own write was discarded"
    );
}
