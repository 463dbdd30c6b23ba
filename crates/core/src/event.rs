//! The immutable facts every node appends to its log and replicates.
//!
//! An [`Event`] is created once, by its origin node, and never changes. Its
//! `(origin, seq)` pair is gapless per origin: seq 1, 2, 3, ... That is what
//! lets mgmt acknowledge "everything up to N" and detect holes.

use crate::hlc::Hlc;
use crate::id::{ConversationId, EventId, NodeId};
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    Sms,
    Voice,
    Email,
    Chat,
    Messenger,
}

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

/// What happened. Externally tagged by `type` so the JSON is readable in
/// `mosquitto_sub` and unknown kinds are refused, not silently dropped.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
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
    /// mgmt: a change to the contact book (identity added, merge, un-merge).
    ContactChanged { fact: crate::contact::ContactFact },
    /// Periodic liveness from a device.
    DeviceHeartbeat { uptime_s: u64 },
    /// Periodic health of a device and its lines.
    DeviceTelemetry {
        system: SystemHealth,
        #[serde(default)]
        modems: Vec<ModemHealth>,
    },
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
            EventBody::ContactChanged { .. } => "contact_changed",
            EventBody::DeviceHeartbeat { .. } => "device_heartbeat",
            EventBody::DeviceTelemetry { .. } => "device_telemetry",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn unknown_body_kind_is_refused() {
        let mut v = serde_json::to_value(sample()).unwrap();
        v["body"]["type"] = "teleport".into();
        let err = serde_json::from_value::<Event>(v).unwrap_err();
        assert!(err.to_string().contains("teleport"), "{err}");
    }

    #[test]
    fn unknown_field_is_refused() {
        let mut v = serde_json::to_value(sample()).unwrap();
        v["extra"] = 1.into();
        assert!(serde_json::from_value::<Event>(v).is_err());
    }
}
