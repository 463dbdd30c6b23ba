//! Storage: the implementations of the repository traits that services
//! declare (`services::users::repo`, ...). SQLite now ([`sqlite`]); a
//! PostgreSQL module would implement the same traits. Nothing outside this
//! room should need rusqlite for the aggregates that moved here (see
//! docs/ARCHITECTURE.md, "mgmt inside").

pub mod sqlite;

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::path::Path;

    /// Services, surfaces and live updates: none of their files may use
    /// rusqlite (all SQL lives in `storage::sqlite`).
    const BEHIND_TRAITS: &[&str] = &["src/services", "src/http", "src/live.rs", "src/ingest"];

    fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                rust_files(&p, out);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }

    #[test]
    fn services_behind_repository_traits_use_no_sql() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut files = Vec::new();
        for dir in BEHIND_TRAITS {
            let p = root.join(dir);
            if p.is_dir() {
                rust_files(&p, &mut files);
            } else {
                files.push(p);
            }
        }
        assert!(!files.is_empty());
        for f in files {
            let text = std::fs::read_to_string(&f).unwrap();
            assert!(
                !text.contains("rusqlite"),
                "{} uses rusqlite: its SQL belongs in mgmt/src/storage/sqlite/",
                f.display()
            );
        }
    }
}
