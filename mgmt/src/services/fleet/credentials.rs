//! Device credentials: every appliance has its own random secret; mgmt keeps
//! only a salted PBKDF2-SHA512 hash in Mosquitto's `$7$` format, so the same
//! registry serves the embedded broker and an external Mosquitto.

use crossline_broker::{AuthDecision, Authenticator};
use crossline_core::NodeId;
use crossline_store::DeviceRegistry;
use rand::RngCore;

/// A new 256-bit random secret, hex-encoded.
pub fn new_secret() -> String {
    let mut b = [0u8; 32];
    rand::rng().fill_bytes(&mut b);
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Hash to store for a secret (Mosquitto's `$7$` PBKDF2-SHA512 format, fresh salt).
pub fn hash_secret(secret: &str) -> anyhow::Result<String> {
    Ok(crossline_broker::mosquitto_conf::hash_secret(
        secret.as_bytes(),
    )?)
}

/// Checks a presented secret against a stored hash (constant time).
pub fn verify_secret(secret: &[u8], stored: &str) -> bool {
    crossline_broker::mosquitto_conf::verify_secret(stored, secret)
}

/// The embedded broker's authenticator: mgmt's service users, or a registered,
/// unrevoked device presenting its own secret.
pub struct RegistryAuthenticator<S> {
    store: S,
    service_users: Vec<String>,
    service_hash: String,
    /// Hash of the bootstrap token (user `enroll`), if enrollment is on.
    bootstrap_hash: Option<String>,
    /// New secrets of devices being re-keyed, accepted next to the old ones.
    pending: Option<crate::services::fleet::rekey::PendingKeys>,
}

impl<S: DeviceRegistry> RegistryAuthenticator<S> {
    /// `service_users` all log in with `service_secret` (mgmt's connections).
    pub fn new(store: S, service_users: Vec<String>, service_secret: &str) -> anyhow::Result<Self> {
        Ok(Self {
            store,
            service_users,
            service_hash: hash_secret(service_secret)?,
            bootstrap_hash: None,
            pending: None,
        })
    }

    /// Accepts the new secret of a device being re-keyed, besides its old one.
    pub fn with_pending_keys(mut self, keys: crate::services::fleet::rekey::PendingKeys) -> Self {
        self.pending = Some(keys);
        self
    }

    /// Lets appliances enroll: user `enroll` with this token gets a session
    /// confined to its enrollment topics (see [`crate::services::fleet`]).
    pub fn with_bootstrap_token(mut self, token: &str) -> anyhow::Result<Self> {
        self.bootstrap_hash = Some(hash_secret(token)?);
        Ok(self)
    }
}

impl<S: DeviceRegistry> Authenticator for RegistryAuthenticator<S> {
    fn authenticate(&self, client_id: &str, username: &str, password: &[u8]) -> AuthDecision {
        if self.service_users.iter().any(|u| u == username) {
            return if verify_secret(password, &self.service_hash) {
                AuthDecision::Service
            } else {
                AuthDecision::Deny(format!("wrong secret for service user {username}"))
            };
        }
        if username == crossline_proto::ENROLL_USER {
            return match &self.bootstrap_hash {
                Some(h) if verify_secret(password, h) => AuthDecision::Enrollment,
                Some(_) => AuthDecision::Deny(format!(
                    "wrong bootstrap token from enrolling client {client_id:?}"
                )),
                None => AuthDecision::Deny("enrollment is off (no bootstrap token)".into()),
            };
        }
        let Ok(id) = NodeId::new(username) else {
            return AuthDecision::Deny(format!("{username:?} is not a device id"));
        };
        match self.store.device(&id) {
            Ok(Some(d)) if d.revoked => AuthDecision::Deny(format!("device {id} is revoked")),
            Ok(Some(d)) if verify_secret(password, &d.secret_hash) => {
                tracing::debug!(device = %id, client_id, "device authenticated");
                AuthDecision::Device
            }
            Ok(Some(_))
                if self
                    .pending
                    .as_ref()
                    .is_some_and(|k| k.accepts(id.as_str(), password)) =>
            {
                tracing::info!(device = %id, client_id, "device authenticated with its new secret");
                AuthDecision::Device
            }
            Ok(Some(_)) => AuthDecision::Deny(format!("wrong secret for device {id}")),
            Ok(None) => AuthDecision::Deny(format!("unknown device {id}")),
            Err(e) => AuthDecision::Deny(format!("device registry error: {e}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_and_verify() {
        let s = new_secret();
        assert_eq!(s.len(), 64);
        let h = hash_secret(&s).unwrap();
        assert!(h.starts_with("$7$"), "{h}");
        assert!(verify_secret(s.as_bytes(), &h));
        assert!(!verify_secret(b"wrong", &h));
        assert!(!verify_secret(s.as_bytes(), "garbage"));
        assert!(!verify_secret(s.as_bytes(), "$7$0$AAAA$BBBB"));
        assert_ne!(hash_secret(&s).unwrap(), h, "fresh salt each time");
    }
}
