//! The appliance's local log: appends, and tells the uplink when there is more.

use crossline_core::Event;
use crossline_store::{EventLog, NewEvent, Result};
use tokio::sync::watch;

/// Appends to the durable log and publishes the new head seq to watchers.
#[derive(Clone)]
pub struct LocalLog<S> {
    store: S,
    head: watch::Sender<u64>,
}

impl<S: EventLog + Clone> LocalLog<S> {
    pub async fn new(store: S) -> Result<Self> {
        let me = store.local_node().clone();
        let head = store.contiguous(&me).await?;
        let (tx, _) = watch::channel(head);
        Ok(Self { store, head: tx })
    }

    pub fn store(&self) -> &S {
        &self.store
    }

    /// Durably appends; returns once committed.
    pub async fn append(&self, events: Vec<NewEvent>) -> Result<Vec<Event>> {
        let out = self.store.append(events).await?;
        if let Some(last) = out.last() {
            self.head.send_if_modified(|h| {
                if last.seq > *h {
                    *h = last.seq;
                    true
                } else {
                    false
                }
            });
        }
        Ok(out)
    }

    /// Highest local seq.
    pub fn head(&self) -> u64 {
        *self.head.borrow()
    }

    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.head.subscribe()
    }
}
