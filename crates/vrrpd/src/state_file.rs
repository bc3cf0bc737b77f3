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
    /// Packets that reached no instance (unknown VRID, broken IP header).
    pub unmatched_drops: BTreeMap<&'static str, u64>,
}

#[derive(Serialize)]
pub struct InstanceState {
    pub name: String,
    pub state: &'static str,
    /// The configured priority.
    pub priority: u8,
    /// The priority in force.
    pub effective_priority: u8,
    pub master: Option<IpAddr>,
    /// The virtual addresses this node holds now.
    pub vips: Vec<String>,
    pub counters: Counters,
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
