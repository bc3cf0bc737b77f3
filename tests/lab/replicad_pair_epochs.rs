//! Write epochs across a reconnect on a replicad pair: writes mirrored in
//! an epoch that no Barrier closed before the link dropped (the client
//! never flushed) are not counted into the first Barrier of the next
//! session, so the peer's count matches and the link stays up.

use std::time::Duration;

use hapair_lab::{lab_lock, program, require_root, run_bounded};

use crate::replicad_pair_kit::{
    Extras, backing_bytes, in_sync, synced_pair, wait_for, wait_for_status, write_pattern,
};

const KIB: u64 = 1024;

#[test]
fn the_first_barrier_after_a_reconnect_counts_only_its_sessions_writes() {
    let _lock = lab_lock();
    if !require_root() {
        return;
    }
    let pair = synced_pair(&Extras::default());
    // nbdcopy without --flush sends no FLUSH: its writes' epoch stays open.
    let source = pair.ha1.new_path("pattern", "img");
    std::fs::write(&source, vec![0x5a; 128 * KIB as usize]).expect("pattern file written");
    let mut command = std::process::Command::new(program("nbdcopy"));
    command.arg(&source).arg(pair.ha1.nbd_uri());
    let finished = run_bounded(command, Duration::from_secs(60));
    assert_eq!(finished.code(), Some(0), "{}", finished.all_output());

    pair.set_ha2_link("down");
    wait_for_status(&pair.ha1, "ha1 losing ha2", |s| {
        s["peer"]["connection"] != "Connected"
    });
    pair.set_ha2_link("up");
    wait_for_status(&pair.ha1, "the reconnect and resync", in_sync);
    wait_for_status(&pair.ha2, "the reconnect and resync", in_sync);
    let losses_before = pair
        .ha2
        .daemon()
        .log()
        .matches("connection to ha1 lost")
        .count();

    // qemu-io flushes when it closes the export: a Barrier that counts the
    // writes of this session only.
    let written = 1024 * KIB..1024 * KIB + 64 * KIB;
    write_pattern(&pair.ha1, &written, 0x6e);
    wait_for(
        "the write reaching ha2",
        || {
            backing_bytes(&pair.ha2, &written)
                .iter()
                .all(|&b| b == 0x6e)
        },
        || pair.ha2.daemon().log(),
    );
    // A BarrierAck round trip later the link must still be the same one.
    std::thread::sleep(Duration::from_secs(1));
    let log = pair.ha2.daemon().log();
    assert!(
        !log.contains("protocol error")
            && log.matches("connection to ha1 lost").count() == losses_before,
        "ha2 kept the link through the first Barrier after the reconnect:\n{log}"
    );
    assert!(in_sync(&pair.ha1.status()), "{}", pair.ha1.status());
}
