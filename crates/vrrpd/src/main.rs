//! `vrrpd`: hapair's VRRP daemon, in keepalived's place. It elects one
//! MASTER per virtual router, holds the virtual addresses there, and runs
//! the operator's hooks on every transition.
//!
//! This file is the command line; [`daemon`] is the event loop.

mod daemon;
mod netlink;
mod network;
mod notify;
mod state_file;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use hapair_config::VrrpConfig;

#[derive(Parser)]
#[command(
    name = "vrrpd",
    version,
    about = "VRRP daemon of hapair: elects a MASTER, moves virtual addresses, runs hooks"
)]
struct Args {
    /// The configuration file (YAML).
    #[arg(short = 'f', long = "config", default_value = "/etc/hapair/vrrp.yaml")]
    config: PathBuf,
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
    let config = match VrrpConfig::load(&args.config, Some(&node)) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("vrrpd: {error}");
            return ExitCode::FAILURE;
        }
    };
    if args.check_config {
        let names: Vec<&str> = config.instances.iter().map(|i| i.name.as_str()).collect();
        println!(
            "vrrpd: {}: configuration OK for node {node}: {} instance(s): {}",
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
