//! Health tracking with keepalived's semantics, free of I/O: what a track
//! script's results, an interface's link state or a track file's value do
//! to an instance's priority, and when they put it into FAULT.
//!
//! - [`ScriptTracker`]: one `vrrp_script`'s schedule and rise/fall
//!   counting. The daemon asks it when to start a run and feeds it each
//!   run's result; a run still going when the next is due makes that next
//!   one skipped, not queued.
//! - [`check_effect`] and [`file_effect`]: what one tracked thing does to an
//!   instance, from its health (or value), weight and `reverse`.
//! - [`verdict`]: base priority plus every effect, clamped to 1..=254 (an
//!   owner's 255 never moves), and whether the instance is faulty.
//! - [`HookHold`]: FAULT for a while after a failed `notify_master`
//!   (`master_hook_failure: fault`), then a retry.

use std::time::{Duration, Instant};

use crate::instance::OWNER_PRIORITY;

/// The largest weight a tracker may have, either sign (keepalived's).
pub const MAX_WEIGHT: i32 = 253;
/// The lowest and highest priority tracking can produce for a non-owner.
pub const TRACKED_PRIORITY_RANGE: (u8, u8) = (1, 254);

/// What is known of one tracked thing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    /// No result yet: neither weight nor fault applies.
    Unknown,
    Ok,
    Failed,
}

impl Health {
    /// The word state files use.
    pub fn name(self) -> &'static str {
        match self {
            Health::Unknown => "unknown",
            Health::Ok => "ok",
            Health::Failed => "failed",
        }
    }
}

/// How often a track script runs and how many results change its health.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScriptSchedule {
    pub interval: Duration,
    /// Consecutive successes that turn a failed script OK (at least 1).
    pub rise: u32,
    /// Consecutive failures that turn an OK script failed (at least 1).
    pub fall: u32,
    /// Start as failed rather than unknown.
    pub init_fail: bool,
}

/// One track script's state.
///
/// keepalived's counter: it runs from 0 to `rise + fall − 1`; the script is
/// OK at `rise` and above. A success from below `rise − 1` climbs by one,
/// otherwise jumps to the top; a failure from above `rise` drops by one,
/// otherwise to 0. So `rise` successes in a row turn a failed script OK and
/// `fall` failures an OK one failed, and the first result decides at once.
#[derive(Debug, Clone)]
pub struct ScriptTracker {
    schedule: ScriptSchedule,
    counter: u32,
    health: Health,
    running: bool,
    next_run: Instant,
    runs: u64,
    skipped: u64,
}

impl ScriptTracker {
    /// A tracker whose first run is due at `now`.
    pub fn new(schedule: ScriptSchedule, now: Instant) -> ScriptTracker {
        let rise = schedule.rise.max(1);
        let fall = schedule.fall.max(1);
        let schedule = ScriptSchedule {
            rise,
            fall,
            ..schedule
        };
        let (counter, health) = if schedule.init_fail {
            (0, Health::Failed)
        } else {
            (rise - 1, Health::Unknown)
        };
        ScriptTracker {
            schedule,
            counter,
            health,
            running: false,
            next_run: now,
            runs: 0,
            skipped: 0,
        }
    }

    pub fn health(&self) -> Health {
        self.health
    }

    /// Whether a run was started and has not reported yet.
    pub fn running(&self) -> bool {
        self.running
    }

    /// Runs started so far.
    pub fn runs(&self) -> u64 {
        self.runs
    }

    /// Runs skipped because the previous one was still going.
    pub fn skipped(&self) -> u64 {
        self.skipped
    }

    /// When the next run is due.
    pub fn poll_timeout(&self) -> Instant {
        self.next_run
    }

    /// The clock reached `now`: returns true when a run must start now.
    /// A due run is skipped while the previous one is still going.
    pub fn handle_timeout(&mut self, now: Instant) -> bool {
        if now < self.next_run {
            return false;
        }
        // A stalled daemon does not catch up with a burst of runs.
        self.next_run = (self.next_run + self.schedule.interval).max(now + self.schedule.interval);
        if self.running {
            self.skipped += 1;
            return false;
        }
        self.running = true;
        self.runs += 1;
        true
    }

    /// The run started last ended, successfully or not (a timeout is a
    /// failure). Returns true when the script's health changed.
    pub fn handle_result(&mut self, success: bool) -> bool {
        self.running = false;
        let ScriptSchedule { rise, fall, .. } = self.schedule;
        let top = rise + fall - 1;
        if success {
            self.counter = if self.counter < rise - 1 {
                self.counter + 1
            } else {
                top
            };
        } else {
            self.counter = if self.counter > rise {
                self.counter - 1
            } else {
                0
            };
        }
        let health = if self.counter >= rise {
            Health::Ok
        } else {
            Health::Failed
        };
        let changed = health != self.health;
        self.health = health;
        changed
    }
}

/// What one tracked thing does to an instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    /// Added to the base priority (0: no change).
    Priority(i32),
    /// The instance goes to FAULT.
    Fault,
}

/// The effect of a script or interface of `health`, tracked with `weight`
/// (−253..=253): a positive weight is added while it is OK, a negative one
/// subtracted while it failed, and weight 0 means FAULT while it failed.
/// `reverse` turns the direction of the change around (a positive weight
/// then lowers the priority while OK, a negative one raises it while
/// failed), as keepalived's `reverse`.
pub fn check_effect(health: Health, weight: i32, reverse: bool) -> Effect {
    let direction = if reverse { -1 } else { 1 };
    match health {
        Health::Unknown => Effect::Priority(0),
        Health::Failed if weight == 0 => Effect::Fault,
        Health::Ok if weight > 0 => Effect::Priority(weight * direction),
        Health::Failed if weight < 0 => Effect::Priority(weight * direction),
        Health::Ok | Health::Failed => Effect::Priority(0),
    }
}

/// The effect of a track file holding `value`, tracked with `weight`: the
/// priority changes by value × weight (negated by `reverse`). As in
/// keepalived, weight 0 means FAULT for any non-zero value, and a product
/// below −253 means FAULT.
pub fn file_effect(value: i64, weight: i32, reverse: bool) -> Effect {
    if weight == 0 {
        return if value == 0 {
            Effect::Priority(0)
        } else {
            Effect::Fault
        };
    }
    let direction = if reverse { -1 } else { 1 };
    let change = value
        .saturating_mul(i64::from(weight))
        .saturating_mul(direction);
    if change < -i64::from(MAX_WEIGHT) {
        Effect::Fault
    } else {
        // Anything beyond +254 already lifts any priority to the top.
        Effect::Priority(i32::try_from(change.min(254)).unwrap_or(254))
    }
}

/// What tracking makes of an instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verdict {
    /// The effective priority.
    pub priority: u8,
    /// At least one tracked thing demands FAULT.
    pub fault: bool,
}

/// Combines `base` (the configured priority) with every effect: base plus
/// the sum of changes, clamped to 1..=254; an owner (255) keeps 255.
pub fn verdict(base: u8, effects: impl IntoIterator<Item = Effect>) -> Verdict {
    let mut change: i64 = 0;
    let mut fault = false;
    for effect in effects {
        match effect {
            Effect::Priority(delta) => change += i64::from(delta),
            Effect::Fault => fault = true,
        }
    }
    let priority = if base == OWNER_PRIORITY {
        OWNER_PRIORITY
    } else {
        let (low, high) = TRACKED_PRIORITY_RANGE;
        let total = (i64::from(base) + change).clamp(i64::from(low), i64::from(high));
        u8::try_from(total).unwrap_or(high)
    };
    Verdict { priority, fault }
}

/// Reads a track file's text as keepalived does: the first word is a whole
/// number (an empty file is 0). Anything else is refused with a reason,
/// and the daemon keeps the value it had.
pub fn parse_track_file(text: &str) -> Result<i64, String> {
    let Some(word) = text.split_whitespace().next() else {
        return Ok(0);
    };
    word.parse::<i64>()
        .map_err(|_| format!("`{word}` is not a whole number"))
}

/// FAULT after a failed `notify_master`, for a hold-off time; then the
/// instance returns to Backup and may become Master again (and run its
/// `notify_master` again).
#[derive(Debug, Clone)]
pub struct HookHold {
    retry_after: Duration,
    until: Option<Instant>,
}

impl HookHold {
    pub fn new(retry_after: Duration) -> HookHold {
        HookHold {
            retry_after,
            until: None,
        }
    }

    /// The hook failed at `now`: hold FAULT until the hold-off passed.
    pub fn fail(&mut self, now: Instant) {
        self.until = Some(now + self.retry_after);
    }

    /// Whether the instance is held in FAULT.
    pub fn active(&self) -> bool {
        self.until.is_some()
    }

    /// When the hold ends, while one is active.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.until
    }

    /// Ends the hold once its time came; returns true when it just ended.
    pub fn handle_timeout(&mut self, now: Instant) -> bool {
        if self.until.is_some_and(|until| until <= now) {
            self.until = None;
            return true;
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schedule(rise: u32, fall: u32, init_fail: bool) -> ScriptSchedule {
        ScriptSchedule {
            interval: Duration::from_secs(2),
            rise,
            fall,
            init_fail,
        }
    }

    /// Feeds results and returns the health after each.
    fn feed(tracker: &mut ScriptTracker, results: &[bool]) -> Vec<Health> {
        results
            .iter()
            .map(|&ok| {
                tracker.handle_result(ok);
                tracker.health()
            })
            .collect()
    }

    #[test]
    fn first_result_decides_then_rise_and_fall_count() {
        use Health::{Failed, Ok};
        let t0 = Instant::now();
        let mut tracker = ScriptTracker::new(schedule(2, 3, false), t0);
        assert_eq!(tracker.health(), Health::Unknown);
        assert_eq!(
            feed(&mut tracker, &[true, false, false, true, false, false]),
            [Ok, Ok, Ok, Ok, Ok, Ok],
            "fewer than `fall` failures in a row keep it OK"
        );
        assert_eq!(feed(&mut tracker, &[false]), [Failed]);
        assert_eq!(
            feed(&mut tracker, &[true, false, true, true]),
            [Failed, Failed, Failed, Ok]
        );
        let mut failing = ScriptTracker::new(schedule(2, 3, false), t0);
        assert_eq!(feed(&mut failing, &[false]), [Failed]);
    }

    #[test]
    fn init_fail_starts_failed_and_needs_rise_successes() {
        let mut tracker = ScriptTracker::new(schedule(3, 1, true), Instant::now());
        assert_eq!(tracker.health(), Health::Failed);
        assert_eq!(
            feed(&mut tracker, &[true, true, true, false]),
            [Health::Failed, Health::Failed, Health::Ok, Health::Failed]
        );
    }

    #[test]
    fn a_run_still_going_skips_the_next_tick() {
        let t0 = Instant::now();
        let second = Duration::from_secs(1);
        let mut tracker = ScriptTracker::new(schedule(1, 1, false), t0);
        assert!(tracker.handle_timeout(t0), "the first run is due at once");
        assert_eq!(tracker.poll_timeout(), t0 + 2 * second);
        assert!(!tracker.handle_timeout(t0 + second), "not due yet");
        assert!(!tracker.handle_timeout(t0 + 2 * second), "still running");
        assert_eq!(tracker.skipped(), 1);
        tracker.handle_result(true);
        assert!(!tracker.handle_timeout(t0 + 3 * second));
        assert!(tracker.handle_timeout(t0 + 4 * second));
        assert_eq!(tracker.runs(), 2);
        // After a stall the next run is an interval from now, not a burst.
        tracker.handle_result(true);
        assert!(tracker.handle_timeout(t0 + 30 * second));
        assert_eq!(tracker.poll_timeout(), t0 + 32 * second);
    }

    #[test]
    fn weights_follow_keepalived() {
        use Effect::{Fault, Priority};
        assert_eq!(check_effect(Health::Ok, 20, false), Priority(20));
        assert_eq!(check_effect(Health::Failed, 20, false), Priority(0));
        assert_eq!(check_effect(Health::Failed, -20, false), Priority(-20));
        assert_eq!(check_effect(Health::Ok, -20, false), Priority(0));
        assert_eq!(check_effect(Health::Ok, 20, true), Priority(-20));
        assert_eq!(check_effect(Health::Failed, -20, true), Priority(20));
        assert_eq!(check_effect(Health::Failed, 0, false), Fault);
        assert_eq!(check_effect(Health::Ok, 0, false), Priority(0));
        assert_eq!(check_effect(Health::Unknown, 0, false), Priority(0));
        assert_eq!(check_effect(Health::Unknown, -20, false), Priority(0));
    }

    #[test]
    fn file_values_multiply_the_weight() {
        use Effect::{Fault, Priority};
        assert_eq!(file_effect(-10, 1, false), Priority(-10));
        assert_eq!(file_effect(3, 5, false), Priority(15));
        assert_eq!(file_effect(3, 5, true), Priority(-15));
        assert_eq!(file_effect(0, 0, false), Priority(0));
        assert_eq!(file_effect(7, 0, false), Fault);
        assert_eq!(file_effect(-254, 1, false), Fault);
        assert_eq!(file_effect(-253, 1, false), Priority(-253));
        assert_eq!(file_effect(i64::MAX, 253, false), Priority(254));
        assert_eq!(file_effect(i64::MIN, 253, false), Fault);
    }

    #[test]
    fn priority_is_clamped_and_the_owner_never_moves() {
        use Effect::{Fault, Priority};
        assert_eq!(
            verdict(100, [Priority(-30), Priority(5)]),
            Verdict {
                priority: 75,
                fault: false
            }
        );
        assert_eq!(verdict(100, [Priority(-253)]).priority, 1);
        assert_eq!(verdict(200, [Priority(253)]).priority, 254);
        assert_eq!(verdict(255, [Priority(-100)]).priority, 255);
        assert_eq!(
            verdict(255, [Fault]),
            Verdict {
                priority: 255,
                fault: true
            }
        );
    }

    #[test]
    fn track_files_hold_a_whole_number() {
        assert_eq!(parse_track_file("-10\n"), Ok(-10));
        assert_eq!(parse_track_file("  42 trailing words"), Ok(42));
        assert_eq!(parse_track_file(""), Ok(0));
        assert!(parse_track_file("ten").unwrap_err().contains("`ten`"));
        assert!(parse_track_file("1.5").is_err());
    }

    #[test]
    fn hook_hold_ends_after_its_retry_time() {
        let t0 = Instant::now();
        let mut hold = HookHold::new(Duration::from_secs(10));
        assert!(!hold.active());
        hold.fail(t0);
        assert!(hold.active());
        assert!(!hold.handle_timeout(t0 + Duration::from_secs(9)));
        assert!(hold.handle_timeout(t0 + Duration::from_secs(10)));
        assert!(!hold.active());
        assert_eq!(hold.poll_timeout(), None);
    }
}
