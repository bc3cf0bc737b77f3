//! The 4 KiB block frame shared by every metadata block.
//!
//! Superblocks, bitmap pages and activity-log transactions all start with the
//! same 16-byte header: an 8-byte ASCII magic naming the block kind, a CRC-32C
//! (Castagnoli) of the whole block computed with the checksum field taken as
//! zero, and the format version. Fields are little-endian. This module seals
//! blocks on the way out and checks them on the way in; decoding never panics,
//! whatever the bytes.

use thiserror::Error;

/// Size of every metadata block, of a bitmap block (one bit covers this much
/// data) and the alignment of everything on disk.
pub const BLOCK_SIZE: usize = 4096;

/// [`BLOCK_SIZE`] as a byte count on disk.
pub const BLOCK_BYTES: u64 = BLOCK_SIZE as u64;

/// The on-disk format version this build writes and reads.
pub const FORMAT_VERSION: u32 = 1;

/// One metadata block.
pub type Block = [u8; BLOCK_SIZE];

const MAGIC_END: usize = 8;
const CHECKSUM_OFFSET: usize = 8;
const VERSION_OFFSET: usize = 12;

/// Why a block could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DecodeError {
    #[error("block is {0} bytes long, expected {BLOCK_SIZE}")]
    WrongLength(usize),
    #[error("no {kind} magic")]
    NoMagic { kind: &'static str },
    #[error("{kind} checksum mismatch (stored {stored:#010x}, computed {computed:#010x})")]
    Checksum {
        kind: &'static str,
        stored: u32,
        computed: u32,
    },
    #[error("{kind} has format version {found}; this build reads version {FORMAT_VERSION}")]
    UnsupportedVersion { kind: &'static str, found: u32 },
    #[error(
        "{kind} belongs to other metadata (device uuid {found:#018x}, expected {expected:#018x})"
    )]
    ForeignDevice {
        kind: &'static str,
        found: u64,
        expected: u64,
    },
    #[error("{kind}: {detail}")]
    Invalid { kind: &'static str, detail: String },
}

/// The kind of a block: its magic and the name used in messages.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BlockKind {
    pub(crate) magic: &'static [u8; 8],
    pub(crate) name: &'static str,
}

impl BlockKind {
    /// A zeroed block carrying this kind's magic and the current version.
    pub(crate) fn new_block(self) -> Block {
        let mut block = [0u8; BLOCK_SIZE];
        block[..MAGIC_END].copy_from_slice(self.magic);
        put_u32(&mut block, VERSION_OFFSET, FORMAT_VERSION);
        block
    }

    /// Stores the checksum; call after the last field is written.
    pub(crate) fn seal(self, block: &mut Block) {
        let checksum = checksum(block);
        put_u32(block, CHECKSUM_OFFSET, checksum);
    }

    /// Checks length, magic, checksum and version, in that order, and returns
    /// the block for field access.
    pub(crate) fn check(self, bytes: &[u8]) -> Result<&Block, DecodeError> {
        let block: &Block = bytes
            .try_into()
            .map_err(|_| DecodeError::WrongLength(bytes.len()))?;
        if &block[..MAGIC_END] != self.magic {
            return Err(DecodeError::NoMagic { kind: self.name });
        }
        let stored = get_u32(block, CHECKSUM_OFFSET);
        let computed = checksum(block);
        if stored != computed {
            return Err(DecodeError::Checksum {
                kind: self.name,
                stored,
                computed,
            });
        }
        let found = get_u32(block, VERSION_OFFSET);
        if found != FORMAT_VERSION {
            return Err(DecodeError::UnsupportedVersion {
                kind: self.name,
                found,
            });
        }
        Ok(block)
    }

    /// An [`DecodeError::Invalid`] for this kind.
    pub(crate) fn invalid(self, detail: impl Into<String>) -> DecodeError {
        DecodeError::Invalid {
            kind: self.name,
            detail: detail.into(),
        }
    }
}

/// CRC-32C of the block with the checksum field read as zero.
fn checksum(block: &Block) -> u32 {
    let head = crc32c::crc32c(&block[..CHECKSUM_OFFSET]);
    let with_zero_field = crc32c::crc32c_append(head, &[0; 4]);
    crc32c::crc32c_append(with_zero_field, &block[VERSION_OFFSET..])
}

pub(crate) fn put_u16(block: &mut Block, offset: usize, value: u16) {
    block[offset..offset + 2].copy_from_slice(&value.to_le_bytes());
}

pub(crate) fn put_u32(block: &mut Block, offset: usize, value: u32) {
    block[offset..offset + 4].copy_from_slice(&value.to_le_bytes());
}

pub(crate) fn put_u64(block: &mut Block, offset: usize, value: u64) {
    block[offset..offset + 8].copy_from_slice(&value.to_le_bytes());
}

pub(crate) fn get_u16(block: &Block, offset: usize) -> u16 {
    let mut bytes = [0; 2];
    bytes.copy_from_slice(&block[offset..offset + 2]);
    u16::from_le_bytes(bytes)
}

pub(crate) fn get_u32(block: &Block, offset: usize) -> u32 {
    let mut bytes = [0; 4];
    bytes.copy_from_slice(&block[offset..offset + 4]);
    u32::from_le_bytes(bytes)
}

pub(crate) fn get_u64(block: &Block, offset: usize) -> u64 {
    let mut bytes = [0; 8];
    bytes.copy_from_slice(&block[offset..offset + 8]);
    u64::from_le_bytes(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEST_KIND: BlockKind = BlockKind {
        magic: b"HAPAIRTT",
        name: "test block",
    };

    fn sealed() -> Block {
        let mut block = TEST_KIND.new_block();
        put_u64(&mut block, 100, 0x0102_0304_0506_0708);
        TEST_KIND.seal(&mut block);
        block
    }

    #[test]
    fn sealed_block_checks_and_fields_are_little_endian() {
        let block = sealed();
        let checked = TEST_KIND.check(&block).unwrap();
        assert_eq!(get_u64(checked, 100), 0x0102_0304_0506_0708);
        assert_eq!(block[100], 0x08, "least significant byte first");
        assert_eq!(&block[..8], b"HAPAIRTT");
        assert_eq!(get_u32(&block, 12), FORMAT_VERSION);
    }

    #[test]
    fn checksum_is_crc32c_of_block_with_zeroed_field() {
        let block = sealed();
        let mut zeroed = block;
        zeroed[8..12].fill(0);
        assert_eq!(get_u32(&block, 8), crc32c::crc32c(&zeroed));
    }

    #[test]
    fn errors_are_reported_in_order() {
        assert_eq!(TEST_KIND.check(&[0; 10]), Err(DecodeError::WrongLength(10)));
        assert_eq!(
            TEST_KIND.check(&[0; BLOCK_SIZE]),
            Err(DecodeError::NoMagic { kind: "test block" })
        );
        let mut flipped = sealed();
        flipped[2000] ^= 1;
        assert!(matches!(
            TEST_KIND.check(&flipped),
            Err(DecodeError::Checksum { .. })
        ));
        let mut future = sealed();
        put_u32(&mut future, VERSION_OFFSET, 2);
        TEST_KIND.seal(&mut future);
        assert_eq!(
            TEST_KIND.check(&future),
            Err(DecodeError::UnsupportedVersion {
                kind: "test block",
                found: 2
            })
        );
    }
}
