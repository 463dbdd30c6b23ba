//! What a device may say (docs/PROTOCOL.md, "Trust"), inside one process:
//! outcomes only of its own commands (an offline auto-reply included),
//! refusals seen by live listeners in place of the refused event, and the
//! clock skew bound taken from the configuration.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{Mgmt, sent, status, wait_for};
use crossline_core::{Channel, DeliveryState, EventBody, EventId, Hlc};
use crossline_mgmt::bus::Update;
use crossline_mgmt::clock::now_ms;
use serde_json::Value;

fn id_of(v: &Value) -> String {
    v["id"].as_str().unwrap().to_string()
}

/// The value of a counter on `/metrics`.
async fn metric(m: &Mgmt, name: &str) -> u64 {
    let (_, body) = common::http(&m.http, "GET", "/metrics", None, None).await;
    String::from_utf8_lossy(&body)
        .lines()
        .find_map(|l| {
            l.strip_prefix(&format!("{name} "))
                .and_then(|v| v.trim().parse().ok())
        })
        .unwrap_or(0)
}

/// The kind each stored event of `device` was stored as, in seq order.
async fn kinds(m: &Mgmt, device: &str) -> Vec<String> {
    let (_, v) = m
        .get(&format!("/api/v1/events?device={device}&limit=50"))
        .await;
    let mut evs = v.as_array().unwrap().clone();
    evs.sort_by_key(|e| e["seq"].as_u64());
    evs.iter()
        .map(|e| e["body"]["type"].as_str().unwrap().to_string())
        .collect()
}

fn auto_reply(command: EventId, to: &str) -> EventBody {
    EventBody::MessageSent {
        channel: Channel::Sms,
        line: "gsm0".into(),
        to: to.into(),
        text: "We are offline, we will answer soon".into(),
        command,
        refs: vec![9],
        auto_reply: true,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outcomes_are_accepted_only_from_the_device_a_command_belongs_to() {
    let m = Mgmt::start().await;
    let mut good = m.device("branch-good").await;
    let mut rogue = m.device("branch-rogue").await;
    let mut updates = m.running().updates.subscribe();
    good.sms("gsm0", "+380501234567", "hello?").await;
    let cid = id_of(&m.wait_list("", |l| l.len() == 1).await[0]);

    // The branch was offline: it auto-replied on its own (a command id mgmt
    // never issued). Accepted, with its delivery report.
    let own = EventId::new();
    let e1 = good.event(auto_reply(own, "+380501234567"));
    let e2 = good.event(EventBody::DeliveryStatus {
        command: own,
        part: Some(1),
        state: DeliveryState::Delivered,
        detail: None,
    });
    good.publish(vec![e1, e2]).await;
    m.wait_conversation(&cid, |v| v["timeline"][1]["state"] == "delivered")
        .await;

    // An agent's reply: its command is addressed to branch-good.
    let (s, r) = m
        .post(
            &format!("/api/v1/conversations/{cid}/replies"),
            r#"{"text":"Yes"}"#,
        )
        .await;
    assert_eq!(s, 202, "{r}");
    let cmd = good.next_command().await;

    // The rogue reports on both: sent, failed, and an "auto-reply" reusing
    // the agent's command id. Each is refused; its own SMS after them is not.
    let forged = vec![
        rogue.event(sent(&cmd, vec![1])),
        rogue.event(status(&cmd, None, DeliveryState::Failed)),
        rogue.event(auto_reply(cmd.id, "+380501234567")),
        rogue.event(EventBody::DeliveryStatus {
            command: own,
            part: Some(1),
            state: DeliveryState::Failed,
            detail: Some("forged".into()),
        }),
    ];
    rogue.publish(forged).await;
    rogue.sms("gsm0", "+380671112233", "its own customer").await;
    let stored = wait_for(|| async {
        let k = kinds(&m, "branch-rogue").await;
        (k.len() == 5).then_some(k)
    })
    .await;
    assert_eq!(
        stored,
        [
            "refused",
            "refused",
            "refused",
            "refused",
            "message_received"
        ]
    );
    assert_eq!(metric(&m, "crossline_events_refused_total").await, 4);

    // Live listeners saw the refusals, never the forged outcomes.
    let mut seen = Vec::new();
    while seen.len() < 5 {
        let u = tokio::time::timeout(common::DEADLINE, updates.recv())
            .await
            .expect("every stored event of the rogue is announced")
            .unwrap();
        if let Update::Stored { origin, events, .. } = u
            && origin.as_str() == "branch-rogue"
        {
            seen.extend(events.into_iter().map(|e| e.body.kind()));
        }
    }
    assert!(!seen.contains(&"message_sent"), "{seen:?}");
    assert!(!seen.contains(&"delivery_status"), "{seen:?}");

    // The honest reply is untouched: still pending, still the device's.
    let conv = m.wait_conversation(&cid, |_| true).await;
    let reply = &conv["timeline"][2];
    assert_eq!(reply["state"], "pending", "{conv}");
    assert_eq!(reply["device"], "branch-good", "{conv}");
    assert_eq!(conv["timeline"][1]["state"], "delivered", "{conv}");
    let e = good.event(sent(&cmd, vec![2]));
    good.publish(vec![e]).await;
    m.wait_conversation(&cid, |v| v["timeline"][2]["state"] == "sent")
        .await;
    m.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_clock_skew_bound_comes_from_the_configuration() {
    let m = Mgmt::start_with("[ingest]\nmax_clock_skew_s = 10\n").await;
    let mut dev = m.device("branch-skew").await;
    let mut near = dev.event(common::sms("gsm0", "+380501234567", "5 s ahead"));
    near.at = Hlc {
        ms: now_ms() + 5_000,
        c: 0,
    };
    let mut far = dev.event(common::sms("gsm0", "+380501234567", "60 s ahead"));
    far.at = Hlc {
        ms: now_ms() + 60_000,
        c: 0,
    };
    dev.publish(vec![near.clone(), far.clone()]).await;
    wait_for(|| async { (kinds(&m, "branch-skew").await.len() == 2).then_some(()) }).await;
    assert_eq!(metric(&m, "crossline_events_restamped_total").await, 1);
    let (_, v) = m.get("/api/v1/events?device=branch-skew&limit=2").await;
    let at = |seq: u64| {
        v.as_array()
            .unwrap()
            .iter()
            .find(|e| e["seq"] == seq)
            .unwrap()["at"]["ms"]
            .as_u64()
            .unwrap()
    };
    assert_eq!(at(near.seq), near.at.ms, "within the bound: kept");
    assert!(at(far.seq) < far.at.ms - 40_000, "beyond it: mgmt's time");
    let flagged: Vec<(i64, Option<i64>)> = m
        .running()
        .store
        .read(|c| {
            c.prepare(
                "SELECT seq, claimed_ms FROM event WHERE origin = 'branch-skew' ORDER BY seq",
            )?
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect()
        })
        .await
        .unwrap();
    assert_eq!(flagged, [(1, None), (2, Some(far.at.ms as i64))]);
    m.stop().await;
}

/// Each mgmt instance has its own node id, from its configuration: the
/// origin of the events it creates. No device may take it, and mgmt refuses
/// to start when a registered device already has it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mgmt_s_own_events_carry_the_node_id_from_its_configuration() {
    let mut m = Mgmt::start_with("node_id = \"mgmt-kyiv\"\n").await;
    let mut dev = m.device("branch-a").await;
    dev.sms("gsm0", "+380501234567", "hello?").await;
    let cid = id_of(&m.wait_list("", |l| l.len() == 1).await[0]);
    let (s, r) = m
        .post(
            &format!("/api/v1/conversations/{cid}/replies"),
            r#"{"text":"Yes"}"#,
        )
        .await;
    assert_eq!(s, 202, "{r}");
    let own = kinds(&m, "mgmt-kyiv").await;
    assert!(own.iter().any(|k| k == "reply_requested"), "{own:?}");
    assert!(kinds(&m, "mgmt").await.is_empty());

    let node = crossline_core::NodeId::new("mgmt-kyiv").unwrap();
    let err =
        crossline_mgmt::services::fleet::check_device_id("mgmt-kyiv", "mgmt", &node).unwrap_err();
    assert!(err.to_string().contains("reserved"), "{err}");

    // A device registered under that id (by an older mgmt, say).
    crossline_store::DeviceRegistry::put_device(&m.running().store, &node, "$7$x")
        .await
        .unwrap();
    m.running.take().unwrap().stop().await;
    let mut cfg: crossline_mgmt::config::Config =
        toml::from_str("node_id = \"mgmt-kyiv\"").unwrap();
    cfg.data_dir = m.data_dir().to_path_buf();
    cfg.listen_on_free_loopback_ports();
    let Err(err) = crossline_mgmt::server::start(cfg).await else {
        panic!("mgmt started with a device's id as its node id");
    };
    assert!(
        format!("{err:#}").contains("node_id \"mgmt-kyiv\" is also the id of a registered device"),
        "{err:#}"
    );
}
