//! Alerts: conditions evaluated from presence and the latest telemetry,
//! stored with raised and cleared times, POSTed to a webhook on each change.

use super::db::FleetDevice;
use crossline_proto::Telemetry;
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, VecDeque};
use std::time::Duration;

/// Thresholds (`[fleet.alerts]` in mgmt's config).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AlertConfig {
    /// Seconds between evaluations.
    pub eval_s: f64,
    /// A device not heard from (offline, or online but silent past
    /// `heartbeat_timeout_s`) for this long raises `offline`.
    pub offline_after_s: f64,
    /// An "online" device whose last sign of life is older than this is
    /// treated as offline (a session the broker has not noticed is dead).
    pub heartbeat_timeout_s: f64,
    /// Signal at or below this (dBm) raises `signal_low`.
    pub signal_low_dbm: i32,
    /// Disk use at or above this (percent) raises `disk_full`.
    pub disk_full_pct: f32,
    /// This many modem restarts within `modem_restarts_window_s` raise
    /// `modem_restarts`.
    pub modem_restarts: u32,
    pub modem_restarts_window_s: f64,
    /// POST every raise and clear here (JSON), if set: `http://host:port/path`.
    pub webhook_url: Option<String>,
}

impl Default for AlertConfig {
    fn default() -> Self {
        Self {
            eval_s: 10.0,
            offline_after_s: 300.0,
            heartbeat_timeout_s: 180.0,
            signal_low_dbm: -105,
            disk_full_pct: 90.0,
            modem_restarts: 3,
            modem_restarts_window_s: 600.0,
            webhook_url: None,
        }
    }
}

impl AlertConfig {
    pub fn every(&self) -> Duration {
        Duration::from_secs_f64(self.eval_s.clamp(0.05, 3600.0))
    }
}

/// A condition that holds now.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Condition {
    pub device: String,
    pub kind: &'static str,
    pub subject: String,
    pub detail: String,
}

/// Remembers modem restart counters over the window.
#[derive(Default)]
pub struct RestartHistory {
    seen: HashMap<(String, String), VecDeque<(i64, u32)>>,
}

impl RestartHistory {
    /// Records `restarts` for a line at `now_ms`; returns how many happened
    /// within the window (a counter going down means the appliance restarted).
    fn observe(
        &mut self,
        device: &str,
        line: &str,
        restarts: u32,
        now_ms: i64,
        window_ms: i64,
    ) -> u32 {
        let q = self
            .seen
            .entry((device.to_string(), line.to_string()))
            .or_default();
        if q.back().is_some_and(|&(_, r)| r > restarts) {
            q.clear();
        }
        q.push_back((now_ms, restarts));
        while q.len() > 1 && q.front().is_some_and(|&(t, _)| t < now_ms - window_ms) {
            q.pop_front();
        }
        let first = q.front().map(|&(_, r)| r).unwrap_or(restarts);
        // The counter also counts restarts before the first observation in
        // the window when that observation is the only one: use the oldest.
        restarts.saturating_sub(first)
    }
}

/// Every condition that holds for `devices` at `now_ms`.
pub fn evaluate(
    cfg: &AlertConfig,
    devices: &[FleetDevice],
    restarts: &mut RestartHistory,
    now_ms: i64,
) -> Vec<Condition> {
    let mut out = Vec::new();
    let ms = |s: f64| (s * 1000.0) as i64;
    for d in devices {
        if d.revoked {
            continue;
        }
        let Some(last) = d.last_seen_ms else { continue };
        let silent_ms = now_ms - last;
        let alive = d.online && silent_ms <= ms(cfg.heartbeat_timeout_s);
        if !alive {
            if silent_ms >= ms(cfg.offline_after_s) {
                out.push(Condition {
                    device: d.id.clone(),
                    kind: "offline",
                    subject: String::new(),
                    detail: format!("not heard from for {} s", silent_ms / 1000),
                });
            }
            continue;
        }
        let Some(t) = d
            .telemetry
            .as_ref()
            .and_then(|v| serde_json::from_value::<Telemetry>(v.clone()).ok())
        else {
            continue;
        };
        if let Some(p) = t.system.disk_used_pct
            && p >= cfg.disk_full_pct
        {
            out.push(Condition {
                device: d.id.clone(),
                kind: "disk_full",
                subject: String::new(),
                detail: format!("disk {p:.0}% full"),
            });
        }
        for m in &t.modems {
            let c = |kind, detail: String| Condition {
                device: d.id.clone(),
                kind,
                subject: m.line.clone(),
                detail,
            };
            let n = restarts.observe(
                &d.id,
                &m.line,
                m.restarts,
                now_ms,
                ms(cfg.modem_restarts_window_s),
            );
            if cfg.modem_restarts > 0 && n >= cfg.modem_restarts {
                out.push(c(
                    "modem_restarts",
                    format!("modem went away {n} times recently"),
                ));
            }
            // Unplugged or its port missing: that is the alert, not what the
            // modem last said about its SIM, network or signal.
            if let Some(why) = &m.disconnected {
                out.push(c(
                    "modem_disconnected",
                    format!("modem disconnected: {why}"),
                ));
                continue;
            }
            match m.sim.as_deref() {
                Some("not_inserted") => out.push(c("sim_missing", "no SIM in the slot".into())),
                Some(s @ ("pin_required" | "pin_rejected" | "puk_required" | "error")) => {
                    out.push(c("sim_missing", format!("SIM not usable: {s}")))
                }
                Some("ready") if !m.registered => {
                    out.push(c("not_registered", "not registered on a network".into()))
                }
                _ => {}
            }
            if let Some(dbm) = m.signal_dbm
                && dbm <= cfg.signal_low_dbm
            {
                out.push(c("signal_low", format!("signal {dbm} dBm")));
            }
        }
    }
    out
}

/// A stored alert.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Alert {
    pub id: i64,
    pub device: String,
    pub kind: String,
    pub subject: String,
    pub detail: String,
    pub raised_ms: i64,
    pub cleared_ms: Option<i64>,
}

/// The JSON a webhook receives.
#[derive(Debug, Serialize)]
pub struct WebhookBody<'a> {
    /// `raised` or `cleared`.
    pub event: &'static str,
    #[serde(flatten)]
    pub alert: &'a Alert,
}

/// POSTs `body` to an `http://` URL (HTTP/1.1, JSON); Ok when answered 2xx.
pub async fn post_json(url: &str, body: &[u8]) -> Result<(), String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| format!("webhook URL {url:?} must start with http://"))?;
    let (hostport, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let addr = if hostport.contains(':') {
        hostport.to_string()
    } else {
        format!("{hostport}:80")
    };
    let go = async {
        let mut s = tokio::net::TcpStream::connect(&addr)
            .await
            .map_err(|e| format!("connecting to {addr}: {e}"))?;
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: {hostport}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\nUser-Agent: crossline-mgmt\r\n\r\n",
            body.len()
        );
        s.write_all(head.as_bytes())
            .await
            .map_err(|e| e.to_string())?;
        s.write_all(body).await.map_err(|e| e.to_string())?;
        let mut buf = vec![0u8; 64];
        let n = s.read(&mut buf).await.map_err(|e| e.to_string())?;
        let line = String::from_utf8_lossy(&buf[..n]);
        let status: u16 = line
            .split(' ')
            .nth(1)
            .and_then(|c| c.parse().ok())
            .ok_or_else(|| format!("no HTTP status from {addr}"))?;
        if (200..300).contains(&status) {
            Ok(())
        } else {
            Err(format!("{addr} answered {status}"))
        }
    };
    tokio::time::timeout(Duration::from_secs(10), go)
        .await
        .map_err(|_| format!("webhook {addr} did not answer within 10 s"))?
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dev(
        id: &str,
        online: bool,
        last: Option<i64>,
        tel: Option<serde_json::Value>,
    ) -> FleetDevice {
        FleetDevice {
            id: id.into(),
            name: None,
            site: None,
            group: None,
            tags: vec![],
            serial: None,
            online,
            revoked: false,
            last_seen_ms: last,
            telemetry: tel,
            telemetry_ms: last,
            desired_version: None,
            applied_version: None,
            config_error: None,
            drift: false,
        }
    }

    #[test]
    fn conditions() {
        let cfg = AlertConfig {
            offline_after_s: 60.0,
            heartbeat_timeout_s: 30.0,
            ..AlertConfig::default()
        };
        let now = 1_000_000;
        let tel = serde_json::json!({"v":1,"system":{"uptime_s":1,"version":"x","disk_used_pct":95.0},
            "modems":[{"line":"gsm0","signal_dbm":-111,"registered":false,"sim":"ready","restarts":0},
                      {"line":"gsm1","registered":false,"sim":"not_inserted","restarts":0},
                      {"line":"gsm2","registered":false,"sim":"ready","restarts":1,
                       "disconnected":"port /dev/ttyUSB7 does not exist"}]});
        let mut h = RestartHistory::default();
        let c = evaluate(
            &cfg,
            &[
                dev("off", false, Some(now - 61_000), None),
                dev("brief", false, Some(now - 10_000), None),
                dev("stale", true, Some(now - 70_000), None),
                dev("sick", true, Some(now - 1000), Some(tel)),
                dev("never", false, None, None),
            ],
            &mut h,
            now,
        );
        let kinds: Vec<(String, &str, String)> = c
            .iter()
            .map(|c| (c.device.clone(), c.kind, c.subject.clone()))
            .collect();
        assert_eq!(
            kinds,
            vec![
                ("off".into(), "offline", "".into()),
                ("stale".into(), "offline", "".into()),
                ("sick".into(), "disk_full", "".into()),
                ("sick".into(), "not_registered", "gsm0".into()),
                ("sick".into(), "signal_low", "gsm0".into()),
                ("sick".into(), "sim_missing", "gsm1".into()),
                // Unplugged: said so, not "not registered".
                ("sick".into(), "modem_disconnected", "gsm2".into()),
            ]
        );
        let unplugged = c.iter().find(|c| c.subject == "gsm2").unwrap();
        assert_eq!(
            unplugged.detail,
            "modem disconnected: port /dev/ttyUSB7 does not exist"
        );
    }

    #[test]
    fn restarts_within_the_window() {
        let mut h = RestartHistory::default();
        assert_eq!(h.observe("d", "l", 5, 0, 100), 0);
        assert_eq!(h.observe("d", "l", 7, 50, 100), 2);
        assert_eq!(
            h.observe("d", "l", 8, 120, 100),
            1,
            "the first sample left the window"
        );
        assert_eq!(h.observe("d", "l", 0, 130, 100), 0, "appliance restarted");
    }
}
