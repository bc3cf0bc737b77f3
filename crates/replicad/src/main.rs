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
    /// The configuration directory (one YAML file per resource), or one file.
    #[arg(short = 'c', long = "config", default_value = "/etc/hapair")]
    config: PathBuf,
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
    let resources = match hapair_config::load_resources(&args.config) {
        Ok(resources) => resources,
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
    match runtime.block_on(replicad::daemon::run(resources, node, args.run_dir)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("replicad: {error:#}");
            ExitCode::FAILURE
        }
    }
}
