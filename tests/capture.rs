//! Packet captures in a lab host with tshark, read back field by field
//! with Wireshark's dissectors.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use nix::sys::signal::Signal;

use crate::keepalived::path_str;
use crate::netns::Host;
use crate::process::Proc;
use crate::support::{installed_program, wait_until};

/// How long tshark may take to start capturing, and to finish once told.
const TSHARK_TIMEOUT: Duration = Duration::from_secs(15);

/// tshark capturing on a host's `eth0` into a pcap file in the lab
/// directory, until [`Capture::stop`].
pub struct Capture {
    proc: Proc,
    file: PathBuf,
}

impl Capture {
    /// Starts tshark on `host`'s `eth0` with the capture (BPF) filter
    /// `filter`, and returns once it captures.
    pub fn start(host: &Host, filter: &str) -> Capture {
        let file = host.new_file_path("capture", "pcap");
        let proc = host.spawn(
            &[
                path_str(&tshark()),
                "-i",
                "eth0",
                "-f",
                filter,
                "-w",
                path_str(&file),
            ],
            &[],
        );
        wait_until(TSHARK_TIMEOUT, Duration::from_millis(20), || {
            proc.log().contains("Capturing on")
        })
        .unwrap_or_else(|| {
            panic!(
                "{} did not start capturing within {TSHARK_TIMEOUT:?}: {}",
                proc.label(),
                proc.log()
            )
        });
        Capture { proc, file }
    }

    /// Stops capturing (SIGINT, as Ctrl-C would) and waits until tshark
    /// has written the file. Panics unless it exits successfully.
    pub fn stop(&mut self) {
        self.proc.kill(Signal::SIGINT);
        let status = self
            .proc
            .wait_timeout(TSHARK_TIMEOUT)
            .unwrap_or_else(|| panic!("{} ignored SIGINT: {}", self.proc.label(), self.proc.log()));
        assert!(
            status.success(),
            "{} failed ({status}): {}",
            self.proc.label(),
            self.proc.log()
        );
    }

    /// `fields` (Wireshark field names) of each captured packet that
    /// matches the display filter `display_filter`, in capture order; a
    /// field the packet lacks is left out of its map.
    pub fn fields(&self, display_filter: &str, fields: &[&str]) -> Vec<BTreeMap<String, String>> {
        let mut command = Command::new(tshark());
        command
            .arg("-r")
            .arg(&self.file)
            .args(["-Y", display_filter])
            .args(["-T", "fields", "-E", "separator=/t"]);
        for field in fields {
            command.args(["-e", field]);
        }
        let output = command
            .output()
            .unwrap_or_else(|error| panic!("cannot run {command:?}: {error}"));
        assert!(
            output.status.success(),
            "{command:?} failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .map(|line| {
                fields
                    .iter()
                    .zip(line.split('\t'))
                    .filter(|(_, value)| !value.is_empty())
                    .map(|(field, value)| ((*field).to_owned(), value.to_owned()))
                    .collect()
            })
            .collect()
    }
}

fn tshark() -> PathBuf {
    installed_program("tshark", "tshark")
}
