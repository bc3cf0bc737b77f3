//! Properties over generated client input: how the input is split never
//! changes the outcome, no input panics or yields a request outside the
//! export, and encoding a request then decoding it gives it back.

mod common;

use common::*;
use nbd::{Command, Event, Export, Limits, Reply, ServerConnection};
use proptest::collection::vec;
use proptest::prelude::*;

/// A small export, so generated offsets fall on both sides of its end.
const SIZE: u64 = 64 << 10;

fn limits() -> Limits {
    Limits {
        max_payload: 4096,
        max_option_length: 256,
        ..Limits::default()
    }
}

/// A piece of client input. Besides raw bytes, pieces with the right magic
/// make generated input reach the option and request checks.
#[derive(Debug, Clone)]
enum Piece {
    Raw(Vec<u8>),
    Option {
        option: u32,
        data: Vec<u8>,
    },
    /// A request header; a WRITE gets `length` bytes of `fill` (at most
    /// 8 KiB, so an oversized one is cut short), then come `extra` bytes.
    Request {
        flags: u16,
        kind: u16,
        offset: u64,
        length: u32,
        fill: Option<u8>,
        extra: Vec<u8>,
    },
}

impl Piece {
    fn bytes(&self, cookie: u64) -> Vec<u8> {
        match self {
            Piece::Raw(bytes) => bytes.clone(),
            Piece::Option {
                option: number,
                data,
            } => option(*number, data),
            Piece::Request {
                flags,
                kind,
                offset,
                length,
                fill,
                extra,
            } => {
                let mut bytes = request(*flags, *kind, cookie, *offset, *length);
                if let Some(fill) = fill
                    && *kind == CMD_WRITE
                {
                    bytes.resize(bytes.len() + (*length).min(8192) as usize, *fill);
                }
                bytes.extend_from_slice(extra);
                bytes
            }
        }
    }
}

fn piece() -> impl Strategy<Value = Piece> {
    prop_oneof![
        1 => vec(any::<u8>(), 0..48).prop_map(Piece::Raw),
        1 => (0u32..12, vec(any::<u8>(), 0..40))
            .prop_map(|(option, data)| Piece::Option { option, data }),
        16 => (
            prop_oneof![6 => Just(0u16), 2 => Just(FUA), 1 => 0u16..32, 1 => any::<u16>()],
            // NBD_CMD_DISC (2) ends the stream, so it comes rarely.
            prop_oneof![
                16 => prop::sample::select(vec![0u16, 1, 3, 4, 5, 6, 7, 8]),
                1 => Just(CMD_DISC),
                1 => any::<u16>()
            ],
            prop_oneof![
                6 => (0u64..SIZE).prop_map(Offset::At),
                3 => (-2i64..=2).prop_map(Offset::NearTheEnd),
                1 => Just(Offset::At(0)),
                1 => any::<u64>().prop_map(Offset::At)
            ],
            prop_oneof![6 => 0u32..4096, 2 => 4090u32..4200, 1 => Just(0), 1 => any::<u32>()],
            prop_oneof![8 => any::<u8>().prop_map(Some), 1 => Just(None)],
            prop_oneof![8 => Just(Vec::new()), 1 => vec(any::<u8>(), 0..40)],
        )
            .prop_map(|(flags, kind, offset, length, fill, extra)| Piece::Request {
                flags,
                kind,
                offset: offset.resolve(length),
                length,
                fill,
                extra,
            }),
    ]
}

/// Where a generated request starts.
#[derive(Debug, Clone)]
enum Offset {
    At(u64),
    /// So that the request ends this many bytes past the export's end
    /// (before it when negative): the off-by-one cases.
    NearTheEnd(i64),
}

impl Offset {
    fn resolve(self, length: u32) -> u64 {
        match self {
            Offset::At(offset) => offset,
            Offset::NearTheEnd(past) => (SIZE as i64 - i64::from(length) + past).max(0) as u64,
        }
    }
}

/// A client stream: maybe a valid handshake first, then generated pieces.
fn stream() -> impl Strategy<Value = Vec<u8>> {
    let handshake = prop_oneof![
        Just(Vec::new()),
        Just(handshake_bytes(SIMPLE)),
        Just(handshake_bytes(STRUCTURED)),
        Just([&[0, 0, 0, 1][..], &option(1, b"r0")].concat()),
    ];
    (handshake, vec(piece(), 0..32)).prop_map(|(mut bytes, pieces)| {
        for (cookie, piece) in pieces.iter().enumerate() {
            bytes.extend(piece.bytes(cookie as u64));
        }
        bytes
    })
}

/// Everything observable after feeding `pieces` and answering every
/// request, checking on the way that each request lies inside the export.
#[derive(Debug, PartialEq)]
struct Outcome {
    events: Vec<Event>,
    output: Vec<u8>,
    closed: bool,
}

fn run<'a>(pieces: impl IntoIterator<Item = &'a [u8]>, eof: bool) -> Outcome {
    run_fed(
        |connection| {
            for piece in pieces {
                connection.receive(piece);
            }
        },
        eof,
    )
}

/// As [`run`], with the input given by `feed`.
fn run_fed(feed: impl FnOnce(&mut ServerConnection), eof: bool) -> Outcome {
    let mut connection = ServerConnection::new(Export::new("r0", SIZE), limits());
    feed(&mut connection);
    if eof {
        connection.receive_eof();
    }
    let events = events(&mut connection);
    for event in &events {
        if let Event::Request(request) = event {
            assert_inside_export(&request.command);
            let reply = match request.command {
                Command::Read { length, .. } => Reply::Data(vec![0x5a; length as usize]),
                _ => Reply::Done,
            };
            connection.reply(request.id, Ok(reply)).unwrap();
        }
    }
    let disconnects = events
        .iter()
        .filter(|event| matches!(event, Event::Disconnect(_)))
        .count();
    assert!(disconnects <= 1, "more than one Disconnect: {events:?}");
    if eof {
        assert_eq!(disconnects, 1, "EOF must end the connection");
    }
    let output = output(&mut connection);
    Outcome {
        events,
        output,
        closed: connection.is_closed(),
    }
}

/// Feeds `bytes` as replicad's loop does, in reads of at most `chunk`
/// bytes: a WRITE's payload appended straight to the buffer the
/// connection offers (never more than it still misses), everything else
/// through `receive`.
fn feed_like_a_daemon(connection: &mut ServerConnection, mut bytes: &[u8], chunk: usize) {
    while !bytes.is_empty() {
        let read = chunk.min(bytes.len());
        match connection.payload_buffer() {
            Some((buffer, missing)) => {
                assert!(missing > 0, "a payload buffer offered with nothing missing");
                let read = read.min(missing);
                buffer.extend_from_slice(&bytes[..read]);
                connection.payload_received();
                bytes = &bytes[read..];
            }
            None => {
                connection.receive(&bytes[..read]);
                bytes = &bytes[read..];
            }
        }
    }
}

fn assert_inside_export(command: &Command) {
    if let Some(range) = command.range() {
        assert!(
            range.start < range.end,
            "empty request reached the daemon: {command:?}"
        );
        assert!(
            range.end <= SIZE,
            "request past the end reached the daemon: {command:?}"
        );
    }
    if let Command::Read { length, .. } = command {
        assert!(
            *length <= 4096,
            "oversized read reached the daemon: {command:?}"
        );
    }
    if let Command::Write { data, .. } = command {
        assert!(data.len() <= 4096, "oversized write reached the daemon");
    }
}

proptest! {
    #[test]
    fn byte_at_a_time_equals_all_at_once(bytes in stream(), eof in any::<bool>()) {
        let whole = run([bytes.as_slice()], eof);
        let bytewise = run(bytes.chunks(1), eof);
        prop_assert_eq!(whole, bytewise);
    }

    #[test]
    fn any_split_equals_all_at_once(bytes in stream(), cuts in vec(any::<prop::sample::Index>(), 0..8)) {
        let mut cuts: Vec<usize> = cuts.iter().map(|cut| cut.index(bytes.len() + 1)).collect();
        cuts.sort_unstable();
        let mut pieces = Vec::new();
        let mut start = 0;
        for cut in cuts.into_iter().chain([bytes.len()]) {
            pieces.push(&bytes[start..cut]);
            start = cut;
        }
        prop_assert_eq!(run([bytes.as_slice()], true), run(pieces, true));
    }

    #[test]
    fn payloads_received_into_their_buffer_equal_all_at_once(
        bytes in stream(),
        chunk in 1usize..5000,
        eof in any::<bool>(),
    ) {
        let whole = run([bytes.as_slice()], eof);
        let direct = run_fed(|connection| feed_like_a_daemon(connection, &bytes, chunk), eof);
        prop_assert_eq!(whole, direct);
    }

    #[test]
    fn arbitrary_bytes_never_panic_nor_reach_outside_the_export(bytes in vec(any::<u8>(), 0..512), handshake in 0usize..3) {
        let prefix = match handshake {
            0 => Vec::new(),
            1 => handshake_bytes(SIMPLE),
            _ => handshake_bytes(STRUCTURED),
        };
        // `run` checks every request and answers it.
        let outcome = run([prefix.as_slice(), bytes.as_slice()], true);
        prop_assert!(outcome.closed, "after EOF and every reply the connection must be closed");
    }

    #[test]
    fn encoded_requests_decode_to_themselves(mut commands in vec(command(), 1..16), structured in any::<bool>()) {
        let negotiation = if structured { STRUCTURED } else { SIMPLE };
        // BLOCK_STATUS needs the metadata context that only STRUCTURED selects.
        commands.retain(|command| structured || !matches!(command, Command::BlockStatus { .. }));
        let mut connection = connected(Export::new("r0", SIZE), limits(), negotiation);
        let mut bytes = Vec::new();
        for (cookie, command) in commands.iter().enumerate() {
            bytes.extend(encode_command(cookie as u64 * 7919, command));
        }
        connection.receive(&bytes);
        let decoded: Vec<(u64, Command)> = events(&mut connection)
            .into_iter()
            .map(|event| match event {
                Event::Request(request) => (request.cookie, request.command),
                other => panic!("unexpected {other:?}"),
            })
            .collect();
        let expected: Vec<(u64, Command)> = commands
            .into_iter()
            .enumerate()
            .map(|(cookie, command)| (cookie as u64 * 7919, command))
            .collect();
        prop_assert_eq!(decoded, expected);
        prop_assert!(output(&mut connection).is_empty(), "valid requests must not be answered by the connection");
    }
}

/// A valid command inside the export, within the payload limit.
fn command() -> impl Strategy<Value = Command> {
    let range = (0..SIZE, 1u32..=4096).prop_map(|(offset, length)| {
        let offset = offset.min(SIZE - u64::from(length));
        (offset, length)
    });
    prop_oneof![
        range
            .clone()
            .prop_map(|(offset, length)| Command::Read { offset, length }),
        (range.clone(), any::<bool>(), any::<u8>()).prop_map(|((offset, length), fua, byte)| {
            Command::Write {
                offset,
                data: vec![byte; length as usize].into(),
                fua,
            }
        }),
        Just(Command::Flush),
        (range.clone(), any::<bool>()).prop_map(|((offset, length), fua)| Command::Trim {
            offset,
            length,
            fua
        }),
        (range.clone(), any::<bool>(), any::<bool>()).prop_map(
            |((offset, length), fua, no_hole)| {
                Command::WriteZeroes {
                    offset,
                    length,
                    fua,
                    no_hole,
                }
            }
        ),
        range.prop_map(|(offset, length)| Command::BlockStatus { offset, length }),
    ]
}
