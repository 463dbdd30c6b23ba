//! What routing needs from storage of its own ([`RoutingRepo`]): the
//! configuration in force and the decisions it logged. No SQL here; the
//! SQLite implementation is `crate::storage::sqlite::routing`. (What routing
//! reads of conversations and contacts belongs to those aggregates.)

use crate::services::RepoFuture;
use crossline_core::ConversationId;

/// The newest `routing_config` row, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredConfig {
    pub version: i64,
    /// `RoutingConfig` as JSON.
    pub config: String,
    pub replay_from_seq: i64,
    pub created_ms: i64,
}

/// A logged `routing_decision` event, as stored: (seq, event id as 16
/// bytes, body JSON).
pub type DecisionRow = (i64, Vec<u8>, String);

pub trait RoutingRepo: Send + Sync {
    /// The configuration in force (the newest installed), if any.
    fn latest_config(&self) -> RepoFuture<Option<StoredConfig>>;
    /// `origin`'s routing decisions with seq > `after`, of `conversation`
    /// only if given, in log order, at most `limit`.
    fn decision_rows(
        &self,
        origin: String,
        after: u64,
        conversation: Option<ConversationId>,
        limit: usize,
    ) -> RepoFuture<Vec<DecisionRow>>;
    /// The bodies of routing decisions (of every origin) logged at or after
    /// `from_ms` (log time), in log-time order.
    fn decision_bodies_since(&self, from_ms: u64) -> RepoFuture<Vec<String>>;
}
