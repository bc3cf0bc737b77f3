//! vrrpd started from a keepalived.conf (`vrrpd -f keepalived.conf`) against
//! the real keepalived running the very same file on the other host: the
//! two read it alike (same virtual router, password, unicast peers, virtual
//! address), so they form one virtual router, and the address moves when
//! the master stops.
//!
//! The file tells the hosts apart the way keepalived does, by config id:
//! `@h1` lines are read by vrrpd on h1 (its node name is its config id);
//! keepalived runs without `-i`, so its id is the machine's host name and
//! it reads the `@^h1` lines instead.

use std::time::Duration;

use hapair_lab::{Keepalived, Lab, VrrpInstance, Vrrpd, lab_lock, require_root, wait_until};

use crate::common::{
    POLL, assert_holds_for, vip, wait_for_sole_holder, wait_for_state, with_margin,
};

/// keepalived's syntax at work: `!` and `#` comments, a brace against a
/// word, a one-line block, a quoted value and per-host `@` lines.
const KEEPALIVED_CONF: &str = r#"! One file for both hosts of the lab pair.
global_defs {
    router_id lab_pair           # only for keepalived's mails
    enable_script_security
    script_user root
}

vrrp_instance VI_1{
    state BACKUP
    interface eth0
    virtual_router_id 71
@h1 priority 150
@^h1 priority 100
    advert_int 1
@h1 unicast_src_ip 10.99.0.1
@^h1 unicast_src_ip 10.99.0.2
    unicast_peer {
@h1     10.99.0.2
@^h1    10.99.0.1
    }
    authentication {
        auth_type PASS
        auth_pass "interop7"
    }
    virtual_ipaddress { 10.99.0.171/24 dev eth0 label eth0:vip }
}
"#;

/// Added by a reload of vrrpd's copy of the file.
const SECOND_INSTANCE: &str = "
vrrp_instance VI_2 {
    interface eth0
    virtual_router_id 72
    priority 150
    virtual_ipaddress {
        10.99.0.172/24
    }
}
";

/// The instance as the host with `priority` runs it, for the RFC timers.
fn timing(priority: u8) -> VrrpInstance {
    VrrpInstance::new(71, priority, "10.99.0.171/24")
}

#[test]
fn vrrpd_from_keepalived_conf_pairs_with_keepalived() {
    let _lock = lab_lock();
    if !require_root() {
        return;
    }
    let lab = Lab::new(2);
    let (h1, h2) = (lab.host(1), lab.host(2));
    let hosts = [h1, h2];
    let (higher, lower) = (timing(150), timing(100));
    let vip = vip(&higher);

    let mut vrrpd = Vrrpd::start(h1, KEEPALIVED_CONF);
    wait_for_sole_holder(
        &hosts,
        vip,
        h1,
        with_margin(higher.master_down_interval()) + Duration::from_secs(2),
    );
    wait_for_state(&vrrpd, "VI_1", "MASTER", Duration::from_secs(1));

    // keepalived on h2 reads priority 100 from the same file and must stay
    // backup: it hears vrrpd's adverts, password and all.
    let mut keepalived = Keepalived::start(h2, KEEPALIVED_CONF);
    assert_holds_for(
        with_margin(lower.master_down_interval()) + Duration::from_secs(1),
        || crate::common::sole_holder(&hosts, vip, h1),
    );

    // The master stops: vrrpd advertises priority 0 and drops the address;
    // keepalived takes over after its skew time.
    vrrpd.stop(Duration::from_secs(10));
    let bound = with_margin(lower.master_down_interval());
    wait_until(bound, POLL, || h2.has_address(vip)).unwrap_or_else(|| {
        panic!(
            "keepalived on h2 did not take {vip} within {bound:?} of vrrpd stopping; log {}",
            keepalived.proc().log_path().display()
        )
    });
    wait_for_sole_holder(&hosts, vip, h2, Duration::from_secs(2));

    // vrrpd comes back with the higher priority and preempts.
    vrrpd.restart(KEEPALIVED_CONF);
    wait_for_sole_holder(
        &hosts,
        vip,
        h1,
        with_margin(higher.master_down_interval()) + Duration::from_secs(2),
    );
    wait_for_state(&vrrpd, "VI_1", "MASTER", Duration::from_secs(1));

    // SIGHUP re-reads the keepalived.conf: a second instance appears (only
    // vrrpd runs it, so it becomes its master), and VI_1, unchanged, stays
    // master all along.
    let second = timing(150);
    let second_vip: std::net::IpAddr = "10.99.0.172".parse().unwrap();
    vrrpd.reload(&format!("{KEEPALIVED_CONF}{SECOND_INSTANCE}"));
    let bound = with_margin(second.master_down_interval()) + Duration::from_secs(2);
    wait_until(bound, POLL, || {
        h1.has_address(second_vip) && crate::common::sole_holder(&hosts, vip, h1).is_ok()
    })
    .unwrap_or_else(|| panic!("h1 did not take {second_vip} within {bound:?} of the reload"));
    wait_for_state(&vrrpd, "VI_2", "MASTER", Duration::from_secs(1));
    wait_for_state(&vrrpd, "VI_1", "MASTER", Duration::from_secs(1));

    // And the other way: the master is keepalived's peer again when vrrpd
    // stops for good, and keepalived stopping leaves nobody holding it.
    vrrpd.stop(Duration::from_secs(10));
    wait_for_sole_holder(&hosts, vip, h2, with_margin(lower.master_down_interval()));
    keepalived.stop(Duration::from_secs(10));
    wait_until(Duration::from_secs(5), POLL, || !h2.has_address(vip))
        .unwrap_or_else(|| panic!("keepalived left {vip} on h2 after SIGTERM"));
}
