//! vrrpd and the real keepalived as the two routers of one virtual router,
//! each way round in priority, for each advert flavour: VRRPv2 multicast,
//! VRRPv3 IPv4 with 0.1 s adverts, VRRPv3 IPv6, VRRPv2 unicast with a
//! password. The lower-priority node stays backup only if it understands
//! the master's adverts; it takes over in time only if it tracks them.

use std::net::IpAddr;
use std::time::Duration;

use hapair_lab::{
    Host, Keepalived, Lab, VrrpInstance, Vrrpd, keepalived_config, lab_lock, require_root,
    vrrpd_config, wait_until,
};
use nix::sys::signal::Signal;

use crate::common::{
    POLL, assert_holds_for, sole_holder, vip, wait_for_instance, wait_for_sole_holder,
    wait_for_state, with_margin,
};

/// Scheduling slack on top of the RFC timers plus 20 %: keepalived and
/// vrrpd both need a moment to start acting.
const SLACK: Duration = Duration::from_millis(100);
/// How long vrrpd may take to write what it learned from adverts (the
/// master's address) to its state file.
const STATE_REFRESH: Duration = Duration::from_secs(2);

/// Which advert flavour the pair runs.
#[derive(Clone, Copy, Debug)]
enum Flavour {
    V2Multicast,
    V3FastIpv4,
    V3Ipv6,
    V2UnicastPass,
}

/// Which daemon holds the higher priority (and so becomes master first).
#[derive(Clone, Copy, Debug, PartialEq)]
enum HigherPriority {
    Vrrpd,
    Keepalived,
}

/// The instance `host` runs at `priority`, `peer` being the other host.
fn instance(flavour: Flavour, host: &Host, peer: &Host, priority: u8) -> VrrpInstance {
    match flavour {
        Flavour::V2Multicast => VrrpInstance::new(51, priority, "10.99.0.100/24"),
        Flavour::V3FastIpv4 => VrrpInstance {
            version: 3,
            advert_int: Duration::from_millis(100),
            ..VrrpInstance::new(52, priority, "10.99.0.100/24")
        },
        Flavour::V3Ipv6 => VrrpInstance {
            version: 3,
            ..VrrpInstance::new(53, priority, "fd99::100/64")
        },
        Flavour::V2UnicastPass => VrrpInstance {
            unicast_src_ip: Some(IpAddr::V4(host.ipv4())),
            unicast_peer: vec![IpAddr::V4(peer.ipv4())],
            auth_pass: Some("secret1".to_owned()),
            ..VrrpInstance::new(54, priority, "10.99.0.100/24")
        },
    }
}

/// One of the two daemons under test.
enum Daemon {
    Vrrpd(Vrrpd),
    Keepalived(Keepalived),
}

impl Daemon {
    fn start(is_vrrpd: bool, host: &Host, instance: &VrrpInstance) -> Daemon {
        let instances = std::slice::from_ref(instance);
        if is_vrrpd {
            Daemon::Vrrpd(Vrrpd::start(host, &vrrpd_config(instances)))
        } else {
            Daemon::Keepalived(Keepalived::start(
                host,
                &keepalived_config(host.name(), instances),
            ))
        }
    }
}

/// h1 runs the higher priority (150), h2 the lower (100). h1 starts alone
/// and becomes master; h2 joins and must stay backup past its own
/// master-down interval. Then h1's daemon dies: vrrpd by SIGKILL (the
/// survivor must notice the silence), keepalived by SIGTERM (the survivor
/// must act on its priority-0 advert; keepalived removes its address on
/// the way out, so exactly one host holds it afterwards).
fn interoperate(flavour: Flavour, higher: HigherPriority) {
    let _lock = lab_lock();
    if !require_root() {
        return;
    }
    let lab = Lab::new(2);
    let (h1, h2) = (lab.host(1), lab.host(2));
    let hosts = [h1, h2];
    let master = instance(flavour, h1, h2, 150);
    let backup = instance(flavour, h2, h1, 100);
    let vip = vip(&master);
    let vrrpd_is_master = higher == HigherPriority::Vrrpd;

    let mut first = Daemon::start(vrrpd_is_master, h1, &master);
    wait_for_sole_holder(
        &hosts,
        vip,
        h1,
        with_margin(master.master_down_interval()) + Duration::from_secs(2),
    );
    let second = Daemon::start(!vrrpd_is_master, h2, &backup);
    assert_holds_for(with_margin(backup.master_down_interval()) + SLACK, || {
        sole_holder(&hosts, vip, h1)
    });
    if let Daemon::Vrrpd(vrrpd) = &second {
        wait_for_state(vrrpd, "VI_1", "BACKUP", Duration::from_secs(1));
        let expected_master = match vip {
            IpAddr::V4(_) => h1.ipv4().to_string(),
            IpAddr::V6(_) => h1.link_local().to_string(),
        };
        // The master's address may wait for the next counter refresh of
        // the state file (vrrpd rewrites it at most once a second for
        // counters).
        wait_for_instance(
            vrrpd,
            "VI_1",
            &format!("master {expected_master}"),
            STATE_REFRESH,
            |state| state["master"] == expected_master.as_str(),
        );
    }

    match &mut first {
        Daemon::Vrrpd(vrrpd) => {
            vrrpd.crash();
            let bound = with_margin(backup.master_down_interval()) + SLACK;
            wait_until(bound, POLL, || h2.has_address(vip)).unwrap_or_else(|| {
                panic!("keepalived on h2 did not take {vip} within {bound:?} of vrrpd's SIGKILL")
            });
        }
        Daemon::Keepalived(keepalived) => {
            keepalived.proc().kill(Signal::SIGTERM);
            let bound = with_margin(backup.skew_time()) + SLACK * 5;
            wait_until(bound, POLL, || h2.has_address(vip)).unwrap_or_else(|| {
                panic!("vrrpd on h2 did not take {vip} within {bound:?} of keepalived's SIGTERM")
            });
            keepalived
                .proc_mut()
                .wait_timeout(Duration::from_secs(10))
                .expect("keepalived exits after SIGTERM");
            wait_for_sole_holder(&hosts, vip, h2, Duration::from_secs(2));
        }
    }
    if let Daemon::Vrrpd(vrrpd) = &second {
        wait_for_state(vrrpd, "VI_1", "MASTER", Duration::from_secs(1));
    }
    assert_holds_for(backup.advert_int * 3, || {
        if h2.has_address(vip) {
            Ok(())
        } else {
            Err(format!("h2 gave {vip} up again"))
        }
    });
}

#[test]
fn v2_multicast_vrrpd_master_keepalived_backup() {
    interoperate(Flavour::V2Multicast, HigherPriority::Vrrpd);
}

#[test]
fn v2_multicast_keepalived_master_vrrpd_backup() {
    interoperate(Flavour::V2Multicast, HigherPriority::Keepalived);
}

#[test]
fn v3_fast_ipv4_vrrpd_master_keepalived_backup() {
    interoperate(Flavour::V3FastIpv4, HigherPriority::Vrrpd);
}

#[test]
fn v3_fast_ipv4_keepalived_master_vrrpd_backup() {
    interoperate(Flavour::V3FastIpv4, HigherPriority::Keepalived);
}

#[test]
fn v3_ipv6_vrrpd_master_keepalived_backup() {
    interoperate(Flavour::V3Ipv6, HigherPriority::Vrrpd);
}

#[test]
fn v3_ipv6_keepalived_master_vrrpd_backup() {
    interoperate(Flavour::V3Ipv6, HigherPriority::Keepalived);
}

#[test]
fn v2_unicast_pass_vrrpd_master_keepalived_backup() {
    interoperate(Flavour::V2UnicastPass, HigherPriority::Vrrpd);
}

#[test]
fn v2_unicast_pass_keepalived_master_vrrpd_backup() {
    interoperate(Flavour::V2UnicastPass, HigherPriority::Keepalived);
}
