//! Live changes for Server-Sent Events, from the log.
//!
//! [`run`] follows the event log from its head ([`crossline_store::Follower`]:
//! it is woken by the store's head position after each commit, and reads
//! every event stored since it last read, however many; nothing is lost
//! while it is busy). For each batch it takes what the projector decided
//! (the change set kept with the events: messages added, reply states,
//! resolves, reopens) and the routing decisions logged, reads the current
//! view of each changed timeline entry and conversation once, and
//! broadcasts them as [`LiveEvent`]s. Mgmt's own events (replies, resolve,
//! reopen) and ingested ones take the same path: a handler only appends.
//!
//! The broadcast to the streams (`/api/v1/stream`, the desk's) is bounded:
//! a browser that does not read for a while gets `event: lagged` and
//! refetches. Consumers that must not miss anything (routing) follow the
//! log themselves with a durable cursor.
//!
//! Live updates are notices, not state: what a page shows it fetches. So
//! when the log runs more than [`SKIP_BEHIND`] events ahead of [`run`] (a
//! burst: an appliance's backlog after a day offline, a bulk import), it
//! does not read them one by one, minutes behind, delaying every newer
//! change behind them: it jumps to the head and announces
//! [`LiveEvent::Lagged`], on which every page refetches what it shows.

use crate::services::conversations::repo::{ConversationRepo, EntryKey as Key};
use crate::services::conversations::{ConversationSummary, TimelineEntry};
use crossline_core::distinct::Distinct;
use crossline_core::{Change, ConversationId, EventBody};
use crossline_store::{FeedEntry, Follower, SqliteStore};
use serde::Serialize;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};
use utoipa::ToSchema;

/// Events read from the log at a time.
const BATCH: usize = 1024;

/// Events [`run`] may be behind the log's head before it skips to the head
/// (as many as the broadcast holds: a subscriber would lag anyway).
pub const SKIP_BEHIND: u64 = 4096;

/// One change, as sent on `GET /api/v1/stream`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum LiveEvent {
    /// `event: conversation`: the conversation's new summary.
    Conversation(ConversationSummary),
    /// `event: message`: a new or changed timeline entry.
    Message(MessageEvent),
    /// Routing logged decisions about these conversations (empty: only
    /// agents changed, e.g. presence). Not sent on `/api/v1/stream`.
    Routed(Vec<ConversationId>),
    /// `event: lagged`: live updates skipped this many events of the log
    /// (far behind it): anything may have changed; refetch.
    Lagged { missed: u64 },
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
            tx: broadcast::channel(4096).0,
        }
    }

    pub fn subscribe(&self) -> broadcast::Receiver<LiveEvent> {
        self.tx.subscribe()
    }

    /// Announces timeline entries (by event id or command id) and then the
    /// summaries of the conversations they belong to, each conversation
    /// once.
    async fn announce(&self, store: &SqliteStore, keys: Vec<Key>) {
        if keys.is_empty() || self.tx.receiver_count() == 0 {
            return;
        }
        let r = store.changed(keys).await.map(|c| {
            let (entries, convs) = (c.entries, c.conversations);
            let messages = entries.into_iter().map(|(conversation_id, entry)| {
                LiveEvent::Message(MessageEvent {
                    conversation_id,
                    entry,
                })
            });
            messages
                .chain(convs.into_iter().map(LiveEvent::Conversation))
                .collect::<Vec<_>>()
        });
        match r {
            Ok(events) => {
                for e in events {
                    let _ = self.tx.send(e);
                }
            }
            Err(e) => warn!(error = %e, "could not read conversation changes for live subscribers"),
        }
    }

    /// Announces what a batch read from the log changed.
    async fn publish(&self, store: &SqliteStore, entries: &[FeedEntry]) {
        let (keys, routed) = keys_of(entries);
        if let Some(ids) = routed
            && self.tx.receiver_count() > 0
        {
            let _ = self.tx.send(LiveEvent::Routed(ids));
        }
        self.announce(store, keys).await;
    }
}

/// What a batch from the log changed: timeline entries and conversations
/// (from the change sets), and the conversations routing decided about
/// (None: no decision; an empty list: decisions about agents only).
fn keys_of(entries: &[FeedEntry]) -> (Vec<Key>, Option<Vec<ConversationId>>) {
    let mut keys = Vec::new();
    let mut routed: Option<Distinct<ConversationId>> = None;
    for e in entries {
        for c in &e.changes {
            keys.push(match c {
                Change::MessageAdded { event, .. } => Key::Event(event.to_string()),
                Change::ReplyState { command, .. } => Key::Command(command.to_string()),
                Change::ContactCreated { .. } | Change::ContactChanged { .. } => continue,
                Change::ConversationOpened { conversation, .. }
                | Change::ConversationResolved { conversation }
                | Change::ConversationReopened { conversation }
                | Change::ConversationChanged { conversation } => {
                    Key::Conversation(conversation.to_string())
                }
            });
        }
        if let EventBody::RoutingDecision { record } = &e.event.body {
            let ids = routed.get_or_insert_with(Distinct::default);
            if let Some(c) = record.fact.conversation() {
                ids.add(c);
            }
        }
    }
    (keys, routed.map(Distinct::into_vec))
}

/// Follows the log from its head and announces what changed, until
/// `shutdown`.
pub async fn run(
    store: SqliteStore,
    live: Live,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let mut follower = Follower::from_head(store.clone());
    let head = crossline_store::Feed::head(&store);
    loop {
        let batch = tokio::select! {
            _ = shutdown.cancelled() => break,
            b = follower.next(BATCH) => b,
        };
        match batch {
            Ok(entries) => {
                // Read with the batch: where the log stands now.
                let now = *head.borrow();
                let read_to = entries.last().map_or(follower.pos(), |e| e.pos);
                if now.saturating_sub(read_to) > SKIP_BEHIND {
                    let missed = now.saturating_sub(read_to.saturating_sub(entries.len() as u64));
                    info!(
                        from = read_to,
                        to = now,
                        missed,
                        "live updates are far behind the log: skipping to its head; pages refetch what they show"
                    );
                    follower = Follower::from(store.clone(), now);
                    let _ = live.tx.send(LiveEvent::Lagged { missed });
                    continue;
                }
                live.publish(&store, &entries).await;
            }
            // The store is closed: mgmt is stopping.
            Err(crossline_store::StoreError::WriterGone) => break,
            Err(e) => {
                warn!(error = %e, position = follower.pos(), "live updates could not read the log; retrying in 1 s");
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
                }
            }
        }
    }
    Ok(())
}
