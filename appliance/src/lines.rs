//! The lines service: owns every line's driver (GSM modems today, through
//! the supervisor in [`crate::modems`]) and hands their events to the SMS
//! loop and the voice service ([`Sinks`]).
//!
//! It outlives configuration pushes: [`LinesService::reconfigure`] stops and
//! starts only the lines whose configuration changed (or that were added or
//! removed); every other line's driver keeps running, with its handle, its
//! generation ([`Lines::generation`]) and the modem state it set up (no AT
//! initialisation again). The SMS loop restarts on a push (its offline
//! settings may change) and reads the same stream of line events again.

use crate::config::ModemEntry;
use crate::modems::{self, LineEvent, Lines, Sinks};
use crossline_proto::Telemetry;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Mutex, mpsc};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// The stream of SMS events of every line, shared by the SMS loop's
/// successive runs (one at a time holds it).
pub type SmsEvents = Arc<Mutex<mpsc::Receiver<LineEvent>>>;

/// One running line driver.
struct Running {
    stop: CancellationToken,
    task: JoinHandle<anyhow::Result<()>>,
}

/// Every line's driver, supervised, and where their events go.
pub struct LinesService {
    lines: Lines,
    running: BTreeMap<String, Running>,
    sinks: Sinks,
    telemetry: mpsc::Sender<Telemetry>,
    telemetry_every: Duration,
    ticker: Running,
    data_dir: Option<PathBuf>,
    shutdown: CancellationToken,
}

impl LinesService {
    /// Starts a driver for every line of `entries`. SMS events go to the
    /// returned [`SmsEvents`]; call signalling to `calls`.
    pub fn start(
        entries: &[ModemEntry],
        data_dir: Option<PathBuf>,
        calls: Option<mpsc::Sender<LineEvent>>,
        telemetry: mpsc::Sender<Telemetry>,
        telemetry_every: Duration,
        shutdown: CancellationToken,
    ) -> (Self, SmsEvents) {
        let lines = Lines::new(entries).with_disk(data_dir.as_deref());
        let (sms, sms_rx) = mpsc::channel(256);
        let sinks = Sinks { sms, calls };
        let ticker = Self::ticker(&lines, &telemetry, telemetry_every, &shutdown);
        let mut me = Self {
            lines,
            running: BTreeMap::new(),
            sinks,
            telemetry,
            telemetry_every,
            ticker,
            data_dir,
            shutdown,
        };
        for label in me.lines.labels() {
            me.spawn(&label);
        }
        (me, Arc::new(Mutex::new(sms_rx)))
    }

    fn ticker(
        lines: &Lines,
        telemetry: &mpsc::Sender<Telemetry>,
        every: Duration,
        shutdown: &CancellationToken,
    ) -> Running {
        let stop = shutdown.child_token();
        let task = tokio::spawn(modems::telemetry_ticker(
            lines.clone(),
            telemetry.clone(),
            every,
            stop.clone(),
        ));
        Running { stop, task }
    }

    /// The lines (handles, health, generations), shared with the SMS loop
    /// and fleet commands.
    pub fn lines(&self) -> &Lines {
        &self.lines
    }

    fn spawn(&mut self, label: &str) {
        let stop = self.shutdown.child_token();
        let Some(driver) = modems::line_driver(
            &self.lines,
            label,
            self.data_dir.as_deref(),
            self.sinks.clone(),
            self.telemetry.clone(),
            stop.clone(),
        ) else {
            return;
        };
        let task = tokio::spawn(driver);
        self.running
            .insert(label.to_string(), Running { stop, task });
    }

    async fn stop_line(&mut self, label: &str) {
        if let Some(r) = self.running.remove(label) {
            r.stop.cancel();
            match r.task.await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => warn!(line = label, error = %e, "line driver ended with an error"),
                Err(e) => warn!(line = label, error = %e, "line driver task failed"),
            }
        }
    }

    /// Applies a new set of lines: restarts only the lines whose entry
    /// changed, starts new ones, stops removed ones; the others keep
    /// running untouched. Returns the labels restarted or started.
    pub async fn reconfigure(
        &mut self,
        entries: &[ModemEntry],
        telemetry_every: Duration,
    ) -> Vec<String> {
        // Stop the changed and removed lines' drivers first, so an old
        // driver never outlives its successor on the same port.
        let changed: Vec<String> = entries
            .iter()
            .filter(|e| self.lines.entry(&e.label).is_some_and(|old| old != **e))
            .map(|e| e.label.clone())
            .collect();
        let removed: Vec<String> = self
            .lines
            .labels()
            .into_iter()
            .filter(|l| !entries.iter().any(|e| &e.label == l))
            .collect();
        for l in changed.iter().chain(&removed) {
            self.stop_line(l).await;
        }
        let (start, _) = self.lines.reconcile(entries);
        for l in &start {
            info!(line = %l, "line configuration changed; (re)starting its driver");
            self.spawn(l);
        }
        for l in &removed {
            info!(line = %l, "line no longer configured; its driver stopped");
        }
        if telemetry_every != self.telemetry_every {
            self.ticker.stop.cancel();
            self.telemetry_every = telemetry_every;
            self.ticker = Self::ticker(
                &self.lines,
                &self.telemetry,
                telemetry_every,
                &self.shutdown,
            );
        }
        start
    }

    /// Stops every driver (waits for each to shut its modem down).
    pub async fn stop(mut self) {
        let labels: Vec<String> = self.running.keys().cloned().collect();
        for l in labels {
            self.stop_line(&l).await;
        }
        self.ticker.stop.cancel();
        let _ = self.ticker.task.await;
    }
}
