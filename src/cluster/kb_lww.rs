//! Knowledge-base entries as last-writer-wins registers with causal context, deletes kept as
//! tombstones: the rule every box applies to the knowledge base in cluster mode.
//!
//! Each entry (keyed by its intent name) carries the [`Version`] of the put or delete that
//! made it what it is: that operation's hybrid-logical-clock time and its origin node. An
//! operation replaces what a box holds only if its version is greater (the time, then the
//! origin, so two boxes never tie); otherwise it is kept for the others and changes nothing.
//! A delete leaves a tombstone with its version, so a concurrent or older put arriving later
//! does not bring the entry back, and a later put does.
//!
//! Causal context: a box stamps its own put or delete above the version of the entry it
//! replaces (`dispatch/replica/kb.rs`), even when the box that wrote that version has a clock
//! running ahead: whatever a writer saw, its write wins over. Concurrent writes (neither saw
//! the other) are ordered by their versions alone, the same way on every box.
//!
//! Invariant: a box's knowledge base is, per intent, the entry of the greatest version it has
//! applied (none if that is a delete): the same set of operations gives the same knowledge
//! base in any order, with duplicates (property tests below).

use super::vector::NodeId;

/// Which write an entry (or its tombstone) is: compared by time, then origin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Version {
    pub hlc: u64,
    pub origin: NodeId,
}

/// What a box holds of one intent: the version of the last write and whether it deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Register {
    pub version: Version,
    pub deleted: bool,
}

impl Version {
    /// Whether a write of this version replaces what `held` is (nothing held: any write).
    pub fn supersedes(self, held: Option<Version>) -> bool {
        held.map_or(true, |h| self > h)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

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

    /// A write: intent, version, the answer put (`None`: a delete).
    type Write = (&'static str, Version, Option<u32>);

    /// A box's knowledge base as the rule builds it: per intent, (register, answer if not
    /// deleted).
    type Kb = BTreeMap<&'static str, (Register, Option<u32>)>;

    fn apply(kb: &mut Kb, (intent, version, answer): Write) {
        if version.supersedes(kb.get(intent).map(|(r, _)| r.version)) {
            let register = Register {
                version,
                deleted: answer.is_none(),
            };
            kb.insert(intent, (register, answer));
        }
    }

    fn random_writes(rng: &mut Rng) -> Vec<Write> {
        // Few intents, times and origins: concurrent writes and equal times are common.
        (0..1 + rng.below(12))
            .map(|i| {
                let version = Version {
                    hlc: rng.below(5) as u64,
                    origin: [0xa, 0xb, 0xc][rng.below(3)],
                };
                let answer = (rng.below(3) != 0).then_some(i as u32);
                (
                    ["hours", "parking", "returns"][rng.below(3)],
                    version,
                    answer,
                )
            })
            .collect()
    }

    /// The writes of one origin at one time are one write (a dot has one body).
    fn distinct(mut writes: Vec<Write>) -> Vec<Write> {
        let mut seen = std::collections::HashSet::new();
        writes.retain(|(intent, v, _)| seen.insert((*intent, *v)));
        writes
    }

    #[test]
    fn a_greater_version_supersedes_by_time_then_origin() {
        let v = |hlc, origin| Version { hlc, origin };
        assert!(v(1, 0xa).supersedes(None));
        assert!(v(2, 0xa).supersedes(Some(v(1, 0xb))));
        assert!(v(2, 0xb).supersedes(Some(v(2, 0xa))));
        assert!(
            !v(2, 0xa).supersedes(Some(v(2, 0xa))),
            "the same write twice"
        );
        assert!(!v(1, 0xc).supersedes(Some(v(2, 0xa))));
    }

    #[test]
    fn any_order_with_duplicates_builds_the_same_knowledge_base() {
        for seed in 1..=500u64 {
            let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
            let writes = distinct(random_writes(&mut rng));
            let mut expected = Kb::new();
            for w in &writes {
                apply(&mut expected, *w);
            }
            for _ in 0..6 {
                let mut arrived = writes.clone();
                arrived.extend(writes.iter().filter(|_| rng.below(3) == 0));
                for i in (1..arrived.len()).rev() {
                    arrived.swap(i, rng.below(i + 1));
                }
                let mut kb = Kb::new();
                for w in arrived {
                    apply(&mut kb, w);
                }
                assert_eq!(kb, expected, "seed {seed}");
            }
        }
    }

    #[test]
    fn merging_two_boxes_states_is_commutative_associative_and_idempotent() {
        // A box's state is the join of the writes it applied; merging states is applying one's
        // registers to the other.
        let merge = |left: &Kb, right: &Kb| {
            let mut out = left.clone();
            for (intent, (r, answer)) in right {
                apply(&mut out, (intent, r.version, *answer));
            }
            out
        };
        for seed in 1..=300u64 {
            let mut rng = Rng(seed.wrapping_mul(0x2545_f491_4f6c_dd1d) | 1);
            let all = distinct(random_writes(&mut rng));
            let mut boxes = [Kb::new(), Kb::new(), Kb::new()];
            for w in &all {
                apply(&mut boxes[rng.below(3)], *w);
            }
            let [a, b, c] = &boxes;
            assert_eq!(merge(a, b), merge(b, a), "seed {seed}");
            assert_eq!(
                merge(&merge(a, b), c),
                merge(a, &merge(b, c)),
                "seed {seed}"
            );
            assert_eq!(merge(a, a), *a, "seed {seed}");
        }
    }

    #[test]
    fn a_tombstone_stops_an_older_put_and_a_later_put_brings_the_entry_back() {
        let v = |hlc, origin| Version { hlc, origin };
        let mut kb = Kb::new();
        apply(&mut kb, ("hours", v(5, 0xc), None));
        apply(&mut kb, ("hours", v(4, 0xb), Some(1)));
        assert!(
            kb["hours"].0.deleted,
            "the concurrent older put stays deleted"
        );
        apply(&mut kb, ("hours", v(6, 0xa), Some(2)));
        assert_eq!(kb["hours"].1, Some(2));
    }
}
