//! The immutable facts every node appends to its log and replicates.
//!
//! An [`Event`] is created once, by its origin node, and never changes. Its
//! `(origin, seq)` pair is gapless per origin: seq 1, 2, 3, ... That is what
//! lets mgmt acknowledge "everything up to N" and detect holes.

use crate::contact::ContactId;
use crate::hlc::Hlc;
use crate::id::{CallId, ConversationId, EventId, NodeId, RecordingId};
use serde::{Deserialize, Serialize};

/// One immutable fact.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Event {
    pub id: EventId,
    pub origin: NodeId,
    /// Gapless per origin, starting at 1.
    pub seq: u64,
    pub at: Hlc,
    /// The conversation this fact belongs to, when the origin knows it. An
    /// appliance does not: mgmt threads its messages into conversations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conversation: Option<ConversationId>,
    pub body: EventBody,
}

/// Communication channel of a message or call.
///
/// The one mapping between a channel and its name: [`Channel::as_str`],
/// [`Display`](std::fmt::Display), [`FromStr`](std::str::FromStr) and serde
/// all use the same lowercase names (`sms`, `voice`, `email`, `chat`,
/// `messenger`), in events, SQL columns, JSON, configuration and templates.
/// An unknown name is refused ([`UnknownChannel`]), never read as SMS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    Sms,
    Voice,
    Email,
    Chat,
    Messenger,
}

impl Channel {
    /// Every channel, in declaration order.
    pub const ALL: [Channel; 5] = [
        Channel::Sms,
        Channel::Voice,
        Channel::Email,
        Channel::Chat,
        Channel::Messenger,
    ];

    /// The channel's name: the same string serde writes.
    pub const fn as_str(self) -> &'static str {
        match self {
            Channel::Sms => "sms",
            Channel::Voice => "voice",
            Channel::Email => "email",
            Channel::Chat => "chat",
            Channel::Messenger => "messenger",
        }
    }

    /// The channel named `s` (exactly as [`Channel::as_str`] writes it).
    pub fn parse(s: &str) -> Result<Channel, UnknownChannel> {
        Channel::ALL
            .into_iter()
            .find(|c| c.as_str() == s)
            .ok_or_else(|| UnknownChannel(s.chars().take(64).collect()))
    }
}

impl std::fmt::Display for Channel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Channel {
    type Err = UnknownChannel;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Channel::parse(s)
    }
}

/// A channel name that is not one of [`Channel::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown channel {0:?}; the channels are sms, voice, email, chat and messenger")]
pub struct UnknownChannel(pub String);

/// Delivery state of one outgoing message (or one of its parts).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryState {
    /// Accepted by the modem / network (message reference assigned).
    Sent,
    /// The handset confirmed receipt (SMS status report).
    Delivered,
    /// Definitely not delivered.
    Failed,
    /// Outcome cannot be known (the modem died mid-submit). Never retried
    /// silently: an agent decides.
    Unknown,
    /// Sent, but no delivery report came within the line's report window
    /// (the validity period), or the part's TP-MR was reused by a later
    /// message to the same number on that line before one came (a report
    /// could no longer be told apart). Final: delivered or not is unknown.
    NoReport,
}

/// Why a call ended ([`EventBody::CallEnded`]).
///
/// A cause a newer appliance adds is read as [`CallEndCause::Other`] by an
/// older mgmt (the call still ends; the desk shows "ended"), so a new cause
/// never makes a `call_ended` event malformed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CallEndCause {
    /// The caller hung up after the call was answered.
    CallerHungUp,
    /// The appliance (the IVR, after its last prompt or voicemail) hung up.
    IvrHungUp,
    /// Nobody answered: the line rang until the caller gave up or the
    /// network stopped ringing (a missed call).
    Missed,
    /// The far end or the network reported busy.
    Busy,
    /// The call failed (the modem or the network refused it, no carrier
    /// before it was answered).
    Failed,
    /// The line went away during the call (modem lost, port unplugged,
    /// analog loop current gone without a hang-up signal).
    LineLost,
    /// A cause this build does not know (from a newer appliance).
    #[serde(other)]
    Other,
}

impl CallEndCause {
    /// The cause's name, as serde writes it.
    pub const fn as_str(self) -> &'static str {
        match self {
            CallEndCause::CallerHungUp => "caller_hung_up",
            CallEndCause::IvrHungUp => "ivr_hung_up",
            CallEndCause::Missed => "missed",
            CallEndCause::Busy => "busy",
            CallEndCause::Failed => "failed",
            CallEndCause::LineLost => "line_lost",
            CallEndCause::Other => "other",
        }
    }
}

/// Health of one modem line, as the appliance last saw it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct ModemHealth {
    pub line: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal_dbm: Option<i32>,
    #[serde(default)]
    pub registered: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operator: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iccid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub firmware: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub imei: Option<String>,
    /// SIM state: `ready`, `not_inserted`, `pin_required`, `pin_rejected`,
    /// `puk_required`, `unknown` or `error`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sim: Option<String>,
    /// Times the line's modem went away (port lost, driver restarted) since
    /// the appliance started.
    #[serde(default)]
    pub restarts: u32,
    /// Why the line's modem cannot be reached right now (port missing,
    /// unplugged, not answering); absent while it answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disconnected: Option<String>,
}

/// Health of the appliance itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct SystemHealth {
    pub uptime_s: u64,
    pub version: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_temp_c: Option<f32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load1: Option<f32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mem_used_pct: Option<f32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk_used_pct: Option<f32>,
    /// Seconds since the machine booted (`uptime_s` is the daemon's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_uptime_s: Option<u64>,
}

/// What happened. Tagged by `type` so the JSON is readable in
/// `mosquitto_sub`.
///
/// Forward compatibility (docs/PROTOCOL.md, "Version rule"): a `type` this
/// build does not know at all becomes [`EventBody::Unknown`], kept raw, so a
/// newer appliance's new kind is stored and acknowledged instead of stalling
/// its uplink. A kind this build knows is decoded strictly as that kind: a
/// malformed one is an error, never "unknown" (a device cannot disguise a
/// mgmt kind as an unknown one). Fields a known kind does not have are
/// ignored (a newer minor version may add optional fields); they are not
/// kept.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(remote = "Self", tag = "type", rename_all = "snake_case")]
pub enum EventBody {
    /// A customer's message arrived on a branch line (reassembled if multipart).
    MessageReceived {
        channel: Channel,
        /// Line (modem) label on the appliance, e.g. "gsm0".
        line: String,
        /// Sender as received: E.164 (`+380...`), national, or alphanumeric.
        from: String,
        /// The line's own number, when configured.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        to: Option<String>,
        text: String,
        /// Service-centre timestamp (RFC 3339 with offset), when the network gave one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        sent_at: Option<String>,
        /// Number of parts the message arrived in.
        parts: u16,
        /// True when some parts never arrived and the text is partial.
        #[serde(default)]
        incomplete: bool,
        /// Stable key of the message at the source (the modem driver's dedup
        /// key), so a message offered twice is recorded once.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        key: Option<String>,
    },
    /// An outgoing message was handed to the network, one entry per part.
    MessageSent {
        channel: Channel,
        line: String,
        to: String,
        text: String,
        /// The mgmt command that asked for it (idempotency key).
        command: EventId,
        /// Network message reference per part (TP-MR), in part order.
        refs: Vec<u8>,
        /// Sent by the appliance itself (offline auto-reply), not by an agent.
        #[serde(default)]
        auto_reply: bool,
    },
    /// Delivery state changed for an outgoing message (or one part of it).
    DeliveryStatus {
        command: EventId,
        /// 1-based part; `None` for the whole message.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        part: Option<u16>,
        state: DeliveryState,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        detail: Option<String>,
    },
    /// mgmt: an agent (or the API) asked for a reply to go out on a line.
    ReplyRequested {
        /// The command sent to the appliance; its id is the idempotency key.
        command: EventId,
        channel: Channel,
        device: NodeId,
        line: String,
        to: String,
        text: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        author: Option<String>,
    },
    /// mgmt: a conversation was marked resolved.
    ConversationResolved {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        by: Option<String>,
    },
    /// mgmt: a resolved conversation was opened again.
    ConversationReopened {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        by: Option<String>,
    },
    /// mgmt: a routing decision (assignment, queueing, presence change, ...)
    /// with who and why, so routing can be audited and replayed.
    RoutingDecision { record: crate::routing::Record },
    /// mgmt: an agent wrote a private note in the event's conversation
    /// (agents only, never sent to the customer).
    NoteAdded {
        author: String,
        text: String,
        /// Logins mentioned with `@login` (those that exist).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        mentions: Vec<String>,
    },
    /// mgmt: an agent wrote a note on a contact (the customer panel).
    ContactNoteAdded {
        contact: ContactId,
        author: String,
        text: String,
    },
    /// mgmt: an agent put a tag on a contact (trimmed, lower case).
    ContactTagged {
        contact: ContactId,
        tag: String,
        by: String,
    },
    /// mgmt: an agent took a tag off a contact.
    ContactUntagged {
        contact: ContactId,
        tag: String,
        by: String,
    },
    /// mgmt: an agent merged contact `merged` into `survivor`: its
    /// identities, conversations, tags and notes move to the survivor. mgmt's
    /// projection decides what moves (and refuses the merge, changing
    /// nothing, when either contact is gone or both have an open
    /// conversation), so a rebuild decides the same.
    ContactsMerged {
        survivor: ContactId,
        merged: ContactId,
        by: String,
    },
    /// mgmt: an agent undid the merge of `merged`: what that merge moved goes
    /// back (refused, changing nothing, while a later merge involving either
    /// contact stands).
    ContactUnmerged { merged: ContactId, by: String },
    /// mgmt: an agent's reply in the event's conversation used a canned
    /// response (by its title).
    CannedResponseUsed { title: String, by: String },
    /// mgmt: an admin installed a routing configuration (queues, agents,
    /// rules, sites and their business hours). `reset`: routing starts
    /// afresh from this event (earlier decisions are not replayed).
    RoutingConfigured {
        config: Box<crate::routing::RoutingConfig>,
        #[serde(default)]
        reset: bool,
        by: String,
        /// Where routing's replay starts, when it is not decided by `reset`:
        /// only for a configuration installed before configurations were
        /// events, carried into the log once on upgrade.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        replay_from_seq: Option<u64>,
    },
    /// A call started ringing on a branch line (inbound). The first event
    /// of every call; the others name its `call`.
    CallRinging {
        call: CallId,
        /// Line label on the appliance, e.g. "gsm0" or "fxo0".
        line: String,
        /// Caller ID as received (CLIP, FSK or DTMF caller ID): E.164
        /// (`+380...`), national, or as the network gave it. Absent when
        /// the caller withheld it or the network sent none (`withheld`
        /// says which).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        from: Option<String>,
        /// The caller's name, when the caller ID carried one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
        /// True when the caller withheld the number (CLIP validity 1, an
        /// FSK "private" reason); false when it is merely unknown.
        #[serde(default)]
        withheld: bool,
        /// The line's own number, when configured.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        to: Option<String>,
    },
    /// The call was answered: by the appliance's IVR (`by: "ivr"`), later
    /// by an agent (`by: "agent:<login>"`).
    CallAnswered { call: CallId, by: String },
    /// The caller chose a menu entry in the IVR.
    IvrChoice {
        call: CallId,
        /// The menu's name in the IVR configuration.
        menu: String,
        /// The key pressed (`0`-`9`, `*`, `#`, `A`-`D`), or empty when the
        /// menu timed out and `action` is its timeout action.
        digit: String,
        /// What the IVR did: `voicemail`, `callback`, `menu:<name>`,
        /// `hangup`, `repeat`, ...
        action: String,
    },
    /// A voicemail was recorded during the call. The audio follows
    /// separately (docs/PROTOCOL.md, "Recordings") and is kept on the
    /// appliance until mgmt has it.
    VoicemailRecorded {
        call: CallId,
        recording: RecordingId,
        duration_ms: u64,
        /// Size of the recording file (WAV) in bytes.
        bytes: u64,
        /// SHA-256 of the recording file, lower-case hex.
        sha256: String,
    },
    /// The caller asked to be called back (on `number`: the caller ID, or a
    /// number keyed in).
    CallbackRequested { call: CallId, number: String },
    /// The call ended. The last event of every call.
    CallEnded {
        call: CallId,
        /// Time the call was connected (answer to end); 0 when it never was.
        duration_ms: u64,
        /// Time it rang before it was answered or ended.
        #[serde(default)]
        ring_ms: u64,
        cause: CallEndCause,
    },
    /// Periodic liveness from a device.
    DeviceHeartbeat { uptime_s: u64 },
    /// Periodic health of a device and its lines.
    DeviceTelemetry {
        system: SystemHealth,
        #[serde(default)]
        modems: Vec<ModemHealth>,
    },
    /// mgmt: what mgmt stored in place of a device's event it refused (see
    /// [`Refusal`]), in that event's own `(origin, seq)` slot so the
    /// device's sequence stays whole and its uplink goes on. Only mgmt's
    /// ingestion creates one; a device publishing it is refused like any
    /// other kind that is mgmt's.
    Refused {
        /// [`EventBody::kind`] of the refused event.
        kind: String,
        /// Why it was refused (a [`Refusal`], as text).
        reason: String,
    },
    /// A kind this build does not know (from a newer node), kept as it
    /// came. Never projected; only decoding creates one, and never for a
    /// known kind's name.
    #[serde(skip)]
    Unknown(UnknownBody),
}

/// The body of an event of a kind this build does not know (see
/// [`crate::tagged`]).
pub type UnknownBody = crate::tagged::Unrecognized;

/// Every kind name this build knows (the `type` of every variant but
/// [`EventBody::Unknown`]), from serde's own list of the enum's variants.
pub fn known_kinds() -> &'static [&'static str] {
    static KINDS: std::sync::OnceLock<&'static [&'static str]> = std::sync::OnceLock::new();
    KINDS.get_or_init(|| crate::tagged::known_tags(EventBody::deserialize))
}

impl Serialize for EventBody {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            EventBody::Unknown(u) => u.serialize(s),
            known => EventBody::serialize(known, s),
        }
    }
}

impl<'de> Deserialize<'de> for EventBody {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        crate::tagged::decode(d, known_kinds(), EventBody::deserialize, EventBody::Unknown)
    }
}

/// Who may originate (publish) an event of a kind: every kind answers in
/// [`EventBody::originator`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Originator {
    /// A device (appliance), speaking of its own lines and of the commands
    /// addressed to it.
    Device,
    /// mgmt itself; mgmt refuses such an event from a device.
    Mgmt,
}

/// Why mgmt refuses an event a device published on its own topic. The text
/// is what mgmt logs and stores in [`EventBody::Refused`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The kind is mgmt's to originate ([`Originator::Mgmt`]).
    #[error("a {kind} event is mgmt's to originate, never a device's")]
    NotADeviceKind { kind: &'static str },
    /// A device's event named a conversation: mgmt threads a device's
    /// messages itself.
    #[error(
        "the event names conversation {conversation}; a device never names a conversation (mgmt threads its messages)"
    )]
    NamesConversation { conversation: ConversationId },
    /// A `call_ringing` whose call id is already taken (by another
    /// device's call, or an earlier call of this one).
    #[error("call {call} already rang on device {device}; a new call needs a new id")]
    CallIdTaken { call: CallId, device: String },
    /// A later event of a call that rang on another device.
    #[error("call {call} rang on device {device}, not on this one")]
    ForeignCall { call: CallId, device: String },
    /// A later event of a call that never rang (no `call_ringing` before it).
    #[error("call {call} never rang (no call_ringing before this event)")]
    UnknownCall { call: CallId },
    /// An outcome (`message_sent`, `delivery_status`) of a command mgmt
    /// addressed to another device.
    #[error("command {command} was addressed to device {device}, not to this one")]
    ForeignCommand { command: EventId, device: String },
}

impl Event {
    /// What mgmt checks of a device's event without looking at its own
    /// state: the kind is one a device may originate, and no conversation is
    /// named. Whether a command the event reports on
    /// ([`EventBody::outcome_of`]) was addressed to this device needs mgmt's
    /// commands and is checked where they live.
    pub fn check_from_device(&self) -> Result<(), Refusal> {
        if self.body.originator() != Originator::Device {
            return Err(Refusal::NotADeviceKind {
                kind: self.body.kind(),
            });
        }
        match self.conversation {
            Some(conversation) => Err(Refusal::NamesConversation { conversation }),
            None => Ok(()),
        }
    }
}

impl EventBody {
    /// Short name of the body kind, for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            EventBody::MessageReceived { .. } => "message_received",
            EventBody::MessageSent { .. } => "message_sent",
            EventBody::DeliveryStatus { .. } => "delivery_status",
            EventBody::ReplyRequested { .. } => "reply_requested",
            EventBody::ConversationResolved { .. } => "conversation_resolved",
            EventBody::ConversationReopened { .. } => "conversation_reopened",
            EventBody::RoutingDecision { .. } => "routing_decision",
            EventBody::NoteAdded { .. } => "note_added",
            EventBody::ContactNoteAdded { .. } => "contact_note_added",
            EventBody::ContactTagged { .. } => "contact_tagged",
            EventBody::ContactUntagged { .. } => "contact_untagged",
            EventBody::ContactsMerged { .. } => "contacts_merged",
            EventBody::ContactUnmerged { .. } => "contact_unmerged",
            EventBody::RoutingConfigured { .. } => "routing_configured",
            EventBody::CannedResponseUsed { .. } => "canned_response_used",
            EventBody::CallRinging { .. } => "call_ringing",
            EventBody::CallAnswered { .. } => "call_answered",
            EventBody::IvrChoice { .. } => "ivr_choice",
            EventBody::VoicemailRecorded { .. } => "voicemail_recorded",
            EventBody::CallbackRequested { .. } => "callback_requested",
            EventBody::CallEnded { .. } => "call_ended",
            EventBody::DeviceHeartbeat { .. } => "device_heartbeat",
            EventBody::DeviceTelemetry { .. } => "device_telemetry",
            EventBody::Refused { .. } => "refused",
            EventBody::Unknown(_) => "unknown",
        }
    }

    /// Who may originate this kind. Exhaustive on purpose: a new kind does
    /// not compile until it says who may send it.
    pub fn originator(&self) -> Originator {
        match self {
            EventBody::MessageReceived { .. }
            | EventBody::MessageSent { .. }
            | EventBody::DeliveryStatus { .. }
            // Calls on the device's own lines: the call's later events must
            // name a call that rang on the same device (`call_of`).
            | EventBody::CallRinging { .. }
            | EventBody::CallAnswered { .. }
            | EventBody::IvrChoice { .. }
            | EventBody::VoicemailRecorded { .. }
            | EventBody::CallbackRequested { .. }
            | EventBody::CallEnded { .. }
            | EventBody::DeviceHeartbeat { .. }
            | EventBody::DeviceTelemetry { .. }
            // Kept raw and never projected: a device's new kind is stored,
            // and a name mgmt knows is never decoded as unknown.
            | EventBody::Unknown(_) => Originator::Device,
            EventBody::ReplyRequested { .. }
            | EventBody::ConversationResolved { .. }
            | EventBody::ConversationReopened { .. }
            | EventBody::RoutingDecision { .. }
            | EventBody::NoteAdded { .. }
            | EventBody::ContactNoteAdded { .. }
            | EventBody::ContactTagged { .. }
            | EventBody::ContactUntagged { .. }
            | EventBody::ContactsMerged { .. }
            | EventBody::ContactUnmerged { .. }
            | EventBody::RoutingConfigured { .. }
            | EventBody::CannedResponseUsed { .. }
            | EventBody::Refused { .. } => Originator::Mgmt,
        }
    }

    /// The command whose outcome this event reports, if it is an outcome:
    /// a device may report only on commands addressed to it (or on its own,
    /// such as an offline auto-reply). Exhaustive like [`Self::originator`].
    pub fn outcome_of(&self) -> Option<EventId> {
        match self {
            EventBody::MessageSent { command, .. } | EventBody::DeliveryStatus { command, .. } => {
                Some(*command)
            }
            EventBody::MessageReceived { .. }
            | EventBody::ReplyRequested { .. }
            | EventBody::ConversationResolved { .. }
            | EventBody::ConversationReopened { .. }
            | EventBody::RoutingDecision { .. }
            | EventBody::NoteAdded { .. }
            | EventBody::ContactNoteAdded { .. }
            | EventBody::ContactTagged { .. }
            | EventBody::ContactUntagged { .. }
            | EventBody::ContactsMerged { .. }
            | EventBody::ContactUnmerged { .. }
            | EventBody::RoutingConfigured { .. }
            | EventBody::CannedResponseUsed { .. }
            | EventBody::CallRinging { .. }
            | EventBody::CallAnswered { .. }
            | EventBody::IvrChoice { .. }
            | EventBody::VoicemailRecorded { .. }
            | EventBody::CallbackRequested { .. }
            | EventBody::CallEnded { .. }
            | EventBody::DeviceHeartbeat { .. }
            | EventBody::DeviceTelemetry { .. }
            | EventBody::Refused { .. }
            | EventBody::Unknown(_) => None,
        }
    }

    /// The call this event is about, and whether it is the call's first
    /// event (`call_ringing`, which starts it) or a later one. A device may
    /// start a call with a new id only, and speak only of calls it started
    /// (mgmt's gate checks both). Exhaustive like [`Self::originator`].
    pub fn call_of(&self) -> Option<(CallId, CallStep)> {
        match self {
            EventBody::CallRinging { call, .. } => Some((*call, CallStep::Starts)),
            EventBody::CallAnswered { call, .. }
            | EventBody::IvrChoice { call, .. }
            | EventBody::VoicemailRecorded { call, .. }
            | EventBody::CallbackRequested { call, .. }
            | EventBody::CallEnded { call, .. } => Some((*call, CallStep::Continues)),
            EventBody::MessageReceived { .. }
            | EventBody::MessageSent { .. }
            | EventBody::DeliveryStatus { .. }
            | EventBody::ReplyRequested { .. }
            | EventBody::ConversationResolved { .. }
            | EventBody::ConversationReopened { .. }
            | EventBody::RoutingDecision { .. }
            | EventBody::NoteAdded { .. }
            | EventBody::ContactNoteAdded { .. }
            | EventBody::ContactTagged { .. }
            | EventBody::ContactUntagged { .. }
            | EventBody::ContactsMerged { .. }
            | EventBody::ContactUnmerged { .. }
            | EventBody::RoutingConfigured { .. }
            | EventBody::CannedResponseUsed { .. }
            | EventBody::DeviceHeartbeat { .. }
            | EventBody::DeviceTelemetry { .. }
            | EventBody::Refused { .. }
            | EventBody::Unknown(_) => None,
        }
    }
}

/// Where in its call an event is ([`EventBody::call_of`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallStep {
    /// `call_ringing`: the call starts; its id must be new.
    Starts,
    /// Any later event of the call; the call must have rung on the same
    /// device.
    Continues,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_channel_name_is_the_same_in_serde_display_and_parse() {
        for c in Channel::ALL {
            let json = serde_json::to_string(&c).unwrap();
            assert_eq!(json, format!("\"{}\"", c.as_str()));
            assert_eq!(c.to_string(), c.as_str());
            assert_eq!(Channel::parse(c.as_str()), Ok(c));
            assert_eq!(c.as_str().parse::<Channel>(), Ok(c));
            assert_eq!(serde_json::from_str::<Channel>(&json).unwrap(), c);
        }
    }

    #[test]
    fn an_unknown_channel_name_is_refused_not_read_as_sms() {
        let e = Channel::parse("fax").unwrap_err();
        assert_eq!(e, UnknownChannel("fax".into()));
        assert!(e.to_string().contains("\"fax\""), "{e}");
        assert!(e.to_string().contains("sms, voice"), "{e}");
        assert!(Channel::parse("SMS").is_err());
        assert!(serde_json::from_str::<Channel>("\"fax\"").is_err());
    }

    fn sample() -> Event {
        Event {
            id: EventId::new(),
            origin: NodeId::new("branch-1").unwrap(),
            seq: 1,
            at: Hlc { ms: 1, c: 0 },
            conversation: None,
            body: EventBody::MessageReceived {
                channel: Channel::Sms,
                line: "gsm0".into(),
                from: "+380501234567".into(),
                to: None,
                text: "Привіт <script>".into(),
                sent_at: Some("2026-11-23T10:00:00+02:00".into()),
                parts: 2,
                incomplete: false,
                key: None,
            },
        }
    }

    #[test]
    fn json_roundtrip() {
        let e = sample();
        let s = serde_json::to_string(&e).unwrap();
        assert!(s.contains("\"type\":\"message_received\""), "{s}");
        let back: Event = serde_json::from_str(&s).unwrap();
        assert_eq!(back, e);
    }

    #[test]
    fn unknown_body_kind_is_kept_raw() {
        let mut v = serde_json::to_value(sample()).unwrap();
        v["body"] = serde_json::json!({"type": "teleport", "to": "mars", "n": [1, 2]});
        let e = serde_json::from_value::<Event>(v.clone()).unwrap();
        let EventBody::Unknown(u) = &e.body else {
            panic!("not unknown: {:?}", e.body)
        };
        assert_eq!(u.kind(), "teleport");
        assert_eq!(e.body.kind(), "unknown");
        assert_eq!(e.body.originator(), Originator::Device);
        assert_eq!(e.body.outcome_of(), None);
        assert_eq!(serde_json::to_value(&e).unwrap(), v, "kept as it came");
        let again: Event = serde_json::from_value(serde_json::to_value(&e).unwrap()).unwrap();
        assert_eq!(again, e);
    }

    #[test]
    fn malformed_known_kind_is_refused_not_unknown() {
        // A device cannot pass off mgmt's kind as an unknown one.
        for body in [
            serde_json::json!({"type": "reply_requested", "text": 1}),
            serde_json::json!({"type": "refused"}),
            serde_json::json!({"type": "message_received", "from": "+1"}),
            serde_json::json!({"to": "mars"}),
            serde_json::json!({"type": 7}),
        ] {
            let mut v = serde_json::to_value(sample()).unwrap();
            v["body"] = body.clone();
            assert!(
                serde_json::from_value::<Event>(v).is_err(),
                "{body} was accepted"
            );
        }
    }

    #[test]
    fn a_listed_kind_never_decodes_as_unknown() {
        assert!(
            known_kinds().contains(&"message_received"),
            "{:?}",
            known_kinds()
        );
        assert!(known_kinds().contains(&"refused"), "{:?}", known_kinds());
        assert!(!known_kinds().contains(&"unknown"), "{:?}", known_kinds());
        for kind in known_kinds() {
            let body = serde_json::json!({"type": kind});
            match serde_json::from_value::<EventBody>(body) {
                Ok(b) => assert_eq!(b.kind(), *kind),
                Err(e) => assert!(!e.to_string().is_empty()),
            }
        }
        let hb: EventBody =
            serde_json::from_value(serde_json::json!({"type": "device_heartbeat", "uptime_s": 3}))
                .unwrap();
        assert_eq!(hb, EventBody::DeviceHeartbeat { uptime_s: 3 });
    }

    #[test]
    fn unknown_body_field_of_a_known_kind_is_tolerated() {
        let mut v = serde_json::to_value(sample()).unwrap();
        v["body"]["added_in_a_newer_minor"] = true.into();
        let e: Event = serde_json::from_value(v).unwrap();
        assert_eq!(e, sample_with_id(&e));
    }

    fn sample_with_id(e: &Event) -> Event {
        Event {
            id: e.id,
            ..sample()
        }
    }

    #[test]
    fn device_may_not_originate_mgmt_kinds_nor_name_a_conversation() {
        let mut e = sample();
        assert_eq!(e.check_from_device(), Ok(()));
        e.body = EventBody::ConversationResolved {
            by: Some("ana".into()),
        };
        assert_eq!(
            e.check_from_device(),
            Err(Refusal::NotADeviceKind {
                kind: "conversation_resolved"
            })
        );
        e.body = EventBody::Refused {
            kind: "message_received".into(),
            reason: "forged".into(),
        };
        assert!(
            e.check_from_device().is_err(),
            "a device cannot forge a refusal"
        );
        // What agents and admins say is mgmt's too: a device can neither
        // merge contacts nor tag them, write notes or configure routing.
        let c = ContactId::new();
        for body in [
            EventBody::ContactsMerged {
                survivor: c,
                merged: ContactId::new(),
                by: "ana".into(),
            },
            EventBody::ContactUnmerged {
                merged: c,
                by: "ana".into(),
            },
            EventBody::ContactTagged {
                contact: c,
                tag: "vip".into(),
                by: "ana".into(),
            },
            EventBody::NoteAdded {
                author: "ana".into(),
                text: "x".into(),
                mentions: vec![],
            },
            EventBody::CannedResponseUsed {
                title: "Hello".into(),
                by: "ana".into(),
            },
        ] {
            let kind = body.kind();
            e.body = body;
            assert_eq!(e.check_from_device(), Err(Refusal::NotADeviceKind { kind }));
            let back: EventBody =
                serde_json::from_str(&serde_json::to_string(&e.body).unwrap()).unwrap();
            assert_eq!(back, e.body, "{kind} round-trips");
        }
        let mut named = sample();
        let conv = ConversationId::new();
        named.conversation = Some(conv);
        let why = named.check_from_device().unwrap_err();
        assert_eq!(why, Refusal::NamesConversation { conversation: conv });
        assert!(why.to_string().contains(&conv.to_string()), "{why}");
    }

    fn call_events(call: CallId) -> Vec<EventBody> {
        vec![
            EventBody::CallRinging {
                call,
                line: "gsm0".into(),
                from: Some("+380501234567".into()),
                name: Some("Олена <b>".into()),
                withheld: false,
                to: None,
            },
            EventBody::CallAnswered {
                call,
                by: "ivr".into(),
            },
            EventBody::IvrChoice {
                call,
                menu: "main".into(),
                digit: "2".into(),
                action: "voicemail".into(),
            },
            EventBody::VoicemailRecorded {
                call,
                recording: RecordingId::new(),
                duration_ms: 7_250,
                bytes: 116_044,
                sha256: "ab".repeat(32),
            },
            EventBody::CallbackRequested {
                call,
                number: "+380501234567".into(),
            },
            EventBody::CallEnded {
                call,
                duration_ms: 31_000,
                ring_ms: 4_000,
                cause: CallEndCause::CallerHungUp,
            },
        ]
    }

    #[test]
    fn a_device_originates_its_calls_and_each_call_kind_round_trips() {
        let call = CallId::new();
        for (i, body) in call_events(call).into_iter().enumerate() {
            let kind = body.kind();
            assert!(known_kinds().contains(&kind), "{kind} is listed");
            let mut e = sample();
            e.body = body;
            assert_eq!(e.check_from_device(), Ok(()), "{kind}");
            assert_eq!(e.body.outcome_of(), None, "{kind}");
            let step = if i == 0 {
                CallStep::Starts
            } else {
                CallStep::Continues
            };
            assert_eq!(e.body.call_of(), Some((call, step)), "{kind}");
            let json = serde_json::to_string(&e).unwrap();
            assert!(json.contains(&format!("\"type\":\"{kind}\"")), "{json}");
            let back: Event = serde_json::from_str(&json).unwrap();
            assert_eq!(back, e, "{kind} round-trips");
        }
        assert_eq!(sample().body.call_of(), None);
    }

    #[test]
    fn a_withheld_caller_has_no_number_on_the_wire() {
        let body = EventBody::CallRinging {
            call: CallId::new(),
            line: "fxo0".into(),
            from: None,
            name: None,
            withheld: true,
            to: None,
        };
        let v = serde_json::to_value(&body).unwrap();
        assert!(v.get("from").is_none(), "{v}");
        assert_eq!(v["withheld"], true);
        assert_eq!(serde_json::from_value::<EventBody>(v).unwrap(), body);
    }

    #[test]
    fn a_call_end_cause_from_a_newer_appliance_reads_as_other() {
        let call = CallId::new();
        let v = serde_json::json!({"type": "call_ended", "call": call, "duration_ms": 5,
            "cause": "eaten_by_a_grue"});
        let body: EventBody = serde_json::from_value(v).unwrap();
        assert_eq!(
            body,
            EventBody::CallEnded {
                call,
                duration_ms: 5,
                ring_ms: 0,
                cause: CallEndCause::Other
            }
        );
        for cause in [
            CallEndCause::CallerHungUp,
            CallEndCause::IvrHungUp,
            CallEndCause::Missed,
            CallEndCause::Busy,
            CallEndCause::Failed,
            CallEndCause::LineLost,
            CallEndCause::Other,
        ] {
            let json = serde_json::to_string(&cause).unwrap();
            assert_eq!(json, format!("\"{}\"", cause.as_str()));
            assert_eq!(serde_json::from_str::<CallEndCause>(&json).unwrap(), cause);
        }
    }

    #[test]
    fn a_malformed_call_event_is_refused_not_unknown() {
        for body in [
            serde_json::json!({"type": "call_ringing", "line": "gsm0"}),
            serde_json::json!({"type": "call_ended", "call": "not-a-uuid", "duration_ms": 1, "cause": "missed"}),
            serde_json::json!({"type": "voicemail_recorded", "call": CallId::new()}),
        ] {
            assert!(
                serde_json::from_value::<EventBody>(body.clone()).is_err(),
                "{body} was accepted"
            );
        }
    }

    #[test]
    fn unknown_field_is_refused() {
        let mut v = serde_json::to_value(sample()).unwrap();
        v["extra"] = 1.into();
        assert!(serde_json::from_value::<Event>(v).is_err());
    }
}
