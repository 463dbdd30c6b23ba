//! mgmt's HTTP surface: health, metrics, and the JSON API.

pub mod api;
pub mod assets;
pub mod auth;
pub mod console;
pub mod error;
pub mod fleet_list;
pub mod html;
pub mod i18n;
pub mod web;

/// Where the OpenAPI document is served; public, like `/health` (the
/// auth layer lets it through without a token).
pub const OPENAPI_PATH: &str = "/api/v1/openapi.json";

use crate::http::error::ApiError;
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
    /// Bearer token for /api.
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

/// axum's listener for HTTPS: connections whose TLS handshake finished
/// (handshakes run concurrently in [`crossline_tls::accept::TlsIncoming`]).
pub struct TlsListener(pub crossline_tls::accept::TlsIncoming);

impl axum::serve::Listener for TlsListener {
    type Io = crossline_tls::accept::TlsStream<tokio::net::TcpStream>;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.0.next().await {
            Some(c) => c,
            // The acceptor only stops when dropped; never hand out nothing.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.0.local_addr())
    }
}

/// The Content-Security-Policy of every answer: scripts, styles, images,
/// fonts and connections (the live stream) only from mgmt itself, no inline
/// script or style, no plugins, forms only to mgmt, and no framing by any
/// site (clickjacking). The pages keep to it: no inline `<script>`,
/// `style=` or `on…=` handlers; htmx is told not to inject its indicator
/// style nor settle `style` attributes (`htmx-config` in templates/base.html).
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; font-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// `Strict-Transport-Security` over HTTPS: one year, for this host only.
pub const HSTS: &str = "max-age=31536000";

/// Security headers on every answer (pages, API, assets, errors), unless a
/// handler set its own: [`CONTENT_SECURITY_POLICY`], `X-Frame-Options:
/// DENY` (frame-ancestors for old browsers), `Referrer-Policy:
/// same-origin` (conversation and device URLs never leak to other sites),
/// `X-Content-Type-Options: nosniff`.
pub async fn security_headers(mut r: Response) -> Response {
    let h = r.headers_mut();
    for (name, value) in [
        (
            header::CONTENT_SECURITY_POLICY,
            header::HeaderValue::from_static(CONTENT_SECURITY_POLICY),
        ),
        (
            header::X_FRAME_OPTIONS,
            header::HeaderValue::from_static("DENY"),
        ),
        (
            header::REFERRER_POLICY,
            header::HeaderValue::from_static("same-origin"),
        ),
        (
            header::X_CONTENT_TYPE_OPTIONS,
            header::HeaderValue::from_static("nosniff"),
        ),
    ] {
        h.entry(name).or_insert(value);
    }
    r
}

/// `Strict-Transport-Security` ([`HSTS`]) on every answer over HTTPS (a
/// browser then never tries this host over plain HTTP again). Not sent over
/// plain HTTP, where browsers ignore it.
pub async fn strict_transport_security(mut r: Response) -> Response {
    r.headers_mut()
        .entry(header::STRICT_TRANSPORT_SECURITY)
        .or_insert(header::HeaderValue::from_static(HSTS));
    r
}

/// Every cookie set over HTTPS is `Secure` (the browser never sends it over
/// plain HTTP).
pub async fn secure_cookies(mut r: Response) -> Response {
    let cookies: Vec<header::HeaderValue> = r
        .headers_mut()
        .get_all(header::SET_COOKIE)
        .iter()
        .cloned()
        .collect();
    if cookies.is_empty() {
        return r;
    }
    r.headers_mut().remove(header::SET_COOKIE);
    for c in cookies {
        let secure = match c.to_str() {
            Ok(s) if !s.to_ascii_lowercase().contains("; secure") => {
                header::HeaderValue::from_str(&format!("{s}; Secure")).unwrap_or(c)
            }
            _ => c,
        };
        r.headers_mut().append(header::SET_COOKIE, secure);
    }
    r
}

/// The plain-HTTP app off loopback while TLS is on: every request is
/// redirected (308) to the same path on HTTPS.
pub fn redirect_to_https(https_port: u16) -> Router {
    Router::new().fallback(move |req: axum::extract::Request| async move {
        let host = req
            .headers()
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .map(host_without_port)
            .filter(|h| {
                !h.is_empty()
                    && h.chars()
                        .all(|c| c.is_ascii_alphanumeric() || ".-:[]".contains(c))
            })
            .unwrap_or("localhost")
            .to_string();
        let path = req
            .uri()
            .path_and_query()
            .map(|p| p.as_str().to_string())
            .unwrap_or_else(|| "/".into());
        axum::response::Redirect::permanent(&format!("https://{host}:{https_port}{path}"))
    })
}

fn host_without_port(h: &str) -> &str {
    if let Some(end) = h.strip_prefix('[').and_then(|r| r.find(']')) {
        return &h[..end + 2];
    }
    h.rsplit_once(':').map(|(a, _)| a).unwrap_or(h)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tls_tests {
    use super::*;

    #[tokio::test]
    async fn cookies_set_over_https_are_secure() {
        let mut r = Response::new(axum::body::Body::empty());
        for c in ["s=1; Path=/; HttpOnly", "t=2; Path=/; Secure"] {
            r.headers_mut()
                .append(header::SET_COOKIE, header::HeaderValue::from_static(c));
        }
        let r = secure_cookies(r).await;
        let got: Vec<&str> = r
            .headers()
            .get_all(header::SET_COOKIE)
            .iter()
            .map(|v| v.to_str().unwrap())
            .collect();
        assert_eq!(
            got,
            ["s=1; Path=/; HttpOnly; Secure", "t=2; Path=/; Secure"]
        );
    }

    #[test]
    fn redirect_host() {
        assert_eq!(
            host_without_port("mgmt.example.org:8080"),
            "mgmt.example.org"
        );
        assert_eq!(host_without_port("[::1]:8080"), "[::1]");
        assert_eq!(host_without_port("10.0.0.1"), "10.0.0.1");
    }
}
