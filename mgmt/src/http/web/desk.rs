//! The agent desk: the unified inbox, the conversation view (one timeline,
//! reply composer, notes, hold/snooze/resolve/transfer), the customer
//! panel, and presence.
//!
//! One truth per fact: routing state (waiting, assigned, held, snoozed,
//! agent, queue) comes from the routing engine; messages, delivery states
//! and open/resolved from the conversation projection
//! ([`crate::services::conversations`]); notes, tags and merges from their
//! projections ([`crate::services::contacts::facts`],
//! [`crate::services::conversations::notes`]: each is an event in the log);
//! canned responses from their table. Who may see a conversation: [`super::scope`].

use super::WebState;
use super::scope::{self, Viewer, Visibility};
use crate::clock::now_ms;
use crate::http::auth::CurrentUser;
use crate::http::html::Layout;
use crate::http::html::{WebError, render};
use crate::services::contacts::facts::{self as contact_facts, MergeOutcome, UnmergeOutcome};
use crate::services::contacts::repo::ContactRepo;
use crate::services::conversations::actions::{Actions, Reply};
use crate::services::conversations::notes;
use crate::services::conversations::repo::{ConversationRepo, InboxFacets};
use crate::services::conversations::{self, ConversationSummary, EntryKind, ListFilter, Status};
use crate::services::users::audit;
use crate::services::users::auth::Role;
use crate::services::users::repo::UserRepo;
use askama::Template;
use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use crossline_core::contact::ContactId;
use crossline_core::routing::{
    AgentId, Command, ConversationView, Fact, Presence, QueueId, RouteState, Router, TransferTarget,
};
use crossline_core::{Channel, ConversationId};
use serde::Deserialize;
use std::collections::HashMap;
use std::sync::Arc;

/// Most rows the inbox shows.
pub const INBOX_ROWS: usize = 200;

// ----- routing facts the desk shows ---------------------------------------------------

/// A conversation's routing state, as the desk shows it.
#[derive(Debug, Clone)]
pub struct RouteInfo {
    /// Catalog key (`state.waiting`, ...).
    pub state: &'static str,
    pub agent: Option<String>,
    pub queue: String,
    /// When it started waiting (ordering time, ms).
    pub age: u64,
    pub waiting: bool,
    pub snoozed_until: Option<u64>,
    /// The queue's first and next response targets (ms).
    pub first_response_ms: Option<u64>,
    pub next_response_ms: Option<u64>,
    pub priority: i32,
}

/// The catalog key of a routing state (desk rows and the supervisor board).
pub(super) fn state_key(s: &RouteState) -> &'static str {
    match s {
        RouteState::New | RouteState::Waiting { .. } => "state.waiting",
        RouteState::Reserved { .. } => "state.reserved",
        RouteState::Active => "state.active",
        RouteState::Held => "state.held",
        RouteState::Snoozed { .. } => "state.snoozed",
        RouteState::Resolved => "state.resolved",
        RouteState::Abandoned => "state.abandoned",
    }
}

/// The state the desk shows: open/resolved is the projection's (what the
/// API and the customer's thread say); within an open conversation, the
/// routing state. (Reopened from the desk, routing still says resolved
/// until the customer writes again: shown as open.)
fn shown_state(status: Status, route: &'static str) -> &'static str {
    match (status, route) {
        (Status::Resolved, _) => "state.resolved",
        (Status::Open, "state.resolved" | "state.abandoned") => "state.open",
        (Status::Open, r) => r,
    }
}

fn route_info(r: &Router, c: &ConversationView) -> RouteInfo {
    let q = r.config().queues.iter().find(|q| q.id == c.queue);
    RouteInfo {
        state: state_key(&c.state),
        agent: c.agent.as_ref().map(|a| a.to_string()),
        queue: c.queue.to_string(),
        age: c.age,
        waiting: matches!(
            c.state,
            RouteState::Waiting { .. } | RouteState::Reserved { .. }
        ),
        snoozed_until: match c.state {
            RouteState::Snoozed { until } => Some(until),
            _ => None,
        },
        first_response_ms: q.and_then(|q| q.sla.first_response_ms),
        next_response_ms: q.and_then(|q| q.sla.next_response_ms),
        priority: c.priority,
    }
}

/// Visibility per (agent, queue), computed once per request.
struct VisCache<'a> {
    r: &'a Router,
    map: HashMap<(Option<AgentId>, QueueId), Visibility>,
}

impl<'a> VisCache<'a> {
    fn new(r: &'a Router) -> Self {
        Self {
            r,
            map: HashMap::new(),
        }
    }

    fn get(&mut self, c: &ConversationView) -> &Visibility {
        let r = self.r;
        self.map
            .entry((c.agent.clone(), c.queue.clone()))
            .or_insert_with(|| scope::of_view(r, c.agent.as_ref(), &c.queue))
    }
}

/// The viewer and a conversation's routing facts, if the user may see it.
async fn authorize_conversation(
    st: &WebState,
    user: &CurrentUser,
    id: &str,
) -> Result<(ConversationId, Option<RouteInfo>, Viewer), WebError> {
    let cid: ConversationId = id.parse().map_err(|_| WebError::NotFound)?;
    let u = user.user.clone();
    let (viewer, vis, info) = st
        .routing
        .query(move |r| {
            let r = r.map(|(r, _)| r);
            let viewer = Viewer::new(&u, r);
            let view = r.and_then(|r| r.conversation(&cid).map(|c| (r, c)));
            let vis = view
                .as_ref()
                .map(|(r, c)| scope::of_view(r, c.agent.as_ref(), &c.queue));
            let info = view.as_ref().map(|(r, c)| route_info(r, c));
            (viewer, vis, info)
        })
        .await?;
    if !viewer.can_see(vis.as_ref()) {
        return Err(WebError::Forbidden(format!(
            "{} may not see conversation {id}",
            user.login
        )));
    }
    Ok((cid, info, viewer))
}

// ----- inbox ----------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tab {
    Mine,
    Unassigned,
    Teams,
    All,
}

impl Tab {
    fn parse(s: Option<&str>) -> Self {
        match s {
            Some("unassigned") => Tab::Unassigned,
            Some("teams") => Tab::Teams,
            Some("all") => Tab::All,
            _ => Tab::Mine,
        }
    }
    fn code(self) -> &'static str {
        match self {
            Tab::Mine => "mine",
            Tab::Unassigned => "unassigned",
            Tab::Teams => "teams",
            Tab::All => "all",
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct InboxQuery {
    pub tab: Option<String>,
    pub channel: Option<String>,
    pub status: Option<String>,
    pub queue: Option<String>,
    pub tag: Option<String>,
    /// Why the last action failed: an [`ActionError`] code (anything else
    /// is not shown).
    pub err: Option<String>,
}

impl InboxQuery {
    fn nonempty(v: &Option<String>) -> Option<String> {
        v.as_ref()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
    }

    /// The query string of this view (kept by links).
    pub fn qs(&self) -> String {
        let mut parts = vec![format!("tab={}", Tab::parse(self.tab.as_deref()).code())];
        for (k, v) in [
            ("channel", &self.channel),
            ("status", &self.status),
            ("queue", &self.queue),
            ("tag", &self.tag),
        ] {
            if let Some(v) = Self::nonempty(v) {
                parts.push(format!("{k}={}", crate::http::html::encode_component(&v)));
            }
        }
        parts.join("&")
    }
}

/// One inbox row.
pub struct Row {
    pub id: String,
    pub contact: String,
    pub channel: String,
    /// Catalog key of the channel's name.
    pub channel_key: String,
    pub preview: String,
    pub last: String,
    pub unread: i64,
    /// Catalog key of the state.
    pub state: &'static str,
    pub agent: String,
    pub queue: String,
    pub waiting: String,
    pub sla: String,
    pub sla_late: bool,
    /// A private note on it mentions the user.
    pub mentioned: bool,
    pub selected: bool,
}

/// What the inbox shows for `user` with `q`.
pub struct InboxData {
    pub rows: Vec<Row>,
    /// The open conversation's id (or empty).
    pub selected: String,
    pub queues: Vec<String>,
    pub tags: Vec<String>,
    pub tabs: Vec<(&'static str, &'static str, bool)>,
    /// The first-run hint of an empty inbox: the user is a routing agent
    /// who is not available, so nothing comes to her.
    pub not_available: bool,
    /// The channels to filter by (those mgmt carries).
    pub channels: Vec<&'static str>,
}

/// Routing facts of the conversations one tab shows (not `All`): waiting
/// work first by priority, then oldest first; at most `limit`. One pass over
/// the engine's conversations with cheap checks (visibility cached per
/// queue and per agent); routing facts are built only for the rows kept.
fn routed_for_tab(
    r: &Router,
    viewer: &Viewer,
    tab: Tab,
    queue: Option<&str>,
    channel: Option<&str>,
    status: Option<&str>,
    limit: usize,
) -> Vec<(String, RouteInfo)> {
    let wanted_state = status.map(|s| format!("state.{s}"));
    let mut by_queue: HashMap<QueueId, bool> = HashMap::new();
    let mut by_agent: HashMap<AgentId, bool> = HashMap::new();
    let mut picked: Vec<ConversationView> = Vec::new();
    for c in r.conversations() {
        if matches!(
            c.state,
            RouteState::Resolved | RouteState::Abandoned | RouteState::New
        ) && status != Some("resolved")
        {
            continue;
        }
        if queue.is_some_and(|q| q != c.queue.as_str())
            || channel.is_some_and(|ch| ch != c.channel.as_str())
        {
            continue;
        }
        if let Some(w) = &wanted_state
            && state_key(&c.state) != w
        {
            continue;
        }
        let mine = c.agent.as_ref().is_some_and(|a| a.as_str() == viewer.agent);
        let waiting = matches!(
            c.state,
            RouteState::Waiting { .. } | RouteState::Reserved { .. }
        );
        let keep = match tab {
            Tab::Mine => mine,
            Tab::Unassigned if !waiting => false,
            Tab::Unassigned | Tab::Teams | Tab::All => {
                let q = match by_queue.get(&c.queue) {
                    Some(v) => *v,
                    None => {
                        let v = viewer.sees_queue(r, &c.queue);
                        by_queue.insert(c.queue.clone(), v);
                        v
                    }
                };
                q || c.agent.as_ref().is_some_and(|a| match by_agent.get(a) {
                    Some(v) => *v,
                    None => {
                        let v = viewer.sees_agent(r, a);
                        by_agent.insert(a.clone(), v);
                        v
                    }
                })
            }
        };
        if keep {
            picked.push(c);
        }
    }
    let by = |a: &ConversationView, b: &ConversationView| {
        b.priority
            .cmp(&a.priority)
            .then(a.age.cmp(&b.age))
            .then(a.id.cmp(&b.id))
    };
    if picked.len() > limit {
        picked.select_nth_unstable_by(limit, by);
        picked.truncate(limit);
    }
    picked.sort_unstable_by(by);
    picked
        .iter()
        .map(|c| (c.id.to_string(), route_info(r, c)))
        .collect()
}

pub async fn inbox_data(
    st: &WebState,
    user: &CurrentUser,
    q: &InboxQuery,
    selected: Option<&str>,
    l: &Layout,
) -> Result<InboxData, WebError> {
    let tab = Tab::parse(q.tab.as_deref());
    if tab == Tab::All {
        user.require(Role::Supervisor)?;
    }
    let channel = InboxQuery::nonempty(&q.channel);
    let status = InboxQuery::nonempty(&q.status);
    let queue = InboxQuery::nonempty(&q.queue);
    let tag = InboxQuery::nonempty(&q.tag);
    let agent = (user.role == Role::Agent).then(|| AgentId::new(user.agent_id.clone()));
    let mut joined = false;
    let (viewer, routed, queues) = loop {
        let u = user.user.clone();
        let (ch2, st2, qu2) = (channel.clone(), status.clone(), queue.clone());
        let a2 = agent.clone();
        let (unknown, found) = st
            .routing
            .query(move |ri| {
                // An agent added while mgmt runs joins the default routing
                // (asked here, so an inbox is one round trip to routing).
                let unknown = ri.is_some_and(|(r, i)| {
                    i.default && a2.as_ref().is_some_and(|a| r.agent(a).is_none())
                });
                let r = ri.map(|(r, _)| r);
                let viewer = Viewer::new(&u, r);
                let queues: Vec<String> = r
                    .map(|r| r.config().queues.iter().map(|q| q.id.to_string()).collect())
                    .unwrap_or_default();
                let routed = match (r, tab) {
                    (Some(r), t) if t != Tab::All => routed_for_tab(
                        r,
                        &viewer,
                        t,
                        qu2.as_deref(),
                        ch2.as_deref(),
                        st2.as_deref(),
                        INBOX_ROWS,
                    ),
                    _ => Vec::new(),
                };
                (unknown, (viewer, routed, queues))
            })
            .await?;
        match &agent {
            Some(a) if unknown && !joined => {
                st.routing.ensure_agent(a.clone()).await?;
                joined = true;
            }
            _ => break found,
        }
    };
    let now = now_ms();
    // Rows: (summary, routing facts).
    let mut rows: Vec<(ConversationSummary, Option<RouteInfo>)> = if tab == Tab::All {
        // Newest activity first from the projection, then routing facts.
        let status_filter = match status.as_deref() {
            Some("resolved") => Some(Status::Resolved),
            Some(_) => Some(Status::Open),
            None => None,
        };
        let f = ListFilter {
            status: status_filter,
            limit: INBOX_ROWS,
            ..Default::default()
        };
        let page = ConversationRepo::list(&st.store, f).await?;
        let ids: Vec<ConversationId> = page
            .conversations
            .iter()
            .filter_map(|c| c.id.parse().ok())
            .collect();
        let v2 = viewer.clone();
        let infos = st
            .routing
            .query(move |r| {
                let Some((r, _)) = r else {
                    return ids
                        .iter()
                        .map(|_| (v2.sees_all(), None))
                        .collect::<Vec<_>>();
                };
                let mut cache = VisCache::new(r);
                ids.iter()
                    .map(|id| match r.conversation(id) {
                        Some(c) => (v2.can_see(Some(cache.get(&c))), Some(route_info(r, &c))),
                        None => (v2.sees_all(), None),
                    })
                    .collect()
            })
            .await?;
        page.conversations
            .into_iter()
            .zip(infos)
            .filter(|(_, (ok, _))| *ok)
            .map(|(s, (_, i))| (s, i))
            .filter(|(s, i)| {
                channel.as_deref().is_none_or(|c| c == s.channel)
                    && queue
                        .as_deref()
                        .is_none_or(|q| i.as_ref().is_some_and(|i| i.queue == q))
                    && match status.as_deref() {
                        None | Some("resolved") | Some("open") => true,
                        Some(x) => i.as_ref().is_some_and(|i| i.state == format!("state.{x}")),
                    }
            })
            .collect()
    } else {
        let ids: Vec<String> = routed.iter().map(|(id, _)| id.clone()).collect();
        let sums = st.store.summaries(ids).await?;
        let mut by_id: HashMap<String, RouteInfo> = routed.into_iter().collect();
        sums.into_iter()
            .map(|s| {
                let i = by_id.remove(&s.id);
                (s, i)
            })
            .collect()
    };
    let tag2 = tag.clone();
    let me = user.login.clone();
    let InboxFacets {
        tagged,
        tags,
        mentioned,
    } = st.store.inbox_facets(tag2, me).await?;
    if let Some(t) = tagged {
        rows.retain(|(s, _)| t.contains(&s.contact.id));
    }
    let tr = &l.tr;
    let rows: Vec<Row> = rows
        .into_iter()
        .map(|(s, i)| {
            let (state, agent, queue) = match &i {
                Some(i) => (
                    shown_state(s.status, i.state),
                    i.agent.clone().unwrap_or_default(),
                    i.queue.clone(),
                ),
                None if s.status == Status::Resolved => {
                    ("state.resolved", String::new(), String::new())
                }
                None => ("state.unrouted", String::new(), String::new()),
            };
            let waiting = match &i {
                Some(i) if i.waiting => tr.duration(now.saturating_sub(i.age) as i64),
                _ if s.unread > 0 => tr.duration(now as i64 - s.last_activity_ms),
                _ => String::new(),
            };
            // SLA: the queue's first (no reply yet) or next response target,
            // counted from the customer's latest message while unanswered.
            let (sla, sla_late) = match &i {
                Some(i) if s.unread > 0 && s.status == Status::Open => {
                    let target = if s.messages == s.unread {
                        i.first_response_ms
                    } else {
                        i.next_response_ms.or(i.first_response_ms)
                    };
                    match target {
                        Some(t) => {
                            let left = s.last_activity_ms + t as i64 - now as i64;
                            if left >= 0 {
                                (tr.duration(left), false)
                            } else {
                                (
                                    format!(
                                        "{} {}",
                                        tr.duration(-left),
                                        tr.t("inbox.sla_breached")
                                    ),
                                    true,
                                )
                            }
                        }
                        None => (String::new(), false),
                    }
                }
                _ => (String::new(), false),
            };
            Row {
                mentioned: mentioned.contains(&s.id),
                selected: selected == Some(s.id.as_str()),
                channel_key: format!("channel.{}", s.channel),
                contact: s.contact.address.clone(),
                last: tr.datetime(s.last_activity_ms),
                preview: s.last_message_preview.clone(),
                unread: s.unread,
                channel: s.channel.clone(),
                id: s.id,
                state,
                agent,
                queue,
                waiting,
                sla,
                sla_late,
            }
        })
        .collect();
    let mut tabs = vec![
        ("mine", "inbox.mine", tab == Tab::Mine),
        ("unassigned", "inbox.unassigned", tab == Tab::Unassigned),
        ("teams", "inbox.teams", tab == Tab::Teams),
    ];
    if user.role >= Role::Supervisor {
        tabs.push(("all", "inbox.all", tab == Tab::All));
    }
    let not_available = rows.is_empty() && {
        let aid = AgentId::new(user.agent_id.clone());
        st.routing
            .query(move |r| {
                r.and_then(|(r, _)| r.agent(&aid))
                    .is_some_and(|a| a.presence != Presence::Available)
            })
            .await?
    };
    Ok(InboxData {
        rows,
        selected: selected.unwrap_or("").to_string(),
        queues,
        tags,
        tabs,
        not_available,
        channels: st
            .routing
            .live_channels()
            .into_iter()
            .map(|c| c.as_str())
            .collect(),
    })
}

/// The presence switch and capacity indicator.
pub struct PresenceBox {
    /// None: the user is no routing agent (or routing is not configured).
    pub state: Option<&'static str>,
    /// (channel catalog key, in use, capacity) for channels with capacity.
    pub load: Vec<(String, u8, u8)>,
}

impl PresenceBox {
    pub fn is(&self, code: &str) -> bool {
        self.state == Some(code)
    }

    pub fn key(&self, code: &str) -> &'static str {
        match code {
            "available" => "presence.available",
            "busy" => "presence.busy",
            "away" => "presence.away",
            "wrap_up" => "presence.wrap_up",
            _ => "presence.offline",
        }
    }
}

fn presence_name(p: &Presence) -> &'static str {
    match p {
        Presence::Available => "available",
        Presence::Busy => "busy",
        Presence::Away => "away",
        Presence::Offline => "offline",
        Presence::WrapUp { .. } => "wrap_up",
    }
}

pub async fn presence_box(st: &WebState, user: &CurrentUser) -> PresenceBox {
    let aid = AgentId::new(user.agent_id.clone());
    let live = st.routing.live_channels();
    st.routing
        .query(move |r| {
            let Some(a) = r.and_then(|(r, _)| r.agent(&aid)) else {
                return PresenceBox {
                    state: None,
                    load: Vec::new(),
                };
            };
            let load = crossline_core::routing::ALL_CHANNELS
                .iter()
                .enumerate()
                .filter(|(i, c)| live.contains(c) && a.capacity.get(*i).is_some_and(|c| *c > 0))
                .map(|(i, c)| {
                    (
                        super::board::channel_key(*c),
                        a.load.get(i).copied().unwrap_or(0),
                        a.capacity.get(i).copied().unwrap_or(0),
                    )
                })
                .collect();
            PresenceBox {
                state: Some(presence_name(&a.presence)),
                load,
            }
        })
        .await
        .unwrap_or(PresenceBox {
            state: None,
            load: Vec::new(),
        })
}

#[derive(Template)]
#[template(path = "desk.html")]
struct DeskPage {
    l: Layout,
    presence: PresenceBox,
    inbox: InboxData,
    q: InboxQuery,
    qs: String,
    conv: Option<ConvView>,
    err: String,
}

impl DeskPage {
    /// The catalog key naming an identity's kind (`phone`, `short`, ...).
    fn kind_key(&self, kind: &str) -> &'static str {
        use crate::services::contacts::address::AddressKind;
        match AddressKind::parse(kind) {
            Some(AddressKind::Phone) => "addr.phone",
            Some(AddressKind::Short) => "addr.short",
            Some(AddressKind::Alphanumeric) => "addr.alphanumeric",
            Some(AddressKind::Handle) => "addr.handle",
            None => "addr.other",
        }
    }
}

#[derive(Template)]
#[template(path = "desk_list.html")]
struct DeskList {
    l: Layout,
    inbox: InboxData,
    qs: String,
}

pub async fn inbox_page(
    State(st): State<Arc<WebState>>,
    user: CurrentUser,
    Query(q): Query<InboxQuery>,
) -> Result<Response, WebError> {
    let l = Layout::new(&user, "inbox", "inbox.title");
    let inbox = inbox_data(&st, &user, &q, None, &l).await?;
    let presence = presence_box(&st, &user).await;
    Ok(render(&DeskPage {
        qs: q.qs(),
        err: ActionError::shown(q.err.as_deref(), &l, None),
        l,
        presence,
        inbox,
        q,
        conv: None,
    }))
}

#[derive(Deserialize)]
pub struct ListQuery {
    #[serde(flatten)]
    q: InboxQuery,
    sel: Option<String>,
}

/// `GET /desk/list`: the inbox rows only (htmx refresh).
pub async fn inbox_list(
    State(st): State<Arc<WebState>>,
    user: CurrentUser,
    Query(lq): Query<ListQuery>,
) -> Result<Response, WebError> {
    let l = Layout::new(&user, "inbox", "inbox.title");
    let inbox = inbox_data(&st, &user, &lq.q, lq.sel.as_deref(), &l).await?;
    Ok(render(&DeskList {
        qs: lq.q.qs(),
        l,
        inbox,
    }))
}

// ----- conversation view -------------------------------------------------------------

/// One timeline item.
pub struct Item {
    pub at_ms: i64,
    pub time: String,
    /// `inbound`, `reply`, `note` or `event`.
    pub kind: &'static str,
    pub text: String,
    pub author: String,
    /// Reply: catalog key of the delivery state, and its ticks.
    pub delivery: &'static str,
    pub ticks: &'static str,
    /// Reply: why it failed (or has no report), in the modem's words made readable.
    pub reason: String,
    /// Reply of several parts: each part's state (catalog key, ticks) and reason.
    pub parts: Vec<PartItem>,
    pub line: String,
    pub incomplete: bool,
    /// Note: logins mentioned.
    pub mentions: Vec<String>,
    /// Call (kind `call`): the card's contents.
    pub call: Option<CallCard>,
}

/// What a call's card shows (every text already in the agent's language).
pub struct CallCard {
    /// Catalog key of the direction (`call.inbound`).
    pub direction: &'static str,
    /// Caller ID as received, or "withheld" / "unknown" in words.
    pub caller: String,
    pub caller_name: String,
    /// Who answered (the IVR, an agent), empty when nobody did.
    pub answered: String,
    /// Empty while the call goes on.
    pub duration: String,
    /// Catalog key of the end cause (`call.cause.missed`, ...); empty while
    /// the call goes on.
    pub cause: &'static str,
    pub cause_name: &'static str,
    pub steps: Vec<CallStepItem>,
}

/// One thing that happened during a call.
pub struct CallStepItem {
    /// `ivr_choice`, `voicemail` or `callback`.
    pub kind: String,
    pub text: String,
    /// Voicemail: where the recording is served.
    pub url: String,
    /// Voicemail: the file has reached mgmt (else shown as arriving).
    pub arrived: bool,
}

/// "m:ss" (or "h:mm:ss") of a duration in milliseconds.
fn clock_duration(ms: i64) -> String {
    let s = ms.max(0) / 1000;
    if s >= 3600 {
        format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
    } else {
        format!("{}:{:02}", s / 60, s % 60)
    }
}

/// The catalog key of a call's end cause.
fn cause_key(cause: &str) -> (&'static str, &'static str) {
    match cause {
        "caller_hung_up" => ("call.cause.caller_hung_up", "caller_hung_up"),
        "ivr_hung_up" => ("call.cause.ivr_hung_up", "ivr_hung_up"),
        "missed" => ("call.cause.missed", "missed"),
        "busy" => ("call.cause.busy", "busy"),
        "failed" => ("call.cause.failed", "failed"),
        "line_lost" => ("call.cause.line_lost", "line_lost"),
        _ => ("call.cause.other", "other"),
    }
}

/// What the IVR did after a choice, in the agent's language (an action
/// this build does not know is shown as the appliance named it).
fn action_label(tr: &crate::http::i18n::Tr, action: Option<&str>) -> String {
    match action.unwrap_or("") {
        "voicemail" => tr.t("call.action.voicemail").to_string(),
        "callback" => tr.t("call.action.callback").to_string(),
        "hangup" => tr.t("call.action.hangup").to_string(),
        a => match a.strip_prefix("menu:") {
            Some(menu) => tr.f("call.action.menu", &[("menu", menu)]),
            None => a.to_string(),
        },
    }
}

/// A call's card, in the agent's language; `arrived` says whether a
/// recording has reached mgmt.
fn call_card(
    tr: &crate::http::i18n::Tr,
    c: &conversations::calls::CallView,
    arrived: impl Fn(&str) -> bool,
) -> CallCard {
    let caller = match &c.caller {
        Some(n) => n.clone(),
        None if c.withheld => tr.t("call.withheld").to_string(),
        None => tr.t("call.no_caller_id").to_string(),
    };
    let answered = match c.answered_by.as_deref() {
        Some("ivr") => tr.t("call.by_ivr").to_string(),
        Some(by) => by.strip_prefix("agent:").unwrap_or(by).to_string(),
        None => String::new(),
    };
    let (cause, cause_name) = match &c.cause {
        Some(k) => cause_key(k),
        None => ("", ""),
    };
    let steps = c
        .steps
        .iter()
        .map(|st| {
            let (text, url) = match st.kind.as_str() {
                "ivr_choice" => {
                    let digit = st.digit.clone().unwrap_or_default();
                    let key = if digit.is_empty() {
                        "call.ivr_timeout"
                    } else {
                        "call.ivr_choice"
                    };
                    (
                        tr.f(
                            key,
                            &[
                                ("menu", st.menu.as_deref().unwrap_or("")),
                                ("digit", &digit),
                                ("action", &action_label(tr, st.action.as_deref())),
                            ],
                        ),
                        String::new(),
                    )
                }
                "voicemail" => (
                    tr.f(
                        "call.voicemail",
                        &[("duration", &clock_duration(st.duration_ms.unwrap_or(0)))],
                    ),
                    st.recording
                        .as_deref()
                        .map(|r| format!("/recordings/{r}"))
                        .unwrap_or_default(),
                ),
                _ => (
                    tr.f(
                        "call.callback",
                        &[("number", st.number.as_deref().unwrap_or(""))],
                    ),
                    String::new(),
                ),
            };
            CallStepItem {
                kind: st.kind.clone(),
                text,
                url,
                arrived: st.recording.as_deref().is_some_and(&arrived),
            }
        })
        .collect();
    CallCard {
        direction: "call.inbound",
        caller,
        caller_name: c.caller_name.clone().unwrap_or_default(),
        answered,
        duration: c
            .duration_ms
            .filter(|_| c.ended_ms.is_some())
            .map(clock_duration)
            .unwrap_or_default(),
        cause,
        cause_name,
        steps,
    }
}

/// One part of a reply of several parts.
pub struct PartItem {
    pub part: i64,
    pub delivery: &'static str,
    pub ticks: &'static str,
    pub detail: String,
}

/// What the conversation view shows.
pub struct ConvView {
    pub id: String,
    pub summary: ConversationSummary,
    pub route: Option<RouteInfo>,
    pub state: &'static str,
    pub items: Vec<Item>,
    pub lines: Vec<(String, bool)>,
    pub canned: Vec<(String, String)>,
    pub agents: Vec<String>,
    pub queues: Vec<String>,
    /// The conversation's channel has an adapter that can reach the
    /// contact, and a device to send from.
    pub replyable: bool,
    /// Why not, when not (catalog key): a conversation only a call made
    /// has nothing written to answer; else the contact is out of reach.
    pub not_replyable_key: &'static str,
    /// Catalog key of the conversation's channel (`channel.sms`, ...).
    pub channel_key: String,
    /// The composer's counter (segments, length) for an empty text, and
    /// the channel's longest text.
    pub measure: Measured,
    pub max_chars: usize,
    pub contact: ContactPanel,
    pub snoozed_until: String,
    pub mine: bool,
    /// The actions this user may take on it now.
    pub can: Controls,
    /// The inbox view's query string (kept by the action forms).
    pub qs: String,
}

impl ConvView {
    pub fn held(&self) -> bool {
        matches!(self.state, "state.held" | "state.snoozed")
    }
}

/// The actions a user may take on a conversation, from its state and who
/// handles it: the desk shows these buttons, and [`action`] and
/// [`transfer`] refuse the others. A resolved conversation can only be
/// reopened; hold, resume and snooze belong to the agent handling it;
/// another agent's conversation is theirs (a supervisor reassigns it).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Controls {
    pub take: bool,
    /// Hold, resume, snooze.
    pub hold: bool,
    pub resolve: bool,
    pub reopen: bool,
    pub transfer: bool,
}

impl Controls {
    pub fn of(user: &CurrentUser, status: Status, route: Option<&RouteInfo>) -> Self {
        if status == Status::Resolved {
            return Controls {
                reopen: true,
                ..Controls::default()
            };
        }
        let supervisor = user.role >= Role::Supervisor;
        // Routing holds it open (not resolved or abandoned there).
        let routed = route.filter(|r| !matches!(r.state, "state.resolved" | "state.abandoned"));
        let agent = route.and_then(|r| r.agent.as_deref());
        let mine = agent.is_some_and(|a| a == user.agent_id);
        let free = agent.is_none();
        Controls {
            take: routed.is_some() && !mine && (free || supervisor),
            hold: routed.is_some() && mine,
            resolve: mine || free || supervisor,
            reopen: false,
            transfer: routed.is_some() && (mine || supervisor),
        }
    }

    /// Whether form action `what` (hold, take, ...) is one of these.
    fn allows(&self, what: &str) -> bool {
        match what {
            "hold" | "resume" | "snooze_1h" | "snooze_4h" | "snooze_tomorrow" => self.hold,
            "take" => self.take,
            "resolve" => self.resolve,
            "reopen" => self.reopen,
            "transfer" => self.transfer,
            _ => true,
        }
    }
}

/// The customer panel.
pub struct ContactPanel {
    pub id: String,
    pub identities: Vec<(String, String)>,
    pub previous: Vec<(String, String, String)>,
    pub tags: Vec<String>,
    pub notes: Vec<(String, String, String)>,
    /// Contacts merged into this one: (contact id, their addresses, when, by whom).
    pub merged: Vec<(String, String, String, String)>,
}

fn delivery(state: Option<&str>) -> (&'static str, &'static str) {
    match state {
        Some("sent") => ("delivery.sent", "✓"),
        Some("delivered") => ("delivery.delivered", "✓✓"),
        Some("failed") => ("delivery.failed", "✗"),
        Some("unknown") => ("delivery.unknown", "?"),
        Some("no_report") => ("delivery.no_report", "✓?"),
        _ => ("delivery.pending", "…"),
    }
}

async fn conv_view(
    st: &WebState,
    user: &CurrentUser,
    id: &str,
    l: &Layout,
    qs: String,
) -> Result<ConvView, WebError> {
    let (cid, route, _viewer) = authorize_conversation(st, user, id).await?;
    let loaded = st.store.workspace(cid).await?.ok_or(WebError::NotFound)?;
    let (agents, queues): (Vec<String>, Vec<String>) = st
        .routing
        .query(|r| {
            r.map(|(r, _)| {
                (
                    r.config().agents.iter().map(|a| a.id.to_string()).collect(),
                    r.config().queues.iter().map(|q| q.id.to_string()).collect(),
                )
            })
            .unwrap_or_default()
        })
        .await?;
    // Transfer targets: not the agent who has it.
    let agents: Vec<String> = agents
        .into_iter()
        .filter(|a| route.as_ref().and_then(|r| r.agent.as_ref()) != Some(a))
        .collect();
    let tr = &l.tr;
    let mut items: Vec<Item> = Vec::new();
    let blank = |at_ms: i64, kind: &'static str, text: String, author: String| Item {
        at_ms,
        time: tr.datetime(at_ms),
        kind,
        text,
        author,
        delivery: "",
        ticks: "",
        reason: String::new(),
        parts: Vec::new(),
        line: String::new(),
        incomplete: false,
        mentions: Vec::new(),
        call: None,
    };
    for e in &loaded.detail.timeline {
        let mut it = match e.kind {
            EntryKind::Inbound => blank(
                e.at_ms,
                "inbound",
                e.text.clone().unwrap_or_default(),
                e.address.clone().unwrap_or_default(),
            ),
            EntryKind::Reply => {
                let author = match e.author.as_deref() {
                    Some("auto-reply") | Some("outside-hours") => tr.t("tl.auto_reply").to_string(),
                    Some(a) => a.to_string(),
                    None => String::new(),
                };
                let mut it = blank(e.at_ms, "reply", e.text.clone().unwrap_or_default(), author);
                let (d, t) = delivery(e.state.as_deref());
                it.delivery = d;
                it.ticks = t;
                it.reason = e.reason.clone().unwrap_or_default();
                if e.part_states.len() > 1 {
                    it.parts = e
                        .part_states
                        .iter()
                        .map(|p| {
                            let (d, t) = delivery(Some(&p.state));
                            PartItem {
                                part: p.part,
                                delivery: d,
                                ticks: t,
                                detail: p.detail.clone().unwrap_or_default(),
                            }
                        })
                        .collect();
                }
                it
            }
            EntryKind::Resolved => blank(
                e.at_ms,
                "event",
                tr.t("tl.resolved").to_string(),
                e.author.clone().unwrap_or_default(),
            ),
            EntryKind::Reopened => blank(
                e.at_ms,
                "event",
                tr.t("tl.reopened").to_string(),
                e.author.clone().unwrap_or_default(),
            ),
        };
        it.line = e.line.clone().unwrap_or_default();
        it.incomplete = e.incomplete;
        items.push(it);
    }
    for r in &loaded.decisions {
        let at = r.at as i64;
        let text = match &r.fact {
            Fact::Assigned { agent, .. } => tr.f("tl.assigned", &[("agent", agent.as_str())]),
            Fact::Queued { queue, .. } => tr.f("tl.queued", &[("queue", queue.as_str())]),
            Fact::Held { .. } => tr.t("tl.held").to_string(),
            Fact::Resumed { .. } => tr.t("tl.resumed").to_string(),
            Fact::Snoozed { until, .. } => {
                tr.f("tl.snoozed", &[("until", &tr.datetime(*until as i64))])
            }
            Fact::Unassigned { agent, .. } => tr.f("tl.unassigned", &[("agent", agent.as_str())]),
            Fact::SlaBreached { .. } => tr.t("tl.sla_breached").to_string(),
            _ => continue,
        };
        items.push(blank(at, "event", text, String::new()));
    }
    for n in &loaded.notes {
        let mut it = blank(n.at_ms, "note", n.text.clone(), n.author.clone());
        it.mentions = n
            .mentions
            .split(',')
            .filter(|m| !m.is_empty())
            .map(str::to_string)
            .collect();
        items.push(it);
    }
    for c in &loaded.detail.calls {
        let mut it = blank(c.at_ms, "call", String::new(), String::new());
        it.line = c.line.clone();
        it.call = Some(call_card(tr, c, |r| {
            r.parse().is_ok_and(|id| st.recordings.arrived(&id))
        }));
        items.push(it);
    }
    items.sort_by_key(|i| i.at_ms);
    let s = &loaded.detail.summary;
    let state = match &route {
        Some(r) => shown_state(s.status, r.state),
        None if s.status == Status::Resolved => "state.resolved",
        None => "state.unrouted",
    };
    let lines = loaded
        .lines
        .iter()
        .map(|x| (x.clone(), Some(x) == s.line.as_ref()))
        .collect();
    let contact = ContactPanel {
        id: s.contact.id.clone(),
        identities: loaded.identities.clone(),
        previous: loaded
            .previous
            .iter()
            .map(|p| {
                (
                    p.id.clone(),
                    tr.datetime(p.last_activity_ms),
                    p.last_message_preview.clone(),
                )
            })
            .collect(),
        tags: loaded.tags.clone(),
        notes: loaded
            .contact_notes
            .iter()
            .map(|(at, a, t)| (tr.datetime(*at), a.clone(), t.clone()))
            .collect(),
        merged: loaded
            .merged
            .iter()
            .map(|m| {
                (
                    m.merged.clone(),
                    m.addresses.clone(),
                    tr.datetime(m.at_ms),
                    m.by.clone(),
                )
            })
            .collect(),
    };
    let adapter = st.outbound.channels.named(&s.channel);
    let to = crate::services::contacts::address::Address {
        kind: s.contact.kind,
        value: s.contact.address.clone(),
    };
    Ok(ConvView {
        qs,
        id: id.to_string(),
        snoozed_until: route
            .as_ref()
            .and_then(|r| r.snoozed_until)
            .map(|u| tr.datetime(u as i64))
            .unwrap_or_default(),
        mine: route
            .as_ref()
            .and_then(|r| r.agent.as_deref())
            .is_some_and(|a| a == user.agent_id),
        can: Controls::of(user, s.status, route.as_ref()),
        replyable: adapter.is_some_and(|a| a.reachable(&to).is_ok()) && s.device.is_some(),
        not_replyable_key: if s.channel == Channel::Voice.as_str() {
            "conv.not_replyable_call"
        } else {
            "conv.not_replyable"
        },
        channel_key: format!("channel.{}", s.channel),
        measure: adapter
            .map(|a| Measured::of(&a.measure(""), l))
            .unwrap_or_default(),
        max_chars: adapter.map(|a| a.capabilities().max_chars).unwrap_or(0),
        summary: loaded.detail.summary.clone(),
        route,
        state,
        items,
        lines,
        canned: loaded.canned,
        agents,
        queues,
        contact,
    })
}

#[derive(Deserialize, Default)]
pub struct ConvQuery {
    #[serde(flatten)]
    q: InboxQuery,
}

pub async fn conversation_page(
    State(st): State<Arc<WebState>>,
    user: CurrentUser,
    Path(id): Path<String>,
    Query(cq): Query<ConvQuery>,
) -> Result<Response, WebError> {
    let l = Layout::new(&user, "inbox", "inbox.title");
    let conv = conv_view(&st, &user, &id, &l, cq.q.qs()).await?;
    audit::record(&st.store, &user.login, "conversation.open", &id, "").await;
    let inbox = inbox_data(&st, &user, &cq.q, Some(&id), &l).await?;
    let presence = presence_box(&st, &user).await;
    let agent = conv.route.as_ref().and_then(|r| r.agent.as_deref());
    Ok(render(&DeskPage {
        qs: cq.q.qs(),
        err: ActionError::shown(cq.q.err.as_deref(), &l, agent),
        l,
        presence,
        inbox,
        q: cq.q,
        conv: Some(conv),
    }))
}

#[derive(Template)]
#[template(path = "timeline.html")]
struct TimelineFragment {
    l: Layout,
    c: ConvView,
}

/// `GET /desk/c/{id}/timeline`: the timeline only (htmx refresh).
pub async fn timeline(
    State(st): State<Arc<WebState>>,
    user: CurrentUser,
    Path(id): Path<String>,
    Query(cq): Query<ConvQuery>,
) -> Result<Response, WebError> {
    let l = Layout::new(&user, "inbox", "inbox.title");
    let c = conv_view(&st, &user, &id, &l, cq.q.qs()).await?;
    Ok(render(&TimelineFragment { l, c }))
}

/// The composer's counter: how the text fits the conversation's channel
/// (its adapter counts; e.g. `140/1530 · parts: 1`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Measured {
    pub text: String,
    pub segments: usize,
    pub fits: bool,
}

impl Measured {
    fn of(m: &crate::services::channels::Measure, l: &Layout) -> Self {
        let key = if m.fits {
            "conv.measure"
        } else {
            "conv.measure_too_long"
        };
        Self {
            text: l.tr.f(
                key,
                &[
                    ("units", &m.units.to_string()),
                    ("max", &m.max_units.to_string()),
                    ("segments", &m.segments.to_string()),
                ],
            ),
            segments: m.segments,
            fits: m.fits,
        }
    }
}

#[derive(Template)]
#[template(path = "desk_measure.html")]
struct MeasureFragment {
    m: Measured,
}

#[derive(Deserialize)]
pub struct MeasureQuery {
    #[serde(default)]
    text: String,
}

/// `GET /desk/c/{id}/measure?text=`: the composer's counter for `text` on
/// the conversation's channel (htmx asks as the agent types).
pub async fn measure(
    State(st): State<Arc<WebState>>,
    user: CurrentUser,
    Path(id): Path<String>,
    Query(q): Query<MeasureQuery>,
) -> Result<Response, WebError> {
    authorize_conversation(&st, &user, &id).await?;
    let l = Layout::new(&user, "inbox", "inbox.title");
    let id2 = id.clone();
    let channel = st
        .store
        .summary(id2)
        .await?
        .ok_or(WebError::NotFound)?
        .channel;
    let m = st
        .outbound
        .channels
        .named(&channel)
        .map(|a| Measured::of(&a.measure(&q.text), &l))
        .unwrap_or_default();
    Ok(render(&MeasureFragment { m }))
}

// ----- actions ---------------------------------------------------------------------------

/// Why a desk action failed, as the page says it. It travels in the
/// redirect back as `?err=<code>`; the page shows its catalog text in the
/// user's language, and nothing for a code not in this list, so a link
/// cannot put words of its own on the desk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActionError {
    EmptyText,
    TextTooLong,
    UnknownLine,
    NotReplyable,
    /// The channel's reply window closed (the customer must write first).
    ReplyWindowClosed,
    NoDevice,
    NotFound,
    /// The contact has another open conversation (reopen).
    OtherOpen,
    /// Routing refused it in the conversation's state (or for lack of capacity).
    NotPossible,
    /// The conversation is resolved: reopen it first.
    Resolved,
    /// Another agent handles it (named from the conversation on the page).
    NotYours,
    /// Not in the conversation's current state.
    NotNow,
    MergeUnknown,
    MergeBothOpen,
    MergeSame,
    MergeGone,
    /// The contact is not merged into another (undone already?).
    UnmergeNone,
    /// The contact it was merged into was merged into another since.
    UnmergeLater,
    /// Anything else (the server log has the detail).
    Failed,
}

impl ActionError {
    const ALL: [ActionError; 19] = [
        ActionError::EmptyText,
        ActionError::TextTooLong,
        ActionError::UnknownLine,
        ActionError::NotReplyable,
        ActionError::ReplyWindowClosed,
        ActionError::NoDevice,
        ActionError::NotFound,
        ActionError::OtherOpen,
        ActionError::NotPossible,
        ActionError::Resolved,
        ActionError::NotYours,
        ActionError::NotNow,
        ActionError::MergeUnknown,
        ActionError::MergeBothOpen,
        ActionError::MergeSame,
        ActionError::MergeGone,
        ActionError::UnmergeNone,
        ActionError::UnmergeLater,
        ActionError::Failed,
    ];

    /// The code in `?err=` and its catalog key.
    fn code_and_key(self) -> (&'static str, &'static str) {
        match self {
            ActionError::EmptyText => ("empty_text", "desk.err.empty_text"),
            ActionError::TextTooLong => ("text_too_long", "desk.err.text_too_long"),
            ActionError::UnknownLine => ("unknown_line", "desk.err.unknown_line"),
            ActionError::NotReplyable => ("not_replyable", "desk.err.not_replyable"),
            ActionError::ReplyWindowClosed => {
                ("reply_window_closed", "desk.err.reply_window_closed")
            }
            ActionError::NoDevice => ("no_device", "desk.err.no_device"),
            ActionError::NotFound => ("not_found", "desk.err.not_found"),
            ActionError::OtherOpen => ("other_open", "desk.err.other_open"),
            ActionError::NotPossible => ("not_possible", "desk.err.not_possible"),
            ActionError::Resolved => ("resolved", "conv.err_resolved"),
            ActionError::NotYours => ("not_yours", "conv.err_not_yours"),
            ActionError::NotNow => ("not_now", "conv.err_not_now"),
            ActionError::MergeUnknown => ("merge_unknown", "cust.merge_unknown"),
            ActionError::MergeBothOpen => ("merge_both_open", "cust.merge_both_open"),
            ActionError::MergeSame => ("merge_same", "cust.merge_same"),
            ActionError::MergeGone => ("merge_gone", "cust.merge_gone"),
            ActionError::UnmergeNone => ("unmerge_none", "cust.unmerge_none"),
            ActionError::UnmergeLater => ("unmerge_later", "cust.unmerge_later"),
            ActionError::Failed => ("failed", "desk.err.failed"),
        }
    }

    pub fn code(self) -> &'static str {
        self.code_and_key().0
    }

    /// The catalog key of the message.
    pub fn key(self) -> &'static str {
        self.code_and_key().1
    }

    pub fn parse(code: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|e| e.code() == code)
    }

    /// A refused reply or status change of the conversations API.
    fn of(e: &crate::services::conversations::actions::ActionError) -> Self {
        match e.code() {
            "conflict" => ActionError::OtherOpen,
            "empty_text" => ActionError::EmptyText,
            "text_too_long" => ActionError::TextTooLong,
            "unknown_line" => ActionError::UnknownLine,
            "not_replyable" => ActionError::NotReplyable,
            "reply_window_closed" => ActionError::ReplyWindowClosed,
            "no_device" => ActionError::NoDevice,
            "not_found" => ActionError::NotFound,
            _ => ActionError::Failed,
        }
    }

    /// The message for the page in `l`'s language, from `?err=`; `agent`
    /// handles the open conversation (for [`ActionError::NotYours`]).
    fn shown(code: Option<&str>, l: &Layout, agent: Option<&str>) -> String {
        match (code.and_then(Self::parse), agent) {
            (None, _) => String::new(),
            (Some(ActionError::NotYours), Some(a)) => {
                l.tr.f(ActionError::NotYours.key(), &[("agent", a)])
            }
            (Some(ActionError::NotYours), None) => l.t(ActionError::NotNow.key()).to_string(),
            (Some(e), _) => l.t(e.key()).to_string(),
        }
    }
}

/// Back to the conversation (303), with `err` shown if the action failed.
fn back(id: &str, qs: Option<&str>, err: Option<ActionError>) -> Response {
    let qs = qs
        .filter(|q| q.bytes().all(|b| b.is_ascii_graphic() && b != b'#'))
        .unwrap_or("tab=mine");
    let mut target = format!("/desk/c/{id}?{qs}");
    if let Some(e) = err {
        target += &format!("&err={}", e.code());
    }
    let mut r = Redirect::to(&crate::http::html::safe_next(Some(&target), "/desk")).into_response();
    *r.status_mut() = StatusCode::SEE_OTHER;
    r
}

/// A routing failure for the page; internal errors stay errors.
fn shown(e: WebError) -> Result<ActionError, WebError> {
    match e {
        WebError::Conflict(_) | WebError::BadRequest(_) => Ok(ActionError::NotPossible),
        other => Err(other),
    }
}

#[derive(Deserialize)]
pub struct ReplyForm {
    text: String,
    line: Option<String>,
    /// Titles of the canned responses put into the text, one per line
    /// (filled in by the page's script).
    canned: Option<String>,
    qs: Option<String>,
}

/// The conversation use cases the desk shares with the JSON API.
fn actions(st: &WebState) -> Actions<'_> {
    Actions {
        store: &st.store,
        outbound: &st.outbound,
    }
}

pub async fn reply(
    State(st): State<Arc<WebState>>,
    user: CurrentUser,
    Path(id): Path<String>,
    Form(f): Form<ReplyForm>,
) -> Result<Response, WebError> {
    let (cid, _, _) = authorize_conversation(&st, &user, &id).await?;
    let req = Reply {
        text: f.text,
        line: f.line.filter(|l| !l.is_empty()),
    };
    // Audited by the use case, as from the API.
    let r = actions(&st).reply(&id, req, &user.actor()).await;
    let err = match r {
        Ok(_) => {
            if let Some(titles) = f.canned.as_deref() {
                conversations::canned::used(&st.store, cid, titles, &user.login).await?;
            }
            None
        }
        Err(e) => {
            tracing::info!(conversation = %id, user = %user.login, error = %e, "desk reply refused");
            Some(ActionError::of(&e))
        }
    };
    Ok(back(&id, f.qs.as_deref(), err))
}

#[derive(Deserialize)]
pub struct NoteForm {
    text: String,
    qs: Option<String>,
}

/// `@login` mentions in `text`, each once (case-insensitively), in order.
fn mention_candidates(text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for w in text.split(|c: char| c.is_whitespace() || matches!(c, ',' | ';' | ':' | '!' | '?')) {
        let Some(login) = w.strip_prefix('@') else {
            continue;
        };
        let login = login.trim_end_matches('.');
        if login.is_empty() || out.iter().any(|o| o.eq_ignore_ascii_case(login)) {
            continue;
        }
        out.push(login.to_string());
    }
    out
}

pub async fn note(
    State(st): State<Arc<WebState>>,
    user: CurrentUser,
    Path(id): Path<String>,
    Form(f): Form<NoteForm>,
) -> Result<Response, WebError> {
    let (cid, _, _) = authorize_conversation(&st, &user, &id).await?;
    let text = f.text.clone();
    let found = st.store.known_logins(mention_candidates(&text)).await?;
    if !notes::note(&st.store, cid, &user.login, &f.text, found.clone()).await? {
        return Ok(back(&id, f.qs.as_deref(), None));
    }
    audit::record(
        &st.store,
        &user.login,
        "conversation.note",
        &id,
        &found.join(","),
    )
    .await;
    // The note is an event: live updates announce it from the log.
    Ok(back(&id, f.qs.as_deref(), None))
}

#[derive(Deserialize)]
pub struct ActionForm {
    /// hold, resume, snooze_1h, snooze_4h, snooze_tomorrow, resolve, reopen, take.
    r#do: String,
    qs: Option<String>,
}

/// Tomorrow 09:00 in the user's time zone, as ms.
fn tomorrow_nine(tz: &str) -> u64 {
    let tz = jiff::tz::TimeZone::get(tz).unwrap_or(jiff::tz::TimeZone::UTC);
    let now = jiff::Timestamp::now().to_zoned(tz);
    now.date()
        .tomorrow()
        .ok()
        .and_then(|d| d.at(9, 0, 0, 0).to_zoned(now.time_zone().clone()).ok())
        .map(|z| z.timestamp().as_millisecond().max(0) as u64)
        .unwrap_or_else(|| now_ms() + 16 * 3600 * 1000)
}

pub async fn action(
    State(st): State<Arc<WebState>>,
    user: CurrentUser,
    Path(id): Path<String>,
    Form(f): Form<ActionForm>,
) -> Result<Response, WebError> {
    let (cid, route, _) = authorize_conversation(&st, &user, &id).await?;
    if let Some(refused) = refused_action(&st, &user, &id, route.as_ref(), &f.r#do).await? {
        return Ok(back(&id, f.qs.as_deref(), Some(refused)));
    }
    let by = user.actor();
    // Ok(Err(..)): refused, said on the page; Err(..): an internal error.
    let routed = |cmd: Command| {
        let routing = st.routing.clone();
        async move {
            match routing.command(cmd).await {
                Ok(_) => Ok(Ok(())),
                Err(e) => shown(e.into()).map(Err),
            }
        }
    };
    let r: Result<(), ActionError> = match f.r#do.as_str() {
        "hold" => routed(Command::Hold { conversation: cid }).await?,
        "resume" => routed(Command::Resume { conversation: cid }).await?,
        "snooze_1h" | "snooze_4h" | "snooze_tomorrow" => {
            let until = match f.r#do.as_str() {
                "snooze_1h" => now_ms() + 3600 * 1000,
                "snooze_4h" => now_ms() + 4 * 3600 * 1000,
                _ => tomorrow_nine(&user.time_zone),
            };
            routed(Command::Snooze {
                conversation: cid,
                until,
            })
            .await?
        }
        "take" => {
            routed(Command::Transfer {
                conversation: cid,
                target: TransferTarget::Agent {
                    agent: AgentId::new(user.agent_id.clone()),
                },
            })
            .await?
        }
        "resolve" => actions(&st)
            .set_status(&id, Status::Resolved, &by)
            .await
            .map(|_| ())
            .map_err(|e| ActionError::of(&e)),
        "reopen" => match actions(&st).set_status(&id, Status::Open, &by).await {
            Ok(s) => match st.routing.reopened(&s).await {
                Ok(()) => Ok(()),
                Err(e) => Err(shown(e.into())?),
            },
            Err(e) => Err(ActionError::of(&e)),
        },
        other => return Err(WebError::BadRequest(format!("unknown action {other:?}"))),
    };
    let err = match r {
        // set_status audits resolve and reopen itself (for the API too).
        Ok(()) if matches!(f.r#do.as_str(), "resolve" | "reopen") => None,
        Ok(()) => {
            audit::record(
                &st.store,
                &user.login,
                &format!("conversation.{}", f.r#do),
                &id,
                "",
            )
            .await;
            None
        }
        Err(e) => Some(e),
    };
    Ok(back(&id, f.qs.as_deref(), err))
}

/// Why `user` may not take action `what` on conversation `id` now, or None
/// when they may.
async fn refused_action(
    st: &WebState,
    user: &CurrentUser,
    id: &str,
    route: Option<&RouteInfo>,
    what: &str,
) -> Result<Option<ActionError>, WebError> {
    let id2 = id.to_string();
    let Some(summary) = st.store.summary(id2).await? else {
        return Err(WebError::NotFound);
    };
    if Controls::of(user, summary.status, route).allows(what) {
        return Ok(None);
    }
    let other_agent = route
        .and_then(|r| r.agent.as_deref())
        .is_some_and(|a| a != user.agent_id);
    Ok(Some(match (summary.status, other_agent) {
        (Status::Resolved, _) => ActionError::Resolved,
        (_, true) => ActionError::NotYours,
        _ => ActionError::NotNow,
    }))
}

#[derive(Deserialize)]
pub struct TransferForm {
    /// `agent:<id>` or `queue:<id>`.
    to: String,
    qs: Option<String>,
    /// Where to go afterwards (the supervisor board posts here too).
    back: Option<String>,
}

pub async fn transfer(
    State(st): State<Arc<WebState>>,
    user: CurrentUser,
    Path(id): Path<String>,
    Form(f): Form<TransferForm>,
) -> Result<Response, WebError> {
    let (cid, route, _) = authorize_conversation(&st, &user, &id).await?;
    // Agents move only their own conversations; supervisors any they see.
    let own = route
        .as_ref()
        .and_then(|r| r.agent.as_deref())
        .is_some_and(|a| a == user.agent_id);
    if !own {
        user.require(Role::Supervisor)?;
    }
    if let Some(refused) = refused_action(&st, &user, &id, route.as_ref(), "transfer").await? {
        return Ok(back(&id, f.qs.as_deref(), Some(refused)));
    }
    let target = match f.to.split_once(':') {
        Some(("agent", a)) => TransferTarget::Agent {
            agent: AgentId::new(a),
        },
        Some(("queue", q)) => TransferTarget::Queue {
            queue: QueueId::new(q),
        },
        _ => {
            return Err(WebError::BadRequest(format!(
                "bad transfer target {:?}",
                f.to
            )));
        }
    };
    let r = st
        .routing
        .command(Command::Transfer {
            conversation: cid,
            target,
        })
        .await;
    let err = match r {
        Ok(_) => {
            audit::record(&st.store, &user.login, "conversation.transfer", &id, &f.to).await;
            None
        }
        Err(e) => Some(shown(e.into())?),
    };
    if f.back.as_deref() == Some("board") {
        let mut r = Redirect::to("/supervisor").into_response();
        *r.status_mut() = StatusCode::SEE_OTHER;
        return Ok(r);
    }
    Ok(back(&id, f.qs.as_deref(), err))
}

// ----- customer panel ---------------------------------------------------------------------

/// The user may see some conversation of `contact`.
async fn authorize_contact(
    st: &WebState,
    user: &CurrentUser,
    contact: &str,
) -> Result<String, WebError> {
    let c = contact.to_string();
    let convs = ConversationRepo::list(
        &st.store,
        ListFilter {
            contact: Some(c),
            limit: 50,
            ..Default::default()
        },
    )
    .await?;
    for conv in &convs.conversations {
        if authorize_conversation(st, user, &conv.id).await.is_ok() {
            return Ok(conv.id.clone());
        }
    }
    Err(WebError::Forbidden(format!(
        "{} may not see contact {contact}",
        user.login
    )))
}

#[derive(Deserialize)]
pub struct TagForm {
    tag: String,
    conv: String,
    qs: Option<String>,
}

pub async fn add_tag(
    State(st): State<Arc<WebState>>,
    user: CurrentUser,
    Path(contact): Path<String>,
    Form(f): Form<TagForm>,
) -> Result<Response, WebError> {
    authorize_contact(&st, &user, &contact).await?;
    let id = contact_id(&contact)?;
    if let Some(tag) = contact_facts::tag(&st.store, id, &f.tag, &user.login).await? {
        audit::record(&st.store, &user.login, "contact.tag", &contact, &tag).await;
    }
    Ok(back(&f.conv, f.qs.as_deref(), None))
}

/// Takes a tag off a contact.
pub async fn remove_tag(
    State(st): State<Arc<WebState>>,
    user: CurrentUser,
    Path(contact): Path<String>,
    Form(f): Form<TagForm>,
) -> Result<Response, WebError> {
    authorize_contact(&st, &user, &contact).await?;
    let id = contact_id(&contact)?;
    if let Some(tag) = contact_facts::untag(&st.store, id, &f.tag, &user.login).await? {
        audit::record(&st.store, &user.login, "contact.untag", &contact, &tag).await;
    }
    Ok(back(&f.conv, f.qs.as_deref(), None))
}

/// A contact id from a path (a contact's id is a UUID); anything else is
/// no contact.
fn contact_id(s: &str) -> Result<ContactId, WebError> {
    s.parse().map_err(|_| WebError::NotFound)
}

#[derive(Deserialize)]
pub struct ContactNoteForm {
    text: String,
    conv: String,
    qs: Option<String>,
}

pub async fn contact_note(
    State(st): State<Arc<WebState>>,
    user: CurrentUser,
    Path(contact): Path<String>,
    Form(f): Form<ContactNoteForm>,
) -> Result<Response, WebError> {
    authorize_contact(&st, &user, &contact).await?;
    let id = contact_id(&contact)?;
    if contact_facts::contact_note(&st.store, id, &user.login, &f.text).await? {
        audit::record(&st.store, &user.login, "contact.note", &contact, "").await;
    }
    Ok(back(&f.conv, f.qs.as_deref(), None))
}

#[derive(Deserialize)]
pub struct MergeForm {
    /// The other contact: a phone number (or other identity) or a contact id.
    with: String,
    conv: String,
    qs: Option<String>,
}

/// Merges the contact named in the form into `contact` (the survivor). The
/// user must be allowed to see both: a survivor they may not see answers
/// 403; another contact that does not exist or that they may not see comes
/// back as one and the same message on the page, so the form does not tell
/// which numbers are customers. Every refusal is a message the user reads.
pub async fn merge_contact(
    State(st): State<Arc<WebState>>,
    user: CurrentUser,
    Path(contact): Path<String>,
    Form(f): Form<MergeForm>,
) -> Result<Response, WebError> {
    authorize_contact(&st, &user, &contact).await?;
    let with = f.with.trim().to_string();
    let addr = crate::services::contacts::address::normalise(&with, st.region);
    let w = with.clone();
    let other = st.store.find_contact(w, addr.kind, addr.value).await?;
    let refused = || {
        tracing::info!(
            user = %user.login, %contact, with = %with,
            "merge refused: no contact the user may see has that number or id"
        );
        back(&f.conv, f.qs.as_deref(), Some(ActionError::MergeUnknown))
    };
    let Some(other) = other else {
        return Ok(refused());
    };
    if authorize_contact(&st, &user, &other).await.is_err() {
        return Ok(refused());
    }
    let outcome = contact_facts::merge(
        &st.store,
        contact_id(&contact)?,
        contact_id(&other)?,
        &user.login,
    )
    .await?;
    let err = match outcome {
        MergeOutcome::Merged {
            identities,
            conversations,
        } => {
            audit::record(
                &st.store,
                &user.login,
                "contact.merged",
                &contact,
                &format!(
                    "merged {other} ({with}) into it: {identities} identities, {conversations} conversations"
                ),
            )
            .await;
            None
        }
        MergeOutcome::BothOpen { survivor, merged } => {
            tracing::info!(contact = %contact, %survivor, %merged, "merge refused: both contacts have an open conversation");
            Some(ActionError::MergeBothOpen)
        }
        MergeOutcome::Same => Some(ActionError::MergeSame),
        MergeOutcome::Unknown(c) => {
            tracing::info!(contact = %c, "merge refused: the contact no longer exists");
            Some(ActionError::MergeGone)
        }
    };
    Ok(back(&f.conv, f.qs.as_deref(), err))
}

#[derive(Deserialize)]
pub struct UnmergeForm {
    conv: String,
    qs: Option<String>,
}

/// Undoes the merge of contact `merged` into another: what it moved goes
/// back. The user must be allowed to see the contact it was merged into.
pub async fn unmerge_contact(
    State(st): State<Arc<WebState>>,
    user: CurrentUser,
    Path(merged): Path<String>,
    Form(f): Form<UnmergeForm>,
) -> Result<Response, WebError> {
    let id = contact_id(&merged)?;
    let m = merged.clone();
    // The contact that holds the merged one's history now (the survivor, or
    // whom the survivor was merged into since): the user must see it.
    let holder = st.store.holder_of_merged(m).await?;
    let Some(holder) = holder else {
        return Ok(back(
            &f.conv,
            f.qs.as_deref(),
            Some(ActionError::UnmergeNone),
        ));
    };
    authorize_contact(&st, &user, &holder).await?;
    let err = match contact_facts::unmerge(&st.store, id, &user.login).await? {
        UnmergeOutcome::Unmerged { survivor } => {
            audit::record(
                &st.store,
                &user.login,
                "contact.unmerged",
                &survivor,
                &format!("undid the merge of {merged} into it"),
            )
            .await;
            None
        }
        UnmergeOutcome::NotMerged => Some(ActionError::UnmergeNone),
        UnmergeOutcome::SurvivorMerged { survivor, into } => {
            tracing::info!(%merged, %survivor, %into, "unmerge refused: the survivor was merged since");
            Some(ActionError::UnmergeLater)
        }
    };
    Ok(back(&f.conv, f.qs.as_deref(), err))
}

// ----- presence ---------------------------------------------------------------------------

#[derive(Deserialize)]
pub struct PresenceForm {
    state: String,
    next: Option<String>,
}

pub async fn set_presence(
    State(st): State<Arc<WebState>>,
    user: CurrentUser,
    Form(f): Form<PresenceForm>,
) -> Result<Response, WebError> {
    let presence = match f.state.as_str() {
        "available" => Presence::Available,
        "busy" => Presence::Busy,
        "away" => Presence::Away,
        "offline" => Presence::Offline,
        other => return Err(WebError::BadRequest(format!("unknown presence {other:?}"))),
    };
    st.routing
        .command(Command::SetPresence {
            agent: AgentId::new(user.agent_id.clone()),
            presence,
        })
        .await?;
    audit::record(&st.store, &user.login, "presence", &user.agent_id, &f.state).await;
    let next = crate::http::html::safe_next(f.next.as_deref(), "/desk");
    let mut r = Redirect::to(&next).into_response();
    *r.status_mut() = StatusCode::SEE_OTHER;
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::i18n::{ALL, Tr};

    #[test]
    fn every_action_error_has_a_message_in_every_language() {
        for e in ActionError::ALL {
            assert_eq!(ActionError::parse(e.code()), Some(e));
            for locale in ALL {
                let text = Tr::new(locale, "UTC").t(e.key()).to_string();
                assert_ne!(text, e.key(), "{} lacks {}", locale.code(), e.key());
            }
        }
        assert_eq!(ActionError::parse("<b>pay here</b>"), None);
    }
}
