//! What a cluster operation about a conversation's labels or rating projects: each is a
//! last-writer-wins register per conversation (as every box names it, [`ConvKey`]), its
//! version the operation's HLC time and origin (`cluster/kb_lww.rs`'s [`Version`]), kept in
//! `annotation_versions` (migration 016).
//!
//! Runs inside the applier's transaction for every such `Op::Replicated` record, this box's own
//! (after the `ConversationLabeled`/`ConversationRated` record it mirrors, to the same effect)
//! and the others' (after the dispatcher made the conversation's copy here, if it had none). A
//! write of a greater version than the one held replaces the conversation's label set or
//! rating; any other changes nothing but what follows.
//!
//! Labels travel by name. Every write's names, winning or not, are label definitions here: a
//! name this box lacks is defined with the colour the write carries (so the set of names
//! defined is a grow-only union, the same in any order); a name it has keeps its own colour.
//! Renaming or deleting a definition stays on its box: a deleted name comes back here when a
//! later write carries it again.
//!
//! Invariant: applying the same records in any order, any number of times, leaves the same
//! versions, label sets, ratings and label names (property test below).

use rusqlite::{params, Connection, OptionalExtension};

use super::Error;
use crate::cluster::kb_lww::Version;
use crate::cluster::wire::{ConvKey, RemoteLabels, RemoteRating, BODY_LABELS, BODY_RATING};
use crate::model::Lsn;

/// Projects another or this box's write of a conversation's labels, of `version`.
pub(super) fn labels(tx: &Connection, l: &RemoteLabels, version: Version) -> Result<(), Error> {
    let mut ids = Vec::with_capacity(l.labels.len());
    for label in &l.labels {
        tx.prepare_cached(
            "INSERT INTO labels (name, color, created_at) VALUES (?1, ?2, ?3)
             ON CONFLICT (name) DO NOTHING",
        )?
        .execute(params![label.name, label.color, l.at_ms])?;
        let id: i64 = tx
            .prepare_cached("SELECT id FROM labels WHERE name = ?1")?
            .query_row(params![label.name], |r| r.get(0))?;
        ids.push(id);
    }
    if !raise(tx, l.conversation, BODY_LABELS, version)? {
        return Ok(());
    }
    let Some(conversation) = local_conversation(tx, l.conversation)? else {
        return Ok(());
    };
    tx.prepare_cached("DELETE FROM conversation_labels WHERE conversation_id = ?1")?
        .execute(params![conversation])?;
    let mut insert = tx.prepare_cached(
        "INSERT OR IGNORE INTO conversation_labels (conversation_id, label_id) VALUES (?1, ?2)",
    )?;
    for id in ids {
        insert.execute(params![conversation, id])?;
    }
    Ok(())
}

/// Projects a customer's rating of `version` (record `lsn`).
pub(super) fn rating(
    tx: &Connection,
    r: &RemoteRating,
    version: Version,
    lsn: Lsn,
) -> Result<(), Error> {
    if !raise(tx, r.conversation, BODY_RATING, version)? {
        return Ok(());
    }
    let Some(conversation) = local_conversation(tx, r.conversation)? else {
        return Ok(());
    };
    super::apply::rate(tx, conversation, r.score, &r.comment, r.at_ms, lsn)
}

/// Raises the register's version to `version` if it is greater: whether it was.
fn raise(tx: &Connection, key: ConvKey, kind: u8, version: Version) -> Result<bool, Error> {
    let held = held_version(tx, key, kind)?;
    if !version.supersedes(held) {
        return Ok(false);
    }
    tx.prepare_cached(
        "INSERT OR REPLACE INTO annotation_versions (home, home_id, kind, hlc, origin)
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![
        key.home as i64,
        key.id as i64,
        kind,
        version.hlc as i64,
        version.origin as i64
    ])?;
    Ok(true)
}

/// The conversation here that `key` names: a copy or a fold (`conversation_homes`), else this
/// box's own of that id (one that is not a copy of another box's).
fn local_conversation(tx: &Connection, key: ConvKey) -> Result<Option<i64>, Error> {
    let homed: Option<i64> = tx
        .prepare_cached(
            "SELECT conversation_id FROM conversation_homes WHERE home_node = ?1 AND home_id = ?2",
        )?
        .query_row(params![key.home as i64, key.id as i64], |r| r.get(0))
        .optional()?;
    if homed.is_some() {
        return Ok(homed);
    }
    Ok(tx
        .prepare_cached(
            "SELECT id FROM conversations c WHERE id = ?1 AND NOT EXISTS
             (SELECT 1 FROM conversation_homes h WHERE h.conversation_id = c.id AND h.joined)",
        )?
        .query_row(params![key.id as i64], |r| r.get(0))
        .optional()?)
}

/// The version of a conversation's register (`kind`: its body kind), if any write was applied.
fn held_version(
    conn: &Connection,
    key: ConvKey,
    kind: u8,
) -> Result<Option<Version>, Error> {
    let held: Option<(i64, i64)> = conn
        .prepare_cached(
            "SELECT hlc, origin FROM annotation_versions WHERE home = ?1 AND home_id = ?2 AND kind = ?3",
        )?
        .query_row(params![key.home as i64, key.id as i64, kind], |row| {
            Ok((row.get(0)?, row.get(1)?))
        })
        .optional()?;
    Ok(held.map(|(hlc, origin)| Version {
        hlc: hlc as u64,
        origin: origin as u64,
    }))
}
