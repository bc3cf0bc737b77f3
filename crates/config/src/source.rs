//! Which reader a `-c PATH` needs: hapair's YAML (a file, or a directory of
//! `*.yaml`) or DRBD's own configuration (drbd.conf, a `.res` file, or a
//! `drbd.d` directory). replicad and haadm both load through here.

use std::fs;
use std::path::Path;

use crate::drbd::{self, Warning};
use crate::error::ConfigError;
use crate::resource::{ResourceConfig, check_resources_apart, load_resources};
use crate::yaml::read_file;

/// The two configuration formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Yaml,
    Drbd,
}

/// How to load a configuration.
#[derive(Debug, Clone, Copy, Default)]
pub struct LoadOptions {
    /// Run although the DRBD configuration asks for something hapair does
    /// not do: such options are ignored and such resources skipped, each
    /// with a warning.
    pub allow_unsupported: bool,
}

/// The resources of a configuration and what was ignored in it.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// Sorted by name.
    pub resources: Vec<ResourceConfig>,
    /// Always empty for YAML.
    pub warnings: Vec<Warning>,
}

/// The format of the configuration at `path`: a directory with `*.res`
/// files is DRBD's; a file named `*.yaml` or `*.yml` is YAML, one named
/// `*.res` DRBD's, any other file is DRBD's when its first word is one of
/// drbd.conf's top-level keywords.
pub fn format_of(path: &Path) -> Result<Format, ConfigError> {
    let metadata = fs::metadata(path).map_err(drbd::read_error(path))?;
    if metadata.is_dir() {
        return Ok(if drbd::is_drbd_directory(path)? {
            Format::Drbd
        } else {
            Format::Yaml
        });
    }
    match path.extension().and_then(|extension| extension.to_str()) {
        Some("yaml" | "yml") => Ok(Format::Yaml),
        Some("res") => Ok(Format::Drbd),
        _ if drbd::looks_like_drbd(&read_file(path, &path.display().to_string())?) => {
            Ok(Format::Drbd)
        }
        _ => Ok(Format::Yaml),
    }
}

/// Every resource at `path`, in whichever format it is (see [`format_of`]),
/// checked against each other as [`load_resources`] checks YAML ones.
pub fn load_config(path: &Path, options: LoadOptions) -> Result<Loaded, ConfigError> {
    match format_of(path)? {
        Format::Yaml => Ok(Loaded {
            resources: load_resources(path)?,
            warnings: Vec::new(),
        }),
        Format::Drbd => {
            let imported = drbd::import(path, options.allow_unsupported)?;
            let mut resources: Vec<ResourceConfig> = imported
                .resources
                .into_iter()
                .map(|resource| resource.config)
                .collect();
            resources.sort_by(|a, b| a.name.cmp(&b.name));
            check_resources_apart(&resources)?;
            Ok(Loaded {
                resources,
                warnings: imported.warnings,
            })
        }
    }
}
