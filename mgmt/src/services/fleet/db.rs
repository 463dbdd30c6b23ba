//! The fleet's records: enrollment requests, device metadata and tags, the
//! device list's filters and pages, and the errors of fleet operations.
//! Stored through [`super::repo::FleetRepo`].

use serde::Serialize;

/// One enrollment request as the admin sees it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Enrollment {
    pub id: String,
    pub serial: Option<String>,
    pub macs: Vec<String>,
    pub imeis: Vec<String>,
    pub hostname: Option<String>,
    pub software: String,
    pub state: String,
    pub device: Option<String>,
    pub first_seen_ms: i64,
    pub last_seen_ms: i64,
    pub decided_ms: Option<i64>,
}

/// What mgmt answers an enrollment request with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    Pending,
    Rejected,
    /// Approved; the secret is present until the device has connected with it.
    Approved {
        device: String,
        secret: Option<String>,
    },
}

/// What an admin decides when approving.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Approval {
    /// The device id to assign (lowercase letters, digits, '-', '_').
    pub device: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub site: Option<String>,
    #[serde(default)]
    pub group: Option<String>,
    #[serde(default)]
    pub tags: Vec<String>,
}

/// Why an approval or a metadata change was refused.
#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    #[error("no enrollment {0}")]
    NoEnrollment(String),
    #[error("enrollment {id} is already {state}")]
    AlreadyDecided { id: String, state: String },
    #[error("device id {0} is taken by another device; choose another")]
    Taken(String),
    #[error("no device {0}")]
    NoDevice(String),
    #[error("{0}")]
    Invalid(String),
    /// The database failed (the store's message).
    #[error("{0}")]
    Storage(String),
}

/// Checks a tag, group or site label: 1..=64 printable characters.
pub fn check_label(what: &str, v: &str) -> Result<(), FleetError> {
    if v.is_empty() || v.chars().count() > 64 || v.chars().any(char::is_control) {
        return Err(FleetError::Invalid(format!(
            "{what} {v:?} must be 1 to 64 printable characters"
        )));
    }
    Ok(())
}

/// A device row of the fleet list.
#[derive(Debug, Clone, Serialize)]
pub struct FleetDevice {
    pub id: String,
    pub name: Option<String>,
    pub site: Option<String>,
    pub group: Option<String>,
    pub tags: Vec<String>,
    pub serial: Option<String>,
    pub online: bool,
    pub revoked: bool,
    pub last_seen_ms: Option<i64>,
    /// Last telemetry sample as received (JSON), if any.
    pub telemetry: Option<serde_json::Value>,
    pub telemetry_ms: Option<i64>,
    /// Configuration pushed from mgmt / applied by the device.
    pub desired_version: Option<i64>,
    pub applied_version: Option<i64>,
    /// Why the device refused its desired configuration, if it did.
    pub config_error: Option<String>,
    /// Desired configuration not applied (yet, or refused).
    pub drift: bool,
}

/// How the fleet list is sorted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SortBy {
    /// Device id.
    #[default]
    Id,
    Name,
    /// Online, offline, revoked.
    Status,
    LastSeen,
    /// Open alerts.
    Alerts,
}

impl SortBy {
    pub const ALL: [SortBy; 5] = [
        SortBy::Id,
        SortBy::Name,
        SortBy::Status,
        SortBy::LastSeen,
        SortBy::Alerts,
    ];

    pub fn code(self) -> &'static str {
        match self {
            SortBy::Id => "id",
            SortBy::Name => "name",
            SortBy::Status => "status",
            SortBy::LastSeen => "last_seen",
            SortBy::Alerts => "alerts",
        }
    }

    pub fn parse(s: &str) -> Self {
        Self::ALL
            .into_iter()
            .find(|x| x.code() == s)
            .unwrap_or_default()
    }
}

/// A page of the fleet list: filters, sort order, which page.
#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    /// Part of the id, name, serial or a modem's IMEI (case-insensitive).
    pub q: Option<String>,
    pub site: Option<String>,
    pub tag: Option<String>,
    /// `online`, `offline` or `revoked`.
    pub status: Option<String>,
    pub operator: Option<String>,
    pub sort: SortBy,
    pub desc: bool,
    pub offset: usize,
    pub limit: usize,
}

/// One page of the fleet list, with the number of devices the filters match.
#[derive(Debug, Clone, Default)]
pub struct ListPage {
    /// Each device with its number of open alerts.
    pub rows: Vec<(FleetDevice, usize)>,
    pub total: usize,
}

/// An event of a kind this mgmt does not know (from a newer appliance),
/// kept raw in the log (docs/PROTOCOL.md, "Versions and strictness").
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct UnknownEvent {
    pub seq: i64,
    pub at_ms: i64,
    /// The `type` the device gave it.
    pub kind: String,
    /// The body as the device sent it (JSON).
    pub body: String,
}

/// How far back (in the device's own events) the device page looks for
/// events of kinds this mgmt does not know: the log has no index by kind,
/// so the look is bounded; `GET /api/v1/events` shows every one.
pub const UNKNOWN_EVENTS_WINDOW: i64 = 10_000;
