//! The customer's side of the API besides the WebSocket, under `/api/v1/visitor`, and the
//! settings that shape the widget's form and signed identities.
//!
//! A customer is who their visitor id says (the id is their credential, as on the WebSocket),
//! or, for a shop that signs identities, who the shop's website vouched for
//! ([`crate::signed_identity`]): every request carries either `visitor_id`, or `user_id`,
//! `user_name`, `user_email` and `user_signature`.
//!
//! - `GET /visitor/conversation?...` their newest conversation: id, status, rating given.
//! - `POST /visitor/rating {..., conversation_id, score, comment}` rates it once resolved
//!   (403 for another's conversation, 409 before it is resolved).
//! - `POST /visitor/profile {..., name, phone, email}` the pre-chat form (once they wrote).
//! - `GET|PUT /settings/prechat` (PUT: admins) whether and when the widget asks.
//! - `GET|POST /settings/identity-secret` (admins) the secret signed identities use.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use super::routing_api::require_admin;
use super::{ApiError, ApiJson, ApiQuery, AppState, Authed};
use crate::contact_profile::ProfileChange;
use crate::dispatch::{Command, EditContact, RateConversation};
use crate::model::{bounded_id, ContactId, ExternalId, Identity, RowId, WEB_CHANNEL};
use crate::signed_identity::{self, SignedUser};
use crate::store::queries;

const PRECHAT_KEY: &str = "prechat";
const SECRET_KEY: &str = "identity_secret";

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/visitor/conversation", get(visitor_conversation))
        .route("/visitor/rating", post(rate))
        .route("/visitor/profile", post(profile))
        .route("/settings/prechat", get(prechat).put(put_prechat))
        .route(
            "/settings/identity-secret",
            get(identity_secret).post(new_identity_secret),
        )
}

/// Who the customer is: a visitor id, or a signed identity.
#[derive(Debug, Default, Deserialize)]
pub struct VisitorCredentials {
    pub visitor_id: Option<String>,
    pub user_id: Option<String>,
    #[serde(default)]
    pub user_name: String,
    #[serde(default)]
    pub user_email: String,
    pub user_signature: Option<String>,
}

impl VisitorCredentials {
    fn signed(&self) -> Option<SignedUser> {
        Some(SignedUser {
            user_id: self.user_id.clone()?,
            name: self.user_name.clone(),
            email: self.user_email.clone(),
            signature: self.user_signature.clone().unwrap_or_default(),
        })
    }
}

/// The identity the credentials prove, and the signed user's name and e-mail (to record).
/// `Ok(None)` when neither a visitor id nor a user is given (the WebSocket makes one up).
///
/// # Errors
/// 400 `bad_visitor_id` (malformed, or in the signed namespace without a signature); 403
/// `bad_signature` for a signed identity that does not verify.
pub async fn visitor_identity(
    app: &AppState,
    creds: &VisitorCredentials,
) -> Result<Option<(Identity, Option<ProfileChange>)>, ApiError> {
    let channel = bounded_id(WEB_CHANNEL).expect("invariant: the web channel name is a valid id");
    if let Some(user) = creds.signed() {
        let secret = app.reads.run(|c| queries::setting(c, SECRET_KEY)).await?;
        let external = signed_identity::verify(secret.as_deref().map(str::as_bytes), &user)
            .map_err(|e| ApiError::Denied {
                code: "bad_signature",
                message: e.to_string(),
            })?;
        let external_id: ExternalId = bounded_id(&external)
            .map_err(|e| ApiError::bad_request("bad_user_id", e.to_string()))?;
        let known = ProfileChange {
            name: Some(user.name).filter(|n| !n.is_empty()),
            email: Some(user.email).filter(|e| !e.is_empty()),
            ..ProfileChange::default()
        };
        return Ok(Some((
            Identity {
                channel,
                external_id,
            },
            Some(known),
        )));
    }
    let Some(raw) = creds.visitor_id.as_deref() else {
        return Ok(None);
    };
    let external_id: ExternalId = bounded_id(raw)
        .map_err(|e| ApiError::bad_request("bad_visitor_id", format!("visitor_id {e}")))?;
    if !signed_identity::plain_visitor_id_allowed(raw) {
        return Err(ApiError::bad_request(
            "bad_visitor_id",
            "visitor ids starting with user: are signed identities; give user_id and user_signature",
        ));
    }
    Ok(Some((
        Identity {
            channel,
            external_id,
        },
        None,
    )))
}

async fn required_identity(
    app: &AppState,
    creds: &VisitorCredentials,
) -> Result<Identity, ApiError> {
    visitor_identity(app, creds)
        .await?
        .map(|(identity, _)| identity)
        .ok_or_else(|| ApiError::bad_request("no_visitor", "give visitor_id or a signed user"))
}

async fn visitor_conversation(
    State(app): State<AppState>,
    ApiQuery(creds): ApiQuery<VisitorCredentials>,
) -> Result<Json<queries::VisitorConversation>, ApiError> {
    let identity = required_identity(&app, &creds).await?;
    app.wait_store_current().await?;
    app.reads
        .run(move |c| queries::visitor_conversation(c, &identity.channel, &identity.external_id))
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::NotFound("this visitor has no conversation yet".into()))
}

#[derive(Deserialize)]
struct RatingBody {
    #[serde(flatten)]
    creds: VisitorCredentials,
    conversation_id: RowId,
    score: u8,
    #[serde(default)]
    comment: String,
}

async fn rate(
    State(app): State<AppState>,
    ApiJson(body): ApiJson<RatingBody>,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    let identity = required_identity(&app, &body.creds).await?;
    let command = RateConversation {
        identity,
        conversation: body.conversation_id.get(),
        score: body.score,
        comment: body.comment.trim().to_string(),
    };
    let accepted = app.dispatch(|reply| Command::Rate(command, reply)).await?;
    Ok((
        StatusCode::CREATED,
        Json(serde_json::json!({
            "conversation_id": accepted.conversation,
            "score": body.score,
        })),
    ))
}

#[derive(Deserialize)]
struct ProfileBody {
    #[serde(flatten)]
    creds: VisitorCredentials,
    name: Option<String>,
    phone: Option<String>,
    email: Option<String>,
}

/// The widget's form: the customer's name, phone and e-mail on their contact. A signed
/// identity's name and e-mail come from the shop and are not the customer's to change.
async fn profile(
    State(app): State<AppState>,
    ApiJson(body): ApiJson<ProfileBody>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let (identity, vouched) = visitor_identity(&app, &body.creds)
        .await?
        .ok_or_else(|| ApiError::bad_request("no_visitor", "give visitor_id or a signed user"))?;
    let mut change = ProfileChange {
        name: body.name,
        phone: body.phone,
        email: body.email,
        notes: None,
    }
    .checked()
    .map_err(|e| ApiError::bad_request("bad_profile", e.to_string()))?;
    if let Some(vouched) = vouched {
        change.name = vouched.name.or(change.name);
        change.email = vouched.email.or(change.email);
    }
    let contact = record_profile(&app, identity, change).await?;
    Ok(Json(serde_json::json!({ "contact_id": contact })))
}

/// One contact edit at a time: each reads the stored details, merges its change and journals
/// the result, so two at once (an agent and the customer's form) would lose one.
static CONTACT_EDITS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Merges `change` into the contact of `identity` and journals it; the contact's id.
///
/// # Errors
/// 404 when the identity has no contact yet (the customer has not written).
pub async fn record_profile(
    app: &AppState,
    identity: Identity,
    change: ProfileChange,
) -> Result<u64, ApiError> {
    app.wait_store_current().await?;
    let contact = app
        .reads
        .run(move |c| queries::contact_by_identity(c, &identity))
        .await?
        .ok_or_else(|| {
            ApiError::NotFound(
                "no conversation yet: the profile is kept once the customer has written".into(),
            )
        })?;
    apply_profile(app, contact, change).await?;
    Ok(contact)
}

/// Merges `change` into a contact's stored name and details and journals the result (one edit
/// at a time, on what the store holds once it has applied everything journaled before).
///
/// # Errors
/// 404 for a contact that does not exist or was linked into another.
pub async fn apply_profile(
    app: &AppState,
    contact: ContactId,
    change: ProfileChange,
) -> Result<(), ApiError> {
    if change.is_empty() {
        return Ok(());
    }
    let _one_at_a_time = CONTACT_EDITS.lock().await;
    app.wait_store_current().await?;
    let (name, details) = app
        .reads
        .run(move |c| queries::contact_details(c, contact))
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("contact {contact} not found")))?;
    let (name, details) = change.apply(&name, &details);
    let command = EditContact {
        contact,
        name,
        details,
    };
    app.dispatch(|reply| Command::EditContact(command, reply))
        .await?;
    Ok(())
}

/// When the widget asks for the customer's name and phone or e-mail: never, before the first
/// message, or once they wrote; `required` makes the form's fields mandatory.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Prechat {
    pub mode: PrechatMode,
    #[serde(default)]
    pub required: bool,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum PrechatMode {
    Off,
    Before,
    During,
}

impl Default for Prechat {
    /// The form is offered once the customer wrote, and may be skipped.
    fn default() -> Self {
        Prechat {
            mode: PrechatMode::During,
            required: false,
        }
    }
}

/// The shop's pre-chat setting.
///
/// # Errors
/// A store read failure.
pub async fn prechat_setting(app: &AppState) -> Result<Prechat, ApiError> {
    let raw = app.reads.run(|c| queries::setting(c, PRECHAT_KEY)).await?;
    Ok(raw
        .and_then(|r| serde_json::from_str(&r).ok())
        .unwrap_or_default())
}

async fn prechat(
    State(app): State<AppState>,
    Authed(_, _): Authed,
) -> Result<Json<Prechat>, ApiError> {
    prechat_setting(&app).await.map(Json)
}

async fn put_prechat(
    State(app): State<AppState>,
    Authed(agent, _): Authed,
    ApiJson(body): ApiJson<Prechat>,
) -> Result<Json<Prechat>, ApiError> {
    require_admin(&agent)?;
    let raw = serde_json::to_string(&body).map_err(|e| ApiError::Internal(e.to_string()))?;
    app.reads
        .run(move |c| queries::put_setting(c, PRECHAT_KEY, &raw))
        .await?;
    Ok(Json(body))
}

async fn identity_secret(
    State(app): State<AppState>,
    Authed(agent, _): Authed,
) -> Result<Json<serde_json::Value>, ApiError> {
    require_admin(&agent)?;
    let secret = app.reads.run(|c| queries::setting(c, SECRET_KEY)).await?;
    Ok(Json(serde_json::json!({ "secret": secret })))
}

/// Makes a new secret: identities signed with the old one are refused from now on.
async fn new_identity_secret(
    State(app): State<AppState>,
    Authed(agent, _): Authed,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    require_admin(&agent)?;
    let secret: Arc<str> = signed_identity::new_secret().into();
    let stored = Arc::clone(&secret);
    app.reads
        .run(move |c| queries::put_setting(c, SECRET_KEY, &stored))
        .await?;
    tracing::info!(admin = %agent.username, "a new identity secret was made");
    Ok((
        StatusCode::CREATED,
        Json(serde_json::json!({ "secret": &*secret })),
    ))
}
