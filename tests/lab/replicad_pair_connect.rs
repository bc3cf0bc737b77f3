//! How fast a replicad pair finds each other, and finds a dead peer gone:
//!
//! - The listening node (ha2, the name that sorts last) knocks on the
//!   dialing node's address whenever it starts waiting, so the pair
//!   connects at once whichever node comes up second or reconnects, not at
//!   the dialer's next `connect-int` (set to a minute here).
//! - A promotion refused because the peer is Primary pings the peer at
//!   once: when that peer is gone (frozen here), the connection ends within
//!   `ping-timeout` and the promote hook's next retry passes, long before
//!   the next `ping-int` (a minute here).
//! - A forced promotion racing with the connect (the knock makes the pair
//!   connect at once after `up`) never leaves the two nodes on different
//!   decisions: the one whose state changed while deciding connects again.
//!   The race is hit only now and then, so the test runs several rounds.

use std::time::{Duration, Instant};

use hapair_lab::{RESOURCE, lab_lock, require_root};
use nix::sys::signal::Signal;

use crate::replicad_pair_kit::{Extras, fresh_pair, in_sync, synced_pair, wait_for_status};

/// Fresh pairs promoted while they connect.
const RACE_ROUNDS: usize = 8;

/// The dialer's pause between dials; waiting for it would take this long.
const SLOW_DIAL: &str = "connect-int: 60,";
/// Well under a minute: a knock, a dial and a handshake on a loaded
/// 2-core machine.
const CONNECT_BOUND: Duration = Duration::from_secs(20);

fn wait_connected(node: &hapair_lab::ReplicadNode) {
    wait_for_status(node, "the connection", |status| {
        status["peer"]["connection"] == "Connected"
    });
}

#[test]
fn the_listening_node_knocks_so_the_pair_connects_without_waiting_for_a_dial() {
    let _lock = lab_lock();
    if !require_root() {
        return;
    }
    // ha1 comes up first: its first dial finds nobody listening, and its
    // next one is a minute away. ha2 comes up right after.
    let started = Instant::now();
    let pair = fresh_pair(&Extras {
        net: SLOW_DIAL.into(),
        ..Extras::default()
    });
    wait_connected(&pair.ha2);
    let took = started.elapsed();
    assert!(
        took < CONNECT_BOUND,
        "ha2 came up second and the pair connected after {took:?}, not at once:\n{}",
        pair.ha1.daemon().log()
    );

    // The listening node disconnects and connects again: the dialer is in
    // its minute-long pause after losing the peer.
    pair.ha2.haadm(&["disconnect", RESOURCE]).expect_code(0);
    wait_for_status(&pair.ha1, "ha1 losing its peer", |status| {
        status["peer"]["connection"] == "Connecting"
    });
    let reconnecting = Instant::now();
    pair.ha2.haadm(&["connect", RESOURCE]).expect_code(0);
    wait_connected(&pair.ha1);
    let took = reconnecting.elapsed();
    assert!(
        took < CONNECT_BOUND,
        "`haadm connect` on ha2 took {took:?} to connect:\n{}",
        pair.ha1.daemon().log()
    );
}

#[test]
fn a_refused_promotion_finds_a_dead_primary_gone_within_ping_timeout() {
    let _lock = lab_lock();
    if !require_root() {
        return;
    }
    // A minute between keep-alives; 0.5 s for a PingAck.
    let pair = synced_pair(&Extras {
        net: "ping-int: 60, ping-timeout: 5,".into(),
        ..Extras::default()
    });
    wait_for_status(&pair.ha2, "ha2 in sync", in_sync);
    // ha1 stops answering, as a host that died: its TCP stays open (the
    // kernel still acknowledges), only the daemon is silent.
    pair.ha1.daemon().kill(Signal::SIGSTOP);
    let started = Instant::now();
    let first = pair.ha2.haadm(&["primary", RESOURCE]);
    let mut promoted = first.code() == Some(0);
    while !promoted && started.elapsed() < CONNECT_BOUND {
        std::thread::sleep(Duration::from_millis(100));
        promoted = pair.ha2.haadm(&["primary", RESOURCE]).code() == Some(0);
    }
    let took = started.elapsed();
    pair.ha1.daemon().kill(Signal::SIGCONT);
    assert!(
        first.code() != Some(0) && first.all_output().contains("is Primary"),
        "the first promotion is refused while ha1 still looks Primary: {}",
        first.all_output()
    );
    assert!(
        promoted,
        "ha2 was not promoted within {CONNECT_BOUND:?} of ha1 falling silent:\n{}",
        pair.ha2.daemon().log()
    );
    assert!(
        pair.ha2
            .daemon()
            .log()
            .contains("PingAck did not arrive within ping-timeout"),
        "ha2 gave up on ha1 for its missing PingAck:\n{}",
        pair.ha2.daemon().log()
    );
    println!("ha2 promoted {took:?} after ha1 fell silent");
}

#[test]
fn a_forced_promotion_while_connecting_still_ends_in_a_full_sync() {
    let _lock = lab_lock();
    if !require_root() {
        return;
    }
    for round in 1..=RACE_ROUNDS {
        // ha2's `up` knocks; ha1 dials and the two decide while ha1 is
        // promoted over its just-created data.
        let pair = fresh_pair(&Extras::default());
        pair.ha1
            .haadm(&["primary", RESOURCE, "--force"])
            .expect_code(0);
        for node in [&pair.ha1, &pair.ha2] {
            wait_for_status(node, &format!("round {round}: the full sync"), in_sync);
        }
    }
}
