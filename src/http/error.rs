//! The API's one error type: every handler answers `{"code": "...", "message": "..."}` with a
//! status chosen per [`ApiError`] variant; internal details are logged, never sent.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;

use crate::dispatch::DispatchError;

/// An API error with a stable `code`.
#[derive(Debug)]
pub enum ApiError {
    Unauthorized,
    InvalidCredentials,
    BadRequest {
        code: &'static str,
        message: String,
    },
    /// The caller is authenticated but not allowed (admin-only endpoints).
    Forbidden,
    /// The caller may not do this to this thing (a customer rating another's conversation).
    Denied {
        code: &'static str,
        message: String,
    },
    NotFound(String),
    Conflict(String),
    /// The thing to create exists already (a username, a shortcut; setup done).
    Exists(&'static str, String),
    /// The disk is full: nothing was stored.
    Full,
    PayloadTooLarge(String),
    /// Well-formed, but refused for what it is (an update bundle that is not signed, not
    /// newer, for another box).
    Unprocessable {
        code: &'static str,
        message: String,
    },
    /// A daily upload quota (per visitor, per address or in total) is used up.
    TooManyUploads,
    UnsupportedMedia(String),
    TooManyRequests,
    /// Too many password checks are waiting; try again shortly.
    Busy,
    Unavailable,
    Internal(String),
}

impl ApiError {
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        ApiError::BadRequest {
            code,
            message: message.into(),
        }
    }
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    code: &'a str,
    message: &'a str,
}

impl ApiError {
    /// The error's code and message, as its response body carries them (an internal error is
    /// logged, as its response would be).
    pub fn code_and_message(&self) -> (&'static str, String) {
        if let ApiError::Internal(detail) = self {
            tracing::error!(error = %detail, "internal error answering a request");
        }
        let (_, code, message) = self.parts();
        (code, message.to_string())
    }

    /// The status, code and message of the response.
    fn parts(&self) -> (StatusCode, &'static str, &str) {
        match self {
            ApiError::Unauthorized => (
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "a valid bearer token is required",
            ),
            ApiError::InvalidCredentials => (
                StatusCode::UNAUTHORIZED,
                "invalid_credentials",
                "wrong username or password",
            ),
            ApiError::BadRequest { code, message } => {
                (StatusCode::BAD_REQUEST, *code, message.as_str())
            }
            ApiError::Forbidden => (
                StatusCode::FORBIDDEN,
                "forbidden",
                "this needs an admin account",
            ),
            ApiError::Denied { code, message } => (StatusCode::FORBIDDEN, *code, message.as_str()),
            ApiError::NotFound(m) => (StatusCode::NOT_FOUND, "not_found", m.as_str()),
            ApiError::Conflict(m) => (StatusCode::CONFLICT, "invalid_transition", m.as_str()),
            ApiError::Exists(code, m) => (StatusCode::CONFLICT, *code, m.as_str()),
            ApiError::Full => (
                StatusCode::INSUFFICIENT_STORAGE,
                "disk_full",
                "the disk is full; nothing was stored",
            ),
            ApiError::PayloadTooLarge(m) => {
                (StatusCode::PAYLOAD_TOO_LARGE, "too_large", m.as_str())
            }
            ApiError::Unprocessable { code, message } => {
                (StatusCode::UNPROCESSABLE_ENTITY, *code, message.as_str())
            }
            ApiError::TooManyUploads => (
                StatusCode::TOO_MANY_REQUESTS,
                "upload_quota",
                "too many images were sent today; try again tomorrow",
            ),
            ApiError::UnsupportedMedia(m) => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_type",
                m.as_str(),
            ),
            ApiError::TooManyRequests => (
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_attempts",
                "too many failed logins; wait a minute",
            ),
            ApiError::Busy => (
                StatusCode::SERVICE_UNAVAILABLE,
                "busy",
                "too many logins at once; try again in a few seconds",
            ),
            ApiError::Unavailable => (
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "the daemon is stopping or its storage failed",
            ),
            ApiError::Internal(_) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "internal error; see the daemon's log",
            ),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let ApiError::Internal(detail) = &self {
            tracing::error!(error = %detail, "internal error answering a request");
        }
        let (status, code, message) = self.parts();
        (status, Json(ErrorBody { code, message })).into_response()
    }
}

impl From<DispatchError> for ApiError {
    fn from(e: DispatchError) -> Self {
        match &e {
            DispatchError::NotFound(_) | DispatchError::NoSuchContact(_) => {
                ApiError::NotFound(e.to_string())
            }
            DispatchError::Refused(r) => ApiError::Conflict(r.to_string()),
            DispatchError::NotAnIdentity(_) => ApiError::bad_request("bad_via", e.to_string()),
            DispatchError::NotYours(_) => ApiError::Denied {
                code: "not_your_conversation",
                message: e.to_string(),
            },
            DispatchError::NotResolved(_) => ApiError::Exists("not_resolved", e.to_string()),
            DispatchError::BadRating(_) => ApiError::bad_request("bad_rating", e.to_string()),
            DispatchError::CannotLink(_) => ApiError::bad_request("cannot_link", e.to_string()),
            DispatchError::Unavailable => ApiError::Unavailable,
            DispatchError::Store(m) => ApiError::Internal(m.clone()),
        }
    }
}

impl From<crate::store::Error> for ApiError {
    fn from(e: crate::store::Error) -> Self {
        ApiError::Internal(e.to_string())
    }
}

impl From<crate::model::TextError> for ApiError {
    fn from(e: crate::model::TextError) -> Self {
        ApiError::bad_request(e.code(), e.to_string())
    }
}

impl From<crate::auth::AuthError> for ApiError {
    fn from(e: crate::auth::AuthError) -> Self {
        match e {
            crate::auth::AuthError::NoSuchAgent(who) => {
                ApiError::NotFound(format!("no agent {who}"))
            }
            crate::auth::AuthError::UsernameTaken(_) => {
                ApiError::Exists("already_exists", e.to_string())
            }
            crate::auth::AuthError::SetupDone => ApiError::Exists("setup_done", e.to_string()),
            crate::auth::AuthError::WeakPassword => {
                ApiError::bad_request("weak_password", e.to_string())
            }
            crate::auth::AuthError::BadUsername => {
                ApiError::bad_request("bad_username", e.to_string())
            }
            other => ApiError::Internal(other.to_string()),
        }
    }
}

/// A path, query or body the extractor refused: `bad_id` when an id in it was out of range
/// ([`crate::model::IdRangeError`]), else `code`.
pub(crate) fn refused(code: &'static str, text: String) -> ApiError {
    let code = if text.contains(crate::model::ID_RANGE_WORDS) {
        "bad_id"
    } else {
        code
    };
    ApiError::bad_request(code, text)
}
