//! crossline-mgmt: the management server.
//!
//! [`server::start`] brings up, in order: the SQLite store, the embedded MQTT
//! broker (unless an external one is configured), the ingestion client and the
//! HTTP API. `main.rs` is only the command line around it.

pub mod address;
pub mod api;
pub mod commands;
pub mod config;
pub mod conversations;
pub mod credentials;
pub mod demo;
pub mod error;
pub mod fleet;
pub mod http;
pub mod ingest;
pub mod live;
pub mod metrics;
pub mod openapi;
pub mod routing;
pub mod server;
pub mod trust;
pub mod web;
