//! Cluster mode in the dispatcher: stamping this box's operations for the other boxes, and
//! applying theirs (see `crate::cluster`).
//!
//! A local message (customer, agent, bot, note), an agent's resolve or reopen, an assignment,
//! a contact link or edit, a knowledge-base write and a delivery report get a dot (this node,
//! the next seq) and a hybrid-logical-clock time, and are journaled a second time
//! as an [`Op::Replicated`] in global terms, right after the record itself: published after
//! the batch's fsync, stored for other boxes that ask for it. Another box's operations arrive
//! here in seq order per origin (the link's inbox sees to it), and become local records the
//! same way a local command's do, followed by their own `Replicated` record.
//!
//! Merge rules (each box applies the same rules to the same set, in any order):
//! - Messages and notes are a grow-only set keyed by dot; nothing is deleted. Each gets a
//!   local id on arrival (the visitor's `after=N` stays local and monotonic).
//! - A conversation is named by its home box and that box's id ([`ConvKey`]); another box's
//!   conversation becomes a copy here (`ConversationHomed`, joined), or, when the contact
//!   already has an open conversation here, is folded into it (not joined): one open
//!   conversation per contact, nothing lost.
//! - A resolve carries the vector its box had applied: it does not close a conversation
//!   holding a customer message it had not seen (that message reopens it where the resolve
//!   came first). A customer message reopens a resolved conversation, as on one box.
//! - Only a conversation's home box runs its bot and queue; replies to its customer go out
//!   through the home box's channels (the store makes outbox rows only for non-copies).
//! - Contact links and contacts' names and details: see `replica/contacts.rs`.
//! - Who holds a conversation: a multi-value register, conflicts kept until settled
//!   (`replica/holders.rs`, `cluster/register.rs`); the other boxes' agents take part in this
//!   box's queue (`replica/elsewhere.rs`).
//! - Knowledge-base entries: last writer wins, deletes leave tombstones (`replica/kb.rs`,
//!   `cluster/kb_lww.rs`). Delivery outcomes: a max-lattice per message (`replica/delivery.rs`,
//!   `cluster/outcome.rs`), joined by the store. Conversation labels (by name) and ratings:
//!   last writer wins per conversation, applied by the store (`replica/annotations.rs`).
//!
//! Invariant: `applied` covers exactly the dots journaled here (its own and others'), and
//! every origin's are journaled in seq order.

use std::collections::HashMap;

use smallvec::SmallVec;

use super::ports::{Journal, Snapshot};
use super::state::Now;
use super::{Decider, DispatchError};
use crate::cluster::hlc::{Hlc, Observed, Timestamp};
use crate::cluster::kb_lww::{Register, Version};
use crate::cluster::register::{Holder, Holders};
use crate::cluster::vector::{Dot, NodeId, VersionVector};
use crate::cluster::wire::{Body, ConvKey, Operation, RemoteAssign, RemoteMessage, RemoteStatus};
use crate::conversation::{Event, Status};
use crate::model::{ContactId, ConversationId, Identity, Lsn, MessageId, Sender};
use crate::op::{MessageAdded, Op, Replicated};
use crate::store::queries::ClusterStartup;

/// What the dispatcher keeps for cluster mode.
pub(crate) struct Replica {
    pub(super) node: NodeId,
    next_seq: u64,
    hlc: Hlc,
    applied: VersionVector,
    /// Which conversation here each cluster name names, for conversations not closed
    /// (`names.rs`; the store has the rest).
    pub(in crate::dispatch) names: names::Names,
    /// Per conversation not closed, the highest customer-message seq of each origin.
    tips: HashMap<ConversationId, SmallVec<[(NodeId, u64); 2]>>,
    /// Per conversation not closed, the highest HLC time of its messages, from any box: a
    /// message written here comes after it, even when a box whose clock runs ahead wrote it
    /// (the clock itself is not dragged that far), so every box lists it after.
    floors: HashMap<ConversationId, u64>,
    /// Per conversation not closed that someone holds: who, across the boxes
    /// (`holders.rs`; an assignment of a conversation closed here is not applied).
    holders: HashMap<ConversationId, Holders>,
    /// The other boxes' agents in the scheduler (`elsewhere.rs`).
    elsewhere: elsewhere::Elsewhere,
    /// Set while another box's operation is being applied: its records are not stamped again.
    applying_remote: bool,
    /// Contacts' name-and-details register versions the store may not have yet
    /// (`replica/versions.rs`; the store has the rest).
    pub(in crate::dispatch) versions: versions::Versions,
    /// Per intent, the version of the knowledge-base write it holds (or its tombstone).
    kb_versions: HashMap<String, Register>,
}

impl Replica {
    pub(crate) fn start(node: NodeId, max_clock_ahead_ms: u64, stored: ClusterStartup) -> Self {
        let mut applied = VersionVector::default();
        for (origin, seq) in stored.applied {
            applied.advance(origin, seq);
        }
        let mut tips: HashMap<ConversationId, SmallVec<[(NodeId, u64); 2]>> = HashMap::new();
        for (conversation, origin, seq) in stored.customer_tips {
            tips.entry(conversation).or_default().push((origin, seq));
        }
        Replica {
            node,
            next_seq: applied.get(node) + 1,
            hlc: Hlc::resume(Timestamp(stored.max_hlc), max_clock_ahead_ms),
            applied,
            names: names::Names::from_stored(stored.homes),
            tips,
            floors: stored.message_floors.into_iter().collect(),
            holders: stored.holders.into_iter().collect(),
            elsewhere: elsewhere::Elsewhere::default(),
            applying_remote: false,
            versions: versions::Versions::default(),
            kb_versions: stored.kb_versions.into_iter().collect(),
        }
    }

    /// How many per-conversation and per-contact entries are held: names, customer-message
    /// tips, floors and holders of conversations not closed, register versions the store has
    /// not applied (the knowledge base's, bounded by its size, are not counted).
    pub(super) fn entries(&self) -> usize {
        self.names.len()
            + self.tips.len()
            + self.floors.len()
            + self.holders.len()
            + self.versions.len()
    }

    /// Whether another box's operation is being applied (its records are glued to the
    /// Replicated record that closes them).
    pub(super) fn applying_remote(&self) -> bool {
        self.applying_remote
    }

    fn note_customer_message(&mut self, conversation: ConversationId, origin: NodeId, seq: u64) {
        let tips = self.tips.entry(conversation).or_default();
        match tips.iter_mut().find(|(o, _)| *o == origin) {
            Some((_, s)) => *s = (*s).max(seq),
            None => tips.push((origin, seq)),
        }
    }

    /// Whether `conversation` holds a customer message that `seen` does not cover.
    fn has_unseen_customer_message(
        &self,
        conversation: ConversationId,
        seen: &VersionVector,
    ) -> bool {
        self.tips
            .get(&conversation)
            .is_some_and(|t| t.iter().any(|(origin, seq)| *seq > seen.get(*origin)))
    }

    /// The HLC time for a message of `conversation` written here: the clock's, or just after
    /// the conversation's latest message when that is later (written by a box ahead).
    fn message_time(&mut self, conversation: ConversationId, at_ms: u64) -> Timestamp {
        let now = self.hlc.now(at_ms);
        let floor = self.floors.entry(conversation).or_default();
        let time = now.max(Timestamp(floor.saturating_add(1)));
        *floor = time.0;
        time
    }

    /// Another box's message of `conversation`, at HLC time `hlc`.
    fn note_message_time(&mut self, conversation: ConversationId, hlc: Timestamp) {
        let floor = self.floors.entry(conversation).or_default();
        *floor = (*floor).max(hlc.0);
    }

    /// A conversation closed for good here (`last`: the last LSN journaled) needs no tips or
    /// floor any more, and its names only until the store has them.
    pub(super) fn forget(&mut self, conversation: ConversationId, last: Lsn) {
        self.names.closed(conversation, last);
        self.tips.remove(&conversation);
        self.floors.remove(&conversation);
        self.holders.remove(&conversation);
    }
}

/// Drops a state machine refusal: another box's operation is applied whatever this box's
/// status says (the message is kept; only the status change is not made).
fn tolerate_refusal(result: Result<Option<Lsn>, DispatchError>) -> Result<(), DispatchError> {
    match result {
        Ok(_) | Err(DispatchError::Refused(_)) => Ok(()),
        Err(e) => Err(e),
    }
}

impl<J: Journal, S: Snapshot> Decider<J, S> {
    fn replica_mut(&mut self) -> &mut Replica {
        self.replica
            .as_mut()
            .expect("invariant: called only in cluster mode")
    }

    /// The cluster bodies for a local record the other boxes take (computed before the record
    /// is appended, from the state it was decided in): a message; a resolve or reopen; an
    /// assignment to one of this box's agents (a status change can be both: a reopen).
    pub(super) fn cluster_bodies(&mut self, op: &Op) -> Result<SmallVec<[Body; 2]>, DispatchError> {
        let mut bodies = SmallVec::new();
        let Some(replica) = self.replica.as_ref().filter(|r| !r.applying_remote) else {
            return Ok(bodies);
        };
        match op {
            Op::MessageAdded(m) => {
                let contact = match &m.via {
                    Some(via) if m.sender == Sender::Visitor => via.clone(),
                    _ => self.home_identity(m.contact)?,
                };
                bodies.push(Body::Message(RemoteMessage {
                    conversation: self.key_of(m.conversation)?,
                    contact,
                    sender: m.sender,
                    client_id: m.client_id.clone(),
                    text: m.text.clone(),
                    at_ms: m.at_ms,
                    via: m.via.clone(),
                }));
            }
            Op::StatusChanged(s) => {
                let event = if s.by.is_none() {
                    None
                } else if s.to == Status::Resolved {
                    Some(Event::Resolve)
                } else if s.from == Status::Resolved && s.to.is_open() {
                    Some(Event::Reopen)
                } else {
                    None
                };
                let held_before = self.conversations[&s.conversation].assignee;
                let taken = s.assignee.filter(|a| held_before != Some(*a));
                if event.is_none() && taken.is_none() {
                    return Ok(bodies);
                }
                let contact = self.conversations[&s.conversation].contact;
                let contact = self.home_identity(contact)?;
                let key = self.key_of(s.conversation)?;
                if let Some(event) = event {
                    bodies.push(Body::Status(RemoteStatus {
                        conversation: key,
                        contact: contact.clone(),
                        event,
                        seen: replica.applied.clone(),
                        at_ms: s.at_ms,
                    }));
                }
                if let Some(agent) = taken {
                    bodies.push(self.assign_body(key, contact, agent, s.at_ms)?);
                }
            }
            Op::KbEntryPut { .. } | Op::KbEntryDeleted { .. } => bodies.push(kb::kb_body(op)),
            Op::Delivered { .. } | Op::DeliveryFailed { .. } => {
                bodies.extend(self.delivery_body(op)?)
            }
            Op::ConversationLabeled { .. } | Op::ConversationRated { .. } => {
                bodies.push(self.annotation_body(op)?)
            }
            other => bodies.extend(self.contact_body(other)?),
        }
        Ok(bodies)
    }

    /// The identity other boxes know a contact by: its first.
    fn home_identity(&self, contact: ContactId) -> Result<Identity, DispatchError> {
        if let Some(c) = self.contacts.get(&contact) {
            return Ok(c.identities[0].clone());
        }
        let stored = self.store.contact(contact, 0)?;
        stored
            .identities
            .into_iter()
            .next()
            .ok_or(DispatchError::NoSuchContact(contact))
    }

    /// Journals a local record's cluster body, with the next dot of this node.
    pub(super) fn stamp(
        &mut self,
        body: Body,
        record: Lsn,
        at_ms: i64,
        glue_next: bool,
    ) -> Result<(), DispatchError> {
        let register = match &body {
            Body::Details(d) => match self.contact_holding(&d.contact)? {
                Some(contact) => Some((contact, self.contact_version(contact)?)),
                None => None,
            },
            _ => None,
        };
        let conversation = match &body {
            Body::Message(RemoteMessage { conversation, .. })
            | Body::Assign(RemoteAssign { conversation, .. }) => {
                Some(self.record_conversation(*conversation)?)
            }
            _ => None,
        };
        let annotated = self.annotation_held(&body)?;
        let replica = self.replica_mut();
        let (origin, seq) = (replica.node, replica.next_seq);
        let wall = at_ms.max(0) as u64;
        let (hlc, message) = match &body {
            Body::Message(m) => {
                let conversation = conversation.expect("a message names its conversation");
                if m.sender == Sender::Visitor {
                    replica.note_customer_message(conversation, origin, seq);
                }
                (replica.message_time(conversation, wall), Some(record))
            }
            Body::Status(_) | Body::Assign(_) | Body::Link(_) | Body::Delivery(_) => {
                (replica.hlc.now(wall), None)
            }
            Body::Labels(_) | Body::Rating(_) => (replica.annotation_time(annotated, wall), None),
            Body::Details(_) => (replica.register_time(register, wall), None),
            Body::Kb(k) => (replica.kb_time(k, origin, wall), None),
        };
        if let (Body::Assign(a), Some(conversation)) = (&body, conversation) {
            let holder = Holder {
                dot: Dot { origin, seq },
                agent: a.agent,
                name: a.name.clone(),
            };
            self.hold(conversation, holder, &a.seen)?;
        }
        let stamped = Op::Replicated(Replicated {
            origin,
            seq,
            hlc: hlc.0,
            message,
            body: body.encode(),
        });
        if glue_next {
            self.journal.append_glued(stamped, None)?;
        } else {
            self.journal.append(stamped, None)?;
        }
        let replica = self.replica_mut();
        replica.next_seq += 1;
        replica.applied.advance(origin, seq);
        Ok(())
    }

    /// Applies other boxes' operations (each origin's in seq order; ones already applied are
    /// skipped). Answers the LSN of the last record journaled.
    pub(crate) fn replicate(
        &mut self,
        ops: Vec<Operation>,
        now: Now,
    ) -> Result<Lsn, DispatchError> {
        if self.replica.is_none() {
            return Err(DispatchError::Store("cluster mode is off".into()));
        }
        for op in ops {
            let replica = self.replica_mut();
            if replica.applied.covers(op.dot) || op.dot.origin == replica.node {
                continue;
            }
            if let Observed::TooFarAhead { ahead_ms } =
                replica.hlc.observe(op.hlc, now.wall_ms.max(0) as u64)
            {
                tracing::debug!(origin = op.dot.origin, ahead_ms, "a box's clock is ahead");
            }
            replica.applying_remote = true;
            let applied = self.apply_remote(&op, now);
            self.replica_mut().applying_remote = false;
            let message = match applied {
                Ok(message) => message,
                Err(DispatchError::Unavailable) => return Err(DispatchError::Unavailable),
                Err(e) => {
                    tracing::warn!(origin = op.dot.origin, seq = op.dot.seq, error = %e,
                        "a cluster operation could not be applied here; kept for the others");
                    None
                }
            };
            self.journal.append(
                Op::Replicated(Replicated {
                    origin: op.dot.origin,
                    seq: op.dot.seq,
                    hlc: op.hlc.0,
                    message,
                    body: op.body,
                }),
                None,
            )?;
            self.replica_mut()
                .applied
                .advance(op.dot.origin, op.dot.seq);
        }
        Ok(self.journal.last())
    }

    fn apply_remote(
        &mut self,
        op: &Operation,
        now: Now,
    ) -> Result<Option<MessageId>, DispatchError> {
        let body = Body::decode(&op.body).map_err(|e| {
            DispatchError::Store(format!("a cluster operation this version cannot read: {e}"))
        })?;
        match body {
            Body::Message(m) => {
                let conversation = self.local_conversation(m.conversation, &m.contact, now)?;
                let (contact, in_memory) = self.conversation_contact(conversation, now)?;
                let event = match m.sender {
                    Sender::Visitor => Some(Event::CustomerMessage),
                    Sender::Agent => Some(Event::AgentReply),
                    Sender::Bot | Sender::Note => None,
                };
                if let Some(event) = event.filter(|_| in_memory) {
                    let assignee = self.conversations[&conversation].assignee;
                    tolerate_refusal(self.change_status(conversation, event, assignee, None, now))?;
                }
                let audience = match m.sender {
                    Sender::Note => None,
                    _ => self.contacts.get(&contact).map(|c| c.identities.clone()),
                };
                let lsn = self.append(
                    Op::MessageAdded(MessageAdded {
                        conversation,
                        contact,
                        sender: m.sender,
                        agent: None,
                        // Client ids are the origin box's to keep: two boxes' could collide.
                        client_id: None,
                        text: m.text,
                        at_ms: m.at_ms,
                        attachment: None,
                        via: m.via,
                    }),
                    audience,
                )?;
                let replica = self.replica_mut();
                replica.note_message_time(conversation, op.hlc);
                if m.sender == Sender::Visitor {
                    replica.note_customer_message(conversation, op.dot.origin, op.dot.seq);
                }
                Ok(Some(lsn))
            }
            Body::Status(s) => {
                let conversation = self.local_conversation(s.conversation, &s.contact, now)?;
                let (_, in_memory) = self.conversation_contact(conversation, now)?;
                let unseen = self
                    .replica_mut()
                    .has_unseen_customer_message(conversation, &s.seen);
                match s.event {
                    Event::Resolve if in_memory && !unseen => tolerate_refusal(
                        self.change_status(conversation, Event::Resolve, None, None, now),
                    )?,
                    Event::Reopen if in_memory => tolerate_refusal(self.change_status(
                        conversation,
                        Event::Reopen,
                        None,
                        None,
                        now,
                    ))?,
                    _ => {}
                }
                Ok(None)
            }
            Body::Assign(a) => {
                let conversation = self.local_conversation(a.conversation, &a.contact, now)?;
                // Closed here for good: its next customer message opens a new one; nobody
                // holds this one any more.
                if !self.conversation_contact(conversation, now)?.1 {
                    return Ok(None);
                }
                let holder = Holder {
                    dot: op.dot,
                    agent: a.agent,
                    name: a.name,
                };
                if self.hold(conversation, holder, &a.seen)? {
                    self.follow_holders(conversation, now)?;
                }
                Ok(None)
            }
            Body::Link(link) => self.apply_link(link, now).map(|()| None),
            Body::Details(write) => self
                .apply_details(write, (op.hlc.0, op.dot.origin), now)
                .map(|()| None),
            Body::Kb(k) => {
                let version = Version {
                    hlc: op.hlc.0,
                    origin: op.dot.origin,
                };
                self.apply_remote_kb(k, version)?;
                Ok(None)
            }
            // The store joins it into what it shows (`store/replicated.rs`).
            Body::Delivery(_) => Ok(None),
            Body::Labels(_) | Body::Rating(_) => {
                self.apply_remote_annotation(&body, now).map(|()| None)
            }
        }
    }

    /// The conversation here that `key` names: this box's own, a known copy, or a new copy
    /// (or the contact's open conversation, which the other box's is folded into).
    fn local_conversation(
        &mut self,
        key: ConvKey,
        identity: &Identity,
        now: Now,
    ) -> Result<ConversationId, DispatchError> {
        let own = key.home == self.replica_mut().node;
        // One of this box's own in memory is not closed, so it was not folded into another:
        // it is itself, without a read of the store.
        if own && self.conversations.contains_key(&key.id) {
            return Ok(key.id);
        }
        // Else, first: a conversation of this box's own may have been folded into another.
        if let Some(conversation) = self.named(key)? {
            return Ok(conversation);
        }
        if own {
            return Ok(key.id);
        }
        let contact = match self.lookup_identity(identity, now)? {
            Some(contact) => contact,
            None => self.create_contact(identity.clone(), now)?,
        };
        let current = self.contacts[&contact].current;
        let open = current.filter(|c| {
            self.conversations
                .get(c)
                .is_some_and(|s| s.status.is_open())
        });
        let (conversation, joined) = match (open, current) {
            (Some(open), _) => (open, false),
            (None, Some(resolved)) => {
                // The contact's resolved conversation closes: the new one is its only one.
                tolerate_refusal(self.change_status(
                    resolved,
                    Event::IdleTimeout,
                    None,
                    None,
                    now,
                ))?;
                (self.open_conversation(contact, now)?, true)
            }
            (None, None) => (self.open_conversation(contact, now)?, true),
        };
        self.append(
            Op::ConversationHomed {
                conversation,
                home_node: key.home,
                home_id: key.id,
                joined,
            },
            None,
        )?;
        self.replica_mut().names.insert(key, conversation, joined);
        Ok(conversation)
    }

    /// `conversation`'s contact, and whether the conversation is in memory (not closed).
    fn conversation_contact(
        &mut self,
        conversation: ConversationId,
        now: Now,
    ) -> Result<(ContactId, bool), DispatchError> {
        match self.hydrate_conversation(conversation, Event::CustomerMessage, now) {
            Ok(()) => Ok((self.conversations[&conversation].contact, true)),
            Err(DispatchError::Refused(_)) => {
                let state = self
                    .store
                    .conversation(conversation)?
                    .ok_or(DispatchError::NotFound(conversation))?;
                Ok((self.resolve_linked(state.contact), false))
            }
            Err(e) => Err(e),
        }
    }
}

impl<J: Journal, S: Snapshot> Decider<J, S> {
    /// The local conversation a body stamped here names (its own, or a copy).
    fn record_conversation(&self, key: ConvKey) -> Result<ConversationId, DispatchError> {
        if key.home == self.replica.as_ref().expect("invariant: cluster mode").node {
            return Ok(key.id);
        }
        Ok(self.named(key)?.unwrap_or(key.id))
    }
}

mod annotations;
#[cfg(test)]
mod annotations_tests;
mod contacts;
#[cfg(test)]
mod contacts_tests;
mod delivery;
pub(super) mod elsewhere;
mod holders;
mod kb;
mod names;
#[cfg(test)]
mod tests;
mod versions;
