//! `haadm create-md` and `dump-md`: the resource's metadata, read and
//! written on this node's disk directly (replicad need not run).

use hapair_config::ResourceConfig;

use crate::Failure;

pub fn create(resource: &ResourceConfig, node: &str, force: bool) -> Result<(), Failure> {
    let _ = (resource, node, force);
    Err(Failure::io("create-md: not yet"))
}

pub fn dump(resource: &ResourceConfig, node: &str) -> Result<String, Failure> {
    let _ = (resource, node);
    Err(Failure::io("dump-md: not yet"))
}
