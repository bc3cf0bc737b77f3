//! The whole storage service on lab hosts, as the end-to-end tests run it:
//! two storage hosts (h1, h2) and a client (h3) on the lab bridge. Each
//! storage host has a configuration directory holding resource `r0`
//! (replicad, protocol C, mirrored between 10.99.0.1 and 10.99.0.2) and its
//! vrrpd configuration, whose hooks make the MASTER the Primary: promote on
//! `notify_master`, demote on `notify_backup`, `notify_fault` and
//! `notify_stop`. The promoted host mounts the volume's ext4 and serves its
//! files over HTTP on the virtual IP with `scripts/fileserver.py`, whose
//! PUT answers only once the upload is fsync'd.
//!
//! The hook commands are a parameter ([`StorageOptions::hooks`]); each gets
//! a [`HookSite`] telling it where that host's configuration, run
//! directory and mount point are. [`project_hooks`] are the project's own,
//! `scripts/hooks/promote` and `demote`.
//!
//! The backing stores are plain files, or, with
//! [`StorageOptions::failing_disks`], a [`FailingDisk`] per host (nbdkit's
//! error filter behind nbdfuse) that a test makes fail and heal, its
//! metadata then external in an ordinary file. [`StoragePair::cut_replication`]
//! drops the replication traffic between the hosts while everything else
//! (VRRP, the client's HTTP) still flows.
//!
//! Also the client's side: [`in_client`] runs code with its sockets in the
//! client's namespace, [`http_put`] / [`http_get`] speak HTTP/1.0 to the
//! service, and [`Writer`] uploads files in the background and records
//! each one only once the server acknowledged it.
//!
//! Note on mounts: `ip netns exec` gives every process it starts a mount
//! namespace of its own, so the file system a hook mounts is seen by vrrpd,
//! the hooks and the HTTP server of that host only — and it goes away with
//! them when the host is killed. [`StorageHost::is_mounted`] reads the
//! mounts of the host's vrrpd (`/proc/PID/mounts`).

use std::fmt;
use std::fs::{self, File};
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use nix::sched::{CloneFlags, setns};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::Value;

use crate::keepalived::path_str;
use crate::netns::{Host, Lab};
use crate::process::process_is_alive;
use crate::replicad::{
    Finished, FuseExport, LoopDevice, NbdkitDisk, RESOURCE, ReplicadNode, path_arg, program,
    random_bytes, run_ok,
};
use crate::support::{binary, installed_program, wait_until};
use crate::vrrp_config::{Hooks, VrrpInstance, vrrpd_config};
use crate::vrrpd::Vrrpd;

/// The service's virtual address.
pub const VIRTUAL_IP: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 100);
/// The HTTP port the file server listens on.
pub const HTTP_PORT: u16 = 80;
/// The VRRP instance of the service.
pub const INSTANCE: &str = "VI_STORAGE";
/// The lab host number of the client.
const CLIENT_HOST: usize = 3;
/// The default size of each host's backing file.
pub const BACKING_SIZE: u64 = 64 << 20;
/// The TCP port replicad replicates on (both nodes listen on it).
pub const REPLICATION_PORT: u16 = 7789;
/// How long a sync, a resync or a promotion may take.
pub const SETTLE_TIMEOUT: Duration = Duration::from_secs(90);
const POLL: Duration = Duration::from_millis(20);

/// Where one storage host keeps things: what a hook needs to know.
pub struct HookSite<'a> {
    /// The node's name (also the lab host's name): h1 or h2.
    pub node: &'a str,
    /// Holds `r0.yaml`.
    pub config_dir: &'a Path,
    /// replicad's run directory (its control socket, the NBD socket).
    pub run_dir: &'a Path,
    /// Where the file system is mounted on the MASTER.
    pub mountpoint: &'a Path,
    /// A directory of this host for the service's own files (pid files,
    /// logs).
    pub service_dir: &'a Path,
}

/// Makes the argv of one hook for one host.
pub type HookArgv = fn(&HookSite) -> Vec<String>;

/// The vrrpd hooks of the service.
#[derive(Clone, Copy)]
pub struct ServiceHooks {
    /// `notify_master`.
    pub promote: HookArgv,
    /// `notify_backup`, `notify_fault` and `notify_stop`.
    pub demote: HookArgv,
}

/// How the pair is built.
#[derive(Clone)]
pub struct StorageOptions {
    /// 2 or 3.
    pub vrrp_version: u8,
    pub advert_int: Duration,
    pub backing_size: u64,
    pub hooks: ServiceHooks,
    /// replicad handlers (drbd.conf names, e.g. `split-brain`) that append
    /// their name and environment to the node's record; see
    /// [`StorageHost::handler_calls`].
    pub recorded_handlers: Vec<&'static str>,
    /// Each host's backing store is a [`FailingDisk`] of `backing_size`
    /// bytes ([`StorageHost::failing_disk`]) rather than a plain file, with
    /// the metadata external (an ordinary file beside the node's), so that
    /// only data I/O meets the disk's errors.
    pub failing_disks: bool,
    /// The resource's `disk-timeout`; `None` waits for ever (the default).
    pub disk_timeout: Option<Duration>,
}

impl StorageOptions {
    /// VRRPv3 with 0.2 s adverts (fast, and steady on a loaded machine),
    /// the default backing size, `hooks`.
    pub fn new(hooks: ServiceHooks) -> StorageOptions {
        StorageOptions {
            vrrp_version: 3,
            advert_int: Duration::from_millis(200),
            backing_size: BACKING_SIZE,
            hooks,
            recorded_handlers: Vec::new(),
            failing_disks: false,
            disk_timeout: None,
        }
    }

    /// The VRRP instance of host `index` (1 or 2): priority 150 for h1,
    /// 100 for h2, nopreempt (a host that comes back does not take the
    /// service back), the hooks for `site`.
    fn vrrp_instance(&self, index: usize, site: &HookSite) -> VrrpInstance {
        let promote = (self.hooks.promote)(site);
        let demote = (self.hooks.demote)(site);
        VrrpInstance {
            name: INSTANCE.to_owned(),
            version: self.vrrp_version,
            advert_int: self.advert_int,
            nopreempt: true,
            hooks: Hooks {
                notify_master: promote,
                notify_backup: demote.clone(),
                notify_fault: demote.clone(),
                notify_stop: demote,
                notify: Vec::new(),
                notify_timeout: Some(SETTLE_TIMEOUT),
            },
            ..VrrpInstance::new(60, if index == 1 { 150 } else { 100 }, "10.99.0.100/24")
        }
    }
}

/// One storage host: its replicad node (config, backing file, daemon) and
/// its vrrpd.
pub struct StorageHost {
    // Fields drop in order: vrrpd (and the hooks' service) first.
    vrrpd: Option<Vrrpd>,
    vrrp_yaml: String,
    pub node: ReplicadNode,
    /// The backing store when it is a [`FailingDisk`]; dropped after the
    /// node, whose daemon uses it.
    disk: Option<FailingDisk>,
    host: Host,
    config_dir: PathBuf,
    run_dir: PathBuf,
    mountpoint: PathBuf,
    service_dir: PathBuf,
}

impl StorageHost {
    pub fn host(&self) -> &Host {
        &self.host
    }

    pub fn name(&self) -> &str {
        self.host.name()
    }

    /// What its hooks are told.
    pub fn site(&self) -> HookSite<'_> {
        HookSite {
            node: self.host.name(),
            config_dir: &self.config_dir,
            run_dir: &self.run_dir,
            mountpoint: &self.mountpoint,
            service_dir: &self.service_dir,
        }
    }

    pub fn vrrpd(&self) -> &Vrrpd {
        self.vrrpd.as_ref().expect("vrrpd was started on this host")
    }

    pub fn vrrpd_mut(&mut self) -> &mut Vrrpd {
        self.vrrpd.as_mut().expect("vrrpd was started on this host")
    }

    /// The state of the service's VRRP instance, once vrrpd wrote one.
    /// `None` too once vrrpd was killed (its last state file stays).
    pub fn vrrp_state(&self) -> Option<String> {
        let vrrpd = self.vrrpd.as_ref()?;
        if !process_is_alive(vrrpd.proc().pid()) {
            return None;
        }
        vrrpd.instance_state(INSTANCE)
    }

    /// The backing store, when the pair was built with
    /// [`StorageOptions::failing_disks`].
    pub fn failing_disk(&self) -> Option<&FailingDisk> {
        self.disk.as_ref()
    }

    /// The file holding the volume's data: byte N of the volume is byte N
    /// of it (the failing disk, or the backing file with internal
    /// metadata).
    pub fn data_path(&self) -> PathBuf {
        self.disk.as_ref().map_or_else(
            || self.node.backing_path().to_path_buf(),
            |disk| disk.disk.file(),
        )
    }

    pub fn holds_vip(&self) -> bool {
        self.host.has_address(IpAddr::V4(VIRTUAL_IP))
    }

    /// `haadm status --json` of `r0`, or `None` while replicad does not
    /// answer (not running).
    pub fn status(&self) -> Option<Value> {
        let finished = self.node.haadm(&["status", RESOURCE, "--json"]);
        if finished.code() != Some(0) {
            return None;
        }
        let list: Value = serde_json::from_str(&finished.stdout).ok()?;
        list.get(0).cloned()
    }

    /// `role` of `r0`: Primary or Secondary (`None`: replicad not running).
    pub fn role(&self) -> Option<String> {
        self.status()?["role"].as_str().map(str::to_owned)
    }

    /// True when the file system is mounted where the hooks mount it, in
    /// the mount namespace of the host's vrrpd (see the module docs).
    pub fn is_mounted(&self) -> bool {
        let Some(vrrpd) = &self.vrrpd else {
            return false;
        };
        let mounts =
            fs::read_to_string(format!("/proc/{}/mounts", vrrpd.proc().pid())).unwrap_or_default();
        let target = path_str(&self.mountpoint);
        mounts
            .lines()
            .any(|line| line.split_whitespace().nth(1) == Some(target))
    }

    /// The calls of the recorded `handler` (see
    /// [`StorageOptions::recorded_handlers`]), each as its lines:
    /// `HANDLER=name`, then the `DRBD_*` and `HAPAIR_*` variables.
    pub fn handler_calls(&self, handler: &str) -> Vec<String> {
        fs::read_to_string(handler_record_beside(self.node.backing_path()))
            .unwrap_or_default()
            .split("--\n")
            .filter(|call| call.starts_with(&format!("HANDLER={handler}\n")))
            .map(str::to_owned)
            .collect()
    }

    /// `haadm check` on this host, with its vrrpd's state file.
    pub fn check(&self) -> Finished {
        let state = self.vrrpd().state_path();
        self.node
            .haadm(&["check", "--vrrp-state", path_str(&state)])
    }

    /// Starts vrrpd with the host's configuration (again, after a stop or
    /// a kill).
    pub fn start_vrrpd(&mut self) {
        match &mut self.vrrpd {
            Some(vrrpd) => vrrpd.restart(&self.vrrp_yaml),
            None => self.vrrpd = Some(Vrrpd::start(&self.host, &self.vrrp_yaml)),
        }
    }
}

/// The storage pair and its client; see the module docs.
pub struct StoragePair {
    // Fields drop in order: the hosts (daemons, hooks) before the lab.
    hosts: Vec<StorageHost>,
    lab: Lab,
}

impl StoragePair {
    /// Builds the lab (h1, h2 and the client h3), writes each storage
    /// host's configuration, creates the metadata, brings `r0` up on both,
    /// skips the initial sync of the fresh pair (`new-current-uuid
    /// --clear-bitmap`: both disks hold the same zeros), makes the ext4
    /// through h1's export, and leaves both Secondary. vrrpd is not
    /// started: see [`StoragePair::start_service`].
    pub fn new(options: StorageOptions) -> StoragePair {
        let lab = Lab::new(3);
        let hosts = [1, 2]
            .map(|index| storage_host(&lab, index, &options))
            .into();
        let pair = StoragePair { hosts, lab };
        wait_for("the fresh nodes to connect", SETTLE_TIMEOUT, || {
            pair.hosts.iter().all(|host| {
                host.status()
                    .is_some_and(|status| status["peer"]["connection"] == "Connected")
            })
        });
        let h1 = &pair.hosts[0];
        h1.node
            .haadm(&["new-current-uuid", "--clear-bitmap", RESOURCE])
            .expect_code(0);
        pair.wait_until_in_sync();
        h1.node.haadm(&["primary", RESOURCE]).expect_code(0);
        make_file_system(&h1.node);
        h1.node.haadm(&["secondary", RESOURCE]).expect_code(0);
        pair
    }

    /// Starts vrrpd on h1, then on h2, and waits until h1 is MASTER and
    /// the service answers on the virtual IP.
    pub fn start_service(&mut self) {
        self.hosts[0].start_vrrpd();
        let h1 = &self.hosts[0];
        wait_for("h1 to become MASTER", SETTLE_TIMEOUT, || {
            h1.vrrp_state().as_deref() == Some("MASTER")
        });
        self.hosts[1].start_vrrpd();
        let h2 = &self.hosts[1];
        wait_for("h2 to become BACKUP", SETTLE_TIMEOUT, || {
            h2.vrrp_state().as_deref() == Some("BACKUP")
        });
        self.wait_until_serving("the first promotion");
    }

    /// Storage host 1 or 2.
    pub fn host(&self, index: usize) -> &StorageHost {
        &self.hosts[index - 1]
    }

    pub fn host_mut(&mut self, index: usize) -> &mut StorageHost {
        &mut self.hosts[index - 1]
    }

    /// The client's lab host.
    pub fn client(&self) -> &Host {
        self.lab.host(CLIENT_HOST)
    }

    /// The index (1 or 2) of the host whose vrrpd is MASTER, if exactly
    /// one is.
    pub fn master(&self) -> Option<usize> {
        let masters: Vec<usize> = (1..=2)
            .filter(|&index| self.host(index).vrrp_state().as_deref() == Some("MASTER"))
            .collect();
        (masters.len() == 1).then(|| masters[0])
    }

    /// Waits until one host holds the virtual IP, is Primary, has the file
    /// system mounted, and the client's GET / through the virtual IP
    /// answers 200; panics otherwise, naming `what` and showing the
    /// hosts' state.
    pub fn wait_until_serving(&self, what: &str) -> usize {
        let mut serving = None;
        let found = wait_until(SETTLE_TIMEOUT, Duration::from_millis(50), || {
            serving = (1..=2).find(|&index| {
                let host = self.host(index);
                host.holds_vip() && host.role().as_deref() == Some("Primary") && host.is_mounted()
            });
            serving.is_some() && in_client(self, || http_get("").is_ok())
        });
        if found.is_none() {
            panic!(
                "{what}: the service did not come up within {SETTLE_TIMEOUT:?}\n{}",
                self.describe()
            );
        }
        serving.expect("found")
    }

    /// Waits until both nodes are connected, UpToDate on both sides.
    pub fn wait_until_in_sync(&self) {
        let synced = wait_until(SETTLE_TIMEOUT, POLL, || {
            self.hosts
                .iter()
                .all(|host| host.status().is_some_and(|status| in_sync(&status)))
        });
        if synced.is_none() {
            panic!(
                "the nodes were not in sync within {SETTLE_TIMEOUT:?}\n{}",
                self.describe()
            );
        }
    }

    /// Cuts host `index` off the lab network (its eth0 down) and SIGKILLs
    /// every process of its namespace at once, as a power loss would:
    /// nothing it runs gets to send a last packet. Reaps the daemons, and
    /// takes down what the kernel keeps of the host's mounts (see
    /// [`StoragePair::kill_processes`]).
    pub fn kill_host(&mut self, index: usize) {
        set_link(&self.hosts[index - 1].host, "down");
        self.kill_processes(index);
        let host = &mut self.hosts[index - 1];
        if let Some(vrrpd) = &mut host.vrrpd {
            vrrpd.crash();
        }
        host.node.crash();
    }

    /// SIGKILLs every process of host `index` and waits until they are
    /// gone. The mount namespace of its vrrpd (where the hooks mounted the
    /// file system over nbdfuse and a loop device) is held open meanwhile
    /// and let go only after: whichever process is last to leave a mount
    /// namespace unmounts its file systems, and were that nbdfuse, the
    /// ext4's last flush would wait forever on the FUSE server that is
    /// exiting. Then the loop devices left behind are detached. Never
    /// panics (it also runs while a test unwinds).
    fn kill_processes(&self, index: usize) {
        let host = &self.hosts[index - 1];
        let vrrpd_pid = host
            .vrrpd
            .as_ref()
            .map(|vrrpd| vrrpd.proc().pid())
            .filter(|&pid| process_is_alive(pid));
        let mount_namespace =
            vrrpd_pid.and_then(|pid| File::open(format!("/proc/{pid}/ns/mnt")).ok());
        let loops = vrrpd_pid
            .map(|pid| loop_devices_under(pid, host.node.dir()))
            .unwrap_or_default();
        let namespace = host.host.namespace();
        for pid in namespace_pids(namespace) {
            // Gone already is fine.
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
        if wait_until(Duration::from_secs(10), POLL, || {
            namespace_pids(namespace).is_empty()
        })
        .is_none()
        {
            eprintln!(
                "lab: processes of {} survived SIGKILL for 10 s",
                host.name()
            );
        }
        drop(mount_namespace);
        for device in loops {
            let _ = std::process::Command::new(program("losetup"))
                .args(["-d", &device])
                .status();
        }
    }
    /// Brings a killed host back as a rebooted one would: the virtual IP
    /// its dead vrrpd left is removed, its link comes up, replicad starts
    /// and brings `r0` up (the resync makes it SyncTarget), and once both
    /// nodes are in sync, vrrpd starts and settles as BACKUP.
    pub fn revive_host(&mut self, index: usize) {
        let host = &mut self.hosts[index - 1];
        remove_address(&host.host, "10.99.0.100/24");
        set_link(&host.host, "up");
        host.node.start();
        host.node.haadm(&["up", RESOURCE]).expect_code(0);
        self.wait_until_in_sync();
        let host = &mut self.hosts[index - 1];
        host.start_vrrpd();
        let host = &self.hosts[index - 1];
        wait_for(
            "the revived host to settle as BACKUP",
            SETTLE_TIMEOUT,
            || host.vrrp_state().as_deref() == Some("BACKUP"),
        );
    }

    /// Cuts (`true`) or restores the path between h1 and h2 while both
    /// keep reaching the client: their ports on the lab bridge are made
    /// `isolated` (isolated ports forward only to ports that are not).
    pub fn partition(&self, cut: bool) {
        let switch = &self.lab.namespaces()[0];
        for host in &self.hosts {
            run_ok(&[
                path_str(&installed_program("bridge", "iproute2")),
                "-n",
                switch,
                "link",
                "set",
                "dev",
                host.name(),
                "isolated",
                if cut { "on" } else { "off" },
            ]);
        }
    }

    /// Drops the replication traffic between h1 and h2 (TCP to or from
    /// [`REPLICATION_PORT`]) from now until the returned cut is healed or
    /// dropped, silently, as a broken path would: nothing is refused or
    /// reset. VRRP, ARP and the client's traffic still flow. See
    /// [`ReplicationCut`] for how.
    pub fn cut_replication(&self) -> ReplicationCut {
        let mut cut = ReplicationCut {
            namespaces: Vec::new(),
        };
        for host in &self.hosts {
            // Recorded first: should a step fail, the cut's Drop removes
            // what was put in place.
            cut.namespaces.push(host.host.namespace().to_owned());
            drop_replication_packets(host.host.namespace());
        }
        cut
    }

    /// Makes the client send whatever it sends to the virtual IP to host
    /// `index`'s MAC address (a permanent neighbour entry), whoever else
    /// holds the address.
    pub fn pin_client_to(&self, index: usize) {
        let mac = self.host(index).host.mac();
        self.client().run(&[
            "ip",
            "neigh",
            "replace",
            "10.99.0.100",
            "lladdr",
            &mac,
            "dev",
            "eth0",
            "nud",
            "permanent",
        ]);
    }

    /// Undoes [`StoragePair::pin_client_to`]: the client resolves the
    /// virtual IP with ARP again.
    pub fn unpin_client(&self) {
        self.client()
            .run(&["ip", "neigh", "del", "10.99.0.100", "dev", "eth0"]);
    }

    /// Stops vrrpd on both hosts as an operator would (SIGTERM; the
    /// MASTER's demote hook unmounts and demotes), backup first, and
    /// waits until both nodes are Secondary and in sync.
    pub fn stop_service(&mut self) {
        let master = self.master();
        let order: Vec<usize> = match master {
            Some(1) => vec![2, 1],
            _ => vec![1, 2],
        };
        for index in order {
            if let Some(vrrpd) = &mut self.hosts[index - 1].vrrpd
                && vrrpd.proc_mut().is_running()
            {
                vrrpd.stop(SETTLE_TIMEOUT);
            }
        }
        wait_for("both nodes Secondary", SETTLE_TIMEOUT, || {
            self.hosts
                .iter()
                .all(|host| host.role().as_deref() == Some("Secondary"))
        });
        self.wait_until_in_sync();
    }

    /// Compares the data area (the volume's usable size) of both backing
    /// stores; the metadata (behind it, or in a file of its own) is each
    /// node's own. Panics at the first difference.
    pub fn assert_backing_stores_identical(&self) {
        let size = self.hosts[0].status().expect("h1's replicad answers")["size"]
            .as_u64()
            .expect("status has the size");
        let (mut first, mut second) = (
            File::open(self.hosts[0].data_path()).expect("open h1's backing store"),
            File::open(self.hosts[1].data_path()).expect("open h2's backing store"),
        );
        let (mut a, mut b) = (vec![0u8; 1 << 20], vec![0u8; 1 << 20]);
        let mut offset = 0u64;
        while offset < size {
            let len = usize::try_from((size - offset).min(1 << 20)).expect("fits");
            first
                .read_exact(&mut a[..len])
                .expect("read h1's backing file");
            second
                .read_exact(&mut b[..len])
                .expect("read h2's backing file");
            if a[..len] != b[..len] {
                let at = (0..len).find(|&i| a[i] != b[i]).expect("a difference");
                panic!(
                    "the backing stores differ at byte {} of the {size}-byte volume",
                    offset + at as u64
                );
            }
            offset += len as u64;
        }
    }

    /// Runs `haadm verify` from h1 and waits for it to end; returns the
    /// bytes it found out of sync.
    pub fn verify(&self) -> u64 {
        let (h1, h2) = (&self.hosts[0].node, &self.hosts[1].node);
        let finished_before = h1.daemon().log().matches("online verify finished").count();
        h1.haadm(&["verify", RESOURCE]).expect_code(0);
        wait_for("the online verify", SETTLE_TIMEOUT, || {
            h1.daemon().log().matches("online verify finished").count() > finished_before
        });
        self.wait_until_in_sync();
        let found = |node: &ReplicadNode| {
            node.status()["peer"]["verify_out_of_sync"]
                .as_u64()
                .expect("status has peer.verify_out_of_sync")
        };
        let (source, target) = (found(h1), found(h2));
        assert_eq!(
            source, target,
            "both ends of the verify count the same bytes"
        );
        source
    }

    /// Every host's VRRP state, role, link and mount, for messages.
    pub fn describe(&self) -> String {
        self.hosts
            .iter()
            .map(|host| {
                format!(
                    "{}: vrrp {:?}, holds VIP {}, mounted {}, status {}\n",
                    host.name(),
                    host.vrrp_state(),
                    host.holds_vip(),
                    host.is_mounted(),
                    host.status()
                        .map_or("(replicad down)".to_owned(), |s| s.to_string())
                )
            })
            .collect()
    }
}

impl Drop for StoragePair {
    /// Takes each host down as [`StoragePair::kill_processes`] does, so that
    /// a test ending with the service up (or panicking) leaves no mount or
    /// loop device stuck behind.
    fn drop(&mut self) {
        // A process with requests stuck in a paused disk cannot die.
        for host in &self.hosts {
            if let Some(disk) = &host.disk {
                disk.resume_quietly();
            }
        }
        for index in 1..=self.hosts.len() {
            self.kill_processes(index);
        }
    }
}

/// The replication traffic of the storage hosts being dropped: on each
/// host's eth0, while the cut lasts, an HTB root qdisc sends TCP packets
/// to or from [`REPLICATION_PORT`] (two u32 filters) to a class whose
/// queue is a `pfifo` of limit 0, which drops every packet it is given;
/// everything else goes to a default class with room to spare (10 Gbit/s).
/// This needs only iproute2's `tc` and the kernel's HTB and u32 (the lab
/// has no nftables or iptables), and lives in the hosts' namespaces only.
/// [`ReplicationCut::heal`] removes the qdiscs and says how many packets
/// were dropped; dropping the cut unhealed (a panicking test) removes them
/// too.
pub struct ReplicationCut {
    namespaces: Vec<String>,
}

impl ReplicationCut {
    /// The packets the cut dropped so far, on both hosts together.
    pub fn dropped(&self) -> u64 {
        self.namespaces
            .iter()
            .map(|namespace| dropped_replication_packets(namespace))
            .sum()
    }

    /// Lets the replication traffic through again; returns the number of
    /// packets the cut dropped, on both hosts together.
    pub fn heal(mut self) -> u64 {
        let dropped = self.dropped();
        // Each namespace leaves the list once healed: should a step fail,
        // Drop removes the rest.
        while let Some(namespace) = self.namespaces.last() {
            run_ok(&[
                tc_program(),
                "-n",
                namespace,
                "qdisc",
                "del",
                "dev",
                "eth0",
                "root",
            ]);
            self.namespaces.pop();
        }
        dropped
    }
}

impl Drop for ReplicationCut {
    /// Removes what [`ReplicationCut::heal`] did not; never panics (it
    /// also runs while a test unwinds). A namespace already gone took its
    /// qdiscs with it.
    fn drop(&mut self) {
        for namespace in &self.namespaces {
            let _ = std::process::Command::new(tc_program())
                .args(["-n", namespace, "qdisc", "del", "dev", "eth0", "root"])
                .stderr(std::process::Stdio::null())
                .status();
        }
    }
}

fn tc_program() -> &'static str {
    static TC: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    path_str(TC.get_or_init(|| installed_program("tc", "iproute2")))
}

/// Puts the qdiscs and filters of a [`ReplicationCut`] on eth0 of
/// network namespace `namespace`.
fn drop_replication_packets(namespace: &str) {
    let port = REPLICATION_PORT.to_string();
    let tc = |args: &[&str]| {
        let mut argv = vec![tc_program(), "-n", namespace];
        argv.extend_from_slice(args);
        run_ok(&argv);
    };
    tc(&[
        "qdisc", "add", "dev", "eth0", "root", "handle", "1:", "htb", "default", "1",
    ]);
    tc(&[
        "class", "add", "dev", "eth0", "parent", "1:", "classid", "1:1", "htb", "rate", "10gbit",
        "quantum", "200000",
    ]);
    tc(&[
        "class", "add", "dev", "eth0", "parent", "1:", "classid", "1:2", "htb", "rate", "8bit",
        "quantum", "1514",
    ]);
    tc(&[
        "qdisc", "add", "dev", "eth0", "parent", "1:2", "handle", "2:", "pfifo", "limit", "0",
    ]);
    for direction in ["dport", "sport"] {
        tc(&[
            "filter", "add", "dev", "eth0", "parent", "1:", "protocol", "ip", "prio", "1", "u32",
            "match", "ip", "protocol", "6", "0xff", "match", "ip", direction, &port, "0xffff",
            "flowid", "1:2",
        ]);
    }
}

/// The packets the dropping queue of a [`ReplicationCut`] on eth0 of
/// `namespace` dropped (`tc -s -j qdisc show`, the qdisc with handle 2:).
fn dropped_replication_packets(namespace: &str) -> u64 {
    let shown = run_ok(&[
        tc_program(),
        "-n",
        namespace,
        "-s",
        "-j",
        "qdisc",
        "show",
        "dev",
        "eth0",
    ]);
    let qdiscs: Value = serde_json::from_str(&shown.stdout)
        .unwrap_or_else(|error| panic!("tc -j printed no JSON ({error}): {}", shown.stdout));
    qdiscs
        .as_array()
        .into_iter()
        .flatten()
        .find(|qdisc| qdisc["handle"] == "2:")
        .and_then(|qdisc| qdisc["drops"].as_u64())
        .unwrap_or_else(|| panic!("{namespace}: no dropping qdisc 2: on eth0: {qdiscs}"))
}

/// A backing disk that fails or hangs on demand: nbdkit's memory plugin
/// behind its pause and error filters, exposed as a regular file by
/// nbdfuse ([`NbdkitDisk`]); every request to it fails with EIO while a
/// trigger file exists, and waits while it is paused (as on a disk whose
/// controller stopped answering). Its content lives as long as the disk,
/// whatever happens to the node using it (a killed host's disk keeps what
/// was written to it). Dropping it resumes it first, so that the teardown
/// of a failed test does not hang on it.
pub struct FailingDisk {
    pub disk: NbdkitDisk,
    trigger: PathBuf,
    pause_control: PathBuf,
}

impl FailingDisk {
    /// A 64 MiB disk.
    pub fn start() -> FailingDisk {
        FailingDisk::with_size(64 << 20)
    }

    /// A disk of `size` bytes.
    pub fn with_size(size: u64) -> FailingDisk {
        let disk = NbdkitDisk::start(|dir| {
            vec![
                "--filter=pause".into(),
                "--filter=error".into(),
                "memory".into(),
                size.to_string(),
                "error=EIO".into(),
                "error-rate=100%".into(),
                format!("error-file={}", path_arg(&failing_disk_trigger(dir))),
                format!(
                    "pause-control={}",
                    path_arg(&failing_disk_pause_control(dir))
                ),
            ]
        });
        let trigger = failing_disk_trigger(disk.dir());
        let pause_control = failing_disk_pause_control(disk.dir());
        FailingDisk {
            disk,
            trigger,
            pause_control,
        }
    }

    /// Every request to the disk fails from now on.
    pub fn fail(&self) {
        fs::write(&self.trigger, b"")
            .unwrap_or_else(|error| panic!("cannot create {}: {error}", self.trigger.display()));
    }

    /// The disk works again.
    pub fn heal(&self) {
        fs::remove_file(&self.trigger)
            .unwrap_or_else(|error| panic!("cannot remove {}: {error}", self.trigger.display()));
    }

    /// Drops the disk file's pages from the page cache, so that the next
    /// read of them asks the disk.
    pub fn evict_cache(&self) {
        let input = format!("if={}", path_arg(&self.disk.file()));
        run_ok(&["dd", &input, "iflag=nocache", "count=0", "status=none"]);
    }

    /// True once nbdkit has failed a request on purpose.
    pub fn has_failed_requests(&self) -> bool {
        self.disk.server_log().contains("injecting EIO error")
    }

    /// Requests from now on wait until [`Self::resume`].
    pub fn pause(&self) {
        self.pause_command(b'p')
            .expect("the pause filter paused the disk");
    }

    /// Requests are served again, those that waited first.
    pub fn resume(&self) {
        self.pause_command(b'r')
            .expect("the pause filter resumed the disk");
    }

    /// Resumes the disk (if paused) when the guard drops: declared after
    /// what uses the disk, it drops first, also when a test panics, so that
    /// no process is left waiting on the disk while it is stopped (a
    /// process with requests stuck in the disk cannot even die).
    pub fn resumed_on_drop(&self) -> ResumeOnDrop<'_> {
        ResumeOnDrop(self)
    }

    /// [`Self::resume`] for cleaning up: a disk not paused, or a filter
    /// gone already, is fine.
    fn resume_quietly(&self) {
        let _ = self.pause_command(b'r');
    }

    /// Sends one command byte to the pause filter and waits for its echo
    /// in upper case (for a pause, once the requests in progress are done).
    fn pause_command(&self, command: u8) -> std::io::Result<()> {
        let mut control = std::os::unix::net::UnixStream::connect(&self.pause_control)?;
        control.set_read_timeout(Some(Duration::from_secs(30)))?;
        control.write_all(&[command])?;
        let mut echo = [0u8];
        control.read_exact(&mut echo)?;
        if echo[0] == command.to_ascii_uppercase() {
            Ok(())
        } else {
            Err(std::io::Error::other(format!(
                "the pause filter answered {:?} to {:?}",
                echo[0] as char, command as char
            )))
        }
    }
}

impl Drop for FailingDisk {
    fn drop(&mut self) {
        self.resume_quietly();
    }
}

/// See [`FailingDisk::resumed_on_drop`].
pub struct ResumeOnDrop<'a>(&'a FailingDisk);

impl Drop for ResumeOnDrop<'_> {
    fn drop(&mut self) {
        self.0.resume_quietly();
    }
}

fn failing_disk_trigger(dir: &Path) -> PathBuf {
    dir.join("fail-now")
}

fn failing_disk_pause_control(dir: &Path) -> PathBuf {
    dir.join("pause.sock")
}

/// Host `index`'s configuration and replicad node, up and connecting.
fn storage_host(lab: &Lab, index: usize, options: &StorageOptions) -> StorageHost {
    let host = lab.host(index).clone();
    let disk = options
        .failing_disks
        .then(|| FailingDisk::with_size(options.backing_size));
    let data = disk.as_ref().map(|disk| disk.disk.file());
    // With a disk of its own, the node's backing file is left empty: its
    // place only names where the metadata and the handler record go.
    let backing_size = if data.is_some() {
        0
    } else {
        options.backing_size
    };
    let mut node = ReplicadNode::with_config(
        host.name(),
        Some(host.namespace()),
        backing_size,
        |backing| resource_yaml(backing, data.as_deref(), options),
    );
    let mountpoint = node.dir().join("mnt");
    let service_dir = node.dir().join("service");
    for dir in [&mountpoint, &service_dir] {
        fs::create_dir(dir)
            .unwrap_or_else(|error| panic!("cannot create {}: {error}", dir.display()));
    }
    node.start();
    node.haadm(&["up", RESOURCE]).expect_code(0);
    let mut storage = StorageHost {
        vrrpd: None,
        vrrp_yaml: String::new(),
        config_dir: node.config_dir(),
        run_dir: node.run_dir(),
        node,
        disk,
        host,
        mountpoint,
        service_dir,
    };
    let yaml = vrrpd_config(&[options.vrrp_instance(index, &storage.site())]);
    storage.vrrp_yaml = yaml;
    storage
}

/// `r0` between h1 (10.99.0.1) and h2 (10.99.0.2) on
/// [`REPLICATION_PORT`], its data on `data` with the metadata in a file
/// beside `backing` when given, else on `backing` with internal metadata:
/// protocol C, online
/// verify, a dead peer noticed within about 4 s (ping-int 3 s + ping-timeout 1 s; a
/// request unanswered for 2.5 s sends a ping at once), split brain left to the
/// operator, a resync of 10 MiB/s while the client writes (the default,
/// 250 KiB/s, would take minutes over the hot extents of a crashed
/// Primary), the options' `disk-timeout`, and their recorded handlers
/// writing to the handler record beside `backing`.
fn resource_yaml(backing: &Path, data: Option<&Path>, options: &StorageOptions) -> String {
    let disk = path_str(data.unwrap_or(backing));
    let meta_disk = match data {
        Some(_) => path_str(&backing.with_extension("md")).to_owned(),
        None => "internal".to_owned(),
    };
    let record = handler_record_beside(backing);
    let mut handlers = String::new();
    for name in &options.recorded_handlers {
        handlers.push_str(&format!(
            "  {name}: {{shell: \"(echo HANDLER={name}; env | grep -E '^(DRBD|HAPAIR)_' | sort; \
             echo --) >> {}\"}}\n",
            record.display()
        ));
    }
    if !handlers.is_empty() {
        handlers.insert_str(0, "handlers:\n");
    }
    format!(
        "resource: {RESOURCE}\n\
         protocol: C\n\
         net: {{shared-secret: \"storage-pair\", verify-alg: crc32c, ping-int: 3, \
         ping-timeout: 10, timeout: 25, connect-int: 3, after-sb-0pri: disconnect, \
         after-sb-1pri: disconnect, after-sb-2pri: disconnect}}\n\
         disk: {{on-io-error: detach, resync-rate: 10M, disk-timeout: {}}}\n\
         {handlers}\
         nodes:\n  \
           h1: {{address: \"10.99.0.1:{REPLICATION_PORT}\", disk: {disk}, meta-disk: {meta_disk}}}\n  \
           h2: {{address: \"10.99.0.2:{REPLICATION_PORT}\", disk: {disk}, meta-disk: {meta_disk}}}\n",
        options
            .disk_timeout
            .map_or(0, |limit| limit.as_millis() / 100)
    )
}

/// The file the recorded handlers of the node with backing file `backing`
/// append to.
fn handler_record_beside(backing: &Path) -> PathBuf {
    backing.with_file_name("handlers.log")
}

/// Makes an ext4 on the Primary `node`'s volume, through nbdfuse and a
/// loop device in the test's own namespace, and takes them down again.
fn make_file_system(node: &ReplicadNode) {
    let fuse = FuseExport::mount(node);
    let device = LoopDevice::attach(&fuse.file());
    run_ok(&[
        path_str(&program("mkfs.ext4")),
        "-q",
        "-F",
        "-L",
        "hapair",
        path_str(device.device()),
    ]);
    device.detach();
    fuse.unmount();
    node.wait_for_open_count(0);
}

/// The loop devices whose backing file lies under `dir`, as the mount
/// namespace of process `pid` sees their paths (`nsenter`, `losetup`).
fn loop_devices_under(pid: u32, dir: &Path) -> Vec<String> {
    let Ok(output) = std::process::Command::new(installed_program("nsenter", "util-linux"))
        .arg(format!("--mount=/proc/{pid}/ns/mnt"))
        .arg(program("losetup"))
        .args(["--list", "--json", "--output", "NAME,BACK-FILE"])
        .output()
    else {
        return Vec::new();
    };
    let Ok(devices) = serde_json::from_slice::<Value>(&output.stdout) else {
        return Vec::new();
    };
    let prefix = path_str(dir);
    devices["loopdevices"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|device| {
            device["back-file"]
                .as_str()
                .is_some_and(|back| back.starts_with(prefix))
        })
        .filter_map(|device| device["name"].as_str().map(str::to_owned))
        .collect()
}

/// The pids of every process in network namespace `namespace`.
fn namespace_pids(namespace: &str) -> Vec<i32> {
    let output = std::process::Command::new(installed_program("ip", "iproute2"))
        .args(["netns", "pids", namespace])
        .output()
        .unwrap_or_else(|error| panic!("cannot run ip netns pids: {error}"));
    String::from_utf8_lossy(&output.stdout)
        .split_whitespace()
        .filter_map(|pid| pid.parse().ok())
        .filter(|&pid: &i32| process_is_alive(pid as u32))
        .collect()
}

/// Sets `host`'s eth0 `up` or `down`.
pub fn set_link(host: &Host, state: &str) {
    run_ok(&[
        path_str(&installed_program("ip", "iproute2")),
        "-n",
        host.namespace(),
        "link",
        "set",
        "eth0",
        state,
    ]);
}

/// Removes `address` (with its prefix length) from `host`'s eth0 if it is
/// there.
fn remove_address(host: &Host, address: &str) {
    let ip: IpAddr = address
        .split('/')
        .next()
        .and_then(|text| text.parse().ok())
        .expect("an address/prefix");
    if host.has_address(ip) {
        host.run(&["ip", "addr", "del", address, "dev", "eth0"]);
    }
}

/// Connected and UpToDate on both sides, replication Established.
pub fn in_sync(status: &Value) -> bool {
    status["disk"] == "UpToDate"
        && status["peer"]["connection"] == "Connected"
        && status["peer"]["disk"] == "UpToDate"
        && status["peer"]["replication"] == "Established"
}

/// Waits up to `timeout` for `condition`; panics naming `what` otherwise.
pub fn wait_for(what: &str, timeout: Duration, condition: impl FnMut() -> bool) {
    if wait_until(timeout, POLL, condition).is_none() {
        panic!("waited {timeout:?} for {what}, in vain");
    }
}

/// Runs `work` on a thread whose network namespace is the client's, so
/// that the sockets it opens are the client's; returns what it returns.
pub fn in_client<T: Send>(pair: &StoragePair, work: impl FnOnce() -> T + Send) -> T {
    in_namespace(pair.client().namespace(), work)
}

/// Runs `work` on a thread that entered network namespace `namespace`.
pub fn in_namespace<T: Send>(namespace: &str, work: impl FnOnce() -> T + Send) -> T {
    thread::scope(|scope| {
        scope
            .spawn(|| {
                enter_namespace(namespace);
                work()
            })
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}

/// Moves the calling thread into network namespace `namespace` (the
/// others keep theirs).
fn enter_namespace(namespace: &str) {
    let path = Path::new("/run/netns").join(namespace);
    let file =
        File::open(&path).unwrap_or_else(|error| panic!("cannot open {}: {error}", path.display()));
    setns(&file, CloneFlags::CLONE_NEWNET)
        .unwrap_or_else(|error| panic!("cannot enter network namespace {namespace}: {error}"));
}

/// Why one HTTP exchange failed.
#[derive(Debug, Clone)]
pub struct HttpError(pub String);

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// How long the client waits to connect, and for each read or write.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
const IO_TIMEOUT: Duration = Duration::from_secs(5);

/// One HTTP/1.0 exchange with the service on the virtual IP (from the
/// calling thread's namespace): the status code and the body.
fn http(method: &str, name: &str, body: &[u8]) -> Result<(u16, Vec<u8>), HttpError> {
    let fail =
        |what: &str, error: std::io::Error| HttpError(format!("{method} /{name}: {what}: {error}"));
    let address = SocketAddr::new(IpAddr::V4(VIRTUAL_IP), HTTP_PORT);
    let mut stream = TcpStream::connect_timeout(&address, CONNECT_TIMEOUT)
        .map_err(|error| fail("connect", error))?;
    stream
        .set_read_timeout(Some(IO_TIMEOUT))
        .and_then(|()| stream.set_write_timeout(Some(IO_TIMEOUT)))
        .map_err(|error| fail("socket options", error))?;
    let head = format!(
        "{method} /{name} HTTP/1.0\r\nHost: {VIRTUAL_IP}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    stream
        .write_all(head.as_bytes())
        .and_then(|()| stream.write_all(body))
        .map_err(|error| fail("send", error))?;
    let mut answer = Vec::new();
    stream
        .read_to_end(&mut answer)
        .map_err(|error| fail("receive", error))?;
    parse_response(&answer).map_err(|error| HttpError(format!("{method} /{name}: {error}")))
}

/// Splits an HTTP/1.x response into its status code and body, checking
/// the body against Content-Length.
fn parse_response(answer: &[u8]) -> Result<(u16, Vec<u8>), String> {
    let split = answer
        .windows(4)
        .position(|window| window == b"\r\n\r\n")
        .ok_or_else(|| format!("no complete header in {} bytes of answer", answer.len()))?;
    let head = String::from_utf8_lossy(&answer[..split]);
    let body = answer[split + 4..].to_vec();
    let mut lines = head.split("\r\n");
    let code = lines
        .next()
        .and_then(|status| status.split_whitespace().nth(1))
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| format!("no status line in {head:?}"))?;
    let length = lines
        .filter_map(|line| line.split_once(':'))
        .find(|(key, _)| key.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, value)| value.trim().parse::<usize>().ok());
    match length {
        Some(length) if length != body.len() => Err(format!(
            "the body has {} bytes, Content-Length says {length}",
            body.len()
        )),
        _ => Ok((code, body)),
    }
}

/// Uploads `content` as `name`; `Ok` only on 201 Created, which the server
/// sends after the file and its directory were fsync'd.
pub fn http_put(name: &str, content: &[u8]) -> Result<(), HttpError> {
    match http("PUT", name, content)? {
        (201, _) => Ok(()),
        (code, body) => Err(HttpError(format!(
            "PUT /{name}: answered {code}: {}",
            String::from_utf8_lossy(&body).trim()
        ))),
    }
}

/// Downloads `name`: `Ok(None)` when the server says 404.
pub fn http_get(name: &str) -> Result<Option<Vec<u8>>, HttpError> {
    match http("GET", name, &[])? {
        (200, body) => Ok(Some(body)),
        (404, _) => Ok(None),
        (code, body) => Err(HttpError(format!(
            "GET /{name}: answered {code}: {}",
            String::from_utf8_lossy(&body).trim()
        ))),
    }
}

/// A file the server acknowledged.
#[derive(Clone)]
pub struct Stored {
    pub name: String,
    pub content: Vec<u8>,
    /// When the acknowledgement arrived.
    pub at: Instant,
}

/// An upload that failed (it is tried again).
#[derive(Clone, Debug)]
pub struct Failed {
    pub name: String,
    pub at: Instant,
    pub error: String,
}

#[derive(Default)]
struct WriterLog {
    stored: Vec<Stored>,
    failed: Vec<Failed>,
}

/// Uploads files from the client, one after the other, in the background:
/// `f000000`, `f000001`, … of 1 to 24 KiB of random bytes. A file is
/// recorded as stored only once the server answered 201 (after fsync); a
/// failed upload is recorded as such and tried again until it succeeds.
pub struct Writer {
    log: Arc<Mutex<WriterLog>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Writer {
    /// Starts writing from the client of `pair`, pausing `pause` between
    /// uploads.
    pub fn start(pair: &StoragePair, pause: Duration) -> Writer {
        let namespace = pair.client().namespace().to_owned();
        let log = Arc::new(Mutex::new(WriterLog::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (log, stop) = (Arc::clone(&log), Arc::clone(&stop));
            thread::spawn(move || {
                enter_namespace(&namespace);
                let mut sequence = 0u32;
                while !stop.load(Ordering::Relaxed) {
                    let name = format!("f{sequence:06}");
                    let size = 1024 + (sequence as usize * 7919) % (23 * 1024);
                    let content = random_bytes(size);
                    loop {
                        let result = http_put(&name, &content);
                        let mut log = log.lock().unwrap_or_else(PoisonError::into_inner);
                        match result {
                            Ok(()) => {
                                log.stored.push(Stored {
                                    name: name.clone(),
                                    content: content.clone(),
                                    at: Instant::now(),
                                });
                                break;
                            }
                            Err(error) => log.failed.push(Failed {
                                name: name.clone(),
                                at: Instant::now(),
                                error: error.0,
                            }),
                        }
                        drop(log);
                        if stop.load(Ordering::Relaxed) {
                            return;
                        }
                        thread::sleep(Duration::from_millis(50));
                    }
                    sequence += 1;
                    thread::sleep(pause);
                }
            })
        };
        Writer {
            log,
            stop,
            thread: Some(thread),
        }
    }

    /// The files stored so far.
    pub fn stored(&self) -> Vec<Stored> {
        self.lock().stored.clone()
    }

    /// The failed uploads so far.
    pub fn failed(&self) -> Vec<Failed> {
        self.lock().failed.clone()
    }

    /// Waits until `count` more files were stored after now; panics after
    /// `timeout`.
    pub fn wait_for_more(&self, count: usize, timeout: Duration) {
        let target = self.lock().stored.len() + count;
        wait_for(
            &format!("the writer to store {count} more files"),
            timeout,
            || self.lock().stored.len() >= target,
        );
    }

    /// Stops it after the upload in progress.
    pub fn stop(mut self) -> Vec<Stored> {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            thread.join().expect("the writer thread does not panic");
        }
        self.stored()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, WriterLog> {
        self.log.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Uploads `count` files `PREFIX-N` of 4 KiB from the client, each tried
/// again until the server stores it (panics after 60 s): the files, as
/// stored.
pub fn upload_files(pair: &StoragePair, prefix: &str, count: usize) -> Vec<Stored> {
    in_client(pair, || {
        (0..count)
            .map(|n| {
                let name = format!("{prefix}-{n}");
                let content = random_bytes(4096);
                let deadline = Instant::now() + Duration::from_secs(60);
                loop {
                    match http_put(&name, &content) {
                        Ok(()) => break,
                        Err(error) if Instant::now() > deadline => {
                            panic!("{name} could not be stored for 60 s: {error}")
                        }
                        Err(_) => thread::sleep(Duration::from_millis(100)),
                    }
                }
                Stored {
                    name,
                    content,
                    at: Instant::now(),
                }
            })
            .collect()
    })
}

/// Downloads every file of `stored` through the virtual IP from the
/// client; returns a description of each one missing or different.
pub fn check_stored(pair: &StoragePair, stored: &[Stored]) -> Vec<String> {
    in_client(pair, || {
        stored
            .iter()
            .filter_map(|file| match http_get(&file.name) {
                Ok(Some(content)) if content == file.content => None,
                Ok(Some(content)) => Some(format!(
                    "{}: {} bytes, not the {} stored",
                    file.name,
                    content.len(),
                    file.content.len()
                )),
                Ok(None) => Some(format!("{}: missing (404)", file.name)),
                Err(error) => Some(format!("{}: {error}", file.name)),
            })
            .collect()
    })
}

/// The project's hooks, `scripts/hooks/promote` and `scripts/hooks/demote`,
/// for `site`: haadm pointed at the host's configuration and run
/// directory, the volume exposed with nbdfuse and a loop device (the lab
/// kernel has no nbd module), `haadm primary` retried every 0.1 s while
/// the dead peer is not yet noticed, and `scripts/fileserver.py` started
/// on the virtual IP as the service (stopped first on demote).
pub fn project_hooks() -> ServiceHooks {
    ServiceHooks {
        promote: |site| {
            hook_argv(
                site,
                "promote",
                &[
                    "start",
                    "--root",
                    path_str(site.mountpoint),
                    "--bind",
                    &VIRTUAL_IP.to_string(),
                    "--port",
                    &HTTP_PORT.to_string(),
                    "--state-dir",
                    path_str(site.service_dir),
                ],
            )
        },
        demote: |site| {
            hook_argv(
                site,
                "demote",
                &["stop", "--state-dir", path_str(site.service_dir)],
            )
        },
    }
}

/// `scripts/hooks/HOOK` with the site's options, then `r0 MOUNTPOINT --
/// fileserver.py SERVICE_ARGS`.
fn hook_argv(site: &HookSite, hook: &str, service_args: &[&str]) -> Vec<String> {
    let hook = repository_file(&format!("scripts/hooks/{hook}"));
    let fileserver = repository_file("scripts/fileserver.py");
    let mut argv: Vec<String> = [
        path_str(&hook),
        "-c",
        path_str(site.config_dir),
        "--node",
        site.node,
        "--run-dir",
        path_str(site.run_dir),
        "--haadm",
        path_str(&binary("haadm")),
        "--expose",
        "fuse",
        "--retries",
        "600",
        "--retry-delay",
        "0.1",
        RESOURCE,
        path_str(site.mountpoint),
        "--",
        path_str(&fileserver),
    ]
    .map(str::to_owned)
    .to_vec();
    argv.extend(service_args.iter().map(|arg| (*arg).to_owned()));
    argv
}

/// The file `relative` of this repository; panics when it is missing.
pub fn repository_file(relative: &str) -> PathBuf {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .join(relative);
    assert!(path.is_file(), "{} is missing", path.display());
    path
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_response_and_checks_its_length() {
        let (code, body) =
            parse_response(b"HTTP/1.0 201 Created\r\nContent-Length: 3\r\n\r\nabc").unwrap();
        assert_eq!((code, body.as_slice()), (201, &b"abc"[..]));
        assert!(parse_response(b"HTTP/1.0 200 OK\r\nContent-Length: 5\r\n\r\nabc").is_err());
        assert!(parse_response(b"HTTP/1.0 200 OK\r\n").is_err());
    }
}
