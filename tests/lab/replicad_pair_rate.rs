//! Resync rate control on a replicad pair: a full sync with `c-max-rate`
//! 4 MiB/s takes as long as that rate says and never runs ahead of it,
//! `haadm status` shows that rate and the time left, and an application
//! write during the rate-limited resync completes promptly and reaches the
//! peer.

use std::time::{Duration, Instant};

use hapair_lab::{RESOURCE, lab_lock, require_root};

use crate::replicad_pair_kit::{
    BACKING_SIZE, Extras, backing_bytes, fresh_pair, in_sync, resynced_bytes, wait_for_status,
    write_pattern,
};

const MIB: u64 = 1024 * 1024;
const CEILING: u64 = 4 * MIB;
/// What a token bucket of a tenth of a second plus the requests in flight
/// (8 of 1 MiB at most) may add to the rate's share.
const SLACK: u64 = 9 * MIB;

#[test]
fn a_rate_limited_resync_keeps_its_pace_and_lets_writes_through() {
    let _lock = lab_lock();
    if !require_root() {
        return;
    }
    let pair = fresh_pair(&Extras {
        disk: "resync-rate: 512K, c-max-rate: 4M,".into(),
        ..Extras::default()
    });
    pair.ha1
        .haadm(&["primary", RESOURCE, "--force"])
        .expect_code(0);
    let started = Instant::now();
    wait_for_status(&pair.ha2, "the start of the full sync", |s| {
        s["peer"]["replication"] == "SyncTarget"
    });
    std::thread::sleep(Duration::from_secs(2));
    let copied = resynced_bytes(&pair.ha2);
    let allowed = started.elapsed().as_secs_f64() * CEILING as f64 + SLACK as f64;
    assert!(
        copied > 0 && (copied as f64) <= allowed,
        "{copied} bytes resynced in {:?}; the ceiling allows {allowed}",
        started.elapsed()
    );
    let syncing = pair.ha2.status();
    let rate = syncing["peer"]["resync_rate"].as_u64().unwrap_or(0);
    let fastest_average = allowed / started.elapsed().as_secs_f64();
    assert!(
        rate >= MIB && rate as f64 <= fastest_average,
        "the status shows the resync's rate, at most {fastest_average} bytes/s: {syncing}"
    );
    let eta = syncing["peer"]["eta"].as_u64().unwrap_or(0);
    let left = BACKING_SIZE - copied;
    assert!(
        eta >= left / (2 * CEILING) && eta <= left / MIB + 2,
        "the status shows the time left at that rate ({left} bytes left): {syncing}"
    );
    let text = pair.ha2.haadm(&["status", RESOURCE]);
    assert!(
        text.stdout.contains(" rate:") && text.stdout.contains(" eta:0:"),
        "{}",
        text.stdout
    );

    let written = 40 * MIB..40 * MIB + 64 * 1024;
    let writing = Instant::now();
    write_pattern(&pair.ha1, &written, 0x6b);
    let took = writing.elapsed();
    assert!(
        took < Duration::from_secs(3),
        "a write during the resync took {took:?}"
    );
    assert_eq!(
        pair.ha2.status()["peer"]["replication"],
        "SyncTarget",
        "the resync was still running during the write"
    );
    assert!(
        backing_bytes(&pair.ha2, &written)
            .iter()
            .all(|&b| b == 0x6b),
        "the write was mirrored to the SyncTarget"
    );

    wait_for_status(&pair.ha2, "the end of the full sync", in_sync);
    let whole = started.elapsed();
    let fastest = Duration::from_secs_f64((BACKING_SIZE - SLACK) as f64 / CEILING as f64);
    assert!(
        whole >= fastest,
        "a {BACKING_SIZE}-byte full sync at 4 MiB/s took only {whole:?}"
    );
    assert!(
        backing_bytes(&pair.ha2, &written)
            .iter()
            .all(|&b| b == 0x6b),
        "the resync did not overwrite the newer write"
    );
}
