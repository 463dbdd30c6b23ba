//! What the two daemons' command lines share (`crossline-appliance` and
//! `crossline-mgmt`): logging set-up and waiting for a stop signal.

use std::io::IsTerminal;

/// Logs to standard error at `RUST_LOG` (default `info`), as JSON lines with
/// `json`; colours only when standard error is a terminal, so a log written
/// to a file or read by a service manager has no escape codes.
pub fn init_tracing(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let b = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    if json {
        b.json().init();
    } else {
        b.init();
    }
}

/// Returns on SIGINT (Ctrl-C) or SIGTERM.
pub async fn wait_for_signal() {
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
