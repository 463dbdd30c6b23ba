//! Payload types. Every one carries `"v": 1`.

use crate::{MAX_BATCH, ProtoError, VERSION, Wire};
use crossline_core::{Event, EventId, NodeId};
use serde::{Deserialize, Serialize};

fn version() -> u32 {
    VERSION
}

/// appliance → mgmt: a run of consecutive events of one origin.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventBatch {
    #[serde(default = "version")]
    pub v: u32,
    pub events: Vec<Event>,
}

impl EventBatch {
    pub fn new(events: Vec<Event>) -> Self {
        Self { v: VERSION, events }
    }

    /// Checks that every event comes from `device` (the topic's device): a
    /// device may only speak for itself.
    pub fn check_origin(&self, device: &NodeId) -> Result<(), ProtoError> {
        match self.events.iter().find(|e| &e.origin != device) {
            Some(e) => Err(ProtoError::Invalid {
                what: "event batch",
                detail: format!(
                    "event {}/{} published on device {device}'s topic",
                    e.origin, e.seq
                ),
            }),
            None => Ok(()),
        }
    }
}

impl Wire for EventBatch {
    const NAME: &'static str = "event batch";
    fn validate(&self) -> Result<(), ProtoError> {
        if self.events.len() > MAX_BATCH {
            return Err(ProtoError::Invalid {
                what: "event batch",
                detail: format!("{} events, more than {MAX_BATCH}", self.events.len()),
            });
        }
        let mut prev: Option<&Event> = None;
        for e in &self.events {
            if e.seq == 0 {
                return Err(ProtoError::Invalid {
                    what: "event batch",
                    detail: "seq 0 (sequences start at 1)".into(),
                });
            }
            if let Some(p) = prev
                && (p.origin != e.origin || p.seq.checked_add(1) != Some(e.seq))
            {
                return Err(ProtoError::Invalid {
                    what: "event batch",
                    detail: format!(
                        "events not consecutive: {}/{} then {}/{}",
                        p.origin, p.seq, e.origin, e.seq
                    ),
                });
            }
            prev = Some(e);
        }
        Ok(())
    }
}

/// mgmt → appliance: "I have durably stored everything up to `acked`".
/// With `resend_from`, mgmt saw a hole and asks for events from that seq on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ack {
    #[serde(default = "version")]
    pub v: u32,
    pub acked: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resend_from: Option<u64>,
}

impl Ack {
    pub fn new(acked: u64, resend_from: Option<u64>) -> Self {
        Self {
            v: VERSION,
            acked,
            resend_from,
        }
    }
}

impl Wire for Ack {
    const NAME: &'static str = "ack";
}

/// appliance → mgmt after every connect: where its log stands. mgmt answers
/// with an [`Ack`] of what it holds, which starts (or restarts) the stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Hello {
    #[serde(default = "version")]
    pub v: u32,
    /// Highest seq in the appliance's log.
    pub head: u64,
    /// Highest seq the appliance has seen acknowledged.
    pub acked: u64,
    /// Appliance software version.
    pub software: String,
}

impl Wire for Hello {
    const NAME: &'static str = "hello";
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PresenceState {
    Online,
    Offline,
}

/// Retained presence; the `offline` one is the MQTT last will.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Presence {
    #[serde(default = "version")]
    pub v: u32,
    pub state: PresenceState,
}

impl Presence {
    pub fn new(state: PresenceState) -> Self {
        Self { v: VERSION, state }
    }
}

impl Wire for Presence {
    const NAME: &'static str = "presence";
}

/// Live health sample (QoS 0, not logged as an event).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Telemetry {
    #[serde(default = "version")]
    pub v: u32,
    pub system: crossline_core::SystemHealth,
    #[serde(default)]
    pub modems: Vec<crossline_core::ModemHealth>,
}

/// Most modems one [`Telemetry`] message may describe (an appliance drives a
/// handful of lines; more is refused, not stored).
pub const MAX_TELEMETRY_MODEMS: usize = 32;
/// Longest text field of a [`Telemetry`] message (line label, operator,
/// IMEI, model, version...), in bytes.
pub const MAX_TELEMETRY_FIELD: usize = 128;

impl Wire for Telemetry {
    const NAME: &'static str = "telemetry";
    fn validate(&self) -> Result<(), ProtoError> {
        let invalid = |detail: String| ProtoError::Invalid {
            what: "telemetry",
            detail,
        };
        if self.modems.len() > MAX_TELEMETRY_MODEMS {
            return Err(invalid(format!(
                "{} modems, more than {MAX_TELEMETRY_MODEMS}",
                self.modems.len()
            )));
        }
        let mut texts = vec![("system.version", self.system.version.as_str())];
        let mut lines = std::collections::HashSet::new();
        for m in &self.modems {
            if m.line.is_empty() {
                return Err(invalid("a modem without a line label".into()));
            }
            if !lines.insert(m.line.as_str()) {
                return Err(invalid(format!("line {:?} listed twice", m.line)));
            }
            texts.push(("line", m.line.as_str()));
            for (what, v) in [
                ("operator", &m.operator),
                ("iccid", &m.iccid),
                ("model", &m.model),
                ("firmware", &m.firmware),
                ("imei", &m.imei),
                ("sim", &m.sim),
                ("disconnected", &m.disconnected),
            ] {
                if let Some(v) = v {
                    texts.push((what, v.as_str()));
                }
            }
        }
        for (what, v) in texts {
            if v.len() > MAX_TELEMETRY_FIELD || v.chars().any(char::is_control) {
                return Err(invalid(format!(
                    "{what} is longer than {MAX_TELEMETRY_FIELD} bytes or holds control characters"
                )));
            }
        }
        Ok(())
    }
}

/// What mgmt asks an appliance to do.
///
/// Forward compatibility (docs/PROTOCOL.md, "Versions and strictness"): a
/// `type` this build does not know decodes as [`CommandKind::Unknown`], so
/// the appliance can refuse it by id with a reason instead of dropping it
/// (and mgmt repeating it for ever); a known kind is decoded strictly.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(
    remote = "Self",
    tag = "type",
    rename_all = "snake_case",
    deny_unknown_fields
)]
pub enum CommandKind {
    /// Send an SMS on a line (a conversation reply; outcome as events).
    SendSms {
        line: String,
        to: String,
        text: String,
    },
    /// Fleet: stop the daemon for its supervisor to restart it (outcome:
    /// [`CommandResult`], published before it stops).
    Reboot,
    /// Fleet: restart one line's modem driver.
    RestartModem { line: String },
    /// Fleet: send a test SMS on a line (not part of any conversation).
    TestSms {
        line: String,
        to: String,
        text: String,
    },
    /// Fleet: a USSD request (balance check, e.g. `*111#`); the answer text.
    Ussd { line: String, code: String },
    /// Fleet: the tail of the appliance's log, in the result's output.
    CollectLogs {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        max_bytes: Option<u32>,
    },
    /// Fleet: re-read every modem's identity and sweep its SMS storage.
    RescanModems,
    /// Fleet: download the RAUC bundle at `bundle` (a path on mgmt's HTTPS
    /// server), check its size, sha256 and signature, install it into the
    /// other slot, reboot, health-check, commit or roll back (docs/OTA.md).
    /// Progress goes out as [`crate::update::UpdateStatus`] on the `update`
    /// topic; the [`CommandResult`] comes when the update has ended
    /// (committed, rolled back, refused or failed).
    InstallUpdate {
        bundle: String,
        sha256: String,
        bytes: u64,
        version: String,
        /// Install even when `version` is older than the running one.
        #[serde(default)]
        allow_downgrade: bool,
    },
    /// A kind this build does not know (from a newer mgmt), kept as it
    /// came; the appliance refuses it with a reason. Only decoding creates
    /// one, and never for a known kind's name.
    #[serde(skip)]
    Unknown(crossline_core::tagged::Unrecognized),
}

impl CommandKind {
    /// Every command kind name this build knows.
    pub fn known_kinds() -> &'static [&'static str] {
        static KINDS: std::sync::OnceLock<&'static [&'static str]> = std::sync::OnceLock::new();
        KINDS.get_or_init(|| crossline_core::tagged::known_tags(CommandKind::deserialize))
    }
}

impl Serialize for CommandKind {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            CommandKind::Unknown(u) => u.serialize(s),
            known => CommandKind::serialize(known, s),
        }
    }
}

impl<'de> Deserialize<'de> for CommandKind {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let kind = crossline_core::tagged::decode(
            d,
            CommandKind::known_kinds(),
            CommandKind::deserialize,
            CommandKind::Unknown,
        )?;
        // Checked wherever one is decoded: on the appliance, and in mgmt's
        // API before it is queued.
        if let CommandKind::InstallUpdate {
            bundle,
            sha256,
            bytes,
            version,
            ..
        } = &kind
        {
            crate::update::check_install_update(bundle, sha256, *bytes, version)
                .map_err(|e| serde::de::Error::custom(format!("install_update: {e}")))?;
        }
        Ok(kind)
    }
}

impl CommandKind {
    /// Whether this is a fleet command (answered with a [`CommandResult`]),
    /// not a conversation one (answered with events). An unknown kind is
    /// neither: the appliance answers it both ways (docs/PROTOCOL.md,
    /// "Commands").
    pub fn is_fleet(&self) -> bool {
        !matches!(self, CommandKind::SendSms { .. } | CommandKind::Unknown(_))
    }

    /// Short name for logs and the API.
    pub fn name(&self) -> &'static str {
        match self {
            CommandKind::SendSms { .. } => "send_sms",
            CommandKind::Reboot => "reboot",
            CommandKind::RestartModem { .. } => "restart_modem",
            CommandKind::TestSms { .. } => "test_sms",
            CommandKind::Ussd { .. } => "ussd",
            CommandKind::CollectLogs { .. } => "collect_logs",
            CommandKind::RescanModems => "rescan_modems",
            CommandKind::InstallUpdate { .. } => "install_update",
            CommandKind::Unknown(_) => "unknown",
        }
    }
}

/// Longest [`CommandResult::output`], in bytes (collected logs are cut to it).
pub const MAX_OUTPUT: usize = 192 * 1024;

/// appliance → mgmt on its `result` topic: the outcome of a fleet command.
/// Published again whenever mgmt repeats the command (same id).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommandResult {
    #[serde(default = "version")]
    pub v: u32,
    pub id: EventId,
    pub ok: bool,
    /// What happened, for a person (USSD answer, log text, error message).
    #[serde(default)]
    pub output: String,
}

impl Wire for CommandResult {
    const NAME: &'static str = "command result";
    fn validate(&self) -> Result<(), ProtoError> {
        if self.output.len() > MAX_OUTPUT {
            return Err(ProtoError::Invalid {
                what: "command result",
                detail: format!("output longer than {MAX_OUTPUT} bytes"),
            });
        }
        Ok(())
    }
}

/// mgmt → appliance on `crossline/v1/d/{id}/rekey`: the device's new secret.
/// The appliance stores it durably, answers [`Rekeyed`] and reconnects with
/// it; mgmt refuses the old secret once the device has connected with the
/// new one. Sent again (same `id`) on every reconnect and every 30 s until
/// answered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rekey {
    #[serde(default = "version")]
    pub v: u32,
    /// This re-key (a repeat carries the same id and secret).
    pub id: EventId,
    /// The new secret (the device's MQTT password).
    pub secret: String,
}

impl Wire for Rekey {
    const NAME: &'static str = "re-key";
    fn validate(&self) -> Result<(), ProtoError> {
        if self.secret.len() < 16
            || self.secret.len() > 256
            || !self.secret.bytes().all(|b| b.is_ascii_graphic())
        {
            return Err(ProtoError::Invalid {
                what: "re-key",
                detail: "the secret must be 16 to 256 printable ASCII characters".into(),
            });
        }
        Ok(())
    }
}

/// appliance → mgmt on `crossline/v1/d/{id}/rekeyed`: the new secret of
/// re-key `id` is stored (`ok`) and the appliance reconnects with it, or
/// it could not be stored (`error`) and the appliance keeps the old one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rekeyed {
    #[serde(default = "version")]
    pub v: u32,
    pub id: EventId,
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Wire for Rekeyed {
    const NAME: &'static str = "re-key answer";
    fn validate(&self) -> Result<(), ProtoError> {
        if self.error.as_ref().is_some_and(|e| e.len() > 1024) {
            return Err(ProtoError::Invalid {
                what: "re-key answer",
                detail: "error longer than 1024 bytes".into(),
            });
        }
        Ok(())
    }
}

/// Settings mgmt can push to appliances (a device, a group or a tag).
/// Absent parts leave the appliance's own configuration as it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ApplianceSettings {
    /// Per-line overrides, by label; a label the appliance does not have is
    /// a validation error.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub lines: Vec<LineSettings>,
    /// The offline auto-reply (replaces the local `[offline]` when present).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offline: Option<OfflineSettings>,
    /// The IVR for incoming calls (replaces the appliance's when present;
    /// docs/IVR.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ivr: Option<Box<crate::ivr::IvrSettings>>,
}

impl ApplianceSettings {
    /// Checks what can be checked without the appliance's own configuration
    /// (the IVR's menus and prompts); the appliance checks the rest.
    pub fn check(&self) -> Result<(), String> {
        match &self.ivr {
            Some(ivr) => ivr.check(),
            None => Ok(()),
        }
    }
}

/// Overrides for one modem line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct LineSettings {
    pub label: String,
    /// The line's own number (E.164).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub number: Option<String>,
    /// Fallback language of the line's customers (`uk`, `ru`, `ro`, `en`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_reports: Option<bool>,
}

/// The offline auto-reply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct OfflineSettings {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after_s: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window_s: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_language: Option<String>,
    /// Reply text per language code.
    pub texts: std::collections::BTreeMap<String, String>,
}

/// mgmt → appliance on its `config` topic (retained): the configuration it
/// should run. `version` grows with every change mgmt makes (fleet-wide).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DesiredConfig {
    #[serde(default = "version")]
    pub v: u32,
    pub version: u64,
    pub settings: ApplianceSettings,
}

impl Wire for DesiredConfig {
    const NAME: &'static str = "desired config";
}

/// appliance → mgmt on its `reported` topic: the version it runs (0 = none
/// from mgmt), and, when the last one it was given was refused, that
/// version and why. The refused configuration is not applied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportedConfig {
    #[serde(default = "version")]
    pub v: u32,
    pub applied: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rejected: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Largest configuration version: mgmt numbers configurations from 1 and
/// stores them as signed 64-bit integers, so a version above this was never
/// issued and is refused, not wrapped.
pub const MAX_CONFIG_VERSION: u64 = i64::MAX as u64;

impl Wire for ReportedConfig {
    const NAME: &'static str = "reported config";
    fn validate(&self) -> Result<(), ProtoError> {
        for (what, v) in [("applied", Some(self.applied)), ("rejected", self.rejected)] {
            if let Some(v) = v
                && v > MAX_CONFIG_VERSION
            {
                return Err(ProtoError::Invalid {
                    what: "reported config",
                    detail: format!(
                        "{what} version {v} is out of range (mgmt issues versions 1 to {MAX_CONFIG_VERSION})"
                    ),
                });
            }
        }
        Ok(())
    }
}

/// mgmt → appliance. `id` is the idempotency key: the same id twice acts once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Command {
    #[serde(default = "version")]
    pub v: u32,
    pub id: EventId,
    pub kind: CommandKind,
}

impl Wire for Command {
    const NAME: &'static str = "command";
}

/// appliance → mgmt on `crossline/v1/enroll/{id}/req`: "here I am, this is
/// my hardware". Sent on connect with the bootstrap token and repeated until
/// mgmt answers `approved` (mgmt answers every request with the state).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnrollRequest {
    #[serde(default = "version")]
    pub v: u32,
    /// Board serial number (device tree, DMI, or configured), if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serial: Option<String>,
    /// MAC addresses of the network interfaces (`aa:bb:cc:dd:ee:ff`).
    #[serde(default)]
    pub macs: Vec<String>,
    /// IMEIs of the modems found.
    #[serde(default)]
    pub imeis: Vec<String>,
    /// Host name, as a hint for the admin.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// Appliance software version.
    pub software: String,
}

/// Most entries in [`EnrollRequest::macs`] / [`EnrollRequest::imeis`], and the
/// longest string accepted in any of its fields.
pub const ENROLL_MAX_ITEMS: usize = 16;
pub const ENROLL_MAX_FIELD: usize = 128;

impl Wire for EnrollRequest {
    const NAME: &'static str = "enrollment request";
    fn validate(&self) -> Result<(), ProtoError> {
        let bad = |detail: String| ProtoError::Invalid {
            what: "enrollment request",
            detail,
        };
        if self.macs.len() > ENROLL_MAX_ITEMS || self.imeis.len() > ENROLL_MAX_ITEMS {
            return Err(bad(format!(
                "more than {ENROLL_MAX_ITEMS} MAC addresses or IMEIs"
            )));
        }
        let fields = self
            .macs
            .iter()
            .chain(&self.imeis)
            .chain(self.serial.iter())
            .chain(self.hostname.iter())
            .chain(std::iter::once(&self.software));
        for f in fields {
            if f.len() > ENROLL_MAX_FIELD || f.chars().any(char::is_control) {
                return Err(bad(format!(
                    "a field is longer than {ENROLL_MAX_FIELD} bytes or holds control characters"
                )));
            }
        }
        Ok(())
    }
}

/// Where an enrollment stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EnrollState {
    /// Waiting for an admin.
    Pending,
    /// Approved: the response carries the device id and its own secret.
    Approved,
    /// Refused by an admin: stop asking.
    Rejected,
}

/// mgmt → appliance on `crossline/v1/enroll/{id}/resp`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnrollResponse {
    #[serde(default = "version")]
    pub v: u32,
    pub state: EnrollState,
    /// With `approved`: the device id (MQTT username and client id from now on).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<NodeId>,
    /// With `approved`: the device's own secret (its MQTT password).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

impl Wire for EnrollResponse {
    const NAME: &'static str = "enrollment response";
    fn validate(&self) -> Result<(), ProtoError> {
        if self.state == EnrollState::Approved && (self.device.is_none() || self.secret.is_none()) {
            return Err(ProtoError::Invalid {
                what: "enrollment response",
                detail: "approved without a device id and secret".into(),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{MAX_PAYLOAD, decode, encode};
    use crossline_core::{EventBody, Hlc};

    fn ev(origin: &str, seq: u64) -> Event {
        Event {
            id: EventId::new(),
            origin: NodeId::new(origin).unwrap(),
            seq,
            at: Hlc { ms: seq, c: 0 },
            conversation: None,
            body: EventBody::DeviceHeartbeat { uptime_s: seq },
        }
    }

    #[test]
    fn batch_roundtrip() {
        let b = EventBatch::new(vec![ev("a", 1), ev("a", 2)]);
        let bytes = encode(&b);
        assert_eq!(decode::<EventBatch>(&bytes).unwrap(), b);
        b.check_origin(&NodeId::new("a").unwrap()).unwrap();
        assert!(b.check_origin(&NodeId::new("b").unwrap()).is_err());
    }

    #[test]
    fn wrong_version_is_refused_clearly() {
        let err = decode::<Ack>(br#"{"v":2,"acked":1}"#).unwrap_err();
        assert!(matches!(err, ProtoError::UnsupportedVersion { got: 2, .. }));
        assert!(err.to_string().contains("upgrade"), "{err}");
        assert!(matches!(
            decode::<Ack>(br#"{"acked":1}"#),
            Err(ProtoError::NoVersion(_))
        ));
        assert!(matches!(
            decode::<Ack>(br#"{"v":"1","acked":1}"#),
            Err(ProtoError::NoVersion(_))
        ));
    }

    #[test]
    fn version_read_in_one_pass_or_two_gives_the_same_answers() {
        // "v" first (one pass) and "v" elsewhere (two passes).
        for json in [
            r#"{"v":1,"acked":5}"#,
            r#" { "v" : 1 , "acked":5}"#,
            r#"{"acked":5,"v":1}"#,
        ] {
            assert_eq!(decode::<Ack>(json.as_bytes()).unwrap().acked, 5, "{json}");
        }
        for json in [r#"{"v":2,"acked":5}"#, r#"{"acked":5,"v":2}"#] {
            assert!(
                matches!(
                    decode::<Ack>(json.as_bytes()),
                    Err(ProtoError::UnsupportedVersion { got: 2, .. })
                ),
                "{json}"
            );
        }
        for json in [
            r#"{"v":1.0,"acked":5}"#,
            r#"{"v":-1,"acked":5}"#,
            r#"{"v":01,"acked":5}"#,
            r#"{"v":99999999999999999999999,"acked":5}"#,
            r#"{"v":1,"acked":5"#,
            r#"{"v":1,"v":1,"acked":5}"#,
        ] {
            assert!(decode::<Ack>(json.as_bytes()).is_err(), "{json}");
        }
    }

    #[test]
    fn garbage_and_oversize_are_refused() {
        assert!(decode::<EventBatch>(b"\xff\x00garbage").is_err());
        assert!(decode::<EventBatch>(br#"{"v":1,"events":[{"x":1}]}"#).is_err());
        assert!(decode::<Ack>(br#"{"v":1,"acked":1,"extra":true}"#).is_err());
        let big = vec![b' '; MAX_PAYLOAD + 1];
        assert!(matches!(
            decode::<Ack>(&big),
            Err(ProtoError::TooLarge { .. })
        ));
    }

    #[test]
    fn batch_must_be_consecutive_and_one_origin() {
        let gap = EventBatch::new(vec![ev("a", 1), ev("a", 3)]);
        assert!(decode::<EventBatch>(&encode(&gap)).is_err());
        let mixed = EventBatch::new(vec![ev("a", 1), ev("b", 2)]);
        assert!(decode::<EventBatch>(&encode(&mixed)).is_err());
        let zero = EventBatch::new(vec![ev("a", 0)]);
        assert!(decode::<EventBatch>(&encode(&zero)).is_err());
    }

    #[test]
    fn enrollment_roundtrip_and_limits() {
        let r = EnrollRequest {
            v: VERSION,
            serial: Some("00000000a1b2c3d4".into()),
            macs: vec!["dc:a6:32:01:02:03".into()],
            imeis: vec!["356938035643809".into()],
            hostname: Some("branch".into()),
            software: "0.1.0".into(),
        };
        assert_eq!(decode::<EnrollRequest>(&encode(&r)).unwrap(), r);
        let mut long = r.clone();
        long.macs = vec!["x".into(); ENROLL_MAX_ITEMS + 1];
        assert!(decode::<EnrollRequest>(&encode(&long)).is_err());
        let mut ctl = r;
        ctl.serial = Some("a\u{1b}[2J".into());
        assert!(decode::<EnrollRequest>(&encode(&ctl)).is_err());
        let ok = EnrollResponse {
            v: VERSION,
            state: EnrollState::Approved,
            device: Some(NodeId::new("branch-1").unwrap()),
            secret: Some("s".into()),
        };
        assert_eq!(decode::<EnrollResponse>(&encode(&ok)).unwrap(), ok);
        assert!(decode::<EnrollResponse>(br#"{"v":1,"state":"approved"}"#).is_err());
        assert!(decode::<EnrollResponse>(br#"{"v":1,"state":"pending"}"#).is_ok());
    }

    #[test]
    fn fleet_messages_roundtrip() {
        for kind in [
            CommandKind::Reboot,
            CommandKind::RestartModem {
                line: "gsm0".into(),
            },
            CommandKind::Ussd {
                line: "gsm0".into(),
                code: "*111#".into(),
            },
            CommandKind::CollectLogs {
                max_bytes: Some(1000),
            },
            CommandKind::RescanModems,
            CommandKind::InstallUpdate {
                bundle: "/fw/crossline-1.2.0.raucb".into(),
                sha256: "ab".repeat(32),
                bytes: 123_456,
                version: "1.2.0".into(),
                allow_downgrade: false,
            },
        ] {
            assert!(kind.is_fleet());
            let c = Command {
                v: VERSION,
                id: EventId::new(),
                kind,
            };
            assert_eq!(decode::<Command>(&encode(&c)).unwrap(), c);
        }
        let r = CommandResult {
            v: VERSION,
            id: EventId::new(),
            ok: true,
            output: "Balance: 100.00 UAH".into(),
        };
        assert_eq!(decode::<CommandResult>(&encode(&r)).unwrap(), r);
        let mut big = r;
        big.output = "x".repeat(MAX_OUTPUT + 1);
        assert!(decode::<CommandResult>(&encode(&big)).is_err());
        let d: DesiredConfig = decode(
            br#"{"v":1,"version":7,"settings":{"lines":[{"label":"gsm0","language":"uk"}],"offline":{"texts":{"en":"Closed"}}}}"#,
        )
        .unwrap();
        assert_eq!(d.settings.lines[0].language.as_deref(), Some("uk"));
        assert!(decode::<DesiredConfig>(br#"{"v":1,"version":7,"settings":{"x":1}}"#).is_err());
        let rep = ReportedConfig {
            v: VERSION,
            applied: 3,
            rejected: Some(4),
            error: Some("no line gsm9".into()),
        };
        assert_eq!(decode::<ReportedConfig>(&encode(&rep)).unwrap(), rep);
        // 2^64-1 is no version mgmt ever issued: refused, not wrapped to -1.
        let err = decode::<ReportedConfig>(br#"{"v":1,"applied":18446744073709551615}"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("out of range"), "{err}");
        assert!(
            decode::<ReportedConfig>(br#"{"v":1,"applied":1,"rejected":9223372036854775808}"#)
                .is_err()
        );
        assert!(decode::<ReportedConfig>(br#"{"v":1,"applied":9223372036854775807}"#).is_ok());
    }

    #[test]
    fn telemetry_limits() {
        let modem = |i: usize| crossline_core::ModemHealth {
            line: format!("gsm{i}"),
            signal_dbm: Some(-120),
            sim: Some("ready".into()),
            ..Default::default()
        };
        let mut t = Telemetry {
            v: VERSION,
            system: crossline_core::SystemHealth::default(),
            modems: (0..MAX_TELEMETRY_MODEMS).map(modem).collect(),
        };
        assert_eq!(decode::<Telemetry>(&encode(&t)).unwrap(), t);
        // A rogue device's 2,000 modems: refused with the reason.
        t.modems = (0..2000).map(modem).collect();
        let err = decode::<Telemetry>(&encode(&t)).unwrap_err().to_string();
        assert!(err.contains("2000 modems, more than 32"), "{err}");
        t.modems = vec![modem(1), modem(1)];
        assert!(decode::<Telemetry>(&encode(&t)).is_err(), "one line twice");
        t.modems = vec![crossline_core::ModemHealth {
            operator: Some("x".repeat(MAX_TELEMETRY_FIELD + 1)),
            ..modem(0)
        }];
        assert!(decode::<Telemetry>(&encode(&t)).is_err(), "long operator");
    }

    #[test]
    fn command_roundtrip() {
        let c = Command {
            v: VERSION,
            id: EventId::new(),
            kind: CommandKind::SendSms {
                line: "gsm0".into(),
                to: "+380501234567".into(),
                text: "Дякуємо".into(),
            },
        };
        assert_eq!(decode::<Command>(&encode(&c)).unwrap(), c);
    }

    #[test]
    fn an_unknown_event_kind_does_not_reject_its_batch() {
        let mut v = serde_json::to_value(EventBatch::new(vec![ev("a", 1), ev("a", 2), ev("a", 3)]))
            .unwrap();
        v["events"][1]["body"] = serde_json::json!({"type": "call_parked", "line": "gsm0"});
        let b = decode::<EventBatch>(&serde_json::to_vec(&v).unwrap()).unwrap();
        assert_eq!(b.events.len(), 3);
        let EventBody::Unknown(u) = &b.events[1].body else {
            panic!("{:?}", b.events[1].body)
        };
        assert_eq!(u.kind(), "call_parked");
        assert_eq!(serde_json::to_value(&b).unwrap(), v, "kept as it came");
        // A known kind's malformed body still refuses the batch.
        v["events"][1]["body"] = serde_json::json!({"type": "device_heartbeat"});
        assert!(decode::<EventBatch>(&serde_json::to_vec(&v).unwrap()).is_err());
    }

    #[test]
    fn an_unknown_command_kind_decodes_so_it_can_be_refused_by_id() {
        let id = EventId::new();
        let json = format!(r#"{{"v":1,"id":"{id}","kind":{{"type":"dial","line":"gsm0"}}}}"#);
        let c = decode::<Command>(json.as_bytes()).unwrap();
        assert_eq!(c.id, id);
        let CommandKind::Unknown(u) = &c.kind else {
            panic!("{:?}", c.kind)
        };
        assert_eq!(u.kind(), "dial");
        assert!(!c.kind.is_fleet());
        assert_eq!(c.kind.name(), "unknown");
        assert_eq!(
            decode::<Command>(&encode(&c)).unwrap(),
            c,
            "kept as it came"
        );
        assert!(CommandKind::known_kinds().contains(&"send_sms"));
        assert!(CommandKind::known_kinds().contains(&"rescan_modems"));
        // A known kind stays strict: an extra field is refused.
        let json = format!(
            r#"{{"v":1,"id":"{id}","kind":{{"type":"restart_modem","line":"gsm0","now":true}}}}"#
        );
        assert!(decode::<Command>(json.as_bytes()).is_err());
    }

    #[test]
    fn install_update_is_strict_and_checked() {
        let id = EventId::new();
        let sha = "ab".repeat(32);
        let ok = format!(
            r#"{{"v":1,"id":"{id}","kind":{{"type":"install_update","bundle":"/fw/a.raucb","sha256":"{sha}","bytes":10,"version":"1.2.0"}}}}"#
        );
        let c = decode::<Command>(ok.as_bytes()).unwrap();
        assert!(matches!(
            c.kind,
            CommandKind::InstallUpdate {
                allow_downgrade: false,
                ..
            }
        ));
        assert!(CommandKind::known_kinds().contains(&"install_update"));
        for bad in [
            ok.replace("/fw/a.raucb", "/fw/../a"),
            ok.replace(&sha, "ab"),
            ok.replace(r#""bytes":10"#, r#""bytes":0"#),
            ok.replace(r#""bytes":10"#, r#""bytes":-1"#),
            ok.replace(r#""version":"1.2.0""#, r#""version":"1.2.0","force":true"#),
            ok.replace(r#","version":"1.2.0""#, ""),
        ] {
            assert!(decode::<Command>(bad.as_bytes()).is_err(), "{bad}");
        }
    }
}

#[cfg(test)]
mod fuzzish {
    use super::*;
    use crate::decode;
    use proptest::prelude::*;

    proptest! {
        // A fixed seed: every run checks the same inputs.
        #![proptest_config(ProptestConfig {
            rng_seed: proptest::test_runner::RngSeed::Fixed(0x0000_9207),
            ..ProptestConfig::default()
        })]

        /// Arbitrary bytes never panic any decoder; they yield a value or an error.
        #[test]
        fn decoders_total(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = decode::<EventBatch>(&bytes);
            let _ = decode::<Ack>(&bytes);
            let _ = decode::<Hello>(&bytes);
            let _ = decode::<Presence>(&bytes);
            let _ = decode::<Telemetry>(&bytes);
            let _ = decode::<Command>(&bytes);
            let _ = decode::<EnrollRequest>(&bytes);
            let _ = decode::<EnrollResponse>(&bytes);
            let _ = decode::<CommandResult>(&bytes);
            let _ = decode::<DesiredConfig>(&bytes);
            let _ = decode::<ReportedConfig>(&bytes);
            let _ = decode::<crate::update::UpdateStatus>(&bytes);
        }

        /// JSON-shaped noise with the right version still never panics.
        #[test]
        fn versioned_noise(s in "\\{\"v\":1,[ -~]{0,200}\\}") {
            let _ = decode::<EventBatch>(s.as_bytes());
            let _ = decode::<Command>(s.as_bytes());
        }
    }
}
