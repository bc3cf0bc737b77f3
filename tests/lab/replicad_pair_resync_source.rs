//! A resync of an UpToDate node that missed writes (disconnected while the
//! Primary wrote), as its source sees it: the source stays SyncSource and
//! sees its peer Inconsistent until the target has copied everything, and
//! the Primary writing over the ranges being resynced neither stalls its
//! writes nor the resync.

use std::time::Duration;

use hapair_lab::{RESOURCE, lab_lock, require_root};

use crate::replicad_pair_kit::{
    Extras, backing_bytes, in_sync, qemu_io, synced_pair, wait_for_status, write_pattern,
};

const MIB: u64 = 1024 * 1024;
const VOLUME: u64 = 16 * MIB;
/// What ha1 writes while ha2 is away: 12 MiB, 3 s of resync at 4 MiB/s.
const MISSED: std::ops::Range<u64> = 2 * MIB..14 * MIB;
const REWRITE: u64 = 64 * 1024;

#[test]
fn the_source_of_a_resync_waits_for_the_target_and_keeps_serving_writes() {
    let _lock = lab_lock();
    if !require_root() {
        return;
    }
    let pair = synced_pair(&Extras {
        disk: "resync-rate: 512K, c-max-rate: 4M,".into(),
        backing_size: Some(VOLUME),
        ..Extras::default()
    });
    pair.ha2.haadm(&["disconnect", RESOURCE]).expect_code(0);
    wait_for_status(&pair.ha1, "ha1 losing ha2", |s| {
        s["peer"]["connection"] != "Connected"
    });
    write_pattern(&pair.ha1, &MISSED, 0x3c);
    pair.ha2.haadm(&["connect", RESOURCE]).expect_code(0);
    wait_for_status(&pair.ha2, "ha2 resyncing", |s| {
        s["peer"]["replication"] == "SyncTarget"
    });

    // Long enough for every State the target sends on connecting to arrive.
    std::thread::sleep(Duration::from_secs(1));
    let source = pair.ha1.status();
    let target = pair.ha2.status();
    assert_eq!(
        target["peer"]["replication"], "SyncTarget",
        "the 12 MiB resync at 4 MiB/s still runs (ha2: {target})"
    );
    assert!(
        source["peer"]["replication"] == "SyncSource" && source["peer"]["disk"] == "Inconsistent",
        "while ha2 is SyncTarget, ha1 sees a SyncSource link to an Inconsistent peer; \
         ha1: {source}\nha2: {target}"
    );

    // The Primary writes over the ranges the target asks for: a resync
    // read waiting behind such a write must not stop the acks it waits for.
    let rewrites: Vec<String> = (0..3)
        .flat_map(|pass| {
            (MISSED.start..MISSED.end)
                .step_by((REWRITE * 4) as usize)
                .map(move |offset| format!("write -P {} {offset} {REWRITE}", 0x40 + pass))
        })
        .collect();
    qemu_io(&pair.ha1, &rewrites);

    let source = wait_for_status(&pair.ha1, "the end of the resync on ha1", in_sync);
    let target = wait_for_status(&pair.ha2, "the end of the resync on ha2", in_sync);
    assert!(
        source["disk"] == "UpToDate" && target["disk"] == "UpToDate",
        "ha1: {source}\nha2: {target}"
    );
    assert!(
        backing_bytes(&pair.ha1, &MISSED) == backing_bytes(&pair.ha2, &MISSED),
        "both nodes hold the same data after the resync"
    );
}
