//! The generator's tests: a dump is read back with kefud's own reader ([`Readback`]) and
//! must hold exactly what its [`Summary`] says. `summary.rs` checks whole dumps of various
//! specs; `sql.rs` checks mysqldump's text (escaping, time stamps, MD5).

mod sql;
mod summary;

use super::random::{fnv1a, FNV_OFFSET};
use super::sql::push_datetime;
use super::tables::md5_hex;
use super::*;
use kefud::import::mysqldump::{DumpReader, DumpSink, DumpStats, InsertStatement, Malformed, Row};
use std::collections::{HashMap, HashSet};

fn generate(spec: &Spec) -> (Vec<u8>, Summary) {
    let mut dump = Vec::new();
    let summary = write_dump(spec, &mut dump).expect("writing to memory does not fail");
    assert_eq!(summary.bytes, dump.len() as u64);
    (dump, summary)
}

/// Everything the tests check, gathered from reading a dump back.
#[derive(Default)]
struct Readback {
    rows: HashMap<String, u64>,
    rows_per_statement: Vec<(String, u64)>,
    columns: HashMap<String, Vec<String>>,
    malformed: Vec<String>,
    last_id: HashMap<String, i64>,
    last_message_at: i64,
    first_message_at: Option<i64>,
    visitor_last_message: HashMap<String, i64>,
    conversations: u64,
    conversations_opened_by_visitor: u64,
    visitor_messages: u64,
    kefu_messages: u64,
    images: u64,
    attachments: u64,
    faces: u64,
    fnv: u64,
    four_byte_utf8: u64,
    visitor_ids: Vec<String>,
    agents: HashMap<String, String>,
    message_kefu_ids: HashSet<String>,
    /// Each message's visitor, in id order.
    message_visitors: Vec<String>,
    visitors_updated_at: HashMap<String, Option<i64>>,
}

fn text(row: &Row<'_>, column: &str) -> String {
    let value = row
        .get_named(column)
        .unwrap_or_else(|| panic!("no column {column}"));
    value.as_str().expect("go-fly text is UTF-8").to_string()
}

/// The Unix seconds of a time stamp column; the dump writes them in UTC.
fn time(row: &Row<'_>, column: &str) -> Option<i64> {
    let value = row.get_named(column)?;
    let text = value.as_opt_str().expect("UTF-8")?;
    assert_eq!(
        row.time_zone_minutes(),
        Some(0),
        "the dump sets TIME_ZONE='+00:00'"
    );
    Some(seconds_of(text))
}

/// The second whose [`push_datetime`] text is `text` (`YYYY-MM-DD HH:MM:SS`, fixed width, so
/// it sorts as its time does): a binary search over the seconds the generator writes.
fn seconds_of(text: &str) -> i64 {
    let quoted = format!("'{text}'");
    let mut written = Vec::new();
    let (mut low, mut high) = (0, LAST_TIMESTAMP);
    while low < high {
        let middle = low + (high - low) / 2;
        written.clear();
        push_datetime(&mut written, middle);
        if written.as_slice() < quoted.as_bytes() {
            low = middle + 1;
        } else {
            high = middle;
        }
    }
    written.clear();
    push_datetime(&mut written, low);
    assert_eq!(
        written,
        quoted.as_bytes(),
        "not a time stamp the generator writes"
    );
    low
}

impl DumpSink for Readback {
    type Error = String;

    fn insert_start(&mut self, insert: &InsertStatement<'_>) -> Result<(), String> {
        self.rows_per_statement
            .push((insert.table().to_string(), 0));
        Ok(())
    }

    fn row(&mut self, row: &Row<'_>) -> Result<(), String> {
        let table = row.table().to_string();
        *self.rows.entry(table.clone()).or_default() += 1;
        if let Some((_, rows)) = self.rows_per_statement.last_mut() {
            *rows += 1;
        }
        self.columns
            .entry(table.clone())
            .or_insert_with(|| row.columns().to_vec());
        let id = row
            .get_named("id")
            .ok_or("no id")?
            .as_i64()
            .map_err(|e| e.to_string())?;
        let last = self.last_id.insert(table.clone(), id).unwrap_or(0);
        if id != last + 1 {
            return Err(format!("line {}: {table} id {id} after {last}", row.line()));
        }
        match table.as_str() {
            "message" => self.message(row)?,
            "visitor" => {
                let visitor_id = text(row, "visitor_id");
                self.visitors_updated_at
                    .insert(visitor_id.clone(), time(row, "updated_at"));
                self.visitor_ids.push(visitor_id);
                assert!(row.get_named("deleted_at").is_some_and(|v| v.is_null()));
                let extra = text(row, "extra");
                assert!(
                    extra.is_empty() || extra.starts_with("{\"visitorName\":"),
                    "{extra}"
                );
            }
            "user" => {
                self.agents.insert(text(row, "name"), text(row, "password"));
            }
            _ => {}
        }
        Ok(())
    }

    fn malformed(&mut self, malformed: &Malformed) -> Result<(), String> {
        self.malformed.push(malformed.to_string());
        Ok(())
    }
}

impl Readback {
    fn message(&mut self, row: &Row<'_>) -> Result<(), String> {
        let at = time(row, "created_at").ok_or("no created_at")?;
        if at < self.last_message_at {
            return Err(format!("line {}: message time goes back", row.line()));
        }
        self.last_message_at = at;
        self.first_message_at.get_or_insert(at);
        let updated_at = time(row, "updated_at");
        assert!(updated_at.is_none() || updated_at == Some(at));
        assert!(row.get_named("deleted_at").is_some_and(|v| v.is_null()));
        let from_visitor = match text(row, "mes_type").as_str() {
            "visitor" => true,
            "kefu" => false,
            other => return Err(format!("mes_type {other}")),
        };
        assert!(matches!(text(row, "status").as_str(), "read" | "unread"));
        let visitor = text(row, "visitor_id");
        let previous = self.visitor_last_message.insert(visitor.clone(), at);
        self.message_visitors.push(visitor);
        if previous.map_or(true, |last| at - last > CONVERSATION_GAP) {
            self.conversations += 1;
            self.conversations_opened_by_visitor += u64::from(from_visitor);
        }
        if from_visitor {
            self.visitor_messages += 1;
        } else {
            self.kefu_messages += 1;
        }
        let content = text(row, "content");
        self.images += u64::from(content.starts_with("img[/static/upload/"));
        self.attachments += u64::from(content.starts_with("attachment[{\"name\":"));
        self.faces += u64::from(content.contains("face["));
        self.four_byte_utf8 += u64::from(content.chars().any(|c| c.len_utf8() == 4));
        self.fnv = fnv1a(fnv1a(self.fnv, content.as_bytes()), &[0xff]);
        self.message_kefu_ids.insert(text(row, "kefu_id"));
        Ok(())
    }
}

fn read_back(dump: &[u8]) -> (Readback, DumpStats) {
    let mut readback = Readback {
        fnv: FNV_OFFSET,
        ..Readback::default()
    };
    let stats = DumpReader::new(dump)
        .read(&mut readback)
        .expect("the dump reads back");
    assert_eq!(readback.malformed, Vec::<String>::new());
    (readback, stats)
}

fn spec(messages: u64, visitors: u64, agents: u32) -> Spec {
    Spec {
        messages,
        visitors,
        agents,
        seed: 7,
        extended_insert: true,
        rows_per_insert: 0,
    }
}

fn assert_reads_back_as_summarised(dump: &[u8], summary: &Summary) -> Readback {
    let (got, stats) = read_back(dump);
    let rows = |table: &str| got.rows.get(table).copied().unwrap_or(0);
    assert_eq!(rows("message"), summary.messages);
    assert_eq!(rows("visitor"), summary.visitors);
    assert_eq!(rows("user"), summary.agents);
    assert_eq!(rows("config"), summary.configs);
    assert_eq!(rows("ipblack"), summary.ipblacks);
    assert_eq!(rows("reply_group"), summary.reply_groups);
    assert_eq!(rows("reply_item"), summary.reply_items);
    assert_eq!(stats.insert_statements, summary.insert_statements);
    assert_eq!(stats.bytes, summary.bytes);
    // The footer's `SET TIME_ZONE=@OLD_TIME_ZONE` names no zone: the dump's stays.
    assert_eq!(stats.time_zone_minutes, Some(0));
    assert_eq!(got.visitor_messages, summary.visitor_messages);
    assert_eq!(got.kefu_messages, summary.kefu_messages);
    assert_eq!(got.conversations, summary.conversations_24h);
    assert_eq!(
        got.visitor_last_message.len() as u64,
        summary.visitors_with_messages
    );
    assert_eq!(
        (got.images, got.attachments),
        (summary.image_messages, summary.attachment_messages)
    );
    assert_eq!(got.faces, summary.face_messages);
    assert_eq!(got.fnv, summary.content_fnv1a);
    assert_eq!(got.first_message_at, summary.first_message_at);
    if summary.messages > 0 {
        assert_eq!(Some(got.last_message_at), summary.last_message_at);
    }
    // Each visitor's updated_at is its last message.
    for (visitor, last) in &got.visitor_last_message {
        assert_eq!(got.visitors_updated_at.get(visitor), Some(&Some(*last)));
    }
    // Unique keys hold, and messages refer to existing visitors and agents.
    let unique: HashSet<&String> = got.visitor_ids.iter().collect();
    assert_eq!(unique.len(), got.visitor_ids.len());
    assert!(got.visitor_last_message.keys().all(|v| unique.contains(v)));
    assert!(got
        .message_kefu_ids
        .iter()
        .all(|k| got.agents.contains_key(k)));
    assert_eq!(got.agents.len() as u64, summary.agents);
    for login in &summary.agent_logins {
        assert_eq!(
            got.agents.get(&login.name),
            Some(&md5_hex(login.password.as_bytes()))
        );
    }
    got
}
