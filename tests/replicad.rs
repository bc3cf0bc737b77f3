//! One replicad node for tests that drive it with real NBD clients
//! (libnbd's tools, qemu-io, a file system on a loop device): a config
//! directory holding resource `r0`, a sparse backing file with fresh
//! metadata, a run directory, the daemon, and `haadm` pointed at them.
//!
//! Also the guards for what such tests stack on the export — an
//! `nbdfuse` mount, a loop device, a file system mount — each undone when
//! dropped, also while a test panics. Declare them in the order they are
//! stacked, so that they are dropped (undone) in the reverse order. And
//! [`NbdkitDisk`], a backing disk served by nbdkit (whose filters can make
//! it fail) for a node configured to use it.
//!
//! No network namespace is involved: the export is a Unix socket and the
//! peer `ha2` is never started (the resource stays StandAlone).

use std::fmt::Write as _;
use std::fs::{self, File};
use std::io::Read;
use std::ops::Range;
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, mpsc};
use std::thread;
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use serde_json::Value;
use tempfile::TempDir;

use crate::keepalived::path_str;
use crate::process::{Proc, ProcessGroups};
use crate::support::{binary, installed_program, wait_until};

/// The resource every [`ReplicadNode`] defines.
pub const RESOURCE: &str = "r0";
/// The node the daemon runs as; `ha2` is the configured peer.
pub const NODE: &str = "ha1";

/// How long one `haadm` command, or any other bounded command, may take.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);
/// How long replicad may take to open its control socket, or to exit.
const DAEMON_TIMEOUT: Duration = Duration::from_secs(15);
/// How long nbdfuse may take to expose the export.
const FUSE_TIMEOUT: Duration = Duration::from_secs(15);
/// How often readiness is polled.
const POLL: Duration = Duration::from_millis(20);
/// RUST_LOG for replicad when the test's environment sets none.
const DEFAULT_LOG_FILTER: &str = "debug";
/// Bytes of each log shown when a test panics.
const LOG_TAIL_BYTES: usize = 16 * 1024;

/// A command that ran to completion: how it ended and what it printed.
#[derive(Debug)]
pub struct Finished {
    /// The command, for messages.
    pub command: String,
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Finished {
    /// The exit code; `None` when a signal ended it.
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }

    /// Panics, showing everything it printed, unless it exited with `code`.
    pub fn expect_code(&self, code: i32) -> &Finished {
        assert_eq!(
            self.code(),
            Some(code),
            "{} should exit with {code} but ended with {}:\nstdout: {}\nstderr: {}",
            self.command,
            self.status,
            self.stdout,
            self.stderr
        );
        self
    }

    /// Both streams, for tools that print errors on either.
    pub fn all_output(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }
}

/// Runs `command` to completion in a process group of its own, stdin from
/// /dev/null. If it has not exited after `timeout`, SIGKILLs the group and
/// panics with what it printed: a hung client must fail the test, not hang
/// it.
pub fn run_bounded(mut command: Command, timeout: Duration) -> Finished {
    let described = format!("{command:?}");
    command
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command
        .spawn()
        .unwrap_or_else(|error| panic!("cannot start {described}: {error}"));
    let stdout = drain(child.stdout.take());
    let stderr = drain(child.stderr.take());
    let status = wait_bounded(&mut child, timeout);
    let stdout = join_drain(stdout);
    let stderr = join_drain(stderr);
    match status {
        Some(status) => Finished {
            command: described,
            status,
            stdout,
            stderr,
        },
        None => panic!(
            "{described} did not finish within {timeout:?}; killed it.\nstdout: {stdout}\nstderr: {stderr}"
        ),
    }
}

/// Waits for `child` up to `timeout`; past it, SIGKILLs its process group,
/// reaps it and returns `None`.
fn wait_bounded(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let mut status = None;
    wait_until(timeout, Duration::from_millis(5), || {
        status = child
            .try_wait()
            .unwrap_or_else(|error| panic!("cannot check a child's status: {error}"));
        status.is_some()
    });
    if status.is_none() {
        let group = Pid::from_raw(i32::try_from(child.id()).expect("Linux pids fit in an i32"));
        match killpg(group, Signal::SIGKILL) {
            Ok(()) | Err(Errno::ESRCH) => {}
            Err(error) => eprintln!("cannot kill process group {group}: {error}"),
        }
        let _ = child.wait();
    }
    status
}

/// Reads a child's output stream to its end on a thread of its own, so
/// that a chatty child never blocks on a full pipe.
fn drain(stream: Option<impl Read + Send + 'static>) -> mpsc::Receiver<String> {
    let mut stream = stream.expect("the stream was piped");
    let (sender, receiver) = mpsc::channel();
    thread::spawn(move || {
        let mut bytes = Vec::new();
        // What arrived before an error is all there is to show.
        let _ = stream.read_to_end(&mut bytes);
        let _ = sender.send(String::from_utf8_lossy(&bytes).into_owned());
    });
    receiver
}

/// How long the output of a finished command may stay open: a process it
/// left behind (a daemon it started without redirecting its output) keeps
/// the pipe open, and the test must not wait for that process to end.
const OUTPUT_GRACE: Duration = Duration::from_secs(5);

fn join_drain(reader: mpsc::Receiver<String>) -> String {
    reader.recv_timeout(OUTPUT_GRACE).unwrap_or_else(|_| {
        "(output not complete: a process the command left behind still holds it open)".to_owned()
    })
}

/// Runs `argv` bounded by the default timeout and panics, showing its
/// output, unless it succeeds.
pub fn run_ok(argv: &[&str]) -> Finished {
    let finished = run_bounded(command(argv), COMMAND_TIMEOUT);
    finished.expect_code(0);
    finished
}

fn command(argv: &[&str]) -> Command {
    let (program, args) = argv.split_first().expect("a command has a program");
    let mut command = Command::new(program);
    command.args(args);
    command
}

/// One replicad node in a temporary directory: config, backing file,
/// run directory, logs. Dropping it kills the daemon and every process it
/// spawned, and removes the directory; a panicking test first prints the
/// logs.
pub struct ReplicadNode {
    /// This node's name in the configuration.
    node: String,
    /// The network namespace the daemon runs in, if not the test's own.
    namespace: Option<String>,
    dir: TempDir,
    backing: PathBuf,
    daemon: Option<Proc>,
    groups: Arc<ProcessGroups>,
    files_made: AtomicU32,
}

impl ReplicadNode {
    /// Writes the configuration of `r0` (protocol C, on-io-error detach,
    /// internal metadata) on a new sparse backing file of `backing_size`
    /// bytes, and creates its metadata with `haadm create-md`. The daemon
    /// is not started.
    pub fn new(backing_size: u64) -> ReplicadNode {
        ReplicadNode::with_config(NODE, None, backing_size, default_resource_yaml)
    }

    /// A node named `node` whose daemon runs in network namespace
    /// `namespace` (when given), configured by `resource_yaml` (which gets
    /// this node's backing file), with fresh metadata. Not started.
    pub fn with_config(
        node: &str,
        namespace: Option<&str>,
        backing_size: u64,
        resource_yaml: impl FnOnce(&Path) -> String,
    ) -> ReplicadNode {
        let dir = tempfile::Builder::new()
            .prefix("hapair-replicad-")
            .tempdir()
            .unwrap_or_else(|error| panic!("cannot create a temporary directory: {error}"));
        let backing = dir.path().join(format!("{RESOURCE}.img"));
        File::create(&backing)
            .and_then(|file| file.set_len(backing_size))
            .unwrap_or_else(|error| panic!("cannot create {}: {error}", backing.display()));
        let node = ReplicadNode {
            node: node.to_string(),
            namespace: namespace.map(str::to_string),
            backing,
            daemon: None,
            groups: Arc::default(),
            files_made: AtomicU32::new(0),
            dir,
        };
        for sub_dir in [node.config_dir(), node.run_dir()] {
            fs::create_dir(&sub_dir)
                .unwrap_or_else(|error| panic!("cannot create {}: {error}", sub_dir.display()));
        }
        let config = node.config_dir().join(format!("{RESOURCE}.yaml"));
        fs::write(&config, resource_yaml(&node.backing))
            .unwrap_or_else(|error| panic!("cannot write {}: {error}", config.display()));
        node.haadm(&["create-md", RESOURCE]).expect_code(0);
        node
    }

    /// A node whose daemon runs with `r0` up and promoted (forced: fresh
    /// metadata is Inconsistent), ready for NBD clients.
    pub fn primary(backing_size: u64) -> ReplicadNode {
        let mut node = ReplicadNode::new(backing_size);
        node.start();
        node.haadm(&["up", RESOURCE]).expect_code(0);
        node.haadm(&["primary", RESOURCE, "--force"]).expect_code(0);
        node
    }

    /// This node's name in the configuration.
    pub fn name(&self) -> &str {
        &self.node
    }

    /// The temporary directory holding everything of this node.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn config_dir(&self) -> PathBuf {
        self.dir().join("config")
    }

    pub fn run_dir(&self) -> PathBuf {
        self.dir().join("run")
    }

    /// The backing file: with internal metadata, volume byte N is byte N
    /// of this file.
    pub fn backing_path(&self) -> &Path {
        &self.backing
    }

    /// The daemon's control socket.
    pub fn control_socket(&self) -> PathBuf {
        self.run_dir().join("replicad.sock")
    }

    /// The NBD socket of `r0`.
    pub fn nbd_socket(&self) -> PathBuf {
        self.run_dir().join(format!("{RESOURCE}.nbd"))
    }

    /// The NBD URI of `r0` (default export name).
    pub fn nbd_uri(&self) -> String {
        format!("nbd+unix:///?socket={}", path_str(&self.nbd_socket()))
    }

    /// A fresh path in the node's directory: `<what>-<sequence>.<extension>`.
    pub fn new_path(&self, what: &str, extension: &str) -> PathBuf {
        let sequence = self.files_made.fetch_add(1, Ordering::Relaxed);
        self.dir().join(format!("{what}-{sequence}.{extension}"))
    }

    /// Starts the built replicad and waits until its control socket
    /// answers. The previous daemon, if any, must have exited.
    pub fn start(&mut self) {
        if let Some(daemon) = &mut self.daemon {
            assert!(
                !daemon.is_running(),
                "{}: start needs the previous replicad to have exited",
                daemon.label()
            );
        }
        let log_filter = std::env::var("RUST_LOG").unwrap_or_else(|_| DEFAULT_LOG_FILTER.into());
        let (config, run) = (self.config_dir(), self.run_dir());
        let replicad = binary("replicad");
        let mut argv: Vec<&str> = match &self.namespace {
            Some(namespace) => vec!["ip", "netns", "exec", namespace],
            None => Vec::new(),
        };
        argv.extend([
            path_str(&replicad),
            "-c",
            path_str(&config),
            "--node",
            &self.node,
            "--run-dir",
            path_str(&run),
        ]);
        let mut daemon = self.spawn(&argv, &[("RUST_LOG", &log_filter)]);
        let socket = self.control_socket();
        let ready = wait_until(DAEMON_TIMEOUT, POLL, || {
            UnixStream::connect(&socket).is_ok() || !daemon.is_running()
        });
        assert!(
            ready.is_some() && daemon.is_running(),
            "replicad did not answer on {} within {DAEMON_TIMEOUT:?}:\n{}",
            socket.display(),
            daemon.log()
        );
        self.daemon = Some(daemon);
    }

    /// The running (or last) daemon.
    pub fn daemon(&self) -> &Proc {
        self.daemon.as_ref().expect("replicad was started")
    }

    fn daemon_mut(&mut self) -> &mut Proc {
        self.daemon.as_mut().expect("replicad was started")
    }

    /// Stops the daemon as an operator would (SIGTERM) and waits for it.
    pub fn stop(&mut self) -> ExitStatus {
        let daemon = self.daemon_mut();
        daemon.kill(Signal::SIGTERM);
        daemon.wait_timeout(DAEMON_TIMEOUT).unwrap_or_else(|| {
            panic!(
                "replicad did not exit within {DAEMON_TIMEOUT:?} of SIGTERM:\n{}",
                daemon.log()
            )
        })
    }

    /// Kills the daemon with SIGKILL, as a crash would, and reaps it.
    pub fn crash(&mut self) {
        let daemon = self.daemon_mut();
        daemon.kill(Signal::SIGKILL);
        daemon
            .wait_timeout(DAEMON_TIMEOUT)
            .unwrap_or_else(|| panic!("replicad survived SIGKILL for {DAEMON_TIMEOUT:?}"));
    }

    /// Runs `haadm ARGS` against this node's config and run directory.
    pub fn haadm(&self, args: &[&str]) -> Finished {
        let mut command = Command::new(binary("haadm"));
        command
            .arg("-c")
            .arg(self.config_dir())
            .args(["--node", &self.node, "--run-dir"])
            .arg(self.run_dir())
            .args(args);
        run_bounded(command, COMMAND_TIMEOUT)
    }

    /// Starts `haadm events` against this node; the stream's lines collect
    /// in the returned [`Proc`]'s log.
    pub fn events(&self) -> Proc {
        let haadm = binary("haadm");
        let (config, run_dir) = (self.config_dir(), self.run_dir());
        self.spawn(
            &[
                path_arg(&haadm),
                "-c",
                path_arg(&config),
                "--node",
                &self.node,
                "--run-dir",
                path_arg(&run_dir),
                "events",
            ],
            &[],
        )
    }

    /// `haadm status --json` for `r0`: its one entry.
    pub fn status(&self) -> Value {
        let finished = self.haadm(&["status", RESOURCE, "--json"]);
        finished.expect_code(0);
        let resources: Value = serde_json::from_str(&finished.stdout).unwrap_or_else(|error| {
            panic!(
                "haadm status --json printed no JSON ({error}): {}",
                finished.stdout
            )
        });
        assert_eq!(
            resources.as_array().map(Vec::len),
            Some(1),
            "haadm status {RESOURCE} --json should list one resource: {resources}"
        );
        resources[0].clone()
    }

    /// NBD clients holding `r0` open, as the daemon reports them.
    pub fn open_count(&self) -> u64 {
        let status = self.status();
        status["open_count"]
            .as_u64()
            .unwrap_or_else(|| panic!("haadm status has no open_count: {status}"))
    }

    /// Waits until the daemon reports `expected` open NBD connections.
    pub fn wait_for_open_count(&self, expected: u64) {
        let mut seen = None;
        wait_until(DAEMON_TIMEOUT, POLL, || {
            seen = Some(self.open_count());
            seen == Some(expected)
        })
        .unwrap_or_else(|| {
            panic!("replicad reported {seen:?} open NBD clients, not {expected}, for {DAEMON_TIMEOUT:?}")
        });
    }

    /// `haadm dump-md r0`, parsed.
    pub fn dump_md(&self) -> MetadataDump {
        let finished = self.haadm(&["dump-md", RESOURCE]);
        finished.expect_code(0);
        MetadataDump::parse(&finished.stdout)
    }

    /// Starts `argv` in a process group of its own, with `env` added, its
    /// output in a log file of this node; it is killed when the returned
    /// [`Proc`] or this node is dropped.
    pub fn spawn(&self, argv: &[&str], env: &[(&str, &str)]) -> Proc {
        spawn_logged(argv, env, &self.node, &self.groups, |program| {
            self.new_path(program, "log")
        })
    }

    /// Reads `range` of the volume through a fresh NBD connection (nbdcopy
    /// of the whole export into a file, then the range of that file).
    pub fn read_export(&self, range: Range<u64>) -> Vec<u8> {
        let copy = self.new_path("export", "img");
        run_ok(&[
            path_str(&program("nbdcopy")),
            &self.nbd_uri(),
            path_str(&copy),
        ]);
        let bytes = fs::read(&copy)
            .unwrap_or_else(|error| panic!("cannot read {}: {error}", copy.display()));
        fs::remove_file(&copy)
            .unwrap_or_else(|error| panic!("cannot remove {}: {error}", copy.display()));
        let range =
            usize::try_from(range.start).expect("fits")..usize::try_from(range.end).expect("fits");
        bytes
            .get(range.clone())
            .unwrap_or_else(|| panic!("the export has {} bytes, not {range:?}", bytes.len()))
            .to_vec()
    }

    /// Every log of this node (daemon and clients), for a failed test.
    fn describe_logs(&self) -> String {
        let mut text = format!(
            "===== replicad node files in {} =====\n",
            self.dir().display()
        );
        let mut logs: Vec<PathBuf> = fs::read_dir(self.dir())
            .map(|entries| {
                entries
                    .flatten()
                    .map(|entry| entry.path())
                    .filter(|path| path.extension().is_some_and(|ext| ext == "log"))
                    .collect()
            })
            .unwrap_or_default();
        logs.sort();
        for path in logs {
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
}

impl Drop for ReplicadNode {
    fn drop(&mut self) {
        if thread::panicking() {
            eprintln!("{}", self.describe_logs());
        }
        self.groups.kill_all();
    }
}

/// Starts `argv` with `env` added in a process group of its own, labelled
/// `owner` and the program's name, its output in the file `log_for` gives
/// for the program's name; registered in `groups`.
fn spawn_logged(
    argv: &[&str],
    env: &[(&str, &str)],
    owner: &str,
    groups: &Arc<ProcessGroups>,
    log_for: impl FnOnce(&str) -> PathBuf,
) -> Proc {
    let program = Path::new(argv[0])
        .file_name()
        .map_or_else(|| argv[0].to_owned(), |name| name.to_string_lossy().into());
    let mut spawned = command(argv);
    spawned.envs(env.iter().copied());
    Proc::spawn(
        spawned,
        format!("{owner} {program}"),
        log_for(&program),
        Arc::clone(groups),
    )
}

/// A TCP port on 127.0.0.1 that nothing listened on a moment ago, for a
/// resource's node addresses.
pub fn free_loopback_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .unwrap_or_else(|error| panic!("cannot find a free loopback port: {error}"))
}

/// `r0` with protocol C, on-io-error detach and internal metadata on
/// `backing`, node [`NODE`] and its peer `ha2`. Their addresses are on
/// loopback (a free port on 127.0.0.1, and on 127.0.0.2 where nothing
/// listens): the daemon runs in the test's own network namespace, so
/// whatever it sends towards its absent peer must stay on this machine.
fn default_resource_yaml(backing: &Path) -> String {
    let disk = path_str(backing);
    let port = free_loopback_port();
    format!(
        "resource: {RESOURCE}\n\
         protocol: C\n\
         disk: {{on-io-error: detach}}\n\
         nodes:\n  \
           {NODE}: {{address: \"127.0.0.1:{port}\", disk: {disk}, meta-disk: internal}}\n  \
           ha2: {{address: \"127.0.0.2:{port}\", disk: {disk}, meta-disk: internal}}\n"
    )
}

/// The installed client `name`, with the Debian package that brings it.
pub fn program(name: &str) -> PathBuf {
    let package = match name {
        "nbdinfo" | "nbdcopy" | "nbdfuse" => "libnbd-bin",
        "qemu-io" | "qemu-img" => "qemu-utils",
        "fusermount3" => "fuse3",
        "mkfs.ext4" | "e2fsck" => "e2fsprogs",
        "nbdkit" => "nbdkit",
        "fio" => "fio",
        "losetup" | "mount" | "umount" => "mount",
        "stdbuf" => "coreutils",
        other => panic!("no Debian package known for {other}"),
    };
    installed_program(name, package)
}

/// `haadm dump-md` output, read back: the flags, the dirty ranges of the
/// bitmap and the hot extents of the activity log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetadataDump {
    pub text: String,
    pub flags: Vec<String>,
    /// Byte ranges the bitmap marks out of sync.
    pub dirty: Vec<Range<u64>>,
    /// Numbers of the activity log's hot 4 MiB extents.
    pub hot_extents: Vec<u64>,
}

/// The size of one activity-log extent.
const EXTENT_SIZE: u64 = 4 << 20;

impl MetadataDump {
    /// Parses the `flags:`, `dirty:` and `hot-extents:` lines; panics,
    /// showing the dump, on anything it cannot read.
    pub fn parse(text: &str) -> MetadataDump {
        let unreadable = |what: &str| -> ! { panic!("dump-md: cannot read {what} in:\n{text}") };
        let mut dump = MetadataDump {
            text: text.to_owned(),
            flags: Vec::new(),
            dirty: Vec::new(),
            hot_extents: Vec::new(),
        };
        let mut saw_flags = false;
        let mut saw_hot = false;
        for line in text.lines() {
            let Some((key, value)) = line.split_once(':') else {
                continue;
            };
            let value = value.trim();
            match key {
                "flags" => {
                    saw_flags = true;
                    dump.flags = value.split_whitespace().map(str::to_owned).collect();
                }
                "dirty" => {
                    // "START..END (SIZE)"
                    let range = value.split_whitespace().next().unwrap_or_default();
                    let (start, end) = range
                        .split_once("..")
                        .and_then(|(start, end)| Some((start.parse().ok()?, end.parse().ok()?)))
                        .unwrap_or_else(|| unreadable(line));
                    dump.dirty.push(start..end);
                }
                "hot-extents" => {
                    // "COUNT (A-B C …)"
                    saw_hot = true;
                    let runs = value
                        .split_once('(')
                        .and_then(|(_, rest)| rest.strip_suffix(')'))
                        .unwrap_or_else(|| unreadable(line));
                    for run in runs.split_whitespace() {
                        let (first, last) = run.split_once('-').unwrap_or((run, run));
                        let (first, last): (u64, u64) = first
                            .parse()
                            .ok()
                            .zip(last.parse().ok())
                            .unwrap_or_else(|| unreadable(line));
                        dump.hot_extents.extend(first..=last);
                    }
                }
                _ => {}
            }
        }
        if !saw_flags || !saw_hot {
            unreadable("the flags and hot-extents lines");
        }
        dump
    }

    pub fn has_flag(&self, flag: &str) -> bool {
        self.flags.iter().any(|present| present == flag)
    }

    /// True when every byte of `range` lies in a dirty range.
    pub fn dirty_covers(&self, range: &Range<u64>) -> bool {
        let mut at = range.start;
        while at < range.end {
            match self.dirty.iter().find(|dirty| dirty.contains(&at)) {
                Some(dirty) => at = dirty.end,
                None => return false,
            }
        }
        true
    }

    /// True when every extent `range` touches is hot.
    pub fn hot_covers(&self, range: &Range<u64>) -> bool {
        let extents = range.start / EXTENT_SIZE..range.end.div_ceil(EXTENT_SIZE);
        extents
            .into_iter()
            .all(|extent| self.hot_extents.contains(&extent))
    }
}

/// Runs a teardown command from a guard's `Drop`: a failure is printed,
/// not raised, since the test may already be panicking.
fn teardown(argv: &[&str]) -> bool {
    match Command::new(argv[0])
        .args(&argv[1..])
        .stdin(Stdio::null())
        .output()
    {
        Ok(output) if output.status.success() => true,
        Ok(output) => {
            eprintln!(
                "cleanup: {argv:?} failed ({}): {}",
                output.status,
                String::from_utf8_lossy(&output.stderr)
            );
            false
        }
        Err(error) => {
            eprintln!("cleanup: cannot run {argv:?}: {error}");
            false
        }
    }
}

/// An NBD export exposed as a file by `nbdfuse` (the lab kernel has no nbd
/// module). Dropping it unmounts the FUSE file system and kills nbdfuse.
pub struct FuseExport {
    mountpoint: PathBuf,
    proc: Proc,
    mounted: bool,
}

impl FuseExport {
    /// Mounts `node`'s export at a new directory of the node, and waits
    /// until nbdfuse says it is ready (its pid file) and the file has the
    /// export's size.
    pub fn mount(node: &ReplicadNode) -> FuseExport {
        FuseExport::mount_uri(
            &node.nbd_uri(),
            node.new_path("fuse", "mnt"),
            &node.new_path("nbdfuse", "pid"),
            |argv| node.spawn(argv, &[]),
        )
    }

    /// Mounts the export at `uri` on `mountpoint` (created here), nbdfuse
    /// started by `spawn` and writing its pid to `pid_file` once ready.
    fn mount_uri(
        uri: &str,
        mountpoint: PathBuf,
        pid_file: &Path,
        spawn: impl FnOnce(&[&str]) -> Proc,
    ) -> FuseExport {
        fs::create_dir(&mountpoint)
            .unwrap_or_else(|error| panic!("cannot create {}: {error}", mountpoint.display()));
        let proc = spawn(&[
            path_str(&program("nbdfuse")),
            "-P",
            path_str(pid_file),
            path_str(&mountpoint),
            uri,
        ]);
        let mut export = FuseExport {
            mountpoint,
            proc,
            mounted: true,
        };
        let ready = wait_until(FUSE_TIMEOUT, POLL, || {
            pid_file.exists() || !export.proc.is_running()
        });
        assert!(
            ready.is_some() && export.proc.is_running(),
            "nbdfuse did not expose {uri} within {FUSE_TIMEOUT:?}: {}",
            export.proc.log()
        );
        export
    }

    /// The file that is the export.
    pub fn file(&self) -> PathBuf {
        self.mountpoint.join("nbd")
    }

    /// Unmounts it (`fusermount3 -u`) and waits for nbdfuse to exit; panics
    /// unless both succeed.
    pub fn unmount(mut self) {
        run_ok(&[
            path_str(&program("fusermount3")),
            "-u",
            path_str(&self.mountpoint),
        ]);
        self.mounted = false;
        let status = self.proc.wait_timeout(FUSE_TIMEOUT).unwrap_or_else(|| {
            panic!("nbdfuse did not exit within {FUSE_TIMEOUT:?} of its unmount")
        });
        assert!(status.success(), "nbdfuse failed: {}", self.proc.log());
    }
}

impl Drop for FuseExport {
    fn drop(&mut self) {
        if self.mounted {
            // Lazy: the mount goes even if something still holds it; the
            // Proc's own Drop then kills nbdfuse.
            teardown(&[
                path_str(&program("fusermount3")),
                "-u",
                "-z",
                path_str(&self.mountpoint),
            ]);
        }
    }
}

/// A disk served by nbdkit on a Unix socket and exposed as a regular file
/// by nbdfuse: a backing disk for a node whose behaviour nbdkit's filters
/// control (errors, delays). Its own temporary directory holds the socket,
/// the logs and whatever files the filters use. Dropping it unmounts the
/// file, then kills nbdkit; a panicking test first prints both logs.
pub struct NbdkitDisk {
    // Fields drop in this order: the mount, the server, the directory.
    export: FuseExport,
    server: Proc,
    dir: TempDir,
}

impl NbdkitDisk {
    /// Starts `nbdkit` with the arguments `nbdkit_args` makes from the
    /// disk's directory (filters, then the plugin and its parameters),
    /// waits until it accepts connections, and mounts its export.
    pub fn start(nbdkit_args: impl FnOnce(&Path) -> Vec<String>) -> NbdkitDisk {
        let dir = tempfile::Builder::new()
            .prefix("hapair-nbdkit-")
            .tempdir()
            .unwrap_or_else(|error| panic!("cannot create a temporary directory: {error}"));
        let groups = Arc::new(ProcessGroups::default());
        let spawn = |argv: &[&str]| {
            spawn_logged(argv, &[], "disk", &groups, |program| {
                dir.path().join(format!("{program}.log"))
            })
        };
        let socket = dir.path().join("nbdkit.sock");
        let pid_file = dir.path().join("nbdkit.pid");
        let args = nbdkit_args(dir.path());
        let nbdkit = program("nbdkit");
        let mut argv = vec![
            path_str(&nbdkit),
            "--foreground",
            "--unix",
            path_str(&socket),
            "--pidfile",
            path_str(&pid_file),
        ];
        argv.extend(args.iter().map(String::as_str));
        let mut server = spawn(&argv);
        let ready = wait_until(DAEMON_TIMEOUT, POLL, || {
            pid_file.exists() || !server.is_running()
        });
        assert!(
            ready.is_some() && server.is_running(),
            "nbdkit did not serve {} within {DAEMON_TIMEOUT:?}:\n{}",
            socket.display(),
            server.log()
        );
        let uri = format!("nbd+unix:///?socket={}", path_str(&socket));
        let export = FuseExport::mount_uri(
            &uri,
            dir.path().join("fuse"),
            &dir.path().join("nbdfuse.pid"),
            spawn,
        );
        NbdkitDisk {
            export,
            server,
            dir,
        }
    }

    /// The directory holding the disk's socket, logs and filter files.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The regular file that is the disk.
    pub fn file(&self) -> PathBuf {
        self.export.file()
    }

    /// What nbdkit has logged so far.
    pub fn server_log(&self) -> String {
        self.server.log()
    }
}

impl Drop for NbdkitDisk {
    fn drop(&mut self) {
        if thread::panicking() {
            eprintln!(
                "===== nbdkit disk in {} =====\n{}\n{}",
                self.dir().display(),
                self.server.log(),
                self.export.proc.log()
            );
        }
    }
}

/// A loop device over a file. Dropping it detaches the device.
pub struct LoopDevice {
    device: PathBuf,
    attached: bool,
}

impl LoopDevice {
    /// Attaches the first free loop device to `file`.
    pub fn attach(file: &Path) -> LoopDevice {
        let finished = run_ok(&[
            path_str(&program("losetup")),
            "--find",
            "--show",
            path_str(file),
        ]);
        let device = finished.stdout.trim();
        assert!(
            device.starts_with("/dev/loop"),
            "losetup --find --show printed {:?}, not a loop device",
            finished.stdout
        );
        LoopDevice {
            device: PathBuf::from(device),
            attached: true,
        }
    }

    /// The device node, e.g. /dev/loop3.
    pub fn device(&self) -> &Path {
        &self.device
    }

    /// Detaches it and waits until the kernel has let go of the file (the
    /// detach completes asynchronously); panics unless that succeeds.
    pub fn detach(mut self) {
        run_ok(&[path_str(&program("losetup")), "-d", path_str(&self.device)]);
        self.attached = false;
        let name = self.device.file_name().expect("/dev/loopN has a name");
        let backing = Path::new("/sys/block").join(name).join("loop/backing_file");
        wait_until(DAEMON_TIMEOUT, POLL, || !backing.exists()).unwrap_or_else(|| {
            panic!(
                "{} still has a backing file {DAEMON_TIMEOUT:?} after losetup -d",
                self.device.display()
            )
        });
    }
}

impl Drop for LoopDevice {
    fn drop(&mut self) {
        if self.attached {
            teardown(&[path_str(&program("losetup")), "-d", path_str(&self.device)]);
        }
    }
}

/// A file system mounted on a directory. Dropping it unmounts it (lazily
/// if it is busy).
pub struct Mount {
    target: PathBuf,
    mounted: bool,
}

impl Mount {
    /// Mounts `device` on `target` (which must exist).
    pub fn new(device: &Path, target: &Path) -> Mount {
        run_ok(&[
            path_str(&program("mount")),
            path_str(device),
            path_str(target),
        ]);
        Mount {
            target: target.to_path_buf(),
            mounted: true,
        }
    }

    pub fn target(&self) -> &Path {
        &self.target
    }

    /// Unmounts it; panics unless that succeeds.
    pub fn unmount(mut self) {
        run_ok(&[path_str(&program("umount")), path_str(&self.target)]);
        self.mounted = false;
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        if self.mounted && !teardown(&[path_str(&program("umount")), path_str(&self.target)]) {
            teardown(&[path_str(&program("umount")), "-l", path_str(&self.target)]);
        }
    }
}

/// `path` as a command-line argument: the paths tests make are UTF-8.
pub fn path_arg(path: &Path) -> &str {
    path_str(path)
}

/// `len` bytes from /dev/urandom.
pub fn random_bytes(len: usize) -> Vec<u8> {
    let mut bytes = vec![0u8; len];
    File::open("/dev/urandom")
        .and_then(|mut urandom| urandom.read_exact(&mut bytes))
        .unwrap_or_else(|error| panic!("cannot read /dev/urandom: {error}"));
    bytes
}

/// Reads `len` bytes of `path` at `offset`; a file too short is an error.
pub fn read_file_range(path: &Path, offset: u64, len: usize) -> std::io::Result<Vec<u8>> {
    use std::os::unix::fs::FileExt;
    let mut bytes = vec![0u8; len];
    File::open(path)?.read_exact_at(&mut bytes, offset)?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DUMP: &str = "\
metadata:       /tmp/x/r0.img
usable-size:    134172672 bytes
flags:          consistent was-up-to-date crashed-primary al-clean
bitmap:         32757 blocks of 4 KiB in 2 pages, 3 dirty (12 KiB)
dirty:          0..8192 (8 KiB)
dirty:          8192..12288 (4 KiB)
dirty:          4194304..4198400 (4 KiB)
activity-log:   1237 extents of 4 MiB in 8 ring slots, last transaction 4
hot-extents:    4 (0-2 5)
";

    #[test]
    fn reads_flags_dirty_ranges_and_hot_extents() {
        let dump = MetadataDump::parse(DUMP);
        assert!(dump.has_flag("crashed-primary"));
        assert!(!dump.has_flag("primary"));
        assert_eq!(dump.dirty, [0..8192, 8192..12288, 4194304..4198400]);
        assert_eq!(dump.hot_extents, [0, 1, 2, 5]);
    }

    #[test]
    fn coverage_follows_adjacent_ranges_and_stops_at_gaps() {
        let dump = MetadataDump::parse(DUMP);
        assert!(dump.dirty_covers(&(100..12288)));
        assert!(!dump.dirty_covers(&(100..12289)));
        assert!(dump.hot_covers(&(0..3 * EXTENT_SIZE)));
        assert!(!dump.hot_covers(&(0..3 * EXTENT_SIZE + 1)));
        assert!(dump.hot_covers(&(5 * EXTENT_SIZE + 7..5 * EXTENT_SIZE + 9)));
    }

    #[test]
    #[should_panic(expected = "cannot read")]
    fn a_dump_without_hot_extents_is_unreadable() {
        MetadataDump::parse("flags: primary\n");
    }
}
