//! The audit log: who opened, replied to, reassigned, merged or exported
//! what, and when. Append with [`record`]; admins read it at `/admin/audit`.

use crate::ingest::now_ms;
use crossline_store::SqliteStore;
use rusqlite::{Connection, params};

/// One audit entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub id: i64,
    pub at_ms: i64,
    pub actor: String,
    pub action: String,
    pub target: String,
    pub detail: String,
}

/// Appends an entry: `actor` is a login (or `api-token`, `system`),
/// `action` a short verb like `conversation.reply`, `target` what it was
/// done to (a conversation id, a login...), `detail` anything else. A
/// failure is logged, never returned: auditing must not break the action
/// (which has already happened when this is called).
pub async fn record(store: &SqliteStore, actor: &str, action: &str, target: &str, detail: &str) {
    let (actor, action, target, detail) = (
        actor.to_string(),
        action.to_string(),
        target.to_string(),
        detail.chars().take(2000).collect::<String>(),
    );
    let at = now_ms() as i64;
    let r = store
        .write(move |tx| {
            tx.execute(
                "INSERT INTO audit_log (at_ms, actor, action, target, detail)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![at, actor, action, target, detail],
            )
        })
        .await;
    if let Err(e) = r {
        tracing::error!(error = %e, "could not write the audit log");
    }
}

/// Newest entries first, optionally before id `before` (paging), at most `limit`.
pub fn recent(
    conn: &Connection,
    before: Option<i64>,
    actor: Option<&str>,
    limit: usize,
) -> rusqlite::Result<Vec<Entry>> {
    let mut st = conn.prepare_cached(
        "SELECT id, at_ms, actor, action, target, detail FROM audit_log
         WHERE (?1 IS NULL OR id < ?1) AND (?2 IS NULL OR actor = ?2)
         ORDER BY id DESC LIMIT ?3",
    )?;
    st.query_map(params![before, actor, limit as i64], |r| {
        Ok(Entry {
            id: r.get(0)?,
            at_ms: r.get(1)?,
            actor: r.get(2)?,
            action: r.get(3)?,
            target: r.get(4)?,
            detail: r.get(5)?,
        })
    })?
    .collect()
}
