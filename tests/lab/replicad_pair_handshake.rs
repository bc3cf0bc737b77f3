//! The listening node of a replicad pair takes its peer while connections
//! that send nothing are pending: their handshakes run side by side with
//! the peer's, each with its own timeout (10 s), instead of one after the
//! other in front of it.

use std::time::{Duration, Instant};

use hapair_lab::{Proc, RESOURCE, lab_lock, require_root};

use crate::replicad_pair_kit::{Extras, in_sync, synced_pair, wait_for, wait_for_status};

/// Connections from ha1's host to ha2's peer port that send nothing.
const SILENT_CLIENTS: usize = 3;
/// Three silent handshakes one after the other would hold the peer for
/// 30 s; side by side the peer connects within a dial interval (2 s) and
/// a handshake.
const CONNECT_BOUND: Duration = Duration::from_secs(15);

fn connections_accepted(log: &str) -> usize {
    log.matches("r0: connection from 10.99.0.1").count()
}

#[test]
fn silent_connections_do_not_hold_up_the_peer() {
    let _lock = lab_lock();
    if !require_root() {
        return;
    }
    let pair = synced_pair(&Extras::default());
    pair.ha1.haadm(&["disconnect", RESOURCE]).expect_code(0);
    wait_for_status(&pair.ha2, "ha2 waiting for its peer", |status| {
        status["peer"]["connection"] == "Connecting"
    });
    let accepted_before = connections_accepted(&pair.ha2.daemon().log());
    let silent: Vec<Proc> = (0..SILENT_CLIENTS)
        .map(|_| {
            pair.lab().host(1).spawn(
                &["bash", "-c", "exec 3<>/dev/tcp/10.99.0.2/7789 && sleep 60"],
                &[],
            )
        })
        .collect();
    wait_for(
        "ha2 accepting the silent connections",
        || connections_accepted(&pair.ha2.daemon().log()) >= accepted_before + SILENT_CLIENTS,
        || pair.ha2.daemon().log(),
    );
    let started = Instant::now();
    pair.ha1.haadm(&["connect", RESOURCE]).expect_code(0);
    for node in [&pair.ha1, &pair.ha2] {
        wait_for_status(node, "the reconnect", in_sync);
    }
    let took = started.elapsed();
    assert!(
        took < CONNECT_BOUND,
        "the peer connected after {took:?}, behind the silent connections:\n{}",
        pair.ha2.daemon().log()
    );
    drop(silent);
}
