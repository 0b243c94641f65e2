//! What an import reads back to resume (`crate::import`): how far an earlier run of the same
//! source got, where each of its contacts' streams stood, and which contacts already have
//! their details. Every imported message keeps its key in its source as its client id
//! (`{source}:{n}`, `n` growing through the source), which is what these find.

use rusqlite::{params, Connection, OptionalExtension};

use super::Error;

/// The highest `n` among messages keyed `{source}:{n}`: an earlier run imported the source's
/// records up to there (it imports them in that order). `None` if none is stored.
pub fn import_watermark(conn: &Connection, source: &str) -> Result<Option<u64>, Error> {
    let prefix_len = source.len() as i64 + 2;
    let max: Option<i64> = conn.query_row(
        "SELECT MAX(CAST(substr(client_id, ?2) AS INTEGER)) FROM messages
         WHERE client_id >= ?1 || ':' AND client_id < ?1 || ';'",
        params![source, prefix_len],
        |r| r.get(0),
    )?;
    Ok(max.map(|m| m as u64))
}

/// For every contact with messages keyed `{source}:…`: each of its identities (channel,
/// external id) with the time of its latest such message.
pub fn import_streams(
    conn: &Connection,
    source: &str,
) -> Result<Vec<(String, String, i64)>, Error> {
    let rows = conn
        .prepare(
            "SELECT i.channel, i.external_id, t.last FROM
               (SELECT contact_id, MAX(created_at) AS last FROM messages
                WHERE client_id >= ?1 || ':' AND client_id < ?1 || ';' GROUP BY contact_id) t
             JOIN identities i ON i.contact_id = t.contact_id",
        )?
        .query_map(params![source], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect::<Result<_, _>>()?;
    Ok(rows)
}

/// Whether the contact of (`channel`, `external_id`) exists with a name or details.
pub fn contact_has_details(
    conn: &Connection,
    channel: &str,
    external_id: &str,
) -> Result<bool, Error> {
    Ok(conn
        .prepare_cached(
            "SELECT 1 FROM identities i JOIN contacts c ON c.id = i.contact_id
             WHERE i.channel = ?1 AND i.external_id = ?2
               AND (c.name IS NOT NULL OR c.details IS NOT NULL)",
        )?
        .query_row(params![channel, external_id], |_| Ok(()))
        .optional()?
        .is_some())
}

/// A canned reply brought in by an import, under the first of `shortcuts` that is free or
/// already holds the same text (then nothing is written: an earlier run brought it). Returns
/// whether a reply was written; `false` as well when every shortcut holds another text.
pub fn import_canned_reply(
    conn: &Connection,
    shortcuts: &[&str],
    text: &str,
) -> Result<bool, Error> {
    for shortcut in shortcuts {
        let held: Option<String> = conn
            .prepare_cached("SELECT text FROM canned_replies WHERE shortcut = ?1")?
            .query_row(params![shortcut], |r| r.get(0))
            .optional()?;
        match held {
            Some(same) if same == text => return Ok(false),
            Some(_) => continue,
            None => {
                conn.prepare_cached(
                    "INSERT INTO canned_replies (shortcut, text, created_at) VALUES (?1, ?2, ?3)",
                )?
                .execute(params![shortcut, text, crate::model::now_ms()])?;
                return Ok(true);
            }
        }
    }
    Ok(false)
}
