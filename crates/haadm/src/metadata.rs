//! `haadm create-md` and `dump-md`: the resource's metadata, read and
//! written on this node's disk directly (replicad need not run), as
//! drbdadm does through drbdmeta.

use hapair_config::ResourceConfig;
use hapair_config::resource::MetaDisk;
use replica::store::{self, Metadata, VolumePaths};

use crate::Failure;

/// Where this node keeps the resource's data and metadata.
pub fn volume_paths(resource: &ResourceConfig, node: &str) -> Result<VolumePaths, Failure> {
    let local = resource.local(node)?;
    Ok(VolumePaths {
        resource: resource.name.clone(),
        backing: local.disk.clone(),
        meta_disk: match &local.meta_disk {
            MetaDisk::Internal => store::MetaDisk::Internal,
            MetaDisk::External(path) => store::MetaDisk::External(path.clone()),
        },
    })
}

pub fn create(resource: &ResourceConfig, node: &str, force: bool) -> Result<(), Failure> {
    let paths = volume_paths(resource, node)?;
    if !force && let Ok(existing) = Metadata::open(&paths) {
        return Err(Failure::io(format!(
            "{}: metadata already exists (written by node {}); use --force to overwrite it, \
             which forgets its generation ids and bitmap",
            existing.name(),
            existing.superblock().node_name.as_str()
        )));
    }
    let metadata = Metadata::create(&paths, node, resource.disk.al_extents)
        .map_err(|e| Failure::io(e.to_string()))?;
    println!(
        "{}: new metadata written to {}: {} usable, {} activity-log extents",
        resource.name,
        metadata.name(),
        replica::size::format_size(metadata.usable_size()),
        resource.disk.al_extents
    );
    Ok(())
}

pub fn dump(resource: &ResourceConfig, node: &str) -> Result<String, Failure> {
    let paths = volume_paths(resource, node)?;
    let metadata = Metadata::open(&paths).map_err(|e| Failure::io(e.to_string()))?;
    let mut text = metadata.dump();
    if !text.ends_with('\n') {
        text.push('\n');
    }
    Ok(text)
}
