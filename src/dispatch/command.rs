//! What the dispatcher is asked and what it answers: the commands, how each is answered
//! (once, or on a connection's reply stream in command order), and the errors.

use tokio::sync::{mpsc, oneshot};

use crate::conversation::Refused;
use crate::model::{AgentId, ClientId, ContactId, ConversationId, Identity, Lsn, MessageId};
use crate::op::KbEntry;
use crate::routing::bot::BotConfig;
use crate::routing::scheduler::AgentSlot;

/// How a command is answered.
pub enum Reply {
    /// One answer, for request/response callers (the HTTP API).
    Once(oneshot::Sender<Result<Accepted, DispatchError>>),
    /// A connection's reply stream: answers arrive in command order, so it needs no more than
    /// the LSN to wait for and the message id (a small item keeps an idle connection small).
    Stream(mpsc::Sender<StreamReply>),
}

impl Reply {
    pub(super) fn send(self, result: Result<Accepted, DispatchError>) {
        match self {
            Reply::Once(tx) => {
                let _ = tx.send(result);
            }
            // The stream's capacity is the connection's in-flight limit, so it never fills; a
            // closed one means the connection is gone and has no one left to tell.
            Reply::Stream(tx) => {
                let _ = tx.try_send(result.map(|a| StreamAccepted {
                    lsn: a.lsn,
                    message_id: a.message_id.unwrap_or(0),
                }));
            }
        }
    }
}

/// What the dispatcher is asked. Each command with a payload carries it as its own struct, the
/// handler's argument; commands a caller waits on carry how they are answered beside it.
pub enum Command {
    CustomerMessage(CustomerMessage, Reply),
    AgentNote(AgentNote, Reply),
    AgentMessage(AgentMessage, Reply),
    LinkContacts(LinkContacts, Reply),
    Assign(Assign, Reply),
    AssignElsewhere(AssignElsewhere, Reply),
    Resolve(Resolve, Reply),
    Reopen(Reopen, Reply),
    KbChange(KbChange, Reply),
    Label(LabelConversation, Reply),
    Rate(RateConversation, Reply),
    EditContact(EditContact, Reply),
    /// The customer is typing: agents are told which conversation (not journaled).
    VisitorTyping(VisitorTyping),
    /// The customer has seen the shop's messages up to a message (not journaled).
    VisitorRead(VisitorRead),
    /// An agent is typing in a conversation: its customer's widget sockets are told (not
    /// journaled); the answer is where a reply would go, for the other channels.
    AgentTyping(
        AgentTyping,
        oneshot::Sender<Result<Option<Identity>, DispatchError>>,
    ),
    /// A channel adapter's outbox reports what its channel confirmed or refused.
    Delivery(DeliveryReport),
    /// Other cluster boxes' operations, each origin's in seq order: applied here, answered
    /// with the LSN to wait for before telling anyone they are applied.
    Replicate(
        Vec<crate::cluster::wire::Operation>,
        oneshot::Sender<Result<Lsn, DispatchError>>,
    ),
    /// Another system's history (`kefud import`), in its order: answered with the LSN to
    /// wait for before saying it is durable.
    Import(
        Vec<super::ImportStep>,
        oneshot::Sender<Result<Lsn, DispatchError>>,
    ),
    /// Fires idle timeouts that are due at `timer_ms` (the monotonic clock, `clock::timer_ms`).
    Tick {
        timer_ms: i64,
    },
    /// The wall clock stepped: journaled, so the store moves the times it affects.
    ClockStepped(crate::clock::Step),
    /// A config reload: resolved conversations close after this long from now on (those
    /// already resolved keep the deadline they were given).
    SetResolvedIdleAfter {
        ms: i64,
    },
    /// A config reload of the bot's threshold and keywords, and of auto-assignment.
    SetRouting {
        bot: BotConfig,
        auto_assign: bool,
    },
    /// An admin changed the shop's business hours (already in the store): the away message
    /// follows them from the next command on.
    SetHours(std::sync::Arc<crate::hours::Hours>),
    /// An agent's live feed (the console) connected or disconnected: presence.
    AgentFeed {
        agent: AgentId,
        connected: bool,
    },
    /// An agent marked themselves away (no new conversations) or back.
    AgentAway {
        agent: AgentId,
        away: bool,
    },
    /// An agent's teams, capacity or disabled flag changed in the store.
    AgentChanged {
        agent: AgentId,
    },
    /// Every agent the scheduler knows, with presence and load.
    Roster {
        reply: oneshot::Sender<Vec<(AgentId, AgentSlot)>>,
    },
    /// Cluster mode: another box's agents as it last published them (`online`: its link is
    /// up), for this box's scheduler.
    PeerRoster {
        node: crate::cluster::vector::NodeId,
        agents: Vec<crate::cluster::wire::RosterAgent>,
        online: bool,
    },
    /// Ends the dispatcher even if some connection still holds a sender (one stuck past the
    /// shutdown grace period); commands after it are refused as `Unavailable`.
    Stop,
}

/// A customer's message, from any channel.
pub struct CustomerMessage {
    pub identity: Identity,
    /// The client's own id for the message: a resend with the same one is answered with the
    /// first message's id and stored once.
    pub client_id: Option<ClientId>,
    pub text: String,
    /// An upload id (an image the customer sent), checked by the caller.
    pub attachment: Option<String>,
}

/// A private note on a conversation: agents see it, the customer never does.
pub struct AgentNote {
    pub conversation: ConversationId,
    pub agent: AgentId,
    pub text: String,
}

/// An agent's reply to the customer.
pub struct AgentMessage {
    pub conversation: ConversationId,
    pub agent: AgentId,
    pub text: String,
    /// Where the reply goes: one of the contact's identities; `None` for the one the customer
    /// last wrote from.
    pub via: Option<Identity>,
}

/// Contact `merged` is the same person as `keep` (an agent linked them).
pub struct LinkContacts {
    pub keep: ContactId,
    pub merged: ContactId,
}

/// `by` gives the conversation to agent `to` (themself, or another: a transfer).
pub struct Assign {
    pub conversation: ConversationId,
    pub to: AgentId,
    pub by: AgentId,
}

/// Cluster mode: an agent here gives a conversation to an agent of another box (`name` as
/// that box shows them).
pub struct AssignElsewhere {
    pub conversation: ConversationId,
    pub to: crate::cluster::register::AgentRef,
    pub name: String,
    pub by: AgentId,
}

pub struct Resolve {
    pub conversation: ConversationId,
    pub by: AgentId,
}

/// A resolved conversation taken up again, by `by`.
pub struct Reopen {
    pub conversation: ConversationId,
    pub by: AgentId,
}

/// An agent puts these labels (ids of the shop's definitions) on a conversation, replacing
/// the ones it had.
pub struct LabelConversation {
    pub conversation: ConversationId,
    pub labels: Vec<u64>,
    pub by: AgentId,
}

/// The customer behind `identity` rates their resolved conversation.
pub struct RateConversation {
    pub identity: Identity,
    pub conversation: ConversationId,
    pub score: u8,
    pub comment: String,
}

/// A contact's name and details (a JSON object: phone, e-mail, notes and what an import
/// brought), replacing what was there.
pub struct EditContact {
    pub contact: ContactId,
    pub name: String,
    pub details: String,
}

/// Knowledge-base entries added or replaced, and removed (by intent), as one change.
pub struct KbChange {
    pub put: Vec<KbEntry>,
    pub delete: Vec<String>,
}

pub struct VisitorTyping {
    pub identity: Identity,
}

pub struct VisitorRead {
    pub identity: Identity,
    pub message_id: MessageId,
}

pub struct AgentTyping {
    pub conversation: ConversationId,
}

/// What a connection's reply stream carries.
pub type StreamReply = Result<StreamAccepted, DispatchError>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamAccepted {
    pub lsn: Lsn,
    pub message_id: MessageId,
}

/// A command the dispatcher took.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    /// Wait until the durable LSN reaches this before acknowledging (0: nothing to wait for).
    pub lsn: Lsn,
    pub conversation: ConversationId,
    pub message_id: Option<MessageId>,
}

/// What became of outbound messages on their channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeliveryReport {
    Delivered(Vec<MessageId>),
    Failed {
        message: MessageId,
        attempts: u32,
        dead: bool,
        error: String,
    },
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum DispatchError {
    #[error("conversation {0} not found")]
    NotFound(ConversationId),
    #[error("contact {0} not found")]
    NoSuchContact(ContactId),
    #[error("{0} is not an identity of this conversation's contact")]
    NotAnIdentity(Identity),
    #[error("conversation {0} is not this customer's")]
    NotYours(ConversationId),
    #[error("conversation {0} is not resolved yet; it can be rated once it is")]
    NotResolved(ConversationId),
    #[error("bad rating: {0}")]
    BadRating(&'static str),
    #[error("cannot link: {0}")]
    CannotLink(&'static str),
    #[error(transparent)]
    Refused(#[from] Refused),
    #[error("the journal is closed; the daemon is stopping")]
    Unavailable,
    #[error("store read failed: {0}")]
    Store(String),
}

impl From<crate::store::Error> for DispatchError {
    fn from(e: crate::store::Error) -> Self {
        DispatchError::Store(e.to_string())
    }
}
