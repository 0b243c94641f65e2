//! Cluster mode: who holds a conversation across the boxes, in the dispatcher.
//!
//! An assignment made here — the scheduler's, an agent taking or transferring a conversation,
//! a reply that takes it — is stamped as an `Assign` operation carrying the vector this box
//! had applied; another box's is applied to the same register (`cluster::register`), and
//! every change of the register is journaled as `ConversationHeld` (glued to the operation's
//! `Replicated` record, so both or neither survive a crash).
//!
//! What this box makes of the register: the local assignee is the holder who signs in here,
//! if any (the first by dot when two do); a conversation held on another box is in progress
//! here with no local assignee, and this box's scheduler leaves it alone; two or more holders
//! are a conflict that both agents see, and any new assignment settles it.
//!
//! Invariant: a register changes only by an applied `Assign` operation, and each change is
//! journaled before the operation's own record.

use super::super::command::AssignElsewhere;
use super::super::ports::{Journal, Snapshot};
use super::super::state::Now;
use super::super::{Accepted, Decider, DispatchError};
use super::{tolerate_refusal, ConvKey};
use crate::cluster::register::{AgentRef, Holder};
use crate::cluster::vector::VersionVector;
use crate::cluster::wire::{bounded_name, Body, RemoteAssign};
use crate::conversation::{Event, Status};
use crate::model::{AgentId, ConversationId, Identity};
use crate::op::Op;

impl<J: Journal, S: Snapshot> Decider<J, S> {
    /// The operation for giving `key` to this box's agent `agent`.
    pub(super) fn assign_body(
        &self,
        key: ConvKey,
        contact: Identity,
        agent: AgentId,
        at_ms: i64,
    ) -> Result<Body, DispatchError> {
        let replica = self.replica.as_ref().expect("invariant: cluster mode");
        let name = self
            .store
            .routing_agent(agent)?
            .map_or_else(|| format!("#{agent}"), |a| bounded_name(&a.name));
        Ok(Body::Assign(RemoteAssign {
            conversation: key,
            contact,
            agent: AgentRef {
                node: replica.node,
                agent,
            },
            name,
            seen: replica.applied.clone(),
            at_ms,
        }))
    }

    /// Applies an assignment to `conversation`'s register and journals the register when it
    /// changed. Answers whether it did.
    pub(super) fn hold(
        &mut self,
        conversation: ConversationId,
        holder: Holder,
        seen: &VersionVector,
    ) -> Result<bool, DispatchError> {
        let replica = self.replica_mut();
        let register = replica.holders.entry(conversation).or_default();
        let applied = register.apply(holder, seen);
        if applied.changed {
            self.journal_holders(conversation)?;
        }
        Ok(applied.holders_changed)
    }

    /// Journals `conversation`'s register as it is in memory (glued to what follows: the
    /// operation's own record, or a link).
    fn journal_holders(&mut self, conversation: ConversationId) -> Result<(), DispatchError> {
        let replica = self.replica.as_ref().expect("invariant: cluster mode");
        let register = &replica.holders[&conversation];
        let op = Op::ConversationHeld {
            conversation,
            holders: register.values().to_vec(),
            context: register.context().clone(),
        };
        self.journal.append_glued(op, None)?;
        Ok(())
    }

    /// Before `from` folds into `into`: `into`'s register takes `from`'s holders and context,
    /// journaled glued to the link, so a holder assigned to either name is kept the same way
    /// whether its operation came before or after the link.
    pub(in crate::dispatch) fn fold_holders(
        &mut self,
        from: ConversationId,
        into: ConversationId,
    ) -> Result<(), DispatchError> {
        let Some(replica) = self.replica.as_mut() else {
            return Ok(());
        };
        let Some(folded) = replica.holders.remove(&from) else {
            return Ok(());
        };
        if replica
            .holders
            .entry(into)
            .or_default()
            .merge(&folded)
            .changed
        {
            self.journal_holders(into)?;
        }
        Ok(())
    }

    /// Whether someone on another box holds `conversation`: this box's scheduler leaves it
    /// alone and a reply here does not take it.
    pub(in crate::dispatch) fn held_elsewhere(&self, conversation: ConversationId) -> bool {
        self.replica.as_ref().is_some_and(|r| {
            r.holders
                .get(&conversation)
                .is_some_and(|h| h.held_elsewhere(r.node))
        })
    }

    /// After another box's assignment changed `conversation`'s holders: the local assignee
    /// follows them (see the module header).
    pub(super) fn follow_holders(
        &mut self,
        conversation: ConversationId,
        now: Now,
    ) -> Result<(), DispatchError> {
        let (_, in_memory) = self.conversation_contact(conversation, now)?;
        if !in_memory {
            return Ok(());
        }
        let replica = self.replica.as_ref().expect("invariant: cluster mode");
        let node = replica.node;
        let local = replica.holders.get(&conversation).and_then(|h| {
            h.values()
                .iter()
                .find(|v| v.agent.node == node)
                .map(|v| v.agent.agent)
        });
        let state = &self.conversations[&conversation];
        // Someone holds it now: waiting no longer, whichever box they sign in on.
        if state.status.is_open() && (state.assignee != local || state.status == Status::Waiting) {
            let local = local.filter(|a| self.know_agent(*a));
            tolerate_refusal(self.change_status(conversation, Event::Assign, local, None, now))?;
        }
        if self.held_elsewhere(conversation) {
            self.scheduler.dequeue(conversation);
        }
        Ok(())
    }

    /// After `agent` of this box was given `conversation`: when the register still names
    /// anyone else (the agent already held it here, so no status changed, but it is in
    /// conflict or held elsewhere too), the assignment is stamped all the same: it settles.
    pub(in crate::dispatch) fn settle_holders(
        &mut self,
        conversation: ConversationId,
        agent: AgentId,
        now: Now,
    ) -> Result<(), DispatchError> {
        let Some(replica) = self.replica.as_ref() else {
            return Ok(());
        };
        let me = AgentRef {
            node: replica.node,
            agent,
        };
        let settled = replica
            .holders
            .get(&conversation)
            .map_or(true, |h| h.values().iter().all(|v| v.agent == me));
        if settled {
            return Ok(());
        }
        let key = self.key_of(conversation)?;
        let contact = self.home_identity(self.conversations[&conversation].contact)?;
        let body = self.assign_body(key, contact, agent, now.wall_ms)?;
        let lsn = self.journal.last();
        self.stamp(body, lsn, now.wall_ms, false)
    }

    /// An agent here gives a conversation to an agent who signs in on another box: in progress
    /// here with no local assignee, held there.
    pub(crate) fn assign_elsewhere(
        &mut self,
        cmd: AssignElsewhere,
        now: Now,
    ) -> Result<Accepted, DispatchError> {
        let Some(node) = self.replica.as_ref().map(|r| r.node) else {
            return Err(DispatchError::Store("cluster mode is off".into()));
        };
        if cmd.to.node == node {
            return Err(DispatchError::Store(
                "that agent signs in on this box".into(),
            ));
        }
        self.give_elsewhere(cmd.conversation, cmd.to, cmd.name, Some(cmd.by), now)?;
        Ok(Accepted {
            lsn: self.journal.last(),
            conversation: cmd.conversation,
            message_id: None,
        })
    }

    /// Gives `conversation` to `to`, an agent of another box (`by` an agent here, or the
    /// scheduler): the status change and the assignment's stamp are durable together.
    pub(super) fn give_elsewhere(
        &mut self,
        conversation: ConversationId,
        to: AgentRef,
        name: String,
        by: Option<AgentId>,
        now: Now,
    ) -> Result<(), DispatchError> {
        self.hydrate_conversation(conversation, Event::Assign, now)?;
        let key = self.key_of(conversation)?;
        let contact = self.home_identity(self.conversations[&conversation].contact)?;
        self.bundling = true;
        let changed = self.change_status(conversation, Event::Assign, None, by, now);
        self.bundling = false;
        let lsn = changed?.unwrap_or(0);
        let replica = self.replica.as_ref().expect("invariant: cluster mode");
        let body = Body::Assign(RemoteAssign {
            conversation: key,
            contact,
            agent: to,
            name: bounded_name(&name),
            seen: replica.applied.clone(),
            at_ms: now.wall_ms,
        });
        self.stamp(body, lsn, now.wall_ms, false)?;
        self.scheduler.dequeue(conversation);
        Ok(())
    }
}

#[cfg(test)]
mod tests;
