//! Health tracking as the state machine sees it: priority changes that take
//! effect at once, and keepalived's FAULT state, on the simulated LAN.

use std::time::Duration;

use vrrp::{Action, State, Version};

use crate::lan::{Lan, node_config};

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s)
}

/// Node 0 at `first`, node 1 at `second`, VRRPv2 with 1 s adverts, both
/// started and settled.
fn pair(first: u8, second: u8) -> Lan {
    let mut lan = Lan::new(vec![
        node_config(0, Version::V2, 100, first),
        node_config(1, Version::V2, 100, second),
    ]);
    lan.start(0);
    lan.start(1);
    lan.run_for(secs(10.0));
    lan
}

#[test]
fn a_backup_down_timer_follows_a_priority_change_at_once() {
    let mut lan = Lan::new(vec![node_config(0, Version::V2, 100, 100)]);
    let t0 = lan.now;
    lan.start(0);
    // v2, 1 s adverts: 3 s + (256 − 100)/256 s.
    let skew = |priority: u32| Duration::from_secs(1) * (256 - priority) / 256;
    assert_eq!(
        lan.instance(0).unwrap().poll_timeout(),
        Some(t0 + secs(3.0) + skew(100))
    );
    lan.run_for(secs(1.0));
    lan.set_priority(0, 200);
    assert_eq!(lan.instance(0).unwrap().priority(), 200);
    assert_eq!(
        lan.instance(0).unwrap().poll_timeout(),
        Some(t0 + secs(3.0) + skew(200)),
        "recomputed from when it became Backup, with the new skew"
    );
}

#[test]
fn a_master_lowered_below_its_backup_keeps_advertising_until_preempted() {
    let mut lan = pair(150, 100);
    assert_eq!(lan.masters(), [0]);
    let lowered = lan.now;
    lan.set_priority(0, 50);
    // It says so at once, with the new priority.
    lan.run_for(secs(0.5));
    assert_eq!(
        lan.masters(),
        [0],
        "still Master until the Backup takes over"
    );
    lan.run_for(secs(5.0));
    assert_eq!(lan.masters(), [1]);
    assert_eq!(lan.holders(), [1]);
    let took = lan.entered(1, State::Master, lowered).unwrap() - lowered;
    let bound = lan.instance(1).unwrap().master_down_interval();
    assert!(
        took <= bound,
        "took {took:?}, Master_Down_Interval {bound:?}"
    );
    assert_eq!(
        lan.entered(0, State::Backup, lowered).unwrap() - lowered,
        took + crate::lan::LATENCY
    );
}

#[test]
fn a_backup_raised_above_its_master_preempts_and_gives_back_when_lowered() {
    let mut lan = pair(150, 100);
    let raised = lan.now;
    lan.set_priority(1, 200);
    lan.run_for(secs(6.0));
    assert_eq!(lan.masters(), [1]);
    assert_eq!(lan.holders(), [1]);
    let took = lan.entered(1, State::Master, raised).unwrap() - raised;
    assert!(
        took <= lan.instance(1).unwrap().master_down_interval(),
        "{took:?}"
    );

    let lowered = lan.now;
    lan.set_priority(1, 100);
    lan.run_for(secs(6.0));
    assert_eq!(lan.masters(), [0]);
    assert_eq!(lan.holders(), [0]);
    assert!(lan.entered(0, State::Master, lowered).is_some());
}

#[test]
fn a_lowered_backup_does_not_take_over_from_a_live_master() {
    // The Backup outranked the Master and was ignoring its adverts, waiting
    // to preempt; lowered again, it must count those adverts.
    let mut lan = pair(150, 100);
    lan.set_priority(1, 200);
    lan.run_for(secs(2.5));
    assert_eq!(lan.masters(), [0]);
    let lowered = lan.now;
    lan.set_priority(1, 100);
    lan.run_for(secs(10.0));
    assert_eq!(lan.masters(), [0]);
    assert_eq!(lan.entered(1, State::Master, lowered), None);
}

#[test]
fn fault_releases_the_addresses_and_the_peer_takes_over_after_its_skew() {
    let mut lan = pair(150, 100);
    let faulted = lan.now;
    lan.set_fault(0, true);
    assert_eq!(lan.instance(0).unwrap().state(), State::Fault);
    assert_eq!(lan.holders(), Vec::<usize>::new(), "released at once");
    lan.run_for(secs(3.0));
    // The priority-0 advert: the Backup waits only its skew.
    let took = lan.entered(1, State::Master, faulted).unwrap() - faulted;
    assert!(took <= secs(1.0), "{took:?}");
    assert_eq!(lan.holders(), [1]);
    // FAULT neither listens nor advertises.
    let sent = lan.instance(0).unwrap().counters().adverts_sent;
    lan.run_for(secs(10.0));
    assert_eq!(lan.instance(0).unwrap().state(), State::Fault);
    assert_eq!(lan.instance(0).unwrap().counters().adverts_sent, sent);

    // Recovered: Backup first, then it preempts the lower-priority Master.
    let recovered = lan.now;
    lan.set_fault(0, false);
    assert_eq!(lan.instance(0).unwrap().state(), State::Backup);
    lan.run_for(secs(6.0));
    assert_eq!(lan.masters(), [0]);
    assert_eq!(lan.holders(), [0]);
    assert!(lan.entered(0, State::Master, recovered).is_some());
}

#[test]
fn an_instance_faulty_at_start_goes_straight_to_fault() {
    let mut instance = vrrp::Instance::new(node_config(0, Version::V2, 100, 255));
    let now = std::time::Instant::now();
    instance.set_fault(now, true);
    instance.start(now);
    assert_eq!(instance.state(), State::Fault);
    assert_eq!(
        instance.poll_action(),
        Some(Action::StateChanged {
            from: State::Initialize,
            to: State::Fault
        })
    );
    assert_eq!(instance.poll_action(), None, "nothing sent, nothing added");
    assert_eq!(instance.poll_timeout(), None);
    // The owner leaves FAULT straight for Master.
    instance.set_fault(now, false);
    assert_eq!(instance.state(), State::Master);
}
