//! Recordings waiting for mgmt (voicemail now, whole calls later) and their
//! upload (docs/PROTOCOL.md, "Recordings").
//!
//! The call driver hands a finished WAV to [`Spool::keep`], which moves it to
//! `<data_dir>/recordings/<id>.wav` with a sidecar `<id>.json` (size and
//! sha256, written atomically) and returns what the `voicemail_recorded`
//! event must declare. [`run`] uploads every kept recording in chunks on the
//! device's `rec` topic, resuming where mgmt says it is (`rec_state`), and
//! deletes the files only when mgmt answers that it has the whole file and
//! its sha256 matched. Until then they stay, across restarts of either side
//! and any outage of the uplink.

use crate::uplink::{LinkState, Outbound};
use anyhow::Context;
use crossline_core::RecordingId;
use crossline_proto::recording::{CHUNK_BYTES, RecordingChunk, RecordingState, sha256_file};
use crossline_proto::{Kind, encode};
use serde::{Deserialize, Serialize};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

/// How long to wait for mgmt's answer to a chunk before asking again.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);
/// First wait after mgmt refused a recording (e.g. its event is not there
/// yet); doubles up to [`MAX_RETRY`].
const FIRST_RETRY: Duration = Duration::from_secs(1);
const MAX_RETRY: Duration = Duration::from_secs(60);
/// How often the spool is looked at while nothing waits in it (a directory
/// listing: cheap).
const SCAN_EVERY: Duration = Duration::from_secs(2);

/// What the event declaring a recording says of its file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Kept {
    pub bytes: u64,
    /// SHA-256, lower-case hex.
    pub sha256: String,
}

/// The recordings directory.
#[derive(Debug, Clone)]
pub struct Spool {
    dir: PathBuf,
}

impl Spool {
    /// `<data_dir>/recordings`, created if missing.
    pub fn open(data_dir: &Path) -> anyhow::Result<Self> {
        let dir = data_dir.join("recordings");
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("creating the recordings directory {}", dir.display()))?;
        Ok(Self { dir })
    }

    fn wav(&self, id: &RecordingId) -> PathBuf {
        self.dir.join(format!("{id}.wav"))
    }

    fn meta(&self, id: &RecordingId) -> PathBuf {
        self.dir.join(format!("{id}.json"))
    }

    /// Takes a finished recording (`file`, on the same file system: it is
    /// renamed) into the spool; what its event must declare. Call it before
    /// logging the event: a crash in between leaves a recording that is
    /// uploaded once an event declares it, or kept.
    pub fn keep(&self, id: RecordingId, file: &Path) -> anyhow::Result<Kept> {
        let kept = Kept {
            bytes: std::fs::metadata(file)
                .with_context(|| format!("reading recording {}", file.display()))?
                .len(),
            sha256: sha256_file(file)
                .with_context(|| format!("hashing recording {}", file.display()))?,
        };
        let tmp = self.dir.join(format!("{id}.json.tmp"));
        let mut f =
            std::fs::File::create(&tmp).with_context(|| format!("writing {}", tmp.display()))?;
        f.write_all(&serde_json::to_vec(&kept)?)?;
        f.sync_all()?;
        let wav = self.wav(&id);
        if file != wav {
            std::fs::rename(file, &wav).with_context(|| {
                format!(
                    "moving recording {} to {} (the recordings directory must be on the same file system)",
                    file.display(),
                    wav.display()
                )
            })?;
        }
        std::fs::rename(&tmp, self.meta(&id))?;
        std::fs::File::open(&self.dir)?.sync_all()?;
        Ok(kept)
    }

    /// Recordings mgmt has not confirmed, oldest first (ids are UUIDv7).
    pub fn pending(&self) -> Vec<(RecordingId, Kept)> {
        let Ok(rd) = std::fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        let mut out: Vec<(RecordingId, Kept)> = rd
            .filter_map(Result::ok)
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                let id: RecordingId = name.strip_suffix(".json")?.parse().ok()?;
                let kept: Kept = serde_json::from_slice(&std::fs::read(e.path()).ok()?).ok()?;
                self.wav(&id).exists().then_some((id, kept))
            })
            .collect();
        out.sort_by_key(|(id, _)| id.to_string());
        out
    }

    /// At most `max` bytes of recording `id` from `offset`.
    pub fn read_at(&self, id: &RecordingId, offset: u64, max: usize) -> std::io::Result<Vec<u8>> {
        let mut f = std::fs::File::open(self.wav(id))?;
        f.seek(SeekFrom::Start(offset))?;
        let mut buf = Vec::with_capacity(max);
        f.take(max as u64).read_to_end(&mut buf)?;
        Ok(buf)
    }

    /// mgmt has the whole verified file: delete ours.
    fn confirmed(&self, id: &RecordingId) {
        for p in [self.wav(id), self.meta(id)] {
            if let Err(e) = std::fs::remove_file(&p)
                && e.kind() != std::io::ErrorKind::NotFound
            {
                warn!(recording = %id, file = %p.display(), error = %e, "could not delete an uploaded recording");
            }
        }
    }
}

/// What the uploader works with.
pub struct UploadIo {
    pub outbound: mpsc::Sender<Outbound>,
    /// mgmt's answers (`rec_state`), from the uplink.
    pub states: mpsc::Receiver<RecordingState>,
    pub link: watch::Receiver<LinkState>,
}

/// Uploads kept recordings while the uplink is up, one at a time, one
/// chunk in flight (each answered by mgmt), until `shutdown`.
pub async fn run(
    spool: Spool,
    mut io: UploadIo,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let mut retry = FIRST_RETRY;
    loop {
        // Wait for the uplink.
        while io.link.borrow().down_for().is_some() {
            tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                r = io.link.changed() => if r.is_err() { return Ok(()) },
            }
        }
        let pending = spool.pending();
        let Some((id, kept)) = pending.into_iter().next() else {
            tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                _ = tokio::time::sleep(SCAN_EVERY) => {}
                r = io.link.changed() => if r.is_err() { return Ok(()) },
            }
            continue;
        };
        match upload(&spool, &mut io, id, &kept, &shutdown).await {
            Upload::Done => {
                retry = FIRST_RETRY;
                spool.confirmed(&id);
                info!(recording = %id, bytes = kept.bytes, "recording uploaded and confirmed by mgmt; deleted here");
            }
            Upload::Stop => return Ok(()),
            Upload::Later => {
                tokio::select! {
                    _ = shutdown.cancelled() => return Ok(()),
                    _ = tokio::time::sleep(retry) => {}
                }
                retry = (retry * 2).min(MAX_RETRY);
            }
        }
    }
}

enum Upload {
    Done,
    Later,
    Stop,
}

async fn send(io: &UploadIo, chunk: &RecordingChunk) -> bool {
    io.outbound
        .send(Outbound {
            kind: Kind::Rec,
            payload: encode(chunk),
        })
        .await
        .is_ok()
}

/// One recording, from where mgmt is, to its confirmation.
async fn upload(
    spool: &Spool,
    io: &mut UploadIo,
    id: RecordingId,
    kept: &Kept,
    shutdown: &CancellationToken,
) -> Upload {
    let mut chunk = RecordingChunk::query(id);
    loop {
        if !send(io, &chunk).await {
            return Upload::Stop;
        }
        let state = loop {
            tokio::select! {
                _ = shutdown.cancelled() => return Upload::Stop,
                _ = tokio::time::sleep(ANSWER_TIMEOUT) => {
                    debug!(recording = %id, "no answer from mgmt; asking again");
                    break None;
                }
                s = io.states.recv() => match s {
                    None => return Upload::Stop,
                    Some(s) if s.id == id => break Some(s),
                    // An answer to an earlier upload (repeated by QoS 1).
                    Some(_) => {}
                },
            }
        };
        let Some(state) = state else {
            if io.link.borrow().down_for().is_some() {
                return Upload::Later;
            }
            chunk = RecordingChunk::query(id);
            continue;
        };
        if state.complete {
            return Upload::Done;
        }
        if let Some(e) = &state.error
            && state.have == chunk.offset
        {
            // Refused without progress (not declared yet, a full disk at
            // mgmt, a hash mismatch): wait, then ask again.
            warn!(recording = %id, have = state.have, error = %e, "mgmt refused a recording chunk; trying again later");
            return Upload::Later;
        }
        if state.have >= kept.bytes {
            // mgmt has every byte but did not confirm: ask again later.
            return Upload::Later;
        }
        let data = match spool.read_at(&id, state.have, CHUNK_BYTES) {
            Ok(d) if !d.is_empty() => d,
            Ok(_) | Err(_) => {
                warn!(recording = %id, have = state.have, "recording file shorter than declared or unreadable; kept, not uploaded");
                return Upload::Later;
            }
        };
        chunk = RecordingChunk::new(id, state.have, &data);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use sha2::{Digest, Sha256};

    /// Writes a recording of `n` bytes and keeps it.
    fn kept(spool: &Spool, dir: &Path, n: usize) -> (RecordingId, Kept, Vec<u8>) {
        let id = RecordingId::new();
        let bytes: Vec<u8> = (0..n).map(|i| (i * 7 % 251) as u8).collect();
        let f = dir.join("rec.tmp");
        std::fs::write(&f, &bytes).unwrap();
        let k = spool.keep(id, &f).unwrap();
        (id, k, bytes)
    }

    #[test]
    fn keep_hashes_and_moves_the_file() {
        let d = tempfile::tempdir().unwrap();
        let spool = Spool::open(d.path()).unwrap();
        let (id, k, bytes) = kept(&spool, d.path(), 1000);
        assert_eq!(k.bytes, 1000);
        let mut h = Sha256::new();
        h.update(&bytes);
        let want: String = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(k.sha256, want);
        assert_eq!(spool.pending(), vec![(id, k)]);
        assert_eq!(spool.read_at(&id, 990, 64).unwrap(), bytes[990..]);
        // Survives a "restart": a new spool on the same directory.
        assert_eq!(Spool::open(d.path()).unwrap().pending().len(), 1);
    }

    /// A stand-in for mgmt: keeps what it is sent (like the recordings
    /// service: the offset must be what it has), forgets everything once
    /// (`crash_at`), confirms at the end.
    async fn fake_mgmt(
        mut rx: mpsc::Receiver<Outbound>,
        tx: mpsc::Sender<RecordingState>,
        want: Kept,
        crash_at: u64,
    ) -> Vec<u8> {
        let mut have: Vec<u8> = Vec::new();
        let mut crashed = false;
        while let Some(o) = rx.recv().await {
            assert_eq!(o.kind, Kind::Rec);
            let c: RecordingChunk = crossline_proto::decode(&o.payload).unwrap();
            let data = c.bytes().unwrap();
            if !data.is_empty() && c.offset == have.len() as u64 {
                have.extend_from_slice(&data);
            }
            if !crashed && have.len() as u64 >= crash_at {
                crashed = true;
                have.truncate(crash_at as usize / 2);
                // mgmt lost its answer: the uploader must ask again.
                continue;
            }
            let done = have.len() as u64 == want.bytes;
            tx.send(RecordingState::new(c.id, have.len() as u64, done, None))
                .await
                .unwrap();
            if done {
                return have;
            }
        }
        have
    }

    #[tokio::test]
    async fn uploads_resuming_where_mgmt_is_and_deletes_only_when_confirmed() {
        let d = tempfile::tempdir().unwrap();
        let spool = Spool::open(d.path()).unwrap();
        let (id, k, bytes) = kept(&spool, d.path(), 3 * CHUNK_BYTES + 123);
        let (out_tx, out_rx) = mpsc::channel(4);
        let (state_tx, state_rx) = mpsc::channel(4);
        let (_link_tx, link_rx) = watch::channel(LinkState::Up {
            since: tokio::time::Instant::now(),
        });
        let mgmt = tokio::spawn(fake_mgmt(
            out_rx,
            state_tx,
            k.clone(),
            2 * CHUNK_BYTES as u64,
        ));
        let stop = CancellationToken::new();
        let up = tokio::spawn(run(
            spool.clone(),
            UploadIo {
                outbound: out_tx,
                states: state_rx,
                link: link_rx,
            },
            stop.clone(),
        ));
        let got = mgmt.await.unwrap();
        assert_eq!(got, bytes, "mgmt has the file intact");
        // Confirmed: deleted (give the uploader its turn).
        for _ in 0..100 {
            if spool.pending().is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(spool.pending().is_empty());
        assert!(
            !d.path()
                .join("recordings")
                .join(format!("{id}.wav"))
                .exists()
        );
        stop.cancel();
        up.await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn a_refused_recording_is_kept() {
        let d = tempfile::tempdir().unwrap();
        let spool = Spool::open(d.path()).unwrap();
        let (id, _, _) = kept(&spool, d.path(), 500);
        let (out_tx, mut out_rx) = mpsc::channel(4);
        let (state_tx, state_rx) = mpsc::channel(4);
        let (_link_tx, link_rx) = watch::channel(LinkState::Up {
            since: tokio::time::Instant::now(),
        });
        let stop = CancellationToken::new();
        let up = tokio::spawn(run(
            spool.clone(),
            UploadIo {
                outbound: out_tx,
                states: state_rx,
                link: link_rx,
            },
            stop.clone(),
        ));
        // mgmt refuses three times (not declared yet); the uploader asks
        // again each time, later.
        for _ in 0..3 {
            let o = out_rx.recv().await.unwrap();
            let c: RecordingChunk = crossline_proto::decode(&o.payload).unwrap();
            assert_eq!((c.id, c.offset), (id, 0));
            state_tx
                .send(RecordingState::new(
                    id,
                    0,
                    false,
                    Some("not declared".into()),
                ))
                .await
                .unwrap();
        }
        assert_eq!(spool.pending().len(), 1, "kept until mgmt confirms");
        stop.cancel();
        up.await.unwrap().unwrap();
    }
}
