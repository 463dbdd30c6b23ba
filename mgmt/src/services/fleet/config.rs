//! Desired vs reported configuration (mgmt migration 6): every push gets a
//! fleet-wide version; each targeted device's desired version moves to it;
//! the appliance reports the version it applied, or the one it refused and
//! why. Drift: desired ≠ applied.

use serde::{Deserialize, Serialize};

/// Who a configuration is for.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Target {
    Device(String),
    Group(String),
    Tag(String),
}

impl Target {
    pub fn kind(&self) -> &'static str {
        match self {
            Target::Device(_) => "device",
            Target::Group(_) => "group",
            Target::Tag(_) => "tag",
        }
    }
    pub fn value(&self) -> &str {
        match self {
            Target::Device(v) | Target::Group(v) | Target::Tag(v) => v,
        }
    }
}

/// A device's configuration state, for the API and the console.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, Default)]
pub struct ConfigState {
    pub desired_version: Option<u64>,
    pub applied_version: Option<u64>,
    pub rejected_version: Option<u64>,
    pub error: Option<String>,
    pub reported_ms: Option<i64>,
    /// Desired but not applied (pending, or refused: see `error`).
    pub drift: bool,
}
