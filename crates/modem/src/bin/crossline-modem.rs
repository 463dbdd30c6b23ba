//! `crossline-modem`: diagnostics for field engineers (see docs/MODEMS.md).
//!
//! ```text
//! crossline-modem probe --port /dev/ttyUSB2 [--json]
//! crossline-modem send  --port /dev/ttyUSB2 --to +380501234567 "Привіт"
//! crossline-modem ussd  --port /dev/ttyUSB2 '*111#'
//! crossline-modem at    --port /dev/ttyUSB2 'AT+COPS=?'
//! crossline-modem pdu decode 0791...
//! crossline-modem pdu encode --to +380501234567 [--coding auto] [--validity none] [--smsc +...] "Привіт"
//! crossline-modem pdu ussd-decode --dcs 15 AA180C3602
//! ```

use clap::Parser;

#[derive(Parser)]
#[command(
    name = "crossline-modem",
    version,
    about = "Crossline GSM/LTE modem diagnostics"
)]
struct Cli {
    #[command(subcommand)]
    command: crossline_modem::cli::Cmd,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let code = crossline_modem::cli::run(cli.command).await?;
    if code != 0 {
        std::process::exit(code);
    }
    Ok(())
}
