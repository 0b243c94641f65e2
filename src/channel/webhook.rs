//! Webhooks: the outbound half of the HTTP API channel. Replies to one channel's contacts, and
//! its conversations' events (opened, resolved), are POSTed as JSON to the integrator's URL.
//! Customers' messages come in through `POST /api/v1/inbox/{channel}/messages`
//! (`crate::http::inbox_api`), so [`Adapter::start`] only waits to be stopped.
//!
//! Each POST carries:
//! - `X-Kefu-Timestamp`: Unix seconds when it was signed;
//! - `X-Kefu-Signature: v1=HEX`: HMAC-SHA256 with the configured secret over
//!   `TIMESTAMP "." BODY` (the receiver recomputes it and refuses old timestamps);
//! - `Idempotency-Key: kefu-ID`, the same on every attempt (ID is the body's `id`).
//!
//! Any 2xx is delivered; anything else, or no answer within the timeout, is tried again by the
//! outbox with exponential backoff, and after the last attempt the delivery is dead (visible
//! in the API and the console).

use std::time::Duration;

use bytes::Bytes;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use tokio_util::sync::CancellationToken;

use super::report::{SendCounters, StateLine};
use super::{Adapter, BoxFuture, Description, Health, Inbound, Outbound, OutboundKind, SendError};
use crate::config::Webhook as WebhookConfig;
use crate::httpc::{self, Url};

/// POSTs at once per webhook.
const MAX_IN_FLIGHT: usize = 4;
/// What is read of the receiver's answer (it is only logged).
const MAX_ANSWER: usize = 4096;

pub struct Webhook {
    channel: String,
    url: Url,
    secret: Vec<u8>,
    timeout: Duration,
    /// "connected" after a 2xx, "disconnected" after a failure, "idle" before any.
    status: StateLine,
    sends: SendCounters,
    stop: CancellationToken,
}

impl Webhook {
    /// # Panics
    /// Never for a validated configuration (the URL was checked by `Config::validate`).
    pub fn new(cfg: &WebhookConfig) -> Webhook {
        let url = Url::parse(&cfg.url).expect("invariant: validated by Config::validate");
        let endpoint = format!("{}:{}", url.host, url.port);
        Webhook {
            channel: cfg.channel.clone(),
            url,
            secret: cfg.secret.expose().as_bytes().to_vec(),
            timeout: Duration::from_secs(cfg.timeout_secs),
            // The host only: a URL may carry a secret, and agents see this.
            status: StateLine::new("idle", endpoint),
            sends: SendCounters::default(),
            stop: CancellationToken::new(),
        }
    }

    /// What the console shows of the endpoint: its host, never the path or query.
    fn endpoint(&self) -> String {
        format!("{}:{}", self.url.host, self.url.port)
    }
}

/// The JSON body of a POST.
pub fn body(message: &Outbound) -> String {
    let mut v = serde_json::json!({
        "type": message.kind.as_str(),
        "id": message.id,
        "conversation_id": message.conversation_id,
        "channel": message.to.channel.as_str(),
        "contact_id": message.to.external_id.as_str(),
        "at": message.created_at,
    });
    if message.kind == OutboundKind::Message {
        v["message_id"] = message.id.into();
        v["sender"] = message.sender.as_str().into();
        v["text"] = message.text.as_str().into();
    }
    v.to_string()
}

/// `v1=HEX` of HMAC-SHA256(secret, `timestamp "." body`).
pub fn signature(secret: &[u8], timestamp: i64, body: &str) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret).expect("invariant: HMAC takes any key length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body.as_bytes());
    let hex: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("v1={hex}")
}

impl Adapter for Webhook {
    fn describe(&self) -> Description {
        Description {
            name: format!("webhook:{}", self.channel),
            channels: vec![self.channel.clone()],
            max_in_flight: MAX_IN_FLIGHT,
            events: true,
        }
    }

    fn start(self: std::sync::Arc<Self>, _inbound: Inbound) -> BoxFuture<'static, ()> {
        Box::pin(async move { self.stop.cancelled().await })
    }

    fn send<'a>(&'a self, message: &'a Outbound) -> BoxFuture<'a, Result<(), SendError>> {
        Box::pin(async move {
            let body = body(message);
            let timestamp = crate::model::now_ms() / 1000;
            let headers = [
                ("x-kefu-timestamp", timestamp.to_string()),
                (
                    "x-kefu-signature",
                    signature(&self.secret, timestamp, &body),
                ),
                ("idempotency-key", format!("kefu-{}", message.id)),
                (
                    "user-agent",
                    concat!("kefud/", env!("CARGO_PKG_VERSION")).to_string(),
                ),
            ];
            self.sends.sent();
            let result = httpc::request(
                hyper::Method::POST,
                &self.url,
                &headers,
                Bytes::from(body),
                self.timeout,
                MAX_ANSWER,
            )
            .await;
            match result {
                Ok(answer) if answer.is_success() => {
                    self.sends.delivered();
                    self.status.set(
                        "connected",
                        format!("{} answered {}", self.endpoint(), answer.status),
                    );
                    Ok(())
                }
                Ok(answer) => {
                    self.sends.failed();
                    let error = format!("HTTP {}", answer.status);
                    self.status.set(
                        "disconnected",
                        format!("{} answered {}", self.endpoint(), answer.status),
                    );
                    Err(SendError::Retry(error))
                }
                Err(e) => {
                    self.sends.failed();
                    // httpc's errors name the host and port, not the path.
                    self.status.set("disconnected", e.to_string());
                    Err(SendError::Retry(e.to_string()))
                }
            }
        })
    }

    fn health(&self) -> Health {
        let (state, detail) = self.status.get();
        Health {
            state,
            detail,
            counters: self.sends.counters().to_vec(),
        }
    }

    fn stop(&self) {
        self.stop.cancel();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 4231 test case 2 ("Jefe"), over the "timestamp.body" string it signs.
    #[test]
    fn signature_is_hmac_sha256_over_timestamp_and_body() {
        let sig = signature(b"Jefe", 0, "what do ya want for nothing?");
        // HMAC over "0.what do ya want for nothing?", checked against a second implementation:
        let mut mac = Hmac::<Sha256>::new_from_slice(b"Jefe").unwrap();
        mac.update(b"0.what do ya want for nothing?");
        let expected: String = mac
            .finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(sig, format!("v1={expected}"));
        let rfc = {
            let mut mac = Hmac::<Sha256>::new_from_slice(b"Jefe").unwrap();
            mac.update(b"what do ya want for nothing?");
            mac.finalize()
                .into_bytes()
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
        };
        assert_eq!(
            rfc,
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
