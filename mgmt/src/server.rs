//! Starting and stopping a whole mgmt instance.

use crate::bus::{BrokerLink, Update};
use crate::config::{Config, Secret};
use crate::http::{AppState, router};
use crate::ingest;
use crate::metrics::Metrics;
use crate::services::channels::Channels;
use crate::services::fleet::credentials::RegistryAuthenticator;
use anyhow::{Context, Result};
use crossline_store::{Schema, SqliteStore, StoreOptions};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::sync::broadcast;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::info;

/// A running mgmt.
pub struct Running {
    pub http_addr: SocketAddr,
    /// The HTTPS listener's address (with `[tls]` enabled).
    pub https_addr: Option<SocketAddr>,
    /// The embedded broker's plain listener, or the external broker's address.
    pub mqtt_addr: SocketAddr,
    /// The embedded broker's MQTT-over-TLS listener (where appliances connect).
    pub mqtts_addr: Option<SocketAddr>,
    /// The CA appliances pin (with `[tls]` enabled).
    pub ca_file: Option<std::path::PathBuf>,
    pub api_token: String,
    pub store: SqliteStore,
    pub updates: broadcast::Sender<Update>,
    /// Live conversation changes (what `/api/v1/stream` sends).
    pub live: crate::live::Live,
    /// The routing service (configure it, send it commands).
    pub routing: crate::services::routing::Routing,
    shutdown: CancellationToken,
    tasks: JoinSet<Result<()>>,
    broker: Option<crossline_broker::BrokerHandle>,
}

/// Opens mgmt's database (creating the data dir), with the conversation
/// projector (see [`crate::services::conversations`]) and the trust gate for device
/// events (see `crate::storage::sqlite::projection::trust`) installed.
pub fn open_store(cfg: &Config) -> Result<SqliteStore> {
    open_store_with(cfg, Channels::standard())
}

/// [`open_store`] with the channel adapters `channels` (the projector asks
/// them who wrote and how a reply leaves).
pub fn open_store_with(cfg: &Config, channels: Channels) -> Result<SqliteStore> {
    crossline_store::files::create_private_dir(&cfg.data_dir)
        .with_context(|| format!("creating data dir {}", cfg.data_dir.display()))?;
    let region = cfg.site.region()?;
    SqliteStore::open_with(
        &cfg.db_path(),
        cfg.node_id.clone(),
        StoreOptions {
            schema: Schema::Mgmt,
            projector: Some(crate::storage::sqlite::projection::projector_with(
                region, channels,
            )),
            // What a device may say (docs/PROTOCOL.md, "Trust").
            gate: Some(crate::storage::sqlite::projection::trust::gate()),
            max_clock_skew: cfg.ingest.max_clock_skew(),
            // mgmt ingests from many appliances at once; see docs/ARCHITECTURE.md.
            max_group_events: crate::ingest::MAX_GROUP_EVENTS,
            checkpoint_pages: crate::ingest::CHECKPOINT_PAGES,
            ..Default::default()
        },
    )
    .with_context(|| format!("opening database {}", cfg.db_path().display()))
}

pub async fn start(cfg: Config) -> Result<Running> {
    start_with_channels(cfg, Channels::standard()).await
}

/// [`start`] with the channel adapters `channels` instead of this build's
/// standard ones (tests add a channel of their own).
pub async fn start_with_channels(cfg: Config, channels: Channels) -> Result<Running> {
    let store = open_store_with(&cfg, channels.clone())?;
    // A device's events and mgmt's own share the log, keyed by origin: one
    // id for both would mix two sequences.
    if crossline_store::DeviceRegistry::device(&store, &cfg.node_id)?.is_some() {
        anyhow::bail!(
            "node_id {:?} is also the id of a registered device; give this mgmt another node_id \
             in its configuration (docs/API.md, \"Configuration\")",
            cfg.node_id.as_str()
        );
    }
    // Before routing reads its configuration: rows from before facts were
    // events enter the log once (docs/ARCHITECTURE.md, "Rebuilding the projections").
    crate::storage::sqlite::rebuild::import_legacy(&store)
        .await
        .context("carrying notes, tags, merges and routing configs from before they were events into the log")?;
    let mgmt_secret = cfg.secret(Secret::Mgmt)?;
    let api_token = cfg.secret(Secret::ApiToken)?;
    let metrics = Arc::new(Metrics::default());
    let shutdown = CancellationToken::new();
    let (updates, _) = broadcast::channel(4096);
    let mut tasks = JoinSet::new();

    let (pending_keys, keys_used) = crate::services::fleet::rekey::PendingKeys::new();
    pending_keys.load(
        crate::services::fleet::repo::FleetRepo::pending_rekeys(&store)
            .await
            .context("reading pending device re-keys")?,
    );
    let identity = if cfg.tls.enabled {
        Some(cfg.tls.identity(&cfg.data_dir)?)
    } else {
        None
    };
    let (broker, mqtt_addr, host, tls) = match &cfg.mqtt.url {
        Some(url) => {
            let u = crossline_proto::url::parse_mqtt_url(url)?;
            let addr = tokio::net::lookup_host((u.host.as_str(), u.port))
                .await?
                .next()
                .with_context(|| format!("cannot resolve broker host {}", u.host))?;
            let tls = if u.tls {
                let ca = cfg
                    .mqtt
                    .ca_file
                    .clone()
                    .unwrap_or_else(|| cfg.tls.ca_path(&cfg.data_dir));
                Some(crossline_tls::pinned_client_config(&ca).with_context(|| {
                    format!("the CA for {url} (set [mqtt] ca_file to the CA that issued the broker's certificate)")
                })?)
            } else {
                None
            };
            info!(broker = %u, "using external MQTT broker");
            (None, addr, u.host, tls)
        }
        None => {
            if !cfg.mqtt.listen.ip().is_loopback() && !cfg.mqtt.allow_plaintext {
                anyhow::bail!(
                    "[mqtt] listen = {} would take plain (unencrypted) MQTT from the network; appliances connect over TLS to [mqtt] tls_listen ({}). Use a loopback address (127.0.0.1:1883), or set [mqtt] allow_plaintext = true",
                    cfg.mqtt.listen,
                    cfg.mqtt.tls_listen
                );
            }
            let mut auth =
                RegistryAuthenticator::new(store.clone(), cfg.mqtt.service_users(), &mgmt_secret)?
                    .with_pending_keys(pending_keys.clone());
            if cfg.fleet.enrollment {
                auth = auth.with_bootstrap_token(&cfg.secret(Secret::Bootstrap)?)?;
            }
            let auth = Arc::new(auth);
            let tls = match &identity {
                Some(id) => Some(crossline_broker::TlsListen {
                    listen: cfg.mqtt.tls_listen,
                    config: id.server_config(&[])?,
                }),
                None => None,
            };
            let b = crossline_broker::Broker::start(
                crossline_broker::BrokerConfig {
                    listen: cfg.mqtt.listen,
                    max_connections: cfg.mqtt.max_connections,
                    tls,
                    ..Default::default()
                },
                auth,
            )
            .await
            .with_context(|| format!("starting the embedded MQTT broker on {}", cfg.mqtt.listen))?;
            let addr = b.local_addr();
            info!(listen = %addr, tls = ?b.tls_addr(), "embedded MQTT broker up");
            // mgmt's own clients use the plain listener: it is on this host.
            let host = if addr.ip().is_unspecified() {
                "127.0.0.1".to_string()
            } else {
                addr.ip().to_string()
            };
            (Some(b), addr, host, None)
        }
    };
    let mqtts_addr = broker.as_ref().and_then(|b| b.tls_addr());

    let link = BrokerLink {
        host,
        port: mqtt_addr.port(),
        username: cfg.mqtt.username.clone(),
        secret: mgmt_secret,
        tls,
    };
    let live = crate::live::Live::new();
    tasks.spawn(crate::live::run(
        store.clone(),
        live.clone(),
        shutdown.clone(),
    ));
    let (signals_tx, signals_rx) = tokio::sync::mpsc::unbounded_channel();
    let (dispatcher, created_rx) = crate::services::channels::commands::channel();
    tasks.spawn(crate::services::channels::commands::run(
        store.clone(),
        created_rx,
        signals_rx,
        std::time::Duration::from_secs(cfg.mqtt.command_resend_s.max(1)),
        shutdown.clone(),
    ));
    let outbound = crate::services::channels::Outbound {
        channels,
        store: store.clone(),
        dispatcher,
    };
    // Routing follows the log from its stored cursor: every inbound
    // message is routed, also one stored while routing was not running.
    let (routing, routing_task) =
        crate::services::routing::start(store.clone(), outbound.clone(), shutdown.clone()).await?;
    tasks.spawn(routing_task);
    let (fleet, fleet_task) = crate::services::fleet::start(
        store.clone(),
        link.clone(),
        broker.as_ref().map(|b| b.kicker()),
        crate::services::fleet::FleetOptions {
            service_user: cfg.mqtt.username.clone(),
            tick: std::time::Duration::from_millis(cfg.fleet.tick_ms.max(50)),
            alerts: cfg.fleet.alerts.clone(),
            telemetry_rate: crate::services::fleet::telemetry::Rate {
                per_min: cfg.fleet.telemetry_per_min,
                burst: cfg.fleet.telemetry_burst,
            },
            max_pending_enrollments: cfg.fleet.max_pending_enrollments,
        },
        updates.subscribe(),
        (pending_keys, keys_used),
        shutdown.clone(),
    );
    tasks.spawn(fleet_task);
    // Recordings from the appliances: <data_dir>/recordings, beside the DB.
    let recordings = crate::services::recordings::Recordings::new(
        cfg.data_dir.join("recordings"),
        Arc::new(store.clone()),
        Arc::new(store.clone()),
    )?;
    tasks.spawn(crate::services::recordings::run(
        recordings.clone(),
        link.clone(),
        shutdown.clone(),
    ));
    tasks.spawn(ingest::run_with_signals(
        store.clone(),
        link,
        metrics.clone(),
        updates.clone(),
        Some(signals_tx),
        shutdown.clone(),
    ));

    let listener = tokio::net::TcpListener::bind(cfg.http.listen)
        .await
        .with_context(|| format!("binding HTTP on {}", cfg.http.listen))?;
    let http_addr = listener.local_addr()?;
    let api_state = Arc::new(crate::http::api::ApiState {
        store: store.clone(),
        api_token: api_token.clone(),
        region: cfg.site.region()?,
        outbound: outbound.clone(),
        live: live.clone(),
        routing: routing.clone(),
        shutdown: shutdown.clone(),
    });
    let changes = crate::http::web::stream::Changes::new();
    tasks.spawn(crate::http::web::stream::run(
        routing.clone(),
        changes.clone(),
        live.subscribe(),
        fleet.subscribe_changes(),
        shutdown.clone(),
    ));
    let web_state = Arc::new(crate::http::web::WebState {
        store: store.clone(),
        outbound,
        region: cfg.site.region()?,
        routing: routing.clone(),
        limiter: Default::default(),
        secure_cookies: cfg.http.secure_cookies,
        changes,
        recordings,
        shutdown: shutdown.clone(),
    });
    let app = router(Arc::new(AppState {
        store: store.clone(),
        metrics,
        api_token: api_token.clone(),
    }))
    .merge(crate::http::api::router(api_state))
    .merge(crate::http::api::fleet::router(Arc::new(
        crate::http::api::fleet::FleetApiState {
            fleet: fleet.clone(),
        },
    )))
    .merge(crate::http::console::router(Arc::new(
        crate::http::console::FleetWebState { fleet },
    )))
    .merge(crate::http::api::routing::router(Arc::new(
        crate::http::api::routing::RoutingApiState {
            store: store.clone(),
            api_token: api_token.clone(),
            routing: routing.clone(),
        },
    )))
    .merge(crate::http::web::router(web_state))
    // Sessions, CSRF and the /api guard, in front of everything.
    .layer(axum::middleware::from_fn_with_state(
        Arc::new(crate::http::auth::AuthState {
            store: store.clone(),
            api_token: api_token.clone(),
        }),
        crate::http::auth::layer,
    ))
    // CSP, framing, referrer: on every answer, refusals included.
    .layer(axum::middleware::map_response(
        crate::http::security_headers,
    ));
    let https = match &identity {
        Some(id) => {
            let l = tokio::net::TcpListener::bind(cfg.http.tls_listen)
                .await
                .with_context(|| format!("binding HTTPS on {}", cfg.http.tls_listen))?;
            let incoming = crossline_tls::accept::TlsIncoming::start(
                l,
                id.server_config(&[b"http/1.1"])?,
                std::time::Duration::from_secs(10),
                256,
                "HTTPS",
            )?;
            Some(incoming)
        }
        None => None,
    };
    let https_addr = https.as_ref().map(|i| i.local_addr());
    // Plain HTTP: the whole app on loopback (or without TLS); elsewhere only
    // a redirect to HTTPS, so no password or cookie crosses the network in clear.
    let plain_app = match https_addr {
        Some(h) if !http_addr.ip().is_loopback() => crate::http::redirect_to_https(h.port()),
        _ => app.clone(),
    };
    let sd = shutdown.clone();
    tasks.spawn(async move {
        axum::serve(
            listener,
            plain_app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(async move { sd.cancelled().await })
        .await
        .context("HTTP server")
    });
    if let Some(incoming) = https {
        use axum::serve::ListenerExt;
        let sd = shutdown.clone();
        let app = app
            .layer(axum::middleware::map_response(crate::http::secure_cookies))
            .layer(axum::middleware::map_response(
                crate::http::strict_transport_security,
            ));
        tasks.spawn(async move {
            axum::serve(
                crate::http::TlsListener(incoming).tap_io(|_| {}),
                app.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .with_graceful_shutdown(async move { sd.cancelled().await })
            .await
            .context("HTTPS server")
        });
    }
    info!(http = %http_addr, https = ?https_addr, mqtt = %mqtt_addr, mqtts = ?mqtts_addr, db = %cfg.db_path().display(), "mgmt up");
    Ok(Running {
        http_addr,
        https_addr,
        mqtt_addr,
        mqtts_addr,
        ca_file: identity.map(|i| i.ca_file),
        api_token,
        store,
        updates,
        live,
        routing,
        shutdown,
        tasks,
        broker,
    })
}

impl Running {
    /// Waits until a task fails or `stop` is cancelled, then shuts down.
    pub async fn serve_until(mut self, stop: CancellationToken) -> Result<()> {
        let result = loop {
            tokio::select! {
                _ = stop.cancelled() => break Ok(()),
                r = self.tasks.join_next() => match r {
                    None => break Ok(()),
                    Some(Ok(Ok(()))) => continue,
                    Some(Ok(Err(e))) => break Err(e),
                    Some(Err(e)) => break Err(anyhow::anyhow!("mgmt task failed: {e}")),
                }
            }
        };
        self.stop().await;
        result
    }

    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    pub async fn stop(mut self) {
        info!("mgmt shutting down");
        self.shutdown.cancel();
        while self.tasks.join_next().await.is_some() {}
        if let Some(b) = self.broker.take() {
            b.shutdown().await;
        }
        if let Err(e) = self.store.close() {
            tracing::warn!(error = %e, "closing the database");
        }
    }
}
