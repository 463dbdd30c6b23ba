//! The conversation projector is handed every event a store request stored
//! at once and projects runs of inbound messages in one pass (one update per
//! conversation and per line). Whatever the batching, contacts,
//! conversations, timelines, replies and lines must come out exactly as
//! when each event is projected on its own.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use crossline_core::{
    Channel, ConversationId, DeliveryState, Event, EventBody, EventId, Hlc, NodeId,
};
use crossline_mgmt::services::contacts::address::Region;
use crossline_mgmt::storage::sqlite::projection as conversations;
use crossline_store::{EventLog, Schema, SqliteStore, StoreOptions};
use rusqlite::types::Value;

/// Every projection table, each row as text, sorted.
const TABLES: &[&str] = &[
    "contact",
    "contact_identity",
    "conversation",
    "conversation_identity",
    "timeline_entry",
    "reply_part",
    "device_line",
    "pending_command",
    "command_device",
    "contact_merge",
    "contact_merge_moved",
    "call",
    "call_step",
    "call_device",
];

fn open(path: &std::path::Path) -> SqliteStore {
    SqliteStore::open_with(
        path,
        NodeId::new("mgmt").unwrap(),
        StoreOptions {
            schema: Schema::Mgmt,
            projector: Some(conversations::projector(Region::default())),
            ..Default::default()
        },
    )
    .unwrap()
}

async fn snapshot(s: &SqliteStore) -> Vec<String> {
    s.read(|c| {
        let mut out = Vec::new();
        for t in TABLES {
            let mut st = c.prepare(&format!("SELECT * FROM {t}"))?;
            let n = st.column_count();
            let mut rows = st
                .query_map([], |r| {
                    (0..n)
                        .map(|i| r.get::<_, Value>(i).map(|v| format!("{v:?}")))
                        .collect::<rusqlite::Result<Vec<_>>>()
                        .map(|cols| format!("{t}: {}", cols.join(" | ")))
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            rows.sort();
            out.extend(rows);
        }
        Ok(out)
    })
    .await
    .unwrap()
}

struct Log {
    origin: NodeId,
    events: Vec<Event>,
}

impl Log {
    fn push(&mut self, ms: u64, conversation: Option<EventId>, body: EventBody) -> Event {
        let e = Event {
            id: EventId::new(),
            origin: self.origin.clone(),
            seq: self.events.len() as u64 + 1,
            at: Hlc { ms, c: 0 },
            conversation: conversation.map(|c| ConversationId(c.0)),
            body,
        };
        self.events.push(e.clone());
        e
    }

    fn sms(&mut self, ms: u64, line: &str, from: &str, text: &str) -> Event {
        self.push(ms, None, common::sms(line, from, text))
    }
}

const T: u64 = 1_763_900_000_000;

/// The prelude both databases get one event at a time: contacts A and B
/// (B's conversation resolved, then B merged into A).
fn prelude(log: &mut Log) -> (EventId, String, String) {
    let a = log.sms(T, "gsm0", "+380501111111", "a1");
    let b = log.sms(T + 1, "gsm0", "+380502222222", "b1");
    log.push(
        T + 2,
        Some(b.id),
        EventBody::ConversationResolved { by: None },
    );
    (a.id, a.id.to_string(), b.id.to_string())
}

/// The batch: several conversations interleaved, one sender in two forms,
/// a merged contact's second number, odd senders and lines, stamps out of
/// order, a resolve in the middle of a run, an appliance's auto-reply with
/// its delivery report, a report for an unknown command, and a line seen
/// at intervals around the 60 s step.
fn batch(log: &mut Log, conv_a: EventId) {
    log.sms(T + 1_000, "gsm0", "+380501111111", "a2");
    log.sms(T + 2_000, "gsm1", "0503333333", "c1");
    log.sms(T + 3_000, "gsm1", "+380502222222", "b2 (merged into A)");
    log.sms(T + 4_000, "gsm0", "+380503333333", "c2 (C in E.164)");
    log.sms(T + 5_000, "gsm0", "Bank", "alphanumeric");
    log.sms(T + 6_000, "gsm0", "", "no sender at all");
    let long_line = "x".repeat(100);
    log.sms(
        T + 7_000,
        &long_line,
        "+380501111111",
        "a3 on a line too long to record",
    );
    log.sms(T + 500, "gsm1", "+380503333333", "c3 stamped before c2");
    log.push(
        T + 8_000,
        Some(conv_a),
        EventBody::ConversationResolved {
            by: Some("agent".into()),
        },
    );
    log.sms(
        T + 9_000,
        "gsm0",
        "+380502222222",
        "b3 opens A's next conversation",
    );
    log.sms(T + 9_500, "gsm0", "+380501111111", "a4 joins it");
    let cmd = EventId::new();
    log.push(
        T + 10_000,
        None,
        EventBody::MessageSent {
            channel: Channel::Sms,
            line: "gsm1".into(),
            to: "+380503333333".into(),
            text: "we are closed".into(),
            command: cmd,
            refs: vec![7, 8],
            auto_reply: true,
        },
    );
    log.sms(
        T + 10_500,
        "gsm1",
        "+380503333333",
        "c4 after the auto-reply",
    );
    log.push(
        T + 11_000,
        None,
        EventBody::DeliveryStatus {
            command: cmd,
            part: Some(1),
            state: DeliveryState::Delivered,
            detail: None,
        },
    );
    log.push(
        T + 11_500,
        None,
        EventBody::DeliveryStatus {
            command: EventId::new(),
            part: None,
            state: DeliveryState::Failed,
            detail: Some("unknown command".into()),
        },
    );
    // Line gsm2 seen at +0, +70 s (moves), +100 s (within 60 s of the last
    // move: stays), +140 s (moves): the last-seen time is +140 s, not +100 s.
    for (i, dt) in [0u64, 70_000, 100_000, 140_000].into_iter().enumerate() {
        log.sms(
            T + 20_000 + dt,
            "gsm2",
            &format!("+38050444444{i}"),
            "line step",
        );
    }
    for i in 0..40u64 {
        log.sms(
            T + 200_000 + i,
            ["gsm0", "gsm1"][i as usize % 2],
            &format!("+3805055555{:02}", i % 7),
            &format!("burst {i}"),
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batched_projection_equals_one_event_at_a_time() {
    let dir = tempfile::tempdir().unwrap();
    let dev = NodeId::new("dev").unwrap();
    let mut log = Log {
        origin: dev.clone(),
        events: Vec::new(),
    };
    let (conv_a, contact_a, contact_b) = prelude(&mut log);
    let pre = log.events.len();
    batch(&mut log, conv_a);
    let (prelude_events, events) = log.events.split_at(pre);

    // The same events into three databases: one event per request, all in
    // one request, and requests of 3 (runs cut at arbitrary places).
    let mut stores = Vec::new();
    for (name, chunk) in [("one", 1), ("all", events.len()), ("threes", 3)] {
        let s = open(&dir.path().join(format!("{name}.db")));
        for e in prelude_events {
            s.ingest(&dev, vec![e.clone()]).await.unwrap();
        }
        // The merge as an event of another mgmt node, stamped alike in
        // every database (the projector applies it like a local one).
        let hq = NodeId::new("hq").unwrap();
        let merge = Event {
            id: EventId(uuid::Uuid::from_u128(1)),
            origin: hq.clone(),
            seq: 1,
            at: Hlc { ms: T + 3, c: 0 },
            conversation: None,
            body: EventBody::ContactsMerged {
                survivor: contact_a.parse().unwrap(),
                merged: contact_b.parse().unwrap(),
                by: "admin".into(),
            },
        };
        assert_eq!(s.ingest(&hq, vec![merge]).await.unwrap().stored, 1);
        let merged_into: String = s
            .read(|c| c.query_row("SELECT survivor FROM contact_merge", [], |r| r.get(0)))
            .await
            .unwrap();
        assert_eq!(merged_into, contact_a);
        for c in events.chunks(chunk) {
            let o = s.ingest(&dev, c.to_vec()).await.unwrap();
            assert_eq!(o.stored, c.len());
        }
        stores.push((name, s));
    }
    let reference = snapshot(&stores[0].1).await;
    for (name, s) in &stores[1..] {
        let got = snapshot(s).await;
        if got != reference {
            let only_ref: Vec<_> = reference.iter().filter(|r| !got.contains(r)).collect();
            let only_got: Vec<_> = got.iter().filter(|r| !reference.contains(r)).collect();
            panic!(
                "{name}: projections differ from one event at a time\n\
                 one at a time only: {only_ref:#?}\n{name} only: {only_got:#?}"
            );
        }
    }

    // What one event at a time gives is what a person expects.
    let s = &stores[1].1;
    let q = |sql: &'static str| s.read(move |c| c.query_row(sql, [], |r| r.get::<_, i64>(0)));
    let gsm2 = s
        .read(|c| {
            c.query_row(
                "SELECT last_ms FROM device_line WHERE device = 'dev' AND line = 'gsm2'",
                [],
                |r| r.get::<_, i64>(0),
            )
        })
        .await
        .unwrap();
    assert_eq!(gsm2, (T + 20_000 + 140_000) as i64);
    // A: its first conversation holds a1, a2, b2, a3 (resolved); the next
    // holds b3 and a4 and shows B's number (the one that opened it).
    let first_a = s
        .read(move |c| {
            c.query_row(
                "SELECT status, messages, unread, last_ms FROM conversation WHERE id = ?1",
                [conv_a.to_string()],
                |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, i64>(1)?,
                        r.get::<_, i64>(2)?,
                        r.get::<_, i64>(3)?,
                    ))
                },
            )
        })
        .await
        .unwrap();
    assert_eq!(first_a, ("resolved".into(), 4, 0, (T + 8_000) as i64));
    assert_eq!(
        q("SELECT count(*) FROM conversation_identity WHERE address = '+380502222222'")
            .await
            .unwrap(),
        2,
        "B's resolved conversation and A's new one are with B's number"
    );
    // C: two forms of one number, one conversation; the stamp of c3 does
    // not move its last activity back; the auto-reply counts.
    let c = s
        .read(|c| {
            c.query_row(
                "SELECT messages, unread, last_ms, last_preview FROM conversation c
                 JOIN contact_identity i ON i.contact_id = c.contact_id
                 WHERE i.address = '+380503333333'",
                [],
                |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, i64>(1)?,
                        r.get::<_, i64>(2)?,
                        r.get::<_, String>(3)?,
                    ))
                },
            )
        })
        .await
        .unwrap();
    assert_eq!(
        c,
        (5, 4, (T + 10_500) as i64, "c4 after the auto-reply".into())
    );
    assert_eq!(
        q("SELECT count(*) FROM timeline_entry").await.unwrap(),
        events.len() as i64 + pre as i64 - 2,
        "every message, the two resolves and the auto-reply, not the two delivery reports"
    );

    // Resent (all duplicates, then duplicates with new events after them):
    // nothing is projected twice.
    let all = &stores[1].1;
    let before = snapshot(all).await;
    let o = all.ingest(&dev, events.to_vec()).await.unwrap();
    assert_eq!((o.stored, o.duplicates), (0, events.len()));
    assert_eq!(snapshot(all).await, before);
    for (_, s) in stores {
        s.close().unwrap();
    }
}
