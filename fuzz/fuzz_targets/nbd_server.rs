//! Fuzzes an NBD server connection with arbitrary client bytes, from the
//! handshake on or after a valid handshake, fed in pieces of varying size.
//! Nothing may panic; no request may reach the daemon outside the export,
//! empty, or over the payload limit; every request accepts a correct
//! reply; and after end of input the connection must be closed.

#![no_main]

use libfuzzer_sys::fuzz_target;
use nbd::{Command, Event, Export, Limits, Reply, ServerConnection};

const SIZE: u64 = 1 << 16;
const MAX_PAYLOAD: u32 = 4096;

/// An option as a client sends it.
fn option(number: u32, data: &[u8]) -> Vec<u8> {
    let mut bytes = b"IHAVEOPT".to_vec();
    bytes.extend_from_slice(&number.to_be_bytes());
    bytes.extend_from_slice(&(data.len() as u32).to_be_bytes());
    bytes.extend_from_slice(data);
    bytes
}

/// A valid handshake chosen by `selector`, or none.
fn handshake(selector: u8) -> Vec<u8> {
    let go_default = option(7, &[0, 0, 0, 0, 0, 0]);
    let set_base_allocation = {
        let query = b"base:allocation";
        let mut data = vec![0, 0, 0, 0, 0, 0, 0, 1];
        data.extend_from_slice(&(query.len() as u32).to_be_bytes());
        data.extend_from_slice(query);
        option(10, &data)
    };
    match selector % 4 {
        0 => Vec::new(),
        1 => [&[0, 0, 0, 3][..], &go_default].concat(),
        2 => [
            &[0, 0, 0, 3][..],
            &option(8, &[]),
            &set_base_allocation,
            &go_default,
        ]
        .concat(),
        _ => [&[0, 0, 0, 1][..], &option(1, b"r0")].concat(),
    }
}

fn check_and_answer(connection: &mut ServerConnection) {
    while let Some(event) = connection.poll_event() {
        let Event::Request(request) = event else {
            continue;
        };
        if let Some(range) = request.command.range() {
            assert!(
                range.start < range.end,
                "empty request: {:?}",
                request.command
            );
            assert!(
                range.end <= SIZE,
                "request past the end: {:?}",
                request.command
            );
        }
        let reply = match &request.command {
            Command::Read { length, .. } => {
                assert!(*length <= MAX_PAYLOAD);
                Reply::Data(vec![0; *length as usize])
            }
            Command::Write { data, .. } => {
                assert!(data.len() <= MAX_PAYLOAD as usize);
                Reply::Done
            }
            _ => Reply::Done,
        };
        connection
            .reply(request.id, Ok(reply))
            .expect("a correct reply was refused");
    }
    while connection.poll_transmit().is_some() {}
}

fuzz_target!(|data: &[u8]| {
    let Some((&control, input)) = data.split_first() else {
        return;
    };
    let limits = Limits {
        max_payload: MAX_PAYLOAD,
        max_option_length: 512,
        ..Limits::default()
    };
    let mut connection = ServerConnection::new(Export::new("r0", SIZE), limits);
    connection.receive(&handshake(control));
    check_and_answer(&mut connection);
    let piece_length = usize::from(control >> 2) + 1;
    for piece in input.chunks(piece_length) {
        connection.receive(piece);
        check_and_answer(&mut connection);
    }
    connection.receive_eof();
    check_and_answer(&mut connection);
    assert!(
        connection.is_closed(),
        "not closed after end of input with every request answered"
    );
});
