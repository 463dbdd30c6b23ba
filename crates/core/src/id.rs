//! Typed identifiers.

use serde::{Deserialize, Serialize};
use std::fmt;
use uuid::Uuid;

/// Why a string is not a valid identifier.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum IdError {
    #[error("node id is empty")]
    Empty,
    #[error("node id {0:?} is longer than {max} characters", max = NodeId::MAX_LEN)]
    TooLong(String),
    #[error(
        "node id {0:?} may contain only a-z, 0-9, '-' and '_' (it is used as an MQTT topic level and a username)"
    )]
    BadChar(String),
}

/// Identity of a node that appends events: an appliance (its device id) or
/// mgmt. Safe to use as one MQTT topic level and as a broker username.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct NodeId(String);

impl NodeId {
    pub const MAX_LEN: usize = 64;

    pub fn new(s: impl Into<String>) -> Result<Self, IdError> {
        let s = s.into();
        if s.is_empty() {
            return Err(IdError::Empty);
        }
        if s.len() > Self::MAX_LEN {
            return Err(IdError::TooLong(s));
        }
        if !s
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
        {
            return Err(IdError::BadChar(s));
        }
        Ok(Self(s))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for NodeId {
    type Error = IdError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::new(s)
    }
}

impl From<NodeId> for String {
    fn from(n: NodeId) -> Self {
        n.0
    }
}

impl std::str::FromStr for NodeId {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NodeId({})", self.0)
    }
}

macro_rules! uuid_id {
    ($(#[$m:meta])* $name:ident) => {
        $(#[$m])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub Uuid);

        impl $name {
            /// A new time-ordered (UUIDv7) id.
            pub fn new() -> Self {
                Self(Uuid::now_v7())
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0, f)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.0)
            }
        }

        impl std::str::FromStr for $name {
            type Err = uuid::Error;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s).map(Self)
            }
        }
    };
}

uuid_id!(
    /// Globally unique id of one event (UUIDv7, so ids sort by creation time).
    EventId
);
uuid_id!(
    /// A conversation: one customer thread across every channel.
    ConversationId
);
uuid_id!(
    /// One phone call on a branch line, chosen by the appliance that
    /// answered the line when it started ringing. Every call event names it.
    CallId
);
uuid_id!(
    /// One audio recording (a voicemail; later a whole call), chosen by the
    /// appliance that recorded it. mgmt serves it at `/recordings/{id}`.
    RecordingId
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_id_rules() {
        assert!(NodeId::new("branch-kyiv_01").is_ok());
        assert_eq!(NodeId::new(""), Err(IdError::Empty));
        assert!(matches!(NodeId::new("a/b"), Err(IdError::BadChar(_))));
        assert!(matches!(NodeId::new("+"), Err(IdError::BadChar(_))));
        assert!(matches!(NodeId::new("Upper"), Err(IdError::BadChar(_))));
        assert!(matches!(
            NodeId::new("x".repeat(65)),
            Err(IdError::TooLong(_))
        ));
        let parsed: Result<NodeId, _> = serde_json::from_str("\"a#b\"");
        assert!(parsed.is_err());
    }

    #[test]
    fn event_ids_are_v7_and_ordered() {
        let a = EventId::new();
        let b = EventId::new();
        assert_eq!(a.0.get_version_num(), 7);
        assert!(a < b);
    }
}
