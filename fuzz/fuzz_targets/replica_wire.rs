//! Fuzzes the replication peer protocol: arbitrary bytes, fed to the frame
//! decoder in pieces of varying size, and every decoded message fed to a
//! handshake in progress. Nothing may panic; the decoder may keep at most
//! one incomplete frame and reports at most one error, after which it keeps
//! nothing; every message it yields encodes and decodes back to itself.

#![no_main]

use libfuzzer_sys::fuzz_target;
use replica::auth::{AuthConfig, Authenticator, SharedSecret};
use replica::superblock::NodeName;
use replica::wire::{FrameDecoder, MAX_FRAME_LEN, Message, ResourceName};

fn authenticator(with_secret: bool) -> Authenticator {
    let config = AuthConfig {
        local_node: NodeName::new("ha1").expect("valid name"),
        peer_node: NodeName::new("ha2").expect("valid name"),
        resource: ResourceName::new("r0").expect("valid name"),
        secret: with_secret.then(|| SharedSecret::new(b"secret").expect("non-empty")),
    };
    Authenticator::new(config, [7; 32]).expect("distinct node names")
}

fn check_round_trip(message: &Message) {
    let mut bytes = Vec::new();
    message.encode(&mut bytes);
    assert!(bytes.len() <= MAX_FRAME_LEN, "encoded past the frame limit");
    let mut decoder = FrameDecoder::new();
    decoder.push(&bytes);
    match decoder.next() {
        Some(Ok(again)) => assert_eq!(&again, message, "re-decoded differently"),
        other => panic!("{message:?} re-encoded to a frame that gives {other:?}"),
    }
    assert_eq!(decoder.buffered_len(), 0);
}

fuzz_target!(|data: &[u8]| {
    let Some((&control, input)) = data.split_first() else {
        return;
    };
    let piece_length = usize::from(control >> 1) + 1;
    let mut handshake = authenticator(control & 1 == 1);
    let mut decoder = FrameDecoder::new();
    let mut errors = 0;
    for piece in input.chunks(piece_length) {
        decoder.push(piece);
        for result in decoder.by_ref() {
            match result {
                Ok(message) => {
                    check_round_trip(&message);
                    let _ = handshake.receive(message);
                    while handshake.poll_transmit().is_some() {}
                }
                Err(_) => errors += 1,
            }
        }
        assert!(errors <= 1, "more than one error from one stream");
        assert!(decoder.buffered_len() < MAX_FRAME_LEN, "buffer past one frame");
        if decoder.has_failed() {
            assert_eq!(decoder.buffered_len(), 0, "kept bytes after failing");
        }
    }
    let _ = decoder.finish();
});
