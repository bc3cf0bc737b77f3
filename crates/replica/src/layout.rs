//! Where everything lives: the geometry of a volume and the placement of its
//! metadata area.
//!
//! The metadata area is a run of 4 KiB blocks: the dirty bitmap pages, then
//! the activity-log ring, then two superblock slots. It always ends at the
//! 4 KiB-aligned end of the file that holds it — the backing file itself for
//! internal metadata (the data region then shrinks to make room), or the
//! separate `meta-disk` file for external metadata — so a reader finds the
//! superblocks from the file length alone, before it knows anything else.

use std::ops::Range;

use thiserror::Error;

use crate::activity_log::CONTEXT_PER_TRANSACTION;
use crate::bitmap::BLOCKS_PER_BITMAP_PAGE;
use crate::block::BLOCK_BYTES;
use crate::size::format_size;

/// Size of an activity-log extent: the unit of "hot" data.
pub const EXTENT_SIZE: u64 = 4 << 20;

/// Number of activity-log extents when the operator does not choose
/// (`al-extents`, as in DRBD): about 4.8 GiB of hot data.
pub const DEFAULT_AL_EXTENTS: u32 = 1237;

/// Smallest accepted `al-extents`.
pub const MIN_AL_EXTENTS: u32 = 7;

/// Largest accepted `al-extents`.
pub const MAX_AL_EXTENTS: u32 = 65534;

/// Fewest slots in the activity-log ring, even when fewer would cover the
/// table: a longer ring spreads writes and keeps more history.
pub const MIN_AL_RING_SLOTS: u32 = 8;

/// Number of superblock slots, written alternately.
pub const SUPERBLOCK_SLOTS: u32 = 2;

/// Largest usable size: extent numbers are stored as `u32`, with `u32::MAX`
/// meaning "no extent".
pub const MAX_USABLE_SIZE: u64 = (u32::MAX as u64) * EXTENT_SIZE;

/// A geometry that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum GeometryError {
    #[error("usable size {0} is not a multiple of 4 KiB")]
    Unaligned(u64),
    #[error("usable size is zero")]
    Empty,
    #[error("usable size {} exceeds the largest supported size {}", format_size(*.0), format_size(MAX_USABLE_SIZE))]
    TooLarge(u64),
    #[error("al-extents {0} is outside {MIN_AL_EXTENTS}..={MAX_AL_EXTENTS}")]
    AlExtents(u32),
    #[error("{} is too small to hold any data next to {} of metadata", format_size(*backing_size), format_size(*metadata_size))]
    BackingTooSmall {
        backing_size: u64,
        metadata_size: u64,
    },
}

/// A byte range outside the usable data region.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("byte range {start}..{end} is not inside the usable size {usable_size}")]
pub struct RangeError {
    pub start: u64,
    pub end: u64,
    pub usable_size: u64,
}

/// Checks that `range` is a well-formed range inside `0..usable_size`.
pub fn check_range(range: &Range<u64>, usable_size: u64) -> Result<(), RangeError> {
    if range.start <= range.end && range.end <= usable_size {
        Ok(())
    } else {
        Err(RangeError {
            start: range.start,
            end: range.end,
            usable_size,
        })
    }
}

/// The sizes that define a volume's metadata: how much data it covers and how
/// many extents its activity log holds. Everything else is computed from them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Geometry {
    usable_size: u64,
    al_extents: u32,
}

impl Geometry {
    /// A geometry for `usable_size` bytes of data (a non-zero multiple of
    /// 4 KiB) and `al_extents` activity-log extents.
    pub fn new(usable_size: u64, al_extents: u32) -> Result<Self, GeometryError> {
        if !(MIN_AL_EXTENTS..=MAX_AL_EXTENTS).contains(&al_extents) {
            return Err(GeometryError::AlExtents(al_extents));
        }
        if usable_size == 0 {
            return Err(GeometryError::Empty);
        }
        if !usable_size.is_multiple_of(BLOCK_BYTES) {
            return Err(GeometryError::Unaligned(usable_size));
        }
        if usable_size > MAX_USABLE_SIZE {
            return Err(GeometryError::TooLarge(usable_size));
        }
        Ok(Self {
            usable_size,
            al_extents,
        })
    }

    /// The largest geometry whose data and metadata both fit in a backing
    /// file of `backing_size` bytes (internal metadata).
    pub fn internal(backing_size: u64, al_extents: u32) -> Result<Self, GeometryError> {
        if !(MIN_AL_EXTENTS..=MAX_AL_EXTENTS).contains(&al_extents) {
            return Err(GeometryError::AlExtents(al_extents));
        }
        let fixed_blocks = u64::from(SUPERBLOCK_SLOTS + al_ring_slots(al_extents));
        let total_blocks = backing_size / BLOCK_BYTES;
        let too_small = GeometryError::BackingTooSmall {
            backing_size,
            metadata_size: (fixed_blocks + 1) * BLOCK_BYTES,
        };
        // Data blocks plus one bitmap page per BLOCKS_PER_BITMAP_PAGE of them
        // must fit in what the fixed part leaves.
        let free_blocks = total_blocks
            .checked_sub(fixed_blocks)
            .ok_or(too_small.clone())?;
        let bitmap_pages = free_blocks.div_ceil(BLOCKS_PER_BITMAP_PAGE + 1);
        let data_blocks = free_blocks - bitmap_pages;
        if data_blocks == 0 {
            return Err(too_small);
        }
        Self::new(data_blocks * BLOCK_BYTES, al_extents)
    }

    /// Bytes of data the volume exposes.
    pub fn usable_size(&self) -> u64 {
        self.usable_size
    }

    /// Capacity of the activity log, in extents.
    pub fn al_extents(&self) -> u32 {
        self.al_extents
    }

    /// Number of 4 KiB data blocks (= bitmap bits).
    pub fn blocks(&self) -> u64 {
        self.usable_size / BLOCK_BYTES
    }

    /// Number of 4 MiB extents covering the data (the last may be partial).
    pub fn extents(&self) -> u64 {
        self.usable_size.div_ceil(EXTENT_SIZE)
    }

    /// Number of 4 KiB bitmap pages.
    pub fn bitmap_pages(&self) -> u32 {
        // At most MAX_USABLE_SIZE / 124 MiB ≈ 138 million pages: fits a u32.
        u32::try_from(self.blocks().div_ceil(BLOCKS_PER_BITMAP_PAGE))
            .expect("bitmap page count is bounded by MAX_USABLE_SIZE")
    }

    /// Number of 4 KiB slots in the activity-log ring.
    pub fn al_ring_slots(&self) -> u32 {
        al_ring_slots(self.al_extents)
    }

    /// Total size of the metadata area in bytes.
    pub fn area_size(&self) -> u64 {
        u64::from(self.bitmap_pages() + self.al_ring_slots() + SUPERBLOCK_SLOTS) * BLOCK_BYTES
    }
}

/// Ring slots for a table of `al_extents`: enough that the newest
/// `slots - 1` transactions together carry the whole table in their context
/// windows (one slot may be torn by a crash), and at least
/// [`MIN_AL_RING_SLOTS`].
fn al_ring_slots(al_extents: u32) -> u32 {
    let context = CONTEXT_PER_TRANSACTION as u32;
    (al_extents.div_ceil(context) + 1).max(MIN_AL_RING_SLOTS)
}

/// The 4 KiB-aligned end of a file of `file_size` bytes.
fn aligned_end(file_size: u64) -> u64 {
    file_size - file_size % BLOCK_BYTES
}

/// Offsets of the two superblock slots in a file of `file_size` bytes: the
/// last two 4 KiB blocks before the aligned end. `None` if the file is
/// smaller than two blocks.
pub fn superblock_offsets(file_size: u64) -> Option<[u64; 2]> {
    let end = aligned_end(file_size);
    let first = end.checked_sub(u64::from(SUPERBLOCK_SLOTS) * BLOCK_BYTES)?;
    Some([first, first + BLOCK_BYTES])
}

/// A geometry placed in a file: byte offsets of every metadata block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    geometry: Geometry,
    area_start: u64,
}

impl Layout {
    /// Places the metadata area of `geometry` at the aligned end of a file of
    /// `file_size` bytes; `None` if it does not fit.
    pub fn at_end(geometry: Geometry, file_size: u64) -> Option<Self> {
        let area_start = aligned_end(file_size).checked_sub(geometry.area_size())?;
        Some(Self {
            geometry,
            area_start,
        })
    }

    pub fn geometry(&self) -> Geometry {
        self.geometry
    }

    /// Offset of the first metadata block (the first bitmap page).
    pub fn area_start(&self) -> u64 {
        self.area_start
    }

    /// Offset of bitmap page `page`.
    pub fn bitmap_page_offset(&self, page: u32) -> u64 {
        self.area_start + u64::from(page) * BLOCK_BYTES
    }

    /// Offset of activity-log ring slot `slot`.
    pub fn al_slot_offset(&self, slot: u32) -> u64 {
        self.bitmap_page_offset(self.geometry.bitmap_pages()) + u64::from(slot) * BLOCK_BYTES
    }

    /// Offset of superblock slot `slot` (0 or 1).
    pub fn superblock_offset(&self, slot: u32) -> u64 {
        self.al_slot_offset(self.geometry.al_ring_slots()) + u64::from(slot) * BLOCK_BYTES
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GIB: u64 = 1 << 30;

    #[test]
    fn one_gib_internal_geometry() {
        let geometry = Geometry::internal(GIB, DEFAULT_AL_EXTENTS).unwrap();
        // 262144 blocks; 2 superblocks + 8 ring slots leave 262134;
        // 9 bitmap pages cover up to 285696 blocks.
        assert_eq!(geometry.al_ring_slots(), 8);
        assert_eq!(geometry.bitmap_pages(), 9);
        assert_eq!(geometry.blocks(), 262134 - 9);
        assert_eq!(geometry.usable_size() + geometry.area_size(), GIB);
        assert_eq!(geometry.extents(), 256);
    }

    #[test]
    fn internal_geometry_is_the_largest_that_fits() {
        for backing_blocks in [12u64, 13, 100, 31_755, 31_756, 31_757, 63_500, 1 << 20] {
            let backing = backing_blocks * BLOCK_BYTES + 123;
            let geometry = Geometry::internal(backing, MIN_AL_EXTENTS).unwrap();
            assert!(geometry.usable_size() + geometry.area_size() <= backing);
            let bigger =
                Geometry::new(geometry.usable_size() + BLOCK_BYTES, MIN_AL_EXTENTS).unwrap();
            assert!(
                bigger.usable_size() + bigger.area_size() > backing - backing % BLOCK_BYTES,
                "one more block would not fit for {backing_blocks} blocks"
            );
        }
    }

    #[test]
    fn too_small_backing_is_refused() {
        assert!(matches!(
            Geometry::internal(11 * BLOCK_BYTES, MIN_AL_EXTENTS),
            Err(GeometryError::BackingTooSmall { .. })
        ));
        assert!(matches!(
            Geometry::internal(100, MIN_AL_EXTENTS),
            Err(GeometryError::BackingTooSmall { .. })
        ));
    }

    #[test]
    fn geometry_validation() {
        assert_eq!(Geometry::new(0, 7), Err(GeometryError::Empty));
        assert_eq!(Geometry::new(4097, 7), Err(GeometryError::Unaligned(4097)));
        assert_eq!(Geometry::new(4096, 6), Err(GeometryError::AlExtents(6)));
        assert_eq!(
            Geometry::new(4096, 65535),
            Err(GeometryError::AlExtents(65535))
        );
        assert!(matches!(
            Geometry::new(MAX_USABLE_SIZE + BLOCK_BYTES, 7),
            Err(GeometryError::TooLarge(_))
        ));
        assert!(Geometry::new(MAX_USABLE_SIZE, 7).is_ok());
    }

    #[test]
    fn ring_covers_the_table_with_one_slot_torn() {
        for al_extents in [
            MIN_AL_EXTENTS,
            880,
            881,
            DEFAULT_AL_EXTENTS,
            6433,
            MAX_AL_EXTENTS,
        ] {
            let slots = Geometry::new(BLOCK_BYTES, al_extents)
                .unwrap()
                .al_ring_slots();
            assert!(slots >= MIN_AL_RING_SLOTS);
            assert!(u64::from(slots - 1) * CONTEXT_PER_TRANSACTION as u64 >= u64::from(al_extents));
        }
        assert_eq!(
            Geometry::new(BLOCK_BYTES, MAX_AL_EXTENTS)
                .unwrap()
                .al_ring_slots(),
            76
        );
    }

    #[test]
    fn layout_ends_with_the_superblocks_at_the_aligned_end() {
        let geometry = Geometry::new(64 * GIB, 1237).unwrap();
        let file_size = geometry.area_size() + 4096 * 3 + 7;
        let layout = Layout::at_end(geometry, file_size).unwrap();
        assert_eq!(layout.area_start(), 4096 * 3);
        assert_eq!(layout.bitmap_page_offset(0), 4096 * 3);
        assert_eq!(
            layout.al_slot_offset(0),
            4096 * 3 + u64::from(geometry.bitmap_pages()) * 4096
        );
        let [first, second] = superblock_offsets(file_size).unwrap();
        assert_eq!(layout.superblock_offset(0), first);
        assert_eq!(layout.superblock_offset(1), second);
        assert_eq!(second + 4096, file_size - 7);
        assert_eq!(Layout::at_end(geometry, geometry.area_size() - 1), None);
        assert_eq!(superblock_offsets(8191), None);
    }

    #[test]
    fn range_check() {
        assert!(check_range(&(0..4096), 4096).is_ok());
        assert!(check_range(&(5..5), 4096).is_ok());
        assert!(check_range(&(0..4097), 4096).is_err());
        #[allow(clippy::reversed_empty_ranges)]
        let reversed = 10..5;
        assert!(check_range(&reversed, 4096).is_err());
    }
}
