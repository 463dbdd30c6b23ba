//! SQLite implementation of the store traits: [`SqliteStore`].
//!
//! # Durability model
//!
//! * The database runs in WAL mode with `synchronous=FULL`: a transaction is
//!   on disk (the WAL fsynced) before `COMMIT` returns, so a write that
//!   returned survives a power cut at any instant. `foreign_keys=ON`,
//!   `busy_timeout` 5 s by default ([`StoreOptions::busy_timeout`]).
//! * Every write goes to ONE writer thread (a plain `std::thread`) that owns
//!   the only read-write connection. Callers send a request over a channel and
//!   await a tokio oneshot. The thread takes everything already queued (up to
//!   1000 requests or [`StoreOptions::max_group_events`]), runs it in ONE `BEGIN IMMEDIATE`
//!   transaction and commits once: one fsync per group, not per event
//!   (group commit). Replies go out only after the commit, so "returned Ok"
//!   always means "durable".
//! * Each request of a group of several runs inside its own savepoint (a
//!   request alone in its group needs none: the transaction is its
//!   savepoint); statement journals live in memory (`temp_store=MEMORY`).
//!   A request that fails (a
//!   constraint, a projector error, a panic in a caller's closure) is rolled
//!   back alone and gets its own error; the others still commit. If the
//!   commit itself fails (disk full, I/O error, a *deferred* foreign key
//!   violated), every request of the group gets that error and the HLC is
//!   put back. Constraints are checked per statement unless declared
//!   `DEFERRABLE INITIALLY DEFERRED`: projections and [`SqliteStore::write`]
//!   callers must not use deferred foreign keys, or one bad request fails
//!   its whole group.
//! * Local sequencing happens inside the writer, in the transaction: seq is
//!   `replica.contiguous + 1` read in the same transaction, ids are UUIDv7 and
//!   stamps come from the node's [`HlcClock`]. Concurrent callers therefore
//!   get gapless seqs, and a request that fails assigns nothing: its seq is
//!   reused by the next append and the clock is rolled back with it.
//! * The clock resumes at open from the highest stamp in the log (every
//!   origin), and observes the stamps of ingested events, so what this node
//!   stamps next comes after everything it stored, even if the wall clock
//!   stepped back (NTP, a board without RTC booting in 1970). An ingested
//!   stamp further ahead of the wall clock than
//!   [`StoreOptions::max_clock_skew`] is not observed: the event is stored
//!   with this node's time instead and flagged (`event.claimed_ms` and
//!   `claimed_c` keep the origin's stamp), so one device with a clock in
//!   2100 cannot drag this node's clock (and every later stamp) there.
//! * [`StoreOptions::gate`] decides, in the ingest's transaction, whether
//!   each new replicated event may be stored as sent; a refused one is
//!   stored as [`EventBody::Refused`](crossline_core::EventBody::Refused) in
//!   its `(origin, seq)` slot, so the origin's sequence has no hole.
//! * The `event` table is append-only: triggers refuse UPDATE and DELETE,
//!   except [`SqliteStore::prune_acked`] deleting acknowledged local events
//!   (the appliance's retention; it marks what it may delete in
//!   `event_prune` within its own transaction).
//!   `replica(origin, contiguous)` holds the gapless prefix per origin (the
//!   local node included) and moves in the same transaction as the events.
//! * A request is queued when the method is called, not when its future is
//!   first polled; dropping the future does not cancel it.
//! * WAL checkpoints do not run inside the writer's commits: a second
//!   connection on its own thread copies the WAL back into the database file
//!   while the writer goes on, and the writer only finishes the few frames
//!   committed meanwhile so the WAL starts over (see `checkpoint.rs`;
//!   [`StoreOptions::checkpoint_pages`]).
//! * [`SqliteStore::close`] (or dropping the last clone) lets the writer
//!   finish everything queued before it, checkpoints the WAL and stops the
//!   thread. It blocks for at most one group commit.
//!
//! # Reads
//!
//! Reads use a small pool of read-only connections (4 by default). WAL lets
//! them run concurrently with the writer and see every committed write. The
//! async read methods run on tokio's blocking pool (`spawn_blocking`), or
//! inline when called outside a tokio runtime. [`DeviceRegistry::device`] is
//! synchronous for the broker's auth hook: a primary-key lookup on its own
//! dedicated connection (tens of microseconds), so it never waits behind a
//! long read. [`EventLog::last_hlc`] is an in-memory value.
//!
//! # The outbox
//!
//! There is no outbox table of messages. The appliance's outbox IS the
//! unacknowledged suffix of its local log: the `outbox_cursor` table keeps,
//! per peer, the highest local seq the peer acknowledged (never moving
//! backwards), and [`SqliteStore::unacked`] reads the local events after it.
//! After a restart or reconnect the appliance resends from `acked + 1`;
//! mgmt drops what it already has by `(origin, seq)`.
//!
//! # Extension points
//!
//! * [`StoreOptions::projector`]: a function run on every newly stored event
//!   (appended or ingested) inside the same transaction, for projections such
//!   as conversations and contacts. Projection tables are added as migrations.
//!   What it decided goes into a [`ChangeSet`](crossline_core::ChangeSet),
//!   kept in `change_set` in the same transaction.
//! * The log's consumers ([`Feed`]): every stored event has a
//!   position (`event.pos`, the table's INTEGER PRIMARY KEY: max + 1 in the
//!   writer's transaction); after each commit the writer publishes the new
//!   head position on a `watch`; `read_feed` returns events after a position
//!   with their changes; `feed_cursor` keeps consumers' positions, and
//!   `append_at_cursor` moves one in the transaction of what it appended.
//! * [`SqliteStore::write`] runs any closure in the writer's transaction (and
//!   group commit) for tables that are not projections of events;
//!   [`SqliteStore::read`] runs a closure on a pooled read connection.
//! * [`migrations`]: the schema migrations per database (a base list, the
//!   appliance's and mgmt's), and the rule for opening a newer database.
//!
//! # PostgreSQL
//!
//! Callers only see the traits in the crate root. A `postgres` module would
//! implement them with a connection pool instead of a writer thread: seq
//! allocation becomes `INSERT ... SELECT contiguous + 1 ... FOR UPDATE` on the
//! `replica` row of the origin (serialising appends per origin, not
//! globally), group commit is left to PostgreSQL (`commit_delay`), the HLC is
//! resumed from `max(at)` in the same way and must be shared by every mgmt
//! instance appending as the same node (or each instance gets its own node
//! id), and the devices table moves as is. The migrations stay SQL files,
//! per list, with the same `schema_version` rule.

mod checkpoint;
pub mod migrations;
mod ops;
mod read;
mod writer;

#[cfg(test)]
mod feed_tests;
#[cfg(test)]
mod migration_tests;
#[cfg(test)]
mod tests;

pub use migrations::Schema;
pub use writer::{Gate, Projector, per_event};

use crate::{
    DeviceRecord, DeviceRegistry, EventLog, Feed, FeedEntry, IngestOutcome, NewEvent, Outbox,
    Result, StoreError,
};
use crossline_core::{Event, Hlc, NodeId, WallClock, hlc::SystemClock};
use read::{BUSY_TIMEOUT, ReadPool};
use rusqlite::{Connection, Transaction};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;
use tokio::sync::oneshot;
use writer::{Ctx, Msg, Task};

/// Default number of pooled read-only connections.
pub const DEFAULT_READERS: usize = 4;

/// Default [`StoreOptions::max_clock_skew`].
pub const DEFAULT_MAX_CLOCK_SKEW: Duration = Duration::from_secs(5 * 60);

/// How to open a [`SqliteStore`]; [`Default`] is what production uses, but
/// for [`schema`](Self::schema) (the appliance and mgmt name theirs).
pub struct StoreOptions {
    /// Which database this is: the migration lists applied at open
    /// ([`Schema::Base`] by default: the event log alone).
    pub schema: Schema,
    /// Wall clock behind the HLC (the system clock by default; tests inject one).
    pub wall: Arc<dyn WallClock>,
    /// Run on every newly stored event inside its transaction.
    pub projector: Option<Projector>,
    /// Run on every new event replicated from another node, before it is
    /// stored: may refuse it (see [`Gate`]). None: every event is stored as sent.
    pub gate: Option<Gate>,
    /// How far ahead of this node's wall clock a replicated event's stamp
    /// may be (default [`DEFAULT_MAX_CLOCK_SKEW`], 5 min). Beyond it the
    /// event is stored with this node's time, flagged, and does not move the
    /// clock. Stamps in the past are kept: an event may arrive late (an
    /// appliance that was offline), and an old stamp cannot move the clock.
    pub max_clock_skew: Duration,
    /// Pooled read-only connections (at least 1).
    pub readers: usize,
    /// How long a statement waits for a lock held by another connection or
    /// process (a backup, the `sqlite3` shell) before failing.
    pub busy_timeout: Duration,
    /// WAL pages (4 KiB) after which the WAL is copied back into the database
    /// file, off the writer (see the `checkpoint` module). Bigger means each
    /// page rewritten by many commits is copied back once instead of many
    /// times, at the price of a bigger WAL file (this × 4 KiB, up to 4× that
    /// while a copy runs) and a longer recovery after a crash. Default 4096
    /// (16 MiB).
    pub checkpoint_pages: u32,
    /// A group commit stops taking requests once it holds this many events
    /// (default 4096). Bigger groups write each index page they touch once for
    /// more events; a request may wait for up to one group to be written.
    pub max_group_events: usize,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            schema: Schema::Base,
            wall: Arc::new(SystemClock),
            projector: None,
            gate: None,
            max_clock_skew: DEFAULT_MAX_CLOCK_SKEW,
            readers: DEFAULT_READERS,
            busy_timeout: BUSY_TIMEOUT,
            checkpoint_pages: checkpoint::CHECKPOINT_PAGES,
            max_group_events: writer::MAX_GROUP_EVENTS,
        }
    }
}

/// Counters of the writer, for tests, metrics and the benchmark.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StoreStats {
    /// Transactions committed (one per group).
    pub commits: u64,
    /// Requests processed (succeeded or failed).
    pub requests: u64,
    /// Requests that failed (their own error or a failed commit).
    pub failed_requests: u64,
    /// Requests sent and not yet taken by the writer.
    pub queued: u64,
    /// The most requests committed in one transaction so far.
    pub largest_group: u64,
}

/// State shared by the handles and the writer thread.
pub(crate) struct Shared {
    pub commits: AtomicU64,
    pub requests: AtomicU64,
    pub failed_requests: AtomicU64,
    pub queued: AtomicU64,
    pub largest_group: AtomicU64,
    pub last_hlc: Mutex<Hlc>,
    /// Position of the newest committed event (see [`crate::Feed`]).
    pub head: tokio::sync::watch::Sender<u64>,
}

/// The SQLite store: event log, outbox cursor, device registry. Cheap to
/// clone (all clones share one writer thread and one read pool); `Send + Sync`.
#[derive(Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    path_str: String,
    local: NodeId,
    to_writer: Sender<Msg>,
    writer: Mutex<Option<JoinHandle<rusqlite::Result<()>>>>,
    pool: ReadPool,
    auth: Mutex<Connection>,
    shared: Arc<Shared>,
}

/// A copy of an SQLite error for each caller of a failed group.
pub(crate) fn clone_sqlite_error(e: &rusqlite::Error) -> rusqlite::Error {
    match e {
        rusqlite::Error::SqliteFailure(code, msg) => {
            rusqlite::Error::SqliteFailure(*code, msg.clone())
        }
        other => rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_ERROR),
            Some(other.to_string()),
        ),
    }
}

/// Page cache of the writer connection, in KiB (SQLite's default is 2 MiB).
/// The writer touches the tail of every index on each group; with a cache
/// smaller than that working set it re-reads pages from the WAL on each commit.
const WRITER_CACHE_KIB: i64 = 16 * 1024;
/// Prepared statements kept per connection (rusqlite's default is 16): the
/// writer runs the store's statements and every projector's, readers run
/// every module's queries, and a statement that falls out of the cache is
/// parsed and planned again on its next use.
pub(crate) const STATEMENT_CACHE: usize = 128;

fn configure_writer(conn: &Connection, busy: Duration) -> rusqlite::Result<String> {
    let mode: String = conn.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", true)?;
    conn.pragma_update(None, "cache_size", -WRITER_CACHE_KIB)?;
    // Statement journals (for savepoints) in memory, not in temp files.
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    conn.busy_timeout(busy)?;
    Ok(mode)
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path` for node
    /// `local_node`, migrates it to the latest base schema (the event log
    /// alone: [`Schema::Base`]; see [`open_with`](Self::open_with) for the
    /// appliance's and mgmt's) and starts the writer.
    /// The parent directory must exist. The database and its `-wal`/`-shm`
    /// are readable by their owner only ([`crate::files`]).
    pub fn open(path: &Path, local_node: NodeId) -> Result<SqliteStore> {
        Self::open_with(path, local_node, StoreOptions::default())
    }

    /// [`open`](Self::open) with an injected wall clock (tests: a clock that
    /// jumps back must not make the HLC go back).
    pub fn open_with_clock(
        path: &Path,
        local_node: NodeId,
        wall: impl WallClock + 'static,
    ) -> Result<SqliteStore> {
        Self::open_with(
            path,
            local_node,
            StoreOptions {
                wall: Arc::new(wall),
                ..StoreOptions::default()
            },
        )
    }

    /// [`open`](Self::open) with every option.
    pub fn open_with(path: &Path, local_node: NodeId, opts: StoreOptions) -> Result<SqliteStore> {
        let path_str = path.display().to_string();
        let sql = |source| StoreError::Sqlite {
            path: path_str.clone(),
            source,
        };
        crate::files::private_database(path).map_err(|e| {
            StoreError::Invalid(format!(
                "database {path_str}: cannot create it or make it private (mode 0600): {e}"
            ))
        })?;
        let mut conn = Connection::open(path).map_err(sql)?;
        let mode = configure_writer(&conn, opts.busy_timeout).map_err(sql)?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::Invalid(format!(
                "database {path_str}: cannot switch to WAL journal mode (got {mode:?}); \
                 put the database on a local filesystem that supports shared memory"
            )));
        }
        migrations::migrate(&mut conn, opts.schema, &path_str)?;
        let last = read::max_hlc(&conn, &path_str)?;
        let head = writer::read_head(&conn).map_err(sql)?;

        let readers = (0..opts.readers.max(1))
            .map(|_| read::open_reader(path, opts.busy_timeout))
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(sql)?;
        let auth = read::open_reader(path, opts.busy_timeout).map_err(sql)?;

        let shared = Arc::new(Shared {
            commits: AtomicU64::new(0),
            requests: AtomicU64::new(0),
            failed_requests: AtomicU64::new(0),
            queued: AtomicU64::new(0),
            largest_group: AtomicU64::new(0),
            last_hlc: Mutex::new(last),
            head: tokio::sync::watch::Sender::new(head),
        });
        let ctx = Ctx::new(
            path_str.clone(),
            local_node.clone(),
            opts.wall,
            last,
            opts.projector,
            opts.max_group_events,
        )
        .with_ingest_checks(opts.gate, opts.max_clock_skew);
        let checkpointer =
            checkpoint::Checkpointer::start(path, path_str.clone(), opts.checkpoint_pages)
                .map_err(sql)?;
        let (to_writer, rx) = mpsc::channel();
        let thread_shared = shared.clone();
        let writer = std::thread::Builder::new()
            .name("crossline-store-writer".into())
            .spawn(move || writer::run(conn, ctx, rx, thread_shared, checkpointer))
            .map_err(|e| {
                StoreError::Invalid(format!(
                    "database {path_str}: cannot start the writer thread: {e}"
                ))
            })?;
        tracing::debug!(db = %path_str, node = %local_node, last_hlc = %last, "store opened");
        Ok(SqliteStore {
            inner: Arc::new(Inner {
                path: path.to_path_buf(),
                path_str,
                local: local_node,
                to_writer,
                writer: Mutex::new(Some(writer)),
                pool: ReadPool::new(readers),
                auth: Mutex::new(auth),
                shared,
            }),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Writer counters.
    pub fn stats(&self) -> StoreStats {
        let s = &self.inner.shared;
        StoreStats {
            commits: s.commits.load(Ordering::Relaxed),
            requests: s.requests.load(Ordering::Relaxed),
            failed_requests: s.failed_requests.load(Ordering::Relaxed),
            queued: s.queued.load(Ordering::Relaxed),
            largest_group: s.largest_group.load(Ordering::Relaxed),
        }
    }

    /// Lets the writer commit everything queued so far, checkpoints the WAL
    /// and stops the writer thread. Every clone stops working (writes return
    /// [`StoreError::WriterGone`]). Blocks for at most one group commit.
    pub fn close(self) -> Result<()> {
        self.inner.shutdown()
    }

    /// Runs `f` in the writer's transaction (grouped with other writes, in
    /// its own savepoint) and returns its result once committed. For tables
    /// that are not projections of events (mgmt's users, config, ...). An
    /// error from `f` rolls back what `f` did and nothing else (but a
    /// violated *deferred* constraint only shows at COMMIT and fails the
    /// whole group: do not declare constraints deferred). `f` must not
    /// COMMIT or ROLLBACK the transaction itself.
    pub fn write<T, F>(&self, f: F) -> impl Future<Output = Result<T>> + Send + 'static + use<T, F>
    where
        T: Send + 'static,
        F: FnOnce(&Transaction<'_>) -> rusqlite::Result<T> + Send + 'static,
    {
        self.submit(1, move |ctx: &mut Ctx, tx: &Transaction<'_>| {
            f(tx).map_err(|e| ctx.sql(e))
        })
    }

    /// Decides and appends in one step: `decide` runs in the writer's
    /// transaction (seeing every projection as it is at that moment) and
    /// returns its answer with the local events to append; they are
    /// appended and projected in the same transaction, so nothing can
    /// change in between (a check of the projections, then the fact, with no
    /// race). Returns the answer and the events as stored (none appended
    /// when `decide` returns none). An error from `decide` appends nothing.
    pub fn append_with<T, F>(
        &self,
        decide: F,
    ) -> impl Future<Output = Result<(T, Vec<Event>)>> + Send + 'static + use<T, F>
    where
        T: Send + 'static,
        F: FnOnce(&Transaction<'_>) -> rusqlite::Result<(T, Vec<NewEvent>)> + Send + 'static,
    {
        self.submit(1, move |ctx: &mut Ctx, tx| {
            let (answer, events) = decide(tx).map_err(|e| ctx.sql(e))?;
            let stored = if events.is_empty() {
                Vec::new()
            } else {
                ops::append(ctx, tx, events)?
            };
            Ok((answer, stored))
        })
    }

    /// Rebuilds the projections from the log alone. In one transaction,
    /// `clear` empties them (the caller knows its tables), then the installed
    /// projector ([`StoreOptions::projector`]) is run over every stored event
    /// again, in the order this node stored them, in batches. Returns how
    /// many events were projected. Nothing else should use the projections
    /// meanwhile (mgmt: stop it and run `crossline-mgmt rebuild`); the rest
    /// of the database (the log, tables that are not projections) is left
    /// as it is. An error rolls everything back: the old projections stay.
    pub fn rebuild_projections<F>(
        &self,
        clear: F,
    ) -> impl Future<Output = Result<u64>> + Send + 'static + use<F>
    where
        F: FnOnce(&Transaction<'_>) -> rusqlite::Result<()> + Send + 'static,
    {
        self.submit(writer::MAX_GROUP_EVENTS, move |ctx: &mut Ctx, tx| {
            ops::rebuild(ctx, tx, clear)
        })
    }

    /// Runs `f` on a pooled read-only connection (on tokio's blocking pool).
    pub fn read<T, F>(&self, f: F) -> impl Future<Output = Result<T>> + Send + 'static + use<T, F>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        self.read_with(move |conn, path| {
            f(conn).map_err(|source| StoreError::Sqlite {
                path: path.to_string(),
                source,
            })
        })
    }

    /// The outbox towards `peer`: local events after its acknowledgement, in
    /// seq order, at most `limit`.
    pub fn unacked(
        &self,
        peer: &str,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<Event>>> + Send + 'static + use<> {
        let peer = peer.to_string();
        let local = self.inner.local.clone();
        self.read_with(move |conn, path| {
            let acked = read::acked(conn, path, &peer)?;
            read::read_from(conn, path, &local, acked.saturating_add(1), limit)
        })
    }

    /// Retention of the local log: deletes local events `peer` has
    /// acknowledged that are older than `before_ms` (HLC milliseconds) or
    /// beyond the newest `keep_bytes` of the local log (bodies plus a
    /// per-row allowance). Unacknowledged events and the newest local event
    /// are always kept; seqs and the clock go on as before. Returns how many
    /// events were deleted. For the appliance (mgmt keeps its log).
    pub fn prune_acked(
        &self,
        peer: &str,
        before_ms: u64,
        keep_bytes: u64,
    ) -> impl Future<Output = Result<u64>> + Send + 'static + use<> {
        let queued = check_peer(peer).map(|()| {
            let peer = peer.to_string();
            self.submit(1, move |ctx, tx| {
                ops::prune_acked(ctx, tx, &peer, before_ms, keep_bytes)
            })
        });
        async move { queued?.await }
    }

    fn submit<T, F>(
        &self,
        weight: usize,
        work: F,
    ) -> impl Future<Output = Result<T>> + Send + 'static + use<T, F>
    where
        T: Send + 'static,
        F: FnOnce(&mut Ctx, &Transaction<'_>) -> Result<T> + Send + 'static,
    {
        let (reply, rx) = oneshot::channel();
        let shared = &self.inner.shared;
        shared.queued.fetch_add(1, Ordering::Relaxed);
        let job = Box::new(Task::new(weight, work, reply));
        let sent = self.inner.to_writer.send(Msg::Job(job)).is_ok();
        if !sent {
            shared.queued.fetch_sub(1, Ordering::Relaxed);
        }
        async move {
            if !sent {
                return Err(StoreError::WriterGone);
            }
            rx.await.map_err(|_| StoreError::WriterGone)?
        }
    }

    fn read_with<T, F>(&self, f: F) -> impl Future<Output = Result<T>> + Send + 'static + use<T, F>
    where
        T: Send + 'static,
        F: FnOnce(&Connection, &str) -> Result<T> + Send + 'static,
    {
        let inner = self.inner.clone();
        async move {
            let run = move || inner.pool.with(|conn| f(conn, &inner.path_str));
            match tokio::runtime::Handle::try_current() {
                Ok(rt) => rt.spawn_blocking(run).await.map_err(|e| {
                    StoreError::Invalid(format!("a database read task failed: {e}"))
                })?,
                Err(_) => run(),
            }
        }
    }
}

impl Inner {
    fn shutdown(&self) -> Result<()> {
        let handle = self
            .writer
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        let Some(handle) = handle else {
            return Ok(());
        };
        // The writer handles everything queued before this message first.
        let _ = self.to_writer.send(Msg::Shutdown);
        match handle.join() {
            Ok(r) => r.map_err(|source| StoreError::Sqlite {
                path: self.path_str.clone(),
                source,
            }),
            Err(_) => Err(StoreError::WriterGone),
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Err(e) = self.shutdown() {
            tracing::warn!(db = %self.path_str, error = %e, "closing the store failed");
        }
    }
}

fn check_peer(peer: &str) -> Result<()> {
    check_name("outbox peer", peer)
}

fn check_consumer(consumer: &str) -> Result<()> {
    check_name("log consumer", consumer)
}

fn check_name(what: &str, name: &str) -> Result<()> {
    if name.is_empty() || name.len() > 256 {
        return Err(StoreError::Invalid(format!(
            "{what} name {name:?} must be 1 to 256 bytes"
        )));
    }
    Ok(())
}

fn check_ingest(local: &NodeId, origin: &NodeId, events: &[Event]) -> Result<()> {
    if origin == local {
        return Err(StoreError::Invalid(format!(
            "ingest from {origin}: that is this node's own id; its events are only appended locally"
        )));
    }
    for ev in events {
        if &ev.origin != origin {
            return Err(StoreError::Invalid(format!(
                "ingest from {origin}: event {} (seq {}) has origin {}; every event of a batch \
                 must come from the origin it is ingested for. Nothing of the batch was stored",
                ev.id, ev.seq, ev.origin
            )));
        }
        // A stamp beyond 63 bits is not refused here: it is far beyond the
        // clock skew allowed, so the event is stored with this node's time.
        if ev.seq == 0 || ev.seq > i64::MAX as u64 {
            return Err(StoreError::Invalid(format!(
                "ingest from {origin}: event {} has seq {}; seqs start at 1 and must fit in \
                 63 bits. Nothing of the batch was stored",
                ev.id, ev.seq
            )));
        }
    }
    Ok(())
}

impl EventLog for SqliteStore {
    fn local_node(&self) -> &NodeId {
        &self.inner.local
    }

    fn append(&self, events: Vec<NewEvent>) -> impl Future<Output = Result<Vec<Event>>> + Send {
        let queued = (!events.is_empty())
            .then(|| self.submit(events.len(), move |ctx, tx| ops::append(ctx, tx, events)));
        async move {
            match queued {
                Some(f) => f.await,
                None => Ok(Vec::new()),
            }
        }
    }

    fn ingest(
        &self,
        origin: &NodeId,
        events: Vec<Event>,
    ) -> impl Future<Output = Result<IngestOutcome>> + Send + 'static {
        let queued = check_ingest(&self.inner.local, origin, &events).map(|()| {
            let origin = origin.clone();
            self.submit(events.len(), move |ctx, tx| {
                ops::ingest(ctx, tx, &origin, events)
            })
        });
        async move { queued?.await }
    }

    fn contiguous(&self, origin: &NodeId) -> impl Future<Output = Result<u64>> + Send {
        let origin = origin.clone();
        self.read_with(move |conn, path| {
            ops::contiguous(conn, &origin).map_err(|source| StoreError::Sqlite {
                path: path.to_string(),
                source,
            })
        })
    }

    fn read_from(
        &self,
        origin: &NodeId,
        from: u64,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<Event>>> + Send {
        let origin = origin.clone();
        self.read_with(move |conn, path| read::read_from(conn, path, &origin, from, limit))
    }

    fn recent(
        &self,
        origin: Option<&NodeId>,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<Event>>> + Send {
        let origin = origin.cloned();
        self.read_with(move |conn, path| read::recent(conn, path, origin.as_ref(), limit))
    }

    fn counts(&self) -> impl Future<Output = Result<Vec<(NodeId, u64)>>> + Send {
        self.read_with(read::counts)
    }

    fn last_hlc(&self) -> Hlc {
        *self
            .inner
            .shared
            .last_hlc
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

impl Outbox for SqliteStore {
    fn acked(&self, peer: &str) -> impl Future<Output = Result<u64>> + Send {
        let peer = peer.to_string();
        self.read_with(move |conn, path| read::acked(conn, path, &peer))
    }

    fn set_acked(&self, peer: &str, seq: u64) -> impl Future<Output = Result<()>> + Send {
        let queued = check_peer(peer).map(|()| {
            let peer = peer.to_string();
            self.submit(1, move |ctx, tx| ops::set_acked(ctx, tx, &peer, seq))
        });
        async move { queued?.await }
    }
}

impl Feed for SqliteStore {
    fn head(&self) -> tokio::sync::watch::Receiver<u64> {
        self.inner.shared.head.subscribe()
    }

    fn read_feed(
        &self,
        after: u64,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<FeedEntry>>> + Send + 'static {
        self.read_with(move |conn, path| read::read_feed(conn, path, after, limit))
    }

    fn cursor(&self, consumer: &str) -> impl Future<Output = Result<Option<u64>>> + Send + 'static {
        let consumer = consumer.to_string();
        self.read_with(move |conn, path| read::cursor(conn, path, &consumer))
    }

    fn set_cursor(
        &self,
        consumer: &str,
        pos: u64,
    ) -> impl Future<Output = Result<()>> + Send + 'static {
        let queued = check_consumer(consumer).map(|()| {
            let consumer = consumer.to_string();
            self.submit(1, move |ctx, tx| ops::set_cursor(ctx, tx, &consumer, pos))
        });
        async move { queued?.await }
    }

    fn append_at_cursor(
        &self,
        consumer: &str,
        pos: u64,
        events: Vec<NewEvent>,
    ) -> impl Future<Output = Result<Vec<Event>>> + Send + 'static {
        let queued = check_consumer(consumer).map(|()| {
            let consumer = consumer.to_string();
            self.submit(events.len(), move |ctx, tx| {
                ops::set_cursor(ctx, tx, &consumer, pos)?;
                if events.is_empty() {
                    Ok(Vec::new())
                } else {
                    ops::append(ctx, tx, events)
                }
            })
        });
        async move { queued?.await }
    }
}

/// The `device` table is mgmt's: open with [`Schema::Mgmt`].
impl DeviceRegistry for SqliteStore {
    fn put_device(
        &self,
        id: &NodeId,
        secret_hash: &str,
    ) -> impl Future<Output = Result<()>> + Send {
        let (id, hash) = (id.clone(), secret_hash.to_string());
        self.submit(1, move |ctx, tx| ops::put_device(ctx, tx, &id, &hash))
    }

    fn revoke_device(&self, id: &NodeId) -> impl Future<Output = Result<bool>> + Send {
        let id = id.clone();
        self.submit(1, move |ctx, tx| ops::revoke_device(ctx, tx, &id))
    }

    fn device(&self, id: &NodeId) -> Result<Option<DeviceRecord>> {
        let conn = self
            .inner
            .auth
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        read::device(&conn, &self.inner.path_str, id)
    }

    fn devices(&self) -> impl Future<Output = Result<Vec<DeviceRecord>>> + Send {
        self.read_with(read::devices)
    }

    fn set_presence(
        &self,
        id: &NodeId,
        online: bool,
        at_ms: u64,
    ) -> impl Future<Output = Result<()>> + Send {
        let id = id.clone();
        self.submit(1, move |ctx, tx| {
            ops::set_presence(ctx, tx, &id, online, at_ms)
        })
    }
}
