//! The visitor WebSocket, `/ws/visitor?visitor_id=ID&after=N`, exactly as PRODUCT.md states it.
//!
//! Files: this one holds the connection's life (upgrade, subscribe, resume, its select loop,
//! closing); `frames.rs` what the visitor's frames do and how answers become acks.
//!
//! One task per connection owns its socket. It reads frames (while fewer than
//! `limits.max_inflight` messages are unacknowledged), sends them to the dispatcher, and acks
//! each message — in the order sent — once the journal's durable LSN reaches it. Live frames
//! for the visitor arrive pre-encoded from fan-out, through the connection's fan-out
//! subscription ([`crate::fanout::Live`]).
//!
//! Writes are coalesced: frames are queued in the socket's write buffer and flushed once per
//! wake-up, after everything else that is ready without waiting (live frames, the
//! dispatcher's answers, acks for what is durable now) has been queued too. The journal
//! publishes the durable LSN just before it hands the batch to the fan-out, so a task woken by
//! the durable LSN whose message has not been echoed yet yields once first: the echo and its
//! ack then usually leave in one write. An ack is still only queued once its message is
//! durable.
//!
//! Memory: an idle connection is one task holding the socket (unsplit), its subscription and
//! small state. Rare, large await states (waiting for room in the dispatcher's queue, the
//! upload check, closing, resuming) are boxed. The channel for the dispatcher's answers is
//! created with the first message and dropped again (with the queues of messages in flight)
//! when the visitor has been silent for a ping interval with nothing in flight.
//!
//! Resume: the task subscribes first and learns the watermark W, then sends the stored
//! messages in (after, W] and only then live ones (all > W): none missing, none twice.
//!
//! A visitor who goes silent is asked: after two fifths of `limits.visitor_silence_secs`
//! without a frame from the client a ping goes out, and a connection that has not answered
//! anything (a pong, a frame) in `visitor_silence_secs` is closed with 1001, so dead peers and sockets held open without a
//! WebSocket client behind them do not pile up. Browsers answer pings by themselves.
//!
//! Bad input never closes the connection: an error frame is sent and reading goes on. The
//! exceptions are the protocol's own: a text frame with invalid UTF-8 (1007) and a frame over
//! the hard size cap (1009). Every close the server starts sends a close frame first, and a
//! client's close is answered with one echoing its code ([`answer_close`]) before the socket
//! drops, so neither side sees an abnormal closure.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::ws::{close_code, CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use futures_util::{Sink, SinkExt, StreamExt};
use serde::Deserialize;
use tokio::sync::{mpsc, watch};

use super::{ApiError, ApiQuery, AppState};
use crate::config::Config;
use crate::dispatch::{
    Command, CustomerMessage, DispatchError, Reply, StreamReply, VisitorRead, VisitorTyping,
};
use crate::fanout::{self, Audience, Live};
use crate::model::{bounded_id, After, ExternalId, Identity, Lsn, MessageId, WEB_CHANNEL};
use crate::store::queries;
use crate::wire::{self, FrameError, VisitorFrame};

mod frames;

/// Bytes tungstenite reads per syscall: small, so an idle connection costs little (a
/// 64-character message is a frame of about 110 bytes; larger ones take several reads).
pub const READ_BUFFER_BYTES: usize = 256;
/// Frames queued for the socket beyond this many bytes are written without waiting for the
/// flush; below it they wait for the one flush per wake-up.
const WRITE_BUFFER_BYTES: usize = 1024;
/// Stored messages sent per store read when a client resumes.
const RESUME_PAGE: u32 = 500;

#[derive(Deserialize)]
pub struct VisitorParams {
    /// The visitor id, or a signed identity (`user_id`, `user_name`, `user_email`,
    /// `user_signature`: see `visitor_api.rs`).
    #[serde(flatten)]
    creds: super::visitor_api::VisitorCredentials,
    /// Checked: the resume point goes into SQL.
    after: Option<After>,
}

/// The hard cap on one frame: beyond it tungstenite closes the connection (1009). Below it and
/// above `max_frame_bytes`, the frame is refused with an error frame.
pub fn hard_frame_cap(max_frame_bytes: usize) -> usize {
    (max_frame_bytes * 4).max(64 * 1024)
}

pub async fn upgrade(
    State(app): State<AppState>,
    headers: axum::http::HeaderMap,
    ApiQuery(params): ApiQuery<VisitorParams>,
    ws: WebSocketUpgrade,
) -> Result<Response, ApiError> {
    if !super::origin_allowed(&headers, &app.cfg().server.widget_origins) {
        return Err(ApiError::Forbidden);
    }
    // Shared with the fan-out's table, which keys this connection's subscription by it.
    let identity = Arc::new(
        match super::visitor_api::visitor_identity(&app, &params.creds).await? {
            Some((identity, _)) => identity,
            None => Identity {
                channel: bounded_id(WEB_CHANNEL)
                    .expect("invariant: the web channel name is a valid id"),
                external_id: new_visitor_id(),
            },
        },
    );
    let cfg = app.cfg();
    let cap = hard_frame_cap(cfg.limits.max_frame_bytes);
    Ok(ws
        .read_buffer_size(READ_BUFFER_BYTES)
        .write_buffer_size(WRITE_BUFFER_BYTES)
        .max_message_size(cap)
        .max_frame_size(cap)
        .on_upgrade(move |socket| serve(socket, app, cfg, identity, params.after.map(After::get)))
        .into_response())
}

fn new_visitor_id() -> ExternalId {
    let mut raw = [0u8; 12];
    getrandom::getrandom(&mut raw).expect("invariant: the OS random source is available");
    let hex: String = raw.iter().map(|b| format!("{b:02x}")).collect();
    bounded_id(&format!("v-{hex}")).expect("invariant: 26 hex-ish chars are a valid id")
}

struct Pending {
    client_id: crate::model::ClientId,
    message_id: MessageId,
    lsn: Lsn,
}

struct Connection {
    app: AppState,
    /// The configuration when the connection opened; a reload applies to later connections.
    cfg: Arc<Config>,
    identity: Arc<Identity>,
    socket: WebSocket,
    /// Answers from the dispatcher, in the order commands were sent. Created with the first
    /// message and dropped when idle again: an idle connection does not pay for the channel.
    replies_tx: Option<mpsc::Sender<StreamReply>>,
    /// Client ids of messages sent to the dispatcher and not yet answered, in order.
    unanswered: VecDeque<crate::model::ClientId>,
    /// Accepted messages waiting for durability, in send order.
    pending: VecDeque<Pending>,
    /// Commands sent and not yet acked or refused; bounded by `max_inflight`.
    inflight: usize,
    /// The last message id this client was sent, for the "reconnect with after=N" close.
    last_sent: MessageId,
    bucket: TokenBucket,
    /// The server sent a close frame: the client's reply is awaited before the socket drops.
    server_closed: bool,
}

async fn serve(
    socket: WebSocket,
    app: AppState,
    cfg: Arc<Config>,
    identity: Arc<Identity>,
    after: Option<MessageId>,
) {
    let _tracked = app.tracker.token();
    let bucket = TokenBucket::new(cfg.limits.messages_per_second, cfg.limits.burst);
    let mut conn = Connection {
        app,
        cfg,
        identity,
        socket,
        replies_tx: None,
        unanswered: VecDeque::new(),
        pending: VecDeque::new(),
        inflight: 0,
        last_sent: after.unwrap_or(0),
        bucket,
        server_closed: false,
    };
    if let Err(e) = conn.run(after).await {
        tracing::debug!(visitor = %conn.identity, error = %e, "visitor connection ended");
    }
    if conn.server_closed {
        // The close handshake: the client answers the server's close frame, then the TCP
        // connection ends; one that does not answer within a second is dropped.
        let reply = async {
            while let Some(Ok(m)) = conn.socket.next().await {
                if matches!(m, Message::Close(_)) {
                    break;
                }
            }
        };
        let _ = tokio::time::timeout(CLOSE_REPLY_WAIT, reply).await;
    }
}

/// How long a server-initiated close waits for the client's close frame.
const CLOSE_REPLY_WAIT: Duration = Duration::from_secs(1);

impl Connection {
    /// The connection's life: welcome, subscribe, resume, then one loop over the socket, the
    /// live feed, the dispatcher's answers and the durable mark.
    ///
    /// One piece on purpose: those sources are polled together by one `select!`, and its arms
    /// share the loop's state (what is in flight, what was acknowledged, the resume point).
    async fn run(&mut self, after: Option<MessageId>) -> Result<(), axum::Error> {
        self.send_text(wire::welcome(&self.identity.external_id, after))
            .await?;
        let (feed, mut live) = fanout::subscription(self.cfg.limits.subscriber_queue);
        // Setup and resume are boxed: their futures would otherwise enlarge this connection's
        // long-lived task by their size for its whole life.
        let subscribed = Box::pin(
            self.app
                .fanout
                .subscribe(Audience::Visitor(Arc::clone(&self.identity)), feed),
        )
        .await;
        let Some(watermark) = subscribed else {
            return self
                .close(close_code::RESTART, "server is stopping; reconnect")
                .await;
        };
        if let Some(after) = after {
            Box::pin(self.resume(after, watermark)).await?;
        }
        self.socket.flush().await?;
        let mut durable = self.app.durable.clone();
        let max_inflight = self.cfg.limits.max_inflight;
        let shutdown = self.app.shutdown.clone();
        let mut draining = false;
        let mut replies: Option<mpsc::Receiver<StreamReply>> = None;
        let mut last_heard = tokio::time::Instant::now();
        let silence_limit = Duration::from_secs(self.cfg.limits.visitor_silence_secs);
        let ping_after = silence_limit * 2 / 5;
        let ping = tokio::time::sleep(ping_after);
        tokio::pin!(ping);
        loop {
            if draining && self.inflight == 0 {
                return self
                    .close(close_code::AWAY, "server is restarting; reconnect")
                    .await;
            }
            // Cancel safety: every branch's future is cancel-safe — `Live::recv`, `recv` on
            // mpsc, `changed` on watch, `cancelled` on the token, and `StreamExt::next` on the
            // socket (it holds no partial frame outside the socket itself).
            tokio::select! {
                _ = shutdown.cancelled(), if !draining => draining = true,
                () = &mut ping => {
                    let silent = last_heard.elapsed();
                    if silent >= silence_limit {
                        return self.close(close_code::AWAY, "no answer to pings").await;
                    }
                    if silent >= ping_after {
                        self.socket.feed(Message::Ping(Default::default())).await?;
                        ping.as_mut().reset(tokio::time::Instant::now() + ping_after);
                        if self.inflight == 0 {
                            // Silent with nothing in flight: no answer can come, so the
                            // channel goes until the next message, and the (empty) queues of
                            // messages in flight give their memory back.
                            self.replies_tx = None;
                            replies = None;
                            self.unanswered = VecDeque::new();
                            self.pending = VecDeque::new();
                        }
                    } else {
                        ping.as_mut().reset(last_heard + ping_after);
                    }
                }
                frame = live.recv() => match frame {
                    Some((lsn, text)) => self.send_live(lsn, text).await?,
                    None => {
                        let reason = format!("too far behind; reconnect with after={}", self.last_sent);
                        return self.close(close_code::AGAIN, &reason).await;
                    }
                },
                Some(reply) = recv_reply(&mut replies), if replies.is_some() => {
                    let d = *durable.borrow_and_update();
                    self.on_reply(reply, d).await?;
                }
                changed = durable.changed(), if !self.pending.is_empty() => {
                    if changed.is_err() {
                        return self.close(close_code::ERROR, "storage stopped; reconnect later").await;
                    }
                    if self.pending.front().is_some_and(|p| p.lsn > self.last_sent) {
                        // The fan-out gets the batch just after the durable LSN moves: one
                        // turn of the scheduler usually brings the message's echo, which then
                        // leaves in the same write as its ack.
                        tokio::task::yield_now().await;
                    }
                    let d = *durable.borrow_and_update();
                    self.ack_durable(d).await?;
                }
                incoming = self.socket.next(), if !draining && self.inflight < max_inflight => {
                last_heard = tokio::time::Instant::now();
                if replies.is_none() && matches!(incoming, Some(Ok(Message::Text(_) | Message::Binary(_)))) {
                    let (tx, rx) = mpsc::channel(max_inflight);
                    self.replies_tx = Some(tx);
                    replies = Some(rx);
                }
                match incoming {
                    Some(Ok(Message::Text(text))) => self.on_frame(text.as_str()).await?,
                    Some(Ok(Message::Binary(bytes))) => match std::str::from_utf8(&bytes) {
                        Ok(text) => self.on_frame(text).await?,
                        Err(_) => self.send_error(FrameError::new("invalid_utf8", "frame is not valid UTF-8")).await?,
                    },
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                    Some(Ok(Message::Close(_))) => return answer_close(&mut self.socket).await,
                    None => return Ok(()),
                    Some(Err(e)) => {
                        let (code, reason) = protocol_close(&e);
                        let _ = self.close(code, reason).await;
                        return Err(e);
                    }
                }},
            }
            self.feed_ready(&mut live, replies.as_mut(), &mut durable)
                .await?;
            self.socket.flush().await?;
        }
    }

    /// Queues, without waiting for any of them, the frames that are ready besides the one
    /// that woke the task: live frames, the dispatcher's answers, acks for what is durable now.
    async fn feed_ready(
        &mut self,
        live: &mut Live,
        replies: Option<&mut mpsc::Receiver<StreamReply>>,
        durable: &mut watch::Receiver<Lsn>,
    ) -> Result<(), axum::Error> {
        // Bounded, so a busy feed cannot hold the task here: the rest waits for the next turn.
        for _ in 0..self.cfg.limits.subscriber_queue {
            let Ok((lsn, text)) = live.try_recv() else {
                break;
            };
            self.send_live(lsn, text).await?;
        }
        if let Some(replies) = replies {
            while let Ok(reply) = replies.try_recv() {
                let d = *durable.borrow_and_update();
                self.on_reply(reply, d).await?;
            }
        }
        if !self.pending.is_empty() && durable.has_changed().unwrap_or(false) {
            let d = *durable.borrow_and_update();
            self.ack_durable(d).await?;
        }
        Ok(())
    }

    async fn send_live(&mut self, lsn: Lsn, text: Utf8Bytes) -> Result<(), axum::Error> {
        self.send_text(text).await?;
        // Ephemeral frames (typing) carry LSN 0 and move no resume point.
        self.last_sent = self.last_sent.max(lsn);
        Ok(())
    }

    async fn resume(&mut self, after: MessageId, watermark: Lsn) -> Result<(), axum::Error> {
        if after >= watermark {
            return Ok(());
        }
        if self.app.wait_applied(watermark).await.is_err() {
            return self
                .close(close_code::AGAIN, "store is behind; reconnect")
                .await;
        }
        let identity = Identity::clone(&self.identity);
        let contact = self
            .app
            .reads
            .run(move |c| queries::contact_by_identity(c, &identity))
            .await;
        let Ok(Some(contact)) = contact else {
            return Ok(());
        };
        let mut cursor = after;
        loop {
            let page = self
                .app
                .reads
                .run(move |c| queries::contact_messages(c, contact, cursor, watermark, RESUME_PAGE))
                .await
                .unwrap_or_default();
            for m in &page {
                self.send_text(wire::visitor_message_row(m)).await?;
                cursor = m.id;
                self.last_sent = m.id;
            }
            if page.len() < RESUME_PAGE as usize {
                return Ok(());
            }
        }
    }

    /// Queues a frame; it goes out with the flush at the end of this wake-up (or earlier, once
    /// `WRITE_BUFFER_BYTES` are queued).
    async fn send_text(&mut self, text: Utf8Bytes) -> Result<(), axum::Error> {
        self.socket.feed(Message::Text(text)).await
    }

    async fn close(&mut self, code: u16, reason: &str) -> Result<(), axum::Error> {
        let frame = CloseFrame {
            code,
            reason: reason.to_owned().into(),
        };
        self.server_closed = true;
        // Boxed: the timeout is a state this connection's task would otherwise carry for life.
        Box::pin(async {
            let result = self.socket.send(Message::Close(Some(frame))).await;
            // Give the peer a moment to read the close frame before the socket drops.
            let _ = tokio::time::timeout(Duration::from_millis(100), self.socket.flush()).await;
            result
        })
        .await
    }
}

/// Completes the close handshake a peer started: reading its close frame queued the answer
/// (tungstenite echoes the peer's code), and closing the sink sends it.
pub async fn answer_close<S>(sink: &mut S) -> Result<(), axum::Error>
where
    S: Sink<Message, Error = axum::Error> + Unpin,
{
    tokio::time::timeout(Duration::from_millis(100), sink.close())
        .await
        .unwrap_or(Ok(()))
}

/// The next reply, once the reply channel exists (the branch is disabled until then).
async fn recv_reply(replies: &mut Option<mpsc::Receiver<StreamReply>>) -> Option<StreamReply> {
    replies.as_mut()?.recv().await
}

/// The close code and reason for a frame the WebSocket layer itself refused.
pub fn protocol_close(e: &axum::Error) -> (u16, &'static str) {
    use tokio_tungstenite::tungstenite::error::{CapacityError, Error as WsError};
    let inner = std::error::Error::source(e).and_then(|s| s.downcast_ref::<WsError>());
    match inner {
        Some(WsError::Capacity(CapacityError::MessageTooLong { .. })) => {
            (close_code::SIZE, "frame exceeds the hard size limit")
        }
        Some(WsError::Utf8(_)) => (close_code::INVALID, "text frame is not valid UTF-8"),
        _ => (close_code::PROTOCOL, "WebSocket protocol error"),
    }
}

/// Messages per second with a burst allowance.
struct TokenBucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    fn new(per_second: u32, burst: u32) -> Self {
        TokenBucket {
            rate: f64::from(per_second),
            burst: f64::from(burst),
            tokens: f64::from(burst),
            last: Instant::now(),
        }
    }

    fn take(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_allows_burst_then_rate() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(2, 3);
        b.last = t0;
        assert!((0..3).all(|_| b.take(t0)));
        assert!(!b.take(t0));
        assert!(b.take(t0 + Duration::from_millis(500)));
        assert!(!b.take(t0 + Duration::from_millis(500)));
    }

    /// The size of the future an `async fn` returns, without calling it.
    fn future_size<A, B, C, D, E, F: std::future::Future>(_: fn(A, B, C, D, E) -> F) -> usize {
        std::mem::size_of::<F>()
    }

    /// Every idle connection holds one of these for its life (plus the socket's buffers): a
    /// guard against a large await state joining it unboxed. The bound is for a debug build
    /// (2,408 bytes when written); release futures are smaller.
    #[test]
    fn the_connection_task_stays_small() {
        let size = future_size(serve);
        println!("visitor connection future: {size} bytes");
        assert!(size <= 2560, "visitor connection future is {size} bytes");
    }

    #[test]
    fn generated_visitor_ids_are_valid_and_distinct() {
        let a = new_visitor_id();
        assert!(a.starts_with("v-") && a.len() == 26);
        assert_ne!(a, new_visitor_id());
    }
}
