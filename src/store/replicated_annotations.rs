//! What a cluster operation about a conversation's labels or rating projects: each is a
//! last-writer-wins register per conversation (as every box names it, [`ConvKey`]), its
//! version the operation's HLC time and origin (`cluster/kb_lww.rs`'s [`Version`]), kept in
//! `annotation_versions` (migration 016).
//!
//! Runs inside the applier's transaction for every such `Op::Replicated` record, this box's own
//! (after the `ConversationLabeled`/`ConversationRated` record it mirrors) and the others'
//! (after the dispatcher made the conversation's copy here, if it had none). A write of a
//! greater version than the one held becomes the register's value (its body is kept with its
//! version); either way the conversation then shows the register's value, applied again: a
//! local record that lost to a write this box had applied but its store had not yet when the
//! agent made it (`dispatch/replica/annotations.rs` stamps above the version the store holds)
//! is undone by its own stamp, so this box shows what every other box shows.
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
use crate::cluster::wire::{
    Body, ConvKey, LabelName, RemoteLabels, RemoteRating, BODY_LABELS, BODY_RATING,
};
use crate::model::Lsn;

/// Projects a write of a conversation's labels, of `version` (`body`: its encoding).
pub(super) fn labels(
    tx: &Connection,
    l: &RemoteLabels,
    version: Version,
    body: &[u8],
) -> Result<(), Error> {
    define(tx, &l.labels, l.at_ms)?;
    record(tx, l.conversation, BODY_LABELS, version, body)?;
    let Some(conversation) = local_conversation(tx, l.conversation)? else {
        return Ok(());
    };
    let Some(Ok(Body::Labels(winner))) = shown(tx, conversation, BODY_LABELS)?
        .as_deref()
        .map(Body::decode)
    else {
        return Ok(());
    };
    // Defined again: an admin here may have deleted one since the winner came.
    let ids = define(tx, &winner.labels, winner.at_ms)?;
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

/// Projects a customer's rating of `version` (`body`: its encoding; record `lsn`).
pub(super) fn rating(
    tx: &Connection,
    r: &RemoteRating,
    version: Version,
    body: &[u8],
    lsn: Lsn,
) -> Result<(), Error> {
    record(tx, r.conversation, BODY_RATING, version, body)?;
    let Some(conversation) = local_conversation(tx, r.conversation)? else {
        return Ok(());
    };
    let Some(Ok(Body::Rating(w))) = shown(tx, conversation, BODY_RATING)?
        .as_deref()
        .map(Body::decode)
    else {
        return Ok(());
    };
    super::apply::rate(tx, conversation, w.score, &w.comment, w.at_ms, lsn)
}

/// The ids of `labels` here, each defined (with the colour given) if this box lacked it.
fn define(tx: &Connection, labels: &[LabelName], at_ms: i64) -> Result<Vec<i64>, Error> {
    let mut ids = Vec::with_capacity(labels.len());
    for label in labels {
        tx.prepare_cached(
            "INSERT INTO labels (name, color, created_at) VALUES (?1, ?2, ?3)
             ON CONFLICT (name) DO NOTHING",
        )?
        .execute(params![label.name, label.color, at_ms])?;
        let id: i64 = tx
            .prepare_cached("SELECT id FROM labels WHERE name = ?1")?
            .query_row(params![label.name], |r| r.get(0))?;
        ids.push(id);
    }
    Ok(ids)
}

/// Records this write as `key`'s register value when `version` is greater than the one held.
fn record(
    tx: &Connection,
    key: ConvKey,
    kind: u8,
    version: Version,
    body: &[u8],
) -> Result<(), Error> {
    if !version.supersedes(held_version(tx, key, kind)?) {
        return Ok(());
    }
    tx.prepare_cached(
        "INSERT OR REPLACE INTO annotation_versions (home, home_id, kind, hlc, origin, body)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![
        key.home as i64,
        key.id as i64,
        kind,
        version.hlc as i64,
        version.origin as i64,
        body
    ])?;
    Ok(())
}

/// What `conversation` shows of a register kind: the greatest write of every name it goes by
/// here (its own, and the names of conversations folded into it: each keeps its register), so
/// a fold shows the same value on every box whichever name each write came by.
fn shown(tx: &Connection, conversation: i64, kind: u8) -> Result<Option<Vec<u8>>, Error> {
    let rows = tx
        .prepare_cached(
            "SELECT hlc, origin, body FROM annotation_versions a WHERE kind = ?2 AND (
               EXISTS (SELECT 1 FROM conversation_homes h WHERE h.home_node = a.home
                       AND h.home_id = a.home_id AND h.conversation_id = ?1)
               OR (a.home_id = ?1 AND NOT EXISTS (SELECT 1 FROM conversation_homes h
                       WHERE h.home_node = a.home AND h.home_id = a.home_id)))",
        )?
        .query_map(params![conversation, kind], |row| {
            Ok((
                Version {
                    hlc: row.get::<_, i64>(0)? as u64,
                    origin: row.get::<_, i64>(1)? as u64,
                },
                row.get::<_, Vec<u8>>(2)?,
            ))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows
        .into_iter()
        .max_by_key(|(v, _)| *v)
        .map(|(_, body)| body))
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

/// The version of a conversation's register (`kind`: its body kind), if a write was applied:
/// what this box's next write of it is stamped above.
///
/// # Errors
/// [`Error::Sqlite`].
pub fn held_version(conn: &Connection, key: ConvKey, kind: u8) -> Result<Option<Version>, Error> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::wire::{Body, LabelName};
    use crate::model::{bounded_id, Identity};
    use crate::op::{Op, Replicated};
    use crate::store::applier::Loading;
    use crate::store::apply::{apply_op, Prepared};

    /// A small deterministic generator (xorshift), so a failing order can be replayed.
    struct Rng(u64);

    impl Rng {
        fn below(&mut self, n: usize) -> usize {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            (self.0 % n as u64) as usize
        }
    }

    fn web(id: &str) -> Identity {
        Identity {
            channel: bounded_id("web").unwrap(),
            external_id: bounded_id(id).unwrap(),
        }
    }

    /// Box 7 (this one) owns conversation 1, into which box 5's 3 was folded; conversation 2
    /// is its copy of box 9's 4.
    const OWN: ConvKey = ConvKey { home: 7, id: 1 };
    const FOLDED: ConvKey = ConvKey { home: 5, id: 3 };
    const COPY: ConvKey = ConvKey { home: 9, id: 4 };

    fn store() -> Connection {
        let mut conn = Connection::open_in_memory().unwrap();
        crate::store::schema::migrate(&mut conn, None).unwrap();
        let mut ops = Vec::new();
        for (id, who) in [(1, "v1"), (2, "v2")] {
            ops.push(Op::ContactCreated {
                contact: id,
                identity: web(who),
                at_ms: 0,
            });
            ops.push(Op::ConversationOpened {
                conversation: id,
                contact: id,
                at_ms: 0,
            });
        }
        ops.push(Op::ConversationHomed {
            conversation: 2,
            home_node: COPY.home,
            home_id: COPY.id,
            joined: true,
        });
        ops.push(Op::ConversationHomed {
            conversation: 1,
            home_node: FOLDED.home,
            home_id: FOLDED.id,
            joined: false,
        });
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
        conn
    }

    const NAMES: [&str; 3] = ["vip", "refund", "贵宾"];

    /// One write, as the record a box journals: (origin, hlc, body).
    fn random_writes(rng: &mut Rng) -> Vec<(u64, u64, Body)> {
        let mut seen = std::collections::HashSet::new();
        (0..1 + rng.below(10))
            .filter_map(|i| {
                // Few times and origins: concurrent writes and equal times are common. Origin
                // u64::MAX - 1 sorts above the others (compared as u64, stored as i64).
                let origin = [0xa, 0xb, u64::MAX - 1][rng.below(3)];
                let hlc = rng.below(4) as u64;
                let conversation = [OWN, COPY, FOLDED, ConvKey { home: 9, id: 99 }][rng.below(4)];
                let body = if rng.below(2) == 0 {
                    let labels = (NAMES.iter().filter(|_| rng.below(2) == 0))
                        .map(|n| LabelName {
                            name: (*n).into(),
                            color: format!("#00000{}", origin % 10),
                        })
                        .collect();
                    Body::Labels(RemoteLabels {
                        conversation,
                        contact: web("v1"),
                        labels,
                        at_ms: i as i64,
                    })
                } else {
                    Body::Rating(RemoteRating {
                        conversation,
                        contact: web("v1"),
                        score: 1 + rng.below(5) as u8,
                        comment: format!("write {i}"),
                        at_ms: i as i64,
                    })
                };
                // One origin's one time is one operation (a dot has one body).
                let kind = body.encode()[0];
                seen.insert((origin, hlc, conversation.id, kind))
                    .then_some((origin, hlc, body))
            })
            .collect()
    }

    fn apply_all(conn: &mut Connection, writes: &[&(u64, u64, Body)]) {
        let tx = conn.transaction().unwrap();
        for (i, (origin, hlc, body)) in writes.iter().enumerate() {
            let op = Op::Replicated(Replicated {
                origin: *origin,
                seq: i as u64 + 1,
                hlc: *hlc,
                message: None,
                body: body.encode(),
            });
            apply_op(
                &mut Prepared::new(&tx, Loading::Live),
                100 + i as u64,
                &op,
                &[],
            )
            .unwrap();
        }
        tx.commit().unwrap();
    }

    /// What the reads show: each conversation's label names, its rating, every label name.
    type Shown = (Vec<(i64, String)>, Vec<(i64, u8, String)>, Vec<String>);

    fn shown(conn: &Connection) -> Shown {
        let rows = |sql: &str| -> Vec<(i64, String)> {
            let mut stmt = conn.prepare(sql).unwrap();
            let found = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)));
            found.unwrap().collect::<Result<_, _>>().unwrap()
        };
        let labels = rows(
            "SELECT cl.conversation_id, l.name FROM conversation_labels cl
             JOIN labels l ON l.id = cl.label_id ORDER BY 1, 2",
        );
        let mut stmt = conn
            .prepare("SELECT conversation_id, score, comment FROM ratings ORDER BY 1")
            .unwrap();
        let ratings = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        let names = rows("SELECT 0, name FROM labels ORDER BY name");
        (labels, ratings, names.into_iter().map(|(_, n)| n).collect())
    }

    #[test]
    fn any_order_with_duplicates_shows_the_same_labels_ratings_and_names() {
        for seed in 1..=200u64 {
            let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
            let writes = random_writes(&mut rng);
            let mut expected = None;
            for _ in 0..5 {
                let mut arrived: Vec<_> = writes.iter().collect();
                arrived.extend(writes.iter().filter(|_| rng.below(3) == 0));
                for i in (1..arrived.len()).rev() {
                    arrived.swap(i, rng.below(i + 1));
                }
                let mut conn = store();
                apply_all(&mut conn, &arrived);
                let now = shown(&conn);
                assert_eq!(expected.get_or_insert(now.clone()), &now, "seed {seed}");
            }
        }
    }

    #[test]
    fn the_greatest_version_wins_by_time_then_origin_and_names_keep_this_boxs_colour() {
        let mut conn = store();
        conn.execute(
            "INSERT INTO labels (name, color, created_at) VALUES ('vip', '#123456', 0)",
            [],
        )
        .unwrap();
        let labels = |names: &[&str]| {
            Body::Labels(RemoteLabels {
                conversation: COPY,
                contact: web("v2"),
                labels: (names.iter())
                    .map(|n| LabelName {
                        name: (*n).into(),
                        color: "#ff0000".into(),
                    })
                    .collect(),
                at_ms: 0,
            })
        };
        let rate = |score| {
            Body::Rating(RemoteRating {
                conversation: OWN,
                contact: web("v1"),
                score,
                comment: String::new(),
                at_ms: 0,
            })
        };
        let writes = [
            (0xb, 5, labels(&["vip", "refund"])),
            (0xa, 5, labels(&["vip"])),
            (0xa, 4, rate(2)),
            (0xb, 3, rate(5)),
        ];
        apply_all(&mut conn, &writes.iter().collect::<Vec<_>>());
        let (on_copy, ratings, names) = shown(&conn);
        assert_eq!(on_copy, [(2, "refund".into()), (2, "vip".into())]);
        assert_eq!(ratings, [(1, 2, String::new())]);
        assert_eq!(
            names,
            ["refund", "vip"],
            "the losing write's names are defined too"
        );
        let vip: String = conn
            .query_row("SELECT color FROM labels WHERE name = 'vip'", [], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(vip, "#123456");
    }
}
