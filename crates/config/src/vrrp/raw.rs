//! vrrpd's config file exactly as written: serde structs that only check the
//! YAML shape (known keys, scalar types). `super` validates them into the
//! public types so that every rule violation can name its field.

use std::collections::BTreeMap;
use std::fmt;
use std::marker::PhantomData;

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

/// An entry written either inline, keepalived's way, as one string, or as
/// a map with the same parts.
#[derive(Debug)]
pub(super) enum InlineOrMap<M> {
    Inline(String),
    Map(M),
}

/// What an [`InlineOrMap`] entry looks like, for serde's error message.
pub(super) trait EntryForms {
    const EXPECTING: &'static str;
}

impl<'de, M: Deserialize<'de> + EntryForms> Deserialize<'de> for InlineOrMap<M> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<InlineOrMap<M>, D::Error> {
        struct EntryVisitor<M>(PhantomData<M>);
        impl<'de, M: Deserialize<'de> + EntryForms> Visitor<'de> for EntryVisitor<M> {
            type Value = InlineOrMap<M>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(M::EXPECTING)
            }
            fn visit_str<E: de::Error>(self, text: &str) -> Result<InlineOrMap<M>, E> {
                Ok(InlineOrMap::Inline(text.to_owned()))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<InlineOrMap<M>, A::Error> {
                M::deserialize(MapAccessDeserializer::new(map)).map(InlineOrMap::Map)
            }
        }
        deserializer.deserialize_any(EntryVisitor(PhantomData))
    }
}

/// A `track_script` / `track_interface` / `track_file` entry: keepalived's
/// inline `"NAME weight -20 reverse"`, or a map with the same parts.
pub(super) type RawTracked = InlineOrMap<RawTrackedMap>;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTrackedMap {
    pub name: String,
    pub weight: Option<Number>,
    pub reverse: Option<bool>,
}

impl EntryForms for RawTrackedMap {
    const EXPECTING: &'static str = "a tracked name: \"chk_nfs\", \"chk_nfs weight -20 reverse\" \
                                     or a map {name: chk_nfs, weight: -20, reverse: true}";
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
pub(super) type RawVirtualAddress = InlineOrMap<RawVirtualAddressMap>;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawVirtualAddressMap {
    pub address: String,
    pub dev: Option<String>,
    pub label: Option<String>,
}

impl EntryForms for RawVirtualAddressMap {
    const EXPECTING: &'static str = "a virtual address: \"10.0.0.1/24\", \"10.0.0.1/24 dev eth1 label eth1:vip\" \
                                     or a map {address: 10.0.0.1/24, dev: eth1, label: \"eth1:vip\"}";
}
