//! What Crossline's daemons' command lines share (`crossline-appliance`,
//! `crossline-mgmt` and `crossline-demo`): logging set-up and waiting for a
//! stop signal. Its own crate so that mgmt shares it without linking the
//! appliance; two dependencies, both already in every daemon.

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

/// A future that completes on SIGINT (Ctrl-C) or SIGTERM. SIGTERM is
/// caught from this call on, not from the future's first poll: call it
/// before saying the process is ready (a SIGTERM right after "ready", from a
/// test or a service manager, then shuts down gracefully instead of killing
/// the process). Must be called inside the tokio runtime.
pub fn wait_for_signal() -> impl std::future::Future<Output = ()> + Send + 'static {
    let term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    async move {
        match term {
            Some(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            None => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
}
