//! Serving a volume over NBD: one task per client connection drives the
//! `nbd` crate's protocol core, and each request runs as its own task, so
//! a deep queue of disjoint requests proceeds in parallel. Overlapping
//! requests are ordered by the [`RangeLock`].
//!
//! The write path is the durability contract with the peer missing: a
//! WRITE is answered once applied to the backing store; FLUSH and FUA once
//! `fdatasync` returned. The metadata side (activity log, dirty bitmap) is
//! the [`Journal`]'s business: what it needs is durable before the data
//! changes (activity log), the rest it keeps in memory (dirty bitmap).

use std::fs::File;
use std::io;
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use hapair_config::resource::OnIoError;
use log::{error, info, warn};
use nbd::{Command, Errno, Event, Export, Limits, Reply, Request, RequestId, ServerConnection};
use nix::fcntl::{FallocateFlags, fallocate};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;
use tokio::sync::mpsc;

use crate::range_lock::RangeLock;

/// What must happen around every change to the data, for the metadata.
pub trait Journal: Send + Sync {
    /// Before `range` is changed: e.g. make its activity-log extent hot,
    /// durably.
    fn before_write(&self, range: Range<u64>) -> io::Result<()>;
    /// After `range` was changed.
    fn after_write(&self, range: Range<u64>);
}

/// Something the daemon must hear about.
#[derive(Debug)]
pub enum Notice {
    /// The backing disk failed and `on-io-error detach` took it away.
    Detached { error: String },
}

/// One attached volume, shared by all its connections.
pub struct Volume {
    pub name: String,
    file: File,
    size: u64,
    ranges: RangeLock,
    journal: Arc<dyn Journal>,
    on_io_error: OnIoError,
    detached: AtomicBool,
    notices: mpsc::UnboundedSender<Notice>,
}

/// Read buffer per connection: a whole large request header and payload
/// usually arrive in one read.
const READ_CHUNK: usize = 256 * 1024;

impl Volume {
    pub fn new(
        name: String,
        file: File,
        size: u64,
        journal: Arc<dyn Journal>,
        on_io_error: OnIoError,
        notices: mpsc::UnboundedSender<Notice>,
    ) -> Volume {
        Volume {
            name,
            file,
            size,
            ranges: RangeLock::default(),
            journal,
            on_io_error,
            detached: AtomicBool::new(false),
            notices,
        }
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    pub fn is_detached(&self) -> bool {
        self.detached.load(Ordering::SeqCst)
    }

    /// Makes everything written so far durable.
    pub fn sync(&self) -> io::Result<()> {
        self.file.sync_data()
    }

    /// Runs one request against the backing store.
    async fn execute(self: Arc<Self>, command: Command) -> Result<Reply, Errno> {
        if self.is_detached() {
            return Err(Errno::Io);
        }
        let range = command.range();
        let _held = match &range {
            Some(range) => Some(self.ranges.acquire(range.clone(), command.is_write()).await),
            None => None,
        };
        let volume = Arc::clone(&self);
        let result = tokio::task::spawn_blocking(move || volume.execute_blocking(command))
            .await
            .unwrap_or_else(|join| Err(io::Error::other(join.to_string())));
        result.map_err(|error| self.io_failed(&error))
    }

    fn execute_blocking(&self, command: Command) -> io::Result<Reply> {
        match command {
            Command::Read { offset, length } => {
                let mut data = vec![0u8; length as usize];
                self.file.read_exact_at(&mut data, offset)?;
                Ok(Reply::Data(data))
            }
            Command::Write { offset, data, fua } => {
                let range = offset..offset + data.len() as u64;
                self.change(range, fua, || self.file.write_all_at(&data, offset))
            }
            Command::Trim {
                offset,
                length,
                fua,
            } => {
                let range = offset..offset + u64::from(length);
                self.change(range.clone(), fua, || self.zero(range.clone(), true))
            }
            Command::WriteZeroes {
                offset,
                length,
                fua,
                no_hole,
            } => {
                let range = offset..offset + u64::from(length);
                self.change(range.clone(), fua, || self.zero(range.clone(), !no_hole))
            }
            Command::Flush => {
                self.sync()?;
                Ok(Reply::Done)
            }
            Command::BlockStatus { .. } => Ok(Reply::Done),
        }
    }

    /// A change to `range`, with the journal around it and FUA honoured.
    fn change(
        &self,
        range: Range<u64>,
        fua: bool,
        apply: impl FnOnce() -> io::Result<()>,
    ) -> io::Result<Reply> {
        self.journal.before_write(range.clone())?;
        apply()?;
        if fua {
            self.file.sync_data()?;
        }
        self.journal.after_write(range);
        Ok(Reply::Done)
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

    /// Applies `on-io-error` to a failed request and says what the client gets.
    fn io_failed(&self, error: &io::Error) -> Errno {
        match self.on_io_error {
            OnIoError::PassOn | OnIoError::CallLocalIoError => {
                warn!("{}: I/O error passed on to the client: {error}", self.name);
            }
            OnIoError::Detach => {
                if !self.detached.swap(true, Ordering::SeqCst) {
                    error!(
                        "{}: I/O error on the backing disk: {error}; detached (on-io-error detach): \
                         the volume is Diskless and every request fails until it is brought down and up again",
                        self.name
                    );
                    let _ = self.notices.send(Notice::Detached {
                        error: error.to_string(),
                    });
                }
            }
        }
        Errno::from(error)
    }
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
            read = reader.read(&mut buffer), if connection.wants_input() => match read {
                Ok(0) | Err(_) => connection.receive_eof(),
                Ok(n) => connection.receive(&buffer[..n]),
            },
            Some((id, result)) = answered.recv() => {
                if let Err(error) = connection.reply(id, result) {
                    error!("{name}: {error} (a bug in replicad)");
                }
            }
        }
    }
}

/// Opens the backing file for reading and writing.
pub fn open_backing(path: &std::path::Path) -> io::Result<File> {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
}
