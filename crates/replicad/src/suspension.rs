//! The I/O freeze of `fencing: resource-and-stonith` (DRBD's `susp_fen`):
//! a Primary that loses its peer suspends all I/O of the volume before the
//! writes in flight are completed without the peer, and calls `fence-peer`.
//! While suspended, new requests wait before they start, and a change (or
//! FLUSH) the peer did not complete waits before it is answered; both go
//! on once the freeze ends: the handler said the peer is fenced, the peer
//! connected again, or the operator ran `haadm resume-io`.
//!
//! [`Suspension`] is only the gate: a flag that waiters can await. Who
//! suspends and resumes is the peer link's business (`crate::peer`), who
//! waits the write path's (`crate::serve`).

use tokio::sync::watch;

/// One freeze, so that a late handler's verdict resumes only the freeze it
/// was called for, not a later one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Freeze(u64);

#[derive(Debug, Clone, Copy, Default)]
struct State {
    /// The freeze now on, if any.
    current: Option<Freeze>,
    /// Freezes so far, to number the next one.
    count: u64,
}

/// The gate every request of a volume passes; see the module documentation.
#[derive(Debug, Default)]
pub struct Suspension {
    state: watch::Sender<State>,
}

impl Suspension {
    pub fn is_suspended(&self) -> bool {
        self.state.borrow().current.is_some()
    }

    /// Suspends I/O (again, if it was already): the freeze returned is the
    /// one now on.
    pub fn suspend(&self) -> Freeze {
        let mut freeze = Freeze(0);
        self.state.send_modify(|state| {
            state.count += 1;
            freeze = Freeze(state.count);
            state.current = Some(freeze);
        });
        freeze
    }

    /// True while `freeze` is the freeze on.
    pub fn holds(&self, freeze: Freeze) -> bool {
        self.state.borrow().current == Some(freeze)
    }

    /// Ends whatever freeze is on; true if one was.
    pub fn resume(&self) -> bool {
        self.state
            .send_if_modified(|state| state.current.take().is_some())
    }

    /// Ends `freeze` if it is still the one on; true if it was.
    pub fn resume_from(&self, freeze: Freeze) -> bool {
        self.state.send_if_modified(|state| {
            let ends = state.current == Some(freeze);
            if ends {
                state.current = None;
            }
            ends
        })
    }

    /// Returns once I/O is not suspended (at once when it is not).
    pub async fn resumed(&self) {
        if !self.is_suspended() {
            return;
        }
        let mut watching = self.state.subscribe();
        // The sender is `self`: it outlives the wait, so this cannot fail.
        let _ = watching.wait_for(|state| state.current.is_none()).await;
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;

    /// Long enough for a spawned waiter to get to its wait.
    const SETTLE: Duration = Duration::from_millis(50);

    fn waiter(suspension: &Arc<Suspension>) -> tokio::task::JoinHandle<()> {
        let suspension = Arc::clone(suspension);
        tokio::spawn(async move { suspension.resumed().await })
    }

    #[tokio::test]
    async fn nothing_waits_while_not_suspended() {
        let suspension = Suspension::default();
        assert!(!suspension.is_suspended());
        suspension.resumed().await;
        assert!(!suspension.resume(), "nothing to resume");
    }

    #[tokio::test]
    async fn a_waiter_goes_on_only_when_resumed() {
        let suspension = Arc::new(Suspension::default());
        suspension.suspend();
        assert!(suspension.is_suspended());
        let waiting = waiter(&suspension);
        tokio::time::sleep(SETTLE).await;
        assert!(!waiting.is_finished(), "held while suspended");
        assert!(suspension.resume());
        tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .expect("resumed within the bound")
            .expect("the waiter ran");
        assert!(!suspension.is_suspended());
    }

    #[tokio::test]
    async fn a_stale_freeze_does_not_end_a_later_one() {
        let suspension = Arc::new(Suspension::default());
        let first = suspension.suspend();
        assert!(suspension.resume(), "e.g. the peer came back");
        let second = suspension.suspend();
        assert!(!suspension.holds(first));
        assert!(suspension.holds(second));
        let waiting = waiter(&suspension);
        assert!(
            !suspension.resume_from(first),
            "the first freeze's handler answers late"
        );
        tokio::time::sleep(SETTLE).await;
        assert!(!waiting.is_finished(), "the second freeze still holds");
        assert!(suspension.resume_from(second));
        tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .expect("resumed within the bound")
            .expect("the waiter ran");
    }
}
