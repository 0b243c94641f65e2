//! What a cluster operation's record projects beyond `cluster_ops`: the knowledge base's
//! versions and tombstones (`kb_versions`), and the join of the delivery outcomes of each
//! reply (`delivery_outcomes`), by the merge rules of `cluster/kb_lww.rs` and
//! `cluster/outcome.rs` (migration 013); conversations' labels and ratings in
//! `replicated_annotations.rs`; each contact's name-and-details register version
//! (`contact_versions`, migration 015: the greatest write of any of its identities, a link
//! folding the merged contact's into the kept one's).
//!
//! Runs inside the applier's transaction, for every `Op::Replicated` record, this box's own
//! and the others': a knowledge-base write raises the intent's version if it is greater (the
//! entry itself is the dispatcher's `KbEntryPut`/`KbEntryDeleted` record beside it); a delivery
//! report is joined into each reply's outcome, keyed by the reply's dot, so a report that
//! arrives before its reply waits for it. Both are maxima: applying a record twice, or in
//! another order, leaves the same rows. Node ids are compared in Rust (u64), never in SQL
//! (stored as i64).

use rusqlite::{params, Connection, OptionalExtension};

use super::Error;
use crate::cluster::kb_lww::Version;
use crate::cluster::outcome::Outcome;
use crate::cluster::wire::{
    Body, RemoteDelivery, BODY_DELIVERY, BODY_DETAILS, BODY_KB, BODY_LABELS, BODY_RATING,
};
use crate::model::Lsn;
use crate::op::Replicated;

/// Projects record `r` into the tables this module owns (most records are messages and
/// statuses, told apart by their first byte before anything is decoded).
pub(super) fn apply(tx: &Connection, r: &Replicated, lsn: Lsn) -> Result<(), Error> {
    if !matches!(
        r.body.first(),
        Some(&BODY_KB | &BODY_DELIVERY | &BODY_LABELS | &BODY_RATING | &BODY_DETAILS)
    ) {
        return Ok(());
    }
    let version = Version {
        hlc: r.hlc,
        origin: r.origin,
    };
    match Body::decode(&r.body) {
        Ok(Body::Kb(kb)) => kb_write(tx, &kb.intent, version, kb.entry.is_none()),
        Ok(Body::Delivery(d)) => join_outcomes(tx, &d),
        Ok(Body::Labels(l)) => super::replicated_annotations::labels(tx, &l, version, &r.body),
        Ok(Body::Rating(rating)) => {
            super::replicated_annotations::rating(tx, &rating, version, &r.body, lsn)
        }
        Ok(Body::Details(d)) => {
            // The dispatcher journaled the identity's contact before this record.
            let contact: Option<i64> = tx
                .prepare_cached(
                    "SELECT contact_id FROM identities WHERE channel = ?1 AND external_id = ?2",
                )?
                .query_row(
                    params![d.contact.channel.as_str(), d.contact.external_id.as_str()],
                    |row| row.get(0),
                )
                .optional()?;
            match contact {
                Some(contact) => raise_contact_version(tx, contact, (r.hlc, r.origin)),
                None => Ok(()),
            }
        }
        // The dispatcher logged what it could not read; it is kept in cluster_ops.
        _ => Ok(()),
    }
}

/// A contact's register version, if it has one.
pub(super) fn contact_version(tx: &Connection, contact: i64) -> Result<Option<(u64, u64)>, Error> {
    Ok(tx
        .prepare_cached("SELECT hlc, origin FROM contact_versions WHERE contact_id = ?1")?
        .query_row(params![contact], |row| {
            Ok((row.get::<_, i64>(0)? as u64, row.get::<_, i64>(1)? as u64))
        })
        .optional()?)
}

/// Raises `contact`'s register version to `version` (HLC time, origin) if that is greater.
fn raise_contact_version(tx: &Connection, contact: i64, version: (u64, u64)) -> Result<(), Error> {
    if contact_version(tx, contact)?.is_some_and(|held| held >= version) {
        return Ok(());
    }
    tx.prepare_cached(
        "INSERT OR REPLACE INTO contact_versions (contact_id, hlc, origin) VALUES (?1, ?2, ?3)",
    )?
    .execute(params![contact, version.0 as i64, version.1 as i64])?;
    Ok(())
}

/// `merged` was linked into `keep`: the kept contact's register version is the greater of the
/// two.
pub(super) fn fold_contact_versions(tx: &Connection, keep: i64, merged: i64) -> Result<(), Error> {
    if let Some(version) = contact_version(tx, merged)? {
        raise_contact_version(tx, keep, version)?;
        tx.prepare_cached("DELETE FROM contact_versions WHERE contact_id = ?1")?
            .execute(params![merged])?;
    }
    Ok(())
}

fn kb_write(tx: &Connection, intent: &str, version: Version, deleted: bool) -> Result<(), Error> {
    let held: Option<(i64, i64)> = tx
        .prepare_cached("SELECT hlc, origin FROM kb_versions WHERE intent = ?1")?
        .query_row(params![intent], |row| Ok((row.get(0)?, row.get(1)?)))
        .optional()?;
    let held = held.map(|(hlc, origin)| Version {
        hlc: hlc as u64,
        origin: origin as u64,
    });
    if version.supersedes(held) {
        tx.prepare_cached(
            "INSERT OR REPLACE INTO kb_versions (intent, hlc, origin, deleted) VALUES (?1, ?2, ?3, ?4)",
        )?
        .execute(params![intent, version.hlc as i64, version.origin as i64, deleted])?;
    }
    Ok(())
}

fn join_outcomes(tx: &Connection, d: &RemoteDelivery) -> Result<(), Error> {
    for dot in &d.messages {
        let key = (dot.origin as i64, dot.seq as i64);
        let held: Option<Outcome> = tx
            .prepare_cached(
                "SELECT state, attempts, last_error, updated_at FROM delivery_outcomes
                 WHERE origin = ?1 AND seq = ?2",
            )?
            .query_row(params![key.0, key.1], |row| {
                Ok(Outcome::from_stored(
                    &row.get::<_, String>(0)?,
                    row.get(1)?,
                    row.get(2)?,
                    row.get(3)?,
                ))
            })
            .optional()?;
        let joined = held
            .clone()
            .unwrap_or_else(Outcome::pending)
            .join(d.outcome.clone());
        if held.as_ref() != Some(&joined) {
            tx.prepare_cached(
                "INSERT OR REPLACE INTO delivery_outcomes (origin, seq, state, attempts, last_error, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?
            .execute(params![
                key.0,
                key.1,
                joined.state(),
                joined.attempts,
                joined.error,
                joined.at_ms
            ])?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::outcome::Rank;
    use crate::cluster::vector::Dot;
    use crate::cluster::wire::RemoteKb;

    fn store() -> Connection {
        let mut conn = Connection::open_in_memory().unwrap();
        crate::store::schema::migrate(&mut conn, None).unwrap();
        conn
    }

    fn record(origin: u64, hlc: u64, body: Body) -> Replicated {
        Replicated {
            origin,
            seq: hlc,
            hlc,
            message: None,
            body: body.encode(),
        }
    }

    fn kb(intent: &str, put: bool) -> Body {
        Body::Kb(RemoteKb {
            intent: intent.into(),
            entry: put.then(|| crate::op::KbEntry {
                intent: intent.into(),
                examples: vec!["q".into()],
                answer: "a".into(),
                team: String::new(),
            }),
            at_ms: 1,
        })
    }

    fn delivery(rank: Rank, attempts: u32) -> Body {
        Body::Delivery(RemoteDelivery {
            messages: vec![Dot {
                origin: u64::MAX - 1,
                seq: 3,
            }],
            outcome: Outcome {
                rank,
                attempts,
                error: String::new(),
                at_ms: 9,
            },
        })
    }

    fn kb_rows(conn: &Connection) -> Vec<(String, i64, i64, bool)> {
        conn.prepare("SELECT intent, hlc, origin, deleted FROM kb_versions ORDER BY intent")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    }

    fn outcome_rows(conn: &Connection) -> Vec<(String, u32)> {
        conn.prepare("SELECT state, attempts FROM delivery_outcomes")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    }

    #[test]
    fn every_order_of_records_with_duplicates_leaves_the_same_rows() {
        // A node id above i64::MAX sorts above a small one (compared as u64).
        let records = [
            record(0xa, 10, kb("hours", true)),
            record(u64::MAX - 1, 10, kb("hours", false)),
            record(0xb, 9, kb("hours", true)),
            record(0xa, 5, kb("parking", false)),
            record(0xa, 11, delivery(Rank::Failed, 1)),
            record(0xa, 12, delivery(Rank::Delivered, 0)),
            record(0xb, 13, delivery(Rank::Failed, 3)),
        ];
        let mut first = None;
        for rotation in 0..records.len() {
            for reversed in [false, true] {
                let conn = store();
                let mut order: Vec<&Replicated> = records.iter().collect();
                order.rotate_left(rotation);
                if reversed {
                    order.reverse();
                }
                order.push(order[0]);
                for r in order {
                    apply(&conn, r, 1).unwrap();
                }
                let rows = (kb_rows(&conn), outcome_rows(&conn));
                assert_eq!(
                    rows.0,
                    [
                        ("hours".to_string(), 10, (u64::MAX - 1) as i64, true),
                        ("parking".to_string(), 5, 0xa, true)
                    ]
                );
                assert_eq!(rows.1, [("delivered".to_string(), 0)]);
                assert_eq!(first.get_or_insert(rows.clone()), &rows);
                // What the dispatcher reads back at start: versions and tombstones.
                let mut stored = crate::store::queries::cluster_startup(&conn)
                    .unwrap()
                    .kb_versions;
                stored.sort_by(|l, r| l.0.cmp(&r.0));
                let hours = stored[0].1;
                assert_eq!((stored[0].0.as_str(), hours.deleted), ("hours", true));
                assert_eq!(hours.version.origin, u64::MAX - 1);
                assert_eq!(stored.len(), 2);
            }
        }
    }

    #[test]
    fn messages_and_statuses_are_left_alone() {
        let conn = store();
        let message = Replicated {
            origin: 1,
            seq: 1,
            hlc: 1,
            message: Some(4),
            body: vec![1, 2, 3],
        };
        apply(&conn, &message, 1).unwrap();
        assert!(kb_rows(&conn).is_empty() && outcome_rows(&conn).is_empty());
    }
}
