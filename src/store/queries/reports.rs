//! What the reports read: each conversation's milestones (first customer message, assignment,
//! first response, resolution) and messages counted by local hour of the day.

use rusqlite::{params, Connection};

use super::super::Error;

/// Milestones of the conversations whose first customer message is at or after `since_ms`.
///
/// # Errors
/// [`Error::Sqlite`].
pub fn conversation_milestones(
    conn: &Connection,
    since_ms: i64,
) -> Result<Vec<crate::routing::report::Milestones>, Error> {
    let rows = conn
        .prepare_cached(
            "SELECT first_customer,
                    (SELECT MIN(at) FROM conversation_events e
                     WHERE e.conversation_id = c.id AND e.to_status = 'in_progress'),
                    (SELECT MIN(created_at) FROM messages m
                     WHERE m.conversation_id = c.id AND m.sender = 'agent'),
                    (SELECT MIN(at) FROM conversation_events e
                     WHERE e.conversation_id = c.id AND e.to_status = 'resolved')
             FROM (SELECT conversation_id AS id, MIN(created_at) AS first_customer FROM messages
                   WHERE sender = 'visitor' GROUP BY conversation_id) c
             WHERE first_customer >= ?1",
        )?
        .query_map(params![since_ms], |r| {
            Ok(crate::routing::report::Milestones {
                first_customer_message: r.get(0)?,
                first_assigned: r.get(1)?,
                first_agent_reply: r.get(2)?,
                first_resolved: r.get(3)?,
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

/// Customer and agent messages since `since_ms`, counted by local hour of the day
/// (`offset_ms` east of UTC), as `(hour, writer, count)` rows for
/// [`crate::routing::report::hourly`]. The hour is [`crate::routing::report::local_hour`].
///
/// # Errors
/// [`Error::Sqlite`].
pub fn messages_by_hour(
    conn: &Connection,
    since_ms: i64,
    offset_ms: i64,
) -> Result<Vec<(i64, crate::routing::report::Writer, u64)>, Error> {
    use crate::routing::report::Writer;
    let rows = conn
        .prepare_cached(
            "SELECT (((created_at + ?2) % 86400000 + 86400000) % 86400000) / 3600000 AS hour,
                    sender, COUNT(*)
             FROM messages
             WHERE created_at >= ?1 AND sender IN ('visitor', 'agent')
             GROUP BY hour, sender",
        )?
        .query_map(params![since_ms, offset_ms], |r| {
            let writer = if r.get::<_, String>(1)? == "visitor" {
                Writer::Customer
            } else {
                Writer::Agent
            };
            Ok((r.get(0)?, writer, r.get::<_, i64>(2)?.max(0) as u64))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}
