//! Routing inside one running mgmt: configuration, presence, live assignment
//! of inbound SMS, capacity, transfers, the audit trail, replay after a
//! restart, errors and authorisation.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{Mgmt, http, wait_for};
use crossline_mgmt::config::Config;
use crossline_mgmt::server;
use serde_json::{Value, json};

fn config() -> Value {
    json!({
        "default_queue": "sms",
        "agents": [
            { "id": "ana", "team": "front", "capacity": { "sms": 1 } },
            { "id": "bob", "team": "front", "capacity": { "sms": 1 } }
        ],
        "queues": [
            { "id": "sms", "members": { "teams": ["front"] } },
            { "id": "vip", "members": { "agents": ["bob"] } }
        ]
    })
}

async fn put(m: &Mgmt, path: &str, body: &Value) -> (u16, Value) {
    m.request("PUT", path, Some(&body.to_string())).await
}

async fn configure(m: &Mgmt) {
    let (s, v) = put(m, "/api/v1/routing/config", &config()).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["version"], 1);
}

/// The routing view of conversation `id` once `pred` holds.
async fn wait_routed(m: &Mgmt, id: &str, pred: impl Fn(&Value) -> bool) -> Value {
    let path = format!("/api/v1/routing/conversations/{id}");
    wait_for(|| async {
        let (s, v) = m.get(&path).await;
        (s == 200 && pred(&v)).then_some(v)
    })
    .await
}

/// The SMS conversation of `number` once it exists.
async fn conversation_of(m: &Mgmt, number: &str) -> String {
    let list = m
        .wait_list(&format!("?number={}", number.replace('+', "%2B")), |l| {
            l.len() == 1
        })
        .await;
    list[0]["id"].as_str().unwrap().to_string()
}

fn agent<'a>(agents: &'a Value, id: &str) -> &'a Value {
    agents
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["id"] == id)
        .unwrap()
}

fn assigned_to(decisions: &Value, conversation: &str) -> Option<String> {
    decisions.as_array().unwrap().iter().find_map(|d| {
        let f = d.get("fact").unwrap_or(d);
        (f["type"] == "assigned" && f["conversation"] == conversation)
            .then(|| f["agent"].as_str().unwrap().to_string())
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inbound_sms_is_routed_live_within_capacity_and_survives_a_restart() {
    let mut m = Mgmt::start().await;
    configure(&m).await;
    let mut dev = m.device("branch-kyiv").await;

    // Only ana is available: the first customer goes to her, with the reason.
    let (s, v) = put(
        &m,
        "/api/v1/agents/ana/presence",
        &json!({"state": "available"}),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["agent"]["presence"]["state"], "available");
    assert_eq!(v["decisions"][0]["fact"]["type"], "presence_changed");

    dev.sms("gsm0", "+380501110001", "Добрий день").await;
    let a = conversation_of(&m, "+380501110001").await;
    let view = wait_routed(&m, &a, |v| v["state"]["state"] == "active").await;
    assert_eq!(view["agent"], "ana");
    assert_eq!(view["queue"], "sms");
    assert_eq!(view["channel"], "sms");

    let (s, trail) = m
        .get(&format!("/api/v1/routing/decisions?conversation={a}"))
        .await;
    assert_eq!(s, 200, "{trail}");
    let facts: Vec<&Value> = trail["decisions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| &d["fact"])
        .collect();
    assert_eq!(facts[0]["type"], "arrived");
    assert_eq!(facts[0]["channel"], "sms");
    let assigned = facts.iter().find(|f| f["type"] == "assigned").unwrap();
    assert_eq!(assigned["agent"], "ana");
    assert_eq!(
        assigned["reason"],
        json!({"why": "queue", "queue": "sms", "step": 0})
    );
    assert!(
        trail["decisions"]
            .as_array()
            .unwrap()
            .iter()
            .all(|d| d["conversation"] == a.as_str())
    );

    let (_, agents) = m.get("/api/v1/agents").await;
    assert_eq!(agent(&agents, "ana")["load"]["sms"], 1);
    assert_eq!(agent(&agents, "ana")["capacity"]["sms"], 1);
    assert_eq!(agent(&agents, "ana")["conversations"], json!([a]));
    assert_eq!(agent(&agents, "bob")["presence"]["state"], "offline");

    // SMS capacity 1: a second customer waits, although ana is available.
    dev.sms("gsm0", "+380501110002", "Є питання").await;
    let b = conversation_of(&m, "+380501110002").await;
    wait_routed(&m, &b, |v| v["state"]["state"] == "waiting").await;
    let (_, queues) = m.get("/api/v1/queues").await;
    let sms = &queues[0];
    assert_eq!(sms["id"], "sms");
    assert_eq!(sms["waiting"], 1);
    assert_eq!(sms["conversations"], json!([b]));
    assert!(sms["longest_wait_ms"].as_u64().is_some());

    // Bob going available picks the waiting conversation up at once.
    let (s, v) = put(
        &m,
        "/api/v1/agents/bob/presence",
        &json!({"state": "available"}),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(assigned_to(&v["decisions"], &b).as_deref(), Some("bob"));
    assert_eq!(v["agent"]["load"]["sms"], 1);
    let view = wait_routed(&m, &b, |_| true).await;
    assert_eq!(view["agent"], "bob");

    // Both full: a third customer waits; nobody goes over capacity.
    dev.sms("gsm1", "+380501110003", "Третій").await;
    let c = conversation_of(&m, "+380501110003").await;
    wait_routed(&m, &c, |v| v["state"]["state"] == "waiting").await;
    let (_, agents) = m.get("/api/v1/agents").await;
    for a in agents.as_array().unwrap() {
        assert_eq!(a["load"]["sms"], 1, "{a}");
    }

    // Ana resolves hers: the waiting one goes to her.
    let (s, v) = m
        .post(
            "/api/v1/routing/commands",
            &json!({"cmd": "resolve", "conversation": a}).to_string(),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["conversation"]["state"]["state"], "resolved");
    assert_eq!(assigned_to(&v["decisions"], &c).as_deref(), Some("ana"));

    // Transfer bob's conversation to the vip queue (bob is its only member,
    // and he just freed himself by the transfer: it comes back to him).
    let (s, v) = m
        .post(
            &format!("/api/v1/conversations/{b}/assign"),
            &json!({"queue": "vip"}).to_string(),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["conversation"]["queue"], "vip");
    assert_eq!(v["conversation"]["agent"], "bob");
    // Assign to an agent who is full: reserved for her.
    let (s, v) = m
        .post(
            &format!("/api/v1/conversations/{b}/assign"),
            &json!({"agent": "ana"}).to_string(),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["conversation"]["state"]["state"], "reserved");
    assert_eq!(v["conversation"]["agent"], "ana");

    // Unknown agent / conversation / queue: 404.
    let (s, v) = m
        .post(
            &format!("/api/v1/conversations/{c}/assign"),
            &json!({"agent": "zoe"}).to_string(),
        )
        .await;
    assert_eq!(
        (s, v["error"].as_str()),
        (404, Some("unknown_agent")),
        "{v}"
    );
    let (s, v) = put(
        &m,
        "/api/v1/agents/zoe/presence",
        &json!({"state": "available"}),
    )
    .await;
    assert_eq!(
        (s, v["error"].as_str()),
        (404, Some("unknown_agent")),
        "{v}"
    );
    let (s, _) = m.get("/api/v1/agents/zoe").await;
    assert_eq!(s, 404);
    let (s, v) = m
        .post(
            &format!("/api/v1/conversations/{c}/assign"),
            &json!({"queue": "nope"}).to_string(),
        )
        .await;
    assert_eq!(
        (s, v["error"].as_str()),
        (404, Some("unknown_queue")),
        "{v}"
    );
    let (s, v) = m
        .post(
            &format!("/api/v1/conversations/{}/assign", uuid_like()),
            &json!({"agent": "ana"}).to_string(),
        )
        .await;
    assert_eq!((s, v["error"].as_str()), (404, Some("not_found")), "{v}");
    let (s, v) = m
        .post(
            &format!("/api/v1/conversations/{c}/assign"),
            &json!({"agent": "ana", "queue": "sms"}).to_string(),
        )
        .await;
    assert_eq!(s, 422, "{v}");
    let (s, v) = put(
        &m,
        "/api/v1/agents/ana/presence",
        &json!({"state": "asleep"}),
    )
    .await;
    assert_eq!(s, 422, "{v}");

    // Metrics over the log.
    let (s, v) = m.get("/api/v1/metrics/routing?from=0").await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["plain"]["total"]["offered"], 3, "{v}");
    assert_eq!(v["plain"]["total"]["answered"], 3, "{v}");
    assert_eq!(v["plain"]["total"]["resolved"], 1, "{v}");

    // Restart on the same data dir: the same state from the log.
    let (_, agents_before) = m.get("/api/v1/agents").await;
    let mut views_before = Vec::new();
    for id in [&a, &b, &c] {
        views_before.push(
            m.get(&format!("/api/v1/routing/conversations/{id}"))
                .await
                .1,
        );
    }
    let (_, queues_before) = m.get("/api/v1/queues").await;
    let (_, trail_before) = m.get("/api/v1/routing/decisions").await;
    let data_dir = m.running().store.path().parent().unwrap().to_path_buf();
    drop(dev);
    m.running.take().unwrap().stop().await;

    let mut cfg: Config = toml::from_str("").unwrap();
    cfg.data_dir = data_dir;
    cfg.listen_on_free_loopback_ports();
    let running = server::start(cfg).await.unwrap();
    let addr = running.http_addr.to_string();
    let get = |path: String| {
        let (addr, token) = (addr.clone(), running.api_token.clone());
        async move {
            let (s, b) = http(&addr, "GET", &path, Some(&token), None).await;
            (s, serde_json::from_slice::<Value>(&b).unwrap())
        }
    };
    let (s, agents_after) = get("/api/v1/agents".into()).await;
    assert_eq!(s, 200, "{agents_after}");
    assert_eq!(agents_after, agents_before);
    for (id, before) in [&a, &b, &c].into_iter().zip(&views_before) {
        let (_, after) = get(format!("/api/v1/routing/conversations/{id}")).await;
        assert_eq!(&after, before);
    }
    let (_, trail_after) = get("/api/v1/routing/decisions".into()).await;
    assert_eq!(trail_after, trail_before);
    let (_, queues_after) = get("/api/v1/queues".into()).await;
    assert_eq!(
        queues_after[0]["conversations"],
        queues_before[0]["conversations"]
    );
    let (_, cfg_after) = get("/api/v1/routing/config".into()).await;
    assert_eq!(cfg_after["version"], 1);
    running.stop().await;
}

fn uuid_like() -> String {
    crossline_core::ConversationId::new().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configuration_is_validated_and_changes_must_fit_the_log() {
    let m = Mgmt::start().await;
    // Nothing installed yet: the default routing, without agents (no users).
    let (s, v) = m.get("/api/v1/routing/config").await;
    assert_eq!(s, 200, "{v}");
    assert_eq!((&v["version"], &v["default"]), (&json!(0), &json!(true)));
    assert_eq!(v["config"]["default_queue"], "default");
    let (s, agents) = m.get("/api/v1/agents").await;
    assert_eq!((s, agents), (200, json!([])));

    // A queue naming an agent who does not exist: 422 with the engine's reason.
    let mut bad = config();
    bad["queues"][1]["members"]["agents"] = json!(["zoe"]);
    let (s, v) = put(&m, "/api/v1/routing/config", &bad).await;
    assert_eq!(
        (s, v["error"].as_str()),
        (422, Some("invalid_config")),
        "{v}"
    );
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .contains("queue vip lists agent zoe, who is not configured"),
        "{v}"
    );
    // Unknown fields and malformed JSON: 422 too.
    let mut bad = config();
    bad["agents"][0]["capacity"]["fax"] = json!(1);
    let (s, v) = put(&m, "/api/v1/routing/config", &bad).await;
    assert_eq!(s, 422, "{v}");
    assert!(v["message"].as_str().unwrap().contains("fax"), "{v}");
    let (s, _) = m
        .request("PUT", "/api/v1/routing/config", Some("{\"agents\": ["))
        .await;
    assert_eq!(s, 422);

    configure(&m).await;
    let (s, v) = m.get("/api/v1/routing/config").await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["default"], false);
    assert_eq!(v["config"]["agents"][1]["id"], "bob");

    // Bob has a logged presence: a config without him does not fit the log.
    let (s, _) = put(&m, "/api/v1/agents/bob/presence", &json!({"state": "busy"})).await;
    assert_eq!(s, 200);
    let mut without_bob = config();
    without_bob["agents"] = json!([config()["agents"][0]]);
    without_bob["queues"] = json!([{ "id": "sms", "members": { "teams": ["front"] } }]);
    let (s, v) = put(&m, "/api/v1/routing/config", &without_bob).await;
    assert_eq!(
        (s, v["error"].as_str()),
        (409, Some("incompatible_config")),
        "{v}"
    );
    // ... unless routing starts afresh.
    let (s, v) = put(&m, "/api/v1/routing/config?reset=true", &without_bob).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["version"], 2);
    let (_, agents) = m.get("/api/v1/agents").await;
    assert_eq!(agents.as_array().unwrap().len(), 1);
    // A compatible change keeps the state.
    let (s, _) = put(&m, "/api/v1/agents/ana/presence", &json!({"state": "away"})).await;
    assert_eq!(s, 200);
    let mut more = without_bob.clone();
    more["wrap_up_ms"] = json!(5000);
    let (s, v) = put(&m, "/api/v1/routing/config", &more).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["version"], 3);
    let (_, a) = m.get("/api/v1/agents/ana").await;
    assert_eq!(a["presence"]["state"], "away");
    m.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_routing_endpoint_needs_the_token_and_is_documented() {
    let m = Mgmt::start().await;
    configure(&m).await;
    let id = uuid_like();
    let endpoints = [
        ("GET", "/api/v1/routing/config".to_string(), None),
        (
            "PUT",
            "/api/v1/routing/config".to_string(),
            Some(config().to_string()),
        ),
        (
            "POST",
            "/api/v1/routing/commands".to_string(),
            Some("{\"cmd\":\"tick\"}".to_string()),
        ),
        ("GET", "/api/v1/routing/decisions".to_string(), None),
        ("GET", format!("/api/v1/routing/conversations/{id}"), None),
        ("GET", "/api/v1/agents".to_string(), None),
        ("GET", "/api/v1/agents/ana".to_string(), None),
        (
            "PUT",
            "/api/v1/agents/ana/presence".to_string(),
            Some("{\"state\":\"available\"}".to_string()),
        ),
        ("GET", "/api/v1/queues".to_string(), None),
        (
            "POST",
            format!("/api/v1/conversations/{id}/assign"),
            Some("{\"agent\":\"ana\"}".to_string()),
        ),
        ("GET", "/api/v1/metrics/routing".to_string(), None),
    ];
    for (method, path, body) in &endpoints {
        for token in [None, Some("wrong")] {
            let (s, b) = http(&m.http, method, path, token, body.as_deref()).await;
            assert_eq!(
                s,
                401,
                "{method} {path} {token:?}: {}",
                String::from_utf8_lossy(&b)
            );
        }
    }
    // Nothing changed: ana is still offline.
    let (_, a) = m.get("/api/v1/agents/ana").await;
    assert_eq!(a["presence"]["state"], "offline");

    let (s, doc) = m.get("/api/v1/openapi.json").await;
    assert_eq!(s, 200);
    for p in [
        "/api/v1/routing/config",
        "/api/v1/routing/commands",
        "/api/v1/routing/decisions",
        "/api/v1/routing/conversations/{id}",
        "/api/v1/agents",
        "/api/v1/agents/{id}",
        "/api/v1/agents/{id}/presence",
        "/api/v1/queues",
        "/api/v1/conversations/{id}/assign",
        "/api/v1/metrics/routing",
        "/api/v1/conversations",
    ] {
        assert!(doc["paths"].get(p).is_some(), "{p} missing from OpenAPI");
    }
    assert!(doc["paths"]["/api/v1/routing/config"].get("put").is_some());
    m.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replies_and_resolves_through_the_conversations_api_reach_routing() {
    let m = Mgmt::start().await;
    configure(&m).await;
    let mut dev = m.device("branch-lviv").await;
    let (s, _) = put(
        &m,
        "/api/v1/agents/ana/presence",
        &json!({"state": "available"}),
    )
    .await;
    assert_eq!(s, 200);
    dev.sms("gsm0", "+380501110011", "Перше").await;
    let a = conversation_of(&m, "+380501110011").await;
    wait_routed(&m, &a, |v| v["agent"] == "ana").await;
    dev.sms("gsm0", "+380501110012", "Друге").await;
    let b = conversation_of(&m, "+380501110012").await;
    wait_routed(&m, &b, |v| v["state"]["state"] == "waiting").await;

    // A reply counts as the agent's (first) response.
    let (s, v) = m
        .post(
            &format!("/api/v1/conversations/{a}/replies"),
            &json!({"text": "Вітаю"}).to_string(),
        )
        .await;
    assert_eq!(s, 202, "{v}");
    wait_for(|| async {
        let (_, t) = m
            .get(&format!("/api/v1/routing/decisions?conversation={a}"))
            .await;
        t["decisions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d["fact"]["type"] == "responded" && d["fact"]["first"] == true)
            .then_some(())
    })
    .await;

    // Resolving it frees ana, who takes the waiting one.
    let (s, v) = m
        .post(&format!("/api/v1/conversations/{a}/resolve"), "")
        .await;
    assert_eq!(s, 200, "{v}");
    wait_routed(&m, &b, |v| {
        v["agent"] == "ana" && v["state"]["state"] == "active"
    })
    .await;
    let view = wait_routed(&m, &a, |_| true).await;
    assert_eq!(view["state"]["state"], "resolved");
    m.stop().await;
}

/// A fresh install routes without any configuration: one queue `default`
/// for every line with every agent a member, agents added while mgmt runs
/// included; the first installed configuration replaces it and routes the
/// open conversations again by its own rules.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fresh_install_routes_by_the_default_until_a_config_is_installed() {
    use crossline_mgmt::services::users::auth::{self, NewUser, Role};
    let m = Mgmt::start().await;
    let add_agent = |login: &'static str| {
        let store = m.running().store.clone();
        async move {
            let u = NewUser {
                login: login.into(),
                name: login.into(),
                role: Role::Agent,
                agent_id: None,
                sites: Vec::new(),
                teams: Vec::new(),
                locale: None,
                time_zone: None,
            };
            let hash = auth::hash_password("password-1").unwrap();
            auth::insert_user(&store, &u, &hash).await.unwrap();
        }
    };
    let mut dev = m.device("branch-odesa").await;
    dev.sms("gsm0", "+380501110021", "Ще до налаштування").await;
    let a = conversation_of(&m, "+380501110021").await;
    let view = wait_routed(&m, &a, |_| true).await;
    assert_eq!(
        (&view["queue"], &view["state"]["state"]),
        (&json!("default"), &json!("waiting")),
        "{view}"
    );

    // Agents added while mgmt runs (as `crossline-mgmt user add` does) are
    // members as soon as they appear; they start offline.
    add_agent("ana").await;
    add_agent("bob").await;
    let (s, v) = m.get("/api/v1/agents/bob").await;
    assert_eq!(s, 404, "not known before she acts: {v}");
    let (s, v) = put(
        &m,
        "/api/v1/agents/bob/presence",
        &json!({"state": "available"}),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(assigned_to(&v["decisions"], &a).as_deref(), Some("bob"));
    let (_, cfg) = m.get("/api/v1/routing/config").await;
    assert_eq!(cfg["default"], true);
    assert_eq!(
        cfg["config"]["queues"][0]["members"]["agents"],
        json!(["ana", "bob"])
    );
    dev.sms("gsm1", "+380501110022", "Інша лінія").await;
    let b = conversation_of(&m, "+380501110022").await;
    let view = wait_routed(&m, &b, |v| v["agent"] == "bob").await;
    assert_eq!(view["queue"], "default");

    // The first installed configuration replaces the default (its queue
    // `default` is gone): routing starts afresh and routes the open ones by
    // the new rules.
    configure(&m).await;
    let view = wait_routed(&m, &a, |v| v["queue"] == "sms").await;
    assert_eq!(view["state"]["state"], "waiting", "{view}");
    let (_, v) = put(
        &m,
        "/api/v1/agents/bob/presence",
        &json!({"state": "available"}),
    )
    .await;
    assert_eq!(assigned_to(&v["decisions"], &a).as_deref(), Some("bob"));
    m.stop().await;
}

/// Entry rules on `language` see the language of the customer's text.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entry_rules_on_language_match_the_customers_text() {
    let m = Mgmt::start().await;
    let mut cfg = config();
    cfg["queues"] = json!([
        { "id": "sms", "members": { "teams": ["front"] } },
        { "id": "ua", "members": { "agents": ["ana"] } },
        { "id": "ro", "members": { "agents": ["bob"] } }
    ]);
    cfg["rules"] = json!([
        { "when": { "language": "uk" }, "queue": "ua" },
        { "when": { "language": "ro" }, "queue": "ro" }
    ]);
    let (s, v) = put(&m, "/api/v1/routing/config", &cfg).await;
    assert_eq!(s, 200, "{v}");
    let mut dev = m.device("branch-chernivtsi").await;
    for (number, text, queue) in [
        ("+380501110031", "Добрий день, коли відкриваєтесь?", "ua"),
        ("+40721110032", "Bună ziua, aș dori o programare.", "ro"),
        ("+380501110033", "Hello, is my order ready?", "sms"),
    ] {
        dev.sms("gsm0", number, text).await;
        let c = conversation_of(&m, number).await;
        let view = wait_routed(&m, &c, |_| true).await;
        assert_eq!(view["queue"], queue, "{text}: {view}");
    }
    m.stop().await;
}

/// A resolved conversation is closed after the configured quiet period:
/// routing forgets it and logs `closed`; one reopened in time is kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resolved_conversations_are_closed_after_the_quiet_period() {
    let m = Mgmt::start().await;
    let mut cfg = config();
    cfg["close_after_ms"] = json!(1_500);
    let (s, v) = put(&m, "/api/v1/routing/config", &cfg).await;
    assert_eq!(s, 200, "{v}");
    let mut dev = m.device("branch-rivne").await;
    dev.sms("gsm0", "+380501110041", "Дякую, все вирішено")
        .await;
    let a = conversation_of(&m, "+380501110041").await;
    wait_routed(&m, &a, |_| true).await;
    let (s, v) = m
        .post(&format!("/api/v1/conversations/{a}/resolve"), "")
        .await;
    assert_eq!(s, 200, "{v}");
    wait_routed(&m, &a, |v| v["state"]["state"] == "resolved").await;
    wait_for(|| async {
        let (s, _) = m.get(&format!("/api/v1/routing/conversations/{a}")).await;
        (s == 404).then_some(())
    })
    .await;
    let (_, trail) = m
        .get(&format!("/api/v1/routing/decisions?conversation={a}"))
        .await;
    let facts: Vec<&Value> = trail["decisions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| &d["fact"]["type"])
        .collect();
    assert_eq!(
        facts.last().map(|f| f.as_str()),
        Some(Some("closed")),
        "{trail}"
    );
    // Its customer writes again: a new conversation, routed afresh.
    dev.sms("gsm0", "+380501110041", "Ще одне питання").await;
    let list = m
        .wait_list("?number=%2B380501110041", |l| l.len() == 2)
        .await;
    let b = list[0]["id"].as_str().unwrap().to_string();
    assert_ne!(a, b);
    wait_routed(&m, &b, |v| v["state"]["state"] == "waiting").await;
    m.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timers_fire_live_overflow_moves_a_waiting_conversation() {
    let m = Mgmt::start().await;
    let mut cfg = config();
    cfg["queues"][0]["overflow"] = json!({"after_ms": 300, "to": "vip"});
    let (s, v) = put(&m, "/api/v1/routing/config", &cfg).await;
    assert_eq!(s, 200, "{v}");
    let mut dev = m.device("branch-dnipro").await;
    dev.sms("gsm0", "+380501110031", "Чекаю").await;
    let a = conversation_of(&m, "+380501110031").await;
    // Nobody is available: after 300 ms in `sms` it moves to `vip`, keeping its age.
    let view = wait_routed(&m, &a, |v| v["queue"] == "vip").await;
    assert_eq!(view["state"]["state"], "waiting");
    let (_, trail) = m
        .get(&format!("/api/v1/routing/decisions?conversation={a}"))
        .await;
    let queued: Vec<&Value> = trail["decisions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| &d["fact"])
        .filter(|f| f["type"] == "queued")
        .collect();
    assert_eq!(queued.len(), 2, "{trail}");
    assert_eq!(
        queued[1]["reason"],
        json!({"why": "overflow", "from": "sms"})
    );
    assert_eq!(queued[1]["age"], queued[0]["age"]);
    let (_, queues) = m.get("/api/v1/queues").await;
    assert_eq!(queues[0]["waiting"], 0);
    assert_eq!(queues[1]["conversations"], json!([a]));
    m.stop().await;
}

/// Outside the site's business hours a queue with an auto-reply action gets
/// the customer that text by SMS, on the line they wrote to, once per
/// arrival, logged as a decision and shown in the timeline.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outside_business_hours_the_customer_gets_the_auto_reply() {
    let m = Mgmt::start().await;
    // A site that is never open: no weekly intervals at all.
    let cfg = json!({
        "default_queue": "sms",
        "agents": [ { "id": "ana", "team": "front", "site": "kyiv" } ],
        "queues": [ {
            "id": "sms",
            "members": { "teams": ["front"] },
            "site": "kyiv",
            "outside_hours": { "action": "auto_reply", "text": "Ми працюємо з 9:00. Відповімо зранку!" }
        } ],
        "sites": [ { "id": "kyiv", "hours": { "time_zone": "Europe/Kyiv", "week": {} } } ]
    });
    let (s, v) = put(&m, "/api/v1/routing/config", &cfg).await;
    assert_eq!(s, 200, "{v}");
    let mut dev = m.device("branch-night").await;
    dev.sms("gsm1", "+380501119999", "Ви ще працюєте?").await;

    let cmd = tokio::time::timeout(std::time::Duration::from_secs(20), dev.next_command())
        .await
        .expect("the auto-reply command reaches the appliance");
    let crossline_proto::CommandKind::SendSms { line, to, text } = &cmd.kind else {
        panic!("not an SMS command: {cmd:?}")
    };
    assert_eq!(line, "gsm1");
    assert_eq!(to, "+380501119999");
    assert_eq!(text, "Ми працюємо з 9:00. Відповімо зранку!");

    let a = conversation_of(&m, "+380501119999").await;
    let (s, trail) = m
        .get(&format!("/api/v1/routing/decisions?conversation={a}"))
        .await;
    assert_eq!(s, 200, "{trail}");
    assert!(
        trail["decisions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d["fact"]["type"] == "outside_hours"),
        "{trail}"
    );
    let conv = m
        .wait_conversation(&a, |c| {
            c["timeline"].as_array().is_some_and(|t| {
                t.iter()
                    .any(|e| e["kind"] == "reply" && e["author"] == "outside-hours")
            })
        })
        .await;
    assert_eq!(
        conv["status"], "open",
        "the conversation still waits for an agent"
    );
    m.stop().await;
}
