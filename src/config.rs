//! Configuration: TOML, every key optional with a documented default (`config/kefud.toml`).
//!
//! Unknown keys are refused by serde (`deny_unknown_fields`), with the key's name and line;
//! values are then checked by [`Config::validate`], which names the key of every problem.
//! Every secret (the MQTT password, webhook secrets, the WeChat account's token, app secret
//! and EncodingAESKey) is a [`Secret`], so no `Debug` of a config, in a log or a panic, shows
//! one. The EncodingAESKey is decoded once, as the file is parsed: the config holds the key.
//!
//! Files: this one (the sections and their defaults), `channels.rs` (the channel adapters'
//! sections), `cluster.rs` (`[cluster]`), `tls.rs` (`[tls]`), `validate.rs` (the checks), `tests.rs`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

mod channels;
pub mod cluster;
pub mod tls;
mod validate;

pub use channels::{Mqtt, Outbox, Webhook, Wechat};

pub use cluster::Cluster;
pub use tls::Tls;

/// A secret from the config file. Its `Debug` prints `(redacted)` whatever it holds, and it has
/// no `Display`, so a secret can only leave through [`Secret::expose`]. It deserializes as the
/// value it wraps, and compares by value (a reload tells a changed secret from the same one).
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret<T>(T);

impl<T> Secret<T> {
    /// The secret itself, for the one place that uses it (a signature, a login).
    pub fn expose(&self) -> &T {
        &self.0
    }
}

impl<T> std::fmt::Debug for Secret<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("(redacted)")
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
#[derive(Default)]
pub struct Config {
    pub server: Server,
    pub storage: Storage,
    pub journal: Journal,
    pub store: Store,
    pub limits: Limits,
    pub conversations: Conversations,
    pub auth: Auth,
    pub routing: Routing,
    pub mqtt: Mqtt,
    pub webhooks: Vec<Webhook>,
    pub wechat: Wechat,
    pub outbox: Outbox,
    pub uploads: Uploads,
    pub backup: Backup,
    pub cluster: Cluster,
    pub tls: Tls,
    pub update: Update,
    pub log: Log,
}

/// Signed update bundles uploaded in the console (`update`).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Update {
    /// The release key's public half that uploaded bundles must be signed with. The root
    /// helper that installs a bundle checks it again with the packaged key
    /// (`/usr/share/kefud/update-key.pub`) whatever this says.
    pub public_key: PathBuf,
    /// Where a checked bundle or a rollback request is handed to the root helper, whose
    /// path unit watches the packaged default (kefud's state directory).
    pub spool_dir: PathBuf,
}

impl Default for Update {
    fn default() -> Self {
        Update {
            public_key: PathBuf::from(crate::update::PUBLIC_KEY_PATH),
            spool_dir: PathBuf::from(crate::update::SPOOL_DIR),
        }
    }
}

/// Backups the daemon takes itself (`backup::schedule`); read again at every check, so a
/// reload applies at once.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Backup {
    /// Where scheduled backups go, each in a directory `kefud-backup-...` of its own (a USB
    /// stick, the boot partition: anywhere but the card the data lives on). Empty: none.
    pub directory: PathBuf,
    /// Seconds between two backups (counted from the newest one there).
    pub interval_secs: u64,
    /// How many scheduled backups to keep; older ones are deleted after a new one is made.
    pub keep: usize,
}

impl Default for Backup {
    fn default() -> Self {
        Backup {
            directory: PathBuf::new(),
            interval_secs: 86_400,
            keep: 7,
        }
    }
}

/// What anonymous visitors may upload (images in the chat), per day.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Uploads {
    /// MiB one visitor id may upload in 24 hours.
    pub per_visitor_daily_mib: u64,
    /// MiB one address may upload in 24 hours (IPv6 by /64; 127.0.0.1 and ::1 exempt).
    pub per_address_daily_mib: u64,
    /// MiB all visitors together may upload in 24 hours.
    pub total_daily_mib: u64,
    /// Seconds after which an upload no message refers to is deleted.
    pub orphan_after_secs: u64,
}

impl Default for Uploads {
    fn default() -> Self {
        Uploads {
            per_visitor_daily_mib: 50,
            per_address_daily_mib: 100,
            total_daily_mib: 1024,
            orphan_after_secs: 3600,
        }
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Server {
    /// Where HTTP and WebSockets listen.
    pub listen: SocketAddr,
    /// Seconds a graceful shutdown may take before connections are cut.
    pub shutdown_grace_secs: u64,
    /// Web origins whose pages may open the visitor WebSocket (the shop's site embedding
    /// widget.js); `"*"` allows any. The console's own origin is always allowed.
    pub widget_origins: Vec<String>,
    /// Open connections at most (lowered to what the descriptor limit allows, keeping
    /// descriptors for the journal and the store); more are closed at once.
    pub max_connections: usize,
    /// Open connections from one address at most (an IPv6 client by its /64; loopback is
    /// exempt); 0: no cap.
    pub max_connections_per_address: usize,
    /// Seconds a client may take to send a request's headers, and an idle keep-alive
    /// connection may stay.
    pub header_read_timeout_secs: u64,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Storage {
    /// Holds `journal/` and `kefud.db`.
    pub data_dir: PathBuf,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Journal {
    pub segment_bytes: u64,
    pub max_batch_bytes: usize,
    pub retain_segments: usize,
    /// Entries waiting for the writer, at most; beyond it senders wait.
    pub queue_depth: usize,
}

/// How the SQLite store follows the journal (see `store::cadence`).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Store {
    /// A transaction of the store is committed at most this long after its first record.
    pub commit_interval_ms: u64,
    /// The store is checkpointed (made durable in kefud.db) at most this long after the
    /// oldest commit it has not yet checkpointed...
    pub checkpoint_interval_secs: u64,
    /// ...or once this much has been written to its WAL.
    pub checkpoint_wal_mib: u64,
    /// The page cache of the store's writer: with more, fewer of the pages it changes are
    /// read back from the file (an import runs with at least 32).
    pub cache_mib: u64,
    /// Live or bulk loading (`store::applier::Loading`); not a setting: an import loads in
    /// bulk.
    #[serde(skip)]
    pub loading: crate::store::applier::Loading,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    pub max_frame_bytes: usize,
    /// Longest message text, in characters, from any entry ([`crate::model::check_text`]).
    pub max_text_chars: usize,
    pub messages_per_second: u32,
    pub burst: u32,
    /// Unacknowledged messages per connection; beyond it the connection stops reading.
    pub max_inflight: usize,
    /// Frames queued for one live subscriber before it is dropped (and resumes).
    pub subscriber_queue: usize,
    /// Seconds a visitor's socket may stay silent (no frame, no answer to the pings sent
    /// after two fifths of it) before it is closed.
    pub visitor_silence_secs: u64,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Conversations {
    pub resolved_idle_after_secs: u64,
    pub recent_client_ids: usize,
    /// Contacts the dispatcher keeps in memory at most (the least recently used beyond are
    /// read from the store again when they come back).
    pub cached_contacts: usize,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Auth {
    pub token_ttl_secs: u64,
    pub login_failures_per_minute: u32,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Routing {
    /// Score (0..1) at or above which the bot answers from the knowledge base: the trained
    /// model's calibrated probability of being right, or, for a knowledge base too small to
    /// train on, the nearest example question's cosine.
    pub bot_threshold: f32,
    /// Words or phrases with which a customer asks for a person (matched ignoring case; Latin
    /// ones as whole words).
    pub human_keywords: Vec<String>,
    /// Whether conversations handed to a person are assigned by the scheduler (otherwise
    /// agents take them by hand from the queue).
    pub auto_assign: bool,
    /// Conversations with more messages than this get a summary.
    pub summary_after_messages: usize,
    /// Sentences in a summary.
    pub summary_sentences: usize,
    /// An OpenAI-compatible endpoint on the LAN that writes summaries instead (empty: off).
    pub llm_url: String,
    pub llm_model: String,
    pub llm_timeout_secs: u64,
}

impl Default for Routing {
    fn default() -> Self {
        Routing {
            bot_threshold: 0.6,
            human_keywords: [
                "人工",
                "真人",
                "转人工",
                "agent",
                "human",
                "person",
                "operator",
            ]
            .map(String::from)
            .to_vec(),
            auto_assign: true,
            summary_after_messages: 10,
            summary_sentences: 3,
            llm_url: String::new(),
            llm_model: String::new(),
            llm_timeout_secs: 20,
        }
    }
}

impl Routing {
    /// The language-model summariser, when one is configured.
    pub fn llm(&self) -> Option<crate::routing::llm::LlmConfig> {
        (!self.llm_url.is_empty()).then(|| crate::routing::llm::LlmConfig {
            url: self.llm_url.clone(),
            model: self.llm_model.clone(),
            timeout: std::time::Duration::from_secs(self.llm_timeout_secs),
        })
    }

    /// The bot's settings, as the dispatcher takes them.
    pub fn bot(&self) -> crate::routing::bot::BotConfig {
        crate::routing::bot::BotConfig {
            threshold: self.bot_threshold,
            human_keywords: self
                .human_keywords
                .iter()
                .map(|k| k.to_lowercase())
                .collect(),
        }
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Log {
    /// A tracing filter: `info`, `kefud=debug,info`...; `RUST_LOG` overrides it.
    pub level: String,
}

impl Default for Server {
    fn default() -> Self {
        Server {
            listen: SocketAddr::from(([0, 0, 0, 0], 8080)),
            shutdown_grace_secs: 5,
            widget_origins: vec!["*".into()],
            max_connections: 120_000,
            max_connections_per_address: 256,
            header_read_timeout_secs: 10,
        }
    }
}

impl Default for Storage {
    fn default() -> Self {
        Storage {
            data_dir: PathBuf::from("./kefud-data"),
        }
    }
}

impl Default for Journal {
    fn default() -> Self {
        Journal {
            segment_bytes: 16 * 1024 * 1024,
            max_batch_bytes: 1024 * 1024,
            retain_segments: 2,
            queue_depth: 8192,
        }
    }
}

impl Default for Store {
    fn default() -> Self {
        Store {
            commit_interval_ms: 5000,
            checkpoint_interval_secs: 300,
            checkpoint_wal_mib: 16,
            cache_mib: 8,
            loading: crate::store::applier::Loading::Live,
        }
    }
}

impl Store {
    pub fn cadence(&self) -> crate::store::cadence::CadenceConfig {
        crate::store::cadence::CadenceConfig {
            commit_interval: Duration::from_millis(self.commit_interval_ms),
            // Records held in memory until a commit (a few MB at most).
            max_records: 10_000,
            min_gap: Duration::from_millis(20),
            checkpoint_interval: Duration::from_secs(self.checkpoint_interval_secs),
            checkpoint_pages: self.checkpoint_wal_mib * 256,
            retry: Duration::from_secs(1),
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_frame_bytes: 16 * 1024,
            max_text_chars: 4000,
            messages_per_second: 20,
            burst: 40,
            max_inflight: 64,
            subscriber_queue: 256,
            visitor_silence_secs: 150,
        }
    }
}

impl Default for Conversations {
    fn default() -> Self {
        Conversations {
            resolved_idle_after_secs: 24 * 3600,
            recent_client_ids: 64,
            cached_contacts: 10_000,
        }
    }
}

impl Default for Auth {
    fn default() -> Self {
        Auth {
            token_ttl_secs: 12 * 3600,
            login_failures_per_minute: 5,
        }
    }
}

impl Default for Log {
    fn default() -> Self {
        Log {
            level: "info".into(),
        }
    }
}

/// One problem with one key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {message}")]
pub struct ConfigError {
    pub key: &'static str,
    pub message: String,
}

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read config {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config {}: {message}", path.display())]
    Parse { path: PathBuf, message: String },
    #[error("config {}: {}", path.display(), errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Invalid {
        path: PathBuf,
        errors: Vec<ConfigError>,
    },
}

impl Config {
    /// Reads, parses and validates a config file.
    ///
    /// # Errors
    /// [`LoadError`] naming the file and every offending key.
    pub fn load(path: &Path) -> Result<Config, LoadError> {
        let text = std::fs::read_to_string(path).map_err(|source| LoadError::Read {
            path: path.into(),
            source,
        })?;
        let cfg = Config::parse(&text).map_err(|message| LoadError::Parse {
            path: path.into(),
            message,
        })?;
        let errors = cfg.validate();
        if errors.is_empty() {
            Ok(cfg)
        } else {
            Err(LoadError::Invalid {
                path: path.into(),
                errors,
            })
        }
    }

    /// # Errors
    /// The TOML error, which names the unknown or mistyped key and its line.
    pub fn parse(text: &str) -> Result<Config, String> {
        toml::from_str(text).map_err(|e| e.to_string().trim_end().to_string())
    }

    /// This configuration as a reload can apply it to a daemon running `running`: keys that
    /// only take effect at startup keep their running values, and are named when they differ.
    ///
    /// Restart-only: the listen addresses (HTTP, and HTTPS with `tls.enabled`), the data
    /// directory and the journal (bound or opened once), and
    /// `conversations.recent_client_ids` (the dispatcher's idempotency rings rely on their
    /// length meaning "every client id this contact sent", which a new length breaks).
    #[must_use]
    pub fn reloadable_from(mut self, running: &Config) -> (Config, Vec<&'static str>) {
        let mut needs_restart = Vec::new();
        if self.server.listen != running.server.listen {
            needs_restart.push("server.listen");
            self.server.listen = running.server.listen;
        }
        let listener_keys = [
            (
                self.server.max_connections != running.server.max_connections,
                "server.max_connections",
            ),
            (
                self.server.max_connections_per_address
                    != running.server.max_connections_per_address,
                "server.max_connections_per_address",
            ),
            (
                self.server.header_read_timeout_secs != running.server.header_read_timeout_secs,
                "server.header_read_timeout_secs",
            ),
        ];
        for (changed, key) in listener_keys {
            if changed {
                needs_restart.push(key);
            }
        }
        self.server.max_connections = running.server.max_connections;
        self.server.max_connections_per_address = running.server.max_connections_per_address;
        self.server.header_read_timeout_secs = running.server.header_read_timeout_secs;
        if self.storage != running.storage {
            needs_restart.push("storage.data_dir");
            self.storage = running.storage.clone();
        }
        if self.journal != running.journal {
            needs_restart.push("journal");
            self.journal = running.journal.clone();
        }
        // HTTPS is bound once; whether the console redirects to it is read per request.
        if self.tls.enabled != running.tls.enabled || self.tls.listen != running.tls.listen {
            needs_restart.push("tls");
            self.tls.enabled = running.tls.enabled;
            self.tls.listen = running.tls.listen;
        }
        if self.conversations.recent_client_ids != running.conversations.recent_client_ids {
            needs_restart.push("conversations.recent_client_ids");
            self.conversations.recent_client_ids = running.conversations.recent_client_ids;
        }
        if self.conversations.cached_contacts != running.conversations.cached_contacts {
            needs_restart.push("conversations.cached_contacts");
            self.conversations.cached_contacts = running.conversations.cached_contacts;
        }
        if self.mqtt != running.mqtt {
            needs_restart.push("mqtt");
            self.mqtt = running.mqtt.clone();
        }
        if self.webhooks != running.webhooks {
            needs_restart.push("webhooks");
            self.webhooks = running.webhooks.clone();
        }
        if self.wechat != running.wechat {
            needs_restart.push("wechat");
            self.wechat = running.wechat.clone();
        }
        if self.outbox != running.outbox {
            needs_restart.push("outbox");
            self.outbox = running.outbox.clone();
        }
        (self, needs_restart)
    }

    /// Channels whose conversation events (opened, resolved) go out: those with a webhook.
    pub fn event_channels(&self) -> Vec<String> {
        self.webhooks.iter().map(|w| w.channel.clone()).collect()
    }

    pub fn journal_dir(&self) -> PathBuf {
        self.storage.data_dir.join("journal")
    }

    pub fn db_path(&self) -> PathBuf {
        self.storage.data_dir.join("kefud.db")
    }
}

#[cfg(test)]
mod tests;
