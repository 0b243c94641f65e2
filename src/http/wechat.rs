//! WeChat's calls to the shop's server URL, `/wechat/callback` (`crate::channel::wechat`
//! explains the protocol): GET verifies the URL, POST delivers a customer's message (plain, or
//! encrypted in safe mode), answered `success` once it is durable. Every call must carry a valid signature; a message type kefud
//! does not store (voice, location, ...) is acknowledged too, so WeChat does not resend it.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde::Deserialize;

use super::{ApiQuery, AppState};
use crate::channel::wechat::{
    aes_key, decrypt, encrypted_field, msg_signature_ok, parse_message, signature_ok, XmlError,
};
use crate::channel::{Inbound, InboundError};

/// WeChat's messages are small; anything larger is not one.
const MAX_BODY: usize = 64 * 1024;

pub fn router() -> Router<AppState> {
    Router::new().route("/wechat/callback", get(verify_url).post(receive))
}

#[derive(Deserialize)]
struct Signed {
    signature: String,
    timestamp: String,
    nonce: String,
    echostr: Option<String>,
    encrypt_type: Option<String>,
    msg_signature: Option<String>,
}

fn refuse(status: StatusCode, text: &'static str) -> Response {
    (status, text).into_response()
}

/// Checks the account is configured and the call signed; `None` when it may go on.
fn check(app: &AppState, q: &Signed) -> Option<Response> {
    let cfg = app.cfg();
    if !cfg.wechat.enabled {
        return Some(refuse(StatusCode::NOT_FOUND, "WeChat is not configured"));
    }
    if !signature_ok(&cfg.wechat.token, &q.timestamp, &q.nonce, &q.signature) {
        tracing::warn!("wechat: call with an invalid signature refused");
        return Some(refuse(StatusCode::FORBIDDEN, "invalid signature"));
    }
    // The signature does not cover the body: a captured URL could be replayed with other XML.
    // Only fresh timestamps are taken, and each (timestamp, nonce) once (see `receive`).
    let now = crate::model::now_ms() / 1000;
    if q.timestamp
        .parse::<i64>()
        .map_or(true, |t| (now - t).abs() > MAX_SKEW_SECS)
    {
        tracing::warn!(timestamp = %q.timestamp, "wechat: call with a stale timestamp refused");
        return Some(refuse(StatusCode::FORBIDDEN, "stale timestamp"));
    }
    None
}

/// How far a call's timestamp may be from this clock.
const MAX_SKEW_SECS: i64 = 300;

/// (timestamp, nonce) of the calls taken in the last [`MAX_SKEW_SECS`]: a second call with
/// the same pair is a replay (or WeChat's retry of a message already stored) and is answered
/// `success` without being stored again.
#[derive(Default)]
pub struct SeenNonces {
    seen: std::sync::Mutex<std::collections::VecDeque<(i64, String)>>,
}

impl SeenNonces {
    /// Records the pair; false if it was there already.
    fn first_time(&self, timestamp: &str, nonce: &str) -> bool {
        let now = crate::model::now_ms() / 1000;
        let key = format!("{timestamp}:{nonce}");
        let mut seen = self.seen.lock().expect("invariant: never poisoned");
        while seen
            .front()
            .is_some_and(|(at, _)| now - at > 2 * MAX_SKEW_SECS)
            || seen.len() > 100_000
        {
            seen.pop_front();
        }
        if seen.iter().any(|(_, k)| *k == key) {
            return false;
        }
        seen.push_back((now, key));
        true
    }
}

/// The plain XML of a safe-mode message, after checking its `msg_signature`.
fn open_safe_mode(cfg: &crate::config::Wechat, q: &Signed, xml: &str) -> Result<String, Response> {
    let key = aes_key(&cfg.encoding_aes_key).map_err(|_| {
        refuse(
            StatusCode::BAD_REQUEST,
            "safe mode (安全模式) needs wechat.encoding_aes_key in kefud.toml",
        )
    })?;
    let encrypted = encrypted_field(xml).ok_or_else(|| {
        refuse(
            StatusCode::BAD_REQUEST,
            "no <Encrypt> in a safe-mode message",
        )
    })?;
    let signed = q
        .msg_signature
        .as_deref()
        .is_some_and(|sig| msg_signature_ok(&cfg.token, &q.timestamp, &q.nonce, &encrypted, sig));
    if !signed {
        tracing::warn!("wechat: safe-mode message with an invalid msg_signature refused");
        return Err(refuse(StatusCode::FORBIDDEN, "invalid msg_signature"));
    }
    decrypt(&key, &cfg.app_id, &encrypted).map_err(|e| {
        tracing::warn!(error = %e, "wechat: safe-mode message refused");
        refuse(
            StatusCode::BAD_REQUEST,
            "the message does not decrypt for this account",
        )
    })
}

async fn verify_url(State(app): State<AppState>, ApiQuery(q): ApiQuery<Signed>) -> Response {
    if let Some(refused) = check(&app, &q) {
        return refused;
    }
    match q.echostr {
        Some(echo) => (StatusCode::OK, echo).into_response(),
        None => refuse(StatusCode::BAD_REQUEST, "echostr is missing"),
    }
}

async fn receive(
    State(app): State<AppState>,
    ApiQuery(q): ApiQuery<Signed>,
    body: Bytes,
) -> Response {
    if let Some(refused) = check(&app, &q) {
        return refused;
    }
    if body.len() > MAX_BODY {
        return refuse(StatusCode::PAYLOAD_TOO_LARGE, "not a WeChat message");
    }
    let Ok(xml) = std::str::from_utf8(&body) else {
        return refuse(StatusCode::BAD_REQUEST, "the body is not UTF-8");
    };
    let cfg = app.cfg();
    let decrypted;
    let xml = match q.encrypt_type.as_deref() {
        None | Some("raw") => xml,
        Some("aes") => match open_safe_mode(&cfg.wechat, &q, xml) {
            Ok(plain) => {
                decrypted = plain;
                decrypted.as_str()
            }
            Err(refused) => return refused,
        },
        Some(_) => return refuse(StatusCode::BAD_REQUEST, "unknown encrypt_type"),
    };
    let message = match parse_message(xml) {
        Ok(m) => m,
        Err(XmlError::Unsupported(kind)) => {
            tracing::info!(kind, "wechat: message type not stored; acknowledged");
            return (StatusCode::OK, "success").into_response();
        }
        Err(e @ XmlError::Shape(_)) => {
            tracing::warn!(error = %e, "wechat: malformed message refused");
            return refuse(StatusCode::BAD_REQUEST, "not a WeChat message");
        }
    };
    if !app.wechat_nonces.first_time(&q.timestamp, &q.nonce) {
        tracing::info!(nonce = %q.nonce, "wechat: a call seen before answered without storing");
        return (StatusCode::OK, "success").into_response();
    }
    let inbound = Inbound::new(
        app.commands.clone(),
        app.durable.clone(),
        cfg.limits.max_text_chars,
    );
    let stored = match inbound
        .submit(
            &cfg.wechat.channel,
            &message.from,
            &message.client_id,
            message.text,
        )
        .await
    {
        Ok(pending) => pending.durable().await,
        Err(e) => Err(e),
    };
    match stored {
        Ok(_) => (StatusCode::OK, "success").into_response(),
        Err(InboundError::Unavailable) => refuse(
            StatusCode::SERVICE_UNAVAILABLE,
            "stopping; WeChat will retry",
        ),
        Err(InboundError::Failed(e)) => {
            // It may pass: no answer means WeChat sends it again.
            tracing::warn!(error = %e, "wechat: message not stored; WeChat will retry");
            refuse(StatusCode::SERVICE_UNAVAILABLE, "not stored; try again")
        }
        Err(e) => {
            // Sending it again would not help: acknowledge, and say why in the log.
            tracing::warn!(error = %e, openid = %message.from, "wechat: message not stored");
            (StatusCode::OK, "success").into_response()
        }
    }
}
