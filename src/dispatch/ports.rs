//! The dispatcher's two ports, and the real ones the thread plugs in.
//!
//! Decisions reach the outside world only through these: [`Journal`], where every decision is
//! appended as an operation (LSNs assigned here, in order), and [`Snapshot`], the narrow view of
//! the store used to hydrate state the dispatcher does not hold in memory, plus the store's
//! progress mark (what it has applied, and asking it to apply more). The real ones are an
//! mpsc sender to the journal writer ([`JournalSink`]) and a SQLite read connection with the
//! applier's progress ([`StoreSnapshot`]); unit tests use in-memory fakes, so every handler is
//! tested without a database, a socket or the clock.
//!
//! Invariant of any `Snapshot`: it answers as of what the store has applied (`applied()`),
//! which never passes what the journal has been given.

use std::sync::Arc;

use rusqlite::Connection;
use tokio::sync::mpsc;

use super::DispatchError;
use crate::cluster::kb_lww::Version;
use crate::cluster::vector::Dot;
use crate::cluster::wire::ConvKey;
use crate::model::{AgentId, ContactId, ConversationId, Identity, Lsn, MessageId};
use crate::op::{Entry, KbEntry, Op};
use crate::store::progress::Progress;
use crate::store::queries::{
    self, ClusterStartup, ContactSnapshot, ConversationState, RoutingAgent,
};

/// Where decisions go: the write-ahead journal.
pub(crate) trait Journal {
    /// Appends `op` as the next record (delivered live to `audience`'s sockets once durable)
    /// and returns its LSN.
    ///
    /// # Errors
    /// [`DispatchError::Unavailable`] once the journal has stopped.
    fn append(&mut self, op: Op, audience: Option<Arc<[Identity]>>) -> Result<Lsn, DispatchError>;

    /// As [`Journal::append`], for a record the next one belongs with: the two are made
    /// durable together or not at all.
    ///
    /// # Errors
    /// As [`Journal::append`].
    fn append_glued(
        &mut self,
        op: Op,
        audience: Option<Arc<[Identity]>>,
    ) -> Result<Lsn, DispatchError>;

    /// The LSN of the last record appended (the journal's last record, before any).
    fn last(&self) -> Lsn;
}

/// What the dispatcher reads at startup to rebuild what it keeps in memory.
#[derive(Debug, Default)]
pub(crate) struct Startup {
    pub max_contact: ContactId,
    pub max_conversation: ConversationId,
    /// Resolved conversations and when they were resolved (wall ms): their idle timers.
    pub resolved: Vec<(ConversationId, i64)>,
    pub kb: Vec<KbEntry>,
    pub agents: Vec<RoutingAgent>,
    /// How many open conversations each agent holds.
    pub open_by_assignee: Vec<(AgentId, u32)>,
    /// Teams with conversations waiting in the queue.
    pub queued_teams: Vec<String>,
    /// What cluster mode rebuilds from (empty on a box that was never in one).
    pub cluster: ClusterStartup,
    /// The shop's business hours (disabled unless an admin set them).
    pub hours: crate::hours::Hours,
}

/// The store as the dispatcher may read it: only to hydrate what it does not hold.
pub(crate) trait Snapshot {
    /// # Errors
    /// [`DispatchError::Store`] for every method that reads.
    fn startup(&self) -> Result<Startup, DispatchError>;
    fn contact_by_identity(&self, identity: &Identity) -> Result<Option<ContactId>, DispatchError>;
    /// Whether `contact` exists and was not linked into another.
    fn contact_exists(&self, contact: ContactId) -> Result<bool, DispatchError>;
    /// A contact with its open conversation and its `recent` newest client ids.
    fn contact(&self, contact: ContactId, recent: u32) -> Result<ContactSnapshot, DispatchError>;
    fn conversation(
        &self,
        conversation: ConversationId,
    ) -> Result<Option<ConversationState>, DispatchError>;
    fn message_by_client_id(
        &self,
        identity: &Identity,
        client_id: &str,
    ) -> Result<Option<MessageId>, DispatchError>;
    /// The `limit` oldest conversations of `team` waiting in the queue, with when they were
    /// queued (wall ms).
    fn queued_oldest(
        &self,
        team: &str,
        limit: usize,
    ) -> Result<Vec<(ConversationId, i64)>, DispatchError>;
    fn routing_agent(&self, agent: AgentId) -> Result<Option<RoutingAgent>, DispatchError>;
    /// When the bot last wrote in `conversation` (wall ms), if it ever did.
    fn last_bot_message_ms(
        &self,
        conversation: ConversationId,
    ) -> Result<Option<i64>, DispatchError>;
    /// Cluster mode: the labels of `ids` that exist (their names travel, ids do not).
    fn labels(&self, ids: &[u64]) -> Result<Vec<queries::Label>, DispatchError>;
    /// Cluster mode: the version of a conversation's labels or rating (`kind`: the body kind).
    fn annotation_version(&self, key: ConvKey, kind: u8) -> Result<Option<Version>, DispatchError>;
    /// Cluster mode: the dot a message is named by on every box, if it has one.
    fn message_dot(&self, message: MessageId) -> Result<Option<Dot>, DispatchError>;
    /// Cluster mode: the conversation here that the cluster name `key` names, if any.
    fn conversation_named(&self, key: ConvKey) -> Result<Option<ConversationId>, DispatchError>;
    /// Cluster mode: `contact`'s name-and-details register version (HLC time, origin).
    fn contact_version(&self, contact: ContactId) -> Result<Option<(u64, u64)>, DispatchError>;
    /// Cluster mode: the name of the conversation `conversation` is a copy of, if it is one.
    fn copy_key(&self, conversation: ConversationId) -> Result<Option<ConvKey>, DispatchError>;
    /// The last LSN the store has applied (its reads show everything up to it).
    fn applied(&self) -> Lsn;
    /// Asks the store to apply up to `lsn` promptly rather than at its commit interval.
    fn want(&self, lsn: Lsn);
}

/// The real journal port: hands entries to the journal writer, in LSN order, over a bounded
/// channel (a slow disk slows the dispatcher, nothing is buffered without bound).
pub(crate) struct JournalSink {
    next_lsn: Lsn,
    tx: mpsc::Sender<Entry>,
}

impl JournalSink {
    /// After the journal's last record `last_lsn`.
    pub(crate) fn new(last_lsn: Lsn, tx: mpsc::Sender<Entry>) -> Self {
        JournalSink {
            next_lsn: last_lsn + 1,
            tx,
        }
    }
}

impl JournalSink {
    fn send(
        &mut self,
        op: Op,
        audience: Option<Arc<[Identity]>>,
        glue: bool,
    ) -> Result<Lsn, DispatchError> {
        let lsn = self.next_lsn;
        self.tx
            .blocking_send(Entry {
                lsn,
                op,
                audience,
                glue,
            })
            .map_err(|_| DispatchError::Unavailable)?;
        self.next_lsn += 1;
        Ok(lsn)
    }
}

impl Journal for JournalSink {
    fn append(&mut self, op: Op, audience: Option<Arc<[Identity]>>) -> Result<Lsn, DispatchError> {
        self.send(op, audience, false)
    }

    fn append_glued(
        &mut self,
        op: Op,
        audience: Option<Arc<[Identity]>>,
    ) -> Result<Lsn, DispatchError> {
        self.send(op, audience, true)
    }

    fn last(&self) -> Lsn {
        self.next_lsn - 1
    }
}

/// The real store port: a read connection owned by the dispatcher's thread, and the applier's
/// progress.
pub(crate) struct StoreSnapshot {
    conn: Connection,
    progress: Arc<Progress>,
}

impl StoreSnapshot {
    pub(crate) fn new(conn: Connection, progress: Arc<Progress>) -> Self {
        StoreSnapshot { conn, progress }
    }
}

impl Snapshot for StoreSnapshot {
    fn startup(&self) -> Result<Startup, DispatchError> {
        let (max_contact, max_conversation) = queries::max_ids(&self.conn)?;
        Ok(Startup {
            max_contact,
            max_conversation,
            resolved: queries::resolved_since(&self.conn)?,
            kb: queries::kb_entries(&self.conn)?,
            agents: queries::routing_agents(&self.conn)?,
            open_by_assignee: queries::open_by_assignee(&self.conn)?,
            queued_teams: queries::queued_teams(&self.conn)?,
            cluster: queries::cluster_startup(&self.conn)?,
            hours: crate::hours::Hours::from_setting(
                queries::setting(&self.conn, crate::hours::SETTING_KEY)?.as_deref(),
            ),
        })
    }

    fn contact_by_identity(&self, identity: &Identity) -> Result<Option<ContactId>, DispatchError> {
        Ok(queries::contact_by_identity(&self.conn, identity)?)
    }

    fn contact_exists(&self, contact: ContactId) -> Result<bool, DispatchError> {
        Ok(queries::contact_exists(&self.conn, contact)?)
    }

    fn contact(&self, contact: ContactId, recent: u32) -> Result<ContactSnapshot, DispatchError> {
        Ok(queries::contact_snapshot(&self.conn, contact, recent)?)
    }

    fn conversation(
        &self,
        conversation: ConversationId,
    ) -> Result<Option<ConversationState>, DispatchError> {
        Ok(queries::conversation_state(&self.conn, conversation)?)
    }

    fn message_by_client_id(
        &self,
        identity: &Identity,
        client_id: &str,
    ) -> Result<Option<MessageId>, DispatchError> {
        Ok(queries::message_by_client_id(
            &self.conn, identity, client_id,
        )?)
    }

    fn queued_oldest(
        &self,
        team: &str,
        limit: usize,
    ) -> Result<Vec<(ConversationId, i64)>, DispatchError> {
        Ok(queries::queued_oldest(&self.conn, team, limit)?)
    }

    fn routing_agent(&self, agent: AgentId) -> Result<Option<RoutingAgent>, DispatchError> {
        Ok(queries::routing_agent(&self.conn, agent)?)
    }

    fn last_bot_message_ms(
        &self,
        conversation: ConversationId,
    ) -> Result<Option<i64>, DispatchError> {
        Ok(queries::last_bot_message_ms(&self.conn, conversation)?)
    }

    fn message_dot(&self, message: MessageId) -> Result<Option<Dot>, DispatchError> {
        Ok(queries::message_dot(&self.conn, message)?)
    }

    fn labels(&self, ids: &[u64]) -> Result<Vec<queries::Label>, DispatchError> {
        Ok(queries::labels_by_id(&self.conn, ids)?)
    }

    fn annotation_version(&self, key: ConvKey, kind: u8) -> Result<Option<Version>, DispatchError> {
        Ok(crate::store::replicated_annotations::held_version(
            &self.conn, key, kind,
        )?)
    }

    fn conversation_named(&self, key: ConvKey) -> Result<Option<ConversationId>, DispatchError> {
        Ok(queries::conversation_named(&self.conn, key)?)
    }

    fn copy_key(&self, conversation: ConversationId) -> Result<Option<ConvKey>, DispatchError> {
        Ok(queries::copy_key(&self.conn, conversation)?)
    }

    fn contact_version(&self, contact: ContactId) -> Result<Option<(u64, u64)>, DispatchError> {
        Ok(queries::contact_version(&self.conn, contact)?)
    }

    fn applied(&self) -> Lsn {
        self.progress.applied()
    }

    fn want(&self, lsn: Lsn) {
        self.progress.want(lsn);
    }
}
