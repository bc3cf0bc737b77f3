//! Each receive check of RFC 5798 §7.1 / RFC 3768 §7.1 drops what it must,
//! counts it under its reason, and lets a good packet through.

use std::net::IpAddr;
use std::time::Instant;

use vrrp::{
    Advertisement, Authentication, Checksum, Config, DropReason, Instance, Received, Version,
};

use crate::lan::node_config;

const PEER: &str = "10.0.0.2";
const GROUP: &str = "224.0.0.18";

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

fn advert_from(config: &Config) -> Advertisement {
    Advertisement {
        version: config.version,
        vrid: config.vrid,
        priority: 100,
        interval_centis: config.advert_interval_centis,
        addresses: config.addresses.clone(),
        auth: config.auth,
    }
}

fn encode(config: &Config, advert: &Advertisement, destination: &str) -> Vec<u8> {
    advert.encode(config.checksum_for(ip(PEER), ip(destination)))
}

/// Feeds one packet to a fresh started instance and returns the verdict
/// and the instance's drop counters.
fn deliver(
    config: &Config,
    bytes: &[u8],
    destination: &str,
    hop_limit: u8,
) -> Result<(), DropReason> {
    let mut instance = Instance::new(config.clone());
    instance.start(Instant::now());
    let verdict = instance.handle_packet(
        Instant::now(),
        &Received {
            source: ip(PEER),
            destination: ip(destination),
            hop_limit,
            message: bytes,
        },
    );
    match verdict {
        Ok(()) => assert_eq!(instance.counters().adverts_received, 1),
        Err(reason) => {
            assert_eq!(instance.counters().drops.get(&reason), Some(&1));
            assert_eq!(instance.counters().adverts_received, 0);
        }
    }
    verdict
}

fn v2_config() -> Config {
    let mut config = node_config(0, Version::V2, 100, 150);
    config.auth = Authentication::password("secret1").unwrap();
    config
}

#[test]
fn a_good_packet_passes() {
    for config in [v2_config(), node_config(0, Version::V3, 10, 150)] {
        let bytes = encode(&config, &advert_from(&config), GROUP);
        assert_eq!(deliver(&config, &bytes, GROUP, 255), Ok(()));
    }
}

#[test]
fn hop_limit_must_be_255_except_for_unicast_when_allowed() {
    let config = v2_config();
    let bytes = encode(&config, &advert_from(&config), GROUP);
    assert_eq!(
        deliver(&config, &bytes, GROUP, 254),
        Err(DropReason::HopLimit)
    );

    let mut unicast = v2_config();
    unicast.unicast_peers = vec![ip(PEER)];
    let bytes = encode(&unicast, &advert_from(&unicast), "10.0.0.1");
    assert_eq!(
        deliver(&unicast, &bytes, "10.0.0.1", 64),
        Err(DropReason::HopLimit)
    );
    unicast.unicast_skip_hop_limit_check = true;
    assert_eq!(deliver(&unicast, &bytes, "10.0.0.1", 64), Ok(()));
}

#[test]
fn version_type_and_length_are_checked() {
    let config = v2_config();
    let v3 = node_config(0, Version::V3, 100, 150);
    let bytes = encode(&v3, &advert_from(&v3), GROUP);
    assert_eq!(
        deliver(&config, &bytes, GROUP, 255),
        Err(DropReason::Version)
    );

    let mut bytes = encode(&config, &advert_from(&config), GROUP);
    bytes[0] = 0x22;
    assert_eq!(deliver(&config, &bytes, GROUP, 255), Err(DropReason::Type));

    let bytes = encode(&config, &advert_from(&config), GROUP);
    assert_eq!(
        deliver(&config, &bytes[..bytes.len() - 1], GROUP, 255),
        Err(DropReason::Length)
    );
    let mut wrong_count = bytes.clone();
    wrong_count[3] = 2;
    assert_eq!(
        deliver(&config, &wrong_count, GROUP, 255),
        Err(DropReason::Length)
    );
}

#[test]
fn a_bad_checksum_is_dropped() {
    let config = node_config(0, Version::V3, 100, 150);
    let mut bytes = encode(&config, &advert_from(&config), GROUP);
    bytes[2] ^= 1;
    assert_eq!(
        deliver(&config, &bytes, GROUP, 255),
        Err(DropReason::Checksum)
    );

    // Pseudo-header mismatch: the sender left it out, we expect it.
    let bytes = advert_from(&config).encode(Checksum::MessageOnly);
    assert_eq!(
        deliver(&config, &bytes, GROUP, 255),
        Err(DropReason::Checksum)
    );
    let mut as_v2 = config.clone();
    as_v2.v3_ipv4_pseudo_header = false;
    assert_eq!(deliver(&as_v2, &bytes, GROUP, 255), Ok(()));
}

#[test]
fn another_vrid_is_dropped() {
    let config = v2_config();
    let mut advert = advert_from(&config);
    advert.vrid = 52;
    let bytes = encode(&config, &advert, GROUP);
    assert_eq!(deliver(&config, &bytes, GROUP, 255), Err(DropReason::Vrid));
}

#[test]
fn v2_authentication_and_interval_must_match() {
    let config = v2_config();
    let mut advert = advert_from(&config);
    advert.auth = Authentication::password("wrong").unwrap();
    assert_eq!(
        deliver(&config, &encode(&config, &advert, GROUP), GROUP, 255),
        Err(DropReason::AuthPassword)
    );
    advert.auth = Authentication::None;
    assert_eq!(
        deliver(&config, &encode(&config, &advert, GROUP), GROUP, 255),
        Err(DropReason::AuthType)
    );
    let mut advert = advert_from(&config);
    advert.interval_centis = 200;
    assert_eq!(
        deliver(&config, &encode(&config, &advert, GROUP), GROUP, 255),
        Err(DropReason::Interval)
    );
}

#[test]
fn v3_interval_difference_is_accepted() {
    let config = node_config(0, Version::V3, 100, 150);
    let mut advert = advert_from(&config);
    advert.interval_centis = 25;
    assert_eq!(
        deliver(&config, &encode(&config, &advert, GROUP), GROUP, 255),
        Ok(())
    );
}

#[test]
fn unicast_accepts_only_its_peers_and_no_multicast() {
    let mut config = v2_config();
    config.unicast_peers = vec![ip("10.0.0.9")];
    let bytes = encode(&config, &advert_from(&config), "10.0.0.1");
    assert_eq!(
        deliver(&config, &bytes, "10.0.0.1", 255),
        Err(DropReason::UnknownPeer)
    );
    let bytes = encode(&config, &advert_from(&config), GROUP);
    assert_eq!(
        deliver(&config, &bytes, GROUP, 255),
        Err(DropReason::DeliveryMode)
    );
    // And a multicast instance refuses unicast.
    let multicast = v2_config();
    let bytes = encode(&multicast, &advert_from(&multicast), "10.0.0.1");
    assert_eq!(
        deliver(&multicast, &bytes, "10.0.0.1", 255),
        Err(DropReason::DeliveryMode)
    );
}

#[test]
fn ipv6_packets_for_an_ipv4_instance_are_dropped() {
    let config = node_config(0, Version::V3, 100, 150);
    let mut instance = Instance::new(config.clone());
    instance.start(Instant::now());
    let verdict = instance.handle_packet(
        Instant::now(),
        &Received {
            source: ip("fe80::2"),
            destination: ip("ff02::12"),
            hop_limit: 255,
            message: &[0x31, 51, 100, 0, 0, 100, 0, 0],
        },
    );
    assert_eq!(verdict, Err(DropReason::AddressFamily));
}
