//! mgmt's message bus: how mgmt reaches the MQTT broker ([`BrokerLink`])
//! and what ingestion announces to the rest of mgmt ([`Update`] for every
//! subscriber, [`IngestSignal`] for the command dispatcher). Ingestion
//! (`crate::ingest`) publishes these; services and surfaces subscribe, so
//! none of them names ingestion.

use crossline_core::{Event, NodeId};
use crossline_proto::Telemetry;
use rumqttc::AsyncClient;
use std::sync::Arc;

/// How mgmt reaches the broker.
#[derive(Debug, Clone)]
pub struct BrokerLink {
    pub host: String,
    pub port: u16,
    pub username: String,
    pub secret: String,
    /// TLS pinned to a CA, for an external `mqtts://` broker.
    pub tls: Option<Arc<crossline_tls::rustls::ClientConfig>>,
}

/// Something mgmt learned, for live subscribers (SSE, UI) and tests.
#[derive(Debug, Clone)]
pub enum Update {
    Stored {
        origin: NodeId,
        contiguous: u64,
        events: Vec<Event>,
    },
    Presence {
        device: NodeId,
        online: bool,
    },
    Telemetry {
        device: NodeId,
        telemetry: Box<Telemetry>,
    },
}

/// What ingestion tells the command dispatcher ([`crate::services::channels::commands`]).
#[derive(Debug, Clone)]
pub enum IngestSignal {
    /// mgmt's MQTT connection is (again) up and subscribed; publish with this client.
    Connected(AsyncClient),
    /// A device said Hello (it (re)connected) and was answered.
    Hello(NodeId),
}

impl BrokerLink {
    /// rumqttc options for one of mgmt's own connections, logged in as
    /// service user `user` (one of [`crate::config::MqttConfig::service_users`])
    /// with client id `user`, over TLS when the broker is an external
    /// `mqtts://` one.
    pub fn options(&self, user: &str) -> rumqttc::MqttOptions {
        let mut o = rumqttc::MqttOptions::new(user, self.host.clone(), self.port);
        o.set_credentials(user, self.secret.clone());
        if let Some(t) = &self.tls {
            o.set_transport(rumqttc::Transport::tls_with_config(
                rumqttc::TlsConfiguration::Rustls(t.clone()),
            ));
        }
        o
    }
}

/// The user (and client id) of mgmt's fleet connection. The `.` keeps it
/// out of the device id grammar, so no device can ever be given this name.
pub fn fleet_user(service_user: &str) -> String {
    format!("{service_user}.fleet")
}
