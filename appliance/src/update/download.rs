//! Resumable bundle download over HTTPS, pinned to mgmt's CA.
//!
//! A small HTTP/1.1 GET over tokio-rustls (the TLS stack the uplink already
//! uses): `Range: bytes=<on disk>-` when part of the bundle is on disk. A
//! `206` with the matching `Content-Range` is appended; a `200` (a server
//! that ignores Range) starts the file again from its first byte. Bodies are
//! read by `Content-Length` only (mgmt serves files), never beyond the size
//! the command declared. A cut connection is retried with a growing pause;
//! the download fails after [`MAX_STALLS`] tries in a row without progress.

use anyhow::{Context, Result, anyhow, bail};
use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// Tries in a row that bring no new byte before the download fails.
pub const MAX_STALLS: u32 = 8;
/// Longest response head accepted.
const MAX_HEAD: usize = 16 * 1024;
/// No byte for this long: the connection is given up (and retried).
const READ_TIMEOUT: Duration = Duration::from_secs(30);

/// Where to fetch from.
#[derive(Clone)]
pub struct Source {
    pub host: String,
    pub port: u16,
    pub tls: Arc<rustls::ClientConfig>,
    /// `Authorization` header value (the device's credential), if any.
    pub authorization: Option<String>,
}

impl Source {
    /// `https://host[:port]` with the CA in `ca_file` as the only trust.
    pub fn new(server: &str, ca_file: &Path, authorization: Option<String>) -> Result<Source> {
        let rest = server
            .strip_prefix("https://")
            .ok_or_else(|| anyhow!("update.server {server:?} is not https://"))?
            .trim_end_matches('/');
        let bad_port = || anyhow!("update.server {server:?}: bad port");
        let (host, port) = match rest.strip_prefix('[') {
            // [IPv6]:port
            Some(r) => {
                let (h, after) = r
                    .split_once(']')
                    .ok_or_else(|| anyhow!("update.server {server:?}: unclosed ["))?;
                let port = match after.strip_prefix(':') {
                    Some(p) => p.parse::<u16>().map_err(|_| bad_port())?,
                    None if after.is_empty() => 443,
                    None => return Err(bad_port()),
                };
                (h.to_string(), port)
            }
            None => match rest.rsplit_once(':') {
                Some((h, p)) => (h.to_string(), p.parse::<u16>().map_err(|_| bad_port())?),
                None => (rest.to_string(), 443),
            },
        };
        if host.is_empty() || host.contains('/') || (host.contains(':') && !rest.starts_with('[')) {
            bail!("update.server {server:?}: expected https://host[:port]");
        }
        let tls = crossline_tls::pinned_client_config(ca_file)?;
        Ok(Source {
            host,
            port,
            tls,
            authorization,
        })
    }
}

/// What happened to one request.
enum Attempt {
    /// The file now holds every byte.
    Complete,
    /// Cut short (connection lost, timeout): try again.
    Cut(String),
}

/// Downloads `path` into `file` until it holds `total` bytes, resuming from
/// what is on disk. `progress` is called with the bytes on disk as they
/// grow. A permanent refusal (404, a size that does not match) is an error.
pub async fn fetch(
    src: &Source,
    path: &str,
    file: &Path,
    total: u64,
    progress: &(dyn Fn(u64) + Send + Sync),
    cancel: &CancellationToken,
) -> Result<()> {
    let mut stalls = 0u32;
    loop {
        let before = on_disk(file);
        if before == total {
            return Ok(());
        }
        if before > total {
            warn!(file = %file.display(), before, total, "more on disk than the bundle's size; starting again");
            truncate(file, 0)?;
        }
        let r = tokio::select! {
            _ = cancel.cancelled() => bail!("stopped"),
            r = attempt(src, path, file, total, progress) => r?,
        };
        match r {
            Attempt::Complete => return Ok(()),
            Attempt::Cut(why) => {
                let after = on_disk(file);
                if after > before {
                    stalls = 0;
                } else {
                    stalls += 1;
                }
                if stalls >= MAX_STALLS {
                    bail!(
                        "download of {path} failed {MAX_STALLS} times in a row without progress: {why}"
                    );
                }
                let pause = Duration::from_millis(250u64 << stalls.min(7));
                warn!(path, on_disk = after, total, error = %why, pause_ms = pause.as_millis() as u64, "download interrupted; resuming");
                tokio::select! {
                    _ = cancel.cancelled() => bail!("stopped"),
                    _ = tokio::time::sleep(pause) => {}
                }
            }
        }
    }
}

fn on_disk(file: &Path) -> u64 {
    std::fs::metadata(file).map(|m| m.len()).unwrap_or(0)
}

fn truncate(file: &Path, len: u64) -> Result<()> {
    let f = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(false)
        .open(file)
        .with_context(|| format!("opening {}", file.display()))?;
    f.set_len(len)?;
    f.sync_all()?;
    Ok(())
}

async fn attempt(
    src: &Source,
    path: &str,
    file: &Path,
    total: u64,
    progress: &(dyn Fn(u64) + Send + Sync),
) -> Result<Attempt> {
    let have = on_disk(file);
    let cut = |e: &dyn std::fmt::Display| Ok(Attempt::Cut(e.to_string()));
    let tcp = match tokio::time::timeout(
        Duration::from_secs(15),
        TcpStream::connect((src.host.as_str(), src.port)),
    )
    .await
    {
        Ok(Ok(t)) => t,
        Ok(Err(e)) => return cut(&format!("connecting to {}:{}: {e}", src.host, src.port)),
        Err(_) => {
            return cut(&format!(
                "connecting to {}:{}: timed out",
                src.host, src.port
            ));
        }
    };
    let _ = tcp.set_nodelay(true);
    let name = rustls::pki_types::ServerName::try_from(src.host.clone())
        .map_err(|e| anyhow!("update.server host {:?}: {e}", src.host))?;
    let connector = tokio_rustls::TlsConnector::from(src.tls.clone());
    let mut tls =
        match tokio::time::timeout(Duration::from_secs(15), connector.connect(name, tcp)).await {
            Ok(Ok(t)) => t,
            // A certificate from another CA is not a cut connection: refuse.
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::InvalidData => {
                bail!("TLS with {}:{} refused: {e}", src.host, src.port)
            }
            Ok(Err(e)) => return cut(&format!("TLS handshake: {e}")),
            Err(_) => return cut(&"TLS handshake timed out"),
        };
    let mut req = format!(
        "GET {path} HTTP/1.1\r\nHost: {}:{}\r\nUser-Agent: crossline-appliance/{}\r\nAccept-Encoding: identity\r\nConnection: close\r\n",
        src.host,
        src.port,
        env!("CARGO_PKG_VERSION")
    );
    if have > 0 {
        req.push_str(&format!("Range: bytes={have}-\r\n"));
    }
    if let Some(a) = &src.authorization {
        req.push_str(&format!("Authorization: {a}\r\n"));
    }
    req.push_str("\r\n");
    if let Err(e) = tls.write_all(req.as_bytes()).await {
        return cut(&format!("sending the request: {e}"));
    }
    // The response head.
    let mut buf = Vec::with_capacity(4096);
    let (status, headers, body_start) = loop {
        let mut chunk = [0u8; 4096];
        let n = match tokio::time::timeout(READ_TIMEOUT, tls.read(&mut chunk)).await {
            Ok(Ok(0)) => return cut(&"connection closed before the response head"),
            Ok(Ok(n)) => n,
            Ok(Err(e)) => return cut(&format!("reading the response: {e}")),
            Err(_) => return cut(&"no response"),
        };
        buf.extend_from_slice(chunk.get(..n).unwrap_or_default());
        let mut hs = [httparse::EMPTY_HEADER; 32];
        let mut resp = httparse::Response::new(&mut hs);
        match resp.parse(&buf) {
            Ok(httparse::Status::Complete(len)) => {
                let status = resp.code.unwrap_or(0);
                let headers: Vec<(String, String)> = resp
                    .headers
                    .iter()
                    .map(|h| {
                        (
                            h.name.to_ascii_lowercase(),
                            String::from_utf8_lossy(h.value).trim().to_string(),
                        )
                    })
                    .collect();
                break (status, headers, len);
            }
            Ok(httparse::Status::Partial) if buf.len() < MAX_HEAD => continue,
            Ok(httparse::Status::Partial) => bail!("response head longer than {MAX_HEAD} bytes"),
            Err(e) => bail!("malformed HTTP response: {e}"),
        }
    };
    let header = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    };
    if header("transfer-encoding").is_some_and(|t| !t.eq_ignore_ascii_case("identity")) {
        bail!("the server sent the bundle with Transfer-Encoding; expected a plain body");
    }
    let length: Option<u64> = header("content-length").and_then(|v| v.parse().ok());
    let start = match status {
        206 => {
            // Content-Range: bytes <first>-<last>/<total>
            let cr = header("content-range").unwrap_or_default();
            let parsed = cr.strip_prefix("bytes ").and_then(|r| {
                let (range, size) = r.split_once('/')?;
                let (first, last) = range.split_once('-')?;
                Some((
                    first.trim().parse::<u64>().ok()?,
                    last.trim().parse::<u64>().ok()?,
                    size.trim().parse::<u64>().ok(),
                ))
            });
            match parsed {
                Some((first, last, size))
                    if first == have
                        && last.checked_add(1) == Some(total)
                        && size.is_none_or(|s| s == total) =>
                {
                    have
                }
                _ => bail!(
                    "the server answered bytes {have}- with Content-Range {cr:?} (the bundle has {total} bytes)"
                ),
            }
        }
        200 => {
            if have > 0 {
                info!(
                    path,
                    on_disk = have,
                    "the server ignores Range; downloading from the start"
                );
            }
            if length.is_some_and(|l| l != total) {
                bail!(
                    "the server's bundle has {} bytes, the command says {total}",
                    length.unwrap_or_default()
                );
            }
            truncate(file, 0)?;
            0
        }
        416 if have == total => return Ok(Attempt::Complete),
        416 => {
            // What is on disk is not a prefix the server can continue.
            truncate(file, 0)?;
            return cut(&"416 Range Not Satisfiable; starting again");
        }
        s if (500..600).contains(&s) || s == 429 || s == 408 => {
            return cut(&format!("HTTP {s}"));
        }
        s => bail!("HTTP {s} for {path}"),
    };
    let want = total - start;
    if length.is_some_and(|l| l != want) {
        bail!(
            "the server sends {} bytes from byte {start}; {want} expected",
            length.unwrap_or_default()
        );
    }
    let mut out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(file)
        .with_context(|| format!("opening {}", file.display()))?;
    let mut got = 0u64;
    let first = buf.get(body_start..).unwrap_or_default();
    let take = (first.len() as u64).min(want) as usize;
    if take > 0 {
        out.write_all(first.get(..take).unwrap_or_default())?;
        got += take as u64;
    }
    let mut last_sync = start + got;
    let mut chunk = vec![0u8; 64 * 1024];
    let mut result = Attempt::Complete;
    while got < want {
        let room = ((want - got) as usize).min(chunk.len());
        let n = match tokio::time::timeout(
            READ_TIMEOUT,
            tls.read(chunk.get_mut(..room).unwrap_or_default()),
        )
        .await
        {
            Ok(Ok(0)) => {
                result = Attempt::Cut(format!("connection closed after {got} of {want} bytes"));
                break;
            }
            Ok(Ok(n)) => n,
            Ok(Err(e)) => {
                result = Attempt::Cut(format!("reading the body: {e}"));
                break;
            }
            Err(_) => {
                result = Attempt::Cut("no data for 30 s".into());
                break;
            }
        };
        out.write_all(chunk.get(..n).unwrap_or_default())?;
        got += n as u64;
        let now = start + got;
        // Keep what came on disk every 1 MiB: a power loss loses little.
        if now - last_sync >= 1 << 20 {
            out.sync_data()?;
            last_sync = now;
            progress(now);
        }
    }
    out.sync_all()?;
    progress(start + got);
    Ok(result)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_urls() {
        let dir = tempfile::tempdir().unwrap();
        let dev = crossline_tls::dev::ensure(dir.path(), &[]).unwrap();
        let ca = dev.identity.ca_file.clone();
        for (url, host, port) in [
            ("https://mgmt.example.org", "mgmt.example.org", 443),
            ("https://mgmt.example.org:8443/", "mgmt.example.org", 8443),
            ("https://127.0.0.1:9", "127.0.0.1", 9),
            ("https://[::1]:8443", "::1", 8443),
            ("https://[::1]", "::1", 443),
        ] {
            let s = Source::new(url, &ca, None).unwrap();
            assert_eq!((s.host.as_str(), s.port), (host, port), "{url}");
        }
        for bad in [
            "http://h",
            "https://",
            "https://h:x",
            "https://h:70000",
            "https://h/path",
            "https://[::1",
        ] {
            assert!(Source::new(bad, &ca, None).is_err(), "{bad}");
        }
    }
}
