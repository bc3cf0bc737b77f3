//! Property tests of the codec and the receive path: decoding never
//! panics, whatever the bytes, and every valid advert round-trips.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Instant;

use proptest::prelude::*;
use vrrp::{Advertisement, Authentication, Checksum, Instance, Received, Version};

use crate::lan::node_config;

fn advert_strategy() -> impl Strategy<Value = (Advertisement, bool)> {
    let v2 = (
        any::<u8>(),
        any::<u8>(),
        1u16..=255,
        prop::collection::vec(any::<u32>(), 0..20),
        prop::option::of(any::<[u8; 8]>()),
    )
        .prop_map(|(vrid, priority, secs, addrs, pass)| {
            (
                Advertisement {
                    version: Version::V2,
                    vrid,
                    priority,
                    interval_centis: secs * 100,
                    addresses: addrs
                        .into_iter()
                        .map(|a| IpAddr::V4(Ipv4Addr::from(a)))
                        .collect(),
                    auth: pass.map_or(Authentication::None, Authentication::Password),
                },
                false,
            )
        });
    let v3 = (
        any::<u8>(),
        any::<u8>(),
        0u16..=0x0fff,
        any::<bool>(),
        prop::collection::vec(any::<u128>(), 0..20),
    )
        .prop_map(|(vrid, priority, interval, ipv6, addrs)| {
            let addresses = addrs
                .into_iter()
                .map(|a| {
                    if ipv6 {
                        IpAddr::V6(Ipv6Addr::from(a))
                    } else {
                        IpAddr::V4(Ipv4Addr::from(a as u32))
                    }
                })
                .collect();
            (
                Advertisement {
                    version: Version::V3,
                    vrid,
                    priority,
                    interval_centis: interval,
                    addresses,
                    auth: Authentication::None,
                },
                ipv6,
            )
        });
    prop_oneof![v2, v3]
}

proptest! {
    #[test]
    fn decode_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..600), ipv6 in any::<bool>()) {
        let _ = Advertisement::decode(&bytes, ipv6);
    }

    #[test]
    fn receive_path_never_panics_and_counts_every_drop(
        bytes in prop::collection::vec(any::<u8>(), 0..100),
        hop_limit in any::<u8>(),
    ) {
        let mut instance = Instance::new(node_config(0, Version::V3, 100, 100));
        let now = Instant::now();
        instance.start(now);
        let verdict = instance.handle_packet(now, &Received {
            source: "10.0.0.2".parse().unwrap(),
            destination: "224.0.0.18".parse().unwrap(),
            hop_limit,
            message: &bytes,
        });
        let counters = instance.counters();
        let dropped: u64 = counters.drops.values().sum();
        prop_assert_eq!(dropped + counters.adverts_received, 1);
        prop_assert_eq!(verdict.is_ok(), counters.adverts_received == 1);
    }

    #[test]
    fn encode_then_decode_round_trips((advert, ipv6) in advert_strategy()) {
        let checksum = if ipv6 {
            Checksum::PseudoHeader { source: "fe80::1".parse().unwrap(), destination: "ff02::12".parse().unwrap() }
        } else {
            Checksum::MessageOnly
        };
        let bytes = advert.encode(checksum);
        prop_assert!(vrrp::packet::verify_checksum(&bytes, checksum));
        prop_assert_eq!(Advertisement::decode(&bytes, ipv6), Ok(advert));
    }

    #[test]
    fn any_single_bit_flip_is_caught(
        (advert, _) in advert_strategy(),
        bit in any::<prop::sample::Index>(),
    ) {
        let checksum = Checksum::MessageOnly;
        let mut bytes = advert.encode(checksum);
        let bit = bit.index(bytes.len() * 8);
        bytes[bit / 8] ^= 1 << (bit % 8);
        prop_assert!(!vrrp::packet::verify_checksum(&bytes, checksum));
    }
}

/// An IPv4 header of 24 bytes (one 4-byte option) with Ethernet padding
/// after the total length: the message is cut at the total length.
#[test]
fn ipv4_header_with_options_and_padding_is_stripped() {
    let mut packet = vec![
        0x46,
        0xc0,
        0,
        24 + 12,
        0,
        0,
        0,
        0,
        255,
        112,
        0,
        0,
        10,
        0,
        0,
        2,
        224,
        0,
        0,
        18,
        1,
        1,
        1,
        1,
    ];
    let message = [0x31, 51, 100, 1, 0, 100, 0, 0, 10, 0, 0, 100];
    packet.extend_from_slice(&message);
    packet.extend_from_slice(&[0; 6]);
    let received = Received::from_ipv4_packet(&packet).unwrap();
    assert_eq!(received.source, "10.0.0.2".parse::<IpAddr>().unwrap());
    assert_eq!(
        received.destination,
        "224.0.0.18".parse::<IpAddr>().unwrap()
    );
    assert_eq!(received.hop_limit, 255);
    assert_eq!(received.message, &message);
    // A total length past what arrived, or a header length under 20, is refused.
    packet[3] = 200;
    assert!(Received::from_ipv4_packet(&packet).is_none());
    packet[3] = 36;
    packet[0] = 0x44;
    assert!(Received::from_ipv4_packet(&packet).is_none());
}

proptest! {
    #[test]
    fn ipv4_header_parsing_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..120)) {
        if let Some(received) = Received::from_ipv4_packet(&bytes) {
            prop_assert!(received.message.len() <= bytes.len());
        }
    }
}
