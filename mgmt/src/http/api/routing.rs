//! The routing REST API: configuration, agents and presence, queues,
//! assignment and transfer, the decision audit trail and routing metrics.
//! Every route needs the bearer token. Documented in docs/API.md, "Routing".

use crate::clock::now_ms;
use crate::http::error::ApiError;
use crate::services::routing::{ConfigInfo, DecisionFilter, Routing, RoutingServiceError};
use crate::services::users::auth::Actor;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use crossline_core::ConversationId;
use crossline_core::metrics::{self, Metrics, MetricsOptions};
use crossline_core::routing::{
    AgentId, AgentView, Calendar, Capacity, Command, ConversationView, Presence, QueueId, Record,
    RouteState, RoutingConfig, RoutingError, SiteId, TransferTarget,
};
use crossline_store::SqliteStore;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use utoipa::{IntoParams, OpenApi, ToSchema};

/// Largest accepted request body (a routing config with many agents).
pub const MAX_BODY: usize = 1024 * 1024;
/// Most decisions one `GET /api/v1/routing/decisions` returns.
pub const MAX_DECISIONS: usize = 1000;

/// State of the routing handlers.
pub struct RoutingApiState {
    pub store: SqliteStore,
    pub api_token: String,
    pub routing: Routing,
}

/// The routing routes, to merge into mgmt's router.
pub fn router(state: Arc<RoutingApiState>) -> Router {
    Router::new()
        .route("/api/v1/routing/config", get(get_config).put(put_config))
        .route("/api/v1/routing/commands", post(post_command))
        .route("/api/v1/routing/decisions", get(get_decisions))
        .route(
            "/api/v1/routing/conversations/{id}",
            get(get_routing_conversation),
        )
        .route("/api/v1/agents", get(list_agents))
        .route("/api/v1/agents/{id}", get(get_agent))
        .route("/api/v1/agents/{id}/presence", put(put_presence))
        .route("/api/v1/queues", get(list_queues))
        .route("/api/v1/conversations/{id}/assign", post(assign))
        .route("/api/v1/metrics/routing", get(routing_metrics))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(state)
}

/// The routing part of the OpenAPI document (merged into `/api/v1/openapi.json`).
#[derive(OpenApi)]
#[openapi(
    paths(
        get_config,
        put_config,
        post_command,
        get_decisions,
        get_routing_conversation,
        list_agents,
        get_agent,
        put_presence,
        list_queues,
        assign,
        routing_metrics
    ),
    components(schemas(
        ConfigOut,
        AgentOut,
        QueueOut,
        RoutingConversationOut,
        PresenceRequest,
        AssignRequest,
        CommandOut,
        DecisionOut,
        DecisionPage
    ))
)]
pub struct RoutingDoc;

fn err(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
    ApiError::new(status, code, message)
}

impl From<RoutingServiceError> for ApiError {
    fn from(e: RoutingServiceError) -> Self {
        use RoutingServiceError as E;
        let msg = e.to_string();
        match e {
            E::Off => err(StatusCode::SERVICE_UNAVAILABLE, "routing_off", msg),
            E::Config(_) | E::Parse(_) => {
                err(StatusCode::UNPROCESSABLE_ENTITY, "invalid_config", msg)
            }
            E::Incompatible(_) => err(StatusCode::CONFLICT, "incompatible_config", msg),
            E::Routing(r) => match r {
                RoutingError::UnknownAgent(_) => err(StatusCode::NOT_FOUND, "unknown_agent", msg),
                RoutingError::UnknownQueue(_) => err(StatusCode::NOT_FOUND, "unknown_queue", msg),
                RoutingError::UnknownConversation(c) => err(
                    StatusCode::NOT_FOUND,
                    "not_found",
                    format!(
                        "routing does not know conversation {c} (it arrived before routing was configured, or it is closed)"
                    ),
                ),
                RoutingError::NoQueue(_) => err(StatusCode::UNPROCESSABLE_ENTITY, "no_queue", msg),
                RoutingError::InvalidState { .. }
                | RoutingError::CapacityExceeded { .. }
                | RoutingError::NoSuchLeg { .. }
                | RoutingError::LegAlreadyOpen { .. } => err(StatusCode::CONFLICT, "conflict", msg),
                RoutingError::Inconsistent { .. } => {
                    tracing::error!(error = %msg, "routing engine inconsistency");
                    err(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "internal",
                        "internal error; see the server log",
                    )
                }
            },
            E::Store(s) => s.into(),
            E::Corrupt { .. } => {
                tracing::error!(error = %msg, "routing log");
                err(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "internal error; see the server log",
                )
            }
            E::Stopped => err(StatusCode::SERVICE_UNAVAILABLE, "stopped", msg),
        }
    }
}

fn json_error(e: JsonRejection) -> ApiError {
    ApiError::from_json_rejection(e, MAX_BODY)
}

fn query_error(e: QueryRejection) -> ApiError {
    ApiError::bad_request(e.body_text())
}

fn conversation_id(id: &str) -> Result<ConversationId, ApiError> {
    id.parse::<ConversationId>().map_err(|_| {
        err(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no conversation {id}"),
        )
    })
}

fn routing_off() -> ApiError {
    RoutingServiceError::Off.into()
}

// ----- shapes --------------------------------------------------------------

/// The routing configuration in force.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ConfigOut {
    /// 1 for the first configuration, then one more per PUT; 0 for the
    /// default routing.
    pub version: u64,
    /// True while no configuration is installed: the default routing (one
    /// queue `default` for every line, every agent a member) is in force.
    pub default: bool,
    /// mgmt log seq from which routing decisions are replayed at start (moves
    /// only with `?reset=true`).
    pub replay_from_seq: u64,
    /// When it was installed (ms since the epoch).
    pub created_ms: u64,
    /// The `RoutingConfig` (docs/ROUTING.md, "Configuration"): agents,
    /// queues, rules, sites (business hours), default queue, capacities.
    #[schema(value_type = Object)]
    pub config: RoutingConfig,
}

impl From<&ConfigInfo> for ConfigOut {
    fn from(i: &ConfigInfo) -> Self {
        Self {
            version: i.version,
            default: i.default,
            replay_from_seq: i.replay_from_seq,
            created_ms: i.created_ms,
            config: i.config.clone(),
        }
    }
}

fn per_channel(a: &[u8; 5]) -> Capacity {
    Capacity::from_array(a)
}

/// An agent as routing sees them.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AgentOut {
    pub id: String,
    pub team: Option<String>,
    pub site: Option<String>,
    /// `{"state": "available" | "busy" | "away" | "offline"}` or
    /// `{"state": "wrap_up", "until": ms}`.
    #[schema(value_type = Object)]
    pub presence: Presence,
    /// Conversations in use per channel: `{voice, chat, messenger, email, sms}`.
    #[schema(value_type = Object)]
    pub load: Capacity,
    /// Capacity per channel, same shape.
    #[schema(value_type = Object)]
    pub capacity: Capacity,
    /// Conversations assigned to the agent (active, held, snoozed).
    pub conversations: Vec<String>,
    /// Last routing activity (ms since the epoch).
    pub idle_since: u64,
}

fn agent_out(r: &crossline_core::routing::Router, v: AgentView) -> AgentOut {
    let cfg = r.config().agents.iter().find(|a| a.id == v.id);
    AgentOut {
        id: v.id.to_string(),
        team: cfg.and_then(|a| a.team.clone()),
        site: cfg.and_then(|a| a.site.as_ref().map(SiteId::to_string)),
        presence: v.presence,
        load: per_channel(&v.load),
        capacity: per_channel(&v.capacity),
        conversations: v.conversations.iter().map(|c| c.to_string()).collect(),
        idle_since: v.idle_since,
    }
}

/// A queue and what waits in it.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct QueueOut {
    pub id: String,
    /// `longest_idle`, `round_robin` or `least_occupied`.
    pub strategy: String,
    /// Conversations waiting (not counting ones reserved for one agent).
    pub waiting: usize,
    /// How long the longest-waiting conversation has waited (ms), 0 if none.
    pub longest_wait_ms: u64,
    /// Waiting conversation ids, best first (priority, then age).
    pub conversations: Vec<String>,
    /// Agents (members of the queue) with their presence.
    pub agents_available: usize,
}

/// A conversation as routing sees it.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RoutingConversationOut {
    pub id: String,
    /// `{"state": "waiting", "step", "entered_at"}`, `{"state": "reserved",
    /// "until"}`, `active`, `held`, `{"state": "snoozed", "until"}`,
    /// `resolved`, `abandoned`.
    #[schema(value_type = Object)]
    pub state: RouteState,
    /// Assigned (active/held/snoozed) or reserved agent.
    pub agent: Option<String>,
    pub queue: String,
    pub channel: String,
    pub legs: Vec<String>,
    pub priority: i32,
    /// When it started waiting (ordering time, ms).
    pub age: u64,
    pub preempted: bool,
}

fn channel_str(c: crossline_core::Channel) -> String {
    c.to_string()
}

fn conversation_out(v: ConversationView) -> RoutingConversationOut {
    RoutingConversationOut {
        id: v.id.to_string(),
        state: v.state,
        agent: v.agent.map(|a| a.to_string()),
        queue: v.queue.to_string(),
        channel: channel_str(v.channel),
        legs: v.legs.into_iter().map(channel_str).collect(),
        priority: v.priority,
        age: v.age,
        preempted: v.preempted,
    }
}

/// Body of `PUT /api/v1/agents/{id}/presence`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PresenceRequest {
    /// `available`, `busy`, `away` or `offline` (wrap-up is set by routing).
    pub state: String,
}

/// Body of `POST /api/v1/conversations/{id}/assign`: exactly one of `agent`
/// (assign or transfer to that agent; reserved for them while they are
/// full) and `queue` (transfer to that queue).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AssignRequest {
    pub agent: Option<String>,
    pub queue: Option<String>,
}

/// A routing state after a command, with the decisions it made.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CommandOut {
    /// The conversation concerned, after the command (when there is one).
    pub conversation: Option<RoutingConversationOut>,
    /// The agent concerned, after the command (presence changes).
    pub agent: Option<AgentOut>,
    /// Decisions made, in order (already in the log). Each is
    /// `{"at": ms, "fact": {"type": ..., ...}}` (docs/ROUTING.md).
    #[schema(value_type = Vec<Object>)]
    pub decisions: Vec<Record>,
}

/// One logged decision.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct DecisionOut {
    /// mgmt's log seq: the order and the `after` cursor.
    pub seq: u64,
    pub event_id: String,
    pub conversation: Option<String>,
    /// Engine time of the decision (ms).
    pub at: u64,
    /// `{"type": "assigned", "agent", "reason": {"why": "queue", "queue",
    /// "step"}, "waited_ms", ...}` and the other facts of docs/ROUTING.md.
    #[schema(value_type = Object)]
    pub fact: crossline_core::routing::Fact,
}

/// A page of the audit trail.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct DecisionPage {
    pub decisions: Vec<DecisionOut>,
    /// Pass as `after` for the next page; absent on the last page.
    pub next_after: Option<u64>,
}

// ----- handlers ------------------------------------------------------------

/// The routing configuration in force.
#[utoipa::path(
    get,
    path = "/api/v1/routing/config",
    responses(
        (status = 200, description = "The configuration and its version (the default routing, `\"default\": true`, until one is installed)", body = ConfigOut),
        (status = 401, description = "Missing or wrong token", body = crate::http::api::ErrorBody)
    ),
    tag = "routing"
)]
pub async fn get_config(
    State(st): State<Arc<RoutingApiState>>,
) -> Result<Json<ConfigOut>, ApiError> {
    st.routing
        .query(|r| r.map(|(_, i)| ConfigOut::from(i)))
        .await?
        .map(Json)
        .ok_or_else(routing_off)
}

/// Query of `PUT /api/v1/routing/config`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PutConfigQuery {
    /// Start routing afresh when the logged decisions do not fit the new
    /// config (current assignments and waiting conversations are dropped).
    pub reset: Option<bool>,
}

/// Install a routing configuration (JSON, or TOML with `Content-Type:
/// application/toml`). Validated by the engine; the decisions logged so far
/// must replay under it (else 409, or start afresh with `?reset=true`).
#[utoipa::path(
    put,
    path = "/api/v1/routing/config",
    params(PutConfigQuery),
    request_body(content = Object, description = "RoutingConfig (docs/ROUTING.md)"),
    responses(
        (status = 200, description = "Installed", body = ConfigOut),
        (status = 401, description = "Missing or wrong token", body = crate::http::api::ErrorBody),
        (status = 409, description = "The logged decisions do not fit this config (`incompatible_config`)", body = crate::http::api::ErrorBody),
        (status = 413, description = "Body larger than 1 MiB", body = crate::http::api::ErrorBody),
        (status = 422, description = "Invalid config (`invalid_config`, with the reason)", body = crate::http::api::ErrorBody)
    ),
    tag = "routing"
)]
pub async fn put_config(
    State(st): State<Arc<RoutingApiState>>,
    by: Actor,
    headers: HeaderMap,
    q: Result<Query<PutConfigQuery>, QueryRejection>,
    body: String,
) -> Result<Json<ConfigOut>, ApiError> {
    let Query(q) = q.map_err(query_error)?;
    let toml = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("toml"));
    let config: RoutingConfig = if toml {
        toml::from_str(&body).map_err(|e| RoutingServiceError::Parse(e.to_string()))?
    } else {
        serde_json::from_str(&body).map_err(|e| RoutingServiceError::Parse(e.to_string()))?
    };
    let reset = q.reset.unwrap_or(false);
    let info = st.routing.set_config_by(config, reset, by.name()).await?;
    crate::services::users::audit::record(
        &st.store,
        by.name(),
        "routing.config",
        &format!("version {}", info.version),
        if reset { "reset" } else { "" },
    )
    .await;
    Ok(Json(ConfigOut::from(&info)))
}

/// Send any routing command (`{"cmd": "resolve", "conversation": ...}`,
/// `hold`, `resume`, `agent_reply`, `snooze`, `set_priority`, `close`, ...;
/// docs/ROUTING.md). Answers with the decisions, already logged.
#[utoipa::path(
    post,
    path = "/api/v1/routing/commands",
    request_body(content = Object, description = "A routing Command"),
    responses(
        (status = 200, description = "Handled", body = CommandOut),
        (status = 401, description = "Missing or wrong token", body = crate::http::api::ErrorBody),
        (status = 404, description = "Unknown agent, queue or conversation", body = crate::http::api::ErrorBody),
        (status = 409, description = "Not possible in the conversation's state", body = crate::http::api::ErrorBody),
        (status = 422, description = "Malformed command", body = crate::http::api::ErrorBody)
    ),
    tag = "routing"
)]
pub async fn post_command(
    State(st): State<Arc<RoutingApiState>>,
    by: Actor,
    body: Result<Json<Command>, JsonRejection>,
) -> Result<Json<CommandOut>, ApiError> {
    let Json(cmd) = body.map_err(json_error)?;
    if matches!(
        cmd,
        Command::SetPresence {
            presence: Presence::WrapUp { .. },
            ..
        }
    ) {
        return Err(err(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
            "wrap-up is set by routing after a call; set available, busy, away or offline",
        ));
    }
    run(&st, &by, cmd).await.map(Json)
}

/// Runs a routing command for `by`; audited as `routing.<cmd>` (target:
/// the conversation or agent, detail: the command as JSON).
async fn run(st: &RoutingApiState, by: &Actor, cmd: Command) -> Result<CommandOut, ApiError> {
    let conv = command_conversation(&cmd);
    let agent = match &cmd {
        Command::SetPresence { agent, .. } => Some(agent.clone()),
        _ => None,
    };
    let detail = serde_json::to_value(&cmd).unwrap_or_default();
    let action = format!(
        "routing.{}",
        detail
            .get("cmd")
            .and_then(|c| c.as_str())
            .unwrap_or("command")
    );
    let target = conv
        .map(|c| c.to_string())
        .or_else(|| agent.as_ref().map(|a| a.to_string()))
        .unwrap_or_default();
    let out = st
        .routing
        .command_then(cmd, move |r, decisions| CommandOut {
            conversation: conv.and_then(|c| r.conversation(&c)).map(conversation_out),
            agent: agent.and_then(|a| r.agent(&a)).map(|v| agent_out(r, v)),
            decisions,
        })
        .await?;
    crate::services::users::audit::record(
        &st.store,
        by.name(),
        &action,
        &target,
        &detail.to_string(),
    )
    .await;
    Ok(out)
}

fn command_conversation(cmd: &Command) -> Option<ConversationId> {
    use Command::*;
    match cmd {
        SetPresence { .. } | Tick => None,
        Inbound { conversation, .. }
        | Abandon { conversation }
        | AgentReply { conversation }
        | Hold { conversation }
        | Resume { conversation }
        | Snooze { conversation, .. }
        | StartLeg { conversation, .. }
        | EndLeg { conversation, .. }
        | Transfer { conversation, .. }
        | SetPriority { conversation, .. }
        | Resolve { conversation }
        | Close { conversation } => Some(*conversation),
    }
}

/// Query of `GET /api/v1/routing/decisions`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DecisionsQuery {
    /// Only this conversation's decisions.
    pub conversation: Option<String>,
    /// `next_after` of the previous page (a log seq).
    pub after: Option<u64>,
    /// Page size, 1 to 1000 (default 200).
    pub limit: Option<usize>,
}

/// The routing audit trail: every decision (who, why, when), in log order.
#[utoipa::path(
    get,
    path = "/api/v1/routing/decisions",
    params(DecisionsQuery),
    responses(
        (status = 200, description = "A page of decisions", body = DecisionPage),
        (status = 400, description = "Bad query", body = crate::http::api::ErrorBody),
        (status = 401, description = "Missing or wrong token", body = crate::http::api::ErrorBody)
    ),
    tag = "routing"
)]
pub async fn get_decisions(
    State(st): State<Arc<RoutingApiState>>,
    q: Result<Query<DecisionsQuery>, QueryRejection>,
) -> Result<Json<DecisionPage>, ApiError> {
    let Query(q) = q.map_err(query_error)?;
    let conversation = match &q.conversation {
        Some(c) => Some(c.parse::<ConversationId>().map_err(|_| {
            ApiError::bad_request(format!("`conversation` {c:?} is not a conversation id"))
        })?),
        None => None,
    };
    let after = q.after.unwrap_or(0);
    if i64::try_from(after).is_err() {
        return Err(ApiError::bad_request(format!(
            "`after` {after} is out of range: pass `next_after` of the previous page (a log seq, at most {})",
            i64::MAX
        )));
    }
    let limit = q.limit.unwrap_or(200);
    if !(1..=MAX_DECISIONS).contains(&limit) {
        return Err(ApiError::bad_request(format!(
            "`limit` must be 1 to {MAX_DECISIONS}"
        )));
    }
    let rows = crate::services::routing::decisions(
        &st.store,
        DecisionFilter {
            conversation,
            after,
            limit,
        },
    )
    .await?;
    let next_after = (rows.len() == limit)
        .then(|| rows.last().map(|l| l.seq))
        .flatten();
    Ok(Json(DecisionPage {
        decisions: rows
            .into_iter()
            .map(|l| DecisionOut {
                seq: l.seq,
                event_id: l.event_id,
                conversation: l.record.fact.conversation().map(|c| c.to_string()),
                at: l.record.at,
                fact: l.record.fact,
            })
            .collect(),
        next_after,
    }))
}

/// A conversation's routing state (queue, agent, legs).
#[utoipa::path(
    get,
    path = "/api/v1/routing/conversations/{id}",
    params(("id" = String, Path, description = "Conversation id")),
    responses(
        (status = 200, description = "Routing state", body = RoutingConversationOut),
        (status = 401, description = "Missing or wrong token", body = crate::http::api::ErrorBody),
        (status = 404, description = "Routing does not know this conversation", body = crate::http::api::ErrorBody),
        (status = 503, description = "Routing is off (`routing_off`: its log could not be written; restart mgmt)", body = crate::http::api::ErrorBody)
    ),
    tag = "routing"
)]
pub async fn get_routing_conversation(
    State(st): State<Arc<RoutingApiState>>,
    Path(id): Path<String>,
) -> Result<Json<RoutingConversationOut>, ApiError> {
    let cid = conversation_id(&id)?;
    let v = st
        .routing
        .query(move |r| r.map(|(r, _)| r.conversation(&cid)))
        .await?
        .ok_or_else(routing_off)?;
    v.map(conversation_out)
        .map(Json)
        .ok_or_else(|| RoutingServiceError::Routing(RoutingError::UnknownConversation(cid)).into())
}

/// Every configured agent: presence, load and capacity per channel.
#[utoipa::path(
    get,
    path = "/api/v1/agents",
    responses(
        (status = 200, description = "Agents in configuration order", body = Vec<AgentOut>),
        (status = 401, description = "Missing or wrong token", body = crate::http::api::ErrorBody),
        (status = 503, description = "Routing is off (`routing_off`: its log could not be written; restart mgmt)", body = crate::http::api::ErrorBody)
    ),
    tag = "routing"
)]
pub async fn list_agents(
    State(st): State<Arc<RoutingApiState>>,
) -> Result<Json<Vec<AgentOut>>, ApiError> {
    st.routing
        .query(|r| {
            r.map(|(r, _)| {
                r.config()
                    .agents
                    .iter()
                    .filter_map(|a| r.agent(&a.id))
                    .map(|v| agent_out(r, v))
                    .collect()
            })
        })
        .await?
        .map(Json)
        .ok_or_else(routing_off)
}

fn unknown_agent(id: &str) -> ApiError {
    RoutingServiceError::Routing(RoutingError::UnknownAgent(AgentId::new(id))).into()
}

/// One agent.
#[utoipa::path(
    get,
    path = "/api/v1/agents/{id}",
    params(("id" = String, Path, description = "Agent id")),
    responses(
        (status = 200, description = "The agent", body = AgentOut),
        (status = 401, description = "Missing or wrong token", body = crate::http::api::ErrorBody),
        (status = 404, description = "No such agent (`unknown_agent`)", body = crate::http::api::ErrorBody),
        (status = 503, description = "Routing is off (`routing_off`: its log could not be written; restart mgmt)", body = crate::http::api::ErrorBody)
    ),
    tag = "routing"
)]
pub async fn get_agent(
    State(st): State<Arc<RoutingApiState>>,
    Path(id): Path<String>,
) -> Result<Json<AgentOut>, ApiError> {
    let aid = AgentId::new(id.clone());
    st.routing
        .query(move |r| r.map(|(r, _)| r.agent(&aid).map(|v| agent_out(r, v))))
        .await?
        .ok_or_else(routing_off)?
        .map(Json)
        .ok_or_else(|| unknown_agent(&id))
}

/// Set an agent's presence. Going available routes waiting work to them at
/// once; going offline requeues or keeps their conversations per queue policy.
#[utoipa::path(
    put,
    path = "/api/v1/agents/{id}/presence",
    params(("id" = String, Path, description = "Agent id")),
    request_body = PresenceRequest,
    responses(
        (status = 200, description = "The agent after the change and the decisions it caused", body = CommandOut),
        (status = 401, description = "Missing or wrong token", body = crate::http::api::ErrorBody),
        (status = 404, description = "No such agent (`unknown_agent`)", body = crate::http::api::ErrorBody),
        (status = 503, description = "Routing is off (`routing_off`: its log could not be written; restart mgmt)", body = crate::http::api::ErrorBody),
        (status = 422, description = "Unknown state", body = crate::http::api::ErrorBody)
    ),
    tag = "routing"
)]
pub async fn put_presence(
    State(st): State<Arc<RoutingApiState>>,
    by: Actor,
    Path(id): Path<String>,
    body: Result<Json<PresenceRequest>, JsonRejection>,
) -> Result<Json<CommandOut>, ApiError> {
    let Json(req) = body.map_err(json_error)?;
    let presence = match req.state.as_str() {
        "available" => Presence::Available,
        "busy" => Presence::Busy,
        "away" => Presence::Away,
        "offline" => Presence::Offline,
        other => {
            return Err(err(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_body",
                format!(
                    "`state` {other:?} is not one of available, busy, away, offline (wrap-up is set by routing)"
                ),
            ));
        }
    };
    run(
        &st,
        &by,
        Command::SetPresence {
            agent: AgentId::new(id),
            presence,
        },
    )
    .await
    .map(Json)
}

/// Every queue: how many conversations wait and for how long.
#[utoipa::path(
    get,
    path = "/api/v1/queues",
    responses(
        (status = 200, description = "Queues in configuration order", body = Vec<QueueOut>),
        (status = 401, description = "Missing or wrong token", body = crate::http::api::ErrorBody),
        (status = 503, description = "Routing is off (`routing_off`: its log could not be written; restart mgmt)", body = crate::http::api::ErrorBody)
    ),
    tag = "routing"
)]
pub async fn list_queues(
    State(st): State<Arc<RoutingApiState>>,
) -> Result<Json<Vec<QueueOut>>, ApiError> {
    st.routing
        .query(|r| {
            r.map(|(r, _)| {
                let now = now_ms().max(r.now());
                let available = r
                    .config()
                    .agents
                    .iter()
                    .filter_map(|a| r.agent(&a.id))
                    .filter(|a| a.presence == Presence::Available)
                    .count();
                r.config()
                    .queues
                    .iter()
                    .map(|q| {
                        let waiting = r.waiting(&q.id);
                        let oldest = waiting
                            .iter()
                            .filter_map(|c| r.conversation(c))
                            .map(|v| v.age)
                            .min();
                        QueueOut {
                            id: q.id.to_string(),
                            strategy: serde_json::to_value(q.strategy)
                                .ok()
                                .and_then(|v| v.as_str().map(str::to_string))
                                .unwrap_or_default(),
                            waiting: waiting.len(),
                            longest_wait_ms: oldest.map_or(0, |a| now.saturating_sub(a)),
                            conversations: waiting.iter().map(|c| c.to_string()).collect(),
                            agents_available: available,
                        }
                    })
                    .collect()
            })
        })
        .await?
        .map(Json)
        .ok_or_else(routing_off)
}

/// Assign a conversation to an agent (`{"agent": "ana"}`: at once if they
/// have room, else reserved for them for `agent_wait_ms`, then its queue), or
/// transfer it to a queue (`{"queue": "sales"}`).
#[utoipa::path(
    post,
    path = "/api/v1/conversations/{id}/assign",
    params(("id" = String, Path, description = "Conversation id")),
    request_body = AssignRequest,
    responses(
        (status = 200, description = "The conversation's routing state and the decisions", body = CommandOut),
        (status = 401, description = "Missing or wrong token", body = crate::http::api::ErrorBody),
        (status = 404, description = "Unknown conversation, agent (`unknown_agent`) or queue (`unknown_queue`)", body = crate::http::api::ErrorBody),
        (status = 409, description = "Not possible in the conversation's state", body = crate::http::api::ErrorBody),
        (status = 422, description = "Neither or both of `agent` and `queue`", body = crate::http::api::ErrorBody)
    ),
    tag = "routing"
)]
pub async fn assign(
    State(st): State<Arc<RoutingApiState>>,
    by: Actor,
    Path(id): Path<String>,
    body: Result<Json<AssignRequest>, JsonRejection>,
) -> Result<Json<CommandOut>, ApiError> {
    let Json(req) = body.map_err(json_error)?;
    let conversation = conversation_id(&id)?;
    let target = match (req.agent, req.queue) {
        (Some(agent), None) => TransferTarget::Agent {
            agent: AgentId::new(agent),
        },
        (None, Some(queue)) => TransferTarget::Queue {
            queue: QueueId::new(queue),
        },
        _ => {
            return Err(err(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_body",
                "give exactly one of `agent` and `queue`",
            ));
        }
    };
    run(
        &st,
        &by,
        Command::Transfer {
            conversation,
            target,
        },
    )
    .await
    .map(Json)
}

/// Query of `GET /api/v1/metrics/routing`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct MetricsQuery {
    /// Period start, ms since the epoch (inclusive; default 0).
    pub from: Option<u64>,
    /// Period end, ms since the epoch (exclusive; default now).
    pub to: Option<u64>,
    /// Service-level threshold in ms (default 20000: "80/20").
    pub service_level_ms: Option<u64>,
    /// A configured site: adds the business-hours variant on its calendar.
    pub site: Option<String>,
}

/// Contact-center metrics over the logged decisions (docs/METRICS.md):
/// service level, abandonment, ASA, AHT, first response, resolution,
/// occupancy; overall and per queue.
#[utoipa::path(
    get,
    path = "/api/v1/metrics/routing",
    params(MetricsQuery),
    responses(
        (status = 200, description = "`{plain: {total, by_queue}, business_hours}`", body = Object),
        (status = 400, description = "Bad query", body = crate::http::api::ErrorBody),
        (status = 401, description = "Missing or wrong token", body = crate::http::api::ErrorBody),
        (status = 404, description = "Unknown site", body = crate::http::api::ErrorBody)
    ),
    tag = "routing"
)]
pub async fn routing_metrics(
    State(st): State<Arc<RoutingApiState>>,
    q: Result<Query<MetricsQuery>, QueryRejection>,
) -> Result<Json<Metrics>, ApiError> {
    let Query(q) = q.map_err(query_error)?;
    let from = q.from.unwrap_or(0);
    let until = q.to.unwrap_or_else(now_ms);
    if until < from {
        return Err(ApiError::bad_request("`to` is before `from`"));
    }
    let calendar = match q.site {
        Some(site) => {
            let sid = SiteId::new(site.clone());
            let hours = st
                .routing
                .query(move |r| {
                    r.and_then(|(_, i)| {
                        i.config
                            .sites
                            .iter()
                            .find(|s| s.id == sid)
                            .map(|s| s.hours.clone())
                    })
                })
                .await?
                .ok_or_else(|| {
                    err(
                        StatusCode::NOT_FOUND,
                        "unknown_site",
                        format!("no site {site} in the routing config"),
                    )
                })?;
            Some(Calendar::new(&hours).map_err(|e| {
                err(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "invalid_config",
                    e.to_string(),
                )
            })?)
        }
        None => None,
    };
    let (records, opts) = crate::services::routing::metrics_input(
        &st.store,
        MetricsOptions {
            service_level_ms: q.service_level_ms.unwrap_or(20_000),
            from,
            until,
            calendar,
        },
    )
    .await?;
    let m = tokio::task::spawn_blocking(move || metrics::compute(&records, &opts))
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "metrics computation failed");
            err(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "internal error; see the server log",
            )
        })?;
    Ok(Json(m))
}
