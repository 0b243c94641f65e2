//! WeChat official account (公众号), plain mode.
//!
//! Inbound (`crate::http::wechat`): WeChat calls the shop's server URL. A GET with
//! `signature`, `timestamp`, `nonce`, `echostr` verifies the URL; a POST carries one message
//! as XML (text, image, or a subscribe/unsubscribe event). The signature is SHA-1 over the
//! sorted concatenation of the configured token, the timestamp and the nonce. In safe mode
//! (安全模式, `encrypt_type=aes`) the message is in `<Encrypt>`: `msg_signature` is SHA-1 over
//! the sorted token, timestamp, nonce and that ciphertext, which is AES-256-CBC with the key
//! from the account's EncodingAESKey (IV: the key's first 16 bytes, PKCS#7 padding to 32
//! bytes) over 16 random bytes, the message's length (4 bytes, big-endian), the message, and
//! the app id (`crate::wechat_crypto` checks the signatures and decrypts). WeChat waits at
//! most 5 seconds for the answer and retries otherwise, so kefud answers `success` as soon as
//! the message is durable (milliseconds) and replies later through the customer-service
//! message API. WeChat's retries carry the same URL (timestamp, nonce) and the same `MsgId`, which
//! is the message's `client_id`.
//!
//! Outbound (this adapter): `POST {api_base}/cgi-bin/message/custom/send?access_token=...`
//! with `{"touser","msgtype":"text","text":{"content"}}`. The access token comes from
//! `GET {api_base}/cgi-bin/token?grant_type=client_credential&appid=...&secret=...`, is cached,
//! refreshed five minutes before it expires, and fetched again at once when WeChat says it is
//! invalid or expired (errcode 40001, 40014, 42001).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::report::{SendCounters, StateLine};
use super::{Adapter, BoxFuture, Description, Health, Inbound, Outbound, OutboundKind, SendError};
use crate::config::Wechat as WechatConfig;
use crate::httpc::{self, Url};

/// Largest answer read from WeChat's API.
const MAX_ANSWER: usize = 64 * 1024;
const API_TIMEOUT: Duration = Duration::from_secs(10);
/// A token is refreshed this long before WeChat says it expires.
const REFRESH_MARGIN: Duration = Duration::from_secs(300);

/// The `<Encrypt>` of a safe-mode message.
pub fn encrypted_field(xml: &str) -> Option<std::borrow::Cow<'_, str>> {
    field(xml, "Encrypt")
}

/// One inbound WeChat message, as kefud stores it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WechatMessage {
    /// The customer's openid.
    pub from: String,
    /// The idempotency key: `MsgId`, or for an event its sender, time and kind.
    pub client_id: String,
    pub text: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum XmlError {
    #[error("not a WeChat message: {0}")]
    Shape(&'static str),
    #[error("unsupported message type {0:?}")]
    Unsupported(String),
}

/// The text content of the top-level element `<name>` of WeChat's flat XML (CDATA or plain,
/// entities decoded).
fn field<'a>(xml: &'a str, name: &str) -> Option<std::borrow::Cow<'a, str>> {
    let open = format!("<{name}>");
    let close = format!("</{name}>");
    let start = xml.find(&open)? + open.len();
    let end = start + xml[start..].find(&close)?;
    let raw = xml[start..end].trim();
    if let Some(cdata) = raw
        .strip_prefix("<![CDATA[")
        .and_then(|r| r.strip_suffix("]]>"))
    {
        return Some(cdata.into());
    }
    if !raw.contains('&') {
        return Some(raw.into());
    }
    Some(
        raw.replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&quot;", "\"")
            .replace("&apos;", "'")
            .replace("&amp;", "&")
            .into(),
    )
}

/// Parses a plain-mode message: text, image, subscribe and unsubscribe events.
///
/// # Errors
/// [`XmlError`] for XML that is not a WeChat message, or another message type (voice, video,
/// location, link, other events), which the caller acknowledges and counts.
pub fn parse_message(xml: &str) -> Result<WechatMessage, XmlError> {
    let from = field(xml, "FromUserName").ok_or(XmlError::Shape("no FromUserName"))?;
    let kind = field(xml, "MsgType").ok_or(XmlError::Shape("no MsgType"))?;
    let msg_id = || field(xml, "MsgId").map(|id| format!("wx-{id}"));
    let (client_id, text) = match kind.as_ref() {
        "text" => (
            msg_id().ok_or(XmlError::Shape("no MsgId"))?,
            field(xml, "Content")
                .ok_or(XmlError::Shape("no Content"))?
                .into_owned(),
        ),
        "image" => (
            msg_id().ok_or(XmlError::Shape("no MsgId"))?,
            format!(
                "[图片 image] {}",
                field(xml, "PicUrl").ok_or(XmlError::Shape("no PicUrl"))?
            ),
        ),
        "event" => {
            let event = field(xml, "Event").ok_or(XmlError::Shape("no Event"))?;
            let time = field(xml, "CreateTime").ok_or(XmlError::Shape("no CreateTime"))?;
            let text = match event.as_ref() {
                "subscribe" => "[关注 subscribed]",
                "unsubscribe" => "[取消关注 unsubscribed]",
                other => return Err(XmlError::Unsupported(format!("event {other}"))),
            };
            (format!("ev-{time}-{event}"), text.to_string())
        }
        other => return Err(XmlError::Unsupported(other.to_string())),
    };
    Ok(WechatMessage {
        from: from.into_owned(),
        client_id,
        text,
    })
}

struct Token {
    value: String,
    /// When to fetch a new one (before WeChat's expiry).
    refresh_at: Instant,
}

pub struct Wechat {
    channel: String,
    api: Url,
    app_id: String,
    app_secret: String,
    token: tokio::sync::Mutex<Option<Token>>,
    status: StateLine,
    sends: SendCounters,
    token_fetches: AtomicU64,
    stop: CancellationToken,
}

/// WeChat's answer to an API call.
#[derive(Debug)]
enum ApiError {
    /// Could not reach it, or it answered outside its protocol.
    Transport(String),
    /// `{"errcode": N, "errmsg": ...}` with N != 0.
    Code(i64, String),
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ApiError::Transport(e) => write!(f, "{e}"),
            ApiError::Code(code, msg) => write!(f, "WeChat errcode {code}: {msg}"),
        }
    }
}

/// Errcodes meaning the access token is invalid or expired.
const TOKEN_ERRORS: [i64; 3] = [40001, 40014, 42001];
/// Errcodes meaning this message can never be sent (the customer unfollowed, or has not
/// written within the 48 hours WeChat allows replies in).
const REFUSED: [i64; 4] = [43004, 45015, 45047, 40003];

impl Wechat {
    /// # Panics
    /// Never for a validated configuration (`api_base` was checked by `Config::validate`).
    pub fn new(cfg: &WechatConfig) -> Wechat {
        Wechat {
            channel: cfg.channel.clone(),
            api: Url::parse(&cfg.api_base).expect("invariant: validated by Config::validate"),
            app_id: cfg.app_id.clone(),
            app_secret: cfg.app_secret.expose().clone(),
            token: tokio::sync::Mutex::new(None),
            status: StateLine::new("connecting", String::new()),
            sends: SendCounters::default(),
            token_fetches: AtomicU64::new(0),
            stop: CancellationToken::new(),
        }
    }

    async fn call(
        &self,
        method: hyper::Method,
        path_and_query: &str,
        body: Bytes,
    ) -> Result<serde_json::Value, ApiError> {
        let url = self.api.join(path_and_query);
        let answer = httpc::request(method, &url, &[], body, API_TIMEOUT, MAX_ANSWER)
            .await
            .map_err(|e| ApiError::Transport(e.to_string()))?;
        if !answer.is_success() {
            return Err(ApiError::Transport(format!("HTTP {}", answer.status)));
        }
        let v: serde_json::Value = serde_json::from_slice(&answer.body)
            .map_err(|_| ApiError::Transport("the answer is not JSON".into()))?;
        match v["errcode"].as_i64() {
            Some(code) if code != 0 => Err(ApiError::Code(
                code,
                v["errmsg"].as_str().unwrap_or("").to_string(),
            )),
            _ => Ok(v),
        }
    }

    /// The cached access token, fetched when there is none, it is due, or it is `failed` (the
    /// one WeChat just refused; a newer one another send fetched meanwhile is kept).
    async fn access_token(&self, failed: Option<&str>) -> Result<String, ApiError> {
        let mut token = self.token.lock().await;
        if let Some(t) = token
            .as_ref()
            .filter(|t| Some(t.value.as_str()) != failed && Instant::now() < t.refresh_at)
        {
            return Ok(t.value.clone());
        }
        self.token_fetches.fetch_add(1, Ordering::Relaxed);
        let query = format!(
            "/cgi-bin/token?grant_type=client_credential&appid={}&secret={}",
            query_escape(&self.app_id),
            query_escape(&self.app_secret)
        );
        let v = match self.call(hyper::Method::GET, &query, Bytes::new()).await {
            Ok(v) => v,
            Err(e) => {
                self.status
                    .set("disconnected", format!("access token: {e}"));
                return Err(e);
            }
        };
        let value = v["access_token"]
            .as_str()
            .filter(|s| !s.is_empty())
            .ok_or_else(|| ApiError::Transport("no access_token in the answer".into()))?
            .to_string();
        let lifetime = Duration::from_secs(v["expires_in"].as_u64().unwrap_or(7200));
        let refresh_at = Instant::now() + lifetime.saturating_sub(REFRESH_MARGIN).max(lifetime / 2);
        *token = Some(Token {
            value: value.clone(),
            refresh_at,
        });
        self.status.set(
            "connected",
            format!("token valid for {}s", lifetime.as_secs()),
        );
        tracing::info!(
            expires_in_secs = lifetime.as_secs(),
            "wechat: access token fetched"
        );
        Ok(value)
    }

    async fn send_text(&self, to: &str, text: &str) -> Result<(), ApiError> {
        let body = Bytes::from(
            serde_json::json!({"touser": to, "msgtype": "text", "text": {"content": text}})
                .to_string(),
        );
        let mut refused: Option<String> = None;
        loop {
            let token = self.access_token(refused.as_deref()).await?;
            let path = format!(
                "/cgi-bin/message/custom/send?access_token={}",
                query_escape(&token)
            );
            match self.call(hyper::Method::POST, &path, body.clone()).await {
                Err(ApiError::Code(code, _))
                    if TOKEN_ERRORS.contains(&code) && refused.is_none() =>
                {
                    refused = Some(token);
                }
                other => return other.map(|_| ()),
            }
        }
    }

    /// Keeps a valid token cached: fetched at start (retrying with backoff) and before expiry.
    async fn keep_token(&self) {
        let mut backoff = Duration::from_secs(1);
        loop {
            let next = match self.access_token(None).await {
                Ok(_) => {
                    backoff = Duration::from_secs(1);
                    let due = self.token.lock().await.as_ref().map(|t| t.refresh_at);
                    due.map_or(Duration::from_secs(60), |at| {
                        at.saturating_duration_since(Instant::now()) + Duration::from_millis(10)
                    })
                }
                Err(e) => {
                    tracing::warn!(error = %e, retry_in_secs = backoff.as_secs(), "wechat: cannot fetch the access token");
                    let wait = backoff;
                    backoff = (backoff * 2).min(Duration::from_secs(300));
                    wait
                }
            };
            tokio::select! {
                _ = self.stop.cancelled() => return,
                _ = tokio::time::sleep(next) => {}
            }
        }
    }
}

/// Percent-encodes a query value (app ids, secrets and tokens are URL-safe in practice; this
/// keeps a stray character from changing the request).
fn query_escape(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

impl Adapter for Wechat {
    fn describe(&self) -> Description {
        Description {
            name: "wechat".into(),
            channels: vec![self.channel.clone()],
            max_in_flight: 4,
            events: false,
        }
    }

    /// Messages come in through the callback URL (`crate::http::wechat`); this keeps the
    /// access token fresh.
    fn start(self: std::sync::Arc<Self>, _inbound: Inbound) -> BoxFuture<'static, ()> {
        Box::pin(async move { self.keep_token().await })
    }

    fn send<'a>(&'a self, message: &'a Outbound) -> BoxFuture<'a, Result<(), SendError>> {
        Box::pin(async move {
            if message.kind != OutboundKind::Message {
                return Err(SendError::Refused("WeChat takes messages only".into()));
            }
            self.sends.sent();
            match self.send_text(&message.to.external_id, &message.text).await {
                Ok(()) => {
                    self.sends.delivered();
                    Ok(())
                }
                Err(e) => {
                    self.sends.failed();
                    match e {
                        ApiError::Code(code, _) if REFUSED.contains(&code) => {
                            Err(SendError::Refused(e.to_string()))
                        }
                        _ => Err(SendError::Retry(e.to_string())),
                    }
                }
            }
        })
    }

    fn health(&self) -> Health {
        let (state, detail) = self.status.get();
        let mut counters = self.sends.counters().to_vec();
        counters.push(("token_fetches", self.token_fetches.load(Ordering::Relaxed)));
        Health {
            state,
            detail,
            counters,
        }
    }

    fn stop(&self) {
        self.stop.cancel();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_messages_parse() {
        let text = "<xml><ToUserName><![CDATA[toUser]]></ToUserName><FromUserName><![CDATA[fromUser]]></FromUserName>\
                    <CreateTime>1348831860</CreateTime><MsgType><![CDATA[text]]></MsgType>\
                    <Content><![CDATA[this is a test <b>]]></Content><MsgId>1234567890123456</MsgId></xml>";
        assert_eq!(
            parse_message(text).unwrap(),
            WechatMessage {
                from: "fromUser".into(),
                client_id: "wx-1234567890123456".into(),
                text: "this is a test <b>".into()
            }
        );
        let image = "<xml><ToUserName><![CDATA[toUser]]></ToUserName><FromUserName><![CDATA[fromUser]]></FromUserName>\
                     <CreateTime>1348831860</CreateTime><MsgType><![CDATA[image]]></MsgType>\
                     <PicUrl><![CDATA[http://mmbiz.qpic.cn/x]]></PicUrl><MediaId><![CDATA[media_id]]></MediaId><MsgId>1234567890123457</MsgId></xml>";
        assert_eq!(
            parse_message(image).unwrap().text,
            "[图片 image] http://mmbiz.qpic.cn/x"
        );
        let subscribe = "<xml><ToUserName><![CDATA[toUser]]></ToUserName><FromUserName><![CDATA[FromUser]]></FromUserName>\
                         <CreateTime>123456789</CreateTime><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[subscribe]]></Event></xml>";
        let s = parse_message(subscribe).unwrap();
        assert_eq!(
            (s.client_id.as_str(), s.text.as_str()),
            ("ev-123456789-subscribe", "[关注 subscribed]")
        );
        assert_eq!(
            field(
                "<xml><Content>a &lt;b&gt; &amp;amp;</Content></xml>",
                "Content"
            )
            .unwrap(),
            "a <b> &amp;"
        );
        assert!(matches!(
            parse_message("<xml><MsgType>voice</MsgType><FromUserName>u</FromUserName></xml>"),
            Err(XmlError::Unsupported(_))
        ));
        assert!(matches!(parse_message("not xml"), Err(XmlError::Shape(_))));
    }
}
