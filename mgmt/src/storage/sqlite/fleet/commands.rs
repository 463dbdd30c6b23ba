//! Remote fleet commands (mgmt migration 6).

use crate::services::fleet::commands::CommandView;
use crossline_core::EventId;
use crossline_proto::{Command, CommandKind, CommandResult, encode};
use rusqlite::{Connection, OptionalExtension, Transaction, params};

/// Stores a new command for `device`; returns it.
pub(crate) fn create(
    tx: &Transaction<'_>,
    device: &str,
    kind: CommandKind,
    now_ms: i64,
) -> rusqlite::Result<Command> {
    let cmd = Command {
        v: crossline_proto::VERSION,
        id: EventId::new(),
        kind,
    };
    tx.execute(
        "INSERT INTO fleet_command (id, device, kind, payload, created_ms) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![
            cmd.id.to_string(),
            device,
            cmd.kind.name(),
            String::from_utf8_lossy(&encode(&cmd)).into_owned(),
            now_ms
        ],
    )?;
    Ok(cmd)
}

/// Commands without a result, not sent since `sent_before_ms` (all with
/// `None`); only `device`'s when given. (device, id, payload).
pub(crate) fn due(
    conn: &Connection,
    device: Option<&str>,
    sent_before_ms: Option<i64>,
) -> rusqlite::Result<Vec<(String, String, String)>> {
    let mut st = conn.prepare_cached(
        "SELECT c.device, c.id, c.payload FROM fleet_command c
         JOIN device d ON d.id = c.device AND d.revoked = 0
         WHERE c.result_ms IS NULL AND (?1 IS NULL OR c.device = ?1)
           AND (?2 IS NULL OR c.sent_ms IS NULL OR c.sent_ms < ?2)
         ORDER BY c.created_ms LIMIT 10000",
    )?;
    st.query_map(params![device, sent_before_ms], |r| {
        Ok((r.get(0)?, r.get(1)?, r.get(2)?))
    })?
    .collect()
}

pub(crate) fn mark_sent(tx: &Transaction<'_>, ids: &[String], now_ms: i64) -> rusqlite::Result<()> {
    for id in ids {
        tx.execute(
            "UPDATE fleet_command SET sent_ms = ?2 WHERE id = ?1",
            params![id, now_ms],
        )?;
    }
    Ok(())
}

/// Records a result from `device` (only for its own commands); returns
/// whether it matched a command.
pub(crate) fn record_result(
    tx: &Transaction<'_>,
    device: &str,
    r: &CommandResult,
    now_ms: i64,
) -> rusqlite::Result<bool> {
    let n = tx.execute(
        "UPDATE fleet_command SET result_ms = ?3, ok = ?4, output = ?5
         WHERE id = ?1 AND device = ?2",
        params![r.id.to_string(), device, now_ms, r.ok, r.output],
    )?;
    Ok(n > 0)
}

fn view(r: &rusqlite::Row<'_>, with_output: bool) -> rusqlite::Result<CommandView> {
    let payload: String = r.get(3)?;
    let output: Option<String> = r.get(8)?;
    Ok(CommandView {
        id: r.get(0)?,
        device: r.get(1)?,
        kind: r.get(2)?,
        command: serde_json::from_str::<serde_json::Value>(&payload)
            .map(|v| v["kind"].clone())
            .unwrap_or_default(),
        created_ms: r.get(4)?,
        sent_ms: r.get(5)?,
        result_ms: r.get(6)?,
        ok: r.get(7)?,
        output_bytes: output.as_ref().map_or(0, |o| o.len() as i64),
        output: if with_output { output } else { None },
    })
}

const COLS: &str = "id, device, kind, payload, created_ms, sent_ms, result_ms, ok, output";

/// A device's commands, newest first.
pub(crate) fn list(
    conn: &Connection,
    device: &str,
    limit: usize,
) -> rusqlite::Result<Vec<CommandView>> {
    let mut st = conn.prepare_cached(&format!(
        "SELECT {COLS} FROM fleet_command WHERE device = ?1 ORDER BY created_ms DESC, id DESC LIMIT ?2"
    ))?;
    st.query_map(params![device, limit as i64], |r| view(r, false))?
        .collect()
}

/// One command with its output.
pub(crate) fn get(conn: &Connection, id: &str) -> rusqlite::Result<Option<CommandView>> {
    conn.query_row(
        &format!("SELECT {COLS} FROM fleet_command WHERE id = ?1"),
        [id],
        |r| view(r, true),
    )
    .optional()
}
