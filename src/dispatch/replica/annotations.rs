//! Conversation labels and customer ratings in cluster mode: this box's stamped for the
//! others, theirs given a conversation here. Each is a last-writer-wins register per
//! conversation (version: the operation's HLC time, then its origin), which the store applies
//! from the `Replicated` record, this box's and the others' alike
//! (`store/replicated_annotations.rs`): the dispatcher holds neither labels nor ratings.
//!
//! A label set travels by the labels' names and colours, read from the store's definitions
//! (label ids are each box's own; a label deleted since is left out). A local write's version
//! is the clock's time, raised above the version the store holds for the conversation (causal
//! context: it wins over what the agent saw, even a write of a box whose clock runs ahead). A
//! write applied here that the store had not yet shown may still win over it; the store then
//! shows that one, here as everywhere.
//!
//! Invariant: every `ConversationLabeled` and `ConversationRated` record made here is followed
//! by its stamp; another box's is applied to the conversation its key names here (a copy made
//! from the contact if this box had none, as for a message).

use super::{Decider, DispatchError, Replica, Timestamp};
use crate::cluster::kb_lww::Version;
use crate::cluster::wire::{Body, LabelName, RemoteLabels, RemoteRating, BODY_LABELS, BODY_RATING};
use crate::dispatch::ports::{Journal, Snapshot};
use crate::dispatch::state::Now;
use crate::model::{ContactId, ConversationId};
use crate::op::Op;

impl Replica {
    /// The HLC time of this node's label or rating write: the clock's, or just above the
    /// version the store holds when that is later.
    pub(super) fn annotation_time(&mut self, held: Option<Version>, wall_ms: u64) -> Timestamp {
        let now = self.hlc.now(wall_ms);
        now.max(Timestamp(held.map_or(0, |h| h.hlc.saturating_add(1))))
    }
}

impl<J: Journal, S: Snapshot> Decider<J, S> {
    /// The cluster body of a local label or rating record.
    pub(super) fn annotation_body(&self, op: &Op) -> Result<Body, DispatchError> {
        match op {
            Op::ConversationLabeled {
                conversation,
                labels,
                at_ms,
                ..
            } => {
                let mut labels: Vec<LabelName> = (self.store.labels(labels)?.into_iter())
                    .map(|l| LabelName {
                        name: l.name,
                        color: l.color,
                    })
                    .collect();
                labels.sort();
                Ok(Body::Labels(RemoteLabels {
                    conversation: self.key_of(*conversation)?,
                    contact: self.home_identity(self.contact_of(*conversation)?)?,
                    labels,
                    at_ms: *at_ms,
                }))
            }
            Op::ConversationRated {
                conversation,
                score,
                comment,
                at_ms,
            } => Ok(Body::Rating(RemoteRating {
                conversation: self.key_of(*conversation)?,
                contact: self.home_identity(self.contact_of(*conversation)?)?,
                score: *score,
                comment: comment.clone(),
                at_ms: *at_ms,
            })),
            _ => unreachable!("invariant: called for label and rating records only"),
        }
    }

    /// Another box's label set or rating: the conversation it names is made here if missing
    /// (the store then applies the write by its version).
    pub(super) fn apply_remote_annotation(
        &mut self,
        body: &Body,
        now: Now,
    ) -> Result<(), DispatchError> {
        let (key, contact) = match body {
            Body::Labels(l) => (l.conversation, &l.contact),
            Body::Rating(r) => (r.conversation, &r.contact),
            _ => unreachable!("invariant: called for label and rating bodies only"),
        };
        self.local_conversation(key, contact, now).map(drop)
    }

    /// The version the store holds of the register a local label or rating body writes.
    pub(super) fn annotation_held(&self, body: &Body) -> Result<Option<Version>, DispatchError> {
        let (key, kind) = match body {
            Body::Labels(l) => (l.conversation, BODY_LABELS),
            Body::Rating(r) => (r.conversation, BODY_RATING),
            _ => return Ok(None),
        };
        self.store.annotation_version(key, kind)
    }

    /// The contact `conversation` belongs to (in memory, or as the store holds it).
    fn contact_of(&self, conversation: ConversationId) -> Result<ContactId, DispatchError> {
        if let Some(state) = self.conversations.get(&conversation) {
            return Ok(state.contact);
        }
        let state = self
            .store
            .conversation(conversation)?
            .ok_or(DispatchError::NotFound(conversation))?;
        Ok(state.contact)
    }
}
