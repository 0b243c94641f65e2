//! Labels (the shop's definitions, written here directly: they are settings, not history),
//! the ratings customers gave and the report over them, and a contact's name and details.

use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;

use super::super::Error;
use crate::model::{AgentId, ContactId, ConversationId};

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Label {
    pub id: u64,
    pub name: String,
    /// `#rrggbb`.
    pub color: String,
}

/// Every label, by name.
///
/// # Errors
/// [`Error::Sqlite`].
pub fn labels(conn: &Connection) -> Result<Vec<Label>, Error> {
    let rows = conn
        .prepare_cached("SELECT id, name, color FROM labels ORDER BY name COLLATE NOCASE, id")?
        .query_map([], |r| {
            Ok(Label {
                id: r.get::<_, i64>(0)? as u64,
                name: r.get(1)?,
                color: r.get(2)?,
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

/// The labels of `ids` that exist (a deleted one is left out), in id order.
///
/// # Errors
/// [`Error::Sqlite`].
pub fn labels_by_id(conn: &Connection, ids: &[u64]) -> Result<Vec<Label>, Error> {
    let mut stmt = conn.prepare_cached("SELECT name, color FROM labels WHERE id = ?1")?;
    let mut found = Vec::with_capacity(ids.len());
    for &id in ids {
        let row = stmt
            .query_row(params![id as i64], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?;
        if let Some((name, color)) = row {
            found.push(Label { id, name, color });
        }
    }
    Ok(found)
}

/// Adds a label; `Ok(None)` when the name is taken.
///
/// # Errors
/// [`Error::Sqlite`].
pub fn add_label(
    conn: &Connection,
    name: &str,
    color: &str,
    now_ms: i64,
) -> Result<Option<Label>, Error> {
    let added = conn
        .prepare_cached(
            "INSERT INTO labels (name, color, created_at) VALUES (?1, ?2, ?3)
             ON CONFLICT (name) DO NOTHING",
        )?
        .execute(params![name, color, now_ms])?;
    Ok((added == 1).then(|| Label {
        id: conn.last_insert_rowid() as u64,
        name: name.to_string(),
        color: color.to_string(),
    }))
}

/// What editing a label found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LabelEdit {
    Done,
    NoSuchLabel,
    NameTaken,
}

/// Renames or recolours a label.
///
/// # Errors
/// [`Error::Sqlite`].
pub fn edit_label(conn: &Connection, id: u64, name: &str, color: &str) -> Result<LabelEdit, Error> {
    let taken: Option<i64> = conn
        .prepare_cached("SELECT id FROM labels WHERE name = ?1 AND id <> ?2")?
        .query_row(params![name, id as i64], |r| r.get(0))
        .optional()?;
    if taken.is_some() {
        return Ok(LabelEdit::NameTaken);
    }
    let changed = conn
        .prepare_cached("UPDATE labels SET name = ?2, color = ?3 WHERE id = ?1")?
        .execute(params![id as i64, name, color])?;
    Ok(if changed == 1 {
        LabelEdit::Done
    } else {
        LabelEdit::NoSuchLabel
    })
}

/// Deletes a label; whether there was one. Conversations that carried it keep the id in the
/// journal and the store, and the reads leave it out.
///
/// # Errors
/// [`Error::Sqlite`].
pub fn delete_label(conn: &Connection, id: u64) -> Result<bool, Error> {
    Ok(conn
        .prepare_cached("DELETE FROM labels WHERE id = ?1")?
        .execute(params![id as i64])?
        == 1)
}

/// The ids among `ids` that name no label.
///
/// # Errors
/// [`Error::Sqlite`].
pub fn unknown_labels(conn: &Connection, ids: &[u64]) -> Result<Vec<u64>, Error> {
    let mut stmt = conn.prepare_cached("SELECT 1 FROM labels WHERE id = ?1")?;
    let mut unknown = Vec::new();
    for &id in ids {
        if !stmt.exists(params![id as i64])? {
            unknown.push(id);
        }
    }
    Ok(unknown)
}

/// A contact's name and details (a JSON object), when the contact exists and was not linked
/// into another.
///
/// # Errors
/// [`Error::Sqlite`].
pub fn contact_details(
    conn: &Connection,
    contact: ContactId,
) -> Result<Option<(String, String)>, Error> {
    Ok(conn
        .prepare_cached(
            "SELECT COALESCE(name, ''), COALESCE(details, '{}') FROM contacts WHERE id = ?1",
        )?
        .query_row(params![contact as i64], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?)
}

/// A contact found by its name, phone or e-mail, with its newest conversation.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ContactHit {
    pub contact_id: ContactId,
    pub name: String,
    pub phone: String,
    pub email: String,
    pub conversation_id: Option<ConversationId>,
}

/// Contacts whose name, phone or e-mail contains `query` (case-insensitive for ASCII), newest
/// first, at most `limit`.
///
/// # Errors
/// [`Error::Sqlite`].
pub fn search_contacts(
    conn: &Connection,
    query: &str,
    limit: u32,
) -> Result<Vec<ContactHit>, Error> {
    let pattern = format!(
        "%{}%",
        query
            .replace('\\', "\\\\")
            .replace('%', "\\%")
            .replace('_', "\\_")
    );
    let rows = conn
        .prepare_cached(
            "SELECT id, name, phone, email,
                    (SELECT max(c.id) FROM conversations c WHERE c.contact_id = k.id AND c.merged_into IS NULL)
             FROM (SELECT id, COALESCE(name, '') AS name,
                          CASE WHEN json_valid(details) THEN COALESCE(json_extract(details, '$.phone'), '') ELSE '' END AS phone,
                          CASE WHEN json_valid(details) THEN COALESCE(json_extract(details, '$.email'), '') ELSE '' END AS email
                   FROM contacts WHERE merged_into IS NULL) k
             WHERE name LIKE ?1 ESCAPE '\\' OR phone LIKE ?1 ESCAPE '\\' OR email LIKE ?1 ESCAPE '\\'
             ORDER BY id DESC LIMIT ?2",
        )?
        .query_map(params![pattern, limit], |r| {
            Ok(ContactHit {
                contact_id: r.get::<_, i64>(0)? as u64,
                name: r.get(1)?,
                phone: r.get(2)?,
                email: r.get(3)?,
                conversation_id: r.get::<_, Option<i64>>(4)?.map(|c| c as u64),
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

/// The names of these contacts, for those that have one.
///
/// # Errors
/// [`Error::Sqlite`].
pub fn contact_names(
    conn: &Connection,
    contacts: &[ContactId],
) -> Result<std::collections::HashMap<ContactId, String>, Error> {
    let mut stmt = conn.prepare_cached(
        "SELECT name FROM contacts WHERE id = ?1 AND name IS NOT NULL AND name <> ''",
    )?;
    let mut names = std::collections::HashMap::new();
    for &id in contacts {
        if let Some(name) = stmt
            .query_row(params![id as i64], |r| r.get::<_, String>(0))
            .optional()?
        {
            names.insert(id, name);
        }
    }
    Ok(names)
}

/// The newest conversation of the contact an identity belongs to, for its customer: its id,
/// status and the rating given, if any.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct VisitorConversation {
    pub conversation_id: ConversationId,
    pub status: String,
    pub rating: Option<GivenRating>,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct GivenRating {
    pub score: u8,
    pub comment: String,
}

/// # Errors
/// [`Error::Sqlite`].
pub fn visitor_conversation(
    conn: &Connection,
    channel: &str,
    external_id: &str,
) -> Result<Option<VisitorConversation>, Error> {
    Ok(conn
        .prepare_cached(
            "SELECT c.id, c.status, r.score, r.comment
             FROM identities i
             JOIN contacts k ON k.id = i.contact_id
             JOIN conversations c ON c.contact_id = COALESCE(k.merged_into, k.id)
             LEFT JOIN ratings r ON r.conversation_id = c.id
             WHERE i.channel = ?1 AND i.external_id = ?2 AND c.merged_into IS NULL
             ORDER BY c.id DESC LIMIT 1",
        )?
        .query_row(params![channel, external_id], |r| {
            let score: Option<u8> = r.get(2)?;
            Ok(VisitorConversation {
                conversation_id: r.get::<_, i64>(0)? as u64,
                status: r.get(1)?,
                rating: match score {
                    Some(score) => Some(GivenRating {
                        score,
                        comment: r.get(3)?,
                    }),
                    None => None,
                },
            })
        })
        .optional()?)
}

/// Ratings on one day, or for one agent.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct RatingTally {
    pub count: u64,
    /// The mean score, rounded to two decimals.
    pub average: f64,
    /// How many gave each score, 1 to 5.
    pub scores: [u64; 5],
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct RatingsByDay {
    /// `YYYY-MM-DD` (local, at the report's offset).
    pub day: String,
    #[serde(flatten)]
    pub tally: RatingTally,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct RatingsByAgent {
    /// `None`: conversations no agent held (the bot answered them).
    pub agent_id: Option<AgentId>,
    pub name: Option<String>,
    #[serde(flatten)]
    pub tally: RatingTally,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct RatingRow {
    pub conversation_id: ConversationId,
    pub score: u8,
    pub comment: String,
    pub agent_id: Option<AgentId>,
    pub rated_at: i64,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct RatingsReport {
    pub days: Vec<RatingsByDay>,
    pub agents: Vec<RatingsByAgent>,
    /// The newest ratings with a comment, at most 50.
    pub comments: Vec<RatingRow>,
}

fn tally(counts: [u64; 5]) -> RatingTally {
    let count: u64 = counts.iter().sum();
    let total: u64 = counts.iter().zip(1..).map(|(n, s)| n * s).sum();
    let average = if count == 0 {
        0.0
    } else {
        (total as f64 / count as f64 * 100.0).round() / 100.0
    };
    RatingTally {
        count,
        average,
        scores: counts,
    }
}

/// The ratings given since `since_ms`: per local day (`offset_ms` east of UTC; days without
/// one left out), per agent who held the conversation, and the newest comments.
///
/// # Errors
/// [`Error::Sqlite`].
pub fn ratings_report(
    conn: &Connection,
    since_ms: i64,
    offset_ms: i64,
) -> Result<RatingsReport, Error> {
    let mut days: Vec<RatingsByDay> = Vec::new();
    let mut stmt = conn.prepare_cached(
        "SELECT strftime('%Y-%m-%d', (rated_at + ?2) / 1000, 'unixepoch') AS day, score, count(*)
         FROM ratings WHERE rated_at >= ?1 GROUP BY day, score ORDER BY day, score",
    )?;
    let mut rows = stmt.query(params![since_ms, offset_ms])?;
    let mut current: Option<(String, [u64; 5])> = None;
    while let Some(r) = rows.next()? {
        let (day, score, n): (String, u8, i64) = (r.get(0)?, r.get(1)?, r.get(2)?);
        if current.as_ref().is_some_and(|(d, _)| *d != day) {
            let (day, counts) = current.take().expect("just checked");
            days.push(RatingsByDay {
                day,
                tally: tally(counts),
            });
        }
        let entry = current.get_or_insert((day, [0; 5]));
        entry.1[usize::from(score.clamp(1, 5) - 1)] += n as u64;
    }
    if let Some((day, counts)) = current {
        days.push(RatingsByDay {
            day,
            tally: tally(counts),
        });
    }

    let mut agents: Vec<RatingsByAgent> = Vec::new();
    let mut stmt = conn.prepare_cached(
        "SELECT r.agent_id, a.display_name, a.username, r.score, count(*)
         FROM ratings r LEFT JOIN agents a ON a.id = r.agent_id
         WHERE r.rated_at >= ?1 GROUP BY r.agent_id, r.score ORDER BY r.agent_id, r.score",
    )?;
    let mut rows = stmt.query(params![since_ms])?;
    while let Some(r) = rows.next()? {
        let agent: Option<AgentId> = r.get::<_, Option<i64>>(0)?.map(|a| a as u64);
        let display: Option<String> = r.get(1)?;
        let username: Option<String> = r.get(2)?;
        let (score, n): (u8, i64) = (r.get(3)?, r.get(4)?);
        if agents.last().map(|last| last.agent_id) != Some(agent) {
            agents.push(RatingsByAgent {
                agent_id: agent,
                name: display.filter(|d| !d.is_empty()).or(username),
                tally: tally([0; 5]),
            });
        }
        let last = agents.last_mut().expect("just pushed");
        let mut counts = last.tally.scores;
        counts[usize::from(score.clamp(1, 5) - 1)] += n as u64;
        last.tally = tally(counts);
    }

    let comments = conn
        .prepare_cached(
            "SELECT conversation_id, score, comment, agent_id, rated_at FROM ratings
             WHERE rated_at >= ?1 AND comment <> '' ORDER BY rated_at DESC LIMIT 50",
        )?
        .query_map(params![since_ms], |r| {
            Ok(RatingRow {
                conversation_id: r.get::<_, i64>(0)? as u64,
                score: r.get(1)?,
                comment: r.get(2)?,
                agent_id: r.get::<_, Option<i64>>(3)?.map(|a| a as u64),
                rated_at: r.get(4)?,
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(RatingsReport {
        days,
        agents,
        comments,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tally_counts_scores_and_rounds_the_mean() {
        let t = tally([0, 0, 1, 0, 2]);
        assert_eq!(t.count, 3);
        assert_eq!(t.average, 4.33);
        assert_eq!(tally([0; 5]).average, 0.0);
    }
}
