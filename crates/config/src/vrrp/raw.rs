//! vrrpd's config file exactly as written: serde structs that only check the
//! YAML shape (known keys, scalar types). `super` validates them into the
//! public types so that every rule violation can name its field.

use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize;
use serde::de::value::MapAccessDeserializer;
use serde::de::{self, Deserializer, MapAccess, Visitor};

use crate::hook::{RawHook, RawHookSettings};
use crate::yaml::Number;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawFile {
    #[serde(default)]
    pub instances: Vec<RawInstance>,
    pub hooks: Option<RawHookSettings>,
    #[serde(default)]
    pub vrrp_scripts: BTreeMap<String, RawScript>,
    #[serde(default)]
    pub track_files: BTreeMap<String, RawTrackFile>,
    #[serde(default)]
    pub sync_groups: BTreeMap<String, RawSyncGroup>,
}

/// A `vrrp_scripts:` entry.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawScript {
    pub script: Option<RawHook>,
    pub interval: Option<Number>,
    pub timeout: Option<Number>,
    pub rise: Option<Number>,
    pub fall: Option<Number>,
    pub weight: Option<Number>,
    pub reverse: Option<bool>,
    pub init_fail: Option<bool>,
}

/// A `track_files:` entry.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTrackFile {
    pub file: Option<String>,
    pub weight: Option<Number>,
    pub reverse: Option<bool>,
}

/// A `sync_groups:` entry.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSyncGroup {
    pub group: Option<Vec<String>>,
    pub sync_group_tracking_weight: Option<bool>,
    pub notify_timeout: Option<Number>,
    pub notify_master: Option<RawHook>,
    pub notify_backup: Option<RawHook>,
    pub notify_fault: Option<RawHook>,
    pub notify_stop: Option<RawHook>,
    pub notify: Option<RawHook>,
}

/// A `track_script` / `track_interface` / `track_file` entry: keepalived's
/// inline `"NAME weight -20 reverse"`, or a map with the same parts.
#[derive(Debug)]
pub(super) enum RawTracked {
    Inline(String),
    Map(RawTrackedMap),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTrackedMap {
    pub name: String,
    pub weight: Option<Number>,
    pub reverse: Option<bool>,
}

impl<'de> Deserialize<'de> for RawTracked {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<RawTracked, D::Error> {
        struct TrackedVisitor;
        impl<'de> Visitor<'de> for TrackedVisitor {
            type Value = RawTracked;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(
                    "a tracked name: \"chk_nfs\", \"chk_nfs weight -20 reverse\" \
                     or a map {name: chk_nfs, weight: -20, reverse: true}",
                )
            }
            fn visit_str<E: de::Error>(self, text: &str) -> Result<RawTracked, E> {
                Ok(RawTracked::Inline(text.to_owned()))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<RawTracked, A::Error> {
                RawTrackedMap::deserialize(MapAccessDeserializer::new(map)).map(RawTracked::Map)
            }
        }
        deserializer.deserialize_any(TrackedVisitor)
    }
}

/// One `instances:` entry. Everything is optional here so that a missing
/// value is reported with its field path rather than by serde.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawInstance {
    pub name: Option<String>,
    pub interface: Option<String>,
    pub virtual_router_id: Option<Number>,
    pub priority: Option<Number>,
    pub version: Option<Number>,
    pub advert_int: Option<Number>,
    pub nopreempt: Option<bool>,
    pub preempt_delay: Option<Number>,
    pub virtual_ipaddress: Option<Vec<RawVirtualAddress>>,
    pub unicast_src_ip: Option<String>,
    pub unicast_peer: Option<Vec<String>>,
    pub authentication: Option<RawAuthentication>,
    pub garp_master_delay: Option<Number>,
    pub garp_master_repeat: Option<Number>,
    pub garp_master_refresh: Option<Number>,
    pub v3_checksum_as_v2: Option<bool>,
    pub unicast_skip_ttl_check: Option<bool>,
    pub notify_timeout: Option<Number>,
    pub notify_master: Option<RawHook>,
    pub notify_backup: Option<RawHook>,
    pub notify_fault: Option<RawHook>,
    pub notify_stop: Option<RawHook>,
    pub notify: Option<RawHook>,
    pub track_script: Option<Vec<RawTracked>>,
    pub track_interface: Option<Vec<RawTracked>>,
    pub track_file: Option<Vec<RawTracked>>,
    pub master_hook_failure: Option<String>,
    pub master_hook_retry: Option<Number>,
    pub nodes: Option<BTreeMap<String, RawNodeOverride>>,
}

/// The settings one node may set differently from its peer.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawNodeOverride {
    pub interface: Option<String>,
    pub priority: Option<Number>,
    pub unicast_src_ip: Option<String>,
    pub unicast_peer: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAuthentication {
    pub auth_type: Option<String>,
    pub auth_pass: Option<String>,
}

/// A `virtual_ipaddress` entry: keepalived's inline form
/// `"10.0.0.1/24 dev eth1 label eth1:vip"`, or a map with the same parts.
#[derive(Debug)]
pub(super) enum RawVirtualAddress {
    Inline(String),
    Map(RawVirtualAddressMap),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawVirtualAddressMap {
    pub address: String,
    pub dev: Option<String>,
    pub label: Option<String>,
}

impl<'de> Deserialize<'de> for RawVirtualAddress {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<RawVirtualAddress, D::Error> {
        struct AddressVisitor;
        impl<'de> Visitor<'de> for AddressVisitor {
            type Value = RawVirtualAddress;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(
                    "a virtual address: \"10.0.0.1/24\", \"10.0.0.1/24 dev eth1 label eth1:vip\" \
                     or a map {address: 10.0.0.1/24, dev: eth1, label: \"eth1:vip\"}",
                )
            }
            fn visit_str<E: de::Error>(self, text: &str) -> Result<RawVirtualAddress, E> {
                Ok(RawVirtualAddress::Inline(text.to_owned()))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<RawVirtualAddress, A::Error> {
                RawVirtualAddressMap::deserialize(MapAccessDeserializer::new(map))
                    .map(RawVirtualAddress::Map)
            }
        }
        deserializer.deserialize_any(AddressVisitor)
    }
}
