//! Appliance configuration: TOML file, environment overrides, CLI flags.

use anyhow::{Context, Result};
use crossline_core::NodeId;
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The whole configuration file (see appliance/crossline-appliance.example.toml).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// This appliance's device id (lowercase, digits, '-', '_').
    pub node_id: NodeId,
    /// Where the SQLite log lives.
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
    pub mqtt: MqttConfig,
    #[serde(default)]
    pub sync: SyncConfig,
    /// Synthetic traffic for demos and tests (off unless configured).
    #[serde(default)]
    pub synthetic: Option<SyntheticConfig>,
}

fn default_data_dir() -> PathBuf {
    PathBuf::from("/var/lib/crossline")
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MqttConfig {
    /// `mqtt://host:port` (or `host:port`) of mgmt's broker.
    pub url: String,
    /// The device secret issued by mgmt (username is the node id).
    #[serde(default)]
    pub secret: Option<String>,
    /// A file holding the secret instead (preferred on devices).
    #[serde(default)]
    pub secret_file: Option<PathBuf>,
    #[serde(default = "default_keep_alive")]
    pub keep_alive_s: u64,
}

fn default_keep_alive() -> u64 {
    10
}

impl MqttConfig {
    /// The secret, from `secret` or `secret_file`.
    pub fn load_secret(&self) -> Result<String> {
        if let Some(s) = &self.secret {
            return Ok(s.clone());
        }
        if let Some(p) = &self.secret_file {
            let s = std::fs::read_to_string(p)
                .with_context(|| format!("reading device secret from {}", p.display()))?;
            return Ok(s.trim().to_string());
        }
        anyhow::bail!(
            "no device secret: set mqtt.secret or mqtt.secret_file (issued by `crossline-mgmt device add`)"
        )
    }

    /// Host and port parsed from `url`.
    pub fn host_port(&self) -> Result<(String, u16)> {
        parse_mqtt_url(&self.url)
    }
}

/// Parses `mqtt://host:port`, `tcp://host:port` or `host:port` (port defaults to 1883).
pub fn parse_mqtt_url(url: &str) -> Result<(String, u16)> {
    let rest = url
        .strip_prefix("mqtt://")
        .or_else(|| url.strip_prefix("tcp://"))
        .unwrap_or(url);
    let rest = rest.trim_end_matches('/');
    let (host, port) = match rest.rsplit_once(':') {
        Some((h, p)) => (
            h,
            p.parse::<u16>()
                .with_context(|| format!("bad port in MQTT url {url:?}"))?,
        ),
        None => (rest, 1883),
    };
    if host.is_empty() {
        anyhow::bail!("no host in MQTT url {url:?} (expected mqtt://host:port)");
    }
    Ok((host.to_string(), port))
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyncConfig {
    /// Events per MQTT message.
    #[serde(default = "d_batch")]
    pub batch: usize,
    /// Events published but not yet acknowledged, at most.
    #[serde(default = "d_window")]
    pub window: u64,
    /// Without any ack progress for this long, resend from the last ack.
    #[serde(default = "d_rto")]
    pub resend_after_ms: u64,
}

fn d_batch() -> usize {
    256
}
fn d_window() -> u64 {
    4096
}
fn d_rto() -> u64 {
    3000
}

impl Default for SyncConfig {
    fn default() -> Self {
        Self {
            batch: d_batch(),
            window: d_window(),
            resend_after_ms: d_rto(),
        }
    }
}

impl SyncConfig {
    pub fn resend_after(&self) -> Duration {
        Duration::from_millis(self.resend_after_ms.max(100))
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyntheticConfig {
    /// Events per second.
    pub rate: f64,
    /// Stop after this many events (0 = run for ever).
    #[serde(default)]
    pub total: u64,
}

impl Config {
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading config {}", path.display()))?;
        let cfg: Config =
            toml::from_str(&text).with_context(|| format!("parsing config {}", path.display()))?;
        cfg.validate()?;
        Ok(cfg)
    }

    pub fn validate(&self) -> Result<()> {
        self.mqtt.host_port()?;
        if self.sync.batch == 0 || self.sync.batch > crossline_proto::MAX_BATCH {
            anyhow::bail!(
                "sync.batch must be 1..={} (got {})",
                crossline_proto::MAX_BATCH,
                self.sync.batch
            );
        }
        if self.sync.window < self.sync.batch as u64 {
            anyhow::bail!("sync.window must be at least sync.batch");
        }
        Ok(())
    }

    pub fn db_path(&self) -> PathBuf {
        self.data_dir.join("appliance.db")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(parse_mqtt_url("mqtt://h:1").unwrap(), ("h".into(), 1));
        assert_eq!(parse_mqtt_url("h").unwrap(), ("h".into(), 1883));
        assert!(parse_mqtt_url("mqtt://h:x").is_err());
        assert!(parse_mqtt_url("mqtt://:1").is_err());
    }

    #[test]
    fn example_config_parses() {
        let text = include_str!("../crossline-appliance.example.toml");
        let cfg: Config = toml::from_str(text).unwrap();
        cfg.validate().unwrap();
    }
}
