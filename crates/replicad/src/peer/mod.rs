//! The peer link of one resource: one TCP connection to the other node,
//! its handshake, keep-alive, the connect decision, protocol A/B/C
//! mirroring and the bitmap resync (`docs/wire-protocol.md`).
//!
//! Who connects: the node whose name sorts first dials the peer's address
//! every `connect-int`; the other listens on its own address. One side
//! dialling avoids two connections crossing each other. So that the side
//! that comes up second need not wait up to `connect-int` for the next
//! dial, the listening node *knocks* whenever it starts waiting: it opens a
//! connection to the dialer's address and closes it at once. The dialer
//! listens too, only for knocks: anything that connects to it makes it
//! dial now (a knock carries nothing, so a stranger's knock costs one
//! dial). The listener runs the handshakes of several accepted connections
//! side by side, each with its timeout, so that a connection that sends
//! nothing does not hold up the real peer.
//!
//! [`PeerLink`] is what the rest of replicad sees: the connection's state
//! for status, and the [`Mirror`] the write path hands changes to. The
//! connection task ([`start`]) owns the socket and runs one session after
//! the other until a session ends in a refusal that needs the operator
//! (split brain, unrelated data, different settings): the link is then
//! StandAlone until `haadm connect`.
//!
//! Resync: both nodes send their dirty bitmaps and OR the peer's into their
//! own; the sync target asks for every dirty range (`ResyncRequest`, at most
//! 1 MiB, a few outstanding), writes what comes back and clears its bits. A
//! mirrored write that overlaps a request in flight makes the answer stale:
//! it is dropped and the range asked for again. When no dirty block is left
//! the target adopts the source's generation ids and tells it so in a State
//! saying UpToDate (every State before says Inconsistent), on which the
//! source ends its side. The source answers requests beside its receive
//! loop, as a read waits for local writes that wait for the peer's acks.
//! The target paces its requests with [`crate::pacer`].
//!
//! Online verify: the source asks for the digest of every 4 KiB block, marks
//! the blocks whose digest differs out of sync on both nodes (OutOfSync) and
//! ends with a State. The transfer log keeps the ranges of mirrored writes
//! until their epoch's BarrierAck; what is left when the link drops is out
//! of sync. Handlers ([`crate::helpers`]) run on split brain, around a
//! resync, on a lost link and after a verify that found differences.
//!
//! Fencing: when a Primary loses its peer (a broken connection, not an
//! orderly Disconnect), `fence-peer` runs with `fencing` other than
//! `dont-care`. With `resource-and-stonith` the link first suspends the
//! volume's I/O ([`crate::suspension::Suspension`]), before the session's end drops the
//! acknowledgements still awaited, so that no write is answered without
//! the peer until the peer is known fenced: the handler's exit code says
//! so, the peer connects again, or the operator runs `haadm resume-io`.
//!
//! This file starts the connection task and runs one session after the
//! other ([`start`], `run`), and reacts to a lost peer. The rest:
//! `link` (the shared [`PeerLink`] and the [`crate::serve::Mirror`] it
//! is), `connection` (listen, dial, knock, handshake, sending and
//! receiving frames), `session` (the connect decision and the loop of a
//! connected session), `resync` and `verify`.

mod connection;
mod link;
mod resync;
mod session;
mod verify;

use std::ops::Range;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hapair_config::ResourceConfig;
use hapair_config::resource::{
    AfterSb0Pri, AfterSb1Pri, AfterSb2Pri, DigestAlg, Fencing, Protocol,
};
use log::{error, info, warn};
use replica::generation::random_id;
use replica::sync::SplitBrainPolicy;
use replica::wire::{DigestAlgorithm, ReplicationProtocol};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::helpers::{AfterFencing, Handler, Helpers, after_fence_peer};
use crate::resource::{MetadataJournal, Role};
use crate::serve::{Journal, Notice, Volume};
use crate::suspension::Freeze;

use connection::{accept_handshaken, dial, handshake, knock, listen, open, wait_for_knock};
pub use link::PeerLink;
use link::{Connection, lock};
use session::session;

/// Bytes of one 4 KiB bitmap block.
pub(super) const BLOCK: u64 = 4096;

/// How often keep-alive and timeouts are checked.
pub(super) const TICK: Duration = Duration::from_millis(100);
/// How long the handshake and the State exchange may take.
pub(super) const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

fn wire_protocol(protocol: Protocol) -> ReplicationProtocol {
    match protocol {
        Protocol::A => ReplicationProtocol::A,
        Protocol::B => ReplicationProtocol::B,
        Protocol::C => ReplicationProtocol::C,
    }
}

fn wire_digest(alg: DigestAlg) -> DigestAlgorithm {
    match alg {
        DigestAlg::Crc32c => DigestAlgorithm::Crc32c,
        DigestAlg::Sha256 => DigestAlgorithm::Sha256,
        DigestAlg::Blake3 => DigestAlgorithm::Blake3,
    }
}

/// The configuration's split-brain policies in `replica::sync`'s terms.
pub fn split_brain_policy(config: &ResourceConfig) -> SplitBrainPolicy {
    use replica::sync::{AfterSb0Pri as P0, AfterSb1Pri as P1, AfterSb2Pri as P2};
    SplitBrainPolicy {
        after_sb_0pri: match &config.net.after_sb_0pri {
            AfterSb0Pri::Disconnect => P0::Disconnect,
            AfterSb0Pri::DiscardYoungerPrimary => P0::DiscardYoungerPrimary,
            AfterSb0Pri::DiscardOlderPrimary => P0::DiscardOlderPrimary,
            AfterSb0Pri::DiscardZeroChanges => P0::DiscardZeroChanges,
            AfterSb0Pri::DiscardLeastChanges => P0::DiscardLeastChanges,
            AfterSb0Pri::DiscardNode(node) => P0::DiscardNode(node.clone()),
        },
        after_sb_1pri: match config.net.after_sb_1pri {
            AfterSb1Pri::Disconnect => P1::Disconnect,
            AfterSb1Pri::Consensus => P1::Consensus,
            AfterSb1Pri::ViolentlyAs0p => P1::ViolentlyAs0p,
            AfterSb1Pri::DiscardSecondary => P1::DiscardSecondary,
            AfterSb1Pri::CallPriLostAfterSb => P1::CallPriLostAfterSb,
        },
        after_sb_2pri: match config.net.after_sb_2pri {
            AfterSb2Pri::Disconnect => P2::Disconnect,
            AfterSb2Pri::ViolentlyAs0p => P2::ViolentlyAs0p,
            AfterSb2Pri::CallPriLostAfterSb => P2::CallPriLostAfterSb,
        },
    }
}

/// Everything the connection task works with.
pub struct LinkContext {
    pub config: ResourceConfig,
    pub node: String,
    pub link: Arc<PeerLink>,
    pub volume: Arc<Volume>,
    pub journal: Arc<MetadataJournal>,
    pub role: Arc<Mutex<Role>>,
    pub helpers: Arc<Helpers>,
    /// Told about every change of the link's state, for events.
    pub notices: mpsc::UnboundedSender<Notice>,
}

/// How a session ended.
enum Ended {
    /// Try again after `connect-int` (dialer) or on the next connection.
    Retry(String),
    /// An orderly end, by this node's choice (a renegotiation: the peer is
    /// told with Disconnect) or the peer's (its Disconnect): try again as
    /// for `Retry`, but the peer was not lost, so neither `disconnected`
    /// nor `fence-peer` runs.
    Reconnect { reason: String, by_peer: bool },
    /// Stay StandAlone until the operator connects again.
    StandAlone { reason: String, split_brain: bool },
}

/// Starts the connection task; abort it to disconnect.
pub fn start(context: LinkContext, discard_my_data: bool) -> JoinHandle<()> {
    context.link.lock().discard_my_data = discard_my_data;
    let unconfirmed = context.link.lost(Connection::Connecting, None, false);
    mark_unconfirmed(
        &context.config.name,
        &context.journal,
        is_primary(&context),
        unconfirmed,
    );
    tokio::spawn(run(context))
}

/// Marks the link StandAlone after its task was aborted; `attached` is
/// the disk's journal and whether this node is Primary, when it is up.
pub fn stopped(link: &PeerLink, attached: Option<(&MetadataJournal, bool)>) {
    let unconfirmed = link.lost(Connection::StandAlone, None, false);
    if let Some((journal, primary)) = attached {
        mark_unconfirmed(&link.resource, journal, primary, unconfirmed);
    }
}

/// Marks the transfer log's ranges out of sync: the peer acknowledged
/// them, but no BarrierAck said they were durable there. A Primary treats
/// them as writes without the peer (a new generation starts, so the next
/// connect resyncs them); a Secondary only records them in its bitmap.
fn mark_unconfirmed(name: &str, journal: &MetadataJournal, primary: bool, ranges: Vec<Range<u64>>) {
    if ranges.is_empty() {
        return;
    }
    info!(
        "{name}: {} mirrored write(s) not confirmed durable on the peer marked out of sync",
        ranges.len()
    );
    for range in ranges {
        if primary {
            journal.out_of_sync(range);
        } else if let Err(mark_error) = journal.lock().mark_dirty(range) {
            warn!("{name}: {mark_error}");
        }
    }
}

async fn run(context: LinkContext) {
    let context = Arc::new(context);
    let name = context.config.name.clone();
    let (peer_name, peer_config) = context
        .config
        .peer(&context.node)
        .expect("a pair has two nodes");
    let peer_address = peer_config.address;
    let dials = context.node.as_str() < peer_name;
    let own_address = context
        .config
        .local(&context.node)
        .expect("checked at start")
        .address;
    let connect_int = context.config.net.connect_int;
    let listener = listen(&context, own_address, dials).await;
    loop {
        let (opened, handshaken) = if dials {
            match dial(peer_address).await {
                Ok(stream) => {
                    let mut opened = open(stream);
                    let handshaken = handshake(&context, &mut opened.wire).await;
                    (opened, handshaken)
                }
                Err(dial_error) => {
                    log::debug!("{name}: cannot reach {peer_name} at {peer_address}: {dial_error}");
                    wait_for_knock(listener.as_ref(), connect_int).await;
                    continue;
                }
            }
        } else {
            tokio::spawn(knock(peer_address));
            let listener = listener
                .as_ref()
                .expect("a listening node has its listener");
            accept_handshaken(&context, listener).await
        };
        let ended = session(&context, opened, handshaken).await;
        let _ = context.notices.send(Notice::LinkChanged);
        match ended {
            Ended::Retry(reason) | Ended::Reconnect { reason, .. } => {
                warn!("{name}: connection to {peer_name} lost: {reason}");
                let unconfirmed = context.link.lost(Connection::Connecting, None, false);
                mark_unconfirmed(&name, &context.journal, is_primary(&context), unconfirmed);
                context.link.state_changed();
                if dials {
                    wait_for_knock(listener.as_ref(), connect_int).await;
                }
            }
            Ended::StandAlone {
                reason,
                split_brain,
            } => {
                error!(
                    "{name}: {} and {peer_name}: {reason}; StandAlone until `haadm connect {name}`",
                    context.node
                );
                let unconfirmed =
                    context
                        .link
                        .lost(Connection::StandAlone, Some(reason), split_brain);
                mark_unconfirmed(&name, &context.journal, is_primary(&context), unconfirmed);
                return;
            }
        }
    }
}

fn is_primary(context: &LinkContext) -> bool {
    *lock(&context.role) == Role::Primary
}

/// What a lost peer brings about: the `disconnected` handler and, on a
/// Primary, what `fencing` asks for: `fence-peer` (`resource-only`), or
/// suspended I/O until `fence-peer` fenced the peer
/// (`resource-and-stonith`). Called before the writes in flight learn that
/// their acknowledgements are lost.
fn lost_peer(context: &Arc<LinkContext>) {
    context.helpers.call(Handler::Disconnected);
    if !is_primary(context) {
        return;
    }
    match context.config.net.fencing {
        Fencing::DontCare => {}
        Fencing::ResourceOnly => context.helpers.call(Handler::FencePeer),
        Fencing::ResourceAndStonith => {
            let freeze = context.link.suspension.suspend();
            warn!(
                "{}: I/O suspended (fencing: resource-and-stonith): the peer {} was lost; \
                 requests wait until the fence-peer handler fenced it",
                context.config.name, context.link.peer_name
            );
            let _ = context.notices.send(Notice::Suspension);
            tokio::spawn(fence_then_resume(Arc::clone(context), freeze));
        }
    }
}

/// Runs `fence-peer` for `freeze` and resumes I/O if its end says the peer
/// is fenced; otherwise I/O stays suspended and the operator is told what
/// to do.
async fn fence_then_resume(context: Arc<LinkContext>, freeze: Freeze) {
    let (name, peer_name) = (&context.config.name, &context.link.peer_name);
    let suspension = &context.link.suspension;
    match after_fence_peer(context.helpers.call_and_wait(Handler::FencePeer).await) {
        AfterFencing::Resume(why) => {
            if suspension.resume_from(freeze) {
                info!("{name}: I/O resumed: {why}");
                let _ = context.notices.send(Notice::Suspension);
            }
        }
        AfterFencing::StayFrozen(why) if suspension.holds(freeze) => error!(
            "{name}: I/O stays suspended: {why}. Make sure {peer_name} is not Primary and \
             cannot write (fence it by hand), then resume with `haadm resume-io {name}`"
        ),
        // The freeze ended meanwhile (the peer is back, or the operator
        // resumed): nothing is held any more.
        AfterFencing::StayFrozen(why) => info!("{name}: {why} (I/O was resumed meanwhile)"),
    }
}

/// Starts a new generation for a promotion while no peer is connected, and
/// remembers that writes from now on are already in it.
pub fn promoted_without_peer(journal: &MetadataJournal) -> Result<(), String> {
    journal
        .lock()
        .update_superblock(|state| state.generations.on_promotion_without_peer(random_id()))
        .map_err(|e| e.to_string())?;
    journal
        .generation_started_without_peer
        .store(true, std::sync::atomic::Ordering::SeqCst);
    Ok(())
}
