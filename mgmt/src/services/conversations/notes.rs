//! Private notes in a conversation (agents only, never sent to the
//! customer). Each is an event in mgmt's log (`note_added`, with the
//! conversation); `conversation_note` is its projection, written by
//! [`project`] in the event's transaction (see [`crate::rebuild`]).

use crossline_core::{ConversationId, Event, EventBody};
use crossline_store::{EventLog, NewEvent, SqliteStore, StoreError};
use rusqlite::{Transaction, params};

/// Longest note, in characters.
pub const NOTE_CHARS: usize = 4000;

/// A note's text as stored: trimmed, at most [`NOTE_CHARS`].
pub fn clip(text: &str) -> String {
    text.trim().chars().take(NOTE_CHARS).collect()
}

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

/// Projects a `note_added` event (any other event: nothing).
pub fn project(tx: &Transaction<'_>, ev: &Event) -> rusqlite::Result<()> {
    if let (
        EventBody::NoteAdded {
            author,
            text,
            mentions,
        },
        Some(conv),
    ) = (&ev.body, ev.conversation)
    {
        tx.prepare_cached(
            "INSERT INTO conversation_note (id, conversation_id, at_ms, author, text, mentions)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT DO NOTHING",
        )?
        .execute(params![
            ev.id.to_string(),
            conv.to_string(),
            i64::try_from(ev.at.ms).unwrap_or(i64::MAX),
            author,
            text,
            mentions.join(",")
        ])?;
    }
    Ok(())
}
