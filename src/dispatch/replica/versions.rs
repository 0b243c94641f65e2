//! Cluster mode: contacts' name-and-details register versions (see `contacts.rs`), read from
//! the store (`contact_versions`), with the versions written since the store's applied mark
//! held in memory over it.
//!
//! A version only grows (a write here is stamped after the one it replaces, another box's is
//! kept only when newer, a link keeps the greater of two), and each is written in memory
//! before the record that makes the store's row, so the one in memory is at least the
//! store's.
//!
//! Invariant: a version written here stays in memory until the store has applied every record
//! journaled by the command that wrote it; so what memory lacks, the store has, and memory
//! holds only what the store lags behind (not a version per contact ever seen).

use std::collections::{HashMap, VecDeque};

use super::super::ports::{Journal, Snapshot};
use super::super::{Decider, DispatchError};
use super::contacts::Version;
use crate::model::{ContactId, Lsn};

/// Written by the command under way: not journaled in full yet.
const PENDING: Lsn = Lsn::MAX;

/// The versions written that the store may not have yet.
#[derive(Default)]
pub(in crate::dispatch) struct Versions {
    /// Per contact, its version and the last LSN journaled by the command that wrote it.
    held: HashMap<ContactId, (Version, Lsn)>,
    /// Written by the command under way.
    fresh: Vec<ContactId>,
    /// Contacts written, in order, with that LSN (a contact written again is in twice; the
    /// earlier one is stale).
    order: VecDeque<(ContactId, Lsn)>,
}

impl Versions {
    /// `contact`'s version, if written since the store's applied mark.
    pub(super) fn get(&self, contact: ContactId) -> Option<Version> {
        self.held.get(&contact).map(|(v, _)| *v)
    }

    /// `contact`'s version is `version` now (never lower than it was).
    pub(super) fn write(&mut self, contact: ContactId, version: Version) {
        self.held.insert(contact, (version, PENDING));
        self.fresh.push(contact);
    }

    /// After a command whose last record is `last`: what it wrote waits for the store to
    /// apply that far; what the store has applied (up to `applied`) leaves memory.
    pub(in crate::dispatch) fn settle(&mut self, last: Lsn, applied: Lsn) {
        for contact in self.fresh.drain(..) {
            if let Some(held) = self.held.get_mut(&contact).filter(|h| h.1 == PENDING) {
                held.1 = last;
                self.order.push_back((contact, last));
            }
        }
        while let Some(&(contact, lsn)) = self.order.front() {
            // Later ones were written later still: the store has applied none of them either.
            if lsn > applied {
                break;
            }
            self.order.pop_front();
            if self.held.get(&contact).is_some_and(|h| h.1 == lsn) {
                self.held.remove(&contact);
            }
        }
    }

    /// How many versions are held in memory.
    pub(in crate::dispatch) fn len(&self) -> usize {
        self.held.len()
    }
}

impl<J: Journal, S: Snapshot> Decider<J, S> {
    /// `contact`'s register version: from memory, else from the store (`(0, 0)`: never
    /// written).
    pub(super) fn contact_version(&self, contact: ContactId) -> Result<Version, DispatchError> {
        let replica = self.replica.as_ref().expect("invariant: cluster mode");
        if let Some(version) = replica.versions.get(contact) {
            return Ok(version);
        }
        Ok(self.store.contact_version(contact)?.unwrap_or((0, 0)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_version_leaves_once_the_store_has_applied_the_command_that_wrote_it() {
        let mut v = Versions::default();
        v.write(1, (10, 7));
        v.settle(5, 4);
        assert_eq!(v.get(1), Some((10, 7)), "the store is at 4, the write at 5");
        v.write(1, (12, 7));
        v.write(2, (3, 9));
        v.settle(8, 5);
        assert_eq!(
            v.get(1),
            Some((12, 7)),
            "written again at 8: the entry at 5 is stale"
        );
        assert_eq!(v.len(), 2);
        v.write(2, (4, 9));
        assert_eq!(v.get(2), Some((4, 9)));
        v.settle(10, 8);
        assert_eq!(v.get(1), None, "the store has it");
        assert_eq!(v.get(2), Some((4, 9)), "written again at 10");
        v.settle(10, 10);
        assert_eq!(v.len(), 0);
    }
}
