//! Recordings (voicemail now, whole calls later): received from the
//! appliances in chunks over MQTT, verified, stored as files, served to the
//! users who may see their conversation (docs/PROTOCOL.md, "Recordings";
//! docs/API.md, `GET /recordings/{id}`).
//!
//! The log is the truth about a recording: its device's `voicemail_recorded`
//! event declares it (id, size, sha256) and names its call, hence its
//! conversation ([`repo::RecordingRepo::declared`]). The file is the truth
//! about its bytes: `<data_dir>/recordings/<id>.part` grows chunk by chunk
//! (its length is what mgmt has: an upload resumes from it after a restart
//! of either side), and becomes `<id>.wav` only once it has every declared
//! byte and their sha256 matches. Nothing else is stored.

pub mod repo;

use crate::bus::BrokerLink;
use crate::services::users::auth::Actor;
use crate::services::users::repo::AuditRepo;
use crossline_core::{ConversationId, NodeId, RecordingId};
use crossline_proto::recording::{
    MAX_RECORDING_BYTES, RecordingChunk, RecordingState, sha256_file,
};
use crossline_proto::{DeviceTopic, Kind, decode, encode};
use repo::{Declared, RecordingRepo};
use rumqttc::{AsyncClient, Event as MqttEvent, Packet, QoS};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// The recordings service.
#[derive(Clone)]
pub struct Recordings {
    inner: Arc<Inner>,
}

struct Inner {
    dir: PathBuf,
    repo: Arc<dyn RecordingRepo>,
    audit: Arc<dyn AuditRepo>,
}

/// Why a recording cannot be served.
#[derive(Debug, thiserror::Error)]
pub enum RecordingError {
    #[error("no recording {0}")]
    NotFound(String),
    /// Declared but not (yet) all uploaded.
    #[error("recording {0} has not reached mgmt yet (its appliance uploads it when it is online)")]
    NotYet(String),
    #[error("{0}")]
    Denied(String),
    #[error("recording storage: {0}")]
    Store(#[from] crossline_store::StoreError),
    #[error("recording file {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// A stored recording, ready to serve.
#[derive(Debug, Clone)]
pub struct Stored {
    pub id: RecordingId,
    pub path: PathBuf,
    pub bytes: u64,
    pub sha256: String,
    pub conversation: Option<ConversationId>,
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> RecordingError + '_ {
    move |source| RecordingError::Io {
        path: path.display().to_string(),
        source,
    }
}

impl Recordings {
    /// Recordings kept in `dir` (created if missing).
    pub fn new(
        dir: PathBuf,
        repo: Arc<dyn RecordingRepo>,
        audit: Arc<dyn AuditRepo>,
    ) -> anyhow::Result<Self> {
        crossline_store::files::create_private_dir(&dir).map_err(|e| {
            anyhow::anyhow!(
                "cannot create the recordings directory {}: {e}",
                dir.display()
            )
        })?;
        Ok(Self {
            inner: Arc::new(Inner { dir, repo, audit }),
        })
    }

    fn part(&self, id: &RecordingId) -> PathBuf {
        self.inner.dir.join(format!("{id}.part"))
    }

    fn wav(&self, id: &RecordingId) -> PathBuf {
        self.inner.dir.join(format!("{id}.wav"))
    }

    /// Whether recording `id` has reached mgmt whole (the desk shows a
    /// voicemail as arriving until then).
    pub fn arrived(&self, id: &RecordingId) -> bool {
        self.wav(id).is_file()
    }

    /// Acts on a chunk (or a question) from `device`; the answer for it.
    /// A refused chunk changes nothing and is logged with the reason.
    pub async fn on_chunk(&self, device: &NodeId, chunk: RecordingChunk) -> RecordingState {
        let id = chunk.id;
        let declared = match self.inner.repo.declared(id).await {
            Ok(d) => d,
            Err(e) => {
                warn!(device = %device, recording = %id, error = %e, "could not look up a recording");
                return RecordingState::new(
                    id,
                    0,
                    false,
                    Some("mgmt could not look it up; try again later".into()),
                );
            }
        };
        let Some(declared) = declared.filter(|d| d.device == device.as_str()) else {
            // Also another device's recording: a device may upload only
            // what its own events declared.
            warn!(device = %device, recording = %id, "refused recording chunk: no voicemail_recorded event of this device declares it (yet)");
            return RecordingState::new(
                id,
                0,
                false,
                Some(format!(
                    "recording {id} is not declared by {device}: mgmt has no voicemail_recorded event of it naming it (yet); send it after its event is acknowledged"
                )),
            );
        };
        if declared.bytes > MAX_RECORDING_BYTES {
            warn!(device = %device, recording = %id, bytes = declared.bytes, "refused recording: declared larger than the limit");
            return RecordingState::new(
                id,
                0,
                false,
                Some(format!(
                    "recording {id} is declared as {} bytes, more than mgmt takes ({MAX_RECORDING_BYTES})",
                    declared.bytes
                )),
            );
        }
        let this = self.clone();
        let device_s = device.to_string();
        match tokio::task::spawn_blocking(move || this.append(&device_s, &declared, chunk)).await {
            Ok(state) => state,
            Err(e) => {
                warn!(device = %device, recording = %id, error = %e, "recording chunk task failed");
                RecordingState::new(
                    id,
                    0,
                    false,
                    Some("mgmt failed to store it; try again".into()),
                )
            }
        }
    }

    /// The file work of [`Recordings::on_chunk`] (blocking).
    fn append(&self, device: &str, declared: &Declared, chunk: RecordingChunk) -> RecordingState {
        let id = chunk.id;
        let (part, wav) = (self.part(&id), self.wav(&id));
        if wav.exists() {
            return RecordingState::new(id, declared.bytes, true, None);
        }
        let have = std::fs::metadata(&part).map(|m| m.len()).unwrap_or(0);
        let refuse = |have: u64, why: String| {
            warn!(device, recording = %id, offset = chunk.offset, have, reason = %why, "refused recording chunk");
            RecordingState::new(id, have, false, Some(why))
        };
        let data = match chunk.bytes() {
            Ok(d) => d,
            Err(e) => return refuse(have, e.to_string()),
        };
        if data.is_empty() {
            return RecordingState::new(id, have, false, None);
        }
        let end = chunk.offset.saturating_add(data.len() as u64);
        if chunk.offset < have && end <= have {
            // A repeat of what is stored (QoS 1 may deliver twice).
            return RecordingState::new(id, have, false, None);
        }
        if chunk.offset != have {
            return refuse(
                have,
                format!(
                    "chunk at byte {} but mgmt has {have} bytes: send from {have}",
                    chunk.offset
                ),
            );
        }
        if end > declared.bytes {
            return refuse(
                have,
                format!(
                    "chunk ends at byte {end}, beyond the {} bytes declared",
                    declared.bytes
                ),
            );
        }
        let written = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&part)
            .and_then(|mut f| {
                f.write_all(&data)?;
                f.sync_data()
            });
        if let Err(e) = written {
            warn!(device, recording = %id, file = %part.display(), error = %e, "could not store a recording chunk (disk full?)");
            // What was appended in part is cut off again by the next
            // chunk's length check (the file is the truth): re-read it.
            let have = std::fs::metadata(&part).map(|m| m.len()).unwrap_or(0);
            return RecordingState::new(
                id,
                have,
                false,
                Some("mgmt could not store the chunk; try again later".into()),
            );
        }
        if end < declared.bytes {
            return RecordingState::new(id, end, false, None);
        }
        match sha256_file(&part) {
            Ok(sum) if sum == declared.sha256 => {}
            Ok(sum) => {
                let _ = std::fs::remove_file(&part);
                warn!(device, recording = %id, declared = %declared.sha256, received = %sum, "refused recording: the bytes received do not match the declared sha256; discarded them, the appliance sends it again");
                return RecordingState::new(
                    id,
                    0,
                    false,
                    Some(format!(
                        "sha256 of the {end} bytes received is {sum}, not the declared {}: send it again from 0",
                        declared.sha256
                    )),
                );
            }
            Err(e) => {
                warn!(device, recording = %id, error = %e, "could not read back a recording");
                return RecordingState::new(
                    id,
                    end,
                    false,
                    Some("mgmt could not verify it; try again later".into()),
                );
            }
        }
        if let Err(e) = std::fs::rename(&part, &wav).and_then(|()| sync_dir(&self.inner.dir)) {
            warn!(device, recording = %id, error = %e, "could not keep a verified recording");
            return RecordingState::new(
                id,
                end,
                false,
                Some("mgmt could not keep it; try again later".into()),
            );
        }
        info!(device, recording = %id, bytes = end, "recording stored and verified");
        RecordingState::new(id, end, true, None)
    }

    /// The conversation of recording `id` (for the surface's visibility
    /// rule); [`RecordingError::NotFound`] if no event declared it.
    pub async fn conversation(&self, id: &str) -> Result<Option<ConversationId>, RecordingError> {
        let rid: RecordingId = id
            .parse()
            .map_err(|_| RecordingError::NotFound(id.to_string()))?;
        match self.inner.repo.declared(rid).await? {
            Some(d) => Ok(d.conversation),
            None => Err(RecordingError::NotFound(id.to_string())),
        }
    }

    /// The stored recording `id` for `by`, who may listen to it when
    /// `may_see` (the surface decided: they may see its conversation).
    /// Both outcomes are audited (`recording.listen`, `recording.denied`).
    pub async fn open(
        &self,
        by: &Actor,
        id: &str,
        may_see: bool,
    ) -> Result<Stored, RecordingError> {
        let rid: RecordingId = id
            .parse()
            .map_err(|_| RecordingError::NotFound(id.to_string()))?;
        let Some(d) = self.inner.repo.declared(rid).await? else {
            return Err(RecordingError::NotFound(id.to_string()));
        };
        let conversation = d.conversation.map(|c| c.to_string()).unwrap_or_default();
        if !may_see {
            warn!(recording = %rid, by = by.name(), conversation = %conversation, "refused recording: may not see its conversation");
            crate::services::users::audit::record(
                self.inner.audit.as_ref(),
                by.name(),
                "recording.denied",
                &rid.to_string(),
                &conversation,
            )
            .await;
            return Err(RecordingError::Denied(format!(
                "{} may not listen to recording {rid}: it belongs to a conversation they may not see",
                by.name()
            )));
        }
        let path = self.wav(&rid);
        if !path.exists() {
            return Err(RecordingError::NotYet(rid.to_string()));
        }
        let len = std::fs::metadata(&path).map_err(io_err(&path))?.len();
        crate::services::users::audit::record(
            self.inner.audit.as_ref(),
            by.name(),
            "recording.listen",
            &rid.to_string(),
            &conversation,
        )
        .await;
        Ok(Stored {
            id: rid,
            path,
            bytes: len,
            sha256: d.sha256,
            conversation: d.conversation,
        })
    }
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

/// The user (and client id) of mgmt's recordings connection.
pub fn service_user(service_user: &str) -> String {
    format!("{service_user}.rec")
}

/// Runs the recordings service's MQTT connection until `shutdown`: every
/// device's `rec` topic in, answers on its `rec_state`.
pub async fn run(
    rec: Recordings,
    link: BrokerLink,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let mut mo = link.options(&service_user(&link.username));
    mo.set_keep_alive(Duration::from_secs(10));
    mo.set_clean_session(true);
    mo.set_max_packet_size(
        crossline_proto::MAX_PAYLOAD + 1024,
        crossline_proto::MAX_PAYLOAD + 1024,
    );
    let (client, mut eventloop) = AsyncClient::new(mo, 64);
    let mut backoff = Duration::from_millis(100);
    let mut connected = false;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            ev = eventloop.poll() => match ev {
                Ok(MqttEvent::Incoming(Packet::ConnAck(_))) => {
                    backoff = Duration::from_millis(100);
                    connected = true;
                    client.subscribe(Kind::Rec.filter_all(), QoS::AtLeastOnce).await?;
                    info!("recordings service connected");
                }
                Ok(MqttEvent::Incoming(Packet::Publish(p))) => {
                    on_publish(&rec, &client, &p.topic, &p.payload).await;
                }
                Ok(_) => {}
                Err(e) => {
                    if connected {
                        warn!(error = %e, "recordings service lost the broker; reconnecting");
                    }
                    connected = false;
                    tokio::select! {
                        _ = shutdown.cancelled() => break,
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(3));
                }
            },
        }
    }
    Ok(())
}

async fn on_publish(rec: &Recordings, client: &AsyncClient, topic: &str, payload: &[u8]) {
    let Ok(t) = DeviceTopic::parse(topic) else {
        warn!(
            topic,
            "recording chunk on a topic that is not a device's; ignored"
        );
        return;
    };
    let chunk = match decode::<RecordingChunk>(payload) {
        Ok(c) => c,
        Err(e) => {
            warn!(device = %t.device, error = %e, "refused recording chunk: malformed");
            return;
        }
    };
    let state = rec.on_chunk(&t.device, chunk).await;
    let out = DeviceTopic::new(&t.device, Kind::RecState).to_string();
    if let Err(e) = client
        .publish(out, QoS::AtLeastOnce, false, encode(&state))
        .await
    {
        warn!(device = %t.device, error = %e, "could not answer a recording chunk");
    }
}

#[cfg(test)]
mod tests;
