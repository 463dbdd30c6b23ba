//! Conversations: the use cases (replies, resolve, reopen, notes, canned
//! responses: [`actions`], [`notes`], [`canned`]) and what they and the
//! surfaces read ([`repo::ConversationRepo`]: lists, timelines, calls).
//!
//! The projections themselves (contacts, conversations, timelines, calls,
//! notes, contact facts, the routing configuration) are written by the
//! storage's projector from the log (`crate::storage::sqlite::projection`,
//! docs/ARCHITECTURE.md "mgmt inside"); this room holds no SQL.

pub mod actions;
pub mod calls;
pub mod canned;
pub mod notes;
pub mod repo;

use crate::services::contacts::address::AddressKind;
use serde::Serialize;
use utoipa::ToSchema;

/// Longest `last_message_preview`, in characters.
pub const PREVIEW_CHARS: usize = 120;
// ---------------------------------------------------------------------------
// Read side
// ---------------------------------------------------------------------------

/// Conversation status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Open,
    Resolved,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Open => "open",
            Status::Resolved => "resolved",
        }
    }
    /// The status as stored (anything but `resolved` is open).
    pub fn parse(s: &str) -> Self {
        if s == "resolved" {
            Status::Resolved
        } else {
            Status::Open
        }
    }
}

/// Who the conversation is with.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct ContactView {
    pub id: String,
    pub kind: AddressKind,
    /// E.164 for `phone`; as received otherwise.
    pub address: String,
}

/// One conversation in the list.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct ConversationSummary {
    pub id: String,
    pub status: Status,
    pub channel: String,
    pub contact: ContactView,
    /// Device and line the customer last wrote to (where replies go by default).
    pub device: Option<String>,
    pub line: Option<String>,
    pub created_ms: i64,
    /// HLC milliseconds of the newest timeline entry.
    pub last_activity_ms: i64,
    pub last_message_preview: String,
    /// Inbound messages since the last reply or resolve.
    pub unread: i64,
    pub messages: i64,
}

/// A conversation with its timeline.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct ConversationDetail {
    #[serde(flatten)]
    pub summary: ConversationSummary,
    /// Oldest first.
    pub timeline: Vec<TimelineEntry>,
    /// The calls in the conversation, oldest first (each with its IVR
    /// choices, voicemails and callback requests).
    pub calls: Vec<calls::CallView>,
}

/// Kind of a timeline entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EntryKind {
    /// A customer's message.
    Inbound,
    /// An outgoing message (agent reply, or the appliance's auto-reply).
    Reply,
    Resolved,
    Reopened,
}

/// Delivery state of one part of a reply.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct PartView {
    /// 1-based.
    pub part: i64,
    /// `sent`, `delivered`, `failed`, `unknown` or `no_report` (sent, but no
    /// delivery report came within the line's report window, or its message
    /// reference was reused first).
    pub state: String,
    /// Network message reference (TP-MR).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reference: Option<i64>,
    /// Why, in words people read: the modem's or the network's reason for
    /// `failed` (e.g. "the network is congested (+CMS ERROR 42: congestion)"),
    /// what is known for `unknown` and `no_report`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// One entry of a conversation's timeline.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct TimelineEntry {
    /// Id of the event behind the entry.
    pub id: String,
    pub kind: EntryKind,
    /// HLC milliseconds of the event.
    pub at_ms: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<String>,
    /// Inbound: the sender as received; reply: the destination.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parts: Option<i64>,
    /// Inbound: some parts never arrived; the text is partial.
    pub incomplete: bool,
    /// Inbound: the service-centre time stamp (RFC 3339).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sent_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    /// Reply: the command id (also the reply id returned by POST .../replies).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    /// Reply: `pending` (not yet confirmed by the appliance), `sent`,
    /// `delivered` (every part), `failed` (some part), `unknown`, or
    /// `no_report` (every part final, some without a delivery report).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// Reply: why it is `failed`, `unknown` or `no_report`, in words people
    /// read (the first such part's detail, or the whole message's).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Reply: state per part.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub part_states: Vec<PartView>,
}

/// Filters of the conversation list.
#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    pub status: Option<Status>,
    pub device: Option<String>,
    pub contact: Option<String>,
    /// A normalised address (kind, value).
    pub address: Option<(AddressKind, String)>,
    pub limit: usize,
    /// Keyset cursor: (last_ms, last_c, id) of the last row of the previous page.
    pub after: Option<(i64, i64, String)>,
}

/// A page of conversations.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Page {
    pub conversations: Vec<ConversationSummary>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// Parses a cursor made by [`repo::ConversationRepo::list`].
pub fn parse_cursor(s: &str) -> Option<(i64, i64, String)> {
    let mut it = s.splitn(3, '.');
    let ms = it.next()?.parse().ok()?;
    let c = it.next()?.parse().ok()?;
    let id = it.next()?;
    uuid::Uuid::parse_str(id).ok()?;
    Some((ms, c, id.to_string()))
}
