//! Time on a board without a real-time clock.
//!
//! A Raspberry Pi boots with whatever time it saved at shutdown (or 1970) until NTP sets it,
//! and then the wall clock steps, forwards or back. So:
//! - Nothing is ordered by time: LSNs order every record and message id.
//! - Timers (a resolved conversation's idle timeout, the queue's "oldest first") run on
//!   [`timer_ms`], the monotonic clock in milliseconds: a step neither fires nor delays them.
//! - Records carry [`now_ms`], the wall clock as kefud last knew it: the wall time at the last
//!   anchor plus the monotonic time since. Between steps it is the wall clock; a step is
//!   noticed by [`observe`] (once a second), which re-anchors and returns a [`Step`].
//! - The dispatcher journals each step (`Op::ClockStepped`). The store then moves token
//!   expiries and upload times by the step (they are durations from when they were made),
//!   and, when the clock was not synchronised while the records since the previous anchor
//!   were written (the system said so, as it does until NTP has set it), moves those records'
//!   times by the step too: the times agents see are corrected once the clock is known. While
//!   it is not synchronised, [`synchronized`] says so, and the console marks times as
//!   uncertain.
//!
//! The decisions are in [`ClockWatch`], which is pure (observations in, steps out) and
//! tested with a clock the test controls; the process-wide functions feed it the real clocks.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// A difference between the wall clock and the anchored one above this is a step (NTP slews
/// smaller offsets, and slewing moves the monotonic clock along with the wall clock).
pub const STEP_THRESHOLD_MS: i64 = 2_000;

/// What the clocks said at one moment.
#[derive(Debug, Clone, Copy)]
pub struct Observation {
    /// The system's wall clock, ms since the epoch.
    pub wall_ms: i64,
    /// The monotonic clock since the process started.
    pub mono: Duration,
    /// Whether the system says its clock is synchronised (NTP has set it).
    pub synchronized: bool,
}

/// The wall clock stepped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Step {
    /// New time minus old time.
    pub offset_ms: i64,
    /// Kefud's time just before the step (old clock).
    pub before_ms: i64,
    /// Records written since this time (old clock, up to `before_ms`) were stamped by a clock
    /// that was not synchronised: they are to be corrected by `offset_ms`. `None` when the
    /// clock was synchronised: their times were right.
    pub correct_since_ms: Option<i64>,
}

/// The anchored clock and its step detection. Pure.
#[derive(Debug)]
pub struct ClockWatch {
    /// Wall time minus monotonic time at the last anchor.
    offset_ms: i64,
    /// Kefud's time at the last anchor (old clock), where an uncertain interval starts.
    anchored_at_ms: i64,
    /// Whether the clock was synchronised all along since the last anchor.
    synchronized_since_anchor: bool,
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

impl ClockWatch {
    pub fn new(first: Observation) -> Self {
        ClockWatch {
            offset_ms: first.wall_ms - ms(first.mono),
            anchored_at_ms: first.wall_ms,
            synchronized_since_anchor: first.synchronized,
        }
    }

    /// Kefud's time at monotonic time `mono`.
    pub fn now_ms(&self, mono: Duration) -> i64 {
        self.offset_ms + ms(mono)
    }

    /// Compares the wall clock with the anchored one: a step re-anchors and is returned.
    pub fn observe(&mut self, o: Observation) -> Option<Step> {
        let before_ms = self.now_ms(o.mono);
        let offset_ms = o.wall_ms - before_ms;
        if offset_ms.abs() <= STEP_THRESHOLD_MS {
            // A clock that lost its synchronisation since the anchor makes the interval
            // uncertain; one that gains it only counts from the next anchor on.
            self.synchronized_since_anchor &= o.synchronized;
            return None;
        }
        let step = Step {
            offset_ms,
            before_ms,
            correct_since_ms: (!self.synchronized_since_anchor).then_some(self.anchored_at_ms),
        };
        self.offset_ms += offset_ms;
        self.anchored_at_ms = o.wall_ms;
        self.synchronized_since_anchor = o.synchronized;
        Some(step)
    }
}

struct Process {
    start: Instant,
    /// Wall minus monotonic at the start: [`timer_ms`] reads like a wall time but never steps.
    start_offset_ms: i64,
    watch: Mutex<ClockWatch>,
    /// The watch's current offset, for [`now_ms`] without a lock.
    offset_ms: AtomicI64,
    synchronized: AtomicBool,
    steps: AtomicU64,
}

fn process() -> &'static Process {
    static PROCESS: OnceLock<Process> = OnceLock::new();
    PROCESS.get_or_init(|| {
        let start = Instant::now();
        let first = Observation {
            wall_ms: wall_ms(),
            mono: Duration::ZERO,
            synchronized: system_synchronized(),
        };
        let watch = ClockWatch::new(first);
        Process {
            start,
            start_offset_ms: watch.offset_ms,
            offset_ms: AtomicI64::new(watch.offset_ms),
            synchronized: AtomicBool::new(first.synchronized),
            watch: Mutex::new(watch),
            steps: AtomicU64::new(0),
        }
    })
}

fn wall_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(ms)
        .unwrap_or(0)
}

/// Whether the kernel says the wall clock is synchronised (adjtimex: not `TIME_ERROR`).
fn system_synchronized() -> bool {
    // SAFETY: adjtimex with modes = 0 only reads the kernel's clock state into the struct.
    unsafe {
        let mut t: libc::timex = std::mem::zeroed();
        let state = libc::adjtimex(&mut t);
        state >= 0 && state != libc::TIME_ERROR && t.status & libc::STA_UNSYNC == 0
    }
}

/// Kefud's wall time in ms since the epoch: what records carry.
pub fn now_ms() -> i64 {
    let p = process();
    p.offset_ms.load(Ordering::Relaxed) + ms(p.start.elapsed())
}

/// The monotonic clock in ms, on the scale of the wall clock at start: for timers.
pub fn timer_ms() -> i64 {
    let p = process();
    p.start_offset_ms + ms(p.start.elapsed())
}

/// Whether the wall clock is synchronised, as of the last [`observe`].
pub fn synchronized() -> bool {
    process().synchronized.load(Ordering::Relaxed)
}

/// Steps seen since start.
pub fn steps() -> u64 {
    process().steps.load(Ordering::Relaxed)
}

/// Looks at the real clocks (once a second): a step re-anchors [`now_ms`] and is returned.
pub fn observe() -> Option<Step> {
    let p = process();
    let o = Observation {
        wall_ms: wall_ms(),
        mono: p.start.elapsed(),
        synchronized: system_synchronized(),
    };
    p.synchronized.store(o.synchronized, Ordering::Relaxed);
    let mut watch = p.watch.lock().expect("invariant: never poisoned");
    let step = watch.observe(o)?;
    p.offset_ms.store(watch.offset_ms, Ordering::Relaxed);
    p.steps.fetch_add(1, Ordering::Relaxed);
    Some(step)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(wall_ms: i64, mono_s: u64, synchronized: bool) -> Observation {
        Observation {
            wall_ms,
            mono: Duration::from_secs(mono_s),
            synchronized,
        }
    }

    const BOOT: i64 = 1_577_836_800_000; // 2020-01-01, what the board thought
    const REAL: i64 = 1_796_000_000_000; // late 2026

    #[test]
    fn between_steps_it_is_the_wall_clock_and_small_drift_is_no_step() {
        let mut w = ClockWatch::new(at(BOOT, 0, true));
        assert_eq!(w.now_ms(Duration::from_secs(10)), BOOT + 10_000);
        assert_eq!(w.observe(at(BOOT + 10_500, 10, true)), None);
        assert_eq!(w.now_ms(Duration::from_secs(10)), BOOT + 10_000);
    }

    #[test]
    fn ntp_setting_an_unsynchronised_clock_corrects_what_was_written_since_boot() {
        let mut w = ClockWatch::new(at(BOOT, 0, false));
        assert_eq!(w.observe(at(BOOT + 60_000, 60, false)), None);
        let step = w.observe(at(REAL, 61, true)).unwrap();
        assert_eq!(step.offset_ms, REAL - (BOOT + 61_000));
        assert_eq!(step.before_ms, BOOT + 61_000);
        assert_eq!(step.correct_since_ms, Some(BOOT));
        // Re-anchored: kefud's time is the real time now, and runs on from it.
        assert_eq!(w.now_ms(Duration::from_secs(71)), REAL + 10_000);
        // Synchronised from here on: a later step leaves these records alone.
        let back = w.observe(at(REAL + 5_000, 71, true)).unwrap();
        assert_eq!(back.offset_ms, -5_000);
        assert_eq!(back.correct_since_ms, None);
    }

    #[test]
    fn a_synchronised_clock_set_by_hand_keeps_the_old_times_and_distrusts_the_new() {
        let mut w = ClockWatch::new(at(REAL, 0, true));
        let step = w.observe(at(REAL - 86_400_000, 1, false)).unwrap();
        assert_eq!(step.correct_since_ms, None);
        // NTP fixes it later: what was written meanwhile is corrected.
        let fix = w.observe(at(REAL + 100_000, 100, true)).unwrap();
        assert_eq!(fix.correct_since_ms, Some(REAL - 86_400_000));
        assert_eq!(fix.offset_ms, 86_400_000 + 100_000 - 99_000);
    }

    #[test]
    fn losing_synchronisation_between_steps_makes_the_interval_uncertain() {
        let mut w = ClockWatch::new(at(REAL, 0, true));
        assert_eq!(w.observe(at(REAL + 5_000, 5, false)), None);
        let step = w.observe(at(REAL + 60_000, 10, true)).unwrap();
        assert_eq!(step.correct_since_ms, Some(REAL));
    }

    #[test]
    fn the_process_clocks_agree_at_start() {
        // No step is observed in this test process: the two scales coincide.
        let (now, timer) = (now_ms(), timer_ms());
        assert!((now - timer).abs() <= 5);
    }
}
