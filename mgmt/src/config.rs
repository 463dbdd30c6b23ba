//! mgmt configuration: TOML file, environment overrides, CLI flags.

use anyhow::{Context, Result};
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// This mgmt instance's node id: the `origin` of every event it creates
    /// (replies asked for, resolutions, routing decisions, ...). Each mgmt
    /// instance sharing a database or a fleet needs its own; it must not be
    /// a device's id (docs/API.md, "Configuration").
    #[serde(default = "default_node_id")]
    pub node_id: crossline_core::NodeId,
    /// Database, generated secrets and tokens live here.
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
    #[serde(default)]
    pub http: HttpConfig,
    #[serde(default)]
    pub mqtt: MqttConfig,
    #[serde(default)]
    pub site: SiteConfig,
    #[serde(default)]
    pub fleet: FleetConfig,
    #[serde(default)]
    pub tls: TlsConfig,
    #[serde(default)]
    pub ingest: IngestConfig,
}

/// What mgmt accepts from devices (`[ingest]`, see docs/PROTOCOL.md "Trust").
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IngestConfig {
    /// How many seconds ahead of mgmt's clock a device's event may be
    /// stamped. A later stamp is replaced by mgmt's time when the event is
    /// stored (the event is flagged and counted) and never moves mgmt's clock.
    #[serde(default = "default_max_clock_skew")]
    pub max_clock_skew_s: u64,
}

fn default_max_clock_skew() -> u64 {
    crossline_store::sqlite::DEFAULT_MAX_CLOCK_SKEW.as_secs()
}

impl Default for IngestConfig {
    fn default() -> Self {
        Self {
            max_clock_skew_s: default_max_clock_skew(),
        }
    }
}

impl IngestConfig {
    pub fn max_clock_skew(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.max_clock_skew_s)
    }
}

/// TLS for MQTT and HTTPS (`[tls]`, see docs/FLEET.md "TLS").
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// Serve MQTT over TLS (`mqtt.tls_listen`) and HTTPS (`http.tls_listen`).
    #[serde(default = "d_true")]
    pub enabled: bool,
    /// Extra names (DNS names or IP addresses) for the development
    /// certificate, besides localhost, 127.0.0.1, ::1 and the host name.
    #[serde(default)]
    pub names: Vec<String>,
    /// Production: the certificate chain (PEM, server certificate first).
    /// Without it, mgmt generates a development CA and certificate in
    /// `<data_dir>/tls/` on first run.
    #[serde(default)]
    pub cert_file: Option<PathBuf>,
    /// Production: the certificate's private key (PEM).
    #[serde(default)]
    pub key_file: Option<PathBuf>,
    /// Production: the CA that issued `cert_file`, which appliances pin.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
}

impl Default for TlsConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            names: Vec::new(),
            cert_file: None,
            key_file: None,
            ca_file: None,
        }
    }
}

impl TlsConfig {
    /// mgmt's certificate: the configured files, or the development ones
    /// (generated on first run in `<data_dir>/tls/`, reused after).
    pub fn identity(&self, data_dir: &Path) -> Result<crossline_tls::ServerIdentity> {
        match (&self.cert_file, &self.key_file, &self.ca_file) {
            (Some(cert), Some(key), Some(ca)) => {
                Ok(crossline_tls::ServerIdentity::load(cert, key, ca)?)
            }
            (None, None, None) => {
                let dir = data_dir.join("tls");
                let dev = crossline_tls::dev::ensure(&dir, &self.names)?;
                if dev.new_ca {
                    tracing::info!(ca = %dev.identity.ca_file.display(), "generated a development CA; appliances must pin this file (docs/FLEET.md, \"TLS\")");
                } else if dev.new_server_cert {
                    tracing::info!(cert = %dev.identity.cert_file.display(), "issued a new development server certificate (names changed or it was due for renewal); the CA is unchanged");
                }
                Ok(dev.identity)
            }
            _ => anyhow::bail!(
                "[tls]: set all of cert_file, key_file and ca_file (production), or none of them (development certificates in {})",
                data_dir.join("tls").display()
            ),
        }
    }

    /// The CA file appliances pin: the configured one, or the development CA.
    pub fn ca_path(&self, data_dir: &Path) -> PathBuf {
        self.ca_file
            .clone()
            .unwrap_or_else(|| data_dir.join("tls").join("ca.pem"))
    }
}

/// Fleet management (`[fleet]`, see docs/FLEET.md).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FleetConfig {
    /// Let appliances enroll with the bootstrap token
    /// (`<data_dir>/bootstrap.token`, printed by `crossline-mgmt enroll token`).
    #[serde(default = "d_true")]
    pub enrollment: bool,
    /// Milliseconds between the fleet service's sweeps (credential delivery,
    /// sessions of revoked devices).
    #[serde(default = "d_tick")]
    pub tick_ms: u64,
    /// Alert thresholds and webhook (`[fleet.alerts]`).
    #[serde(default)]
    pub alerts: crate::services::fleet::alerts::AlertConfig,
    /// Telemetry messages kept per device and minute (on average); faster
    /// ones are dropped, counted and logged. The appliance sends one a
    /// minute by default (`[telemetry] interval_s`).
    #[serde(default = "d_telemetry_per_min")]
    pub telemetry_per_min: u32,
    /// Telemetry messages a device may send in a burst above that rate.
    #[serde(default = "d_telemetry_burst")]
    pub telemetry_burst: u32,
    /// Enrollment requests waiting for an admin, at most: a request with a
    /// new enrollment id beyond this is refused (not recorded) and logged.
    #[serde(default = "d_max_pending")]
    pub max_pending_enrollments: u32,
}

fn d_true() -> bool {
    true
}
fn d_tick() -> u64 {
    1000
}
fn d_telemetry_per_min() -> u32 {
    60
}
fn d_telemetry_burst() -> u32 {
    10
}
fn d_max_pending() -> u32 {
    100
}

impl Default for FleetConfig {
    fn default() -> Self {
        Self {
            enrollment: true,
            tick_ms: d_tick(),
            alerts: Default::default(),
            telemetry_per_min: d_telemetry_per_min(),
            telemetry_burst: d_telemetry_burst(),
            max_pending_enrollments: d_max_pending(),
        }
    }
}

/// Where mgmt is: how national phone numbers are read.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SiteConfig {
    /// ISO 3166 alpha-2 region for national numbers (`0501234567` in "UA"
    /// is `+380501234567`).
    #[serde(default = "default_region")]
    pub default_region: String,
}

fn default_region() -> String {
    "UA".into()
}

impl Default for SiteConfig {
    fn default() -> Self {
        Self {
            default_region: default_region(),
        }
    }
}

impl SiteConfig {
    /// The parsed region (an unknown code is a clear error).
    pub fn region(&self) -> Result<crate::services::contacts::address::Region> {
        Ok(self.default_region.parse()?)
    }
}

#[allow(clippy::expect_used)]
fn default_node_id() -> crossline_core::NodeId {
    crossline_core::NodeId::new(crate::clock::DEFAULT_NODE_ID)
        .expect("\"mgmt\" satisfies the node id rules")
}

fn default_data_dir() -> PathBuf {
    PathBuf::from("./crossline-data")
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    /// Plain HTTP. On a loopback address it serves everything (local tools,
    /// a reverse proxy on the same host); elsewhere, while TLS is enabled, it
    /// only redirects to HTTPS.
    #[serde(default = "default_http")]
    pub listen: SocketAddr,
    /// HTTPS (with `[tls]` enabled).
    #[serde(default = "default_https")]
    pub tls_listen: SocketAddr,
    /// Mark session cookies `Secure` on plain HTTP too (when browsers reach
    /// mgmt through a TLS-terminating proxy). Cookies set over HTTPS always
    /// are.
    #[serde(default)]
    pub secure_cookies: bool,
}

fn default_https() -> SocketAddr {
    SocketAddr::from(([0, 0, 0, 0], 8443))
}

fn default_http() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8080))
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            listen: default_http(),
            tls_listen: default_https(),
            secure_cookies: false,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MqttConfig {
    /// Where the embedded broker listens for plain MQTT (ignored with
    /// `url`): loopback only, unless `allow_plaintext`. mgmt's own clients
    /// use it.
    #[serde(default = "default_mqtt")]
    pub listen: SocketAddr,
    /// Where the embedded broker listens for MQTT over TLS (with `[tls]`
    /// enabled): appliances connect here (`mqtts://host:8883`).
    #[serde(default = "default_mqtts")]
    pub tls_listen: SocketAddr,
    /// Let `listen` be a non-loopback address (plain MQTT over the network:
    /// credentials and messages in clear). Off by default.
    #[serde(default)]
    pub allow_plaintext: bool,
    /// Use an external broker (e.g. Mosquitto configured by
    /// `crossline-mgmt broker mosquitto-config`) instead of the embedded one:
    /// `mqtt://host:port` or `mqtts://host:port`.
    #[serde(default)]
    pub url: Option<String>,
    /// The CA mgmt pins for an `mqtts://` url (default: mgmt's own CA, the
    /// one `mosquitto-config` gives Mosquitto).
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// mgmt's own MQTT username (a service user with access to all devices).
    #[serde(default = "default_user")]
    pub username: String,
    /// Seconds between re-publishing commands an appliance has not confirmed.
    #[serde(default = "default_command_resend")]
    pub command_resend_s: u64,
    /// Most simultaneous MQTT connections the embedded broker accepts
    /// (appliances, plus two for mgmt itself).
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
}

impl MqttConfig {
    /// mgmt's MQTT users, one per connection it keeps: ingestion logs in as
    /// `username`, the fleet service as [`crate::bus::fleet_user`]. Each connection's
    /// client id is its user name, so a broker that ties client ids to user
    /// names (Mosquitto's `use_username_as_clientid`, in the configuration
    /// `broker mosquitto-config` writes) never has two of mgmt's connections
    /// take each other's session over.
    pub fn service_users(&self) -> Vec<String> {
        vec![
            self.username.clone(),
            crate::bus::fleet_user(&self.username),
            crate::services::recordings::service_user(&self.username),
        ]
    }
}

fn default_max_connections() -> usize {
    10_100
}

fn default_command_resend() -> u64 {
    30
}

fn default_mqtt() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 1883))
}

fn default_mqtts() -> SocketAddr {
    SocketAddr::from(([0, 0, 0, 0], 8883))
}

fn default_user() -> String {
    "mgmt".into()
}

impl Default for MqttConfig {
    fn default() -> Self {
        Self {
            listen: default_mqtt(),
            tls_listen: default_mqtts(),
            allow_plaintext: false,
            url: None,
            ca_file: None,
            username: default_user(),
            command_resend_s: default_command_resend(),
            max_connections: default_max_connections(),
        }
    }
}

impl Config {
    /// Every listener (HTTP, HTTPS, MQTT, MQTT over TLS) on 127.0.0.1 with a
    /// port the OS picks: mgmt run inside a test or a benchmark.
    pub fn listen_on_free_loopback_ports(&mut self) {
        let any = SocketAddr::from(([127, 0, 0, 1], 0));
        self.http.listen = any;
        self.http.tls_listen = any;
        self.mqtt.listen = any;
        self.mqtt.tls_listen = any;
    }

    pub fn load(path: Option<&Path>) -> Result<Self> {
        let Some(path) = path else {
            return Ok(toml::from_str("")?);
        };
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading config {}", path.display()))?;
        toml::from_str(&text).with_context(|| format!("parsing config {}", path.display()))
    }

    pub fn db_path(&self) -> PathBuf {
        self.data_dir.join("mgmt.db")
    }

    /// The bootstrap token file appliances enroll with.
    pub fn bootstrap_token_path(&self) -> PathBuf {
        self.data_dir.join(Secret::Bootstrap.file_name())
    }
}

/// One of mgmt's secret files in its data dir.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Secret {
    /// `mgmt.secret`: mgmt's own MQTT connections log in with it.
    Mgmt,
    /// `api.token`: the JSON API's bearer token.
    ApiToken,
    /// `bootstrap.token`: appliances enroll with it.
    Bootstrap,
}

impl Secret {
    pub fn file_name(self) -> &'static str {
        match self {
            Secret::Mgmt => "mgmt.secret",
            Secret::ApiToken => "api.token",
            Secret::Bootstrap => "bootstrap.token",
        }
    }

    /// What a new secret in its place would mean, for the error message.
    fn replacing_it(self) -> &'static str {
        match self {
            Secret::Mgmt => {
                "an external Mosquitto then needs `crossline-mgmt broker mosquitto-config` again"
            }
            Secret::ApiToken => "every API client then needs the new token",
            Secret::Bootstrap => {
                "appliances not enrolled yet then need the new token (`crossline-mgmt enroll token`)"
            }
        }
    }
}

impl Config {
    /// The secret in its file in the data dir, created (random, mode 0600)
    /// only when the file does not exist; see [`secret_file`].
    pub fn secret(&self, which: Secret) -> Result<String> {
        secret_file(&self.data_dir.join(which.file_name()), which)
    }
}

/// Shortest secret accepted from a file.
const MIN_SECRET_LEN: usize = 16;

/// Reads a secret file, or creates it with a fresh random secret when it
/// does not exist. A file that exists but cannot be read, is empty, or is
/// not one line of at least 16 printable characters is an error naming the
/// file and what to do: it is never replaced, since everything holding the
/// old secret would silently stop working.
pub fn secret_file(path: &Path, which: Secret) -> Result<String> {
    let problem = match std::fs::read(path) {
        Ok(bytes) => match String::from_utf8(bytes) {
            Ok(text) => {
                let s = text.trim();
                if s.is_empty() {
                    "is empty".to_string()
                } else if s.len() < MIN_SECRET_LEN || !s.chars().all(|c| c.is_ascii_graphic()) {
                    format!(
                        "is corrupted (a secret is one line of at least {MIN_SECRET_LEN} printable characters)"
                    )
                } else {
                    return Ok(s.to_string());
                }
            }
            Err(_) => "is corrupted (not text)".to_string(),
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let s = crate::services::fleet::credentials::new_secret();
            write_private(path, &s)?;
            return Ok(s);
        }
        Err(e) => format!("cannot be read ({e})"),
    };
    anyhow::bail!(
        "{} {problem}; mgmt does not replace it. Restore it from a backup, or delete it to have mgmt create a new one at its next start ({})",
        path.display(),
        which.replacing_it()
    )
}

/// Writes a file readable only by its owner.
pub fn write_private(path: &Path, contents: &str) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    f.write_all(contents.as_bytes())?;
    f.write_all(b"\n")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_files_are_created_once_and_refused_when_corrupt() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        let mut cfg = Config::load(None).unwrap();
        cfg.data_dir = d.path().to_path_buf();
        for which in [Secret::Mgmt, Secret::ApiToken, Secret::Bootstrap] {
            let path = d.path().join(which.file_name());
            let first = cfg.secret(which).unwrap();
            assert_eq!(first.len(), 64);
            let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{path:?}");
            assert_eq!(cfg.secret(which).unwrap(), first, "read back, not replaced");
            for bad in [
                &b""[..],
                b"\n  \n",
                b"short",
                b"\xff\xfe\x00garbage-garbage-garbage",
                b"two words here and there",
            ] {
                std::fs::write(&path, bad).unwrap();
                let e = cfg.secret(which).unwrap_err().to_string();
                assert!(
                    e.contains(which.file_name())
                        && (e.contains("empty") || e.contains("corrupted"))
                        && e.contains("Restore it from a backup")
                        && e.contains("delete it"),
                    "{bad:?}: {e}"
                );
                assert_eq!(std::fs::read(&path).unwrap(), bad, "left as it was");
            }
            std::fs::remove_file(&path).unwrap();
            assert_ne!(
                cfg.secret(which).unwrap(),
                first,
                "created anew when absent"
            );
        }
        // An unreadable one (a directory in its place) is refused too.
        std::fs::remove_file(d.path().join("api.token")).unwrap();
        std::fs::create_dir(d.path().join("api.token")).unwrap();
        let e = cfg.secret(Secret::ApiToken).unwrap_err().to_string();
        assert!(
            e.contains("api.token") && e.contains("cannot be read"),
            "{e}"
        );
    }

    #[test]
    fn example_parses() {
        let c: Config = toml::from_str(include_str!("../crossline-mgmt.example.toml")).unwrap();
        assert_eq!(c.mqtt.username, "mgmt");
        let d = Config::load(None).unwrap();
        assert!(d.mqtt.url.is_none());
        assert_eq!(c.site.default_region, "UA");
        assert_eq!(c.ingest.max_clock_skew_s, 300);
        assert_eq!(d.ingest.max_clock_skew_s, 300);
        c.site.region().unwrap();
        let bad: Config = toml::from_str("[site]\ndefault_region = \"XX1\"").unwrap();
        assert!(bad.site.region().is_err());
    }
}
