//! vrrpd's adverts as Wireshark's dissector sees them: captured by tshark
//! on the peer host, each must be a VRRP advertisement with a good
//! checksum, TTL / hop limit 255, and the configured router id, priority,
//! interval and addresses. keepalived's adverts go through the same checks,
//! which shows the checks themselves are right.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use hapair_lab::{
    Host, Keepalived, Lab, Proc, VrrpInstance, Vrrpd, installed_program, keepalived_config,
    lab_lock, require_root, vrrpd_config, wait_until,
};

use crate::common::POLL;

/// Adverts captured per test.
const ADVERTS: usize = 3;
/// The fields read from each captured packet.
const FIELDS: [&str; 19] = [
    "ip.src",
    "ip.dst",
    "ip.ttl",
    "ip.checksum.status",
    "ipv6.src",
    "ipv6.dst",
    "ipv6.hlim",
    "vrrp.version",
    "vrrp.type",
    "vrrp.virt_rtr_id",
    "vrrp.prio",
    "vrrp.addr_count",
    "vrrp.checksum.status",
    "vrrp.ip_addr",
    "vrrp.ipv6_addr",
    "vrrp.adver_int",
    "vrrp.short_adver_int",
    "vrrp.auth_type",
    "vrrp.auth_string",
];
/// Wireshark's value of a `*.checksum.status` field that verified.
const CHECKSUM_GOOD: &str = "1";

/// Who sends the adverts.
#[derive(Clone, Copy)]
enum Sender {
    Vrrpd,
    Keepalived,
}

/// Starts tshark on h2, then `sender` alone on h1 with `instance`, and
/// returns the fields of the first [`ADVERTS`] adverts h2 saw.
fn capture_adverts(
    lab: &Lab,
    sender: Sender,
    instance: &VrrpInstance,
) -> Vec<BTreeMap<String, String>> {
    let (h1, h2) = (lab.host(1), lab.host(2));
    let tshark = installed_program("tshark", "tshark");
    let tshark = tshark.to_str().expect("UTF-8 path");
    let capture = h2.new_file_path("adverts", "pcap");
    let capture = capture.to_str().expect("UTF-8 path");
    let count = ADVERTS.to_string();
    let mut capturing = h2.spawn(
        &[
            tshark,
            "-i",
            "eth0",
            "-f",
            "ip proto 112 or ip6 proto 112",
            "-c",
            &count,
            "-a",
            "duration:30",
            "-w",
            capture,
        ],
        &[],
    );
    wait_until(Duration::from_secs(15), POLL, || {
        capturing.log().contains("Capturing on")
    })
    .unwrap_or_else(|| panic!("tshark did not start capturing: {}", capturing.log()));

    let mut sending = start_sender(sender, h1, instance);
    let status = capturing
        .wait_timeout(Duration::from_secs(40))
        .unwrap_or_else(|| panic!("tshark did not finish: {}", capturing.log()));
    assert!(
        status.success(),
        "tshark failed ({status}): {}",
        capturing.log()
    );
    let sender_proc = sending.proc_mut();
    assert!(
        sender_proc.is_running(),
        "{} exited while sending adverts",
        sender_proc.label()
    );
    dissect(tshark, Path::new(capture))
}

/// The running sender.
enum Sending {
    Vrrpd(Vrrpd),
    Keepalived(Keepalived),
}

impl Sending {
    fn proc_mut(&mut self) -> &mut Proc {
        match self {
            Sending::Vrrpd(vrrpd) => vrrpd.proc_mut(),
            Sending::Keepalived(keepalived) => keepalived.proc_mut(),
        }
    }
}

fn start_sender(sender: Sender, host: &Host, instance: &VrrpInstance) -> Sending {
    let instances = std::slice::from_ref(instance);
    match sender {
        Sender::Vrrpd => Sending::Vrrpd(Vrrpd::start(host, &vrrpd_config(instances))),
        Sender::Keepalived => Sending::Keepalived(Keepalived::start(
            host,
            &keepalived_config(host.name(), instances),
        )),
    }
}

/// Reads [`FIELDS`] of every packet in `capture`, with VRRPv3 IPv4
/// checksums verified over the pseudo-header (RFC 5798; keepalived's
/// default) and IPv4 header checksums verified too.
fn dissect(tshark: &str, capture: &Path) -> Vec<BTreeMap<String, String>> {
    let mut command = Command::new(tshark);
    command
        .arg("-r")
        .arg(capture)
        .args(["-o", "vrrp.v3_checksum_as_in_v2:FALSE"])
        .args(["-o", "ip.check_checksum:TRUE"])
        .args(["-T", "fields", "-E", "separator=/t"]);
    for field in FIELDS {
        command.args(["-e", field]);
    }
    let output = command.output().expect("run tshark -r");
    assert!(
        output.status.success(),
        "tshark -r failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|line| {
            FIELDS
                .iter()
                .zip(line.split('\t'))
                .filter(|(_, value)| !value.is_empty())
                .map(|(field, value)| ((*field).to_owned(), value.to_owned()))
                .collect()
        })
        .collect()
}

/// The fields every advert of `instance` from h1 must carry.
fn expected_fields(instance: &VrrpInstance, h1: &Host) -> BTreeMap<String, String> {
    let vip = crate::common::vip(instance);
    let mut expected: BTreeMap<String, String> = [
        ("vrrp.version", instance.version.to_string()),
        ("vrrp.type", "1".to_owned()),
        ("vrrp.virt_rtr_id", instance.virtual_router_id.to_string()),
        ("vrrp.prio", instance.priority.to_string()),
        ("vrrp.addr_count", "1".to_owned()),
        ("vrrp.checksum.status", CHECKSUM_GOOD.to_owned()),
    ]
    .into_iter()
    .map(|(field, value)| (field.to_owned(), value))
    .collect();
    let mut expect = |field: &str, value: String| {
        expected.insert(field.to_owned(), value);
    };
    match vip {
        IpAddr::V4(_) => {
            expect("ip.src", h1.ipv4().to_string());
            expect("ip.dst", "224.0.0.18".to_owned());
            expect("ip.ttl", "255".to_owned());
            expect("ip.checksum.status", CHECKSUM_GOOD.to_owned());
            expect("vrrp.ip_addr", vip.to_string());
        }
        IpAddr::V6(_) => {
            expect("ipv6.src", h1.link_local().to_string());
            expect("ipv6.dst", "ff02::12".to_owned());
            expect("ipv6.hlim", "255".to_owned());
            expect("vrrp.ipv6_addr", vip.to_string());
        }
    }
    if instance.version == 2 {
        expect("vrrp.adver_int", instance.advert_int.as_secs().to_string());
        // Auth type 1 is the simple text password (RFC 2338).
        match &instance.auth_pass {
            Some(pass) => {
                expect("vrrp.auth_type", "1".to_owned());
                expect("vrrp.auth_string", pass.clone());
            }
            None => expect("vrrp.auth_type", "0".to_owned()),
        }
    } else {
        let centis = instance.advert_int.as_millis() / 10;
        expect("vrrp.short_adver_int", centis.to_string());
    }
    expected
}

/// Captures `sender`'s adverts for `instance` (sent from h1) and checks
/// each one.
fn check_adverts(sender: Sender, instance: &VrrpInstance) {
    let _lock = lab_lock();
    if !require_root() {
        return;
    }
    let lab = Lab::new(2);
    let packets = capture_adverts(&lab, sender, instance);
    assert_eq!(packets.len(), ADVERTS, "captured {packets:?}");
    let expected = expected_fields(instance, lab.host(1));
    for packet in &packets {
        assert_eq!(packet, &expected);
    }
}

fn v2_with_password() -> VrrpInstance {
    VrrpInstance {
        auth_pass: Some("secret1".to_owned()),
        ..VrrpInstance::new(51, 150, "10.99.0.100/24")
    }
}

fn v3_ipv4() -> VrrpInstance {
    VrrpInstance {
        version: 3,
        // Not a whole second, so that the centisecond field is checked.
        advert_int: Duration::from_millis(500),
        ..VrrpInstance::new(52, 150, "10.99.0.100/24")
    }
}

fn v3_ipv6() -> VrrpInstance {
    VrrpInstance {
        version: 3,
        ..VrrpInstance::new(53, 150, "fd99::100/64")
    }
}

#[test]
fn vrrpd_v2_adverts_dissect_cleanly() {
    check_adverts(Sender::Vrrpd, &v2_with_password());
}

#[test]
fn vrrpd_v3_ipv4_adverts_dissect_cleanly() {
    check_adverts(Sender::Vrrpd, &v3_ipv4());
}

#[test]
fn vrrpd_v3_ipv6_adverts_dissect_cleanly() {
    check_adverts(Sender::Vrrpd, &v3_ipv6());
}

/// The reference: the same checks pass on keepalived's adverts.
#[test]
fn keepalived_v2_adverts_dissect_cleanly() {
    check_adverts(Sender::Keepalived, &v2_with_password());
}

#[test]
fn keepalived_v3_ipv4_adverts_dissect_cleanly() {
    check_adverts(Sender::Keepalived, &v3_ipv4());
}

#[test]
fn keepalived_v3_ipv6_adverts_dissect_cleanly() {
    check_adverts(Sender::Keepalived, &v3_ipv6());
}
