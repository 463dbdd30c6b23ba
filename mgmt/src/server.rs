//! Starting and stopping a whole mgmt instance.

use crate::config::{Config, secret_file};
use crate::credentials::RegistryAuthenticator;
use crate::http::{AppState, router};
use crate::ingest::{self, BrokerLink, Update};
use crate::metrics::Metrics;
use anyhow::{Context, Result};
use crossline_core::NodeId;
use crossline_store::{SqliteStore, StoreOptions};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::sync::broadcast;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::info;

/// A running mgmt.
pub struct Running {
    pub http_addr: SocketAddr,
    /// Where devices connect (the embedded broker's address, or the external URL's).
    pub mqtt_addr: SocketAddr,
    pub api_token: String,
    pub store: SqliteStore,
    pub updates: broadcast::Sender<Update>,
    /// Live conversation changes (what `/api/v1/stream` sends).
    pub live: crate::live::Live,
    /// The routing service (configure it, send it commands).
    pub routing: crate::routing::Routing,
    shutdown: CancellationToken,
    tasks: JoinSet<Result<()>>,
    broker: Option<crossline_broker::BrokerHandle>,
}

/// mgmt's own node id (origin of events mgmt creates).
#[allow(clippy::expect_used)]
pub fn mgmt_node() -> NodeId {
    NodeId::new("mgmt").expect("\"mgmt\" satisfies the node id rules")
}

/// Opens mgmt's database (creating the data dir), with the conversation
/// projector installed (see [`crate::conversations`]).
pub fn open_store(cfg: &Config) -> Result<SqliteStore> {
    std::fs::create_dir_all(&cfg.data_dir)
        .with_context(|| format!("creating data dir {}", cfg.data_dir.display()))?;
    let region = cfg.site.region()?;
    SqliteStore::open_with(
        &cfg.db_path(),
        mgmt_node(),
        StoreOptions {
            projector: Some(crate::conversations::projector(region)),
            ..Default::default()
        },
    )
    .with_context(|| format!("opening database {}", cfg.db_path().display()))
}

pub async fn start(cfg: Config) -> Result<Running> {
    let store = open_store(&cfg)?;
    let mgmt_secret = secret_file(&cfg.data_dir.join("mgmt.secret"))?;
    let api_token = secret_file(&cfg.data_dir.join("api.token"))?;
    let metrics = Arc::new(Metrics::default());
    let shutdown = CancellationToken::new();
    let (updates, _) = broadcast::channel(4096);
    let mut tasks = JoinSet::new();

    let (pending_keys, keys_used) = crate::fleet::rekey::PendingKeys::new();
    {
        let k = pending_keys.clone();
        store
            .read(move |c| k.load(c))
            .await
            .context("reading pending device re-keys")?;
    }
    let (broker, mqtt_addr, host) = match &cfg.mqtt.url {
        Some(url) => {
            let (host, port) = crossline_appliance::config::parse_mqtt_url(url)?;
            let addr = tokio::net::lookup_host((host.as_str(), port))
                .await?
                .next()
                .with_context(|| format!("cannot resolve broker host {host}"))?;
            info!(broker = %url, "using external MQTT broker");
            (None, addr, host)
        }
        None => {
            let mut auth =
                RegistryAuthenticator::new(store.clone(), cfg.mqtt.username.clone(), &mgmt_secret)?
                    .with_pending_keys(pending_keys.clone());
            if cfg.fleet.enrollment {
                auth = auth.with_bootstrap_token(&secret_file(&cfg.bootstrap_token_path())?)?;
            }
            let auth = Arc::new(auth);
            let b = crossline_broker::Broker::start(
                crossline_broker::BrokerConfig {
                    listen: cfg.mqtt.listen,
                    max_connections: cfg.mqtt.max_connections,
                    ..Default::default()
                },
                auth,
            )
            .await
            .with_context(|| format!("starting the embedded MQTT broker on {}", cfg.mqtt.listen))?;
            let addr = b.local_addr();
            info!(listen = %addr, "embedded MQTT broker up");
            let host = if addr.ip().is_unspecified() {
                "127.0.0.1".to_string()
            } else {
                addr.ip().to_string()
            };
            (Some(b), addr, host)
        }
    };

    let link = BrokerLink {
        host,
        port: mqtt_addr.port(),
        username: cfg.mqtt.username.clone(),
        secret: mgmt_secret,
    };
    let live = crate::live::Live::new();
    tasks.spawn(crate::live::run(
        store.clone(),
        live.clone(),
        updates.subscribe(),
        shutdown.clone(),
    ));
    let (signals_tx, signals_rx) = tokio::sync::mpsc::unbounded_channel();
    let (dispatcher, created_rx) = crate::commands::channel();
    tasks.spawn(crate::commands::run(
        store.clone(),
        created_rx,
        signals_rx,
        std::time::Duration::from_secs(cfg.mqtt.command_resend_s.max(1)),
        shutdown.clone(),
    ));
    // Subscribed before ingestion starts: every inbound message is routed.
    let (routing, routing_task) = crate::routing::start(
        store.clone(),
        dispatcher.clone(),
        updates.subscribe(),
        live.subscribe(),
        shutdown.clone(),
    )
    .await?;
    tasks.spawn(routing_task);
    let (fleet, fleet_task) = crate::fleet::start(
        store.clone(),
        link.clone(),
        broker.as_ref().map(|b| b.kicker()),
        crate::fleet::FleetOptions {
            service_user: cfg.mqtt.username.clone(),
            tick: std::time::Duration::from_millis(cfg.fleet.tick_ms.max(50)),
            alerts: cfg.fleet.alerts.clone(),
        },
        updates.subscribe(),
        (pending_keys, keys_used),
        shutdown.clone(),
    );
    tasks.spawn(fleet_task);
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
    let api_state = Arc::new(crate::api::ApiState {
        store: store.clone(),
        api_token: api_token.clone(),
        region: cfg.site.region()?,
        dispatcher,
        live: live.clone(),
        routing: routing.clone(),
        shutdown: shutdown.clone(),
    });
    let changes = crate::web::stream::Changes::new();
    tasks.spawn(crate::web::stream::run(
        routing.clone(),
        changes.clone(),
        live.subscribe(),
        routing.subscribe_changes(),
        fleet.subscribe_changes(),
        shutdown.clone(),
    ));
    let web_state = Arc::new(crate::web::WebState {
        store: store.clone(),
        api: api_state.clone(),
        routing: routing.clone(),
        limiter: Default::default(),
        secure_cookies: cfg.http.secure_cookies,
        changes,
        shutdown: shutdown.clone(),
    });
    let app = router(Arc::new(AppState {
        store: store.clone(),
        metrics,
        api_token: api_token.clone(),
    }))
    .merge(crate::api::router(api_state))
    .merge(crate::fleet::api::router(Arc::new(
        crate::fleet::api::FleetApiState {
            fleet: fleet.clone(),
        },
    )))
    .merge(crate::fleet::web::router(Arc::new(
        crate::fleet::web::FleetWebState { fleet },
    )))
    .merge(crate::routing::api::router(Arc::new(
        crate::routing::api::RoutingApiState {
            store: store.clone(),
            api_token: api_token.clone(),
            routing: routing.clone(),
        },
    )))
    .merge(crate::web::router(web_state))
    // Sessions, CSRF and the /api guard, in front of everything.
    .layer(axum::middleware::from_fn_with_state(
        Arc::new(crate::web::auth::AuthState {
            store: store.clone(),
            api_token: api_token.clone(),
        }),
        crate::web::auth::layer,
    ));
    let sd = shutdown.clone();
    tasks.spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(async move { sd.cancelled().await })
        .await
        .context("HTTP server")
    });
    info!(http = %http_addr, mqtt = %mqtt_addr, db = %cfg.db_path().display(), "mgmt up");
    Ok(Running {
        http_addr,
        mqtt_addr,
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
