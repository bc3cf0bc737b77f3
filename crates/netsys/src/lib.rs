//! The system calls that hapair's daemons need and that neither the standard
//! library, socket2 nor nix wraps safely: sending whole Ethernet frames on an
//! `AF_PACKET` socket, choosing the IPv4 multicast interface by index,
//! registering sockets with tokio's reactor, and a nanosecond timer
//! (`timerfd`) for event loops where tokio's millisecond ticks are too coarse.
//!
//! This is the one crate of the workspace where `unsafe` is allowed. Each
//! `unsafe` block is a single system call or address conversion with a
//! `// SAFETY:` comment; everything exported is safe to call.

use std::ffi::c_int;
use std::io;
use std::mem;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};

use socket2::{Domain, SockAddr, SockAddrStorage, Socket, Type};

mod async_socket;
mod precise_timer;

pub use async_socket::register_async;
pub use precise_timer::PreciseTimer;

const ETHERNET_HEADER_LEN: usize = 14;

/// An `AF_PACKET` / `SOCK_RAW` socket bound to one interface, for sending
/// whole Ethernet frames (gratuitous ARP, unsolicited neighbour adverts).
///
/// It is bound with protocol 0, so it never receives anything: no frames
/// pile up in its receive buffer however long the daemon keeps it open.
#[derive(Debug)]
pub struct PacketSocket {
    socket: Socket,
    ifindex: c_int,
}

impl PacketSocket {
    /// Opens a packet socket for the interface with index `ifindex` in the
    /// calling thread's network namespace. Needs `CAP_NET_RAW`.
    pub fn open(ifindex: u32) -> io::Result<Self> {
        let index = interface_index(ifindex)?;
        let socket = Socket::new(Domain::PACKET, Type::RAW, None).map_err(|err| {
            with_context(
                err,
                &format!(
                    "cannot open an AF_PACKET socket for interface index {ifindex} \
                     (run as root or with CAP_NET_RAW)"
                ),
            )
        })?;
        socket
            .bind(&link_layer_address(index, 0, [0; 6]))
            .map_err(|err| {
                with_context(
                    err,
                    &format!(
                        "cannot bind an AF_PACKET socket to interface index {ifindex} \
                         (does the interface exist in this network namespace? see `ip link`)"
                    ),
                )
            })?;
        Ok(Self {
            socket,
            ifindex: index,
        })
    }

    /// Sends `frame`, a whole Ethernet frame starting with destination MAC,
    /// source MAC and EtherType, unchanged on the socket's interface.
    pub fn send(&self, frame: &[u8]) -> io::Result<()> {
        if frame.len() < ETHERNET_HEADER_LEN {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "cannot send a {}-byte frame on interface index {}: an Ethernet frame \
                     needs at least its {ETHERNET_HEADER_LEN}-byte header",
                    frame.len(),
                    self.ifindex
                ),
            ));
        }
        let destination: [u8; 6] = frame[..6].try_into().expect("checked length above");
        // The EtherType is already in network byte order in the frame, which
        // is the order `sll_protocol` wants.
        let protocol = u16::from_ne_bytes([frame[12], frame[13]]);
        let address = link_layer_address(self.ifindex, protocol, destination);
        let sent = self.socket.send_to(frame, &address).map_err(|err| {
            with_context(
                err,
                &format!(
                    "cannot send a {}-byte frame on interface index {} \
                     (is the interface up?)",
                    frame.len(),
                    self.ifindex
                ),
            )
        })?;
        if sent != frame.len() {
            return Err(io::Error::other(format!(
                "sent only {sent} of {} bytes of a frame on interface index {}",
                frame.len(),
                self.ifindex
            )));
        }
        Ok(())
    }
}

/// The `sockaddr_ll` that names interface `ifindex`, the EtherType
/// `protocol_network_order` and the destination `mac`.
fn link_layer_address(ifindex: c_int, protocol_network_order: u16, mac: [u8; 6]) -> SockAddr {
    let mut sll_addr = [0u8; 8];
    sll_addr[..6].copy_from_slice(&mac);
    let link_layer = libc::sockaddr_ll {
        sll_family: libc::AF_PACKET as libc::sa_family_t,
        sll_protocol: protocol_network_order,
        sll_ifindex: ifindex,
        sll_hatype: 0,
        sll_pkttype: 0,
        sll_halen: 6,
        sll_addr,
    };
    let mut storage = SockAddrStorage::zeroed();
    let len = libc::socklen_t::try_from(mem::size_of::<libc::sockaddr_ll>())
        .expect("sockaddr_ll is 20 bytes");
    // SAFETY: `SockAddrStorage` is a `sockaddr_storage`, which is larger than
    // and aligned at least as strictly as `sockaddr_ll` (both are C socket
    // address types), so viewing it as one is sound. The storage then holds a
    // fully initialised `sockaddr_ll` of `len` bytes whose family is
    // AF_PACKET, which is what `SockAddr::new` requires.
    unsafe {
        *storage.view_as::<libc::sockaddr_ll>() = link_layer;
        SockAddr::new(storage, len)
    }
}

/// The MAC address of the interface `ifname` in the calling thread's network
/// namespace.
///
/// It comes from `getifaddrs`, which asks the kernel over a fresh netlink
/// socket and so sees the namespace of the calling *thread* (after `setns`),
/// unlike `/sys/class/net`, which shows the namespace sysfs was mounted in.
/// Fails if there is no such interface or if it is not an Ethernet interface.
pub fn hardware_address(ifname: &str) -> io::Result<[u8; 6]> {
    let interfaces = nix::ifaddrs::getifaddrs().map_err(|errno| {
        with_context(
            io::Error::from(errno),
            &format!("cannot list the network interfaces to find {ifname}'s MAC address"),
        )
    })?;
    let link = interfaces
        .filter(|interface| interface.interface_name == ifname)
        .find_map(|interface| interface.address?.as_link_addr().copied())
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                format!(
                    "no network interface named {ifname:?} in this network namespace \
                     (check the name with `ip link`)"
                ),
            )
        })?;
    match link.addr() {
        Some(mac) if link.hatype() == libc::ARPHRD_ETHER && link.halen() == mac.len() => Ok(mac),
        _ => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "interface {ifname} is not an Ethernet interface (ARP hardware type {}), \
                 so it has no MAC address to announce virtual addresses with; \
                 use an Ethernet, VLAN, bond or bridge interface",
                link.hatype()
            ),
        )),
    }
}

/// Sets `IP_MULTICAST_IF` by interface index (`struct ip_mreqn`), so that
/// IPv4 multicast sent on `socket` leaves through interface `ifindex`
/// whatever its addresses and routes. socket2 only offers it by address.
pub fn set_multicast_if_v4_index(socket: &impl AsFd, ifindex: u32) -> io::Result<()> {
    let request = libc::ip_mreqn {
        imr_multiaddr: libc::in_addr { s_addr: 0 },
        imr_address: libc::in_addr { s_addr: 0 },
        imr_ifindex: interface_index(ifindex)?,
    };
    set_socket_option(
        socket.as_fd(),
        libc::IPPROTO_IP,
        libc::IP_MULTICAST_IF,
        &request,
    )
    .map_err(|err| {
        with_context(
            err,
            &format!(
                "cannot send IPv4 multicast through interface index {ifindex} \
                 (IP_MULTICAST_IF needs an IPv4 socket and an existing interface)"
            ),
        )
    })
}

/// `setsockopt(socket, level, name, value)` for a plain C value: an `int`
/// or a C struct without padding.
fn set_socket_option<T: Copy>(
    socket: BorrowedFd<'_>,
    level: c_int,
    name: c_int,
    value: &T,
) -> io::Result<()> {
    let len = libc::socklen_t::try_from(mem::size_of::<T>())
        .expect("socket option values are a few bytes");
    // SAFETY: `socket` is a descriptor borrowed for the whole call, so it is
    // open; `value` points to an initialised `T` of exactly `len` bytes that
    // outlives the call, and setsockopt only reads from it.
    let result = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            level,
            name,
            (value as *const T).cast(),
            len,
        )
    };
    if result == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// The kernel's `int` form of an interface index.
fn interface_index(ifindex: u32) -> io::Result<c_int> {
    c_int::try_from(ifindex).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "interface index {ifindex} is out of range (at most {})",
                c_int::MAX
            ),
        )
    })
}

/// `err` with `what` went wrong in front of the system's reason.
fn with_context(err: io::Error, what: &str) -> io::Error {
    io::Error::new(err.kind(), format!("{what}: {err}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loopback_index() -> u32 {
        nix::net::if_::if_nametoindex("lo").expect("every network namespace has lo")
    }

    #[test]
    fn multicast_if_by_index_accepts_loopback() {
        let socket = Socket::new(Domain::IPV4, Type::DGRAM, None).unwrap();
        set_multicast_if_v4_index(&socket, loopback_index()).unwrap();
        // 0 means "let the routing table choose" again.
        set_multicast_if_v4_index(&socket, 0).unwrap();
    }

    #[test]
    fn multicast_if_by_index_refuses_bad_indexes_and_descriptors() {
        let socket = Socket::new(Domain::IPV4, Type::DGRAM, None).unwrap();
        // No namespace has this many interfaces: the kernel looks the index
        // up and answers EADDRNOTAVAIL or ENODEV.
        let missing = set_multicast_if_v4_index(&socket, 999_999).unwrap_err();
        assert!(
            missing.to_string().contains("interface index 999999"),
            "{missing}"
        );
        let out_of_range = set_multicast_if_v4_index(&socket, u32::MAX).unwrap_err();
        assert_eq!(out_of_range.kind(), io::ErrorKind::InvalidInput);

        let file = std::fs::File::open("/dev/null").unwrap();
        assert!(set_multicast_if_v4_index(&file, loopback_index()).is_err());
        let (unix, _peer) = std::os::unix::net::UnixDatagram::pair().unwrap();
        assert!(set_multicast_if_v4_index(&unix, loopback_index()).is_err());
    }

    #[test]
    fn hardware_address_refuses_loopback_and_unknown_names() {
        let loopback = hardware_address("lo").unwrap_err();
        assert_eq!(loopback.kind(), io::ErrorKind::InvalidInput);
        assert!(
            loopback.to_string().contains("not an Ethernet interface"),
            "{loopback}"
        );

        let unknown = hardware_address("no-such-if0").unwrap_err();
        assert_eq!(unknown.kind(), io::ErrorKind::NotFound);
        assert!(unknown.to_string().contains("\"no-such-if0\""), "{unknown}");
    }

    #[test]
    fn packet_socket_refuses_missing_interfaces_and_short_frames() {
        match PacketSocket::open(999_999) {
            Err(err) if err.kind() == io::ErrorKind::PermissionDenied => {
                eprintln!("skipped: packet sockets need root or CAP_NET_RAW ({err})");
                return;
            }
            Err(err) => assert!(err.to_string().contains("interface index 999999"), "{err}"),
            Ok(_) => panic!("bound a packet socket to a missing interface"),
        }
        let socket = PacketSocket::open(loopback_index()).unwrap();
        let short = socket.send(&[0xff; 13]).unwrap_err();
        assert_eq!(short.kind(), io::ErrorKind::InvalidInput);
    }
}
