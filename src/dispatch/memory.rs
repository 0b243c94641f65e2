//! What the dispatcher keeps in memory and how it comes back from the store: contacts
//! hydrated on first use and evicted (least recently used) once the store has applied their
//! last change, and the waiting queue's window read back from the store.
//!
//! Invariant: what is not in memory, the store has as it is (an entry leaves memory only once
//! the store has applied everything journaled up to its last use), so hydration is exact.

use std::sync::Arc;

use super::ports::{Journal, Snapshot};
use super::state::{ContactState, Now, OpenConversation, RecentClientId};
use super::{Decider, DispatchError};
use crate::conversation::{Event, Refused, Status};
use crate::model::{ContactId, ConversationId, Identity, Lsn};
use crate::routing::scheduler::QUEUE_WINDOW;

impl<J: Journal, S: Snapshot> Decider<J, S> {
    /// Reads the oldest conversations of `team` still waiting back from the store (which has
    /// applied up to `applied`) into the scheduler. One held in memory is taken as memory says:
    /// the store may not have seen it change.
    pub(super) fn refill_queue(
        &mut self,
        team: &str,
        applied: Lsn,
        now: Now,
    ) -> Result<(), DispatchError> {
        let oldest = self.store.queued_oldest(team, QUEUE_WINDOW)?;
        let complete = oldest.len() < QUEUE_WINDOW;
        let still_waiting = oldest
            .into_iter()
            .map(|(c, queued_at)| (c, now.to_timer(queued_at)))
            .filter(|(c, _)| !self.held_elsewhere(*c))
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
    /// evicted, as far as the store has applied their last use. Cluster mode lets go of what
    /// the store has applied in the same way (closed conversations' names, versions).
    pub(crate) fn settle_contacts(&mut self) {
        let last = self.journal.last();
        // Taken and put back emptied, so it keeps its capacity: no allocation per command.
        let mut touched = std::mem::take(&mut self.touched);
        for contact in touched.drain(..) {
            if let Some(state) = self.contacts.get_mut(&contact) {
                self.use_clock += 1;
                state.last_lsn = last;
                state.stamp = self.use_clock;
                self.use_order.push_back((contact, self.use_clock));
            }
        }
        self.touched = touched;
        let applied = self.store.applied();
        if let Some(replica) = &mut self.replica {
            replica.names.settle(applied);
            replica.versions.settle(last, applied);
        }
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
        // Over by an eighth: the store holds the evictable ones in its open transaction. Ask it
        // to commit rather than let memory follow its commit interval.
        if self.contacts.len() > self.cfg.cached_contacts + self.cfg.cached_contacts / 8 {
            self.store.want(last);
        }
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
    pub(super) fn evict(&mut self, contact: ContactId) {
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

    /// The contact `contact` is part of now: itself, or where links since startup led it (the
    /// store may still name the old one).
    pub(super) fn resolve_linked(&self, mut contact: ContactId) -> ContactId {
        while let Some(next) = self.linked.get(&contact) {
            contact = *next;
        }
        contact
    }

    /// The contact `identity` belongs to, hydrated; `None` for one never seen.
    pub(super) fn lookup_identity(
        &mut self,
        identity: &Identity,
        now: Now,
    ) -> Result<Option<ContactId>, DispatchError> {
        if let Some(&id) = self.identities.get(identity) {
            self.touched.push(id);
            return Ok(Some(id));
        }
        let Some(contact) = self.store.contact_by_identity(identity)? else {
            return Ok(None);
        };
        let contact = self.resolve_linked(contact);
        self.hydrate_contact(contact, now)?;
        Ok(Some(contact))
    }

    /// Brings `conversation` into memory for `event`, refused (naming `event`) if it is closed.
    pub(super) fn hydrate_conversation(
        &mut self,
        conversation: ConversationId,
        event: Event,
        now: Now,
    ) -> Result<(), DispatchError> {
        if let Some(state) = self.conversations.get(&conversation) {
            self.touched.push(state.contact);
            return Ok(());
        }
        let state = self
            .store
            .conversation(conversation)?
            .ok_or(DispatchError::NotFound(conversation))?;
        let contact = self.resolve_linked(state.contact);
        if !self.contacts.contains_key(&contact) {
            self.hydrate_contact(contact, now)?;
        }
        if !self.conversations.contains_key(&conversation) {
            // Not the contact's current conversation: it is closed (Idle) for good.
            return Err(Refused {
                from: Status::Idle,
                event,
                reason: "it is closed; the customer's next message opens a new one",
            }
            .into());
        }
        Ok(())
    }

    /// Loads a contact the dispatcher has not met since it started. Memory is authoritative:
    /// a contact already present is never overwritten.
    pub(super) fn hydrate_contact(
        &mut self,
        contact: ContactId,
        now: Now,
    ) -> Result<(), DispatchError> {
        // A contact linked away since startup is never loaded again from a store that may
        // not have applied the link yet: its identities would point back at it.
        if self.contacts.contains_key(&contact) || self.linked.contains_key(&contact) {
            self.touched.push(contact);
            return Ok(());
        }
        let snap = self
            .store
            .contact(contact, self.cfg.recent_client_ids as u32)?;
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
        let bot_last_ms = match &snap.current {
            Some(c) => self.store.last_bot_message_ms(c.id)?,
            None => None,
        };
        let current = snap.current.map(|c| {
            let idle_deadline = match (c.status, c.resolved_at) {
                (Status::Resolved, Some(at)) => {
                    Some(now.to_timer(at) + self.cfg.resolved_idle_after_ms)
                }
                _ => None,
            };
            if let Some(deadline) = idle_deadline {
                self.idle_deadlines.insert((deadline, c.id));
            }
            self.conversations.insert(
                c.id,
                OpenConversation {
                    contact,
                    status: c.status,
                    assignee: c.assignee,
                    idle_deadline,
                    handoff_team: c.handoff_team,
                    bot_last_ms,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dispatch::fakes::{
        at, config, decider_over, identity, MemoryStore, TestDecider, T0,
    };
    use crate::dispatch::{CustomerMessage, DispatchConfig, Resolve};
    use crate::model::bounded_id;

    fn small_cache() -> TestDecider {
        let cfg = DispatchConfig {
            cached_contacts: 2,
            ..config()
        };
        decider_over(cfg, MemoryStore::default())
    }

    fn write(d: &mut TestDecider, who: &str, client_id: &str, now: Now) {
        let message = CustomerMessage {
            identity: identity("web", who),
            client_id: Some(bounded_id(client_id).unwrap()),
            text: "hi".into(),
            attachment: None,
        };
        d.customer_message(message, now).unwrap();
        d.after_command(now);
    }

    #[test]
    fn contacts_beyond_the_cache_leave_only_once_the_store_has_them() {
        let mut d = small_cache();
        for v in 1..=4 {
            write(&mut d, &format!("v{v}"), "c1", at(v));
        }
        assert_eq!(d.contacts.len(), 4, "the store has applied none of them");
        d.store_catches_up();
        d.settle_contacts();
        assert_eq!(d.contacts.len(), 2, "the least recently used went");
        assert!(d.contacts.contains_key(&3) && d.contacts.contains_key(&4));
        assert_eq!(d.identities.len(), 2);
        assert_eq!(d.conversations.len(), 2);
    }

    #[test]
    fn an_evicted_contact_comes_back_exactly_as_it_left() {
        let mut d = small_cache();
        write(&mut d, "v1", "a", T0);
        write(&mut d, "v1", "b", at(1));
        d.resolve(
            Resolve {
                conversation: 1,
                by: 4,
            },
            at(2),
        )
        .unwrap();
        d.store_catches_up();
        let before = &d.contacts[&1];
        let (recent, last_via) = (before.recent.clone(), before.last_via.clone());
        let conversation = d.conversations[&1].clone();
        d.evict(1);
        assert!(d.contacts.is_empty() && d.conversations.is_empty());
        assert_eq!(
            d.lookup_identity(&identity("web", "v1"), at(3)).unwrap(),
            Some(1)
        );
        let after = &d.contacts[&1];
        assert_eq!(after.recent, recent);
        assert_eq!(after.last_via, last_via);
        assert_eq!(after.current, Some(1));
        assert_eq!(
            d.conversations[&1], conversation,
            "status, assignee, idle deadline"
        );
    }

    #[test]
    fn a_resend_to_an_evicted_contact_is_still_recognised() {
        let mut d = small_cache();
        write(&mut d, "v1", "a", T0);
        let first = d.journal.last() - 1;
        for v in 2..=4 {
            write(&mut d, &format!("v{v}"), "a", at(v));
        }
        d.store_catches_up();
        d.settle_contacts();
        assert!(!d.contacts.contains_key(&1));
        let last = d.journal.last();
        let message = CustomerMessage {
            identity: identity("web", "v1"),
            client_id: Some(bounded_id("a").unwrap()),
            text: "hi".into(),
            attachment: None,
        };
        let again = d.customer_message(message, at(9)).unwrap();
        assert_eq!(d.journal.last(), last);
        assert_eq!(again.message_id, Some(first));
    }

    #[test]
    fn a_contact_linked_away_is_never_hydrated_from_a_store_that_has_not_seen_the_link() {
        let mut d = small_cache();
        write(&mut d, "v1", "a", T0);
        write(&mut d, "v2", "a", at(1));
        d.store_catches_up();
        d.link_contacts(crate::dispatch::LinkContacts { keep: 1, merged: 2 }, at(2))
            .unwrap();
        // The store still says conversation 2 is contact 2's and waiting; memory knows it
        // folded into contact 1's.
        let assign = crate::dispatch::Assign {
            conversation: 2,
            to: 5,
            by: 5,
        };
        let refused = d.assign(assign, at(3)).unwrap_err();
        assert!(
            refused
                .to_string()
                .starts_with("cannot assign a conversation that is idle"),
            "{refused}"
        );
        assert!(!d.contacts.contains_key(&2));
        assert_eq!(d.contacts[&1].identities.len(), 2);
    }
}
