//! A resource file exactly as written: serde structs that only check the YAML
//! shape (known keys in drbd.conf's spelling, scalar types). `super`
//! validates them into the public types so that every rule violation can name
//! its field.
//!
//! Words and sizes are read as text (a YAML number arrives as its digits), so
//! that `super` can say which values a field accepts.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde::de::IgnoredAny;

use crate::hook::RawHook;
use crate::yaml::Number;

/// A whole resource file. Everything is optional here so that a missing
/// value is reported with its field path rather than by serde.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(super) struct RawResource {
    pub resource: Option<String>,
    pub protocol: Option<String>,
    pub net: Option<RawNet>,
    pub disk: Option<RawDisk>,
    pub handlers: Option<RawHandlers>,
    pub nodes: Option<BTreeMap<String, Option<RawNode>>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(super) struct RawNet {
    pub shared_secret: Option<String>,
    pub cram_hmac_alg: Option<String>,
    pub ping_int: Option<Number>,
    pub ping_timeout: Option<Number>,
    pub timeout: Option<Number>,
    pub connect_int: Option<Number>,
    pub ko_count: Option<Number>,
    pub verify_alg: Option<String>,
    pub data_integrity_alg: Option<String>,
    pub fencing: Option<String>,
    pub after_sb_0pri: Option<String>,
    pub after_sb_1pri: Option<String>,
    pub after_sb_2pri: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(super) struct RawDisk {
    pub on_io_error: Option<String>,
    pub al_extents: Option<Number>,
    pub resync_rate: Option<String>,
    pub c_max_rate: Option<String>,
    pub disk_flushes: Option<bool>,
    pub md_flushes: Option<bool>,
    pub disk_timeout: Option<Number>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(super) struct RawHandlers {
    pub initial_split_brain: Option<RawHook>,
    pub split_brain: Option<RawHook>,
    pub pri_lost_after_sb: Option<RawHook>,
    pub fence_peer: Option<RawHook>,
    pub unfence_peer: Option<RawHook>,
    pub local_io_error: Option<RawHook>,
    pub before_resync_target: Option<RawHook>,
    pub after_resync_target: Option<RawHook>,
    pub before_resync_source: Option<RawHook>,
    pub out_of_sync: Option<RawHook>,
    pub disconnected: Option<RawHook>,
}

/// One entry under `nodes:`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(super) struct RawNode {
    pub address: Option<String>,
    pub disk: Option<String>,
    pub meta_disk: Option<String>,
}

/// A file's top-level mapping with its values skipped unread: its keys tell
/// a resource file from vrrpd's config without judging the rest. `None` for
/// a file that holds no document.
pub(super) type RawTopLevel = Option<BTreeMap<String, IgnoredAny>>;
