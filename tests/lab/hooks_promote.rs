//! The storage pair's failover hooks and its health check, against a real
//! replicad pair: `scripts/hooks/promote` and `demote` run by hand (as
//! vrrpd's notify_master / notify_backup would run them) expose the volume
//! with nbdfuse and a loop device, fsck it, mount it and start a service,
//! and undo all of it; running either twice does no harm, and a failing
//! step is named. A process holding the mount does not stop demote: it
//! gets SIGTERM, then SIGKILL if it ignores that, unless
//! `HAPAIR_KILL_USERS=no`, which names it and fails. A promote that vrrpd
//! ran gives up within a few tries, with exit 3, once the instance left
//! MASTER (the demote queued behind it follows); run by hand it retries
//! as long as it is told to. `haadm check` gives each Nagios exit code in
//! a scenario made for it, and writes the track file.
//!
//! The hooks run in the test's own namespaces, as on a real host: only
//! the daemons live in lab hosts (the control and NBD sockets are files).
//! `ip netns exec` would give them a mount namespace of their own, whose
//! mounts the test could not see.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use hapair_lab::{
    Finished, Hooks, Lab, RESOURCE, ReplicadNode, VrrpInstance, Vrrpd, binary, installed_program,
    lab_lock, path_arg, process_is_alive, program, require_root, run_bounded, run_ok, vrrpd_config,
    wait_until,
};
use hookrun::{JournalEntry, JournalOutcome, read_journal};
use nix::sys::signal::Signal;

use crate::common::{POLL, held_by_master_hook, wait_for_state, with_margin};
use crate::replicad_pair_kit::{
    Extras, Pair, in_sync, make_split_brain, synced_pair, wait_for, wait_for_status,
};

/// How long one hook may take: a few haadm retries, nbdfuse, fsck.
const HOOK_TIMEOUT: Duration = Duration::from_secs(120);
/// How long one cleanup command may take.
const CLEANUP_TIMEOUT: Duration = Duration::from_secs(10);
const MIB: u64 = 1 << 20;

/// The repository's hook scripts.
fn hook_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../scripts/hooks")
        .join(name)
}

/// Hook `name` (promote or demote) for `node` with `args`, pointed at the
/// node's haadm options through the environment, nbdfuse forced (the lab
/// kernel has no nbd module), retries every half second; `env` adds to or
/// overrides that.
fn hook_command(node: &ReplicadNode, name: &str, args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut command = Command::new(hook_path(name));
    command
        .args(args)
        .env("HAPAIR_HAADM", binary("haadm"))
        .env("HAPAIR_CONFIG_DIR", node.config_dir())
        .env("HAPAIR_NODE", node.name())
        .env("HAPAIR_RUN_DIR", node.run_dir())
        .env("HAPAIR_EXPOSE", "fuse")
        .env("HAPAIR_RETRY_DELAY", "0.5")
        .envs(env.iter().copied());
    command
}

/// Whether `path` is a mount point now (from /proc/self/mounts).
fn is_mounted(path: &Path) -> bool {
    let mounts = fs::read_to_string("/proc/self/mounts").expect("/proc/self/mounts is readable");
    mounts
        .lines()
        .filter_map(|line| line.split(' ').nth(1))
        .any(|target| Path::new(target) == path)
}

/// One node's use of the hooks: its mount point and where the hooks keep
/// their state. Dropping it (also while a test panics) undoes whatever the
/// hooks left: the mount, the loop devices, nbdfuse. Declare it after the
/// pair, so that it drops first.
struct Hooked<'a> {
    node: &'a ReplicadNode,
    mountpoint: PathBuf,
}

impl<'a> Hooked<'a> {
    /// A fresh, existing mount point in the node's directory.
    fn new(node: &'a ReplicadNode) -> Hooked<'a> {
        let mountpoint = node.new_path("srv", "mnt");
        fs::create_dir(&mountpoint)
            .unwrap_or_else(|error| panic!("cannot create {}: {error}", mountpoint.display()));
        Hooked { node, mountpoint }
    }

    fn mount_arg(&self) -> &str {
        path_arg(&self.mountpoint)
    }

    fn state_dir(&self) -> PathBuf {
        self.node.run_dir().join("hooks").join(RESOURCE)
    }

    fn fuse_dir(&self) -> PathBuf {
        self.state_dir().join("fuse")
    }

    /// The loop devices over the export's nbdfuse file, from sysfs (which,
    /// unlike `losetup --associated`, never touches the FUSE file, so it
    /// answers even when the export hangs).
    fn loop_devices(&self) -> Vec<String> {
        let file = self.fuse_dir().join("nbd");
        let Ok(entries) = fs::read_dir("/sys/block") else {
            return Vec::new();
        };
        let mut devices: Vec<String> = entries
            .flatten()
            .filter(|entry| {
                fs::read_to_string(entry.path().join("loop/backing_file"))
                    .is_ok_and(|backing| Path::new(backing.trim_end()) == file)
            })
            .map(|entry| format!("/dev/{}", entry.file_name().to_string_lossy()))
            .collect();
        devices.sort();
        devices
    }

    /// The running nbdfuse's pid, from the pid file the hook had it write.
    fn nbdfuse_pid(&self) -> Option<i32> {
        let text = fs::read_to_string(self.state_dir().join("nbdfuse.pid")).ok()?;
        let pid: i32 = text.trim().parse().ok()?;
        Path::new("/proc")
            .join(pid.to_string())
            .exists()
            .then_some(pid)
    }

    /// Panics unless nothing of the exposure is left and the node is
    /// Secondary.
    fn assert_undone(&self) {
        assert!(
            !is_mounted(&self.mountpoint),
            "{} still mounted",
            self.mountpoint.display()
        );
        assert_eq!(
            self.loop_devices(),
            Vec::<String>::new(),
            "loop devices left"
        );
        assert!(!is_mounted(&self.fuse_dir()), "nbdfuse's mount left");
        assert_eq!(self.nbdfuse_pid(), None, "nbdfuse still runs");
        assert_eq!(self.node.status()["role"], "Secondary");
    }

    /// Hook `name` for this node and mount point, then `service`.
    fn command(&self, name: &str, service: &[&str], env: &[(&str, &str)]) -> Command {
        let mut args = vec![RESOURCE, self.mount_arg()];
        args.extend_from_slice(service);
        hook_command(self.node, name, &args, env)
    }

    /// Hook `name` as vrrpd runs it for this node: the options as
    /// arguments, haadm being `haadm`, the storage pair's minute of retries
    /// ([`VRRPD_RETRIES`] × [`VRRPD_RETRY_DELAY`]).
    fn vrrpd_argv(&self, name: &str, haadm: &Path) -> Vec<String> {
        [
            path_arg(&hook_path(name)),
            "-c",
            path_arg(&self.node.config_dir()),
            "--node",
            self.node.name(),
            "--run-dir",
            path_arg(&self.node.run_dir()),
            "--haadm",
            path_arg(haadm),
            "--expose",
            "fuse",
            "--retries",
            VRRPD_RETRIES,
            "--retry-delay",
            VRRPD_RETRY_DELAY,
            RESOURCE,
            self.mount_arg(),
        ]
        .map(str::to_owned)
        .to_vec()
    }

    fn promote(&self, service: &[&str]) -> Finished {
        run_bounded(self.command("promote", service, &[]), HOOK_TIMEOUT)
    }

    fn demote(&self, service: &[&str]) -> Finished {
        run_bounded(self.command("demote", service, &[]), HOOK_TIMEOUT)
    }
}

impl Drop for Hooked<'_> {
    fn drop(&mut self) {
        if is_mounted(&self.mountpoint) {
            cleanup(&["umount", "-l", self.mount_arg()]);
        }
        for device in self.loop_devices() {
            cleanup(&["losetup", "-d", &device]);
        }
        let fuse_dir = self.fuse_dir();
        if is_mounted(&fuse_dir) {
            cleanup(&["fusermount3", "-u", "-z", path_arg(&fuse_dir)]);
        }
        if let Some(pid) = self.nbdfuse_pid() {
            cleanup(&["kill", "-KILL", &pid.to_string()]);
        }
    }
}

/// Runs a cleanup command from `Drop`, where a panic would abort: a
/// failure is printed, and a command still running after
/// [`CLEANUP_TIMEOUT`] (stuck on a hung export) is killed and left behind
/// rather than waited for.
fn cleanup(argv: &[&str]) {
    let mut child = match Command::new(argv[0])
        .args(&argv[1..])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
    {
        Ok(child) => child,
        Err(error) => return eprintln!("cleanup: cannot run {argv:?}: {error}"),
    };
    let ended = wait_until(CLEANUP_TIMEOUT, Duration::from_millis(20), || {
        !matches!(child.try_wait(), Ok(None))
    });
    match (ended, child.try_wait()) {
        (Some(_), Ok(Some(status))) if status.success() => {}
        (Some(_), outcome) => eprintln!("cleanup: {argv:?} failed: {outcome:?}"),
        (None, _) => {
            let _ = child.kill();
            eprintln!("cleanup: {argv:?} still running after {CLEANUP_TIMEOUT:?}; left behind");
        }
    }
}

/// A pass-through wrapper of haadm for `node`'s hooks that logs each call
/// as `ARGS -> EXIT-CODE` to a file; returns the wrapper and the log.
fn logged_haadm(node: &ReplicadNode) -> (PathBuf, PathBuf) {
    let calls = node.new_path("haadm-calls", "log");
    let wrapper = node.new_path("haadm-logged", "sh");
    fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\ncode=0\n'{}' \"$@\" || code=$?\necho \"$* -> $code\" >> '{}'\nexit $code\n",
            binary("haadm").display(),
            calls.display()
        ),
    )
    .expect("write the haadm wrapper");
    fs::set_permissions(&wrapper, fs::Permissions::from_mode(0o755)).expect("chmod the wrapper");
    (wrapper, calls)
}

/// Waits until `calls` (see [`logged_haadm`]) shows `haadm primary`
/// refused: the promote is retrying.
fn wait_for_refused_promote(calls: &Path) {
    wait_for(
        "a promote refused while the peer is Primary",
        || fs::read_to_string(calls).is_ok_and(|log| log.contains("primary r0 -> 11")),
        || fs::read_to_string(calls).unwrap_or_default(),
    );
}

/// Panics unless the hook failed (exit 1) naming `step` and saying `why`.
#[track_caller]
fn expect_step_failure(finished: &Finished, step: &str, why: &str) {
    finished.expect_code(1);
    assert!(
        finished.stderr.contains(&format!("step {step} failed")) && finished.stderr.contains(why),
        "{} should name step {step} and say {why:?}:\n{}",
        finished.command,
        finished.stderr
    );
}

#[test]
fn promote_and_demote_move_a_mounted_file_system_between_the_nodes() {
    let _lock = lab_lock();
    if !require_root() {
        return;
    }
    let pair = synced_pair(&Extras::default());
    let (ha1, ha2) = (Hooked::new(&pair.ha1), Hooked::new(&pair.ha2));
    let service_log = pair.ha1.new_path("service", "log");
    let service = |word: &str| {
        vec![
            "sh".to_owned(),
            "-c".to_owned(),
            format!("echo {word} >> {}", service_log.display()),
        ]
    };
    let start = service("start");
    let start: Vec<&str> = start.iter().map(String::as_str).collect();
    let stop = service("stop");
    let stop: Vec<&str> = stop.iter().map(String::as_str).collect();

    // A new volume holds no file system: promote exposes it and stops at
    // fsck, leaving the device for the operator's mkfs.
    expect_step_failure(&ha1.promote(&start), "fsck", "fsck -p");
    assert!(!is_mounted(&ha1.mountpoint));
    let devices = ha1.loop_devices();
    assert_eq!(
        devices.len(),
        1,
        "promote left its loop device: {devices:?}"
    );
    run_ok(&[path_arg(&program("mkfs.ext4")), "-q", "-F", &devices[0]]);

    let promoted = ha1.promote(&start);
    promoted.expect_code(0);
    assert!(is_mounted(&ha1.mountpoint), "{}", promoted.stdout);
    let content = b"written on ha1 through the promoted mount\n".repeat(1000);
    let file = ha1.mountpoint.join("data.txt");
    fs::write(&file, &content).expect("write a file on the mounted volume");
    run_ok(&["sync", "-f", path_arg(&file)]);

    // Again: every step already done, nothing changes.
    let again = ha1.promote(&start);
    again.expect_code(0);
    for done in [
        "primary: already Primary",
        "expose: nbdfuse already serves",
        "already on loop device",
        "fsck: skipped",
        "mount: already mounted",
    ] {
        assert!(
            again.stdout.contains(done),
            "second promote should say {done:?}:\n{}",
            again.stdout
        );
    }
    assert_eq!(
        ha1.loop_devices(),
        devices,
        "the same loop device, no second one"
    );
    assert_eq!(fs::read(&file).expect("read it back"), content);

    // ha2 cannot take over while ha1 is Primary: refused, named, nothing
    // exposed there; and demote on a never-promoted node succeeds.
    let refused = run_bounded(
        ha2.command("promote", &[], &[("HAPAIR_RETRIES", "2")]),
        HOOK_TIMEOUT,
    );
    expect_step_failure(&refused, "primary", "refused after 3 tries");
    assert!(refused.stdout.contains("retrying"), "{}", refused.stdout);
    ha2.demote(&[]).expect_code(0);
    ha2.assert_undone();

    // The handover of a failover: ha2's promote starts while ha1 is still
    // Primary (its haadm, logged by a pass-through wrapper, is refused),
    // keeps retrying, and succeeds once ha1 has demoted.
    let (wrapper, calls) = logged_haadm(&pair.ha2);
    let takeover = ha2.command(
        "promote",
        &[],
        &[
            ("HAPAIR_HAADM", path_arg(&wrapper)),
            ("HAPAIR_RETRIES", "60"),
        ],
    );
    let takeover = thread::spawn(move || run_bounded(takeover, HOOK_TIMEOUT));
    wait_for_refused_promote(&calls);
    let demoted = ha1.demote(&stop);
    demoted.expect_code(0);
    ha1.assert_undone();
    let takeover = takeover.join().expect("the promote thread");
    takeover.expect_code(0);
    assert!(
        takeover.stdout.contains("primary: refused (try 1"),
        "{}",
        takeover.stdout
    );
    assert!(
        takeover.stdout.contains("primary: promoted"),
        "{}",
        takeover.stdout
    );
    let again = ha1.demote(&stop);
    again.expect_code(0);
    assert!(
        again.stdout.contains("not mounted") && again.stdout.contains("already Secondary"),
        "{}",
        again.stdout
    );
    assert_eq!(
        fs::read_to_string(&service_log).expect("the service command ran"),
        "start\nstart\nstop\nstop\n"
    );

    // The other node serves what ha1 wrote.
    assert_eq!(
        fs::read(ha2.mountpoint.join("data.txt")).expect("ha2 reads the file"),
        content
    );
    ha2.demote(&[]).expect_code(0);
    ha2.assert_undone();

    // A missing mount point stops promote at the mount step; demote
    // cleans up what it had done. (ha1 first learns that ha2 is
    // Secondary again: this is not about the handover.)
    wait_for_status(&pair.ha1, "ha2's demotion", |s| {
        s["peer"]["role"] != "Primary"
    });
    let missing = Hooked {
        node: &pair.ha1,
        mountpoint: pair.ha1.dir().join("no-such-directory"),
    };
    expect_step_failure(&missing.promote(&[]), "mount", "does not exist");
    assert_eq!(pair.ha1.status()["role"], "Primary");
    missing.demote(&[]).expect_code(0);
    missing.assert_undone();
}

/// Promotes `hooked`'s node with an ext4 file system on its volume: the
/// first promote stops at fsck on the new, empty volume, the file system
/// is made, the second promote mounts it.
fn promote_with_a_file_system(hooked: &Hooked) {
    expect_step_failure(&hooked.promote(&[]), "fsck", "fsck -p");
    let devices = hooked.loop_devices();
    assert_eq!(
        devices.len(),
        1,
        "promote left its loop device: {devices:?}"
    );
    run_ok(&[path_arg(&program("mkfs.ext4")), "-q", "-F", &devices[0]]);
    let promoted = hooked.promote(&[]);
    promoted.expect_code(0);
    assert!(is_mounted(&hooked.mountpoint), "{}", promoted.stdout);
}

/// How long a holder may take to be ready, and to end once killed.
const HOLDER_TIMEOUT: Duration = Duration::from_secs(10);

/// A process that keeps a mount busy: `sleep 600` whose working directory
/// is in it, in a process group of its own. Dropping it (also while a test
/// panics) SIGKILLs and reaps it. Declare it after the [`Hooked`] whose
/// mount it holds, so that it drops first.
struct Holder {
    child: Child,
    pid: u32,
}

impl Holder {
    /// Starts the holder in `dir` and waits until it is `sleep` there;
    /// with `ignore_term`, a `sleep` that ignores SIGTERM (the disposition
    /// set by `trap '' TERM` survives the exec).
    fn start(dir: &Path, ignore_term: bool) -> Holder {
        let mut command = if ignore_term {
            let mut command = Command::new("bash");
            command.args(["-c", "trap '' TERM; exec sleep 600"]);
            command
        } else {
            let mut command = Command::new("sleep");
            command.arg("600");
            command
        };
        command
            .current_dir(dir)
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let child = command
            .spawn()
            .unwrap_or_else(|error| panic!("cannot start {command:?}: {error}"));
        let holder = Holder {
            pid: child.id(),
            child,
        };
        let ready = wait_until(HOLDER_TIMEOUT, Duration::from_millis(20), || {
            holder.comm() == "sleep"
                && fs::read_link(format!("/proc/{}/cwd", holder.pid)).is_ok_and(|cwd| cwd == dir)
                && (!ignore_term || holder.ignores_term())
        });
        assert!(
            ready.is_some(),
            "{command:?} (pid {}) is not a sleep in {} {}within {HOLDER_TIMEOUT:?}",
            holder.pid,
            dir.display(),
            if ignore_term { "ignoring SIGTERM " } else { "" }
        );
        holder
    }

    /// Its command name, as fuser and ps show it ("" once it is gone).
    fn comm(&self) -> String {
        fs::read_to_string(format!("/proc/{}/comm", self.pid))
            .unwrap_or_default()
            .trim_end()
            .to_owned()
    }

    /// Whether SIGTERM is in its ignored set (SigIgn in /proc/PID/status).
    fn ignores_term(&self) -> bool {
        let status = fs::read_to_string(format!("/proc/{}/status", self.pid)).unwrap_or_default();
        status
            .lines()
            .find_map(|line| line.strip_prefix("SigIgn:"))
            .and_then(|mask| u64::from_str_radix(mask.trim(), 16).ok())
            .is_some_and(|mask| mask & (1 << (Signal::SIGTERM as i32 - 1)) != 0)
    }

    fn is_alive(&self) -> bool {
        process_is_alive(self.pid)
    }

    /// Waits for it to end (it was killed by someone else) and returns the
    /// signal that ended it; panics if it still runs after
    /// [`HOLDER_TIMEOUT`] or exited by itself.
    fn ending_signal(&mut self) -> i32 {
        let child = &mut self.child;
        let mut status = None;
        wait_until(HOLDER_TIMEOUT, Duration::from_millis(20), || {
            status = child.try_wait().expect("cannot check the holder's status");
            status.is_some()
        });
        let status = status.unwrap_or_else(|| {
            panic!(
                "holder {} still runs {HOLDER_TIMEOUT:?} after it should have been killed",
                self.pid
            )
        });
        status
            .signal()
            .unwrap_or_else(|| panic!("holder {} exited by itself: {status}", self.pid))
    }
}

impl Drop for Holder {
    fn drop(&mut self) {
        // Already reaped or gone: both fine.
        let _ = self.child.kill();
        if let Err(error) = self.child.wait() {
            eprintln!("cleanup: cannot reap holder {}: {error}", self.pid);
        }
    }
}

#[test]
fn demote_kills_what_keeps_the_mount_busy_unless_told_not_to() {
    let _lock = lab_lock();
    if !require_root() {
        return;
    }
    installed_program("fuser", "psmisc");
    let pair = synced_pair(&Extras::default());
    let ha1 = Hooked::new(&pair.ha1);
    promote_with_a_file_system(&ha1);
    let mut holder = Holder::start(&ha1.mountpoint, false);
    let named = format!("{} sleep (root)", holder.pid);
    let still_serving = |what: &str, holder: &Holder| {
        assert!(holder.is_alive(), "{what}: the holder was killed");
        assert!(is_mounted(&ha1.mountpoint), "{what}: the mount is gone");
        assert_eq!(pair.ha1.status()["role"], "Primary", "{what}");
    };

    // A value other than yes or no is a usage error, before any step.
    let bad = run_bounded(
        ha1.command("demote", &[], &[("HAPAIR_KILL_USERS", "maybe")]),
        HOOK_TIMEOUT,
    );
    bad.expect_code(2);
    assert!(
        bad.stderr
            .contains("HAPAIR_KILL_USERS must be yes or no, not 'maybe'"),
        "{}",
        bad.stderr
    );
    still_serving("HAPAIR_KILL_USERS=maybe", &holder);

    // HAPAIR_KILL_USERS=no: the step fails naming the mount point and who
    // holds it, kills nothing and leaves the node Primary.
    let refused = run_bounded(
        ha1.command("demote", &[], &[("HAPAIR_KILL_USERS", "no")]),
        HOOK_TIMEOUT,
    );
    expect_step_failure(&refused, "umount", &format!("umount {}", ha1.mount_arg()));
    assert!(
        refused.stderr.contains(&format!("held by: {named}")),
        "should name the holder {named:?}:\n{}",
        refused.stderr
    );
    still_serving("HAPAIR_KILL_USERS=no", &holder);

    // Run from inside the mount, demote would hold it itself: it refuses
    // before killing anyone.
    let mut inside = ha1.command("demote", &[], &[]);
    inside.current_dir(&ha1.mountpoint);
    let inside = run_bounded(inside, HOOK_TIMEOUT);
    expect_step_failure(&inside, "umount", "working directory");
    still_serving("demote run from inside the mount", &holder);

    // The default: SIGTERM, which ends the holder; unmounted; Secondary.
    let demoted = ha1.demote(&[]);
    demoted.expect_code(0);
    for said in [
        format!("sending SIGTERM to its users: {named}"),
        format!("umount: {} unmounted after SIGTERM", ha1.mount_arg()),
        "secondary: demoted".to_owned(),
    ] {
        assert!(
            demoted.stdout.contains(&said),
            "demote should say {said:?}:\n{}",
            demoted.stdout
        );
    }
    assert!(
        !demoted.stdout.contains("SIGKILL"),
        "SIGTERM was enough:\n{}",
        demoted.stdout
    );
    assert_eq!(holder.ending_signal(), Signal::SIGTERM as i32);
    assert!(!holder.is_alive());
    ha1.assert_undone();
}

#[test]
fn demote_sigkills_a_mount_user_that_ignores_sigterm() {
    let _lock = lab_lock();
    if !require_root() {
        return;
    }
    installed_program("fuser", "psmisc");
    let pair = synced_pair(&Extras::default());
    let ha1 = Hooked::new(&pair.ha1);
    promote_with_a_file_system(&ha1);
    let mut holder = Holder::start(&ha1.mountpoint, true);
    let named = format!("{} sleep (root)", holder.pid);

    let demoted = run_bounded(
        ha1.command("demote", &[], &[("HAPAIR_KILL_TIMEOUT", "1")]),
        HOOK_TIMEOUT,
    );
    demoted.expect_code(0);
    for said in [
        format!("sending SIGTERM to its users: {named}"),
        format!("still busy 1s after SIGTERM, sending SIGKILL to its users: {named}"),
        format!("umount: {} unmounted after SIGKILL", ha1.mount_arg()),
        "secondary: demoted".to_owned(),
    ] {
        assert!(
            demoted.stdout.contains(&said),
            "demote should say {said:?}:\n{}",
            demoted.stdout
        );
    }
    assert_eq!(holder.ending_signal(), Signal::SIGKILL as i32);
    assert!(!holder.is_alive());
    ha1.assert_undone();
}

/// The retries of the hooks vrrpd runs in these tests: a minute in all,
/// as the storage pair's hooks have.
const VRRPD_RETRIES: &str = "600";
const VRRPD_RETRY_DELAY: &str = "0.1";
/// How soon a promote must give up once its instance left MASTER: a few of
/// its tenth-of-a-second tries, far below its minute of retries.
const GIVE_UP_BOUND: Duration = Duration::from_secs(5);

/// ha1 Primary, ha2 Secondary and seeing ha1 so: ha2's promote is refused.
fn pair_with_ha1_primary() -> Pair {
    let pair = synced_pair(&Extras::default());
    pair.ha1.haadm(&["primary", RESOURCE]).expect_code(0);
    wait_for_status(&pair.ha2, "ha1's promotion", |s| {
        s["peer"]["role"] == "Primary"
    });
    pair
}

/// The hook runs `journal` holds for instance VI_1, oldest first.
fn vi_1_hook_runs(journal: &Path) -> Vec<JournalEntry> {
    let contents = read_journal(journal).unwrap_or_else(|error| panic!("{error}"));
    assert!(
        contents.corrupt.is_empty(),
        "corrupt journal lines: {:#?}",
        contents.corrupt
    );
    contents
        .entries
        .into_iter()
        .filter(|entry| entry.queue == "VI_1")
        .collect()
}

#[test]
fn a_promote_vrrpd_ran_gives_up_once_the_instance_left_master() {
    let _lock = lab_lock();
    if !require_root() {
        return;
    }
    let pair = pair_with_ha1_primary();
    let ha2 = Hooked::new(&pair.ha2);
    let (haadm, calls) = logged_haadm(&pair.ha2);

    // A vrrpd alone in its lab becomes MASTER and runs ha2's promote, which
    // is refused (ha1 is Primary) and retries. With master_hook_failure:
    // fault, a failed promote would put the instance into FAULT, were it
    // for the mastership the instance holds.
    let lab = Lab::new(2);
    let fast = |priority| VrrpInstance {
        version: 3,
        advert_int: Duration::from_millis(200),
        ..VrrpInstance::new(55, priority, "10.99.0.100/24")
    };
    let hooked = VrrpInstance {
        hooks: Hooks {
            notify_master: ha2.vrrpd_argv("promote", &haadm),
            notify_backup: ha2.vrrpd_argv("demote", &haadm),
            notify_timeout: Some(HOOK_TIMEOUT),
            ..Hooks::default()
        },
        ..fast(100)
    };
    let config = format!(
        "{}    master_hook_failure: fault\n",
        vrrpd_config(std::slice::from_ref(&hooked))
    );
    let vrrpd = Vrrpd::start(lab.host(1), &config);
    wait_for_refused_promote(&calls);

    // A better router turns up: the instance goes back to BACKUP while its
    // promote still has most of a minute of retries left.
    let better = fast(200);
    let _better = Vrrpd::start(lab.host(2), &vrrpd_config(std::slice::from_ref(&better)));
    wait_for_state(
        &vrrpd,
        "VI_1",
        "BACKUP",
        with_margin(better.master_down_interval()) + Duration::from_secs(3),
    );
    let left_master = Instant::now();
    let journal = vrrpd.journal_path();
    let promote_ended =
        |runs: &[JournalEntry]| runs.iter().any(|run| run.hook == "VI_1 notify_master");
    wait_until(GIVE_UP_BOUND, POLL, || {
        promote_ended(&vi_1_hook_runs(&journal))
    })
    .unwrap_or_else(|| {
        panic!(
            "the promote still ran {GIVE_UP_BOUND:?} after VI_1 left MASTER; hook runs: \
                 {:#?}\nhaadm calls:\n{}",
            vi_1_hook_runs(&journal),
            fs::read_to_string(&calls).unwrap_or_default()
        )
    });
    println!(
        "the promote gave up {:?} after VI_1 left MASTER",
        left_master.elapsed()
    );
    let log = vrrpd.proc().log();
    assert!(
        log.contains(
            "step primary failed: VI_1 left MASTER (now BACKUP): this promote is out of date; \
             giving up, the demote hook follows"
        ),
        "vrrpd's log should hold the promote's reason:\n{log}"
    );

    // The demote queued behind it runs; ha2 stays Secondary with nothing
    // exposed, and vrrpd ignores the failed promote of a mastership it no
    // longer holds: no FAULT.
    wait_for(
        "the demote after the promote",
        || {
            let runs = vi_1_hook_runs(&journal);
            runs.iter()
                .skip_while(|run| run.hook != "VI_1 notify_master")
                .any(|run| run.hook == "VI_1 notify_backup")
        },
        || format!("{:#?}", vi_1_hook_runs(&journal)),
    );
    let runs = vi_1_hook_runs(&journal);
    let outcomes: Vec<(&str, &JournalOutcome)> = runs
        .iter()
        .map(|run| (run.hook.as_str(), &run.outcome))
        .collect();
    assert_eq!(
        outcomes,
        [
            (
                "VI_1 notify_backup",
                &JournalOutcome::Exited { exit_code: 0 }
            ),
            (
                "VI_1 notify_master",
                &JournalOutcome::Exited { exit_code: 3 }
            ),
            (
                "VI_1 notify_backup",
                &JournalOutcome::Exited { exit_code: 0 }
            ),
        ],
        "the hook runs: the first BACKUP, the MASTER, the BACKUP again"
    );
    ha2.assert_undone();
    let instance = vrrpd.instance("VI_1").expect("vrrpd lists VI_1");
    assert!(
        instance["state"] == "BACKUP" && !held_by_master_hook(&instance),
        "VI_1 should be BACKUP with no notify_master hold: {instance}"
    );
    let log = vrrpd.proc().log();
    assert!(
        log.lines().any(|line| line.contains("VI_1: notify_master")
            && line.contains("no longer the Master it ran for")),
        "vrrpd should say it ignores the failed promote:\n{log}"
    );
}

#[test]
fn a_promote_run_by_hand_retries_whatever_vrrpd_says() {
    let _lock = lab_lock();
    if !require_root() {
        return;
    }
    let pair = pair_with_ha1_primary();
    let ha2 = Hooked::new(&pair.ha2);
    // State files as vrrpd writes them (cut to what haadm reads).
    let state_file = |state: &str| {
        let path = pair.ha2.new_path("vrrp-state", "json");
        fs::write(
            &path,
            format!(r#"{{"pid": 1, "instances": [{{"name": "VI_1", "state": "{state}"}}]}}"#),
        )
        .expect("write a state file");
        path
    };
    let backup = state_file("BACKUP");
    let master = state_file("MASTER");
    let missing = pair.ha2.dir().join("no-such-state.json");
    let vrrpd_env = |file: &Path| {
        vec![
            ("HAPAIR_STATE_FILE", path_arg(file).to_owned()),
            ("HAPAIR_INSTANCE", "VI_1".to_owned()),
            ("HAPAIR_STATE", "MASTER".to_owned()),
        ]
    };
    let cases = [
        ("run by hand", Vec::new()),
        (
            "run by hand, with only a state file saying BACKUP",
            vec![("HAPAIR_STATE_FILE", path_arg(&backup).to_owned())],
        ),
        (
            "vrrpd's variables, the state file missing",
            vrrpd_env(&missing),
        ),
        ("vrrpd's variables, VI_1 still MASTER", vrrpd_env(&master)),
    ];
    for (case, env) in cases {
        let mut env: Vec<(&str, &str)> = env
            .iter()
            .map(|(key, value)| (*key, value.as_str()))
            .collect();
        env.extend([("HAPAIR_RETRIES", "4"), ("HAPAIR_RETRY_DELAY", "0.1")]);
        let refused = run_bounded(ha2.command("promote", &[], &env), HOOK_TIMEOUT);
        expect_step_failure(&refused, "primary", "refused after 5 tries");
        assert_eq!(
            refused.stdout.matches("primary: refused (try ").count(),
            4,
            "{case}: every retry is made:\n{}",
            refused.stdout
        );
        assert!(
            !refused.stderr.contains("out of date"),
            "{case}:\n{}",
            refused.stderr
        );
        assert_eq!(
            refused.stdout.contains("retrying as if run by hand"),
            case.contains("missing"),
            "{case}: an unreadable state file is said once:\n{}",
            refused.stdout
        );
        assert_eq!(pair.ha2.status()["role"], "Secondary", "{case}");
    }
}

/// Runs `haadm check ARGS` on `node`; panics unless it exits with `code`
/// and its one line starts with `HAPAIR <word> - ` and contains `words`.
#[track_caller]
fn expect_check(node: &ReplicadNode, args: &[&str], code: i32, words: &[&str]) {
    let mut argv = vec!["check"];
    argv.extend_from_slice(args);
    let finished = node.haadm(&argv);
    finished.expect_code(code);
    let word = ["OK", "WARNING", "CRITICAL", "UNKNOWN"][usize::try_from(code).expect("0..=3")];
    let line = finished.stdout.trim_end();
    assert!(
        !line.contains('\n') && line.starts_with(&format!("HAPAIR {word} - ")),
        "{}: one line, HAPAIR {word}: {line}",
        node.name()
    );
    for expected in words {
        assert!(
            line.contains(expected),
            "{}: {line:?} should contain {expected:?}",
            node.name()
        );
    }
}

fn read_track_file(path: &Path) -> String {
    fs::read_to_string(path)
        .unwrap_or_else(|error| panic!("cannot read {}: {error}", path.display()))
}

#[test]
fn haadm_check_gives_each_nagios_code_in_its_scenario() {
    let _lock = lab_lock();
    if !require_root() {
        return;
    }
    let mut pair = synced_pair(&Extras::default());
    let track = pair.ha1.new_path("track", "value");
    let track_arg = path_arg(&track).to_owned();

    // OK: a synced pair, ha1's vrrpd MASTER (a real vrrpd, alone in a lab
    // of its own, so it takes the master role).
    let lab = Lab::new(1);
    let instance = VrrpInstance::new(51, 150, "10.99.0.100/24");
    let mut vrrpd = Vrrpd::start(lab.host(1), &vrrpd_config(std::slice::from_ref(&instance)));
    wait_for_state(
        &vrrpd,
        "VI_1",
        "MASTER",
        with_margin(instance.master_down_interval()) + Duration::from_secs(2),
    );
    let state = vrrpd.state_path();
    let state_arg = path_arg(&state).to_owned();
    expect_check(
        &pair.ha1,
        &["--vrrp-state", &state_arg, "--write-track-file", &track_arg],
        0,
        &["HAPAIR OK - r0 Primary/Secondary UpToDate/UpToDate Connected; VI_1 MASTER"],
    );
    assert_eq!(read_track_file(&track), "0\n");
    expect_check(
        &pair.ha2,
        &[],
        0,
        &["r0 Secondary/Primary UpToDate/UpToDate Connected"],
    );

    // CRITICAL: vrrpd stopped, its state file left naming a dead pid.
    vrrpd.stop(Duration::from_secs(15));
    expect_check(
        &pair.ha1,
        &["--vrrp-state", &state_arg],
        2,
        &["vrrpd is not running"],
    );
    // UNKNOWN: a state file named but missing.
    let missing = pair.ha1.dir().join("no-such-state.json");
    expect_check(
        &pair.ha1,
        &["--vrrp-state", path_arg(&missing)],
        3,
        &["no-such-state.json"],
    );

    // WARNING: ha2 disconnected; ha1 waits for it, ha2 stands alone.
    pair.ha2.haadm(&["disconnect", RESOURCE]).expect_code(0);
    wait_for_status(&pair.ha1, "the lost connection", |s| {
        s["peer"]["connection"] == "Connecting"
    });
    expect_check(
        &pair.ha1,
        &["--write-track-file", &track_arg],
        1,
        &["r0: peer ha2 not connected (Connecting)"],
    );
    assert_eq!(
        read_track_file(&track),
        "0\n",
        "a Primary that lost its peer is still fit"
    );
    expect_check(&pair.ha2, &[], 1, &["r0: StandAlone, not replicating"]);
    pair.ha2.haadm(&["connect", RESOURCE]).expect_code(0);
    wait_for_status(&pair.ha1, "the reconnect", in_sync);

    // CRITICAL: a split brain, on both nodes.
    make_split_brain(&pair, &(MIB..2 * MIB), &(3 * MIB..4 * MIB));
    for node in [&pair.ha1, &pair.ha2] {
        node.haadm(&["connect", RESOURCE]).expect_code(0);
    }
    for node in [&pair.ha1, &pair.ha2] {
        wait_for_status(node, "split-brain detection", |s| {
            s["peer"]["split_brain"] == true
        });
        expect_check(
            node,
            &[],
            2,
            &["r0: split brain", "haadm connect --discard-my-data r0"],
        );
    }

    // UNKNOWN: replicad not running; the track file says unfit.
    pair.ha1.crash();
    expect_check(
        &pair.ha1,
        &["--write-track-file", &track_arg],
        3,
        &["replicad is not running"],
    );
    assert_eq!(read_track_file(&track), "1\n");
}
