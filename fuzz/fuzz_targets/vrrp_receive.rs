//! Fuzzes the whole VRRP receive path: IPv4 header parsing, decoding and
//! every receive check, on an instance of each version. Nothing may panic,
//! and every packet must be either accepted or counted as a drop.

#![no_main]

use std::net::IpAddr;
use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use vrrp::{Authentication, Config, Instance, Received, Version};

fn instance(version: Version, primary: &str) -> Instance {
    Instance::new(Config {
        version,
        vrid: 51,
        priority: 100,
        advert_interval_centis: 100,
        preempt: true,
        preempt_delay: Duration::ZERO,
        addresses: vec!["10.0.0.100".parse().unwrap()],
        primary_address: primary.parse().unwrap(),
        auth: Authentication::password("secret").unwrap(),
        unicast_peers: Vec::new(),
        unicast_skip_hop_limit_check: false,
        v3_ipv4_pseudo_header: true,
        announce_delay: Duration::from_secs(5),
        announce_refresh: None,
    })
}

fuzz_target!(|data: &[u8]| {
    let now = Instant::now();
    let mut v2 = instance(Version::V2, "10.0.0.1");
    let mut v3 = instance(Version::V3, "fe80::1");
    v2.start(now);
    v3.start(now);
    if let Some(received) = Received::from_ipv4_packet(data) {
        let _ = v2.handle_packet(now, &received);
    }
    let source: IpAddr = "fe80::2".parse().unwrap();
    let _ = v3.handle_packet(
        now,
        &Received {
            source,
            destination: "ff02::12".parse().unwrap(),
            hop_limit: data.first().copied().unwrap_or(255),
            message: data,
        },
    );
    for instance in [&v2, &v3] {
        let counters = instance.counters();
        let dropped: u64 = counters.drops.values().sum();
        assert!(dropped + counters.adverts_received <= 1);
    }
});
