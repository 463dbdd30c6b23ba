//! The audit log: who opened, replied to, reassigned, merged or exported
//! what, and when. Append with [`record`]; admins read it at `/admin/audit`.
//! Stored through [`AuditRepo`].

use super::repo::AuditRepo;
use crate::clock::now_ms;

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

/// An entry to append (the store gives it its id).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEntry {
    pub at_ms: i64,
    pub actor: String,
    pub action: String,
    pub target: String,
    pub detail: String,
}

/// The longest detail kept, in characters.
const MAX_DETAIL_CHARS: usize = 2000;

/// Appends an entry: `actor` is a login (or `api-token`, `system`),
/// `action` a short verb like `conversation.reply`, `target` what it was
/// done to (a conversation id, a login...), `detail` anything else. A
/// failure is logged, never returned: auditing must not break the action
/// (which has already happened when this is called).
pub async fn record(repo: &dyn AuditRepo, actor: &str, action: &str, target: &str, detail: &str) {
    let entry = NewEntry {
        at_ms: now_ms() as i64,
        actor: actor.to_string(),
        action: action.to_string(),
        target: target.to_string(),
        detail: detail.chars().take(MAX_DETAIL_CHARS).collect(),
    };
    if let Err(e) = repo.append(entry).await {
        tracing::error!(error = %e, action, target, "could not write the audit log");
    }
}

/// Newest entries first, optionally before id `before` (paging), at most `limit`.
pub async fn recent(
    repo: &dyn AuditRepo,
    before: Option<i64>,
    actor: Option<&str>,
    limit: usize,
) -> crossline_store::Result<Vec<Entry>> {
    repo.recent_entries(before, actor.map(str::to_string), limit)
        .await
}
