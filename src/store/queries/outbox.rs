//! The outbox's reads: pending deliveries in send order, and one message's delivery state.

use super::*;
use crate::model::{ChannelFilter, Outbound, OutboundKind};

/// Pending outbox rows after `after` (an LSN), oldest first, as the outbox sends them; with
/// `events`, conversation events too (else replies only).
///
/// # Errors
/// [`Error::Sqlite`].
pub fn pending_deliveries(
    conn: &Connection,
    filter: &ChannelFilter,
    events: bool,
    after: MessageId,
    limit: u32,
) -> Result<PendingPage, Error> {
    let (negate, channels) = match filter {
        ChannelFilter::Only(c) => ("", c),
        ChannelFilter::AllBut(c) => ("NOT", c),
    };
    if negate.is_empty() && channels.is_empty() {
        return Ok(PendingPage::default());
    }
    // The channel list is a JSON array parameter, not SQL text.
    let list = serde_json::to_string(channels).expect("invariant: strings serialise");
    let sql = format!(
        "SELECT d.id, d.conversation_id, d.channel, d.external_id, d.kind, COALESCE(m.sender, ''), COALESCE(m.text, ''), d.created_at, d.attempts
         FROM deliveries d LEFT JOIN messages m ON m.id = d.id AND d.kind = 'message'
         WHERE d.state = 'pending' AND d.id > ?1
           AND d.channel {negate} IN (SELECT value FROM json_each(?2))
           AND (?3 OR d.kind = 'message')
         ORDER BY d.id LIMIT {limit}"
    );
    let rows = conn
        .prepare_cached(&sql)?
        .query_map(params![after as i64, list, events], |r| {
            Ok((
                (r.get::<_, i64>(0)? as u64, r.get::<_, i64>(1)? as u64),
                (r.get::<_, String>(2)?, r.get::<_, String>(3)?),
                r.get::<_, String>(4)?,
                (r.get::<_, String>(5)?, r.get::<_, String>(6)?),
                r.get::<_, i64>(7)?,
                r.get::<_, u32>(8)?,
            ))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    let scanned = rows.len();
    let last_id = rows.last().map(|r| r.0 .0);
    let rows = rows
        .into_iter()
        .filter_map(
            |((id, conversation), (channel, external_id), kind, (sender, text), at, attempts)| {
                Some(Outbound {
                    id,
                    kind: OutboundKind::parse(&kind)?,
                    conversation_id: conversation,
                    to: Identity {
                        channel: bounded_id(&channel).ok()?,
                        external_id: bounded_id(&external_id).ok()?,
                    },
                    sender,
                    text,
                    created_at: at,
                    attempts,
                })
            },
        )
        .collect();
    Ok(PendingPage {
        rows,
        scanned,
        last_id,
    })
}

/// A page of the outbox.
#[derive(Debug, Default)]
pub struct PendingPage {
    /// The rows that parse (a channel or id the model refuses is skipped).
    pub rows: Vec<Outbound>,
    /// Rows the query returned, parsed or not: fewer than asked means the end.
    pub scanned: usize,
    /// The last row's id, the cursor for the next page.
    pub last_id: Option<Lsn>,
}

/// A reply's (or a conversation event's) delivery on its channel.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct DeliveryRow {
    /// The message id, or the event's LSN.
    pub id: Lsn,
    /// `message`, `conversation_opened` or `conversation_resolved`.
    pub kind: String,
    pub conversation_id: ConversationId,
    pub channel: String,
    pub external_id: String,
    /// `pending`, `delivered` or `dead`.
    pub state: String,
    pub attempts: u32,
    pub last_error: Option<String>,
    pub updated_at: i64,
}

/// The delivery row of `message` on this box's outbox; in cluster mode, for a reply another
/// box's channel delivers, what that box reported of it (`store/replicated.rs`).
///
/// # Errors
/// [`Error::Sqlite`].
pub fn delivery(conn: &Connection, message: MessageId) -> Result<Option<DeliveryRow>, Error> {
    let row = |r: &Row<'_>| {
        Ok(DeliveryRow {
            id: r.get::<_, i64>(0)? as u64,
            kind: r.get(1)?,
            conversation_id: r.get::<_, i64>(2)? as u64,
            channel: r.get(3)?,
            external_id: r.get(4)?,
            state: r.get(5)?,
            attempts: r.get(6)?,
            last_error: r.get(7)?,
            updated_at: r.get(8)?,
        })
    };
    let local = conn
        .prepare_cached(
            "SELECT id, kind, conversation_id, channel, external_id, state, attempts, last_error, updated_at
             FROM deliveries WHERE id = ?1",
        )?
        .query_row(params![message as i64], row)
        .optional()?;
    if local.is_some() {
        return Ok(local);
    }
    Ok(conn
        .prepare_cached(
            "SELECT m.id, 'message', m.conversation_id, m.via_channel, m.via_external_id, o.state,
                    o.attempts, NULLIF(o.last_error, ''), o.updated_at
             FROM messages m JOIN cluster_ops c ON c.message = m.id
             JOIN delivery_outcomes o ON o.origin = c.origin AND o.seq = c.seq
             WHERE m.id = ?1 AND m.via_channel IS NOT NULL",
        )?
        .query_row(params![message as i64], row)
        .optional()?)
}
