//! Every resource of a host: the resource files in a config directory, as
//! replicad serves them and haadm finds them, checked against each other.

use std::collections::BTreeMap;
use std::collections::btree_map::Entry;
use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use super::raw::RawTopLevel;
use super::{MetaDisk, ResourceConfig};
use crate::error::{ConfigError, printable};
use crate::yaml::{parse_document, read_file};

/// The files a config directory holds, told apart by their top-level keys.
enum FileKind {
    /// Has `resource:`.
    Resource,
    /// vrrpd's config: has `instances:` and no `resource:`.
    Vrrp,
    /// Neither.
    Other,
}

fn kind_of(text: &str, origin: &str) -> Result<FileKind, ConfigError> {
    let keys = parse_document::<RawTopLevel>(text, origin)?.unwrap_or_default();
    Ok(if keys.contains_key("resource") {
        FileKind::Resource
    } else if keys.contains_key("instances") {
        FileKind::Vrrp
    } else {
        FileKind::Other
    })
}

/// Every resource at `path`, sorted by name.
///
/// `path` is a config directory such as `/etc/hapair`: each `*.yaml` in it
/// (not in subdirectories; names starting with `.`, such as editors' lock
/// files, are skipped) is a resource when its top-level mapping has a
/// `resource` key, or vrrpd's config, skipped, when it has `instances`.
/// Any other `*.yaml` is an error naming it. `path` may also be one resource
/// file. An empty directory gives no resources.
///
/// Across resources, names must be unique, no two may use the same address,
/// and no node may use one disk or meta-disk path for two resources.
pub fn load_resources(path: &Path) -> Result<Vec<ResourceConfig>, ConfigError> {
    let origin = path.display().to_string();
    let metadata = fs::metadata(path).map_err(|error| read_error(&origin, &error))?;
    let mut resources = Vec::new();
    if metadata.is_dir() {
        for file in yaml_files(path)? {
            let file_origin = file.display().to_string();
            let text = read_file(&file, &file_origin)?;
            match kind_of(&text, &file_origin)? {
                FileKind::Resource => resources.push(ResourceConfig::parse(&text, &file)?),
                FileKind::Vrrp => {}
                FileKind::Other => {
                    return Err(ConfigError::invalid(
                        &file_origin,
                        "resource",
                        &format!(
                            "missing; every *.yaml in {origin} is a resource (with `resource:`) \
                             or vrrpd's config (with `instances:`); fix this file or move it \
                             elsewhere"
                        ),
                    ));
                }
            }
        }
    } else {
        let text = read_file(path, &origin)?;
        match kind_of(&text, &origin)? {
            FileKind::Resource => resources.push(ResourceConfig::parse(&text, path)?),
            FileKind::Vrrp => {
                return Err(ConfigError::invalid(
                    &origin,
                    "resource",
                    "missing; this is vrrpd's config (it has `instances:`), not a resource file",
                ));
            }
            FileKind::Other => {
                return Err(ConfigError::invalid(
                    &origin,
                    "resource",
                    "missing; name the resource, e.g. `resource: r0`",
                ));
            }
        }
    }
    // Stable: of two resources with one name, the one from the earlier file
    // comes first, and the later file is blamed.
    resources.sort_by(|a, b| a.name.cmp(&b.name));
    check_resources_apart(&resources)?;
    Ok(resources)
}

/// The resource called `name` at `path` (a directory or a file, as for
/// [`load_resources`], whose checks it runs on every resource there).
pub fn load_resource(path: &Path, name: &str) -> Result<ResourceConfig, ConfigError> {
    let resources = load_resources(path)?;
    let known: Vec<&str> = resources
        .iter()
        .map(|resource| resource.name.as_str())
        .collect();
    let message = if known.is_empty() {
        format!("{name} is not defined: no resource file was found here")
    } else {
        format!("{name} is not defined (resources: {})", known.join(", "))
    };
    resources
        .into_iter()
        .find(|resource| resource.name == name)
        .ok_or_else(|| ConfigError::invalid(&path.display().to_string(), "resource", &message))
}

fn read_error(origin: &str, error: &std::io::Error) -> ConfigError {
    ConfigError::Read {
        origin: printable(origin),
        reason: error.to_string(),
    }
}

/// The `*.yaml` files directly in `dir`, without hidden ones, sorted.
fn yaml_files(dir: &Path) -> Result<Vec<PathBuf>, ConfigError> {
    let origin = dir.display().to_string();
    let mut files = Vec::new();
    for entry in fs::read_dir(dir).map_err(|error| read_error(&origin, &error))? {
        let entry = entry.map_err(|error| read_error(&origin, &error))?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.ends_with(".yaml") && !name.starts_with('.') {
            files.push(entry.path());
        }
    }
    files.sort();
    Ok(files)
}

/// Where a resource claims something that must be its own: the resource and
/// the field path of the claim.
struct Claim<'a> {
    resource: &'a ResourceConfig,
    field: String,
}

pub(crate) fn check_resources_apart(resources: &[ResourceConfig]) -> Result<(), ConfigError> {
    let mut names: BTreeMap<&str, &ResourceConfig> = BTreeMap::new();
    let mut addresses: BTreeMap<SocketAddr, Claim> = BTreeMap::new();
    let mut paths: BTreeMap<(&str, &Path), Claim> = BTreeMap::new();
    for resource in resources {
        let origin = resource.origin.display().to_string();
        if let Some(first) = names.insert(&resource.name, resource) {
            return Err(ConfigError::invalid(
                &origin,
                "resource",
                &format!(
                    "{} is also defined in {}; give each resource its own name",
                    resource.name,
                    first.origin.display()
                ),
            ));
        }
        for (node_name, node) in &resource.nodes {
            let field = |name: &str| format!("nodes.{node_name}.{name}");
            let address_claim = Claim {
                resource,
                field: field("address"),
            };
            claim(
                &mut addresses,
                node.address,
                address_claim,
                &node.address.to_string(),
                "give each resource its own port",
            )?;
            let mut node_paths = vec![(node.disk.as_path(), field("disk"))];
            if let MetaDisk::External(meta) = &node.meta_disk {
                node_paths.push((meta.as_path(), field("meta-disk")));
            }
            for (path, field) in node_paths {
                claim(
                    &mut paths,
                    (node_name.as_str(), path),
                    Claim { resource, field },
                    &path.display().to_string(),
                    "give each resource a disk and meta-disk of its own",
                )?;
            }
        }
    }
    Ok(())
}

/// Records `key` (shown as `value`) as claimed by `new`, or reports the
/// earlier claim of it.
fn claim<'a, K: Ord>(
    claims: &mut BTreeMap<K, Claim<'a>>,
    key: K,
    new: Claim<'a>,
    value: &str,
    advice: &str,
) -> Result<(), ConfigError> {
    match claims.entry(key) {
        Entry::Vacant(slot) => {
            slot.insert(new);
            Ok(())
        }
        Entry::Occupied(earlier) => {
            let earlier = earlier.get();
            Err(ConfigError::invalid(
                &new.resource.origin.display().to_string(),
                &new.field,
                &format!(
                    "{value} is also {} of resource {} in {}; {advice}",
                    earlier.field,
                    earlier.resource.name,
                    earlier.resource.origin.display()
                ),
            ))
        }
    }
}
