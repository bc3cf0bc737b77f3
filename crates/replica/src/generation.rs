//! Generation identifiers: which version of the data a node holds.
//!
//! As in DRBD, a volume carries a *current* id that names its data
//! generation, a *bitmap* id that names the generation at which the dirty
//! bitmap started tracking changes the peer lacks (zero when the peer is in
//! sync), and a short *history* of older current ids. Bit 0 of an id records
//! that it was created while Primary and is ignored when ids are compared.
//! The connect-time decision that compares these ids (which side is sync
//! source, split brain, unrelated data) is in [`crate::sync`].

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};

/// Number of history ids kept.
pub const HISTORY_LEN: usize = 4;

/// The current id of metadata that was just created and never synced.
pub const JUST_CREATED: u64 = 4;

/// Bit 0 of an id: set when the generation was started while Primary.
pub const PRIMARY_BIT: u64 = 1;

/// The generation ids stored in the superblock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct GenerationIds {
    pub current: u64,
    pub bitmap: u64,
    /// Older current ids, newest first; zero means empty.
    pub history: [u64; HISTORY_LEN],
}

impl GenerationIds {
    /// The ids of freshly created metadata.
    pub fn just_created() -> Self {
        Self {
            current: JUST_CREATED,
            bitmap: 0,
            history: [0; HISTORY_LEN],
        }
    }

    /// True while the volume has never been part of a sync or a promotion.
    pub fn is_just_created(&self) -> bool {
        same_generation(self.current, JUST_CREATED)
    }

    /// Starts a new data generation named `fresh` — done on the first write
    /// after a Primary lost its peer, or when a disconnected node is promoted.
    ///
    /// The old current id becomes the bitmap id, which marks where the
    /// bitmap's record of changes begins. If a bitmap id is already set, the
    /// bitmap has been tracking since that older point and keeps doing so;
    /// the old current id then goes into the history.
    pub fn start_new_generation(&mut self, fresh: u64, primary: bool) {
        if self.bitmap == 0 {
            self.bitmap = self.current;
        } else {
            self.push_history(self.current);
        }
        self.current = if primary {
            fresh | PRIMARY_BIT
        } else {
            fresh & !PRIMARY_BIT
        };
    }

    /// A Primary writes for the first time since it lost its peer: a new
    /// generation named `fresh` starts before the write reaches the disk.
    /// The generation it leaves is marked as left by a Primary (bit 0 of the
    /// bitmap id, when the bitmap id is set here), which is what the
    /// `discard-younger-primary` and `discard-older-primary` split-brain
    /// policies look at.
    ///
    /// Call it once per period without a peer: a write the peer did not
    /// acknowledge before the link went down counts as a write without peer.
    pub fn on_first_write_without_peer(&mut self, fresh: u64) {
        self.current |= PRIMARY_BIT;
        self.start_new_generation(fresh, true);
    }

    /// A Secondary with no peer connected is promoted: a new generation
    /// named `fresh` starts. The generation it leaves is marked as left by a
    /// Secondary (bit 0 clear), see [`Self::on_first_write_without_peer`].
    pub fn on_promotion_without_peer(&mut self, fresh: u64) {
        self.current &= !PRIMARY_BIT;
        self.start_new_generation(fresh, true);
    }

    /// The ids a sync target takes when its resync from `source` finished:
    /// exactly the source's ids after [`Self::clear_bitmap_id`], so both
    /// nodes hold the same ids afterwards. The target's own older ids are
    /// dropped: its data now descends from the source's generations only
    /// (its previous current id is among them unless its changes were
    /// discarded after a split brain).
    pub fn after_sync_as_target(source: &GenerationIds) -> GenerationIds {
        let mut adopted = *source;
        adopted.clear_bitmap_id();
        adopted
    }

    /// The peer caught up (resync finished, or it was in sync when it came
    /// back): the bitmap id moves into the history and is cleared.
    pub fn clear_bitmap_id(&mut self) {
        if self.bitmap != 0 {
            self.push_history(self.bitmap);
            self.bitmap = 0;
        }
    }

    /// Puts `id` at the front of the history, dropping the oldest entry.
    pub fn push_history(&mut self, id: u64) {
        self.history.copy_within(..HISTORY_LEN - 1, 1);
        self.history[0] = id;
    }

    /// True if any history entry names the same generation as `id`.
    pub fn history_contains(&self, id: u64) -> bool {
        id != 0
            && self
                .history
                .iter()
                .any(|&entry| entry != 0 && same_generation(entry, id))
    }
}

/// True if two ids name the same generation (the Primary bit is ignored).
pub fn same_generation(a: u64, b: u64) -> bool {
    a & !PRIMARY_BIT == b & !PRIMARY_BIT
}

/// A fresh random id for a new generation or a new device: never zero, never
/// [`JUST_CREATED`], Primary bit clear. Randomness comes from the standard
/// library's per-process random hash keys mixed with the clock; ids need to
/// be unique, not secret.
pub fn random_id() -> u64 {
    loop {
        let mut hasher = RandomState::new().build_hasher();
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.as_nanos());
        hasher.write_u128(nanos);
        hasher.write_u32(std::process::id());
        let id = hasher.finish() & !PRIMARY_BIT;
        if id != 0 && id != JUST_CREATED {
            return id;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_new_generation_moves_current_into_bitmap() {
        let mut ids = GenerationIds::just_created();
        assert!(ids.is_just_created());
        ids.start_new_generation(0xAAA0, true);
        assert_eq!(ids.current, 0xAAA1);
        assert_eq!(ids.bitmap, JUST_CREATED);
        assert_eq!(ids.history, [0; HISTORY_LEN]);
        assert!(!ids.is_just_created());
    }

    #[test]
    fn later_new_generation_keeps_bitmap_and_records_history() {
        let mut ids = GenerationIds {
            current: 0x20,
            bitmap: 0x10,
            history: [0x08, 0, 0, 0],
        };
        ids.start_new_generation(0x31, false);
        assert_eq!(ids.current, 0x30, "primary bit cleared for a Secondary");
        assert_eq!(
            ids.bitmap, 0x10,
            "bitmap keeps tracking from the older point"
        );
        assert_eq!(ids.history, [0x20, 0x08, 0, 0]);
    }

    #[test]
    fn clearing_bitmap_id_moves_it_into_history() {
        let mut ids = GenerationIds {
            current: 0x30,
            bitmap: 0x20,
            history: [1, 2, 3, 4],
        };
        ids.clear_bitmap_id();
        assert_eq!(ids.bitmap, 0);
        assert_eq!(ids.history, [0x20, 1, 2, 3], "oldest entry dropped");
        let before = ids;
        ids.clear_bitmap_id();
        assert_eq!(ids, before, "clearing an empty bitmap id changes nothing");
    }

    #[test]
    fn comparisons_ignore_the_primary_bit() {
        assert!(same_generation(0x1230, 0x1231));
        assert!(!same_generation(0x1230, 0x1232));
        let ids = GenerationIds {
            current: 0x50,
            bitmap: 0,
            history: [0x41, 0, 0, 0],
        };
        assert!(ids.history_contains(0x40));
        assert!(!ids.history_contains(0));
        assert!(!ids.history_contains(0x60));
    }

    #[test]
    fn random_ids_are_usable_and_distinct() {
        let ids: Vec<u64> = (0..64).map(|_| random_id()).collect();
        for &id in &ids {
            assert_ne!(id, 0);
            assert_ne!(id, JUST_CREATED);
            assert_eq!(id & PRIMARY_BIT, 0);
        }
        let mut unique = ids.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), ids.len());
    }
}
