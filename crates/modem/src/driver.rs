//! The modem driver: one task per modem owning the AT engine, driven by
//! requests from [`ModemHandle`]s, URCs from the modem and timers.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use crossline_pdu::{
    Address, Deliver, DeliveryOutcome, Direction, Pdu, Reassembler, StatusReport, SubmitOptions,
};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tracing::{Instrument, debug, info, warn};

use crate::config::{Delivery, ModemConfig, Profile, Spec};
use crate::engine::{AtEngine, Command, Response, Transport};
use crate::error::{AtError, ErrorClass};
use crate::parser::{self, ClccEntry, RegDomain, Urc};
use crate::store::{DirectStore, stable_key};
use crate::types::*;
use crate::voice::{self, VoiceOpener, VoiceStream};

/// Errors of handle calls other than `send_sms`.
#[derive(Debug, thiserror::Error)]
pub enum ModemError {
    #[error(transparent)]
    At(#[from] AtError),
    #[error("{line}: modem not ready: {reason}")]
    NotReady { line: String, reason: String },
    #[error("{line}: the modem driver has stopped")]
    Stopped { line: String },
    #[error("{line}: {what}")]
    Invalid { line: String, what: String },
    #[error("{line}: USSD: {reason}")]
    Ussd { line: String, reason: String },
    #[error(transparent)]
    State(#[from] crate::store::StoreError),
}

type Reply<T> = oneshot::Sender<Result<T, ModemError>>;

enum Request {
    Send {
        to: String,
        text: String,
        opts: SendOptions,
        reply: oneshot::Sender<Result<SentSms, SendError>>,
    },
    Confirm {
        receipt: HandoverReceipt,
        reply: Reply<()>,
    },
    Probe {
        reply: Reply<ModemInfo>,
    },
    Ussd {
        code: String,
        reply: Reply<String>,
    },
    Dial {
        number: String,
        reply: Reply<()>,
    },
    Answer {
        reply: Reply<()>,
    },
    Hangup {
        reply: Reply<()>,
    },
    Dtmf {
        digits: String,
        reply: Reply<()>,
    },
    Sweep {
        reply: Reply<usize>,
    },
    Voice {
        reply: Reply<VoiceStream>,
    },
    At {
        command: String,
        reply: Reply<Vec<String>>,
    },
    Shutdown {
        reply: oneshot::Sender<()>,
    },
}

/// Starts modem drivers.
pub struct Modem;

impl Modem {
    /// Starts the driver task for one modem. `opener` is called to open the
    /// port at start and again (with backoff) whenever it fails — USB modems
    /// re-enumerate, so it should reopen by path (see
    /// [`crate::serial_opener`]). Returns the handle and the event stream.
    /// Must be called inside a tokio runtime. The driver stops when every
    /// handle is dropped or [`ModemHandle::shutdown`] is called.
    pub fn start<F, Fut>(
        config: ModemConfig,
        opener: F,
    ) -> (ModemHandle, mpsc::Receiver<ModemEvent>)
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = std::io::Result<Transport>> + Send + 'static,
    {
        let (req_tx, req_rx) = mpsc::channel(64);
        let (ev_tx, ev_rx) = mpsc::channel(256);
        let span = tracing::info_span!("modem", line = %config.line, port = %config.port);
        let handle = ModemHandle {
            line: config.line.clone(),
            tx: req_tx,
        };
        let driver = Driver::new(config, ev_tx, req_rx);
        tokio::spawn(driver.run(opener).instrument(span));
        (handle, ev_rx)
    }
}

/// Cheap to clone; every call is answered by the driver task in order.
#[derive(Clone, Debug)]
pub struct ModemHandle {
    line: String,
    tx: mpsc::Sender<Request>,
}

impl ModemHandle {
    /// The line label.
    pub fn line(&self) -> &str {
        &self.line
    }

    async fn call<T>(&self, make: impl FnOnce(Reply<T>) -> Request) -> Result<T, ModemError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(make(reply))
            .await
            .map_err(|_| ModemError::Stopped {
                line: self.line.clone(),
            })?;
        rx.await.map_err(|_| ModemError::Stopped {
            line: self.line.clone(),
        })?
    }

    /// Sends an SMS (split into parts as needed), waiting until every part
    /// is accepted by the network, failed, or became ambiguous. Temporary
    /// errors are retried with backoff without blocking other messages.
    /// While the port is gone the message waits for the reconnect; dropping
    /// this future before its first part was submitted cancels the message
    /// (a message already partly sent is completed).
    pub async fn send_sms(
        &self,
        to: &str,
        text: &str,
        opts: SendOptions,
    ) -> Result<SentSms, SendError> {
        let (reply, rx) = oneshot::channel();
        let req = Request::Send {
            to: to.to_string(),
            text: text.to_string(),
            opts,
            reply,
        };
        if self.tx.send(req).await.is_err() {
            return Err(SendError::Stopped {
                line: self.line.clone(),
            });
        }
        rx.await.unwrap_or_else(|_| {
            Err(SendError::Unknown {
                line: self.line.clone(),
                to: to.to_string(),
                reason: "the driver stopped while sending".into(),
                sent_refs: Vec::new(),
                ambiguous_part: 0,
            })
        })
    }

    /// Confirms that a message is durably handed over: deletes its parts
    /// from the modem (or the state file). Call it for duplicates too.
    pub async fn confirm(&self, receipt: HandoverReceipt) -> Result<(), ModemError> {
        self.call(|reply| Request::Confirm { receipt, reply }).await
    }

    /// Fresh identity, SIM, registration, operator and signal.
    pub async fn probe(&self) -> Result<ModemInfo, ModemError> {
        self.call(|reply| Request::Probe { reply }).await
    }

    /// Runs a USSD code (e.g. `*100#`) and returns the network's answer text.
    pub async fn ussd(&self, code: &str) -> Result<String, ModemError> {
        let code = code.to_string();
        self.call(|reply| Request::Ussd { code, reply }).await
    }

    /// Dials a voice call (`ATD<number>;`).
    pub async fn dial(&self, number: &str) -> Result<(), ModemError> {
        let number = number.to_string();
        self.call(|reply| Request::Dial { number, reply }).await
    }

    /// Answers the ringing call (ATA).
    pub async fn answer(&self) -> Result<(), ModemError> {
        self.call(|reply| Request::Answer { reply }).await
    }

    /// Hangs up (AT+CHUP, or ATH per profile).
    pub async fn hangup(&self) -> Result<(), ModemError> {
        self.call(|reply| Request::Hangup { reply }).await
    }

    /// Sends DTMF digits in the active call (AT+VTS per digit).
    pub async fn dtmf(&self, digits: &str) -> Result<(), ModemError> {
        let digits = digits.to_string();
        self.call(|reply| Request::Dtmf { digits, reply }).await
    }

    /// The connected call's audio as 20 ms frames (8 kHz s16 mono), from the
    /// configured `voice_port`; ask after [`CallEvent::Connected`]. Once per
    /// call: the stream ends with the call. Errors when no call is
    /// connected, the line has no voice port, the audio could not be
    /// started (the reason is in the error and in a `Warning` event), the
    /// audio is on ALSA (`voice_alsa`: open that device), or the stream was
    /// already taken.
    pub async fn voice(&self) -> Result<VoiceStream, ModemError> {
        self.call(|reply| Request::Voice { reply }).await
    }

    /// Sweeps the modem storage now (AT+CMGL=4); returns messages found.
    pub async fn sweep(&self) -> Result<usize, ModemError> {
        self.call(|reply| Request::Sweep { reply }).await
    }

    /// Runs a raw AT command (diagnostics); returns its information lines.
    pub async fn at(&self, command: &str) -> Result<Vec<String>, ModemError> {
        let command = command.to_string();
        self.call(|reply| Request::At { command, reply }).await
    }

    /// Stops the driver (pending sends are answered with `Stopped`).
    pub async fn shutdown(&self) {
        let (reply, rx) = oneshot::channel();
        if self.tx.send(Request::Shutdown { reply }).await.is_ok() {
            let _ = rx.await;
        }
    }
}

struct Job {
    id: u64,
    to: String,
    recipient_digits: String,
    parts: Vec<crossline_pdu::EncodedPart>,
    refs: Vec<u8>,
    tag: Option<String>,
    attempts: u32,
    not_before: Instant,
    reply: oneshot::Sender<Result<SentSms, SendError>>,
}

/// A submitted part waiting for its status report.
#[derive(Clone)]
struct SentRef {
    mr: u8,
    to: String,
    id: u64,
    part: usize,
    tag: Option<String>,
}

struct Group {
    reasm: Reassembler,
    locations: Vec<Location>,
    direct: Vec<u64>,
    first_seen: Instant,
    class: Option<u8>,
    reference: u16,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Idle,
    Ringing,
    Dialing,
    Alerting,
    Active,
}

enum Stop {
    Stop,
    Dead,
}

/// The caller ID of a ringing call, as +CLIP (or +CLCC) gave it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Caller {
    number: Option<String>,
    name: Option<String>,
    absence: Option<NumberAbsence>,
}

impl Caller {
    /// Takes what a later +CLIP (or +CLCC) says: a number or a reason for
    /// none replaces both; a name is kept unless a new one comes (+CLCC
    /// has none).
    fn update(&mut self, c: Caller) {
        if c.number.is_some() || c.absence.is_some() {
            self.number = c.number;
            self.absence = c.absence;
        }
        if c.name.is_some() {
            self.name = c.name;
        }
    }

    fn incoming(&self) -> CallEvent {
        CallEvent::Incoming {
            number: self.number.clone(),
            name: self.name.clone(),
            absence: self.absence,
        }
    }

    fn ringing(&self) -> CallEvent {
        CallEvent::Ringing {
            number: self.number.clone(),
            name: self.name.clone(),
            absence: self.absence,
        }
    }
}

struct Driver {
    cfg: ModemConfig,
    spec: Spec,
    label: String,
    events: mpsc::Sender<ModemEvent>,
    requests: mpsc::Receiver<Request>,
    engine: Option<AtEngine>,
    dead: Option<String>,
    ready: bool,
    needs_init: bool,
    pin_rejected: bool,
    info: ModemInfo,
    reg_cs: RegStatus,
    reg_eps: RegStatus,
    cur_mem: Option<String>,
    mems_seen: BTreeSet<String>,
    started: Instant,
    // receive
    groups: HashMap<(String, u16, u8), Group>,
    known: HashMap<Location, String>,
    direct: DirectStore,
    // send
    outbox: VecDeque<Job>,
    next_id: u64,
    next_concat: u16,
    last_submit: Option<Instant>,
    /// Submitted parts waiting for a report, oldest first. TP-MR is one
    /// octet: it wraps after 256 parts and restarts when the modem resets,
    /// so a report goes to the newest part with its (MR, recipient).
    reports: VecDeque<SentRef>,
    // calls
    phase: Phase,
    /// The caller ID of the ringing call, from +CLIP (or +CLCC).
    caller: Caller,
    announced: bool,
    announce_at: Option<Instant>,
    last_ring: Option<Instant>,
    next_call_poll: Option<Instant>,
    /// The last AT+CLCC poll found no call (the final result code — BUSY,
    /// NO ANSWER, NO CARRIER — may still be on its way).
    call_vanished: bool,
    /// The connected call's audio, when a voice port or ALSA is configured.
    voice: Option<CallAudio>,
    voice_opener: Option<VoiceOpener>,
    // ussd
    ussd: Option<(Reply<String>, Instant)>,
    // timers
    next_sweep: Instant,
    next_health: Instant,
    next_reinit: Option<Instant>,
}

/// One connected call's audio.
struct CallAudio {
    pump: Option<voice::Pump>,
    stream: Option<VoiceStream>,
    /// Stops the audio at hang-up (given only when the start worked).
    off: Option<String>,
    /// `voice_alsa`: the application opens this device.
    alsa: Option<String>,
    /// Why this call has no audio.
    problem: Option<String>,
}

const MAX_OUTBOX: usize = 1000;
const MAX_REPORTS: usize = 4096;
/// Most concatenated messages waiting for parts at a time.
const MAX_GROUPS: usize = 256;
const RING_GAP: Duration = Duration::from_secs(8);
const CALL_POLL: Duration = Duration::from_secs(1);

fn digits(s: &str) -> String {
    s.chars().filter(char::is_ascii_digit).collect()
}

/// Whether two renderings of a phone number are the same number: the last
/// digits (up to nine) agree, so `+380501234567` and `0501234567` match.
pub fn same_number(a: &str, b: &str) -> bool {
    let (a, b) = (digits(a), digits(b));
    if a.is_empty() || b.is_empty() {
        return a == b;
    }
    let n = a.len().min(b.len()).min(9);
    a.get(a.len() - n..) == b.get(b.len() - n..)
}

fn backoff(base: Duration, attempt: u32) -> Duration {
    let factor = 1u32
        .checked_shl(attempt.saturating_sub(1).min(16))
        .unwrap_or(u32::MAX);
    base.saturating_mul(factor).min(Duration::from_secs(300))
}

/// Parses `(0-2),(0,1,3),(0)` into value sets.
fn parse_ranges(s: &str) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut depth = 0usize;
    let mut cur = String::new();
    let flush = |cur: &mut String, out: &mut Vec<Vec<u8>>| {
        let mut set = Vec::new();
        for item in cur.split(',') {
            let item = item.trim();
            if let Some((a, b)) = item.split_once('-') {
                if let (Ok(a), Ok(b)) = (a.trim().parse::<u8>(), b.trim().parse::<u8>()) {
                    set.extend(a..=b.min(a.saturating_add(15)));
                }
            } else if let Ok(v) = item.parse::<u8>() {
                set.push(v);
            }
        }
        out.push(set);
        cur.clear();
    };
    for c in s.chars() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => flush(&mut cur, &mut out),
            _ => cur.push(c),
        }
    }
    if !cur.trim().is_empty() {
        flush(&mut cur, &mut out);
    }
    out
}

impl Driver {
    fn new(
        cfg: ModemConfig,
        events: mpsc::Sender<ModemEvent>,
        requests: mpsc::Receiver<Request>,
    ) -> Self {
        let spec = cfg.profile.spec(cfg.urc_port.as_deref());
        let label = if cfg.port.is_empty() {
            cfg.line.clone()
        } else {
            format!("{} ({})", cfg.line, cfg.port)
        };
        let now = Instant::now();
        let info = ModemInfo {
            line: cfg.line.clone(),
            port: cfg.port.clone(),
            own_number: cfg.own_number.clone(),
            profile: cfg.profile,
            ..ModemInfo::default()
        };
        Self {
            spec,
            label,
            events,
            requests,
            engine: None,
            dead: None,
            ready: false,
            needs_init: false,
            pin_rejected: false,
            info,
            reg_cs: RegStatus::Unknown,
            reg_eps: RegStatus::Unknown,
            cur_mem: None,
            mems_seen: BTreeSet::new(),
            started: now,
            groups: HashMap::new(),
            known: HashMap::new(),
            direct: DirectStore::default(),
            outbox: VecDeque::new(),
            next_id: 1,
            next_concat: u16::try_from(
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_secs() % 256)
                    .unwrap_or(0),
            )
            .unwrap_or(0),
            last_submit: None,
            reports: VecDeque::new(),
            phase: Phase::Idle,
            caller: Caller::default(),
            announced: false,
            announce_at: None,
            last_ring: None,
            next_call_poll: None,
            call_vanished: false,
            voice: None,
            voice_opener: cfg.voice_port.clone().map(|p| {
                let open = crate::engine::serial_opener(p, 115_200);
                Arc::new(open) as VoiceOpener
            }),
            ussd: None,
            next_sweep: now,
            next_health: now,
            next_reinit: None,
            cfg,
        }
    }

    fn storage(&self) -> [String; 3] {
        self.cfg
            .storage
            .clone()
            .unwrap_or_else(|| self.spec.storage.map(str::to_string))
    }

    fn delivery(&self) -> Delivery {
        self.cfg.delivery.unwrap_or(self.spec.delivery)
    }

    async fn emit(&self, ev: ModemEvent) {
        if self.events.send(ev).await.is_err() {
            debug!("event receiver dropped");
        }
    }

    async fn run<F, Fut>(mut self, opener: F)
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = std::io::Result<Transport>> + Send + 'static,
    {
        match DirectStore::open(self.cfg.state_file.as_deref()) {
            Ok(s) => self.direct = s,
            Err(e) => {
                warn!(error = %e, "direct-delivery state file unusable");
                self.emit(ModemEvent::Warning(format!(
                    "{}: {e}; until it is fixed, directly delivered (+CMT) parts are kept in memory only",
                    self.cfg.line
                )))
                .await;
            }
        }
        // Parts delivered directly before a restart: feed them again.
        let saved = self.direct.parts().to_vec();
        for p in saved {
            if let Ok(Pdu::Deliver(d)) =
                crossline_pdu::decode_hex(&p.pdu, Direction::MobileTerminated, true)
            {
                self.on_deliver(d, None, Some(p.id)).await;
            }
        }
        let mut delay = Duration::from_millis(200);
        let mut was_down = false;
        // A port that cannot be opened is logged when the reason changes, not
        // on every retry (a missing port would warn for ever).
        let mut open_error: Option<String> = None;
        loop {
            match opener().await {
                Ok(io) => {
                    info!("port opened");
                    open_error = None;
                    self.engine = Some(AtEngine::new(io, self.label.clone()));
                    self.dead = None;
                    self.init().await;
                    if self.dead.is_none() {
                        delay = Duration::from_millis(200);
                        if was_down {
                            self.emit(ModemEvent::Reconnected).await;
                        }
                        was_down = false;
                        if let Stop::Stop = self.session().await {
                            self.stop_all();
                            return;
                        }
                    }
                    let reason = self.dead.take().unwrap_or_else(|| "unknown".into());
                    warn!(%reason, "modem lost; reopening");
                    self.engine = None;
                    self.ready = false;
                    self.cur_mem = None;
                    if !was_down {
                        self.connection_lost(&reason).await;
                    }
                    was_down = true;
                }
                Err(e) => {
                    let reason = if e.kind() == std::io::ErrorKind::NotFound {
                        format!(
                            "port {} does not exist (is the modem plugged in? is the configured port right?)",
                            self.cfg.port
                        )
                    } else {
                        format!("cannot open port {}: {e}", self.cfg.port)
                    };
                    if open_error.as_deref() != Some(reason.as_str()) {
                        warn!(%reason, "cannot open the port; retrying with backoff (logged again when the reason changes)");
                    } else {
                        debug!(%reason, "cannot open the port");
                    }
                    if !was_down || open_error.as_deref() != Some(reason.as_str()) {
                        self.emit(ModemEvent::Disconnected {
                            reason: reason.clone(),
                        })
                        .await;
                        was_down = true;
                    }
                    open_error = Some(reason);
                }
            }
            if let Stop::Stop = self.wait_offline(delay).await {
                self.stop_all();
                return;
            }
            delay = delay
                .saturating_mul(2)
                .min(self.cfg.reopen_backoff_max.max(Duration::from_millis(200)));
        }
    }

    fn stop_all(&mut self) {
        for job in self.outbox.drain(..) {
            let _ = job.reply.send(Err(SendError::Stopped {
                line: self.cfg.line.clone(),
            }));
        }
    }

    async fn connection_lost(&mut self, reason: &str) {
        self.emit(ModemEvent::Disconnected {
            reason: reason.to_string(),
        })
        .await;
        if let Some((reply, _)) = self.ussd.take() {
            let _ = reply.send(Err(ModemError::NotReady {
                line: self.cfg.line.clone(),
                reason: "the modem disconnected".into(),
            }));
        }
        if self.phase != Phase::Idle {
            self.end_call(CallEnd::Failed("the modem disconnected".into()))
                .await;
        }
    }

    fn not_ready<T>(&self, reason: &str) -> Result<T, ModemError> {
        Err(ModemError::NotReady {
            line: self.cfg.line.clone(),
            reason: reason.to_string(),
        })
    }

    async fn wait_offline(&mut self, delay: Duration) -> Stop {
        let until = Instant::now() + delay;
        loop {
            let req = tokio::select! {
                r = self.requests.recv() => r,
                _ = tokio::time::sleep_until(until) => return Stop::Dead,
            };
            let Some(req) = req else { return Stop::Stop };
            match req {
                Request::Shutdown { reply } => {
                    let _ = reply.send(());
                    return Stop::Stop;
                }
                Request::Send {
                    to,
                    text,
                    opts,
                    reply,
                } => self.enqueue(to, text, opts, reply),
                Request::Confirm { receipt, reply } => {
                    if receipt.locations.is_empty() {
                        let _ = reply.send(
                            self.direct
                                .remove(&receipt.direct_parts)
                                .map_err(Into::into),
                        );
                    } else {
                        let _ =
                            reply.send(self.not_ready("the port is closed; confirm again later"));
                    }
                }
                Request::Probe { reply } => {
                    let _ = reply.send(self.not_ready("the port is closed (reopening)"));
                }
                Request::Ussd { reply, .. } => {
                    let _ = reply.send(self.not_ready("the port is closed (reopening)"));
                }
                Request::Sweep { reply } => {
                    let _ = reply.send(self.not_ready("the port is closed (reopening)"));
                }
                Request::Voice { reply } => {
                    let _ = reply.send(self.not_ready("the port is closed (reopening)"));
                }
                Request::At { reply, .. } => {
                    let _ = reply.send(self.not_ready("the port is closed (reopening)"));
                }
                Request::Dial { reply, .. }
                | Request::Answer { reply }
                | Request::Hangup { reply }
                | Request::Dtmf { reply, .. } => {
                    let _ = reply.send(self.not_ready("the port is closed (reopening)"));
                }
            }
        }
    }

    // ---------------------------------------------------------------- AT

    /// Runs a command; on a timeout resyncs; marks the connection dead when
    /// the port failed or the modem does not come back.
    async fn cmd(&mut self, c: Command) -> Result<Response, AtError> {
        let Some(engine) = self.engine.as_mut() else {
            return Err(AtError::Closed {
                port: self.label.clone(),
            });
        };
        if self.dead.is_some() {
            return Err(AtError::Closed {
                port: self.label.clone(),
            });
        }
        let r = engine.run(&c).await;
        if let Err(e) = &r {
            if e.is_transport() {
                self.dead = Some(e.to_string());
            } else if matches!(
                e,
                AtError::Timeout { .. } | AtError::NoPrompt { .. } | AtError::Ambiguous { .. }
            ) {
                warn!(error = %e, "resyncing");
                if let Err(e2) = engine.resync(5, Duration::from_secs(1)).await {
                    self.dead = Some(format!("{e}; resync failed: {e2}"));
                }
            }
        }
        r
    }

    fn t(&self) -> Duration {
        self.cfg.command_timeout
    }

    /// A command whose failure is only logged.
    async fn try_cmd(&mut self, text: &str) -> bool {
        let c = Command::new(text, self.t());
        match self.cmd(c).await {
            Ok(_) => true,
            Err(e) => {
                debug!(command = text, error = %e, "optional command failed");
                false
            }
        }
    }

    /// First non-empty information line of a prefix-less query.
    async fn query_line(&mut self, text: &str, strip: &[&str]) -> Option<String> {
        let r = self.cmd(Command::new(text, self.t())).await.ok()?;
        r.lines.iter().find_map(|l| {
            let mut s = l.as_str();
            for p in strip {
                if let Some(rest) = s.strip_prefix(p) {
                    s = rest;
                }
            }
            let s = s.trim().trim_matches('"').trim();
            (!s.is_empty()).then(|| s.to_string())
        })
    }

    // ---------------------------------------------------------------- init

    async fn init(&mut self) {
        self.needs_init = false;
        self.ready = false;
        self.next_reinit = None;
        self.cur_mem = None;
        let Some(engine) = self.engine.as_mut() else {
            return;
        };
        if let Err(e) = engine.resync(10, Duration::from_secs(1)).await {
            self.dead = Some(format!("the modem does not answer AT: {e}"));
            return;
        }
        self.try_cmd("ATE0").await;
        self.try_cmd("AT+CMEE=2").await;
        self.info.manufacturer = self.query_line("AT+CGMI", &["+CGMI:"]).await;
        self.info.model = self.query_line("AT+CGMM", &["+CGMM:"]).await;
        self.info.firmware = self.query_line("AT+CGMR", &["+CGMR:", "Revision:"]).await;
        self.info.imei = self
            .query_line("AT+CGSN", &["+CGSN:"])
            .await
            .filter(|s| s.len() >= 14 && s.len() <= 17 && s.bytes().all(|b| b.is_ascii_digit()));
        if self.cfg.profile == Profile::Auto {
            let detected = Profile::detect(
                self.info.manufacturer.as_deref().unwrap_or(""),
                self.info.model.as_deref().unwrap_or(""),
            );
            info!(profile = ?detected, "vendor profile detected");
            self.spec = detected.spec(self.cfg.urc_port.as_deref());
            self.info.profile = detected;
        }
        for c in self.spec.init.clone() {
            if !self.try_cmd(&c).await {
                warn!(command = %c, "vendor init command failed (ignored)");
            }
        }
        if self.dead.is_some() {
            return;
        }
        if let Err(state) = self.sim_ready().await {
            if self.dead.is_some() {
                return;
            }
            let msg = match &state {
                SimState::PinRequired => "SIM PIN required: set `pin` in the modem config".to_string(),
                SimState::PinRejected => {
                    "the SIM rejected the configured PIN; the driver will not try again (3 wrong PINs lock the SIM): fix `pin` and restart".to_string()
                }
                SimState::PukRequired => "the SIM is PUK-locked: unlock it in a phone".to_string(),
                SimState::NotInserted => "no SIM card: insert one (power the modem off first)".to_string(),
                other => format!("SIM not ready: {other:?}"),
            };
            warn!(sim = ?state, "{msg}");
            self.info.sim = state;
            self.emit(ModemEvent::Warning(format!("{}: {msg}", self.label)))
                .await;
            self.emit(ModemEvent::Health(self.info.clone())).await;
            self.next_reinit = Some(Instant::now() + Duration::from_secs(30));
            return;
        }
        self.info.sim = SimState::Ready;
        self.info.iccid = self.read_iccid().await;
        self.info.imsi = self
            .query_line("AT+CIMI", &["+CIMI:"])
            .await
            .filter(|s| s.bytes().all(|b| b.is_ascii_digit()));
        // SMS setup.
        if let Err(e) = self.cmd(Command::new("AT+CMGF=0", self.t())).await {
            if self.dead.is_some() {
                return;
            }
            warn!(error = %e, "AT+CMGF=0 failed; SMS not ready yet");
            self.next_reinit = Some(Instant::now() + Duration::from_secs(5));
            return;
        }
        let st = self.storage();
        let cpms = format!("AT+CPMS=\"{}\",\"{}\",\"{}\"", st[0], st[1], st[2]);
        match self
            .cmd(Command::new(cpms, self.t()).prefixes(&["+CPMS:"]))
            .await
        {
            Ok(r) => {
                self.cur_mem = Some(st[0].clone());
                self.note_cpms(&r);
            }
            Err(e) if e.class() == ErrorClass::NotReady => {
                warn!(error = %e, "message storage not ready yet");
                self.next_reinit = Some(Instant::now() + Duration::from_secs(5));
                return;
            }
            Err(e) => {
                warn!(error = %e, "AT+CPMS with the profile's memories failed; using SM");
                if let Ok(r) = self
                    .cmd(
                        Command::new("AT+CPMS=\"SM\",\"SM\",\"SM\"", self.t())
                            .prefixes(&["+CPMS:"]),
                    )
                    .await
                {
                    self.cur_mem = Some("SM".into());
                    self.note_cpms(&r);
                }
            }
        }
        self.info.cnmi = self.setup_cnmi().await;
        if self.info.cnmi.is_none() {
            self.emit(ModemEvent::Warning(format!(
                "{}: the modem accepted no AT+CNMI setting; new messages are found only by the sweep every {:?}",
                self.label, self.cfg.sweep_interval
            )))
            .await;
        }
        self.try_cmd("AT+CLIP=1").await;
        self.try_cmd("AT+CRC=1").await;
        self.try_cmd("AT+CUSD=1").await;
        self.try_cmd("AT+CREG=2").await;
        self.try_cmd("AT+CEREG=2").await;
        self.try_cmd("AT+COPS=3,0").await;
        self.refresh_status().await;
        if self.dead.is_some() {
            return;
        }
        self.ready = true;
        // Boot announcements read during initialisation (RDY, +CPIN: READY,
        // SMS DONE...) are about the boot we just handled.
        if let Some(engine) = self.engine.as_mut() {
            engine.discard_urcs(|u| {
                matches!(
                    u,
                    Urc::Ready
                        | Urc::Cpin(_)
                        | Urc::SmsDone
                        | Urc::PbDone
                        | Urc::QuSim
                        | Urc::Qind(_)
                )
            });
        }
        info!(model = ?self.info.model, registration = ?self.info.registration, "modem ready");
        self.emit(ModemEvent::Health(self.info.clone())).await;
        self.sweep().await;
        let now = Instant::now();
        self.next_sweep = now + self.cfg.sweep_interval;
        self.next_health = now + self.cfg.health_interval;
    }

    fn note_cpms(&mut self, r: &Response) {
        if let Some(f) = r.fields("+CPMS:") {
            // Set form: used1,total1,...; query form: "mem",used,total,...
            let nums: Vec<u32> = f.iter().filter_map(|s| s.parse().ok()).collect();
            self.info.storage_used = nums.first().copied();
            self.info.storage_total = nums.get(1).copied();
        }
    }

    async fn sim_ready(&mut self) -> Result<(), SimState> {
        let mut entered = false;
        for _ in 0..20 {
            let r = self
                .cmd(Command::new("AT+CPIN?", self.t()).prefixes(&["+CPIN:"]))
                .await;
            if self.dead.is_some() {
                return Err(SimState::Unknown);
            }
            match r {
                Ok(r) => {
                    let state = r
                        .with_prefix("+CPIN:")
                        .next()
                        .unwrap_or("")
                        .trim_matches('"')
                        .to_string();
                    match state.as_str() {
                        "READY" => return Ok(()),
                        "SIM PIN" if !entered => {
                            if self.pin_rejected {
                                return Err(SimState::PinRejected);
                            }
                            let Some(pin) = self.cfg.pin.clone() else {
                                return Err(SimState::PinRequired);
                            };
                            let c = Command::new(format!("AT+CPIN=\"{pin}\""), self.t());
                            let c = Command { redact: true, ..c };
                            match self.cmd(c).await {
                                Ok(_) => entered = true,
                                Err(e) if e.cme_code() == Some(16) || e.cme_code() == Some(12) => {
                                    self.pin_rejected = true;
                                    return Err(SimState::PinRejected);
                                }
                                Err(e) if e.cme_code() == Some(12) => {
                                    return Err(SimState::PukRequired);
                                }
                                Err(e) => return Err(SimState::Error(e.to_string())),
                            }
                        }
                        "SIM PIN" => {}
                        "SIM PUK" => return Err(SimState::PukRequired),
                        other => return Err(SimState::Error(other.to_string())),
                    }
                }
                Err(e) => match e.cme_code() {
                    Some(10) => return Err(SimState::NotInserted),
                    Some(12) => return Err(SimState::PukRequired),
                    Some(13 | 15) => return Err(SimState::Error(e.to_string())),
                    _ if e.class() == ErrorClass::Permanent => {
                        return Err(SimState::Error(e.to_string()));
                    }
                    _ => {}
                },
            }
            self.pause(Duration::from_millis(500)).await;
        }
        Err(SimState::Error(
            "the SIM did not become ready within 10 s".into(),
        ))
    }

    /// Waits while still reading (URCs queue up).
    async fn pause(&mut self, d: Duration) {
        if let Some(engine) = self.engine.as_mut()
            && let Err(e) = engine.pump_until(Instant::now() + d).await
        {
            self.dead = Some(e.to_string());
        }
    }

    async fn read_iccid(&mut self) -> Option<String> {
        for c in self.spec.iccid {
            let Ok(r) = self.cmd(Command::new(*c, self.t())).await else {
                continue;
            };
            for l in &r.lines {
                let v = if let Some(rest) = l.strip_prefix("+CRSM:") {
                    // +CRSM: 144,0,"98101430121181157002" (nibbles swapped)
                    let f = parser::fields(rest);
                    let raw = f.get(2).cloned().unwrap_or_default();
                    let mut out = String::new();
                    let b = raw.as_bytes();
                    for pair in b.chunks(2) {
                        if let [a, b] = pair {
                            out.push(char::from(*b));
                            out.push(char::from(*a));
                        }
                    }
                    out.trim_end_matches(['F', 'f']).to_string()
                } else {
                    let s = l.split_once(':').map_or(l.as_str(), |(_, v)| v);
                    s.trim().trim_matches('"').to_string()
                };
                if (18..=22).contains(&v.len()) && v.bytes().all(|b| b.is_ascii_alphanumeric()) {
                    return Some(v);
                }
            }
        }
        None
    }

    async fn setup_cnmi(&mut self) -> Option<String> {
        let adv = match self
            .cmd(Command::new("AT+CNMI=?", self.t()).prefixes(&["+CNMI:"]))
            .await
        {
            Ok(r) => r.with_prefix("+CNMI:").next().map(parse_ranges),
            Err(_) => None,
        };
        let candidates: &[[u8; 5]] = match self.delivery() {
            // ds=2 first: status reports stored too (+CDSI) survive a
            // restart; then the ModemManager chain.
            Delivery::Stored => &[
                [2, 1, 2, 2, 0],
                [2, 1, 2, 1, 0],
                [2, 1, 2, 0, 0],
                [2, 1, 0, 1, 0],
                [2, 1, 0, 2, 0],
                [1, 1, 0, 2, 0],
                [2, 1, 0, 0, 0],
                [1, 1, 0, 0, 0],
            ],
            Delivery::Direct => &[
                [2, 2, 2, 1, 0],
                [2, 2, 0, 1, 0],
                [2, 2, 2, 0, 0],
                [1, 2, 0, 1, 0],
                [2, 2, 0, 0, 0],
            ],
        };
        for c in candidates {
            let allowed = match &adv {
                Some(sets) if sets.len() >= 4 => c
                    .iter()
                    .zip(sets.iter())
                    .all(|(v, set)| set.is_empty() || set.contains(v)),
                _ => true,
            };
            if !allowed {
                continue;
            }
            let text = format!("AT+CNMI={},{},{},{},{}", c[0], c[1], c[2], c[3], c[4]);
            if self.try_cmd(&text).await {
                return Some(text);
            }
            if self.dead.is_some() {
                return None;
            }
        }
        None
    }

    async fn refresh_status(&mut self) {
        if let Ok(r) = self
            .cmd(Command::new("AT+CSQ", self.t()).prefixes(&["+CSQ:"]))
            .await
            && let Some(f) = r.fields("+CSQ:")
        {
            let rssi = f.first().and_then(|s| s.parse::<u8>().ok()).unwrap_or(99);
            self.info.signal_dbm = csq_to_dbm(rssi);
            self.info.signal_bars = dbm_to_bars(self.info.signal_dbm);
        }
        if let Ok(r) = self
            .cmd(Command::new("AT+CREG?", self.t()).prefixes(&["+CREG:"]))
            .await
            && let Some((s, _, _)) = r
                .fields("+CREG:")
                .and_then(|f| parser::parse_registration(&f))
        {
            self.reg_cs = RegStatus::from_code(s);
        }
        if let Ok(r) = self
            .cmd(Command::new("AT+CEREG?", self.t()).prefixes(&["+CEREG:"]))
            .await
            && let Some((s, _, _)) = r
                .fields("+CEREG:")
                .and_then(|f| parser::parse_registration(&f))
        {
            self.reg_eps = RegStatus::from_code(s);
        }
        self.update_registration();
        if let Ok(r) = self
            .cmd(Command::new("AT+COPS?", self.t()).prefixes(&["+COPS:"]))
            .await
        {
            self.info.operator = r
                .fields("+COPS:")
                .and_then(|f| f.get(2).filter(|s| !s.is_empty()).cloned());
        }
    }

    fn update_registration(&mut self) {
        self.info.registration = if self.reg_cs.is_registered() || !self.reg_eps.is_registered() {
            if self.reg_cs == RegStatus::Unknown {
                self.reg_eps
            } else {
                self.reg_cs
            }
        } else {
            self.reg_eps
        };
    }

    // ---------------------------------------------------------------- session

    async fn session(&mut self) -> Stop {
        loop {
            self.process_urcs().await;
            if self.dead.is_some() {
                return Stop::Dead;
            }
            if self.needs_init {
                self.init().await;
                if self.dead.is_some() {
                    return Stop::Dead;
                }
                continue;
            }
            let wake = self.next_wake();
            enum Wake {
                Req(Option<Request>),
                Read(Result<(), AtError>),
                Timer,
            }
            let w = {
                let Some(engine) = self.engine.as_mut() else {
                    return Stop::Dead;
                };
                tokio::select! {
                    r = self.requests.recv() => Wake::Req(r),
                    r = engine.read_some() => Wake::Read(r),
                    _ = tokio::time::sleep_until(wake) => Wake::Timer,
                }
            };
            match w {
                Wake::Req(None) => return Stop::Stop,
                Wake::Req(Some(Request::Shutdown { reply })) => {
                    let _ = reply.send(());
                    return Stop::Stop;
                }
                Wake::Req(Some(r)) => self.handle(r).await,
                Wake::Read(Err(e)) => self.dead = Some(e.to_string()),
                Wake::Read(Ok(())) => {}
                Wake::Timer => self.on_timers().await,
            }
        }
    }

    fn send_interval(&self) -> Duration {
        if self.cfg.rate_limit == 0 {
            Duration::ZERO
        } else {
            Duration::from_secs(60) / self.cfg.rate_limit
        }
    }

    fn next_send_at(&self) -> Option<Instant> {
        let first = self.outbox.iter().map(|j| j.not_before).min()?;
        let rate = self.last_submit.map(|t| t + self.send_interval());
        Some(rate.map_or(first, |r| r.max(first)))
    }

    fn next_wake(&self) -> Instant {
        let far = Instant::now() + Duration::from_secs(3600);
        let mut w = far;
        let mut consider = |t: Option<Instant>| {
            if let Some(t) = t
                && t < w
            {
                w = t;
            }
        };
        if self.ready {
            consider(Some(self.next_sweep));
            consider(Some(self.next_health));
        }
        consider(self.next_reinit);
        consider(self.next_send_at());
        let timeout = self.cfg.reassembly_timeout;
        consider(self.groups.values().map(|g| g.first_seen + timeout).min());
        consider(self.next_call_poll);
        consider(self.announce_at);
        if self.phase == Phase::Ringing {
            consider(self.last_ring.map(|t| t + RING_GAP));
        }
        consider(self.ussd.as_ref().map(|(_, d)| *d));
        w
    }

    async fn on_timers(&mut self) {
        let now = Instant::now();
        if let Some(t) = self.next_reinit
            && t <= now
        {
            self.next_reinit = None;
            self.needs_init = true;
            return;
        }
        if self.ready && self.next_health <= now {
            self.next_health = now + self.cfg.health_interval;
            self.refresh_status().await;
            self.emit(ModemEvent::Health(self.info.clone())).await;
        }
        if self.ready && self.next_sweep <= now {
            self.next_sweep = now + self.cfg.sweep_interval;
            self.sweep().await;
        }
        if self.next_send_at().is_some_and(|t| t <= now) {
            self.send_next().await;
        }
        self.expire_groups().await;
        if self.announce_at.is_some_and(|t| t <= now) {
            self.announce_at = None;
            if self.phase == Phase::Ringing && !self.announced {
                self.announced = true;
                self.emit(ModemEvent::Call(self.caller.incoming())).await;
            }
        }
        if self.phase == Phase::Ringing && self.last_ring.is_some_and(|t| t + RING_GAP <= now) {
            self.end_call(CallEnd::Missed).await;
        }
        if self.next_call_poll.is_some_and(|t| t <= now) {
            self.poll_calls().await;
        }
        if let Some((_, d)) = &self.ussd
            && *d <= now
            && let Some((reply, _)) = self.ussd.take()
        {
            let _ = reply.send(Err(ModemError::Ussd {
                line: self.cfg.line.clone(),
                reason: format!(
                    "no answer from the network within {:?}",
                    self.cfg.ussd_timeout
                ),
            }));
            self.try_cmd("AT+CUSD=2").await;
        }
    }

    async fn process_urcs(&mut self) {
        loop {
            if self.dead.is_some() {
                return;
            }
            let Some(u) = self.engine.as_mut().and_then(AtEngine::take_urc) else {
                return;
            };
            self.on_urc(u).await;
        }
    }

    async fn on_urc(&mut self, u: Urc) {
        debug!(urc = ?u, "urc");
        match u {
            Urc::Cmti {
                mem,
                index: Some(i),
            } => {
                let mem = mem.unwrap_or_else(|| self.storage()[2].clone());
                self.mems_seen.insert(mem.clone());
                self.read_stored(&mem, i).await;
            }
            Urc::Cmti { index: None, .. } | Urc::Cdsi { index: None, .. } => {
                warn!("new-message indication without an index; sweeping");
                self.sweep().await;
            }
            Urc::Cdsi {
                mem,
                index: Some(i),
            } => {
                let mem = match self.spec.status_report_memory {
                    Some(m) => m.to_string(),
                    None => mem.unwrap_or_else(|| self.storage()[2].clone()),
                };
                // Quectel-like firmware announces "SM" for a report kept in
                // "SR": look there when the announced slot is empty.
                if !self.read_stored(&mem, i).await
                    && mem != "SR"
                    && self.read_stored("SR", i).await
                {
                    info!("status report announced in {mem} found in SR");
                    self.mems_seen.insert("SR".into());
                }
            }
            Urc::Cmt { pdu } => self.on_direct(pdu).await,
            Urc::Cds { pdu } => {
                self.try_cmd("AT+CNMA").await;
                match crossline_pdu::decode_hex(&pdu, Direction::MobileTerminated, true) {
                    Ok(Pdu::StatusReport(sr)) => self.on_status_report(sr).await,
                    other => warn!(?other, "+CDS without a status report"),
                }
            }
            Urc::Cusd { status, text, dcs } => self.on_cusd(status, text, dcs).await,
            Urc::Registration {
                domain,
                status,
                lac,
                cell,
            } => {
                let st = RegStatus::from_code(status);
                match domain {
                    RegDomain::Cs => self.reg_cs = st,
                    RegDomain::Eps => self.reg_eps = st,
                    RegDomain::Gprs => {}
                }
                self.update_registration();
                info!(?domain, status = ?st, "registration");
                self.emit(ModemEvent::Registration(Registration {
                    domain,
                    status: st,
                    lac,
                    cell,
                }))
                .await;
            }
            Urc::Ring | Urc::CRing(_) => self.on_ring().await,
            Urc::Clip {
                number,
                name,
                absence,
            } => {
                self.on_clip(Caller {
                    number,
                    name,
                    absence,
                })
                .await
            }
            Urc::NoCarrier | Urc::VoiceCallEnd | Urc::HuaweiCend => {
                let reason = if self.phase == Phase::Ringing {
                    CallEnd::Missed
                } else {
                    CallEnd::Remote
                };
                self.end_call(reason).await;
            }
            Urc::Busy => self.end_call(CallEnd::Busy).await,
            Urc::NoAnswer => self.end_call(CallEnd::NoAnswer).await,
            Urc::MissedCall { .. } => self.end_call(CallEnd::Missed).await,
            Urc::Clcc(e) => self.on_clcc(&[e]).await,
            Urc::VoiceCallBegin | Urc::HuaweiConn => self.set_phase(Phase::Active).await,
            Urc::HuaweiConf => self.set_phase(Phase::Alerting).await,
            Urc::HuaweiOrig => {}
            Urc::Dtmf(digit) => {
                if self.phase == Phase::Active {
                    self.emit(ModemEvent::Call(CallEvent::Dtmf { digit })).await;
                } else {
                    debug!(%digit, "DTMF outside a call ignored");
                }
            }
            Urc::Ready | Urc::PoweredDown => {
                warn!("the modem rebooted or powered down; initialising again");
                self.needs_init = true;
            }
            Urc::Cpin(s) => {
                if self.ready {
                    warn!(state = %s, "unsolicited +CPIN: the modem restarted; initialising again");
                    self.needs_init = true;
                } else if s.contains("READY") && self.next_reinit.is_some() {
                    self.next_reinit = Some(Instant::now() + Duration::from_secs(1));
                }
            }
            Urc::Qind(s) if s.contains("SMS DONE") => {
                if !self.ready {
                    self.next_reinit = Some(Instant::now());
                }
            }
            Urc::SmsDone => {
                if !self.ready {
                    self.next_reinit = Some(Instant::now());
                }
            }
            Urc::UnderVoltage(s) => {
                self.emit(ModemEvent::Warning(format!(
                    "{}: {s}: the power supply sags; SIM800 needs 2 A peaks",
                    self.label
                )))
                .await;
            }
            Urc::SmsMemoryFull(mem) => {
                self.emit(ModemEvent::Warning(format!(
                    "{}: message memory {mem} is full; confirm handed-over messages so they can be deleted",
                    self.label
                )))
                .await;
                self.sweep().await;
            }
            Urc::Malformed(l) => warn!(line = %l, "malformed unsolicited result"),
            Urc::PbDone | Urc::QuSim | Urc::Qind(_) | Urc::HuaweiNoise(_) | Urc::Other(_) => {}
        }
    }

    // ---------------------------------------------------------------- requests

    async fn handle(&mut self, r: Request) {
        match r {
            Request::Send {
                to,
                text,
                opts,
                reply,
            } => {
                self.enqueue(to, text, opts, reply);
            }
            Request::Confirm { receipt, reply } => {
                let r = self.confirm(&receipt).await;
                let _ = reply.send(r);
            }
            Request::Probe { reply } => {
                if let Ok(r) = self
                    .cmd(Command::new("AT+CPIN?", self.t()).prefixes(&["+CPIN:"]))
                    .await
                    && r.with_prefix("+CPIN:").next() == Some("READY")
                {
                    self.info.sim = SimState::Ready;
                }
                self.refresh_status().await;
                let main = self.storage()[0].clone();
                if self.select_mem(&main).await.is_ok()
                    && let Ok(r) = self
                        .cmd(Command::new("AT+CPMS?", self.t()).prefixes(&["+CPMS:"]))
                        .await
                {
                    self.note_cpms(&r);
                }
                let _ = reply.send(match &self.dead {
                    None => Ok(self.info.clone()),
                    Some(d) => self.not_ready(d),
                });
            }
            Request::Ussd { code, reply } => self.start_ussd(code, reply).await,
            Request::Dial { number, reply } => {
                let r = self.dial(number).await;
                let _ = reply.send(r);
            }
            Request::Answer { reply } => {
                let r = self
                    .cmd(Command::new("ATA", Duration::from_secs(20)).call())
                    .await;
                if r.is_ok() {
                    self.set_phase(Phase::Active).await;
                }
                let _ = reply.send(r.map(|_| ()).map_err(Into::into));
            }
            Request::Hangup { reply } => {
                let mut r = self.cmd(Command::new(self.spec.hangup, self.t())).await;
                if r.is_err() && self.spec.hangup != "ATH" && self.dead.is_none() {
                    r = self.cmd(Command::new("ATH", self.t())).await;
                }
                if r.is_ok() {
                    self.end_call(CallEnd::Local).await;
                }
                let _ = reply.send(r.map(|_| ()).map_err(Into::into));
            }
            Request::Dtmf { digits, reply } => {
                let mut r = Ok(());
                for d in digits.chars() {
                    if !(d.is_ascii_digit() || matches!(d, '*' | '#' | 'A'..='D')) {
                        r = Err(ModemError::Invalid {
                            line: self.cfg.line.clone(),
                            what: format!("{d:?} is not a DTMF digit (0-9 * # A-D)"),
                        });
                        break;
                    }
                    if let Err(e) = self
                        .cmd(Command::new(format!("AT+VTS={d}"), self.t()))
                        .await
                    {
                        r = Err(e.into());
                        break;
                    }
                }
                let _ = reply.send(r);
            }
            Request::Sweep { reply } => {
                let n = self.sweep().await;
                let _ = reply.send(match &self.dead {
                    None => Ok(n),
                    Some(d) => self.not_ready(d),
                });
            }
            Request::Voice { reply } => {
                let _ = reply.send(self.take_voice());
            }
            Request::At { command, reply } => {
                let r = self.cmd(Command::new(command, self.t())).await;
                let _ = reply.send(r.map(|r| r.lines).map_err(Into::into));
            }
            Request::Shutdown { reply } => {
                let _ = reply.send(());
            }
        }
    }

    // ---------------------------------------------------------------- receive

    async fn select_mem(&mut self, mem: &str) -> Result<(), AtError> {
        if self.cur_mem.as_deref() == Some(mem) {
            return Ok(());
        }
        self.cmd(Command::new(format!("AT+CPMS=\"{mem}\""), self.t()).prefixes(&["+CPMS:"]))
            .await?;
        self.cur_mem = Some(mem.to_string());
        Ok(())
    }

    /// Reads one stored message; false if the slot was empty or unreadable.
    async fn read_stored(&mut self, mem: &str, index: u32) -> bool {
        if let Err(e) = self.select_mem(mem).await {
            warn!(mem, error = %e, "cannot select message memory");
            return false;
        }
        let r = self
            .cmd(Command::new(format!("AT+CMGR={index}"), self.t()).prefixes(&["+CMGR:"]))
            .await;
        match r {
            Ok(r) => {
                let pdu = r
                    .lines
                    .iter()
                    .skip_while(|l| !l.starts_with("+CMGR:"))
                    .skip(1)
                    .find(|l| parser::is_hex(l));
                match pdu {
                    Some(pdu) => {
                        let pdu = pdu.clone();
                        self.on_stored_pdu(
                            Location {
                                mem: mem.to_string(),
                                index,
                            },
                            pdu,
                        )
                        .await;
                        true
                    }
                    None => {
                        debug!(mem, index, "empty message slot");
                        false
                    }
                }
            }
            Err(e) if e.cms_code() == Some(321) => {
                debug!(mem, index, "empty message slot");
                false
            }
            Err(e) => {
                warn!(mem, index, error = %e, "cannot read stored message (the sweep will retry)");
                false
            }
        }
    }

    /// Reads every stored message (AT+CMGL=4) in the memories in use;
    /// returns how many new ones were handled.
    async fn sweep(&mut self) -> usize {
        let mut mems: BTreeSet<String> = self.mems_seen.clone();
        mems.insert(self.storage()[2].clone());
        if let Some(m) = self.spec.status_report_memory {
            mems.insert(m.to_string());
        }
        let main = self.storage()[0].clone();
        mems.remove(&main);
        // The main memory last, so it stays selected (and is what the
        // storage figures describe).
        let mems: Vec<String> = mems
            .into_iter()
            .chain(std::iter::once(main.clone()))
            .collect();
        let mut found = 0;
        for mem in mems {
            if self.dead.is_some() {
                break;
            }
            if let Err(e) = self.select_mem(&mem).await {
                debug!(mem = %mem, error = %e, "cannot select memory for the sweep");
                continue;
            }
            let r = self
                .cmd(Command::new("AT+CMGL=4", self.cfg.list_timeout).prefixes(&["+CMGL:"]))
                .await;
            let r = match r {
                Ok(r) => r,
                Err(e) => {
                    if e.cms_code() != Some(321) {
                        warn!(mem = %mem, error = %e, "sweep failed (retried at the next sweep)");
                    }
                    continue;
                }
            };
            if mem == main
                && let Ok(c) = self
                    .cmd(Command::new("AT+CPMS?", self.t()).prefixes(&["+CPMS:"]))
                    .await
            {
                self.note_cpms(&c);
            }
            let mut items = Vec::new();
            let mut it = r.lines.iter().peekable();
            while let Some(l) = it.next() {
                if let Some(rest) = l.strip_prefix("+CMGL:") {
                    let idx = parser::fields(rest)
                        .first()
                        .and_then(|s| s.parse::<u32>().ok());
                    if let (Some(idx), Some(pdu)) = (idx, it.next_if(|p| parser::is_hex(p))) {
                        items.push((idx, pdu.clone()));
                    }
                }
            }
            for (idx, pdu) in items {
                if self
                    .on_stored_pdu(
                        Location {
                            mem: mem.clone(),
                            index: idx,
                        },
                        pdu,
                    )
                    .await
                {
                    found += 1;
                }
            }
        }
        if let (Some(u), Some(t)) = (self.info.storage_used, self.info.storage_total)
            && t > 0
            && u >= t
        {
            self.emit(ModemEvent::Warning(format!(
                "{}: message storage is full ({u}/{t}): new messages cannot arrive until handed-over ones are confirmed",
                self.label
            )))
            .await;
        }
        found
    }

    /// Handles one stored PDU; false if it was already known.
    async fn on_stored_pdu(&mut self, loc: Location, pdu: String) -> bool {
        if self.known.get(&loc) == Some(&pdu) {
            return false;
        }
        self.known.insert(loc.clone(), pdu.clone());
        match crossline_pdu::decode_hex(&pdu, Direction::MobileTerminated, true) {
            Ok(Pdu::Deliver(d)) => self.on_deliver(d, Some(loc), None).await,
            Ok(Pdu::StatusReport(sr)) => {
                self.on_status_report(sr).await;
                if let Err(e) = self.delete(&loc).await {
                    warn!(?loc, error = %e, "cannot delete a stored status report");
                }
            }
            Ok(Pdu::Submit(_)) => debug!(?loc, "stored outgoing message; left alone"),
            Err(e) => {
                warn!(?loc, error = %e, "undecodable stored message");
                let receipt = HandoverReceipt {
                    key: stable_key(&[&pdu]),
                    locations: vec![loc],
                    direct_parts: vec![],
                };
                self.emit(ModemEvent::UndecodableSms {
                    line: self.cfg.line.clone(),
                    pdu,
                    error: e.to_string(),
                    receipt,
                })
                .await;
            }
        }
        true
    }

    async fn on_direct(&mut self, pdu: String) {
        match crossline_pdu::decode_hex(&pdu, Direction::MobileTerminated, true) {
            Ok(Pdu::Deliver(d)) => {
                // Persist first, then acknowledge: a crash in between makes
                // the network redeliver (a duplicate the key catches), never a loss.
                let id = match self.direct.add(pdu) {
                    Ok(id) => Some(id),
                    Err(e) => {
                        warn!(error = %e, "cannot persist a directly delivered part");
                        None
                    }
                };
                self.try_cmd("AT+CNMA").await;
                self.on_deliver(d, None, id).await;
            }
            Ok(Pdu::StatusReport(sr)) => {
                self.try_cmd("AT+CNMA").await;
                self.on_status_report(sr).await;
            }
            Ok(Pdu::Submit(_)) => {
                self.try_cmd("AT+CNMA").await;
            }
            Err(e) => {
                self.try_cmd("AT+CNMA").await;
                self.emit(ModemEvent::UndecodableSms {
                    line: self.cfg.line.clone(),
                    pdu: pdu.clone(),
                    error: e.to_string(),
                    receipt: HandoverReceipt {
                        key: stable_key(&[&pdu]),
                        locations: vec![],
                        direct_parts: vec![],
                    },
                })
                .await;
            }
        }
    }

    fn now_secs(&self) -> u64 {
        self.started.elapsed().as_secs()
    }

    async fn on_deliver(&mut self, d: Deliver, loc: Option<Location>, direct: Option<u64>) {
        if let Some(w) = crossline_pdu::extra_octets_warning(&d.extra_octets) {
            // Decoded by TP-UDL anyway: the message is handed over as usual.
            warn!(sender = %d.sender, ?loc, "{w}");
            self.emit(ModemEvent::Warning(format!(
                "{}: SMS from {}: {w}",
                self.label, d.sender
            )))
            .await;
        }
        let concat = d
            .concat
            .filter(|c| c.total > 1 && c.seq >= 1 && c.seq <= c.total);
        let Some(c) = concat else {
            let msg = crossline_pdu::Message {
                sender: d.sender.clone(),
                timestamp: d.timestamp,
                text: d.text.clone(),
                parts: 1,
                incomplete: false,
            };
            let receipt_locs = loc.into_iter().collect();
            self.hand_over(
                msg,
                None,
                d.class,
                receipt_locs,
                direct.into_iter().collect(),
            )
            .await;
            return;
        };
        let key = (d.sender.value.clone(), c.reference, c.total);
        let timeout = self.cfg.reassembly_timeout.as_secs().max(1);
        let now = self.now_secs();
        let group = self.groups.entry(key.clone()).or_insert_with(|| Group {
            reasm: Reassembler::new(timeout),
            locations: Vec::new(),
            direct: Vec::new(),
            first_seen: Instant::now(),
            class: d.class,
            reference: c.reference,
        });
        group.locations.extend(loc);
        group.direct.extend(direct);
        if let Some(msg) = group.reasm.push(&d, now)
            && let Some(g) = self.groups.remove(&key)
        {
            self.hand_over(
                msg,
                Some((g.reference, c.total)),
                g.class,
                g.locations,
                g.direct,
            )
            .await;
        }
        if self.groups.len() > MAX_GROUPS {
            self.expire_groups().await;
        }
    }

    async fn expire_groups(&mut self) {
        let now = Instant::now();
        let timeout = self.cfg.reassembly_timeout;
        let mut due: Vec<_> = self
            .groups
            .iter()
            .filter(|(_, g)| g.first_seen + timeout <= now)
            .map(|(k, _)| k.clone())
            .collect();
        // Bounded memory: beyond MAX_GROUPS unfinished messages the oldest
        // are delivered incomplete now.
        if self.groups.len() > MAX_GROUPS {
            let mut by_age: Vec<_> = self
                .groups
                .iter()
                .map(|(k, g)| (g.first_seen, k.clone()))
                .collect();
            by_age.sort();
            let excess = self.groups.len() - MAX_GROUPS;
            due.extend(by_age.into_iter().take(excess).map(|(_, k)| k));
        }
        let far_future = self
            .now_secs()
            .saturating_add(timeout.as_secs())
            .saturating_add(1);
        for k in due {
            let Some(mut g) = self.groups.remove(&k) else {
                continue;
            };
            for msg in g.reasm.expire(far_future) {
                info!(sender = %msg.sender, parts = msg.parts, "delivering an incomplete message after the reassembly timeout");
                self.hand_over(
                    msg,
                    Some((g.reference, k.2)),
                    g.class,
                    g.locations.clone(),
                    g.direct.clone(),
                )
                .await;
            }
        }
    }

    async fn hand_over(
        &mut self,
        msg: crossline_pdu::Message,
        concat: Option<(u16, u8)>,
        class: Option<u8>,
        locations: Vec<Location>,
        direct: Vec<u64>,
    ) {
        let sent_at = msg.timestamp.to_rfc3339();
        let cref = concat.map(|(r, t)| format!("{r}/{t}")).unwrap_or_default();
        let key = stable_key(&[&msg.sender.value, &sent_at, &cref, &msg.text]);
        info!(sender = %msg.sender, parts = msg.parts, key = %key, "incoming SMS");
        let receipt = HandoverReceipt {
            key: key.clone(),
            locations,
            direct_parts: direct,
        };
        self.emit(ModemEvent::Sms(IncomingSms {
            key,
            line: self.cfg.line.clone(),
            sender: msg.sender.value,
            text: msg.text,
            sent_at,
            parts: msg.parts,
            incomplete: msg.incomplete,
            class,
            receipt,
        }))
        .await;
    }

    async fn delete(&mut self, loc: &Location) -> Result<(), AtError> {
        self.select_mem(&loc.mem).await?;
        match self
            .cmd(Command::new(format!("AT+CMGD={}", loc.index), self.t()))
            .await
        {
            Ok(_) => {}
            Err(e) if e.cms_code() == Some(321) => {}
            Err(e) => return Err(e),
        }
        self.known.remove(loc);
        Ok(())
    }

    async fn confirm(&mut self, r: &HandoverReceipt) -> Result<(), ModemError> {
        let mut locs = r.locations.clone();
        locs.sort();
        for loc in &locs {
            self.delete(loc).await?;
        }
        self.direct.remove(&r.direct_parts)?;
        debug!(key = %r.key, "confirmed");
        Ok(())
    }

    async fn on_status_report(&mut self, sr: StatusReport) {
        let outcome = sr.outcome();
        let pos = self
            .reports
            .iter()
            .rposition(|r| r.mr == sr.reference && same_number(&r.to, &sr.recipient.value));
        let sent = match pos {
            Some(i) if outcome != DeliveryOutcome::Pending => self.reports.remove(i),
            Some(i) => self.reports.get(i).cloned(),
            None => None,
        };
        let (id, part, tag) = match sent {
            Some(r) => (Some(r.id), Some(r.part), r.tag),
            None => (None, None, None),
        };
        info!(reference = sr.reference, ?outcome, ?id, "delivery report");
        self.emit(ModemEvent::DeliveryReport(DeliveryReport {
            line: self.cfg.line.clone(),
            id,
            part,
            tag,
            reference: sr.reference,
            recipient: sr.recipient.value.clone(),
            outcome,
            status: sr.status,
            discharge_time: sr.discharge_time.to_rfc3339(),
        }))
        .await;
    }

    // ---------------------------------------------------------------- send

    fn enqueue(
        &mut self,
        to: String,
        text: String,
        opts: SendOptions,
        reply: oneshot::Sender<Result<SentSms, SendError>>,
    ) {
        let fail = |reason: String| SendError::Failed {
            line: self.cfg.line.clone(),
            to: to.clone(),
            cause: reason.clone(),
            reason,
            code: None,
            sent_refs: vec![],
        };
        if self.outbox.len() >= MAX_OUTBOX {
            let _ = reply.send(Err(fail(format!(
                "the send queue is full ({MAX_OUTBOX} messages)"
            ))));
            return;
        }
        let addr = match Address::parse(&to) {
            Ok(a) if !matches!(a.kind, crossline_pdu::AddressKind::Alphanumeric) => a,
            Ok(_) => {
                let _ = reply.send(Err(fail("not a phone number".into())));
                return;
            }
            Err(e) => {
                let _ = reply.send(Err(fail(e.to_string())));
                return;
            }
        };
        self.next_concat = (self.next_concat + 1) % 256;
        let so = SubmitOptions {
            status_report: opts.status_report.unwrap_or(self.cfg.status_reports),
            first_reference: 0,
            concat_reference: self.next_concat,
            force_ucs2: opts.force_ucs2,
            validity_minutes: opts.validity_minutes,
            ..SubmitOptions::default()
        };
        let parts = match crossline_pdu::encode_submit(&addr, &text, &so) {
            Ok(p) if !p.is_empty() => p,
            Ok(_) => {
                let _ = reply.send(Err(fail("nothing to send".into())));
                return;
            }
            Err(e) => {
                let _ = reply.send(Err(fail(e.to_string())));
                return;
            }
        };
        let id = self.next_id;
        self.next_id += 1;
        info!(id, to = %to, parts = parts.len(), "SMS queued");
        self.outbox.push_back(Job {
            id,
            recipient_digits: digits(&addr.value),
            to,
            parts,
            refs: Vec::new(),
            tag: opts.tag,
            attempts: 0,
            not_before: Instant::now(),
            reply,
        });
    }

    /// Submits one part of the first job that is due.
    async fn send_next(&mut self) {
        let now = Instant::now();
        let Some(pos) = self.outbox.iter().position(|j| j.not_before <= now) else {
            return;
        };
        let Some(mut job) = self.outbox.remove(pos) else {
            return;
        };
        if job.refs.is_empty() && job.reply.is_closed() {
            // The caller gave up (dropped the send_sms future) before any
            // part left: the message is cancelled, never sent behind its back.
            info!(
                id = job.id,
                "SMS cancelled by the caller before it was sent"
            );
            return;
        }
        let Some(part) = job.parts.get(job.refs.len()).cloned() else {
            let _ = job.reply.send(Ok(SentSms {
                id: job.id,
                refs: job.refs,
            }));
            return;
        };
        let part_no = job.refs.len();
        let c = Command::new(format!("AT+CMGS={}", part.tpdu_len), self.cfg.send_timeout)
            .prefixes(&["+CMGS:"])
            .pdu(part.hex());
        self.last_submit = Some(Instant::now());
        let r = self.cmd(c).await;
        let line = self.cfg.line.clone();
        match r {
            Ok(resp) => {
                let mr = resp
                    .fields("+CMGS:")
                    .and_then(|f| f.first().and_then(|s| s.parse::<u16>().ok()))
                    .map(|n| (n % 256) as u8)
                    .unwrap_or_else(|| {
                        warn!(id = job.id, "OK without +CMGS: <mr>; delivery reports for this part cannot be matched");
                        0
                    });
                info!(
                    id = job.id,
                    part = part_no,
                    reference = mr,
                    "SMS part accepted"
                );
                job.refs.push(mr);
                job.attempts = 0;
                // An older part with this MR to this number can no longer
                // be told apart from this one: reports go to the newest.
                self.reports
                    .retain(|r| !(r.mr == mr && same_number(&r.to, &job.recipient_digits)));
                if self.reports.len() >= MAX_REPORTS {
                    self.reports.pop_front();
                }
                self.reports.push_back(SentRef {
                    mr,
                    to: job.recipient_digits.clone(),
                    id: job.id,
                    part: part_no,
                    tag: job.tag.clone(),
                });
                if job.refs.len() == job.parts.len() {
                    let _ = job.reply.send(Ok(SentSms {
                        id: job.id,
                        refs: job.refs,
                    }));
                } else {
                    // Next part right away (subject to the rate limit).
                    self.outbox.push_front(job);
                }
            }
            Err(AtError::Ambiguous { reason, .. }) => {
                warn!(id = job.id, part = part_no, %reason, "SMS outcome unknown; not resending");
                let _ = job.reply.send(Err(SendError::Unknown {
                    line,
                    to: job.to,
                    reason,
                    sent_refs: job.refs,
                    ambiguous_part: part_no,
                }));
            }
            Err(e) if e.is_transport() => {
                // Not sent (the PDU never left): retry after the reopen.
                job.not_before = Instant::now() + self.cfg.retry_backoff;
                self.outbox.push_front(job);
            }
            Err(e) => {
                let class = e.class();
                let permanent = class == ErrorClass::Permanent;
                job.attempts += 1;
                if permanent || job.attempts >= self.cfg.send_attempts.max(1) {
                    let reason = if permanent {
                        e.to_string()
                    } else {
                        format!("gave up after {} attempts: {e}", job.attempts)
                    };
                    warn!(id = job.id, %reason, "SMS failed");
                    let code = e.cms_code().or(e.cme_code());
                    let _ = job.reply.send(Err(SendError::Failed {
                        line,
                        to: job.to,
                        reason,
                        cause: e.cause(),
                        code,
                        sent_refs: job.refs,
                    }));
                } else {
                    let wait = backoff(self.cfg.retry_backoff, job.attempts);
                    warn!(id = job.id, error = %e, ?wait, "temporary send failure; retrying later");
                    job.not_before = Instant::now() + wait;
                    if class == ErrorClass::NotReady && self.ready {
                        self.needs_init = true;
                    }
                    // To the back: never block the others.
                    self.outbox.push_back(job);
                }
            }
        }
    }

    // ---------------------------------------------------------------- ussd

    async fn start_ussd(&mut self, code: String, reply: Reply<String>) {
        if self.ussd.is_some() {
            let _ = reply.send(Err(ModemError::Ussd {
                line: self.cfg.line.clone(),
                reason: "another USSD request is in progress".into(),
            }));
            return;
        }
        if code.is_empty() || code.len() > 160 || code.contains('"') {
            let _ = reply.send(Err(ModemError::Invalid {
                line: self.cfg.line.clone(),
                what: format!("{code:?} is not a USSD code"),
            }));
            return;
        }
        let payload = crossline_pdu::ussd::encode_request(&code, self.spec.ussd_packed);
        let c = Command::new(format!("AT+CUSD=1,\"{payload}\",15"), self.cfg.ussd_timeout);
        match self.cmd(c).await {
            Ok(_) => self.ussd = Some((reply, Instant::now() + self.cfg.ussd_timeout)),
            Err(e) => {
                let _ = reply.send(Err(e.into()));
            }
        }
    }

    async fn on_cusd(&mut self, status: u8, text: Option<String>, dcs: Option<u8>) {
        let decoded = text.map(|t| crossline_pdu::ussd::decode(dcs.unwrap_or(15), &t).unwrap_or(t));
        let Some((reply, _)) = self.ussd.take() else {
            if let Some(t) = decoded {
                self.emit(ModemEvent::UssdNotice(t)).await;
            }
            return;
        };
        let line = self.cfg.line.clone();
        let r = match (status, decoded) {
            (0..=2, Some(t)) => Ok(t),
            (2, None) => Err(ModemError::Ussd {
                line,
                reason: "the network ended the session without an answer".into(),
            }),
            (4, _) => Err(ModemError::Ussd {
                line,
                reason: "the network does not support this code".into(),
            }),
            (5, _) => Err(ModemError::Ussd {
                line,
                reason: "the network timed out".into(),
            }),
            (s, _) => Err(ModemError::Ussd {
                line,
                reason: format!("+CUSD status {s} without text"),
            }),
        };
        let _ = reply.send(r);
        if status == 1 {
            // The network waits for a menu choice: close the session.
            self.try_cmd("AT+CUSD=2").await;
        }
    }

    // ---------------------------------------------------------------- calls

    async fn dial(&mut self, number: String) -> Result<(), ModemError> {
        if number.is_empty()
            || number.len() > 40
            || !number
                .chars()
                .all(|c| c.is_ascii_digit() || matches!(c, '+' | '*' | '#'))
        {
            return Err(ModemError::Invalid {
                line: self.cfg.line.clone(),
                what: format!("{number:?} is not a dialable number"),
            });
        }
        if self.phase != Phase::Idle {
            return Err(ModemError::Invalid {
                line: self.cfg.line.clone(),
                what: "a call is already in progress".into(),
            });
        }
        match self
            .cmd(Command::new(format!("ATD{number};"), Duration::from_secs(30)).call())
            .await
        {
            Ok(_) => {
                self.phase = Phase::Dialing;
                self.emit(ModemEvent::Call(CallEvent::Dialing { number }))
                    .await;
                self.schedule_poll();
                Ok(())
            }
            Err(AtError::CallResult {
                result,
                port,
                command,
            }) => {
                let reason = match result.as_str() {
                    "Busy" => CallEnd::Busy,
                    "NoAnswer" => CallEnd::NoAnswer,
                    other => CallEnd::Failed(other.to_string()),
                };
                self.emit(ModemEvent::Call(CallEvent::Ended { reason }))
                    .await;
                Err(AtError::CallResult {
                    port,
                    command,
                    result,
                }
                .into())
            }
            Err(e) => Err(e.into()),
        }
    }

    fn schedule_poll(&mut self) {
        self.next_call_poll =
            (!self.spec.clcc_urc && self.phase != Phase::Idle).then(|| Instant::now() + CALL_POLL);
    }

    async fn on_ring(&mut self) {
        self.last_ring = Some(Instant::now());
        match self.phase {
            Phase::Idle => {
                self.phase = Phase::Ringing;
                self.announced = false;
                self.caller = Caller::default();
                // +CLIP usually follows RING: wait a moment for the number.
                self.announce_at = Some(Instant::now() + Duration::from_millis(700));
                self.schedule_poll();
            }
            Phase::Ringing if self.announced => {
                self.emit(ModemEvent::Call(self.caller.ringing())).await;
            }
            _ => {}
        }
    }

    async fn on_clip(&mut self, clip: Caller) {
        if self.phase == Phase::Idle {
            self.phase = Phase::Ringing;
            self.announced = false;
            self.last_ring = Some(Instant::now());
            self.schedule_poll();
        }
        if self.phase != Phase::Ringing {
            return;
        }
        self.caller.update(clip);
        if !self.announced {
            self.announced = true;
            self.announce_at = None;
            self.emit(ModemEvent::Call(self.caller.incoming())).await;
        }
    }

    async fn set_phase(&mut self, p: Phase) {
        if self.phase == p {
            return;
        }
        self.phase = p;
        let ev = match p {
            Phase::Active => CallEvent::Connected,
            Phase::Alerting => CallEvent::Alerting,
            _ => return,
        };
        self.emit(ModemEvent::Call(ev)).await;
        if p == Phase::Active {
            self.start_voice().await;
        }
    }

    async fn end_call(&mut self, reason: CallEnd) {
        if self.phase == Phase::Idle {
            return;
        }
        if self.phase == Phase::Ringing && !self.announced {
            self.emit(ModemEvent::Call(self.caller.incoming())).await;
        }
        self.phase = Phase::Idle;
        self.announce_at = None;
        self.last_ring = None;
        self.next_call_poll = None;
        self.call_vanished = false;
        self.caller = Caller::default();
        self.stop_voice().await;
        info!(?reason, "call ended");
        self.emit(ModemEvent::Call(CallEvent::Ended { reason }))
            .await;
    }

    async fn poll_calls(&mut self) {
        self.next_call_poll = None;
        let r = self
            .cmd(Command::new("AT+CLCC", self.t()).prefixes(&["+CLCC:"]))
            .await;
        if let Ok(r) = r {
            let entries: Vec<ClccEntry> = r
                .with_prefix("+CLCC:")
                .filter_map(|l| parser::parse_clcc(&parser::fields(l)))
                .collect();
            self.on_clcc(&entries).await;
            let gone =
                entries.is_empty() && self.phase != Phase::Idle && self.phase != Phase::Ringing;
            if gone && self.call_vanished {
                // Gone for two polls and no result code said why.
                self.end_call(CallEnd::Remote).await;
            }
            self.call_vanished = gone;
        }
        self.schedule_poll();
    }

    async fn on_clcc(&mut self, entries: &[ClccEntry]) {
        for e in entries {
            match e.state {
                0 => self.set_phase(Phase::Active).await,
                3 if self.phase == Phase::Dialing => self.set_phase(Phase::Alerting).await,
                4 if self.phase == Phase::Idle => {
                    self.on_clip(Caller {
                        number: e.number.clone(),
                        ..Caller::default()
                    })
                    .await
                }
                6 => {
                    self.end_call(if self.phase == Phase::Ringing {
                        CallEnd::Missed
                    } else {
                        CallEnd::Remote
                    })
                    .await
                }
                _ => {}
            }
        }
    }
}

// ---------------------------------------------------------------- voice

impl Driver {
    /// Switches the connected call's audio to the host, per profile (see
    /// docs/MODEMS.md "Voice audio"): opens the voice port first (no frame
    /// lost), drops stale bytes, waits the profile's settle time, gives the
    /// command (SIMCom: once more if it fails right after connect) and
    /// starts the pump, which warns when no audio comes.
    async fn start_voice(&mut self) {
        if self.voice.is_some() {
            return;
        }
        let spec = self.spec.voice;
        let profile = self.info.profile;
        let serial = self.cfg.voice_port.clone();
        let alsa = if serial.is_none() {
            self.cfg.voice_alsa.clone()
        } else {
            None
        };
        if serial.is_none() && alsa.is_none() {
            return; // signalling only
        }
        let command = match (&self.cfg.voice_enable, &alsa) {
            (Some(c), _) => Some(c.clone()),
            (None, Some(_)) => spec.and_then(|s| s.alsa).map(str::to_string),
            (None, None) => spec.map(|s| s.serial.to_string()),
        };
        let mut audio = CallAudio {
            pump: None,
            stream: None,
            off: None,
            alsa: alsa.clone(),
            problem: None,
        };
        let Some(command) = command else {
            let what = if alsa.is_some() {
                "USB audio class (voice_alsa)"
            } else {
                "PCM on a voice serial port (voice_port)"
            };
            let msg = format!(
                "{}: profile {profile:?} has no command for {what} (SIM800: analog audio only; another modem: set `voice_enable`); this call has no audio",
                self.label
            );
            self.voice_problem(audio, msg).await;
            return;
        };
        if let Some(q) = spec.and_then(|s| s.check)
            && self.cfg.voice_enable.is_none()
        {
            match self.cmd(Command::new(q, self.t())).await {
                Ok(r) => {
                    // ^CVOICE:<mode>,<rate>,<bits>,<period ms>
                    let fields: Vec<String> = r
                        .lines
                        .iter()
                        .find_map(|l| l.split_once(':').map(|(_, v)| parser::fields(v)))
                        .unwrap_or_default();
                    let rate = fields.get(1).map(String::as_str);
                    let bits = fields.get(2).map(String::as_str);
                    if rate.is_some_and(|r| r != "8000") || bits.is_some_and(|b| b != "16") {
                        let msg = format!(
                            "{}: {q} reports {} Hz, {} bits; the driver expects 8000 Hz, 16 bits: audio will sound wrong",
                            self.label,
                            rate.unwrap_or("?"),
                            bits.unwrap_or("?")
                        );
                        warn!("{msg}");
                        self.emit(ModemEvent::Warning(msg)).await;
                    }
                }
                Err(e) => {
                    let msg = format!(
                        "{}: {q} failed ({e}): this stick's firmware has voice disabled (profile {profile:?}); flash a voice-enabled firmware. This call has no audio",
                        self.label
                    );
                    self.voice_problem(audio, msg).await;
                    return;
                }
            }
        }
        let mut io = None;
        if let (Some(port), Some(opener)) = (&serial, self.voice_opener.clone()) {
            match tokio::time::timeout(Duration::from_secs(2), opener()).await {
                Ok(Ok(mut p)) => {
                    let stale = voice::drain(&mut p).await;
                    if stale > 0 {
                        debug!(bytes = stale, "stale audio dropped from the voice port");
                    }
                    io = Some(p);
                }
                Ok(Err(e)) => {
                    let msg = format!(
                        "{}: cannot open the voice port {port}: {e} (is `voice_port` right? is it the modem's audio interface?); this call has no audio",
                        self.label
                    );
                    self.voice_problem(audio, msg).await;
                    return;
                }
                Err(_) => {
                    let msg = format!(
                        "{}: opening the voice port {port} took over 2 s; this call has no audio",
                        self.label
                    );
                    self.voice_problem(audio, msg).await;
                    return;
                }
            }
        }
        if let Some(settle) = spec.map(|s| s.settle).filter(|d| !d.is_zero()) {
            self.pause(settle).await;
        }
        let mut r = self.cmd(Command::new(command.clone(), self.t())).await;
        if r.is_err() && spec.is_some_and(|s| s.retry) && self.dead.is_none() {
            debug!(command = %command, "audio command refused right after connect; once more");
            self.pause(Duration::from_millis(200)).await;
            r = self.cmd(Command::new(command.clone(), self.t())).await;
        }
        let started = Instant::now();
        if let Err(e) = r {
            let msg = format!(
                "{}: {command} failed ({e}) (profile {profile:?}): the modem did not switch call audio to the host; check the profile, or set `voice_enable` for this firmware. This call has no audio",
                self.label
            );
            self.voice_problem(audio, msg).await;
            return;
        }
        info!(command = %command, "call audio switched to the host");
        audio.off = self.cfg.voice_disable.clone().or_else(|| {
            spec.and_then(|s| s.off)
                .filter(|_| self.cfg.voice_enable.is_none())
                .map(str::to_string)
        });
        if let (Some(io), Some(port), Some(opener)) = (io, serial, self.voice_opener.clone()) {
            let (pump, stream) = voice::spawn(voice::PumpArgs {
                line: self.cfg.line.clone(),
                profile: format!("{profile:?}"),
                port,
                command,
                io,
                opener,
                start_timeout: self.cfg.voice_start_timeout,
                events: self.events.clone(),
                started,
            });
            audio.pump = Some(pump);
            audio.stream = Some(stream);
        }
        self.voice = Some(audio);
    }

    async fn voice_problem(&mut self, mut audio: CallAudio, msg: String) {
        warn!("{msg}");
        self.emit(ModemEvent::Warning(msg.clone())).await;
        audio.problem = Some(msg);
        self.voice = Some(audio);
    }

    /// At hang-up: the profile's stop command, the pump's final counts.
    async fn stop_voice(&mut self) {
        let Some(audio) = self.voice.take() else {
            return;
        };
        if let Some(off) = &audio.off
            && self.engine.is_some()
            && self.dead.is_none()
            && !self.try_cmd(off).await
        {
            warn!(command = %off, "stopping call audio failed");
        }
        if let Some(pump) = audio.pump {
            let stats = pump.stop().await;
            if stats.one_way() == Some(voice::OneWay::NothingToModem) {
                let msg = format!(
                    "{}: one-way audio: the modem took none of the {} frames sent to the caller on {}",
                    self.label, stats.dropped_to_modem, stats.port
                );
                warn!("{msg}");
                self.emit(ModemEvent::Warning(msg)).await;
            }
            info!(
                from_modem = stats.frames_from_modem,
                to_modem = stats.frames_to_modem,
                "call audio ended"
            );
            self.emit(ModemEvent::VoiceStats(stats)).await;
        }
    }

    fn take_voice(&mut self) -> Result<VoiceStream, ModemError> {
        let line = self.cfg.line.clone();
        let Some(audio) = self.voice.as_mut() else {
            let why = if self.phase != Phase::Active {
                "no call is connected".to_string()
            } else if self.cfg.voice_port.is_none() && self.cfg.voice_alsa.is_none() {
                "this line has no `voice_port` (signalling only)".to_string()
            } else {
                "the call's audio is not set up".to_string()
            };
            return Err(ModemError::NotReady { line, reason: why });
        };
        if let Some(s) = audio.stream.take() {
            return Ok(s);
        }
        let what = if let Some(p) = &audio.problem {
            p.clone()
        } else if let Some(dev) = &audio.alsa {
            format!("the call's audio is on the ALSA device {dev} (voice_alsa): open it there")
        } else {
            "the call's voice stream was already taken".to_string()
        };
        Err(ModemError::Invalid { line, what })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cnmi_ranges() {
        assert_eq!(
            parse_ranges("(0-2),(0-3),(0,2),(0-2),(0,1)"),
            vec![
                vec![0, 1, 2],
                vec![0, 1, 2, 3],
                vec![0, 2],
                vec![0, 1, 2],
                vec![0, 1]
            ]
        );
        assert_eq!(parse_ranges("(0,1,2),(0,1),(0),(0,2),(1)")[3], vec![0, 2]);
    }

    #[test]
    fn numbers_match_by_suffix() {
        assert!(same_number("+79161234567", "89161234567"));
        assert!(!same_number("+79161234567", "+79161234568"));
    }

    #[test]
    fn backoff_doubles_and_caps() {
        let b = Duration::from_secs(5);
        assert_eq!(backoff(b, 1), b);
        assert_eq!(backoff(b, 3), Duration::from_secs(20));
        assert_eq!(backoff(b, 40), Duration::from_secs(300));
    }
}
