//! Fleet tables (mgmt migration 4): enrollment queue, device metadata, tags.

use crate::services::fleet::db::{
    Answer, Approval, Enrollment, FleetDevice, FleetError, ListFilter, ListPage, SortBy,
    UNKNOWN_EVENTS_WINDOW, UnknownEvent,
};
use crossline_proto::EnrollRequest;
use rusqlite::{Connection, OptionalExtension, Transaction, params};

fn json_list(v: &[String]) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "[]".into())
}

fn parse_list(s: &str) -> Vec<String> {
    serde_json::from_str(s).unwrap_or_default()
}

/// Records (or refreshes) a request; returns what to answer and whether the
/// request is new.
/// `None` (nothing recorded) for a new enrollment id while `max_pending`
/// enrollments are pending already.
pub(crate) fn record_request(
    tx: &Transaction<'_>,
    id: &str,
    req: &EnrollRequest,
    now_ms: i64,
    max_pending: u32,
) -> rusqlite::Result<Option<(Answer, bool)>> {
    let new = tx
        .query_row("SELECT 1 FROM fleet_enrollment WHERE id = ?1", [id], |_| {
            Ok(())
        })
        .optional()?
        .is_none();
    if new && pending_count(tx)? >= max_pending as usize {
        return Ok(None);
    }
    tx.execute(
        "INSERT INTO fleet_enrollment
             (id, serial, macs, imeis, hostname, software, state, first_seen_ms, last_seen_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'pending', ?7, ?7)
         ON CONFLICT (id) DO UPDATE SET
             serial = excluded.serial, macs = excluded.macs, imeis = excluded.imeis,
             hostname = excluded.hostname, software = excluded.software,
             last_seen_ms = excluded.last_seen_ms",
        params![
            id,
            req.serial,
            json_list(&req.macs),
            json_list(&req.imeis),
            req.hostname,
            req.software,
            now_ms
        ],
    )?;
    answer(tx, id).map(|a| Some((a.unwrap_or(Answer::Pending), new)))
}

/// The current answer for an enrollment id, `None` if unknown.
pub(crate) fn answer(conn: &Connection, id: &str) -> rusqlite::Result<Option<Answer>> {
    conn.query_row(
        "SELECT state, device, issued_secret FROM fleet_enrollment WHERE id = ?1",
        [id],
        |r| {
            let state: String = r.get(0)?;
            Ok(match state.as_str() {
                "approved" => Answer::Approved {
                    device: r.get::<_, Option<String>>(1)?.unwrap_or_default(),
                    secret: r.get(2)?,
                },
                "rejected" => Answer::Rejected,
                _ => Answer::Pending,
            })
        },
    )
    .optional()
}

/// Enrollments, pending first, newest first; `state` filters.
pub(crate) fn enrollments(
    conn: &Connection,
    state: Option<&str>,
) -> rusqlite::Result<Vec<Enrollment>> {
    let mut st = conn.prepare(
        "SELECT id, serial, macs, imeis, hostname, software, state, device,
                first_seen_ms, last_seen_ms, decided_ms
         FROM fleet_enrollment WHERE ?1 IS NULL OR state = ?1
         ORDER BY state != 'pending', last_seen_ms DESC LIMIT 1000",
    )?;
    st.query_map([state], |r| {
        Ok(Enrollment {
            id: r.get(0)?,
            serial: r.get(1)?,
            macs: parse_list(&r.get::<_, String>(2)?),
            imeis: parse_list(&r.get::<_, String>(3)?),
            hostname: r.get(4)?,
            software: r.get(5)?,
            state: r.get(6)?,
            device: r.get(7)?,
            first_seen_ms: r.get(8)?,
            last_seen_ms: r.get(9)?,
            decided_ms: r.get(10)?,
        })
    })?
    .collect()
}

/// Approved enrollments whose secret has not been picked up yet.
pub(crate) fn undelivered(conn: &Connection) -> rusqlite::Result<Vec<(String, String, String)>> {
    let mut st = conn.prepare(
        "SELECT id, device, issued_secret FROM fleet_enrollment
         WHERE state = 'approved' AND issued_secret IS NOT NULL AND device IS NOT NULL",
    )?;
    st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect()
}

/// The device connected with its own credential: forget the clear secret.
pub(crate) fn delivered(tx: &Transaction<'_>, device: &str) -> rusqlite::Result<usize> {
    tx.execute(
        "UPDATE fleet_enrollment SET issued_secret = NULL
         WHERE device = ?1 AND issued_secret IS NOT NULL",
        [device],
    )
}

/// Approves `id` as device `a.device` with `secret_hash`, keeping the clear
/// `secret` until the device picks it up. One transaction.
pub(crate) fn approve(
    tx: &Transaction<'_>,
    id: &str,
    a: &Approval,
    secret: &str,
    secret_hash: &str,
    now_ms: i64,
) -> Result<(), FleetError> {
    let state: Option<(String, Option<String>)> = tx
        .query_row(
            "SELECT state, serial FROM fleet_enrollment WHERE id = ?1",
            [id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    let Some((state, serial)) = state else {
        return Err(FleetError::NoEnrollment(id.to_string()));
    };
    if state != "pending" {
        return Err(FleetError::AlreadyDecided {
            id: id.to_string(),
            state,
        });
    }
    let taken: bool = tx
        .query_row(
            "SELECT 1 FROM device WHERE id = ?1",
            [&a.device],
            |_| Ok(()),
        )
        .optional()?
        .is_some();
    if taken {
        return Err(FleetError::Taken(a.device.clone()));
    }
    tx.execute(
        "INSERT INTO device (id, secret_hash, revoked, online, last_seen_ms, created_ms)
         VALUES (?1, ?2, 0, 0, NULL, ?3)",
        params![a.device, secret_hash, now_ms],
    )?;
    tx.execute(
        "INSERT INTO fleet_device (id, name, site, grp, serial, enrollment)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)
         ON CONFLICT (id) DO UPDATE SET name = excluded.name, site = excluded.site,
             grp = excluded.grp, serial = excluded.serial, enrollment = excluded.enrollment",
        params![a.device, a.name, a.site, a.group, serial, id],
    )?;
    set_tags(tx, &a.device, &a.tags)?;
    tx.execute(
        "UPDATE fleet_enrollment SET state = 'approved', device = ?2, issued_secret = ?3,
             decided_ms = ?4 WHERE id = ?1",
        params![id, a.device, secret, now_ms],
    )?;
    Ok(())
}

/// Rejects a pending enrollment.
pub(crate) fn reject(tx: &Transaction<'_>, id: &str, now_ms: i64) -> Result<(), FleetError> {
    let state: Option<String> = tx
        .query_row(
            "SELECT state FROM fleet_enrollment WHERE id = ?1",
            [id],
            |r| r.get(0),
        )
        .optional()?;
    match state.as_deref() {
        None => Err(FleetError::NoEnrollment(id.to_string())),
        Some("pending") => {
            tx.execute(
                "UPDATE fleet_enrollment SET state = 'rejected', decided_ms = ?2 WHERE id = ?1",
                params![id, now_ms],
            )?;
            Ok(())
        }
        Some(s) => Err(FleetError::AlreadyDecided {
            id: id.to_string(),
            state: s.to_string(),
        }),
    }
}

/// Replaces the tags of a device.
pub(crate) fn set_tags(
    tx: &Transaction<'_>,
    device: &str,
    tags: &[String],
) -> Result<(), FleetError> {
    tx.execute("DELETE FROM fleet_tag WHERE device = ?1", [device])?;
    for t in tags {
        tx.execute(
            "INSERT OR IGNORE INTO fleet_tag (device, tag) VALUES (?1, ?2)",
            params![device, t],
        )?;
    }
    Ok(())
}

/// Changes name, site, group and tags of a device (`None` keeps a field).
pub(crate) fn set_meta(
    tx: &Transaction<'_>,
    device: &str,
    name: Option<&str>,
    site: Option<&str>,
    group: Option<&str>,
    tags: Option<&[String]>,
) -> Result<(), FleetError> {
    let exists = tx
        .query_row("SELECT 1 FROM device WHERE id = ?1", [device], |_| Ok(()))
        .optional()?
        .is_some();
    if !exists {
        return Err(FleetError::NoDevice(device.to_string()));
    }
    tx.execute(
        "INSERT INTO fleet_device (id) VALUES (?1) ON CONFLICT (id) DO NOTHING",
        [device],
    )?;
    tx.execute(
        "UPDATE fleet_device SET name = COALESCE(?2, name), site = COALESCE(?3, site),
             grp = COALESCE(?4, grp) WHERE id = ?1",
        params![device, name, site, group],
    )?;
    if let Some(tags) = tags {
        set_tags(tx, device, tags)?;
    }
    Ok(())
}

/// Columns of a [`FleetDevice`] (see [`device_row`]) from [`DEVICE_FROM`].
const DEVICE_COLUMNS: &str = "d.id, f.name, f.site, f.grp, f.serial, d.online, d.revoked,
     d.last_seen_ms, f.telemetry, f.telemetry_ms, c.desired_version, c.applied_version,
     CASE WHEN c.rejected_version = c.desired_version THEN c.error END";

const DEVICE_FROM: &str = "FROM device d LEFT JOIN fleet_device f ON f.id = d.id
     LEFT JOIN fleet_device_config c ON c.device = d.id";

fn device_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<FleetDevice> {
    let (desired, applied): (Option<i64>, Option<i64>) = (r.get(10)?, r.get(11)?);
    Ok(FleetDevice {
        id: r.get(0)?,
        name: r.get(1)?,
        site: r.get(2)?,
        group: r.get(3)?,
        tags: Vec::new(),
        serial: r.get(4)?,
        online: r.get::<_, i64>(5)? != 0,
        revoked: r.get::<_, i64>(6)? != 0,
        last_seen_ms: r.get(7)?,
        telemetry: r
            .get::<_, Option<String>>(8)?
            .and_then(|s| serde_json::from_str(&s).ok()),
        telemetry_ms: r.get(9)?,
        desired_version: desired,
        applied_version: applied,
        config_error: r.get(12)?,
        drift: desired.is_some() && desired != applied,
    })
}

/// Every device with its metadata, presence and last telemetry, by id.
pub(crate) fn devices(conn: &Connection) -> rusqlite::Result<Vec<FleetDevice>> {
    let mut tags: std::collections::HashMap<String, Vec<String>> = Default::default();
    {
        let mut st = conn.prepare("SELECT device, tag FROM fleet_tag ORDER BY device, tag")?;
        let rows = st.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?;
        for row in rows {
            let (d, t) = row?;
            tags.entry(d).or_default().push(t);
        }
    }
    let mut st = conn.prepare(&format!(
        "SELECT {DEVICE_COLUMNS} {DEVICE_FROM} ORDER BY d.id"
    ))?;
    st.query_map([], device_row)?
        .map(|d| {
            d.map(|mut d| {
                d.tags = tags.remove(&d.id).unwrap_or_default();
                d
            })
        })
        .collect()
}

/// One device with its tags, `None` if unknown.
pub(crate) fn device(conn: &Connection, id: &str) -> rusqlite::Result<Option<FleetDevice>> {
    let mut st = conn.prepare_cached(&format!(
        "SELECT {DEVICE_COLUMNS} {DEVICE_FROM} WHERE d.id = ?1"
    ))?;
    let Some(mut d) = st.query_row([id], device_row).optional()? else {
        return Ok(None);
    };
    d.tags = tags_of(conn, id)?;
    Ok(Some(d))
}

fn tags_of(conn: &Connection, id: &str) -> rusqlite::Result<Vec<String>> {
    let mut st = conn.prepare_cached("SELECT tag FROM fleet_tag WHERE device = ?1 ORDER BY tag")?;
    st.query_map([id], |r| r.get(0))?.collect()
}

/// Escapes `%`, `_` and `\` for a `LIKE … ESCAPE '\'` pattern.
fn like_pattern(q: &str) -> String {
    let mut p = String::with_capacity(q.len() + 2);
    p.push('%');
    for c in q.chars() {
        if matches!(c, '%' | '_' | '\\') {
            p.push('\\');
        }
        p.push(c);
    }
    p.push('%');
    p
}

/// The fleet list's page: filtered, sorted and cut in SQL (site, tag,
/// operator and the sort columns are indexed; the free-text search scans).
pub(crate) fn list(conn: &Connection, f: &ListFilter) -> rusqlite::Result<ListPage> {
    let mut conds: Vec<&str> = Vec::new();
    let mut args: Vec<rusqlite::types::Value> = Vec::new();
    let text = |v: &str| rusqlite::types::Value::Text(v.to_string());
    if let Some(site) = &f.site {
        conds.push("f.site = ?");
        args.push(text(site));
    }
    if let Some(tag) = &f.tag {
        conds.push("d.id IN (SELECT device FROM fleet_tag WHERE tag = ?)");
        args.push(text(tag));
    }
    if let Some(op) = &f.operator {
        conds.push("d.id IN (SELECT device FROM fleet_line WHERE operator = ?)");
        args.push(text(op));
    }
    match f.status.as_deref() {
        Some("online") => conds.push("d.revoked = 0 AND d.online = 1"),
        Some("offline") => conds.push("d.revoked = 0 AND d.online = 0"),
        Some("revoked") => conds.push("d.revoked = 1"),
        _ => {}
    }
    if let Some(q) = &f.q {
        conds.push(
            "(d.id LIKE ? ESCAPE '\\' OR f.name LIKE ? ESCAPE '\\' OR f.serial LIKE ? ESCAPE '\\'
              OR d.id IN (SELECT device FROM fleet_line WHERE imei LIKE ? ESCAPE '\\'))",
        );
        let p = like_pattern(q);
        args.extend((0..4).map(|_| text(&p)));
    }
    let sql_where = if conds.is_empty() {
        String::new()
    } else {
        format!(" WHERE {}", conds.join(" AND "))
    };
    let total: i64 = conn
        .prepare_cached(&format!(
            "SELECT COUNT(*) FROM device d LEFT JOIN fleet_device f ON f.id = d.id{sql_where}"
        ))?
        .query_row(rusqlite::params_from_iter(args.iter()), |r| r.get(0))?;
    let dir = if f.desc { "DESC" } else { "ASC" };
    let sql = format!(
        "SELECT {DEVICE_COLUMNS},
                (SELECT COUNT(*) FROM fleet_alert a
                 WHERE a.device = d.id AND a.cleared_ms IS NULL) AS alerts
         {DEVICE_FROM}{sql_where}
         ORDER BY {} {dir} NULLS LAST, d.id {dir} LIMIT ? OFFSET ?",
        sort_expr(f.sort),
    );
    args.push(rusqlite::types::Value::Integer(f.limit as i64));
    args.push(rusqlite::types::Value::Integer(f.offset as i64));
    let mut st = conn.prepare_cached(&sql)?;
    let mut rows: Vec<(FleetDevice, usize)> = st
        .query_map(rusqlite::params_from_iter(args.iter()), |r| {
            Ok((device_row(r)?, r.get::<_, i64>(13)? as usize))
        })?
        .collect::<rusqlite::Result<_>>()?;
    for (d, _) in &mut rows {
        d.tags = tags_of(conn, &d.id)?;
    }
    Ok(ListPage {
        rows,
        total: total as usize,
    })
}

/// The values the fleet list's filters offer: sites, tags, operators.
pub(crate) fn facets(
    conn: &Connection,
) -> rusqlite::Result<(Vec<String>, Vec<String>, Vec<String>)> {
    let col = |sql: &str| -> rusqlite::Result<Vec<String>> {
        conn.prepare_cached(sql)?
            .query_map([], |r| r.get(0))?
            .collect()
    };
    Ok((
        col("SELECT DISTINCT site FROM fleet_device WHERE site IS NOT NULL ORDER BY site")?,
        col("SELECT DISTINCT tag FROM fleet_tag ORDER BY tag")?,
        col(
            "SELECT DISTINCT operator FROM fleet_line WHERE operator IS NOT NULL ORDER BY operator",
        )?,
    ))
}

/// Number of pending enrollments.
pub(crate) fn pending_count(conn: &Connection) -> rusqlite::Result<usize> {
    conn.query_row(
        "SELECT COUNT(*) FROM fleet_enrollment WHERE state = 'pending'",
        [],
        |r| r.get::<_, i64>(0),
    )
    .map(|n| n as usize)
}

/// Marks offline every device shown online whose last sign of life is
/// older than `silent_since_ms`; returns their ids. A later presence or
/// telemetry message shows it online again.
pub(crate) fn mark_silent_offline(
    tx: &Transaction<'_>,
    silent_since_ms: i64,
) -> rusqlite::Result<Vec<String>> {
    let mut st = tx.prepare_cached(
        "UPDATE device SET online = 0
         WHERE online = 1 AND revoked = 0 AND coalesce(last_seen_ms, 0) < ?1
         RETURNING id",
    )?;
    st.query_map([silent_since_ms], |r| r.get(0))?.collect()
}

/// Ids of revoked devices (to disconnect any live session they still hold).
pub(crate) fn revoked(conn: &Connection) -> rusqlite::Result<Vec<String>> {
    let mut st = conn.prepare("SELECT id FROM device WHERE revoked = 1")?;
    st.query_map([], |r| r.get(0))?.collect()
}

/// An in-memory database with every migration applied, for the fleet's
/// unit tests.
/// The SQL expression the list is sorted by.
fn sort_expr(s: SortBy) -> &'static str {
    match s {
        SortBy::Id => "d.id",
        SortBy::Name => "COALESCE(f.name, d.id)",
        SortBy::Status => "d.revoked * 2 + (1 - d.online)",
        SortBy::LastSeen => "d.last_seen_ms",
        SortBy::Alerts => "alerts",
    }
}

/// The newest `limit` events of kinds this mgmt does not know among
/// `device`'s last [`UNKNOWN_EVENTS_WINDOW`] events, newest first.
pub(crate) fn unknown_events(
    conn: &Connection,
    device: &str,
    limit: usize,
) -> rusqlite::Result<Vec<UnknownEvent>> {
    let mut st = conn.prepare_cached(
        "SELECT seq, at_ms, body FROM event
         WHERE origin = ?1 AND kind = 'unknown'
           AND seq > (SELECT COALESCE(MAX(seq), 0) FROM event WHERE origin = ?1) - ?2
         ORDER BY seq DESC LIMIT ?3",
    )?;
    let rows = st.query_map(params![device, UNKNOWN_EVENTS_WINDOW, limit as i64], |r| {
        let body: String = r.get(2)?;
        let kind = serde_json::from_str::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v.get("type").and_then(|t| t.as_str()).map(str::to_string))
            .unwrap_or_default();
        Ok(UnknownEvent {
            seq: r.get(0)?,
            at_ms: r.get(1)?,
            kind,
            body,
        })
    })?;
    rows.collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
pub(crate) fn test_db() -> Connection {
    let mut c = Connection::open_in_memory().unwrap();
    crossline_store::sqlite::migrations::migrate(&mut c, crossline_store::Schema::Mgmt, ":memory:")
        .unwrap();
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db() -> Connection {
        let c = test_db();
        for i in 0..120 {
            let id = format!("d-{i:03}");
            c.execute(
                "INSERT INTO device (id, secret_hash, online, last_seen_ms, created_ms)
                 VALUES (?1, 'h', ?2, ?3, 0)",
                params![id, i64::from(i % 2 == 0), i64::from(i) * 10],
            )
            .unwrap();
            c.execute(
                "INSERT INTO fleet_device (id, name, site, serial) VALUES (?1, ?2, ?3, ?4)",
                params![
                    id,
                    format!("Shop {}", 119 - i),
                    if i < 30 { "kyiv" } else { "lviv" },
                    format!("SN{i:03}")
                ],
            )
            .unwrap();
            c.execute(
                "INSERT INTO fleet_line (device, line, operator, imei) VALUES (?1, 'gsm0', ?2, ?3)",
                params![
                    id,
                    if i % 3 == 0 { "Kyivstar" } else { "lifecell" },
                    format!("8612340500{i:05}")
                ],
            )
            .unwrap();
        }
        c.execute(
            "INSERT INTO fleet_tag (device, tag) VALUES ('d-007', 'pilot')",
            [],
        )
        .unwrap();
        c.execute(
            "INSERT INTO fleet_alert (device, kind, detail, raised_ms) VALUES ('d-050', 'offline', '', 1)",
            [],
        )
        .unwrap();
        c
    }

    #[test]
    fn pending_enrollments_are_capped() {
        let mut c = test_db();
        let req = EnrollRequest {
            v: 1,
            serial: None,
            macs: vec![],
            imeis: vec![],
            hostname: None,
            software: "t".into(),
        };
        let tx = c.transaction().unwrap();
        for i in 0..3 {
            let r = record_request(&tx, &format!("e{i}"), &req, 1, 3).unwrap();
            assert_eq!(r, Some((Answer::Pending, true)));
        }
        assert_eq!(record_request(&tx, "e3", &req, 2, 3).unwrap(), None);
        // A known one is still answered; once one is decided, room again.
        assert_eq!(
            record_request(&tx, "e1", &req, 2, 3).unwrap(),
            Some((Answer::Pending, false))
        );
        reject(&tx, "e0", 3).unwrap();
        assert!(record_request(&tx, "e3", &req, 4, 3).unwrap().is_some());
        tx.commit().unwrap();
        assert_eq!(pending_count(&c).unwrap(), 3);
        assert_eq!(enrollments(&c, None).unwrap().len(), 4);
    }

    #[test]
    fn silent_online_devices_are_marked_offline() {
        let mut c = test_db();
        for (id, online, last) in [("fresh", 1, 100_000), ("silent", 1, 1000), ("off", 0, 1000)] {
            c.execute(
                "INSERT INTO device (id, secret_hash, online, last_seen_ms, created_ms)
                 VALUES (?1, 'h', ?2, ?3, 0)",
                params![id, online, last],
            )
            .unwrap();
        }
        let tx = c.transaction().unwrap();
        assert_eq!(mark_silent_offline(&tx, 50_000).unwrap(), vec!["silent"]);
        assert!(mark_silent_offline(&tx, 50_000).unwrap().is_empty());
        tx.commit().unwrap();
        let online: Vec<String> = devices(&c)
            .unwrap()
            .into_iter()
            .filter(|d| d.online)
            .map(|d| d.id)
            .collect();
        assert_eq!(online, vec!["fresh"]);
    }

    fn ids(p: &ListPage) -> Vec<&str> {
        p.rows.iter().map(|(d, _)| d.id.as_str()).collect()
    }

    #[test]
    fn the_list_is_paged_filtered_and_sorted_in_sql() {
        let c = db();
        let page = |f: ListFilter| list(&c, &ListFilter { limit: 50, ..f }).unwrap();
        let p = page(ListFilter::default());
        assert_eq!((p.total, p.rows.len()), (120, 50));
        assert_eq!(ids(&p)[0], "d-000");
        let p3 = page(ListFilter {
            offset: 100,
            ..Default::default()
        });
        assert_eq!((p3.rows.len(), ids(&p3)[19]), (20, "d-119"));
        let kyiv_online = page(ListFilter {
            site: Some("kyiv".into()),
            status: Some("online".into()),
            ..Default::default()
        });
        assert_eq!(kyiv_online.total, 15);
        let op = page(ListFilter {
            operator: Some("Kyivstar".into()),
            ..Default::default()
        });
        assert_eq!(op.total, 40);
        let tag = page(ListFilter {
            tag: Some("pilot".into()),
            ..Default::default()
        });
        assert_eq!(
            (ids(&tag), &tag.rows[0].0.tags),
            (vec!["d-007"], &vec!["pilot".to_string()])
        );
        for (q, want) in [
            ("861234050000042", "d-042"),
            ("sn043", "d-043"),
            ("shop 0", "d-119"),
        ] {
            let p = page(ListFilter {
                q: Some(q.into()),
                ..Default::default()
            });
            assert_eq!(ids(&p), vec![want], "search {q}");
        }
        // LIKE wildcards are text.
        assert_eq!(
            page(ListFilter {
                q: Some("%".into()),
                ..Default::default()
            })
            .total,
            0
        );
        let by_name = page(ListFilter {
            sort: SortBy::Name,
            ..Default::default()
        });
        assert_eq!(ids(&by_name)[0], "d-119");
        let stale = page(ListFilter {
            sort: SortBy::LastSeen,
            desc: true,
            ..Default::default()
        });
        assert_eq!(ids(&stale)[0], "d-119");
        let alerts = page(ListFilter {
            sort: SortBy::Alerts,
            desc: true,
            ..Default::default()
        });
        assert_eq!((ids(&alerts)[0], alerts.rows[0].1), ("d-050", 1));
        let status = page(ListFilter {
            sort: SortBy::Status,
            desc: true,
            ..Default::default()
        });
        assert!(!status.rows[0].0.online);
    }
}
