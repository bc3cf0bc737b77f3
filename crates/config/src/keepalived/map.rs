//! keepalived's keywords and defaults onto hapair's YAML schema.
//!
//! Each keyword hapair implements is translated to the YAML field that means
//! the same thing; keepalived's own fallbacks are kept where they are part
//! of the meaning (an unknown `state` is BACKUP, `nopreempt` is cleared by
//! `state MASTER`, `auth_pass` is cut to 8 bytes, unicast adverts skip the
//! TTL check). Everything else becomes a [`Diagnostic`]: a warning when the
//! pair fails over as keepalived would without it, [`Severity::Unsafe`]
//! when not. Number syntax and missing values are checked here, at the
//! keepalived line; ranges and cross-field rules are left to
//! [`crate::vrrp::VrrpConfig::parse`], whose errors [`Mapped::locate`] puts
//! back on the line the value came from.

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde::Serialize;

use super::lexer::Location;
use super::tree::Statement;
use super::{Diagnostic, Severity};
use crate::error::{ConfigError, printable};

/// Keywords that start a keepalived.conf statement at the top level; used
/// to tell keepalived text from YAML.
pub(crate) const TOP_LEVEL_KEYWORDS: &[&str] = &[
    "global_defs",
    "vrrp_instance",
    "vrrp_script",
    "vrrp_sync_group",
    "vrrp_track_file",
    "track_file",
    "vrrp_track_process",
    "static_ipaddress",
    "static_routes",
    "static_rules",
    "virtual_server",
    "virtual_server_group",
    "include",
    "net_namespace",
    "bfd_instance",
    "garp_group",
    "linkbeat_interfaces",
    "linkbeat_use_polling",
    "net_namespace_ipvs",
    "namespace_with_ipsets",
    "instance",
    "use_pid_dir",
    "child_wait_time",
];

/// Keywords hapair does not implement whose absence changes how the pair
/// fails over compared with keepalived: with each, the reason. A file using
/// any of them is refused unless unsupported keywords are allowed.
pub const UNSAFE_KEYWORDS: &[(&str, &str)] = &[
    (
        "vrrp_strict",
        "(strict RFC mode: refuses unicast, authentication and non-default adverts, and drops traffic to the addresses with firewall rules)",
    ),
    (
        "strict_mode",
        "(per-instance strict RFC mode, see vrrp_strict)",
    ),
    (
        "vrrp_mcast_group4",
        "(a non-standard multicast group: hapair advertises to 224.0.0.18, so the peers would not hear each other)",
    ),
    (
        "vrrp_mcast_group6",
        "(a non-standard multicast group: hapair advertises to ff02::12, so the peers would not hear each other)",
    ),
    (
        "net_namespace",
        "(keepalived runs in another network namespace; hapair runs where it is started)",
    ),
    (
        "use_vmac",
        "(a macvlan with the virtual MAC 00:00:5e:00:01:VRID: hapair uses the interface's own MAC, so switches learn a different port mapping on failover)",
    ),
    (
        "vmac_xmit_base",
        "(adverts sent from the base interface of a VMAC; hapair has no VMAC)",
    ),
    (
        "use_ipvlan",
        "(an ipvlan interface for the addresses; hapair has none)",
    ),
    (
        "track_bfd",
        "(BFD tracking: without it the instance would not leave MASTER when the BFD session fails)",
    ),
    (
        "track_process",
        "(process tracking: without it the instance would not react when the process dies)",
    ),
    (
        "dont_track_primary",
        "(keepalived ignores the interface's link state; hapair goes to FAULT when it goes down)",
    ),
    (
        "virtual_routes",
        "(routes that follow the master: hapair would not move them)",
    ),
    (
        "virtual_rules",
        "(routing rules that follow the master: hapair would not move them)",
    ),
    (
        "down_timer_adverts",
        "(a master-down interval of other than 3 adverts: hapair would take over at a different time)",
    ),
    (
        "auth_hmac",
        "(HMAC authentication of adverts: hapair neither sends nor checks it, so a keepalived peer would ignore its adverts)",
    ),
];

/// Top-level blocks of keepalived's load balancer (LVS) side.
const LVS_BLOCKS: &[&str] = &["virtual_server", "virtual_server_group"];

/// The result of mapping: the YAML document, where each of its fields came
/// from, and what was reported on the way.
pub(crate) struct Mapped {
    document: Document,
    /// YAML field paths (as [`crate::vrrp::VrrpConfig::parse`] names them)
    /// and the keepalived line each came from.
    origins: Vec<(String, Location)>,
    pub diagnostics: Vec<Diagnostic>,
}

#[derive(Serialize)]
struct Document {
    #[serde(skip_serializing_if = "Option::is_none")]
    hooks: Option<Hooks>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    vrrp_scripts: BTreeMap<String, Script>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    track_files: BTreeMap<String, TrackFile>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    sync_groups: BTreeMap<String, SyncGroup>,
    instances: Vec<Instance>,
}

/// The YAML `hooks:` section: keepalived's script security and FIFO.
#[derive(Serialize)]
struct Hooks {
    script_security: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    script_user: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    notify_fifo: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    notify_fifo_script: Option<Vec<String>>,
}

/// A `vrrp_scripts:` entry (keepalived's `vrrp_script`).
#[derive(Serialize, Default)]
struct Script {
    #[serde(skip_serializing_if = "Option::is_none")]
    script: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    interval: Option<Number>,
    #[serde(skip_serializing_if = "Option::is_none")]
    timeout: Option<Number>,
    #[serde(skip_serializing_if = "Option::is_none")]
    rise: Option<Number>,
    #[serde(skip_serializing_if = "Option::is_none")]
    fall: Option<Number>,
    #[serde(skip_serializing_if = "Option::is_none")]
    weight: Option<Number>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    reverse: bool,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    init_fail: bool,
}

/// A `track_files:` entry (keepalived's `vrrp_track_file`).
#[derive(Serialize, Default)]
struct TrackFile {
    #[serde(skip_serializing_if = "Option::is_none")]
    file: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    weight: Option<Number>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    reverse: bool,
}

/// The notify hooks of an instance or a sync group, under their YAML keys.
#[derive(Serialize, Default)]
struct NotifyHooks {
    #[serde(skip_serializing_if = "Option::is_none")]
    notify_master: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    notify_backup: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    notify_fault: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    notify_stop: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    notify: Option<Vec<String>>,
}

impl NotifyHooks {
    /// Where the hook set by a `notify_master` / `_backup` / `_fault` /
    /// `_stop` keyword goes; the generic `notify` takes any other word.
    fn slot(&mut self, keyword: &str) -> &mut Option<Vec<String>> {
        match keyword {
            "notify_master" => &mut self.notify_master,
            "notify_backup" => &mut self.notify_backup,
            "notify_fault" => &mut self.notify_fault,
            "notify_stop" => &mut self.notify_stop,
            _ => &mut self.notify,
        }
    }
}

/// A `sync_groups:` entry (keepalived's `vrrp_sync_group`).
#[derive(Serialize, Default)]
struct SyncGroup {
    group: Vec<String>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    sync_group_tracking_weight: bool,
    #[serde(flatten)]
    hooks: NotifyHooks,
}

/// One entry of the YAML `instances:` list; field names are the schema's.
#[derive(Serialize, Default)]
struct Instance {
    name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    interface: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    virtual_router_id: Option<Number>,
    #[serde(skip_serializing_if = "Option::is_none")]
    priority: Option<Number>,
    #[serde(skip_serializing_if = "Option::is_none")]
    version: Option<Number>,
    #[serde(skip_serializing_if = "Option::is_none")]
    advert_int: Option<Number>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    nopreempt: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    preempt_delay: Option<Number>,
    virtual_ipaddress: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    unicast_src_ip: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    unicast_peer: Vec<String>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    unicast_skip_ttl_check: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    authentication: Option<Authentication>,
    #[serde(skip_serializing_if = "Option::is_none")]
    garp_master_delay: Option<Number>,
    #[serde(skip_serializing_if = "Option::is_none")]
    garp_master_repeat: Option<Number>,
    #[serde(skip_serializing_if = "Option::is_none")]
    garp_master_refresh: Option<Number>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    v3_checksum_as_v2: bool,
    #[serde(flatten)]
    hooks: NotifyHooks,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    track_script: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    track_interface: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    track_file: Vec<String>,
}

#[derive(Serialize)]
struct Authentication {
    auth_type: String,
    auth_pass: String,
}

/// A number as the YAML schema reads it: whole numbers are written whole.
#[derive(Serialize, Clone, Copy, Debug, PartialEq)]
#[serde(untagged)]
enum Number {
    Whole(i64),
    Fraction(f64),
}

/// `global_defs` settings that instances inherit.
#[derive(Default)]
struct Globals {
    version: Option<(Number, Location)>,
    garp_master_delay: Option<(Number, Location)>,
    garp_master_repeat: Option<(Number, Location)>,
    garp_master_refresh: Option<(Number, Location)>,
    /// `enable_script_security` is set.
    script_security: bool,
    script_user: Option<(String, Location)>,
    notify_fifo: Option<(String, Location)>,
    notify_fifo_script: Option<(Vec<String>, Location)>,
}

/// Maps the statements of a whole configuration.
pub(crate) fn map(
    statements: &[Statement],
    diagnostics: Vec<Diagnostic>,
) -> Result<Mapped, ConfigError> {
    let mut mapper = Mapper {
        origins: Vec::new(),
        diagnostics,
        first_script: None,
    };
    let mut globals = Globals::default();
    for statement in statements.iter().filter(|s| s.keyword == "global_defs") {
        mapper.global_defs(statement, &mut globals)?;
    }
    let mut instances = Vec::new();
    let mut scripts = BTreeMap::new();
    let mut track_files = BTreeMap::new();
    let mut sync_groups = BTreeMap::new();
    let mut lvs_blocks = 0usize;
    let mut first_lvs: Option<&Statement> = None;
    for statement in statements {
        match statement.keyword.as_str() {
            "global_defs" => {}
            "vrrp_instance" => {
                let index = instances.len();
                instances.push(mapper.instance(statement, index, &globals)?);
            }
            "vrrp_script" => {
                mapper
                    .first_script
                    .get_or_insert_with(|| statement.at.clone());
                let (name, script) = mapper.script(statement)?;
                scripts.insert(name, script);
            }
            "vrrp_track_file" | "track_file" => {
                let (name, file) = mapper.track_file(statement)?;
                track_files.insert(name, file);
            }
            "vrrp_sync_group" => {
                if let Some((name, group)) = mapper.sync_group(statement)? {
                    sync_groups.insert(name, group);
                }
            }
            "static_ipaddress" | "static_routes" | "static_rules" => mapper.warn(
                statement,
                "is not managed by hapair (keepalived adds these once at start); configure them \
                 with the system's network configuration",
            ),
            keyword if LVS_BLOCKS.contains(&keyword) => {
                lvs_blocks += 1;
                first_lvs.get_or_insert(statement);
            }
            keyword if TOP_LEVEL_KEYWORDS.contains(&keyword) => {
                mapper.report_unimplemented(statement);
            }
            keyword => {
                return Err(statement.at.error(format!(
                    "`{keyword}` is not a keepalived top-level keyword (a typo of \
                     vrrp_instance, global_defs, ...?); keepalived would skip the whole block"
                )));
            }
        }
    }
    if let Some(script) = &mapper.first_script
        && !globals.script_security
    {
        mapper.diagnostics.push(Diagnostic::new(
            script,
            "enable_script_security",
            Severity::Warning,
            "is not set in global_defs although scripts are configured: keepalived runs them \
             anyway (reporting a SECURITY VIOLATION), and so does hapair (hooks.script_security: \
             false)",
        ));
    }
    let hooks = mapper.hooks(&globals);
    if let Some(first) = first_lvs {
        mapper.warn(
            first,
            &format!(
                "and the rest of keepalived's load balancer (LVS) side are out of hapair's scope; \
                 {lvs_blocks} virtual server block(s) ignored"
            ),
        );
    }
    Ok(Mapped {
        document: Document {
            hooks,
            vrrp_scripts: scripts,
            track_files,
            sync_groups,
            instances,
        },
        origins: mapper.origins,
        diagnostics: mapper.diagnostics,
    })
}

impl Mapped {
    pub(crate) fn has_no_instance(&self) -> bool {
        self.document.instances.is_empty()
    }

    /// The YAML document alone, as the rules check it.
    pub(crate) fn document_yaml(&self, origin: &str) -> Result<String, ConfigError> {
        serde_saphyr::to_string(&self.document).map_err(|error| ConfigError::Yaml {
            origin: printable(origin),
            line_column: None,
            message: format!("cannot write the configuration as YAML: {error}"),
        })
    }

    /// Comment lines saying where `document` came from and what was not
    /// carried over, followed by `document`.
    pub(crate) fn with_header(&self, origin: &str, document: &str) -> String {
        let mut out = format!(
            "# hapair vrrpd configuration imported from the keepalived configuration {}\n",
            printable(origin)
        );
        for diagnostic in &self.diagnostics {
            // Displayed diagnostics are one line: control characters are escaped.
            out.push_str(&format!("# {diagnostic}\n"));
        }
        out.push_str(document);
        out
    }

    /// Puts an error of the YAML rules on the keepalived line its field came
    /// from (the longest recorded field path the error's field starts with).
    pub(crate) fn locate(&self, error: ConfigError) -> ConfigError {
        let ConfigError::Invalid { field, message, .. } = &error else {
            return error;
        };
        let found = self
            .origins
            .iter()
            .filter(|(path, _)| {
                field.starts_with(path.as_str())
                    && field[path.len()..]
                        .chars()
                        .next()
                        .is_none_or(|c| c == '.' || c == '[')
            })
            .max_by_key(|(path, _)| path.len());
        match found {
            Some((_, at)) => at.error(format!("{field}: {message}")),
            None => error,
        }
    }
}

struct Mapper {
    origins: Vec<(String, Location)>,
    diagnostics: Vec<Diagnostic>,
    /// The first notify command or script, for the script security check.
    first_script: Option<Location>,
}

impl Mapper {
    fn report(&mut self, statement: &Statement, severity: Severity, message: &str) {
        self.diagnostics.push(Diagnostic::new(
            &statement.at,
            &statement.keyword,
            severity,
            message,
        ));
    }

    fn warn(&mut self, statement: &Statement, message: &str) {
        self.report(statement, Severity::Warning, message);
    }

    /// A keyword hapair does not implement: unsafe when it is on the list,
    /// otherwise a warning that it is ignored.
    fn report_unimplemented(&mut self, statement: &Statement) {
        match UNSAFE_KEYWORDS
            .iter()
            .find(|(keyword, _)| *keyword == statement.keyword)
        {
            Some((_, why)) => self.report(
                statement,
                Severity::Unsafe,
                &format!("is not supported by hapair {why}"),
            ),
            None => self.warn(statement, "is not supported by hapair and is ignored"),
        }
    }

    fn record(&mut self, path: String, at: &Location) {
        self.origins.push((path, at.clone()));
    }

    fn global_defs(&mut self, block: &Statement, globals: &mut Globals) -> Result<(), ConfigError> {
        for statement in block.children() {
            let slot = match statement.keyword.as_str() {
                "vrrp_version" => &mut globals.version,
                "vrrp_garp_master_delay" => &mut globals.garp_master_delay,
                "vrrp_garp_master_repeat" => &mut globals.garp_master_repeat,
                "vrrp_garp_master_refresh" => &mut globals.garp_master_refresh,
                // hapair always checks that unicast adverts come from a peer.
                "vrrp_check_unicast_src" => continue,
                "enable_script_security" => {
                    globals.script_security = true;
                    continue;
                }
                "script_user" => {
                    // keepalived: `script_user USER [GROUP]`.
                    let user = value(statement)?;
                    let user = match statement.args.get(1) {
                        Some(group) => format!("{user}:{group}"),
                        None => user.to_owned(),
                    };
                    globals.script_user = Some((user, statement.at.clone()));
                    continue;
                }
                "notify_fifo" | "vrrp_notify_fifo" => {
                    if let Some((_, earlier)) = &globals.notify_fifo {
                        self.warn(
                            statement,
                            &format!(
                                "replaces the FIFO set at line {}: hapair writes one FIFO",
                                earlier.line
                            ),
                        );
                    }
                    globals.notify_fifo =
                        Some((value(statement)?.to_owned(), statement.at.clone()));
                    continue;
                }
                "notify_fifo_script" | "vrrp_notify_fifo_script" => {
                    globals.notify_fifo_script = Some((command(statement)?, statement.at.clone()));
                    continue;
                }
                _ => {
                    self.report_unimplemented(statement);
                    continue;
                }
            };
            *slot = Some((number(statement)?, statement.at.clone()));
        }
        Ok(())
    }

    fn instance(
        &mut self,
        block: &Statement,
        index: usize,
        globals: &Globals,
    ) -> Result<Instance, ConfigError> {
        let name = block.args.first().ok_or_else(|| {
            block
                .at
                .error("`vrrp_instance` needs a name (e.g. `vrrp_instance VI_1 {`)")
        })?;
        if block.block.is_none() {
            return Err(block.at.error(format!(
                "`vrrp_instance {name}` has no `{{ }}` block with its settings"
            )));
        }
        let prefix = format!("instances[{index}] ({name})");
        self.record(prefix.clone(), &block.at);
        let mut instance = Instance {
            name: name.clone(),
            ..Instance::default()
        };
        let field = |mapper: &mut Mapper, name: &str, at: &Location| {
            mapper.record(format!("{prefix}.{name}"), at);
        };
        for (slot, global, name) in [
            (&mut instance.version, &globals.version, "version"),
            (
                &mut instance.garp_master_delay,
                &globals.garp_master_delay,
                "garp_master_delay",
            ),
            (
                &mut instance.garp_master_repeat,
                &globals.garp_master_repeat,
                "garp_master_repeat",
            ),
            (
                &mut instance.garp_master_refresh,
                &globals.garp_master_refresh,
                "garp_master_refresh",
            ),
        ] {
            if let Some((value, at)) = global {
                *slot = Some(*value);
                field(self, name, at);
            }
        }
        let mut state_master: Option<&Statement> = None;
        // The last unicast keyword, to warn when it has no peers.
        let mut unicast_keyword: Option<&Statement> = None;
        let mut peers: Vec<(String, &Statement)> = Vec::new();
        let mut excluded: Vec<(String, Location)> = Vec::new();
        for statement in block.children() {
            let keyword = statement.keyword.as_str();
            match keyword {
                "state" => match value(statement)? {
                    "MASTER" => state_master = Some(statement),
                    "BACKUP" => state_master = None,
                    other => {
                        state_master = None;
                        self.warn(
                            statement,
                            &format!("`{other}` is not MASTER or BACKUP; BACKUP is used, as keepalived does"),
                        );
                    }
                },
                "interface" => {
                    instance.interface = Some(value(statement)?.to_owned());
                    field(self, keyword, &statement.at);
                }
                "virtual_router_id" => {
                    instance.virtual_router_id = Some(number(statement)?);
                    field(self, keyword, &statement.at);
                }
                "priority" => {
                    instance.priority = Some(number(statement)?);
                    field(self, keyword, &statement.at);
                }
                "version" => {
                    instance.version = Some(number(statement)?);
                    field(self, keyword, &statement.at);
                }
                "advert_int" => {
                    instance.advert_int = Some(number(statement)?);
                    field(self, keyword, &statement.at);
                }
                "nopreempt" => {
                    instance.nopreempt = true;
                    field(self, keyword, &statement.at);
                }
                "preempt" => instance.nopreempt = false,
                "preempt_delay" => {
                    instance.preempt_delay = Some(number(statement)?);
                    field(self, keyword, &statement.at);
                }
                "garp_master_delay" => {
                    instance.garp_master_delay = Some(number(statement)?);
                    field(self, keyword, &statement.at);
                }
                "garp_master_repeat" => {
                    instance.garp_master_repeat = Some(number(statement)?);
                    field(self, keyword, &statement.at);
                }
                "garp_master_refresh" => {
                    instance.garp_master_refresh = Some(number(statement)?);
                    field(self, keyword, &statement.at);
                }
                "v3_checksum_as_v2" => {
                    instance.v3_checksum_as_v2 = true;
                    field(self, keyword, &statement.at);
                }
                "unicast_src_ip" => {
                    unicast_keyword = Some(statement);
                    let text = value(statement)?;
                    instance.unicast_src_ip = Some(self.unicast_address(statement, text));
                    field(self, keyword, &statement.at);
                }
                "unicast_peer" => {
                    unicast_keyword = Some(statement);
                    field(self, keyword, &statement.at);
                    for peer in entries(statement)? {
                        peers.push((self.unicast_peer(peer), peer));
                    }
                }
                "authentication" => {
                    instance.authentication = self.authentication(statement)?;
                    field(self, keyword, &statement.at);
                }
                "virtual_ipaddress" => {
                    field(self, keyword, &statement.at);
                    for entry in entries(statement)? {
                        let address = self.virtual_address(entry);
                        if let Some(earlier) = instance
                            .virtual_ipaddress
                            .iter()
                            .find(|listed| same_address(listed, &address))
                        {
                            self.warn(
                                entry,
                                &format!(
                                    "repeats `{earlier}`; keepalived adds an address once, so \
                                     hapair keeps the first entry only"
                                ),
                            );
                            continue;
                        }
                        field(
                            self,
                            &format!("virtual_ipaddress[{}]", instance.virtual_ipaddress.len()),
                            &entry.at,
                        );
                        instance.virtual_ipaddress.push(address);
                    }
                }
                "virtual_ipaddress_excluded" => {
                    for entry in entries(statement)? {
                        excluded.push((self.virtual_address(entry), entry.at.clone()));
                    }
                }
                "notify_master" | "notify_backup" | "notify_fault" | "notify_stop" | "notify" => {
                    let slot = instance.hooks.slot(keyword);
                    if self.notify(slot, statement)? {
                        field(self, keyword, &statement.at);
                    }
                }
                // hapair always checks that unicast adverts come from a
                // peer, and always accepts traffic to the addresses.
                "check_unicast_src" => unicast_keyword = Some(statement),
                "accept" => {}
                "track_script" | "track_interface" | "track_file" => {
                    let list = match keyword {
                        "track_script" => &mut instance.track_script,
                        "track_interface" => &mut instance.track_interface,
                        _ => &mut instance.track_file,
                    };
                    for entry in entries(statement)? {
                        let index = list.len();
                        list.push(
                            std::iter::once(entry.keyword.as_str())
                                .chain(entry.args.iter().map(String::as_str))
                                .collect::<Vec<_>>()
                                .join(" "),
                        );
                        field(self, &format!("{keyword}[{index}]"), &entry.at);
                    }
                }
                _ => self.report_unimplemented(statement),
            }
        }
        if let Some(state) = state_master
            && instance.nopreempt
        {
            instance.nopreempt = false;
            self.warn(
                state,
                "MASTER clears nopreempt, as keepalived does (nopreempt needs state BACKUP); \
                 the instance preempts",
            );
        }
        self.ipv6_is_version_3(&mut instance, &prefix, block);
        for (address, peer) in peers {
            // One file for both nodes often lists both addresses.
            if instance.unicast_src_ip.as_ref() == Some(&address) {
                self.warn(
                    peer,
                    "is this node's own unicast_src_ip; it is left out of the peers (a file \
                     shared by both nodes lists both addresses)",
                );
                continue;
            }
            field(
                self,
                &format!("unicast_peer[{}]", instance.unicast_peer.len()),
                &peer.at,
            );
            instance.unicast_peer.push(address);
        }
        if instance.unicast_peer.is_empty()
            && let Some(source) = unicast_keyword
        {
            self.warn(
                source,
                "is given but there are no unicast peers: adverts are multicast, as keepalived \
                 falls back to multicast",
            );
        }
        if !instance.unicast_peer.is_empty() {
            // keepalived checks TTL 255 on multicast adverts only.
            instance.unicast_skip_ttl_check = true;
        }
        self.merge_excluded(&mut instance, &prefix, excluded);
        Ok(instance)
    }

    /// Sets a notify command unless one is set already: keepalived keeps the
    /// first and ignores the others, with a warning. True when set.
    fn notify(
        &mut self,
        slot: &mut Option<Vec<String>>,
        statement: &Statement,
    ) -> Result<bool, ConfigError> {
        let argv = command(statement)?;
        if slot.is_some() {
            self.warn(
                statement,
                "is given a second time; the first one counts and this one is ignored, as in \
                 keepalived",
            );
            return Ok(false);
        }
        self.first_script
            .get_or_insert_with(|| statement.at.clone());
        *slot = Some(argv);
        Ok(true)
    }

    /// The `hooks:` section: keepalived's script security (off unless
    /// `enable_script_security`), script user and FIFO.
    fn hooks(&mut self, globals: &Globals) -> Option<Hooks> {
        if let Some((_, at)) = &globals.script_user {
            self.record("hooks.script_user".to_owned(), at);
        }
        if let Some((_, at)) = &globals.notify_fifo {
            self.record("hooks.notify_fifo".to_owned(), at);
        }
        if let Some((_, at)) = &globals.notify_fifo_script {
            self.record("hooks.notify_fifo_script".to_owned(), at);
        }
        let scripts = self.first_script.is_some() || globals.notify_fifo_script.is_some();
        let any = scripts
            || globals.script_security
            || globals.script_user.is_some()
            || globals.notify_fifo.is_some();
        any.then(|| Hooks {
            script_security: globals.script_security,
            script_user: globals.script_user.as_ref().map(|(user, _)| user.clone()),
            notify_fifo: globals.notify_fifo.as_ref().map(|(path, _)| path.clone()),
            notify_fifo_script: globals
                .notify_fifo_script
                .as_ref()
                .map(|(argv, _)| argv.clone()),
        })
    }

    /// `vrrp_script NAME { script ...; interval; timeout; weight W [reverse];
    /// rise; fall; init_fail }`.
    fn script(&mut self, block: &Statement) -> Result<(String, Script), ConfigError> {
        let name = block_name(block)?;
        let prefix = format!("vrrp_scripts.{name}");
        self.record(prefix.clone(), &block.at);
        let mut script = Script::default();
        for statement in block.children() {
            let keyword = statement.keyword.as_str();
            let slot = match keyword {
                "script" => {
                    script.script = Some(command(statement)?);
                    None
                }
                "interval" => Some(&mut script.interval),
                "timeout" => Some(&mut script.timeout),
                "rise" => Some(&mut script.rise),
                "fall" => Some(&mut script.fall),
                "weight" => {
                    script.reverse = statement.args.get(1).is_some_and(|word| word == "reverse");
                    Some(&mut script.weight)
                }
                "init_fail" => {
                    script.init_fail = true;
                    None
                }
                _ => {
                    self.report_unimplemented(statement);
                    continue;
                }
            };
            if let Some(slot) = slot {
                *slot = Some(number(statement)?);
            }
            self.record(format!("{prefix}.{keyword}"), &statement.at);
        }
        Ok((name.to_owned(), script))
    }

    /// `vrrp_track_file NAME { file PATH; weight W [reverse] }`.
    fn track_file(&mut self, block: &Statement) -> Result<(String, TrackFile), ConfigError> {
        let name = block_name(block)?;
        let prefix = format!("track_files.{name}");
        self.record(prefix.clone(), &block.at);
        let mut file = TrackFile::default();
        for statement in block.children() {
            match statement.keyword.as_str() {
                "file" => file.file = Some(value(statement)?.to_owned()),
                "weight" => {
                    file.weight = Some(number(statement)?);
                    file.reverse = statement.args.get(1).is_some_and(|word| word == "reverse");
                }
                _ => {
                    self.report_unimplemented(statement);
                    continue;
                }
            }
            self.record(format!("{prefix}.{}", statement.keyword), &statement.at);
        }
        Ok((name.to_owned(), file))
    }

    /// `vrrp_sync_group NAME { group { VI_1 VI_2 } notify_* ... }`. A group
    /// without members is dropped with a warning, as keepalived drops it.
    fn sync_group(
        &mut self,
        block: &Statement,
    ) -> Result<Option<(String, SyncGroup)>, ConfigError> {
        let name = block_name(block)?;
        let prefix = format!("sync_groups.{name}");
        self.record(prefix.clone(), &block.at);
        let mut group = SyncGroup::default();
        for statement in block.children() {
            let keyword = statement.keyword.as_str();
            match keyword {
                "group" => {
                    for member in entries(statement)? {
                        self.record(format!("{prefix}.group[{}]", group.group.len()), &member.at);
                        group.group.push(member.keyword.clone());
                    }
                }
                "sync_group_tracking_weight" | "global_tracking" => {
                    group.sync_group_tracking_weight = true;
                }
                "notify_master" | "notify_backup" | "notify_fault" | "notify_stop" | "notify" => {
                    let slot = group.hooks.slot(keyword);
                    if self.notify(slot, statement)? {
                        self.record(format!("{prefix}.{keyword}"), &statement.at);
                    }
                }
                "track_script" | "track_interface" | "track_file" | "track_process"
                | "track_bfd" => self.report(
                    statement,
                    Severity::Unsafe,
                    "is not supported for a whole sync group by hapair: the group would not \
                     react when what it tracks fails (track it in each member instance instead)",
                ),
                _ => self.report_unimplemented(statement),
            }
        }
        if group.group.is_empty() {
            self.warn(
                block,
                "has no `group { ... }` of instances; it is ignored, as keepalived ignores it",
            );
            return Ok(None);
        }
        Ok(Some((name.to_owned(), group)))
    }

    /// keepalived runs every IPv6 instance as VRRPv3, whatever `version`
    /// or `vrrp_version` say.
    fn ipv6_is_version_3(&mut self, instance: &mut Instance, prefix: &str, block: &Statement) {
        let ipv6 = instance
            .virtual_ipaddress
            .first()
            .and_then(|address| address_family_is_ipv4(address))
            == Some(false);
        if !ipv6 || instance.version == Some(Number::Whole(3)) {
            return;
        }
        if let Some(version) = instance.version {
            let (kind, value) = match version {
                Number::Whole(whole) => ("version", whole.to_string()),
                Number::Fraction(fraction) => ("version", fraction.to_string()),
            };
            self.diagnostics.push(Diagnostic::new(
                &block.at,
                kind,
                Severity::Warning,
                &format!(
                    "{value} does not apply to IPv6 addresses; keepalived and hapair use VRRPv3"
                ),
            ));
        }
        instance.version = Some(Number::Whole(3));
        self.record(format!("{prefix}.version"), &block.at);
    }

    /// `virtual_ipaddress_excluded` addresses are held by the master like
    /// the others but not listed in adverts. hapair lists them: a keepalived
    /// peer logs the differing address list but accepts the advert. Those
    /// of the other address family cannot join the instance.
    fn merge_excluded(
        &mut self,
        instance: &mut Instance,
        prefix: &str,
        excluded: Vec<(String, Location)>,
    ) {
        let family = address_family_is_ipv4;
        let instance_family = instance.virtual_ipaddress.first().and_then(|a| family(a));
        for (address, at) in excluded {
            if instance_family.is_some() && family(&address) != instance_family {
                self.diagnostics.push(Diagnostic::new(
                    &at,
                    "virtual_ipaddress_excluded",
                    Severity::Unsafe,
                    &format!(
                        "entry `{address}` is of the other address family than virtual_ipaddress; \
                         hapair's instances carry one family, so it would not move on failover"
                    ),
                ));
                continue;
            }
            self.diagnostics.push(Diagnostic::new(
                &at,
                "virtual_ipaddress_excluded",
                Severity::Warning,
                &format!(
                    "entry `{address}` is moved like the other addresses but, unlike in keepalived, \
                     also listed in adverts"
                ),
            ));
            self.record(
                format!(
                    "{prefix}.virtual_ipaddress[{}]",
                    instance.virtual_ipaddress.len()
                ),
                &at,
            );
            instance.virtual_ipaddress.push(address);
        }
    }

    /// A unicast address; keepalived accepts and ignores a `/prefix`.
    fn unicast_address(&mut self, statement: &Statement, text: &str) -> String {
        match text.split_once('/') {
            Some((address, prefix)) => {
                self.warn(
                    statement,
                    &format!(
                        "has a prefix length (`/{prefix}`); it is ignored, as keepalived ignores it"
                    ),
                );
                address.to_owned()
            }
            None => text.to_owned(),
        }
    }

    /// One `unicast_peer` entry: `ADDRESS [min_ttl N] [max_ttl N]`.
    fn unicast_peer(&mut self, peer: &Statement) -> String {
        if !peer.args.is_empty() {
            self.warn(
                peer,
                &format!(
                    "`{}`: hapair accepts unicast adverts of any TTL; the TTL bounds are ignored",
                    peer.args.join(" ")
                ),
            );
        }
        let keyword = peer.keyword.clone();
        self.unicast_address(peer, &keyword)
    }

    /// `authentication { auth_type PASS; auth_pass SECRET }`.
    fn authentication(&mut self, block: &Statement) -> Result<Option<Authentication>, ConfigError> {
        let mut auth_type: Option<&Statement> = None;
        let mut auth_pass: Option<String> = None;
        for statement in block.children() {
            match statement.keyword.as_str() {
                "auth_type" => {
                    value(statement)?;
                    auth_type = Some(statement);
                }
                "auth_pass" => {
                    let pass = value(statement)?;
                    let cut = truncate_bytes(pass, 8);
                    if cut.len() < pass.len() {
                        self.warn(
                            statement,
                            "is longer than 8 bytes; only the first 8 are used, as keepalived does",
                        );
                    }
                    auth_pass = Some(cut.to_owned());
                }
                _ => self.report_unimplemented(statement),
            }
        }
        let Some(kind) = auth_type else {
            self.warn(
                block,
                "has no auth_type, so keepalived uses no authentication; neither does hapair",
            );
            return Ok(None);
        };
        match kind.args[0].as_str() {
            "PASS" => {}
            "AH" => {
                return Err(kind.at.error(
                    "auth_type AH (IPsec authentication header) is not supported by hapair; \
                     use PASS on both nodes, or remove authentication",
                ));
            }
            other => {
                return Err(kind.at.error(format!(
                    "`{other}` is not an authentication type (keepalived would ignore it and run \
                     without authentication); write PASS"
                )));
            }
        }
        let Some(auth_pass) = auth_pass else {
            return Err(block
                .at
                .error("auth_type PASS needs an auth_pass (1 to 8 characters) in the same block"));
        };
        Ok(Some(Authentication {
            auth_type: "PASS".to_owned(),
            auth_pass,
        }))
    }

    /// One `virtual_ipaddress` entry as hapair's inline form
    /// `ADDRESS[/LEN] [dev NAME] [label NAME]`; keepalived's other options
    /// are reported.
    fn virtual_address(&mut self, entry: &Statement) -> String {
        let mut inline = entry.keyword.clone();
        let mut words = entry.args.iter();
        let mut ignored: Vec<String> = Vec::new();
        while let Some(option) = words.next() {
            match option.as_str() {
                "dev" | "label" => match words.next() {
                    Some(name) => inline.push_str(&format!(" {option} {name}")),
                    None => ignored.push(format!("`{option}` without a value")),
                },
                "scope" => match words.next() {
                    Some(scope) if scope == "global" || scope == "universe" => {}
                    Some(scope) => ignored.push(format!("scope {scope}")),
                    None => ignored.push("`scope` without a value".to_owned()),
                },
                "brd" | "broadcast" | "peer" | "track_group" | "preferred_lft" | "valid_lft" => {
                    let value = words.next().map(String::as_str).unwrap_or("");
                    ignored.push(format!("{option} {value}").trim_end().to_owned());
                }
                flag => ignored.push(flag.to_owned()),
            }
        }
        if !ignored.is_empty() {
            self.diagnostics.push(Diagnostic::new(
                &entry.at,
                &entry.keyword,
                Severity::Warning,
                &format!(
                    "is added with hapair's defaults; not supported and ignored: {}",
                    ignored.join(", ")
                ),
            ));
        }
        inline
    }
}

/// The entries of a list block (`virtual_ipaddress { ... }`). Values on the
/// keyword's own line are refused: keepalived ignores them ("Block ... has
/// extra parameters"), which would silently drop what they say.
fn entries(statement: &Statement) -> Result<&[Statement], ConfigError> {
    if !statement.args.is_empty() {
        return Err(statement.at.error(format!(
            "`{}` takes its entries in a `{{ }}` block, not on its own line (`{}`); \
             keepalived would ignore them: write `{} {{ {} }}`",
            statement.keyword,
            statement.args.join(" "),
            statement.keyword,
            statement.args.join(" ")
        )));
    }
    Ok(statement.children())
}

/// The name after a block's keyword (`vrrp_script NAME {`).
fn block_name(block: &Statement) -> Result<&str, ConfigError> {
    match (block.args.first(), &block.block) {
        (Some(name), Some(_)) => Ok(name),
        (None, _) => Err(block.at.error(format!(
            "`{}` needs a name (e.g. `{} chk_1 {{`)",
            block.keyword, block.keyword
        ))),
        (Some(name), None) => Err(block.at.error(format!(
            "`{} {name}` has no `{{ }}` block with its settings",
            block.keyword
        ))),
    }
}

/// Whether an inline virtual address (`ADDRESS[/LEN] ...`) is IPv4; `None`
/// when it is no address (the YAML rules then say so).
fn address_family_is_ipv4(inline: &str) -> Option<bool> {
    address_of(inline).map(|address| address.is_ipv4())
}

fn address_of(inline: &str) -> Option<IpAddr> {
    inline.split(['/', ' ']).next()?.parse().ok()
}

/// Whether two inline virtual addresses name the same address.
fn same_address(a: &str, b: &str) -> bool {
    match (address_of(a), address_of(b)) {
        (Some(a), Some(b)) => a == b,
        _ => false,
    }
}

/// The statement's first word, or keepalived's fatal "missing a parameter".
fn value(statement: &Statement) -> Result<&str, ConfigError> {
    statement.args.first().map(String::as_str).ok_or_else(|| {
        statement.at.error(format!(
            "`{}` is missing its value (keepalived refuses this file too)",
            statement.keyword
        ))
    })
}

/// The statement's value as a number.
fn number(statement: &Statement) -> Result<Number, ConfigError> {
    let text = value(statement)?;
    if let Ok(whole) = text.parse::<i64>() {
        return Ok(Number::Whole(whole));
    }
    match text.parse::<f64>() {
        Ok(fraction) if fraction.is_finite() && !text.contains(['e', 'E', 'n', 'N', 'i', 'I']) => {
            Ok(Number::Fraction(fraction))
        }
        _ => Err(statement.at.error(format!(
            "`{}` wants a number, not `{text}`",
            statement.keyword
        ))),
    }
}

/// A notify command as the argv keepalived runs: one (quoted) word is split
/// like a shell splits it; several words are the argv as written.
fn command(statement: &Statement) -> Result<Vec<String>, ConfigError> {
    let argv = match statement.args.as_slice() {
        [] => {
            return Err(statement.at.error(format!(
                "`{}` is missing its command (keepalived refuses this file too)",
                statement.keyword
            )));
        }
        [line] => shell_words::split(line).map_err(|error| {
            statement.at.error(format!(
                "cannot split `{line}` into words: {error}; close the quote"
            ))
        })?,
        words => words.to_vec(),
    };
    if argv.is_empty() {
        return Err(statement.at.error(format!(
            "`{}` has an empty command; give the program to run",
            statement.keyword
        )));
    }
    Ok(argv)
}

/// The longest prefix of `text` of at most `limit` bytes that ends on a
/// character boundary.
fn truncate_bytes(text: &str, limit: usize) -> &str {
    let mut end = text.len().min(limit);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}
