//! Who may connect: the [`Authenticator`] the broker asks at every CONNECT.

use std::collections::{HashMap, HashSet};
use std::fmt;

/// What an [`Authenticator`] decided about a CONNECT.
#[derive(Clone, PartialEq, Eq)]
pub enum AuthDecision {
    /// A device whose id is the username. The broker then also requires the MQTT
    /// client id to equal the username and restricts the session to
    /// `crossline/v1/d/<username>/#`.
    Device,
    /// A service user such as mgmt: may publish and subscribe anywhere under
    /// `crossline/v1/#`, with any client id.
    Service,
    /// An appliance enrolling with the bootstrap token: the client id must be
    /// an enrollment id (32 lowercase hex digits) and the session is confined
    /// to `crossline/v1/enroll/<client id>/#`.
    Enrollment,
    /// Refused; the reason is logged, never sent to the client (which gets
    /// "bad user name or password" / "not authorised").
    Deny(String),
}

impl fmt::Debug for AuthDecision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Device => f.write_str("Device"),
            Self::Service => f.write_str("Service"),
            Self::Enrollment => f.write_str("Enrollment"),
            Self::Deny(reason) => write!(f, "Deny({reason:?})"),
        }
    }
}

/// Checks the credential of a connecting MQTT client.
///
/// Called once per CONNECT, on the broker's runtime: keep it quick (an argon2
/// verify is fine, a network round trip is not). mgmt implements it against its
/// device registry; [`StaticAuthenticator`] serves tests and small setups.
pub trait Authenticator: Send + Sync {
    /// `client_id` and `username` as sent in CONNECT (username empty when
    /// absent), `password` as raw bytes (empty when absent).
    fn authenticate(&self, client_id: &str, username: &str, password: &[u8]) -> AuthDecision;
}

/// A fixed map of username -> secret, some of them service users.
///
/// Secrets are compared in constant time; they are kept in memory as given, so
/// use this for tests and demos, not as a credential store.
#[derive(Default, Clone)]
pub struct StaticAuthenticator {
    secrets: HashMap<String, Vec<u8>>,
    services: HashSet<String>,
}

impl fmt::Debug for StaticAuthenticator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut users: Vec<&String> = self.secrets.keys().collect();
        users.sort();
        f.debug_struct("StaticAuthenticator")
            .field("users", &users)
            .field("services", &self.services)
            .finish_non_exhaustive()
    }
}

impl StaticAuthenticator {
    /// An authenticator that knows nobody.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds (or replaces) a device credential; the username is the device id.
    pub fn with_device(mut self, device_id: impl Into<String>, secret: impl AsRef<[u8]>) -> Self {
        let id = device_id.into();
        self.services.remove(&id);
        self.secrets.insert(id, secret.as_ref().to_vec());
        self
    }

    /// Adds (or replaces) a service user (full access to `crossline/v1/#`).
    pub fn with_service(mut self, username: impl Into<String>, secret: impl AsRef<[u8]>) -> Self {
        let user = username.into();
        self.services.insert(user.clone());
        self.secrets.insert(user, secret.as_ref().to_vec());
        self
    }

    /// Forgets a user: later CONNECTs with its credential are refused (pair with
    /// `BrokerHandle::disconnect_client` to end a live session).
    pub fn revoke(&mut self, username: &str) {
        self.secrets.remove(username);
        self.services.remove(username);
    }
}

impl Authenticator for StaticAuthenticator {
    fn authenticate(&self, _client_id: &str, username: &str, password: &[u8]) -> AuthDecision {
        let Some(secret) = self.secrets.get(username) else {
            return AuthDecision::Deny(format!("unknown user {username:?}"));
        };
        if !constant_time_eq(secret, password) {
            return AuthDecision::Deny(format!("wrong password for user {username:?}"));
        }
        if self.services.contains(username) {
            AuthDecision::Service
        } else {
            AuthDecision::Device
        }
    }
}

/// Compares two byte strings without an early exit on the first difference.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn static_authenticator() {
        let mut auth = StaticAuthenticator::new()
            .with_device("a", "sa")
            .with_service("mgmt", "sm");
        assert_eq!(auth.authenticate("a", "a", b"sa"), AuthDecision::Device);
        assert_eq!(auth.authenticate("x", "mgmt", b"sm"), AuthDecision::Service);
        assert!(matches!(
            auth.authenticate("a", "a", b"sb"),
            AuthDecision::Deny(_)
        ));
        assert!(matches!(
            auth.authenticate("a", "a", b""),
            AuthDecision::Deny(_)
        ));
        assert!(matches!(
            auth.authenticate("z", "z", b"sa"),
            AuthDecision::Deny(_)
        ));
        auth.revoke("a");
        assert!(matches!(
            auth.authenticate("a", "a", b"sa"),
            AuthDecision::Deny(_)
        ));
    }

    #[test]
    fn debug_hides_secrets() {
        let auth = StaticAuthenticator::new().with_device("a", "topsecret");
        assert!(!format!("{auth:?}").contains("topsecret"));
    }
}
