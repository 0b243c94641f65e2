//! Routing: what the bot makes of a customer's message (classified against the knowledge base,
//! then answered or handed to a person), the waiting queue and the scheduler's assignments, the
//! knowledge base's changes, and the agents the scheduler knows (presence, away, load).
//!
//! Invariant: routing decides in the same order as everything else, on the dispatcher's thread;
//! the assignments run after every command, so a conversation is assigned the moment an agent
//! has room.

use std::sync::Arc;

use super::command::KbChange;
use super::ports::{Journal, Snapshot};
use super::state::Now;
use super::{Accepted, Decider, DispatchError};
use crate::conversation::Event;
use crate::model::{AgentId, ConversationId, MessageId, Sender};
use crate::op::{HandoffReason, MessageAdded, Op};
use crate::routing::bot::{self, Decision};
use crate::routing::scheduler::AgentSlot;

/// What the bot decided for a customer message, owned so the text can move on.
pub(super) struct RoutePlan {
    classified: Option<(String, f32)>,
    action: Action,
}

enum Action {
    Answer(String),
    ToHuman(String, HandoffReason),
}

impl<J: Journal, S: Snapshot> Decider<J, S> {
    /// What the knowledge base and the bot make of a customer's text (decided before the
    /// text moves into its operation).
    pub(super) fn plan_route(&self, text: &str) -> RoutePlan {
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
    pub(super) fn route(
        &mut self,
        conversation: ConversationId,
        message: MessageId,
        plan: RoutePlan,
        now: Now,
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
                now.timer_ms,
                self.journal.last(),
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
                        at_ms: now.wall_ms,
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
                        at_ms: now.wall_ms,
                    },
                    None,
                )?;
                self.scheduler.enqueue(
                    conversation,
                    team.clone(),
                    now.timer_ms,
                    self.journal.last(),
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
    pub(crate) fn assign_waiting(&mut self, now: Now) {
        if !self.cfg.auto_assign {
            return;
        }
        loop {
            // A window that ran low is read back from the store first, so the oldest
            // conversation of every team is in view. The read-back is current once the store
            // holds this thread's own changes (the assignments just made): ask for them, so
            // that the next read-back finds what waits beyond them.
            let applied = self.store.applied();
            let last = self.journal.last();
            if self.scheduler.refill_wanted() && applied < last {
                self.store.want(last);
            }
            for team in self.scheduler.refills_due(applied) {
                if let Err(e) = self.refill_queue(&team, applied, now) {
                    tracing::warn!(team, error = %e, "cannot read the queue back from the store");
                }
            }
            let Some((conversation, agent)) = self.scheduler.next_assignment() else {
                break;
            };
            self.scheduler.assigned(conversation, agent);
            if let Err(e) = self.hydrate_conversation(conversation, Event::Assign, now) {
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

    /// Journals a knowledge-base change and rebuilds the knowledge base (the thread publishes
    /// it).
    pub(crate) fn kb_change(&mut self, cmd: KbChange, now: Now) -> Result<Accepted, DispatchError> {
        let KbChange { put, delete } = cmd;
        let kb = self.kb.with_changes(&put, &delete);
        let mut lsn = 0;
        // Puts before deletes: a crash in the middle of a replacing import leaves the old
        // entries beside some new ones, never a knowledge base emptied and half refilled.
        for entry in put {
            lsn = self.append(
                Op::KbEntryPut {
                    entry,
                    at_ms: now.wall_ms,
                },
                None,
            )?;
        }
        for intent in delete {
            if self.kb.get(&intent).is_some() {
                lsn = self.append(
                    Op::KbEntryDeleted {
                        intent,
                        at_ms: now.wall_ms,
                    },
                    None,
                )?;
            }
        }
        self.kb = Arc::new(kb);
        Ok(Accepted {
            lsn,
            conversation: 0,
            message_id: None,
        })
    }

    /// Whether the scheduler knows `agent`, loading it from the store if it was created since
    /// (by the CLI, say).
    pub(super) fn know_agent(&mut self, agent: AgentId) -> bool {
        if self.scheduler.knows(agent) {
            return true;
        }
        match self.store.routing_agent(agent) {
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

    /// An agent's live feed connected or disconnected.
    pub(crate) fn agent_feed(&mut self, agent: AgentId, connected: bool) {
        if self.know_agent(agent) {
            self.scheduler.connection(agent, connected);
        }
    }

    /// An agent marked themselves away or back.
    pub(crate) fn agent_away(&mut self, agent: AgentId, away: bool) {
        if self.know_agent(agent) {
            self.scheduler.set_away(agent, away);
        }
    }

    /// An agent's teams, capacity or disabled flag changed in the store: read them again.
    pub(crate) fn agent_changed(&mut self, agent: AgentId) {
        match self.store.routing_agent(agent) {
            Ok(Some(a)) => self
                .scheduler
                .set_agent(a.id, a.teams, a.capacity, a.disabled),
            Ok(None) => {}
            Err(e) => tracing::warn!(agent, error = %e, "cannot reload agent"),
        }
    }

    /// Every agent the scheduler knows, with presence and load.
    pub(crate) fn roster(&self) -> Vec<(AgentId, AgentSlot)> {
        self.scheduler
            .agents()
            .map(|(id, slot)| (id, slot.clone()))
            .collect()
    }
}
