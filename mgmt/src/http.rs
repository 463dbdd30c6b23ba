//! mgmt's HTTP surface: health, metrics, and the JSON API.

use crate::error::ApiError;
use crate::metrics::Metrics;
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use crossline_core::{Event, NodeId};
use crossline_store::{DeviceRegistry, EventLog};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// Shared state of the HTTP handlers.
pub struct AppState<S> {
    pub store: S,
    pub metrics: Arc<Metrics>,
    /// Bearer token for /api (until user accounts land).
    pub api_token: String,
}

pub fn router<S>(state: Arc<AppState<S>>) -> Router
where
    S: EventLog + DeviceRegistry + Clone,
{
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics::<S>))
        .route("/api/v1/devices", get(devices::<S>))
        .route("/api/v1/events", get(events::<S>))
        .with_state(state)
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn metrics<S: EventLog + DeviceRegistry + Clone>(
    State(st): State<Arc<AppState<S>>>,
) -> Response {
    let devs = st.store.devices().await.unwrap_or_default();
    let online = devs.iter().filter(|d| d.online).count() as u64;
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        st.metrics.render(online, devs.len() as u64),
    )
        .into_response()
}

#[derive(Serialize)]
struct DeviceView {
    id: String,
    online: bool,
    revoked: bool,
    last_seen_ms: Option<u64>,
    events: u64,
}

async fn devices<S: EventLog + DeviceRegistry + Clone>(
    State(st): State<Arc<AppState<S>>>,
) -> Result<Json<Vec<DeviceView>>, ApiError> {
    let counts = st.store.counts().await?;
    let devs = st.store.devices().await?;
    Ok(Json(
        devs.into_iter()
            .map(|d| DeviceView {
                events: counts
                    .iter()
                    .find(|(n, _)| n == &d.id)
                    .map(|(_, c)| *c)
                    .unwrap_or(0),
                id: d.id.to_string(),
                online: d.online,
                revoked: d.revoked,
                last_seen_ms: d.last_seen_ms,
            })
            .collect(),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EventsQuery {
    device: Option<String>,
    limit: Option<usize>,
}

async fn events<S: EventLog + DeviceRegistry + Clone>(
    State(st): State<Arc<AppState<S>>>,
    q: Result<Query<EventsQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Vec<Event>>, ApiError> {
    let Query(q) = q.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let device = q
        .device
        .map(NodeId::new)
        .transpose()
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let limit = q.limit.unwrap_or(100).min(1000);
    Ok(Json(st.store.recent(device.as_ref(), limit).await?))
}
