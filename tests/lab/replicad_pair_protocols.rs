//! Replication protocols A, B and C by what a client can observe: when its
//! write is answered while the peer is held up.
//!
//! - A: answered once handed to the connection, even while the peer's
//!   replicad is frozen (SIGSTOP); the data arrives once it runs again.
//! - B: answered once the peer received it, even while the peer's disk
//!   holds every write (nbdkit's pause filter under ha2's disk).
//! - C: not answered while the peer's disk holds the write; answered once
//!   it is written.
//!
//! In each case the link stays Connected throughout and no resync follows:
//! the data crossed by mirroring.
//!
//! And `data-integrity-alg`: with it set on both nodes, mirroring works
//! and each Write on the wire (captured with tshark) carries the digest of
//! its data. (That a damaged Write is refused is a unit test of
//! `replica::wire::Write::integrity_holds`; nothing here damages data in
//! flight.)

use std::io::{Read, Write};
use std::ops::Range;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::Duration;

use hapair_lab::{
    Capture, NbdkitDisk, Proc, ReplicadNode, lab_lock, path_arg, program, read_file_range,
    require_root,
};
use nix::sys::signal::Signal;

use crate::replicad_pair_kit::{
    Extras, Pair, backing_bytes, in_sync, resynced_bytes, synced_pair, wait_for, wait_for_status,
};

const WRITTEN: Range<u64> = 2 << 20..(2 << 20) + 256 * 1024;
const PATTERN: u8 = 0x5b;
/// How long a client may take to have its write answered (well inside
/// `ping-timeout`, so an answer never comes from a lost link).
const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a capture is given to start really, and to write out what it
/// saw.
const CAPTURE_CATCH_UP: Duration = Duration::from_secs(3);
/// How long a write that must wait is watched waiting.
const HELD: Duration = Duration::from_secs(3);

/// ha2's disk: nbdkit's memory plugin behind the pause filter.
struct PausableDisk {
    disk: NbdkitDisk,
    control: PathBuf,
}

impl PausableDisk {
    fn start() -> PausableDisk {
        let disk = NbdkitDisk::start(|dir| {
            vec![
                "--filter=pause".into(),
                "memory".into(),
                "64M".into(),
                format!("pause-control={}", path_arg(&dir.join("pause.sock"))),
            ]
        });
        let control = disk.dir().join("pause.sock");
        PausableDisk { disk, control }
    }

    /// Sends `command` ('p' or 'r') and waits for the filter's echo.
    fn command(&self, command: u8) {
        let mut socket = UnixStream::connect(&self.control)
            .unwrap_or_else(|error| panic!("cannot reach {}: {error}", self.control.display()));
        socket.write_all(&[command]).expect("command sent");
        let mut echo = [0u8; 1];
        socket.read_exact(&mut echo).expect("the filter echoes");
        assert_eq!(echo[0], command.to_ascii_uppercase());
    }

    /// Every request to the disk waits from now on.
    fn pause(&self) {
        self.command(b'p');
    }

    fn resume(&self) {
        self.command(b'r');
    }

    fn holds(&self, range: &Range<u64>, byte: u8) -> bool {
        read_file_range(
            &self.disk.file(),
            range.start,
            (range.end - range.start) as usize,
        )
        .is_ok_and(|bytes| bytes.iter().all(|&b| b == byte))
    }
}

/// A qemu-io writing the pattern over `range` on `node`.
fn start_writing(node: &ReplicadNode, range: &Range<u64>) -> Proc {
    let qemu_io = program("qemu-io");
    let command = format!(
        "write -P {PATTERN} {} {}",
        range.start,
        range.end - range.start
    );
    node.spawn(
        &[
            path_arg(&qemu_io),
            "-f",
            "raw",
            &node.nbd_uri(),
            "-c",
            &command,
        ],
        &[("QEMU_IO_OPTIONS", "")],
    )
}

/// Waits up to `timeout` for the client to end, and checks it succeeded.
fn assert_answered(client: &mut Proc, timeout: Duration, what: &str) {
    let status = client.wait_timeout(timeout);
    let output = client.log();
    assert!(
        status.is_some_and(|status| status.success()) && !output.contains("error"),
        "{what}: the write should be answered within {timeout:?} ({status:?}):\n{output}"
    );
}

fn assert_still_connected(pair: &Pair) {
    let status = pair.ha1.status();
    assert_eq!(
        status["peer"]["connection"], "Connected",
        "the link never dropped: {status}"
    );
}

/// Both nodes in sync again with no resync since `resynced_before`.
fn assert_mirrored_without_resync(pair: &Pair, resynced_before: u64) {
    for node in [&pair.ha1, &pair.ha2] {
        wait_for_status(node, "both in sync", in_sync);
    }
    assert_eq!(
        resynced_bytes(&pair.ha2),
        resynced_before,
        "the data crossed by mirroring, not by a resync"
    );
}

fn pair_with_pausable_ha2(protocol: &'static str) -> (PausableDisk, Pair) {
    let disk = PausableDisk::start();
    let pair = synced_pair(&Extras {
        protocol,
        ha2_disk: Some(disk.disk.file()),
        ..Extras::default()
    });
    (disk, pair)
}

#[test]
fn protocol_a_answers_while_the_peer_is_frozen() {
    let _lock = lab_lock();
    if !require_root() {
        return;
    }
    let pair = synced_pair(&Extras {
        protocol: "A",
        ..Extras::default()
    });
    let resynced_before = resynced_bytes(&pair.ha2);
    pair.ha2.daemon().kill(Signal::SIGSTOP);
    let mut client = start_writing(&pair.ha1, &WRITTEN);
    let answered = client.wait_timeout(ANSWER_TIMEOUT);
    pair.ha2.daemon().kill(Signal::SIGCONT);
    assert!(
        answered.is_some_and(|status| status.success()),
        "protocol A answers while the peer is frozen ({answered:?}):\n{}",
        client.log()
    );
    assert_still_connected(&pair);
    wait_for(
        "the data on ha2 once it runs again",
        || {
            backing_bytes(&pair.ha2, &WRITTEN)
                .iter()
                .all(|&b| b == PATTERN)
        },
        || pair.ha2.daemon().log(),
    );
    assert_mirrored_without_resync(&pair, resynced_before);
}

#[test]
fn protocol_b_answers_once_received_while_the_peer_disk_holds_it() {
    let _lock = lab_lock();
    if !require_root() {
        return;
    }
    let (disk, pair) = pair_with_pausable_ha2("B");
    let resynced_before = resynced_bytes(&pair.ha2);
    disk.pause();
    let mut client = start_writing(&pair.ha1, &WRITTEN);
    // The paused disk completes nothing: an answer now came before the
    // write reached it.
    let answered = client.wait_timeout(ANSWER_TIMEOUT);
    disk.resume();
    assert!(
        answered.is_some_and(|status| status.success()),
        "protocol B answers while the peer's disk holds the write ({answered:?}):\n{}",
        client.log()
    );
    assert_still_connected(&pair);
    wait_for(
        "the data on ha2's disk once it resumes",
        || disk.holds(&WRITTEN, PATTERN),
        || pair.ha2.daemon().log(),
    );
    assert_mirrored_without_resync(&pair, resynced_before);
}

#[test]
fn protocol_c_answers_only_once_the_peer_disk_wrote_it() {
    let _lock = lab_lock();
    if !require_root() {
        return;
    }
    let (disk, pair) = pair_with_pausable_ha2("C");
    let resynced_before = resynced_bytes(&pair.ha2);
    disk.pause();
    let mut client = start_writing(&pair.ha1, &WRITTEN);
    let answered_early = client.wait_timeout(HELD);
    disk.resume();
    assert!(
        answered_early.is_none(),
        "protocol C must not answer while the peer's disk holds the write ({answered_early:?}):\n{}",
        client.log()
    );
    assert_answered(
        &mut client,
        ANSWER_TIMEOUT,
        "protocol C after the disk resumed",
    );
    assert!(disk.holds(&WRITTEN, PATTERN), "answered, so on ha2's disk");
    assert_still_connected(&pair);
    assert_mirrored_without_resync(&pair, resynced_before);
}

/// The first Write frame ha1 sent whose data is `data`, from the bytes of
/// the TCP stream: (header flags, digest algorithm code, digest bytes).
fn find_write(stream: &[u8], data: &[u8]) -> Option<(u16, u8, Vec<u8>)> {
    const HEADER: usize = 12;
    const FIXED: usize = 25;
    let mut at = 0;
    while let Some(found) = stream[at..]
        .windows(6)
        .position(|bytes| bytes == b"HAPR\x01\x20")
    {
        let start = at + found;
        at = start + 1;
        let Some(header) = stream.get(start..start + HEADER) else {
            break;
        };
        let flags = u16::from_be_bytes([header[6], header[7]]);
        let length = u32::from_be_bytes([header[8], header[9], header[10], header[11]]) as usize;
        let Some(payload) = stream.get(start + HEADER..start + HEADER + length) else {
            continue;
        };
        let algorithm = payload[FIXED - 1];
        let digest_length = match algorithm {
            0 => 0,
            1 => 4,
            _ => 32,
        };
        if payload.get(FIXED + digest_length..) == Some(data) {
            let digest = payload[FIXED..FIXED + digest_length].to_vec();
            return Some((flags, algorithm, digest));
        }
    }
    None
}

/// The SHA-256 of `data`, by `sha256sum`.
fn sha256_of(node: &ReplicadNode, data: &[u8]) -> Vec<u8> {
    let file = node.new_path("digested", "bin");
    std::fs::write(&file, data).expect("temporary file written");
    let output = std::process::Command::new("sha256sum")
        .arg(&file)
        .output()
        .expect("sha256sum runs");
    let hex = String::from_utf8_lossy(&output.stdout);
    let hex = hex
        .split_whitespace()
        .next()
        .expect("sha256sum prints a digest");
    decode_hex(hex)
}

fn decode_hex(hex: &str) -> Vec<u8> {
    let digits: Vec<u8> = hex
        .bytes()
        .filter(u8::is_ascii_hexdigit)
        .map(|digit| (digit as char).to_digit(16).expect("hex digit") as u8)
        .collect();
    digits
        .chunks(2)
        .map(|pair| pair[0] << 4 | pair[1])
        .collect()
}

#[test]
fn data_integrity_alg_sends_a_digest_with_every_write() {
    let _lock = lab_lock();
    if !require_root() {
        return;
    }
    let pair = synced_pair(&Extras {
        net: "data-integrity-alg: sha256,".into(),
        ..Extras::default()
    });
    // One block: its Write fits a segment or two.
    let digested = 6 << 20..(6 << 20) + 4096;
    let mut capture = Capture::start(pair.lab().host(2), "tcp port 7789");
    // tshark says it captures a little before it does.
    std::thread::sleep(CAPTURE_CATCH_UP);
    let mut client = start_writing(&pair.ha1, &digested);
    assert_answered(&mut client, ANSWER_TIMEOUT, "mirroring with a digest");
    wait_for(
        "the data on ha2",
        || {
            backing_bytes(&pair.ha2, &digested)
                .iter()
                .all(|&b| b == PATTERN)
        },
        || pair.ha2.daemon().log(),
    );
    // The capture hands packets over in blocks, up to a second late, and
    // drops the last block on SIGINT: let it catch up first.
    std::thread::sleep(CAPTURE_CATCH_UP);
    capture.stop();
    let stream: Vec<u8> = capture
        .fields("ip.src == 10.99.0.1 && tcp.len > 0", &["tcp.payload"])
        .iter()
        .filter_map(|packet| packet.get("tcp.payload"))
        .flat_map(|hex| decode_hex(hex))
        .collect();
    let data = vec![PATTERN; (digested.end - digested.start) as usize];
    let (flags, algorithm, digest) = find_write(&stream, &data)
        .unwrap_or_else(|| panic!("no Write of the pattern in {} bytes from ha1", stream.len()));
    // qemu-io writes through (FUA); ha1's disk is attached.
    assert_eq!(flags, 0x0001, "FUA, and not from a Diskless sender");
    assert_eq!(algorithm, 2, "the digest is sha256 (code 2)");
    assert_eq!(
        digest,
        sha256_of(&pair.ha1, &data),
        "the digest is the data's"
    );
}
