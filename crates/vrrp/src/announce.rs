//! Gratuitous ARP and unsolicited neighbour advertisement frames.
//!
//! When a router becomes MASTER it tells the LAN that its virtual addresses
//! now live at its MAC address (RFC 5798 §6.4.1, RFC 3768 §6.4.1): one
//! gratuitous ARP per IPv4 address, one unsolicited Neighbor Advertisement per
//! IPv6 address. Both are built here as whole Ethernet frames, ready for an
//! `AF_PACKET` socket (`netsys::PacketSocket`); nothing here does I/O.

use std::net::{Ipv4Addr, Ipv6Addr};

/// An Ethernet (IEEE 802) hardware address.
pub type MacAddr = [u8; 6];

const BROADCAST_MAC: MacAddr = [0xff; 6];
/// RFC 2464 §7: multicast to ff02::1 goes to 33:33 + the last 32 bits.
const ALL_NODES_MAC: MacAddr = [0x33, 0x33, 0x00, 0x00, 0x00, 0x01];
const ALL_NODES_IPV6: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);

const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_ARP: u16 = 0x0806;
const ETHERTYPE_IPV6: u16 = 0x86dd;

const ETHERNET_HEADER_LEN: usize = 14;
const ARP_HARDWARE_ETHERNET: u16 = 1;
const ARP_OPCODE_REQUEST: u16 = 1;
const ARP_MESSAGE_LEN: usize = 28;

const IPV6_HEADER_LEN: usize = 40;
const NEXT_HEADER_ICMPV6: u8 = 58;
/// RFC 4861 §7.1.2: a receiver drops any NA whose hop limit is not 255.
const NEIGHBOR_DISCOVERY_HOP_LIMIT: u8 = 255;
const ICMPV6_NEIGHBOR_ADVERTISEMENT: u8 = 136;
/// RFC 4861 §4.4: R = 0x80, S = 0x40, O = 0x20 in the first flags byte.
const NA_FLAG_OVERRIDE: u8 = 0x20;
const ND_OPTION_TARGET_LINK_LAYER_ADDRESS: u8 = 2;
/// Option length in units of 8 octets: type, length and a 6-byte MAC.
const ND_OPTION_TARGET_LINK_LAYER_ADDRESS_UNITS: u8 = 1;
/// Neighbor Advertisement (24 bytes) plus one Target Link-Layer option (8).
const NEIGHBOR_ADVERTISEMENT_LEN: usize = 32;
const ICMPV6_CHECKSUM_OFFSET: usize = 2;

/// A broadcast Ethernet frame carrying a gratuitous ARP that maps `ip` to
/// `src_mac`, as sent by a VRRP master for each virtual IPv4 address.
///
/// It is an ARP *request* (as keepalived and the Linux kernel send it, and as
/// RFC 5227 §3 recommends for announcements): every host on the LAN receives
/// and processes a broadcast request, and hosts that already cache `ip`
/// update the entry to `src_mac` (RFC 826, RFC 5944 §4.6). Sender and target
/// protocol address are both `ip`.
///
/// The target hardware address is all zeroes, as RFC 5227 §2.3 says it
/// SHOULD be and as the Linux kernel sends it; receivers ignore the field.
/// (keepalived fills it with ff:ff:ff:ff:ff:ff instead; no receiver tells
/// the two apart.)
///
/// The frame is 42 bytes; the NIC pads it to the Ethernet minimum of 60.
///
/// ```text
///  0                   1                   2                   3
///  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |       Destination MAC: ff:ff:ff:ff:ff:ff (broadcast)          |
/// +                               +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |                               |                               |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+                               +
/// |                   Source MAC: src_mac                         |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |    EtherType: 0x0806 (ARP)    |  Hardware type: 1 (Ethernet)  |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// | Protocol type: 0x0800 (IPv4)  |  HW len: 6   | Proto len: 4   |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |     Opcode: 1 (request)       |                               |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+                               +
/// |           Sender hardware address: src_mac                    |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |               Sender protocol address: ip                     |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |                                                               |
/// +  Target hardware address: 00:00:00:00:00:00   +-+-+-+-+-+-+-+-+
/// |                               |                               |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+                               +
/// |               Target protocol address: ip                     |
/// +                               +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |                               |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// ```
pub fn gratuitous_arp(src_mac: MacAddr, ip: Ipv4Addr) -> Vec<u8> {
    let mut frame = Vec::with_capacity(ETHERNET_HEADER_LEN + ARP_MESSAGE_LEN);
    push_ethernet_header(&mut frame, BROADCAST_MAC, src_mac, ETHERTYPE_ARP);
    frame.extend_from_slice(&ARP_HARDWARE_ETHERNET.to_be_bytes());
    frame.extend_from_slice(&ETHERTYPE_IPV4.to_be_bytes());
    frame.push(6); // hardware address length
    frame.push(4); // protocol address length
    frame.extend_from_slice(&ARP_OPCODE_REQUEST.to_be_bytes());
    frame.extend_from_slice(&src_mac);
    frame.extend_from_slice(&ip.octets());
    frame.extend_from_slice(&[0; 6]); // target hardware address: ignored
    frame.extend_from_slice(&ip.octets());
    frame
}

/// An Ethernet frame to all nodes (ff02::1, MAC 33:33:00:00:00:01) carrying
/// an unsolicited Neighbor Advertisement (RFC 4861 §4.4, §7.2.6) that maps
/// `ip` to `src_mac`, as sent by a VRRP master for each virtual IPv6 address.
///
/// The IPv6 source is `ip` itself, the hop limit 255. The Override flag is
/// set so that neighbours replace the link-layer address they cached;
/// Solicited is clear (nobody asked). Router is clear too: hapair's virtual
/// addresses are service addresses, not a default gateway. (RFC 5798 §6.4.1
/// sets R because there the virtual router is a router; keepalived sets R
/// only when IPv6 forwarding is on for the interface.) The Target Link-Layer Address
/// option carries `src_mac`. The ICMPv6 checksum covers the RFC 8200 §8.1
/// pseudo-header and is computed here, since the kernel does not touch
/// frames sent on an `AF_PACKET` socket.
///
/// The frame is 86 bytes: Ethernet (14), IPv6 (40), ICMPv6 (32):
///
/// ```text
///  0                   1                   2                   3
///  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |         Destination MAC: 33:33:00:00:00:01 (all nodes)        |
/// +                               +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |                               |                               |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+                               +
/// |                   Source MAC: src_mac                         |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |   EtherType: 0x86dd (IPv6)    |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |Version=6| Traffic class 0 |          Flow label 0             |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |   Payload length: 32          | Next header 58| Hop limit 255 |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |                  Source address: ip (16 bytes)                |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |              Destination address: ff02::1 (16 bytes)          |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |   Type 136    |    Code 0     |          Checksum             |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |R|S|O|                     Reserved                            |
/// |0|0|1|                                                         |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |                  Target address: ip (16 bytes)                |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// | Option type 2 |  Length 1     |                               |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+                               +
/// |              Target link-layer address: src_mac               |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// ```
pub fn unsolicited_neighbour_advert(src_mac: MacAddr, ip: Ipv6Addr) -> Vec<u8> {
    let mut advert = Vec::with_capacity(NEIGHBOR_ADVERTISEMENT_LEN);
    advert.push(ICMPV6_NEIGHBOR_ADVERTISEMENT);
    advert.push(0); // code
    advert.extend_from_slice(&[0, 0]); // checksum, filled in below
    advert.extend_from_slice(&[NA_FLAG_OVERRIDE, 0, 0, 0]);
    advert.extend_from_slice(&ip.octets());
    advert.push(ND_OPTION_TARGET_LINK_LAYER_ADDRESS);
    advert.push(ND_OPTION_TARGET_LINK_LAYER_ADDRESS_UNITS);
    advert.extend_from_slice(&src_mac);
    let checksum = icmpv6_checksum(ip, ALL_NODES_IPV6, &advert);
    advert[ICMPV6_CHECKSUM_OFFSET..ICMPV6_CHECKSUM_OFFSET + 2]
        .copy_from_slice(&checksum.to_be_bytes());

    let mut frame = Vec::with_capacity(ETHERNET_HEADER_LEN + IPV6_HEADER_LEN + advert.len());
    push_ethernet_header(&mut frame, ALL_NODES_MAC, src_mac, ETHERTYPE_IPV6);
    frame.extend_from_slice(&[0x60, 0, 0, 0]); // version 6, traffic class 0, flow label 0
    frame.extend_from_slice(&(NEIGHBOR_ADVERTISEMENT_LEN as u16).to_be_bytes());
    frame.push(NEXT_HEADER_ICMPV6);
    frame.push(NEIGHBOR_DISCOVERY_HOP_LIMIT);
    frame.extend_from_slice(&ip.octets());
    frame.extend_from_slice(&ALL_NODES_IPV6.octets());
    frame.extend_from_slice(&advert);
    frame
}

fn push_ethernet_header(frame: &mut Vec<u8>, dst: MacAddr, src: MacAddr, ethertype: u16) {
    frame.extend_from_slice(&dst);
    frame.extend_from_slice(&src);
    frame.extend_from_slice(&ethertype.to_be_bytes());
}

/// The ICMPv6 checksum (RFC 4443 §2.3) of `message`, whose checksum field
/// holds zero: the one's complement of the one's complement sum of the
/// RFC 8200 §8.1 pseudo-header (source, destination, 32-bit upper-layer
/// length, three zero bytes, next header 58) followed by the message.
fn icmpv6_checksum(src: Ipv6Addr, dst: Ipv6Addr, message: &[u8]) -> u16 {
    let mut pseudo_header = [0u8; 40];
    pseudo_header[..16].copy_from_slice(&src.octets());
    pseudo_header[16..32].copy_from_slice(&dst.octets());
    let upper_layer_len =
        u32::try_from(message.len()).expect("an ICMPv6 message built here is a few dozen bytes");
    pseudo_header[32..36].copy_from_slice(&upper_layer_len.to_be_bytes());
    pseudo_header[39] = NEXT_HEADER_ICMPV6;
    !ones_complement_sum(&[&pseudo_header, message])
}

/// The 16-bit one's complement sum (RFC 1071) of the big-endian words of
/// `parts`, each part padded with a zero byte if its length is odd.
fn ones_complement_sum(parts: &[&[u8]]) -> u16 {
    let mut sum: u32 = 0;
    for part in parts {
        for word in part.chunks(2) {
            let high = word[0];
            let low = word.get(1).copied().unwrap_or(0);
            sum += u32::from(u16::from_be_bytes([high, low]));
        }
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const MAC: MacAddr = [0x52, 0x54, 0x00, 0x12, 0x34, 0x56];

    #[test]
    fn gratuitous_arp_matches_hand_written_bytes() {
        let frame = gratuitous_arp(MAC, Ipv4Addr::new(192, 0, 2, 10));
        #[rustfmt::skip]
        let expected: [u8; 42] = [
            // Ethernet: broadcast destination, our source, type ARP
            0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
            0x52, 0x54, 0x00, 0x12, 0x34, 0x56,
            0x08, 0x06,
            // ARP: Ethernet, IPv4, lengths 6 and 4, opcode 1 (request)
            0x00, 0x01, 0x08, 0x00, 0x06, 0x04, 0x00, 0x01,
            // sender MAC, sender IP 192.0.2.10
            0x52, 0x54, 0x00, 0x12, 0x34, 0x56, 192, 0, 2, 10,
            // target MAC zero (RFC 5227 §2.3), target IP = sender IP
            0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 192, 0, 2, 10,
        ];
        assert_eq!(frame, expected);
    }

    /// The checksum, worked out by hand as 16-bit words:
    ///
    /// ```text
    /// pseudo-header  source 2001:db8::1      2001 + 0db8 + 0001 = 2dba
    ///                destination ff02::1     ff02 + 0001        = ff03
    ///                length 32               0000 + 0020        = 0020
    ///                zero, next header 58    0000 + 003a        = 003a
    /// ICMPv6         type 136, code 0                             8800
    ///                checksum (zero while summing)                0000
    ///                flags O, reserved       2000 + 0000        = 2000
    ///                target 2001:db8::1                           2dba
    ///                option type 2, length 1                      0201
    ///                MAC 52:54:00:12:34:56   5254 + 0012 + 3456 = 86bc
    /// sum = 2dba + ff03 + 0020 + 003a + 8800 + 2000 + 2dba + 0201 + 86bc
    ///     = 0x28b8e; folded: 8b8e + 2 = 8b90; complemented: 746f
    /// ```
    #[test]
    fn neighbour_advert_matches_hand_written_bytes() {
        let ip: Ipv6Addr = "2001:db8::1".parse().unwrap();
        let frame = unsolicited_neighbour_advert(MAC, ip);
        #[rustfmt::skip]
        let expected: [u8; 86] = [
            // Ethernet: all-nodes multicast destination, our source, IPv6
            0x33, 0x33, 0x00, 0x00, 0x00, 0x01,
            0x52, 0x54, 0x00, 0x12, 0x34, 0x56,
            0x86, 0xdd,
            // IPv6: version 6, payload 32, next header 58, hop limit 255
            0x60, 0x00, 0x00, 0x00, 0x00, 0x20, 58, 255,
            // source 2001:db8::1
            0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01,
            // destination ff02::1
            0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01,
            // ICMPv6: type 136, code 0, checksum 0x746f, flags R=0 S=0 O=1
            136, 0, 0x74, 0x6f, 0x20, 0x00, 0x00, 0x00,
            // target 2001:db8::1
            0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01,
            // option 2 (target link-layer address), 1 × 8 bytes, our MAC
            2, 1, 0x52, 0x54, 0x00, 0x12, 0x34, 0x56,
        ];
        assert_eq!(frame, expected);
    }

    /// A receiver's check (RFC 1071 §1): the sum of the pseudo-header and the
    /// message *with* its checksum is 0xffff. Summed here word by word,
    /// independently of `icmpv6_checksum`, from the bytes of the frame.
    fn receiver_accepts_checksum(frame: &[u8]) -> bool {
        let ip_header = &frame[ETHERNET_HEADER_LEN..ETHERNET_HEADER_LEN + IPV6_HEADER_LEN];
        let message = &frame[ETHERNET_HEADER_LEN + IPV6_HEADER_LEN..];
        let payload_len = u16::from_be_bytes([ip_header[4], ip_header[5]]);
        assert_eq!(usize::from(payload_len), message.len());
        let mut sum: u64 = 0;
        let words = |bytes: &[u8]| -> u64 {
            bytes
                .chunks(2)
                .map(|w| u64::from(w[0]) << 8 | u64::from(w[1]))
                .sum()
        };
        sum += words(&ip_header[8..40]); // source and destination addresses
        sum += u64::from(payload_len);
        sum += u64::from(ip_header[6]); // next header
        sum += words(message);
        while sum > 0xffff {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        sum == 0xffff
    }

    #[test]
    fn a_corrupted_neighbour_advert_fails_the_checksum_check() {
        let ip: Ipv6Addr = "2001:db8::1".parse().unwrap();
        let mut frame = unsolicited_neighbour_advert(MAC, ip);
        assert!(receiver_accepts_checksum(&frame));
        let last = frame.len() - 1;
        frame[last] ^= 0x01; // one bit of the MAC in the option
        assert!(!receiver_accepts_checksum(&frame));
    }

    #[test]
    fn odd_length_parts_are_padded_with_a_zero_byte() {
        assert_eq!(ones_complement_sum(&[&[0x12, 0x34, 0x56]]), 0x1234 + 0x5600);
        assert_eq!(ones_complement_sum(&[&[0xff, 0xff], &[0x00, 0x02]]), 0x0002);
    }

    proptest! {
        #[test]
        fn every_neighbour_advert_passes_the_receiver_checksum_check(
            mac in any::<[u8; 6]>(),
            ip in any::<[u8; 16]>(),
        ) {
            let ip = Ipv6Addr::from(ip);
            let frame = unsolicited_neighbour_advert(mac, ip);
            prop_assert_eq!(frame.len(), 86);
            prop_assert!(receiver_accepts_checksum(&frame));
            prop_assert_eq!(&frame[6..12], &mac[..]);
            prop_assert_eq!(&frame[22..38], &ip.octets()[..]); // IPv6 source
            prop_assert_eq!(&frame[62..78], &ip.octets()[..]); // NA target
            prop_assert_eq!(&frame[80..86], &mac[..]); // option
        }

        #[test]
        fn every_gratuitous_arp_maps_the_address_to_the_mac(
            mac in any::<[u8; 6]>(),
            ip in any::<[u8; 4]>(),
        ) {
            let frame = gratuitous_arp(mac, Ipv4Addr::from(ip));
            prop_assert_eq!(frame.len(), 42);
            prop_assert_eq!(&frame[6..12], &mac[..]); // Ethernet source
            prop_assert_eq!(&frame[22..28], &mac[..]); // sender MAC
            prop_assert_eq!(&frame[28..32], &ip[..]); // sender IP
            prop_assert_eq!(&frame[38..42], &ip[..]); // target IP
        }
    }
}
