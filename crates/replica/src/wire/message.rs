//! The messages of the peer protocol and their fields. The byte layout of
//! each is in `docs/wire-protocol.md` §4; the codec is in `codec.rs`.

use std::fmt;

use crate::generation::GenerationIds;
use crate::superblock::NodeName;

use super::bitmap_chunk::BitmapChunk;
use super::digest::{Digest, DigestAlgorithm};
use super::fields::{Data, ResourceName, Text, VersionRange};

/// Bytes of a Write payload before the digest: id, offset, epoch, digest
/// algorithm.
pub(crate) const WRITE_FIXED_LEN: usize = 8 + 8 + 8 + 1;

/// The type of a message: its code in the frame header and its name in
/// errors and logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum MessageType {
    Hello = 0x01,
    AuthChallenge = 0x02,
    AuthResponse = 0x03,
    HelloDone = 0x04,
    Refused = 0x05,
    Settings = 0x10,
    State = 0x11,
    Ping = 0x12,
    PingAck = 0x13,
    Disconnect = 0x14,
    Write = 0x20,
    RecvAck = 0x21,
    WriteAck = 0x22,
    WriteFailed = 0x23,
    Barrier = 0x24,
    BarrierAck = 0x25,
    OutOfSync = 0x26,
    BitmapChunk = 0x30,
    ResyncRequest = 0x31,
    ResyncData = 0x32,
    ResyncFailed = 0x33,
    VerifyRequest = 0x34,
    VerifyDigest = 0x35,
    ReadRequest = 0x40,
    ReadData = 0x41,
    ReadFailed = 0x42,
}

impl MessageType {
    /// Every message type, in code order.
    pub const ALL: [MessageType; 26] = [
        Self::Hello,
        Self::AuthChallenge,
        Self::AuthResponse,
        Self::HelloDone,
        Self::Refused,
        Self::Settings,
        Self::State,
        Self::Ping,
        Self::PingAck,
        Self::Disconnect,
        Self::Write,
        Self::RecvAck,
        Self::WriteAck,
        Self::WriteFailed,
        Self::Barrier,
        Self::BarrierAck,
        Self::OutOfSync,
        Self::BitmapChunk,
        Self::ResyncRequest,
        Self::ResyncData,
        Self::ResyncFailed,
        Self::VerifyRequest,
        Self::VerifyDigest,
        Self::ReadRequest,
        Self::ReadData,
        Self::ReadFailed,
    ];

    pub const fn code(self) -> u8 {
        self as u8
    }

    pub fn from_code(code: u8) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.code() == code)
    }

    /// True for the messages of the handshake, which are valid only before
    /// it finished.
    pub const fn is_handshake(self) -> bool {
        matches!(
            self,
            Self::Hello
                | Self::AuthChallenge
                | Self::AuthResponse
                | Self::HelloDone
                | Self::Refused
        )
    }

    pub const fn name(self) -> &'static str {
        match self {
            Self::Hello => "Hello",
            Self::AuthChallenge => "AuthChallenge",
            Self::AuthResponse => "AuthResponse",
            Self::HelloDone => "HelloDone",
            Self::Refused => "Refused",
            Self::Settings => "Settings",
            Self::State => "State",
            Self::Ping => "Ping",
            Self::PingAck => "PingAck",
            Self::Disconnect => "Disconnect",
            Self::Write => "Write",
            Self::RecvAck => "RecvAck",
            Self::WriteAck => "WriteAck",
            Self::WriteFailed => "WriteFailed",
            Self::Barrier => "Barrier",
            Self::BarrierAck => "BarrierAck",
            Self::OutOfSync => "OutOfSync",
            Self::BitmapChunk => "BitmapChunk",
            Self::ResyncRequest => "ResyncRequest",
            Self::ResyncData => "ResyncData",
            Self::ResyncFailed => "ResyncFailed",
            Self::VerifyRequest => "VerifyRequest",
            Self::VerifyDigest => "VerifyDigest",
            Self::ReadRequest => "ReadRequest",
            Self::ReadData => "ReadData",
            Self::ReadFailed => "ReadFailed",
        }
    }
}

impl fmt::Display for MessageType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One message of the peer protocol.
///
/// Offsets and lengths are in bytes of the replicated device. Where a message
/// names a range (`offset` plus a length or data), the range must not pass
/// `u64::MAX`, and request lengths are 1 to [`super::MAX_DATA_LEN`]; the
/// decoder refuses frames that break these rules. Checking ranges against the
/// device size is the receiver's job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// First message on a connection, from both sides.
    Hello(Hello),
    /// A random challenge the peer must answer (sent after Hello when a
    /// shared secret is configured).
    AuthChallenge {
        challenge: [u8; 32],
    },
    /// HMAC-SHA256 answer to the peer's challenge; see [`crate::auth`].
    AuthResponse {
        response: [u8; 32],
    },
    /// The sender accepted the peer (and its authentication) and agrees on
    /// `version` for the rest of the connection.
    HelloDone {
        version: u8,
    },
    /// The sender refuses the connection and closes it.
    Refused {
        reason: Text,
    },
    /// Replication settings, sent once after the handshake; both sides must
    /// agree on them.
    Settings(Settings),
    /// The sender's role, disk state and generation ids; sent after Settings
    /// and again whenever they change.
    State(NodeState),
    /// Keep-alive; answered by PingAck.
    Ping,
    PingAck,
    /// The sender closes the connection on purpose.
    Disconnect {
        reason: Text,
    },
    /// Mirrored application write.
    Write(Write),
    /// Protocol B: the peer received write `id`.
    RecvAck {
        id: u64,
    },
    /// Protocol C: write `id` is on the peer's disk (durable if it was FUA).
    WriteAck {
        id: u64,
    },
    /// The peer could not write `id`; the range is out of sync on the peer.
    WriteFailed {
        id: u64,
    },
    /// Closes epoch `epoch`, which held `writes` writes.
    Barrier {
        epoch: u64,
        writes: u32,
    },
    /// Every write of epoch `epoch` is durable on the peer.
    BarrierAck {
        epoch: u64,
        writes: u32,
    },
    /// The sender marked this range out of sync (verify mismatch, or a write
    /// not mirrored).
    OutOfSync {
        offset: u64,
        length: u64,
    },
    /// Part of the sender's dirty bitmap.
    BitmapChunk(BitmapChunk),
    /// Sync target asks the source for a range.
    ResyncRequest {
        offset: u64,
        length: u32,
    },
    /// Sync source's answer: the data of a requested range.
    ResyncData {
        offset: u64,
        data: Data,
    },
    /// Sync source could not read a requested range; it stays out of sync.
    ResyncFailed {
        offset: u64,
        length: u32,
    },
    /// Verify source asks for the digest of a range.
    VerifyRequest {
        offset: u64,
        length: u32,
        algorithm: DigestAlgorithm,
    },
    /// The digest of a range requested by VerifyRequest.
    VerifyDigest {
        offset: u64,
        length: u32,
        digest: Digest,
    },
    /// A Diskless node asks its peer for the data of a range, to answer a
    /// read of its own client.
    ReadRequest {
        /// Chosen by the sender, unique among its reads not yet answered.
        id: u64,
        offset: u64,
        length: u32,
    },
    /// The data of read `id` (exactly the length asked for).
    ReadData {
        id: u64,
        data: Data,
    },
    /// The peer could not read `id` (its own disk failed, or it has none).
    ReadFailed {
        id: u64,
    },
}

impl Message {
    pub fn message_type(&self) -> MessageType {
        match self {
            Self::Hello(_) => MessageType::Hello,
            Self::AuthChallenge { .. } => MessageType::AuthChallenge,
            Self::AuthResponse { .. } => MessageType::AuthResponse,
            Self::HelloDone { .. } => MessageType::HelloDone,
            Self::Refused { .. } => MessageType::Refused,
            Self::Settings(_) => MessageType::Settings,
            Self::State(_) => MessageType::State,
            Self::Ping => MessageType::Ping,
            Self::PingAck => MessageType::PingAck,
            Self::Disconnect { .. } => MessageType::Disconnect,
            Self::Write(_) => MessageType::Write,
            Self::RecvAck { .. } => MessageType::RecvAck,
            Self::WriteAck { .. } => MessageType::WriteAck,
            Self::WriteFailed { .. } => MessageType::WriteFailed,
            Self::Barrier { .. } => MessageType::Barrier,
            Self::BarrierAck { .. } => MessageType::BarrierAck,
            Self::OutOfSync { .. } => MessageType::OutOfSync,
            Self::BitmapChunk(_) => MessageType::BitmapChunk,
            Self::ResyncRequest { .. } => MessageType::ResyncRequest,
            Self::ResyncData { .. } => MessageType::ResyncData,
            Self::ResyncFailed { .. } => MessageType::ResyncFailed,
            Self::VerifyRequest { .. } => MessageType::VerifyRequest,
            Self::VerifyDigest { .. } => MessageType::VerifyDigest,
            Self::ReadRequest { .. } => MessageType::ReadRequest,
            Self::ReadData { .. } => MessageType::ReadData,
            Self::ReadFailed { .. } => MessageType::ReadFailed,
        }
    }
}

/// The opening message of each side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hello {
    /// The protocol versions the sender speaks.
    pub versions: VersionRange,
    /// The sender's node name, as in the config.
    pub node: NodeName,
    /// The resource this connection replicates.
    pub resource: ResourceName,
    /// The sender has a shared secret and sends an AuthChallenge next.
    pub auth: bool,
}

/// Replication protocol (drbd.conf `protocol`): when the Primary may answer
/// a write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReplicationProtocol {
    /// Local write done and the data handed to the connection.
    A,
    /// Local write done and the peer received the data (RecvAck).
    B,
    /// Local write done and the peer wrote the data (WriteAck).
    C,
}

impl ReplicationProtocol {
    pub const fn code(self) -> u8 {
        match self {
            Self::A => 1,
            Self::B => 2,
            Self::C => 3,
        }
    }

    pub const fn from_code(code: u8) -> Option<Self> {
        match code {
            1 => Some(Self::A),
            2 => Some(Self::B),
            3 => Some(Self::C),
            _ => None,
        }
    }
}

impl fmt::Display for ReplicationProtocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::A => "A",
            Self::B => "B",
            Self::C => "C",
        })
    }
}

/// Settings both sides must agree on; a node refuses a peer whose settings
/// differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Settings {
    pub protocol: ReplicationProtocol,
    /// `data-integrity-alg`: every Write carries a digest of this algorithm.
    pub data_integrity: Option<DigestAlgorithm>,
}

/// The role of a node (DRBD's names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    Secondary,
    Primary,
}

impl Role {
    pub const fn code(self) -> u8 {
        match self {
            Self::Secondary => 1,
            Self::Primary => 2,
        }
    }

    pub const fn from_code(code: u8) -> Option<Self> {
        match code {
            1 => Some(Self::Secondary),
            2 => Some(Self::Primary),
            _ => None,
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Secondary => "Secondary",
            Self::Primary => "Primary",
        })
    }
}

/// The state of a node's local disk (DRBD's names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DiskState {
    Diskless,
    Inconsistent,
    Outdated,
    Consistent,
    UpToDate,
}

impl DiskState {
    pub const fn code(self) -> u8 {
        match self {
            Self::Diskless => 1,
            Self::Inconsistent => 2,
            Self::Outdated => 3,
            Self::Consistent => 4,
            Self::UpToDate => 5,
        }
    }

    pub const fn from_code(code: u8) -> Option<Self> {
        match code {
            1 => Some(Self::Diskless),
            2 => Some(Self::Inconsistent),
            3 => Some(Self::Outdated),
            4 => Some(Self::Consistent),
            5 => Some(Self::UpToDate),
            _ => None,
        }
    }
}

impl fmt::Display for DiskState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Diskless => "Diskless",
            Self::Inconsistent => "Inconsistent",
            Self::Outdated => "Outdated",
            Self::Consistent => "Consistent",
            Self::UpToDate => "UpToDate",
        })
    }
}

/// Flags in a State message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct StateFlags(u16);

impl StateFlags {
    /// The sender crashed while Primary and has not resynced since: with
    /// protocol A or B it may hold writes the peer never got.
    pub const CRASHED_PRIMARY: StateFlags = StateFlags(0x0001);
    /// The operator ran `connect --discard-my-data` on the sender: it yields
    /// in a split brain.
    pub const DISCARD_MY_DATA: StateFlags = StateFlags(0x0002);

    const KNOWN_BITS: u16 = 0x0003;

    pub const fn empty() -> Self {
        Self(0)
    }

    pub const fn bits(self) -> u16 {
        self.0
    }

    /// The flags for `bits`, or `None` if an unknown bit is set.
    pub const fn from_bits(bits: u16) -> Option<Self> {
        if bits & !Self::KNOWN_BITS == 0 {
            Some(Self(bits))
        } else {
            None
        }
    }

    pub const fn contains(self, other: StateFlags) -> bool {
        self.0 & other.0 == other.0
    }

    pub fn insert(&mut self, other: StateFlags) {
        self.0 |= other.0;
    }
}

impl std::ops::BitOr for StateFlags {
    type Output = StateFlags;

    fn bitor(self, other: StateFlags) -> StateFlags {
        StateFlags(self.0 | other.0)
    }
}

/// What a node tells its peer about itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct NodeState {
    pub role: Role,
    pub disk: DiskState,
    pub flags: StateFlags,
    /// Generation ids, compared on connect to pick the sync direction.
    pub generations: GenerationIds,
    /// Usable size of the sender's volume in bytes.
    pub usable_size: u64,
    /// Blocks set in the sender's dirty bitmap (the amount to resync if it
    /// becomes sync source).
    pub dirty_blocks: u64,
}

/// A mirrored application write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Write {
    /// Chosen by the sender, unique among its writes not yet acknowledged;
    /// acks name it.
    pub id: u64,
    pub offset: u64,
    /// The epoch the write belongs to; see `Barrier`.
    pub epoch: u64,
    /// Force unit access: the peer makes this write durable before acking.
    pub fua: bool,
    /// The sender is Diskless: the receiver holds the only copy. It marks
    /// the range out of sync with the sender (so a re-attached sender
    /// resyncs it) and answers with WriteAck, whatever the protocol.
    pub sender_diskless: bool,
    /// Digest of `data` when `data-integrity-alg` is set.
    pub integrity: Option<Digest>,
    pub data: Data,
}

impl Write {
    /// True if there is no integrity digest, or `data` matches it. A
    /// mismatch means the data was damaged on the way: do not write it.
    pub fn integrity_holds(&self) -> bool {
        self.integrity
            .is_none_or(|digest| digest.matches(self.data.as_slice()))
    }
}
