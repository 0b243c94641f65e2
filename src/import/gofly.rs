//! `kefud import gofly FILE`: go-fly's MySQL database, from its `mysqldump` file.
//!
//! go-fly (github.com/taoshihan1991/go-fly) keeps `user` (agents), `visitor`, `message`,
//! `reply_group`/`reply_item` (canned replies) and `ipblack`. mysqldump writes tables in name
//! order, so messages come before the agents and visitors they name: the file is read twice.
//! The first pass brings the agents (created disabled, without a password: go-fly's MD5
//! hashes are not kept), the visitors (contacts on the web channel under their go-fly visitor
//! id, with their name and details) and the canned replies; the second the messages, each
//! visitor's stream cut into conversations at the gap (`streams.rs`), with go-fly's markup made
//! readable (`markup.rs`). `ipblack` and `config` are go-fly's own settings: not imported.
//!
//! Exactly once: a message is keyed `gofly:{id}`; mysqldump writes rows in primary-key order,
//! so a run skips ids up to the highest an earlier run stored. A message id not above the one
//! before it in the same file is reported (the dump was edited) and skipped. Visitors already
//! given their details, existing agents and canned replies with the same shortcut and text
//! are left as they are.
//!
//! Rows deleted in go-fly (`deleted_at` set) are left out and counted.

use std::collections::{HashMap, HashSet};
use std::io::BufReader;
use std::path::Path;

use super::mysqldump::{DumpReader, DumpSink, InsertStatement, Malformed, ReadError, Row, Value};
use super::sink::{ImportError, Options, Summary};
use super::time::parse_time;
use super::{
    checked_text, contact_identity, feed_message, finish_streams, markup, open_source,
    resume_point, Agents, CountingReader, ImportedMessage, Sink, Streams,
};
use crate::config::Config;
use crate::dispatch::ImportStep;
use crate::model::{bounded_id, Identity, Sender, WEB_CHANNEL};

/// The key prefix of go-fly's messages.
const SOURCE: &str = "gofly";

/// Imports the dump at `path`.
///
/// # Errors
/// [`ImportError`] for an unreadable file, a file without go-fly's tables, a data directory
/// in use, the pipeline failing, or (after importing the rest) rows that could not be used.
pub fn import_gofly(cfg: &Config, path: &Path, options: &Options) -> Result<Summary, ImportError> {
    let (_, size) = open_source(path)?;
    let mut sink = Sink::start(cfg, options, 2 * size)?;
    let store = if options.check_only {
        None
    } else {
        Some(crate::store::open(&cfg.db_path())?)
    };
    let mut streams = Streams::new(options.gap.as_millis() as i64);
    let watermark = resume_point(store.as_ref(), SOURCE, &mut streams)?;
    let mut pass = Pass {
        cfg,
        store: store.as_ref(),
        sink: &mut sink,
        read: std::rc::Rc::default(),
        read_before: 0,
        columns: Columns::default(),
        agents: Agents::default(),
        canned_groups: HashMap::new(),
        tables_seen: HashSet::new(),
        stage: Stage::People,
        watermark,
        previous_id: watermark,
        streams,
    };
    pass.run(path)?;
    pass.read_before = size;
    pass.stage = Stage::Messages;
    pass.run(path)?;
    if !["message", "visitor", "user"]
        .iter()
        .any(|t| pass.tables_seen.contains(*t))
    {
        return Err(ImportError::NotImportable(format!(
            "{}: no go-fly tables (message, visitor, user) in it; is it a mysqldump of go-fly's database?",
            path.display()
        )));
    }
    let streams = std::mem::replace(&mut pass.streams, Streams::new(0));
    finish_streams(&mut sink, streams)?;
    sink.finish()
}

/// Which tables a pass takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// Agents, visitors, canned replies.
    People,
    Messages,
}

/// The column positions of the table being read, looked up once per `INSERT`.
#[derive(Debug, Default)]
struct Columns {
    table: String,
    at: HashMap<&'static str, usize>,
}

impl Columns {
    fn get<'a>(&self, row: &Row<'a>, name: &str) -> Option<Value<'a>> {
        self.at.get(name).and_then(|i| row.get(*i))
    }
}

/// The columns each imported table must have, and those read when present.
fn wanted(table: &str) -> Option<(&'static [&'static str], &'static [&'static str])> {
    Some(match table {
        "user" => (
            &["name"],
            &["nickname", "created_at", "deleted_at", "avator"],
        ),
        "visitor" => (
            &["visitor_id"],
            &[
                "id",
                "name",
                "avator",
                "source_ip",
                "to_id",
                "created_at",
                "deleted_at",
                "refer",
                "city",
                "client_ip",
                "extra",
            ],
        ),
        "message" => (
            &["id", "visitor_id", "content", "created_at", "mes_type"],
            &["kefu_id", "deleted_at"],
        ),
        "reply_group" => (&["id", "group_name"], &[]),
        "reply_item" => (&["content"], &["id", "item_name", "group_id"]),
        _ => return None,
    })
}

/// One read of the dump.
struct Pass<'a> {
    cfg: &'a Config,
    store: Option<&'a rusqlite::Connection>,
    sink: &'a mut Sink,
    read: std::rc::Rc<std::cell::Cell<u64>>,
    /// Bytes read by the passes before this one, for progress.
    read_before: u64,
    columns: Columns,
    agents: Agents,
    canned_groups: HashMap<i64, String>,
    tables_seen: HashSet<String>,
    stage: Stage,
    watermark: u64,
    /// The last message id taken in this file (ids must grow).
    previous_id: u64,
    streams: Streams<Identity>,
}

impl Pass<'_> {
    fn run(&mut self, path: &Path) -> Result<(), ImportError> {
        let (file, _) = open_source(path)?;
        let counted = CountingReader::new(BufReader::with_capacity(1 << 20, file));
        self.read = counted.counter();
        match DumpReader::new(counted).read(self) {
            Ok(_) => Ok(()),
            Err(ReadError::Io(source)) => Err(ImportError::Read {
                path: path.to_path_buf(),
                source,
            }),
            Err(ReadError::Sink(e)) => Err(e),
        }
    }

    fn takes(&self, table: &str) -> bool {
        match self.stage {
            Stage::People => matches!(table, "user" | "visitor" | "reply_group" | "reply_item"),
            Stage::Messages => table == "message",
        }
    }

    fn text<'r>(&mut self, row: &Row<'r>, column: &str) -> Result<Option<&'r str>, String> {
        match self.columns.get(row, column) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => v
                .as_str()
                .map(Some)
                .map_err(|e| format!("column {column}: {e}")),
        }
    }

    fn time(&mut self, row: &Row<'_>, column: &str) -> Result<Option<i64>, String> {
        let zone = row.time_zone_minutes().unwrap_or(0);
        Ok(self.text(row, column)?.and_then(|t| parse_time(t, zone)))
    }

    fn deleted(&mut self, row: &Row<'_>) -> Result<bool, String> {
        Ok(self.time(row, "deleted_at")?.is_some())
    }

    fn agent(&mut self, row: &Row<'_>) -> Result<(), ImportError> {
        let line = row.line();
        let fields = (|| {
            Ok::<_, String>((
                self.text(row, "name")?.unwrap_or("").to_string(),
                self.text(row, "nickname")?.unwrap_or("").to_string(),
                self.time(row, "created_at")?,
            ))
        })();
        let (name, nickname, created_at) = match fields {
            Ok(f) => f,
            Err(reason) => {
                self.sink.bad_row(line, "user", &reason);
                return Ok(());
            }
        };
        let created_at = created_at.unwrap_or_else(crate::model::now_ms);
        self.agents
            .id(self.store, self.sink, line, &name, &nickname, created_at)?;
        Ok(())
    }

    fn visitor(&mut self, row: &Row<'_>) -> Result<(), ImportError> {
        let line = row.line();
        match self.visitor_step(row) {
            Ok(Some(step)) => self.sink.push(step),
            Ok(None) => Ok(()),
            Err(reason) => {
                self.sink.bad_row(line, "visitor", &reason);
                Ok(())
            }
        }
    }

    /// The contact a visitor row describes, unless it is deleted or already has its details.
    fn visitor_step(&mut self, row: &Row<'_>) -> Result<Option<ImportStep>, String> {
        if self.deleted(row)? {
            self.sink.summary.deleted_in_source += 1;
            return Ok(None);
        }
        let visitor_id = self.text(row, "visitor_id")?.unwrap_or("");
        if visitor_id.trim().is_empty() {
            return Err("the visitor has no visitor_id".into());
        }
        let (identity, digested) = contact_identity(WEB_CHANNEL, visitor_id)?;
        if let Some(conn) = self.store {
            let known = crate::store::queries::contact_has_details(
                conn,
                identity.channel.as_str(),
                identity.external_id.as_str(),
            )
            .map_err(|e| e.to_string())?;
            if known {
                return Ok(None);
            }
        }
        let mut details = serde_json::Map::new();
        for (column, key) in [
            ("city", "city"),
            ("source_ip", "source_ip"),
            ("client_ip", "client_ip"),
            ("refer", "referrer"),
            ("avator", "avatar"),
            ("to_id", "agent"),
        ] {
            if let Some(v) = self.text(row, column)?.filter(|v| !v.trim().is_empty()) {
                details.insert(key.into(), v.into());
            }
        }
        if let Some(extra) = self.text(row, "extra")?.filter(|v| !v.trim().is_empty()) {
            // go-fly keeps the widget's extra data as JSON text; kept as JSON when it is.
            let value = serde_json::from_str(extra).unwrap_or_else(|_| extra.into());
            details.insert("extra".into(), value);
        }
        if let Some(Value::Number(id)) = self.columns.get(row, "id") {
            details.insert("gofly_id".into(), id.into());
        }
        if digested {
            details.insert("gofly_visitor_id".into(), visitor_id.into());
        }
        let at_ms = self
            .time(row, "created_at")?
            .unwrap_or_else(crate::model::now_ms);
        Ok(Some(ImportStep::Contact {
            identity,
            name: self.text(row, "name")?.unwrap_or("").trim().to_string(),
            details: serde_json::Value::Object(details).to_string(),
            at_ms,
        }))
    }

    fn canned(&mut self, row: &Row<'_>) -> Result<(), ImportError> {
        let line = row.line();
        let fields = (|| {
            let content = self.text(row, "content")?.unwrap_or("").to_string();
            let name = self.text(row, "item_name")?.unwrap_or("").to_string();
            let id = match self.columns.get(row, "id") {
                Some(v @ Value::Number(_)) => v.as_i64().ok(),
                _ => None,
            };
            let group = match self.columns.get(row, "group_id") {
                Some(v @ Value::Number(_)) => v.as_i64().ok(),
                _ => None,
            };
            Ok::<_, String>((content, name, id, group))
        })();
        let (content, name, id, group) = match fields {
            Ok(f) => f,
            Err(reason) => {
                self.sink.bad_row(line, "reply_item", &reason);
                return Ok(());
            }
        };
        let text = markup::readable(content.trim());
        if let Err(reason) = checked_text(&text, self.cfg.limits.max_text_chars) {
            self.sink.bad_row(line, "reply_item", &reason);
            return Ok(());
        }
        let group = group
            .and_then(|g| self.canned_groups.get(&g))
            .map(String::as_str);
        let id = id.unwrap_or(line as i64);
        let shortcut = shortcut_for(&name, group, &text, id);
        // Another reply under the same name keeps its own, told apart by go-fly's id.
        let suffix = format!("-{id}");
        let fallback: String = shortcut
            .chars()
            .take(32usize.saturating_sub(suffix.chars().count()))
            .chain(suffix.chars())
            .collect();
        if let Some(conn) = self.store {
            crate::store::queries::import_canned_reply(conn, &[&shortcut, &fallback], &text)?;
        }
        self.sink.summary.canned_replies += 1;
        Ok(())
    }

    fn message(&mut self, row: &Row<'_>) -> Result<(), ImportError> {
        let line = row.line();
        match self.message_of(row) {
            Ok(Some((identity, message))) => {
                feed_message(self.sink, &mut self.streams, identity, message)
            }
            Ok(None) => Ok(()),
            Err(reason) => {
                self.sink.bad_row(line, "message", &reason);
                Ok(())
            }
        }
    }

    /// A message row read: `None` when an earlier run has it or go-fly deleted it.
    fn message_of(&mut self, row: &Row<'_>) -> Result<Option<(Identity, ImportedMessage)>, String> {
        let id = match self.columns.get(row, "id") {
            Some(v) => v.as_i64().map_err(|e| format!("column id: {e}"))?,
            None => return Err("the message has no id".into()),
        };
        let id = u64::try_from(id).map_err(|_| format!("id {id} is negative"))?;
        if self.deleted(row)? {
            self.sink.summary.deleted_in_source += 1;
            return Ok(None);
        }
        if id <= self.watermark {
            self.sink.summary.already_imported += 1;
            return Ok(None);
        }
        if id <= self.previous_id {
            return Err(format!(
                "id {id} is not above the id before it ({}); mysqldump writes rows in id order, was the file edited?",
                self.previous_id
            ));
        }
        self.previous_id = id;
        let sender = match self.text(row, "mes_type")? {
            Some("visitor") => Sender::Visitor,
            Some("kefu") => Sender::Agent,
            other => return Err(format!("mes_type {other:?} is neither kefu nor visitor")),
        };
        let at_ms = self
            .time(row, "created_at")?
            .ok_or("created_at is not a time")?;
        let visitor_id = self.text(row, "visitor_id")?.unwrap_or("");
        if visitor_id.trim().is_empty() {
            return Err("the message names no visitor".into());
        }
        let (identity, _) = contact_identity(WEB_CHANNEL, visitor_id)?;
        let text = markup::readable(self.text(row, "content")?.unwrap_or(""));
        checked_text(&text, self.cfg.limits.max_text_chars)?;
        let agent = match (sender, self.text(row, "kefu_id")?) {
            (Sender::Agent, Some(name)) if !name.trim().is_empty() => {
                let name = name.trim().to_string();
                self.agents
                    .id(self.store, self.sink, row.line(), &name, &name, at_ms)
                    .map_err(|e| e.to_string())?
            }
            _ => None,
        };
        let key = bounded_id(&format!("{SOURCE}:{id}")).map_err(|e| e.to_string())?;
        Ok(Some((
            identity,
            ImportedMessage {
                sender,
                agent,
                key,
                text,
                at_ms,
            },
        )))
    }
}

impl DumpSink for Pass<'_> {
    type Error = ImportError;

    fn insert_start(&mut self, insert: &InsertStatement<'_>) -> Result<(), ImportError> {
        let table = insert.table().to_ascii_lowercase();
        self.tables_seen.insert(table.clone());
        self.columns = Columns {
            table: table.clone(),
            at: HashMap::new(),
        };
        let Some((required, optional)) = wanted(&table).filter(|_| self.takes(&table)) else {
            return Ok(());
        };
        for column in required.iter().chain(optional) {
            if let Some(i) = insert.column_index(column) {
                self.columns.at.insert(column, i);
            }
        }
        if let Some(missing) = required.iter().find(|c| !self.columns.at.contains_key(*c)) {
            return Err(ImportError::NotImportable(format!(
                "line {}: table `{table}` has no column `{missing}`: not go-fly's schema",
                insert.line()
            )));
        }
        Ok(())
    }

    fn row(&mut self, row: &Row<'_>) -> Result<(), ImportError> {
        if !self.takes(&self.columns.table) {
            return Ok(());
        }
        match self.columns.table.as_str() {
            "user" => self.agent(row)?,
            "visitor" => self.visitor(row)?,
            "reply_group" => {
                let id = self.columns.get(row, "id").and_then(|v| v.as_i64().ok());
                let name = self.text(row, "group_name").ok().flatten();
                if let (Some(id), Some(name)) = (id, name) {
                    self.canned_groups.insert(id, name.to_string());
                }
            }
            "reply_item" => self.canned(row)?,
            _ => self.message(row)?,
        }
        let stage = match self.stage {
            Stage::People => "reading agents, visitors and canned replies",
            Stage::Messages => "importing messages",
        };
        self.sink
            .progress(stage, self.read_before + self.read.get());
        Ok(())
    }

    fn malformed(&mut self, malformed: &Malformed) -> Result<(), ImportError> {
        // Reported once, by the pass that takes the table (or the first pass, for the rest).
        let table = malformed.table.as_deref().map(str::to_ascii_lowercase);
        let ours = match &table {
            Some(t) if wanted(t).is_some() => self.takes(t),
            _ => self.stage == Stage::People,
        };
        if ours {
            let what = table.unwrap_or_else(|| "dump".into());
            let mut reason = malformed.problem.to_string();
            if let Some(resumed) = malformed.resumed_at_line {
                reason.push_str(&format!(
                    " (the rest of the statement, to line {resumed}, is lost)"
                ));
            }
            self.sink.bad_row(malformed.line, &what, &reason);
        }
        Ok(())
    }
}

/// A canned reply's shortcut (1–32 characters, no spaces): go-fly's item name, else its
/// group's name, else the reply's first words, else `reply{id}`.
fn shortcut_for(item_name: &str, group: Option<&str>, text: &str, id: i64) -> String {
    let words = text
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join("-");
    let candidate = [item_name, group.unwrap_or(""), words.as_str()]
        .into_iter()
        .map(|s| s.split_whitespace().collect::<Vec<_>>().join("-"))
        .map(|s| {
            s.trim_start_matches('/')
                .chars()
                .take(32)
                .collect::<String>()
        })
        .find(|s| !s.is_empty());
    candidate.unwrap_or_else(|| format!("reply{id}"))
}

#[cfg(test)]
mod tests {
    use super::shortcut_for;

    #[test]
    fn a_shortcut_is_a_name_without_spaces_of_at_most_32_characters() {
        assert_eq!(shortcut_for("Opening hours", None, "x", 1), "Opening-hours");
        assert_eq!(shortcut_for("  ", Some("常见问题"), "x", 1), "常见问题");
        assert_eq!(
            shortcut_for("", None, "Thanks for your order!", 1),
            "Thanks-for-your"
        );
        assert_eq!(shortcut_for("", None, "", 7), "reply7");
        assert_eq!(
            shortcut_for(&"长".repeat(40), None, "x", 1).chars().count(),
            32
        );
    }
}
