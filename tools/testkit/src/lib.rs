//! kefud-testkit: what kefud's integration tests (`tests/`) and its load tool
//! (`tools/kefud-load`) both need to run kefud and its neighbours as real processes on
//! loopback. It knows kefud only as a binary and a port: it does not link the daemon.
//!
//! - [`daemon`]: the kefud launcher: a config on loopback port 0 in a data directory, the
//!   binary spawned, ready once it listens and `/healthz` answers 200, its whole log kept;
//!   SIGTERM or SIGKILL to stop.
//! - [`mosquitto`]: the mosquitto launcher: a given config (the SD image's) put on a free
//!   loopback port with its persistence in a directory of ours, ready once the port accepts.
//! - [`proc`]: figures of a running process from `/proc/PID` (resident memory, peak,
//!   threads, open descriptors).
//!
//! Whatever is started here is killed when its handle is dropped, a failed test or an
//! interrupted load run included, and a directory the kit created is removed after the
//! process is gone. Every wait is bounded.

pub mod daemon;
pub mod mosquitto;
pub mod proc;

pub use daemon::{write_config, Daemon, Launch};
pub use mosquitto::Mosquitto;

/// A loopback port free at the time of the call (for a process that needs its port in its
/// config; kefud itself is given port 0 and says which it got).
///
/// # Errors
/// Binding `127.0.0.1:0` failed.
pub fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}
