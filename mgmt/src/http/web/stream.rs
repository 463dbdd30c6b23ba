//! The desk's live stream (`GET /desk/stream`, Server-Sent Events).
//!
//! One task ([`run`]) listens to what [`crate::live`] reads from the log:
//! conversation changes (new messages, delivery states, resolve/reopen) and
//! routing's logged decisions. It resolves each changed conversation's
//! [`Visibility`] once, and broadcasts it. Each browser's stream then only passes on what its user may see:
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
    loop {
        let ids: Vec<ConversationId> = tokio::select! {
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
            l = live.recv() => match l {
                Ok(LiveEvent::Conversation(s)) => s.id.parse().ok().into_iter().collect(),
                Ok(LiveEvent::Message(_)) => continue,
                Ok(LiveEvent::Routed(ids)) if ids.is_empty() => {
                    let _ = changes.tx.send(Change::Agents);
                    continue;
                }
                Ok(LiveEvent::Routed(ids)) => ids,
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    let _ = changes.tx.send(Change::Lagged);
                    continue;
                }
                Err(broadcast::error::RecvError::Closed) => break,
            },
        };
        if changes.tx.receiver_count() == 0 || ids.is_empty() {
            continue;
        }
        let q = ids.clone();
        let vis = routing
            .query(move |r| {
                q.iter()
                    .map(|id| r.and_then(|(r, _)| scope::visibility(r, id)))
                    .collect::<Vec<_>>()
            })
            .await
            .unwrap_or_default();
        for (i, id) in ids.iter().enumerate() {
            let _ = changes.tx.send(Change::Conversation {
                id: id.to_string(),
                vis: vis.get(i).cloned().flatten().map(Arc::new),
            });
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
