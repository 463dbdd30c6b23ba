//! Driver configuration (read by the appliance from TOML) and vendor profiles.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Which modem family the driver talks to. Decides init commands, message
/// storage, new-message indication and quirks (see docs/MODEMS.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Profile {
    /// Detect from AT+CGMI/AT+CGMM at every initialisation (default);
    /// unknown modems get [`Profile::Generic`].
    #[default]
    Auto,
    /// Plain 3GPP 27.005/27.007, no vendor commands.
    Generic,
    /// Quectel EC25 / EG25 (also EC21, EG21, EC20).
    #[serde(alias = "quectel_eg25", alias = "quectel")]
    QuectelEc25,
    /// SIMCom SIM7600 family (LTE).
    #[serde(alias = "simcom_sim7600e", alias = "simcom")]
    SimcomSim7600,
    /// SIMCom SIM800 / SIM900 (2G).
    SimcomSim800,
    /// Huawei E173 / E1550 USB sticks.
    #[serde(alias = "huawei")]
    HuaweiE173,
}

/// How new messages reach the driver.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Delivery {
    /// Stored in the modem/SIM and announced with +CMTI (read with AT+CMGR,
    /// deleted only after confirm). Survives a driver restart. Default.
    Stored,
    /// Routed to the driver with +CMT and acknowledged with AT+CNMA.
    /// Survives a restart only with [`ModemConfig::state_file`].
    Direct,
}

/// What the driver does differently per vendor.
#[derive(Debug, Clone)]
pub(crate) struct Spec {
    /// Extra init commands; failures are logged and ignored.
    pub init: Vec<String>,
    /// AT+CPMS memories: read/delete, write/send, receive.
    pub storage: [&'static str; 3],
    pub delivery: Delivery,
    /// Memory where status reports announced by +CDSI really are.
    pub status_report_memory: Option<&'static str>,
    /// USSD requests must be packed GSM 7-bit hex (Huawei).
    pub ussd_packed: bool,
    /// Call state arrives as +CLCC URCs; otherwise poll AT+CLCC.
    pub clcc_urc: bool,
    /// Hang-up command.
    pub hangup: &'static str,
    /// Commands that return the ICCID, tried in order.
    pub iccid: &'static [&'static str],
    /// How call audio is switched to the host, if the modem can.
    pub voice: Option<VoiceSpec>,
}

/// The vendor's commands for PCM call audio to the host (docs/MODEMS.md
/// "Voice audio").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct VoiceSpec {
    /// Starts PCM on the USB voice serial port.
    pub serial: &'static str,
    /// Starts PCM on the USB audio class device (ALSA), if the modem has one.
    pub alsa: Option<&'static str>,
    /// Stops it at hang-up (None: it stops with the call).
    pub off: Option<&'static str>,
    /// Wait this long after the call connects before the command.
    pub settle: Duration,
    /// The command may fail right after connect: try once more.
    pub retry: bool,
    /// A query that says whether the firmware has voice at all.
    pub check: Option<&'static str>,
}

impl Profile {
    /// The profile for a manufacturer/model pair as the modem reports them.
    pub fn detect(manufacturer: &str, model: &str) -> Profile {
        let m = manufacturer.to_ascii_lowercase();
        let model = model.to_ascii_lowercase();
        if m.contains("quectel") {
            Profile::QuectelEc25
        } else if m.contains("simcom") || model.contains("simcom") {
            if model.contains("sim800") || model.contains("sim900") {
                Profile::SimcomSim800
            } else {
                Profile::SimcomSim7600
            }
        } else if m.contains("huawei") {
            Profile::HuaweiE173
        } else {
            Profile::Generic
        }
    }

    pub(crate) fn spec(self, urc_port: Option<&str>) -> Spec {
        let generic = Spec {
            init: Vec::new(),
            storage: ["SM", "SM", "SM"],
            delivery: Delivery::Stored,
            status_report_memory: None,
            ussd_packed: false,
            clcc_urc: false,
            hangup: "AT+CHUP",
            iccid: &[
                "AT+CCID",
                "AT+ICCID",
                "AT+QCCID",
                "AT^ICCID?",
                "AT+CRSM=176,12258,0,0,10",
            ],
            voice: None,
        };
        match self {
            Profile::Generic | Profile::Auto => generic,
            Profile::QuectelEc25 => Spec {
                init: vec![
                    format!("AT+QURCCFG=\"urcport\",\"{}\"", urc_port.unwrap_or("usbat")),
                    // +QTONEDET: the caller's keys as URCs
                    "AT+QTONEDET=1".into(),
                ],
                storage: ["SM", "SM", "SM"],
                status_report_memory: Some("SR"),
                iccid: &["AT+QCCID", "AT+CCID"],
                voice: Some(VoiceSpec {
                    serial: "AT+QPCMV=1,0",
                    alsa: Some("AT+QPCMV=1,2"),
                    off: Some("AT+QPCMV=0"),
                    settle: Duration::ZERO,
                    retry: false,
                    check: None,
                }),
                ..generic
            },
            Profile::SimcomSim7600 => Spec {
                init: vec!["AT+CLCC=1".into()],
                clcc_urc: true,
                iccid: &["AT+CICCID", "AT+CCID"],
                voice: Some(VoiceSpec {
                    serial: "AT+CPCMREG=1",
                    alsa: None,
                    off: Some("AT+CPCMREG=0"),
                    settle: Duration::from_millis(100),
                    retry: true,
                    check: None,
                }),
                ..generic
            },
            Profile::SimcomSim800 => Spec {
                init: vec!["AT+CLCC=1".into()],
                clcc_urc: true,
                hangup: "ATH",
                iccid: &["AT+CCID", "AT+ICCID"],
                ..generic
            },
            Profile::HuaweiE173 => Spec {
                init: vec![
                    "AT^CURC=0".into(),
                    "AT+CFUN=1".into(),
                    "AT^PORTSEL=1".into(),
                ],
                ussd_packed: true,
                hangup: "AT+CHUP",
                iccid: &["AT^ICCID?", "AT+CRSM=176,12258,0,0,10"],
                voice: Some(VoiceSpec {
                    serial: "AT^DDSETEX=2",
                    alsa: None,
                    off: None,
                    settle: Duration::ZERO,
                    retry: false,
                    check: Some("AT^CVOICE?"),
                }),
                ..generic
            },
        }
    }
}

/// Configuration of one modem line.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModemConfig {
    /// Label of the line in logs and events, e.g. `gsm0`.
    pub line: String,
    /// Device path, for logs and errors (the opener does the opening).
    #[serde(default)]
    pub port: String,
    #[serde(default)]
    pub profile: Profile,
    /// SIM PIN. Entered once; if the SIM rejects it the driver never tries
    /// again (3 wrong PINs lock the SIM with a PUK).
    #[serde(default)]
    pub pin: Option<String>,
    /// The line's own number (the SIM rarely knows it).
    #[serde(default)]
    pub own_number: Option<String>,
    /// Hard deadline for ordinary commands.
    #[serde(default = "d_command", with = "duration")]
    pub command_timeout: Duration,
    /// Hard deadline for AT+CMGS (network round trip).
    #[serde(default = "d_send", with = "duration")]
    pub send_timeout: Duration,
    /// Hard deadline for AT+CMGL=4 (a full memory lists slowly; Huawei
    /// sticks are known to hang here now and then).
    #[serde(default = "d_list", with = "duration")]
    pub list_timeout: Duration,
    /// How long to wait for the network's USSD answer.
    #[serde(default = "d_ussd", with = "duration")]
    pub ussd_timeout: Duration,
    /// Most SMS parts submitted per minute.
    #[serde(default = "d_rate")]
    pub rate_limit: u32,
    /// Attempts per part on temporary errors before the message fails.
    #[serde(default = "d_attempts")]
    pub send_attempts: u32,
    /// First retry delay; doubles per attempt, capped at 5 minutes.
    #[serde(default = "d_backoff", with = "duration")]
    pub retry_backoff: Duration,
    /// Periodic AT+CMGL=4 sweep for messages the +CMTI of which was missed.
    #[serde(default = "d_sweep", with = "duration")]
    pub sweep_interval: Duration,
    /// Periodic signal/registration check (emits ModemEvent::Health).
    #[serde(default = "d_health", with = "duration")]
    pub health_interval: Duration,
    /// Deliver an incomplete concatenated message (with a marker for the
    /// missing parts) this long after its first part.
    #[serde(default = "d_reassembly", with = "duration")]
    pub reassembly_timeout: Duration,
    /// Upper bound of the reopen backoff after the port disappears.
    #[serde(default = "d_reopen", with = "duration")]
    pub reopen_backoff_max: Duration,
    /// Override the profile's delivery mode.
    #[serde(default)]
    pub delivery: Option<Delivery>,
    /// Override the profile's AT+CPMS memories.
    #[serde(default)]
    pub storage: Option<[String; 3]>,
    /// Small JSON file keeping directly delivered (+CMT) parts until they are
    /// confirmed, so a restart mid-message loses nothing.
    #[serde(default)]
    pub state_file: Option<PathBuf>,
    /// Quectel: AT+QURCCFG="urcport" value (`usbat`, `usbmodem`, `uart1`).
    #[serde(default)]
    pub urc_port: Option<String>,
    /// Request delivery reports for sent messages.
    #[serde(default = "d_true")]
    pub status_reports: bool,
    /// The modem's voice (PCM) serial port, e.g. Quectel's second USB
    /// serial interface, SIM7600's audio port, Huawei's voice port. With
    /// it the driver switches call audio there when a call connects and
    /// offers it as a [`crate::VoiceStream`]. Neither this nor
    /// `voice_alsa`: signalling only.
    #[serde(default)]
    pub voice_port: Option<String>,
    /// Quectel: call audio over USB audio class (`AT+QPCMV=1,2`), the ALSA
    /// device that appears for it (e.g. `hw:Android`); the application
    /// opens it itself.
    #[serde(default)]
    pub voice_alsa: Option<String>,
    /// No audio from the voice port this long after the audio command:
    /// warn (wrong command or wrong port).
    #[serde(default = "d_voice_start", with = "duration")]
    pub voice_start_timeout: Duration,
    /// Override the profile's command that starts call audio (a firmware
    /// that wants another, e.g. `AT+QPCMV=1,1`).
    #[serde(default)]
    pub voice_enable: Option<String>,
    /// Override the profile's command that stops call audio at hang-up.
    #[serde(default)]
    pub voice_disable: Option<String>,
}

fn d_command() -> Duration {
    Duration::from_secs(10)
}
fn d_send() -> Duration {
    Duration::from_secs(60)
}
fn d_list() -> Duration {
    Duration::from_secs(30)
}
fn d_ussd() -> Duration {
    Duration::from_secs(30)
}
fn d_rate() -> u32 {
    30
}
fn d_attempts() -> u32 {
    4
}
fn d_backoff() -> Duration {
    Duration::from_secs(5)
}
fn d_sweep() -> Duration {
    Duration::from_secs(300)
}
fn d_health() -> Duration {
    Duration::from_secs(60)
}
fn d_reassembly() -> Duration {
    Duration::from_secs(1800)
}
fn d_reopen() -> Duration {
    Duration::from_secs(30)
}
fn d_voice_start() -> Duration {
    Duration::from_millis(1500)
}
fn d_true() -> bool {
    true
}

impl ModemConfig {
    /// Defaults for a line label and port path.
    pub fn new(line: impl Into<String>, port: impl Into<String>, profile: Profile) -> Self {
        Self {
            line: line.into(),
            port: port.into(),
            profile,
            pin: None,
            own_number: None,
            command_timeout: d_command(),
            send_timeout: d_send(),
            list_timeout: d_list(),
            ussd_timeout: d_ussd(),
            rate_limit: d_rate(),
            send_attempts: d_attempts(),
            retry_backoff: d_backoff(),
            sweep_interval: d_sweep(),
            health_interval: d_health(),
            reassembly_timeout: d_reassembly(),
            reopen_backoff_max: d_reopen(),
            delivery: None,
            storage: None,
            state_file: None,
            urc_port: None,
            status_reports: true,
            voice_port: None,
            voice_alsa: None,
            voice_start_timeout: d_voice_start(),
            voice_enable: None,
            voice_disable: None,
        }
    }
}

/// Durations in TOML as `"10s"`, `"500ms"`, `"5m"`, `"1h"` or a number of seconds.
pub mod duration {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        if d.subsec_millis() == 0 {
            s.serialize_str(&format!("{}s", d.as_secs()))
        } else {
            s.serialize_str(&format!("{}ms", d.as_millis()))
        }
    }

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Secs(u64),
        Text(String),
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        match Raw::deserialize(d)? {
            Raw::Secs(n) => Ok(Duration::from_secs(n)),
            Raw::Text(t) => parse(&t).ok_or_else(|| {
                serde::de::Error::custom(format!(
                    "invalid duration {t:?}: write e.g. \"500ms\", \"10s\", \"5m\" or \"1h\""
                ))
            }),
        }
    }

    /// Parses `500ms`, `10s`, `5m`, `1h`, or bare seconds.
    pub fn parse(t: &str) -> Option<Duration> {
        let t = t.trim();
        let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
        let (num, unit) = t.split_at(split);
        let n: u64 = num.parse().ok()?;
        let ms = match unit.trim() {
            "ms" => n,
            "" | "s" => n.checked_mul(1000)?,
            "m" | "min" => n.checked_mul(60_000)?,
            "h" => n.checked_mul(3_600_000)?,
            _ => return None,
        };
        Some(Duration::from_millis(ms))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    struct File {
        modem: Vec<ModemConfig>,
    }

    #[test]
    fn reads_toml() {
        let f: File = toml::from_str(
            r#"
            [[modem]]
            line = "gsm0"
            port = "/dev/ttyUSB2"
            profile = "quectel_eg25"
            pin = "1234"
            command_timeout = "5s"
            retry_backoff = "500ms"
            sweep_interval = 120
            state_file = "/var/lib/crossline/gsm0.json"
            "#,
        )
        .unwrap();
        let m = &f.modem[0];
        assert_eq!(m.profile, Profile::QuectelEc25);
        assert_eq!(m.command_timeout, Duration::from_secs(5));
        assert_eq!(m.retry_backoff, Duration::from_millis(500));
        assert_eq!(m.sweep_interval, Duration::from_secs(120));
        assert_eq!(m.rate_limit, 30);
        let bad =
            toml::from_str::<File>("[[modem]]\nline = \"a\"\ncommand_timeout = \"5 parsecs\"");
        assert!(bad.err().unwrap().to_string().contains("invalid duration"));
    }
}
