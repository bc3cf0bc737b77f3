//! `haadm import drbd FILE`: an existing DRBD configuration (drbd.conf, a
//! `.res` file or a `drbd.d` directory) written as hapair's YAML, one
//! document per resource, each of which hapair's YAML loader reads back to
//! the resource `haadm -c FILE` loads.

use std::fs::OpenOptions;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use clap::Subcommand;
use hapair_config::drbd::{self, Imported};

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
}

/// Runs the import; warnings go to stderr.
pub fn run(source: &Source, allow_unsupported: bool) -> Result<(), Failure> {
    match source {
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

/// The header comment of a resource's document.
fn header(resource: &drbd::ImportedResource) -> String {
    format!(
        "# hapair resource {}, imported from {} by `haadm import drbd`\n",
        resource.config.name,
        resource.config.origin.display()
    )
}

/// Every resource as a YAML document, `---` between them.
fn documents(imported: &Imported) -> String {
    let documents: Vec<String> = imported
        .resources
        .iter()
        .map(|resource| format!("{}{}", header(resource), resource.yaml))
        .collect();
    documents.join("---\n")
}

fn write_files(imported: &Imported, dir: &Path) -> Result<(), Failure> {
    for resource in &imported.resources {
        let path = dir.join(format!("{}.yaml", resource.config.name));
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|error| {
                Failure::io(format!(
                    "cannot create {}: {error} (import never overwrites a file)",
                    path.display()
                ))
            })?;
        file.write_all(format!("{}{}", header(resource), resource.yaml).as_bytes())
            .map_err(|error| Failure::io(format!("cannot write {}: {error}", path.display())))?;
        println!("{}", path.display());
    }
    Ok(())
}
