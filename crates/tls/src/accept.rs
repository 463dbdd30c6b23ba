//! Accepting TLS connections: TCP accept, then each handshake in its own
//! task (bounded in time and number), so a slow or hostile client never holds
//! up the others. Used by the MQTT-over-TLS listener and by HTTPS.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;
pub use tokio_rustls::server::TlsStream;

/// Finished handshakes; dropping it stops accepting.
#[derive(Debug)]
pub struct TlsIncoming {
    rx: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local_addr: SocketAddr,
    task: JoinHandle<()>,
}

impl TlsIncoming {
    /// Accepts on `listener`; handshakes that take longer than
    /// `handshake_timeout` are dropped, at most `max_handshakes` run at once
    /// (further TCP connections wait to be accepted). `what` names the
    /// listener in logs ("MQTT", "HTTPS").
    pub fn start(
        listener: TcpListener,
        config: Arc<rustls::ServerConfig>,
        handshake_timeout: Duration,
        max_handshakes: usize,
        what: &'static str,
    ) -> std::io::Result<Self> {
        let local_addr = listener.local_addr()?;
        let (tx, rx) = mpsc::channel(64);
        let acceptor = TlsAcceptor::from(config);
        let permits = Arc::new(Semaphore::new(max_handshakes.max(1)));
        let task = tokio::spawn(async move {
            loop {
                let Ok(permit) = permits.clone().acquire_owned().await else {
                    return;
                };
                let (tcp, peer) = match listener.accept().await {
                    Ok(x) => x,
                    Err(e) => {
                        // Out of file descriptors and the like: wait, go on.
                        tracing::warn!(error = %e, listener = what, "TLS listener: accept failed");
                        tokio::time::sleep(Duration::from_millis(200)).await;
                        continue;
                    }
                };
                let _ = tcp.set_nodelay(true);
                let acceptor = acceptor.clone();
                let tx = tx.clone();
                tokio::spawn(async move {
                    let _permit = permit;
                    match tokio::time::timeout(handshake_timeout, acceptor.accept(tcp)).await {
                        Ok(Ok(tls)) => {
                            let _ = tx.send((tls, peer)).await;
                        }
                        Ok(Err(e)) => {
                            tracing::info!(%peer, listener = what, error = %e, "TLS handshake failed (a client without TLS, or one that does not trust this server's CA)");
                        }
                        Err(_) => {
                            tracing::info!(%peer, listener = what, "TLS handshake timed out");
                        }
                    }
                });
            }
        });
        Ok(Self {
            rx,
            local_addr,
            task,
        })
    }

    /// The address actually bound.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The next connection whose handshake finished; `None` once stopped.
    pub async fn next(&mut self) -> Option<(TlsStream<TcpStream>, SocketAddr)> {
        self.rx.recv().await
    }
}

impl Drop for TlsIncoming {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn pinned_client_talks_other_ca_and_plain_clients_do_not() {
        let d = tempfile::tempdir().unwrap();
        let dev = crate::dev::ensure(&d.path().join("a"), &[]).unwrap();
        let other = crate::dev::ensure(&d.path().join("b"), &[]).unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut incoming = TlsIncoming::start(
            listener,
            dev.identity.server_config(&[]).unwrap(),
            Duration::from_secs(5),
            16,
            "test",
        )
        .unwrap();
        let addr = incoming.local_addr();
        tokio::spawn(async move {
            while let Some((mut s, _)) = incoming.next().await {
                tokio::spawn(async move {
                    let mut b = [0u8; 5];
                    if s.read_exact(&mut b).await.is_ok() {
                        let _ = s.write_all(&b).await;
                        let _ = s.flush().await;
                    }
                });
            }
        });
        let connect = |ca: std::path::PathBuf| async move {
            let cfg = crate::pinned_client_config(&ca).unwrap();
            let tcp = TcpStream::connect(addr).await.unwrap();
            let name = rustls_pki_types::ServerName::try_from("127.0.0.1").unwrap();
            let mut s = tokio_rustls::TlsConnector::from(cfg)
                .connect(name, tcp)
                .await?;
            s.write_all(b"hello").await?;
            let mut b = [0u8; 5];
            s.read_exact(&mut b).await?;
            Ok::<_, std::io::Error>(b)
        };
        assert_eq!(
            &connect(dev.identity.ca_file.clone()).await.unwrap(),
            b"hello"
        );
        let e = connect(other.identity.ca_file.clone()).await.unwrap_err();
        assert!(e.to_string().contains("UnknownIssuer"), "{e}");
        // A plaintext client gets nothing back.
        let mut tcp = TcpStream::connect(addr).await.unwrap();
        tcp.write_all(b"\x10\x0c\x00\x04MQTT\x04\x02\x00\x0a\x00\x00")
            .await
            .unwrap();
        let mut b = [0u8; 4];
        let n = tokio::time::timeout(Duration::from_secs(5), tcp.read(&mut b))
            .await
            .unwrap();
        assert!(
            matches!(n, Ok(0) | Err(_)) || b[0] != 0x20,
            "a CONNACK over plaintext: {b:?}"
        );
    }
}
