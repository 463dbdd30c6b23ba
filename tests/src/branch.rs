//! A whole simulated branch across real processes: `crossline-mgmt` with its
//! embedded broker, the real `crossline-appliance` binary connected through a
//! cuttable TCP proxy, and two simulated modems on PTYs (in the test process)
//! that customers can text. Shared by the SMS loop tests and the browser tests.

use crate::http;
use crate::proc::{Appliance, Mgmt};
use crate::proxy::Proxy;
use crossline_sim::{SimConfig, SimModem};
use serde_json::Value;
use std::net::SocketAddr;
use std::path::Path;

/// The branch's device id.
pub const DEVICE: &str = "branch-1";
/// The simulated lines' own numbers (gsm0, gsm1).
pub const LINES: [&str; 2] = ["+380670000001", "+380670000002"];

pub struct Branch {
    pub mgmt: Mgmt,
    /// mgmt's API bearer token.
    pub token: String,
    pub app: Appliance,
    pub sims: Vec<SimModem>,
    /// Between the appliance and the broker: `proxy.set_up(false)` cuts the uplink.
    pub proxy: Proxy,
}

impl Branch {
    /// Starts mgmt, two simulated modems and the appliance. The appliance
    /// answers by itself with an offline auto-reply once the uplink has been
    /// down for `offline_after_s` seconds.
    pub async fn start(dir: &Path, offline_after_s: u64) -> Branch {
        Self::start_with(dir, offline_after_s, |_| {}).await
    }

    /// Like [`Branch::start`], with a hook that runs against mgmt's data dir
    /// after the device is registered and before mgmt starts (create users,
    /// write config).
    pub async fn start_with(
        dir: &Path,
        offline_after_s: u64,
        before_start: impl FnOnce(&Mgmt),
    ) -> Branch {
        let mut mgmt = Mgmt::new(dir.join("mgmt"), None);
        let secret = mgmt.add_device(DEVICE);
        before_start(&mgmt);
        mgmt.start();
        let token = mgmt.api_token();
        // The appliance speaks MQTT over TLS (pinning mgmt's CA) through the proxy.
        let broker: SocketAddr = format!("127.0.0.1:{}", mgmt.mqtts_port)
            .parse()
            .expect("broker address");
        let proxy = Proxy::start(broker).await;
        let mut sims = Vec::new();
        let mut extra = String::new();
        for (i, number) in LINES.iter().enumerate() {
            let link = dir.join(format!("ttyGSM{i}"));
            let sim = SimModem::spawn(SimConfig {
                link: Some(link.clone()),
                own_number: (*number).to_string(),
                ..SimConfig::default()
            })
            .await
            .expect("simulated modem on a PTY");
            extra.push_str(&format!(
                "[[modems]]\nlabel = \"gsm{i}\"\nport = \"{}\"\nnumber = \"{number}\"\nprofile = \"quectel_ec25\"\n",
                link.display()
            ));
            sims.push(sim);
        }
        extra.push_str(&format!(
            "[offline]\nafter_s = {offline_after_s}\nwindow_s = 3600\ndefault_language = \"en\"\n\
             texts = {{ uk = \"Дякуємо! Відповімо, щойно відновиться зв'язок.\", en = \"Thanks! We will answer when we are back online.\" }}\n"
        ));
        let mut app =
            Appliance::with_mqtt(dir, DEVICE, &secret, &mgmt.mqtts_toml(proxy.port()), &extra);
        app.start();
        Branch {
            mgmt,
            token,
            app,
            sims,
            proxy,
        }
    }

    /// GET a JSON API path with the bearer token; panics unless 200.
    pub fn get(&self, path: &str) -> Value {
        let (status, body) = http("GET", self.mgmt.http_port, path, Some(&self.token), None)
            .unwrap_or_else(|e| panic!("GET {path}: {e}"));
        assert_eq!(status, 200, "GET {path}: {body}");
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET {path}: {e}: {body}"))
    }

    /// The conversations mgmt's API lists (first page).
    pub fn conversations(&self) -> Vec<Value> {
        self.get("/api/v1/conversations")["conversations"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// mgmt's web/API base URL (plain HTTP on loopback).
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.mgmt.http_port)
    }
}
