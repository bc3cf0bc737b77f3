//! Payload encoding and decoding of every message, and the per-type limits
//! (payload length bounds, allowed flags) the decoder checks from the header
//! alone. The layouts are in `docs/wire-protocol.md` §4.

use bytes::Bytes;

use crate::generation::{GenerationIds, HISTORY_LEN};
use crate::superblock::NodeName;

use super::bitmap_chunk::{self, BitmapChunk};
use super::digest::{Digest, DigestAlgorithm, MAX_DIGEST_LEN};
use super::fields::{Data, ResourceName, Text, VersionRange};
use super::message::{
    DiskState, Hello, Message, MessageType, NodeState, ReplicationProtocol, Role, Settings,
    StateFlags, WRITE_FIXED_LEN, Write,
};
use super::{
    HEADER_LEN, MAGIC, MAX_BITMAP_WORDS, MAX_DATA_LEN, MAX_NAME_LEN, MAX_TEXT_LEN,
    PROTOCOL_VERSION, WireError,
};

/// Header flag of Hello: the sender authenticates.
const FLAG_AUTH: u16 = 0x0001;
/// Header flag of Write: force unit access.
const FLAG_FUA: u16 = 0x0001;
/// Header flag of Write: the sender is Diskless.
const FLAG_SENDER_DISKLESS: u16 = 0x0002;

const CHALLENGE_LEN: usize = 32;
const STATE_LEN: usize = 1 + 1 + 2 + 8 * (2 + HISTORY_LEN) + 8 + 8;
/// Version range and the two name lengths.
const HELLO_FIXED_LEN: usize = 2 + 1 + 1;

/// The smallest and largest payload a message type may have.
pub(crate) fn payload_bounds(kind: MessageType) -> (usize, usize) {
    let exactly = |length| (length, length);
    match kind {
        MessageType::Hello => (HELLO_FIXED_LEN + 2, HELLO_FIXED_LEN + 2 * MAX_NAME_LEN),
        MessageType::AuthChallenge | MessageType::AuthResponse => exactly(CHALLENGE_LEN),
        MessageType::HelloDone => exactly(1),
        MessageType::Refused | MessageType::Disconnect => (0, MAX_TEXT_LEN),
        MessageType::Settings => exactly(2),
        MessageType::State => exactly(STATE_LEN),
        MessageType::Ping | MessageType::PingAck => exactly(0),
        MessageType::Write => (
            WRITE_FIXED_LEN + 1,
            WRITE_FIXED_LEN + MAX_DIGEST_LEN + MAX_DATA_LEN,
        ),
        MessageType::RecvAck | MessageType::WriteAck | MessageType::WriteFailed => exactly(8),
        MessageType::Barrier | MessageType::BarrierAck => exactly(12),
        MessageType::OutOfSync => exactly(16),
        MessageType::BitmapChunk => (
            bitmap_chunk::FIXED_LEN + 1,
            bitmap_chunk::FIXED_LEN + 8 * MAX_BITMAP_WORDS,
        ),
        MessageType::ResyncRequest | MessageType::ResyncFailed => exactly(12),
        MessageType::ResyncData => (8 + 1, 8 + MAX_DATA_LEN),
        MessageType::VerifyRequest => exactly(13),
        MessageType::VerifyDigest => (13 + 4, 13 + MAX_DIGEST_LEN),
        MessageType::ReadRequest => exactly(8 + 8 + 4),
        MessageType::ReadData => (8 + 1, 8 + MAX_DATA_LEN),
        MessageType::ReadFailed => exactly(8),
    }
}

/// The header flag bits a message type may carry.
pub(crate) fn allowed_flags(kind: MessageType) -> u16 {
    match kind {
        MessageType::Hello => FLAG_AUTH,
        MessageType::Write => FLAG_FUA | FLAG_SENDER_DISKLESS,
        MessageType::BitmapChunk => bitmap_chunk::FLAG_LAST | bitmap_chunk::FLAG_RLE,
        _ => 0,
    }
}

impl Message {
    /// Appends this message as one frame (header and payload) to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let bulk = self.encode_head(out);
        out.extend_from_slice(bulk);
    }

    /// The frame in two parts that, sent one after the other, are the bytes
    /// of [`Self::encode`]: the header with the payload up to the block
    /// data, and the block data itself (Write, ResyncData and ReadData carry
    /// it last; empty for the other messages). The block data is moved,
    /// not copied: a sender writes both parts with one vectored write.
    pub fn into_frame_parts(self) -> (Vec<u8>, Bytes) {
        let mut head = Vec::with_capacity(HEADER_LEN + WRITE_FIXED_LEN + MAX_DIGEST_LEN);
        self.encode_head(&mut head);
        let bulk = match self {
            Message::Write(write) => write.data.into_bytes(),
            Message::ResyncData { data, .. } | Message::ReadData { data, .. } => data.into_bytes(),
            _ => Bytes::new(),
        };
        (head, bulk)
    }

    /// Appends the header and the payload but for its block data, which it
    /// returns; the header counts the block data in the payload length.
    fn encode_head(&self, out: &mut Vec<u8>) -> &[u8] {
        let start = out.len();
        out.extend_from_slice(&MAGIC);
        out.push(PROTOCOL_VERSION);
        out.push(self.message_type().code());
        out.extend_from_slice(&[0; 6]);
        let flags = self.encode_payload(out);
        let bulk = self.bulk_data();
        let payload_len = (out.len() - start - HEADER_LEN + bulk.len()) as u32;
        out[start + 6..start + 8].copy_from_slice(&flags.to_be_bytes());
        out[start + 8..start + 12].copy_from_slice(&payload_len.to_be_bytes());
        bulk
    }

    /// The block data a message ends with (empty for most).
    fn bulk_data(&self) -> &[u8] {
        match self {
            Message::Write(write) => write.data.as_slice(),
            Message::ResyncData { data, .. } | Message::ReadData { data, .. } => data.as_slice(),
            _ => &[],
        }
    }

    /// Appends the payload but for its block data ([`Self::bulk_data`])
    /// and returns the header flags.
    fn encode_payload(&self, out: &mut Vec<u8>) -> u16 {
        match self {
            Message::Hello(hello) => {
                out.push(hello.versions.min());
                out.push(hello.versions.max());
                put_name(out, hello.node.as_str());
                put_name(out, hello.resource.as_str());
                if hello.auth { FLAG_AUTH } else { 0 }
            }
            Message::AuthChallenge { challenge: bytes }
            | Message::AuthResponse { response: bytes } => {
                out.extend_from_slice(bytes);
                0
            }
            Message::HelloDone { version } => {
                out.push(*version);
                0
            }
            Message::Refused { reason } | Message::Disconnect { reason } => {
                out.extend_from_slice(reason.as_str().as_bytes());
                0
            }
            Message::Settings(settings) => {
                out.push(settings.protocol.code());
                out.push(settings.data_integrity.map_or(0, DigestAlgorithm::code));
                0
            }
            Message::State(state) => {
                put_state(out, state);
                0
            }
            Message::Ping | Message::PingAck => 0,
            Message::Write(write) => {
                put_u64s(out, &[write.id, write.offset, write.epoch]);
                put_optional_digest(out, write.integrity.as_ref());
                let fua = if write.fua { FLAG_FUA } else { 0 };
                let diskless = if write.sender_diskless {
                    FLAG_SENDER_DISKLESS
                } else {
                    0
                };
                fua | diskless
            }
            Message::RecvAck { id }
            | Message::WriteAck { id }
            | Message::WriteFailed { id }
            | Message::ReadFailed { id } => {
                put_u64s(out, &[*id]);
                0
            }
            Message::Barrier { epoch, writes } | Message::BarrierAck { epoch, writes } => {
                put_u64s(out, &[*epoch]);
                out.extend_from_slice(&writes.to_be_bytes());
                0
            }
            Message::OutOfSync { offset, length } => {
                put_u64s(out, &[*offset, *length]);
                0
            }
            Message::BitmapChunk(chunk) => chunk.encode(out),
            Message::ResyncRequest { offset, length }
            | Message::ResyncFailed { offset, length } => {
                put_u64s(out, &[*offset]);
                out.extend_from_slice(&length.to_be_bytes());
                0
            }
            Message::ResyncData { offset, .. } => {
                put_u64s(out, &[*offset]);
                0
            }
            Message::VerifyRequest {
                offset,
                length,
                algorithm,
            } => {
                put_u64s(out, &[*offset]);
                out.extend_from_slice(&length.to_be_bytes());
                out.push(algorithm.code());
                0
            }
            Message::VerifyDigest {
                offset,
                length,
                digest,
            } => {
                put_u64s(out, &[*offset]);
                out.extend_from_slice(&length.to_be_bytes());
                put_optional_digest(out, Some(digest));
                0
            }
            Message::ReadRequest { id, offset, length } => {
                put_u64s(out, &[*id, *offset]);
                out.extend_from_slice(&length.to_be_bytes());
                0
            }
            Message::ReadData { id, .. } => {
                put_u64s(out, &[*id]);
                0
            }
        }
    }

    /// Decodes the payload of a frame whose header was already checked:
    /// `flags` are allowed for `kind` and the length is within its bounds.
    /// Block data is taken as a view of `payload`, not copied.
    pub(crate) fn decode_payload(
        kind: MessageType,
        flags: u16,
        payload: &Bytes,
    ) -> Result<Message, WireError> {
        let mut reader = Reader {
            kind,
            source: payload,
            rest: payload,
        };
        let message = match kind {
            MessageType::Hello => Message::Hello(take_hello(&mut reader, flags)?),
            MessageType::AuthChallenge => Message::AuthChallenge {
                challenge: reader.array("challenge")?,
            },
            MessageType::AuthResponse => Message::AuthResponse {
                response: reader.array("response")?,
            },
            MessageType::HelloDone => Message::HelloDone {
                version: reader.u8("version")?,
            },
            MessageType::Refused => Message::Refused {
                reason: reader.text()?,
            },
            MessageType::Disconnect => Message::Disconnect {
                reason: reader.text()?,
            },
            MessageType::Settings => Message::Settings(take_settings(&mut reader)?),
            MessageType::State => Message::State(take_state(&mut reader)?),
            MessageType::Ping => Message::Ping,
            MessageType::PingAck => Message::PingAck,
            MessageType::Write => Message::Write(take_write(&mut reader, flags)?),
            MessageType::RecvAck => Message::RecvAck {
                id: reader.u64("id")?,
            },
            MessageType::WriteAck => Message::WriteAck {
                id: reader.u64("id")?,
            },
            MessageType::WriteFailed => Message::WriteFailed {
                id: reader.u64("id")?,
            },
            MessageType::Barrier => Message::Barrier {
                epoch: reader.u64("epoch")?,
                writes: reader.u32("writes")?,
            },
            MessageType::BarrierAck => Message::BarrierAck {
                epoch: reader.u64("epoch")?,
                writes: reader.u32("writes")?,
            },
            MessageType::OutOfSync => {
                let offset = reader.u64("offset")?;
                let length = reader.u64("length")?;
                reader.check_range(offset, length, u64::MAX)?;
                Message::OutOfSync { offset, length }
            }
            MessageType::BitmapChunk => {
                return BitmapChunk::decode(flags, payload).map(Message::BitmapChunk);
            }
            MessageType::ResyncRequest => {
                let (offset, length) = reader.request_range()?;
                Message::ResyncRequest { offset, length }
            }
            MessageType::ResyncFailed => {
                let (offset, length) = reader.request_range()?;
                Message::ResyncFailed { offset, length }
            }
            MessageType::ResyncData => {
                let offset = reader.u64("offset")?;
                let data = reader.data(offset)?;
                Message::ResyncData { offset, data }
            }
            MessageType::VerifyRequest => {
                let (offset, length) = reader.request_range()?;
                let code = reader.u8("digest algorithm")?;
                let algorithm = DigestAlgorithm::from_code(code)
                    .ok_or_else(|| reader.error(format!("unknown digest algorithm {code}")))?;
                Message::VerifyRequest {
                    offset,
                    length,
                    algorithm,
                }
            }
            MessageType::VerifyDigest => {
                let (offset, length) = reader.request_range()?;
                let digest = reader
                    .optional_digest()?
                    .ok_or_else(|| reader.error("digest algorithm 0 (none)"))?;
                Message::VerifyDigest {
                    offset,
                    length,
                    digest,
                }
            }
            MessageType::ReadRequest => {
                let id = reader.u64("id")?;
                let (offset, length) = reader.request_range()?;
                Message::ReadRequest { id, offset, length }
            }
            MessageType::ReadData => {
                let id = reader.u64("id")?;
                // The data is checked against the request it answers.
                let data = reader.data(0)?;
                Message::ReadData { id, data }
            }
            MessageType::ReadFailed => Message::ReadFailed {
                id: reader.u64("id")?,
            },
        };
        reader.finish()?;
        Ok(message)
    }
}

fn put_u64s(out: &mut Vec<u8>, values: &[u64]) {
    for value in values {
        out.extend_from_slice(&value.to_be_bytes());
    }
}

/// A name: one length byte, then the UTF-8 bytes.
fn put_name(out: &mut Vec<u8>, name: &str) {
    out.push(name.len() as u8);
    out.extend_from_slice(name.as_bytes());
}

/// A digest algorithm code (0 for none), then the digest bytes.
fn put_optional_digest(out: &mut Vec<u8>, digest: Option<&Digest>) {
    match digest {
        None => out.push(0),
        Some(digest) => {
            out.push(digest.algorithm().code());
            digest.put(out);
        }
    }
}

fn put_state(out: &mut Vec<u8>, state: &NodeState) {
    out.push(state.role.code());
    out.push(state.disk.code());
    out.extend_from_slice(&state.flags.bits().to_be_bytes());
    let ids = &state.generations;
    put_u64s(out, &[ids.current, ids.bitmap]);
    put_u64s(out, &ids.history);
    put_u64s(out, &[state.usable_size, state.dirty_blocks]);
}

fn take_hello(reader: &mut Reader<'_>, flags: u16) -> Result<Hello, WireError> {
    let min = reader.u8("lowest version")?;
    let max = reader.u8("highest version")?;
    let versions = VersionRange::new(min, max).ok_or_else(|| {
        reader.error(format!(
            "version range {min} to {max} is empty or includes 0"
        ))
    })?;
    let node = reader.name("node name")?;
    let node = NodeName::new(&node).map_err(|error| reader.error(error.to_string()))?;
    let resource = reader.name("resource name")?;
    let resource = ResourceName::new(&resource).map_err(|error| reader.error(error.to_string()))?;
    Ok(Hello {
        versions,
        node,
        resource,
        auth: flags & FLAG_AUTH != 0,
    })
}

fn take_settings(reader: &mut Reader<'_>) -> Result<Settings, WireError> {
    let code = reader.u8("protocol")?;
    let protocol = ReplicationProtocol::from_code(code)
        .ok_or_else(|| reader.error(format!("unknown replication protocol code {code}")))?;
    let code = reader.u8("data-integrity algorithm")?;
    let data_integrity = match code {
        0 => None,
        code => Some(
            DigestAlgorithm::from_code(code)
                .ok_or_else(|| reader.error(format!("unknown data-integrity algorithm {code}")))?,
        ),
    };
    Ok(Settings {
        protocol,
        data_integrity,
    })
}

fn take_state(reader: &mut Reader<'_>) -> Result<NodeState, WireError> {
    let code = reader.u8("role")?;
    let role = Role::from_code(code).ok_or_else(|| reader.error(format!("unknown role {code}")))?;
    let code = reader.u8("disk state")?;
    let disk = DiskState::from_code(code)
        .ok_or_else(|| reader.error(format!("unknown disk state {code}")))?;
    let bits = reader.u16("flags")?;
    let flags = StateFlags::from_bits(bits)
        .ok_or_else(|| reader.error(format!("unknown state flags {bits:#06x}")))?;
    let current = reader.u64("current id")?;
    let bitmap = reader.u64("bitmap id")?;
    let mut history = [0; HISTORY_LEN];
    for id in &mut history {
        *id = reader.u64("history id")?;
    }
    Ok(NodeState {
        role,
        disk,
        flags,
        generations: GenerationIds {
            current,
            bitmap,
            history,
        },
        usable_size: reader.u64("usable size")?,
        dirty_blocks: reader.u64("dirty block count")?,
    })
}

fn take_write(reader: &mut Reader<'_>, flags: u16) -> Result<Write, WireError> {
    let id = reader.u64("id")?;
    let offset = reader.u64("offset")?;
    let epoch = reader.u64("epoch")?;
    let integrity = reader.optional_digest()?;
    let data = reader.data(offset)?;
    Ok(Write {
        id,
        offset,
        epoch,
        fua: flags & FLAG_FUA != 0,
        sender_diskless: flags & FLAG_SENDER_DISKLESS != 0,
        integrity,
        data,
    })
}

/// Reads fields off the front of a payload; every shortfall is an error
/// naming the message and the field.
struct Reader<'a> {
    kind: MessageType,
    /// The whole payload, which block data is a view of.
    source: &'a Bytes,
    /// What is left of `source` to read.
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    fn error(&self, detail: impl Into<String>) -> WireError {
        WireError::malformed(self.kind, detail)
    }

    fn take(&mut self, length: usize, field: &str) -> Result<&'a [u8], WireError> {
        let (taken, rest) = self.rest.split_at_checked(length).ok_or_else(|| {
            self.error(format!(
                "the payload ends inside the {field} ({length} bytes needed, {} left)",
                self.rest.len()
            ))
        })?;
        self.rest = rest;
        Ok(taken)
    }

    fn array<const N: usize>(&mut self, field: &str) -> Result<[u8; N], WireError> {
        let bytes = self.take(N, field)?;
        Ok(bytes.try_into().expect("take returned N bytes"))
    }

    fn u8(&mut self, field: &str) -> Result<u8, WireError> {
        Ok(self.array::<1>(field)?[0])
    }

    fn u16(&mut self, field: &str) -> Result<u16, WireError> {
        self.array(field).map(u16::from_be_bytes)
    }

    fn u32(&mut self, field: &str) -> Result<u32, WireError> {
        self.array(field).map(u32::from_be_bytes)
    }

    fn u64(&mut self, field: &str) -> Result<u64, WireError> {
        self.array(field).map(u64::from_be_bytes)
    }

    /// A length-prefixed UTF-8 name.
    fn name(&mut self, field: &str) -> Result<String, WireError> {
        let length = usize::from(self.u8(field)?);
        let bytes = self.take(length, field)?;
        String::from_utf8(bytes.to_vec())
            .map_err(|_| self.error(format!("the {field} is not valid UTF-8")))
    }

    /// The rest of the payload as UTF-8 text.
    fn text(&mut self) -> Result<Text, WireError> {
        let bytes = std::mem::take(&mut self.rest);
        let text =
            std::str::from_utf8(bytes).map_err(|_| self.error("the reason is not valid UTF-8"))?;
        Ok(Text::new(text))
    }

    /// An algorithm code (0 for none) and, unless none, that digest.
    fn optional_digest(&mut self) -> Result<Option<Digest>, WireError> {
        let code = self.u8("digest algorithm")?;
        if code == 0 {
            return Ok(None);
        }
        let algorithm = DigestAlgorithm::from_code(code)
            .ok_or_else(|| self.error(format!("unknown digest algorithm {code}")))?;
        let bytes = self.take(algorithm.digest_len(), "digest")?;
        Ok(Digest::from_bytes(algorithm, bytes))
    }

    /// The rest of the payload as block data written at `offset`.
    fn data(&mut self, offset: u64) -> Result<Data, WireError> {
        let bytes = std::mem::take(&mut self.rest);
        self.check_range(offset, bytes.len() as u64, MAX_DATA_LEN as u64)?;
        Data::new(self.source.slice_ref(bytes)).map_err(|error| self.error(error.to_string()))
    }

    /// Offset and length of a request, the length 1 to [`MAX_DATA_LEN`].
    fn request_range(&mut self) -> Result<(u64, u32), WireError> {
        let offset = self.u64("offset")?;
        let length = self.u32("length")?;
        self.check_range(offset, u64::from(length), MAX_DATA_LEN as u64)?;
        Ok((offset, length))
    }

    /// `length` is 1 to `max`, and `offset + length` fits a u64.
    fn check_range(&self, offset: u64, length: u64, max: u64) -> Result<(), WireError> {
        if length == 0 || length > max {
            return Err(self.error(format!("length {length}, must be 1 to {max}")));
        }
        if offset.checked_add(length).is_none() {
            return Err(self.error(format!(
                "range at offset {offset} of {length} bytes passes 2^64-1"
            )));
        }
        Ok(())
    }

    fn finish(&self) -> Result<(), WireError> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err(self.error(format!(
                "{} unexpected bytes after the last field",
                self.rest.len()
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The table of docs/wire-protocol.md §4: code, name, allowed flags and
    /// payload bounds. Change both together.
    #[test]
    fn the_documented_message_table_holds() {
        let documented: [(u8, &str, u16, usize, usize); 26] = [
            (0x01, "Hello", 0x0001, 6, 132),
            (0x02, "AuthChallenge", 0, 32, 32),
            (0x03, "AuthResponse", 0, 32, 32),
            (0x04, "HelloDone", 0, 1, 1),
            (0x05, "Refused", 0, 0, 1024),
            (0x10, "Settings", 0, 2, 2),
            (0x11, "State", 0, 68, 68),
            (0x12, "Ping", 0, 0, 0),
            (0x13, "PingAck", 0, 0, 0),
            (0x14, "Disconnect", 0, 0, 1024),
            (0x20, "Write", 0x0003, 26, 1_048_633),
            (0x21, "RecvAck", 0, 8, 8),
            (0x22, "WriteAck", 0, 8, 8),
            (0x23, "WriteFailed", 0, 8, 8),
            (0x24, "Barrier", 0, 12, 12),
            (0x25, "BarrierAck", 0, 12, 12),
            (0x26, "OutOfSync", 0, 16, 16),
            (0x30, "BitmapChunk", 0x0003, 13, 1_048_588),
            (0x31, "ResyncRequest", 0, 12, 12),
            (0x32, "ResyncData", 0, 9, 1_048_584),
            (0x33, "ResyncFailed", 0, 12, 12),
            (0x34, "VerifyRequest", 0, 13, 13),
            (0x35, "VerifyDigest", 0, 17, 45),
            (0x40, "ReadRequest", 0, 20, 20),
            (0x41, "ReadData", 0, 9, 1_048_584),
            (0x42, "ReadFailed", 0, 8, 8),
        ];
        for (kind, (code, name, flags, min, max)) in MessageType::ALL.into_iter().zip(documented) {
            assert_eq!((kind.code(), kind.name()), (code, name));
            assert_eq!(allowed_flags(kind), flags, "{name} flags");
            assert_eq!(payload_bounds(kind), (min, max), "{name} bounds");
        }
        assert_eq!(crate::wire::MAX_PAYLOAD_LEN, 1_048_633);
        assert_eq!(crate::wire::MAX_FRAME_LEN, 1_048_645);
    }
}
