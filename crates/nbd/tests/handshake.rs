//! The fixed newstyle handshake, checked against byte vectors written out
//! by hand from the NBD specification (`doc/proto.md`).

mod common;

use common::*;
use nbd::{DisconnectReason, Event, Export, Limits, Negotiated, ProtocolError, ServerConnection};

/// Magic of every option reply, 0x0003e889045565a9.
const REPLY: [u8; 8] = [0x00, 0x03, 0xe8, 0x89, 0x04, 0x55, 0x65, 0xa9];

/// A connection whose greeting has been taken.
fn fresh(export: Export, limits: Limits) -> ServerConnection {
    let mut connection = ServerConnection::new(export, limits);
    output(&mut connection);
    connection
}

fn concat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

#[test]
fn greeting_is_nbdmagic_ihaveopt_and_fixed_newstyle_with_no_zeroes() {
    let mut connection = ServerConnection::new(export(), Limits::default());
    let expected = [
        0x4e, 0x42, 0x44, 0x4d, 0x41, 0x47, 0x49, 0x43, // NBDMAGIC
        0x49, 0x48, 0x41, 0x56, 0x45, 0x4f, 0x50, 0x54, // IHAVEOPT
        0x00, 0x03, // NBD_FLAG_FIXED_NEWSTYLE | NBD_FLAG_NO_ZEROES
    ];
    assert_eq!(output(&mut connection), expected);
    assert!(connection.wants_input());
    assert!(!connection.is_closed());
}

#[test]
fn go_with_no_zeroes_answers_info_export_and_ack_then_enters_transmission() {
    let mut connection = fresh(export(), Limits::default());
    connection.receive(&[
        0x00, 0x00, 0x00, 0x03, // client flags: fixed newstyle, no zeroes
        b'I', b'H', b'A', b'V', b'E', b'O', b'P', b'T', // option magic
        0x00, 0x00, 0x00, 0x07, // NBD_OPT_GO
        0x00, 0x00, 0x00, 0x06, // 6 bytes of data
        0x00, 0x00, 0x00, 0x00, // empty (default) export name
        0x00, 0x00, // no information requests
    ]);
    let expected = concat(&[
        &REPLY,
        &[0, 0, 0, 7],                // NBD_OPT_GO
        &[0, 0, 0, 3],                // NBD_REP_INFO
        &[0, 0, 0, 12],               // length
        &[0, 0],                      // NBD_INFO_EXPORT
        &[0, 0, 0, 0, 0, 0x10, 0, 0], // size 1 MiB
        &[0x00, 0x6d],                // HAS_FLAGS|SEND_FLUSH|SEND_FUA|SEND_TRIM|SEND_WRITE_ZEROES
        &REPLY,
        &[0, 0, 0, 7], // NBD_OPT_GO
        &[0, 0, 0, 1], // NBD_REP_ACK
        &[0, 0, 0, 0], // no data; and no zero padding after it
    ]);
    assert_eq!(output(&mut connection), expected);
    assert_eq!(
        events(&mut connection),
        vec![Event::HandshakeDone(Negotiated {
            transmission_flags: 0x6d,
            structured_replies: false,
            block_status: false,
        })]
    );
    // Transmission: a request is now decoded as one.
    connection.receive(&request(0, CMD_FLUSH, 1, 0, 0));
    assert!(matches!(
        events(&mut connection).as_slice(),
        [Event::Request(_)]
    ));
}

#[test]
fn info_answers_name_description_and_block_size_and_stays_in_the_handshake() {
    let export = Export {
        description: Some("test volume".to_owned()),
        read_only: true,
        multi_conn: true,
        ..export()
    };
    let mut connection = fresh(export, Limits::default());
    connection.receive(&[0, 0, 0, 3]);
    // NBD_OPT_INFO for "r0" asking NAME, DESCRIPTION, BLOCK_SIZE and an unknown type 99.
    connection.receive(&[
        b'I', b'H', b'A', b'V', b'E', b'O', b'P', b'T', 0, 0, 0, 6, 0, 0, 0, 16, // header
        0, 0, 0, 2, b'r', b'0', // name
        0, 4, 0, 1, 0, 2, 0, 3, 0, 99, // four information requests
    ]);
    let expected = concat(&[
        &REPLY,
        &[0, 0, 0, 6, 0, 0, 0, 3, 0, 0, 0, 12],
        &[0, 0, 0, 0, 0, 0, 0, 0x10, 0, 0],
        &[0x01, 0x0f], // HAS_FLAGS|READ_ONLY|SEND_FLUSH|SEND_FUA|CAN_MULTI_CONN
        &REPLY,
        &[0, 0, 0, 6, 0, 0, 0, 3, 0, 0, 0, 4],
        &[0, 1, b'r', b'0'], // NBD_INFO_NAME
        &REPLY,
        &[0, 0, 0, 6, 0, 0, 0, 3, 0, 0, 0, 13],
        &[0, 2],
        b"test volume", // NBD_INFO_DESCRIPTION
        &REPLY,
        &[0, 0, 0, 6, 0, 0, 0, 3, 0, 0, 0, 14],
        &[0, 3],          // NBD_INFO_BLOCK_SIZE
        &[0, 0, 0, 1],    // minimum 1
        &[0, 0, 0x10, 0], // preferred 4096
        &[0x02, 0, 0, 0], // maximum 32 MiB (the payload limit)
        &REPLY,
        &[0, 0, 0, 6, 0, 0, 0, 1, 0, 0, 0, 0], // NBD_REP_ACK
    ]);
    assert_eq!(output(&mut connection), expected);
    assert!(
        events(&mut connection).is_empty(),
        "INFO must not enter transmission"
    );
    // Still haggling: another option is answered.
    connection.receive(&option(3, &[]));
    assert!(output(&mut connection).starts_with(&concat(&[&REPLY, &[0, 0, 0, 3, 0, 0, 0, 2]])));
}

#[test]
fn info_and_go_for_another_export_answer_err_unknown() {
    let mut connection = fresh(export(), Limits::default());
    connection.receive(&[0, 0, 0, 3]);
    for opt in [6u32, 7] {
        connection.receive(&option(opt, &info_data("nope", &[])));
        let message = br#"no export named "nope"; this server serves "r0" (also reachable as the default export "")"#;
        let mut expected = REPLY.to_vec();
        expected.extend_from_slice(&opt.to_be_bytes());
        expected.extend_from_slice(&[0x80, 0, 0, 6]); // NBD_REP_ERR_UNKNOWN
        expected.extend_from_slice(&(message.len() as u32).to_be_bytes());
        expected.extend_from_slice(message);
        assert_eq!(output(&mut connection), expected);
    }
    assert!(events(&mut connection).is_empty());
    // The export's own name works.
    connection.receive(&option(7, &info_data("r0", &[])));
    assert!(matches!(
        events(&mut connection).as_slice(),
        [Event::HandshakeDone(_)]
    ));
}

#[test]
fn an_unavailable_export_refuses_go_and_info_with_the_reason_and_export_name_closes() {
    let reason = "r0 is Secondary on ha1: promote it first (haadm primary r0)";
    let unavailable = Export {
        unavailable: Some(reason.to_owned()),
        ..export()
    };
    let mut connection = fresh(unavailable.clone(), Limits::default());
    connection.receive(&[0, 0, 0, 3]);
    for opt in [6u32, 7] {
        connection.receive(&option(opt, &info_data("", &[])));
        let mut expected = REPLY.to_vec();
        expected.extend_from_slice(&opt.to_be_bytes());
        expected.extend_from_slice(&[0x80, 0, 0, 6]); // NBD_REP_ERR_UNKNOWN: not available
        expected.extend_from_slice(&(reason.len() as u32).to_be_bytes());
        expected.extend_from_slice(reason.as_bytes());
        assert_eq!(output(&mut connection), expected);
    }
    assert!(events(&mut connection).is_empty());

    let mut legacy = fresh(unavailable, Limits::default());
    legacy.receive(&[0, 0, 0, 1]);
    legacy.receive(&option(1, b""));
    assert!(matches!(
        events(&mut legacy).as_slice(),
        [Event::Disconnect(DisconnectReason::Protocol(
            ProtocolError::Unavailable(_)
        ))]
    ));
}

#[test]
fn malformed_go_is_err_invalid_and_the_handshake_goes_on() {
    let mut connection = fresh(export(), Limits::default());
    connection.receive(&[0, 0, 0, 3]);
    // Name length 9 with only 2 bytes after it.
    connection.receive(&option(7, &[0, 0, 0, 9, 0, 0]));
    let reply = output(&mut connection);
    assert_eq!(
        reply[..16],
        concat(&[&REPLY, &[0, 0, 0, 7, 0x80, 0, 0, 3]])[..]
    );
    let message = String::from_utf8(reply[20..].to_vec()).unwrap();
    assert!(
        message.contains("NBD_OPT_GO data is malformed"),
        "{message}"
    );
    assert!(events(&mut connection).is_empty());
    connection.receive(&option(7, &info_data("", &[])));
    assert!(matches!(
        events(&mut connection).as_slice(),
        [Event::HandshakeDone(_)]
    ));
}

#[test]
fn list_answers_one_server_entry_with_the_description_then_ack() {
    let export = Export {
        description: Some("test volume".to_owned()),
        ..export()
    };
    let mut connection = fresh(export, Limits::default());
    connection.receive(&[0, 0, 0, 3]);
    connection.receive(&[
        b'I', b'H', b'A', b'V', b'E', b'O', b'P', b'T', 0, 0, 0, 3, 0, 0, 0, 0,
    ]);
    let expected = concat(&[
        &REPLY,
        &[0, 0, 0, 3, 0, 0, 0, 2, 0, 0, 0, 17], // NBD_REP_SERVER, 17 bytes
        &[0, 0, 0, 2, b'r', b'0'],
        b"test volume",
        &REPLY,
        &[0, 0, 0, 3, 0, 0, 0, 1, 0, 0, 0, 0],
    ]);
    assert_eq!(output(&mut connection), expected);
}

#[test]
fn list_or_structured_reply_with_data_is_err_invalid() {
    let mut connection = fresh(export(), Limits::default());
    connection.receive(&[0, 0, 0, 3]);
    for opt in [3u32, 8] {
        connection.receive(&option(opt, b"xyz"));
        let reply = output(&mut connection);
        let mut header = REPLY.to_vec();
        header.extend_from_slice(&opt.to_be_bytes());
        header.extend_from_slice(&[0x80, 0, 0, 3]);
        assert_eq!(reply[..16], header[..]);
        assert!(
            String::from_utf8_lossy(&reply[20..])
                .contains("takes no data, but the client sent 3 bytes")
        );
    }
    // STRUCTURED_REPLY was refused, so GO does not advertise DF.
    connection.receive(&option(7, &info_data("", &[])));
    let [Event::HandshakeDone(negotiated)] = events(&mut connection)[..] else {
        panic!()
    };
    assert!(!negotiated.structured_replies);
    assert_eq!(negotiated.transmission_flags, 0x6d);
}

#[test]
fn abort_is_acknowledged_and_ends_the_connection() {
    let mut connection = fresh(export(), Limits::default());
    connection.receive(&[0, 0, 0, 3]);
    connection.receive(&[
        b'I', b'H', b'A', b'V', b'E', b'O', b'P', b'T', 0, 0, 0, 2, 0, 0, 0, 0,
    ]);
    assert_eq!(
        output(&mut connection),
        concat(&[&REPLY, &[0, 0, 0, 2, 0, 0, 0, 1, 0, 0, 0, 0]])
    );
    assert_eq!(
        events(&mut connection),
        vec![Event::Disconnect(DisconnectReason::ClientAbort)]
    );
    assert!(connection.is_closed());
    assert!(!connection.wants_input());
    connection.receive(&option(3, &[]));
    assert!(
        output(&mut connection).is_empty(),
        "input after the end must be ignored"
    );
}

#[test]
fn abort_with_data_split_across_reads_still_ends_after_the_data() {
    let mut connection = fresh(export(), Limits::default());
    let bytes = [&[0, 0, 0, 3][..], &option(2, b"junk")].concat();
    for byte in &bytes[..bytes.len() - 1] {
        connection.receive(std::slice::from_ref(byte));
    }
    assert!(
        output(&mut connection).is_empty(),
        "ACK must wait for the whole option"
    );
    connection.receive(&bytes[bytes.len() - 1..]);
    assert_eq!(
        output(&mut connection),
        concat(&[&REPLY, &[0, 0, 0, 2, 0, 0, 0, 1, 0, 0, 0, 0]])
    );
    assert_eq!(
        events(&mut connection),
        vec![Event::Disconnect(DisconnectReason::ClientAbort)]
    );
    assert!(connection.is_closed());
}

#[test]
fn unknown_options_are_err_unsup_with_their_data_skipped() {
    let mut connection = fresh(export(), Limits::default());
    connection.receive(&[0, 0, 0, 3]);
    // Option 42 with 5 bytes of data, then NBD_OPT_STARTTLS (5), then LIST.
    let mut bytes = option(42, b"12345");
    bytes.extend(option(5, &[]));
    bytes.extend(option(3, &[]));
    connection.receive(&bytes);
    let unsup_42 = b"option 42 is not supported by this server";
    let unsup_5 = b"option 5 is not supported by this server";
    let expected = concat(&[
        &REPLY,
        &[0, 0, 0, 42, 0x80, 0, 0, 1, 0, 0, 0, unsup_42.len() as u8],
        unsup_42,
        &REPLY,
        &[0, 0, 0, 5, 0x80, 0, 0, 1, 0, 0, 0, unsup_5.len() as u8],
        unsup_5,
        &REPLY,
        &[0, 0, 0, 3, 0, 0, 0, 2, 0, 0, 0, 6, 0, 0, 0, 2, b'r', b'0'],
        &REPLY,
        &[0, 0, 0, 3, 0, 0, 0, 1, 0, 0, 0, 0],
    ]);
    assert_eq!(output(&mut connection), expected);
}

#[test]
fn export_name_reply_has_124_zeroes_unless_no_zeroes_was_negotiated() {
    for (client_flags, zeroes) in [(0u8, 124), (1, 124), (3, 0)] {
        let mut connection = fresh(export(), Limits::default());
        connection.receive(&[0, 0, 0, client_flags]);
        connection.receive(&[
            b'I', b'H', b'A', b'V', b'E', b'O', b'P', b'T', 0, 0, 0, 1, 0, 0, 0, 2, b'r', b'0',
        ]);
        let mut expected = vec![0, 0, 0, 0, 0, 0x10, 0, 0, 0x00, 0x6d];
        expected.resize(10 + zeroes, 0);
        assert_eq!(
            output(&mut connection),
            expected,
            "client flags {client_flags}"
        );
        assert!(matches!(
            events(&mut connection).as_slice(),
            [Event::HandshakeDone(_)]
        ));
    }
}

#[test]
fn export_name_for_the_default_export_after_structured_replies_advertises_df() {
    let mut connection = fresh(export(), Limits::default());
    connection.receive(&[0, 0, 0, 3]);
    connection.receive(&option(8, &[]));
    assert_eq!(
        output(&mut connection),
        concat(&[&REPLY, &[0, 0, 0, 8, 0, 0, 0, 1, 0, 0, 0, 0]])
    );
    connection.receive(&option(1, &[]));
    assert_eq!(
        output(&mut connection),
        [0, 0, 0, 0, 0, 0x10, 0, 0, 0x00, 0xed]
    );
}

#[test]
fn export_name_for_another_export_closes_without_a_reply() {
    let mut connection = fresh(export(), Limits::default());
    connection.receive(&[0, 0, 0, 3]);
    connection.receive(&option(1, b"other"));
    assert!(output(&mut connection).is_empty());
    assert_eq!(
        events(&mut connection),
        vec![Event::Disconnect(
            ProtocolError::UnknownExport {
                requested: "other".to_owned(),
                served: "r0".to_owned()
            }
            .into()
        )]
    );
    assert!(connection.is_closed());
}

#[test]
fn unknown_client_flags_close_the_connection() {
    let mut connection = fresh(export(), Limits::default());
    connection.receive(&[0, 0, 0, 7]);
    assert_eq!(
        events(&mut connection),
        vec![Event::Disconnect(
            ProtocolError::UnknownClientFlags(7).into()
        )]
    );
    connection.receive(&option(3, &[]));
    assert!(output(&mut connection).is_empty());
    assert!(connection.is_closed());
}

#[test]
fn an_option_without_ihaveopt_closes_the_connection() {
    let mut connection = fresh(export(), Limits::default());
    connection.receive(&[0, 0, 0, 3]);
    connection.receive(b"GET / HTTP/1.1\r\n");
    assert_eq!(
        events(&mut connection),
        vec![Event::Disconnect(
            ProtocolError::BadOptionMagic(u64::from_be_bytes(*b"GET / HT")).into()
        )]
    );
    assert!(output(&mut connection).is_empty());
}

#[test]
fn option_data_over_the_limit_is_skipped_and_answered_too_big() {
    let limits = Limits {
        max_option_length: 8,
        ..Limits::default()
    };
    let mut connection = fresh(export(), limits);
    connection.receive(&[0, 0, 0, 3]);
    // GO with 10 bytes: over the limit of 8.
    let mut bytes = option(7, &info_data("r0", &[0]));
    bytes.extend(option(3, &[]));
    connection.receive(&bytes);
    let message = b"NBD_OPT_GO carries 10 bytes of data; this server accepts at most 8";
    let expected = concat(&[
        &REPLY,
        &[0, 0, 0, 7, 0x80, 0, 0, 9, 0, 0, 0, message.len() as u8],
        message,
        &REPLY,
        &[0, 0, 0, 3, 0, 0, 0, 2, 0, 0, 0, 6, 0, 0, 0, 2, b'r', b'0'],
        &REPLY,
        &[0, 0, 0, 3, 0, 0, 0, 1, 0, 0, 0, 0],
    ]);
    assert_eq!(output(&mut connection), expected);
    // An export name over the limit cannot be refused: it closes.
    connection.receive(&option(1, b"123456789"));
    assert_eq!(
        events(&mut connection),
        vec![Event::Disconnect(
            ProtocolError::ExportNameTooLong {
                length: 9,
                limit: 8
            }
            .into()
        )]
    );
}

#[test]
fn huge_unknown_option_is_skipped_without_buffering() {
    let mut connection = fresh(export(), Limits::default());
    connection.receive(&[0, 0, 0, 3]);
    connection.receive(&[
        b'I', b'H', b'A', b'V', b'E', b'O', b'P', b'T', 0, 0, 0, 99, 0x10, 0, 0, 0,
    ]);
    // 256 MiB of data, fed in 1 MiB pieces.
    let chunk = vec![0u8; 1 << 20];
    for _ in 0..255 {
        connection.receive(&chunk);
    }
    assert!(
        output(&mut connection).is_empty(),
        "answered before the data ended"
    );
    connection.receive(&[&chunk[..], &option(3, &[])].concat());
    let reply = output(&mut connection);
    assert_eq!(
        reply[..16],
        concat(&[&REPLY, &[0, 0, 0, 99, 0x80, 0, 0, 1]])[..]
    );
}

#[test]
fn set_meta_context_needs_structured_replies_first() {
    let mut connection = fresh(export(), Limits::default());
    connection.receive(&[0, 0, 0, 3]);
    connection.receive(&option(10, &meta_context_data("", &["base:allocation"])));
    let reply = output(&mut connection);
    assert_eq!(
        reply[..16],
        concat(&[&REPLY, &[0, 0, 0, 10, 0x80, 0, 0, 3]])[..]
    );
    assert!(String::from_utf8_lossy(&reply[20..]).contains("needs NBD_OPT_STRUCTURED_REPLY first"));
}

#[test]
fn set_meta_context_selects_base_allocation_only() {
    let mut connection = fresh(export(), Limits::default());
    connection.receive(&[0, 0, 0, 3]);
    connection.receive(&option(8, &[]));
    output(&mut connection);
    connection.receive(&option(
        10,
        &meta_context_data("r0", &["qemu:dirty-bitmap:x", "base:allocation"]),
    ));
    let expected = concat(&[
        &REPLY,
        &[0, 0, 0, 10, 0, 0, 0, 4, 0, 0, 0, 19], // NBD_REP_META_CONTEXT
        &[0, 0, 0, 1],
        b"base:allocation", // context id 1
        &REPLY,
        &[0, 0, 0, 10, 0, 0, 0, 1, 0, 0, 0, 0],
    ]);
    assert_eq!(output(&mut connection), expected);
    connection.receive(&option(7, &info_data("", &[])));
    let reply = output(&mut connection);
    assert_eq!(reply[20..32], [0, 0, 0, 0, 0, 0, 0, 0x10, 0, 0, 0x00, 0xed]);
    assert_eq!(
        events(&mut connection),
        vec![Event::HandshakeDone(Negotiated {
            transmission_flags: 0xed,
            structured_replies: true,
            block_status: true,
        })]
    );
}

#[test]
fn a_later_set_meta_context_without_base_allocation_replaces_the_selection() {
    let mut connection = fresh(export(), Limits::default());
    let mut bytes = vec![0, 0, 0, 3];
    bytes.extend(option(8, &[]));
    bytes.extend(option(10, &meta_context_data("", &["base:allocation"])));
    bytes.extend(option(10, &meta_context_data("", &["x-other:thing"])));
    connection.receive(&bytes);
    let replies = output(&mut connection);
    // The last SET_META_CONTEXT is answered by a bare ACK.
    assert!(replies.ends_with(&concat(&[&REPLY, &[0, 0, 0, 10, 0, 0, 0, 1, 0, 0, 0, 0]])));
    connection.receive(&option(7, &info_data("", &[])));
    let [Event::HandshakeDone(negotiated)] = events(&mut connection)[..] else {
        panic!()
    };
    assert!(!negotiated.block_status);
}

#[test]
fn list_meta_context_lists_base_allocation_with_id_zero() {
    let mut connection = fresh(export(), Limits::default());
    connection.receive(&[0, 0, 0, 3]);
    connection.receive(&option(8, &[]));
    output(&mut connection);
    let listed = concat(&[
        &REPLY,
        &[0, 0, 0, 9, 0, 0, 0, 4, 0, 0, 0, 19],
        &[0, 0, 0, 0],
        b"base:allocation",
        &REPLY,
        &[0, 0, 0, 9, 0, 0, 0, 1, 0, 0, 0, 0],
    ]);
    for queries in [&[][..], &["base:"][..], &["x-y:", "base:allocation"][..]] {
        connection.receive(&option(9, &meta_context_data("", queries)));
        assert_eq!(output(&mut connection), listed, "queries {queries:?}");
    }
    connection.receive(&option(9, &meta_context_data("", &["qemu:"])));
    assert_eq!(
        output(&mut connection),
        concat(&[&REPLY, &[0, 0, 0, 9, 0, 0, 0, 1, 0, 0, 0, 0]])
    );
    // Listing selects nothing.
    connection.receive(&option(7, &info_data("", &[])));
    let [Event::HandshakeDone(negotiated)] = events(&mut connection)[..] else {
        panic!()
    };
    assert!(!negotiated.block_status);
}

#[test]
fn meta_context_for_another_export_is_err_unknown() {
    let mut connection = fresh(export(), Limits::default());
    connection.receive(&[0, 0, 0, 3]);
    connection.receive(&option(8, &[]));
    output(&mut connection);
    connection.receive(&option(
        10,
        &meta_context_data("nope", &["base:allocation"]),
    ));
    let reply = output(&mut connection);
    assert_eq!(
        reply[..16],
        concat(&[&REPLY, &[0, 0, 0, 10, 0x80, 0, 0, 6]])[..]
    );
}

#[test]
fn shutdown_refuses_options_but_still_acknowledges_abort() {
    let mut connection = fresh(export(), Limits::default());
    connection.receive(&[0, 0, 0, 3]);
    connection.shutdown();
    connection.receive(&option(7, &info_data("", &[])));
    let reply = output(&mut connection);
    assert_eq!(
        reply[..16],
        concat(&[&REPLY, &[0, 0, 0, 7, 0x80, 0, 0, 7]])[..]
    );
    assert!(events(&mut connection).is_empty());
    connection.receive(&option(2, &[]));
    assert_eq!(
        output(&mut connection),
        concat(&[&REPLY, &[0, 0, 0, 2, 0, 0, 0, 1, 0, 0, 0, 0]])
    );
    assert_eq!(
        events(&mut connection),
        vec![Event::Disconnect(DisconnectReason::ClientAbort)]
    );
}

#[test]
fn shutdown_closes_a_client_that_sends_export_name() {
    let mut connection = fresh(export(), Limits::default());
    connection.receive(&[0, 0, 0, 3]);
    connection.shutdown();
    connection.receive(&option(1, b""));
    assert!(output(&mut connection).is_empty());
    assert_eq!(
        events(&mut connection),
        vec![Event::Disconnect(DisconnectReason::Shutdown)]
    );
}

#[test]
fn end_of_input_reports_whether_a_message_was_cut() {
    let mut connection = fresh(export(), Limits::default());
    connection.receive(&[0, 0, 0, 3]);
    connection.receive(&option(3, &[])[..10]);
    connection.receive_eof();
    assert_eq!(
        events(&mut connection),
        vec![Event::Disconnect(DisconnectReason::Eof { mid_frame: true })]
    );
    assert!(connection.is_closed());

    let mut connection = fresh(export(), Limits::default());
    connection.receive(&[0, 0, 0, 3]);
    connection.receive_eof();
    connection.receive_eof();
    assert_eq!(
        events(&mut connection),
        vec![Event::Disconnect(DisconnectReason::Eof {
            mid_frame: false
        })],
        "a second EOF must not add an event"
    );
}
