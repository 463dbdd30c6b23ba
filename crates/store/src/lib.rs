//! Crossline persistence.
//!
//! The callers (appliance, mgmt) see only the traits in this file; the SQLite
//! implementation lives in [`sqlite`]. A PostgreSQL implementation is a new
//! module implementing the same traits, not a change to any caller.
//!
//! Durability model: every method that writes returns only after the data is
//! committed (WAL, `synchronous=FULL`). Writes from many tasks are funnelled to
//! one writer thread that commits them in groups (one fsync per group, not per
//! event). Reads go through a small pool of read-only connections.
//!
//! Each database applies the base migrations and its own program's
//! ([`Schema`]); an older build opens a newer database it can read, or
//! refuses it saying what to do ([`sqlite::migrations`] has the rule).

pub mod files;
pub mod sqlite;

use crossline_core::{ConversationId, Event, EventBody, Hlc, NodeId};
use std::future::Future;
use tokio::sync::watch;

pub use crossline_core::{Change, ChangeSet};
pub use sqlite::{Gate, Projector, Schema, SqliteStore, StoreOptions, StoreStats, per_event};

/// What went wrong in the store. Messages name the database file.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database {path}: {source}")]
    Sqlite {
        path: String,
        #[source]
        source: rusqlite::Error,
    },
    /// The schema cannot be brought to what this build uses: a newer
    /// release's database it cannot read, the other program's database, or a
    /// failed migration (see [`sqlite::migrations`]).
    #[error("database {path}: {detail}")]
    Schema { path: String, detail: String },
    #[error("database {path}: stored event {origin}/{seq} is unreadable: {detail}")]
    Corrupt {
        path: String,
        origin: String,
        seq: u64,
        detail: String,
    },
    #[error("database writer has stopped (the store was closed or its thread died)")]
    WriterGone,
    #[error("{0}")]
    Invalid(String),
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// A new local event before it is sequenced: the store assigns `id`, `seq`
/// and `at` atomically with the append.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    pub conversation: Option<ConversationId>,
    pub body: EventBody,
}

/// Result of ingesting a batch replicated from another node.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct IngestOutcome {
    /// Events newly stored by this call.
    pub stored: usize,
    /// Events already present (seq <= contiguous before the call): ignored.
    pub duplicates: usize,
    /// Highest seq N such that 1..=N are all stored for this origin, after
    /// the call. This is what mgmt acknowledges.
    pub contiguous: u64,
    /// Set when the batch skipped ahead: the first seq that is missing. The
    /// events after the hole were not stored; ask the origin to resend from here.
    pub missing_from: Option<u64>,
    /// Events stored otherwise than the origin sent them (refused by the
    /// [`Gate`], or re-stamped for clock skew), in seq order. Empty for an
    /// honest origin with a sane clock.
    pub amended: Vec<Amendment>,
}

/// How an ingested event was stored otherwise than its origin sent it.
/// Both can happen to one event (one entry each).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Amendment {
    /// The [`Gate`] refused it: stored as [`EventBody::Refused`] (same id,
    /// origin and seq; no conversation), so the origin's sequence stays
    /// whole and its events after it are stored as usual.
    Refused {
        seq: u64,
        kind: &'static str,
        reason: String,
    },
    /// Stamped further ahead of the receiver's wall clock than
    /// [`StoreOptions::max_clock_skew`] allows: stored with the receiver's
    /// time `stored`, the origin's stamp kept as `claimed` (the event's
    /// flag, column `event.claimed_ms`/`claimed_c`). It did not move the
    /// receiver's clock.
    Restamped { seq: u64, claimed: Hlc, stored: Hlc },
}

impl Amendment {
    /// The seq of the event it concerns.
    pub fn seq(&self) -> u64 {
        match self {
            Amendment::Refused { seq, .. } | Amendment::Restamped { seq, .. } => *seq,
        }
    }

    /// Turns `ev` as its origin sent it into what was stored (no-op for
    /// another event).
    pub fn apply(&self, ev: &mut Event) {
        if ev.seq != self.seq() {
            return;
        }
        match self {
            Amendment::Refused { kind, reason, .. } => {
                ev.conversation = None;
                ev.body = EventBody::Refused {
                    kind: (*kind).to_string(),
                    reason: reason.clone(),
                };
            }
            Amendment::Restamped { stored, .. } => ev.at = *stored,
        }
    }
}

/// The append-only event log of one node, with the replication state it needs.
///
/// Invariants every implementation keeps:
/// * `(origin, seq)` is unique; for each origin the stored seqs are exactly
///   `1..=contiguous(origin)` (no holes are ever stored).
/// * local appends get seq `contiguous(local)+1, +2, ...` and HLC stamps that
///   are strictly increasing, also across restarts.
pub trait EventLog: Send + Sync + 'static {
    /// This node's own id (the origin of its local appends).
    fn local_node(&self) -> &NodeId;

    /// Appends local events durably; returns them sequenced and stamped, in
    /// order. Concurrent callers are grouped into one transaction.
    fn append(&self, events: Vec<NewEvent>) -> impl Future<Output = Result<Vec<Event>>> + Send;

    /// Stores events replicated from `origin` (all must have that origin):
    /// duplicates are ignored, the contiguous prefix is extended, anything
    /// after a hole is refused (see [`IngestOutcome::missing_from`]). A new
    /// event stamped beyond the allowed clock skew is stored with the
    /// receiver's time, and one the [`Gate`] refuses is stored as a
    /// refusal in its slot (see [`IngestOutcome::amended`]); neither stops
    /// the events after it.
    ///
    /// The request is ordered when this method is called, not when the
    /// future is first polled: a caller may make several requests (for the
    /// same origin too) before awaiting any, and they are applied in call
    /// order. mgmt's ingestion relies on this to keep the next round queued
    /// while the previous one commits. The future owns what it needs
    /// (`'static`), so it can be awaited on another task.
    fn ingest(
        &self,
        origin: &NodeId,
        events: Vec<Event>,
    ) -> impl Future<Output = Result<IngestOutcome>> + Send + 'static;

    /// Highest contiguous seq stored for `origin` (0 if none).
    fn contiguous(&self, origin: &NodeId) -> impl Future<Output = Result<u64>> + Send;

    /// Events of `origin` with seq >= `from`, in seq order, at most `limit`.
    fn read_from(
        &self,
        origin: &NodeId,
        from: u64,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<Event>>> + Send;

    /// Most recent events across all origins (newest first), for the API.
    fn recent(
        &self,
        origin: Option<&NodeId>,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<Event>>> + Send;

    /// Number of events stored per origin.
    fn counts(&self) -> impl Future<Output = Result<Vec<(NodeId, u64)>>> + Send;

    /// The highest HLC stamp in the log (to resume the clock after a restart).
    fn last_hlc(&self) -> Hlc;
}

/// The appliance's outbox: the suffix of its local log that `peer` has not
/// acknowledged yet. Kept as a durable cursor so restart resumes exactly.
pub trait Outbox: Send + Sync + 'static {
    /// Highest local seq acknowledged by `peer` (0 if none).
    fn acked(&self, peer: &str) -> impl Future<Output = Result<u64>> + Send;
    /// Records an acknowledgement; never moves backwards (a stale ack is a no-op).
    fn set_acked(&self, peer: &str, seq: u64) -> impl Future<Output = Result<()>> + Send;
}

/// A device known to mgmt, with its credential.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceRecord {
    pub id: NodeId,
    /// PHC-format hash of the device secret (argon2id) or other verifier.
    pub secret_hash: String,
    pub revoked: bool,
    pub online: bool,
    /// Milliseconds since the epoch, when last heard from.
    pub last_seen_ms: Option<u64>,
    pub created_ms: u64,
}

/// mgmt's registry of devices and their credentials.
pub trait DeviceRegistry: Send + Sync + 'static {
    /// Creates the device, or replaces its secret (re-key) and clears `revoked`.
    fn put_device(&self, id: &NodeId, secret_hash: &str)
    -> impl Future<Output = Result<()>> + Send;
    /// Marks the device revoked: its credential is refused from now on.
    fn revoke_device(&self, id: &NodeId) -> impl Future<Output = Result<bool>> + Send;
    /// Looks a device up (synchronous: the broker's auth hook calls it).
    fn device(&self, id: &NodeId) -> Result<Option<DeviceRecord>>;
    fn devices(&self) -> impl Future<Output = Result<Vec<DeviceRecord>>> + Send;
    /// Records presence (online/offline) and last-seen time.
    fn set_presence(
        &self,
        id: &NodeId,
        online: bool,
        at_ms: u64,
    ) -> impl Future<Output = Result<()>> + Send;
}

/// One stored event as the log's consumers see it: its local position and
/// what the projection decided about it.
#[derive(Debug, Clone, PartialEq)]
pub struct FeedEntry {
    /// Its position in this node's order of stored events (see [`Feed`]).
    pub pos: u64,
    pub event: Event,
    /// What the projector recorded for this event (empty for most events
    /// that change no projection).
    pub changes: Vec<Change>,
}

/// The log as its consumers (live updates, routing, webhooks) follow it.
///
/// Every stored event, appended or ingested, of every origin, has a
/// position: 1, 2, 3, ... in the order this node stored them. A commit
/// makes a whole range visible at once and positions only grow, so a
/// consumer that remembers the last position it dealt with (its cursor)
/// and reads what comes after never misses an event and never sees one
/// twice, however far behind it is. The head (the newest position) is
/// announced through a `tokio::sync::watch`: a notification that cannot be
/// lost or overflow, only coalesced (a consumer that wakes up late reads
/// everything since its cursor in one go).
///
/// A consumer that must resume after a restart keeps its cursor in the
/// store ([`set_cursor`](Feed::set_cursor)), or atomically with what it
/// writes in reaction ([`append_at_cursor`](Feed::append_at_cursor)).
pub trait Feed: Send + Sync + 'static {
    /// The head: the position of the newest committed event (0: none).
    fn head(&self) -> watch::Receiver<u64>;

    /// Up to `limit` events after position `after`, in position order, each
    /// with its changes.
    fn read_feed(
        &self,
        after: u64,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<FeedEntry>>> + Send + 'static;

    /// The stored cursor of `consumer` (None: it has none yet).
    fn cursor(&self, consumer: &str) -> impl Future<Output = Result<Option<u64>>> + Send + 'static;

    /// Stores `consumer`'s cursor. It never moves back (an older position is
    /// a no-op) nor beyond the head.
    fn set_cursor(
        &self,
        consumer: &str,
        pos: u64,
    ) -> impl Future<Output = Result<()>> + Send + 'static;

    /// Appends local events (as [`EventLog::append`]) and moves `consumer`'s
    /// cursor to `pos` in the same transaction: what a consumer wrote in
    /// reaction to the events up to `pos` is stored exactly when its cursor
    /// says it dealt with them, so after a crash it neither repeats nor
    /// loses a reaction.
    fn append_at_cursor(
        &self,
        consumer: &str,
        pos: u64,
        events: Vec<NewEvent>,
    ) -> impl Future<Output = Result<Vec<Event>>> + Send + 'static;
}

/// Follows a [`Feed`] from a position: waits for the head to move past it
/// and reads what came, in batches. The cursor here is in memory; a
/// consumer that must survive a restart stores it with
/// [`Feed::set_cursor`] or [`Feed::append_at_cursor`].
pub struct Follower<F> {
    feed: F,
    head: watch::Receiver<u64>,
    pos: u64,
}

impl<F: Feed> Follower<F> {
    /// Follows from just after `pos` (0: from the first event).
    pub fn from(feed: F, pos: u64) -> Self {
        let head = feed.head();
        Self { feed, head, pos }
    }

    /// Follows from the current head: only what is stored from now on.
    pub fn from_head(feed: F) -> Self {
        let head = feed.head();
        let pos = *head.borrow();
        Self { feed, head, pos }
    }

    /// The position of the last entry handed out.
    pub fn pos(&self) -> u64 {
        self.pos
    }

    /// The next entries (at most `limit`), waiting until there is at
    /// least one. [`StoreError::WriterGone`] once the store is closed.
    pub async fn next(&mut self, limit: usize) -> Result<Vec<FeedEntry>> {
        loop {
            let pos = self.pos;
            self.head
                .wait_for(|h| *h > pos)
                .await
                .map_err(|_| StoreError::WriterGone)?;
            let batch = self.feed.read_feed(self.pos, limit.max(1)).await?;
            if let Some(last) = batch.last() {
                self.pos = last.pos;
                return Ok(batch);
            }
            // The head moved past rows no longer there (the appliance's
            // retention): nothing to read up to it.
            self.pos = self.pos.max(*self.head.borrow());
        }
    }
}
