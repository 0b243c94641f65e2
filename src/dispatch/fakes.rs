//! In-memory ports for the handlers' unit tests: a journal that records what it is given, and a
//! store that projects those records the way the SQLite store does for the reads the dispatcher
//! makes (contacts and identities, open conversations, client ids, the queue, links, cluster
//! names), with an `applied` mark the test moves. Together with a [`Now`] the test picks, they let every
//! handler run without a database, a socket or a clock.

use std::cell::Cell;
use std::collections::HashMap;
use std::sync::Arc;

use super::ports::{Journal, Snapshot, Startup};
use super::state::{DispatchConfig, Now};
use super::{Decider, DispatchError};
use crate::cluster::kb_lww::Version;
use crate::cluster::wire::{Body, ConvKey};
use crate::conversation::Status;
use crate::model::{
    bounded_id, AgentId, ContactId, ConversationId, Identity, Lsn, MessageId, Sender,
};
use crate::op::{Entry, KbEntry, Op};
use crate::routing::bot::BotConfig;
use crate::store::queries::{ClusterStartup, ContactSnapshot, ConversationState, RoutingAgent};

/// Records every entry; refuses once `closed` (a journal that stopped).
#[derive(Default)]
pub(super) struct RecordedJournal {
    pub entries: Vec<Entry>,
    pub closed: bool,
}

impl Journal for RecordedJournal {
    fn append(&mut self, op: Op, audience: Option<Arc<[Identity]>>) -> Result<Lsn, DispatchError> {
        if self.closed {
            return Err(DispatchError::Unavailable);
        }
        let lsn = self.last() + 1;
        self.entries.push(Entry {
            lsn,
            op,
            audience,
            glue: false,
        });
        Ok(lsn)
    }

    fn append_glued(
        &mut self,
        op: Op,
        audience: Option<Arc<[Identity]>>,
    ) -> Result<Lsn, DispatchError> {
        let lsn = self.append(op, audience)?;
        self.entries.last_mut().expect("just appended").glue = true;
        Ok(lsn)
    }

    fn last(&self) -> Lsn {
        self.entries.last().map_or(0, |e| e.lsn)
    }
}

struct StoredConversation {
    contact: ContactId,
    status: Status,
    assignee: Option<AgentId>,
    resolved_at: Option<i64>,
    queued: Option<(i64, String)>,
}

struct StoredMessage {
    id: MessageId,
    conversation: ConversationId,
    bot: bool,
    at_ms: i64,
    contact: ContactId,
    client_id: Option<String>,
    via: Option<Identity>,
    visitor: bool,
}

/// The store's projection of the journal, as far as the dispatcher reads it.
#[derive(Default)]
pub(super) struct MemoryStore {
    identities: HashMap<Identity, ContactId>,
    /// Identities of each contact in the order they were added; `merged_into` once linked.
    contacts: HashMap<ContactId, (Vec<Identity>, Option<ContactId>)>,
    conversations: HashMap<ConversationId, StoredConversation>,
    messages: Vec<StoredMessage>,
    pub kb: Vec<KbEntry>,
    pub agents: Vec<RoutingAgent>,
    /// The business hours the dispatcher starts with.
    pub hours: crate::hours::Hours,
    applied: Cell<Lsn>,
    wanted: Cell<Lsn>,
    /// Cluster mode: each message's dot, from its `Replicated` record.
    dots: HashMap<MessageId, crate::cluster::vector::Dot>,
    /// The shop's label definitions (set by the test: the API writes them, not the journal).
    pub labels: Vec<crate::store::queries::Label>,
    /// Cluster mode: per conversation and label-or-rating kind, the greatest version applied.
    annotations: HashMap<(ConvKey, u8), Version>,
    /// Cluster mode: which conversation each cluster name names, and whether it is a copy.
    homes: HashMap<ConvKey, (ConversationId, bool)>,
    /// Cluster mode: each contact's name-and-details register version.
    versions: HashMap<ContactId, (u64, u64)>,
}

impl MemoryStore {
    /// A store that has the knowledge base `kb` and the agents `agents`, and nothing else.
    pub fn with(kb: Vec<KbEntry>, agents: Vec<RoutingAgent>) -> Self {
        MemoryStore {
            kb,
            agents,
            ..MemoryStore::default()
        }
    }

    /// Applies `entries` (those past the applied mark) and moves the mark to the last one.
    pub fn apply(&mut self, entries: &[Entry]) {
        for e in entries {
            if e.lsn > self.applied.get() {
                self.apply_op(e.lsn, &e.op);
                self.applied.set(e.lsn);
            }
        }
    }

    /// The highest LSN the dispatcher asked the store to apply promptly.
    pub fn wanted(&self) -> Lsn {
        self.wanted.get()
    }

    fn apply_op(&mut self, lsn: Lsn, op: &Op) {
        match op {
            Op::ContactCreated {
                contact, identity, ..
            } => {
                self.identities.insert(identity.clone(), *contact);
                self.contacts
                    .insert(*contact, (vec![identity.clone()], None));
            }
            Op::ConversationOpened {
                conversation,
                contact,
                ..
            } => {
                let stored = StoredConversation {
                    contact: *contact,
                    status: Status::Idle,
                    assignee: None,
                    resolved_at: None,
                    queued: None,
                };
                self.conversations.insert(*conversation, stored);
            }
            Op::StatusChanged(s) => {
                let c = self.conversations.get_mut(&s.conversation).expect("opened");
                c.status = s.to;
                c.assignee = s.assignee;
                if s.to == Status::Resolved {
                    c.resolved_at = Some(s.at_ms);
                }
            }
            Op::HandedToHuman {
                conversation,
                team,
                at_ms,
                ..
            } => {
                let c = self.conversations.get_mut(conversation).expect("opened");
                c.queued = Some((*at_ms, team.clone()));
            }
            Op::MessageAdded(m) => self.messages.push(StoredMessage {
                id: lsn,
                conversation: m.conversation,
                bot: m.sender == Sender::Bot,
                at_ms: m.at_ms,
                contact: m.contact,
                client_id: m.client_id.as_ref().map(|c| c.to_string()),
                via: m.via.clone(),
                visitor: m.sender == Sender::Visitor,
            }),
            Op::ContactsLinked {
                keep,
                merged,
                folded,
                ..
            } => {
                let moved = std::mem::take(&mut self.contacts.get_mut(merged).expect("merged").0);
                for identity in &moved {
                    self.identities.insert(identity.clone(), *keep);
                }
                self.contacts.get_mut(keep).expect("kept").0.extend(moved);
                self.contacts.get_mut(merged).expect("merged").1 = Some(*keep);
                for c in self.conversations.values_mut() {
                    if c.contact == *merged {
                        c.contact = *keep;
                    }
                }
                for m in &mut self.messages {
                    if m.contact == *merged {
                        m.contact = *keep;
                    }
                }
                if let Some(v) = self.versions.remove(merged) {
                    let kept = self.versions.entry(*keep).or_insert(v);
                    *kept = (*kept).max(v);
                }
                if let Some((from, into)) = folded {
                    for named in self.homes.values_mut().filter(|(c, _)| c == from) {
                        *named = (*into, false);
                    }
                    let c = self.conversations.get_mut(from).expect("folded");
                    c.status = Status::Idle;
                    c.assignee = None;
                    c.queued = None;
                }
            }
            Op::ConversationHomed {
                conversation,
                home_node,
                home_id,
                joined,
            } => {
                let key = ConvKey {
                    home: *home_node,
                    id: *home_id,
                };
                self.homes.entry(key).or_insert((*conversation, *joined));
            }
            Op::Replicated(r) => {
                if let Ok(crate::cluster::wire::Body::Details(d)) =
                    crate::cluster::wire::Body::decode(&r.body)
                {
                    let v = self
                        .versions
                        .entry(self.identities[&d.contact])
                        .or_default();
                    *v = (*v).max((r.hlc, r.origin));
                }
                if let Some(message) = r.message {
                    let dot = crate::cluster::vector::Dot {
                        origin: r.origin,
                        seq: r.seq,
                    };
                    self.dots.insert(message, dot);
                }
                let key = match Body::decode(&r.body) {
                    Ok(Body::Labels(l)) => Some(l.conversation),
                    Ok(Body::Rating(rating)) => Some(rating.conversation),
                    _ => None,
                };
                if let Some(key) = key {
                    let version = Version {
                        hlc: r.hlc,
                        origin: r.origin,
                    };
                    let held = self.annotations.entry((key, r.body[0])).or_insert(version);
                    *held = (*held).max(version);
                }
            }
            _ => {}
        }
    }

    fn state_of(&self, id: ConversationId) -> Option<ConversationState> {
        let c = self.conversations.get(&id)?;
        Some(ConversationState {
            id,
            contact: c.contact,
            status: c.status,
            assignee: c.assignee,
            resolved_at: c.resolved_at,
            handoff_team: c.queued.as_ref().map(|(_, team)| team.clone()),
        })
    }
}

impl Snapshot for MemoryStore {
    fn startup(&self) -> Result<Startup, DispatchError> {
        let mut open_by_assignee: HashMap<AgentId, u32> = HashMap::new();
        for c in self.conversations.values() {
            if let Some(a) = c.assignee.filter(|_| c.status.is_open()) {
                *open_by_assignee.entry(a).or_default() += 1;
            }
        }
        let mut queued_teams: Vec<String> = self
            .conversations
            .values()
            .filter(|c| c.status == Status::Waiting && c.assignee.is_none())
            .filter_map(|c| c.queued.as_ref().map(|(_, team)| team.clone()))
            .collect();
        queued_teams.sort();
        queued_teams.dedup();
        Ok(Startup {
            max_contact: self.contacts.keys().max().copied().unwrap_or(0),
            max_conversation: self.conversations.keys().max().copied().unwrap_or(0),
            resolved: self
                .conversations
                .iter()
                .filter(|(_, c)| c.status == Status::Resolved)
                .map(|(id, c)| (*id, c.resolved_at.unwrap_or(0)))
                .collect(),
            kb: self.kb.clone(),
            agents: self.agents.clone(),
            open_by_assignee: open_by_assignee.into_iter().collect(),
            queued_teams,
            cluster: ClusterStartup {
                homes: self
                    .homes
                    .iter()
                    .filter(|(_, (c, _))| self.conversations[c].status != Status::Idle)
                    .map(|(k, (c, joined))| (k.home, k.id, *c, *joined))
                    .collect(),
                ..ClusterStartup::default()
            },
            hours: self.hours.clone(),
        })
    }

    fn contact_by_identity(&self, identity: &Identity) -> Result<Option<ContactId>, DispatchError> {
        Ok(self.identities.get(identity).copied())
    }

    fn contact_exists(&self, contact: ContactId) -> Result<bool, DispatchError> {
        Ok(self
            .contacts
            .get(&contact)
            .is_some_and(|(_, merged_into)| merged_into.is_none()))
    }

    fn contact(&self, contact: ContactId, recent: u32) -> Result<ContactSnapshot, DispatchError> {
        let identities = self
            .contacts
            .get(&contact)
            .map_or(Vec::new(), |c| c.0.clone());
        let current = self
            .conversations
            .iter()
            .filter(|(_, c)| c.contact == contact && c.status != Status::Idle)
            .map(|(id, _)| *id)
            .max()
            .and_then(|id| self.state_of(id));
        let mine = || self.messages.iter().filter(|m| m.contact == contact);
        let mut recent_client_ids: Vec<(String, String, String, MessageId)> = mine()
            .rev()
            .filter_map(|m| {
                let via = m.via.as_ref()?;
                Some((
                    via.channel.to_string(),
                    via.external_id.to_string(),
                    m.client_id.clone()?,
                    m.id,
                ))
            })
            .take(recent as usize)
            .collect();
        recent_client_ids.reverse();
        let last_via = mine()
            .rev()
            .find(|m| m.visitor && m.via.is_some())
            .map(|m| (m.via.clone().expect("filtered"), m.id));
        Ok(ContactSnapshot {
            identities,
            current,
            recent_client_ids,
            last_via,
        })
    }

    fn conversation(
        &self,
        conversation: ConversationId,
    ) -> Result<Option<ConversationState>, DispatchError> {
        Ok(self.state_of(conversation))
    }

    fn message_by_client_id(
        &self,
        identity: &Identity,
        client_id: &str,
    ) -> Result<Option<MessageId>, DispatchError> {
        Ok(self
            .messages
            .iter()
            .find(|m| m.via.as_ref() == Some(identity) && m.client_id.as_deref() == Some(client_id))
            .map(|m| m.id))
    }

    fn queued_oldest(
        &self,
        team: &str,
        limit: usize,
    ) -> Result<Vec<(ConversationId, i64)>, DispatchError> {
        let mut queued: Vec<(i64, ConversationId)> = self
            .conversations
            .iter()
            .filter(|(_, c)| c.status == Status::Waiting && c.assignee.is_none())
            .filter_map(|(id, c)| match &c.queued {
                Some((at, t)) if t == team => Some((*at, *id)),
                _ => None,
            })
            .collect();
        queued.sort_unstable();
        Ok(queued
            .into_iter()
            .take(limit)
            .map(|(at, id)| (id, at))
            .collect())
    }

    fn routing_agent(&self, agent: AgentId) -> Result<Option<RoutingAgent>, DispatchError> {
        Ok(self.agents.iter().find(|a| a.id == agent).cloned())
    }

    fn last_bot_message_ms(
        &self,
        conversation: ConversationId,
    ) -> Result<Option<i64>, DispatchError> {
        let applied = self.applied.get();
        Ok(self
            .messages
            .iter()
            .rev()
            .find(|m| m.conversation == conversation && m.bot && m.id <= applied)
            .map(|m| m.at_ms))
    }

    fn message_dot(
        &self,
        message: MessageId,
    ) -> Result<Option<crate::cluster::vector::Dot>, DispatchError> {
        Ok(self.dots.get(&message).copied())
    }

    fn annotation_version(&self, key: ConvKey, kind: u8) -> Result<Option<Version>, DispatchError> {
        Ok(self.annotations.get(&(key, kind)).copied())
    }

    fn labels(&self, ids: &[u64]) -> Result<Vec<crate::store::queries::Label>, DispatchError> {
        let mut found: Vec<_> = (self.labels.iter())
            .filter(|l| ids.contains(&l.id))
            .cloned()
            .collect();
        found.sort_by_key(|l| l.id);
        Ok(found)
    }

    fn conversation_named(&self, key: ConvKey) -> Result<Option<ConversationId>, DispatchError> {
        Ok(self.homes.get(&key).map(|(c, _)| *c))
    }

    fn copy_key(&self, conversation: ConversationId) -> Result<Option<ConvKey>, DispatchError> {
        Ok(self
            .homes
            .iter()
            .find(|(_, named)| **named == (conversation, true))
            .map(|(k, _)| *k))
    }

    fn contact_version(&self, contact: ContactId) -> Result<Option<(u64, u64)>, DispatchError> {
        Ok(self.versions.get(&contact).copied())
    }

    fn applied(&self) -> Lsn {
        self.applied.get()
    }

    fn want(&self, lsn: Lsn) {
        self.wanted.set(self.wanted.get().max(lsn));
    }
}

/// A dispatcher over the fakes, as a test builds it.
pub(super) type TestDecider = Decider<RecordedJournal, MemoryStore>;

/// The start of every test's time: an arbitrary wall time, and a timer one hour behind it.
pub(super) const T0: Now = Now {
    wall_ms: 1_800_000_000_000,
    timer_ms: 1_799_999_996_400,
};

/// `ms` after [`T0`], on both clocks.
pub(super) fn at(ms: i64) -> Now {
    Now {
        wall_ms: T0.wall_ms + ms,
        timer_ms: T0.timer_ms + ms,
    }
}

pub(super) fn config() -> DispatchConfig {
    DispatchConfig {
        resolved_idle_after_ms: 60_000,
        recent_client_ids: 4,
        bot: BotConfig {
            threshold: 0.6,
            human_keywords: vec!["human".into()],
        },
        auto_assign: true,
        cached_contacts: 100,
        cluster: None,
    }
}

/// A dispatcher started over `store`, with an empty journal.
pub(super) fn decider_over(cfg: DispatchConfig, store: MemoryStore) -> TestDecider {
    Decider::start(cfg, RecordedJournal::default(), store, T0).expect("an in-memory start")
}

pub(super) fn decider() -> TestDecider {
    decider_over(config(), MemoryStore::default())
}

pub(super) fn identity(channel: &str, external_id: &str) -> Identity {
    Identity {
        channel: bounded_id(channel).expect("a valid channel"),
        external_id: bounded_id(external_id).expect("a valid id"),
    }
}

pub(super) fn agent(id: AgentId, teams: &[&str], capacity: u32) -> RoutingAgent {
    RoutingAgent {
        id,
        teams: teams.iter().map(|t| t.to_string()).collect(),
        capacity,
        disabled: false,
        name: format!("agent {id}"),
    }
}

impl TestDecider {
    /// The operations journaled since `from` (an LSN), in order.
    pub fn ops_since(&self, from: Lsn) -> Vec<&Op> {
        self.journal
            .entries
            .iter()
            .filter(|e| e.lsn > from)
            .map(|e| &e.op)
            .collect()
    }

    /// The store applies everything journaled so far.
    pub fn store_catches_up(&mut self) {
        self.store.apply(&self.journal.entries);
    }

    /// What the thread does after every command.
    pub fn after_command(&mut self, now: Now) {
        self.assign_waiting(now);
        self.settle_contacts();
    }
}
