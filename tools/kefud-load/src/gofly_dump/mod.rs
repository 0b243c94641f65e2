//! Writes a `mysqldump` of a go-fly database (github.com/taoshihan1991/go-fly) of any size,
//! for testing kefud's importer and loading kefud with a shop's history.
//!
//! What it writes is what `mysqldump --extended-insert` (or `--skip-extended-insert`) of
//! MySQL 5.7 writes for go-fly's `import.sql` schema: the header comments and `SET`s (with
//! `/*!40103 SET TIME_ZONE='+00:00' */`, so every time stamp is UTC), then each table in
//! alphabetical order (`config`, `ipblack`, `message`, `reply_group`, `reply_item`, `user`,
//! `visitor`) as DROP / CREATE TABLE / LOCK TABLES / DISABLE KEYS / INSERTs / ENABLE KEYS /
//! UNLOCK TABLES, and the footer. Extended INSERT statements end before a line would pass
//! mysqldump's default `net_buffer_length` ([`NET_BUFFER_LENGTH`]), or at
//! [`Spec::rows_per_insert`] rows.
//!
//! The data: agents (`user`, MD5 passwords, some Chinese nicknames), their canned replies and
//! settings, visitors with cities, IPs, referrers and JSON `extra`, and messages in ascending
//! id and time. Each visitor has a message budget spent in sessions (bursts a few seconds to
//! minutes apart, usually opened by the visitor) separated by gaps of hours to days, so a 24 h
//! cut yields several conversations per visitor; visitors' sessions interleave as real
//! traffic does. Contents mix English and Chinese text, 4-byte emoji, go-fly's `face[...]`,
//! `img[...]` and `attachment[{json}]` markup, and quotes, backslashes, tabs and newlines that
//! need escaping.
//!
//! Invariants: deterministic (same [`Spec`], same bytes: a seeded splitmix64 and integer
//! arithmetic only); streaming (memory is O(visitors): one small state per visitor and a heap
//! of their next messages; output goes out a statement at a time); `deleted_at` is always
//! NULL, so every row is live; the [`Summary`] describes exactly what was written.
//!
//! Files: this one (the spec, the summary, [`write_dump`]), `world.rs` (agents and what each
//! visitor is, derived from the seed), `tables.rs` (each table's rows, in go-fly's schema),
//! `content.rs` (what a message says, and visitors' text fields), `data.rs` (the fixed texts
//! drawn from), `sql.rs` (mysqldump's text: header, footer, INSERT statements, escaping,
//! numbers and time stamps), `random.rs` (seeded draws and the content checksum).

mod content;
mod data;
mod random;
mod sql;
mod tables;
#[cfg(test)]
mod tests;
mod world;

use std::io::{self, Write};

use sql::{footer, header, Counted};
use tables::Dump;
use world::World;

/// mysqldump's default `net_buffer_length` (1 MiB - 1025): an extended INSERT line ends
/// before it would reach this length.
pub const NET_BUFFER_LENGTH: usize = 1024 * 1024 - 1025;

/// 2020-07-01 00:00:00 UTC: the first visitor arrives then.
const HISTORY_START: i64 = 1_593_561_600;
/// 2026-01-01 00:00:00 UTC: visitors' sessions are spread to end around then.
const HISTORY_END: i64 = 1_767_225_600;
/// 2037-12-31 00:00:00 UTC: no time stamp passes this (MySQL TIMESTAMP ends in 2038).
const LAST_TIMESTAMP: i64 = 2_145_830_400;
const DAY: i64 = 86_400;
/// The gap after which an importer that cuts conversations at 24 h starts a new one.
const CONVERSATION_GAP: i64 = DAY;
/// Lower-case hex digits, for UUIDs and upload paths.
const HEX: &[u8; 16] = b"0123456789abcdef";

/// What to generate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spec {
    pub messages: u64,
    pub visitors: u64,
    /// At least 1: every visitor talks to an agent.
    pub agents: u32,
    pub seed: u64,
    /// `--extended-insert` (many rows per INSERT) or `--skip-extended-insert` (one).
    pub extended_insert: bool,
    /// The most rows in one extended INSERT; 0 for no limit but [`NET_BUFFER_LENGTH`].
    pub rows_per_insert: usize,
}

impl Default for Spec {
    fn default() -> Self {
        Spec {
            messages: 10_000,
            visitors: 500,
            agents: 3,
            seed: 1,
            extended_insert: true,
            rows_per_insert: 0,
        }
    }
}

/// What a dump holds, for checking an import of it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    pub agents: u64,
    pub visitors: u64,
    /// Visitors with at least one message.
    pub visitors_with_messages: u64,
    pub messages: u64,
    /// Messages with `mes_type` 'visitor'.
    pub visitor_messages: u64,
    /// Messages with `mes_type` 'kefu'.
    pub kefu_messages: u64,
    /// Messages whose content holds `img[...]`, `attachment[...]`, `face[...]`.
    pub image_messages: u64,
    pub attachment_messages: u64,
    pub face_messages: u64,
    /// Conversations when each visitor's messages are cut where more than 24 h pass
    /// between two of them.
    pub conversations_24h: u64,
    /// Unix seconds (UTC) of the first and last message.
    pub first_message_at: Option<i64>,
    pub last_message_at: Option<i64>,
    /// FNV-1a (64-bit) over every message's content in id order, each followed by a 0xff
    /// byte (which UTF-8 never contains): a check that contents survived byte for byte.
    pub content_fnv1a: u64,
    pub reply_groups: u64,
    pub reply_items: u64,
    pub ipblacks: u64,
    pub configs: u64,
    pub insert_statements: u64,
    pub bytes: u64,
    /// Each agent's name and the password whose MD5 the dump stores.
    pub agent_logins: Vec<AgentLogin>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentLogin {
    pub name: String,
    pub password: String,
}

/// Writes the dump for `spec` to `out` (unbuffered writers are fine: output goes out in
/// whole statements).
///
/// # Errors
/// `InvalidInput` for a spec without agents, with messages but no visitors, or with more
/// than 2^32 visitors; otherwise the errors of `out`.
pub fn write_dump(spec: &Spec, out: &mut impl Write) -> io::Result<Summary> {
    let invalid = |why: &str| Err(io::Error::new(io::ErrorKind::InvalidInput, why.to_string()));
    if spec.agents == 0 {
        return invalid("a go-fly dump needs at least one agent");
    }
    if spec.messages > 0 && spec.visitors == 0 {
        return invalid("messages need at least one visitor");
    }
    if spec.visitors > u64::from(u32::MAX) {
        return invalid("at most 2^32 - 1 visitors");
    }
    let world = World::new(spec);
    let mut dump = Dump {
        out: Counted {
            inner: out,
            bytes: 0,
        },
        spec,
        summary: Summary::default(),
        tuple: Vec::with_capacity(4096),
        scratch: Vec::with_capacity(4096),
    };
    dump.text(&header())?;
    dump.config(&world)?;
    dump.ipblack(&world)?;
    let visitors = dump.message(&world)?;
    dump.reply_tables(&world)?;
    dump.user(&world)?;
    dump.visitor(&world, &visitors)?;
    let completed = dump.summary.last_message_at.unwrap_or(HISTORY_START) + DAY;
    dump.text(&footer(completed))?;
    dump.summary.agent_logins = world.agents.iter().map(|a| a.login.clone()).collect();
    dump.summary.agents = world.agents.len() as u64;
    dump.summary.bytes = dump.out.bytes;
    Ok(dump.summary)
}
