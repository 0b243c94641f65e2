//! Status changes: every transition goes through `conversation::step` (a refused one
//! journals nothing), keeps the scheduler's load and queue in step, arms and fires the idle
//! timers (on the monotonic clock).

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
        self.transition(cmd.conversation, Event::Assign, Some(cmd.to), cmd.by, now)
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
                at_ms: now.wall_ms,
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
                let deadline = now.timer_ms + self.cfg.resolved_idle_after_ms;
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
