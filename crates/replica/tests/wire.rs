//! The peer wire codec: hand-written byte vectors for the header and several
//! messages, every kind of bad input and its error, and property tests
//! (round trips of every message type, chunked decoding equal to whole
//! decoding, arbitrary and mutated bytes never panicking and never growing
//! the buffer past one frame).

use std::collections::BTreeSet;

use proptest::prelude::*;
use replica::generation::GenerationIds;
use replica::superblock::NodeName;
use replica::wire::{
    BitmapChunk, Data, Digest, DigestAlgorithm, DiskState, FrameDecoder, HEADER_LEN, Header, Hello,
    MAX_BITMAP_WORDS, MAX_DATA_LEN, MAX_FRAME_LEN, MAX_PAYLOAD_LEN, Message, MessageType,
    NodeState, ReplicationProtocol, ResourceName, Role, SUPPORTED_VERSIONS, Settings, StateFlags,
    Text, VersionRange, WireError, Write,
};

fn encode(message: &Message) -> Vec<u8> {
    let mut out = Vec::new();
    message.encode(&mut out);
    out
}

/// Decodes `bytes` pushed at once: every result until the decoder wants
/// more.
fn decode_all(bytes: &[u8]) -> Vec<Result<Message, WireError>> {
    let mut decoder = FrameDecoder::new();
    decoder.push(bytes);
    decoder.by_ref().collect()
}

/// Decodes exactly one message from `bytes`, which must hold one frame.
fn decode_one(bytes: &[u8]) -> Result<Message, WireError> {
    let mut decoder = FrameDecoder::new();
    decoder.push(bytes);
    let result = decoder.next().expect("one whole frame");
    if result.is_ok() {
        assert_eq!(decoder.buffered_len(), 0, "the frame was consumed whole");
        assert_eq!(decoder.next(), None);
    }
    result
}

/// A frame with a hand-made header.
fn frame(code: u8, flags: u16, payload: &[u8]) -> Vec<u8> {
    let mut bytes = b"HAPR\x01".to_vec();
    bytes.push(code);
    bytes.extend_from_slice(&flags.to_be_bytes());
    bytes.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    bytes.extend_from_slice(payload);
    bytes
}

/// Checks that `message` encodes to exactly `bytes` and back.
fn assert_vector(message: Message, bytes: &[u8]) {
    assert_eq!(encode(&message), bytes, "encoding of {message:?}");
    assert_eq!(decode_one(bytes), Ok(message));
}

fn node(name: &str) -> NodeName {
    NodeName::new(name).unwrap()
}

fn data(bytes: &[u8]) -> Data {
    Data::new(bytes.to_vec()).unwrap()
}

// ===== hand-written vectors =====

#[test]
fn header_layout_of_a_ping() {
    let bytes = encode(&Message::Ping);
    assert_eq!(
        bytes,
        [
            0x48, 0x41, 0x50, 0x52, 0x01, 0x12, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00
        ]
    );
    assert_eq!(
        Header::parse(bytes[..HEADER_LEN].try_into().unwrap()),
        Ok(Header {
            version: 1,
            message_type: MessageType::Ping,
            flags: 0,
            payload_len: 0,
        })
    );
}

#[test]
fn write_ack_vector() {
    assert_vector(
        Message::WriteAck {
            id: 0x0102_0304_0506_0708,
        },
        &[
            b'H', b'A', b'P', b'R', 1, 0x22, 0, 0, 0, 0, 0, 8, //
            1, 2, 3, 4, 5, 6, 7, 8,
        ],
    );
}

#[test]
fn hello_vector() {
    assert_vector(
        Message::Hello(Hello {
            versions: VersionRange::new(1, 1).unwrap(),
            node: node("ha1"),
            resource: ResourceName::new("r0").unwrap(),
            auth: true,
        }),
        &[
            b'H', b'A', b'P', b'R', 1, 0x01, 0, 1, 0, 0, 0, 9, //
            1, 1, 3, b'h', b'a', b'1', 2, b'r', b'0',
        ],
    );
}

#[test]
fn write_vector_with_fua_and_crc32c() {
    assert_vector(
        Message::Write(Write {
            id: 5,
            offset: 4096,
            epoch: 2,
            fua: true,
            sender_diskless: false,
            integrity: Some(DigestAlgorithm::Crc32c.compute(b"abc")),
            data: data(b"abc"),
        }),
        &[
            b'H', b'A', b'P', b'R', 1, 0x20, 0, 1, 0, 0, 0, 32, //
            0, 0, 0, 0, 0, 0, 0, 5, // id
            0, 0, 0, 0, 0, 0, 0x10, 0, // offset
            0, 0, 0, 0, 0, 0, 0, 2, // epoch
            1, 0x36, 0x4b, 0x3f, 0xb7, // crc32c of "abc"
            b'a', b'b', b'c',
        ],
    );
}

#[test]
fn write_vector_from_a_diskless_sender() {
    assert_vector(
        Message::Write(Write {
            id: 1,
            offset: 0,
            epoch: 1,
            fua: false,
            sender_diskless: true,
            integrity: None,
            data: data(b"z"),
        }),
        &[
            b'H', b'A', b'P', b'R', 1, 0x20, 0, 2, 0, 0, 0, 26, //
            0, 0, 0, 0, 0, 0, 0, 1, // id
            0, 0, 0, 0, 0, 0, 0, 0, // offset
            0, 0, 0, 0, 0, 0, 0, 1, // epoch
            0, // no digest
            b'z',
        ],
    );
}

#[test]
fn read_request_data_and_failed_vectors() {
    assert_vector(
        Message::ReadRequest {
            id: 7,
            offset: 8192,
            length: 4096,
        },
        &[
            b'H', b'A', b'P', b'R', 1, 0x40, 0, 0, 0, 0, 0, 20, //
            0, 0, 0, 0, 0, 0, 0, 7, // id
            0, 0, 0, 0, 0, 0, 0x20, 0, // offset
            0, 0, 0x10, 0, // length
        ],
    );
    assert_vector(
        Message::ReadData {
            id: 7,
            data: data(b"ok"),
        },
        &[
            b'H', b'A', b'P', b'R', 1, 0x41, 0, 0, 0, 0, 0, 10, //
            0, 0, 0, 0, 0, 0, 0, 7, // id
            b'o', b'k',
        ],
    );
    assert_vector(
        Message::ReadFailed { id: 7 },
        &[
            b'H', b'A', b'P', b'R', 1, 0x42, 0, 0, 0, 0, 0, 8, //
            0, 0, 0, 0, 0, 0, 0, 7,
        ],
    );
}

#[test]
fn barrier_vector() {
    assert_vector(
        Message::Barrier {
            epoch: 7,
            writes: 3,
        },
        &[
            b'H', b'A', b'P', b'R', 1, 0x24, 0, 0, 0, 0, 0, 12, //
            0, 0, 0, 0, 0, 0, 0, 7, 0, 0, 0, 3,
        ],
    );
}

#[test]
fn state_vector() {
    let mut payload = vec![2, 5, 0, 1];
    for value in [0x1111u64, 0, 0x2222, 0, 0, 0, 1 << 30, 3] {
        payload.extend_from_slice(&value.to_be_bytes());
    }
    assert_eq!(payload.len(), 68);
    assert_vector(
        Message::State(NodeState {
            role: Role::Primary,
            disk: DiskState::UpToDate,
            flags: StateFlags::CRASHED_PRIMARY,
            generations: GenerationIds {
                current: 0x1111,
                bitmap: 0,
                history: [0x2222, 0, 0, 0],
            },
            usable_size: 1 << 30,
            dirty_blocks: 3,
        }),
        &frame(0x11, 0, &payload),
    );
}

#[test]
fn bitmap_chunk_vectors_raw_and_run_length() {
    // Blocks 1024..1027 dirty, 1027..1088 clean, 1088..1152 dirty: the
    // runs 0, 3, 61, 64 take 4 bytes instead of 16 raw.
    let sparse = BitmapChunk::new(16, vec![0b111, u64::MAX], true).unwrap();
    assert_eq!(sparse.blocks(), 1024..1152);
    assert_vector(
        Message::BitmapChunk(sparse),
        &frame(
            0x30,
            0x0003,
            &[0, 0, 0, 0, 0, 0, 0, 16, 0, 0, 0, 2, 0, 3, 61, 64],
        ),
    );
    // Alternating bits: 65 runs, longer than 8 raw bytes.
    let dense = BitmapChunk::new(0, vec![0x5555_5555_5555_5555], false).unwrap();
    let mut payload = vec![0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
    payload.extend_from_slice(&[0x55; 8]);
    assert_vector(Message::BitmapChunk(dense), &frame(0x30, 0, &payload));
}

#[test]
fn verify_digest_and_refused_vectors() {
    assert_vector(
        Message::VerifyDigest {
            offset: 0,
            length: 4096,
            digest: Digest::Crc32c(0xdead_beef),
        },
        &frame(
            0x35,
            0,
            &[
                0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10, 0, 1, 0xde, 0xad, 0xbe, 0xef,
            ],
        ),
    );
    assert_vector(
        Message::Refused {
            reason: Text::new("no"),
        },
        &frame(0x05, 0, b"no"),
    );
}

// ===== bad input =====

#[test]
fn garbage_is_refused_by_its_magic() {
    let error = decode_one(b"GET / HTTP/1.1\r\n\r\n").unwrap_err();
    assert_eq!(error, WireError::BadMagic { found: *b"GET " });
    assert!(error.to_string().contains("HAPR"), "{error}");
}

#[test]
fn unknown_version_type_and_flags_are_refused() {
    let mut future = frame(0x12, 0, &[]);
    future[4] = 2;
    assert_eq!(
        decode_one(&future),
        Err(WireError::UnsupportedVersion {
            version: 2,
            supported: SUPPORTED_VERSIONS
        })
    );
    assert_eq!(
        decode_one(&frame(0x7f, 0, &[])),
        Err(WireError::UnknownType {
            code: 0x7f,
            version: 1
        })
    );
    assert_eq!(
        decode_one(&frame(0x12, 0x8000, &[])),
        Err(WireError::UnknownFlags {
            message: MessageType::Ping,
            flags: 0x8000,
            allowed: 0
        })
    );
    assert!(matches!(
        decode_one(&frame(0x20, 0x0004, &[0; 26])),
        Err(WireError::UnknownFlags {
            message: MessageType::Write,
            ..
        })
    ));
}

#[test]
fn lengths_outside_the_bounds_of_the_type_are_refused_from_the_header() {
    assert_eq!(
        decode_one(&frame(0x12, 0, &[0])),
        Err(WireError::BadLength {
            message: MessageType::Ping,
            length: 1,
            min: 0,
            max: 0
        })
    );
    // Only the header of an enormous Write: refused before any payload.
    let mut huge = frame(0x20, 0, &[]);
    huge[8..12].copy_from_slice(&u32::MAX.to_be_bytes());
    let mut decoder = FrameDecoder::new();
    decoder.push(&huge);
    assert_eq!(
        decoder.next(),
        Some(Err(WireError::BadLength {
            message: MessageType::Write,
            length: u32::MAX,
            min: 26,
            max: MAX_PAYLOAD_LEN
        }))
    );
    assert_eq!(decoder.buffered_len(), 0);
}

#[test]
fn malformed_payloads_are_refused_with_the_reason() {
    let cases: Vec<(Vec<u8>, MessageType, &str)> = vec![
        (
            frame(0x01, 0, &[2, 1, 1, b'a', 1, b'r']),
            MessageType::Hello,
            "version range 2 to 1",
        ),
        (
            frame(0x01, 0, &[1, 1, 1, 0xff, 1, b'r']),
            MessageType::Hello,
            "not valid UTF-8",
        ),
        (
            frame(0x01, 0, &[1, 1, 1, b'a', 1, b'r', 0]),
            MessageType::Hello,
            "1 unexpected bytes",
        ),
        (
            frame(0x01, 0, &[1, 1, 9, b'a', 1, b'r']),
            MessageType::Hello,
            "ends inside the node name",
        ),
        (
            frame(0x01, 0, &[1, 1, 1, 0, 1, b'r']),
            MessageType::Hello,
            "NUL",
        ),
        (
            frame(0x10, 0, &[4, 0]),
            MessageType::Settings,
            "unknown replication protocol",
        ),
        (
            frame(0x11, 0, &[9; 68]),
            MessageType::State,
            "unknown role 9",
        ),
        (
            frame(0x20, 0, &[[0; 24].as_slice(), &[9, 1]].concat()),
            MessageType::Write,
            "unknown digest algorithm 9",
        ),
        (
            frame(0x20, 0, &[[0; 24].as_slice(), &[1, 0, 0, 0, 0]].concat()),
            MessageType::Write,
            "length 0",
        ),
        (
            frame(0x32, 0, &[u64::MAX.to_be_bytes().as_slice(), &[1]].concat()),
            MessageType::ResyncData,
            "passes 2^64-1",
        ),
        (
            frame(0x31, 0, &[0; 12]),
            MessageType::ResyncRequest,
            "length 0",
        ),
        (
            frame(
                0x31,
                0,
                &[[0; 8].as_slice(), &(MAX_DATA_LEN as u32 + 1).to_be_bytes()].concat(),
            ),
            MessageType::ResyncRequest,
            "must be 1 to 1048576",
        ),
        (
            frame(0x34, 0, &[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10, 0, 0]),
            MessageType::VerifyRequest,
            "unknown digest algorithm 0",
        ),
        (
            frame(
                0x35,
                0,
                &[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10, 0, 0, 1, 2, 3, 4],
            ),
            MessageType::VerifyDigest,
            "algorithm 0 (none)",
        ),
        (
            frame(
                0x30,
                0,
                &[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 1, 2, 3, 4, 5, 6, 7, 8],
            ),
            MessageType::BitmapChunk,
            "2 raw words need 16 bytes",
        ),
        (
            frame(0x30, 0x0002, &[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 63]),
            MessageType::BitmapChunk,
            "cover 63 bits",
        ),
        (
            frame(0x05, 0, &[0xc3]),
            MessageType::Refused,
            "not valid UTF-8",
        ),
    ];
    for (bytes, message, fragment) in cases {
        match decode_one(&bytes) {
            Err(WireError::Malformed {
                message: found,
                detail,
            }) => {
                assert_eq!(found, message, "{bytes:02x?}");
                assert!(
                    detail.contains(fragment),
                    "{message}: {detail:?} lacks {fragment:?}"
                );
            }
            other => panic!("{bytes:02x?} gave {other:?}, expected a malformed {message}"),
        }
    }
}

#[test]
fn a_frame_cut_short_is_reported_at_end_of_stream() {
    let bytes = encode(&Message::WriteAck { id: 1 });
    let mut decoder = FrameDecoder::new();
    decoder.push(&bytes[..15]);
    assert_eq!(decoder.next(), None, "waits for the rest");
    assert_eq!(decoder.finish(), Err(WireError::Truncated { buffered: 15 }));
    decoder.push(&bytes[15..]);
    assert_eq!(decoder.next(), Some(Ok(Message::WriteAck { id: 1 })));
    assert_eq!(decoder.finish(), Ok(()));
}

#[test]
fn after_an_error_the_decoder_stops_and_drops_input() {
    let mut stream = encode(&Message::Ping);
    stream.extend_from_slice(b"garbage!!!!!!");
    stream.extend(encode(&Message::PingAck));
    let results = decode_all(&stream);
    assert_eq!(results.len(), 2);
    assert_eq!(results[0], Ok(Message::Ping));
    assert!(matches!(results[1], Err(WireError::BadMagic { .. })));

    let mut decoder = FrameDecoder::new();
    decoder.push(b"nonsense and more nonsense");
    assert!(matches!(decoder.next(), Some(Err(_))));
    assert!(decoder.has_failed());
    decoder.push(&encode(&Message::Ping));
    assert_eq!(decoder.buffered_len(), 0);
    assert_eq!(decoder.next(), None);
}

#[test]
fn garbage_streamed_in_large_chunks_keeps_nothing() {
    let mut decoder = FrameDecoder::new();
    let chunk = vec![0xa5; 64 * 1024];
    for _ in 0..128 {
        decoder.push(&chunk);
        while decoder.next().is_some() {}
        assert_eq!(decoder.buffered_len(), 0);
    }
    assert!(decoder.has_failed());
}

// ===== limits =====

#[test]
fn the_largest_write_fills_the_largest_frame() {
    let write = Message::Write(Write {
        id: u64::MAX,
        offset: 0,
        epoch: 1,
        fua: false,
        sender_diskless: false,
        integrity: Some(DigestAlgorithm::Sha256.compute(&[1; MAX_DATA_LEN])),
        data: Data::new(vec![1; MAX_DATA_LEN]).unwrap(),
    });
    let bytes = encode(&write);
    assert_eq!(bytes.len(), MAX_FRAME_LEN);
    let mut decoder = FrameDecoder::new();
    for piece in bytes.chunks(64 * 1024) {
        decoder.push(piece);
        if let Some(result) = decoder.next() {
            assert_eq!(result, Ok(write.clone()));
        }
        assert!(decoder.buffered_len() <= MAX_FRAME_LEN);
    }
    assert_eq!(decoder.buffered_len(), 0);
}

#[test]
fn largest_bitmap_chunks_round_trip_and_clean_ones_are_tiny() {
    let clean = Message::BitmapChunk(BitmapChunk::new(0, vec![0; MAX_BITMAP_WORDS], true).unwrap());
    let bytes = encode(&clean);
    // Header, offset, count, and one varint of 2^23 (4 bytes).
    assert_eq!(bytes.len(), HEADER_LEN + 12 + 4);
    assert_eq!(decode_one(&bytes), Ok(clean));

    let noisy_words: Vec<u64> = (0..MAX_BITMAP_WORDS as u64)
        .map(|index| index.wrapping_mul(0x9e37_79b9_7f4a_7c15))
        .collect();
    let noisy = Message::BitmapChunk(BitmapChunk::new(3, noisy_words, false).unwrap());
    let bytes = encode(&noisy);
    assert_eq!(bytes.len(), HEADER_LEN + 12 + 8 * MAX_BITMAP_WORDS);
    assert_eq!(decode_one(&bytes), Ok(noisy));
}

#[test]
fn write_integrity_detects_damaged_data() {
    for algorithm in DigestAlgorithm::ALL {
        let mut write = Write {
            id: 1,
            offset: 0,
            epoch: 1,
            fua: false,
            sender_diskless: false,
            integrity: Some(algorithm.compute(b"block data")),
            data: data(b"block data"),
        };
        assert!(write.integrity_holds());
        write.data = data(b"block dat4");
        assert!(!write.integrity_holds(), "{algorithm} missed the damage");
    }
}

// ===== property tests =====

fn name_strategy() -> impl Strategy<Value = String> {
    "[a-z][a-z0-9.-]{0,63}"
}

fn text_strategy() -> impl Strategy<Value = Text> {
    prop_oneof![
        ".{0,40}".prop_map(|text| Text::new(&text)),
        ".{1000,1100}".prop_map(|text| Text::new(&text)),
    ]
}

fn data_strategy() -> impl Strategy<Value = Data> {
    prop::collection::vec(any::<u8>(), 1..3000).prop_map(|bytes| Data::new(bytes).unwrap())
}

fn digest_strategy() -> impl Strategy<Value = Digest> {
    prop_oneof![
        any::<u32>().prop_map(Digest::Crc32c),
        any::<[u8; 32]>().prop_map(Digest::Sha256),
        any::<[u8; 32]>().prop_map(Digest::Blake3),
    ]
}

fn algorithm_strategy() -> impl Strategy<Value = DigestAlgorithm> {
    prop::sample::select(DigestAlgorithm::ALL.to_vec())
}

/// An offset such that `offset + length` fits a u64.
fn offset_for(offset: u64, length: u64) -> u64 {
    offset.min(u64::MAX - length)
}

fn request_strategy() -> impl Strategy<Value = (u64, u32)> {
    (any::<u64>(), 1..=MAX_DATA_LEN as u32)
        .prop_map(|(offset, length)| (offset_for(offset, u64::from(length)), length))
}

fn hello_strategy() -> impl Strategy<Value = Hello> {
    (
        1u8..=255,
        0u8..=255,
        name_strategy(),
        name_strategy(),
        any::<bool>(),
    )
        .prop_map(|(min, spread, node, resource, auth)| Hello {
            versions: VersionRange::new(min, min.saturating_add(spread)).unwrap(),
            node: NodeName::new(&node).unwrap(),
            resource: ResourceName::new(&resource).unwrap(),
            auth,
        })
}

fn state_strategy() -> impl Strategy<Value = NodeState> {
    (
        prop::sample::select(vec![Role::Primary, Role::Secondary]),
        prop::sample::select(vec![
            DiskState::Diskless,
            DiskState::Inconsistent,
            DiskState::Outdated,
            DiskState::Consistent,
            DiskState::UpToDate,
        ]),
        0u16..4,
        any::<[u64; 6]>(),
        any::<(u64, u64)>(),
    )
        .prop_map(
            |(role, disk, flags, ids, (usable_size, dirty_blocks))| NodeState {
                role,
                disk,
                flags: StateFlags::from_bits(flags).unwrap(),
                generations: GenerationIds {
                    current: ids[0],
                    bitmap: ids[1],
                    history: [ids[2], ids[3], ids[4], ids[5]],
                },
                usable_size,
                dirty_blocks,
            },
        )
}

fn write_strategy() -> impl Strategy<Value = Write> {
    (
        any::<(u64, u64, u64, bool, bool)>(),
        prop::option::of(digest_strategy()),
        data_strategy(),
    )
        .prop_map(
            |((id, offset, epoch, fua, sender_diskless), integrity, data)| Write {
                id,
                offset: offset_for(offset, data.len() as u64),
                epoch,
                fua,
                sender_diskless,
                integrity,
                data,
            },
        )
}

fn bitmap_chunk_strategy() -> impl Strategy<Value = BitmapChunk> {
    let word = prop_oneof![Just(0u64), Just(u64::MAX), any::<u64>(), Just(1u64 << 63)];
    (
        any::<u64>(),
        prop::collection::vec(word, 1..300),
        any::<bool>(),
    )
        .prop_map(|(offset, words, last)| {
            let offset = offset.min(u64::MAX / 64 - words.len() as u64);
            BitmapChunk::new(offset, words, last).unwrap()
        })
}

fn message_strategy() -> impl Strategy<Value = Message> {
    prop_oneof![
        hello_strategy().prop_map(Message::Hello),
        any::<[u8; 32]>().prop_map(|challenge| Message::AuthChallenge { challenge }),
        any::<[u8; 32]>().prop_map(|response| Message::AuthResponse { response }),
        any::<u8>().prop_map(|version| Message::HelloDone { version }),
        text_strategy().prop_map(|reason| Message::Refused { reason }),
        (
            prop::sample::select(vec![
                ReplicationProtocol::A,
                ReplicationProtocol::B,
                ReplicationProtocol::C
            ]),
            prop::option::of(algorithm_strategy()),
        )
            .prop_map(|(protocol, data_integrity)| Message::Settings(Settings {
                protocol,
                data_integrity
            })),
        state_strategy().prop_map(Message::State),
        Just(Message::Ping),
        Just(Message::PingAck),
        text_strategy().prop_map(|reason| Message::Disconnect { reason }),
        write_strategy().prop_map(Message::Write),
        any::<u64>().prop_map(|id| Message::RecvAck { id }),
        any::<u64>().prop_map(|id| Message::WriteAck { id }),
        any::<u64>().prop_map(|id| Message::WriteFailed { id }),
        any::<(u64, u32)>().prop_map(|(epoch, writes)| Message::Barrier { epoch, writes }),
        any::<(u64, u32)>().prop_map(|(epoch, writes)| Message::BarrierAck { epoch, writes }),
        (any::<u64>(), 1..=u64::MAX).prop_map(|(offset, length)| Message::OutOfSync {
            offset: offset_for(offset, length),
            length
        }),
        bitmap_chunk_strategy().prop_map(Message::BitmapChunk),
        request_strategy().prop_map(|(offset, length)| Message::ResyncRequest { offset, length }),
        (any::<u64>(), data_strategy()).prop_map(|(offset, data)| Message::ResyncData {
            offset: offset_for(offset, data.len() as u64),
            data
        }),
        request_strategy().prop_map(|(offset, length)| Message::ResyncFailed { offset, length }),
        (request_strategy(), algorithm_strategy()).prop_map(|((offset, length), algorithm)| {
            Message::VerifyRequest {
                offset,
                length,
                algorithm,
            }
        }),
        (request_strategy(), digest_strategy()).prop_map(|((offset, length), digest)| {
            Message::VerifyDigest {
                offset,
                length,
                digest,
            }
        }),
        (any::<u64>(), request_strategy())
            .prop_map(|(id, (offset, length))| Message::ReadRequest { id, offset, length }),
        (any::<u64>(), data_strategy()).prop_map(|(id, data)| Message::ReadData { id, data }),
        any::<u64>().prop_map(|id| Message::ReadFailed { id }),
    ]
}

#[test]
fn the_strategy_produces_every_message_type() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let strategy = message_strategy();
    let mut runner = TestRunner::deterministic();
    let mut seen = BTreeSet::new();
    for _ in 0..5000 {
        let message = strategy.new_tree(&mut runner).unwrap().current();
        seen.insert(message.message_type().code());
    }
    let all: BTreeSet<u8> = MessageType::ALL.iter().map(|kind| kind.code()).collect();
    assert_eq!(seen, all);
}

/// Splits `bytes` at the given cut points (taken modulo the length).
fn split_at_points(bytes: &[u8], cuts: &[usize]) -> Vec<Vec<u8>> {
    let mut points: Vec<usize> = cuts.iter().map(|cut| cut % (bytes.len() + 1)).collect();
    points.push(0);
    points.push(bytes.len());
    points.sort_unstable();
    points
        .windows(2)
        .map(|pair| bytes[pair[0]..pair[1]].to_vec())
        .collect()
}

/// Pushes `chunks` one by one, draining after each; checks the buffer
/// bound on the way.
fn decode_chunks(chunks: &[Vec<u8>]) -> (Vec<Result<Message, WireError>>, FrameDecoder) {
    let mut decoder = FrameDecoder::new();
    let mut results = Vec::new();
    for chunk in chunks {
        decoder.push(chunk);
        results.extend(decoder.by_ref());
        assert!(decoder.buffered_len() < MAX_FRAME_LEN);
        if decoder.has_failed() {
            assert_eq!(decoder.buffered_len(), 0);
        }
    }
    (results, decoder)
}

proptest! {
    #[test]
    fn every_message_round_trips(message in message_strategy()) {
        let bytes = encode(&message);
        let header = Header::parse(bytes[..HEADER_LEN].try_into().unwrap()).unwrap();
        prop_assert_eq!(header.message_type, message.message_type());
        prop_assert_eq!(header.frame_len(), bytes.len());
        prop_assert_eq!(decode_one(&bytes), Ok(message));
    }

    #[test]
    fn decoding_in_pieces_equals_decoding_at_once(
        messages in prop::collection::vec(message_strategy(), 1..8),
        cuts in prop::collection::vec(any::<usize>(), 0..20),
    ) {
        let mut stream = Vec::new();
        for message in &messages {
            message.encode(&mut stream);
        }
        let whole: Vec<Message> = decode_all(&stream).into_iter().map(Result::unwrap).collect();
        prop_assert_eq!(&whole, &messages);

        let (pieces, decoder) = decode_chunks(&split_at_points(&stream, &cuts));
        prop_assert_eq!(pieces, whole.iter().cloned().map(Ok).collect::<Vec<_>>());
        prop_assert_eq!(decoder.finish(), Ok(()));

        let single_bytes: Vec<Vec<u8>> = stream.iter().map(|byte| vec![*byte]).collect();
        let (bytewise, _) = decode_chunks(&single_bytes);
        prop_assert_eq!(bytewise, whole.into_iter().map(Ok).collect::<Vec<_>>());
    }

    #[test]
    fn frame_parts_sent_one_after_the_other_are_the_encoded_frame(message in message_strategy()) {
        let encoded = encode(&message);
        let bulk_carrier = matches!(
            message,
            Message::Write(_) | Message::ResyncData { .. } | Message::ReadData { .. }
        );
        let (mut head, bulk) = message.into_frame_parts();
        prop_assert_eq!(bulk.is_empty(), !bulk_carrier, "only block data travels apart");
        head.extend_from_slice(&bulk);
        prop_assert_eq!(head, encoded);
    }

    #[test]
    fn receiving_into_the_decoder_equals_pushing(
        messages in prop::collection::vec(message_strategy(), 1..8),
        reads in prop::collection::vec(1usize..70_000, 1..40),
    ) {
        let mut stream = Vec::new();
        for message in &messages {
            message.encode(&mut stream);
        }
        // Reads of the given sizes in turn (the last one repeated) until
        // the stream is in, each appended to the decoder's receive buffer.
        let mut decoder = FrameDecoder::new();
        let mut decoded = Vec::new();
        let mut at = 0;
        for round in 0.. {
            if at == stream.len() {
                break;
            }
            let wanted = reads[round.min(reads.len() - 1)];
            let buffer = decoder.receive_buffer();
            prop_assert!(buffer.capacity() - buffer.len() >= 64 * 1024);
            let count = wanted.min(stream.len() - at);
            buffer.extend_from_slice(&stream[at..at + count]);
            at += count;
            decoded.extend(decoder.by_ref());
            prop_assert!(decoder.buffered_len() < MAX_FRAME_LEN);
        }
        prop_assert_eq!(decoded, messages.into_iter().map(Ok).collect::<Vec<_>>());
        prop_assert_eq!(decoder.finish(), Ok(()));
    }

    #[test]
    fn arbitrary_bytes_never_panic_and_stay_bounded(
        chunks in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..600), 0..12),
    ) {
        let (results, decoder) = decode_chunks(&chunks);
        let errors = results.iter().filter(|result| result.is_err()).count();
        prop_assert!(errors <= 1, "at most one error, then silence");
        if errors == 1 {
            prop_assert!(results.last().unwrap().is_err());
        }
        let _ = decoder.finish();
    }

    #[test]
    fn arbitrary_bytes_after_a_valid_header_never_panic(
        code in prop::sample::select(MessageType::ALL.to_vec()),
        flags in 0u16..4,
        payload in prop::collection::vec(any::<u8>(), 0..200),
        cuts in prop::collection::vec(any::<usize>(), 0..4),
    ) {
        let bytes = frame(code.code(), flags, &payload);
        let (results, decoder) = decode_chunks(&split_at_points(&bytes, &cuts));
        prop_assert_eq!(results.len(), 1, "a whole frame gives one result");
        prop_assert_eq!(decoder.buffered_len(), 0);
    }

    #[test]
    fn mutated_frames_never_panic(
        messages in prop::collection::vec(message_strategy(), 1..4),
        flips in prop::collection::vec((any::<usize>(), any::<u8>()), 1..6),
    ) {
        let mut stream = Vec::new();
        for message in &messages {
            message.encode(&mut stream);
        }
        for (position, value) in flips {
            let index = position % stream.len();
            stream[index] ^= value;
        }
        let (results, _) = decode_chunks(&[stream]);
        for decoded in results.into_iter().flatten() {
            // Whatever decodes must encode again (it is a valid message).
            let again = encode(&decoded);
            prop_assert_eq!(decode_one(&again), Ok(decoded));
        }
    }
}
