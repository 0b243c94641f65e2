//! The dispatcher: turns commands into journaled operations, one at a time, on its own thread.
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
//! timers of resolved conversations.
//!
//! Invariants:
//! - Every status change goes through [`conversation::step`]; a refused one journals nothing.
//! - A command is answered with the LSN its caller must wait on (`durable >= lsn`) before it
//!   acknowledges anything; a duplicate `client_id` is answered with the first message's id
//!   and journals nothing.
//! - Commands arrive over a bounded channel and entries leave over one: a slow disk slows the
//!   senders, nothing is buffered without bound.
//!
//! Routing lives here too, because it must decide in the same order as everything else: each
//! customer message is classified against the knowledge base, and while no person holds the
//! conversation the bot answers it or hands it over ([`crate::routing::bot`]); conversations
//! handed over wait in the [`Scheduler`]'s queue, which runs after every command, so a
//! conversation is assigned the moment an agent has room. The knowledge base is rebuilt here
//! on every change and published for the API's reads.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use rusqlite::Connection;
use tokio::sync::{mpsc, oneshot, watch};

use crate::conversation::{self, Event, Refused, Status};
use crate::fanout::{Ephemeral, FanoutHandle};
use crate::model::{
    AgentId, ClientId, ContactId, ConversationId, Identity, Lsn, MessageId, Sender,
};
use crate::op::{Entry, HandoffReason, KbEntry, MessageAdded, Op, StatusChanged};
use crate::routing::bot::{self, BotConfig, Decision};
use crate::routing::knowledge::KnowledgeBase;
use crate::routing::scheduler::{AgentSlot, Scheduler, QUEUE_WINDOW};
use crate::store::queries;
use crate::wire;

/// How a command is answered.
pub enum Reply {
    /// One answer, for request/response callers (the HTTP API).
    Once(oneshot::Sender<Result<Accepted, DispatchError>>),
    /// A connection's reply stream: answers arrive in command order, so it needs no more than
    /// the LSN to wait for and the message id (a small item keeps an idle connection small).
    Stream(mpsc::Sender<StreamReply>),
}

impl Reply {
    fn send(self, result: Result<Accepted, DispatchError>) {
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

/// What the bot decided for a customer message, owned so the text can move on.
struct RoutePlan {
    classified: Option<(String, f32)>,
    action: Action,
}

enum Action {
    Answer(String),
    ToHuman(String, HandoffReason),
}

#[derive(Debug, Clone)]
pub struct DispatchConfig {
    /// A resolved conversation closes (goes Idle) this long after it was resolved.
    pub resolved_idle_after_ms: i64,
    /// How many recent client ids per contact are remembered for idempotency.
    pub recent_client_ids: usize,
    pub bot: BotConfig,
    pub auto_assign: bool,
    /// Contacts kept hydrated at most; the least recently used beyond are evicted.
    pub cached_contacts: usize,
}

struct ContactState {
    identities: Arc<[Identity]>,
    current: Option<ConversationId>,
    recent: VecDeque<RecentClientId>,
    /// The identity the customer last wrote from, and that message's id: replies go there.
    last_via: Option<(Identity, MessageId)>,
    /// The last LSN journaled when this contact was last used: evictable once applied.
    last_lsn: Lsn,
    /// When it was last used (the position of its latest entry in `use_order`).
    stamp: u64,
}

/// A client id is unique per identity (the client that made it), so the ring remembers which
/// of the contact's identities sent it.
struct RecentClientId {
    /// Index into the contact's `identities`.
    from: u8,
    client_id: ClientId,
    message: MessageId,
}

/// A contact has at most this many identities (linking refuses more).
const MAX_IDENTITIES: usize = 32;

struct ConversationState {
    contact: ContactId,
    status: Status,
    assignee: Option<AgentId>,
    /// When a resolved conversation closes: the exact key of its entry in `idle_deadlines`
    /// (kept here because a config reload may change the timeout meanwhile).
    idle_deadline: Option<i64>,
    /// Handed to a person, for this team; the bot no longer answers.
    handoff_team: Option<String>,
}

pub struct Dispatcher {
    cfg: DispatchConfig,
    /// Read connection for hydration; owned by this thread.
    conn: Connection,
    identities: HashMap<Identity, ContactId>,
    contacts: HashMap<ContactId, ContactState>,
    conversations: HashMap<ConversationId, ConversationState>,
    /// Resolved conversations by the time they close.
    idle_deadlines: BTreeSet<(i64, ConversationId)>,
    next_lsn: Lsn,
    next_contact: ContactId,
    next_conversation: ConversationId,
    journal: mpsc::Sender<Entry>,
    kb: Arc<KnowledgeBase>,
    kb_published: watch::Sender<Arc<KnowledgeBase>>,
    scheduler: Scheduler,
    /// For typing indicators, which are not journaled.
    fanout: FanoutHandle,
    /// When each conversation's last customer-typing indicator went to the agents.
    typing_sent: HashMap<ConversationId, std::time::Instant>,
    /// Contacts linked into another since startup (the store may not have applied it yet).
    linked: HashMap<ContactId, ContactId>,
    /// The store's applied LSN (eviction and the queue's read-back wait for it).
    applied: Arc<AtomicU64>,
    /// Contacts used by the command being handled.
    touched: Vec<ContactId>,
    /// Contacts by last use, oldest first: (contact, stamp); an entry whose stamp is not the
    /// contact's current one is stale and skipped.
    use_order: VecDeque<(ContactId, u64)>,
    clock: u64,
    stats: Arc<DispatchStats>,
    /// The first LSN journaled since the wall clock was last anchored (start or a step).
    interval_from_lsn: Lsn,
}

/// What `/metrics` shows of the dispatcher's memory.
#[derive(Debug, Default)]
pub struct DispatchStats {
    /// Contacts hydrated now.
    pub contacts: AtomicU64,
    /// Waiting conversations held in the scheduler's windows now.
    pub queued_in_memory: AtomicU64,
}

/// Customer-typing indicators per conversation reach agents at most this often.
const TYPING_INTERVAL: std::time::Duration = std::time::Duration::from_secs(2);

impl Dispatcher {
    /// Builds the dispatcher over a caught-up store; `last_lsn` is the journal's last record.
    ///
    /// # Errors
    /// [`DispatchError::Store`] if the store cannot be read.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        cfg: DispatchConfig,
        conn: Connection,
        last_lsn: Lsn,
        applied: Arc<AtomicU64>,
        journal: mpsc::Sender<Entry>,
        kb_published: watch::Sender<Arc<KnowledgeBase>>,
        fanout: FanoutHandle,
    ) -> Result<Self, DispatchError> {
        let (max_contact, max_conversation) = queries::max_ids(&conn)?;
        let resolved = queries::resolved_since(&conn)?;
        let kb = Arc::new(KnowledgeBase::new(queries::kb_entries(&conn)?));
        kb_published.send_replace(Arc::clone(&kb));
        let mut scheduler = Scheduler::default();
        for a in queries::routing_agents(&conn)? {
            scheduler.set_agent(a.id, a.teams, a.capacity, a.disabled);
        }
        for (agent, open) in queries::open_by_assignee(&conn)? {
            for _ in 0..open {
                scheduler.holding(agent, true);
            }
        }
        let mut d = Dispatcher {
            cfg,
            conn,
            identities: HashMap::new(),
            contacts: HashMap::new(),
            conversations: HashMap::new(),
            idle_deadlines: BTreeSet::new(),
            next_lsn: last_lsn + 1,
            next_contact: max_contact + 1,
            next_conversation: max_conversation + 1,
            journal,
            kb,
            kb_published,
            scheduler,
            fanout,
            typing_sent: HashMap::new(),
            linked: HashMap::new(),
            applied,
            touched: Vec::new(),
            use_order: VecDeque::new(),
            clock: 0,
            stats: Arc::default(),
            interval_from_lsn: last_lsn + 1,
        };
        // Timers only: a resolved conversation's contact is hydrated when it fires.
        for (conversation, resolved_at) in resolved {
            let deadline = crate::clock::to_timer(resolved_at) + d.cfg.resolved_idle_after_ms;
            d.idle_deadlines.insert((deadline, conversation));
        }
        // The oldest of each team's queue; the rest is read back as the window empties.
        for team in queries::queued_teams(&d.conn)? {
            d.refill_queue(&team, last_lsn)?;
        }
        Ok(d)
    }

    /// Counters the HTTP side reads.
    pub fn stats(&self) -> Arc<DispatchStats> {
        Arc::clone(&self.stats)
    }

    /// The thread body: runs until every command sender is dropped.
    pub fn run(mut self, mut rx: mpsc::Receiver<Command>) {
        while let Some(cmd) = rx.blocking_recv() {
            if matches!(cmd, Command::Stop) {
                break;
            }
            self.handle(cmd);
            self.assign_waiting();
            self.settle_contacts();
        }
        tracing::debug!(next_lsn = self.next_lsn, "dispatcher stopped");
    }

    fn handle(&mut self, cmd: Command) {
        match cmd {
            Command::CustomerMessage {
                identity,
                client_id,
                text,
                attachment,
                reply,
            } => {
                reply.send(self.customer_message(identity, client_id, text, attachment));
            }
            Command::AgentMessage {
                conversation,
                agent,
                text,
                via,
                reply,
            } => {
                reply.send(self.agent_message(conversation, agent, text, via));
            }
            Command::LinkContacts {
                keep,
                merged,
                reply,
            } => reply.send(self.link_contacts(keep, merged)),
            Command::Delivery(report) => {
                let now = crate::model::now_ms();
                let op = match report {
                    DeliveryReport::Delivered(messages) => Op::Delivered {
                        messages,
                        at_ms: now,
                    },
                    DeliveryReport::Failed {
                        message,
                        attempts,
                        dead,
                        error,
                    } => Op::DeliveryFailed {
                        message,
                        attempts,
                        dead,
                        error,
                        at_ms: now,
                    },
                };
                // Not journaled only if the daemon is stopping: the outbox sends again after
                // the restart (at least once).
                let _ = self.append(op, None);
            }
            Command::Assign {
                conversation,
                to,
                by,
                reply,
            } => {
                reply.send(self.transition(conversation, Event::Assign, Some(to), by));
            }
            Command::Resolve {
                conversation,
                by,
                reply,
            } => {
                reply.send(self.transition(conversation, Event::Resolve, None, by));
            }
            Command::Reopen {
                conversation,
                by,
                reply,
            } => {
                reply.send(self.transition(conversation, Event::Reopen, Some(by), by));
            }
            Command::Tick { timer_ms } => self.fire_idle_timeouts(timer_ms),
            Command::ClockStepped(step) => {
                let op = Op::ClockStepped {
                    offset_ms: step.offset_ms,
                    before_ms: step.before_ms,
                    correct_since_ms: step.correct_since_ms,
                    correct_from_lsn: self.interval_from_lsn,
                    at_ms: crate::model::now_ms(),
                };
                tracing::warn!(
                    offset_ms = step.offset_ms,
                    corrected = step.correct_since_ms.is_some(),
                    "the wall clock stepped; timers are unaffected, stored times follow"
                );
                if self.append(op, None).is_ok() {
                    self.interval_from_lsn = self.next_lsn;
                }
            }
            Command::AgentNote {
                conversation,
                agent,
                text,
                reply,
            } => reply.send(self.agent_note(conversation, agent, text)),
            Command::VisitorTyping { identity } => self.visitor_typing(&identity),
            Command::VisitorRead {
                identity,
                message_id,
            } => self.visitor_read(&identity, message_id),
            Command::AgentTyping {
                conversation,
                reply,
            } => {
                let _ = reply.send(self.agent_typing(conversation));
            }
            Command::SetResolvedIdleAfter { ms } => self.cfg.resolved_idle_after_ms = ms,
            Command::SetRouting { bot, auto_assign } => {
                self.cfg.bot = bot;
                self.cfg.auto_assign = auto_assign;
            }
            Command::KbChange { put, delete, reply } => reply.send(self.kb_change(put, delete)),
            Command::AgentFeed { agent, connected } => {
                if self.know_agent(agent) {
                    self.scheduler.connection(agent, connected);
                }
            }
            Command::AgentAway { agent, away } => {
                if self.know_agent(agent) {
                    self.scheduler.set_away(agent, away);
                }
            }
            Command::AgentChanged { agent } => match queries::routing_agent(&self.conn, agent) {
                Ok(Some(a)) => self
                    .scheduler
                    .set_agent(a.id, a.teams, a.capacity, a.disabled),
                Ok(None) => {}
                Err(e) => tracing::warn!(agent, error = %e, "cannot reload agent"),
            },
            Command::Roster { reply } => {
                let _ = reply.send(
                    self.scheduler
                        .agents()
                        .map(|(id, slot)| (id, slot.clone()))
                        .collect(),
                );
            }
            Command::Stop => {}
        }
    }

    fn customer_message(
        &mut self,
        identity: Identity,
        client_id: Option<ClientId>,
        text: String,
        attachment: Option<String>,
    ) -> Result<Accepted, DispatchError> {
        let now = crate::model::now_ms();
        let contact_id = match self.lookup_identity(&identity)? {
            Some(id) => id,
            None => self.create_contact(identity.clone(), now)?,
        };
        if let Some(cid) = &client_id {
            if let Some(message_id) = self.seen_client_id(contact_id, &identity, cid)? {
                let conversation = self.contacts[&contact_id].current.unwrap_or(0);
                return Ok(Accepted {
                    lsn: message_id,
                    conversation,
                    message_id: Some(message_id),
                });
            }
        }
        let conversation = match self.contacts[&contact_id].current {
            Some(id) => id,
            None => self.open_conversation(contact_id, now)?,
        };
        self.change_status(conversation, Event::CustomerMessage, None, None, now)?;
        let plan = self.plan_route(&text);
        let audience = Arc::clone(&self.contacts[&contact_id].identities);
        let lsn = self.append(
            Op::MessageAdded(MessageAdded {
                conversation,
                contact: contact_id,
                sender: Sender::Visitor,
                agent: None,
                client_id: client_id.clone(),
                text,
                at_ms: now,
                attachment,
                via: Some(identity.clone()),
            }),
            Some(audience),
        )?;
        let contact = self
            .contacts
            .get_mut(&contact_id)
            .expect("invariant: hydrated above");
        if let Some(cid) = client_id {
            if contact.recent.len() == self.cfg.recent_client_ids {
                contact.recent.pop_front();
            }
            let from = contact
                .identities
                .iter()
                .position(|i| *i == identity)
                .expect("invariant: the identity maps to this contact")
                as u8;
            contact.recent.push_back(RecentClientId {
                from,
                client_id: cid,
                message: lsn,
            });
        }
        contact.last_via = Some((identity, lsn));
        self.route(conversation, lsn, plan, now)?;
        Ok(Accepted {
            lsn,
            conversation,
            message_id: Some(lsn),
        })
    }

    /// What the knowledge base and the bot make of a customer's text (decided before the
    /// text moves into its operation).
    fn plan_route(&self, text: &str) -> RoutePlan {
        if self.kb.is_empty() {
            return RoutePlan {
                classified: None,
                action: Action::ToHuman(String::new(), HandoffReason::NotConfident),
            };
        }
        let (best, decision) = bot::decide(&self.kb, text, &self.cfg.bot);
        RoutePlan {
            classified: best.map(|m| (m.entry.intent.clone(), m.score)),
            action: match decision {
                Decision::Answer(answer) => Action::Answer(answer.to_string()),
                Decision::ToHuman { team, reason } => Action::ToHuman(team.to_string(), reason),
            },
        }
    }

    /// Journals the classification of customer message `message`, then, while the bot still
    /// has the conversation, its answer or the handover to a person.
    fn route(
        &mut self,
        conversation: ConversationId,
        message: MessageId,
        plan: RoutePlan,
        now: i64,
    ) -> Result<(), DispatchError> {
        if let Some((intent, score)) = plan.classified {
            self.append(
                Op::MessageClassified {
                    message,
                    intent,
                    score,
                },
                None,
            )?;
        }
        let state = &self.conversations[&conversation];
        if state.assignee.is_some() {
            return Ok(());
        }
        if let Some(team) = &state.handoff_team {
            // Reopened after a resolve with nobody holding it: back in the queue.
            self.scheduler.enqueue(
                conversation,
                team.clone(),
                crate::clock::timer_ms(),
                self.next_lsn - 1,
            );
            return Ok(());
        }
        match plan.action {
            Action::Answer(answer) => {
                let contact = state.contact;
                let audience = Arc::clone(&self.contacts[&contact].identities);
                let via = self.reply_route(contact);
                self.append(
                    Op::MessageAdded(MessageAdded {
                        conversation,
                        contact,
                        sender: Sender::Bot,
                        agent: None,
                        client_id: None,
                        text: answer,
                        at_ms: now,
                        attachment: None,
                        via,
                    }),
                    Some(audience),
                )?;
            }
            Action::ToHuman(team, reason) => {
                self.append(
                    Op::HandedToHuman {
                        conversation,
                        team: team.clone(),
                        reason,
                        at_ms: now,
                    },
                    None,
                )?;
                self.scheduler.enqueue(
                    conversation,
                    team.clone(),
                    crate::clock::timer_ms(),
                    self.next_lsn - 1,
                );
                self.conversations
                    .get_mut(&conversation)
                    .expect("invariant: present above")
                    .handoff_team = Some(team);
            }
        }
        Ok(())
    }

    /// Makes every assignment the scheduler can make now.
    fn assign_waiting(&mut self) {
        if !self.cfg.auto_assign {
            return;
        }
        loop {
            // A window that ran low is read back from the store first, so the oldest
            // conversation of every team is in view.
            let applied = self.applied.load(Ordering::Acquire);
            for team in self.scheduler.refills_due(applied) {
                if let Err(e) = self.refill_queue(&team, applied) {
                    tracing::warn!(team, error = %e, "cannot read the queue back from the store");
                }
            }
            let Some((conversation, agent)) = self.scheduler.next_assignment() else {
                break;
            };
            self.scheduler.assigned(conversation, agent);
            let now = crate::model::now_ms();
            if let Err(e) = self.hydrate_conversation(conversation) {
                tracing::debug!(conversation, error = %e, "queued conversation gone");
                continue;
            }
            match self.change_status(conversation, Event::Assign, Some(agent), None, now) {
                Ok(_) => {}
                Err(DispatchError::Unavailable) => return,
                Err(e) => tracing::warn!(conversation, agent, error = %e, "assignment skipped"),
            }
        }
    }

    /// Reads the oldest conversations of `team` still waiting back from the store (which has
    /// applied up to `applied`) into the scheduler. One held in memory is taken as memory says:
    /// the store may not have seen it change.
    fn refill_queue(&mut self, team: &str, applied: Lsn) -> Result<(), DispatchError> {
        let oldest = queries::queued_oldest(&self.conn, team, QUEUE_WINDOW)?;
        let complete = oldest.len() < QUEUE_WINDOW;
        let still_waiting = oldest
            .into_iter()
            .map(|(c, queued_at)| (c, crate::clock::to_timer(queued_at)))
            .filter(|(c, _)| {
                self.conversations.get(c).map_or(true, |s| {
                    s.status == Status::Waiting && s.assignee.is_none() && s.handoff_team.is_some()
                })
            })
            .collect();
        self.scheduler
            .refilled(team, still_waiting, applied, complete);
        Ok(())
    }

    /// After a command: the contacts it used move to the back of the use order, marked with
    /// the last LSN journaled; then the least recently used beyond the cache's size are
    /// evicted, as far as the store has applied their last use.
    fn settle_contacts(&mut self) {
        let last = self.next_lsn - 1;
        for contact in std::mem::take(&mut self.touched) {
            if let Some(state) = self.contacts.get_mut(&contact) {
                self.clock += 1;
                state.last_lsn = last;
                state.stamp = self.clock;
                self.use_order.push_back((contact, self.clock));
            }
        }
        let applied = self.applied.load(Ordering::Acquire);
        while self.contacts.len() > self.cfg.cached_contacts {
            let Some(&(contact, stamp)) = self.use_order.front() else {
                break;
            };
            match self.contacts.get(&contact) {
                Some(state) if state.stamp == stamp => {
                    // Later entries were used later still: none of them is applied either.
                    if state.last_lsn > applied {
                        break;
                    }
                    self.use_order.pop_front();
                    self.evict(contact);
                }
                _ => {
                    self.use_order.pop_front();
                }
            }
        }
        self.stats
            .contacts
            .store(self.contacts.len() as u64, Ordering::Relaxed);
        self.stats
            .queued_in_memory
            .store(self.scheduler.queued_len() as u64, Ordering::Relaxed);
        // Stale entries pile up as contacts are used again: rebuild once they dominate.
        if self.use_order.len() > 2 * self.contacts.len() + 1024 {
            let mut live: Vec<(u64, ContactId)> =
                self.contacts.iter().map(|(c, s)| (s.stamp, *c)).collect();
            live.sort_unstable();
            self.use_order = live.into_iter().map(|(stamp, c)| (c, stamp)).collect();
        }
    }

    /// Forgets a contact whose every change the store has applied: its identities, its
    /// current conversation. A queued conversation stays queued and an idle timer stays
    /// armed; both hydrate it again when they need it.
    fn evict(&mut self, contact: ContactId) {
        let Some(state) = self.contacts.remove(&contact) else {
            return;
        };
        for identity in state.identities.iter() {
            if self.identities.get(identity) == Some(&contact) {
                self.identities.remove(identity);
            }
        }
        if let Some(conversation) = state.current {
            self.conversations.remove(&conversation);
            self.typing_sent.remove(&conversation);
        }
    }

    /// Journals a knowledge-base change and publishes the rebuilt knowledge base.
    fn kb_change(
        &mut self,
        put: Vec<KbEntry>,
        delete: Vec<String>,
    ) -> Result<Accepted, DispatchError> {
        let now = crate::model::now_ms();
        let kb = self.kb.with_changes(&put, &delete);
        let mut lsn = 0;
        // Puts before deletes: a crash in the middle of a replacing import leaves the old
        // entries beside some new ones, never a knowledge base emptied and half refilled.
        for entry in put {
            lsn = self.append(Op::KbEntryPut { entry, at_ms: now }, None)?;
        }
        for intent in delete {
            if self.kb.get(&intent).is_some() {
                lsn = self.append(Op::KbEntryDeleted { intent, at_ms: now }, None)?;
            }
        }
        self.kb = Arc::new(kb);
        self.kb_published.send_replace(Arc::clone(&self.kb));
        Ok(Accepted {
            lsn,
            conversation: 0,
            message_id: None,
        })
    }

    /// Whether the scheduler knows `agent`, loading it from the store if it was created since
    /// (by the CLI, say).
    fn know_agent(&mut self, agent: AgentId) -> bool {
        if self.scheduler.knows(agent) {
            return true;
        }
        match queries::routing_agent(&self.conn, agent) {
            Ok(Some(a)) => {
                self.scheduler
                    .set_agent(a.id, a.teams, a.capacity, a.disabled);
                true
            }
            Ok(None) => false,
            Err(e) => {
                tracing::warn!(agent, error = %e, "cannot load agent");
                false
            }
        }
    }

    /// The message id a client id was first stored under. Recent ids are in memory; older
    /// ones are in the store, which by then has applied them (a contact cannot send more than
    /// `recent_client_ids` messages in the few milliseconds the store lags the journal).
    fn seen_client_id(
        &self,
        contact: ContactId,
        identity: &Identity,
        client_id: &ClientId,
    ) -> Result<Option<MessageId>, DispatchError> {
        let state = &self.contacts[&contact];
        let from = state.identities.iter().position(|i| i == identity);
        if let Some(r) = state
            .recent
            .iter()
            .find(|r| Some(usize::from(r.from)) == from && r.client_id == *client_id)
        {
            return Ok(Some(r.message));
        }
        if state.recent.len() < self.cfg.recent_client_ids {
            // The ring still holds every client id this contact ever sent.
            return Ok(None);
        }
        Ok(queries::message_by_client_id(
            &self.conn, identity, client_id,
        )?)
    }

    /// Where a reply to `contact` goes: the identity the customer last wrote from (or their
    /// first, if they never wrote).
    fn reply_route(&self, contact: ContactId) -> Option<Identity> {
        let state = &self.contacts[&contact];
        state
            .last_via
            .as_ref()
            .map(|(identity, _)| identity.clone())
            .or_else(|| state.identities.first().cloned())
    }

    fn agent_message(
        &mut self,
        conversation: ConversationId,
        agent: AgentId,
        text: String,
        via: Option<Identity>,
    ) -> Result<Accepted, DispatchError> {
        let now = crate::model::now_ms();
        self.hydrate_conversation(conversation)?;
        let contact = self.conversations[&conversation].contact;
        let via = match via {
            Some(v) if self.contacts[&contact].identities.contains(&v) => Some(v),
            Some(v) => return Err(DispatchError::NotAnIdentity(v)),
            None => self.reply_route(contact),
        };
        let assignee = self.conversations[&conversation].assignee.or(Some(agent));
        self.change_status(conversation, Event::AgentReply, assignee, Some(agent), now)?;
        let audience = Arc::clone(&self.contacts[&contact].identities);
        let lsn = self.append(
            Op::MessageAdded(MessageAdded {
                conversation,
                contact,
                sender: Sender::Agent,
                agent: Some(agent),
                client_id: None,
                text,
                at_ms: now,
                attachment: None,
                via,
            }),
            Some(audience),
        )?;
        Ok(Accepted {
            lsn,
            conversation,
            message_id: Some(lsn),
        })
    }

    /// A private note: journaled like a message, with no audience (no customer sees it) and
    /// no status change.
    fn agent_note(
        &mut self,
        conversation: ConversationId,
        agent: AgentId,
        text: String,
    ) -> Result<Accepted, DispatchError> {
        // A note may go on a closed conversation too: only its contact is needed.
        let contact = match self.conversations.get(&conversation) {
            Some(state) => state.contact,
            None => {
                let contact = queries::conversation_state(&self.conn, conversation)?
                    .ok_or(DispatchError::NotFound(conversation))?
                    .contact;
                self.resolve_linked(contact)
            }
        };
        let lsn = self.append(
            Op::MessageAdded(MessageAdded {
                conversation,
                contact,
                sender: Sender::Note,
                agent: Some(agent),
                client_id: None,
                text,
                at_ms: crate::model::now_ms(),
                attachment: None,
                via: None,
            }),
            None,
        )?;
        Ok(Accepted {
            lsn,
            conversation,
            message_id: Some(lsn),
        })
    }

    /// Links contact `merged` into `keep`: one person, one history, one open conversation
    /// (when both had one, `merged`'s messages fold into `keep`'s).
    fn link_contacts(
        &mut self,
        keep: ContactId,
        merged: ContactId,
    ) -> Result<Accepted, DispatchError> {
        if keep == merged {
            return Err(DispatchError::CannotLink(
                "a contact cannot be linked to itself",
            ));
        }
        for id in [keep, merged] {
            if self.linked.contains_key(&id) || !queries::contact_exists(&self.conn, id)? {
                return Err(DispatchError::NoSuchContact(id));
            }
            self.hydrate_contact(id)?;
        }
        if self.contacts[&keep].identities.len() + self.contacts[&merged].identities.len()
            > MAX_IDENTITIES
        {
            return Err(DispatchError::CannotLink(
                "a contact has at most 32 identities",
            ));
        }
        let now = crate::model::now_ms();
        let kept_current = self.contacts[&keep].current;
        let merged_current = self.contacts[&merged].current;
        // Both open: the merged contact's conversation folds into the kept one's, unless only
        // the merged one is still open (waiting or in progress) — a question never folds into
        // a conversation that is resolved and about to close.
        let open = |c: ConversationId| {
            self.conversations
                .get(&c)
                .is_some_and(|s| matches!(s.status, Status::Waiting | Status::InProgress))
        };
        let folded = match (merged_current, kept_current) {
            (Some(m), Some(k)) if open(m) && !open(k) => Some((k, m)),
            (Some(m), Some(k)) => Some((m, k)),
            _ => None,
        };
        let lsn = self.append(
            Op::ContactsLinked {
                keep,
                merged,
                folded,
                at_ms: now,
            },
            None,
        )?;
        let gone = self
            .contacts
            .remove(&merged)
            .expect("invariant: hydrated above");
        self.linked.insert(merged, keep);
        if let Some((from, _)) = folded {
            if let Some(state) = self.conversations.remove(&from) {
                if let Some(deadline) = state.idle_deadline {
                    self.idle_deadlines.remove(&(deadline, from));
                }
                if matches!(state.status, Status::Waiting | Status::InProgress) {
                    if let Some(agent) = state.assignee {
                        self.scheduler.holding(agent, false);
                    }
                }
                self.scheduler.dequeue(from);
            }
        }
        let current = match folded {
            Some((_, into)) => Some(into),
            None => kept_current.or(merged_current),
        };
        if let Some(state) = current.and_then(|c| self.conversations.get_mut(&c)) {
            state.contact = keep;
        }
        for identity in gone.identities.iter() {
            self.identities.insert(identity.clone(), keep);
        }
        let cap = self.cfg.recent_client_ids;
        let state = self
            .contacts
            .get_mut(&keep)
            .expect("invariant: hydrated above");
        let offset = state.identities.len() as u8;
        state.identities = state
            .identities
            .iter()
            .chain(gone.identities.iter())
            .cloned()
            .collect();
        let mut recent: Vec<RecentClientId> = state.recent.drain(..).collect();
        recent.extend(gone.recent.into_iter().map(|r| RecentClientId {
            from: r.from + offset,
            ..r
        }));
        recent.sort_by_key(|r| r.message);
        let excess = recent.len().saturating_sub(cap);
        state.recent = recent.into_iter().skip(excess).collect();
        if gone.last_via.as_ref().map(|(_, id)| *id) > state.last_via.as_ref().map(|(_, id)| *id) {
            state.last_via = gone.last_via;
        }
        state.current = current;
        Ok(Accepted {
            lsn,
            conversation: state.current.unwrap_or(0),
            message_id: None,
        })
    }

    /// The contact `contact` is part of now: itself, or where links since startup led it (the
    /// store may still name the old one).
    fn resolve_linked(&self, mut contact: ContactId) -> ContactId {
        while let Some(next) = self.linked.get(&contact) {
            contact = *next;
        }
        contact
    }

    fn visitor_typing(&mut self, identity: &Identity) {
        let Ok(Some(contact)) = self.lookup_identity(identity) else {
            return;
        };
        let Some(conversation) = self.contacts[&contact].current else {
            return;
        };
        // At most one indicator per conversation per interval reaches the agents, however
        // many sockets a visitor opens or how fast they send.
        let now = std::time::Instant::now();
        if self
            .typing_sent
            .get(&conversation)
            .is_some_and(|at| now.duration_since(*at) < TYPING_INTERVAL)
        {
            return;
        }
        if self.typing_sent.len() >= 10_000 {
            self.typing_sent
                .retain(|_, at| now.duration_since(*at) < TYPING_INTERVAL);
        }
        self.typing_sent.insert(conversation, now);
        let frame = wire::typing_for_agents(conversation, contact);
        self.fanout.notify(Ephemeral::Agents(frame.into()));
    }

    fn visitor_read(&mut self, identity: &Identity, message_id: MessageId) {
        let Ok(Some(contact)) = self.lookup_identity(identity) else {
            return;
        };
        let Some(conversation) = self.contacts[&contact].current else {
            return;
        };
        let frame = wire::read_for_agents(conversation, contact, message_id);
        self.fanout.notify(Ephemeral::Agents(frame.into()));
    }

    fn agent_typing(
        &mut self,
        conversation: ConversationId,
    ) -> Result<Option<Identity>, DispatchError> {
        self.hydrate_conversation(conversation)?;
        let contact = self.conversations[&conversation].contact;
        let audience = Arc::clone(&self.contacts[&contact].identities);
        self.fanout.notify(Ephemeral::Visitors(
            audience,
            wire::typing_for_visitor().into(),
        ));
        Ok(self.reply_route(contact))
    }

    /// Assign, resolve, reopen: a status event with no message.
    fn transition(
        &mut self,
        conversation: ConversationId,
        event: Event,
        assignee: Option<AgentId>,
        by: AgentId,
    ) -> Result<Accepted, DispatchError> {
        let now = crate::model::now_ms();
        self.hydrate_conversation(conversation)?;
        let assignee = assignee.or(self.conversations[&conversation].assignee);
        let lsn = self.change_status(conversation, event, assignee, Some(by), now)?;
        Ok(Accepted {
            lsn: lsn.unwrap_or(0),
            conversation,
            message_id: None,
        })
    }

    /// Steps the state machine and journals the change, if there is one (a status or an
    /// assignee that differs). Returns the LSN of the journaled change.
    fn change_status(
        &mut self,
        conversation: ConversationId,
        event: Event,
        assignee: Option<AgentId>,
        by: Option<AgentId>,
        now: i64,
    ) -> Result<Option<Lsn>, DispatchError> {
        let state = self
            .conversations
            .get(&conversation)
            .ok_or(DispatchError::NotFound(conversation))?;
        self.touched.push(state.contact);
        let from = state.status;
        let to = conversation::step(from, event)?;
        let assignee = if event == Event::CustomerMessage {
            state.assignee
        } else {
            assignee
        };
        if to == from && assignee == state.assignee {
            return Ok(None);
        }
        // The scheduler's view: who holds an open conversation, and what still waits.
        let open = |s: Status| matches!(s, Status::Waiting | Status::InProgress);
        let held_before = state.assignee.filter(|_| open(from));
        let held_after = assignee.filter(|_| open(to));
        if from == Status::Resolved {
            if let Some(deadline) = state.idle_deadline {
                self.idle_deadlines.remove(&(deadline, conversation));
            }
        }
        let lsn = self.append(
            Op::StatusChanged(StatusChanged {
                conversation,
                from,
                to,
                assignee,
                by,
                at_ms: now,
            }),
            None,
        )?;
        if held_before != held_after {
            // An agent created since startup is loaded first, so their load is counted from
            // their first conversation on.
            if let Some(a) = held_before {
                self.know_agent(a);
                self.scheduler.holding(a, false);
            }
            if let Some(a) = held_after {
                self.know_agent(a);
                self.scheduler.holding(a, true);
            }
        }
        if assignee.is_some() || !open(to) {
            self.scheduler.dequeue(conversation);
        }
        let state = self
            .conversations
            .get_mut(&conversation)
            .expect("invariant: present above");
        state.status = to;
        state.assignee = assignee;
        match to {
            Status::Resolved => {
                let deadline = crate::clock::timer_ms() + self.cfg.resolved_idle_after_ms;
                state.idle_deadline = Some(deadline);
                self.idle_deadlines.insert((deadline, conversation));
            }
            Status::Idle => {
                let contact = state.contact;
                self.conversations.remove(&conversation);
                if let Some(c) = self.contacts.get_mut(&contact) {
                    if c.current == Some(conversation) {
                        c.current = None;
                    }
                }
            }
            Status::Waiting | Status::InProgress => state.idle_deadline = None,
        }
        Ok(Some(lsn))
    }

    fn fire_idle_timeouts(&mut self, timer_ms: i64) {
        let now_ms = crate::model::now_ms();
        while let Some(&(deadline, conversation)) = self.idle_deadlines.first() {
            if deadline > timer_ms {
                break;
            }
            self.idle_deadlines.pop_first();
            // Evicted since: hydrated again. Closed or folded away since: nothing to do.
            if self.hydrate_conversation(conversation).is_err() {
                continue;
            }
            match self.change_status(conversation, Event::IdleTimeout, None, None, now_ms) {
                Ok(_) => {}
                Err(DispatchError::Unavailable) => return,
                Err(e) => tracing::warn!(conversation, error = %e, "idle timeout skipped"),
            }
        }
    }

    fn append(&mut self, op: Op, audience: Option<Arc<[Identity]>>) -> Result<Lsn, DispatchError> {
        let lsn = self.next_lsn;
        self.journal
            .blocking_send(Entry { lsn, op, audience })
            .map_err(|_| DispatchError::Unavailable)?;
        self.next_lsn += 1;
        Ok(lsn)
    }

    fn create_contact(&mut self, identity: Identity, now: i64) -> Result<ContactId, DispatchError> {
        let contact = self.next_contact;
        self.append(
            Op::ContactCreated {
                contact,
                identity: identity.clone(),
                at_ms: now,
            },
            None,
        )?;
        self.next_contact += 1;
        self.identities.insert(identity.clone(), contact);
        self.contacts.insert(
            contact,
            ContactState {
                identities: Arc::from(vec![identity]),
                current: None,
                recent: VecDeque::new(),
                last_via: None,
                last_lsn: 0,
                stamp: 0,
            },
        );
        self.touched.push(contact);
        Ok(contact)
    }

    fn open_conversation(
        &mut self,
        contact: ContactId,
        now: i64,
    ) -> Result<ConversationId, DispatchError> {
        let conversation = self.next_conversation;
        self.append(
            Op::ConversationOpened {
                conversation,
                contact,
                at_ms: now,
            },
            None,
        )?;
        self.next_conversation += 1;
        self.conversations.insert(
            conversation,
            ConversationState {
                contact,
                status: Status::Idle,
                assignee: None,
                idle_deadline: None,
                handoff_team: None,
            },
        );
        self.contacts
            .get_mut(&contact)
            .expect("invariant: contact hydrated before opening")
            .current = Some(conversation);
        Ok(conversation)
    }

    fn lookup_identity(&mut self, identity: &Identity) -> Result<Option<ContactId>, DispatchError> {
        if let Some(&id) = self.identities.get(identity) {
            self.touched.push(id);
            return Ok(Some(id));
        }
        let Some(contact) = queries::contact_by_identity(&self.conn, identity)? else {
            return Ok(None);
        };
        let contact = self.resolve_linked(contact);
        self.hydrate_contact(contact)?;
        Ok(Some(contact))
    }

    fn hydrate_conversation(&mut self, conversation: ConversationId) -> Result<(), DispatchError> {
        if let Some(state) = self.conversations.get(&conversation) {
            self.touched.push(state.contact);
            return Ok(());
        }
        let state = queries::conversation_state(&self.conn, conversation)?
            .ok_or(DispatchError::NotFound(conversation))?;
        let contact = self.resolve_linked(state.contact);
        if !self.contacts.contains_key(&contact) {
            self.hydrate_contact(contact)?;
        }
        if !self.conversations.contains_key(&conversation) {
            // Not the contact's current conversation: it is closed (Idle) for good.
            return Err(Refused {
                from: Status::Idle,
                event: Event::Assign,
                reason: "it is closed; the customer's next message opens a new one",
            }
            .into());
        }
        Ok(())
    }

    /// Loads a contact the dispatcher has not met since it started. Memory is authoritative:
    /// a contact already present is never overwritten.
    fn hydrate_contact(&mut self, contact: ContactId) -> Result<(), DispatchError> {
        // A contact linked away since startup is never loaded again from a store that may
        // not have applied the link yet: its identities would point back at it.
        if self.contacts.contains_key(&contact) || self.linked.contains_key(&contact) {
            self.touched.push(contact);
            return Ok(());
        }
        let snap =
            queries::contact_snapshot(&self.conn, contact, self.cfg.recent_client_ids as u32)?;
        for identity in &snap.identities {
            self.identities.insert(identity.clone(), contact);
        }
        let recent = snap
            .recent_client_ids
            .into_iter()
            .filter_map(|(channel, external_id, client_id, message)| {
                let from = snap.identities.iter().position(|i| {
                    i.channel.as_str() == channel && i.external_id.as_str() == external_id
                })?;
                Some(RecentClientId {
                    from: u8::try_from(from).ok()?,
                    client_id: crate::model::bounded_id(&client_id).ok()?,
                    message,
                })
            })
            .collect();
        let current = snap.current.map(|c| {
            let idle_deadline = match (c.status, c.resolved_at) {
                (Status::Resolved, Some(at)) => {
                    Some(crate::clock::to_timer(at) + self.cfg.resolved_idle_after_ms)
                }
                _ => None,
            };
            if let Some(deadline) = idle_deadline {
                self.idle_deadlines.insert((deadline, c.id));
            }
            self.conversations.insert(
                c.id,
                ConversationState {
                    contact,
                    status: c.status,
                    assignee: c.assignee,
                    idle_deadline,
                    handoff_team: c.handoff_team,
                },
            );
            c.id
        });
        self.contacts.insert(
            contact,
            ContactState {
                identities: Arc::from(snap.identities),
                current,
                recent,
                last_via: snap.last_via,
                last_lsn: 0,
                stamp: 0,
            },
        );
        self.touched.push(contact);
        Ok(())
    }
}
