//! The knowledge base in cluster mode: this box's puts and deletes stamped for the others,
//! and theirs applied by the rule of `cluster/kb_lww.rs` (last writer wins, tombstones).
//!
//! A local write's version is its stamp's HLC time and this node, the time raised above the
//! version of the entry it replaces (causal context: a write wins over whatever its writer
//! saw, even a version stamped by a box whose clock runs ahead). Another box's write that
//! supersedes what this box holds becomes a local `KbEntryPut` or `KbEntryDeleted` record
//! (the store and the API then hold it as if made here; the thread publishes the changed
//! knowledge base and retrains); one that does not changes nothing here.
//!
//! Invariant: `kb_versions` holds, per intent, the greatest version applied here, the same
//! versions the store's `kb_versions` table keeps (`store/replicated.rs`), which the
//! dispatcher reads back at start.

use std::sync::Arc;

use super::{Replica, Timestamp};
use crate::cluster::kb_lww::{Register, Version};
use crate::cluster::vector::NodeId;
use crate::cluster::wire::{Body, RemoteKb};
use crate::dispatch::ports::{Journal, Snapshot};
use crate::dispatch::{Decider, DispatchError};
use crate::op::Op;

/// The cluster body of a local knowledge-base record.
pub(super) fn kb_body(op: &Op) -> Body {
    let kb = match op {
        Op::KbEntryPut { entry, at_ms } => RemoteKb {
            intent: entry.intent.clone(),
            entry: Some(entry.clone()),
            at_ms: *at_ms,
        },
        Op::KbEntryDeleted { intent, at_ms } => RemoteKb {
            intent: intent.clone(),
            entry: None,
            at_ms: *at_ms,
        },
        _ => unreachable!("invariant: called for knowledge-base records only"),
    };
    Body::Kb(kb)
}

impl Replica {
    /// The HLC time of this node's write `kb`: the clock's, or just above the version the
    /// intent holds when that is later. Records the write as the intent's version.
    pub(super) fn kb_time(&mut self, kb: &RemoteKb, node: NodeId, wall_ms: u64) -> Timestamp {
        let now = self.hlc.now(wall_ms);
        let held = self.kb_versions.get(&kb.intent).map(|r| r.version.hlc);
        let time = now.max(Timestamp(held.map_or(0, |h| h.saturating_add(1))));
        let register = Register {
            version: Version {
                hlc: time.0,
                origin: node,
            },
            deleted: kb.entry.is_none(),
        };
        self.kb_versions.insert(kb.intent.clone(), register);
        time
    }
}

impl<J: Journal, S: Snapshot> Decider<J, S> {
    /// Applies another box's knowledge-base write of `version`, if it supersedes what this box
    /// holds of its intent.
    pub(super) fn apply_remote_kb(
        &mut self,
        kb: RemoteKb,
        version: Version,
    ) -> Result<(), DispatchError> {
        let replica = self.replica_mut();
        let held = replica.kb_versions.get(&kb.intent).map(|r| r.version);
        if !version.supersedes(held) {
            return Ok(());
        }
        let register = Register {
            version,
            deleted: kb.entry.is_none(),
        };
        replica.kb_versions.insert(kb.intent.clone(), register);
        match kb.entry {
            Some(entry) => {
                let changed = self.kb.with_changes(std::slice::from_ref(&entry), &[]);
                self.append(
                    Op::KbEntryPut {
                        entry,
                        at_ms: kb.at_ms,
                    },
                    None,
                )?;
                self.kb = Arc::new(changed);
            }
            None if self.kb.get(&kb.intent).is_some() => {
                let changed = self.kb.with_changes(&[], std::slice::from_ref(&kb.intent));
                self.append(
                    Op::KbEntryDeleted {
                        intent: kb.intent,
                        at_ms: kb.at_ms,
                    },
                    None,
                )?;
                self.kb = Arc::new(changed);
            }
            None => {}
        }
        Ok(())
    }
}

#[cfg(test)]
#[path = "kb_tests.rs"]
mod tests;
