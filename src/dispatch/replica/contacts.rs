//! Cluster mode for contacts: links and names travel to every box as operations that name
//! contacts by identity, each merged as a CRDT.
//!
//! - Links are a grow-only set of edges between identities. A box applies an edge by linking
//!   the contacts holding its two identities; an identity it has never seen gets a contact
//!   there and then (its messages, when they come, find it already linked), so an edge never
//!   waits and the partition of identities into contacts is the same on every box whatever
//!   order the edges come in. When both contacts have a conversation not closed, one folds
//!   into the other as on one box; when both are open (or both resolved), the one with the
//!   greater cluster name ([`ConvKey`]: home box, its id there) folds into the lesser, the
//!   same choice on every box. Every name the folded conversation went by then names the kept
//!   one here (`homes`), so later operations about it land there.
//! - A contact's name and details are a last-writer-wins register: its version is the write's
//!   HLC time, then its origin; the higher wins. Linking two contacts keeps the one whose
//!   register is newer (the store keeps the kept contact's name and details), so the merged
//!   contact holds the newest write of all its identities. A write made here is stamped after
//!   the version it replaces, so it wins here and everywhere alike.
//!
//! Invariant: a contact's version (`versions.rs`: memory over the store) is the highest
//! applied to it or to any contact linked into it.

use super::{Body, Decider, DispatchError, Now, Op, Replica, Timestamp};
use crate::cluster::vector::NodeId;
use crate::cluster::wire::{RemoteDetails, RemoteLink};
use crate::dispatch::ports::{Journal, Snapshot};
use crate::model::{ContactId, ConversationId, Identity};

/// A register's version: the write's HLC time, then its origin.
pub(in crate::dispatch) type Version = (u64, NodeId);

impl Replica {
    /// The HLC time of a write of a contact's register made here (`register`: the contact
    /// and the version it holds): the clock's, or just after the version it replaces when
    /// that is later (written by a box ahead). Recorded as its version.
    pub(super) fn register_time(
        &mut self,
        register: Option<(ContactId, Version)>,
        wall_ms: u64,
    ) -> Timestamp {
        let now = self.hlc.now(wall_ms);
        let Some((contact, held)) = register else {
            return now;
        };
        let time = now.max(Timestamp(held.0.saturating_add(1)));
        self.versions.write(contact, (time.0, self.node));
        time
    }

    /// Memory after `folded`'s first conversation was folded into its second: every name of
    /// the folded conversation, its customer messages and its floor.
    fn folded(&mut self, folded: Option<(ConversationId, ConversationId)>) {
        let Some((from, into)) = folded else {
            return;
        };
        self.names.fold(from, into);
        if let Some(from_tips) = self.tips.remove(&from) {
            for (origin, seq) in from_tips {
                self.note_customer_message(into, origin, seq);
            }
        }
        if let Some(floor) = self.floors.remove(&from) {
            let kept = self.floors.entry(into).or_default();
            *kept = (*kept).max(floor);
        }
    }
}

impl<J: Journal, S: Snapshot> Decider<J, S> {
    /// The cluster body of a link or a contact's details made here.
    pub(super) fn contact_body(&self, op: &Op) -> Result<Option<Body>, DispatchError> {
        Ok(Some(match op {
            Op::ContactsLinked {
                keep,
                merged,
                at_ms,
                ..
            } => Body::Link(RemoteLink {
                a: self.home_identity(*keep)?,
                b: self.home_identity(*merged)?,
                at_ms: *at_ms,
            }),
            Op::ContactDetails {
                contact,
                name,
                details,
                at_ms,
            } => Body::Details(RemoteDetails {
                contact: self.home_identity(*contact)?,
                name: name.clone(),
                details: details.clone(),
                at_ms: *at_ms,
            }),
            _ => return Ok(None),
        }))
    }

    /// The contact holding `identity` now, without hydrating it (`None`: never seen here).
    pub(super) fn contact_holding(
        &self,
        identity: &Identity,
    ) -> Result<Option<ContactId>, DispatchError> {
        if let Some(&contact) = self.identities.get(identity) {
            return Ok(Some(contact));
        }
        Ok(self
            .store
            .contact_by_identity(identity)?
            .map(|c| self.resolve_linked(c)))
    }

    /// The contact holding `identity`, hydrated; one is made for an identity never seen here.
    fn contact_for_identity(
        &mut self,
        identity: &Identity,
        now: Now,
    ) -> Result<ContactId, DispatchError> {
        match self.lookup_identity(identity, now)? {
            Some(contact) => Ok(contact),
            None => self.create_contact(identity.clone(), now),
        }
    }

    /// Which of two contacts to keep when they are linked: in cluster mode the one whose
    /// register is newer (`keep` on a tie); alone, `keep`.
    pub(in crate::dispatch) fn keep_newer(
        &self,
        keep: ContactId,
        merged: ContactId,
    ) -> Result<(ContactId, ContactId), DispatchError> {
        if self.replica.is_some() && self.contact_version(merged)? > self.contact_version(keep)? {
            return Ok((merged, keep));
        }
        Ok((keep, merged))
    }

    /// Whether conversation `a` comes before `b` by their cluster names, so that `b` folds
    /// into `a` when both are open (never alone: there the kept contact's is kept).
    pub(in crate::dispatch) fn folds_first(
        &self,
        a: ConversationId,
        b: ConversationId,
    ) -> Result<bool, DispatchError> {
        if self.replica.is_none() {
            return Ok(false);
        }
        let (a, b) = (self.key_of(a)?, self.key_of(b)?);
        Ok((a.home, a.id) < (b.home, b.id))
    }

    /// Before `from` folds into `into`: in cluster mode, journals that this box's own name
    /// for `from` now names `into` (glued to the link that follows).
    pub(in crate::dispatch) fn before_fold(
        &mut self,
        from: ConversationId,
        into: ConversationId,
    ) -> Result<(), DispatchError> {
        let Some(replica) = self.replica.as_mut() else {
            return Ok(());
        };
        // Both are not closed: memory holds their names.
        if replica.names.copy_key(from).is_some() {
            // A copy: the store moves its home's name to `into` with the link.
            return Ok(());
        }
        let node = replica.node;
        let own = super::ConvKey {
            home: node,
            id: from,
        };
        replica.names.insert(own, into, false);
        let was = std::mem::replace(&mut self.bundling, true);
        let appended = self.append(
            Op::ConversationHomed {
                conversation: into,
                home_node: node,
                home_id: from,
                joined: false,
            },
            None,
        );
        self.bundling = was;
        appended.map(|_| ())
    }

    /// After a link was journaled: cluster memory follows it (the kept contact's version is
    /// the greater of the two).
    pub(in crate::dispatch) fn after_link(
        &mut self,
        keep: ContactId,
        merged: ContactId,
        folded: Option<(ConversationId, ConversationId)>,
    ) -> Result<(), DispatchError> {
        if self.replica.is_none() {
            return Ok(());
        }
        let version = self
            .contact_version(keep)?
            .max(self.contact_version(merged)?);
        let last = self.journal.last();
        let replica = self.replica_mut();
        replica.versions.write(keep, version);
        replica.folded(folded);
        if let Some((from, _)) = folded {
            replica.forget(from, last);
        }
        Ok(())
    }

    /// Another box's link: the contacts holding its identities become one (nothing to do if
    /// they are one already).
    pub(super) fn apply_link(&mut self, link: RemoteLink, now: Now) -> Result<(), DispatchError> {
        let a = self.contact_for_identity(&link.a, now)?;
        let b = self.contact_for_identity(&link.b, now)?;
        if a == b {
            return Ok(());
        }
        self.check_linkable(a, b, now)?;
        let (keep, merged) = self.keep_newer(a, b)?;
        self.link_checked(keep, merged, now).map(|_| ())
    }

    /// Another box's write of a contact's register: kept if its version is newer.
    pub(super) fn apply_details(
        &mut self,
        write: RemoteDetails,
        version: Version,
        now: Now,
    ) -> Result<(), DispatchError> {
        let contact = self.contact_for_identity(&write.contact, now)?;
        if version <= self.contact_version(contact)? {
            return Ok(());
        }
        self.append(
            Op::ContactDetails {
                contact,
                name: write.name,
                details: write.details,
                at_ms: write.at_ms,
            },
            None,
        )?;
        self.replica_mut().versions.write(contact, version);
        Ok(())
    }
}
