//! The intent trainer: one background thread that trains a model for the newest knowledge base
//! and installs it there, off the dispatcher thread.
//!
//! The dispatcher [`Trainer::submit`]s every knowledge base it publishes. The thread takes the
//! newest submission (older ones still queued are skipped: a burst of changes trains once),
//! skips knowledge bases already dropped (it holds them weakly) or too small to train on, and
//! otherwise trains ([`KnowledgeBase::train`], pure) and [`KnowledgeBase::install`]s the model,
//! an atomic swap of an `Arc`. Until then the knowledge base answers with its predecessor's
//! model or its nearest-example index. The thread ends when the `Trainer` is dropped.

use std::sync::mpsc;
use std::sync::{Arc, Weak};
use std::time::Instant;

use super::knowledge::KnowledgeBase;

/// Threads one training uses: half the cores (the dispatcher and store keep the rest), 1 to 4.
pub fn threads() -> usize {
    std::thread::available_parallelism()
        .map_or(1, |n| n.get() / 2)
        .clamp(1, 4)
}

pub struct Trainer {
    tx: mpsc::Sender<Weak<KnowledgeBase>>,
}

impl Trainer {
    /// Starts the training thread.
    ///
    /// # Panics
    /// If the thread cannot be spawned.
    pub fn spawn() -> Trainer {
        let (tx, rx) = mpsc::channel::<Weak<KnowledgeBase>>();
        std::thread::Builder::new()
            .name("intent-train".into())
            .spawn(move || run(&rx))
            .expect("spawn the intent trainer");
        Trainer { tx }
    }

    /// Asks for a model for `kb` (returns at once).
    pub fn submit(&self, kb: &Arc<KnowledgeBase>) {
        // The thread only ends once `tx` is dropped.
        let _ = self.tx.send(Arc::downgrade(kb));
    }
}

fn run(rx: &mpsc::Receiver<Weak<KnowledgeBase>>) {
    while let Ok(mut next) = rx.recv() {
        while let Ok(newer) = rx.try_recv() {
            next = newer;
        }
        let Some(kb) = next.upgrade() else { continue };
        if !kb.trainable() {
            continue;
        }
        let started = Instant::now();
        let trained = kb.train(threads());
        tracing::info!(
            intents = trained.intents.len(),
            ms = started.elapsed().as_millis() as u64,
            bytes = trained.model.memory_bytes(),
            "intent model trained"
        );
        kb.install(Arc::new(trained));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::op::KbEntry;
    use std::time::Duration;

    #[test]
    fn submitted_knowledge_bases_get_a_model_swapped_in() {
        let trainer = Trainer::spawn();
        let kb = Arc::new(KnowledgeBase::new(["a", "b", "c"].iter().map(|n| {
            KbEntry {
                intent: n.to_string(),
                examples: (0..8).map(|i| format!("{n}{n} word{i}")).collect(),
                answer: String::new(),
                team: String::new(),
            }
        })));
        let small = Arc::new(KnowledgeBase::new([KbEntry {
            intent: "x".into(),
            examples: vec!["hello".into()],
            answer: String::new(),
            team: String::new(),
        }]));
        trainer.submit(&small);
        trainer.submit(&kb);
        let deadline = Instant::now() + Duration::from_secs(30);
        while kb.model().is_none() {
            assert!(Instant::now() < deadline, "no model after 30 s");
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(kb.classify("bb").unwrap().entry.intent, "b");
        assert!(small.model().is_none());
    }
}
