//! Packets captured from the real keepalived (v2.2.7, Debian) in the lab:
//! the IPv4 packets as tshark showed them, Ethernet header removed. The
//! core must accept them with the matching configuration, and encode
//! byte-identical adverts itself.

use std::net::IpAddr;
use std::time::Instant;

use vrrp::{Authentication, Instance, Received, Version};

use crate::lan::node_config;

/// VRRPv2, VRID 51, priority 150, 1 s, PASS "secret1", 10.99.0.100,
/// from 10.99.0.1 to 224.0.0.18, TOS 0xc0, TTL 255.
const KEEPALIVED_V2_PASS: [u8; 40] = [
    0x45, 0xc0, 0x00, 0x28, 0x00, 0x01, 0x00, 0x00, 0xff, 0x70, 0xd0, 0x2e, 0x0a, 0x63, 0x00, 0x01,
    0xe0, 0x00, 0x00, 0x12, 0x21, 0x33, 0x96, 0x01, 0x01, 0x01, 0xcf, 0xb6, 0x0a, 0x63, 0x00, 0x64,
    0x73, 0x65, 0x63, 0x72, 0x65, 0x74, 0x31, 0x00,
];

/// VRRPv3, VRID 52, priority 120, 0.1 s, 10.99.0.101, checksum with the
/// IPv4 pseudo-header (keepalived's default).
const KEEPALIVED_V3_IPV4: [u8; 32] = [
    0x45, 0xc0, 0x00, 0x20, 0x00, 0x01, 0x00, 0x00, 0xff, 0x70, 0xd0, 0x36, 0x0a, 0x63, 0x00, 0x01,
    0xe0, 0x00, 0x00, 0x12, 0x31, 0x34, 0x78, 0x01, 0x00, 0x0a, 0x61, 0x05, 0x0a, 0x63, 0x00, 0x65,
];

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

/// A local instance configured like the sender accepts the packet.
fn accepts(packet: &[u8], config: vrrp::Config) {
    let received = Received::from_ipv4_packet(packet).unwrap();
    assert_eq!(received.hop_limit, 255);
    let mut instance = Instance::new(config);
    instance.start(Instant::now());
    assert_eq!(instance.handle_packet(Instant::now(), &received), Ok(()));
}

#[test]
fn keepalived_v2_password_advert_is_accepted_and_reproduced() {
    let mut config = node_config(1, Version::V2, 100, 100);
    config.vrid = 51;
    config.auth = Authentication::password("secret1").unwrap();
    config.addresses = vec![ip("10.99.0.100")];
    accepts(&KEEPALIVED_V2_PASS, config.clone());

    let mut theirs = config;
    theirs.priority = 150;
    theirs.primary_address = ip("10.99.0.1");
    let instance = Instance::new(theirs);
    let advert = vrrp::Advertisement::decode(&KEEPALIVED_V2_PASS[20..], false).unwrap();
    assert_eq!(
        instance.encode(&advert, ip("224.0.0.18")),
        KEEPALIVED_V2_PASS[20..]
    );
}

#[test]
fn keepalived_v3_ipv4_advert_is_accepted_and_reproduced() {
    let mut config = node_config(1, Version::V3, 10, 100);
    config.vrid = 52;
    config.addresses = vec![ip("10.99.0.101")];
    accepts(&KEEPALIVED_V3_IPV4, config.clone());

    // Without the pseudo-header, the same packet fails the checksum.
    let mut rfc9568 = config.clone();
    rfc9568.v3_ipv4_pseudo_header = false;
    let received = Received::from_ipv4_packet(&KEEPALIVED_V3_IPV4).unwrap();
    let mut instance = Instance::new(rfc9568);
    instance.start(Instant::now());
    assert_eq!(
        instance.handle_packet(Instant::now(), &received),
        Err(vrrp::DropReason::Checksum)
    );

    let mut theirs = config;
    theirs.priority = 120;
    theirs.primary_address = ip("10.99.0.1");
    let instance = Instance::new(theirs);
    let advert = vrrp::Advertisement::decode(&KEEPALIVED_V3_IPV4[20..], false).unwrap();
    assert_eq!(
        instance.encode(&advert, ip("224.0.0.18")),
        KEEPALIVED_V3_IPV4[20..]
    );
}
