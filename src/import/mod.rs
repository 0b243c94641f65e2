//! `kefud import gofly FILE` and `kefud import history FILE`: another system's history brought
//! into kefud through the journal, as ordinary records (the dispatcher's `import` handler).
//!
//! Files: `mysqldump.rs` (reads a dump without a server), `gofly.rs` (go-fly's tables into
//! steps), `history.rs` (the generic CSV / JSON Lines format), `streams.rs` (where a contact's
//! stream is cut into conversations), `markup.rs` (go-fly's inline markup into text), `time.rs`
//! (times as other systems write them), `sink.rs` (steps into the pipeline, in batches;
//! progress).
//!
//! Exactly once: every imported message keeps its key in its source as its client id
//! (`gofly:{message id}`, `h{file tag}:{line}`), and a source is read in the order of those
//! keys. A run first asks the store how far earlier runs got (the highest key) and where each
//! contact's stream stood, then skips what is there: an import killed at any point and run
//! again finishes the job, and a finished one run again imports nothing. The store has
//! applied the whole journal before the pipeline starts, so what it says is exact.
//!
//! The daemon must be stopped (the data directory's lock says so otherwise): an import is
//! history, decided in one order without live traffic interleaving.

mod gofly;
mod history;
mod markup;
pub mod mysqldump;
mod sink;
mod streams;
mod time;

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::dispatch::ImportStep;
use crate::model::{bounded_id, AgentId, ClientId, Identity, Sender};
use sink::Sink;
use streams::{Cut, Streams};

pub use gofly::import_gofly;
pub use history::HistoryRow;
pub use sink::{ImportError, Options, Summary};

/// The generic history formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HistoryFormat {
    Csv,
    JsonLines,
}

impl HistoryFormat {
    /// From `name` (`csv`, `jsonl`), else the file's extension; JSON Lines when neither
    /// says. `None` for a name that is neither.
    pub fn named(name: Option<&str>, path: &Path) -> Option<HistoryFormat> {
        match name {
            Some(name) => HistoryFormat::parse(name),
            None => Some(
                path.extension()
                    .and_then(|e| e.to_str())
                    .and_then(HistoryFormat::parse)
                    .unwrap_or(HistoryFormat::JsonLines),
            ),
        }
    }

    fn parse(name: &str) -> Option<HistoryFormat> {
        match name.to_ascii_lowercase().as_str() {
            "csv" => Some(HistoryFormat::Csv),
            "jsonl" | "json" | "ndjson" => Some(HistoryFormat::JsonLines),
            _ => None,
        }
    }
}

pub use history::import_history;

/// The file an import reads, opened, with its size for progress.
fn open_source(path: &Path) -> Result<(std::fs::File, u64), ImportError> {
    let read_error = |source| ImportError::Read {
        path: PathBuf::from(path),
        source,
    };
    let file = std::fs::File::open(path).map_err(read_error)?;
    let size = file.metadata().map_err(read_error)?.len();
    Ok((file, size))
}

/// The identity a contact of another system gets: its id as it was when kefud accepts it as
/// an external id, else a stable digest of it (`x-` and 30 hex digits; the original goes in
/// the contact's details).
///
/// # Errors
/// The reason for a channel name kefud does not accept.
fn contact_identity(channel: &str, id: &str) -> Result<(Identity, bool), String> {
    let channel = bounded_id(channel).map_err(|e| format!("channel {channel:?} {e}"))?;
    if let Ok(external_id) = bounded_id(id) {
        return Ok((
            Identity {
                channel,
                external_id,
            },
            false,
        ));
    }
    let digest = Sha256::digest(id.as_bytes());
    let hex: String = digest[..15].iter().map(|b| format!("{b:02x}")).collect();
    let external_id = bounded_id(&format!("x-{hex}")).map_err(|e| e.to_string())?;
    Ok((
        Identity {
            channel,
            external_id,
        },
        true,
    ))
}

/// A message of a contact's stream, in source order: its conversation ended first if the
/// gap says so, then the message itself.
fn feed_message(
    sink: &mut Sink,
    streams: &mut Streams<Identity>,
    identity: Identity,
    message: ImportedMessage,
) -> Result<(), ImportError> {
    if let Some(Cut::Close { at_ms }) = streams.message(&identity, message.at_ms) {
        sink.summary.conversations_closed += 1;
        sink.push(ImportStep::Close {
            identity: identity.clone(),
            at_ms,
        })?;
    }
    sink.push(ImportStep::Message {
        identity,
        sender: message.sender,
        agent: message.agent,
        key: message.key,
        text: message.text,
        at_ms: message.at_ms,
    })
}

/// A message as a source gives it, before it is placed in its contact's stream.
struct ImportedMessage {
    sender: Sender,
    agent: Option<AgentId>,
    key: ClientId,
    text: String,
    at_ms: i64,
}

/// Every contact's last conversation, closed or left for a person, at the end of an import.
fn finish_streams(sink: &mut Sink, streams: Streams<Identity>) -> Result<(), ImportError> {
    sink.summary.contacts = streams.contacts() as u64;
    for (identity, cut) in streams.finish(crate::model::now_ms()) {
        let step = match cut {
            Cut::Close { at_ms } => {
                sink.summary.conversations_closed += 1;
                ImportStep::Close { identity, at_ms }
            }
            Cut::Hand { at_ms } => {
                sink.summary.conversations_open += 1;
                ImportStep::Hand { identity, at_ms }
            }
        };
        sink.push(step)?;
    }
    Ok(())
}

/// Where an earlier run of `source` stopped: its highest key, and where each contact's
/// stream stood (nothing for a check, which writes nothing and reads no store).
fn resume_point(
    store: Option<&rusqlite::Connection>,
    source: &str,
    streams: &mut Streams<Identity>,
) -> Result<u64, ImportError> {
    let Some(conn) = store else {
        return Ok(0);
    };
    let watermark = crate::store::queries::import_watermark(conn, source)?.unwrap_or(0);
    if watermark > 0 {
        for (channel, external_id, last) in crate::store::queries::import_streams(conn, source)? {
            if let (Ok(channel), Ok(external_id)) = (bounded_id(&channel), bounded_id(&external_id))
            {
                streams.resume(
                    Identity {
                        channel,
                        external_id,
                    },
                    last,
                );
            }
        }
    }
    Ok(watermark)
}

/// Text an imported message may carry: not blank, within the configured length.
fn checked_text(text: &str, max_chars: usize) -> Result<(), String> {
    if text.trim().is_empty() {
        return Err("the text is empty".into());
    }
    let chars = text.chars().count();
    if chars > max_chars {
        return Err(format!(
            "the text has {chars} characters; limits.max_text_chars is {max_chars}"
        ));
    }
    Ok(())
}

/// The agents an import names, by username: kefud's own when the name exists, else created
/// disabled and without a password (listed in the summary). A name kefud cannot take is
/// reported once and its messages keep no agent.
#[derive(Default)]
struct Agents {
    by_name: std::collections::HashMap<String, Option<AgentId>>,
}

impl Agents {
    fn id(
        &mut self,
        store: Option<&rusqlite::Connection>,
        sink: &mut Sink,
        line: u64,
        username: &str,
        display_name: &str,
        created_at: i64,
    ) -> Result<Option<AgentId>, ImportError> {
        if let Some(id) = self.by_name.get(username) {
            return Ok(*id);
        }
        let Some(conn) = store else {
            return Ok(None);
        };
        let id = match crate::auth::import_agent(conn, username, display_name, created_at) {
            Ok((id, created)) => {
                if created {
                    sink.summary.agents_created.push(username.to_string());
                }
                Some(id)
            }
            Err(crate::auth::AuthError::BadUsername) => {
                sink.bad_row(
                    line,
                    "agent",
                    &format!("{username:?} is not a username kefud accepts (letters, digits, '.', '_', '-'); their messages keep no agent"),
                );
                None
            }
            Err(e) => {
                return Err(ImportError::NotImportable(format!(
                    "cannot create agent {username}: {e}"
                )))
            }
        };
        self.by_name.insert(username.to_string(), id);
        Ok(id)
    }
}

/// A history file's tag in its messages' keys: `h` and 8 hex digits of a digest of its first
/// 64 KiB. The same file run again (or grown at its end) resumes; another file starts anew.
fn source_tag(path: &Path) -> Result<String, ImportError> {
    use std::io::Read;
    let (file, _) = open_source(path)?;
    let mut head = Vec::with_capacity(64 * 1024);
    file.take(64 * 1024)
        .read_to_end(&mut head)
        .map_err(|source| ImportError::Read {
            path: path.to_path_buf(),
            source,
        })?;
    let digest = Sha256::digest(&head);
    Ok(format!(
        "h{:02x}{:02x}{:02x}{:02x}",
        digest[0], digest[1], digest[2], digest[3]
    ))
}

/// A reader that counts the bytes read through it, for progress.
struct CountingReader<R> {
    inner: R,
    count: std::rc::Rc<std::cell::Cell<u64>>,
}

impl<R> CountingReader<R> {
    fn new(inner: R) -> Self {
        CountingReader {
            inner,
            count: std::rc::Rc::default(),
        }
    }

    /// A handle that sees the count while the reader is lent out.
    fn counter(&self) -> std::rc::Rc<std::cell::Cell<u64>> {
        std::rc::Rc::clone(&self.count)
    }
}

impl<R: std::io::Read> std::io::Read for CountingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.set(self.count.get() + n as u64);
        Ok(n)
    }
}
