//! vrrpd's state file, `<run-dir>/vrrp/state.json`: what every instance is
//! doing, for operators and scripts. Replaced atomically (write to a
//! temporary file, then rename), so a reader never sees half a file.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::Serialize;
use vrrp::DropReason;

#[derive(Serialize)]
pub struct StateFile {
    pub node: String,
    pub pid: u32,
    pub instances: Vec<InstanceState>,
    pub sync_groups: Vec<GroupState>,
    /// Packets that reached no instance (unknown VRID, broken IP header).
    pub unmatched_drops: BTreeMap<&'static str, u64>,
}

#[derive(Serialize)]
pub struct InstanceState {
    pub name: String,
    pub state: &'static str,
    /// The configured priority.
    pub priority: u8,
    /// The priority in force: the configured one moved by the trackers'
    /// weights (1..=254), or 255 for an owner.
    pub effective_priority: u8,
    pub master: Option<IpAddr>,
    /// The virtual addresses this node holds now.
    pub vips: Vec<String>,
    /// Every tracked script, interface and file, and a failed
    /// `notify_master` while it holds the instance in FAULT.
    pub trackers: Vec<TrackerState>,
    pub counters: Counters,
}

/// One tracked thing of an instance, as it stands.
#[derive(Serialize)]
pub struct TrackerState {
    /// `script`, `interface`, `file` or `notify_master`.
    pub kind: &'static str,
    pub name: String,
    pub weight: i32,
    pub reverse: bool,
    /// `ok`, `failed` or `unknown` (no result yet).
    pub health: &'static str,
    /// A track file's value.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<i64>,
    /// What it adds to the priority now.
    pub priority_change: i32,
    /// Whether it puts the instance into FAULT now.
    pub fault: bool,
}

/// A sync group and the state its members share.
#[derive(Serialize)]
pub struct GroupState {
    pub name: String,
    pub state: &'static str,
    pub members: Vec<String>,
}

#[derive(Serialize)]
pub struct Counters {
    pub adverts_sent: u64,
    pub adverts_received: u64,
    pub transitions: u64,
    pub drops: BTreeMap<&'static str, u64>,
}

/// Drop counters under their stable names.
pub fn named_drops(drops: &BTreeMap<DropReason, u64>) -> BTreeMap<&'static str, u64> {
    drops
        .iter()
        .map(|(reason, count)| (reason.name(), *count))
        .collect()
}

/// The path of the state file under `run_dir`.
pub fn path(run_dir: &Path) -> PathBuf {
    run_dir.join("vrrp").join("state.json")
}

impl StateFile {
    /// Writes the file atomically to `target`.
    pub fn write(&self, target: &Path) -> Result<()> {
        let dir = target
            .parent()
            .context("state file path has no directory")?;
        fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let temporary = target.with_extension("json.tmp");
        let mut text = serde_json::to_vec_pretty(self).context("cannot serialize the state")?;
        text.push(b'\n');
        let mut file = fs::File::create(&temporary)
            .with_context(|| format!("cannot write {}", temporary.display()))?;
        file.write_all(&text)
            .with_context(|| format!("cannot write {}", temporary.display()))?;
        fs::rename(&temporary, target)
            .with_context(|| format!("cannot replace {}", target.display()))
    }
}
