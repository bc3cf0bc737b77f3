//! From drbd.conf's resources to hapair's: each option hapair implements is
//! written into hapair's YAML schema under its own name, which
//! [`ResourceConfig::parse`] then validates exactly as it validates a YAML
//! file (so `haadm import drbd` prints what `-c` loads). The other options
//! become warnings, or refusals where ignoring them changes what is safe.
//! A rule broken in the YAML is reported at the drbd.conf line it came from.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;

use super::model::{Resource, Setting};
use super::options::{SectionKind, Support, support};
use super::parser::Location;
use super::{ImportedResource, Warning};
use crate::error::ConfigError;
use crate::resource::{DigestAlg, HmacAlg, ResourceConfig};

/// A resource in hapair's YAML schema, ready to print.
#[derive(Serialize)]
struct Document {
    resource: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    protocol: Option<String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    net: BTreeMap<String, Scalar>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    disk: BTreeMap<String, Scalar>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    handlers: BTreeMap<String, ShellHook>,
    nodes: BTreeMap<String, Node>,
}

#[derive(Serialize)]
#[serde(untagged)]
enum Scalar {
    Text(String),
    Number(u64),
    Flag(bool),
}

/// drbd.conf's handlers are shell command lines.
#[derive(Serialize)]
struct ShellHook {
    shell: String,
}

#[derive(Serialize)]
#[serde(rename_all = "kebab-case")]
struct Node {
    #[serde(skip_serializing_if = "Option::is_none")]
    address: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    disk: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    meta_disk: Option<String>,
}

/// The options whose value hapair's YAML takes as a number.
fn is_number(name: &str) -> bool {
    matches!(
        name,
        "ping-int"
            | "ping-timeout"
            | "timeout"
            | "connect-int"
            | "ko-count"
            | "al-extents"
            | "disk-timeout"
    )
}

/// `resource` as hapair's resource; `None` when it is beyond hapair and
/// `allow_unsupported` lets it be skipped. Warnings go to `warnings`.
pub(crate) fn convert(
    resource: &Resource,
    allow_unsupported: bool,
    warnings: &mut Vec<Warning>,
) -> Result<Option<ImportedResource>, ConfigError> {
    let mut warn = |location: &Location, message: String| {
        let warning = Warning {
            location: location.clone(),
            message,
        };
        if !warnings.contains(&warning) {
            warnings.push(warning);
        }
    };
    if let Some((location, why)) = resource.beyond_hapair.first() {
        let message = format!("resource {}: {why}", resource.name);
        if !allow_unsupported {
            return Err(location.error(format!(
                "{message}; hapair cannot serve it (--allow-unsupported skips it)"
            )));
        }
        warn(
            location,
            format!("{message}; skipped (--allow-unsupported)"),
        );
        return Ok(None);
    }
    if resource.hosts.len() != 2 {
        let names: Vec<&str> = resource.hosts.iter().map(|h| h.name.as_str()).collect();
        let message = format!(
            "resource {}: {} `on` sections ({}); hapair pairs exactly two nodes",
            resource.name,
            names.len(),
            names.join(", ")
        );
        if !allow_unsupported {
            return Err(resource.location.error(format!(
                "{message} (--allow-unsupported skips the resource)"
            )));
        }
        warn(
            &resource.location,
            format!("{message}; skipped (--allow-unsupported)"),
        );
        return Ok(None);
    }
    let mut fields: BTreeMap<String, Location> = BTreeMap::new();
    fields.insert("resource".into(), resource.location.clone());
    fields.insert("nodes".into(), resource.location.clone());
    let mut document = Document {
        resource: resource.name.clone(),
        protocol: None,
        net: BTreeMap::new(),
        disk: BTreeMap::new(),
        handlers: BTreeMap::new(),
        nodes: BTreeMap::new(),
    };
    for (kind, name, setting) in resource.sections.iter() {
        let value = setting.value();
        match support(kind, name) {
            Some(Support::Implemented) => {}
            Some(Support::Ignored(why)) => {
                warn(
                    &setting.location,
                    format!("{} {name}: ignored: {why}", kind.keyword()),
                );
                continue;
            }
            Some(Support::Unsafe { harmless, why }) => {
                if value == harmless {
                    warn(
                        &setting.location,
                        format!(
                            "{} {name} {value}: ignored: {value} is what hapair does",
                            kind.keyword()
                        ),
                    );
                } else {
                    let message =
                        format!("{} {name} {value}: not supported: {why}", kind.keyword());
                    if !allow_unsupported {
                        return Err(setting.location.error(format!(
                            "resource {}: {message}; remove it, or pass --allow-unsupported to \
                             run without it",
                            resource.name
                        )));
                    }
                    warn(
                        &setting.location,
                        format!("{message}; ignored (--allow-unsupported)"),
                    );
                }
                continue;
            }
            None => continue,
        }
        if name == "after-sb-0pri" && value.starts_with("discard-node-") {
            return Err(setting.location.error(format!(
                "resource {}: after-sb-0pri {value}: discard-node-NAME is hapair's YAML \
                 spelling, not a drbd.conf value; drbd.conf offers disconnect, \
                 discard-younger-primary, discard-older-primary, discard-zero-changes, \
                 discard-least-changes",
                resource.name
            )));
        }
        let value = algorithm(name, value, setting, allow_unsupported, &mut warn);
        let field = match kind {
            SectionKind::Net if name == "protocol" => {
                document.protocol = Some(value);
                "protocol".to_owned()
            }
            SectionKind::Handlers => {
                document
                    .handlers
                    .insert(name.clone(), ShellHook { shell: value });
                format!("handlers.{name}")
            }
            SectionKind::Net | SectionKind::Disk => {
                let scalar = scalar(name, &value, setting)?;
                let (section, prefix) = if kind == SectionKind::Net {
                    (&mut document.net, "net")
                } else {
                    (&mut document.disk, "disk")
                };
                section.insert(name.clone(), scalar);
                format!("{prefix}.{name}")
            }
            SectionKind::Global | SectionKind::Startup | SectionKind::Options => continue,
        };
        fields.insert(field, setting.location.clone());
    }
    let net = &resource.sections.net;
    if let (Some(secret), None) = (net.get("shared-secret"), net.get("cram-hmac-alg")) {
        warn(
            &secret.location,
            format!(
                "resource {}: shared-secret without cram-hmac-alg: DRBD would not authenticate \
                 the peer; hapair does, with sha256",
                resource.name
            ),
        );
    }
    if let Some(device) = resource
        .hosts
        .iter()
        .find_map(|host| host.disks.device.as_ref())
    {
        warn(
            &device.location,
            format!(
                "resource {}: device {}: ignored: hapair serves the volume over NBD, not as a \
                 DRBD minor",
                resource.name,
                device.value()
            ),
        );
    }
    if let Some(node_id) = resource.hosts.iter().find_map(|host| host.node_id.as_ref()) {
        warn(
            &node_id.location,
            format!(
                "resource {}: node-id: ignored: hapair tells the two nodes apart by host name",
                resource.name
            ),
        );
    }
    for host in &resource.hosts {
        let prefix = format!("nodes.{}", host.name);
        fields.insert(prefix.clone(), host.location.clone());
        let mut text_of =
            |field: &str, setting: Option<&Setting>, value: fn(&Setting) -> String| {
                setting.map(|setting| {
                    fields.insert(format!("{prefix}.{field}"), setting.location.clone());
                    value(setting)
                })
            };
        let address = text_of("address", host.address.as_ref(), |setting| {
            setting.args.last().cloned().unwrap_or_default()
        });
        let disk = text_of("disk", host.disks.disk.as_ref(), Setting::value);
        let meta_disk = text_of("meta-disk", host.disks.meta_disk.as_ref(), |setting| {
            setting.args.concat()
        });
        document.nodes.insert(
            host.name.clone(),
            Node {
                address,
                disk,
                meta_disk,
            },
        );
    }
    let yaml = serde_saphyr::to_string(&document).map_err(|error| {
        resource.location.error(format!(
            "resource {}: cannot write it as YAML: {error}",
            resource.name
        ))
    })?;
    let origin = Path::new(&*resource.location.file);
    let config = ResourceConfig::parse(&yaml, origin)
        .map_err(|error| at_drbd_line(error, resource, &fields))?;
    Ok(Some(ImportedResource { yaml, config }))
}

/// An algorithm hapair does not offer, replaced by sha256 when allowed: both
/// nodes read the same file, so they still agree.
fn algorithm(
    name: &str,
    value: String,
    setting: &Setting,
    allow_unsupported: bool,
    warn: &mut impl FnMut(&Location, String),
) -> String {
    let offered = match name {
        "cram-hmac-alg" => HmacAlg::parse(&value).is_ok(),
        "verify-alg" | "data-integrity-alg" => DigestAlg::parse(&value).is_ok(),
        _ => return value,
    };
    if offered || !allow_unsupported {
        return value;
    }
    warn(
        &setting.location,
        format!("net {name} {value}: not offered; sha256 is used instead (--allow-unsupported)"),
    );
    "sha256".to_owned()
}

/// The YAML scalar for a net or disk option.
fn scalar(name: &str, value: &str, setting: &Setting) -> Result<Scalar, ConfigError> {
    if matches!(name, "disk-flushes" | "md-flushes") {
        return Ok(Scalar::Flag(value == "yes"));
    }
    if is_number(name) {
        return value.parse().map(Scalar::Number).map_err(|_| {
            setting
                .location
                .error(format!("{name} {value}: expected a whole number"))
        });
    }
    Ok(Scalar::Text(value.to_owned()))
}

/// A validation error of the generated YAML, moved to the drbd.conf line of
/// the field it names.
fn at_drbd_line(
    error: ConfigError,
    resource: &Resource,
    fields: &BTreeMap<String, Location>,
) -> ConfigError {
    let ConfigError::Invalid { field, message, .. } = &error else {
        return resource
            .location
            .error(format!("resource {}: {error}", resource.name));
    };
    // A missing handler is reported where the option that runs it is.
    let gate = match field.as_str() {
        "handlers.fence-peer" | "handlers.unfence-peer" => Some("net.fencing"),
        "handlers.local-io-error" => Some("disk.on-io-error"),
        "handlers.pri-lost-after-sb" => ["net.after-sb-1pri", "net.after-sb-2pri"]
            .into_iter()
            .find(|option| fields.contains_key(*option)),
        _ => None,
    };
    let mut key = match gate {
        Some(option) if !fields.contains_key(field.as_str()) => option,
        _ => field.as_str(),
    };
    let location = loop {
        if let Some(location) = fields.get(key) {
            break location;
        }
        match key.rsplit_once('.') {
            Some((parent, _)) => key = parent,
            None => break &resource.location,
        }
    };
    let drbd_field = match field.split_once('.') {
        Some(("nodes", rest)) => match rest.split_once('.') {
            Some((host, option)) => format!("on {host}: {option}"),
            None => format!("on {rest}"),
        },
        Some((_, option)) => option.to_owned(),
        None => field.clone(),
    };
    // The YAML's list of after-sb-0pri values ends with its own spelling,
    // which drbd.conf does not take (see `convert`).
    let message = match field.as_str() {
        "net.after-sb-0pri" => message.replace(", discard-node-NAME", ""),
        _ => message.clone(),
    };
    location.error(format!(
        "resource {}: {drbd_field}: {message}",
        resource.name
    ))
}
