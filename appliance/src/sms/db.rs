//! The appliance's own SMS tables (the store's appliance migrations, `crates/store/src/sqlite/migrations/appliance/`) and the projector that
//! keeps them in step with the log, in the same transaction as each event.
//!
//! * `appl_sms_in (line, key) → seq`: written by the projector when a
//!   `MessageReceived` with a key is appended. Its primary key makes a second
//!   append of the same key fail as a whole: a message is never logged twice.
//! * `appl_command`: persisted by [`claim_command`] / [`claim_auto_reply`]
//!   before acting; its `state` moves to `sent` / `failed` / `unknown` by the
//!   projector when the outcome event is appended (atomic with it).
//! * `appl_sms_sent_part (command, part) → (line, TP-MR, recipient, seq,
//!   sent_ms)`: written by the projector from `MessageSent.refs`, removed
//!   when the part's final report (or its `no_report`) is logged. TP-MR is
//!   one octet and is reused (a wrap after 256 parts, a modem reset), so a
//!   report goes to the newest part with its line, TP-MR and recipient
//!   ([`part_for_report`]). The parts such a newer one supersedes are marked
//!   (`superseded_by`) in the newer MessageSent's transaction; they and parts
//!   past the report window are found by [`expired_parts`].
//! * `appl_auto_reply (customer) → at_ms`: claimed in the same transaction as
//!   the auto-reply's command row.

use crate::log::LocalLog;
use crossline_core::{DeliveryState, Event, EventBody, EventId, NodeId};
use crossline_proto::CommandKind;
use crossline_store::{Projector, Schema, SqliteStore, StoreOptions};
use rusqlite::{OptionalExtension, Transaction, params};
use std::path::Path;

/// Opens the appliance's database with the SMS projector installed.
pub fn open_store(path: &Path, node: NodeId) -> crossline_store::Result<SqliteStore> {
    SqliteStore::open_with(
        path,
        node,
        StoreOptions {
            schema: Schema::Appliance,
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
            to,
            command,
            refs,
            ..
        } => {
            set_state(tx, command, "sent")?;
            let mut st = tx.prepare_cached(
                "INSERT INTO appl_sms_sent_part (command, part, line, mr, recipient, seq, sent_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                 ON CONFLICT (command, part) DO NOTHING",
            )?;
            let sent_ms = i64::try_from(ev.at.ms).unwrap_or(i64::MAX);
            for (i, mr) in refs.iter().enumerate() {
                supersede(tx, line, *mr, to, command, seq_i64(ev.seq))?;
                st.execute(params![
                    command.to_string(),
                    i as i64 + 1,
                    line,
                    mr,
                    to,
                    seq_i64(ev.seq),
                    sent_ms
                ])?;
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
            DeliveryState::Sent | DeliveryState::Delivered | DeliveryState::NoReport => {
                set_state(tx, command, "sent")?
            }
        },
        EventBody::DeliveryStatus {
            command,
            part: Some(part),
            state,
            ..
        } => {
            if *state != DeliveryState::Sent {
                tx.prepare_cached(
                    "DELETE FROM appl_sms_sent_part WHERE command = ?1 AND part = ?2",
                )?
                .execute(params![command.to_string(), part])?;
            }
            if matches!(state, DeliveryState::Failed | DeliveryState::Unknown) {
                // A part that failed before the message was sent (the modem
                // refused it): the command's outcome. After MessageSent
                // (state 'sent') it is a delivery report and changes nothing.
                tx.prepare_cached(
                    "UPDATE appl_command SET state = ?2 WHERE id = ?1 AND state = 'sending'",
                )?
                .execute(params![
                    command.to_string(),
                    if *state == DeliveryState::Failed {
                        "failed"
                    } else {
                        "unknown"
                    }
                ])?;
            }
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

/// Milliseconds since the epoch.
pub(crate) fn now_ms() -> i64 {
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

/// A sent part waiting for its delivery report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WaitingPart {
    pub command: String,
    /// 1-based.
    pub part: u16,
    pub line: String,
    pub mr: u8,
    pub recipient: String,
    pub seq: i64,
    pub sent_ms: i64,
}

/// Marks every older part still waiting on `(line, mr)` for `to` as
/// superseded by `command`: its report can no longer be told apart from the
/// newer one's, so it goes to the newer ([`part_for_report`]) and the older
/// is logged `no_report` ([`expired_parts`]). Done in the MessageSent's own
/// transaction, so it cannot miss a newer part whose report already came.
fn supersede(
    tx: &Transaction<'_>,
    line: &str,
    mr: u8,
    to: &str,
    command: &EventId,
    seq: i64,
) -> rusqlite::Result<()> {
    let older: Vec<(String, u16, String)> = tx
        .prepare_cached(
            "SELECT command, part, recipient FROM appl_sms_sent_part
             WHERE line = ?1 AND mr = ?2 AND seq < ?3 AND superseded_by IS NULL",
        )?
        .query_map(params![line, mr, seq], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })?
        .collect::<rusqlite::Result<_>>()?;
    let mut mark = tx.prepare_cached(
        "UPDATE appl_sms_sent_part SET superseded_by = ?3 WHERE command = ?1 AND part = ?2",
    )?;
    for (c, part, recipient) in older {
        if recipient.is_empty() || to.is_empty() || crossline_modem::same_number(&recipient, to) {
            mark.execute(params![c, part, command.to_string()])?;
        }
    }
    Ok(())
}

fn waiting_part(r: &rusqlite::Row<'_>) -> rusqlite::Result<WaitingPart> {
    Ok(WaitingPart {
        command: r.get(0)?,
        part: r.get(1)?,
        line: r.get(2)?,
        mr: r.get(3)?,
        recipient: r.get(4)?,
        seq: r.get(5)?,
        sent_ms: r.get(6)?,
    })
}

const WAITING_COLUMNS: &str = "command, part, line, mr, recipient, seq, sent_ms";

/// Whether `to` (a report's recipient) is the number a part was sent to; an
/// unknown recipient (a part waiting since before version 13) matches any.
fn same_recipient(part: &WaitingPart, to: &str) -> bool {
    part.recipient.is_empty() || crossline_modem::same_number(&part.recipient, to)
}

/// The part a delivery report on `(line, mr)` for `recipient` is about: the
/// newest part still waiting with that line, TP-MR and recipient, sent
/// after `since_ms` (the start of the line's report window).
pub async fn part_for_report(
    log: &LocalLog<SqliteStore>,
    line: &str,
    mr: u8,
    recipient: &str,
    since_ms: i64,
) -> crossline_store::Result<Option<WaitingPart>> {
    let (line, recipient) = (line.to_string(), recipient.to_string());
    log.store()
        .read(move |c| {
            let sql = format!(
                "SELECT {WAITING_COLUMNS} FROM appl_sms_sent_part
                 WHERE line = ?1 AND mr = ?2 AND sent_ms >= ?3 AND superseded_by IS NULL
                 ORDER BY seq DESC, part DESC"
            );
            let mut st = c.prepare_cached(&sql)?;
            let rows = st.query_map(params![line, mr, since_ms], waiting_part)?;
            for row in rows {
                let p = row?;
                if same_recipient(&p, &recipient) {
                    return Ok(Some(p));
                }
            }
            Ok(None)
        })
        .await
}

/// Whether part `part` of `command` is waiting for its report.
pub async fn is_waiting(
    log: &LocalLog<SqliteStore>,
    command: &str,
    part: u16,
) -> crossline_store::Result<bool> {
    let command = command.to_string();
    log.store()
        .read(move |c| {
            c.prepare_cached("SELECT 1 FROM appl_sms_sent_part WHERE command = ?1 AND part = ?2")?
                .query_row(params![command, part], |_| Ok(()))
                .optional()
                .map(|r| r.is_some())
        })
        .await
}

/// Why a waiting part will never get its report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expiry {
    /// A newer part on the same line took the same TP-MR to the same
    /// number: a report can no longer be told apart (it goes to the newer).
    Superseded { by_command: String },
    /// Sent before the start of the line's report window.
    TooOld,
}

/// Which waiting parts [`expired_parts`] looks at.
#[derive(Debug, Clone)]
pub enum Scope {
    /// Every part: superseded ones, and those past their window.
    All,
    /// Only parts superseded on these message references of one line (what a
    /// send that just took them can have superseded).
    Refs { line: String, mrs: Vec<u8> },
}

/// Waiting parts that will never get their report: superseded by a newer
/// part with the same line, TP-MR and recipient, or (scope `All`) sent
/// before `window_start(line)` (milliseconds).
pub async fn expired_parts(
    log: &LocalLog<SqliteStore>,
    scope: Scope,
    window_start: impl Fn(&str) -> i64 + Send + 'static,
) -> crossline_store::Result<Vec<(WaitingPart, Expiry)>> {
    log.store()
        .read(move |c| {
            let mut out = Vec::new();
            // Parts a newer send took the TP-MR of (marked by the projector).
            let by_row = |r: &rusqlite::Row<'_>| Ok((waiting_part(r)?, r.get::<_, String>(7)?));
            let mut superseded = Vec::new();
            match &scope {
                Scope::All => {
                    let sql = format!(
                        "SELECT {WAITING_COLUMNS}, superseded_by FROM appl_sms_sent_part
                         WHERE superseded_by IS NOT NULL ORDER BY line, mr, seq"
                    );
                    let mut st = c.prepare_cached(&sql)?;
                    for p in st.query_map([], by_row)? {
                        superseded.push(p?);
                    }
                }
                Scope::Refs { line, mrs } => {
                    let sql = format!(
                        "SELECT {WAITING_COLUMNS}, superseded_by FROM appl_sms_sent_part
                         WHERE line = ?1 AND mr = ?2 AND superseded_by IS NOT NULL ORDER BY seq"
                    );
                    let mut st = c.prepare_cached(&sql)?;
                    for mr in mrs {
                        for p in st.query_map(params![line, mr], by_row)? {
                            superseded.push(p?);
                        }
                    }
                }
            }
            for (p, by_command) in superseded {
                out.push((p, Expiry::Superseded { by_command }));
            }
            if matches!(scope, Scope::Refs { .. }) {
                return Ok(out);
            }
            let sql = format!(
                "SELECT {WAITING_COLUMNS} FROM appl_sms_sent_part ORDER BY sent_ms LIMIT 1000"
            );
            let mut st = c.prepare_cached(&sql)?;
            let oldest = st.query_map([], waiting_part)?;
            for p in oldest {
                let p = p?;
                if p.sent_ms >= window_start(&p.line) {
                    continue;
                }
                if !out
                    .iter()
                    .any(|(o, _)| o.command == p.command && o.part == p.part)
                {
                    out.push((p, Expiry::TooOld));
                }
            }
            Ok(out)
        })
        .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crossline_core::Channel;
    use crossline_store::NewEvent;

    fn sent(command: EventId, to: &str, refs: Vec<u8>) -> NewEvent {
        NewEvent {
            conversation: None,
            body: EventBody::MessageSent {
                channel: Channel::Sms,
                line: "gsm0".into(),
                to: to.into(),
                text: "x".into(),
                command,
                refs,
                auto_reply: false,
            },
        }
    }

    fn delivered(command: EventId, part: u16) -> NewEvent {
        NewEvent {
            conversation: None,
            body: EventBody::DeliveryStatus {
                command,
                part: Some(part),
                state: DeliveryState::Delivered,
                detail: None,
            },
        }
    }

    /// The newer send's report can come (and remove its waiting row) before
    /// the SMS loop looks for the parts it superseded: the older part must
    /// still be found superseded, and no later report may go to it.
    #[tokio::test]
    async fn a_superseded_part_stays_superseded_after_the_newer_report() {
        let dir = tempfile::tempdir().unwrap();
        let store = open_store(&dir.path().join("a.db"), NodeId::new("gw-test").unwrap()).unwrap();
        let log = LocalLog::new(store).await.unwrap();
        let (older, newer, elsewhere) = (EventId::new(), EventId::new(), EventId::new());
        log.append(vec![
            sent(older, "+380501234567", vec![0]),
            sent(elsewhere, "+380631112233", vec![5]),
        ])
        .await
        .unwrap();
        log.append(vec![sent(newer, "0501234567", vec![0])])
            .await
            .unwrap();
        log.append(vec![delivered(newer, 1)]).await.unwrap();

        let expired = expired_parts(&log, Scope::All, |_| 0).await.unwrap();
        assert_eq!(expired.len(), 1, "{expired:?}");
        let (p, why) = &expired[0];
        assert_eq!(
            (p.command.as_str(), p.part),
            (older.to_string().as_str(), 1)
        );
        assert_eq!(
            why,
            &Expiry::Superseded {
                by_command: newer.to_string()
            }
        );
        let only_refs = expired_parts(
            &log,
            Scope::Refs {
                line: "gsm0".into(),
                mrs: vec![0],
            },
            |_| 0,
        )
        .await
        .unwrap();
        assert_eq!(only_refs, expired);
        // A duplicate report on TP-MR 0 does not fall back to the older part.
        let to = part_for_report(&log, "gsm0", 0, "+380501234567", 0)
            .await
            .unwrap();
        assert_eq!(to, None);
        // A different number on another reference is untouched.
        assert!(is_waiting(&log, &elsewhere.to_string(), 1).await.unwrap());
    }
}
