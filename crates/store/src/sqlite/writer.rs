//! The single writer thread and its group commit.
//!
//! Callers box their work as a [`Job`] and send it over a channel. The thread
//! takes the first queued job, drains whatever else is already queued (up to
//! [`MAX_GROUP_REQUESTS`] jobs or `max_group_events` events), runs them all in
//! ONE `BEGIN IMMEDIATE` transaction, each inside its own savepoint (unless it
//! is alone), commits once (one fsync for the whole group) and only then
//! replies to every caller. After a commit it may finish a WAL checkpoint
//! (see [`checkpoint`]).
//!
//! A job that fails is rolled back to its savepoint and gets its own error;
//! the rest of the group still commits. If the commit itself fails, every job
//! of the group gets the error and the in-memory state (the HLC) is put back
//! to what it was before the group, so nothing was handed out.

use super::checkpoint::{self, Checkpointer};
use super::{Shared, clone_sqlite_error};
use crate::{Result, StoreError};
use crossline_core::{ChangeSet, Event, Hlc, HlcClock, NodeId, WallClock};
use rusqlite::{Connection, Transaction, TransactionBehavior};
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::Receiver;
use tokio::sync::oneshot;

/// At most this many requests are committed in one transaction.
pub(crate) const MAX_GROUP_REQUESTS: usize = 1000;
/// By default a group stops taking requests once it holds this many events
/// (see [`StoreOptions::max_group_events`](super::StoreOptions::max_group_events)).
pub(crate) const MAX_GROUP_EVENTS: usize = 4096;

/// Applies projections for the events one request newly stored (appended
/// or ingested), inside the same transaction as the events: called once per
/// request, after its events are inserted, with all of them in seq order
/// (never with an empty slice). Duplicates are not passed again. An error
/// rolls back the whole request: the events and their projections are
/// atomic. For a domain error (not an SQLite one) return
/// `rusqlite::Error::ToSqlConversionFailure(your_error.into())`.
///
/// What the projection decided goes into the [`ChangeSet`] (each change
/// attributed to its event's index in the slice): the store keeps it with
/// the events, in the same transaction, and hands it to the log's consumers
/// ([`Feed`](crate::Feed)). The change set is the projection's answer; the
/// SQL behind it stays here, in the SQLite implementation.
///
/// Seeing a request's events together lets a projection do per batch what
/// would otherwise be done per event (one row update per conversation
/// instead of one per message); [`per_event`] adapts a projection written
/// for one event at a time (that reports no changes).
pub type Projector =
    Box<dyn Fn(&Transaction<'_>, &[Event], &mut ChangeSet) -> rusqlite::Result<()> + Send>;

/// A [`Projector`] that applies `f` to each event in turn and reports no
/// changes.
pub fn per_event<F>(f: F) -> Projector
where
    F: Fn(&Transaction<'_>, &Event) -> rusqlite::Result<()> + Send + 'static,
{
    Box::new(move |tx, events, _| events.iter().try_for_each(|ev| f(tx, ev)))
}

/// Decides whether an event replicated from another node may be stored as
/// its origin sent it. Runs on the writer thread, inside the ingest's
/// transaction (so it sees everything committed or stored before it, the
/// projections of earlier events included), once per new event (never for
/// a duplicate), before the event is stored and projected. `Ok(Err(reason))`
/// refuses it: the store keeps the event's slot as
/// [`EventBody::Refused`](crossline_core::EventBody::Refused) and goes on
/// with the next. An `Err` fails the whole request like a projector error.
/// Runs on the ingest path for every event: keep it to indexed lookups.
pub type Gate = Box<
    dyn Fn(&Transaction<'_>, &Event) -> rusqlite::Result<std::result::Result<(), String>> + Send,
>;

/// Adapts a shared wall clock to the [`WallClock`] the HLC wants by value.
pub(crate) struct SharedWall(pub Arc<dyn WallClock>);

impl WallClock for SharedWall {
    fn now_ms(&self) -> u64 {
        self.0.now_ms()
    }
}

/// What the writer thread owns besides its connection.
pub(crate) struct Ctx {
    pub path: String,
    pub local: NodeId,
    pub wall: Arc<dyn WallClock>,
    pub clock: HlcClock<SharedWall>,
    pub projector: Option<Projector>,
    /// A group stops taking requests once it holds this many events.
    pub max_group_events: usize,
    /// See [`StoreOptions::gate`](super::StoreOptions::gate).
    pub gate: Option<Gate>,
    /// See [`StoreOptions::max_clock_skew`](super::StoreOptions::max_clock_skew), in ms.
    pub max_skew_ms: u64,
}

impl Ctx {
    pub fn new(
        path: String,
        local: NodeId,
        wall: Arc<dyn WallClock>,
        last: Hlc,
        projector: Option<Projector>,
        max_group_events: usize,
    ) -> Self {
        let clock = HlcClock::resume(SharedWall(wall.clone()), last);
        Self {
            path,
            local,
            wall,
            clock,
            projector,
            max_group_events: max_group_events.max(1),
            gate: None,
            max_skew_ms: u64::try_from(super::DEFAULT_MAX_CLOCK_SKEW.as_millis())
                .unwrap_or(u64::MAX),
        }
    }

    /// Installs the checks every ingested event passes.
    pub fn with_ingest_checks(mut self, gate: Option<Gate>, max_skew: std::time::Duration) -> Self {
        self.gate = gate;
        self.max_skew_ms = u64::try_from(max_skew.as_millis()).unwrap_or(u64::MAX);
        self
    }

    /// Puts the clock back to `last` (after a rollback nothing was handed out).
    fn reset_clock(&mut self, last: Hlc) {
        self.clock = HlcClock::resume(SharedWall(self.wall.clone()), last);
    }

    pub fn sql(&self, source: rusqlite::Error) -> StoreError {
        StoreError::Sqlite {
            path: self.path.clone(),
            source,
        }
    }
}

/// One request to the writer.
pub(crate) trait Job: Send {
    /// Events it writes (for the group cap); at least 1.
    fn weight(&self) -> usize;
    /// Runs inside the group's transaction and its own savepoint. `false`
    /// means it failed and its savepoint must be rolled back.
    fn run(&mut self, ctx: &mut Ctx, tx: &Transaction<'_>) -> bool;
    /// Replies to the caller once the group is over: `commit` is the outcome
    /// of the group's commit.
    fn finish(self: Box<Self>, commit: std::result::Result<(), &rusqlite::Error>, path: &str);
}

pub(crate) enum Msg {
    Job(Box<dyn Job>),
    Shutdown,
}

/// A [`Job`] made of a closure and the oneshot its result goes to.
pub(crate) struct Task<T, F> {
    work: Option<F>,
    weight: usize,
    outcome: Option<Result<T>>,
    reply: oneshot::Sender<Result<T>>,
}

impl<T, F> Task<T, F> {
    pub fn new(weight: usize, work: F, reply: oneshot::Sender<Result<T>>) -> Self {
        Self {
            work: Some(work),
            weight: weight.max(1),
            outcome: None,
            reply,
        }
    }
}

impl<T, F> Job for Task<T, F>
where
    T: Send,
    F: FnOnce(&mut Ctx, &Transaction<'_>) -> Result<T> + Send,
{
    fn weight(&self) -> usize {
        self.weight
    }

    fn run(&mut self, ctx: &mut Ctx, tx: &Transaction<'_>) -> bool {
        let Some(work) = self.work.take() else {
            return false;
        };
        // A panic in a caller-supplied closure (projector, `write`) must not
        // kill the writer: it fails this request only.
        match std::panic::catch_unwind(AssertUnwindSafe(|| work(ctx, tx))) {
            Ok(r) => {
                let ok = r.is_ok();
                self.outcome = Some(r);
                ok
            }
            Err(_) => {
                self.outcome = Some(Err(StoreError::Invalid(format!(
                    "database {}: a write request panicked in the writer thread; it was rolled back",
                    ctx.path
                ))));
                false
            }
        }
    }

    fn finish(self: Box<Self>, commit: std::result::Result<(), &rusqlite::Error>, path: &str) {
        let reply = match (self.outcome, commit) {
            (Some(Err(e)), _) => Err(e),
            (Some(Ok(v)), Ok(())) => Ok(v),
            (_, Err(e)) => Err(StoreError::Sqlite {
                path: path.to_string(),
                source: clone_sqlite_error(e),
            }),
            (None, Ok(())) => Err(StoreError::WriterGone),
        };
        // The caller may have gone away (dropped its future): nothing to do.
        let _ = self.reply.send(reply);
    }
}

/// The writer thread's body. Returns when it receives [`Msg::Shutdown`] or
/// every sender is gone, after a final WAL checkpoint.
pub(crate) fn run(
    mut conn: Connection,
    mut ctx: Ctx,
    rx: Receiver<Msg>,
    shared: Arc<Shared>,
    mut checkpointer: Checkpointer,
) -> rusqlite::Result<()> {
    // WAL size after each commit; also turns SQLite's automatic checkpoint
    // (which would run inside our commits) off.
    conn.wal_hook(Some(checkpoint::note_frames));
    let mut stop = false;
    while !stop {
        let Ok(first) = rx.recv() else { break };
        let mut jobs: Vec<Box<dyn Job>> = Vec::new();
        let mut weight = 0usize;
        let mut next = Some(first);
        while let Some(m) = next.take() {
            match m {
                Msg::Job(j) => {
                    weight += j.weight();
                    jobs.push(j);
                }
                Msg::Shutdown => {
                    stop = true;
                    break;
                }
            }
            if jobs.len() < MAX_GROUP_REQUESTS && weight < ctx.max_group_events {
                next = rx.try_recv().ok();
            }
        }
        shared
            .queued
            .fetch_sub(jobs.len() as u64, Ordering::Relaxed);
        if !jobs.is_empty()
            && commit_group(&mut conn, &mut ctx, jobs, &shared)
            && checkpointer.after_commit()
        {
            checkpoint_here(&conn, &ctx.path, "PASSIVE");
        }
    }
    checkpointer.stop();
    // Every commit is already durable; the checkpoint only folds the WAL back
    // into the main file so the next open starts from a small WAL.
    checkpoint_here(&conn, &ctx.path, "TRUNCATE");
    conn.close().map_err(|(_, e)| e)
}

/// A checkpoint on the writer's own connection (see [`checkpoint`]).
fn checkpoint_here(conn: &Connection, path: &str, mode: &str) {
    let r = conn.query_row(&format!("PRAGMA wal_checkpoint({mode})"), [], |r| {
        r.get::<_, i64>(0)
    });
    match r {
        Ok(0) => {}
        Ok(_) => tracing::debug!(db = %path, mode, "WAL checkpoint incomplete (readers active)"),
        Err(e) => tracing::warn!(db = %path, mode, error = %e, "WAL checkpoint failed"),
    }
}

/// Runs one group in one transaction; returns whether something was
/// committed.
fn commit_group(
    conn: &mut Connection,
    ctx: &mut Ctx,
    mut jobs: Vec<Box<dyn Job>>,
    shared: &Shared,
) -> bool {
    let n = jobs.len() as u64;
    shared.requests.fetch_add(n, Ordering::Relaxed);
    shared.largest_group.fetch_max(n, Ordering::Relaxed);
    let before = ctx.clock.last();
    let tx = match conn.transaction_with_behavior(TransactionBehavior::Immediate) {
        Ok(tx) => tx,
        Err(e) => {
            tracing::warn!(db = %ctx.path, error = %e, requests = n, "cannot begin a write transaction");
            shared.failed_requests.fetch_add(n, Ordering::Relaxed);
            for job in jobs {
                job.finish(Err(&e), &ctx.path);
            }
            return false;
        }
    };
    // A request alone in its group needs no savepoint: if it fails, the
    // whole transaction is rolled back, which undoes exactly that request.
    // (A savepoint makes SQLite copy every page it touches that an earlier
    // request already changed into a statement journal.)
    let alone = jobs.len() == 1;
    let mut aborted: Option<rusqlite::Error> = None;
    let mut failed = 0u64;
    for job in jobs.iter_mut() {
        if !alone && let Err(e) = savepoint(&tx, "SAVEPOINT request") {
            aborted = Some(e);
            break;
        }
        let mark = ctx.clock.last();
        let step = if job.run(ctx, &tx) {
            if alone {
                Ok(())
            } else {
                savepoint(&tx, "RELEASE request")
            }
        } else {
            failed += 1;
            ctx.reset_clock(mark);
            if alone {
                Ok(())
            } else {
                savepoint(&tx, "ROLLBACK TO request")
                    .and_then(|()| savepoint(&tx, "RELEASE request"))
            }
        };
        if let Err(e) = step {
            aborted = Some(e);
            break;
        }
    }
    let nothing_left = alone && failed == 1;
    let result = match aborted {
        // Dropping the transaction rolls it back.
        Some(e) => {
            drop(tx);
            Err(e)
        }
        // The only request failed: roll back (its own error is its answer).
        None if nothing_left => {
            drop(tx);
            Ok(())
        }
        None => tx.commit(),
    };
    match &result {
        Ok(()) => {
            if !nothing_left {
                shared.commits.fetch_add(1, Ordering::Relaxed);
                // The log's consumers learn of what was committed only now.
                match read_head(conn) {
                    Ok(head) => {
                        shared.head.send_if_modified(|h| {
                            let moved = head > *h;
                            *h = (*h).max(head);
                            moved
                        });
                    }
                    Err(e) => {
                        tracing::warn!(db = %ctx.path, error = %e, "cannot read the log's head position after a commit")
                    }
                }
            }
            shared.failed_requests.fetch_add(failed, Ordering::Relaxed);
            let mut last = shared
                .last_hlc
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            *last = ctx.clock.last();
        }
        Err(e) => {
            tracing::warn!(db = %ctx.path, error = %e, requests = n, "group commit failed; every request of the group fails");
            shared.failed_requests.fetch_add(n, Ordering::Relaxed);
            ctx.reset_clock(before);
        }
    }
    let commit = result.as_ref().map(|_| ());
    for job in jobs {
        job.finish(commit, &ctx.path);
    }
    result.is_ok() && !nothing_left
}

/// The position of the newest stored event (0: none).
pub(crate) fn read_head(conn: &Connection) -> rusqlite::Result<u64> {
    let v: Option<i64> = conn
        .prepare_cached("SELECT max(pos) FROM event")?
        .query_row([], |r| r.get(0))?;
    Ok(v.and_then(|v| u64::try_from(v).ok()).unwrap_or(0))
}

/// Runs a savepoint statement (prepared once per connection).
fn savepoint(tx: &Transaction<'_>, sql: &str) -> rusqlite::Result<()> {
    tx.prepare_cached(sql)?.execute([]).map(|_| ())
}
