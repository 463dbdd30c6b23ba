//! Re-keys (mgmt migration 9).

use crate::services::fleet::rekey::RekeyView;
use crossline_core::EventId;
use crossline_proto::{Rekey, Rekeyed};
use rusqlite::{Connection, OptionalExtension, Transaction, params};

/// Records a new re-key of `device` (replacing one still pending).
pub(crate) fn create(
    tx: &Transaction<'_>,
    device: &str,
    secret: &str,
    hash: &str,
    now_ms: i64,
) -> rusqlite::Result<RekeyView> {
    let id = EventId::new().to_string();
    tx.execute(
        "INSERT OR REPLACE INTO fleet_rekey (device, id, secret, secret_hash, requested_ms)
         VALUES (?1, ?2, ?3, ?4, ?5)",
        params![device, id, secret, hash, now_ms],
    )?;
    Ok(RekeyView {
        id,
        state: "pending",
        requested_ms: now_ms,
        stored_ms: None,
        done_ms: None,
        error: None,
    })
}

/// The last re-key of `device`, if any.
pub(crate) fn state(conn: &Connection, device: &str) -> rusqlite::Result<Option<RekeyView>> {
    conn.query_row(
        "SELECT id, requested_ms, stored_ms, done_ms, error FROM fleet_rekey WHERE device = ?1",
        [device],
        |r| {
            let (stored_ms, done_ms, error): (Option<i64>, Option<i64>, Option<String>) =
                (r.get(2)?, r.get(3)?, r.get(4)?);
            Ok(RekeyView {
                id: r.get(0)?,
                state: match (done_ms, &error, stored_ms) {
                    (Some(_), _, _) => "done",
                    (None, Some(_), _) => "failed",
                    (None, None, Some(_)) => "stored",
                    (None, None, None) => "pending",
                },
                requested_ms: r.get(1)?,
                stored_ms,
                done_ms,
                error,
            })
        },
    )
    .optional()
}

/// Re-keys to send: of online devices, not done nor failed; of `device`
/// only when given; not sent since `before_ms` (all with `None`).
pub(crate) fn due(
    conn: &Connection,
    device: Option<&str>,
    before_ms: Option<i64>,
) -> rusqlite::Result<Vec<(String, Rekey)>> {
    let mut st = conn.prepare_cached(
        "SELECT k.device, k.id, k.secret FROM fleet_rekey k JOIN device d ON d.id = k.device
         WHERE k.done_ms IS NULL AND k.error IS NULL AND k.secret IS NOT NULL
           AND d.online = 1 AND d.revoked = 0
           AND (?1 IS NULL OR k.device = ?1)
           AND (?2 IS NULL OR k.sent_ms IS NULL OR k.sent_ms < ?2)",
    )?;
    let rows = st.query_map(params![device, before_ms], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, String>(2)?,
        ))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (d, id, secret) = row?;
        let Ok(id) = id.parse::<EventId>() else {
            continue;
        };
        out.push((
            d,
            Rekey {
                v: crossline_proto::VERSION,
                id,
                secret,
            },
        ));
    }
    Ok(out)
}

pub(crate) fn mark_sent(
    tx: &Transaction<'_>,
    devices: &[String],
    now_ms: i64,
) -> rusqlite::Result<()> {
    for d in devices {
        tx.execute(
            "UPDATE fleet_rekey SET sent_ms = ?2 WHERE device = ?1",
            params![d, now_ms],
        )?;
    }
    Ok(())
}

/// The appliance's answer; false if it is not for the device's re-key.
pub(crate) fn record_answer(
    tx: &Transaction<'_>,
    device: &str,
    a: &Rekeyed,
    now_ms: i64,
) -> rusqlite::Result<bool> {
    let n = if a.ok {
        tx.execute(
            "UPDATE fleet_rekey SET stored_ms = COALESCE(stored_ms, ?3)
             WHERE device = ?1 AND id = ?2 AND done_ms IS NULL",
            params![device, a.id.to_string(), now_ms],
        )?
    } else {
        tx.execute(
            "UPDATE fleet_rekey SET error = ?3, secret = NULL
             WHERE device = ?1 AND id = ?2 AND done_ms IS NULL",
            params![
                device,
                a.id.to_string(),
                a.error
                    .as_deref()
                    .unwrap_or("the appliance could not store it")
            ],
        )?
    };
    Ok(n > 0)
}

/// The device connected with its new secret: it replaces the old one (now
/// refused) and the clear secret is forgotten. False if nothing was pending.
pub(crate) fn complete(tx: &Transaction<'_>, device: &str, now_ms: i64) -> rusqlite::Result<bool> {
    let hash: Option<String> = tx
        .query_row(
            "SELECT secret_hash FROM fleet_rekey WHERE device = ?1 AND done_ms IS NULL",
            [device],
            |r| r.get(0),
        )
        .optional()?;
    let Some(hash) = hash else { return Ok(false) };
    tx.execute(
        "UPDATE device SET secret_hash = ?2 WHERE id = ?1",
        params![device, hash],
    )?;
    tx.execute(
        "UPDATE fleet_rekey SET done_ms = ?2, stored_ms = COALESCE(stored_ms, ?2), secret = NULL,
             error = NULL WHERE device = ?1",
        params![device, now_ms],
    )?;
    Ok(true)
}

/// Drops a pending re-key (the device was revoked).
pub(crate) fn cancel(tx: &Transaction<'_>, device: &str) -> rusqlite::Result<()> {
    tx.execute(
        "DELETE FROM fleet_rekey WHERE device = ?1 AND done_ms IS NULL",
        [device],
    )?;
    Ok(())
}

/// Re-keys not done yet: (device, new secret's hash).
pub(crate) fn pending(conn: &Connection) -> rusqlite::Result<Vec<(String, String)>> {
    let mut st =
        conn.prepare("SELECT device, secret_hash FROM fleet_rekey WHERE done_ms IS NULL")?;
    st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?.collect()
}
