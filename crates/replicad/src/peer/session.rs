//! One connected session: the State exchange and the connect decision,
//! then the loop that mirrors, acknowledges, resyncs and verifies until the
//! connection ends.

use std::sync::Arc;
use std::time::Instant;

use log::{error, info, warn};
use replica::generation::GenerationIds;
use replica::superblock::{Flags, VolumeState};
use replica::sync::{
    self, PeerView, SplitBrainResolution, SyncDecision, SyncKind, SyncRole, UnresolvedReason,
};
use replica::wire::{
    BitmapChunk, Data, DigestAlgorithm, DiskState, Message, NodeState, ReplicationProtocol,
    StateFlags, Text, Write,
};
use tokio::task::{JoinHandle, JoinSet};

use crate::helpers::Handler;
use crate::resource::{Role, disk_state};
use crate::serve::{Journal, Notice};

use super::connection::{Opened, Wire, close, frame};
use super::link::{Connection, PeerLink, Replication, lock};
use super::resync::{
    TargetResync, answer_resync_request, begin_as_source, begin_as_target, bitmap_words,
    finish_as_target, merge_bitmap_chunk, overlaps, request_more, send_bitmap, write_resync_data,
};
use super::verify::{VerifySource, begin_verify, finish_verify, request_digests, take_digest};
use super::{
    BLOCK, Ended, HANDSHAKE_TIMEOUT, LinkContext, TICK, is_primary, lost_peer, mark_unconfirmed,
    split_brain_policy,
};

/// Cleans up the link however a session ends (also when aborted).
struct SessionGuard<'a>(pub(super) &'a PeerLink);

impl Drop for SessionGuard<'_> {
    fn drop(&mut self) {
        let mut state = self.0.lock();
        state.outgoing = None;
        state.pending_writes.clear();
        state.pending_barriers.clear();
        state.pending_reads.clear();
    }
}

pub(super) async fn session(
    context: &Arc<LinkContext>,
    mut opened: Opened,
    handshaken: Result<(), Ended>,
) -> Ended {
    let _guard = SessionGuard(&context.link);
    let (ended, was_connected) = match handshaken {
        Ok(()) => (connected(context, &mut opened.wire).await, true),
        Err(ended) => (ended, false),
    };
    // Before the guard drops the acknowledgements still awaited.
    if context.link.is_connected() && !matches!(ended, Ended::Reconnect { .. }) {
        lost_peer(context);
    }
    let farewell = match &ended {
        Ended::StandAlone { reason, .. } => Some(reason),
        Ended::Reconnect {
            reason,
            by_peer: false,
        } => Some(reason),
        _ => None,
    };
    match farewell {
        Some(reason) => {
            opened.wire.send(Message::Disconnect {
                reason: Text::new(reason),
            });
            close(opened).await;
        }
        // A lost or broken connection: nothing queued is worth waiting for
        // (a dead peer reads nothing), and the link counts as connected
        // until this returns.
        None if was_connected => opened.writer.abort(),
        // A refused handshake: the refusal is on its way.
        None => close(opened).await,
    }
    ended
}

/// What this node tells the peer about itself.
pub(super) fn local_state(context: &LinkContext) -> NodeState {
    let role = match *lock(&context.role) {
        Role::Primary => replica::wire::Role::Primary,
        Role::Secondary => replica::wire::Role::Secondary,
    };
    let (discard, sync_target) = {
        let link = context.link.lock();
        (
            link.discard_my_data,
            link.replication == Replication::SyncTarget,
        )
    };
    let metadata = context.journal.lock();
    let superblock = metadata.superblock();
    let mut flags = StateFlags::empty();
    if superblock.state.flags.contains(Flags::CRASHED_PRIMARY) {
        flags.insert(StateFlags::CRASHED_PRIMARY);
    }
    if discard {
        flags.insert(StateFlags::DISCARD_MY_DATA);
    }
    // A SyncTarget is Inconsistent from the connect decision on, also
    // before its superblock says so (that waits for the source's bitmap):
    // its source ends the resync on the first State saying UpToDate.
    let disk = if context.volume.is_detached() {
        DiskState::Diskless
    } else if sync_target {
        DiskState::Inconsistent
    } else {
        match disk_state(&metadata) {
            "UpToDate" => DiskState::UpToDate,
            "Consistent" => DiskState::Consistent,
            _ => DiskState::Inconsistent,
        }
    };
    NodeState {
        role,
        disk,
        flags,
        generations: superblock.state.generations,
        usable_size: metadata.usable_size(),
        dirty_blocks: metadata.bitmap().dirty_blocks(),
    }
}

/// The superblock state a peer's State stands for.
pub(super) fn volume_state_of(peer: &NodeState) -> VolumeState {
    let mut flags = Flags::empty();
    if matches!(
        peer.disk,
        DiskState::UpToDate | DiskState::Consistent | DiskState::Outdated
    ) {
        flags.insert(Flags::CONSISTENT);
    }
    if peer.disk == DiskState::UpToDate {
        flags.insert(Flags::WAS_UP_TO_DATE);
    }
    if peer.flags.contains(StateFlags::CRASHED_PRIMARY) {
        flags.insert(Flags::CRASHED_PRIMARY);
    }
    VolumeState {
        flags,
        generations: peer.generations,
    }
}

fn view(state: &NodeState, flags: Flags, name: &str) -> PeerView {
    PeerView {
        generations: state.generations,
        flags,
        primary: state.role == replica::wire::Role::Primary,
        dirty_blocks: state.dirty_blocks,
        node_name: name.to_string(),
        discard_my_data: state.flags.contains(StateFlags::DISCARD_MY_DATA),
    }
}

/// The next of `tasks` to end, or never when there are none (or no set):
/// a branch of the session loop's `select!`.
async fn next_finished<T: 'static>(
    tasks: Option<&mut tokio::task::JoinSet<Result<T, String>>>,
) -> Result<T, String> {
    match tasks {
        Some(tasks) if !tasks.is_empty() => match tasks.join_next().await {
            Some(Ok(finished)) => finished,
            Some(Err(join_error)) => Err(format!("a task of the session failed: {join_error}")),
            None => std::future::pending().await,
        },
        _ => std::future::pending().await,
    }
}

/// A connected session: the State exchange and the connect decision, then
/// mirroring, until the connection ends.
pub(super) async fn connected(context: &Arc<LinkContext>, wire: &mut Wire) -> Ended {
    let agreed = match agree(context, wire).await {
        Ok(agreed) => agreed,
        Err(ended) => return ended,
    };
    if let Err(ended) = start_mirroring(context, wire, &agreed) {
        return ended;
    }
    Connected::new(context, agreed.theirs, agreed.resync)
        .run(wire)
        .await
}

/// The resync a connect decision asks for: this node's role and its kind.
type ResyncAsked = Option<(SyncRole, SyncKind)>;

/// The flags a connect decision reads: all but `al-clean`, which the first
/// write after a clean start clears.
fn decision_flags(mut flags: Flags) -> Flags {
    flags.remove(Flags::AL_CLEAN);
    flags
}

/// What the two nodes agreed on at the connect.
struct Agreed {
    /// The peer's State.
    theirs: NodeState,
    /// The resync the decision asks for.
    resync: ResyncAsked,
    /// This node's generation ids and flags the decision was made on.
    decided_on: (GenerationIds, Flags),
}

/// Exchanges States and decides from the generation ids, running the
/// split-brain and before-resync handlers: the peer's State and the resync
/// to run, or how the session ends (a refusal).
async fn agree(context: &LinkContext, wire: &mut Wire) -> Result<Agreed, Ended> {
    let name = &context.config.name;
    let (peer_name, _) = context
        .config
        .peer(&context.node)
        .expect("a pair has two nodes");
    let mine = local_state(context);
    let my_flags = context.journal.lock().superblock().state.flags;
    wire.send(Message::State(mine));
    let theirs = match wire.receive_within(HANDSHAKE_TIMEOUT).await {
        Ok(Message::State(theirs)) => theirs,
        Ok(Message::Disconnect { reason }) => {
            return Err(Ended::Reconnect {
                reason: format!("the peer disconnected: {reason}"),
                by_peer: true,
            });
        }
        Ok(other) => {
            return Err(Ended::Retry(format!(
                "the peer sent {} where its State belongs",
                other.message_type()
            )));
        }
        Err(e) => return Err(Ended::Retry(format!("waiting for the peer's State: {e}"))),
    };
    if theirs.usable_size != mine.usable_size {
        return Err(Ended::StandAlone {
            reason: format!(
                "the volumes differ in size: {} bytes here, {} on the peer; give both the same size",
                mine.usable_size, theirs.usable_size
            ),
            split_brain: false,
        });
    }
    let decision = if mine.disk == DiskState::Diskless || theirs.disk == DiskState::Diskless {
        // A Diskless node has no data to compare or sync: it is served
        // through its peer, which records what it misses.
        SyncDecision::NoSync
    } else {
        sync::decide(
            &view(&mine, my_flags, &context.node),
            &view(&theirs, volume_state_of(&theirs).flags, peer_name),
            &split_brain_policy(&context.config),
        )
    };
    info!("{name}: connected to {peer_name}: {decision}");
    if let SyncDecision::SplitBrain { resolution } = &decision {
        context.helpers.call(Handler::InitialSplitBrain);
        if decision.refuses_connection() {
            context.helpers.call(Handler::SplitBrain);
        }
        if let SplitBrainResolution::Unresolved(UnresolvedReason::PrimaryLoses { node }) =
            resolution
            && *node == context.node
        {
            context.helpers.call(Handler::PriLostAfterSb);
        }
    }
    if decision.refuses_connection() {
        return Err(Ended::StandAlone {
            split_brain: matches!(decision, SyncDecision::SplitBrain { .. }),
            reason: decision.to_string(),
        });
    }
    let both_primary =
        mine.role == replica::wire::Role::Primary && theirs.role == replica::wire::Role::Primary;
    let resync = decision.resync();
    let primary_would_be_target = matches!(resync, Some((SyncRole::Target, _)))
        && mine.role == replica::wire::Role::Primary
        || matches!(resync, Some((SyncRole::Source, _)))
            && theirs.role == replica::wire::Role::Primary;
    if both_primary || primary_would_be_target {
        return Err(Ended::StandAlone {
            reason: if both_primary {
                "both nodes are Primary; demote one (haadm secondary) and connect again".into()
            } else {
                "the Primary would become SyncTarget and its data change under its users; \
                 demote it and connect again"
                    .into()
            },
            split_brain: false,
        });
    }
    match resync {
        Some((SyncRole::Target, _)) => {
            context
                .helpers
                .call_and_wait(Handler::BeforeResyncTarget)
                .await;
        }
        Some((SyncRole::Source, _)) => {
            context
                .helpers
                .call_and_wait(Handler::BeforeResyncSource)
                .await;
        }
        None => {}
    }
    Ok(Agreed {
        theirs,
        resync,
        decided_on: (mine.generations, decision_flags(my_flags)),
    })
}

/// The session is connected: from here on every change is mirrored; the
/// bitmap snapshot sent for a resync is taken under the same lock, so a
/// change is either in it or mirrored.
///
/// A promotion (or another change of the generation ids or flags) while
/// the two nodes were deciding makes the decision stale: the peer decided
/// on the State sent before it. Then the session ends (both connect again
/// and decide anew); a change after this point sees the link mirroring
/// and renegotiates by itself.
fn start_mirroring(context: &LinkContext, wire: &Wire, agreed: &Agreed) -> Result<(), Ended> {
    let name = &context.config.name;
    let peer_name = &context.link.peer_name;
    let (theirs, resync) = (agreed.theirs, agreed.resync);
    let words = {
        let mut state = context.link.lock();
        let now = context.journal.lock().superblock().state;
        if (now.generations, decision_flags(now.flags)) != agreed.decided_on {
            return Err(Ended::Reconnect {
                reason: "this node's generation ids or flags changed while connecting \
                         (a promotion?); deciding again"
                    .into(),
                by_peer: false,
            });
        }
        state.outgoing = Some(wire.out.clone());
        // A new epoch: the peer counts this session's writes from zero, so
        // writes counted in an epoch the last session never closed must
        // not be counted into this one's first Barrier.
        state.epoch += 1;
        state.writes_in_epoch = 0;
        state.connection = Connection::Connected;
        state.standalone_reason = None;
        state.split_brain = false;
        state.peer = Some(theirs);
        state.discard_my_data = false;
        state.replication = match resync {
            None => Replication::Established,
            Some((SyncRole::Source, _)) => Replication::SyncSource,
            Some((SyncRole::Target, _)) => Replication::SyncTarget,
        };
        context
            .journal
            .generation_started_without_peer
            .store(false, std::sync::atomic::Ordering::SeqCst);
        resync.map(|(_, kind)| {
            let mut metadata = context.journal.lock();
            if kind == SyncKind::Full {
                let end = metadata.bitmap().blocks() * BLOCK;
                if let Err(mark_error) = metadata.mark_dirty(0..end) {
                    warn!("{name}: {mark_error}");
                }
            }
            // Progress counts against this node's bitmap until the peer's
            // is merged in.
            state.start_progress(metadata.bitmap().dirty_bytes());
            bitmap_words(&metadata)
        })
    };
    if context.link.suspension.resume() {
        info!("{name}: I/O resumed: {peer_name} is connected again");
    }
    context.link.state_changed();
    let _ = context.notices.send(Notice::LinkChanged);
    if let Some(words) = words {
        send_bitmap(wire, words);
    }
    Ok(())
}

/// What a connected session keeps between two messages.
struct Connected<'a> {
    context: &'a Arc<LinkContext>,
    /// The resync this node runs as its target, until it ends.
    target: Option<TargetResync>,
    /// The online verify this node runs as its source, until it ends.
    verify: Option<VerifySource>,
    /// The peer's last State.
    peer_state: NodeState,
    /// The peer's writes being applied; the next Barrier waits for them.
    applying: Vec<JoinHandle<()>>,
    /// Resync and verify requests and a Diskless peer's reads being
    /// answered beside the loop (see `answer_resync_request`); dropped
    /// (aborted) with the session.
    serving: JoinSet<Result<(), String>>,
    /// The peer's writes received in the epoch its next Barrier closes.
    received_in_epoch: u32,
    /// When the Ping not yet answered went out.
    ping_sent: Option<Instant>,
}

impl<'a> Connected<'a> {
    fn new(context: &'a Arc<LinkContext>, theirs: NodeState, resync: ResyncAsked) -> Self {
        Connected {
            context,
            target: matches!(resync, Some((SyncRole::Target, _)))
                .then(|| TargetResync::new(&context.config)),
            verify: None,
            peer_state: theirs,
            applying: Vec::new(),
            serving: JoinSet::new(),
            received_in_epoch: 0,
            ping_sent: None,
        }
    }

    /// Runs the session until the connection ends, and says how.
    async fn run(mut self, wire: &mut Wire) -> Ended {
        let context = self.context;
        let mut tick = tokio::time::interval(TICK);
        loop {
            if let Err(ended) = self.advance(wire) {
                return ended;
            }
            let message = tokio::select! {
                received = wire.receive() => match received {
                    Ok(message) => message,
                    Err(reason) => return Ended::Retry(reason),
                },
                _ = tick.tick() => {
                    if let Err(ended) = self.keep_alive(wire) {
                        return ended;
                    }
                    continue;
                }
                () = context.link.changed.notified() => {
                    wire.send(Message::State(local_state(context)));
                    continue;
                }
                () = context.link.renegotiate.notified() => {
                    return Ended::Reconnect {
                        reason: "renegotiating: the generation ids or the disk state changed".into(),
                        by_peer: false,
                    };
                }
                written = next_finished(self.target.as_mut().map(|resync| &mut resync.writes)) => {
                    match written {
                        Ok(offset) => {
                            if let Some(resync) = &mut self.target {
                                resync.writing.remove(&offset);
                            }
                        }
                        Err(reason) => return Ended::Retry(reason),
                    }
                    continue;
                }
                compared = next_finished(self.verify.as_mut().map(|running| &mut running.comparing)) => {
                    if let Err(reason) = compared {
                        return Ended::Retry(reason);
                    }
                    continue;
                }
                () = context.link.probe.notified() => {
                    self.ping(wire);
                    continue;
                }
                () = context.link.verify.notified() => {
                    if self.verify.is_none() && self.target.is_none() {
                        self.verify = begin_verify(context);
                        let _ = context.notices.send(Notice::LinkChanged);
                    }
                    continue;
                }
            };
            // Anything received proves the peer alive.
            self.ping_sent = None;
            if let Err(ended) = self.handle(wire, message).await {
                return ended;
            }
        }
    }

    /// What goes on between messages: more resync requests and the end of
    /// the resync, more digest requests and the end of the verify, and the
    /// answers given beside the loop that failed.
    fn advance(&mut self, wire: &Wire) -> Result<(), Ended> {
        let context = self.context;
        if let Some(resync) = &mut self.target
            && resync.ready
        {
            request_more(context, wire, resync);
            if resync.in_flight() == 0 && context.journal.lock().bitmap().dirty_blocks() == 0 {
                finish_as_target(context, &self.peer_state).map_err(Ended::Retry)?;
                self.target = None;
                wire.send(Message::State(local_state(context)));
            }
        }
        if let Some(running) = &mut self.verify {
            request_digests(context, wire, running);
            if running.requests.is_empty() && running.comparing.is_empty() {
                self.verify = None;
                finish_verify(context, wire);
            }
        }
        while let Some(answered) = self.serving.try_join_next() {
            if let Ok(Err(reason)) = answered {
                return Err(Ended::Retry(reason));
            }
        }
        Ok(())
    }

    /// Every tick: a Ping after silence, and the end of the connection when
    /// its PingAck is late. A peer that answers pings is alive, however
    /// slow its disk, and is waited for, up to `ko-count` × `timeout` for
    /// one write: then it is cut off (StandAlone), so that this node's
    /// writes go on, recorded as out of sync, instead of hanging with it.
    fn keep_alive(&mut self, wire: &Wire) -> Result<(), Ended> {
        let net = &self.context.config.net;
        let ko_limit = net.timeout * net.ko_count;
        if net.ko_count > 0
            && let Some((id, waited)) = self.context.link.oldest_unacknowledged_write()
            && waited > ko_limit
        {
            return Err(Ended::StandAlone {
                reason: format!(
                    "the peer did not complete write {id} within ko-count {} × timeout {:?} \
                     (waited {waited:?}): cut off until `haadm connect`",
                    net.ko_count, net.timeout
                ),
                split_brain: false,
            });
        }
        let heard = wire.last_heard();
        let silent = heard.elapsed();
        if let Some(sent) = self.ping_sent {
            if heard >= sent {
                // Answered: the answer waits behind messages not yet taken.
                self.ping_sent = None;
            } else if sent.elapsed() > net.ping_timeout {
                return Err(Ended::Retry(format!(
                    "PingAck did not arrive within ping-timeout {:?} (nothing heard for {silent:?})",
                    net.ping_timeout
                )));
            }
            return Ok(());
        }
        let waiting = self.context.link.has_outstanding()
            || self
                .target
                .as_ref()
                .is_some_and(|resync| !resync.requests.is_empty());
        if silent > net.ping_int || waiting && silent > net.timeout {
            self.ping(wire);
        }
        Ok(())
    }

    /// Sends a Ping unless one is out already.
    fn ping(&mut self, wire: &Wire) {
        if self.ping_sent.is_none() {
            wire.send(Message::Ping);
            self.ping_sent = Some(Instant::now());
        }
    }

    /// Takes one message from the peer.
    async fn handle(&mut self, wire: &Wire, message: Message) -> Result<(), Ended> {
        let context = self.context;
        match message {
            // The connection's reader answered the Ping already.
            Message::Ping | Message::PingAck => {}
            Message::State(state) => self.on_state(wire, state)?,
            Message::Write(write) => self.on_write(wire, write).await?,
            Message::Barrier { epoch, writes } => self.on_barrier(wire, epoch, writes).await?,
            Message::WriteAck { id } | Message::RecvAck { id } => {
                context.link.complete_write(id, true);
            }
            Message::WriteFailed { id } => context.link.complete_write(id, false),
            Message::BarrierAck { epoch, .. } => context.link.complete_barrier(epoch),
            Message::OutOfSync { offset, length } => self.on_out_of_sync(offset, length),
            Message::BitmapChunk(chunk) => self.on_bitmap_chunk(&chunk)?,
            Message::ResyncRequest { offset, length } => {
                self.serving.spawn(answer_resync_request(
                    Arc::clone(context),
                    wire.out.clone(),
                    offset,
                    length,
                ));
            }
            Message::ResyncData { offset, data } => self.on_resync_data(offset, data).await?,
            Message::ResyncFailed { offset, length } => {
                return Err(Ended::Retry(format!(
                    "the peer cannot read {length} bytes at {offset} for the resync"
                )));
            }
            Message::Disconnect { reason } => {
                return Err(Ended::Reconnect {
                    reason: format!("the peer disconnected: {reason}"),
                    by_peer: true,
                });
            }
            Message::VerifyRequest {
                offset,
                length,
                algorithm,
            } => self.on_verify_request(wire, offset, length, algorithm),
            Message::VerifyDigest { offset, digest, .. } => {
                let Some(running) = &mut self.verify else {
                    return Err(Ended::Retry(
                        "protocol error: VerifyDigest while not verifying".into(),
                    ));
                };
                take_digest(context, wire, running, offset, digest).map_err(Ended::Retry)?;
            }
            Message::ReadRequest { id, offset, length } => {
                self.on_read_request(wire, id, offset, length);
            }
            Message::ReadData { id, data } => context
                .link
                .complete_read(id, Some(data.into_bytes()))
                .map_err(Ended::Retry)?,
            Message::ReadFailed { id } => {
                context.link.complete_read(id, None).map_err(Ended::Retry)?;
            }
            Message::Settings(_) => {
                return Err(Ended::Retry(format!(
                    "protocol error: unexpected {} after the connect",
                    message.message_type()
                )));
            }
            handshake @ (Message::Hello(_)
            | Message::AuthChallenge { .. }
            | Message::AuthResponse { .. }
            | Message::HelloDone { .. }
            | Message::Refused { .. }) => {
                return Err(Ended::Retry(format!(
                    "protocol error: handshake message {} after the handshake",
                    handshake.message_type()
                )));
            }
        }
        Ok(())
    }

    /// The peer's State: its role or disk changed, it adopted a skipped
    /// initial sync, it ended a verify, or (UpToDate) the resync this node
    /// is the source of is over.
    fn on_state(&mut self, wire: &Wire, state: NodeState) -> Result<(), Ended> {
        let context = self.context;
        if state.disk == DiskState::Diskless && self.peer_state.disk != DiskState::Diskless {
            // The peer detached its disk: what it acknowledged since its
            // last BarrierAck may never reach that disk.
            mark_unconfirmed(
                &context.config.name,
                &context.journal,
                is_primary(context),
                context.link.take_transfer_log(),
            );
        }
        self.peer_state = state;
        if skips_initial_sync(context, &state) {
            adopt_skipped_sync(context, &state).map_err(Ended::Retry)?;
            wire.send(Message::State(local_state(context)));
        }
        let finished_as_source = {
            let mut link = context.link.lock();
            link.peer = Some(state);
            if link.replication == Replication::VerifyT {
                // The verify source's closing State.
                link.replication = Replication::Established;
            }
            let done =
                link.replication == Replication::SyncSource && state.disk == DiskState::UpToDate;
            if done {
                link.replication = Replication::Established;
            }
            done
        };
        if finished_as_source {
            context
                .journal
                .lock()
                .update_superblock(sync::finish_sync_as_source)
                .map_err(|finish_error| Ended::Retry(finish_error.to_string()))?;
            info!(
                "{}: resync to {} finished",
                context.config.name, context.link.peer_name
            );
        }
        let _ = context.notices.send(Notice::LinkChanged);
        Ok(())
    }

    /// A mirrored write: checked, made stale for resync requests it
    /// overlaps, its range held in arrival order and written beside the
    /// loop, then acknowledged as the protocol says.
    async fn on_write(&mut self, wire: &Wire, write: Write) -> Result<(), Ended> {
        let context = self.context;
        if !write.integrity_holds() {
            return Err(Ended::StandAlone {
                reason: format!(
                    "the data of write {} at offset {} does not match its digest \
                     (damaged on the way; check the link)",
                    write.id, write.offset
                ),
                split_brain: false,
            });
        }
        if let Some(resync) = &mut self.target {
            resync.pacer.application_write(Instant::now());
            let range = write.offset..write.offset + write.data.len() as u64;
            for (offset, (length, stale)) in resync.requests.iter_mut() {
                if overlaps(&range, &(*offset..*offset + *length)) {
                    *stale = true;
                }
            }
        }
        self.received_in_epoch += 1;
        let protocol = context.link.lock().protocol;
        // A Diskless sender's write exists only here: it is out of sync
        // with the sender, and acknowledged once written.
        let ack_written = protocol == ReplicationProtocol::C || write.sender_diskless;
        if write.sender_diskless {
            let length = write.data.len() as u64;
            context
                .journal
                .out_of_sync(write.offset..write.offset + length);
        } else if protocol == ReplicationProtocol::B {
            wire.send(Message::RecvAck { id: write.id });
        }
        // The range is held here, in the order the writes arrived: under
        // protocols A and B the Primary may send an overlapping write
        // before this one is applied, and it must land after.
        let id = write.id;
        let held = context
            .volume
            .hold_for_peer(write.offset, write.data.len() as u64)
            .await;
        let volume = Arc::clone(&context.volume);
        let out = wire.out.clone();
        let resource = context.config.name.clone();
        self.applying.retain(|task| !task.is_finished());
        self.applying.push(tokio::spawn(async move {
            let written = match held {
                Ok(held) => {
                    volume
                        .write_held(held, write.data.into_bytes(), write.fua)
                        .await
                }
                Err(hold_error) => Err(hold_error),
            };
            let reply = match written {
                Ok(()) if ack_written => Message::WriteAck { id },
                Ok(()) => return,
                Err(write_error) => {
                    error!("{resource}: cannot apply the peer's write {id}: {write_error}");
                    Message::WriteFailed { id }
                }
            };
            let _ = out.send(frame(reply));
        }));
        Ok(())
    }

    /// A Barrier closes an epoch: once every write of it is applied and
    /// durable here, the BarrierAck says so.
    async fn on_barrier(&mut self, wire: &Wire, epoch: u64, writes: u32) -> Result<(), Ended> {
        if writes != self.received_in_epoch {
            return Err(Ended::Retry(format!(
                "protocol error: barrier of epoch {epoch} counts {writes} writes, {} arrived",
                self.received_in_epoch
            )));
        }
        self.received_in_epoch = 0;
        for task in self.applying.drain(..) {
            let _ = task.await;
        }
        let volume = &self.context.volume;
        let synced = volume.sync_async().await;
        if let Err(sync_error) = &synced {
            error!(
                "{}: fdatasync for the peer's barrier failed: {sync_error}",
                self.context.config.name
            );
            volume.peer_write_failed(sync_error);
        }
        if volume.is_detached() {
            // Nothing written here is durable any more: the State saying
            // Diskless goes before the BarrierAck, and the peer marks all
            // it has not seen confirmed out of sync.
            wire.send(Message::State(local_state(self.context)));
        } else if let Err(sync_error) = synced {
            return Err(Ended::Retry(format!(
                "cannot make the peer's writes of epoch {epoch} durable: {sync_error}"
            )));
        }
        wire.send(Message::BarrierAck { epoch, writes });
        Ok(())
    }

    /// The peer found a range out of sync (its verify, or a write it could
    /// not apply): into the bitmap.
    fn on_out_of_sync(&mut self, offset: u64, length: u64) {
        let context = self.context;
        {
            let mut link = context.link.lock();
            if link.replication == Replication::VerifyT {
                link.verify_out_of_sync += length;
            }
        }
        let mut metadata = context.journal.lock();
        if let Err(mark_error) = metadata.mark_dirty(offset..offset.saturating_add(length)) {
            warn!("{}: {mark_error}", context.config.name);
        }
    }

    /// A piece of the peer's bitmap, merged into this node's; the last one
    /// starts the resync on either side.
    fn on_bitmap_chunk(&mut self, chunk: &BitmapChunk) -> Result<(), Ended> {
        let context = self.context;
        merge_bitmap_chunk(context, chunk);
        if !chunk.is_last() {
            return Ok(());
        }
        match &mut self.target {
            Some(resync) if !resync.ready => {
                begin_as_target(context).map_err(Ended::Retry)?;
                resync.ready = true;
            }
            _ => begin_as_source(context),
        }
        Ok(())
    }

    /// Data for a resync request: dropped and asked again when a mirrored
    /// write overlapped it meanwhile; else its range is held in message
    /// order (a later mirrored write to it waits) and it is written beside
    /// the loop, so that the next message need not wait.
    async fn on_resync_data(&mut self, offset: u64, data: Data) -> Result<(), Ended> {
        let context = self.context;
        let Some(resync) = &mut self.target else {
            return Err(Ended::Retry(
                "protocol error: ResyncData while not SyncTarget".into(),
            ));
        };
        let Some((length, stale)) = resync.requests.remove(&offset) else {
            return Err(Ended::Retry(format!(
                "protocol error: ResyncData at {offset} that was not requested"
            )));
        };
        if stale || data.len() as u64 != length {
            resync.cursor = resync.cursor.min(offset);
            return Ok(());
        }
        let held = context
            .volume
            .hold_for_peer(offset, length)
            .await
            .map_err(|hold_error| {
                Ended::Retry(format!("cannot write resync data: {hold_error}"))
            })?;
        resync.writing.insert(offset, length);
        resync.writes.spawn(write_resync_data(
            Arc::clone(context),
            held,
            offset,
            data.into_bytes(),
        ));
        Ok(())
    }

    /// The peer's verify asks for a digest: VerifyT, and the block read and
    /// digested beside the loop.
    fn on_verify_request(
        &mut self,
        wire: &Wire,
        offset: u64,
        length: u32,
        algorithm: DigestAlgorithm,
    ) {
        let context = self.context;
        {
            let mut link = context.link.lock();
            if link.replication == Replication::Established {
                link.replication = Replication::VerifyT;
                link.verify_out_of_sync = 0;
                let _ = context.notices.send(Notice::LinkChanged);
            }
        }
        let (volume, out) = (Arc::clone(&context.volume), wire.out.clone());
        self.serving.spawn(async move {
            let range = offset..offset.saturating_add(u64::from(length));
            let data = volume
                .read_range(range.clone())
                .await
                .map_err(|read_error| {
                    format!("cannot read {range:?} for the peer's verify: {read_error}")
                })?;
            let _ = out.send(frame(Message::VerifyDigest {
                offset,
                length,
                digest: algorithm.compute(&data),
            }));
            Ok(())
        });
    }

    /// A Diskless peer's read, answered beside the loop as a resync read.
    fn on_read_request(&mut self, wire: &Wire, id: u64, offset: u64, length: u32) {
        let (volume, out) = (Arc::clone(&self.context.volume), wire.out.clone());
        let name = self.context.config.name.clone();
        self.serving.spawn(async move {
            let range = offset..offset.saturating_add(u64::from(length));
            let answer = match volume.read_range(range.clone()).await {
                Ok(data) => Message::ReadData {
                    id,
                    data: Data::new(data).expect("1 byte to 1 MiB, as requested"),
                },
                Err(read_error) => {
                    warn!("{name}: cannot read {range:?} for the Diskless peer: {read_error}");
                    Message::ReadFailed { id }
                }
            };
            let _ = out.send(frame(answer));
            Ok(())
        });
    }
}

/// Whether the peer's State announces `new-current-uuid --clear-bitmap`:
/// this node's metadata was just created, the connect found nothing to
/// sync (both just created), and the peer now says UpToDate with a
/// generation born from nothing: a current id, no bitmap id, no history.
/// Nothing else makes such ids (a forced promotion keeps the just-created
/// id as its bitmap id).
fn skips_initial_sync(context: &LinkContext, peer: &NodeState) -> bool {
    let ids = peer.generations;
    let born_from_nothing =
        !ids.is_just_created() && ids.bitmap == 0 && ids.history.iter().all(|&id| id == 0);
    peer.disk == DiskState::UpToDate
        && born_from_nothing
        && context.link.lock().replication == Replication::Established
        && context
            .journal
            .lock()
            .superblock()
            .state
            .generations
            .is_just_created()
}

/// Takes the peer's new generation without a resync: both nodes hold the
/// same (never written) data, so both are UpToDate.
fn adopt_skipped_sync(context: &LinkContext, peer: &NodeState) -> Result<(), String> {
    let mut metadata = context.journal.lock();
    let end = metadata.usable_size();
    metadata.clear_dirty(0..end).map_err(|e| e.to_string())?;
    metadata.flush_bitmap().map_err(|e| e.to_string())?;
    metadata
        .update_superblock(|state| {
            state.generations = peer.generations;
            state.flags.insert(Flags::CONSISTENT);
            state.flags.insert(Flags::WAS_UP_TO_DATE);
        })
        .map_err(|e| e.to_string())?;
    info!(
        "{}: the peer skipped the initial sync (new-current-uuid --clear-bitmap): UpToDate",
        context.config.name
    );
    Ok(())
}
