//! A tiny raw AT client for driving the simulator through its PTY.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;
use tokio_serial::SerialPortBuilderExt;

pub const WAIT: Duration = Duration::from_secs(5);

pub struct Client {
    port: tokio_serial::SerialStream,
    /// Everything read and not yet consumed.
    pub buf: String,
}

impl Client {
    pub fn open(path: &Path) -> Client {
        let port = tokio_serial::new(path.to_string_lossy(), 115_200)
            .open_native_async()
            .unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
        Client {
            port,
            buf: String::new(),
        }
    }

    pub async fn send(&mut self, s: &str) {
        self.port.write_all(s.as_bytes()).await.unwrap();
    }

    pub async fn send_bytes(&mut self, b: &[u8]) {
        self.port.write_all(b).await.unwrap();
    }

    /// Reads more bytes; returns false on timeout.
    async fn fill(&mut self, deadline: Instant) -> std::io::Result<bool> {
        let mut b = [0u8; 1024];
        match tokio::time::timeout_at(deadline, self.port.read(&mut b)).await {
            Err(_) => Ok(false),
            Ok(Ok(0)) => Err(std::io::Error::other("EOF")),
            Ok(Ok(n)) => {
                self.buf.push_str(&String::from_utf8_lossy(&b[..n]));
                Ok(true)
            }
            Ok(Err(e)) => Err(e),
        }
    }

    /// Waits until the buffer contains `pat`; returns (and consumes) the text
    /// up to and including it.
    pub async fn expect(&mut self, pat: &str) -> String {
        self.try_expect(pat, WAIT)
            .await
            .unwrap_or_else(|| panic!("no {pat:?} within {WAIT:?}; got {:?}", self.buf))
    }

    pub async fn try_expect(&mut self, pat: &str, within: Duration) -> Option<String> {
        let deadline = Instant::now() + within;
        loop {
            if let Some(pos) = self.buf.find(pat) {
                let end = pos + pat.len();
                let head = self.buf[..end].to_string();
                self.buf.drain(..end);
                return Some(head);
            }
            match self.fill(deadline).await {
                Ok(true) => {}
                Ok(false) => return None,
                Err(e) => panic!("read failed: {e}; buffer {:?}", self.buf),
            }
        }
    }

    /// Sends a command and returns everything up to its final result.
    pub async fn cmd(&mut self, cmd: &str) -> String {
        self.send(&format!("{cmd}\r")).await;
        let deadline = Instant::now() + WAIT;
        loop {
            for fin in ["\r\nOK\r\n", "\r\nERROR\r\n"] {
                if let Some(pos) = self.buf.find(fin) {
                    let end = pos + fin.len();
                    let head = self.buf[..end].to_string();
                    self.buf.drain(..end);
                    return head;
                }
            }
            for fin in ["+CME ERROR:", "+CMS ERROR:"] {
                if let Some(pos) = self.buf.find(fin)
                    && let Some(nl) = self.buf[pos..].find("\r\n")
                {
                    let end = pos + nl + 2;
                    let head = self.buf[..end].to_string();
                    self.buf.drain(..end);
                    return head;
                }
            }
            match self.fill(deadline).await {
                Ok(true) => {}
                Ok(false) => panic!("no final result for {cmd:?}; got {:?}", self.buf),
                Err(e) => panic!("read failed after {cmd:?}: {e}; buffer {:?}", self.buf),
            }
        }
    }

    /// Reads once with a deadline and reports the I/O error, if any (for unplug tests).
    pub async fn read_error(&mut self, within: Duration) -> Option<std::io::Error> {
        let deadline = Instant::now() + within;
        loop {
            match self.fill(deadline).await {
                Ok(true) => {}
                Ok(false) => return None,
                Err(e) => return Some(e),
            }
        }
    }
}

/// Hex of the info line after `+CMGR: ...`/`+CMT: ...`.
pub fn pdu_after(resp: &str, head: &str) -> String {
    let pos = resp
        .find(head)
        .unwrap_or_else(|| panic!("no {head} in {resp:?}"));
    resp[pos..].lines().nth(1).unwrap().trim().to_string()
}
