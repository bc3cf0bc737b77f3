//! `hookrun`: the hook runner's command line. `hookrun run` gives a single
//! command — a cron job, a handler — the guarantees vrrpd's hooks get: its
//! own process group, a timeout that kills the whole group (SIGTERM, then
//! SIGKILL), its output logged under its name, script security when it
//! runs as root, and optionally an entry in the hook journal.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, Subcommand};
use hookrun::{DEFAULT_JOURNAL_MAX_BYTES, HookRunner, Job, Journal, Outcome, RunAs, RunSettings};

#[derive(Parser)]
#[command(
    name = "hookrun",
    version,
    about = "Run hook commands with timeouts and process-group kill"
)]
struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run one command. Exit status: the command's own; 124 if it timed
    /// out; 126 if script security refused it; 127 if it could not be
    /// started; 128+N if killed by signal N.
    Run {
        /// Seconds before the command's process group is killed.
        #[arg(long, default_value_t = 30.0, value_parser = parse_timeout)]
        timeout: f64,
        /// The name its log lines carry (default: the program's name).
        #[arg(long)]
        name: Option<String>,
        /// Append the run to this hook journal (JSON lines), e.g.
        /// /run/hapair/hooks.journal; `haadm hooks` reads it.
        #[arg(long)]
        journal: Option<PathBuf>,
        /// Run the command as this user (and group) instead of root.
        #[arg(long, value_name = "USER[:GROUP]")]
        user: Option<String>,
        /// Run a command as root even when others than root can change it.
        #[arg(long)]
        no_script_security: bool,
        /// The command and its arguments (after `--`).
        #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
        argv: Vec<String>,
    },
}

fn parse_timeout(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(seconds) if seconds > 0.0 && seconds <= 86_400.0 => Ok(seconds),
        _ => Err(format!(
            "{text:?} is not a number of seconds above 0 and at most 86400 (one day)"
        )),
    }
}

/// The conventions of coreutils' `timeout` and of shells.
fn exit_status(outcome: &Outcome) -> u8 {
    match outcome {
        Outcome::Exited { code, .. } => u8::try_from(*code).unwrap_or(1),
        Outcome::Signalled { signal, .. } => u8::try_from(128 + signal).unwrap_or(255),
        Outcome::TimedOut { .. } => 124,
        Outcome::Refused { .. } => 126,
        Outcome::SpawnFailed { .. } => 127,
        Outcome::WaitFailed { .. } | Outcome::Stopped { .. } => 1,
    }
}

fn main() -> ExitCode {
    let Args {
        command:
            Command::Run {
                timeout,
                name,
                journal,
                user,
                no_script_security,
                argv,
            },
    } = Args::parse();
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"))
        .format_target(false)
        .init();
    let run_as = match user.as_deref().map(|text| match text.split_once(':') {
        Some((user, group)) => RunAs::lookup(user, Some(group)),
        None => RunAs::lookup(text, None),
    }) {
        None => None,
        Some(Ok(run_as)) => Some(run_as),
        Some(Err(error)) => {
            eprintln!("hookrun: --user: {error}");
            return ExitCode::from(2);
        }
    };
    let settings = RunSettings {
        journal: journal.map(|path| Arc::new(Journal::new(path, DEFAULT_JOURNAL_MAX_BYTES))),
        script_security: !no_script_security,
        run_as,
    };
    let name = name.unwrap_or_else(|| argv[0].clone());
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("hookrun: cannot start the runtime: {error}");
            return ExitCode::from(1);
        }
    };
    let outcome = runtime.block_on(async {
        let runner = HookRunner::with_settings(settings);
        let job = Job::new(name.clone(), argv, Duration::from_secs_f64(timeout));
        runner.submit(&name, job).await
    });
    match outcome {
        Ok(outcome) => ExitCode::from(exit_status(&outcome)),
        Err(_) => {
            eprintln!("hookrun: the runner stopped before {name} finished");
            ExitCode::from(1)
        }
    }
}
