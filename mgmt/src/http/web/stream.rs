//! The desk's live stream (`GET /desk/stream`, Server-Sent Events).
//!
//! One task ([`run`]) listens to what [`crate::live`] reads from the log:
//! conversation changes (new messages, delivery states, resolve/reopen) and
//! routing's logged decisions. It resolves what is waiting with one routing
//! query (each changed conversation's [`Visibility`] and routing's view of
//! it), and broadcasts each once. A routing decision that leaves routing's
//! view of a conversation as it was last passed on (a new message is
//! usually announced already queued, since routing deals with it before it
//! answers the query) is not passed on again: one change per message, not
//! two, to every desk that may see it. Each browser's stream then only passes on what its user may see:
//! `event: change` with the conversation id as data (the page fetches the
//! rows it needs, authorised as usual), and, for supervisors, `event:
//! board` when anything routing-related changed; for admins, `event: fleet`
//! with a device id (or nothing: the enrollment queue) when what the fleet
//! console shows of it changed ([`crate::services::fleet::Fleet::subscribe_changes`]).
//! The ids are all a stream carries: no customer text crosses it.

use super::WebState;
use super::scope::{self, Viewer, Visibility};
use crate::http::auth::CurrentUser;
use crate::live::LiveEvent;
use crate::services::routing::Routing;
use crate::services::users::auth::Role;
use axum::extract::State;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use crossline_core::ConversationId;
use crossline_core::distinct::Distinct;
use crossline_core::routing::ConversationView;
use std::collections::{HashMap, HashSet};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

/// One change, resolved to who may see it.
#[derive(Debug, Clone)]
pub enum Change {
    Conversation {
        id: String,
        vis: Option<Arc<Visibility>>,
    },
    /// Agents changed (presence), nothing else.
    Agents,
    /// A fleet device's console view changed (empty: the enrollment queue).
    Fleet(String),
    /// This task fell behind the live changes: every page refetches.
    Lagged,
}

/// The broadcast of resolved changes (cheap to clone).
#[derive(Clone)]
pub struct Changes {
    tx: broadcast::Sender<Change>,
}

impl Default for Changes {
    fn default() -> Self {
        Self::new()
    }
}

impl Changes {
    pub fn new() -> Self {
        Self {
            tx: broadcast::channel(4096).0,
        }
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Change> {
        self.tx.subscribe()
    }
}

/// Most conversations resolved in one routing query.
const RESOLVE_AT_ONCE: usize = 512;

/// Longest wait for routing to deal with what was stored before a change
/// is resolved (routing behind by more than this: the change goes out as
/// routing sees it, and routing's decision follows as a change of its own).
const ROUTING_WAIT: Duration = Duration::from_millis(250);

/// Conversations whose last routing view is remembered (then forgotten at
/// once: a forgotten one is passed on again, never lost).
const VIEWS_KEPT: usize = 100_000;

/// Resolves conversation, routing and fleet changes into [`Change`]s until
/// shutdown.
pub async fn run(
    routing: Routing,
    changes: Changes,
    mut live: broadcast::Receiver<LiveEvent>,
    fleet: broadcast::Receiver<String>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let mut fleet = Some(fleet);
    // Routing's view of each conversation as last passed on.
    let mut last_view: HashMap<ConversationId, Option<ConversationView>> = HashMap::new();
    loop {
        let first = tokio::select! {
            _ = shutdown.cancelled() => break,
            f = async {
                match fleet.as_mut() {
                    Some(r) => r.recv().await,
                    None => std::future::pending().await,
                }
            } => {
                match f {
                    Ok(device) => {
                        let _ = changes.tx.send(Change::Fleet(device));
                    }
                    // Tell the consoles to refetch what they show.
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        let _ = changes.tx.send(Change::Fleet(String::new()));
                    }
                    Err(broadcast::error::RecvError::Closed) => fleet = None,
                }
                continue;
            }
            l = live.recv() => l,
        };
        // What else is waiting is resolved with it: one routing query for
        // the lot (routing answers between batches of the log; a query per
        // conversation would queue behind each one).
        let mut ids: Distinct<ConversationId> = Distinct::default();
        // Conversations whose projection changed (a message, a status):
        // always passed on; the others only if routing's view changed.
        let mut changed = HashSet::new();
        let mut next = Some(first);
        let mut closed = false;
        while let Some(l) = next.take() {
            match l {
                Ok(LiveEvent::Conversation(s)) => {
                    if let Ok(id) = s.id.parse::<ConversationId>() {
                        changed.insert(id);
                        ids.add(id);
                    }
                }
                Ok(LiveEvent::Message(_)) => {}
                // Live updates skipped part of the log: every page refetches.
                Ok(LiveEvent::Lagged { .. }) => {
                    let _ = changes.tx.send(Change::Lagged);
                }
                Ok(LiveEvent::Routed(r)) if r.is_empty() => {
                    let _ = changes.tx.send(Change::Agents);
                }
                Ok(LiveEvent::Routed(r)) => {
                    for id in r {
                        ids.add(id);
                    }
                }
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    let _ = changes.tx.send(Change::Lagged);
                }
                Err(broadcast::error::RecvError::Closed) => {
                    closed = true;
                    break;
                }
            }
            if ids.len() < RESOLVE_AT_ONCE {
                next = match live.try_recv() {
                    Ok(e) => Some(Ok(e)),
                    Err(broadcast::error::TryRecvError::Lagged(n)) => {
                        Some(Err(broadcast::error::RecvError::Lagged(n)))
                    }
                    Err(_) => None,
                };
            }
        }
        if changes.tx.receiver_count() > 0 && !ids.is_empty() {
            // Routing deals with a new message before it is resolved here,
            // so the change carries where routing put it (and its decision,
            // arriving next, changes nothing to pass on).
            routing.caught_up(ROUTING_WAIT).await;
            let ids = ids.into_vec();
            let q = ids.clone();
            let resolved = routing
                .query(move |r| {
                    q.iter()
                        .map(|id| match r {
                            Some((r, _)) => (
                                scope::visibility(r, id),
                                r.conversation(id).map(|mut c| {
                                    c.age = 0;
                                    c
                                }),
                            ),
                            None => (None, None),
                        })
                        .collect::<Vec<_>>()
                })
                .await
                .unwrap_or_default();
            for (id, (vis, view)) in ids.iter().zip(resolved) {
                // A routing decision that left routing's view of the
                // conversation as it was last passed on (the queueing of a
                // message already announced with its queue) is nothing new
                // to a desk: one change, not two.
                if !changed.contains(id) && last_view.get(id) == Some(&view) {
                    continue;
                }
                if last_view.len() >= VIEWS_KEPT {
                    last_view.clear();
                }
                last_view.insert(*id, view);
                let _ = changes.tx.send(Change::Conversation {
                    id: id.to_string(),
                    vis: vis.map(Arc::new),
                });
            }
        }
        if closed {
            break;
        }
    }
    Ok(())
}

/// `GET /desk/stream`: this user's live changes.
pub async fn desk_stream(State(st): State<Arc<WebState>>, user: CurrentUser) -> Response {
    let u = user.user.clone();
    let viewer = st
        .routing
        .query(move |r| Viewer::new(&u, r.map(|(r, _)| r)))
        .await
        .unwrap_or_else(|_| Viewer::new(&user.user, None));
    let supervisor = viewer.role >= Role::Supervisor;
    let admin = viewer.role >= Role::Admin;
    let rx = st.changes.subscribe();
    let stop = st.shutdown.clone();
    let events = futures_util::stream::unfold(
        (rx, stop, viewer),
        move |(mut rx, stop, viewer)| async move {
            loop {
                let item = tokio::select! {
                    _ = stop.cancelled() => return None,
                    r = rx.recv() => r,
                };
                let ev = match item {
                    Ok(Change::Conversation { id, vis }) => {
                        if viewer.can_see(vis.as_deref()) {
                            SseEvent::default().event("change").data(id)
                        } else if supervisor {
                            SseEvent::default().event("board").data("")
                        } else {
                            continue;
                        }
                    }
                    Ok(Change::Agents) if supervisor => SseEvent::default().event("board").data(""),
                    Ok(Change::Agents) => continue,
                    Ok(Change::Fleet(device)) if admin => {
                        SseEvent::default().event("fleet").data(device)
                    }
                    Ok(Change::Fleet(_)) => continue,
                    Ok(Change::Lagged) | Err(broadcast::error::RecvError::Lagged(_)) => {
                        SseEvent::default().event("lagged").data("")
                    }
                    Err(broadcast::error::RecvError::Closed) => return None,
                };
                return Some((Ok::<_, Infallible>(ev), (rx, stop, viewer)));
            }
        },
    );
    Sse::new(events)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response()
}
