//! Linking two contacts into one person: identities, client-id rings and open conversations
//! fold into the kept contact, in memory as the journaled `ContactsLinked` says. In cluster
//! mode which contact is kept and which conversation folds are the cluster's choices
//! (`replica/contacts.rs`), the same on every box.

use super::command::LinkContacts;
use super::messages::trim_recent;
use super::ports::{Journal, Snapshot};
use super::state::{Now, RecentClientId, MAX_IDENTITIES};
use super::{Accepted, Decider, DispatchError};
use crate::conversation::Status;
use crate::model::{ContactId, ConversationId};
use crate::op::Op;

impl<J: Journal, S: Snapshot> Decider<J, S> {
    /// Links contact `merged` into `keep`: one person, one history, one open conversation
    /// (when both had one, one folds into the other: [`fold`]). In cluster mode the contact
    /// whose name and details are newer is kept, whichever was asked.
    pub(crate) fn link_contacts(
        &mut self,
        cmd: LinkContacts,
        now: Now,
    ) -> Result<Accepted, DispatchError> {
        let LinkContacts { keep, merged } = cmd;
        self.check_linkable(keep, merged, now)?;
        let (keep, merged) = self.keep_newer(keep, merged)?;
        self.link_checked(keep, merged, now)
    }

    /// Links two contacts [`Decider::check_linkable`] accepted.
    pub(super) fn link_checked(
        &mut self,
        keep: ContactId,
        merged: ContactId,
        now: Now,
    ) -> Result<Accepted, DispatchError> {
        let status = |c: Option<ConversationId>| {
            c.and_then(|c| self.conversations.get(&c)).map(|s| s.status)
        };
        let (kept_current, merged_current) =
            (self.contacts[&keep].current, self.contacts[&merged].current);
        let merged_first = match kept_current.zip(merged_current) {
            Some((k, m)) => self.folds_first(m, k)?,
            None => false,
        };
        let folded = fold(
            kept_current.zip(status(kept_current)),
            merged_current.zip(status(merged_current)),
            merged_first,
        );
        if let Some((from, into)) = folded {
            self.before_fold(from, into)?;
            self.fold_holders(from, into)?;
        }
        let lsn = self.append(
            Op::ContactsLinked {
                keep,
                merged,
                folded,
                at_ms: now.wall_ms,
            },
            None,
        )?;
        if let Some((from, _)) = folded {
            self.forget_folded(from);
        }
        let current = match folded {
            Some((_, into)) => Some(into),
            None => kept_current.or(merged_current),
        };
        self.merge_contacts(keep, merged, current);
        self.after_link(keep, merged, folded)?;
        Ok(Accepted {
            lsn,
            conversation: current.unwrap_or(0),
            message_id: None,
        })
    }

    /// Both contacts exist, are not linked away already, are hydrated, and fit in one.
    pub(super) fn check_linkable(
        &mut self,
        keep: ContactId,
        merged: ContactId,
        now: Now,
    ) -> Result<(), DispatchError> {
        if keep == merged {
            return Err(DispatchError::CannotLink(
                "a contact cannot be linked to itself",
            ));
        }
        for id in [keep, merged] {
            // Memory first: a contact created a moment ago may not be in the store yet.
            let exists = self.contacts.contains_key(&id) || self.store.contact_exists(id)?;
            if self.linked.contains_key(&id) || !exists {
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
        Ok(())
    }

    /// A conversation folded into another leaves memory: its timer, its queue place, and the
    /// load it counted for its agent.
    fn forget_folded(&mut self, from: ConversationId) {
        let Some(state) = self.conversations.remove(&from) else {
            return;
        };
        if let Some(deadline) = state.idle_deadline {
            self.idle_deadlines.remove(&(deadline, from));
        }
        if state.status.is_open() {
            if let Some(agent) = state.assignee {
                self.scheduler.holding(agent, false);
            }
        }
        self.scheduler.dequeue(from);
    }

    /// Moves `merged` into `keep` in memory: identities (appended, so the kept ones keep their
    /// ring indexes), both client-id rings in message order, the later reply route, and
    /// `current` as the kept contact's open conversation.
    fn merge_contacts(
        &mut self,
        keep: ContactId,
        merged: ContactId,
        current: Option<ConversationId>,
    ) {
        let gone = self
            .contacts
            .remove(&merged)
            .expect("invariant: hydrated by check_linkable");
        self.linked.insert(merged, keep);
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
            .expect("invariant: hydrated by check_linkable");
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
    }
}

/// Which conversation folds into which, `(from, into)`, when both linked contacts have one not
/// yet closed (with its status): a question never folds into a conversation that is resolved
/// and about to close; otherwise the merged contact's folds into the kept one's, unless
/// `merged_first` (the cluster's order puts the merged one's first).
fn fold(
    kept: Option<(ConversationId, Status)>,
    merged: Option<(ConversationId, Status)>,
    merged_first: bool,
) -> Option<(ConversationId, ConversationId)> {
    match (merged, kept) {
        (Some((m, ms)), Some((k, ks))) if ms.is_open() != ks.is_open() => {
            Some(if ms.is_open() { (k, m) } else { (m, k) })
        }
        (Some((m, _)), Some((k, _))) if merged_first => Some((k, m)),
        (Some((m, _)), Some((k, _))) => Some((m, k)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dispatch::fakes::{at, decider, identity, TestDecider, T0};
    use crate::dispatch::{CustomerMessage, Resolve};
    use crate::model::{bounded_id, Identity};

    fn write(d: &mut TestDecider, who: &Identity, client_id: &str, now: Now) -> Accepted {
        let message = CustomerMessage {
            identity: who.clone(),
            client_id: Some(bounded_id(client_id).unwrap()),
            text: "hi".into(),
            attachment: None,
        };
        d.customer_message(message, now).unwrap()
    }

    #[test]
    fn linking_folds_the_merged_conversation_into_the_kept_one_and_keeps_both_rings() {
        let mut d = decider();
        let (web, kiosk) = (identity("web", "v1"), identity("mqtt", "kiosk-7"));
        let kept = write(&mut d, &web, "w1", T0);
        let merged = write(&mut d, &kiosk, "k1", at(1));
        let a = d
            .link_contacts(LinkContacts { keep: 1, merged: 2 }, at(2))
            .unwrap();
        assert!(
            matches!(d.ops_since(a.lsn - 1)[..], [Op::ContactsLinked { keep: 1, merged: 2, folded: Some((from, into)), .. }]
            if *from == merged.conversation && *into == kept.conversation)
        );
        assert_eq!(a.conversation, kept.conversation);
        assert_eq!(
            &d.contacts[&1].identities[..],
            &[web.clone(), kiosk.clone()]
        );
        assert!(!d.contacts.contains_key(&2));
        assert!(!d.conversations.contains_key(&merged.conversation));
        // Both clients' resends are still recognised; the kiosk now writes into the kept one.
        let last = d.journal.last();
        assert_eq!(
            write(&mut d, &kiosk, "k1", at(3)).message_id,
            merged.message_id
        );
        assert_eq!(write(&mut d, &web, "w1", at(3)).message_id, kept.message_id);
        assert_eq!(d.journal.last(), last);
        assert_eq!(
            write(&mut d, &kiosk, "k2", at(4)).conversation,
            kept.conversation
        );
    }

    #[test]
    fn an_open_question_never_folds_into_a_resolved_conversation() {
        let mut d = decider();
        let (web, kiosk) = (identity("web", "v1"), identity("mqtt", "kiosk-7"));
        let kept = write(&mut d, &web, "w1", T0);
        d.resolve(
            Resolve {
                conversation: kept.conversation,
                by: 1,
            },
            at(1),
        )
        .unwrap();
        let open = write(&mut d, &kiosk, "k1", at(2));
        let a = d
            .link_contacts(LinkContacts { keep: 1, merged: 2 }, at(3))
            .unwrap();
        assert!(
            matches!(d.ops_since(a.lsn - 1)[..], [Op::ContactsLinked { folded: Some((from, into)), .. }]
            if *from == kept.conversation && *into == open.conversation)
        );
        assert_eq!(a.conversation, open.conversation);
        assert!(
            d.idle_deadlines.is_empty(),
            "the folded one's timer is gone"
        );
    }

    #[test]
    fn linking_refuses_itself_unknown_and_already_linked_contacts() {
        let mut d = decider();
        write(&mut d, &identity("web", "v1"), "a", T0);
        write(&mut d, &identity("web", "v2"), "b", T0);
        d.store_catches_up();
        let refuse = |d: &mut TestDecider, keep, merged| {
            let last = d.journal.last();
            let e = d
                .link_contacts(LinkContacts { keep, merged }, at(1))
                .unwrap_err();
            assert_eq!(d.journal.last(), last);
            e
        };
        assert!(matches!(refuse(&mut d, 1, 1), DispatchError::CannotLink(_)));
        assert!(matches!(
            refuse(&mut d, 1, 9),
            DispatchError::NoSuchContact(9)
        ));
        d.link_contacts(LinkContacts { keep: 1, merged: 2 }, at(1))
            .unwrap();
        // The store has not applied the link: memory knows better.
        assert!(matches!(
            refuse(&mut d, 2, 1),
            DispatchError::NoSuchContact(2)
        ));
    }

    #[test]
    fn a_contact_has_at_most_32_identities() {
        let mut d = decider();
        for i in 0..=MAX_IDENTITIES {
            write(&mut d, &identity("web", &format!("v{i}")), "c", T0);
        }
        d.store_catches_up();
        for merged in 2..=MAX_IDENTITIES as u64 {
            d.link_contacts(LinkContacts { keep: 1, merged }, at(1))
                .unwrap();
        }
        assert_eq!(d.contacts[&1].identities.len(), MAX_IDENTITIES);
        let merged = MAX_IDENTITIES as u64 + 1;
        assert!(matches!(
            d.link_contacts(LinkContacts { keep: 1, merged }, at(2)),
            Err(DispatchError::CannotLink(_))
        ));
    }
}
