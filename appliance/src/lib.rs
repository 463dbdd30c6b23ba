//! crossline-appliance: the branch-office daemon.
//!
//! It keeps a local, durable event log (SQLite) of everything that happens at
//! the branch and replicates it to mgmt over MQTT ([`uplink`]), losing nothing
//! and duplicating nothing whatever fails (see docs/PROTOCOL.md, "Sync").

pub mod config;
pub mod log;
pub mod synthetic;
pub mod uplink;

pub use config::Config;

use anyhow::Context;
use crossline_store::SqliteStore;
use tokio_util::sync::CancellationToken;

/// Runs the appliance until `shutdown` is cancelled or a task fails.
pub async fn run(cfg: Config, shutdown: CancellationToken) -> anyhow::Result<()> {
    cfg.validate()?;
    std::fs::create_dir_all(&cfg.data_dir)
        .with_context(|| format!("creating data dir {}", cfg.data_dir.display()))?;
    let store = SqliteStore::open(&cfg.db_path(), cfg.node_id.clone())
        .with_context(|| format!("opening the event log {}", cfg.db_path().display()))?;
    let log = log::LocalLog::new(store.clone()).await?;
    tracing::info!(device = %cfg.node_id, head = log.head(), db = %cfg.db_path().display(), "appliance starting");

    let (cmd_tx, mut cmd_rx) = tokio::sync::mpsc::channel(64);
    let mut tasks = tokio::task::JoinSet::new();
    let up = uplink::run(
        log.clone(),
        cfg.mqtt.clone(),
        cfg.sync.clone(),
        cmd_tx,
        shutdown.clone(),
    );
    tasks.spawn(async move { up.await.map(|_| ()) });
    if let Some(syn) = cfg.synthetic.clone() {
        tasks.spawn(synthetic::run(log.clone(), syn, shutdown.clone()));
    }
    let sd = shutdown.clone();
    tasks.spawn(async move {
        // The SMS command handler arrives with the modem supervisor.
        loop {
            tokio::select! {
                _ = sd.cancelled() => return Ok(()),
                c = cmd_rx.recv() => match c {
                    Some(c) => tracing::info!(command = %c.id, "command received (no handler yet)"),
                    None => return Ok(()),
                }
            }
        }
    });
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
    tracing::info!(device = %cfg.node_id, "appliance stopping: flushing the log, closing the uplink");
    shutdown.cancel();
    while tasks.join_next().await.is_some() {}
    if let Err(e) = store.close() {
        tracing::warn!(error = %e, "closing the event log");
    }
    result
}
