//! vrrpd reloading its config on SIGHUP in a live pair: an unchanged
//! instance goes on as if nothing happened (same state, counters, address,
//! no hooks), a changed one is stopped and started anew, a removed one
//! gives its address to the peer, and a config with an error is refused
//! while the running one stays.

use std::fs;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use hapair_lab::{
    Hooks, Host, Lab, VrrpInstance, Vrrpd, lab_lock, require_root, vrrpd_config, wait_until,
};
use serde_json::Value;

use crate::common::{
    POLL, assert_holds_for, counter, holders, sole_holder, vip, wait_for_instance,
    wait_for_sole_holder, wait_for_state, with_margin,
};

/// h1's priority for both instances at the start; h2 runs them at
/// [`PEER_PRIORITY`].
const PRIORITY: u8 = 150;
const PEER_PRIORITY: u8 = 100;

/// VI_1 (router 51, 10.99.0.100) and VI_2 (router 52, 10.99.0.101) at
/// these priorities, each running `notify` (if any) on every transition.
fn instances(priority_1: u8, priority_2: u8, notify: &[String]) -> [VrrpInstance; 2] {
    let hooks = Hooks {
        notify: notify.to_vec(),
        ..Hooks::default()
    };
    [
        VrrpInstance {
            hooks: hooks.clone(),
            ..VrrpInstance::new(51, priority_1, "10.99.0.100/24")
        },
        VrrpInstance {
            name: "VI_2".to_owned(),
            hooks,
            ..VrrpInstance::new(52, priority_2, "10.99.0.101/24")
        },
    ]
}

/// h1's vrrpd and h2's, both instances MASTER on h1 and BACKUP on h2,
/// with the file recording h1's hook runs.
struct Pair {
    first: Vrrpd,
    second: Vrrpd,
    /// One line per run of h1's `notify` hook: its arguments.
    record: PathBuf,
    /// h1's `notify` hook: the argv that appends to `record`.
    notify: Vec<String>,
}

/// Starts both nodes and waits until h1 alone holds both addresses, both
/// of its instances report MASTER and both of h2's BACKUP, and h1's hook
/// has recorded BACKUP then MASTER for each instance.
fn converged_pair(lab: &Lab) -> Pair {
    let (h1, h2) = (lab.host(1), lab.host(2));
    let record = lab.dir().join("notify-runs");
    let hook = lab.write_executable(
        "notify-hook",
        &format!(
            "#!/bin/sh\n# Records the arguments of each run.\necho \"$*\" >> {}\n",
            record.display()
        ),
    );
    let notify = vec![hook.to_str().expect("UTF-8 path").to_owned()];
    let mine = instances(PRIORITY, PRIORITY, &notify);
    let first = Vrrpd::start(h1, &vrrpd_config(&mine));
    let second = Vrrpd::start(
        h2,
        &vrrpd_config(&instances(PEER_PRIORITY, PEER_PRIORITY, &[])),
    );
    let takes = with_margin(mine[0].master_down_interval()) + Duration::from_secs(2);
    for instance in &mine {
        wait_for_sole_holder(&[h1, h2], vip(instance), h1, takes);
        wait_for_state(&first, &instance.name, "MASTER", takes);
        wait_for_state(&second, &instance.name, "BACKUP", takes);
    }
    let lines = wait_for_lines(&record, 4, Duration::from_secs(3));
    let mut sorted = lines.clone();
    sorted.sort();
    assert_eq!(
        sorted,
        [
            "INSTANCE VI_1 BACKUP 150",
            "INSTANCE VI_1 MASTER 150",
            "INSTANCE VI_2 BACKUP 150",
            "INSTANCE VI_2 MASTER 150",
        ],
        "h1's hook runs while converging: {lines:#?}"
    );
    Pair {
        first,
        second,
        record,
        notify,
    }
}

/// The lines of the hook record (none before the first run).
fn recorded(record: &Path) -> Vec<String> {
    fs::read_to_string(record)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// Waits until `record` has at least `count` lines; panics showing them.
fn wait_for_lines(record: &Path, count: usize, timeout: Duration) -> Vec<String> {
    wait_until(timeout, POLL, || recorded(record).len() >= count);
    let lines = recorded(record);
    assert!(
        lines.len() >= count,
        "expected {count} hook runs within {timeout:?}, got {lines:#?}"
    );
    lines
}

/// h1's state file entry for `name`; panics when there is none.
fn entry(vrrpd: &Vrrpd, name: &str) -> Value {
    vrrpd.instance(name).unwrap_or_else(|| {
        panic!(
            "h1's state file has no entry for {name}: {:?}",
            vrrpd.state()
        )
    })
}

/// The addresses of the two instances.
fn vips() -> [IpAddr; 2] {
    instances(PRIORITY, PRIORITY, &[]).map(|instance| vip(&instance))
}

/// Checks that VI_1 ran on unharmed: still advertising (its counters go
/// on from `before`, within two advert intervals and a state file
/// refresh), MASTER with its address, transitions as `before`, and no hook
/// run for it since.
fn assert_untouched(first: &Vrrpd, before: &Value, hook_lines: &[String]) {
    let sent_before = counter(before, "adverts_sent");
    let after = wait_for_instance(
        first,
        "VI_1",
        &format!("more than the {sent_before} adverts sent before the reload"),
        Duration::from_secs(4),
        |instance| counter(instance, "adverts_sent") > sent_before,
    );
    assert_eq!(after["state"], "MASTER", "{after}");
    assert_eq!(after["vips"], before["vips"], "{after}");
    assert_eq!(
        counter(&after, "transitions"),
        counter(before, "transitions"),
        "VI_1 changed state across the reload: before {before}, after {after}"
    );
    let touched: Vec<&String> = hook_lines
        .iter()
        .filter(|line| line.contains(" VI_1 "))
        .collect();
    assert!(
        touched.is_empty(),
        "VI_1 ran hooks across the reload: {touched:?}"
    );
}

#[test]
fn sighup_restarts_only_the_changed_instance() {
    let _lock = lab_lock();
    if !require_root() {
        return;
    }
    let lab = Lab::new(2);
    let (h1, h2) = (lab.host(1), lab.host(2));
    let hosts = [h1, h2];
    let [vip_1, vip_2] = vips();
    let pair = converged_pair(&lab);
    let first = &pair.first;
    let before = entry(first, "VI_1");
    let lines_before = recorded(&pair.record).len();

    let raised = instances(PRIORITY, 160, &pair.notify);
    first.reload(&vrrpd_config(&raised));
    // VI_2 stops (h2 takes its address after its skew time), starts again
    // as BACKUP and preempts h2 after its master-down interval. VI_1's
    // address must stay on h1 all along.
    let bound = with_margin(raised[1].master_down_interval() + raised[1].skew_time())
        + Duration::from_secs(2);
    let mut peer_held_vip_2 = false;
    wait_until(bound, POLL, || {
        if let Err(message) = sole_holder(&hosts, vip_1, h1) {
            panic!("during the reload: {message}");
        }
        peer_held_vip_2 |= h2.has_address(vip_2);
        first
            .instance("VI_2")
            .is_some_and(|instance| instance["state"] == "MASTER" && instance["priority"] == 160)
    })
    .unwrap_or_else(|| {
        panic!(
            "VI_2 was not MASTER at priority 160 within {bound:?} of SIGHUP: {:?}",
            first.instance("VI_2")
        )
    });
    assert!(
        peer_held_vip_2,
        "h2 never held {vip_2}: VI_2 was not stopped (priority 0) by the reload"
    );
    wait_for_sole_holder(&hosts, vip_2, h1, Duration::from_secs(1));

    let restarted = entry(first, "VI_2");
    assert_eq!(restarted["effective_priority"], 160, "{restarted}");
    assert_eq!(restarted["vips"], serde_json::json!(["10.99.0.101/24"]));
    let lines = wait_for_lines(&pair.record, lines_before + 3, Duration::from_secs(3));
    let new_lines = &lines[lines_before..];
    assert!(
        new_lines[0].starts_with("INSTANCE VI_2 STOP "),
        "the old VI_2 stops first: {new_lines:#?}"
    );
    assert_eq!(
        new_lines[1..],
        ["INSTANCE VI_2 BACKUP 160", "INSTANCE VI_2 MASTER 160"],
        "then the new one starts: {new_lines:#?}"
    );
    assert_untouched(first, &before, new_lines);
    wait_for_state(&pair.second, "VI_2", "BACKUP", Duration::from_secs(1));
}

#[test]
fn sighup_with_an_invalid_config_keeps_the_running_one() {
    let _lock = lab_lock();
    if !require_root() {
        return;
    }
    let lab = Lab::new(2);
    let (h1, h2) = (lab.host(1), lab.host(2));
    let hosts = [h1, h2];
    let [vip_1, vip_2] = vips();
    let mut pair = converged_pair(&lab);
    let before = entry(&pair.first, "VI_1");
    let before_2 = entry(&pair.first, "VI_2");
    let lines_before = recorded(&pair.record).len();

    let valid = vrrpd_config(&instances(PRIORITY, PRIORITY, &pair.notify));
    let invalid = valid.replace("virtual_router_id: 52", "virtual_router_id: 300");
    assert_ne!(invalid, valid, "the config renders virtual_router_id: 52");
    pair.first.reload(&invalid);
    let log = pair.first.proc().log_path().to_owned();
    let mut refusal = None;
    wait_until(Duration::from_secs(3), POLL, || {
        refusal = fs::read_to_string(&log).ok().and_then(|text| {
            text.lines()
                .find(|line| line.contains("reload refused"))
                .map(str::to_owned)
        });
        refusal.is_some()
    });
    let refusal = refusal.unwrap_or_else(|| {
        panic!(
            "h1's vrrpd logged no refused reload within 3 s; log {}",
            log.display()
        )
    });
    assert!(
        refusal.contains("virtual_router_id") && refusal.contains("300"),
        "the refusal names the bad setting and value: {refusal}"
    );

    // Longer than h2's master-down interval: a VI_2 stopped by mistake
    // would have lost its address to h2 by then.
    assert_holds_for(Duration::from_secs(4), || {
        sole_holder(&hosts, vip_1, h1)?;
        sole_holder(&hosts, vip_2, h1)
    });
    assert!(
        pair.first.proc_mut().is_running(),
        "h1's vrrpd exited on an invalid config"
    );
    assert_untouched(
        &pair.first,
        &before,
        &recorded(&pair.record)[lines_before..],
    );
    let after_2 = entry(&pair.first, "VI_2");
    assert_eq!(after_2["state"], "MASTER", "{after_2}");
    assert_eq!(
        counter(&after_2, "transitions"),
        counter(&before_2, "transitions"),
        "VI_2 changed state on a refused reload: before {before_2}, after {after_2}"
    );
    assert_eq!(
        recorded(&pair.record).len(),
        lines_before,
        "hooks ran on a refused reload"
    );
}

#[test]
fn sighup_without_an_instance_hands_its_address_to_the_peer() {
    let _lock = lab_lock();
    if !require_root() {
        return;
    }
    let lab = Lab::new(2);
    let (h1, h2) = (lab.host(1), lab.host(2));
    let hosts: [&Host; 2] = [h1, h2];
    let [vip_1, vip_2] = vips();
    let pair = converged_pair(&lab);
    let first = &pair.first;
    let before = entry(first, "VI_1");
    let lines_before = recorded(&pair.record).len();

    let [kept, _] = instances(PRIORITY, PRIORITY, &pair.notify);
    first.reload(&vrrpd_config(std::slice::from_ref(&kept)));
    // The removed instance advertises priority 0: h2 takes over after its
    // skew time, not its whole master-down interval.
    let [_, peer] = instances(PEER_PRIORITY, PEER_PRIORITY, &[]);
    let bound = with_margin(peer.skew_time()) + Duration::from_millis(500);
    let mut last_seen = Vec::new();
    wait_until(bound, POLL, || {
        if let Err(message) = sole_holder(&hosts, vip_1, h1) {
            panic!("during the reload: {message}");
        }
        last_seen = holders(&hosts, vip_2);
        last_seen == [h2.name()]
    })
    .unwrap_or_else(|| {
        panic!("{vip_2} was not h2's alone within {bound:?} of SIGHUP; held by {last_seen:?}")
    });
    wait_for_state(&pair.second, "VI_2", "MASTER", Duration::from_secs(1));
    assert_eq!(
        first.instance("VI_2"),
        None,
        "the removed instance is gone from h1's state file"
    );

    let lines = wait_for_lines(&pair.record, lines_before + 1, Duration::from_secs(3));
    let new_lines = &lines[lines_before..];
    assert!(
        new_lines.len() == 1 && new_lines[0].starts_with("INSTANCE VI_2 STOP "),
        "the removed instance runs its stop hook, and nothing else runs: {new_lines:#?}"
    );
    assert_untouched(first, &before, new_lines);
}
