//! Imported history (`kefud import`): another system's contacts, conversations and messages,
//! journaled as the ordinary records live traffic makes, at the times they had there.
//!
//! The importer (`crate::import`) decides where a contact's stream is cut into conversations
//! and which conversations are recent enough to stay open; this handler turns its steps into
//! records through the same building blocks as live commands (contacts, conversations, the
//! state machine), so the store, the console and the API see imported history exactly as
//! they see their own.
//!
//! Invariants:
//! - Imported messages carry no route (`via`) and no audience: history is never delivered to
//!   a channel, never fires a webhook and never reaches a live socket.
//! - A conversation opened by an import goes Idle → Waiting at its first message and stays
//!   there (the other system's statuses do not map onto ours); it ends Resolved, then closed
//!   once its idle deadline has passed, like any resolved conversation, or waits in the queue
//!   for a person when it is recent.
//! - Exactly-once is the importer's (it skips what the store already holds, by each record's
//!   key in its source): a step is applied as given.

use super::ports::{Journal, Snapshot};
use super::state::Now;
use super::{Decider, DispatchError};
use crate::conversation::Event;
use crate::model::{AgentId, ClientId, ContactId, Identity, Lsn, Sender};
use crate::op::{HandoffReason, MessageAdded, Op};

/// One step of an import, in the order the source had them.
#[derive(Debug, Clone, PartialEq)]
pub enum ImportStep {
    /// What the source knows about a contact (created if new).
    Contact {
        identity: Identity,
        name: String,
        /// A JSON object.
        details: String,
        at_ms: i64,
    },
    /// A message in the contact's current conversation (one is opened at its time if there
    /// is none).
    Message {
        identity: Identity,
        /// `Visitor` or `Agent`.
        sender: Sender,
        agent: Option<AgentId>,
        /// The record's key in its source ("gofly:123"), kept with the message.
        key: ClientId,
        text: String,
        at_ms: i64,
    },
    /// The contact's current conversation ended with its last message, at `at_ms`: resolved
    /// then, and closed if its idle deadline has passed since.
    Close { identity: Identity, at_ms: i64 },
    /// The contact's current conversation is recent: it waits for a person.
    Hand { identity: Identity, at_ms: i64 },
}

impl<J: Journal, S: Snapshot> Decider<J, S> {
    /// Applies `steps` in order; answers the LSN to wait for before saying they are durable.
    pub(crate) fn import(
        &mut self,
        steps: Vec<ImportStep>,
        now: Now,
    ) -> Result<Lsn, DispatchError> {
        for step in steps {
            match step {
                ImportStep::Contact {
                    identity,
                    name,
                    details,
                    at_ms,
                } => {
                    let at = at_time(now, at_ms);
                    let contact = self.contact_for(identity, at)?;
                    self.append(
                        Op::ContactDetails {
                            contact,
                            name,
                            details,
                            at_ms,
                        },
                        None,
                    )?;
                }
                ImportStep::Message {
                    identity,
                    sender,
                    agent,
                    key,
                    text,
                    at_ms,
                } => {
                    let at = at_time(now, at_ms);
                    self.bundling = true;
                    let contact = self.contact_for(identity, at)?;
                    let conversation = match self.contacts[&contact].current {
                        Some(c) => c,
                        None => {
                            let c = self.open_conversation(contact, at)?;
                            self.change_status(c, Event::CustomerMessage, None, None, at)?;
                            c
                        }
                    };
                    self.bundling = false;
                    self.append(
                        Op::MessageAdded(MessageAdded {
                            conversation,
                            contact,
                            sender,
                            agent: agent.filter(|_| sender == Sender::Agent),
                            client_id: Some(key),
                            text,
                            at_ms,
                            attachment: None,
                            via: None,
                        }),
                        None,
                    )?;
                }
                ImportStep::Close { identity, at_ms } => {
                    self.close_imported(&identity, at_ms, now)?
                }
                ImportStep::Hand { identity, at_ms } => {
                    self.hand_imported(&identity, at_ms, now)?
                }
            }
        }
        Ok(self.journal.last())
    }

    fn contact_for(&mut self, identity: Identity, at: Now) -> Result<ContactId, DispatchError> {
        match self.lookup_identity(&identity, at)? {
            Some(id) => Ok(id),
            None => self.create_contact(identity, at),
        }
    }

    /// Resolves the contact's current conversation at `at_ms`, and closes it when its idle
    /// deadline (counted from then) has passed by `now`.
    fn close_imported(
        &mut self,
        identity: &Identity,
        at_ms: i64,
        now: Now,
    ) -> Result<(), DispatchError> {
        let at = at_time(now, at_ms);
        let Some(contact) = self.lookup_identity(identity, at)? else {
            return Ok(());
        };
        let Some(conversation) = self.contacts[&contact].current else {
            return Ok(());
        };
        let closes_at = at_ms + self.cfg.resolved_idle_after_ms;
        let closes = closes_at <= now.wall_ms;
        if self.conversations[&conversation].status.is_open() {
            // Resolved and closed together, or neither.
            self.bundling = closes;
            self.change_status(conversation, Event::Resolve, None, None, at)?;
            self.bundling = false;
        }
        if closes {
            self.change_status(
                conversation,
                Event::IdleTimeout,
                None,
                None,
                at_time(now, closes_at),
            )?;
        }
        Ok(())
    }

    /// Puts the contact's current (recent) conversation in the queue for a person.
    fn hand_imported(
        &mut self,
        identity: &Identity,
        at_ms: i64,
        now: Now,
    ) -> Result<(), DispatchError> {
        let at = at_time(now, at_ms);
        let Some(contact) = self.lookup_identity(identity, at)? else {
            return Ok(());
        };
        let Some(conversation) = self.contacts[&contact].current else {
            return Ok(());
        };
        let state = &self.conversations[&conversation];
        if !state.status.is_open() || state.assignee.is_some() || state.handoff_team.is_some() {
            return Ok(());
        }
        let team = String::new();
        self.append(
            Op::HandedToHuman {
                conversation,
                team: team.clone(),
                reason: HandoffReason::Taken,
                at_ms,
            },
            None,
        )?;
        self.scheduler
            .enqueue(conversation, team.clone(), at.timer_ms, self.journal.last());
        self.conversations
            .get_mut(&conversation)
            .expect("invariant: present above")
            .handoff_team = Some(team);
        Ok(())
    }
}

/// `now` as it was at wall time `at_ms` (records take the wall time, timers its place on the
/// monotonic scale).
fn at_time(now: Now, at_ms: i64) -> Now {
    Now {
        wall_ms: at_ms,
        timer_ms: now.to_timer(at_ms),
    }
}

#[cfg(test)]
mod tests;
