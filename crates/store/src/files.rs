//! Data files for their owner only: the data directory 0700, the database
//! and its `-wal`/`-shm` 0600 (like the secrets beside them). SQLite gives
//! `-wal` and `-shm` the mode of the database file, so creating the database
//! 0600 is enough for new ones; an existing database that others may read is
//! narrowed to 0600 when it is opened.

use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// Mode of the data directory.
pub const DIR_MODE: u32 = 0o700;
/// Mode of the database and its `-wal` and `-shm` files.
pub const FILE_MODE: u32 = 0o600;

/// Creates `dir` (and missing parents) with mode 0700. A directory that
/// already exists is left as it is (it may be one the administrator chose).
pub fn create_private_dir(dir: &Path) -> io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(DIR_MODE)
        .create(dir)
}

/// Makes the database at `path` private before SQLite opens it: created
/// empty with mode 0600 when absent; the database and an existing `-wal`
/// and `-shm` narrowed to 0600 when group or others may access them.
pub fn private_database(path: &Path) -> io::Result<()> {
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(FILE_MODE)
        .open(path)
    {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e),
    }
    for suffix in ["", "-wal", "-shm"] {
        let mut name = path.as_os_str().to_owned();
        name.push(suffix);
        let p = Path::new(&name);
        match std::fs::metadata(p) {
            Ok(m) if m.permissions().mode() & 0o077 != 0 => {
                std::fs::set_permissions(p, std::fs::Permissions::from_mode(FILE_MODE))?;
                tracing::info!(file = %p.display(), "database file was readable by others; now 0600");
            }
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[tokio::test]
    async fn data_dir_and_database_files_are_private() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("data").join("mgmt");
        create_private_dir(&dir).unwrap();
        assert_eq!(mode(&dir), 0o700);
        let db = dir.join("x.db");
        let store =
            crate::SqliteStore::open(&db, crossline_core::NodeId::new("n1").unwrap()).unwrap();
        store
            .write(|tx| tx.execute_batch("CREATE TABLE t (x)"))
            .await
            .unwrap();
        for f in ["x.db", "x.db-wal", "x.db-shm"] {
            assert_eq!(mode(&dir.join(f)), 0o600, "{f}");
        }
        store.close().unwrap();
        // One left readable by everybody (an older version) is narrowed.
        std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o644)).unwrap();
        let store =
            crate::SqliteStore::open(&db, crossline_core::NodeId::new("n1").unwrap()).unwrap();
        assert_eq!(mode(&db), 0o600);
        store.close().unwrap();
    }
}
