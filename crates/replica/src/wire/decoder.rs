//! The frame header and the streaming decoder that turns received bytes,
//! in chunks of any size, into messages.

use bytes::BytesMut;

use super::codec::{allowed_flags, payload_bounds};
use super::message::{Message, MessageType};
use super::{HEADER_LEN, MAGIC, MAX_FRAME_LEN, SUPPORTED_VERSIONS, WireError};

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
/// Feed it with [`push`](Self::push), or receive straight into it: read
/// into the spare capacity of [`receive_buffer`](Self::receive_buffer)
/// (tokio's `read_buf` does that). Then take messages by iterating until it
/// yields `None` (it needs more bytes). Block data in a message is a view
/// of the received bytes, not a copy; the memory of a frame is freed when
/// the last view of it is dropped. Between feeds it keeps at most one
/// incomplete frame, less than [`super::MAX_FRAME_LEN`] bytes; a feed adds
/// its bytes until they are decoded, so feed what one read returned and
/// drain before the next read.
///
/// After the first error it yields nothing more and drops what it is given:
/// the byte stream is out of step and the connection must be closed. At end
/// of stream call [`finish`](Self::finish) to learn whether the peer stopped
/// inside a frame.
#[derive(Debug, Default)]
pub struct FrameDecoder {
    /// Received bytes not yet decoded; the spare capacity is room.
    buffer: BytesMut,
    failed: bool,
}

/// The least room [`FrameDecoder::receive_buffer`] offers to a read.
const LEAST_RECEIVE_ROOM: usize = 64 * 1024;
/// Room taken at once when there is less than [`LEAST_RECEIVE_ROOM`]: a few
/// of the largest frames, so that few frames are cut by the end of an
/// allocation (whose received part is copied into the next one).
const RECEIVE_RESERVE: usize = 4 * MAX_FRAME_LEN;

impl FrameDecoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds received bytes. Ignored after an error.
    pub fn push(&mut self, bytes: &[u8]) {
        if !self.failed {
            self.buffer.extend_from_slice(bytes);
        }
    }

    /// The buffer to receive into: append received bytes to it (its spare
    /// capacity is at least 64 KiB). Bytes appended after an error are
    /// dropped.
    pub fn receive_buffer(&mut self) -> &mut BytesMut {
        if self.failed {
            self.buffer = BytesMut::new();
        }
        if self.buffer.capacity() - self.buffer.len() < LEAST_RECEIVE_ROOM {
            self.buffer.reserve(RECEIVE_RESERVE);
        }
        &mut self.buffer
    }

    /// Bytes received and not yet decoded.
    pub fn buffered_len(&self) -> usize {
        if self.failed { 0 } else { self.buffer.len() }
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
        self.buffer = BytesMut::new();
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
        let header_bytes: &[u8; HEADER_LEN] = self.buffer.get(..HEADER_LEN)?.try_into().ok()?;
        let header = match Header::parse(header_bytes) {
            Ok(header) => header,
            Err(error) => return self.fail(error),
        };
        if self.buffer.len() < header.frame_len() {
            return None;
        }
        let payload = self
            .buffer
            .split_to(header.frame_len())
            .freeze()
            .slice(HEADER_LEN..);
        match Message::decode_payload(header.message_type, header.flags, &payload) {
            Ok(message) => Some(Ok(message)),
            Err(error) => self.fail(error),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{Data, Write};

    /// The block data of a decoded Write lies in the decoder's own receive
    /// buffer: a view, not a copy.
    #[test]
    fn block_data_is_a_view_of_the_received_bytes() {
        let write = Write {
            id: 9,
            offset: 4096,
            epoch: 1,
            fua: false,
            sender_diskless: false,
            integrity: None,
            data: Data::new(vec![0x5a; 256 * 1024]).unwrap(),
        };
        let mut frame = Vec::new();
        Message::Write(write.clone()).encode(&mut frame);
        let mut decoder = FrameDecoder::new();
        let buffer = decoder.receive_buffer();
        buffer.extend_from_slice(&frame);
        let received = buffer.as_ptr_range();
        let Some(Ok(Message::Write(decoded))) = decoder.next() else {
            panic!("the frame did not decode to a Write");
        };
        assert_eq!(decoded, write);
        let data = decoded.data.as_slice().as_ptr_range();
        assert!(received.start <= data.start && data.end == received.end);
    }
}
