//! The peer wire protocol: how two replicad nodes talk over one TCP
//! connection, as an I/O-free codec.
//!
//! Every frame is a 12-byte header (magic `HAPR`, protocol version, message
//! type, flags, payload length) followed by the payload; integers are
//! big-endian. [`Message::encode`] appends one frame to a buffer;
//! [`FrameDecoder`] takes the received bytes in chunks of any size and yields
//! one `Result<Message, WireError>` per frame. Garbage, an oversized or
//! undersized length, an unknown type, flag or version, or a malformed payload
//! gives a [`WireError`] that says what was wrong; the decoder then stops,
//! because a byte stream cannot be resynchronised after a framing error, and
//! the connection must be closed.
//!
//! The handshake (hello, version negotiation, mutual authentication) is driven
//! by [`crate::auth::Authenticator`]. The byte-level format, the handshake
//! sequence and what each message means for the durability contract are in
//! `docs/wire-protocol.md`.
//!
//! - [`message`]: the messages and their fields.
//! - [`fields`]: validated field types (names, text, block data, versions).
//! - [`digest`]: data-integrity and verify digests (crc32c, sha256, blake3).
//! - [`bitmap_chunk`]: a piece of a dirty bitmap, sent raw or run-length coded.
//! - [`decoder`]: the frame header and the streaming decoder.

use thiserror::Error;

pub mod bitmap_chunk;
mod codec;
pub mod decoder;
pub mod digest;
pub mod fields;
pub mod message;

pub use bitmap_chunk::BitmapChunk;
pub use decoder::{FrameDecoder, Header};
pub use digest::{Digest, DigestAlgorithm};
pub use fields::{Data, ResourceName, Text, VersionRange};
pub use message::{
    DiskState, Hello, Message, MessageType, NodeState, ReplicationProtocol, Role, Settings,
    StateFlags, Write,
};

/// The four bytes that start every frame: ASCII `HAPR`.
pub const MAGIC: [u8; 4] = *b"HAPR";

/// Length of the frame header.
pub const HEADER_LEN: usize = 12;

/// The protocol version this build writes, and the only one it reads.
pub const PROTOCOL_VERSION: u8 = 1;

/// The versions this build can speak, offered in [`Hello`].
pub const SUPPORTED_VERSIONS: VersionRange = VersionRange::single(PROTOCOL_VERSION);

/// Most block data one [`Write`] or `ResyncData` carries, and the longest
/// range one `ResyncRequest` or `VerifyRequest` may ask for: 1 MiB.
pub const MAX_DATA_LEN: usize = 1 << 20;

/// Longest text (refusal or disconnect reason), in bytes of UTF-8.
pub const MAX_TEXT_LEN: usize = 1024;

/// Longest name (node or resource) in a [`Hello`], in bytes of UTF-8.
pub const MAX_NAME_LEN: usize = 64;

/// Most 64-bit words one [`BitmapChunk`] covers (1 MiB of bitmap, 32 GiB of
/// data at one bit per 4 KiB block).
pub const MAX_BITMAP_WORDS: usize = MAX_DATA_LEN / 8;

/// Longest payload of any message: a [`Write`] with a 32-byte digest and
/// [`MAX_DATA_LEN`] bytes of data.
pub const MAX_PAYLOAD_LEN: usize = message::WRITE_FIXED_LEN + digest::MAX_DIGEST_LEN + MAX_DATA_LEN;

/// Longest frame: header plus [`MAX_PAYLOAD_LEN`].
pub const MAX_FRAME_LEN: usize = HEADER_LEN + MAX_PAYLOAD_LEN;

/// Why received bytes are not a valid frame. Each one ends the connection:
/// after it the byte stream can no longer be trusted to be in step.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum WireError {
    #[error(
        "not a hapair replication frame: {found:02x?} where the magic \"HAPR\" belongs (is the \
         peer a replicad of the same project, on the port of this resource?)"
    )]
    BadMagic { found: [u8; 4] },
    #[error(
        "frame of protocol version {version}; this replicad speaks versions {supported} \
         (upgrade the older node)"
    )]
    UnsupportedVersion {
        version: u8,
        supported: VersionRange,
    },
    #[error(
        "unknown message type {code:#04x} in protocol version {version} (the peer sends \
         something this replicad does not know; are both nodes the same release?)"
    )]
    UnknownType { code: u8, version: u8 },
    #[error("{message} frame has unknown flag bits {flags:#06x} (allowed: {allowed:#06x})")]
    UnknownFlags {
        message: MessageType,
        flags: u16,
        allowed: u16,
    },
    #[error(
        "{message} frame announces a {length}-byte payload; a {message} payload is {min} to \
         {max} bytes"
    )]
    BadLength {
        message: MessageType,
        length: u32,
        min: usize,
        max: usize,
    },
    #[error("malformed {message} payload: {detail}")]
    Malformed {
        message: MessageType,
        detail: String,
    },
    #[error(
        "the connection ended inside a frame ({buffered} bytes of an incomplete frame were \
         received; the peer stopped or crashed mid-message)"
    )]
    Truncated { buffered: usize },
}

impl WireError {
    pub(crate) fn malformed(message: MessageType, detail: impl Into<String>) -> Self {
        WireError::Malformed {
            message,
            detail: detail.into(),
        }
    }
}
