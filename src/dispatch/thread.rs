//! The dispatcher's thread: receives commands one at a time, reads the clock once per command,
//! delegates to the [`Decider`]'s handlers, answers, and carries out what they decided beyond
//! the journal (typing and read indicators to the fan-out, a changed knowledge base to the API
//! and the trainer, the memory figures to `/metrics`).
//!
//! Invariant: every command is followed by the scheduler's assignments and the contact cache's
//! eviction, so a conversation is assigned the moment an agent has room, and memory is bounded
//! after every command.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use rusqlite::Connection;
use tokio::sync::{mpsc, watch};

use super::command::Command;
use super::ports::{JournalSink, StoreSnapshot};
use super::state::{DispatchConfig, Now};
use super::{Decider, DispatchError};
use crate::fanout::FanoutHandle;
use crate::model::Lsn;
use crate::op::Entry;
use crate::routing::knowledge::KnowledgeBase;
use crate::routing::training::Trainer;
use crate::store::progress::Progress;

/// What `/metrics` shows of the dispatcher's memory.
#[derive(Debug, Default)]
pub struct DispatchStats {
    /// Contacts hydrated now.
    pub contacts: AtomicU64,
    /// Waiting conversations held in the scheduler's windows now.
    pub queued_in_memory: AtomicU64,
    /// Cluster mode's per-conversation and per-contact entries held in memory now.
    pub cluster_entries: AtomicU64,
}

pub struct Dispatcher {
    decider: Decider<JournalSink, StoreSnapshot>,
    /// For typing and read indicators, which are not journaled.
    fanout: FanoutHandle,
    kb_published: watch::Sender<Arc<KnowledgeBase>>,
    /// Trains intent models off this thread for every knowledge base published.
    trainer: Trainer,
    stats: Arc<DispatchStats>,
}

impl Dispatcher {
    /// Builds the dispatcher over a caught-up store; `last_lsn` is the journal's last record.
    ///
    /// # Errors
    /// [`DispatchError::Store`] if the store cannot be read.
    pub fn new(
        cfg: DispatchConfig,
        conn: Connection,
        last_lsn: Lsn,
        store: Arc<Progress>,
        journal: mpsc::Sender<Entry>,
        kb_published: watch::Sender<Arc<KnowledgeBase>>,
        fanout: FanoutHandle,
    ) -> Result<Self, DispatchError> {
        let decider = Decider::start(
            cfg,
            JournalSink::new(last_lsn, journal),
            StoreSnapshot::new(conn, store),
            Now::read(),
        )?;
        let trainer = Trainer::spawn();
        kb_published.send_replace(Arc::clone(decider.kb()));
        trainer.submit(decider.kb());
        Ok(Dispatcher {
            decider,
            fanout,
            kb_published,
            trainer,
            stats: Arc::default(),
        })
    }

    /// Counters the HTTP side reads.
    pub fn stats(&self) -> Arc<DispatchStats> {
        Arc::clone(&self.stats)
    }

    /// The thread body: runs until every command sender is dropped, or [`Command::Stop`].
    pub fn run(mut self, mut rx: mpsc::Receiver<Command>) {
        while let Some(cmd) = rx.blocking_recv() {
            if matches!(cmd, Command::Stop) {
                break;
            }
            let now = Now::read();
            self.handle(cmd, now);
            // A handler that failed part way through a bundle leaves nothing glued.
            self.decider.bundling = false;
            self.decider.assign_waiting(now);
            self.decider.settle_contacts();
            self.stats
                .contacts
                .store(self.decider.contacts_in_memory() as u64, Ordering::Relaxed);
            self.stats
                .queued_in_memory
                .store(self.decider.queued_in_memory() as u64, Ordering::Relaxed);
            self.stats
                .cluster_entries
                .store(self.decider.cluster_entries() as u64, Ordering::Relaxed);
        }
        tracing::debug!("dispatcher stopped");
    }

    fn handle(&mut self, cmd: Command, now: Now) {
        let d = &mut self.decider;
        match cmd {
            Command::CustomerMessage(c, reply) => reply.send(d.customer_message(c, now)),
            Command::AgentMessage(c, reply) => reply.send(d.agent_message(c, now)),
            Command::AgentNote(c, reply) => reply.send(d.agent_note(c, now)),
            Command::LinkContacts(c, reply) => reply.send(d.link_contacts(c, now)),
            Command::Assign(c, reply) => reply.send(d.assign(c, now)),
            Command::AssignElsewhere(c, reply) => reply.send(d.assign_elsewhere(c, now)),
            Command::Resolve(c, reply) => reply.send(d.resolve(c, now)),
            Command::Label(c, reply) => reply.send(d.label_conversation(c, now)),
            Command::Rate(c, reply) => reply.send(d.rate_conversation(c, now)),
            Command::EditContact(c, reply) => reply.send(d.edit_contact(c, now)),
            Command::Reopen(c, reply) => reply.send(d.reopen(c, now)),
            Command::KbChange(c, reply) => {
                let result = d.kb_change(c, now);
                if result.is_ok() {
                    // Published before the answer: the caller's next read sees the change.
                    self.kb_published.send_replace(Arc::clone(d.kb()));
                    self.trainer.submit(d.kb());
                }
                reply.send(result);
            }
            Command::VisitorTyping(c) => {
                if let Some(indicator) = d.visitor_typing(c, now) {
                    self.fanout.notify(indicator);
                }
            }
            Command::VisitorRead(c) => {
                if let Some(indicator) = d.visitor_read(c, now) {
                    self.fanout.notify(indicator);
                }
            }
            Command::AgentTyping(c, reply) => {
                let _ = reply.send(d.agent_typing(c, now).map(|(indicator, route)| {
                    self.fanout.notify(indicator);
                    route
                }));
            }
            // Not journaled only if the daemon is stopping: the outbox sends again after the
            // restart (at least once).
            Command::Delivery(report) => {
                let _ = d.delivery(report, now);
            }
            Command::Replicate(ops, reply) => {
                let kb = Arc::clone(d.kb());
                let result = d.replicate(ops, now);
                // Another box's knowledge-base write changed it: published and retrained as
                // after a local change.
                if !Arc::ptr_eq(&kb, d.kb()) {
                    self.kb_published.send_replace(Arc::clone(d.kb()));
                    self.trainer.submit(d.kb());
                }
                let _ = reply.send(result);
            }
            Command::Import(steps, reply) => {
                let _ = reply.send(d.import(steps, now));
            }
            Command::Tick { timer_ms } => d.fire_idle_timeouts(Now { timer_ms, ..now }),
            Command::ClockStepped(step) => {
                tracing::warn!(
                    offset_ms = step.offset_ms,
                    corrected = step.correct_since_ms.is_some(),
                    "the wall clock stepped; timers are unaffected, stored times follow"
                );
                let _ = d.clock_stepped(step, now);
            }
            Command::SetResolvedIdleAfter { ms } => d.cfg.resolved_idle_after_ms = ms,
            Command::SetRouting { bot, auto_assign } => {
                d.cfg.bot = bot;
                d.cfg.auto_assign = auto_assign;
            }
            Command::SetHours(hours) => d.hours = hours,
            Command::AgentFeed { agent, connected } => d.agent_feed(agent, connected),
            Command::AgentAway { agent, away } => d.agent_away(agent, away),
            Command::AgentChanged { agent } => d.agent_changed(agent),
            Command::PeerRoster {
                node,
                agents,
                online,
            } => d.peer_roster(node, agents, online, now),
            Command::Roster { reply } => {
                let _ = reply.send(d.roster());
            }
            Command::Stop => {}
        }
    }
}
