//! kefud — an omnichannel customer-service engine for a Raspberry Pi.
//!
//! Module map (the data flows top to bottom):
//! - [`config`]: the TOML configuration and its validation.
//! - [`http`]: the router; the visitor WebSocket, the agent API and the agents' live feed.
//! - [`dispatch`]: the single thread that decides — commands become journaled operations.
//! - [`conversation`]: the pure conversation state machine it decides with.
//! - [`op`]: the operations, and their binary journal encoding.
//! - [`journal`]: the write-ahead log — framing, segments, group commit, recovery.
//! - [`fanout`]: live delivery of committed records, encoded once per record.
//! - [`store`]: the SQLite projection of the journal (plus accounts), and its queries.
//! - [`wire`]: the contract's JSON frames.
//! - [`wechat_crypto`]: WeChat's signatures and safe-mode decryption, below the config (which
//!   decodes the key) and the WeChat callback (which uses it).
//! - [`auth`]: agents, passwords, tokens; [`login`]: login limits, the password gate, device
//!   proofs.
//! - [`alloc_count`]: the counting allocator behind `/metrics`' allocation figure.
//! - [`admin`]: the `kefud agent|kb|apikey ...` commands; [`apikeys`]: the HTTP channel's keys.
//! - [`backup`]: consistent backups of a running daemon's data directory, and their restore;
//!   [`export`]: contacts, conversations and messages as JSON Lines.
//! - [`clock`]: wall time on a board without a real-time clock, and timers that ignore its steps.
//! - [`app`]: wiring, startup and shutdown order; [`reload`]: SIGHUP config reload;
//!   [`systemd`], [`telemetry`]: the host.

pub mod admin;
pub mod alloc_count;
pub mod apikeys;
pub mod app;
pub mod auth;
pub mod backup;
pub mod channel;
pub mod clock;
pub mod config;
pub mod conversation;
pub mod dispatch;
pub mod error;
pub mod export;
pub mod fanout;
pub mod http;
pub mod httpc;
pub mod intent;
pub mod journal;
pub mod login;
pub mod model;
pub mod op;
pub mod reload;
pub mod routing;
pub mod store;
pub mod systemd;
pub mod telemetry;
pub mod wechat_crypto;
pub mod wire;

pub use app::run;
pub use error::{Error, Result};
