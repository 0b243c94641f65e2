//! Dots, version vectors, and in-order delivery of replicated operations per origin.
//!
//! Each node numbers the operations it originates 1, 2, 3, … with no gaps; a [`Dot`] names
//! one. Seqs being dense, a [`VersionVector`] (per origin, the highest seq applied) covers
//! every dot up to it, and what one node lacks of another is a range per origin. Its binary
//! form's decoder never allocates from the count it reads.
//!
//! [`Inbox`] hands each item out once, by [`Inbox::pop_ready`], in seq order per origin
//! whatever the arrival order. Items beyond a gap wait, up to `max_buffered` held in total,
//! then are dropped ([`Offer::Full`]) to be asked for again. The next item of an origin is
//! never refused (that could stall it for good): at most one per origin exceeds the limit.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Serialize, Serializer};

pub type NodeId = u64;

/// One operation: the node that originated it and its seq there (from 1, dense per origin).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Dot {
    pub origin: NodeId,
    pub seq: u64,
}

/// The binary form: the entry count (`u32` LE), then entries of origin and seq (`u64` LE).
const COUNT_BYTES: usize = 4;
const ENTRY_BYTES: usize = 16;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum VectorError {
    #[error("version vector truncated: {available} bytes, its entry count alone takes 4")]
    Truncated { available: usize },
    #[error("version vector claims {count} entries, more than its {available} bytes hold")]
    CountTooLarge { count: u32, available: usize },
    #[error("version vector entry for origin {origin:016x} is out of order, repeated or zero")]
    NonCanonical { origin: NodeId },
}

/// Per origin, the highest seq applied. Origins at 0 are absent, so `==` means equal content.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VersionVector(BTreeMap<NodeId, u64>);

impl VersionVector {
    /// The highest seq applied from `origin`, 0 if none.
    pub fn get(&self, origin: NodeId) -> u64 {
        self.0.get(&origin).copied().unwrap_or(0)
    }

    /// Whether the operation `dot` is applied (a seq of 0, which names none, is covered).
    pub fn covers(&self, dot: Dot) -> bool {
        dot.seq <= self.get(dot.origin)
    }

    /// Raises `origin` to `seq`; never lowers it.
    pub fn advance(&mut self, origin: NodeId, seq: u64) {
        if seq > self.get(origin) {
            self.0.insert(origin, seq);
        }
    }

    /// Pointwise maximum.
    pub fn merge(&mut self, other: &VersionVector) {
        for (origin, seq) in other.iter() {
            self.advance(origin, seq);
        }
    }

    /// `(origin, seq)` in ascending origin order.
    pub fn iter(&self) -> impl Iterator<Item = (NodeId, u64)> + '_ {
        self.0.iter().map(|(&origin, &seq)| (origin, seq))
    }

    /// What `self` lacks of `other`: per origin where `other` is ahead, the inclusive range
    /// `(origin, first, last)` of seqs to fetch.
    pub fn missing_from(&self, other: &VersionVector) -> Vec<(NodeId, u64, u64)> {
        other
            .iter()
            .filter(|&(origin, seq)| seq > self.get(origin))
            .map(|(origin, seq)| (origin, self.get(origin) + 1, seq))
            .collect()
    }

    /// Appends the binary form: the entry count (`u32` LE), then per entry in ascending
    /// origin order the origin and the seq (`u64` LE each).
    pub fn encode(&self, buf: &mut Vec<u8>) {
        let count = u32::try_from(self.0.len())
            .expect("invariant: a version vector has fewer than 2^32 origins");
        buf.reserve(COUNT_BYTES + self.0.len() * ENTRY_BYTES);
        buf.extend_from_slice(&count.to_le_bytes());
        for (origin, seq) in self.iter() {
            buf.extend_from_slice(&origin.to_le_bytes());
            buf.extend_from_slice(&seq.to_le_bytes());
        }
    }

    /// Reads the binary form from the start of `bytes`; returns the vector and the bytes it
    /// took (anything after is left to the caller). Refuses a count the input cannot hold
    /// before allocating anything, and entries that [`VersionVector::encode`] would not
    /// write (origins not strictly ascending, seq 0).
    pub fn decode(bytes: &[u8]) -> Result<(VersionVector, usize), VectorError> {
        let available = bytes.len();
        let (header, body) = bytes
            .split_first_chunk::<COUNT_BYTES>()
            .ok_or(VectorError::Truncated { available })?;
        let count = u32::from_le_bytes(*header);
        let entry_count = usize::try_from(count)
            .ok()
            .filter(|&entries| entries <= body.len() / ENTRY_BYTES)
            .ok_or(VectorError::CountTooLarge { count, available })?;
        let entries_len = entry_count * ENTRY_BYTES;
        let mut entries = BTreeMap::new();
        for entry in body[..entries_len].chunks_exact(ENTRY_BYTES) {
            let (origin, seq) = entry.split_at(ENTRY_BYTES / 2);
            let origin = u64::from_le_bytes(origin.try_into().expect("invariant: 8-byte half"));
            let seq = u64::from_le_bytes(seq.try_into().expect("invariant: 8-byte half"));
            let last_origin = entries.last_key_value().map(|(&last, _)| last);
            if seq == 0 || last_origin.is_some_and(|last| origin <= last) {
                return Err(VectorError::NonCanonical { origin });
            }
            entries.insert(origin, seq);
        }
        Ok((VersionVector(entries), COUNT_BYTES + entries_len))
    }
}

/// A JSON-friendly map: origin as 16 lowercase hex digits → seq.
impl Serialize for VersionVector {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let hex = |(origin, seq): (NodeId, u64)| (format!("{origin:016x}"), seq);
        serializer.collect_map(self.iter().map(hex))
    }
}

/// What [`Inbox::offer`] did with an item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Offer {
    /// Already applied or already held: dropped.
    Duplicate,
    /// The next one for its origin: [`Inbox::pop_ready`] hands it out.
    Ready,
    /// Beyond a gap: held until the items before it arrive.
    Buffered,
    /// Beyond a gap with the buffer full: dropped, to be asked for again.
    Full,
}

/// In-order delivery per origin, with the items beyond a gap held back.
#[derive(Debug)]
pub struct Inbox<T> {
    applied: VersionVector,
    /// Items offered and not yet popped, per origin by seq: ready and buffered alike. Every
    /// seq is above `applied` for its origin, and no origin has an empty map.
    held: BTreeMap<NodeId, BTreeMap<u64, T>>,
    /// The origins whose smallest held seq is the next one to apply.
    ready: BTreeSet<NodeId>,
    max_buffered: usize,
}

impl<T> Inbox<T> {
    /// `applied`: what this node already applied (items it covers are duplicates).
    pub fn new(applied: VersionVector, max_buffered: usize) -> Inbox<T> {
        Inbox {
            applied,
            held: BTreeMap::new(),
            ready: BTreeSet::new(),
            max_buffered,
        }
    }

    pub fn offer(&mut self, dot: Dot, item: T) -> Offer {
        let held = self.held.get(&dot.origin);
        if self.applied.covers(dot) || held.is_some_and(|items| items.contains_key(&dot.seq)) {
            return Offer::Duplicate;
        }
        // Not covered, so applied < seq and the addition cannot overflow.
        let is_next = dot.seq == self.applied.get(dot.origin) + 1;
        if !is_next && self.buffered() >= self.max_buffered {
            return Offer::Full;
        }
        let items = self.held.entry(dot.origin).or_default();
        items.insert(dot.seq, item);
        if is_next {
            self.ready.insert(dot.origin);
            Offer::Ready
        } else {
            Offer::Buffered
        }
    }

    /// The next item of some origin whose next item is held, marking it applied. Popping
    /// until `None` drains everything contiguous, in seq order per origin.
    pub fn pop_ready(&mut self) -> Option<(Dot, T)> {
        let origin = *self.ready.first()?;
        let ready_items = self.held.get_mut(&origin);
        let items = ready_items.expect("invariant: a ready origin has held items");
        let (seq, item) = items.pop_first().expect("invariant: non-empty map");
        self.applied.advance(origin, seq);
        let next_held = items.first_key_value();
        if !next_held.is_some_and(|(&following, _)| following == seq + 1) {
            self.ready.remove(&origin);
        }
        if items.is_empty() {
            self.held.remove(&origin);
        }
        Some((Dot { origin, seq }, item))
    }

    pub fn applied(&self) -> &VersionVector {
        &self.applied
    }

    /// Items held (ready or waiting behind a gap), all origins together. Origins are few
    /// (the nodes of a cluster), so counting per origin is cheap.
    pub fn buffered(&self) -> usize {
        self.held.values().map(BTreeMap::len).sum()
    }

    /// Per origin whose held items wait behind a gap, the inclusive range `(origin, first,
    /// last)` of seqs missing before them.
    pub fn gaps(&self) -> Vec<(NodeId, u64, u64)> {
        self.held
            .iter()
            .filter_map(|(&origin, items)| {
                let next = self.applied.get(origin) + 1;
                let (&smallest, _) = items.first_key_value()?;
                (smallest > next).then(|| (origin, next, smallest - 1))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::Offer::{Buffered, Duplicate, Full, Ready};
    use super::*;

    fn dot(origin: NodeId, seq: u64) -> Dot {
        Dot { origin, seq }
    }

    fn vector(entries: &[(NodeId, u64)]) -> VersionVector {
        VersionVector(entries.iter().copied().collect())
    }

    fn drain<T>(inbox: &mut Inbox<T>) -> Vec<(Dot, T)> {
        std::iter::from_fn(|| inbox.pop_ready()).collect()
    }

    #[test]
    fn version_vector_advances_merges_covers_and_lists_what_is_missing() {
        let mut left = vector(&[(1, 5), (2, 3)]);
        left.advance(1, 4);
        left.advance(3, 0);
        assert_eq!(left, vector(&[(1, 5), (2, 3)]));
        left.merge(&vector(&[(2, 7), (4, 1)]));
        assert_eq!(left.iter().collect::<Vec<_>>(), [(1, 5), (2, 7), (4, 1)]);
        assert!(left.covers(dot(1, 5)) && !left.covers(dot(1, 6)) && !left.covers(dot(9, 1)));
        let theirs = vector(&[(1, 8), (2, 4), (3, 2)]);
        assert_eq!(left.missing_from(&theirs), [(1, 6, 8), (3, 1, 2)]);
        assert_eq!(theirs.missing_from(&left), [(2, 5, 7), (4, 1, 1)]);
        assert!(left.missing_from(&left).is_empty());
    }

    #[test]
    fn encodes_round_trip_and_serialises_as_hex_origin_to_seq() {
        for original in [VersionVector::default(), vector(&[(10, 3), (u64::MAX, 1)])] {
            let mut buf = Vec::new();
            original.encode(&mut buf);
            buf.extend_from_slice(b"tail");
            let (decoded, consumed) = VersionVector::decode(&buf).expect("decodes");
            assert_eq!((decoded, &buf[consumed..]), (original, &b"tail"[..]));
        }
        let json = serde_json::to_string(&vector(&[(10, 3), (u64::MAX, 1)])).expect("json");
        assert_eq!(json, r#"{"000000000000000a":3,"ffffffffffffffff":1}"#);
    }

    #[test]
    fn decode_refuses_truncated_huge_and_non_canonical_input() {
        let mut buf = Vec::new();
        vector(&[(1, 5), (2, 3)]).encode(&mut buf);
        let count = 2;
        for available in 0..buf.len() {
            let refused = match available {
                0..=3 => VectorError::Truncated { available },
                _ => VectorError::CountTooLarge { count, available },
            };
            assert_eq!(VersionVector::decode(&buf[..available]), Err(refused));
        }
        let huge = [&u32::MAX.to_le_bytes()[..], &[0; 16]].concat();
        let (count, available) = (u32::MAX, 20);
        let refused = VectorError::CountTooLarge { count, available };
        assert_eq!(VersionVector::decode(&huge), Err(refused));
        let entry = [7u64.to_le_bytes(), 1u64.to_le_bytes()].concat();
        let repeated = [&2u32.to_le_bytes()[..], &entry, &entry].concat();
        let non_canonical = VectorError::NonCanonical { origin: 7 };
        assert_eq!(VersionVector::decode(&repeated), Err(non_canonical));
        let zero_seq = [&1u32.to_le_bytes()[..], &[0; 16]].concat();
        assert!(VersionVector::decode(&zero_seq).is_err());
    }

    #[test]
    fn duplicates_before_and_after_apply_are_dropped() {
        let mut inbox = Inbox::new(vector(&[(1, 2)]), 10);
        assert_eq!(inbox.offer(dot(1, 2), "applied before"), Duplicate);
        assert_eq!(inbox.offer(dot(1, 0), "seq zero"), Duplicate);
        assert_eq!(inbox.offer(dot(1, 3), "c"), Ready);
        assert_eq!(inbox.offer(dot(1, 3), "c again"), Duplicate);
        assert_eq!(inbox.offer(dot(1, 5), "e"), Buffered);
        assert_eq!(inbox.offer(dot(1, 5), "e again"), Duplicate);
        assert_eq!(drain(&mut inbox), [(dot(1, 3), "c")]);
        assert_eq!(inbox.offer(dot(1, 3), "c after apply"), Duplicate);
        assert_eq!(inbox.buffered(), 1);
    }

    #[test]
    fn out_of_order_arrival_pops_in_order() {
        let mut inbox = Inbox::new(VersionVector::default(), 10);
        assert_eq!(inbox.offer(dot(1, 3), "c"), Buffered);
        assert!(inbox.pop_ready().is_none());
        assert_eq!(inbox.offer(dot(1, 1), "a"), Ready);
        assert_eq!(inbox.offer(dot(1, 2), "b"), Buffered);
        assert_eq!(inbox.buffered(), 3);
        let popped = [(dot(1, 1), "a"), (dot(1, 2), "b"), (dot(1, 3), "c")];
        assert_eq!(drain(&mut inbox), popped);
        assert_eq!((inbox.applied(), inbox.buffered()), (&vector(&[(1, 3)]), 0));
    }

    #[test]
    fn gaps_report_what_is_missing_before_held_items() {
        let mut inbox = Inbox::new(vector(&[(1, 4)]), 10);
        let outcomes =
            [dot(1, 8), dot(1, 9), dot(2, 3), dot(3, 1)].map(|held| inbox.offer(held, ()));
        assert_eq!(outcomes, [Buffered, Buffered, Buffered, Ready]);
        assert_eq!(inbox.gaps(), [(1, 5, 7), (2, 1, 2)]);
        inbox.offer(dot(2, 1), ());
        assert_eq!(drain(&mut inbox).len(), 2);
        assert_eq!(inbox.gaps(), [(1, 5, 7), (2, 2, 2)]);
    }

    #[test]
    fn full_buffer_drops_items_beyond_a_gap_but_never_the_next_one() {
        let mut inbox = Inbox::new(vector(&[(2, u64::MAX - 1)]), 2);
        let offers = [dot(1, 3), dot(1, 4), dot(1, 5), dot(2, 2), dot(1, 1)];
        let outcomes = offers.map(|offered| inbox.offer(offered, ()));
        assert_eq!(outcomes, [Buffered, Buffered, Full, Duplicate, Ready]);
        assert_eq!((inbox.offer(dot(3, 2), ()), inbox.buffered()), (Full, 3));
        assert_eq!(inbox.offer(dot(2, u64::MAX), ()), Ready);
        assert_eq!(drain(&mut inbox).len(), 2);
        assert_eq!(inbox.offer(dot(1, 2), ()), Ready);
        assert_eq!(drain(&mut inbox).len(), 3);
        assert_eq!(inbox.offer(dot(1, 5), ()), Ready);
    }

    /// A deterministic pseudo-random number below `bound` (xorshift64).
    fn random_below(state: &mut u64, bound: usize) -> usize {
        *state ^= *state << 13;
        *state ^= *state >> 7;
        *state ^= *state << 17;
        (*state % bound as u64) as usize
    }

    #[test]
    fn random_order_with_duplicates_pops_each_seq_once_in_order() {
        const ORIGINS: [NodeId; 3] = [11, 22, 33];
        let mut random = 0x2545_F491_4F6C_DD1D_u64;
        for run in 0..500 {
            let last_seq = 1 + random_below(&mut random, 30) as u64;
            let max_buffered = 1 + random_below(&mut random, 12);
            let every_dot = (0..3 * last_seq).map(|n| dot(ORIGINS[n as usize % 3], 1 + n / 3));
            let mut deliveries: Vec<Dot> = every_dot.collect();
            for _ in 0..random_below(&mut random, deliveries.len()) {
                deliveries.push(deliveries[random_below(&mut random, deliveries.len())]);
            }
            for index in (1..deliveries.len()).rev() {
                deliveries.swap(index, random_below(&mut random, index + 1));
            }
            // Items refused as Full are delivered again later, as a peer asked for them would.
            let mut queue = std::collections::VecDeque::from(deliveries);
            let mut inbox = Inbox::new(VersionVector::default(), max_buffered);
            let mut popped: BTreeMap<NodeId, Vec<u64>> = BTreeMap::new();
            while let Some(delivery) = queue.pop_front() {
                if inbox.offer(delivery, delivery) == Full {
                    queue.push_back(delivery);
                }
                assert!(inbox.buffered() <= max_buffered + ORIGINS.len());
                while let Some((dot, item)) = inbox.pop_ready() {
                    assert_eq!(dot, item);
                    popped.entry(dot.origin).or_default().push(dot.seq);
                }
            }
            let expected: Vec<u64> = (1..=last_seq).collect();
            for origin in ORIGINS {
                assert_eq!(popped[&origin], expected, "run {run}");
            }
            assert_eq!((inbox.buffered(), inbox.gaps()), (0, vec![]));
        }
    }
}
