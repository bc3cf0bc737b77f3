//! Health tracking in a live pair: a failing track script, a track file
//! written by a cron-style command, a failing `notify_master` with
//! `master_hook_failure: fault`, and a tracked interface losing its link
//! each move the virtual address to the peer; recovery brings it back
//! (preempt). An instance whose own interface loses its link goes to FAULT
//! rather than MASTER. The peer is the real keepalived where that is
//! natural.

use std::fs;
use std::path::Path;
use std::time::Duration;

use hapair_lab::{
    Host, Keepalived, Lab, VrrpInstance, Vrrpd, binary, keepalived_config, lab_lock, require_root,
    vrrpd_config,
};
use serde_json::Value;

use crate::common::{
    assert_holds_for, held_by_master_hook, sole_holder, vip, wait_for_instance,
    wait_for_sole_holder, wait_for_state,
};

const VIP: &str = "10.99.0.100/24";
/// Generous bound for a move that takes a few advert intervals and a few
/// check runs: the lab machine is a loaded two-core box.
const MOVE_BOUND: Duration = Duration::from_secs(15);

/// VRRPv3 with 0.2 s adverts: failover in well under a second, while a
/// scheduling hiccup of the loaded machine stays inside the down interval.
fn fast(priority: u8) -> VrrpInstance {
    VrrpInstance {
        version: 3,
        advert_int: Duration::from_millis(200),
        ..VrrpInstance::new(61, priority, VIP)
    }
}

/// A vrrpd config: `top` (top-level sections), then `instance` with the
/// instance lines `extra` (each indented by four spaces) added.
fn config_with(top: &str, instance: &VrrpInstance, extra: &str) -> String {
    format!(
        "{top}{}{extra}",
        vrrpd_config(std::slice::from_ref(instance))
    )
}

fn path_str(path: &Path) -> &str {
    path.to_str().expect("lab paths are UTF-8")
}

/// The tracker `name` of a state file instance entry.
fn tracker<'a>(instance: &'a Value, name: &str) -> &'a Value {
    instance["trackers"]
        .as_array()
        .and_then(|trackers| trackers.iter().find(|t| t["name"] == name))
        .unwrap_or_else(|| panic!("no tracker {name} in {instance}"))
}

/// Waits until `vrrpd` reports effective priority `priority`.
fn wait_for_priority(vrrpd: &Vrrpd, priority: u64) -> Value {
    wait_for_instance(
        vrrpd,
        "VI_1",
        &format!("effective priority {priority}"),
        MOVE_BOUND,
        |instance| instance["effective_priority"] == priority,
    )
}

#[test]
fn failing_track_script_hands_the_address_to_keepalived_and_rise_takes_it_back() {
    let _lock = lab_lock();
    if !require_root() {
        return;
    }
    let lab = Lab::new(2);
    let (h1, h2) = (lab.host(1), lab.host(2));
    let hosts = [h1, h2];
    let healthy = lab.dir().join("service-healthy");
    fs::write(&healthy, "").unwrap();
    let check = lab.write_executable(
        "check-service",
        &format!("#!/bin/sh\ntest -e {}\n", healthy.display()),
    );
    let scripts = format!(
        "vrrp_scripts:\n  chk_service:\n    script: [{}]\n    interval: 0.3\n    \
         fall: 2\n    rise: 2\n    weight: -60\n",
        path_str(&check)
    );
    let tracked = fast(150);
    let vrrpd = Vrrpd::start(
        h1,
        &config_with(&scripts, &tracked, "    track_script: [chk_service]\n"),
    );
    let peer = fast(100);
    let _keepalived = Keepalived::start(h2, &keepalived_config("h2", &[peer]));
    let vip = vip(&tracked);
    wait_for_sole_holder(&hosts, vip, h1, MOVE_BOUND);
    let state = wait_for_state(&vrrpd, "VI_1", "MASTER", MOVE_BOUND);
    assert_eq!(state["effective_priority"], 150, "{state}");
    assert_eq!(tracker(&state, "chk_service")["health"], "ok", "{state}");

    // The service fails: two failed runs, priority 150 − 60 = 90 < 100.
    fs::remove_file(&healthy).unwrap();
    let state = wait_for_priority(&vrrpd, 90);
    let check_state = tracker(&state, "chk_service");
    assert_eq!(check_state["health"], "failed", "{state}");
    assert_eq!(check_state["priority_change"], -60, "{state}");
    wait_for_sole_holder(&hosts, vip, h2, MOVE_BOUND);
    wait_for_state(&vrrpd, "VI_1", "BACKUP", MOVE_BOUND);
    assert_holds_for(Duration::from_secs(2), || sole_holder(&hosts, vip, h2));

    // Healthy again: two good runs, 150 again, and h1 preempts keepalived.
    fs::write(&healthy, "").unwrap();
    wait_for_priority(&vrrpd, 150);
    wait_for_sole_holder(&hosts, vip, h1, MOVE_BOUND);
    wait_for_state(&vrrpd, "VI_1", "MASTER", MOVE_BOUND);
}

#[test]
fn track_file_written_by_a_cron_style_command_moves_the_address() {
    let _lock = lab_lock();
    if !require_root() {
        return;
    }
    let lab = Lab::new(2);
    let (h1, h2) = (lab.host(1), lab.host(2));
    let hosts = [h1, h2];
    let health_file = lab.dir().join("pair-health");
    let files = format!(
        "track_files:\n  pair_health:\n    file: {}\n    weight: 2\n",
        path_str(&health_file)
    );
    let tracked = fast(150);
    let vrrpd = Vrrpd::start(
        h1,
        &config_with(&files, &tracked, "    track_file: [pair_health]\n"),
    );
    let _peer = Vrrpd::start(h2, &vrrpd_config(&[fast(100)]));
    let vip = vip(&tracked);
    // No file yet counts as 0.
    wait_for_sole_holder(&hosts, vip, h1, MOVE_BOUND);
    let state = wait_for_state(&vrrpd, "VI_1", "MASTER", MOVE_BOUND);
    assert_eq!(tracker(&state, "pair_health")["value"], 0, "{state}");

    // What a cron job would run: the value × weight 2 takes 40 off.
    let write = |value: i32| {
        let command = format!("echo {value} > {}", path_str(&health_file));
        h1.run(&[
            path_str(&binary("hookrun")),
            "run",
            "--timeout",
            "10",
            "--",
            "/bin/sh",
            "-c",
            &command,
        ]);
    };
    write(-20);
    let state = wait_for_priority(&vrrpd, 110);
    assert_eq!(tracker(&state, "pair_health")["value"], -20, "{state}");
    assert_eq!(
        tracker(&state, "pair_health")["priority_change"],
        -40,
        "{state}"
    );
    // Still above h2's 100: nothing moves.
    assert_holds_for(Duration::from_secs(1), || sole_holder(&hosts, vip, h1));

    write(-30);
    wait_for_priority(&vrrpd, 90);
    wait_for_sole_holder(&hosts, vip, h2, MOVE_BOUND);

    write(0);
    wait_for_priority(&vrrpd, 150);
    wait_for_sole_holder(&hosts, vip, h1, MOVE_BOUND);
}

#[test]
fn failing_notify_master_with_fault_policy_hands_over_and_retries() {
    let _lock = lab_lock();
    if !require_root() {
        return;
    }
    let lab = Lab::new(2);
    let (h1, h2) = (lab.host(1), lab.host(2));
    let hosts = [h1, h2];
    let runs = lab.dir().join("promote-runs");
    // Fails on its first run (as a promote whose storage is not ready),
    // succeeds on the next.
    let promote = lab.write_executable(
        "promote",
        &format!(
            "#!/bin/sh\necho run >> {runs}\n[ \"$(wc -l < {runs})\" -ge 2 ]\n",
            runs = runs.display()
        ),
    );
    let retry = Duration::from_secs(4);
    let extra = format!(
        "    notify_master: [{}]\n    master_hook_failure: fault\n    master_hook_retry: {}\n",
        path_str(&promote),
        retry.as_secs()
    );
    let tracked = fast(150);
    let vrrpd = Vrrpd::start(h1, &config_with("", &tracked, &extra));
    let peer = Vrrpd::start(h2, &vrrpd_config(&[fast(100)]));
    let vip = vip(&tracked);

    // h1 becomes Master, its promote hook fails: FAULT, and h2 takes over.
    let state = wait_for_state(&vrrpd, "VI_1", "FAULT", MOVE_BOUND);
    assert_eq!(tracker(&state, "notify_master")["fault"], true, "{state}");
    assert_eq!(fs::read_to_string(&runs).unwrap().lines().count(), 1);
    wait_for_sole_holder(&hosts, vip, h2, Duration::from_secs(5));
    let peer_state = wait_for_state(&peer, "VI_1", "MASTER", Duration::from_secs(5));
    assert_eq!(peer_state["vips"][0], VIP, "{peer_state}");
    // Held in FAULT for most of the hold-off.
    assert_holds_for(retry / 2, || sole_holder(&hosts, vip, h2));

    // After the hold-off h1 tries again, preempts, and this time its hook
    // succeeds: it keeps the address.
    wait_for_sole_holder(&hosts, vip, h1, retry + MOVE_BOUND);
    wait_for_state(&vrrpd, "VI_1", "MASTER", MOVE_BOUND);
    assert_holds_for(Duration::from_secs(2), || sole_holder(&hosts, vip, h1));
    assert_eq!(fs::read_to_string(&runs).unwrap().lines().count(), 2);
    let state = vrrpd.instance("VI_1").unwrap();
    assert!(!held_by_master_hook(&state), "no hold left: {state}");
}

/// Adds a veth pair `name` – `far_end` to `host`, both up: `name` has a
/// link (carrier) while `far_end` is up, as a cabled port.
fn add_veth(host: &Host, name: &str, far_end: &str) {
    host.run(&[
        "ip", "link", "add", name, "type", "veth", "peer", "name", far_end,
    ]);
    host.run(&["ip", "link", "set", name, "up"]);
    host.run(&["ip", "link", "set", far_end, "up"]);
}

#[test]
fn tracked_interface_losing_its_link_puts_the_instance_in_fault() {
    let _lock = lab_lock();
    if !require_root() {
        return;
    }
    let lab = Lab::new(2);
    let (h1, h2) = (lab.host(1), lab.host(2));
    let hosts = [h1, h2];
    add_veth(h1, "repl0", "repl0-far");
    let tracked = VrrpInstance {
        hooks: hapair_lab::Hooks {
            notify_fault: vec![
                "/bin/sh".into(),
                "-c".into(),
                format!("echo fault >> {}", lab.dir().join("fault-runs").display()),
            ],
            ..hapair_lab::Hooks::default()
        },
        ..fast(150)
    };
    let vrrpd = Vrrpd::start(
        h1,
        &config_with("", &tracked, "    track_interface: [repl0]\n"),
    );
    let peer = fast(100);
    let _keepalived = Keepalived::start(h2, &keepalived_config("h2", &[peer]));
    let vip = vip(&tracked);
    wait_for_sole_holder(&hosts, vip, h1, MOVE_BOUND);

    // The cable is pulled: repl0 stays up but loses its carrier.
    h1.run(&["ip", "link", "set", "repl0-far", "down"]);
    let state = wait_for_state(&vrrpd, "VI_1", "FAULT", MOVE_BOUND);
    let link = tracker(&state, "repl0");
    assert_eq!(link["kind"], "interface", "{state}");
    assert_eq!(link["fault"], true, "{state}");
    // The priority-0 advert makes keepalived take over within its skew.
    wait_for_sole_holder(&hosts, vip, h2, Duration::from_secs(3));
    let faults = lab.dir().join("fault-runs");
    hapair_lab::wait_until(MOVE_BOUND, crate::common::POLL, || faults.exists())
        .expect("notify_fault ran");

    h1.run(&["ip", "link", "set", "repl0-far", "up"]);
    wait_for_sole_holder(&hosts, vip, h1, MOVE_BOUND);
    wait_for_state(&vrrpd, "VI_1", "MASTER", MOVE_BOUND);
}

#[test]
fn an_instance_whose_own_link_goes_down_enters_fault_not_master() {
    let _lock = lab_lock();
    if !require_root() {
        return;
    }
    let lab = Lab::new(2);
    let (h1, h2) = (lab.host(1), lab.host(2));
    let hosts = [h1, h2];
    let _master = Vrrpd::start(h1, &vrrpd_config(&[fast(150)]));
    let backup = Vrrpd::start(h2, &vrrpd_config(&[fast(100)]));
    let vip = vip(&fast(100));
    wait_for_sole_holder(&hosts, vip, h1, MOVE_BOUND);
    wait_for_state(&backup, "VI_1", "BACKUP", MOVE_BOUND);

    // h2 loses its own link: it hears no adverts, yet must not take over a
    // network it cannot reach (keepalived's default, without
    // dont_track_primary).
    h2.run(&["ip", "link", "set", "eth0", "down"]);
    let state = wait_for_state(&backup, "VI_1", "FAULT", MOVE_BOUND);
    let own = tracker(&state, "eth0");
    assert_eq!(own["kind"], "interface", "{state}");
    assert_eq!(own["fault"], true, "{state}");
    // For many Master_Down_Intervals (0.2 s adverts): h2 stays FAULT and
    // h1 alone holds the address.
    assert_holds_for(Duration::from_secs(3), || {
        let state = backup.state().ok_or("h2's vrrpd wrote no state file")?;
        match state["instances"][0]["state"].as_str() {
            Some("FAULT") => sole_holder(&hosts, vip, h1),
            other => Err(format!("h2 left FAULT with its link down: {other:?}")),
        }
    });

    h2.run(&["ip", "link", "set", "eth0", "up"]);
    wait_for_state(&backup, "VI_1", "BACKUP", MOVE_BOUND);
    assert_holds_for(Duration::from_secs(2), || sole_holder(&hosts, vip, h1));
}

#[test]
fn sync_group_members_fault_together_and_the_group_hook_runs() {
    let _lock = lab_lock();
    if !require_root() {
        return;
    }
    let lab = Lab::new(2);
    let (h1, h2) = (lab.host(1), lab.host(2));
    let hosts = [h1, h2];
    add_veth(h1, "repl0", "repl0-far");
    let record = lab.dir().join("group-runs");
    let clients = |priority| VrrpInstance {
        name: "VI_CLIENTS".into(),
        ..fast(priority)
    };
    let replication = |priority| VrrpInstance {
        name: "VI_REPLICATION".into(),
        virtual_ipaddress: vec!["10.99.0.101/24".into()],
        ..VrrpInstance {
            virtual_router_id: 62,
            ..fast(priority)
        }
    };
    // Only VI_REPLICATION tracks the replication link; the group takes
    // VI_CLIENTS along.
    let group = format!(
        "sync_groups:\n  G_STORAGE:\n    group: [VI_CLIENTS, VI_REPLICATION]\n    \
         notify: [/bin/sh, -c, 'echo \"$*\" >> {}', notify]\n",
        record.display()
    );
    // The last instance rendered is VI_REPLICATION: the line is its.
    let config = format!(
        "{group}{}    track_interface: [repl0]\n",
        vrrpd_config(&[clients(150), replication(150)])
    );
    let first = Vrrpd::start(h1, &config);
    let _second = Vrrpd::start(h2, &vrrpd_config(&[clients(100), replication(100)]));
    let client_vip = vip(&clients(150));
    let replication_vip = vip(&replication(150));
    wait_for_sole_holder(&hosts, client_vip, h1, MOVE_BOUND);
    wait_for_sole_holder(&hosts, replication_vip, h1, MOVE_BOUND);

    h1.run(&["ip", "link", "set", "repl0-far", "down"]);
    wait_for_state(&first, "VI_REPLICATION", "FAULT", MOVE_BOUND);
    let clients_state = wait_for_state(&first, "VI_CLIENTS", "FAULT", MOVE_BOUND);
    assert!(
        clients_state["trackers"]
            .as_array()
            .unwrap()
            .iter()
            .all(|tracker| tracker["fault"] == false),
        "nothing VI_CLIENTS tracks itself fails (only its own eth0): {clients_state}"
    );
    wait_for_sole_holder(&hosts, client_vip, h2, Duration::from_secs(3));
    wait_for_sole_holder(&hosts, replication_vip, h2, Duration::from_secs(3));
    let state = first.state().unwrap();
    assert_eq!(state["sync_groups"][0]["state"], "FAULT", "{state}");

    h1.run(&["ip", "link", "set", "repl0-far", "up"]);
    wait_for_sole_holder(&hosts, client_vip, h1, MOVE_BOUND);
    wait_for_sole_holder(&hosts, replication_vip, h1, MOVE_BOUND);
    hapair_lab::wait_until(MOVE_BOUND, crate::common::POLL, || {
        fs::read_to_string(&record)
            .unwrap_or_default()
            .lines()
            .count()
            >= 5
    });
    assert_eq!(
        fs::read_to_string(&record)
            .unwrap_or_default()
            .lines()
            .collect::<Vec<_>>(),
        [
            "GROUP G_STORAGE BACKUP 0",
            "GROUP G_STORAGE MASTER 0",
            "GROUP G_STORAGE FAULT 0",
            "GROUP G_STORAGE BACKUP 0",
            "GROUP G_STORAGE MASTER 0",
        ],
        "group hook runs, in order"
    );

    // A clean stop releases the members, then tells the group's hooks.
    let mut first = first;
    assert!(first.stop(MOVE_BOUND).success());
    let runs = fs::read_to_string(&record).unwrap_or_default();
    assert_eq!(
        runs.lines().last(),
        Some("GROUP G_STORAGE STOP 0"),
        "the group's last hook run is its STOP: {runs}"
    );
}
