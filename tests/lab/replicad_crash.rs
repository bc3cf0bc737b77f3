//! replicad killed (SIGKILL) while a real NBD client writes: what a FLUSH
//! made durable must survive, the volume must come back UpToDate, and the
//! metadata must show the crash and cover every region that was being
//! written (activity log hot, bitmap dirty) so that a resync would fix it.

use std::ops::Range;
use std::process::Command;
use std::time::Duration;

use hapair_lab::{
    MetadataDump, RESOURCE, ReplicadNode, lab_lock, path_arg, program, read_file_range,
    require_root, run_bounded, wait_until,
};

const BACKING_SIZE: u64 = 128 << 20;
const MIB: u64 = 1 << 20;
/// Written with pattern A and flushed before the crash.
const REGION_A: Range<u64> = 0..32 * MIB;
/// Being written with pattern B, 1 MiB at a time, when replicad is killed.
const REGION_B: Range<u64> = 64 * MIB..120 * MIB;
const PATTERN_A: u8 = 0xaa;
const PATTERN_B: u8 = 0xbb;
/// replicad is killed once this many MiB of B reached the backing file.
const B_WRITTEN_BEFORE_KILL: u64 = 6;
const TIMEOUT: Duration = Duration::from_secs(30);

/// qemu-io `-c` arguments that write `pattern` over `region` 1 MiB at a
/// time, pausing `pause_ms` between writes (0: none).
fn write_commands(region: &Range<u64>, pattern: u8, pause_ms: u32) -> Vec<String> {
    let mut commands = Vec::new();
    for offset in region.clone().step_by(MIB as usize) {
        commands.push(format!("write -P {pattern:#x} {offset} {MIB}"));
        if pause_ms > 0 {
            commands.push(format!("sleep {pause_ms}"));
        }
    }
    commands
}

fn qemu_io_argv(node: &ReplicadNode, commands: &[String]) -> Vec<String> {
    let mut argv = vec![
        path_arg(&program("qemu-io")).to_owned(),
        "-f".into(),
        "raw".into(),
        node.nbd_uri(),
    ];
    for command in commands {
        argv.push("-c".into());
        argv.push(command.clone());
    }
    argv
}

/// Runs qemu-io with `commands` to completion; panics unless every command
/// succeeded.
fn qemu_io(node: &ReplicadNode, commands: &[String]) {
    let argv = qemu_io_argv(node, commands);
    let mut command = Command::new(&argv[0]);
    command.args(&argv[1..]);
    let finished = run_bounded(command, TIMEOUT);
    let output = finished.all_output();
    assert!(
        finished.code() == Some(0) && !output.contains("failed"),
        "qemu-io {commands:?} failed ({}): {output}",
        finished.status
    );
}

/// The 1 MiB chunks of `region` whose first 4 KiB on the backing file
/// hold `pattern`.
fn chunks_holding(node: &ReplicadNode, region: &Range<u64>, pattern: u8) -> Vec<Range<u64>> {
    region
        .clone()
        .step_by(MIB as usize)
        .filter(|&offset| {
            read_file_range(node.backing_path(), offset, 4096)
                .is_ok_and(|block| block.iter().all(|&byte| byte == pattern))
        })
        .map(|offset| offset..offset + MIB)
        .collect()
}

fn assert_covers(dump: &MetadataDump, written: &[Range<u64>], when: &str) {
    for chunk in written {
        assert!(
            dump.hot_covers(chunk),
            "{when}: the activity log should hold {chunk:?} hot:\n{}",
            dump.text
        );
    }
}

#[test]
fn a_crash_during_writes_keeps_flushed_data_and_marks_the_writes() {
    let _lock = lab_lock();
    if !require_root() {
        return;
    }
    let mut node = ReplicadNode::primary(BACKING_SIZE);

    // A, then a FLUSH answered: A is durable from here on.
    let mut commands = write_commands(&REGION_A, PATTERN_A, 0);
    commands.push("flush".into());
    qemu_io(&node, &commands);

    // B as a paced load, killed mid-way.
    let argv = qemu_io_argv(&node, &write_commands(&REGION_B, PATTERN_B, 10));
    let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
    let mut load = node.spawn(&argv, &[]);
    let kill_after = REGION_B.start + (B_WRITTEN_BEFORE_KILL - 1) * MIB;
    wait_until(TIMEOUT, Duration::from_millis(2), || {
        read_file_range(node.backing_path(), kill_after, 4096)
            .is_ok_and(|block| block.iter().all(|&byte| byte == PATTERN_B))
    })
    .unwrap_or_else(|| {
        panic!(
            "B did not reach {kill_after} within {TIMEOUT:?}: {}",
            load.log()
        )
    });
    assert!(
        load.is_running(),
        "the load should still be running when replicad is killed: {}",
        load.log()
    );
    node.crash();
    let written = chunks_holding(&node, &REGION_B, PATTERN_B);
    assert!(
        written.len() as u64 >= B_WRITTEN_BEFORE_KILL
            && (written.len() as u64) < (REGION_B.end - REGION_B.start) / MIB,
        "B was cut mid-way: {} chunks written",
        written.len()
    );
    // The client loses its server and gives up; it must not linger.
    load.wait_timeout(TIMEOUT)
        .unwrap_or_else(|| panic!("qemu-io outlived its server: {}", load.log()));

    // What the dead daemon left on disk: still Primary, log hot over B.
    let crashed = node.dump_md();
    assert!(
        crashed.has_flag("primary") && !crashed.has_flag("al-clean"),
        "the metadata should show a Primary that did not stop cleanly:\n{}",
        crashed.text
    );
    assert_covers(&crashed, &written, "before recovery");

    // Restart: recovery marks the crash and the hot regions out of sync.
    node.start();
    node.haadm(&["up", RESOURCE]).expect_code(0);
    let recovered = node.dump_md();
    assert!(
        recovered.has_flag("crashed-primary") && !recovered.has_flag("primary"),
        "recovery records the crashed Primary:\n{}",
        recovered.text
    );
    assert_covers(&recovered, &written, "after recovery");
    for chunk in &written {
        assert!(
            recovered.dirty_covers(chunk),
            "the bitmap should mark {chunk:?} out of sync:\n{}",
            recovered.text
        );
    }

    assert_eq!(
        node.haadm(&["dstate", RESOURCE]).stdout.trim(),
        "UpToDate",
        "a crash does not make the data Inconsistent"
    );
    node.haadm(&["primary", RESOURCE]).expect_code(0);

    // Every flushed block of A reads back intact, and nothing else
    // appeared between A and B.
    let reads: Vec<String> = REGION_A
        .clone()
        .step_by(MIB as usize)
        .map(|offset| format!("read -P {PATTERN_A:#x} {offset} {MIB}"))
        .chain([format!(
            "read -P 0 {} {}",
            REGION_A.end,
            REGION_B.start - REGION_A.end
        )])
        .collect();
    qemu_io(&node, &reads);
}
