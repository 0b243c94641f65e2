//! Read queries: what the API and resumes serve (here), what the dispatcher hydrates from
//! (`hydrate.rs`), what the outbox sends (`outbox.rs`), labels, ratings and contact details
//! (`annotations.rs`), what the reports read (`reports.rs`), settings and canned replies
//! (`settings.rs`), cluster mode's state (`cluster.rs`, and `replicated.rs` for the knowledge
//! base's versions and messages' dots).
//!
//! Plain functions over a `&Connection`, each backed by an index named in the migration.

use rusqlite::{params, Connection, OptionalExtension, Row};
use serde::Serialize;

use super::Error;
use crate::conversation::Status;
use crate::model::{bounded_id, AgentId, ContactId, ConversationId, Identity, Lsn, MessageId};
use crate::op::KbEntry;

mod annotations;
mod cluster;
mod hydrate;
mod import;
mod outbox;
mod replicated;
mod reports;
mod settings;

pub use annotations::*;
pub use cluster::*;
pub use hydrate::*;
pub use import::*;
pub use outbox::*;
pub use replicated::*;
pub use reports::*;
pub use settings::*;

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct MessageRow {
    pub id: MessageId,
    pub conversation_id: ConversationId,
    pub contact_id: ContactId,
    pub sender: String,
    pub agent_id: Option<AgentId>,
    pub client_id: Option<String>,
    pub text: String,
    pub created_at: i64,
    /// The knowledge-base intent a customer message matched, and its score.
    pub intent: Option<String>,
    pub intent_score: Option<f64>,
    /// The upload id of an attached image.
    pub attachment: Option<String>,
    /// The channel the message came in on, or a reply went out on.
    pub channel: Option<String>,
    /// A reply's delivery on its channel: `pending`, `delivered` or `dead` (web replies, which
    /// the widget fetches itself, have none). Cluster mode: the join of what every box's
    /// channels reported (`store/replicated.rs`), once one did.
    pub delivery: Option<String>,
}

const MESSAGE_COLUMNS: &str =
    "id, conversation_id, contact_id, sender, agent_id, client_id, text, created_at, intent, intent_score, attachment,
     via_channel, COALESCE(
       (SELECT o.state FROM cluster_ops c JOIN delivery_outcomes o ON o.origin = c.origin AND o.seq = c.seq
        WHERE c.message = messages.id),
       (SELECT state FROM deliveries d WHERE d.id = messages.id AND d.kind = 'message'))";

fn message_row(r: &Row<'_>) -> rusqlite::Result<MessageRow> {
    Ok(MessageRow {
        id: r.get::<_, i64>(0)? as u64,
        conversation_id: r.get::<_, i64>(1)? as u64,
        contact_id: r.get::<_, i64>(2)? as u64,
        sender: r.get(3)?,
        agent_id: r.get::<_, Option<i64>>(4)?.map(|v| v as u64),
        client_id: r.get(5)?,
        text: r.get(6)?,
        created_at: r.get(7)?,
        intent: r.get(8)?,
        intent_score: r.get(9)?,
        attachment: r.get(10)?,
        channel: r.get(11)?,
        delivery: r.get(12)?,
    })
}

#[derive(Debug, Clone, Serialize)]
pub struct ConversationRow {
    pub id: ConversationId,
    pub contact_id: ContactId,
    /// The identity the customer last wrote from (their first, before they wrote).
    pub channel: Option<String>,
    pub external_id: Option<String>,
    pub status: String,
    pub assignee: Option<AgentId>,
    pub created_at: i64,
    pub last_activity_at: i64,
    pub last_message_id: Option<MessageId>,
    pub message_count: i64,
    pub last_message: Option<String>,
    /// Cluster mode: the node id of the box where the customer wrote, when that is another
    /// box (this conversation is its copy); `None` for this box's own.
    pub home: Option<String>,
    /// The customer's name, when one is known (an import brings it along).
    pub contact_name: Option<String>,
    /// The ids of the labels on it (deleted labels left out), ascending.
    pub labels: Vec<u64>,
    /// The customer's rating (1 to 5), once they gave one.
    pub rating: Option<u8>,
    /// Cluster mode: who holds it across the boxes (an agent of another box, or two or more
    /// after assignments made while the boxes were apart: a conflict to settle).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub holders: Vec<crate::store::holders::HolderView>,
    /// Cluster mode: two or more holders.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub conflict: bool,
}

const CONVERSATION_SELECT: &str = "
    SELECT c.id, c.contact_id,
           COALESCE((SELECT via_channel FROM messages m WHERE m.conversation_id = c.id AND m.sender = 'visitor' ORDER BY m.id DESC LIMIT 1),
                    (SELECT channel FROM identities i WHERE i.contact_id = c.contact_id ORDER BY created_at LIMIT 1)),
           COALESCE((SELECT via_external_id FROM messages m WHERE m.conversation_id = c.id AND m.sender = 'visitor' ORDER BY m.id DESC LIMIT 1),
                    (SELECT external_id FROM identities i WHERE i.contact_id = c.contact_id ORDER BY created_at LIMIT 1)),
           c.status, c.assignee, c.created_at, c.last_activity_at, c.last_message_id, c.message_count,
           (SELECT substr(text, 1, 120) FROM messages m WHERE m.id = c.last_message_id),
           (SELECT printf('%016x', h.home_node) FROM conversation_homes h
            WHERE h.conversation_id = c.id AND h.joined = 1 LIMIT 1),
           (SELECT name FROM contacts k WHERE k.id = c.contact_id),
           (SELECT group_concat(cl.label_id) FROM (SELECT label_id FROM conversation_labels
              JOIN labels l ON l.id = label_id WHERE conversation_id = c.id ORDER BY label_id) cl),
           (SELECT score FROM ratings r WHERE r.conversation_id = c.id),
           (SELECT holders FROM conversation_holders ch WHERE ch.conversation_id = c.id)
    FROM conversations c";

fn conversation_row(r: &Row<'_>) -> rusqlite::Result<ConversationRow> {
    Ok(ConversationRow {
        id: r.get::<_, i64>(0)? as u64,
        contact_id: r.get::<_, i64>(1)? as u64,
        channel: r.get(2)?,
        external_id: r.get(3)?,
        status: r.get(4)?,
        assignee: r.get::<_, Option<i64>>(5)?.map(|v| v as u64),
        created_at: r.get(6)?,
        last_activity_at: r.get(7)?,
        last_message_id: r.get::<_, Option<i64>>(8)?.map(|v| v as u64),
        message_count: r.get(9)?,
        last_message: r.get(10)?,
        home: r.get(11)?,
        contact_name: r.get(12)?,
        labels: r
            .get::<_, Option<String>>(13)?
            .map(|ids| ids.split(',').filter_map(|id| id.parse().ok()).collect())
            .unwrap_or_default(),
        rating: r.get(14)?,
        holders: r
            .get::<_, Option<String>>(15)?
            .and_then(|json| crate::store::holders::views(&json))
            .unwrap_or_default(),
        conflict: false,
    })
    .map(|mut row| {
        row.conflict = row.holders.len() > 1;
        row
    })
}

/// Which conversations the inbox lists, by status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusFilter {
    All,
    /// Waiting or in progress.
    Open,
    Is(Status),
}

/// Which conversations the inbox lists, by who holds them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AssigneeFilter {
    Anyone,
    Agent(AgentId),
    /// No agent holds it.
    Nobody,
}

/// What the inbox is filtered by: all must hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InboxFilter {
    pub status: StatusFilter,
    pub assignee: AssigneeFilter,
    /// Only conversations carrying this label.
    pub label: Option<u64>,
}

/// Conversations newest activity first, `limit` of them, after the `(last_activity_at, id)`
/// cursor when one is given.
///
/// # Errors
/// [`Error::Sqlite`].
pub fn list_conversations(
    conn: &Connection,
    filter: InboxFilter,
    before: Option<(i64, u64)>,
    limit: u32,
) -> Result<Vec<ConversationRow>, Error> {
    let (at, id) = before.unwrap_or((i64::MAX, i64::MAX as u64));
    let mut args: Vec<rusqlite::types::Value> = vec![at.into(), (id as i64).into()];
    let mut arg = |v: rusqlite::types::Value| {
        args.push(v);
        format!("?{}", args.len())
    };
    let mut conditions = vec!["c.merged_into IS NULL".to_string()];
    match filter.status {
        StatusFilter::All => {}
        StatusFilter::Open => conditions.push(format!(
            "c.status IN ({}, {})",
            arg(Status::Waiting.as_str().to_string().into()),
            arg(Status::InProgress.as_str().to_string().into())
        )),
        StatusFilter::Is(s) => {
            conditions.push(format!("c.status = {}", arg(s.as_str().to_string().into())))
        }
    }
    match filter.assignee {
        AssigneeFilter::Anyone => {}
        AssigneeFilter::Agent(a) => {
            conditions.push(format!("c.assignee = {}", arg((a as i64).into())))
        }
        AssigneeFilter::Nobody => conditions.push("c.assignee IS NULL".to_string()),
    }
    if let Some(label) = filter.label {
        conditions.push(format!(
            "c.id IN (SELECT conversation_id FROM conversation_labels WHERE label_id = {})",
            arg((label as i64).into())
        ));
    }
    let sql = format!(
        "{CONVERSATION_SELECT} WHERE {} AND (c.last_activity_at, c.id) < (?1, ?2)
         ORDER BY c.last_activity_at DESC, c.id DESC LIMIT {limit}",
        conditions.join(" AND ")
    );
    let rows = conn
        .prepare_cached(&sql)?
        .query_map(rusqlite::params_from_iter(args), conversation_row)?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

/// # Errors
/// [`Error::Sqlite`].
pub fn conversation(
    conn: &Connection,
    id: ConversationId,
) -> Result<Option<ConversationRow>, Error> {
    let sql = format!("{CONVERSATION_SELECT} WHERE c.id = ?1");
    Ok(conn
        .prepare_cached(&sql)?
        .query_row(params![id as i64], conversation_row)
        .optional()?)
}

/// How a page of a conversation's messages is ordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageOrder {
    /// By local id: the order this box stored them in.
    Local,
    /// Cluster mode: by each message's cluster operation (HLC, origin, seq), which every box
    /// holds the same, so every box lists a conversation in the same order; a message without
    /// one (stored before cluster mode) by its time.
    Cluster,
}

/// The messages of a conversation after local id `after`: the next `limit` by local id (so
/// pages follow one another by id whatever the order), in `order`.
///
/// # Errors
/// [`Error::Sqlite`].
pub fn conversation_messages(
    conn: &Connection,
    conversation: ConversationId,
    after: MessageId,
    limit: u32,
    order: MessageOrder,
) -> Result<Vec<MessageRow>, Error> {
    let page = format!(
        "SELECT * FROM messages WHERE conversation_id = ?1 AND id > ?2 ORDER BY id LIMIT {limit}"
    );
    let sql = match order {
        MessageOrder::Local => {
            format!("SELECT {MESSAGE_COLUMNS} FROM ({page}) AS messages ORDER BY id")
        }
        MessageOrder::Cluster => format!(
            "SELECT {MESSAGE_COLUMNS} FROM ({page}) AS messages
             LEFT JOIN cluster_ops o ON o.message = messages.id
             ORDER BY COALESCE(o.hlc, messages.created_at * 65536), COALESCE(o.origin, 0),
                      COALESCE(o.seq, messages.id)"
        ),
    };
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map(params![conversation as i64, after as i64], message_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// The newest `limit` messages of a conversation, oldest first.
///
/// # Errors
/// [`Error::Sqlite`].
pub fn latest_conversation_messages(
    conn: &Connection,
    conversation: ConversationId,
    limit: u32,
) -> Result<Vec<MessageRow>, Error> {
    let sql = format!(
        "SELECT {MESSAGE_COLUMNS} FROM messages WHERE conversation_id = ?1 ORDER BY id DESC LIMIT {limit}"
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let mut rows = stmt
        .query_map(params![conversation as i64], message_row)?
        .collect::<Result<Vec<_>, _>>()?;
    rows.reverse();
    Ok(rows)
}

/// A contact's messages, across all its conversations, with `after < id <= upto`.
///
/// # Errors
/// [`Error::Sqlite`].
pub fn contact_messages(
    conn: &Connection,
    contact: ContactId,
    after: MessageId,
    upto: MessageId,
    limit: u32,
) -> Result<Vec<MessageRow>, Error> {
    let sql = format!(
        "SELECT {MESSAGE_COLUMNS} FROM messages WHERE contact_id = ?1 AND id > ?2 AND id <= ?3 AND sender != 'note' ORDER BY id LIMIT {limit}"
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map(
        params![contact as i64, after as i64, upto as i64],
        message_row,
    )?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// # Errors
/// [`Error::Sqlite`].
pub fn contact_by_identity(
    conn: &Connection,
    identity: &Identity,
) -> Result<Option<ContactId>, Error> {
    Ok(conn
        .prepare_cached(
            "SELECT contact_id FROM identities WHERE channel = ?1 AND external_id = ?2",
        )?
        .query_row(
            params![identity.channel.as_str(), identity.external_id.as_str()],
            |r| r.get::<_, i64>(0),
        )
        .optional()?
        .map(|v| v as u64))
}

/// The distinct intents the customer's messages in a conversation matched at `min_score` or
/// better, in the order first seen.
///
/// # Errors
/// [`Error::Sqlite`].
pub fn conversation_intents(
    conn: &Connection,
    conversation: ConversationId,
    min_score: f32,
) -> Result<Vec<String>, Error> {
    let rows = conn
        .prepare_cached(
            "SELECT intent FROM messages WHERE conversation_id = ?1 AND intent IS NOT NULL
             AND intent_score >= ?2 GROUP BY intent ORDER BY MIN(id)",
        )?
        .query_map(params![conversation as i64, f64::from(min_score)], |r| {
            r.get(0)
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

/// Whether `visitor` uploaded `id` (any visitor, when `visitor` is `None`).
///
/// # Errors
/// [`Error::Sqlite`].
pub fn upload_exists(conn: &Connection, id: &str, visitor: Option<&str>) -> Result<bool, Error> {
    Ok(conn
        .prepare_cached(
            "SELECT 1 FROM uploads WHERE id = ?1 AND (?2 IS NULL OR visitor = ?2) LIMIT 1",
        )?
        .query_row(params![id, visitor], |_| Ok(()))
        .optional()?
        .is_some())
}

/// A contact's identities, oldest first.
///
/// # Errors
/// [`Error::Sqlite`].
pub fn contact_identities(
    conn: &Connection,
    contact: ContactId,
) -> Result<Vec<(String, String)>, Error> {
    let rows = conn
        .prepare_cached(
            "SELECT channel, external_id FROM identities WHERE contact_id = ?1 ORDER BY created_at",
        )?
        .query_map(params![contact as i64], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

/// A contact's conversations, newest first.
///
/// # Errors
/// [`Error::Sqlite`].
pub fn contact_conversations(
    conn: &Connection,
    contact: ContactId,
) -> Result<Vec<ConversationRow>, Error> {
    let rows = conn
        .prepare_cached(&format!(
            "{CONVERSATION_SELECT} WHERE c.contact_id = ?1 AND c.merged_into IS NULL ORDER BY c.id DESC LIMIT 200"
        ))?
        .query_map(params![contact as i64], conversation_row)?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

/// When the bot last wrote in `conversation` (ms), if it ever did.
///
/// # Errors
/// A store failure.
pub fn last_bot_message_ms(
    conn: &Connection,
    conversation: ConversationId,
) -> Result<Option<i64>, Error> {
    Ok(conn
        .prepare_cached(
            "SELECT created_at FROM messages WHERE conversation_id = ?1 AND sender = 'bot'
             ORDER BY id DESC LIMIT 1",
        )?
        .query_row(params![conversation], |r| r.get(0))
        .optional()?)
}

/// One item of an agent's live feed, as stored.
#[derive(Debug, Clone)]
pub enum AgentEventRow {
    Message(MessageRow),
    Status {
        lsn: Lsn,
        conversation_id: ConversationId,
        from: String,
        to: String,
        assignee: Option<AgentId>,
        by: Option<AgentId>,
        at: i64,
    },
}

impl AgentEventRow {
    pub fn lsn(&self) -> Lsn {
        match self {
            AgentEventRow::Message(m) => m.id,
            AgentEventRow::Status { lsn, .. } => *lsn,
        }
    }
}

/// The agent feed with `after < lsn <= upto`, in LSN order.
///
/// # Errors
/// [`Error::Sqlite`].
pub fn agent_events(
    conn: &Connection,
    after: Lsn,
    upto: Lsn,
    limit: u32,
) -> Result<Vec<AgentEventRow>, Error> {
    let sql = format!(
        "SELECT {MESSAGE_COLUMNS} FROM messages WHERE id > ?1 AND id <= ?2 ORDER BY id LIMIT {limit}"
    );
    let messages: Vec<AgentEventRow> = conn
        .prepare_cached(&sql)?
        .query_map(params![after as i64, upto as i64], message_row)?
        .map(|r| r.map(AgentEventRow::Message))
        .collect::<Result<_, _>>()?;
    let sql = format!(
        "SELECT lsn, conversation_id, from_status, to_status, assignee, by_agent, at FROM conversation_events
         WHERE lsn > ?1 AND lsn <= ?2 ORDER BY lsn LIMIT {limit}"
    );
    let statuses = conn
        .prepare_cached(&sql)?
        .query_map(params![after as i64, upto as i64], |r| {
            Ok(AgentEventRow::Status {
                lsn: r.get::<_, i64>(0)? as u64,
                conversation_id: r.get::<_, i64>(1)? as u64,
                from: r.get(2)?,
                to: r.get(3)?,
                assignee: r.get::<_, Option<i64>>(4)?.map(|v| v as u64),
                by: r.get::<_, Option<i64>>(5)?.map(|v| v as u64),
                at: r.get(6)?,
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    // Both halves were limited separately: keep only the LSN range both cover completely, so
    // a caller paging on from the last returned LSN misses nothing.
    let mut cut = upto;
    for half in [&messages, &statuses] {
        if half.len() == limit as usize {
            cut = cut.min(half.last().map_or(upto, AgentEventRow::lsn));
        }
    }
    let mut out: Vec<AgentEventRow> = messages
        .into_iter()
        .chain(statuses)
        .filter(|e| e.lsn() <= cut)
        .collect();
    out.sort_by_key(AgentEventRow::lsn);
    Ok(out)
}

/// Full-text search over message text, newest first. Queries shorter than three characters
/// (the trigram index's reach) fall back to a substring scan.
///
/// # Errors
/// [`Error::Sqlite`].
pub fn search_messages(
    conn: &Connection,
    query: &str,
    limit: u32,
) -> Result<Vec<MessageRow>, Error> {
    if query.chars().count() >= 3 {
        let quoted = format!("\"{}\"", query.replace('"', "\"\""));
        let sql = format!(
            "SELECT {MESSAGE_COLUMNS} FROM messages WHERE id IN (SELECT rowid FROM messages_fts WHERE messages_fts MATCH ?1)
             ORDER BY id DESC LIMIT {limit}"
        );
        let mut stmt = conn.prepare_cached(&sql)?;
        let rows = stmt.query_map(params![quoted], message_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    } else {
        let sql = format!("SELECT {MESSAGE_COLUMNS} FROM messages WHERE instr(text, ?1) > 0 ORDER BY id DESC LIMIT {limit}");
        let mut stmt = conn.prepare_cached(&sql)?;
        let rows = stmt.query_map(params![query], message_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}
