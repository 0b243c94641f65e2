//! The cluster's reads: what the dispatcher rebuilds at start (how far each origin is
//! applied, the clock, which conversation each remote one is here, the customer messages open
//! conversations hold per origin), and the ranges of operations served to other boxes.

use rusqlite::{params, Connection};

use super::Error;
use crate::model::ConversationId;

/// What the dispatcher's replica state is rebuilt from.
#[derive(Debug, Default)]
pub struct ClusterStartup {
    /// Per origin, the highest seq stored (origins are applied in order, so all below too).
    pub applied: Vec<(u64, u64)>,
    /// The largest hybrid-logical-clock time stored.
    pub max_hlc: u64,
    /// (home node, home id, local conversation, joined).
    pub homes: Vec<(u64, u64, ConversationId, bool)>,
    /// For conversations not closed: (conversation, origin, highest seq of a customer message).
    pub customer_tips: Vec<(ConversationId, u64, u64)>,
    /// For conversations not closed: (conversation, the highest HLC time of its messages).
    pub message_floors: Vec<(ConversationId, u64)>,
    /// Per knowledge-base intent, the version of its last write (`replicated.rs`).
    pub kb_versions: Vec<(String, crate::cluster::kb_lww::Register)>,
}

pub fn cluster_startup(conn: &Connection) -> Result<ClusterStartup, Error> {
    let applied = conn
        .prepare("SELECT origin, MAX(seq) FROM cluster_ops GROUP BY origin")?
        .query_map([], |r| {
            Ok((r.get::<_, i64>(0)? as u64, r.get::<_, i64>(1)? as u64))
        })?
        .collect::<Result<_, _>>()?;
    let max_hlc: Option<i64> =
        conn.query_row("SELECT MAX(hlc) FROM cluster_ops", [], |r| r.get(0))?;
    let homes = conn
        .prepare("SELECT home_node, home_id, conversation_id, joined FROM conversation_homes")?
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
        .prepare(
            "SELECT m.conversation_id, o.origin, MAX(o.seq) FROM cluster_ops o
             JOIN messages m ON m.id = o.message
             JOIN conversations c ON c.id = m.conversation_id
             WHERE m.sender = 'visitor' AND c.status != 'idle'
             GROUP BY m.conversation_id, o.origin",
        )?
        .query_map([], |r| {
            Ok((
                r.get::<_, i64>(0)? as u64,
                r.get::<_, i64>(1)? as u64,
                r.get::<_, i64>(2)? as u64,
            ))
        })?
        .collect::<Result<_, _>>()?;
    let message_floors = conn
        .prepare(
            "SELECT m.conversation_id, MAX(o.hlc) FROM cluster_ops o
             JOIN messages m ON m.id = o.message
             JOIN conversations c ON c.id = m.conversation_id
             WHERE c.status != 'idle'
             GROUP BY m.conversation_id",
        )?
        .query_map([], |r| {
            Ok((r.get::<_, i64>(0)? as u64, r.get::<_, i64>(1)? as u64))
        })?
        .collect::<Result<_, _>>()?;
    Ok(ClusterStartup {
        applied,
        max_hlc: max_hlc.unwrap_or(0) as u64,
        homes,
        customer_tips,
        message_floors,
        kb_versions: super::kb_registers(conn)?,
    })
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
