//! What the benchmarks share for timing pages: a bare HTTP/1.1 GET over a
//! fresh connection (what a browser's navigation costs the server, without
//! client-side overhead), and percentiles of the samples.

use anyhow::{Result, bail};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The `p` percentile (0..=1, nearest rank) of sorted samples; zero if none.
pub fn pct(v: &[Duration], p: f64) -> Duration {
    if v.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p * v.len() as f64).ceil() as usize).clamp(1, v.len());
    v[rank - 1]
}

/// `GET path` from `addr` (`host:port`) with one extra header line
/// (`Cookie: ...`, `Authorization: ...`); the status and the response size.
pub async fn get(addr: &str, path: &str, header: &str) -> Result<(u16, usize)> {
    let mut s = TcpStream::connect(addr).await?;
    s.set_nodelay(true)?;
    let req =
        format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n{header}\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await?;
    let status = std::str::from_utf8(buf.get(9..12).unwrap_or_default())
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    Ok((status, buf.len()))
}

/// Times `samples` GETs of `path(i)` after `warmup` untimed ones: p50, p99
/// and the last response's size. Any status but 200 is an error.
pub async fn time_get(
    addr: &str,
    header: &str,
    warmup: usize,
    samples: usize,
    mut path: impl FnMut(usize) -> String,
) -> Result<(Duration, Duration, usize)> {
    for i in 0..warmup {
        get(addr, &path(i), header).await?;
    }
    let mut v = Vec::with_capacity(samples.max(1));
    let mut bytes = 0;
    for i in 0..samples.max(1) {
        let p = path(i);
        let t = Instant::now();
        let (status, n) = get(addr, &p, header).await?;
        v.push(t.elapsed());
        if status != 200 {
            bail!("GET {p} answered {status}");
        }
        bytes = n;
    }
    v.sort_unstable();
    Ok((pct(&v, 0.5), pct(&v, 0.99), bytes))
}
