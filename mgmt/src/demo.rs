//! `crossline-mgmt demo`: mgmt with its embedded broker and database plus
//! simulated branch appliances bringing traffic, in one process.

use crate::config::Config;
use crate::credentials::{hash_secret, new_secret};
use crate::server;
use anyhow::Result;
use crossline_core::NodeId;
use crossline_store::DeviceRegistry;
use std::net::SocketAddr;
use std::path::PathBuf;
use tokio_util::sync::CancellationToken;

pub struct DemoOptions {
    pub data_dir: PathBuf,
    pub http: SocketAddr,
    pub mqtt: SocketAddr,
    pub appliances: usize,
    /// Synthetic messages per second per appliance.
    pub rate: f64,
}

pub async fn run(opts: DemoOptions, stop: CancellationToken) -> Result<()> {
    let mut cfg: Config = toml::from_str("")?;
    cfg.data_dir = opts.data_dir.clone();
    cfg.http.listen = opts.http;
    cfg.mqtt.listen = opts.mqtt;
    let running = server::start(cfg).await?;
    let mut appliances = tokio::task::JoinSet::new();
    let app_stop = CancellationToken::new();
    for i in 1..=opts.appliances {
        let id = NodeId::new(format!("demo-branch-{i}"))?;
        let secret = new_secret();
        running
            .store
            .put_device(&id, &hash_secret(&secret)?)
            .await?;
        let app_cfg = crossline_appliance::Config {
            node_id: id.clone(),
            data_dir: opts.data_dir.join(id.as_str()),
            mqtt: crossline_appliance::config::MqttConfig {
                url: format!("mqtt://127.0.0.1:{}", running.mqtt_addr.port()),
                secret: Some(secret),
                secret_file: None,
                keep_alive_s: 10,
            },
            sync: Default::default(),
            modems: Vec::new(),
            offline: None,
            synthetic: Some(crossline_appliance::config::SyntheticConfig {
                rate: opts.rate,
                total: 0,
            }),
        };
        appliances.spawn(crossline_appliance::run(app_cfg, app_stop.clone()));
    }
    let base = format!("http://{}", running.http_addr);
    println!(
        "\nCrossline demo is running.\n\
         \n  mgmt HTTP     {base}\
         \n  MQTT broker   mqtt://{mqtt}\
         \n  data          {data}\
         \n  API token     {token}\
         \n  appliances    {n} simulated (demo-branch-1..{n}), {rate} msg/s each\
         \n\nTry:\
         \n  curl -s {base}/healthz\
         \n  curl -s {base}/metrics | grep crossline_\
         \n  curl -s -H 'Authorization: Bearer {token}' {base}/api/v1/devices\
         \n  curl -s -H 'Authorization: Bearer {token}' '{base}/api/v1/events?limit=5'\
         \n\nCtrl-C stops it.\n",
        mqtt = running.mqtt_addr,
        data = opts.data_dir.display(),
        token = running.api_token,
        n = opts.appliances,
        rate = opts.rate,
    );
    stop.cancelled().await;
    app_stop.cancel();
    while appliances.join_next().await.is_some() {}
    running.stop().await;
    Ok(())
}
