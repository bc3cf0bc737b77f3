//! Split-brain policies with Primaries (`after-sb-1pri`, `after-sb-2pri`)
//! and the `fence-peer` handler on a replicad pair:
//!
//! - `after-sb-1pri discard-secondary`: the Secondary's changes go, the
//!   Primary stays Primary and becomes SyncSource;
//! - `after-sb-1pri call-pri-lost-after-sb`: `after-sb-0pri` would drop
//!   the Primary's changes, so the split brain stays unresolved and the
//!   Primary (only) calls `pri-lost-after-sb`;
//! - `after-sb-2pri call-pri-lost-after-sb`: both Primary; the one
//!   `after-sb-0pri` would drop calls `pri-lost-after-sb`;
//! - `fence-peer`: a Primary whose peer dies calls it with DRBD's
//!   environment and reads its exit code as DRBD does.

use std::ops::Range;

use hapair_lab::{RESOURCE, ReplicadNode, lab_lock, require_root};

use crate::replicad_pair_kit::{
    Extras, Pair, backing_bytes, handler_calls, handler_log, in_sync, make_split_brain,
    synced_pair, wait_for, wait_for_status,
};

const MIB: u64 = 1024 * 1024;
/// ha1 changes more while apart than ha2.
const HA1_WRITES: Range<u64> = MIB..2 * MIB;
const HA2_WRITES: Range<u64> = 4 * MIB..4 * MIB + 64 * 1024;

fn recording(net: &str, handlers: &[&'static str]) -> Extras {
    Extras {
        net: net.to_string(),
        recorded_handlers: handlers.to_vec(),
        ..Extras::default()
    }
}

/// Splits the brain (ha1 changing more), promotes `primaries` again and
/// connects both nodes.
fn split_then_connect(pair: &Pair, primaries: &[&ReplicadNode]) {
    make_split_brain(pair, &HA1_WRITES, &HA2_WRITES);
    for node in primaries {
        node.haadm(&["primary", RESOURCE]).expect_code(0);
    }
    for node in [&pair.ha1, &pair.ha2] {
        node.haadm(&["connect", RESOURCE]).expect_code(0);
    }
}

fn wait_for_split_brain(node: &ReplicadNode) {
    let status = wait_for_status(node, "the split brain", |s| {
        s["peer"]["split_brain"] == true && s["peer"]["connection"] == "StandAlone"
    });
    assert!(
        status["peer"]["reason"]
            .as_str()
            .is_some_and(|reason| reason.contains("call-pri-lost-after-sb")),
        "{}: the reason names the policy: {status}",
        node.name()
    );
}

/// Waits for the node's `pri-lost-after-sb` call.
fn wait_for_pri_lost(node: &ReplicadNode) {
    wait_for(
        &format!("pri-lost-after-sb on {}", node.name()),
        || !handler_calls(node, "pri-lost-after-sb").is_empty(),
        || format!("{}\n{}", handler_log(node), node.daemon().log()),
    );
    let call = &handler_calls(node, "pri-lost-after-sb")[0];
    assert!(
        call.contains(&format!("DRBD_RESOURCE={RESOURCE}\n")),
        "{call}"
    );
}

#[test]
fn after_sb_1pri_discard_secondary_keeps_the_primary() {
    let _lock = lab_lock();
    if !require_root() {
        return;
    }
    let pair = synced_pair(&recording("after-sb-1pri: discard-secondary,", &[]));
    // ha2 is Primary with fewer changes; still the Secondary ha1 loses.
    split_then_connect(&pair, &[&pair.ha2]);
    for node in [&pair.ha1, &pair.ha2] {
        wait_for_status(node, "the policy's resync", in_sync);
    }
    assert_eq!(pair.ha2.status()["role"], "Primary");
    assert!(
        backing_bytes(&pair.ha1, &HA1_WRITES)
            .iter()
            .all(|&b| b == 0),
        "the Secondary ha1's changes were discarded"
    );
    assert!(
        backing_bytes(&pair.ha1, &HA2_WRITES)
            .iter()
            .all(|&b| b == 0x22),
        "ha1 took the Primary's changes"
    );
}

#[test]
fn after_sb_1pri_call_pri_lost_after_sb_calls_it_on_the_losing_primary() {
    let _lock = lab_lock();
    if !require_root() {
        return;
    }
    let pair = synced_pair(&recording(
        "after-sb-0pri: discard-least-changes, after-sb-1pri: call-pri-lost-after-sb,",
        &["pri-lost-after-sb"],
    ));
    // ha2 is Primary and changed less: discard-least-changes drops it.
    split_then_connect(&pair, &[&pair.ha2]);
    for node in [&pair.ha1, &pair.ha2] {
        wait_for_split_brain(node);
    }
    wait_for_pri_lost(&pair.ha2);
    assert!(
        handler_calls(&pair.ha1, "pri-lost-after-sb").is_empty(),
        "the Secondary that keeps its changes calls nothing:\n{}",
        handler_log(&pair.ha1)
    );
    assert!(
        backing_bytes(&pair.ha2, &HA2_WRITES)
            .iter()
            .all(|&b| b == 0x22),
        "nothing changes the Primary's data under it"
    );
}

#[test]
fn after_sb_2pri_call_pri_lost_after_sb_calls_it_on_the_primary_0pri_drops() {
    let _lock = lab_lock();
    if !require_root() {
        return;
    }
    let pair = synced_pair(&recording(
        "after-sb-0pri: discard-least-changes, after-sb-2pri: call-pri-lost-after-sb,",
        &["pri-lost-after-sb"],
    ));
    split_then_connect(&pair, &[&pair.ha1, &pair.ha2]);
    for node in [&pair.ha1, &pair.ha2] {
        wait_for_split_brain(node);
        assert_eq!(node.status()["role"], "Primary");
    }
    wait_for_pri_lost(&pair.ha2);
    assert!(
        handler_calls(&pair.ha1, "pri-lost-after-sb").is_empty(),
        "{}",
        handler_log(&pair.ha1)
    );
}

#[test]
fn fence_peer_runs_when_the_primary_loses_its_peer() {
    let _lock = lab_lock();
    if !require_root() {
        return;
    }
    let mut pair = synced_pair(&Extras {
        net: "fencing: resource-only,".into(),
        recorded_handlers: vec!["fence-peer"],
        // DRBD's "the peer's disk is now Outdated".
        recorded_exit_code: 4,
        ..Extras::default()
    });
    assert!(handler_calls(&pair.ha1, "fence-peer").is_empty());
    pair.ha2.crash();
    wait_for(
        "fence-peer on the Primary ha1",
        || !handler_calls(&pair.ha1, "fence-peer").is_empty(),
        || format!("{}\n{}", handler_log(&pair.ha1), pair.ha1.daemon().log()),
    );
    let call = &handler_calls(&pair.ha1, "fence-peer")[0];
    for expected in [
        format!("DRBD_RESOURCE={RESOURCE}\n"),
        "DRBD_PEER=ha2\n".to_string(),
        "DRBD_PEER_ADDRESS=10.99.0.2\n".to_string(),
    ] {
        assert!(
            call.contains(&expected),
            "fence-peer gets {expected:?}: {call}"
        );
    }
    wait_for(
        "the fence-peer exit code read as DRBD reads it",
        || {
            pair.ha1
                .daemon()
                .log()
                .contains("the fence-peer handler exited with 4: the peer's disk is now Outdated")
        },
        || pair.ha1.daemon().log(),
    );
    // The Primary goes on serving alone.
    assert_eq!(pair.ha1.status()["role"], "Primary");
}
