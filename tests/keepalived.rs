//! The real keepalived (Debian's package), run in a lab host as the VRRP
//! peer that vrrpd must interoperate with.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::time::Duration;

use nix::sys::signal::Signal;

use crate::netns::Host;
use crate::process::Proc;
use crate::support::installed_program;

/// A keepalived running VRRP only, in the foreground, logging to its log
/// file, with pid files of its own so that several run on one machine.
pub struct Keepalived {
    proc: Proc,
    config: PathBuf,
}

impl Keepalived {
    /// Writes `config_text` (see [`crate::keepalived_config`]) to the lab
    /// directory and starts keepalived with it in `host`.
    pub fn start(host: &Host, config_text: &str) -> Keepalived {
        let program = installed_program("keepalived", "keepalived");
        let config = host.new_file_path("keepalived", "conf");
        fs::write(&config, config_text)
            .unwrap_or_else(|error| panic!("cannot write {}: {error}", config.display()));
        let pid_file = host.new_file_path("keepalived", "pid");
        let vrrp_pid_file = host.new_file_path("keepalived-vrrp", "pid");
        let proc = host.spawn(
            &[
                path_str(&program),
                "--dont-fork",
                "--log-console",
                "--log-detail",
                "--no-syslog",
                "--vrrp",
                // A dead VRRP child must stay dead, as a crash would.
                "--dont-respawn",
                "--use-file",
                path_str(&config),
                "--pid",
                path_str(&pid_file),
                "--vrrp_pid",
                path_str(&vrrp_pid_file),
            ],
            &[],
        );
        Keepalived { proc, config }
    }

    pub fn proc(&self) -> &Proc {
        &self.proc
    }

    pub fn proc_mut(&mut self) -> &mut Proc {
        &mut self.proc
    }

    /// The config file it runs.
    pub fn config(&self) -> &Path {
        &self.config
    }

    /// Stops it as an operator would (SIGTERM): it advertises priority 0
    /// and removes its virtual addresses. Panics unless it exits within
    /// `timeout`.
    pub fn stop(&mut self, timeout: Duration) -> ExitStatus {
        self.proc.kill(Signal::SIGTERM);
        self.proc.wait_timeout(timeout).unwrap_or_else(|| {
            panic!(
                "{} did not exit within {timeout:?} of SIGTERM; log {}",
                self.proc.label(),
                self.proc.log_path().display()
            )
        })
    }

    /// Kills it and its VRRP child at once (SIGKILL to the process group),
    /// as a crash would: it sends nothing more and leaves its virtual
    /// addresses behind.
    pub fn crash(&mut self) {
        self.proc.kill_group(Signal::SIGKILL);
        self.proc
            .wait_timeout(Duration::from_secs(5))
            .unwrap_or_else(|| panic!("{} survived SIGKILL for 5 s", self.proc.label()));
    }
}

/// Lab paths are made by the lab and are UTF-8.
pub(crate) fn path_str(path: &Path) -> &str {
    path.to_str()
        .unwrap_or_else(|| panic!("lab path {} is not UTF-8", path.display()))
}
