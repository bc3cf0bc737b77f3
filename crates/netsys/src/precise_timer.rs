//! A timer with nanosecond resolution for the daemons' event loops.
//!
//! tokio's timers tick in whole milliseconds and round a deadline up to the
//! next tick, so a VRRP backup woken by one takes over 1–3 ms after its
//! Master_Down_Interval instead of at it. A `timerfd` on CLOCK_MONOTONIC
//! (the clock of `std::time::Instant` on Linux) wakes the reactor when the
//! deadline passes, to the resolution of the kernel's high-resolution timers.

use std::io;
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::time::Instant;

use nix::sys::time::TimeSpec;
use nix::sys::timerfd::{ClockId, Expiration, TimerFd, TimerFlags, TimerSetTimeFlags};
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

/// `TimerFd` is `AsFd`; the reactor wants `AsRawFd`.
struct RawTimer(TimerFd);

impl AsRawFd for RawTimer {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_fd().as_raw_fd()
    }
}

/// A one-shot timer that can be re-armed; create it inside a tokio runtime
/// with I/O enabled.
pub struct PreciseTimer {
    fd: AsyncFd<RawTimer>,
}

impl PreciseTimer {
    pub fn new() -> io::Result<PreciseTimer> {
        let timer = TimerFd::new(
            ClockId::CLOCK_MONOTONIC,
            TimerFlags::TFD_NONBLOCK | TimerFlags::TFD_CLOEXEC,
        )
        .map_err(|errno| {
            io::Error::new(
                io::Error::from(errno).kind(),
                format!("cannot create a timerfd: {errno}"),
            )
        })?;
        // SAFETY: `AsyncFd::register_with_interest` needs a descriptor that is
        // open and stays the same for the AsyncFd's life. `RawTimer` owns the
        // TimerFd, whose descriptor is open from creation until it is
        // dropped, and `as_raw_fd` always returns that descriptor; the AsyncFd
        // owns the RawTimer by value and never hands out `&mut` access here.
        let registered =
            unsafe { AsyncFd::register_with_interest(RawTimer(timer), Interest::READABLE) };
        let fd = registered.map_err(|err| {
            let (_timer, cause) = err.into_parts();
            io::Error::new(
                cause.kind(),
                format!("cannot register a timerfd with tokio's reactor: {cause}"),
            )
        })?;
        Ok(PreciseTimer { fd })
    }

    /// Waits until `deadline` has passed.
    pub async fn sleep_until(&mut self, deadline: Instant) -> io::Result<()> {
        let wait = deadline.saturating_duration_since(Instant::now());
        if wait.is_zero() {
            return Ok(());
        }
        let timer = &self.fd.get_ref().0;
        timer
            .set(
                Expiration::OneShot(TimeSpec::from_duration(wait)),
                TimerSetTimeFlags::empty(),
            )
            .map_err(io::Error::from)?;
        loop {
            let mut guard = self.fd.readable().await?;
            // A non-blocking read of the expiry count: EAGAIN until it fired.
            match guard.try_io(|fd| fd.get_ref().0.wait().map_err(io::Error::from)) {
                Ok(result) => return result,
                Err(_would_block) => continue,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test(flavor = "current_thread")]
    async fn wakes_after_the_deadline_and_can_be_rearmed() {
        let mut timer = PreciseTimer::new().unwrap();
        for wait in [Duration::from_millis(30), Duration::from_micros(2500)] {
            let deadline = Instant::now() + wait;
            timer.sleep_until(deadline).await.unwrap();
            let now = Instant::now();
            assert!(now >= deadline, "woke {:?} early", deadline - now);
        }
        // A deadline in the past returns at once.
        timer
            .sleep_until(Instant::now() - Duration::from_secs(1))
            .await
            .unwrap();
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_dropped_wait_leaves_the_timer_usable() {
        let mut timer = PreciseTimer::new().unwrap();
        let far = Instant::now() + Duration::from_secs(3600);
        assert!(
            tokio::time::timeout(Duration::from_millis(20), timer.sleep_until(far))
                .await
                .is_err()
        );
        let soon = Instant::now() + Duration::from_millis(5);
        tokio::time::timeout(Duration::from_secs(5), timer.sleep_until(soon))
            .await
            .unwrap()
            .unwrap();
        assert!(Instant::now() >= soon);
    }
}
