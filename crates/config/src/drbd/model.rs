//! drbd.conf's meaning: the syntax tree's sections checked against the
//! keywords drbdadm knows (an unknown one is an error at its line), the
//! 8.4 and 9 forms brought to one shape, and `common` inherited into every
//! resource. The result, [`Resource`], is still in drbd.conf's terms; `hapair`
//! maps it onto a [`crate::ResourceConfig`].

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, Ipv6Addr};

use super::options::{SectionKind, is_flag, known_in, support, syncer_target};
use super::parser::{Location, Statement};
use crate::error::ConfigError;

/// An option as written: its words and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setting {
    pub args: Vec<String>,
    pub location: Location,
}

impl Setting {
    /// The value as one text: the words joined by a space, `yes` for a flag
    /// written without one.
    pub fn value(&self) -> String {
        if self.args.is_empty() {
            "yes".to_owned()
        } else {
            self.args.join(" ")
        }
    }
}

/// The options of one section, by name; of an option written twice, the
/// later counts.
pub type Options = BTreeMap<String, Setting>;

/// The option sections of a `common`, `resource` or `connection`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sections {
    pub net: Options,
    pub disk: Options,
    pub handlers: Options,
    pub startup: Options,
    pub options: Options,
}

impl Sections {
    fn section_mut(&mut self, kind: SectionKind) -> &mut Options {
        match kind {
            // `global` options go to `Config::global`, never here; `net` is
            // as good a place as any for the match to be total.
            SectionKind::Net | SectionKind::Global => &mut self.net,
            SectionKind::Disk => &mut self.disk,
            SectionKind::Handlers => &mut self.handlers,
            SectionKind::Startup => &mut self.startup,
            SectionKind::Options => &mut self.options,
        }
    }

    /// Every option by `SECTION.NAME` (`net.ping-int`).
    pub fn by_path(&self) -> BTreeMap<String, &Setting> {
        self.iter()
            .map(|(kind, name, setting)| (format!("{}.{name}", kind.keyword()), setting))
            .collect()
    }

    /// Every option with its section, in a fixed order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (SectionKind, &String, &Setting)> {
        [
            (SectionKind::Net, &self.net),
            (SectionKind::Disk, &self.disk),
            (SectionKind::Handlers, &self.handlers),
            (SectionKind::Startup, &self.startup),
            (SectionKind::Options, &self.options),
        ]
        .into_iter()
        .flat_map(|(kind, options)| options.iter().map(move |(name, s)| (kind, name, s)))
    }

    /// Takes every option of `more_specific` over this one's.
    fn override_with(&mut self, more_specific: &Sections) {
        for (kind, name, setting) in more_specific.iter() {
            self.section_mut(kind).insert(name.clone(), setting.clone());
        }
    }
}

/// Where a node keeps one volume: `device`, `disk`, `meta-disk`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VolumeDisks {
    pub device: Option<Setting>,
    pub disk: Option<Setting>,
    pub meta_disk: Option<Setting>,
}

impl VolumeDisks {
    /// Fills what this one leaves unset from `fallback`.
    fn or(&self, fallback: &VolumeDisks) -> VolumeDisks {
        VolumeDisks {
            device: self.device.clone().or_else(|| fallback.device.clone()),
            disk: self.disk.clone().or_else(|| fallback.disk.clone()),
            meta_disk: self
                .meta_disk
                .clone()
                .or_else(|| fallback.meta_disk.clone()),
        }
    }
}

/// An `on HOST` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Host {
    pub name: String,
    pub location: Location,
    /// `address [FAMILY] ADDRESS:PORT`, or the one a `connection` gives.
    pub address: Option<Setting>,
    pub node_id: Option<Setting>,
    /// The node's disks, its own or the resource's (volume 0 when the
    /// resource has one volume).
    pub disks: VolumeDisks,
}

/// A `resource`, with `common` inherited and connections folded in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resource {
    pub name: String,
    pub location: Location,
    pub sections: Sections,
    pub hosts: Vec<Host>,
    /// Why hapair cannot serve this resource as it is (more than two nodes,
    /// a floating node, several volumes, ...), at the line that says so.
    pub beyond_hapair: Vec<(Location, String)>,
}

/// The `global` section and the resources of a whole configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Config {
    pub global: Options,
    pub common: Sections,
    pub resources: Vec<Resource>,
}

/// The configuration that `statements` (a file with its includes) holds.
pub(crate) fn config(statements: &[Statement]) -> Result<Config, ConfigError> {
    let mut config = Config::default();
    let mut commons: Vec<&Statement> = Vec::new();
    let mut resources: Vec<&Statement> = Vec::new();
    for statement in statements {
        match statement.keyword.as_str() {
            "global" => {
                let block = section_block(statement, 0)?;
                for option in block {
                    let setting = option_setting(SectionKind::Global, option)?;
                    config.global.insert(option.keyword.clone(), setting);
                }
            }
            "common" => {
                section_block(statement, 0)?;
                commons.push(statement);
            }
            "resource" => resources.push(statement),
            other => {
                return Err(statement.location.error(format!(
                    "expected global, common, resource, include or skip, found `{other}`"
                )));
            }
        }
    }
    if let [_, second, ..] = commons.as_slice() {
        return Err(second
            .location
            .error("a second `common` section; merge it into the first"));
    }
    let mut common_disks = VolumeDisks::default();
    if let Some(common) = commons.first() {
        for statement in section_block(common, 0)? {
            if !options_section(&mut config.common, statement)?
                && !volume_disk_statement(&mut common_disks, statement)?
            {
                return Err(unexpected(
                    statement,
                    "common",
                    "net, disk, handlers, startup, options",
                ));
            }
        }
    }
    for statement in resources {
        let mut resource = resource(statement, &common_disks)?;
        let mut sections = config.common.clone();
        sections.override_with(&resource.sections);
        resource.sections = sections;
        if let Some(first) = config.resources.iter().find(|r| r.name == resource.name) {
            return Err(resource.location.error(format!(
                "resource {} is also defined at {}; give each resource its own name",
                resource.name, first.location
            )));
        }
        config.resources.push(resource);
    }
    Ok(config)
}

/// A section's statements; an error when `statement` is not a section with
/// exactly `names` arguments.
fn section_block(statement: &Statement, names: usize) -> Result<&[Statement], ConfigError> {
    let Some(block) = &statement.block else {
        return Err(statement.location.error(format!(
            "`{}` is a section: write its contents in braces",
            statement.head()
        )));
    };
    if statement.args.len() != names {
        let expected = match names {
            0 => format!("`{} {{ ... }}` takes no name", statement.keyword),
            _ => format!("`{} NAME {{ ... }}` takes one name", statement.keyword),
        };
        return Err(statement
            .location
            .error(format!("{expected}, found `{}`", statement.head())));
    }
    Ok(block)
}

fn unexpected(statement: &Statement, within: &str, expected: &str) -> ConfigError {
    statement.location.error(format!(
        "`{}` is not known in `{within}` (expected {expected})",
        statement.keyword
    ))
}

/// Reads `statement` into `sections` when it is an option section (`net`,
/// `disk { ... }`, the old `syncer`, ...) or 8.4's `protocol` outside `net`.
/// `false` when it is something else.
fn options_section(sections: &mut Sections, statement: &Statement) -> Result<bool, ConfigError> {
    if statement.keyword == "protocol" && statement.block.is_none() {
        let setting = option_setting(SectionKind::Net, statement)?;
        sections.net.insert("protocol".into(), setting);
        return Ok(true);
    }
    if statement.block.is_none() {
        return Ok(false);
    }
    if statement.keyword == "syncer" {
        for option in section_block(statement, 0)? {
            let Some(kind) = syncer_target(&option.keyword) else {
                let hint = match option.keyword.as_str() {
                    "rate" => "; write `resync-rate` in the `disk` section",
                    name if super::options::is_peer_device_option(name) => {
                        "; write it in the `disk` section"
                    }
                    _ => "",
                };
                return Err(option.location.error(format!(
                    "`{}` in `syncer` is DRBD 8.3 syntax that DRBD 9 refuses{hint}",
                    option.keyword
                )));
            };
            let setting = option_setting(kind, option)?;
            sections
                .section_mut(kind)
                .insert(option.keyword.clone(), setting);
        }
        return Ok(true);
    }
    let Some(kind) = SectionKind::of_section(&statement.keyword) else {
        return Ok(false);
    };
    for option in section_block(statement, 0)? {
        if kind == SectionKind::Disk && option.keyword == "fencing" {
            return Err(option.location.error(
                "`fencing` belongs in the `net` section since DRBD 9 (drbdadm 9 refuses it in \
                 `disk`); move it there",
            ));
        }
        let setting = option_setting(kind, option)?;
        sections
            .section_mut(kind)
            .insert(option.keyword.clone(), setting);
    }
    Ok(true)
}

/// One option: a known name in its section, with a value of the right shape.
fn option_setting(kind: SectionKind, statement: &Statement) -> Result<Setting, ConfigError> {
    let name = statement.keyword.as_str();
    if support(kind, name).is_none() {
        return Err(statement.location.error(format!(
            "`{name}` is not an option of the `{}` section (known there: {})",
            kind.keyword(),
            known_in(kind).join(", ")
        )));
    }
    if statement.block.is_some() {
        return Err(statement.location.error(format!(
            "`{name}` is an option, not a section: write `{name} VALUE;`"
        )));
    }
    let shape_ok = if is_flag(name) {
        match statement.args.as_slice() {
            [] => true,
            [value] => value == "yes" || value == "no",
            _ => false,
        }
    } else {
        statement.args.len() == 1
    };
    if !shape_ok {
        let expected = if is_flag(name) {
            format!("`{name};`, `{name} yes;` or `{name} no;`")
        } else {
            format!("one value: `{name} VALUE;`")
        };
        return Err(statement
            .location
            .error(format!("`{}`: expected {expected}", statement.head())));
    }
    Ok(Setting {
        args: statement.args.clone(),
        location: statement.location.clone(),
    })
}

/// `device`, `disk PATH` or `meta-disk` (also `flexible-meta-disk`) into
/// `disks`; `false` for any other statement.
fn volume_disk_statement(
    disks: &mut VolumeDisks,
    statement: &Statement,
) -> Result<bool, ConfigError> {
    if statement.block.is_some() {
        return Ok(false);
    }
    let slot = match statement.keyword.as_str() {
        "device" => &mut disks.device,
        "disk" => &mut disks.disk,
        "meta-disk" | "flexible-meta-disk" => &mut disks.meta_disk,
        _ => return Ok(false),
    };
    let arity_ok = match statement.keyword.as_str() {
        // `device /dev/drbd0 minor 0;` or `device minor 0;`
        "device" => (1..=3).contains(&statement.args.len()),
        // `meta-disk /dev/sdb [0];`
        "meta-disk" | "flexible-meta-disk" => (1..=2).contains(&statement.args.len()),
        _ => statement.args.len() == 1,
    };
    if !arity_ok {
        return Err(statement.location.error(format!(
            "`{}`: expected `{} VALUE;`",
            statement.head(),
            statement.keyword
        )));
    }
    *slot = Some(Setting {
        args: statement.args.clone(),
        location: statement.location.clone(),
    });
    Ok(true)
}

/// A `volume N { ... }` section's number and disks; options sections in it
/// go to `sections`.
fn volume(
    statement: &Statement,
    sections: Option<&mut Sections>,
) -> Result<(u32, VolumeDisks), ConfigError> {
    let block = section_block(statement, 1)?;
    let number: u32 = statement.args[0].parse().map_err(|_| {
        statement.location.error(format!(
            "`volume {}`: the volume number is a whole number, e.g. volume 0",
            statement.args[0]
        ))
    })?;
    let mut disks = VolumeDisks::default();
    let mut sections = sections;
    for inner in block {
        if volume_disk_statement(&mut disks, inner)? {
            continue;
        }
        let read = match sections.as_deref_mut() {
            Some(sections) if inner.keyword == "disk" => options_section(sections, inner)?,
            _ => false,
        };
        if !read {
            return Err(unexpected(inner, "volume", "device, disk, meta-disk"));
        }
    }
    Ok((number, disks))
}

/// A `connection` or `connection-mesh`: its options, and the addresses its
/// `host` statements and `path`s give.
#[derive(Default)]
struct Connections {
    count: usize,
    sections: Sections,
    addresses: BTreeMap<String, Setting>,
    ports: BTreeMap<String, Setting>,
    beyond_hapair: Vec<(Location, String)>,
}

impl Connections {
    fn read(&mut self, statement: &Statement) -> Result<(), ConfigError> {
        let mesh = statement.keyword == "connection-mesh";
        let names = if mesh { 0 } else { statement.args.len().min(1) };
        let block = section_block(statement, names)?;
        self.count += 1;
        if self.count == 2 {
            self.beyond_hapair.push((
                statement.location.clone(),
                "a second connection; hapair connects exactly one pair".into(),
            ));
        }
        let mut paths = 0;
        for inner in block {
            match inner.keyword.as_str() {
                "hosts" if mesh && inner.block.is_none() => {}
                "host"
                    if !mesh
                        && (inner.block.is_none() || inner.args.iter().any(|a| a == "via")) =>
                {
                    self.host(inner)?;
                }
                "path" if !mesh => {
                    paths += 1;
                    if paths == 2 {
                        self.beyond_hapair.push((
                            inner.location.clone(),
                            "a second path; hapair connects over one".into(),
                        ));
                    }
                    for host in section_block(inner, 0)? {
                        if host.keyword != "host" || host.block.is_some() {
                            return Err(unexpected(host, "path", "host"));
                        }
                        self.host(host)?;
                    }
                }
                "volume" => {
                    volume(inner, Some(&mut self.sections))?;
                }
                _ if options_section(&mut self.sections, inner)? => {}
                _ => {
                    let expected = if mesh {
                        "hosts, net"
                    } else {
                        "host, path, net, disk, volume"
                    };
                    return Err(unexpected(inner, &statement.keyword, expected));
                }
            }
        }
        Ok(())
    }

    /// `host NAME [address [FAMILY] ADDRESS] [port PORT] [via ...]`
    fn host(&mut self, statement: &Statement) -> Result<(), ConfigError> {
        let Some((name, mut rest)) = statement.args.split_first() else {
            return Err(statement
                .location
                .error("`host` needs the name of an `on` section"));
        };
        let at = |args: &[String]| Setting {
            args: args.to_vec(),
            location: statement.location.clone(),
        };
        while let Some((word, after)) = rest.split_first() {
            match word.as_str() {
                "address" => {
                    let take = match after.first().map(String::as_str) {
                        Some(family) if is_family(family) => 2,
                        Some(_) => 1,
                        None => 0,
                    };
                    if take == 0 || after.len() < take {
                        return Err(statement.location.error("`address` needs [FAMILY] IP:PORT"));
                    }
                    check_address(&after[take - 1], &statement.location)?;
                    self.addresses.insert(name.clone(), at(&after[..take]));
                    rest = &after[take..];
                }
                "port" if !after.is_empty() => {
                    self.ports.insert(name.clone(), at(&after[..1]));
                    rest = &after[1..];
                }
                "via" => {
                    self.beyond_hapair.push((
                        statement.location.clone(),
                        "`via` (DRBD Proxy) is not offered; hapair connects directly".into(),
                    ));
                    rest = &[];
                }
                _ => {
                    return Err(statement.location.error(format!(
                        "`{}`: expected host NAME [address [FAMILY] IP:PORT] [port PORT]",
                        statement.head()
                    )));
                }
            }
        }
        Ok(())
    }
}

/// A `proxy` section (DRBD Proxy), which hapair does not offer.
fn proxy(statement: &Statement) -> (Location, String) {
    (
        statement.location.clone(),
        "DRBD Proxy (`proxy` sections) is not offered; hapair connects directly".into(),
    )
}

/// Checks the form of an address as drbdadm does: `IPV4:PORT` or
/// `[IPV6]:PORT` (with an optional `%scope`); host names are not addresses.
fn check_address(text: &str, location: &Location) -> Result<(), ConfigError> {
    let well_formed = text.rsplit_once(':').is_some_and(|(ip, port)| {
        port.parse::<u16>().is_ok()
            && match ip.strip_prefix('[').and_then(|ip| ip.strip_suffix(']')) {
                Some(v6) => v6
                    .split('%')
                    .next()
                    .is_some_and(|v6| v6.parse::<Ipv6Addr>().is_ok()),
                None => ip.parse::<Ipv4Addr>().is_ok(),
            }
    });
    if well_formed {
        Ok(())
    } else {
        Err(location.error(format!(
            "`{text}` is not an address: write IPV4:PORT (10.0.0.1:7789) or [IPV6]:PORT \
             ([fd00::1]:7789)"
        )))
    }
}

/// Address families drbd.conf knows.
fn is_family(word: &str) -> bool {
    matches!(word, "ipv4" | "ipv6" | "ssocks" | "sdp" | "sci")
}

fn resource(statement: &Statement, common_disks: &VolumeDisks) -> Result<Resource, ConfigError> {
    let block = section_block(statement, 1)?;
    let name = statement.args[0].clone();
    let mut sections = Sections::default();
    let mut disks = VolumeDisks::default();
    let mut volumes: BTreeMap<u32, VolumeDisks> = BTreeMap::new();
    let mut hosts: Vec<(Host, BTreeMap<u32, VolumeDisks>, VolumeDisks)> = Vec::new();
    let mut connections = Connections::default();
    let mut beyond_hapair = Vec::new();
    for inner in block {
        match inner.keyword.as_str() {
            "on" => hosts.push(host(inner, &mut beyond_hapair)?),
            "proxy" if inner.block.is_some() => beyond_hapair.push(proxy(inner)),
            "floating" => {
                section_block(inner, inner.args.len())?;
                beyond_hapair.push((
                    inner.location.clone(),
                    "`floating` nodes (chosen by address) are not offered; name each node with \
                     `on HOST`"
                        .into(),
                ));
            }
            "volume" => {
                let (number, volume_disks) = volume(inner, Some(&mut sections))?;
                if volumes.insert(number, volume_disks).is_some() {
                    return Err(inner
                        .location
                        .error(format!("volume {number} is defined twice")));
                }
            }
            "connection" | "connection-mesh" => connections.read(inner)?,
            "stacked-on-top-of" => {
                section_block(inner, 1)?;
                beyond_hapair.push((
                    inner.location.clone(),
                    "stacked resources are not offered".into(),
                ));
            }
            _ if options_section(&mut sections, inner)? => {}
            _ if volume_disk_statement(&mut disks, inner)? => {}
            _ => {
                return Err(unexpected(
                    inner,
                    "resource",
                    "on, volume, connection, connection-mesh, floating, net, disk, handlers, \
                     startup, options, device, meta-disk",
                ));
            }
        }
    }
    sections.override_with(&connections.sections);
    beyond_hapair.append(&mut connections.beyond_hapair);
    let resource_disks = disks.or(common_disks);
    let mut volume_numbers: Vec<u32> = volumes.keys().copied().collect();
    for (_, host_volumes, _) in &hosts {
        volume_numbers.extend(host_volumes.keys());
    }
    volume_numbers.sort_unstable();
    volume_numbers.dedup();
    if volume_numbers.len() > 1 {
        beyond_hapair.push((
            statement.location.clone(),
            format!(
                "{} volumes ({}); a hapair resource has one",
                volume_numbers.len(),
                volume_numbers
                    .iter()
                    .map(u32::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ));
    }
    let only_volume = volume_numbers.first().copied();
    let mut resolved = Vec::new();
    for (mut host, host_volumes, host_disks) in hosts {
        if let Some(first) = resolved.iter().find(|h: &&Host| h.name == host.name) {
            return Err(host.location.error(format!(
                "{} has a second `on` section (the first is at {})",
                host.name, first.location
            )));
        }
        let empty = VolumeDisks::default();
        let pick = |map: &BTreeMap<u32, VolumeDisks>| {
            only_volume
                .and_then(|number| map.get(&number).cloned())
                .unwrap_or_default()
        };
        host.disks = pick(&host_volumes)
            .or(&host_disks)
            .or(&pick(&volumes))
            .or(&resource_disks)
            .or(&empty);
        if let Some(disk) = host
            .disks
            .disk
            .as_ref()
            .filter(|disk| disk.value() == "none")
        {
            beyond_hapair.push((
                disk.location.clone(),
                format!(
                    "{} is a diskless node (`disk none`); hapair mirrors between two disks",
                    host.name
                ),
            ));
        }
        if let Some(address) = connections.addresses.get(&host.name) {
            host.address = Some(address.clone());
        }
        if let (Some(port), Some(address)) = (connections.ports.get(&host.name), &mut host.address)
        {
            let last = address.args.len() - 1;
            let ip = address.args[last]
                .rsplit_once(':')
                .map_or(address.args[last].as_str(), |(ip, _)| ip)
                .to_owned();
            address.args[last] = format!("{ip}:{}", port.args[0]);
            address.location = port.location.clone();
        }
        if let Some(address) = &host.address
            && let [family, _] = address.args.as_slice()
            && family != "ipv4"
            && family != "ipv6"
        {
            beyond_hapair.push((
                address.location.clone(),
                format!(
                    "address family {family} is not offered; hapair connects over TCP on ipv4 \
                     or ipv6"
                ),
            ));
        }
        resolved.push(host);
    }
    for name in connections.addresses.keys().chain(connections.ports.keys()) {
        if !resolved.iter().any(|host| &host.name == name) {
            return Err(statement.location.error(format!(
                "resource {name_}: a connection names host {name}, which has no `on` section",
                name_ = statement.args[0]
            )));
        }
    }
    Ok(Resource {
        name,
        location: statement.location.clone(),
        sections,
        hosts: resolved,
        beyond_hapair,
    })
}

/// An `on HOST { ... }` section: the host, its volumes and its volume-less
/// disks (8.4 form).
fn host(
    statement: &Statement,
    beyond_hapair: &mut Vec<(Location, String)>,
) -> Result<(Host, BTreeMap<u32, VolumeDisks>, VolumeDisks), ConfigError> {
    let block = section_block(statement, statement.args.len().max(1))?;
    let Some(name) = statement.args.first() else {
        return Err(statement
            .location
            .error("`on` needs a host name: on HOST { ... }"));
    };
    if statement.args.len() > 1 {
        beyond_hapair.push((
            statement.location.clone(),
            format!(
                "`{}`: one `on` section for several hosts is not offered; give each node its own",
                statement.head()
            ),
        ));
    }
    let mut host = Host {
        name: name.clone(),
        location: statement.location.clone(),
        address: None,
        node_id: None,
        disks: VolumeDisks::default(),
    };
    let mut volumes = BTreeMap::new();
    let mut disks = VolumeDisks::default();
    for inner in block {
        let setting = || Setting {
            args: inner.args.clone(),
            location: inner.location.clone(),
        };
        match inner.keyword.as_str() {
            "address" if inner.block.is_none() => {
                let ok = match inner.args.as_slice() {
                    [_] => true,
                    [family, _] => is_family(family),
                    _ => false,
                };
                if !ok {
                    return Err(inner.location.error(format!(
                        "`{}`: expected address [ipv4|ipv6] IP:PORT",
                        inner.head()
                    )));
                }
                check_address(
                    inner.args.last().map_or("", String::as_str),
                    &inner.location,
                )?;
                host.address = Some(setting());
            }
            "proxy" if inner.block.is_some() => beyond_hapair.push(proxy(inner)),
            "node-id" if inner.block.is_none() && inner.args.len() == 1 => {
                host.node_id = Some(setting());
            }
            "volume" => {
                let (number, volume_disks) = volume(inner, None)?;
                if volumes.insert(number, volume_disks).is_some() {
                    return Err(inner
                        .location
                        .error(format!("volume {number} is defined twice")));
                }
            }
            _ if volume_disk_statement(&mut disks, inner)? => {}
            _ => {
                return Err(unexpected(
                    inner,
                    "on",
                    "address, node-id, device, disk, meta-disk, volume",
                ));
            }
        }
    }
    Ok((host, volumes, disks))
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::drbd::parser::Reader;

    fn config_of(text: &str) -> Result<Config, String> {
        let statements = Reader::default()
            .parse(text, "t.res", Path::new("/nonexistent"))
            .map_err(|error| error.to_string())?;
        config(&statements).map_err(|error| error.to_string())
    }

    #[test]
    fn common_is_inherited_and_resource_overrides_it() {
        let config = config_of(
            "common { protocol B; net { ping-int 7; } disk { resync-rate 40M; } }\n\
             resource r0 { net { ping-int 9; } on a { address 10.0.0.1:1; disk /d; meta-disk internal; }\n\
             on b { address 10.0.0.2:1; disk /d; meta-disk internal; } }",
        )
        .unwrap();
        let resource = &config.resources[0];
        assert_eq!(resource.sections.net["protocol"].value(), "B");
        assert_eq!(resource.sections.net["ping-int"].value(), "9");
        assert_eq!(resource.sections.net["ping-int"].location.line, 2);
        assert_eq!(resource.sections.disk["resync-rate"].value(), "40M");
    }

    #[test]
    fn resource_level_disks_reach_every_host() {
        let config = config_of(
            "resource r0 { device /dev/drbd0; disk /dev/sdb; meta-disk internal;\n\
             on a { address 10.0.0.1:1; } on b { address 10.0.0.2:1; disk /dev/sdc; } }",
        )
        .unwrap();
        let hosts = &config.resources[0].hosts;
        assert_eq!(hosts[0].disks.disk.as_ref().unwrap().value(), "/dev/sdb");
        assert_eq!(hosts[1].disks.disk.as_ref().unwrap().value(), "/dev/sdc");
        assert_eq!(
            hosts[1].disks.meta_disk.as_ref().unwrap().value(),
            "internal"
        );
    }

    #[test]
    fn unknown_keywords_are_errors_at_their_line() {
        let error = config_of("resource r0 {\n net { frobnicate yes; }\n}").unwrap_err();
        assert!(
            error.starts_with("t.res:2: `frobnicate` is not an option of the `net` section"),
            "{error}"
        );
        let error = config_of("cat /etc/drbd.d/r0.res\nresource r0 { }").unwrap_err();
        assert!(error.starts_with("t.res:1: "), "{error}");
        let error = config_of("resource r0 {\n  syncer { rate 10M; }\n}").unwrap_err();
        assert!(error.contains("t.res:2: `rate` in `syncer`"), "{error}");
    }
}
