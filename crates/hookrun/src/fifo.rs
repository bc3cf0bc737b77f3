//! keepalived's `notify_fifo`: one line per state change,
//! `INSTANCE "VI_1" MASTER 100` or `GROUP "G1" BACKUP 0`, written to a
//! named pipe that a reader program follows.
//!
//! keepalived drops a line silently when the pipe is full. Here lines wait
//! in a queue of [`FIFO_QUEUE_LINES`] while the reader is slow or absent;
//! only past that bound is the oldest line dropped, and every drop is
//! logged with its count. A FIFO nobody reads is reported once, and the
//! writer keeps trying to open it. Each line is shorter than `PIPE_BUF`,
//! so it reaches the reader whole.

use std::collections::VecDeque;
use std::fs;
use std::io::{self, ErrorKind};
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use log::{info, warn};
use nix::errno::Errno;
use nix::sys::stat::Mode;
use tokio::io::AsyncWriteExt;
use tokio::net::unix::pipe;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio::time::{sleep, timeout};

/// Lines kept for a slow or absent reader before the oldest is dropped.
pub const FIFO_QUEUE_LINES: usize = 4096;

/// How often the writer tries to open a FIFO that nobody reads.
const REOPEN_INTERVAL: Duration = Duration::from_millis(200);

/// Names longer than this are cut, so that a line fits in `PIPE_BUF`
/// (4096 bytes) and reaches the reader in one piece.
const MAX_NAME_BYTES: usize = 1024;

/// What changed state: keepalived's first word of a notify line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotifyKind {
    Instance,
    Group,
}

impl NotifyKind {
    /// `INSTANCE` or `GROUP`.
    pub fn word(self) -> &'static str {
        match self {
            Self::Instance => "INSTANCE",
            Self::Group => "GROUP",
        }
    }
}

/// keepalived's FIFO line, newline included: `INSTANCE "VI_1" MASTER 100`.
/// Groups report priority 0, as keepalived's do.
pub fn notify_line(kind: NotifyKind, name: &str, state: &str, priority: u8) -> String {
    let mut end = name.len().min(MAX_NAME_BYTES);
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    format!("{} \"{}\" {state} {priority}\n", kind.word(), &name[..end])
}

/// A `notify_fifo` that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum FifoError {
    #[error("notify_fifo {}: cannot {action}: {source}", path.display())]
    Io {
        path: PathBuf,
        action: &'static str,
        source: io::Error,
    },
    #[error(
        "notify_fifo {}: exists and is not a FIFO (remove it, or choose another path)",
        path.display()
    )]
    NotAFifo { path: PathBuf },
}

/// The writer of one `notify_fifo`. [`send`](Self::send) queues a line;
/// a task started on the current Tokio runtime writes the queue out.
pub struct NotifyFifo {
    shared: Arc<Shared>,
    writer: JoinHandle<()>,
}

struct Shared {
    path: PathBuf,
    capacity: usize,
    queue: Mutex<Queue>,
    /// Woken on a new line and on close.
    wake: Notify,
    /// Woken when the queue becomes empty.
    drained: Notify,
}

#[derive(Default)]
struct Queue {
    lines: VecDeque<String>,
    /// The number of the line at the front of `lines`, counted from 0 over
    /// every line ever queued, so the writer can tell whether the line it
    /// wrote is still the front one (equal text does not tell).
    front_number: u64,
    /// Lines dropped since the last report of drops.
    dropped: u64,
    closing: bool,
}

impl NotifyFifo {
    /// Creates the FIFO at `path` (mode 0644, as keepalived does) unless it
    /// exists, and starts its writer, which keeps up to `capacity` lines.
    ///
    /// # Panics
    ///
    /// When called outside a Tokio runtime.
    pub fn open(path: &Path, capacity: usize) -> Result<NotifyFifo, FifoError> {
        let io_error = |action| {
            move |source| FifoError::Io {
                path: path.to_path_buf(),
                action,
                source,
            }
        };
        match fs::metadata(path) {
            Ok(meta) if meta.file_type().is_fifo() => {}
            Ok(_) => {
                return Err(FifoError::NotAFifo {
                    path: path.to_path_buf(),
                });
            }
            Err(error) if error.kind() == ErrorKind::NotFound => {
                nix::unistd::mkfifo(path, Mode::from_bits_truncate(0o644))
                    .map_err(|errno: Errno| io_error("create it")(errno.into()))?;
            }
            Err(error) => return Err(io_error("check it")(error)),
        }
        let shared = Arc::new(Shared {
            path: path.to_path_buf(),
            capacity: capacity.max(1),
            queue: Mutex::default(),
            wake: Notify::new(),
            drained: Notify::new(),
        });
        let writer = tokio::spawn(write_out(Arc::clone(&shared)));
        Ok(NotifyFifo { shared, writer })
    }

    pub fn path(&self) -> &Path {
        &self.shared.path
    }

    /// Queues `line` (see [`notify_line`]); when the queue is full, the
    /// oldest line is dropped and that is logged.
    pub fn send(&self, line: String) {
        self.shared.push(line);
    }

    /// Lets the writer deliver what is queued for at most `bound`, then
    /// stops it, which closes the FIFO: its reader gets end of file after
    /// the last line. Returns how many lines were left undelivered (logged).
    pub async fn close(self, bound: Duration) -> usize {
        let drained = async {
            loop {
                let notified = self.shared.drained.notified();
                if self.shared.lock().lines.is_empty() {
                    return;
                }
                notified.await;
            }
        };
        let _ = timeout(bound, drained).await;
        let left = {
            let mut queue = self.shared.lock();
            queue.closing = true;
            queue.lines.len()
        };
        self.shared.wake.notify_one();
        self.writer.abort();
        // Wait for the task to be dropped, and the FIFO with it.
        let _ = self.writer.await;
        if left > 0 {
            warn!(
                "notify_fifo {}: {left} lines were not read within {} ms of shutdown \
                 and are lost",
                self.shared.path.display(),
                bound.as_millis()
            );
        }
        left
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        // Every update is a push, a pop or a counter change: a panicking
        // holder leaves the queue consistent.
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues `line`, dropping the oldest when full; wakes the writer.
    fn push(&self, line: String) {
        let mut queue = self.lock();
        if queue.lines.len() >= self.capacity {
            queue.lines.pop_front();
            queue.front_number += 1;
            queue.dropped += 1;
            if queue.dropped == 1 {
                warn!(
                    "notify_fifo {}: {} lines wait for the reader; dropping the oldest \
                     (the count follows when the reader catches up)",
                    self.path.display(),
                    self.capacity
                );
            }
        }
        queue.lines.push_back(line);
        drop(queue);
        self.wake.notify_one();
    }

    /// The oldest queued line and its number, waiting for one; `None` once
    /// closing.
    async fn next_line(&self) -> Option<(u64, String)> {
        loop {
            {
                let queue = self.lock();
                if queue.closing {
                    return None;
                }
                if let Some(line) = queue.lines.front() {
                    return Some((queue.front_number, line.clone()));
                }
            }
            self.drained.notify_waiters();
            // notify_one stores a permit when nobody waits: no wake-up is lost
            // between the check above and this wait.
            self.wake.notified().await;
        }
    }

    /// Removes line `number`, just written, unless an overflow already
    /// dropped it; returns the count of lines dropped since the last call.
    fn written(&self, number: u64) -> u64 {
        let mut queue = self.lock();
        if queue.front_number == number && queue.lines.pop_front().is_some() {
            queue.front_number += 1;
        }
        if queue.lines.is_empty() {
            self.drained.notify_waiters();
        }
        std::mem::take(&mut queue.dropped)
    }
}

/// The writer task: opens the FIFO when a reader has it open, and writes
/// the queue out in order.
async fn write_out(shared: Arc<Shared>) {
    let path = shared.path.display().to_string();
    let mut sender: Option<pipe::Sender> = None;
    // Whether "no reader" has been logged since the FIFO was last open.
    let mut reported_absent = false;
    while let Some((number, line)) = shared.next_line().await {
        let Some(open) = sender.as_mut() else {
            match pipe::OpenOptions::new().open_sender(&shared.path) {
                Ok(opened) => {
                    if reported_absent {
                        info!("notify_fifo {path}: a reader opened it; sending the queued lines");
                    }
                    reported_absent = false;
                    sender = Some(opened);
                }
                Err(error) => {
                    if !reported_absent {
                        if error.raw_os_error() == Some(Errno::ENXIO as i32) {
                            warn!(
                                "notify_fifo {path}: no reader has it open; lines are kept \
                                 (up to {}) until one does",
                                shared.capacity
                            );
                        } else {
                            warn!(
                                "notify_fifo {path}: cannot open it: {error}; lines are kept \
                                 (up to {}) and opening is retried",
                                shared.capacity
                            );
                        }
                        reported_absent = true;
                    }
                    sleep(REOPEN_INTERVAL).await;
                }
            }
            continue;
        };
        match open.write_all(line.as_bytes()).await {
            Ok(()) => {
                let dropped = shared.written(number);
                if dropped > 0 {
                    warn!(
                        "notify_fifo {path}: {dropped} lines were dropped: the reader fell \
                         more than {} lines behind",
                        shared.capacity
                    );
                }
            }
            Err(error) => {
                // EPIPE: the reader closed it. The line is still queued.
                warn!("notify_fifo {path}: the reader went away ({error}); waiting for another");
                reported_absent = true;
                sender = None;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader};
    use std::thread;

    #[test]
    fn lines_have_keepalived_format() {
        assert_eq!(
            notify_line(NotifyKind::Instance, "VI_1", "MASTER", 100),
            "INSTANCE \"VI_1\" MASTER 100\n"
        );
        assert_eq!(
            notify_line(NotifyKind::Group, "G1", "BACKUP", 0),
            "GROUP \"G1\" BACKUP 0\n"
        );
        let long = "é".repeat(2000);
        assert!(notify_line(NotifyKind::Instance, &long, "FAULT", 0).len() < 4096);
    }

    /// Reads `count` lines from the FIFO at `path`, pausing now and then
    /// as a slow reader does.
    fn slow_reader(path: PathBuf, count: usize) -> thread::JoinHandle<Vec<String>> {
        thread::spawn(move || {
            let reader = BufReader::new(fs::File::open(&path).unwrap());
            let mut lines = Vec::new();
            for line in reader.lines() {
                lines.push(line.unwrap());
                if lines.len() % 500 == 0 {
                    thread::sleep(Duration::from_millis(50));
                }
                if lines.len() == count {
                    break;
                }
            }
            lines
        })
    }

    /// Closes `fifo` within `bound`, asserting every line was delivered, and
    /// returns what `reader` read.
    async fn close_and_read(
        fifo: NotifyFifo,
        reader: thread::JoinHandle<Vec<String>>,
        bound: Duration,
    ) -> Vec<String> {
        assert_eq!(fifo.close(bound).await, 0, "lines left undelivered");
        tokio::task::spawn_blocking(move || reader.join().unwrap())
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn a_slow_reader_gets_every_line_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify.fifo");
        let fifo = NotifyFifo::open(&path, FIFO_QUEUE_LINES).unwrap();
        // More than the pipe's 64 KiB buffer: the writer must wait for the reader.
        let count = 4000;
        let reader = slow_reader(path.clone(), count);
        for n in 0..count {
            let name = format!("VI_{n}");
            fifo.send(notify_line(NotifyKind::Instance, &name, "MASTER", 100));
        }
        let lines = close_and_read(fifo, reader, Duration::from_secs(30)).await;
        let expected: Vec<String> = (0..count)
            .map(|n| format!("INSTANCE \"VI_{n}\" MASTER 100"))
            .collect();
        assert_eq!(lines, expected);
    }

    #[tokio::test]
    async fn lines_wait_for_a_reader_that_comes_late() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify.fifo");
        let fifo = NotifyFifo::open(&path, 8).unwrap();
        // No reader yet: the writer fails to open it and keeps the lines.
        for n in 0..3 {
            fifo.send(notify_line(NotifyKind::Group, "G1", "BACKUP", n));
        }
        sleep(REOPEN_INTERVAL * 2).await;
        let reader = slow_reader(path.clone(), 3);
        let lines = close_and_read(fifo, reader, Duration::from_secs(10)).await;
        assert_eq!(
            lines,
            [
                "GROUP \"G1\" BACKUP 0",
                "GROUP \"G1\" BACKUP 1",
                "GROUP \"G1\" BACKUP 2"
            ]
        );
    }

    #[tokio::test]
    async fn overflow_drops_the_oldest_and_keeps_the_newest() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify.fifo");
        let fifo = NotifyFifo::open(&path, 4).unwrap();
        for n in 0..10 {
            fifo.send(notify_line(NotifyKind::Instance, "VI_1", "BACKUP", n));
        }
        let reader = slow_reader(path.clone(), 4);
        let lines = close_and_read(fifo, reader, Duration::from_secs(10)).await;
        let priorities: Vec<&str> = lines
            .iter()
            .map(|line| line.rsplit(' ').next().unwrap())
            .collect();
        assert_eq!(priorities, ["6", "7", "8", "9"]);
    }

    #[tokio::test]
    async fn a_line_dropped_while_being_written_takes_no_equal_line_with_it() {
        let shared = Shared {
            path: PathBuf::from("/nonexistent/notify.fifo"),
            capacity: 2,
            queue: Mutex::default(),
            wake: Notify::new(),
            drained: Notify::new(),
        };
        let same = notify_line(NotifyKind::Instance, "VI_1", "MASTER", 100);
        shared.push(same.clone());
        shared.push(same.clone());
        let (number, line) = shared.next_line().await.unwrap();
        assert_eq!(line, same);
        // While the writer writes it, an overflow drops it.
        shared.push(same.clone());
        assert_eq!(shared.written(number), 1, "one line dropped");
        // The two equal lines queued after it are both still to be written.
        assert_eq!(shared.lock().lines.len(), 2);
    }

    #[tokio::test]
    async fn a_path_that_is_not_a_fifo_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("plain");
        fs::write(&path, "").unwrap();
        let error = NotifyFifo::open(&path, 4).err().unwrap().to_string();
        assert!(error.contains("is not a FIFO"), "{error}");
    }
}
