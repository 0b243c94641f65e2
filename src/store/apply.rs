//! What each journal operation does to the store's tables: the SQL of the projection.
//!
//! Every function runs inside the applier's open transaction (`applier.rs`). Applying is
//! idempotent (`INSERT OR IGNORE`, updates that set absolute values, counters moved only when
//! the row was new), so replaying a record twice is harmless.

use rusqlite::{params, CachedStatement, Connection, OptionalExtension};

use super::applier::Loading;
use super::Error;
use crate::conversation::Status;
use crate::model::{Lsn, Sender, WEB_CHANNEL};
use crate::op::Op;

fn add_delivery(
    tx: &Connection,
    id: Lsn,
    kind: &str,
    conversation: u64,
    channel: &str,
    external_id: &str,
    at_ms: i64,
) -> Result<(), Error> {
    tx.prepare_cached(
        "INSERT OR IGNORE INTO deliveries (id, kind, conversation_id, channel, external_id, state, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, 'pending', ?6, ?6)",
    )?
    .execute(params![id as i64, kind, conversation as i64, channel, external_id, at_ms])?;
    Ok(())
}

/// Whether `conversation` is this box's copy of another cluster box's conversation: its
/// replies are delivered by the channels of the box where its customer wrote, not here.
fn is_copy(tx: &Connection, conversation: u64) -> Result<bool, Error> {
    Ok(tx
        .prepare_cached(
            "SELECT 1 FROM conversation_homes WHERE conversation_id = ?1 AND joined = 1 LIMIT 1",
        )?
        .query_row(params![conversation as i64], |_| Ok(()))
        .optional()?
        .is_some())
}

/// The statements every message runs, held for a batch of records: each `prepare_cached`
/// allocates (rusqlite copies the SQL into its cache key per use), and a batch holds many
/// messages at high rates.
pub(super) struct Prepared<'c> {
    conn: &'c Connection,
    insert_message: Option<CachedStatement<'c>>,
    index_text: Option<CachedStatement<'c>>,
    touch_conversation: Option<CachedStatement<'c>>,
    /// Messages are left out of the search index (`Loading::Bulk`)...
    defer_search: bool,
    /// ...and the first one left out is noted here.
    pub(super) first_unindexed: Option<Lsn>,
}

impl<'c> Prepared<'c> {
    pub(super) fn new(conn: &'c Connection, loading: Loading) -> Self {
        Prepared {
            conn,
            insert_message: None,
            index_text: None,
            touch_conversation: None,
            defer_search: loading == Loading::Bulk,
            first_unindexed: None,
        }
    }
}

/// The statement in `slot`, prepared on first use.
fn held<'s, 'c>(
    slot: &'s mut Option<CachedStatement<'c>>,
    conn: &'c Connection,
    sql: &str,
) -> Result<&'s mut CachedStatement<'c>, Error> {
    if slot.is_none() {
        *slot = Some(conn.prepare_cached(sql)?);
    }
    Ok(slot.as_mut().expect("invariant: just prepared"))
}

/// Whether applying `op` may write what someone reads without asking the store to catch up
/// first: a row for the outbox to send (a reply to another channel than the web; a webhook
/// channel's conversation events, conservatively every customer message and resolution when
/// there are such channels), or login tokens a clock step moves. The applier commits those at
/// once rather than at the end of its interval. Pure; it mirrors the rows [`apply_op`] writes.
pub(super) fn read_without_asking(op: &Op, event_channels: &[String]) -> bool {
    match op {
        Op::MessageAdded(m) => {
            let via = m.via.as_ref().map(|v| v.channel.as_str());
            match m.sender {
                Sender::Agent | Sender::Bot => via.is_some_and(|c| c != WEB_CHANNEL),
                Sender::Visitor => via.is_some_and(|c| event_channels.iter().any(|e| e == c)),
                Sender::Note => false,
            }
        }
        Op::StatusChanged(s) => s.to == Status::Resolved && !event_channels.is_empty(),
        Op::ClockStepped { .. } => true,
        _ => false,
    }
}

/// Applies one operation inside the caller's transaction. `event_channels` are the channels
/// whose conversation events (opened, resolved) go to a webhook: they get outbox rows too.
///
/// One piece on purpose: one arm per operation kind, so reading this match is reading what the
/// store does with the journal; an arm that outgrows a few statements is its own function
/// (`link_contacts`).
pub(super) fn apply_op(
    prepared: &mut Prepared<'_>,
    lsn: Lsn,
    op: &Op,
    event_channels: &[String],
) -> Result<(), Error> {
    let tx = prepared.conn;
    match op {
        Op::ContactCreated {
            contact,
            identity,
            at_ms,
        } => {
            tx.prepare_cached("INSERT OR IGNORE INTO contacts (id, created_at) VALUES (?1, ?2)")?
                .execute(params![*contact as i64, at_ms])?;
            tx.prepare_cached(
                "INSERT OR IGNORE INTO identities (channel, external_id, contact_id, created_at) VALUES (?1, ?2, ?3, ?4)",
            )?
            .execute(params![identity.channel.as_str(), identity.external_id.as_str(), *contact as i64, at_ms])?;
        }
        Op::ConversationOpened {
            conversation,
            contact,
            at_ms,
        } => {
            tx.prepare_cached(
                "INSERT OR IGNORE INTO conversations (id, contact_id, status, created_at, last_activity_at)
                 VALUES (?1, ?2, ?3, ?4, ?4)",
            )?
            .execute(params![*conversation as i64, *contact as i64, Status::Idle.as_str(), at_ms])?;
        }
        Op::MessageAdded(m) => {
            let inserted = held(
                &mut prepared.insert_message,
                tx,
                "INSERT OR IGNORE INTO messages (id, conversation_id, contact_id, sender, agent_id, client_id, text, created_at, attachment, via_channel, via_external_id)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
            )?
                .execute(params![
                    lsn as i64,
                    m.conversation as i64,
                    m.contact as i64,
                    m.sender.as_str(),
                    m.agent.map(|a| a as i64),
                    m.client_id.as_ref().map(|c| c.as_str()),
                    m.text,
                    m.at_ms,
                    m.attachment,
                    m.via.as_ref().map(|v| v.channel.as_str()),
                    m.via.as_ref().map(|v| v.external_id.as_str()),
                ])?;
            if inserted == 1 && matches!(m.sender, Sender::Agent | Sender::Bot) {
                let via = m.via.as_ref().filter(|v| v.channel != WEB_CHANNEL);
                if let Some(via) = via {
                    if !is_copy(tx, m.conversation)? {
                        add_delivery(
                            tx,
                            lsn,
                            "message",
                            m.conversation,
                            via.channel.as_str(),
                            via.external_id.as_str(),
                            m.at_ms,
                        )?;
                    }
                }
            }
            // A conversation's first customer message: the "opened" event, for a webhook.
            if inserted == 1 && m.sender == Sender::Visitor {
                if let Some(via) = m
                    .via
                    .as_ref()
                    .filter(|v| event_channels.iter().any(|c| *c == v.channel.as_str()))
                {
                    let first: bool = tx
                        .prepare_cached(
                            "SELECT message_count = 0 FROM conversations WHERE id = ?1",
                        )?
                        .query_row(params![m.conversation as i64], |r| r.get(0))
                        .optional()?
                        .unwrap_or(false);
                    if first {
                        add_delivery(
                            tx,
                            lsn,
                            "conversation_opened",
                            m.conversation,
                            via.channel.as_str(),
                            via.external_id.as_str(),
                            m.at_ms,
                        )?;
                    }
                }
            }
            // A private note is searchable but is not the conversation's latest message (the
            // inbox previews what the customer and the shop said).
            if inserted == 1 && prepared.defer_search {
                prepared.first_unindexed.get_or_insert(lsn);
            } else if inserted == 1 {
                held(
                    &mut prepared.index_text,
                    tx,
                    "INSERT INTO messages_fts (rowid, text) VALUES (?1, ?2)",
                )?
                .execute(params![lsn as i64, m.text])?;
            }
            if inserted == 1 && m.sender != Sender::Note {
                held(
                    &mut prepared.touch_conversation,
                    tx,
                    "UPDATE conversations SET last_activity_at = ?2, last_message_id = ?3, message_count = message_count + 1
                     WHERE id = ?1",
                )?
                .execute(params![m.conversation as i64, m.at_ms, lsn as i64])?;
            }
        }
        Op::StatusChanged(s) => {
            tx.prepare_cached(
                "INSERT OR IGNORE INTO conversation_events (lsn, conversation_id, from_status, to_status, assignee, by_agent, at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?
            .execute(params![
                lsn as i64,
                s.conversation as i64,
                s.from.as_str(),
                s.to.as_str(),
                s.assignee.map(|a| a as i64),
                s.by.map(|a| a as i64),
                s.at_ms
            ])?;
            tx.prepare_cached(
                "UPDATE conversations SET status = ?2, assignee = ?3, last_activity_at = MAX(last_activity_at, ?4),
                 resolved_at = CASE WHEN ?2 = 'resolved' THEN ?4 ELSE resolved_at END
                 WHERE id = ?1",
            )?
            .execute(params![s.conversation as i64, s.to.as_str(), s.assignee.map(|a| a as i64), s.at_ms])?;
            if s.to == Status::Resolved && !event_channels.is_empty() {
                // The "resolved" event goes where the customer last wrote from.
                let via: Option<(String, String)> = tx
                    .prepare_cached(
                        "SELECT via_channel, via_external_id FROM messages
                         WHERE conversation_id = ?1 AND sender = 'visitor' AND via_channel IS NOT NULL
                         ORDER BY id DESC LIMIT 1",
                    )?
                    .query_row(params![s.conversation as i64], |r| Ok((r.get(0)?, r.get(1)?)))
                    .optional()?;
                if let Some((channel, external_id)) =
                    via.filter(|(c, _)| event_channels.contains(c))
                {
                    add_delivery(
                        tx,
                        lsn,
                        "conversation_resolved",
                        s.conversation,
                        &channel,
                        &external_id,
                        s.at_ms,
                    )?;
                }
            }
        }
        Op::KbEntryPut { entry, at_ms } => {
            let examples = serde_json::to_string(&entry.examples)
                .expect("invariant: a list of strings serialises");
            tx.prepare_cached(
                "INSERT INTO kb_entries (intent, examples, answer, team, updated_at) VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (intent) DO UPDATE SET examples = ?2, answer = ?3, team = ?4, updated_at = ?5",
            )?
            .execute(params![entry.intent, examples, entry.answer, entry.team, at_ms])?;
        }
        Op::KbEntryDeleted { intent, .. } => {
            tx.prepare_cached("DELETE FROM kb_entries WHERE intent = ?1")?
                .execute(params![intent])?;
        }
        Op::MessageClassified {
            message,
            intent,
            score,
        } => {
            tx.prepare_cached("UPDATE messages SET intent = ?2, intent_score = ?3 WHERE id = ?1")?
                .execute(params![*message as i64, intent, f64::from(*score)])?;
        }
        Op::HandedToHuman {
            conversation,
            team,
            reason,
            at_ms,
        } => {
            tx.prepare_cached(
                "UPDATE conversations SET queued_at = ?2, team = ?3, handoff_reason = ?4 WHERE id = ?1",
            )?
            .execute(params![*conversation as i64, at_ms, team, reason.as_str()])?;
        }
        Op::ContactsLinked {
            keep,
            merged,
            folded,
            ..
        } => link_contacts(tx, *keep, *merged, *folded)?,
        Op::Delivered { messages, at_ms } => {
            let mut update = tx.prepare_cached(
                "UPDATE deliveries SET state = 'delivered', attempts = attempts + 1, updated_at = ?2 WHERE id = ?1",
            )?;
            for m in messages {
                update.execute(params![*m as i64, at_ms])?;
            }
        }
        Op::DeliveryFailed {
            message,
            attempts,
            dead,
            error,
            at_ms,
        } => {
            tx.prepare_cached(
                "UPDATE deliveries SET state = CASE WHEN ?3 THEN 'dead' ELSE state END, attempts = ?2,
                 last_error = ?4, updated_at = ?5 WHERE id = ?1 AND state = 'pending'",
            )?
            .execute(params![*message as i64, attempts, dead, error, at_ms])?;
        }
        Op::ClockStepped {
            offset_ms,
            before_ms,
            correct_since_ms,
            correct_from_lsn,
            ..
        } => {
            clock_stepped(
                tx,
                *offset_ms,
                *before_ms,
                *correct_since_ms,
                *correct_from_lsn,
            )?;
        }
        Op::ContactDetails {
            contact,
            name,
            details,
            at_ms: _,
        } => {
            tx.prepare_cached("UPDATE contacts SET name = ?2, details = ?3 WHERE id = ?1")?
                .execute(params![*contact as i64, name, details])?;
        }
        Op::ConversationLabeled {
            conversation,
            labels,
            ..
        } => {
            tx.prepare_cached("DELETE FROM conversation_labels WHERE conversation_id = ?1")?
                .execute(params![*conversation as i64])?;
            let mut insert = tx.prepare_cached(
                "INSERT OR IGNORE INTO conversation_labels (conversation_id, label_id) VALUES (?1, ?2)",
            )?;
            for label in labels {
                insert.execute(params![*conversation as i64, *label as i64])?;
            }
        }
        Op::ConversationRated {
            conversation,
            score,
            comment,
            at_ms,
        } => rate(tx, *conversation as i64, *score, comment, *at_ms, lsn)?,
        Op::ConversationHeld {
            conversation,
            holders,
            context,
        } => {
            let mut vector = Vec::new();
            context.encode(&mut vector);
            tx.prepare_cached(
                "INSERT OR REPLACE INTO conversation_holders (conversation_id, holders, context)
                 VALUES (?1, ?2, ?3)",
            )?
            .execute(params![
                *conversation as i64,
                super::holders::to_json(holders),
                vector
            ])?;
        }
        Op::ConversationHomed {
            conversation,
            home_node,
            home_id,
            joined,
        } => {
            tx.prepare_cached(
                "INSERT OR IGNORE INTO conversation_homes (home_node, home_id, conversation_id, joined)
                 VALUES (?1, ?2, ?3, ?4)",
            )?
            .execute(params![*home_node as i64, *home_id as i64, *conversation as i64, joined])?;
        }
        Op::Replicated(r) => {
            tx.prepare_cached(
                "INSERT OR IGNORE INTO cluster_ops (origin, seq, hlc, lsn, message, body)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?
            .execute(params![
                r.origin as i64,
                r.seq as i64,
                r.hlc as i64,
                lsn as i64,
                r.message.map(|m| m as i64),
                r.body
            ])?;
            super::replicated::apply(tx, r, lsn)?;
        }
    }
    Ok(())
}

/// The wall clock stepped (see `clock.rs`). Durations keep their length: tokens expire and
/// the last day's uploads count as long after they were made as before. Records stamped by an
/// unsynchronised clock (between `since` and `before`, from LSN `from_lsn` on) get the right
/// time. Each bound uses an index: message ids and event LSNs, conversations' activity time.
fn clock_stepped(
    tx: &Connection,
    offset: i64,
    before: i64,
    since: Option<i64>,
    from_lsn: u64,
) -> Result<(), Error> {
    tx.prepare_cached(
        "UPDATE tokens SET created_at = created_at + ?1, expires_at = expires_at + ?1",
    )?
    .execute(params![offset])?;
    tx.prepare_cached("UPDATE uploads SET created_at = created_at + ?1 WHERE created_at > ?2")?
        .execute(params![offset, before - 2 * 86_400_000])?;
    let Some(since) = since else {
        return Ok(());
    };
    let from = from_lsn as i64;
    for sql in [
        "UPDATE messages SET created_at = created_at + ?1
         WHERE id >= ?4 AND created_at BETWEEN ?2 AND ?3",
        "UPDATE conversation_events SET at = at + ?1 WHERE lsn >= ?4 AND at BETWEEN ?2 AND ?3",
        "UPDATE deliveries SET created_at = created_at + ?1 WHERE id >= ?4 AND created_at BETWEEN ?2 AND ?3",
        "UPDATE deliveries SET updated_at = updated_at + ?1 WHERE id >= ?4 AND updated_at BETWEEN ?2 AND ?3",
        "UPDATE ratings SET rated_at = rated_at + ?1 WHERE lsn >= ?4 AND rated_at BETWEEN ?2 AND ?3",
    ] {
        tx.prepare_cached(sql)?
            .execute(params![offset, since, before, from])?;
    }
    tx.prepare_cached(
        "UPDATE conversations SET
           created_at = CASE WHEN created_at BETWEEN ?2 AND ?3 THEN created_at + ?1 ELSE created_at END,
           resolved_at = CASE WHEN resolved_at BETWEEN ?2 AND ?3 THEN resolved_at + ?1 ELSE resolved_at END,
           queued_at = CASE WHEN queued_at BETWEEN ?2 AND ?3 THEN queued_at + ?1 ELSE queued_at END,
           last_activity_at = last_activity_at + ?1
         WHERE last_activity_at BETWEEN ?2 AND ?3",
    )?
    .execute(params![offset, since, before])?;
    Ok(())
}

/// Moves contact `merged` into `keep`; with `folded`, the messages of one open conversation
/// into the other, which gets the counters of both.
fn link_contacts(
    tx: &Connection,
    keep: u64,
    merged: u64,
    folded: Option<(u64, u64)>,
) -> Result<(), Error> {
    let (keep, merged) = (keep as i64, merged as i64);
    for sql in [
        "UPDATE identities SET contact_id = ?1 WHERE contact_id = ?2",
        "UPDATE conversations SET contact_id = ?1 WHERE contact_id = ?2",
        "UPDATE messages SET contact_id = ?1 WHERE contact_id = ?2",
        "UPDATE contacts SET merged_into = ?1 WHERE id = ?2",
    ] {
        tx.prepare_cached(sql)?.execute(params![keep, merged])?;
    }
    super::replicated::fold_contact_versions(tx, keep, merged)?;
    if let Some((from, into)) = folded {
        let (from, into) = (from as i64, into as i64);
        tx.prepare_cached("UPDATE messages SET conversation_id = ?2 WHERE conversation_id = ?1")?
            .execute(params![from, into])?;
        // Cluster mode: the names other boxes know the folded one by now name the kept one.
        tx.prepare_cached(
            "UPDATE conversation_homes SET conversation_id = ?2, joined = 0 WHERE conversation_id = ?1",
        )?
        .execute(params![from, into])?;
        tx.prepare_cached(
            "INSERT OR IGNORE INTO conversation_labels (conversation_id, label_id)
             SELECT ?2, label_id FROM conversation_labels WHERE conversation_id = ?1",
        )?
        .execute(params![from, into])?;
        tx.prepare_cached(
            "UPDATE conversations SET status = 'idle', assignee = NULL, queued_at = NULL, merged_into = ?2,
             message_count = 0, last_message_id = NULL WHERE id = ?1",
        )?
        .execute(params![from, into])?;
        tx.prepare_cached(
            "UPDATE conversations SET
               message_count = (SELECT COUNT(*) FROM messages WHERE conversation_id = ?1 AND sender != 'note'),
               last_message_id = (SELECT MAX(id) FROM messages WHERE conversation_id = ?1 AND sender != 'note'),
               last_activity_at = MAX(last_activity_at, COALESCE((SELECT MAX(created_at) FROM messages WHERE conversation_id = ?1), 0))
             WHERE id = ?1",
        )?
        .execute(params![into])?;
    }
    Ok(())
}

#[cfg(test)]
mod tests;

/// Records a customer's rating of `conversation` (the latest stands), with the agent who last
/// held it: a conversation closed for idleness holds no one.
pub(super) fn rate(
    tx: &Connection,
    conversation: i64,
    score: u8,
    comment: &str,
    at_ms: i64,
    lsn: Lsn,
) -> Result<(), Error> {
    tx.prepare_cached(
        "INSERT OR REPLACE INTO ratings (conversation_id, score, comment, agent_id, rated_at, lsn)
         SELECT ?1, ?2, ?3,
                COALESCE(assignee, (SELECT e.assignee FROM conversation_events e
                                    WHERE e.conversation_id = ?1 AND e.assignee IS NOT NULL
                                    ORDER BY e.lsn DESC LIMIT 1)),
                ?4, ?5
         FROM conversations WHERE id = ?1",
    )?
    .execute(params![conversation, score, comment, at_ms, lsn as i64])?;
    Ok(())
}
