//! vrrpd's notify hooks in a live pair: they run in order, with
//! keepalived's arguments, after the address moved; a hook that hangs is
//! killed at its timeout while the daemon goes on advertising.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use hapair_lab::{
    Hooks, Lab, VrrpInstance, Vrrpd, installed_program, lab_lock, process_is_alive, require_root,
    vrrpd_config, wait_until,
};

use crate::common::{POLL, sole_holder, vip, wait_for_sole_holder, wait_for_state, with_margin};

const VIP: &str = "10.99.0.100/24";

/// A hook that appends one line per run to `record`: its arguments, and
/// whether eth0 held the virtual address while it ran.
fn recording_hook(lab: &Lab, record: &Path) -> String {
    let ip = installed_program("ip", "iproute2");
    let script = format!(
        "#!/bin/sh\n\
         # Records how it was called and whether eth0 held {VIP} then.\n\
         if {ip} -o addr show dev eth0 | grep -q ' {VIP} '; then vip=held; else vip=absent; fi\n\
         echo \"$0 $* [$vip]\" >> {record}\n",
        ip = ip.display(),
        record = record.display(),
    );
    let path = lab.write_executable("record-hook", &script);
    path.to_str().expect("UTF-8 path").to_owned()
}

/// The lines of `record` with the hook's own path (`$0`) checked and cut.
fn recorded(record: &Path, hook: &str) -> Vec<String> {
    let text = fs::read_to_string(record).unwrap_or_default();
    text.lines()
        .map(|line| {
            line.strip_prefix(hook)
                .and_then(|rest| rest.strip_prefix(' '))
                .unwrap_or_else(|| panic!("a hook line not starting with {hook}: {line:?}"))
                .to_owned()
        })
        .collect()
}

/// Waits until `record` has at least `count` lines; panics showing them.
fn wait_for_lines(record: &Path, hook: &str, count: usize, timeout: Duration) -> Vec<String> {
    wait_until(timeout, POLL, || recorded(record, hook).len() >= count);
    let lines = recorded(record, hook);
    assert!(
        lines.len() >= count,
        "expected {count} hook runs within {timeout:?}, got {lines:#?}"
    );
    lines
}

/// A hook that starts a child, writes "<its pid> <child's pid>" to
/// `pids_file` (atomically) and waits forever: both must go at the timeout.
pub(crate) fn hanging_hook(lab: &Lab, pids_file: &Path) -> PathBuf {
    lab.write_executable(
        "hang-hook",
        &format!(
            "#!/bin/sh\nsleep 1000 &\necho \"$$ $!\" > {pids}.tmp && mv {pids}.tmp {pids}\nwait\n",
            pids = pids_file.display()
        ),
    )
}

/// The pids a [`hanging_hook`] wrote: its own, then its child's.
pub(crate) fn hanging_pids(pids_file: &Path) -> Vec<u32> {
    let pids: Vec<u32> = fs::read_to_string(pids_file)
        .expect("the hook wrote its pids")
        .split_whitespace()
        .map(|pid| pid.parse().expect("a pid"))
        .collect();
    assert_eq!(pids.len(), 2, "{pids:?}");
    pids
}

#[test]
fn hooks_run_in_order_with_keepalived_arguments() {
    let _lock = lab_lock();
    if !require_root() {
        return;
    }
    let lab = Lab::new(2);
    let (h1, h2) = (lab.host(1), lab.host(2));
    let record = lab.dir().join("hook-runs");
    let hook = recording_hook(&lab, &record);
    let argv = |name: &str| vec![hook.clone(), name.to_owned()];
    let watched = VrrpInstance {
        hooks: Hooks {
            notify_master: argv("notify_master"),
            notify_backup: argv("notify_backup"),
            notify_fault: argv("notify_fault"),
            notify_stop: argv("notify_stop"),
            notify: argv("notify"),
            notify_timeout: Some(Duration::from_secs(5)),
        },
        ..VrrpInstance::new(51, 150, VIP)
    };
    let preempting = VrrpInstance::new(51, 200, VIP);

    let mut first = Vrrpd::start(h1, &vrrpd_config(std::slice::from_ref(&watched)));
    // Every instance starts as backup, and says so.
    wait_for_lines(&record, &hook, 2, Duration::from_secs(3));
    // Alone, it becomes master.
    let takes = with_margin(watched.master_down_interval()) + Duration::from_secs(2);
    wait_for_lines(&record, &hook, 4, takes);
    // A higher priority joins and preempts it.
    let _second = Vrrpd::start(h2, &vrrpd_config(std::slice::from_ref(&preempting)));
    let takes = with_margin(preempting.master_down_interval()) + Duration::from_secs(2);
    wait_for_sole_holder(&[h1, h2], vip(&watched), h2, takes);
    let lines = wait_for_lines(&record, &hook, 6, Duration::from_secs(3));
    assert_eq!(
        lines,
        [
            "notify_backup [absent]",
            "notify INSTANCE VI_1 BACKUP 150 [absent]",
            "notify_master [held]",
            "notify INSTANCE VI_1 MASTER 150 [held]",
            "notify_backup [absent]",
            "notify INSTANCE VI_1 BACKUP 150 [absent]",
        ],
        "hook runs, in order"
    );

    let status = first.stop(Duration::from_secs(10));
    assert!(status.success(), "h1's vrrpd exited with {status}");
    // notify_stop has run by the time vrrpd exits; the generic hook may
    // follow with keepalived's STOP line.
    let lines = recorded(&record, &hook);
    assert_eq!(
        lines.get(6).map(String::as_str),
        Some("notify_stop [absent]"),
        "{lines:#?}"
    );
    for line in &lines[7..] {
        assert!(
            line.starts_with("notify INSTANCE VI_1 STOP ") && line.ends_with(" [absent]"),
            "unexpected hook run after notify_stop: {line:?} in {lines:#?}"
        );
    }
    assert!(lines.len() <= 8, "{lines:#?}");
}

#[test]
fn hanging_notify_master_is_killed_while_adverts_go_on() {
    let _lock = lab_lock();
    if !require_root() {
        return;
    }
    let lab = Lab::new(2);
    let (h1, h2) = (lab.host(1), lab.host(2));
    let hosts = [h1, h2];
    let pids_file = lab.dir().join("hang-pids");
    let hang = hanging_hook(&lab, &pids_file);
    let notify_timeout = Duration::from_secs(1);
    // 0.2 s adverts: a daemon stuck for the hook's second would let h2's
    // 0.72 s master-down interval run out, yet a loaded machine's scheduling
    // hiccups stay well inside it.
    let fast = |priority| VrrpInstance {
        version: 3,
        advert_int: Duration::from_millis(200),
        ..VrrpInstance::new(52, priority, VIP)
    };
    let hanging = VrrpInstance {
        hooks: Hooks {
            notify_master: vec![hang.to_str().expect("UTF-8 path").to_owned()],
            notify_timeout: Some(notify_timeout),
            ..Hooks::default()
        },
        ..fast(150)
    };
    let watching = fast(100);
    let vip = vip(&hanging);

    let mut first = Vrrpd::start(h1, &vrrpd_config(std::slice::from_ref(&hanging)));
    let takes = with_margin(hanging.master_down_interval()) + Duration::from_secs(3);
    wait_until(takes, Duration::from_millis(5), || pids_file.exists())
        .unwrap_or_else(|| panic!("h1 did not become master and run notify_master in {takes:?}"));
    let hook_started = Instant::now();
    let second = Vrrpd::start(h2, &vrrpd_config(std::slice::from_ref(&watching)));
    let pids = hanging_pids(&pids_file);

    // Until a second after the hook is gone: h1 alone holds the address,
    // and h2 never reports MASTER.
    let kill_deadline = notify_timeout + Duration::from_millis(1500);
    let mut hook_gone_after = None;
    loop {
        let now = hook_started.elapsed();
        if let Err(message) = sole_holder(&hosts, vip, h1) {
            panic!("{now:?} after the hook started: {message}");
        }
        let peer_state = second.instance_state("VI_1");
        assert_ne!(
            peer_state.as_deref(),
            Some("MASTER"),
            "h2 took over {now:?} after the hook started"
        );
        match hook_gone_after {
            None if pids.iter().all(|&pid| !process_is_alive(pid)) => hook_gone_after = Some(now),
            None => assert!(
                now < kill_deadline,
                "hook {pids:?} still running after {now:?}"
            ),
            Some(gone) if now > gone + Duration::from_secs(1) => break,
            Some(_) => {}
        }
        std::thread::sleep(POLL);
    }
    let gone = hook_gone_after.expect("the loop ends after the hook is gone");
    assert!(
        gone >= notify_timeout * 4 / 5,
        "the hook was gone {gone:?} after it started, before its {notify_timeout:?} timeout"
    );
    wait_for_state(&first, "VI_1", "MASTER", Duration::from_secs(1));
    let watching_state = wait_for_state(&second, "VI_1", "BACKUP", Duration::from_secs(1));
    assert_eq!(watching_state["master"], "10.99.0.1", "{watching_state}");

    // h2 was able to take over all along: it does as soon as h1 is gone.
    first.crash();
    let bound = with_margin(watching.master_down_interval()) + Duration::from_millis(100);
    wait_until(bound, POLL, || h2.has_address(vip))
        .unwrap_or_else(|| panic!("h2 did not take {vip} within {bound:?} of h1's SIGKILL"));
}
