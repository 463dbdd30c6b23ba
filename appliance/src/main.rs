//! crossline-appliance: command line entry point.

use anyhow::Result;
use clap::{Parser, Subcommand};
use crossline_appliance::Config;
use std::path::PathBuf;
use tokio_util::sync::CancellationToken;

#[derive(Parser)]
#[command(
    name = "crossline-appliance",
    version,
    about = "Crossline branch appliance"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the appliance daemon.
    Run(RunArgs),
}

#[derive(clap::Args)]
struct RunArgs {
    /// Configuration file (TOML).
    #[arg(long, short, env = "CROSSLINE_CONFIG")]
    config: PathBuf,
    /// Override mqtt.url.
    #[arg(long, env = "CROSSLINE_MQTT_URL")]
    mqtt_url: Option<String>,
    /// Override data_dir.
    #[arg(long, env = "CROSSLINE_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Log as JSON lines.
    #[arg(long, env = "CROSSLINE_LOG_JSON")]
    log_json: bool,
}

fn init_tracing(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let b = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        b.json().init();
    } else {
        b.init();
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    match Cli::parse().cmd {
        Cmd::Run(args) => {
            init_tracing(args.log_json);
            let mut cfg = Config::load(&args.config)?;
            if let Some(u) = args.mqtt_url {
                cfg.mqtt.url = u;
            }
            if let Some(d) = args.data_dir {
                cfg.data_dir = d;
            }
            let shutdown = CancellationToken::new();
            let sd = shutdown.clone();
            tokio::spawn(async move {
                wait_for_signal().await;
                sd.cancel();
            });
            crossline_appliance::run(cfg, shutdown).await
        }
    }
}

async fn wait_for_signal() {
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
