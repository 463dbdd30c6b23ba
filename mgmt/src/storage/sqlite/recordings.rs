//! [`RecordingRepo`] on SQLite: a recording is declared by its device's
//! `voicemail_recorded` event, which the conversations projection keeps in
//! `call_step` (its call in `call`: device and conversation).

use super::read;
use crate::services::RepoFuture;
use crate::services::recordings::repo::{Declared, RecordingRepo};
use crossline_core::RecordingId;
use crossline_store::SqliteStore;
use rusqlite::{OptionalExtension, params};

impl RecordingRepo for SqliteStore {
    fn declared(&self, id: RecordingId) -> RepoFuture<Option<Declared>> {
        read(self, move |conn| {
            conn.prepare_cached(
                "SELECT c.device, c.conversation_id, s.bytes, s.sha256
                 FROM call_step s JOIN call c ON c.id = s.call_id
                 WHERE s.recording = ?1 AND s.kind = 'voicemail'
                 ORDER BY s.at_ms, s.at_c LIMIT 1",
            )?
            .query_row(params![id.to_string()], |r| {
                let conversation: Option<String> = r.get(1)?;
                let bytes: Option<i64> = r.get(2)?;
                Ok(Declared {
                    device: r.get(0)?,
                    conversation: conversation.and_then(|c| c.parse().ok()),
                    bytes: bytes.and_then(|b| u64::try_from(b).ok()).unwrap_or(0),
                    sha256: r.get::<_, Option<String>>(3)?.unwrap_or_default(),
                })
            })
            .optional()
        })
    }
}
