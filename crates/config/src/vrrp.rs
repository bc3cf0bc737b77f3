//! vrrpd's configuration file: the YAML schema, its defaults and every rule a
//! config must follow before vrrpd acts on it.
//!
//! Option names are keepalived's where the option means the same thing. The
//! same file is copied to both hosts; an instance may carry per-node settings
//! under `nodes:`, and [`VrrpConfig::load`] picks the entry of the node it is
//! given (vrrpd passes `--node`, or the hostname).
//!
//! ```yaml
//! instances:
//!   - name: VI_1
//!     interface: eth0
//!     virtual_router_id: 51
//!     priority: 150
//!     advert_int: 1
//!     virtual_ipaddress: [10.99.0.100/24]
//!     notify_master: [/etc/hapair/hooks/promote, r0]
//! ```
//!
//! Health tracking and sync groups live in [`track`].

mod raw;
mod track;

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

pub use crate::error::ConfigError;
pub use crate::hook::HookCommand;
use crate::hook::{HookSettings, RawHook};
use crate::yaml::{Number, parse_document, read_file};
use raw::{RawFile, RawInstance, RawNodeOverride, RawVirtualAddress};
use track::{Definitions, InstanceTracking};
pub use track::{MasterHookFailure, SyncGroup, TrackFile, Tracked, VrrpScript};

/// Linux refuses interface names (and address labels) longer than this.
const MAX_INTERFACE_NAME_BYTES: usize = 15;
/// VRRPv2 authentication data is 8 bytes (RFC 2338 section 5.3.11).
const MAX_AUTH_PASS_BYTES: usize = 8;

/// Every virtual router instance vrrpd runs on this node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VrrpConfig {
    pub instances: Vec<VrrpInstance>,
    /// The `hooks:` section: journal, script security, notify_fifo.
    pub hooks: HookSettings,
    /// `vrrp_scripts:`, sorted by name; a script runs only while an
    /// instance tracks it.
    pub vrrp_scripts: Vec<VrrpScript>,
    /// `track_files:`, sorted by name.
    pub track_files: Vec<TrackFile>,
    /// `sync_groups:`, sorted by name.
    pub sync_groups: Vec<SyncGroup>,
}

/// One virtual router, with the chosen node's overrides applied and every
/// default filled in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VrrpInstance {
    pub name: String,
    pub interface: String,
    /// 1..=255.
    pub virtual_router_id: u8,
    /// 1..=255; 255 means this node owns the addresses.
    pub priority: u8,
    /// 2 or 3.
    pub version: u8,
    /// The advertisement interval in hundredths of a second: a multiple of
    /// 100 up to 25500 for version 2, 1..=4095 for version 3.
    pub advert_int_centis: u16,
    /// False when the config says `nopreempt: true`.
    pub preempt: bool,
    pub preempt_delay: Duration,
    /// At least one, all of one address family, no address twice.
    pub virtual_ipaddress: Vec<VirtualAddress>,
    pub unicast_src_ip: Option<IpAddr>,
    /// Empty means multicast adverts.
    pub unicast_peer: Vec<IpAddr>,
    /// VRRPv2 simple-text password (1..=8 bytes).
    pub auth_pass: Option<String>,
    pub garp_master_delay: Duration,
    pub garp_master_repeat: u32,
    /// `None`: no periodic gratuitous ARP / NA while master.
    pub garp_master_refresh: Option<Duration>,
    /// VRRPv3 over IPv4: checksum without the pseudo-header, as VRRPv2 does
    /// (keepalived's option of that name).
    pub v3_checksum_as_v2: bool,
    /// Accept unicast adverts whatever their TTL / hop limit.
    pub unicast_skip_ttl_check: bool,
    /// How long each notify hook may run.
    pub notify_timeout: Duration,
    pub notify_master: Option<HookCommand>,
    pub notify_backup: Option<HookCommand>,
    pub notify_fault: Option<HookCommand>,
    pub notify_stop: Option<HookCommand>,
    /// Run on every transition, with keepalived's four extra arguments.
    pub notify: Option<HookCommand>,
    /// `vrrp_scripts` this instance tracks, with the weight in force.
    pub track_script: Vec<Tracked>,
    /// Interfaces whose link state this instance tracks (default weight 0:
    /// FAULT while the link is down).
    pub track_interface: Vec<Tracked>,
    /// `track_files` this instance tracks, with the weight in force.
    pub track_file: Vec<Tracked>,
    /// What a failing `notify_master` does (default: nothing but a log line).
    pub master_hook_failure: MasterHookFailure,
    /// With `master_hook_failure: fault`, how long the instance stays in
    /// FAULT before it tries again (default 10 s).
    pub master_hook_retry: Duration,
}

/// An address the master holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VirtualAddress {
    pub address: IpAddr,
    /// 32 (IPv4) or 128 (IPv6) when the config gives no prefix.
    pub prefix_len: u8,
    /// The interface to add it to, when not the instance's own.
    pub dev: Option<String>,
    /// IPv4 address label, such as `eth0:vip`.
    pub label: Option<String>,
}

impl VrrpConfig {
    /// Reads and validates the config file at `path` for `node` (the name
    /// under an instance's `nodes:` whose settings apply).
    pub fn load(path: &Path, node: Option<&str>) -> Result<VrrpConfig, ConfigError> {
        let origin = path.display().to_string();
        let text = read_file(path, &origin)?;
        VrrpConfig::parse(&text, &origin, node)
    }

    /// Validates config text; `origin` names it in error messages.
    pub fn parse(text: &str, origin: &str, node: Option<&str>) -> Result<VrrpConfig, ConfigError> {
        let file: RawFile = parse_document(text, origin)?;
        if file.instances.is_empty() {
            return Err(ConfigError::invalid(
                origin,
                "instances",
                "no instance is defined; add at least one virtual router under `instances:`",
            ));
        }
        let definitions = Definitions::build(origin, &file.vrrp_scripts, &file.track_files)?;
        let mut instances = Vec::with_capacity(file.instances.len());
        for (index, raw) in file.instances.iter().enumerate() {
            let place = Place::new(origin, index, raw.name.as_deref())?;
            instances.push(build_for_node(raw, &place, node, &definitions)?);
        }
        check_instances_apart(origin, &instances)?;
        let sync_groups = track::sync_groups(origin, &file.sync_groups, &instances)?;
        let hooks = HookSettings::from_raw(file.hooks.as_ref(), origin)?;
        Ok(VrrpConfig {
            instances,
            hooks,
            vrrp_scripts: definitions.vrrp_scripts,
            track_files: definitions.track_files,
            sync_groups,
        })
    }
}

/// Where an instance sits in the file, to prefix its field paths with.
struct Place<'a> {
    origin: &'a str,
    /// The instance's name, once checked.
    name: &'a str,
    /// `instances[0] (VI_1)`
    prefix: String,
}

impl<'a> Place<'a> {
    /// Checks the instance's name, which every later message quotes.
    fn new(origin: &'a str, index: usize, name: Option<&'a str>) -> Result<Place<'a>, ConfigError> {
        let unnamed = Place {
            origin,
            name: "",
            prefix: format!("instances[{index}]"),
        };
        match name {
            None => Err(unnamed.error("name", "missing; give the instance a name such as VI_1")),
            Some(name)
                if name.is_empty() || name.chars().any(|c| c.is_whitespace() || c.is_control()) =>
            {
                Err(unnamed.error(
                    "name",
                    format!("`{name}` is not a name: use one word without spaces"),
                ))
            }
            Some(name) => Ok(Place {
                origin,
                name,
                prefix: instance_label(index, name),
            }),
        }
    }

    fn error(&self, field: &str, message: impl AsRef<str>) -> ConfigError {
        ConfigError::invalid(
            self.origin,
            &format!("{}.{field}", self.prefix),
            message.as_ref(),
        )
    }

    /// Attaches `field` to the message of a failed check.
    fn check<T>(&self, field: &str, result: Result<T, String>) -> Result<T, ConfigError> {
        result.map_err(|message| self.error(field, message))
    }
}

fn instance_label(index: usize, name: &str) -> String {
    format!("instances[{index}] ({name})")
}

/// Builds the instance as `node` sees it. When the instance has per-node
/// settings, the other nodes' views are validated as well, so that a mistake
/// in the peer's entry is caught on both hosts of the pair.
fn build_for_node(
    raw: &RawInstance,
    place: &Place,
    node: Option<&str>,
    definitions: &Definitions,
) -> Result<VrrpInstance, ConfigError> {
    let Some(nodes) = &raw.nodes else {
        return build_instance(raw, place, None, definitions);
    };
    if nodes.is_empty() {
        return Err(place.error(
            "nodes",
            "is empty; remove it or add an entry per node (e.g. `ha1: {priority: 150}`)",
        ));
    }
    let present = nodes
        .keys()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .join(", ");
    let Some(node) = node else {
        return Err(place.error(
            "nodes",
            format!(
                "this instance has per-node settings (for {present}) but no node was chosen; \
                 pass --node NAME (vrrpd uses the hostname when --node is absent)"
            ),
        ));
    };
    let Some(overrides) = nodes.get(node) else {
        return Err(place.error(
            "nodes",
            format!(
                "no entry for node `{node}`; nodes present: {present} \
                 (add `{node}:` here, or choose one of them with --node)"
            ),
        ));
    };
    let instance = build_instance(
        raw,
        place,
        Some(NodeEntry {
            name: node,
            overrides,
        }),
        definitions,
    )?;
    for (other, overrides) in nodes.iter().filter(|(name, _)| *name != node) {
        build_instance(
            raw,
            place,
            Some(NodeEntry {
                name: other,
                overrides,
            }),
            definitions,
        )?;
    }
    Ok(instance)
}

/// The `nodes:` entry whose settings replace the instance's own.
#[derive(Clone, Copy)]
struct NodeEntry<'a> {
    name: &'a str,
    overrides: &'a RawNodeOverride,
}

/// A setting's value for one node, and the field path it came from.
struct Setting<'a, T> {
    value: Option<&'a T>,
    path: String,
}

fn setting<'a, T>(
    field: &str,
    instance_value: &'a Option<T>,
    node: Option<NodeEntry<'a>>,
    node_value: fn(&'a RawNodeOverride) -> &'a Option<T>,
) -> Setting<'a, T> {
    if let Some(entry) = node
        && let Some(value) = node_value(entry.overrides)
    {
        return Setting {
            value: Some(value),
            path: format!("nodes.{}.{field}", entry.name),
        };
    }
    Setting {
        value: instance_value.as_ref(),
        path: field.to_owned(),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Family {
    Ipv4,
    Ipv6,
}

impl Family {
    fn of(address: &IpAddr) -> Family {
        match address {
            IpAddr::V4(_) => Family::Ipv4,
            IpAddr::V6(_) => Family::Ipv6,
        }
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Family::Ipv4 => "IPv4",
            Family::Ipv6 => "IPv6",
        })
    }
}

fn build_instance(
    raw: &RawInstance,
    place: &Place,
    node: Option<NodeEntry>,
    definitions: &Definitions,
) -> Result<VrrpInstance, ConfigError> {
    let interface = setting("interface", &raw.interface, node, |o| &o.interface);
    let interface = match interface.value {
        None => {
            return Err(place.error(
                "interface",
                "missing; name the network interface the virtual router runs on \
                 (for the instance, or per node under nodes.<node>.interface)",
            ));
        }
        Some(name) => {
            place.check(&interface.path, check_interface_name(name))?;
            name.clone()
        }
    };

    let virtual_router_id = match raw.virtual_router_id {
        None => {
            return Err(place.error(
                "virtual_router_id",
                "missing; choose an id in 1..=255 shared by both nodes",
            ));
        }
        Some(id) => place.check("virtual_router_id", id.whole_in(1u8..=255))?,
    };

    let priority = setting("priority", &raw.priority, node, |o| &o.priority);
    let priority = match priority.value {
        None => 100,
        Some(value) => place.check(&priority.path, value.whole_in(1u8..=255))?,
    };

    let virtual_ipaddress = virtual_addresses(raw, place, &interface)?;
    let family = Family::of(&virtual_ipaddress[0].address);

    let version = match raw.version {
        None => 2,
        Some(value) => place.check(
            "version",
            value
                .whole_in(2u8..=3)
                .map_err(|_| format!("{value} is not a VRRP version; use 2 or 3")),
        )?,
    };
    if family == Family::Ipv6 && version != 3 {
        return Err(place.error(
            "version",
            "IPv6 virtual addresses need VRRP version 3 (VRRPv2 is IPv4 only, and 2 is the default); \
             set version: 3",
        ));
    }

    let advert_int_centis = match raw.advert_int {
        None => 100,
        Some(value) => place.check("advert_int", advert_centis(value, version))?,
    };

    let preempt = !raw.nopreempt.unwrap_or(false);
    let preempt_delay = match raw.preempt_delay {
        None => Duration::ZERO,
        Some(value) => place.check("preempt_delay", value.seconds_in(0.0..=1000.0))?,
    };
    if !preempt && !preempt_delay.is_zero() {
        return Err(place.error(
            "preempt_delay",
            "has no effect with nopreempt: true; remove one of the two",
        ));
    }

    let unicast_src_ip = setting("unicast_src_ip", &raw.unicast_src_ip, node, |o| {
        &o.unicast_src_ip
    });
    let unicast_src_ip = match unicast_src_ip.value {
        None => None,
        Some(text) => Some(place.check(&unicast_src_ip.path, unicast_address(text, family))?),
    };
    let unicast_peer = unicast_peers(raw, place, node, family, unicast_src_ip)?;

    let auth_pass = match &raw.authentication {
        None => None,
        Some(_) if version == 3 => {
            return Err(place.error(
                "authentication",
                "VRRPv3 has no authentication (RFC 5798 removed it); remove it or set version: 2",
            ));
        }
        Some(authentication) => Some(password(authentication, place)?),
    };

    let garp_master_delay = match raw.garp_master_delay {
        None => Duration::from_secs(5),
        Some(value) => place.check("garp_master_delay", value.seconds_in(0.0..=1000.0))?,
    };
    let garp_master_repeat = match raw.garp_master_repeat {
        None => 5,
        Some(value) => place.check("garp_master_repeat", value.whole_in(1u32..=255))?,
    };
    let garp_master_refresh = match raw.garp_master_refresh {
        None => None,
        Some(value) => Some(place.check("garp_master_refresh", value.seconds_in(0.0..=86400.0))?)
            .filter(|refresh| !refresh.is_zero()),
    };

    let v3_checksum_as_v2 = raw.v3_checksum_as_v2.unwrap_or(false);
    if v3_checksum_as_v2 && !(version == 3 && family == Family::Ipv4) {
        return Err(place.error(
            "v3_checksum_as_v2",
            "only applies to VRRP version 3 over IPv4; remove it",
        ));
    }
    let unicast_skip_ttl_check = raw.unicast_skip_ttl_check.unwrap_or(false);
    if unicast_skip_ttl_check && unicast_peer.is_empty() {
        return Err(place.error(
            "unicast_skip_ttl_check",
            "only applies to unicast adverts, and unicast_peer is empty; \
             list the peers or remove it (multicast adverts always need TTL 255)",
        ));
    }

    let notify_timeout = match raw.notify_timeout {
        None => Duration::from_secs(30),
        Some(value) => place.check("notify_timeout", value.seconds_in(0.1..=3600.0))?,
    };
    let hook = |field: &str, raw: &Option<RawHook>| -> Result<Option<HookCommand>, ConfigError> {
        raw.as_ref()
            .map(|hook| place.check(field, hook.to_command()))
            .transpose()
    };

    let notify_master = hook("notify_master", &raw.notify_master)?;
    let InstanceTracking {
        track_script,
        track_interface,
        track_file,
        master_hook_failure,
        master_hook_retry,
    } = track::instance_tracking(raw, place, definitions, notify_master.is_some())?;

    Ok(VrrpInstance {
        name: place.name.to_owned(),
        interface,
        virtual_router_id,
        priority,
        version,
        advert_int_centis,
        preempt,
        preempt_delay,
        virtual_ipaddress,
        unicast_src_ip,
        unicast_peer,
        auth_pass,
        garp_master_delay,
        garp_master_repeat,
        garp_master_refresh,
        v3_checksum_as_v2,
        unicast_skip_ttl_check,
        notify_timeout,
        notify_master,
        notify_backup: hook("notify_backup", &raw.notify_backup)?,
        notify_fault: hook("notify_fault", &raw.notify_fault)?,
        notify_stop: hook("notify_stop", &raw.notify_stop)?,
        notify: hook("notify", &raw.notify)?,
        track_script,
        track_interface,
        track_file,
        master_hook_failure,
        master_hook_retry,
    })
}

/// The advert interval in centiseconds: whole seconds for VRRPv2, hundredths
/// (rounded, as keepalived does) for VRRPv3.
fn advert_centis(value: Number, version: u8) -> Result<u16, String> {
    if version == 2 {
        let seconds = value.whole_in(1u16..=255).map_err(|_| {
            format!(
                "{value} is not a whole number of seconds in 1..=255; VRRPv2 advertises in whole \
                 seconds (use version: 3 for sub-second intervals)"
            )
        })?;
        return Ok(seconds * 100);
    }
    let centis = (value.as_f64() * 100.0).round();
    if (1.0..=4095.0).contains(&centis) {
        Ok(centis as u16)
    } else {
        Err(format!(
            "{value} is out of range 0.01..=40.95 seconds (VRRPv3 counts in hundredths of a second)"
        ))
    }
}

fn virtual_addresses(
    raw: &RawInstance,
    place: &Place,
    interface: &str,
) -> Result<Vec<VirtualAddress>, ConfigError> {
    let entries = raw.virtual_ipaddress.as_deref().unwrap_or_default();
    if entries.is_empty() {
        return Err(place.error(
            "virtual_ipaddress",
            "at least one virtual address is required, e.g. [10.0.0.100/24]",
        ));
    }
    let mut addresses: Vec<VirtualAddress> = Vec::with_capacity(entries.len());
    for (index, entry) in entries.iter().enumerate() {
        let field = format!("virtual_ipaddress[{index}]");
        let address = place.check(&field, virtual_address(entry, interface))?;
        if let Some(first) = addresses.first()
            && Family::of(&first.address) != Family::of(&address.address)
        {
            return Err(place.error(
                &field,
                format!(
                    "{} is {} but virtual_ipaddress[0] is {}; an instance carries one address \
                     family (use a second instance for the other)",
                    address.address,
                    Family::of(&address.address),
                    Family::of(&first.address)
                ),
            ));
        }
        if let Some(earlier) = addresses
            .iter()
            .position(|other| other.address == address.address)
        {
            return Err(place.error(
                &field,
                format!(
                    "{} is already listed as virtual_ipaddress[{earlier}]",
                    address.address
                ),
            ));
        }
        addresses.push(address);
    }
    Ok(addresses)
}

fn virtual_address(entry: &RawVirtualAddress, interface: &str) -> Result<VirtualAddress, String> {
    let (address_text, dev, label) = match entry {
        RawVirtualAddress::Inline(text) => inline_virtual_address(text)?,
        RawVirtualAddress::Map(map) => (map.address.as_str(), map.dev.clone(), map.label.clone()),
    };
    let (address, prefix_len) = prefixed_address(address_text)?;
    if address.is_unspecified() || address.is_multicast() {
        return Err(format!(
            "{address} cannot be a virtual address (it is unspecified or multicast)"
        ));
    }
    if let Some(dev) = &dev {
        check_interface_name(dev)?;
    }
    if let Some(label) = &label {
        if address.is_ipv6() {
            return Err("Linux has address labels for IPv4 only; remove the label".into());
        }
        check_label(label, dev.as_deref().unwrap_or(interface))?;
    }
    Ok(VirtualAddress {
        address,
        prefix_len,
        dev,
        label,
    })
}

/// Splits keepalived's `ADDRESS[/LEN] [dev NAME] [label NAME]` into its parts.
fn inline_virtual_address(text: &str) -> Result<(&str, Option<String>, Option<String>), String> {
    let mut words = text.split_whitespace();
    let address = words.next().ok_or("the address is empty")?;
    let (mut dev, mut label) = (None, None);
    while let Some(keyword) = words.next() {
        let slot = match keyword {
            "dev" => &mut dev,
            "label" => &mut label,
            other => {
                return Err(format!(
                    "unknown option `{other}` in `{text}`; after the address only \
                     `dev NAME` and `label NAME` are supported"
                ));
            }
        };
        let value = words
            .next()
            .ok_or_else(|| format!("`{keyword}` needs a value in `{text}`"))?;
        if slot.replace(value.to_owned()).is_some() {
            return Err(format!("`{keyword}` is given twice in `{text}`"));
        }
    }
    Ok((address, dev, label))
}

/// Parses `ADDRESS[/LEN]`; no prefix means a host address, as in keepalived.
fn prefixed_address(text: &str) -> Result<(IpAddr, u8), String> {
    let (address_text, prefix_text) = match text.split_once('/') {
        Some((address, prefix)) => (address, Some(prefix)),
        None => (text, None),
    };
    let address: IpAddr = address_text
        .parse()
        .map_err(|_| format!("`{address_text}` is not an IP address"))?;
    let max_len = if address.is_ipv4() { 32 } else { 128 };
    let prefix_len = match prefix_text {
        None => max_len,
        Some(prefix) => prefix
            .parse::<u8>()
            .ok()
            .filter(|len| (1..=max_len).contains(len))
            .ok_or_else(|| {
                format!(
                    "`/{prefix}` is not a prefix length for {}; use 1..={max_len}",
                    Family::of(&address)
                )
            })?,
    };
    Ok((address, prefix_len))
}

fn check_interface_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("the interface name is empty".into());
    }
    if name.len() > MAX_INTERFACE_NAME_BYTES {
        return Err(format!(
            "`{name}` is longer than the {MAX_INTERFACE_NAME_BYTES} bytes Linux allows for an interface name"
        ));
    }
    if name == "."
        || name == ".."
        || name
            .chars()
            .any(|c| c == '/' || c == ':' || c.is_whitespace() || c.is_control())
    {
        return Err(format!(
            "`{name}` is not a Linux interface name (no '/', ':' or spaces; not . or ..)"
        ));
    }
    Ok(())
}

/// Linux (iproute2) wants an address label to be the device name, or the
/// device name, a colon and a suffix.
fn check_label(label: &str, dev: &str) -> Result<(), String> {
    if label.len() > MAX_INTERFACE_NAME_BYTES {
        return Err(format!(
            "label `{label}` is longer than the {MAX_INTERFACE_NAME_BYTES} bytes Linux allows"
        ));
    }
    let suffix_ok = |suffix: &str| !suffix.chars().any(|c| c.is_whitespace() || c.is_control());
    match label.strip_prefix(dev) {
        Some("") => Ok(()),
        Some(rest) if rest.starts_with(':') && suffix_ok(rest) => Ok(()),
        _ => Err(format!(
            "label `{label}` must be the device name `{dev}` or start with `{dev}:` (e.g. `{dev}:vip`)"
        )),
    }
}

/// A unicast source or peer address, which must be of the VIPs' family.
fn unicast_address(text: &str, family: Family) -> Result<IpAddr, String> {
    let address: IpAddr = text
        .parse()
        .map_err(|_| format!("`{text}` is not an IP address"))?;
    let broadcast = matches!(address, IpAddr::V4(v4) if v4.is_broadcast());
    if address.is_unspecified() || address.is_multicast() || broadcast {
        return Err(format!("{address} is not a unicast address"));
    }
    if Family::of(&address) != family {
        return Err(format!(
            "{address} is {} but the virtual addresses are {family}; use an {family} address",
            Family::of(&address)
        ));
    }
    Ok(address)
}

fn unicast_peers(
    raw: &RawInstance,
    place: &Place,
    node: Option<NodeEntry>,
    family: Family,
    source: Option<IpAddr>,
) -> Result<Vec<IpAddr>, ConfigError> {
    let peers = setting("unicast_peer", &raw.unicast_peer, node, |o| &o.unicast_peer);
    let mut addresses: Vec<IpAddr> = Vec::new();
    for (index, text) in peers
        .value
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .enumerate()
    {
        let field = format!("{}[{index}]", peers.path);
        let address = place.check(&field, unicast_address(text, family))?;
        if Some(address) == source {
            return Err(place.error(
                &field,
                format!("{address} is this node's unicast_src_ip; list only the other nodes"),
            ));
        }
        if let Some(earlier) = addresses.iter().position(|other| *other == address) {
            return Err(place.error(
                &field,
                format!("{address} is already listed at index {earlier}"),
            ));
        }
        addresses.push(address);
    }
    Ok(addresses)
}

/// The VRRPv2 `PASS` password from `authentication:`.
fn password(authentication: &raw::RawAuthentication, place: &Place) -> Result<String, ConfigError> {
    match authentication.auth_type.as_deref() {
        None => {
            return Err(place.error(
                "authentication.auth_type",
                "missing; set auth_type: PASS (the only supported type)",
            ));
        }
        Some(kind) if kind.eq_ignore_ascii_case("PASS") => {}
        Some(kind) if kind.eq_ignore_ascii_case("AH") => {
            return Err(place.error(
                "authentication.auth_type",
                "AH (IPsec authentication header) is not supported; use PASS or remove authentication",
            ));
        }
        Some(kind) => {
            return Err(place.error(
                "authentication.auth_type",
                format!("unknown type `{kind}`; the only supported type is PASS"),
            ));
        }
    }
    match authentication.auth_pass.as_deref() {
        None => Err(place.error(
            "authentication.auth_pass",
            "missing; set a password of 1 to 8 bytes",
        )),
        Some(pass) if pass.is_empty() || pass.len() > MAX_AUTH_PASS_BYTES => Err(place.error(
            "authentication.auth_pass",
            format!(
                "is {} bytes long; VRRPv2 passwords are 1 to {MAX_AUTH_PASS_BYTES} bytes",
                pass.len()
            ),
        )),
        Some(pass) => Ok(pass.to_owned()),
    }
}

/// Whole-file rules: instance names are unique, and no two instances claim
/// the same virtual router (interface, id, address family).
fn check_instances_apart(origin: &str, instances: &[VrrpInstance]) -> Result<(), ConfigError> {
    let mut by_name: BTreeMap<&str, usize> = BTreeMap::new();
    let mut by_router: BTreeMap<(&str, u8, Family), usize> = BTreeMap::new();
    for (index, instance) in instances.iter().enumerate() {
        let label = instance_label(index, &instance.name);
        if let Some(earlier) = by_name.insert(&instance.name, index) {
            return Err(ConfigError::invalid(
                origin,
                &format!("{label}.name"),
                &format!(
                    "instances[{earlier}] already has this name; instance names must be unique"
                ),
            ));
        }
        let family = Family::of(&instance.virtual_ipaddress[0].address);
        let router = (
            instance.interface.as_str(),
            instance.virtual_router_id,
            family,
        );
        if let Some(earlier) = by_router.insert(router, index) {
            return Err(ConfigError::invalid(
                origin,
                &format!("{label}.virtual_router_id"),
                &format!(
                    "{} on {} for {family} is already used by {}; give each virtual router on an \
                     interface its own id",
                    instance.virtual_router_id,
                    instance.interface,
                    instance_label(earlier, &instances[earlier].name)
                ),
            ));
        }
    }
    Ok(())
}
