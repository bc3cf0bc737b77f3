//! Two vrrpd nodes (VRRPv2, 1 s adverts, multicast) electing a master and
//! moving the virtual address when it dies, stops or comes back — within
//! the RFC's timers.

use std::time::{Duration, Instant};

use hapair_lab::{
    Host, Lab, VrrpInstance, Vrrpd, lab_lock, require_root, vrrpd_config, wait_until,
};
use nix::sys::signal::Signal;

use crate::common::{
    POLL, assert_holds_for, counter, sole_holder, vip, wait_for_sole_holder, wait_for_state,
    with_margin,
};

const VIP: &str = "10.99.0.100/24";

/// h1's instance: priority 150.
fn higher() -> VrrpInstance {
    VrrpInstance::new(51, 150, VIP)
}

/// h2's instance: priority 100.
fn lower() -> VrrpInstance {
    VrrpInstance::new(51, 100, VIP)
}

/// Starts vrrpd on h1 (priority 150) and h2 (priority 100) together and
/// waits until h1 is MASTER and alone holds the address, and h2 is BACKUP
/// and stayed so past its own master-down interval.
fn converged_pair(lab: &Lab) -> (Vrrpd, Vrrpd) {
    let (h1, h2) = (lab.host(1), lab.host(2));
    let hosts = [h1, h2];
    let vip = vip(&higher());
    let first = Vrrpd::start(h1, &vrrpd_config(&[higher()]));
    let second = Vrrpd::start(h2, &vrrpd_config(&[lower()]));
    let takes = with_margin(higher().master_down_interval()) + Duration::from_secs(2);
    wait_for_sole_holder(&hosts, vip, h1, takes);
    wait_for_state(&first, "VI_1", "MASTER", takes);
    wait_for_state(&second, "VI_1", "BACKUP", takes);
    assert_holds_for(lower().master_down_interval(), || {
        sole_holder(&hosts, vip, h1)?;
        match second.instance_state("VI_1").as_deref() {
            Some("BACKUP") => Ok(()),
            other => Err(format!("h2 should stay BACKUP but reports {other:?}")),
        }
    });
    (first, second)
}

#[test]
fn higher_priority_becomes_master_and_alone_holds_the_address() {
    let _lock = lab_lock();
    if !require_root() {
        return;
    }
    let lab = Lab::new(2);
    let (first, second) = converged_pair(&lab);

    let master = first.instance("VI_1").expect("h1 wrote its state");
    assert_eq!(master["state"], "MASTER", "{master}");
    assert_eq!(master["priority"], 150, "{master}");
    assert_eq!(master["effective_priority"], 150, "{master}");
    assert_eq!(master["master"], "10.99.0.1", "{master}");
    assert_eq!(master["vips"], serde_json::json!([VIP]), "{master}");
    assert!(counter(&master, "adverts_sent") >= 2, "{master}");

    let backup = second.instance("VI_1").expect("h2 wrote its state");
    assert_eq!(backup["state"], "BACKUP", "{backup}");
    assert_eq!(backup["priority"], 100, "{backup}");
    assert_eq!(backup["master"], "10.99.0.1", "{backup}");
    assert!(counter(&backup, "adverts_received") >= 2, "{backup}");
    assert_eq!(
        counter(&backup, "adverts_sent"),
        0,
        "a backup is silent: {backup}"
    );
    let state = second.state().expect("h2 wrote its state");
    assert_eq!(state["node"], "h2", "{state}");
}

#[test]
fn backup_takes_over_within_master_down_interval_after_sigkill() {
    let _lock = lab_lock();
    if !require_root() {
        return;
    }
    let lab = Lab::new(2);
    let h2 = lab.host(2);
    let (mut first, second) = converged_pair(&lab);
    let vip = vip(&higher());

    let killed = Instant::now();
    first.crash();
    // The last advert reached h2 at most one interval before the kill.
    let latest = with_margin(lower().master_down_interval());
    let earliest = (lower().master_down_interval() - lower().advert_int) * 4 / 5;
    wait_until(latest, POLL, || h2.has_address(vip)).unwrap_or_else(|| {
        panic!("h2 did not take {vip} within {latest:?} (Master_Down_Interval + 20 %) of the kill")
    });
    let took = killed.elapsed();
    assert!(took <= latest + POLL, "took {took:?}, bound {latest:?}");
    assert!(
        took >= earliest,
        "h2 took over after {took:?}: sooner than its master-down interval allows ({earliest:?})"
    );
    eprintln!("h2 took over {took:?} after h1's SIGKILL (bounds {earliest:?}..{latest:?})");
    let taken = wait_for_state(&second, "VI_1", "MASTER", Duration::from_secs(1));
    assert_eq!(taken["master"], "10.99.0.2", "{taken}");
    assert!(
        counter(&taken, "transitions") >= 2,
        "BACKUP, then MASTER: {taken}"
    );
}

#[test]
fn backup_takes_over_within_skew_time_after_sigterm() {
    let _lock = lab_lock();
    if !require_root() {
        return;
    }
    let lab = Lab::new(2);
    let (h1, h2) = (lab.host(1), lab.host(2));
    let (mut first, second) = converged_pair(&lab);
    let vip = vip(&higher());

    first.proc().kill(Signal::SIGTERM);
    // A priority-0 advert tells h2 to take over after its skew time.
    let bound = with_margin(lower().skew_time());
    let took = wait_until(bound, Duration::from_millis(10), || h2.has_address(vip));
    let took = took.unwrap_or_else(|| {
        panic!("h2 did not take {vip} within {bound:?} (Skew_Time + 20 %) of SIGTERM to h1")
    });
    let status = first
        .proc_mut()
        .wait_timeout(Duration::from_secs(10))
        .expect("h1's vrrpd exits after SIGTERM");
    assert!(status.success(), "h1's vrrpd exited with {status}");
    assert!(!h1.has_address(vip), "h1 left {vip} behind on SIGTERM");
    wait_for_state(&second, "VI_1", "MASTER", Duration::from_secs(1));
    eprintln!("h2 took over {took:?} after SIGTERM to h1 (bound {bound:?})");
}

/// Stops h1 (SIGTERM), waits until h2 alone holds the address, and starts
/// h1 again with `restarted`; returns when it was started.
fn stop_and_restart_first(lab: &Lab, first: &mut Vrrpd, restarted: &VrrpInstance) -> Instant {
    let hosts: [&Host; 2] = [lab.host(1), lab.host(2)];
    let status = first.stop(Duration::from_secs(10));
    assert!(status.success(), "h1's vrrpd exited with {status}");
    wait_for_sole_holder(&hosts, vip(restarted), lab.host(2), Duration::from_secs(5));
    let restarted_at = Instant::now();
    first.restart(&vrrpd_config(std::slice::from_ref(restarted)));
    restarted_at
}

#[test]
fn restarted_higher_priority_node_takes_the_address_back() {
    let _lock = lab_lock();
    if !require_root() {
        return;
    }
    let lab = Lab::new(2);
    let (h1, h2) = (lab.host(1), lab.host(2));
    let (mut first, second) = converged_pair(&lab);
    let vip = vip(&higher());

    let restarted_at = stop_and_restart_first(&lab, &mut first, &higher());
    // h1 ignores h2's lower-priority adverts and takes over when its own
    // master-down interval ends.
    let bound = with_margin(higher().master_down_interval());
    wait_for_sole_holder(&[h1, h2], vip, h1, bound);
    let took = restarted_at.elapsed();
    assert!(took <= bound + POLL, "took {took:?}, bound {bound:?}");
    wait_for_state(&first, "VI_1", "MASTER", Duration::from_secs(1));
    let demoted = wait_for_state(&second, "VI_1", "BACKUP", Duration::from_secs(1));
    assert_eq!(demoted["master"], "10.99.0.1", "{demoted}");
}

#[test]
fn restarted_nopreempt_node_leaves_the_address_with_the_master() {
    let _lock = lab_lock();
    if !require_root() {
        return;
    }
    let lab = Lab::new(2);
    let (h1, h2) = (lab.host(1), lab.host(2));
    let (mut first, _second) = converged_pair(&lab);
    let vip = vip(&higher());
    let nopreempt = VrrpInstance {
        nopreempt: true,
        ..higher()
    };

    stop_and_restart_first(&lab, &mut first, &nopreempt);
    // Well past the 3.4 s after which a preempting h1 would take over.
    assert_holds_for(Duration::from_secs(6), || sole_holder(&[h1, h2], vip, h2));
    let waiting = wait_for_state(&first, "VI_1", "BACKUP", Duration::from_secs(1));
    assert_eq!(waiting["master"], "10.99.0.2", "{waiting}");
    assert!(
        counter(&waiting, "adverts_received") >= 3,
        "h1 hears h2: {waiting}"
    );
}

#[test]
fn backup_removes_a_stale_address_at_start() {
    let _lock = lab_lock();
    if !require_root() {
        return;
    }
    let lab = Lab::new(2);
    let (h1, h2) = (lab.host(1), lab.host(2));
    let hosts = [h1, h2];
    let vip = vip(&higher());
    let first = Vrrpd::start(h1, &vrrpd_config(&[higher()]));
    let takes = with_margin(higher().master_down_interval()) + Duration::from_secs(2);
    wait_for_sole_holder(&hosts, vip, h1, takes);
    wait_for_state(&first, "VI_1", "MASTER", takes);

    // What a SIGKILLed vrrpd on h2 would have left behind.
    h2.run(&["ip", "addr", "add", VIP, "dev", "eth0"]);
    assert!(h2.has_address(vip));
    let second = Vrrpd::start(h2, &vrrpd_config(&[lower()]));
    // Removed at start: long before h2 could have lost an election.
    let bound = Duration::from_secs(2);
    wait_until(bound, POLL, || !h2.has_address(vip))
        .unwrap_or_else(|| panic!("h2's vrrpd kept the stale {vip} for {bound:?} after starting"));
    wait_for_state(&second, "VI_1", "BACKUP", Duration::from_secs(2));
    assert_holds_for(lower().master_down_interval(), || {
        sole_holder(&hosts, vip, h1)
    });
}
