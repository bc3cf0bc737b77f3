//! replicad's NBD export driven by clients nobody here wrote: libnbd's
//! `nbdinfo` and `nbdcopy`, and QEMU's `qemu-io`. Each must see the size
//! and flags replicad means, and read back exactly what it wrote.

use std::fs;

use hapair_lab::{
    Finished, ReplicadNode, lab_lock, path_arg, program, random_bytes, read_file_range,
    require_root, run_bounded, run_ok,
};
use serde_json::Value;

/// The backing file of every volume here: a little of it goes to metadata.
const BACKING_SIZE: u64 = 128 << 20;
const MIB: u64 = 1 << 20;

#[test]
fn nbdinfo_sees_the_usable_size_and_every_capability() {
    let _lock = lab_lock();
    if !require_root() {
        return;
    }
    let node = ReplicadNode::primary(BACKING_SIZE);
    let usable = node.status()["size"]
        .as_u64()
        .expect("haadm status --json gives the size");
    assert!(
        usable > 0 && usable < BACKING_SIZE && usable.is_multiple_of(4096),
        "usable size {usable} of a {BACKING_SIZE}-byte backing file"
    );

    let finished = run_ok(&[path_arg(&program("nbdinfo")), "--json", &node.nbd_uri()]);
    let info: Value = serde_json::from_str(&finished.stdout)
        .unwrap_or_else(|error| panic!("nbdinfo --json: {error}: {}", finished.stdout));
    let export = &info["exports"][0];
    assert_eq!(export["export-size"].as_u64(), Some(usable), "{info}");
    for capability in ["can_flush", "can_fua", "can_trim", "can_zero"] {
        assert_eq!(
            export[capability],
            Value::Bool(true),
            "{capability}: {info}"
        );
    }
    assert_eq!(export["is_read_only"], Value::Bool(false), "{info}");
    assert_eq!(export["export-name"], "r0", "{info}");
}

#[test]
fn nbdcopy_reads_back_a_random_image_bit_identical() {
    let _lock = lab_lock();
    if !require_root() {
        return;
    }
    let node = ReplicadNode::primary(BACKING_SIZE);
    let image_len = 64 * MIB;
    let image = random_bytes(usize::try_from(image_len).expect("fits"));
    let source = node.new_path("random", "img");
    fs::write(&source, &image).expect("write the random image");

    run_ok(&[
        path_arg(&program("nbdcopy")),
        "--flush",
        path_arg(&source),
        &node.nbd_uri(),
    ]);
    let copy = node.new_path("copy", "img");
    run_ok(&[
        path_arg(&program("nbdcopy")),
        &node.nbd_uri(),
        path_arg(&copy),
    ]);

    let copied = fs::read(&copy).expect("read the copy");
    let usable = node.status()["size"].as_u64().expect("size");
    assert_eq!(
        copied.len() as u64,
        usable,
        "nbdcopy copies the whole export"
    );
    let first_difference = image
        .iter()
        .zip(&copied)
        .position(|(written, read)| written != read);
    assert_eq!(
        first_difference, None,
        "the image read back differs from the one written"
    );
    assert!(
        copied[image.len()..].iter().all(|&byte| byte == 0),
        "bytes past the image should still be zero"
    );
}

/// A pattern written at an offset and length chosen to straddle 4 KiB
/// blocks and 4 MiB activity-log extents. [`PATTERNS`] are in ascending
/// order with gaps between them.
struct Pattern {
    byte: u8,
    offset: u64,
    len: u64,
}

const PATTERNS: [Pattern; 4] = [
    // Across a 4 KiB block boundary, two bytes into the next block.
    Pattern {
        byte: 0x22,
        offset: 3 * 4096 - 100,
        len: 102,
    },
    // Odd offset and length, over two block boundaries.
    Pattern {
        byte: 0x11,
        offset: 12345,
        len: 7777,
    },
    // Across the first 4 MiB extent boundary.
    Pattern {
        byte: 0x33,
        offset: 4 * MIB - 1000,
        len: 3001,
    },
    // Over two whole extents, from and to odd offsets.
    Pattern {
        byte: 0x44,
        offset: 8 * MIB - 12345,
        len: 8 * MIB + 77,
    },
];

fn qemu_io(node: &ReplicadNode, commands: &[String]) -> Finished {
    let mut command = std::process::Command::new(program("qemu-io"));
    command.args(["-f", "raw", &node.nbd_uri()]);
    for each in commands {
        command.args(["-c", each]);
    }
    run_bounded(command, std::time::Duration::from_secs(60))
}

fn assert_qemu_io_ok(finished: &Finished) {
    let output = finished.all_output();
    assert!(
        finished.code() == Some(0) && !output.contains("failed") && !output.contains("error"),
        "qemu-io reported a failure ({}):\n{output}",
        finished.status
    );
}

#[test]
fn qemu_io_reads_back_patterns_at_odd_offsets() {
    let _lock = lab_lock();
    if !require_root() {
        return;
    }
    let node = ReplicadNode::primary(BACKING_SIZE);
    let mut writes: Vec<String> = PATTERNS
        .iter()
        .map(|p| format!("write -P {:#x} {} {}", p.byte, p.offset, p.len))
        .collect();
    writes.push("flush".into());
    assert_qemu_io_ok(&qemu_io(&node, &writes));

    // A second connection reads: each pattern, and zeroes in the gaps and
    // one byte either side of every pattern.
    let mut reads: Vec<String> = PATTERNS
        .iter()
        .map(|p| format!("read -P {:#x} {} {}", p.byte, p.offset, p.len))
        .collect();
    let mut zeroes_from = 0;
    for pattern in &PATTERNS {
        reads.push(format!(
            "read -P 0 {zeroes_from} {}",
            pattern.offset - zeroes_from
        ));
        zeroes_from = pattern.offset + pattern.len;
    }
    reads.push(format!("read -P 0 {zeroes_from} {MIB}"));
    let finished = qemu_io(&node, &reads);
    assert_qemu_io_ok(&finished);
    assert_eq!(
        finished.stdout.matches("read ").count(),
        reads.len(),
        "every read ran:\n{}",
        finished.stdout
    );

    // The bytes landed where they belong on the backing file (internal
    // metadata: volume byte N is file byte N).
    for pattern in &PATTERNS {
        let len = usize::try_from(pattern.len + 2).expect("fits");
        let stored = read_file_range(node.backing_path(), pattern.offset - 1, len)
            .expect("read the backing file");
        let inside = &stored[1..stored.len() - 1];
        assert!(
            inside.iter().all(|&byte| byte == pattern.byte),
            "pattern {:#x} at {} is not on the backing file",
            pattern.byte,
            pattern.offset
        );
        assert_ne!(stored[0], pattern.byte, "spilled before {}", pattern.offset);
        assert_ne!(
            stored[stored.len() - 1],
            pattern.byte,
            "spilled after {}",
            pattern.offset + pattern.len
        );
    }

    // A pattern check that must fail does fail: the checks above mean
    // something.
    let wrong = qemu_io(
        &node,
        &[format!("read -P 0x55 {} 7777", PATTERNS[1].offset)],
    );
    assert!(
        wrong.all_output().contains("Pattern verification failed"),
        "qemu-io should reject the wrong pattern: {}",
        wrong.all_output()
    );
}
