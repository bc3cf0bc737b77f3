//! What the daemon answers a request with ([`Reply`], [`Extent`], [`Errno`])
//! and the encoders of the transmission-phase replies: simple replies and
//! structured reply chunks.

use std::fmt;
use std::io;

use crate::wire;

/// An error a request can fail with: the error values the NBD specification
/// allows on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Errno {
    /// `NBD_EPERM` (1): not permitted, e.g. a write to a read-only export.
    Perm,
    /// `NBD_EIO` (5): input/output error.
    Io,
    /// `NBD_ENOMEM` (12): out of memory (the specification asks servers to avoid it).
    NoMem,
    /// `NBD_EINVAL` (22): invalid request.
    Inval,
    /// `NBD_ENOSPC` (28): no space left (also for writes past the end).
    NoSpc,
    /// `NBD_EOVERFLOW` (75): value too large.
    Overflow,
    /// `NBD_ENOTSUP` (95): not supported.
    NotSup,
    /// `NBD_ESHUTDOWN` (108): the server is shutting down; the client should disconnect.
    Shutdown,
}

impl Errno {
    /// The value sent on the wire.
    pub fn code(self) -> u32 {
        match self {
            Errno::Perm => 1,
            Errno::Io => 5,
            Errno::NoMem => 12,
            Errno::Inval => 22,
            Errno::NoSpc => 28,
            Errno::Overflow => 75,
            Errno::NotSup => 95,
            Errno::Shutdown => 108,
        }
    }

    /// The error with wire value `code`, if the specification defines it.
    pub fn from_code(code: u32) -> Option<Errno> {
        [
            Errno::Perm,
            Errno::Io,
            Errno::NoMem,
            Errno::Inval,
            Errno::NoSpc,
            Errno::Overflow,
            Errno::NotSup,
            Errno::Shutdown,
        ]
        .into_iter()
        .find(|errno| errno.code() == code)
    }
}

impl fmt::Display for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = match self {
            Errno::Perm => "EPERM (operation not permitted)",
            Errno::Io => "EIO (input/output error)",
            Errno::NoMem => "ENOMEM (cannot allocate memory)",
            Errno::Inval => "EINVAL (invalid argument)",
            Errno::NoSpc => "ENOSPC (no space left on device)",
            Errno::Overflow => "EOVERFLOW (value too large)",
            Errno::NotSup => "ENOTSUP (operation not supported)",
            Errno::Shutdown => "ESHUTDOWN (server is shutting down)",
        };
        f.write_str(text)
    }
}

impl From<&io::Error> for Errno {
    /// Maps a failed `pread`/`pwrite`/`fdatasync` onto the closest NBD error,
    /// as the specification asks (quota and file-size errors become `ENOSPC`).
    fn from(error: &io::Error) -> Errno {
        match error.kind() {
            io::ErrorKind::PermissionDenied | io::ErrorKind::ReadOnlyFilesystem => Errno::Perm,
            io::ErrorKind::StorageFull
            | io::ErrorKind::QuotaExceeded
            | io::ErrorKind::FileTooLarge => Errno::NoSpc,
            io::ErrorKind::InvalidInput => Errno::Inval,
            io::ErrorKind::OutOfMemory => Errno::NoMem,
            io::ErrorKind::Unsupported => Errno::NotSup,
            _ => Errno::Io,
        }
    }
}

/// A successful answer to a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// Success without data: the answer to WRITE, FLUSH, TRIM and
    /// WRITE_ZEROES; for BLOCK_STATUS it means "the whole range is
    /// allocated data" (one extent with no flags).
    Done,
    /// The bytes a READ asked for: exactly its length.
    Data(Vec<u8>),
    /// The allocation map of a BLOCK_STATUS range, consecutive from the
    /// request's offset. The connection clips it to the requested range
    /// (so a map of a larger region is fine), drops zero-length extents,
    /// merges neighbours with equal flags, and keeps only the first extent
    /// when the client asked for one (`NBD_CMD_FLAG_REQ_ONE`). Extents that
    /// cover less than the range are allowed: the client asks again.
    Extents(Vec<Extent>),
}

/// One run of bytes with the same `base:allocation` status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Extent {
    /// Length in bytes.
    pub length: u64,
    /// `NBD_STATE_HOLE`: not allocated in the backing storage.
    pub hole: bool,
    /// `NBD_STATE_ZERO`: reads as zeroes.
    pub zero: bool,
}

impl Extent {
    /// Allocated bytes of unknown content (status 0; always a safe answer).
    pub fn data(length: u64) -> Extent {
        Extent {
            length,
            hole: false,
            zero: false,
        }
    }

    /// An unallocated run that reads as zeroes (a hole of a sparse file).
    pub fn hole(length: u64) -> Extent {
        Extent {
            length,
            hole: true,
            zero: true,
        }
    }

    /// The status flags on the wire.
    pub fn flags(&self) -> u32 {
        let mut flags = 0;
        if self.hole {
            flags |= wire::STATE_HOLE;
        }
        if self.zero {
            flags |= wire::STATE_ZERO;
        }
        flags
    }
}

/// Most block status descriptors sent in one reply; the specification lets
/// a server describe less than the requested range.
pub const MAX_EXTENTS_PER_REPLY: usize = 1 << 16;

/// The descriptors (length, flags) sent for `extents` answering a request
/// of `request_length` bytes: clipped to the request, without zero-length
/// extents, neighbours with equal flags merged, and a single one if
/// `only_one`. Empty if no extent had a length.
pub(crate) fn block_status_descriptors(
    extents: &[Extent],
    request_length: u32,
    only_one: bool,
) -> Vec<(u32, u32)> {
    let mut descriptors: Vec<(u32, u32)> = Vec::new();
    let mut remaining = request_length;
    for extent in extents {
        if remaining == 0 {
            break;
        }
        if extent.length == 0 {
            continue;
        }
        // Clipped to `remaining`, so it fits in u32.
        let length = extent.length.min(u64::from(remaining)) as u32;
        let flags = extent.flags();
        let full = only_one || descriptors.len() == MAX_EXTENTS_PER_REPLY;
        match descriptors.last_mut() {
            Some(last) if last.1 == flags => last.0 += length,
            Some(_) if full => break,
            _ => descriptors.push((length, flags)),
        }
        remaining -= length;
    }
    descriptors
}

/// A simple reply header: magic, error, cookie.
pub(crate) fn simple_reply(error: u32, cookie: u64) -> [u8; 16] {
    let mut header = [0u8; 16];
    header[0..4].copy_from_slice(&wire::SIMPLE_REPLY_MAGIC.to_be_bytes());
    header[4..8].copy_from_slice(&error.to_be_bytes());
    header[8..16].copy_from_slice(&cookie.to_be_bytes());
    header
}

/// A structured reply chunk header: magic, flags, type, cookie, payload length.
pub(crate) fn chunk_header(flags: u16, kind: u16, cookie: u64, length: u32) -> [u8; 20] {
    let mut header = [0u8; 20];
    header[0..4].copy_from_slice(&wire::STRUCTURED_REPLY_MAGIC.to_be_bytes());
    header[4..6].copy_from_slice(&flags.to_be_bytes());
    header[6..8].copy_from_slice(&kind.to_be_bytes());
    header[8..16].copy_from_slice(&cookie.to_be_bytes());
    header[16..20].copy_from_slice(&length.to_be_bytes());
    header
}

/// A final `NBD_REPLY_TYPE_ERROR` chunk carrying `message` (cut to the
/// specification's 4096-byte string limit, at a character boundary).
pub(crate) fn error_chunk(cookie: u64, errno: Errno, message: &str) -> Vec<u8> {
    let message = wire::spec_string(message);
    // At most 4096 bytes: fits both the u16 and the u32 length fields.
    let mut chunk = Vec::with_capacity(20 + 6 + message.len());
    chunk.extend_from_slice(&chunk_header(
        wire::REPLY_FLAG_DONE,
        wire::REPLY_TYPE_ERROR,
        cookie,
        6 + message.len() as u32,
    ));
    chunk.extend_from_slice(&errno.code().to_be_bytes());
    chunk.extend_from_slice(&(message.len() as u16).to_be_bytes());
    chunk.extend_from_slice(message);
    chunk
}

/// A final `NBD_REPLY_TYPE_BLOCK_STATUS` chunk for one metadata context.
pub(crate) fn block_status_chunk(
    cookie: u64,
    context_id: u32,
    descriptors: &[(u32, u32)],
) -> Vec<u8> {
    // At most MAX_EXTENTS_PER_REPLY descriptors: the length fits in u32.
    let payload_length = 4 + 8 * descriptors.len();
    let mut chunk = Vec::with_capacity(20 + payload_length);
    chunk.extend_from_slice(&chunk_header(
        wire::REPLY_FLAG_DONE,
        wire::REPLY_TYPE_BLOCK_STATUS,
        cookie,
        payload_length as u32,
    ));
    chunk.extend_from_slice(&context_id.to_be_bytes());
    for (length, flags) in descriptors {
        chunk.extend_from_slice(&length.to_be_bytes());
        chunk.extend_from_slice(&flags.to_be_bytes());
    }
    chunk
}
