//! Delivery outcomes as a max-lattice: what every box shows of a reply's delivery on its
//! channel, whichever box's channel delivered it.
//!
//! A reply goes out through the channels of one box (its conversation's home box); that box
//! reports each attempt's outcome, and every box joins what it hears into one value per
//! message, named by the message's dot. The order, lowest first:
//!
//! 1. `Pending`: nothing known yet (the bottom: every box starts there).
//! 2. `Failed { attempts }`: the channel refused or could not be reached; more attempts is
//!    higher, since an outbox only counts up.
//! 3. `Dead`: the outbox gave up for good. Above any number of failures: it comes after them
//!    and nothing of that outbox follows it.
//! 4. `Delivered`: the channel confirmed it. Highest, above `Dead`: the customer has the
//!    message, which is what an agent needs to know; a second box that also holds the
//!    customer's channel (a conversation folded into one of its own) may have got it through
//!    where the first gave up, and a confirmation is never taken back.
//!
//! Within a rank, attempts, then the error text, then the time break ties, so the order is
//! total and the join (max) is the same on every box whatever order the reports arrive in,
//! however often: commutative, associative, idempotent (property tests below).

use std::cmp::Ordering;

/// The rank of an outcome, lowest first (see the module header).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Rank {
    Pending,
    Failed,
    Dead,
    Delivered,
}

/// One element of the lattice: a reply's delivery as far as a box knows it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Outcome {
    pub rank: Rank,
    /// The outbox's attempts so far (0 while pending).
    pub attempts: u32,
    /// The last refusal's text (empty when delivered or pending).
    pub error: String,
    /// When the reporting box decided it (wall ms).
    pub at_ms: i64,
}

impl Outcome {
    /// The bottom: nothing known.
    pub fn pending() -> Outcome {
        Outcome {
            rank: Rank::Pending,
            attempts: 0,
            error: String::new(),
            at_ms: 0,
        }
    }

    /// The join: the higher of the two.
    #[must_use]
    pub fn join(self, other: Outcome) -> Outcome {
        self.max(other)
    }

    /// The state the console and the API show: `pending` (also after failed attempts, as on
    /// one box), `dead` or `delivered`.
    pub fn state(&self) -> &'static str {
        match self.rank {
            Rank::Pending | Rank::Failed => "pending",
            Rank::Dead => "dead",
            Rank::Delivered => "delivered",
        }
    }

    /// The outcome a stored `state` and `attempts` stand for (see [`Outcome::state`]).
    pub fn from_stored(state: &str, attempts: u32, error: String, at_ms: i64) -> Outcome {
        let rank = match state {
            "delivered" => Rank::Delivered,
            "dead" => Rank::Dead,
            _ if attempts > 0 => Rank::Failed,
            _ => Rank::Pending,
        };
        Outcome {
            rank,
            attempts,
            error,
            at_ms,
        }
    }
}

impl Ord for Outcome {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.rank, self.attempts, &self.error, self.at_ms).cmp(&(
            other.rank,
            other.attempts,
            &other.error,
            other.at_ms,
        ))
    }
}

impl PartialOrd for Outcome {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small deterministic generator (xorshift), so a failing order can be replayed.
    struct Rng(u64);

    impl Rng {
        fn below(&mut self, n: usize) -> usize {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            (self.0 % n as u64) as usize
        }
    }

    fn random(rng: &mut Rng) -> Outcome {
        let rank = [Rank::Pending, Rank::Failed, Rank::Dead, Rank::Delivered][rng.below(4)];
        Outcome {
            rank,
            attempts: rng.below(4) as u32,
            error: ["", "timeout", "refused"][rng.below(3)].to_string(),
            at_ms: rng.below(3) as i64,
        }
    }

    #[test]
    fn the_ranks_are_ordered_as_the_header_says_and_more_attempts_is_higher() {
        let failed = |n| Outcome::from_stored("pending", n, "x".into(), 5);
        assert!(Outcome::pending() < failed(1));
        assert!(failed(1) < failed(2));
        assert!(failed(9) < Outcome::from_stored("dead", 1, String::new(), 0));
        assert!(
            Outcome::from_stored("dead", 9, "x".into(), 9)
                < Outcome::from_stored("delivered", 0, String::new(), 0)
        );
        for o in [failed(0), failed(3)] {
            let back = Outcome::from_stored(o.state(), o.attempts, o.error.clone(), o.at_ms);
            assert_eq!(back, o, "state and attempts say which rank");
        }
    }

    #[test]
    fn join_is_commutative_associative_and_idempotent() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        for _ in 0..2_000 {
            let (a, b, c) = (random(&mut rng), random(&mut rng), random(&mut rng));
            assert_eq!(a.clone().join(b.clone()), b.clone().join(a.clone()));
            assert_eq!(
                a.clone().join(b.clone()).join(c.clone()),
                a.clone().join(b.clone().join(c.clone()))
            );
            assert_eq!(a.clone().join(a.clone()), a);
            assert!(a.clone().join(b.clone()) >= a && a.clone().join(b.clone()) >= b);
        }
    }

    #[test]
    fn any_order_of_reports_with_duplicates_joins_to_the_same_outcome() {
        for seed in 1..=300u64 {
            let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
            let reports: Vec<Outcome> = (0..1 + rng.below(8)).map(|_| random(&mut rng)).collect();
            let expected = reports
                .iter()
                .cloned()
                .fold(Outcome::pending(), Outcome::join);
            for _ in 0..5 {
                let mut arrived = reports.clone();
                arrived.extend(reports.iter().filter(|_| rng.below(3) == 0).cloned());
                for i in (1..arrived.len()).rev() {
                    arrived.swap(i, rng.below(i + 1));
                }
                let box_view = arrived.into_iter().fold(Outcome::pending(), Outcome::join);
                assert_eq!(box_view, expected, "seed {seed}");
            }
        }
    }
}
