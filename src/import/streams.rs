//! Where each contact's stream of imported messages is cut into conversations. Pure: it
//! sees times, never a clock or a file.
//!
//! Systems such as go-fly keep no conversation entity: a visitor's messages are one stream.
//! A stream is cut wherever two of its messages are further apart than the gap (24 h by
//! default): the earlier conversation ends with its last message. At the end of the import,
//! each contact's last conversation ends too, unless its last message is more recent than the
//! gap: that customer may still be waiting, so it stays open for a person.
//!
//! Invariants: `Close` for a conversation comes before the first message of the next; a
//! message older than its contact's previous one is never cut off (nothing is lost to a clock
//! that went back).

use std::collections::HashMap;

/// What to do before a message, or at the end, for one contact.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Cut {
    /// The contact's current conversation ended at `at_ms` (its last message).
    Close { at_ms: i64 },
    /// The contact's last conversation is recent: it waits for a person.
    Hand { at_ms: i64 },
}

/// The last message time of every contact seen, and the gap that cuts.
#[derive(Debug)]
pub struct Streams<K> {
    gap_ms: i64,
    last: HashMap<K, i64>,
}

impl<K: std::hash::Hash + Eq + Clone> Streams<K> {
    pub fn new(gap_ms: i64) -> Self {
        Streams {
            gap_ms,
            last: HashMap::new(),
        }
    }

    /// A contact whose stream an earlier (interrupted) run imported up to `last_ms`.
    pub fn resume(&mut self, contact: K, last_ms: i64) {
        let slot = self.last.entry(contact).or_insert(last_ms);
        *slot = (*slot).max(last_ms);
    }

    /// A message of `contact` at `at_ms`: whether the previous conversation ends first. A
    /// message older than the contact's previous one (a clock that went back) goes into the
    /// current conversation and moves nothing.
    pub fn message(&mut self, contact: &K, at_ms: i64) -> Option<Cut> {
        match self.last.get_mut(contact) {
            Some(previous) => {
                let cut =
                    (at_ms - *previous > self.gap_ms).then_some(Cut::Close { at_ms: *previous });
                *previous = (*previous).max(at_ms);
                cut
            }
            None => {
                self.last.insert(contact.clone(), at_ms);
                None
            }
        }
    }

    /// Every contact's last conversation, at the end of the import (`now_ms`): closed, or
    /// handed to a person when its last message is within the gap of now.
    pub fn finish(self, now_ms: i64) -> impl Iterator<Item = (K, Cut)> {
        let gap = self.gap_ms;
        self.last.into_iter().map(move |(contact, at_ms)| {
            let cut = if now_ms - at_ms > gap {
                Cut::Close { at_ms }
            } else {
                Cut::Hand { at_ms }
            };
            (contact, cut)
        })
    }

    pub fn contacts(&self) -> usize {
        self.last.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: i64 = 3_600_000;

    #[test]
    fn a_gap_longer_than_the_cut_ends_the_conversation_at_its_last_message() {
        let mut s = Streams::new(24 * H);
        assert_eq!(s.message(&"v", 0), None);
        assert_eq!(s.message(&"v", 23 * H), None);
        // Exactly the gap is not more than it.
        assert_eq!(s.message(&"v", 47 * H), None);
        assert_eq!(
            s.message(&"v", 47 * H + 24 * H + 1),
            Some(Cut::Close { at_ms: 47 * H })
        );
        // Another contact's stream is its own.
        assert_eq!(s.message(&"w", 0), None);
    }

    #[test]
    fn a_message_older_than_the_previous_stays_in_the_conversation_and_moves_nothing() {
        let mut s = Streams::new(H);
        s.message(&"v", 10 * H);
        assert_eq!(s.message(&"v", 2 * H), None);
        assert_eq!(s.message(&"v", 10 * H + 1), None);
        assert_eq!(
            s.message(&"v", 12 * H),
            Some(Cut::Close { at_ms: 10 * H + 1 })
        );
    }
    #[test]
    fn at_the_end_old_conversations_close_and_recent_ones_wait_for_a_person() {
        let mut s = Streams::new(24 * H);
        s.message(&"old", 0);
        s.message(&"recent", 90 * H);
        let mut ends: Vec<_> = s.finish(100 * H).collect();
        ends.sort();
        assert_eq!(
            ends,
            vec![
                ("old", Cut::Close { at_ms: 0 }),
                ("recent", Cut::Hand { at_ms: 90 * H })
            ]
        );
    }

    #[test]
    fn a_resumed_stream_cuts_as_if_it_had_never_stopped() {
        let mut whole = Streams::new(24 * H);
        let times = [0, 5 * H, 40 * H, 41 * H, 90 * H];
        let cuts: Vec<_> = times.iter().map(|t| whole.message(&"v", *t)).collect();
        for split in 1..times.len() {
            let mut resumed = Streams::new(24 * H);
            resumed.resume("v", times[split - 1]);
            let after: Vec<_> = times[split..]
                .iter()
                .map(|t| resumed.message(&"v", *t))
                .collect();
            assert_eq!(after, cuts[split..].to_vec(), "split at {split}");
        }
    }
}
