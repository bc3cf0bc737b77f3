//! The lab's network: a switch namespace holding a bridge, and one namespace
//! per host joined to it by a veth pair, all built and removed with
//! iproute2's `ip`.

use std::fmt::Write as _;
use std::fs;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Once, OnceLock};
use std::thread;
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::Value;
use tempfile::TempDir;

use crate::process::{Proc, ProcessGroups};
use crate::support::{installed_program, wait_until};

/// Every lab namespace name starts with this, then the test process's pid.
const NAMESPACE_PREFIX: &str = "hpl";
/// The bridge in the switch namespace.
const BRIDGE: &str = "br0";
/// Each host's interface on the lab network.
const HOST_INTERFACE: &str = "eth0";
/// Labs made by this process so far; numbers the next one.
static LABS_MADE: AtomicU32 = AtomicU32::new(0);
/// How long a new host's interface may take to be usable.
const LINK_READY_TIMEOUT: Duration = Duration::from_secs(10);
/// The most text of one file printed when a test fails.
const LOG_TAIL_BYTES: usize = 64 * 1024;

/// What the hosts of one lab share: where files go, and what runs.
struct LabShared {
    dir: PathBuf,
    groups: Arc<ProcessGroups>,
    files_made: AtomicU32,
}

/// A lab network of hosts; see the crate documentation.
pub struct Lab {
    /// The namespaces created so far, the switch first.
    namespaces: Vec<String>,
    hosts: Vec<Host>,
    shared: Arc<LabShared>,
    /// Holds the logs and configs; removed last.
    dir: TempDir,
}

impl Lab {
    /// Builds a lab of `hosts` hosts, named h1, h2, …: host N has
    /// 10.99.0.N/24 and fd99::N/64 on its `eth0`, an IPv6 link-local
    /// address that is already usable (duplicate address detection is off
    /// in the lab), and `lo` up. Panics, after removing what it made, when
    /// the network cannot be built.
    pub fn new(hosts: usize) -> Lab {
        assert!(
            (1..=99).contains(&hosts),
            "a lab has 1 to 99 hosts, not {hosts}"
        );
        remove_stale_labs_once();
        let dir = tempfile::Builder::new()
            .prefix("hapair-lab-")
            .tempdir()
            .unwrap_or_else(|error| panic!("cannot create the lab's temporary directory: {error}"));
        let shared = Arc::new(LabShared {
            dir: dir.path().to_path_buf(),
            groups: Arc::default(),
            files_made: AtomicU32::new(0),
        });
        let mut lab = Lab {
            namespaces: Vec::new(),
            hosts: Vec::new(),
            shared,
            dir,
        };
        // Built in place: a panic from here on drops `lab`, which removes
        // whatever was made.
        let prefix = format!(
            "{NAMESPACE_PREFIX}{}-{}",
            std::process::id(),
            LABS_MADE.fetch_add(1, Ordering::Relaxed)
        );
        let switch = format!("{prefix}-sw");
        lab.add_namespace(&switch);
        ip(&[
            "-n",
            &switch,
            "link",
            "add",
            BRIDGE,
            "type",
            "bridge",
            "mcast_snooping",
            "0",
        ]);
        ip(&["-n", &switch, "link", "set", BRIDGE, "up"]);
        for index in 1..=hosts {
            let index = u8::try_from(index).expect("at most 99 hosts");
            let host = Host {
                name: format!("h{index}"),
                index,
                namespace: format!("{prefix}-h{index}"),
                shared: Arc::clone(&lab.shared),
            };
            lab.add_namespace(&host.namespace);
            host.connect_to(&switch);
            lab.hosts.push(host);
        }
        for host in &lab.hosts {
            host.wait_until_link_ready();
        }
        lab
    }

    fn add_namespace(&mut self, name: &str) {
        ip(&["netns", "add", name]);
        self.namespaces.push(name.to_owned());
    }

    /// Host `n`, counting from 1 as the addresses do (h1 is 10.99.0.1).
    pub fn host(&self, n: usize) -> &Host {
        n.checked_sub(1)
            .and_then(|index| self.hosts.get(index))
            .unwrap_or_else(|| panic!("the lab has hosts 1 to {}, not {n}", self.hosts.len()))
    }

    pub fn hosts(&self) -> &[Host] {
        &self.hosts
    }

    /// The lab's temporary directory: logs, configs, captures.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The names of the lab's namespaces, the switch's first.
    pub fn namespaces(&self) -> &[String] {
        &self.namespaces
    }

    /// Writes an executable (mode 0755) file `name` into the lab directory.
    pub fn write_executable(&self, name: &str, text: &str) -> PathBuf {
        let path = self.dir().join(name);
        fs::write(&path, text)
            .unwrap_or_else(|error| panic!("cannot write {}: {error}", path.display()));
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755))
            .unwrap_or_else(|error| panic!("cannot make {} executable: {error}", path.display()));
        path
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if thread::panicking() {
            eprintln!("{}", describe_files(self.dir.path()));
        }
        self.shared.groups.kill_all();
        for namespace in self.namespaces.iter().rev() {
            remove_namespace(namespace);
        }
    }
}

/// One host of a lab: a network namespace with `eth0` on the lab bridge.
/// Cheap to clone; a clone must not outlive its [`Lab`].
#[derive(Clone)]
pub struct Host {
    name: String,
    /// N in hN and in its addresses.
    index: u8,
    namespace: String,
    shared: Arc<LabShared>,
}

impl Host {
    /// h1, h2, …
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The network namespace's name, for `ip -n` and `ip netns exec`.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// 10.99.0.N
    pub fn ipv4(&self) -> Ipv4Addr {
        Ipv4Addr::new(10, 99, 0, self.index)
    }

    /// fd99::N
    pub fn ipv6(&self) -> Ipv6Addr {
        Ipv6Addr::new(0xfd99, 0, 0, 0, 0, 0, 0, u16::from(self.index))
    }

    /// The IPv6 link-local address of `eth0`, the source of its VRRPv3
    /// adverts.
    pub fn link_local(&self) -> Ipv6Addr {
        self.interface_addresses()
            .into_iter()
            .find_map(|address| match address.ip {
                IpAddr::V6(ip) if ip.is_unicast_link_local() => Some(ip),
                _ => None,
            })
            .unwrap_or_else(|| panic!("{}: eth0 has no IPv6 link-local address", self.name))
    }

    /// The MAC address of `eth0`, as `ip` writes it: `aa:bb:cc:dd:ee:ff`.
    pub fn mac(&self) -> String {
        self.link()
            .and_then(|link| link["address"].as_str().map(str::to_owned))
            .unwrap_or_else(|| panic!("{}: `ip -j link show` gives no eth0 address", self.name))
    }

    /// `eth0` as `ip -j link show` describes it; `None` when its output
    /// cannot be read.
    fn link(&self) -> Option<Value> {
        let output = ip(&[
            "-n",
            &self.namespace,
            "-j",
            "link",
            "show",
            "dev",
            HOST_INTERFACE,
        ]);
        let mut links: Value = serde_json::from_slice(&output.stdout).ok()?;
        Some(links.get_mut(0)?.take())
    }

    /// Every address on `eth0` with its prefix length, read over netlink
    /// (`ip -j addr show`).
    pub fn addresses(&self) -> Vec<(IpAddr, u8)> {
        self.interface_addresses()
            .into_iter()
            .map(|address| (address.ip, address.prefix_len))
            .collect()
    }

    /// True when `eth0` has `ip` (with any prefix length).
    pub fn has_address(&self, ip: IpAddr) -> bool {
        self.addresses().iter().any(|&(held, _)| held == ip)
    }

    fn interface_addresses(&self) -> Vec<InterfaceAddress> {
        let output = ip(&[
            "-n",
            &self.namespace,
            "-j",
            "addr",
            "show",
            "dev",
            HOST_INTERFACE,
        ]);
        parse_interface_addresses(&output.stdout).unwrap_or_else(|error| {
            panic!(
                "{}: cannot read `ip -j addr show` output: {error}: {}",
                self.name,
                String::from_utf8_lossy(&output.stdout)
            )
        })
    }

    /// Starts `argv` inside the host's namespace (`ip netns exec`), with
    /// `env` added to this process's environment, in a process group of its
    /// own; its stdout and stderr go to a log file in the lab directory.
    pub fn spawn(&self, argv: &[&str], env: &[(&str, &str)]) -> Proc {
        let program = argv
            .first()
            .unwrap_or_else(|| panic!("{}: spawn needs a program to run", self.name));
        let program_name = Path::new(program).file_name().map_or_else(
            || program.to_string(),
            |name| name.to_string_lossy().into_owned(),
        );
        let mut command = self.command(argv);
        command.envs(env.iter().copied());
        Proc::spawn(
            command,
            format!("{} {program_name}", self.name),
            self.new_file_path(&program_name, "log"),
            Arc::clone(&self.shared.groups),
        )
    }

    /// Runs `argv` inside the host's namespace to completion; panics with
    /// its output unless it succeeds.
    pub fn run(&self, argv: &[&str]) -> Output {
        run_checked(&mut self.command(argv))
    }

    /// Runs `argv` inside the host's namespace to completion, successful
    /// or not.
    pub fn output(&self, argv: &[&str]) -> Output {
        let mut command = self.command(argv);
        command
            .output()
            .unwrap_or_else(|error| panic!("{}: cannot run {command:?}: {error}", self.name))
    }

    fn command(&self, argv: &[&str]) -> Command {
        let mut command = Command::new(ip_program());
        command.args(["netns", "exec", &self.namespace]).args(argv);
        command
    }

    /// A fresh path in the lab directory for a file of this host:
    /// `<host>-<what>-<sequence>.<extension>`.
    pub fn new_file_path(&self, what: &str, extension: &str) -> PathBuf {
        let sequence = self.shared.files_made.fetch_add(1, Ordering::Relaxed);
        self.shared
            .dir
            .join(format!("{}-{what}-{sequence}.{extension}", self.name))
    }

    /// Creates the veth pair from the switch's bridge to this host's `eth0`
    /// and configures the host's end.
    fn connect_to(&self, switch: &str) {
        let ns = self.namespace.as_str();
        // Off before eth0 exists, so its addresses are usable at once.
        self.run(&[
            "sysctl",
            "-q",
            "-w",
            "net.ipv6.conf.all.accept_dad=0",
            "net.ipv6.conf.default.accept_dad=0",
        ]);
        let port = &self.name;
        ip(&[
            "-n",
            switch,
            "link",
            "add",
            port,
            "type",
            "veth",
            "peer",
            "name",
            HOST_INTERFACE,
            "netns",
            ns,
        ]);
        ip(&["-n", switch, "link", "set", port, "master", BRIDGE, "up"]);
        ip(&["-n", ns, "link", "set", "lo", "up"]);
        ip(&["-n", ns, "link", "set", HOST_INTERFACE, "up"]);
        ip(&[
            "-n",
            ns,
            "addr",
            "add",
            &format!("{}/24", self.ipv4()),
            "dev",
            HOST_INTERFACE,
        ]);
        ip(&[
            "-n",
            ns,
            "addr",
            "add",
            &format!("{}/64", self.ipv6()),
            "dev",
            HOST_INTERFACE,
            "nodad",
        ]);
    }

    /// Waits until `eth0` is up and has a link-local address that is no
    /// longer tentative.
    fn wait_until_link_ready(&self) {
        let ready = wait_until(LINK_READY_TIMEOUT, Duration::from_millis(20), || {
            let up = self
                .link()
                .is_some_and(|link| link["operstate"].as_str() == Some("UP"));
            up && self.interface_addresses().iter().any(|address| {
                matches!(address.ip, IpAddr::V6(ip) if ip.is_unicast_link_local())
                    && !address.tentative
            })
        });
        if ready.is_none() {
            panic!(
                "{}: eth0 was not up with a usable link-local address within {:?}: {}",
                self.name,
                LINK_READY_TIMEOUT,
                String::from_utf8_lossy(
                    &ip(&["-n", &self.namespace, "addr", "show", "dev", HOST_INTERFACE]).stdout
                )
            );
        }
    }
}

/// One address from `ip -j addr show`.
struct InterfaceAddress {
    ip: IpAddr,
    prefix_len: u8,
    tentative: bool,
}

/// Reads the addresses of the one interface in `ip -j addr show dev X`
/// output: `[{"ifname": …, "addr_info": [{"local": …, "prefixlen": …}]}]`.
fn parse_interface_addresses(json: &[u8]) -> Result<Vec<InterfaceAddress>, String> {
    let links: Value = serde_json::from_slice(json).map_err(|error| error.to_string())?;
    let infos = links[0]["addr_info"]
        .as_array()
        .ok_or("no addr_info list for the interface")?;
    infos
        .iter()
        .map(|info| {
            let ip = info["local"]
                .as_str()
                .and_then(|text| text.parse().ok())
                .ok_or_else(|| format!("address without a valid `local`: {info}"))?;
            let prefix_len = info["prefixlen"]
                .as_u64()
                .and_then(|len| u8::try_from(len).ok())
                .ok_or_else(|| format!("address without a valid `prefixlen`: {info}"))?;
            Ok(InterfaceAddress {
                ip,
                prefix_len,
                tentative: info["tentative"].as_bool().unwrap_or(false),
            })
        })
        .collect()
}

/// The path of iproute2's `ip`.
fn ip_program() -> &'static Path {
    static IP: OnceLock<PathBuf> = OnceLock::new();
    IP.get_or_init(|| installed_program("ip", "iproute2"))
}

/// Runs `ip ARGS`; panics with its output unless it succeeds.
fn ip(args: &[&str]) -> Output {
    run_checked(Command::new(ip_program()).args(args))
}

fn run_checked(command: &mut Command) -> Output {
    let output = command
        .output()
        .unwrap_or_else(|error| panic!("cannot run {command:?}: {error}"));
    if !output.status.success() {
        panic!(
            "{command:?} failed ({}):\nstdout: {}\nstderr: {}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    output
}

/// The names of every network namespace on the machine (`ip netns list`),
/// the lab's and anyone else's.
pub fn existing_namespaces() -> Vec<String> {
    let output = ip(&["netns", "list"]);
    // Lines look like "name (id: 3)" or just "name".
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .map(str::to_owned)
        .collect()
}

/// Kills every process inside `namespace`, then deletes it. Reports
/// failures instead of panicking: it runs while dropping a lab.
fn remove_namespace(namespace: &str) {
    match Command::new(ip_program())
        .args(["netns", "pids", namespace])
        .output()
    {
        Ok(output) => {
            for pid in String::from_utf8_lossy(&output.stdout)
                .split_whitespace()
                .filter_map(|pid| pid.parse::<i32>().ok())
            {
                match kill(Pid::from_raw(pid), Signal::SIGKILL) {
                    Ok(()) | Err(Errno::ESRCH) => {}
                    Err(error) => eprintln!("lab: cannot kill {pid} in {namespace}: {error}"),
                }
            }
        }
        Err(error) => eprintln!("lab: cannot list the processes in {namespace}: {error}"),
    }
    match Command::new(ip_program())
        .args(["netns", "delete", namespace])
        .output()
    {
        Ok(output) if output.status.success() => {}
        Ok(output) => eprintln!(
            "lab: cannot delete namespace {namespace}: {}",
            String::from_utf8_lossy(&output.stderr)
        ),
        Err(error) => eprintln!("lab: cannot delete namespace {namespace}: {error}"),
    }
}

/// Once per process: removes the namespaces of labs whose test process died
/// without cleaning up (SIGKILLed, say). Labs of live processes are kept.
fn remove_stale_labs_once() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        for namespace in existing_namespaces() {
            let owner = namespace
                .strip_prefix(NAMESPACE_PREFIX)
                .and_then(|rest| rest.split('-').next())
                .and_then(|pid| pid.parse::<i32>().ok());
            if let Some(pid) = owner
                && kill(Pid::from_raw(pid), None) == Err(Errno::ESRCH)
            {
                eprintln!("lab: removing {namespace}, left by process {pid} which is gone");
                remove_namespace(&namespace);
            }
        }
    });
}

/// Every text file under `dir`, with its name, for a failed test's output.
fn describe_files(dir: &Path) -> String {
    let mut files = Vec::new();
    collect_files(dir, &mut files);
    files.sort();
    let mut text = format!("===== lab files in {} =====\n", dir.display());
    for path in files {
        if path
            .extension()
            .is_some_and(|extension| extension == "pcap")
        {
            continue;
        }
        let bytes = fs::read(&path).unwrap_or_default();
        let tail = &bytes[bytes.len().saturating_sub(LOG_TAIL_BYTES)..];
        let _ = write!(
            text,
            "----- {} -----\n{}\n",
            path.display(),
            String::from_utf8_lossy(tail)
        );
    }
    text
}

fn collect_files(dir: &Path, files: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect_files(&path, files);
        } else {
            files.push(path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_addresses_from_ip_json() {
        let json = br#"[{"ifindex":2,"ifname":"eth0","addr_info":[
            {"family":"inet","local":"10.99.0.1","prefixlen":24,"scope":"global"},
            {"family":"inet6","local":"fd99::1","prefixlen":64,"nodad":true},
            {"family":"inet6","local":"fe80::1","prefixlen":64,"scope":"link","tentative":true}]}]"#;
        let addresses = parse_interface_addresses(json).expect("valid ip -j output");
        let summary: Vec<(String, u8, bool)> = addresses
            .iter()
            .map(|a| (a.ip.to_string(), a.prefix_len, a.tentative))
            .collect();
        assert_eq!(
            summary,
            [
                ("10.99.0.1".to_owned(), 24, false),
                ("fd99::1".to_owned(), 64, false),
                ("fe80::1".to_owned(), 64, true),
            ]
        );
    }

    #[test]
    fn rejects_ip_json_without_addresses() {
        assert!(parse_interface_addresses(br#"[{"ifname":"eth0"}]"#).is_err());
        assert!(parse_interface_addresses(b"not json").is_err());
    }
}
