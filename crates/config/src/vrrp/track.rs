//! Health tracking and sync groups in vrrpd's config: the top-level
//! `vrrp_scripts:`, `track_files:` and `sync_groups:`, and each instance's
//! `track_script`, `track_interface`, `track_file`, `master_hook_failure`
//! and `master_hook_retry`, validated into plain types.
//!
//! ```yaml
//! vrrp_scripts:
//!   chk_nfs: {script: [/usr/local/bin/check-nfs], interval: 2, fall: 2, rise: 2, weight: -60}
//! track_files:
//!   health: {file: /run/hapair/health, weight: 1}
//! sync_groups:
//!   G_STORAGE: {group: [VI_CLIENTS, VI_REPLICATION], notify_fault: /usr/local/bin/page-me}
//! instances:
//!   - name: VI_CLIENTS
//!     track_script: [chk_nfs, "chk_disk weight -20"]
//!     track_interface: [eth1, {name: eth2, weight: -10}]
//!     track_file: [health]
//!     master_hook_failure: fault
//!     master_hook_retry: 30
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Duration;

use crate::error::ConfigError;
use crate::hook::{HookCommand, RawHook};
use crate::yaml::Number;

use super::raw::{RawInstance, RawScript, RawSyncGroup, RawTrackFile, RawTracked};
use super::{Place, VrrpInstance, check_interface_name};

/// The largest tracking weight, either sign (keepalived's).
const MAX_WEIGHT: i32 = 253;
/// How long a failed `notify_master` keeps the instance in FAULT by default.
const DEFAULT_MASTER_HOOK_RETRY: Duration = Duration::from_secs(10);
/// How long a sync group's notify hooks may run by default (as instances').
const DEFAULT_GROUP_NOTIFY_TIMEOUT: Duration = Duration::from_secs(30);

/// A `vrrp_scripts:` entry: a health check run periodically while at least
/// one instance tracks it. Exit code 0 means OK.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VrrpScript {
    pub name: String,
    /// Exec'd directly (a `{shell: ...}` form runs through /bin/sh).
    pub script: HookCommand,
    /// Time between runs (default 1 s); a run still going skips the next.
    pub interval: Duration,
    /// A run still going after this long is killed and counts as a
    /// failure (default: the interval).
    pub timeout: Duration,
    /// Successes in a row that turn a failed script OK (default 1).
    pub rise: u32,
    /// Failures in a row that turn an OK script failed (default 1).
    pub fall: u32,
    /// −253..=253, default 0 (FAULT while failed); an instance's
    /// `track_script` entry may override it.
    pub weight: i32,
    /// Turns the direction of the weight around (default false).
    pub reverse: bool,
    /// Start as failed instead of unknown (default false).
    pub init_fail: bool,
}

/// A `track_files:` entry (keepalived's `vrrp_track_file`): a file holding
/// a whole number, written by a cron job or a monitoring agent; priority
/// changes by value × weight.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackFile {
    pub name: String,
    /// Absolute path. A missing file counts as 0.
    pub file: PathBuf,
    /// −253..=253, default 1; 0 means FAULT for any non-zero value.
    pub weight: i32,
    /// Negates the weight (default false).
    pub reverse: bool,
}

/// A `sync_groups:` entry (keepalived's `vrrp_sync_group`): instances that
/// change state together, with hooks for the group's own state changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncGroup {
    pub name: String,
    /// Instance names, at least two; an instance is in one group at most.
    pub group: Vec<String>,
    /// Members may track with weights (keepalived ignores weights of sync
    /// group members unless this is set; vrrpd refuses them instead).
    pub sync_group_tracking_weight: bool,
    /// How long each group hook may run (default 30 s).
    pub notify_timeout: Duration,
    pub notify_master: Option<HookCommand>,
    pub notify_backup: Option<HookCommand>,
    pub notify_fault: Option<HookCommand>,
    /// Run when vrrpd stops, after the members' addresses are released.
    pub notify_stop: Option<HookCommand>,
    /// Run on every group state change with `GROUP <name> <STATE> 0`.
    pub notify: Option<HookCommand>,
}

/// One tracked script, interface or file of an instance, with the weight in
/// force there (the instance's override, or the script's / file's own).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tracked {
    /// A `vrrp_scripts` name, an interface name, or a `track_files` name.
    pub name: String,
    /// −253..=253; 0 means FAULT while failed (link down, non-zero value).
    pub weight: i32,
    pub reverse: bool,
}

/// What a failing or timed-out `notify_master` does to its instance.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum MasterHookFailure {
    /// Logged only; the instance stays Master (keepalived's behaviour).
    #[default]
    Ignore,
    /// FAULT: addresses released, priority 0 advertised so the peer takes
    /// over, and after `master_hook_retry` back to Backup to try again.
    Fault,
}

/// The tracking settings of one instance.
pub(super) struct InstanceTracking {
    pub track_script: Vec<Tracked>,
    pub track_interface: Vec<Tracked>,
    pub track_file: Vec<Tracked>,
    pub master_hook_failure: MasterHookFailure,
    pub master_hook_retry: Duration,
}

/// The file-level tracking definitions instances refer to.
pub(super) struct Definitions {
    pub vrrp_scripts: Vec<VrrpScript>,
    pub track_files: Vec<TrackFile>,
}

impl Definitions {
    pub(super) fn build(
        origin: &str,
        scripts: &BTreeMap<String, RawScript>,
        files: &BTreeMap<String, RawTrackFile>,
    ) -> Result<Definitions, ConfigError> {
        let vrrp_scripts = scripts
            .iter()
            .map(|(name, raw)| script(origin, name, raw))
            .collect::<Result<_, _>>()?;
        let track_files = files
            .iter()
            .map(|(name, raw)| track_file(origin, name, raw))
            .collect::<Result<_, _>>()?;
        Ok(Definitions {
            vrrp_scripts,
            track_files,
        })
    }
}

fn invalid(origin: &str, field: String, message: impl AsRef<str>) -> ConfigError {
    ConfigError::invalid(origin, &field, message.as_ref())
}

/// Attaches `field` to the message of a failed check.
fn checked<T>(origin: &str, field: String, result: Result<T, String>) -> Result<T, ConfigError> {
    result.map_err(|message| invalid(origin, field, message))
}

/// Names of scripts, files and groups: one word, as instance names.
fn check_name(origin: &str, section: &str, name: &str) -> Result<(), ConfigError> {
    if name.is_empty() || name.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(invalid(
            origin,
            format!("{section}.{name}"),
            format!("`{name}` is not a name: use one word without spaces"),
        ));
    }
    Ok(())
}

fn weight(value: Number) -> Result<i32, String> {
    value
        .whole_in(-MAX_WEIGHT..=MAX_WEIGHT)
        .map_err(|error| format!("{error} (weight 0 means FAULT instead of a priority change)"))
}

fn script(origin: &str, name: &str, raw: &RawScript) -> Result<VrrpScript, ConfigError> {
    check_name(origin, "vrrp_scripts", name)?;
    let at = |field: &str| format!("vrrp_scripts.{name}.{field}");
    let script = match &raw.script {
        None => {
            return Err(invalid(
                origin,
                at("script"),
                "missing; give the command to run, e.g. [/usr/local/bin/check-nfs]",
            ));
        }
        Some(hook) => checked(origin, at("script"), hook.to_command())?,
    };
    let interval = match raw.interval {
        None => Duration::from_secs(1),
        Some(value) => checked(origin, at("interval"), value.seconds_in(0.01..=86400.0))?,
    };
    let timeout = match raw.timeout {
        None => interval,
        Some(value) => checked(origin, at("timeout"), value.seconds_in(0.01..=3600.0))?,
    };
    let count = |field: &str, value: Option<Number>| match value {
        None => Ok(1),
        Some(value) => checked(origin, at(field), value.whole_in(1u32..=1000)),
    };
    Ok(VrrpScript {
        name: name.to_owned(),
        script,
        interval,
        timeout,
        rise: count("rise", raw.rise)?,
        fall: count("fall", raw.fall)?,
        weight: raw
            .weight
            .map(|value| checked(origin, at("weight"), weight(value)))
            .transpose()?
            .unwrap_or(0),
        reverse: raw.reverse.unwrap_or(false),
        init_fail: raw.init_fail.unwrap_or(false),
    })
}

fn track_file(origin: &str, name: &str, raw: &RawTrackFile) -> Result<TrackFile, ConfigError> {
    check_name(origin, "track_files", name)?;
    let at = |field: &str| format!("track_files.{name}.{field}");
    let file = match &raw.file {
        None => {
            return Err(invalid(
                origin,
                at("file"),
                "missing; give the path of the file holding the number, e.g. /run/hapair/health",
            ));
        }
        Some(path) if !path.starts_with('/') || path.contains('\0') => {
            return Err(invalid(
                origin,
                at("file"),
                format!(
                    "`{path}` is not an absolute path; write it from the root, e.g. /run/hapair/health"
                ),
            ));
        }
        Some(path) => PathBuf::from(path),
    };
    let weight = match raw.weight {
        None => 1,
        Some(value) => weight(value).map_err(|message| invalid(origin, at("weight"), message))?,
    };
    Ok(TrackFile {
        name: name.to_owned(),
        file,
        weight,
        reverse: raw.reverse.unwrap_or(false),
    })
}

/// One `track_*` entry: keepalived's inline `NAME [weight W] [reverse]`, or
/// a map `{name: NAME, weight: W, reverse: true}`.
fn tracked_entry(raw: &RawTracked) -> Result<(String, Option<i32>, Option<bool>), String> {
    match raw {
        RawTracked::Map(map) => {
            let weight = map.weight.map(weight).transpose()?;
            Ok((map.name.clone(), weight, map.reverse))
        }
        RawTracked::Inline(text) => {
            let mut words = text.split_whitespace();
            let name = words.next().ok_or("the entry is empty; give a name")?;
            let (mut weight_value, mut reverse) = (None, None);
            while let Some(word) = words.next() {
                match word {
                    "weight" => {
                        let value = words
                            .next()
                            .ok_or_else(|| format!("`weight` needs a value in `{text}`"))?;
                        let number = value.parse::<i64>().map_err(|_| {
                            format!("weight `{value}` is not a whole number in `{text}`")
                        })?;
                        weight_value = Some(weight(Number::Integer(number))?);
                    }
                    "reverse" => reverse = Some(true),
                    other => {
                        return Err(format!(
                            "unknown option `{other}` in `{text}`; after the name only \
                             `weight N` and `reverse` are supported"
                        ));
                    }
                }
            }
            Ok((name.to_owned(), weight_value, reverse))
        }
    }
}

/// What a `track_*` list refers to.
enum Kind<'a> {
    Scripts(&'a [VrrpScript]),
    Interfaces,
    Files(&'a [TrackFile]),
}

fn tracked_list(
    place: &Place,
    field: &str,
    entries: Option<&[RawTracked]>,
    kind: Kind,
) -> Result<Vec<Tracked>, ConfigError> {
    let mut tracked: Vec<Tracked> = Vec::new();
    for (index, raw) in entries.unwrap_or_default().iter().enumerate() {
        let at = format!("{field}[{index}]");
        let (name, weight, reverse) = place.check(&at, tracked_entry(raw))?;
        let (default_weight, default_reverse) = match &kind {
            Kind::Interfaces => {
                place.check(&at, check_interface_name(&name))?;
                (0, false)
            }
            Kind::Scripts(scripts) => {
                let script = scripts.iter().find(|s| s.name == name).ok_or_else(|| {
                    place.error(
                        &at,
                        undefined("vrrp_scripts", &name, scripts.iter().map(|s| &s.name)),
                    )
                })?;
                (script.weight, script.reverse)
            }
            Kind::Files(files) => {
                let file = files.iter().find(|f| f.name == name).ok_or_else(|| {
                    place.error(
                        &at,
                        undefined("track_files", &name, files.iter().map(|f| &f.name)),
                    )
                })?;
                (file.weight, file.reverse)
            }
        };
        if tracked.iter().any(|other| other.name == name) {
            return Err(place.error(&at, format!("`{name}` is tracked twice; list it once")));
        }
        tracked.push(Tracked {
            name,
            weight: weight.unwrap_or(default_weight),
            reverse: reverse.unwrap_or(default_reverse),
        });
    }
    Ok(tracked)
}

fn undefined<'a>(section: &str, name: &str, defined: impl Iterator<Item = &'a String>) -> String {
    let defined: Vec<&str> = defined.map(String::as_str).collect();
    if defined.is_empty() {
        format!("`{name}` is not defined: add it under the top-level `{section}:`")
    } else {
        format!(
            "`{name}` is not defined under `{section}:` (defined: {}); fix the name or define it",
            defined.join(", ")
        )
    }
}

/// Validates an instance's tracking settings against the definitions.
pub(super) fn instance_tracking(
    raw: &RawInstance,
    place: &Place,
    definitions: &Definitions,
    has_notify_master: bool,
) -> Result<InstanceTracking, ConfigError> {
    let track_script = tracked_list(
        place,
        "track_script",
        raw.track_script.as_deref(),
        Kind::Scripts(&definitions.vrrp_scripts),
    )?;
    let track_interface = tracked_list(
        place,
        "track_interface",
        raw.track_interface.as_deref(),
        Kind::Interfaces,
    )?;
    let track_file = tracked_list(
        place,
        "track_file",
        raw.track_file.as_deref(),
        Kind::Files(&definitions.track_files),
    )?;
    let master_hook_failure = match raw.master_hook_failure.as_deref() {
        None | Some("ignore") => MasterHookFailure::Ignore,
        Some("fault") => MasterHookFailure::Fault,
        Some(other) => {
            return Err(place.error(
                "master_hook_failure",
                format!("`{other}` is not a choice; use `fault` or `ignore` (the default)"),
            ));
        }
    };
    if master_hook_failure == MasterHookFailure::Fault && !has_notify_master {
        return Err(place.error(
            "master_hook_failure",
            "`fault` needs a notify_master hook whose failure it acts on; add notify_master or remove this",
        ));
    }
    let master_hook_retry = match raw.master_hook_retry {
        None => DEFAULT_MASTER_HOOK_RETRY,
        Some(_) if master_hook_failure != MasterHookFailure::Fault => {
            return Err(place.error(
                "master_hook_retry",
                "has no effect without master_hook_failure: fault; remove it or set that",
            ));
        }
        Some(value) => place.check("master_hook_retry", value.seconds_in(0.1..=86400.0))?,
    };
    Ok(InstanceTracking {
        track_script,
        track_interface,
        track_file,
        master_hook_failure,
        master_hook_retry,
    })
}

/// Validates `sync_groups:` against the instances.
pub(super) fn sync_groups(
    origin: &str,
    raw: &BTreeMap<String, RawSyncGroup>,
    instances: &[VrrpInstance],
) -> Result<Vec<SyncGroup>, ConfigError> {
    let mut member_of: BTreeMap<&str, &str> = BTreeMap::new();
    let mut groups = Vec::with_capacity(raw.len());
    for (name, raw) in raw {
        check_name(origin, "sync_groups", name)?;
        let at = |field: &str| format!("sync_groups.{name}.{field}");
        let members = raw.group.as_deref().unwrap_or_default();
        if members.len() < 2 {
            return Err(invalid(
                origin,
                at("group"),
                "a sync group needs at least two instances (list them under `group:`)",
            ));
        }
        let mut seen = BTreeSet::new();
        for (index, member) in members.iter().enumerate() {
            let field = at(&format!("group[{index}]"));
            let Some(instance) = instances.iter().find(|i| &i.name == member) else {
                return Err(invalid(
                    origin,
                    field,
                    format!("`{member}` is not an instance of this file"),
                ));
            };
            if !seen.insert(member.as_str()) {
                return Err(invalid(
                    origin,
                    field,
                    format!("`{member}` is listed twice"),
                ));
            }
            if let Some(other) = member_of.insert(member, name) {
                return Err(invalid(
                    origin,
                    field,
                    format!(
                        "`{member}` is already in sync group `{other}`; an instance joins one group at most"
                    ),
                ));
            }
            let weighted = instance
                .track_script
                .iter()
                .chain(&instance.track_interface)
                .chain(&instance.track_file)
                .find(|tracked| tracked.weight != 0);
            if let Some(tracked) = weighted
                && !raw.sync_group_tracking_weight.unwrap_or(false)
            {
                return Err(invalid(
                    origin,
                    field,
                    format!(
                        "`{member}` tracks `{}` with weight {}: in a sync group a weighted \
                         tracker lets one member's priority drift from the others' (keepalived \
                         ignores such weights); use weight 0 (FAULT) or set \
                         sync_group_tracking_weight: true",
                        tracked.name, tracked.weight
                    ),
                ));
            }
        }
        let hook = |field: &str, raw: &Option<RawHook>| {
            raw.as_ref()
                .map(|hook| {
                    hook.to_command()
                        .map_err(|message| invalid(origin, at(field), message))
                })
                .transpose()
        };
        let notify_timeout = match raw.notify_timeout {
            None => DEFAULT_GROUP_NOTIFY_TIMEOUT,
            Some(value) => value
                .seconds_in(0.1..=3600.0)
                .map_err(|message| invalid(origin, at("notify_timeout"), message))?,
        };
        groups.push(SyncGroup {
            name: name.clone(),
            group: members.to_vec(),
            sync_group_tracking_weight: raw.sync_group_tracking_weight.unwrap_or(false),
            notify_timeout,
            notify_master: hook("notify_master", &raw.notify_master)?,
            notify_backup: hook("notify_backup", &raw.notify_backup)?,
            notify_fault: hook("notify_fault", &raw.notify_fault)?,
            notify_stop: hook("notify_stop", &raw.notify_stop)?,
            notify: hook("notify", &raw.notify)?,
        });
    }
    Ok(groups)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::vrrp::VrrpConfig;

    const INSTANCE: &str = "instances:\n  - name: VI_1\n    interface: eth0\n    \
                            virtual_router_id: 51\n    virtual_ipaddress: [10.0.0.100/24]\n";

    /// A file: `top` (top-level sections) then VI_1 with `extra` lines.
    fn parse(top: &str, extra: &str) -> Result<VrrpConfig, ConfigError> {
        VrrpConfig::parse(&format!("{top}{INSTANCE}{extra}"), "t.yaml", None)
    }

    fn error(top: &str, extra: &str) -> String {
        parse(top, extra).unwrap_err().to_string()
    }

    const SCRIPTS: &str = "vrrp_scripts:\n  chk: {script: /bin/check, weight: -30, fall: 2}\n  \
                           other: {script: [/bin/other], interval: 0.5}\n";

    #[test]
    fn scripts_take_keepalived_defaults_and_instances_may_override_weights() {
        let config = parse(
            SCRIPTS,
            "    track_script: [chk, \"other weight 10 reverse\", {name: x, weight: 0}]\n",
        );
        let message = config.unwrap_err().to_string();
        assert_eq!(
            message,
            "t.yaml: instances[0] (VI_1).track_script[2]: `x` is not defined under \
             `vrrp_scripts:` (defined: chk, other); fix the name or define it"
        );
        let config = parse(
            SCRIPTS,
            "    track_script: [chk, \"other weight 10 reverse\"]\n",
        )
        .unwrap();
        let other = &config.vrrp_scripts[1];
        assert_eq!(other.name, "other");
        assert_eq!(other.interval, Duration::from_millis(500));
        assert_eq!(
            other.timeout, other.interval,
            "timeout defaults to the interval"
        );
        assert_eq!((other.rise, other.fall, other.weight), (1, 1, 0));
        assert!(!other.reverse && !other.init_fail);
        assert_eq!(
            config.instances[0].track_script,
            [
                Tracked {
                    name: "chk".into(),
                    weight: -30,
                    reverse: false
                },
                Tracked {
                    name: "other".into(),
                    weight: 10,
                    reverse: true
                }
            ]
        );
    }

    #[test]
    fn bad_script_settings_name_their_field() {
        let cases = [
            (
                "vrrp_scripts:\n  chk: {interval: 1}\n",
                "t.yaml: vrrp_scripts.chk.script: missing; give the command to run",
            ),
            (
                "vrrp_scripts:\n  chk: {script: /x, weight: 254}\n",
                "t.yaml: vrrp_scripts.chk.weight: 254 is out of range -253..=253",
            ),
            (
                "vrrp_scripts:\n  chk: {script: /x, rise: 0}\n",
                "t.yaml: vrrp_scripts.chk.rise: 0 is out of range 1..=1000",
            ),
            (
                "vrrp_scripts:\n  chk: {script: /x, interval: 0}\n",
                "t.yaml: vrrp_scripts.chk.interval: 0 is out of range",
            ),
            (
                "track_files:\n  f: {file: relative/path}\n",
                "t.yaml: track_files.f.file: `relative/path` is not an absolute path",
            ),
        ];
        for (top, expected) in cases {
            let message = error(top, "");
            assert!(message.starts_with(expected), "{message}");
        }
    }

    #[test]
    fn track_entries_are_checked() {
        let message = error(SCRIPTS, "    track_script: [\"chk weight -300\"]\n");
        assert!(
            message.starts_with(
                "t.yaml: instances[0] (VI_1).track_script[0]: -300 is out of range -253..=253"
            ),
            "{message}"
        );
        let message = error(SCRIPTS, "    track_script: [\"chk wieght 3\"]\n");
        assert!(message.contains("unknown option `wieght`"), "{message}");
        let message = error("", "    track_interface: [eth1, eth1]\n");
        assert!(
            message.ends_with("track_interface[1]: `eth1` is tracked twice; list it once"),
            "{message}"
        );
        let message = error("", "    track_interface: [\"eth/1\"]\n");
        assert!(message.contains("track_interface[0]"), "{message}");
        let message = error("", "    track_file: [nothing]\n");
        assert!(
            message.ends_with(
                "track_file[0]: `nothing` is not defined: add it under the top-level `track_files:`"
            ),
            "{message}"
        );
    }

    #[test]
    fn interfaces_default_to_fault_and_files_to_their_own_weight() {
        let config = parse(
            "track_files:\n  health: {file: /run/health, weight: 5, reverse: true}\n",
            "    track_interface: [eth1, {name: eth2, weight: -10}]\n    track_file: [health]\n",
        )
        .unwrap();
        let instance = &config.instances[0];
        assert_eq!(
            instance
                .track_interface
                .iter()
                .map(|t| (t.name.as_str(), t.weight))
                .collect::<Vec<_>>(),
            [("eth1", 0), ("eth2", -10)]
        );
        assert_eq!(
            instance.track_file,
            [Tracked {
                name: "health".into(),
                weight: 5,
                reverse: true
            }]
        );
        assert_eq!(config.track_files[0].file, Path::new("/run/health"));
    }

    #[test]
    fn master_hook_failure_needs_notify_master_and_takes_a_retry() {
        let config = parse(
            "",
            "    notify_master: /bin/promote\n    master_hook_failure: fault\n    master_hook_retry: 2.5\n",
        )
        .unwrap();
        assert_eq!(
            config.instances[0].master_hook_failure,
            MasterHookFailure::Fault
        );
        assert_eq!(
            config.instances[0].master_hook_retry,
            Duration::from_millis(2500)
        );
        let defaults = parse("", "").unwrap();
        assert_eq!(
            defaults.instances[0].master_hook_failure,
            MasterHookFailure::Ignore
        );
        assert_eq!(
            defaults.instances[0].master_hook_retry,
            Duration::from_secs(10)
        );
        let message = error("", "    master_hook_failure: fault\n");
        assert!(message.contains("needs a notify_master hook"), "{message}");
        let message = error(
            "",
            "    notify_master: /x\n    master_hook_failure: panic\n",
        );
        assert!(message.contains("`panic` is not a choice"), "{message}");
        let message = error("", "    notify_master: /x\n    master_hook_retry: 5\n");
        assert!(
            message.contains("master_hook_retry: has no effect without master_hook_failure: fault"),
            "{message}"
        );
    }

    /// Two instances, VI_1 and VI_2, and `groups` as the sync_groups section.
    fn grouped(groups: &str, vi_2_extra: &str) -> Result<VrrpConfig, ConfigError> {
        let text = format!(
            "{groups}{INSTANCE}  - name: VI_2\n    interface: eth0\n    virtual_router_id: 52\n    \
             virtual_ipaddress: [10.0.0.101/24]\n{vi_2_extra}"
        );
        VrrpConfig::parse(&text, "t.yaml", None)
    }

    #[test]
    fn sync_groups_are_checked_against_the_instances() {
        let config = grouped(
            "sync_groups:\n  G: {group: [VI_1, VI_2], notify: /bin/log}\n",
            "",
        )
        .unwrap();
        let group = &config.sync_groups[0];
        assert_eq!(group.group, ["VI_1", "VI_2"]);
        assert_eq!(group.notify_timeout, Duration::from_secs(30));
        assert!(group.notify.is_some() && group.notify_master.is_none());

        let cases = [
            (
                "sync_groups:\n  G: {group: [VI_1]}\n",
                "",
                "sync_groups.G.group: a sync group needs at least two",
            ),
            (
                "sync_groups:\n  G: {group: [VI_1, VI_3]}\n",
                "",
                "sync_groups.G.group[1]: `VI_3` is not an instance",
            ),
            (
                "sync_groups:\n  G: {group: [VI_1, VI_1]}\n",
                "",
                "sync_groups.G.group[1]: `VI_1` is listed twice",
            ),
            (
                "sync_groups:\n  G: {group: [VI_1, VI_2]}\n  H: {group: [VI_2, VI_1]}\n",
                "",
                "sync_groups.H.group[0]: `VI_2` is already in sync group `G`",
            ),
            (
                "sync_groups:\n  G: {group: [VI_1, VI_2]}\n",
                "    track_interface: [\"eth1 weight -10\"]\n",
                "sync_groups.G.group[1]: `VI_2` tracks `eth1` with weight -10",
            ),
        ];
        for (groups, extra, expected) in cases {
            let message = grouped(groups, extra).unwrap_err().to_string();
            assert!(
                message.starts_with(&format!("t.yaml: {expected}")),
                "{message}"
            );
        }
        // Weights are allowed when the group says so.
        grouped(
            "sync_groups:\n  G: {group: [VI_1, VI_2], sync_group_tracking_weight: true}\n",
            "    track_interface: [\"eth1 weight -10\"]\n",
        )
        .unwrap();
    }

    fn example(name: &str) -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../configs")
            .join(name)
    }

    #[test]
    fn tracked_storage_example_tracks_script_file_and_link() {
        let config = VrrpConfig::load(&example("vrrp-tracked-storage.yaml"), Some("ha1")).unwrap();
        let instance = &config.instances[0];
        assert_eq!(instance.priority, 150);
        assert_eq!(instance.track_script[0].weight, -60);
        assert!(
            instance.priority as i32 + instance.track_script[0].weight
                < VrrpConfig::load(&example("vrrp-tracked-storage.yaml"), Some("ha2"))
                    .unwrap()
                    .instances[0]
                    .priority as i32,
            "a failed check must hand the address to ha2"
        );
        assert_eq!(instance.track_file[0].name, "pair_health");
        assert_eq!(instance.track_interface[0].weight, 0);
        assert_eq!(instance.master_hook_failure, MasterHookFailure::Fault);
        assert_eq!(instance.master_hook_retry, Duration::from_secs(60));
        let script = &config.vrrp_scripts[0];
        assert_eq!((script.rise, script.fall), (2, 3));
        assert_eq!(script.timeout, Duration::from_secs(5));
    }

    #[test]
    fn sync_group_example_groups_both_addresses() {
        let config = VrrpConfig::load(&example("vrrp-sync-group.yaml"), None).unwrap();
        assert_eq!(config.sync_groups.len(), 1);
        assert_eq!(
            config.sync_groups[0].group,
            ["VI_CLIENTS", "VI_REPLICATION"]
        );
        assert!(config.sync_groups[0].notify_fault.is_some());
    }
}
