//! Private notes in a conversation (agents only, never sent to the
//! customer). Each is an event in mgmt's log (`note_added`, with the
//! conversation); `conversation_note` is its projection, written by
//! the storage's projector in the event's transaction.

use crossline_core::{ConversationId, EventBody};
use crossline_store::{EventLog, NewEvent, SqliteStore, StoreError};

pub use crate::services::contacts::facts::{NOTE_CHARS, clip_note as clip};

/// Appends a private note in `conversation` by `author`. An empty text is
/// not a note: nothing is appended (returns false).
pub async fn note(
    store: &SqliteStore,
    conversation: ConversationId,
    author: &str,
    text: &str,
    mentions: Vec<String>,
) -> Result<bool, StoreError> {
    let text = clip(text);
    if text.is_empty() {
        return Ok(false);
    }
    store
        .append(vec![NewEvent {
            conversation: Some(conversation),
            body: EventBody::NoteAdded {
                author: author.to_string(),
                text,
                mentions,
            },
        }])
        .await?;
    Ok(true)
}
