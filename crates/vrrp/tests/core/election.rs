//! Scripted elections on the simulated LAN: each test follows one rule of
//! RFC 5798 / RFC 3768 (or keepalived's behaviour where the RFCs leave room).

use std::time::{Duration, Instant};

use vrrp::{Action, Advertisement, Authentication, Instance, Received, State, Version};

use crate::lan::{LATENCY, Lan, node_config};

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s)
}

#[test]
fn higher_priority_wins_and_alone_holds_the_addresses() {
    let mut lan = Lan::new(vec![
        node_config(0, Version::V2, 100, 100),
        node_config(1, Version::V2, 100, 150),
    ]);
    let t0 = lan.now;
    lan.start(0);
    lan.start(1);
    lan.run_for(secs(10.0));
    assert_eq!(lan.masters(), vec![1]);
    assert_eq!(lan.holders(), vec![1]);
    // Master_Down_Interval of priority 150 (v2, 1 s): 3 + 106/256 s.
    let became = lan.entered(1, State::Master, t0).unwrap() - t0;
    assert_eq!(became, secs(3.0) + Duration::from_secs(1) * 106 / 256);
    assert_eq!(
        lan.instance(0).unwrap().master_address(),
        Some(lan.nodes[1].config.primary_address)
    );
}

#[test]
fn crashed_master_is_replaced_within_master_down_interval() {
    for (version, interval) in [(Version::V2, 100), (Version::V3, 10)] {
        let mut lan = Lan::new(vec![
            node_config(0, version, interval, 100),
            node_config(1, version, interval, 150),
        ]);
        lan.start(0);
        lan.start(1);
        lan.run_for(secs(10.0));
        let crash = lan.now;
        lan.crash(1);
        let down = lan.instance(0).unwrap().master_down_interval();
        lan.run_for(secs(10.0));
        let took = lan.entered(0, State::Master, crash).unwrap() - crash;
        assert!(
            took <= down,
            "{version:?}: took {took:?}, Master_Down_Interval {down:?}"
        );
        // It waited for the adverts to stop: at least two intervals passed.
        assert!(took > Duration::from_millis(u64::from(interval) * 20));
        assert_eq!(lan.holders(), vec![0]);
    }
}

#[test]
fn stopped_master_is_replaced_after_skew_time() {
    let mut lan = Lan::new(vec![
        node_config(0, Version::V2, 100, 100),
        node_config(1, Version::V2, 100, 150),
    ]);
    lan.start(0);
    lan.start(1);
    lan.run_for(secs(10.0));
    let stop = lan.now;
    lan.stop(1);
    lan.run_for(secs(5.0));
    let took = lan.entered(0, State::Master, stop).unwrap() - stop;
    // Skew of priority 100: 156/256 s, counted from the priority-0 advert.
    assert_eq!(took, Duration::from_secs(1) * 156 / 256 + LATENCY);
}

#[test]
fn preempting_node_takes_over_and_nopreempt_node_does_not() {
    for preempt in [true, false] {
        let mut high = node_config(1, Version::V2, 100, 200);
        high.preempt = preempt;
        let mut lan = Lan::new(vec![node_config(0, Version::V2, 100, 100), high]);
        lan.start(0);
        lan.run_for(secs(10.0));
        assert_eq!(lan.masters(), vec![0]);
        lan.start(1);
        lan.run_for(secs(10.0));
        let expected = if preempt { vec![1] } else { vec![0] };
        assert_eq!(lan.masters(), expected, "preempt {preempt}");
        assert_eq!(lan.holders(), expected, "preempt {preempt}");
    }
}

#[test]
fn preempt_delay_postpones_the_takeover() {
    let mut high = node_config(1, Version::V2, 100, 200);
    high.preempt_delay = secs(20.0);
    let mut lan = Lan::new(vec![node_config(0, Version::V2, 100, 100), high]);
    lan.start(0);
    lan.run_for(secs(10.0));
    let joined = lan.now;
    lan.start(1);
    lan.run_for(secs(15.0));
    assert_eq!(lan.masters(), vec![0], "still inside the preempt delay");
    lan.run_for(secs(15.0));
    assert_eq!(lan.masters(), vec![1]);
    let took = lan.entered(1, State::Master, joined).unwrap() - joined;
    // The delay starts at the first lower-priority advert heard (within 1 s
    // of joining) and the down timer then runs out.
    let down = lan.instance(1).unwrap().master_down_interval();
    assert!(
        took >= secs(20.0) && took <= secs(21.0) + down,
        "took {took:?}"
    );
}

#[test]
fn owner_with_priority_255_becomes_master_at_once() {
    let mut lan = Lan::new(vec![
        node_config(0, Version::V2, 100, 100),
        node_config(1, Version::V2, 100, 255),
    ]);
    lan.start(0);
    lan.run_for(secs(10.0));
    let start = lan.now;
    lan.start(1);
    assert_eq!(lan.entered(1, State::Master, start), Some(start));
    lan.run_for(LATENCY * 2);
    assert_eq!(lan.masters(), vec![1]);
    assert_eq!(lan.holders(), vec![1]);
}

#[test]
fn equal_priority_is_broken_by_the_higher_primary_address() {
    let mut lan = Lan::new(vec![
        node_config(0, Version::V3, 100, 100),
        node_config(1, Version::V3, 100, 100),
        node_config(2, Version::V3, 100, 100),
    ]);
    for i in 0..3 {
        lan.start(i);
    }
    lan.run_for(secs(10.0));
    assert_eq!(lan.masters(), vec![2], "10.0.0.3 is the highest address");
}

#[test]
fn master_hearing_a_lower_priority_advertises_at_once() {
    let config = node_config(0, Version::V3, 100, 100);
    let mut master = Instance::new(config.clone());
    let t0 = Instant::now();
    master.start(t0);
    let down = t0 + master.master_down_interval();
    master.handle_timeout(down);
    assert_eq!(master.state(), State::Master);
    while master.poll_action().is_some() {}

    // Half-way to its next advert, a lower-priority advert arrives.
    let heard = down + Duration::from_millis(500);
    let peer = node_config(1, Version::V3, 100, 50);
    let advert = Advertisement {
        version: Version::V3,
        vrid: 51,
        priority: 50,
        interval_centis: 100,
        addresses: peer.addresses.clone(),
        auth: Authentication::None,
    };
    let bytes = advert.encode(peer.checksum_for(peer.primary_address, config.destinations()[0]));
    master
        .handle_packet(
            heard,
            &Received {
                source: peer.primary_address,
                destination: config.destinations()[0],
                hop_limit: 255,
                message: &bytes,
            },
        )
        .unwrap();
    match master.poll_action() {
        Some(Action::Send(sent)) => assert_eq!(sent.priority, 100),
        other => panic!("expected an immediate advert, got {other:?}"),
    }
    assert_eq!(master.state(), State::Master);
    assert_eq!(master.poll_timeout(), Some(heard + Duration::from_secs(1)));
}

#[test]
fn v3_backup_learns_the_masters_interval() {
    // The Backup is configured for 1 s, the Master advertises every 0.2 s:
    // the Backup's Master_Down_Interval follows the Master's.
    let mut lan = Lan::new(vec![
        node_config(0, Version::V3, 100, 100),
        node_config(1, Version::V3, 20, 200),
    ]);
    lan.start(0);
    lan.start(1);
    lan.run_for(secs(10.0));
    let backup = lan.instance(0).unwrap();
    assert_eq!(backup.state(), State::Backup);
    // 3 × 0.2 s + (256 − 100) × 0.2 s / 256.
    assert_eq!(
        backup.master_down_interval(),
        Duration::from_millis(600) + Duration::from_millis(200) * 156 / 256
    );
}

#[test]
fn lowered_master_priority_lets_a_preempting_backup_take_over() {
    let mut lan = Lan::new(vec![
        node_config(0, Version::V2, 100, 150),
        node_config(1, Version::V2, 100, 100),
    ]);
    lan.start(0);
    lan.start(1);
    lan.run_for(secs(10.0));
    assert_eq!(lan.masters(), vec![0]);
    lan.set_priority(0, 50);
    lan.run_for(secs(10.0));
    assert_eq!(lan.masters(), vec![1]);
    assert_eq!(lan.holders(), vec![1]);
}
