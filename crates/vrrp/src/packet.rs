//! The VRRP advertisement codec: VRRPv2 (RFC 3768) and VRRPv3 (RFC 5798,
//! updated by RFC 9568), with their checksums.
//!
//! Only the VRRP message itself is handled here; the IP header around it is
//! the daemon's business, except for the addresses that enter the VRRPv3
//! pseudo-header checksum.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// IP protocol number of VRRP.
pub const IPPROTO_VRRP: u8 = 112;
/// IPv4 multicast group of VRRP (RFC 3768 §5.2.2, RFC 5798 §5.1.1.2).
pub const MULTICAST_V4: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 18);
/// IPv6 multicast group of VRRP (RFC 5798 §5.1.2.2).
pub const MULTICAST_V6: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 0x12);
/// The TTL / hop limit every VRRP packet is sent with and must arrive with.
pub const REQUIRED_HOP_LIMIT: u8 = 255;
/// The only packet type VRRP defines.
const TYPE_ADVERTISEMENT: u8 = 1;
/// Fixed part of a message, before the address list (both versions).
const HEADER_LEN: usize = 8;
/// Length of the VRRPv2 authentication data that follows the addresses.
const V2_AUTH_LEN: usize = 8;
/// The largest VRRPv3 Max Adver Int: a 12-bit field.
pub const V3_MAX_INTERVAL_CENTIS: u16 = 0x0fff;

/// The protocol version, which decides the layout of the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
pub enum Version {
    /// RFC 3768: IPv4 only, whole-second intervals, optional password.
    V2,
    /// RFC 5798 / RFC 9568: IPv4 and IPv6, centisecond intervals.
    V3,
}

impl Version {
    fn number(self) -> u8 {
        match self {
            Version::V2 => 2,
            Version::V3 => 3,
        }
    }
}

/// VRRPv2 authentication (RFC 3768 §5.3.6). Type 2 (IP Authentication
/// Header) is historic and refused by the receive checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Authentication {
    /// Type 0: no authentication; the data is zero.
    None,
    /// Type 1: a clear-text password of up to 8 bytes, zero-padded.
    Password([u8; V2_AUTH_LEN]),
}

impl Authentication {
    /// The password form of `text`, or `None` if it is empty or longer than 8 bytes.
    pub fn password(text: &str) -> Option<Authentication> {
        let bytes = text.as_bytes();
        if bytes.is_empty() || bytes.len() > V2_AUTH_LEN {
            return None;
        }
        let mut data = [0u8; V2_AUTH_LEN];
        data[..bytes.len()].copy_from_slice(bytes);
        Some(Authentication::Password(data))
    }

    fn type_code(&self) -> u8 {
        match self {
            Authentication::None => 0,
            Authentication::Password(_) => 1,
        }
    }

    fn data(&self) -> [u8; V2_AUTH_LEN] {
        match self {
            Authentication::None => [0; V2_AUTH_LEN],
            Authentication::Password(data) => *data,
        }
    }
}

/// One VRRP advertisement, as either version carries it.
///
/// VRRPv2 (RFC 3768 §5.1):
/// ```text
///  0                   1                   2                   3
///  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |Version| Type  | Virtual Rtr ID|   Priority    | Count IP Addrs|
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |   Auth Type   |   Adver Int   |          Checksum             |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |                         IP Address (1)                        |
/// |                            .....                              |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |                     Authentication Data (1)                   |
/// |                     Authentication Data (2)                   |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// ```
/// VRRPv3 (RFC 5798 §5.1), addresses of 4 or 16 bytes by the IP version:
/// ```text
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |Version| Type  | Virtual Rtr ID|   Priority    |Count IPvX Addr|
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |(rsvd) |     Max Adver Int     |          Checksum             |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |                       IPvX Address(es)                        |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Advertisement {
    pub version: Version,
    pub vrid: u8,
    pub priority: u8,
    /// The advertisement interval in centiseconds. VRRPv2 carries whole
    /// seconds on the wire: 1 s is 100 here.
    pub interval_centis: u16,
    /// The virtual addresses; all IPv4, or (v3 only) all IPv6.
    pub addresses: Vec<IpAddr>,
    /// VRRPv2 only; always [`Authentication::None`] in VRRPv3.
    pub auth: Authentication,
}

/// How the checksum of a message is computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Checksum {
    /// Over the VRRP message alone: VRRPv2, and VRRPv3 over IPv4 as
    /// RFC 9568, Cisco and Juniper do it (keepalived's `v3_checksum_as_v2`).
    MessageOnly,
    /// Over an IP pseudo-header and the message: VRRPv3 over IPv6 always,
    /// and VRRPv3 over IPv4 as keepalived sends it by default.
    PseudoHeader { source: IpAddr, destination: IpAddr },
}

/// Why bytes are not a VRRP advertisement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("message of {0} bytes is shorter than the 8-byte VRRP header")]
    TooShort(usize),
    #[error("version {0} is not VRRP version 2 or 3")]
    UnknownVersion(u8),
    #[error("type {0} is not an advertisement (1)")]
    UnknownType(u8),
    #[error("the address count says {expected} bytes, the message has {actual}")]
    LengthMismatch { expected: usize, actual: usize },
    #[error("VRRPv2 carries IPv4 addresses only")]
    V2OverIpv6,
}

impl Advertisement {
    /// Encodes the message, with its checksum computed as `checksum` says.
    pub fn encode(&self, checksum: Checksum) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.encoded_len());
        out.push((self.version.number() << 4) | TYPE_ADVERTISEMENT);
        out.push(self.vrid);
        out.push(self.priority);
        // At most 255 addresses fit the count field; the encoder is given
        // configured addresses, which the config limits far below that.
        out.push(u8::try_from(self.addresses.len()).unwrap_or(u8::MAX));
        match self.version {
            Version::V2 => {
                out.push(self.auth.type_code());
                out.push(u8::try_from(self.interval_centis / 100).unwrap_or(u8::MAX));
            }
            Version::V3 => {
                let interval = self.interval_centis.min(V3_MAX_INTERVAL_CENTIS);
                out.extend_from_slice(&interval.to_be_bytes());
            }
        }
        out.extend_from_slice(&[0, 0]);
        for address in self.addresses.iter().take(usize::from(u8::MAX)) {
            match address {
                IpAddr::V4(a) => out.extend_from_slice(&a.octets()),
                IpAddr::V6(a) => out.extend_from_slice(&a.octets()),
            }
        }
        if self.version == Version::V2 {
            out.extend_from_slice(&self.auth.data());
        }
        let sum = checksum_of(&out, checksum);
        out[6..8].copy_from_slice(&sum.to_be_bytes());
        out
    }

    fn encoded_len(&self) -> usize {
        let address_bytes: usize = self
            .addresses
            .iter()
            .map(|a| if a.is_ipv4() { 4 } else { 16 })
            .sum();
        let auth = if self.version == Version::V2 {
            V2_AUTH_LEN
        } else {
            0
        };
        HEADER_LEN + address_bytes + auth
    }

    /// Decodes a message that arrived over IPv4 (`over_ipv6` false) or IPv6.
    /// The checksum is not looked at here: see [`verify_checksum`].
    pub fn decode(bytes: &[u8], over_ipv6: bool) -> Result<Advertisement, DecodeError> {
        if bytes.len() < HEADER_LEN {
            return Err(DecodeError::TooShort(bytes.len()));
        }
        let version = match bytes[0] >> 4 {
            2 => Version::V2,
            3 => Version::V3,
            other => return Err(DecodeError::UnknownVersion(other)),
        };
        let packet_type = bytes[0] & 0x0f;
        if packet_type != TYPE_ADVERTISEMENT {
            return Err(DecodeError::UnknownType(packet_type));
        }
        if version == Version::V2 && over_ipv6 {
            return Err(DecodeError::V2OverIpv6);
        }
        let count = usize::from(bytes[3]);
        let address_len = if over_ipv6 { 16 } else { 4 };
        let trailer = if version == Version::V2 {
            V2_AUTH_LEN
        } else {
            0
        };
        let expected = HEADER_LEN + count * address_len + trailer;
        if bytes.len() != expected {
            return Err(DecodeError::LengthMismatch {
                expected,
                actual: bytes.len(),
            });
        }
        let addresses = bytes[HEADER_LEN..HEADER_LEN + count * address_len]
            .chunks_exact(address_len)
            .map(|chunk| match <[u8; 16]>::try_from(chunk) {
                Ok(octets) => IpAddr::V6(Ipv6Addr::from(octets)),
                Err(_) => IpAddr::V4(Ipv4Addr::new(chunk[0], chunk[1], chunk[2], chunk[3])),
            })
            .collect();
        let (interval_centis, auth) = match version {
            Version::V2 => {
                let mut data = [0u8; V2_AUTH_LEN];
                data.copy_from_slice(&bytes[expected - V2_AUTH_LEN..]);
                let auth = match bytes[4] {
                    1 => Authentication::Password(data),
                    _ => Authentication::None,
                };
                (u16::from(bytes[5]) * 100, auth)
            }
            Version::V3 => (
                u16::from_be_bytes([bytes[4], bytes[5]]) & V3_MAX_INTERVAL_CENTIS,
                Authentication::None,
            ),
        };
        Ok(Advertisement {
            version,
            vrid: bytes[1],
            priority: bytes[2],
            interval_centis,
            addresses,
            auth,
        })
    }
}

/// The VRRPv2 authentication type byte of a message known to be at least a
/// header long; the decoder folds unknown types into `None`, the receive
/// checks need the raw value.
pub(crate) fn v2_auth_type(bytes: &[u8]) -> u8 {
    bytes[4]
}

/// True if the checksum carried in `bytes` is right for `checksum`.
pub fn verify_checksum(bytes: &[u8], checksum: Checksum) -> bool {
    checksum_of(bytes, checksum) == 0
}

/// The Internet checksum (RFC 1071) of `message`, preceded by the
/// pseudo-header when asked for. Over a message that carries a correct
/// checksum, the result is 0.
fn checksum_of(message: &[u8], checksum: Checksum) -> u16 {
    let mut sum = OnesComplementSum::default();
    // The VRRP length is at most 8 + 255 * 16 + 8 bytes: it fits both fields.
    let length = u32::try_from(message.len()).unwrap_or(u32::MAX);
    match checksum {
        Checksum::MessageOnly => {}
        Checksum::PseudoHeader {
            source: IpAddr::V4(source),
            destination: IpAddr::V4(destination),
        } => {
            sum.add(&source.octets());
            sum.add(&destination.octets());
            sum.add(&[0, IPPROTO_VRRP]);
            sum.add(&(length as u16).to_be_bytes());
        }
        Checksum::PseudoHeader {
            source,
            destination,
        } => {
            sum.add(&as_ipv6(source).octets());
            sum.add(&as_ipv6(destination).octets());
            sum.add(&length.to_be_bytes());
            sum.add(&[0, 0, 0, IPPROTO_VRRP]);
        }
    }
    sum.add(message);
    sum.finish()
}

fn as_ipv6(address: IpAddr) -> Ipv6Addr {
    match address {
        IpAddr::V4(a) => a.to_ipv6_mapped(),
        IpAddr::V6(a) => a,
    }
}

/// Running one's-complement sum of 16-bit big-endian words. Every chunk
/// added here has an even length except possibly the last.
#[derive(Default)]
struct OnesComplementSum(u64);

impl OnesComplementSum {
    fn add(&mut self, bytes: &[u8]) {
        let mut words = bytes.chunks_exact(2);
        for word in &mut words {
            self.0 += u64::from(u16::from_be_bytes([word[0], word[1]]));
        }
        if let [last] = words.remainder() {
            self.0 += u64::from(*last) << 8;
        }
    }

    fn finish(self) -> u16 {
        let mut sum = self.0;
        while sum > 0xffff {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        !(sum as u16)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v4(a: u8, b: u8, c: u8, d: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(a, b, c, d))
    }

    /// A VRRPv2 advert checked by hand: VRID 51, priority 150, one address
    /// 10.99.0.100, PASS "secret1", 1 s.
    /// Words: 0x2133 0x9601 0x0101 (checksum) 0x0a63 0x0064 0x7365 0x6372
    /// 0x6574 0x3100; their sum is 0x2_3047, folded 0x3049, so the checksum
    /// is !0x3049 = 0xcfb6.
    #[test]
    fn v2_password_advert_matches_hand_computed_bytes() {
        let advert = Advertisement {
            version: Version::V2,
            vrid: 51,
            priority: 150,
            interval_centis: 100,
            addresses: vec![v4(10, 99, 0, 100)],
            auth: Authentication::password("secret1").unwrap(),
        };
        let bytes = advert.encode(Checksum::MessageOnly);
        assert_eq!(
            bytes,
            [
                0x21, 51, 150, 1, 1, 1, 0xcf, 0xb6, 10, 99, 0, 100, b's', b'e', b'c', b'r', b'e',
                b't', b'1', 0
            ]
        );
        assert!(verify_checksum(&bytes, Checksum::MessageOnly));
        assert_eq!(Advertisement::decode(&bytes, false), Ok(advert));
    }

    /// VRRPv3 over IPv4 with keepalived's pseudo-header: from 10.99.0.1 to
    /// 224.0.0.18, VRID 51, priority 100, 10 cs, one address 10.99.0.100.
    /// Pseudo-header words: 0x0a63 0x0001 0xe000 0x0012 0x0070 0x000c;
    /// message words: 0x3133 0x6401 0x000a 0x0a63 0x0064. The sum is
    /// 0x1_8af7, folded 0x8af8, so the checksum is 0x7507. Without the
    /// pseudo-header the sum is 0xa005 and the checksum 0x5ffa.
    #[test]
    fn v3_ipv4_checksum_with_and_without_pseudo_header() {
        let advert = Advertisement {
            version: Version::V3,
            vrid: 51,
            priority: 100,
            interval_centis: 10,
            addresses: vec![v4(10, 99, 0, 100)],
            auth: Authentication::None,
        };
        let pseudo = Checksum::PseudoHeader {
            source: v4(10, 99, 0, 1),
            destination: IpAddr::V4(MULTICAST_V4),
        };
        let with = advert.encode(pseudo);
        assert_eq!(
            with,
            [0x31, 51, 100, 1, 0x00, 0x0a, 0x75, 0x07, 10, 99, 0, 100]
        );
        let without = advert.encode(Checksum::MessageOnly);
        assert_eq!(&without[6..8], &[0x5f, 0xfa]);
        assert!(verify_checksum(&with, pseudo));
        assert!(!verify_checksum(&with, Checksum::MessageOnly));
        assert!(verify_checksum(&without, Checksum::MessageOnly));
        assert_eq!(Advertisement::decode(&with, false), Ok(advert));
    }

    #[test]
    fn v3_ipv6_round_trips_and_checks_pseudo_header() {
        let vip: IpAddr = "fd99::100".parse().unwrap();
        let advert = Advertisement {
            version: Version::V3,
            vrid: 7,
            priority: 200,
            interval_centis: 100,
            addresses: vec![vip],
            auth: Authentication::None,
        };
        let pseudo = Checksum::PseudoHeader {
            source: "fe80::1".parse().unwrap(),
            destination: IpAddr::V6(MULTICAST_V6),
        };
        let bytes = advert.encode(pseudo);
        assert_eq!(bytes.len(), 8 + 16);
        assert!(verify_checksum(&bytes, pseudo));
        let other_source = Checksum::PseudoHeader {
            source: "fe80::2".parse().unwrap(),
            destination: IpAddr::V6(MULTICAST_V6),
        };
        assert!(!verify_checksum(&bytes, other_source));
        assert_eq!(Advertisement::decode(&bytes, true), Ok(advert));
        assert_eq!(
            Advertisement::decode(&bytes, false),
            Err(DecodeError::LengthMismatch {
                expected: 8 + 4,
                actual: 24
            })
        );
    }

    #[test]
    fn malformed_messages_are_refused_with_a_reason() {
        assert_eq!(
            Advertisement::decode(&[0x21, 1, 2], false),
            Err(DecodeError::TooShort(3))
        );
        assert_eq!(
            Advertisement::decode(&[0x41, 1, 100, 0, 0, 1, 0, 0], false),
            Err(DecodeError::UnknownVersion(4))
        );
        assert_eq!(
            Advertisement::decode(&[0x32, 1, 100, 0, 0, 1, 0, 0], false),
            Err(DecodeError::UnknownType(2))
        );
        assert_eq!(
            Advertisement::decode(&[0x21, 1, 100, 0, 0, 1, 0, 0], true),
            Err(DecodeError::V2OverIpv6)
        );
    }
}
