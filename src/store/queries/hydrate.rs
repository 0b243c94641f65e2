//! What the dispatcher reads from the store: contacts and conversations when it first meets
//! them, its id counters, the knowledge base, the agents it routes to, and the waiting queue
//! and idle timers it rebuilds at start.

use super::*;

/// Whether contact `id` exists and was not linked into another.
///
/// # Errors
/// [`Error::Sqlite`].
pub fn contact_exists(conn: &Connection, id: ContactId) -> Result<bool, Error> {
    Ok(conn
        .prepare_cached("SELECT 1 FROM contacts WHERE id = ?1 AND merged_into IS NULL")?
        .query_row(params![id as i64], |_| Ok(()))
        .optional()?
        .is_some())
}

/// The id of the message `identity` sent with `client_id`, if any.
///
/// # Errors
/// [`Error::Sqlite`].
pub fn message_by_client_id(
    conn: &Connection,
    identity: &Identity,
    client_id: &str,
) -> Result<Option<MessageId>, Error> {
    Ok(conn
        .prepare_cached(
            "SELECT id FROM messages WHERE via_channel = ?1 AND via_external_id = ?2 AND client_id = ?3",
        )?
        .query_row(
            params![identity.channel.as_str(), identity.external_id.as_str(), client_id],
            |r| r.get::<_, i64>(0),
        )
        .optional()?
        .map(|v| v as u64))
}

/// What the dispatcher needs to know about a conversation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConversationState {
    pub id: ConversationId,
    pub contact: ContactId,
    pub status: Status,
    pub assignee: Option<AgentId>,
    pub resolved_at: Option<i64>,
    /// Handed to a person (the bot no longer answers it), for this team ("" for anyone).
    pub handoff_team: Option<String>,
}

fn conversation_state_row(r: &Row<'_>) -> rusqlite::Result<ConversationState> {
    let status: String = r.get(2)?;
    Ok(ConversationState {
        id: r.get::<_, i64>(0)? as u64,
        contact: r.get::<_, i64>(1)? as u64,
        status: Status::parse(&status).unwrap_or(Status::Idle),
        assignee: r.get::<_, Option<i64>>(3)?.map(|v| v as u64),
        resolved_at: r.get(4)?,
        handoff_team: r.get(5)?,
    })
}

/// # Errors
/// [`Error::Sqlite`].
pub fn conversation_state(
    conn: &Connection,
    id: ConversationId,
) -> Result<Option<ConversationState>, Error> {
    Ok(conn
        .prepare_cached(
            "SELECT id, contact_id, status, assignee, resolved_at, CASE WHEN queued_at IS NULL THEN NULL ELSE COALESCE(team, '') END FROM conversations WHERE id = ?1",
        )?
        .query_row(params![id as i64], conversation_state_row)
        .optional()?)
}

/// What the dispatcher loads when it first meets a contact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContactSnapshot {
    pub identities: Vec<Identity>,
    /// The contact's conversation that is not yet closed (not `Idle`), if any.
    pub current: Option<ConversationState>,
    /// The newest client ids the contact sent, newest last: the identity that sent each (its
    /// channel and external id), the client id, the message id.
    pub recent_client_ids: Vec<(String, String, String, MessageId)>,
    /// The identity of the contact's latest customer message, with that message's id.
    pub last_via: Option<(Identity, MessageId)>,
}

/// # Errors
/// [`Error::Sqlite`].
pub fn contact_snapshot(
    conn: &Connection,
    contact: ContactId,
    recent: u32,
) -> Result<ContactSnapshot, Error> {
    let identities = conn
        .prepare_cached(
            "SELECT channel, external_id FROM identities WHERE contact_id = ?1 ORDER BY created_at",
        )?
        .query_map(params![contact as i64], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
        })?
        .filter_map(|row| match row {
            Ok((c, e)) => Some(Ok(Identity {
                channel: bounded_id(&c).ok()?,
                external_id: bounded_id(&e).ok()?,
            })),
            Err(e) => Some(Err(e)),
        })
        .collect::<Result<Vec<_>, _>>()?;
    let current = conn
        .prepare_cached(
            "SELECT id, contact_id, status, assignee, resolved_at, CASE WHEN queued_at IS NULL THEN NULL ELSE COALESCE(team, '') END FROM conversations
             WHERE contact_id = ?1 AND status != 'idle' ORDER BY id DESC LIMIT 1",
        )?
        .query_row(params![contact as i64], conversation_state_row)
        .optional()?;
    let mut recent_client_ids = conn
        .prepare_cached(&format!(
            "SELECT via_channel, via_external_id, client_id, id FROM messages
             WHERE contact_id = ?1 AND client_id IS NOT NULL AND via_channel IS NOT NULL ORDER BY id DESC LIMIT {recent}"
        ))?
        .query_map(params![contact as i64], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get::<_, i64>(3)? as u64))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    recent_client_ids.reverse();
    let last_via = conn
        .prepare_cached(
            "SELECT via_channel, via_external_id, id FROM messages
             WHERE contact_id = ?1 AND sender = 'visitor' AND via_channel IS NOT NULL ORDER BY id DESC LIMIT 1",
        )?
        .query_row(params![contact as i64], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, i64>(2)? as u64))
        })
        .optional()?
        .and_then(|(c, e, id)| {
            Some((
                Identity {
                    channel: bounded_id(&c).ok()?,
                    external_id: bounded_id(&e).ok()?,
                },
                id,
            ))
        });
    Ok(ContactSnapshot {
        identities,
        current,
        recent_client_ids,
        last_via,
    })
}

/// Counters the dispatcher continues from: (largest contact id, largest conversation id).
///
/// # Errors
/// [`Error::Sqlite`].
pub fn max_ids(conn: &Connection) -> Result<(ContactId, ConversationId), Error> {
    let contact: i64 = conn.query_row("SELECT COALESCE(MAX(id), 0) FROM contacts", [], |r| {
        r.get(0)
    })?;
    let conversation: i64 =
        conn.query_row("SELECT COALESCE(MAX(id), 0) FROM conversations", [], |r| {
            r.get(0)
        })?;
    Ok((contact as u64, conversation as u64))
}

/// The knowledge base's entries.
///
/// # Errors
/// [`Error::Sqlite`].
pub fn kb_entries(conn: &Connection) -> Result<Vec<KbEntry>, Error> {
    let rows = conn
        .prepare_cached("SELECT intent, examples, answer, team FROM kb_entries ORDER BY intent")?
        .query_map([], |r| {
            let examples: String = r.get(1)?;
            Ok(KbEntry {
                intent: r.get(0)?,
                examples: serde_json::from_str(&examples).unwrap_or_default(),
                answer: r.get(2)?,
                team: r.get(3)?,
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

/// An agent as the scheduler sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoutingAgent {
    pub id: AgentId,
    pub teams: Vec<String>,
    pub capacity: u32,
    pub disabled: bool,
    /// As other boxes of a cluster show them.
    pub name: String,
}

fn routing_agent_row(r: &Row<'_>) -> rusqlite::Result<RoutingAgent> {
    let teams: String = r.get(1)?;
    Ok(RoutingAgent {
        id: r.get::<_, i64>(0)? as u64,
        teams: split_teams(&teams),
        capacity: r.get::<_, i64>(2)?.max(0) as u32,
        disabled: r.get(3)?,
        name: r.get(4)?,
    })
}

/// Comma-separated team names, trimmed, empty ones dropped.
pub fn split_teams(teams: &str) -> Vec<String> {
    teams
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_string)
        .collect()
}

/// # Errors
/// [`Error::Sqlite`].
pub fn routing_agents(conn: &Connection) -> Result<Vec<RoutingAgent>, Error> {
    let rows = conn
        .prepare_cached("SELECT id, teams, capacity, disabled, display_name FROM agents")?
        .query_map([], routing_agent_row)?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

/// # Errors
/// [`Error::Sqlite`].
pub fn routing_agent(conn: &Connection, id: AgentId) -> Result<Option<RoutingAgent>, Error> {
    Ok(conn
        .prepare_cached(
            "SELECT id, teams, capacity, disabled, display_name FROM agents WHERE id = ?1",
        )?
        .query_row(params![id as i64], routing_agent_row)
        .optional()?)
}

/// Open (waiting or in progress) conversations per assignee.
///
/// # Errors
/// [`Error::Sqlite`].
pub fn open_by_assignee(conn: &Connection) -> Result<Vec<(AgentId, u32)>, Error> {
    let rows = conn
        .prepare_cached(
            "SELECT assignee, COUNT(*) FROM conversations INDEXED BY conversations_open_by_assignee
             WHERE assignee IS NOT NULL AND status IN ('waiting', 'in_progress') GROUP BY assignee",
        )?
        .query_map([], |r| {
            Ok((r.get::<_, i64>(0)? as u64, r.get::<_, i64>(1)? as u32))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

/// The teams ("" for none) that have conversations waiting in the scheduler's queue, one
/// index seek per team. (The queue's queries name their index: without statistics SQLite
/// would pick the status index and read every waiting conversation.)
///
/// # Errors
/// [`Error::Sqlite`].
pub fn queued_teams(conn: &Connection) -> Result<Vec<String>, Error> {
    let mut stmt = conn.prepare_cached(
        "SELECT COALESCE(team, '') FROM conversations INDEXED BY conversations_queue_by_team
         WHERE queued_at IS NOT NULL AND assignee IS NULL AND status = 'waiting'
           AND COALESCE(team, '') > ?1
         ORDER BY COALESCE(team, '') LIMIT 1",
    )?;
    let mut teams: Vec<String> = Vec::new();
    // '' sorts first: look for it exactly, then step from one team to the next.
    let mut after = String::new();
    let none: Option<i64> = conn
        .prepare_cached(
            "SELECT 1 FROM conversations INDEXED BY conversations_queue_by_team
             WHERE queued_at IS NOT NULL AND assignee IS NULL AND status = 'waiting'
               AND COALESCE(team, '') = '' LIMIT 1",
        )?
        .query_row([], |r| r.get(0))
        .optional()?;
    if none.is_some() {
        teams.push(String::new());
    }
    while let Some(team) = stmt
        .query_row(params![after], |r| r.get::<_, String>(0))
        .optional()?
    {
        after.clone_from(&team);
        teams.push(team);
    }
    Ok(teams)
}

/// The oldest `limit` conversations of `team` waiting in the scheduler's queue:
/// (conversation, queued at).
///
/// # Errors
/// [`Error::Sqlite`].
pub fn queued_oldest(
    conn: &Connection,
    team: &str,
    limit: usize,
) -> Result<Vec<(ConversationId, i64)>, Error> {
    let rows = conn
        .prepare_cached(
            "SELECT id, queued_at FROM conversations INDEXED BY conversations_queue_by_team
             WHERE queued_at IS NOT NULL AND assignee IS NULL AND status = 'waiting'
               AND COALESCE(team, '') = ?1
               -- Cluster mode: held by an agent of another box (a holder, none here).
               AND NOT EXISTS (SELECT 1 FROM conversation_holders h
                               WHERE h.conversation_id = conversations.id AND h.holders != '[]')
             ORDER BY queued_at, id LIMIT ?2",
        )?
        .query_map(params![team, limit as i64], |r| {
            Ok((r.get::<_, i64>(0)? as u64, r.get(1)?))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

/// Resolved conversations and when they were resolved, whose idle timers the dispatcher
/// arms at start (without loading their contacts).
///
/// # Errors
/// [`Error::Sqlite`].
pub fn resolved_since(conn: &Connection) -> Result<Vec<(ConversationId, i64)>, Error> {
    let rows = conn
        .prepare_cached(
            "SELECT id, COALESCE(resolved_at, 0) FROM conversations WHERE status = 'resolved'",
        )?
        .query_map([], |r| Ok((r.get::<_, i64>(0)? as u64, r.get(1)?)))?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}
