//! Call audio from the modem's voice port: PCM 8 kHz, signed 16-bit
//! little-endian, mono, in 20 ms frames of 320 bytes — the format Quectel
//! `AT+QPCMV`, SIMCom `AT+CPCMREG` and Huawei `AT^DDSETEX` all use on their
//! USB voice serial ports.
//!
//! The driver opens the configured `voice_port` when a call connects,
//! before it gives the vendor's audio command (so no frame is lost), and
//! runs a pump task that moves frames between the port (a [`VoicePort`])
//! and a [`VoiceStream`] (see [`crate::ModemHandle::voice`]). A serial port hands
//! over bytes in whatever pieces it likes — odd counts, half frames — so
//! [`FrameAssembler`] rebuilds whole frames; after the port fails (USB
//! re-enumeration: EIO, EOF) the pump reopens it by path and drops the half
//! frame it held, so alignment restarts on the new stream; a stream read
//! from the middle of a sample is noticed by [`AlignmentGuard`] and the
//! boundary moved one byte.
//!
//! What the pump watches for (what users of chan_quectel/chan_dongle keep
//! losing): no audio at all after the command (wrong command for the
//! firmware, wrong port: a [`crate::ModemEvent::Warning`] naming the profile,
//! the command and the port), audio that stops mid-call, and a modem that
//! stops taking uplink audio (the caller hears nothing: one-way audio). The
//! counts each way are in [`VoiceStats`], live from [`VoiceStream::stats`]
//! and once more as [`crate::ModemEvent::VoiceStats`] when the call ends.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tracing::{Instrument, debug, info, warn};

use crate::engine::{OpenFuture, Transport};
use crate::types::ModemEvent;

/// Samples per second on the voice port.
pub const SAMPLE_RATE: u32 = 8_000;
/// Samples in one 20 ms frame.
pub const FRAME_SAMPLES: usize = 160;
/// Bytes of one frame on the wire (s16le).
pub const FRAME_BYTES: usize = 2 * FRAME_SAMPLES;
/// One 20 ms frame of 8 kHz mono samples.
pub type VoiceFrame = [i16; FRAME_SAMPLES];

/// Frames from the modem waiting for the application (1 s); more are dropped and counted.
const TO_APP_FRAMES: usize = 50;
/// Frames from the application waiting for the modem (200 ms).
const TO_MODEM_FRAMES: usize = 10;
/// A frame the modem does not take within this is dropped (uplink stalled).
const WRITE_TIMEOUT: Duration = Duration::from_millis(200);
/// No bytes from the modem for this long after audio had started: stalled.
const STALL_AFTER: Duration = Duration::from_secs(1);
/// Most stale bytes discarded from the port before the audio command.
const MAX_DRAIN: usize = 64 * 1024;

/// Rebuilds 320-byte frames from the pieces a serial port returns. Holds at
/// most one partial frame; never allocates from input lengths.
#[derive(Debug, Clone)]
pub struct FrameAssembler {
    buf: [u8; FRAME_BYTES],
    len: usize,
    /// Bytes still to drop before the next frame (realignment).
    skip: usize,
}

impl Default for FrameAssembler {
    fn default() -> Self {
        Self {
            buf: [0; FRAME_BYTES],
            len: 0,
            skip: 0,
        }
    }
}

impl FrameAssembler {
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds bytes; calls `frame` for every frame they complete, in order.
    pub fn push(&mut self, mut bytes: &[u8], mut frame: impl FnMut(VoiceFrame)) {
        while !bytes.is_empty() {
            if self.skip > 0 {
                let n = self.skip.min(bytes.len());
                self.skip -= n;
                bytes = bytes.get(n..).unwrap_or_default();
                continue;
            }
            let room = FRAME_BYTES.saturating_sub(self.len);
            let take = room.min(bytes.len());
            let (head, rest) = bytes.split_at(take);
            if let Some(dst) = self.buf.get_mut(self.len..self.len + take) {
                dst.copy_from_slice(head);
            }
            self.len += take;
            bytes = rest;
            if self.len == FRAME_BYTES {
                frame(decode_frame(&self.buf));
                self.len = 0;
            }
        }
    }

    /// Bytes held toward the next frame (0..320).
    pub fn pending(&self) -> usize {
        self.len
    }

    /// Forgets the partial frame (the stream restarted); returns its length.
    pub fn reset(&mut self) -> usize {
        self.skip = 0;
        std::mem::take(&mut self.len)
    }

    /// Moves the frame boundary one byte on: the next byte is dropped
    /// (the stream was read from the middle of a sample).
    pub fn skip_byte(&mut self) {
        self.skip = 1;
    }
}

/// Notices a stream read one byte off (samples' high and low bytes
/// swapped in pairs): a quiet signal then looks like loud noise, while the
/// same bytes read one byte later are quiet. Several such frames in a row
/// mean the boundary is wrong. Loud noise reads loud both ways and silence
/// quiet both ways, so neither moves anything.
#[derive(Debug, Clone, Default)]
pub struct AlignmentGuard {
    suspicious: u32,
}

/// Frames in a row that must look misaligned before the boundary moves.
const MISALIGNED_FRAMES: u32 = 5;

impl AlignmentGuard {
    pub fn new() -> Self {
        Self::default()
    }

    /// Looks at one frame; true when the boundary should move one byte.
    pub fn check(&mut self, frame: &VoiceFrame) -> bool {
        let (here, shifted) = mean_abs_both_ways(frame);
        if here > 2_000 && here > shifted.saturating_mul(4) {
            self.suspicious += 1;
        } else {
            self.suspicious = 0;
        }
        if self.suspicious >= MISALIGNED_FRAMES {
            self.suspicious = 0;
            true
        } else {
            false
        }
    }
}

/// Mean absolute sample value of a frame as read, and read one byte later.
fn mean_abs_both_ways(frame: &VoiceFrame) -> (u32, u32) {
    let mut here = 0u64;
    let mut shifted = 0u64;
    for (i, s) in frame.iter().enumerate() {
        here += u64::from(s.unsigned_abs());
        if let Some(next) = frame.get(i + 1) {
            let [_, hi] = s.to_le_bytes();
            let [lo_next, _] = next.to_le_bytes();
            shifted += u64::from(i16::from_le_bytes([hi, lo_next]).unsigned_abs());
        }
    }
    let n = len64(FRAME_SAMPLES);
    (
        u32::try_from(here / n).unwrap_or(u32::MAX),
        u32::try_from(shifted / n.saturating_sub(1).max(1)).unwrap_or(u32::MAX),
    )
}

/// A voice serial port as 20 ms frames: reads rebuild whole frames from
/// whatever pieces the port returns (realigning a stream read from the
/// middle of a sample), writes finish a frame the port took only partly
/// before the next one, so the modem never sees a shifted stream. Both
/// are cancel-safe (state lives here, not in the future), so they can sit
/// in a `select!`.
pub struct VoicePort {
    io: Transport,
    asm: FrameAssembler,
    guard: AlignmentGuard,
    /// Frames rebuilt and not yet returned (one read's worth at most).
    ready: std::collections::VecDeque<VoiceFrame>,
    /// Bytes of frames written only partly.
    out: Vec<u8>,
    bytes_read: u64,
    realigned: u64,
    frames_dropped_out: u64,
}

impl std::fmt::Debug for VoicePort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VoicePort")
            .field("bytes_read", &self.bytes_read)
            .field("pending_in", &self.asm.pending())
            .field("pending_out", &self.out.len())
            .finish()
    }
}

impl VoicePort {
    /// Wraps an open port (a serial device, a PTY, an in-memory duplex).
    pub fn new(io: Transport) -> Self {
        Self {
            io,
            asm: FrameAssembler::new(),
            guard: AlignmentGuard::new(),
            ready: std::collections::VecDeque::new(),
            out: Vec::with_capacity(2 * FRAME_BYTES),
            bytes_read: 0,
            realigned: 0,
            frames_dropped_out: 0,
        }
    }

    /// Opens a voice serial port by path (USB serial: the baud rate does
    /// not matter) and drops what is already waiting there (an earlier
    /// call's audio), so the stream starts on a frame boundary.
    pub async fn open(path: &str) -> std::io::Result<Self> {
        let mut io = crate::engine::open_serial(path, 115_200)?;
        drain(&mut io).await;
        Ok(Self::new(io))
    }

    /// The next whole frame. EOF is an `UnexpectedEof` error; after any
    /// error, reopen the port (a new `VoicePort`).
    pub async fn read_frame(&mut self) -> std::io::Result<VoiceFrame> {
        let mut buf = [0u8; 2048];
        loop {
            if let Some(f) = self.ready.pop_front() {
                return Ok(f);
            }
            let n = self.io.read(&mut buf).await?;
            if n == 0 {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "the voice port closed",
                ));
            }
            self.bytes_read = self.bytes_read.saturating_add(len64(n));
            let mut realign = false;
            let (ready, guard) = (&mut self.ready, &mut self.guard);
            self.asm.push(buf.get(..n).unwrap_or_default(), |f| {
                realign |= guard.check(&f);
                ready.push_back(f);
            });
            if realign {
                warn!(
                    "the modem's audio was read from the middle of a sample; frame boundary moved one byte"
                );
                self.realigned += 1;
                self.asm.skip_byte();
            }
        }
    }

    /// Writes one frame (first the rest of one the port took only partly).
    /// With more than one frame already waiting the new one is dropped
    /// (counted in [`VoicePort::frames_dropped`]).
    pub async fn write_frame(&mut self, frame: &VoiceFrame) -> std::io::Result<()> {
        if self.out.len() <= FRAME_BYTES {
            self.out.extend_from_slice(&encode_frame(frame));
        } else {
            self.frames_dropped_out += 1;
        }
        while !self.out.is_empty() {
            let n = self.io.write(&self.out).await?;
            if n == 0 {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::WriteZero,
                    "the voice port takes no more bytes",
                ));
            }
            self.out.drain(..n.min(self.out.len()));
        }
        self.io.flush().await
    }

    /// Bytes read from the port so far.
    pub fn bytes_read(&self) -> u64 {
        self.bytes_read
    }

    /// Bytes held toward the next frame.
    pub fn pending(&self) -> usize {
        self.asm.pending()
    }

    /// Times the frame boundary was moved one byte.
    pub fn realigned(&self) -> u64 {
        self.realigned
    }

    /// Frames dropped because one was still waiting to be written.
    pub fn frames_dropped(&self) -> u64 {
        self.frames_dropped_out
    }
}

/// 320 bytes s16le → one frame.
pub fn decode_frame(bytes: &[u8; FRAME_BYTES]) -> VoiceFrame {
    let mut f = [0i16; FRAME_SAMPLES];
    for (s, pair) in f.iter_mut().zip(bytes.chunks_exact(2)) {
        if let [lo, hi] = *pair {
            *s = i16::from_le_bytes([lo, hi]);
        }
    }
    f
}

/// One frame → 320 bytes s16le.
pub fn encode_frame(frame: &VoiceFrame) -> [u8; FRAME_BYTES] {
    let mut out = [0u8; FRAME_BYTES];
    for (pair, s) in out.chunks_exact_mut(2).zip(frame.iter()) {
        pair.copy_from_slice(&s.to_le_bytes());
    }
    out
}

/// Errors of [`VoiceStream`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VoiceError {
    #[error("{line}: the call's audio has ended (the call is over or the driver stopped)")]
    Ended { line: String },
}

/// Counts of one call's audio, each way. "From the modem" is the caller's
/// voice (downlink), "to the modem" what the caller hears (uplink).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct VoiceStats {
    pub line: String,
    /// The voice port (path).
    pub port: String,
    /// The command that started the audio, e.g. `AT+QPCMV=1,0`.
    pub command: String,
    pub frames_from_modem: u64,
    pub frames_to_modem: u64,
    pub bytes_from_modem: u64,
    pub bytes_to_modem: u64,
    /// Milliseconds from the audio command to the first byte from the modem.
    pub first_audio_ms: Option<u64>,
    /// Frames from the modem dropped because the application did not read
    /// them (more than 1 s behind).
    pub dropped_from_modem: u64,
    /// Frames from the application dropped because the modem did not take
    /// them (the 200 ms queue full, or the port still holding an earlier
    /// frame it took only partly).
    pub dropped_to_modem: u64,
    /// Writes the modem did not finish within 200 ms (uplink stalled; the
    /// frame is finished before the next one, so the stream stays aligned).
    pub write_stalls: u64,
    /// Times the modem's audio stopped for a second or more mid-call.
    pub read_stalls: u64,
    /// Bytes of partial frames dropped when the port was reopened.
    pub partial_bytes_dropped: u64,
    /// Times the voice port was reopened (EIO, EOF).
    pub reopens: u64,
    /// Times the frame boundary was moved one byte because the stream was
    /// read from the middle of a sample.
    pub realigned: u64,
}

/// Which way a call's audio did not flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OneWay {
    /// Nothing came from the modem: we did not hear the caller.
    NothingFromModem,
    /// The application sent audio but the modem took none of it: the
    /// caller heard nothing.
    NothingToModem,
}

impl VoiceStats {
    /// Whether the audio flowed one way only (or not at all from the modem).
    pub fn one_way(&self) -> Option<OneWay> {
        if self.bytes_from_modem == 0 {
            Some(OneWay::NothingFromModem)
        } else if self.frames_to_modem == 0 && self.dropped_to_modem > 0 {
            Some(OneWay::NothingToModem)
        } else {
            None
        }
    }
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    frames_in: AtomicU64,
    frames_out: AtomicU64,
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
    /// first audio in ms + 1 (0 = none yet)
    first_audio: AtomicU64,
    dropped_in: AtomicU64,
    dropped_out: AtomicU64,
    write_stalls: AtomicU64,
    read_stalls: AtomicU64,
    partial: AtomicU64,
    reopens: AtomicU64,
    realigned: AtomicU64,
}

fn add(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Ordering::Relaxed);
}

fn len64(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}

/// What a call's audio is: fixed at start, the counters move.
#[derive(Debug)]
pub(crate) struct Meta {
    pub line: String,
    pub port: String,
    pub command: String,
    pub counters: Counters,
}

impl Meta {
    pub(crate) fn stats(&self) -> VoiceStats {
        let c = &self.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        VoiceStats {
            line: self.line.clone(),
            port: self.port.clone(),
            command: self.command.clone(),
            frames_from_modem: get(&c.frames_in),
            frames_to_modem: get(&c.frames_out),
            bytes_from_modem: get(&c.bytes_in),
            bytes_to_modem: get(&c.bytes_out),
            first_audio_ms: get(&c.first_audio).checked_sub(1),
            dropped_from_modem: get(&c.dropped_in),
            dropped_to_modem: get(&c.dropped_out),
            write_stalls: get(&c.write_stalls),
            read_stalls: get(&c.read_stalls),
            partial_bytes_dropped: get(&c.partial),
            reopens: get(&c.reopens),
            realigned: get(&c.realigned),
        }
    }
}

/// A connected call's audio as 20 ms frames. Take it with
/// [`crate::ModemHandle::voice`] after [`crate::CallEvent::Connected`]; it
/// ends (`recv_frame` gives `None`, `send_frame` an error) when the call
/// ends.
///
/// Pace `send_frame` at one frame per 20 ms from your own clock (a jitter
/// buffer's output, a prompt player): the modem plays what it gets at its
/// own rate and the driver keeps at most 200 ms queued; beyond that frames
/// are dropped and counted rather than delaying the call.
///
/// [`VoiceFrame`] is the same `[i16; 160]` as `crossline_audio::pcm::Frame`.
/// [`VoiceStream::split`] gives a receiver and a (cloneable) sender for
/// separate tasks (a recorder reading, a prompt player writing).
#[derive(Debug)]
pub struct VoiceStream {
    rx: VoiceReceiver,
    tx: VoiceSender,
}

/// The caller's half of a call's audio (frames from the modem).
#[derive(Debug)]
pub struct VoiceReceiver {
    meta: Arc<Meta>,
    from_modem: mpsc::Receiver<VoiceFrame>,
}

/// What the caller hears (frames to the modem). Cheap to clone.
#[derive(Debug, Clone)]
pub struct VoiceSender {
    meta: Arc<Meta>,
    to_modem: mpsc::Sender<VoiceFrame>,
}

impl VoiceStream {
    /// The next frame of the caller's voice; `None` once the call ended.
    pub async fn recv_frame(&mut self) -> Option<VoiceFrame> {
        self.rx.recv_frame().await
    }

    /// Queues a frame for the caller to hear. A full queue (the modem takes
    /// audio slower than it comes) drops the frame and counts it.
    pub async fn send_frame(&self, frame: VoiceFrame) -> Result<(), VoiceError> {
        self.tx.send_frame(frame).await
    }

    /// The counts so far.
    pub fn stats(&self) -> VoiceStats {
        self.rx.meta.stats()
    }

    /// The line label.
    pub fn line(&self) -> &str {
        &self.rx.meta.line
    }

    /// The two directions, for two tasks.
    pub fn split(self) -> (VoiceReceiver, VoiceSender) {
        (self.rx, self.tx)
    }
}

impl VoiceReceiver {
    /// The next frame of the caller's voice; `None` once the call ended.
    pub async fn recv_frame(&mut self) -> Option<VoiceFrame> {
        self.from_modem.recv().await
    }

    /// The counts so far (both directions).
    pub fn stats(&self) -> VoiceStats {
        self.meta.stats()
    }
}

impl VoiceSender {
    /// Queues a frame for the caller to hear; see [`VoiceStream::send_frame`].
    pub async fn send_frame(&self, frame: VoiceFrame) -> Result<(), VoiceError> {
        match self.to_modem.try_send(frame) {
            Ok(()) => Ok(()),
            Err(mpsc::error::TrySendError::Full(_)) => {
                add(&self.meta.counters.dropped_out, 1);
                Ok(())
            }
            Err(mpsc::error::TrySendError::Closed(_)) => Err(VoiceError::Ended {
                line: self.meta.line.clone(),
            }),
        }
    }

    /// The counts so far (both directions).
    pub fn stats(&self) -> VoiceStats {
        self.meta.stats()
    }
}

/// Opens the voice port again after it failed.
pub(crate) type VoiceOpener = Arc<dyn Fn() -> OpenFuture + Send + Sync>;

/// The running pump of one call.
pub(crate) struct Pump {
    pub meta: Arc<Meta>,
    stop: Option<oneshot::Sender<()>>,
    join: tokio::task::JoinHandle<()>,
}

impl Pump {
    /// Stops the pump and waits (briefly) for it; returns the final counts.
    pub(crate) async fn stop(mut self) -> VoiceStats {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if tokio::time::timeout(Duration::from_secs(2), &mut self.join)
            .await
            .is_err()
        {
            self.join.abort();
        }
        self.meta.stats()
    }
}

/// Reads and discards what is already waiting on a freshly opened port
/// (frames of an earlier call), so the new stream starts frame-aligned.
pub(crate) async fn drain(io: &mut Transport) -> usize {
    let mut buf = [0u8; 1024];
    let mut total = 0usize;
    while total < MAX_DRAIN {
        match tokio::time::timeout(Duration::from_millis(5), io.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => total += n,
            _ => break,
        }
    }
    total
}

pub(crate) struct PumpArgs {
    pub line: String,
    pub profile: String,
    pub port: String,
    pub command: String,
    pub io: Transport,
    pub opener: VoiceOpener,
    /// No byte from the modem within this after the command: warn.
    pub start_timeout: Duration,
    pub events: mpsc::Sender<ModemEvent>,
    /// When the audio command was given.
    pub started: Instant,
}

/// Starts the pump of one call; returns it and the call's stream.
pub(crate) fn spawn(args: PumpArgs) -> (Pump, VoiceStream) {
    let meta = Arc::new(Meta {
        line: args.line.clone(),
        port: args.port.clone(),
        command: args.command.clone(),
        counters: Counters::default(),
    });
    let (to_app_tx, to_app_rx) = mpsc::channel(TO_APP_FRAMES);
    let (to_modem_tx, to_modem_rx) = mpsc::channel(TO_MODEM_FRAMES);
    let (stop_tx, stop_rx) = oneshot::channel();
    let span = tracing::info_span!("voice", line = %args.line, port = %args.port);
    let m = meta.clone();
    let join = tokio::spawn(run(args, m, to_app_tx, to_modem_rx, stop_rx).instrument(span));
    let stream = VoiceStream {
        rx: VoiceReceiver {
            meta: meta.clone(),
            from_modem: to_app_rx,
        },
        tx: VoiceSender {
            meta: meta.clone(),
            to_modem: to_modem_tx,
        },
    };
    (
        Pump {
            meta,
            stop: Some(stop_tx),
            join,
        },
        stream,
    )
}

// One Step lives on the stack per loop turn; boxing the frame would
// allocate 50 times a second for nothing.
#[allow(clippy::large_enum_variant)]
enum Step {
    Stop,
    Read(std::io::Result<VoiceFrame>),
    Send(Option<VoiceFrame>),
    Check,
}

/// What of a port's own counts the call's counters already have.
#[derive(Default)]
struct Seen {
    bytes: u64,
    realigned: u64,
    dropped: u64,
}

impl Seen {
    /// Adds what `port` counted since the last look; notes the first audio.
    fn sync(&mut self, port: &VoicePort, c: &Counters, started: Instant) {
        let b = port.bytes_read();
        if b > self.bytes {
            if c.bytes_in.load(Ordering::Relaxed) == 0 {
                let ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
                c.first_audio.store(ms.saturating_add(1), Ordering::Relaxed);
                debug!(after_ms = ms, "audio from the modem started");
            }
            add(&c.bytes_in, b - self.bytes);
            self.bytes = b;
        }
        let r = port.realigned();
        add(&c.realigned, r.saturating_sub(self.realigned));
        self.realigned = r;
        let d = port.frames_dropped();
        add(&c.dropped_out, d.saturating_sub(self.dropped));
        self.dropped = d;
    }
}

async fn run(
    args: PumpArgs,
    meta: Arc<Meta>,
    to_app: mpsc::Sender<VoiceFrame>,
    mut from_app: mpsc::Receiver<VoiceFrame>,
    mut stop: oneshot::Receiver<()>,
) {
    let c = &meta.counters;
    let mut port = Some(VoicePort::new(args.io));
    let mut seen = Seen::default();
    let mut app_open = true;
    let mut check_at = args.started + args.start_timeout;
    let mut checked_start = false;
    let mut last_bytes = 0u64;
    let mut stalled = false;
    let mut warned_uplink = false;
    let mut backoff = Duration::from_millis(50);
    debug!(command = %args.command, "voice pump started");
    loop {
        let Some(p) = port.as_mut() else {
            // Reopen by path (USB re-enumeration), with backoff.
            tokio::select! {
                _ = &mut stop => break,
                () = tokio::time::sleep(backoff) => {}
            }
            match (args.opener)().await {
                Ok(io) => {
                    info!("voice port reopened");
                    add(&c.reopens, 1);
                    port = Some(VoicePort::new(io));
                    seen = Seen::default();
                    backoff = Duration::from_millis(50);
                }
                Err(e) => {
                    debug!(error = %e, "voice port still gone");
                    backoff = backoff.saturating_mul(2).min(Duration::from_secs(1));
                }
            }
            continue;
        };
        let step = tokio::select! {
            biased;
            _ = &mut stop => Step::Stop,
            r = p.read_frame() => Step::Read(r),
            f = from_app.recv(), if app_open => Step::Send(f),
            () = tokio::time::sleep_until(check_at) => Step::Check,
        };
        seen.sync(p, c, args.started);
        match step {
            Step::Stop => break,
            Step::Read(Ok(frame)) => {
                add(&c.frames_in, 1);
                if to_app.try_send(frame).is_err() {
                    add(&c.dropped_in, 1);
                }
            }
            Step::Read(Err(e)) => {
                warn!(reason = %e, "voice port failed; reopening");
                add(&c.partial, len64(p.pending()));
                port = None;
            }
            Step::Send(None) => app_open = false,
            Step::Send(Some(frame)) => {
                match tokio::time::timeout(WRITE_TIMEOUT, p.write_frame(&frame)).await {
                    Ok(Ok(())) => {
                        add(&c.frames_out, 1);
                        add(&c.bytes_out, len64(FRAME_BYTES));
                    }
                    Ok(Err(e)) => {
                        warn!(error = %e, "voice port write failed; reopening");
                        add(&c.dropped_out, 1);
                        add(&c.partial, len64(p.pending()));
                        port = None;
                    }
                    Err(_) => {
                        // the frame waits in the port and goes out first next time
                        add(&c.write_stalls, 1);
                        if !warned_uplink {
                            warned_uplink = true;
                            let msg = format!(
                                "{}: the modem does not take call audio on {} (a 20 ms frame waited over {} ms; profile {}, after {}): the caller may hear nothing (one-way audio). SIM7600 firmwares are known to stop reading uplink PCM after a few calls until AT+CRESET",
                                args.line,
                                args.port,
                                WRITE_TIMEOUT.as_millis(),
                                args.profile,
                                args.command
                            );
                            warn!("{msg}");
                            let _ = args.events.try_send(ModemEvent::Warning(msg));
                        }
                    }
                }
                if let Some(p) = port.as_ref() {
                    seen.sync(p, c, args.started);
                }
            }
            Step::Check => {
                let now_bytes = c.bytes_in.load(Ordering::Relaxed);
                if !checked_start {
                    checked_start = true;
                    if now_bytes == 0 {
                        let msg = format!(
                            "{}: no audio from the voice port {} within {} ms after {} (profile {}): the modem did not start PCM there. The command may be wrong for this firmware (set `voice_enable`), or `voice_port` is not the modem's audio interface; the call goes on without audio",
                            args.line,
                            args.port,
                            args.start_timeout.as_millis(),
                            args.command,
                            args.profile
                        );
                        warn!("{msg}");
                        // never block the audio on a slow event reader
                        let _ = args.events.try_send(ModemEvent::Warning(msg));
                    }
                } else if now_bytes == last_bytes && now_bytes > 0 {
                    if !stalled {
                        stalled = true;
                        add(&c.read_stalls, 1);
                        warn!("the modem's call audio stopped for a second or more");
                    }
                } else {
                    stalled = false;
                }
                last_bytes = now_bytes;
                check_at = Instant::now() + STALL_AFTER;
            }
        }
    }
    debug!(stats = ?meta.stats(), "voice pump stopped");
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use proptest::prelude::*;

    fn bytes_of(samples: &[i16]) -> Vec<u8> {
        samples.iter().flat_map(|s| s.to_le_bytes()).collect()
    }

    #[test]
    fn frames_round_trip() {
        let mut f = [0i16; FRAME_SAMPLES];
        for (i, s) in f.iter_mut().enumerate() {
            *s = i16::try_from(i).unwrap() * 200 - 16000;
        }
        assert_eq!(decode_frame(&encode_frame(&f)), f);
    }

    #[test]
    fn odd_pieces_make_whole_frames_and_the_rest_waits() {
        let samples: Vec<i16> = (0..400).map(|i| i * 7 - 1000).collect();
        let bytes = bytes_of(&samples);
        let mut asm = FrameAssembler::new();
        let mut got = Vec::new();
        for piece in bytes.chunks(33) {
            asm.push(piece, |f| got.push(f));
        }
        assert_eq!(got.len(), 2);
        assert_eq!(got[1].to_vec(), samples[160..320].to_vec());
        assert_eq!(asm.pending(), 160);
        assert_eq!(asm.reset(), 160);
        assert_eq!(asm.pending(), 0);
    }

    /// A frame the port takes only partly is finished before the next one:
    /// the modem never sees a shifted stream.
    #[tokio::test]
    async fn a_partly_written_frame_is_finished_before_the_next() {
        let (a, mut b) = tokio::io::duplex(100);
        let mut port = VoicePort::new(Box::new(a));
        let first = tokio::time::timeout(
            Duration::from_millis(50),
            port.write_frame(&[1; FRAME_SAMPLES]),
        )
        .await;
        assert!(first.is_err(), "100 bytes of room cannot take 320");
        let reader = tokio::spawn(async move {
            let mut all = vec![0u8; 2 * FRAME_BYTES];
            b.read_exact(&mut all).await.unwrap();
            all
        });
        port.write_frame(&[2; FRAME_SAMPLES]).await.unwrap();
        let all = reader.await.unwrap();
        let (x, y) = all.split_at(FRAME_BYTES);
        assert_eq!(decode_frame(x.try_into().unwrap()), [1; FRAME_SAMPLES]);
        assert_eq!(decode_frame(y.try_into().unwrap()), [2; FRAME_SAMPLES]);
        assert_eq!(port.frames_dropped(), 0);
    }

    #[tokio::test]
    async fn reads_rebuild_frames_from_odd_pieces_and_eof_is_an_error() {
        let (a, mut b) = tokio::io::duplex(4096);
        let mut port = VoicePort::new(Box::new(a));
        let bytes = bytes_of(&[-5i16; FRAME_SAMPLES * 2]);
        for piece in bytes.chunks(77) {
            b.write_all(piece).await.unwrap();
        }
        b.write_all(&[1, 2, 3]).await.unwrap();
        assert_eq!(port.read_frame().await.unwrap(), [-5; FRAME_SAMPLES]);
        assert_eq!(port.read_frame().await.unwrap(), [-5; FRAME_SAMPLES]);
        drop(b);
        let e = port.read_frame().await.unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::UnexpectedEof);
        assert_eq!(port.pending(), 3);
        assert_eq!(port.bytes_read(), 643);
    }

    /// EOF mid-frame (USB re-enumeration): the half frame is dropped, the
    /// port reopened by the opener, and frames flow again aligned.
    #[tokio::test]
    async fn a_failed_port_is_reopened_and_alignment_restarts() {
        let (modem_ends_tx, mut modem_ends) = mpsc::unbounded_channel();
        let opener: VoiceOpener = Arc::new(move || {
            let (driver_end, modem_end) = tokio::io::duplex(4096);
            let _ = modem_ends_tx.send(modem_end);
            Box::pin(async move { Ok(Box::new(driver_end) as Transport) }) as OpenFuture
        });
        let (driver_end, mut modem_end) = tokio::io::duplex(4096);
        let (events, _events_rx) = mpsc::channel(8);
        let (pump, mut stream) = spawn(PumpArgs {
            line: "gsm0".into(),
            profile: "QuectelEc25".into(),
            port: "/dev/null".into(),
            command: "AT+QPCMV=1,0".into(),
            io: Box::new(driver_end),
            opener,
            start_timeout: Duration::from_secs(5),
            events,
            started: Instant::now(),
        });
        let one: Vec<u8> = bytes_of(&[7i16; FRAME_SAMPLES]);
        modem_end.write_all(&one).await.unwrap();
        modem_end.write_all(&one[..161]).await.unwrap(); // odd: mid-sample
        assert_eq!(stream.recv_frame().await.unwrap(), [7i16; FRAME_SAMPLES]);
        drop(modem_end);
        let mut again = tokio::time::timeout(Duration::from_secs(5), modem_ends.recv())
            .await
            .unwrap()
            .unwrap();
        again
            .write_all(&bytes_of(&[-9i16; FRAME_SAMPLES]))
            .await
            .unwrap();
        assert_eq!(stream.recv_frame().await.unwrap(), [-9i16; FRAME_SAMPLES]);
        stream.send_frame([3; FRAME_SAMPLES]).await.unwrap();
        let mut back = [0u8; FRAME_BYTES];
        again.read_exact(&mut back).await.unwrap();
        assert_eq!(decode_frame(&back), [3; FRAME_SAMPLES]);
        let stats = pump.stop().await;
        assert_eq!(stats.reopens, 1);
        assert_eq!(stats.partial_bytes_dropped, 161);
        assert_eq!(stats.frames_from_modem, 2);
        assert_eq!(stats.frames_to_modem, 1);
        assert!(stream.recv_frame().await.is_none());
    }

    fn tone(hz: f64, dbm0: f64, n: usize) -> Vec<i16> {
        crossline_audio::tones::mix(&[(hz, dbm0)], n)
    }

    #[test]
    fn a_stream_read_one_byte_off_is_realigned() {
        let speech = tone(440.0, -18.0, 160 * 20);
        let mut bytes = vec![0x55]; // a stray byte: everything after is off by one
        bytes.extend(bytes_of(&speech));
        let mut asm = FrameAssembler::new();
        let mut guard = AlignmentGuard::new();
        let mut frames = Vec::new();
        let mut moves = 0;
        for piece in bytes.chunks(100) {
            let mut realign = false;
            asm.push(piece, |f| {
                realign |= guard.check(&f);
                frames.push(f);
            });
            if realign {
                moves += 1;
                asm.skip_byte();
            }
        }
        assert_eq!(moves, 1);
        // the last frames are the tone again, sample for sample
        let last = frames.last().unwrap();
        let at = speech
            .windows(FRAME_SAMPLES)
            .position(|w| w == last.as_slice());
        assert!(at.is_some(), "the tail is not the tone");
    }

    #[test]
    fn aligned_audio_loud_or_quiet_and_noise_never_move_the_boundary() {
        let mut guard = AlignmentGuard::new();
        let mut x: u32 = 12345;
        let noise: Vec<i16> = (0..160 * 50)
            .map(|_| {
                x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
                (x >> 16) as i16
            })
            .collect();
        for signal in [
            tone(1000.0, 2.0, 160 * 50),
            tone(300.0, -41.0, 160 * 50),
            vec![0; 160 * 50],
            noise,
        ] {
            for f in signal.chunks_exact(FRAME_SAMPLES) {
                assert!(!guard.check(&f.try_into().unwrap()));
            }
        }
    }

    proptest! {
        /// However the port splits the stream, the frames are the same, in
        /// order, and at most one partial frame is held.
        #[test]
        fn any_split_gives_the_same_frames(
            data in proptest::collection::vec(any::<u8>(), 0..2000),
            cuts in proptest::collection::vec(0usize..400, 0..40),
        ) {
            let mut whole = Vec::new();
            FrameAssembler::new().push(&data, |f| whole.push(f));
            let mut asm = FrameAssembler::new();
            let mut split = Vec::new();
            let mut rest: &[u8] = &data;
            for c in cuts {
                let (a, b) = rest.split_at(c.min(rest.len()));
                asm.push(a, |f| split.push(f));
                prop_assert!(asm.pending() < FRAME_BYTES);
                rest = b;
            }
            asm.push(rest, |f| split.push(f));
            prop_assert_eq!(&whole, &split);
            prop_assert_eq!(whole.len(), data.len() / FRAME_BYTES);
            prop_assert_eq!(asm.pending(), data.len() % FRAME_BYTES);
            for (i, f) in whole.iter().enumerate() {
                let start = i * FRAME_BYTES;
                prop_assert_eq!(&encode_frame(f)[..], &data[start..start + FRAME_BYTES]);
            }
        }
    }
}
