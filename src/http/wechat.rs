//! WeChat's calls to the shop's server URL, `/wechat/callback` (`crate::channel::wechat`
//! explains the protocol): GET verifies the URL, POST delivers a customer's message (plain, or
//! encrypted in safe mode), answered `success` once it is durable. Every call must carry a
//! valid signature; a message type kefud does not store (voice, location, ...) is acknowledged
//! too, so WeChat does not resend it.
//!
//! The signature covers the URL's timestamp and nonce, not the body, so a signed URL is taken
//! once ([`SeenNonces`]): its (timestamp, nonce) is recorded as soon as the signature checks,
//! before the body is read, whatever the call turns out to be (a verification GET included).
//! A second call with the pair is answered `success` and stores nothing: it is WeChat's retry
//! of a call already answered (whose message, if any, is stored), or a replay. The pair is
//! released when a message could not be stored (the call is answered 503, or WeChat hung up
//! first), so WeChat's retry, which carries the same pair, gets another chance; the message's
//! `MsgId` keeps it from being stored twice. While a call is being handled, another with its
//! pair is answered 503.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde::Deserialize;

use super::{ApiQuery, AppState};
use crate::channel::wechat::{encrypted_field, parse_message, XmlError};
use crate::channel::{Inbound, InboundError};
use crate::wechat_crypto::{decrypt, msg_signature_ok, signature_ok};

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
    if !signature_ok(
        cfg.wechat.token.expose(),
        &q.timestamp,
        &q.nonce,
        &q.signature,
    ) {
        tracing::warn!("wechat: call with an invalid signature refused");
        return Some(refuse(StatusCode::FORBIDDEN, "invalid signature"));
    }
    // The signature does not cover the body: a captured URL could be replayed with other XML.
    // Only fresh timestamps are taken, and each (timestamp, nonce) once ([`SeenNonces`]).
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

/// How long a (timestamp, nonce) is remembered: past it, [`check`] refuses the timestamp.
const REMEMBER_SECS: i64 = 2 * MAX_SKEW_SECS;
/// Most pairs remembered (a Pi's memory is bounded; WeChat sends far fewer in ten minutes).
const REMEMBER_MAX: usize = 100_000;

/// The (timestamp, nonce) pairs of the calls taken in the last [`REMEMBER_SECS`], shared by
/// every callback request.
#[derive(Default)]
pub struct SeenNonces {
    seen: std::sync::Mutex<Seen>,
}

/// What a call's (timestamp, nonce) says about it.
pub enum Claim<'a> {
    /// The first call with this pair: go on. Dropping the ticket unsettled releases the pair.
    Fresh(Ticket<'a>),
    /// A call with this pair was answered: a retry of it, or a replay. Answer, store nothing.
    Answered,
    /// A call with this pair is being handled now: answer 503, WeChat retries.
    InFlight,
}

/// A pair taken by the call holding it; [`Ticket::settle`] keeps it taken.
pub struct Ticket<'a> {
    nonces: &'a SeenNonces,
    key: String,
    number: u64,
    settled: bool,
}

impl SeenNonces {
    /// Takes the pair for this call, unless a call had it already.
    pub fn claim(&self, timestamp: &str, nonce: &str) -> Claim<'_> {
        let key = format!("{timestamp}:{nonce}");
        let now = crate::model::now_ms() / 1000;
        match self.lock().claim(&key, now) {
            SeenState::Fresh(number) => Claim::Fresh(Ticket {
                nonces: self,
                key,
                number,
                settled: false,
            }),
            SeenState::Answered => Claim::Answered,
            SeenState::InFlight => Claim::InFlight,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Seen> {
        self.seen.lock().expect("invariant: never poisoned")
    }
}

impl Ticket<'_> {
    /// The call was answered for good: its pair stays taken.
    pub fn settle(mut self) {
        self.settled = true;
        self.nonces.lock().settle(&self.key, self.number);
    }
}

impl Drop for Ticket<'_> {
    /// Unsettled (the message was not stored, or the caller hung up): the pair is free again.
    fn drop(&mut self) {
        if !self.settled {
            self.nonces.lock().release(&self.key, self.number);
        }
    }
}

/// The bookkeeping behind [`SeenNonces`], with the clock passed in.
#[derive(Default)]
struct Seen {
    /// Pair → the call that took it (its number) and whether it was answered.
    pairs: std::collections::HashMap<String, (u64, bool)>,
    /// When each pair was taken, oldest first; a released pair's entry stays until it expires.
    order: std::collections::VecDeque<(i64, u64, String)>,
    next: u64,
}

#[derive(Debug, PartialEq, Eq)]
enum SeenState {
    Fresh(u64),
    Answered,
    InFlight,
}

impl Seen {
    fn claim(&mut self, key: &str, now: i64) -> SeenState {
        while let Some((at, number, old)) = self.order.front() {
            if now - at <= REMEMBER_SECS && self.order.len() < REMEMBER_MAX {
                break;
            }
            if self.pairs.get(old).is_some_and(|(n, _)| n == number) {
                self.pairs.remove(old);
            }
            self.order.pop_front();
        }
        match self.pairs.get(key) {
            Some((_, true)) => SeenState::Answered,
            Some((_, false)) => SeenState::InFlight,
            None => {
                self.next += 1;
                self.pairs.insert(key.to_string(), (self.next, false));
                self.order.push_back((now, self.next, key.to_string()));
                SeenState::Fresh(self.next)
            }
        }
    }

    fn settle(&mut self, key: &str, number: u64) {
        if let Some((n, answered)) = self.pairs.get_mut(key) {
            if *n == number {
                *answered = true;
            }
        }
    }

    fn release(&mut self, key: &str, number: u64) {
        if self.pairs.get(key).is_some_and(|(n, _)| *n == number) {
            self.pairs.remove(key);
        }
    }
}

/// The plain XML of a safe-mode message, after checking its `msg_signature`; else the status
/// and text to refuse it with.
fn open_safe_mode(
    cfg: &crate::config::Wechat,
    q: &Signed,
    xml: &str,
) -> Result<String, (StatusCode, &'static str)> {
    let key = cfg.encoding_aes_key.as_ref().ok_or((
        StatusCode::BAD_REQUEST,
        "safe mode (安全模式) needs wechat.encoding_aes_key in kefud.toml",
    ))?;
    let encrypted = encrypted_field(xml).ok_or((
        StatusCode::BAD_REQUEST,
        "no <Encrypt> in a safe-mode message",
    ))?;
    let signed = q.msg_signature.as_deref().is_some_and(|sig| {
        msg_signature_ok(cfg.token.expose(), &q.timestamp, &q.nonce, &encrypted, sig)
    });
    if !signed {
        tracing::warn!("wechat: safe-mode message with an invalid msg_signature refused");
        return Err((StatusCode::FORBIDDEN, "invalid msg_signature"));
    }
    decrypt(key.expose(), &cfg.app_id, &encrypted).map_err(|e| {
        tracing::warn!(error = %e, "wechat: safe-mode message refused");
        (
            StatusCode::BAD_REQUEST,
            "the message does not decrypt for this account",
        )
    })
}

async fn verify_url(State(app): State<AppState>, ApiQuery(q): ApiQuery<Signed>) -> Response {
    if let Some(refused) = check(&app, &q) {
        return refused;
    }
    // Its URL is taken too: it must not carry a message in later.
    match app.wechat_nonces.claim(&q.timestamp, &q.nonce) {
        Claim::Fresh(ticket) => ticket.settle(),
        Claim::Answered | Claim::InFlight => {
            tracing::warn!(nonce = %q.nonce, "wechat: a verification URL used twice refused");
            return refuse(StatusCode::FORBIDDEN, "this signed URL was used already");
        }
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
    let ticket = match app.wechat_nonces.claim(&q.timestamp, &q.nonce) {
        Claim::Fresh(ticket) => ticket,
        Claim::Answered => {
            tracing::info!(nonce = %q.nonce, "wechat: a call answered before answered again, nothing stored");
            return (StatusCode::OK, "success").into_response();
        }
        Claim::InFlight => {
            return refuse(
                StatusCode::SERVICE_UNAVAILABLE,
                "this call is being handled; try again",
            )
        }
    };
    match take(&app, &q, &body).await {
        Answer::Final(response) => {
            ticket.settle();
            response
        }
        // The ticket drops unsettled: WeChat's retry with the same pair is taken afresh.
        Answer::Retry(response) => response,
    }
}

/// How a POST is answered: for good, or with a 503 for a message that was not stored (and
/// may be when WeChat sends it again).
enum Answer {
    Final(Response),
    Retry(Response),
}

/// Reads, checks and stores one message.
async fn take(app: &AppState, q: &Signed, body: &[u8]) -> Answer {
    if body.len() > MAX_BODY {
        return Answer::Final(refuse(
            StatusCode::PAYLOAD_TOO_LARGE,
            "not a WeChat message",
        ));
    }
    let Ok(xml) = std::str::from_utf8(body) else {
        return Answer::Final(refuse(StatusCode::BAD_REQUEST, "the body is not UTF-8"));
    };
    let cfg = app.cfg();
    let decrypted;
    let xml = match q.encrypt_type.as_deref() {
        None | Some("raw") => xml,
        Some("aes") => match open_safe_mode(&cfg.wechat, q, xml) {
            Ok(plain) => {
                decrypted = plain;
                decrypted.as_str()
            }
            Err((status, text)) => return Answer::Final(refuse(status, text)),
        },
        Some(_) => return Answer::Final(refuse(StatusCode::BAD_REQUEST, "unknown encrypt_type")),
    };
    let message = match parse_message(xml) {
        Ok(m) => m,
        Err(XmlError::Unsupported(kind)) => {
            tracing::info!(kind, "wechat: message type not stored; acknowledged");
            return Answer::Final((StatusCode::OK, "success").into_response());
        }
        Err(e @ XmlError::Shape(_)) => {
            tracing::warn!(error = %e, "wechat: malformed message refused");
            return Answer::Final(refuse(StatusCode::BAD_REQUEST, "not a WeChat message"));
        }
    };
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
    if let Err(e) = &stored {
        tracing::warn!(error = %e, openid = %message.from, "wechat: message not stored");
    }
    answer_stored(stored.map(|_| ()))
}

/// The answer to a message once kefud tried to store it.
fn answer_stored(stored: Result<(), InboundError>) -> Answer {
    match stored {
        Ok(()) => Answer::Final((StatusCode::OK, "success").into_response()),
        Err(InboundError::Unavailable) => Answer::Retry(refuse(
            StatusCode::SERVICE_UNAVAILABLE,
            "stopping; WeChat will retry",
        )),
        // It may pass: no answer means WeChat sends it again.
        Err(InboundError::Failed(_)) => Answer::Retry(refuse(
            StatusCode::SERVICE_UNAVAILABLE,
            "not stored; try again",
        )),
        // Sending it again would not help: acknowledge (the log says why).
        Err(InboundError::Invalid { .. }) => {
            Answer::Final((StatusCode::OK, "success").into_response())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pair_is_taken_once_and_released_only_unsettled() {
        let nonces = SeenNonces::default();
        let Claim::Fresh(ticket) = nonces.claim("1700000000", "1") else {
            panic!("a new pair is fresh");
        };
        // Two identical posts at once: the second waits for WeChat's next retry.
        assert!(matches!(nonces.claim("1700000000", "1"), Claim::InFlight));
        drop(ticket);
        // Not stored (503, or WeChat hung up): the retry with the same pair is taken afresh.
        let Claim::Fresh(ticket) = nonces.claim("1700000000", "1") else {
            panic!("a released pair is fresh again");
        };
        ticket.settle();
        assert!(matches!(nonces.claim("1700000000", "1"), Claim::Answered));
        assert!(matches!(nonces.claim("1700000000", "2"), Claim::Fresh(_)));
    }

    #[test]
    fn pairs_are_forgotten_once_their_timestamp_is_refused_anyway() {
        let mut seen = Seen::default();
        let SeenState::Fresh(first) = seen.claim("a", 1000) else {
            panic!()
        };
        seen.settle("a", first);
        assert_eq!(seen.claim("a", 1000 + REMEMBER_SECS), SeenState::Answered);
        // Released and taken again: the first taking's expiry leaves the second alone.
        let SeenState::Fresh(b1) = seen.claim("b", 1000) else {
            panic!()
        };
        seen.release("b", b1);
        let SeenState::Fresh(b2) = seen.claim("b", 1300) else {
            panic!()
        };
        // A late settle or release by the first call does not touch the second's.
        seen.release("b", b1);
        seen.settle("b", b1);
        assert_eq!(
            seen.claim("b", 1000 + REMEMBER_SECS + 1),
            SeenState::InFlight
        );
        assert!(matches!(
            seen.claim("a", 1000 + REMEMBER_SECS + 1),
            SeenState::Fresh(_)
        ));
        seen.settle("b", b2);
        assert_eq!(seen.claim("b", 1300), SeenState::Answered);
    }

    #[test]
    fn only_a_message_that_may_yet_be_stored_is_left_for_a_retry() {
        assert!(matches!(answer_stored(Ok(())), Answer::Final(_)));
        assert!(matches!(
            answer_stored(Err(InboundError::Unavailable)),
            Answer::Retry(_)
        ));
        assert!(matches!(
            answer_stored(Err(InboundError::Failed("store".into()))),
            Answer::Retry(_)
        ));
        let invalid = InboundError::Invalid {
            code: "text_too_long",
            message: String::new(),
        };
        assert!(matches!(answer_stored(Err(invalid)), Answer::Final(_)));
    }
}
