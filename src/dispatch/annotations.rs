//! What agents and customers add to conversations and contacts besides messages: labels on a
//! conversation, the customer's rating of a resolved one, a contact's name and details.
//!
//! Invariants: a conversation is labeled or rated only if it exists (in memory, or in the
//! store, which holds as it is whatever memory does not); a rating comes from the customer
//! whose conversation it is (one of the contact's identities) and only once the conversation
//! is resolved or closed; the score is 1 to 5. Nothing refused is journaled. What an agent
//! may label with, and how details are merged, the API checks before it asks.

use super::command::{EditContact, LabelConversation, RateConversation};
use super::ports::{Journal, Snapshot};
use super::state::Now;
use super::{Accepted, Decider, DispatchError};
use crate::conversation::Status;
use crate::model::{ContactId, ConversationId};
use crate::op::Op;

/// The longest rating comment, in characters.
const MAX_RATING_COMMENT_CHARS: usize = 1000;

impl<J: Journal, S: Snapshot> Decider<J, S> {
    /// Replaces the labels on a conversation.
    pub(crate) fn label_conversation(
        &mut self,
        cmd: LabelConversation,
        now: Now,
    ) -> Result<Accepted, DispatchError> {
        self.conversation_owner(cmd.conversation)?;
        let mut labels = cmd.labels;
        labels.sort_unstable();
        labels.dedup();
        let lsn = self.append(
            Op::ConversationLabeled {
                conversation: cmd.conversation,
                labels,
                by: cmd.by,
                at_ms: now.wall_ms,
            },
            None,
        )?;
        Ok(Accepted {
            lsn,
            conversation: cmd.conversation,
            message_id: None,
        })
    }

    /// The customer rates their resolved conversation.
    pub(crate) fn rate_conversation(
        &mut self,
        cmd: RateConversation,
        now: Now,
    ) -> Result<Accepted, DispatchError> {
        let RateConversation {
            identity,
            conversation,
            score,
            comment,
        } = cmd;
        if !(1..=5).contains(&score) {
            return Err(DispatchError::BadRating("score must be 1 to 5"));
        }
        if comment.chars().count() > MAX_RATING_COMMENT_CHARS {
            return Err(DispatchError::BadRating("comment is over 1000 characters"));
        }
        let (owner, status) = self.conversation_owner(conversation)?;
        let rater = self.lookup_identity(&identity, now)?;
        if rater != Some(owner) {
            return Err(DispatchError::NotYours(conversation));
        }
        if !matches!(status, Status::Resolved | Status::Idle) {
            return Err(DispatchError::NotResolved(conversation));
        }
        let lsn = self.append(
            Op::ConversationRated {
                conversation,
                score,
                comment,
                at_ms: now.wall_ms,
            },
            None,
        )?;
        Ok(Accepted {
            lsn,
            conversation,
            message_id: None,
        })
    }

    /// Replaces a contact's name and details (the API merged the details it was given into
    /// the stored ones).
    pub(crate) fn edit_contact(
        &mut self,
        cmd: EditContact,
        now: Now,
    ) -> Result<Accepted, DispatchError> {
        let contact = self.existing_contact(cmd.contact)?;
        let lsn = self.append(
            Op::ContactDetails {
                contact,
                name: cmd.name,
                details: cmd.details,
                at_ms: now.wall_ms,
            },
            None,
        )?;
        Ok(Accepted {
            lsn,
            conversation: 0,
            message_id: None,
        })
    }

    /// The contact a conversation belongs to now (after links), and its status.
    fn conversation_owner(
        &mut self,
        conversation: ConversationId,
    ) -> Result<(ContactId, Status), DispatchError> {
        if let Some(state) = self.conversations.get(&conversation) {
            return Ok((self.resolve_linked(state.contact), state.status));
        }
        let state = self
            .store
            .conversation(conversation)?
            .ok_or(DispatchError::NotFound(conversation))?;
        Ok((self.resolve_linked(state.contact), state.status))
    }

    /// `contact`, or the one it was linked into since; refused if there is none.
    fn existing_contact(&mut self, contact: ContactId) -> Result<ContactId, DispatchError> {
        let contact = self.resolve_linked(contact);
        if self.contacts.contains_key(&contact) || self.store.contact_exists(contact)? {
            Ok(contact)
        } else {
            Err(DispatchError::NoSuchContact(contact))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dispatch::fakes::{decider, identity, TestDecider, T0};
    use crate::dispatch::{CustomerMessage, Resolve};
    use crate::model::{bounded_id, Identity};

    fn web(who: &str) -> Identity {
        identity("web", who)
    }

    fn customer_writes(d: &mut TestDecider, who: &Identity, client_id: &str) -> Accepted {
        let message = CustomerMessage {
            identity: who.clone(),
            client_id: Some(bounded_id(client_id).unwrap()),
            text: "hi".into(),
            attachment: None,
        };
        d.customer_message(message, T0).unwrap()
    }

    fn rate(identity: &Identity, conversation: ConversationId, score: u8) -> RateConversation {
        RateConversation {
            identity: identity.clone(),
            conversation,
            score,
            comment: "quick and kind".into(),
        }
    }

    #[test]
    fn a_customer_rates_their_own_conversation_once_it_is_resolved() {
        let (mut d, now) = (decider(), T0);
        let ann = web("ann");
        let conversation = customer_writes(&mut d, &ann, "c1").conversation;
        assert!(matches!(
            d.rate_conversation(rate(&ann, conversation, 5), now),
            Err(DispatchError::NotResolved(c)) if c == conversation
        ));
        d.resolve(
            Resolve {
                conversation,
                by: 1,
            },
            now,
        )
        .unwrap();
        let before = d.journal.entries.len();
        let accepted = d
            .rate_conversation(rate(&ann, conversation, 5), now)
            .unwrap();
        assert_eq!(d.journal.entries.len(), before + 1);
        assert_eq!(accepted.lsn, d.journal.last());
        assert!(matches!(
            &d.journal.entries.last().unwrap().op,
            Op::ConversationRated { score: 5, conversation: c, .. } if *c == conversation
        ));
    }

    #[test]
    fn another_customer_cannot_rate_it_and_bad_scores_are_refused() {
        let (mut d, now) = (decider(), T0);
        let (ann, bob) = (web("ann"), web("bob"));
        let conversation = customer_writes(&mut d, &ann, "c1").conversation;
        customer_writes(&mut d, &bob, "c1");
        d.resolve(
            Resolve {
                conversation,
                by: 1,
            },
            now,
        )
        .unwrap();
        let before = d.journal.entries.len();
        assert!(matches!(
            d.rate_conversation(rate(&bob, conversation, 4), now),
            Err(DispatchError::NotYours(_))
        ));
        assert!(matches!(
            d.rate_conversation(rate(&web("stranger"), conversation, 4), now),
            Err(DispatchError::NotYours(_))
        ));
        for score in [0, 6] {
            assert!(matches!(
                d.rate_conversation(rate(&ann, conversation, score), now),
                Err(DispatchError::BadRating(_))
            ));
        }
        assert!(matches!(
            d.rate_conversation(rate(&ann, 999, 4), now),
            Err(DispatchError::NotFound(999))
        ));
        assert_eq!(
            d.journal.entries.len(),
            before,
            "nothing refused is journaled"
        );
    }

    #[test]
    fn labels_are_journaled_sorted_once_each_and_only_for_a_conversation_that_exists() {
        let (mut d, now) = (decider(), T0);
        let conversation = customer_writes(&mut d, &web("ann"), "c1").conversation;
        d.label_conversation(
            LabelConversation {
                conversation,
                labels: vec![3, 1, 3],
                by: 1,
            },
            now,
        )
        .unwrap();
        assert!(matches!(
            &d.journal.entries.last().unwrap().op,
            Op::ConversationLabeled { labels, by: 1, .. } if labels == &[1, 3]
        ));
        assert!(matches!(
            d.label_conversation(
                LabelConversation {
                    conversation: 999,
                    labels: vec![1],
                    by: 1
                },
                now
            ),
            Err(DispatchError::NotFound(999))
        ));
    }

    #[test]
    fn a_contact_edit_names_an_existing_contact() {
        let (mut d, now) = (decider(), T0);
        customer_writes(&mut d, &web("ann"), "c1");
        let contact = *d.contacts.keys().next().unwrap();
        d.edit_contact(
            EditContact {
                contact,
                name: "Ann Lee".into(),
                details: r#"{"phone":"+86 138"}"#.into(),
            },
            now,
        )
        .unwrap();
        assert!(matches!(
            &d.journal.entries.last().unwrap().op,
            Op::ContactDetails { name, .. } if name == "Ann Lee"
        ));
        assert!(matches!(
            d.edit_contact(
                EditContact {
                    contact: 4242,
                    name: String::new(),
                    details: "{}".into()
                },
                now
            ),
            Err(DispatchError::NoSuchContact(4242))
        ));
    }
}
