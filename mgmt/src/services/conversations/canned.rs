//! Canned responses: texts an agent drops into the reply box. The texts are
//! a table of their own (`canned_response`, not events: there is no editor
//! yet, the demo seeds them); each use in a sent reply is an event
//! (`canned_response_used`, with the conversation and who) for reports.

use crossline_core::{ConversationId, EventBody};
use crossline_store::{NewEvent, SqliteStore, StoreError};
use rusqlite::{OptionalExtension, params};

/// Most canned responses one reply is counted as using.
const PER_REPLY: usize = 10;

/// The canned responses an agent may pick: (title, text), by title.
pub fn list(conn: &rusqlite::Connection) -> rusqlite::Result<Vec<(String, String)>> {
    conn.prepare_cached("SELECT title, text FROM canned_response ORDER BY title LIMIT 100")?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect()
}

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
    let by = by.to_string();
    let (recorded, _) = store
        .append_with(move |tx| {
            let mut recorded = Vec::new();
            for t in wanted {
                let known = tx
                    .prepare_cached("SELECT 1 FROM canned_response WHERE title = ?1")?
                    .query_row(params![t], |_| Ok(()))
                    .optional()?;
                if known.is_some() {
                    recorded.push(t);
                }
            }
            let events = recorded
                .iter()
                .map(|title| NewEvent {
                    conversation: Some(conversation),
                    body: EventBody::CannedResponseUsed {
                        title: title.clone(),
                        by: by.clone(),
                    },
                })
                .collect();
            Ok((recorded, events))
        })
        .await?;
    Ok(recorded)
}
