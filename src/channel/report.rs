//! What an adapter reports to the console: its state line, and for adapters that send one
//! request per reply (webhooks, WeChat) the counters of those sends.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// The state (`connected`, `connecting`, `disconnected`, `idle`, `stopped`) and its detail
/// (an adapter may report `stalled` over `connected`, see [`super::Health`]).
pub struct StateLine(Mutex<(&'static str, String)>);

impl StateLine {
    pub fn new(state: &'static str, detail: String) -> Self {
        StateLine(Mutex::new((state, detail)))
    }

    pub fn set(&self, state: &'static str, detail: String) {
        *self.0.lock().expect("invariant: never poisoned") = (state, detail);
    }

    pub fn get(&self) -> (&'static str, String) {
        self.0.lock().expect("invariant: never poisoned").clone()
    }
}

/// Replies sent, confirmed, and failed (each attempt).
#[derive(Default)]
pub struct SendCounters {
    sent: AtomicU64,
    delivered: AtomicU64,
    failed: AtomicU64,
}

impl SendCounters {
    pub fn sent(&self) {
        self.sent.fetch_add(1, Ordering::Relaxed);
    }

    pub fn delivered(&self) {
        self.delivered.fetch_add(1, Ordering::Relaxed);
    }

    pub fn failed(&self) {
        self.failed.fetch_add(1, Ordering::Relaxed);
    }

    pub fn counters(&self) -> [(&'static str, u64); 3] {
        [
            ("sent", self.sent.load(Ordering::Relaxed)),
            ("delivered", self.delivered.load(Ordering::Relaxed)),
            ("failed", self.failed.load(Ordering::Relaxed)),
        ]
    }
}
