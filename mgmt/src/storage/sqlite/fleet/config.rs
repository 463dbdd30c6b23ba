//! Desired vs reported configuration (mgmt migration 6).

use crate::services::fleet::config::{ConfigState, Target};
use crate::services::fleet::db::FleetError;
use crossline_proto::{ApplianceSettings, DesiredConfig, ReportedConfig};
use rusqlite::{Connection, OptionalExtension, Transaction, params};

/// Stores a new configuration for `target`; returns its version and the
/// devices it now applies to.
pub(crate) fn push(
    tx: &Transaction<'_>,
    target: &Target,
    settings: &ApplianceSettings,
    now_ms: i64,
) -> Result<(u64, Vec<String>), FleetError> {
    let devices: Vec<String> = match target {
        Target::Device(d) => {
            let exists = tx
                .query_row("SELECT 1 FROM device WHERE id = ?1", [d], |_| Ok(()))
                .optional()?
                .is_some();
            if !exists {
                return Err(FleetError::NoDevice(d.clone()));
            }
            vec![d.clone()]
        }
        Target::Group(g) => {
            let mut st = tx.prepare(
                "SELECT f.id FROM fleet_device f JOIN device d ON d.id = f.id
                 WHERE f.grp = ?1 AND d.revoked = 0 ORDER BY f.id",
            )?;
            st.query_map([g], |r| r.get(0))?
                .collect::<rusqlite::Result<_>>()?
        }
        Target::Tag(t) => {
            let mut st = tx.prepare(
                "SELECT t.device FROM fleet_tag t JOIN device d ON d.id = t.device
                 WHERE t.tag = ?1 AND d.revoked = 0 ORDER BY t.device",
            )?;
            st.query_map([t], |r| r.get(0))?
                .collect::<rusqlite::Result<_>>()?
        }
    };
    if devices.is_empty() {
        return Err(FleetError::Invalid(format!(
            "no device in {} {:?}",
            target.kind(),
            target.value()
        )));
    }
    let json = serde_json::to_string(settings).map_err(|e| FleetError::Invalid(e.to_string()))?;
    tx.execute(
        "INSERT INTO fleet_config (target_kind, target, settings, created_ms) VALUES (?1, ?2, ?3, ?4)",
        params![target.kind(), target.value(), json, now_ms],
    )?;
    let version = tx.last_insert_rowid() as u64;
    for d in &devices {
        tx.execute(
            "INSERT INTO fleet_device_config (device, desired_version) VALUES (?1, ?2)
             ON CONFLICT (device) DO UPDATE SET desired_version = excluded.desired_version,
                 published_ms = NULL",
            params![d, version as i64],
        )?;
    }
    Ok((version, devices))
}

/// The configuration `device` should run, if mgmt set one.
pub(crate) fn desired(conn: &Connection, device: &str) -> rusqlite::Result<Option<DesiredConfig>> {
    conn.query_row(
        "SELECT c.version, c.settings FROM fleet_device_config dc
         JOIN fleet_config c ON c.version = dc.desired_version WHERE dc.device = ?1",
        [device],
        |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)),
    )
    .optional()
    .map(|o| {
        o.and_then(|(v, s)| {
            Some(DesiredConfig {
                v: crossline_proto::VERSION,
                version: v as u64,
                settings: serde_json::from_str(&s).ok()?,
            })
        })
    })
}

/// Devices whose desired configuration is not applied, not refused, and not
/// published since `published_before_ms` (all of them with `None`); only
/// `device` when given.
pub(crate) fn due(
    conn: &Connection,
    device: Option<&str>,
    published_before_ms: Option<i64>,
) -> rusqlite::Result<Vec<(String, DesiredConfig)>> {
    let mut st = conn.prepare_cached(
        "SELECT dc.device, c.version, c.settings FROM fleet_device_config dc
         JOIN fleet_config c ON c.version = dc.desired_version
         JOIN device d ON d.id = dc.device AND d.revoked = 0
         WHERE (?1 IS NULL OR dc.device = ?1)
           AND dc.applied_version IS NOT dc.desired_version
           AND dc.rejected_version IS NOT dc.desired_version
           AND (?2 IS NULL OR dc.published_ms IS NULL OR dc.published_ms < ?2)",
    )?;
    let rows = st.query_map(params![device, published_before_ms], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, i64>(1)?,
            r.get::<_, String>(2)?,
        ))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (d, v, s) = row?;
        if let Ok(settings) = serde_json::from_str(&s) {
            out.push((
                d,
                DesiredConfig {
                    v: crossline_proto::VERSION,
                    version: v as u64,
                    settings,
                },
            ));
        }
    }
    Ok(out)
}

/// Records that `version` was published to each device (not if the device's
/// desired version changed meanwhile: that one is still to publish).
pub(crate) fn mark_published(
    tx: &Transaction<'_>,
    sent: &[(String, u64)],
    now_ms: i64,
) -> rusqlite::Result<()> {
    for (d, version) in sent {
        tx.execute(
            "UPDATE fleet_device_config SET published_ms = ?2
             WHERE device = ?1 AND desired_version = ?3",
            params![d, now_ms, *version as i64],
        )?;
    }
    Ok(())
}

/// Records what the appliance reported.
pub(crate) fn record_reported(
    tx: &Transaction<'_>,
    device: &str,
    r: &ReportedConfig,
    now_ms: i64,
) -> rusqlite::Result<()> {
    // The decoder refuses versions above MAX_CONFIG_VERSION; a number that
    // still does not fit is not recorded, never wrapped to a negative one.
    let applied = i64::try_from(r.applied).ok().filter(|v| *v > 0);
    let rejected = r.rejected.and_then(|v| i64::try_from(v).ok());
    tx.execute(
        "INSERT INTO fleet_device_config (device, applied_version, rejected_version, error, reported_ms)
         VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (device) DO UPDATE SET applied_version = excluded.applied_version,
             rejected_version = excluded.rejected_version, error = excluded.error,
             reported_ms = excluded.reported_ms",
        params![
            device,
            applied,
            rejected,
            r.error.as_deref().map(|e| e.chars().take(2000).collect::<String>()),
            now_ms
        ],
    )?;
    Ok(())
}

pub(crate) fn state(conn: &Connection, device: &str) -> rusqlite::Result<ConfigState> {
    Ok(conn
        .query_row(
            "SELECT desired_version, applied_version, rejected_version, error, reported_ms
             FROM fleet_device_config WHERE device = ?1",
            [device],
            |r| {
                let desired: Option<i64> = r.get(0)?;
                let applied: Option<i64> = r.get(1)?;
                Ok(ConfigState {
                    desired_version: desired.map(|v| v as u64),
                    applied_version: applied.map(|v| v as u64),
                    rejected_version: r.get::<_, Option<i64>>(2)?.map(|v| v as u64),
                    error: r.get(3)?,
                    reported_ms: r.get(4)?,
                    drift: desired.is_some() && desired != applied,
                })
            },
        )
        .optional()?
        .unwrap_or_default())
}
