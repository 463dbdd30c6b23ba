//! Helpers for the cross-process tests in tests/tests/: find the built
//! binaries, start and SIGKILL them, cut the network between them, and wait
//! on conditions with deadlines (never bare sleeps).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod branch;
pub mod browser;
pub mod fleet;
pub mod mqtt_cli;
pub mod proc;
pub mod proxy;

use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Path of a workspace binary built next to this test executable.
/// `scripts/test` builds them (`cargo build --bins`) before running tests.
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    // target/<profile>/deps/<test> -> target/<profile>/<name>; a binary
    // such as crossline-bench lives in target/<profile>/ itself.
    let here = exe.parent().expect("exe dir");
    let p = if here.join(name).exists() {
        here.join(name)
    } else {
        here.parent().expect("target dir").join(name)
    };
    assert!(
        p.exists(),
        "{} not found: build the binaries first (`cargo build --bins`, as scripts/test does)",
        p.display()
    );
    p
}

pub use crossline_testkit::free_port;

/// Polls `f` until it returns `Some`, or fails the test after `deadline`
/// with `what` in the message.
pub fn wait_for<T>(what: &str, deadline: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let end = Instant::now() + deadline;
    let mut pause = Duration::from_millis(5);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            Instant::now() < end,
            "timed out after {deadline:?} waiting for {what}"
        );
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(200));
    }
}

/// Async variant of [`wait_for`].
pub async fn wait_for_async<T, F, Fut>(what: &str, deadline: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let end = tokio::time::Instant::now() + deadline;
    let mut pause = Duration::from_millis(5);
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < end,
            "timed out after {deadline:?} waiting for {what}"
        );
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(200));
    }
}

/// A minimal HTTP/1.1 client (GET/POST) for tests: returns (status, body).
pub fn http(
    method: &str,
    port: u16,
    path: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> std::io::Result<(u16, String)> {
    let s = std::net::TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    request(s, method, path, token, body)
}

/// [`http`] over TLS to 127.0.0.1, trusting only the CA in `ca_file` (as
/// an appliance or an API client pinning mgmt's CA would). A server whose
/// certificate that CA did not issue is an error.
pub fn https(
    method: &str,
    port: u16,
    path: &str,
    token: Option<&str>,
    body: Option<&str>,
    ca_file: &std::path::Path,
) -> std::io::Result<(u16, String)> {
    request(tls_to(port, ca_file)?, method, path, token, body)
}

/// Like [`https`] with any request headers (a `Cookie`, an `Origin`, a form's
/// `Content-Type`; JSON by default): (status, head, body). What a browser's
/// form post is, for tests that use the web UI without a browser.
pub fn https_with(
    method: &str,
    port: u16,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
    ca_file: &std::path::Path,
) -> std::io::Result<(u16, String, String)> {
    request_with(tls_to(port, ca_file)?, method, path, headers, body)
}

/// A TLS connection to 127.0.0.1:`port` trusting only the CA in `ca_file`.
fn tls_to(
    port: u16,
    ca_file: &std::path::Path,
) -> std::io::Result<
    crossline_tls::rustls::StreamOwned<
        crossline_tls::rustls::ClientConnection,
        std::net::TcpStream,
    >,
> {
    let cfg = crossline_tls::pinned_client_config(ca_file).map_err(std::io::Error::other)?;
    let name = crossline_tls::pki_types::ServerName::try_from("127.0.0.1")
        .map_err(std::io::Error::other)?;
    let conn = crossline_tls::rustls::ClientConnection::new(cfg, name.to_owned())
        .map_err(std::io::Error::other)?;
    let s = std::net::TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    Ok(crossline_tls::rustls::StreamOwned::new(conn, s))
}

fn request<S: std::io::Read + std::io::Write>(
    s: S,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> std::io::Result<(u16, String)> {
    let auth = token.map(|t| format!("Bearer {t}"));
    let headers: Vec<(&str, &str)> = auth
        .as_deref()
        .map(|a| ("Authorization", a))
        .into_iter()
        .collect();
    request_with(s, method, path, &headers, body).map(|(s, _, b)| (s, b))
}

fn request_with<S: std::io::Read + std::io::Write>(
    mut s: S,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> std::io::Result<(u16, String, String)> {
    let mut extra = String::new();
    for (k, v) in headers {
        extra += &format!("{k}: {v}\r\n");
    }
    if !headers
        .iter()
        .any(|(k, _)| k.eq_ignore_ascii_case("content-type"))
    {
        extra += "Content-Type: application/json\r\n";
    }
    let body = body.unwrap_or("");
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{extra}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    s.flush()?;
    let mut buf = Vec::new();
    match s.read_to_end(&mut buf) {
        Ok(_) => {}
        // rustls: the server closed without close_notify after a full answer.
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !buf.is_empty() => {}
        Err(e) => return Err(e),
    }
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .map(|(h, b)| (h.to_string(), b.to_string()))
        .unwrap_or_default();
    // Undo chunked encoding if present (axum uses it for streamed bodies).
    let body = if text
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(&body)
    } else {
        body
    };
    Ok((status, head, body))
}

fn dechunk(s: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some((len, after)) = rest.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(len.trim(), 16) else {
            break;
        };
        if n == 0 || after.len() < n {
            break;
        }
        out.push_str(&after[..n]);
        rest = after[n..].trim_start_matches("\r\n");
    }
    out
}

/// Events stored at mgmt per device, from its API.
pub fn mgmt_counts(http_port: u16, token: &str) -> Option<std::collections::HashMap<String, u64>> {
    let (status, body) = http("GET", http_port, "/api/v1/devices", Some(token), None).ok()?;
    if status != 200 {
        return None;
    }
    let v: serde_json::Value = serde_json::from_str(&body).ok()?;
    Some(
        v.as_array()?
            .iter()
            .filter_map(|d| Some((d["id"].as_str()?.to_string(), d["events"].as_u64()?)))
            .collect(),
    )
}
