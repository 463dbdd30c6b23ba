//! The SQLite implementation of the services' repository traits, on
//! [`SqliteStore`](crossline_store::SqliteStore): writes go through its one
//! writer (group commit), reads through its read pool. The tables are
//! mgmt's migrations in `crates/store/src/sqlite/migrations/mgmt/`.

pub mod conversations;
pub mod fleet;
pub mod projection;
pub mod rebuild;
pub mod recordings;
pub mod routing;
pub mod users;

use crate::services::RepoFuture;
use crossline_store::SqliteStore;
use rusqlite::{Connection, Transaction};

/// Runs `f` in the writer's transaction, as a [`RepoFuture`].
pub(crate) fn write<T, F>(store: &SqliteStore, f: F) -> RepoFuture<T>
where
    T: Send + 'static,
    F: FnOnce(&Transaction<'_>) -> rusqlite::Result<T> + Send + 'static,
{
    Box::pin(store.write(f))
}

/// Runs `f` on a pooled read connection, as a [`RepoFuture`].
pub(crate) fn read<T, F>(store: &SqliteStore, f: F) -> RepoFuture<T>
where
    T: Send + 'static,
    F: FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
{
    Box::pin(store.read(f))
}

/// A fresh mgmt database in `dir`, for the repositories' tests.
#[cfg(test)]
#[allow(clippy::unwrap_used)]
pub(crate) fn test_store(dir: &tempfile::TempDir) -> SqliteStore {
    SqliteStore::open_with(
        &dir.path().join("mgmt.db"),
        crossline_core::NodeId::new("mgmt").unwrap(),
        crossline_store::StoreOptions {
            schema: crossline_store::Schema::Mgmt,
            ..crossline_store::StoreOptions::default()
        },
    )
    .unwrap()
}
