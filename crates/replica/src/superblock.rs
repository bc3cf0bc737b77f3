//! The superblock: identity, geometry, flags and generation ids of a volume.
//!
//! It is stored in two 4 KiB slots. Every update writes the *other* slot with
//! a sequence number one higher and syncs, so a crash at any moment leaves at
//! least one intact copy; the reader takes the valid copy with the highest
//! sequence ([`select`]).

use std::fmt;

use thiserror::Error;

use crate::block::{Block, BlockKind, DecodeError, get_u32, get_u64, put_u32, put_u64};
use crate::generation::{GenerationIds, HISTORY_LEN};
use crate::layout::Geometry;

const KIND: BlockKind = BlockKind {
    magic: b"HAPAIRSB",
    name: "superblock",
};

const SEQUENCE: usize = 16;
const DEVICE_UUID: usize = 24;
const USABLE_SIZE: usize = 32;
const AL_EXTENTS: usize = 40;
const AL_RING_SLOTS: usize = 44;
const BITMAP_PAGES: usize = 48;
const PLACEMENT: usize = 52;
const FLAGS: usize = 56;
const CURRENT_ID: usize = 64;
const BITMAP_ID: usize = 72;
const HISTORY_IDS: usize = 80;
const NODE_NAME: usize = 112;

/// Longest node name, in bytes of UTF-8 (Linux's HOST_NAME_MAX).
pub const NODE_NAME_MAX: usize = 64;

/// State flags. Bit values are DRBD's, for familiarity.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Flags(u32);

impl Flags {
    /// The data is consistent (not in the middle of a resync as target).
    pub const CONSISTENT: Flags = Flags(0x01);
    /// The node is Primary; found set at attach it means the Primary crashed.
    pub const PRIMARY: Flags = Flags(0x02);
    /// The data was UpToDate when last known.
    pub const WAS_UP_TO_DATE: Flags = Flags(0x10);
    /// The node crashed while Primary (set during crash recovery).
    pub const CRASHED_PRIMARY: Flags = Flags(0x40);
    /// Every bit the activity log covers is in the on-disk bitmap: there is
    /// nothing to apply after a restart. Managed by the metadata layer.
    pub const AL_CLEAN: Flags = Flags(0x80);

    const NAMED: [(Flags, &'static str); 5] = [
        (Flags::CONSISTENT, "consistent"),
        (Flags::WAS_UP_TO_DATE, "was-up-to-date"),
        (Flags::PRIMARY, "primary"),
        (Flags::CRASHED_PRIMARY, "crashed-primary"),
        (Flags::AL_CLEAN, "al-clean"),
    ];

    const KNOWN_BITS: u32 = 0x01 | 0x02 | 0x10 | 0x40 | 0x80;

    pub const fn empty() -> Self {
        Flags(0)
    }

    pub const fn bits(self) -> u32 {
        self.0
    }

    /// The flags for `bits`, or `None` if an unknown bit is set.
    pub const fn from_bits(bits: u32) -> Option<Self> {
        if bits & !Self::KNOWN_BITS == 0 {
            Some(Flags(bits))
        } else {
            None
        }
    }

    pub const fn contains(self, other: Flags) -> bool {
        self.0 & other.0 == other.0
    }

    pub fn insert(&mut self, other: Flags) {
        self.0 |= other.0;
    }

    pub fn remove(&mut self, other: Flags) {
        self.0 &= !other.0;
    }

    /// Sets or clears `other`.
    pub fn set(&mut self, other: Flags, on: bool) {
        if on {
            self.insert(other);
        } else {
            self.remove(other);
        }
    }

    /// Names of the set flags, in a fixed order.
    pub fn names(self) -> impl Iterator<Item = &'static str> {
        Self::NAMED
            .into_iter()
            .filter(move |(flag, _)| self.contains(*flag))
            .map(|(_, name)| name)
    }
}

impl std::ops::BitOr for Flags {
    type Output = Flags;

    fn bitor(self, other: Flags) -> Flags {
        Flags(self.0 | other.0)
    }
}

impl fmt::Display for Flags {
    /// Flag names separated by spaces, or `(none)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.names().collect();
        if names.is_empty() {
            f.write_str("(none)")
        } else {
            f.write_str(&names.join(" "))
        }
    }
}

impl fmt::Debug for Flags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Flags({self})")
    }
}

/// The name of the node that owns the metadata, as in the config
/// (1 to [`NODE_NAME_MAX`] bytes of UTF-8, no NUL).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct NodeName(String);

/// A node name that cannot be stored.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum NodeNameError {
    #[error("node name is empty")]
    Empty,
    #[error("node name {0:?} is longer than {NODE_NAME_MAX} bytes")]
    TooLong(String),
    #[error("node name {0:?} contains a NUL character")]
    Nul(String),
}

impl NodeName {
    pub fn new(name: &str) -> Result<Self, NodeNameError> {
        if name.is_empty() {
            Err(NodeNameError::Empty)
        } else if name.len() > NODE_NAME_MAX {
            Err(NodeNameError::TooLong(name.to_owned()))
        } else if name.contains('\0') {
            Err(NodeNameError::Nul(name.to_owned()))
        } else {
            Ok(Self(name.to_owned()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for NodeName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where the metadata area lives relative to the data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Placement {
    /// At the end of the backing file, after the data.
    Internal,
    /// In a separate `meta-disk` file.
    External,
}

impl Placement {
    fn code(self) -> u32 {
        match self {
            Placement::Internal => 1,
            Placement::External => 2,
        }
    }

    fn from_code(code: u32) -> Option<Self> {
        match code {
            1 => Some(Placement::Internal),
            2 => Some(Placement::External),
            _ => None,
        }
    }
}

impl fmt::Display for Placement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Placement::Internal => "internal",
            Placement::External => "external",
        })
    }
}

/// The part of the superblock that changes while the volume is in use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct VolumeState {
    pub flags: Flags,
    pub generations: GenerationIds,
}

/// A decoded superblock.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Superblock {
    /// Incremented by every update; selects the newer slot.
    pub sequence: u64,
    /// Random id chosen by create-md; every bitmap page and activity-log
    /// transaction carries it, so blocks of older metadata are never mixed in.
    pub device_uuid: u64,
    pub geometry: Geometry,
    pub placement: Placement,
    pub node_name: NodeName,
    pub state: VolumeState,
}

impl Superblock {
    /// The superblock slot this superblock is written to (sequence parity).
    pub fn slot(&self) -> u32 {
        (self.sequence % 2) as u32
    }

    /// The 4 KiB on-disk form.
    pub fn encode(&self) -> Block {
        let mut block = KIND.new_block();
        put_u64(&mut block, SEQUENCE, self.sequence);
        put_u64(&mut block, DEVICE_UUID, self.device_uuid);
        put_u64(&mut block, USABLE_SIZE, self.geometry.usable_size());
        put_u32(&mut block, AL_EXTENTS, self.geometry.al_extents());
        put_u32(&mut block, AL_RING_SLOTS, self.geometry.al_ring_slots());
        put_u32(&mut block, BITMAP_PAGES, self.geometry.bitmap_pages());
        put_u32(&mut block, PLACEMENT, self.placement.code());
        put_u32(&mut block, FLAGS, self.state.flags.bits());
        let ids = &self.state.generations;
        put_u64(&mut block, CURRENT_ID, ids.current);
        put_u64(&mut block, BITMAP_ID, ids.bitmap);
        for (index, id) in ids.history.iter().enumerate() {
            put_u64(&mut block, HISTORY_IDS + 8 * index, *id);
        }
        let name = self.node_name.as_str().as_bytes();
        block[NODE_NAME..NODE_NAME + name.len()].copy_from_slice(name);
        KIND.seal(&mut block);
        block
    }

    /// Decodes and validates one slot. Never panics.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let block = KIND.check(bytes)?;
        let sequence = get_u64(block, SEQUENCE);
        if sequence == 0 {
            return Err(KIND.invalid("sequence number is zero"));
        }
        let geometry = Geometry::new(get_u64(block, USABLE_SIZE), get_u32(block, AL_EXTENTS))
            .map_err(|error| KIND.invalid(error.to_string()))?;
        let stored_counts = (get_u32(block, AL_RING_SLOTS), get_u32(block, BITMAP_PAGES));
        let computed_counts = (geometry.al_ring_slots(), geometry.bitmap_pages());
        if stored_counts != computed_counts {
            return Err(KIND.invalid(format!(
                "stored ring slots and bitmap pages {stored_counts:?} do not match the geometry {computed_counts:?}"
            )));
        }
        let placement_code = get_u32(block, PLACEMENT);
        let placement = Placement::from_code(placement_code)
            .ok_or_else(|| KIND.invalid(format!("unknown placement code {placement_code}")))?;
        let flag_bits = get_u32(block, FLAGS);
        let flags = Flags::from_bits(flag_bits)
            .ok_or_else(|| KIND.invalid(format!("unknown flag bits {flag_bits:#x}")))?;
        let mut history = [0; HISTORY_LEN];
        for (index, id) in history.iter_mut().enumerate() {
            *id = get_u64(block, HISTORY_IDS + 8 * index);
        }
        let generations = GenerationIds {
            current: get_u64(block, CURRENT_ID),
            bitmap: get_u64(block, BITMAP_ID),
            history,
        };
        Ok(Self {
            sequence,
            device_uuid: get_u64(block, DEVICE_UUID),
            geometry,
            placement,
            node_name: decode_node_name(block)?,
            state: VolumeState { flags, generations },
        })
    }
}

fn decode_node_name(block: &Block) -> Result<NodeName, DecodeError> {
    let field = &block[NODE_NAME..NODE_NAME + NODE_NAME_MAX];
    let length = field
        .iter()
        .position(|&byte| byte == 0)
        .unwrap_or(NODE_NAME_MAX);
    if field[length..].iter().any(|&byte| byte != 0) {
        return Err(KIND.invalid("node name has bytes after its terminating NUL"));
    }
    let name = std::str::from_utf8(&field[..length])
        .map_err(|_| KIND.invalid("node name is not UTF-8"))?;
    NodeName::new(name).map_err(|error| KIND.invalid(error.to_string()))
}

/// Why neither superblock slot could be used.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SelectError {
    /// Neither slot carries the superblock magic: there is no metadata.
    #[error("no superblock in either slot")]
    NoMetadata,
    /// A slot is intact but written by another format version.
    #[error("{0}")]
    UnsupportedVersion(DecodeError),
    /// At least one slot looks like a superblock, and none is valid.
    #[error("slot 0: {0}; slot 1: {1}")]
    Damaged(DecodeError, DecodeError),
}

/// Picks the valid slot with the highest sequence number.
///
/// An intact slot with an unsupported version is an error even when the other
/// slot is valid: it is the newer one, and falling back to an older copy
/// would silently roll the volume back.
pub fn select(slot0: &[u8], slot1: &[u8]) -> Result<Superblock, SelectError> {
    let decoded = [Superblock::decode(slot0), Superblock::decode(slot1)];
    for result in &decoded {
        if let Err(error @ DecodeError::UnsupportedVersion { .. }) = result {
            return Err(SelectError::UnsupportedVersion(error.clone()));
        }
    }
    match decoded {
        [Ok(first), Ok(second)] => Ok(if second.sequence > first.sequence {
            second
        } else {
            first
        }),
        [Ok(valid), Err(_)] | [Err(_), Ok(valid)] => Ok(valid),
        [
            Err(DecodeError::NoMagic { .. }),
            Err(DecodeError::NoMagic { .. }),
        ] => Err(SelectError::NoMetadata),
        [Err(first), Err(second)] => Err(SelectError::Damaged(first, second)),
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::block::BLOCK_SIZE;

    fn sample() -> Superblock {
        Superblock {
            sequence: 7,
            device_uuid: 0x0123_4567_89ab_cdef,
            geometry: Geometry::new(1 << 30, 1237).unwrap(),
            placement: Placement::Internal,
            node_name: NodeName::new("ha1").unwrap(),
            state: VolumeState {
                flags: Flags::CONSISTENT | Flags::AL_CLEAN,
                generations: GenerationIds {
                    current: 0xAAAA_0000_0000_0001,
                    bitmap: 0xBBBB,
                    history: [1, 2, 3, 4],
                },
            },
        }
    }

    #[test]
    fn round_trip_and_byte_positions() {
        let superblock = sample();
        let block = superblock.encode();
        assert_eq!(&block[..8], b"HAPAIRSB");
        assert_eq!(block[SEQUENCE], 7);
        assert_eq!(
            &block[USABLE_SIZE..USABLE_SIZE + 8],
            &(1u64 << 30).to_le_bytes()
        );
        assert_eq!(&block[NODE_NAME..NODE_NAME + 4], b"ha1\0");
        assert_eq!(Superblock::decode(&block), Ok(superblock));
    }

    #[test]
    fn flags_print_by_name() {
        assert_eq!(
            (Flags::CONSISTENT | Flags::AL_CLEAN).to_string(),
            "consistent al-clean"
        );
        assert_eq!(Flags::empty().to_string(), "(none)");
        assert_eq!(Flags::from_bits(0x100), None);
        let mut flags = Flags::PRIMARY;
        flags.set(Flags::CRASHED_PRIMARY, true);
        flags.set(Flags::PRIMARY, false);
        assert_eq!(flags, Flags::CRASHED_PRIMARY);
    }

    #[test]
    fn node_names_are_validated() {
        assert_eq!(NodeName::new(""), Err(NodeNameError::Empty));
        assert!(NodeName::new(&"x".repeat(64)).is_ok());
        assert!(matches!(
            NodeName::new(&"x".repeat(65)),
            Err(NodeNameError::TooLong(_))
        ));
        assert!(matches!(NodeName::new("a\0b"), Err(NodeNameError::Nul(_))));
        let mut superblock = sample();
        superblock.node_name = NodeName::new(&"é".repeat(32)).unwrap();
        assert_eq!(Superblock::decode(&superblock.encode()), Ok(superblock));
    }

    #[test]
    fn invalid_fields_are_rejected_even_with_a_valid_checksum() {
        let reseal = |edit: &dyn Fn(&mut Block)| {
            let mut block = sample().encode();
            edit(&mut block);
            KIND.seal(&mut block);
            Superblock::decode(&block)
        };
        assert!(reseal(&|b| put_u32(b, FLAGS, 0x8000)).is_err());
        assert!(reseal(&|b| put_u32(b, PLACEMENT, 3)).is_err());
        assert!(reseal(&|b| put_u64(b, SEQUENCE, 0)).is_err());
        assert!(reseal(&|b| put_u32(b, BITMAP_PAGES, 10)).is_err());
        assert!(reseal(&|b| put_u64(b, USABLE_SIZE, 4095)).is_err());
        assert!(reseal(&|b| b[NODE_NAME] = 0).is_err());
        assert!(reseal(&|b| b[NODE_NAME + 10] = b'x').is_err());
        assert!(reseal(&|b| b[NODE_NAME + 1] = 0xff).is_err());
    }

    #[test]
    fn select_prefers_the_valid_copy_with_the_highest_sequence() {
        let older = sample();
        let mut newer = sample();
        newer.sequence = 8;
        newer.state.flags = Flags::PRIMARY;
        let (older_block, newer_block) = (older.encode(), newer.encode());
        assert_eq!(select(&older_block, &newer_block), Ok(newer.clone()));
        assert_eq!(select(&newer_block, &older_block), Ok(newer.clone()));
        // Only the first 16 bytes (header with the new checksum) landed.
        let mut torn = older_block;
        torn[..16].copy_from_slice(&newer_block[..16]);
        assert_eq!(select(&older_block, &torn), Ok(older.clone()));
        let empty = [0u8; BLOCK_SIZE];
        assert_eq!(select(&empty, &empty), Err(SelectError::NoMetadata));
        assert!(matches!(
            select(&torn, &empty),
            Err(SelectError::Damaged(..))
        ));
    }

    #[test]
    fn newer_format_is_not_silently_skipped() {
        let mut future = sample().encode();
        put_u32(&mut future, 12, 2);
        KIND.seal(&mut future);
        let current = sample().encode();
        assert!(matches!(
            select(&current, &future),
            Err(SelectError::UnsupportedVersion(_))
        ));
    }

    fn arbitrary_superblock() -> impl Strategy<Value = Superblock> {
        (
            1u64..,
            any::<u64>(),
            1u64..(1 << 30),
            7u32..=65534,
            any::<bool>(),
            "[a-z0-9.-]{1,64}",
            0u32..0x100,
            any::<[u64; 6]>(),
        )
            .prop_filter_map(
                "flags must be known",
                |(sequence, device_uuid, blocks, al, internal, name, flag_bits, ids)| {
                    Some(Superblock {
                        sequence,
                        device_uuid,
                        geometry: Geometry::new(blocks * 4096, al).ok()?,
                        placement: if internal {
                            Placement::Internal
                        } else {
                            Placement::External
                        },
                        node_name: NodeName::new(&name).ok()?,
                        state: VolumeState {
                            flags: Flags::from_bits(flag_bits)?,
                            generations: GenerationIds {
                                current: ids[0],
                                bitmap: ids[1],
                                history: [ids[2], ids[3], ids[4], ids[5]],
                            },
                        },
                    })
                },
            )
    }

    proptest! {
        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..5000)) {
            let _ = Superblock::decode(&bytes);
        }

        #[test]
        fn decode_never_panics_on_sealed_garbage(body in proptest::collection::vec(any::<u8>(), 4080)) {
            let mut block = KIND.new_block();
            block[16..].copy_from_slice(&body);
            KIND.seal(&mut block);
            let _ = Superblock::decode(&block);
        }

        #[test]
        fn encode_decode_round_trips(superblock in arbitrary_superblock()) {
            prop_assert_eq!(Superblock::decode(&superblock.encode()), Ok(superblock));
        }

        #[test]
        fn any_corruption_is_detected(
            superblock in arbitrary_superblock(),
            position in 0usize..BLOCK_SIZE,
            xor in 1u8..,
        ) {
            let mut block = superblock.encode();
            block[position] ^= xor;
            prop_assert!(Superblock::decode(&block).is_err());
        }
    }
}
