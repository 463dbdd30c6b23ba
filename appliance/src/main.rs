//! crossline-appliance: command line entry point.

use anyhow::Result;
use clap::{Parser, Subcommand};
use crossline_appliance::Config;
use crossline_daemon::{init_tracing, wait_for_signal};
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
            let signal = wait_for_signal();
            tokio::spawn(async move {
                signal.await;
                sd.cancel();
            });
            crossline_appliance::run(cfg, shutdown).await
        }
    }
}
