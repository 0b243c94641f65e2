//! The reports' shared query (`days`, `utc_offset`, `format`) and the messages-per-hour
//! report, `GET /api/v1/reports/hourly`. The response-time report is in `routing_api.rs`
//! and uses the same query.
//!
//! Any agent may read a report. `days` (default 7) is 1 to 366 and `utc_offset` (default 0,
//! minutes east of UTC: 480 for China) −720 to 840; anything else is 400 `bad_days` /
//! `bad_utc_offset`. `format=csv` answers a download (report_csv.rs), `format=json` (the
//! default) JSON; another format is 400 `bad_format`.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;

use super::report_csv::{self, Cell};
use super::{ApiError, ApiQuery, AppState, Authed};
use crate::routing::report::{self, Window, WindowError};
use crate::store::queries;

pub fn router() -> Router<AppState> {
    Router::new().route("/reports/hourly", get(hourly))
}

/// The query every report takes.
#[derive(Deserialize)]
pub struct ReportQuery {
    days: Option<u32>,
    utc_offset: Option<i32>,
    format: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Format {
    Json,
    Csv,
}

impl ReportQuery {
    /// The window from now and the output format.
    ///
    /// # Errors
    /// 400 `bad_days`, `bad_utc_offset` or `bad_format`.
    pub fn parse(&self, now_ms: i64) -> Result<(Window, Format), ApiError> {
        let window = Window::new(now_ms, self.days.unwrap_or(7), self.utc_offset.unwrap_or(0))
            .map_err(|e| match e {
                WindowError::Days => ApiError::bad_request("bad_days", e.to_string()),
                WindowError::Offset => ApiError::bad_request("bad_utc_offset", e.to_string()),
            })?;
        let format = match self.format.as_deref() {
            None | Some("json") => Format::Json,
            Some("csv") => Format::Csv,
            Some(_) => {
                return Err(ApiError::bad_request(
                    "bad_format",
                    "format must be json or csv",
                ))
            }
        };
        Ok((window, format))
    }
}

async fn hourly(
    State(app): State<AppState>,
    Authed(_, _): Authed,
    ApiQuery(q): ApiQuery<ReportQuery>,
) -> Result<Response, ApiError> {
    let (window, format) = q.parse(crate::model::now_ms())?;
    app.wait_store_current().await?;
    let rows = app
        .reads
        .run(move |conn| queries::messages_by_hour(conn, window.since_ms, window.offset_ms))
        .await?;
    let hours = report::hourly(&rows);
    if format == Format::Csv {
        let rows: Vec<Vec<Cell>> = hours
            .iter()
            .map(|h| {
                vec![
                    Cell::num(Some(h.hour)),
                    Cell::num(Some(h.customer)),
                    Cell::num(Some(h.agent)),
                ]
            })
            .collect();
        return report_csv::download(
            "hourly",
            &window.today_date(),
            &["hour", "customer_messages", "agent_messages"],
            &rows,
        );
    }
    Ok(Json(serde_json::json!({
        "days": window.days,
        "utc_offset": window.offset_ms / 60_000,
        "since": window.since_date(),
        "hours": hours,
    }))
    .into_response())
}
