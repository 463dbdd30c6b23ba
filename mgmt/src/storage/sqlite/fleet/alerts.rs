//! Fleet alerts (mgmt migration 4).

use crate::services::fleet::alerts::{Alert, Condition};
use rusqlite::{Connection, Transaction, params};
use std::collections::BTreeMap;

/// Raises what is new, clears what ended; returns the changed alerts.
pub(crate) fn reconcile(
    tx: &Transaction<'_>,
    now: &[Condition],
    now_ms: i64,
) -> rusqlite::Result<Vec<Alert>> {
    let open = open_alerts(tx)?;
    let mut by_key: BTreeMap<(String, String, String), Alert> = open
        .into_iter()
        .map(|a| ((a.device.clone(), a.kind.clone(), a.subject.clone()), a))
        .collect();
    let mut changed = Vec::new();
    for c in now {
        let key = (c.device.clone(), c.kind.to_string(), c.subject.clone());
        if by_key.remove(&key).is_some() {
            continue;
        }
        tx.execute(
            "INSERT INTO fleet_alert (device, kind, subject, detail, raised_ms)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![c.device, c.kind, c.subject, c.detail, now_ms],
        )?;
        changed.push(Alert {
            id: tx.last_insert_rowid(),
            device: c.device.clone(),
            kind: c.kind.to_string(),
            subject: c.subject.clone(),
            detail: c.detail.clone(),
            raised_ms: now_ms,
            cleared_ms: None,
        });
    }
    for (_, mut a) in by_key {
        tx.execute(
            "UPDATE fleet_alert SET cleared_ms = ?2 WHERE id = ?1",
            params![a.id, now_ms],
        )?;
        a.cleared_ms = Some(now_ms);
        changed.push(a);
    }
    Ok(changed)
}

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Alert> {
    Ok(Alert {
        id: r.get(0)?,
        device: r.get(1)?,
        kind: r.get(2)?,
        subject: r.get(3)?,
        detail: r.get(4)?,
        raised_ms: r.get(5)?,
        cleared_ms: r.get(6)?,
    })
}

/// Alerts not cleared yet.
pub(crate) fn open_alerts(conn: &Connection) -> rusqlite::Result<Vec<Alert>> {
    let mut st = conn.prepare_cached(
        "SELECT id, device, kind, subject, detail, raised_ms, cleared_ms FROM fleet_alert
         WHERE cleared_ms IS NULL ORDER BY raised_ms DESC",
    )?;
    st.query_map([], row)?.collect()
}

/// The newest `limit` open alerts, and how many are open.
pub(crate) fn open_latest(
    conn: &Connection,
    limit: usize,
) -> rusqlite::Result<(Vec<Alert>, usize)> {
    let mut st = conn.prepare_cached(
        "SELECT id, device, kind, subject, detail, raised_ms, cleared_ms FROM fleet_alert
         WHERE cleared_ms IS NULL ORDER BY raised_ms DESC, id DESC LIMIT ?1",
    )?;
    let list = st
        .query_map([limit as i64], row)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let n: i64 = conn.query_row(
        "SELECT COUNT(*) FROM fleet_alert WHERE cleared_ms IS NULL",
        [],
        |r| r.get(0),
    )?;
    Ok((list, n as usize))
}

/// Recent alerts (open and cleared), newest first; optionally of one device.
pub(crate) fn recent(
    conn: &Connection,
    device: Option<&str>,
    limit: usize,
) -> rusqlite::Result<Vec<Alert>> {
    let mut st = conn.prepare_cached(
        "SELECT id, device, kind, subject, detail, raised_ms, cleared_ms FROM fleet_alert
         WHERE ?1 IS NULL OR device = ?1 ORDER BY id DESC LIMIT ?2",
    )?;
    st.query_map(params![device, limit as i64], row)?.collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn raise_and_clear() {
        let mut c = crate::storage::sqlite::fleet::db::test_db();
        let cond = Condition {
            device: "a".into(),
            kind: "offline",
            subject: String::new(),
            detail: "gone".into(),
        };
        let tx = c.transaction().unwrap();
        let ch = reconcile(&tx, std::slice::from_ref(&cond), 10).unwrap();
        assert_eq!(ch.len(), 1);
        assert!(
            reconcile(&tx, std::slice::from_ref(&cond), 20)
                .unwrap()
                .is_empty()
        );
        let ch = reconcile(&tx, &[], 30).unwrap();
        assert_eq!(ch[0].cleared_ms, Some(30));
        assert_eq!(ch[0].raised_ms, 10);
        tx.commit().unwrap();
        assert!(open_alerts(&c).unwrap().is_empty());
        assert_eq!(recent(&c, Some("a"), 10).unwrap().len(), 1);
    }
}
