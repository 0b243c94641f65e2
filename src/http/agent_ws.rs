//! The agents' live feed, `/ws/agent?after=N` (token as bearer or `?token=`).
//!
//! Every committed message and conversation change, as `{"type":"message","seq":N,...}` and
//! `{"type":"conversation","seq":N,...}`, in LSN order. Resume works as for visitors: subscribe,
//! learn the watermark W, send the stored events in (after, W], then live ones. Closes are
//! as for visitors: the server's own with a close frame, a console's answered with one.
//!
//! A feed lives only as long as its token: it re-checks the token whenever the API revokes
//! tokens (logout, password reset, an agent disabled) and at every ping (which also catches
//! changes made with the `kefud agent` command), and closes with 1008 once it is gone.

use std::time::Duration;

use axum::extract::ws::{close_code, CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;

use super::{ApiQuery, AppState, Authed};
use crate::dispatch::Command;
use crate::fanout::{self, Audience};
use crate::model::{After, Lsn};
use crate::store::queries;
use crate::wire;

const RESUME_PAGE: u32 = 500;

/// How often the feed pings the console, and how long a silent console counts as there.
const PING_INTERVAL: Duration = Duration::from_secs(30);
const SILENCE_LIMIT: Duration = Duration::from_secs(75);

#[derive(Deserialize)]
pub struct AgentParams {
    /// Checked: the resume point goes into SQL.
    after: Option<After>,
}

pub async fn upgrade(
    State(app): State<AppState>,
    headers: axum::http::HeaderMap,
    Authed(agent, token): Authed,
    ApiQuery(params): ApiQuery<AgentParams>,
    ws: WebSocketUpgrade,
) -> Response {
    // The console is served by kefud itself: only a page from this origin may open the feed.
    if !super::origin_allowed(&headers, &[]) {
        return super::ApiError::Forbidden.into_response();
    }
    let cap = super::visitor_ws::hard_frame_cap(app.cfg().limits.max_frame_bytes);
    ws.read_buffer_size(super::visitor_ws::READ_BUFFER_BYTES)
        .write_buffer_size(0)
        .max_message_size(cap)
        .on_upgrade(move |socket| async move {
            let _tracked = app.tracker.token();
            // An open feed is the agent's presence: the scheduler assigns to them while any is.
            let presence = |connected| Command::AgentFeed {
                agent: agent.id,
                connected,
            };
            let _ = app.commands.send(presence(true)).await;
            if let Err(e) = serve(socket, &app, params.after.map(After::get), &token).await {
                tracing::debug!(agent = agent.id, error = %e, "agent connection ended");
            }
            let _ = app.commands.send(presence(false)).await;
        })
        .into_response()
}

/// Whether `token` still authenticates an enabled agent. A store error counts as yes: the
/// next check decides.
async fn token_valid(app: &AppState, token: &str) -> bool {
    let token = token.to_owned();
    !matches!(
        app.reads
            .run(move |c| crate::auth::authenticate(c, &token))
            .await,
        Ok(None)
    )
}

const SIGNED_OUT: &str = "signed out; log in again";

/// The agent feed's loop: the socket, the live records, token changes and the shutdown.
///
/// One piece on purpose: one `select!` over those sources, whose arms share the feed's state
/// (the resume point, the token's validity).
async fn serve(
    socket: WebSocket,
    app: &AppState,
    after: Option<Lsn>,
    token: &str,
) -> Result<(), axum::Error> {
    let mut auth_changes = app.auth_changes.subscribe();
    let (mut sink, mut stream) = socket.split();
    let (feed, mut live) = fanout::subscription(app.cfg().limits.subscriber_queue);
    let Some(watermark) = app.fanout.subscribe(Audience::Agents, feed).await else {
        return close(
            &mut sink,
            close_code::RESTART,
            "server is stopping; reconnect",
        )
        .await;
    };
    let mut last_sent = after.unwrap_or(watermark);
    if let Some(after) = after.filter(|a| *a < watermark) {
        if app.wait_applied(watermark).await.is_err() {
            return close(&mut sink, close_code::AGAIN, "store is behind; reconnect").await;
        }
        let mut cursor = after;
        loop {
            let page = app
                .reads
                .run(move |c| queries::agent_events(c, cursor, watermark, RESUME_PAGE))
                .await
                .unwrap_or_default();
            for e in &page {
                sink.send(Message::Text(wire::agent_event_row(e))).await?;
                cursor = e.lsn();
                last_sent = cursor;
            }
            if page.is_empty() || cursor >= watermark {
                break;
            }
        }
    }
    let shutdown = app.shutdown.clone();
    // This feed is the agent's presence: a console that vanished without closing (a phone
    // that lost Wi-Fi) must not keep receiving conversations. Ping, and give up on silence.
    // The first ping one interval in: a console that just connected has nothing to prove.
    let mut ping =
        tokio::time::interval_at(tokio::time::Instant::now() + PING_INTERVAL, PING_INTERVAL);
    let mut last_heard = tokio::time::Instant::now();
    loop {
        // Cancel safety: `cancelled`, watch `changed`, `Live::recv`, `Interval::tick` and the
        // socket stream's `next` are all cancel-safe.
        tokio::select! {
            _ = shutdown.cancelled() => return close(&mut sink, close_code::AWAY, "server is restarting; reconnect").await,
            Ok(()) = auth_changes.changed() => {
                if !token_valid(app, token).await {
                    return close(&mut sink, close_code::POLICY, SIGNED_OUT).await;
                }
            }
            _ = ping.tick() => {
                if last_heard.elapsed() > SILENCE_LIMIT {
                    return close(&mut sink, close_code::AWAY, "no answer to pings; reconnect").await;
                }
                if !token_valid(app, token).await {
                    return close(&mut sink, close_code::POLICY, SIGNED_OUT).await;
                }
                sink.send(Message::Ping(Default::default())).await?;
            }
            frame = live.recv() => match frame {
                Some((lsn, text)) => {
                    sink.send(Message::Text(text)).await?;
                    // Ephemeral frames (typing) carry LSN 0 and move no resume point.
                    last_sent = last_sent.max(lsn);
                }
                None => {
                    let reason = format!("too far behind; reconnect with after={last_sent}");
                    return close(&mut sink, close_code::AGAIN, &reason).await;
                }
            },
            incoming = stream.next() => match incoming {
                Some(Ok(Message::Close(_))) => return super::visitor_ws::answer_close(&mut sink).await,
                None => return Ok(()),
                Some(Ok(_)) => last_heard = tokio::time::Instant::now(),
                Some(Err(e)) => return Err(e),
            },
        }
    }
}

async fn close(
    sink: &mut futures_util::stream::SplitSink<WebSocket, Message>,
    code: u16,
    reason: &str,
) -> Result<(), axum::Error> {
    let result = sink
        .send(Message::Close(Some(CloseFrame {
            code,
            reason: reason.to_owned().into(),
        })))
        .await;
    let _ = tokio::time::timeout(Duration::from_millis(100), sink.flush()).await;
    result
}
