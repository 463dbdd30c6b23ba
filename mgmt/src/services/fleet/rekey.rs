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

    /// Loads the re-keys still pending (at start): (device, secret hash).
    pub fn load(&self, pending: Vec<(String, String)>) {
        let mut map = self.hashes.write().unwrap_or_else(|e| e.into_inner());
        map.extend(pending);
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
