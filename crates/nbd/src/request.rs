//! Requests handed to the daemon: already validated, never outside the
//! export, never of length zero.

use std::fmt;
use std::ops::Range;

use bytes::Bytes;

/// Names one request of one connection until the daemon replies to it.
///
/// Unique per connection, unlike the client's cookie (which clients merely
/// SHOULD keep unique among requests in flight).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RequestId(pub(crate) u64);

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "request #{}", self.0)
    }
}

/// One request for the daemon to carry out and answer with
/// [`ServerConnection::reply`](crate::ServerConnection::reply).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// What to pass back to `reply`.
    pub id: RequestId,
    /// The client's handle, for logs; replies carry it automatically.
    pub cookie: u64,
    /// The work to do.
    pub command: Command,
}

/// The work a request asks for.
///
/// Every range-carrying command has `length >= 1` and
/// `offset + length <= export size`; requests that break this, or use a
/// flag that does not apply, never reach the daemon (the connection
/// answers them itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Read `length` bytes at `offset`; answer with
    /// [`Reply::Data`](crate::Reply::Data) of exactly `length` bytes.
    Read { offset: u64, length: u32 },
    /// Write `data` at `offset`; with `fua`, the data must be durable before
    /// the reply.
    Write { offset: u64, data: Bytes, fua: bool },
    /// Make every write already answered durable before the reply.
    Flush,
    /// The client no longer needs this range; discarding it is optional.
    Trim { offset: u64, length: u32, fua: bool },
    /// Make the range read as zeroes; with `no_hole`, keep it allocated.
    WriteZeroes {
        offset: u64,
        length: u32,
        fua: bool,
        no_hole: bool,
    },
    /// Report the allocation status (`base:allocation`) of the range; answer
    /// [`Reply::Done`](crate::Reply::Done) for "all allocated data" or
    /// [`Reply::Extents`](crate::Reply::Extents).
    BlockStatus { offset: u64, length: u32 },
}

impl Command {
    /// The bytes of the export the command touches (`None` for FLUSH).
    pub fn range(&self) -> Option<Range<u64>> {
        let (offset, length) = match self {
            Command::Read { offset, length }
            | Command::Trim { offset, length, .. }
            | Command::WriteZeroes { offset, length, .. }
            | Command::BlockStatus { offset, length } => (*offset, u64::from(*length)),
            Command::Write { offset, data, .. } => (*offset, data.len() as u64),
            Command::Flush => return None,
        };
        Some(offset..offset.saturating_add(length))
    }

    /// Whether the command changes the export's contents.
    pub fn is_write(&self) -> bool {
        matches!(
            self,
            Command::Write { .. } | Command::Trim { .. } | Command::WriteZeroes { .. }
        )
    }

    /// The command's name in the specification, for messages.
    pub fn name(&self) -> &'static str {
        match self {
            Command::Read { .. } => "NBD_CMD_READ",
            Command::Write { .. } => "NBD_CMD_WRITE",
            Command::Flush => "NBD_CMD_FLUSH",
            Command::Trim { .. } => "NBD_CMD_TRIM",
            Command::WriteZeroes { .. } => "NBD_CMD_WRITE_ZEROES",
            Command::BlockStatus { .. } => "NBD_CMD_BLOCK_STATUS",
        }
    }
}
