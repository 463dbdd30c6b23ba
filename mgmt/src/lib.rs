//! crossline-mgmt: the management server.
//!
//! [`server::start`] brings up, in order: the SQLite store, the embedded MQTT
//! broker (unless an external one is configured), the ingestion client and the
//! HTTP API. `main.rs` is only the command line around it.

pub mod bus;
pub mod clock;
pub mod config;
pub mod http;
pub mod ingest;
pub mod live;
pub mod metrics;
pub mod server;
pub mod services;
pub mod storage;
