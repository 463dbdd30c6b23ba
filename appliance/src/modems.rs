//! The modem supervisor: one crossline-modem driver per configured line,
//! restarted with backoff if it ever stops on its own, its health kept for
//! telemetry, its SMS and delivery reports forwarded to the SMS loop, its
//! call signalling (and the loss of the line) to the voice service.
//!
//! The driver already reopens a vanished port by itself (USB re-enumeration);
//! the supervisor covers the driver task ending unexpectedly.

use crate::config::ModemEntry;
use crossline_core::{ModemHealth, SystemHealth};
use crossline_modem::{Modem, ModemConfig, ModemEvent, ModemHandle, ModemInfo, serial_opener};
use crossline_proto::Telemetry;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// A telemetry sample goes out at least this often by default (and after
/// every health check or disconnect of a line); `[telemetry] interval_s`.
pub const TELEMETRY_EVERY: Duration = Duration::from_secs(60);

/// Something a line's driver reported, with the handle of that driver.
#[derive(Debug)]
pub struct LineEvent {
    pub line: String,
    pub modem: ModemHandle,
    pub event: ModemEvent,
}

struct Slot {
    entry: ModemEntry,
    handle: watch::Sender<Option<ModemHandle>>,
    health: ModemHealth,
    /// Drivers started for this line so far (1 after the first start).
    generation: u64,
}

impl Slot {
    fn new(e: &ModemEntry) -> Self {
        Slot {
            entry: e.clone(),
            handle: watch::channel(None).0,
            health: ModemHealth {
                line: e.label.clone(),
                ..ModemHealth::default()
            },
            generation: 0,
        }
    }
}

/// The configured lines, their current driver handles and last health.
/// Cheap to clone.
#[derive(Clone)]
pub struct Lines {
    slots: Arc<Mutex<BTreeMap<String, Slot>>>,
    started: Instant,
    /// Where the data dir is (its file system's fill level is reported).
    disk: Option<std::path::PathBuf>,
}

impl Lines {
    /// Lines for `entries`, none running yet.
    pub fn new(entries: &[ModemEntry]) -> Self {
        let slots = entries
            .iter()
            .map(|e| (e.label.clone(), Slot::new(e)))
            .collect();
        // The daemon's uptime, not this set of lines' (the SMS loop and its
        // lines restart when mgmt pushes a configuration).
        static STARTED: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
        Self {
            slots: Arc::new(Mutex::new(slots)),
            started: *STARTED.get_or_init(Instant::now),
            disk: None,
        }
    }

    /// Reports the fill level of the file system holding `path`.
    pub fn with_disk(mut self, path: Option<&Path>) -> Self {
        self.disk = path.map(Path::to_path_buf);
        self
    }

    fn with<R>(&self, f: impl FnOnce(&mut BTreeMap<String, Slot>) -> R) -> R {
        f(&mut self.slots.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// Labels of the configured lines.
    pub fn labels(&self) -> Vec<String> {
        self.with(|s| s.keys().cloned().collect())
    }

    /// The configuration of a line, `None` if no such line is configured.
    pub fn entry(&self, line: &str) -> Option<ModemEntry> {
        self.with(|s| s.get(line).map(|s| s.entry.clone()))
    }

    /// Watches the driver handle of a line (`None` while it is restarting);
    /// `None` if no such line is configured.
    pub fn handle(&self, line: &str) -> Option<watch::Receiver<Option<ModemHandle>>> {
        self.with(|s| s.get(line).map(|s| s.handle.subscribe()))
    }

    fn set_handle(&self, line: &str, h: Option<ModemHandle>) {
        self.with(|s| {
            if let Some(s) = s.get_mut(line) {
                if h.is_some() {
                    s.generation += 1;
                }
                s.handle.send_replace(h);
            }
        });
    }

    /// How many drivers were started for `line` so far (a restart of the
    /// line's driver, by its supervisor or by a configuration change,
    /// counts one more); `None` if no such line is configured.
    pub fn generation(&self, line: &str) -> Option<u64> {
        self.with(|s| s.get(line).map(|s| s.generation))
    }

    /// Makes the configured lines `entries`: a line whose entry is
    /// unchanged keeps its slot (handle, health, generation); a changed one
    /// gets its new entry, a new line a new slot; a line no longer
    /// configured is removed. Returns the labels of the changed and new
    /// lines (their drivers must be (re)started) and of the removed ones.
    pub fn reconcile(&self, entries: &[ModemEntry]) -> (Vec<String>, Vec<String>) {
        self.with(|s| {
            let removed: Vec<String> = s
                .keys()
                .filter(|l| !entries.iter().any(|e| &e.label == *l))
                .cloned()
                .collect();
            for l in &removed {
                if let Some(slot) = s.remove(l) {
                    slot.handle.send_replace(None);
                }
            }
            let mut start = Vec::new();
            for e in entries {
                match s.get_mut(&e.label) {
                    Some(slot) if slot.entry == *e => {}
                    Some(slot) => {
                        slot.entry = e.clone();
                        start.push(e.label.clone());
                    }
                    None => {
                        s.insert(e.label.clone(), Slot::new(e));
                        start.push(e.label.clone());
                    }
                }
            }
            (start, removed)
        })
    }

    fn set_health(&self, info: &ModemInfo) {
        self.with(|s| {
            if let Some(slot) = s.get_mut(&info.line) {
                slot.health = ModemHealth {
                    line: info.line.clone(),
                    signal_dbm: info.signal_dbm,
                    registered: info.registration.is_registered(),
                    operator: info.operator.clone(),
                    iccid: info.iccid.clone(),
                    model: info.model.clone(),
                    firmware: info.firmware.clone(),
                    imei: info.imei.clone(),
                    sim: Some(sim_state(&info.sim).to_string()),
                    restarts: slot.health.restarts,
                    disconnected: None,
                };
            }
        });
    }

    /// The line's modem went away (or never came): `why` goes into
    /// telemetry until it answers again. Counts a restart when it was up.
    fn set_down(&self, line: &str, why: &str) {
        self.with(|s| {
            if let Some(slot) = s.get_mut(line) {
                if slot.health.disconnected.is_none() {
                    slot.health.restarts = slot.health.restarts.saturating_add(1);
                }
                slot.health.registered = false;
                slot.health.signal_dbm = None;
                slot.health.disconnected = Some(telemetry_text(why));
            }
        });
    }

    /// Health of every line as last reported.
    pub fn health(&self) -> Vec<ModemHealth> {
        self.with(|s| s.values().map(|s| s.health.clone()).collect())
    }

    /// A telemetry sample of the appliance and all its lines.
    pub fn telemetry(&self) -> Telemetry {
        let mut system = system_health(self.started);
        system.disk_used_pct = self.disk.as_deref().and_then(disk_used_pct);
        Telemetry {
            v: crossline_proto::VERSION,
            system,
            modems: self.health(),
        }
    }
}

/// `text` as a telemetry field: one line, at most
/// [`crossline_proto::MAX_TELEMETRY_FIELD`] bytes.
fn telemetry_text(text: &str) -> String {
    let mut out = String::new();
    for c in text.chars().map(|c| if c.is_control() { ' ' } else { c }) {
        if out.len() + c.len_utf8() > crossline_proto::MAX_TELEMETRY_FIELD {
            break;
        }
        out.push(c);
    }
    out
}

/// Where a line's driver events go: SMS, undecodable SMS and delivery
/// reports to `sms`; call signalling and the line going away to `calls`
/// (the voice service), when there is one.
#[derive(Clone)]
pub struct Sinks {
    pub sms: mpsc::Sender<LineEvent>,
    pub calls: Option<mpsc::Sender<LineEvent>>,
}

/// Starts a supervised driver for every line of `lines` in `tasks`. Driver
/// events go to `sinks` (SMS, undecodable SMS, delivery reports; calls); health
/// updates the lines and sends a telemetry sample to `telemetry` (dropped
/// when full: telemetry is latest-wins), as does a ticker every
/// [`TELEMETRY_EVERY`]. `data_dir` holds each line's
/// direct-delivery state file unless the entry names one.
#[allow(clippy::too_many_arguments)]
pub fn spawn_all(
    tasks: &mut JoinSet<anyhow::Result<()>>,
    lines: &Lines,
    data_dir: Option<&Path>,
    events: Sinks,
    telemetry: mpsc::Sender<Telemetry>,
    telemetry_every: Duration,
    shutdown: CancellationToken,
) {
    tasks.spawn(telemetry_ticker(
        lines.clone(),
        telemetry.clone(),
        telemetry_every,
        shutdown.clone(),
    ));
    for label in lines.labels() {
        if let Some(driver) = line_driver(
            lines,
            &label,
            data_dir,
            events.clone(),
            telemetry.clone(),
            shutdown.clone(),
        ) {
            tasks.spawn(driver);
        }
    }
}

/// Sends a telemetry sample of `lines` every `every` until `shutdown`.
pub async fn telemetry_ticker(
    lines: Lines,
    telemetry: mpsc::Sender<Telemetry>,
    every: Duration,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let mut every = tokio::time::interval(every.max(Duration::from_millis(100)));
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            _ = every.tick() => {
                let _ = telemetry.try_send(lines.telemetry());
            }
        }
    }
}

/// The supervised driver of one configured line (`None` if `label` is not
/// configured), to be spawned: runs until `shutdown`.
pub fn line_driver(
    lines: &Lines,
    label: &str,
    data_dir: Option<&Path>,
    events: Sinks,
    telemetry: mpsc::Sender<Telemetry>,
    shutdown: CancellationToken,
) -> Option<impl std::future::Future<Output = anyhow::Result<()>> + Send + 'static> {
    let entry = lines.entry(label)?;
    let mut cfg = entry.driver_config();
    if cfg.state_file.is_none()
        && let Some(dir) = data_dir
    {
        cfg.state_file = Some(dir.join(format!("{label}.parts.json")));
    }
    Some(supervise(
        lines.clone(),
        cfg,
        entry.baud,
        events,
        telemetry,
        shutdown,
    ))
}

/// Runs one line's driver until `shutdown`, restarting it with backoff.
async fn supervise(
    lines: Lines,
    cfg: ModemConfig,
    baud: u32,
    events: Sinks,
    telemetry: mpsc::Sender<Telemetry>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let line = cfg.line.clone();
    let mut backoff = Duration::from_secs(1);
    // Until the modem first answers, a failure is a configuration or
    // hardware problem to fix, said once and clearly.
    let mut ever_up = false;
    loop {
        info!(line = %line, port = %cfg.port, "starting modem driver");
        let (handle, mut rx) = Modem::start(cfg.clone(), serial_opener(cfg.port.clone(), baud));
        lines.set_handle(&line, Some(handle.clone()));
        let started = Instant::now();
        loop {
            let ev = tokio::select! {
                _ = shutdown.cancelled() => {
                    lines.set_handle(&line, None);
                    handle.shutdown().await;
                    info!(line = %line, "modem driver stopped");
                    return Ok(());
                }
                ev = rx.recv() => ev,
            };
            let Some(event) = ev else { break };
            match event {
                ModemEvent::Health(info) => {
                    ever_up = true;
                    lines.set_health(&info);
                    let _ = telemetry.try_send(lines.telemetry());
                }
                ModemEvent::Disconnected { reason } if !ever_up => {
                    tracing::error!(line = %line, port = %cfg.port, %reason, "modem not reachable: line {line} stays down until it answers (check [[modems]] port, the cable or USB); retrying with backoff");
                    lines.set_down(&line, &reason);
                    let _ = telemetry.try_send(lines.telemetry());
                }
                ModemEvent::Disconnected { reason } => {
                    warn!(line = %line, %reason, "modem disconnected; the driver reopens it");
                    lines.set_down(&line, &reason);
                    let _ = telemetry.try_send(lines.telemetry());
                    to_calls(&events, &line, &handle, ModemEvent::Disconnected { reason }).await;
                }
                ev @ ModemEvent::Call(_) => to_calls(&events, &line, &handle, ev).await,
                ModemEvent::Reconnected => info!(line = %line, "modem back"),
                ModemEvent::Warning(w) => warn!(line = %line, warning = %w, "modem warning"),
                ModemEvent::Registration(r) => {
                    info!(line = %line, status = ?r.status, "registration changed")
                }
                ev @ (ModemEvent::Sms(_)
                | ModemEvent::UndecodableSms { .. }
                | ModemEvent::DeliveryReport(_)) => {
                    let msg = LineEvent {
                        line: line.clone(),
                        modem: handle.clone(),
                        event: ev,
                    };
                    if events.sms.send(msg).await.is_err() {
                        // The SMS loop is gone: we are shutting down.
                        lines.set_handle(&line, None);
                        handle.shutdown().await;
                        return Ok(());
                    }
                }
                other => tracing::debug!(line = %line, event = ?other, "modem event"),
            }
        }
        lines.set_handle(&line, None);
        lines.set_down(&line, "the modem driver stopped");
        let stopped = ModemEvent::Disconnected {
            reason: "the modem driver stopped".into(),
        };
        to_calls(&events, &line, &handle, stopped).await;
        if started.elapsed() > Duration::from_secs(60) {
            backoff = Duration::from_secs(1);
        }
        warn!(line = %line, retry_in = ?backoff, "modem driver stopped unexpectedly; restarting");
        tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(Duration::from_secs(60));
    }
}

/// Hands a call event (or the loss of the line) to the voice service, if
/// there is one. A voice service that is gone (shutting down) is ignored.
async fn to_calls(sinks: &Sinks, line: &str, handle: &ModemHandle, event: ModemEvent) {
    if let Some(calls) = &sinks.calls {
        let msg = LineEvent {
            line: line.to_string(),
            modem: handle.clone(),
            event,
        };
        if calls.send(msg).await.is_err() {
            tracing::debug!(line, "the voice service is gone; call event dropped");
        }
    }
}

/// The appliance's own health: uptime of this process, version, and what
/// Linux tells about load, memory and the SoC temperature (absent elsewhere).
pub fn system_health(started: Instant) -> SystemHealth {
    let load1 = small_file("/proc/loadavg")
        .and_then(|t| t.split_whitespace().next().and_then(|v| v.parse().ok()));
    let mem_used_pct = small_file("/proc/meminfo").and_then(|t| {
        let field = |name: &str| -> Option<f64> {
            t.lines()
                .find(|l| l.starts_with(name))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        };
        let (total, avail) = (field("MemTotal:")?, field("MemAvailable:")?);
        (total > 0.0).then(|| (100.0 * (1.0 - avail / total)) as f32)
    });
    let cpu_temp_c = small_file("/sys/class/thermal/thermal_zone0/temp")
        .and_then(|t| t.trim().parse::<f32>().ok())
        .map(|milli| milli / 1000.0);
    let host_uptime_s = small_file("/proc/uptime").and_then(|t| {
        t.split_whitespace()
            .next()
            .and_then(|v| v.parse::<f64>().ok())
            .map(|s| s as u64)
    });
    SystemHealth {
        uptime_s: started.elapsed().as_secs(),
        version: env!("CARGO_PKG_VERSION").to_string(),
        cpu_temp_c,
        load1,
        mem_used_pct,
        disk_used_pct: None,
        host_uptime_s,
    }
}

/// How full the file system holding `path` is, in percent (as `df` counts:
/// used / (used + available to unprivileged users)).
pub fn disk_used_pct(path: &Path) -> Option<f32> {
    let st = nix::sys::statvfs::statvfs(path).ok()?;
    let frsize = st.fragment_size() as f64;
    let used = (st.blocks() as f64 - st.blocks_free() as f64) * frsize;
    let avail = st.blocks_available() as f64 * frsize;
    (used + avail > 0.0).then(|| (100.0 * used / (used + avail)) as f32)
}

/// The SIM state as telemetry names it.
fn sim_state(s: &crossline_modem::SimState) -> &'static str {
    use crossline_modem::SimState;
    match s {
        SimState::Unknown => "unknown",
        SimState::Ready => "ready",
        SimState::PinRequired => "pin_required",
        SimState::PinRejected => "pin_rejected",
        SimState::PukRequired => "puk_required",
        SimState::NotInserted => "not_inserted",
        SimState::Error(_) => "error",
    }
}

/// The first 8 KiB of a small system file, if readable.
fn small_file(path: &str) -> Option<String> {
    use std::io::Read;
    let mut buf = Vec::new();
    std::fs::File::open(path)
        .ok()?
        .take(8192)
        .read_to_end(&mut buf)
        .ok()?;
    String::from_utf8(buf).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disk_fill_level() {
        let p = disk_used_pct(Path::new("/")).unwrap();
        assert!((0.0..=100.0).contains(&p), "{p}");
        assert!(disk_used_pct(Path::new("/no/such/dir")).is_none());
    }

    #[test]
    fn system_health_reads_linux_figures() {
        let h = system_health(Instant::now());
        assert_eq!(h.version, env!("CARGO_PKG_VERSION"));
        if Path::new("/proc/meminfo").exists() {
            let m = h.mem_used_pct.unwrap();
            assert!((0.0..=100.0).contains(&m), "{m}");
            assert!(h.load1.is_some());
        }
    }
}
