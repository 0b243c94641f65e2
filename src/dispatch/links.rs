//! Linking two contacts into one person: identities, client-id rings and open conversations
//! fold into the kept contact, in memory as the journaled `ContactsLinked` says.

use super::command::LinkContacts;
use super::messages::trim_recent;
use super::ports::{Journal, Snapshot};
use super::state::{Now, RecentClientId, MAX_IDENTITIES};
use super::{Accepted, Decider, DispatchError};
use crate::conversation::Status;
use crate::model::ConversationId;
use crate::op::Op;

impl<J: Journal, S: Snapshot> Decider<J, S> {
    /// Links contact `merged` into `keep`: one person, one history, one open conversation
    /// (when both had one, `merged`'s messages fold into `keep`'s).
    pub(crate) fn link_contacts(
        &mut self,
        cmd: LinkContacts,
        now: Now,
    ) -> Result<Accepted, DispatchError> {
        let LinkContacts { keep, merged } = cmd;
        if keep == merged {
            return Err(DispatchError::CannotLink(
                "a contact cannot be linked to itself",
            ));
        }
        for id in [keep, merged] {
            if self.linked.contains_key(&id) || !self.store.contact_exists(id)? {
                return Err(DispatchError::NoSuchContact(id));
            }
            self.hydrate_contact(id, now)?;
        }
        if self.contacts[&keep].identities.len() + self.contacts[&merged].identities.len()
            > MAX_IDENTITIES
        {
            return Err(DispatchError::CannotLink(
                "a contact has at most 32 identities",
            ));
        }
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
                at_ms: now.wall_ms,
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
        state.recent = recent.into();
        if let Some(wanted) = trim_recent(&mut state.recent, cap, self.store.applied()) {
            self.store.want(wanted);
        }
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
}
