//! Canned responses: texts an agent drops into the reply box. The texts are
//! a table of their own (`canned_response`, not events: there is no editor
//! yet, the demo seeds them); each use in a sent reply is an event
//! (`canned_response_used`, with the conversation and who) for reports.

use super::repo::ConversationRepo;
use crossline_core::ConversationId;
use crossline_store::{SqliteStore, StoreError};

/// Most canned responses one reply is counted as using.
const PER_REPLY: usize = 10;

/// Records that a reply `by` sent in `conversation` used the canned
/// responses titled `titles` (one per line, as the reply form sends them).
/// Titles no canned response has are left out; each title counts once.
/// Returns the titles recorded.
pub async fn used(
    store: &SqliteStore,
    conversation: ConversationId,
    titles: &str,
    by: &str,
) -> Result<Vec<String>, StoreError> {
    let mut wanted: Vec<String> = Vec::new();
    for t in titles.lines().map(str::trim).filter(|t| !t.is_empty()) {
        if wanted.len() < PER_REPLY && !wanted.iter().any(|w| w == t) {
            wanted.push(t.to_string());
        }
    }
    if wanted.is_empty() {
        return Ok(Vec::new());
    }
    store
        .canned_used(conversation, wanted, by.to_string())
        .await
}
