//! The diagnostics commands behind the `crossline-modem` binary, as a
//! library module so another program (the appliance) can offer them as its
//! own subcommand: embed [`Cmd`] in a clap parser and call [`run`].

use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};

mod pdu;
pub use pdu::{ConcatJson, PduCmd, PduJson};

use crate::{
    DeliveryReport, Modem, ModemConfig, ModemEvent, ModemHandle, ModemInfo, Profile, SendError,
    SendOptions, open_serial, serial_opener,
};

/// Which port and how to open it.
#[derive(Args, Clone)]
pub struct PortArgs {
    /// Serial device of the modem's AT port (e.g. /dev/ttyUSB2 or /dev/serial/by-id/...).
    #[arg(long, env = "CROSSLINE_MODEM_PORT")]
    port: String,
    /// Baud rate (USB modems ignore it).
    #[arg(long, default_value_t = 115_200)]
    baud: u32,
    /// auto, generic, quectel_ec25, simcom_sim7600, simcom_sim800, huawei_e173.
    #[arg(long, default_value = "auto")]
    profile: String,
    /// SIM PIN, if the SIM is locked.
    #[arg(long, env = "CROSSLINE_MODEM_PIN")]
    pin: Option<String>,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 60)]
    timeout: u64,
}

/// The diagnostics commands.
#[derive(Subcommand)]
pub enum Cmd {
    /// Model, SIM, IMSI, operator, signal and registration.
    Probe {
        #[command(flatten)]
        port: PortArgs,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Send one SMS (split into parts as needed) and print the message references.
    Send {
        #[command(flatten)]
        port: PortArgs,
        /// Recipient, international (+380...) or national digits.
        #[arg(long)]
        to: String,
        /// Also wait this many seconds for delivery reports.
        #[arg(long, default_value_t = 0)]
        wait_reports: u64,
        text: String,
    },
    /// Run a USSD code (e.g. '*111#') and print the answer.
    Ussd {
        #[command(flatten)]
        port: PortArgs,
        code: String,
    },
    /// Run one raw AT command after initialisation and print its answer lines.
    At {
        #[command(flatten)]
        port: PortArgs,
        command: String,
    },
    /// SMS PDU codec.
    Pdu {
        #[command(subcommand)]
        command: PduCmd,
    },
}

fn parse_profile(s: &str) -> anyhow::Result<Profile> {
    serde_json::from_value(serde_json::Value::String(s.replace('-', "_"))).with_context(|| {
        format!("unknown profile {s:?}: use auto, generic, quectel_ec25, simcom_sim7600, simcom_sim800 or huawei_e173")
    })
}

async fn connect(
    p: &PortArgs,
) -> anyhow::Result<(
    ModemHandle,
    tokio::sync::mpsc::UnboundedReceiver<DeliveryReport>,
)> {
    // Open once by hand for a clear error (missing device, permissions).
    drop(open_serial(&p.port, p.baud).with_context(|| {
        format!("cannot open {}: check the path, that no other program (ModemManager) holds it, and permissions (dialout group)", p.port)
    })?);
    let mut cfg = ModemConfig::new("cli", p.port.clone(), parse_profile(&p.profile)?);
    cfg.pin = p.pin.clone();
    cfg.reopen_backoff_max = Duration::from_secs(2);
    let (h, mut rx) = Modem::start(cfg, serial_opener(p.port.clone(), p.baud));
    // Keep reading events (a full SIM offers hundreds of stored messages at
    // start-up; an unread event channel would stall the driver). Nothing is
    // confirmed, so nothing is deleted. Delivery reports are passed on.
    let (tx, reports) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Some(ev) = rx.recv().await {
            match ev {
                ModemEvent::DeliveryReport(r) => {
                    let _ = tx.send(r);
                }
                ModemEvent::Warning(w) => tracing::warn!("{w}"),
                other => tracing::debug!(event = ?other, "event"),
            }
        }
    });
    Ok((h, reports))
}

async fn within<T>(
    secs: u64,
    what: &str,
    f: impl std::future::Future<Output = T>,
) -> anyhow::Result<T> {
    tokio::time::timeout(Duration::from_secs(secs), f)
        .await
        .with_context(|| format!("{what}: no answer within {secs} s"))
}

fn table(info: &ModemInfo) -> String {
    let opt = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
    let rows = [
        ("port", info.port.clone()),
        ("profile", format!("{:?}", info.profile)),
        ("manufacturer", opt(&info.manufacturer)),
        ("model", opt(&info.model)),
        ("firmware", opt(&info.firmware)),
        ("IMEI", opt(&info.imei)),
        ("SIM", format!("{:?}", info.sim)),
        ("ICCID", opt(&info.iccid)),
        ("IMSI", opt(&info.imsi)),
        ("registration", format!("{:?}", info.registration)),
        ("operator", opt(&info.operator)),
        (
            "signal",
            match info.signal_dbm {
                Some(d) => format!("{d} dBm ({} of 4 bars)", info.signal_bars),
                None => "unknown".into(),
            },
        ),
        (
            "SMS storage",
            match (info.storage_used, info.storage_total) {
                (Some(u), Some(t)) => format!("{u} of {t} used"),
                _ => "-".into(),
            },
        ),
        ("new-message indication", opt(&info.cnmi)),
    ];
    rows.iter().map(|(k, v)| format!("{k:<24}{v}\n")).collect()
}

/// Runs one command, printing to stdout; returns the process exit status
/// (0 success, 2 when an SMS outcome is unknown).
pub async fn run(cmd: Cmd) -> anyhow::Result<i32> {
    match cmd {
        Cmd::Probe { port, json } => {
            let (h, _events) = connect(&port).await?;
            let info = within(port.timeout, "probe", h.probe()).await??;
            if json {
                println!("{}", serde_json::to_string_pretty(&info)?);
            } else {
                print!("{}", table(&info));
            }
            h.shutdown().await;
        }
        Cmd::Send {
            port,
            to,
            wait_reports,
            text,
        } => {
            let (h, mut events) = connect(&port).await?;
            let r = within(
                port.timeout,
                "send",
                h.send_sms(&to, &text, SendOptions::default()),
            )
            .await?;
            match r {
                Ok(sent) => {
                    println!("{}", serde_json::to_string(&sent)?);
                    let deadline = tokio::time::Instant::now() + Duration::from_secs(wait_reports);
                    let mut left = sent.refs.len();
                    while left > 0 {
                        match tokio::time::timeout_at(deadline, events.recv()).await {
                            Ok(Some(r)) if r.id == Some(sent.id) => {
                                println!("{}", serde_json::to_string(&r)?);
                                if r.outcome != crossline_pdu::DeliveryOutcome::Pending {
                                    left -= 1;
                                }
                            }
                            Ok(Some(_)) => {}
                            _ => break,
                        }
                    }
                }
                Err(e @ SendError::Unknown { .. }) => {
                    eprintln!("{e}");
                    println!("{}", serde_json::to_string(&e)?);
                    return Ok(2);
                }
                Err(e) => {
                    println!("{}", serde_json::to_string(&e)?);
                    bail!("{e}");
                }
            }
            h.shutdown().await;
        }
        Cmd::Ussd { port, code } => {
            let (h, _events) = connect(&port).await?;
            let answer = within(port.timeout, "USSD", h.ussd(&code)).await??;
            println!("{answer}");
            h.shutdown().await;
        }
        Cmd::At { port, command } => {
            let (h, _events) = connect(&port).await?;
            let lines = within(port.timeout, &command, h.at(&command)).await??;
            for l in lines {
                println!("{l}");
            }
            println!("OK");
            h.shutdown().await;
        }
        Cmd::Pdu {
            command:
                PduCmd::Decode {
                    direction,
                    smsc_block,
                    hex,
                },
        } => {
            let decoded = pdu::decode(hex.trim(), direction, smsc_block)?;
            for w in &decoded.warnings {
                eprintln!("warning: {w}");
            }
            println!("{}", serde_json::to_string_pretty(&decoded)?);
        }
        Cmd::Pdu {
            command:
                PduCmd::Encode {
                    to,
                    status_report,
                    coding,
                    validity,
                    smsc,
                    text,
                },
        } => {
            let out = pdu::encode(
                &to,
                &text,
                status_report,
                coding,
                &validity,
                smsc.as_deref(),
            )?;
            println!("{}", serde_json::to_string_pretty(&out)?);
        }
        Cmd::Pdu {
            command: PduCmd::UssdDecode { dcs, format, data },
        } => {
            let out = pdu::ussd_decode(&dcs, format, &data)?;
            println!("{}", serde_json::to_string_pretty(&out)?);
        }
    }
    Ok(0)
}
