//! `haadm`: hapair's admin command, in drbdadm's place. Metadata commands
//! work on the disk directly; the others ask `replicad` over its control
//! socket, as drbdadm asks the kernel through drbdsetup. `vrrp status`,
//! `check` and `hooks` read vrrpd's state file and hook journal.

mod check;
mod config_dump;
mod hooks;
mod import;
mod metadata;
mod vrrp;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use hapair_config::{ConfigError, LoadOptions, ResourceConfig, load_config};
use replicad::control::{Client, ClientError, Reply, Request, ResourceStatus};
use replicad::report;

/// How long `status` and `check` wait for replicad's answer: a daemon
/// stuck (on a backing disk that hangs) must not hang them too.
const STATUS_TIMEOUT: Duration = Duration::from_secs(10);

const EXIT_CODES: &str = "\
Exit codes:
  0   done
  1   the command failed (I/O error, metadata problem; or replicad did not
      answer `status` within 10 s)
  2   usage error
  3   replicad is not running
  4   vrrpd's state file cannot be read (vrrp status)
  5   vrrpd's state file lists no such instance or sync group (vrrp status)
  10  invalid configuration, or a resource the configuration does not define
  11  state change refused (e.g. secondary while held open, down while Primary)
  17  promotion needs UpToDate data (use --force only if you know this copy is good)";

#[derive(Parser)]
#[command(name = "haadm", version, about = "Administer hapair's replicated resources", after_help = EXIT_CODES)]
struct Args {
    /// The configuration: hapair's directory (one YAML file per resource)
    /// or one file, or DRBD's drbd.conf, a .res file or a drbd.d directory.
    #[arg(
        short = 'c',
        long = "config",
        default_value = "/etc/hapair",
        global = true
    )]
    config: PathBuf,
    /// Load a DRBD configuration although it asks for what hapair does not
    /// do (dual Primary, quorum, more than two nodes, ...): such options are
    /// ignored and such resources skipped, each with a warning.
    #[arg(long, global = true)]
    allow_unsupported: bool,
    /// This host's name in the configuration (default: the hostname).
    #[arg(long, global = true)]
    node: Option<String>,
    /// The run directory: replicad's control socket (replicad.sock) and
    /// vrrpd's state file (vrrp/state.json) are there.
    #[arg(long, default_value = "/run/hapair", global = true)]
    run_dir: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Write new metadata on the resource's disk (or its meta-disk).
    CreateMd {
        resource: String,
        /// Overwrite existing metadata (forgets generation ids and bitmap).
        #[arg(long)]
        force: bool,
    },
    /// Print the resource's metadata.
    DumpMd { resource: String },
    /// Attach the disk and bring the resource up as Secondary.
    Up { resource: String },
    /// Detach the resource (refused while Primary).
    Down { resource: String },
    /// Promote to Primary: the volume is served over NBD.
    Primary {
        resource: String,
        /// Promote even without UpToDate data (first sync, disaster recovery).
        #[arg(long)]
        force: bool,
    },
    /// Demote to Secondary (refused while an NBD client holds it open).
    Secondary { resource: String },
    /// Connect to the peer again (after disconnect or a refused connect).
    Connect {
        resource: String,
        /// If the connect finds a split brain, drop this node's changes
        /// and resync from the peer.
        #[arg(long)]
        discard_my_data: bool,
    },
    /// Drop the connection to the peer: StandAlone until connect.
    Disconnect { resource: String },
    /// Resume I/O frozen by `fencing: resource-and-stonith` when the
    /// fence-peer handler failed: first make sure the peer is not Primary
    /// and cannot write (fence it by hand).
    ResumeIo { resource: String },
    /// Online verify with the peer (needs net.verify-alg): blocks that
    /// differ are marked out of sync, not repaired; disconnect and connect,
    /// or invalidate, to resync them.
    Verify { resource: String },
    /// Discard this node's data: it becomes SyncTarget of a full resync.
    Invalidate { resource: String },
    /// Discard the peer's data: it becomes SyncTarget of a full resync.
    InvalidateRemote { resource: String },
    /// Skip the initial full sync of a fresh, connected pair: both nodes
    /// become UpToDate with one new generation (needs --clear-bitmap).
    NewCurrentUuid {
        resource: String,
        /// Clear the bitmap: nothing is resynced.
        #[arg(long)]
        clear_bitmap: bool,
    },
    /// The state of every resource, or one, in DRBD 9's layout.
    Status {
        resource: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// The role (Primary/Secondary) alone.
    Role { resource: String },
    /// The disk state alone.
    Dstate { resource: String },
    /// The connection state alone.
    Cstate { resource: String },
    /// Stream state changes in DRBD's events2 form.
    Events,
    /// Print the configuration of every resource, or one, normalized.
    Dump { resource: Option<String> },
    /// Print another program's configuration as hapair's YAML.
    #[command(subcommand)]
    Import(import::Source),
    /// The hook journal: every hook run, oldest first.
    Hooks(hooks::HooksArgs),
    /// vrrpd's instances, from its state file.
    #[command(subcommand)]
    Vrrp(vrrp::VrrpCommand),
    /// The pair's health in one Nagios-style line (exit 0 OK, 1 WARNING,
    /// 2 CRITICAL, 3 UNKNOWN): every resource, and vrrpd's state file.
    Check {
        /// Also write 0 (this node can serve) or 1 here, for vrrpd's track_file.
        #[arg(long, value_name = "PATH")]
        write_track_file: Option<PathBuf>,
        /// vrrpd's state file (default: <run-dir>/vrrp/state.json, skipped if absent).
        #[arg(long, value_name = "FILE")]
        vrrp_state: Option<PathBuf>,
    },
}

/// A failure and the exit code it maps to.
struct Failure {
    code: u8,
    message: String,
}

impl From<ConfigError> for Failure {
    fn from(error: ConfigError) -> Self {
        Failure {
            code: 10,
            message: error.to_string(),
        }
    }
}

impl From<ClientError> for Failure {
    fn from(error: ClientError) -> Self {
        let code = if matches!(error, ClientError::NotRunning { .. }) {
            3
        } else {
            1
        };
        Failure {
            code,
            message: error.to_string(),
        }
    }
}

impl From<vrrp::StatusError> for Failure {
    fn from(error: vrrp::StatusError) -> Self {
        Failure {
            code: error.exit_code(),
            message: error.to_string(),
        }
    }
}

impl Failure {
    fn io(message: impl Into<String>) -> Failure {
        Failure {
            code: 1,
            message: message.into(),
        }
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("haadm: {}", failure.message);
            ExitCode::from(failure.code)
        }
    }
}

/// The resources the command names: `all` or one by name.
fn select(args: &Args, name: Option<&str>) -> Result<Vec<ResourceConfig>, Failure> {
    let options = LoadOptions {
        allow_unsupported: args.allow_unsupported,
    };
    let loaded = load_config(&args.config, options)?;
    for warning in &loaded.warnings {
        eprintln!("haadm: warning: {warning}");
    }
    let all = loaded.resources;
    match name {
        None | Some("all") => Ok(all),
        Some(name) => match all.into_iter().find(|r| r.name == name) {
            Some(resource) => Ok(vec![resource]),
            None => Err(Failure {
                code: 10,
                message: format!("{name} is not defined in {}", args.config.display()),
            }),
        },
    }
}

fn run(args: Args) -> Result<(), Failure> {
    let node = hapair_config::this_node(args.node.clone());
    match &args.command {
        Command::CreateMd { resource, force } => {
            for resource in select(&args, Some(resource))? {
                metadata::create(&resource, &node, *force)?;
            }
            Ok(())
        }
        Command::DumpMd { resource } => {
            for resource in select(&args, Some(resource))? {
                print!("{}", metadata::dump(&resource, &node)?);
            }
            Ok(())
        }
        Command::Check {
            write_track_file,
            vrrp_state,
        } => std::process::exit(check::run(
            &args.run_dir,
            vrrp_state.as_deref(),
            write_track_file.as_deref(),
        )),
        Command::Hooks(hooks_args) => hooks::run(&args.run_dir, hooks_args).map_err(Failure::io),
        Command::Vrrp(command) => Ok(vrrp::run(&args.run_dir, command)?),
        Command::Import(source) => import::run(
            source,
            &hapair_config::this_node(args.node.clone()),
            args.allow_unsupported,
        ),
        Command::Dump { resource } => {
            for resource in select(&args, resource.as_deref())? {
                print!("{}", config_dump::render(&resource));
            }
            Ok(())
        }
        Command::Up { resource } => each(&args, resource, |name| Request::Up { resource: name }),
        Command::Down { resource } => {
            each(&args, resource, |name| Request::Down { resource: name })
        }
        Command::Primary { resource, force } => each(&args, resource, |name| Request::Primary {
            resource: name,
            force: *force,
        }),
        Command::Secondary { resource } => each(&args, resource, |name| Request::Secondary {
            resource: name,
        }),
        Command::Connect {
            resource,
            discard_my_data,
        } => each(&args, resource, |name| Request::Connect {
            resource: name,
            discard_my_data: *discard_my_data,
        }),
        Command::Disconnect { resource } => each(&args, resource, |name| Request::Disconnect {
            resource: name,
        }),
        Command::ResumeIo { resource } => {
            each(&args, resource, |name| Request::ResumeIo { resource: name })
        }
        Command::Verify { resource } => {
            each(&args, resource, |name| Request::Verify { resource: name })
        }
        Command::Invalidate { resource } => each(&args, resource, |name| Request::Invalidate {
            resource: name,
        }),
        Command::InvalidateRemote { resource } => each(&args, resource, |name| {
            Request::InvalidateRemote { resource: name }
        }),
        Command::NewCurrentUuid {
            resource,
            clear_bitmap,
        } => each(&args, resource, |name| Request::NewCurrentUuid {
            resource: name,
            clear_bitmap: *clear_bitmap,
        }),
        Command::Status { resource, json } => {
            let resources = status(&args, resource.as_deref())?;
            if *json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&resources).expect("status serializes")
                );
            } else {
                print!("{}", report::status_text(&resources));
            }
            Ok(())
        }
        Command::Role { resource } => print_field(&args, resource, |r| &r.role),
        Command::Dstate { resource } => print_field(&args, resource, |r| &r.disk),
        Command::Cstate { resource } => print_field(&args, resource, |r| &r.peer.connection),
        Command::Events => {
            let client = Client::connect(&args.run_dir)?;
            client.events(|line| {
                println!("{line}");
                true
            })?;
            Ok(())
        }
    }
}

/// Sends one request per selected resource; stops at the first failure.
fn each(args: &Args, name: &str, request: impl Fn(String) -> Request) -> Result<(), Failure> {
    let resources = select(args, Some(name))?;
    let mut client = Client::connect(&args.run_dir)?;
    for resource in resources {
        expect_done(client.call(&request(resource.name))?)?;
    }
    Ok(())
}

fn expect_done(reply: Reply) -> Result<Vec<ResourceStatus>, Failure> {
    match reply {
        Reply::Done { resources } => Ok(resources),
        Reply::Failed { failure, message } => Err(Failure {
            code: failure.exit_code(),
            message,
        }),
    }
}

fn status(args: &Args, name: Option<&str>) -> Result<Vec<ResourceStatus>, Failure> {
    let wanted = match name {
        None | Some("all") => None,
        Some(name) => Some(select(args, Some(name))?.remove(0).name),
    };
    let mut client = Client::connect(&args.run_dir)?.with_reply_timeout(STATUS_TIMEOUT)?;
    expect_done(client.call(&Request::Status { resource: wanted })?)
}

fn print_field(
    args: &Args,
    name: &str,
    field: impl Fn(&ResourceStatus) -> &String,
) -> Result<(), Failure> {
    for resource in status(args, Some(name))? {
        println!("{}", field(&resource));
    }
    Ok(())
}
