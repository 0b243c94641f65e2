//! Messages: a customer's (idempotent on its client id, opening a conversation when needed,
//! then routed: the bot answers or hands over to a person), an agent's reply and private note,
//! and the contacts and conversations they create.

use std::collections::VecDeque;
use std::sync::Arc;

use super::command::{AgentMessage, AgentNote, CustomerMessage};
use super::ports::{Journal, Snapshot};
use super::state::{ContactState, Now, OpenConversation, RecentClientId};
use super::{Accepted, Decider, DispatchError};
use crate::conversation::{Event, Status};
use crate::model::{ClientId, ContactId, ConversationId, Identity, Lsn, MessageId, Sender};
use crate::op::{MessageAdded, Op};

impl<J: Journal, S: Snapshot> Decider<J, S> {
    /// A customer's message: stored once per client id, in the contact's open conversation
    /// (opened if there is none), then routed.
    pub(crate) fn customer_message(
        &mut self,
        cmd: CustomerMessage,
        now: Now,
    ) -> Result<Accepted, DispatchError> {
        let CustomerMessage {
            identity,
            client_id,
            text,
            attachment,
        } = cmd;
        self.bundling = true;
        let contact_id = match self.lookup_identity(&identity, now)? {
            Some(id) => id,
            None => self.create_contact(identity.clone(), now)?,
        };
        if let Some(cid) = &client_id {
            if let Some(message_id) = self.seen_client_id(contact_id, &identity, cid)? {
                self.bundling = false;
                let conversation = self.contacts[&contact_id].current.unwrap_or(0);
                return Ok(Accepted {
                    lsn: message_id,
                    conversation,
                    message_id: Some(message_id),
                });
            }
        }
        let conversation = match self.contacts[&contact_id].current {
            Some(id) => id,
            None => self.open_conversation(contact_id, now)?,
        };
        self.change_status(conversation, Event::CustomerMessage, None, None, now)?;
        let plan = self.plan_route(&text);
        let away = self.away_message(conversation, now);
        let audience = Arc::clone(&self.contacts[&contact_id].identities);
        self.bundling = false;
        let lsn = self.append(
            Op::MessageAdded(MessageAdded {
                conversation,
                contact: contact_id,
                sender: Sender::Visitor,
                agent: None,
                client_id: client_id.clone(),
                text,
                at_ms: now.wall_ms,
                attachment,
                via: Some(identity.clone()),
            }),
            Some(audience),
        )?;
        let contact = self
            .contacts
            .get_mut(&contact_id)
            .expect("invariant: hydrated above");
        if let Some(cid) = client_id {
            let from = contact
                .identities
                .iter()
                .position(|i| *i == identity)
                .expect("invariant: the identity maps to this contact")
                as u8;
            contact.recent.push_back(RecentClientId {
                from,
                client_id: cid,
                message: lsn,
            });
            let applied = self.store.applied();
            if let Some(wanted) =
                trim_recent(&mut contact.recent, self.cfg.recent_client_ids, applied)
            {
                self.store.want(wanted);
            }
        }
        contact.last_via = Some((identity, lsn));
        if let Some(text) = away {
            self.bot_says(conversation, text, now)?;
        }
        self.route(conversation, lsn, plan, now)?;
        Ok(Accepted {
            lsn,
            conversation,
            message_id: Some(lsn),
        })
    }

    /// An agent's reply: the agent takes the conversation if nobody holds it.
    pub(crate) fn agent_message(
        &mut self,
        cmd: AgentMessage,
        now: Now,
    ) -> Result<Accepted, DispatchError> {
        let AgentMessage {
            conversation,
            agent,
            text,
            via,
        } = cmd;
        self.hydrate_conversation(conversation, Event::AgentReply, now)?;
        let contact = self.conversations[&conversation].contact;
        let via = match via {
            Some(v) if self.contacts[&contact].identities.contains(&v) => Some(v),
            Some(v) => return Err(DispatchError::NotAnIdentity(v)),
            None => self.reply_route(contact),
        };
        // Nobody holds it: the agent takes it (held on another box: that agent keeps it).
        let assignee = self.conversations[&conversation]
            .assignee
            .or_else(|| (!self.held_elsewhere(conversation)).then_some(agent));
        self.change_status(conversation, Event::AgentReply, assignee, Some(agent), now)?;
        let audience = Arc::clone(&self.contacts[&contact].identities);
        let lsn = self.append(
            Op::MessageAdded(MessageAdded {
                conversation,
                contact,
                sender: Sender::Agent,
                agent: Some(agent),
                client_id: None,
                text,
                at_ms: now.wall_ms,
                attachment: None,
                via,
            }),
            Some(audience),
        )?;
        Ok(Accepted {
            lsn,
            conversation,
            message_id: Some(lsn),
        })
    }

    /// A private note: journaled like a message, with no audience (no customer sees it) and
    /// no status change.
    pub(crate) fn agent_note(
        &mut self,
        cmd: AgentNote,
        now: Now,
    ) -> Result<Accepted, DispatchError> {
        let AgentNote {
            conversation,
            agent,
            text,
        } = cmd;
        // A note may go on a closed conversation too: only its contact is needed.
        let contact = match self.conversations.get(&conversation) {
            Some(state) => state.contact,
            None => {
                let contact = self
                    .store
                    .conversation(conversation)?
                    .ok_or(DispatchError::NotFound(conversation))?
                    .contact;
                self.resolve_linked(contact)
            }
        };
        let lsn = self.append(
            Op::MessageAdded(MessageAdded {
                conversation,
                contact,
                sender: Sender::Note,
                agent: Some(agent),
                client_id: None,
                text,
                at_ms: now.wall_ms,
                attachment: None,
                via: None,
            }),
            None,
        )?;
        Ok(Accepted {
            lsn,
            conversation,
            message_id: Some(lsn),
        })
    }

    /// The message id a client id was first stored under. Recent ids are in memory; older
    /// ones are in the store, which has applied them (an id leaves the ring only then:
    /// [`trim_recent`]).
    pub(super) fn seen_client_id(
        &self,
        contact: ContactId,
        identity: &Identity,
        client_id: &ClientId,
    ) -> Result<Option<MessageId>, DispatchError> {
        let state = &self.contacts[&contact];
        let from = state.identities.iter().position(|i| i == identity);
        if let Some(r) = state
            .recent
            .iter()
            .find(|r| Some(usize::from(r.from)) == from && r.client_id == *client_id)
        {
            return Ok(Some(r.message));
        }
        if state.recent.len() < self.cfg.recent_client_ids {
            // The ring still holds every client id this contact ever sent.
            return Ok(None);
        }
        self.store.message_by_client_id(identity, client_id)
    }

    /// Where a reply to `contact` goes: the identity the customer last wrote from (or their
    /// first, if they never wrote).
    pub(super) fn reply_route(&self, contact: ContactId) -> Option<Identity> {
        let state = &self.contacts[&contact];
        state
            .last_via
            .as_ref()
            .map(|(identity, _)| identity.clone())
            .or_else(|| state.identities.first().cloned())
    }

    pub(super) fn create_contact(
        &mut self,
        identity: Identity,
        now: Now,
    ) -> Result<ContactId, DispatchError> {
        let contact = self.next_contact;
        self.append(
            Op::ContactCreated {
                contact,
                identity: identity.clone(),
                at_ms: now.wall_ms,
            },
            None,
        )?;
        self.next_contact += 1;
        self.identities.insert(identity.clone(), contact);
        self.contacts.insert(
            contact,
            ContactState {
                identities: Arc::from(vec![identity]),
                current: None,
                recent: VecDeque::new(),
                last_via: None,
                last_lsn: 0,
                stamp: 0,
            },
        );
        self.touched.push(contact);
        Ok(contact)
    }

    pub(super) fn open_conversation(
        &mut self,
        contact: ContactId,
        now: Now,
    ) -> Result<ConversationId, DispatchError> {
        let conversation = self.next_conversation;
        self.append(
            Op::ConversationOpened {
                conversation,
                contact,
                at_ms: now.wall_ms,
            },
            None,
        )?;
        self.next_conversation += 1;
        self.conversations.insert(
            conversation,
            OpenConversation {
                contact,
                status: Status::Idle,
                assignee: None,
                idle_deadline: None,
                handoff_team: None,
                bot_last_ms: None,
            },
        );
        self.contacts
            .get_mut(&contact)
            .expect("invariant: contact hydrated before opening")
            .current = Some(conversation);
        Ok(conversation)
    }
}

/// Drops the oldest client ids beyond `cap` that the store has applied up to `applied`, so a
/// resend of one of them is found in the store. One it has not applied stays, however full
/// the ring: the store commits only every few seconds, and a busy client sends more than
/// `cap` messages in that time. Returns the LSN to ask the store for while such ids keep the
/// ring over `cap`.
pub(super) fn trim_recent(
    recent: &mut VecDeque<RecentClientId>,
    cap: usize,
    applied: Lsn,
) -> Option<Lsn> {
    while recent.len() > cap && recent.front().is_some_and(|r| r.message <= applied) {
        recent.pop_front();
    }
    recent
        .front()
        .filter(|_| recent.len() > cap)
        .map(|r| r.message)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conversation::Status;
    use crate::dispatch::fakes::{at, decider, identity, T0};
    use crate::dispatch::DispatchError;
    use crate::model::bounded_id;

    fn ring(messages: std::ops::RangeInclusive<Lsn>) -> VecDeque<RecentClientId> {
        messages
            .map(|message| RecentClientId {
                from: 0,
                client_id: bounded_id(&message.to_string()).unwrap(),
                message,
            })
            .collect()
    }

    fn customer(who: &Identity, client_id: &str, text: &str) -> CustomerMessage {
        CustomerMessage {
            identity: who.clone(),
            client_id: Some(bounded_id(client_id).unwrap()),
            text: text.into(),
            attachment: None,
        }
    }

    #[test]
    fn only_client_ids_the_store_has_applied_leave_the_ring() {
        let mut recent = ring(1..=6);
        assert_eq!(
            trim_recent(&mut recent, 4, 0),
            Some(1),
            "nothing applied: all stay"
        );
        assert_eq!(recent.len(), 6);
        assert_eq!(trim_recent(&mut recent, 4, 1), Some(2));
        assert_eq!(recent.front().unwrap().message, 2);
        assert_eq!(trim_recent(&mut recent, 4, 6), None);
        assert_eq!(
            recent.iter().map(|r| r.message).collect::<Vec<_>>(),
            [3, 4, 5, 6]
        );
    }

    #[test]
    fn a_first_message_creates_the_contact_opens_a_conversation_and_waits_for_a_person() {
        let mut d = decider();
        let web = identity("web", "v1");
        let a = d
            .customer_message(customer(&web, "c1", "hello"), T0)
            .unwrap();
        let ops = d.ops_since(0);
        assert!(matches!(ops[0], Op::ContactCreated { contact: 1, .. }));
        assert!(matches!(
            ops[1],
            Op::ConversationOpened {
                conversation: 1,
                contact: 1,
                ..
            }
        ));
        assert!(
            matches!(ops[2], Op::StatusChanged(s) if s.from == Status::Idle && s.to == Status::Waiting)
        );
        let Op::MessageAdded(m) = ops[3] else {
            panic!("{:?}", ops[3])
        };
        assert_eq!(
            (m.text.as_str(), m.sender, m.at_ms),
            ("hello", Sender::Visitor, T0.wall_ms)
        );
        assert_eq!(m.via.as_ref(), Some(&web));
        assert!(
            d.journal.entries[3].audience.as_deref() == Some(&[web.clone()][..]),
            "the customer's own sockets see it"
        );
        // No knowledge base: the bot hands it to a person at once.
        assert!(matches!(
            ops[4],
            Op::HandedToHuman {
                conversation: 1,
                ..
            }
        ));
        assert_eq!(ops.len(), 5);
        let glued: Vec<bool> = d.journal.entries.iter().map(|e| e.glue).collect();
        assert_eq!(
            glued,
            [true, true, true, false, false],
            "the contact and conversation are durable with the message or not at all"
        );
        assert_eq!(
            a,
            Accepted {
                lsn: 4,
                conversation: 1,
                message_id: Some(4)
            }
        );
    }

    #[test]
    fn a_resend_is_answered_with_the_first_message_and_journals_nothing() {
        let mut d = decider();
        let web = identity("web", "v1");
        let first = d.customer_message(customer(&web, "c1", "hi"), T0).unwrap();
        let last = d.journal.last();
        let again = d
            .customer_message(customer(&web, "c1", "hi"), at(5))
            .unwrap();
        assert_eq!(again.message_id, first.message_id);
        assert_eq!(again.conversation, first.conversation);
        assert_eq!(d.journal.last(), last, "nothing journaled");
        // The same client id from another of the contact's clients is another message.
        let other = d
            .customer_message(customer(&web, "c2", "hi"), at(6))
            .unwrap();
        assert_ne!(other.message_id, first.message_id);
    }

    #[test]
    fn a_resend_beyond_the_ring_is_found_in_the_store() {
        let mut d = decider();
        let web = identity("web", "v1");
        let first = d.customer_message(customer(&web, "c0", "m"), T0).unwrap();
        for i in 1..8 {
            d.customer_message(customer(&web, &format!("c{i}"), "m"), at(i))
                .unwrap();
        }
        // Nothing applied: every id stays in memory, and the dispatcher asks for a commit.
        assert_eq!(d.contacts[&1].recent.len(), 8);
        assert!(d.store.wanted() >= first.lsn);
        d.store_catches_up();
        d.customer_message(customer(&web, "c8", "m"), at(9))
            .unwrap();
        assert_eq!(d.contacts[&1].recent.len(), d.cfg.recent_client_ids);
        let last = d.journal.last();
        let again = d
            .customer_message(customer(&web, "c0", "m"), at(10))
            .unwrap();
        assert_eq!(again.message_id, first.message_id, "found in the store");
        assert_eq!(d.journal.last(), last);
    }

    #[test]
    fn an_agent_reply_takes_the_conversation_and_goes_where_the_customer_last_wrote() {
        let mut d = decider();
        let web = identity("web", "v1");
        let c = d.customer_message(customer(&web, "c1", "hi"), T0).unwrap();
        let reply = AgentMessage {
            conversation: c.conversation,
            agent: 7,
            text: "hello".into(),
            via: None,
        };
        let from = d.journal.last();
        d.agent_message(reply, at(1)).unwrap();
        let ops = d.ops_since(from);
        assert!(matches!(ops[0], Op::StatusChanged(s)
            if s.to == Status::InProgress && s.assignee == Some(7) && s.by == Some(7)));
        assert!(matches!(ops[1], Op::MessageAdded(m)
            if m.sender == Sender::Agent && m.via.as_ref() == Some(&web)));
        let stranger = AgentMessage {
            conversation: c.conversation,
            agent: 7,
            text: "hello".into(),
            via: Some(identity("mqtt", "kiosk")),
        };
        assert!(matches!(
            d.agent_message(stranger, at(2)),
            Err(DispatchError::NotAnIdentity(_))
        ));
    }

    #[test]
    fn a_reply_to_a_closed_conversation_is_refused_as_a_reply_and_a_note_is_not() {
        let mut d = decider();
        let web = identity("web", "v1");
        let c = d.customer_message(customer(&web, "c1", "hi"), T0).unwrap();
        d.resolve(
            crate::dispatch::Resolve {
                conversation: c.conversation,
                by: 7,
            },
            at(1),
        )
        .unwrap();
        d.fire_idle_timeouts(at(1 + d.cfg.resolved_idle_after_ms));
        let from = d.journal.last();
        let reply = AgentMessage {
            conversation: c.conversation,
            agent: 7,
            text: "late".into(),
            via: None,
        };
        d.store_catches_up();
        let refused = d.agent_message(reply, at(70_000)).unwrap_err();
        assert!(
            refused
                .to_string()
                .starts_with("cannot reply to a conversation that is idle"),
            "{refused}"
        );
        assert_eq!(d.journal.last(), from, "a refusal journals nothing");
        let note = AgentNote {
            conversation: c.conversation,
            agent: 7,
            text: "called back".into(),
        };
        d.agent_note(note, at(70_001)).unwrap();
        let Some(entry) = d.journal.entries.last() else {
            panic!()
        };
        assert!(matches!(&entry.op, Op::MessageAdded(m) if m.sender == Sender::Note));
        assert!(entry.audience.is_none(), "the customer never sees a note");
    }

    #[test]
    fn a_stopped_journal_refuses_as_unavailable() {
        let mut d = decider();
        d.journal.closed = true;
        let web = identity("web", "v1");
        assert!(matches!(
            d.customer_message(customer(&web, "c1", "hi"), T0),
            Err(DispatchError::Unavailable)
        ));
    }
}
