//! `on-io-error detach` with a peer (issue 4 §6): the Primary's disk
//! starts failing while one NBD client is connected and working; the
//! Primary becomes Diskless and keeps serving through the peer, so the
//! client sees no error, and what it writes afterwards is on the peer and
//! reads back. The peer stays UpToDate and records what the Diskless node
//! misses: once the disk works again, down and up on the old Primary
//! resync only those blocks from the peer.
//!
//! The same with the Secondary's disk failing under mirrored writes: it
//! detaches too, and the Primary keeps serving and records what it misses.
//! A Secondary whose disk hangs instead (it answers pings, but its writes
//! never end) is cut off after `ko-count` × `timeout`, so that the
//! Primary's writes go on.
//!
//! The failing disk is the one of `replicad_disk_errors` (nbdkit's error
//! and pause filters behind nbdfuse); both nodes keep their metadata
//! external.

use std::ops::{Range, RangeInclusive};
use std::path::Path;
use std::time::{Duration, Instant};

use hapair_lab::{
    Proc, RESOURCE, ReplicadNode, lab_lock, path_arg, program, read_file_range, require_root,
};

use crate::replicad_disk_errors::FailingDisk;
use crate::replicad_pair_kit::{
    Extras, Pair, backing_bytes, handler_calls, in_sync, qemu_io, resynced_bytes, synced_pair,
    wait_for, wait_for_status, write_pattern,
};

const MIB: u64 = 1 << 20;
/// An activity-log extent.
const EXTENT: u64 = 4 * MIB;
/// Written while the disk works.
const BEFORE: Range<u64> = 0..MIB;
/// Written while the disk fails: a plain write, then one with FUA.
const AFTER: Range<u64> = 8 * MIB..9 * MIB;
const AFTER_FUA: Range<u64> = 16 * MIB..16 * MIB + 64 * 1024;
/// How long the client pauses between its two halves; the disk is made
/// to fail inside the pause.
const PAUSE_MS: u64 = 10_000;

fn filled(range: &Range<u64>, byte: u8) -> Vec<u8> {
    vec![byte; (range.end - range.start) as usize]
}

/// Whether `disk` holds `byte` all over `range`.
fn holds(disk: &Path, range: &Range<u64>, byte: u8) -> bool {
    read_file_range(disk, range.start, (range.end - range.start) as usize)
        .is_ok_and(|bytes| bytes == filled(range, byte))
}

/// One qemu-io session on `node`'s export running `commands` in the
/// background: nothing flushes between them (qemu-io flushes when it ends).
fn spawn_qemu_io(node: &ReplicadNode, commands: Vec<String>) -> Proc {
    let qemu_io = program("qemu-io");
    let mut argv: Vec<String> = vec![
        path_arg(&qemu_io).into(),
        "-f".into(),
        "raw".into(),
        node.nbd_uri(),
    ];
    for command in commands {
        argv.extend(["-c".to_string(), command]);
    }
    let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
    node.spawn(&argv, &[("QEMU_IO_OPTIONS", "")])
}

/// ha2, whose disk is `ha2_disk`, missed the writes to AFTER and
/// AFTER_FUA and connects again: waits until both nodes are in sync, then
/// checks that the resync copied just what ha2 missed (ha1 had resynced
/// `resynced_before` bytes before) and that ha2's disk holds all three
/// patterns.
fn assert_ha2_caught_up(pair: &Pair, ha2_disk: &Path, resynced_before: u64) {
    wait_for_status(&pair.ha2, "the resync of what ha2 missed", in_sync);
    wait_for_status(&pair.ha1, "the resync of what ha2 missed", in_sync);
    let crossed = resynced_bytes(&pair.ha1) - resynced_before;
    let dirtied = (AFTER.end - AFTER.start) + (AFTER_FUA.end - AFTER_FUA.start);
    assert!(
        crossed >= dirtied && crossed <= dirtied + MIB,
        "a bitmap resync of what ha2 missed ({dirtied} bytes), not a full one: {crossed} bytes crossed"
    );
    for (range, byte) in [(&BEFORE, 0xa1), (&AFTER, 0xb2), (&AFTER_FUA, 0xc3)] {
        assert!(
            holds(ha2_disk, range, byte),
            "ha2's disk holds {byte:#x} at {range:?}"
        );
    }
}

/// ha2, Diskless and its disk `ha2_disk` working again, is taken down and
/// brought up: it attaches and catches up ([`assert_ha2_caught_up`]).
fn reattach_ha2(pair: &Pair, ha2_disk: &Path) {
    let before_resync = resynced_bytes(&pair.ha1);
    pair.ha2.haadm(&["down", RESOURCE]).expect_code(0);
    pair.ha2.haadm(&["up", RESOURCE]).expect_code(0);
    assert_ha2_caught_up(pair, ha2_disk, before_resync);
}

#[test]
fn detach_serves_through_the_peer_and_reattach_resyncs() {
    let _lock = lab_lock();
    if !require_root() {
        return;
    }
    let disk = FailingDisk::start();
    let pair = synced_pair(&Extras {
        ha1_disk: Some(disk.disk.file()),
        recorded_handlers: vec!["local-io-error"],
        ..Extras::default()
    });

    // One client session across the failure: write and read back, pause
    // (the disk fails meanwhile), then write, read back, read what was
    // written before, flush, and a FUA write.
    let mut client = spawn_qemu_io(
        &pair.ha1,
        vec![
            format!(
                "write -P 0xa1 {} {}",
                BEFORE.start,
                BEFORE.end - BEFORE.start
            ),
            format!(
                "read -P 0xa1 {} {}",
                BEFORE.start,
                BEFORE.end - BEFORE.start
            ),
            format!("sleep {PAUSE_MS}"),
            format!("write -P 0xb2 {} {}", AFTER.start, AFTER.end - AFTER.start),
            format!("read -P 0xb2 {} {}", AFTER.start, AFTER.end - AFTER.start),
            format!(
                "read -P 0xa1 {} {}",
                BEFORE.start,
                BEFORE.end - BEFORE.start
            ),
            "flush".to_string(),
            format!(
                "write -f -P 0xc3 {} {}",
                AFTER_FUA.start,
                AFTER_FUA.end - AFTER_FUA.start
            ),
            format!(
                "read -P 0xc3 {} {}",
                AFTER_FUA.start,
                AFTER_FUA.end - AFTER_FUA.start
            ),
        ],
    );
    // The first half is done once the peer has the first write.
    wait_for(
        "the client's first write reaching the peer",
        || backing_bytes(&pair.ha2, &BEFORE) == filled(&BEFORE, 0xa1),
        || client.log(),
    );
    disk.evict_cache();
    disk.fail();

    let finished = client.wait_timeout(Duration::from_millis(PAUSE_MS) + Duration::from_secs(60));
    let output = client.log();
    assert!(
        finished.is_some_and(|status| status.success())
            && !output.contains("fail")
            && !output.contains("error"),
        "the client sees no error across the failure ({finished:?}):\n{output}\n{}",
        pair.ha1.daemon().log()
    );
    assert!(
        disk.disk.server_log().contains("injecting EIO error"),
        "the disk really failed: {}",
        disk.disk.server_log()
    );

    // ha1 is Diskless, ha2 UpToDate and has what was written after.
    let ha1 = pair.ha1.status();
    assert_eq!(ha1["disk"], "Diskless", "{ha1}");
    assert_eq!(ha1["role"], "Primary", "{ha1}");
    assert_eq!(ha1["peer"]["connection"], "Connected", "{ha1}");
    assert_eq!(ha1["peer"]["disk"], "UpToDate", "{ha1}");
    let ha2 = pair.ha2.status();
    assert_eq!(ha2["disk"], "UpToDate", "{ha2}");
    assert_eq!(ha2["peer"]["disk"], "Diskless", "{ha2}");
    for (range, byte) in [(&AFTER, 0xb2), (&AFTER_FUA, 0xc3), (&BEFORE, 0xa1)] {
        assert!(
            backing_bytes(&pair.ha2, range) == filled(range, byte),
            "ha2 holds {byte:#x} at {range:?}"
        );
    }
    let log = pair.ha1.daemon().log();
    assert!(log.contains("detached (on-io-error detach)"), "{log}");
    wait_for(
        "the local-io-error handler on ha1",
        || !handler_calls(&pair.ha1, "local-io-error").is_empty(),
        || pair.ha1.daemon().log(),
    );
    let call = &handler_calls(&pair.ha1, "local-io-error")[0];
    assert!(
        call.contains(&format!("DRBD_RESOURCE={RESOURCE}\n")),
        "{call}"
    );

    // The disk works again: down and up attach it, and only the blocks
    // written while Diskless come over from ha2.
    disk.heal();
    let dirtied = (AFTER.end - AFTER.start) + (AFTER_FUA.end - AFTER_FUA.start);
    reattach_ha1(&pair, &disk.disk.file(), dirtied..=dirtied + MIB);
    for (range, byte) in [(&AFTER, 0xb2), (&AFTER_FUA, 0xc3), (&BEFORE, 0xa1)] {
        assert!(
            holds(&disk.disk.file(), range, byte),
            "ha1's re-attached disk holds {byte:#x} at {range:?}"
        );
    }
}

/// ha1, Diskless and Primary, is demoted, taken down and brought up again
/// on its working disk `ha1_disk`: waits until both are in sync and checks
/// that the bytes ha2 resynced lie within `expected` (what ha1 missed, not
/// a full sync).
fn reattach_ha1(pair: &Pair, ha1_disk: &Path, expected: RangeInclusive<u64>) {
    pair.ha1.haadm(&["secondary", RESOURCE]).expect_code(0);
    pair.ha1.haadm(&["down", RESOURCE]).expect_code(0);
    let before_resync = resynced_bytes(&pair.ha2);
    pair.ha1.haadm(&["up", RESOURCE]).expect_code(0);
    wait_for_status(&pair.ha1, "the resync after the re-attach", in_sync);
    wait_for_status(&pair.ha2, "the resync after the re-attach", in_sync);
    let crossed = resynced_bytes(&pair.ha2) - before_resync;
    assert!(
        expected.contains(&crossed),
        "a resync of what ha1 missed ({expected:?} bytes), not a full one: {crossed} bytes crossed \
         to {}",
        ha1_disk.display()
    );
}

/// With `disk-timeout`, a Primary whose disk hangs (no error, no answer)
/// gives it up after the timeout as if it had failed: Diskless, serving
/// through the peer, so the client's write completes after a pause of
/// about the timeout, and reads come from the peer. The hanging disk holds
/// the metadata too, and the write starts a new activity-log extent: that
/// metadata write hangs under the metadata's lock, which status and the
/// peer link need, so it must give up as well.
#[test]
fn a_primary_whose_disk_hangs_detaches_after_disk_timeout() {
    let _lock = lab_lock();
    if !require_root() {
        return;
    }
    const DISK_SIZE: u64 = 64 * MIB;
    let disk = FailingDisk::with_size(DISK_SIZE);
    let pair = synced_pair(&Extras {
        disk: "disk-timeout: 20,".into(),
        ha1_disk: Some(disk.disk.file()),
        internal_meta: true,
        backing_size: Some(DISK_SIZE),
        recorded_handlers: vec!["local-io-error"],
        ..Extras::default()
    });
    let _resumed = disk.resumed_on_drop();
    write_pattern(&pair.ha1, &BEFORE, 0xa1);
    assert!(
        holds(&disk.disk.file(), &BEFORE, 0xa1),
        "written while the disk answers"
    );

    disk.evict_cache();
    disk.pause();
    let started = Instant::now();
    write_pattern(&pair.ha1, &AFTER, 0xb2);
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(1500) && waited < Duration::from_secs(20),
        "the write waited for the hanging disk about disk-timeout (2 s), not {waited:?}"
    );
    let ha1 = pair.ha1.status();
    assert_eq!(ha1["disk"], "Diskless", "{ha1}");
    assert_eq!(ha1["role"], "Primary", "{ha1}");
    assert_eq!(ha1["peer"]["disk"], "UpToDate", "{ha1}");
    assert!(
        ha1["disk_error"]
            .as_str()
            .is_some_and(|error| error.contains("within disk-timeout (2.0 s)")),
        "status says why: {ha1}"
    );
    let check = pair.ha1.haadm(&["check"]);
    assert_eq!(check.code(), Some(2), "CRITICAL: {}", check.stdout);
    assert!(
        check.stdout.contains("r0: Diskless: ") && check.stdout.contains("disk-timeout"),
        "{}",
        check.stdout
    );
    let ha2 = pair.ha2.status();
    assert_eq!(ha2["disk"], "UpToDate", "{ha2}");
    assert_eq!(ha2["peer"]["disk"], "Diskless", "{ha2}");
    assert!(
        backing_bytes(&pair.ha2, &AFTER) == filled(&AFTER, 0xb2),
        "ha2 has the write"
    );
    // Reads, a flush and a FUA write go through the peer, without waiting
    // for the disk again.
    let started = Instant::now();
    qemu_io(
        &pair.ha1,
        &[
            format!(
                "read -P 0xa1 {} {}",
                BEFORE.start,
                BEFORE.end - BEFORE.start
            ),
            format!("read -P 0xb2 {} {}", AFTER.start, AFTER.end - AFTER.start),
            "flush".to_string(),
            format!(
                "write -f -P 0xc3 {} {}",
                AFTER_FUA.start,
                AFTER_FUA.end - AFTER_FUA.start
            ),
        ],
    );
    assert!(
        started.elapsed() < Duration::from_millis(1500),
        "a Diskless node does not wait for its disk: {:?}",
        started.elapsed()
    );
    let log = pair.ha1.daemon().log();
    assert!(
        log.contains("within disk-timeout (2.0 s)")
            && log.contains("detached (on-io-error detach)"),
        "{log}"
    );
    wait_for(
        "the local-io-error handler on ha1",
        || !handler_calls(&pair.ha1, "local-io-error").is_empty(),
        || pair.ha1.daemon().log(),
    );

    // The disk answers again; the requests that waited on it end, on a
    // disk no longer used. Its metadata could not be closed (the failed
    // write), so the re-attach recovers as after a crash: the two hot
    // extents (of BEFORE and AFTER) come over whole, besides AFTER_FUA;
    // still not the 64 MiB of a full sync.
    disk.resume();
    let dirtied = (AFTER.end - AFTER.start) + (AFTER_FUA.end - AFTER_FUA.start);
    reattach_ha1(&pair, &disk.disk.file(), dirtied..=2 * EXTENT + dirtied);
    for (range, byte) in [(&AFTER, 0xb2), (&AFTER_FUA, 0xc3), (&BEFORE, 0xa1)] {
        assert!(
            holds(&disk.disk.file(), range, byte),
            "ha1's re-attached disk holds {byte:#x} at {range:?}"
        );
    }
}

/// The Secondary's disk fails under mirrored writes: with `on-io-error
/// detach` it becomes Diskless, so that no one takes its copy for UpToDate
/// any more, and the Primary goes on serving, recording what the peer
/// misses. Once the disk works again, down and up on the Secondary resync
/// just that.
#[test]
fn a_secondary_whose_disk_fails_detaches_and_the_primary_keeps_serving() {
    let _lock = lab_lock();
    if !require_root() {
        return;
    }
    let disk = FailingDisk::start();
    let pair = synced_pair(&Extras {
        ha2_disk: Some(disk.disk.file()),
        recorded_handlers: vec!["local-io-error"],
        ..Extras::default()
    });
    let ha2_holds = |range: &Range<u64>, byte: u8| holds(&disk.disk.file(), range, byte);
    write_pattern(&pair.ha1, &BEFORE, 0xa1);
    assert!(
        ha2_holds(&BEFORE, 0xa1),
        "the mirrored write reached ha2's disk"
    );

    disk.fail();
    write_pattern(&pair.ha1, &AFTER, 0xb2);
    assert!(disk.has_failed_requests(), "the disk really failed");
    let ha2 = wait_for_status(&pair.ha2, "ha2 Diskless", |status| {
        status["disk"] == "Diskless"
    });
    assert_eq!(ha2["role"], "Secondary", "{ha2}");
    let ha1 = wait_for_status(&pair.ha1, "ha1 seeing its peer Diskless", |status| {
        status["peer"]["disk"] == "Diskless"
    });
    assert_eq!(ha1["disk"], "UpToDate", "{ha1}");
    assert_eq!(ha1["role"], "Primary", "{ha1}");
    assert!(
        pair.ha2
            .daemon()
            .log()
            .contains("detached (on-io-error detach)"),
        "{}",
        pair.ha2.daemon().log()
    );
    wait_for(
        "the local-io-error handler on ha2",
        || !handler_calls(&pair.ha2, "local-io-error").is_empty(),
        || pair.ha2.daemon().log(),
    );
    // A Diskless Secondary is no copy to fail over to.
    let refused = pair.ha2.haadm(&["primary", RESOURCE, "--force"]);
    assert!(
        refused.code() != Some(0) && refused.all_output().contains("Diskless"),
        "{}",
        refused.all_output()
    );
    // ha1 still serves, durably too, the write made while the peer was
    // failing included.
    qemu_io(
        &pair.ha1,
        &[format!(
            "write -f -P 0xc3 {} {}",
            AFTER_FUA.start,
            AFTER_FUA.end - AFTER_FUA.start
        )],
    );
    for (range, byte) in [(&BEFORE, 0xa1), (&AFTER, 0xb2), (&AFTER_FUA, 0xc3)] {
        assert!(
            pair.ha1.read_export(range.clone()) == filled(range, byte),
            "ha1 serves {byte:#x} at {range:?}"
        );
    }

    disk.heal();
    reattach_ha2(&pair, &disk.disk.file());
}

/// `ko-count` (issue 4, DRBD's meaning): ha2's disk hangs under a mirrored
/// write while ha2 itself answers pings. Without ko-count the client's write
/// would wait for ever; with `ko-count: 4` and `timeout: 5` (0.5 s), ha1
/// cuts ha2 off after 2 s, the write completes, ha1 goes on alone
/// (StandAlone, saying why) and records what ha2 misses. Once the disk
/// answers again, `haadm connect` resyncs just that.
#[test]
fn a_secondary_whose_disk_hangs_is_cut_off_after_ko_count() {
    let _lock = lab_lock();
    if !require_root() {
        return;
    }
    let disk = FailingDisk::start();
    let pair = synced_pair(&Extras {
        net: "timeout: 5, ko-count: 4,".into(),
        ha2_disk: Some(disk.disk.file()),
        ..Extras::default()
    });
    let _resumed = disk.resumed_on_drop();
    let ha2_holds = |range: &Range<u64>, byte: u8| holds(&disk.disk.file(), range, byte);
    write_pattern(&pair.ha1, &BEFORE, 0xa1);
    assert!(ha2_holds(&BEFORE, 0xa1), "the mirrored write reached ha2");

    disk.pause();
    let started = Instant::now();
    write_pattern(&pair.ha1, &AFTER, 0xb2);
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_secs(2) && waited < Duration::from_secs(20),
        "the write waited for the hanging peer about ko-count × timeout (2 s), not {waited:?}"
    );
    let ha1 = pair.ha1.status();
    assert_eq!(ha1["peer"]["connection"], "StandAlone", "{ha1}");
    assert_eq!(ha1["disk"], "UpToDate", "{ha1}");
    assert!(
        ha1["peer"]["reason"]
            .as_str()
            .is_some_and(|reason| reason.contains("ko-count 4")),
        "ha1 says why it cut ha2 off: {ha1}"
    );
    // Cut off, ha2 holds up nothing: the next write is not waited for.
    let started = Instant::now();
    qemu_io(
        &pair.ha1,
        &[format!(
            "write -f -P 0xc3 {} {}",
            AFTER_FUA.start,
            AFTER_FUA.end - AFTER_FUA.start
        )],
    );
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "a write after the cut waited {:?}",
        started.elapsed()
    );
    assert!(
        ha1["out_of_sync"].as_u64().unwrap_or(0) >= AFTER.end - AFTER.start,
        "ha1 records the write ha2 missed: {ha1}"
    );

    disk.resume();
    let before_resync = resynced_bytes(&pair.ha1);
    pair.ha1.haadm(&["connect", RESOURCE]).expect_code(0);
    assert_ha2_caught_up(&pair, &disk.disk.file(), before_resync);
}

/// With `disk-timeout`, a Secondary whose disk hangs gives it up itself
/// after the timeout (Diskless), instead of being cut off by the Primary
/// after `ko-count` × `timeout`: the Primary's write completes after about
/// the timeout, the link stays up, and the Primary records what the peer
/// misses.
#[test]
fn a_secondary_whose_disk_hangs_detaches_after_disk_timeout() {
    let _lock = lab_lock();
    if !require_root() {
        return;
    }
    const DISK_SIZE: u64 = 64 * MIB;
    let disk = FailingDisk::with_size(DISK_SIZE);
    let pair = synced_pair(&Extras {
        disk: "disk-timeout: 20,".into(),
        ha2_disk: Some(disk.disk.file()),
        internal_meta: true,
        backing_size: Some(DISK_SIZE),
        ..Extras::default()
    });
    let _resumed = disk.resumed_on_drop();
    write_pattern(&pair.ha1, &BEFORE, 0xa1);

    disk.evict_cache();
    disk.pause();
    let started = Instant::now();
    write_pattern(&pair.ha1, &AFTER, 0xb2);
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(1500) && waited < Duration::from_secs(20),
        "the write waited for the peer's hanging disk about disk-timeout (2 s), not {waited:?}"
    );
    let ha1 = pair.ha1.status();
    assert_eq!(ha1["disk"], "UpToDate", "{ha1}");
    assert_eq!(ha1["peer"]["connection"], "Connected", "{ha1}");
    assert_eq!(ha1["peer"]["disk"], "Diskless", "{ha1}");
    assert!(
        ha1["out_of_sync"].as_u64().unwrap_or(0) >= AFTER.end - AFTER.start,
        "ha1 records the write ha2 missed: {ha1}"
    );
    assert_eq!(pair.ha2.status()["disk"], "Diskless");
    // Detached, ha2 leaves its disk alone: a flush (a barrier to ha2) and
    // a FUA write do not wait for it.
    let started = Instant::now();
    qemu_io(
        &pair.ha1,
        &[
            "flush".to_string(),
            format!(
                "write -f -P 0xc3 {} {}",
                AFTER_FUA.start,
                AFTER_FUA.end - AFTER_FUA.start
            ),
            "flush".to_string(),
        ],
    );
    assert!(
        started.elapsed() < Duration::from_millis(1500),
        "ha2's hanging disk held up ha1's flush: {:?}",
        started.elapsed()
    );

    disk.resume();
    reattach_ha2(&pair, &disk.disk.file());
}

/// A Secondary whose disk stalls for a while, shorter than `ko-count` ×
/// `timeout`, is waited for, not dropped: while its disk holds a mirrored
/// write and a barrier (a FLUSH from another client) waits behind it, it
/// still answers the Primary's pings, so the link stays up and nothing
/// needs a resync afterwards. (A receive loop that waited for the disk
/// before reading the next message left the pings unread, and the
/// Primary dropped the link after `timeout` + `ping-timeout`.)
#[test]
fn a_secondary_whose_disk_stalls_keeps_its_link() {
    let _lock = lab_lock();
    if !require_root() {
        return;
    }
    const STALL: Duration = Duration::from_secs(5);
    let disk = FailingDisk::start();
    let pair = synced_pair(&Extras {
        ha2_disk: Some(disk.disk.file()),
        ..Extras::default()
    });
    let _resumed = disk.resumed_on_drop();
    write_pattern(&pair.ha1, &BEFORE, 0xa1);
    let resynced_before = resynced_bytes(&pair.ha1);
    let losses = |node: &ReplicadNode| node.daemon().log().matches(" lost: ").count();
    let (ha1_losses, ha2_losses) = (losses(&pair.ha1), losses(&pair.ha2));

    disk.pause();
    let started = Instant::now();
    std::thread::scope(|scope| {
        let writer = scope.spawn(|| write_pattern(&pair.ha1, &AFTER, 0xb2));
        let flusher = scope.spawn(|| {
            std::thread::sleep(Duration::from_millis(300));
            qemu_io(&pair.ha1, &["flush".to_string()]);
        });
        std::thread::sleep(STALL);
        disk.resume();
        writer.join().expect("the write ends");
        flusher.join().expect("the flush ends");
    });
    let waited = started.elapsed();
    assert!(
        waited >= STALL - Duration::from_millis(500),
        "the write waited for the stalled disk: {waited:?}"
    );
    let ha1 = pair.ha1.status();
    assert!(in_sync(&ha1), "the link stayed up and in sync: {ha1}");
    assert_eq!(
        (losses(&pair.ha1), losses(&pair.ha2)),
        (ha1_losses, ha2_losses),
        "no connection was lost:\n{}\n{}",
        pair.ha1.daemon().log(),
        pair.ha2.daemon().log()
    );
    assert_eq!(
        resynced_bytes(&pair.ha1),
        resynced_before,
        "nothing resynced"
    );
    assert!(holds(&disk.disk.file(), &AFTER, 0xb2), "ha2 has the write");
}

/// A Secondary that detaches its disk confirms nothing more durable: what
/// it acknowledged since its last BarrierAck may sit in its page cache
/// and never reach the failed disk. The Primary marks those writes out of
/// sync too (not only the ones the peer failed), so re-attaching resyncs
/// them.
#[test]
fn a_secondary_that_detaches_leaves_its_unconfirmed_writes_out_of_sync() {
    let _lock = lab_lock();
    if !require_root() {
        return;
    }
    /// Written and acknowledged before the disk fails, in an epoch no
    /// barrier closed.
    const UNCONFIRMED: Range<u64> = 24 * MIB..25 * MIB;
    let disk = FailingDisk::start();
    let pair = synced_pair(&Extras {
        ha2_disk: Some(disk.disk.file()),
        ..Extras::default()
    });
    // One client session: no flush (qemu-io flushes when it ends) between
    // the write before the failure and the one after.
    let mut client = spawn_qemu_io(
        &pair.ha1,
        vec![
            format!(
                "write -P 0xd4 {} {}",
                UNCONFIRMED.start,
                UNCONFIRMED.end - UNCONFIRMED.start
            ),
            format!("sleep {PAUSE_MS}"),
            format!("write -P 0xb2 {} {}", AFTER.start, AFTER.end - AFTER.start),
        ],
    );
    wait_for(
        "the client's first write reaching ha2",
        || holds(&disk.disk.file(), &UNCONFIRMED, 0xd4),
        || client.log(),
    );
    assert_eq!(pair.ha1.status()["out_of_sync"], 0, "all mirrored so far");
    disk.fail();
    let finished = client.wait_timeout(Duration::from_millis(PAUSE_MS) + Duration::from_secs(60));
    assert!(
        finished.is_some_and(|status| status.success()),
        "the client sees no error: {}",
        client.log()
    );
    let ha1 = wait_for_status(&pair.ha1, "ha1 seeing its peer Diskless", |status| {
        status["peer"]["disk"] == "Diskless"
    });
    let unconfirmed_and_failed = (UNCONFIRMED.end - UNCONFIRMED.start) + (AFTER.end - AFTER.start);
    assert!(
        ha1["out_of_sync"].as_u64().unwrap_or(0) >= unconfirmed_and_failed,
        "ha1 marks the unconfirmed write as well as the failed one ({unconfirmed_and_failed} \
         bytes): {ha1}\n{}",
        pair.ha1.daemon().log()
    );

    disk.heal();
    pair.ha2.haadm(&["down", RESOURCE]).expect_code(0);
    pair.ha2.haadm(&["up", RESOURCE]).expect_code(0);
    wait_for_status(&pair.ha2, "the resync of what ha2 missed", in_sync);
    wait_for_status(&pair.ha1, "the resync of what ha2 missed", in_sync);
    for (range, byte) in [(&UNCONFIRMED, 0xd4), (&AFTER, 0xb2)] {
        assert!(
            holds(&disk.disk.file(), range, byte),
            "ha2's disk holds {byte:#x} at {range:?}"
        );
    }
}
