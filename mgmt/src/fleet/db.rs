//! Fleet tables (migration 0006): enrollment queue, device metadata, tags.
//! Plain functions over a connection or the writer's transaction, called
//! through [`crossline_store::SqliteStore::read`] / `write`.

use crossline_proto::EnrollRequest;
use rusqlite::{Connection, OptionalExtension, Transaction, params};
use serde::Serialize;

/// One enrollment request as the admin sees it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Enrollment {
    pub id: String,
    pub serial: Option<String>,
    pub macs: Vec<String>,
    pub imeis: Vec<String>,
    pub hostname: Option<String>,
    pub software: String,
    pub state: String,
    pub device: Option<String>,
    pub first_seen_ms: i64,
    pub last_seen_ms: i64,
    pub decided_ms: Option<i64>,
}

/// What mgmt answers an enrollment request with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    Pending,
    Rejected,
    /// Approved; the secret is present until the device has connected with it.
    Approved {
        device: String,
        secret: Option<String>,
    },
}

fn json_list(v: &[String]) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "[]".into())
}

fn parse_list(s: &str) -> Vec<String> {
    serde_json::from_str(s).unwrap_or_default()
}

/// Records (or refreshes) a request; returns what to answer.
pub fn record_request(
    tx: &Transaction<'_>,
    id: &str,
    req: &EnrollRequest,
    now_ms: i64,
) -> rusqlite::Result<Answer> {
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
    answer(tx, id).map(|a| a.unwrap_or(Answer::Pending))
}

/// The current answer for an enrollment id, `None` if unknown.
pub fn answer(conn: &Connection, id: &str) -> rusqlite::Result<Option<Answer>> {
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
pub fn enrollments(conn: &Connection, state: Option<&str>) -> rusqlite::Result<Vec<Enrollment>> {
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
pub fn undelivered(conn: &Connection) -> rusqlite::Result<Vec<(String, String, String)>> {
    let mut st = conn.prepare(
        "SELECT id, device, issued_secret FROM fleet_enrollment
         WHERE state = 'approved' AND issued_secret IS NOT NULL AND device IS NOT NULL",
    )?;
    st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect()
}

/// The device connected with its own credential: forget the clear secret.
pub fn delivered(tx: &Transaction<'_>, device: &str) -> rusqlite::Result<usize> {
    tx.execute(
        "UPDATE fleet_enrollment SET issued_secret = NULL
         WHERE device = ?1 AND issued_secret IS NOT NULL",
        [device],
    )
}

/// What an admin decides when approving.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Approval {
    /// The device id to assign (lowercase letters, digits, '-', '_').
    pub device: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub site: Option<String>,
    #[serde(default)]
    pub group: Option<String>,
    #[serde(default)]
    pub tags: Vec<String>,
}

/// Why an approval or a metadata change was refused.
#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    #[error("no enrollment {0}")]
    NoEnrollment(String),
    #[error("enrollment {id} is already {state}")]
    AlreadyDecided { id: String, state: String },
    #[error("device id {0} is taken by another device; choose another")]
    Taken(String),
    #[error("no device {0}")]
    NoDevice(String),
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Sql(#[from] rusqlite::Error),
}

/// Checks a tag, group or site label: 1..=64 printable characters.
pub fn check_label(what: &str, v: &str) -> Result<(), FleetError> {
    if v.is_empty() || v.chars().count() > 64 || v.chars().any(char::is_control) {
        return Err(FleetError::Invalid(format!(
            "{what} {v:?} must be 1 to 64 printable characters"
        )));
    }
    Ok(())
}

/// Approves `id` as device `a.device` with `secret_hash`, keeping the clear
/// `secret` until the device picks it up. One transaction.
pub fn approve(
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
pub fn reject(tx: &Transaction<'_>, id: &str, now_ms: i64) -> Result<(), FleetError> {
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
pub fn set_tags(tx: &Transaction<'_>, device: &str, tags: &[String]) -> Result<(), FleetError> {
    for t in tags {
        check_label("tag", t)?;
    }
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
pub fn set_meta(
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

/// A device row of the fleet list.
#[derive(Debug, Clone, Serialize)]
pub struct FleetDevice {
    pub id: String,
    pub name: Option<String>,
    pub site: Option<String>,
    pub group: Option<String>,
    pub tags: Vec<String>,
    pub serial: Option<String>,
    pub online: bool,
    pub revoked: bool,
    pub last_seen_ms: Option<i64>,
    /// Last telemetry sample as received (JSON), if any.
    pub telemetry: Option<serde_json::Value>,
    pub telemetry_ms: Option<i64>,
    /// Configuration pushed from mgmt / applied by the device.
    pub desired_version: Option<i64>,
    pub applied_version: Option<i64>,
    /// Why the device refused its desired configuration, if it did.
    pub config_error: Option<String>,
    /// Desired configuration not applied (yet, or refused).
    pub drift: bool,
}

/// Every device with its metadata, presence and last telemetry, by id.
pub fn devices(conn: &Connection) -> rusqlite::Result<Vec<FleetDevice>> {
    let mut tags: std::collections::HashMap<String, Vec<String>> = Default::default();
    {
        let mut st = conn.prepare("SELECT device, tag FROM fleet_tag ORDER BY device, tag")?;
        let rows = st.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?;
        for row in rows {
            let (d, t) = row?;
            tags.entry(d).or_default().push(t);
        }
    }
    let mut st = conn.prepare(
        "SELECT d.id, f.name, f.site, f.grp, f.serial, d.online, d.revoked, d.last_seen_ms,
                f.telemetry, f.telemetry_ms, c.desired_version, c.applied_version,
                CASE WHEN c.rejected_version = c.desired_version THEN c.error END
         FROM device d LEFT JOIN fleet_device f ON f.id = d.id
              LEFT JOIN fleet_device_config c ON c.device = d.id
         ORDER BY d.id",
    )?;
    st.query_map([], |r| {
        let id: String = r.get(0)?;
        Ok(FleetDevice {
            tags: tags.remove(&id).unwrap_or_default(),
            id,
            name: r.get(1)?,
            site: r.get(2)?,
            group: r.get(3)?,
            serial: r.get(4)?,
            online: r.get::<_, i64>(5)? != 0,
            revoked: r.get::<_, i64>(6)? != 0,
            last_seen_ms: r.get(7)?,
            telemetry: r
                .get::<_, Option<String>>(8)?
                .and_then(|s| serde_json::from_str(&s).ok()),
            telemetry_ms: r.get(9)?,
            desired_version: r.get(10)?,
            applied_version: r.get(11)?,
            config_error: r.get(12)?,
            drift: {
                let (d, a): (Option<i64>, Option<i64>) = (r.get(10)?, r.get(11)?);
                d.is_some() && d != a
            },
        })
    })?
    .collect()
}

/// Ids of revoked devices (to disconnect any live session they still hold).
pub fn revoked(conn: &Connection) -> rusqlite::Result<Vec<String>> {
    let mut st = conn.prepare("SELECT id FROM device WHERE revoked = 1")?;
    st.query_map([], |r| r.get(0))?.collect()
}
