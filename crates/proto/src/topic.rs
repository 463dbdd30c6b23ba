//! MQTT topic names.
//!
//! Every device-scoped topic is `crossline/v1/d/{device}/{kind}`, so one ACL
//! pattern (`crossline/v1/d/%u/#`) confines a device to its own topics.

use crate::ProtoError;
use crossline_core::NodeId;
use std::fmt;

/// Root of every Crossline topic for this protocol version.
pub const ROOT: &str = "crossline/v1";
/// Prefix of device-scoped topics.
pub const DEVICE_PREFIX: &str = "crossline/v1/d";

/// What a device topic carries, and who publishes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// appliance → mgmt: [`crate::EventBatch`], QoS 1.
    Events,
    /// appliance → mgmt: [`crate::Hello`] after every (re)connect, QoS 1.
    Hello,
    /// mgmt → appliance: [`crate::Ack`], QoS 1.
    Ack,
    /// mgmt → appliance: [`crate::Command`], QoS 1.
    Cmd,
    /// appliance → mgmt: [`crate::Telemetry`], QoS 0 (latest wins).
    Telemetry,
    /// appliance (and its last will) → mgmt: [`crate::Presence`], retained, QoS 1.
    Presence,
    /// mgmt → appliance: [`crate::DesiredConfig`], retained, QoS 1.
    Config,
    /// appliance → mgmt: [`crate::ReportedConfig`] (applied version or the
    /// validation error), QoS 1, after every connect and every change.
    Reported,
    /// appliance → mgmt: [`crate::CommandResult`] of a fleet command, QoS 1.
    Result,
    /// mgmt → appliance: [`crate::Rekey`], its new credential, QoS 1, never
    /// retained.
    Rekey,
    /// appliance → mgmt: [`crate::Rekeyed`], the new credential stored (or
    /// why not), QoS 1.
    Rekeyed,
    /// appliance → mgmt: [`crate::recording::RecordingChunk`], a part of a
    /// recording (or a question), QoS 1.
    Rec,
    /// mgmt → appliance: [`crate::recording::RecordingState`], what mgmt
    /// holds of a recording, QoS 1.
    RecState,
    /// appliance → mgmt: [`crate::update::UpdateStatus`], the update
    /// agent's state, QoS 1 (docs/OTA.md).
    Update,
}

impl Kind {
    pub const ALL: [Kind; 14] = [
        Kind::Events,
        Kind::Hello,
        Kind::Ack,
        Kind::Cmd,
        Kind::Telemetry,
        Kind::Presence,
        Kind::Config,
        Kind::Reported,
        Kind::Result,
        Kind::Rekey,
        Kind::Rekeyed,
        Kind::Rec,
        Kind::RecState,
        Kind::Update,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Events => "events",
            Kind::Hello => "hello",
            Kind::Ack => "ack",
            Kind::Cmd => "cmd",
            Kind::Telemetry => "telemetry",
            Kind::Presence => "presence",
            Kind::Config => "config",
            Kind::Reported => "reported",
            Kind::Result => "result",
            Kind::Rekey => "rekey",
            Kind::Rekeyed => "rekeyed",
            Kind::Rec => "rec",
            Kind::RecState => "rec_state",
            Kind::Update => "update",
        }
    }

    /// Whether a device publishes this kind retained. Only presence (and its
    /// last will): the broker keeps no other retained message from a device.
    pub fn retained_by_device(self) -> bool {
        self == Kind::Presence
    }

    fn parse(s: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// Topic filter matching this kind for every device (for mgmt).
    pub fn filter_all(self) -> String {
        format!("{DEVICE_PREFIX}/+/{}", self.as_str())
    }
}

/// A parsed device topic.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DeviceTopic {
    pub device: NodeId,
    pub kind: Kind,
}

impl DeviceTopic {
    pub fn new(device: &NodeId, kind: Kind) -> Self {
        Self {
            device: device.clone(),
            kind,
        }
    }

    /// Parses `crossline/v1/d/{device}/{kind}`.
    pub fn parse(topic: &str) -> Result<Self, ProtoError> {
        let bad = || ProtoError::BadTopic(topic.chars().take(200).collect());
        let rest = topic
            .strip_prefix(DEVICE_PREFIX)
            .and_then(|r| r.strip_prefix('/'))
            .ok_or_else(bad)?;
        let (dev, kind) = rest.split_once('/').ok_or_else(bad)?;
        let device = NodeId::new(dev).map_err(|_| bad())?;
        let kind = Kind::parse(kind).ok_or_else(bad)?;
        Ok(Self { device, kind })
    }
}

impl fmt::Display for DeviceTopic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{DEVICE_PREFIX}/{}/{}", self.device, self.kind.as_str())
    }
}

/// Every topic of one device (`crossline/v1/d/{device}/#`), for ACLs.
pub fn device_filter(device: &NodeId) -> String {
    format!("{DEVICE_PREFIX}/{device}/#")
}

/// Prefix of enrollment topics: `crossline/v1/enroll/{enrollment id}/{req|resp}`.
pub const ENROLL_PREFIX: &str = "crossline/v1/enroll";

/// The MQTT username an appliance without its own credential connects with;
/// its password is the bootstrap token. The broker confines such a session
/// to `crossline/v1/enroll/{client id}/#`. No device may be named this.
pub const ENROLL_USER: &str = "enroll";

/// True for an enrollment id: 32 lowercase hex digits (128 random bits the
/// appliance draws once and keeps). Unguessable, so another holder of the
/// bootstrap token cannot subscribe to this appliance's response topic.
pub fn is_valid_enrollment_id(id: &str) -> bool {
    id.len() == 32
        && id
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// What an enrollment topic carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EnrollKind {
    /// appliance → mgmt: [`crate::EnrollRequest`], QoS 1, repeated until answered.
    Request,
    /// mgmt → appliance: [`crate::EnrollResponse`], QoS 1.
    Response,
}

impl EnrollKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EnrollKind::Request => "req",
            EnrollKind::Response => "resp",
        }
    }

    /// Topic filter matching this kind for every enrollment id (for mgmt).
    pub fn filter_all(self) -> String {
        format!("{ENROLL_PREFIX}/+/{}", self.as_str())
    }
}

/// A parsed enrollment topic.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EnrollTopic {
    pub enrollment: String,
    pub kind: EnrollKind,
}

impl EnrollTopic {
    pub fn new(enrollment: &str, kind: EnrollKind) -> Self {
        Self {
            enrollment: enrollment.to_string(),
            kind,
        }
    }

    /// Parses `crossline/v1/enroll/{id}/{req|resp}`.
    pub fn parse(topic: &str) -> Result<Self, ProtoError> {
        let bad = || ProtoError::BadTopic(topic.chars().take(200).collect());
        let rest = topic
            .strip_prefix(ENROLL_PREFIX)
            .and_then(|r| r.strip_prefix('/'))
            .ok_or_else(bad)?;
        let (id, kind) = rest.split_once('/').ok_or_else(bad)?;
        if !is_valid_enrollment_id(id) {
            return Err(bad());
        }
        let kind = match kind {
            "req" => EnrollKind::Request,
            "resp" => EnrollKind::Response,
            _ => return Err(bad()),
        };
        Ok(Self::new(id, kind))
    }
}

impl fmt::Display for EnrollTopic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{ENROLL_PREFIX}/{}/{}",
            self.enrollment,
            self.kind.as_str()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip() {
        let d = NodeId::new("branch-7").unwrap();
        for k in Kind::ALL {
            let t = DeviceTopic::new(&d, k);
            assert_eq!(DeviceTopic::parse(&t.to_string()).unwrap(), t);
        }
        assert_eq!(
            DeviceTopic::new(&d, Kind::Events).to_string(),
            "crossline/v1/d/branch-7/events"
        );
        assert_eq!(Kind::Ack.filter_all(), "crossline/v1/d/+/ack");
    }

    #[test]
    fn enrollment_topics() {
        let id = "0123456789abcdef0123456789abcdef";
        assert!(is_valid_enrollment_id(id));
        for bad in ["", "0123", &id.to_uppercase(), &format!("{id}0"), "+", "#"] {
            assert!(!is_valid_enrollment_id(bad), "{bad}");
        }
        let t = EnrollTopic::new(id, EnrollKind::Request);
        assert_eq!(t.to_string(), format!("crossline/v1/enroll/{id}/req"));
        assert_eq!(EnrollTopic::parse(&t.to_string()).unwrap(), t);
        assert!(EnrollTopic::parse("crossline/v1/enroll/+/req").is_err());
        assert!(EnrollTopic::parse(&format!("crossline/v1/enroll/{id}/x")).is_err());
        assert_eq!(
            EnrollKind::Response.filter_all(),
            "crossline/v1/enroll/+/resp"
        );
    }

    #[test]
    fn rejects_foreign_topics() {
        for t in [
            "crossline/v2/d/a/events",
            "crossline/v1/d/a",
            "crossline/v1/d/A/events",
            "crossline/v1/d/a/events/x",
            "crossline/v1/d/+/events",
            "crossline/v1/d//events",
            "",
        ] {
            assert!(DeviceTopic::parse(t).is_err(), "{t}");
        }
    }
}
