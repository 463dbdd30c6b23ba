//! crossline-appliance: the branch-office daemon.
//!
//! It keeps a local, durable event log (SQLite) of everything that happens at
//! the branch and replicates it to mgmt over MQTT ([`uplink`]), losing nothing
//! and duplicating nothing whatever fails (see docs/PROTOCOL.md, "Sync").
//! It drives the branch's GSM modems ([`modems`]) and runs the SMS loop
//! ([`sms`]): incoming SMS logged before they leave the SIM, mgmt's send
//! commands executed once, offline auto-replies; and the voice service
//! ([`voice`]): calls on the lines logged as call events (see
//! docs/APPLIANCE.md).

pub mod config;
pub mod enroll;
pub mod fleet;
pub mod lines;
pub mod log;
pub mod modems;
pub mod recordings;
pub mod sms;
pub mod synthetic;
pub mod update;
pub mod uplink;
pub mod voice;

pub use config::Config;

use anyhow::Context;
use crossline_store::Outbox;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

/// Why this appliance refuses a command of a kind it does not know (from a
/// newer mgmt): what it was, that nothing was done, and what to do. The
/// refusal goes back both as a failed outcome event and as a fleet command
/// result (docs/PROTOCOL.md, "Commands").
pub fn unknown_command_reason(device: &str, kind: &crossline_core::tagged::Unrecognized) -> String {
    let mut name: String = kind
        .kind()
        .chars()
        .filter(|c| !c.is_control())
        .take(64)
        .collect();
    if name.is_empty() {
        name = "?".into();
    }
    format!(
        "refused: crossline-appliance {} on {device} does not know the command {name:?} \
         (it knows {}); nothing was done: upgrade the appliance to use it",
        env!("CARGO_PKG_VERSION"),
        crossline_proto::CommandKind::known_kinds().join(", ")
    )
}

/// How often acknowledged events are pruned from the local log.
const RETENTION_EVERY: std::time::Duration = std::time::Duration::from_secs(3600);

/// Deletes acknowledged events beyond `[sync] keep_days` / `keep_mib` from the
/// local log, at start and then every [`RETENTION_EVERY`]. A failure is
/// logged and tried again next time: retention never stops the appliance.
async fn retention(
    store: crossline_store::SqliteStore,
    sync: config::SyncConfig,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let mut every = tokio::time::interval(RETENTION_EVERY);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            _ = every.tick() => {}
        }
        let before_ms = if sync.keep_days == 0 {
            0
        } else {
            crossline_core::WallClock::now_ms(&crossline_core::hlc::SystemClock)
                .saturating_sub(sync.keep_days.saturating_mul(86_400_000))
        };
        let keep_bytes = if sync.keep_mib == 0 {
            u64::MAX >> 2
        } else {
            sync.keep_mib.saturating_mul(1 << 20)
        };
        match store.prune_acked(uplink::PEER, before_ms, keep_bytes).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(
                deleted = n,
                "retention: acknowledged events deleted from the local log"
            ),
            Err(e) => {
                tracing::warn!(error = %e, "retention: could not prune the local log; trying again later")
            }
        }
    }
}

/// Runs the appliance until `shutdown` is cancelled or a task fails.
pub async fn run(cfg: Config, shutdown: CancellationToken) -> anyhow::Result<()> {
    cfg.validate()?;
    crossline_store::files::create_private_dir(&cfg.data_dir)
        .with_context(|| format!("creating data dir {}", cfg.data_dir.display()))?;
    // Without a credential of its own, enroll first (waits for approval).
    let Some(cfg) = enroll::resolve(cfg, &shutdown).await? else {
        return Ok(());
    };
    let device = cfg.device()?.clone();
    let store = sms::db::open_store(&cfg.db_path(), device.clone())
        .with_context(|| format!("opening the event log {}", cfg.db_path().display()))?;
    let log = log::LocalLog::new(store.clone()).await?;
    tracing::info!(device = %device, head = log.head(), db = %cfg.db_path().display(), "appliance starting");

    let (cmd_tx, mut cmd_rx) = mpsc::channel(64);
    let (telemetry_tx, telemetry_rx) = mpsc::channel(16);
    // What the lines publish telemetry into (the update agent taps it).
    let mut lines_telemetry = telemetry_tx.clone();
    let (acked_tx, acked_rx) = watch::channel(store.acked(uplink::PEER).await?);
    let (link_tx, link_rx) = watch::channel(uplink::LinkState::down_now());
    let (config_tx, config_rx) = mpsc::channel(8);
    let (out_tx, out_rx) = mpsc::channel(64);
    let (rec_state_tx, rec_state_rx) = mpsc::channel(16);
    let spool = recordings::Spool::open(&cfg.data_dir)?;
    let mut tasks = tokio::task::JoinSet::new();
    let up = uplink::run_with(
        log.clone(),
        cfg.mqtt.clone(),
        cfg.sync.clone(),
        uplink::UplinkIo {
            commands: cmd_tx,
            telemetry: Some(telemetry_rx),
            acked: acked_tx,
            link: link_tx,
            config: Some(config_tx),
            outbound: Some(out_rx),
            recordings: Some(rec_state_tx),
            credential: crate::enroll::CredentialFile::of(&cfg),
            refusal_hint: Some(cfg.credential_hint()),
        },
        shutdown.clone(),
    );
    tasks.spawn(async move { up.await.map(|_| ()) });
    tasks.spawn(retention(store.clone(), cfg.sync.clone(), shutdown.clone()));
    // Recordings wait in <data_dir>/recordings until mgmt confirms them.
    tasks.spawn(recordings::run(
        spool,
        recordings::UploadIo {
            outbound: out_tx.clone(),
            states: rec_state_rx,
            link: link_rx.clone(),
        },
        shutdown.clone(),
    ));
    // The update agent (docs/OTA.md) takes `install_update` commands and
    // watches the modems' health (from telemetry) for its health check.
    if let Some(update_cfg) = cfg.update.clone() {
        let (fleet_cmd_tx, fleet_cmd_rx) = mpsc::channel(64);
        let (update_cmd_tx, update_cmd_rx) = mpsc::channel(8);
        let mut from_uplink = std::mem::replace(&mut cmd_rx, fleet_cmd_rx);
        tasks.spawn(async move {
            while let Some(c) = from_uplink.recv().await {
                if matches!(c.kind, crossline_proto::CommandKind::InstallUpdate { .. }) {
                    // Never held up by a busy agent (it may be waiting for
                    // RAUC at start): a dropped repeat comes again.
                    if let Err(mpsc::error::TrySendError::Full(c)) = update_cmd_tx.try_send(c) {
                        tracing::warn!(command = %c.id, "update agent busy; install_update dropped (mgmt repeats it)");
                    }
                } else if fleet_cmd_tx.send(c).await.is_err() {
                    break;
                }
            }
            Ok(())
        });
        let (tap_tx, mut from_lines) = mpsc::channel(16);
        let (health_tx, health_rx) = watch::channel(Vec::new());
        lines_telemetry = tap_tx;
        let tel_tx = telemetry_tx.clone();
        tasks.spawn(async move {
            while let Some(t) = from_lines.recv().await {
                health_tx.send_replace(t.modems.clone());
                if tel_tx.send(t).await.is_err() {
                    break;
                }
            }
            Ok(())
        });
        tasks.spawn(update::run(
            update_cfg,
            cfg.commands.clone(),
            cfg.mqtt.clone(),
            cfg.data_dir.clone(),
            device.to_string(),
            cfg.modems.iter().map(|m| m.label.clone()).collect(),
            update::UpdateIo {
                commands: update_cmd_rx,
                outbound: out_tx.clone(),
                link: link_rx.clone(),
                modems: health_rx,
            },
            shutdown.clone(),
        ));
    }
    if let Some(syn) = cfg.synthetic.clone() {
        tasks.spawn(synthetic::run(log.clone(), syn, shutdown.clone()));
    }
    // The SMS loop runs under fleet control (pushed configuration, fleet
    // commands); see crate::fleet.
    tasks.spawn(fleet::run(
        fleet::FleetIo {
            base: cfg.clone(),
            log: log.clone(),
            acked: acked_rx,
            link: link_rx,
            telemetry: lines_telemetry,
            commands: cmd_rx,
            config: config_rx,
            outbound: out_tx,
        },
        shutdown.clone(),
    ));
    let result = loop {
        tokio::select! {
            _ = shutdown.cancelled() => break Ok(()),
            r = tasks.join_next() => match r {
                None => break Ok(()),
                Some(Ok(Ok(()))) => continue,
                Some(Ok(Err(e))) => break Err(e),
                Some(Err(e)) => break Err(anyhow::anyhow!("appliance task failed: {e}")),
            }
        }
    };
    tracing::info!(device = %device, "appliance stopping: flushing the log, closing the uplink");
    shutdown.cancel();
    while tasks.join_next().await.is_some() {}
    if let Err(e) = store.close() {
        tracing::warn!(error = %e, "closing the event log");
    }
    result
}
