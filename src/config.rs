//! Configuration: TOML, every key optional with a documented default (`config/kefud.toml`).
//!
//! Unknown keys are refused by serde (`deny_unknown_fields`), with the key's name and line;
//! values are then checked by [`Config::validate`], which names the key of every problem.
//! No secret lives in this file yet; when one does it gets a redacting `Debug`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

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
    pub log: Log,
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
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    pub max_frame_bytes: usize,
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

/// A webhook: replies to one channel's contacts, and its conversations' events, are POSTed
/// to `url` (`crate::channel::webhook`). Read at startup only.
#[derive(Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Webhook {
    /// The channel (as in `POST /api/v1/inbox/{channel}/messages`).
    pub channel: String,
    /// `http://` or `https://`.
    pub url: String,
    /// The HMAC-SHA256 key of the `X-Kefu-Signature` header (at least 16 characters).
    pub secret: String,
    #[serde(default = "Webhook::default_timeout")]
    pub timeout_secs: u64,
}

impl Webhook {
    fn default_timeout() -> u64 {
        10
    }
}

impl std::fmt::Debug for Webhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Webhook")
            .field("channel", &self.channel)
            .field("url", &self.url)
            .field("secret", &"(redacted)")
            .field("timeout_secs", &self.timeout_secs)
            .finish()
    }
}

/// A WeChat official account (`crate::channel::wechat`, `crate::http::wechat`). Read at
/// startup only.
#[derive(Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Wechat {
    pub enabled: bool,
    /// The identities' channel name.
    pub channel: String,
    /// The Token of the account's server configuration (URL verification and signatures).
    pub token: String,
    pub app_id: String,
    pub app_secret: String,
    /// The account's EncodingAESKey, for safe mode (安全模式); empty: plain mode only.
    pub encoding_aes_key: String,
    /// WeChat's API (a stand-in for tests).
    pub api_base: String,
}

impl Default for Wechat {
    fn default() -> Self {
        Wechat {
            enabled: false,
            channel: "wechat".into(),
            token: String::new(),
            app_id: String::new(),
            app_secret: String::new(),
            encoding_aes_key: String::new(),
            api_base: "https://api.weixin.qq.com".into(),
        }
    }
}

impl std::fmt::Debug for Wechat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Wechat")
            .field("enabled", &self.enabled)
            .field("channel", &self.channel)
            .field("token", &"(redacted)")
            .field("app_id", &self.app_id)
            .field("app_secret", &"(redacted)")
            .field("encoding_aes_key", &"(redacted)")
            .field("api_base", &self.api_base)
            .finish()
    }
}

/// How replies are retried on channels that fail (webhooks; MQTT waits for its broker).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Outbox {
    /// Attempts before a reply goes to the dead letters.
    pub max_attempts: u32,
    /// The first retry waits this long; each next one twice as long, up to max_retry_secs.
    pub first_retry_secs: u64,
    pub max_retry_secs: u64,
}

impl Default for Outbox {
    fn default() -> Self {
        Outbox {
            max_attempts: 8,
            first_retry_secs: 2,
            max_retry_secs: 600,
        }
    }
}

/// The MQTT bridge (`crate::channel::mqtt`). Read at startup only.
#[derive(Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Mqtt {
    pub enabled: bool,
    pub host: String,
    pub port: u16,
    /// The session's client id: the broker keeps the session (subscriptions, queued
    /// messages) under it while kefud is away.
    pub client_id: String,
    pub username: String,
    pub password: String,
    /// A PEM file of CA certificates: connect with TLS and trust these. Empty: plain TCP.
    pub ca_file: String,
    pub keep_alive_secs: u64,
    /// Topics are `PREFIX/in/{channel}/{contact_id}` and `PREFIX/out/{channel}/{contact_id}`.
    pub topic_prefix: String,
    /// Largest MQTT packet taken from the broker; the broker's own limit must be lower (a
    /// larger packet breaks the connection, and the broker would send it again forever).
    pub max_packet_bytes: usize,
    /// Replies published and not yet acknowledged by the broker, at most.
    pub max_in_flight: u16,
    /// The channels whose replies go out over MQTT; empty: every channel no other adapter
    /// delivers.
    pub channels: Vec<String>,
}

impl Default for Mqtt {
    fn default() -> Self {
        Mqtt {
            enabled: false,
            host: "127.0.0.1".into(),
            port: 1883,
            client_id: "kefud".into(),
            username: String::new(),
            password: String::new(),
            ca_file: String::new(),
            keep_alive_secs: 30,
            topic_prefix: "kefu".into(),
            max_packet_bytes: 2 * 1024 * 1024,
            max_in_flight: 100,
            channels: Vec::new(),
        }
    }
}

impl std::fmt::Debug for Mqtt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mqtt")
            .field("enabled", &self.enabled)
            .field("host", &self.host)
            .field("port", &self.port)
            .field("client_id", &self.client_id)
            .field("username", &self.username)
            .field(
                "password",
                &if self.password.is_empty() {
                    ""
                } else {
                    "(redacted)"
                },
            )
            .field("ca_file", &self.ca_file)
            .field("keep_alive_secs", &self.keep_alive_secs)
            .field("topic_prefix", &self.topic_prefix)
            .field("max_packet_bytes", &self.max_packet_bytes)
            .field("max_in_flight", &self.max_in_flight)
            .field("channels", &self.channels)
            .finish()
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

    /// Every value problem, each naming its key.
    pub fn validate(&self) -> Vec<ConfigError> {
        let mut errors = Vec::new();
        let mut check = |ok: bool, key: &'static str, message: &str| {
            if !ok {
                errors.push(ConfigError {
                    key,
                    message: message.into(),
                });
            }
        };
        check(
            !self.storage.data_dir.as_os_str().is_empty(),
            "storage.data_dir",
            "must not be empty",
        );
        check(
            (64 * 1024..=1 << 30).contains(&self.journal.segment_bytes),
            "journal.segment_bytes",
            "must be between 65536 and 1073741824",
        );
        check(
            (4096..=64 << 20).contains(&self.journal.max_batch_bytes),
            "journal.max_batch_bytes",
            "must be between 4096 and 67108864",
        );
        check(
            (1..=600_000).contains(&self.store.commit_interval_ms),
            "store.commit_interval_ms",
            "must be between 1 and 600000",
        );
        check(
            (1..=86_400).contains(&self.store.checkpoint_interval_secs),
            "store.checkpoint_interval_secs",
            "must be between 1 and 86400",
        );
        check(
            (1..=1024).contains(&self.store.checkpoint_wal_mib),
            "store.checkpoint_wal_mib",
            "must be between 1 and 1024",
        );
        check(
            (1..=1 << 20).contains(&self.journal.queue_depth),
            "journal.queue_depth",
            "must be between 1 and 1048576",
        );
        check(
            (256..=1 << 20).contains(&self.limits.max_frame_bytes),
            "limits.max_frame_bytes",
            "must be between 256 and 1048576",
        );
        check(
            self.limits.max_text_chars >= 1
                && self.limits.max_text_chars <= self.limits.max_frame_bytes,
            "limits.max_text_chars",
            "must be at least 1 and at most limits.max_frame_bytes",
        );
        check(
            self.limits.messages_per_second >= 1,
            "limits.messages_per_second",
            "must be at least 1",
        );
        check(self.limits.burst >= 1, "limits.burst", "must be at least 1");
        check(
            (1..=4096).contains(&self.limits.max_inflight),
            "limits.max_inflight",
            "must be between 1 and 4096",
        );
        check(
            (8..=65536).contains(&self.limits.subscriber_queue),
            "limits.subscriber_queue",
            "must be between 8 and 65536",
        );
        check(
            self.conversations.resolved_idle_after_secs >= 1,
            "conversations.resolved_idle_after_secs",
            "must be at least 1",
        );
        check(
            (1..=1024).contains(&self.conversations.recent_client_ids),
            "conversations.recent_client_ids",
            "must be 1 to 1024",
        );
        check(
            self.conversations.cached_contacts >= 16,
            "conversations.cached_contacts",
            "must be at least 16",
        );
        check(
            self.auth.token_ttl_secs >= 60,
            "auth.token_ttl_secs",
            "must be at least 60",
        );
        check(
            self.auth.login_failures_per_minute >= 1,
            "auth.login_failures_per_minute",
            "must be at least 1",
        );
        check(
            tracing_subscriber::EnvFilter::try_new(&self.log.level).is_ok(),
            "log.level",
            "is not a valid filter (try \"info\" or \"kefud=debug,info\")",
        );
        check(
            self.routing.bot_threshold > 0.0 && self.routing.bot_threshold <= 1.0,
            "routing.bot_threshold",
            "must be above 0 and at most 1",
        );
        check(
            self.routing
                .human_keywords
                .iter()
                .all(|k| !k.trim().is_empty()),
            "routing.human_keywords",
            "must not contain an empty keyword",
        );
        check(
            self.routing.llm_url.is_empty()
                || crate::routing::llm::endpoint(&self.routing.llm_url).is_ok(),
            "routing.llm_url",
            "must be empty or an http:// or https:// URL such as http://192.168.1.20:8080/v1",
        );
        check(
            (1..=600).contains(&self.routing.llm_timeout_secs),
            "routing.llm_timeout_secs",
            "must be between 1 and 600",
        );
        check(
            (1..=20).contains(&self.routing.summary_sentences),
            "routing.summary_sentences",
            "must be between 1 and 20",
        );
        check(
            (1..=100).contains(&self.outbox.max_attempts),
            "outbox.max_attempts",
            "must be between 1 and 100",
        );
        check(
            self.outbox.first_retry_secs >= 1
                && self.outbox.first_retry_secs <= self.outbox.max_retry_secs
                && self.outbox.max_retry_secs <= 86_400,
            "outbox.first_retry_secs",
            "must be at least 1 and at most outbox.max_retry_secs (at most 86400)",
        );
        check(
            self.webhooks.iter().all(|w| {
                crate::model::bounded_id::<{ crate::model::CHANNEL_MAX }>(&w.channel).is_ok()
                    && w.channel != crate::model::WEB_CHANNEL
            }),
            "webhooks.channel",
            "must be a channel name (letters, digits, -_.:@; not \"web\")",
        );
        check(
            self.webhooks
                .iter()
                .enumerate()
                .all(|(i, w)| self.webhooks[..i].iter().all(|o| o.channel != w.channel)),
            "webhooks.channel",
            "each channel may have one webhook",
        );
        check(
            self.webhooks
                .iter()
                .all(|w| crate::httpc::Url::parse(&w.url).is_ok()),
            "webhooks.url",
            "must be an http:// or https:// URL",
        );
        check(
            self.webhooks.iter().all(|w| w.secret.chars().count() >= 16),
            "webhooks.secret",
            "must be at least 16 characters",
        );
        check(
            self.webhooks
                .iter()
                .all(|w| (1..=120).contains(&w.timeout_secs)),
            "webhooks.timeout_secs",
            "must be between 1 and 120",
        );
        check(
            crate::model::bounded_id::<{ crate::model::CHANNEL_MAX }>(&self.wechat.channel).is_ok()
                && self.wechat.channel != crate::model::WEB_CHANNEL,
            "wechat.channel",
            "must be a channel name (letters, digits, -_.:@; not \"web\")",
        );
        check(
            !self.wechat.enabled
                || (3..=32).contains(&self.wechat.token.len())
                    && self.wechat.token.bytes().all(|b| b.is_ascii_alphanumeric()),
            "wechat.token",
            "must be the account's Token: 3-32 letters or digits",
        );
        check(
            !self.wechat.enabled
                || !self.wechat.app_id.is_empty() && !self.wechat.app_secret.is_empty(),
            "wechat.app_id",
            "wechat.app_id and wechat.app_secret must be set",
        );
        check(
            self.wechat.encoding_aes_key.is_empty()
                || crate::channel::wechat::aes_key(&self.wechat.encoding_aes_key).is_ok(),
            "wechat.encoding_aes_key",
            "must be empty (plain mode) or the account's 43-character EncodingAESKey",
        );
        check(
            crate::httpc::Url::parse(&self.wechat.api_base).is_ok(),
            "wechat.api_base",
            "must be an http:// or https:// URL",
        );
        let topic_safe =
            |s: &str| !s.is_empty() && !s.contains(['+', '#', '/', '\0']) && s.len() <= 64;
        check(
            !self.mqtt.enabled || !self.mqtt.host.is_empty(),
            "mqtt.host",
            "must not be empty",
        );
        check(
            !self.mqtt.enabled || self.mqtt.port != 0,
            "mqtt.port",
            "must not be 0",
        );
        check(
            topic_safe(&self.mqtt.client_id),
            "mqtt.client_id",
            "must be 1-64 characters without '+', '#' or '/'",
        );
        check(
            self.mqtt
                .topic_prefix
                .split('/')
                .all(topic_safe),
            "mqtt.topic_prefix",
            "must be topic levels of 1-64 characters without '+' or '#' (e.g. \"kefu\" or \"shop1/kefu\")",
        );
        check(
            (5..=3600).contains(&self.mqtt.keep_alive_secs),
            "mqtt.keep_alive_secs",
            "must be between 5 and 3600",
        );
        check(
            (self.limits.max_frame_bytes..=256 << 20).contains(&self.mqtt.max_packet_bytes),
            "mqtt.max_packet_bytes",
            "must be at least limits.max_frame_bytes and at most 268435456",
        );
        check(
            (1..=1000).contains(&self.mqtt.max_in_flight),
            "mqtt.max_in_flight",
            "must be between 1 and 1000",
        );
        check(
            self.mqtt.channels.iter().all(|c| {
                crate::model::bounded_id::<{ crate::model::CHANNEL_MAX }>(c).is_ok()
                    && c != crate::model::WEB_CHANNEL
            }),
            "mqtt.channels",
            "must be channel names (letters, digits, -_.:@; not \"web\")",
        );
        check(
            self.server.shutdown_grace_secs <= 60,
            "server.shutdown_grace_secs",
            "must be at most 60",
        );
        check(
            self.uploads.orphan_after_secs >= 2,
            "uploads.orphan_after_secs",
            "must be at least 2",
        );
        check(
            (3..=86_400).contains(&self.limits.visitor_silence_secs),
            "limits.visitor_silence_secs",
            "must be 3 to 86400",
        );
        check(
            self.server.max_connections >= 16,
            "server.max_connections",
            "must be at least 16",
        );
        check(
            (1..=300).contains(&self.server.header_read_timeout_secs),
            "server.header_read_timeout_secs",
            "must be 1 to 300",
        );
        errors
    }

    /// This configuration as a reload can apply it to a daemon running `running`: keys that
    /// only take effect at startup keep their running values, and are named when they differ.
    ///
    /// Restart-only: the listen address, the data directory and the journal (bound or opened
    /// once), and `conversations.recent_client_ids` (the dispatcher's idempotency rings rely
    /// on their length meaning "every client id this contact sent", which a new length breaks).
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
mod tests {
    use super::*;

    #[test]
    fn empty_file_is_the_defaults() {
        assert_eq!(Config::parse("").unwrap(), Config::default());
        assert!(Config::default().validate().is_empty());
    }

    #[test]
    fn the_documented_example_is_the_defaults() {
        let example = include_str!("../config/kefud.toml");
        assert_eq!(Config::parse(example).unwrap(), Config::default());
    }

    #[test]
    fn a_reload_keeps_restart_only_keys_and_names_them() {
        let running = Config::default();
        let edited = Config::parse(
            "[server]\nlisten = \"127.0.0.1:9999\"\n[limits]\nmax_text_chars = 10\n\
             [conversations]\nrecent_client_ids = 8\nresolved_idle_after_secs = 60\n",
        )
        .unwrap();
        let (applied, needs_restart) = edited.reloadable_from(&running);
        assert_eq!(
            needs_restart,
            ["server.listen", "conversations.recent_client_ids"]
        );
        assert_eq!(applied.server.listen, running.server.listen);
        assert_eq!(applied.conversations.recent_client_ids, 64);
        assert_eq!(applied.limits.max_text_chars, 10);
        assert_eq!(applied.conversations.resolved_idle_after_secs, 60);
        let (same, none) = running.clone().reloadable_from(&running);
        assert_eq!((same, none), (running, Vec::<&str>::new()));
    }

    #[test]
    fn unknown_keys_are_refused_by_name() {
        let err = Config::parse("[server]\nlisten = \"127.0.0.1:1\"\nlisen = 3\n").unwrap_err();
        assert!(err.contains("lisen"), "{err}");
        let err = Config::parse("[nope]\n").unwrap_err();
        assert!(err.contains("nope"), "{err}");
    }

    #[test]
    fn bad_values_name_their_key() {
        let err = Config::parse("[server]\nlisten = \"not an address\"\n").unwrap_err();
        assert!(err.contains("listen"), "{err}");
        let cfg = Config::parse(
            "[journal]\nsegment_bytes = 10\n[limits]\nmax_text_chars = 0\n[log]\nlevel = \"[[\"\n",
        )
        .unwrap();
        let keys: Vec<_> = cfg.validate().into_iter().map(|e| e.key).collect();
        assert_eq!(
            keys,
            vec![
                "journal.segment_bytes",
                "limits.max_text_chars",
                "log.level"
            ]
        );
    }
}
