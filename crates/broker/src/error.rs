//! Errors of this crate.

use std::net::SocketAddr;
use std::path::PathBuf;

/// The embedded broker could not start.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    /// The MQTT listener could not be set up.
    #[error(
        "MQTT broker: cannot listen on {addr}: {source}; is another broker (or mgmt) already using this port? pick another `listen` address or stop it"
    )]
    Bind {
        /// The address from the configuration.
        addr: SocketAddr,
        /// What the OS or rmqtt said.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// A Mosquitto configuration could not be generated.
#[derive(Debug, thiserror::Error)]
pub enum MosquittoConfError {
    /// A user name cannot be used in the password or ACL file.
    #[error("mosquitto config: user {username:?} is not usable: {why}")]
    BadUser {
        /// The offending user name.
        username: String,
        /// What rule it breaks.
        why: &'static str,
    },
    /// A user appears twice in the credential list.
    #[error("mosquitto config: user {0:?} is listed twice; give each user one secret")]
    DuplicateUser(String),
    /// A service user was named but no secret was given for it.
    #[error(
        "mosquitto config: service user {0:?} has no secret in the user list; add (user, secret) for it"
    )]
    ServiceWithoutSecret(String),
    /// A stored hash is not a Mosquitto `$7$` hash.
    #[error(
        "mosquitto config: the stored hash of user {0:?} is not a Mosquitto $7$ (PBKDF2-SHA512) hash; reset that credential"
    )]
    BadHash(String),
    /// A secret is empty.
    #[error("mosquitto config: user {0:?} has an empty secret; Mosquitto would refuse it")]
    EmptySecret(String),
    /// Writing a file failed.
    #[error(
        "mosquitto config: cannot write {path}: {source}; check that the directory exists and is writable"
    )]
    Write {
        /// The file being written.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The operating system gave no random bytes for a salt.
    #[error("mosquitto config: no random salt from the operating system: {0}")]
    Random(String),
}
