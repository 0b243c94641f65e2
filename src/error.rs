//! The daemon's top-level error: what can stop `kefud::run`, each with a message a shop owner
//! can act on.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Journal(#[from] crate::journal::Error),
    #[error(transparent)]
    Store(#[from] crate::store::Error),
    #[error("cannot load conversation state: {0}")]
    Dispatch(#[from] crate::dispatch::DispatchError),
    #[error("cannot create data directory {}: {source}", path.display())]
    DataDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("data directory {} is in use by another running kefud", .0.display())]
    DataDirInUse(PathBuf),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot install the SIGHUP handler: {0}")]
    Signals(std::io::Error),
    #[error("HTTP server failed: {0}")]
    Serve(std::io::Error),
    #[error("the journal failed to write or fsync and latched closed; see the log above (disk full or failing?)")]
    JournalLatched,
    #[error("the SQLite store failed to apply committed records; see the log above (disk full or failing?). Nothing acknowledged is lost: a restart replays the journal")]
    StoreFailed,
    #[error("cannot start the channels: {0}")]
    Channels(#[from] crate::channel::runtime::StartError),
    #[error("cannot read or make this box's node id: {0}")]
    NodeId(std::io::Error),
    #[error("cannot start the cluster link: {0}")]
    Cluster(String),
    #[error("a worker thread panicked: {0}")]
    Worker(&'static str),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
