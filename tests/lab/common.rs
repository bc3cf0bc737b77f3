//! Helpers the lab scenarios share: addresses, time bounds and checks over
//! several hosts.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use hapair_lab::{Host, VrrpInstance, Vrrpd, wait_until};
use serde_json::Value;

/// How often scenarios look at addresses and state files. Each look runs
/// `ip` once per host (a few milliseconds).
pub const POLL: Duration = Duration::from_millis(20);

/// The first virtual address of `instance`, without its prefix length.
pub fn vip(instance: &VrrpInstance) -> IpAddr {
    let text = &instance.virtual_ipaddress[0];
    let address = text.split('/').next().unwrap_or(text);
    address
        .parse()
        .unwrap_or_else(|error| panic!("virtual address {text:?} is not an IP address: {error}"))
}

/// `bound` plus 20 %: the margin the lab allows for scheduling on a loaded
/// two-core machine.
pub fn with_margin(bound: Duration) -> Duration {
    bound * 6 / 5
}

/// The names of the hosts whose eth0 holds `ip`.
pub fn holders(hosts: &[&Host], ip: IpAddr) -> Vec<String> {
    hosts
        .iter()
        .filter(|host| host.has_address(ip))
        .map(|host| host.name().to_owned())
        .collect()
}

/// Waits until `ip` is held by exactly `expected` among `hosts`; returns
/// how long that took. Panics naming the holders seen last.
pub fn wait_for_sole_holder(
    hosts: &[&Host],
    ip: IpAddr,
    expected: &Host,
    timeout: Duration,
) -> Duration {
    let mut seen = Vec::new();
    wait_until(timeout, POLL, || {
        seen = holders(hosts, ip);
        seen == [expected.name()]
    })
    .unwrap_or_else(|| {
        panic!(
            "{ip} was not held by {} alone within {timeout:?}; held by {seen:?}",
            expected.name()
        )
    })
}

/// Checks `invariant` every [`POLL`] for `duration`; panics with its
/// message the first time it fails.
pub fn assert_holds_for(duration: Duration, mut invariant: impl FnMut() -> Result<(), String>) {
    let start = Instant::now();
    while start.elapsed() < duration {
        if let Err(message) = invariant() {
            panic!("after {:?}: {message}", start.elapsed());
        }
        std::thread::sleep(POLL);
    }
}

/// Checks that `ip` is held by `expected` alone, as an invariant for
/// [`assert_holds_for`].
pub fn sole_holder(hosts: &[&Host], ip: IpAddr, expected: &Host) -> Result<(), String> {
    let seen = holders(hosts, ip);
    if seen == [expected.name()] {
        Ok(())
    } else {
        Err(format!(
            "{ip} should be held by {} alone but is held by {seen:?}",
            expected.name()
        ))
    }
}

/// Waits until instance `name` of `vrrpd` reports `state` in its state
/// file; returns that instance's entry. Panics with what it reported last.
pub fn wait_for_state(vrrpd: &Vrrpd, name: &str, state: &str, timeout: Duration) -> Value {
    wait_for_instance(
        vrrpd,
        name,
        &format!("state {state}"),
        timeout,
        |instance| instance["state"] == state,
    )
}

/// Waits until instance `name` of `vrrpd` has an entry in its state file
/// for which `check` holds (`what` says what that is); returns the entry.
/// Panics with what it reported last.
pub fn wait_for_instance(
    vrrpd: &Vrrpd,
    name: &str,
    what: &str,
    timeout: Duration,
    check: impl Fn(&Value) -> bool,
) -> Value {
    let mut last = None;
    wait_until(timeout, POLL, || {
        last = vrrpd.instance(name);
        last.as_ref().is_some_and(&check)
    });
    match last {
        Some(instance) if check(&instance) => instance,
        _ => panic!(
            "{}: instance {name} did not report {what} within {timeout:?}; last state file \
             entry: {last:?} (log {})",
            vrrpd.proc().label(),
            vrrpd.proc().log_path().display()
        ),
    }
}

/// Counter `name` of a state file instance entry (0 when absent).
pub fn counter(instance: &Value, name: &str) -> u64 {
    instance["counters"][name].as_u64().unwrap_or(0)
}

/// Whether vrrpd's state of an instance shows a failed `notify_master`
/// holding it (`master_hook_failure: fault`).
pub fn held_by_master_hook(instance: &Value) -> bool {
    instance["trackers"]
        .as_array()
        .is_some_and(|trackers| trackers.iter().any(|t| t["kind"] == "notify_master"))
}
