//! The log as its consumers follow it: positions, change sets, cursors.

use super::*;
use crate::{EventLog, Feed, FeedEntry, Follower};
use crossline_core::{Change, EventBody, EventId};

fn node(s: &str) -> NodeId {
    NodeId::new(s).unwrap()
}

fn hb(n: u64) -> NewEvent {
    NewEvent {
        conversation: None,
        body: EventBody::DeviceHeartbeat { uptime_s: n },
    }
}

/// A store whose projection reports, for every heartbeat, a change naming
/// its uptime (and refuses uptime 666, failing its request).
fn reporting(dir: &std::path::Path) -> SqliteStore {
    let projector: Projector = Box::new(|_tx, events, changes| {
        for (i, ev) in events.iter().enumerate() {
            if let EventBody::DeviceHeartbeat { uptime_s } = ev.body {
                if uptime_s == 666 {
                    return Err(rusqlite::Error::ToSqlConversionFailure(
                        "projection refuses 666".into(),
                    ));
                }
                changes.push(
                    i,
                    Change::ContactCreated {
                        contact: uptime_s.to_string(),
                    },
                );
            }
        }
        Ok(())
    });
    SqliteStore::open_with(
        &dir.join("log.db"),
        node("mgmt"),
        StoreOptions {
            projector: Some(projector),
            // Change sets and cursors are kept in mgmt's database.
            schema: Schema::Mgmt,
            ..StoreOptions::default()
        },
    )
    .unwrap()
}

fn uptime(e: &FeedEntry) -> u64 {
    match e.event.body {
        EventBody::DeviceHeartbeat { uptime_s } => uptime_s,
        ref other => panic!("unexpected {other:?}"),
    }
}

fn remote(origin: &NodeId, seqs: std::ops::RangeInclusive<u64>, base: u64) -> Vec<Event> {
    seqs.map(|seq| Event {
        id: EventId::new(),
        origin: origin.clone(),
        seq,
        at: Hlc {
            ms: 5_000 + seq,
            c: 0,
        },
        conversation: None,
        body: EventBody::DeviceHeartbeat {
            uptime_s: base + seq,
        },
    })
    .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stalled_follower_catches_up_on_10000_events_exactly_once_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let store = reporting(dir.path());
    // Subscribed before anything is stored, then not read while 10,000
    // events arrive: appended locally and ingested from two devices at once,
    // in batches of odd sizes, with a failing request among them.
    let mut follower = Follower::from(store.clone(), 0);
    let mut tasks = Vec::new();
    for d in 0..2u64 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let origin = node(&format!("branch-{d}"));
            let base = 1_000_000 * (d + 1);
            let mut seq = 1;
            while seq <= 3_000 {
                let last = (seq + 36).min(3_000);
                let out = store
                    .ingest(&origin, remote(&origin, seq..=last, base))
                    .await
                    .unwrap();
                assert_eq!(out.contiguous, last);
                seq = last + 1;
            }
        }));
    }
    {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut n = 1;
            while n <= 4_000 {
                let last = (n + 12).min(4_000);
                store
                    .append((n..=last).map(|u| hb(10_000 + u)).collect())
                    .await
                    .unwrap();
                if n == 1_301 {
                    assert!(store.append(vec![hb(666)]).await.is_err());
                }
                n = last + 1;
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(*store.head().borrow(), 10_000);

    // Resumed: every event once, in position order, each with its change.
    let mut seen = Vec::new();
    while seen.len() < 10_000 {
        let batch = tokio::time::timeout(std::time::Duration::from_secs(10), follower.next(777))
            .await
            .expect("the follower gets what is stored")
            .unwrap();
        seen.extend(batch);
    }
    assert_eq!(seen.len(), 10_000);
    let positions: Vec<u64> = seen.iter().map(|e| e.pos).collect();
    assert_eq!(
        positions,
        (1..=10_000).collect::<Vec<_>>(),
        "gapless, in order"
    );
    let mut uptimes: Vec<u64> = seen.iter().map(uptime).collect();
    for e in &seen {
        assert_eq!(
            e.changes,
            vec![Change::ContactCreated {
                contact: uptime(e).to_string()
            }],
            "the change of position {}",
            e.pos
        );
    }
    // Per origin in seq order (a device's events keep their order).
    for d in 0..2u64 {
        let origin = node(&format!("branch-{d}"));
        let seqs: Vec<u64> = seen
            .iter()
            .filter(|e| e.event.origin == origin)
            .map(|e| e.event.seq)
            .collect();
        assert_eq!(seqs, (1..=3_000).collect::<Vec<_>>());
    }
    uptimes.sort_unstable();
    uptimes.dedup();
    assert_eq!(uptimes.len(), 10_000, "no event twice");
    assert!(!uptimes.contains(&666), "the failed request left nothing");
    assert_eq!(follower.pos(), 10_000);

    // Nothing more until something is stored; then just that.
    let waiting =
        tokio::time::timeout(std::time::Duration::from_millis(50), follower.next(10)).await;
    assert!(waiting.is_err(), "no entry beyond the head");
    store.append(vec![hb(14_001)]).await.unwrap();
    let next = follower.next(10).await.unwrap();
    assert_eq!(next.len(), 1);
    assert_eq!((next[0].pos, uptime(&next[0])), (10_001, 14_001));
}

#[tokio::test]
async fn a_read_cut_inside_a_change_set_gets_the_rest_with_the_next_read() {
    let dir = tempfile::tempdir().unwrap();
    let store = reporting(dir.path());
    store.append((1..=10).map(hb).collect()).await.unwrap();
    let first = store.read_feed(0, 4).await.unwrap();
    let rest = store.read_feed(4, 100).await.unwrap();
    assert_eq!(first.len() + rest.len(), 10);
    for e in first.iter().chain(&rest) {
        assert_eq!(e.changes.len(), 1, "position {}", e.pos);
    }
    assert!(store.read_feed(10, 100).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_cursor_moves_forward_only_never_past_the_head_and_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = reporting(dir.path());
        assert_eq!(store.cursor("routing").await.unwrap(), None);
        store.append((1..=5).map(hb).collect()).await.unwrap();
        store.set_cursor("routing", 3).await.unwrap();
        store.set_cursor("routing", 2).await.unwrap();
        assert_eq!(store.cursor("routing").await.unwrap(), Some(3));
        let err = store.set_cursor("routing", 6).await.unwrap_err();
        assert!(err.to_string().contains("beyond"), "{err}");
        assert!(store.set_cursor("", 1).await.is_err());

        // Events and cursor in one transaction: a failing append moves nothing.
        assert!(
            store
                .append_at_cursor("routing", 5, vec![hb(666)])
                .await
                .is_err()
        );
        assert_eq!(store.cursor("routing").await.unwrap(), Some(3));
        let stored = store
            .append_at_cursor("routing", 5, vec![hb(6)])
            .await
            .unwrap();
        assert_eq!(stored.len(), 1);
        assert_eq!(store.cursor("routing").await.unwrap(), Some(5));
        store.close().unwrap();
    }
    let store = reporting(dir.path());
    assert_eq!(store.cursor("routing").await.unwrap(), Some(5));
    assert_eq!(*store.head().borrow(), 6, "the head is read at open");
    let after = store.read_feed(5, 10).await.unwrap();
    assert_eq!(after.len(), 1);
    assert_eq!(uptime(&after[0]), 6);
}
