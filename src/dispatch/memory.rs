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
    /// evicted, as far as the store has applied their last use.
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
