//! Messages: a customer's (idempotent on its client id, opening a conversation when needed,
//! then routed: the bot answers or hands over to a person), an agent's reply and private note,
//! and the contacts and conversations they create.

use super::*;

impl Dispatcher {
    pub(super) fn customer_message(
        &mut self,
        identity: Identity,
        client_id: Option<ClientId>,
        text: String,
        attachment: Option<String>,
    ) -> Result<Accepted, DispatchError> {
        let now = crate::model::now_ms();
        let contact_id = match self.lookup_identity(&identity)? {
            Some(id) => id,
            None => self.create_contact(identity.clone(), now)?,
        };
        if let Some(cid) = &client_id {
            if let Some(message_id) = self.seen_client_id(contact_id, &identity, cid)? {
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
        let audience = Arc::clone(&self.contacts[&contact_id].identities);
        let lsn = self.append(
            Op::MessageAdded(MessageAdded {
                conversation,
                contact: contact_id,
                sender: Sender::Visitor,
                agent: None,
                client_id: client_id.clone(),
                text,
                at_ms: now,
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
        self.route(conversation, lsn, plan, now)?;
        Ok(Accepted {
            lsn,
            conversation,
            message_id: Some(lsn),
        })
    }

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
        now: i64,
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
                crate::clock::timer_ms(),
                self.next_lsn - 1,
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
                        at_ms: now,
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
                        at_ms: now,
                    },
                    None,
                )?;
                self.scheduler.enqueue(
                    conversation,
                    team.clone(),
                    crate::clock::timer_ms(),
                    self.next_lsn - 1,
                );
                self.conversations
                    .get_mut(&conversation)
                    .expect("invariant: present above")
                    .handoff_team = Some(team);
            }
        }
        Ok(())
    }

    pub(super) fn agent_message(
        &mut self,
        conversation: ConversationId,
        agent: AgentId,
        text: String,
        via: Option<Identity>,
    ) -> Result<Accepted, DispatchError> {
        let now = crate::model::now_ms();
        self.hydrate_conversation(conversation)?;
        let contact = self.conversations[&conversation].contact;
        let via = match via {
            Some(v) if self.contacts[&contact].identities.contains(&v) => Some(v),
            Some(v) => return Err(DispatchError::NotAnIdentity(v)),
            None => self.reply_route(contact),
        };
        let assignee = self.conversations[&conversation].assignee.or(Some(agent));
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
                at_ms: now,
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
    pub(super) fn agent_note(
        &mut self,
        conversation: ConversationId,
        agent: AgentId,
        text: String,
    ) -> Result<Accepted, DispatchError> {
        // A note may go on a closed conversation too: only its contact is needed.
        let contact = match self.conversations.get(&conversation) {
            Some(state) => state.contact,
            None => {
                let contact = queries::conversation_state(&self.conn, conversation)?
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
                at_ms: crate::model::now_ms(),
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
        Ok(queries::message_by_client_id(
            &self.conn, identity, client_id,
        )?)
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
        now: i64,
    ) -> Result<ContactId, DispatchError> {
        let contact = self.next_contact;
        self.append(
            Op::ContactCreated {
                contact,
                identity: identity.clone(),
                at_ms: now,
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
        now: i64,
    ) -> Result<ConversationId, DispatchError> {
        let conversation = self.next_conversation;
        self.append(
            Op::ConversationOpened {
                conversation,
                contact,
                at_ms: now,
            },
            None,
        )?;
        self.next_conversation += 1;
        self.conversations.insert(
            conversation,
            ConversationState {
                contact,
                status: Status::Idle,
                assignee: None,
                idle_deadline: None,
                handoff_team: None,
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

    fn ring(messages: std::ops::RangeInclusive<Lsn>) -> VecDeque<RecentClientId> {
        messages
            .map(|message| RecentClientId {
                from: 0,
                client_id: crate::model::bounded_id(&message.to_string()).unwrap(),
                message,
            })
            .collect()
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
}
