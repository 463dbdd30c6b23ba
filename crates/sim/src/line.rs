//! A simulated analog line: pins shared with the FXO driver under test, and
//! the exchange plus a far-end caller on the other side of them.
//!
//! [`SimPin`] is one wire: shared state implementing embedded-hal 1.0
//! `InputPin`, `OutputPin` and `StatefulOutputPin`, with an injectable fault.
//! [`SimLine`] plays the exchange: it reads the hook pin, drives the
//! ring-detect pin with a country's cadence (pulsing at the ringing
//! frequency, like the opto-coupler), puts caller ID audio into the line in
//! the pause after the first ring, drives the loop-sense pin (loop current,
//! polarity reversal, open loop), plays a far-end script after answer
//! (silence, DTMF, prompts) and records what it hears, and ends the call the
//! way the configured exchange does. Time is whatever the test passes to
//! [`SimLine::step`] (or tokio's, through [`SimLine::spawn`]).
//!
//! ```
//! # fn demo() -> Result<(), crossline_line::LineError> {
//! use std::time::{Duration, Instant};
//! use crossline_line::{Fxo, LineConfig, LineEvent};
//! use crossline_sim::line::{IncomingCall, SimLine, SimLineConfig};
//! let config = LineConfig::default();
//! let t0 = Instant::now();
//! let (mut sim, pins) = SimLine::new(SimLineConfig::matching(&config), t0);
//! let mut fxo = Fxo::new(config, pins.hook, pins.ring, pins.sense)?;
//! sim.place_call(t0, IncomingCall::from_number("5551234"));
//! let mut now = t0;
//! let mut events = Vec::new();
//! while now < t0 + Duration::from_secs(2) {
//!     now += Duration::from_millis(10);
//!     sim.step(now);
//!     events.extend(fxo.poll(now)?);
//! }
//! assert!(events.contains(&LineEvent::RingStarted));
//! # Ok(()) }
//! ```

use std::collections::VecDeque;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use crossline_audio::cid::{self, CallerId, Standard};
use crossline_audio::{dtmf, tones};
use crossline_line::link::{Decoder, FRAME_SAMPLES, Message};
use crossline_line::{Cadence, Country, LineConfig, PinLevels, Supervision};
use embedded_hal::digital::{ErrorKind, ErrorType, InputPin, OutputPin, StatefulOutputPin};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

use crate::Error;

/// 8 kHz mono: samples per millisecond.
const SAMPLES_PER_MS: u64 = 8;
/// What the far end hears is kept up to this much audio (5 minutes).
const MAX_HEARD_SAMPLES: usize = 5 * 60 * 8000;
/// Caller ID starts this long after the first ring ends (ETSI EN 300 659-1
/// and Telcordia GR-30 both ask for at least 500 ms).
const CID_DELAY: Duration = Duration::from_millis(600);

#[derive(Debug, Default)]
struct PinShared {
    high: AtomicBool,
    fail: AtomicBool,
}

/// One simulated wire, shared between the driver (which owns a clone as its
/// pin) and the simulator or test (which drives or reads it).
#[derive(Debug, Clone, Default)]
pub struct SimPin {
    shared: Arc<PinShared>,
}

/// The error a [`SimPin`] returns while a fault is injected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("simulated pin fault")]
pub struct SimPinError;

impl embedded_hal::digital::Error for SimPinError {
    fn kind(&self) -> ErrorKind {
        ErrorKind::Other
    }
}

impl SimPin {
    /// A pin at the given level.
    pub fn new(high: bool) -> Self {
        let pin = Self::default();
        pin.set(high);
        pin
    }

    /// Drives the level (the simulator's side).
    pub fn set(&self, high: bool) {
        self.shared.high.store(high, Ordering::SeqCst);
    }

    /// The level (the simulator's side).
    pub fn level(&self) -> bool {
        self.shared.high.load(Ordering::SeqCst)
    }

    /// Makes every read and write through the embedded-hal traits fail
    /// (`true`) or work again (`false`).
    pub fn set_fault(&self, fail: bool) {
        self.shared.fail.store(fail, Ordering::SeqCst);
    }

    fn check(&self) -> Result<(), SimPinError> {
        if self.shared.fail.load(Ordering::SeqCst) {
            Err(SimPinError)
        } else {
            Ok(())
        }
    }
}

impl ErrorType for SimPin {
    type Error = SimPinError;
}

impl InputPin for SimPin {
    fn is_high(&mut self) -> Result<bool, SimPinError> {
        self.check()?;
        Ok(self.level())
    }

    fn is_low(&mut self) -> Result<bool, SimPinError> {
        self.check()?;
        Ok(!self.level())
    }
}

impl OutputPin for SimPin {
    fn set_low(&mut self) -> Result<(), SimPinError> {
        self.check()?;
        self.set(false);
        Ok(())
    }

    fn set_high(&mut self) -> Result<(), SimPinError> {
        self.check()?;
        self.set(true);
        Ok(())
    }
}

impl StatefulOutputPin for SimPin {
    fn is_set_high(&mut self) -> Result<bool, SimPinError> {
        self.check()?;
        Ok(self.level())
    }

    fn is_set_low(&mut self) -> Result<bool, SimPinError> {
        self.check()?;
        Ok(!self.level())
    }
}

/// The driver's side of the simulated line: hand these to `Fxo::new`.
#[derive(Debug, Clone)]
pub struct SimLinePins {
    pub hook: SimPin,
    pub ring: SimPin,
    pub sense: SimPin,
}

/// How the simulated exchange behaves.
#[derive(Debug, Clone)]
pub struct SimLineConfig {
    /// The ring cadence it sends.
    pub cadence: Cadence,
    /// Its call-progress tones (the disconnect tone it plays).
    pub country: Country,
    /// Ringing frequency, Hz (the opto-coupler conducts half of each period).
    pub ring_hz: u32,
    /// How it signals far-end answer and disconnect.
    pub supervision: Supervision,
    /// How long the loop is opened at disconnect with `LoopCurrent`.
    pub open_loop: Duration,
    /// The pins' electrical levels (as the driver expects them).
    pub levels: PinLevels,
    /// The caller ID standard it sends in.
    pub cid_standard: Standard,
}

impl SimLineConfig {
    /// An exchange that behaves as the driver's config expects.
    pub fn matching(line: &LineConfig) -> Self {
        Self {
            cadence: line.effective_cadence(),
            country: line.country,
            ring_hz: 25,
            supervision: line.supervision,
            open_loop: Duration::from_millis(400),
            levels: line.levels,
            cid_standard: line.caller_id_standard(),
        }
    }
}

/// One step of what the far end does after the call is connected.
#[derive(Debug, Clone, PartialEq)]
pub enum FarEndStep {
    /// Says nothing for this long.
    Silence(Duration),
    /// Presses keys: DTMF at -10 dBm0 per tone, `on_ms` each, `off_ms` apart.
    Dtmf {
        digits: String,
        on_ms: u32,
        off_ms: u32,
    },
    /// Plays these samples (8 kHz mono).
    Play(Vec<i16>),
    /// Hangs up.
    HangUp,
}

/// An incoming call the simulated exchange rings the line with.
#[derive(Debug, Clone, PartialEq)]
pub struct IncomingCall {
    /// Caller ID sent in the pause after the first ring (none: no CID).
    pub caller_id: Option<CallerId>,
    /// The caller gives up ringing this long after the ringing started.
    pub give_up_after: Option<Duration>,
    /// What the caller does once connected.
    pub script: Vec<FarEndStep>,
}

impl IncomingCall {
    /// A call with a number's caller ID that rings until answered and then
    /// stays on the line.
    pub fn from_number(number: &str) -> Self {
        Self {
            caller_id: Some(CallerId::number(number)),
            give_up_after: None,
            script: Vec::new(),
        }
    }
}

/// What happened on the simulated line, with the time since the line was made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SimLineEvent {
    RingingStarted,
    CallerIdSent,
    /// The caller gave up before the line answered.
    CallerGaveUp,
    /// The line went off-hook while ringing.
    Answered,
    /// The line went off-hook with no call (dial tone).
    Seized,
    FarEndAnswered,
    FarEndHungUp,
    /// The line went on-hook.
    OnHook,
}

#[derive(Debug, Clone)]
enum Phase {
    Idle,
    Ringing {
        call: IncomingCall,
        since: Instant,
        cid_sent: bool,
    },
    /// Off-hook with no call: dial tone (also after a caller gave up).
    DialTone,
    Connected {
        script: VecDeque<FarEndStep>,
        /// When the current step ends.
        step_until: Instant,
    },
    /// The far end hung up; the line is still off-hook.
    FarGone,
}

/// The simulated exchange and far end of one analog line.
#[derive(Debug)]
pub struct SimLine {
    config: SimLineConfig,
    pins: SimLinePins,
    epoch: Instant,
    phase: Phase,
    off_hook: bool,
    /// Line polarity normal (the sense opto-coupler conducts when off-hook).
    polarity_normal: bool,
    /// Loop opened by the exchange until then.
    loop_open_until: Option<Instant>,
    /// The line is dead: never any loop current.
    cut: bool,
    /// The hook relay's contacts are broken: the exchange never sees off-hook.
    relay_broken: bool,
    ring_noise: Vec<(Instant, Instant)>,
    sense_glitches: Vec<(Instant, Instant)>,
    /// Far-end audio waiting to go into the line.
    to_line: VecDeque<i16>,
    /// Samples put into the line so far (read_audio's clock).
    audio_cursor: u64,
    heard: Vec<i16>,
    /// Listens for the number the driver's side dials after seizing.
    dial_detector: dtmf::Detector,
    dialled: String,
    log: Vec<(Duration, SimLineEvent)>,
    /// Drivers connected over the line link now (`serve`).
    links: u32,
    /// Drivers that ever connected over the line link.
    connections: u32,
    /// When the last frames went out on the line link, with their first
    /// sample (see [`SimLine::link_sent_log`]).
    link_sent: VecDeque<(Instant, i16)>,
}

impl SimLine {
    /// A line in the idle state at `now`, and the pins for the driver.
    pub fn new(config: SimLineConfig, now: Instant) -> (Self, SimLinePins) {
        let levels = config.levels;
        let pins = SimLinePins {
            hook: SimPin::new(!levels.hook_off_high),
            ring: SimPin::new(levels.ring_active_low),
            sense: SimPin::new(levels.loop_active_low),
        };
        let line = Self {
            config,
            pins: pins.clone(),
            epoch: now,
            phase: Phase::Idle,
            off_hook: false,
            polarity_normal: true,
            loop_open_until: None,
            cut: false,
            relay_broken: false,
            ring_noise: Vec::new(),
            sense_glitches: Vec::new(),
            to_line: VecDeque::new(),
            audio_cursor: 0,
            heard: Vec::new(),
            dial_detector: dtmf::Detector::new(),
            dialled: String::new(),
            log: Vec::new(),
            links: 0,
            connections: 0,
            link_sent: VecDeque::new(),
        };
        (line, pins)
    }

    fn record(&mut self, now: Instant, event: SimLineEvent) {
        tracing::debug!(at_ms = self.ms(now), ?event, "simulated line");
        self.log
            .push((now.saturating_duration_since(self.epoch), event));
    }

    fn ms(&self, now: Instant) -> u64 {
        now.saturating_duration_since(self.epoch).as_millis() as u64
    }

    /// What happened so far, with times since the line was made.
    pub fn log(&self) -> &[(Duration, SimLineEvent)] {
        &self.log
    }

    /// Whether the event has happened.
    pub fn saw(&self, event: &SimLineEvent) -> bool {
        self.log.iter().any(|(_, e)| e == event)
    }

    /// Whether the driver holds the line off-hook (as of the last step).
    pub fn is_off_hook(&self) -> bool {
        self.off_hook
    }

    /// Whether the ring-detect pin is active right now.
    pub fn ring_active(&self) -> bool {
        self.pins.ring.level() != self.config.levels.ring_active_low
    }

    /// Whether the line is being rung.
    pub fn is_ringing(&self) -> bool {
        matches!(self.phase, Phase::Ringing { .. })
    }

    /// Rings the line with a call (ignored unless idle and on-hook).
    pub fn place_call(&mut self, now: Instant, call: IncomingCall) {
        if matches!(self.phase, Phase::Idle) && !self.off_hook {
            self.phase = Phase::Ringing {
                call,
                since: now,
                cid_sent: false,
            };
            self.record(now, SimLineEvent::RingingStarted);
        }
    }

    /// The caller gives up ringing now (hang-up before answer).
    pub fn give_up(&mut self, now: Instant) {
        if matches!(self.phase, Phase::Ringing { .. }) {
            self.phase = Phase::Idle;
            self.record(now, SimLineEvent::CallerGaveUp);
        }
    }

    /// The called party answers the driver's outgoing call (the line must be
    /// off-hook with dial tone): polarity reverses where the exchange does that.
    pub fn far_end_answer(&mut self, now: Instant, script: Vec<FarEndStep>) {
        if matches!(self.phase, Phase::DialTone) {
            if self.config.supervision == Supervision::PolarityReversal {
                self.polarity_normal = false;
            }
            self.connect(now, script);
            self.record(now, SimLineEvent::FarEndAnswered);
        }
    }

    /// The far end hangs up now, signalled the way the exchange is configured.
    pub fn far_end_hang_up(&mut self, now: Instant) {
        if !matches!(self.phase, Phase::Connected { .. }) {
            return;
        }
        self.phase = Phase::FarGone;
        self.to_line.clear();
        match self.config.supervision {
            Supervision::PolarityReversal => self.polarity_normal = !self.polarity_normal,
            Supervision::LoopCurrent => self.loop_open_until = Some(now + self.config.open_loop),
            Supervision::ToneOnly => {}
        }
        // Every exchange plays busy tone into the line afterwards (what the
        // tone fallback listens for); 10 s of it, then silence.
        let busy = tones::generate(self.config.country, tones::Kind::Busy, 10_000, -10.0);
        self.to_line.extend(busy);
        self.record(now, SimLineEvent::FarEndHungUp);
    }

    /// Makes the line dead (no loop current ever), or alive again.
    pub fn set_cut(&mut self, cut: bool) {
        self.cut = cut;
    }

    /// Breaks the hook relay's contacts (`true`): the driver's off-hook never
    /// reaches the exchange, so no loop current and the ringing goes on.
    pub fn set_relay_broken(&mut self, broken: bool) {
        self.relay_broken = broken;
    }

    /// Ring-detect activity (pulsing like ringing) from `from` for `len`:
    /// line noise, induced spikes.
    pub fn ring_noise(&mut self, from: Instant, len: Duration) {
        self.ring_noise.push((from, from + len));
    }

    /// The loop-sense pin flips to the opposite level from `from` for `len`.
    pub fn sense_glitch(&mut self, from: Instant, len: Duration) {
        self.sense_glitches.push((from, from + len));
    }

    fn connect(&mut self, now: Instant, script: Vec<FarEndStep>) {
        self.to_line.clear();
        self.phase = Phase::Connected {
            script: script.into(),
            step_until: now,
        };
    }

    /// Advances the simulation to `now`: reads the hook, runs the call,
    /// drives the ring and sense pins.
    pub fn step(&mut self, now: Instant) {
        let levels = self.config.levels;
        let off_hook = self.pins.hook.level() == levels.hook_off_high && !self.relay_broken;
        if off_hook != self.off_hook {
            self.off_hook = off_hook;
            self.hook_changed(now, off_hook);
        }
        self.run_phase(now);

        let ring = match &self.phase {
            Phase::Ringing { since, .. } => self.ringing_at(now.saturating_duration_since(*since)),
            _ => false,
        } || self.ring_noise.iter().any(|&(a, b)| {
            a <= now && now < b && self.pulse_high(now.saturating_duration_since(a))
        });
        self.pins.ring.set(ring != levels.ring_active_low);

        let loop_open = self.loop_open_until.is_some_and(|t| now < t);
        let mut sense = self.off_hook && !self.cut && !loop_open && self.polarity_normal;
        if self
            .sense_glitches
            .iter()
            .any(|&(a, b)| a <= now && now < b)
        {
            sense = !sense;
        }
        self.pins.sense.set(sense != levels.loop_active_low);
    }

    fn hook_changed(&mut self, now: Instant, off_hook: bool) {
        if off_hook {
            self.polarity_normal = true;
            self.loop_open_until = None;
            match std::mem::replace(&mut self.phase, Phase::Idle) {
                Phase::Ringing { call, .. } => {
                    self.record(now, SimLineEvent::Answered);
                    self.connect(now, call.script);
                }
                _ => {
                    self.phase = Phase::DialTone;
                    self.dial_detector = dtmf::Detector::new();
                    self.dialled.clear();
                    self.record(now, SimLineEvent::Seized);
                }
            }
        } else {
            self.phase = Phase::Idle;
            self.to_line.clear();
            self.polarity_normal = true;
            self.loop_open_until = None;
            self.record(now, SimLineEvent::OnHook);
        }
    }

    /// The first ring cycle: every burst and the pauses between them.
    fn first_ring(&self) -> Duration {
        let segs = &self.config.cadence.segments;
        let on: u64 = segs.iter().map(|s| u64::from(s.on_ms)).sum();
        let off: u64 = segs.iter().rev().skip(1).map(|s| u64::from(s.off_ms)).sum();
        Duration::from_millis(on + off)
    }

    fn run_phase(&mut self, now: Instant) {
        let first_ring = self.first_ring();
        let mut give_up = false;
        let mut hang_up = false;
        let mut caller_id = None;
        match &mut self.phase {
            Phase::Ringing {
                call,
                since,
                cid_sent,
            } => {
                let elapsed = now.saturating_duration_since(*since);
                if call.give_up_after.is_some_and(|g| elapsed >= g) {
                    give_up = true;
                } else if !*cid_sent && elapsed >= first_ring + CID_DELAY {
                    *cid_sent = true;
                    caller_id = call.caller_id.clone();
                }
            }
            Phase::Connected { script, step_until } => {
                if now >= *step_until {
                    match script.pop_front() {
                        None => {}
                        Some(FarEndStep::Silence(d)) => *step_until = now + d,
                        Some(FarEndStep::Dtmf {
                            digits,
                            on_ms,
                            off_ms,
                        }) => {
                            let audio = dtmf::generate(&digits, on_ms, off_ms, -10.0);
                            *step_until = now + samples_duration(audio.len());
                            self.to_line.extend(audio);
                        }
                        Some(FarEndStep::Play(audio)) => {
                            *step_until = now + samples_duration(audio.len());
                            self.to_line.extend(audio);
                        }
                        Some(FarEndStep::HangUp) => hang_up = true,
                    }
                }
            }
            Phase::Idle | Phase::DialTone | Phase::FarGone => {}
        }
        if give_up {
            self.give_up(now);
        }
        if let Some(id) = caller_id {
            let audio = cid::encode(&id, self.config.cid_standard);
            self.to_line.extend(audio);
            self.record(now, SimLineEvent::CallerIdSent);
        }
        if hang_up {
            self.far_end_hang_up(now);
        }
    }

    /// Whether the ring-detect opto conducts `t` into the ringing.
    fn ringing_at(&self, t: Duration) -> bool {
        let segs = &self.config.cadence.segments;
        let cycle: u64 = segs
            .iter()
            .map(|s| u64::from(s.on_ms) + u64::from(s.off_ms))
            .sum();
        if cycle == 0 {
            return false;
        }
        let mut pos = (t.as_millis() as u64) % cycle;
        for s in segs {
            let (on, off) = (u64::from(s.on_ms), u64::from(s.off_ms));
            if pos < on {
                return self.pulse_high(Duration::from_millis(pos));
            }
            pos -= on;
            if pos < off {
                return false;
            }
            pos -= off;
        }
        false
    }

    /// The opto-coupler conducts on one half of each ringing period.
    fn pulse_high(&self, into_burst: Duration) -> bool {
        let period_us = 1_000_000 / u64::from(self.config.ring_hz.max(1));
        (into_burst.as_micros() as u64) % period_us < period_us / 2
    }

    /// The far end's audio put into the line up to `now` (8 kHz mono):
    /// caller ID in the ring pause, the script's audio once connected, busy
    /// tone after the far end hangs up, silence otherwise.
    pub fn read_audio(&mut self, now: Instant) -> Vec<i16> {
        let due = now.saturating_duration_since(self.epoch).as_millis() as u64 * SAMPLES_PER_MS;
        let n = due.saturating_sub(self.audio_cursor);
        self.audio_cursor = due;
        (0..n)
            .map(|_| self.to_line.pop_front().unwrap_or(0))
            .collect()
    }

    /// Audio the driver's side sends into the line: DTMF dialled on dial
    /// tone goes to [`SimLine::dialled`]; the far end hears the rest while
    /// connected.
    pub fn write_audio(&mut self, samples: &[i16]) {
        if matches!(self.phase, Phase::DialTone) {
            let keys = self.dial_detector.push(samples);
            self.dialled.extend(keys.into_iter().map(|d| d.key));
        }
        if matches!(self.phase, Phase::Connected { .. }) {
            let room = MAX_HEARD_SAMPLES.saturating_sub(self.heard.len());
            self.heard.extend(samples.iter().take(room).copied());
        }
    }

    /// The far end plays these samples now (when connected; else ignored).
    pub fn far_end_play(&mut self, samples: Vec<i16>) {
        if matches!(self.phase, Phase::Connected { .. }) {
            self.to_line.extend(samples);
        }
    }

    /// Far-end audio still waiting to go into the line, in samples.
    pub fn far_end_queued(&self) -> usize {
        self.to_line.len()
    }

    /// Whether a driver is connected over the line link (`serve`): a test
    /// rings the line once the driver listens.
    pub fn linked(&self) -> bool {
        self.links > 0
    }

    /// How many drivers have connected over the line link so far (a
    /// driver restarted reconnects).
    pub fn connections(&self) -> u32 {
        self.connections
    }

    /// The DTMF digits dialled since the line was last seized.
    pub fn dialled(&self) -> &str {
        &self.dialled
    }

    /// When each of the last 256 audio frames was written to the line link
    /// (the driver's socket; the time just before the write), with the
    /// frame's first sample: a
    /// latency measurement plays frames it can tell apart by that sample.
    pub fn link_sent_log(&self) -> Vec<(Instant, i16)> {
        self.link_sent.iter().copied().collect()
    }

    /// Everything the far end heard while connected.
    pub fn heard(&self) -> &[i16] {
        &self.heard
    }

    /// Runs the line on tokio's clock, stepping every `period` (2 ms keeps
    /// the ring pulses visible to a driver polling every 10 ms), until the
    /// returned handle is dropped. The simulator is shared so the test or
    /// demo can script it meanwhile.
    pub fn spawn(self, period: Duration) -> SharedSimLine {
        let shared = SharedSimLine {
            inner: Arc::new(std::sync::Mutex::new(self)),
        };
        let weak = Arc::downgrade(&shared.inner);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(period);
            loop {
                tick.tick().await;
                let Some(line) = weak.upgrade() else { break };
                let now = tokio::time::Instant::now().into_std();
                line.lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .step(now);
            }
        });
        shared
    }
}

impl SimLine {
    /// Serves the line to a driver in another process (or task) over the
    /// line link (`crossline_line::link`) on a Unix socket at `path`, one
    /// driver at a time, while a tokio task steps it every `period`. The
    /// driver's hook level comes from the link (on-hook while none is
    /// connected); ring and sense levels go out on every change, the line's
    /// audio in 20 ms frames; audio from the driver is what the far end hears.
    pub fn serve(self, path: &Path, period: Duration) -> Result<SharedSimLine, Error> {
        let listener =
            tokio::net::UnixListener::bind(path).map_err(|source| Error::LineSocket {
                path: path.to_owned(),
                source,
            })?;
        let shared = self.spawn(period);
        let weak = Arc::downgrade(&shared.inner);
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                if weak.strong_count() == 0 {
                    break;
                }
                serve_driver(weak.clone(), stream, period).await;
            }
        });
        Ok(shared)
    }
}

/// Runs one driver's connection until it or the line goes away.
async fn serve_driver(line: Weak<std::sync::Mutex<SimLine>>, stream: UnixStream, period: Duration) {
    let lock = |line: &Weak<std::sync::Mutex<SimLine>>, f: &mut dyn FnMut(&mut SimLine)| {
        if let Some(l) = line.upgrade() {
            f(&mut l.lock().unwrap_or_else(std::sync::PoisonError::into_inner));
            true
        } else {
            false
        }
    };
    let (mut rd, mut wr) = stream.into_split();
    let reader_line = line.clone();
    let reader = tokio::spawn(async move {
        let mut decoder = Decoder::new();
        let mut buf = vec![0u8; 4096];
        loop {
            let n = match rd.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            let msgs = match decoder.push(buf.get(..n).unwrap_or_default()) {
                Ok(m) => m,
                Err(e) => {
                    tracing::warn!(error = %e, "simulated line: bad bytes from the driver; dropping the link");
                    break;
                }
            };
            let alive = lock(&reader_line, &mut |l: &mut SimLine| {
                for m in &msgs {
                    match m {
                        Message::Hook(high) => {
                            // The exchange sees the hook at once (audio
                            // after an answer belongs to the call).
                            l.pins.hook.set(*high);
                            l.step(tokio::time::Instant::now().into_std());
                        }
                        Message::Audio(frame) => l.write_audio(&frame[..]),
                        Message::Ring(_) | Message::Sense(_) => {}
                    }
                }
            });
            if !alive {
                break;
            }
        }
    });
    // What went into the line before the driver came is not sent.
    lock(&line, &mut |l: &mut SimLine| {
        let now = tokio::time::Instant::now().into_std();
        l.read_audio(now);
        l.links += 1;
        l.connections += 1;
    });
    let mut sent: Option<(bool, bool)> = None;
    let mut audio: Vec<i16> = Vec::new();
    let mut bytes = Vec::new();
    let mut tick = tokio::time::interval(period);
    loop {
        tick.tick().await;
        if reader.is_finished() {
            break;
        }
        let mut levels = (false, false);
        let alive = lock(&line, &mut |l: &mut SimLine| {
            let now = tokio::time::Instant::now().into_std();
            levels = (l.pins.ring.level(), l.pins.sense.level());
            audio.extend(l.read_audio(now));
        });
        if !alive {
            break;
        }
        bytes.clear();
        if sent.map(|s| s.0) != Some(levels.0) {
            Message::Ring(levels.0).encode(&mut bytes);
        }
        if sent.map(|s| s.1) != Some(levels.1) {
            Message::Sense(levels.1).encode(&mut bytes);
        }
        sent = Some(levels);
        let mut firsts = Vec::new();
        while audio.len() >= FRAME_SAMPLES {
            let mut frame = Box::new([0i16; FRAME_SAMPLES]);
            for (slot, s) in frame.iter_mut().zip(audio.drain(..FRAME_SAMPLES)) {
                *slot = s;
            }
            firsts.push(frame.first().copied().unwrap_or(0));
            Message::Audio(frame).encode(&mut bytes);
        }
        // Taken before the write: the driver's reader may have the frame
        // before the write call returns.
        let at = std::time::Instant::now();
        if !bytes.is_empty() && wr.write_all(&bytes).await.is_err() {
            break;
        }
        if !firsts.is_empty() {
            lock(&line, &mut |l: &mut SimLine| {
                for f in &firsts {
                    if l.link_sent.len() >= 256 {
                        l.link_sent.pop_front();
                    }
                    l.link_sent.push_back((at, *f));
                }
            });
        }
    }
    reader.abort();
    // The driver is gone: so is its hold on the line.
    lock(&line, &mut |l: &mut SimLine| {
        l.pins.hook.set(!l.config.levels.hook_off_high);
        l.links = l.links.saturating_sub(1);
    });
}

/// A [`SimLine`] stepped by a tokio task; lock it to script the call.
#[derive(Debug, Clone)]
pub struct SharedSimLine {
    inner: Arc<std::sync::Mutex<SimLine>>,
}

impl SharedSimLine {
    /// Runs `f` on the simulated line (with tokio's `now`).
    pub fn with<T>(&self, f: impl FnOnce(&mut SimLine, Instant) -> T) -> T {
        let now = tokio::time::Instant::now().into_std();
        let mut line = self
            .inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&mut line, now)
    }
}

fn samples_duration(n: usize) -> Duration {
    Duration::from_millis(n as u64 / SAMPLES_PER_MS)
}
