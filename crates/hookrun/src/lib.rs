//! Runs hook scripts for state-change events (keepalived's `notify_*` scripts,
//! done properly).
//!
//! keepalived forks every notify script and forgets it: scripts run in
//! parallel, finish in any order and never time out. Here every job goes to a
//! named queue (one per VRRP instance):
//!
//! - jobs of one queue run one at a time, in submission order;
//! - different queues run independently of each other;
//! - each job has a timeout, after which its whole process group gets
//!   SIGTERM and, [`KILL_GRACE`] later (or as soon as the leader is gone),
//!   SIGKILL;
//! - a job is never dropped and never run twice; a growing backlog is logged.
//!
//! Every finished run can be recorded in a [`Journal`] (JSON lines);
//! script security ([`check_script`]) refuses to run as root a program
//! others can change; [`NotifyFifo`] writes keepalived's `notify_fifo`
//! lines without losing them silently; [`Service`] keeps a long-running
//! helper (a FIFO reader) going.
//!
//! This file holds the queues; `job.rs` runs one job (security check,
//! process group, timeout, outcome, journal entry) and `output.rs` logs its
//! output.

mod fifo;
mod job;
mod journal;
mod output;
mod security;
mod service;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use log::{debug, error, warn};
use tokio::sync::{mpsc, oneshot, watch};

pub use fifo::{FIFO_QUEUE_LINES, FifoError, NotifyFifo, NotifyKind, notify_line};
pub use job::{Job, KILL_GRACE, OUTPUT_DRAIN_LIMIT, Outcome, RunSettings};
pub use journal::{
    CorruptLine, DEFAULT_JOURNAL_MAX_BYTES, JOURNAL_FILE_NAME, Journal, JournalContents,
    JournalEntry, JournalError, JournalOutcome, format_time, read_journal, rotated_path,
};
pub use output::{MAX_LINE_BYTES, MAX_LOGGED_LINES};
pub use security::{RunAs, check_script};
pub use service::Service;

/// A warning is logged when a job is submitted behind this many unfinished
/// jobs of the same queue: hooks are then slower than the events arrive.
pub const BACKLOG_WARNING: u64 = 4;

/// Runs [`Job`]s on named queues. Cheap to clone; clones share the queues.
///
/// [`submit`](Self::submit) spawns the queue's worker on the current Tokio
/// runtime (a current-thread runtime is fine), so it must be called from
/// inside one.
#[derive(Clone, Default)]
pub struct HookRunner {
    queues: Arc<Mutex<HashMap<String, Queue>>>,
    settings: Arc<RunSettings>,
}

/// The submitting side of one queue.
struct Queue {
    jobs: mpsc::UnboundedSender<QueuedJob>,
    /// Jobs ever submitted to this queue.
    submitted: u64,
    /// Jobs of this queue that have finished (outcome sent), kept by the worker.
    finished: watch::Receiver<u64>,
}

struct QueuedJob {
    job: Job,
    reply: oneshot::Sender<Outcome>,
}

impl HookRunner {
    /// A runner with the default [`RunSettings`]: no journal, script
    /// security on.
    pub fn new() -> Self {
        Self::default()
    }

    /// A runner whose jobs run with `settings`.
    pub fn with_settings(settings: RunSettings) -> Self {
        Self {
            queues: Arc::default(),
            settings: Arc::new(settings),
        }
    }

    pub fn settings(&self) -> &RunSettings {
        &self.settings
    }

    /// Queues `job` behind the earlier jobs of `queue` (created on first use)
    /// and returns a receiver for its outcome. The receiver may be dropped:
    /// the job runs anyway.
    ///
    /// # Panics
    ///
    /// When called outside a Tokio runtime.
    pub fn submit(&self, queue: &str, job: Job) -> oneshot::Receiver<Outcome> {
        let (reply, outcome) = oneshot::channel();
        let mut queues = self.lock_queues();
        let target = queues
            .entry(queue.to_owned())
            .or_insert_with(|| Queue::start(queue, Arc::clone(&self.settings)));
        let ahead = target.submitted - *target.finished.borrow();
        if ahead >= BACKLOG_WARNING {
            warn!(
                "hook queue {queue}: {} waits behind {ahead} unfinished jobs; \
                 hooks run slower than events arrive (check the hook timeouts \
                 and what the scripts wait for)",
                job.name
            );
        } else {
            debug!("hook queue {queue}: queued {} ({ahead} ahead)", job.name);
        }
        target.submitted += 1;
        if let Err(mpsc::error::SendError(lost)) = target.jobs.send(QueuedJob { job, reply }) {
            // The worker only stops when every sender is gone, which cannot be
            // while we hold one; reaching this means the worker panicked.
            error!(
                "hook queue {queue}: its worker has stopped; {} was not run \
                 (this is a bug in hookrun, please report it)",
                lost.job.name
            );
        }
        outcome
    }

    /// Returns a future that resolves when every job submitted before this
    /// call, on every queue, has finished. Jobs submitted later are not
    /// waited for. Used at shutdown: submit the stop hooks, wait, exit.
    pub fn idle(&self) -> impl Future<Output = ()> + Send + 'static {
        let pending: Vec<(u64, watch::Receiver<u64>)> = self
            .lock_queues()
            .values()
            .map(|queue| (queue.submitted, queue.finished.clone()))
            .collect();
        async move {
            for (submitted, mut finished) in pending {
                // An error means the worker is gone, so nothing is left to wait for.
                let _ = finished.wait_for(|&done| done >= submitted).await;
            }
        }
    }

    fn lock_queues(&self) -> MutexGuard<'_, HashMap<String, Queue>> {
        // The map stays consistent even if a holder panicked: every update is
        // a single insert or counter increment.
        self.queues.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Queue {
    /// Creates the queue and spawns its worker on the current runtime.
    fn start(name: &str, settings: Arc<RunSettings>) -> Self {
        let (jobs, pending) = mpsc::unbounded_channel();
        let (finished_tx, finished) = watch::channel(0);
        tokio::spawn(work_through(
            name.to_owned(),
            settings,
            pending,
            finished_tx,
        ));
        Self {
            jobs,
            submitted: 0,
            finished,
        }
    }
}

/// Runs the queue's jobs one after the other until every [`HookRunner`]
/// clone is dropped and the queue is empty.
async fn work_through(
    queue: String,
    settings: Arc<RunSettings>,
    mut pending: mpsc::UnboundedReceiver<QueuedJob>,
    finished: watch::Sender<u64>,
) {
    while let Some(QueuedJob { job, reply }) = pending.recv().await {
        let outcome = job::run(&queue, &job, &settings, std::future::pending()).await;
        // The submitter may have dropped its receiver; the job still counts.
        let _ = reply.send(outcome);
        finished.send_modify(|done| *done += 1);
    }
    debug!("hook queue {queue}: closed");
}
