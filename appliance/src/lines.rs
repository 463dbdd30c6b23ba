//! The lines service: owns every line's driver (GSM modems, through the
//! supervisor in [`crate::modems`]; analog FXO lines, [`FxoService`]) and
//! hands their events to the SMS loop and the voice service ([`Sinks`],
//! [`FxoSignal`]).
//!
//! An analog line's task opens its driver (`crossline_line::open`: GPIO
//! pins or a line link), decodes the caller ID from the line's audio in the
//! pause after the first ring, and reports the call to the voice service
//! as `Incoming` (with the number), `Connected` once it went off-hook, and
//! `Ended` (far-end hang-up by loop-current drop, polarity reversal or the
//! disconnect tone it listens for; the IVR's hang-up) or `Disconnected`
//! (no loop current, the link lost). While a call is up its audio goes to
//! the IVR session ([`FxoCall::audio`]). The line's audio is its link's, or
//! with `voice_alsa` its ALSA device's (opened when the line comes up, for
//! the caller ID as much as for the call; a device that cannot be opened
//! leaves the line running without audio, said in the log, and is tried
//! again at the next ring).
//!
//! It outlives configuration pushes: [`LinesService::reconfigure`] stops and
//! starts only the lines whose configuration changed (or that were added or
//! removed); every other line's driver keeps running, with its handle, its
//! generation ([`Lines::generation`]) and the modem state it set up (no AT
//! initialisation again). The SMS loop restarts on a push (its offline
//! settings may change) and reads the same stream of line events again.

use crate::config::{FxoEntry, ModemEntry};
use crate::modems::{self, LineEvent, Lines, Sinks};
use crate::voice::{AlsaIn, AlsaLine, AudioOut};
use crossline_audio::pcm::Frame;
use crossline_audio::{cid, tones};
use crossline_line::link::LinkAudioReceiver;
use crossline_line::{DisconnectCause, LineDriver, LineError, LineEvent as FxoEvent, OpenedLine};
use crossline_modem::{CallEnd, CallEvent};
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

// ---------------------------------------------------------------------------
// Analog (FXO) lines
// ---------------------------------------------------------------------------

/// Call signalling of an analog line for the voice service, in the voice
/// service's vocabulary: `ModemEvent::Call` (`Incoming` with the caller ID
/// decoded between the first rings, `Connected` once off-hook, `Ended`) or
/// `ModemEvent::Disconnected` (the line went away mid-call: no loop current,
/// the link or the pins lost).
#[derive(Debug)]
pub struct FxoSignal {
    pub line: String,
    pub fxo: FxoCall,
    pub event: crossline_modem::ModemEvent,
}

/// The frames of a call's audio, handed to whoever listens (the IVR
/// session) while the call lasts.
type Listener = Arc<std::sync::Mutex<Option<mpsc::Sender<Frame>>>>;

/// Frames queued for a session that is behind (1 s); more are dropped.
const LISTENER_FRAMES: usize = 50;

/// An analog line's call control, for the voice service and the IVR
/// session: answer and hang up through its driver, and its audio.
#[derive(Clone)]
pub struct FxoCall {
    driver: LineDriver,
    to_line: Option<AudioOut>,
    listener: Listener,
}

impl std::fmt::Debug for FxoCall {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FxoCall")
            .field("line", &self.driver.name())
            .field("audio", &self.to_line.is_some())
            .finish_non_exhaustive()
    }
}

impl FxoCall {
    /// Off-hook on the ringing line.
    pub fn answer(&self) -> Result<(), LineError> {
        self.driver.answer()
    }

    /// On-hook (its `OnHook` ends the call).
    pub fn hang_up(&self) -> Result<(), LineError> {
        self.driver.hang_up()
    }

    /// The call's audio: the line's frames from now until the call ends
    /// (the receiver then closes), and the sender into the line. On a line
    /// without audio (GPIO pins without `voice_alsa`, or its device could
    /// not be opened) an error says so.
    pub fn audio(&self) -> Result<(mpsc::Receiver<Frame>, AudioOut), String> {
        let Some(tx) = self.to_line.clone() else {
            return Err(format!(
                "analog line {} has no call audio (GPIO pins need `voice_alsa`, the line's ALSA device; if it is set, the log says why it did not open)",
                self.driver.name()
            ));
        };
        let (frames_tx, frames_rx) = mpsc::channel(LISTENER_FRAMES);
        *self
            .listener
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(frames_tx);
        Ok((frames_rx, tx))
    }

    fn detach(&self) {
        self.listener
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
    }

    fn hand_over(&self, frame: &Frame) {
        let guard = self
            .listener
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(tx) = guard.as_ref() {
            // A session that is behind loses frames rather than holding up
            // the line (its signalling and caller ID come through here too).
            let _ = tx.try_send(*frame);
        }
    }
}

/// How an analog line's state is seen from outside (logs, tests).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FxoState {
    /// Being opened (or reopened after a failure).
    Starting,
    /// The driver runs: ring detection on, calls reach the voice service.
    Up,
    /// Down, with why (retried with backoff).
    Down(String),
}

/// One analog line's driver task and its state.
struct RunningFxo {
    entry: FxoEntry,
    run: Running,
}

/// The analog lines' states, shared with whoever asks.
#[derive(Clone, Default)]
pub struct FxoLines {
    states: Arc<std::sync::Mutex<BTreeMap<String, FxoState>>>,
}

impl FxoLines {
    /// Each configured analog line and its state.
    pub fn states(&self) -> BTreeMap<String, FxoState> {
        self.states
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    fn set(&self, line: &str, state: FxoState) {
        self.states
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(line.to_string(), state);
    }

    fn remove(&self, line: &str) {
        self.states
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(line);
    }
}

/// The analog lines: one supervised driver task per `[[fxo]]` entry.
pub struct FxoService {
    running: BTreeMap<String, RunningFxo>,
    calls: Option<mpsc::Sender<FxoSignal>>,
    lines: FxoLines,
    shutdown: CancellationToken,
}

impl FxoService {
    /// Starts a driver for every analog line of `entries`; their call
    /// signalling goes to `calls` (the voice service).
    pub fn start(
        entries: &[FxoEntry],
        calls: Option<mpsc::Sender<FxoSignal>>,
        shutdown: CancellationToken,
    ) -> Self {
        let mut me = Self {
            running: BTreeMap::new(),
            calls,
            lines: FxoLines::default(),
            shutdown,
        };
        for e in entries {
            me.spawn(e.clone());
        }
        me
    }

    /// The lines' states.
    pub fn lines(&self) -> &FxoLines {
        &self.lines
    }

    fn spawn(&mut self, entry: FxoEntry) {
        let stop = self.shutdown.child_token();
        self.lines.set(&entry.label, FxoState::Starting);
        let task = tokio::spawn(supervise_fxo(
            entry.clone(),
            self.calls.clone(),
            self.lines.clone(),
            stop.clone(),
        ));
        self.running.insert(
            entry.label.clone(),
            RunningFxo {
                entry,
                run: Running { stop, task },
            },
        );
    }

    async fn stop_line(&mut self, label: &str) {
        if let Some(r) = self.running.remove(label) {
            r.run.stop.cancel();
            match r.run.task.await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    warn!(line = label, error = %e, "analog line driver ended with an error")
                }
                Err(e) => warn!(line = label, error = %e, "analog line driver task failed"),
            }
        }
        self.lines.remove(label);
    }

    /// Applies a new set of analog lines: restarts only those whose entry
    /// changed, starts new ones, stops removed ones. Returns the labels
    /// (re)started.
    pub async fn reconfigure(&mut self, entries: &[FxoEntry]) -> Vec<String> {
        let stale: Vec<String> = self
            .running
            .iter()
            .filter(|(l, r)| !entries.iter().any(|e| e.label == **l && *e == r.entry))
            .map(|(l, _)| l.clone())
            .collect();
        for l in &stale {
            self.stop_line(l).await;
            if !entries.iter().any(|e| &e.label == l) {
                info!(line = %l, "analog line no longer configured; its driver stopped");
            }
        }
        let mut started = Vec::new();
        for e in entries {
            if !self.running.contains_key(&e.label) {
                info!(line = %e.label, "analog line configuration changed; (re)starting its driver");
                self.spawn(e.clone());
                started.push(e.label.clone());
            }
        }
        started
    }

    /// Stops every analog line's driver (each goes on-hook).
    pub async fn stop(mut self) {
        let labels: Vec<String> = self.running.keys().cloned().collect();
        for l in labels {
            self.stop_line(&l).await;
        }
    }
}

/// How one run of an analog line's driver ended.
enum FxoEnd {
    /// Stopped on purpose (shutdown, reconfiguration).
    Stopped,
    /// Lost (the link or the pins failed): reopen.
    Lost(String),
}

/// Runs one analog line until `shutdown`, reopening it with backoff when it
/// fails (a link whose simulator went away, a pin error).
async fn supervise_fxo(
    entry: FxoEntry,
    calls: Option<mpsc::Sender<FxoSignal>>,
    lines: FxoLines,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let label = entry.label.clone();
    let mut backoff = Duration::from_secs(1);
    // A reason said once: the same one again (each retry) is at debug level.
    let mut last_reason: Option<String> = None;
    loop {
        tracing::debug!(line = %label, port = ?entry.port, "starting analog line driver");
        let opened = tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            o = crossline_line::open(entry.line_config(), &entry.port) => o,
        };
        let reason = match opened {
            Ok(opened) => {
                lines.set(&label, FxoState::Up);
                last_reason = None;
                info!(line = %label, port = ?entry.port, "analog line up: listening for ringing");
                let started = tokio::time::Instant::now();
                match FxoRun::new(&label, opened, entry.alsa_line(), calls.clone())
                    .run(&shutdown)
                    .await
                {
                    FxoEnd::Stopped => {
                        info!(line = %label, "analog line driver stopped (on-hook)");
                        return Ok(());
                    }
                    FxoEnd::Lost(reason) => {
                        if started.elapsed() > Duration::from_secs(60) {
                            backoff = Duration::from_secs(1);
                        }
                        reason
                    }
                }
            }
            Err(e) => e.to_string(),
        };
        if last_reason.as_deref() == Some(reason.as_str()) {
            tracing::debug!(line = %label, reason = %reason, retry_in = ?backoff, "analog line still down");
        } else {
            warn!(line = %label, port = ?entry.port, reason = %reason, retry_in = ?backoff,
                "analog line down; reopening it with backoff (check [[fxo]] port, the wiring or the simulator)");
            last_reason = Some(reason.clone());
        }
        lines.set(&label, FxoState::Down(reason));
        tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(Duration::from_secs(60));
    }
}

/// Caller ID being listened for, between the first and second ring.
struct CidListen {
    decoder: cid::Decoder,
    until: tokio::time::Instant,
}

/// One run of an opened analog line: its driver's events and its audio,
/// turned into call signalling for the voice service.
struct FxoRun {
    label: String,
    events: mpsc::Receiver<crossline_line::DriverEvent>,
    /// The link's audio (ignored when the line's audio is on ALSA; read
    /// still, so a closed link is seen).
    from_line: Option<LinkAudioReceiver>,
    /// The line's ALSA device (`voice_alsa`), and its capture once open.
    alsa: Option<AlsaLine>,
    alsa_in: Option<AlsaIn>,
    call: FxoCall,
    calls: Option<mpsc::Sender<FxoSignal>>,
    /// A call rang (`RingStarted`) and has not ended.
    in_call: bool,
    /// The voice service has been told (`Incoming`).
    reported: bool,
    cid: Option<CidListen>,
    number: Option<String>,
    /// The caller's name and why there is no number, from the caller ID.
    name: Option<String>,
    absence: Option<crossline_modem::NumberAbsence>,
    /// Listens for busy/congestion tone while off-hook (`disconnect_tone`).
    tone: Option<tones::CadenceDetector>,
}

impl FxoRun {
    fn new(
        label: &str,
        opened: OpenedLine,
        alsa: Option<AlsaLine>,
        calls: Option<mpsc::Sender<FxoSignal>>,
    ) -> Self {
        let (from_line, to_line) = match opened.audio {
            Some(a) => {
                let (rx, tx) = a.split();
                (Some(rx), Some(AudioOut::Fxo(tx)))
            }
            None => (None, None),
        };
        // With `voice_alsa` the audio is the device's (set once it opened).
        let to_line = if alsa.is_some() { None } else { to_line };
        Self {
            label: label.to_string(),
            events: opened.events,
            from_line,
            alsa,
            alsa_in: None,
            call: FxoCall {
                driver: opened.driver,
                to_line,
                listener: Listener::default(),
            },
            calls,
            in_call: false,
            reported: false,
            cid: None,
            number: None,
            name: None,
            absence: None,
            tone: None,
        }
    }

    /// Whether the line has audio to decode caller ID and tones from.
    fn has_audio(&self) -> bool {
        if self.alsa.is_some() {
            self.alsa_in.is_some()
        } else {
            self.from_line.is_some()
        }
    }

    /// Opens the line's ALSA device if it has one and it is not open. A
    /// device that does not open leaves the line without audio (logged).
    async fn open_alsa(&mut self) {
        let Some(alsa) = &self.alsa else {
            return;
        };
        if self.alsa_in.is_some() {
            return;
        }
        match alsa.open().await {
            Ok((rx, tx)) => {
                info!(line = %self.label, device = %alsa.device, "analog line audio on ALSA");
                self.alsa_in = Some(rx);
                self.call.to_line = Some(AudioOut::Alsa(tx));
            }
            Err(e) => {
                warn!(line = %self.label, error = %e,
                    "analog line without audio: calls come without caller ID and the IVR is silent; the device is tried again at the next ring");
            }
        }
    }

    async fn run(mut self, shutdown: &CancellationToken) -> FxoEnd {
        let far = tokio::time::Instant::now() + Duration::from_secs(86_400 * 365);
        self.open_alsa().await;
        loop {
            let cid_until = self.cid.as_ref().map(|c| c.until);
            tokio::select! {
                _ = shutdown.cancelled() => {
                    let _ = self.call.driver.hang_up();
                    self.lost("the analog line's driver stopped").await;
                    return FxoEnd::Stopped;
                }
                ev = self.events.recv() => match ev {
                    Some(Ok(ev)) => self.on_event(ev).await,
                    Some(Err(e)) => {
                        let reason = e.to_string();
                        self.lost(&reason).await;
                        return FxoEnd::Lost(reason);
                    }
                    None => {
                        self.lost("the line's driver task ended").await;
                        return FxoEnd::Lost("the line's driver task ended".into());
                    }
                },
                f = async { self.alsa_in.as_mut()?.recv_frame().await }, if self.alsa_in.is_some() => match f {
                    Some(frame) => self.on_frame(&frame).await,
                    None => {
                        warn!(line = %self.label, device = self.alsa.as_ref().map_or("", |a| a.device.as_str()),
                            "the analog line's ALSA audio stopped (its error is logged with the device): the line runs without audio until its next ring reopens it");
                        self.alsa_in = None;
                        self.call.to_line = None;
                    }
                },
                f = async { self.from_line.as_mut()?.recv_frame().await }, if self.from_line.is_some() => match f {
                    Some(frame) if self.alsa.is_none() => self.on_frame(&frame).await,
                    // The line's audio is on ALSA: the link's is not used.
                    Some(_) => {}
                    None => {
                        let reason = "the line link closed".to_string();
                        self.lost(&reason).await;
                        return FxoEnd::Lost(reason);
                    }
                },
                _ = tokio::time::sleep_until(cid_until.unwrap_or(far)), if cid_until.is_some() => {
                    self.cid_done(None).await;
                }
            }
        }
    }

    async fn signal(&self, event: crossline_modem::ModemEvent) {
        if let Some(calls) = &self.calls {
            let msg = FxoSignal {
                line: self.label.clone(),
                fxo: self.call.clone(),
                event,
            };
            if calls.send(msg).await.is_err() {
                tracing::debug!(line = %self.label, "the voice service is gone; call event dropped");
            }
        }
    }

    async fn call_event(&self, ev: CallEvent) {
        self.signal(crossline_modem::ModemEvent::Call(ev)).await;
    }

    /// The call (if any) ends with the line.
    async fn lost(&mut self, reason: &str) {
        self.call.detach();
        if self.in_call {
            self.report_ringing().await;
            self.signal(crossline_modem::ModemEvent::Disconnected {
                reason: reason.to_string(),
            })
            .await;
        }
        self.reset();
    }

    fn reset(&mut self) {
        self.in_call = false;
        self.reported = false;
        self.cid = None;
        self.number = None;
        self.name = None;
        self.absence = None;
        self.tone = None;
    }

    /// Tells the voice service the line rings (once per call), with the
    /// caller ID decoded so far.
    async fn report_ringing(&mut self) {
        if self.reported || !self.in_call {
            return;
        }
        // A window not finished: what the audio held is all there is.
        self.finish_cid(None);
        self.reported = true;
        self.call_event(CallEvent::Incoming {
            number: self.number.clone(),
            name: self.name.clone(),
            absence: self.absence,
        })
        .await;
    }

    /// The caller ID window is over: with `result`, or (None) the
    /// decoder's verdict on what it heard. Then the call is reported.
    async fn cid_done(&mut self, result: Option<Result<cid::CallerId, cid::CidError>>) {
        self.finish_cid(result);
        self.report_ringing().await;
    }

    /// Ends the caller ID window (if open): the number decoded, or why
    /// there is none (logged).
    fn finish_cid(&mut self, result: Option<Result<cid::CallerId, cid::CidError>>) {
        let Some(mut listen) = self.cid.take() else {
            return;
        };
        let standard = listen.decoder.standard();
        let result = result.unwrap_or_else(|| listen.decoder.finish());
        match result {
            Ok(id) => {
                self.name = id
                    .name
                    .as_deref()
                    .map(str::trim)
                    .filter(|n| !n.is_empty())
                    .map(str::to_string);
                self.absence = id.number_absence.map(|a| match a {
                    cid::Absence::Private => crossline_modem::NumberAbsence::Withheld,
                    cid::Absence::Unavailable => crossline_modem::NumberAbsence::Unavailable,
                });
                match id
                    .number
                    .as_deref()
                    .map(str::trim)
                    .filter(|n| !n.is_empty())
                {
                    Some(n) => {
                        info!(line = %self.label, standard = standard.as_str(), number = n, name = id.name.as_deref().unwrap_or(""), "caller ID");
                        self.number = Some(n.to_string());
                    }
                    None => {
                        info!(line = %self.label, standard = standard.as_str(), absence = ?id.number_absence,
                        "caller ID without a number (withheld or unavailable)");
                    }
                }
            }
            Err(e @ cid::CidError::NoCarrier { .. }) => {
                tracing::debug!(line = %self.label, standard = standard.as_str(), error = %e,
                    "no caller ID between the first rings: the call has no number");
            }
            Err(e) => {
                warn!(line = %self.label, standard = standard.as_str(), error = %e,
                    "caller ID heard but not decoded (garbled, or another standard: check the line's caller_id); the call has no number");
            }
        }
    }

    async fn on_event(&mut self, ev: FxoEvent) {
        tracing::debug!(line = %self.label, event = ?ev, "analog line event");
        match ev {
            FxoEvent::RingStarted => {
                self.reset();
                self.in_call = true;
                // A device that failed (or was unplugged) is tried again.
                self.open_alsa().await;
            }
            FxoEvent::CallerIdWindow { listen_ms } => {
                if self.in_call && !self.reported {
                    let standard = self.call.driver.config().caller_id_standard();
                    self.cid = Some(CidListen {
                        decoder: cid::Decoder::new(standard),
                        until: tokio::time::Instant::now()
                            + Duration::from_millis(u64::from(listen_ms)),
                    });
                    if !self.has_audio() {
                        // No audio to decode it from.
                        self.cid_done(Some(Err(cid::CidError::NoCarrier { standard })))
                            .await;
                    }
                }
            }
            FxoEvent::Ring { count } => {
                if count >= 2 {
                    // The window is the pause after the first ring.
                    self.report_ringing().await;
                }
            }
            FxoEvent::RingingStopped { rings } => {
                info!(line = %self.label, rings, "the caller gave up before the answer");
                self.report_ringing().await;
                if self.in_call {
                    self.call_event(CallEvent::Ended {
                        reason: CallEnd::Missed,
                    })
                    .await;
                }
                self.reset();
            }
            FxoEvent::Answered => {
                self.report_ringing().await;
                if self.call.driver.config().disconnect_tone && self.has_audio() {
                    self.tone = Some(tones::CadenceDetector::new(
                        self.call.driver.config().country,
                    ));
                }
                self.call_event(CallEvent::Connected).await;
            }
            FxoEvent::FarEndDisconnect { cause } => {
                self.call.detach();
                if self.in_call {
                    self.report_ringing().await;
                    match cause {
                        DisconnectCause::NoLoopCurrent => {
                            self.signal(crossline_modem::ModemEvent::Disconnected {
                                reason: "no loop current after going off-hook (dead line, unplugged cable or broken relay)".into(),
                            })
                            .await;
                        }
                        _ => {
                            info!(line = %self.label, cause = ?cause, "the caller hung up");
                            self.call_event(CallEvent::Ended {
                                reason: CallEnd::Remote,
                            })
                            .await;
                        }
                    }
                }
                self.reset();
            }
            FxoEvent::OnHook => {
                self.call.detach();
                if self.in_call {
                    self.report_ringing().await;
                    self.call_event(CallEvent::Ended {
                        reason: CallEnd::Local,
                    })
                    .await;
                }
                self.reset();
            }
            // The appliance does not dial out on analog lines yet.
            FxoEvent::Seized | FxoEvent::FarEndAnswered => {}
        }
    }

    async fn on_frame(&mut self, frame: &Frame) {
        if let Some(listen) = &mut self.cid
            && let Some(r) = listen.decoder.push(frame)
        {
            self.cid_done(Some(r)).await;
        }
        self.call.hand_over(frame);
        if let Some(det) = &mut self.tone {
            let heard = det.push(frame);
            if let Some(d) = heard
                .iter()
                .find(|d| matches!(d.kind, tones::Kind::Busy | tones::Kind::Congestion))
            {
                info!(line = %self.label, tone = ?d.kind, "disconnect tone on the line: the caller is gone");
                self.tone = None;
                if let Err(e) = self.call.driver.tone_disconnect() {
                    warn!(line = %self.label, error = %e, "could not end the call on the disconnect tone");
                }
            }
        }
    }
}
