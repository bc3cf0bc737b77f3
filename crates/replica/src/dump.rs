//! The human-readable dump of a volume's metadata, for `haadm dump-md`.
//!
//! One `key: value` line per fact, in a fixed order: identity, geometry,
//! superblock sequence, flags by name, generation ids in hex, then every
//! dirty range of the bitmap and every hot extent of the activity log.

use std::fmt::Write as _;

use crate::activity_log::ActivityLog;
use crate::bitmap::DirtyBitmap;
use crate::block::FORMAT_VERSION;
use crate::layout::EXTENT_SIZE;
use crate::size::format_size;
use crate::superblock::Superblock;

/// The dump of metadata stored in `name`.
pub fn render(
    name: &str,
    superblock: &Superblock,
    bitmap: &DirtyBitmap,
    log: &ActivityLog,
) -> String {
    let mut out = String::new();
    let mut line = |key: &str, value: &dyn std::fmt::Display| {
        // Writing into a String cannot fail.
        let _ = writeln!(out, "{:<16}{value}", format!("{key}:"));
    };
    let geometry = superblock.geometry;
    let ids = &superblock.state.generations;
    line("metadata", &name);
    line("format-version", &FORMAT_VERSION);
    line("placement", &superblock.placement);
    line("node", &superblock.node_name);
    line("device-uuid", &hex(superblock.device_uuid));
    line("usable-size", &bytes_with_unit(geometry.usable_size()));
    line(
        "superblock",
        &format!(
            "sequence {} in slot {}",
            superblock.sequence,
            superblock.slot()
        ),
    );
    line("flags", &superblock.state.flags);
    line("current-id", &hex(ids.current));
    line("bitmap-id", &hex(ids.bitmap));
    let history: Vec<String> = ids.history.iter().map(|&id| hex(id)).collect();
    line("history-ids", &history.join(" "));
    line(
        "bitmap",
        &format!(
            "{} blocks of 4 KiB in {} pages, {} dirty ({})",
            bitmap.blocks(),
            bitmap.page_count(),
            bitmap.dirty_blocks(),
            format_size(bitmap.dirty_bytes())
        ),
    );
    for range in bitmap.dirty_ranges() {
        line(
            "dirty",
            &format!(
                "{}..{} ({})",
                range.start,
                range.end,
                format_size(range.end - range.start)
            ),
        );
    }
    line(
        "activity-log",
        &format!(
            "{} extents of {} in {} ring slots, last transaction {}",
            geometry.al_extents(),
            format_size(EXTENT_SIZE),
            geometry.al_ring_slots(),
            log.last_sequence()
        ),
    );
    let hot = log.hot_extents();
    line("hot-extents", &format!("{} {}", hot.len(), runs(&hot)));
    out
}

fn hex(id: u64) -> String {
    format!("{id:#018x}")
}

/// `N bytes`, followed by the size in a larger unit when one is exact.
fn bytes_with_unit(bytes: u64) -> String {
    let in_unit = format_size(bytes);
    if in_unit.ends_with("bytes") {
        in_unit
    } else {
        format!("{bytes} bytes ({in_unit})")
    }
}

/// Ascending numbers as runs: `[0, 1, 2, 5]` → `(0-2 5)`.
fn runs(numbers: &[u32]) -> String {
    let mut parts = Vec::new();
    let mut index = 0;
    while index < numbers.len() {
        let first = numbers[index];
        while index + 1 < numbers.len() && numbers[index + 1] == numbers[index] + 1 {
            index += 1;
        }
        let last = numbers[index];
        parts.push(if first == last {
            first.to_string()
        } else {
            format!("{first}-{last}")
        });
        index += 1;
    }
    format!("({})", parts.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::generation::GenerationIds;
    use crate::layout::Geometry;
    use crate::superblock::{Flags, NodeName, Placement, VolumeState};

    #[test]
    fn golden_dump() {
        let geometry = Geometry::new(1 << 30, 1237).unwrap();
        let superblock = Superblock {
            sequence: 12,
            device_uuid: 0x0123_4567_89ab_cdef,
            geometry,
            placement: Placement::External,
            node_name: NodeName::new("ha1").unwrap(),
            state: VolumeState {
                flags: Flags::CONSISTENT | Flags::WAS_UP_TO_DATE | Flags::CRASHED_PRIMARY,
                generations: GenerationIds {
                    current: 0xd1e2_f3a4_b5c6_0001,
                    bitmap: 0x4,
                    history: [0xabc0, 0, 0, 0],
                },
            },
        };
        let mut bitmap = DirtyBitmap::new(geometry.blocks());
        bitmap.mark(0..8192).unwrap();
        bitmap.mark(EXTENT_SIZE..EXTENT_SIZE + 1).unwrap();
        let mut log = ActivityLog::new(geometry, superblock.device_uuid);
        for extent in [0u64, 1, 2, 5] {
            log.begin_write(extent * EXTENT_SIZE..extent * EXTENT_SIZE + 1)
                .unwrap();
        }
        let expected = "\
metadata:       r0.meta
format-version: 1
placement:      external
node:           ha1
device-uuid:    0x0123456789abcdef
usable-size:    1073741824 bytes (1 GiB)
superblock:     sequence 12 in slot 0
flags:          consistent was-up-to-date crashed-primary
current-id:     0xd1e2f3a4b5c60001
bitmap-id:      0x0000000000000004
history-ids:    0x000000000000abc0 0x0000000000000000 0x0000000000000000 0x0000000000000000
bitmap:         262144 blocks of 4 KiB in 9 pages, 3 dirty (12 KiB)
dirty:          0..8192 (8 KiB)
dirty:          4194304..4198400 (4 KiB)
activity-log:   1237 extents of 4 MiB in 8 ring slots, last transaction 4
hot-extents:    4 (0-2 5)
";
        assert_eq!(render("r0.meta", &superblock, &bitmap, &log), expected);
    }

    #[test]
    fn runs_of_numbers() {
        assert_eq!(runs(&[]), "()");
        assert_eq!(runs(&[3]), "(3)");
        assert_eq!(runs(&[0, 1, 2, 5, 7, 8]), "(0-2 5 7-8)");
    }
}
