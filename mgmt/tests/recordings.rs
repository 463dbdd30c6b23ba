//! Recordings reach mgmt (docs/PROTOCOL.md, "Recordings") and are served to
//! who may see their conversation (docs/API.md, `GET /recordings/{id}`):
//! an in-process mgmt with its embedded broker, a device played by rumqttc
//! (events, chunks, answers), users over real HTTP.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::desk::{login, setup};
use common::{DEADLINE, Mgmt};
use crossline_core::{CallId, Event, EventBody, EventId, Hlc, NodeId, RecordingId};
use crossline_mgmt::services::fleet::credentials::{hash_secret, new_secret};
use crossline_mgmt::services::users::repo::AuditRepo;
use crossline_proto::recording::{RecordingChunk, RecordingState};
use crossline_proto::{DeviceTopic, EventBatch, Hello, Kind, decode, encode};
use crossline_store::DeviceRegistry;
use rumqttc::{AsyncClient, Event as MqttEvent, MqttOptions, Packet, QoS};
use sha2::{Digest, Sha256};
use std::time::Duration;
use tokio::sync::mpsc;

/// A WAV (8 kHz mono 16-bit) of `samples` samples of a 1 kHz-ish ramp.
fn wav(samples: usize) -> Vec<u8> {
    let data = (samples * 2) as u32;
    let mut w = Vec::with_capacity(44 + samples * 2);
    w.extend_from_slice(b"RIFF");
    w.extend_from_slice(&(36 + data).to_le_bytes());
    w.extend_from_slice(b"WAVEfmt ");
    w.extend_from_slice(&16u32.to_le_bytes());
    w.extend_from_slice(&1u16.to_le_bytes());
    w.extend_from_slice(&1u16.to_le_bytes());
    w.extend_from_slice(&8000u32.to_le_bytes());
    w.extend_from_slice(&16000u32.to_le_bytes());
    w.extend_from_slice(&2u16.to_le_bytes());
    w.extend_from_slice(&16u16.to_le_bytes());
    w.extend_from_slice(b"data");
    w.extend_from_slice(&data.to_le_bytes());
    for i in 0..samples {
        w.extend_from_slice(&(((i * 97) % 4096) as i16 - 2048).to_le_bytes());
    }
    w
}

fn sha256(b: &[u8]) -> String {
    Sha256::digest(b)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A device: its events, its recording chunks and mgmt's answers.
struct Dev {
    id: NodeId,
    client: AsyncClient,
    states: mpsc::UnboundedReceiver<RecordingState>,
    acks: mpsc::UnboundedReceiver<()>,
    task: tokio::task::JoinHandle<()>,
}

impl Dev {
    async fn connect(m: &Mgmt, id: &NodeId, secret: &str) -> Dev {
        let mut o = MqttOptions::new(id.as_str(), "127.0.0.1", m.mqtt_port);
        o.set_credentials(id.as_str(), secret);
        o.set_keep_alive(Duration::from_secs(10));
        o.set_max_packet_size(300 * 1024, 300 * 1024);
        let (client, mut el) = AsyncClient::new(o, 100);
        let (stx, states) = mpsc::unbounded_channel();
        let (atx, acks) = mpsc::unbounded_channel();
        let rec_state = DeviceTopic::new(id, Kind::RecState).to_string();
        let ack = DeviceTopic::new(id, Kind::Ack).to_string();
        let c2 = client.clone();
        let task = tokio::spawn(async move {
            loop {
                match el.poll().await {
                    Ok(MqttEvent::Incoming(Packet::ConnAck(_))) => {
                        c2.subscribe(rec_state.clone(), QoS::AtLeastOnce)
                            .await
                            .unwrap();
                        c2.subscribe(ack.clone(), QoS::AtLeastOnce).await.unwrap();
                    }
                    Ok(MqttEvent::Incoming(Packet::Publish(p))) if p.topic == rec_state => {
                        let _ = stx.send(decode::<RecordingState>(&p.payload).unwrap());
                    }
                    Ok(MqttEvent::Incoming(Packet::Publish(p))) if p.topic == ack => {
                        let _ = atx.send(());
                    }
                    Ok(_) => {}
                    Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
                }
            }
        });
        Dev {
            id: id.clone(),
            client,
            states,
            acks,
            task,
        }
    }

    async fn publish(&self, kind: Kind, payload: Vec<u8>) {
        self.client
            .publish(
                DeviceTopic::new(&self.id, kind).to_string(),
                QoS::AtLeastOnce,
                false,
                payload,
            )
            .await
            .unwrap();
    }

    /// Publishes `events` and waits for mgmt's ack of them.
    async fn events(&mut self, events: Vec<Event>) {
        let head = events.last().map(|e| e.seq).unwrap_or(0);
        loop {
            let h = Hello {
                v: 1,
                head,
                acked: 0,
                software: "test".into(),
            };
            self.publish(Kind::Hello, encode(&h)).await;
            if let Ok(Some(())) =
                tokio::time::timeout(Duration::from_millis(300), self.acks.recv()).await
            {
                break;
            }
        }
        self.publish(Kind::Events, encode(&EventBatch::new(events)))
            .await;
    }

    /// Sends a chunk (or a question) and returns mgmt's answer.
    async fn chunk(&mut self, c: RecordingChunk) -> RecordingState {
        let id = c.id;
        self.publish(Kind::Rec, encode(&c)).await;
        loop {
            let s = tokio::time::timeout(DEADLINE, self.states.recv())
                .await
                .expect("mgmt did not answer a recording chunk")
                .unwrap();
            if s.id == id {
                return s;
            }
        }
    }
}

fn event(origin: &NodeId, seq: u64, body: EventBody) -> Event {
    Event {
        id: EventId::new(),
        origin: origin.clone(),
        seq,
        at: Hlc {
            ms: crossline_mgmt::clock::now_ms(),
            c: 0,
        },
        conversation: None,
        body,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_voicemail_uploaded_with_an_interruption_is_served_to_who_may_see_it() {
    let m = setup().await;
    let node = NodeId::new("branch-rec").unwrap();
    let secret = new_secret();
    m.running()
        .store
        .put_device(&node, &hash_secret(&secret).unwrap())
        .await
        .unwrap();
    let mut dev = Dev::connect(&m, &node, &secret).await;

    // An SMS, then a call from the same number on gsm0 (queue north: ana's),
    // with a voicemail.
    let from = "+380501234567";
    let audio = wav(40_000); // 80 KB: two chunks
    let (call, rec) = (CallId::new(), RecordingId::new());
    let events = vec![
        event(&node, 1, common::sms("gsm0", from, "Добрий день")),
        event(
            &node,
            2,
            EventBody::CallRinging {
                call,
                line: "gsm0".into(),
                from: Some(from.into()),
                name: None,
                withheld: false,
                to: None,
            },
        ),
        event(
            &node,
            3,
            EventBody::VoicemailRecorded {
                call,
                recording: rec,
                duration_ms: 5_000,
                bytes: audio.len() as u64,
                sha256: sha256(&audio),
            },
        ),
    ];

    // Before its event is in: refused, nothing kept.
    let s = dev.chunk(RecordingChunk::new(rec, 0, &audio[..1000])).await;
    assert!(
        s.error.as_deref().unwrap().contains("not declared"),
        "{s:?}"
    );
    assert_eq!(s.have, 0);

    dev.events(events).await;
    let conversation = common::desk::routed(&m, from).await;
    // Declared once ingested (the projection is in the same transaction).
    let q = query_until(&mut dev, rec, |s| s.error.is_none()).await;
    assert_eq!((q.have, q.complete), (0, false));

    // The first chunk, then the device drops off (a new connection, as after
    // an outage or a restart) and asks where to go on.
    let s = dev
        .chunk(RecordingChunk::new(rec, 0, &audio[..65_536]))
        .await;
    assert_eq!(s.have, 65_536);
    dev.task.abort();
    let _ = dev.client.disconnect().await;
    let mut dev = Dev::connect(&m, &node, &secret).await;
    let q = query_until(&mut dev, rec, |_| true).await;
    assert_eq!(q.have, 65_536, "mgmt says where it is");
    // A rogue chunk (a gap) is refused and loses nothing.
    let s = dev
        .chunk(RecordingChunk::new(rec, 70_000, &audio[70_000..]))
        .await;
    assert_eq!(s.have, 65_536);
    assert!(
        s.error.as_deref().unwrap().contains("send from 65536"),
        "{s:?}"
    );
    // Another device may not upload it.
    let other = NodeId::new("branch-other").unwrap();
    let other_secret = new_secret();
    m.running()
        .store
        .put_device(&other, &hash_secret(&other_secret).unwrap())
        .await
        .unwrap();
    let mut rogue = Dev::connect(&m, &other, &other_secret).await;
    let s = query_until(&mut rogue, rec, |_| true).await;
    assert!(s.error.is_some() && s.have == 0, "{s:?}");

    let s = dev
        .chunk(RecordingChunk::new(rec, 65_536, &audio[65_536..]))
        .await;
    assert!(s.complete, "{s:?}");
    let stored = m.data_dir().join("recordings").join(format!("{rec}.wav"));
    assert_eq!(std::fs::read(&stored).unwrap(), audio, "stored intact");

    // Served: ana (queue north) with a range, sofia (supervisor) whole;
    // ivan (team south) refused.
    let ana = login(&m, "ana", "ana-password").await;
    // Arrived: the call card in the desk now offers the player.
    let r = common::desk::req(
        &m,
        "GET",
        &format!("/desk/c/{conversation}"),
        &[("Cookie", &ana.cookie)],
        None,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.head);
    assert!(
        r.body.contains(&format!(r#"src="/recordings/{rec}""#))
            && r.body.contains(r#"data-testid="voicemail-audio""#),
        "the arrived voicemail plays in the desk: {}",
        r.body
    );
    assert!(!r.body.contains("voicemail-arriving"), "{}", r.body);
    let path = format!("/recordings/{rec}");
    let r = common::desk::req(
        &m,
        "GET",
        &path,
        &[("Cookie", &ana.cookie), ("Range", "bytes=0-3")],
        None,
    )
    .await;
    assert_eq!(r.status, 206, "{}", r.head);
    assert_eq!(r.body, "RIFF");
    let len = audio.len();
    assert_eq!(
        r.header("content-range").as_deref(),
        Some(format!("bytes 0-3/{len}").as_str())
    );
    assert_eq!(r.header("accept-ranges").as_deref(), Some("bytes"));
    assert_eq!(r.header("content-type").as_deref(), Some("audio/wav"));
    let r = common::desk::req(
        &m,
        "GET",
        &path,
        &[("Cookie", &ana.cookie), ("Range", "bytes=8-11")],
        None,
    )
    .await;
    assert_eq!((r.status, r.body.as_str()), (206, "WAVE"));
    let r = common::desk::req(
        &m,
        "GET",
        &path,
        &[("Cookie", &ana.cookie), ("Range", &format!("bytes={len}-"))],
        None,
    )
    .await;
    assert_eq!(r.status, 416);
    assert_eq!(
        r.header("content-range").as_deref(),
        Some(format!("bytes */{len}").as_str())
    );
    let sofia = login(&m, "sofia", "sofia-password").await;
    let r = sofia.get(&path).await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("content-length").as_deref(),
        Some(len.to_string().as_str())
    );
    let ivan = login(&m, "ivan", "ivan-password").await;
    assert_eq!(ivan.get(&path).await.status, 403);
    // Not logged in: the login page.
    let r = common::desk::req(&m, "GET", &path, &[], None).await;
    assert_eq!(r.status, 303);
    assert_eq!(
        common::desk::req(
            &m,
            "GET",
            &format!("/recordings/{}", RecordingId::new()),
            &[("Cookie", &ana.cookie)],
            None
        )
        .await
        .status,
        404
    );

    // Audited, with the conversation.
    let audit = m
        .running()
        .store
        .recent_entries(None, None, 50)
        .await
        .unwrap();
    let seen = |actor: &str, action: &str| {
        audit.iter().any(|e| {
            e.actor == actor
                && e.action == action
                && e.target == rec.to_string()
                && e.detail == conversation
        })
    };
    assert!(seen("ana", "recording.listen"));
    assert!(seen("sofia", "recording.listen"));
    assert!(seen("ivan", "recording.denied"));
    m.stop().await;
}

/// Asks mgmt about `rec` until its answer satisfies `ok` (a new connection
/// may need a moment to be subscribed).
async fn query_until(
    dev: &mut Dev,
    rec: RecordingId,
    ok: impl Fn(&RecordingState) -> bool,
) -> RecordingState {
    let start = std::time::Instant::now();
    loop {
        dev.publish(Kind::Rec, encode(&RecordingChunk::query(rec)))
            .await;
        if let Ok(Some(s)) =
            tokio::time::timeout(Duration::from_millis(300), dev.states.recv()).await
            && s.id == rec
            && ok(&s)
        {
            return s;
        }
        assert!(
            start.elapsed() < DEADLINE,
            "mgmt never gave the expected state of {rec}"
        );
    }
}
