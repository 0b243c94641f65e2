//! Extractors whose rejections are [`ApiError`]s (JSON bodies, queries, paths with checked ids,
//! the agent's bearer token), and the WebSocket origin check.

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::Json;
use serde::de::DeserializeOwned;

use super::{refused, ApiError, AppState};
use crate::auth::Agent;

/// Whether a WebSocket upgrade's `Origin` may connect: no Origin (not a browser), the same
/// origin as the request's Host, or one of `allowed` (`"*"`: any; otherwise exact origins such
/// as `"https://shop.example"`). Browsers always send Origin on WebSocket upgrades, so a page
/// on another site cannot open a socket with a visitor's or agent's credentials.
pub fn origin_allowed(headers: &axum::http::HeaderMap, allowed: &[String]) -> bool {
    let Some(origin) = headers.get(axum::http::header::ORIGIN) else {
        return true;
    };
    let Ok(origin) = origin.to_str() else {
        return false;
    };
    let host = headers
        .get(axum::http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    let same = origin
        .split_once("://")
        .is_some_and(|(_, rest)| rest.eq_ignore_ascii_case(host));
    same || allowed
        .iter()
        .any(|a| a == "*" || a.eq_ignore_ascii_case(origin))
}

/// `Json<T>` whose rejection is an [`ApiError`] (`bad_json`) rather than axum's plain text.
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(v)) => Ok(ApiJson(v)),
            Err(rejection) => Err(refused("bad_json", rejection.body_text())),
        }
    }
}

/// `Query<T>` with an [`ApiError`] (`bad_query`) rejection.
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(v)) => Ok(ApiQuery(v)),
            Err(rejection) => Err(refused("bad_query", rejection.body_text())),
        }
    }
}

/// `Path<T>` with an [`ApiError`] (`bad_path`) rejection.
pub struct ApiPath<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(v)) => Ok(ApiPath(v)),
            Err(rejection) => Err(refused("bad_path", rejection.body_text())),
        }
    }
}

/// The agent a request is authenticated as: `Authorization: Bearer TOKEN`, or `?token=` for
/// WebSocket upgrades (browsers cannot set headers on them).
pub struct Authed(pub Agent, pub String);

impl FromRequestParts<AppState> for Authed {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let token = bearer_token(parts).ok_or(ApiError::Unauthorized)?;
        let lookup = token.clone();
        let agent = state
            .reads
            .run(move |conn| crate::auth::authenticate(conn, &lookup))
            .await?;
        agent
            .map(|a| Authed(a, token))
            .ok_or(ApiError::Unauthorized)
    }
}

pub fn bearer_token(parts: &Parts) -> Option<String> {
    if let Some(value) = parts.headers.get(axum::http::header::AUTHORIZATION) {
        let value = value.to_str().ok()?;
        let token = value
            .strip_prefix("Bearer ")
            .or_else(|| value.strip_prefix("bearer "))?;
        return Some(token.trim().to_string());
    }
    let query = parts.uri.query()?;
    query
        .split('&')
        .find_map(|pair| pair.strip_prefix("token="))
        .map(str::to_string)
}
