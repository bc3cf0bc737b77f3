//! Property tests on the simulated LAN: after any sequence of starts,
//! stops, crashes and priority changes, once adverts flow there is exactly
//! one Master, it alone holds the addresses, and a crashed Master is
//! replaced inside the survivors' Master_Down_Interval.

use std::time::Duration;

use proptest::prelude::*;
use vrrp::{State, Version};

use crate::lan::{LATENCY, Lan, node_config};

#[derive(Debug, Clone)]
enum Event {
    Start(usize),
    Stop(usize),
    Crash(usize),
    Priority(usize, u8),
}

#[derive(Debug, Clone)]
struct Scenario {
    version: Version,
    interval_centis: u16,
    nodes: Vec<(u8, bool)>,
    events: Vec<(u64, Event)>,
}

fn scenario() -> impl Strategy<Value = Scenario> {
    let timing = prop_oneof![
        Just((Version::V2, 100u16)),
        (10u16..=200).prop_map(|c| (Version::V3, c))
    ];
    (
        timing,
        prop::collection::vec((1u8..=255, any::<bool>()), 2..=4),
    )
        .prop_flat_map(|((version, interval_centis), nodes)| {
            let n = nodes.len();
            let event = prop_oneof![
                3 => (0..n).prop_map(Event::Start),
                1 => (0..n).prop_map(Event::Stop),
                1 => (0..n).prop_map(Event::Crash),
                2 => (0..n, 1u8..=254).prop_map(|(i, p)| Event::Priority(i, p)),
            ];
            prop::collection::vec((0u64..4000, event), 1..25).prop_map(move |events| Scenario {
                version,
                interval_centis,
                nodes: nodes.clone(),
                events,
            })
        })
}

fn build(scenario: &Scenario) -> Lan {
    let configs = scenario
        .nodes
        .iter()
        .enumerate()
        .map(|(i, &(priority, preempt))| {
            let mut config = node_config(i, scenario.version, scenario.interval_centis, priority);
            config.preempt = preempt;
            config
        })
        .collect();
    Lan::new(configs)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn exactly_one_master_once_adverts_flow(scenario in scenario()) {
        let mut lan = build(&scenario);
        for (gap_ms, event) in &scenario.events {
            lan.run_for(Duration::from_millis(*gap_ms));
            match *event {
                Event::Start(i) => lan.start(i),
                Event::Stop(i) => lan.stop(i),
                Event::Crash(i) => lan.crash(i),
                Event::Priority(i, p) => lan.set_priority(i, p),
            }
        }
        // Long enough for any down timer (v2: 3 s + skew; v3: up to 3 × 2 s
        // + skew) to run out and the election to settle twice over.
        lan.run_for(Duration::from_secs(20));
        let running = lan.nodes.iter().filter(|n| n.instance.is_some()).count();
        let masters = lan.masters();
        prop_assert_eq!(masters.len(), usize::from(running > 0), "masters {:?}", masters);
        prop_assert_eq!(lan.holders(), masters);
    }

    #[test]
    fn a_crashed_master_is_replaced_inside_master_down_interval(scenario in scenario()) {
        let mut lan = build(&scenario);
        for i in 0..scenario.nodes.len() {
            lan.start(i);
        }
        lan.run_for(Duration::from_secs(20));
        let master = lan.masters()[0];
        // The backup that must win: the highest priority, then the highest address.
        let successor = (0..lan.nodes.len())
            .filter(|&i| i != master)
            .max_by_key(|&i| (lan.instance(i).unwrap().priority(), i))
            .unwrap();
        let deadline = lan.instance(successor).unwrap().master_down_interval() + LATENCY;
        let crash = lan.now;
        lan.crash(master);
        lan.run_for(Duration::from_secs(20));
        let took = lan.entered(successor, State::Master, crash).map(|t| t - crash);
        prop_assert!(took.is_some_and(|t| t <= deadline), "took {:?}, allowed {:?}", took, deadline);
        prop_assert_eq!(lan.masters(), vec![successor]);
    }
}
