//! mgmt's ingestion keeps several rounds queued at its store while one
//! commits: what a device sees must not change. Every ack is for committed
//! events only, acks of a device never go backwards, and a burst with
//! redeliveries is stored (and projected) exactly once, in order.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{DEADLINE, Mgmt};
use crossline_core::{Event, EventId, Hlc, NodeId};
use crossline_mgmt::services::fleet::credentials::{hash_secret, new_secret};
use crossline_proto::{Ack, DeviceTopic, EventBatch, Hello, Kind, decode, encode};
use crossline_store::{DeviceRegistry, EventLog};
use rumqttc::{AsyncClient, Event as MqttEvent, MqttOptions, Packet, QoS};
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_rounds_ack_only_committed_events_in_order_exactly_once() {
    let mgmt = Mgmt::start().await;
    let store = mgmt.running().store.clone();
    let id = NodeId::new("branch-1").unwrap();
    let secret = new_secret();
    store
        .put_device(&id, &hash_secret(&secret).unwrap())
        .await
        .unwrap();

    let mut opts = MqttOptions::new(id.as_str(), "127.0.0.1", mgmt.mqtt_port);
    opts.set_credentials(id.as_str(), &secret);
    opts.set_keep_alive(Duration::from_secs(10));
    opts.set_max_packet_size(1 << 20, 1 << 20);
    let (client, mut el) = AsyncClient::new(opts, 10_000);
    let ack_topic = DeviceTopic::new(&id, Kind::Ack).to_string();
    loop {
        if let MqttEvent::Incoming(Packet::ConnAck(_)) = el.poll().await.unwrap() {
            break;
        }
    }
    client
        .subscribe(ack_topic.clone(), QoS::AtLeastOnce)
        .await
        .unwrap();
    let (acks_tx, mut acks) = tokio::sync::mpsc::unbounded_channel::<Ack>();
    tokio::spawn(async move {
        loop {
            match el.poll().await {
                Ok(MqttEvent::Incoming(Packet::Publish(p))) if p.topic == ack_topic => {
                    let _ = acks_tx.send(decode(&p.payload).unwrap());
                }
                Ok(_) => {}
                Err(e) => panic!("the device's MQTT connection failed: {e}"),
            }
        }
    });
    let hello = |head| Hello {
        v: 1,
        head,
        acked: 0,
        software: "test".into(),
    };
    let hello_topic = DeviceTopic::new(&id, Kind::Hello).to_string();
    // mgmt answers a Hello once its ingestion is subscribed.
    let start = Instant::now();
    loop {
        client
            .publish(&hello_topic, QoS::AtLeastOnce, false, encode(&hello(0)))
            .await
            .unwrap();
        if let Ok(Some(_)) = tokio::time::timeout(Duration::from_millis(300), acks.recv()).await {
            break;
        }
        assert!(start.elapsed() < DEADLINE, "mgmt never answered Hello");
    }

    // 200 batches of 50 inbound SMS from 30 senders, every 7th batch
    // delivered twice (a redelivery), a Hello in the middle: all published
    // at once, so ingestion has many rounds in flight.
    let (batches, per) = (200u64, 50u64);
    let total = batches * per;
    let events: Vec<Event> = (1..=total)
        .map(|seq| Event {
            id: EventId::new(),
            origin: id.clone(),
            seq,
            at: Hlc {
                ms: 1_763_900_000_000 + seq,
                c: 0,
            },
            conversation: None,
            body: common::sms("gsm0", &format!("+38050{:07}", seq % 30), "hello"),
        })
        .collect();
    let topic = DeviceTopic::new(&id, Kind::Events).to_string();
    for (i, chunk) in events.chunks(per as usize).enumerate() {
        let payload = encode(&EventBatch::new(chunk.to_vec()));
        client
            .publish(&topic, QoS::AtLeastOnce, false, payload.clone())
            .await
            .unwrap();
        if i % 7 == 0 {
            client
                .publish(&topic, QoS::AtLeastOnce, false, payload)
                .await
                .unwrap();
        }
        if i == batches as usize / 2 {
            client
                .publish(&hello_topic, QoS::AtLeastOnce, false, encode(&hello(total)))
                .await
                .unwrap();
        }
    }

    // Every ack: at most what is committed at the moment it arrives, never
    // below the previous one, never a resend request (nothing was lost).
    let mut last = 0;
    let deadline = Instant::now() + Duration::from_secs(60);
    while last < total {
        let left = deadline.saturating_duration_since(Instant::now());
        let ack = tokio::time::timeout(left, acks.recv())
            .await
            .unwrap_or_else(|_| panic!("acks stopped at {last} of {total}"))
            .unwrap();
        let committed = store.contiguous(&id).await.unwrap();
        assert!(
            ack.acked <= committed,
            "ack {} arrived while only {committed} were committed",
            ack.acked
        );
        assert!(
            ack.acked >= last,
            "ack went back from {last} to {}",
            ack.acked
        );
        assert_eq!(ack.resend_from, None, "no hole was made: {ack:?}");
        last = ack.acked;
    }

    // Stored once each, in order, and projected once each.
    let stored = store.read_from(&id, 1, total as usize + 10).await.unwrap();
    assert_eq!(stored, events);
    let (messages, conversations): (i64, i64) = store
        .read(|c| {
            c.query_row(
                "SELECT sum(messages), count(*) FROM conversation",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
        })
        .await
        .unwrap();
    assert_eq!((messages, conversations), (total as i64, 30));
    mgmt.stop().await;
}

/// One device's stream through the broker: batches that mix several
/// conversations, a batch delivered twice, and a malformed batch (one event
/// of it is a known kind with a malformed body) in between. The malformed
/// message is refused whole and counted; everything else is stored and
/// projected once. (A kind mgmt does not know at all is stored raw, not
/// refused: web.rs, an_event_of_a_kind_mgmt_does_not_know_is_kept_and_shown_to_admins.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mixed_batches_with_duplicates_and_a_malformed_one() {
    let mgmt = Mgmt::start().await;
    let mut dev = mgmt.device("branch-mix").await;
    let senders = ["+380501000001", "+380501000002", "0501000003", "Bank"];
    let mut events = Vec::new();
    for i in 0..12 {
        events.push(dev.event(common::sms(
            ["gsm0", "gsm1"][i % 2],
            senders[i % senders.len()],
            &format!("m{i}"),
        )));
    }
    let (first, rest) = events.split_at(6);
    dev.publish(first.to_vec()).await;
    dev.publish(first.to_vec()).await; // a redelivery
    // seq 7..12 with one event's body malformed (a known kind whose parts
    // count is not a number): refused whole.
    let mut bad = serde_json::to_value(EventBatch::new(rest.to_vec())).unwrap();
    bad["events"][2]["body"]["parts"] = serde_json::Value::from("many");
    let bad = serde_json::to_vec(&bad).unwrap();
    dev.publish_payload(bad).await;
    dev.publish(rest.to_vec()).await;
    dev.publish(events.clone()).await; // everything again

    let store = mgmt.running().store.clone();
    let id = dev.id.clone();
    common::wait_for(|| {
        let (store, id) = (store.clone(), id.clone());
        async move { (store.contiguous(&id).await.unwrap() == 12).then_some(()) }
    })
    .await;
    let stored = store.read_from(&dev.id, 1, 100).await.unwrap();
    assert_eq!(stored, events);
    let (messages, unread, conversations): (i64, i64, i64) = store
        .read(|c| {
            c.query_row(
                "SELECT sum(messages), sum(unread), count(*) FROM conversation",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
        })
        .await
        .unwrap();
    assert_eq!((messages, unread, conversations), (12, 12, 4));
    let timeline: i64 = store
        .read(|c| c.query_row("SELECT count(*) FROM timeline_entry", [], |r| r.get(0)))
        .await
        .unwrap();
    assert_eq!(timeline, 12);
    let http = mgmt.running().http_addr.to_string();
    let (_, metrics) = common::http(&http, "GET", "/metrics", None, None).await;
    let metrics = String::from_utf8_lossy(&metrics);
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("crossline_payloads_rejected_total") && l.ends_with(" 1")),
        "the malformed batch is counted once: {metrics}"
    );
    mgmt.stop().await;
}
