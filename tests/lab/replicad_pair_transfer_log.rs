//! The transfer log on a replicad pair: a write the peer acknowledged but
//! whose epoch no BarrierAck confirmed durable (the client never flushed)
//! is marked out of sync when the link drops, and resynced when it
//! returns.

use std::time::Duration;

use hapair_lab::{lab_lock, program, require_root, run_bounded};

use crate::replicad_pair_kit::{
    Extras, in_sync, resynced_bytes, synced_pair, wait_for, wait_for_status,
};

#[test]
fn unflushed_mirrored_writes_are_resynced_after_a_link_loss() {
    let _lock = lab_lock();
    if !require_root() {
        return;
    }
    let pair = synced_pair(&Extras::default());
    let before = resynced_bytes(&pair.ha2);
    // nbdcopy writes the file at the start of the export and, without
    // --flush, sends no FLUSH.
    let written = 0..128 * 1024;
    let source = pair.ha1.new_path("pattern", "img");
    std::fs::write(&source, vec![0x4d; 128 * 1024]).expect("pattern file written");
    let mut command = std::process::Command::new(program("nbdcopy"));
    command.arg(&source).arg(pair.ha1.nbd_uri());
    let finished = run_bounded(command, Duration::from_secs(60));
    assert_eq!(finished.code(), Some(0), "{}", finished.all_output());
    assert_eq!(pair.ha1.status()["peer"]["connection"], "Connected");

    pair.set_ha2_link("down");
    wait_for(
        "ha1 marking the unconfirmed write",
        || {
            pair.ha1
                .daemon()
                .log()
                .contains("mirrored write(s) not confirmed durable on the peer")
        },
        || pair.ha1.daemon().log(),
    );
    pair.set_ha2_link("up");
    wait_for_status(&pair.ha1, "the reconnect and resync", in_sync);
    wait_for_status(&pair.ha2, "the reconnect and resync", in_sync);
    assert_eq!(
        resynced_bytes(&pair.ha2) - before,
        written.end - written.start,
        "the unconfirmed write, and only it, is resynced"
    );
    assert_eq!(pair.ha1.status()["role"], "Primary");
}
