//! Calls on branch lines, projected into the caller's conversation
//! (docs/ARCHITECTURE.md, "Calls").
//!
//! A call is a conversation event like a message: its `call_ringing` joins
//! the caller's contact by the caller ID read as a phone number (E.164 in
//! the site's region, the same identity an SMS from that number has), so a
//! call and the SMS from one number share one conversation. It follows the
//! threading rule of every inbound message: the contact's open conversation,
//! else a new one (channel `voice`). A withheld caller has no number: the
//! call opens a conversation with a new contact of its own (identity the
//! handle `withheld:<call id>`), which an agent may merge later.
//!
//! `call` holds one row per call (who, which line, answered, ended, how
//! long, why); `call_step` what happened during it (IVR choices, voicemails,
//! callback requests). Both are written by the storage's projector (`storage::sqlite::projection`) in the event's
//! transaction and rebuilt from the log like every projection.
use serde::Serialize;
use utoipa::ToSchema;

// ---------------------------------------------------------------------------
// Read side
// ---------------------------------------------------------------------------

/// One call in a conversation.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct CallView {
    /// The call id.
    pub id: String,
    /// Id of its `call_ringing` event.
    pub event_id: String,
    /// `inbound` (the only direction so far).
    pub direction: String,
    pub device: String,
    pub line: String,
    /// Caller ID as received; absent when withheld or not sent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub caller: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub caller_name: Option<String>,
    /// The caller withheld the number.
    pub withheld: bool,
    /// HLC milliseconds it started ringing.
    pub at_ms: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub answered_by: Option<String>,
    /// Absent while the call goes on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ended_ms: Option<i64>,
    /// Time connected (0 when never answered); absent while it goes on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ring_ms: Option<i64>,
    /// Why it ended: `caller_hung_up`, `ivr_hung_up`, `missed`, `busy`,
    /// `failed`, `line_lost` or `other`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cause: Option<String>,
    /// What happened during it, oldest first.
    pub steps: Vec<CallStepView>,
}

/// Something that happened during a call.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct CallStepView {
    /// `ivr_choice`, `voicemail` or `callback`.
    pub kind: String,
    pub at_ms: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub menu: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub digit: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    /// Voicemail: the recording id (served at `/recordings/{id}`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recording: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bytes: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// Callback: the number to call back.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub number: Option<String>,
}
