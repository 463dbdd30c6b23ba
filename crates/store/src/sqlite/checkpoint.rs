//! WAL checkpoints mostly off the writer thread.
//!
//! SQLite's automatic checkpoint runs inside the COMMIT of whichever
//! connection pushed the WAL over the limit: with one writer that is the
//! writer itself, which then copies megabytes back into the database file and
//! fsyncs it while every queued request waits. Instead:
//!
//! * the writer connection has no automatic checkpoint; a WAL hook tells it
//!   how many frames the WAL holds after each commit ([`note_frames`]);
//! * past [`StoreOptions::checkpoint_pages`](super::StoreOptions::checkpoint_pages) it pokes this module's thread, which runs a
//!   PASSIVE checkpoint on its own connection: it copies the committed frames
//!   into the database file and fsyncs it while the writer goes on committing
//!   (a passive checkpoint takes no lock the writer needs);
//! * when that pass is done, the writer runs a PASSIVE checkpoint itself
//!   between two groups. It only has the frames committed meanwhile left to
//!   copy, and because it then has backfilled the whole WAL, its next write
//!   transaction starts the WAL over from the beginning (SQLite rewinds the
//!   log when it is fully checkpointed and no reader uses it), so the WAL
//!   stays bounded under a sustained load;
//! * if the thread falls far behind (4 × the limit), the writer checkpoints
//!   on its own as SQLite would have.
//!
//! Checkpoints never touch durability: every commit is already fsynced in the
//! WAL before it is acknowledged.

use std::cell::Cell;
use std::ffi::c_int;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::thread::JoinHandle;

/// Default WAL frames (4 KiB pages) after which the WAL is copied back into
/// the database file (SQLite's default is 1000); see
/// [`StoreOptions::checkpoint_pages`](super::StoreOptions::checkpoint_pages).
pub(crate) const CHECKPOINT_PAGES: u32 = 4096;

thread_local! {
    /// Frames in the WAL after the last commit on this thread's connection
    /// (the writer's; set by the WAL hook, which runs on the committing thread).
    static WAL_FRAMES: Cell<i64> = const { Cell::new(0) };
}

/// The writer connection's WAL hook: remembers the WAL size. Installing it
/// also turns SQLite's automatic checkpoint off for that connection.
pub(crate) fn note_frames(_: &rusqlite::hooks::Wal, frames: c_int) -> rusqlite::Result<()> {
    WAL_FRAMES.with(|f| f.set(i64::from(frames)));
    Ok(())
}

/// Frames in the WAL after the writer's last commit.
pub(crate) fn frames() -> i64 {
    WAL_FRAMES.with(Cell::get)
}

/// The writer's side: pokes the thread, knows when its pass is done, stops it
/// on drop.
pub(crate) struct Checkpointer {
    poke: Option<SyncSender<()>>,
    /// Set by the thread after a pass, taken by the writer.
    passed: Arc<AtomicBool>,
    /// A pass was asked for and the writer has not taken its result yet.
    asked: bool,
    /// WAL frames that start a pass.
    pages: i64,
    thread: Option<JoinHandle<()>>,
}

impl Checkpointer {
    /// Starts the thread with its own connection on `db` (already in WAL mode).
    pub fn start(db: &Path, path_str: String, pages: u32) -> rusqlite::Result<Self> {
        let conn = rusqlite::Connection::open(db)?;
        let passed = Arc::new(AtomicBool::new(false));
        let (poke, rx) = mpsc::sync_channel(1);
        let flag = passed.clone();
        let thread = std::thread::Builder::new()
            .name("crossline-store-checkpoint".into())
            .spawn(move || run(conn, path_str, rx, flag))
            .map_err(|e| {
                rusqlite::Error::SqliteFailure(
                    rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_ERROR),
                    Some(format!("cannot start the WAL checkpoint thread: {e}")),
                )
            })?;
        Ok(Self {
            poke: Some(poke),
            passed,
            asked: false,
            pages: i64::from(pages.max(1)),
            thread: Some(thread),
        })
    }

    /// Called by the writer after each commit. Returns true when the writer
    /// should now run a PASSIVE checkpoint on its own connection.
    pub fn after_commit(&mut self) -> bool {
        let frames = frames();
        if frames < self.pages {
            // The WAL started over (or never grew): nothing pending.
            self.asked = false;
            self.passed.store(false, Ordering::Relaxed);
            return false;
        }
        if self.passed.swap(false, Ordering::AcqRel) {
            self.asked = false;
            return true;
        }
        // The thread fell far behind: checkpoint here, as SQLite would have.
        if frames >= 4 * self.pages {
            return true;
        }
        if !self.asked
            && let Some(p) = &self.poke
        {
            // Full means a pass is already requested; gone means the thread
            // died (the fallback above still bounds the WAL).
            let _ = p.try_send(());
            self.asked = true;
        }
        false
    }

    /// Stops the thread (after the pass it may be running).
    pub fn stop(&mut self) {
        self.poke = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn run(conn: rusqlite::Connection, db: String, pokes: Receiver<()>, passed: Arc<AtomicBool>) {
    while pokes.recv().is_ok() {
        let r = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
            Ok((r.get::<_, i64>(1)?, r.get::<_, i64>(2)?))
        });
        match r {
            Ok((log, done)) => {
                tracing::trace!(db = %db, log, done, "WAL checkpoint pass");
            }
            Err(e) => {
                tracing::warn!(db = %db, error = %e, "WAL checkpoint pass failed; the writer checkpoints instead");
            }
        }
        passed.store(true, Ordering::Release);
    }
    let _ = conn.close();
}
