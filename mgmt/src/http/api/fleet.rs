//! The fleet REST API under `/api/v1/fleet`. Like the rest of `/api/v1` it
//! sits behind [`crate::http::auth::layer`] (the bearer token or a session);
//! every route also passes [`crate::services::fleet::authorize`], the check the console and
//! the CLI use: the API token, or an admin's session. What it changes is
//! audited by the fleet service under the real actor. Documented in
//! docs/FLEET.md.

use crate::http::error::ApiError;
use crate::services::fleet::db::{self, Approval, FleetError};
use crate::services::fleet::{Fleet, OpError};
use crate::services::fleet::{alerts, commands, config, telemetry};
use crate::services::users::auth::Actor;

use crate::clock::now_ms;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use crossline_core::NodeId;
use crossline_proto::{ApplianceSettings, CommandKind, DesiredConfig};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

const MAX_BODY: usize = 16 * 1024;

/// State of the fleet handlers.
pub struct FleetApiState {
    pub fleet: Fleet,
}

pub fn router(state: Arc<FleetApiState>) -> Router {
    Router::new()
        .route("/api/v1/fleet/enrollments", get(enrollments))
        .route("/api/v1/fleet/enrollments/{id}/approve", post(approve))
        .route("/api/v1/fleet/enrollments/{id}/reject", post(reject))
        .route("/api/v1/fleet/devices", get(devices))
        .route("/api/v1/fleet/devices/{id}/revoke", post(revoke))
        .route("/api/v1/fleet/devices/{id}/rekey", post(rekey))
        .route("/api/v1/fleet/devices/{id}/meta", post(set_meta))
        .route("/api/v1/fleet/devices/{id}", get(device_detail))
        .route(
            "/api/v1/fleet/devices/{id}/telemetry",
            get(telemetry_history),
        )
        .route("/api/v1/fleet/alerts", get(list_alerts))
        .route("/api/v1/fleet/config", post(push_config))
        .route("/api/v1/fleet/devices/{id}/config", get(device_config))
        .route(
            "/api/v1/fleet/devices/{id}/commands",
            get(device_commands).post(post_command),
        )
        .route("/api/v1/fleet/commands/{id}", get(get_command))
        .route("/api/v1/fleet/commands/{id}/output", get(command_output))
        .route_layer(axum::middleware::from_fn(only_authorized))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(state)
}

/// Refuses (403) every fleet route to an actor [`crate::services::fleet::authorize`] refuses.
async fn only_authorized(
    actor: Actor,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    match crate::services::fleet::authorize(&actor) {
        Ok(()) => next.run(req).await,
        Err(d) => ApiError::from(d).into_response(),
    }
}

impl From<OpError> for ApiError {
    fn from(e: OpError) -> Self {
        match e {
            OpError::Denied(d) => d.into(),
            OpError::Fleet(FleetError::NoEnrollment(_) | FleetError::NoDevice(_)) => {
                ApiError::new(StatusCode::NOT_FOUND, "not_found", e.to_string())
            }
            OpError::Fleet(FleetError::AlreadyDecided { .. } | FleetError::Taken(_)) => {
                ApiError::new(StatusCode::CONFLICT, "conflict", e.to_string())
            }
            OpError::Fleet(FleetError::Invalid(m)) => ApiError::bad_request(m),
            OpError::Fleet(FleetError::Storage(s)) => {
                tracing::error!(error = %s, "fleet database error");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "internal error; see the server log",
                )
            }
            OpError::Store(s) => s.into(),
            OpError::Other(m) => {
                tracing::error!(error = %m, "fleet operation failed");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "internal error; see the server log",
                )
            }
        }
    }
}

fn device_id(id: &str) -> Result<NodeId, ApiError> {
    NodeId::new(id).map_err(|e| ApiError::bad_request(format!("device id {id:?}: {e}")))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EnrollmentsQuery {
    state: Option<String>,
}

async fn enrollments(
    State(st): State<Arc<FleetApiState>>,
    q: Result<Query<EnrollmentsQuery>, QueryRejection>,
) -> Result<Json<Vec<db::Enrollment>>, ApiError> {
    let Query(q) = q.map_err(|e| ApiError::bad_request(e.body_text()))?;
    if let Some(s) = &q.state
        && !["pending", "approved", "rejected"].contains(&s.as_str())
    {
        return Err(ApiError::bad_request(
            "state must be pending, approved or rejected",
        ));
    }
    let list = st.fleet.repo().enrollments(q.state).await?;
    Ok(Json(list))
}

#[derive(Serialize)]
struct Done {
    ok: bool,
}

async fn approve(
    State(st): State<Arc<FleetApiState>>,
    actor: Actor,
    Path(id): Path<String>,
    body: Result<Json<Approval>, JsonRejection>,
) -> Result<Json<Done>, ApiError> {
    let Json(a) = body.map_err(|e| ApiError::from_json_rejection(e, MAX_BODY))?;
    st.fleet.approve(&actor, &id, a).await?;
    Ok(Json(Done { ok: true }))
}

async fn reject(
    State(st): State<Arc<FleetApiState>>,
    actor: Actor,
    Path(id): Path<String>,
) -> Result<Json<Done>, ApiError> {
    st.fleet.reject(&actor, &id).await?;
    Ok(Json(Done { ok: true }))
}

/// One page of devices, filtered and sorted like the console's list
/// (`q`, `site`, `tag`, `status`, `operator`, `sort`, `dir`), cut by `limit`
/// (default 100, at most 1000) and `offset`. The body is the page's array;
/// `X-Total-Count` says how many devices match, `Link: <…>; rel="next"`
/// where the next page is.
async fn devices(
    State(st): State<Arc<FleetApiState>>,
    q: Result<Query<crate::http::fleet_list::ListQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(q) = q.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let filter = q.api_filter();
    let offset = filter.offset;
    // SQLite counts in i64: a bigger offset would wrap to a negative one
    // (which SQLite reads as 0, the first page).
    if i64::try_from(offset).is_err() {
        return Err(ApiError::bad_request(format!(
            "`offset` {offset} is out of range (at most {}); follow the `Link` header's next page",
            i64::MAX
        )));
    }
    let page = st.fleet.repo().device_page(filter).await?;
    let next = offset.saturating_add(page.rows.len());
    let mut headers = axum::http::HeaderMap::new();
    headers.insert("x-total-count", page.total.into());
    if next < page.total
        && let Ok(v) =
            axum::http::HeaderValue::from_str(&format!("<{}>; rel=\"next\"", q.api_next(next)))
    {
        headers.insert(axum::http::header::LINK, v);
    }
    let devices: Vec<db::FleetDevice> = page.rows.into_iter().map(|(d, _)| d).collect();
    Ok((headers, Json(devices)).into_response())
}

async fn revoke(
    State(st): State<Arc<FleetApiState>>,
    actor: Actor,
    Path(id): Path<String>,
) -> Result<Json<Done>, ApiError> {
    let id = device_id(&id)?;
    if st.fleet.revoke(&actor, &id).await? {
        Ok(Json(Done { ok: true }))
    } else {
        Err(OpError::Fleet(FleetError::NoDevice(id.to_string())).into())
    }
}

#[derive(Serialize)]
struct Rekeyed {
    device: String,
    /// The re-key's state (`pending` until the appliance has it).
    rekey: crate::services::fleet::rekey::RekeyView,
}

/// Sends the device a new secret over its session (202: it completes when
/// the device reconnects with it; see `GET .../devices/{id}`).
async fn rekey(
    State(st): State<Arc<FleetApiState>>,
    actor: Actor,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<Rekeyed>), ApiError> {
    let id = device_id(&id)?;
    let rekey = st.fleet.rekey(&actor, &id).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(Rekeyed {
            device: id.to_string(),
            rekey,
        }),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Meta {
    name: Option<String>,
    site: Option<String>,
    group: Option<String>,
    tags: Option<Vec<String>>,
}

async fn set_meta(
    State(st): State<Arc<FleetApiState>>,
    actor: Actor,
    Path(id): Path<String>,
    body: Result<Json<Meta>, JsonRejection>,
) -> Result<Json<Done>, ApiError> {
    let id = device_id(&id)?;
    let Json(m) = body.map_err(|e| ApiError::from_json_rejection(e, MAX_BODY))?;
    st.fleet
        .set_meta(&actor, id.as_str(), m.name, m.site, m.group, m.tags)
        .await?;
    Ok(Json(Done { ok: true }))
}

#[derive(Serialize)]
struct DeviceDetail {
    device: db::FleetDevice,
    /// Series with history (for `/telemetry?series=`).
    series: Vec<String>,
    alerts: Vec<alerts::Alert>,
    /// The last re-key, if any.
    rekey: Option<crate::services::fleet::rekey::RekeyView>,
}

async fn device_detail(
    State(st): State<Arc<FleetApiState>>,
    Path(id): Path<String>,
) -> Result<Json<DeviceDetail>, ApiError> {
    let id = device_id(&id)?.to_string();
    let repo = st.fleet.repo();
    let Some(device) = repo.fleet_device(id.clone()).await? else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "no such device",
        ));
    };
    Ok(Json(DeviceDetail {
        device,
        series: repo.series_names(id.clone()).await?,
        alerts: repo.recent_alerts(Some(id.clone()), 50).await?,
        rekey: repo.rekey_state(id).await?,
    }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HistoryQuery {
    series: String,
    /// How far back, in seconds (default one day, at most 30 days).
    since_s: Option<u64>,
}

async fn telemetry_history(
    State(st): State<Arc<FleetApiState>>,
    Path(id): Path<String>,
    q: Result<Query<HistoryQuery>, QueryRejection>,
) -> Result<Json<Vec<telemetry::Point>>, ApiError> {
    let id = device_id(&id)?.to_string();
    let Query(q) = q.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let since = q.since_s.unwrap_or(86_400).min(30 * 86_400) as i64;
    let now = now_ms() as i64;
    let points = st
        .fleet
        .repo()
        .history(id, q.series, now - since * 1000, now)
        .await?;
    Ok(Json(points))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AlertsQuery {
    /// Only alerts not cleared yet.
    open: Option<bool>,
    device: Option<String>,
}

async fn list_alerts(
    State(st): State<Arc<FleetApiState>>,
    q: Result<Query<AlertsQuery>, QueryRejection>,
) -> Result<Json<Vec<alerts::Alert>>, ApiError> {
    let Query(q) = q.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let repo = st.fleet.repo();
    let list = if q.open == Some(true) {
        let mut v = repo.open_alerts().await?;
        if let Some(d) = &q.device {
            v.retain(|a| &a.device == d);
        }
        v
    } else {
        repo.recent_alerts(q.device, 500).await?
    };
    Ok(Json(list))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PushConfig {
    device: Option<String>,
    group: Option<String>,
    tag: Option<String>,
    settings: ApplianceSettings,
}

#[derive(Serialize)]
struct Pushed {
    version: u64,
    devices: Vec<String>,
}

async fn push_config(
    State(st): State<Arc<FleetApiState>>,
    actor: Actor,
    body: Result<Json<PushConfig>, JsonRejection>,
) -> Result<Json<Pushed>, ApiError> {
    let Json(p) = body.map_err(|e| ApiError::from_json_rejection(e, MAX_BODY))?;
    let target = match (p.device, p.group, p.tag) {
        (Some(d), None, None) => config::Target::Device(d),
        (None, Some(g), None) => config::Target::Group(g),
        (None, None, Some(t)) => config::Target::Tag(t),
        _ => {
            return Err(ApiError::bad_request(
                "give exactly one of device, group or tag",
            ));
        }
    };
    let (version, devices) = st.fleet.push_config(&actor, target, p.settings).await?;
    Ok(Json(Pushed { version, devices }))
}

#[derive(Serialize)]
struct DeviceConfig {
    #[serde(flatten)]
    state: config::ConfigState,
    desired: Option<DesiredConfig>,
}

async fn device_config(
    State(st): State<Arc<FleetApiState>>,
    Path(id): Path<String>,
) -> Result<Json<DeviceConfig>, ApiError> {
    let id = device_id(&id)?.to_string();
    let repo = st.fleet.repo();
    Ok(Json(DeviceConfig {
        state: repo.config_state(id.clone()).await?,
        desired: repo.desired_config(id).await?,
    }))
}

#[derive(Serialize)]
struct Queued {
    id: String,
}

async fn post_command(
    State(st): State<Arc<FleetApiState>>,
    actor: Actor,
    Path(id): Path<String>,
    body: Result<Json<CommandKind>, JsonRejection>,
) -> Result<(StatusCode, Json<Queued>), ApiError> {
    let id = device_id(&id)?;
    let Json(kind) = body.map_err(|e| ApiError::from_json_rejection(e, MAX_BODY))?;
    let cmd = st.fleet.command(&actor, &id, kind).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(Queued {
            id: cmd.id.to_string(),
        }),
    ))
}

async fn device_commands(
    State(st): State<Arc<FleetApiState>>,
    Path(id): Path<String>,
) -> Result<Json<Vec<commands::CommandView>>, ApiError> {
    let id = device_id(&id)?.to_string();
    Ok(Json(st.fleet.repo().commands(id, 200).await?))
}

async fn get_command(
    State(st): State<Arc<FleetApiState>>,
    Path(id): Path<String>,
) -> Result<Json<commands::CommandView>, ApiError> {
    st.fleet
        .repo()
        .command(id)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such command"))
}

/// The command's output as a text file (collected logs download).
async fn command_output(
    State(st): State<Arc<FleetApiState>>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let c = st
        .fleet
        .repo()
        .command(id.clone())
        .await?
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such command"))?;
    let Some(output) = c.output else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "no_result",
            "the command has no result yet",
        ));
    };
    let name = format!("{}-{}-{}.txt", c.device, c.kind, c.id);
    Ok((
        [
            (
                axum::http::header::CONTENT_TYPE,
                "text/plain; charset=utf-8".to_string(),
            ),
            (
                axum::http::header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}\""),
            ),
        ],
        output,
    )
        .into_response())
}
