//! Dropping every projection and building it again from the log alone
//! (`crossline-mgmt rebuild`, docs/ARCHITECTURE.md "Rebuilding the
//! projections").
//!
//! The log is the truth: every table in [`PROJECTIONS`] is written only by
//! mgmt's projector ([`super::projection::projector`]) from events, so
//! emptying them and running the projector over the log again, in the
//! order the events were stored, gives the same rows. What is not a
//! projection stays as it is: the log itself, users, sessions, the audit
//! log, canned responses, the fleet's tables, `legacy_fact` (rows from
//! before facts were events, waiting to enter the log), and the one column
//! of a projection that is not derived from events:
//! `pending_command.last_sent_ms` (when mgmt last published a command; after
//! a rebuild the commands still pending are published again, and an
//! appliance acts on a command id once).
//!
//! Routing keeps its state in memory, rebuilt from its logged decisions at
//! start ([`crate::services::routing`]); a rebuild of the tables does not touch it.

use crossline_core::contact::ContactId;
use crossline_core::routing::RoutingConfig;
use crossline_core::{ConversationId, EventBody};
use crossline_store::{NewEvent, SqliteStore, StoreError};
use rusqlite::Transaction;

/// Every projection table, children before the tables they reference (the
/// order [`clear`] empties them in).
pub const PROJECTIONS: &[&str] = &[
    "call_step",
    "call",
    "call_device",
    "timeline_entry",
    "reply_part",
    "conversation_identity",
    "conversation_note",
    "contact_merge_moved",
    "contact_merge",
    "contact_note",
    "contact_tag",
    "conversation",
    "contact_identity",
    "contact",
    "device_line",
    "pending_command",
    "command_device",
    "routing_config",
];

/// Empties every projection table.
pub fn clear(tx: &Transaction<'_>) -> rusqlite::Result<()> {
    for t in PROJECTIONS {
        tx.execute(&format!("DELETE FROM {t}"), [])?;
    }
    Ok(())
}

/// Empties every projection and projects the whole log again, in one
/// transaction (an error leaves the old projections). The store must have
/// mgmt's projector installed and nothing else may be using it (mgmt
/// stopped). Rows from before facts were events enter the log first
/// ([`import_legacy`]). Returns how many events were
/// projected.
pub async fn rebuild(store: &SqliteStore) -> Result<u64, StoreError> {
    import_legacy(store).await?;
    store.rebuild_projections(clear).await
}

/// Puts the rows written before these facts were events (kept in
/// `legacy_fact` by mgmt migration 12) into the log, once: one event per row,
/// appended in the transaction that deletes the rows; the projector writes
/// the desk tables again from them. Returns how many events were appended.
/// Run at start, before routing reads its configuration.
///
/// The events enter the log at the upgrade, not when the facts happened
/// (the log cannot be written in the past): a rebuild applies them there.
/// A merge made before the upgrade moved its contact's history without
/// recording what moved, so it cannot be undone.
pub async fn import_legacy(store: &SqliteStore) -> Result<usize, StoreError> {
    let (n, _) = store
        .append_with(|tx| {
            let rows = {
                let mut st = tx.prepare(
                    "SELECT kind, subject, other, author, text, mentions FROM legacy_fact ORDER BY n",
                )?;
                st.query_map([], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, Option<String>>(2)?,
                        r.get::<_, String>(3)?,
                        r.get::<_, String>(4)?,
                        r.get::<_, String>(5)?,
                    ))
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?
            };
            let mut events = Vec::with_capacity(rows.len());
            for (kind, subject, other, author, text, mentions) in rows {
                match legacy_event(&kind, &subject, other.as_deref(), author, text, &mentions) {
                    Some(e) => events.push(e),
                    None => tracing::warn!(
                        kind, subject, "a row from before facts were events cannot be read; left out of the log"
                    ),
                }
            }
            tx.execute("DELETE FROM legacy_fact", [])?;
            Ok((events.len(), events))
        })
        .await?;
    if n > 0 {
        tracing::info!(
            events = n,
            "notes, tags, merges and routing configs from before they were events are now in the log"
        );
    }
    Ok(n)
}

fn legacy_event(
    kind: &str,
    subject: &str,
    other: Option<&str>,
    author: String,
    text: String,
    mentions: &str,
) -> Option<NewEvent> {
    let contact = || subject.parse::<ContactId>().ok();
    let (conversation, body) = match kind {
        "note" => (
            Some(subject.parse::<ConversationId>().ok()?),
            EventBody::NoteAdded {
                author,
                text,
                mentions: mentions
                    .split(',')
                    .filter(|m| !m.is_empty())
                    .map(str::to_string)
                    .collect(),
            },
        ),
        "contact_note" => (
            None,
            EventBody::ContactNoteAdded {
                contact: contact()?,
                author,
                text,
            },
        ),
        "tag" => (
            None,
            EventBody::ContactTagged {
                contact: contact()?,
                tag: text,
                by: author,
            },
        ),
        "merge" => (
            None,
            EventBody::ContactsMerged {
                survivor: contact()?,
                merged: other?.parse().ok()?,
                by: author,
            },
        ),
        "routing_config" => (
            None,
            EventBody::RoutingConfigured {
                config: Box::new(serde_json::from_str::<RoutingConfig>(&text).ok()?),
                reset: false,
                by: author,
                replay_from_seq: Some(other?.parse().ok()?),
            },
        ),
        _ => return None,
    };
    Some(NewEvent { conversation, body })
}
