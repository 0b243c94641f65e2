//! Who holds a conversation across the cluster: a multi-value register with causal context.
//!
//! Every assignment is an operation with its dot and the vector its box had applied when it
//! was made (`seen`): it replaces every holder that vector covers, the ones its box knew of.
//! Two assignments made without either seeing the other (boxes cut off from each other) are
//! both kept: the conversation has two holders, a conflict the agents settle by assigning it
//! again (that assignment has seen both, and replaces both).
//!
//! State: the holders not replaced, and the context — the join of every applied assignment's
//! `seen`. A holder is kept exactly when the context does not cover its dot, so the state is
//! a function of the set of assignments applied, whatever their order, however often each
//! came: the merge is commutative, associative and idempotent (property tests below). An
//! assignment that arrives after one that replaced it (from a third box that had seen both)
//! is covered on arrival and never shows.
//!
//! Invariant: no holder's dot is covered by the context; holders are sorted by dot.

use smallvec::SmallVec;

use super::vector::{Dot, NodeId, VersionVector};

/// An agent as every box names them: their box and that box's id for them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AgentRef {
    pub node: NodeId,
    pub agent: u64,
}

/// One assignment the register keeps: who, by which operation, and the name shown for them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    pub dot: Dot,
    pub agent: AgentRef,
    pub name: String,
}

/// What applying to a register changed: the holders, or anything (the context too, which
/// must then be stored again: a restart reads it back).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Applied {
    pub holders_changed: bool,
    pub changed: bool,
}

/// A conversation's holders (see the module header).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Holders {
    values: SmallVec<[Holder; 1]>,
    context: VersionVector,
}

impl Holders {
    /// The register as stored: its holders (any order) and its context.
    pub fn from_parts(values: Vec<Holder>, context: VersionVector) -> Holders {
        let mut h = Holders {
            values: SmallVec::new(),
            context,
        };
        for v in values {
            h.insert(v);
        }
        h.prune();
        h
    }

    /// Applies an assignment made with `seen` applied on its box.
    pub fn apply(&mut self, holder: Holder, seen: &VersionVector) -> Applied {
        let (values, context) = (self.values.clone(), self.context.clone());
        self.context.merge(seen);
        if !self.context.covers(holder.dot) {
            self.insert(holder);
        }
        self.prune();
        Applied {
            holders_changed: self.values != values,
            changed: self.values != values || self.context != context,
        }
    }

    /// Joins another register of the same conversation into this one (two conversations
    /// folded into one): the holders of both that neither context covers.
    pub fn merge(&mut self, other: &Holders) -> Applied {
        let (values, context) = (self.values.clone(), self.context.clone());
        self.context.merge(&other.context);
        for v in &other.values {
            self.insert(v.clone());
        }
        self.prune();
        Applied {
            holders_changed: self.values != values,
            changed: self.values != values || self.context != context,
        }
    }

    /// The holders, sorted by dot: one normally, several when assignments were concurrent.
    pub fn values(&self) -> &[Holder] {
        &self.values
    }

    pub fn context(&self) -> &VersionVector {
        &self.context
    }

    /// Whether anyone on a box other than `node` holds it.
    pub fn held_elsewhere(&self, node: NodeId) -> bool {
        self.values.iter().any(|h| h.agent.node != node)
    }

    fn insert(&mut self, holder: Holder) {
        match self.values.binary_search_by_key(&holder.dot, |h| h.dot) {
            Ok(_) => {}
            Err(at) => self.values.insert(at, holder),
        }
    }

    fn prune(&mut self) {
        let context = &self.context;
        self.values.retain(|h| !context.covers(h.dot));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dot(origin: NodeId, seq: u64) -> Dot {
        Dot { origin, seq }
    }

    fn holder(origin: NodeId, seq: u64, agent: u64) -> Holder {
        Holder {
            dot: dot(origin, seq),
            agent: AgentRef {
                node: origin,
                agent,
            },
            name: format!("agent {agent}"),
        }
    }

    fn vv(entries: &[(NodeId, u64)]) -> VersionVector {
        let mut v = VersionVector::default();
        for (o, s) in entries {
            v.advance(*o, *s);
        }
        v
    }

    #[test]
    fn a_later_assignment_replaces_what_its_box_had_seen() {
        let mut h = Holders::default();
        assert!(h.apply(holder(1, 1, 7), &vv(&[])).holders_changed);
        assert!(h.apply(holder(2, 1, 9), &vv(&[(1, 1)])).holders_changed);
        assert_eq!(h.values().len(), 1);
        assert_eq!(h.values()[0].agent.agent, 9);
        assert_eq!(h.values().len(), 1);
        assert!(h.held_elsewhere(1));
        assert!(!h.held_elsewhere(2));
    }

    #[test]
    fn concurrent_assignments_are_both_kept_until_one_that_saw_both() {
        let mut h = Holders::default();
        h.apply(holder(1, 5, 7), &vv(&[(1, 4)]));
        h.apply(holder(3, 2, 8), &vv(&[(3, 1)]));
        assert_eq!(h.values().len(), 2, "a conflict");
        let agents: Vec<u64> = h.values().iter().map(|v| v.agent.agent).collect();
        assert_eq!(agents, vec![7, 8]);
        // Settled on box 3, which by now had applied box 1's.
        assert!(
            h.apply(holder(3, 3, 8), &vv(&[(1, 5), (3, 2)]))
                .holders_changed
        );
        assert_eq!(h.values().len(), 1);
        assert_eq!(h.values()[0].dot, dot(3, 3));
    }

    #[test]
    fn an_assignment_arriving_after_the_one_that_replaced_it_never_shows() {
        let mut h = Holders::default();
        // Box 2's assignment had seen box 1's, which arrives here only afterwards.
        h.apply(holder(2, 1, 9), &vv(&[(1, 1)]));
        let applied = h.apply(holder(1, 1, 7), &vv(&[]));
        assert!(!applied.holders_changed && !applied.changed);
        assert_eq!(h.values()[0].agent.agent, 9);
    }

    #[test]
    fn from_parts_keeps_only_what_the_context_does_not_cover() {
        let h = Holders::from_parts(vec![holder(2, 1, 9), holder(1, 1, 7)], vv(&[(1, 1)]));
        assert_eq!(h.values(), &[holder(2, 1, 9)]);
    }

    /// A small deterministic generator (no dependency): xorshift.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    /// A history of assignments made by three boxes that exchange some of them: each box
    /// applies a random subset of the others' (in each origin's order) before assigning.
    fn history(rng: &mut Rng) -> Vec<(Holder, VersionVector)> {
        let mut applied: Vec<VersionVector> = vec![VersionVector::default(); 3];
        let mut made: Vec<Vec<(Holder, VersionVector)>> = vec![Vec::new(); 3];
        for _ in 0..12 {
            let b = rng.below(3) as usize;
            // Catch up with part of another box's assignments, in its order.
            let other = rng.below(3) as usize;
            if other != b {
                let have = applied[b].get(other as NodeId + 1);
                let len = made[other].len() as u64;
                if len > have {
                    applied[b].advance(other as NodeId + 1, have + 1 + rng.below(len - have));
                }
            }
            let seq = made[b].len() as u64 + 1;
            let h = holder(b as NodeId + 1, seq, rng.below(4));
            let seen = applied[b].clone();
            applied[b].advance(b as NodeId + 1, seq);
            made[b].push((h, seen));
        }
        made.into_iter().flatten().collect()
    }

    #[test]
    fn any_order_and_any_duplication_of_the_same_assignments_gives_the_same_holders() {
        for seed in 1..400u64 {
            let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
            let ops = history(&mut rng);
            let mut reference = Holders::default();
            for (h, seen) in &ops {
                reference.apply(h.clone(), seen);
            }
            for _ in 0..5 {
                let mut shuffled = ops.clone();
                for i in (1..shuffled.len()).rev() {
                    shuffled.swap(i, rng.below(i as u64 + 1) as usize);
                }
                // Duplicates: some operations again, anywhere.
                for _ in 0..rng.below(6) {
                    let i = rng.below(ops.len() as u64) as usize;
                    let at = rng.below(shuffled.len() as u64 + 1) as usize;
                    shuffled.insert(at, ops[i].clone());
                }
                let mut h = Holders::default();
                for (v, seen) in &shuffled {
                    h.apply(v.clone(), seen);
                }
                assert_eq!(h, reference, "seed {seed}");
            }
            // Merging two halves applied separately (associativity through the stored state).
            let (left, right) = ops.split_at(ops.len() / 2);
            let mut a = Holders::default();
            for (v, seen) in left {
                a.apply(v.clone(), seen);
            }
            let mut b = Holders::from_parts(a.values().to_vec(), a.context().clone());
            for (v, seen) in right {
                b.apply(v.clone(), seen);
            }
            assert_eq!(b, reference, "seed {seed}");
            assert!(
                !reference.values().is_empty(),
                "the last assignment is never covered"
            );
            // A box that stores the register whenever applying changed it, and restarts from
            // what it stored at any point, ends the same.
            let cut = rng.below(ops.len() as u64) as usize;
            let mut live = Holders::default();
            let mut stored = Holders::default();
            for (i, (v, seen)) in ops.iter().enumerate() {
                if live.apply(v.clone(), seen).changed {
                    stored = live.clone();
                }
                if i == cut {
                    live = Holders::from_parts(stored.values().to_vec(), stored.context().clone());
                }
            }
            assert_eq!(live, reference, "seed {seed}: restarted at {cut}");
            // Folding: two halves' registers joined give the same as all applied to one.
            let mut left_h = Holders::default();
            let mut right_h = Holders::default();
            for (i, (v, seen)) in ops.iter().enumerate() {
                if i % 2 == 0 {
                    left_h.apply(v.clone(), seen);
                } else {
                    right_h.apply(v.clone(), seen);
                }
            }
            left_h.merge(&right_h);
            assert_eq!(left_h, reference, "seed {seed}: merged halves");
        }
    }
}
