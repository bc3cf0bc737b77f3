//! DRBD's own configuration, read as it is: `/etc/drbd.conf`, a `.res` file
//! or a `drbd.d` directory, so an existing DRBD pair can run hapair without
//! rewriting it (`-c`), or convert it once (`haadm import drbd`).
//!
//! The stages, each in its own file: `lexer` (tokens), `parser` (syntax
//! tree with file and line, includes expanded within budgets), `model`
//! (drbd.conf's keywords and inheritance), `hapair` (the mapping onto
//! [`ResourceConfig`], with warnings and refusals). docs/drbd-config.md says
//! what is read and what is refused.

mod hapair;
mod lexer;
mod model;
mod options;
mod parser;

use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

pub use model::{Config, Host, Options, Resource, Sections, Setting, VolumeDisks};
pub use parser::Location;

use crate::error::{ConfigError, printable};
use crate::resource::ResourceConfig;

/// Something in the file that hapair reads but does not act on, or a
/// refusal that `--allow-unsupported` turned into a warning.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    pub location: Location,
    pub message: String,
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.location, printable(&self.message))
    }
}

/// One resource carried over into hapair's terms.
#[derive(Debug, Clone)]
pub struct ImportedResource {
    /// The resource in hapair's YAML schema; reading it back gives `config`.
    pub yaml: String,
    pub config: ResourceConfig,
}

/// What a DRBD configuration gives hapair.
#[derive(Debug, Clone)]
pub struct Imported {
    /// In the order the configuration defines them.
    pub resources: Vec<ImportedResource>,
    pub warnings: Vec<Warning>,
}

/// The configuration at `path` in drbd.conf's terms, without hapair's
/// judgement: a file (its includes followed) or a `drbd.d`-style directory,
/// whose `*.conf` files are read first, then its `*.res` files, each in
/// name order.
pub fn read_config(path: &Path) -> Result<Config, ConfigError> {
    let mut reader = parser::Reader::default();
    let mut statements = Vec::new();
    let metadata = fs::metadata(path).map_err(read_error(path))?;
    if metadata.is_dir() {
        for file in files_ending(path, ".conf")?
            .into_iter()
            .chain(files_ending(path, ".res")?)
        {
            statements.extend(reader.read(&file)?);
        }
    } else {
        statements = reader.read(path)?;
    }
    model::config(&statements)
}

/// drbd.conf text, read as if from `origin` (includes relative to its
/// directory), in drbd.conf's terms.
pub fn parse_config(text: &str, origin: &Path) -> Result<Config, ConfigError> {
    let dir = origin.parent().unwrap_or(Path::new("."));
    let statements = parser::Reader::default().parse(text, &origin.display().to_string(), dir)?;
    model::config(&statements)
}

/// The configuration at `path` (as for [`read_config`]) in hapair's terms.
///
/// Without `allow_unsupported`, an option whose absence would change what
/// is safe (dual Primary, quorum, ...) or a resource hapair cannot serve
/// (more than two nodes, several volumes, ...) is an error naming its line.
/// With it, such options are ignored and such resources skipped, each with
/// a warning.
pub fn import(path: &Path, allow_unsupported: bool) -> Result<Imported, ConfigError> {
    convert(&read_config(path)?, allow_unsupported)
}

/// [`import`] for a configuration already read.
pub fn convert(config: &Config, allow_unsupported: bool) -> Result<Imported, ConfigError> {
    let mut warnings = Vec::new();
    for (name, setting) in &config.global {
        warnings.push(Warning {
            location: setting.location.clone(),
            message: format!("global {name}: ignored: a setting of drbdadm itself"),
        });
    }
    let mut resources = Vec::new();
    for resource in &config.resources {
        if let Some(imported) = hapair::convert(resource, allow_unsupported, &mut warnings)? {
            resources.push(imported);
        }
    }
    // By file and line; stable, so one line's warnings keep their order.
    warnings.sort_by(|a, b| {
        (&*a.location.file, a.location.line).cmp(&(&*b.location.file, b.location.line))
    });
    Ok(Imported {
        resources,
        warnings,
    })
}

/// Whether `text` reads as drbd.conf rather than YAML: its first word,
/// comments skipped, is one of drbd.conf's top-level keywords (YAML's
/// `resource:` is not).
pub fn looks_like_drbd(text: &str) -> bool {
    let first_word = text
        .lines()
        .map(|line| line.split('#').next().unwrap_or("").trim())
        .find(|line| !line.is_empty())
        .and_then(|line| {
            line.split(|c: char| c.is_whitespace() || matches!(c, '{' | ';' | '"'))
                .next()
        });
    matches!(
        first_word,
        Some("global" | "common" | "resource" | "include" | "skip")
    )
}

/// Whether the directory holds DRBD resource files (`*.res`).
pub fn is_drbd_directory(dir: &Path) -> Result<bool, ConfigError> {
    Ok(!files_ending(dir, ".res")?.is_empty())
}

/// The files directly in `dir` whose names end with `suffix`, hidden ones
/// skipped, sorted.
fn files_ending(dir: &Path, suffix: &str) -> Result<Vec<PathBuf>, ConfigError> {
    let mut files = Vec::new();
    for entry in fs::read_dir(dir).map_err(read_error(dir))? {
        let entry = entry.map_err(read_error(dir))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.ends_with(suffix) && !name.starts_with('.') && entry.path().is_file() {
            files.push(entry.path());
        }
    }
    files.sort();
    Ok(files)
}

/// The error for `path` that cannot be read or looked at.
pub(crate) fn read_error(path: &Path) -> impl Fn(io::Error) -> ConfigError + '_ {
    move |error| ConfigError::Read {
        origin: printable(&path.display().to_string()),
        reason: error.to_string(),
    }
}
