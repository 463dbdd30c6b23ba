//! The admin fleet console (server-rendered; docs/FLEET.md, "Console"):
//! fleet list with health, filters and search; enrollment queue with
//! approve; device page with telemetry charts (SVG drawn here), lines,
//! configuration and drift, commands and their results, alerts. Every
//! route passes [`crate::services::fleet::authorize`] (admins only, the check the JSON API
//! and the CLI use); every change is written to the audit log by the fleet
//! service.

use crate::clock::now_ms;
use crate::http::auth::CurrentUser;
use crate::http::html::Layout;
use crate::http::html::{WebError, render};
use crate::services::fleet::db::{self, Approval, FleetDevice};
use crate::services::fleet::{Fleet, OpError, alerts, commands, config, telemetry};
use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use crossline_core::NodeId;
use crossline_proto::{ApplianceSettings, CommandKind, Telemetry};
use serde::Deserialize;
use std::sync::Arc;

/// State of the console handlers.
pub struct FleetWebState {
    pub fleet: Fleet,
}

pub fn router(st: Arc<FleetWebState>) -> Router {
    Router::new()
        .route("/admin/fleet", get(list_page))
        .route("/admin/fleet/list", get(list_part))
        .route("/admin/fleet/enrollments", get(enrollments_page))
        .route("/admin/fleet/enrollments/{id}/approve", post(approve))
        .route("/admin/fleet/enrollments/{id}/reject", post(reject))
        .route("/admin/fleet/d/{id}", get(device_page))
        .route("/admin/fleet/d/{id}/config", post(push_config))
        .route("/admin/fleet/d/{id}/command", post(run_command))
        .route("/admin/fleet/d/{id}/revoke", post(revoke))
        .route("/admin/fleet/d/{id}/rekey", post(rekey))
        .route("/admin/fleet/d/{id}/meta", post(set_meta))
        .route_layer(axum::middleware::from_fn(only_authorized))
        .with_state(st)
}

/// Refuses (403 page; the login page when nobody is logged in) every console
/// route to a user [`crate::services::fleet::authorize`] refuses.
async fn only_authorized(
    user: CurrentUser,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Result<Response, WebError> {
    crate::services::fleet::authorize(&user.actor())?;
    Ok(next.run(req).await)
}

impl From<OpError> for WebError {
    fn from(e: OpError) -> Self {
        use crate::services::fleet::db::FleetError as F;
        match e {
            OpError::Denied(d) => d.into(),
            OpError::Fleet(F::NoEnrollment(_) | F::NoDevice(_)) => WebError::NotFound,
            OpError::Fleet(F::AlreadyDecided { .. } | F::Taken(_)) => {
                WebError::Conflict(e.to_string())
            }
            OpError::Fleet(F::Invalid(m)) => WebError::BadRequest(m),
            OpError::Store(s) => s.into(),
            other => {
                tracing::error!(error = %other, "fleet console operation failed");
                WebError::Internal
            }
        }
    }
}

/// 303 to a console page; a target built from a path segment that is not a
/// plain local path (a decoded CR/LF, say) goes to the fleet list instead.
fn see_other(to: &str) -> Response {
    let mut r =
        Redirect::to(&crate::http::html::safe_next(Some(to), "/admin/fleet")).into_response();
    *r.status_mut() = StatusCode::SEE_OTHER;
    r
}

/// One row of the fleet list.
pub struct Row {
    pub d: FleetDevice,
    pub status: &'static str,
    pub status_label: String,
    pub last_seen: String,
    pub version: String,
    pub lines: Vec<LineView>,
    pub open_alerts: usize,
}

pub struct LineView {
    pub line: String,
    pub signal: String,
    pub registered: bool,
    pub operator: String,
    pub sim: String,
    pub iccid: String,
    pub model: String,
    pub firmware: String,
    pub imei: String,
    pub restarts: u32,
}

impl LineView {
    /// The catalog key of the SIM state the appliance reports (`ready`,
    /// `pin_required`, ...), or empty for a state this mgmt does not know
    /// (shown as received).
    pub fn sim_key(&self) -> &'static str {
        match self.sim.as_str() {
            "ready" => "fleet.sim.ready",
            "pin_required" => "fleet.sim.pin_required",
            "pin_rejected" => "fleet.sim.pin_rejected",
            "puk_required" => "fleet.sim.puk_required",
            "not_inserted" => "fleet.sim.not_inserted",
            "error" => "fleet.sim.error",
            "unknown" => "fleet.sim.unknown",
            _ => "",
        }
    }
}

fn telemetry_of(d: &FleetDevice) -> Option<Telemetry> {
    d.telemetry
        .as_ref()
        .and_then(|v| serde_json::from_value(v.clone()).ok())
}

fn lines_of(t: Option<&Telemetry>) -> Vec<LineView> {
    t.map(|t| {
        t.modems
            .iter()
            .map(|m| LineView {
                line: m.line.clone(),
                signal: m
                    .signal_dbm
                    .map_or_else(|| "–".into(), |d| format!("{d} dBm")),
                registered: m.registered,
                operator: m.operator.clone().unwrap_or_default(),
                sim: m.sim.clone().unwrap_or_default(),
                iccid: m.iccid.clone().unwrap_or_default(),
                model: m.model.clone().unwrap_or_default(),
                firmware: m.firmware.clone().unwrap_or_default(),
                imei: m.imei.clone().unwrap_or_default(),
                restarts: m.restarts,
            })
            .collect()
    })
    .unwrap_or_default()
}

fn status_key(s: &str) -> &'static str {
    match s {
        "online" => "fleet.status.online",
        "revoked" => "fleet.status.revoked",
        _ => "fleet.status.offline",
    }
}

fn status_of(d: &FleetDevice) -> &'static str {
    crate::services::fleet::status_code(d.revoked, d.online)
}

use crate::http::fleet_list::{ListQuery, PAGE_SIZE};

/// A sortable column header: its link, and the arrow if sorted by it.
pub struct SortLink {
    pub href: String,
    pub arrow: &'static str,
}

/// The live part of the fleet list (`/admin/fleet/list`): open alerts, one
/// page of devices, the pager.
#[derive(Template)]
#[template(path = "fleet_rows.html")]
struct ListFragment {
    l: Layout,
    qs: String,
    rows: Vec<Row>,
    total: usize,
    page: usize,
    pages: usize,
    first: usize,
    last: usize,
    /// Sort links by column code.
    sorts: Vec<(&'static str, SortLink)>,
    alerts: Vec<AlertView>,
    open_alerts: usize,
    pending: usize,
}

impl ListFragment {
    fn sort(&self, col: &str) -> &SortLink {
        static NONE: SortLink = SortLink {
            href: String::new(),
            arrow: "",
        };
        self.sorts
            .iter()
            .find(|(c, _)| *c == col)
            .map_or(&NONE, |(_, s)| s)
    }

    fn page_href(&self, page: usize) -> String {
        if self.qs.is_empty() {
            format!("/admin/fleet?page={page}")
        } else {
            format!("/admin/fleet?{}&page={page}", self.qs)
        }
    }
}

#[derive(Template)]
#[template(path = "fleet_list.html")]
struct ListPage {
    l: Layout,
    f: ListQuery,
    /// The rendered [`ListFragment`].
    list: String,
    sites: Vec<String>,
    tags: Vec<String>,
    operators: Vec<String>,
    /// (value, label) of the status filter.
    statuses: Vec<(&'static str, String)>,
}

pub struct AlertView {
    pub a: alerts::Alert,
    pub raised: String,
    pub cleared: String,
}

/// Reads and renders one page of the fleet list.
async fn list_fragment(
    st: &FleetWebState,
    user: &CurrentUser,
    f: &ListQuery,
) -> Result<ListFragment, WebError> {
    let filter = f.filter();
    let repo = st.fleet.repo();
    let page = repo.device_page(filter).await?;
    let (open, open_alerts) = repo.latest_open_alerts(100).await?;
    let pending = repo.pending_enrollments().await?;
    let l = Layout::new(user, "fleet", "fleet.title");
    let rows = page
        .rows
        .into_iter()
        .map(|(d, open_alerts)| {
            let t = telemetry_of(&d);
            Row {
                status: status_of(&d),
                status_label: l.t(status_key(status_of(&d))).to_string(),
                last_seen: d
                    .last_seen_ms
                    .map(|m| l.tr.datetime(m))
                    .unwrap_or_else(|| "–".into()),
                version: t
                    .as_ref()
                    .map(|t| t.system.version.clone())
                    .unwrap_or_default(),
                lines: lines_of(t.as_ref()),
                open_alerts,
                d,
            }
        })
        .collect::<Vec<_>>();
    let alerts = open
        .into_iter()
        .map(|a| AlertView {
            raised: l.tr.datetime(a.raised_ms),
            cleared: String::new(),
            a,
        })
        .collect();
    let (sort, desc, filters) = (f.sort(), f.desc(), f.filters_qs());
    let sorts = db::SortBy::ALL
        .into_iter()
        .map(|c| {
            // Clicking the sorted column flips it; another column starts
            // with what an admin looks for first (offline, stale, most alerts).
            let next_desc = if c == sort {
                !desc
            } else {
                matches!(c, db::SortBy::Status | db::SortBy::Alerts)
            };
            let mut href = format!("/admin/fleet?{filters}");
            if !filters.is_empty() {
                href.push('&');
            }
            href.push_str(&format!("sort={}", c.code()));
            if next_desc {
                href.push_str("&dir=desc");
            }
            let arrow = match (c == sort, desc) {
                (false, _) => "",
                (true, false) => " ▲",
                (true, true) => " ▼",
            };
            (c.code(), SortLink { href, arrow })
        })
        .collect();
    let pages = page.total.div_ceil(PAGE_SIZE).max(1);
    let first = (f.page() - 1) * PAGE_SIZE;
    Ok(ListFragment {
        qs: f.qs(),
        first: if rows.is_empty() { 0 } else { first + 1 },
        last: first + rows.len(),
        rows,
        total: page.total,
        page: f.page(),
        pages,
        sorts,
        alerts,
        open_alerts,
        pending,
        l,
    })
}

async fn list_page(
    State(st): State<Arc<FleetWebState>>,
    user: CurrentUser,
    Query(f): Query<ListQuery>,
) -> Result<Response, WebError> {
    let list = list_fragment(&st, &user, &f).await?.render().map_err(|e| {
        tracing::error!(error = %e, "rendering the fleet list");
        WebError::Internal
    })?;
    let (sites, tags, operators) = st.fleet.repo().facets().await?;
    let l = Layout::new(&user, "fleet", "fleet.title");
    let statuses = ["online", "offline", "revoked"]
        .into_iter()
        .map(|s| (s, l.t(status_key(s)).to_string()))
        .collect();
    Ok(render(&ListPage {
        statuses,
        l,
        f,
        list,
        sites,
        tags,
        operators,
    }))
}

/// `GET /admin/fleet/list`: the live part of the list, refetched by the page
/// when the stream says a device changed.
async fn list_part(
    State(st): State<Arc<FleetWebState>>,
    user: CurrentUser,
    Query(f): Query<ListQuery>,
) -> Result<Response, WebError> {
    Ok(render(&list_fragment(&st, &user, &f).await?))
}

#[derive(Template)]
#[template(path = "fleet_enrollments.html")]
struct EnrollmentsPage {
    l: Layout,
    /// (enrollment, last seen, state label).
    rows: Vec<(db::Enrollment, String, String)>,
}

async fn enrollments_page(
    State(st): State<Arc<FleetWebState>>,
    user: CurrentUser,
) -> Result<Response, WebError> {
    let list = st.fleet.repo().enrollments(None).await?;
    let l = Layout::new(&user, "fleet", "fleet.enrollments");
    let rows = list
        .into_iter()
        .map(|e| {
            let at = l.tr.datetime(e.last_seen_ms);
            let state = l
                .t(match e.state.as_str() {
                    "approved" => "fleet.enroll.approved",
                    "rejected" => "fleet.enroll.rejected",
                    _ => "fleet.enroll.pending",
                })
                .to_string();
            (e, at, state)
        })
        .collect();
    Ok(render(&EnrollmentsPage { l, rows }))
}

#[derive(Deserialize)]
pub struct ApproveForm {
    device: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    site: String,
    #[serde(default)]
    group: String,
    /// Comma-separated.
    #[serde(default)]
    tags: String,
}

fn opt(s: String) -> Option<String> {
    let s = s.trim().to_string();
    (!s.is_empty()).then_some(s)
}

fn tag_list(s: &str) -> Vec<String> {
    s.split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_string)
        .collect()
}

async fn approve(
    State(st): State<Arc<FleetWebState>>,
    user: CurrentUser,
    Path(id): Path<String>,
    Form(f): Form<ApproveForm>,
) -> Result<Response, WebError> {
    let device = f.device.trim().to_string();
    st.fleet
        .approve(
            &user.actor(),
            &id,
            Approval {
                device: device.clone(),
                name: opt(f.name),
                site: opt(f.site),
                group: opt(f.group),
                tags: tag_list(&f.tags),
            },
        )
        .await?;
    Ok(see_other(&format!("/admin/fleet/d/{device}")))
}

async fn reject(
    State(st): State<Arc<FleetWebState>>,
    user: CurrentUser,
    Path(id): Path<String>,
) -> Result<Response, WebError> {
    st.fleet.reject(&user.actor(), &id).await?;
    Ok(see_other("/admin/fleet/enrollments"))
}

/// A chart: an SVG polyline of a series, drawn on the server.
pub struct Chart {
    pub series: String,
    pub svg_points: String,
    pub min: String,
    pub max: String,
    pub last: String,
    pub n: usize,
}

const W: f64 = 480.0;
const H: f64 = 100.0;

fn chart(series: &str, points: &[telemetry::Point]) -> Chart {
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for p in points {
        lo = lo.min(p.value);
        hi = hi.max(p.value);
    }
    if !lo.is_finite() {
        (lo, hi) = (0.0, 1.0);
    }
    if (hi - lo).abs() < 1e-9 {
        (lo, hi) = (lo - 1.0, hi + 1.0);
    }
    let (t0, t1) = (
        points.first().map_or(0, |p| p.at_ms),
        points.last().map_or(1, |p| p.at_ms),
    );
    let span = (t1 - t0).max(1) as f64;
    let svg_points = points
        .iter()
        .map(|p| {
            let x = (p.at_ms - t0) as f64 / span * W;
            let y = H - (p.value - lo) / (hi - lo) * H;
            format!("{x:.1},{y:.1}")
        })
        .collect::<Vec<_>>()
        .join(" ");
    Chart {
        series: series.to_string(),
        svg_points,
        min: format!("{lo:.1}"),
        max: format!("{hi:.1}"),
        last: points
            .last()
            .map_or_else(|| "–".into(), |p| format!("{:.1}", p.value)),
        n: points.len(),
    }
}

pub struct CommandRow {
    pub c: commands::CommandView,
    pub created: String,
    pub state: &'static str,
    pub state_label: String,
}

#[derive(Template)]
#[template(path = "fleet_device.html")]
struct DevicePage {
    l: Layout,
    d: FleetDevice,
    status: &'static str,
    status_label: String,
    last_seen: String,
    version: String,
    uptime: String,
    lines: Vec<LineView>,
    charts: Vec<Chart>,
    cfg: config::ConfigState,
    desired_json: String,
    commands: Vec<CommandRow>,
    alerts: Vec<AlertView>,
    /// Events of kinds this mgmt does not know (newest first): seq, time,
    /// kind, body as sent.
    unknown: Vec<(db::UnknownEvent, String)>,
    line_labels: Vec<String>,
    /// Chart range (kept by the live refresh).
    hours: u64,
    /// The last re-key and when it was asked for.
    rekey: Option<(crate::services::fleet::rekey::RekeyView, String)>,
}

#[derive(Deserialize)]
pub struct RangeQuery {
    /// Chart range in hours (default 24).
    hours: Option<u64>,
}

async fn device_page(
    State(st): State<Arc<FleetWebState>>,
    user: CurrentUser,
    Path(id): Path<String>,
    Query(rq): Query<RangeQuery>,
) -> Result<Response, WebError> {
    let node = NodeId::new(id.as_str()).map_err(|_| WebError::NotFound)?;
    let hours = rq.hours.unwrap_or(24).clamp(1, 24 * 30);
    let since = hours as i64 * 3_600_000;
    let now = now_ms() as i64;
    let dev = node.to_string();
    let repo = st.fleet.repo();
    let Some(d) = repo.fleet_device(dev.clone()).await? else {
        return Err(WebError::NotFound);
    };
    let mut series = Vec::new();
    for s in repo.series_names(dev.clone()).await? {
        let pts = repo
            .history(dev.clone(), s.clone(), now - since, now)
            .await?;
        series.push((s, pts));
    }
    let cfg = repo.config_state(dev.clone()).await?;
    let desired = repo.desired_config(dev.clone()).await?;
    let cmds = repo.commands(dev.clone(), 50).await?;
    let alert_list = repo.recent_alerts(Some(dev.clone()), 50).await?;
    let unknown = repo.unknown_events(dev.clone(), 20).await?;
    let rekey = repo.rekey_state(dev).await?;
    let l = Layout::new(&user, "fleet", "fleet.device");
    let t = telemetry_of(&d);
    let lines = lines_of(t.as_ref());
    let line_labels = lines.iter().map(|x| x.line.clone()).collect();
    let page = DevicePage {
        status: status_of(&d),
        status_label: l.t(status_key(status_of(&d))).to_string(),
        last_seen: d
            .last_seen_ms
            .map(|m| l.tr.datetime(m))
            .unwrap_or_else(|| "–".into()),
        version: t
            .as_ref()
            .map(|t| t.system.version.clone())
            .unwrap_or_default(),
        uptime: t
            .as_ref()
            .map(|t| l.tr.duration(t.system.uptime_s as i64 * 1000))
            .unwrap_or_default(),
        lines,
        charts: series.iter().map(|(s, p)| chart(s, p)).collect(),
        desired_json: desired
            .map(|d| serde_json::to_string_pretty(&d.settings).unwrap_or_default())
            .unwrap_or_else(|| "{\n  \"offline\": {\"texts\": {\"en\": \"\"}}\n}".into()),
        cfg,
        commands: cmds
            .into_iter()
            .map(|c| {
                let state = match (c.result_ms, c.ok) {
                    (None, _) => "pending",
                    (Some(_), Some(true)) => "ok",
                    _ => "failed",
                };
                CommandRow {
                    created: l.tr.datetime(c.created_ms),
                    state,
                    state_label: l
                        .t(match state {
                            "pending" => "fleet.cmd_state.pending",
                            "ok" => "fleet.cmd_state.ok",
                            _ => "fleet.cmd_state.failed",
                        })
                        .to_string(),
                    c,
                }
            })
            .collect(),
        alerts: alert_list
            .into_iter()
            .map(|a| AlertView {
                raised: l.tr.datetime(a.raised_ms),
                cleared: a.cleared_ms.map(|m| l.tr.datetime(m)).unwrap_or_default(),
                a,
            })
            .collect(),
        unknown: unknown
            .into_iter()
            .map(|mut u| {
                let at = l.tr.datetime(u.at_ms);
                // A body may be up to a payload's size: the page shows its
                // start (the API has all of it).
                if let Some((cut, _)) = u.body.char_indices().nth(2_000) {
                    u.body.truncate(cut);
                    u.body.push('…');
                }
                (u, at)
            })
            .collect(),
        line_labels,
        hours,
        rekey: rekey.map(|r| {
            let at = l.tr.datetime(r.requested_ms);
            (r, at)
        }),
        d,
        l,
    };
    Ok(render(&page))
}

#[derive(Deserialize)]
pub struct ConfigForm {
    /// `device`, `group` or `tag`.
    target: String,
    /// The group or tag (ignored for `device`).
    #[serde(default)]
    value: String,
    /// ApplianceSettings as JSON.
    settings: String,
}

async fn push_config(
    State(st): State<Arc<FleetWebState>>,
    user: CurrentUser,
    Path(id): Path<String>,
    Form(f): Form<ConfigForm>,
) -> Result<Response, WebError> {
    let settings: ApplianceSettings = serde_json::from_str(&f.settings)
        .map_err(|e| WebError::BadRequest(format!("settings are not valid JSON settings: {e}")))?;
    let target = match f.target.as_str() {
        "device" => config::Target::Device(id.clone()),
        "group" => config::Target::Group(f.value.trim().to_string()),
        "tag" => config::Target::Tag(f.value.trim().to_string()),
        _ => {
            return Err(WebError::BadRequest(
                "target must be device, group or tag".into(),
            ));
        }
    };
    st.fleet
        .push_config(&user.actor(), target, settings)
        .await?;
    Ok(see_other(&format!("/admin/fleet/d/{id}")))
}

#[derive(Deserialize)]
pub struct CommandForm {
    kind: String,
    #[serde(default)]
    line: String,
    #[serde(default)]
    to: String,
    #[serde(default)]
    text: String,
    #[serde(default)]
    code: String,
}

async fn run_command(
    State(st): State<Arc<FleetWebState>>,
    user: CurrentUser,
    Path(id): Path<String>,
    Form(f): Form<CommandForm>,
) -> Result<Response, WebError> {
    let node = NodeId::new(id.as_str()).map_err(|_| WebError::NotFound)?;
    let kind = match f.kind.as_str() {
        "reboot" => CommandKind::Reboot,
        "restart_modem" => CommandKind::RestartModem { line: f.line },
        "test_sms" => CommandKind::TestSms {
            line: f.line,
            to: f.to,
            text: f.text,
        },
        "ussd" => CommandKind::Ussd {
            line: f.line,
            code: f.code,
        },
        "collect_logs" => CommandKind::CollectLogs { max_bytes: None },
        "rescan_modems" => CommandKind::RescanModems,
        _ => return Err(WebError::BadRequest("unknown command".into())),
    };
    st.fleet.command(&user.actor(), &node, kind).await?;
    Ok(see_other(&format!("/admin/fleet/d/{id}#commands")))
}

async fn revoke(
    State(st): State<Arc<FleetWebState>>,
    user: CurrentUser,
    Path(id): Path<String>,
) -> Result<Response, WebError> {
    let node = NodeId::new(id.as_str()).map_err(|_| WebError::NotFound)?;
    if !st.fleet.revoke(&user.actor(), &node).await? {
        return Err(WebError::NotFound);
    }
    Ok(see_other(&format!("/admin/fleet/d/{id}")))
}

async fn rekey(
    State(st): State<Arc<FleetWebState>>,
    user: CurrentUser,
    Path(id): Path<String>,
) -> Result<Response, WebError> {
    let node = NodeId::new(id.as_str()).map_err(|_| WebError::NotFound)?;
    st.fleet.rekey(&user.actor(), &node).await?;
    Ok(see_other(&format!("/admin/fleet/d/{id}")))
}

#[derive(Deserialize)]
pub struct MetaForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    site: String,
    #[serde(default)]
    group: String,
    #[serde(default)]
    tags: String,
}

async fn set_meta(
    State(st): State<Arc<FleetWebState>>,
    user: CurrentUser,
    Path(id): Path<String>,
    Form(f): Form<MetaForm>,
) -> Result<Response, WebError> {
    let tags = tag_list(&f.tags);
    st.fleet
        .set_meta(
            &user.actor(),
            &id,
            opt(f.name),
            opt(f.site),
            opt(f.group),
            Some(tags),
        )
        .await?;
    Ok(see_other(&format!("/admin/fleet/d/{id}")))
}
