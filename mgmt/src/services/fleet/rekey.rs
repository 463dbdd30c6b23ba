//! Re-key pushed to the appliance (docs/FLEET.md, "Re-key").
//!
//! An admin's re-key draws a new secret and keeps it (clear and hashed) in
//! `fleet_rekey`; mgmt sends it to the device over its authenticated session
//! ([`crossline_proto::Rekey`], again on every reconnect and every 30 s);
//! the appliance stores it durably, answers [`crossline_proto::Rekeyed`]
//! and reconnects with it. Until the device has connected with the new
//! secret the broker accepts both ([`PendingKeys`]); when it has, the new
//! hash replaces the old one in `device` and the clear secret is forgotten.

use crate::services::fleet::credentials::verify_secret;
use crossline_core::EventId;
use crossline_proto::{Rekey, Rekeyed};
use rusqlite::{Connection, OptionalExtension, Transaction, params};
use serde::Serialize;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use tokio::sync::mpsc;

/// New secrets not yet used, by device, as the broker's authenticator sees
/// them; it reports a device that connected with its new secret.
#[derive(Clone)]
pub struct PendingKeys {
    hashes: Arc<RwLock<HashMap<String, String>>>,
    used: mpsc::UnboundedSender<String>,
}

impl PendingKeys {
    /// The keys and the receiver of "device connected with its new secret".
    pub fn new() -> (Self, mpsc::UnboundedReceiver<String>) {
        let (used, rx) = mpsc::unbounded_channel();
        (
            Self {
                hashes: Default::default(),
                used,
            },
            rx,
        )
    }

    /// Loads the re-keys still pending (at start).
    pub fn load(&self, conn: &Connection) -> rusqlite::Result<()> {
        let mut st =
            conn.prepare("SELECT device, secret_hash FROM fleet_rekey WHERE done_ms IS NULL")?;
        let rows = st.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?;
        let mut map = self.hashes.write().unwrap_or_else(|e| e.into_inner());
        for row in rows {
            let (d, h) = row?;
            map.insert(d, h);
        }
        Ok(())
    }

    pub fn insert(&self, device: &str, hash: &str) {
        self.hashes
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(device.to_string(), hash.to_string());
    }

    pub fn remove(&self, device: &str) {
        self.hashes
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(device);
    }

    /// Is `password` the pending new secret of `device`? If so the fleet
    /// service hears that the device uses it.
    pub fn accepts(&self, device: &str, password: &[u8]) -> bool {
        let hash = self
            .hashes
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(device)
            .cloned();
        let ok = hash.is_some_and(|h| verify_secret(password, &h));
        if ok {
            let _ = self.used.send(device.to_string());
        }
        ok
    }
}

/// A device's last re-key as the console and the API show it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct RekeyView {
    pub id: String,
    /// `pending` (not stored by the appliance yet: offline, or on its way),
    /// `stored` (stored, reconnecting), `done` (connected with it, the old
    /// secret is refused) or `failed` (the appliance could not store it).
    pub state: &'static str,
    pub requested_ms: i64,
    pub stored_ms: Option<i64>,
    pub done_ms: Option<i64>,
    pub error: Option<String>,
}

impl RekeyView {
    /// Catalog key of the state.
    pub fn state_key(&self) -> &'static str {
        match self.state {
            "done" => "fleet.rekey.done",
            "failed" => "fleet.rekey.failed",
            "stored" => "fleet.rekey.stored",
            _ => "fleet.rekey.pending",
        }
    }
}

/// Records a new re-key of `device` (replacing one still pending).
pub fn create(
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
pub fn state(conn: &Connection, device: &str) -> rusqlite::Result<Option<RekeyView>> {
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
pub fn due(
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

pub fn mark_sent(tx: &Transaction<'_>, devices: &[String], now_ms: i64) -> rusqlite::Result<()> {
    for d in devices {
        tx.execute(
            "UPDATE fleet_rekey SET sent_ms = ?2 WHERE device = ?1",
            params![d, now_ms],
        )?;
    }
    Ok(())
}

/// The appliance's answer; false if it is not for the device's re-key.
pub fn record_answer(
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
pub fn complete(tx: &Transaction<'_>, device: &str, now_ms: i64) -> rusqlite::Result<bool> {
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
pub fn cancel(tx: &Transaction<'_>, device: &str) -> rusqlite::Result<()> {
    tx.execute(
        "DELETE FROM fleet_rekey WHERE device = ?1 AND done_ms IS NULL",
        [device],
    )?;
    Ok(())
}
