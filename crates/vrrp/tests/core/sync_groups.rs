//! Sync groups on the simulated LAN: host A runs nodes 0 (VRID 51) and 1
//! (VRID 52) in group A, host B runs nodes 2 and 3 in group B.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use vrrp::{Config, State, Version};

use crate::lan::{Lan, node_config};

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s)
}

fn on_vrid_52(mut config: Config) -> Config {
    config.vrid = 52;
    config.addresses = vec![IpAddr::V4(Ipv4Addr::new(10, 0, 0, 200))];
    config
}

/// Host A at priority `a` for both routers, host B at `b`; plus extra
/// ungrouped nodes. Groups are 0 (A) and 1 (B).
fn two_hosts(a: u8, b: u8, extra: Vec<Config>) -> Lan {
    let mut configs = vec![
        node_config(0, Version::V2, 100, a),
        on_vrid_52(node_config(1, Version::V2, 100, a)),
        node_config(2, Version::V2, 100, b),
        on_vrid_52(node_config(3, Version::V2, 100, b)),
    ];
    configs.extend(extra);
    let mut lan = Lan::new(configs);
    assert_eq!(lan.add_group("A", vec![0, 1]), 0);
    assert_eq!(lan.add_group("B", vec![2, 3]), 1);
    for node in 0..4 {
        lan.start(node);
    }
    lan.run_for(secs(10.0));
    lan
}

#[test]
fn members_become_master_together() {
    let lan = two_hosts(150, 100, Vec::new());
    assert_eq!(lan.masters(), [0, 1]);
    assert_eq!(lan.holders(), [0, 1]);
    assert_eq!(lan.group_states(0), [State::Backup, State::Master]);
    assert_eq!(lan.group_states(1), [State::Backup]);
}

#[test]
fn one_member_faulty_takes_the_group_to_fault_and_back() {
    let mut lan = two_hosts(150, 100, Vec::new());
    let faulted = lan.now;
    lan.set_fault(0, true);
    assert_eq!(
        lan.instance(1).unwrap().state(),
        State::Fault,
        "follows at once"
    );
    assert!(!lan.instance(1).unwrap().own_fault());
    lan.run_for(secs(3.0));
    // Both sent priority 0: host B's members took over after their skew.
    assert_eq!(lan.masters(), [2, 3]);
    assert_eq!(lan.holders(), [2, 3]);
    for node in [2, 3] {
        assert!(lan.entered(node, State::Master, faulted).unwrap() - faulted <= secs(1.0));
    }
    assert_eq!(lan.group_states(0).last(), Some(&State::Fault));
    assert_eq!(lan.group_states(1).last(), Some(&State::Master));

    lan.set_fault(0, false);
    assert_eq!(lan.instance(0).unwrap().state(), State::Backup);
    assert_eq!(lan.instance(1).unwrap().state(), State::Backup);
    lan.run_for(secs(8.0));
    assert_eq!(lan.masters(), [0, 1], "host A preempts with both members");
    assert_eq!(lan.holders(), [0, 1]);
    assert_eq!(
        lan.group_states(0),
        [
            State::Backup,
            State::Master,
            State::Fault,
            State::Backup,
            State::Master
        ]
    );
    assert_eq!(lan.group_states(1).last(), Some(&State::Backup));
}

#[test]
fn a_member_leaving_master_takes_the_others_with_it() {
    // Node 4: an ungrouped router on VRID 52 that outranks host A, started
    // late.
    let mut lan = two_hosts(
        150,
        100,
        vec![on_vrid_52(node_config(4, Version::V2, 100, 250))],
    );
    assert_eq!(lan.masters(), [0, 1]);
    let joined = lan.now;
    lan.start(4);
    lan.run_for(secs(10.0));
    let left = lan
        .entered(1, State::Backup, joined)
        .expect("node 1 yields to node 4");
    assert_eq!(
        lan.entered(0, State::Backup, joined),
        Some(left),
        "node 0 follows node 1 at the same moment"
    );
    assert!(
        lan.holders().iter().all(|&node| node > 1),
        "{:?}",
        lan.holders()
    );
    assert_eq!(lan.group_states(0).last(), Some(&State::Backup));
}
