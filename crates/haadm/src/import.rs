//! `haadm import drbd FILE`: an existing DRBD configuration (drbd.conf, a
//! `.res` file or a `drbd.d` directory) written as hapair's YAML, one
//! document per resource, each of which hapair's YAML loader reads back to
//! the resource `haadm -c FILE` loads.
//!
//! `haadm import keepalived FILE`: a keepalived.conf written as vrrpd's YAML,
//! which vrrpd reads back to the configuration `vrrpd -f FILE` runs.

use std::fs::{self, OpenOptions};
use std::io::{ErrorKind, Write as _};
use std::path::{Path, PathBuf};

use clap::Subcommand;
use hapair_config::drbd::{self, Imported};
use hapair_config::keepalived::{self, ImportOptions};

use crate::Failure;

/// What to import.
#[derive(Subcommand)]
pub enum Source {
    /// DRBD's configuration: drbd.conf, a .res file, or a drbd.d directory.
    Drbd {
        /// The file or directory to read.
        file: PathBuf,
        /// Write each resource to DIR/NAME.yaml (never overwriting) instead
        /// of printing the documents, separated by `---`, on stdout.
        #[arg(long, value_name = "DIR")]
        out_dir: Option<PathBuf>,
    },
    /// keepalived's configuration (keepalived.conf), for vrrpd. Lines
    /// starting `@ID` are kept for the node given by --node (default: the
    /// hostname), as `keepalived -i ID` would.
    Keepalived {
        /// The file to read; its `include`s are followed.
        file: PathBuf,
    },
}

/// Runs the import for this `node`; warnings go to stderr.
pub fn run(source: &Source, node: &str, allow_unsupported: bool) -> Result<(), Failure> {
    match source {
        Source::Keepalived { file } => {
            let options = ImportOptions {
                config_id: node.to_owned(),
                allow_unsupported,
            };
            let imported = keepalived::load(file, &options)?;
            for diagnostic in &imported.diagnostics {
                eprintln!("haadm: {diagnostic}");
            }
            print!("{}", imported.yaml);
            Ok(())
        }
        Source::Drbd { file, out_dir } => {
            let imported = drbd::import(file, allow_unsupported)?;
            for warning in &imported.warnings {
                eprintln!("haadm: warning: {warning}");
            }
            match out_dir {
                None => {
                    print!("{}", documents(&imported));
                    Ok(())
                }
                Some(dir) => write_files(&imported, dir),
            }
        }
    }
}

/// A resource's YAML document, under a comment saying where it came from.
fn document(resource: &drbd::ImportedResource) -> String {
    format!(
        "# hapair resource {}, imported from {} by `haadm import drbd`\n{}",
        resource.config.name,
        resource.config.origin.display(),
        resource.yaml
    )
}

/// Every resource as a YAML document, `---` between them.
fn documents(imported: &Imported) -> String {
    let documents: Vec<String> = imported.resources.iter().map(document).collect();
    documents.join("---\n")
}

/// Writes each resource to `dir/NAME.yaml`, printing each path written.
fn write_files(imported: &Imported, dir: &Path) -> Result<(), Failure> {
    for resource in &imported.resources {
        let path = dir.join(format!("{}.yaml", resource.config.name));
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|error| {
                let hint = match error.kind() {
                    ErrorKind::AlreadyExists => "import never overwrites a file: move it away",
                    ErrorKind::NotFound => "create the directory first",
                    _ => "check the directory's permissions",
                };
                Failure::io(format!(
                    "cannot create {}: {error} ({hint})",
                    path.display()
                ))
            })?;
        if let Err(error) = file.write_all(document(resource).as_bytes()) {
            // A half-written file would stop the next import (it never overwrites).
            let _ = fs::remove_file(&path);
            return Err(Failure::io(format!(
                "cannot write {}: {error}",
                path.display()
            )));
        }
        println!("{}", path.display());
    }
    Ok(())
}
