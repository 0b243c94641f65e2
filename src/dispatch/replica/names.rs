//! Cluster mode: which conversation here each cluster name ([`ConvKey`]) names, held in memory
//! only for conversations not closed; the rest is read from the store when an operation names
//! it (`conversation_homes`, the store's copy of the same records).
//!
//! A name comes to name a conversation here when another box's conversation becomes a copy
//! here (joined) or is folded into one here, and when a conversation of this box's own is
//! folded into another; a link that folds one conversation into another moves every name of
//! the folded one to the kept one. All of these happen only to conversations not closed, and
//! a closed conversation never opens again: so the names of a closed conversation never
//! change, and the store's row for them is final once it has applied the record that closed
//! it.
//!
//! Invariant: every name of a conversation not closed is in memory; a closed conversation's
//! names leave memory only once the store has applied every record journaled up to its
//! closing (so a lookup that misses memory finds them in the store, and never makes a second
//! copy of a conversation).

use std::collections::{HashMap, VecDeque};

use smallvec::SmallVec;

use super::super::ports::{Journal, Snapshot};
use super::super::{Decider, DispatchError};
use super::ConvKey;
use crate::model::{ConversationId, Lsn};

/// The names held in memory, both ways.
#[derive(Default)]
pub(in crate::dispatch) struct Names {
    /// Each name held, and the conversation here it names.
    named: HashMap<ConvKey, ConversationId>,
    /// Per conversation named: its names, each with whether it is the copy's own (joined: the
    /// name this box's operations about it go by).
    names: HashMap<ConversationId, SmallVec<[(ConvKey, bool); 1]>>,
    /// Closed conversations still named in memory, in closing order, each with the last LSN
    /// journaled when it closed.
    closed: VecDeque<(ConversationId, Lsn)>,
}

impl Names {
    /// From the stored rows (home node, home id, conversation, joined) of the conversations
    /// not closed.
    pub(super) fn from_stored(rows: Vec<(u64, u64, ConversationId, bool)>) -> Self {
        let mut names = Names::default();
        for (home, id, conversation, joined) in rows {
            names.insert(ConvKey { home, id }, conversation, joined);
        }
        names
    }

    /// The conversation `key` names, if held in memory.
    pub(super) fn conversation(&self, key: ConvKey) -> Option<ConversationId> {
        self.named.get(&key).copied()
    }

    /// The name a copy held in memory goes by (`None`: not a copy, or not held).
    pub(super) fn copy_key(&self, conversation: ConversationId) -> Option<ConvKey> {
        self.names
            .get(&conversation)?
            .iter()
            .find(|(_, joined)| *joined)
            .map(|(key, _)| *key)
    }

    /// `key` names `conversation` (not closed) from now on.
    pub(super) fn insert(&mut self, key: ConvKey, conversation: ConversationId, joined: bool) {
        if let Some(was) = self.named.insert(key, conversation) {
            if let Some(names) = self.names.get_mut(&was) {
                names.retain(|(k, _)| *k != key);
            }
        }
        self.names
            .entry(conversation)
            .or_default()
            .push((key, joined));
    }

    /// `from` was folded into `into`: each of its names names `into` now, none as a copy's own.
    pub(super) fn fold(&mut self, from: ConversationId, into: ConversationId) {
        let Some(moved) = self.names.remove(&from) else {
            return;
        };
        for (key, _) in moved {
            self.insert(key, into, false);
        }
    }

    /// `conversation` closed for good, when `last` was the last LSN journaled: its names may
    /// leave once the store has applied that far.
    pub(super) fn closed(&mut self, conversation: ConversationId, last: Lsn) {
        if self.names.contains_key(&conversation) {
            self.closed.push_back((conversation, last));
        }
    }

    /// Lets go of the names of conversations closed up to `applied` (the store's mark).
    pub(in crate::dispatch) fn settle(&mut self, applied: Lsn) {
        while let Some(&(conversation, last)) = self.closed.front() {
            // Later ones closed later still: the store has applied none of them either.
            if last > applied {
                break;
            }
            self.closed.pop_front();
            for (key, _) in self.names.remove(&conversation).unwrap_or_default() {
                self.named.remove(&key);
            }
        }
    }

    /// A conversation some name held names (tests with one copy find it by this).
    #[cfg(test)]
    pub(in crate::dispatch) fn any_named(&self) -> Option<ConversationId> {
        self.named.values().next().copied()
    }

    /// How many names are held in memory.
    pub(in crate::dispatch) fn len(&self) -> usize {
        self.named.len()
    }
}

impl<J: Journal, S: Snapshot> Decider<J, S> {
    /// The conversation here that `key` names, from memory or else from the store (`None`:
    /// a conversation of this box never folded, or another box's never seen here).
    pub(super) fn named(&self, key: ConvKey) -> Result<Option<ConversationId>, DispatchError> {
        let replica = self.replica.as_ref().expect("invariant: cluster mode");
        match replica.names.conversation(key) {
            Some(conversation) => Ok(Some(conversation)),
            None => self.store.conversation_named(key),
        }
    }

    /// The name the other boxes know `conversation` by: a copy's home name, or this box's own.
    /// Memory holds every conversation not closed; only a closed one is looked up.
    pub(super) fn key_of(&self, conversation: ConversationId) -> Result<ConvKey, DispatchError> {
        let replica = self.replica.as_ref().expect("invariant: cluster mode");
        let stored = match replica.names.copy_key(conversation) {
            Some(key) => return Ok(key),
            None if self.conversations.contains_key(&conversation) => None,
            None => self.store.copy_key(conversation)?,
        };
        Ok(stored.unwrap_or(ConvKey {
            home: replica.node,
            id: conversation,
        }))
    }
}

#[cfg(test)]
mod tests;
