//! The knowledge base as the daemon holds it: entries by intent name, the intent index built
//! from their example questions, and the slot of the trained model that classifies for it.
//! Entries and index are immutable: a change builds a new `KnowledgeBase` (milliseconds for
//! ten thousand examples), which the dispatcher then publishes.
//!
//! Classification ([`KnowledgeBase::classify`], what the bot and `/kb/match` use): the trained
//! model when one is installed (score: calibrated probability of being right), else the
//! nearest example (score: cosine). A new knowledge base starts with its predecessor's model,
//! when it is itself big enough to train on ([`crate::intent::linear::trainable`]); the
//! trainer (`routing::training`) later swaps in a model trained for it, whole (`Arc`), so a
//! query sees the old model or the new one, never a mix. The old model answers only intents
//! that still exist; anything else falls back to the nearest example. [`KnowledgeBase::nearest`]
//! stays the nearest-example index ("similar questions").
//!
//! Also the import and export formats, one example question per line or row:
//! - JSON Lines: `{"intent": "...", "text": "...", "answer": "...", "team": "..."}` (answer and
//!   team optional; the contract's import format);
//! - CSV with the header `intent,text,answer,team`.
//!
//! Lines of one intent are gathered into one entry (examples in file order; the last
//! non-empty answer and team win).

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use serde::{Deserialize, Serialize};

use crate::intent::{linear, IntentIndex, LinearModel};
use crate::model::{check_text, TextError};
use crate::op::KbEntry;

/// Limits on what one entry may hold, so the index and the journal stay bounded.
pub const MAX_INTENT_CHARS: usize = 128;
pub const MAX_EXAMPLES: usize = 10_000;
pub const MAX_TEXT_CHARS: usize = 4_000;
/// Bytes of one entry's examples and answer together: an entry is one journal record, and a
/// record must stay well under the journal's 16 MiB frame limit.
pub const MAX_ENTRY_BYTES: usize = 4 * 1024 * 1024;

#[derive(Default)]
pub struct KnowledgeBase {
    entries: BTreeMap<String, KbEntry>,
    index: Arc<IntentIndex>,
    /// Index label → intent name.
    labels: Vec<String>,
    /// The model classifying for this knowledge base (perhaps trained for a predecessor),
    /// replaced whole by [`KnowledgeBase::install`].
    model: RwLock<Option<Arc<Trained>>>,
}

/// A trained model and the intent names of its labels.
pub struct Trained {
    pub model: LinearModel,
    pub intents: Vec<String>,
}

/// The entry a text is about, and the score of the match.
#[derive(Debug, Clone, Copy)]
pub struct Matched<'a> {
    pub entry: &'a KbEntry,
    pub score: f32,
}

impl KnowledgeBase {
    pub fn new(entries: impl IntoIterator<Item = KbEntry>) -> Self {
        let entries: BTreeMap<String, KbEntry> =
            entries.into_iter().map(|e| (e.intent.clone(), e)).collect();
        let labels: Vec<String> = entries.keys().cloned().collect();
        let index = IntentIndex::build(
            entries
                .values()
                .enumerate()
                .flat_map(|(label, e)| e.examples.iter().map(move |x| (x.as_str(), label as u32))),
        );
        KnowledgeBase {
            entries,
            index: Arc::new(index),
            labels,
            model: RwLock::default(),
        }
    }

    /// This knowledge base with `put` entries added or replaced and `deleted` removed.
    #[must_use]
    pub fn with_changes(&self, put: &[KbEntry], deleted: &[String]) -> Self {
        let mut entries = self.entries.clone();
        for name in deleted {
            entries.remove(name);
        }
        for e in put {
            entries.insert(e.intent.clone(), e.clone());
        }
        let next = KnowledgeBase::new(entries.into_values());
        if next.trainable() {
            if let Some(model) = self.model() {
                next.install(model);
            }
        }
        next
    }

    /// Whether this knowledge base is big enough for a trained model.
    pub fn trainable(&self) -> bool {
        linear::trainable(self.labels.len(), self.index.len(), self.index.n_terms())
    }

    /// Trains a model for this knowledge base on up to `threads` threads (seconds for
    /// fifteen thousand examples: run it off the dispatcher).
    pub fn train(&self, threads: usize) -> Trained {
        let examples: Vec<(&str, u32)> = self
            .entries
            .values()
            .enumerate()
            .flat_map(|(label, e)| e.examples.iter().map(move |x| (x.as_str(), label as u32)))
            .collect();
        Trained {
            model: LinearModel::train(
                Arc::clone(&self.index),
                &examples,
                self.labels.len(),
                threads,
            ),
            intents: self.labels.clone(),
        }
    }

    /// Swaps in `model`: later queries use it.
    pub fn install(&self, model: Arc<Trained>) {
        *self.model.write().unwrap_or_else(|e| e.into_inner()) = Some(model);
    }

    /// The installed model, if any.
    pub fn model(&self) -> Option<Arc<Trained>> {
        self.model.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The entry `text` is about: the trained model's answer when one is installed and names
    /// an existing intent, else the nearest example's.
    pub fn classify(&self, text: &str) -> Option<Matched<'_>> {
        if let Some(trained) = self.model() {
            if let Some(p) = trained.model.predict(text) {
                if let Some(entry) = self.entries.get(&trained.intents[p.label as usize]) {
                    return Some(Matched {
                        entry,
                        score: p.score,
                    });
                }
            }
        }
        self.nearest(text)
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn entries(&self) -> impl Iterator<Item = &KbEntry> {
        self.entries.values()
    }

    pub fn get(&self, intent: &str) -> Option<&KbEntry> {
        self.entries.get(intent)
    }

    /// The entry whose example question is nearest to `text` (the index, whatever model is
    /// installed).
    pub fn nearest(&self, text: &str) -> Option<Matched<'_>> {
        let n = self.index.nearest(text)?;
        Some(Matched {
            entry: &self.entries[&self.labels[n.label as usize]],
            score: n.score,
        })
    }
}

/// A problem in an import file, naming the line.
#[derive(Debug, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct ImportError {
    pub line: usize,
    pub message: String,
}

#[derive(Debug, Serialize, Deserialize)]
struct Line {
    intent: String,
    text: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    answer: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    team: String,
}

/// Which file format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    JsonLines,
    Csv,
}

impl Format {
    pub fn parse(name: &str) -> Option<Format> {
        match name {
            "jsonl" | "json" | "ndjson" => Some(Format::JsonLines),
            "csv" => Some(Format::Csv),
            _ => None,
        }
    }
}

/// Parses an import file into entries.
///
/// # Errors
/// [`ImportError`] for the first bad line (malformed, missing intent or text, over a limit);
/// nothing is imported from a file with an error.
pub fn parse_import(text: &str, format: Format) -> Result<Vec<KbEntry>, ImportError> {
    let mut entries: Vec<KbEntry> = Vec::new();
    let mut by_intent: std::collections::HashMap<String, usize> = Default::default();
    let mut add = |line_no: usize, l: Line| -> Result<(), ImportError> {
        let bad = |message: &str| ImportError {
            line: line_no,
            message: message.into(),
        };
        let intent = l.intent.trim();
        if intent.is_empty() || intent.chars().count() > MAX_INTENT_CHARS {
            return Err(bad("intent must be 1 to 128 characters"));
        }
        let example = l.text.trim();
        check_text(example, MAX_TEXT_CHARS).map_err(|e| bad(&e.to_string()))?;
        match check_text(&l.answer, MAX_TEXT_CHARS) {
            // No answer: the bot hands the intent to a person.
            Ok(()) | Err(TextError::Empty) => {}
            Err(e) => return Err(bad(&format!("answer: {e}"))),
        }
        let i = *by_intent.entry(intent.to_string()).or_insert_with(|| {
            entries.push(KbEntry {
                intent: intent.to_string(),
                examples: Vec::new(),
                answer: String::new(),
                team: String::new(),
            });
            entries.len() - 1
        });
        let e = &mut entries[i];
        if e.examples.len() == MAX_EXAMPLES {
            return Err(bad("more than 10000 example questions for one intent"));
        }
        let size: usize = e.examples.iter().map(String::len).sum::<usize>()
            + example.len()
            + e.answer.len().max(l.answer.len());
        if size > MAX_ENTRY_BYTES {
            return Err(bad("one intent's examples and answer exceed 4 MiB"));
        }
        e.examples.push(example.to_string());
        if !l.answer.trim().is_empty() {
            e.answer = l.answer.trim().to_string();
        }
        if !l.team.trim().is_empty() {
            e.team = l.team.trim().to_string();
        }
        Ok(())
    };
    match format {
        Format::JsonLines => {
            for (i, raw) in text.lines().enumerate() {
                if raw.trim().is_empty() {
                    continue;
                }
                let l: Line = serde_json::from_str(raw).map_err(|e| ImportError {
                    line: i + 1,
                    message: e.to_string(),
                })?;
                add(i + 1, l)?;
            }
        }
        Format::Csv => {
            let mut reader = csv::ReaderBuilder::new()
                .flexible(false)
                .from_reader(text.as_bytes());
            for (i, row) in reader.deserialize::<Line>().enumerate() {
                // Line 1 is the header.
                let l = row.map_err(|e| ImportError {
                    line: i + 2,
                    message: e.to_string(),
                })?;
                add(i + 2, l)?;
            }
        }
    }
    Ok(entries)
}

/// Writes every entry, one example question per line or row (the import format).
pub fn export<'a>(entries: impl Iterator<Item = &'a KbEntry>, format: Format) -> String {
    let lines = entries.flat_map(|e| {
        e.examples.iter().map(move |text| Line {
            intent: e.intent.clone(),
            text: text.clone(),
            answer: e.answer.clone(),
            team: e.team.clone(),
        })
    });
    match format {
        Format::JsonLines => {
            let mut out = String::new();
            for l in lines {
                out.push_str(&serde_json::to_string(&l).expect("invariant: strings serialise"));
                out.push('\n');
            }
            out
        }
        Format::Csv => {
            let mut w = csv::Writer::from_writer(Vec::new());
            w.write_record(["intent", "text", "answer", "team"])
                .expect("invariant: writing to memory");
            for l in lines {
                w.write_record([&l.intent, &l.text, &l.answer, &l.team])
                    .expect("invariant: writing to memory");
            }
            String::from_utf8(w.into_inner().expect("invariant: writing to memory"))
                .expect("invariant: CSV of UTF-8 fields is UTF-8")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jsonl_lines_gather_into_entries() {
        let file = r#"{"intent":"returns","text":"我要退货","answer":"30天内可退货"}
{"intent":"hours","text":"when do you open"}

{"intent":"returns","text":"can I return this","team":"after-sales"}"#;
        let entries = parse_import(file, Format::JsonLines).unwrap();
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[0].examples, ["我要退货", "can I return this"]);
        assert_eq!(entries[0].answer, "30天内可退货");
        assert_eq!(entries[0].team, "after-sales");
        assert_eq!(entries[1].answer, "");
    }

    #[test]
    fn csv_round_trips_through_export() {
        let entries = vec![KbEntry {
            intent: "hours".into(),
            examples: vec!["when, exactly, do you open?".into(), "营业时间".into()],
            answer: "9 to 5, \"every\" day".into(),
            team: String::new(),
        }];
        let kb = KnowledgeBase::new(entries.clone());
        for format in [Format::Csv, Format::JsonLines] {
            let text = export(kb.entries(), format);
            assert_eq!(parse_import(&text, format).unwrap(), entries, "{format:?}");
        }
    }

    #[test]
    fn bad_lines_are_named() {
        let err = parse_import(
            "{\"intent\":\"a\",\"text\":\"x\"}\nnot json",
            Format::JsonLines,
        )
        .unwrap_err();
        assert_eq!(err.line, 2);
        let err = parse_import("{\"intent\":\"\",\"text\":\"x\"}", Format::JsonLines).unwrap_err();
        assert!(err.message.contains("intent"), "{err}");
        let err = parse_import("intent,text,answer,team\na,b\n", Format::Csv).unwrap_err();
        assert_eq!(err.line, 2);
        // Example questions and answers are checked as messages are (an answer may be empty).
        let err = parse_import("{\"intent\":\"a\",\"text\":\" \"}", Format::JsonLines).unwrap_err();
        assert_eq!(err.message, "text must not be empty");
        let long = format!(
            "{{\"intent\":\"a\",\"text\":\"x\",\"answer\":\"{}\"}}",
            "y".repeat(MAX_TEXT_CHARS + 1)
        );
        let err = parse_import(&long, Format::JsonLines).unwrap_err();
        assert_eq!(
            err.message,
            "answer: text has 4001 characters; the limit is 4000"
        );
    }

    #[test]
    fn one_entry_stays_far_below_the_journal_frame_limit() {
        let line = format!(
            "{{\"intent\":\"big\",\"text\":\"{}\"}}\n",
            "x".repeat(3_900)
        );
        let file = line.repeat(1_100);
        let err = parse_import(&file, Format::JsonLines).unwrap_err();
        assert!(err.message.contains("4 MiB"), "{err}");
        assert!(parse_import(&line.repeat(1_000), Format::JsonLines).is_ok());
    }

    #[test]
    fn nearest_finds_the_entry_and_changes_rebuild() {
        let kb = KnowledgeBase::new(parse_import(
            "{\"intent\":\"returns\",\"text\":\"我要退货\"}\n{\"intent\":\"hours\",\"text\":\"营业时间是几点\"}",
            Format::JsonLines,
        )
        .unwrap());
        assert_eq!(kb.nearest("怎么退货").unwrap().entry.intent, "returns");
        let kb = kb.with_changes(&[], &["returns".to_string()]);
        assert_eq!(
            kb.nearest("怎么退货").map(|m| m.entry.intent.as_str()),
            None
        );
        assert_eq!(kb.nearest("几点营业").unwrap().entry.intent, "hours");
    }

    fn big_kb() -> KnowledgeBase {
        let topics = [
            ("refund", "money back"),
            ("parcel", "tracking delivery"),
            ("hours", "opening time"),
        ];
        KnowledgeBase::new(topics.iter().map(|(a, b)| KbEntry {
            intent: a.to_string(),
            examples: (0..10).map(|i| format!("{a} {b} question {i}")).collect(),
            answer: format!("about {a}"),
            team: String::new(),
        }))
    }

    #[test]
    fn small_knowledge_bases_answer_from_the_nearest_example() {
        let kb = KnowledgeBase::new(parse_import(
            "{\"intent\":\"returns\",\"text\":\"我要退货\"}\n{\"intent\":\"hours\",\"text\":\"营业时间是几点\"}",
            Format::JsonLines,
        )
        .unwrap());
        assert!(!kb.trainable());
        let m = kb.classify("怎么退货").unwrap();
        assert_eq!(m.entry.intent, "returns");
        assert_eq!(m.score, kb.nearest("怎么退货").unwrap().score);
    }

    #[test]
    fn an_installed_model_answers_and_survives_changes() {
        let kb = big_kb();
        assert!(kb.trainable());
        assert!(kb.model().is_none());
        let before = kb.classify("parcel delivery").unwrap();
        assert_eq!(before.entry.intent, "parcel");
        let trained = Arc::new(kb.train(1));
        kb.install(Arc::clone(&trained));
        let after = kb.classify("parcel delivery").unwrap();
        assert_eq!(after.entry.intent, "parcel");
        let p = trained.model.predict("parcel delivery").unwrap();
        assert_eq!(after.score, p.score);
        // The next knowledge base starts with this model; a deleted intent falls back.
        let next = kb.with_changes(&[], &["parcel".to_string()]);
        assert!(next.trainable());
        assert!(Arc::ptr_eq(&next.model().unwrap(), &trained));
        let m = next.classify("parcel delivery money").unwrap();
        assert_ne!(m.entry.intent, "parcel");
        // A knowledge base too small to train on drops the model.
        let small = kb.with_changes(&[], &["parcel".to_string(), "hours".to_string()]);
        assert!(small.model().is_none());
    }
}
