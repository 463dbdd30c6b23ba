//! The fleet JSON API: the device list at a size where it must page, and
//! the limits a device (or a flood of enrollments) meets: telemetry size and
//! rate, pending enrollments, numbers out of range, the status of a device
//! gone silent.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{Mgmt, http_with_head, wait_for};
use crossline_core::{ModemHealth, NodeId, SystemHealth};
use crossline_proto::{DeviceTopic, Hello, Kind, Telemetry, encode};
use crossline_store::DeviceRegistry;
use rumqttc::{AsyncClient, Event as MqttEvent, MqttOptions, Packet, QoS};
use serde_json::Value;
use std::time::Duration;
use tokio::sync::mpsc;

fn ids(body: &[u8]) -> Vec<String> {
    let v: Value = serde_json::from_slice(body).unwrap();
    v.as_array()
        .unwrap_or_else(|| panic!("not an array: {v}"))
        .iter()
        .map(|d| d["id"].as_str().unwrap().to_string())
        .collect()
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines()
        .find_map(|l| l.strip_prefix(&format!("{name}: ")))
        .map(str::trim)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn device_list_pages_filters_and_links_the_next_page() {
    let mgmt = Mgmt::start().await;
    let store = &mgmt.running().store;
    for i in 0..130 {
        let id = NodeId::new(format!("shop-{i:03}")).unwrap();
        store.put_device(&id, "$7$x").await.unwrap();
    }
    for i in [5, 17, 129] {
        let (s, v) = mgmt
            .post(
                &format!("/api/v1/fleet/devices/shop-{i:03}/meta"),
                r#"{"site":"kyiv"}"#,
            )
            .await;
        assert_eq!(s, 200, "{v}");
    }
    let get = |path: String| {
        let (addr, token) = (mgmt.http.clone(), mgmt.token.clone());
        async move { http_with_head(&addr, "GET", &path, Some(&token), None).await }
    };

    // Without parameters: the first 100, the total, a link to the rest.
    let (s, head, body) = get("/api/v1/fleet/devices".into()).await;
    assert_eq!(s, 200);
    let first = ids(&body);
    assert_eq!(first.len(), 100);
    assert_eq!(first[0], "shop-000");
    assert_eq!(header(&head, "x-total-count"), Some("130"));
    let link = header(&head, "link").expect("a link to the next page");
    assert_eq!(
        link,
        "</api/v1/fleet/devices?limit=100&offset=100>; rel=\"next\""
    );

    // Following it: the last 30, no further link.
    let (s, head, body) = get("/api/v1/fleet/devices?limit=100&offset=100".into()).await;
    assert_eq!(s, 200);
    let rest = ids(&body);
    assert_eq!(rest.len(), 30);
    assert_eq!(rest[0], "shop-100");
    assert!(header(&head, "link").is_none(), "{head}");
    let mut all: Vec<String> = first.into_iter().chain(rest).collect();
    all.dedup();
    assert_eq!(all.len(), 130, "every device exactly once across the pages");

    // Filters and sort apply before the cut and are kept in the link.
    let (s, head, body) =
        get("/api/v1/fleet/devices?site=kyiv&sort=id&dir=desc&limit=2".into()).await;
    assert_eq!(s, 200);
    assert_eq!(ids(&body), ["shop-129", "shop-017"]);
    assert_eq!(header(&head, "x-total-count"), Some("3"));
    assert_eq!(
        header(&head, "link"),
        Some("</api/v1/fleet/devices?site=kyiv&dir=desc&limit=2&offset=2>; rel=\"next\"")
    );
    let (_, _, body) = get("/api/v1/fleet/devices?q=shop-01&limit=1000".into()).await;
    assert_eq!(ids(&body).len(), 10);

    // A limit beyond the maximum is cut to it; nonsense is refused clearly.
    let (s, _, body) = get("/api/v1/fleet/devices?limit=100000".into()).await;
    assert_eq!(s, 200);
    assert_eq!(ids(&body).len(), 130);
    let (s, _, body) = get("/api/v1/fleet/devices?limit=ten".into()).await;
    assert_eq!(s, 400, "{}", String::from_utf8_lossy(&body));
    assert!(String::from_utf8_lossy(&body).contains("limit"));
    mgmt.stop().await;
}

/// An MQTT client playing a device (or an enrolling appliance) that may
/// publish anything on any kind, and sees its PUBACKs and what it receives.
struct Raw {
    client: AsyncClient,
    id: String,
    events: mpsc::UnboundedReceiver<Option<String>>,
}

impl Raw {
    /// Connects as `user` with `secret` and client id `id`, subscribed to
    /// `subscribe` (after every connect).
    async fn connect(port: u16, id: &str, user: &str, secret: &str, subscribe: Vec<String>) -> Raw {
        let mut opts = MqttOptions::new(id, "127.0.0.1", port);
        opts.set_credentials(user, secret);
        opts.set_keep_alive(Duration::from_secs(10));
        opts.set_max_packet_size(1 << 20, 1 << 20);
        let (client, mut el) = AsyncClient::new(opts, 1000);
        let (tx, events) = mpsc::unbounded_channel();
        let c2 = client.clone();
        tokio::spawn(async move {
            loop {
                match el.poll().await {
                    Ok(MqttEvent::Incoming(Packet::ConnAck(_))) => {
                        for f in &subscribe {
                            c2.subscribe(f.clone(), QoS::AtLeastOnce).await.unwrap();
                        }
                    }
                    // None: a PUBACK; Some(topic): a message received.
                    Ok(MqttEvent::Incoming(Packet::PubAck(_))) => {
                        let _ = tx.send(None);
                    }
                    Ok(MqttEvent::Incoming(Packet::Publish(p))) => {
                        let _ = tx.send(Some(p.topic.clone()));
                    }
                    Ok(_) => {}
                    Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                }
            }
        });
        Raw {
            client,
            id: id.to_string(),
            events,
        }
    }

    /// A device client of a device registered in mgmt's store.
    async fn device(mgmt: &Mgmt, id: &str) -> Raw {
        let node = NodeId::new(id).unwrap();
        let secret = crossline_mgmt::services::fleet::credentials::new_secret();
        let hash = crossline_mgmt::services::fleet::credentials::hash_secret(&secret).unwrap();
        mgmt.running().store.put_device(&node, &hash).await.unwrap();
        let ack = DeviceTopic::new(&node, Kind::Ack).to_string();
        Raw::connect(mgmt.mqtt_port, id, id, &secret, vec![ack]).await
    }

    fn topic(&self, kind: Kind) -> String {
        DeviceTopic::new(&NodeId::new(self.id.as_str()).unwrap(), kind).to_string()
    }

    /// Publishes (QoS 1) and waits for the broker's PUBACK: the broker has
    /// passed the message on to mgmt's session by then.
    async fn publish_acked(&mut self, topic: &str, payload: Vec<u8>) {
        self.client
            .publish(topic, QoS::AtLeastOnce, false, payload)
            .await
            .unwrap();
        self.next(|e| e.is_none()).await;
    }

    async fn next(&mut self, pred: impl Fn(&Option<String>) -> bool) {
        tokio::time::timeout(common::DEADLINE, async {
            loop {
                let e = self.events.recv().await.expect("client task ended");
                if pred(&e) {
                    return;
                }
            }
        })
        .await
        .expect("nothing within the deadline");
    }

    /// Says Hello and waits for mgmt's Ack: ingestion has handled every
    /// message this device published before (one session, in order).
    async fn sync(&mut self) {
        let hello = Hello {
            v: 1,
            head: 0,
            acked: 0,
            software: "test".into(),
        };
        let ack = self.topic(Kind::Ack);
        loop {
            self.client
                .publish(
                    self.topic(Kind::Hello),
                    QoS::AtLeastOnce,
                    false,
                    encode(&hello),
                )
                .await
                .unwrap();
            let got = tokio::time::timeout(Duration::from_millis(500), async {
                loop {
                    match self.events.recv().await {
                        Some(Some(t)) if t == ack => return,
                        Some(_) => {}
                        None => std::future::pending::<()>().await,
                    }
                }
            })
            .await;
            if got.is_ok() {
                return;
            }
        }
    }
}

fn telemetry(uptime_s: u64, modems: usize, disk: Option<f32>) -> Vec<u8> {
    encode(&Telemetry {
        v: 1,
        system: SystemHealth {
            uptime_s,
            version: "t".into(),
            load1: Some(0.5),
            disk_used_pct: disk,
            ..SystemHealth::default()
        },
        modems: (0..modems)
            .map(|i| ModemHealth {
                line: format!("gsm{i}"),
                signal_dbm: Some(-120),
                registered: false,
                sim: Some("ready".into()),
                ..ModemHealth::default()
            })
            .collect(),
    })
}

async fn count(mgmt: &Mgmt, sql: &'static str, device: &str) -> i64 {
    let d = device.to_string();
    mgmt.running()
        .store
        .read(move |c| c.query_row(sql, [d], |r| r.get::<_, i64>(0)))
        .await
        .unwrap()
}

/// A device once sent 2,000 modems in one telemetry message (40,000 rows,
/// 4,001 alerts) and could send as many messages as it liked. Too many
/// modems are refused (counted, logged) before anything is stored, and a
/// device's telemetry beyond its rate is dropped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn telemetry_is_bounded_per_message_and_per_device() {
    let mgmt = Mgmt::start_with(
        "[fleet]\ntick_ms = 100\ntelemetry_per_min = 1\ntelemetry_burst = 5\n\
         [fleet.alerts]\neval_s = 0.1\n",
    )
    .await;
    let mut a = Raw::device(&mgmt, "rogue").await;
    let mut b = Raw::device(&mgmt, "honest").await;
    a.sync().await;
    b.sync().await;

    let topic = a.topic(Kind::Telemetry);
    a.publish_acked(&topic, telemetry(1, 2000, None)).await;
    for i in 0..100 {
        a.publish_acked(&topic, telemetry(i, 0, None)).await;
    }
    a.sync().await;
    // b speaks after everything a sent was handled by ingestion; once b's
    // sample and its alert are stored, the fleet service went past a's too.
    let topic = b.topic(Kind::Telemetry);
    b.publish_acked(&topic, telemetry(1, 1, Some(99.0))).await;
    wait_for(|| async {
        let (s, v) = mgmt
            .get("/api/v1/fleet/alerts?open=true&device=honest")
            .await;
        assert_eq!(s, 200, "{v}");
        v.as_array()
            .unwrap()
            .iter()
            .any(|a| a["kind"] == "disk_full")
            .then_some(())
    })
    .await;

    let samples = count(
        &mgmt,
        "SELECT COUNT(*) FROM fleet_metric_raw WHERE device = ?1 AND series = 'load1'",
        "rogue",
    )
    .await;
    assert_eq!(samples, 5, "the burst only, then one a minute");
    let lines = count(
        &mgmt,
        "SELECT COUNT(*) FROM fleet_line WHERE device = ?1",
        "rogue",
    )
    .await;
    assert_eq!(lines, 0, "no row for the 2,000 modems");
    let alerts = count(
        &mgmt,
        "SELECT COUNT(*) FROM fleet_alert WHERE device = ?1",
        "rogue",
    )
    .await;
    assert_eq!(alerts, 0, "no alert for the 2,000 modems");
    let (_, _, metrics) =
        http_with_head(&mgmt.http, "GET", "/metrics", Some(&mgmt.token), None).await;
    let metrics = String::from_utf8_lossy(&metrics).into_owned();
    assert!(
        metrics.contains("crossline_payloads_rejected_total 1\n"),
        "{metrics}"
    );
    // The honest device's sample was kept, with its modem.
    let lines = count(
        &mgmt,
        "SELECT COUNT(*) FROM fleet_line WHERE device = ?1",
        "honest",
    )
    .await;
    assert_eq!(lines, 1);
    mgmt.stop().await;
}

/// A device silent for 22 minutes with an open offline alert showed
/// `online` (its session ended without a last will while mgmt was down).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_device_is_shown_offline_with_its_alert() {
    let mgmt = Mgmt::start_with(
        "[fleet.alerts]\neval_s = 0.1\nheartbeat_timeout_s = 180\noffline_after_s = 300\n",
    )
    .await;
    // Connected, but last heard from 22 minutes ago.
    let mut d = Raw::device(&mgmt, "quiet").await;
    let store = &mgmt.running().store;
    let node = NodeId::new("quiet").unwrap();
    let now = crossline_mgmt::clock::now_ms();
    store
        .set_presence(&node, true, now - 22 * 60 * 1000)
        .await
        .unwrap();
    wait_for(|| async {
        let (s, v) = mgmt.get("/api/v1/fleet/devices/quiet").await;
        assert_eq!(s, 200, "{v}");
        let alert = v["alerts"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["kind"] == "offline" && a["cleared_ms"].is_null());
        // The evaluation that raises the alert may have read the device
        // just before the one that marks it offline: both within a tick.
        (alert && v["device"]["online"] == false).then_some(())
    })
    .await;
    let (_, _, body) = http_with_head(
        &mgmt.http,
        "GET",
        "/api/v1/fleet/devices?status=online",
        Some(&mgmt.token),
        None,
    )
    .await;
    assert!(ids(&body).is_empty());
    let (_, _, body) = http_with_head(
        &mgmt.http,
        "GET",
        "/api/v1/fleet/devices?status=offline",
        Some(&mgmt.token),
        None,
    )
    .await;
    assert_eq!(ids(&body), ["quiet"]);

    // Heard from again: online.
    d.sync().await;
    let topic = d.topic(Kind::Telemetry);
    d.publish_acked(&topic, telemetry(1, 0, None)).await;
    wait_for(|| async {
        let (_, v) = mgmt.get("/api/v1/fleet/devices/quiet").await;
        (v["device"]["online"] == true).then_some(())
    })
    .await;
    mgmt.stop().await;
}

/// Numbers that do not fit are refused with a 4xx or a logged reason, never
/// wrapped: an applied configuration version of 2^64−1 was shown as −1,
/// `after=2^64−1` wrapped to −1 (every decision from the start), and so did
/// a fleet list `offset` (the first page again).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_range_numbers_are_refused_not_wrapped() {
    let mgmt = Mgmt::start().await;
    let mut a = Raw::device(&mgmt, "branch-a").await;
    let mut b = Raw::device(&mgmt, "branch-b").await;
    let reported = a.topic(Kind::Reported);
    // Repeated until recorded, as an appliance does after every connect
    // (mgmt's fleet service subscribes a moment after mgmt starts).
    let start = std::time::Instant::now();
    loop {
        a.publish_acked(&reported, br#"{"v":1,"applied":5}"#.to_vec())
            .await;
        let (_, v) = mgmt.get("/api/v1/fleet/devices/branch-a").await;
        if v["device"]["applied_version"] == 5 {
            break;
        }
        assert!(start.elapsed() < common::DEADLINE, "never recorded: {v}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    a.publish_acked(
        &reported,
        br#"{"v":1,"applied":18446744073709551615}"#.to_vec(),
    )
    .await;
    // The fleet service handles the broker's messages in order: once b's
    // report is recorded, a's second one was decided.
    let reported = b.topic(Kind::Reported);
    b.publish_acked(&reported, br#"{"v":1,"applied":7}"#.to_vec())
        .await;
    wait_for(|| async {
        let (_, v) = mgmt.get("/api/v1/fleet/devices/branch-b").await;
        (v["device"]["applied_version"] == 7).then_some(())
    })
    .await;
    let (_, v) = mgmt.get("/api/v1/fleet/devices/branch-a").await;
    assert_eq!(v["device"]["applied_version"], 5, "{v}");

    let (s, v) = mgmt
        .get("/api/v1/routing/decisions?after=18446744073709551615")
        .await;
    assert_eq!(s, 400, "{v}");
    assert!(v.to_string().contains("out of range"), "{v}");
    let (s, v) = mgmt
        .get("/api/v1/routing/decisions?after=9223372036854775807")
        .await;
    assert_eq!(s, 200, "{v}");
    // An offset past what SQLite counts wrapped to the first page.
    let (s, v) = mgmt
        .get("/api/v1/fleet/devices?offset=18446744073709551615")
        .await;
    assert_eq!(s, 400, "{v}");
    assert!(v.to_string().contains("out of range"), "{v}");
    let (s, v) = mgmt
        .get("/api/v1/fleet/devices?offset=9223372036854775807")
        .await;
    assert_eq!((s, v), (200, serde_json::json!([])));
    mgmt.stop().await;
}

/// One bootstrap token admitted any number of pending enrollments. A new
/// enrollment beyond `[fleet] max_pending_enrollments` is refused (not
/// recorded); those already pending are still answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pending_enrollments_per_bootstrap_token_are_capped() {
    let mgmt = Mgmt::start_with("[fleet]\nmax_pending_enrollments = 3\n").await;
    let token = std::fs::read_to_string(mgmt.data_dir().join("bootstrap.token")).unwrap();
    let token = token.trim();
    let request = |host: &str| {
        format!(r#"{{"v":1,"macs":[],"imeis":[],"hostname":"{host}","software":"t"}}"#).into_bytes()
    };
    let connect = |i: u32| async move {
        let id = format!("{i:032x}");
        let resp = format!("crossline/v1/enroll/{id}/resp");
        let c = Raw::connect(mgmt.mqtt_port, &id, "enroll", token, vec![resp]).await;
        (c, format!("crossline/v1/enroll/{id}/req"))
    };
    // Like an appliance, the first one asks until mgmt has recorded it (the
    // fleet service subscribes a moment after mgmt starts).
    let (mut first, first_req) = connect(0).await;
    let start = std::time::Instant::now();
    loop {
        first.publish_acked(&first_req, request("spam")).await;
        let (_, v) = mgmt.get("/api/v1/fleet/enrollments").await;
        if !v.as_array().unwrap().is_empty() {
            break;
        }
        assert!(start.elapsed() < common::DEADLINE, "never recorded: {v}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for i in 1..6 {
        let (mut c, req) = connect(i).await;
        c.publish_acked(&req, request("spam")).await;
    }
    // Asked again by the first (known) one: recorded after all the others.
    first.publish_acked(&first_req, request("again")).await;
    let list = wait_for(|| async {
        let (s, v) = mgmt.get("/api/v1/fleet/enrollments").await;
        assert_eq!(s, 200, "{v}");
        let l = v.as_array().unwrap().clone();
        l.iter().any(|e| e["hostname"] == "again").then_some(l)
    })
    .await;
    assert_eq!(list.len(), 3, "{list:?}");
    assert!(list.iter().all(|e| e["state"] == "pending"));
    mgmt.stop().await;
}

/// The fleet API decodes a command kind it does not know (as an appliance
/// must, to refuse a newer mgmt's command) but never queues one: 400 with
/// the kinds it has.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_command_kind_is_refused_not_queued() {
    let mgmt = Mgmt::start().await;
    let _dev = mgmt.device("branch-a").await;
    let (s, v) = mgmt
        .post(
            "/api/v1/fleet/devices/branch-a/commands",
            r#"{"type":"teleport","to":"mars"}"#,
        )
        .await;
    assert_eq!(s, 400, "{v}");
    let msg = v["message"].as_str().unwrap_or_default();
    assert!(
        msg.contains("no command kind \"teleport\"") && msg.contains("reboot, restart_modem"),
        "{v}"
    );
    let (_, list) = mgmt.get("/api/v1/fleet/devices/branch-a/commands").await;
    assert_eq!(list, serde_json::json!([]));
    mgmt.stop().await;
}

/// An IVR is pushed like the rest of the settings (docs/IVR.md); one the
/// appliance could not run is refused at the push with the reason, and no
/// version is issued for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ivr_naming_a_missing_menu_or_prompt_is_refused_at_the_push() {
    let mgmt = Mgmt::start().await;
    let _a = Raw::device(&mgmt, "branch-ivr").await;
    let demo: Value = serde_json::from_str(include_str!("../../docs/ivr-demo.json")).unwrap();
    let push = |ivr: &Value| {
        serde_json::json!({"device": "branch-ivr", "settings": {"ivr": ivr}}).to_string()
    };
    let (s, v) = mgmt.post("/api/v1/fleet/config", &push(&demo)).await;
    assert_eq!(s, 200, "{v}");
    let version = v["version"].as_u64().unwrap();
    let (_, c) = mgmt.get("/api/v1/fleet/devices/branch-ivr/config").await;
    let ivr = &c["desired"]["settings"]["ivr"];
    assert_eq!(ivr["entry"], "main", "{c}");
    assert_eq!(
        ivr["menus"]["main"]["options"]["2"]["type"], "voicemail",
        "{c}"
    );

    let mut missing_menu = demo.clone();
    missing_menu["menus"]["main"]["options"]["9"] =
        serde_json::json!({"type": "menu", "menu": "nowhere"});
    let (s, v) = mgmt
        .post("/api/v1/fleet/config", &push(&missing_menu))
        .await;
    assert_eq!(s, 400, "{v}");
    assert!(
        v.to_string()
            .contains("\\\"nowhere\\\", which does not exist"),
        "{v}"
    );
    let mut unknown_prompt = demo.clone();
    unknown_prompt["voicemail"]["thanks_prompt"] = "bye_bye".into();
    let (s, v) = mgmt
        .post("/api/v1/fleet/config", &push(&unknown_prompt))
        .await;
    assert_eq!(s, 400, "{v}");
    assert!(v.to_string().contains("bye_bye"), "{v}");
    // Nothing was issued for them: the next push is the next version.
    let (s, v) = mgmt.post("/api/v1/fleet/config", &push(&demo)).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["version"].as_u64(), Some(version + 1));
    mgmt.stop().await;
}
