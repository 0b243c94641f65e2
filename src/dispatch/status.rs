//! Status changes: every transition goes through `conversation::step` (a refused one
//! journals nothing), keeps the scheduler's load and queue in step, arms and fires the idle
//! timers (on the monotonic clock).

use std::sync::Arc;

use super::command::{Assign, Reopen, Resolve};
use super::ports::{Journal, Snapshot};
use super::state::Now;
use super::{Accepted, Decider, DispatchError};
use crate::conversation::{self, Event, Status};
use crate::model::{AgentId, ConversationId, Lsn};
use crate::op::{Op, StatusChanged};

impl<J: Journal, S: Snapshot> Decider<J, S> {
    /// `by` gives the conversation to an agent (a transfer, if someone held it).
    pub(crate) fn assign(&mut self, cmd: Assign, now: Now) -> Result<Accepted, DispatchError> {
        let accepted =
            self.transition(cmd.conversation, Event::Assign, Some(cmd.to), cmd.by, now)?;
        // Cluster mode: an agent who already held it here settles a conflict by taking it.
        let before = self.journal.last();
        self.settle_holders(cmd.conversation, cmd.to, now)?;
        let settled = self.journal.last();
        Ok(Accepted {
            lsn: if settled > before {
                settled
            } else {
                accepted.lsn
            },
            ..accepted
        })
    }

    pub(crate) fn resolve(&mut self, cmd: Resolve, now: Now) -> Result<Accepted, DispatchError> {
        self.transition(cmd.conversation, Event::Resolve, None, cmd.by, now)
    }

    /// The agent who reopens a resolved conversation holds it.
    pub(crate) fn reopen(&mut self, cmd: Reopen, now: Now) -> Result<Accepted, DispatchError> {
        self.transition(cmd.conversation, Event::Reopen, Some(cmd.by), cmd.by, now)
    }

    /// A status event with no message.
    fn transition(
        &mut self,
        conversation: ConversationId,
        event: Event,
        assignee: Option<AgentId>,
        by: AgentId,
        now: Now,
    ) -> Result<Accepted, DispatchError> {
        self.hydrate_conversation(conversation, event, now)?;
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
    pub(super) fn change_status(
        &mut self,
        conversation: ConversationId,
        event: Event,
        assignee: Option<AgentId>,
        by: Option<AgentId>,
        now: Now,
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
        let held_before = state.assignee.filter(|_| from.is_open());
        // The customer's widget hears of an agent's resolve (it offers a rating) once it is
        // durable; history brought in by an import resolves no one's chat.
        let audience = (to == Status::Resolved && by.is_some())
            .then(|| self.contacts.get(&self.resolve_linked(state.contact)))
            .flatten()
            .map(|c| Arc::clone(&c.identities));
        let lsn = self.append(
            Op::StatusChanged(StatusChanged {
                conversation,
                from,
                to,
                assignee,
                by,
                at_ms: now.wall_ms,
            }),
            audience,
        )?;
        self.follow_load(held_before, assignee.filter(|_| to.is_open()));
        if assignee.is_some() || !to.is_open() {
            self.scheduler.dequeue(conversation);
        }
        self.set_status(conversation, to, assignee, now);
        Ok(Some(lsn))
    }

    /// The scheduler counts each agent's open conversations: an agent created since startup
    /// is loaded first, so their load is counted from their first conversation on.
    fn follow_load(&mut self, held_before: Option<AgentId>, held_after: Option<AgentId>) {
        if held_before == held_after {
            return;
        }
        if let Some(a) = held_before {
            self.know_agent(a);
            self.scheduler.holding(a, false);
        }
        if let Some(a) = held_after {
            self.know_agent(a);
            self.scheduler.holding(a, true);
        }
    }

    /// Memory follows a journaled change: the status and assignee, the idle timer (armed on
    /// resolve, disarmed on anything else), and a closed conversation leaves memory.
    fn set_status(
        &mut self,
        conversation: ConversationId,
        to: Status,
        assignee: Option<AgentId>,
        now: Now,
    ) {
        let state = self
            .conversations
            .get_mut(&conversation)
            .expect("invariant: changed only while in memory");
        if let Some(deadline) = state.idle_deadline.take() {
            self.idle_deadlines.remove(&(deadline, conversation));
        }
        state.status = to;
        state.assignee = assignee;
        match to {
            Status::Resolved => {
                let deadline = now.timer_ms + self.cfg.resolved_idle_after_ms;
                state.idle_deadline = Some(deadline);
                self.idle_deadlines.insert((deadline, conversation));
            }
            Status::Idle => {
                let contact = state.contact;
                self.conversations.remove(&conversation);
                if let Some(replica) = &mut self.replica {
                    replica.forget(conversation, self.journal.last());
                }
                if let Some(c) = self.contacts.get_mut(&contact) {
                    if c.current == Some(conversation) {
                        c.current = None;
                    }
                }
            }
            Status::Waiting | Status::InProgress => {}
        }
    }

    /// Closes every resolved conversation whose idle deadline is due at `now.timer_ms`.
    pub(crate) fn fire_idle_timeouts(&mut self, now: Now) {
        while let Some(&(deadline, conversation)) = self.idle_deadlines.first() {
            if deadline > now.timer_ms {
                break;
            }
            self.idle_deadlines.pop_first();
            // Evicted since: hydrated again. Closed or folded away since: nothing to do.
            if self
                .hydrate_conversation(conversation, Event::IdleTimeout, now)
                .is_err()
            {
                continue;
            }
            match self.change_status(conversation, Event::IdleTimeout, None, None, now) {
                Ok(_) => {}
                Err(DispatchError::Unavailable) => return,
                Err(e) => tracing::warn!(conversation, error = %e, "idle timeout skipped"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dispatch::fakes::{at, decider, identity, TestDecider, T0};
    use crate::dispatch::CustomerMessage;
    use crate::model::bounded_id;

    /// A dispatcher with one customer's conversation waiting; its id.
    fn waiting() -> (TestDecider, ConversationId) {
        let mut d = decider();
        let message = CustomerMessage {
            identity: identity("web", "v1"),
            client_id: Some(bounded_id("c1").unwrap()),
            text: "hi".into(),
            attachment: None,
        };
        let c = d.customer_message(message, T0).unwrap().conversation;
        (d, c)
    }

    fn status_of(d: &TestDecider, c: ConversationId) -> Option<Status> {
        d.conversations.get(&c).map(|s| s.status)
    }

    #[test]
    fn a_refused_transition_journals_nothing_and_names_the_attempt() {
        let (mut d, c) = waiting();
        let last = d.journal.last();
        let refused = d
            .reopen(
                Reopen {
                    conversation: c,
                    by: 1,
                },
                at(1),
            )
            .unwrap_err();
        assert_eq!(
            refused.to_string(),
            "cannot reopen a conversation that is waiting: only a resolved conversation can be reopened"
        );
        assert_eq!(d.journal.last(), last);
        assert_eq!(status_of(&d, c), Some(Status::Waiting));
        assert!(matches!(
            d.resolve(
                Resolve {
                    conversation: 99,
                    by: 1
                },
                at(1)
            ),
            Err(DispatchError::NotFound(99))
        ));
    }

    #[test]
    fn assigning_takes_it_from_the_queue_and_assigning_again_to_the_same_agent_is_a_no_op() {
        let (mut d, c) = waiting();
        assert_eq!(d.scheduler.queued_len(), 1);
        let a = d
            .assign(
                Assign {
                    conversation: c,
                    to: 3,
                    by: 1,
                },
                at(1),
            )
            .unwrap();
        assert!(matches!(d.ops_since(a.lsn - 1)[..], [Op::StatusChanged(s)]
            if s.to == Status::InProgress && s.assignee == Some(3) && s.by == Some(1)));
        assert_eq!(d.scheduler.queued_len(), 0);
        let again = d
            .assign(
                Assign {
                    conversation: c,
                    to: 3,
                    by: 1,
                },
                at(2),
            )
            .unwrap();
        assert_eq!(again.lsn, 0, "nothing changed, nothing to wait for");
    }

    #[test]
    fn a_resolved_conversation_closes_when_its_idle_deadline_comes_and_not_before() {
        let (mut d, c) = waiting();
        d.resolve(
            Resolve {
                conversation: c,
                by: 1,
            },
            at(1_000),
        )
        .unwrap();
        let deadline = 1_000 + d.cfg.resolved_idle_after_ms;
        let last = d.journal.last();
        d.fire_idle_timeouts(at(deadline - 1));
        assert_eq!(d.journal.last(), last, "not yet");
        d.fire_idle_timeouts(at(deadline));
        assert!(matches!(d.ops_since(last)[..], [Op::StatusChanged(s)]
            if s.from == Status::Resolved && s.to == Status::Idle && s.by.is_none()));
        assert_eq!(status_of(&d, c), None, "closed: gone from memory");
        assert!(d.idle_deadlines.is_empty());
        assert_eq!(d.contacts[&1].current, None);
    }

    #[test]
    fn a_customer_writing_again_after_a_resolve_disarms_the_timer() {
        let (mut d, c) = waiting();
        d.resolve(
            Resolve {
                conversation: c,
                by: 1,
            },
            at(1_000),
        )
        .unwrap();
        let message = CustomerMessage {
            identity: identity("web", "v1"),
            client_id: None,
            text: "one more thing".into(),
            attachment: None,
        };
        let again = d.customer_message(message, at(2_000)).unwrap();
        assert_eq!(again.conversation, c, "the same conversation");
        assert_eq!(status_of(&d, c), Some(Status::Waiting));
        assert!(d.idle_deadlines.is_empty());
        let last = d.journal.last();
        d.fire_idle_timeouts(at(10 * d.cfg.resolved_idle_after_ms));
        assert_eq!(d.journal.last(), last);
    }

    #[test]
    fn a_timer_of_a_conversation_evicted_from_memory_hydrates_it_and_fires() {
        let (mut d, c) = waiting();
        d.resolve(
            Resolve {
                conversation: c,
                by: 1,
            },
            at(1_000),
        )
        .unwrap();
        d.store_catches_up();
        d.settle_contacts();
        d.evict(1);
        assert_eq!(status_of(&d, c), None);
        d.fire_idle_timeouts(at(1_000 + d.cfg.resolved_idle_after_ms));
        assert!(
            matches!(d.journal.entries.last().map(|e| &e.op), Some(Op::StatusChanged(s))
            if s.conversation == c && s.to == Status::Idle)
        );
    }

    #[test]
    fn the_idle_timers_of_resolved_conversations_come_back_at_start() {
        let (mut d, c) = waiting();
        d.resolve(
            Resolve {
                conversation: c,
                by: 1,
            },
            at(1_000),
        )
        .unwrap();
        d.store_catches_up();
        let store = std::mem::take(&mut d.store);
        let mut restarted = crate::dispatch::fakes::decider_over(d.cfg.clone(), store);
        restarted.fire_idle_timeouts(at(1_000 + d.cfg.resolved_idle_after_ms - 1));
        assert!(restarted.journal.entries.is_empty());
        restarted.fire_idle_timeouts(at(1_000 + d.cfg.resolved_idle_after_ms));
        assert!(matches!(restarted.ops_since(0)[..], [Op::StatusChanged(s)]
            if s.conversation == c && s.to == Status::Idle));
    }
}
