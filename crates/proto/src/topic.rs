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
    /// mgmt → appliance: desired configuration, retained, QoS 1.
    Config,
}

impl Kind {
    pub const ALL: [Kind; 7] = [
        Kind::Events,
        Kind::Hello,
        Kind::Ack,
        Kind::Cmd,
        Kind::Telemetry,
        Kind::Presence,
        Kind::Config,
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
        }
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
