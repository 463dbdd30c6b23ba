use super::*;
use crate::{Amendment, DeviceRegistry, EventLog, Outbox};
use crossline_core::{EventBody, EventId};
use std::collections::HashSet;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

fn node(s: &str) -> NodeId {
    NodeId::new(s).unwrap()
}

/// A store whose projection refuses a heartbeat with uptime 666 (so the
/// request carrying it fails).
fn refusing_666(dir: &std::path::Path) -> SqliteStore {
    let projector: Projector = per_event(|_tx, ev| match ev.body {
        EventBody::DeviceHeartbeat { uptime_s: 666 } => Err(
            rusqlite::Error::ToSqlConversionFailure("projection refuses 666".into()),
        ),
        _ => Ok(()),
    });
    SqliteStore::open_with(
        &dir.join("log.db"),
        node("local"),
        StoreOptions {
            projector: Some(projector),
            ..StoreOptions::default()
        },
    )
    .unwrap()
}

fn hb(n: u64) -> NewEvent {
    NewEvent {
        conversation: None,
        body: EventBody::DeviceHeartbeat { uptime_s: n },
    }
}

fn manual(start: u64) -> (Arc<AtomicU64>, impl WallClock + 'static) {
    let t = Arc::new(AtomicU64::new(start));
    let t2 = t.clone();
    (t, move || t2.load(Ordering::SeqCst))
}

fn remote(origin: &NodeId, seqs: impl IntoIterator<Item = u64>) -> Vec<Event> {
    seqs.into_iter()
        .map(|seq| Event {
            id: EventId::new(),
            origin: origin.clone(),
            seq,
            at: Hlc {
                ms: 5_000 + seq,
                c: 0,
            },
            conversation: None,
            body: EventBody::DeviceHeartbeat { uptime_s: seq },
        })
        .collect()
}

fn open(dir: &tempfile::TempDir) -> SqliteStore {
    SqliteStore::open(&dir.path().join("log.db"), node("local")).unwrap()
}

/// Polls `cond` until it holds or 10 s pass.
async fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// Occupies the writer thread until the returned sender is dropped or sent to.
fn block_writer(
    store: &SqliteStore,
) -> (
    std::sync::mpsc::Sender<()>,
    impl Future<Output = Result<()>> + use<>,
) {
    let (release, released) = std::sync::mpsc::channel::<()>();
    let (started_tx, started) = std::sync::mpsc::channel::<()>();
    let fut = store.write(move |_tx| {
        let _ = started_tx.send(());
        let _ = released.recv_timeout(Duration::from_secs(30));
        Ok(())
    });
    started
        .recv_timeout(Duration::from_secs(10))
        .expect("the writer picked up the blocking request");
    (release, fut)
}

#[test]
fn store_is_send_sync_clone() {
    fn is<T: Send + Sync + Clone + 'static>() {}
    is::<SqliteStore>();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_appends_are_gapless_unique_and_hlc_ordered() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let mut tasks = Vec::new();
    for t in 0..8u64 {
        let s = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut got = Vec::new();
            for i in 0..40u64 {
                // Mix single and multi-event appends.
                let batch = if i % 10 == 0 {
                    vec![hb(t), hb(t), hb(t)]
                } else {
                    vec![hb(t)]
                };
                let n = batch.len();
                let evs = s.append(batch).await.unwrap();
                assert_eq!(evs.len(), n);
                // One append's events are consecutive.
                for w in evs.windows(2) {
                    assert_eq!(w[1].seq, w[0].seq + 1);
                }
                got.extend(evs);
            }
            got
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    let n = 8 * (36 + 4 * 3) as u64;
    all.sort_by_key(|e| e.seq);
    assert_eq!(
        all.iter().map(|e| e.seq).collect::<Vec<_>>(),
        (1..=n).collect::<Vec<_>>()
    );
    assert_eq!(
        all.iter().map(|e| e.id).collect::<HashSet<_>>().len(),
        all.len()
    );
    for w in all.windows(2) {
        assert!(
            w[0].at < w[1].at,
            "HLC not increasing: {} then {}",
            w[0].at,
            w[1].at
        );
    }
    assert!(all.iter().all(|e| e.origin == node("local")));

    let stored = store.read_from(&node("local"), 1, 10_000).await.unwrap();
    assert_eq!(stored, all, "what was returned is what is stored");
    assert_eq!(store.contiguous(&node("local")).await.unwrap(), n);
    assert_eq!(store.counts().await.unwrap(), vec![(node("local"), n)]);
    assert_eq!(store.last_hlc(), all.last().unwrap().at);
    let stats = store.stats();
    assert_eq!(stats.requests, 8 * 40);
    assert!(stats.commits <= stats.requests);
}

#[tokio::test]
async fn group_commit_commits_queued_requests_together_in_call_order() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let before = store.stats();
    let (release, blocker) = block_writer(&store);
    // Queued while the writer is busy: all of these go into one transaction.
    let pending: Vec<_> = (0..50).map(|i| store.append(vec![hb(i)])).collect();
    let acked = store.set_acked("mgmt", 0);
    wait_until("51 requests queued", || store.stats().queued == 51).await;
    release.send(()).unwrap();
    blocker.await.unwrap();
    for (i, p) in pending.into_iter().enumerate() {
        let evs = p.await.unwrap();
        assert_eq!(evs[0].seq, i as u64 + 1, "seqs follow call order");
    }
    acked.await.unwrap();
    let after = store.stats();
    assert_eq!(after.requests - before.requests, 52);
    assert_eq!(
        after.commits - before.commits,
        2,
        "one commit for the blocker, one for the 51 queued requests: {after:?}"
    );
    assert!(after.largest_group >= 51);
    assert_eq!(after.queued, 0);
}

#[tokio::test]
async fn a_failing_request_fails_alone_and_assigns_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = refusing_666(dir.path());
    let branch = node("branch-1");
    let first = remote(&branch, [1]);
    store.ingest(&branch, first.clone()).await.unwrap();

    let before = store.stats();
    let (release, blocker) = block_writer(&store);
    let a = store.append(vec![hb(1)]);
    let bad = store.append(vec![hb(2), hb(666)]);
    // Same event id as an existing event: violates UNIQUE(id).
    let mut clash = remote(&branch, [2]);
    clash[0].id = first[0].id;
    let bad_ingest = store.ingest(&branch, clash);
    let b = store.append(vec![hb(3)]);
    wait_until("4 requests queued", || store.stats().queued == 4).await;
    release.send(()).unwrap();
    blocker.await.unwrap();

    let a = a.await.unwrap();
    let err = bad.await.unwrap_err();
    assert!(err.to_string().contains("666"), "{err}");
    let err = bad_ingest.await.unwrap_err();
    assert!(matches!(err, StoreError::Sqlite { .. }), "{err}");
    assert!(err.to_string().contains("UNIQUE"), "{err}");
    let b = b.await.unwrap();
    assert_eq!(
        (a[0].seq, b[0].seq),
        (1, 2),
        "the failed append left no gap"
    );
    assert!(a[0].at < b[0].at);

    let after = store.stats();
    assert_eq!(
        after.commits - before.commits,
        2,
        "the blocker, then one group: {after:?}"
    );
    assert_eq!(after.failed_requests - before.failed_requests, 2);
    let local = store.read_from(&node("local"), 1, 100).await.unwrap();
    assert_eq!(local, vec![a[0].clone(), b[0].clone()]);
    assert_eq!(store.contiguous(&branch).await.unwrap(), 1);
    let c = store.append(vec![hb(4)]).await.unwrap();
    assert_eq!(c[0].seq, 3);
}

#[tokio::test]
async fn reopen_continues_seq_and_hlc_even_when_the_clock_went_back() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("log.db");
    let (_t, wall) = manual(1_000_000);
    let store = SqliteStore::open_with_clock(&path, node("local"), wall).unwrap();
    let first = store.append(vec![hb(1), hb(2), hb(3)]).await.unwrap();
    assert_eq!(
        first[0].at,
        Hlc {
            ms: 1_000_000,
            c: 0
        }
    );
    assert_eq!(
        first[2].at,
        Hlc {
            ms: 1_000_000,
            c: 2
        }
    );
    store.close().unwrap();

    // Rebooted without RTC: the wall clock reads almost 1970.
    let (_t, wall) = manual(5);
    let store = SqliteStore::open_with_clock(&path, node("local"), wall).unwrap();
    assert_eq!(store.last_hlc(), first[2].at);
    let conv = crossline_core::ConversationId::new();
    let with_conv = NewEvent {
        conversation: Some(conv),
        ..hb(5)
    };
    let next = store.append(vec![hb(4), with_conv]).await.unwrap();
    assert_eq!((next[0].seq, next[1].seq), (4, 5));
    assert_eq!(next[1].conversation, Some(conv));
    assert_eq!(store.read_from(&node("local"), 4, 10).await.unwrap(), next);
    assert!(
        next[0].at > first[2].at && next[1].at > next[0].at,
        "{:?}",
        next
    );
    assert_eq!(store.last_hlc(), next[1].at);
}

#[tokio::test]
async fn ingest_extends_the_contiguous_prefix_and_stops_at_a_hole() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let b = node("branch-1");
    let log = remote(&b, 1..=10);

    // In order.
    let o = store.ingest(&b, log[0..3].to_vec()).await.unwrap();
    assert_eq!(
        o,
        IngestOutcome {
            stored: 3,
            duplicates: 0,
            contiguous: 3,
            missing_from: None,
            amended: Vec::new(),
        }
    );
    // The same batch again: all duplicates.
    let o = store.ingest(&b, log[0..3].to_vec()).await.unwrap();
    assert_eq!(
        o,
        IngestOutcome {
            stored: 0,
            duplicates: 3,
            contiguous: 3,
            missing_from: None,
            amended: Vec::new(),
        }
    );
    // Overlapping, and out of order inside the batch.
    let mut batch = log[1..5].to_vec();
    batch.reverse();
    let o = store.ingest(&b, batch).await.unwrap();
    assert_eq!(
        o,
        IngestOutcome {
            stored: 2,
            duplicates: 2,
            contiguous: 5,
            missing_from: None,
            amended: Vec::new(),
        }
    );
    // A hole: 6 is missing; 7 and 8 must not be stored.
    let o = store.ingest(&b, log[6..8].to_vec()).await.unwrap();
    assert_eq!(
        o,
        IngestOutcome {
            stored: 0,
            duplicates: 0,
            contiguous: 5,
            missing_from: Some(6),
            amended: Vec::new(),
        }
    );
    // Prefix before the hole is stored, the rest is not.
    let o = store
        .ingest(&b, vec![log[5].clone(), log[7].clone()])
        .await
        .unwrap();
    assert_eq!(
        o,
        IngestOutcome {
            stored: 1,
            duplicates: 0,
            contiguous: 6,
            missing_from: Some(7),
            amended: Vec::new(),
        }
    );
    let stored = store.read_from(&b, 1, 100).await.unwrap();
    assert_eq!(stored, log[0..6].to_vec());
    assert_eq!(store.contiguous(&b).await.unwrap(), 6);
    // Resend from missing_from fills in.
    let o = store.ingest(&b, log[6..10].to_vec()).await.unwrap();
    assert_eq!(
        o,
        IngestOutcome {
            stored: 4,
            duplicates: 0,
            contiguous: 10,
            missing_from: None,
            amended: Vec::new(),
        }
    );
    assert_eq!(store.read_from(&b, 1, 100).await.unwrap(), log);
    assert_eq!(
        store.read_from(&b, 9, 100).await.unwrap(),
        log[8..].to_vec()
    );
    assert_eq!(store.read_from(&b, 2, 3).await.unwrap(), log[1..4].to_vec());
    // An empty batch reports the state.
    let o = store.ingest(&b, vec![]).await.unwrap();
    assert_eq!(o.contiguous, 10);
    assert_eq!(store.counts().await.unwrap(), vec![(b.clone(), 10)]);
}

#[tokio::test]
async fn ingest_refuses_bad_batches_with_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let b = node("branch-1");
    let mut batch = remote(&b, 1..=3);
    batch[1].origin = node("branch-2");
    let err = store.ingest(&b, batch).await.unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, StoreError::Invalid(_)), "{msg}");
    assert!(
        msg.contains("branch-2") && msg.contains("branch-1"),
        "{msg}"
    );
    assert_eq!(
        store.contiguous(&b).await.unwrap(),
        0,
        "nothing of the batch stored"
    );

    let err = store.ingest(&b, remote(&b, [0])).await.unwrap_err();
    assert!(err.to_string().contains("seqs start at 1"), "{err}");

    let err = store
        .ingest(&node("local"), remote(&node("local"), [1]))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("own id"), "{err}");

    // A resend whose id differs from what is stored: the origin diverged.
    store.ingest(&b, remote(&b, [1])).await.unwrap();
    let err = store.ingest(&b, remote(&b, [1, 2])).await.unwrap_err();
    assert!(err.to_string().contains("diverged"), "{err}");
    assert_eq!(store.contiguous(&b).await.unwrap(), 1);
}

#[tokio::test]
async fn local_stamps_come_after_ingested_ones() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("log.db");
    let (_t, wall) = manual(1_000);
    let store = SqliteStore::open_with_clock(&path, node("local"), wall).unwrap();
    let b = node("branch-1");
    let mut ev = remote(&b, [1]);
    // A branch whose clock is ahead, within the allowed skew.
    let ahead = Hlc {
        ms: 1_000 + DEFAULT_MAX_CLOCK_SKEW.as_millis() as u64,
        c: 4,
    };
    ev[0].at = ahead;
    let o = store.ingest(&b, ev).await.unwrap();
    assert!(o.amended.is_empty(), "{o:?}");
    let mine = store.append(vec![hb(1)]).await.unwrap();
    assert!(mine[0].at > ahead, "{}", mine[0].at);
    let recent = store.recent(None, 10).await.unwrap();
    assert_eq!(
        recent.iter().map(|e| e.origin.as_str()).collect::<Vec<_>>(),
        ["local", "branch-1"]
    );
    let only = store.recent(Some(&b), 10).await.unwrap();
    assert_eq!(only.len(), 1);
}

#[tokio::test]
async fn outbox_cursor_never_moves_back_and_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("log.db");
    let store = SqliteStore::open(&path, node("local")).unwrap();
    let evs = store.append((1..=10).map(hb).collect()).await.unwrap();
    assert_eq!(store.acked("mgmt").await.unwrap(), 0);
    assert_eq!(store.unacked("mgmt", 100).await.unwrap(), evs);

    store.set_acked("mgmt", 5).await.unwrap();
    store.set_acked("mgmt", 3).await.unwrap(); // stale ack: no-op
    assert_eq!(store.acked("mgmt").await.unwrap(), 5);
    assert_eq!(store.unacked("mgmt", 100).await.unwrap(), evs[5..].to_vec());
    assert_eq!(store.unacked("mgmt", 2).await.unwrap(), evs[5..7].to_vec());
    assert_eq!(
        store.acked("other").await.unwrap(),
        0,
        "peers are independent"
    );

    let err = store.set_acked("mgmt", 11).await.unwrap_err();
    assert!(err.to_string().contains("log ends at 10"), "{err}");
    assert!(store.set_acked("", 1).await.is_err());
    store.close().unwrap();

    let store = SqliteStore::open(&path, node("local")).unwrap();
    assert_eq!(store.acked("mgmt").await.unwrap(), 5);
    store.set_acked("mgmt", 10).await.unwrap();
    assert!(store.unacked("mgmt", 100).await.unwrap().is_empty());
}

#[tokio::test]
async fn devices_put_revoke_rekey_and_presence() {
    let dir = tempfile::tempdir().unwrap();
    let (t, wall) = manual(1_000);
    let store = SqliteStore::open_with(
        &dir.path().join("log.db"),
        node("mgmt"),
        StoreOptions {
            schema: Schema::Mgmt,
            wall: Arc::new(wall),
            ..StoreOptions::default()
        },
    )
    .unwrap();
    let d = node("branch-1");
    assert_eq!(store.device(&d).unwrap(), None);
    store.put_device(&d, "$argon2id$one").await.unwrap();
    let rec = store.device(&d).unwrap().unwrap();
    assert_eq!(
        rec,
        DeviceRecord {
            id: d.clone(),
            secret_hash: "$argon2id$one".into(),
            revoked: false,
            online: false,
            last_seen_ms: None,
            created_ms: 1_000,
        }
    );

    assert!(store.revoke_device(&d).await.unwrap());
    assert!(store.device(&d).unwrap().unwrap().revoked);
    assert!(!store.revoke_device(&node("nobody")).await.unwrap());

    // Re-key clears the revocation and keeps the creation time.
    t.store(2_000, Ordering::SeqCst);
    store.put_device(&d, "$argon2id$two").await.unwrap();
    let rec = store.device(&d).unwrap().unwrap();
    assert!(!rec.revoked);
    assert_eq!(rec.secret_hash, "$argon2id$two");
    assert_eq!(rec.created_ms, 1_000);

    store.set_presence(&d, true, 5_000).await.unwrap();
    let rec = store.device(&d).unwrap().unwrap();
    assert!(rec.online);
    assert_eq!(rec.last_seen_ms, Some(5_000));
    // A late "offline" from before the last connect changes nothing.
    store.set_presence(&d, false, 4_000).await.unwrap();
    let rec = store.device(&d).unwrap().unwrap();
    assert!(rec.online);
    assert_eq!(rec.last_seen_ms, Some(5_000));
    store.set_presence(&d, false, 6_000).await.unwrap();
    let rec = store.device(&d).unwrap().unwrap();
    assert!(!rec.online);
    assert_eq!(rec.last_seen_ms, Some(6_000));
    // Presence of an unknown client is ignored.
    store.set_presence(&node("nobody"), true, 1).await.unwrap();

    store.put_device(&node("branch-0"), "$h").await.unwrap();
    let all = store.devices().await.unwrap();
    assert_eq!(
        all.iter().map(|d| d.id.as_str()).collect::<Vec<_>>(),
        ["branch-0", "branch-1"]
    );
}

#[test]
fn open_in_a_missing_directory_names_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("no/such/dir/log.db");
    let err = SqliteStore::open(&path, node("local"))
        .err()
        .expect("refused");
    assert!(err.to_string().contains("no/such/dir"), "{err}");
}

#[tokio::test]
async fn a_corrupted_row_is_reported_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    {
        let conn = Connection::open(store.path()).unwrap();
        conn.execute(
            "INSERT INTO event (origin, seq, id, at_ms, at_c, conversation, kind, body)
             VALUES ('branch-9', 1, ?1, 1, 0, NULL, 'x',
                     '{\"type\":\"delivery_status\",\"state\":\"teleported\"}')",
            [&EventId::new().0.as_bytes()[..]],
        )
        .unwrap();
        conn.execute(
            "INSERT INTO event (origin, seq, id, at_ms, at_c, conversation, kind, body)
             VALUES ('branch-9', 2, ?1, 1, 0, NULL, 'x', 42)",
            [&EventId::new().0.as_bytes()[..]],
        )
        .unwrap();
    }
    let err = store.read_from(&node("branch-9"), 1, 10).await.unwrap_err();
    match &err {
        StoreError::Corrupt {
            origin,
            seq,
            detail,
            ..
        } => {
            assert_eq!((origin.as_str(), *seq), ("branch-9", 1));
            // A known kind with a body it cannot have (an unknown kind is
            // kept raw since mgmt stores kinds it does not know).
            assert!(detail.contains("teleported"), "{detail}");
        }
        other => panic!("expected Corrupt, got {other}"),
    }
    assert!(err.to_string().contains("log.db"), "{err}");
    let err = store.read_from(&node("branch-9"), 2, 10).await.unwrap_err();
    assert!(matches!(err, StoreError::Corrupt { seq: 2, .. }), "{err}");
    assert!(store.recent(None, 10).await.is_err());
}

#[tokio::test]
async fn events_cannot_be_updated_or_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    store.append(vec![hb(1)]).await.unwrap();
    let err = store
        .write(|tx| tx.execute("UPDATE event SET body = '{}'", []))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("immutable"), "{err}");
    let err = store
        .write(|tx| tx.execute("DELETE FROM event", []))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("immutable"), "{err}");
    assert_eq!(
        store.read_from(&node("local"), 1, 10).await.unwrap().len(),
        1
    );
}

#[tokio::test]
async fn retention_deletes_only_acknowledged_events_and_keeps_the_newest() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("log.db");
    let store = SqliteStore::open(&path, node("local")).unwrap();
    let me = node("local");
    let appended = store.append((1..=10).map(hb).collect()).await.unwrap();
    let far = i64::MAX as u64;
    // Nothing acknowledged: nothing goes, however old or big.
    assert_eq!(store.prune_acked("mgmt", far, 0).await.unwrap(), 0);
    // Acked up to 6, all old: exactly 1..=6 go.
    store.set_acked("mgmt", 6).await.unwrap();
    assert_eq!(
        store.prune_acked("mgmt", far, u64::MAX >> 2).await.unwrap(),
        6
    );
    let left = store.read_from(&me, 1, 100).await.unwrap();
    assert_eq!(left, appended[6..].to_vec());
    assert_eq!(
        store.unacked("mgmt", 100).await.unwrap(),
        appended[6..].to_vec()
    );
    // Neither young nor over the size budget: nothing goes.
    assert_eq!(
        store.prune_acked("mgmt", 0, u64::MAX >> 2).await.unwrap(),
        0
    );
    // Everything acked and a zero size budget: all but the newest go.
    store.set_acked("mgmt", 10).await.unwrap();
    assert_eq!(store.prune_acked("mgmt", 0, 0).await.unwrap(), 3);
    assert_eq!(
        store.read_from(&me, 1, 100).await.unwrap(),
        appended[9..].to_vec()
    );
    // Outside retention an event still cannot be deleted.
    let err = store
        .write(|tx| tx.execute("DELETE FROM event", []))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("immutable"), "{err}");
    // Seqs and the clock go on, also after a reopen.
    store.close().unwrap();
    let store = SqliteStore::open(&path, node("local")).unwrap();
    let next = store.append(vec![hb(11)]).await.unwrap();
    assert_eq!(next[0].seq, 11);
    assert!(next[0].at > appended[9].at);
    store.close().unwrap();
}

#[tokio::test]
async fn projector_and_write_share_the_event_transaction() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("log.db");
    {
        let store = SqliteStore::open(&path, node("local")).unwrap();
        store
            .write(|tx| tx.execute_batch("CREATE TABLE seen (origin TEXT, seq INTEGER, kind TEXT)"))
            .await
            .unwrap();
        store.close().unwrap();
    }
    let projector: Projector = per_event(|tx, ev| {
        tx.execute(
            "INSERT INTO seen (origin, seq, kind) VALUES (?1, ?2, ?3)",
            rusqlite::params![ev.origin.as_str(), ev.seq as i64, ev.body.kind()],
        )?;
        Ok(())
    });
    let store = SqliteStore::open_with(
        &path,
        node("local"),
        StoreOptions {
            projector: Some(projector),
            readers: 1,
            ..StoreOptions::default()
        },
    )
    .unwrap();
    store.append(vec![hb(1), hb(2)]).await.unwrap();
    let b = node("branch-1");
    let batch = remote(&b, 1..=2);
    store.ingest(&b, batch.clone()).await.unwrap();
    store.ingest(&b, batch).await.unwrap(); // duplicates are not projected again
    let seen: Vec<(String, i64)> = store
        .read(|c| {
            let mut st = c.prepare("SELECT origin, seq FROM seen ORDER BY origin, seq")?;
            st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?.collect()
        })
        .await
        .unwrap();
    assert_eq!(
        seen,
        [
            ("branch-1".to_string(), 1),
            ("branch-1".into(), 2),
            ("local".into(), 1),
            ("local".into(), 2)
        ]
    );
}

/// `append_with` decides on what the transaction sees and appends in the
/// same step; a decision that fails appends nothing.
#[tokio::test]
async fn append_with_decides_and_appends_in_one_transaction() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("log.db"), node("local")).unwrap();
    let (n, stored) = store
        .append_with(|tx| {
            let n: i64 = tx.query_row("SELECT count(*) FROM event", [], |r| r.get(0))?;
            Ok((n, vec![hb(7), hb(8)]))
        })
        .await
        .unwrap();
    assert_eq!(n, 0);
    assert_eq!(stored.iter().map(|e| e.seq).collect::<Vec<_>>(), [1, 2]);
    let ((), none) = store.append_with(|_| Ok(((), vec![]))).await.unwrap();
    assert!(none.is_empty());
    let failed = store
        .append_with(|tx| {
            tx.query_row("SELECT no_such_column FROM event", [], |r| {
                r.get::<_, i64>(0)
            })?;
            Ok(((), vec![hb(9)]))
        })
        .await;
    assert!(failed.is_err());
    assert_eq!(store.contiguous(&node("local")).await.unwrap(), 2);
    store.close().unwrap();
}

/// A rebuild clears the projection and replays the whole log through the
/// projector in the order the events were stored (local appends and
/// ingested events interleaved), in batches bigger than one.
#[tokio::test]
async fn rebuild_replays_the_log_in_stored_order() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("log.db");
    {
        let store = SqliteStore::open(&path, node("local")).unwrap();
        store
            .write(|tx| {
                tx.execute_batch(
                    "CREATE TABLE seen (n INTEGER PRIMARY KEY, origin TEXT, seq INTEGER)",
                )
            })
            .await
            .unwrap();
        store.close().unwrap();
    }
    let projector: Projector = per_event(|tx, ev| {
        tx.execute(
            "INSERT INTO seen (origin, seq) VALUES (?1, ?2)",
            rusqlite::params![ev.origin.as_str(), ev.seq as i64],
        )?;
        Ok(())
    });
    let store = SqliteStore::open_with(
        &path,
        node("local"),
        StoreOptions {
            projector: Some(projector),
            ..StoreOptions::default()
        },
    )
    .unwrap();
    let b = node("branch-1");
    store.append(vec![hb(1)]).await.unwrap();
    store.ingest(&b, remote(&b, 1..=3)).await.unwrap();
    store.append((2..=5000).map(hb).collect()).await.unwrap();
    store.ingest(&b, remote(&b, 4..=4)).await.unwrap();
    let dump = |s: &SqliteStore| {
        s.read(|c| {
            let mut st = c.prepare("SELECT n, origin, seq FROM seen ORDER BY n")?;
            st.query_map([], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, i64>(2)?,
                ))
            })?
            .collect::<rusqlite::Result<Vec<_>>>()
        })
    };
    let before = dump(&store).await.unwrap();
    assert_eq!(before.len(), 5004);
    // Scribbled over: the rebuild must not keep any of it.
    store
        .write(|tx| tx.execute("UPDATE seen SET seq = -1 WHERE n % 7 = 0", []))
        .await
        .unwrap();
    // `n` is a plain rowid: numbering starts again at 1 in an empty table.
    let n = store
        .rebuild_projections(|tx| tx.execute_batch("DELETE FROM seen"))
        .await
        .unwrap();
    assert_eq!(n, 5004);
    assert_eq!(dump(&store).await.unwrap(), before);
    store.close().unwrap();

    // Without a projector there is nothing to rebuild: said, not done.
    let plain = SqliteStore::open(&path, node("local")).unwrap();
    let err = plain
        .rebuild_projections(|tx| tx.execute_batch("DELETE FROM seen"))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("no projector"), "{err}");
    assert_eq!(
        plain
            .read(|c| c.query_row("SELECT count(*) FROM seen", [], |r| r.get::<_, i64>(0)))
            .await
            .unwrap(),
        5004,
        "a refused rebuild leaves the projection as it was"
    );
}

#[tokio::test]
async fn close_commits_what_was_queued_then_refuses_writes() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let other = store.clone();
    let queued = other.append(vec![hb(1)]);
    store.close().unwrap();
    assert_eq!(
        queued.await.unwrap()[0].seq,
        1,
        "queued before close: committed"
    );
    let err = other.append(vec![hb(2)]).await.unwrap_err();
    assert!(matches!(err, StoreError::WriterGone), "{err}");
    // Reads still work on the remaining handle.
    assert_eq!(
        other.read_from(&node("local"), 1, 10).await.unwrap().len(),
        1
    );
    drop(other);
    let store = open(&dir);
    assert_eq!(store.contiguous(&node("local")).await.unwrap(), 1);
}

#[tokio::test]
async fn empty_append_commits_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    assert!(store.append(vec![]).await.unwrap().is_empty());
    assert_eq!(store.stats().requests, 0);
    assert_eq!(store.last_hlc(), Hlc::ZERO);
}

#[tokio::test]
async fn a_failed_commit_fails_the_group_and_hands_out_no_seq_or_stamp() {
    let dir = tempfile::tempdir().unwrap();
    let (_t, wall) = manual(1_000); // the wall clock stands still
    let store =
        SqliteStore::open_with_clock(&dir.path().join("log.db"), node("local"), wall).unwrap();
    // A deferred foreign key is only checked at COMMIT: the one way a single
    // request can fail the whole group.
    store
        .write(|tx| {
            tx.execute_batch(
                "CREATE TABLE parent (id INTEGER PRIMARY KEY);
                 CREATE TABLE child (p INTEGER REFERENCES parent (id)
                                     DEFERRABLE INITIALLY DEFERRED);",
            )
        })
        .await
        .unwrap();
    let before = store.stats();
    let (release, blocker) = block_writer(&store);
    let a = store.append(vec![hb(1), hb(2)]);
    let bad = store.write(|tx| tx.execute("INSERT INTO child (p) VALUES (42)", []));
    let b = store.append(vec![hb(3)]);
    wait_until("3 requests queued", || store.stats().queued == 3).await;
    release.send(()).unwrap();
    blocker.await.unwrap();
    for err in [
        a.await.unwrap_err(),
        bad.await.unwrap_err(),
        b.await.unwrap_err(),
    ] {
        assert!(err.to_string().contains("FOREIGN KEY"), "{err}");
        assert!(err.to_string().contains("log.db"), "{err}");
    }
    let after = store.stats();
    assert_eq!(
        after.failed_requests - before.failed_requests,
        3,
        "{after:?}"
    );
    assert_eq!(store.last_hlc(), Hlc::ZERO);

    // Nothing was handed out: same seq, same stamp as if the group never ran.
    let next = store.append(vec![hb(4)]).await.unwrap();
    assert_eq!(next[0].seq, 1);
    assert_eq!(next[0].at, Hlc { ms: 1_000, c: 0 });
    assert_eq!(store.read_from(&node("local"), 1, 10).await.unwrap(), next);
}

#[tokio::test]
async fn a_database_locked_by_another_process_fails_clearly_then_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("log.db");
    let store = SqliteStore::open_with(
        &path,
        node("local"),
        StoreOptions {
            busy_timeout: Duration::from_millis(50),
            ..StoreOptions::default()
        },
    )
    .unwrap();
    store.append(vec![hb(1)]).await.unwrap();
    let other = Connection::open(&path).unwrap();
    other.execute_batch("BEGIN IMMEDIATE").unwrap(); // e.g. the sqlite3 shell
    let err = store.append(vec![hb(2)]).await.unwrap_err();
    assert!(err.to_string().contains("locked"), "{err}");
    assert!(err.to_string().contains("log.db"), "{err}");
    // Reads are not blocked by a writer in WAL mode.
    assert_eq!(store.contiguous(&node("local")).await.unwrap(), 1);
    other.execute_batch("ROLLBACK").unwrap();
    let next = store.append(vec![hb(3)]).await.unwrap();
    assert_eq!(next[0].seq, 2, "the failed append consumed no seq");
}

#[tokio::test]
async fn a_failing_request_alone_in_its_group_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = refusing_666(dir.path());
    let a = store.append(vec![hb(1)]).await.unwrap();
    let before = store.stats();
    // Alone in its group (nothing else queued): no savepoint, the whole
    // transaction is rolled back.
    let err = store.append(vec![hb(2), hb(666)]).await.unwrap_err();
    assert!(err.to_string().contains("666"), "{err}");
    let after = store.stats();
    assert_eq!(after.commits, before.commits, "nothing was committed");
    assert_eq!(after.failed_requests - before.failed_requests, 1);
    let b = store.append(vec![hb(3)]).await.unwrap();
    assert_eq!(
        (a[0].seq, b[0].seq),
        (1, 2),
        "the failed append left no gap"
    );
    assert!(a[0].at < b[0].at);
    let local = store.read_from(&node("local"), 1, 100).await.unwrap();
    assert_eq!(local, vec![a[0].clone(), b[0].clone()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_wal_is_checkpointed_and_stays_bounded_under_sustained_writes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("log.db");
    let wal = dir.path().join("log.db-wal");
    let store = SqliteStore::open_with(
        &path,
        node("local"),
        StoreOptions {
            checkpoint_pages: 64,
            ..StoreOptions::default()
        },
    )
    .unwrap();
    let branch = node("branch-1");
    let mut largest_wal = 0;
    let (mut seq, rounds, per) = (0u64, 150u64, 200u64);
    for _ in 0..rounds {
        // Two requests per group (one local, one ingested) so both the
        // savepoint path and the checkpoint after commit run.
        let a = store.append((0..per).map(hb).collect());
        let i = store.ingest(&branch, remote(&branch, seq + 1..=seq + per));
        a.await.unwrap();
        assert_eq!(i.await.unwrap().stored, per as usize);
        seq += per;
        largest_wal = largest_wal.max(std::fs::metadata(&wal).map_or(0, |m| m.len()));
    }
    let written: u64 = {
        let conn = rusqlite::Connection::open(&path).unwrap();
        let pages: u64 = conn
            .query_row("PRAGMA page_count", [], |r| r.get(0))
            .unwrap();
        pages * 4096
    };
    // Without checkpoints the WAL would hold every page ever written (many
    // times the database); with them it stays near 4 × 64 pages + a group.
    assert!(
        largest_wal < 4 << 20 && largest_wal < written,
        "WAL grew to {largest_wal} bytes (database {written} bytes)"
    );
    store.close().unwrap();
    let store = SqliteStore::open(&path, node("local")).unwrap();
    assert_eq!(store.contiguous(&branch).await.unwrap(), seq);
    assert_eq!(
        store
            .read_from(&node("local"), 1, 100_000)
            .await
            .unwrap()
            .len() as u64,
        rounds * per
    );
}

/// Year 2100 in milliseconds since the epoch.
const Y2100_MS: u64 = 4_102_444_800_000;

#[tokio::test]
async fn a_stamp_beyond_the_skew_is_stored_with_local_time_and_never_moves_the_clock() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("log.db");
    let now = 1_800_000_000_000;
    let (_t, wall) = manual(now);
    let store = SqliteStore::open_with_clock(&path, node("local"), wall).unwrap();
    let b = node("branch-1");
    let mut evs = remote(&b, 1..=3);
    evs[0].at = Hlc { ms: Y2100_MS, c: 0 };
    // Beyond what the database's integers hold: once a whole-batch refusal.
    evs[1].at = Hlc {
        ms: u64::MAX,
        c: u32::MAX,
    };
    evs[2].at = Hlc { ms: now - 5, c: 0 };
    let o = store.ingest(&b, evs.clone()).await.unwrap();
    assert_eq!((o.stored, o.contiguous), (3, 3), "{o:?}");
    let restamped: Vec<(u64, Hlc, Hlc)> = o
        .amended
        .iter()
        .filter_map(|a| match a {
            Amendment::Restamped {
                seq,
                claimed,
                stored,
            } => Some((*seq, *claimed, *stored)),
            Amendment::Refused { .. } => None,
        })
        .collect();
    assert_eq!(restamped.len(), 2, "{o:?}");
    assert_eq!((restamped[0].0, restamped[0].1), (1, evs[0].at));
    assert_eq!((restamped[1].0, restamped[1].1), (2, evs[1].at));
    // Stored with this node's time, the origin's stamp kept as the flag.
    let stored = store.read_from(&b, 1, 10).await.unwrap();
    assert_eq!(stored[0].at, restamped[0].2);
    assert_eq!(stored[0].at.ms, now);
    assert_eq!(stored[2].at, evs[2].at, "a sane stamp is kept");
    let flags: Vec<(Option<i64>, Option<u32>)> = store
        .read(|c| {
            c.prepare(
                "SELECT claimed_ms, claimed_c FROM event WHERE origin = 'branch-1' ORDER BY seq",
            )?
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect()
        })
        .await
        .unwrap();
    assert_eq!(
        flags,
        [
            (Some(Y2100_MS as i64), Some(0)),
            (Some(i64::MAX), Some(u32::MAX)),
            (None, None)
        ]
    );
    // The clock stayed in the present, now and after a restart.
    let mine = store.append(vec![hb(1)]).await.unwrap();
    assert_eq!(mine[0].at.ms, now, "{}", mine[0].at);
    assert!(store.last_hlc().ms < now + 1_000);
    store.close().unwrap();
    let (_t, wall) = manual(now);
    let store = SqliteStore::open_with_clock(&path, node("local"), wall).unwrap();
    assert!(store.last_hlc().ms < now + 1_000, "{}", store.last_hlc());
}

#[tokio::test]
async fn the_clock_skew_bound_is_configurable() {
    let dir = tempfile::tempdir().unwrap();
    let (_t, wall) = manual(1_000_000);
    let store = SqliteStore::open_with(
        &dir.path().join("log.db"),
        node("local"),
        StoreOptions {
            wall: Arc::new(wall),
            max_clock_skew: Duration::from_secs(10),
            ..StoreOptions::default()
        },
    )
    .unwrap();
    let b = node("branch-1");
    let mut evs = remote(&b, 1..=2);
    evs[0].at = Hlc {
        ms: 1_000_000 + 9_000,
        c: 0,
    };
    evs[1].at = Hlc {
        ms: 1_000_000 + 11_000,
        c: 0,
    };
    let o = store.ingest(&b, evs).await.unwrap();
    assert_eq!(
        o.amended.iter().map(Amendment::seq).collect::<Vec<_>>(),
        [2]
    );
}

/// A store whose gate refuses heartbeats with uptime 13 and whose projector
/// records what it was given.
fn gated(dir: &std::path::Path) -> SqliteStore {
    let gate: Gate = Box::new(|_tx, ev| {
        Ok(match ev.body {
            EventBody::DeviceHeartbeat { uptime_s: 13 } => Err("unlucky".into()),
            _ => Ok(()),
        })
    });
    let projector: Projector = per_event(|tx, ev| {
        tx.execute(
            "CREATE TABLE IF NOT EXISTS seen_kind (seq INTEGER, kind TEXT)",
            [],
        )?;
        tx.execute(
            "INSERT INTO seen_kind VALUES (?1, ?2)",
            rusqlite::params![ev.seq as i64, ev.body.kind()],
        )
        .map(|_| ())
    });
    SqliteStore::open_with(
        &dir.join("log.db"),
        node("local"),
        StoreOptions {
            gate: Some(gate),
            projector: Some(projector),
            ..StoreOptions::default()
        },
    )
    .unwrap()
}

#[tokio::test]
async fn a_refused_event_keeps_its_slot_and_the_stream_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let store = gated(dir.path());
    let b = node("branch-1");
    let mut evs = remote(&b, 1..=3);
    evs[1].body = EventBody::DeviceHeartbeat { uptime_s: 13 };
    evs[1].conversation = Some(crossline_core::ConversationId::new());
    let o = store.ingest(&b, evs.clone()).await.unwrap();
    assert_eq!((o.stored, o.contiguous, o.missing_from), (3, 3, None));
    assert_eq!(
        o.amended,
        [Amendment::Refused {
            seq: 2,
            kind: "device_heartbeat",
            reason: "unlucky".into()
        }]
    );
    let stored = store.read_from(&b, 1, 10).await.unwrap();
    assert_eq!(stored[0], evs[0]);
    assert_eq!(stored[2], evs[2]);
    // Same id, origin, seq and stamp; the body is the refusal.
    let mut expect = evs[1].clone();
    o.amended[0].apply(&mut expect);
    assert_eq!(stored[1], expect);
    assert_eq!(
        stored[1].body,
        EventBody::Refused {
            kind: "device_heartbeat".into(),
            reason: "unlucky".into()
        }
    );
    assert_eq!(stored[1].conversation, None);
    // The projector saw the refusal, never the refused event.
    let seen: Vec<(i64, String)> = store
        .read(|c| {
            c.prepare("SELECT seq, kind FROM seen_kind ORDER BY seq")?
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect()
        })
        .await
        .unwrap();
    assert_eq!(
        seen,
        [
            (1, "device_heartbeat".to_string()),
            (2, "refused".to_string()),
            (3, "device_heartbeat".to_string())
        ]
    );
    // The refused event sent again is a duplicate of its slot, not a divergence.
    let o = store.ingest(&b, evs[1..].to_vec()).await.unwrap();
    assert_eq!((o.stored, o.duplicates), (0, 2));
    assert!(o.amended.is_empty());
}
