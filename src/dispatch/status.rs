//! Status changes: every transition goes through `conversation::step` (a refused one
//! journals nothing), keeps the scheduler's load and queue in step, arms and fires the idle
//! timers (on the monotonic clock), and the scheduler's assignments are made here.

use super::*;

impl Dispatcher {
    /// Assign, resolve, reopen: a status event with no message.
    pub(super) fn transition(
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
    pub(super) fn change_status(
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

    pub(super) fn fire_idle_timeouts(&mut self, timer_ms: i64) {
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

    /// Makes every assignment the scheduler can make now.
    pub(super) fn assign_waiting(&mut self) {
        if !self.cfg.auto_assign {
            return;
        }
        loop {
            // A window that ran low is read back from the store first, so the oldest
            // conversation of every team is in view. The read-back is current once the store
            // holds this thread's own changes (the assignments just made): ask for them, so
            // that the next read-back finds what waits beyond them.
            let applied = self.store.applied();
            if self.scheduler.refill_wanted() && applied < self.next_lsn - 1 {
                self.store.want(self.next_lsn - 1);
            }
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
}
