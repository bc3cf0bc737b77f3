//! vrrpd, the workspace's VRRP daemon, run in a lab host, and its state
//! file.

use std::env;
use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::time::Duration;

use nix::sys::signal::Signal;
use serde_json::Value;

use crate::keepalived::path_str;
use crate::netns::Host;
use crate::process::Proc;
use crate::support::binary;

/// RUST_LOG for vrrpd when the test's environment sets none: enough to
/// follow a failed test in the printed logs.
const DEFAULT_LOG_FILTER: &str = "debug";

/// A vrrpd running in a lab host as node `<host name>`, with a run
/// directory of its own in the lab directory.
pub struct Vrrpd {
    host: Host,
    proc: Proc,
    run_dir: PathBuf,
    /// The config file the running process was started with.
    config: PathBuf,
}

impl Vrrpd {
    /// Writes `config_yaml` (see [`crate::vrrpd_config`]) to the lab
    /// directory and starts the built vrrpd with it in `host`.
    pub fn start(host: &Host, config_yaml: &str) -> Vrrpd {
        let run_dir = host.new_file_path("vrrpd", "run");
        fs::create_dir(&run_dir)
            .unwrap_or_else(|error| panic!("cannot create {}: {error}", run_dir.display()));
        let (proc, config) = spawn_vrrpd(host, &run_dir, config_yaml);
        Vrrpd {
            host: host.clone(),
            proc,
            run_dir,
            config,
        }
    }

    /// Starts vrrpd again, with `config_yaml`, in the same host and run
    /// directory, as an operator restarting the service would. The previous
    /// process must have exited (stop or kill it first).
    pub fn restart(&mut self, config_yaml: &str) {
        assert!(
            !self.proc.is_running(),
            "{}: restart needs the previous vrrpd to have exited",
            self.proc.label()
        );
        (self.proc, self.config) = spawn_vrrpd(&self.host, &self.run_dir, config_yaml);
    }

    /// Replaces its config file with `config_yaml` (atomically, by a
    /// rename) and sends SIGHUP, as an operator reloading the service
    /// would. Returns at once, without waiting for the reload.
    pub fn reload(&self, config_yaml: &str) {
        let mut staged = self.config.clone().into_os_string();
        staged.push(".new");
        let staged = PathBuf::from(staged);
        fs::write(&staged, config_yaml)
            .unwrap_or_else(|error| panic!("cannot write {}: {error}", staged.display()));
        fs::rename(&staged, &self.config).unwrap_or_else(|error| {
            panic!(
                "cannot move {} to {}: {error}",
                staged.display(),
                self.config.display()
            )
        });
        self.proc.kill(Signal::SIGHUP);
    }

    pub fn proc(&self) -> &Proc {
        &self.proc
    }

    pub fn proc_mut(&mut self) -> &mut Proc {
        &mut self.proc
    }

    /// `<run-dir>/vrrp/state.json`
    pub fn state_path(&self) -> PathBuf {
        self.run_dir.join("vrrp").join("state.json")
    }

    /// The state file as written by the running process, or `None` before
    /// it wrote one (a file left by an earlier process, with another pid,
    /// does not count).
    pub fn state(&self) -> Option<Value> {
        read_vrrpd_state(&self.state_path())
            .filter(|state| state["pid"].as_u64() == Some(u64::from(self.proc.pid())))
    }

    /// `<run-dir>/hooks.journal`: its hook journal, unless the config
    /// names another.
    pub fn journal_path(&self) -> PathBuf {
        self.run_dir.join(hookrun::JOURNAL_FILE_NAME)
    }

    /// Instance `name` from [`Vrrpd::state`].
    pub fn instance(&self, name: &str) -> Option<Value> {
        let state = self.state()?;
        state["instances"]
            .as_array()?
            .iter()
            .find(|instance| instance["name"] == name)
            .cloned()
    }

    /// The state (INIT, BACKUP, MASTER, FAULT) of instance `name`, once the
    /// running process wrote one.
    pub fn instance_state(&self, name: &str) -> Option<String> {
        self.instance(name)?["state"].as_str().map(str::to_owned)
    }

    /// Stops it as an operator would (SIGTERM). Panics unless it exits
    /// within `timeout`.
    pub fn stop(&mut self, timeout: Duration) -> ExitStatus {
        self.proc.kill(Signal::SIGTERM);
        self.proc.wait_timeout(timeout).unwrap_or_else(|| {
            panic!(
                "{} did not exit within {timeout:?} of SIGTERM",
                self.proc.label()
            )
        })
    }

    /// Kills it with SIGKILL, as a crash would, and reaps it.
    pub fn crash(&mut self) {
        self.proc.kill(Signal::SIGKILL);
        self.proc
            .wait_timeout(Duration::from_secs(5))
            .unwrap_or_else(|| panic!("{} survived SIGKILL for 5 s", self.proc.label()));
    }
}

/// Writes `config_yaml` to a new file and starts vrrpd with it; returns the
/// process and the config file's path.
fn spawn_vrrpd(host: &Host, run_dir: &Path, config_yaml: &str) -> (Proc, PathBuf) {
    let config = host.new_file_path("vrrpd", "yaml");
    fs::write(&config, config_yaml)
        .unwrap_or_else(|error| panic!("cannot write {}: {error}", config.display()));
    let log_filter = env::var("RUST_LOG").unwrap_or_else(|_| DEFAULT_LOG_FILTER.to_owned());
    let proc = host.spawn(
        &[
            path_str(&binary("vrrpd")),
            "-f",
            path_str(&config),
            "--node",
            host.name(),
            "--run-dir",
            path_str(run_dir),
        ],
        &[("RUST_LOG", &log_filter)],
    );
    (proc, config)
}

/// Reads a vrrpd state file: `None` while it does not exist. Panics when it
/// holds anything but JSON — vrrpd replaces it atomically, so a reader must
/// never see it half written.
pub fn read_vrrpd_state(path: &Path) -> Option<Value> {
    let bytes = match fs::read(path) {
        Ok(bytes) => bytes,
        Err(error) if error.kind() == ErrorKind::NotFound => return None,
        Err(error) => panic!("cannot read vrrpd's state file {}: {error}", path.display()),
    };
    let state = serde_json::from_slice(&bytes).unwrap_or_else(|error| {
        panic!(
            "vrrpd's state file {} is not valid JSON ({error}); it must be replaced atomically: {}",
            path.display(),
            String::from_utf8_lossy(&bytes)
        )
    });
    Some(state)
}
