//! The connection handshake: two authenticators talking through the wire
//! codec succeed with and without a secret, and every refusal (wrong secret,
//! unknown node, another resource, version, secret mismatch, out of order,
//! reflection) ends the handshake with its reason on both sides.

use replica::auth::{
    AuthConfig, AuthConfigError, AuthError, Authenticator, Challenge, Progress, SharedSecret,
    random_challenge, response,
};
use replica::superblock::NodeName;
use replica::wire::{
    FrameDecoder, Hello, Message, MessageType, ResourceName, SUPPORTED_VERSIONS, VersionRange,
};

const CHALLENGE_A: Challenge = [0xaa; 32];
const CHALLENGE_B: Challenge = [0xbb; 32];

fn node(name: &str) -> NodeName {
    NodeName::new(name).unwrap()
}

fn resource(name: &str) -> ResourceName {
    ResourceName::new(name).unwrap()
}

fn config(local: &str, peer: &str, resource_name: &str, secret: Option<&str>) -> AuthConfig {
    AuthConfig {
        local_node: node(local),
        peer_node: node(peer),
        resource: resource(resource_name),
        secret: secret.map(|secret| SharedSecret::new(secret.as_bytes()).unwrap()),
    }
}

fn start(config: AuthConfig, challenge: Challenge) -> Authenticator {
    Authenticator::new(config, challenge).unwrap()
}

/// How one side's handshake ended.
#[derive(Debug)]
enum Outcome {
    Through(Progress),
    Refused(AuthError),
    Stuck,
}

/// One direction of a connection: frames encoded by the sender, decoded by
/// the receiver.
#[derive(Default)]
struct Pipe {
    decoder: FrameDecoder,
}

impl Pipe {
    fn carry(&mut self, message: &Message) -> Message {
        let mut bytes = Vec::new();
        message.encode(&mut bytes);
        self.decoder.push(&bytes);
        let decoded = self.decoder.next().expect("a whole frame").unwrap();
        assert_eq!(self.decoder.buffered_len(), 0);
        decoded
    }
}

/// Runs both handshakes until neither side has anything to send; returns
/// each side's outcome.
fn run(mut a: Authenticator, mut b: Authenticator) -> (Outcome, Outcome) {
    let (mut a_to_b, mut b_to_a) = (Pipe::default(), Pipe::default());
    let (mut a_outcome, mut b_outcome) = (Outcome::Stuck, Outcome::Stuck);
    loop {
        let mut moved = false;
        while let Some(message) = a.poll_transmit() {
            moved = true;
            if matches!(b_outcome, Outcome::Stuck) {
                deliver(&mut b, a_to_b.carry(&message), &mut b_outcome);
            }
        }
        while let Some(message) = b.poll_transmit() {
            moved = true;
            if matches!(a_outcome, Outcome::Stuck) {
                deliver(&mut a, b_to_a.carry(&message), &mut a_outcome);
            }
        }
        if !moved {
            return (a_outcome, b_outcome);
        }
    }
}

fn deliver(side: &mut Authenticator, message: Message, outcome: &mut Outcome) {
    match side.receive(message) {
        Ok(Progress::InProgress) => {}
        Ok(done) => *outcome = Outcome::Through(done),
        Err(error) => *outcome = Outcome::Refused(error),
    }
}

fn authenticated(outcome: Outcome) -> replica::auth::Agreement {
    match outcome {
        Outcome::Through(Progress::Authenticated(agreement)) => agreement,
        other => panic!("expected success, got {other:?}"),
    }
}

fn refused(outcome: Outcome) -> AuthError {
    match outcome {
        Outcome::Refused(error) => error,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

fn drain(side: &mut Authenticator) -> Vec<Message> {
    std::iter::from_fn(|| side.poll_transmit()).collect()
}

fn hello(from: &str, resource_name: &str, versions: VersionRange, auth: bool) -> Message {
    Message::Hello(Hello {
        versions,
        node: node(from),
        resource: resource(resource_name),
        auth,
    })
}

#[test]
fn both_sides_authenticate_with_the_same_secret() {
    let a = start(config("ha1", "ha2", "r0", Some("s3cret")), CHALLENGE_A);
    let b = start(config("ha2", "ha1", "r0", Some("s3cret")), CHALLENGE_B);
    let (a_outcome, b_outcome) = run(a, b);
    let a_agreed = authenticated(a_outcome);
    let b_agreed = authenticated(b_outcome);
    assert_eq!(a_agreed.version, SUPPORTED_VERSIONS.max());
    assert_eq!(b_agreed.version, a_agreed.version);
    assert_eq!(a_agreed.peer.node, node("ha2"));
    assert_eq!(b_agreed.peer.node, node("ha1"));
    assert!(a_agreed.peer.auth && b_agreed.peer.auth);
}

#[test]
fn without_secrets_the_hello_exchange_suffices() {
    let mut a = start(config("ha1", "ha2", "r0", None), CHALLENGE_A);
    let sent: Vec<MessageType> = drain(&mut a).iter().map(Message::message_type).collect();
    assert_eq!(sent, [MessageType::Hello], "no challenge without a secret");
    let a = start(config("ha1", "ha2", "r0", None), CHALLENGE_A);
    let b = start(config("ha2", "ha1", "r0", None), CHALLENGE_B);
    let (a_outcome, b_outcome) = run(a, b);
    assert!(!authenticated(a_outcome).peer.auth);
    authenticated(b_outcome);
}

#[test]
fn the_opening_flight_is_hello_then_challenge() {
    let mut a = start(config("ha1", "ha2", "r0", Some("s")), CHALLENGE_A);
    let sent = drain(&mut a);
    assert_eq!(
        sent,
        [
            hello("ha1", "r0", SUPPORTED_VERSIONS, true),
            Message::AuthChallenge {
                challenge: CHALLENGE_A
            },
        ]
    );
}

#[test]
fn a_wrong_secret_is_refused_on_both_sides() {
    let a = start(config("ha1", "ha2", "r0", Some("right")), CHALLENGE_A);
    let b = start(config("ha2", "ha1", "r0", Some("wrong")), CHALLENGE_B);
    let (a_outcome, b_outcome) = run(a, b);
    for (error, peer) in [(refused(a_outcome), "ha2"), (refused(b_outcome), "ha1")] {
        assert_eq!(
            error,
            AuthError::WrongResponse {
                peer: node(peer),
                resource: resource("r0")
            }
        );
        assert!(
            error.to_string().contains("shared-secret differs"),
            "{error}"
        );
    }
}

#[test]
fn an_unknown_node_name_is_refused_and_the_peer_learns_why() {
    let a = start(config("ha1", "ha2", "r0", Some("s")), CHALLENGE_A);
    // ha3 has the secret and expects ha1, but ha1 expects ha2.
    let b = start(config("ha3", "ha1", "r0", Some("s")), CHALLENGE_B);
    let (a_outcome, b_outcome) = run(a, b);
    assert_eq!(
        refused(a_outcome),
        AuthError::UnknownPeer {
            claimed: node("ha3"),
            expected: node("ha2"),
            resource: resource("r0"),
        }
    );
    let AuthError::RefusedByPeer { reason } = refused(b_outcome) else {
        panic!("ha3 should hear the refusal");
    };
    assert!(
        reason.as_str().contains("calls itself ha3"),
        "reason: {reason}"
    );
}

#[test]
fn another_resources_peer_is_refused() {
    let a = start(config("ha1", "ha2", "r0", Some("s")), CHALLENGE_A);
    let b = start(config("ha2", "ha1", "r1", Some("s")), CHALLENGE_B);
    let (a_outcome, b_outcome) = run(a, b);
    assert_eq!(
        refused(a_outcome),
        AuthError::WrongResource {
            peer: node("ha2"),
            offered: resource("r1"),
            resource: resource("r0"),
        }
    );
    assert!(matches!(
        refused(b_outcome),
        AuthError::WrongResource { .. }
    ));
}

#[test]
fn a_secret_on_one_side_only_is_refused() {
    let a = start(config("ha1", "ha2", "r0", Some("s")), CHALLENGE_A);
    let b = start(config("ha2", "ha1", "r0", None), CHALLENGE_B);
    let (a_outcome, b_outcome) = run(a, b);
    assert!(matches!(
        refused(a_outcome),
        AuthError::PeerHasNoSecret { .. }
    ));
    assert!(matches!(
        refused(b_outcome),
        AuthError::PeerWantsSecret { .. }
    ));
}

#[test]
fn no_common_version_is_refused_with_a_message() {
    let mut a = start(config("ha1", "ha2", "r0", None), CHALLENGE_A);
    drain(&mut a);
    let future =
        VersionRange::new(SUPPORTED_VERSIONS.max() + 1, SUPPORTED_VERSIONS.max() + 3).unwrap();
    let error = a.receive(hello("ha2", "r0", future, false)).unwrap_err();
    assert_eq!(
        error,
        AuthError::NoCommonVersion {
            peer: node("ha2"),
            ours: SUPPORTED_VERSIONS,
            theirs: future,
        }
    );
    let Some(Message::Refused { reason }) = a.poll_transmit() else {
        panic!("a Refused message should be queued");
    };
    assert!(
        reason.as_str().contains("upgrade the older node"),
        "{reason}"
    );
}

#[test]
fn an_overlapping_range_picks_our_highest_version() {
    let mut a = start(config("ha1", "ha2", "r0", None), CHALLENGE_A);
    drain(&mut a);
    let wide = VersionRange::new(1, 200).unwrap();
    assert_eq!(
        a.receive(hello("ha2", "r0", wide, false)),
        Ok(Progress::InProgress)
    );
    assert_eq!(
        a.poll_transmit(),
        Some(Message::HelloDone {
            version: SUPPORTED_VERSIONS.max()
        })
    );
}

#[test]
fn messages_out_of_order_are_refused() {
    let with_secret = || {
        let mut side = start(config("ha1", "ha2", "r0", Some("s")), CHALLENGE_A);
        drain(&mut side);
        side
    };
    let mut a = with_secret();
    assert_eq!(
        a.receive(Message::AuthResponse { response: [0; 32] }),
        Err(AuthError::OutOfOrder {
            expected: "Hello",
            received: MessageType::AuthResponse
        })
    );
    assert!(matches!(a.poll_transmit(), Some(Message::Refused { .. })));

    let mut a = with_secret();
    a.receive(hello("ha2", "r0", SUPPORTED_VERSIONS, true))
        .unwrap();
    assert_eq!(
        a.receive(Message::HelloDone { version: 1 }),
        Err(AuthError::OutOfOrder {
            expected: "AuthChallenge",
            received: MessageType::HelloDone
        }),
        "skipping authentication must not pass"
    );

    let mut a = with_secret();
    a.receive(hello("ha2", "r0", SUPPORTED_VERSIONS, true))
        .unwrap();
    assert!(matches!(
        a.receive(Message::Ping),
        Err(AuthError::OutOfOrder {
            received: MessageType::Ping,
            ..
        })
    ));
}

#[test]
fn after_an_error_the_handshake_stays_ended() {
    let mut a = start(config("ha1", "ha2", "r0", Some("s")), CHALLENGE_A);
    drain(&mut a);
    a.receive(Message::Ping).unwrap_err();
    drain(&mut a);
    assert!(matches!(
        a.receive(hello("ha2", "r0", SUPPORTED_VERSIONS, true)),
        Err(AuthError::OutOfOrder {
            expected: "nothing more (the handshake has ended)",
            ..
        })
    ));
    assert_eq!(a.poll_transmit(), None, "only one Refused is sent");
}

#[test]
fn a_refusal_from_the_peer_ends_the_handshake_without_an_answer() {
    let mut a = start(config("ha1", "ha2", "r0", Some("s")), CHALLENGE_A);
    drain(&mut a);
    let reason = replica::wire::Text::new("go away");
    assert_eq!(
        a.receive(Message::Refused {
            reason: reason.clone()
        }),
        Err(AuthError::RefusedByPeer { reason })
    );
    assert_eq!(a.poll_transmit(), None);
}

#[test]
fn a_disagreeing_hello_done_is_refused() {
    let mut a = start(config("ha1", "ha2", "r0", None), CHALLENGE_A);
    drain(&mut a);
    a.receive(hello("ha2", "r0", SUPPORTED_VERSIONS, false))
        .unwrap();
    assert_eq!(
        a.receive(Message::HelloDone { version: 99 }),
        Err(AuthError::VersionDisagreement {
            peer: node("ha2"),
            ours: SUPPORTED_VERSIONS.max(),
            theirs: 99
        })
    );
}

#[test]
fn a_reflected_challenge_is_refused() {
    let mut a = start(config("ha1", "ha2", "r0", Some("s")), CHALLENGE_A);
    drain(&mut a);
    a.receive(hello("ha2", "r0", SUPPORTED_VERSIONS, true))
        .unwrap();
    assert_eq!(
        a.receive(Message::AuthChallenge {
            challenge: CHALLENGE_A
        }),
        Err(AuthError::ReflectedChallenge { peer: node("ha2") })
    );
    assert!(
        matches!(a.poll_transmit(), Some(Message::Refused { .. })),
        "no response may be given to our own challenge"
    );
}

/// The attack the names in the MAC stop: an attacker without the secret
/// claims to be ha2, gets ha1's challenge on one connection, opens a second
/// connection to ha1 presenting that challenge as its own, and hands ha1's
/// answer back on the first connection.
#[test]
fn a_response_reflected_from_a_second_connection_is_refused() {
    let secret = Some("s3cret");
    let mut first = start(config("ha1", "ha2", "r0", secret), CHALLENGE_A);
    let mut second = start(config("ha1", "ha2", "r0", secret), CHALLENGE_B);
    drain(&mut first);
    drain(&mut second);
    let attacker_hello = hello("ha2", "r0", SUPPORTED_VERSIONS, true);

    first.receive(attacker_hello.clone()).unwrap();
    first
        .receive(Message::AuthChallenge {
            challenge: [0x11; 32],
        })
        .unwrap();
    drain(&mut first);

    second.receive(attacker_hello).unwrap();
    second
        .receive(Message::AuthChallenge {
            challenge: CHALLENGE_A,
        })
        .unwrap();
    let Some(Message::AuthResponse { response: stolen }) = second.poll_transmit() else {
        panic!("the second connection answers the challenge");
    };

    assert_eq!(
        first.receive(Message::AuthResponse { response: stolen }),
        Err(AuthError::WrongResponse {
            peer: node("ha2"),
            resource: resource("r0")
        })
    );
}

#[test]
fn responses_are_hmac_sha256_over_label_challenge_and_names() {
    let mut challenge = [0u8; 32];
    for (index, byte) in challenge.iter_mut().enumerate() {
        *byte = index as u8;
    }
    let secret = SharedSecret::new(b"change-me").unwrap();
    // Computed independently with Python's hmac module over
    // b"hapair-peer-auth-v1" + bytes(range(32)) + b"\x03ha1" + b"\x02r0".
    let expected = "21032216d606df9ecdf9b17e6ef60597c0988cd5594c92cf3819c87ba7e4cc1b";
    let answer = response(&secret, &challenge, &node("ha1"), &resource("r0"));
    let hex: String = answer.iter().map(|byte| format!("{byte:02x}")).collect();
    assert_eq!(hex, expected);
    assert_ne!(
        response(&secret, &challenge, &node("ha2"), &resource("r0")),
        answer,
        "the responder's name changes the answer"
    );
    assert_ne!(
        response(&secret, &challenge, &node("ha1"), &resource("r1")),
        answer,
        "the resource changes the answer"
    );
}

#[test]
fn bad_configurations_are_refused() {
    assert_eq!(
        SharedSecret::new(b"").unwrap_err(),
        AuthConfigError::EmptySecret
    );
    assert_eq!(
        Authenticator::new(config("ha1", "ha1", "r0", Some("s")), CHALLENGE_A).unwrap_err(),
        AuthConfigError::SameNodeName(node("ha1"))
    );
}

#[test]
fn secrets_do_not_show_in_debug_output() {
    let config = config("ha1", "ha2", "r0", Some("hunter2"));
    let printed = format!("{config:?}");
    assert!(!printed.contains("hunter2"), "{printed}");
}

#[test]
fn random_challenges_differ() {
    let first = random_challenge().unwrap();
    let second = random_challenge().unwrap();
    assert_ne!(first, second);
    assert_ne!(first, [0; 32]);
}
