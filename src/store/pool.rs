//! A small pool of read connections used from `spawn_blocking`.
//!
//! Connections are opened lazily and kept for reuse. At most `max_open` run at once: a burst
//! of requests waits for a turn (asynchronously, holding no thread), so a flood of requests
//! never becomes a flood of blocking threads, SQLite connections and file descriptors.

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
    /// At most `max_open` connections exist, so `idle` never holds more.
    turns: Arc<tokio::sync::Semaphore>,
}

impl ReadPool {
    pub fn new(path: PathBuf, max_open: usize) -> Self {
        ReadPool {
            inner: Arc::new(Inner {
                path,
                idle: Mutex::new(Vec::new()),
                turns: Arc::new(tokio::sync::Semaphore::new(max_open)),
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
        let turn = Arc::clone(&self.inner.turns)
            .acquire_owned()
            .await
            .map_err(|_| E::from(Error::Closed))?;
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || {
            let _turn = turn;
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
            inner
                .idle
                .lock()
                .expect("invariant: pool lock is never poisoned")
                .push(conn);
            out
        })
        .await
        .map_err(|_| E::from(Error::Closed))?
    }
}
