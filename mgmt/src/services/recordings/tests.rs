#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::*;
use crate::services::RepoFuture;
use crate::services::users::audit::{Entry, NewEntry};
use sha2::{Digest, Sha256};
use std::sync::Mutex;

/// Declared recordings and the audit log, in memory.
#[derive(Default)]
struct Fake {
    declared: Mutex<Vec<(RecordingId, Declared)>>,
    audit: Mutex<Vec<NewEntry>>,
}

impl RecordingRepo for Arc<Fake> {
    fn declared(&self, id: RecordingId) -> RepoFuture<Option<Declared>> {
        let d = self
            .declared
            .lock()
            .unwrap()
            .iter()
            .find(|(i, _)| *i == id)
            .map(|(_, d)| d.clone());
        Box::pin(async move { Ok(d) })
    }
}

impl AuditRepo for Arc<Fake> {
    fn append(&self, entry: NewEntry) -> RepoFuture<()> {
        self.audit.lock().unwrap().push(entry);
        Box::pin(async { Ok(()) })
    }
    fn recent_entries(
        &self,
        _: Option<i64>,
        _: Option<String>,
        _: usize,
    ) -> RepoFuture<Vec<Entry>> {
        Box::pin(async { Ok(Vec::new()) })
    }
}

fn sha(b: &[u8]) -> String {
    Sha256::digest(b)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

struct T {
    _dir: tempfile::TempDir,
    fake: Arc<Fake>,
    rec: Recordings,
    dev: NodeId,
    id: RecordingId,
    bytes: Vec<u8>,
}

fn setup(n: usize) -> T {
    let dir = tempfile::tempdir().unwrap();
    let fake = Arc::new(Fake::default());
    let rec = Recordings::new(
        dir.path().join("recordings"),
        Arc::new(fake.clone()),
        Arc::new(fake.clone()),
    )
    .unwrap();
    let bytes: Vec<u8> = (0..n).map(|i| (i % 253) as u8).collect();
    let id = RecordingId::new();
    fake.declared.lock().unwrap().push((
        id,
        Declared {
            device: "branch-1".into(),
            conversation: Some(ConversationId::new()),
            bytes: n as u64,
            sha256: sha(&bytes),
        },
    ));
    T {
        _dir: dir,
        fake,
        rec,
        dev: NodeId::new("branch-1").unwrap(),
        id,
        bytes,
    }
}

impl T {
    async fn send(&self, offset: usize, len: usize) -> RecordingState {
        let data = &self.bytes[offset..offset + len];
        self.rec
            .on_chunk(&self.dev, RecordingChunk::new(self.id, offset as u64, data))
            .await
    }
}

#[tokio::test]
async fn chunks_in_order_make_a_verified_file_and_a_repeat_is_harmless() {
    let t = setup(150_000);
    let q = t.rec.on_chunk(&t.dev, RecordingChunk::query(t.id)).await;
    assert_eq!((q.have, q.complete, q.error), (0, false, None));
    let s = t.send(0, 65_536).await;
    assert_eq!((s.have, s.complete), (65_536, false));
    // QoS 1 may deliver the same chunk twice: nothing changes.
    let s = t.send(0, 65_536).await;
    assert_eq!((s.have, s.error), (65_536, None));
    t.send(65_536, 65_536).await;
    let s = t.send(131_072, 150_000 - 131_072).await;
    assert!(s.complete, "{s:?}");
    assert_eq!(s.have, 150_000);
    let path = t.rec.wav(&t.id);
    assert_eq!(std::fs::read(&path).unwrap(), t.bytes);
    // Asked again later (the appliance lost the answer): complete.
    let q = t.rec.on_chunk(&t.dev, RecordingChunk::query(t.id)).await;
    assert!(q.complete);
}

#[tokio::test]
async fn an_upload_resumes_where_the_file_ends_after_a_restart() {
    let t = setup(100_000);
    t.send(0, 40_000).await;
    // mgmt restarts: a new service on the same directory.
    let rec = Recordings::new(
        t.rec.inner.dir.clone(),
        Arc::new(t.fake.clone()),
        Arc::new(t.fake.clone()),
    )
    .unwrap();
    let q = rec.on_chunk(&t.dev, RecordingChunk::query(t.id)).await;
    assert_eq!(q.have, 40_000);
    let s = rec
        .on_chunk(
            &t.dev,
            RecordingChunk::new(t.id, 40_000, &t.bytes[40_000..]),
        )
        .await;
    assert!(s.complete);
}

#[tokio::test]
async fn rogue_chunks_are_refused_and_lose_nothing() {
    let t = setup(100_000);
    t.send(0, 10_000).await;
    // A gap.
    let s = t.send(20_000, 10_000).await;
    assert_eq!(s.have, 10_000);
    assert!(
        s.error.as_deref().unwrap().contains("send from 10000"),
        "{s:?}"
    );
    // Beyond the declared size.
    t.send(10_000, 50_000).await;
    let s = t
        .rec
        .on_chunk(&t.dev, RecordingChunk::new(t.id, 60_000, &[0; 50_000]))
        .await;
    assert!(s.error.as_deref().unwrap().contains("beyond"), "{s:?}");
    assert_eq!(s.have, 60_000);
    // Another device may not upload it.
    let other = NodeId::new("branch-2").unwrap();
    let s = t
        .rec
        .on_chunk(
            &other,
            RecordingChunk::new(t.id, 60_000, &t.bytes[60_000..70_000]),
        )
        .await;
    assert!(
        s.error
            .as_deref()
            .unwrap()
            .contains("not declared by branch-2"),
        "{s:?}"
    );
    // An undeclared recording is refused.
    let s = t
        .rec
        .on_chunk(&t.dev, RecordingChunk::new(RecordingId::new(), 0, b"RIFF"))
        .await;
    assert!(s.error.is_some());
    // What was received before is intact.
    let s = t.send(60_000, 40_000).await;
    assert!(s.complete, "{s:?}");
    assert_eq!(std::fs::read(t.rec.wav(&t.id)).unwrap(), t.bytes);
}

#[tokio::test]
async fn a_wrong_hash_at_the_end_discards_the_bytes_and_asks_for_them_again() {
    let t = setup(1_000);
    let mut bad = t.bytes.clone();
    bad[500] ^= 0xFF;
    let s = t
        .rec
        .on_chunk(&t.dev, RecordingChunk::new(t.id, 0, &bad))
        .await;
    assert!(!s.complete);
    assert_eq!(s.have, 0);
    assert!(s.error.as_deref().unwrap().contains("sha256"), "{s:?}");
    assert!(!t.rec.wav(&t.id).exists());
    let s = t.send(0, 1_000).await;
    assert!(s.complete);
}

#[tokio::test]
async fn listening_is_audited_and_needs_the_conversation() {
    let t = setup(1_000);
    let by = Actor::ApiToken;
    let e = t.rec.open(&by, &t.id.to_string(), true).await.unwrap_err();
    assert!(matches!(e, RecordingError::NotYet(_)), "{e}");
    t.send(0, 1_000).await;
    let e = t.rec.open(&by, &t.id.to_string(), false).await.unwrap_err();
    assert!(matches!(e, RecordingError::Denied(_)), "{e}");
    let s = t.rec.open(&by, &t.id.to_string(), true).await.unwrap();
    assert_eq!(s.bytes, 1_000);
    let actions: Vec<String> = t
        .fake
        .audit
        .lock()
        .unwrap()
        .iter()
        .map(|e| e.action.clone())
        .collect();
    assert_eq!(actions, ["recording.denied", "recording.listen"]);
    let e = t.rec.open(&by, "not-an-id", true).await.unwrap_err();
    assert!(matches!(e, RecordingError::NotFound(_)));
    assert!(matches!(
        t.rec.conversation(&RecordingId::new().to_string()).await,
        Err(RecordingError::NotFound(_))
    ));
}
