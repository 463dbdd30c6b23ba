//! The OpenAPI document served at `GET /api/v1/openapi.json` (without a
//! token): the conversations API ([`crate::http::api::ApiDoc`]), routing
//! ([`crate::http::api::routing::RoutingDoc`]), the fleet API and the operations
//! endpoints ([`FleetDoc`], [`OpsDoc`]). The fleet and operations handlers
//! are described here, next to each other, by the stubs below (their
//! bodies are the JSON of docs/FLEET.md and docs/ARCHITECTURE.md).
//!
//! The test at the end reads every `.route(...)` of mgmt's source and checks
//! that each `/api/`, `/healthz` and `/metrics` route, with each of its
//! methods, is in the document, and that the document names no other.

use utoipa::OpenApi;

/// The path of the document; served without authentication.
pub const PATH: &str = crate::http::OPENAPI_PATH;

/// The whole document.
pub fn document() -> utoipa::openapi::OpenApi {
    let mut doc = crate::http::api::ApiDoc::openapi();
    doc.merge(crate::http::api::routing::RoutingDoc::openapi());
    doc.merge(FleetDoc::openapi());
    doc.merge(OpsDoc::openapi());
    doc
}

/// The fleet API (docs/FLEET.md).
#[derive(OpenApi)]
#[openapi(paths(
    fleet::enrollments,
    fleet::approve,
    fleet::reject,
    fleet::devices,
    fleet::device,
    fleet::revoke,
    fleet::rekey,
    fleet::meta,
    fleet::telemetry,
    fleet::alerts,
    fleet::push_config,
    fleet::device_config,
    fleet::device_commands,
    fleet::post_command,
    fleet::command,
    fleet::command_output
))]
pub struct FleetDoc;

/// Health, metrics and the raw device/event views.
#[derive(OpenApi)]
#[openapi(paths(ops::healthz, ops::metrics, ops::devices, ops::events))]
pub struct OpsDoc;

/// Stubs that carry the fleet API's documentation (the handlers are in
/// [`crate::http::api::fleet`]).
#[allow(dead_code)]
mod fleet {
    use crate::http::api::ErrorBody;

    /// The enrollment queue (pending first).
    #[utoipa::path(get, path = "/api/v1/fleet/enrollments",
        params(("state" = Option<String>, Query, description = "pending, approved or rejected")),
        responses((status = 200, description = "Enrollments", body = Object),
                   (status = 400, description = "Unknown state", body = ErrorBody),
                   (status = 401, description = "Missing or wrong token", body = ErrorBody)),
        tag = "fleet")]
    pub fn enrollments() {}

    /// Approve a pending appliance: body `{device, name?, site?, group?, tags?}`.
    #[utoipa::path(post, path = "/api/v1/fleet/enrollments/{id}/approve",
        params(("id" = String, Path, description = "Enrollment id")),
        request_body(content = Object, description = "{device, name?, site?, group?, tags?}"),
        responses((status = 200, description = "`{\"ok\": true}`", body = Object),
                   (status = 404, description = "No such enrollment", body = ErrorBody),
                   (status = 409, description = "Already decided, or the device id is taken", body = ErrorBody)),
        tag = "fleet")]
    pub fn approve() {}

    /// Reject a pending appliance.
    #[utoipa::path(post, path = "/api/v1/fleet/enrollments/{id}/reject",
        params(("id" = String, Path, description = "Enrollment id")),
        responses((status = 200, description = "`{\"ok\": true}`", body = Object),
                   (status = 404, description = "No such enrollment", body = ErrorBody),
                   (status = 409, description = "Already decided", body = ErrorBody)),
        tag = "fleet")]
    pub fn reject() {}

    /// One page of devices, filtered and sorted like the console's list;
    /// `X-Total-Count` says how many match, `Link: <…>; rel="next"` where the
    /// next page is.
    #[utoipa::path(get, path = "/api/v1/fleet/devices",
        params(("q" = Option<String>, Query, description = "Search"),
               ("site" = Option<String>, Query, description = "Site"),
               ("tag" = Option<String>, Query, description = "Tag"),
               ("status" = Option<String>, Query, description = "online, offline, revoked, ..."),
               ("operator" = Option<String>, Query, description = "Network operator"),
               ("sort" = Option<String>, Query, description = "Sort column"),
               ("dir" = Option<String>, Query, description = "asc or desc"),
               ("limit" = Option<u32>, Query, description = "Page size (default 100, at most 1000)"),
               ("offset" = Option<u32>, Query, description = "Rows to skip")),
        responses((status = 200, description = "The page's devices", body = Object),
                   (status = 400, description = "Bad filter", body = ErrorBody)),
        tag = "fleet")]
    pub fn devices() {}

    /// One device, its telemetry series, its last 50 alerts, its last re-key.
    #[utoipa::path(get, path = "/api/v1/fleet/devices/{id}",
        params(("id" = String, Path, description = "Device id")),
        responses((status = 200, description = "The device", body = Object),
                   (status = 404, description = "No such device", body = ErrorBody)),
        tag = "fleet")]
    pub fn device() {}

    /// Revoke a device: disconnected at once, refused from then on.
    #[utoipa::path(post, path = "/api/v1/fleet/devices/{id}/revoke",
        params(("id" = String, Path, description = "Device id")),
        responses((status = 200, description = "`{\"ok\": true}`", body = Object),
                   (status = 404, description = "No such device", body = ErrorBody)),
        tag = "fleet")]
    pub fn revoke() {}

    /// Send the device a new secret over its connection.
    #[utoipa::path(post, path = "/api/v1/fleet/devices/{id}/rekey",
        params(("id" = String, Path, description = "Device id")),
        responses((status = 202, description = "`{device, rekey: {id, state: \"pending\", ...}}`", body = Object),
                   (status = 400, description = "Revoked device", body = ErrorBody),
                   (status = 404, description = "No such device", body = ErrorBody)),
        tag = "fleet")]
    pub fn rekey() {}

    /// Set a device's name, site, group or tags.
    #[utoipa::path(post, path = "/api/v1/fleet/devices/{id}/meta",
        params(("id" = String, Path, description = "Device id")),
        request_body(content = Object, description = "{name?, site?, group?, tags?}"),
        responses((status = 200, description = "`{\"ok\": true}`", body = Object),
                   (status = 404, description = "No such device", body = ErrorBody)),
        tag = "fleet")]
    pub fn meta() {}

    /// Telemetry history of one series: raw points within a day, 5-minute
    /// averages (with min/max) beyond.
    #[utoipa::path(get, path = "/api/v1/fleet/devices/{id}/telemetry",
        params(("id" = String, Path, description = "Device id"),
               ("series" = String, Query, description = "Series name (see the device's `series`)"),
               ("since_s" = Option<u64>, Query, description = "How far back, seconds (default a day, at most 30 days)")),
        responses((status = 200, description = "Points", body = Object)),
        tag = "fleet")]
    pub fn telemetry() {}

    /// Alerts, newest first.
    #[utoipa::path(get, path = "/api/v1/fleet/alerts",
        params(("open" = Option<bool>, Query, description = "Only alerts not cleared yet"),
               ("device" = Option<String>, Query, description = "Only this device")),
        responses((status = 200, description = "Alerts", body = Object)),
        tag = "fleet")]
    pub fn alerts() {}

    /// Push appliance settings to one device, a group or a tag.
    #[utoipa::path(post, path = "/api/v1/fleet/config",
        request_body(content = Object, description = "{device | group | tag, settings}"),
        responses((status = 200, description = "`{version, devices}`", body = Object),
                   (status = 400, description = "Not exactly one target", body = ErrorBody)),
        tag = "fleet")]
    pub fn push_config() {}

    /// A device's desired and applied configuration.
    #[utoipa::path(get, path = "/api/v1/fleet/devices/{id}/config",
        params(("id" = String, Path, description = "Device id")),
        responses((status = 200, description = "Versions, drift and the desired settings", body = Object)),
        tag = "fleet")]
    pub fn device_config() {}

    /// A device's remote commands, newest first.
    #[utoipa::path(get, path = "/api/v1/fleet/devices/{id}/commands",
        params(("id" = String, Path, description = "Device id")),
        responses((status = 200, description = "Commands", body = Object)),
        tag = "fleet")]
    pub fn device_commands() {}

    /// Queue a remote command (`{"kind": "reboot"}`, ...; docs/FLEET.md).
    #[utoipa::path(post, path = "/api/v1/fleet/devices/{id}/commands",
        params(("id" = String, Path, description = "Device id")),
        request_body(content = Object, description = "A CommandKind"),
        responses((status = 202, description = "`{id}`", body = Object),
                   (status = 404, description = "No such device", body = ErrorBody)),
        tag = "fleet")]
    pub fn post_command() {}

    /// One remote command and its result.
    #[utoipa::path(get, path = "/api/v1/fleet/commands/{id}",
        params(("id" = String, Path, description = "Command id")),
        responses((status = 200, description = "The command", body = Object),
                   (status = 404, description = "No such command", body = ErrorBody)),
        tag = "fleet")]
    pub fn command() {}

    /// A command's output as a text file (collected logs).
    #[utoipa::path(get, path = "/api/v1/fleet/commands/{id}/output",
        params(("id" = String, Path, description = "Command id")),
        responses((status = 200, description = "The output", content_type = "text/plain", body = String),
                   (status = 404, description = "No such command, or no result yet", body = ErrorBody)),
        tag = "fleet")]
    pub fn command_output() {}
}

/// Stubs that carry the documentation of [`crate::http`]'s routes.
#[allow(dead_code)]
mod ops {
    use crate::http::api::ErrorBody;

    /// Liveness: `ok` (no token needed).
    #[utoipa::path(get, path = "/healthz", security(()),
        responses((status = 200, description = "ok", content_type = "text/plain", body = String)),
        tag = "ops")]
    pub fn healthz() {}

    /// Prometheus metrics (no token needed).
    #[utoipa::path(get, path = "/metrics", security(()),
        responses((status = 200, description = "Prometheus text format", content_type = "text/plain", body = String)),
        tag = "ops")]
    pub fn metrics() {}

    /// Registered devices: `[{id, online, revoked, last_seen_ms, events}]`.
    #[utoipa::path(get, path = "/api/v1/devices",
        responses((status = 200, description = "Devices", body = Object),
                   (status = 401, description = "Missing or wrong token", body = ErrorBody)),
        tag = "ops")]
    pub fn devices() {}

    /// The newest stored events (every node's), newest first.
    #[utoipa::path(get, path = "/api/v1/events",
        params(("device" = Option<String>, Query, description = "Only this origin"),
               ("limit" = Option<u32>, Query, description = "At most this many (default 100, at most 1000)")),
        responses((status = 200, description = "Events", body = Object),
                   (status = 400, description = "Bad device id", body = ErrorBody),
                   (status = 401, description = "Missing or wrong token", body = ErrorBody)),
        tag = "ops")]
    pub fn events() {}
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use std::collections::BTreeSet;
    use std::path::Path;

    /// Every `(method, path)` the source's `.route(path, method(h).method(h))`
    /// calls serve.
    fn routes_in_source() -> BTreeSet<(String, String)> {
        fn walk(dir: &Path, out: &mut Vec<String>) {
            for e in std::fs::read_dir(dir).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    walk(&p, out);
                } else if p.extension().is_some_and(|x| x == "rs") && !p.ends_with("openapi.rs") {
                    out.push(std::fs::read_to_string(&p).unwrap());
                }
            }
        }
        let mut sources = Vec::new();
        walk(
            &Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
            &mut sources,
        );
        let mut routes = BTreeSet::new();
        for src in &sources {
            let mut rest = src.as_str();
            while let Some(i) = rest.find(".route(") {
                rest = &rest[i + ".route(".len()..];
                let args = rest.trim_start();
                // A path that is not a literal would escape this check.
                let args = args.strip_prefix('"').unwrap_or_else(|| {
                    panic!(
                        "a .route( whose path is not a string literal: {}",
                        &args[..40.min(args.len())]
                    )
                });
                let Some(end) = args.find('"') else { continue };
                let path = &args[..end];
                if !path.starts_with('/') {
                    continue;
                }
                // The method routers up to the closing parenthesis.
                let mut depth = 1;
                let mut close = 0;
                for (j, c) in args[end..].char_indices() {
                    match c {
                        '(' => depth += 1,
                        ')' => {
                            depth -= 1;
                            if depth == 0 {
                                close = end + j;
                                break;
                            }
                        }
                        _ => {}
                    }
                }
                assert!(close > end, "unbalanced .route({path:?} ...");
                let handlers = &args[end + 1..close];
                for m in ["get", "post", "put", "patch", "delete"] {
                    let called = handlers.match_indices(&format!("{m}(")).any(|(k, _)| {
                        k == 0
                            || !handlers[..k]
                                .chars()
                                .next_back()
                                .is_some_and(|c| c.is_alphanumeric() || c == '_')
                    });
                    if called {
                        routes.insert((m.to_string(), path.to_string()));
                    }
                }
            }
        }
        routes
    }

    #[test]
    fn every_api_route_the_router_serves_is_in_the_document_and_no_other() {
        let served: BTreeSet<(String, String)> = routes_in_source()
            .into_iter()
            .filter(|(_, p)| p.starts_with("/api/") || p == "/healthz" || p == "/metrics")
            .collect();
        // The scrape finds what we know is there.
        for known in [
            ("get", "/api/v1/conversations"),
            ("put", "/api/v1/routing/config"),
            ("post", "/api/v1/fleet/devices/{id}/commands"),
            ("get", "/api/v1/events"),
            ("get", "/api/v1/openapi.json"),
        ] {
            assert!(
                served.contains(&(known.0.to_string(), known.1.to_string())),
                "{known:?} not found in the router source: {served:?}"
            );
        }
        let doc = serde_json::to_value(super::document()).unwrap();
        let mut documented = BTreeSet::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for m in item.as_object().unwrap().keys() {
                documented.insert((m.clone(), path.clone()));
            }
        }
        let missing: Vec<_> = served.difference(&documented).collect();
        assert!(
            missing.is_empty(),
            "served but not in the OpenAPI document (add a #[utoipa::path]): {missing:?}"
        );
        let stale: Vec<_> = documented.difference(&served).collect();
        assert!(
            stale.is_empty(),
            "in the OpenAPI document but not served: {stale:?}"
        );
    }
}
