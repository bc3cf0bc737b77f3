//! One connected session: the State exchange and the connect decision,
//! then the loop that mirrors, acknowledges, resyncs and verifies until the
//! connection ends.

use std::sync::Arc;
use std::time::Instant;

use log::{error, info, warn};
use replica::superblock::{Flags, VolumeState};
use replica::sync::{
    self, PeerView, SplitBrainResolution, SyncDecision, SyncKind, SyncRole, UnresolvedReason,
};
use replica::wire::{Data, DiskState, Message, NodeState, ReplicationProtocol, StateFlags, Text};
use tokio::task::JoinHandle;

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
use super::{BLOCK, Ended, HANDSHAKE_TIMEOUT, LinkContext, TICK, lost_peer, split_brain_policy};

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

pub(super) async fn connected(context: &Arc<LinkContext>, wire: &mut Wire) -> Ended {
    let name = &context.config.name;
    let (peer_name, _) = context
        .config
        .peer(&context.node)
        .expect("a pair has two nodes");
    let mine = local_state(context);
    wire.send(Message::State(mine));
    let theirs = match wire.receive_within(HANDSHAKE_TIMEOUT).await {
        Ok(Message::State(theirs)) => theirs,
        Ok(Message::Disconnect { reason }) => {
            return Ended::Reconnect {
                reason: format!("the peer disconnected: {reason}"),
                by_peer: true,
            };
        }
        Ok(other) => {
            return Ended::Retry(format!(
                "the peer sent {} where its State belongs",
                other.message_type()
            ));
        }
        Err(e) => return Ended::Retry(format!("waiting for the peer's State: {e}")),
    };
    if theirs.usable_size != mine.usable_size {
        return Ended::StandAlone {
            reason: format!(
                "the volumes differ in size: {} bytes here, {} on the peer; give both the same size",
                mine.usable_size, theirs.usable_size
            ),
            split_brain: false,
        };
    }
    let my_flags = context.journal.lock().superblock().state.flags;
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
        return Ended::StandAlone {
            split_brain: matches!(decision, SyncDecision::SplitBrain { .. }),
            reason: decision.to_string(),
        };
    }
    let both_primary =
        mine.role == replica::wire::Role::Primary && theirs.role == replica::wire::Role::Primary;
    let resync = decision.resync();
    let primary_would_be_target = matches!(resync, Some((SyncRole::Target, _)))
        && mine.role == replica::wire::Role::Primary
        || matches!(resync, Some((SyncRole::Source, _)))
            && theirs.role == replica::wire::Role::Primary;
    if both_primary || primary_would_be_target {
        return Ended::StandAlone {
            reason: if both_primary {
                "both nodes are Primary; demote one (haadm secondary) and connect again".into()
            } else {
                "the Primary would become SyncTarget and its data change under its users; \
                 demote it and connect again"
                    .into()
            },
            split_brain: false,
        };
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
    // From here on every change is mirrored; the bitmap snapshot below is
    // taken under the same lock, so a change is either in it or mirrored.
    let words = {
        let mut state = context.link.lock();
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
            state.resync_total = metadata.bitmap().dirty_bytes();
            state.resync_done = 0;
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
    let mut target =
        matches!(resync, Some((SyncRole::Target, _))).then(|| TargetResync::new(&context.config));
    let mut verify: Option<VerifySource> = None;
    let mut peer_state = theirs;
    let mut applying: Vec<JoinHandle<()>> = Vec::new();
    // Resync and verify requests being answered (see
    // `answer_resync_request`); dropped (aborted) with the session.
    let mut serving = tokio::task::JoinSet::new();
    let mut received_in_epoch = 0u32;
    let mut ping_sent: Option<Instant> = None;
    let mut tick = tokio::time::interval(TICK);
    let net = &context.config.net;
    loop {
        if let Some(resync) = &mut target
            && resync.ready
        {
            request_more(context, wire, resync);
            if resync.in_flight() == 0 && context.journal.lock().bitmap().dirty_blocks() == 0 {
                if let Err(finish_error) = finish_as_target(context, &peer_state) {
                    return Ended::Retry(finish_error);
                }
                target = None;
                wire.send(Message::State(local_state(context)));
            }
        }
        if let Some(running) = &mut verify {
            request_digests(context, wire, running);
            if running.requests.is_empty() && running.comparing.is_empty() {
                verify = None;
                finish_verify(context, wire);
            }
        }
        while let Some(answered) = serving.try_join_next() {
            if let Ok(Err(reason)) = answered {
                return Ended::Retry(reason);
            }
        }
        let message = tokio::select! {
            received = wire.receive() => match received {
                Ok(message) => message,
                Err(reason) => return Ended::Retry(reason),
            },
            _ = tick.tick() => {
                // Only a missing PingAck ends the connection: a peer that
                // answers pings is alive, however slow its disk.
                let silent = wire.last_received.elapsed();
                let waiting = context.link.has_outstanding()
                    || target.as_ref().is_some_and(|t| !t.requests.is_empty());
                if let Some(sent) = ping_sent {
                    if sent.elapsed() > net.ping_timeout {
                        return Ended::Retry(format!(
                            "PingAck did not arrive within ping-timeout {:?} \
                             (nothing heard for {silent:?})",
                            net.ping_timeout
                        ));
                    }
                } else if silent > net.ping_int || waiting && silent > net.timeout {
                    wire.send(Message::Ping);
                    ping_sent = Some(Instant::now());
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
            written = next_finished(target.as_mut().map(|resync| &mut resync.writes)) => {
                match written {
                    Ok(offset) => {
                        if let Some(resync) = &mut target {
                            resync.writing.remove(&offset);
                        }
                    }
                    Err(reason) => return Ended::Retry(reason),
                }
                continue;
            }
            compared = next_finished(verify.as_mut().map(|running| &mut running.comparing)) => {
                if let Err(reason) = compared {
                    return Ended::Retry(reason);
                }
                continue;
            }
            () = context.link.probe.notified() => {
                if ping_sent.is_none() {
                    wire.send(Message::Ping);
                    ping_sent = Some(Instant::now());
                }
                continue;
            }
            () = context.link.verify.notified() => {
                if verify.is_none() && target.is_none() {
                    verify = begin_verify(context);
                    let _ = context.notices.send(Notice::LinkChanged);
                }
                continue;
            }
        };
        // Anything received proves the peer alive.
        ping_sent = None;
        match message {
            Message::Ping => wire.send(Message::PingAck),
            Message::PingAck => {}
            Message::State(state) => {
                peer_state = state;
                if skips_initial_sync(context, &state) {
                    if let Err(adopt_error) = adopt_skipped_sync(context, &state) {
                        return Ended::Retry(adopt_error);
                    }
                    wire.send(Message::State(local_state(context)));
                }
                let finished_as_source = {
                    let mut link = context.link.lock();
                    link.peer = Some(state);
                    if link.replication == Replication::VerifyT {
                        // The verify source's closing State.
                        link.replication = Replication::Established;
                    }
                    let done = link.replication == Replication::SyncSource
                        && state.disk == DiskState::UpToDate;
                    if done {
                        link.replication = Replication::Established;
                    }
                    done
                };
                if finished_as_source {
                    if let Err(finish_error) = context
                        .journal
                        .lock()
                        .update_superblock(sync::finish_sync_as_source)
                    {
                        return Ended::Retry(finish_error.to_string());
                    }
                    info!("{name}: resync to {peer_name} finished");
                }
                let _ = context.notices.send(Notice::LinkChanged);
            }
            Message::Write(write) => {
                if !write.integrity_holds() {
                    return Ended::StandAlone {
                        reason: format!(
                            "the data of write {} at offset {} does not match its digest \
                             (damaged on the way; check the link)",
                            write.id, write.offset
                        ),
                        split_brain: false,
                    };
                }
                if let Some(resync) = &mut target {
                    resync.pacer.application_write(Instant::now());
                    let range = write.offset..write.offset + write.data.len() as u64;
                    for (offset, (length, stale)) in resync.requests.iter_mut() {
                        if overlaps(&range, &(*offset..*offset + *length)) {
                            *stale = true;
                        }
                    }
                }
                received_in_epoch += 1;
                let protocol = context.link.lock().protocol;
                // A Diskless sender's write exists only here: it is out of
                // sync with the sender, and acknowledged once written.
                let ack_written = protocol == ReplicationProtocol::C || write.sender_diskless;
                if write.sender_diskless {
                    let length = write.data.len() as u64;
                    context
                        .journal
                        .out_of_sync(write.offset..write.offset + length);
                } else if protocol == ReplicationProtocol::B {
                    wire.send(Message::RecvAck { id: write.id });
                }
                // The range is held here, in the order the writes arrived:
                // under protocols A and B the Primary may send an overlapping
                // write before this one is applied, and it must land after.
                let id = write.id;
                let held = context
                    .volume
                    .hold_for_peer(write.offset, write.data.len() as u64)
                    .await;
                let volume = Arc::clone(&context.volume);
                let out = wire.out.clone();
                let resource = name.clone();
                applying.retain(|task| !task.is_finished());
                applying.push(tokio::spawn(async move {
                    let written = match held {
                        Ok(held) => {
                            volume
                                .write_held(held, write.data.into_vec(), write.fua)
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
            }
            Message::Barrier { epoch, writes } => {
                if writes != received_in_epoch {
                    return Ended::Retry(format!(
                        "protocol error: barrier of epoch {epoch} counts {writes} writes, \
                         {received_in_epoch} arrived"
                    ));
                }
                received_in_epoch = 0;
                for task in applying.drain(..) {
                    let _ = task.await;
                }
                if let Err(sync_error) = context.volume.sync_async().await {
                    error!("{name}: fdatasync for the peer's barrier failed: {sync_error}");
                }
                wire.send(Message::BarrierAck { epoch, writes });
            }
            Message::WriteAck { id } | Message::RecvAck { id } => {
                context.link.complete_write(id, true);
            }
            Message::WriteFailed { id } => context.link.complete_write(id, false),
            Message::BarrierAck { epoch, .. } => context.link.complete_barrier(epoch),
            Message::OutOfSync { offset, length } => {
                {
                    let mut link = context.link.lock();
                    if link.replication == Replication::VerifyT {
                        link.verify_out_of_sync += length;
                    }
                }
                let mut metadata = context.journal.lock();
                if let Err(mark_error) = metadata.mark_dirty(offset..offset.saturating_add(length))
                {
                    warn!("{name}: {mark_error}");
                }
            }
            Message::BitmapChunk(chunk) => {
                merge_bitmap_chunk(context, &chunk);
                if chunk.is_last()
                    && let Some(resync) = &mut target
                    && !resync.ready
                {
                    if let Err(begin_error) = begin_as_target(context) {
                        return Ended::Retry(begin_error);
                    }
                    resync.ready = true;
                } else if chunk.is_last() {
                    begin_as_source(context);
                }
            }
            Message::ResyncRequest { offset, length } => {
                serving.spawn(answer_resync_request(
                    Arc::clone(context),
                    wire.out.clone(),
                    offset,
                    length,
                ));
            }
            Message::ResyncData { offset, data } => {
                let Some(resync) = &mut target else {
                    return Ended::Retry("protocol error: ResyncData while not SyncTarget".into());
                };
                let Some((length, stale)) = resync.requests.remove(&offset) else {
                    return Ended::Retry(format!(
                        "protocol error: ResyncData at {offset} that was not requested"
                    ));
                };
                if stale || data.len() as u64 != length {
                    // A newer write overlapped: ask again.
                    resync.cursor = resync.cursor.min(offset);
                    continue;
                }
                // Held here, in the order of the messages, so that a later
                // mirrored write to the range waits for this data; written
                // beside the loop, so that the next message need not wait.
                let held = match context.volume.hold_for_peer(offset, length).await {
                    Ok(held) => held,
                    Err(hold_error) => {
                        return Ended::Retry(format!("cannot write resync data: {hold_error}"));
                    }
                };
                resync.writing.insert(offset, length);
                resync.writes.spawn(write_resync_data(
                    Arc::clone(context),
                    held,
                    offset,
                    data.into_vec(),
                ));
            }
            Message::ResyncFailed { offset, length } => {
                return Ended::Retry(format!(
                    "the peer cannot read {length} bytes at {offset} for the resync"
                ));
            }
            Message::Disconnect { reason } => {
                return Ended::Reconnect {
                    reason: format!("the peer disconnected: {reason}"),
                    by_peer: true,
                };
            }
            Message::VerifyRequest {
                offset,
                length,
                algorithm,
            } => {
                {
                    let mut link = context.link.lock();
                    if link.replication == Replication::Established {
                        link.replication = Replication::VerifyT;
                        link.verify_out_of_sync = 0;
                        let _ = context.notices.send(Notice::LinkChanged);
                    }
                }
                let (volume, out) = (Arc::clone(&context.volume), wire.out.clone());
                serving.spawn(async move {
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
            Message::VerifyDigest { offset, digest, .. } => {
                let Some(running) = &mut verify else {
                    return Ended::Retry("protocol error: VerifyDigest while not verifying".into());
                };
                if let Err(verify_error) = take_digest(context, wire, running, offset, digest) {
                    return Ended::Retry(verify_error);
                }
            }
            Message::ReadRequest { id, offset, length } => {
                // Beside the loop, as a resync read (`answer_resync_request`).
                let (volume, out, name) =
                    (Arc::clone(&context.volume), wire.out.clone(), name.clone());
                serving.spawn(async move {
                    let range = offset..offset.saturating_add(u64::from(length));
                    let answer = match volume.read_range(range.clone()).await {
                        Ok(data) => Message::ReadData {
                            id,
                            data: Data::new(data).expect("1 byte to 1 MiB, as requested"),
                        },
                        Err(read_error) => {
                            warn!(
                                "{name}: cannot read {range:?} for the Diskless peer: {read_error}"
                            );
                            Message::ReadFailed { id }
                        }
                    };
                    let _ = out.send(frame(answer));
                    Ok(())
                });
            }
            Message::ReadData { id, data } => {
                if let Err(read_error) = context.link.complete_read(id, Some(data.into_vec())) {
                    return Ended::Retry(read_error);
                }
            }
            Message::ReadFailed { id } => {
                if let Err(read_error) = context.link.complete_read(id, None) {
                    return Ended::Retry(read_error);
                }
            }
            Message::Settings(_) => {
                return Ended::Retry(format!(
                    "protocol error: unexpected {} after the connect",
                    message.message_type()
                ));
            }
            handshake @ (Message::Hello(_)
            | Message::AuthChallenge { .. }
            | Message::AuthResponse { .. }
            | Message::HelloDone { .. }
            | Message::Refused { .. }) => {
                return Ended::Retry(format!(
                    "protocol error: handshake message {} after the handshake",
                    handshake.message_type()
                ));
            }
        }
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
