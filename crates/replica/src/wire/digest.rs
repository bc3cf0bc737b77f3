//! Digests of block data: the optional integrity digest of a write
//! (drbd.conf `data-integrity-alg`) and the digests compared by online verify
//! (`verify-alg`). Pure functions; the algorithms are named as in drbd.conf.

use std::fmt;

use sha2::{Digest as _, Sha256};

/// Longest digest on the wire (sha256 and blake3: 32 bytes).
pub const MAX_DIGEST_LEN: usize = 32;

/// A digest algorithm, with its code on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DigestAlgorithm {
    /// CRC-32C (Castagnoli): cheap, catches transmission errors, not forgery.
    Crc32c,
    /// SHA-256.
    Sha256,
    /// BLAKE3 with 32 bytes of output.
    Blake3,
}

impl DigestAlgorithm {
    pub const ALL: [DigestAlgorithm; 3] = [Self::Crc32c, Self::Sha256, Self::Blake3];

    /// The code on the wire (0 means "no digest" where a digest is optional).
    pub const fn code(self) -> u8 {
        match self {
            Self::Crc32c => 1,
            Self::Sha256 => 2,
            Self::Blake3 => 3,
        }
    }

    pub const fn from_code(code: u8) -> Option<Self> {
        match code {
            1 => Some(Self::Crc32c),
            2 => Some(Self::Sha256),
            3 => Some(Self::Blake3),
            _ => None,
        }
    }

    /// The name used in drbd.conf and in the config: `crc32c`, `sha256`,
    /// `blake3`.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Crc32c => "crc32c",
            Self::Sha256 => "sha256",
            Self::Blake3 => "blake3",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|alg| alg.name() == name)
    }

    /// Length of this algorithm's digest in bytes.
    pub const fn digest_len(self) -> usize {
        match self {
            Self::Crc32c => 4,
            Self::Sha256 | Self::Blake3 => 32,
        }
    }

    /// The digest of `data`.
    pub fn compute(self, data: &[u8]) -> Digest {
        match self {
            Self::Crc32c => Digest::Crc32c(crc32c::crc32c(data)),
            Self::Sha256 => Digest::Sha256(Sha256::digest(data).into()),
            Self::Blake3 => Digest::Blake3(*blake3::hash(data).as_bytes()),
        }
    }
}

impl fmt::Display for DigestAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A digest, tagged with its algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Digest {
    Crc32c(u32),
    Sha256([u8; 32]),
    Blake3([u8; 32]),
}

impl Digest {
    pub fn algorithm(&self) -> DigestAlgorithm {
        match self {
            Self::Crc32c(_) => DigestAlgorithm::Crc32c,
            Self::Sha256(_) => DigestAlgorithm::Sha256,
            Self::Blake3(_) => DigestAlgorithm::Blake3,
        }
    }

    /// True if `data` has this digest.
    pub fn matches(&self, data: &[u8]) -> bool {
        self.algorithm().compute(data) == *self
    }

    /// Appends the digest bytes as on the wire (a CRC big-endian).
    pub(crate) fn put(&self, out: &mut Vec<u8>) {
        match self {
            Self::Crc32c(crc) => out.extend_from_slice(&crc.to_be_bytes()),
            Self::Sha256(bytes) | Self::Blake3(bytes) => out.extend_from_slice(bytes),
        }
    }

    /// The digest of `algorithm` held in `bytes`, which must be exactly
    /// [`DigestAlgorithm::digest_len`] long.
    pub(crate) fn from_bytes(algorithm: DigestAlgorithm, bytes: &[u8]) -> Option<Self> {
        match algorithm {
            DigestAlgorithm::Crc32c => {
                Some(Self::Crc32c(u32::from_be_bytes(bytes.try_into().ok()?)))
            }
            DigestAlgorithm::Sha256 => Some(Self::Sha256(bytes.try_into().ok()?)),
            DigestAlgorithm::Blake3 => Some(Self::Blake3(bytes.try_into().ok()?)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Known answers for "abc": SHA-256 from FIPS 180-2 appendix B.1; CRC-32C
    /// from a bit-by-bit implementation of the Castagnoli polynomial; BLAKE3
    /// from Debian's `b3sum`.
    #[test]
    fn known_answers_for_abc() {
        assert_eq!(
            DigestAlgorithm::Crc32c.compute(b"abc"),
            Digest::Crc32c(0x364b_3fb7)
        );
        let Digest::Sha256(sha) = DigestAlgorithm::Sha256.compute(b"abc") else {
            panic!("sha256 gave another kind of digest");
        };
        assert_eq!(
            hex(&sha),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        let Digest::Blake3(blake) = DigestAlgorithm::Blake3.compute(b"abc") else {
            panic!("blake3 gave another kind of digest");
        };
        assert_eq!(
            hex(&blake),
            "6437b3ac38465133ffb63b75273a8db548c558465d79db03fd359c6cd5bd9d85"
        );
    }

    #[test]
    fn names_codes_and_lengths_agree() {
        for alg in DigestAlgorithm::ALL {
            assert_eq!(DigestAlgorithm::from_name(alg.name()), Some(alg));
            assert_eq!(DigestAlgorithm::from_code(alg.code()), Some(alg));
            let digest = alg.compute(b"block");
            let mut bytes = Vec::new();
            digest.put(&mut bytes);
            assert_eq!(bytes.len(), alg.digest_len());
            assert_eq!(Digest::from_bytes(alg, &bytes), Some(digest));
            assert!(digest.matches(b"block"));
            assert!(!digest.matches(b"blocK"));
        }
        assert_eq!(DigestAlgorithm::from_code(0), None);
        assert_eq!(DigestAlgorithm::from_name("md5"), None);
    }

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|byte| format!("{byte:02x}")).collect()
    }
}
