//! Resync rate control on the sync target: a token bucket on the bytes it
//! asks the source for.
//!
//! As with DRBD's dynamic resync controller, resync traffic gives way to
//! the application: while mirrored writes arrive (one within the last
//! [`APPLICATION_QUIET`]), the resync runs at `resync-rate`; on an
//! otherwise idle link it may go up to `c-max-rate` (no limit when that is
//! unset). A resync never exceeds `c-max-rate`.

use std::time::{Duration, Instant};

use hapair_config::resource::DiskOptions;

/// How long after the last application write the resync stays at
/// `resync-rate`.
pub const APPLICATION_QUIET: Duration = Duration::from_secs(1);
/// The bucket holds this much of a second's worth of bytes: short bursts,
/// an even flow.
const BURST_FRACTION: u64 = 10;
/// Resync requests are whole 4 KiB blocks.
const BLOCK: u64 = 4096;

pub struct ResyncPacer {
    resync_rate: u64,
    ceiling: Option<u64>,
    longest_request: u64,
    tokens: u64,
    refilled: Instant,
    last_application_write: Option<Instant>,
}

impl ResyncPacer {
    /// A pacer for `disk`'s rates; requests are at most `longest_request`
    /// bytes.
    pub fn new(disk: &DiskOptions, longest_request: u64, now: Instant) -> ResyncPacer {
        let mut pacer = ResyncPacer {
            resync_rate: disk.resync_rate,
            ceiling: disk.c_max_rate,
            longest_request,
            tokens: 0,
            refilled: now,
            last_application_write: None,
        };
        pacer.tokens = pacer.capacity(now);
        pacer
    }

    /// A mirrored write from the application arrived.
    pub fn application_write(&mut self, now: Instant) {
        self.last_application_write = Some(now);
    }

    /// Bytes per second allowed now; `None` is no limit.
    pub fn rate(&self, now: Instant) -> Option<u64> {
        let busy = self
            .last_application_write
            .is_some_and(|at| now.saturating_duration_since(at) < APPLICATION_QUIET);
        match (busy, self.ceiling) {
            (true, Some(ceiling)) => Some(self.resync_rate.min(ceiling)),
            (true, None) => Some(self.resync_rate),
            (false, ceiling) => ceiling,
        }
    }

    /// The length of the next request: a tenth of a second's worth at the
    /// current rate, whole blocks, at least one block.
    pub fn request_length(&self, now: Instant) -> u64 {
        match self.rate(now) {
            None => self.longest_request,
            Some(rate) => {
                let share = (rate / BURST_FRACTION).clamp(BLOCK, self.longest_request);
                share / BLOCK * BLOCK
            }
        }
    }

    fn capacity(&self, now: Instant) -> u64 {
        match self.rate(now) {
            None => u64::MAX,
            Some(rate) => (rate / BURST_FRACTION).max(self.request_length(now)),
        }
    }

    /// Takes `length` bytes' worth of tokens if the bucket has them.
    pub fn try_take(&mut self, length: u64, now: Instant) -> bool {
        let Some(rate) = self.rate(now) else {
            return true;
        };
        let elapsed = now.saturating_duration_since(self.refilled);
        let earned = (elapsed.as_secs_f64() * rate as f64) as u64;
        if earned > 0 {
            self.refilled = now;
        }
        self.tokens = self.tokens.saturating_add(earned).min(self.capacity(now));
        if self.tokens >= length {
            self.tokens -= length;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KIB: u64 = 1024;

    fn disk(resync_rate: u64, c_max_rate: Option<u64>) -> DiskOptions {
        DiskOptions {
            resync_rate,
            c_max_rate,
            ..DiskOptions::default()
        }
    }

    /// Bytes granted over `seconds`, asking every 10 ms.
    fn granted(pacer: &mut ResyncPacer, start: Instant, seconds: u64, busy: bool) -> u64 {
        let mut total = 0;
        for step in 0..seconds * 100 {
            let now = start + Duration::from_millis(step * 10);
            if busy {
                pacer.application_write(now);
            }
            let length = pacer.request_length(now);
            while pacer.try_take(length, now) {
                total += length;
            }
        }
        total
    }

    #[test]
    fn an_idle_resync_runs_at_the_ceiling_a_busy_one_at_resync_rate() {
        let start = Instant::now();
        let mut pacer = ResyncPacer::new(&disk(400 * KIB, Some(4000 * KIB)), 1 << 20, start);
        let idle = granted(&mut pacer, start, 10, false);
        assert!(
            (39_000 * KIB..=41_000 * KIB).contains(&idle),
            "10 s at 4000 KiB/s: {idle}"
        );
        let later = start + Duration::from_secs(20);
        let mut pacer = ResyncPacer::new(&disk(400 * KIB, Some(4000 * KIB)), 1 << 20, later);
        let busy = granted(&mut pacer, later, 10, true);
        assert!(
            (3_900 * KIB..=4_100 * KIB).contains(&busy),
            "10 s at 400 KiB/s: {busy}"
        );
    }

    #[test]
    fn requests_are_whole_blocks_and_no_ceiling_means_no_limit() {
        let now = Instant::now();
        let pacer = ResyncPacer::new(&disk(250 * KIB, Some(50 * KIB)), 1 << 20, now);
        assert_eq!(pacer.request_length(now), 4 * KIB, "at least one block");
        let mut unlimited = ResyncPacer::new(&disk(250 * KIB, None), 1 << 20, now);
        assert_eq!(unlimited.request_length(now), 1 << 20);
        assert!((0..1000).all(|_| unlimited.try_take(1 << 20, now)));
    }
}
