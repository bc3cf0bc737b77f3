//! Online verify and invalidate on a replicad pair: blocks corrupted
//! behind replicad's back in the Secondary's backing file are found by
//! `haadm verify` (exactly those, marked out of sync, not repaired, the
//! `out-of-sync` handler called), `haadm invalidate` on the Secondary
//! repairs them by a full resync, and a second verify finds nothing;
//! `invalidate-remote` makes the peer a full SyncTarget; verify without
//! `verify-alg` is refused.

use std::fs::OpenOptions;
use std::ops::Range;
use std::os::unix::fs::FileExt;

use hapair_lab::{RESOURCE, ReplicadNode, lab_lock, require_root};
use serde_json::Value;

use crate::replicad_pair_kit::{
    Extras, backing_bytes, handler_calls, handler_log, in_sync, resynced_bytes, synced_pair,
    wait_for, wait_for_status,
};

const BLOCK: u64 = 4096;
const INVALID: i32 = 10;

fn verifying_pair() -> crate::replicad_pair_kit::Pair {
    synced_pair(&Extras {
        net: "verify-alg: crc32c,".into(),
        recorded_handlers: vec!["out-of-sync"],
        ..Extras::default()
    })
}

fn verify_found(status: &Value) -> u64 {
    status["peer"]["verify_out_of_sync"]
        .as_u64()
        .expect("status has peer.verify_out_of_sync")
}

/// Runs `haadm verify` on `node` and waits until both nodes are back to
/// Established; returns the bytes the verify found out of sync.
fn verify(node: &ReplicadNode, peer: &ReplicadNode) -> u64 {
    let finished_before = node
        .daemon()
        .log()
        .matches("online verify finished")
        .count();
    node.haadm(&["verify", RESOURCE]).expect_code(0);
    wait_for(
        "the online verify",
        || {
            node.daemon()
                .log()
                .matches("online verify finished")
                .count()
                > finished_before
        },
        || node.daemon().log(),
    );
    wait_for_status(peer, "the end of VerifyT", in_sync);
    let found = verify_found(&wait_for_status(node, "the end of VerifyS", in_sync));
    assert_eq!(
        verify_found(&peer.status()),
        found,
        "the verify target counts the same out-of-sync bytes"
    );
    found
}

#[test]
fn verify_finds_exactly_the_corrupted_blocks_and_invalidate_repairs_them() {
    let _lock = lab_lock();
    if !require_root() {
        return;
    }
    let pair = verifying_pair();
    assert_eq!(verify(&pair.ha1, &pair.ha2), 0, "a fresh sync is in sync");

    let corrupted: Vec<Range<u64>> = [5 << 20, (5 << 20) + 2 * BLOCK, (37 << 20) + BLOCK]
        .into_iter()
        .map(|start| start..start + BLOCK)
        .collect();
    let backing = OpenOptions::new()
        .write(true)
        .open(pair.ha2.backing_path())
        .expect("ha2's backing file opens");
    for range in &corrupted {
        backing
            .write_all_at(&[0xee; BLOCK as usize], range.start)
            .expect("corrupting ha2's backing file");
    }
    drop(backing);

    assert_eq!(
        verify(&pair.ha1, &pair.ha2),
        3 * BLOCK,
        "the three corrupted blocks, and only they, differ"
    );
    let log = pair.ha1.daemon().log();
    for range in &corrupted {
        assert!(
            log.contains(&format!("online verify: {range:?} differs")),
            "{range:?} is reported:\n{log}"
        );
    }
    let dump = pair.ha1.dump_md();
    assert_eq!(
        dump.dirty.iter().map(|r| r.end - r.start).sum::<u64>(),
        3 * BLOCK,
        "only the differing blocks are marked out of sync: {}",
        dump.text
    );
    assert!(corrupted.iter().all(|range| dump.dirty_covers(range)));
    assert!(
        backing_bytes(&pair.ha2, &corrupted[0])
            .iter()
            .all(|&b| b == 0xee),
        "verify does not repair"
    );
    wait_for(
        "the out-of-sync handler",
        || handler_calls(&pair.ha1, "out-of-sync").len() == 1,
        || handler_log(&pair.ha1),
    );
    let status = pair.ha1.haadm(&["status", RESOURCE, "--json"]).stdout;
    assert!(status.contains("\"verify_out_of_sync\": 12288"), "{status}");

    // The Secondary discards its data and takes all of it from ha1.
    let before = resynced_bytes(&pair.ha2);
    pair.ha2.haadm(&["invalidate", RESOURCE]).expect_code(0);
    wait_for(
        "the invalidate's full resync",
        || resynced_bytes(&pair.ha2) > before && in_sync(&pair.ha2.status()),
        || pair.ha2.daemon().log(),
    );
    wait_for_status(&pair.ha1, "the invalidate's full resync", in_sync);
    let usable = pair.ha2.status()["size"].as_u64().expect("size");
    assert_eq!(resynced_bytes(&pair.ha2) - before, usable, "a full resync");
    assert!(
        backing_bytes(&pair.ha2, &corrupted[0])
            .iter()
            .all(|&b| b == 0),
        "the corrupted block is repaired"
    );
    assert_eq!(verify(&pair.ha1, &pair.ha2), 0, "nothing differs any more");
    assert_eq!(
        handler_calls(&pair.ha1, "out-of-sync").len(),
        1,
        "a clean verify does not call out-of-sync"
    );
}

#[test]
fn invalidate_remote_makes_the_peer_a_full_sync_target() {
    let _lock = lab_lock();
    if !require_root() {
        return;
    }
    let pair = verifying_pair();
    let before = resynced_bytes(&pair.ha2);
    pair.ha1
        .haadm(&["invalidate-remote", RESOURCE])
        .expect_code(0);
    wait_for(
        "the full resync to ha2",
        || resynced_bytes(&pair.ha2) > before && in_sync(&pair.ha2.status()),
        || pair.ha2.daemon().log(),
    );
    wait_for_status(&pair.ha1, "the full resync to ha2", in_sync);
    let usable = pair.ha2.status()["size"].as_u64().expect("size");
    assert_eq!(resynced_bytes(&pair.ha2) - before, usable);
    assert_eq!(pair.ha1.status()["role"], "Primary", "ha1 stays Primary");
}

#[test]
fn verify_without_verify_alg_is_refused_with_the_reason() {
    let _lock = lab_lock();
    if !require_root() {
        return;
    }
    let mut node = ReplicadNode::new(8 << 20);
    node.start();
    node.haadm(&["up", RESOURCE]).expect_code(0);
    let refused = node.haadm(&["verify", RESOURCE]);
    refused.expect_code(INVALID);
    assert!(
        refused.stderr.contains("net.verify-alg is not set"),
        "{}",
        refused.stderr
    );
}
