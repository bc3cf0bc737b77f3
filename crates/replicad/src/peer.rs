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
//! volume's I/O ([`Suspension`]), before the session's end drops the
//! acknowledgements still awaited, so that no write is answered without
//! the peer until the peer is known fenced: the handler's exit code says
//! so, the peer connects again, or the operator runs `haadm resume-io`.

use std::collections::{BTreeMap, HashMap};
use std::io::IoSlice;
use std::net::SocketAddr;
use std::ops::Range;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use hapair_config::ResourceConfig;
use hapair_config::resource::{
    AfterSb0Pri, AfterSb1Pri, AfterSb2Pri, DigestAlg, Fencing, Protocol,
};
use log::{error, info, warn};
use replica::auth::{AuthConfig, Authenticator, Progress, SharedSecret, random_challenge};
use replica::generation::random_id;
use replica::superblock::{Flags, NodeName, VolumeState};
use replica::sync::{
    self, PeerView, SplitBrainPolicy, SplitBrainResolution, SyncDecision, SyncKind, SyncRole,
    UnresolvedReason,
};
use replica::wire::{
    BitmapChunk, Data, DigestAlgorithm, DiskState, FrameDecoder, MAX_BITMAP_WORDS, MAX_DATA_LEN,
    Message, NodeState, ReplicationProtocol, ResourceName, Settings, StateFlags, Text, Write,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::control::PeerStatus;
use crate::helpers::{AfterFencing, Handler, Helpers, after_fence_peer};
use crate::pacer::ResyncPacer;
use crate::resource::{MetadataJournal, Role, disk_state};
use crate::serve::{Acks, HeldRange, Journal, Mirror, Notice, Payload, PeerReads, Volume};
use crate::suspension::{Freeze, Suspension};

/// Bytes of one 4 KiB bitmap block.
const BLOCK: u64 = 4096;
/// Resync requests a sync target keeps outstanding.
const RESYNC_WINDOW: usize = 8;
/// Writes after which an epoch is closed by a Barrier even without a
/// FLUSH (DRBD's `max-epoch-size` default), so that the transfer log
/// stays short.
const MAX_EPOCH_WRITES: u32 = 2048;
/// Verify requests (one 4 KiB block each) a verify source keeps outstanding.
const VERIFY_WINDOW: usize = 128;
/// How often keep-alive and timeouts are checked.
const TICK: Duration = Duration::from_millis(100);
/// How long the handshake and the State exchange may take.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// The least room offered to one read from the peer.
const RECEIVE_CHUNK: usize = 256 * 1024;
/// How long a knock may take to connect before it is given up.
const KNOCK_TIMEOUT: Duration = Duration::from_secs(1);
/// How long a closing side waits for its last message to leave.
const CLOSE_GRACE: Duration = Duration::from_secs(1);
/// Accepted connections whose handshake may run at the same time, so that
/// connections that send nothing (or too little) cannot keep the real peer
/// waiting; more are closed at once.
const MAX_PENDING_HANDSHAKES: usize = 8;

/// DRBD's connection states, as far as hapair has them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Connection {
    StandAlone,
    Connecting,
    Connected,
}

/// DRBD's replication states of a connected peer device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Replication {
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
type PendingRead = (u64, oneshot::Sender<Option<Vec<u8>>>);

struct LinkState {
    connection: Connection,
    /// Why the link is StandAlone, and whether that is a split brain.
    standalone_reason: Option<String>,
    split_brain: bool,
    replication: Replication,
    peer: Option<NodeState>,
    protocol: ReplicationProtocol,
    integrity: Option<DigestAlgorithm>,
    /// Set while changes are mirrored: the connection's send queue.
    outgoing: Option<mpsc::UnboundedSender<Frame>>,
    next_write_id: u64,
    pending_writes: HashMap<u64, oneshot::Sender<bool>>,
    epoch: u64,
    writes_in_epoch: u32,
    pending_barriers: HashMap<u64, oneshot::Sender<bool>>,
    /// A Diskless node's reads asked of the peer: id → (length, waiter).
    next_read_id: u64,
    pending_reads: HashMap<u64, PendingRead>,
    /// The transfer log: ranges mirrored in epochs whose BarrierAck has not
    /// arrived, so not known durable on the peer.
    transfer_log: Vec<(u64, Range<u64>)>,
    /// Resync of this session: bytes to copy and copied.
    resync_total: u64,
    resync_done: u64,
    /// Bytes this node received or sent as resync since it started.
    resynced_bytes: u64,
    /// `connect --discard-my-data` was given.
    discard_my_data: bool,
    /// Bytes the last online verify found out of sync (on either end).
    verify_out_of_sync: u64,
}

/// The peer link's shared state; see the module documentation.
pub struct PeerLink {
    resource: String,
    peer_name: String,
    state: Mutex<LinkState>,
    /// The local role or disk changed: send a State.
    changed: Notify,
    /// End the session and connect again (a forced promotion or an
    /// invalidate changed the generation or disk state while connected).
    renegotiate: Notify,
    /// Start an online verify.
    verify: Notify,
    /// Check now that the peer is alive (a Ping, unless one is out).
    probe: Notify,
    /// The I/O freeze of `fencing: resource-and-stonith`.
    suspension: Suspension,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
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
                pending_writes: HashMap::new(),
                epoch: 1,
                writes_in_epoch: 0,
                pending_barriers: HashMap::new(),
                next_read_id: 1,
                pending_reads: HashMap::new(),
                transfer_log: Vec::new(),
                resync_total: 0,
                resync_done: 0,
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

    fn lock(&self) -> MutexGuard<'_, LinkState> {
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
    fn lost(
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
        state
            .transfer_log
            .drain(..)
            .map(|(_, range)| range)
            .collect()
    }

    fn complete_write(&self, id: u64, done: bool) {
        if let Some(waiter) = self.lock().pending_writes.remove(&id) {
            let _ = waiter.send(done);
        }
    }

    fn complete_barrier(&self, epoch: u64) {
        let mut state = self.lock();
        state.transfer_log.retain(|(logged, _)| *logged > epoch);
        if let Some(waiter) = state.pending_barriers.remove(&epoch) {
            let _ = waiter.send(true);
        }
    }

    /// Answers a Diskless node's read with the peer's data, or `None` when
    /// the peer could not read it. An answer of another length than asked
    /// is a protocol error.
    fn complete_read(&self, id: u64, data: Option<Vec<u8>>) -> Result<(), String> {
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

    fn has_outstanding(&self) -> bool {
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
        // The copies and digests are made before the lock is taken, so
        // that writes from several clients are not serialized on them; a
        // link that comes up meanwhile gets them made under the lock.
        let integrity = self.lock().integrity;
        let mut pieces = if self.is_mirroring() {
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
                state.pending_writes.insert(id, waiter);
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

/// One encoded message for a connection's writer task: the header with
/// the payload up to its block data, and the block data (often empty),
/// written together with one vectored write so that the block data is
/// never copied into a frame.
type Frame = (Vec<u8>, Vec<u8>);

fn frame(message: Message) -> Frame {
    message.into_frame_parts()
}

/// Writes a frame's two parts, vectored, until both are out.
async fn write_frame(writer: &mut OwnedWriteHalf, (head, bulk): &Frame) -> std::io::Result<()> {
    let (mut head, mut bulk) = (head.as_slice(), bulk.as_slice());
    while !head.is_empty() || !bulk.is_empty() {
        let parts = [IoSlice::new(head), IoSlice::new(bulk)];
        let written = writer.write_vectored(&parts).await?;
        if written == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        let from_head = written.min(head.len());
        head = &head[from_head..];
        bulk = &bulk[written - from_head..];
    }
    Ok(())
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
            Payload::Data(data) => data[done as usize..done as usize + take].to_vec(),
            Payload::Zeroes(_) => vec![0; take],
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

/// The listener on this node's own address. A listening node retries
/// until it has one; for a dialing node it only hears knocks, so without
/// it the node still connects, at its own pace.
async fn listen(context: &LinkContext, address: SocketAddr, dials: bool) -> Option<TcpListener> {
    let name = &context.config.name;
    let connect_int = context.config.net.connect_int;
    loop {
        match TcpListener::bind(address).await {
            Ok(listener) => return Some(listener),
            Err(bind_error) if dials => {
                warn!(
                    "{name}: cannot listen on {address} for the peer's knocks: {bind_error}; \
                     dialing every {connect_int:?} only"
                );
                return None;
            }
            Err(bind_error) => {
                warn!(
                    "{name}: cannot listen on {address} for the peer: {bind_error}; \
                     retrying in {connect_int:?}"
                );
                tokio::time::sleep(connect_int).await;
            }
        }
    }
}

/// A dialing node's pause before its next dial: `connect-int`, or less
/// when a knock arrives (the connection is closed unread).
async fn wait_for_knock(listener: Option<&TcpListener>, connect_int: Duration) {
    let Some(listener) = listener else {
        tokio::time::sleep(connect_int).await;
        return;
    };
    let pause = tokio::time::sleep(connect_int);
    tokio::select! {
        () = pause => {}
        accepted = listener.accept() => match accepted {
            Ok((_, from)) => log::debug!("knock from {from}: dialing now"),
            // Accepting fails at once while it fails at all (no file
            // descriptors left): pause in full rather than spin.
            Err(_) => tokio::time::sleep(connect_int).await,
        }
    }
}

/// Tells the dialing peer that this node waits for it: connects and closes.
/// Nothing is sent; a peer that is not there is not an error.
async fn knock(peer: SocketAddr) {
    let _ = tokio::time::timeout(KNOCK_TIMEOUT, TcpStream::connect(peer)).await;
}

async fn dial(address: SocketAddr) -> std::io::Result<TcpStream> {
    tokio::time::timeout(HANDSHAKE_TIMEOUT, TcpStream::connect(address))
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timed out"))?
}

/// The receiving half of a connection with its decoder; sending goes
/// through the writer task's queue.
struct Wire {
    reader: OwnedReadHalf,
    decoder: FrameDecoder,
    out: mpsc::UnboundedSender<Frame>,
    last_received: Instant,
}

impl Wire {
    fn send(&self, message: Message) {
        let _ = self.out.send(frame(message));
    }

    /// The next message; cancel-safe (bytes read are kept in the decoder).
    async fn receive(&mut self) -> Result<Message, String> {
        loop {
            if let Some(decoded) = self.decoder.next() {
                self.last_received = Instant::now();
                return decoded.map_err(|wire_error| wire_error.to_string());
            }
            let room = self.decoder.receive_buffer(RECEIVE_CHUNK);
            match self.reader.read(room).await {
                Ok(0) => {
                    return Err(match self.decoder.finish() {
                        Ok(()) => "the peer closed the connection".to_string(),
                        Err(wire_error) => wire_error.to_string(),
                    });
                }
                Ok(n) => self.decoder.received(n),
                Err(read_error) => return Err(format!("reading from the peer: {read_error}")),
            }
        }
    }

    async fn receive_within(&mut self, limit: Duration) -> Result<Message, String> {
        tokio::time::timeout(limit, self.receive())
            .await
            .map_err(|_| format!("the peer sent nothing for {limit:?}"))?
    }
}

/// A connection: its receiving [`Wire`] and the task that writes what is
/// sent.
struct Opened {
    wire: Wire,
    writer: JoinHandle<()>,
}

fn open(stream: TcpStream) -> Opened {
    let _ = stream.set_nodelay(true);
    let (reader, mut writer_half) = stream.into_split();
    let (out, mut queue) = mpsc::unbounded_channel::<Frame>();
    let writer = tokio::spawn(async move {
        while let Some(frame) = queue.recv().await {
            if write_frame(&mut writer_half, &frame).await.is_err() {
                return;
            }
        }
        let _ = writer_half.shutdown().await;
    });
    let wire = Wire {
        reader,
        decoder: FrameDecoder::new(),
        out,
        last_received: Instant::now(),
    };
    Opened { wire, writer }
}

/// Sends what is queued, then closes.
async fn close(opened: Opened) {
    drop(opened.wire);
    let _ = tokio::time::timeout(CLOSE_GRACE, opened.writer).await;
}

/// Cleans up the link however a session ends (also when aborted).
struct SessionGuard<'a>(&'a PeerLink);

impl Drop for SessionGuard<'_> {
    fn drop(&mut self) {
        let mut state = self.0.lock();
        state.outgoing = None;
        state.pending_writes.clear();
        state.pending_barriers.clear();
        state.pending_reads.clear();
    }
}

/// Accepts connections and runs their handshakes side by side (at most
/// [`MAX_PENDING_HANDSHAKES`]), until one ends other than in a refusal to
/// retry: that connection is the session's; the other pending ones are
/// closed. Refused ones are logged and closed.
async fn accept_handshaken(
    context: &Arc<LinkContext>,
    listener: &TcpListener,
) -> (Opened, Result<(), Ended>) {
    let name = &context.config.name;
    let mut pending = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, from)) if pending.len() >= MAX_PENDING_HANDSHAKES => {
                    warn!(
                        "{name}: connection from {from} closed: {MAX_PENDING_HANDSHAKES} \
                         handshakes are pending already"
                    );
                    drop(stream);
                }
                Ok((stream, from)) => {
                    info!("{name}: connection from {from}");
                    let context = Arc::clone(context);
                    pending.spawn(async move {
                        let mut opened = open(stream);
                        let handshaken = handshake(&context, &mut opened.wire).await;
                        (from, opened, handshaken)
                    });
                }
                Err(accept_error) => {
                    warn!("{name}: accepting a peer connection failed: {accept_error}");
                    tokio::time::sleep(TICK).await;
                }
            },
            Some(joined) = pending.join_next(), if !pending.is_empty() => {
                let Ok((from, opened, handshaken)) = joined else {
                    continue;
                };
                match handshaken {
                    Err(Ended::Retry(reason)) => {
                        warn!("{name}: connection from {from} refused: {reason}");
                        tokio::spawn(close(opened));
                    }
                    handshaken => return (opened, handshaken),
                }
            }
        }
    }
}

async fn session(
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

/// Hello, authentication, Settings; refusals are logged and retried.
async fn handshake(context: &LinkContext, wire: &mut Wire) -> Result<(), Ended> {
    let config = &context.config;
    let (peer_name, _) = config.peer(&context.node).expect("a pair has two nodes");
    let retry = |what: String| Ended::Retry(what);
    let auth_config = AuthConfig {
        local_node: NodeName::new(&context.node).map_err(|e| retry(e.to_string()))?,
        peer_node: NodeName::new(peer_name).map_err(|e| retry(e.to_string()))?,
        resource: ResourceName::new(&config.name).map_err(|e| retry(e.to_string()))?,
        secret: match &config.net.auth {
            Some(auth) => Some(
                SharedSecret::new(auth.shared_secret.as_bytes())
                    .map_err(|e| retry(e.to_string()))?,
            ),
            None => None,
        },
    };
    let challenge = random_challenge().map_err(|e| retry(format!("no random challenge: {e}")))?;
    let mut authenticator =
        Authenticator::new(auth_config, challenge).map_err(|e| Ended::StandAlone {
            reason: e.to_string(),
            split_brain: false,
        })?;
    loop {
        while let Some(message) = authenticator.poll_transmit() {
            wire.send(message);
        }
        let message = wire
            .receive_within(HANDSHAKE_TIMEOUT)
            .await
            .map_err(|e| retry(format!("handshake failed: {e}")))?;
        match authenticator.receive(message) {
            Ok(Progress::InProgress) => {}
            Ok(Progress::Authenticated(_)) => break,
            Err(refusal) => {
                while let Some(message) = authenticator.poll_transmit() {
                    wire.send(message);
                }
                return Err(retry(format!("connection refused: {refusal}")));
            }
        }
    }
    let settings = {
        let state = context.link.lock();
        Settings {
            protocol: state.protocol,
            data_integrity: state.integrity,
        }
    };
    wire.send(Message::Settings(settings));
    match wire
        .receive_within(HANDSHAKE_TIMEOUT)
        .await
        .map_err(|e| retry(format!("waiting for the peer's settings: {e}")))?
    {
        Message::Settings(theirs) if theirs == settings => Ok(()),
        Message::Settings(theirs) => Err(Ended::StandAlone {
            reason: format!(
                "settings differ: this node has protocol {} and data-integrity-alg {}, \
                 the peer protocol {} and data-integrity-alg {}; make the configs equal",
                settings.protocol,
                integrity_name(settings.data_integrity),
                theirs.protocol,
                integrity_name(theirs.data_integrity),
            ),
            split_brain: false,
        }),
        Message::Disconnect { reason } => Err(retry(format!("the peer disconnected: {reason}"))),
        other => Err(retry(format!(
            "the peer sent {} where Settings belong",
            other.message_type()
        ))),
    }
}

fn integrity_name(algorithm: Option<DigestAlgorithm>) -> String {
    algorithm.map_or("none".into(), |a| a.to_string())
}

/// What this node tells the peer about itself.
fn local_state(context: &LinkContext) -> NodeState {
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
fn volume_state_of(peer: &NodeState) -> VolumeState {
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

/// The resync a session runs as target.
struct TargetResync {
    /// The source's whole bitmap arrived; requests may start.
    ready: bool,
    /// Requests sent: offset → (length, made stale by a mirrored write).
    requests: BTreeMap<u64, (u64, bool)>,
    /// Data received and being written beside the receive loop, its range
    /// held: offset → length. Counted in the window with `requests`.
    writing: BTreeMap<u64, u64>,
    /// The writes of `writing`; each ends with its offset.
    writes: tokio::task::JoinSet<Result<u64, String>>,
    /// Where the walk over the dirty bitmap continues.
    cursor: u64,
    pacer: ResyncPacer,
}

impl TargetResync {
    fn new(config: &ResourceConfig) -> TargetResync {
        TargetResync {
            ready: false,
            requests: BTreeMap::new(),
            writing: BTreeMap::new(),
            writes: tokio::task::JoinSet::new(),
            cursor: 0,
            pacer: ResyncPacer::new(&config.disk, MAX_DATA_LEN as u64, Instant::now()),
        }
    }

    /// Requests and writes outstanding.
    fn in_flight(&self) -> usize {
        self.requests.len() + self.writing.len()
    }

    /// Whether `range` is asked for or being written.
    fn covers(&self, range: &Range<u64>) -> bool {
        self.requests
            .iter()
            .map(|(offset, (length, _))| (offset, length))
            .chain(self.writing.iter())
            .any(|(offset, length)| overlaps(range, &(*offset..offset + length)))
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

/// Writes resync data whose range `held` is held, beside the receive loop,
/// then clears its bits and counts it; ends with the offset.
async fn write_resync_data(
    context: Arc<LinkContext>,
    held: HeldRange,
    offset: u64,
    data: Vec<u8>,
) -> Result<u64, String> {
    let length = data.len() as u64;
    context
        .volume
        .write_held(held, data, false)
        .await
        .map_err(|write_error| format!("cannot write resync data: {write_error}"))?;
    if let Err(clear_error) = context.journal.lock().clear_dirty(offset..offset + length) {
        warn!("{}: {clear_error}", context.config.name);
    }
    let mut link = context.link.lock();
    link.resynced_bytes += length;
    link.resync_done += length;
    Ok(offset)
}

/// The online verify a session runs as its source.
struct VerifySource {
    algorithm: DigestAlgorithm,
    /// The next block to ask for.
    cursor: u64,
    /// Requests sent: offset → length.
    requests: BTreeMap<u64, u64>,
    /// Digests received and being compared with the local data, beside
    /// the receive loop (the local read waits for local writes, which wait
    /// for the peer's acks that only the loop takes in).
    comparing: tokio::task::JoinSet<Result<(), String>>,
}

/// Starts an online verify as source: VerifyS, counters reset.
fn begin_verify(context: &LinkContext) -> Option<VerifySource> {
    let algorithm = wire_digest(context.config.net.verify_alg?);
    let mut link = context.link.lock();
    if link.replication != Replication::Established {
        return None;
    }
    link.replication = Replication::VerifyS;
    link.resync_total = context.volume.size();
    link.resync_done = 0;
    link.verify_out_of_sync = 0;
    info!(
        "{}: online verify started ({algorithm})",
        context.config.name
    );
    Some(VerifySource {
        algorithm,
        cursor: 0,
        requests: BTreeMap::new(),
        comparing: tokio::task::JoinSet::new(),
    })
}

/// Asks for block digests until the window is full.
fn request_digests(context: &LinkContext, wire: &Wire, verify: &mut VerifySource) {
    let size = context.volume.size();
    while verify.requests.len() < VERIFY_WINDOW && verify.cursor < size {
        let length = (size - verify.cursor).min(BLOCK);
        verify.requests.insert(verify.cursor, length);
        wire.send(Message::VerifyRequest {
            offset: verify.cursor,
            length: length as u32,
            algorithm: verify.algorithm,
        });
        verify.cursor += length;
    }
}

/// Takes the peer's digest of a range it was asked for and compares it
/// with the local data beside the receive loop.
fn take_digest(
    context: &Arc<LinkContext>,
    wire: &Wire,
    verify: &mut VerifySource,
    offset: u64,
    digest: replica::wire::Digest,
) -> Result<(), String> {
    let Some(length) = verify.requests.remove(&offset) else {
        return Err(format!(
            "protocol error: VerifyDigest at {offset} that was not requested"
        ));
    };
    verify.comparing.spawn(compare_digest(
        Arc::clone(context),
        wire.out.clone(),
        offset..offset + length,
        digest,
    ));
    Ok(())
}

/// Compares the peer's digest of a range with the local data; a mismatch
/// is marked out of sync on both nodes (not repaired, as in DRBD).
async fn compare_digest(
    context: Arc<LinkContext>,
    out: mpsc::UnboundedSender<Frame>,
    range: Range<u64>,
    digest: replica::wire::Digest,
) -> Result<(), String> {
    let local = context
        .volume
        .read_range(range.clone())
        .await
        .map_err(|e| format!("cannot read {range:?} to verify it: {e}"))?;
    let length = range.end - range.start;
    let mut link = context.link.lock();
    link.resync_done += length;
    if !digest.matches(&local) {
        link.verify_out_of_sync += length;
        drop(link);
        warn!(
            "{}: online verify: {range:?} differs from the peer; marked out of sync",
            context.config.name
        );
        let offset = range.start;
        if let Err(mark_error) = context.journal.lock().mark_dirty(range) {
            warn!("{}: {mark_error}", context.config.name);
        }
        let _ = out.send(frame(Message::OutOfSync { offset, length }));
    }
    Ok(())
}

/// Every digest compared: back to Established, tell the peer (a State
/// ends its VerifyT), and call `out-of-sync` if blocks differed.
fn finish_verify(context: &LinkContext, wire: &Wire) {
    let found = {
        let mut link = context.link.lock();
        link.replication = Replication::Established;
        link.verify_out_of_sync
    };
    if let Err(flush_error) = context.journal.lock().flush_bitmap() {
        warn!("{}: {flush_error}", context.config.name);
    }
    info!(
        "{}: online verify finished: {found} bytes ({} blocks) out of sync",
        context.config.name,
        found / BLOCK
    );
    wire.send(Message::State(local_state(context)));
    if found > 0 {
        context.helpers.call(Handler::OutOfSync);
    }
    let _ = context.notices.send(Notice::LinkChanged);
}

async fn connected(context: &Arc<LinkContext>, wire: &mut Wire) -> Ended {
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

/// Answers one of the sync target's ResyncRequests. This runs beside the
/// session loop, never in it: the read waits for local writes to the range,
/// and a local write waits for the peer's WriteAck, which only the loop
/// takes in. The source's bits are cleared once the data is queued.
async fn answer_resync_request(
    context: Arc<LinkContext>,
    out: mpsc::UnboundedSender<Frame>,
    offset: u64,
    length: u32,
) -> Result<(), String> {
    let name = &context.config.name;
    let range = offset..offset.saturating_add(u64::from(length));
    match context.volume.read_range(range.clone()).await {
        Ok(data) => {
            let sent = data.len() as u64;
            let queued = out.send(frame(Message::ResyncData {
                offset,
                data: Data::new(data).expect("1 byte to 1 MiB, as requested"),
            }));
            if queued.is_err() {
                return Ok(());
            }
            if let Err(clear_error) = context.journal.lock().clear_dirty(range) {
                warn!("{name}: {clear_error}");
            }
            let mut link = context.link.lock();
            link.resynced_bytes += sent;
            link.resync_done += sent;
        }
        Err(read_error) => {
            warn!("{name}: cannot read {range:?} for the peer's resync: {read_error}");
            let _ = out.send(frame(Message::ResyncFailed { offset, length }));
        }
    }
    Ok(())
}

fn overlaps(a: &Range<u64>, b: &Range<u64>) -> bool {
    a.start < b.end && b.start < a.end
}

/// The dirty bitmap as 64-bit words, block 0 first.
fn bitmap_words(metadata: &replica::store::Metadata) -> Vec<u64> {
    let bitmap = metadata.bitmap();
    let word_count = bitmap.blocks().div_ceil(64) as usize;
    let mut words: Vec<u64> = (0..bitmap.page_count())
        .flat_map(|page| bitmap.page_words(page).iter().copied())
        .collect();
    words.truncate(word_count);
    words
}

fn send_bitmap(wire: &Wire, words: Vec<u64>) {
    let chunks: Vec<&[u64]> = words.chunks(MAX_BITMAP_WORDS).collect();
    for (index, chunk) in chunks.iter().enumerate() {
        let offset = (index * MAX_BITMAP_WORDS) as u64;
        let last = index + 1 == chunks.len();
        let chunk = BitmapChunk::new(offset, chunk.to_vec(), last).expect("within the limits");
        wire.send(Message::BitmapChunk(chunk));
    }
}

/// ORs the peer's bitmap chunk into ours.
fn merge_bitmap_chunk(context: &LinkContext, chunk: &BitmapChunk) {
    let mut metadata = context.journal.lock();
    let blocks = metadata.bitmap().blocks();
    for range in set_bit_runs(chunk.word_offset(), chunk.words()) {
        let range = range.start.min(blocks)..range.end.min(blocks);
        if range.is_empty() {
            continue;
        }
        if let Err(mark_error) = metadata.mark_dirty(range.start * BLOCK..range.end * BLOCK) {
            warn!("{}: {mark_error}", context.config.name);
        }
    }
}

/// The runs of set bits in `words` (starting at word `word_offset`), as
/// block ranges.
fn set_bit_runs(word_offset: u64, words: &[u64]) -> Vec<Range<u64>> {
    let mut runs: Vec<Range<u64>> = Vec::new();
    for (index, &word) in words.iter().enumerate() {
        if word == 0 {
            continue;
        }
        let base = (word_offset + index as u64) * 64;
        for bit in 0..64 {
            if word & (1 << bit) == 0 {
                continue;
            }
            let block = base + bit;
            match runs.last_mut() {
                Some(run) if run.end == block => run.end += 1,
                _ => runs.push(block..block + 1),
            }
        }
    }
    runs
}

/// The sync target becomes Inconsistent, with the combined bitmap durable
/// first: a crash from here on resumes the resync, it never skips a block.
fn begin_as_target(context: &LinkContext) -> Result<(), String> {
    let mut metadata = context.journal.lock();
    metadata.flush_bitmap().map_err(|e| e.to_string())?;
    metadata
        .update_superblock(sync::begin_sync_as_target)
        .map_err(|e| e.to_string())?;
    let total = metadata.bitmap().dirty_bytes();
    drop(metadata);
    let mut link = context.link.lock();
    link.resync_total = total;
    link.resync_done = 0;
    info!(
        "{}: resync from the peer started: {total} bytes out of sync",
        context.config.name
    );
    Ok(())
}

/// The sync source has both bitmaps: what is dirty now is what the resync
/// copies, the total its progress counts against.
fn begin_as_source(context: &LinkContext) {
    let total = context.journal.lock().bitmap().dirty_bytes();
    let mut link = context.link.lock();
    if link.replication == Replication::SyncSource {
        link.resync_total = total;
        link.resync_done = 0;
    }
}

/// Asks for dirty ranges until the window is full.
fn request_more(context: &LinkContext, wire: &Wire, resync: &mut TargetResync) {
    if resync.in_flight() >= RESYNC_WINDOW {
        return;
    }
    let metadata = context.journal.lock();
    let size = metadata.usable_size();
    let mut wanted = Vec::new();
    let now = Instant::now();
    let longest = resync.pacer.request_length(now);
    let mut paced_out = false;
    for range in metadata.dirty_ranges() {
        if range.end <= resync.cursor {
            continue;
        }
        let mut at = range.start.max(resync.cursor);
        let end = range.end.min(size);
        while at < end && resync.in_flight() + wanted.len() < RESYNC_WINDOW {
            let length = (end - at).min(longest);
            if !resync.covers(&(at..at + length)) {
                if !resync.pacer.try_take(length, now) {
                    paced_out = true;
                    break;
                }
                wanted.push((at, length));
            }
            at += length;
        }
        resync.cursor = at;
        if paced_out || resync.in_flight() + wanted.len() >= RESYNC_WINDOW {
            break;
        }
    }
    let walked_to_end = !paced_out && resync.in_flight() + wanted.len() < RESYNC_WINDOW;
    drop(metadata);
    if walked_to_end && wanted.is_empty() {
        // Everything asked for; start over for ranges asked again later.
        resync.cursor = 0;
    }
    for (offset, length) in wanted {
        resync.requests.insert(offset, (length, false));
        wire.send(Message::ResyncRequest {
            offset,
            length: length as u32,
        });
    }
}

/// The resync is complete: adopt the source's generation ids, UpToDate.
fn finish_as_target(context: &LinkContext, source: &NodeState) -> Result<(), String> {
    let source_state = volume_state_of(source);
    let mut metadata = context.journal.lock();
    metadata.flush_bitmap().map_err(|e| e.to_string())?;
    metadata
        .update_superblock(|state| sync::finish_sync_as_target(state, &source_state))
        .map_err(|e| e.to_string())?;
    drop(metadata);
    let mut link = context.link.lock();
    link.replication = Replication::Established;
    info!(
        "{}: resync finished: {} bytes copied from the peer",
        context.config.name, link.resync_done
    );
    drop(link);
    context.helpers.call(Handler::AfterResyncTarget);
    Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_bits_become_block_runs() {
        assert_eq!(set_bit_runs(0, &[0]), Vec::<Range<u64>>::new());
        assert_eq!(set_bit_runs(0, &[0b1110]), vec![1..4]);
        assert_eq!(
            set_bit_runs(2, &[1 << 63, 0b1, 0, 1 << 5]),
            vec![191..193, 325..326],
            "runs continue across words and start at the word offset"
        );
    }

    #[test]
    fn progress_is_cut_to_two_decimals() {
        assert_eq!(percent(0, 0), 100.0);
        assert_eq!(percent(1, 3), 33.33);
        assert_eq!(percent(4210, 10_000), 42.1);
    }
}
