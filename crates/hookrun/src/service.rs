//! A long-running helper program, such as keepalived's
//! `notify_fifo_script`: started with the same guarantees as a hook (script
//! security, its own process group, output logged, journalled), started
//! again a while after it exits, and at shutdown given time to finish by
//! itself (a FIFO reader reads to end of file) before it is stopped
//! (SIGTERM, then SIGKILL to its group).

use std::time::Duration;

use log::warn;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::{sleep, timeout};

use crate::job::{self, Job, RunSettings};

/// How long after an exit the helper is started again.
pub const RESTART_DELAY: Duration = Duration::from_secs(1);

/// Where the helper is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Started again whenever it exits.
    Running,
    /// Left to end by itself; not started again.
    Finishing,
    /// Its process group is terminated.
    Stopping,
}

/// A running helper; see the module docs.
pub struct Service {
    phase: watch::Sender<Phase>,
    task: JoinHandle<()>,
}

impl Service {
    /// Starts `job` on queue `queue` and keeps it running. Its timeout is
    /// ignored: it runs until [`stop`](Self::stop).
    ///
    /// # Panics
    ///
    /// When called outside a Tokio runtime.
    pub fn start(queue: &str, job: Job, settings: RunSettings) -> Service {
        let (phase, watching) = watch::channel(Phase::Running);
        let queue = queue.to_owned();
        let task = tokio::spawn(async move {
            let job = Job {
                timeout: Duration::MAX,
                ..job
            };
            loop {
                let mut until_stopping = watching.clone();
                let stopping = async move {
                    let _ = until_stopping
                        .wait_for(|&phase| phase == Phase::Stopping)
                        .await;
                };
                let outcome = job::run(&queue, &job, &settings, stopping).await;
                if *watching.borrow() != Phase::Running {
                    return;
                }
                warn!(
                    "{}: ended ({outcome}); starting it again in {} ms",
                    job.name,
                    RESTART_DELAY.as_millis()
                );
                let mut until_finishing = watching.clone();
                tokio::select! {
                    () = sleep(RESTART_DELAY) => {}
                    _ = until_finishing.wait_for(|&phase| phase != Phase::Running) => return,
                }
            }
        });
        Service { phase, task }
    }

    /// Lets the helper end by itself for up to `grace`, then stops it
    /// (SIGTERM to its group, SIGKILL after [`crate::KILL_GRACE`]); returns
    /// once it is reaped.
    pub async fn stop(mut self, grace: Duration) {
        let _ = self.phase.send(Phase::Finishing);
        if timeout(grace, &mut self.task).await.is_ok() {
            return;
        }
        let _ = self.phase.send(Phase::Stopping);
        // The task only ends by returning; it does not panic.
        let _ = self.task.await;
    }
}
