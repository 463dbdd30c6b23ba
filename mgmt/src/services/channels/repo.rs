//! What command dispatch needs from storage ([`CommandRepo`]): the
//! commands the projector queued for appliances (`pending_command`) and when
//! each was last published. No SQL here; the SQLite implementation is
//! `crate::storage::sqlite::conversations`.

use crate::services::RepoFuture;
use crossline_core::{EventId, NodeId};

/// A command waiting for its appliance's confirmation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingCommand {
    pub id: EventId,
    pub device: NodeId,
    /// The encoded `crossline_proto::Command`, ready to publish.
    pub payload: String,
    pub created_ms: i64,
    pub last_sent_ms: Option<i64>,
}

pub trait CommandRepo: Send + Sync {
    /// Commands waiting for a device's answer: of `device` only if given;
    /// not published since `sent_before_ms` if given.
    fn pending_commands(
        &self,
        device: Option<String>,
        sent_before_ms: Option<i64>,
    ) -> RepoFuture<Vec<PendingCommand>>;
    /// Records that `ids` were published at `at_ms`.
    fn mark_sent(&self, ids: Vec<EventId>, at_ms: i64) -> RepoFuture<()>;
}
