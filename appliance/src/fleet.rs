//! The appliance side of fleet management (docs/FLEET.md): desired vs
//! applied configuration, and remote fleet commands with kept results.
//!
//! It owns the SMS loop's lifetime: the loop runs with the effective
//! configuration (the local file overlaid with the last configuration mgmt
//! pushed and this appliance accepted); a new valid configuration is stored
//! durably (`<data_dir>/desired.json`) and the SMS loop is restarted with it.
//! An invalid one is refused with the reason and the running one stays.
//!
//! Fleet commands are acted on once per id: the record (and result) of the
//! last ones is kept in `<data_dir>/fleet-commands.json` (written before a
//! command with side effects runs); a repeat publishes the kept result.

use crate::config::Config;
use crate::enroll::write_durably;
use crate::lines::{FxoService, LinesService};
use crate::log::LocalLog;
use crate::modems::Lines;
use crate::sms;
use crate::uplink::{LinkState, Outbound};
use anyhow::{Context, Result};
use crossline_core::EventId;
use crossline_modem::SendOptions;
use crossline_proto::{
    ApplianceSettings, Command, CommandKind, CommandResult, DesiredConfig, Kind, ReportedConfig,
    Telemetry, encode,
};
use crossline_store::SqliteStore;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// Most fleet command records kept for replays.
const KEEP_RECORDS: usize = 16;

/// What [`run`] needs.
pub struct FleetIo {
    /// The configuration from the file (after enrollment).
    pub base: Config,
    pub log: LocalLog<SqliteStore>,
    pub acked: watch::Receiver<u64>,
    pub link: watch::Receiver<LinkState>,
    pub telemetry: mpsc::Sender<Telemetry>,
    /// Every command from mgmt (SMS ones go on to the SMS loop).
    pub commands: mpsc::Receiver<Command>,
    pub config: mpsc::Receiver<DesiredConfig>,
    pub outbound: mpsc::Sender<Outbound>,
}

/// `base` with `settings` applied, validated.
pub fn overlay(base: &Config, settings: &ApplianceSettings) -> Result<Config> {
    settings.check().map_err(anyhow::Error::msg)?;
    let mut cfg = base.clone();
    for l in &settings.lines {
        // An analog line takes its number and language (status reports
        // are SMS only).
        if let Some(f) = cfg.fxo.iter_mut().find(|f| f.label == l.label) {
            if let Some(n) = &l.number {
                if !n.starts_with('+') || n.len() < 4 || !n[1..].bytes().all(|b| b.is_ascii_digit())
                {
                    anyhow::bail!("line {}: number {n:?} is not E.164 (+ and digits)", l.label);
                }
                f.number = Some(n.clone());
            }
            if let Some(lang) = &l.language {
                f.language = Some(lang.clone());
            }
            continue;
        }
        let Some(m) = cfg.modems.iter_mut().find(|m| m.label == l.label) else {
            anyhow::bail!(
                "no line {:?} on this appliance (it has: {})",
                l.label,
                base.modems
                    .iter()
                    .map(|m| m.label.as_str())
                    .chain(base.fxo.iter().map(|f| f.label.as_str()))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        };
        if let Some(n) = &l.number {
            if !n.starts_with('+') || n.len() < 4 || !n[1..].bytes().all(|b| b.is_ascii_digit()) {
                anyhow::bail!("line {}: number {n:?} is not E.164 (+ and digits)", l.label);
            }
            m.number = Some(n.clone());
        }
        if let Some(lang) = &l.language {
            m.language = Some(lang.clone());
        }
        if let Some(sr) = l.status_reports {
            m.status_reports = sr;
        }
    }
    if let Some(o) = &settings.offline {
        let cur = cfg.offline.clone();
        cfg.offline = Some(crate::config::OfflineConfig {
            after_s: o.after_s.or(cur.as_ref().map(|c| c.after_s)).unwrap_or(300),
            window_s: o
                .window_s
                .or(cur.as_ref().map(|c| c.window_s))
                .unwrap_or(86_400),
            default_language: o
                .default_language
                .clone()
                .or(cur.as_ref().map(|c| c.default_language.clone()))
                .unwrap_or_else(|| "en".into()),
            texts: o.texts.clone(),
        });
    }
    if let Some(ivr) = &settings.ivr {
        cfg.ivr = Some((**ivr).clone());
    }
    cfg.validate()?;
    Ok(cfg)
}

fn desired_path(dir: &Path) -> PathBuf {
    dir.join("desired.json")
}

/// The configuration mgmt pushed that this appliance accepted, if any.
pub fn load_applied(dir: &Path) -> Option<DesiredConfig> {
    let bytes = std::fs::read(desired_path(dir)).ok()?;
    match crossline_proto::decode::<DesiredConfig>(&bytes) {
        Ok(d) => Some(d),
        Err(e) => {
            warn!(error = %e, "unreadable desired.json; running the local configuration");
            None
        }
    }
}

/// Runs the SMS loop under fleet control until `shutdown`.
pub async fn run(io: FleetIo, shutdown: CancellationToken) -> Result<()> {
    let FleetIo {
        base,
        log,
        acked,
        mut link,
        telemetry,
        mut commands,
        mut config,
        outbound,
    } = io;
    let data_dir = base.data_dir.clone();
    let mut applied = load_applied(&data_dir);
    let mut effective = match &applied {
        Some(d) => match overlay(&base, &d.settings) {
            Ok(c) => c,
            Err(e) => {
                warn!(version = d.version, error = %e, "stored configuration no longer valid; running the local one");
                applied = None;
                base.clone()
            }
        },
        None => base.clone(),
    };
    let mut rejected: Option<(u64, String)> = None;
    let records = Records::new(data_dir.join("fleet-commands.json"));
    // The lines and the voice service outlive configuration pushes: a push
    // restarts only the lines whose configuration changed (crate::lines),
    // and gives the voice service the IVR it carries (calls are answered
    // while there is one; calls in the IVR finish with theirs).
    let (call_tx, call_rx) = mpsc::channel(64);
    let (fxo_tx, fxo_rx) = mpsc::channel(64);
    let (ivr_tx, ivr_rx) = watch::channel(ivr_setup(&effective));
    let mut voice = tokio::spawn(crate::voice::run_lines(
        log.clone(),
        call_rx,
        Some(fxo_rx),
        ivr_rx,
        shutdown.clone(),
    ));
    let mut fxo_svc = FxoService::start(&effective.fxo, Some(fxo_tx), shutdown.clone());
    let (mut lines_svc, line_events) = LinesService::start(
        &effective.modems,
        Some(data_dir.clone()),
        Some(call_tx),
        telemetry.clone(),
        effective.telemetry.every(),
        shutdown.clone(),
    );
    let result = loop {
        let generation = shutdown.child_token();
        let lines = lines_svc.lines().clone();
        let (sms_tx, sms_rx) = mpsc::channel(64);
        let mut sms_task = tokio::spawn(sms::run(
            sms::SmsContext {
                log: log.clone(),
                modems: effective.modems.clone(),
                offline: effective.offline.clone(),
                acked: acked.clone(),
                link: link.clone(),
                telemetry: telemetry.clone(),
                telemetry_every: effective.telemetry.every(),
                lines: Some(lines.clone()),
                data_dir: Some(data_dir.clone()),
                // The voice service above takes the calls.
                ivr: None,
                line_events: Some(line_events.clone()),
            },
            sms_rx,
            generation.clone(),
        ));
        let exec = Exec {
            device: crossline_store::EventLog::local_node(log.store()).to_string(),
            lines: lines.clone(),
            cfg: effective.clone(),
            outbound: outbound.clone(),
            records: records.clone(),
            shutdown: shutdown.clone(),
        };
        let next = loop {
            tokio::select! {
                r = &mut sms_task => {
                    break Err((true, match r {
                        Ok(r) => r,
                        Err(e) => Err(anyhow::anyhow!("the SMS loop failed: {e}")),
                    }));
                }
                r = &mut voice => {
                    let r = match r {
                        Ok(Ok(())) if shutdown.is_cancelled() => Ok(()),
                        Ok(Ok(())) => Err(anyhow::anyhow!("the voice service stopped")),
                        Ok(Err(e)) => Err(e),
                        Err(e) => Err(anyhow::anyhow!("the voice service failed: {e}")),
                    };
                    break Err((false, r));
                }
                _ = shutdown.cancelled() => break Err((false, Ok(()))),
                c = commands.recv() => {
                    let Some(c) = c else { continue };
                    if matches!(c.kind, CommandKind::Unknown(_)) {
                        // Neither side can tell a fleet command from a
                        // conversation one it does not know: both refuse it
                        // (a result for the fleet console, an outcome event
                        // for the conversation's reply).
                        let ex = exec.clone();
                        let refused = c.clone();
                        tokio::spawn(async move { ex.handle(refused).await });
                        if sms_tx.send(c).await.is_err() {
                            warn!("the SMS loop is gone; command dropped (mgmt repeats it)");
                        }
                    } else if c.kind.is_fleet() {
                        let ex = exec.clone();
                        tokio::spawn(async move { ex.handle(c).await });
                    } else if sms_tx.send(c).await.is_err() {
                        warn!("the SMS loop is gone; command dropped (mgmt repeats it)");
                    }
                }
                changed = link.changed() => {
                    if changed.is_ok() && matches!(*link.borrow_and_update(), LinkState::Up { .. }) {
                        report(&outbound, &applied, &rejected);
                    }
                }
                d = config.recv() => {
                    let Some(d) = d else { continue };
                    let current = applied.as_ref().map_or(0, |a| a.version);
                    if d.version == current || rejected.as_ref().is_some_and(|(v, _)| *v == d.version) {
                        report(&outbound, &applied, &rejected);
                        continue;
                    }
                    match overlay(&base, &d.settings) {
                        Ok(cfg) => {
                            if let Err(e) = write_durably(&desired_path(&data_dir), &encode(&d)) {
                                warn!(version = d.version, error = %e, "cannot store the configuration; not applied");
                                rejected = Some((d.version, format!("cannot store it: {e}")));
                                report(&outbound, &applied, &rejected);
                                continue;
                            }
                            info!(version = d.version, "applying configuration from mgmt; restarting the SMS loop and the lines whose configuration changed");
                            rejected = None;
                            applied = Some(d);
                            break Ok(cfg);
                        }
                        Err(e) => {
                            warn!(version = d.version, error = %e, "configuration from mgmt refused; keeping the running one");
                            rejected = Some((d.version, format!("{e:#}")));
                            report(&outbound, &applied, &rejected);
                        }
                    }
                }
            }
        };
        // `next`: the configuration to run next, or (Err) how the loop ends
        // (and whether the SMS loop has already ended).
        let next = match next {
            Ok(cfg) => cfg,
            Err((sms_done, end)) => {
                if !sms_done {
                    generation.cancel();
                    let _ = sms_task.await;
                }
                break end;
            }
        };
        generation.cancel();
        match sms_task.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => break Err(e),
            Err(e) => break Err(anyhow::anyhow!("the SMS loop failed: {e}")),
        }
        let restarted = lines_svc
            .reconfigure(&next.modems, next.telemetry.every())
            .await;
        let restarted_fxo = fxo_svc.reconfigure(&next.fxo).await;
        info!(lines = ?restarted, analog_lines = ?restarted_fxo, "configuration applied; lines restarted");
        ivr_tx.send_replace(ivr_setup(&next));
        effective = next;
        report(&outbound, &applied, &rejected);
    };
    shutdown.cancel();
    lines_svc.stop().await;
    fxo_svc.stop().await;
    if !voice.is_finished() {
        let _ = voice.await;
    }
    result
}

/// The IVR of `cfg` for the voice service (none: calls ring out).
fn ivr_setup(cfg: &Config) -> Option<std::sync::Arc<crate::voice::IvrSetup>> {
    match crate::voice::IvrSetup::from_config(cfg) {
        Ok(s) => {
            info!(
                ivr = s.is_some(),
                "incoming calls: {}",
                if s.is_some() {
                    "answered by the IVR"
                } else {
                    "not answered (no IVR configured)"
                }
            );
            s
        }
        Err(e) => {
            warn!(error = %format!("{e:#}"), "the IVR cannot run; incoming calls are not answered");
            None
        }
    }
}

fn report(
    out: &mpsc::Sender<Outbound>,
    applied: &Option<DesiredConfig>,
    rejected: &Option<(u64, String)>,
) {
    let r = ReportedConfig {
        v: crossline_proto::VERSION,
        applied: applied.as_ref().map_or(0, |a| a.version),
        rejected: rejected.as_ref().map(|(v, _)| *v),
        error: rejected.as_ref().map(|(_, e)| e.clone()),
    };
    let _ = out.try_send(Outbound {
        kind: Kind::Reported,
        payload: encode(&r),
    });
}

/// One kept fleet command.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Record {
    id: EventId,
    /// `None` while running (a restart mid-command leaves it so).
    result: Option<(bool, String)>,
}

/// The last fleet commands and their results, on disk.
#[derive(Clone)]
struct Records {
    path: PathBuf,
    /// Guards the file; holds the ids running in this process.
    lock: std::sync::Arc<tokio::sync::Mutex<std::collections::HashSet<EventId>>>,
}

/// What [`Records::claim`] found.
enum Claim {
    /// New: recorded as started; run it.
    Run,
    /// Running in this process already (a repeat while it runs): ignore.
    Running,
    /// Known from before: its record.
    Known(Record),
}

impl Records {
    fn new(path: PathBuf) -> Self {
        Self {
            path,
            lock: Default::default(),
        }
    }

    fn load(&self) -> Vec<Record> {
        std::fs::read(&self.path)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }

    /// Records `id` as started unless it is known.
    async fn claim(&self, id: EventId) -> Result<Claim> {
        let mut running = self.lock.lock().await;
        if running.contains(&id) {
            return Ok(Claim::Running);
        }
        let mut all = self.load();
        if let Some(r) = all.iter().find(|r| r.id == id) {
            return Ok(Claim::Known(r.clone()));
        }
        all.push(Record { id, result: None });
        let skip = all.len().saturating_sub(KEEP_RECORDS);
        let all: Vec<Record> = all.into_iter().skip(skip).collect();
        write_durably(&self.path, &serde_json::to_vec(&all)?)?;
        running.insert(id);
        Ok(Claim::Run)
    }

    async fn finish(&self, id: EventId, ok: bool, output: &str) -> Result<()> {
        let mut running = self.lock.lock().await;
        running.remove(&id);
        let mut all = self.load();
        match all.iter_mut().find(|r| r.id == id) {
            Some(r) => r.result = Some((ok, output.to_string())),
            None => all.push(Record {
                id,
                result: Some((ok, output.to_string())),
            }),
        }
        write_durably(&self.path, &serde_json::to_vec(&all)?)
    }
}

#[derive(Clone)]
struct Exec {
    /// This appliance's device id.
    device: String,
    lines: Lines,
    cfg: Config,
    outbound: mpsc::Sender<Outbound>,
    records: Records,
    shutdown: CancellationToken,
}

impl Exec {
    async fn handle(self, c: Command) {
        let name = c.kind.name();
        let (ok, output) = match self.records.claim(c.id).await {
            Ok(Claim::Running) => {
                info!(command = %c.id, kind = name, "repeated command still running; its result follows");
                return;
            }
            Ok(Claim::Known(Record {
                result: Some((ok, output)),
                ..
            })) => {
                info!(command = %c.id, kind = name, "repeated command; its kept result sent again");
                (ok, output)
            }
            Ok(Claim::Known(Record { result: None, .. })) => {
                let r = if matches!(c.kind, CommandKind::Reboot) {
                    (true, "restarted".to_string())
                } else {
                    (
                        false,
                        "interrupted: the appliance restarted while it ran".to_string(),
                    )
                };
                let _ = self.records.finish(c.id, r.0, &r.1).await;
                r
            }
            Ok(Claim::Run) => {
                info!(command = %c.id, kind = name, "fleet command");
                let (ok, output) = self.execute(&c).await;
                if let Err(e) = self.records.finish(c.id, ok, &output).await {
                    warn!(command = %c.id, error = %e, "cannot keep the command's result");
                }
                info!(command = %c.id, kind = name, ok, "fleet command done");
                (ok, output)
            }
            Err(e) => (false, format!("cannot record the command: {e:#}")),
        };
        let mut output = output;
        truncate_utf8(&mut output, crossline_proto::msg::MAX_OUTPUT);
        let r = CommandResult {
            v: crossline_proto::VERSION,
            id: c.id,
            ok,
            output,
        };
        let _ = self
            .outbound
            .send(Outbound {
                kind: Kind::Result,
                payload: encode(&r),
            })
            .await;
        if ok && matches!(c.kind, CommandKind::Reboot) {
            self.reboot().await;
        }
    }

    async fn handle_of(&self, line: &str) -> Result<crossline_modem::ModemHandle, String> {
        let mut rx = self
            .lines
            .handle(line)
            .ok_or_else(|| format!("no line {line:?} on this appliance"))?;
        let wait = tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                if let Some(h) = rx.borrow_and_update().clone() {
                    return Some(h);
                }
                if rx.changed().await.is_err() {
                    return None;
                }
            }
        });
        wait.await
            .ok()
            .flatten()
            .ok_or_else(|| format!("line {line}'s modem is not running"))
    }

    /// Waits (at most 20 s) until the line's modem is registered, so a
    /// command right after a (re)start does not meet a modem still booting.
    async fn wait_registered(&self, line: &str) {
        let end = tokio::time::Instant::now() + Duration::from_secs(20);
        while tokio::time::Instant::now() < end {
            if self
                .lines
                .health()
                .iter()
                .any(|h| h.line == line && h.registered)
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    async fn execute(&self, c: &Command) -> (bool, String) {
        if let CommandKind::TestSms { line, .. } | CommandKind::Ussd { line, .. } = &c.kind
            && self.lines.entry(line).is_some()
        {
            self.wait_registered(line).await;
        }
        let r: Result<String, String> = match &c.kind {
            CommandKind::SendSms { .. } => Err("not a fleet command".into()),
            CommandKind::Unknown(u) => Err(crate::unknown_command_reason(&self.device, u)),
            CommandKind::Reboot => Ok(match &self.cfg.commands.reboot_command {
                Some(cmd) => format!("running {}", cmd.join(" ")),
                None => "stopping for the supervisor to restart the daemon".into(),
            }),
            CommandKind::RestartModem { line } => match self.handle_of(line).await {
                Ok(h) => {
                    h.shutdown().await;
                    Ok(format!("line {line}: modem driver restarting"))
                }
                Err(e) => Err(e),
            },
            CommandKind::TestSms { line, to, text } => match self.handle_of(line).await {
                Ok(h) => match tokio::time::timeout(
                    Duration::from_secs(120),
                    h.send_sms(to, text, SendOptions::default()),
                )
                .await
                {
                    Ok(Ok(sent)) => Ok(format!(
                        "sent to {to} on {line}, {} part(s)",
                        sent.refs.len()
                    )),
                    Ok(Err(e)) => Err(format!("send failed: {e}")),
                    Err(_) => Err("no answer from the modem within 120 s".into()),
                },
                Err(e) => Err(e),
            },
            CommandKind::Ussd { line, code } => match self.handle_of(line).await {
                Ok(h) => match tokio::time::timeout(Duration::from_secs(60), h.ussd(code)).await {
                    Ok(Ok(answer)) => Ok(answer),
                    Ok(Err(e)) => Err(format!("USSD {code} failed: {e}")),
                    Err(_) => Err("no USSD answer within 60 s".into()),
                },
                Err(e) => Err(e),
            },
            CommandKind::CollectLogs { max_bytes } => {
                let max = max_bytes
                    .map(|m| m as usize)
                    .unwrap_or(crossline_proto::msg::MAX_OUTPUT)
                    .min(crossline_proto::msg::MAX_OUTPUT);
                match &self.cfg.commands.log_file {
                    Some(p) => tail(p, max).map_err(|e| format!("{e:#}")),
                    None => Err("no log file configured ([commands] log_file)".into()),
                }
            }
            CommandKind::InstallUpdate { .. } => Err(
                "refused: updates are not configured on this appliance (no [update] section: server, keyring); nothing was done".into(),
            ),
            CommandKind::RescanModems => {
                let mut out = Vec::new();
                let mut ok = true;
                for line in self.lines.labels() {
                    match self.handle_of(&line).await {
                        Ok(h) => {
                            let probe = h.probe().await;
                            let swept = h.sweep().await;
                            match (probe, swept) {
                                (Ok(i), Ok(n)) => out.push(format!(
                                    "{line}: {} {} IMEI {} SIM {:?} registered {} signal {} dBm; {n} stored SMS handed over",
                                    i.manufacturer.unwrap_or_default(),
                                    i.model.unwrap_or_default(),
                                    i.imei.unwrap_or_default(),
                                    i.sim,
                                    i.registration.is_registered(),
                                    i.signal_dbm.map_or("?".into(), |d| d.to_string()),
                                )),
                                (p, s) => {
                                    ok = false;
                                    out.push(format!(
                                        "{line}: {}",
                                        p.err()
                                            .map(|e| e.to_string())
                                            .or(s.err().map(|e| e.to_string()))
                                            .unwrap_or_default()
                                    ));
                                }
                            }
                        }
                        Err(e) => {
                            ok = false;
                            out.push(e);
                        }
                    }
                }
                if out.is_empty() {
                    out.push("no modem lines configured".into());
                }
                if ok {
                    Ok(out.join("\n"))
                } else {
                    Err(out.join("\n"))
                }
            }
        };
        match r {
            Ok(o) => (true, o),
            Err(e) => (false, e),
        }
    }

    async fn reboot(&self) {
        // Give the result a moment to leave before the uplink stops.
        tokio::time::sleep(Duration::from_millis(300)).await;
        reboot(&self.cfg.commands, &self.shutdown, "mgmt").await;
    }
}

/// Reboots the appliance: `[commands] reboot_command` when configured (and
/// it succeeds), else stops the daemon (`shutdown`) for its supervisor to
/// start it again. `by` says who asked, for the log.
pub async fn reboot(
    commands: &crate::config::CommandsConfig,
    shutdown: &CancellationToken,
    by: &str,
) {
    if let Some(cmd) = &commands.reboot_command
        && let Some((prog, args)) = cmd.split_first()
    {
        warn!(command = %cmd.join(" "), by, "reboot");
        let (prog, args) = (prog.clone(), args.to_vec());
        let run = tokio::task::spawn_blocking(move || {
            std::process::Command::new(prog).args(args).status()
        });
        match run.await {
            Ok(Ok(s)) if s.success() => return,
            Ok(Ok(s)) => {
                warn!(status = %s, "reboot command failed; stopping the daemon instead")
            }
            Ok(Err(e)) => {
                warn!(error = %e, "cannot run the reboot command; stopping the daemon instead")
            }
            Err(e) => {
                warn!(error = %e, "reboot command task failed; stopping the daemon instead")
            }
        }
    }
    warn!(
        by,
        "reboot: stopping for the supervisor to restart the daemon"
    );
    shutdown.cancel();
}

/// The last `max` bytes of a file (cut at a line start when possible).
fn tail(path: &Path, max: usize) -> Result<String> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f =
        std::fs::File::open(path).with_context(|| format!("opening log {}", path.display()))?;
    let len = f.metadata()?.len();
    let start = len.saturating_sub(max as u64);
    f.seek(SeekFrom::Start(start))?;
    let mut buf = Vec::with_capacity(max.min(len as usize));
    f.take(max as u64).read_to_end(&mut buf)?;
    let mut text = String::from_utf8_lossy(&buf).into_owned();
    if start > 0
        && let Some(i) = text.find('\n')
    {
        text.drain(..=i);
    }
    Ok(text)
}

/// Cuts `s` to at most `max` bytes, at a character boundary.
pub(crate) fn truncate_utf8(s: &mut String, max: usize) {
    if s.len() > max {
        let mut cut = max;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{ModemEntry, MqttConfig};
    use crossline_core::NodeId;
    use crossline_proto::{LineSettings, OfflineSettings};

    fn base() -> Config {
        let mut c = Config::new(
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
        c.modems = vec![ModemEntry::new("gsm0", "/dev/null")];
        c
    }

    #[test]
    fn overlay_applies_and_validates() {
        let s = ApplianceSettings {
            lines: vec![LineSettings {
                label: "gsm0".into(),
                number: Some("+380671234567".into()),
                language: Some("uk".into()),
                status_reports: Some(false),
            }],
            offline: Some(OfflineSettings {
                after_s: Some(5),
                texts: [("en".to_string(), "Closed".to_string())].into(),
                ..Default::default()
            }),
            ivr: None,
        };
        let c = overlay(&base(), &s).unwrap();
        assert_eq!(c.modems[0].number.as_deref(), Some("+380671234567"));
        assert!(!c.modems[0].status_reports);
        let off = c.offline.unwrap();
        assert_eq!((off.after_s, off.window_s), (5, 86_400));
        let bad_line = ApplianceSettings {
            lines: vec![LineSettings {
                label: "gsm9".into(),
                ..Default::default()
            }],
            ..Default::default()
        };
        let e = overlay(&base(), &bad_line).unwrap_err().to_string();
        assert!(e.contains("no line \"gsm9\"") && e.contains("gsm0"), "{e}");
        let empty_text = ApplianceSettings {
            offline: Some(OfflineSettings {
                texts: [("en".to_string(), " ".to_string())].into(),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert!(overlay(&base(), &empty_text).is_err());
        let mut ivr: crossline_proto::IvrSettings =
            serde_json::from_str(include_str!("../../docs/ivr-demo.json")).unwrap();
        ivr.entry = "lobby".into();
        let bad_ivr = ApplianceSettings {
            ivr: Some(Box::new(ivr)),
            ..Default::default()
        };
        let e = overlay(&base(), &bad_ivr).unwrap_err().to_string();
        assert!(e.contains("entry") && e.contains("\"lobby\""), "{e}");
        // A valid IVR needs its prompts on the appliance, in every language.
        let ivr: crossline_proto::IvrSettings =
            serde_json::from_str(include_str!("../../docs/ivr-demo.json")).unwrap();
        let s = ApplianceSettings {
            ivr: Some(Box::new(ivr.clone())),
            ..Default::default()
        };
        let dir = tempfile::tempdir().unwrap();
        let mut b = base();
        b.data_dir = dir.path().to_path_buf();
        let e = overlay(&b, &s).unwrap_err().to_string();
        assert!(
            e.contains("has no file") && e.contains("scripts/ivr-prompts"),
            "{e}"
        );
        for (language, id) in ivr.prompt_files() {
            let f = b.prompt_path(language, id);
            std::fs::create_dir_all(f.parent().unwrap()).unwrap();
            std::fs::write(f, b"RIFF").unwrap();
        }
        let c = overlay(&b, &s).unwrap();
        assert_eq!(c.ivr.as_ref(), Some(&ivr));
        assert_eq!(
            c.prompt_path("uk", "main"),
            dir.path().join("prompts/uk/main.wav")
        );
    }

    #[test]
    fn tail_cuts_at_a_line() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("log");
        std::fs::write(&p, "first line\nsecond line\nthird\n").unwrap();
        assert_eq!(tail(&p, 1000).unwrap(), "first line\nsecond line\nthird\n");
        assert_eq!(tail(&p, 10).unwrap(), "third\n");
    }
}
