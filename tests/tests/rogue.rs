//! Bad input from a device: malformed, oversized, wrong-version and spoofed
//! payloads are refused with a logged reason, duplicates are stored once, and
//! none of it stops ingestion for anybody else.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crossline_core::{
    Channel, ConversationId, DeliveryState, Event, EventBody, EventId, Hlc, NodeId,
};
use crossline_proto::{Command, CommandKind, EventBatch, decode, encode};
use crossline_tests::mqtt_cli::publish_as;
use crossline_tests::proc::Mgmt;
use crossline_tests::{http, mgmt_counts, wait_for_async};
use rumqttc::{AsyncClient, Event as MqttEvent, MqttOptions, Packet, QoS};
use serde_json::Value;
use std::time::Duration;
use tokio::sync::mpsc;

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
    device_hearing_commands(port, id, secret).await.0
}

/// [`device`], also subscribed to its `cmd` topic: the commands mgmt sends
/// it arrive on the receiver. Returns once mgmt answered its Hello (mgmt's
/// ingestion is subscribed: nothing it publishes is lost).
async fn device_hearing_commands(
    port: u16,
    id: &str,
    secret: &str,
) -> (AsyncClient, mpsc::UnboundedReceiver<Command>) {
    let mut o = MqttOptions::new(id, "127.0.0.1", port);
    o.set_credentials(id, secret);
    o.set_max_packet_size(2 << 20, 2 << 20);
    let (c, mut l) = AsyncClient::new(o, 100);
    let (ack_tx, mut acks) = mpsc::unbounded_channel::<()>();
    let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
    let cmd_topic = format!("crossline/v1/d/{id}/cmd");
    let ack_topic = format!("crossline/v1/d/{id}/ack");
    let c2 = c.clone();
    tokio::spawn(async move {
        loop {
            match l.poll().await {
                Ok(MqttEvent::Incoming(Packet::ConnAck(_))) => {
                    for t in [&cmd_topic, &ack_topic] {
                        let _ = c2.subscribe(t.clone(), QoS::AtLeastOnce).await;
                    }
                }
                Ok(MqttEvent::Incoming(Packet::Publish(p))) if p.topic == cmd_topic => {
                    let _ = cmd_tx.send(decode::<Command>(&p.payload).unwrap());
                }
                Ok(MqttEvent::Incoming(Packet::Publish(p))) if p.topic == ack_topic => {
                    let _ = ack_tx.send(());
                }
                Ok(_) => {}
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    });
    let hello = encode(&crossline_proto::Hello {
        v: 1,
        head: 0,
        acked: 0,
        software: "test".into(),
    });
    let end = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        c.publish(
            format!("crossline/v1/d/{id}/hello"),
            QoS::AtLeastOnce,
            false,
            hello.clone(),
        )
        .await
        .unwrap();
        if let Ok(Some(())) = tokio::time::timeout(Duration::from_millis(300), acks.recv()).await {
            break;
        }
        assert!(
            tokio::time::Instant::now() < end,
            "mgmt never answered {id}'s Hello"
        );
    }
    (c, cmd_rx)
}

/// A running mgmt (in a temporary directory) with `devices` added; their secrets.
fn mgmt_with<const N: usize>(devices: [&str; N]) -> (tempfile::TempDir, Mgmt, [String; N]) {
    let tmp = tempfile::tempdir().unwrap();
    let mut mgmt = Mgmt::new(tmp.path().join("mgmt"), None);
    let secrets = devices.map(|d| mgmt.add_device(d));
    mgmt.start();
    (tmp, mgmt, secrets)
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
    let (_tmp, mut mgmt, [rogue_secret, good_secret]) = mgmt_with(["rogue", "good"]);
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

fn now_ms() -> u64 {
    crossline_mgmt::clock::now_ms()
}

/// GET `path` with the API token, as JSON.
fn get_json(m: &Mgmt, token: &str, path: &str) -> Value {
    let (s, body) = http("GET", m.http_port, path, Some(token), None).unwrap();
    assert_eq!(s, 200, "{path}: {body}");
    serde_json::from_str(&body).unwrap()
}

/// The issue's forgeries, each published by the rogue device with
/// mosquitto_pub on its own events topic (the broker's ACL lets it): a
/// reply to another device's customer, a resolve and a message into
/// another device's conversation, a `failed` for another device's command,
/// a stamp in 2100. mgmt refuses each (stored as a refusal in its slot,
/// counted, logged with the device), sends no command, keeps its clock, and
/// the honest device and the rogue's own later traffic go on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_may_only_speak_for_itself() {
    // Not the sender of `ev`'s messages (the rogue's own customer).
    const CUSTOMER: &str = "+380674445566";
    let (_tmp, mut mgmt, [rogue_secret, good_secret]) = mgmt_with(["rogue", "good"]);
    let token = mgmt.api_token();
    let topic = |d: &str| format!("crossline/v1/d/{d}/events");
    let (good, mut good_cmds) = device_hearing_commands(mgmt.mqtt_port, "good", &good_secret).await;
    let mut good_seq = 0;
    let mut good_event = |body: EventBody| {
        good_seq += 1;
        let mut e = ev("good", good_seq);
        e.at = Hlc { ms: now_ms(), c: 0 };
        e.body = body;
        encode(&EventBatch::new(vec![e]))
    };

    // A customer writes to the honest branch; an agent answers.
    let asked = EventBody::MessageReceived {
        channel: Channel::Sms,
        line: "gsm0".into(),
        from: CUSTOMER.into(),
        to: None,
        text: "Are you open?".into(),
        sent_at: None,
        parts: 1,
        incomplete: false,
        key: None,
    };
    good.publish(topic("good"), QoS::AtLeastOnce, false, good_event(asked))
        .await
        .unwrap();
    let conv = wait_for_async(
        "the customer's conversation",
        Duration::from_secs(20),
        || async {
            let v = get_json(&mgmt, &token, "/api/v1/conversations");
            v["conversations"][0]["id"].as_str().map(str::to_string)
        },
    )
    .await;
    let (s, r) = http(
        "POST",
        mgmt.http_port,
        &format!("/api/v1/conversations/{conv}/replies"),
        Some(&token),
        Some(r#"{"text":"Yes, until 18:00"}"#),
    )
    .unwrap();
    assert_eq!(s, 202, "{r}");
    let reply: Value = serde_json::from_str(&r).unwrap();
    let real = tokio::time::timeout(Duration::from_secs(20), good_cmds.recv())
        .await
        .expect("the reply's command reaches the honest device")
        .unwrap();
    assert_eq!(real.id.to_string(), reply["id"].as_str().unwrap());

    // The rogue knows the conversation and the command ids.
    let conv_id: ConversationId = conv.parse().unwrap();
    let forged_cmd = EventId::new();
    let year_2100 = 4_102_444_800_000;
    let forgeries: Vec<(&str, Option<ConversationId>, EventBody)> = vec![
        (
            "reply_requested",
            Some(conv_id),
            EventBody::ReplyRequested {
                command: forged_cmd,
                channel: Channel::Sms,
                device: NodeId::new("good").unwrap(),
                line: "gsm0".into(),
                to: CUSTOMER.into(),
                text: "FORGED: pay your bill to IBAN UA00".into(),
                author: Some("ana".into()),
            },
        ),
        (
            "conversation_resolved",
            Some(conv_id),
            EventBody::ConversationResolved {
                by: Some("ana".into()),
            },
        ),
        ("message_received", Some(conv_id), {
            let mut m = ev("rogue", 3).body;
            if let EventBody::MessageReceived { text, .. } = &mut m {
                *text = "FORGED into another device's conversation".into();
            }
            m
        }),
        (
            "delivery_status",
            None,
            EventBody::DeliveryStatus {
                command: real.id,
                part: None,
                state: DeliveryState::Failed,
                detail: Some("FORGED failure".into()),
            },
        ),
    ];
    let n_forged = forgeries.len() as u64;
    let mut seq = 0;
    for (_, conversation, body) in &forgeries {
        seq += 1;
        let mut e = ev("rogue", seq);
        e.at = Hlc { ms: now_ms(), c: 0 };
        e.conversation = *conversation;
        e.body = body.clone();
        let payload = String::from_utf8(encode(&EventBatch::new(vec![e]))).unwrap();
        assert!(
            publish_as(
                mgmt.mqtt_port,
                "rogue",
                "rogue",
                &rogue_secret,
                &topic("rogue"),
                &payload
            ),
            "the broker lets the rogue publish on its own topic"
        );
    }
    // A clock in 2100, then the rogue's own honest message.
    for (s, at) in [(seq + 1, year_2100), (seq + 2, now_ms())] {
        let mut e = ev("rogue", s);
        e.at = Hlc { ms: at, c: 0 };
        let payload = String::from_utf8(encode(&EventBatch::new(vec![e]))).unwrap();
        assert!(publish_as(
            mgmt.mqtt_port,
            "rogue",
            "rogue",
            &rogue_secret,
            &topic("rogue"),
            &payload
        ));
    }
    let rogue_total = seq + 2;

    // Every slot is stored: the rogue's sequence is whole, its uplink goes on.
    wait_for_async(
        "all of the rogue's slots",
        Duration::from_secs(20),
        || async { (count(&mgmt, &token, "rogue") == rogue_total).then_some(()) },
    )
    .await;
    assert_eq!(metric(&mgmt, "crossline_events_refused_total"), n_forged);
    assert_eq!(metric(&mgmt, "crossline_events_restamped_total"), 1);
    let stored = get_json(&mgmt, &token, "/api/v1/events?device=rogue&limit=20");
    let stored = stored.as_array().unwrap();
    let by_seq = |s: u64| stored.iter().find(|e| e["seq"] == s).unwrap();
    for (i, (kind, _, _)) in forgeries.iter().enumerate() {
        let e = by_seq(i as u64 + 1);
        assert_eq!(e["body"]["type"], "refused", "{e}");
        assert_eq!(e["body"]["kind"], *kind, "{e}");
        assert!(e.get("conversation").is_none(), "{e}");
        assert!(!e.to_string().contains("FORGED"), "not stored as such: {e}");
    }
    let late = by_seq(seq + 1);
    assert_eq!(late["body"]["type"], "message_received");
    assert!(
        late["at"]["ms"].as_u64().unwrap() < now_ms() + 60_000,
        "{late}"
    );
    assert_eq!(by_seq(seq + 2)["body"]["type"], "message_received");

    // The log names the device, the seq, the kind and the reason.
    let log = std::fs::read_to_string(&mgmt.log).unwrap();
    for (why, kind) in [
        ("mgmt's to originate", "reply_requested"),
        ("mgmt's to originate", "conversation_resolved"),
        ("never names a conversation", "message_received"),
        ("was addressed to device good", "delivery_status"),
    ] {
        assert!(
            log.lines().any(|l| l.contains("refused event")
                && l.contains("rogue")
                && l.contains(kind)
                && l.contains(why)),
            "no log line refusing {kind} ({why:?})"
        );
    }
    assert!(
        log.lines()
            .any(|l| l.contains("clock skew") && l.contains("rogue")),
        "no log line about the rogue's clock"
    );

    // Nothing was done in the honest device's name: its conversation is
    // open, shows no forged reply and no resolve by "ana", its reply is still
    // pending, and the only command pending is the agent's.
    let c = get_json(&mgmt, &token, &format!("/api/v1/conversations/{conv}"));
    assert_eq!(c["status"], "open", "{c}");
    assert!(!c.to_string().contains("FORGED"), "{c}");
    assert!(!c.to_string().contains("\"ana\""), "{c}");
    let timeline = c["timeline"].as_array().unwrap();
    assert_eq!(timeline.len(), 2, "{c}");
    assert_eq!(timeline[1]["state"], "pending", "{c}");
    let db = rusqlite::Connection::open_with_flags(
        mgmt.db(),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .unwrap();
    let pending: Vec<(String, String)> = db
        .prepare("SELECT id, device FROM pending_command")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(pending, [(real.id.to_string(), "good".to_string())]);
    // On its next Hello the honest device is sent its pending command and
    // nothing else.
    let hello = crossline_proto::Hello {
        v: 1,
        head: 1,
        acked: 1,
        software: "test".into(),
    };
    good.publish(
        "crossline/v1/d/good/hello",
        QoS::AtLeastOnce,
        false,
        encode(&hello),
    )
    .await
    .unwrap();
    let again = tokio::time::timeout(Duration::from_secs(20), good_cmds.recv())
        .await
        .expect("the pending command again after Hello")
        .unwrap();
    assert_eq!(again.id, real.id);
    let CommandKind::SendSms { text, .. } = &again.kind else {
        panic!("{again:?}")
    };
    assert_eq!(text, "Yes, until 18:00");

    // mgmt's clock stayed in the present: its next event is stamped now.
    let (s, _) = http(
        "POST",
        mgmt.http_port,
        &format!("/api/v1/conversations/{conv}/resolve"),
        Some(&token),
        Some("{}"),
    )
    .unwrap();
    assert_eq!(s, 200);
    let mine = get_json(&mgmt, &token, "/api/v1/events?device=mgmt&limit=1");
    let at = mine[0]["at"]["ms"].as_u64().unwrap();
    assert!(at < now_ms() + 60_000, "mgmt stamps {at}: {mine}");

    // The honest device's own outcomes still count.
    for body in [
        EventBody::MessageSent {
            channel: Channel::Sms,
            line: "gsm0".into(),
            to: CUSTOMER.into(),
            text: "Yes, until 18:00".into(),
            command: real.id,
            refs: vec![1],
            auto_reply: false,
        },
        EventBody::DeliveryStatus {
            command: real.id,
            part: Some(1),
            state: DeliveryState::Delivered,
            detail: None,
        },
    ] {
        good.publish(topic("good"), QoS::AtLeastOnce, false, good_event(body))
            .await
            .unwrap();
    }
    wait_for_async(
        "the honest reply delivered",
        Duration::from_secs(20),
        || async {
            let c = get_json(&mgmt, &token, &format!("/api/v1/conversations/{conv}"));
            (c["timeline"][1]["state"] == "delivered").then_some(())
        },
    )
    .await;
    assert_eq!(metric(&mgmt, "crossline_events_refused_total"), n_forged);
    assert!(mgmt.sigterm());
}
