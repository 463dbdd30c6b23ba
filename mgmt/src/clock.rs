//! mgmt's clock and identity: the wall-clock milliseconds every service
//! and surface reads, and the node id mgmt stamps on the events it creates.
//! The event log's hybrid logical clock (`at` of every event) is kept by
//! the store ([`crossline_store::SqliteStore`]), seeded from this node id.

use crossline_core::NodeId;

/// Milliseconds since the Unix epoch (0 if the system clock is before it).
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// mgmt's own node id (origin of events mgmt creates).
#[allow(clippy::expect_used)]
pub fn mgmt_node() -> NodeId {
    NodeId::new("mgmt").expect("\"mgmt\" satisfies the node id rules")
}
