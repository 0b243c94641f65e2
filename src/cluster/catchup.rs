//! The link's catch-up decisions, pure: which ranges this box lacks, whom to ask for each,
//! and when to ask again. The link reads the clock and does the publishing.
//!
//! A range is wanted when the inbox holds operations beyond a gap, or when a peer's vector
//! is ahead of this box's for some origin (never this box's own). It is asked of the origin
//! if the origin holds all of it, else of the peer that holds the most of it. One request per
//! origin is in flight at a time: the next range is asked once the previous is applied, or
//! once [`ASK_AGAIN`] has passed without it (an answer lost on the way).

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use super::vector::{NodeId, VersionVector};

/// A range asked for is asked again after this long if it has not arrived.
pub const ASK_AGAIN: Duration = Duration::from_secs(2);
/// Operations one request asks for at most (the answerer caps its answer the same way).
pub const ANSWER_OPS: u64 = 16_384;

/// "Send `origin`'s operations `first..=last`", to `target`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ask {
    pub target: NodeId,
    pub origin: NodeId,
    pub first: u64,
    pub last: u64,
}

/// A peer as the planner sees it.
pub struct PeerState<'a> {
    pub node: NodeId,
    pub vector: &'a VersionVector,
    pub online: bool,
}

/// The requests in flight, per origin: the last seq asked for and when.
#[derive(Default)]
pub struct Asked(HashMap<NodeId, (u64, Instant)>);

impl Asked {
    /// The requests to send now, remembered as in flight.
    pub fn plan(
        &mut self,
        me: NodeId,
        mine: &VersionVector,
        gaps: &[(NodeId, u64, u64)],
        peers: &[PeerState<'_>],
        now: Instant,
    ) -> Vec<Ask> {
        let mut wanted: BTreeMap<NodeId, (u64, u64)> = BTreeMap::new();
        for &(origin, first, last) in gaps {
            wanted.insert(origin, (first, last));
        }
        for peer in peers {
            for (origin, first, last) in mine.missing_from(peer.vector) {
                if origin == me {
                    continue;
                }
                let w = wanted.entry(origin).or_insert((first, last));
                w.1 = w.1.max(last);
            }
        }
        let mut asks = Vec::new();
        for (origin, (first, last)) in wanted {
            if let Some((asked_last, at)) = self.0.get(&origin) {
                if first <= *asked_last && now.duration_since(*at) < ASK_AGAIN {
                    continue;
                }
            }
            let Some(target) = holder(origin, last, mine.get(origin), peers) else {
                continue;
            };
            let last = last.min(first + ANSWER_OPS - 1);
            self.0.insert(origin, (last, now));
            asks.push(Ask {
                target,
                origin,
                first,
                last,
            });
        }
        asks
    }
}

/// A peer that holds `origin` up to `last`: the origin itself if it does, else the one that
/// holds the most of it beyond `applied` (online ones first).
fn holder(origin: NodeId, last: u64, applied: u64, peers: &[PeerState<'_>]) -> Option<NodeId> {
    if peers
        .iter()
        .any(|p| p.node == origin && p.vector.get(origin) >= last)
    {
        return Some(origin);
    }
    peers
        .iter()
        .filter(|p| p.vector.get(origin) > applied)
        .max_by_key(|p| (p.vector.get(origin), p.online, p.node))
        .map(|p| p.node)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ME: NodeId = 1;
    const A: NodeId = 2;
    const B: NodeId = 3;

    fn vv(entries: &[(NodeId, u64)]) -> VersionVector {
        let mut v = VersionVector::default();
        for &(o, s) in entries {
            v.advance(o, s);
        }
        v
    }

    #[test]
    fn a_gap_is_asked_of_its_origin_and_not_again_while_the_answer_is_on_its_way() {
        let t0 = Instant::now();
        let mine = vv(&[(A, 4)]);
        let a = vv(&[(A, 9)]);
        let peers = [PeerState {
            node: A,
            vector: &a,
            online: true,
        }];
        let mut asked = Asked::default();
        let ask = asked.plan(ME, &mine, &[(A, 5, 7)], &peers, t0);
        assert_eq!(
            ask,
            [Ask {
                target: A,
                origin: A,
                first: 5,
                last: 9
            }],
            "the gap and what the origin has beyond it, at once"
        );
        assert!(asked
            .plan(
                ME,
                &mine,
                &[(A, 5, 7)],
                &peers,
                t0 + Duration::from_millis(500)
            )
            .is_empty());
        // Overdue: asked again.
        assert_eq!(
            asked
                .plan(ME, &mine, &[(A, 5, 7)], &peers, t0 + ASK_AGAIN)
                .len(),
            1
        );
    }

    #[test]
    fn the_next_range_is_asked_as_soon_as_the_previous_one_is_applied() {
        let t0 = Instant::now();
        let a = vv(&[(A, 3 * ANSWER_OPS)]);
        let peers = [PeerState {
            node: A,
            vector: &a,
            online: true,
        }];
        let mut asked = Asked::default();
        let first = asked.plan(ME, &vv(&[]), &[], &peers, t0);
        assert_eq!((first[0].first, first[0].last), (1, ANSWER_OPS), "capped");
        let halfway = vv(&[(A, ANSWER_OPS / 2)]);
        assert!(asked.plan(ME, &halfway, &[], &peers, t0).is_empty());
        let done = vv(&[(A, ANSWER_OPS)]);
        let next = asked.plan(ME, &done, &[], &peers, t0);
        assert_eq!(
            (next[0].first, next[0].last),
            (ANSWER_OPS + 1, 2 * ANSWER_OPS)
        );
    }

    #[test]
    fn what_the_origin_does_not_hold_is_asked_of_the_peer_holding_most() {
        let t0 = Instant::now();
        // A (the origin) restarted from an old backup; B holds more of A's than A.
        let a = vv(&[(A, 2)]);
        let b = vv(&[(A, 8)]);
        let peers = [
            PeerState {
                node: A,
                vector: &a,
                online: true,
            },
            PeerState {
                node: B,
                vector: &b,
                online: true,
            },
        ];
        let ask = Asked::default().plan(ME, &vv(&[]), &[], &peers, t0);
        assert_eq!(ask[0].target, B);
        assert_eq!((ask[0].first, ask[0].last), (1, 8));
    }

    #[test]
    fn nothing_is_asked_of_this_box_own_operations_or_of_nobody() {
        let t0 = Instant::now();
        // A peer claims more of this box's operations than this box has: never asked.
        let a = vv(&[(ME, 50)]);
        let peers = [PeerState {
            node: A,
            vector: &a,
            online: true,
        }];
        assert!(Asked::default()
            .plan(ME, &vv(&[(ME, 10)]), &[], &peers, t0)
            .is_empty());
        // A gap nobody holds: nothing to ask yet.
        assert!(Asked::default()
            .plan(ME, &vv(&[]), &[(B, 1, 3)], &[], t0)
            .is_empty());
    }
}
