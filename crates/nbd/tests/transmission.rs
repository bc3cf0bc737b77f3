//! The transmission phase: request decoding (every command and every
//! error path), reply encodings (simple and structured), the in-flight
//! bookkeeping, and the memory and shutdown controls.

mod common;

use common::*;
use nbd::{
    Command, DisconnectReason, Errno, Event, Export, Extent, Limits, ProtocolError, Reply,
    ReplyError, ServerConnection,
};

const EINVAL: u32 = 22;
const EPERM: u32 = 1;
const ENOSPC: u32 = 28;
const EIO: u32 = 5;
const ESHUTDOWN: u32 = 108;
const MIB: u64 = 1 << 20;

fn simple() -> ServerConnection {
    connected(export(), Limits::default(), SIMPLE)
}

fn structured() -> ServerConnection {
    connected(export(), Limits::default(), STRUCTURED)
}

/// Sends `bytes`, expects no request, and returns the output.
fn refused(connection: &mut ServerConnection, bytes: &[u8]) -> Vec<u8> {
    connection.receive(bytes);
    let events = events(connection);
    assert!(events.is_empty(), "expected no event, got {events:?}");
    output(connection)
}

/// The message of a structured error chunk, after checking its framing.
fn error_chunk_message(reply: &[u8], cookie: u64, errno: u32) -> String {
    assert_eq!(
        reply[..8],
        [0x66, 0x8e, 0x33, 0xef, 0, 1, 0x80, 1],
        "ERROR chunk with DONE"
    );
    assert_eq!(reply[8..16], cookie.to_be_bytes());
    let length = u32::from_be_bytes(reply[16..20].try_into().unwrap()) as usize;
    assert_eq!(reply.len(), 20 + length);
    assert_eq!(reply[20..24], errno.to_be_bytes());
    let message_length = u16::from_be_bytes(reply[24..26].try_into().unwrap()) as usize;
    assert_eq!(message_length + 6, length);
    String::from_utf8(reply[26..].to_vec()).unwrap()
}

#[test]
fn read_is_decoded_and_answered_with_a_simple_reply_and_its_data() {
    let mut connection = simple();
    connection.receive(&[
        0x25, 0x60, 0x95, 0x13, // request magic
        0x00, 0x00, // flags
        0x00, 0x00, // NBD_CMD_READ
        0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, // cookie
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x10, 0x00, // offset 4096
        0x00, 0x00, 0x02, 0x00, // length 512
    ]);
    let request = one_request(&mut connection);
    assert_eq!(request.cookie, 0x1122_3344_5566_7788);
    assert_eq!(
        request.command,
        Command::Read {
            offset: 4096,
            length: 512
        }
    );
    assert_eq!(request.command.range(), Some(4096..4608));
    assert_eq!(connection.in_flight(), 1);
    connection
        .reply(request.id, Ok(Reply::Data(vec![0xab; 512])))
        .unwrap();
    let mut expected = vec![
        0x67, 0x44, 0x66, 0x98, 0, 0, 0, 0, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88,
    ];
    expected.extend([0xab; 512]);
    assert_eq!(output(&mut connection), expected);
    assert_eq!(connection.in_flight(), 0);
}

#[test]
fn write_payload_split_anywhere_is_reassembled_with_fua() {
    let mut connection = simple();
    let data: Vec<u8> = (0..=255).cycle().take(3000).collect();
    let bytes = write_request(FUA, 7, MIB - 3000, &data);
    for piece in bytes.chunks(7) {
        connection.receive(piece);
    }
    let request = one_request(&mut connection);
    assert_eq!(
        request.command,
        Command::Write {
            offset: MIB - 3000,
            data: data.into(),
            fua: true
        }
    );
    assert!(request.command.is_write());
    connection.reply(request.id, Ok(Reply::Done)).unwrap();
    assert_eq!(output(&mut connection), simple_reply(0, 7));
}

/// A daemon may receive the rest of a WRITE's payload straight into the
/// request's buffer: the request is the same as through `receive`, and the
/// next request's bytes go through `receive` again.
#[test]
fn write_payload_appended_to_its_buffer_makes_the_same_request() {
    let mut connection = simple();
    let data: Vec<u8> = (0..=255).cycle().take(5000).collect();
    let mut bytes = write_request(0, 9, 4096, &data);
    bytes.extend(request(0, CMD_FLUSH, 10, 0, 0));
    assert!(connection.payload_buffer().is_none(), "no payload yet");
    // The header and the first 100 bytes of the payload come together.
    let (first, mut rest) = bytes.split_at(28 + 100);
    connection.receive(first);
    while let Some((buffer, missing)) = connection.payload_buffer() {
        assert!(missing > 0);
        let piece = missing.min(1234);
        buffer.extend_from_slice(&rest[..piece]);
        rest = &rest[piece..];
        connection.payload_received();
    }
    let request = one_request(&mut connection);
    assert_eq!(
        request.command,
        Command::Write {
            offset: 4096,
            data: data.into(),
            fua: false
        }
    );
    assert!(
        connection.payload_buffer().is_none(),
        "the payload is complete"
    );
    connection.receive(rest);
    assert_eq!(one_request(&mut connection).command, Command::Flush);
}

#[test]
fn flush_trim_write_zeroes_and_block_status_are_decoded() {
    let mut connection = structured();
    let mut bytes = request(0, CMD_FLUSH, 1, 0, 0);
    bytes.extend(request(FUA, CMD_TRIM, 2, 512, 1024));
    bytes.extend(request(NO_HOLE, CMD_WRITE_ZEROES, 3, 0, 4096));
    bytes.extend(request(FUA | NO_HOLE, CMD_WRITE_ZEROES, 4, 4096, 4096));
    bytes.extend(request(REQ_ONE, CMD_BLOCK_STATUS, 5, 0, 65536));
    // FUA is accepted on any command (the specification requires it).
    bytes.extend(request(FUA, CMD_FLUSH, 6, 0, 0));
    connection.receive(&bytes);
    let commands: Vec<(u64, Command)> = events(&mut connection)
        .into_iter()
        .map(|event| match event {
            Event::Request(request) => (request.cookie, request.command),
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    assert_eq!(
        commands,
        vec![
            (1, Command::Flush),
            (
                2,
                Command::Trim {
                    offset: 512,
                    length: 1024,
                    fua: true
                }
            ),
            (
                3,
                Command::WriteZeroes {
                    offset: 0,
                    length: 4096,
                    fua: false,
                    no_hole: true
                }
            ),
            (
                4,
                Command::WriteZeroes {
                    offset: 4096,
                    length: 4096,
                    fua: true,
                    no_hole: true
                }
            ),
            (
                5,
                Command::BlockStatus {
                    offset: 0,
                    length: 65536
                }
            ),
            (6, Command::Flush),
        ]
    );
    assert!(output(&mut connection).is_empty());
}

#[test]
fn replies_go_out_in_the_order_the_daemon_gives_them() {
    let mut connection = simple();
    let mut bytes = request(0, CMD_READ, 10, 0, 4);
    bytes.extend(request(0, CMD_FLUSH, 11, 0, 0));
    connection.receive(&bytes);
    let requests: Vec<_> = events(&mut connection)
        .into_iter()
        .map(|event| match event {
            Event::Request(request) => request,
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    connection.reply(requests[1].id, Err(Errno::Io)).unwrap();
    connection
        .reply(requests[0].id, Ok(Reply::Data(b"abcd".to_vec())))
        .unwrap();
    let mut expected = simple_reply(EIO, 11);
    expected.extend(simple_reply(0, 10));
    expected.extend(b"abcd");
    assert_eq!(output(&mut connection), expected);
}

#[test]
fn a_reused_cookie_still_gives_two_distinct_requests() {
    let mut connection = simple();
    let mut bytes = request(0, CMD_READ, 5, 0, 1);
    bytes.extend(write_request(0, 5, 0, b"x"));
    connection.receive(&bytes);
    let requests: Vec<_> = events(&mut connection)
        .into_iter()
        .map(|event| match event {
            Event::Request(request) => request,
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    assert_ne!(requests[0].id, requests[1].id);
    connection.reply(requests[1].id, Ok(Reply::Done)).unwrap();
    connection
        .reply(requests[0].id, Ok(Reply::Data(b"y".to_vec())))
        .unwrap();
    let mut expected = simple_reply(0, 5);
    expected.extend(simple_reply(0, 5));
    expected.extend(b"y");
    assert_eq!(output(&mut connection), expected);
}

#[test]
fn a_simple_read_error_carries_no_data() {
    let mut connection = simple();
    connection.receive(&request(0, CMD_READ, 3, 0, 512));
    let request = one_request(&mut connection);
    connection.reply(request.id, Err(Errno::Io)).unwrap();
    assert_eq!(
        output(&mut connection),
        [0x67, 0x44, 0x66, 0x98, 0, 0, 0, 5, 0, 0, 0, 0, 0, 0, 0, 3]
    );
}

#[test]
fn ranges_past_the_end_are_refused_without_the_daemon() {
    let mut connection = simple();
    // Reads, trims and block status past the end: EINVAL; writes: ENOSPC.
    assert_eq!(
        refused(&mut connection, &request(0, CMD_READ, 1, MIB - 511, 512)),
        simple_reply(EINVAL, 1)
    );
    assert_eq!(
        refused(&mut connection, &request(0, CMD_TRIM, 2, MIB, 1)),
        simple_reply(EINVAL, 2)
    );
    assert_eq!(
        refused(
            &mut connection,
            &request(0, CMD_WRITE_ZEROES, 3, 0, MIB as u32 + 1)
        ),
        simple_reply(ENOSPC, 3)
    );
    // The write's payload is consumed: the next request decodes normally.
    let mut bytes = write_request(0, 4, MIB - 1, b"ab");
    bytes.extend(request(0, CMD_READ, 5, MIB - 1, 1));
    connection.receive(&bytes);
    assert_eq!(output(&mut connection), simple_reply(ENOSPC, 4));
    assert_eq!(
        one_request(&mut connection).command,
        Command::Read {
            offset: MIB - 1,
            length: 1
        }
    );
    // offset + length overflows u64.
    assert_eq!(
        refused(
            &mut connection,
            &request(0, CMD_READ, 6, u64::MAX - 10, 512)
        ),
        simple_reply(EINVAL, 6)
    );
    // Exactly up to the end is fine.
    connection.receive(&request(0, CMD_READ, 7, MIB - 512, 512));
    assert_eq!(
        one_request(&mut connection).command.range(),
        Some(MIB - 512..MIB)
    );
}

#[test]
fn structured_errors_explain_themselves() {
    let mut connection = structured();
    let reply = refused(&mut connection, &request(0, CMD_BLOCK_STATUS, 9, MIB, 512));
    let message = error_chunk_message(&reply, 9, EINVAL);
    assert_eq!(
        message,
        "NBD_CMD_BLOCK_STATUS of 512 bytes at offset 1048576 ends past the export size of 1048576 bytes"
    );
    // A read refused early still gets a structured reply, never a simple one.
    let reply = refused(&mut connection, &request(0, CMD_READ, 10, MIB, 1));
    error_chunk_message(&reply, 10, EINVAL);
}

#[test]
fn oversized_reads_are_einval_and_oversized_writes_close() {
    let limits = Limits {
        max_payload: 8192,
        ..Limits::default()
    };
    let mut connection = connected(export(), limits, SIMPLE);
    assert_eq!(
        refused(&mut connection, &request(0, CMD_READ, 1, 0, 8193)),
        simple_reply(EINVAL, 1)
    );
    connection.receive(&request(0, CMD_READ, 2, 0, 8192));
    one_request(&mut connection);
    // Trim and write-zeroes have no payload: no limit but the export.
    connection.receive(&request(0, CMD_TRIM, 3, 0, MIB as u32));
    one_request(&mut connection);

    connection.receive(&request(0, CMD_WRITE, 4, 0, 8193));
    assert_eq!(
        events(&mut connection),
        vec![Event::Disconnect(
            ProtocolError::WriteTooLarge {
                length: 8193,
                limit: 8192
            }
            .into()
        )]
    );
    connection.receive(&request(0, CMD_FLUSH, 5, 0, 0));
    assert!(
        events(&mut connection).is_empty(),
        "input after the end must be ignored"
    );
    assert!(!connection.wants_input());
}

#[test]
fn payload_limit_is_never_below_the_preferred_block_size() {
    let limits = Limits {
        max_payload: 0,
        ..Limits::default()
    };
    let mut connection = connected(export(), limits, SIMPLE);
    connection.receive(&request(0, CMD_READ, 1, 0, 4096));
    one_request(&mut connection);
    assert_eq!(
        refused(&mut connection, &request(0, CMD_READ, 2, 0, 4097)),
        simple_reply(EINVAL, 2)
    );
}

#[test]
fn unknown_commands_are_einval() {
    let mut connection = simple();
    for (cookie, kind) in [(1u64, 5u16), (2, 8), (3, 0xffff)] {
        assert_eq!(
            refused(&mut connection, &request(0, kind, cookie, 0, 512)),
            simple_reply(EINVAL, cookie)
        );
    }
}

#[test]
fn flags_that_do_not_apply_are_einval() {
    let mut connection = simple();
    // Unknown bit; REQ_ONE on a read; NO_HOLE on a trim; DF without structured replies.
    let cases = [
        request(0x100, CMD_READ, 1, 0, 512),
        request(REQ_ONE, CMD_READ, 2, 0, 512),
        request(NO_HOLE, CMD_TRIM, 3, 0, 512),
        request(DF, CMD_READ, 4, 0, 512),
    ];
    for (index, bytes) in cases.iter().enumerate() {
        let cookie = index as u64 + 1;
        assert_eq!(
            refused(&mut connection, bytes),
            simple_reply(EINVAL, cookie)
        );
    }
    // NO_HOLE on a write: refused, and its payload consumed.
    let mut bytes = write_request(NO_HOLE, 5, 0, &[1; 100]);
    bytes.extend(request(0, CMD_FLUSH, 6, 0, 0));
    connection.receive(&bytes);
    assert_eq!(output(&mut connection), simple_reply(EINVAL, 5));
    assert_eq!(one_request(&mut connection).command, Command::Flush);

    // With structured replies, DF is advertised and accepted on reads.
    let mut connection = structured();
    connection.receive(&request(DF, CMD_READ, 7, 0, 512));
    one_request(&mut connection);
}

#[test]
fn flush_with_an_offset_or_length_is_einval() {
    let mut connection = simple();
    assert_eq!(
        refused(&mut connection, &request(0, CMD_FLUSH, 1, 512, 0)),
        simple_reply(EINVAL, 1)
    );
    assert_eq!(
        refused(&mut connection, &request(0, CMD_FLUSH, 2, 0, 512)),
        simple_reply(EINVAL, 2)
    );
}

#[test]
fn writes_to_a_read_only_export_are_eperm() {
    let export = Export {
        read_only: true,
        ..export()
    };
    let mut connection = connected(export, Limits::default(), SIMPLE);
    let mut bytes = write_request(0, 1, 0, &[7; 512]);
    bytes.extend(request(0, CMD_TRIM, 2, 0, 512));
    bytes.extend(request(0, CMD_WRITE_ZEROES, 3, 0, 512));
    bytes.extend(request(0, CMD_READ, 4, 0, 512));
    connection.receive(&bytes);
    let mut expected = simple_reply(EPERM, 1);
    expected.extend(simple_reply(EPERM, 2));
    expected.extend(simple_reply(EPERM, 3));
    assert_eq!(output(&mut connection), expected);
    assert_eq!(
        one_request(&mut connection).command,
        Command::Read {
            offset: 0,
            length: 512
        }
    );
}

#[test]
fn block_status_without_a_selected_context_is_einval() {
    let negotiation = Negotiation {
        structured_replies: true,
        base_allocation: false,
    };
    let mut connection = connected(export(), Limits::default(), negotiation);
    let reply = refused(&mut connection, &request(0, CMD_BLOCK_STATUS, 1, 0, 512));
    let message = error_chunk_message(&reply, 1, EINVAL);
    assert!(
        message.contains("needs base:allocation selected"),
        "{message}"
    );

    let mut connection = simple();
    assert_eq!(
        refused(&mut connection, &request(0, CMD_BLOCK_STATUS, 2, 0, 512)),
        simple_reply(EINVAL, 2)
    );
}

#[test]
fn zero_length_requests_are_answered_without_the_daemon() {
    let mut connection = simple();
    let mut bytes = request(0, CMD_READ, 1, 0, 0);
    bytes.extend(request(0, CMD_WRITE, 2, MIB, 0));
    bytes.extend(request(0, CMD_TRIM, 3, 0, 0));
    bytes.extend(request(0, CMD_WRITE_ZEROES, 4, 0, 0));
    let expected: Vec<u8> = (1..=4).flat_map(|cookie| simple_reply(0, cookie)).collect();
    assert_eq!(refused(&mut connection, &bytes), expected);

    let mut connection = structured();
    // A structured read of length 0: one NONE chunk with DONE.
    assert_eq!(
        refused(&mut connection, &request(0, CMD_READ, 5, 0, 0)),
        [
            0x66, 0x8e, 0x33, 0xef, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 5, 0, 0, 0, 0
        ]
    );
    // Block status of length 0 has no extent to report.
    let reply = refused(&mut connection, &request(0, CMD_BLOCK_STATUS, 6, 0, 0));
    error_chunk_message(&reply, 6, EINVAL);
    // Zero length past the end is still past the end.
    let reply = refused(&mut connection, &request(0, CMD_READ, 7, MIB + 1, 0));
    error_chunk_message(&reply, 7, EINVAL);
}

#[test]
fn a_bad_request_magic_closes_the_connection() {
    let mut connection = simple();
    let mut bytes = request(0, CMD_READ, 1, 0, 512);
    bytes[0] = 0x12;
    connection.receive(&bytes);
    assert_eq!(
        events(&mut connection),
        vec![Event::Disconnect(
            ProtocolError::BadRequestMagic(0x1260_9513).into()
        )]
    );
    assert!(connection.is_closed());
}

#[test]
fn disc_ends_input_but_requests_in_flight_are_still_answered() {
    let mut connection = simple();
    let mut bytes = request(0, CMD_READ, 1, 0, 2);
    bytes.extend(request(0, CMD_DISC, 2, 0, 0));
    bytes.extend(request(0, CMD_READ, 3, 0, 2));
    connection.receive(&bytes);
    let events = events(&mut connection);
    let [
        Event::Request(request),
        Event::Disconnect(DisconnectReason::ClientDisconnect),
    ] = &events[..]
    else {
        panic!("unexpected {events:?}");
    };
    assert!(!connection.wants_input());
    assert!(!connection.is_closed(), "a request is still in flight");
    connection
        .reply(request.id, Ok(Reply::Data(b"ok".to_vec())))
        .unwrap();
    assert!(!connection.is_closed(), "its reply is still unsent");
    let mut expected = simple_reply(0, 1);
    expected.extend(b"ok");
    assert_eq!(output(&mut connection), expected);
    assert!(connection.is_closed());
}

#[test]
fn end_of_input_inside_a_request_or_a_payload_is_a_cut_message() {
    for cut in [
        request(0, CMD_READ, 1, 0, 512)[..20].to_vec(),
        write_request(0, 1, 0, &[1; 64])[..40].to_vec(),
    ] {
        let mut connection = simple();
        connection.receive(&cut);
        assert!(
            events(&mut connection).is_empty(),
            "a partial request must wait"
        );
        connection.receive_eof();
        assert_eq!(
            events(&mut connection),
            vec![Event::Disconnect(DisconnectReason::Eof { mid_frame: true })]
        );
        assert!(connection.is_closed());
    }
}

#[test]
fn a_structured_read_is_one_offset_data_chunk_with_done() {
    let mut connection = structured();
    connection.receive(&request(0, CMD_READ, 0x42, 0x1000, 3));
    let request = one_request(&mut connection);
    connection
        .reply(request.id, Ok(Reply::Data(vec![9, 8, 7])))
        .unwrap();
    assert_eq!(
        output(&mut connection),
        [
            0x66, 0x8e, 0x33, 0xef, // structured reply magic
            0x00, 0x01, // NBD_REPLY_FLAG_DONE
            0x00, 0x01, // NBD_REPLY_TYPE_OFFSET_DATA
            0, 0, 0, 0, 0, 0, 0, 0x42, // cookie
            0, 0, 0, 11, // length: 8-byte offset + 3 bytes
            0, 0, 0, 0, 0, 0, 0x10, 0, // offset
            9, 8, 7,
        ]
    );
}

#[test]
fn a_structured_error_is_an_error_chunk_with_done() {
    let mut connection = structured();
    connection.receive(&write_request(0, 0x43, 0, b"abc"));
    let request = one_request(&mut connection);
    connection.reply(request.id, Err(Errno::NoSpc)).unwrap();
    assert_eq!(
        output(&mut connection),
        [
            0x66, 0x8e, 0x33, 0xef, 0x00, 0x01, // DONE
            0x80, 0x01, // NBD_REPLY_TYPE_ERROR
            0, 0, 0, 0, 0, 0, 0, 0x43, // cookie
            0, 0, 0, 6, // length
            0, 0, 0, 28, // ENOSPC
            0, 0, // no message
        ]
    );
    // Replies without data stay simple even with structured replies.
    connection.receive(&request_flush(0x44));
    let request = one_request(&mut connection);
    connection.reply(request.id, Ok(Reply::Done)).unwrap();
    assert_eq!(output(&mut connection), simple_reply(0, 0x44));
}

fn request_flush(cookie: u64) -> Vec<u8> {
    request(0, CMD_FLUSH, cookie, 0, 0)
}

#[test]
fn block_status_done_means_one_allocated_extent_over_the_range() {
    let mut connection = structured();
    connection.receive(&request(0, CMD_BLOCK_STATUS, 0x44, 4096, 8192));
    let request = one_request(&mut connection);
    connection.reply(request.id, Ok(Reply::Done)).unwrap();
    assert_eq!(
        output(&mut connection),
        [
            0x66, 0x8e, 0x33, 0xef, 0x00, 0x01, // DONE
            0x00, 0x05, // NBD_REPLY_TYPE_BLOCK_STATUS
            0, 0, 0, 0, 0, 0, 0, 0x44, // cookie
            0, 0, 0, 12, // length: context id + one descriptor
            0, 0, 0, 1, // context id of base:allocation
            0, 0, 0x20, 0, // 8192 bytes
            0, 0, 0, 0, // allocated data
        ]
    );
}

#[test]
fn block_status_extents_are_clipped_merged_and_cut_to_one_on_req_one() {
    let map = vec![
        Extent::data(4096),
        Extent::data(0),
        Extent::hole(8192),
        Extent::hole(4096),
        Extent::data(MIB),
    ];
    let descriptors = |reply: &[u8]| -> Vec<(u32, u32)> {
        assert_eq!(reply[6..8], [0, 5], "a BLOCK_STATUS chunk");
        assert_eq!(reply[20..24], [0, 0, 0, 1], "context id of base:allocation");
        reply[24..]
            .chunks(8)
            .map(|pair| {
                (
                    u32::from_be_bytes(pair[..4].try_into().unwrap()),
                    u32::from_be_bytes(pair[4..].try_into().unwrap()),
                )
            })
            .collect()
    };

    let mut connection = structured();
    connection.receive(&request(0, CMD_BLOCK_STATUS, 1, 0, 65536));
    let request_all = one_request(&mut connection);
    connection
        .reply(request_all.id, Ok(Reply::Extents(map.clone())))
        .unwrap();
    assert_eq!(
        descriptors(&output(&mut connection)),
        vec![(4096, 0), (12288, 3), (49152, 0)]
    );

    connection.receive(&request(REQ_ONE, CMD_BLOCK_STATUS, 2, 0, 65536));
    let request_one = one_request(&mut connection);
    connection
        .reply(request_one.id, Ok(Reply::Extents(map[2..].to_vec())))
        .unwrap();
    assert_eq!(descriptors(&output(&mut connection)), vec![(12288, 3)]);

    // A short map is allowed: the client asks again for the rest.
    connection.receive(&request(0, CMD_BLOCK_STATUS, 3, 0, 65536));
    let request_short = one_request(&mut connection);
    connection
        .reply(
            request_short.id,
            Ok(Reply::Extents(vec![Extent::hole(512)])),
        )
        .unwrap();
    assert_eq!(descriptors(&output(&mut connection)), vec![(512, 3)]);
}

#[test]
fn daemon_mistakes_in_replies_are_errors_and_leave_the_request_in_flight() {
    let mut connection = structured();
    let mut bytes = request(0, CMD_READ, 1, 0, 4);
    bytes.extend(write_request(0, 2, 0, b"w"));
    bytes.extend(request(0, CMD_BLOCK_STATUS, 3, 0, 512));
    connection.receive(&bytes);
    let ids: Vec<_> = events(&mut connection)
        .into_iter()
        .map(|event| match event {
            Event::Request(request) => request.id,
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    let (read, write, status) = (ids[0], ids[1], ids[2]);

    assert_eq!(
        connection.reply(read, Ok(Reply::Data(vec![0; 3]))),
        Err(ReplyError::DataLength {
            id: read,
            expected: 4,
            actual: 3
        })
    );
    assert_eq!(
        connection.reply(read, Ok(Reply::Done)),
        Err(ReplyError::WrongReply {
            id: read,
            command: "NBD_CMD_READ",
            reply: "Reply::Done"
        })
    );
    assert!(matches!(
        connection.reply(write, Ok(Reply::Data(vec![0]))),
        Err(ReplyError::WrongReply { .. })
    ));
    assert!(matches!(
        connection.reply(write, Ok(Reply::Extents(vec![Extent::data(1)]))),
        Err(ReplyError::WrongReply { .. })
    ));
    assert_eq!(
        connection.reply(status, Ok(Reply::Extents(vec![Extent::data(0)]))),
        Err(ReplyError::NoExtents(status))
    );
    assert!(
        output(&mut connection).is_empty(),
        "a refused reply must send nothing"
    );
    assert_eq!(connection.in_flight(), 3);

    connection.reply(read, Ok(Reply::Data(vec![0; 4]))).unwrap();
    connection.reply(write, Ok(Reply::Done)).unwrap();
    connection.reply(status, Ok(Reply::Done)).unwrap();
    assert_eq!(connection.in_flight(), 0);
    assert_eq!(
        connection.reply(write, Ok(Reply::Done)),
        Err(ReplyError::UnknownRequest(write))
    );
}

#[test]
fn input_pauses_while_too_many_requests_are_in_flight() {
    let limits = Limits {
        max_in_flight: 2,
        ..Limits::default()
    };
    let mut connection = connected(export(), limits, SIMPLE);
    connection.receive(&request_flush(1));
    assert!(connection.wants_input());
    connection.receive(&request_flush(2));
    assert!(!connection.wants_input());
    let first = match &events(&mut connection)[..] {
        [Event::Request(first), Event::Request(_)] => first.id,
        other => panic!("unexpected {other:?}"),
    };
    connection.reply(first, Ok(Reply::Done)).unwrap();
    assert!(connection.wants_input());
}

#[test]
fn pipelined_requests_beyond_the_limit_are_held_back_until_replies_free_room() {
    let limits = Limits {
        max_in_flight: 4,
        ..Limits::default()
    };
    let mut connection = connected(export(), limits, SIMPLE);
    // One read from the socket carrying 100 pipelined requests.
    let burst: Vec<u8> = (0..100).flat_map(request_flush).collect();
    connection.receive(&burst);
    let mut seen = events(&mut connection);
    assert_eq!(seen.len(), 4, "only max_in_flight requests are decoded");
    assert!(
        !connection.wants_input(),
        "held-back bytes stop further reads"
    );
    let mut answered = 0;
    while let Some(Event::Request(request)) = seen.pop() {
        connection.reply(request.id, Ok(Reply::Done)).unwrap();
        answered += 1;
        seen.extend(events(&mut connection));
        assert!(connection.in_flight() <= 4);
    }
    assert_eq!(answered, 100, "every request is decoded in the end");
    assert!(connection.wants_input());
}

#[test]
fn end_of_input_behind_held_back_requests_comes_after_them() {
    let limits = Limits {
        max_in_flight: 1,
        ..Limits::default()
    };
    let mut connection = connected(export(), limits, SIMPLE);
    let burst: Vec<u8> = (0..3).flat_map(request_flush).collect();
    connection.receive(&burst);
    connection.receive_eof();
    let mut requests = 0;
    let mut disconnected = false;
    while !disconnected {
        let batch = events(&mut connection);
        assert!(!batch.is_empty(), "stalled after {requests} requests");
        for event in batch {
            match event {
                Event::Request(request) => {
                    assert!(!disconnected, "a request after the disconnect");
                    requests += 1;
                    connection.reply(request.id, Ok(Reply::Done)).unwrap();
                }
                Event::Disconnect(_) => disconnected = true,
                other => panic!("unexpected {other:?}"),
            }
        }
    }
    assert_eq!(requests, 3);
}

#[test]
fn zero_limits_pause_input_only_while_something_is_pending() {
    let limits = Limits {
        max_in_flight: 0,
        max_queued_output: 0,
        ..Limits::default()
    };
    let mut connection = connected(export(), limits, SIMPLE);
    assert!(connection.wants_input());
    connection.receive(&request(0, CMD_FLUSH, 1, 0, 0));
    assert!(!connection.wants_input());
    let request = one_request(&mut connection);
    connection.reply(request.id, Ok(Reply::Done)).unwrap();
    assert!(!connection.wants_input(), "the reply is unsent");
    output(&mut connection);
    assert!(connection.wants_input());
}

#[test]
fn input_pauses_while_too_much_output_is_unsent() {
    let limits = Limits {
        max_queued_output: 64,
        ..Limits::default()
    };
    let mut connection = connected(export(), limits, SIMPLE);
    // A client that sends bad requests and never reads the errors.
    for cookie in 0..3 {
        connection.receive(&request(0, 99, cookie, 0, 0));
    }
    assert!(connection.wants_input(), "48 bytes queued, under 64");
    connection.receive(&request(0, 99, 3, 0, 0));
    assert!(!connection.wants_input(), "64 bytes queued");
    output(&mut connection);
    assert!(connection.wants_input());
}

#[test]
fn shutdown_answers_new_requests_eshutdown_and_old_ones_normally() {
    let mut connection = structured();
    connection.receive(&request(0, CMD_READ, 1, 0, 1));
    let request_before = one_request(&mut connection);
    connection.shutdown();
    let reply = refused(&mut connection, &request(0, CMD_READ, 2, 0, 1));
    error_chunk_message(&reply, 2, ESHUTDOWN);
    connection
        .reply(request_before.id, Ok(Reply::Data(vec![1])))
        .unwrap();
    assert_eq!(
        output(&mut connection)[..8],
        [0x66, 0x8e, 0x33, 0xef, 0, 1, 0, 1]
    );
    connection.receive(&request(0, CMD_DISC, 3, 0, 0));
    assert_eq!(
        events(&mut connection),
        vec![Event::Disconnect(DisconnectReason::ClientDisconnect)]
    );
    assert!(connection.is_closed());
}

#[test]
fn errno_values_and_io_error_mapping_follow_the_specification() {
    let codes: Vec<u32> = [
        Errno::Perm,
        Errno::Io,
        Errno::NoMem,
        Errno::Inval,
        Errno::NoSpc,
        Errno::Overflow,
        Errno::NotSup,
        Errno::Shutdown,
    ]
    .iter()
    .map(|errno| errno.code())
    .collect();
    assert_eq!(codes, vec![1, 5, 12, 22, 28, 75, 95, 108]);
    assert_eq!(Errno::from_code(28), Some(Errno::NoSpc));
    assert_eq!(Errno::from_code(2), None);
    use std::io::{Error, ErrorKind};
    assert_eq!(
        Errno::from(&Error::from(ErrorKind::StorageFull)),
        Errno::NoSpc
    );
    assert_eq!(
        Errno::from(&Error::from(ErrorKind::QuotaExceeded)),
        Errno::NoSpc
    );
    assert_eq!(
        Errno::from(&Error::from(ErrorKind::ReadOnlyFilesystem)),
        Errno::Perm
    );
    assert_eq!(
        Errno::from(&Error::from(ErrorKind::InvalidInput)),
        Errno::Inval
    );
    assert_eq!(
        Errno::from(&Error::from(ErrorKind::UnexpectedEof)),
        Errno::Io
    );
}
