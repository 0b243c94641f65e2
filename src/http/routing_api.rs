//! The routing API under `/api/v1`: the knowledge base (entries, import, export, match),
//! agents' teams, capacity and presence, conversation summaries and the response-time report.
//!
//! Knowledge-base and agent changes need an admin; reads and matching any agent. Changes go
//! through the dispatcher (journaled, durable before the answer), which rebuilds the index.

use std::collections::BTreeMap;

use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, patch, post, put};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;

use super::report_csv::{self, Cell};
use super::reports_api::{self, ReportQuery};
use super::{ApiError, ApiJson, ApiPath, ApiQuery, AppState, Authed};
use crate::auth::{self, Agent};
use crate::dispatch::{Command, KbChange};
use crate::model::{AgentId, RowId, Sender};
use crate::op::KbEntry;
use crate::routing::knowledge::{self, Format};
use crate::routing::{llm, report, summary};
use crate::store::queries;

/// Knowledge-base import files may be large (CLINC150 is 2 MB).
const MAX_IMPORT_BYTES: usize = 32 * 1024 * 1024;

pub fn router() -> axum::Router<AppState> {
    Router::new()
        .route("/kb/entries", get(list_entries))
        .route("/kb/entries/{intent}", put(put_entry).delete(delete_entry))
        .route(
            "/kb/import",
            post(import).layer(DefaultBodyLimit::max(MAX_IMPORT_BYTES)),
        )
        .route("/kb/export", get(export))
        .route("/kb/match", post(match_text))
        .route("/agents/{id}", patch(update_agent))
        .route("/agents/presence", get(presence))
        .route("/me/presence", post(set_presence))
        .route("/conversations/{id}/summary", get(conversation_summary))
        .route("/reports/response-times", get(response_times))
}

pub(super) fn require_admin(agent: &Agent) -> Result<(), ApiError> {
    if agent.is_admin {
        Ok(())
    } else {
        Err(ApiError::Forbidden)
    }
}

async fn kb_change(app: &AppState, put: Vec<KbEntry>, delete: Vec<String>) -> Result<(), ApiError> {
    let change = KbChange { put, delete };
    app.dispatch(|reply| Command::KbChange(change, reply))
        .await
        .map(drop)
}

#[derive(Serialize)]
struct EntryView<'a> {
    intent: &'a str,
    examples: &'a [String],
    answer: &'a str,
    team: &'a str,
}

impl<'a> From<&'a KbEntry> for EntryView<'a> {
    fn from(e: &'a KbEntry) -> Self {
        EntryView {
            intent: &e.intent,
            examples: &e.examples,
            answer: &e.answer,
            team: &e.team,
        }
    }
}

async fn list_entries(
    State(app): State<AppState>,
    Authed(_, _): Authed,
) -> Json<serde_json::Value> {
    let kb = app.kb.borrow().clone();
    let entries: Vec<EntryView<'_>> = kb.entries().map(EntryView::from).collect();
    Json(serde_json::json!({ "entries": entries }))
}

#[derive(Deserialize)]
struct EntryBody {
    examples: Vec<String>,
    #[serde(default)]
    answer: String,
    #[serde(default)]
    team: String,
}

async fn put_entry(
    State(app): State<AppState>,
    Authed(agent, _): Authed,
    ApiPath(intent): ApiPath<String>,
    ApiJson(body): ApiJson<EntryBody>,
) -> Result<Json<serde_json::Value>, ApiError> {
    require_admin(&agent)?;
    // The import parser checks every limit; an entry is its lines.
    let lines: String = body
        .examples
        .iter()
        .map(|text| {
            serde_json::json!({"intent": intent, "text": text, "answer": body.answer, "team": body.team})
                .to_string()
                + "\n"
        })
        .collect();
    let mut entries = knowledge::parse_import(&lines, Format::JsonLines)
        .map_err(|e| ApiError::bad_request("bad_entry", format!("example {}", e)))?;
    let Some(mut entry) = entries.pop() else {
        return Err(ApiError::bad_request(
            "bad_entry",
            "an entry needs at least one example question",
        ));
    };
    entry.answer = body.answer.trim().to_string();
    entry.team = body.team.trim().to_string();
    kb_change(&app, vec![entry.clone()], vec![]).await?;
    Ok(Json(serde_json::json!(EntryView::from(&entry))))
}

async fn delete_entry(
    State(app): State<AppState>,
    Authed(agent, _): Authed,
    ApiPath(intent): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    require_admin(&agent)?;
    if app.kb.borrow().get(&intent).is_none() {
        return Err(ApiError::NotFound(format!(
            "no knowledge-base entry {intent:?}"
        )));
    }
    kb_change(&app, vec![], vec![intent]).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, Default)]
struct FormatQuery {
    /// `jsonl` (default) or `csv`.
    format: Option<String>,
    /// Import: remove entries the file does not mention.
    #[serde(default)]
    replace: bool,
}

fn format_of(q: &FormatQuery) -> Result<Format, ApiError> {
    match q.format.as_deref() {
        None => Ok(Format::JsonLines),
        Some(f) => Format::parse(f).ok_or_else(|| {
            ApiError::bad_request(
                "bad_format",
                format!("unknown format {f:?}; use jsonl or csv"),
            )
        }),
    }
}

async fn import(
    State(app): State<AppState>,
    Authed(agent, _): Authed,
    ApiQuery(q): ApiQuery<FormatQuery>,
    body: axum::body::Bytes,
) -> Result<Json<serde_json::Value>, ApiError> {
    require_admin(&agent)?;
    let format = format_of(&q)?;
    // Parsing a large file is CPU work: off the async workers.
    let entries = tokio::task::spawn_blocking(move || {
        let text = std::str::from_utf8(&body).map_err(|e| {
            ApiError::bad_request("bad_encoding", format!("the file is not UTF-8: {e}"))
        })?;
        knowledge::parse_import(text, format)
            .map_err(|e| ApiError::bad_request("bad_import", e.to_string()))
    })
    .await
    .map_err(|_| ApiError::Internal("import parser panicked".into()))??;
    let examples: usize = entries.iter().map(|e| e.examples.len()).sum();
    let count = entries.len();
    let delete = if q.replace {
        let keep: std::collections::HashSet<&str> =
            entries.iter().map(|e| e.intent.as_str()).collect();
        app.kb
            .borrow()
            .entries()
            .filter(|e| !keep.contains(e.intent.as_str()))
            .map(|e| e.intent.clone())
            .collect()
    } else {
        Vec::new()
    };
    kb_change(&app, entries, delete).await?;
    Ok(Json(
        serde_json::json!({ "entries": count, "examples": examples }),
    ))
}

async fn export(
    State(app): State<AppState>,
    Authed(_, _): Authed,
    ApiQuery(q): ApiQuery<FormatQuery>,
) -> Result<impl IntoResponse, ApiError> {
    let format = format_of(&q)?;
    let kb = app.kb.borrow().clone();
    let body = knowledge::export(kb.entries(), format);
    let content_type = match format {
        Format::JsonLines => "application/x-ndjson; charset=utf-8",
        Format::Csv => "text/csv; charset=utf-8",
    };
    Ok(([(header::CONTENT_TYPE, content_type)], body))
}

#[derive(Deserialize)]
struct MatchBody {
    text: String,
}

async fn match_text(
    State(app): State<AppState>,
    Authed(_, _): Authed,
    ApiJson(body): ApiJson<MatchBody>,
) -> Json<serde_json::Value> {
    let kb = app.kb.borrow().clone();
    let threshold = app.cfg().routing.bot_threshold;
    Json(match kb.classify(&body.text) {
        Some(m) => serde_json::json!({
            "intent": m.entry.intent,
            "score": m.score,
            "confident": m.score >= threshold,
            "answer": m.entry.answer,
            "team": m.entry.team,
        }),
        None => serde_json::json!({ "intent": null, "score": 0.0, "confident": false }),
    })
}

#[derive(Deserialize)]
struct AgentUpdate {
    teams: Option<Vec<String>>,
    capacity: Option<u32>,
    disabled: Option<bool>,
    is_admin: Option<bool>,
}

async fn update_agent(
    State(app): State<AppState>,
    Authed(agent, _): Authed,
    ApiPath(id): ApiPath<RowId>,
    ApiJson(body): ApiJson<AgentUpdate>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let id = id.get();
    require_admin(&agent)?;
    if body.capacity.is_some_and(|c| c > 1000) {
        return Err(ApiError::bad_request(
            "bad_capacity",
            "capacity must be at most 1000",
        ));
    }
    let teams: Option<Vec<String>> = body.teams.map(|t| {
        t.iter()
            .map(|x| x.trim().replace(',', " "))
            .filter(|x| !x.is_empty())
            .collect()
    });
    app.reads
        .run(move |conn| {
            auth::update_agent(
                conn,
                id,
                teams.as_deref(),
                body.capacity,
                body.disabled,
                body.is_admin,
            )
        })
        .await?;
    if body.disabled == Some(true) {
        app.tokens_changed();
    }
    app.commands
        .send(Command::AgentChanged { agent: id })
        .await
        .map_err(|_| ApiError::Unavailable)?;
    let routing = app
        .reads
        .run(move |conn| queries::routing_agent(conn, id))
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no agent {id}")))?;
    Ok(Json(serde_json::json!({
        "id": id,
        "teams": routing.teams,
        "capacity": routing.capacity,
        "disabled": routing.disabled,
    })))
}

async fn presence(
    State(app): State<AppState>,
    Authed(_, _): Authed,
) -> Result<Json<serde_json::Value>, ApiError> {
    let (tx, rx) = oneshot::channel();
    app.commands
        .send(Command::Roster { reply: tx })
        .await
        .map_err(|_| ApiError::Unavailable)?;
    let roster = rx.await.map_err(|_| ApiError::Unavailable)?;
    let mut agents: BTreeMap<AgentId, serde_json::Value> = BTreeMap::new();
    for (id, slot) in roster {
        let status = if slot.is_online() {
            "online"
        } else if slot.connections > 0 && slot.away {
            "away"
        } else {
            "offline"
        };
        agents.insert(
            id,
            serde_json::json!({
                "id": id, "presence": status, "open": slot.open,
                "capacity": slot.capacity, "teams": slot.teams,
            }),
        );
    }
    Ok(Json(
        serde_json::json!({ "agents": agents.into_values().collect::<Vec<_>>() }),
    ))
}

#[derive(Deserialize)]
struct PresenceBody {
    /// `online` or `away`.
    status: String,
}

async fn set_presence(
    State(app): State<AppState>,
    Authed(agent, _): Authed,
    ApiJson(body): ApiJson<PresenceBody>,
) -> Result<StatusCode, ApiError> {
    let away = match body.status.as_str() {
        "online" => false,
        "away" => true,
        other => {
            return Err(ApiError::bad_request(
                "bad_presence",
                format!(
                "unknown status {other:?}; use online or away (offline is having no console open)"
            ),
            ))
        }
    };
    app.commands
        .send(Command::AgentAway {
            agent: agent.id,
            away,
        })
        .await
        .map_err(|_| ApiError::Unavailable)?;
    Ok(StatusCode::NO_CONTENT)
}

/// Messages a summary reads at most (the newest ones).
const SUMMARY_MESSAGES: u32 = 1000;

async fn conversation_summary(
    State(app): State<AppState>,
    Authed(_, _): Authed,
    ApiPath(id): ApiPath<RowId>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let id = id.get();
    app.wait_store_current().await?;
    let cfg = app.cfg();
    let threshold = cfg.routing.bot_threshold;
    let (conversation, rows, topics) = app
        .reads
        .run(move |conn| {
            let c = queries::conversation(conn, id)?;
            let rows = queries::latest_conversation_messages(conn, id, SUMMARY_MESSAGES)?;
            let topics = queries::conversation_intents(conn, id, threshold)?;
            Ok::<_, crate::store::Error>((c, rows, topics))
        })
        .await?;
    let conversation =
        conversation.ok_or_else(|| ApiError::NotFound(format!("conversation {id} not found")))?;
    let messages: Vec<(Sender, String)> = rows
        .into_iter()
        .filter_map(|m| Some((Sender::parse(&m.sender)?, m.text)))
        .filter(|(sender, _)| *sender != Sender::Note)
        .collect();
    let long_enough = messages.len() > cfg.routing.summary_after_messages;
    let sentences = if long_enough {
        cfg.routing.summary_sentences
    } else {
        0
    };
    // Tokenising up to a thousand messages is CPU work: off the async workers.
    let (messages, s) = tokio::task::spawn_blocking(move || {
        let s = summary::summarise(&messages, sentences, topics);
        (messages, s)
    })
    .await
    .map_err(|_| ApiError::Internal("summariser panicked".into()))?;
    let mut answer = serde_json::json!({
        "conversation_id": conversation.id,
        "messages": messages.len(),
        "summarised": long_enough,
        "source": "extractive",
        "summary": s,
    });
    if let Some(llm_cfg) = cfg.routing.llm().filter(|_| long_enough) {
        let transcript: String = messages
            .iter()
            .map(|(sender, text)| {
                let who = match sender {
                    Sender::Visitor => "Customer",
                    Sender::Agent => "Agent",
                    Sender::Bot | Sender::Note => "Bot",
                };
                format!("{who}: {text}\n")
            })
            .collect();
        match llm::summarise(&llm_cfg, &transcript).await {
            Ok(text) => {
                answer["source"] = "llm".into();
                answer["llm_summary"] = text.into();
            }
            Err(e) => {
                tracing::warn!(conversation = id, error = %e, "language-model summary failed; using the extractive one");
                answer["llm_error"] = e.to_string().into();
            }
        }
    }
    Ok(Json(answer))
}

/// `GET /reports/response-times?days=&utc_offset=&format=` (the query: `reports_api.rs`).
async fn response_times(
    State(app): State<AppState>,
    Authed(_, _): Authed,
    ApiQuery(q): ApiQuery<ReportQuery>,
) -> Result<axum::response::Response, ApiError> {
    let (window, format) = q.parse(crate::model::now_ms())?;
    app.wait_store_current().await?;
    let rows = app
        .reads
        .run(move |conn| queries::conversation_milestones(conn, window.since_ms))
        .await?;
    let days = report::daily(&rows, window.offset_ms);
    if format == reports_api::Format::Json {
        return Ok(Json(serde_json::json!({ "days": days })).into_response());
    }
    let p = |p: &Option<report::Percentiles>| {
        [
            Cell::num(p.as_ref().map(|p| p.count)),
            Cell::num(p.as_ref().map(|p| p.median_secs)),
            Cell::num(p.as_ref().map(|p| p.p90_secs)),
        ]
    };
    let rows: Vec<Vec<Cell>> = days
        .iter()
        .map(|d| {
            [Cell::text(d.day.clone()), Cell::num(Some(d.conversations))]
                .into_iter()
                .chain(p(&d.time_to_assignment))
                .chain(p(&d.first_response))
                .chain(p(&d.resolution))
                .collect()
        })
        .collect();
    report_csv::download(
        "response-times",
        &window.today_date(),
        &[
            "day",
            "conversations",
            "assigned",
            "assignment_median_secs",
            "assignment_p90_secs",
            "first_responses",
            "first_response_median_secs",
            "first_response_p90_secs",
            "resolved",
            "resolution_median_secs",
            "resolution_p90_secs",
        ],
        &rows,
    )
}
