//! Hybrid logical clock: timestamps that order events across boxes whose wall clocks disagree.
//!
//! A [`Timestamp`] packs wall milliseconds since the Unix epoch (upper 48 bits) and a logical
//! counter (lower 16 bits) into one `u64`, so comparing the integers compares (wall, counter).
//!
//! Invariants of [`Hlc`]:
//! - [`Hlc::now`] returns a timestamp strictly greater than every timestamp the clock issued
//!   before and every remote timestamp it merged, whatever the wall clock does (it may step
//!   back). When the counter would overflow, the wall part moves forward by 1 ms.
//! - [`Hlc::observe`] never refuses a remote timestamp: a box whose clock is wrong still has its
//!   operations stored. But the clock merges a remote only when it is at most `max_ahead_ms`
//!   ahead of the local wall clock; a remote further ahead is reported
//!   ([`Observed::TooFarAhead`]) and does not drag the local clock into the future.
//! - Every observation records the skew (remote wall − local wall); [`Hlc::largest_skew_ms`]
//!   keeps the one with the largest magnitude, with its sign.
//!
//! The clock is pure: callers pass the wall time in, so tests control it.

use std::fmt;

/// Bits of a [`Timestamp`] that hold the logical counter.
const COUNTER_BITS: u32 = 16;

/// The largest wall time a [`Timestamp`] holds (48 bits of milliseconds: the year 10889).
/// Larger wall times are clamped to it.
pub const MAX_WALL_MS: u64 = (1 << (64 - COUNTER_BITS)) - 1;

/// Wall milliseconds (upper 48 bits) and a logical counter (lower 16 bits).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Default)]
pub struct Timestamp(pub u64);

impl Timestamp {
    /// A wall time above [`MAX_WALL_MS`] is clamped to it.
    pub fn new(wall_ms: u64, counter: u16) -> Self {
        Timestamp((wall_ms.min(MAX_WALL_MS) << COUNTER_BITS) | u64::from(counter))
    }

    pub fn wall_ms(self) -> u64 {
        self.0 >> COUNTER_BITS
    }

    pub fn counter(self) -> u16 {
        (self.0 & u64::from(u16::MAX)) as u16
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.wall_ms(), self.counter())
    }
}

/// What [`Hlc::observe`] did with a remote timestamp.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Observed {
    /// The clock now stands at or after the remote timestamp.
    Merged,
    /// The remote wall time is `ahead_ms` ahead of the local wall clock, more than allowed:
    /// the clock did not move. The remote event is still to be stored.
    TooFarAhead { ahead_ms: u64 },
}

/// This node's hybrid logical clock.
#[derive(Debug, Clone)]
pub struct Hlc {
    /// The largest timestamp issued or merged.
    last: Timestamp,
    /// How far ahead of the local wall clock a remote timestamp may be and still be merged.
    max_ahead_ms: u64,
    /// The observed skew (remote wall − local wall) of largest magnitude.
    largest_skew_ms: i64,
}

impl Hlc {
    pub fn new(max_ahead_ms: u64) -> Hlc {
        Hlc::resume(Timestamp::default(), max_ahead_ms)
    }

    /// After a restart: `last` is the largest timestamp this node stored.
    pub fn resume(last: Timestamp, max_ahead_ms: u64) -> Hlc {
        Hlc {
            last,
            max_ahead_ms,
            largest_skew_ms: 0,
        }
    }

    /// A timestamp for a local event, strictly greater than every timestamp issued or merged.
    ///
    /// Incrementing the packed integer is the counter rule: `(wall, c)` becomes `(wall, c + 1)`,
    /// and `(wall, u16::MAX)` becomes `(wall + 1, 0)`. The clock pins at the largest
    /// representable timestamp instead of wrapping (only reachable with a wall time in the
    /// year 10889 or a corrupt resume point).
    pub fn now(&mut self, wall_ms: u64) -> Timestamp {
        let wall_ms = wall_ms.min(MAX_WALL_MS);
        self.last = if wall_ms > self.last.wall_ms() {
            Timestamp::new(wall_ms, 0)
        } else {
            Timestamp(self.last.0.saturating_add(1))
        };
        self.last
    }

    /// Takes in a remote event's timestamp, seen when the local wall clock read `wall_ms`.
    pub fn observe(&mut self, remote: Timestamp, wall_ms: u64) -> Observed {
        let wall_ms = wall_ms.min(MAX_WALL_MS);
        // Both wall times are below 2^48, so they and their difference fit in an i64.
        let skew_ms = remote.wall_ms() as i64 - wall_ms as i64;
        if skew_ms.unsigned_abs() > self.largest_skew_ms.unsigned_abs() {
            self.largest_skew_ms = skew_ms;
        }
        if remote.wall_ms() > wall_ms.saturating_add(self.max_ahead_ms) {
            return Observed::TooFarAhead {
                ahead_ms: remote.wall_ms() - wall_ms,
            };
        }
        self.last = self.last.max(remote);
        Observed::Merged
    }

    /// The largest timestamp issued or merged.
    pub fn last(&self) -> Timestamp {
        self.last
    }

    /// The observed skew (remote wall − local wall) of largest magnitude, with its sign.
    pub fn largest_skew_ms(&self) -> i64 {
        self.largest_skew_ms
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINUTE_MS: u64 = 60_000;

    #[test]
    fn timestamp_packs_wall_then_counter() {
        let stamp = Timestamp::new(1_700_000_000_123, 7);
        assert_eq!(stamp.wall_ms(), 1_700_000_000_123);
        assert_eq!(stamp.counter(), 7);
        assert_eq!(stamp.to_string(), "1700000000123.7");
        assert!(Timestamp::new(5, u16::MAX) < Timestamp::new(6, 0));
        assert!(Timestamp::new(5, 1) < Timestamp::new(5, 2));
        assert_eq!(Timestamp::new(u64::MAX, 3).wall_ms(), MAX_WALL_MS);
        assert_eq!(Timestamp::new(u64::MAX, 3).counter(), 3);
    }

    #[test]
    fn now_is_monotonic_when_the_wall_clock_goes_backwards() {
        let mut clock = Hlc::new(MINUTE_MS);
        let issued: Vec<Timestamp> = [1000, 500, 500, 999, 1001, 0]
            .into_iter()
            .map(|wall_ms| clock.now(wall_ms))
            .collect();
        assert_eq!(
            issued,
            vec![
                Timestamp::new(1000, 0),
                Timestamp::new(1000, 1),
                Timestamp::new(1000, 2),
                Timestamp::new(1000, 3),
                Timestamp::new(1001, 0),
                Timestamp::new(1001, 1),
            ]
        );
        assert_eq!(clock.last(), Timestamp::new(1001, 1));
    }

    #[test]
    fn counter_overflow_moves_the_wall_forward() {
        let mut clock = Hlc::resume(Timestamp::new(1000, u16::MAX - 1), MINUTE_MS);
        assert_eq!(clock.now(1000), Timestamp::new(1000, u16::MAX));
        assert_eq!(clock.now(1000), Timestamp::new(1001, 0));
        assert_eq!(clock.now(900), Timestamp::new(1001, 1));
    }

    #[test]
    fn clock_pins_at_the_largest_timestamp() {
        let mut clock = Hlc::resume(Timestamp(u64::MAX), MINUTE_MS);
        assert_eq!(clock.now(1000), Timestamp(u64::MAX));
    }

    #[test]
    fn observe_merges_a_slightly_ahead_remote() {
        let mut clock = Hlc::new(MINUTE_MS);
        clock.now(1_000_000);
        let remote = Timestamp::new(1_000_500, 7);
        assert_eq!(clock.observe(remote, 1_000_000), Observed::Merged);
        assert_eq!(clock.last(), remote);
        let next = clock.now(1_000_001);
        assert!(next > remote);
        assert_eq!(next, Timestamp::new(1_000_500, 8));
        assert_eq!(clock.largest_skew_ms(), 500);
    }

    #[test]
    fn remote_ten_minutes_ahead_is_reported_not_merged() {
        let mut clock = Hlc::new(MINUTE_MS);
        let before = clock.now(1_000_000);
        let remote = Timestamp::new(1_000_000 + 10 * MINUTE_MS, 0);
        assert_eq!(
            clock.observe(remote, 1_000_000),
            Observed::TooFarAhead {
                ahead_ms: 10 * MINUTE_MS
            }
        );
        assert_eq!(clock.last(), before);
        assert!(clock.now(1_000_001) < remote);
        assert_eq!(clock.largest_skew_ms(), 600_000);
        // A smaller skew does not replace it; a larger one behind does, with its sign.
        clock.observe(Timestamp::new(999_000, 0), 1_000_000);
        assert_eq!(clock.largest_skew_ms(), 600_000);
        clock.observe(Timestamp::new(1_000_000 - 11 * MINUTE_MS, 0), 1_000_000);
        assert_eq!(clock.largest_skew_ms(), -660_000);
    }

    #[test]
    fn remote_exactly_max_ahead_is_merged() {
        let mut clock = Hlc::new(MINUTE_MS);
        let remote = Timestamp::new(1_000_000 + MINUTE_MS, 0);
        assert_eq!(clock.observe(remote, 1_000_000), Observed::Merged);
        assert!(clock.now(1_000_000) > remote);
    }

    #[test]
    fn observe_of_an_older_remote_keeps_last() {
        let mut clock = Hlc::new(MINUTE_MS);
        let issued = clock.now(2_000_000);
        let remote = Timestamp::new(1_999_000, 40);
        assert_eq!(clock.observe(remote, 2_000_000), Observed::Merged);
        assert_eq!(clock.last(), issued);
        assert_eq!(clock.largest_skew_ms(), -1000);
    }

    /// Deterministic pseudo-random numbers (xorshift64).
    struct XorShift(u64);

    impl XorShift {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }

        /// A value in `-spread..=spread`.
        fn signed(&mut self, spread: u64) -> i64 {
            (self.next() % (2 * spread + 1)) as i64 - spread as i64
        }
    }

    #[test]
    fn now_strictly_increases_under_random_interleavings() {
        let mut random = XorShift(0x9E37_79B9_7F4A_7C15);
        let mut clock = Hlc::new(MINUTE_MS);
        let mut wall_ms: u64 = 1_700_000_000_000;
        let mut previous = Timestamp::default();
        let mut largest_merged = Timestamp::default();
        for _ in 0..10_000 {
            // The wall clock mostly moves forward, sometimes steps back.
            wall_ms = wall_ms.saturating_add_signed(random.signed(1_000) + 400);
            if random.next() % 3 == 0 {
                // Mostly near the local clock, sometimes far off either way.
                let spread_ms = match random.next() % 16 {
                    0 => 10 * MINUTE_MS,
                    _ => 2_000,
                };
                let remote_wall = wall_ms.saturating_add_signed(random.signed(spread_ms));
                let remote = Timestamp::new(remote_wall, (random.next() % 8) as u16);
                match clock.observe(remote, wall_ms) {
                    Observed::Merged => largest_merged = largest_merged.max(remote),
                    Observed::TooFarAhead { ahead_ms } => {
                        assert!(ahead_ms > MINUTE_MS);
                        assert_eq!(remote_wall - wall_ms, ahead_ms);
                    }
                }
            } else {
                let stamp = clock.now(wall_ms);
                assert!(stamp > previous, "{stamp} after {previous}");
                assert!(stamp > largest_merged, "{stamp} after {largest_merged}");
                assert!(stamp.wall_ms() >= wall_ms);
                previous = stamp;
            }
        }
        assert!(clock.largest_skew_ms().unsigned_abs() <= 10 * MINUTE_MS);
    }
}
