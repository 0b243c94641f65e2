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
use crate::model::{AgentId, ConversationId, Lsn, MessageId, Sender};
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
        if state.assignee.is_some() || self.held_elsewhere(conversation) {
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
                self.bot_says(conversation, answer, now)?;
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

    /// Journals a message of the bot's in `conversation` (open, in memory), sent to the
    /// customer where they last wrote from.
    pub(super) fn bot_says(
        &mut self,
        conversation: ConversationId,
        text: String,
        now: Now,
    ) -> Result<Lsn, DispatchError> {
        let contact = self.conversations[&conversation].contact;
        let audience = Arc::clone(&self.contacts[&contact].identities);
        let via = self.reply_route(contact);
        let lsn = self.append(
            Op::MessageAdded(MessageAdded {
                conversation,
                contact,
                sender: Sender::Bot,
                agent: None,
                client_id: None,
                text,
                at_ms: now.wall_ms,
                attachment: None,
                via,
            }),
            Some(audience),
        )?;
        self.conversations
            .get_mut(&conversation)
            .expect("invariant: the caller's open conversation")
            .bot_last_ms = Some(now.wall_ms);
        Ok(lsn)
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
            if super::replica::elsewhere::is_stand_in(agent) {
                match self.give_to_stand_in(conversation, agent, now) {
                    Ok(()) => {}
                    Err(DispatchError::Unavailable) => return,
                    Err(e) => {
                        tracing::warn!(conversation, error = %e, "assignment to another box skipped")
                    }
                }
                continue;
            }
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
    /// This box's agents (the other boxes' stand-ins left out).
    pub(crate) fn roster(&self) -> Vec<(AgentId, AgentSlot)> {
        self.scheduler
            .agents()
            .filter(|(id, _)| !super::replica::elsewhere::is_stand_in(*id))
            .map(|(id, slot)| (id, slot.clone()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conversation::Status;
    use crate::dispatch::fakes::{
        agent, at, config, decider, decider_over, identity, MemoryStore, TestDecider, T0,
    };
    use crate::dispatch::{AgentMessage, CustomerMessage};
    use crate::model::Lsn;
    use crate::op::KbEntry;

    fn kb() -> Vec<KbEntry> {
        vec![
            KbEntry {
                intent: "hours".into(),
                examples: vec!["when are you open".into(), "opening hours".into()],
                answer: "9 to 6, every day.".into(),
                team: String::new(),
            },
            KbEntry {
                intent: "returns".into(),
                examples: vec!["how do i return an item".into()],
                answer: String::new(),
                team: "after-sales".into(),
            },
        ]
    }

    /// A dispatcher whose store has the knowledge base and agents 1 (anyone) and 2
    /// (after-sales).
    fn shop() -> TestDecider {
        let store = MemoryStore::with(kb(), vec![agent(1, &[], 2), agent(2, &["after-sales"], 1)]);
        decider_over(config(), store)
    }

    fn ask(d: &mut TestDecider, who: &str, text: &str, now: Now) -> Accepted {
        let message = CustomerMessage {
            identity: identity("web", who),
            client_id: None,
            text: text.into(),
            attachment: None,
        };
        let accepted = d.customer_message(message, now).unwrap();
        d.after_command(now);
        accepted
    }

    fn ops_after(d: &TestDecider, lsn: Lsn) -> Vec<&Op> {
        d.ops_since(lsn)
    }

    #[test]
    fn the_bot_answers_what_it_knows_and_the_conversation_stays_with_it() {
        let mut d = shop();
        let a = ask(&mut d, "v1", "when are you open", T0);
        let ops = ops_after(&d, a.lsn);
        assert!(
            matches!(ops[0], Op::MessageClassified { message, intent, .. } if *message == a.lsn && intent == "hours")
        );
        assert!(
            matches!(ops[1], Op::MessageAdded(m) if m.sender == Sender::Bot && m.text == "9 to 6, every day.")
        );
        assert_eq!(ops.len(), 2);
        assert_eq!(d.conversations[&a.conversation].status, Status::Waiting);
        assert_eq!(d.scheduler.queued_len(), 0, "nobody is needed");
    }

    #[test]
    fn what_the_bot_does_not_answer_waits_for_its_team_and_is_assigned_when_an_agent_comes() {
        let mut d = shop();
        let a = ask(&mut d, "v1", "how do i return an item", T0);
        assert!(ops_after(&d, a.lsn).iter().any(|op| matches!(op,
            Op::HandedToHuman { team, reason: HandoffReason::NotConfident, .. } if team == "after-sales")));
        assert_eq!(d.scheduler.queued_len(), 1, "nobody online");
        // Agent 1 is not in the team; agent 2 is.
        d.agent_feed(1, true);
        d.after_command(at(1));
        assert_eq!(d.conversations[&a.conversation].assignee, None);
        d.agent_feed(2, true);
        let before = d.journal.last();
        d.after_command(at(2));
        assert!(matches!(ops_after(&d, before)[..], [Op::StatusChanged(s)]
            if s.to == Status::InProgress && s.assignee == Some(2) && s.by.is_none()));
        // Agent 2's capacity is one: the next after-sales question waits.
        let b = ask(&mut d, "v2", "how do i return an item", at(3));
        assert_eq!(d.conversations[&b.conversation].assignee, None);
        assert_eq!(d.scheduler.queued_len(), 1);
    }

    #[test]
    fn asking_for_a_person_hands_over_even_when_the_bot_knows_the_answer() {
        let mut d = shop();
        let a = ask(&mut d, "v1", "when are you open, human please", T0);
        assert!(ops_after(&d, a.lsn).iter().any(|op| matches!(
            op,
            Op::HandedToHuman {
                reason: HandoffReason::Asked,
                ..
            }
        )));
    }

    #[test]
    fn once_a_person_holds_the_conversation_the_bot_stays_out() {
        let mut d = shop();
        let a = ask(&mut d, "v1", "how do i return an item", T0);
        let reply = AgentMessage {
            conversation: a.conversation,
            agent: 1,
            text: "let me look".into(),
            via: None,
        };
        d.agent_message(reply, at(1)).unwrap();
        let b = ask(&mut d, "v1", "when are you open", at(2));
        let ops = ops_after(&d, b.lsn);
        assert!(
            matches!(ops[..], [Op::MessageClassified { .. }]),
            "classified, not answered: {ops:?}"
        );
    }

    #[test]
    fn a_full_queue_beyond_the_window_is_read_back_from_the_store_in_order() {
        let mut d = decider();
        let window = crate::routing::scheduler::QUEUE_WINDOW;
        let mut conversations = Vec::new();
        for i in 0..window + 5 {
            let a = ask(&mut d, &format!("v{i}"), "help", at(i as i64));
            conversations.push(a.conversation);
        }
        assert_eq!(d.scheduler.queued_len(), window, "only a window in memory");
        d.store_catches_up();
        d.store.agents.push(agent(9, &[], (window + 5) as u32));
        d.agent_feed(9, true);
        d.after_command(at(10_000));
        let assigned: Vec<ConversationId> = d
            .journal
            .entries
            .iter()
            .filter_map(|e| match &e.op {
                Op::StatusChanged(s) if s.assignee == Some(9) => Some(s.conversation),
                _ => None,
            })
            .collect();
        assert_eq!(assigned.len(), window);
        // The rest is read back once the store has applied the assignments.
        d.store_catches_up();
        d.after_command(at(10_001));
        let assigned = d
            .journal
            .entries
            .iter()
            .filter(|e| matches!(&e.op, Op::StatusChanged(s) if s.assignee == Some(9)))
            .count();
        assert_eq!(
            assigned,
            window + 5,
            "every waiting conversation, oldest first"
        );
        assert_eq!(conversations.len(), window + 5);
    }

    #[test]
    fn a_knowledge_base_change_puts_before_it_deletes_and_deletes_only_what_exists() {
        let mut d = shop();
        let change = KbChange {
            put: vec![KbEntry {
                intent: "parking".into(),
                examples: vec!["where can i park".into()],
                answer: "Behind the shop.".into(),
                team: String::new(),
            }],
            delete: vec!["hours".into(), "no-such-intent".into()],
        };
        let a = d.kb_change(change, T0).unwrap();
        let ops = d.ops_since(0);
        assert!(
            matches!(ops[..], [Op::KbEntryPut { entry, .. }, Op::KbEntryDeleted { intent, .. }]
            if entry.intent == "parking" && intent == "hours")
        );
        assert_eq!(a.lsn, 2);
        assert!(d.kb.get("hours").is_none());
        assert!(d.kb.get("parking").is_some());
    }

    #[test]
    fn an_agent_created_since_start_is_loaded_when_first_seen_and_counted() {
        let mut d = decider();
        d.agent_feed(5, true);
        assert!(!d.scheduler.knows(5), "not in the store");
        d.store.agents.push(agent(5, &[], 1));
        d.agent_feed(5, true);
        assert!(d
            .roster()
            .iter()
            .any(|(id, slot)| *id == 5 && slot.connections == 1));
        d.store.agents[0].capacity = 3;
        d.agent_changed(5);
        assert_eq!(d.roster()[0].1.capacity, 3);
    }
}
