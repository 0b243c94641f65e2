//! kefud — an omnichannel customer-service engine for a Raspberry Pi.
//!
//! Module map (the data flows top to bottom):
//! - [`config`]: the TOML configuration and its validation.
//! - [`http`]: the router; the visitor WebSocket, the agent API and the agents' live feed.
//! - [`channel`]: the other ways in and out (MQTT, the HTTP API channel and its webhooks,
//!   WeChat, an integrator's own adapter) behind one trait, and the outbox replies leave by.
//! - `dispatch`: the single thread that decides — commands become journaled operations.
//! - [`conversation`]: the pure conversation state machine it decides with.
//! - [`routing`]: the knowledge base, the bot, assignment, summaries; [`intent`]: which
//!   knowledge-base entry a message is about.
//! - [`op`]: the operations, and their binary journal encoding; [`model`]: the identifiers and
//!   small value types they carry.
//! - [`journal`]: the write-ahead log — framing, segments, group commit, recovery.
//! - `fanout`: live delivery of committed records, encoded once per record.
//! - `store`: the SQLite projection of the journal (plus accounts), and its queries.
//! - [`wire`]: the contract's JSON frames.
//! - [`wechat_crypto`]: WeChat's signatures and safe-mode decryption, below the config (which
//!   decodes the key) and the WeChat callback (which uses it).
//! - `auth`: agents, passwords, tokens; `login`: login limits, the password gate, device
//!   proofs.
//! - [`httpc`]: the small HTTP client of kefud's outgoing calls (webhooks, WeChat, a LAN
//!   language model).
//! - [`alloc_count`]: the counting allocator behind `/metrics`' allocation figure.
//! - [`admin`]: the `kefud agent|kb|apikey|journal|backup|restore|healthcheck ...` commands;
//!   `apikeys`: the HTTP channel's keys.
//! - `backup`: consistent backups of a running daemon's data directory, and their restore;
//!   [`export`]: contacts, conversations and messages as JSON Lines.
//! - [`update`]: signed update bundles (made, checked, handed to the root helper); [`tar`]:
//!   the ustar archives of backups and bundles.
//! - [`tls`]: HTTPS on the shop's network: the box's own certificate authority and the
//!   server certificate it renews.
//! - [`broker_saver`]: `kefud broker-saver`, which makes the local mosquitto save what it
//!   acknowledged at once.
//! - `qr`: QR codes as SVG (the printable code of the chat address).
//! - `hours`: the shop's business hours and the pure "is it open" decision.
//! - `clock`: wall time on a board without a real-time clock, and timers that ignore its
//!   steps.
//! - [`app`]: wiring, startup and shutdown order; [`reload`]: SIGHUP config reload;
//!   `systemd`, [`telemetry`]: the host. `error`: what stops the daemon ([`Error`]).
//!
//! Visibility: a module is `pub` only because something outside this crate uses it: the
//! `kefud` command (`src/main.rs`), the integration tests and fuzz targets (`tests/`), the
//! intent benchmark (`benches/`), the adapter example (`examples/`) or the load tool
//! (`tools/kefud-load`: `app`, `httpc`). The others are the crate's own.

pub mod admin;
pub mod alloc_count;
mod apikeys;
pub mod app;
mod auth;
mod backup;
pub mod broker_saver;
pub mod channel;
mod clock;
pub mod cluster;
pub mod config;
pub mod contact_profile;
pub mod conversation;
mod dispatch;
mod error;
pub mod export;
mod fanout;
pub mod hours;
pub mod http;
pub mod httpc;
pub mod import;
pub mod intent;
pub mod journal;
mod login;
pub mod model;
pub mod op;
mod qr;
pub mod reload;
pub mod routing;
pub mod signed_identity;
mod store;
mod systemd;
pub mod tar;
pub mod telemetry;
pub mod tls;
pub mod update;
pub mod wechat_crypto;
pub mod wire;

pub use app::run;
pub use error::{Error, Result};
