//! Reliable delivery of commands to appliances.
//!
//! A command is written to `pending_command` by the projector, in the same
//! transaction as the `ReplyRequested` event that asks for it, so a command
//! is never lost between "accepted" and "published". The dispatcher
//! publishes it (QoS 1 on `crossline/v1/d/{device}/cmd`) when it is created,
//! again to a device that says `Hello` (it reconnected: the broker may have
//! lost its session), to every device when mgmt's own MQTT connection comes
//! (back) up, and every [`RESEND_EVERY`] while it stays pending. It stops
//! being pending when a `MessageSent` or `DeliveryStatus` for its id is
//! ingested. The appliance acts on a command id once, so repeats are harmless.

use super::repo::{CommandRepo, PendingCommand};
use crate::bus::IngestSignal;
use crate::clock::now_ms;
use crossline_core::{EventId, NodeId};
use crossline_proto::{DeviceTopic, Kind};
use crossline_store::SqliteStore;
use rumqttc::{AsyncClient, QoS};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

/// How often pending commands are published again by default
/// (`[mqtt] command_resend_s`).
pub const RESEND_EVERY: Duration = Duration::from_secs(30);

/// Tells the dispatcher that a command was just stored.
#[derive(Clone)]
pub struct Dispatcher {
    tx: mpsc::UnboundedSender<NodeId>,
}

impl Dispatcher {
    /// A command for `device` was committed: publish it now.
    pub fn created(&self, device: &NodeId) {
        let _ = self.tx.send(device.clone());
    }
}

/// Creates the dispatcher handle and the receiver [`run`] consumes.
pub fn channel() -> (Dispatcher, mpsc::UnboundedReceiver<NodeId>) {
    let (tx, rx) = mpsc::unbounded_channel();
    (Dispatcher { tx }, rx)
}

/// Runs the dispatcher until `shutdown`.
pub async fn run(
    store: SqliteStore,
    mut created: mpsc::UnboundedReceiver<NodeId>,
    mut signals: mpsc::UnboundedReceiver<IngestSignal>,
    resend_every: Duration,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let mut client: Option<AsyncClient> = None;
    let mut tick = tokio::time::interval(resend_every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        let due = tokio::select! {
            _ = shutdown.cancelled() => break,
            Some(dev) = created.recv() => {
                load(&store, Some(dev), None).await.into_iter().filter(|c| c.last_sent_ms.is_none()).collect()
            }
            Some(sig) = signals.recv() => match sig {
                IngestSignal::Connected(c) => {
                    client = Some(c);
                    load(&store, None, None).await
                }
                IngestSignal::Hello(dev) => load(&store, Some(dev), None).await,
            },
            _ = tick.tick() => {
                let cutoff = now_ms().saturating_sub(resend_every.as_millis() as u64 * 5 / 6);
                load(&store, None, Some(cutoff as i64)).await
            }
        };
        let Some(c) = &client else { continue };
        publish(&store, c, due).await;
    }
    Ok(())
}

async fn load(
    store: &SqliteStore,
    device: Option<NodeId>,
    sent_before_ms: Option<i64>,
) -> Vec<PendingCommand> {
    let r = store
        .pending_commands(device.map(|d| d.to_string()), sent_before_ms)
        .await;
    r.unwrap_or_else(|e| {
        warn!(error = %e, "could not read pending commands");
        Vec::new()
    })
}

async fn publish(store: &SqliteStore, client: &AsyncClient, due: Vec<PendingCommand>) {
    if due.is_empty() {
        return;
    }
    let mut sent: Vec<EventId> = Vec::with_capacity(due.len());
    for c in due {
        let topic = DeviceTopic::new(&c.device, Kind::Cmd).to_string();
        match client
            .publish(topic, QoS::AtLeastOnce, false, c.payload.into_bytes())
            .await
        {
            Ok(()) => {
                debug!(device = %c.device, command = %c.id, again = c.last_sent_ms.is_some(), "command published");
                sent.push(c.id);
            }
            Err(e) => {
                warn!(device = %c.device, command = %c.id, error = %e, "could not publish command; will retry")
            }
        }
    }
    if sent.is_empty() {
        return;
    }
    let n = sent.len();
    let at = now_ms() as i64;
    if let Err(e) = store.mark_sent(sent, at).await {
        warn!(error = %e, "could not record published commands");
    } else {
        info!(commands = n, "commands published");
    }
}
