//! The receive checks of RFC 5798 §7.1 and RFC 3768 §7.1.
//!
//! A packet that fails one is dropped and counted under a [`DropReason`];
//! nothing a peer sends can make the core panic.

use std::net::IpAddr;

use crate::instance::Config;
use crate::packet::{
    self, Advertisement, Authentication, DecodeError, REQUIRED_HOP_LIMIT, Version,
};

/// One VRRP packet as the daemon received it: the VRRP message (the IP
/// header already taken off) and the IP facts the checks need.
#[derive(Debug, Clone, Copy)]
pub struct Received<'a> {
    pub source: IpAddr,
    pub destination: IpAddr,
    /// The IPv4 TTL or the IPv6 hop limit the packet arrived with.
    pub hop_limit: u8,
    pub message: &'a [u8],
}

impl<'a> Received<'a> {
    /// Splits an IPv4 packet as a raw socket delivers it (header
    /// included) into the facts the checks need and the VRRP message.
    /// `None` if the header is malformed or says the packet is longer than
    /// what arrived; bytes after the IP total length (Ethernet padding) are
    /// left out.
    pub fn from_ipv4_packet(packet: &'a [u8]) -> Option<Received<'a>> {
        let header_len = usize::from(packet.first()? & 0x0f) * 4;
        if header_len < 20 || packet.len() < header_len || packet[0] >> 4 != 4 {
            return None;
        }
        let total_len = usize::from(u16::from_be_bytes([packet[2], packet[3]]));
        if total_len < header_len || total_len > packet.len() {
            return None;
        }
        let address =
            |at: usize| IpAddr::from([packet[at], packet[at + 1], packet[at + 2], packet[at + 3]]);
        Some(Received {
            source: address(12),
            destination: address(16),
            hop_limit: packet[8],
            message: &packet[header_len..total_len],
        })
    }
}

/// Why a received packet was dropped. Each has a stable snake_case name
/// for counters in the state file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DropReason {
    /// TTL or hop limit other than 255: the packet crossed a router.
    HopLimit,
    /// Not the configured VRRP version, or not a version at all.
    Version,
    /// Not an advertisement.
    Type,
    /// Shorter than a header, or a length that disagrees with the count.
    Length,
    /// The checksum does not match.
    Checksum,
    /// Another virtual router's VRID.
    Vrid,
    /// VRRPv2 authentication type differs from ours.
    AuthType,
    /// VRRPv2 password differs from ours.
    AuthPassword,
    /// VRRPv2 advertisement interval differs from ours (RFC 3768 MUST).
    Interval,
    /// A unicast instance got a multicast packet, or the reverse.
    DeliveryMode,
    /// A unicast packet from an address that is not a configured peer.
    UnknownPeer,
    /// An IPv4 header that does not hold together.
    IpHeader,
    /// Addresses of the other IP family than the instance's.
    AddressFamily,
}

impl DropReason {
    /// The counter name: stable, for state files and scripts.
    pub fn name(self) -> &'static str {
        match self {
            DropReason::HopLimit => "hop_limit",
            DropReason::Version => "version",
            DropReason::Type => "type",
            DropReason::Length => "length",
            DropReason::Checksum => "checksum",
            DropReason::Vrid => "vrid",
            DropReason::AuthType => "auth_type",
            DropReason::AuthPassword => "auth_password",
            DropReason::Interval => "interval",
            DropReason::DeliveryMode => "delivery_mode",
            DropReason::UnknownPeer => "unknown_peer",
            DropReason::IpHeader => "ip_header",
            DropReason::AddressFamily => "address_family",
        }
    }
}

impl From<DecodeError> for DropReason {
    fn from(error: DecodeError) -> Self {
        match error {
            DecodeError::TooShort(_) | DecodeError::LengthMismatch { .. } => DropReason::Length,
            DecodeError::UnknownVersion(_) => DropReason::Version,
            DecodeError::UnknownType(_) => DropReason::Type,
            DecodeError::V2OverIpv6 => DropReason::AddressFamily,
        }
    }
}

/// Runs every receive check of `config`'s instance on `packet`, in the
/// order of RFC 5798 §7.1, and returns the advertisement it carries.
pub fn validate(config: &Config, packet: &Received) -> Result<Advertisement, DropReason> {
    let unicast = !config.unicast_peers.is_empty();
    if packet.hop_limit != REQUIRED_HOP_LIMIT && !(unicast && config.unicast_skip_hop_limit_check) {
        return Err(DropReason::HopLimit);
    }
    let over_ipv6 = packet.source.is_ipv6();
    if over_ipv6 != config.primary_address.is_ipv6() {
        return Err(DropReason::AddressFamily);
    }
    if packet.destination.is_multicast() == unicast {
        return Err(DropReason::DeliveryMode);
    }
    let advert = Advertisement::decode(packet.message, over_ipv6)?;
    if advert.version != config.version {
        return Err(DropReason::Version);
    }
    if !packet::verify_checksum(
        packet.message,
        config.checksum_for(packet.source, packet.destination),
    ) {
        return Err(DropReason::Checksum);
    }
    if advert.vrid != config.vrid {
        return Err(DropReason::Vrid);
    }
    if advert.version == Version::V2 {
        let expected_type = match config.auth {
            Authentication::None => 0,
            Authentication::Password(_) => 1,
        };
        if packet::v2_auth_type(packet.message) != expected_type {
            return Err(DropReason::AuthType);
        }
        if let (Authentication::Password(ours), Authentication::Password(theirs)) =
            (config.auth, advert.auth)
            && !constant_time_eq(&ours, &theirs)
        {
            return Err(DropReason::AuthPassword);
        }
        if advert.interval_centis != config.advert_interval_centis {
            return Err(DropReason::Interval);
        }
    }
    if unicast && !config.unicast_peers.contains(&packet.source) {
        return Err(DropReason::UnknownPeer);
    }
    Ok(advert)
}

/// Compares two passwords without an early exit, so the time taken does
/// not say how many leading bytes matched.
fn constant_time_eq(a: &[u8; 8], b: &[u8; 8]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
