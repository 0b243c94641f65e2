//! The cluster's reads: what the dispatcher rebuilds at start (how far each origin is
//! applied, the clock, and for the conversations not closed only: their cluster names, the
//! customer messages they hold per origin, their holders), what it reads on demand (a closed
//! conversation's names, a contact's register version), and the ranges of operations served
//! to other boxes.

use rusqlite::{params, Connection, OptionalExtension};

use super::Error;
use crate::cluster::register::Holders;
use crate::cluster::vector::VersionVector;
use crate::cluster::wire::ConvKey;
use crate::model::{ContactId, ConversationId};

/// What the dispatcher's replica state is rebuilt from.
#[derive(Debug, Default)]
pub struct ClusterStartup {
    /// Per origin, the highest seq stored (origins are applied in order, so all below too).
    pub applied: Vec<(u64, u64)>,
    /// The largest hybrid-logical-clock time stored.
    pub max_hlc: u64,
    /// For conversations not closed: (home node, home id, local conversation, joined).
    pub homes: Vec<(u64, u64, ConversationId, bool)>,
    /// For conversations not closed: (conversation, origin, highest seq of a customer message).
    pub customer_tips: Vec<(ConversationId, u64, u64)>,
    /// For conversations not closed: (conversation, the highest HLC time of its messages).
    pub message_floors: Vec<(ConversationId, u64)>,
    /// For conversations not closed: who holds them across the boxes, and the register's
    /// context.
    pub holders: Vec<(ConversationId, Holders)>,
    /// Per knowledge-base intent, the version of its last write (`replicated.rs`).
    pub kb_versions: Vec<(String, crate::cluster::kb_lww::Register)>,
}

// What the start reads for the conversations not closed: each goes from those conversations
// (by the status index) to their rows, so it reads what they need, not whole tables.
const HOMES_SQL: &str = "SELECT h.home_node, h.home_id, h.conversation_id, h.joined
     FROM conversations c JOIN conversation_homes h ON h.conversation_id = c.id
     WHERE c.status IN ('waiting', 'in_progress', 'resolved')";
const TIPS_SQL: &str = "SELECT m.conversation_id, o.origin, MAX(o.seq) FROM conversations c
     JOIN messages m ON m.conversation_id = c.id JOIN cluster_ops o ON o.message = m.id
     WHERE m.sender = 'visitor' AND c.status IN ('waiting', 'in_progress', 'resolved')
     GROUP BY m.conversation_id, o.origin";
const FLOORS_SQL: &str = "SELECT m.conversation_id, MAX(o.hlc) FROM conversations c
     JOIN messages m ON m.conversation_id = c.id JOIN cluster_ops o ON o.message = m.id
     WHERE c.status IN ('waiting', 'in_progress', 'resolved') GROUP BY m.conversation_id";
const HOLDERS_SQL: &str = "SELECT h.conversation_id, h.holders, h.context FROM conversations c
     JOIN conversation_holders h ON h.conversation_id = c.id
     WHERE c.status IN ('waiting', 'in_progress', 'resolved')";

pub fn cluster_startup(conn: &Connection) -> Result<ClusterStartup, Error> {
    // One seek per origin (a few boxes), not a pass over every operation.
    let mut applied = Vec::new();
    let mut from = Some(i64::MIN);
    while let Some(at_least) = from {
        let Some((origin, seq)) = conn
            .prepare_cached(
                "SELECT origin, (SELECT MAX(seq) FROM cluster_ops WHERE origin = o.origin)
                 FROM cluster_ops o WHERE origin >= ?1 ORDER BY origin LIMIT 1",
            )?
            .query_row(params![at_least], |r| {
                Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?))
            })
            .optional()?
        else {
            break;
        };
        applied.push((origin as u64, seq as u64));
        from = origin.checked_add(1);
    }
    let max_hlc: Option<i64> =
        conn.query_row("SELECT MAX(hlc) FROM cluster_ops", [], |r| r.get(0))?;
    let homes = conn
        .prepare(HOMES_SQL)?
        .query_map([], |r| {
            Ok((
                r.get::<_, i64>(0)? as u64,
                r.get::<_, i64>(1)? as u64,
                r.get::<_, i64>(2)? as u64,
                r.get(3)?,
            ))
        })?
        .collect::<Result<_, _>>()?;
    let customer_tips = conn
        .prepare(TIPS_SQL)?
        .query_map([], |r| {
            Ok((
                r.get::<_, i64>(0)? as u64,
                r.get::<_, i64>(1)? as u64,
                r.get::<_, i64>(2)? as u64,
            ))
        })?
        .collect::<Result<_, _>>()?;
    let message_floors = conn
        .prepare(FLOORS_SQL)?
        .query_map([], |r| {
            Ok((r.get::<_, i64>(0)? as u64, r.get::<_, i64>(1)? as u64))
        })?
        .collect::<Result<_, _>>()?;
    let holders = conn
        .prepare(HOLDERS_SQL)?
        .query_map([], |r| {
            Ok((
                r.get::<_, i64>(0)? as u64,
                r.get::<_, String>(1)?,
                r.get::<_, Vec<u8>>(2)?,
            ))
        })?
        .collect::<Result<Vec<_>, _>>()?
        .into_iter()
        .filter_map(|(conversation, json, context)| {
            let values = crate::store::holders::from_json(&json)?;
            let (context, _) = VersionVector::decode(&context).ok()?;
            Some((conversation, Holders::from_parts(values, context)))
        })
        .collect();
    Ok(ClusterStartup {
        applied,
        holders,
        max_hlc: max_hlc.unwrap_or(0) as u64,
        homes,
        customer_tips,
        message_floors,
        kb_versions: super::kb_registers(conn)?,
    })
}

/// `contact`'s name-and-details register version (HLC time, origin), if it has one.
pub fn contact_version(conn: &Connection, contact: ContactId) -> Result<Option<(u64, u64)>, Error> {
    Ok(conn
        .prepare_cached("SELECT hlc, origin FROM contact_versions WHERE contact_id = ?1")?
        .query_row(params![contact as i64], |r| {
            Ok((r.get::<_, i64>(0)? as u64, r.get::<_, i64>(1)? as u64))
        })
        .optional()?)
}

/// The conversation here that the cluster name `key` names (`conversation_homes`).
pub fn conversation_named(
    conn: &Connection,
    key: ConvKey,
) -> Result<Option<ConversationId>, Error> {
    Ok(conn
        .prepare_cached(
            "SELECT conversation_id FROM conversation_homes WHERE home_node = ?1 AND home_id = ?2",
        )?
        .query_row(params![key.home as i64, key.id as i64], |r| {
            r.get::<_, i64>(0)
        })
        .optional()?
        .map(|c| c as u64))
}

/// The cluster name of the conversation `conversation` is a copy of, if it is one.
pub fn copy_key(conn: &Connection, conversation: ConversationId) -> Result<Option<ConvKey>, Error> {
    Ok(conn
        .prepare_cached(
            "SELECT home_node, home_id FROM conversation_homes
             WHERE conversation_id = ?1 AND joined = 1 LIMIT 1",
        )?
        .query_row(params![conversation as i64], |r| {
            Ok(ConvKey {
                home: r.get::<_, i64>(0)? as u64,
                id: r.get::<_, i64>(1)? as u64,
            })
        })
        .optional()?)
}

/// One stored operation: (seq, hlc, encoded body).
pub type StoredOp = (u64, u64, Vec<u8>);

/// `origin`'s operations from `first` to `last` (inclusive) that the store holds, in seq
/// order, at most `limit`.
pub fn cluster_ops_range(
    conn: &Connection,
    origin: u64,
    first: u64,
    last: u64,
    limit: usize,
) -> Result<Vec<StoredOp>, Error> {
    let rows = conn
        .prepare_cached(
            "SELECT seq, hlc, body FROM cluster_ops WHERE origin = ?1 AND seq BETWEEN ?2 AND ?3
             ORDER BY seq LIMIT ?4",
        )?
        .query_map(
            params![origin as i64, first as i64, last as i64, limit as i64],
            |r| {
                Ok((
                    r.get::<_, i64>(0)? as u64,
                    r.get::<_, i64>(1)? as u64,
                    r.get(2)?,
                ))
            },
        )?
        .collect::<Result<_, _>>()?;
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::wire::{Body, RemoteDetails};
    use crate::conversation::Status;
    use crate::model::{bounded_id, Identity};
    use crate::op::{Op, Replicated};
    use crate::store::applier::Loading;
    use crate::store::apply::{apply_op, Prepared};

    fn web(id: &str) -> Identity {
        Identity {
            channel: bounded_id("web").unwrap(),
            external_id: bounded_id(id).unwrap(),
        }
    }

    fn named(origin: u64, hlc: u64, who: &str, name: &str) -> Op {
        Op::Replicated(Replicated {
            origin,
            seq: 1,
            hlc,
            message: None,
            body: Body::Details(RemoteDetails {
                contact: web(who),
                name: name.into(),
                details: "{}".into(),
                at_ms: 0,
            })
            .encode(),
        })
    }

    #[test]
    fn a_restart_finds_each_contacts_newest_name_and_every_name_of_a_folded_conversation() {
        let mut conn = Connection::open_in_memory().unwrap();
        crate::store::schema::migrate(&mut conn, None).unwrap();
        let homed = |conversation, home_node, home_id, joined| Op::ConversationHomed {
            conversation,
            home_node,
            home_id,
            joined,
        };
        let mut ops = Vec::new();
        for (contact, who) in [(1, "v1"), (2, "v2"), (3, "v3")] {
            ops.push(Op::ContactCreated {
                contact,
                identity: web(who),
                at_ms: 0,
            });
            ops.push(Op::ConversationOpened {
                conversation: contact,
                contact,
                at_ms: 0,
            });
        }
        ops.extend([
            // Box 7 (this one) owns conversation 1; 2 is its copy of box 9's conversation 4,
            // and box 9's conversation 5 was folded into 1 when it came.
            homed(2, 9, 4, true),
            homed(1, 9, 5, false),
            Op::StatusChanged(crate::op::StatusChanged {
                conversation: 2,
                from: Status::Idle,
                to: Status::Waiting,
                assignee: None,
                by: None,
                at_ms: 0,
            }),
            // 3, box 9's conversation 6 here, is closed: a restart does not read its name.
            homed(3, 9, 6, true),
            // v2 is named by box 7; v1 by box 9, earlier.
            Op::ContactDetails {
                contact: 2,
                name: "Bo".into(),
                details: "{}".into(),
                at_ms: 0,
            },
            named(7, 100, "v2", "Bo"),
            named(9, 50, "v1", "Ann"),
            // Linked: v2's contact kept (its name is newer), conversation 1 folded into 2.
            homed(2, 7, 1, false),
            Op::ContactsLinked {
                keep: 2,
                merged: 1,
                folded: Some((1, 2)),
                at_ms: 0,
            },
        ]);
        let tx = conn.transaction().unwrap();
        for (i, op) in ops.iter().enumerate() {
            apply_op(
                &mut Prepared::new(&tx, Loading::Live),
                i as u64 + 1,
                op,
                &[],
            )
            .unwrap();
        }
        tx.commit().unwrap();
        let startup = cluster_startup(&conn).unwrap();
        assert_eq!(contact_version(&conn, 2).unwrap(), Some((100, 7)));
        assert_eq!(contact_version(&conn, 1).unwrap(), None, "linked away");
        let mut homes = startup.homes;
        homes.sort();
        assert_eq!(homes, [(7, 1, 2, false), (9, 4, 2, true), (9, 5, 2, false)]);
        let key = |home, id| ConvKey { home, id };
        assert_eq!(conversation_named(&conn, key(9, 6)).unwrap(), Some(3));
        assert_eq!(conversation_named(&conn, key(9, 5)).unwrap(), Some(2));
        assert_eq!(conversation_named(&conn, key(9, 7)).unwrap(), None);
        assert_eq!(copy_key(&conn, 3).unwrap(), Some(key(9, 6)));
        assert_eq!(
            copy_key(&conn, 1).unwrap(),
            None,
            "folded: no copy any more"
        );
    }

    #[test]
    fn the_start_reads_go_from_the_conversations_not_closed_never_through_whole_tables() {
        let mut conn = Connection::open_in_memory().unwrap();
        crate::store::schema::migrate(&mut conn, None).unwrap();
        for sql in [HOMES_SQL, TIPS_SQL, FLOORS_SQL, HOLDERS_SQL] {
            let plan: Vec<String> = conn
                .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
                .unwrap()
                .query_map([], |r| r.get(3))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap();
            println!("{plan:?}");
            assert!(
                plan.iter().all(|step| !step.starts_with("SCAN")),
                "{sql}: {plan:?}"
            );
        }
    }
}
