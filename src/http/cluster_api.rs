//! `GET /api/v1/cluster` (any agent): this box's node id and, in cluster mode, the cluster as
//! this box sees it: the boxes heard from (online, last seen, how far behind each this box
//! is, clock skew), operations waiting for a gap to be filled, whether this box is in sync,
//! and the link's counters (forged and malformed messages dropped, duplicates, requests).

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};

use super::{AppState, Authed};
use crate::cluster::node;

pub fn router() -> Router<AppState> {
    Router::new().route("/cluster", get(cluster))
}

async fn cluster(State(app): State<AppState>, _agent: Authed) -> Json<serde_json::Value> {
    Json(match &app.cluster {
        Some(stats) => serde_json::json!({
            "enabled": true,
            "view": stats.view(),
        }),
        None => serde_json::json!({
            "enabled": false,
            "view": { "node": node::display(app.node) },
        }),
    })
}
