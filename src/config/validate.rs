//! The checks of every configuration value, each problem naming its key: what serde's
//! parsing cannot say (ranges, addresses, files, keys that only make sense together).

use super::*;
impl Config {
    /// Every value problem, each naming its key.
    pub fn validate(&self) -> Vec<ConfigError> {
        let mut c = Checks::default();
        self.check_pipeline(&mut c);
        self.check_limits(&mut c);
        self.check_people(&mut c);
        self.check_webhooks(&mut c);
        self.check_wechat(&mut c);
        self.check_mqtt(&mut c);
        self.check_backup(&mut c);
        c.errors.extend(self.cluster.problems());
        c.errors.extend(self.tls.problems(self.server.listen));
        c.errors
    }

    /// Scheduled backups: only checked when they are on.
    fn check_backup(&self, c: &mut Checks) {
        let b = &self.backup;
        if b.directory.as_os_str().is_empty() {
            return;
        }
        c.check(
            b.directory.is_absolute(),
            "backup.directory",
            "must be an absolute path (or empty for no scheduled backups)",
        );
        c.check(
            !b.directory.starts_with(&self.storage.data_dir),
            "backup.directory",
            "must not be inside storage.data_dir: a backup on the same card dies with it",
        );
        c.check(
            (60..=30 * 86_400).contains(&b.interval_secs),
            "backup.interval_secs",
            "must be between 60 and 2592000 (30 days)",
        );
        c.check(
            (1..=1000).contains(&b.keep),
            "backup.keep",
            "must be between 1 and 1000",
        );
    }

    /// The data directory, the journal and the store.
    fn check_pipeline(&self, c: &mut Checks) {
        c.check(
            !self.storage.data_dir.as_os_str().is_empty(),
            "storage.data_dir",
            "must not be empty",
        );
        c.check(
            (64 * 1024..=1 << 30).contains(&self.journal.segment_bytes),
            "journal.segment_bytes",
            "must be between 65536 and 1073741824",
        );
        c.check(
            (4096..=64 << 20).contains(&self.journal.max_batch_bytes),
            "journal.max_batch_bytes",
            "must be between 4096 and 67108864",
        );
        c.check(
            (1..=1024).contains(&self.store.cache_mib),
            "store.cache_mib",
            "must be between 1 and 1024",
        );
        c.check(
            (1..=600_000).contains(&self.store.commit_interval_ms),
            "store.commit_interval_ms",
            "must be between 1 and 600000",
        );
        c.check(
            (1..=86_400).contains(&self.store.checkpoint_interval_secs),
            "store.checkpoint_interval_secs",
            "must be between 1 and 86400",
        );
        c.check(
            (1..=1024).contains(&self.store.checkpoint_wal_mib),
            "store.checkpoint_wal_mib",
            "must be between 1 and 1024",
        );
        c.check(
            (1..=1 << 20).contains(&self.journal.queue_depth),
            "journal.queue_depth",
            "must be between 1 and 1048576",
        );
    }

    /// What one client may do, and the server's connections and uploads.
    fn check_limits(&self, c: &mut Checks) {
        c.check(
            (256..=1 << 20).contains(&self.limits.max_frame_bytes),
            "limits.max_frame_bytes",
            "must be between 256 and 1048576",
        );
        c.check(
            self.limits.max_text_chars >= 1
                && self.limits.max_text_chars <= self.limits.max_frame_bytes,
            "limits.max_text_chars",
            "must be at least 1 and at most limits.max_frame_bytes",
        );
        c.check(
            self.limits.messages_per_second >= 1,
            "limits.messages_per_second",
            "must be at least 1",
        );
        c.check(self.limits.burst >= 1, "limits.burst", "must be at least 1");
        c.check(
            (1..=4096).contains(&self.limits.max_inflight),
            "limits.max_inflight",
            "must be between 1 and 4096",
        );
        c.check(
            (8..=65536).contains(&self.limits.subscriber_queue),
            "limits.subscriber_queue",
            "must be between 8 and 65536",
        );
        c.check(
            self.server.shutdown_grace_secs <= 60,
            "server.shutdown_grace_secs",
            "must be at most 60",
        );
        c.check(
            self.uploads.orphan_after_secs >= 2,
            "uploads.orphan_after_secs",
            "must be at least 2",
        );
        c.check(
            (3..=86_400).contains(&self.limits.visitor_silence_secs),
            "limits.visitor_silence_secs",
            "must be 3 to 86400",
        );
        c.check(
            self.server.max_connections >= 16,
            "server.max_connections",
            "must be at least 16",
        );
        c.check(
            (1..=300).contains(&self.server.header_read_timeout_secs),
            "server.header_read_timeout_secs",
            "must be 1 to 300",
        );
    }

    /// Conversations, agents' logins, the log, routing and the outbox.
    fn check_people(&self, c: &mut Checks) {
        c.check(
            self.conversations.resolved_idle_after_secs >= 1,
            "conversations.resolved_idle_after_secs",
            "must be at least 1",
        );
        c.check(
            (1..=1024).contains(&self.conversations.recent_client_ids),
            "conversations.recent_client_ids",
            "must be 1 to 1024",
        );
        c.check(
            self.conversations.cached_contacts >= 16,
            "conversations.cached_contacts",
            "must be at least 16",
        );
        c.check(
            self.auth.token_ttl_secs >= 60,
            "auth.token_ttl_secs",
            "must be at least 60",
        );
        c.check(
            self.auth.login_failures_per_minute >= 1,
            "auth.login_failures_per_minute",
            "must be at least 1",
        );
        c.check(
            tracing_subscriber::EnvFilter::try_new(&self.log.level).is_ok(),
            "log.level",
            "is not a valid filter (try \"info\" or \"kefud=debug,info\")",
        );
        c.check(
            self.routing.bot_threshold > 0.0 && self.routing.bot_threshold <= 1.0,
            "routing.bot_threshold",
            "must be above 0 and at most 1",
        );
        c.check(
            self.routing
                .human_keywords
                .iter()
                .all(|k| !k.trim().is_empty()),
            "routing.human_keywords",
            "must not contain an empty keyword",
        );
        c.check(
            self.routing.llm_url.is_empty()
                || crate::routing::llm::endpoint(&self.routing.llm_url).is_ok(),
            "routing.llm_url",
            "must be empty or an http:// or https:// URL such as http://192.168.1.20:8080/v1",
        );
        c.check(
            (1..=600).contains(&self.routing.llm_timeout_secs),
            "routing.llm_timeout_secs",
            "must be between 1 and 600",
        );
        c.check(
            (1..=20).contains(&self.routing.summary_sentences),
            "routing.summary_sentences",
            "must be between 1 and 20",
        );
        c.check(
            (1..=100).contains(&self.outbox.max_attempts),
            "outbox.max_attempts",
            "must be between 1 and 100",
        );
        c.check(
            self.outbox.first_retry_secs >= 1
                && self.outbox.first_retry_secs <= self.outbox.max_retry_secs
                && self.outbox.max_retry_secs <= 86_400,
            "outbox.first_retry_secs",
            "must be at least 1 and at most outbox.max_retry_secs (at most 86400)",
        );
    }

    /// Webhooks.
    fn check_webhooks(&self, c: &mut Checks) {
        c.check(
            self.webhooks.iter().all(|w| {
                crate::model::bounded_id::<{ crate::model::CHANNEL_MAX }>(&w.channel).is_ok()
                    && w.channel != crate::model::WEB_CHANNEL
            }),
            "webhooks.channel",
            "must be a channel name (letters, digits, -_.:@; not \"web\")",
        );
        c.check(
            self.webhooks
                .iter()
                .enumerate()
                .all(|(i, w)| self.webhooks[..i].iter().all(|o| o.channel != w.channel)),
            "webhooks.channel",
            "each channel may have one webhook",
        );
        c.check(
            self.webhooks
                .iter()
                .all(|w| crate::httpc::Url::parse(&w.url).is_ok()),
            "webhooks.url",
            "must be an http:// or https:// URL",
        );
        c.check(
            self.webhooks
                .iter()
                .all(|w| w.secret.expose().chars().count() >= 16),
            "webhooks.secret",
            "must be at least 16 characters",
        );
        c.check(
            self.webhooks
                .iter()
                .all(|w| (1..=120).contains(&w.timeout_secs)),
            "webhooks.timeout_secs",
            "must be between 1 and 120",
        );
    }

    /// The WeChat official account.
    fn check_wechat(&self, c: &mut Checks) {
        c.check(
            crate::model::bounded_id::<{ crate::model::CHANNEL_MAX }>(&self.wechat.channel).is_ok()
                && self.wechat.channel != crate::model::WEB_CHANNEL,
            "wechat.channel",
            "must be a channel name (letters, digits, -_.:@; not \"web\")",
        );
        c.check(
            !self.wechat.enabled
                || (3..=32).contains(&self.wechat.token.expose().len())
                    && self
                        .wechat
                        .token
                        .expose()
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric()),
            "wechat.token",
            "must be the account's Token: 3-32 letters or digits",
        );
        c.check(
            !self.wechat.enabled
                || !self.wechat.app_id.is_empty() && !self.wechat.app_secret.expose().is_empty(),
            "wechat.app_id",
            "wechat.app_id and wechat.app_secret must be set",
        );
        c.check(
            crate::httpc::Url::parse(&self.wechat.api_base).is_ok(),
            "wechat.api_base",
            "must be an http:// or https:// URL",
        );
    }

    /// The MQTT broker and topics.
    fn check_mqtt(&self, c: &mut Checks) {
        let topic_safe =
            |s: &str| !s.is_empty() && !s.contains(['+', '#', '/', '\0']) && s.len() <= 64;
        c.check(
            !self.mqtt.enabled || !self.mqtt.host.is_empty(),
            "mqtt.host",
            "must not be empty",
        );
        c.check(
            !self.mqtt.enabled || self.mqtt.port != 0,
            "mqtt.port",
            "must not be 0",
        );
        c.check(
            topic_safe(&self.mqtt.client_id),
            "mqtt.client_id",
            "must be 1-64 characters without '+', '#' or '/'",
        );
        c.check(
            self.mqtt
                .topic_prefix
                .split('/')
                .all(topic_safe),
            "mqtt.topic_prefix",
            "must be topic levels of 1-64 characters without '+' or '#' (e.g. \"kefu\" or \"shop1/kefu\")",
        );
        c.check(
            (5..=3600).contains(&self.mqtt.keep_alive_secs),
            "mqtt.keep_alive_secs",
            "must be between 5 and 3600",
        );
        c.check(
            (self.limits.max_frame_bytes..=256 << 20).contains(&self.mqtt.max_packet_bytes),
            "mqtt.max_packet_bytes",
            "must be at least limits.max_frame_bytes and at most 268435456",
        );
        c.check(
            (1..=1000).contains(&self.mqtt.max_in_flight),
            "mqtt.max_in_flight",
            "must be between 1 and 1000",
        );
        c.check(
            self.mqtt.channels.iter().all(|c| {
                crate::model::bounded_id::<{ crate::model::CHANNEL_MAX }>(c).is_ok()
                    && c != crate::model::WEB_CHANNEL
            }),
            "mqtt.channels",
            "must be channel names (letters, digits, -_.:@; not \"web\")",
        );
    }
}

/// The problems found so far.
#[derive(Default)]
struct Checks {
    errors: Vec<ConfigError>,
}

impl Checks {
    fn check(&mut self, ok: bool, key: &'static str, message: &str) {
        if !ok {
            self.errors.push(ConfigError {
                key,
                message: message.into(),
            });
        }
    }
}
