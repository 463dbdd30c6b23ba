//! Zero-touch enrollment (docs/FLEET.md).
//!
//! An appliance without a credential of its own connects with the bootstrap
//! token (MQTT user `enroll`, client id = its enrollment id: 128 random bits
//! drawn once and kept in `<data_dir>/enrollment.id`), publishes its hardware
//! identity (serial, MACs, modem IMEIs) on `crossline/v1/enroll/<id>/req` and
//! repeats it until mgmt answers `approved` on `.../resp` with a device id and
//! secret. Those are written durably to `<data_dir>/identity.json` (mode 0600,
//! written to a temporary file, fsynced, renamed) before the appliance
//! connects with them; from then on the identity file is the credential.

use crate::config::{Config, EnrollConfig, MqttConfig};
use anyhow::{Context, Result};
use crossline_core::NodeId;
use crossline_modem::{Modem, ModemEvent, serial_opener};
use crossline_proto::{
    ENROLL_USER, EnrollKind, EnrollRequest, EnrollResponse, EnrollState, EnrollTopic, decode,
    encode,
};
use rumqttc::{AsyncClient, ConnectReturnCode, Event as MqttEvent, Packet, QoS};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// The credential mgmt issued, as kept on disk.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Identity {
    pub device: NodeId,
    pub secret: String,
}

/// `<data_dir>/identity.json`.
pub fn identity_path(data_dir: &Path) -> PathBuf {
    data_dir.join("identity.json")
}

/// Reads the identity file, `None` when there is none.
pub fn load_identity(path: &Path) -> Result<Option<Identity>> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map(Some).with_context(|| {
            format!(
                "reading device identity {} (delete it to enroll again)",
                path.display()
            )
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading device identity {}", path.display())),
    }
}

/// Writes `contents` to `path` durably: temporary file (0600), fsync, rename,
/// fsync of the directory.
pub fn write_durably(path: &Path, contents: &[u8]) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let dir = path.parent().context("identity path has no directory")?;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("writing {}", tmp.display()))?;
    f.write_all(contents)?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, path).with_context(|| format!("renaming to {}", path.display()))?;
    std::fs::File::open(dir)?.sync_all()?;
    Ok(())
}

/// Makes sure `cfg` has a device id and secret: the identity file from an
/// earlier enrollment, else the configured ones, else enrollment (which
/// waits for an admin). `None` when `shutdown` came first.
pub async fn resolve(mut cfg: Config, shutdown: &CancellationToken) -> Result<Option<Config>> {
    let path = identity_path(&cfg.data_dir);
    if let Some(id) = load_identity(&path)? {
        apply(&mut cfg, id);
        return Ok(Some(cfg));
    }
    let has_secret = cfg.mqtt.secret.is_some() || cfg.mqtt.secret_file.is_some();
    if cfg.node_id.is_some() && has_secret {
        return Ok(Some(cfg));
    }
    let Some(en) = cfg.enroll.clone() else {
        anyhow::bail!(
            "no credential: configure node_id and mqtt.secret (or secret_file), or [enroll] with a bootstrap token"
        );
    };
    let token = en.load_token()?;
    let eid = enrollment_id(&cfg.data_dir)?;
    let req = hardware_identity(&cfg, &en).await;
    info!(enrollment = %eid, serial = ?req.serial, macs = ?req.macs, imeis = ?req.imeis, "no credential yet: enrolling with the bootstrap token");
    let Some(id) = request(&cfg.mqtt, &eid, &token, &req, &en, shutdown).await? else {
        return Ok(None);
    };
    let bytes = serde_json::to_vec_pretty(&id)?;
    write_durably(&path, &bytes)?;
    info!(device = %id.device, enrollment = %eid, "enrolled: credential stored in {}", path.display());
    apply(&mut cfg, id);
    Ok(Some(cfg))
}

/// Where this appliance keeps its MQTT secret, for a re-key from mgmt
/// (docs/FLEET.md, "Re-key"): the identity file of an enrolled appliance, or
/// the configured `mqtt.secret_file`. `None` when the secret is written in
/// the configuration itself (re-key is then refused with the reason).
#[derive(Debug, Clone)]
pub enum CredentialFile {
    Identity(PathBuf),
    SecretFile(PathBuf),
}

impl CredentialFile {
    /// The credential file of `cfg` (after [`resolve`]).
    pub fn of(cfg: &Config) -> Option<Self> {
        let identity = identity_path(&cfg.data_dir);
        if identity.exists() {
            return Some(Self::Identity(identity));
        }
        cfg.mqtt.secret_file.clone().map(Self::SecretFile)
    }

    /// Replaces the stored secret of `device` with `secret`, durably and
    /// atomically (a crash leaves the old file or the new one).
    pub fn store(&self, device: &NodeId, secret: &str) -> Result<()> {
        match self {
            Self::Identity(path) => {
                let id = Identity {
                    device: device.clone(),
                    secret: secret.to_string(),
                };
                write_durably(path, &serde_json::to_vec_pretty(&id)?)
            }
            Self::SecretFile(path) => write_durably(path, format!("{secret}\n").as_bytes()),
        }
    }
}

fn apply(cfg: &mut Config, id: Identity) {
    cfg.node_id = Some(id.device);
    cfg.mqtt.secret = Some(id.secret);
    cfg.mqtt.secret_file = None;
}

/// This appliance's enrollment id, drawn once (128 bits from the kernel).
pub fn enrollment_id(data_dir: &Path) -> Result<String> {
    let path = data_dir.join("enrollment.id");
    if let Ok(s) = std::fs::read_to_string(&path) {
        let s = s.trim().to_string();
        if crossline_proto::topic::is_valid_enrollment_id(&s) {
            return Ok(s);
        }
        warn!(path = %path.display(), "invalid enrollment id file; drawing a new id");
    }
    use std::io::Read;
    let mut b = [0u8; 16];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut b))
        .context("reading /dev/urandom for the enrollment id")?;
    let id: String = b.iter().map(|x| format!("{x:02x}")).collect();
    write_durably(&path, id.as_bytes())?;
    Ok(id)
}

/// Serial, MACs, host name and the modems' IMEIs, as far as this machine tells.
pub async fn hardware_identity(cfg: &Config, en: &EnrollConfig) -> EnrollRequest {
    let serial = en.serial.clone().or_else(|| {
        [
            "/proc/device-tree/serial-number",
            "/sys/class/dmi/id/product_serial",
            "/etc/machine-id",
        ]
        .iter()
        .find_map(|p| small_text(p))
    });
    let mut macs: Vec<String> = std::fs::read_dir("/sys/class/net")
        .map(|d| {
            d.filter_map(|e| e.ok())
                .filter(|e| e.file_name() != "lo")
                .filter_map(|e| small_text(&e.path().join("address").to_string_lossy()))
                .filter(|m| m.len() == 17 && m != "00:00:00:00:00:00")
                .collect()
        })
        .unwrap_or_default();
    macs.sort();
    macs.dedup();
    macs.truncate(crossline_proto::msg::ENROLL_MAX_ITEMS);
    let mut imeis = probe_imeis(cfg, Duration::from_secs(en.modem_probe_s.clamp(1, 120))).await;
    imeis.truncate(crossline_proto::msg::ENROLL_MAX_ITEMS);
    EnrollRequest {
        v: crossline_proto::VERSION,
        serial,
        macs,
        imeis,
        hostname: small_text("/proc/sys/kernel/hostname"),
        software: env!("CARGO_PKG_VERSION").to_string(),
    }
}

/// A short system file's text, trimmed (NULs too), if readable and sane.
fn small_text(path: &str) -> Option<String> {
    use std::io::Read;
    let mut buf = Vec::new();
    std::fs::File::open(path)
        .ok()?
        .take(256)
        .read_to_end(&mut buf)
        .ok()?;
    let s: String = String::from_utf8_lossy(&buf)
        .trim_matches(|c: char| c.is_whitespace() || c == '\0')
        .chars()
        .filter(|c| !c.is_control())
        .take(crossline_proto::msg::ENROLL_MAX_FIELD)
        .collect();
    (!s.is_empty()).then_some(s)
}

/// Starts each configured modem's driver just long enough to read its IMEI.
async fn probe_imeis(cfg: &Config, wait: Duration) -> Vec<String> {
    let mut probes = tokio::task::JoinSet::new();
    for m in &cfg.modems {
        let dc = m.driver_config();
        let baud = m.baud;
        probes.spawn(async move {
            let (handle, mut rx) = Modem::start(dc.clone(), serial_opener(dc.port.clone(), baud));
            let imei = tokio::time::timeout(wait, async {
                while let Some(ev) = rx.recv().await {
                    if let ModemEvent::Health(info) = ev
                        && info.imei.is_some()
                    {
                        return info.imei;
                    }
                }
                None
            })
            .await
            .ok()
            .flatten();
            handle.shutdown().await;
            if imei.is_none() {
                warn!(line = %dc.line, "no IMEI from this modem within {wait:?}; enrolling without it");
            }
            imei
        });
    }
    let mut out = Vec::new();
    while let Some(r) = probes.join_next().await {
        if let Ok(Some(i)) = r {
            out.push(i);
        }
    }
    out.sort();
    out
}

/// Asks mgmt until approved; `None` on shutdown.
async fn request(
    mqtt: &MqttConfig,
    eid: &str,
    token: &str,
    req: &EnrollRequest,
    en: &EnrollConfig,
    shutdown: &CancellationToken,
) -> Result<Option<Identity>> {
    let (mut opts, broker) = mqtt.options(eid)?;
    opts.set_credentials(ENROLL_USER, token);
    opts.set_keep_alive(Duration::from_secs(mqtt.keep_alive_s.clamp(2, 600)));
    opts.set_clean_session(true);
    let (client, mut eventloop) = AsyncClient::new(opts, 16);
    let req_topic = EnrollTopic::new(eid, EnrollKind::Request).to_string();
    let resp_topic = EnrollTopic::new(eid, EnrollKind::Response).to_string();
    let payload = encode(req);
    let mut every = tokio::time::interval(Duration::from_secs(en.retry_s.clamp(1, 3600)));
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut connected = false;
    let mut backoff = Duration::from_millis(500);
    let mut last_state = None;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => {
                let _ = tokio::time::timeout(Duration::from_secs(1), client.disconnect()).await;
                return Ok(None);
            }
            _ = every.tick(), if connected => {
                client.publish(&req_topic, QoS::AtLeastOnce, false, payload.clone()).await?;
            }
            ev = eventloop.poll() => match ev {
                Ok(MqttEvent::Incoming(Packet::ConnAck(_))) => {
                    connected = true;
                    backoff = Duration::from_millis(500);
                    client.subscribe(&resp_topic, QoS::AtLeastOnce).await?;
                    client.publish(&req_topic, QoS::AtLeastOnce, false, payload.clone()).await?;
                    info!(enrollment = %eid, broker = %broker, "enrollment request sent; waiting for an admin to approve");
                }
                Ok(MqttEvent::Incoming(Packet::Publish(p))) if p.topic == resp_topic => {
                    match decode::<EnrollResponse>(&p.payload) {
                        Ok(r) => {
                            if last_state != Some(r.state) {
                                info!(enrollment = %eid, state = ?r.state, "enrollment state");
                                last_state = Some(r.state);
                            }
                            match (r.state, r.device, r.secret) {
                                (EnrollState::Approved, Some(device), Some(secret)) => {
                                    let _ = tokio::time::timeout(Duration::from_secs(1), client.disconnect()).await;
                                    // Let the DISCONNECT go out.
                                    let _ = tokio::time::timeout(Duration::from_millis(500), async {
                                        while eventloop.poll().await.is_ok() {}
                                    }).await;
                                    return Ok(Some(Identity { device, secret }));
                                }
                                (EnrollState::Rejected, _, _) => {
                                    warn!(enrollment = %eid, "mgmt rejected this appliance's enrollment; asking again later");
                                }
                                _ => {}
                            }
                        }
                        Err(e) => warn!(enrollment = %eid, error = %e, "rejected enrollment response"),
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    connected = false;
                    let refused = matches!(
                        &e,
                        rumqttc::ConnectionError::ConnectionRefused(
                            ConnectReturnCode::BadUserNamePassword | ConnectReturnCode::NotAuthorized
                        )
                    );
                    if refused {
                        warn!(enrollment = %eid, "mgmt refused the bootstrap token; check [enroll] bootstrap_token (`crossline-mgmt enroll token`)");
                    } else if let Some(p) = mqtt.tls_problem(&e) {
                        tracing::error!(enrollment = %eid, "{p}");
                    } else {
                        warn!(enrollment = %eid, error = %e, "cannot reach mgmt to enroll; retrying");
                    }
                    tokio::select! {
                        _ = shutdown.cancelled() => return Ok(None),
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(30));
                }
            },
        }
    }
}
