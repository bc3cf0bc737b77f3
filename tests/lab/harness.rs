//! Tests of the lab itself: its network, its cleanup, its config renderers,
//! and a keepalived pair failing over — proof that the lab can show a
//! failover before any hapair daemon is involved.

use std::fs;
use std::net::IpAddr;
use std::os::unix::fs::PermissionsExt;
use std::panic::{self, AssertUnwindSafe};
use std::path::Path;
use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use hapair_lab::{
    Hooks, Keepalived, Lab, VrrpInstance, binary, existing_namespaces, installed_program,
    keepalived_config, lab_lock, process_is_alive, require_root, vrrpd_config, wait_until,
};

use crate::common::{POLL, assert_holds_for, sole_holder, vip, wait_for_sole_holder, with_margin};

#[test]
fn hosts_have_their_addresses_and_reach_each_other() {
    let _lock = lab_lock();
    if !require_root() {
        return;
    }
    let lab = Lab::new(2);
    for (n, host) in (1u8..).zip(lab.hosts()) {
        let addresses = host.addresses();
        let ipv4: IpAddr = format!("10.99.0.{n}").parse().unwrap();
        let ipv6: IpAddr = format!("fd99::{n}").parse().unwrap();
        assert!(
            addresses.contains(&(ipv4, 24)),
            "{}: {addresses:?}",
            host.name()
        );
        assert!(
            addresses.contains(&(ipv6, 64)),
            "{}: {addresses:?}",
            host.name()
        );
        assert!(
            addresses.contains(&(IpAddr::V6(host.link_local()), 64)),
            "{}: {addresses:?}",
            host.name()
        );
        assert!(host.has_address(ipv4) && !host.has_address("10.99.0.100".parse().unwrap()));
    }
    let namespaces = existing_namespaces();
    for namespace in lab.namespaces() {
        assert!(
            namespaces.contains(namespace),
            "{namespace} not in {namespaces:?}"
        );
    }
    // A TCP connection to a closed port is refused by the peer's kernel:
    // that answer proves packets cross the bridge both ways.
    for peer in ["10.99.0.2", "fd99::2"] {
        let connect = format!("exec 3<>/dev/tcp/{peer}/9");
        let attempt = lab
            .host(1)
            .output(&["timeout", "5", "bash", "-c", &connect]);
        let stderr = String::from_utf8_lossy(&attempt.stderr);
        assert!(
            stderr.contains("Connection refused"),
            "h1 → {peer}: expected the peer to refuse the connection: {stderr}"
        );
    }
}

#[test]
fn dropping_a_lab_while_panicking_removes_namespaces_and_processes() {
    let _lock = lab_lock();
    if !require_root() {
        return;
    }
    // What the doomed lab made: its namespaces and the pids it ran.
    let made: Mutex<(Vec<String>, Vec<u32>)> = Mutex::default();
    let outcome = panic::catch_unwind(AssertUnwindSafe(|| {
        let lab = Lab::new(2);
        let sleeper = lab.host(1).spawn(&["sleep", "1000"], &[]);
        // A process that escaped into a session of its own, as a daemon's
        // children may: only its namespace still ties it to the lab.
        let escaped = lab.host(2).run(&[
            "sh",
            "-c",
            "setsid sleep 1000 >/dev/null 2>&1 </dev/null & echo $!",
        ]);
        let escaped: u32 = String::from_utf8_lossy(&escaped.stdout)
            .trim()
            .parse()
            .expect("sh printed the escaped pid");
        *made.lock().unwrap() = (lab.namespaces().to_vec(), vec![sleeper.pid(), escaped]);
        // Leaked, so that only the lab can end it.
        std::mem::forget(sleeper);
        panic!("deliberate panic with a lab alive");
    }));
    assert!(outcome.is_err(), "the closure panics");
    let (namespaces, pids) = made.into_inner().unwrap();
    assert_eq!(
        namespaces.len(),
        3,
        "a switch and two hosts: {namespaces:?}"
    );
    let left: Vec<String> = existing_namespaces()
        .into_iter()
        .filter(|name| namespaces.contains(name))
        .collect();
    assert!(left.is_empty(), "namespaces left behind: {left:?}");
    for pid in pids {
        assert!(
            wait_until(Duration::from_secs(5), POLL, || !process_is_alive(pid)).is_some(),
            "process {pid} started in the lab is still running"
        );
    }
}

/// One instance of each kind the scenarios use, with every option the
/// renderers know, and hook scripts that exist.
fn sample_instances(lab_dir: &Path) -> Vec<VrrpInstance> {
    let hook = lab_dir.join("hook");
    fs::write(&hook, "#!/bin/sh\nexit 0\n").expect("write the hook");
    fs::set_permissions(&hook, fs::Permissions::from_mode(0o755)).expect("make it executable");
    let hook = hook.to_str().expect("UTF-8 path").to_owned();
    let unicast = VrrpInstance {
        name: "VI_unicast".to_owned(),
        nopreempt: true,
        unicast_src_ip: Some("10.99.0.1".parse().unwrap()),
        unicast_peer: vec!["10.99.0.2".parse().unwrap()],
        auth_pass: Some("secret1".to_owned()),
        hooks: Hooks {
            notify_master: vec![hook.clone(), "master".to_owned()],
            notify_backup: vec![hook.clone(), "backup".to_owned()],
            notify_fault: vec![hook.clone(), "fault".to_owned()],
            notify_stop: vec![hook.clone(), "stop".to_owned()],
            notify: vec![hook],
            notify_timeout: Some(Duration::from_secs(1)),
        },
        ..VrrpInstance::new(51, 150, "10.99.0.100/24")
    };
    let fast = VrrpInstance {
        name: "VI_fast".to_owned(),
        version: 3,
        advert_int: Duration::from_millis(100),
        ..VrrpInstance::new(52, 100, "10.99.0.101/24")
    };
    let ipv6 = VrrpInstance {
        name: "VI_6".to_owned(),
        version: 3,
        ..VrrpInstance::new(53, 100, "fd99::100/64")
    };
    vec![unicast, fast, ipv6]
}

#[test]
fn keepalived_accepts_the_rendered_config() {
    let _lock = lab_lock();
    if !require_root() {
        return;
    }
    let lab = Lab::new(1);
    let config = lab.dir().join("check.conf");
    fs::write(
        &config,
        keepalived_config("h1", &sample_instances(lab.dir())),
    )
    .expect("write the config");
    let keepalived = installed_program("keepalived", "keepalived");
    // `-t` exits non-zero on any error or security warning in the config.
    lab.host(1).run(&[
        keepalived.to_str().unwrap(),
        "--config-test",
        "--use-file",
        config.to_str().unwrap(),
    ]);
}

#[test]
fn vrrpd_accepts_the_rendered_config() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let config = dir.path().join("vrrp.yaml");
    fs::write(&config, vrrpd_config(&sample_instances(dir.path()))).expect("write it");
    let output = Command::new(binary("vrrpd"))
        .arg("-f")
        .arg(&config)
        .args(["--node", "h1", "--check-config"])
        .output()
        .expect("run vrrpd --check-config");
    assert!(
        output.status.success(),
        "vrrpd rejected the rendered config:\n{}\n{}",
        fs::read_to_string(&config).unwrap_or_default(),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn keepalived_backup_takes_over_when_the_master_is_killed() {
    let _lock = lab_lock();
    if !require_root() {
        return;
    }
    let lab = Lab::new(2);
    let (h1, h2) = (lab.host(1), lab.host(2));
    let hosts = [h1, h2];
    let master = VrrpInstance::new(51, 150, "10.99.0.100/24");
    let backup = VrrpInstance::new(51, 100, "10.99.0.100/24");
    let vip = vip(&master);
    let mut first = Keepalived::start(h1, &keepalived_config("h1", std::slice::from_ref(&master)));
    let _second = Keepalived::start(h2, &keepalived_config("h2", std::slice::from_ref(&backup)));

    // Both start as backups; h1's shorter master-down interval ends first.
    wait_for_sole_holder(
        &hosts,
        vip,
        h1,
        with_margin(master.master_down_interval()) + Duration::from_secs(2),
    );
    // Past h2's own master-down interval: it heard h1 and stayed backup.
    assert_holds_for(backup.master_down_interval(), || {
        sole_holder(&hosts, vip, h1)
    });

    let killed = Instant::now();
    first.crash();
    let bound = with_margin(backup.master_down_interval());
    wait_until(bound, POLL, || h2.has_address(vip)).unwrap_or_else(|| {
        panic!("h2 did not take {vip} within {bound:?} of h1's keepalived being killed")
    });
    let took = killed.elapsed();
    assert!(took <= bound + POLL, "took {took:?}, bound {bound:?}");
}
