//! Reads of cluster mode's knowledge-base versions and message dots (migration 013 and 008):
//! what the dispatcher rebuilds its knowledge-base registers from at start, and the dot a
//! reply's delivery report names it by.

use rusqlite::{params, Connection, OptionalExtension};

use super::Error;
use crate::cluster::kb_lww::{Register, Version};
use crate::cluster::vector::Dot;
use crate::model::MessageId;

/// Every intent's version (tombstones too), as the store's applier last raised it.
pub fn kb_registers(conn: &Connection) -> Result<Vec<(String, Register)>, Error> {
    let rows = conn
        .prepare("SELECT intent, hlc, origin, deleted FROM kb_versions")?
        .query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                Register {
                    version: Version {
                        hlc: r.get::<_, i64>(1)? as u64,
                        origin: r.get::<_, i64>(2)? as u64,
                    },
                    deleted: r.get(3)?,
                },
            ))
        })?
        .collect::<Result<_, _>>()?;
    Ok(rows)
}

/// The dot of message `message` (its cluster operation), if it has one.
pub fn message_dot(conn: &Connection, message: MessageId) -> Result<Option<Dot>, Error> {
    Ok(conn
        .prepare_cached("SELECT origin, seq FROM cluster_ops WHERE message = ?1")?
        .query_row(params![message as i64], |r| {
            Ok(Dot {
                origin: r.get::<_, i64>(0)? as u64,
                seq: r.get::<_, i64>(1)? as u64,
            })
        })
        .optional()?)
}
