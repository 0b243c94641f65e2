//! The dispatcher: turns commands into journaled operations, one at a time, on its own thread.
//!
//! Files: `command.rs` (what it is asked and answers: one struct per command), `thread.rs`
//! (receives, reads the clock once per command, delegates, answers, owns the journal sink),
//! `state.rs` (what it holds in memory; startup), `ports.rs` (the journal and store traits it
//! decides through, and the real ones), and one file per family of handlers: `messages.rs`
//! (customer and agent messages, notes, idempotency), `status.rs` (transitions, idle timers),
//! `routing.rs` (the bot, the queue and assignment, the knowledge base, agents), `links.rs`
//! (linking contacts), `annotations.rs` (labels, ratings, contact details), `import.rs` (another system's history), `signals.rs` (typing and read indicators, delivery reports, clock
//! steps), `memory.rs` (hydration, eviction, the queue's read-back), `replica.rs` (cluster
//! mode: this box's operations stamped for the others, theirs applied here). A handler takes the state,
//! the ports and the time it decides at, and returns what it decided, so each family's unit
//! tests drive it with in-memory fakes (`fakes.rs`), without a database, a socket or a clock.
//! `away.rs` decides the away message a customer gets outside business hours.
//!
//! Ownership: this thread alone owns the live conversation state (which contact has which
//! open conversation, each conversation's status and assignee, the recent client ids used for
//! idempotency) and the LSN counter. Because one thread assigns LSNs and hands entries to the
//! journal in that order, the journal order *is* the order decisions were made in.
//!
//! State is hydrated lazily from the store the first time a contact or conversation is
//! touched, so startup does not scale with history. That is sound because the store has
//! applied the whole journal before the dispatcher starts, and everything since passed through
//! here.
//!
//! Memory does not grow with the number of contacts either: at most `cached_contacts` stay
//! hydrated; beyond that the least recently used are evicted, and hydrated again when they
//! come back. A contact is evicted only once the store has applied everything this thread
//! journaled up to its last use, which keeps the rule "what is not in memory, the store has
//! as it is" true, so hydration never reads a stale contact. The waiting queue keeps only a
//! window in memory too (see the scheduler), and start reads only that window and the idle
//! timers of resolved conversations. Cluster mode holds what its conversations not closed
//! need (their cluster names, tips, floors, holders) and the contacts' register versions the
//! store has not applied yet; a closed conversation's names and an applied version are read
//! back from the store (`replica/names.rs`, `replica/versions.rs`), by the same rule.
//!
//! Invariants:
//! - Every status change goes through [`crate::conversation::step`]; a refused one journals nothing.
//! - A command is answered with the LSN its caller must wait on (`durable >= lsn`) before it
//!   acknowledges anything; a duplicate `client_id` is answered with the first message's id
//!   and journals nothing.
//! - Commands arrive over a bounded channel and entries leave over one: a slow disk slows the
//!   senders, nothing is buffered without bound.
//!
//! Routing lives here too, because it must decide in the same order as everything else: each
//! customer message is classified against the knowledge base, and while no person holds the
//! conversation the bot answers it or hands it over ([`crate::routing::bot`]); conversations
//! handed over wait in the [`crate::routing::scheduler::Scheduler`]'s queue, which runs after every command, so a
//! conversation is assigned the moment an agent has room. The knowledge base is rebuilt here
//! on every change and published for the API's reads.

mod annotations;
mod away;
mod command;
#[cfg(test)]
mod fakes;
mod import;
mod links;
mod memory;
mod messages;
mod ports;
mod replica;
mod routing;
mod signals;
mod state;
mod status;
mod thread;

pub use command::{
    Accepted, AgentMessage, AgentNote, AgentTyping, Assign, AssignElsewhere, Command,
    CustomerMessage, DeliveryReport, DispatchError, EditContact, KbChange, LabelConversation,
    LinkContacts, RateConversation, Reopen, Reply, Resolve, StreamReply, VisitorRead,
    VisitorTyping,
};
pub use import::ImportStep;
pub use state::{ClusterRole, DispatchConfig};
pub use thread::{DispatchStats, Dispatcher};

use state::Decider;
