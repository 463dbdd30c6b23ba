//! mgmt's clock: the wall-clock milliseconds every service and surface
//! reads. The event log's hybrid logical clock (`at` of every event) is kept
//! by the store ([`crossline_store::SqliteStore`]), opened with this mgmt's
//! node id, the configuration's `node_id` ([`crate::config::Config::node_id`]);
//! code that needs the node id asks the store
//! ([`crossline_store::EventLog::local_node`]), so two mgmt instances in one
//! process (tests) each have their own.

/// The node id of a mgmt without `node_id` in its configuration (the one
/// every mgmt had before it was configurable, so existing logs go on).
pub const DEFAULT_NODE_ID: &str = "mgmt";

/// Milliseconds since the Unix epoch (0 if the system clock is before it).
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
