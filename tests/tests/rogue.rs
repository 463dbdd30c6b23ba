//! Bad input from a device: malformed, oversized, wrong-version and spoofed
//! payloads are refused with a logged reason, duplicates are stored once, and
//! none of it stops ingestion for anybody else.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crossline_core::{Channel, Event, EventBody, EventId, Hlc, NodeId};
use crossline_proto::{EventBatch, encode};
use crossline_tests::proc::Mgmt;
use crossline_tests::{http, mgmt_counts, wait_for_async};
use rumqttc::{AsyncClient, Event as MqttEvent, MqttOptions, Packet, QoS};
use std::time::Duration;

fn ev(origin: &str, seq: u64) -> Event {
    Event {
        id: EventId::new(),
        origin: NodeId::new(origin).unwrap(),
        seq,
        at: Hlc {
            ms: 1_000 + seq,
            c: 0,
        },
        conversation: None,
        body: EventBody::MessageReceived {
            channel: Channel::Sms,
            line: "gsm0".into(),
            from: "+380501112233".into(),
            to: None,
            text: format!("<script>alert({seq})</script>"),
            sent_at: None,
            parts: 1,
            incomplete: false,
            key: None,
        },
    }
}

/// A raw MQTT client playing a device; its event loop runs in the background.
async fn device(port: u16, id: &str, secret: &str) -> AsyncClient {
    let mut o = MqttOptions::new(id, "127.0.0.1", port);
    o.set_credentials(id, secret);
    o.set_max_packet_size(2 << 20, 2 << 20);
    let (c, mut l) = AsyncClient::new(o, 100);
    let (tx, rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let mut tx = Some(tx);
        loop {
            match l.poll().await {
                Ok(MqttEvent::Incoming(Packet::ConnAck(_))) => {
                    if let Some(t) = tx.take() {
                        let _ = t.send(());
                    }
                }
                Ok(_) => {}
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    });
    tokio::time::timeout(Duration::from_secs(10), rx)
        .await
        .expect("device connects")
        .expect("connack");
    c
}

fn count(m: &Mgmt, token: &str, id: &str) -> u64 {
    mgmt_counts(m.http_port, token)
        .and_then(|c| c.get(id).copied())
        .unwrap_or(0)
}

fn metric(m: &Mgmt, name: &str) -> u64 {
    let (_, body) = http("GET", m.http_port, "/metrics", None, None).unwrap();
    body.lines()
        .find_map(|l| {
            l.strip_prefix(&format!("{name} "))
                .and_then(|v| v.trim().parse().ok())
        })
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rogue_payloads_are_refused_and_do_not_stop_ingestion() {
    let tmp = tempfile::tempdir().unwrap();
    let mut mgmt = Mgmt::new(tmp.path().join("mgmt"), None);
    let rogue_secret = mgmt.add_device("rogue");
    let good_secret = mgmt.add_device("good");
    mgmt.start();
    let token = mgmt.api_token();
    let rogue = device(mgmt.mqtt_port, "rogue", &rogue_secret).await;
    let good = device(mgmt.mqtt_port, "good", &good_secret).await;
    let topic = |d: &str| format!("crossline/v1/d/{d}/events");

    // A valid batch, then the same batch again (a duplicated publish).
    let batch = encode(&EventBatch::new(vec![ev("rogue", 1), ev("rogue", 2)]));
    rogue
        .publish(topic("rogue"), QoS::AtLeastOnce, false, batch.clone())
        .await
        .unwrap();
    rogue
        .publish(topic("rogue"), QoS::AtLeastOnce, false, batch.clone())
        .await
        .unwrap();
    // Garbage, wrong version, unknown event kind, oversized, spoofed origin.
    let bad: Vec<Vec<u8>> = vec![
        b"\x00\xffnot json at all".to_vec(),
        br#"{"v":99,"events":[]}"#.to_vec(),
        br#"{"v":1,"events":[{"id":"x","origin":"rogue","seq":3,"at":{"ms":1,"c":0},"body":{"type":"teleport"}}]}"#.to_vec(),
        {
            let mut big = br#"{"v":1,"events":[],"pad":""#.to_vec();
            big.extend(std::iter::repeat_n(b'a', 300 * 1024));
            big.extend(b"\"}");
            big
        },
        encode(&EventBatch::new(vec![ev("good", 1)])),
    ];
    let n_bad = bad.len() as u64;
    for p in bad {
        rogue
            .publish(topic("rogue"), QoS::AtLeastOnce, false, p)
            .await
            .unwrap();
    }
    // The other device's traffic goes on.
    let good_batch = encode(&EventBatch::new((1..=3).map(|s| ev("good", s)).collect()));
    good.publish(topic("good"), QoS::AtLeastOnce, false, good_batch)
        .await
        .unwrap();
    // ...and so does the rogue's own valid traffic after its garbage.
    let next = encode(&EventBatch::new(vec![ev("rogue", 3)]));
    rogue
        .publish(topic("rogue"), QoS::AtLeastOnce, false, next)
        .await
        .unwrap();

    wait_for_async(
        "good's 3 events and rogue's 3 valid events",
        Duration::from_secs(30),
        || async {
            (count(&mgmt, &token, "good") == 3 && count(&mgmt, &token, "rogue") == 3).then_some(())
        },
    )
    .await;
    wait_for_async(
        "every bad payload to be counted as rejected",
        Duration::from_secs(10),
        || async { (metric(&mgmt, "crossline_payloads_rejected_total") >= n_bad).then_some(()) },
    )
    .await;
    assert_eq!(metric(&mgmt, "crossline_payloads_rejected_total"), n_bad);
    assert!(
        metric(&mgmt, "crossline_events_duplicate_total") >= 2,
        "the duplicate batch was noticed"
    );
    assert_eq!(count(&mgmt, &token, "rogue"), 3, "duplicates stored once");

    // The log names the device and the reason.
    let log = std::fs::read_to_string(&mgmt.log).unwrap();
    for why in [
        "not supported",
        "malformed event batch",
        "exceeds",
        "published on device rogue",
    ] {
        assert!(
            log.lines()
                .any(|l| l.contains("rejected payload") && l.contains("rogue") && l.contains(why)),
            "no log line about {why:?}"
        );
    }
    // Stored text is kept verbatim (escaping is the UI's job, not the log's).
    let (_, body) = http(
        "GET",
        mgmt.http_port,
        "/api/v1/events?device=rogue&limit=1",
        Some(&token),
        None,
    )
    .unwrap();
    assert!(body.contains("<script>alert(3)</script>"), "{body}");
    assert!(mgmt.sigterm());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_refuses_without_token_and_bad_query() {
    let tmp = tempfile::tempdir().unwrap();
    let mut mgmt = Mgmt::new(tmp.path().join("mgmt"), None);
    mgmt.start();
    let (s, body) = http("GET", mgmt.http_port, "/api/v1/devices", None, None).unwrap();
    assert_eq!(s, 401);
    assert!(body.contains("\"error\""), "{body}");
    let (s, _) = http(
        "GET",
        mgmt.http_port,
        "/api/v1/devices",
        Some("wrong"),
        None,
    )
    .unwrap();
    assert_eq!(s, 401);
    let token = mgmt.api_token();
    let (s, body) = http(
        "GET",
        mgmt.http_port,
        "/api/v1/events?device=NOT/valid",
        Some(&token),
        None,
    )
    .unwrap();
    assert_eq!(s, 400, "{body}");
    let (s, _) = http("GET", mgmt.http_port, "/healthz", None, None).unwrap();
    assert_eq!(s, 200);
    assert!(mgmt.sigterm());
}
