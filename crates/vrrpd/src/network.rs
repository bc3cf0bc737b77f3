//! Raw VRRP sockets (IP protocol 112): one per interface and address
//! family, shared by every instance on that interface.
//!
//! Packets go out with TTL / hop limit 255 and TOS / traffic class 0xC0,
//! from the instance's primary address (chosen per packet with
//! IP_PKTINFO / IPV6_PKTINFO). On receive, IPv4 delivers the IP header, so
//! TTL and addresses are read from it; IPv6 does not, so the hop limit and
//! the destination come from control messages.

use std::io::{self, IoSlice, IoSliceMut};
use std::net::{IpAddr, Ipv6Addr, SocketAddrV6};
use std::os::fd::AsRawFd;

use nix::sys::socket::{
    ControlMessage, ControlMessageOwned, MsgFlags, SockaddrIn, SockaddrIn6, SockaddrStorage,
    recvmsg, sendmsg, setsockopt, sockopt,
};
use socket2::{Domain, InterfaceIndexOrAddress, Protocol, Socket, Type};
use tokio::io::unix::AsyncFd;
use vrrp::packet::{IPPROTO_VRRP, MULTICAST_V4, MULTICAST_V6, REQUIRED_HOP_LIMIT};

/// DSCP CS6 (network control), as RFC 5798 §5.1.1.1 asks and keepalived sends.
const TOS_NETWORK_CONTROL: u32 = 0xc0;
/// Large enough for the largest VRRP packet with any IPv4 header.
const RECEIVE_BUFFER: usize = 8192;

/// One packet as it arrived, before any VRRP check.
pub struct Datagram {
    pub bytes: Vec<u8>,
    /// IPv6 only (IPv4 carries these in `bytes`).
    pub ipv6_meta: Option<Ipv6Meta>,
}

pub struct Ipv6Meta {
    pub source: IpAddr,
    pub destination: IpAddr,
    pub hop_limit: u8,
}

pub struct VrrpSocket {
    fd: AsyncFd<Socket>,
    ifindex: u32,
    ipv6: bool,
}

impl VrrpSocket {
    /// Opens the socket on `ifname`, joining the VRRP group if asked.
    pub fn open(ifname: &str, ifindex: u32, ipv6: bool, join_group: bool) -> io::Result<Self> {
        let domain = if ipv6 { Domain::IPV6 } else { Domain::IPV4 };
        let socket = Socket::new(
            domain,
            Type::RAW,
            Some(Protocol::from(i32::from(IPPROTO_VRRP))),
        )?;
        socket.set_nonblocking(true)?;
        socket.bind_device(Some(ifname.as_bytes()))?;
        let hops = u32::from(REQUIRED_HOP_LIMIT);
        if ipv6 {
            socket.set_multicast_hops_v6(hops)?;
            socket.set_unicast_hops_v6(hops)?;
            socket.set_multicast_loop_v6(false)?;
            socket.set_multicast_if_v6(ifindex)?;
            socket.set_tclass_v6(TOS_NETWORK_CONTROL)?;
            socket.set_recv_hoplimit_v6(true)?;
            setsockopt(&socket, sockopt::Ipv6RecvPacketInfo, &true)?;
            if join_group {
                socket.join_multicast_v6(&MULTICAST_V6, ifindex)?;
            }
        } else {
            socket.set_multicast_ttl_v4(hops)?;
            socket.set_ttl_v4(hops)?;
            socket.set_multicast_loop_v4(false)?;
            netsys::set_multicast_if_v4_index(&socket, ifindex)?;
            socket.set_tos_v4(TOS_NETWORK_CONTROL)?;
            if join_group {
                socket
                    .join_multicast_v4_n(&MULTICAST_V4, &InterfaceIndexOrAddress::Index(ifindex))?;
            }
        }
        let fd = netsys::register_async(socket)?;
        Ok(VrrpSocket { fd, ifindex, ipv6 })
    }

    /// Waits for the next packet.
    pub async fn receive(&self) -> io::Result<Datagram> {
        loop {
            let mut guard = self.fd.readable().await?;
            match guard.try_io(|fd| self.receive_now(fd.get_ref())) {
                Ok(result) => return result,
                Err(_would_block) => continue,
            }
        }
    }

    fn receive_now(&self, socket: &Socket) -> io::Result<Datagram> {
        let mut bytes = vec![0u8; RECEIVE_BUFFER];
        let mut control = nix::cmsg_space!(libc::c_int, libc::in6_pktinfo);
        let mut iov = [IoSliceMut::new(&mut bytes)];
        let message = recvmsg::<SockaddrStorage>(
            socket.as_raw_fd(),
            &mut iov,
            Some(&mut control),
            MsgFlags::MSG_DONTWAIT,
        )?;
        let length = message.bytes;
        let ipv6_meta = if self.ipv6 {
            let mut hop_limit = None;
            let mut destination = None;
            for cmsg in message.cmsgs()? {
                match cmsg {
                    ControlMessageOwned::Ipv6HopLimit(limit) => {
                        hop_limit = u8::try_from(limit).ok()
                    }
                    ControlMessageOwned::Ipv6PacketInfo(info) => {
                        destination = Some(IpAddr::V6(Ipv6Addr::from(info.ipi6_addr.s6_addr)))
                    }
                    _ => {}
                }
            }
            let source = message
                .address
                .as_ref()
                .and_then(SockaddrStorage::as_sockaddr_in6)
                .map(|a| IpAddr::V6(a.ip()));
            match (source, destination, hop_limit) {
                (Some(source), Some(destination), Some(hop_limit)) => Some(Ipv6Meta {
                    source,
                    destination,
                    hop_limit,
                }),
                _ => {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "IPv6 packet without source, destination or hop limit",
                    ));
                }
            }
        } else {
            None
        };
        bytes.truncate(length);
        Ok(Datagram { bytes, ipv6_meta })
    }

    /// Sends one VRRP message from `source` to `destination`.
    pub fn send(&self, source: IpAddr, destination: IpAddr, message: &[u8]) -> io::Result<()> {
        let fd = self.fd.get_ref().as_raw_fd();
        let iov = [IoSlice::new(message)];
        let ifindex = self.ifindex;
        match (source, destination) {
            (IpAddr::V4(source), IpAddr::V4(destination)) => {
                let info = libc::in_pktinfo {
                    ipi_ifindex: i32::try_from(ifindex).unwrap_or_default(),
                    ipi_spec_dst: libc::in_addr {
                        s_addr: u32::from(source).to_be(),
                    },
                    ipi_addr: libc::in_addr { s_addr: 0 },
                };
                let to = SockaddrIn::from(std::net::SocketAddrV4::new(destination, 0));
                sendmsg(
                    fd,
                    &iov,
                    &[ControlMessage::Ipv4PacketInfo(&info)],
                    MsgFlags::empty(),
                    Some(&to),
                )?;
            }
            (IpAddr::V6(source), IpAddr::V6(destination)) => {
                let info = libc::in6_pktinfo {
                    ipi6_addr: libc::in6_addr {
                        s6_addr: source.octets(),
                    },
                    ipi6_ifindex: ifindex,
                };
                let scope = if destination.is_multicast() || destination.is_unicast_link_local() {
                    ifindex
                } else {
                    0
                };
                let to = SockaddrIn6::from(SocketAddrV6::new(destination, 0, 0, scope));
                sendmsg(
                    fd,
                    &iov,
                    &[ControlMessage::Ipv6PacketInfo(&info)],
                    MsgFlags::empty(),
                    Some(&to),
                )?;
            }
            _ => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("cannot send from {source} to {destination}: address families differ"),
                ));
            }
        }
        Ok(())
    }
}
