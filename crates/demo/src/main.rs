//! `crossline-demo`: the whole SMS loop in one command (see [`demo`]).

mod demo;

use anyhow::Result;
use clap::Parser;
use crossline_daemon::{init_tracing, wait_for_signal};
use std::net::SocketAddr;
use std::path::PathBuf;
use tokio_util::sync::CancellationToken;

/// mgmt, its broker and database, a simulated branch with two simulated
/// modems, and simulated customers texting it.
#[derive(Parser)]
#[command(name = "crossline-demo", version, about)]
struct Cli {
    /// Where mgmt and the simulated branch keep their data.
    #[arg(long, env = "CROSSLINE_DATA_DIR", default_value = "./crossline-demo")]
    data_dir: PathBuf,
    /// Log as JSON lines.
    #[arg(long, env = "CROSSLINE_LOG_JSON")]
    log_json: bool,
    #[arg(long, default_value = "127.0.0.1:8080")]
    http: SocketAddr,
    #[arg(long, default_value = "127.0.0.1:1883")]
    mqtt: SocketAddr,
    #[arg(long, default_value = "127.0.0.1:8443")]
    https: SocketAddr,
    #[arg(long, default_value = "127.0.0.1:8883")]
    mqtts: SocketAddr,
    /// Seconds between simulated customer messages.
    #[arg(long, default_value_t = 20.0)]
    pace: f64,
    /// Extra synthetic events per second (load), 0 for none.
    #[arg(long, default_value_t = 0.0)]
    synthetic_rate: f64,
}

#[tokio::main]
async fn main() -> Result<()> {
    let cli = Cli::parse();
    init_tracing(cli.log_json);
    let stop = CancellationToken::new();
    let s = stop.clone();
    let signal = wait_for_signal();
    tokio::spawn(async move {
        signal.await;
        s.cancel();
    });
    demo::run(
        demo::DemoOptions {
            data_dir: cli.data_dir,
            http: cli.http,
            mqtt: cli.mqtt,
            https: cli.https,
            mqtts: cli.mqtts,
            pace: std::time::Duration::from_secs_f64(cli.pace.clamp(0.2, 3600.0)),
            synthetic_rate: cli.synthetic_rate,
        },
        stop,
    )
    .await
}
