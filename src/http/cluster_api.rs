//! `GET /api/v1/cluster` (any agent): this box's node id and, in cluster mode, the cluster as
//! this box sees it: the boxes heard from (online, last seen, how far behind each this box
//! is, clock skew), operations waiting for a gap to be filled, whether this box is in sync,
//! and the link's counters (forged and malformed messages dropped, duplicates, requests);
//! with each box, its agents as it last published them (name, presence, load).
//!
//! Also the cluster's side of `POST /conversations/{id}/assign`: giving a conversation to an
//! agent who signs in on another box (`{"agent_id", "node"}`), checked against that box's
//! roster.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};

use super::{ApiError, AppState, Authed};
use crate::cluster::node;
use crate::cluster::register::AgentRef;
use crate::dispatch::{AssignElsewhere, Command};
use crate::model::{AgentId, ConversationId};

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

fn parse_node(node: &str) -> Result<u64, ApiError> {
    u64::from_str_radix(node, 16)
        .ok()
        .filter(|_| node.len() == 16)
        .ok_or_else(|| {
            ApiError::bad_request(
                "bad_node",
                format!("node {node:?}: 16 hex digits, as /api/v1/cluster shows"),
            )
        })
}

/// Whether `node` names another box (this box's own id means an agent of this box).
pub(super) fn is_elsewhere(app: &AppState, node: &str) -> Result<bool, ApiError> {
    Ok(parse_node(node)? != app.node)
}

/// Gives `conversation` to agent `agent` of box `node`, which must be in the cluster's view
/// with that agent on its roster.
pub(super) async fn assign_elsewhere(
    app: &AppState,
    conversation: ConversationId,
    node: &str,
    agent: AgentId,
    by: AgentId,
) -> Result<(), ApiError> {
    let Some(stats) = &app.cluster else {
        return Err(ApiError::bad_request(
            "not_clustered",
            "this box is not in a cluster: leave out node",
        ));
    };
    let node_id = parse_node(node)?;
    let display = node::display(node_id);
    let name = stats
        .view()
        .peers
        .into_iter()
        .find(|p| p.node == display)
        .and_then(|p| p.agents.into_iter().find(|a| a.id == agent))
        .map(|a| a.name)
        .ok_or_else(|| {
            ApiError::bad_request(
                "bad_agent",
                format!("no agent {agent} on box {display} (as far as this box has heard)"),
            )
        })?;
    let assign = AssignElsewhere {
        conversation,
        to: AgentRef {
            node: node_id,
            agent,
        },
        name,
        by,
    };
    app.dispatch(|reply| Command::AssignElsewhere(assign, reply))
        .await?;
    Ok(())
}
