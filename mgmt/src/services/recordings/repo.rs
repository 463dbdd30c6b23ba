//! What the recordings service needs from storage: which recordings a
//! device declared (its `voicemail_recorded` events, projected by the
//! conversations service into `call_step`). No SQL here; the SQLite
//! implementation is `crate::storage::sqlite::recordings`.

use crate::services::RepoFuture;
use crossline_core::{ConversationId, RecordingId};

/// A recording as its device declared it in the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Declared {
    /// The device whose event declared it (the only one that may upload it).
    pub device: String,
    /// The conversation of its call (who may listen to it).
    pub conversation: Option<ConversationId>,
    /// Size of the file, in bytes.
    pub bytes: u64,
    /// SHA-256 of the file, lower-case hex.
    pub sha256: String,
}

pub trait RecordingRepo: Send + Sync {
    /// The recording `id`, if an event declared it.
    fn declared(&self, id: RecordingId) -> RepoFuture<Option<Declared>>;
}
