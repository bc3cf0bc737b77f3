//! The connection handshake: hello, protocol version negotiation and mutual
//! HMAC-SHA256 challenge-response authentication on the shared secret
//! (drbd.conf `cram-hmac-alg sha256` and `shared-secret`), as a pure state
//! machine.
//!
//! Each side sends Hello and, when it has a secret, an AuthChallenge of 32
//! random bytes at once. Each answers the other's challenge with
//!
//! ```text
//! HMAC-SHA256(secret, "hapair-peer-auth-v1" || challenge
//!                     || len(own node) || own node || len(resource) || resource)
//! ```
//!
//! (lengths one byte each), checks the answer to its own challenge in
//! constant time, and sends HelloDone. A side is through when it has checked
//! the peer and received the peer's HelloDone.
//!
//! **Why the names are in the MAC.** Both sides share one secret and the
//! exchange is symmetric, so without names an attacker who knows no secret
//! could *reflect*: take the challenge A sent it, present that same challenge
//! to A (on a second connection, or back on the first), and hand A's own
//! answer back as "B's" answer. With the responder's node name inside the
//! MAC, A's answers name A and never pass as answers from B. The resource
//! name stops an answer given for one resource from authenticating a
//! connection for another that shares the secret; the fixed label keeps the
//! MAC from being valid in any other protocol that might reuse the secret.
//! A challenge equal to our own is refused outright.
//!
//! What this does not do: it proves that the peer knew the secret during
//! the handshake, nothing more. The stream afterwards is neither encrypted
//! nor integrity-protected, so someone able to relay and alter traffic can
//! take over an authenticated connection. Use a dedicated link or a VPN.

use std::collections::VecDeque;
use std::fmt;

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use thiserror::Error;

use crate::superblock::NodeName;
use crate::wire::{
    Hello, Message, MessageType, ResourceName, SUPPORTED_VERSIONS, Text, VersionRange,
};

/// Length of a challenge and of a response.
pub const CHALLENGE_LEN: usize = 32;

/// A random challenge.
pub type Challenge = [u8; CHALLENGE_LEN];

/// Separates our MACs from any other use of the same secret.
const DOMAIN_LABEL: &[u8] = b"hapair-peer-auth-v1";

/// A fresh challenge from the operating system's random source.
pub fn random_challenge() -> Result<Challenge, getrandom::Error> {
    let mut challenge = [0; CHALLENGE_LEN];
    getrandom::fill(&mut challenge)?;
    Ok(challenge)
}

/// The shared secret of a resource. Its `Debug` output hides the bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct SharedSecret(Vec<u8>);

impl SharedSecret {
    pub fn new(secret: &[u8]) -> Result<Self, AuthConfigError> {
        if secret.is_empty() {
            Err(AuthConfigError::EmptySecret)
        } else {
            Ok(Self(secret.to_vec()))
        }
    }
}

impl fmt::Debug for SharedSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SharedSecret(<hidden>)")
    }
}

/// The answer `responder` gives to `challenge` for `resource`.
pub fn response(
    secret: &SharedSecret,
    challenge: &Challenge,
    responder: &NodeName,
    resource: &ResourceName,
) -> Challenge {
    response_mac(secret, challenge, responder, resource)
        .finalize()
        .into_bytes()
        .into()
}

/// The MAC over everything a response covers, before finalising.
fn response_mac(
    secret: &SharedSecret,
    challenge: &Challenge,
    responder: &NodeName,
    resource: &ResourceName,
) -> Hmac<Sha256> {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(&secret.0).expect("HMAC accepts keys of any length");
    mac.update(DOMAIN_LABEL);
    mac.update(challenge);
    for name in [responder.as_str(), resource.as_str()] {
        // Names are at most 64 bytes (NodeName, ResourceName), so the
        // length fits one byte and the encoding is unambiguous.
        mac.update(&[name.len() as u8]);
        mac.update(name.as_bytes());
    }
    mac
}

/// Who we are, whom we expect, and the secret.
#[derive(Debug, Clone)]
pub struct AuthConfig {
    pub local_node: NodeName,
    pub peer_node: NodeName,
    pub resource: ResourceName,
    /// `None` when no shared-secret is configured: the peer must have none
    /// either, and no authentication takes place.
    pub secret: Option<SharedSecret>,
}

/// A configuration the handshake cannot run with.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum AuthConfigError {
    #[error("the shared-secret is empty: set 1 or more bytes, the same on both nodes")]
    EmptySecret,
    #[error(
        "the local node and its peer are both named {0}: the two nodes of a resource need \
         different names"
    )]
    SameNodeName(NodeName),
}

/// What both sides agreed on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Agreement {
    /// The protocol version for the rest of the connection.
    pub version: u8,
    /// The peer's Hello.
    pub peer: Hello,
}

/// How the handshake stands after a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    /// More messages are needed.
    InProgress,
    /// The peer is who it claims (and knows the secret, if one is set), and
    /// it accepted us: replication may start.
    Authenticated(Agreement),
}

/// Why a connection was refused, for the daemon's log. Except for
/// [`AuthError::RefusedByPeer`], a `Refused` message carrying this text is
/// queued for the peer.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum AuthError {
    #[error("the peer sent {received} where the handshake expects {expected}")]
    OutOfOrder {
        expected: &'static str,
        received: MessageType,
    },
    #[error(
        "the peer ({peer}) replicates resource {offered}, not {resource}: the address configured \
         for {resource} reaches another resource's replicad (check addresses and ports)"
    )]
    WrongResource {
        peer: NodeName,
        offered: ResourceName,
        resource: ResourceName,
    },
    #[error(
        "the peer calls itself {claimed}, but the peer of {resource} is {expected}: check the node \
         names in the config of both nodes"
    )]
    UnknownPeer {
        claimed: NodeName,
        expected: NodeName,
        resource: ResourceName,
    },
    #[error(
        "no common protocol version with peer {peer}: this replicad speaks {ours}, the peer \
         {theirs}; upgrade the older node"
    )]
    NoCommonVersion {
        peer: NodeName,
        ours: VersionRange,
        theirs: VersionRange,
    },
    #[error(
        "peer {peer} has no shared-secret for {resource}, but this node has: configure the same \
         shared-secret on both nodes"
    )]
    PeerHasNoSecret {
        peer: NodeName,
        resource: ResourceName,
    },
    #[error(
        "peer {peer} wants authentication for {resource}, but this node has no shared-secret: \
         configure the same shared-secret on both nodes"
    )]
    PeerWantsSecret {
        peer: NodeName,
        resource: ResourceName,
    },
    #[error(
        "peer {peer} sent our own challenge back: a reflection attack, or a connection looping \
         back to this node"
    )]
    ReflectedChallenge { peer: NodeName },
    #[error(
        "peer {peer} failed authentication for {resource}: its answer to our challenge is wrong, \
         so its shared-secret differs from ours (or it is not really {peer})"
    )]
    WrongResponse {
        peer: NodeName,
        resource: ResourceName,
    },
    #[error(
        "peer {peer} settled on protocol version {theirs}, this node on {ours}; the peer \
         negotiates wrongly"
    )]
    VersionDisagreement {
        peer: NodeName,
        ours: u8,
        theirs: u8,
    },
    #[error("the peer refused the connection: {reason}")]
    RefusedByPeer { reason: Text },
}

/// Where the handshake stands: the peer message it waits for, with what
/// was agreed so far.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Stage {
    Hello,
    /// Only reached with a secret.
    Challenge(Agreement),
    /// Only reached with a secret.
    Response(Agreement),
    HelloDone(Agreement),
    Ended,
}

impl Stage {
    fn expected(&self) -> &'static str {
        match self {
            Stage::Hello => "Hello",
            Stage::Challenge(_) => "AuthChallenge",
            Stage::Response(_) => "AuthResponse",
            Stage::HelloDone(_) => "HelloDone",
            Stage::Ended => "nothing more (the handshake has ended)",
        }
    }
}

/// The handshake of one connection, from one side.
///
/// Send what [`poll_transmit`](Self::poll_transmit) returns, feed every
/// message from the peer to [`receive`](Self::receive) until it returns
/// [`Progress::Authenticated`] or an error. After an error, send the queued
/// `Refused` and close the connection.
#[derive(Debug)]
pub struct Authenticator {
    config: AuthConfig,
    challenge: Challenge,
    stage: Stage,
    outbox: VecDeque<Message>,
}

impl Authenticator {
    /// Starts a handshake; `challenge` must be fresh and random
    /// ([`random_challenge`]). Queues our Hello and, with a secret, our
    /// challenge.
    pub fn new(config: AuthConfig, challenge: Challenge) -> Result<Self, AuthConfigError> {
        if config.local_node == config.peer_node {
            return Err(AuthConfigError::SameNodeName(config.local_node));
        }
        let mut outbox = VecDeque::from([Message::Hello(Hello {
            versions: SUPPORTED_VERSIONS,
            node: config.local_node.clone(),
            resource: config.resource.clone(),
            auth: config.secret.is_some(),
        })]);
        if config.secret.is_some() {
            outbox.push_back(Message::AuthChallenge { challenge });
        }
        Ok(Self {
            config,
            challenge,
            stage: Stage::Hello,
            outbox,
        })
    }

    /// The next message to send to the peer.
    pub fn poll_transmit(&mut self) -> Option<Message> {
        self.outbox.pop_front()
    }

    /// Handles one message from the peer.
    pub fn receive(&mut self, message: Message) -> Result<Progress, AuthError> {
        let was_running = self.stage != Stage::Ended;
        let result = self.step(message);
        if let Err(error) = &result
            && was_running
            && !matches!(error, AuthError::RefusedByPeer { .. })
        {
            self.outbox.push_back(Message::Refused {
                reason: Text::new(&error.to_string()),
            });
        }
        result
    }

    /// Advances by one message. The stage is `Ended` unless a branch sets
    /// the next one, so every error ends the handshake.
    fn step(&mut self, message: Message) -> Result<Progress, AuthError> {
        let stage = std::mem::replace(&mut self.stage, Stage::Ended);
        let config = &self.config;
        match (stage, message, &config.secret) {
            (_, Message::Refused { reason }, _) => Err(AuthError::RefusedByPeer { reason }),
            (Stage::Hello, Message::Hello(hello), secret) => {
                let version = check_hello(config, &hello)?;
                let agreement = Agreement {
                    version,
                    peer: hello,
                };
                self.stage = if secret.is_some() {
                    Stage::Challenge(agreement)
                } else {
                    self.outbox.push_back(Message::HelloDone { version });
                    Stage::HelloDone(agreement)
                };
                Ok(Progress::InProgress)
            }
            (Stage::Challenge(agreement), Message::AuthChallenge { challenge }, Some(secret)) => {
                if challenge == self.challenge {
                    return Err(AuthError::ReflectedChallenge {
                        peer: config.peer_node.clone(),
                    });
                }
                let response = response(secret, &challenge, &config.local_node, &config.resource);
                self.outbox.push_back(Message::AuthResponse { response });
                self.stage = Stage::Response(agreement);
                Ok(Progress::InProgress)
            }
            (Stage::Response(agreement), Message::AuthResponse { response }, Some(secret)) => {
                let expected =
                    response_mac(secret, &self.challenge, &config.peer_node, &config.resource);
                // Constant-time comparison: timing tells nothing about how
                // much of the answer was right.
                if expected.verify_slice(&response).is_err() {
                    return Err(AuthError::WrongResponse {
                        peer: config.peer_node.clone(),
                        resource: config.resource.clone(),
                    });
                }
                self.outbox.push_back(Message::HelloDone {
                    version: agreement.version,
                });
                self.stage = Stage::HelloDone(agreement);
                Ok(Progress::InProgress)
            }
            (Stage::HelloDone(agreement), Message::HelloDone { version }, _) => {
                if version != agreement.version {
                    return Err(AuthError::VersionDisagreement {
                        peer: config.peer_node.clone(),
                        ours: agreement.version,
                        theirs: version,
                    });
                }
                Ok(Progress::Authenticated(agreement))
            }
            (stage, message, _) => Err(AuthError::OutOfOrder {
                expected: stage.expected(),
                received: message.message_type(),
            }),
        }
    }
}

/// Checks the peer's Hello against the config and returns the version to
/// use.
fn check_hello(config: &AuthConfig, hello: &Hello) -> Result<u8, AuthError> {
    if hello.resource != config.resource {
        return Err(AuthError::WrongResource {
            peer: hello.node.clone(),
            offered: hello.resource.clone(),
            resource: config.resource.clone(),
        });
    }
    if hello.node != config.peer_node {
        return Err(AuthError::UnknownPeer {
            claimed: hello.node.clone(),
            expected: config.peer_node.clone(),
            resource: config.resource.clone(),
        });
    }
    let version = SUPPORTED_VERSIONS
        .negotiate(hello.versions)
        .ok_or_else(|| AuthError::NoCommonVersion {
            peer: hello.node.clone(),
            ours: SUPPORTED_VERSIONS,
            theirs: hello.versions,
        })?;
    match (config.secret.is_some(), hello.auth) {
        (true, false) => Err(AuthError::PeerHasNoSecret {
            peer: hello.node.clone(),
            resource: config.resource.clone(),
        }),
        (false, true) => Err(AuthError::PeerWantsSecret {
            peer: hello.node.clone(),
            resource: config.resource.clone(),
        }),
        _ => Ok(version),
    }
}
