//! `haadm events` on a replicad pair during a resync and a verify: DRBD 9's
//! events2 `change peer-device` lines for each replication state
//! (SyncSource on the source, SyncTarget on the target, VerifyS/VerifyT,
//! Established at the end), with the resync's progress (`done:NN.NN`) as
//! changes of their own while it runs.

use hapair_lab::{Proc, RESOURCE, ReplicadNode, lab_lock, require_root};

use crate::replicad_pair_kit::{Extras, fresh_pair, in_sync, wait_for, wait_for_status};

/// Small, and slow to sync (`c-max-rate` 4 MiB/s: several seconds), so
/// that progress shows.
const BACKING_SIZE: u64 = 24 << 20;

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

/// The `change peer-device` lines the node's events printed so far.
fn peer_device_changes(events: &Proc) -> Vec<String> {
    events
        .log()
        .lines()
        .filter(|line| line.starts_with("change peer-device name:r0 "))
        .map(str::to_owned)
        .collect()
}

fn done_of(line: &str) -> Option<f64> {
    line.split(' ')
        .find_map(|field| field.strip_prefix("done:"))
        .map(|done| done.parse().expect("done:NN.NN"))
}

/// Waits until the node printed a peer-device change containing `wanted`.
fn wait_for_change(events: &Proc, node: &ReplicadNode, wanted: &str) {
    wait_for(
        &format!("a peer-device change with {wanted:?} on {}", node.name()),
        || {
            peer_device_changes(events)
                .iter()
                .any(|line| line.contains(wanted))
        },
        || events.log(),
    );
}

#[test]
fn events_show_resync_states_with_progress_and_verify() {
    let _lock = lab_lock();
    if !require_root() {
        return;
    }
    let pair = fresh_pair(&Extras {
        disk: "resync-rate: 512K, c-max-rate: 4M,".into(),
        net: "verify-alg: crc32c,".into(),
        backing_size: Some(BACKING_SIZE),
        ..Extras::default()
    });
    let (ha1_events, ha2_events) = (watch(&pair.ha1), watch(&pair.ha2));
    pair.ha1
        .haadm(&["primary", RESOURCE, "--force"])
        .expect_code(0);
    for node in [&pair.ha1, &pair.ha2] {
        wait_for_status(node, "the full sync", in_sync);
    }
    let source = "change peer-device name:r0 peer-node-id:1 conn-name:ha2 volume:0 \
                  replication:SyncSource peer-disk:Inconsistent";
    let target = "change peer-device name:r0 peer-node-id:0 conn-name:ha1 volume:0 \
                  replication:SyncTarget peer-disk:UpToDate";
    let established = "replication:Established peer-disk:UpToDate";
    wait_for_change(&ha1_events, &pair.ha1, established);
    wait_for_change(&ha2_events, &pair.ha2, established);
    for (events, starts, node) in [
        (&ha1_events, source, &pair.ha1),
        (&ha2_events, target, &pair.ha2),
    ] {
        let lines = peer_device_changes(events);
        let first = lines
            .iter()
            .position(|line| line.starts_with(starts))
            .unwrap_or_else(|| panic!("{}: no {starts:?} line in {lines:#?}", node.name()));
        let end = first
            + lines[first..]
                .iter()
                .position(|line| line.contains(established))
                .unwrap_or_else(|| {
                    panic!(
                        "{}: no Established after the resync: {lines:#?}",
                        node.name()
                    )
                });
        let progress: Vec<f64> = lines[first..end]
            .iter()
            .filter(|line| line.starts_with(starts))
            .filter_map(|line| done_of(line))
            .collect();
        assert!(
            progress.len() >= 3,
            "{}: a resync of several seconds shows its progress step by step: {lines:#?}",
            node.name()
        );
        assert!(
            progress.windows(2).all(|pair| pair[0] <= pair[1]) && progress[0] < 100.0,
            "{}: progress only grows: {progress:?}",
            node.name()
        );
        assert_eq!(
            done_of(&lines[end]),
            None,
            "no progress once Established: {}",
            lines[end]
        );
    }

    pair.ha1.haadm(&["verify", RESOURCE]).expect_code(0);
    wait_for_change(&ha1_events, &pair.ha1, "replication:VerifyS");
    wait_for_change(&ha2_events, &pair.ha2, "replication:VerifyT");
    for (events, node) in [(&ha1_events, &pair.ha1), (&ha2_events, &pair.ha2)] {
        wait_for(
            &format!("Established after the verify on {}", node.name()),
            || {
                peer_device_changes(events)
                    .last()
                    .is_some_and(|line| line.contains(established))
            },
            || events.log(),
        );
    }
}
