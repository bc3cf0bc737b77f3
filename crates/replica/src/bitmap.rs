//! The dirty bitmap: one bit per 4 KiB block of usable data, set while that
//! block may differ from the peer's copy.
//!
//! In memory the bitmap is a vector of `u64` words; on disk it is split into
//! 4 KiB pages, each with its own header and CRC-32C. A page covers a whole
//! number of activity-log extents (31 extents, 124 MiB of data), so evicting
//! one extent from the activity log writes exactly one page.
//!
//! The rule that keeps a crash harmless: the bitmap may over-report, never
//! under-report. Bits are set in memory and reach the disk no later than the
//! activity-log transaction that stops covering their extent; a page that
//! fails its checksum (torn by a crash) is read as all dirty.

use std::collections::BTreeSet;
use std::ops::Range;

use crate::block::{
    BLOCK_BYTES, BLOCK_SIZE, Block, BlockKind, DecodeError, get_u32, get_u64, put_u32, put_u64,
};
use crate::layout::{EXTENT_SIZE, RangeError, check_range};

const KIND: BlockKind = BlockKind {
    magic: b"HAPAIRBM",
    name: "bitmap page",
};

const DEVICE_UUID: usize = 16;
const PAGE_INDEX: usize = 24;
const PAYLOAD: usize = 128;

/// Extents covered by one bitmap page.
pub const EXTENTS_PER_BITMAP_PAGE: u64 = 31;

/// Data blocks (bits) covered by one bitmap page.
pub const BLOCKS_PER_BITMAP_PAGE: u64 = EXTENTS_PER_BITMAP_PAGE * BLOCKS_PER_EXTENT;

const BLOCKS_PER_EXTENT: u64 = EXTENT_SIZE / BLOCK_BYTES;
const WORDS_PER_PAGE: usize = (BLOCKS_PER_BITMAP_PAGE / 64) as usize;

/// The words of one bitmap page, as stored.
pub type PageWords = [u64; WORDS_PER_PAGE];

/// Encodes bitmap page `page` of the device `device_uuid`. `words` may be
/// shorter than a full page (the last page); missing words are zero.
pub fn encode_page(device_uuid: u64, page: u32, words: &[u64]) -> Block {
    let mut block = KIND.new_block();
    put_u64(&mut block, DEVICE_UUID, device_uuid);
    put_u32(&mut block, PAGE_INDEX, page);
    for (index, word) in words.iter().take(WORDS_PER_PAGE).enumerate() {
        put_u64(&mut block, PAYLOAD + 8 * index, *word);
    }
    KIND.seal(&mut block);
    block
}

/// Decodes bitmap page `page` of the device `device_uuid`. Never panics.
pub fn decode_page(bytes: &[u8], device_uuid: u64, page: u32) -> Result<PageWords, DecodeError> {
    let block = KIND.check(bytes)?;
    let found = get_u64(block, DEVICE_UUID);
    if found != device_uuid {
        return Err(DecodeError::ForeignDevice {
            kind: KIND.name,
            found,
            expected: device_uuid,
        });
    }
    let index = get_u32(block, PAGE_INDEX);
    if index != page {
        return Err(KIND.invalid(format!("page {index} found where page {page} belongs")));
    }
    let mut words = [0; WORDS_PER_PAGE];
    for (index, word) in words.iter_mut().enumerate() {
        *word = get_u64(block, PAYLOAD + 8 * index);
    }
    Ok(words)
}

/// The in-memory dirty bitmap, with the set of pages changed since they were
/// last written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirtyBitmap {
    blocks: u64,
    words: Vec<u64>,
    dirty_blocks: u64,
    unsaved_pages: BTreeSet<u32>,
}

impl DirtyBitmap {
    /// An all-clean bitmap of `blocks` bits.
    pub fn new(blocks: u64) -> Self {
        let word_count = usize::try_from(blocks.div_ceil(64)).expect("bitmap fits in memory");
        Self {
            blocks,
            words: vec![0; word_count],
            dirty_blocks: 0,
            unsaved_pages: BTreeSet::new(),
        }
    }

    /// Number of bits (4 KiB blocks).
    pub fn blocks(&self) -> u64 {
        self.blocks
    }

    /// Number of pages on disk.
    pub fn page_count(&self) -> u32 {
        u32::try_from(self.blocks.div_ceil(BLOCKS_PER_BITMAP_PAGE)).expect("page count fits a u32")
    }

    /// Number of dirty blocks.
    pub fn dirty_blocks(&self) -> u64 {
        self.dirty_blocks
    }

    /// Bytes of data marked dirty.
    pub fn dirty_bytes(&self) -> u64 {
        self.dirty_blocks * BLOCK_BYTES
    }

    pub fn is_block_dirty(&self, block: u64) -> bool {
        block < self.blocks && self.words[(block / 64) as usize] & (1 << (block % 64)) != 0
    }

    /// Marks every block that `range` (bytes) touches, rounding outward.
    pub fn mark(&mut self, range: Range<u64>) -> Result<(), RangeError> {
        check_range(&range, self.blocks * BLOCK_BYTES)?;
        if range.is_empty() {
            return Ok(());
        }
        let blocks = range.start / BLOCK_BYTES..range.end.div_ceil(BLOCK_BYTES);
        self.update(blocks, true);
        Ok(())
    }

    /// Clears the blocks that `range` (bytes) covers completely, rounding
    /// inward: a partly covered block stays dirty.
    pub fn clear(&mut self, range: Range<u64>) -> Result<(), RangeError> {
        check_range(&range, self.blocks * BLOCK_BYTES)?;
        let blocks = range.start.div_ceil(BLOCK_BYTES)..range.end / BLOCK_BYTES;
        self.update(blocks, false);
        Ok(())
    }

    fn update(&mut self, blocks: Range<u64>, dirty: bool) {
        let mut block = blocks.start;
        while block < blocks.end {
            let word_index = block / 64;
            let first_bit = block % 64;
            let bits = (blocks.end - block).min(64 - first_bit);
            let mask = if bits == 64 {
                u64::MAX
            } else {
                ((1u64 << bits) - 1) << first_bit
            };
            let word = &mut self.words[word_index as usize];
            let before = *word;
            *word = if dirty { before | mask } else { before & !mask };
            if *word != before {
                let after_count = u64::from(word.count_ones());
                let before_count = u64::from(before.count_ones());
                self.dirty_blocks = self.dirty_blocks + after_count - before_count;
                self.unsaved_pages.insert(page_of_block(block));
            }
            block += bits;
        }
    }

    /// Maximal runs of dirty blocks, as byte ranges, in order.
    pub fn dirty_ranges(&self) -> DirtyRanges<'_> {
        DirtyRanges {
            bitmap: self,
            next_block: 0,
        }
    }

    /// First block at or after `from` whose bit equals `dirty`.
    fn find(&self, from: u64, dirty: bool) -> Option<u64> {
        let mut word_index = from / 64;
        let mut skip_mask = !0u64 << (from % 64);
        while let Some(&word) = self.words.get(word_index as usize) {
            let candidates = if dirty { word } else { !word } & skip_mask;
            if candidates != 0 {
                let block = word_index * 64 + u64::from(candidates.trailing_zeros());
                return (block < self.blocks).then_some(block);
            }
            word_index += 1;
            skip_mask = !0;
        }
        None
    }

    /// The words of page `page` (fewer than a full page for the last one).
    pub fn page_words(&self, page: u32) -> &[u64] {
        let start = (page as usize)
            .saturating_mul(WORDS_PER_PAGE)
            .min(self.words.len());
        let end = start.saturating_add(WORDS_PER_PAGE).min(self.words.len());
        &self.words[start..end]
    }

    /// The on-disk form of page `page`.
    pub fn encode_page(&self, device_uuid: u64, page: u32) -> Block {
        encode_page(device_uuid, page, self.page_words(page))
    }

    /// Installs page `page` as read from disk. Bits past the end of the data
    /// are ignored. The page counts as saved.
    pub fn load_page(&mut self, page: u32, words: &PageWords) {
        let start = (page as usize)
            .saturating_mul(WORDS_PER_PAGE)
            .min(self.words.len());
        let end = start.saturating_add(WORDS_PER_PAGE).min(self.words.len());
        for (index, word) in (start..end).zip(words) {
            let valid_bits = (self.blocks - index as u64 * 64).min(64);
            let mask = if valid_bits == 64 {
                u64::MAX
            } else {
                (1 << valid_bits) - 1
            };
            let old = self.words[index];
            self.words[index] = word & mask;
            self.dirty_blocks = self.dirty_blocks + u64::from(self.words[index].count_ones())
                - u64::from(old.count_ones());
        }
        self.unsaved_pages.remove(&page);
    }

    /// Marks every block of page `page` dirty, for a page that could not be
    /// read: the page must be written again.
    pub fn mark_page_dirty(&mut self, page: u32) {
        let first = u64::from(page) * BLOCKS_PER_BITMAP_PAGE;
        let end = (first + BLOCKS_PER_BITMAP_PAGE).min(self.blocks);
        if first < end {
            self.update(first..end, true);
        }
        self.unsaved_pages.insert(page);
    }

    /// Pages changed since they were last written, in order.
    pub fn unsaved_pages(&self) -> impl Iterator<Item = u32> + '_ {
        self.unsaved_pages.iter().copied()
    }

    /// True if page `page` changed since it was last written.
    pub fn is_page_unsaved(&self, page: u32) -> bool {
        self.unsaved_pages.contains(&page)
    }

    /// Records that page `page` is on disk as it is now.
    pub fn mark_page_saved(&mut self, page: u32) {
        self.unsaved_pages.remove(&page);
    }
}

/// The bitmap page holding the bits of activity-log extent `extent`.
pub fn page_of_extent(extent: u32) -> u32 {
    (u64::from(extent) / EXTENTS_PER_BITMAP_PAGE) as u32
}

fn page_of_block(block: u64) -> u32 {
    (block / BLOCKS_PER_BITMAP_PAGE) as u32
}

/// Iterator over dirty byte ranges; see [`DirtyBitmap::dirty_ranges`].
#[derive(Debug, Clone)]
pub struct DirtyRanges<'a> {
    bitmap: &'a DirtyBitmap,
    next_block: u64,
}

impl Iterator for DirtyRanges<'_> {
    type Item = Range<u64>;

    fn next(&mut self) -> Option<Range<u64>> {
        let start = self.bitmap.find(self.next_block, true)?;
        let end = self.bitmap.find(start, false).unwrap_or(self.bitmap.blocks);
        self.next_block = end;
        Some(start * BLOCK_BYTES..end * BLOCK_BYTES)
    }
}

const _: () = assert!(PAYLOAD + WORDS_PER_PAGE * 8 == BLOCK_SIZE);

#[cfg(test)]
// A list of one byte range is what these tests expect, not a typo for a range of values.
#[allow(clippy::single_range_in_vec_init)]
mod tests {
    use std::collections::BTreeSet;

    use proptest::prelude::*;

    use super::*;

    const KIB4: u64 = 4096;

    #[test]
    fn page_geometry() {
        assert_eq!(BLOCKS_PER_BITMAP_PAGE, 31_744);
        assert_eq!(WORDS_PER_PAGE, 496);
        assert_eq!(page_of_extent(30), 0);
        assert_eq!(page_of_extent(31), 1);
        let bitmap = DirtyBitmap::new(BLOCKS_PER_BITMAP_PAGE + 1);
        assert_eq!(bitmap.blocks(), BLOCKS_PER_BITMAP_PAGE + 1);
        assert_eq!(bitmap.page_count(), 2);
        assert_eq!(bitmap.page_words(1).len(), 1);
    }

    #[test]
    fn mark_rounds_outward_and_clear_rounds_inward() {
        let mut bitmap = DirtyBitmap::new(100);
        bitmap.mark(KIB4 + 1..3 * KIB4 - 1).unwrap();
        assert_eq!(bitmap.dirty_ranges().collect::<Vec<_>>(), [KIB4..3 * KIB4]);
        bitmap.clear(KIB4 + 1..3 * KIB4).unwrap();
        assert_eq!(bitmap.dirty_ranges().collect::<Vec<_>>(), [KIB4..2 * KIB4]);
        assert_eq!(bitmap.dirty_blocks(), 1);
        bitmap.clear(0..100 * KIB4).unwrap();
        assert_eq!(bitmap.dirty_blocks(), 0);
        bitmap.mark(5..5).unwrap();
        assert_eq!(bitmap.dirty_blocks(), 0, "an empty range marks nothing");
        assert!(bitmap.mark(0..100 * KIB4 + 1).is_err());
    }

    #[test]
    fn dirty_ranges_cross_words_and_reach_the_end() {
        let mut bitmap = DirtyBitmap::new(200);
        bitmap.mark(60 * KIB4..70 * KIB4).unwrap();
        bitmap.mark(128 * KIB4..129 * KIB4).unwrap();
        bitmap.mark(190 * KIB4..200 * KIB4).unwrap();
        assert_eq!(
            bitmap.dirty_ranges().collect::<Vec<_>>(),
            [
                60 * KIB4..70 * KIB4,
                128 * KIB4..129 * KIB4,
                190 * KIB4..200 * KIB4
            ]
        );
        assert_eq!(bitmap.dirty_bytes(), 21 * KIB4);
    }

    #[test]
    fn changes_track_unsaved_pages() {
        let mut bitmap = DirtyBitmap::new(3 * BLOCKS_PER_BITMAP_PAGE);
        bitmap.mark(0..KIB4).unwrap();
        bitmap.mark(0..KIB4).unwrap();
        let page_two = 2 * BLOCKS_PER_BITMAP_PAGE * KIB4;
        bitmap.clear(page_two..page_two + KIB4).unwrap();
        assert_eq!(
            bitmap.unsaved_pages().collect::<Vec<_>>(),
            [0],
            "a no-op clear saves nothing"
        );
        bitmap.mark(page_two - KIB4..page_two + KIB4).unwrap();
        assert_eq!(bitmap.unsaved_pages().collect::<Vec<_>>(), [0, 1, 2]);
        bitmap.mark_page_saved(1);
        assert!(!bitmap.is_page_unsaved(1));
    }

    #[test]
    fn pages_round_trip_through_disk_form() {
        let mut bitmap = DirtyBitmap::new(2 * BLOCKS_PER_BITMAP_PAGE - 5);
        bitmap.mark(12_345 * KIB4..40_000 * KIB4).unwrap();
        let mut copy = DirtyBitmap::new(bitmap.blocks());
        for page in 0..bitmap.page_count() {
            let block = bitmap.encode_page(77, page);
            copy.load_page(page, &decode_page(&block, 77, page).unwrap());
        }
        assert_eq!(
            copy.dirty_ranges().collect::<Vec<_>>(),
            bitmap.dirty_ranges().collect::<Vec<_>>()
        );
        assert_eq!(copy.dirty_blocks(), bitmap.dirty_blocks());
    }

    #[test]
    fn loading_ignores_bits_past_the_end() {
        let mut bitmap = DirtyBitmap::new(10);
        bitmap.load_page(0, &[u64::MAX; WORDS_PER_PAGE]);
        assert_eq!(bitmap.dirty_blocks(), 10);
        assert_eq!(bitmap.dirty_ranges().collect::<Vec<_>>(), [0..10 * KIB4]);
    }

    #[test]
    fn damaged_page_reads_as_all_dirty() {
        let mut bitmap = DirtyBitmap::new(2 * BLOCKS_PER_BITMAP_PAGE);
        bitmap.mark_page_dirty(1);
        let start = BLOCKS_PER_BITMAP_PAGE * KIB4;
        assert_eq!(
            bitmap.dirty_ranges().collect::<Vec<_>>(),
            [start..2 * start]
        );
        assert!(bitmap.is_page_unsaved(1));
    }

    #[test]
    fn foreign_and_misplaced_pages_are_rejected() {
        let block = encode_page(1, 3, &[5]);
        assert!(matches!(
            decode_page(&block, 2, 3),
            Err(DecodeError::ForeignDevice { .. })
        ));
        assert!(matches!(
            decode_page(&block, 1, 4),
            Err(DecodeError::Invalid { .. })
        ));
        assert_eq!(decode_page(&block, 1, 3).unwrap()[0], 5);
    }

    fn operations() -> impl Strategy<Value = Vec<(bool, u64, u64)>> {
        proptest::collection::vec((any::<bool>(), 0u64..300 * KIB4, 0u64..40 * KIB4), 1..40)
    }

    proptest! {
        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..5000), page in any::<u32>()) {
            let _ = decode_page(&bytes, 0, page);
        }

        #[test]
        fn encode_decode_round_trips(words in proptest::collection::vec(any::<u64>(), WORDS_PER_PAGE), uuid in any::<u64>(), page in any::<u32>()) {
            let decoded = decode_page(&encode_page(uuid, page, &words), uuid, page).unwrap();
            prop_assert_eq!(&decoded[..], &words[..]);
        }

        #[test]
        fn any_corruption_is_detected(words in proptest::collection::vec(any::<u64>(), WORDS_PER_PAGE), position in 0..BLOCK_SIZE, xor in 1u8..) {
            let mut block = encode_page(9, 1, &words);
            block[position] ^= xor;
            prop_assert!(decode_page(&block, 9, 1).is_err());
        }

        #[test]
        fn matches_a_set_of_blocks(ops in operations()) {
            let size = 300 * KIB4;
            let mut bitmap = DirtyBitmap::new(300);
            let mut model = BTreeSet::new();
            for (dirty, start, len) in ops {
                let end = (start + len).min(size);
                if dirty {
                    bitmap.mark(start..end).unwrap();
                    if start < end {
                        model.extend(start / KIB4..end.div_ceil(KIB4));
                    }
                } else {
                    bitmap.clear(start..end).unwrap();
                    for block in start.div_ceil(KIB4)..end / KIB4 {
                        model.remove(&block);
                    }
                }
            }
            prop_assert_eq!(bitmap.dirty_blocks(), model.len() as u64);
            let from_ranges: BTreeSet<u64> = bitmap
                .dirty_ranges()
                .flat_map(|range| range.start / KIB4..range.end / KIB4)
                .collect();
            prop_assert_eq!(from_ranges, model);
            let ranges: Vec<_> = bitmap.dirty_ranges().collect();
            for pair in ranges.windows(2) {
                prop_assert!(pair[0].end < pair[1].start, "ranges are maximal and ordered");
            }
        }
    }
}
