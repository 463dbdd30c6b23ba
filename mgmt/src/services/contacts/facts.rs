//! What agents say about contacts: notes, tags, merges and un-merges. Each
//! is an event in mgmt's log (origin mgmt); the tables that show them
//! (`contact_note`, `contact_tag`, `contact_merge`, `contact_merge_moved`)
//! are projections written by the storage's projector, on the store's writer, in the
//! event's transaction, so a rebuild from the log gives them back
//! (`crossline-mgmt rebuild`).
//!
//! The use cases ([`contact_note`], [`tag`], [`merge`], ...) append the events. A
//! merge or an un-merge is decided in the transaction that appends it
//! ([`ContactRepo::merge`]): the check and the fact cannot race.
//! The projector checks again (a rebuild decides alike) and changes nothing
//! for a merge it finds impossible.
//!
//! Merge rules (docs/ARCHITECTURE.md, "Contacts and conversations"):
//! * two live contacts (neither merged away), not the same, not both with
//!   an open conversation (a contact has at most one) may be merged: the
//!   merged contact's identities, conversations, notes and tags move to the
//!   survivor, and what moved is recorded (`contact_merge_moved`);
//! * an un-merge moves exactly that back; it is refused while the survivor
//!   is itself merged into another contact (undo that merge first).
//!   Conversations the survivor started after the merge stay with it.

use super::repo::ContactRepo;
use crossline_core::contact::ContactId;
use crossline_core::{ConversationId, Event, EventBody};
use crossline_store::{NewEvent, SqliteStore, StoreError};

/// Longest note (on a contact or in a conversation), in characters.
pub const NOTE_CHARS: usize = 4000;

/// A note's text as stored: trimmed, at most [`NOTE_CHARS`].
pub fn clip_note(text: &str) -> String {
    text.trim().chars().take(NOTE_CHARS).collect()
}

/// Longest tag, in characters.
pub const TAG_CHARS: usize = 40;

/// A tag as stored: trimmed, lower case, at most [`TAG_CHARS`].
pub fn normal_tag(tag: &str) -> String {
    tag.trim().to_lowercase().chars().take(TAG_CHARS).collect()
}

// ----- use cases ------------------------------------------------------------------

/// Appends a note on `contact` by `author` (nothing for an empty text).
pub async fn contact_note(
    store: &SqliteStore,
    contact: ContactId,
    author: &str,
    text: &str,
) -> Result<bool, StoreError> {
    let text = clip_note(text);
    if text.is_empty() {
        return Ok(false);
    }
    append(
        store,
        None,
        EventBody::ContactNoteAdded {
            contact,
            author: author.to_string(),
            text,
        },
    )
    .await?;
    Ok(true)
}

/// Puts `tag` ([`normal_tag`]) on `contact`; returns the tag as stored, or
/// None for an empty one (nothing appended).
pub async fn tag(
    store: &SqliteStore,
    contact: ContactId,
    tag: &str,
    by: &str,
) -> Result<Option<String>, StoreError> {
    let tag = normal_tag(tag);
    if tag.is_empty() {
        return Ok(None);
    }
    append(
        store,
        None,
        EventBody::ContactTagged {
            contact,
            tag: tag.clone(),
            by: by.to_string(),
        },
    )
    .await?;
    Ok(Some(tag))
}

/// Takes `tag` off `contact` (None for an empty tag: nothing appended).
pub async fn untag(
    store: &SqliteStore,
    contact: ContactId,
    tag: &str,
    by: &str,
) -> Result<Option<String>, StoreError> {
    let tag = normal_tag(tag);
    if tag.is_empty() {
        return Ok(None);
    }
    append(
        store,
        None,
        EventBody::ContactUntagged {
            contact,
            tag: tag.clone(),
            by: by.to_string(),
        },
    )
    .await?;
    Ok(Some(tag))
}

/// Merges `merged` into `survivor` when the merge rules allow it, in one
/// step with the check ([`ContactRepo::merge`]).
pub async fn merge(
    store: &SqliteStore,
    survivor: ContactId,
    merged: ContactId,
    by: &str,
) -> Result<MergeOutcome, StoreError> {
    store.merge(survivor, merged, by.to_string()).await
}

/// What [`unmerge`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UnmergeOutcome {
    /// What the merge moved is back with the contact; `survivor` was the
    /// contact it had been merged into.
    Unmerged { survivor: String },
    /// The contact is not merged into another.
    NotMerged,
    /// The survivor was merged into `into` since: undo that merge first.
    SurvivorMerged { survivor: String, into: String },
}

/// Undoes the merge of `merged` when the rules allow it, in one step with
/// the check ([`ContactRepo::unmerge`]).
pub async fn unmerge(
    store: &SqliteStore,
    merged: ContactId,
    by: &str,
) -> Result<UnmergeOutcome, StoreError> {
    store.unmerge(merged, by.to_string()).await
}

async fn append(
    store: &SqliteStore,
    conversation: Option<ConversationId>,
    body: EventBody,
) -> Result<Event, StoreError> {
    use crossline_store::EventLog;
    store
        .append(vec![NewEvent { conversation, body }])
        .await?
        .pop()
        .ok_or_else(|| StoreError::Invalid("the store appended no event".into()))
}

/// What [`merge`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MergeOutcome {
    /// Identities and conversations moved to the survivor.
    Merged {
        identities: usize,
        conversations: usize,
    },
    /// Both contacts have an open conversation (a contact has at most one):
    /// resolve one of them first.
    BothOpen { survivor: String, merged: String },
    /// Either contact does not exist (or was merged away already).
    Unknown(String),
    /// The two are the same contact.
    Same,
}

/// A merge into a contact, as the customer panel lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MergeInto {
    /// The contact that was merged in.
    pub merged: String,
    /// The identities (addresses) that merge moved, comma-separated.
    pub addresses: String,
    pub at_ms: i64,
    pub by: String,
}
