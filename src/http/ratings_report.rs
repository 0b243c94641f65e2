//! The ratings report, `GET /api/v1/reports/ratings?days=N&utc_offset=M[&format=csv]`
//! (agents; the query every report takes, `reports_api.rs`): ratings per local day and per
//! agent who held the conversation, with the newest comments; as CSV, one row per day and per
//! agent.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};

use super::report_csv::{self, Cell};
use super::reports_api::{Format, ReportQuery};
use super::{ApiError, ApiQuery, AppState, Authed};
use crate::store::queries::{self, RatingTally};

pub fn router() -> Router<AppState> {
    Router::new().route("/reports/ratings", get(ratings))
}

async fn ratings(
    State(app): State<AppState>,
    Authed(_, _): Authed,
    ApiQuery(q): ApiQuery<ReportQuery>,
) -> Result<Response, ApiError> {
    let (window, format) = q.parse(crate::model::now_ms())?;
    app.wait_store_current().await?;
    let report = app
        .reads
        .run(move |c| queries::ratings_report(c, window.since_ms, window.offset_ms))
        .await?;
    if format == Format::Json {
        return Ok(Json(report).into_response());
    }
    let tally = |t: &RatingTally| {
        let mut cells = vec![
            Cell::num(Some(t.count)),
            Cell::text(format!("{:.2}", t.average)),
        ];
        cells.extend(t.scores.iter().map(|n| Cell::num(Some(*n))));
        cells
    };
    let mut rows: Vec<Vec<Cell>> = Vec::new();
    for d in &report.days {
        let mut row = vec![Cell::text("day"), Cell::text(d.day.clone()), Cell::text("")];
        row.extend(tally(&d.tally));
        rows.push(row);
    }
    for a in &report.agents {
        let mut row = vec![
            Cell::text("agent"),
            Cell::num(a.agent_id),
            Cell::text(a.name.clone().unwrap_or_default()),
        ];
        row.extend(tally(&a.tally));
        rows.push(row);
    }
    report_csv::download(
        "ratings",
        &window.today_date(),
        &[
            "group", "key", "name", "count", "average", "score_1", "score_2", "score_3", "score_4",
            "score_5",
        ],
        &rows,
    )
}
