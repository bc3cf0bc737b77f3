//! [`PeerLink`]: the peer link's shared state (connection, peer state,
//! acknowledgements awaited, transfer log, resync counters) and the
//! [`Mirror`] the write path hands changes to.

use std::collections::{BTreeMap, HashMap};
use std::ops::Range;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hapair_config::ResourceConfig;
use replica::wire::{
    Data, DigestAlgorithm, DiskState, MAX_DATA_LEN, Message, NodeState, ReplicationProtocol, Write,
};
use tokio::sync::{Notify, mpsc, oneshot};

use crate::control::PeerStatus;
use crate::serve::{Acks, Mirror, Payload, PeerReads};
use crate::suspension::Suspension;

use super::connection::{Frame, frame};
use super::{wire_digest, wire_protocol};

/// Writes after which an epoch is closed by a Barrier even without a
/// FLUSH (DRBD's `max-epoch-size` default), so that the transfer log
/// stays short.
const MAX_EPOCH_WRITES: u32 = 2048;

/// The block data of a Write of zeroes (TRIM, WRITE_ZEROES).
static ZEROES: [u8; MAX_DATA_LEN] = [0; MAX_DATA_LEN];

/// DRBD's connection states, as far as hapair has them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Connection {
    StandAlone,
    Connecting,
    Connected,
}

/// DRBD's replication states of a connected peer device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Replication {
    Off,
    Established,
    SyncSource,
    SyncTarget,
    /// This node runs an online verify (asks for digests).
    VerifyS,
    /// The peer runs an online verify (this node answers digests).
    VerifyT,
}

/// A Diskless node's read asked of the peer: its length, and who waits.
type PendingRead = (u64, oneshot::Sender<Option<Bytes>>);

/// A Write whose acknowledgement is awaited: when it was sent, and who
/// waits.
pub(super) struct PendingWrite {
    sent: Instant,
    waiter: oneshot::Sender<bool>,
}

pub(super) struct LinkState {
    pub(super) connection: Connection,
    /// Why the link is StandAlone, and whether that is a split brain.
    pub(super) standalone_reason: Option<String>,
    pub(super) split_brain: bool,
    pub(super) replication: Replication,
    pub(super) peer: Option<NodeState>,
    pub(super) protocol: ReplicationProtocol,
    pub(super) integrity: Option<DigestAlgorithm>,
    /// Set while changes are mirrored: the connection's send queue.
    pub(super) outgoing: Option<mpsc::UnboundedSender<Frame>>,
    pub(super) next_write_id: u64,
    /// By id, so in the order they were sent.
    pub(super) pending_writes: BTreeMap<u64, PendingWrite>,
    pub(super) epoch: u64,
    pub(super) writes_in_epoch: u32,
    pub(super) pending_barriers: HashMap<u64, oneshot::Sender<bool>>,
    /// A Diskless node's reads asked of the peer: id → (length, waiter).
    pub(super) next_read_id: u64,
    pub(super) pending_reads: HashMap<u64, PendingRead>,
    /// The transfer log: ranges mirrored in epochs whose BarrierAck has not
    /// arrived, so not known durable on the peer.
    pub(super) transfer_log: Vec<(u64, Range<u64>)>,
    /// Resync (or verify) of this session: bytes to copy and copied, and
    /// when the count started.
    pub(super) resync_total: u64,
    pub(super) resync_done: u64,
    pub(super) resync_started: Instant,
    /// Bytes this node received or sent as resync since it started.
    pub(super) resynced_bytes: u64,
    /// `connect --discard-my-data` was given.
    pub(super) discard_my_data: bool,
    /// Bytes the last online verify found out of sync (on either end).
    pub(super) verify_out_of_sync: u64,
}

/// The peer link's shared state; see the module documentation.
pub struct PeerLink {
    pub(super) resource: String,
    pub(super) peer_name: String,
    pub(super) state: Mutex<LinkState>,
    /// The local role or disk changed: send a State.
    pub(super) changed: Notify,
    /// End the session and connect again (a forced promotion or an
    /// invalidate changed the generation or disk state while connected).
    pub(super) renegotiate: Notify,
    /// Start an online verify.
    pub(super) verify: Notify,
    /// Check now that the peer is alive (a Ping, unless one is out).
    pub(super) probe: Notify,
    /// The I/O freeze of `fencing: resource-and-stonith`.
    pub(super) suspension: Suspension,
}

/// How long a resync runs before its rate and ETA are shown: before, too
/// few bytes have crossed for a rate to mean anything.
const RATE_AFTER: Duration = Duration::from_secs(1);

impl LinkState {
    /// A resync or verify of `total` bytes starts: progress counts from
    /// zero, and from now.
    pub(super) fn start_progress(&mut self, total: u64) {
        self.resync_total = total;
        self.resync_done = 0;
        self.resync_started = Instant::now();
    }

    fn resync_speed(&self) -> (Option<u64>, Option<u64>) {
        speed(
            self.resync_done,
            self.resync_total,
            self.resync_started.elapsed(),
        )
    }
}

/// The average rate of a resync that copied `done` of `total` bytes in
/// `elapsed`, in bytes per second, and the seconds left at that rate;
/// `None` in its first second, or before anything crossed.
fn speed(done: u64, total: u64, elapsed: Duration) -> (Option<u64>, Option<u64>) {
    if elapsed < RATE_AFTER || done == 0 {
        return (None, None);
    }
    let rate = ((done as f64 / elapsed.as_secs_f64()) as u64).max(1);
    let left = total.saturating_sub(done);
    (Some(rate), Some(left.div_ceil(rate)))
}

pub(super) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl PeerLink {
    pub fn new(config: &ResourceConfig, peer_name: &str) -> Arc<PeerLink> {
        Arc::new(PeerLink {
            resource: config.name.clone(),
            peer_name: peer_name.to_string(),
            state: Mutex::new(LinkState {
                connection: Connection::StandAlone,
                standalone_reason: None,
                split_brain: false,
                replication: Replication::Off,
                peer: None,
                protocol: wire_protocol(config.protocol),
                integrity: config.net.data_integrity_alg.map(wire_digest),
                outgoing: None,
                next_write_id: 1,
                pending_writes: BTreeMap::new(),
                epoch: 1,
                writes_in_epoch: 0,
                pending_barriers: HashMap::new(),
                next_read_id: 1,
                pending_reads: HashMap::new(),
                transfer_log: Vec::new(),
                resync_total: 0,
                resync_done: 0,
                resync_started: Instant::now(),
                resynced_bytes: 0,
                discard_my_data: false,
                verify_out_of_sync: 0,
            }),
            changed: Notify::new(),
            renegotiate: Notify::new(),
            verify: Notify::new(),
            probe: Notify::new(),
            suspension: Suspension::default(),
        })
    }

    pub(super) fn lock(&self) -> MutexGuard<'_, LinkState> {
        lock(&self.state)
    }

    pub fn is_connected(&self) -> bool {
        self.lock().connection == Connection::Connected
    }

    /// True while the peer takes every change (connected, not refused).
    pub fn is_mirroring(&self) -> bool {
        self.lock().outgoing.is_some()
    }

    pub fn peer_is_primary(&self) -> bool {
        let state = self.lock();
        state.connection == Connection::Connected
            && state
                .peer
                .is_some_and(|peer| peer.role == replica::wire::Role::Primary)
    }

    /// True when the connected peer has no disk (it detached it).
    pub fn peer_is_diskless(&self) -> bool {
        let state = self.lock();
        state.connection == Connection::Connected
            && state
                .peer
                .is_some_and(|peer| peer.disk == DiskState::Diskless)
    }

    /// The local role or disk state changed: tell the peer.
    pub fn state_changed(&self) {
        self.changed.notify_one();
    }

    /// Reconnect, so that the connect decision runs on new generation ids.
    pub fn renegotiate(&self) {
        self.renegotiate.notify_one();
    }

    /// Pings the peer now instead of at the next `ping-int`: a promotion
    /// refused because the peer is Primary learns within `ping-timeout`
    /// whether that peer is still there (after a failover, VRRP already
    /// knows it is gone).
    pub fn probe(&self) {
        self.probe.notify_one();
    }

    /// Connected, and neither resyncing nor verifying.
    pub fn is_established(&self) -> bool {
        let state = self.lock();
        state.connection == Connection::Connected && state.replication == Replication::Established
    }

    /// True when the connected peer's metadata was just created and never
    /// synced.
    pub fn peer_is_just_created(&self) -> bool {
        let state = self.lock();
        state.connection == Connection::Connected
            && state
                .peer
                .is_some_and(|peer| peer.generations.is_just_created())
    }

    /// Starts an online verify as its source; the caller checked
    /// [`Self::is_established`] and that `verify-alg` is set.
    pub fn start_verify(&self) {
        self.verify.notify_one();
    }

    pub fn status(&self) -> PeerStatus {
        let state = self.lock();
        let (rate, eta) = state.resync_speed();
        let connected = state.connection == Connection::Connected;
        let syncing = matches!(
            state.replication,
            Replication::SyncSource | Replication::SyncTarget | Replication::VerifyS
        );
        let peer = state.peer.filter(|_| connected);
        PeerStatus {
            name: self.peer_name.clone(),
            connection: format!("{:?}", state.connection),
            role: peer.map_or("Unknown".into(), |p| p.role.to_string()),
            disk: peer.map_or("DUnknown".into(), |p| p.disk.to_string()),
            replication: format!("{:?}", state.replication),
            done: syncing.then(|| percent(state.resync_done, state.resync_total)),
            resync_rate: rate.filter(|_| syncing),
            eta: eta.filter(|_| syncing),
            resynced_bytes: state.resynced_bytes,
            split_brain: state.split_brain,
            reason: state.standalone_reason.clone(),
            verify_out_of_sync: state.verify_out_of_sync,
        }
    }

    /// The link is down: every change not acknowledged is out of sync
    /// (its waiter sees the dropped sender), nothing more is mirrored.
    /// Returns the transfer log: ranges whose epoch the peer did not
    /// confirm durable, to be marked out of sync too.
    #[must_use]
    pub(super) fn lost(
        &self,
        connection: Connection,
        reason: Option<String>,
        split_brain: bool,
    ) -> Vec<Range<u64>> {
        let mut state = self.lock();
        state.outgoing = None;
        state.pending_writes.clear();
        state.pending_barriers.clear();
        state.pending_reads.clear();
        state.connection = connection;
        state.standalone_reason = reason;
        state.split_brain = split_brain;
        state.replication = Replication::Off;
        state.peer = None;
        state.resync_total = 0;
        state.resync_done = 0;
        drop(state);
        self.take_transfer_log()
    }

    /// Empties the transfer log and returns its ranges: the peer confirmed
    /// none of them durable, and never will (it detached its disk).
    #[must_use]
    pub(super) fn take_transfer_log(&self) -> Vec<Range<u64>> {
        self.lock()
            .transfer_log
            .drain(..)
            .map(|(_, range)| range)
            .collect()
    }

    pub(super) fn complete_write(&self, id: u64, done: bool) {
        if let Some(pending) = self.lock().pending_writes.remove(&id) {
            let _ = pending.waiter.send(done);
        }
    }

    pub(super) fn complete_barrier(&self, epoch: u64) {
        let mut state = self.lock();
        state.transfer_log.retain(|(logged, _)| *logged > epoch);
        if let Some(waiter) = state.pending_barriers.remove(&epoch) {
            let _ = waiter.send(true);
        }
    }

    /// Answers a Diskless node's read with the peer's data, or `None` when
    /// the peer could not read it. An answer of another length than asked
    /// is a protocol error.
    pub(super) fn complete_read(&self, id: u64, data: Option<Bytes>) -> Result<(), String> {
        let Some((length, waiter)) = self.lock().pending_reads.remove(&id) else {
            return Err(format!(
                "protocol error: answer to read {id}, which was not asked"
            ));
        };
        if let Some(data) = &data
            && data.len() as u64 != length
        {
            let _ = waiter.send(None);
            return Err(format!(
                "protocol error: read {id} asked for {length} bytes, {} came",
                data.len()
            ));
        }
        let _ = waiter.send(data);
        Ok(())
    }

    /// The oldest Write the peer has not acknowledged yet: its id, and
    /// how long ago it was sent.
    pub(super) fn oldest_unacknowledged_write(&self) -> Option<(u64, Duration)> {
        let state = self.lock();
        let (id, pending) = state.pending_writes.first_key_value()?;
        Some((*id, pending.sent.elapsed()))
    }

    pub(super) fn has_outstanding(&self) -> bool {
        let state = self.lock();
        !state.pending_writes.is_empty()
            || !state.pending_barriers.is_empty()
            || !state.pending_reads.is_empty()
    }
}

fn percent(done: u64, total: u64) -> f64 {
    if total == 0 {
        100.0
    } else {
        (done as f64 * 10_000.0 / total as f64).floor() / 100.0
    }
}

impl Mirror for PeerLink {
    fn replicate(
        &self,
        offset: u64,
        payload: Payload<'_>,
        fua: bool,
        diskless: bool,
        absent: &mut dyn FnMut(),
    ) -> Option<Acks> {
        let length = match payload {
            Payload::Data(data) => data.len() as u64,
            Payload::Zeroes(length) => length,
        };
        // The pieces (views of the request's data) and their digests are
        // made before the lock is taken, so that writes from several
        // clients are not serialized on the digests; a link that comes up
        // meanwhile gets them made under the lock.
        let (integrity, mirroring) = {
            let state = self.lock();
            (state.integrity, state.outgoing.is_some())
        };
        let mut pieces = if mirroring {
            write_pieces(payload, length, integrity)
        } else {
            Vec::new()
        };
        let mut state = self.lock();
        let Some(out) = state.outgoing.clone() else {
            absent();
            return None;
        };
        if pieces.is_empty() {
            pieces = write_pieces(payload, length, integrity);
        }
        let mut acks = Vec::new();
        let mut done = 0u64;
        for (data, digest) in pieces {
            let id = state.next_write_id;
            state.next_write_id += 1;
            let take = data.len() as u64;
            let write = Write {
                id,
                offset: offset + done,
                epoch: state.epoch,
                fua,
                sender_diskless: diskless,
                integrity: digest,
                data,
            };
            if state.protocol != ReplicationProtocol::A || diskless {
                let (waiter, ack) = oneshot::channel();
                let sent = Instant::now();
                state
                    .pending_writes
                    .insert(id, PendingWrite { sent, waiter });
                acks.push(ack);
            }
            state.writes_in_epoch += 1;
            let _ = out.send(frame(Message::Write(write)));
            done += take;
        }
        let epoch = state.epoch;
        state.transfer_log.push((epoch, offset..offset + length));
        if state.writes_in_epoch >= MAX_EPOCH_WRITES {
            let writes = state.writes_in_epoch;
            state.epoch += 1;
            state.writes_in_epoch = 0;
            let _ = out.send(frame(Message::Barrier { epoch, writes }));
        }
        Some(acks)
    }

    fn barrier(&self, diskless: bool) -> Option<oneshot::Receiver<bool>> {
        let mut state = self.lock();
        let out = state.outgoing.clone()?;
        let (epoch, writes) = (state.epoch, state.writes_in_epoch);
        state.epoch += 1;
        state.writes_in_epoch = 0;
        let ack = (state.protocol == ReplicationProtocol::C || diskless).then(|| {
            let (waiter, ack) = oneshot::channel();
            state.pending_barriers.insert(epoch, waiter);
            ack
        });
        let _ = out.send(frame(Message::Barrier { epoch, writes }));
        ack
    }

    fn read(&self, range: Range<u64>) -> Option<PeerReads> {
        let mut state = self.lock();
        let out = state.outgoing.clone()?;
        if state
            .peer
            .is_none_or(|peer| peer.disk != DiskState::UpToDate)
        {
            return None;
        }
        let mut parts = Vec::new();
        let mut offset = range.start;
        while offset < range.end {
            let length = (range.end - offset).min(MAX_DATA_LEN as u64);
            let id = state.next_read_id;
            state.next_read_id += 1;
            let (waiter, answer) = oneshot::channel();
            state.pending_reads.insert(id, (length, waiter));
            parts.push(answer);
            let _ = out.send(frame(Message::ReadRequest {
                id,
                offset,
                length: length as u32,
            }));
            offset += length;
        }
        Some(parts)
    }

    fn disk_state_changed(&self) {
        self.state_changed();
    }

    fn suspension(&self) -> &Suspension {
        &self.suspension
    }
}

/// A change cut into the pieces one Write carries, each with its
/// `data-integrity-alg` digest.
fn write_pieces(
    payload: Payload<'_>,
    length: u64,
    integrity: Option<DigestAlgorithm>,
) -> Vec<(Data, Option<replica::wire::Digest>)> {
    let mut pieces = Vec::new();
    let mut done = 0u64;
    while done < length {
        let take = (length - done).min(MAX_DATA_LEN as u64) as usize;
        let bytes = match payload {
            Payload::Data(data) => data.slice(done as usize..done as usize + take),
            Payload::Zeroes(_) => Bytes::from_static(&ZEROES[..take]),
        };
        let digest = integrity.map(|algorithm| algorithm.compute(&bytes));
        pieces.push((
            Data::new(bytes).expect("at most MAX_DATA_LEN bytes, at least one"),
            digest,
        ));
        done += take as u64;
    }
    pieces
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn speed_is_the_average_so_far_and_the_eta_rounds_up() {
        let second = Duration::from_secs(1);
        assert_eq!(
            speed(10 << 20, 100 << 20, 5 * second),
            (Some(2 << 20), Some(45))
        );
        assert_eq!(speed(3, 10, 2 * second), (Some(1), Some(7)));
        assert_eq!(speed(10, 10, 2 * second), (Some(5), Some(0)));
        assert_eq!(
            speed(1 << 20, 2 << 20, second / 2),
            (None, None),
            "too early"
        );
        assert_eq!(
            speed(0, 1 << 20, 3 * second),
            (None, None),
            "nothing crossed"
        );
    }

    #[test]
    fn progress_is_cut_to_two_decimals() {
        assert_eq!(percent(0, 0), 100.0);
        assert_eq!(percent(1, 3), 33.33);
        assert_eq!(percent(4210, 10_000), 42.1);
    }
}
