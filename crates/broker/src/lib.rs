//! Crossline's MQTT broker side.
//!
//! - [`Broker::start`]: the broker embedded in mgmt (rmqtt as a library). Every
//!   CONNECT goes through an [`Authenticator`]; a device (username = device id =
//!   client id) may only publish and subscribe under `crossline/v1/d/<id>/#`, a
//!   service user (mgmt) anywhere under `crossline/v1/#`.
//! - [`mosquitto_conf::render`]: the equivalent Mosquitto configuration (password
//!   file in Mosquitto's own `$7$` format, ACL file) for sites that run Mosquitto.
//!
//! docs/BROKER.md explains why rmqtt, and how its API is used here.

pub mod auth;
mod embedded;
pub mod error;
pub mod mosquitto_conf;
pub mod topic;

pub use auth::{AuthDecision, Authenticator, StaticAuthenticator, constant_time_eq};
pub use embedded::{Broker, BrokerConfig, BrokerHandle, ClientKicker, TlsListen};
pub use error::{BrokerError, MosquittoConfError};
