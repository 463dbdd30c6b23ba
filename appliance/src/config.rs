//! Appliance configuration: TOML file, environment overrides, CLI flags.

use anyhow::{Context, Result};
use crossline_core::NodeId;
use crossline_modem::{ModemConfig, Profile};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The whole configuration file (see appliance/crossline-appliance.example.toml).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// This appliance's device id (lowercase, digits, '-', '_'). Leave it
    /// out to enroll with a bootstrap token (`[enroll]`): mgmt assigns it.
    #[serde(default)]
    pub node_id: Option<NodeId>,
    /// Where the SQLite log lives.
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
    pub mqtt: MqttConfig,
    #[serde(default)]
    pub sync: SyncConfig,
    /// Synthetic traffic for demos and tests (off unless configured).
    #[serde(default)]
    pub synthetic: Option<SyntheticConfig>,
    /// The GSM/LTE modems (`[[modems]]`), one per line.
    #[serde(default)]
    pub modems: Vec<ModemEntry>,
    /// The analog lines (`[[fxo]]`), one per FXO port (docs/LINES.md).
    #[serde(default)]
    pub fxo: Vec<FxoEntry>,
    /// Offline auto-reply (`[offline]`); none when absent.
    #[serde(default)]
    pub offline: Option<OfflineConfig>,
    /// Zero-touch enrollment (`[enroll]`): used when the appliance has no
    /// credential of its own yet (see docs/FLEET.md).
    #[serde(default)]
    pub enroll: Option<EnrollConfig>,
    #[serde(default)]
    pub telemetry: TelemetryConfig,
    #[serde(default)]
    pub commands: CommandsConfig,
    /// Firmware updates (`[update]`, docs/OTA.md); `install_update` is
    /// refused without it.
    #[serde(default)]
    pub update: Option<UpdateConfig>,
    /// The IVR for incoming calls (docs/IVR.md): `[ivr]` here, or pushed by
    /// mgmt (which replaces it).
    #[serde(default)]
    pub ivr: Option<crossline_proto::IvrSettings>,
    /// Where the IVR's prompts are, `<prompts_dir>/<language>/<prompt>.wav`
    /// (default `<data_dir>/prompts`; scripts/ivr-prompts writes the demo's).
    #[serde(default)]
    pub prompts_dir: Option<PathBuf>,
    /// The file this configuration was read from (set by [`Config::load`]).
    #[serde(skip)]
    pub source: Option<PathBuf>,
}

/// Remote fleet commands (`[commands]`, see docs/FLEET.md).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommandsConfig {
    /// What `reboot` runs (program and arguments), e.g.
    /// `["systemctl", "reboot"]`. Without it the daemon stops cleanly (exit
    /// status 0) for its supervisor to start it again.
    #[serde(default)]
    pub reboot_command: Option<Vec<String>>,
    /// The log file `collect_logs` returns the tail of.
    #[serde(default)]
    pub log_file: Option<PathBuf>,
}

/// Firmware updates (`[update]`, docs/OTA.md).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateConfig {
    /// mgmt's HTTPS server bundles are downloaded from,
    /// `https://host[:port]` (an `install_update` names a path on it).
    pub server: String,
    /// The CA mgmt's HTTPS certificate must come from (default:
    /// `mqtt.ca_file`); the only CA trusted.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// The keyring bundles must be signed for (PEM CA certificate(s),
    /// `rauc info --keyring`): a bundle it does not verify is never installed.
    pub keyring: PathBuf,
    /// The `rauc` program (it talks to the RAUC service over D-Bus).
    #[serde(default = "d_rauc")]
    pub rauc: PathBuf,
    /// After booting a new slot: how long the uplink and every configured
    /// modem have to come up before the slot is marked bad and the
    /// appliance falls back.
    #[serde(default = "d_health")]
    pub health_timeout_s: u64,
    /// The version of a slot RAUC did not install (the factory image): a
    /// file with `VERSION_ID=...` (os-release) or the version alone;
    /// without it, this daemon's version.
    #[serde(default)]
    pub version_file: Option<PathBuf>,
}

fn d_rauc() -> PathBuf {
    PathBuf::from("rauc")
}
fn d_health() -> u64 {
    600
}

/// Telemetry (`[telemetry]`): how often the appliance reports its health.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TelemetryConfig {
    /// Seconds between telemetry samples (also the heartbeat mgmt watches).
    #[serde(default = "d_telemetry")]
    pub interval_s: f64,
}

fn d_telemetry() -> f64 {
    60.0
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        Self {
            interval_s: d_telemetry(),
        }
    }
}

impl TelemetryConfig {
    pub fn every(&self) -> Duration {
        Duration::from_secs_f64(self.interval_s.clamp(0.1, 86_400.0))
    }
}

/// Enrollment with a bootstrap token (`[enroll]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnrollConfig {
    /// The bootstrap token (`crossline-mgmt enroll token`).
    #[serde(default)]
    pub bootstrap_token: Option<String>,
    /// A file holding the token instead (e.g. baked into the image).
    #[serde(default)]
    pub bootstrap_token_file: Option<PathBuf>,
    /// The board's serial number, when Linux does not tell it.
    #[serde(default)]
    pub serial: Option<String>,
    /// Seconds between repeated requests while waiting for approval.
    #[serde(default = "d_enroll_retry")]
    pub retry_s: u64,
    /// Seconds to wait for each modem's IMEI before asking without it.
    #[serde(default = "d_probe")]
    pub modem_probe_s: u64,
}

fn d_enroll_retry() -> u64 {
    15
}
fn d_probe() -> u64 {
    10
}

impl EnrollConfig {
    /// The token, from `bootstrap_token` or `bootstrap_token_file`.
    pub fn load_token(&self) -> Result<String> {
        if let Some(t) = &self.bootstrap_token {
            return Ok(t.trim().to_string());
        }
        if let Some(p) = &self.bootstrap_token_file {
            let s = std::fs::read_to_string(p)
                .with_context(|| format!("reading bootstrap token from {}", p.display()))?;
            return Ok(s.trim().to_string());
        }
        anyhow::bail!(
            "enroll: set bootstrap_token or bootstrap_token_file (`crossline-mgmt enroll token` prints it)"
        )
    }
}

fn default_data_dir() -> PathBuf {
    PathBuf::from("/var/lib/crossline")
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MqttConfig {
    /// mgmt's broker: `mqtts://host:8883` (TLS, with `ca_file`), or
    /// `mqtt://host:port` (plain; `host:port` alone means plain too).
    pub url: String,
    /// The CA certificate mgmt's broker must present a certificate from
    /// (`crossline-mgmt tls ca` prints it); the only CA trusted, required
    /// with `mqtts://`. Used for enrollment and the uplink alike.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
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

    /// The broker address parsed from `url`, checked against `ca_file`: a
    /// TLS url needs the CA to pin, and a CA with a plain url is refused
    /// (it would silently send everything in clear).
    pub fn broker(&self) -> Result<BrokerUrl> {
        let u = parse_mqtt_url(&self.url)?;
        match (u.tls, &self.ca_file) {
            (true, None) => anyhow::bail!(
                "mqtt.url {:?} is mqtts:// but mqtt.ca_file is not set: give the file with mgmt's CA (`crossline-mgmt tls ca` prints it)",
                self.url
            ),
            (false, Some(ca)) => anyhow::bail!(
                "mqtt.ca_file ({}) is set but mqtt.url {:?} is plain MQTT: use mqtts://{}:8883 (this appliance never falls back to plaintext)",
                ca.display(),
                self.url,
                u.host
            ),
            _ => Ok(u),
        }
    }

    /// rumqttc options for `client_id` at the configured broker, over TLS
    /// pinned to `ca_file` for `mqtts://`.
    pub fn options(&self, client_id: &str) -> Result<(rumqttc::MqttOptions, BrokerUrl)> {
        let u = self.broker()?;
        let mut o = rumqttc::MqttOptions::new(client_id, u.host.clone(), u.port);
        if let (true, Some(ca)) = (u.tls, &self.ca_file) {
            o.set_transport(tls_transport(ca)?);
        }
        Ok((o, u))
    }

    /// A clear explanation when `e` is a TLS refusal (wrong CA, a name the
    /// certificate lacks, a plaintext port); `None` for other errors.
    pub fn tls_problem(&self, e: &rumqttc::ConnectionError) -> Option<String> {
        let text = e.to_string();
        let ca = self
            .ca_file
            .as_deref()
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        if text.contains("UnknownIssuer") || text.contains("BadSignature") {
            Some(format!(
                "TLS: mgmt's broker ({}) presented a certificate not issued by the CA pinned in {ca} ({text}); refusing to connect. Give this appliance mgmt's CA (`crossline-mgmt tls ca`)",
                self.url
            ))
        } else if text.contains("invalid peer certificate") {
            Some(format!(
                "TLS: mgmt's broker ({}) presented a certificate this appliance refuses ({text}); refusing to connect. If it does not name the host, add it to mgmt's [tls] names; if it expired, renew it",
                self.url
            ))
        } else if matches!(e, rumqttc::ConnectionError::Tls(_)) {
            Some(format!(
                "TLS: no TLS session with {} ({text}); is that port mgmt's MQTT-over-TLS listener (default 8883)?",
                self.url
            ))
        } else {
            None
        }
    }
}

/// rumqttc's TLS transport trusting only the CA in `ca_file`.
pub fn tls_transport(ca_file: &Path) -> Result<rumqttc::Transport> {
    let cfg = crossline_tls::pinned_client_config(ca_file)?;
    Ok(rumqttc::Transport::tls_with_config(
        rumqttc::TlsConfiguration::Rustls(cfg),
    ))
}

/// The broker URL syntax is the wire contract's (mgmt parses it too).
pub use crossline_proto::url::{BrokerUrl, parse_mqtt_url};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyncConfig {
    /// Events per MQTT message.
    #[serde(default = "d_batch")]
    pub batch: usize,
    /// Events published but not yet acknowledged, at most.
    #[serde(default = "d_window")]
    pub window: u64,
    /// Without any ack progress for this long, resend from the last ack (the
    /// wait then doubles after each such resend, up to 8×, until reconnect).
    #[serde(default = "d_rto")]
    pub resend_after_ms: u64,
    /// Acknowledged events older than this many days are deleted from the
    /// local log (0: age alone deletes nothing).
    #[serde(default = "d_keep_days")]
    pub keep_days: u64,
    /// The local log keeps at most about this many MiB of acknowledged
    /// events; older acknowledged ones are deleted (0: no size limit).
    /// Unacknowledged events are never deleted.
    #[serde(default = "d_keep_mib")]
    pub keep_mib: u64,
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
fn d_keep_days() -> u64 {
    30
}
fn d_keep_mib() -> u64 {
    512
}

impl Default for SyncConfig {
    fn default() -> Self {
        Self {
            batch: d_batch(),
            window: d_window(),
            resend_after_ms: d_rto(),
            keep_days: d_keep_days(),
            keep_mib: d_keep_mib(),
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
    /// Make every text this many characters long (Cyrillic, like a long
    /// multipart SMS); 0 keeps the short sample texts.
    #[serde(default)]
    pub text_len: usize,
}

/// One modem line (`[[modems]]`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModemEntry {
    /// The line's label in events, logs and commands, e.g. `gsm0`.
    pub label: String,
    /// Serial device (prefer a stable /dev/serial/by-id/... path).
    pub port: String,
    /// Vendor profile: `auto` (default), `generic`, `quectel_ec25`,
    /// `simcom_sim7600`, `simcom_sim800`, `huawei_e173`.
    #[serde(default)]
    pub profile: Profile,
    /// SIM PIN, if the SIM is locked.
    #[serde(default)]
    pub pin: Option<String>,
    /// The line's own phone number (E.164); becomes `to` of received messages.
    #[serde(default)]
    pub number: Option<String>,
    /// Serial speed.
    #[serde(default = "d_baud")]
    pub baud: u32,
    /// Language of the line's customers (`uk`, `ru`, `ro`, `en`...): the
    /// offline auto-reply's fallback when the text does not tell.
    #[serde(default)]
    pub language: Option<String>,
    /// Ask the network for delivery reports.
    #[serde(default = "d_true")]
    pub status_reports: bool,
    /// How long a sent part waits for its delivery report before it is
    /// logged `no_report`: the SMSC's validity period (the appliance sends
    /// none, so the operator's default applies; 3 days when not set).
    #[serde(default, deserialize_with = "opt_duration")]
    pub report_window: Option<Duration>,
    /// Driver tuning; the defaults suit real modems. Durations as `"10s"`,
    /// `"500ms"`, `"5m"` or seconds.
    #[serde(default, deserialize_with = "opt_duration")]
    pub command_timeout: Option<Duration>,
    #[serde(default, deserialize_with = "opt_duration")]
    pub send_timeout: Option<Duration>,
    /// How often the driver checks signal and registration (and the
    /// appliance publishes telemetry).
    #[serde(default, deserialize_with = "opt_duration")]
    pub health_interval: Option<Duration>,
    #[serde(default, deserialize_with = "opt_duration")]
    pub retry_backoff: Option<Duration>,
    #[serde(default, deserialize_with = "opt_duration")]
    pub reopen_backoff_max: Option<Duration>,
    /// Deadline of AT+CMGL=4 (the sweep of stored messages).
    #[serde(default, deserialize_with = "opt_duration")]
    pub list_timeout: Option<Duration>,
    /// How long to wait for the network's USSD answer.
    #[serde(default, deserialize_with = "opt_duration")]
    pub ussd_timeout: Option<Duration>,
    /// Periodic AT+CMGL=4 for messages whose +CMTI was missed.
    #[serde(default, deserialize_with = "opt_duration")]
    pub sweep_interval: Option<Duration>,
    /// An incomplete multipart message is delivered (with a marker) this
    /// long after its first part.
    #[serde(default, deserialize_with = "opt_duration")]
    pub reassembly_timeout: Option<Duration>,
    /// Most SMS parts submitted per minute (default 30; 0 = no limit).
    /// Operators block SIMs that send faster (docs/MODEMS.md).
    #[serde(default)]
    pub rate_limit: Option<u32>,
    /// Attempts per part on temporary errors before the message fails
    /// (default 4).
    #[serde(default)]
    pub send_attempts: Option<u32>,
    /// Override the profile's delivery mode: `stored` (+CMTI) or `direct` (+CMT).
    #[serde(default)]
    pub delivery: Option<crossline_modem::config::Delivery>,
    /// Override the profile's AT+CPMS memories, e.g. `["SM", "SM", "SM"]`.
    #[serde(default)]
    pub storage: Option<[String; 3]>,
    /// Quectel: where URCs go (`AT+QURCCFG="urcport"`: `usbat`, `usbmodem`, `uart1`).
    #[serde(default)]
    pub urc_port: Option<String>,
    /// Keeps directly delivered (+CMT) parts across restarts; defaults to
    /// `<data_dir>/<label>.parts.json` when run by the appliance.
    #[serde(default)]
    pub state_file: Option<PathBuf>,
    /// The modem's call audio (PCM) serial port; none = signalling only
    /// (docs/MODEMS.md "Voice audio").
    #[serde(default)]
    pub voice_port: Option<String>,
    /// Quectel: call audio over USB audio class, this ALSA device (its PCM
    /// name, from `aplay -L`, e.g. `plughw:CARD=Android,DEV=0`): the
    /// appliance opens it for each call's audio (docs/MODEMS.md "Voice
    /// audio").
    #[serde(default)]
    pub voice_alsa: Option<String>,
    /// What paces the `voice_alsa` streams: `device` (real hardware, the
    /// default) or `clock` (ALSA `null`/`file` devices in simulators and
    /// tests, which do not pace themselves).
    #[serde(default)]
    pub voice_alsa_pacing: crate::voice::AlsaPacing,
    /// Warn when no audio comes this long after the audio command (default 1.5 s).
    #[serde(default, deserialize_with = "opt_duration")]
    pub voice_start_timeout: Option<Duration>,
    /// Override the profile's command that starts call audio.
    #[serde(default)]
    pub voice_enable: Option<String>,
    /// Override the profile's command that stops call audio at hang-up.
    #[serde(default)]
    pub voice_disable: Option<String>,
}

/// One analog line (`[[fxo]]`, docs/LINES.md "Configuration"): where its
/// pins are and the FXO settings, as a nested table beside the port.
///
/// ```toml
/// [[fxo]]
/// label = "fxo0"
/// port = { kind = "link", path = "/run/crossline/fxo0.sock" }   # or kind = "gpio", hook/ring/loop_sense
/// language = "uk"
/// line = { country = "eu", supervision = "loop_current" }
/// ```
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FxoEntry {
    /// The line's label in events, logs and telemetry, e.g. `fxo0` (also
    /// the driver's `name`).
    pub label: String,
    /// Where its pins (and, for a link, its audio) are.
    pub port: crossline_line::Port,
    /// The line's own phone number (E.164), if known.
    #[serde(default)]
    pub number: Option<String>,
    /// Language of the line's callers: the IVR's prompts for its calls.
    #[serde(default)]
    pub language: Option<String>,
    /// Ring cadence, caller ID standard, supervision, pin levels
    /// (`crossline_line::LineConfig`; its `name` is the label).
    #[serde(default)]
    pub line: crossline_line::LineConfig,
    /// The line's audio on an ALSA device (its PCM name, from `aplay -L`,
    /// e.g. `plughw:CARD=Codec,DEV=0`): caller ID between the rings and the
    /// call's audio. A GPIO line needs it: without it the line has no
    /// audio (calls come without a number, the IVR is silent). On a link
    /// it replaces the link's audio (signalling stays on the link).
    #[serde(default)]
    pub voice_alsa: Option<String>,
    /// What paces the `voice_alsa` streams: `device` (the default) or
    /// `clock` (ALSA `null`/`file` devices, which do not pace themselves).
    #[serde(default)]
    pub voice_alsa_pacing: crate::voice::AlsaPacing,
}

impl FxoEntry {
    /// A line on `port` with the default settings (country `eu`).
    pub fn new(label: impl Into<String>, port: crossline_line::Port) -> Self {
        Self {
            label: label.into(),
            port,
            number: None,
            language: None,
            line: crossline_line::LineConfig::default(),
            voice_alsa: None,
            voice_alsa_pacing: crate::voice::AlsaPacing::Device,
        }
    }

    /// The line's ALSA device (`voice_alsa`), if it has one.
    pub fn alsa_line(&self) -> Option<crate::voice::AlsaLine> {
        Some(crate::voice::AlsaLine {
            line: self.label.clone(),
            device: self.voice_alsa.clone()?,
            pacing: self.voice_alsa_pacing,
        })
    }

    /// The driver's configuration: `line`, named after the label.
    pub fn line_config(&self) -> crossline_line::LineConfig {
        let mut c = self.line.clone();
        c.name.clone_from(&self.label);
        c
    }
}

/// The report window of a line that sets none: a common SMSC validity period.
pub const DEFAULT_REPORT_WINDOW: Duration = Duration::from_secs(3 * 24 * 3600);

fn d_baud() -> u32 {
    115_200
}
fn d_true() -> bool {
    true
}

fn opt_duration<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    crossline_modem::config::duration::deserialize(d).map(Some)
}

impl ModemEntry {
    /// The line's ALSA device for call audio (`voice_alsa`), if it has one.
    pub fn alsa_line(&self) -> Option<crate::voice::AlsaLine> {
        Some(crate::voice::AlsaLine {
            line: self.label.clone(),
            device: self.voice_alsa.clone()?,
            pacing: self.voice_alsa_pacing,
        })
    }

    /// A line with defaults.
    pub fn new(label: impl Into<String>, port: impl Into<String>) -> Self {
        Self {
            label: label.into(),
            port: port.into(),
            profile: Profile::Auto,
            pin: None,
            number: None,
            baud: d_baud(),
            language: None,
            status_reports: true,
            report_window: None,
            command_timeout: None,
            send_timeout: None,
            health_interval: None,
            retry_backoff: None,
            reopen_backoff_max: None,
            list_timeout: None,
            ussd_timeout: None,
            sweep_interval: None,
            reassembly_timeout: None,
            rate_limit: None,
            send_attempts: None,
            delivery: None,
            storage: None,
            urc_port: None,
            state_file: None,
            voice_port: None,
            voice_alsa: None,
            voice_alsa_pacing: crate::voice::AlsaPacing::Device,
            voice_start_timeout: None,
            voice_enable: None,
            voice_disable: None,
        }
    }

    /// How long a sent part waits for its delivery report (see `report_window`).
    pub fn report_window(&self) -> Duration {
        self.report_window.unwrap_or(DEFAULT_REPORT_WINDOW)
    }

    /// The driver's configuration for this line.
    pub fn driver_config(&self) -> ModemConfig {
        let mut c = ModemConfig::new(self.label.clone(), self.port.clone(), self.profile);
        c.pin = self.pin.clone();
        c.own_number = self.number.clone();
        c.status_reports = self.status_reports;
        c.state_file = self.state_file.clone();
        if let Some(v) = self.command_timeout {
            c.command_timeout = v;
        }
        if let Some(v) = self.send_timeout {
            c.send_timeout = v;
        }
        if let Some(v) = self.health_interval {
            c.health_interval = v;
        }
        if let Some(v) = self.retry_backoff {
            c.retry_backoff = v;
        }
        if let Some(v) = self.reopen_backoff_max {
            c.reopen_backoff_max = v;
        }
        if let Some(v) = self.list_timeout {
            c.list_timeout = v;
        }
        if let Some(v) = self.ussd_timeout {
            c.ussd_timeout = v;
        }
        if let Some(v) = self.sweep_interval {
            c.sweep_interval = v;
        }
        if let Some(v) = self.reassembly_timeout {
            c.reassembly_timeout = v;
        }
        if let Some(v) = self.rate_limit {
            c.rate_limit = v;
        }
        if let Some(v) = self.send_attempts {
            c.send_attempts = v;
        }
        c.delivery = self.delivery.or(c.delivery);
        if self.storage.is_some() {
            c.storage = self.storage.clone();
        }
        if self.urc_port.is_some() {
            c.urc_port = self.urc_port.clone();
        }
        c.voice_port = self.voice_port.clone();
        c.voice_alsa = self.voice_alsa.clone();
        if let Some(v) = self.voice_start_timeout {
            c.voice_start_timeout = v;
        }
        c.voice_enable = self.voice_enable.clone();
        c.voice_disable = self.voice_disable.clone();
        c
    }
}

/// Offline auto-reply (`[offline]`): when the uplink has been down for
/// `after_s`, a customer's SMS is answered once per `window_s` with the text
/// in their language (see docs/APPLIANCE.md for the language rule).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OfflineConfig {
    /// Seconds without uplink before auto-replies start.
    #[serde(default = "d_after")]
    pub after_s: u64,
    /// At most one auto-reply per customer number in this many seconds.
    #[serde(default = "d_offline_window")]
    pub window_s: u64,
    /// Language used when neither the text nor the line tells.
    #[serde(default = "d_lang")]
    pub default_language: String,
    /// Reply text per language code (`uk`, `ru`, `ro`, `en`, ...).
    pub texts: BTreeMap<String, String>,
}

fn d_after() -> u64 {
    300
}
fn d_offline_window() -> u64 {
    86_400
}
fn d_lang() -> String {
    "en".into()
}

impl Config {
    /// A configuration with no modems, no auto-reply, no synthetic traffic
    /// and default sync settings.
    pub fn new(node_id: NodeId, data_dir: PathBuf, mqtt: MqttConfig) -> Self {
        Self {
            node_id: Some(node_id),
            data_dir,
            mqtt,
            sync: SyncConfig::default(),
            synthetic: None,
            modems: Vec::new(),
            fxo: Vec::new(),
            offline: None,
            enroll: None,
            telemetry: TelemetryConfig::default(),
            commands: CommandsConfig::default(),
            update: None,
            ivr: None,
            prompts_dir: None,
            source: None,
        }
    }

    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading config {}", path.display()))?;
        let mut cfg: Config =
            toml::from_str(&text).with_context(|| format!("parsing config {}", path.display()))?;
        cfg.validate()?;
        cfg.source = Some(path.to_path_buf());
        Ok(cfg)
    }

    /// What to check when mgmt's broker refuses this appliance's
    /// credential: where the device id and secret come from, and how to
    /// get a valid one.
    pub fn credential_hint(&self) -> String {
        let file = self
            .source
            .as_deref()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "the appliance's configuration".into());
        let identity = crate::enroll::identity_path(&self.data_dir);
        if identity.exists() {
            format!(
                "this appliance uses the credential it got at enrollment ({}); if mgmt no longer knows it (device removed, revoked or re-keyed), delete that file and restart to enroll again with [enroll] in {file}",
                identity.display()
            )
        } else {
            let secret = match &self.mqtt.secret_file {
                Some(p) => format!("[mqtt] secret_file ({})", p.display()),
                None => "[mqtt] secret".into(),
            };
            format!(
                "check node_id and {secret} in {file} against what `crossline-mgmt device add` issued (`crossline-mgmt device list` shows the known devices), or re-enroll: remove node_id and the secret and set [enroll]"
            )
        }
    }

    /// The device id (present once enrolled or configured).
    pub fn device(&self) -> Result<&NodeId> {
        self.node_id.as_ref().context(
            "no node_id: configure node_id and mqtt.secret, or [enroll] with a bootstrap token",
        )
    }

    /// The directory of the IVR's prompts.
    pub fn prompts_dir(&self) -> PathBuf {
        self.prompts_dir
            .clone()
            .unwrap_or_else(|| self.data_dir.join("prompts"))
    }

    /// The WAV file of prompt `id` in `language`.
    pub fn prompt_path(&self, language: &str, id: &str) -> PathBuf {
        self.prompts_dir().join(language).join(format!("{id}.wav"))
    }

    /// The IVR is runnable: its menus and prompts check out and every
    /// prompt has its file in every language.
    fn validate_ivr(&self) -> Result<()> {
        let Some(ivr) = &self.ivr else { return Ok(()) };
        ivr.check().map_err(anyhow::Error::msg)?;
        for (language, id) in ivr.prompt_files() {
            let f = self.prompt_path(language, id);
            if !f.is_file() {
                anyhow::bail!(
                    "ivr: prompt {id:?} in {language:?} has no file {}: put its WAV (8 kHz mono) there (the demo's: scripts/ivr-prompts {})",
                    f.display(),
                    self.prompts_dir().display()
                );
            }
        }
        Ok(())
    }

    pub fn validate(&self) -> Result<()> {
        self.mqtt.broker()?;
        if let Some(u) = &self.update {
            if !u.server.starts_with("https://") {
                anyhow::bail!(
                    "update.server {:?} must be https:// (bundles are fetched over TLS pinned to mgmt's CA)",
                    u.server
                );
            }
            if u.ca_file.is_none() && self.mqtt.ca_file.is_none() {
                anyhow::bail!(
                    "[update] needs ca_file (or mqtt.ca_file): the CA mgmt's HTTPS certificate comes from"
                );
            }
            if u.health_timeout_s == 0 {
                anyhow::bail!("update.health_timeout_s must be at least 1");
            }
        }
        self.validate_ivr()?;
        if self.node_id.is_none() && self.enroll.is_none() {
            anyhow::bail!(
                "no node_id: configure node_id and mqtt.secret, or [enroll] with a bootstrap token"
            );
        }
        if let Some(e) = &self.enroll {
            e.load_token()?;
        }
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
        if self.modems.len() > crossline_proto::MAX_TELEMETRY_MODEMS {
            anyhow::bail!(
                "modems: {} lines configured, at most {} (mgmt refuses telemetry describing more)",
                self.modems.len(),
                crossline_proto::MAX_TELEMETRY_MODEMS
            );
        }
        let mut labels = std::collections::BTreeSet::new();
        for m in &self.modems {
            if m.label.is_empty() || m.label.len() > 64 {
                anyhow::bail!("modems: label {:?} must be 1 to 64 characters", m.label);
            }
            if !labels.insert(m.label.as_str()) {
                anyhow::bail!(
                    "modems: label {:?} is used twice; every line needs its own label",
                    m.label
                );
            }
            if m.port.is_empty() {
                anyhow::bail!("modems: line {} has no port", m.label);
            }
            if m.voice_port.is_some() && m.voice_alsa.is_some() {
                anyhow::bail!(
                    "modems: line {} has both voice_port and voice_alsa; call audio goes to one of them: keep the one the modem is set up for",
                    m.label
                );
            }
        }
        for f in &self.fxo {
            if f.label.is_empty() || f.label.len() > 64 {
                anyhow::bail!("fxo: label {:?} must be 1 to 64 characters", f.label);
            }
            if !labels.insert(f.label.as_str()) {
                anyhow::bail!(
                    "fxo: label {:?} is used twice (by a modem or another analog line); every line needs its own label",
                    f.label
                );
            }
            f.line_config()
                .validate()
                .map_err(|e| anyhow::anyhow!("fxo: line {}: {e}", f.label))?;
        }
        if let Some(o) = &self.offline {
            if o.texts.is_empty() {
                anyhow::bail!(
                    "offline.texts is empty: give at least one reply text, e.g. en = \"...\""
                );
            }
            if o.texts.values().any(|t| t.trim().is_empty()) {
                anyhow::bail!("offline.texts: a reply text is empty");
            }
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
        let tls = |url: &str, ca: Option<&str>| MqttConfig {
            url: url.into(),
            ca_file: ca.map(PathBuf::from),
            secret: None,
            secret_file: None,
            keep_alive_s: 10,
        };
        let e = tls("mqtts://h", None).broker().unwrap_err().to_string();
        assert!(e.contains("ca_file") && e.contains("tls ca"), "{e}");
        let e = tls("mqtt://h", Some("/ca.pem"))
            .broker()
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("mqtts://h:8883") && e.contains("never falls back"),
            "{e}"
        );
        assert!(tls("mqtts://h", Some("/ca.pem")).broker().unwrap().tls);
        // The URL's own errors come through (crossline_proto::url has the rest).
        let e = tls("https://h", None).broker().unwrap_err().to_string();
        assert!(e.contains("use mqtts://host:port"), "{e}");
    }

    #[test]
    fn example_config_parses() {
        let text = include_str!("../crossline-appliance.example.toml");
        let cfg: Config = toml::from_str(text).unwrap();
        cfg.validate().unwrap();
        assert_eq!(cfg.modems.len(), 2);
        assert_eq!(cfg.modems[0].label, "gsm0");
        assert_eq!(cfg.modems[0].driver_config().profile, Profile::QuectelEc25);
        let off = cfg.offline.unwrap();
        assert!(off.texts.contains_key("uk"));
        let up = cfg.update.unwrap();
        assert_eq!(up.health_timeout_s, 600);
        assert_eq!(up.rauc, PathBuf::from("rauc"));
    }

    /// docs/LINES.md's `[[fxo]]` block and its `line` keys (with their
    /// defaults) are what the appliance accepts; a misspelt key and a
    /// label a modem has are refused.
    #[test]
    fn the_analog_line_configuration_in_the_docs_is_accepted() {
        let doc = include_str!("../../docs/LINES.md");
        let section = doc.split("## Configuration").nth(1).unwrap();
        let mut blocks = section
            .split("```toml\n")
            .skip(1)
            .map(|b| b.split("```").next().unwrap());
        let (entry, keys) = (blocks.next().unwrap(), blocks.next().unwrap());
        let head = "node_id = \"b\"\n[mqtt]\nurl = \"mqtt://h:1\"\nsecret = \"s\"\n";
        let cfg: Config =
            toml::from_str(&format!("{head}{entry}")).unwrap_or_else(|e| panic!("{e}\n{entry}"));
        cfg.validate().unwrap();
        let f = &cfg.fxo[0];
        assert_eq!(
            f.alsa_line(),
            Some(crate::voice::AlsaLine {
                line: "fxo0".into(),
                device: "plughw:CARD=Codec,DEV=0".into(),
                pacing: crate::voice::AlsaPacing::Device,
            })
        );
        let clock = entry.replace(
            "# voice_alsa_pacing = \"device\"",
            "voice_alsa_pacing = \"clock\"",
        );
        let cfg: Config = toml::from_str(&format!("{head}{clock}")).unwrap();
        assert_eq!(
            cfg.fxo[0].voice_alsa_pacing,
            crate::voice::AlsaPacing::Clock
        );
        let bad = entry.replace(
            "# voice_alsa_pacing = \"device\"",
            "voice_alsa_pacing = \"fast\"",
        );
        let e = toml::from_str::<Config>(&format!("{head}{bad}"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("fast") && e.contains("clock"), "{e}");
        assert_eq!(
            (f.label.as_str(), f.language.as_deref()),
            ("fxo0", Some("uk"))
        );
        assert_eq!(f.line_config().name, "fxo0");
        assert_eq!(f.line.country, crossline_line::Country::Ua);
        let line: crossline_line::LineConfig =
            toml::from_str(keys).unwrap_or_else(|e| panic!("{e}\n{keys}"));
        assert_eq!(line, crossline_line::LineConfig::default());

        let typo = format!("{head}{}", entry.replace("country", "contry"));
        assert!(toml::from_str::<Config>(&typo).is_err());
        let twice = format!("{head}[[modems]]\nlabel = \"fxo0\"\nport = \"/dev/ttyUSB0\"\n{entry}");
        let e = toml::from_str::<Config>(&twice)
            .unwrap()
            .validate()
            .unwrap_err()
            .to_string();
        assert!(e.contains("fxo0") && e.contains("twice"), "{e}");
        let bad = format!(
            "{head}{}",
            entry.replace("country = \"ua\"", "tolerance_pct = 90")
        );
        let e = toml::from_str::<Config>(&bad)
            .unwrap()
            .validate()
            .unwrap_err()
            .to_string();
        assert!(e.contains("fxo0"), "{e}");
    }

    /// docs/MODEMS.md's configuration block is what the appliance accepts,
    /// and each tuning key it names reaches the driver.
    #[test]
    fn the_modem_configuration_in_the_docs_is_accepted() {
        let doc = include_str!("../../docs/MODEMS.md");
        let section = doc.split("## Configuration").nth(1).unwrap();
        let block = section
            .split("```toml\n")
            .nth(1)
            .unwrap()
            .split("```")
            .next()
            .unwrap();
        let text =
            format!("node_id = \"b\"\n[mqtt]\nurl = \"mqtt://h:1\"\nsecret = \"s\"\n{block}");
        let cfg: Config = toml::from_str(&text).unwrap_or_else(|e| panic!("{e}\n{block}"));
        cfg.validate().unwrap();
        let c = cfg.modems[0].driver_config();
        assert_eq!(c.line, "gsm0");
        assert_eq!(c.own_number.as_deref(), Some("+380670000001"));
        assert_eq!(cfg.modems[0].report_window(), DEFAULT_REPORT_WINDOW);
        assert_eq!(
            cfg.modems[0].report_window,
            Some(Duration::from_secs(72 * 3600))
        );
        assert_eq!(c.list_timeout, Duration::from_secs(30));
        assert_eq!(c.ussd_timeout, Duration::from_secs(30));
        assert_eq!(c.sweep_interval, Duration::from_secs(300));
        assert_eq!(c.reassembly_timeout, Duration::from_secs(1800));
        assert_eq!((c.rate_limit, c.send_attempts), (30, 4));
        // The keys commented out are settable too.
        let more = text
            .replace("# delivery", "delivery")
            .replace("# storage", "storage")
            .replace("# urc_port", "urc_port")
            .replace("# voice_port", "voice_port")
            .replace("# voice_start_timeout", "voice_start_timeout")
            .replace("# voice_enable", "voice_enable")
            .replace("# voice_disable", "voice_disable")
            .replace("send_attempts = 4", "send_attempts = 7");
        let cfg: Config = toml::from_str(&more).unwrap();
        let c = cfg.modems[0].driver_config();
        assert_eq!(c.delivery, Some(crossline_modem::Delivery::Stored));
        assert_eq!(
            c.storage,
            Some(["SM".to_string(), "SM".into(), "SM".into()])
        );
        assert_eq!(c.urc_port.as_deref(), Some("usbat"));
        assert_eq!(c.send_attempts, 7);
        assert_eq!(
            c.voice_port.as_deref(),
            Some("/dev/serial/by-id/usb-Quectel_EC25-if01-port0")
        );
        assert_eq!(c.voice_start_timeout, Duration::from_millis(1500));
        assert_eq!(c.voice_enable.as_deref(), Some("AT+QPCMV=1,0"));
        assert_eq!(c.voice_disable.as_deref(), Some("AT+QPCMV=0"));
        // audio goes to the serial port or to ALSA, not both
        let both = more.replace("# voice_alsa", "voice_alsa");
        let cfg: Config = toml::from_str(&both).unwrap();
        let err = cfg.validate().unwrap_err().to_string();
        assert!(err.contains("voice_port and voice_alsa"), "{err}");
        // The defaults are the ones the block states.
        let d = ModemEntry::new("gsm0", "/dev/x").driver_config();
        assert_eq!((d.rate_limit, d.send_attempts), (30, 4));
        assert_eq!(d.sweep_interval, Duration::from_secs(300));
    }

    #[test]
    fn duplicate_labels_are_refused() {
        let mut cfg = Config::new(
            NodeId::new("b").unwrap(),
            "/tmp".into(),
            MqttConfig {
                url: "mqtt://h:1".into(),
                ca_file: None,
                secret: None,
                secret_file: None,
                keep_alive_s: 10,
            },
        );
        cfg.modems = vec![ModemEntry::new("gsm0", "/a"), ModemEntry::new("gsm0", "/b")];
        let e = cfg.validate().unwrap_err().to_string();
        assert!(e.contains("used twice"), "{e}");
    }
}
