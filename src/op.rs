//! Operations: every state change the daemon makes, as it is written to the journal.
//!
//! An operation is appended (and fsync'd) before anything else sees it; the store, the live
//! subscribers and the acks are all derived from the committed sequence of operations. The
//! binary payload codec (`codec.rs`) is pure: `decode(kind, encode(op)) == op` for every op.
//!
//! Payload layout: fixed-width little-endian integers, strings as `u32 len | UTF-8 bytes`,
//! optional values as `u8 present | value`. Adding a field means adding a new kind; existing
//! kinds never change shape, so old journals stay readable.

use crate::cluster::register::Holder;
use crate::cluster::vector::VersionVector;
use crate::conversation::Status;
use crate::model::{AgentId, ClientId, ContactId, ConversationId, Identity, MessageId, Sender};

#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    ContactCreated {
        contact: ContactId,
        identity: Identity,
        at_ms: i64,
    },
    ConversationOpened {
        conversation: ConversationId,
        contact: ContactId,
        at_ms: i64,
    },
    MessageAdded(MessageAdded),
    StatusChanged(StatusChanged),
    /// A knowledge-base entry created or replaced (keyed by its intent name).
    KbEntryPut {
        entry: KbEntry,
        at_ms: i64,
    },
    KbEntryDeleted {
        intent: String,
        at_ms: i64,
    },
    /// The intent detected in a customer message (only while the knowledge base has entries).
    MessageClassified {
        message: MessageId,
        intent: String,
        /// The classification score, in 0..=1 (see `KnowledgeBase::classify`: the trained
        /// model's calibrated probability, or the nearest example's cosine).
        score: f32,
    },
    /// The conversation now waits for a person (the scheduler's queue), for `team`.
    HandedToHuman {
        conversation: ConversationId,
        team: String,
        reason: HandoffReason,
        at_ms: i64,
    },
    /// Contact `merged` is the same person as `keep`: its identities, conversations and
    /// messages become `keep`'s. When both had an open conversation, `folded` names the one
    /// whose messages moved into the other (from, into), which stays the only open one.
    ContactsLinked {
        keep: ContactId,
        merged: ContactId,
        folded: Option<(ConversationId, ConversationId)>,
        at_ms: i64,
    },
    /// Outbound messages their channel confirmed (an MQTT PUBACK, a webhook's 2xx).
    Delivered {
        messages: Vec<MessageId>,
        at_ms: i64,
    },
    /// An outbound message's channel refused it or could not be reached; `dead` once the
    /// outbox gave up on it (the dead-letter state).
    DeliveryFailed {
        message: MessageId,
        attempts: u32,
        dead: bool,
        error: String,
        at_ms: i64,
    },
    /// The wall clock stepped by `offset_ms` when kefud's time read `before_ms` (see
    /// `clock.rs`). Token expiries and upload times move by it; with `correct_since_ms`, so do
    /// the times of records from `correct_from_lsn` on that were stamped between then and
    /// `before_ms` by a clock that was not synchronised.
    ClockStepped {
        offset_ms: i64,
        before_ms: i64,
        correct_since_ms: Option<i64>,
        correct_from_lsn: u64,
        at_ms: i64,
    },
    /// Conversation `conversation` is this box's copy of the conversation another box of the
    /// cluster calls `home_id` (`home_node` is the box where its customer wrote): operations
    /// naming (`home_node`, `home_id`) apply to it here. `joined`: this box opened it for the
    /// other's (a copy, whose replies the home box's channels deliver); otherwise the other's
    /// was folded into this box's own open conversation of the same contact.
    ConversationHomed {
        conversation: ConversationId,
        home_node: u64,
        home_id: ConversationId,
        joined: bool,
    },
    /// A cluster operation (`cluster::wire::Body`, encoded) with its dot (`origin`, `seq`) and
    /// hybrid-logical-clock time: journaled beside the local records it made (or was made
    /// from), so that this box can serve it to the others and knows how far it has applied
    /// each origin.
    Replicated(Replicated),
    /// What is known about a contact besides its identities (an import brings it along):
    /// `name` as a person would address them, `details` a JSON object (city, addresses, where
    /// they came from). Replaces what was there.
    ContactDetails {
        contact: ContactId,
        name: String,
        details: String,
        at_ms: i64,
    },
    /// The labels an agent put on a conversation (ids of the shop's label definitions):
    /// replaces the set it had. An id whose definition was deleted since is kept here and
    /// ignored by the reads.
    ConversationLabeled {
        conversation: ConversationId,
        labels: Vec<u64>,
        by: AgentId,
        at_ms: i64,
    },
    /// The customer's rating of a resolved conversation: `score` 1 to 5 and an optional
    /// comment. A second rating of the same conversation replaces the first.
    ConversationRated {
        conversation: ConversationId,
        score: u8,
        comment: String,
        at_ms: i64,
    },
    /// Cluster mode: who holds `conversation` across the boxes after an assignment made here
    /// or on another box (`cluster::register`: several holders are a conflict), and the
    /// register's context. Replaces what was there.
    ConversationHeld {
        conversation: ConversationId,
        holders: Vec<Holder>,
        context: VersionVector,
    },
}

/// One cluster operation as journaled: see [`Op::Replicated`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replicated {
    pub origin: u64,
    pub seq: u64,
    pub hlc: u64,
    /// The local message it made or was made from, if it is a message.
    pub message: Option<MessageId>,
    pub body: Vec<u8>,
}

/// A knowledge-base entry: what customers ask (examples), the bot's answer, who handles it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KbEntry {
    pub intent: String,
    pub examples: Vec<String>,
    /// Empty: the bot never answers this intent itself, it routes it.
    pub answer: String,
    /// The team (skill) that handles it; empty for anyone.
    pub team: String,
}

/// Why a conversation went to a person.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandoffReason {
    /// The customer asked for one ("人工", "agent", ...).
    Asked,
    /// The best intent was below the bot's threshold, or has no answer.
    NotConfident,
    /// An agent's reply, or a manual assignment, took it out of the bot's hands.
    Taken,
}

impl HandoffReason {
    pub const fn as_str(self) -> &'static str {
        match self {
            HandoffReason::Asked => "asked",
            HandoffReason::NotConfident => "not_confident",
            HandoffReason::Taken => "taken",
        }
    }

    const fn code(self) -> u8 {
        match self {
            HandoffReason::Asked => 1,
            HandoffReason::NotConfident => 2,
            HandoffReason::Taken => 3,
        }
    }

    const fn from_code(code: u8) -> Option<Self> {
        match code {
            1 => Some(HandoffReason::Asked),
            2 => Some(HandoffReason::NotConfident),
            3 => Some(HandoffReason::Taken),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageAdded {
    pub conversation: ConversationId,
    pub contact: ContactId,
    pub sender: Sender,
    /// The agent who wrote it, for `Sender::Agent`.
    pub agent: Option<AgentId>,
    /// The sender's idempotency key, for messages that came with one.
    pub client_id: Option<ClientId>,
    pub text: String,
    pub at_ms: i64,
    /// An uploaded file (an image) the message carries: its upload id. Journaled as its own
    /// kind (`KIND_MESSAGE_WITH_ATTACHMENT`), so messages without one keep the original shape.
    pub attachment: Option<String>,
    /// The identity the message came in on (a customer's) or goes out to (a reply): its
    /// route. Journaled as `KIND_MESSAGE_ROUTED`; `None` only in records written before it.
    pub via: Option<Identity>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusChanged {
    pub conversation: ConversationId,
    pub from: Status,
    pub to: Status,
    /// Who holds the conversation after the change.
    pub assignee: Option<AgentId>,
    /// The agent who made the change; `None` for the customer or a timer.
    pub by: Option<AgentId>,
    pub at_ms: i64,
}

pub const KIND_CONTACT_CREATED: u8 = 1;
pub const KIND_CONVERSATION_OPENED: u8 = 2;
pub const KIND_MESSAGE_ADDED: u8 = 3;
pub const KIND_STATUS_CHANGED: u8 = 4;
pub const KIND_KB_ENTRY_PUT: u8 = 5;
pub const KIND_KB_ENTRY_DELETED: u8 = 6;
pub const KIND_MESSAGE_CLASSIFIED: u8 = 7;
pub const KIND_HANDED_TO_HUMAN: u8 = 8;
pub const KIND_MESSAGE_WITH_ATTACHMENT: u8 = 9;
pub const KIND_MESSAGE_ROUTED: u8 = 10;
pub const KIND_CONTACTS_LINKED: u8 = 11;
pub const KIND_DELIVERED: u8 = 12;
pub const KIND_DELIVERY_FAILED: u8 = 13;
pub const KIND_CLOCK_STEPPED: u8 = 14;
pub const KIND_CONVERSATION_HOMED: u8 = 15;
pub const KIND_REPLICATED: u8 = 16;
pub const KIND_CONTACT_DETAILS: u8 = 17;
pub const KIND_CONVERSATION_LABELED: u8 = 18;
pub const KIND_CONVERSATION_RATED: u8 = 19;
pub const KIND_CONVERSATION_HELD: u8 = 20;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("unknown operation kind {0}")]
    UnknownKind(u8),
    #[error("payload ends early")]
    Truncated,
    #[error("payload has {0} trailing bytes")]
    Trailing(usize),
    #[error("invalid string in payload")]
    BadString,
    #[error("invalid value for {0}")]
    BadValue(&'static str),
}

impl Op {
    pub fn kind(&self) -> u8 {
        match self {
            Op::ContactCreated { .. } => KIND_CONTACT_CREATED,
            Op::ConversationOpened { .. } => KIND_CONVERSATION_OPENED,
            Op::MessageAdded(m) if m.via.is_some() => KIND_MESSAGE_ROUTED,
            Op::MessageAdded(m) if m.attachment.is_some() => KIND_MESSAGE_WITH_ATTACHMENT,
            Op::MessageAdded(_) => KIND_MESSAGE_ADDED,
            Op::StatusChanged(_) => KIND_STATUS_CHANGED,
            Op::KbEntryPut { .. } => KIND_KB_ENTRY_PUT,
            Op::KbEntryDeleted { .. } => KIND_KB_ENTRY_DELETED,
            Op::MessageClassified { .. } => KIND_MESSAGE_CLASSIFIED,
            Op::HandedToHuman { .. } => KIND_HANDED_TO_HUMAN,
            Op::ContactsLinked { .. } => KIND_CONTACTS_LINKED,
            Op::Delivered { .. } => KIND_DELIVERED,
            Op::DeliveryFailed { .. } => KIND_DELIVERY_FAILED,
            Op::ClockStepped { .. } => KIND_CLOCK_STEPPED,
            Op::ConversationHomed { .. } => KIND_CONVERSATION_HOMED,
            Op::Replicated(_) => KIND_REPLICATED,
            Op::ContactDetails { .. } => KIND_CONTACT_DETAILS,
            Op::ConversationLabeled { .. } => KIND_CONVERSATION_LABELED,
            Op::ConversationRated { .. } => KIND_CONVERSATION_RATED,
            Op::ConversationHeld { .. } => KIND_CONVERSATION_HELD,
        }
    }
}

/// An operation with its LSN, on its way through the journal to the post-commit consumers.
#[derive(Debug, Clone)]
pub struct Entry {
    pub lsn: crate::model::Lsn,
    pub op: Op,
    /// The identities whose live connections must see this record. Not journaled: it is the
    /// dispatcher's routing knowledge at append time, carried along so that fan-out needs no
    /// lookup of its own.
    pub audience: Option<std::sync::Arc<[Identity]>>,
    /// The next entry belongs with this one (cluster mode: a record and the stamp that
    /// follows it): the journal writer never ends a batch between them, so a kill -9 keeps
    /// both or neither. Not journaled.
    pub glue: bool,
}

impl Entry {
    /// Roughly the bytes this entry takes framed, for batch sizing.
    pub fn op_size_estimate(&self) -> usize {
        match &self.op {
            Op::MessageAdded(m) => 64 + m.text.len(),
            Op::Replicated(r) => 64 + r.body.len(),
            Op::ContactDetails { name, details, .. } => 64 + name.len() + details.len(),
            Op::ConversationLabeled { labels, .. } => 64 + 8 * labels.len(),
            Op::ConversationRated { comment, .. } => 64 + comment.len(),
            Op::ConversationHeld { holders, .. } => 64 + 64 * holders.len(),
            Op::KbEntryPut { entry, .. } => {
                64 + entry.answer.len() + entry.examples.iter().map(|e| e.len() + 4).sum::<usize>()
            }
            _ => 64,
        }
    }
}

pub(crate) mod codec;
#[cfg(test)]
mod tests;
