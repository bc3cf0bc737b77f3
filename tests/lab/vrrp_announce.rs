//! vrrpd's announcements on becoming MASTER, as the peer host captures
//! them: gratuitous ARPs (IPv4) or unsolicited neighbour adverts (IPv6)
//! for the virtual address from h1's MAC, `garp_master_repeat` of them at
//! once, as many again `garp_master_delay` later, then silence — or, with
//! `garp_master_refresh`, a burst every refresh interval.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::thread;
use std::time::Duration;

use hapair_lab::{Capture, Host, Lab, VrrpInstance, Vrrpd, lab_lock, require_root, vrrpd_config};

use crate::common::{vip, wait_for_state, with_margin};

/// Announcements per address per burst.
const REPEAT: u32 = 3;
/// From the first burst to the second.
const DELAY: Duration = Duration::from_secs(2);
/// How far the second burst may be off [`DELAY`].
const DELAY_TOLERANCE: Duration = Duration::from_secs(1);
/// Frames of one burst go out back to back; bursts are a second or more
/// apart. Frames closer than this belong to one burst.
const BURST_GAP: Duration = Duration::from_millis(300);
/// How long the capture goes on after the second burst was due: three
/// refresh intervals of the refreshing test.
const WATCH_AFTER_SECOND_BURST: Duration = Duration::from_millis(3500);
/// The refresh interval of the refreshing test, and how far the gap
/// between its bursts may be off it.
const REFRESH: Duration = Duration::from_secs(1);
const REFRESH_TOLERANCE: Duration = Duration::from_millis(500);
/// The fields read from each captured announcement; `frame.time_epoch`
/// gives its time.
const FIELDS: [&str; 17] = [
    "frame.time_epoch",
    "eth.src",
    "eth.dst",
    "arp.opcode",
    "arp.src.hw_mac",
    "arp.src.proto_ipv4",
    "arp.dst.proto_ipv4",
    "ipv6.src",
    "ipv6.dst",
    "ipv6.hlim",
    "icmpv6.type",
    "icmpv6.checksum.status",
    "icmpv6.nd.na.flag.r",
    "icmpv6.nd.na.flag.s",
    "icmpv6.nd.na.flag.o",
    "icmpv6.nd.na.target_address",
    "icmpv6.opt.linkaddr",
];

/// One captured announcement: when it came, and its other fields.
struct Announcement {
    /// Seconds since the epoch.
    time: f64,
    fields: BTreeMap<String, String>,
}

/// h1's instance: alone on the lab, it becomes MASTER after its
/// master-down interval; announcing `REPEAT` times per burst, the second
/// burst after `DELAY`, and every `refresh` after that if set.
fn announcing(version: u8, virtual_ip: &str, refresh: Option<Duration>) -> VrrpInstance {
    VrrpInstance {
        version,
        garp_master_repeat: Some(REPEAT),
        garp_master_delay: Some(DELAY),
        garp_master_refresh: refresh,
        ..VrrpInstance::new(51, 150, virtual_ip)
    }
}

/// Captures on h2 while vrrpd on h1 runs `instance` and becomes MASTER,
/// until `WATCH_AFTER_SECOND_BURST` after its second burst was due; returns
/// every announcement of the virtual address h2 saw, in order.
fn capture_announcements(lab: &Lab, instance: &VrrpInstance) -> Vec<Announcement> {
    let (h1, h2) = (lab.host(1), lab.host(2));
    let vip = vip(instance);
    let mut capture = Capture::start(h2, "arp or icmp6");
    let mut vrrpd = Vrrpd::start(h1, &vrrpd_config(std::slice::from_ref(instance)));
    let takes = with_margin(instance.master_down_interval()) + Duration::from_secs(2);
    // The state file says MASTER once the first burst went out.
    wait_for_state(&vrrpd, &instance.name, "MASTER", takes);
    thread::sleep(DELAY + WATCH_AFTER_SECOND_BURST);
    capture.stop();
    assert!(
        vrrpd.proc_mut().is_running(),
        "h1's vrrpd exited while announcing"
    );
    let selection = match vip {
        IpAddr::V4(_) => format!("arp.src.proto_ipv4 == {vip}"),
        IpAddr::V6(_) => format!("icmpv6.nd.na.target_address == {vip}"),
    };
    capture
        .fields(&selection, &FIELDS)
        .into_iter()
        .map(|mut fields| {
            let time = fields
                .remove("frame.time_epoch")
                .and_then(|text| text.parse().ok())
                .unwrap_or_else(|| panic!("a captured frame without a time: {fields:?}"));
            Announcement { time, fields }
        })
        .collect()
}

/// The fields every announcement of `vip` from `h1` must carry: from h1's
/// MAC, mapping `vip` to it. For IPv4 a broadcast ARP request whose sender
/// and target address are both `vip`; for IPv6 a neighbour advert from
/// `vip` to all nodes, hop limit 255, good checksum, with the override
/// flag (only) set and h1's MAC as the target link-layer address.
fn expected_fields(vip: IpAddr, h1: &Host) -> BTreeMap<String, String> {
    let mac = h1.mac();
    let mut fields = vec![("eth.src", mac.clone())];
    match vip {
        IpAddr::V4(_) => fields.extend([
            ("eth.dst", "ff:ff:ff:ff:ff:ff".to_owned()),
            ("arp.opcode", "1".to_owned()),
            ("arp.src.hw_mac", mac),
            ("arp.src.proto_ipv4", vip.to_string()),
            ("arp.dst.proto_ipv4", vip.to_string()),
        ]),
        IpAddr::V6(_) => fields.extend([
            ("eth.dst", "33:33:00:00:00:01".to_owned()),
            ("ipv6.src", vip.to_string()),
            ("ipv6.dst", "ff02::1".to_owned()),
            ("ipv6.hlim", "255".to_owned()),
            ("icmpv6.type", "136".to_owned()),
            // Wireshark's value of a checksum status that verified.
            ("icmpv6.checksum.status", "1".to_owned()),
            ("icmpv6.nd.na.flag.r", "0".to_owned()),
            ("icmpv6.nd.na.flag.s", "0".to_owned()),
            ("icmpv6.nd.na.flag.o", "1".to_owned()),
            ("icmpv6.nd.na.target_address", vip.to_string()),
            ("icmpv6.opt.linkaddr", mac),
        ]),
    }
    fields
        .into_iter()
        .map(|(field, value)| (field.to_owned(), value))
        .collect()
}

/// A burst of announcements: when its first frame came (seconds since
/// the epoch), and how many frames it held.
#[derive(Debug)]
struct Burst {
    start: f64,
    frames: u32,
}

/// Groups `announcements` into bursts: a frame less than [`BURST_GAP`]
/// after the previous one belongs to its burst.
fn bursts(announcements: &[Announcement]) -> Vec<Burst> {
    let mut bursts: Vec<Burst> = Vec::new();
    let mut previous = f64::NEG_INFINITY;
    for announcement in announcements {
        match bursts.last_mut() {
            Some(burst) if announcement.time - previous < BURST_GAP.as_secs_f64() => {
                burst.frames += 1;
            }
            _ => bursts.push(Burst {
                start: announcement.time,
                frames: 1,
            }),
        }
        previous = announcement.time;
    }
    bursts
}

/// The seconds from burst `from` to burst `to`, checked to be within
/// `tolerance` of `expected`.
fn assert_gap(bursts: &[Burst], from: usize, to: usize, expected: Duration, tolerance: Duration) {
    let gap = bursts[to].start - bursts[from].start;
    assert!(
        (gap - expected.as_secs_f64()).abs() <= tolerance.as_secs_f64(),
        "burst {to} came {gap:.3} s after burst {from}, not {expected:?} ± {tolerance:?}: \
         {bursts:?}"
    );
}

/// Runs `instance` on h1 and checks what h2 captured: every frame as
/// [`expected_fields`] says, `REPEAT` at once, as many `DELAY` later, and
/// then either nothing more or, with a refresh interval, a burst of
/// `REPEAT` every interval.
fn check_announcements(instance: &VrrpInstance) {
    let _lock = lab_lock();
    if !require_root() {
        return;
    }
    let lab = Lab::new(2);
    let announcements = capture_announcements(&lab, instance);
    let expected = expected_fields(vip(instance), lab.host(1));
    for announcement in &announcements {
        assert_eq!(announcement.fields, expected);
    }
    let bursts = bursts(&announcements);
    let offsets: Vec<String> = bursts
        .iter()
        .map(|burst| format!("+{:.3} s: {}", burst.start - bursts[0].start, burst.frames))
        .collect();
    eprintln!("announcement bursts (start, frames): {offsets:?}");
    assert!(bursts.len() >= 2, "expected two bursts or more: {bursts:?}");
    for (index, burst) in bursts.iter().enumerate() {
        assert_eq!(
            burst.frames, REPEAT,
            "burst {index} should hold {REPEAT} frames: {bursts:?}"
        );
    }
    assert_gap(&bursts, 0, 1, DELAY, DELAY_TOLERANCE);
    match instance.garp_master_refresh {
        None => assert_eq!(
            bursts.len(),
            2,
            "no announcements after the second burst without garp_master_refresh: {bursts:?}"
        ),
        Some(refresh) => {
            // Three refresh intervals watched; the last burst may fall
            // just past the end of the capture.
            assert!(
                bursts.len() >= 4,
                "expected two refresh bursts or more after the second: {bursts:?}"
            );
            for index in 2..bursts.len() {
                assert_gap(&bursts, index - 1, index, refresh, REFRESH_TOLERANCE);
            }
        }
    }
}

#[test]
fn gratuitous_arps_come_in_two_bursts() {
    check_announcements(&announcing(2, "10.99.0.100/24", None));
}

#[test]
fn gratuitous_arps_go_on_with_a_refresh_interval() {
    check_announcements(&announcing(2, "10.99.0.100/24", Some(REFRESH)));
}

#[test]
fn unsolicited_neighbour_adverts_come_in_two_bursts() {
    check_announcements(&announcing(3, "fd99::100/64", None));
}
