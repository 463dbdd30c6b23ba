//! Fleet management (docs/FLEET.md): enrollment of appliances with a
//! bootstrap token, approval by an admin, per-device credentials, revocation.
//!
//! The fleet service runs its own MQTT connection (mgmt's service user,
//! client id `<user>-fleet`) for the enrollment topics, and listens to
//! ingestion's [`Update`]s for presence; it never touches ingestion itself.
//!
//! Enrollment: an appliance with the bootstrap token connects as user
//! `enroll` with a random enrollment id as client id (the broker confines it
//! to `crossline/v1/enroll/<id>/#`), publishes an [`EnrollRequest`] and
//! repeats it until approved. mgmt records it as pending; when an admin
//! approves (CLI or API), mgmt creates the device with a fresh secret (only
//! its hash in `device`), and answers on `crossline/v1/enroll/<id>/resp` with
//! the device id and the secret, again on every request and every few
//! seconds, until the device connects with its own credential; then the clear
//! secret is forgotten.

pub mod alerts;
pub mod commands;
pub mod config;
pub mod credentials;
pub mod db;
pub mod rekey;
pub mod repo;
pub mod telemetry;

use crate::bus::{BrokerLink, Update};
use crate::clock::now_ms;
use crate::services::fleet::credentials::{hash_secret, new_secret};
use crate::services::users::auth::{Actor, Denied, Role};
use crate::services::users::repo::AuditRepo;
use crossline_broker::ClientKicker;
use crossline_core::NodeId;
use crossline_proto::{
    ApplianceSettings, Command, CommandKind, CommandResult, DeviceTopic, ENROLL_USER, EnrollKind,
    EnrollRequest, EnrollResponse, EnrollState, EnrollTopic, Kind, Rekeyed, ReportedConfig, decode,
    encode,
};
use crossline_store::{DeviceRegistry, SqliteStore, StoreError};
use db::{Answer, Approval, FleetError};
use repo::{FleetRepo, MetaChange, Published};
use rumqttc::{AsyncClient, Event as MqttEvent, Packet, QoS};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{broadcast, mpsc};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

/// How often an approved enrollment's answer is published again while the
/// device has not connected with its credential.
const REPUBLISH_EVERY: Duration = Duration::from_secs(3);

/// How often a configuration not yet applied, or a command without a
/// result, is published again (besides on every reconnect of its device).
const RESEND_EVERY: Duration = Duration::from_secs(30);

/// Fleet settings (`[fleet]` in mgmt's config).
#[derive(Debug, Clone)]
pub struct FleetOptions {
    /// mgmt's own MQTT service user (no device may take this name).
    pub service_user: String,
    /// How often the fleet service sweeps: revoked sessions, undelivered
    /// credentials, buffered telemetry.
    pub tick: Duration,
    /// Alert thresholds and the webhook.
    pub alerts: alerts::AlertConfig,
    /// Telemetry kept per device (faster messages are dropped and logged).
    pub telemetry_rate: telemetry::Rate,
    /// Pending enrollments at most (one bootstrap token admits them all).
    pub max_pending_enrollments: u32,
}

/// Handle for the CLI-free paths (HTTP API): approve, reject, revoke, list.
#[derive(Clone)]
pub struct Fleet {
    inner: Arc<Inner>,
}

struct Inner {
    store: SqliteStore,
    repo: Arc<dyn FleetRepo>,
    kicker: Option<ClientKicker>,
    wake: mpsc::UnboundedSender<()>,
    service_user: String,
    changes: Changed,
    keys: rekey::PendingKeys,
}

/// Announces that what the console shows of a device changed (presence,
/// alerts, configuration reported, command result, an admin's action), by
/// device id; an empty id means the enrollment queue. Sent after the change
/// is committed; the console's live stream passes it on to admins
/// ([`crate::http::web::stream`]).
#[derive(Clone)]
pub struct Changed(broadcast::Sender<String>);

impl Changed {
    fn new() -> Self {
        Self(broadcast::channel(4096).0)
    }

    fn device(&self, id: &str) {
        let _ = self.0.send(id.to_string());
    }

    fn enrollments(&self) {
        let _ = self.0.send(String::new());
    }
}

/// Outcome of a fleet operation for the API and CLI.
#[derive(Debug, thiserror::Error)]
pub enum OpError {
    /// The actor may not use the fleet ([`authorize`]).
    #[error(transparent)]
    Denied(#[from] Denied),
    #[error(transparent)]
    Fleet(#[from] FleetError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Other(String),
}

/// Who may see and change the fleet, on every surface: admins (console or
/// JSON API with their session), the API token and the command line. The
/// one check: in front of every route of the console ([`web::router`]) and
/// of the JSON API ([`api::router`]), and in every operation of [`Fleet`]
/// that changes something (which also writes the audit log, naming the
/// actor).
pub fn authorize(by: &Actor) -> Result<(), Denied> {
    by.require(Role::Admin)
        .map_err(|d| Denied(format!("the fleet is for admins: {d}")))
}

/// Appends what `by` did to the audit log.
async fn audited(store: &dyn AuditRepo, by: &Actor, action: &str, target: &str, detail: &str) {
    crate::services::users::audit::record(store, by.name(), action, target, detail).await;
}

/// A device's status as the console's filter, the API and the CLI name it.
pub fn status_code(revoked: bool, online: bool) -> &'static str {
    if revoked {
        "revoked"
    } else if online {
        "online"
    } else {
        "offline"
    }
}

/// Checks that `id` may be given to a device: not a service user, not
/// mgmt's node id `mgmt_node` (nor the default one).
pub fn check_device_id(
    id: &str,
    service_user: &str,
    mgmt_node: &NodeId,
) -> Result<NodeId, FleetError> {
    let node = NodeId::new(id).map_err(|e| {
        FleetError::Invalid(format!(
            "device id {id:?}: {e} (use lowercase letters, digits, '-' and '_', at most 64)"
        ))
    })?;
    if id == service_user
        || id == ENROLL_USER
        || id == crate::clock::DEFAULT_NODE_ID
        || id == mgmt_node.as_str()
    {
        return Err(FleetError::Invalid(format!(
            "device id {id:?} is reserved; choose another"
        )));
    }
    Ok(node)
}

/// Approves an enrollment directly in the database (the CLI's path; the
/// running server delivers the credential on its next sweep).
pub async fn approve_in(
    store: &(impl FleetRepo + AuditRepo + crossline_store::EventLog),
    by: &Actor,
    enrollment: &str,
    a: Approval,
    service_user: &str,
) -> Result<(), OpError> {
    authorize(by)?;
    check_device_id(
        &a.device,
        service_user,
        crossline_store::EventLog::local_node(store),
    )?;
    for (what, v) in [("name", &a.name), ("site", &a.site), ("group", &a.group)] {
        if let Some(v) = v {
            db::check_label(what, v)?;
        }
    }
    let secret = new_secret();
    let hash = hash_secret(&secret).map_err(|e| OpError::Other(e.to_string()))?;
    let device = a.device.clone();
    store
        .approve(enrollment.to_string(), a, secret, hash, now_ms() as i64)
        .await??;
    info!(enrollment, device = %device, by = by.name(), "enrollment approved");
    audited(
        store,
        by,
        "fleet.enrollment.approve",
        enrollment,
        &format!("device {device}"),
    )
    .await;
    Ok(())
}

/// Rejects an enrollment directly in the database.
pub async fn reject_in(
    store: &(impl FleetRepo + AuditRepo),
    by: &Actor,
    enrollment: &str,
) -> Result<(), OpError> {
    authorize(by)?;
    store
        .reject(enrollment.to_string(), now_ms() as i64)
        .await??;
    info!(enrollment, by = by.name(), "enrollment rejected");
    audited(store, by, "fleet.enrollment.reject", enrollment, "").await;
    Ok(())
}

impl Fleet {
    /// The fleet's storage (enrollments, devices, configuration, commands,
    /// re-keys, telemetry, alerts).
    pub fn repo(&self) -> &dyn FleetRepo {
        self.inner.repo.as_ref()
    }

    /// Device ids whose console view changed (empty: the enrollment queue).
    pub fn subscribe_changes(&self) -> broadcast::Receiver<String> {
        self.inner.changes.0.subscribe()
    }

    /// Changes name, site, group and tags of a device (`None` keeps a field).
    pub async fn set_meta(
        &self,
        by: &Actor,
        device: &str,
        name: Option<String>,
        site: Option<String>,
        group: Option<String>,
        tags: Option<Vec<String>>,
    ) -> Result<(), OpError> {
        authorize(by)?;
        for (what, v) in [("name", &name), ("site", &site), ("group", &group)] {
            if let Some(v) = v {
                db::check_label(what, v)?;
            }
        }
        for t in tags.iter().flatten() {
            db::check_label("tag", t)?;
        }
        let detail = [("name", &name), ("site", &site), ("group", &group)]
            .into_iter()
            .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}={v}")))
            .chain(tags.as_ref().map(|t| format!("tags={}", t.join(","))))
            .collect::<Vec<_>>()
            .join(" ");
        self.inner
            .repo
            .set_meta(
                device.to_string(),
                MetaChange {
                    name,
                    site,
                    group,
                    tags,
                },
            )
            .await??;
        audited(&self.inner.store, by, "fleet.device.meta", device, &detail).await;
        self.inner.changes.device(device);
        Ok(())
    }

    /// Approves an enrollment and sends the credential at once.
    pub async fn approve(&self, by: &Actor, enrollment: &str, a: Approval) -> Result<(), OpError> {
        let device = a.device.clone();
        approve_in(
            &self.inner.store,
            by,
            enrollment,
            a,
            &self.inner.service_user,
        )
        .await?;
        let _ = self.inner.wake.send(());
        self.inner.changes.enrollments();
        self.inner.changes.device(&device);
        Ok(())
    }

    pub async fn reject(&self, by: &Actor, enrollment: &str) -> Result<(), OpError> {
        reject_in(&self.inner.store, by, enrollment).await?;
        let _ = self.inner.wake.send(());
        self.inner.changes.enrollments();
        Ok(())
    }

    /// Revokes a device: refused from now on, its live session ended now.
    pub async fn revoke(&self, by: &Actor, device: &NodeId) -> Result<bool, OpError> {
        authorize(by)?;
        if !self.inner.store.revoke_device(device).await? {
            return Ok(false);
        }
        self.inner.repo.cancel_rekey(device.to_string()).await?;
        self.inner.keys.remove(device.as_str());
        if let Some(k) = &self.inner.kicker {
            k.disconnect_client(device.as_str()).await;
        }
        info!(device = %device, by = by.name(), "device revoked");
        audited(
            &self.inner.store,
            by,
            "fleet.device.revoke",
            device.as_str(),
            "",
        )
        .await;
        self.inner.changes.device(device.as_str());
        Ok(true)
    }

    /// Pushes a configuration to a device, group or tag; returns its
    /// version and the devices it goes to (published at once).
    pub async fn push_config(
        &self,
        by: &Actor,
        target: config::Target,
        settings: ApplianceSettings,
    ) -> Result<(u64, Vec<String>), OpError> {
        authorize(by)?;
        // What the appliance would refuse anyway (an IVR naming a menu or a
        // prompt that does not exist) is refused here, before any version.
        settings.check().map_err(FleetError::Invalid)?;
        db::check_label(target.kind(), target.value())?;
        let what = format!("{target:?}");
        let r = self
            .inner
            .repo
            .push_config(target, settings, now_ms() as i64)
            .await??;
        info!(
            version = r.0,
            devices = r.1.len(),
            by = by.name(),
            "configuration pushed"
        );
        audited(
            &self.inner.store,
            by,
            "fleet.config.push",
            &what,
            &format!("version {} to {}", r.0, r.1.join(", ")),
        )
        .await;
        let _ = self.inner.wake.send(());
        for d in &r.1 {
            self.inner.changes.device(d);
        }
        Ok(r)
    }

    /// Queues a fleet command for `device` (published at once if it is
    /// connected, else when it comes back).
    pub async fn command(
        &self,
        by: &Actor,
        device: &NodeId,
        kind: CommandKind,
    ) -> Result<Command, OpError> {
        authorize(by)?;
        if let CommandKind::Unknown(u) = &kind {
            // Decoding keeps a kind it does not know (an appliance refuses
            // such a command by id); mgmt never sends one.
            return Err(FleetError::Invalid(format!(
                "no command kind {:?}; use one of {}",
                u.kind(),
                CommandKind::known_kinds()
                    .iter()
                    .filter(|k| **k != "send_sms")
                    .copied()
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
            .into());
        }
        if !kind.is_fleet() {
            return Err(FleetError::Invalid(
                "send_sms is a conversation command; reply through the conversations API".into(),
            )
            .into());
        }
        match self.inner.store.device(device)? {
            None => return Err(FleetError::NoDevice(device.to_string()).into()),
            Some(d) if d.revoked => {
                return Err(FleetError::Invalid(format!("device {device} is revoked")).into());
            }
            Some(_) => {}
        }
        let cmd = self
            .inner
            .repo
            .create_command(device.to_string(), kind, now_ms() as i64)
            .await?;
        info!(device = %device, command = %cmd.id, kind = cmd.kind.name(), by = by.name(), "fleet command queued");
        audited(
            &self.inner.store,
            by,
            &format!("fleet.command.{}", cmd.kind.name()),
            device.as_str(),
            &cmd.id.to_string(),
        )
        .await;
        let _ = self.inner.wake.send(());
        self.inner.changes.device(device.as_str());
        Ok(cmd)
    }

    /// Re-key: a new secret for `device`, sent to the appliance over its
    /// session (now if it is connected, else when it comes back). The old
    /// secret keeps working until the device has connected with the new one.
    pub async fn rekey(&self, by: &Actor, device: &NodeId) -> Result<rekey::RekeyView, OpError> {
        authorize(by)?;
        match self.inner.store.device(device)? {
            None => return Err(FleetError::NoDevice(device.to_string()).into()),
            Some(d) if d.revoked => {
                return Err(FleetError::Invalid(format!(
                    "device {device} is revoked: it cannot receive a new secret (a revoked device is re-admitted with `crossline-mgmt device add {device}`, or enrolled afresh)"
                ))
                .into());
            }
            Some(_) => {}
        }
        let secret = new_secret();
        let hash = hash_secret(&secret).map_err(|e| OpError::Other(e.to_string()))?;
        let view = self
            .inner
            .repo
            .create_rekey(device.to_string(), secret, hash.clone(), now_ms() as i64)
            .await?;
        self.inner.keys.insert(device.as_str(), &hash);
        info!(device = %device, rekey = %view.id, by = by.name(), "device re-key requested");
        audited(
            &self.inner.store,
            by,
            "fleet.device.rekey",
            device.as_str(),
            &view.id,
        )
        .await;
        let _ = self.inner.wake.send(());
        self.inner.changes.device(device.as_str());
        Ok(view)
    }
}

/// Creates the fleet handle and the service task.
pub fn start(
    store: SqliteStore,
    link: BrokerLink,
    kicker: Option<ClientKicker>,
    opts: FleetOptions,
    updates: broadcast::Receiver<Update>,
    (keys, used): (rekey::PendingKeys, mpsc::UnboundedReceiver<String>),
    shutdown: CancellationToken,
) -> (
    Fleet,
    impl std::future::Future<Output = anyhow::Result<()>> + Send + 'static,
) {
    let (wake_tx, wake_rx) = mpsc::unbounded_channel();
    let fleet = Fleet {
        inner: Arc::new(Inner {
            repo: Arc::new(store.clone()),
            store,
            kicker,
            wake: wake_tx,
            service_user: opts.service_user.clone(),
            changes: Changed::new(),
            keys,
        }),
    };
    let task = run(
        fleet.clone(),
        link,
        opts,
        updates,
        (wake_rx, used),
        shutdown,
    );
    (fleet, task)
}

async fn run(
    fleet: Fleet,
    link: BrokerLink,
    opts: FleetOptions,
    mut updates: broadcast::Receiver<Update>,
    (mut wake, mut used): (mpsc::UnboundedReceiver<()>, mpsc::UnboundedReceiver<String>),
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let (store, kicker, changes) = (
        fleet.inner.repo.clone(),
        fleet.inner.kicker.clone(),
        fleet.inner.changes.clone(),
    );
    let mut mo = link.options(&crate::bus::fleet_user(&link.username));
    mo.set_keep_alive(Duration::from_secs(10));
    mo.set_clean_session(true);
    mo.set_max_packet_size(
        crossline_proto::MAX_PAYLOAD + 1024,
        crossline_proto::MAX_PAYLOAD + 1024,
    );
    let (client, mut eventloop) = AsyncClient::new(mo, 256);
    let mut tick = tokio::time::interval(opts.tick);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut connected = false;
    let mut published: HashMap<String, Instant> = HashMap::new();
    let mut backoff = Duration::from_millis(100);
    let mut samples: Vec<telemetry::Sample> = Vec::new();
    let mut alert_tick = tokio::time::interval(opts.alerts.every());
    alert_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut prune_tick = tokio::time::interval(Duration::from_secs(3600));
    prune_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut restarts = alerts::RestartHistory::default();
    let mut telemetry_rate = telemetry::RateLimit::new(opts.telemetry_rate);
    let mut enroll_refusals = RefusalLog::default();
    let webhook = opts.alerts.webhook_url.clone().map(|url| {
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(webhook_sender(url, rx, shutdown.clone()));
        tx
    });
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            ev = eventloop.poll() => match ev {
                Ok(MqttEvent::Incoming(Packet::ConnAck(_))) => {
                    backoff = Duration::from_millis(100);
                    connected = true;
                    published.clear();
                    client
                        .subscribe(EnrollKind::Request.filter_all(), QoS::AtLeastOnce)
                        .await?;
                    for k in [Kind::Reported, Kind::Result, Kind::Rekeyed] {
                        client.subscribe(k.filter_all(), QoS::AtLeastOnce).await?;
                    }
                    info!("fleet service connected");
                    publish_due(store.as_ref(), &client, None, None).await;
                }
                Ok(MqttEvent::Incoming(Packet::Publish(p))) => {
                    if p.topic.starts_with(crossline_proto::topic::ENROLL_PREFIX) {
                        let limit = (opts.max_pending_enrollments, &mut enroll_refusals);
                        if on_request(store.as_ref(), &client, &p.topic, &p.payload, &mut published, limit).await {
                            changes.enrollments();
                        }
                    } else if let Some(device) = on_device_message(store.as_ref(), &p.topic, &p.payload).await {
                        changes.device(&device);
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    if connected {
                        warn!(error = %e, "fleet service lost the broker; reconnecting");
                    }
                    connected = false;
                    tokio::select! {
                        _ = shutdown.cancelled() => break,
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(3));
                }
            },
            Some(device) = used.recv() => {
                match store.complete_rekey(device.clone(), now_ms() as i64).await {
                    Ok(true) => {
                        fleet.inner.keys.remove(&device);
                        info!(device = %device, "device connected with its new secret; the old one is refused from now on");
                        changes.device(&device);
                    }
                    Ok(false) => fleet.inner.keys.remove(&device),
                    Err(e) => warn!(device = %device, error = %e, "could not complete the re-key"),
                }
            }
            Some(()) = wake.recv() => {
                published.clear();
                if connected {
                    deliver(store.as_ref(), &client, &mut published).await;
                    let before = now_ms() as i64 - RESEND_EVERY.as_millis() as i64;
                    publish_due(store.as_ref(), &client, None, Some(before)).await;
                }
            }
            _ = tick.tick() => {
                if !samples.is_empty() {
                    let batch = std::mem::take(&mut samples);
                    let n = batch.len();
                    if let Err(e) = store.store_telemetry(batch).await {
                        warn!(samples = n, error = %e, "could not store telemetry");
                    }
                }
                if connected {
                    deliver(store.as_ref(), &client, &mut published).await;
                    let before = now_ms() as i64 - RESEND_EVERY.as_millis() as i64;
                    publish_due(store.as_ref(), &client, None, Some(before)).await;
                }
                sweep_revoked(store.as_ref(), kicker.as_ref()).await;
            }
            _ = alert_tick.tick() => {
                evaluate_alerts(store.as_ref(), &opts.alerts, &mut restarts, webhook.as_ref(), &changes).await;
            }
            _ = prune_tick.tick() => {
                let now = now_ms() as i64;
                match store.prune_telemetry(now).await {
                    Ok(n) if n > 0 => debug!(rows = n, "pruned telemetry history"),
                    Ok(_) => {}
                    Err(e) => warn!(error = %e, "could not prune telemetry history"),
                }
            }
            u = updates.recv() => match u {
                Ok(Update::Presence { device, online: false }) => changes.device(device.as_str()),
                Ok(Update::Presence { device, online: true }) => {
                    changes.device(device.as_str());
                    // It (re)connected: the broker may have lost what we sent.
                    if connected {
                        publish_due(store.as_ref(), &client, Some(device.to_string()), None).await;
                    }
                    match store.credential_delivered(device.to_string()).await {
                        Ok(n) if n > 0 => info!(device = %device, "enrolled device connected with its own credential"),
                        Ok(_) => {}
                        Err(e) => warn!(device = %device, error = %e, "could not record credential pickup"),
                    }
                }
                Ok(Update::Telemetry { device, telemetry: t }) => {
                    let now = now_ms() as i64;
                    match telemetry_rate.check(device.as_str(), now) {
                        // Bounded: flushed every tick; a store that cannot
                        // keep up loses samples, not memory.
                        telemetry::Verdict::Keep if samples.len() < 100_000 => {
                            samples.push(telemetry::sample(device.as_str(), &t, now));
                        }
                        telemetry::Verdict::Keep | telemetry::Verdict::Drop { report: None } => {}
                        telemetry::Verdict::Drop { report: Some(n) } => warn!(
                            device = %device,
                            dropped = n,
                            per_min = opts.telemetry_rate.per_min,
                            "telemetry sent faster than [fleet] telemetry_per_min allows: samples dropped (check the appliance's [telemetry] interval_s)"
                        ),
                    }
                }
                Ok(_) => {}
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    debug!(missed = n, "fleet service lagged behind updates");
                }
                Err(broadcast::error::RecvError::Closed) => break,
            },
        }
    }
    let _ = tokio::time::timeout(Duration::from_secs(1), client.disconnect()).await;
    Ok(())
}

/// A `reported` or `result` message from a device; returns the device
/// whose recorded state changed.
async fn on_device_message(store: &dyn FleetRepo, topic: &str, payload: &[u8]) -> Option<String> {
    let t = match DeviceTopic::parse(topic) {
        Ok(t) => t,
        Err(e) => {
            warn!(error = %e, "fleet service: message on an unexpected topic");
            return None;
        }
    };
    let device = t.device.to_string();
    let now = now_ms() as i64;
    match t.kind {
        Kind::Reported => match decode::<ReportedConfig>(payload) {
            Ok(r) => {
                info!(device = %device, applied = r.applied, rejected = ?r.rejected, error = ?r.error, "configuration reported");
                match store.record_reported_config(device.clone(), r, now).await {
                    Ok(_) => return Some(device),
                    Err(e) => {
                        warn!(device = %device, error = %e, "could not record reported configuration")
                    }
                }
            }
            Err(e) => warn!(device = %device, error = %e, "rejected reported configuration"),
        },
        Kind::Result => match decode::<CommandResult>(payload) {
            Ok(r) => {
                let (id, ok) = (r.id, r.ok);
                match store.record_command_result(device.clone(), r, now).await {
                    Ok(true) => {
                        info!(device = %device, command = %id, ok, "fleet command result");
                        return Some(device);
                    }
                    Ok(false) => {
                        warn!(device = %device, command = %id, "result for an unknown command (or another device's)")
                    }
                    Err(e) => {
                        warn!(device = %device, command = %id, error = %e, "could not record command result")
                    }
                }
            }
            Err(e) => warn!(device = %device, error = %e, "rejected command result"),
        },
        Kind::Rekeyed => match decode::<Rekeyed>(payload) {
            Ok(r) => {
                let (id, ok) = (r.id, r.ok);
                if let Some(e) = &r.error {
                    warn!(device = %device, rekey = %id, error = %e, "the appliance could not store its new secret");
                }
                match store.record_rekey_answer(device.clone(), r, now).await {
                    Ok(true) => {
                        info!(device = %device, rekey = %id, ok, "re-key answered");
                        return Some(device);
                    }
                    Ok(false) => {}
                    Err(e) => {
                        warn!(device = %device, error = %e, "could not record the re-key answer")
                    }
                }
            }
            Err(e) => warn!(device = %device, error = %e, "rejected re-key answer"),
        },
        _ => {}
    }
    None
}

/// Publishes desired configurations (retained) not yet applied and commands
/// without a result: of `device` only when given; those not published since
/// `before_ms` (all with `None`).
async fn publish_due(
    store: &dyn FleetRepo,
    client: &AsyncClient,
    device: Option<String>,
    before_ms: Option<i64>,
) {
    let due = store.due(device.clone(), before_ms).await;
    let (configs, cmds, rekeys) = match due {
        Ok(d) => (d.configs, d.commands, d.rekeys),
        Err(e) => {
            warn!(error = %e, "could not read configurations and commands to publish");
            return;
        }
    };
    if configs.is_empty() && cmds.is_empty() && rekeys.is_empty() {
        return;
    }
    let mut sent_cfg = Vec::new();
    for (d, cfg) in configs {
        let Ok(node) = NodeId::new(d.as_str()) else {
            continue;
        };
        let topic = DeviceTopic::new(&node, Kind::Config).to_string();
        match client
            .publish(topic, QoS::AtLeastOnce, true, encode(&cfg))
            .await
        {
            Ok(()) => {
                debug!(device = %d, version = cfg.version, "desired configuration published");
                sent_cfg.push((d, cfg.version));
            }
            Err(e) => warn!(device = %d, error = %e, "could not publish configuration"),
        }
    }
    let mut sent_cmd = Vec::new();
    for (d, id, payload) in cmds {
        let Ok(node) = NodeId::new(d.as_str()) else {
            continue;
        };
        let topic = DeviceTopic::new(&node, Kind::Cmd).to_string();
        match client
            .publish(topic, QoS::AtLeastOnce, false, payload.into_bytes())
            .await
        {
            Ok(()) => {
                debug!(device = %d, command = %id, "fleet command published");
                sent_cmd.push(id);
            }
            Err(e) => warn!(device = %d, command = %id, error = %e, "could not publish command"),
        }
    }
    let mut sent_rekey = Vec::new();
    for (d, r) in rekeys {
        let Ok(node) = NodeId::new(d.as_str()) else {
            continue;
        };
        // Never retained: the secret must not wait in the broker.
        let topic = DeviceTopic::new(&node, Kind::Rekey).to_string();
        match client
            .publish(topic, QoS::AtLeastOnce, false, encode(&r))
            .await
        {
            Ok(()) => {
                debug!(device = %d, rekey = %r.id, "new secret sent");
                sent_rekey.push(d);
            }
            Err(e) => warn!(device = %d, error = %e, "could not send the new secret"),
        }
    }
    let now = now_ms() as i64;
    let published = Published {
        configs: sent_cfg,
        rekeys: sent_rekey,
        commands: sent_cmd,
    };
    if let Err(e) = store.mark_published(published, now).await {
        warn!(error = %e, "could not record what was published");
    }
}

/// Refused enrollment requests, logged once a minute with their number
/// (a flood of them must not flood the log).
#[derive(Default)]
struct RefusalLog {
    refused: u64,
    logged: Option<Instant>,
}

impl RefusalLog {
    /// Counts a refusal; the number to log now, if a minute has passed.
    fn count(&mut self) -> Option<u64> {
        self.refused += 1;
        if self
            .logged
            .is_some_and(|t| t.elapsed() < Duration::from_secs(60))
        {
            return None;
        }
        self.logged = Some(Instant::now());
        Some(std::mem::take(&mut self.refused))
    }
}

/// An enrollment request: recorded and answered; true if it is new. A new
/// enrollment id is refused (not recorded, not answered) while
/// `max_pending` enrollments wait for an admin.
async fn on_request(
    store: &dyn FleetRepo,
    client: &AsyncClient,
    topic: &str,
    payload: &[u8],
    published: &mut HashMap<String, Instant>,
    (max_pending, refusals): (u32, &mut RefusalLog),
) -> bool {
    let t = match EnrollTopic::parse(topic) {
        Ok(t) if t.kind == EnrollKind::Request => t,
        _ => {
            warn!(topic = %topic.chars().take(200).collect::<String>(), "ignoring message on an unexpected enrollment topic");
            return false;
        }
    };
    let req = match decode::<EnrollRequest>(payload) {
        Ok(r) => r,
        Err(e) => {
            warn!(enrollment = %t.enrollment, error = %e, "rejected enrollment request");
            return false;
        }
    };
    let answer = store
        .record_enrollment(t.enrollment.clone(), req, now_ms() as i64, max_pending)
        .await;
    match answer {
        Ok(None) => {
            if let Some(n) = refusals.count() {
                warn!(
                    enrollment = %t.enrollment,
                    refused = n,
                    max_pending,
                    "enrollment requests refused: {max_pending} enrollments already wait for an admin (the most one bootstrap token may have, [fleet] max_pending_enrollments); approve or reject them (`crossline-mgmt enroll list`), or replace the bootstrap token if they are not yours"
                );
            }
            false
        }
        Ok(Some((a, new))) => {
            debug!(enrollment = %t.enrollment, answer = ?a_state(&a), "enrollment request");
            if matches!(
                a,
                Answer::Approved {
                    secret: Some(_),
                    ..
                }
            ) {
                published.insert(t.enrollment.clone(), Instant::now());
            }
            respond(client, &t.enrollment, &a).await;
            new
        }
        Err(e) => {
            warn!(enrollment = %t.enrollment, error = %e, "could not record enrollment request");
            false
        }
    }
}

fn a_state(a: &Answer) -> &'static str {
    match a {
        Answer::Pending => "pending",
        Answer::Rejected => "rejected",
        Answer::Approved { .. } => "approved",
    }
}

async fn respond(client: &AsyncClient, enrollment: &str, a: &Answer) {
    let resp = match a {
        Answer::Pending => EnrollResponse {
            v: crossline_proto::VERSION,
            state: EnrollState::Pending,
            device: None,
            secret: None,
        },
        Answer::Rejected => EnrollResponse {
            v: crossline_proto::VERSION,
            state: EnrollState::Rejected,
            device: None,
            secret: None,
        },
        Answer::Approved {
            device,
            secret: Some(secret),
        } => match NodeId::new(device.as_str()) {
            Ok(d) => EnrollResponse {
                v: crossline_proto::VERSION,
                state: EnrollState::Approved,
                device: Some(d),
                secret: Some(secret.clone()),
            },
            Err(_) => return,
        },
        // Approved and picked up already: a device asking again lost its
        // identity file after connecting; an admin must re-key it.
        Answer::Approved {
            device,
            secret: None,
        } => {
            warn!(enrollment, device = %device, "enrollment asked again after its credential was picked up; re-key the device to give it a new one");
            EnrollResponse {
                v: crossline_proto::VERSION,
                state: EnrollState::Pending,
                device: None,
                secret: None,
            }
        }
    };
    let topic = EnrollTopic::new(enrollment, EnrollKind::Response).to_string();
    if let Err(e) = client
        .publish(topic, QoS::AtLeastOnce, false, encode(&resp))
        .await
    {
        warn!(enrollment, error = %e, "could not publish enrollment response");
    }
}

/// Publishes the credential of approved enrollments not yet picked up.
async fn deliver(
    store: &dyn FleetRepo,
    client: &AsyncClient,
    published: &mut HashMap<String, Instant>,
) {
    let due = match store.undelivered_credentials().await {
        Ok(d) => d,
        Err(e) => {
            warn!(error = %e, "could not read approved enrollments");
            return;
        }
    };
    published.retain(|id, _| due.iter().any(|(d, _, _)| d == id));
    for (id, device, secret) in due {
        if published
            .get(&id)
            .is_some_and(|t| t.elapsed() < REPUBLISH_EVERY)
        {
            continue;
        }
        published.insert(id.clone(), Instant::now());
        respond(
            client,
            &id,
            &Answer::Approved {
                device,
                secret: Some(secret),
            },
        )
        .await;
    }
}

async fn evaluate_alerts(
    store: &dyn FleetRepo,
    cfg: &alerts::AlertConfig,
    restarts: &mut alerts::RestartHistory,
    webhook: Option<&mpsc::UnboundedSender<alerts::Alert>>,
    changes: &Changed,
) {
    // A device "online" but silent past the heartbeat timeout lost its
    // session without a last will (mgmt restarted meanwhile, a half-open
    // connection): shown offline, like its alert says, until it speaks again.
    let silent_since = now_ms() as i64 - (cfg.heartbeat_timeout_s * 1000.0) as i64;
    match store.mark_silent_offline(silent_since).await {
        Ok(ids) => {
            for id in ids {
                info!(device = %id, heartbeat_timeout_s = cfg.heartbeat_timeout_s, "device silent past the heartbeat timeout: shown offline until it is heard from again");
                changes.device(&id);
            }
        }
        Err(e) => warn!(error = %e, "could not mark silent devices offline"),
    }
    let devices = match store.fleet_devices().await {
        Ok(d) => d,
        Err(e) => {
            warn!(error = %e, "could not read devices for alerts");
            return;
        }
    };
    let now = now_ms() as i64;
    let conditions = alerts::evaluate(cfg, &devices, restarts, now);
    let changed = match store.reconcile_alerts(conditions, now).await {
        Ok(c) => c,
        Err(e) => {
            warn!(error = %e, "could not store alerts");
            return;
        }
    };
    for a in changed {
        changes.device(&a.device);
        match a.cleared_ms {
            None => {
                warn!(device = %a.device, kind = %a.kind, subject = %a.subject, detail = %a.detail, "alert raised")
            }
            Some(_) => {
                info!(device = %a.device, kind = %a.kind, subject = %a.subject, "alert cleared")
            }
        }
        if let Some(w) = webhook {
            let _ = w.send(a);
        }
    }
}

/// POSTs alert changes to the webhook in order, each tried up to 5 times.
async fn webhook_sender(
    url: String,
    mut rx: mpsc::UnboundedReceiver<alerts::Alert>,
    shutdown: CancellationToken,
) {
    while let Some(a) = tokio::select! {
        _ = shutdown.cancelled() => None,
        a = rx.recv() => a,
    } {
        let body = alerts::WebhookBody {
            event: if a.cleared_ms.is_some() {
                "cleared"
            } else {
                "raised"
            },
            alert: &a,
        };
        let bytes = serde_json::to_vec(&body).unwrap_or_default();
        let mut pause = Duration::from_millis(500);
        for attempt in 1..=5 {
            match alerts::post_json(&url, &bytes).await {
                Ok(()) => break,
                Err(e) => {
                    warn!(device = %a.device, kind = %a.kind, attempt, error = %e, "alert webhook failed");
                    if attempt == 5 {
                        break;
                    }
                    tokio::select! {
                        _ = shutdown.cancelled() => return,
                        _ = tokio::time::sleep(pause) => {}
                    }
                    pause *= 2;
                }
            }
        }
    }
}

/// Ends any live session of a revoked device (a revoke from the CLI, which
/// cannot reach the broker; the API disconnects at once itself).
async fn sweep_revoked(store: &dyn FleetRepo, kicker: Option<&ClientKicker>) {
    let Some(k) = kicker else { return };
    let Ok(revoked) = store.revoked_devices().await else {
        return;
    };
    for id in revoked {
        if k.is_connected(&id).await && k.disconnect_client(&id).await {
            info!(device = %id, "revoked device disconnected");
        }
    }
}
