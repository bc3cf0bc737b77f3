//! Interfaces and addresses through rtnetlink: finding an interface's
//! index and primary address, adding and removing virtual addresses, and
//! following link state (up and running, or not) for `track_interface`.

use std::collections::BTreeMap;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use anyhow::{Context, Result, anyhow};
use futures::{StreamExt, TryStreamExt};
use hapair_config::VirtualAddress;
use log::warn;
use rtnetlink::packet_core::NetlinkPayload;
use rtnetlink::packet_route::RouteNetlinkMessage;
use rtnetlink::packet_route::address::{
    AddressAttribute, AddressFlags, AddressHeaderFlags, AddressMessage,
};
use rtnetlink::packet_route::link::{LinkAttribute, LinkFlags, LinkMessage};
use rtnetlink::sys::{AsyncSocket, SocketAddr};
use rtnetlink::{AddressMessageBuilder, Handle};
use tokio::sync::mpsc;

/// A connection to the kernel's routing netlink.
#[derive(Clone)]
pub struct Netlink {
    handle: Handle,
}

/// An address found on an interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InterfaceAddress {
    pub address: IpAddr,
    pub prefix_len: u8,
    /// A secondary IPv4 address (one added in the subnet of another).
    pub secondary: bool,
}

impl Netlink {
    /// Opens the connection; its driver runs as a task of the current runtime.
    pub fn connect() -> Result<Netlink> {
        let (connection, handle, _) =
            rtnetlink::new_connection().context("cannot open a netlink socket")?;
        tokio::spawn(connection);
        Ok(Netlink { handle })
    }

    /// The index of the interface called `name`.
    pub async fn interface_index(&self, name: &str) -> Result<u32> {
        let mut links = self
            .handle
            .link()
            .get()
            .match_name(name.to_string())
            .execute();
        match links.try_next().await {
            Ok(Some(link)) => Ok(link.header.index),
            Ok(None) | Err(_) => Err(anyhow!("interface {name} does not exist")),
        }
    }

    /// Every interface by name, with whether its link is up (see
    /// [`link_is_up`]).
    pub async fn link_states(&self) -> Result<BTreeMap<String, bool>> {
        let mut links = self.handle.link().get().execute();
        let mut states = BTreeMap::new();
        while let Some(link) = links.try_next().await.context("cannot list interfaces")? {
            if let Some(name) = link_name(&link) {
                states.insert(name, link_is_up(&link));
            }
        }
        Ok(states)
    }

    /// Every address on the interface.
    pub async fn addresses(&self, ifindex: u32) -> Result<Vec<InterfaceAddress>> {
        let mut stream = self
            .handle
            .address()
            .get()
            .set_link_index_filter(ifindex)
            .execute();
        let mut found = Vec::new();
        while let Some(message) = stream.try_next().await.context("cannot list addresses")? {
            if message.header.index != ifindex {
                continue;
            }
            let mut address = None;
            for attribute in &message.attributes {
                match attribute {
                    // IFA_LOCAL is the interface's own address where it differs
                    // from IFA_ADDRESS (point-to-point links).
                    AddressAttribute::Local(local) => address = Some(*local),
                    AddressAttribute::Address(a) if address.is_none() => address = Some(*a),
                    _ => {}
                }
            }
            if let Some(address) = address {
                found.push(InterfaceAddress {
                    address,
                    prefix_len: message.header.prefix_len,
                    secondary: message.header.flags.contains(AddressHeaderFlags::Secondary),
                });
            }
        }
        Ok(found)
    }

    /// Adds a virtual address; one already there is left as it is.
    pub async fn add_address(&self, ifindex: u32, vip: &VirtualAddress) -> Result<()> {
        let mut request = self
            .handle
            .address()
            .add(ifindex, vip.address, vip.prefix_len);
        if let Some(label) = &vip.label {
            request
                .message_mut()
                .attributes
                .push(AddressAttribute::Label(label.clone()));
        }
        if vip.address.is_ipv6() {
            // A virtual address moves between hosts: duplicate address
            // detection would only keep it tentative after a failover.
            request
                .message_mut()
                .attributes
                .push(AddressAttribute::Flags(AddressFlags::Nodad));
        }
        match request.execute().await {
            Err(error) if errno(&error) == Some(libc::EEXIST) => Ok(()),
            result => {
                result.with_context(|| format!("cannot add {}/{}", vip.address, vip.prefix_len))
            }
        }
    }

    /// Removes an address; one that is not there is not an error.
    pub async fn remove_address(
        &self,
        ifindex: u32,
        address: IpAddr,
        prefix_len: u8,
    ) -> Result<()> {
        let message = address_message(ifindex, address, prefix_len);
        match self.handle.address().del(message).execute().await {
            Err(error)
                if matches!(
                    errno(&error),
                    Some(libc::EADDRNOTAVAIL | libc::ENOENT | libc::ENODEV)
                ) =>
            {
                Ok(())
            }
            result => result.with_context(|| format!("cannot remove {address}/{prefix_len}")),
        }
    }
}

/// A change of an interface's link state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkChange {
    pub name: String,
    /// False also when the interface was deleted.
    pub up: bool,
}

/// Sends every link state change the kernel announces (the RTNLGRP_LINK
/// multicast group) to `changes`, from a task of the current runtime, until
/// the receiver is dropped. Subscribe before reading the current states
/// with [`Netlink::link_states`], so that no change falls in between.
pub fn watch_links(changes: mpsc::UnboundedSender<LinkChange>) -> Result<()> {
    let (mut connection, _handle, mut messages) =
        rtnetlink::new_connection().context("cannot open a netlink socket for link events")?;
    connection
        .socket_mut()
        .socket_mut()
        .bind(&SocketAddr::new(0, rtnetlink::constants::RTMGRP_LINK))
        .context("cannot subscribe to link events")?;
    tokio::spawn(connection);
    tokio::spawn(async move {
        while let Some((message, _)) = messages.next().await {
            let change = match message.payload {
                NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewLink(link)) => {
                    link_name(&link).map(|name| LinkChange {
                        up: link_is_up(&link),
                        name,
                    })
                }
                NetlinkPayload::InnerMessage(RouteNetlinkMessage::DelLink(link)) => {
                    link_name(&link).map(|name| LinkChange { name, up: false })
                }
                _ => None,
            };
            if let Some(change) = change
                && changes.send(change).is_err()
            {
                return;
            }
        }
        warn!("link events stopped: the netlink connection closed");
    });
    Ok(())
}

fn link_name(link: &LinkMessage) -> Option<String> {
    link.attributes
        .iter()
        .find_map(|attribute| match attribute {
            LinkAttribute::IfName(name) => Some(name.clone()),
            _ => None,
        })
}

/// keepalived's test: the interface is up (IFF_UP) and running
/// (IFF_RUNNING: it has carrier).
pub fn link_is_up(link: &LinkMessage) -> bool {
    link.header
        .flags
        .contains(LinkFlags::Up | LinkFlags::Running)
}

fn address_message(ifindex: u32, address: IpAddr, prefix_len: u8) -> AddressMessage {
    match address {
        IpAddr::V4(a) => AddressMessageBuilder::<Ipv4Addr>::new()
            .index(ifindex)
            .address(a, prefix_len)
            .build(),
        IpAddr::V6(a) => AddressMessageBuilder::<Ipv6Addr>::new()
            .index(ifindex)
            .address(a, prefix_len)
            .build(),
    }
}

fn errno(error: &rtnetlink::Error) -> Option<i32> {
    match error {
        rtnetlink::Error::NetlinkError(message) => {
            Some(message.to_io().raw_os_error().unwrap_or_default())
        }
        _ => None,
    }
}

/// The address an instance advertises from, when none is configured: the
/// first primary IPv4 address of the interface, or its IPv6 link-local
/// address, never one of the virtual addresses.
pub fn choose_primary(
    addresses: &[InterfaceAddress],
    ipv6: bool,
    virtual_addresses: &[IpAddr],
) -> io::Result<IpAddr> {
    addresses
        .iter()
        .filter(|a| !virtual_addresses.contains(&a.address))
        .find(|a| match a.address {
            IpAddr::V4(_) => !ipv6 && !a.secondary,
            IpAddr::V6(v6) => ipv6 && v6.is_unicast_link_local(),
        })
        .map(|a| a.address)
        .ok_or_else(|| {
            let wanted = if ipv6 {
                "an IPv6 link-local"
            } else {
                "an IPv4"
            };
            io::Error::new(
                io::ErrorKind::NotFound,
                format!("the interface has no {wanted} address"),
            )
        })
}
