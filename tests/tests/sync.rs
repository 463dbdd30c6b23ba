//! Lossless appliance → mgmt sync through a real broker and real SQLite files,
//! with processes SIGKILLed, the broker restarted and the uplink cut.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crossline_core::{Event, EventBody, NodeId};
use crossline_store::{EventLog, SqliteStore};
use crossline_tests::proc::{Appliance, Mgmt};
use crossline_tests::proxy::Proxy;
use crossline_tests::{mgmt_counts, wait_for};
use std::net::SocketAddr;
use std::time::Duration;

fn total_at_mgmt(m: &Mgmt, token: &str) -> u64 {
    mgmt_counts(m.http_port, token)
        .map(|c| c.values().sum())
        .unwrap_or(0)
}

async fn read_all(db: &std::path::Path, local: &str, origin: &str, n: u64) -> Vec<Event> {
    let store = SqliteStore::open(db, NodeId::new(local).unwrap()).unwrap();
    let o = NodeId::new(origin).unwrap();
    let mut out = Vec::new();
    let mut from = 1;
    loop {
        let chunk = store.read_from(&o, from, 5000).await.unwrap();
        let Some(last) = chunk.last() else { break };
        from = last.seq + 1;
        out.extend(chunk);
        if out.len() as u64 > n + 10 {
            break;
        }
    }
    store.close().unwrap();
    out
}

/// Compares the two ends event by event (id, seq, clock, body): the strongest
/// checksum there is.
async fn assert_identical(mgmt: &Mgmt, apps: &[Appliance], per: u64) {
    for a in apps {
        let here = read_all(&a.db(), &a.id, &a.id, per).await;
        let there = read_all(&mgmt.db(), "mgmt", &a.id, per).await;
        assert_eq!(
            here.len() as u64,
            per,
            "{}: appliance log has {} events",
            a.id,
            here.len()
        );
        assert_eq!(
            there.len() as u64,
            per,
            "{}: mgmt has {} events",
            a.id,
            there.len()
        );
        for (i, (x, y)) in here.iter().zip(&there).enumerate() {
            assert_eq!(x.seq, i as u64 + 1, "{}: appliance seq gap", a.id);
            assert_eq!(
                x, y,
                "{}: event {} differs between appliance and mgmt",
                a.id, x.seq
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundred_thousand_events_survive_kills_and_outages_exactly_once() {
    const APPS: usize = 5;
    const PER: u64 = 20_000;
    let tmp = tempfile::tempdir().unwrap();
    let mut mgmt = Mgmt::new(tmp.path().join("mgmt"), None);
    mgmt.start();
    let token = mgmt.api_token();
    let broker: SocketAddr = format!("127.0.0.1:{}", mgmt.mqtt_port).parse().unwrap();
    let proxy = Proxy::start(broker).await;
    let mut apps: Vec<Appliance> = (0..APPS)
        .map(|i| {
            let id = format!("branch-{i}");
            let secret = mgmt.add_device(&id);
            Appliance::new(tmp.path(), &id, &secret, proxy.port(), 4000.0, PER)
        })
        .collect();
    for a in &mut apps {
        a.start();
    }
    let all = APPS as u64 * PER;
    let progressed = |m: &Mgmt, n: u64| {
        let t = token.clone();
        wait_for(
            &format!("mgmt to hold {n} events"),
            Duration::from_secs(240),
            || (total_at_mgmt(m, &t) >= n).then_some(()),
        )
    };

    // 1. mgmt (with its embedded broker) SIGKILLed mid-stream, restarted.
    progressed(&mgmt, all / 10);
    mgmt.sigkill();
    mgmt.start();

    // 2. The uplink is down for a while; events pile up in the outboxes.
    progressed(&mgmt, all * 3 / 10);
    proxy.set_up(false);
    // Down long enough for mgmt to declare every appliance offline (last
    // will after the keep-alive expires), while they keep appending.
    wait_for(
        "mgmt to see every appliance offline",
        Duration::from_secs(60),
        || {
            let (_, body) =
                crossline_tests::http("GET", mgmt.http_port, "/api/v1/devices", Some(&token), None)
                    .ok()?;
            let v: serde_json::Value = serde_json::from_str(&body).ok()?;
            v.as_array()?
                .iter()
                .all(|d| d["online"] == false)
                .then_some(())
        },
    );
    proxy.set_up(true);

    // 3. An appliance SIGKILLed and restarted mid-stream.
    progressed(&mgmt, all / 2);
    apps[2].sigkill();
    apps[2].start();

    // 4. mgmt killed once more late in the stream.
    progressed(&mgmt, all * 8 / 10);
    mgmt.sigkill();
    mgmt.start();

    progressed(&mgmt, all);
    let counts = mgmt_counts(mgmt.http_port, &token).unwrap();
    for a in &apps {
        assert_eq!(
            counts.get(&a.id).copied(),
            Some(PER),
            "{} count at mgmt",
            a.id
        );
    }
    for a in &mut apps {
        assert!(a.sigterm(), "{} did not shut down cleanly", a.id);
    }
    assert!(mgmt.sigterm(), "mgmt did not shut down cleanly");
    assert_identical(&mgmt, &apps, PER).await;
}

/// The same guarantees with Debian's Mosquitto as the external broker, which
/// is restarted (losing every session: persistence is off) mid-stream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn external_mosquitto_restart_loses_nothing() {
    use crossline_tests::proc::Mosquitto;
    const APPS: usize = 3;
    const PER: u64 = 5_000;
    let tmp = tempfile::tempdir().unwrap();
    let mut mgmt = Mgmt::new(tmp.path().join("mgmt"), None);
    let secrets: Vec<(String, String)> = (0..APPS)
        .map(|i| {
            let id = format!("site-{i}");
            let s = mgmt.add_device(&id);
            (id, s)
        })
        .collect();
    let mut mosq = Mosquitto::configure(&mgmt, tmp.path().join("mosquitto"));
    mosq.start();
    mgmt.mqtt_url = Some(mosq.url());
    mgmt.start();
    let token = mgmt.api_token();
    let broker: SocketAddr = format!("127.0.0.1:{}", mosq.port).parse().unwrap();
    let proxy = Proxy::start(broker).await;
    let mut apps: Vec<Appliance> = secrets
        .iter()
        .map(|(id, s)| Appliance::new(tmp.path(), id, s, proxy.port(), 1000.0, PER))
        .collect();
    for a in &mut apps {
        a.start();
    }
    let all = APPS as u64 * PER;
    let progressed = |m: &Mgmt, n: u64| {
        let t = token.clone();
        wait_for(
            &format!("mgmt to hold {n} events"),
            Duration::from_secs(180),
            || (total_at_mgmt(m, &t) >= n).then_some(()),
        )
    };
    progressed(&mgmt, all / 5);
    mosq.sigkill();
    mosq.start();
    progressed(&mgmt, all * 2 / 5);
    mgmt.sigkill();
    mgmt.start();
    progressed(&mgmt, all * 3 / 5);
    apps[1].sigkill();
    proxy.set_up(false);
    apps[1].start();
    proxy.set_up(true);
    progressed(&mgmt, all);
    for a in &mut apps {
        assert!(a.sigterm(), "{} did not shut down cleanly", a.id);
    }
    assert!(mgmt.sigterm(), "mgmt did not shut down cleanly");
    mosq.sigkill();
    assert_identical(&mgmt, &apps, PER).await;
    // mgmt's two connections (ingestion, fleet) log in as users of their
    // own: with `use_username_as_clientid` one shared user made them take
    // each other's session over again and again (about ten times a second).
    let log = std::fs::read_to_string(mosq.dir.join("mosquitto.log")).unwrap();
    let takeovers: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("Client mgmt") && l.contains("already connected"))
        .collect();
    assert!(
        takeovers.len() < 4,
        "mgmt's MQTT connections replaced each other {} times:\n{}",
        takeovers.len(),
        takeovers.join("\n")
    );
}

/// Long texts: 256 events of 1,500 Cyrillic characters are far more than
/// one payload may hold. The uplink must split by bytes, not only by count,
/// or mgmt would refuse the batch on every resend and the stream would stick.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_of_long_texts_are_split_to_fit_the_payload_limit() {
    const PER: u64 = 600;
    let tmp = tempfile::tempdir().unwrap();
    let mut mgmt = Mgmt::new(tmp.path().join("mgmt"), None);
    let secret = mgmt.add_device("long-texts");
    let mut app = Appliance::with_config(
        tmp.path(),
        "long-texts",
        &secret,
        mgmt.mqtt_port,
        &format!("[synthetic]\nrate = 5000\ntotal = {PER}\ntext_len = 1500\n"),
    );
    // mgmt is not up yet: everything piles up in the outbox first, so the
    // uplink has full batches to send when it connects.
    app.start();
    let db = app.db();
    wait_for(
        "the appliance to log every event",
        Duration::from_secs(60),
        || {
            let conn = rusqlite::Connection::open_with_flags(
                &db,
                rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
            )
            .ok()?;
            let n: u64 = conn
                .query_row("SELECT count(*) FROM event", [], |r| r.get(0))
                .ok()?;
            (n >= PER).then_some(())
        },
    );
    mgmt.start();
    let token = mgmt.api_token();
    wait_for("all long texts at mgmt", Duration::from_secs(120), || {
        (total_at_mgmt(&mgmt, &token) >= PER).then_some(())
    });
    assert!(app.sigterm());
    assert!(mgmt.sigterm());
    assert_identical(&mgmt, std::slice::from_ref(&app), PER).await;
    let log = std::fs::read_to_string(&mgmt.log).unwrap();
    assert!(!log.contains("rejected payload"), "mgmt refused a batch");
}

/// Version skew: a newer appliance logs kinds this mgmt does not know.
/// They are stored raw and acknowledged like any other event, the batches
/// around them are not refused, and the sync goes on exactly once and in
/// order, across a mgmt kill. An admin sees them in `GET /api/v1/events`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_newer_appliance_s_unknown_kinds_are_kept_and_its_sync_goes_on() {
    const BEFORE: u64 = 300;
    const NEWER: u64 = 200;
    const PER: u64 = 1_000;
    let tmp = tempfile::tempdir().unwrap();
    let mut mgmt = Mgmt::new(tmp.path().join("mgmt"), None);
    let secret = mgmt.add_device("branch-newer");
    let synthetic = |total: u64| format!("[synthetic]\nrate = 5000\ntotal = {total}\n");
    let mut app = Appliance::with_config(
        tmp.path(),
        "branch-newer",
        &secret,
        mgmt.mqtt_port,
        &synthetic(BEFORE),
    );
    app.start();
    let db = app.db();
    let logged = |n: u64| {
        wait_for(
            &format!("the appliance to log {n} events"),
            Duration::from_secs(60),
            || {
                let conn = rusqlite::Connection::open_with_flags(
                    &db,
                    rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
                )
                .ok()?;
                let n_now: u64 = conn
                    .query_row("SELECT count(*) FROM event", [], |r| r.get(0))
                    .ok()?;
                (n_now >= n).then_some(())
            },
        )
    };
    logged(BEFORE);
    assert!(app.sigterm());

    // What a newer build logs: kinds this build has never heard of, mixed
    // with known ones, in the appliance's own log.
    {
        let store = SqliteStore::open(&db, NodeId::new("branch-newer").unwrap()).unwrap();
        let events = (0..NEWER)
            .map(|i| {
                let body = if i % 3 == 0 {
                    EventBody::DeviceHeartbeat { uptime_s: i }
                } else {
                    serde_json::from_value::<EventBody>(serde_json::json!({
                        "type": if i % 3 == 1 { "call_parked" } else { "call_transferred" },
                        "line": "gsm0",
                        "from": format!("+38050{i:07}"),
                        "ring": {"count": i, "cadence_ms": [400, 200]},
                    }))
                    .unwrap()
                };
                crossline_store::NewEvent {
                    conversation: None,
                    body,
                }
            })
            .collect();
        store.append(events).await.unwrap();
    }
    let mut app = Appliance::with_config(
        tmp.path(),
        "branch-newer",
        &secret,
        mgmt.mqtt_port,
        &synthetic(PER),
    );
    app.start();
    mgmt.start();
    let token = mgmt.api_token();
    let at_mgmt = |m: &Mgmt, n: u64| {
        wait_for(
            &format!("mgmt to hold {n} events"),
            Duration::from_secs(120),
            || (total_at_mgmt(m, &token) >= n).then_some(()),
        )
    };
    // mgmt killed right after the unknown kinds, so some are sent again.
    at_mgmt(&mgmt, BEFORE + NEWER);
    mgmt.sigkill();
    mgmt.start();
    at_mgmt(&mgmt, PER);

    let (status, body) = crossline_tests::http(
        "GET",
        mgmt.http_port,
        "/api/v1/events?device=branch-newer&limit=1000",
        Some(&token),
        None,
    )
    .unwrap();
    assert_eq!(status, 200, "{body}");
    let events: Vec<serde_json::Value> = serde_json::from_str(&body).unwrap();
    let parked = events
        .iter()
        .find(|e| e["seq"] == BEFORE + 2)
        .unwrap_or_else(|| panic!("no seq {} in {body}", BEFORE + 2));
    assert_eq!(
        parked["body"],
        serde_json::json!({"type": "call_parked", "line": "gsm0", "from": "+380500000001",
                           "ring": {"count": 1, "cadence_ms": [400, 200]}}),
        "kept as the appliance sent it"
    );
    let log = std::fs::read_to_string(&mgmt.log).unwrap();
    assert!(!log.contains("rejected payload"), "mgmt refused a batch");
    assert!(app.sigterm());
    assert!(mgmt.sigterm());
    assert_identical(&mgmt, std::slice::from_ref(&app), PER).await;
}
