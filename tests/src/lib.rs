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
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let body = body.unwrap_or("");
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf)?;
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
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
    Ok((status, body))
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
