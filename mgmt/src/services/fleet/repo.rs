//! What the fleet service needs from storage ([`FleetRepo`]): enrollments,
//! device metadata and the device list, desired/reported configuration,
//! commands, re-keys, telemetry history and alerts. No SQL here; the SQLite
//! implementation is `crate::storage::sqlite::fleet`. Device credentials
//! themselves are the store's [`crossline_store::DeviceRegistry`].

use super::alerts::{Alert, Condition};
use super::commands::CommandView;
use super::config::{ConfigState, Target};
use super::db::{
    Answer, Approval, Enrollment, FleetDevice, FleetError, ListFilter, ListPage, UnknownEvent,
};
use super::rekey::RekeyView;
use super::telemetry::{Point, Sample};
use crate::services::RepoFuture;
use crossline_proto::{
    ApplianceSettings, Command, CommandKind, CommandResult, DesiredConfig, EnrollRequest, Rekey,
    Rekeyed, ReportedConfig,
};

/// Metadata to change on a device (`None` keeps a field).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MetaChange {
    pub name: Option<String>,
    pub site: Option<String>,
    pub group: Option<String>,
    pub tags: Option<Vec<String>>,
}

/// The values the device list can be filtered by: sites, tags, operators.
pub type Facets = (Vec<String>, Vec<String>, Vec<String>);

/// What is due for publishing to devices.
#[derive(Debug, Clone, Default)]
pub struct Due {
    /// Desired configurations not applied: (device, config).
    pub configs: Vec<(String, DesiredConfig)>,
    /// Commands without a result: (device, command id, payload).
    pub commands: Vec<(String, String, String)>,
    /// New secrets to send: (device, re-key).
    pub rekeys: Vec<(String, Rekey)>,
}

/// What was published: configurations (device, version), re-keys (device),
/// commands (id).
#[derive(Debug, Clone, Default)]
pub struct Published {
    pub configs: Vec<(String, u64)>,
    pub rekeys: Vec<String>,
    pub commands: Vec<String>,
}

/// The fleet's storage. A refusal the data decides (no such enrollment, a
/// taken device id) is the inner [`FleetError`]; the outer error is the
/// store's.
pub trait FleetRepo: Send + Sync {
    // ----- enrollments -----
    /// Records (or refreshes) a request; what to answer and whether it is
    /// new. `None` (nothing recorded): a new id while `max_pending` are pending.
    fn record_enrollment(
        &self,
        id: String,
        req: EnrollRequest,
        now_ms: i64,
        max_pending: u32,
    ) -> RepoFuture<Option<(Answer, bool)>>;
    /// Enrollments, pending first, newest first; of `state` only if given.
    fn enrollments(&self, state: Option<String>) -> RepoFuture<Vec<Enrollment>>;
    /// How many enrollments are pending.
    fn pending_enrollments(&self) -> RepoFuture<usize>;
    /// Approved enrollments whose secret was not picked up:
    /// (enrollment, device, secret).
    fn undelivered_credentials(&self) -> RepoFuture<Vec<(String, String, String)>>;
    /// The device connected with its own credential: forget the clear secret.
    fn credential_delivered(&self, device: String) -> RepoFuture<usize>;
    /// Approves an enrollment as a new device (credential, metadata, tags),
    /// keeping the clear secret until the device picks it up.
    fn approve(
        &self,
        enrollment: String,
        approval: Approval,
        secret: String,
        secret_hash: String,
        now_ms: i64,
    ) -> RepoFuture<Result<(), FleetError>>;
    fn reject(&self, enrollment: String, now_ms: i64) -> RepoFuture<Result<(), FleetError>>;

    // ----- devices -----
    fn set_meta(&self, device: String, change: MetaChange) -> RepoFuture<Result<(), FleetError>>;
    /// Every device with its fleet metadata.
    fn fleet_devices(&self) -> RepoFuture<Vec<FleetDevice>>;
    fn fleet_device(&self, id: String) -> RepoFuture<Option<FleetDevice>>;
    /// One page of the filtered, sorted device list.
    fn device_page(&self, filter: ListFilter) -> RepoFuture<ListPage>;
    fn facets(&self) -> RepoFuture<Facets>;
    /// Marks offline the devices shown online whose last sign of life is
    /// older than `silent_since_ms`; their ids.
    fn mark_silent_offline(&self, silent_since_ms: i64) -> RepoFuture<Vec<String>>;
    fn revoked_devices(&self) -> RepoFuture<Vec<String>>;
    /// The newest `limit` events of kinds this mgmt does not know among the
    /// device's last [`super::db::UNKNOWN_EVENTS_WINDOW`] events.
    fn unknown_events(&self, device: String, limit: usize) -> RepoFuture<Vec<UnknownEvent>>;

    // ----- configuration -----
    /// Stores a configuration for `target`; its version and the devices it
    /// now applies to.
    fn push_config(
        &self,
        target: Target,
        settings: ApplianceSettings,
        now_ms: i64,
    ) -> RepoFuture<Result<(u64, Vec<String>), FleetError>>;
    fn desired_config(&self, device: String) -> RepoFuture<Option<DesiredConfig>>;
    fn config_state(&self, device: String) -> RepoFuture<ConfigState>;
    fn record_reported_config(
        &self,
        device: String,
        reported: ReportedConfig,
        now_ms: i64,
    ) -> RepoFuture<()>;

    // ----- commands -----
    fn create_command(&self, device: String, kind: CommandKind, now_ms: i64)
    -> RepoFuture<Command>;
    /// A result from `device` (for its own commands only); whether it matched.
    fn record_command_result(
        &self,
        device: String,
        result: CommandResult,
        now_ms: i64,
    ) -> RepoFuture<bool>;
    /// A device's commands, newest first (without output).
    fn commands(&self, device: String, limit: usize) -> RepoFuture<Vec<CommandView>>;
    /// One command with its output.
    fn command(&self, id: String) -> RepoFuture<Option<CommandView>>;

    // ----- re-keys -----
    fn create_rekey(
        &self,
        device: String,
        secret: String,
        secret_hash: String,
        now_ms: i64,
    ) -> RepoFuture<RekeyView>;
    fn rekey_state(&self, device: String) -> RepoFuture<Option<RekeyView>>;
    fn record_rekey_answer(&self, device: String, answer: Rekeyed, now_ms: i64)
    -> RepoFuture<bool>;
    /// The device connected with its new secret: it replaces the old one.
    /// False if nothing was pending.
    fn complete_rekey(&self, device: String, now_ms: i64) -> RepoFuture<bool>;
    /// Drops a pending re-key (the device was revoked).
    fn cancel_rekey(&self, device: String) -> RepoFuture<()>;
    /// Re-keys not done yet: (device, new secret's hash).
    fn pending_rekeys(&self) -> RepoFuture<Vec<(String, String)>>;

    // ----- publishing -----
    /// What to publish: of `device` only if given; not published since
    /// `before_ms` (everything with `None`).
    fn due(&self, device: Option<String>, before_ms: Option<i64>) -> RepoFuture<Due>;
    fn mark_published(&self, published: Published, now_ms: i64) -> RepoFuture<()>;

    // ----- telemetry -----
    fn store_telemetry(&self, samples: Vec<Sample>) -> RepoFuture<()>;
    /// Drops history past its retention; how many rows.
    fn prune_telemetry(&self, now_ms: i64) -> RepoFuture<usize>;
    fn series_names(&self, device: String) -> RepoFuture<Vec<String>>;
    fn history(
        &self,
        device: String,
        series: String,
        from_ms: i64,
        now_ms: i64,
    ) -> RepoFuture<Vec<Point>>;

    // ----- alerts -----
    /// Raises what is new, clears what ended; the changed alerts.
    fn reconcile_alerts(&self, now: Vec<Condition>, now_ms: i64) -> RepoFuture<Vec<Alert>>;
    fn open_alerts(&self) -> RepoFuture<Vec<Alert>>;
    /// The newest `limit` open alerts, and how many are open.
    fn latest_open_alerts(&self, limit: usize) -> RepoFuture<(Vec<Alert>, usize)>;
    /// Open and cleared, newest first; of `device` only if given.
    fn recent_alerts(&self, device: Option<String>, limit: usize) -> RepoFuture<Vec<Alert>>;
}
