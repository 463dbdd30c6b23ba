//! The supervisor's pages: the live queue board (waiting, longest wait,
//! today's service level and abandonment, agents by state and load,
//! reassigning) and reports for a period per channel and queue (volume by
//! hour, first response, handle time, service level) with server-rendered
//! SVG charts and CSV export. Figures come from the routing decisions in
//! the log ([`crossline_core::metrics`], defined in docs/METRICS.md).

use super::WebState;
use super::scope::{FigureScope, Viewer};
use crate::clock::now_ms;
use crate::http::auth::CurrentUser;
use crate::http::html::Layout;
use crate::http::html::{WebError, render};
use crate::http::i18n::Tr;
use crate::services::conversations::repo::ConversationRepo;
use crate::services::users::audit;
use crate::services::users::auth::Role;
use askama::Template;
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use crossline_core::Channel;
use crossline_core::metrics::{self, Figures, MetricsOptions};
use crossline_core::routing::{ALL_CHANNELS, Fact, Presence, Record};
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// Service-level threshold of the board and reports (the common 80/20).
pub const SERVICE_LEVEL_MS: u64 = 20_000;

/// Routing decisions logged at or after `from_ms` (by log time), in log order.
pub async fn records_since(st: &WebState, from_ms: u64) -> Result<Vec<Record>, WebError> {
    Ok(crate::services::routing::records_since(&st.store, from_ms).await?)
}

/// Midnight today in `tz`, as ms.
fn local_midnight(tr: &Tr) -> u64 {
    let now = jiff::Timestamp::now().to_zoned(tr.tz.clone());
    now.date()
        .to_zoned(tr.tz.clone())
        .map(|z| z.timestamp().as_millisecond().max(0) as u64)
        .unwrap_or_else(|_| now_ms().saturating_sub(86_400_000))
}

// ----- the live board ----------------------------------------------------------------

pub struct QueueRow {
    pub id: String,
    pub waiting: usize,
    pub longest: String,
    pub sl: String,
    pub abandoned: String,
    pub offered: u64,
    /// Waiting conversations: (id, waited, contact).
    pub items: Vec<(String, String, String)>,
    pub agents_available: usize,
}

pub struct AgentRow {
    pub id: String,
    pub team: String,
    /// Catalog key of the presence.
    pub presence: &'static str,
    pub presence_code: &'static str,
    /// "SMS 1/4 · Chat 0/4"
    pub load: String,
    pub busy: bool,
    /// Assigned conversations: (id, state key, contact).
    pub items: Vec<(String, &'static str, String)>,
}

pub struct BoardData {
    pub configured: bool,
    pub queues: Vec<QueueRow>,
    pub agents: Vec<AgentRow>,
    /// Agents to reassign to.
    pub agent_ids: Vec<String>,
    pub queue_ids: Vec<String>,
}

fn presence_key(p: &Presence) -> (&'static str, &'static str) {
    match p {
        Presence::Available => ("presence.available", "available"),
        Presence::Busy => ("presence.busy", "busy"),
        Presence::Away => ("presence.away", "away"),
        Presence::Offline => ("presence.offline", "offline"),
        Presence::WrapUp { .. } => ("presence.wrap_up", "wrap_up"),
    }
}

/// The catalog key of a channel's name (`channel.sms`, ...).
pub(super) fn channel_key(c: Channel) -> String {
    format!("channel.{c}")
}

/// A queue as the engine sees it: id, site, member teams, waiting
/// (conversation, waited ms), agents available.
type RawQueue = (
    String,
    Option<String>,
    Vec<String>,
    Vec<(String, u64)>,
    usize,
);
/// An agent: id, team, site, presence, load text, (conversation, state key).
type RawAgent = (
    String,
    Option<String>,
    Option<String>,
    Presence,
    String,
    Vec<(String, &'static str)>,
);

/// Raw board facts from the engine (one query).
struct RawBoard {
    queues: Vec<RawQueue>,
    agents: Vec<RawAgent>,
}

pub async fn board_data(st: &WebState, user: &CurrentUser, tr: &Tr) -> Result<BoardData, WebError> {
    let live = st.routing.live_channels();
    let raw = st
        .routing
        .query(move |r| {
            let (r, _) = r?;
            let now = now_ms().max(r.now());
            let available = |q: &crossline_core::routing::QueueId| {
                r.config()
                    .agents
                    .iter()
                    .filter(|a| r.is_member(&a.id, q))
                    .filter_map(|a| r.agent(&a.id))
                    .filter(|a| a.presence == Presence::Available)
                    .count()
            };
            let queues = r
                .config()
                .queues
                .iter()
                .map(|q| {
                    let waiting: Vec<(String, u64)> = r
                        .waiting(&q.id)
                        .iter()
                        .filter_map(|c| r.conversation(c))
                        .map(|v| (v.id.to_string(), now.saturating_sub(v.age)))
                        .collect();
                    (
                        q.id.to_string(),
                        q.site.as_ref().map(|s| s.to_string()),
                        q.members.teams.clone(),
                        waiting,
                        available(&q.id),
                    )
                })
                .collect();
            let agents = r
                .config()
                .agents
                .iter()
                .filter_map(|a| {
                    let v = r.agent(&a.id)?;
                    let load = ALL_CHANNELS
                        .iter()
                        .enumerate()
                        .filter(|(i, c)| {
                            live.contains(c) && v.capacity.get(*i).is_some_and(|c| *c > 0)
                        })
                        .map(|(i, c)| {
                            format!(
                                "{}\u{1f}{}/{}",
                                channel_key(*c),
                                v.load.get(i).copied().unwrap_or(0),
                                v.capacity.get(i).copied().unwrap_or(0)
                            )
                        })
                        .collect::<Vec<_>>()
                        .join("\u{1e}");
                    let items = v
                        .conversations
                        .iter()
                        .filter_map(|c| r.conversation(c))
                        .map(|c| (c.id.to_string(), super::desk::state_key(&c.state)))
                        .collect();
                    Some((
                        a.id.to_string(),
                        a.team.clone(),
                        a.site.as_ref().map(|s| s.to_string()),
                        v.presence,
                        load,
                        items,
                    ))
                })
                .collect();
            Some(RawBoard { queues, agents })
        })
        .await?;
    let Some(raw) = raw else {
        return Ok(BoardData {
            configured: false,
            queues: Vec::new(),
            agents: Vec::new(),
            agent_ids: Vec::new(),
            queue_ids: Vec::new(),
        });
    };
    // Today's figures per queue.
    let from = local_midnight(tr);
    let records = records_since(st, from.saturating_sub(86_400_000)).await?;
    let m = tokio::task::spawn_blocking(move || {
        metrics::compute(
            &records,
            &MetricsOptions {
                service_level_ms: SERVICE_LEVEL_MS,
                from,
                until: now_ms(),
                calendar: None,
            },
        )
    })
    .await
    .map_err(|_| WebError::Internal)?;
    // Contacts of the conversations shown.
    let mut ids: Vec<String> = raw
        .queues
        .iter()
        .flat_map(|q| q.3.iter().take(20).map(|(id, _)| id.clone()))
        .collect();
    ids.extend(
        raw.agents
            .iter()
            .flat_map(|a| a.5.iter().map(|(id, _)| id.clone())),
    );
    let contacts: HashMap<String, String> = st
        .store
        .summaries(ids)
        .await?
        .into_iter()
        .map(|s| (s.id, s.contact.address))
        .collect();
    let contact = |id: &str| contacts.get(id).cloned().unwrap_or_default();
    let queues: Vec<QueueRow> = raw
        .queues
        .into_iter()
        .filter(|(_, site, teams, _, _)| {
            user.may_see_site(site.as_deref()) || teams.iter().any(|t| user.may_see_team(Some(t)))
        })
        .map(|(id, _, _, waiting, available)| {
            let f = m
                .plain
                .by_queue
                .iter()
                .find(|(q, _)| q.as_str() == id)
                .map(|(_, f)| f.clone())
                .unwrap_or_default();
            QueueRow {
                waiting: waiting.len(),
                longest: waiting
                    .iter()
                    .map(|(_, w)| *w)
                    .max()
                    .map(|w| tr.duration(w as i64))
                    .unwrap_or_default(),
                sl: f
                    .service_level
                    .map(|v| tr.pct(v))
                    .unwrap_or_else(|| "–".into()),
                abandoned: f
                    .abandonment_rate
                    .map(|v| tr.pct(v))
                    .unwrap_or_else(|| "–".into()),
                offered: f.offered,
                items: waiting
                    .iter()
                    .take(20)
                    .map(|(c, w)| (c.clone(), tr.duration(*w as i64), contact(c)))
                    .collect(),
                agents_available: available,
                id,
            }
        })
        .collect();
    let agent_ids: Vec<String> = raw.agents.iter().map(|a| a.0.clone()).collect();
    let agents = raw
        .agents
        .into_iter()
        .filter(|(_, team, site, ..)| {
            user.may_see_team(team.as_deref()) || user.may_see_site(site.as_deref())
        })
        .map(|(id, team, _, presence, load, items)| {
            let (pk, pc) = presence_key(&presence);
            let load = load
                .split('\u{1e}')
                .filter(|s| !s.is_empty())
                .map(|s| {
                    let (k, v) = s.split_once('\u{1f}').unwrap_or((s, ""));
                    format!("{} {v}", tr.t(k))
                })
                .collect::<Vec<_>>()
                .join(" · ");
            AgentRow {
                busy: !items.is_empty(),
                items: items
                    .into_iter()
                    .map(|(c, s)| {
                        let who = contact(&c);
                        (c, s, who)
                    })
                    .collect(),
                id,
                team: team.unwrap_or_default(),
                presence: pk,
                presence_code: pc,
                load,
            }
        })
        .collect();
    Ok(BoardData {
        configured: true,
        queue_ids: queues.iter().map(|q| q.id.clone()).collect(),
        queues,
        agents,
        agent_ids,
    })
}

#[derive(Template)]
#[template(path = "board.html")]
struct BoardPage {
    l: Layout,
    b: BoardData,
}

#[derive(Template)]
#[template(path = "board_fragment.html")]
struct BoardFragment {
    l: Layout,
    b: BoardData,
}

pub async fn board_page(
    State(st): State<Arc<WebState>>,
    user: CurrentUser,
) -> Result<Response, WebError> {
    user.require(Role::Supervisor)?;
    let l = Layout::new(&user, "board", "board.title");
    let b = board_data(&st, &user, &l.tr).await?;
    Ok(render(&BoardPage { l, b }))
}

pub async fn board_fragment(
    State(st): State<Arc<WebState>>,
    user: CurrentUser,
) -> Result<Response, WebError> {
    user.require(Role::Supervisor)?;
    let l = Layout::new(&user, "board", "board.title");
    let b = board_data(&st, &user, &l.tr).await?;
    Ok(render(&BoardFragment { l, b }))
}

// ----- reports -----------------------------------------------------------------------

#[derive(Debug, Deserialize, Default)]
pub struct ReportQuery {
    /// YYYY-MM-DD in the user's time zone (default: 6 days ago).
    pub from: Option<String>,
    /// YYYY-MM-DD, inclusive (default: today).
    pub to: Option<String>,
}

/// One table row of the report.
pub struct ReportRow {
    /// `channel` or `queue`.
    pub scope: &'static str,
    pub name: String,
    pub offered: u64,
    pub answered: u64,
    pub abandoned: u64,
    pub sl: Option<f64>,
    pub asa_ms: Option<f64>,
    pub frt_ms: Option<f64>,
    pub aht_ms: Option<f64>,
}

/// One bar of the volume chart.
pub struct Bar {
    pub x: u32,
    pub y: u32,
    pub h: u32,
    pub hour: u32,
    pub count: u64,
}

pub struct Report {
    pub from: String,
    pub to: String,
    pub rows: Vec<ReportRow>,
    pub bars: Vec<Bar>,
    pub max: u64,
    /// Service level per queue as horizontal bars: (name, width 0..300, label).
    pub sl_bars: Vec<(String, u32, String)>,
}

fn row(scope: &'static str, name: String, f: &Figures) -> ReportRow {
    ReportRow {
        scope,
        name,
        offered: f.offered,
        answered: f.answered,
        abandoned: f.abandoned,
        sl: f.service_level,
        asa_ms: f.asa_ms,
        frt_ms: f.first_response_ms,
        aht_ms: f.aht_ms,
    }
}

fn parse_day(s: Option<&str>, tr: &Tr, default: jiff::civil::Date) -> jiff::civil::Date {
    s.and_then(|s| s.parse::<jiff::civil::Date>().ok())
        .filter(|_| true)
        .unwrap_or(default)
        .max(jiff::civil::date(2000, 1, 1))
        .min(
            jiff::Timestamp::now()
                .to_zoned(tr.tz.clone())
                .date()
                .saturating_add(jiff::Span::new().days(1)),
        )
}

/// The [`FigureScope`] of `user` (None: sees every figure).
async fn figure_scope(st: &WebState, user: &CurrentUser) -> Result<Option<FigureScope>, WebError> {
    let u = user.user.clone();
    Ok(st
        .routing
        .query(move |r| {
            let r = r.map(|(r, _)| r);
            FigureScope::of(&Viewer::new(&u, r), r)
        })
        .await?)
}

/// The report of a period: every figure for an unrestricted user, else only
/// those of `scope` (the queues and agents of the user's teams and sites).
pub async fn report(
    st: &WebState,
    tr: &Tr,
    q: &ReportQuery,
    scope: Option<&FigureScope>,
) -> Result<Report, WebError> {
    let today = jiff::Timestamp::now().to_zoned(tr.tz.clone()).date();
    let to_day = parse_day(q.to.as_deref(), tr, today);
    let from_day = parse_day(
        q.from.as_deref(),
        tr,
        today.saturating_sub(jiff::Span::new().days(6)),
    )
    .min(to_day);
    let ms = |d: jiff::civil::Date| {
        d.to_zoned(tr.tz.clone())
            .map(|z| z.timestamp().as_millisecond().max(0) as u64)
            .unwrap_or(0)
    };
    // The same records and period as the metrics API (one definition):
    // up to the end of the last day shown, or now.
    let (records, opts) = crate::services::routing::metrics_input(
        &st.store,
        MetricsOptions {
            service_level_ms: SERVICE_LEVEL_MS,
            from: ms(from_day),
            until: ms(to_day.saturating_add(jiff::Span::new().days(1))),
            calendar: None,
        },
    )
    .await?;
    let from = opts.from;
    // A restricted supervisor's figures: her teams' and sites' only.
    let records = match scope {
        Some(s) => s.filter(records),
        None => records,
    };
    let queue_scope = scope.cloned();
    let tz = tr.tz.clone();
    let (rows, hours) = tokio::task::spawn_blocking(move || {
        // Channel of each conversation (from its arrival), and volume by hour.
        let mut channel_of: HashMap<crossline_core::ConversationId, Channel> = HashMap::new();
        let mut hours = [0u64; 24];
        for r in &records {
            if let Fact::Arrived {
                conversation,
                channel,
                ..
            } = &r.fact
            {
                channel_of.insert(*conversation, *channel);
                if r.at >= from
                    && let Ok(ts) = jiff::Timestamp::from_millisecond(r.at as i64)
                {
                    let h = ts.to_zoned(tz.clone()).hour();
                    if let Some(slot) = hours.get_mut(h as usize) {
                        *slot += 1;
                    }
                }
            }
        }
        let all = metrics::compute(&records, &opts);
        let mut rows = vec![row("total", String::new(), &all.plain.total)];
        let mut by_channel: BTreeMap<&'static str, Vec<Record>> = BTreeMap::new();
        for r in &records {
            let ch = r
                .fact
                .conversation()
                .and_then(|c| channel_of.get(&c).copied());
            match ch {
                Some(c) => by_channel.entry(c.as_str()).or_default().push(r.clone()),
                // Agent facts (presence) belong to every channel's figures.
                None => {
                    for v in by_channel.values_mut() {
                        v.push(r.clone());
                    }
                }
            }
        }
        for (ch, recs) in &by_channel {
            let m = metrics::compute(recs, &opts);
            rows.push(row("channel", ch.to_string(), &m.plain.total));
        }
        for (q, f) in &all.plain.by_queue {
            if queue_scope
                .as_ref()
                .is_none_or(|s| s.sees_queue(q.as_str()))
            {
                rows.push(row("queue", q.to_string(), f));
            }
        }
        (rows, hours)
    })
    .await
    .map_err(|_| WebError::Internal)?;
    let max = hours.iter().copied().max().unwrap_or(0).max(1);
    let bars = hours
        .iter()
        .enumerate()
        .map(|(h, &c)| {
            let hh = (c * 160 / max) as u32;
            Bar {
                x: 40 + h as u32 * 26,
                y: 180 - hh,
                h: hh,
                hour: h as u32,
                count: c,
            }
        })
        .collect();
    let sl_bars = rows
        .iter()
        .filter(|r| r.scope == "queue")
        .map(|r| {
            (
                r.name.clone(),
                r.sl.map(|v| (v.clamp(0.0, 1.0) * 300.0) as u32)
                    .unwrap_or(0),
                r.sl.map(|v| tr.pct(v)).unwrap_or_else(|| "–".into()),
            )
        })
        .collect();
    Ok(Report {
        from: from_day.to_string(),
        to: to_day.to_string(),
        rows,
        bars,
        max,
        sl_bars,
    })
}

#[derive(Template)]
#[template(path = "reports.html")]
struct ReportsPage {
    l: Layout,
    r: Report,
}

impl ReportsPage {
    fn dur(&self, v: &Option<f64>) -> String {
        v.map(|ms| self.l.tr.duration(ms as i64))
            .unwrap_or_else(|| "–".into())
    }
    fn pct(&self, v: &Option<f64>) -> String {
        v.map(|x| self.l.tr.pct(x)).unwrap_or_else(|| "–".into())
    }
    fn row_name(&self, r: &ReportRow) -> String {
        match r.scope {
            "total" => self.l.t("reports.total").to_string(),
            "channel" => self.l.t(&format!("channel.{}", r.name)).to_string(),
            _ => r.name.clone(),
        }
    }
}

pub async fn reports_page(
    State(st): State<Arc<WebState>>,
    user: CurrentUser,
    Query(q): Query<ReportQuery>,
) -> Result<Response, WebError> {
    user.require(Role::Supervisor)?;
    let l = Layout::new(&user, "reports", "reports.title");
    let scope = figure_scope(&st, &user).await?;
    let r = report(&st, &l.tr, &q, scope.as_ref()).await?;
    Ok(render(&ReportsPage { l, r }))
}

fn csv_field(s: &str) -> String {
    // Quote, and defuse spreadsheet formulas.
    let s = if s.starts_with(['=', '+', '-', '@']) {
        format!("'{s}")
    } else {
        s.to_string()
    };
    format!("\"{}\"", s.replace('"', "\"\""))
}

pub async fn reports_csv(
    State(st): State<Arc<WebState>>,
    user: CurrentUser,
    Query(q): Query<ReportQuery>,
) -> Result<Response, WebError> {
    user.require(Role::Supervisor)?;
    let tr = Tr::new(user.locale, &user.time_zone);
    let scope = figure_scope(&st, &user).await?;
    let r = report(&st, &tr, &q, scope.as_ref()).await?;
    let opt = |v: Option<f64>| v.map(|x| format!("{x:.0}")).unwrap_or_default();
    let mut out = String::from(
        "scope,name,offered,answered,abandoned,service_level,asa_ms,first_response_ms,handle_time_ms\r\n",
    );
    for row in &r.rows {
        out += &format!(
            "{},{},{},{},{},{},{},{},{}\r\n",
            row.scope,
            csv_field(&row.name),
            row.offered,
            row.answered,
            row.abandoned,
            row.sl.map(|v| format!("{v:.4}")).unwrap_or_default(),
            opt(row.asa_ms),
            opt(row.frt_ms),
            opt(row.aht_ms)
        );
    }
    out += "\r\nhour,conversations\r\n";
    for b in &r.bars {
        out += &format!("{},{}\r\n", b.hour, b.count);
    }
    audit::record(
        &st.store,
        &user.login,
        "report.export",
        "reports.csv",
        &format!("{}..{}", r.from, r.to),
    )
    .await;
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"crossline-{}-{}.csv\"", r.from, r.to),
            ),
        ],
        out,
    )
        .into_response())
}
