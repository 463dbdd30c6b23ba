//! The conversations REST API (`/api/v1/conversations`, replies, resolve,
//! reopen), the live stream (`/api/v1/stream`, Server-Sent Events) and the
//! OpenAPI document (`/api/v1/openapi.json`, assembled in
//! [`crate::http::api::openapi`]). Every route but the document needs the bearer token
//! (or an admin's or supervisor's session). Documented for people in
//! docs/API.md.

pub mod fleet;
pub mod openapi;
pub mod routing;

use crate::http::error::ApiError;
use crate::live::{Live, LiveEvent, MessageEvent};
use crate::services::channels::{Capabilities, Measure, Outbound};
use crate::services::contacts::address::{self, AddressKind, Region};
use crate::services::conversations::actions::{Actions, Reply};
use crate::services::conversations::repo::ConversationRepo;
use crate::services::conversations::{
    self, ConversationDetail, ConversationSummary, ListFilter, Page, Status,
};
use crate::services::users::auth::Actor;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::StatusCode;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use crossline_core::ConversationId;
use crossline_store::SqliteStore;
use serde::{Deserialize, Serialize};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;
use utoipa::{IntoParams, OpenApi, ToSchema};

/// Largest accepted request body (JSON); larger ones get 413.
pub const MAX_BODY: usize = 64 * 1024;
/// Keep-alive comment interval on the stream.
pub const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// State of the conversation handlers.
pub struct ApiState {
    pub store: SqliteStore,
    pub api_token: String,
    pub region: Region,
    /// Sends replies through their channel's adapter.
    pub outbound: Outbound,
    pub live: Live,
    /// A reopened conversation re-enters routing.
    pub routing: crate::services::routing::Routing,
    /// Ends open streams when mgmt shuts down.
    pub shutdown: CancellationToken,
}

/// The conversation routes, to merge into mgmt's router.
pub fn router(state: Arc<ApiState>) -> Router {
    Router::new()
        .route("/api/v1/conversations", get(list_conversations))
        .route("/api/v1/conversations/{id}", get(get_conversation))
        .route("/api/v1/conversations/{id}/replies", post(post_reply))
        .route("/api/v1/conversations/{id}/resolve", post(resolve))
        .route("/api/v1/conversations/{id}/reopen", post(reopen))
        .route("/api/v1/channels", get(list_channels))
        .route("/api/v1/stream", get(stream))
        .route("/api/v1/openapi.json", get(openapi_json))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(state)
}

/// The OpenAPI document of this API.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Crossline mgmt API",
        version = "1",
        description = "Conversations on every channel mgmt carries (SMS today; GET /api/v1/channels lists them), replies and live updates, routing, the fleet. Every request but this document, /healthz and /metrics needs `Authorization: Bearer <token>` (the token is in <data_dir>/api.token) or the session cookie of a supervisor or admin who sees every site and team."
    ),
    paths(list_conversations, get_conversation, post_reply, resolve, reopen, list_channels, stream, openapi_json),
    components(schemas(
        ErrorBody,
        Page,
        ConversationSummary,
        ConversationDetail,
        ReplyRequest,
        ReplyAccepted,
        MessageEvent,
        Capabilities,
        Measure
    )),
    modifiers(&BearerAuth),
    security(("bearer" = []))
)]
pub struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
        openapi
            .components
            .get_or_insert_with(Default::default)
            .add_security_scheme(
                "bearer",
                SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
            );
    }
}

/// Every error: a machine-readable code and a sentence for people.
#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    /// e.g. `not_found`, `empty_text`, `text_too_long`, `unknown_line`,
    /// `invalid_number`, `not_replyable`, `no_channel`, `reply_window_closed`,
    /// `conflict`, `payload_too_large`,
    /// `invalid_body`, `bad_request`, `unauthorized`.
    pub error: String,
    pub message: String,
}

fn not_found(id: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        format!("no conversation {id}; list them with GET /api/v1/conversations"),
    )
}

fn json_error(e: JsonRejection) -> ApiError {
    ApiError::from_json_rejection(e, MAX_BODY)
}

/// A path id that is not a UUID cannot name a conversation: 404.
fn conversation_id(id: &str) -> Result<ConversationId, ApiError> {
    id.parse::<ConversationId>().map_err(|_| not_found(id))
}

/// Query of `GET /api/v1/conversations`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// `open` or `resolved`.
    pub status: Option<Status>,
    /// Device the customer last wrote to.
    pub device: Option<String>,
    /// Contact id.
    pub contact: Option<String>,
    /// A phone number, E.164 or national (read in the site's default region).
    pub number: Option<String>,
    /// An alphanumeric sender, exactly as received.
    pub sender: Option<String>,
    /// Page size, 1 to 500 (default 50).
    pub limit: Option<usize>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// List conversations, newest activity first.
#[utoipa::path(
    get,
    path = "/api/v1/conversations",
    params(ListQuery),
    responses(
        (status = 200, description = "A page of conversations", body = Page),
        (status = 400, description = "Bad filter (e.g. invalid number or cursor)", body = ErrorBody),
        (status = 401, description = "Missing or wrong token", body = ErrorBody)
    ),
    tag = "conversations"
)]
pub async fn list_conversations(
    State(st): State<Arc<ApiState>>,
    q: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<Page>, ApiError> {
    let Query(q) = q.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let address = match (&q.number, &q.sender) {
        (Some(_), Some(_)) => {
            return Err(ApiError::bad_request(
                "give either `number` or `sender`, not both",
            ));
        }
        (Some(n), None) => {
            let a = address::normalise(n, st.region);
            if a.kind == AddressKind::Alphanumeric || a.value.is_empty() {
                return Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "invalid_number",
                    format!(
                        "{n:?} is not a phone number; filter alphanumeric senders with `sender=`"
                    ),
                ));
            }
            Some((a.kind, a.value))
        }
        (None, Some(s)) => Some((AddressKind::Alphanumeric, s.trim().to_string())),
        (None, None) => None,
    };
    let after = match &q.cursor {
        Some(c) => Some(conversations::parse_cursor(c).ok_or_else(|| {
            ApiError::bad_request(format!(
                "cursor {c:?} is not one this API made; pass `next_cursor` from the previous page"
            ))
        })?),
        None => None,
    };
    let f = ListFilter {
        status: q.status,
        device: q.device,
        contact: q.contact,
        address,
        limit: q.limit.unwrap_or(50),
        after,
    };
    Ok(Json(ConversationRepo::list(&st.store, f).await?))
}

/// One conversation with its timeline.
#[utoipa::path(
    get,
    path = "/api/v1/conversations/{id}",
    params(("id" = String, Path, description = "Conversation id")),
    responses(
        (status = 200, description = "The conversation and its timeline", body = ConversationDetail),
        (status = 401, description = "Missing or wrong token", body = ErrorBody),
        (status = 404, description = "No such conversation", body = ErrorBody)
    ),
    tag = "conversations"
)]
pub async fn get_conversation(
    State(st): State<Arc<ApiState>>,
    Path(id): Path<String>,
) -> Result<Json<ConversationDetail>, ApiError> {
    let cid = conversation_id(&id)?.to_string();
    st.store
        .detail(cid)
        .await?
        .map(Json)
        .ok_or_else(|| not_found(&id))
}

/// Body of `POST /api/v1/conversations/{id}/replies`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReplyRequest {
    /// The message. Its channel limits it (`GET /api/v1/channels`): on SMS
    /// at most 10 parts (1530 GSM 7-bit characters, 670 in UCS-2).
    pub text: String,
    /// Line of the conversation's device to send on; by default the line the
    /// customer last wrote to.
    pub line: Option<String>,
}

/// Answer of an accepted reply.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ReplyAccepted {
    /// Reply id: the command's id (idempotency key on the appliance) and the
    /// `command` of the reply's timeline entry.
    pub id: String,
    pub conversation_id: String,
    /// The conversation's channel the reply goes out on (`sms`, ...).
    pub channel: String,
    pub device: String,
    pub line: String,
    /// The customer's endpoint on the channel (a phone number for SMS).
    pub to: String,
    /// Segments the text takes on the channel (SMS parts; 1 where the
    /// channel does not split).
    pub segments: usize,
    /// The same as `segments` (the name of API version 1's first release).
    pub parts: usize,
    /// Always `pending` here: the channel has not confirmed it yet.
    pub state: String,
}

/// The channels mgmt carries, with what each can carry.
#[utoipa::path(
    get,
    path = "/api/v1/channels",
    responses(
        (status = 200, description = "Every channel with an adapter and its capabilities", body = [Capabilities]),
        (status = 401, description = "Missing or wrong token", body = ErrorBody)
    ),
    tag = "conversations"
)]
pub async fn list_channels(State(st): State<Arc<ApiState>>) -> Json<Vec<Capabilities>> {
    Json(st.outbound.channels.capabilities())
}

/// Reply on the conversation's channel, to the customer's endpoint, from
/// the line the customer last wrote to (or another line of the device).
#[utoipa::path(
    post,
    path = "/api/v1/conversations/{id}/replies",
    params(("id" = String, Path, description = "Conversation id")),
    request_body = ReplyRequest,
    responses(
        (status = 202, description = "Stored and sent to the appliance; follow its state in the timeline", body = ReplyAccepted),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 401, description = "Missing or wrong token", body = ErrorBody),
        (status = 404, description = "No such conversation", body = ErrorBody),
        (status = 413, description = "Body larger than 64 KiB", body = ErrorBody),
        (status = 422, description = "Empty text, too long for the channel, unknown line, a contact the channel cannot reach, the channel's reply window closed, or a channel mgmt has no adapter for", body = ErrorBody)
    ),
    tag = "conversations"
)]
pub async fn post_reply(
    State(st): State<Arc<ApiState>>,
    by: Actor,
    Path(id): Path<String>,
    body: Result<Json<ReplyRequest>, JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(req) = body.map_err(json_error)?;
    let accepted = send_reply(&st, &id, req, &by).await?;
    Ok((StatusCode::ACCEPTED, Json(accepted)).into_response())
}

/// Stores a reply to conversation `id` by `by` (a web user is named
/// as its author) and hands it to the appliance; audited as
/// `conversation.reply` under `by` (the desk and the API alike).
pub async fn send_reply(
    st: &ApiState,
    id: &str,
    req: ReplyRequest,
    by: &Actor,
) -> Result<ReplyAccepted, ApiError> {
    let sent = actions(st)
        .reply(
            id,
            Reply {
                text: req.text,
                line: req.line,
            },
            by,
        )
        .await?;
    Ok(ReplyAccepted {
        id: sent.command,
        conversation_id: sent.conversation_id,
        channel: sent.channel.to_string(),
        device: sent.device.to_string(),
        line: sent.line,
        to: sent.to,
        segments: sent.segments,
        parts: sent.segments,
        state: "pending".into(),
    })
}

/// The conversation use cases, on this API's store, channels and live feed.
fn actions(st: &ApiState) -> Actions<'_> {
    Actions {
        store: &st.store,
        outbound: &st.outbound,
    }
}

/// Mark a conversation resolved (no-op if it already is).
#[utoipa::path(
    post,
    path = "/api/v1/conversations/{id}/resolve",
    params(("id" = String, Path, description = "Conversation id")),
    responses(
        (status = 200, description = "The conversation, now resolved", body = ConversationSummary),
        (status = 401, description = "Missing or wrong token", body = ErrorBody),
        (status = 404, description = "No such conversation", body = ErrorBody)
    ),
    tag = "conversations"
)]
pub async fn resolve(
    State(st): State<Arc<ApiState>>,
    by: Actor,
    Path(id): Path<String>,
) -> Result<Json<ConversationSummary>, ApiError> {
    set_status(&st, &id, Status::Resolved, &by).await.map(Json)
}

/// Open a resolved conversation again (no-op if it is open).
#[utoipa::path(
    post,
    path = "/api/v1/conversations/{id}/reopen",
    params(("id" = String, Path, description = "Conversation id")),
    responses(
        (status = 200, description = "The conversation, now open", body = ConversationSummary),
        (status = 401, description = "Missing or wrong token", body = ErrorBody),
        (status = 404, description = "No such conversation", body = ErrorBody),
        (status = 409, description = "The contact already has another open conversation", body = ErrorBody)
    ),
    tag = "conversations"
)]
pub async fn reopen(
    State(st): State<Arc<ApiState>>,
    by: Actor,
    Path(id): Path<String>,
) -> Result<Json<ConversationSummary>, ApiError> {
    let s = set_status(&st, &id, Status::Open, &by).await?;
    st.routing.reopened(&s).await?;
    Ok(Json(s))
}

/// Resolves or reopens conversation `id` by `by` (a web user is named in
/// the event); a no-op when it already has that status. A change is audited
/// as `conversation.resolve` / `conversation.reopen` under `by`.
pub async fn set_status(
    st: &ApiState,
    id: &str,
    to: Status,
    by: &Actor,
) -> Result<ConversationSummary, ApiError> {
    Ok(actions(st).set_status(id, to, by).await?)
}

/// Live changes as Server-Sent Events.
///
/// `event: conversation` carries a [`ConversationSummary`], `event: message`
/// a [`MessageEvent`] (a new or changed timeline entry), `event: lagged`
/// `{"missed": n}` when this client fell behind (refetch the list). A
/// keep-alive comment is sent every 15 s.
#[utoipa::path(
    get,
    path = "/api/v1/stream",
    responses(
        (status = 200, description = "text/event-stream of `conversation` and `message` events", content_type = "text/event-stream", body = String),
        (status = 401, description = "Missing or wrong token", body = ErrorBody)
    ),
    tag = "live"
)]
pub async fn stream(State(st): State<Arc<ApiState>>) -> Result<Response, ApiError> {
    let rx = st.live.subscribe();
    let stop = st.shutdown.clone();
    let events = futures_util::stream::unfold((rx, stop), |(mut rx, stop)| async move {
        loop {
            let item = tokio::select! {
                _ = stop.cancelled() => return None,
                r = rx.recv() => r,
            };
            let ev = match item {
                Ok(LiveEvent::Conversation(s)) => SseEvent::default()
                    .event("conversation")
                    .json_data(&s)
                    .ok()?,
                Ok(LiveEvent::Message(m)) => {
                    SseEvent::default().event("message").json_data(&m).ok()?
                }
                Ok(LiveEvent::Routed(_)) => continue,
                Ok(LiveEvent::Lagged { missed: n })
                | Err(broadcast::error::RecvError::Lagged(n)) => SseEvent::default()
                    .event("lagged")
                    .data(format!("{{\"missed\":{n}}}")),
                Err(broadcast::error::RecvError::Closed) => return None,
            };
            return Some((Ok::<_, Infallible>(ev), (rx, stop)));
        }
    });
    Ok(Sse::new(events)
        .keep_alive(KeepAlive::new().interval(KEEP_ALIVE))
        .into_response())
}

/// This document.
#[utoipa::path(
    get,
    path = "/api/v1/openapi.json",
    security(()),
    responses(
        (status = 200, description = "OpenAPI 3 document (no token needed)", content_type = "application/json", body = Object)
    ),
    tag = "meta"
)]
pub async fn openapi_json() -> Response {
    Json(crate::http::api::openapi::document()).into_response()
}
