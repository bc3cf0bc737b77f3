//! The client side, for tests: encoders of options and requests written
//! from the specification, and helpers that drive a [`ServerConnection`]
//! through a handshake.

#![allow(dead_code)] // Each test binary uses its own subset.

use nbd::{Command, Event, Export, Limits, ServerConnection};

pub const IHAVEOPT: &[u8; 8] = b"IHAVEOPT";
pub const REQUEST_MAGIC: [u8; 4] = [0x25, 0x60, 0x95, 0x13];
pub const OPTION_REPLY_MAGIC: [u8; 8] = [0x00, 0x03, 0xe8, 0x89, 0x04, 0x55, 0x65, 0xa9];
pub const SIMPLE_REPLY_MAGIC: [u8; 4] = [0x67, 0x44, 0x66, 0x98];
pub const STRUCTURED_REPLY_MAGIC: [u8; 4] = [0x66, 0x8e, 0x33, 0xef];

pub const CMD_READ: u16 = 0;
pub const CMD_WRITE: u16 = 1;
pub const CMD_DISC: u16 = 2;
pub const CMD_FLUSH: u16 = 3;
pub const CMD_TRIM: u16 = 4;
pub const CMD_WRITE_ZEROES: u16 = 6;
pub const CMD_BLOCK_STATUS: u16 = 7;

pub const FUA: u16 = 1;
pub const NO_HOLE: u16 = 2;
pub const DF: u16 = 4;
pub const REQ_ONE: u16 = 8;

/// The export most tests use: "r0", 1 MiB, writable.
pub fn export() -> Export {
    Export::new("r0", 1 << 20)
}

/// An option as the client sends it: IHAVEOPT, option, length, data.
pub fn option(option: u32, data: &[u8]) -> Vec<u8> {
    let mut bytes = IHAVEOPT.to_vec();
    bytes.extend_from_slice(&option.to_be_bytes());
    bytes.extend_from_slice(&(data.len() as u32).to_be_bytes());
    bytes.extend_from_slice(data);
    bytes
}

/// The data of NBD_OPT_INFO / NBD_OPT_GO.
pub fn info_data(name: &str, requests: &[u16]) -> Vec<u8> {
    let mut data = (name.len() as u32).to_be_bytes().to_vec();
    data.extend_from_slice(name.as_bytes());
    data.extend_from_slice(&(requests.len() as u16).to_be_bytes());
    for request in requests {
        data.extend_from_slice(&request.to_be_bytes());
    }
    data
}

/// The data of NBD_OPT_LIST_META_CONTEXT / NBD_OPT_SET_META_CONTEXT.
pub fn meta_context_data(name: &str, queries: &[&str]) -> Vec<u8> {
    let mut data = (name.len() as u32).to_be_bytes().to_vec();
    data.extend_from_slice(name.as_bytes());
    data.extend_from_slice(&(queries.len() as u32).to_be_bytes());
    for query in queries {
        data.extend_from_slice(&(query.len() as u32).to_be_bytes());
        data.extend_from_slice(query.as_bytes());
    }
    data
}

/// A request header (and no payload).
pub fn request(flags: u16, kind: u16, cookie: u64, offset: u64, length: u32) -> Vec<u8> {
    let mut bytes = REQUEST_MAGIC.to_vec();
    bytes.extend_from_slice(&flags.to_be_bytes());
    bytes.extend_from_slice(&kind.to_be_bytes());
    bytes.extend_from_slice(&cookie.to_be_bytes());
    bytes.extend_from_slice(&offset.to_be_bytes());
    bytes.extend_from_slice(&length.to_be_bytes());
    bytes
}

/// A WRITE request with its payload.
pub fn write_request(flags: u16, cookie: u64, offset: u64, data: &[u8]) -> Vec<u8> {
    let mut bytes = request(flags, CMD_WRITE, cookie, offset, data.len() as u32);
    bytes.extend_from_slice(data);
    bytes
}

/// The wire form of a command, as a client would send it: the test-only
/// inverse of the connection's decoder.
pub fn encode_command(cookie: u64, command: &Command) -> Vec<u8> {
    let fua_flag = |fua: bool| if fua { FUA } else { 0 };
    match command {
        Command::Read { offset, length } => request(0, CMD_READ, cookie, *offset, *length),
        Command::Write { offset, data, fua } => {
            write_request(fua_flag(*fua), cookie, *offset, data)
        }
        Command::Flush => request(0, CMD_FLUSH, cookie, 0, 0),
        Command::Trim {
            offset,
            length,
            fua,
        } => request(fua_flag(*fua), CMD_TRIM, cookie, *offset, *length),
        Command::WriteZeroes {
            offset,
            length,
            fua,
            no_hole,
        } => {
            let flags = fua_flag(*fua) | if *no_hole { NO_HOLE } else { 0 };
            request(flags, CMD_WRITE_ZEROES, cookie, *offset, *length)
        }
        Command::BlockStatus { offset, length } => {
            request(0, CMD_BLOCK_STATUS, cookie, *offset, *length)
        }
    }
}

/// What the client negotiates before NBD_OPT_GO.
#[derive(Clone, Copy)]
pub struct Negotiation {
    pub structured_replies: bool,
    pub base_allocation: bool,
}

pub const SIMPLE: Negotiation = Negotiation {
    structured_replies: false,
    base_allocation: false,
};
pub const STRUCTURED: Negotiation = Negotiation {
    structured_replies: true,
    base_allocation: true,
};

/// The client's whole handshake: flags (fixed newstyle, no zeroes), the
/// options of `negotiation`, and NBD_OPT_GO for the default export.
pub fn handshake_bytes(negotiation: Negotiation) -> Vec<u8> {
    let mut bytes = vec![0, 0, 0, 3];
    if negotiation.structured_replies {
        bytes.extend(option(8, &[]));
    }
    if negotiation.base_allocation {
        bytes.extend(option(10, &meta_context_data("", &["base:allocation"])));
    }
    bytes.extend(option(7, &info_data("", &[])));
    bytes
}

/// A connection past NBD_OPT_GO, with its handshake output and events
/// drained.
pub fn connected(export: Export, limits: Limits, negotiation: Negotiation) -> ServerConnection {
    let mut connection = ServerConnection::new(export, limits);
    connection.receive(&handshake_bytes(negotiation));
    let events = events(&mut connection);
    assert!(
        matches!(events.as_slice(), [Event::HandshakeDone(_)]),
        "handshake failed: {events:?}"
    );
    output(&mut connection);
    connection
}

/// Everything the connection has to send, concatenated.
pub fn output(connection: &mut ServerConnection) -> Vec<u8> {
    let mut bytes = Vec::new();
    while let Some(buffer) = connection.poll_transmit() {
        bytes.extend(buffer);
    }
    bytes
}

/// Every pending event.
pub fn events(connection: &mut ServerConnection) -> Vec<Event> {
    std::iter::from_fn(|| connection.poll_event()).collect()
}

/// An option reply as the server should send it.
pub fn option_reply(option: u32, reply_type: u32, data: &[u8]) -> Vec<u8> {
    let mut bytes = OPTION_REPLY_MAGIC.to_vec();
    bytes.extend_from_slice(&option.to_be_bytes());
    bytes.extend_from_slice(&reply_type.to_be_bytes());
    bytes.extend_from_slice(&(data.len() as u32).to_be_bytes());
    bytes.extend_from_slice(data);
    bytes
}

/// A simple reply header as the server should send it.
pub fn simple_reply(error: u32, cookie: u64) -> Vec<u8> {
    let mut bytes = SIMPLE_REPLY_MAGIC.to_vec();
    bytes.extend_from_slice(&error.to_be_bytes());
    bytes.extend_from_slice(&cookie.to_be_bytes());
    bytes
}

/// A structured reply chunk as the server should send it.
pub fn chunk(flags: u16, kind: u16, cookie: u64, payload: &[u8]) -> Vec<u8> {
    let mut bytes = STRUCTURED_REPLY_MAGIC.to_vec();
    bytes.extend_from_slice(&flags.to_be_bytes());
    bytes.extend_from_slice(&kind.to_be_bytes());
    bytes.extend_from_slice(&cookie.to_be_bytes());
    bytes.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    bytes.extend_from_slice(payload);
    bytes
}

/// The single request among the pending events.
pub fn one_request(connection: &mut ServerConnection) -> nbd::Request {
    match events(connection).as_slice() {
        [Event::Request(request)] => request.clone(),
        other => panic!("expected one request, got {other:?}"),
    }
}
