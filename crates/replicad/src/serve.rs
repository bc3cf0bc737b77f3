//! Serving a volume over NBD: one task per client connection drives the
//! `nbd` crate's protocol core, and each request runs as its own task, so
//! a deep queue of disjoint requests proceeds in parallel. Overlapping
//! requests are ordered by the [`RangeLock`].
//!
//! The write path is the durability contract: a change (WRITE, TRIM,
//! WRITE_ZEROES) is handed to the [`Mirror`] (the peer link) and applied to
//! the backing store; it is answered once the local write completed and the
//! peer acknowledged it (protocol C), or at once when no peer takes it — the
//! range is then out of sync. FLUSH and FUA are answered once `fdatasync`
//! returned here and, for FLUSH, the peer's barrier ack arrived. The
//! metadata side (activity log, dirty bitmap, generation ids) is the
//! [`Journal`]'s business: what it needs is durable before the data changes
//! (activity log), the rest it keeps in memory (dirty bitmap).
//!
//! File work runs on the blocking pool, but for small writes without FUA
//! ([`INLINE_WRITE`]): a client's write whose activity-log extents are
//! already hot, and a mirrored write from the peer, go into the page cache
//! from the async thread, which saves two thread hand-overs per request.
//! With `disk-timeout`, everything goes through the blocking pool, and a
//! request the disk has not completed within it fails
//! ([`crate::deadline`]): `on-io-error` applies.
//!
//! The peer link uses [`Volume::hold_for_peer`] with [`Volume::write_held`]
//! and [`Volume::read_range`] for mirrored writes and resync, under the
//! same [`RangeLock`]: it holds the range of each change in the order the
//! peer sent them, then writes beside its receive loop.
//!
//! With `fencing: resource-and-stonith`, a Primary that lost its peer
//! suspends its I/O ([`Suspension`]): every request waits before it
//! starts, and a change or FLUSH the peer did not complete waits before
//! it is answered (it is out of sync meanwhile), until the freeze ends.
//!
//! With `on-io-error detach`, a request that fails on the backing disk makes
//! the volume Diskless, and that request and every later one is served
//! through the peer: reads are asked of it (`ReadRequest`), changes go to it
//! only and are answered after its WriteAck, FLUSH after its BarrierAck. The
//! peer records what it got this way as out of sync with this node, so that
//! a re-attached disk is resynced. Without a peer that is UpToDate a
//! Diskless volume answers EIO.

use std::fs::File;
use std::io;
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::{BufMut, Bytes};
use hapair_config::resource::OnIoError;
use log::{error, info, warn};
use nbd::{Command, Errno, Event, Export, Limits, Reply, Request, RequestId, ServerConnection};
use nix::fcntl::{FallocateFlags, fallocate};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;
use tokio::net::unix::OwnedReadHalf;
use tokio::sync::{mpsc, oneshot};

use crate::deadline::blocking_within;
use crate::helpers::{Handler, Helpers};
use crate::range_lock::{RangeGuard, RangeLock};
use crate::suspension::Suspension;

/// What must happen around every change to the data, for the metadata.
pub trait Journal: Send + Sync {
    /// Before `range` is changed: e.g. make its activity-log extent hot,
    /// durably.
    fn before_write(&self, range: Range<u64>) -> io::Result<()>;
    /// [`Self::before_write`] only if that needs no I/O and no wait (the
    /// range's extents are hot); returns whether it was done.
    fn before_write_if_hot(&self, range: Range<u64>) -> io::Result<bool>;
    /// `range` is changed without the peer getting the change: mark it out
    /// of sync (and start a new data generation at the first such write).
    fn out_of_sync(&self, range: Range<u64>);
    /// After `range` was changed (and, if mirrored, acknowledged).
    fn after_write(&self, range: Range<u64>);
}

/// The content of a change, as the peer must apply it.
#[derive(Debug, Clone, Copy)]
pub enum Payload<'a> {
    /// Block data, shared with the request it came in (not copied).
    Data(&'a Bytes),
    /// This many zero bytes (TRIM, WRITE_ZEROES).
    Zeroes(u64),
}

/// Acknowledgements to wait for: each resolves to true when the peer
/// completed its part, false (or dropped) when it did not.
pub type Acks = Vec<oneshot::Receiver<bool>>;

/// Where changes go besides the local disk: the peer link.
pub trait Mirror: Send + Sync {
    /// Sends the change at `offset` to the peer and returns the
    /// acknowledgements to wait for; `None` when no peer takes it, after
    /// `absent` ran under the lock that orders it against a connect (so the
    /// bitmap a connect sends includes the range). From a Diskless node
    /// (`diskless`), the change is marked so, and its WriteAck is awaited
    /// whatever the protocol.
    fn replicate(
        &self,
        offset: u64,
        payload: Payload<'_>,
        fua: bool,
        diskless: bool,
        absent: &mut dyn FnMut(),
    ) -> Option<Acks>;
    /// Closes the current epoch with a barrier; the receiver resolves once
    /// the peer made every earlier write durable. `None` without a peer, or
    /// when the protocol does not wait for it and this node is not
    /// `diskless`.
    fn barrier(&self, diskless: bool) -> Option<oneshot::Receiver<bool>>;
    /// A Diskless node's read: asks the peer for `range` and returns the
    /// answers to wait for, in order (`None` for a part the peer could not
    /// read); `None` when no UpToDate peer is connected.
    fn read(&self, range: Range<u64>) -> Option<PeerReads>;
    /// The local disk state changed (the disk was detached): tell the peer.
    fn disk_state_changed(&self);
    /// The I/O freeze of `fencing: resource-and-stonith`: while it is on,
    /// nothing starts, and nothing the peer did not complete is answered.
    fn suspension(&self) -> &Suspension;
}

/// The parts of a read served by the peer, in order.
pub type PeerReads = Vec<oneshot::Receiver<Option<Bytes>>>;

/// Something the daemon must hear about.
#[derive(Debug)]
pub enum Notice {
    /// The backing disk failed and `on-io-error detach` took it away.
    Detached { error: String },
    /// The peer link's state changed (connection, peer role or disk,
    /// replication).
    LinkChanged,
    /// A line for the events stream as it is (a handler call).
    Event(String),
    /// I/O was suspended or resumed (`fencing: resource-and-stonith`).
    Suspension,
}

/// One attached volume, shared by all its connections.
pub struct Volume {
    pub name: String,
    file: File,
    size: u64,
    ranges: RangeLock,
    journal: Arc<dyn Journal>,
    mirror: Arc<dyn Mirror>,
    on_io_error: OnIoError,
    /// `disk-timeout`: how long a request to the backing disk is waited
    /// for before it counts as failed; `None` waits for ever.
    disk_timeout: Option<Duration>,
    /// Set once the disk is detached: the error that made it so.
    detached: OnceLock<String>,
    /// The handlers, and the notices to the daemon.
    helpers: Arc<Helpers>,
}

/// Read buffer per connection: a whole large request header and payload
/// usually arrive in one read.
const READ_CHUNK: usize = 256 * 1024;
/// A write up to this size without FUA is written on the async thread
/// instead of on the blocking pool, into the page cache: a mirrored write
/// from the peer always, a client's write when its activity-log extents are
/// hot (no metadata I/O before it). The two thread hand-overs of the
/// blocking pool dominated such a write (scripts/bench/nbd.sh,
/// docs/BENCHMARKS.md). Not with `disk-timeout`: a write on the async
/// thread cannot be given up.
const INLINE_WRITE: usize = 64 * 1024;

/// What a [`Volume`] does when its backing disk fails or hangs.
#[derive(Debug, Clone, Copy)]
pub struct DiskPolicy {
    pub on_io_error: OnIoError,
    pub disk_timeout: Option<Duration>,
}

impl Volume {
    pub fn new(
        name: String,
        file: File,
        size: u64,
        journal: Arc<dyn Journal>,
        mirror: Arc<dyn Mirror>,
        policy: DiskPolicy,
        helpers: Arc<Helpers>,
    ) -> Volume {
        Volume {
            name,
            file,
            size,
            ranges: RangeLock::default(),
            journal,
            mirror,
            on_io_error: policy.on_io_error,
            disk_timeout: policy.disk_timeout,
            detached: OnceLock::new(),
            helpers,
        }
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    pub fn is_detached(&self) -> bool {
        self.detached.get().is_some()
    }

    /// Why the disk was detached (the I/O error, or the `disk-timeout`),
    /// once it is.
    pub fn detach_reason(&self) -> Option<&str> {
        self.detached.get().map(String::as_str)
    }

    /// Makes everything written so far durable. A detached disk is left
    /// alone: nothing of the volume is on it any more, and it may hang.
    pub fn sync(&self) -> io::Result<()> {
        if self.is_detached() {
            return Ok(());
        }
        self.file.sync_data()
    }

    /// Whether a write of `length` bytes may go into the page cache from
    /// the async thread ([`INLINE_WRITE`]).
    fn may_write_inline(&self, length: usize, fua: bool) -> bool {
        !fua && length <= INLINE_WRITE && self.disk_timeout.is_none()
    }

    /// Runs one request against the backing store, or through the peer
    /// once the disk is detached.
    async fn execute(self: Arc<Self>, command: Command) -> Result<Reply, Errno> {
        self.mirror.suspension().resumed().await;
        let range = command.range();
        let _held = match &range {
            Some(range) => Some(self.ranges.acquire(range.clone(), command.is_write()).await),
            None => None,
        };
        let command = Arc::new(command);
        if !self.is_detached() {
            let executed = match self.execute_inline(&command) {
                Some(executed) => executed,
                None => {
                    let (volume, local) = (Arc::clone(&self), Arc::clone(&command));
                    self.on_disk(move || volume.execute_blocking(&local)).await
                }
            };
            let error = match executed {
                Ok(executed) => return Ok(self.complete(executed).await),
                Err(error) => error,
            };
            if self.on_io_error != OnIoError::Detach {
                return Err(self.io_failed(&error));
            }
            self.detach(&error);
        }
        self.execute_diskless(&command).await.map_err(|error| {
            warn!(
                "{}: Diskless: a request served through the peer failed: {error}",
                self.name
            );
            Errno::Io
        })
    }

    /// Waits for what the peer still owes a request done on the local disk.
    async fn complete(&self, executed: Executed) -> Reply {
        match executed {
            Executed::Changed { range, acks } => {
                self.await_peer(range, acks).await;
                Reply::Done
            }
            Executed::Flushed => {
                let peer_flushed = match self.mirror.barrier(false) {
                    Some(ack) => ack.await.unwrap_or(false),
                    None => false,
                };
                if !peer_flushed {
                    // A lost link marks what the peer lacks; the local
                    // flush is what this answer guarantees then, once I/O
                    // is not suspended.
                    self.mirror.suspension().resumed().await;
                }
                Reply::Done
            }
            Executed::Answered(reply) => reply,
        }
    }

    /// Serves a request of a Diskless volume through the peer: the answer
    /// is the peer's, and without it the request fails.
    async fn execute_diskless(&self, command: &Command) -> io::Result<Reply> {
        let no_peer = || io::Error::other("the disk is detached and no UpToDate peer is connected");
        let change = |offset: u64, payload: Payload<'_>, fua: bool| {
            self.mirror
                .replicate(offset, payload, fua, true, &mut || {})
                .ok_or_else(no_peer)
        };
        let acks = match command {
            Command::Read { offset, length } => {
                let parts = self
                    .mirror
                    .read(*offset..*offset + u64::from(*length))
                    .ok_or_else(no_peer)?;
                let mut data = Vec::with_capacity(*length as usize);
                for part in parts {
                    let part = part.await.ok().flatten().ok_or_else(|| {
                        io::Error::other("the peer could not read the range, or the link dropped")
                    })?;
                    data.extend_from_slice(&part);
                }
                return Ok(Reply::Data(data));
            }
            Command::Write { offset, data, fua } => change(*offset, Payload::Data(data), *fua)?,
            Command::Trim {
                offset,
                length,
                fua,
            }
            | Command::WriteZeroes {
                offset,
                length,
                fua,
                ..
            } => change(*offset, Payload::Zeroes(u64::from(*length)), *fua)?,
            Command::Flush => {
                let ack = self.mirror.barrier(true).ok_or_else(no_peer)?;
                vec![ack]
            }
            Command::BlockStatus { .. } => return Ok(Reply::Done),
        };
        for ack in acks {
            if !ack.await.unwrap_or(false) {
                return Err(io::Error::other(
                    "the peer did not acknowledge the change (link lost, or its disk failed)",
                ));
            }
        }
        Ok(Reply::Done)
    }

    /// Waits for the peer's acknowledgements of a change; a change the peer
    /// did not complete is out of sync, and is answered only once I/O is not
    /// suspended. (Its activity-log entry stays until then, so a crash
    /// meanwhile resyncs it.)
    async fn await_peer(&self, range: Range<u64>, acks: Option<Acks>) {
        let complete = match acks {
            Some(acks) => {
                let mut complete = true;
                for ack in acks {
                    complete &= ack.await.unwrap_or(false);
                }
                if !complete {
                    self.journal.out_of_sync(range.clone());
                }
                complete
            }
            // No peer took it: `replicate` had it marked out of sync.
            None => false,
        };
        if !complete {
            self.mirror.suspension().resumed().await;
        }
        self.journal.after_write(range);
    }

    /// Takes the range the peer changes next, so that a change the peer
    /// sent later and overlapping it waits for this one: a caller that
    /// holds the range before it reads the next message may then write it
    /// beside its receive loop ([`Self::write_held`]).
    pub async fn hold_for_peer(
        self: &Arc<Self>,
        offset: u64,
        length: u64,
    ) -> io::Result<HeldRange> {
        let range = offset..offset.saturating_add(length);
        if self.is_detached() {
            return Err(io::Error::other("the disk is detached (Diskless)"));
        }
        if range.end > self.size {
            return Err(io::Error::other(format!(
                "the peer wrote {range:?}, beyond the end of the volume ({} bytes)",
                self.size
            )));
        }
        let guard = self.ranges.acquire(range.clone(), true).await;
        Ok(HeldRange { range, guard })
    }

    /// Writes the peer's change to the range held for it, FUA honoured,
    /// and releases the range.
    pub async fn write_held(
        self: &Arc<Self>,
        held: HeldRange,
        payload: Bytes,
        fua: bool,
    ) -> io::Result<()> {
        let offset = held.range.start;
        if payload.len() as u64 != held.range.end - offset {
            return Err(io::Error::other(format!(
                "{} bytes for the held range {:?}",
                payload.len(),
                held.range
            )));
        }
        let written = if self.may_write_inline(payload.len(), fua) {
            // Into the page cache: cheaper than the two thread hand-overs
            // of the blocking pool, which dominated a small mirrored write.
            self.file.write_all_at(&payload, offset)
        } else {
            let volume = Arc::clone(self);
            let _guard = held.guard;
            self.on_disk(move || {
                volume.file.write_all_at(&payload, offset)?;
                if fua {
                    volume.file.sync_data()?;
                }
                Ok(())
            })
            .await
        };
        if let Err(error) = &written {
            self.peer_write_failed(error);
        }
        written
    }

    /// A change from the peer (a write, or the flush of its barrier)
    /// failed on the backing disk: `on-io-error` applies as to a local
    /// request. `detach` makes this node Diskless (its State tells the
    /// peer, which stops counting on this disk); otherwise the error goes
    /// back to the peer, which marks the range out of sync, and
    /// `call-local-io-error` runs the handler.
    pub fn peer_write_failed(&self, error: &io::Error) {
        match self.on_io_error {
            OnIoError::Detach => self.detach(error),
            policy => {
                warn!(
                    "{}: I/O error on a write from the peer, passed back to it (it marks the \
                     range out of sync): {error}",
                    self.name
                );
                if policy == OnIoError::CallLocalIoError {
                    self.call_local_io_error_handler();
                }
            }
        }
    }

    /// Reads `range` for the peer (resync), ordered against local writes.
    pub async fn read_range(self: &Arc<Self>, range: Range<u64>) -> io::Result<Vec<u8>> {
        if self.is_detached() {
            return Err(io::Error::other("the disk is detached (Diskless)"));
        }
        if range.end > self.size || range.start > range.end {
            return Err(io::Error::other(format!(
                "the peer asked for {range:?}, outside the volume ({} bytes)",
                self.size
            )));
        }
        let _held = self.ranges.acquire(range.clone(), false).await;
        let volume = Arc::clone(self);
        self.on_disk(move || {
            let mut data = vec![0u8; (range.end - range.start) as usize];
            volume.file.read_exact_at(&mut data, range.start)?;
            Ok(data)
        })
        .await
    }

    /// [`Self::sync`], off the async threads.
    pub async fn sync_async(self: &Arc<Self>) -> io::Result<()> {
        let volume = Arc::clone(self);
        self.on_disk(move || volume.sync()).await
    }

    /// Runs blocking disk work on the blocking pool, given up after
    /// `disk-timeout`.
    async fn on_disk<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> io::Result<T> + Send + 'static,
    ) -> io::Result<T> {
        blocking_within(self.disk_timeout, work).await
    }

    /// A small write whose activity-log extents are hot, done on the async
    /// thread (see [`INLINE_WRITE`]); `None` for anything else, which goes
    /// through [`Self::execute_blocking`], and for everything with
    /// `disk-timeout`.
    fn execute_inline(&self, command: &Command) -> Option<io::Result<Executed>> {
        let Command::Write {
            offset,
            ref data,
            fua,
        } = *command
        else {
            return None;
        };
        if !self.may_write_inline(data.len(), fua) {
            return None;
        }
        let range = offset..offset + data.len() as u64;
        match self.journal.before_write_if_hot(range.clone()) {
            Ok(true) => {}
            Ok(false) => return None,
            Err(error) => return Some(Err(error)),
        }
        Some(
            self.mirror_and_apply(range, Payload::Data(data), false, || {
                self.file.write_all_at(data, offset)
            }),
        )
    }

    fn execute_blocking(&self, command: &Command) -> io::Result<Executed> {
        match *command {
            Command::Read { offset, length } => {
                let mut data = vec![0u8; length as usize];
                self.file.read_exact_at(&mut data, offset)?;
                Ok(Executed::Answered(Reply::Data(data)))
            }
            Command::Write {
                offset,
                ref data,
                fua,
            } => {
                let range = offset..offset + data.len() as u64;
                self.change(range, Payload::Data(data), fua, || {
                    self.file.write_all_at(data, offset)
                })
            }
            Command::Trim {
                offset,
                length,
                fua,
            } => {
                let range = offset..offset + u64::from(length);
                let payload = Payload::Zeroes(u64::from(length));
                self.change(range.clone(), payload, fua, || {
                    self.zero(range.clone(), true)
                })
            }
            Command::WriteZeroes {
                offset,
                length,
                fua,
                no_hole,
            } => {
                let range = offset..offset + u64::from(length);
                let payload = Payload::Zeroes(u64::from(length));
                self.change(range.clone(), payload, fua, || {
                    self.zero(range.clone(), !no_hole)
                })
            }
            Command::Flush => {
                self.sync()?;
                Ok(Executed::Flushed)
            }
            Command::BlockStatus { .. } => Ok(Executed::Answered(Reply::Done)),
        }
    }

    /// A change to `range`: entered in the journal, sent to the peer (or
    /// marked out of sync), applied here with FUA honoured. The caller
    /// waits for the peer and ends the journal entry.
    fn change(
        &self,
        range: Range<u64>,
        payload: Payload<'_>,
        fua: bool,
        apply: impl FnOnce() -> io::Result<()>,
    ) -> io::Result<Executed> {
        self.journal.before_write(range.clone())?;
        self.mirror_and_apply(range, payload, fua, apply)
    }

    /// The rest of a change once the journal entered it: sent to the peer
    /// (or marked out of sync), applied here with FUA honoured.
    fn mirror_and_apply(
        &self,
        range: Range<u64>,
        payload: Payload<'_>,
        fua: bool,
        apply: impl FnOnce() -> io::Result<()>,
    ) -> io::Result<Executed> {
        let acks = self
            .mirror
            .replicate(range.start, payload, fua, false, &mut || {
                self.journal.out_of_sync(range.clone())
            });
        let applied = apply().and_then(|()| if fua { self.file.sync_data() } else { Ok(()) });
        if let Err(error) = applied {
            // The activity log entry ends with the failed attempt.
            self.journal.after_write(range);
            return Err(error);
        }
        Ok(Executed::Changed { range, acks })
    }

    /// Zeroes a range: a hole where allowed and supported, else zeroes
    /// written in place (block devices, file systems without holes).
    fn zero(&self, range: Range<u64>, hole_allowed: bool) -> io::Result<()> {
        let offset = i64::try_from(range.start).map_err(io::Error::other)?;
        let length = i64::try_from(range.end - range.start).map_err(io::Error::other)?;
        let mode = if hole_allowed {
            FallocateFlags::FALLOC_FL_PUNCH_HOLE | FallocateFlags::FALLOC_FL_KEEP_SIZE
        } else {
            FallocateFlags::FALLOC_FL_ZERO_RANGE | FallocateFlags::FALLOC_FL_KEEP_SIZE
        };
        if fallocate(&self.file, mode, offset, length).is_ok() {
            return Ok(());
        }
        const CHUNK: u64 = 1 << 20;
        let zeroes = vec![0u8; CHUNK.min(range.end - range.start) as usize];
        let mut at = range.start;
        while at < range.end {
            let take = (range.end - at).min(CHUNK) as usize;
            self.file.write_all_at(&zeroes[..take], at)?;
            at += take as u64;
        }
        Ok(())
    }

    /// Applies `on-io-error` `pass_on` or `call-local-io-error` to a failed
    /// request and says what the client gets.
    fn io_failed(&self, error: &io::Error) -> Errno {
        warn!("{}: I/O error passed on to the client: {error}", self.name);
        if self.on_io_error == OnIoError::CallLocalIoError {
            self.call_local_io_error_handler();
        }
        Errno::from(error)
    }

    fn call_local_io_error_handler(&self) {
        info!("{}: calling the local-io-error handler", self.name);
        self.helpers.call(Handler::LocalIoError);
    }

    /// `on-io-error detach`: the disk is given up (once), the peer is told
    /// (its State says Diskless from now on), and the `local-io-error`
    /// handler runs. Requests go through the peer from now on.
    fn detach(&self, error: &io::Error) {
        if self.detached.set(error.to_string()).is_err() {
            return;
        }
        error!(
            "{}: I/O error on the backing disk: {error}; detached (on-io-error detach): \
             the volume is Diskless and served through the peer until the disk is attached \
             again (haadm down and up)",
            self.name
        );
        self.mirror.disk_state_changed();
        let _ = self.helpers.notices().send(Notice::Detached {
            error: error.to_string(),
        });
        self.helpers.call(Handler::LocalIoError);
    }
}

/// A range of the volume held for one change from the peer.
pub struct HeldRange {
    range: Range<u64>,
    guard: RangeGuard,
}

/// How a request went on the local disk, and what is left to wait for.
enum Executed {
    Answered(Reply),
    /// A change; the peer's acknowledgements are still to come.
    Changed {
        range: Range<u64>,
        acks: Option<Acks>,
    },
    /// Durable here; the peer's barrier is still to come.
    Flushed,
}

/// Serves one client until it leaves. `still_allowed` is asked when the
/// handshake completes, so that a demotion during the handshake wins.
pub async fn serve_connection(
    stream: UnixStream,
    export: Export,
    volume: Arc<Volume>,
    still_allowed: impl Fn() -> bool,
) {
    let name = volume.name.clone();
    let mut connection = ServerConnection::new(export, Limits::default());
    let (mut reader, mut writer) = stream.into_split();
    let (replies, mut answered) = mpsc::unbounded_channel::<(RequestId, Result<Reply, Errno>)>();
    let mut buffer = vec![0u8; READ_CHUNK];
    loop {
        while let Some(event) = connection.poll_event() {
            match event {
                Event::HandshakeDone(_) if !still_allowed() => {
                    info!(
                        "{name}: NBD client refused: the volume was demoted during its handshake"
                    );
                    return;
                }
                Event::HandshakeDone(_) => info!("{name}: NBD client connected"),
                Event::Request(Request { id, command, .. }) => {
                    let volume = Arc::clone(&volume);
                    let replies = replies.clone();
                    tokio::spawn(async move {
                        let _ = replies.send((id, volume.execute(command).await));
                    });
                }
                Event::Disconnect(reason) => info!("{name}: NBD client gone: {reason}"),
            }
        }
        while let Some(bytes) = connection.poll_transmit() {
            if let Err(error) = writer.write_all(&bytes).await {
                info!("{name}: NBD client connection lost: {error}");
                return;
            }
        }
        if connection.is_closed() {
            return;
        }
        tokio::select! {
            read = receive_some(&mut reader, &mut connection, &mut buffer), if connection.wants_input() => {
                if !matches!(read, Ok(received) if received > 0) {
                    connection.receive_eof();
                }
            }
            Some((id, result)) = answered.recv() => {
                if let Err(error) = connection.reply(id, result) {
                    error!("{name}: {error} (a bug in replicad)");
                }
            }
        }
    }
}

/// Reads what the client sends next into `connection`: the rest of a
/// WRITE's payload straight into the request's buffer (no copy), anything
/// else through `buffer`. Returns the bytes read, 0 at end of input.
/// Cancel-safe: nothing is read unless the read completes.
async fn receive_some(
    reader: &mut OwnedReadHalf,
    connection: &mut ServerConnection,
    buffer: &mut [u8],
) -> io::Result<usize> {
    if let Some((payload, missing)) = connection.payload_buffer() {
        let received = reader.read_buf(&mut payload.limit(missing)).await?;
        connection.payload_received();
        return Ok(received);
    }
    let received = reader.read(buffer).await?;
    connection.receive(&buffer[..received]);
    Ok(received)
}

/// Opens the backing file for reading and writing.
pub fn open_backing(path: &std::path::Path) -> io::Result<File> {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
}
