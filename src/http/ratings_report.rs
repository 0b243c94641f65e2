//! The ratings report, `GET /api/v1/reports/ratings?days=N[&format=csv]` (agents): ratings
//! per (UTC) day and per agent who held the conversation, with the newest comments; as CSV,
//! one row per day and per agent.

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;

use super::{ApiError, ApiQuery, AppState, Authed};
use crate::store::queries::{self, RatingsReport};

pub fn router() -> Router<AppState> {
    Router::new().route("/reports/ratings", get(ratings))
}

#[derive(Deserialize)]
struct ReportQuery {
    /// Days back from today (UTC), today included: 1 to 366, 7 when not given.
    days: Option<u32>,
    /// `json` (the default) or `csv`.
    format: Option<String>,
}

async fn ratings(
    State(app): State<AppState>,
    Authed(_, _): Authed,
    ApiQuery(q): ApiQuery<ReportQuery>,
) -> Result<Response, ApiError> {
    let days = i64::from(q.days.unwrap_or(7));
    if !(1..=366).contains(&days) {
        return Err(ApiError::bad_request("bad_days", "days is 1 to 366"));
    }
    let csv = match q.format.as_deref() {
        None | Some("json") => false,
        Some("csv") => true,
        Some(other) => {
            return Err(ApiError::bad_request(
                "bad_format",
                format!("format {other:?}: use json or csv"),
            ))
        }
    };
    let now = crate::model::now_ms();
    let since = (now.div_euclid(86_400_000) - days + 1) * 86_400_000;
    app.wait_store_current().await?;
    let report = app
        .reads
        .run(move |c| queries::ratings_report(c, since))
        .await?;
    if !csv {
        return Ok(Json(report).into_response());
    }
    let body = report_csv(&report).map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"kefud-ratings-{days}d.csv\""),
            ),
        ],
        body,
    )
        .into_response())
}

/// One row per day, then one per agent: `group,key,name,count,average,1,2,3,4,5`.
fn report_csv(report: &RatingsReport) -> Result<Vec<u8>, csv::Error> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record([
        "group", "key", "name", "count", "average", "score_1", "score_2", "score_3", "score_4",
        "score_5",
    ])?;
    let tally_fields = |t: &queries::RatingTally| {
        let mut f = vec![t.count.to_string(), format!("{:.2}", t.average)];
        f.extend(t.scores.iter().map(u64::to_string));
        f
    };
    for d in &report.days {
        let mut row = vec!["day".to_string(), d.day.clone(), String::new()];
        row.extend(tally_fields(&d.tally));
        w.write_record(&row)?;
    }
    for a in &report.agents {
        let mut row = vec![
            "agent".to_string(),
            a.agent_id.map(|id| id.to_string()).unwrap_or_default(),
            a.name.clone().unwrap_or_default(),
        ];
        row.extend(tally_fields(&a.tally));
        w.write_record(&row)?;
    }
    w.into_inner().map_err(|e| e.into_error().into())
}
