//! `crossline-bench web`: the web UI at scale. mgmt (in this process) with a
//! database of `conversations` SMS conversations of `per` messages each
//! (100,000 × 10 = 1,000,000 by default), routed by a configured routing
//! engine; then
//! * server-side render time of the agent inbox, the supervisor's "all"
//!   inbox and the conversation view: real HTTP GETs on loopback with a
//!   session cookie, one at a time, p50/p99;
//! * live-update latency with `agents` desk streams connected
//!   (`/desk/stream`, one session each): from the commit of a new customer
//!   message to its `event: change` arriving at every stream.

use crate::http::{pct, time_get};
use anyhow::{Context, Result, bail};
use crossline_core::{Channel, Event, EventBody, EventId, Hlc, NodeId};
use crossline_mgmt::bus::Update;
use crossline_mgmt::clock::now_ms;
use crossline_mgmt::services::users::auth::{self, NewUser, Role};
use crossline_store::EventLog;
use std::collections::HashMap;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

pub struct Options {
    pub conversations: usize,
    pub per: usize,
    pub agents: usize,
    /// Measured requests per page.
    pub samples: usize,
    /// New messages timed through the live stream.
    pub live: usize,
}

pub struct Figures {
    pub conversations: usize,
    pub messages: usize,
    pub ingest: Duration,
    pub routed: Duration,
    pub db_mb: f64,
    /// (what, p50, p99, bytes of the answer)
    pub pages: Vec<(String, Duration, Duration, usize)>,
    pub agents: usize,
    pub live: Vec<Duration>,
    pub live_samples: usize,
}

const TEXTS: [&str; 4] = [
    "Добрий день! Коли ви працюєте в суботу?",
    "Здравствуйте, посылка 4711 уже пришла?",
    "Bună ziua, pot ridica coletul mâine?",
    "Hi, is my parcel at the branch yet?",
];

fn message(origin: &NodeId, seq: u64, at_ms: u64, contact: usize, text: &str) -> Event {
    Event {
        id: EventId::new(),
        origin: origin.clone(),
        seq,
        at: Hlc { ms: at_ms, c: 0 },
        conversation: None,
        body: EventBody::MessageReceived {
            channel: Channel::Sms,
            line: if contact.is_multiple_of(2) {
                "gsm0"
            } else {
                "gsm1"
            }
            .into(),
            from: format!("+38050{contact:07}"),
            to: None,
            text: text.to_string(),
            sent_at: None,
            parts: 1,
            incomplete: false,
            key: None,
        },
    }
}

/// One GET with the session cookie; (status, body bytes).
pub async fn run(o: &Options) -> Result<Figures> {
    let tmp = tempfile::tempdir()?;
    let mut cfg: crossline_mgmt::config::Config = toml::from_str("")?;
    cfg.data_dir = tmp.path().join("mgmt");
    cfg.listen_on_free_loopback_ports();
    let running = crossline_mgmt::server::start(cfg.clone()).await?;
    let addr = running.http_addr.to_string();
    let store = running.store.clone();

    // 1. The history: `conversations` contacts, `per` messages each, in the past.
    let origin = NodeId::new("bench-branch")?;
    let total = o.conversations * o.per;
    let base = now_ms().saturating_sub(total as u64 * 10 + 3_600_000);
    let t = Instant::now();
    let mut seq = 0u64;
    let mut batch = Vec::with_capacity(2000);
    for j in 0..total {
        seq += 1;
        let contact = j % o.conversations;
        batch.push(message(
            &origin,
            seq,
            base + j as u64 * 10,
            contact,
            TEXTS[j % TEXTS.len()],
        ));
        if batch.len() == 2000 {
            store.ingest(&origin, std::mem::take(&mut batch)).await?;
        }
        if j % 100_000 == 99_999 {
            eprintln!(
                "  {} messages stored ({:.0}/s)",
                j + 1,
                (j + 1) as f64 / t.elapsed().as_secs_f64()
            );
        }
    }
    if !batch.is_empty() {
        store.ingest(&origin, batch).await?;
    }
    let ingest = t.elapsed();
    eprintln!("history: {total} messages in {ingest:.1?}");

    // 2. Routing: two teams of 10 agents; the open conversations are routed
    //    (80 assigned, the rest wait) when the config is installed.
    let t = Instant::now();
    let agents: Vec<serde_json::Value> = (0..20)
        .map(|i| {
            serde_json::json!({"id": format!("a{i}"), "team": if i < 10 { "north" } else { "south" }})
        })
        .collect();
    let config: crossline_core::routing::RoutingConfig = serde_json::from_value(
        serde_json::json!({
            "default_queue": "north",
            "agents": agents,
            "queues": [
                {"id": "north", "members": {"teams": ["north"]}, "sla": {"first_response_ms": 300000}},
                {"id": "south", "members": {"teams": ["south"]}, "sla": {"first_response_ms": 300000}}
            ],
            "rules": [
                {"when": {"line": "gsm0"}, "queue": "north"},
                {"when": {"line": "gsm1"}, "queue": "south"}
            ]
        }),
    )?;
    running.routing.set_config(config, false).await?;
    for i in 0..20 {
        running
            .routing
            .command(crossline_core::routing::Command::SetPresence {
                agent: crossline_core::routing::AgentId::new(format!("a{i}")),
                presence: crossline_core::routing::Presence::Available,
            })
            .await?;
    }
    let known = running
        .routing
        .query(|r| r.map(|(r, _)| r.conversations().count()).unwrap_or(0))
        .await?;
    let routed = t.elapsed();
    eprintln!("routing: {known} conversations routed in {routed:.1?}");
    if known < o.conversations {
        bail!("routing knows {known} of {} conversations", o.conversations);
    }

    // 3. Users and sessions: agent a0 (team north), a supervisor, and
    //    `agents` desk users of team north for the live streams.
    let hash = auth::hash_password("bench-password-1")?;
    let n_agents = o.agents;
    let mk = |login: String, role: Role, teams: Vec<String>| NewUser {
        login,
        name: "bench".into(),
        role,
        agent_id: None,
        sites: Vec::new(),
        teams,
        locale: None,
        time_zone: Some("Europe/Kyiv".into()),
    };
    let mut users = vec![
        mk("a0".into(), Role::Agent, vec![]),
        mk("sup".into(), Role::Supervisor, vec![]),
    ];
    users
        .extend((0..n_agents).map(|i| mk(format!("viewer{i}"), Role::Agent, vec!["north".into()])));
    let mut ids = Vec::new();
    for u in &users {
        ids.push(auth::insert_user(&store, u, &hash).await?);
    }
    let mut cookies = Vec::new();
    for id in &ids {
        let token = auth::create_session(&store, *id, None).await?;
        cookies.push(format!(
            "{}={token}",
            crossline_mgmt::http::auth::SESSION_COOKIE
        ));
    }
    let (agent, sup) = (cookies[0].clone(), cookies[1].clone());

    // 4. Render times.
    let some_ids: Vec<String> = store
        .read(|conn| {
            let mut st = conn.prepare(
                "SELECT id FROM conversation WHERE device = 'bench-branch' ORDER BY random() LIMIT 500",
            )?;
            st.query_map([], |r| r.get(0))?.collect()
        })
        .await?;
    let mut pages = Vec::new();
    let n = o.samples;
    for (what, cookie, path) in [
        (
            "agent inbox, \"my teams\" (GET /desk/list?tab=teams)",
            &agent,
            "/desk/list?tab=teams",
        ),
        ("agent inbox page (GET /desk)", &agent, "/desk"),
        (
            "supervisor inbox, \"all\" (GET /desk/list?tab=all)",
            &sup,
            "/desk/list?tab=all",
        ),
    ] {
        let (p50, p99, bytes) = time_get(&addr, &format!("Cookie: {cookie}"), 5, n, |_| {
            path.to_string()
        })
        .await?;
        eprintln!("{what}: p50 {p50:.1?} p99 {p99:.1?}");
        pages.push((what.to_string(), p50, p99, bytes));
    }
    let what = "conversation view, 10 messages + inbox (GET /desk/c/{id})";
    let (p50, p99, bytes) = time_get(&addr, &format!("Cookie: {sup}"), 5, n, |i| {
        format!("/desk/c/{}", some_ids[i % some_ids.len().max(1)])
    })
    .await?;
    eprintln!("{what}: p50 {p50:.1?} p99 {p99:.1?}");
    pages.push((what.to_string(), p50, p99, bytes));

    // 5. Live: `agents` streams, then new customer messages one at a time.
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(usize, String, Instant)>();
    let (ready_tx, mut ready_rx) = tokio::sync::mpsc::unbounded_channel::<()>();
    for (k, cookie) in cookies.iter().skip(2).enumerate() {
        let (tx, ready, addr, cookie) =
            (tx.clone(), ready_tx.clone(), addr.clone(), cookie.clone());
        tokio::spawn(async move {
            let Ok(mut s) = TcpStream::connect(&addr).await else {
                return;
            };
            let req = format!(
                "GET /desk/stream HTTP/1.1\r\nHost: {addr}\r\nCookie: {cookie}\r\nAccept: text/event-stream\r\n\r\n"
            );
            if s.write_all(req.as_bytes()).await.is_err() {
                return;
            }
            let mut lines = BufReader::new(s).lines();
            let mut event = String::new();
            let mut announced = false;
            while let Ok(Some(line)) = lines.next_line().await {
                if !announced && line.is_empty() {
                    announced = true;
                    let _ = ready.send(());
                }
                if let Some(e) = line.strip_prefix("event: ") {
                    event = e.to_string();
                } else if let Some(d) = line.strip_prefix("data: ")
                    && event == "change"
                {
                    let _ = tx.send((k, d.to_string(), Instant::now()));
                }
            }
        });
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut connected = 0;
    while connected < n_agents {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, ready_rx.recv()).await {
            Ok(Some(())) => connected += 1,
            _ => bail!("only {connected} of {n_agents} streams connected within 60 s"),
        }
    }
    eprintln!("{connected} desk streams connected");
    let mut live = Vec::new();
    for k in 0..o.live {
        seq += 1;
        // A new customer on gsm0: queue north, visible to team north.
        let ev = message(
            &origin,
            seq,
            now_ms(),
            o.conversations + 2 * k,
            "live bench message",
        );
        let id = ev.id.to_string();
        let out = store.ingest(&origin, vec![ev.clone()]).await?;
        let committed = Instant::now();
        let _ = running.updates.send(Update::Stored {
            origin: origin.clone(),
            contiguous: out.contiguous,
            events: vec![ev],
        });
        let mut got: HashMap<usize, Instant> = HashMap::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        while got.len() < n_agents {
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, rx.recv()).await {
                Ok(Some((who, cid, at))) if cid == id => {
                    got.entry(who).or_insert(at);
                }
                Ok(Some(_)) => {}
                _ => bail!(
                    "message {k}: {} of {n_agents} streams told within 30 s",
                    got.len()
                ),
            }
        }
        live.extend(got.values().map(|at| at.duration_since(committed)));
    }
    live.sort_unstable();
    let db_mb = std::fs::metadata(cfg.db_path())
        .map(|m| m.len() as f64 / 1e6)
        .context("database size")?;
    running.stop().await;
    Ok(Figures {
        conversations: o.conversations,
        messages: total,
        ingest,
        routed,
        db_mb,
        pages,
        agents: n_agents,
        live_samples: o.live,
        live,
    })
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

pub fn section(f: &Figures) -> String {
    let mut s = format!(
        "## web\n\n`scripts/bench web` — the web UI with {} SMS conversations and {} messages in \
         mgmt's database ({:.0} MB; stored in {:.0} s, routed in {:.0} s: 20 agents in two teams, \
         80 conversations assigned, the rest waiting in two queues). mgmt runs in the benchmark's \
         process; requests are real HTTP on loopback, one at a time, with a session cookie; the \
         figure is the client's time from connect to the last byte. {} build, {} cores, a shared \
         machine (other builds may run), one run.\n\n\
         | page | p50 | p99 | answer |\n|---|---|---|---|\n",
        f.conversations,
        f.messages,
        f.db_mb,
        f.ingest.as_secs_f64(),
        f.routed.as_secs_f64(),
        if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        },
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0),
    );
    for (what, p50, p99, bytes) in &f.pages {
        s += &format!(
            "| {what} | {} | {} | {} kB |\n",
            ms(*p50),
            ms(*p99),
            bytes / 1000
        );
    }
    s += &format!(
        "\nLive updates: {} agents connected to `/desk/stream` (one session each, team north); \
         {} new customer messages one at a time, each timed from the commit of its event to the \
         `event: change` line at every stream ({} deliveries): p50 {}, p99 {}, max {}. The path: \
         live announcement and routing (queue, decision logged), visibility resolved once per \
         change, then filtered per stream.\n\n\
         The agent inbox scans every conversation routing holds for the ones the agent may see \
         (here {} waiting), sorts them by priority and age and renders the first 200; the \
         supervisor's \"all\" view reads the newest 200 from the projection's index. The \
         conversation view reads its timeline, routing decisions, notes and the customer panel.\n\n\
         What to watch: the agent inbox costs one pass over every conversation routing holds, \
         inside the routing task; every live change makes each desk that may see it refetch its \
         list (coalesced per 150 ms in the browser). With many agents and a large backlog that \
         pass is the bottleneck; the next step is an index per queue and per agent in the engine \
         (or a projection of routing state) so a list reads only its own rows.\n",
        f.agents,
        f.live_samples,
        f.live.len(),
        ms(pct(&f.live, 0.5)),
        ms(pct(&f.live, 0.99)),
        ms(f.live.last().copied().unwrap_or_default()),
        f.conversations / 2,
    );
    s
}
