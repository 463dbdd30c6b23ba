//! What the conversations service, routing, live updates and the surfaces
//! read of the conversation projections ([`ConversationRepo`]). No SQL
//! here; the SQLite implementation is `crate::storage::sqlite::conversations`.

use super::TimelineEntry;
use super::calls::CallView;
use super::{ConversationDetail, ConversationSummary, ListFilter, Page};
use crate::services::RepoFuture;
use crate::services::contacts::facts::MergeInto;
use crossline_core::ConversationId;
use std::collections::HashSet;

/// A timeline entry or a conversation whose change live updates announce.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryKey {
    /// The entry of this event (an inbound message, a call, a note).
    Event(String),
    /// The entry of this command (a reply).
    Command(String),
    /// The conversation itself (status, assignment).
    Conversation(String),
}

/// What a batch of the log changed, as live updates announce it: timeline
/// entries with their conversation id, then the summaries of the
/// conversations they and the conversation keys name, each once.
#[derive(Debug, Clone, Default)]
pub struct Changed {
    pub entries: Vec<(String, TimelineEntry)>,
    pub conversations: Vec<ConversationSummary>,
}

/// Whether a reply may leave by the line asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplyLine {
    Known,
    /// The device was never seen on it; the lines it was seen on.
    Unknown(Vec<String>),
}

/// An open conversation as routing's catch-up needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenConversation {
    pub id: String,
    pub contact: String,
    pub channel: String,
    pub line: Option<String>,
    /// The first text the customer wrote.
    pub first_text: Option<String>,
}

/// A private note in a conversation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkspaceNote {
    pub at_ms: i64,
    pub author: String,
    pub text: String,
    /// Logins, comma-separated.
    pub mentions: String,
}

/// Everything the desk shows around one conversation.
#[derive(Debug, Clone)]
pub struct Workspace {
    pub detail: ConversationDetail,
    /// Its routing decisions, oldest first.
    pub decisions: Vec<crossline_core::routing::Record>,
    pub notes: Vec<WorkspaceNote>,
    /// The lines of its device.
    pub lines: Vec<String>,
    /// Canned responses: (title, text), by title.
    pub canned: Vec<(String, String)>,
    /// The contact's identities: (kind, address).
    pub identities: Vec<(String, String)>,
    /// The contact's other conversations, newest first.
    pub previous: Vec<ConversationSummary>,
    pub tags: Vec<String>,
    /// Notes on the contact: (at_ms, author, text), newest first.
    pub contact_notes: Vec<(i64, String, String)>,
    pub merged: Vec<MergeInto>,
}

/// The desk inbox's facets.
#[derive(Debug, Clone, Default)]
pub struct InboxFacets {
    /// The contacts with the tag asked for (None: no tag asked for).
    pub tagged: Option<HashSet<String>>,
    /// Every tag in use, by name (at most 200).
    pub tags: Vec<String>,
    /// Conversations with a note mentioning the user.
    pub mentioned: HashSet<String>,
}

/// Reads of conversations, timelines and calls.
pub trait ConversationRepo: Send + Sync {
    /// A page of conversations, newest activity first.
    fn list(&self, filter: ListFilter) -> RepoFuture<Page>;
    /// One conversation's summary.
    fn summary(&self, id: String) -> RepoFuture<Option<ConversationSummary>>;
    /// The summaries of `ids` that exist, in the order given.
    fn summaries(&self, ids: Vec<String>) -> RepoFuture<Vec<ConversationSummary>>;
    /// One conversation with its timeline and calls.
    fn detail(&self, id: String) -> RepoFuture<Option<ConversationDetail>>;
    /// Everything the desk shows around one conversation, read at one
    /// point in time ([`Workspace`]).
    fn workspace(&self, id: ConversationId) -> RepoFuture<Option<Workspace>>;
    /// When the customer last wrote in a conversation (log time, ms).
    fn last_inbound_ms(&self, id: String) -> RepoFuture<Option<i64>>;
    /// The first text the customer wrote in a conversation.
    fn first_inbound_text(&self, id: String) -> RepoFuture<Option<String>>;
    /// Timeline entries (by event or command id) with their conversation,
    /// then the summaries of the conversations they and `conversations`
    /// belong to, each once, in first-seen order.
    fn changed(&self, keys: Vec<EntryKey>) -> RepoFuture<Changed>;
    /// Whether `device` has been seen on `line`; if not, the lines it has.
    fn reply_line(&self, device: String, line: String) -> RepoFuture<ReplyLine>;
    /// Another open conversation of `contact` than `except`.
    fn other_open(&self, contact: String, except: String) -> RepoFuture<Option<String>>;
    /// Every open conversation, oldest first (routing's catch-up).
    fn open_conversations(&self) -> RepoFuture<Vec<OpenConversation>>;
    /// The calls of a conversation, with their steps.
    fn calls(&self, conversation: String) -> RepoFuture<Vec<CallView>>;
    /// The desk's inbox facets: the contacts with `tag` (if given), every
    /// tag in use, and the conversations whose notes mention `login`.
    fn inbox_facets(&self, tag: Option<String>, login: String) -> RepoFuture<InboxFacets>;
    /// Appends `canned_response_used` for each of `titles` a canned
    /// response has; the titles recorded.
    fn canned_used(
        &self,
        conversation: ConversationId,
        titles: Vec<String>,
        by: String,
    ) -> RepoFuture<Vec<String>>;
}
