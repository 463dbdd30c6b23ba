//! Live conversation changes for Server-Sent Events.
//!
//! The projector runs inside the store's transaction, so it cannot announce
//! anything (the transaction may still roll back). Changes are announced
//! after commit instead: for ingested events, [`run`] reads ingestion's
//! `Update::Stored` (sent after the batch committed) and looks the affected
//! conversations up; for mgmt's own events (replies, resolve, reopen) the
//! HTTP handler announces after `append` returned.

use crate::bus::Update;
use crate::services::conversations::{self, ConversationSummary, TimelineEntry};
use crossline_core::EventBody;
use crossline_store::SqliteStore;
use serde::Serialize;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;
use tracing::warn;
use utoipa::ToSchema;

/// One change, as sent on `GET /api/v1/stream`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum LiveEvent {
    /// `event: conversation`: the conversation's new summary.
    Conversation(ConversationSummary),
    /// `event: message`: a new or changed timeline entry.
    Message(MessageEvent),
}

/// Data of an `event: message`.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct MessageEvent {
    pub conversation_id: String,
    #[serde(flatten)]
    pub entry: TimelineEntry,
}

/// The broadcast of live changes (cheap to clone).
#[derive(Clone)]
pub struct Live {
    tx: broadcast::Sender<LiveEvent>,
}

impl Default for Live {
    fn default() -> Self {
        Self::new()
    }
}

impl Live {
    pub fn new() -> Self {
        Self {
            tx: broadcast::channel(1024).0,
        }
    }

    pub fn subscribe(&self) -> broadcast::Receiver<LiveEvent> {
        self.tx.subscribe()
    }

    /// Announces timeline entries (by event id or command id) and then the
    /// summaries of the conversations they belong to. Call after commit.
    pub async fn announce(&self, store: &SqliteStore, keys: Vec<Key>) {
        if keys.is_empty() || self.tx.receiver_count() == 0 {
            return;
        }
        let r = store
            .read(move |conn| {
                let mut out = Vec::new();
                let mut convs: Vec<String> = Vec::new();
                for k in keys {
                    let found = match &k {
                        Key::Event(id) => conversations::entry_by_event(conn, id)?,
                        Key::Command(id) => conversations::entry_by_command(conn, id)?,
                        Key::Conversation(c) => {
                            if !convs.contains(c) {
                                convs.push(c.clone());
                            }
                            None
                        }
                    };
                    if let Some((conv, entry)) = found {
                        if !convs.contains(&conv) {
                            convs.push(conv.clone());
                        }
                        out.push(LiveEvent::Message(MessageEvent {
                            conversation_id: conv,
                            entry,
                        }));
                    }
                }
                for c in convs {
                    if let Some(s) = conversations::get(conn, &c)? {
                        out.push(LiveEvent::Conversation(s));
                    }
                }
                Ok(out)
            })
            .await;
        match r {
            Ok(events) => {
                for e in events {
                    let _ = self.tx.send(e);
                }
            }
            Err(e) => warn!(error = %e, "could not read conversation changes for live subscribers"),
        }
    }
}

/// What changed: a timeline entry by its event id or its reply's command id,
/// or a whole conversation.
#[derive(Debug, Clone)]
pub enum Key {
    Event(String),
    Command(String),
    Conversation(String),
}

/// Turns ingested batches into live changes until `shutdown`.
pub async fn run(
    store: SqliteStore,
    live: Live,
    mut updates: broadcast::Receiver<Update>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    loop {
        let u = tokio::select! {
            _ = shutdown.cancelled() => break,
            u = updates.recv() => u,
        };
        match u {
            Ok(Update::Stored { events, .. }) => {
                let keys = events
                    .iter()
                    .filter_map(|e| match &e.body {
                        EventBody::MessageReceived { .. } => Some(Key::Event(e.id.to_string())),
                        EventBody::MessageSent { command, .. }
                        | EventBody::DeliveryStatus { command, .. } => {
                            Some(Key::Command(command.to_string()))
                        }
                        _ => None,
                    })
                    .collect();
                live.announce(&store, keys).await;
            }
            Ok(_) => {}
            Err(broadcast::error::RecvError::Lagged(n)) => {
                warn!(
                    missed = n,
                    "live updates fell behind ingestion; some changes were not announced"
                );
            }
            Err(broadcast::error::RecvError::Closed) => break,
        }
    }
    Ok(())
}
