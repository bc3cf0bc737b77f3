//! A network partition between the two storage hosts while the client
//! still reaches both: the BACKUP stops hearing the MASTER, takes the
//! virtual IP and promotes its copy, so two Primaries accept writes — a
//! split brain. When the path returns, VRRP settles on one MASTER, which
//! alone holds the virtual IP and serves; the split brain is reported by
//! `haadm status`, `haadm check` and the split-brain handler, and nothing
//! resolves it (the policy is `disconnect`) until the operator discards
//! one side's changes. Then the pair resyncs and nothing the surviving
//! side stored is lost.

use std::time::Duration;

use hapair_lab::storage_pair::{
    SETTLE_TIMEOUT, StorageOptions, StoragePair, check_stored, project_hooks, upload_files,
    wait_for,
};
use hapair_lab::{RESOURCE, lab_lock, require_root};

/// Long enough for several reconnect attempts (connect-int 2 s): a split
/// brain that stays unresolved that long is left to the operator.
const UNRESOLVED_FOR: Duration = Duration::from_secs(8);

#[test]
fn a_partition_makes_a_split_brain_that_is_reported_and_left_to_the_operator() {
    let _lock = lab_lock();
    if !require_root() {
        return;
    }
    let mut pair = StoragePair::new(StorageOptions {
        recorded_handlers: vec!["split-brain"],
        ..StorageOptions::new(project_hooks())
    });
    pair.start_service();
    let before = upload_files(&pair, "before", 10);

    pair.partition(true);
    wait_for(
        "h2 to promote itself during the partition",
        SETTLE_TIMEOUT,
        || {
            let h2 = pair.host(2);
            h2.role().as_deref() == Some("Primary") && h2.is_mounted()
        },
    );
    assert_eq!(
        pair.host(1).role().as_deref(),
        Some("Primary"),
        "h1 never heard that h2 took over: two Primaries\n{}",
        pair.describe()
    );
    assert!(
        pair.host(1).holds_vip() && pair.host(2).holds_vip(),
        "both MASTERs hold the virtual IP during the partition\n{}",
        pair.describe()
    );
    // The client reaches each side in turn, and each stores what it gets.
    pair.pin_client_to(1);
    let on_h1 = upload_files(&pair, "h1-side", 5);
    pair.pin_client_to(2);
    let on_h2 = upload_files(&pair, "h2-side", 5);
    pair.unpin_client();

    pair.partition(false);
    // VRRP settles: h1's priority (150) wins, h2 goes back to BACKUP and
    // its demote hook unmounts and demotes.
    wait_for(
        "VRRP to settle on h1 after the partition",
        SETTLE_TIMEOUT,
        || {
            pair.host(1).holds_vip()
                && !pair.host(2).holds_vip()
                && pair.host(2).vrrp_state().as_deref() == Some("BACKUP")
                && pair.host(2).role().as_deref() == Some("Secondary")
        },
    );
    let serving = pair.wait_until_serving("h1 serving after the partition");
    assert_eq!(serving, 1, "h1 serves after the partition");
    assert!(
        !pair.host(2).holds_vip(),
        "exactly one host holds the virtual IP once VRRP settled"
    );

    // Detected and reported, on both nodes.
    wait_for(
        "both nodes to report the split brain",
        SETTLE_TIMEOUT,
        || {
            (1..=2).all(|index| {
                pair.host(index)
                    .status()
                    .is_some_and(|status| status["peer"]["split_brain"] == true)
            })
        },
    );
    for index in 1..=2 {
        let host = pair.host(index);
        let status = host.node.haadm(&["status", RESOURCE]);
        status.expect_code(0);
        assert!(
            status.stdout.to_lowercase().contains("split"),
            "{}: haadm status names the split brain:\n{}",
            host.name(),
            status.stdout
        );
        let check = host.check();
        assert_eq!(
            check.code(),
            Some(2),
            "{}: haadm check is CRITICAL on a split brain:\n{}",
            host.name(),
            check.all_output()
        );
        assert!(
            check.stdout.to_lowercase().contains("split"),
            "{}: haadm check names the split brain: {}",
            host.name(),
            check.stdout
        );
        assert!(
            !host.handler_calls("split-brain").is_empty(),
            "{}: the split-brain handler ran",
            host.name()
        );
    }
    std::thread::sleep(UNRESOLVED_FOR);
    for index in 1..=2 {
        let status = pair.host(index).status().expect("replicad answers");
        assert!(
            status["peer"]["connection"] == "StandAlone" && status["peer"]["split_brain"] == true,
            "h{index}: a split brain under the disconnect policy waits for the operator: {status}"
        );
    }
    let mut served = before.clone();
    served.extend(on_h1.iter().cloned());
    let damaged = check_stored(&pair, &served);
    assert!(damaged.is_empty(), "h1 serves what it stored: {damaged:?}");
    let missing = check_stored(&pair, &on_h2);
    assert_eq!(
        missing.len(),
        on_h2.len(),
        "what h2 stored during the partition is on h2's disk alone: {missing:?}"
    );

    // The operator keeps h1's data: h2 discards its changes and resyncs.
    pair.host(2)
        .node
        .haadm(&["connect", "--discard-my-data", RESOURCE])
        .expect_code(0);
    pair.host(1)
        .node
        .haadm(&["connect", RESOURCE])
        .expect_code(0);
    pair.wait_until_in_sync();
    let after = upload_files(&pair, "after", 5);
    served.extend(after);
    let damaged = check_stored(&pair, &served);
    assert!(damaged.is_empty(), "after the resolution: {damaged:?}");
    let check = pair.host(1).check();
    assert_eq!(
        check.code(),
        Some(0),
        "haadm check is OK again: {}",
        check.all_output()
    );
    pair.stop_service();
    pair.assert_backing_stores_identical();
    assert_eq!(
        pair.verify(),
        0,
        "the online verify finds nothing out of sync"
    );
}
