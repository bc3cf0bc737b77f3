//! End-to-end proofs on a replicad pair (ha1 on h1, ha2 on h2): protocol C
//! keeps both backing files byte-identical under a bulk copy and under
//! concurrent overlapping writers, and protocols A and B, which let
//! overlapping writes reach the peer together, too; a flushed write survives SIGKILL of the
//! Primary and the peer's promotion, and the crashed node comes back as
//! bitmap SyncTarget and converges (online verify finds nothing); hostile
//! bytes on the replication port are refused, logged, and change nothing.

use std::fs::File;
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::process::Command;
use std::thread;
use std::time::Duration;

use hapair_lab::{
    RESOURCE, ReplicadNode, lab_lock, path_arg, program, random_bytes, read_file_range,
    require_root, run_bounded, run_ok, wait_until,
};
use serde_json::Value;

use crate::replicad_pair_kit::{
    Extras, Pair, backing_bytes, fresh_pair, in_sync, qemu_io, resynced_bytes, synced_pair,
    wait_for, wait_for_status, write_pattern,
};

const MIB: u64 = 1 << 20;
/// How long a peer may take to apply what protocols A and B answered early.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(30);
/// How much the bounded shell commands of the hostile peer may take.
const HOSTILE_TIMEOUT: Duration = Duration::from_secs(20);

/// The volume size a node reports.
fn usable_size(node: &ReplicadNode) -> u64 {
    node.status()["size"].as_u64().expect("status has size")
}

/// The first offset below `len` where the two files differ, if any.
fn first_difference(left: &Path, right: &Path, len: u64) -> Option<u64> {
    const CHUNK: u64 = 4 * MIB;
    let open = |path: &Path| {
        File::open(path).unwrap_or_else(|error| panic!("cannot open {}: {error}", path.display()))
    };
    let (left, right) = (open(left), open(right));
    let mut left_chunk = vec![0; CHUNK as usize];
    let mut right_chunk = vec![0; CHUNK as usize];
    (0..len).step_by(CHUNK as usize).find_map(|offset| {
        let size = CHUNK.min(len - offset) as usize;
        left.read_exact_at(&mut left_chunk[..size], offset)
            .and_then(|()| right.read_exact_at(&mut right_chunk[..size], offset))
            .expect("both backing files cover the volume");
        left_chunk[..size]
            .iter()
            .zip(&right_chunk[..size])
            .position(|(a, b)| a != b)
            .map(|at| offset + at as u64)
    })
}

fn assert_backing_files_equal(ha1: &ReplicadNode, ha2: &ReplicadNode, len: u64) {
    if let Some(offset) = first_difference(ha1.backing_path(), ha2.backing_path(), len) {
        panic!("the backing files of ha1 and ha2 differ first at byte {offset} of {len}");
    }
}

/// qemu-io commands writing `pattern` in `chunk`-byte writes at
/// `start + k * stride` for k below `count`, then a flush.
fn strided_writes(pattern: u8, start: u64, stride: u64, chunk: u64, count: u64) -> Vec<String> {
    (0..count)
        .map(|k| format!("write -P {pattern:#x} {} {chunk}", start + k * stride))
        .chain(["flush".to_string()])
        .collect()
}

/// A fresh pair whose blank disks skip the initial sync, with ha1 Primary.
fn blank_primary_pair(extras: &Extras) -> Pair {
    let pair = fresh_pair(extras);
    for node in [&pair.ha1, &pair.ha2] {
        wait_for_status(node, "the connect", |s| {
            s["peer"]["connection"] == "Connected" && s["peer"]["replication"] == "Established"
        });
    }
    pair.ha1
        .haadm(&["new-current-uuid", "--clear-bitmap", RESOURCE])
        .expect_code(0);
    for node in [&pair.ha1, &pair.ha2] {
        wait_for_status(node, "both nodes UpToDate", in_sync);
    }
    pair.ha1.haadm(&["primary", RESOURCE]).expect_code(0);
    pair
}

/// Four qemu-io writers at once on ha1, each ending with a flush: writer i
/// writes `chunk` bytes of pattern 0x10 + i at `start + i * shift + k *
/// stride` for k below `count`.
fn concurrent_writers(pair: &Pair, start: u64, shift: u64, stride: u64, chunk: u64, count: u64) {
    thread::scope(|scope| {
        for writer in 0..4u8 {
            scope.spawn(move || {
                let commands = strided_writes(
                    0x10 + writer,
                    start + u64::from(writer) * shift,
                    stride,
                    chunk,
                    count,
                );
                qemu_io(&pair.ha1, &commands);
            });
        }
    });
}

#[test]
fn bulk_and_concurrent_overlapping_writes_leave_identical_backing_files() {
    let _lock = lab_lock();
    if !require_root() {
        return;
    }
    let pair = blank_primary_pair(&Extras {
        backing_size: Some(300 * MIB),
        ..Extras::default()
    });
    let usable = usable_size(&pair.ha1);

    let random = random_bytes((256 * MIB) as usize);
    let source = pair.ha1.new_path("random", "img");
    std::fs::write(&source, &random).expect("writing the random source file");
    run_ok(&[
        path_arg(&program("nbdcopy")),
        "--flush",
        path_arg(&source),
        &pair.ha1.nbd_uri(),
    ]);

    // Four writers at once, each flushing at the end: writer i writes
    // 256 KiB at 200 MiB + i * 64 KiB + k * 192 KiB, so every write
    // overlaps writes of the others.
    concurrent_writers(&pair, 200 * MIB, 64 * 1024, 192 * 1024, 256 * 1024, 64);

    assert_eq!(
        backing_bytes(&pair.ha1, &(0..200 * MIB)),
        random[..(200 * MIB) as usize],
        "the bulk copy reached ha1's disk"
    );
    assert!(
        backing_bytes(&pair.ha1, &(200 * MIB..200 * MIB + 4096))
            .iter()
            .all(|&byte| byte == 0x10),
        "the writers' data reached ha1's disk"
    );
    assert_backing_files_equal(&pair.ha1, &pair.ha2, usable);
    for node in [&pair.ha1, &pair.ha2] {
        let status = node.status();
        assert!(in_sync(&status), "{}: {status}", node.name());
        assert_eq!(resynced_bytes(node), 0, "mirroring alone, nothing resynced");
    }
}

/// Pattern A, flushed before the crash.
const REGION_A: Range<u64> = 0..16 * MIB;
/// Pattern B, being written 1 MiB at a time when ha1 is killed.
const REGION_B: Range<u64> = 24 * MIB..56 * MIB;
/// What ha2 writes once promoted.
const REGION_C: Range<u64> = 40 * MIB..42 * MIB;
const PATTERN_A: u8 = 0xaa;
const PATTERN_B: u8 = 0xbb;
const PATTERN_C: u8 = 0xcc;

fn holds(node: &ReplicadNode, range: &Range<u64>, pattern: u8) -> bool {
    backing_bytes(node, range)
        .iter()
        .all(|&byte| byte == pattern)
}

/// Under protocols A and B the Primary answers before the peer wrote, so
/// overlapping writes can be in flight to the peer together: the peer must
/// apply them in the order they were sent, or the replicas differ for good.
#[test]
fn overlapping_writes_in_flight_under_protocols_a_and_b_land_in_order_on_the_peer() {
    let _lock = lab_lock();
    if !require_root() {
        return;
    }
    const WINDOW: u64 = 2 * MIB;
    for protocol in ["A", "B"] {
        let pair = blank_primary_pair(&Extras {
            protocol,
            ..Extras::default()
        });
        // 64 KiB writes 12 KiB apart, the writers 4 KiB apart: each write
        // overlaps a dozen others, within the first 2 MiB.
        concurrent_writers(&pair, 0, 4096, 12 * 1024, 64 * 1024, 160);
        let settled = wait_until(SETTLE_TIMEOUT, Duration::from_millis(200), || {
            first_difference(pair.ha1.backing_path(), pair.ha2.backing_path(), WINDOW).is_none()
        });
        assert!(
            settled.is_some(),
            "protocol {protocol}: ha2's copy of the written window still differs from ha1's \
             at byte {:?} after {SETTLE_TIMEOUT:?}",
            first_difference(pair.ha1.backing_path(), pair.ha2.backing_path(), WINDOW)
        );
        assert!(
            backing_bytes(&pair.ha1, &(0..4096))
                .iter()
                .all(|&byte| byte == 0x10),
            "protocol {protocol}: the writers' data reached ha1's disk"
        );
    }
}

#[test]
fn a_killed_primary_loses_no_flushed_write_and_resyncs_from_the_promoted_peer() {
    let _lock = lab_lock();
    if !require_root() {
        return;
    }
    let mut pair = synced_pair(&Extras {
        net: "verify-alg: crc32c,".into(),
        ..Extras::default()
    });
    qemu_io(
        &pair.ha1,
        &[
            format!(
                "write -P {PATTERN_A:#x} {} {}",
                REGION_A.start,
                REGION_A.end - REGION_A.start
            ),
            "flush".into(),
        ],
    );
    let mut argv = vec![
        path_arg(&program("qemu-io")).to_string(),
        "-f".into(),
        "raw".into(),
        pair.ha1.nbd_uri(),
    ];
    for offset in REGION_B.clone().step_by(MIB as usize) {
        argv.extend([
            "-c".into(),
            format!("write -P {PATTERN_B:#x} {offset} {MIB}"),
            "-c".into(),
            "sleep 100".into(),
        ]);
    }
    let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
    let writer = pair.ha1.spawn(&argv, &[]);
    let fourth_chunk = REGION_B.start + 3 * MIB..REGION_B.start + 4 * MIB;
    wait_for(
        "four MiB of pattern B on ha1",
        || holds(&pair.ha1, &fourth_chunk, PATTERN_B),
        || writer.log(),
    );
    pair.ha1.crash();
    drop(writer);

    wait_for_status(&pair.ha2, "the loss of ha1", |s| {
        s["peer"]["connection"] != "Connected"
    });
    pair.ha2.haadm(&["primary", RESOURCE]).expect_code(0);
    qemu_io(
        &pair.ha2,
        &[format!(
            "read -P {PATTERN_A:#x} {} {}",
            REGION_A.start,
            REGION_A.end - REGION_A.start
        )],
    );
    write_pattern(&pair.ha2, &REGION_C, PATTERN_C);

    let usable = usable_size(&pair.ha2);
    let resynced_before = resynced_bytes(&pair.ha2);
    pair.ha1.start();
    pair.ha1.haadm(&["up", RESOURCE]).expect_code(0);
    for node in [&pair.ha1, &pair.ha2] {
        wait_for_status(node, "the resync after the crash", in_sync);
    }
    let log = pair.ha1.daemon().log();
    assert!(
        log.contains(
            "connected to ha2: SyncTarget: resyncing the blocks in the dirty bitmaps from the peer"
        ),
        "§12 rule 3: ha2's bitmap id is ha1's current, ha1 is bitmap target:\n{log}"
    );
    let copied = resynced_bytes(&pair.ha1);
    assert!(
        copied >= REGION_C.end - REGION_C.start && copied < usable,
        "ha1 took at least ha2's new writes and less than the volume: {copied} bytes"
    );
    assert_eq!(
        resynced_bytes(&pair.ha2) - resynced_before,
        copied,
        "ha2 sent what ha1 took"
    );
    let roles: Vec<Value> = [&pair.ha1, &pair.ha2]
        .iter()
        .map(|node| node.status()["role"].clone())
        .collect();
    assert_eq!(roles, ["Secondary", "Primary"]);
    assert!(holds(&pair.ha1, &REGION_A, PATTERN_A), "ha1 keeps A");
    assert!(holds(&pair.ha1, &REGION_C, PATTERN_C), "ha1 got ha2's C");
    assert_backing_files_equal(&pair.ha1, &pair.ha2, usable);

    pair.ha2.haadm(&["verify", RESOURCE]).expect_code(0);
    wait_for(
        "the online verify",
        || pair.ha2.daemon().log().contains("online verify finished"),
        || pair.ha2.daemon().log(),
    );
    let status = wait_for_status(&pair.ha2, "the end of the verify", in_sync);
    assert_eq!(
        status["peer"]["verify_out_of_sync"], 0,
        "verify finds nothing out of sync: {status}"
    );
}

/// Runs `script` with bash in the network namespace of `node`'s daemon.
fn bash_in_namespace_of(node: &ReplicadNode, script: &str) {
    let pid = node.daemon().pid().to_string();
    let mut command = Command::new("nsenter");
    command.args(["-t", &pid, "-n", "bash", "-c", script]);
    let finished = run_bounded(command, HOSTILE_TIMEOUT);
    assert!(
        finished.status.code().is_some(),
        "bash in {}'s namespace did not finish: {}",
        node.name(),
        finished.all_output()
    );
}

/// `\xNN` escapes of `bytes` for bash's printf.
fn printf_escapes(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("\\x{byte:02x}")).collect()
}

/// A Hello frame (no auth flag) from node `ha1` for resource `resource`.
fn hello_frame(resource: &str) -> Vec<u8> {
    let mut payload = vec![1, 1, 3];
    payload.extend_from_slice(b"ha1");
    payload.push(u8::try_from(resource.len()).expect("short name"));
    payload.extend_from_slice(resource.as_bytes());
    let mut frame = b"HAPR".to_vec();
    frame.extend_from_slice(&[1, 0x01, 0, 0]);
    frame.extend_from_slice(&u32::try_from(payload.len()).expect("short").to_be_bytes());
    frame.extend_from_slice(&payload);
    frame
}

#[test]
fn hostile_bytes_on_the_replication_port_are_refused_logged_and_change_nothing() {
    let _lock = lab_lock();
    if !require_root() {
        return;
    }
    let pair = synced_pair(&Extras::default());
    write_pattern(&pair.ha1, &(3 * MIB..5 * MIB), 0x5a);
    // ha2 accepts one peer session at a time: with ha1 disconnected its
    // listener takes the hostile connections.
    pair.ha1.haadm(&["disconnect", RESOURCE]).expect_code(0);
    wait_for_status(&pair.ha2, "the loss of ha1", |s| {
        s["peer"]["connection"] == "Connecting"
    });
    let usable = usable_size(&pair.ha2);
    let before = backing_bytes(&pair.ha2, &(0..usable));

    // Each case first reads ha2's greeting (Hello and AuthChallenge: 21
    // and 44 bytes), so that closing the connection sends a FIN rather
    // than a reset that could discard the bytes before ha2 reads them.
    let connect = "exec 3<>/dev/tcp/10.99.0.2/7789; timeout 5 head -c 65 <&3 > /dev/null";
    let foreign_hello = printf_escapes(&hello_frame("r9"));
    let truncated = printf_escapes(&hello_frame(RESOURCE)[..15]);
    let cases = [
        (
            format!("{connect}; head -c 100000 /dev/urandom >&3"),
            "not a hapair replication frame",
        ),
        (
            format!("{connect}; printf '{foreign_hello}' >&3; timeout 5 cat <&3 > /dev/null"),
            "replicates resource r9, not r0",
        ),
        (
            format!("{connect}; printf '{truncated}' >&3"),
            "the connection ended inside a frame",
        ),
    ];
    for (script, refusal) in cases {
        bash_in_namespace_of(&pair.ha1, &script);
        wait_for(
            &format!("ha2 logging {refusal:?}"),
            || pair.ha2.daemon().log().contains(refusal),
            || pair.ha2.daemon().log(),
        );
    }

    let status = pair.ha2.status();
    assert_eq!(status["disk"], "UpToDate", "{status}");
    assert_eq!(status["peer"]["connection"], "Connecting", "{status}");
    assert!(
        backing_bytes(&pair.ha2, &(0..usable)) == before,
        "ha2's data is unchanged"
    );
    assert!(
        read_file_range(pair.ha2.backing_path(), 3 * MIB, 4096)
            .expect("readable")
            .iter()
            .all(|&byte| byte == 0x5a),
        "the data compared holds ha1's mirrored write"
    );
    // ha2 still serves its real peer.
    pair.ha1.haadm(&["connect", RESOURCE]).expect_code(0);
    for node in [&pair.ha1, &pair.ha2] {
        wait_for_status(node, "the reconnect", in_sync);
    }
}
