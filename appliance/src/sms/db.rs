//! The appliance's own SMS tables (migration 0003) and the projector that
//! keeps them in step with the log, in the same transaction as each event.
//!
//! * `appl_sms_in (line, key) → seq`: written by the projector when a
//!   `MessageReceived` with a key is appended. Its primary key makes a second
//!   append of the same key fail as a whole: a message is never logged twice.
//! * `appl_command`: persisted by [`claim_command`] / [`claim_auto_reply`]
//!   before acting; its `state` moves to `sent` / `failed` / `unknown` by the
//!   projector when the outcome event is appended (atomic with it).
//! * `appl_sms_part (line, TP-MR) → (command, part)`: written by the projector
//!   from `MessageSent.refs`, removed when the part's final report is logged.
//! * `appl_auto_reply (customer) → at_ms`: claimed in the same transaction as
//!   the auto-reply's command row.

use crate::log::LocalLog;
use crossline_core::{DeliveryState, Event, EventBody, EventId, NodeId};
use crossline_proto::CommandKind;
use crossline_store::{Projector, SqliteStore, StoreOptions};
use rusqlite::{OptionalExtension, Transaction, params};
use std::path::Path;

/// Opens the appliance's database with the SMS projector installed.
pub fn open_store(path: &Path, node: NodeId) -> crossline_store::Result<SqliteStore> {
    SqliteStore::open_with(
        path,
        node,
        StoreOptions {
            projector: Some(projector()),
            ..StoreOptions::default()
        },
    )
}

/// The projector: keeps the SMS tables in step with appended events.
pub fn projector() -> Projector {
    crossline_store::per_event(project)
}

fn project(tx: &Transaction<'_>, ev: &Event) -> rusqlite::Result<()> {
    match &ev.body {
        EventBody::MessageReceived {
            line,
            key: Some(key),
            ..
        } => {
            tx.prepare_cached("INSERT INTO appl_sms_in (line, key, seq) VALUES (?1, ?2, ?3)")?
                .execute(params![line, key, seq_i64(ev.seq)])?;
        }
        EventBody::MessageSent {
            line,
            command,
            refs,
            ..
        } => {
            set_state(tx, command, "sent")?;
            let mut st = tx.prepare_cached(
                "INSERT INTO appl_sms_part (line, mr, command, part) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (line, mr) DO UPDATE SET command = excluded.command, part = excluded.part",
            )?;
            for (i, mr) in refs.iter().enumerate() {
                st.execute(params![line, mr, command.to_string(), i as i64 + 1])?;
            }
        }
        EventBody::DeliveryStatus {
            command,
            part: None,
            state,
            ..
        } => match state {
            DeliveryState::Failed => set_state(tx, command, "failed")?,
            DeliveryState::Unknown => set_state(tx, command, "unknown")?,
            DeliveryState::Sent | DeliveryState::Delivered => set_state(tx, command, "sent")?,
        },
        EventBody::DeliveryStatus {
            command,
            part: Some(part),
            state: DeliveryState::Delivered | DeliveryState::Failed,
            ..
        } => {
            tx.prepare_cached("DELETE FROM appl_sms_part WHERE command = ?1 AND part = ?2")?
                .execute(params![command.to_string(), part])?;
        }
        _ => {}
    }
    Ok(())
}

fn seq_i64(seq: u64) -> i64 {
    i64::try_from(seq).unwrap_or(i64::MAX)
}

fn set_state(tx: &Transaction<'_>, command: &EventId, state: &str) -> rusqlite::Result<()> {
    tx.prepare_cached("UPDATE appl_command SET state = ?2 WHERE id = ?1")?
        .execute(params![command.to_string(), state])?;
    Ok(())
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// The seq of the `MessageReceived` already logged for `(line, key)`.
pub async fn received_seq(
    log: &LocalLog<SqliteStore>,
    line: &str,
    key: &str,
) -> crossline_store::Result<Option<u64>> {
    let (line, key) = (line.to_string(), key.to_string());
    log.store()
        .read(move |c| {
            c.prepare_cached("SELECT seq FROM appl_sms_in WHERE line = ?1 AND key = ?2")?
                .query_row(params![line, key], |r| r.get::<_, i64>(0))
                .optional()
        })
        .await
        .map(|v| v.and_then(|s| u64::try_from(s).ok()))
}

/// Persists a command from mgmt in state `sending`. `false`: this id was
/// already persisted (a duplicate delivery), nothing was written.
pub async fn claim_command(
    log: &LocalLog<SqliteStore>,
    id: EventId,
    kind: &CommandKind,
) -> crossline_store::Result<bool> {
    let json = serde_json::to_string(kind).unwrap_or_default();
    log.store()
        .write(move |tx| {
            let n = tx
                .prepare_cached(
                    "INSERT INTO appl_command (id, kind, state, auto_reply, received_ms)
                     VALUES (?1, ?2, 'sending', 0, ?3) ON CONFLICT (id) DO NOTHING",
                )?
                .execute(params![id.to_string(), json, now_ms()])?;
            Ok(n == 1)
        })
        .await
}

/// Claims the auto-reply window of `customer` and persists the auto-reply
/// as a command, in one transaction. `false`: the customer already got one
/// within `window_ms`; nothing was written.
pub async fn claim_auto_reply(
    log: &LocalLog<SqliteStore>,
    id: EventId,
    customer: &str,
    kind: &CommandKind,
    window_ms: u64,
) -> crossline_store::Result<bool> {
    let json = serde_json::to_string(kind).unwrap_or_default();
    let customer = customer.to_string();
    let window = i64::try_from(window_ms).unwrap_or(i64::MAX);
    log.store()
        .write(move |tx| {
            let now = now_ms();
            let last: Option<i64> = tx
                .prepare_cached("SELECT at_ms FROM appl_auto_reply WHERE customer = ?1")?
                .query_row([&customer], |r| r.get(0))
                .optional()?;
            if last.is_some_and(|t| now.saturating_sub(t) < window) {
                return Ok(false);
            }
            tx.prepare_cached(
                "INSERT INTO appl_auto_reply (customer, at_ms) VALUES (?1, ?2)
                 ON CONFLICT (customer) DO UPDATE SET at_ms = excluded.at_ms",
            )?
            .execute(params![customer, now])?;
            tx.prepare_cached(
                "INSERT INTO appl_command (id, kind, state, auto_reply, received_ms)
                 VALUES (?1, ?2, 'sending', 1, ?3)",
            )?
            .execute(params![id.to_string(), json, now])?;
            Ok(true)
        })
        .await
}

/// A command persisted without a recorded outcome.
#[derive(Debug, Clone)]
pub struct Unfinished {
    pub id: String,
    /// `CommandKind` as JSON.
    pub kind: String,
    /// `sending` (a crash mid-send) or `queued` (stopped before anything was sent).
    pub state: String,
    pub auto_reply: bool,
}

/// Commands persisted but without a recorded outcome, oldest first.
pub async fn unfinished_commands(
    log: &LocalLog<SqliteStore>,
) -> crossline_store::Result<Vec<Unfinished>> {
    log.store()
        .read(|c| {
            let mut st = c.prepare_cached(
                "SELECT id, kind, state, auto_reply FROM appl_command
                 WHERE state IN ('sending', 'queued') ORDER BY received_ms",
            )?;
            let rows = st.query_map([], |r| {
                Ok(Unfinished {
                    id: r.get(0)?,
                    kind: r.get(1)?,
                    state: r.get(2)?,
                    auto_reply: r.get(3)?,
                })
            })?;
            rows.collect()
        })
        .await
}

/// Moves a command between `sending` and `queued` (nothing was sent).
pub async fn set_command_state(
    log: &LocalLog<SqliteStore>,
    id: EventId,
    from: &'static str,
    to: &'static str,
) -> crossline_store::Result<bool> {
    log.store()
        .write(move |tx| {
            tx.prepare_cached("UPDATE appl_command SET state = ?3 WHERE id = ?1 AND state = ?2")?
                .execute(params![id.to_string(), from, to])
                .map(|n| n == 1)
        })
        .await
}

/// The state of a command (`sending`, `sent`, `failed`, `unknown`), if known.
pub async fn command_state(
    log: &LocalLog<SqliteStore>,
    id: EventId,
) -> crossline_store::Result<Option<String>> {
    log.store()
        .read(move |c| {
            c.prepare_cached("SELECT state FROM appl_command WHERE id = ?1")?
                .query_row([id.to_string()], |r| r.get(0))
                .optional()
        })
        .await
}

/// The command and 1-based part a delivery report on `(line, mr)` is about.
pub async fn part_for_report(
    log: &LocalLog<SqliteStore>,
    line: &str,
    mr: u8,
) -> crossline_store::Result<Option<(String, u16)>> {
    let line = line.to_string();
    log.store()
        .read(move |c| {
            c.prepare_cached("SELECT command, part FROM appl_sms_part WHERE line = ?1 AND mr = ?2")?
                .query_row(params![line, mr], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()
        })
        .await
}
