//! `vrrpd`: hapair's VRRP daemon, in keepalived's place. It elects one
//! MASTER per virtual router, holds the virtual addresses there, and runs
//! the operator's hooks on every transition.
//!
//! This file is the command line and the choice of config reader (hapair
//! YAML, or an existing keepalived.conf read as it is); [`daemon`] is the
//! event loop.

mod daemon;
mod netlink;
mod network;
mod notify;
mod state_file;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::OnceLock;

use clap::Parser;
use hapair_config::keepalived::{self, ImportOptions};
use hapair_config::{ConfigError, VrrpConfig};
use log::warn;

#[derive(Parser)]
#[command(
    name = "vrrpd",
    version,
    about = "VRRP daemon of hapair: elects a MASTER, moves virtual addresses, runs hooks"
)]
struct Args {
    /// The configuration file: hapair YAML, or a keepalived.conf (told apart
    /// by content: a keepalived.conf starts with a keepalived block such as
    /// `global_defs {` or `vrrp_instance NAME {`).
    #[arg(short = 'f', long = "config", default_value = "/etc/hapair/vrrp.yaml")]
    config: PathBuf,
    /// With a keepalived.conf: start even though it uses keywords hapair
    /// does not implement and whose absence changes failover behaviour
    /// (vrrp_strict, use_vmac, track_bfd, ...). They are still reported.
    #[arg(long)]
    allow_unsupported: bool,
    /// This host's name in the configuration (default: the hostname).
    #[arg(long)]
    node: Option<String>,
    /// Where runtime files go (the state file is <run-dir>/vrrp/state.json).
    #[arg(long, default_value = "/run/hapair")]
    run_dir: PathBuf,
    /// Check the configuration, say what is wrong, and exit.
    #[arg(long)]
    check_config: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"))
        .format_target(false)
        .init();
    let node = hapair_config::this_node(args.node.clone());
    ALLOW_UNSUPPORTED.get_or_init(|| args.allow_unsupported);
    let config = match load_config(&args.config, &node) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("vrrpd: {error}");
            return ExitCode::FAILURE;
        }
    };
    if args.check_config {
        let names: Vec<&str> = config.instances.iter().map(|i| i.name.as_str()).collect();
        let format = if keepalived::is_keepalived_file(&args.config) {
            "keepalived "
        } else {
            ""
        };
        println!(
            "vrrpd: {}: {format}configuration OK for node {node}: {} instance(s): {}",
            args.config.display(),
            names.len(),
            names.join(", ")
        );
        return ExitCode::SUCCESS;
    }
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("vrrpd: cannot start the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(daemon::Daemon::run(args.config, node, args.run_dir, config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("vrrpd: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// `--allow-unsupported`, set once at start; reloads read the file with
/// the same leniency.
static ALLOW_UNSUPPORTED: OnceLock<bool> = OnceLock::new();

/// Reads the config file for `node`, at start and on SIGHUP: a keepalived.conf
/// through the keepalived reader (its `@ID` lines selected by the node name,
/// what hapair ignores logged as warnings), anything else as hapair YAML.
pub(crate) fn load_config(path: &Path, node: &str) -> Result<VrrpConfig, ConfigError> {
    if !keepalived::is_keepalived_file(path) {
        return VrrpConfig::load(path, Some(node));
    }
    let options = ImportOptions {
        config_id: node.to_owned(),
        allow_unsupported: ALLOW_UNSUPPORTED.get().copied().unwrap_or(false),
    };
    let imported = keepalived::load(path, &options)?;
    for diagnostic in &imported.diagnostics {
        warn!("{diagnostic}");
    }
    Ok(imported.config)
}
