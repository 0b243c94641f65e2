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

pub enum Command {
    CustomerMessage {
        identity: Identity,
        client_id: Option<ClientId>,
        text: String,
        /// An upload id (an image the customer sent), checked by the caller.
        attachment: Option<String>,
        reply: Reply,
    },
    /// A private note on a conversation: agents see it, the customer never does.
    AgentNote {
        conversation: ConversationId,
        agent: AgentId,
        text: String,
        reply: Reply,
    },
    /// The customer is typing: agents are told which conversation (not journaled).
    VisitorTyping { identity: Identity },
    /// The customer has seen the shop's messages up to `message_id` (not journaled).
    VisitorRead {
        identity: Identity,
        message_id: MessageId,
    },
    /// An agent is typing in a conversation: its customer's widget sockets are told (not
    /// journaled); the answer is where a reply would go, for the other channels.
    AgentTyping {
        conversation: ConversationId,
        reply: oneshot::Sender<Result<Option<Identity>, DispatchError>>,
    },
    AgentMessage {
        conversation: ConversationId,
        agent: AgentId,
        text: String,
        /// Where the reply goes: one of the contact's identities; `None` for the one the
        /// customer last wrote from.
        via: Option<Identity>,
        reply: Reply,
    },
    /// Contact `merged` is the same person as `keep` (an agent linked them).
    LinkContacts {
        keep: ContactId,
        merged: ContactId,
        reply: Reply,
    },
    /// A channel adapter's outbox reports what its channel confirmed or refused.
    Delivery(DeliveryReport),
    Assign {
        conversation: ConversationId,
        to: AgentId,
        by: AgentId,
        reply: Reply,
    },
    Resolve {
        conversation: ConversationId,
        by: AgentId,
        reply: Reply,
    },
    Reopen {
        conversation: ConversationId,
        by: AgentId,
        reply: Reply,
    },
    /// Fires idle timeouts that are due at `timer_ms` (the monotonic clock, `clock::timer_ms`).
    Tick { timer_ms: i64 },
    /// The wall clock stepped: journaled, so the store moves the times it affects.
    ClockStepped(crate::clock::Step),
    /// A config reload: resolved conversations close after this long from now on (those
    /// already resolved keep the deadline they were given).
    SetResolvedIdleAfter { ms: i64 },
    /// A config reload of the bot's threshold and keywords, and of auto-assignment.
    SetRouting { bot: BotConfig, auto_assign: bool },
    /// Knowledge-base entries added or replaced, and removed (by intent), as one change.
    KbChange {
        put: Vec<KbEntry>,
        delete: Vec<String>,
        reply: Reply,
    },
    /// An agent's live feed (the console) connected or disconnected: presence.
    AgentFeed { agent: AgentId, connected: bool },
    /// An agent marked themselves away (no new conversations) or back.
    AgentAway { agent: AgentId, away: bool },
    /// An agent's teams, capacity or disabled flag changed in the store.
    AgentChanged { agent: AgentId },
    /// Every agent the scheduler knows, with presence and load.
    Roster {
        reply: oneshot::Sender<Vec<(AgentId, AgentSlot)>>,
    },
    /// Ends the dispatcher even if some connection still holds a sender (one stuck past the
    /// shutdown grace period); commands after it are refused as `Unavailable`.
    Stop,
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
