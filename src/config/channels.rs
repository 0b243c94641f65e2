//! The channel adapters' settings: webhooks, WeChat, the outbox that retries deliveries, and
//! MQTT (also the cluster's broker connection). Re-exported by `config`; validated with the
//! rest in `validate.rs`.

use serde::{Deserialize, Deserializer};

use super::Secret;
use crate::wechat_crypto::AesKey;

/// A webhook: replies to one channel's contacts, and its conversations' events, are POSTed
/// to `url` (`crate::channel::webhook`). Read at startup only.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Webhook {
    /// The channel (as in `POST /api/v1/inbox/{channel}/messages`).
    pub channel: String,
    /// `http://` or `https://`.
    pub url: String,
    /// The HMAC-SHA256 key of the `X-Kefu-Signature` header (at least 16 characters).
    pub secret: Secret<String>,
    #[serde(default = "Webhook::default_timeout")]
    pub timeout_secs: u64,
}

impl Webhook {
    fn default_timeout() -> u64 {
        10
    }
}

/// A WeChat official account (`crate::channel::wechat`, `crate::http::wechat`). Read at
/// startup only.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Wechat {
    pub enabled: bool,
    /// The identities' channel name.
    pub channel: String,
    /// The Token of the account's server configuration (URL verification and signatures).
    pub token: Secret<String>,
    pub app_id: String,
    pub app_secret: Secret<String>,
    /// The key of the account's EncodingAESKey, for safe mode (安全模式); `None` (the file's
    /// `""`): plain mode only.
    #[serde(deserialize_with = "aes_key")]
    pub encoding_aes_key: Option<Secret<AesKey>>,
    /// WeChat's API (a stand-in for tests).
    pub api_base: String,
}

impl Default for Wechat {
    fn default() -> Self {
        Wechat {
            enabled: false,
            channel: "wechat".into(),
            token: Secret::default(),
            app_id: String::new(),
            app_secret: Secret::default(),
            encoding_aes_key: None,
            api_base: "https://api.weixin.qq.com".into(),
        }
    }
}

/// `wechat.encoding_aes_key`: `""` (plain mode), or an EncodingAESKey decoded into its key.
fn aes_key<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Secret<AesKey>>, D::Error> {
    let text = String::deserialize(d)?;
    if text.is_empty() {
        return Ok(None);
    }
    AesKey::parse(&text)
        .map(|key| Some(Secret(key)))
        .map_err(serde::de::Error::custom)
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
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Mqtt {
    pub enabled: bool,
    pub host: String,
    pub port: u16,
    /// The session's client id: the broker keeps the session (subscriptions, queued
    /// messages) under it while kefud is away.
    pub client_id: String,
    pub username: String,
    pub password: Secret<String>,
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
            password: Secret::default(),
            ca_file: String::new(),
            keep_alive_secs: 30,
            topic_prefix: "kefu".into(),
            max_packet_bytes: 2 * 1024 * 1024,
            max_in_flight: 100,
            channels: Vec::new(),
        }
    }
}
