//! A TCP proxy the test can cut: the appliance's "uplink".

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// Forwards 127.0.0.1:`port()` to `target`. `set_up(false)` drops every open
/// connection and refuses new ones until `set_up(true)`.
pub struct Proxy {
    addr: SocketAddr,
    up: Arc<AtomicBool>,
    epoch: watch::Sender<u64>,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    pub async fn start(target: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("proxy addr");
        let up = Arc::new(AtomicBool::new(true));
        let (epoch, _) = watch::channel(0u64);
        let up2 = up.clone();
        let ep = epoch.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((inbound, _)) = listener.accept().await else {
                    continue;
                };
                if !up2.load(Ordering::SeqCst) {
                    drop(inbound);
                    continue;
                }
                let mut cut = ep.subscribe();
                let start_epoch = *cut.borrow();
                tokio::spawn(async move {
                    let Ok(outbound) = TcpStream::connect(target).await else {
                        return;
                    };
                    let (mut ri, mut wi) = inbound.into_split();
                    let (mut ro, mut wo) = outbound.into_split();
                    let a = tokio::io::copy(&mut ri, &mut wo);
                    let b = tokio::io::copy(&mut ro, &mut wi);
                    tokio::select! {
                        _ = a => {}
                        _ = b => {}
                        _ = async { while *cut.borrow() == start_epoch { if cut.changed().await.is_err() { break; } } } => {}
                    }
                });
            }
        });
        Proxy {
            addr,
            up,
            epoch,
            task,
        }
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    pub fn set_up(&self, up: bool) {
        self.up.store(up, Ordering::SeqCst);
        if !up {
            self.epoch.send_modify(|e| *e += 1);
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}
