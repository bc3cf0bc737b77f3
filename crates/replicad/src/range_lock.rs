//! Ordering of overlapping requests: a write waits for every request in
//! flight on an overlapping range, a read waits only for overlapping
//! writes. Requests that do not overlap never wait for each other, so a
//! deep queue of disjoint I/O runs in parallel.

use std::ops::Range;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::Notify;

#[derive(Default)]
struct Held {
    next_id: u64,
    ranges: Vec<(u64, Range<u64>, bool)>,
}

/// The byte ranges in flight on one volume.
#[derive(Clone, Default)]
pub struct RangeLock {
    held: Arc<Mutex<Held>>,
    released: Arc<Notify>,
}

/// Holds a range until dropped.
pub struct RangeGuard {
    lock: RangeLock,
    id: u64,
}

fn overlaps(a: &Range<u64>, b: &Range<u64>) -> bool {
    a.start < b.end && b.start < a.end
}

impl RangeLock {
    /// Waits until `range` may be read (`write` false) or written.
    pub async fn acquire(&self, range: Range<u64>, write: bool) -> RangeGuard {
        loop {
            let released = self.released.notified();
            tokio::pin!(released);
            released.as_mut().enable();
            {
                let mut held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
                let conflict = held.ranges.iter().any(|(_, other, other_writes)| {
                    (write || *other_writes) && overlaps(&range, other)
                });
                if !conflict {
                    let id = held.next_id;
                    held.next_id += 1;
                    held.ranges.push((id, range, write));
                    return RangeGuard {
                        lock: self.clone(),
                        id,
                    };
                }
            }
            released.await;
        }
    }
}

impl Drop for RangeGuard {
    fn drop(&mut self) {
        let mut held = self
            .lock
            .held
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        held.ranges.retain(|(id, _, _)| *id != self.id);
        drop(held);
        self.lock.released.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    async fn blocks(lock: &RangeLock, range: Range<u64>, write: bool) -> bool {
        tokio::time::timeout(Duration::from_millis(50), lock.acquire(range, write))
            .await
            .is_err()
    }

    #[tokio::test(flavor = "current_thread")]
    async fn writes_exclude_overlaps_and_reads_share() {
        let lock = RangeLock::default();
        let write = lock.acquire(0..4096, true).await;
        assert!(
            blocks(&lock, 4095..8192, false).await,
            "read overlapping a write waits"
        );
        assert!(
            blocks(&lock, 100..200, true).await,
            "write overlapping a write waits"
        );
        assert!(
            !blocks(&lock, 4096..8192, true).await,
            "adjacent ranges do not overlap"
        );
        drop(write);
        let read = lock.acquire(0..4096, false).await;
        assert!(!blocks(&lock, 0..4096, false).await, "reads share");
        assert!(blocks(&lock, 0..1, true).await, "a write waits for a read");
        drop(read);
        assert!(!blocks(&lock, 0..1, true).await);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_waiter_proceeds_when_the_range_is_released() {
        let lock = RangeLock::default();
        let first = lock.acquire(0..10, true).await;
        let waiter = {
            let lock = lock.clone();
            tokio::spawn(async move { lock.acquire(5..15, true).await.id })
        };
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        drop(first);
        assert_eq!(
            tokio::time::timeout(Duration::from_secs(5), waiter)
                .await
                .unwrap()
                .unwrap(),
            1
        );
    }
}
