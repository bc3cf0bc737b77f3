//! The frame header and the streaming decoder that turns received bytes,
//! in chunks of any size, into messages.

use super::codec::{allowed_flags, payload_bounds};
use super::message::{Message, MessageType};
use super::{HEADER_LEN, MAGIC, SUPPORTED_VERSIONS, WireError};

/// A checked frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub version: u8,
    pub message_type: MessageType,
    pub flags: u16,
    pub payload_len: u32,
}

impl Header {
    /// Parses a header and checks, in this order: magic, version, message
    /// type, flags, and that the payload length is within the bounds of the
    /// type (so a bad length is refused before any payload is buffered).
    pub fn parse(bytes: &[u8; HEADER_LEN]) -> Result<Header, WireError> {
        let [m0, m1, m2, m3, version, code, f0, f1, l0, l1, l2, l3] = *bytes;
        if [m0, m1, m2, m3] != MAGIC {
            return Err(WireError::BadMagic {
                found: [m0, m1, m2, m3],
            });
        }
        if !SUPPORTED_VERSIONS.contains(version) {
            return Err(WireError::UnsupportedVersion {
                version,
                supported: SUPPORTED_VERSIONS,
            });
        }
        let message_type =
            MessageType::from_code(code).ok_or(WireError::UnknownType { code, version })?;
        let flags = u16::from_be_bytes([f0, f1]);
        let allowed = allowed_flags(message_type);
        if flags & !allowed != 0 {
            return Err(WireError::UnknownFlags {
                message: message_type,
                flags,
                allowed,
            });
        }
        let payload_len = u32::from_be_bytes([l0, l1, l2, l3]);
        let (min, max) = payload_bounds(message_type);
        if !(min..=max).contains(&(payload_len as usize)) {
            return Err(WireError::BadLength {
                message: message_type,
                length: payload_len,
                min,
                max,
            });
        }
        Ok(Header {
            version,
            message_type,
            flags,
            payload_len,
        })
    }

    /// Header plus payload.
    pub fn frame_len(&self) -> usize {
        HEADER_LEN + self.payload_len as usize
    }
}

/// Decodes the frames of one connection from bytes received in chunks of
/// any size.
///
/// Feed it with [`push`](Self::push), or receive straight into it with
/// [`receive_buffer`](Self::receive_buffer) and
/// [`received`](Self::received) (no copy), then take messages by iterating
/// until it yields `None` (it needs more bytes). Between feeds it keeps at
/// most one incomplete frame, less than [`super::MAX_FRAME_LEN`] bytes; a
/// feed adds its bytes until they are decoded, so feed what one read
/// returned and drain before the next read.
///
/// After the first error it yields nothing more and drops what it is given:
/// the byte stream is out of step and the connection must be closed. At end
/// of stream call [`finish`](Self::finish) to learn whether the peer stopped
/// inside a frame.
#[derive(Debug, Default)]
pub struct FrameDecoder {
    /// Received bytes are `buffer[start..end]`; the rest is room.
    buffer: Vec<u8>,
    /// Bytes of `buffer` before this index are decoded.
    start: usize,
    end: usize,
    failed: bool,
}

impl FrameDecoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds received bytes. Ignored after an error.
    pub fn push(&mut self, bytes: &[u8]) {
        if self.failed {
            return;
        }
        let room = self.receive_buffer(bytes.len());
        room[..bytes.len()].copy_from_slice(bytes);
        self.received(bytes.len());
    }

    /// Room for at least `at_least` more received bytes, to read into
    /// directly; then say how many arrived with [`Self::received`].
    pub fn receive_buffer(&mut self, at_least: usize) -> &mut [u8] {
        if self.start > 0 {
            self.buffer.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.buffer.len() < self.end + at_least {
            self.buffer.resize(self.end + at_least, 0);
        }
        &mut self.buffer[self.end..]
    }

    /// `count` bytes were received into [`Self::receive_buffer`]. Ignored
    /// after an error.
    pub fn received(&mut self, count: usize) {
        if self.failed {
            return;
        }
        assert!(
            self.end + count <= self.buffer.len(),
            "received {count} bytes into a receive buffer of {}",
            self.buffer.len() - self.end
        );
        self.end += count;
    }

    /// Bytes received and not yet decoded.
    pub fn buffered_len(&self) -> usize {
        self.end - self.start
    }

    /// True once a frame was refused.
    pub fn has_failed(&self) -> bool {
        self.failed
    }

    /// Checks the end of the stream: an error if the peer stopped inside a
    /// frame. Call after the last message was taken. (After a failure the
    /// buffer is empty, and the failure was already reported.)
    pub fn finish(&self) -> Result<(), WireError> {
        match self.buffered_len() {
            0 => Ok(()),
            buffered => Err(WireError::Truncated { buffered }),
        }
    }

    fn fail(&mut self, error: WireError) -> Option<Result<Message, WireError>> {
        self.failed = true;
        self.buffer = Vec::new();
        self.start = 0;
        self.end = 0;
        Some(Err(error))
    }
}

impl Iterator for FrameDecoder {
    type Item = Result<Message, WireError>;

    /// The next complete message, an error, or `None` if more bytes are
    /// needed (or the decoder failed before).
    fn next(&mut self) -> Option<Result<Message, WireError>> {
        if self.failed {
            return None;
        }
        let pending = &self.buffer[self.start..self.end];
        let header_bytes: &[u8; HEADER_LEN] = pending.get(..HEADER_LEN)?.try_into().ok()?;
        let header = match Header::parse(header_bytes) {
            Ok(header) => header,
            Err(error) => return self.fail(error),
        };
        if pending.len() < header.frame_len() {
            return None;
        }
        let payload = &pending[HEADER_LEN..header.frame_len()];
        match Message::decode_payload(header.message_type, header.flags, payload) {
            Ok(message) => {
                self.start += header.frame_len();
                if self.start == self.end {
                    self.start = 0;
                    self.end = 0;
                }
                Some(Ok(message))
            }
            Err(error) => self.fail(error),
        }
    }
}
