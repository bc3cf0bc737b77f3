//! A replicated resource: the YAML file that replicad and haadm read, one file
//! per resource, the same file on both nodes of the pair.
//!
//! Option names are drbd.conf's and mean the same, in drbd.conf's units (each
//! field says which: some times count seconds, others tenths of a second, and
//! rates count KiB/s). Sections are drbd.conf's too: `net`, `disk`, `handlers`,
//! and one entry per node under `nodes` (drbd.conf's `on HOST`).
//!
//! ```yaml
//! resource: r0
//! protocol: C
//! net: {shared-secret: "change-me"}
//! disk: {on-io-error: detach}
//! nodes:
//!   ha1: {address: "10.99.0.1:7789", disk: /var/lib/hapair/r0.img, meta-disk: internal}
//!   ha2: {address: "10.99.0.2:7789", disk: /var/lib/hapair/r0.img, meta-disk: internal}
//! ```
//!
//! Where this differs from drbd.conf:
//! - A resource has one volume and exactly two nodes; the node's section
//!   holds its disk (drbd.conf 8.4 style).
//! - `shared-secret` alone enables peer authentication with
//!   `cram-hmac-alg: sha256`, the only algorithm offered.
//! - `after-sb-0pri` offers `discard-node-NAME` but not `discard-local` or
//!   `discard-remote`, which would mean different nodes on the two hosts.
//! - Handlers are hook commands as in vrrpd's config (an argv list, a string
//!   split into words, or `{shell: "..."}`). A handler that the options never
//!   run is refused, and so is an option that runs a missing handler.
//!   DRBD's `pri-lost`, `pri-on-incon-degr` and `quorum-lost` are not offered.

mod directory;
mod keyword;
mod raw;

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::error::ConfigError;
use crate::hook::{HookCommand, RawHook};
use crate::yaml::{Number, parse_document, read_file};
pub(crate) use directory::check_resources_apart;
pub use directory::{load_resource, load_resources};
pub use keyword::{
    AfterSb0Pri, AfterSb1Pri, AfterSb2Pri, DigestAlg, Fencing, HmacAlg, OnIoError, Protocol,
};
use raw::{RawDisk, RawHandlers, RawNet, RawNode, RawResource};

/// Resource names end up in file and socket paths under the run directory,
/// and Linux limits a Unix socket path to 108 bytes.
const MAX_NAME_BYTES: usize = 64;
/// drbd.conf: "a string of up to 64 characters".
const MAX_SHARED_SECRET_BYTES: usize = 64;
/// A host name, and each dot-separated label of it (RFC 1123).
const MAX_HOST_NAME_BYTES: usize = 253;
const MAX_HOST_LABEL_BYTES: usize = 63;
/// drbd.conf's ceiling for resync rates: 4 GiB/s, in its unit of KiB/s.
const MAX_RATE_KIB: u64 = 4 << 20;
const KIB: u64 = 1024;

/// One replicated resource, validated, with every default filled in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceConfig {
    /// `[A-Za-z0-9_.-]+`, not starting with `.` or `-`, at most 64 bytes.
    pub name: String,
    /// The file it was read from (or the name given to [`ResourceConfig::parse`]).
    pub origin: PathBuf,
    /// `protocol`; default C.
    pub protocol: Protocol,
    pub net: NetOptions,
    pub disk: DiskOptions,
    pub handlers: Handlers,
    /// Exactly two nodes, by host name, with distinct addresses of one family.
    pub nodes: BTreeMap<String, NodeConfig>,
}

/// The `net` section: the link between the two nodes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetOptions {
    /// Challenge-response peer authentication, when `shared-secret` is set.
    pub auth: Option<PeerAuth>,
    /// `ping-int`, in seconds (1..=120): send a keep-alive after this long
    /// idle. Default 10 s.
    pub ping_int: Duration,
    /// `ping-timeout`, in **tenths** of a second (1..=300): how long to wait
    /// for the keep-alive's answer before dropping the connection. Default 5,
    /// that is 0.5 s.
    pub ping_timeout: Duration,
    /// `timeout`, in **tenths** of a second (1..=600): how long to wait for
    /// any expected reply before the peer counts as dead. Must be lower than
    /// `ping-int` and `connect-int`. Default 60, that is 6 s.
    pub timeout: Duration,
    /// `connect-int`, in seconds (1..=120): the pause between connection
    /// attempts. Default 10 s.
    pub connect_int: Duration,
    /// `ko-count` (0..=200): a peer that has not completed one write for
    /// this many `timeout`s is cut off (StandAlone) so that the Primary's
    /// writes go on without it. 0 waits for ever. Default 7.
    pub ko_count: u32,
    /// `verify-alg`: the digest online verify compares. Default unset (no
    /// online verify).
    pub verify_alg: Option<DigestAlg>,
    /// `data-integrity-alg`: a digest sent with every replicated block and
    /// checked by the receiver. Default unset.
    pub data_integrity_alg: Option<DigestAlg>,
    /// `fencing`; default dont-care.
    pub fencing: Fencing,
    /// `after-sb-0pri`; default disconnect.
    pub after_sb_0pri: AfterSb0Pri,
    /// `after-sb-1pri`; default disconnect.
    pub after_sb_1pri: AfterSb1Pri,
    /// `after-sb-2pri`; default disconnect.
    pub after_sb_2pri: AfterSb2Pri,
}

/// Peer authentication: each node proves it knows the secret by an HMAC over
/// a random challenge. Its `Debug` output hides the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct PeerAuth {
    /// `cram-hmac-alg`; sha256 when only `shared-secret` is given.
    pub cram_hmac_alg: HmacAlg,
    /// `shared-secret`: 1 to 64 bytes.
    pub shared_secret: String,
}

impl fmt::Debug for PeerAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PeerAuth")
            .field("cram_hmac_alg", &self.cram_hmac_alg)
            .field("shared_secret", &"<hidden>")
            .finish()
    }
}

impl Default for NetOptions {
    /// drbd.conf's defaults.
    fn default() -> NetOptions {
        NetOptions {
            auth: None,
            ping_int: Duration::from_secs(10),
            ping_timeout: Duration::from_millis(500),
            timeout: Duration::from_secs(6),
            connect_int: Duration::from_secs(10),
            ko_count: 7,
            verify_alg: None,
            data_integrity_alg: None,
            fencing: Fencing::DontCare,
            after_sb_0pri: AfterSb0Pri::Disconnect,
            after_sb_1pri: AfterSb1Pri::Disconnect,
            after_sb_2pri: AfterSb2Pri::Disconnect,
        }
    }
}

/// The `disk` section: the backing disk and resync speed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiskOptions {
    /// `on-io-error`; default detach.
    pub on_io_error: OnIoError,
    /// `al-extents` (7..=65534): how many 4 MiB extents the activity log
    /// keeps hot, i.e. what may need a resync after a crash of the Primary.
    /// Default 1237 (about 4.8 GiB).
    pub al_extents: u32,
    /// `resync-rate`, in **bytes** per second. The file gives KiB/s, or a
    /// number with a K, M or G suffix (`250`, `40M`), from 1 KiB/s to 4 GiB/s.
    /// Default 250 KiB/s.
    pub resync_rate: u64,
    /// `c-max-rate`, in **bytes** per second: the ceiling of the dynamic
    /// resync controller. Same units as `resync-rate`; in the file, 0 means no
    /// ceiling, which is `None` here. Default 102400 KiB/s (100 MiB/s).
    pub c_max_rate: Option<u64>,
    /// `disk-flushes`: flush the backing disk to order dependent writes.
    /// Turn it off only with a battery-backed write cache. Default yes.
    pub disk_flushes: bool,
    /// `md-flushes`: the same for metadata writes. Default yes.
    pub md_flushes: bool,
    /// `disk-timeout`, in **tenths** of a second (0..=6000): a request the
    /// backing disk has not completed after this long counts as failed, and
    /// `on-io-error` applies (`detach`: the node goes on Diskless, through
    /// its peer). 0 in the file waits for ever, which is `None` here.
    /// Default 0, as in DRBD.
    pub disk_timeout: Option<Duration>,
}

impl Default for DiskOptions {
    /// drbd.conf's defaults.
    fn default() -> DiskOptions {
        DiskOptions {
            on_io_error: OnIoError::Detach,
            al_extents: 1237,
            resync_rate: 250 * KIB,
            c_max_rate: Some(102_400 * KIB),
            disk_flushes: true,
            md_flushes: true,
            disk_timeout: None,
        }
    }
}

/// The `handlers` section: commands run on events, named as in drbd.conf.
/// Each is unset by default.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Handlers {
    /// A split brain is found on connecting, also when it will be resolved
    /// automatically.
    pub initial_split_brain: Option<HookCommand>,
    /// A split brain could not be resolved automatically: call for help.
    pub split_brain: Option<HookCommand>,
    /// This Primary lost the automatic split-brain recovery (run when an
    /// `after-sb-*pri` policy is `call-pri-lost-after-sb`).
    pub pri_lost_after_sb: Option<HookCommand>,
    /// Fence the peer by another path (run when `fencing` is not dont-care).
    pub fence_peer: Option<HookCommand>,
    /// Lift the fencing again (only with `fencing` set).
    pub unfence_peer: Option<HookCommand>,
    /// The backing disk reported an I/O error (run when `on-io-error` is
    /// `call-local-io-error`).
    pub local_io_error: Option<HookCommand>,
    /// Before this node becomes a resync target (e.g. to take a snapshot).
    pub before_resync_target: Option<HookCommand>,
    /// After this node finished a resync as its target.
    pub after_resync_target: Option<HookCommand>,
    /// Before this node becomes a resync source.
    pub before_resync_source: Option<HookCommand>,
    /// An online verify finished and found blocks out of sync.
    pub out_of_sync: Option<HookCommand>,
    /// The connection to the peer went down.
    pub disconnected: Option<HookCommand>,
}

/// One node's section under `nodes:`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeConfig {
    /// `address`: where this node listens and the peer connects, as
    /// `10.99.0.1:7789` or `[fd99::1]:7789`.
    pub address: SocketAddr,
    /// `disk`: the backing file or block device, an absolute path.
    pub disk: PathBuf,
    /// `meta-disk`.
    pub meta_disk: MetaDisk,
}

/// Where a node keeps the resource's metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetaDisk {
    /// `internal`: at the end of the backing disk, which makes the usable
    /// size smaller than the disk.
    Internal,
    /// A file or device of its own, an absolute path other than the disk.
    External(PathBuf),
}

impl ResourceConfig {
    /// Reads and validates the resource file at `path`.
    pub fn load(path: &Path) -> Result<ResourceConfig, ConfigError> {
        let text = read_file(path, &path.display().to_string())?;
        ResourceConfig::parse(&text, path)
    }

    /// Validates resource text; `origin` is the file it came from, named in
    /// error messages.
    pub fn parse(text: &str, origin: &Path) -> Result<ResourceConfig, ConfigError> {
        let origin_text = origin.display().to_string();
        let file = FileFields {
            origin: &origin_text,
        };
        let raw: Option<RawResource> = parse_document(text, &origin_text)?;
        let Some(raw) = raw else {
            return Err(file.error("resource", "missing; the file is empty"));
        };
        let name = match &raw.resource {
            None => {
                return Err(file.error(
                    "resource",
                    "missing; name the resource, e.g. `resource: r0`",
                ));
            }
            Some(name) => {
                file.check("resource", check_resource_name(name))?;
                name.clone()
            }
        };
        let nodes = nodes(&file, raw.nodes.as_ref())?;
        let protocol = match &raw.protocol {
            None => Protocol::C,
            Some(text) => file.check("protocol", Protocol::parse(text))?,
        };
        let net = net_options(
            &file,
            raw.net.as_ref().unwrap_or(&RawNet::default()),
            &nodes,
        )?;
        let disk = disk_options(&file, raw.disk.as_ref().unwrap_or(&RawDisk::default()))?;
        let handlers = handlers(
            &file,
            raw.handlers.as_ref().unwrap_or(&RawHandlers::default()),
        )?;
        check_handlers_run(&file, &net, &disk, &handlers)?;
        Ok(ResourceConfig {
            name,
            origin: origin.to_path_buf(),
            protocol,
            net,
            disk,
            handlers,
            nodes,
        })
    }

    /// This node's section. The error reads like DRBD's: `r0 is not defined
    /// for node ha3 (nodes: ha1, ha2)`, after the file name.
    pub fn local(&self, node: &str) -> Result<&NodeConfig, ConfigError> {
        self.nodes
            .get(node)
            .ok_or_else(|| self.not_defined_for(node))
    }

    /// The other node of the pair: its name and section.
    pub fn peer(&self, node: &str) -> Result<(&str, &NodeConfig), ConfigError> {
        self.local(node)?;
        self.nodes
            .iter()
            .find(|(name, _)| *name != node)
            .map(|(name, config)| (name.as_str(), config))
            .ok_or_else(|| {
                ConfigError::invalid(
                    &self.origin.display().to_string(),
                    "nodes",
                    &format!("{} has no node besides {node}; add its peer", self.name),
                )
            })
    }

    fn not_defined_for(&self, node: &str) -> ConfigError {
        ConfigError::invalid(
            &self.origin.display().to_string(),
            "nodes",
            &format!(
                "{} is not defined for node {node} (nodes: {}); run on one of them, or pass \
                 --node NAME when the host name differs",
                self.name,
                node_list(&self.nodes)
            ),
        )
    }
}

fn node_list<T>(nodes: &BTreeMap<String, T>) -> String {
    nodes
        .keys()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The file being validated, to attach field paths to messages.
struct FileFields<'a> {
    origin: &'a str,
}

impl FileFields<'_> {
    fn error(&self, field: &str, message: impl AsRef<str>) -> ConfigError {
        ConfigError::invalid(self.origin, field, message.as_ref())
    }

    /// Attaches `field` to the message of a failed check.
    fn check<T>(&self, field: &str, result: Result<T, String>) -> Result<T, ConfigError> {
        result.map_err(|message| self.error(field, message))
    }

    /// Checks an optional value with `parse`, naming `field` on failure.
    fn optional<R, T>(
        &self,
        field: &str,
        raw: Option<R>,
        parse: impl FnOnce(R) -> Result<T, String>,
    ) -> Result<Option<T>, ConfigError> {
        raw.map(|value| self.check(field, parse(value))).transpose()
    }
}

fn check_resource_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("is empty; name the resource, e.g. r0".into());
    }
    if name.len() > MAX_NAME_BYTES {
        return Err(format!(
            "`{name}` is longer than {MAX_NAME_BYTES} bytes; resource names appear in socket paths"
        ));
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
    {
        return Err(format!(
            "`{name}` may contain only ASCII letters, digits, '_', '.' and '-'"
        ));
    }
    if name.starts_with(['.', '-']) {
        return Err(format!(
            "`{name}` must not start with '.' or '-' (it would be taken for a hidden file or an \
             option)"
        ));
    }
    Ok(())
}

/// A node name, matched against the host name (`uname -n`): dot-separated
/// RFC 1123 labels.
fn check_node_name(name: &str) -> Result<(), String> {
    let label_ok = |label: &str| {
        !label.is_empty()
            && label.len() <= MAX_HOST_LABEL_BYTES
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
    };
    if name.len() <= MAX_HOST_NAME_BYTES && name.split('.').all(label_ok) {
        Ok(())
    } else {
        Err(format!(
            "`{name}` is not a host name: use ASCII letters, digits and '-' (not first or last), \
             in dot-separated parts of at most {MAX_HOST_LABEL_BYTES} bytes, as `uname -n` prints it"
        ))
    }
}

fn nodes(
    file: &FileFields,
    raw: Option<&BTreeMap<String, Option<RawNode>>>,
) -> Result<BTreeMap<String, NodeConfig>, ConfigError> {
    let Some(raw) = raw else {
        return Err(file.error(
            "nodes",
            "missing; define the pair's two nodes by host name, e.g. \
             `ha1: {address: \"10.99.0.1:7789\", disk: /var/lib/hapair/r0.img, meta-disk: internal}`",
        ));
    };
    if raw.len() != 2 {
        let defined = match raw.len() {
            0 => "no node is defined".to_owned(),
            1 => format!("only one node is defined ({})", node_list(raw)),
            count => format!("{count} nodes are defined ({})", node_list(raw)),
        };
        return Err(file.error(
            "nodes",
            format!("{defined}; hapair pairs exactly two nodes"),
        ));
    }
    let mut nodes: BTreeMap<String, NodeConfig> = BTreeMap::new();
    for (name, entry) in raw {
        let prefix = format!("nodes.{name}");
        file.check(&prefix, check_node_name(name))?;
        let node = node(file, &prefix, entry.as_ref())?;
        if let Some((other, other_node)) = nodes.iter().next() {
            check_addresses_pair(file, &prefix, &node.address, other, &other_node.address)?;
        }
        nodes.insert(name.clone(), node);
    }
    Ok(nodes)
}

/// The second node's address against the first's: distinct, same family.
fn check_addresses_pair(
    file: &FileFields,
    prefix: &str,
    address: &SocketAddr,
    other: &str,
    other_address: &SocketAddr,
) -> Result<(), ConfigError> {
    let field = format!("{prefix}.address");
    if address == other_address {
        return Err(file.error(
            &field,
            format!(
                "{address} is also the address of node {other}; each node needs its own \
                 (on one host, at least its own port)"
            ),
        ));
    }
    if address.is_ipv4() != other_address.is_ipv4() {
        return Err(file.error(
            &field,
            format!(
                "{address} and node {other}'s {other_address} are of different address families; \
                 the two nodes must use both IPv4 or both IPv6"
            ),
        ));
    }
    Ok(())
}

fn node(file: &FileFields, prefix: &str, raw: Option<&RawNode>) -> Result<NodeConfig, ConfigError> {
    let Some(raw) = raw else {
        return Err(file.error(prefix, "is empty; give its address, disk and meta-disk"));
    };
    let field = |name: &str| format!("{prefix}.{name}");
    let address = match &raw.address {
        None => {
            return Err(file.error(
                &field("address"),
                "missing; give IP:PORT, e.g. 10.99.0.1:7789 or [fd99::1]:7789",
            ));
        }
        Some(text) => file.check(&field("address"), node_address(text))?,
    };
    let disk = match &raw.disk {
        None => {
            return Err(file.error(
                &field("disk"),
                "missing; give the backing file or block device, e.g. /var/lib/hapair/r0.img",
            ));
        }
        Some(text) => file.check(&field("disk"), backing_disk(text))?,
    };
    let meta_disk = match &raw.meta_disk {
        None => {
            return Err(file.error(
                &field("meta-disk"),
                "missing; write `internal` (metadata at the end of the disk, which shrinks what \
                 the disk holds) or the absolute path of a file or device of its own",
            ));
        }
        Some(text) => file.check(&field("meta-disk"), meta_disk(text))?,
    };
    if meta_disk == MetaDisk::External(disk.clone()) {
        return Err(file.error(
            &field("meta-disk"),
            "is the same path as disk; for metadata on the data disk write `internal`",
        ));
    }
    Ok(NodeConfig {
        address,
        disk,
        meta_disk,
    })
}

fn node_address(text: &str) -> Result<SocketAddr, String> {
    let address: SocketAddr = text.parse().map_err(|_| match text.parse::<IpAddr>() {
        Ok(IpAddr::V4(ip)) => format!("`{text}` has no port; write {ip}:7789"),
        Ok(IpAddr::V6(ip)) => format!("`{text}` has no port; write [{ip}]:7789"),
        Err(_) => format!(
            "`{text}` is not IP:PORT; write 10.99.0.1:7789, or [fd99::1]:7789 for IPv6 \
             (host names are not looked up)"
        ),
    })?;
    let ip = address.ip();
    let broadcast = matches!(ip, IpAddr::V4(v4) if v4.is_broadcast());
    if ip.is_unspecified() || ip.is_multicast() || broadcast {
        return Err(format!(
            "{ip} is not a unicast address; the peer connects to this address, so give one the \
             node owns"
        ));
    }
    if address.port() == 0 {
        return Err(format!(
            "port 0 is not a fixed port; the peer must know where to connect (e.g. {}:7789)",
            text.rsplit_once(':').map_or(text, |(host, _)| host)
        ));
    }
    Ok(address)
}

fn absolute_path(text: &str) -> Result<PathBuf, String> {
    if text.contains('\0') {
        return Err("the path contains a NUL byte".into());
    }
    let path = PathBuf::from(text);
    if path.is_absolute() {
        Ok(path)
    } else {
        Err(format!(
            "`{text}` is not an absolute path; write it from /, e.g. /var/lib/hapair/r0.img or \
             /dev/vg0/r0"
        ))
    }
}

fn backing_disk(text: &str) -> Result<PathBuf, String> {
    if text == "none" {
        return Err(
            "diskless nodes (`none`) are not supported; give the backing file or block device"
                .into(),
        );
    }
    absolute_path(text)
}

fn meta_disk(text: &str) -> Result<MetaDisk, String> {
    if text == "internal" {
        return Ok(MetaDisk::Internal);
    }
    if text.ends_with(']') && text.contains('[') {
        return Err(format!(
            "`{text}`: indexed metadata (DEVICE[INDEX], shared by several resources) is not \
             supported; give this resource a file or device of its own, or `internal`"
        ));
    }
    absolute_path(text)
        .map(MetaDisk::External)
        .map_err(|message| format!("{message}; or write `internal`"))
}

/// How drbd.conf counts a time option.
#[derive(Clone, Copy)]
enum TimeUnit {
    Seconds,
    Tenths,
}

/// A time option in drbd.conf's unit for it, a whole number within `range`.
fn duration(value: Number, unit: TimeUnit, range: RangeInclusive<u32>) -> Result<Duration, String> {
    let hint = match unit {
        TimeUnit::Seconds => "the unit is seconds",
        TimeUnit::Tenths => "the unit is tenths of a second, as in drbd.conf (5 = 0.5 s)",
    };
    let count = value
        .whole_in(range)
        .map_err(|message| format!("{message}; {hint}"))?;
    Ok(match unit {
        TimeUnit::Seconds => Duration::from_secs(count.into()),
        TimeUnit::Tenths => Duration::from_millis(u64::from(count) * 100),
    })
}

/// A drbd.conf rate in bytes per second. The text is KiB/s, or a whole number
/// with a suffix K, M or G (powers of 1024, either case), e.g. `250`, `40M`;
/// the value in KiB/s must be within `range_kib`.
fn rate(text: &str, range_kib: RangeInclusive<u64>) -> Result<u64, String> {
    let (digits, unit_kib) = match text.as_bytes().last() {
        Some(b'K' | b'k') => (&text[..text.len() - 1], 1),
        Some(b'M' | b'm') => (&text[..text.len() - 1], KIB),
        Some(b'G' | b'g') => (&text[..text.len() - 1], KIB * KIB),
        _ => (text, 1),
    };
    if digits.is_empty() || !digits.bytes().all(|byte| byte.is_ascii_digit()) {
        return Err(format!(
            "`{text}` is not a rate; write KiB/s as a whole number, or with a suffix K, M or G \
             (e.g. 250 or 40M)"
        ));
    }
    let out_of_range = || {
        format!(
            "`{text}` is out of range {}..={} KiB/s (up to 4G)",
            range_kib.start(),
            range_kib.end()
        )
    };
    let kib = digits
        .parse::<u64>()
        .ok()
        .and_then(|count| count.checked_mul(unit_kib))
        .ok_or_else(out_of_range)?;
    if range_kib.contains(&kib) {
        Ok(kib * KIB)
    } else {
        Err(out_of_range())
    }
}

fn net_options(
    file: &FileFields,
    raw: &RawNet,
    nodes: &BTreeMap<String, NodeConfig>,
) -> Result<NetOptions, ConfigError> {
    let defaults = NetOptions::default();
    let time = |field: &str, value: Option<Number>, unit, range, default| {
        file.optional(field, value, |value| duration(value, unit, range))
            .map(|value| value.unwrap_or(default))
    };
    let ping_int = time(
        "net.ping-int",
        raw.ping_int,
        TimeUnit::Seconds,
        1..=120,
        defaults.ping_int,
    )?;
    let ping_timeout = time(
        "net.ping-timeout",
        raw.ping_timeout,
        TimeUnit::Tenths,
        1..=300,
        defaults.ping_timeout,
    )?;
    let timeout = time(
        "net.timeout",
        raw.timeout,
        TimeUnit::Tenths,
        1..=600,
        defaults.timeout,
    )?;
    let connect_int = time(
        "net.connect-int",
        raw.connect_int,
        TimeUnit::Seconds,
        1..=120,
        defaults.connect_int,
    )?;
    if timeout >= ping_int || timeout >= connect_int {
        return Err(file.error(
            "net.timeout",
            format!(
                "{timeout:?} must be lower than ping-int ({ping_int:?}) and connect-int \
                 ({connect_int:?}), as in DRBD; timeout counts tenths of a second (60 = 6 s)"
            ),
        ));
    }
    let digest = |field: &str, text: &Option<String>| {
        file.optional(field, text.as_deref(), DigestAlg::parse)
    };
    let after_sb_0pri = file
        .optional("net.after-sb-0pri", raw.after_sb_0pri.as_deref(), |text| {
            let policy = AfterSb0Pri::parse(text)?;
            match &policy {
                AfterSb0Pri::DiscardNode(node) if !nodes.contains_key(node) => Err(format!(
                    "`{text}` names no node of this resource (nodes: {})",
                    node_list(nodes)
                )),
                _ => Ok(policy),
            }
        })?
        .unwrap_or(defaults.after_sb_0pri);
    Ok(NetOptions {
        auth: peer_auth(file, raw)?,
        ping_int,
        ping_timeout,
        timeout,
        connect_int,
        ko_count: file
            .optional("net.ko-count", raw.ko_count, |value| {
                value.whole_in(0u32..=200)
            })?
            .unwrap_or(defaults.ko_count),
        verify_alg: digest("net.verify-alg", &raw.verify_alg)?,
        data_integrity_alg: digest("net.data-integrity-alg", &raw.data_integrity_alg)?,
        fencing: file
            .optional("net.fencing", raw.fencing.as_deref(), Fencing::parse)?
            .unwrap_or(defaults.fencing),
        after_sb_0pri,
        after_sb_1pri: file
            .optional(
                "net.after-sb-1pri",
                raw.after_sb_1pri.as_deref(),
                AfterSb1Pri::parse,
            )?
            .unwrap_or(defaults.after_sb_1pri),
        after_sb_2pri: file
            .optional(
                "net.after-sb-2pri",
                raw.after_sb_2pri.as_deref(),
                AfterSb2Pri::parse,
            )?
            .unwrap_or(defaults.after_sb_2pri),
    })
}

/// `shared-secret` and `cram-hmac-alg`: both or neither, except that a secret
/// alone means sha256.
fn peer_auth(file: &FileFields, raw: &RawNet) -> Result<Option<PeerAuth>, ConfigError> {
    let algorithm = file.optional(
        "net.cram-hmac-alg",
        raw.cram_hmac_alg.as_deref(),
        HmacAlg::parse,
    )?;
    let Some(secret) = &raw.shared_secret else {
        return match algorithm {
            None => Ok(None),
            Some(_) => Err(file.error(
                "net.cram-hmac-alg",
                "is set but net.shared-secret is not; peer authentication needs the secret \
                 (or remove cram-hmac-alg)",
            )),
        };
    };
    if secret.is_empty() || secret.len() > MAX_SHARED_SECRET_BYTES {
        return Err(file.error(
            "net.shared-secret",
            format!(
                "is {} bytes long; a shared secret is 1 to {MAX_SHARED_SECRET_BYTES} bytes, as in \
                 DRBD",
                secret.len()
            ),
        ));
    }
    Ok(Some(PeerAuth {
        cram_hmac_alg: algorithm.unwrap_or(HmacAlg::Sha256),
        shared_secret: secret.clone(),
    }))
}

fn disk_options(file: &FileFields, raw: &RawDisk) -> Result<DiskOptions, ConfigError> {
    let defaults = DiskOptions::default();
    let c_max_rate = match &raw.c_max_rate {
        None => defaults.c_max_rate,
        Some(text) => Some(file.check("disk.c-max-rate", rate(text, 0..=MAX_RATE_KIB))?)
            .filter(|bytes| *bytes != 0),
    };
    Ok(DiskOptions {
        on_io_error: file
            .optional(
                "disk.on-io-error",
                raw.on_io_error.as_deref(),
                OnIoError::parse,
            )?
            .unwrap_or(defaults.on_io_error),
        al_extents: file
            .optional("disk.al-extents", raw.al_extents, |value| {
                value.whole_in(7u32..=65534)
            })?
            .unwrap_or(defaults.al_extents),
        resync_rate: file
            .optional("disk.resync-rate", raw.resync_rate.as_deref(), |text| {
                rate(text, 1..=MAX_RATE_KIB)
            })?
            .unwrap_or(defaults.resync_rate),
        c_max_rate,
        disk_flushes: raw.disk_flushes.unwrap_or(defaults.disk_flushes),
        md_flushes: raw.md_flushes.unwrap_or(defaults.md_flushes),
        disk_timeout: file
            .optional("disk.disk-timeout", raw.disk_timeout, |value| {
                duration(value, TimeUnit::Tenths, 0..=6000)
            })?
            .map_or(defaults.disk_timeout, |limit| {
                Some(limit).filter(|limit| !limit.is_zero())
            }),
    })
}

fn handlers(file: &FileFields, raw: &RawHandlers) -> Result<Handlers, ConfigError> {
    let hook = |name: &str, raw: &Option<RawHook>| {
        file.optional(
            &format!("handlers.{name}"),
            raw.as_ref(),
            RawHook::to_command,
        )
    };
    Ok(Handlers {
        initial_split_brain: hook("initial-split-brain", &raw.initial_split_brain)?,
        split_brain: hook("split-brain", &raw.split_brain)?,
        pri_lost_after_sb: hook("pri-lost-after-sb", &raw.pri_lost_after_sb)?,
        fence_peer: hook("fence-peer", &raw.fence_peer)?,
        unfence_peer: hook("unfence-peer", &raw.unfence_peer)?,
        local_io_error: hook("local-io-error", &raw.local_io_error)?,
        before_resync_target: hook("before-resync-target", &raw.before_resync_target)?,
        after_resync_target: hook("after-resync-target", &raw.after_resync_target)?,
        before_resync_source: hook("before-resync-source", &raw.before_resync_source)?,
        out_of_sync: hook("out-of-sync", &raw.out_of_sync)?,
        disconnected: hook("disconnected", &raw.disconnected)?,
    })
}

/// The handlers that run only under some option value: an option that runs
/// a missing handler, and a handler no option runs, are both mistakes.
fn check_handlers_run(
    file: &FileFields,
    net: &NetOptions,
    disk: &DiskOptions,
    handlers: &Handlers,
) -> Result<(), ConfigError> {
    // `detach` runs it too (to say the disk is gone), but does not need it.
    let local_io_error = (disk.on_io_error != OnIoError::PassOn)
        .then(|| format!("disk.on-io-error is {}", disk.on_io_error));
    let fencing =
        (net.fencing != Fencing::DontCare).then(|| format!("net.fencing is {}", net.fencing));
    let pri_lost = if net.after_sb_1pri == AfterSb1Pri::CallPriLostAfterSb {
        Some("net.after-sb-1pri is call-pri-lost-after-sb".to_owned())
    } else if net.after_sb_2pri == AfterSb2Pri::CallPriLostAfterSb {
        Some("net.after-sb-2pri is call-pri-lost-after-sb".to_owned())
    } else {
        None
    };
    // (handler, whether it is set, the option value that runs it, whether
    // that value needs it, how to make it run)
    let gates = [
        (
            "local-io-error",
            handlers.local_io_error.is_some(),
            &local_io_error,
            disk.on_io_error == OnIoError::CallLocalIoError,
            "set disk.on-io-error: call-local-io-error or detach",
        ),
        (
            "fence-peer",
            handlers.fence_peer.is_some(),
            &fencing,
            true,
            "set net.fencing: resource-only or resource-and-stonith",
        ),
        (
            "unfence-peer",
            handlers.unfence_peer.is_some(),
            &fencing,
            false,
            "set net.fencing: resource-only or resource-and-stonith",
        ),
        (
            "pri-lost-after-sb",
            handlers.pri_lost_after_sb.is_some(),
            &pri_lost,
            true,
            "set net.after-sb-1pri or net.after-sb-2pri: call-pri-lost-after-sb",
        ),
    ];
    for (handler, is_set, run_by, needed, how) in gates {
        let field = format!("handlers.{handler}");
        match (is_set, run_by) {
            (false, Some(reason)) if needed => {
                return Err(file.error(
                    &field,
                    format!(
                        "missing; {reason}, which runs it: add the handler or change that option"
                    ),
                ));
            }
            (true, None) => {
                return Err(file.error(
                    &field,
                    format!("is never run with these options; {how}, or remove it"),
                ));
            }
            _ => {}
        }
    }
    Ok(())
}
