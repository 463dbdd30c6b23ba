//! Consumers follow the log: the projector's change set, a consumer that
//! stalls while thousands of events arrive, routing resuming from its
//! durable cursor after a restart.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{Mgmt, wait_for};
use crossline_core::{Change, ConversationId, Direction, Event, EventBody, EventId, Hlc, NodeId};
use crossline_mgmt::config::Config;
use crossline_store::{EventLog, Feed, FeedEntry, Follower, NewEvent, SqliteStore};
use serde_json::Value;
use std::collections::{HashMap, HashSet};
use std::time::Duration;

fn node(s: &str) -> NodeId {
    NodeId::new(s).unwrap()
}

/// mgmt's database in `dir`, opened as mgmt opens it (projector, gate).
fn open_mgmt_store(dir: &std::path::Path) -> SqliteStore {
    let mut cfg: Config = toml::from_str("").unwrap();
    cfg.data_dir = dir.to_path_buf();
    crossline_mgmt::server::open_store(&cfg).unwrap()
}

fn inbound(origin: &NodeId, seq: u64, from: &str, text: &str) -> Event {
    Event {
        id: EventId::new(),
        origin: origin.clone(),
        seq,
        at: Hlc {
            ms: crossline_mgmt::clock::now_ms(),
            c: 0,
        },
        conversation: None,
        body: common::sms("gsm0", from, text),
    }
}

/// The conversation the projection put a stored event in.
async fn timeline_conversation(store: &SqliteStore, event: EventId) -> Option<String> {
    store
        .read(move |c| {
            use rusqlite::OptionalExtension;
            c.query_row(
                "SELECT conversation_id FROM timeline_entry WHERE event_id = ?1",
                [event.to_string()],
                |r| r.get(0),
            )
            .optional()
        })
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_change_set_says_what_the_projection_decided() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_mgmt_store(dir.path());
    store.put_device_for_test(&node("branch-a")).await;
    let a = node("branch-a");
    let first = inbound(&a, 1, "+380501110001", "Добрий день");
    let second = inbound(&a, 2, "+380501110001", "ще питання");
    store
        .ingest(&a, vec![first.clone(), second.clone()])
        .await
        .unwrap();
    let feed = store.read_feed(0, 10).await.unwrap();
    assert_eq!(feed.len(), 2);
    let conv: ConversationId = timeline_conversation(&store, first.id)
        .await
        .unwrap()
        .parse()
        .unwrap();
    let contact = first.id.to_string();
    // The first message from a new number: a contact, a conversation, the message.
    assert_eq!(
        feed[0].changes,
        vec![
            Change::ContactCreated {
                contact: contact.clone()
            },
            Change::ConversationOpened {
                conversation: conv,
                contact: contact.clone(),
                channel: crossline_core::Channel::Sms,
            },
            Change::MessageAdded {
                conversation: conv,
                contact: contact.clone(),
                event: first.id,
                direction: Direction::Inbound,
                command: None,
                author: None,
            },
        ]
    );
    // The second joins it.
    assert_eq!(
        feed[1].changes,
        vec![Change::MessageAdded {
            conversation: conv,
            contact: contact.clone(),
            event: second.id,
            direction: Direction::Inbound,
            command: None,
            author: None,
        }]
    );

    // mgmt's own events: a reply, its delivery, a resolve.
    let command = EventId::new();
    let reply = store
        .append(vec![NewEvent {
            conversation: Some(conv),
            body: EventBody::ReplyRequested {
                command,
                channel: crossline_core::Channel::Sms,
                device: a.clone(),
                line: "gsm0".into(),
                to: "+380501110001".into(),
                text: "Вітаю".into(),
                author: Some("ana".into()),
            },
        }])
        .await
        .unwrap();
    let status = Event {
        id: EventId::new(),
        origin: a.clone(),
        seq: 3,
        at: Hlc {
            ms: crossline_mgmt::clock::now_ms(),
            c: 0,
        },
        conversation: None,
        body: EventBody::DeliveryStatus {
            command,
            part: None,
            state: crossline_core::DeliveryState::Failed,
            detail: Some("no such line".into()),
        },
    };
    store.ingest(&a, vec![status]).await.unwrap();
    store
        .append(vec![NewEvent {
            conversation: Some(conv),
            body: EventBody::ConversationResolved {
                by: Some("ana".into()),
            },
        }])
        .await
        .unwrap();
    let feed = store.read_feed(2, 10).await.unwrap();
    let changes: Vec<&Vec<Change>> = feed.iter().map(|e| &e.changes).collect();
    assert_eq!(
        changes,
        vec![
            &vec![Change::MessageAdded {
                conversation: conv,
                contact: contact.clone(),
                event: reply[0].id,
                direction: Direction::Outbound,
                command: Some(command),
                author: Some("ana".into()),
            }],
            &vec![Change::ReplyState {
                conversation: conv,
                command,
                state: crossline_core::DeliveryState::Failed,
            }],
            &vec![Change::ConversationResolved { conversation: conv }],
        ]
    );
}

/// Test-only shorthand: registers a device so the trust gate accepts it.
trait PutDevice {
    async fn put_device_for_test(&self, id: &NodeId);
}

impl PutDevice for SqliteStore {
    async fn put_device_for_test(&self, id: &NodeId) {
        use crossline_store::DeviceRegistry;
        self.put_device(id, "$test").await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_stalled_while_10000_events_arrive_catches_up_with_none_missing() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_mgmt_store(dir.path());
    // A consumer that starts following, then does not read.
    let mut stalled = Follower::from(store.clone(), 0);
    // Two branches, 500 customers each, 10,000 messages in batches as
    // appliances send them, both branches at once.
    let mut tasks = Vec::new();
    for b in 0..2u64 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let origin = node(&format!("branch-{b}"));
            store.put_device_for_test(&origin).await;
            let mut seq = 0u64;
            while seq < 5_000 {
                let batch: Vec<Event> = (0..50)
                    .map(|_| {
                        seq += 1;
                        let customer = 380_501_000_000 + b * 1_000 + seq % 500;
                        inbound(&origin, seq, &format!("+{customer}"), &format!("m{seq}"))
                    })
                    .collect();
                let out = store.ingest(&origin, batch).await.unwrap();
                assert_eq!(out.contiguous, seq);
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }

    // Resumed: everything since it stopped reading, in batches.
    let mut seen: Vec<FeedEntry> = Vec::new();
    while seen.len() < 10_000 {
        let batch = tokio::time::timeout(Duration::from_secs(15), stalled.next(1_000))
            .await
            .expect("the consumer catches up")
            .unwrap();
        seen.extend(batch);
    }
    assert_eq!(seen.len(), 10_000, "no event twice");
    let positions: Vec<u64> = seen.iter().map(|e| e.pos).collect();
    assert_eq!(
        positions,
        (1..=10_000).collect::<Vec<_>>(),
        "in order, none missing"
    );
    let nothing_more = tokio::time::timeout(Duration::from_millis(100), stalled.next(10)).await;
    assert!(nothing_more.is_err(), "nothing beyond what was stored");

    // Every message's change, exactly once, naming the conversation the
    // projection put it in.
    let mut opened = HashSet::new();
    let mut contacts = 0;
    let mut per_conversation: HashMap<ConversationId, Vec<u64>> = HashMap::new();
    for e in &seen {
        let added: Vec<&Change> = e
            .changes
            .iter()
            .filter(|c| matches!(c, Change::MessageAdded { .. }))
            .collect();
        assert_eq!(added.len(), 1, "position {}: {:?}", e.pos, e.changes);
        let Change::MessageAdded {
            conversation,
            event,
            direction: Direction::Inbound,
            ..
        } = added[0]
        else {
            panic!("{:?}", added[0]);
        };
        assert_eq!(*event, e.event.id);
        per_conversation
            .entry(*conversation)
            .or_default()
            .push(e.pos);
        for c in &e.changes {
            match c {
                Change::ConversationOpened { conversation, .. } => {
                    assert!(opened.insert(*conversation), "opened twice");
                }
                Change::ContactCreated { .. } => contacts += 1,
                _ => {}
            }
        }
    }
    assert_eq!(opened.len(), 1_000, "one conversation per customer");
    assert_eq!(contacts, 1_000);
    assert_eq!(per_conversation.len(), 1_000);
    assert!(per_conversation.values().all(|p| p.len() == 10));
    // The change set agrees with the tables (sampled).
    for e in seen.iter().step_by(997) {
        let Some(Change::MessageAdded { conversation, .. }) = e
            .changes
            .iter()
            .find(|c| matches!(c, Change::MessageAdded { .. }))
        else {
            unreachable!()
        };
        assert_eq!(
            timeline_conversation(&store, e.event.id).await,
            Some(conversation.to_string())
        );
    }
}

/// The facts of the routing decisions logged about `conversation`.
async fn facts(m: &Mgmt, conversation: &str) -> Vec<Value> {
    let (s, v) = m
        .get(&format!(
            "/api/v1/routing/decisions?conversation={conversation}"
        ))
        .await;
    assert_eq!(s, 200, "{v}");
    v["decisions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["fact"].clone())
        .collect()
}

fn arrivals(facts: &[Value]) -> usize {
    facts.iter().filter(|f| f["type"] == "arrived").count()
}

async fn conversation_of(m: &Mgmt, number: &str) -> String {
    let list = m
        .wait_list(&format!("?number={}", number.replace('+', "%2B")), |l| {
            l.len() == 1
        })
        .await;
    list[0]["id"].as_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routing_resumes_from_its_cursor_after_a_restart() {
    let mut m = Mgmt::start().await;
    let mut dev = m.device("branch-a").await;
    dev.sms("gsm0", "+380501110001", "Добрий день").await;
    let a = conversation_of(&m, "+380501110001").await;
    let before = wait_for(|| async {
        let f = facts(&m, &a).await;
        (arrivals(&f) == 1 && f.iter().any(|f| f["type"] == "queued")).then_some(f)
    })
    .await;

    // Routing has dealt with everything stored (its own decisions too).
    let store = m.running().store.clone();
    wait_for(|| async {
        let c = store.cursor("routing").await.unwrap();
        (c == Some(*store.head().borrow())).then_some(())
    })
    .await;
    drop(store);

    // mgmt stops; messages arrive while routing is not running (stored
    // into the log as ingestion would, by another process).
    m.running.take().unwrap().stop().await;
    let origin = node("branch-a");
    {
        let store = open_mgmt_store(m.data_dir());
        let next = store.contiguous(&origin).await.unwrap();
        store
            .ingest(
                &origin,
                vec![
                    inbound(&origin, next + 1, "+380501110002", "Є питання"),
                    inbound(&origin, next + 2, "+380501110001", "я ще тут"),
                ],
            )
            .await
            .unwrap();
        store.close().unwrap();
    }

    // Restarted, routing picks up right after where it stopped.
    let m = m.restart().await;
    let b = conversation_of(&m, "+380501110002").await;
    let fb = wait_for(|| async {
        let f = facts(&m, &b).await;
        f.iter().any(|f| f["type"] == "queued").then_some(f)
    })
    .await;
    assert_eq!(arrivals(&fb), 1, "{fb:?}");
    // a's second message reached routing; what routing had logged before is
    // not decided again.
    let after = wait_for(|| async {
        let f = facts(&m, &a).await;
        (f.len() > before.len()).then_some(f)
    })
    .await;
    assert_eq!(&after[..before.len()], &before[..], "{after:?}");
    assert_eq!(arrivals(&after), 1, "{after:?}");
    assert!(
        after[before.len()..]
            .iter()
            .all(|f| f["conversation"] == a.as_str()),
        "{after:?}"
    );
    // Its cursor reaches the head again.
    let store = m.running().store.clone();
    wait_for(|| async {
        let c = store.cursor("routing").await.unwrap();
        (c == Some(*store.head().borrow())).then_some(())
    })
    .await;
    m.stop().await;
}
