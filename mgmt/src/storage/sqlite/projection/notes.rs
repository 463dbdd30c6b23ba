//! Private notes' projection (`conversation_note`).

use crossline_core::{Event, EventBody};
use rusqlite::{Transaction, params};

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
