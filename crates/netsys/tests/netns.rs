//! Root-only tests of netsys on a veth pair between two network namespaces
//! that each test creates for itself (and removes, also when it panics):
//! frames sent through `PacketSocket` and the socket options are checked by
//! what tshark decodes on the far end, and `hardware_address` against
//! `ip -j link`. Without root, `ip` or tshark, each test prints why it is
//! skipped and passes.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4};
use std::os::unix::process::CommandExt;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use netsys::{PacketSocket, hardware_address, set_multicast_if_v4_index};
use nix::sched::{CloneFlags, setns};
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use socket2::{Domain, Socket, Type};
use vrrp::announce::{gratuitous_arp, unsolicited_neighbour_advert};

const VETH_A: &str = "veth-a";
const VETH_B: &str = "veth-b";

/// Whether this machine can run the namespace tests; says why not if not.
fn can_run(tools: &[&str]) -> bool {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: network namespace tests need root");
        return false;
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    for tool in tools {
        if !std::env::split_paths(&path).any(|dir| dir.join(tool).is_file()) {
            eprintln!("skipped: {tool} is not installed (scripts/test.sh installs it)");
            return false;
        }
    }
    true
}

/// Runs a command to completion and panics with its output if it fails.
fn run(program: &str, args: &[&str]) -> String {
    let output = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|err| panic!("cannot run {program}: {err}"));
    assert!(
        output.status.success(),
        "`{program} {}` failed ({}): {}",
        args.join(" "),
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("command output is UTF-8")
}

/// Two network namespaces joined by a veth pair, `veth-a` in `a` and
/// `veth-b` in `b`, both up. Dropping it deletes both namespaces, and with
/// them the veth pair.
struct NamespacePair {
    a: String,
    b: String,
}

impl NamespacePair {
    fn create(tag: &str) -> Self {
        let pid = std::process::id();
        let pair = Self {
            a: format!("hpns-{pid}-{tag}-a"),
            b: format!("hpns-{pid}-{tag}-b"),
        };
        run("ip", &["netns", "add", &pair.a]);
        run("ip", &["netns", "add", &pair.b]);
        run(
            "ip",
            &[
                "link", "add", VETH_A, "netns", &pair.a, "type", "veth", "peer", "name", VETH_B,
                "netns", &pair.b,
            ],
        );
        run("ip", &["-n", &pair.a, "link", "set", VETH_A, "up"]);
        run("ip", &["-n", &pair.b, "link", "set", VETH_B, "up"]);
        pair
    }

    /// Runs `work` on a thread that has entered namespace `a` (a network
    /// namespace belongs to a thread, so the test thread stays where it is).
    fn in_a<R: Send>(&self, work: impl FnOnce() -> R + Send) -> R {
        let namespace = File::open(format!("/run/netns/{}", self.a))
            .unwrap_or_else(|err| panic!("cannot open namespace {}: {err}", self.a));
        thread::scope(|scope| {
            let worker = scope.spawn(move || {
                setns(namespace, CloneFlags::CLONE_NEWNET).expect("setns into namespace a");
                work()
            });
            worker
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        })
    }
}

impl Drop for NamespacePair {
    fn drop(&mut self) {
        for namespace in [&self.a, &self.b] {
            let deleted = Command::new("ip")
                .args(["netns", "del", namespace])
                .status();
            if !matches!(deleted, Ok(status) if status.success()) {
                eprintln!("warning: could not delete network namespace {namespace}");
            }
        }
    }
}

/// tshark capturing `count` frames that match `filter` on an interface of a
/// namespace, printing `fields` tab-separated. Killed when dropped.
struct Capture {
    tshark: Child,
    stdout: ChildStdout,
    stderr: mpsc::Receiver<String>,
    fields: Vec<&'static str>,
}

impl Capture {
    /// Starts tshark and returns once dumpcap has attached to the interface
    /// (tshark's "Capturing on" comes earlier, before it has).
    fn start(
        namespace: &str,
        interface: &str,
        count: usize,
        filter: &str,
        fields: &[&'static str],
    ) -> Self {
        let count = count.to_string();
        let mut args = vec![
            "netns",
            "exec",
            namespace,
            "tshark",
            "-l", // flush each line, so a timeout still shows what was seen
            "-n",
            "-i",
            interface,
            "-f",
            filter,
            "-c",
            &count,
            "-T",
            "fields",
            "-E",
            "occurrence=a",
            "-E",
            "aggregator=,",
        ];
        for field in fields {
            args.extend(["-e", field]);
        }
        // Its own process group, so that killing it also kills dumpcap.
        let mut tshark = Command::new("ip")
            .args(&args)
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("cannot start tshark");
        let stdout = tshark.stdout.take().expect("piped stdout");
        let stderr_pipe = tshark.stderr.take().expect("piped stderr");
        let (line_sender, stderr) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stderr_pipe).lines().map_while(Result::ok) {
                if line_sender.send(line).is_err() {
                    break;
                }
            }
        });
        let mut capture = Self {
            tshark,
            stdout,
            stderr,
            fields: fields.to_vec(),
        };
        capture.wait_for_stderr_line("Capture started", Duration::from_secs(30));
        capture
    }

    fn wait_for_stderr_line(&mut self, needle: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        let mut seen = Vec::new();
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.stderr.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return,
                Ok(line) => seen.push(line),
                Err(mpsc::RecvTimeoutError::Timeout) => break,
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            }
        }
        panic!("tshark did not print {needle:?}; it said: {seen:#?}");
    }

    /// Waits for tshark to capture its frames and returns one map from field
    /// name to value per frame.
    fn finish(mut self, timeout: Duration) -> Vec<HashMap<&'static str, String>> {
        let deadline = Instant::now() + timeout;
        while self.tshark.try_wait().expect("wait for tshark").is_none() {
            if Instant::now() > deadline {
                self.kill();
                let mut partial = String::new();
                let _ = self.stdout.read_to_string(&mut partial);
                let said: Vec<String> = self.stderr.try_iter().collect();
                panic!(
                    "tshark did not capture all its frames in {timeout:?}; \
                     captured:\n{partial}\nstderr: {said:#?}"
                );
            }
            thread::sleep(Duration::from_millis(50));
        }
        let mut output = String::new();
        self.stdout
            .read_to_string(&mut output)
            .expect("read tshark output");
        output
            .lines()
            .map(|line| {
                self.fields
                    .iter()
                    .copied()
                    .zip(line.split('\t').map(str::to_owned))
                    .collect()
            })
            .collect()
    }

    /// Kills tshark and dumpcap, which would otherwise keep stdout open, if
    /// tshark is still running (once it has been reaped, its process group
    /// id may belong to someone else).
    fn kill(&mut self) {
        if let Ok(None) = self.tshark.try_wait() {
            let group = Pid::from_raw(i32::try_from(self.tshark.id()).expect("pids fit in i32"));
            let _ = killpg(group, Signal::SIGKILL);
            let _ = self.tshark.wait();
        }
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        self.kill();
    }
}

fn parse_mac(text: &str) -> [u8; 6] {
    let bytes: Vec<u8> = text
        .split(':')
        .map(|byte| u8::from_str_radix(byte, 16).unwrap_or_else(|_| panic!("bad MAC {text}")))
        .collect();
    bytes
        .try_into()
        .unwrap_or_else(|_| panic!("bad MAC {text}"))
}

fn format_mac(mac: [u8; 6]) -> String {
    mac.map(|byte| format!("{byte:02x}")).join(":")
}

#[test]
fn hardware_address_matches_ip_link_inside_a_namespace() {
    if !can_run(&["ip"]) {
        return;
    }
    let pair = NamespacePair::create("hw");
    let listing = run("ip", &["-n", &pair.a, "-j", "link", "show", "dev", VETH_A]);
    let links: serde_json::Value = serde_json::from_str(&listing).expect("ip -j link is JSON");
    let expected = parse_mac(links[0]["address"].as_str().expect("a link has an address"));

    let (found, other_side) = pair.in_a(|| (hardware_address(VETH_A), hardware_address(VETH_B)));
    assert_eq!(found.expect("veth-a's MAC"), expected);
    let not_here = other_side.expect_err("veth-b lives in namespace b, not a");
    assert_eq!(not_here.kind(), std::io::ErrorKind::NotFound);
}

#[test]
fn announcements_and_socket_options_work_across_a_veth_pair() {
    if !can_run(&["ip", "tshark"]) {
        return;
    }
    let pair = NamespacePair::create("tx");
    run(
        "ip",
        &["-n", &pair.a, "addr", "add", "10.99.0.1/24", "dev", VETH_A],
    );
    run(
        "ip",
        &[
            "-n",
            &pair.a,
            "-6",
            "addr",
            "add",
            "fd99::1/64",
            "dev",
            VETH_A,
            "nodad",
        ],
    );

    let virtual_v4 = Ipv4Addr::new(10, 99, 0, 77);
    let virtual_v6: Ipv6Addr = "fd99::77".parse().unwrap();
    let corrupted_v6: Ipv6Addr = "fd99::78".parse().unwrap();
    let multicast_v4 = Ipv4Addr::new(239, 255, 0, 1);
    let udp_port = 47000;

    // Only what the test sends: the kernels' own DAD, MLD and router
    // solicitations are left out (MLD carries a hop-by-hop header, DAD is a
    // neighbour solicitation, 135).
    let filter = "arp or (icmp6 and ip6[40] == 136) or (ip and udp)";
    let fields = [
        "eth.src",
        "eth.dst",
        "arp.opcode",
        "arp.src.hw_mac",
        "arp.src.proto_ipv4",
        "arp.dst.hw_mac",
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
        "ip.dst",
        "udp.dstport",
    ];
    let capture = Capture::start(&pair.b, VETH_B, 4, filter, &fields);

    let mac = pair.in_a(|| {
        let mac = hardware_address(VETH_A).expect("veth-a's MAC");
        let index = nix::net::if_::if_nametoindex(VETH_A).expect("veth-a's index");

        let packets = PacketSocket::open(index).expect("open a packet socket on veth-a");
        packets
            .send(&gratuitous_arp(mac, virtual_v4))
            .expect("send the gratuitous ARP");
        packets
            .send(&unsolicited_neighbour_advert(mac, virtual_v6))
            .expect("send the neighbour advert");
        let mut corrupted = unsolicited_neighbour_advert(mac, corrupted_v6);
        corrupted[14 + 40 + 2] ^= 0xff; // the ICMPv6 checksum's first byte
        packets.send(&corrupted).expect("send the corrupted advert");

        // Namespace a has no route for 239.255.0.1, so IPv4 multicast leaves
        // only once IP_MULTICAST_IF names the interface.
        let udp = Socket::new(Domain::IPV4, Type::DGRAM, None).unwrap();
        let group = SocketAddr::V4(SocketAddrV4::new(multicast_v4, udp_port)).into();
        let unrouted = udp.send_to(b"hello", &group).expect_err("no route yet");
        assert_eq!(
            unrouted.raw_os_error(),
            Some(libc::ENETUNREACH),
            "{unrouted}"
        );
        set_multicast_if_v4_index(&udp, index).expect("IP_MULTICAST_IF by index");
        udp.send_to(b"hello", &group)
            .expect("send multicast through veth-a");
        mac
    });

    let frames = capture.finish(Duration::from_secs(10));
    let find = |what: &str, matches: &dyn Fn(&HashMap<&str, String>) -> bool| {
        frames
            .iter()
            .find(|frame| matches(frame))
            .unwrap_or_else(|| panic!("no {what} among the captured frames: {frames:#?}"))
    };
    let mac_text = format_mac(mac);
    let v4_text = virtual_v4.to_string();

    let arp = find("ARP", &|frame| !frame["arp.opcode"].is_empty());
    assert_eq!(arp["arp.opcode"], "1", "a request: {arp:#?}");
    assert_eq!(arp["eth.dst"], "ff:ff:ff:ff:ff:ff");
    assert_eq!(arp["eth.src"], mac_text);
    assert_eq!(arp["arp.src.hw_mac"], mac_text);
    assert_eq!(arp["arp.src.proto_ipv4"], v4_text);
    assert_eq!(arp["arp.dst.proto_ipv4"], v4_text);
    assert_eq!(arp["arp.dst.hw_mac"], "00:00:00:00:00:00");

    let target = |ip: Ipv6Addr| {
        move |frame: &HashMap<&str, String>| frame["icmpv6.nd.na.target_address"] == ip.to_string()
    };
    let advert = find("neighbour advert", &target(virtual_v6));
    assert_eq!(advert["icmpv6.type"], "136");
    assert_eq!(
        advert["icmpv6.checksum.status"], "1",
        "checksum good: {advert:#?}"
    );
    assert_eq!(advert["eth.dst"], "33:33:00:00:00:01");
    assert_eq!(advert["eth.src"], mac_text);
    assert_eq!(advert["ipv6.src"], virtual_v6.to_string());
    assert_eq!(advert["ipv6.dst"], "ff02::1");
    assert_eq!(advert["ipv6.hlim"], "255");
    assert_eq!(advert["icmpv6.nd.na.flag.r"], "0");
    assert_eq!(advert["icmpv6.nd.na.flag.s"], "0");
    assert_eq!(advert["icmpv6.nd.na.flag.o"], "1");
    assert_eq!(advert["icmpv6.opt.linkaddr"], mac_text);

    let corrupted = find("corrupted neighbour advert", &target(corrupted_v6));
    assert_eq!(
        corrupted["icmpv6.checksum.status"], "0",
        "checksum bad: {corrupted:#?}"
    );

    let udp = find("UDP datagram", &|frame| !frame["udp.dstport"].is_empty());
    assert_eq!(udp["ip.dst"], multicast_v4.to_string());
    assert_eq!(udp["udp.dstport"], udp_port.to_string());
}
