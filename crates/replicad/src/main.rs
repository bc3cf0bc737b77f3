//! `replicad`: hapair's replication agent, one daemon for every resource
//! in the configuration directory. `haadm` drives it through the control
//! socket in the run directory.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

#[derive(Parser)]
#[command(
    name = "replicad",
    version,
    about = "Replication agent of hapair: serves replicated volumes over NBD"
)]
struct Args {
    /// The configuration: hapair's directory (one YAML file per resource)
    /// or one file, or DRBD's drbd.conf, a .res file or a drbd.d directory.
    #[arg(short = 'c', long = "config", default_value = "/etc/hapair")]
    config: PathBuf,
    /// Start from a DRBD configuration although it asks for what hapair
    /// does not do (dual Primary, quorum, more than two nodes, ...): such
    /// options are ignored and such resources skipped, each with a warning.
    #[arg(long)]
    allow_unsupported: bool,
    /// This host's name in the configuration (default: the hostname).
    #[arg(long)]
    node: Option<String>,
    /// Where the control socket and the NBD sockets go.
    #[arg(long, default_value = "/run/hapair")]
    run_dir: PathBuf,
}

fn main() -> ExitCode {
    let args = Args::parse();
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"))
        .format_target(false)
        .init();
    let node = hapair_config::this_node(args.node.clone());
    let options = hapair_config::LoadOptions {
        allow_unsupported: args.allow_unsupported,
    };
    let resources = match hapair_config::load_config(&args.config, options) {
        Ok(loaded) => {
            for warning in &loaded.warnings {
                log::warn!("{warning}");
            }
            loaded.resources
        }
        Err(error) => {
            eprintln!("replicad: {error}");
            return ExitCode::FAILURE;
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("replicad: cannot start the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(replicad::daemon::run(resources, node, args.run_dir));
    // Once `run` returned, the resources are down; a disk request still
    // running is stuck on a disk that hangs (`disk-timeout` gave up on
    // it), and waiting for it would keep the process from ending.
    runtime.shutdown_background();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("replicad: {error:#}");
            ExitCode::FAILURE
        }
    }
}
