//! `kefud export [--contact ID]`: contacts, conversations and messages as JSON Lines, for a
//! shop taking its data elsewhere or a customer asking for their own.
//!
//! One object per line, each with a `"type"`: every `contact` (with its channel identities,
//! and its name and details when known) first, then every `conversation`, then every `message` (private notes included, as
//! `"sender":"note"`), each in id order. With `--contact ID`, only that person: the contact,
//! the contacts linked into it, and their conversations and messages.
//!
//! Invariants: read-only (a read-only SQLite connection; works while the daemon runs), and
//! consistent: everything is read inside one read transaction, so a message never appears
//! without its conversation. It is the store as of that moment, which trails the journal by
//! at most `store.commit_interval_ms` while the daemon runs.

use std::io::Write;
use std::path::Path;

use rusqlite::{Connection, OpenFlags};
use serde_json::{json, Value};

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("{}: SQLite: {source}", path.display())]
    Sqlite {
        path: std::path::PathBuf,
        source: rusqlite::Error,
    },
    #[error("no contact {0}")]
    NoContact(i64),
    #[error("cannot write the export: {0}")]
    Output(#[from] std::io::Error),
}

/// Writes the export of the store at `db` to `out`; `contact` limits it to one person.
/// Returns the number of lines written.
///
/// # Errors
/// [`ExportError`]: the store cannot be read, the contact does not exist, or `out` fails.
pub fn export(db: &Path, contact: Option<i64>, out: &mut impl Write) -> Result<u64, ExportError> {
    let sqlite = |source| ExportError::Sqlite {
        path: db.to_path_buf(),
        source,
    };
    let mut conn = Connection::open_with_flags(
        db,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(sqlite)?;
    conn.busy_timeout(std::time::Duration::from_secs(10))
        .map_err(sqlite)?;
    let tx = conn.transaction().map_err(sqlite)?;
    // The people exported: all (NULL), or the contact and those linked into it.
    let filter = "(?1 IS NULL OR c.id = ?1 OR c.merged_into = ?1)";
    if let Some(id) = contact {
        let found: i64 = tx
            .query_row("SELECT COUNT(*) FROM contacts WHERE id = ?1", [id], |r| {
                r.get(0)
            })
            .map_err(sqlite)?;
        if found == 0 {
            return Err(ExportError::NoContact(id));
        }
    }
    let queries: [(&str, String); 3] = [
        (
            "contact",
            format!(
                "SELECT c.id, c.created_at, c.merged_into,
                        (SELECT json_group_array(json_object('channel', i.channel,
                                 'external_id', i.external_id, 'created_at', i.created_at))
                         FROM identities i WHERE i.contact_id = c.id),
                        c.name, c.details
                 FROM contacts c WHERE {filter} ORDER BY c.id"
            ),
        ),
        (
            "conversation",
            format!(
                "SELECT v.id, v.contact_id, v.status, v.assignee, v.team, v.created_at,
                        v.last_activity_at, v.resolved_at, v.merged_into
                 FROM conversations v JOIN contacts c ON c.id = v.contact_id
                 WHERE {filter} ORDER BY v.id"
            ),
        ),
        (
            "message",
            format!(
                "SELECT m.id, m.conversation_id, m.contact_id, m.sender, m.agent_id, m.text,
                        m.attachment, m.via_channel, m.via_external_id, m.created_at, m.client_id
                 FROM messages m JOIN contacts c ON c.id = m.contact_id
                 WHERE {filter} ORDER BY m.id"
            ),
        ),
    ];
    let mut lines = 0;
    for (kind, sql) in &queries {
        let mut stmt = tx.prepare(sql).map_err(sqlite)?;
        let names: Vec<String> = stmt.column_names().iter().map(|s| s.to_string()).collect();
        let mut rows = stmt.query([contact]).map_err(sqlite)?;
        while let Some(row) = rows.next().map_err(sqlite)? {
            let mut obj = serde_json::Map::new();
            obj.insert("type".into(), Value::from(*kind));
            for (i, name) in names.iter().enumerate() {
                let value = match row.get_ref(i).map_err(sqlite)? {
                    rusqlite::types::ValueRef::Null => Value::Null,
                    rusqlite::types::ValueRef::Integer(n) => json!(n),
                    rusqlite::types::ValueRef::Real(x) => json!(x),
                    rusqlite::types::ValueRef::Text(t) => {
                        let text = String::from_utf8_lossy(t);
                        // The identities column is SQLite's own JSON, the details a
                        // JSON object kept as text.
                        if *kind == "contact" && (i == 3 || name == "details") {
                            serde_json::from_str(&text).unwrap_or(Value::Null)
                        } else {
                            Value::from(text.into_owned())
                        }
                    }
                    rusqlite::types::ValueRef::Blob(_) => Value::Null,
                };
                let key = if *kind == "contact" && i == 3 {
                    "identities"
                } else {
                    name.as_str()
                };
                obj.insert(key.into(), value);
            }
            serde_json::to_writer(&mut *out, &Value::Object(obj)).map_err(std::io::Error::from)?;
            out.write_all(b"\n")?;
            lines += 1;
        }
    }
    out.flush()?;
    Ok(lines)
}
