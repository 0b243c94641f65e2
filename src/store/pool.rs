//! A small pool of read connections used from `spawn_blocking`.
//!
//! Connections are opened lazily and at most `max_idle` are kept; under a burst more may be
//! open at once (bounded by tokio's blocking pool), which SQLite's WAL mode serves fine.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use rusqlite::Connection;

use super::Error;

#[derive(Clone)]
pub struct ReadPool {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
    max_idle: usize,
}

impl ReadPool {
    pub fn new(path: PathBuf, max_idle: usize) -> Self {
        ReadPool {
            inner: Arc::new(Inner {
                path,
                idle: Mutex::new(Vec::new()),
                max_idle,
            }),
        }
    }

    /// Runs `f` with a connection on the blocking pool.
    ///
    /// # Errors
    /// Whatever `f` returns, or [`Error::Closed`] if the blocking task panicked.
    pub async fn run<T, E, F>(&self, f: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<Error> + Send + 'static,
        F: FnOnce(&Connection) -> Result<T, E> + Send + 'static,
    {
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || {
            let conn = inner
                .idle
                .lock()
                .expect("invariant: pool lock is never poisoned")
                .pop();
            let conn = match conn {
                Some(c) => c,
                None => super::connect(&inner.path)?,
            };
            let out = f(&conn);
            let mut idle = inner
                .idle
                .lock()
                .expect("invariant: pool lock is never poisoned");
            if idle.len() < inner.max_idle {
                idle.push(conn);
            }
            out
        })
        .await
        .map_err(|_| E::from(Error::Closed))?
    }
}
