//! The generic history format (`kefud import history FILE`): one message per line, for shops
//! coming from anything that can write CSV or JSON Lines. Reading a line is pure (a line in,
//! a row or the reason it is refused out); [`import_history`] feeds the rows to the sink.
//!
//! Fields (CSV: a header row naming them, in any order; JSON Lines: one object per line):
//! - `contact` (required): the customer's id in the old system;
//! - `sender` (required): `visitor`/`customer`, `agent`, `bot`, or `note` (private);
//! - `text` (required, not blank);
//! - `time` (required): `2024-05-01 10:00:00` / RFC 3339 (UTC unless it names an offset), or
//!   seconds or milliseconds since the epoch;
//! - `channel` (optional, default `web`): the channel the contact's id belongs to, so a
//!   customer who writes again from it lands in the same contact;
//! - `name` (optional): the customer's name; `agent` (optional): the agent's username.

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader};
use std::path::Path;

use serde::Deserialize;

use super::sink::{ImportError, Options, Summary};
use super::time::{from_epoch_number, parse_time};
use super::{
    checked_text, contact_identity, feed_message, finish_streams, open_source, resume_point,
    source_tag, Agents, CountingReader, HistoryFormat, ImportedMessage, Sink, Streams,
};
use crate::config::Config;
use crate::dispatch::ImportStep;
use crate::model::{bounded_id, Identity, Sender};

/// One message of the history.
#[derive(Debug, Clone, PartialEq)]
pub struct HistoryRow {
    pub contact: String,
    pub channel: String,
    pub sender: Sender,
    pub text: String,
    pub at_ms: i64,
    pub name: Option<String>,
    pub agent: Option<String>,
}

#[derive(Deserialize)]
struct JsonRow {
    contact: Option<serde_json::Value>,
    sender: Option<String>,
    text: Option<String>,
    time: Option<serde_json::Value>,
    channel: Option<String>,
    name: Option<String>,
    agent: Option<String>,
}

/// A JSON Lines line.
///
/// # Errors
/// Why the line is not a message.
pub fn from_json(line: &str) -> Result<HistoryRow, String> {
    let row: JsonRow = serde_json::from_str(line).map_err(|e| format!("not a JSON object: {e}"))?;
    let contact = match row.contact {
        Some(serde_json::Value::String(s)) => s,
        Some(serde_json::Value::Number(n)) => n.to_string(),
        _ => return Err("`contact` is missing (a string or a number)".into()),
    };
    let at_ms = match row.time {
        Some(serde_json::Value::String(s)) => time_of(&s)?,
        Some(serde_json::Value::Number(n)) => n
            .as_f64()
            .and_then(from_epoch_number)
            .ok_or_else(|| format!("`time` {n} is not a time"))?,
        _ => return Err("`time` is missing".into()),
    };
    checked(HistoryRow {
        contact,
        channel: row.channel.unwrap_or_default(),
        sender: sender_of(row.sender.as_deref().unwrap_or(""))?,
        text: row.text.unwrap_or_default(),
        at_ms,
        name: row.name,
        agent: row.agent,
    })
}

/// Which CSV column holds each field, from the header row.
#[derive(Debug, Clone)]
pub struct CsvColumns {
    index: HashMap<&'static str, usize>,
}

const FIELDS: [&str; 7] = [
    "contact", "sender", "text", "time", "channel", "name", "agent",
];

impl CsvColumns {
    /// # Errors
    /// The required fields the header does not name.
    pub fn from_header(header: &csv::StringRecord) -> Result<Self, String> {
        let mut index = HashMap::new();
        for (i, name) in header.iter().enumerate() {
            let name = name
                .trim()
                .trim_start_matches('\u{feff}')
                .to_ascii_lowercase();
            if let Some(field) = FIELDS.iter().find(|f| **f == name) {
                index.insert(*field, i);
            }
        }
        let missing: Vec<&str> = FIELDS[..4]
            .iter()
            .copied()
            .filter(|f| !index.contains_key(f))
            .collect();
        if !missing.is_empty() {
            return Err(format!(
                "the header row lacks {} (it needs contact, sender, text and time)",
                missing.join(", ")
            ));
        }
        Ok(CsvColumns { index })
    }

    /// A CSV record.
    ///
    /// # Errors
    /// Why the record is not a message.
    pub fn row(&self, record: &csv::StringRecord) -> Result<HistoryRow, String> {
        let field = |name: &str| {
            self.index
                .get(name)
                .and_then(|i| record.get(*i))
                .map(str::trim)
                .filter(|v| !v.is_empty())
        };
        let time = field("time").ok_or("`time` is empty")?;
        let at_ms = match time.parse::<f64>() {
            Ok(n) => from_epoch_number(n).ok_or_else(|| format!("`time` {time} is not a time"))?,
            Err(_) => time_of(time)?,
        };
        checked(HistoryRow {
            contact: field("contact").unwrap_or("").to_string(),
            channel: field("channel").unwrap_or("").to_string(),
            sender: sender_of(field("sender").unwrap_or(""))?,
            // The text keeps its own spacing; only a blank one is refused.
            text: self
                .index
                .get("text")
                .and_then(|i| record.get(*i))
                .unwrap_or("")
                .to_string(),
            at_ms,
            name: field("name").map(str::to_string),
            agent: field("agent").map(str::to_string),
        })
    }
}

fn time_of(s: &str) -> Result<i64, String> {
    parse_time(s, 0)
        .ok_or_else(|| format!("`time` {s:?} is not a time (use 2024-05-01 10:00:00 or RFC 3339)"))
}

fn sender_of(s: &str) -> Result<Sender, String> {
    match s.trim().to_ascii_lowercase().as_str() {
        "visitor" | "customer" | "contact" | "user" => Ok(Sender::Visitor),
        "agent" | "staff" | "kefu" => Ok(Sender::Agent),
        "bot" => Ok(Sender::Bot),
        "note" => Ok(Sender::Note),
        "" => Err("`sender` is missing".into()),
        other => Err(format!(
            "`sender` {other:?} is not visitor, agent, bot or note"
        )),
    }
}

fn checked(mut row: HistoryRow) -> Result<HistoryRow, String> {
    row.contact = row.contact.trim().to_string();
    if row.contact.is_empty() {
        return Err("`contact` is empty".into());
    }
    if row.text.trim().is_empty() {
        return Err("`text` is empty".into());
    }
    if row.channel.trim().is_empty() {
        row.channel = crate::model::WEB_CHANNEL.to_string();
    }
    Ok(row)
}

/// `kefud import history FILE`: the generic format into kefud, once.
///
/// # Errors
/// [`ImportError`] for an unreadable file, a CSV without the fields, a data directory in
/// use, the pipeline failing, or (after importing the rest) rows that could not be used.
pub fn import_history(
    cfg: &Config,
    path: &Path,
    format: HistoryFormat,
    options: &Options,
) -> Result<Summary, ImportError> {
    let (file, size) = open_source(path)?;
    let source = source_tag(path)?;
    let mut sink = Sink::start(cfg, options, size)?;
    let store = if options.check_only {
        None
    } else {
        Some(crate::store::open(&cfg.db_path())?)
    };
    let gap_ms = options.gap.as_millis() as i64;
    let mut streams = Streams::new(gap_ms);
    let watermark = resume_point(store.as_ref(), &source, &mut streams)?;
    let mut run = HistoryRun {
        cfg,
        store: store.as_ref(),
        source: &source,
        watermark,
        streams,
        agents: Agents::default(),
        detailed: HashSet::new(),
    };
    let counted = CountingReader::new(file);
    let read = counted.counter();
    match format {
        HistoryFormat::JsonLines => {
            for (index, line) in BufReader::new(counted).lines().enumerate() {
                let number = index as u64 + 1;
                let line = match line {
                    Ok(l) => l,
                    Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {
                        sink.bad_row(number, "message", "not valid UTF-8");
                        continue;
                    }
                    Err(source) => {
                        return Err(ImportError::Read {
                            path: path.to_path_buf(),
                            source,
                        })
                    }
                };
                if line.trim().is_empty() {
                    continue;
                }
                let row = from_json(&line);
                run.row(&mut sink, number, row)?;
                sink.progress("import", read.get());
            }
        }
        HistoryFormat::Csv => {
            let mut reader = csv::ReaderBuilder::new()
                .flexible(true)
                .from_reader(counted);
            let header = reader
                .headers()
                .map_err(|e| ImportError::NotImportable(format!("{}: {e}", path.display())))?
                .clone();
            let columns = CsvColumns::from_header(&header)
                .map_err(|e| ImportError::NotImportable(format!("{}: {e}", path.display())))?;
            let mut record = csv::StringRecord::new();
            loop {
                let number = reader.position().line() + 1;
                match reader.read_record(&mut record) {
                    Ok(false) => break,
                    Ok(true) => {
                        let row = columns.row(&record);
                        run.row(
                            &mut sink,
                            record.position().map_or(number, |p| p.line()),
                            row,
                        )?;
                    }
                    Err(e) if matches!(e.kind(), csv::ErrorKind::Utf8 { .. }) => {
                        sink.bad_row(number, "message", "not valid UTF-8");
                    }
                    Err(e) => {
                        return Err(ImportError::NotImportable(format!(
                            "{}: {e}",
                            path.display()
                        )))
                    }
                }
                sink.progress("import", read.get());
            }
        }
    }
    finish_streams(&mut sink, run.streams)?;
    sink.finish()
}

/// One run's state over the rows of a history file.
struct HistoryRun<'a> {
    cfg: &'a Config,
    store: Option<&'a rusqlite::Connection>,
    source: &'a str,
    watermark: u64,
    streams: Streams<Identity>,
    agents: Agents,
    /// Contacts whose details this run has given (once each).
    detailed: HashSet<Identity>,
}

impl HistoryRun<'_> {
    fn row(
        &mut self,
        sink: &mut Sink,
        line: u64,
        row: Result<HistoryRow, String>,
    ) -> Result<(), ImportError> {
        let row = match row {
            Ok(row) => row,
            Err(reason) => {
                sink.bad_row(line, "message", &reason);
                return Ok(());
            }
        };
        if let Err(reason) = checked_text(&row.text, self.cfg.limits.max_text_chars) {
            sink.bad_row(line, "message", &reason);
            return Ok(());
        }
        let (identity, digested) = match contact_identity(&row.channel, &row.contact) {
            Ok(found) => found,
            Err(reason) => {
                sink.bad_row(line, "message", &reason);
                return Ok(());
            }
        };
        if line <= self.watermark {
            sink.summary.already_imported += 1;
            return Ok(());
        }
        if (row.name.is_some() || digested) && !self.detailed.contains(&identity) {
            self.detailed.insert(identity.clone());
            let known = match self.store {
                Some(conn) => crate::store::queries::contact_has_details(
                    conn,
                    identity.channel.as_str(),
                    identity.external_id.as_str(),
                )?,
                None => false,
            };
            if !known {
                let details = serde_json::json!({ "id": row.contact }).to_string();
                sink.push(ImportStep::Contact {
                    identity: identity.clone(),
                    name: row.name.clone().unwrap_or_default(),
                    details,
                    at_ms: row.at_ms,
                })?;
            }
        }
        let agent = match (&row.agent, row.sender) {
            (Some(name), Sender::Agent | Sender::Note) => self
                .agents
                .id(self.store, sink, line, name, name, row.at_ms)?,
            _ => None,
        };
        let key = bounded_id(&format!("{}:{line}", self.source))
            .expect("invariant: a source tag and a line number make a valid id");
        feed_message(
            sink,
            &mut self.streams,
            identity,
            ImportedMessage {
                sender: row.sender,
                agent,
                key,
                text: row.text,
                at_ms: row.at_ms,
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_json_line_with_every_field() {
        let row = from_json(
            r#"{"contact":"c-1","sender":"customer","text":"你好 😀","time":"2024-05-01T10:00:00+08:00","channel":"wechat","name":"Li","agent":null}"#,
        )
        .unwrap();
        assert_eq!(row.contact, "c-1");
        assert_eq!(row.channel, "wechat");
        assert_eq!(row.sender, Sender::Visitor);
        assert_eq!(row.text, "你好 😀");
        assert_eq!(row.at_ms, 1_714_528_800_000);
        assert_eq!(row.name.as_deref(), Some("Li"));
    }

    #[test]
    fn json_defaults_and_numbers() {
        let row = from_json(
            r#"{"contact":42,"sender":"agent","text":"hi","time":1714528800,"agent":"li"}"#,
        )
        .unwrap();
        assert_eq!(row.contact, "42");
        assert_eq!(row.channel, "web");
        assert_eq!(row.sender, Sender::Agent);
        assert_eq!(row.at_ms, 1_714_528_800_000);
        assert_eq!(row.agent.as_deref(), Some("li"));
    }

    #[test]
    fn bad_json_lines_say_what_is_wrong() {
        for (line, reason) in [
            ("not json", "not a JSON object"),
            (
                r#"{"sender":"agent","text":"x","time":1}"#,
                "`contact` is missing",
            ),
            (
                r#"{"contact":"a","sender":"boss","text":"x","time":1}"#,
                "`sender` \"boss\"",
            ),
            (
                r#"{"contact":"a","sender":"agent","text":"  ","time":1}"#,
                "`text` is empty",
            ),
            (
                r#"{"contact":"a","sender":"agent","text":"x","time":"yesterday"}"#,
                "is not a time",
            ),
            (
                r#"{"contact":"a","sender":"agent","text":"x"}"#,
                "`time` is missing",
            ),
        ] {
            let err = from_json(line).unwrap_err();
            assert!(err.contains(reason), "{line}: {err}");
        }
    }

    #[test]
    fn csv_columns_in_any_order_and_a_missing_one_named() {
        let header =
            csv::StringRecord::from(vec!["\u{feff}Time", "text", "Contact", "sender", "extra"]);
        let columns = CsvColumns::from_header(&header).unwrap();
        let row = columns
            .row(&csv::StringRecord::from(vec![
                "2024-05-01 02:00:00",
                " spaced ",
                "c9",
                "visitor",
                "x",
            ]))
            .unwrap();
        assert_eq!(row.contact, "c9");
        assert_eq!(row.text, " spaced ");
        assert_eq!(row.at_ms, 1_714_528_800_000);
        assert_eq!(row.channel, "web");
        let err =
            CsvColumns::from_header(&csv::StringRecord::from(vec!["contact", "text"])).unwrap_err();
        assert!(err.contains("sender, time"), "{err}");
    }
}
