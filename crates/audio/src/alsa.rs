//! ALSA capture and playback (feature `alsa`).
//!
//! Each open stream runs on its own thread: 8 kHz mono S16, 20 ms periods
//! ([`FRAME_SAMPLES`] frames). Frames cross to the rest of the program
//! through a bounded queue, usable from async code ([`Capture::recv`],
//! [`Playback::send`]) and from plain threads ([`PcmSource`], [`PcmSink`]).
//!
//! The audio thread never waits for its user: a capture frame that finds
//! the queue full is dropped and counted (`queue_overflows`); a playback
//! period with nothing queued plays silence and is counted
//! (`queue_underruns`), so the device never runs dry because the program was
//! late. Device over/underruns (`EPIPE`) and suspends (`ESTRPIPE`) are
//! recovered (re-prepare, resume), counted and logged.
//!
//! When a period is due is decided by a [`Pacer`]: real hardware paces
//! itself ([`DevicePacing`]: the blocking read/write returns once a period
//! has been captured or there is room for one); ALSA's `null` and `file`
//! plugins are not paced (two seconds "captured" in under a millisecond), so
//! simulators use [`IntervalPacing`] and tests [`ManualPacing`], which
//! runs exactly one period per tick.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc as std_mpsc;
use std::task::{Context, Poll, Wake, Waker};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use alsa::pcm::{Access, Format, HwParams};
use alsa::{Direction, PCM, ValueOr};
use tokio::sync::mpsc;

use crate::FRAME_SAMPLES;
use crate::error::AudioError;
use crate::pcm::{Frame, PcmSink, PcmSource, SILENCE};

/// One period: 20 ms.
pub const PERIOD: Duration = Duration::from_millis(20);

// Linux errno values alsa-lib reports (the alsa crate gives them positive).
const EPIPE: i32 = 32;
const EAGAIN: i32 = 11;
const ESTRPIPE: i32 = 86;

/// Recoveries in a row without a successful transfer before the stream
/// gives up (a device that xruns on every period is broken, not late).
const MAX_RECOVERIES_IN_A_ROW: u32 = 50;

/// Which device and how much buffering.
#[derive(Debug, Clone)]
pub struct AlsaConfig {
    /// The ALSA PCM name, e.g. `plughw:CARD=EC25,DEV=0` (Quectel USB audio)
    /// or `default`.
    pub device: String,
    /// Frames the queue between the audio thread and its user holds
    /// (default 10: 200 ms).
    pub queue_frames: usize,
    /// Periods in the device's ring buffer (default 4: 80 ms).
    pub buffer_periods: u32,
}

impl AlsaConfig {
    /// Defaults for `device`.
    pub fn new(device: impl Into<String>) -> Self {
        Self {
            device: device.into(),
            queue_frames: 10,
            buffer_periods: 4,
        }
    }
}

/// Decides when the audio thread runs its next period.
pub trait Pacer: Send + 'static {
    /// Waits until the next period is due; `false` when the stream is to
    /// stop (`stop` was raised, or the pacer has no more periods).
    fn wait_period(&mut self, stop: &AtomicBool) -> bool;
}

/// The device paces the stream (real hardware): no waiting here.
#[derive(Debug, Clone, Copy, Default)]
pub struct DevicePacing;

impl Pacer for DevicePacing {
    fn wait_period(&mut self, stop: &AtomicBool) -> bool {
        !stop.load(Ordering::Acquire)
    }
}

/// One period every 20 ms of the monotonic clock, for devices that do not
/// pace themselves (ALSA `null`/`file` in a simulator or the demo).
#[derive(Debug, Clone, Default)]
pub struct IntervalPacing {
    next: Option<Instant>,
}

impl Pacer for IntervalPacing {
    fn wait_period(&mut self, stop: &AtomicBool) -> bool {
        let now = Instant::now();
        let due = match self.next {
            // More than a few periods behind (the machine stalled): start
            // again from now rather than run a burst.
            Some(due) if now.saturating_duration_since(due) < PERIOD * 5 => due,
            _ => now,
        };
        if let Some(wait) = due.checked_duration_since(now) {
            std::thread::sleep(wait);
        }
        self.next = Some(due + PERIOD);
        !stop.load(Ordering::Acquire)
    }
}

/// One period per tick of its [`PeriodTicks`]: the injected clock of tests.
#[derive(Debug)]
pub struct ManualPacing {
    ticks: std_mpsc::Receiver<()>,
}

/// The clock hand of a [`ManualPacing`]; dropping it ends the stream.
#[derive(Debug, Clone)]
pub struct PeriodTicks {
    tx: std_mpsc::Sender<()>,
}

impl ManualPacing {
    /// A pacer and the handle that ticks it.
    pub fn new() -> (Self, PeriodTicks) {
        let (tx, ticks) = std_mpsc::channel();
        (Self { ticks }, PeriodTicks { tx })
    }
}

impl PeriodTicks {
    /// Lets `periods` more periods run.
    pub fn tick(&self, periods: usize) {
        for _ in 0..periods {
            // A stream that has ended ignores ticks.
            let _ = self.tx.send(());
        }
    }
}

impl Pacer for ManualPacing {
    fn wait_period(&mut self, stop: &AtomicBool) -> bool {
        loop {
            if stop.load(Ordering::Acquire) {
                return false;
            }
            match self.ticks.recv_timeout(Duration::from_millis(10)) {
                Ok(()) => return true,
                Err(std_mpsc::RecvTimeoutError::Timeout) => {}
                Err(std_mpsc::RecvTimeoutError::Disconnected) => return false,
            }
        }
    }
}

/// What a stream has done so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StreamStats {
    /// Periods transferred to or from the device.
    pub periods: u64,
    /// Device over/underruns (`EPIPE`) recovered.
    pub xruns: u64,
    /// Device suspends (`ESTRPIPE`) recovered.
    pub suspends: u64,
    /// Captured frames dropped because the user's queue was full.
    pub queue_overflows: u64,
    /// Playback periods filled with silence because nothing was queued.
    pub queue_underruns: u64,
}

#[derive(Debug, Default)]
struct Counters {
    periods: AtomicU64,
    xruns: AtomicU64,
    suspends: AtomicU64,
    queue_overflows: AtomicU64,
    queue_underruns: AtomicU64,
}

impl Counters {
    fn snapshot(&self) -> StreamStats {
        StreamStats {
            periods: self.periods.load(Ordering::Relaxed),
            xruns: self.xruns.load(Ordering::Relaxed),
            suspends: self.suspends.load(Ordering::Relaxed),
            queue_overflows: self.queue_overflows.load(Ordering::Relaxed),
            queue_underruns: self.queue_underruns.load(Ordering::Relaxed),
        }
    }
}

fn bump(counter: &AtomicU64) -> u64 {
    counter.fetch_add(1, Ordering::Relaxed) + 1
}

/// The device calls the audio loop makes; alsa-lib in production, a fake
/// that fails on cue in the tests of recovery.
trait Device: Send {
    fn read(&mut self, buf: &mut [i16]) -> Result<usize, alsa::Error>;
    fn write(&mut self, buf: &[i16]) -> Result<usize, alsa::Error>;
    fn prepare(&mut self) -> Result<(), alsa::Error>;
    fn resume(&mut self) -> Result<(), alsa::Error>;
    /// Ends the stream: plays out what was written (playback) or drops
    /// what was captured.
    fn finish(&mut self);
}

struct AlsaDevice {
    pcm: PCM,
    direction: Direction,
}

impl AlsaDevice {
    fn open(config: &AlsaConfig, direction: Direction) -> Result<Self, AudioError> {
        Ok(AlsaDevice {
            pcm: open_pcm(config, direction)?,
            direction,
        })
    }
}

impl Device for AlsaDevice {
    fn read(&mut self, buf: &mut [i16]) -> Result<usize, alsa::Error> {
        self.pcm.io_i16()?.readi(buf)
    }

    fn write(&mut self, buf: &[i16]) -> Result<usize, alsa::Error> {
        self.pcm.io_i16()?.writei(buf)
    }

    fn prepare(&mut self) -> Result<(), alsa::Error> {
        self.pcm.prepare()
    }

    fn resume(&mut self) -> Result<(), alsa::Error> {
        self.pcm.resume()
    }

    fn finish(&mut self) {
        let _ = match self.direction {
            Direction::Playback => self.pcm.drain(),
            Direction::Capture => self.pcm.drop(),
        };
    }
}

/// One direction of the audio loop, with what it needs to log and count.
struct Stream<D> {
    device: D,
    name: String,
    direction: &'static str,
    counters: Arc<Counters>,
    recoveries_in_a_row: u32,
}

impl<D: Device> Stream<D> {
    /// A stream on `device` named `name` for logs and errors, and the
    /// counters its worker shares with the handle.
    fn new(device: D, name: &str, direction: &'static str) -> (Self, Arc<Counters>) {
        let counters = Arc::new(Counters::default());
        let stream = Stream {
            device,
            name: name.to_owned(),
            direction,
            counters: Arc::clone(&counters),
            recoveries_in_a_row: 0,
        };
        (stream, counters)
    }

    fn fail(&self, action: &'static str, source: alsa::Error) -> AudioError {
        AudioError::Alsa {
            device: self.name.clone(),
            action,
            source,
        }
    }

    /// Recovers from an error of a transfer, or returns it.
    fn recover(&mut self, err: alsa::Error, action: &'static str) -> Result<(), AudioError> {
        self.recoveries_in_a_row += 1;
        if self.recoveries_in_a_row > MAX_RECOVERIES_IN_A_ROW {
            return Err(self.fail(action, err));
        }
        match err.errno() {
            EPIPE => {
                let xruns = bump(&self.counters.xruns);
                tracing::warn!(device = %self.name, direction = self.direction, xruns,
                    "ALSA xrun (the device buffer ran over or dry); stream re-prepared");
                self.device
                    .prepare()
                    .map_err(|e| self.fail("prepare after an xrun", e))
            }
            ESTRPIPE => {
                let suspends = bump(&self.counters.suspends);
                tracing::warn!(device = %self.name, direction = self.direction, suspends,
                    "ALSA device suspended; resuming");
                for _ in 0..100 {
                    match self.device.resume() {
                        Ok(()) => return Ok(()),
                        // The device is still suspended: ask again shortly.
                        Err(e) if e.errno() == EAGAIN => {
                            std::thread::sleep(Duration::from_millis(10))
                        }
                        // It cannot resume by itself: start it afresh.
                        Err(_) => break,
                    }
                }
                self.device
                    .prepare()
                    .map_err(|e| self.fail("prepare after a suspend", e))
            }
            _ => Err(self.fail(action, err)),
        }
    }

    fn read_frame(&mut self) -> Result<Frame, AudioError> {
        let mut frame = SILENCE;
        let mut filled = 0;
        while filled < FRAME_SAMPLES {
            let rest = frame.get_mut(filled..).unwrap_or_default();
            match self.device.read(rest) {
                Ok(n) if n > 0 => {
                    filled += n.min(FRAME_SAMPLES - filled);
                    self.recoveries_in_a_row = 0;
                }
                Ok(_) => self.recover(alsa::Error::new("snd_pcm_readi", EAGAIN), "read")?,
                Err(e) => self.recover(e, "read")?,
            }
        }
        Ok(frame)
    }

    fn write_frame(&mut self, frame: &Frame) -> Result<(), AudioError> {
        let mut done = 0;
        while done < FRAME_SAMPLES {
            let rest = frame.get(done..).unwrap_or_default();
            match self.device.write(rest) {
                Ok(n) if n > 0 => {
                    done += n.min(FRAME_SAMPLES - done);
                    self.recoveries_in_a_row = 0;
                }
                Ok(_) => self.recover(alsa::Error::new("snd_pcm_writei", EAGAIN), "write")?,
                Err(e) => self.recover(e, "write")?,
            }
        }
        Ok(())
    }

    fn capture(
        &mut self,
        pacer: &mut dyn Pacer,
        stop: &AtomicBool,
        tx: &mpsc::Sender<Frame>,
    ) -> Result<(), AudioError> {
        while pacer.wait_period(stop) {
            let frame = self.read_frame()?;
            bump(&self.counters.periods);
            match tx.try_send(frame) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Full(_)) => {
                    let dropped = bump(&self.counters.queue_overflows);
                    if dropped == 1 || dropped.is_multiple_of(50) {
                        tracing::warn!(device = %self.name, dropped,
                            "captured audio dropped: the program reads frames slower than real time");
                    }
                }
                // Nobody listens any more.
                Err(mpsc::error::TrySendError::Closed(_)) => break,
            }
        }
        Ok(())
    }

    fn playback(
        &mut self,
        pacer: &mut dyn Pacer,
        stop: &AtomicBool,
        rx: &mut mpsc::Receiver<Frame>,
    ) -> Result<(), AudioError> {
        while pacer.wait_period(stop) {
            let frame = match rx.try_recv() {
                Ok(frame) => frame,
                Err(mpsc::error::TryRecvError::Empty) => {
                    let silent = bump(&self.counters.queue_underruns);
                    if silent == 1 || silent.is_multiple_of(50) {
                        tracing::debug!(device = %self.name, silent,
                            "nothing queued for playback: playing silence");
                    }
                    SILENCE
                }
                // Every sender is gone and the queue is played out.
                Err(mpsc::error::TryRecvError::Disconnected) => break,
            };
            self.write_frame(&frame)?;
            bump(&self.counters.periods);
        }
        Ok(())
    }
}

/// The thread side every stream shares: stop flag, counters, join.
#[derive(Debug)]
struct Worker {
    device: String,
    stop: Arc<AtomicBool>,
    counters: Arc<Counters>,
    thread: Option<JoinHandle<Result<(), AudioError>>>,
}

impl Worker {
    fn spawn(
        device: &str,
        direction: &'static str,
        counters: Arc<Counters>,
        body: impl FnOnce(&AtomicBool) -> Result<(), AudioError> + Send + 'static,
    ) -> Result<Self, AudioError> {
        let stop = Arc::new(AtomicBool::new(false));
        let thread_stop = Arc::clone(&stop);
        let name = device.to_owned();
        let thread = std::thread::Builder::new()
            .name(format!("alsa-{direction}"))
            .spawn(move || {
                let result = body(&thread_stop);
                match &result {
                    Ok(()) => tracing::debug!(device = %name, direction, "audio stream ended"),
                    Err(e) => tracing::error!(device = %name, direction, error = %e, "audio stream failed"),
                }
                result
            })
            .map_err(|e| AudioError::Stopped {
                device: device.to_owned(),
                reason: format!("cannot start the audio thread: {e}"),
            })?;
        Ok(Self {
            device: device.to_owned(),
            stop,
            counters,
            thread: Some(thread),
        })
    }

    fn stats(&self) -> StreamStats {
        self.counters.snapshot()
    }

    fn finish(&mut self) -> Result<StreamStats, AudioError> {
        self.stop.store(true, Ordering::Release);
        if let Some(thread) = self.thread.take() {
            match thread.join() {
                Ok(result) => result?,
                Err(_) => {
                    return Err(AudioError::Stopped {
                        device: self.device.clone(),
                        reason: "the audio thread panicked".into(),
                    });
                }
            }
        }
        Ok(self.stats())
    }

    /// The error that ended the stream, once its thread has ended with one
    /// (`Ok` while it runs or when it ended cleanly).
    fn ended(&mut self) -> Result<(), AudioError> {
        if self.thread.as_ref().is_some_and(|t| t.is_finished()) {
            self.finish()?;
        }
        Ok(())
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.finish();
    }
}

fn open_pcm(config: &AlsaConfig, direction: Direction) -> Result<PCM, AudioError> {
    let name = config.device.as_str();
    let err = |action: &'static str| {
        move |source| AudioError::Alsa {
            device: name.to_owned(),
            action,
            source,
        }
    };
    let pcm = PCM::new(name, direction, false).map_err(err("open"))?;
    {
        let hw = HwParams::any(&pcm).map_err(err("read hardware parameters"))?;
        hw.set_access(Access::RWInterleaved)
            .map_err(err("set interleaved access"))?;
        hw.set_format(Format::s16())
            .map_err(err("set format S16"))?;
        hw.set_channels(1).map_err(err("set mono"))?;
        hw.set_rate(crate::SAMPLE_RATE, ValueOr::Nearest)
            .map_err(err("set rate 8000 Hz"))?;
        hw.set_period_size_near(FRAME_SAMPLES as alsa::pcm::Frames, ValueOr::Nearest)
            .map_err(err("set a 20 ms period"))?;
        let periods = alsa::pcm::Frames::from(config.buffer_periods.max(2));
        hw.set_buffer_size_near(FRAME_SAMPLES as alsa::pcm::Frames * periods)
            .map_err(err("set the buffer size"))?;
        pcm.hw_params(&hw)
            .map_err(err("apply hardware parameters"))?;
    }
    let (rate, period, buffer) = {
        let hw = pcm
            .hw_params_current()
            .map_err(err("read back hardware parameters"))?;
        (
            hw.get_rate().map_err(err("read back the rate"))?,
            hw.get_period_size().ok(),
            hw.get_buffer_size().ok(),
        )
    };
    if rate != crate::SAMPLE_RATE {
        return Err(AudioError::AlsaFormat {
            device: name.to_owned(),
            found: format!("{rate} Hz"),
        });
    }
    if direction == Direction::Playback {
        // Start once two periods are queued: soon, with one in reserve.
        let sw = pcm
            .sw_params_current()
            .map_err(err("read software parameters"))?;
        sw.set_start_threshold(FRAME_SAMPLES as alsa::pcm::Frames * 2)
            .map_err(err("set the start threshold"))?;
        pcm.sw_params(&sw)
            .map_err(err("apply software parameters"))?;
    }
    tracing::info!(
        device = name,
        ?direction,
        period,
        buffer,
        "ALSA device open"
    );
    Ok(pcm)
}

/// Wakes the thread that waits in [`block_on`].
struct ThreadWaker(std::thread::Thread);

impl Wake for ThreadWaker {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
}

/// Runs a future to completion on this thread, parking between polls.
///
/// Used for the blocking [`PcmSource`] / [`PcmSink`] sides instead of
/// tokio's `blocking_recv`/`blocking_send`, which panic when called on a
/// thread that belongs to a runtime (such as a `spawn_blocking` thread, where
/// blocking is exactly right).
fn block_on<F: Future>(fut: F) -> F::Output {
    let mut fut = std::pin::pin!(fut);
    let waker = Waker::from(Arc::new(ThreadWaker(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    loop {
        if let Poll::Ready(out) = fut.as_mut().poll(&mut cx) {
            return out;
        }
        std::thread::park();
    }
}

/// A capture stream: frames from an ALSA device.
#[derive(Debug)]
pub struct Capture {
    rx: mpsc::Receiver<Frame>,
    worker: Worker,
}

impl Capture {
    /// Opens `config.device` for capture and starts its thread.
    pub fn open(config: &AlsaConfig, pacer: impl Pacer) -> Result<Self, AudioError> {
        let device = AlsaDevice::open(config, Direction::Capture)?;
        Self::start(&config.device, config.queue_frames, device, pacer)
    }

    fn start(
        name: &str,
        queue_frames: usize,
        device: impl Device + 'static,
        mut pacer: impl Pacer,
    ) -> Result<Self, AudioError> {
        let (tx, rx) = mpsc::channel(queue_frames.max(1));
        let (mut stream, counters) = Stream::new(device, name, "capture");
        let worker = Worker::spawn(name, "capture", counters, move |stop| {
            let result = stream.capture(&mut pacer, stop, &tx);
            stream.device.finish();
            result
        })?;
        Ok(Self { rx, worker })
    }

    /// The next captured frame; `None` once the stream has ended (see
    /// [`Capture::stop`] for why).
    pub async fn recv(&mut self) -> Option<Frame> {
        self.rx.recv().await
    }

    /// A frame if one is waiting.
    pub fn try_recv(&mut self) -> Option<Frame> {
        self.rx.try_recv().ok()
    }

    /// Counters so far.
    pub fn stats(&self) -> StreamStats {
        self.worker.stats()
    }

    /// Stops the stream and waits for its thread; the final counters, or
    /// the error that ended the stream.
    pub fn stop(mut self) -> Result<StreamStats, AudioError> {
        self.rx.close();
        self.worker.finish()
    }
}

impl PcmSource for Capture {
    /// Blocks until a frame is captured: for plain threads and
    /// `spawn_blocking`; in async code use [`Capture::recv`].
    fn read_frame(&mut self) -> Result<Option<Frame>, AudioError> {
        match block_on(self.rx.recv()) {
            Some(frame) => Ok(Some(frame)),
            None => self.worker.finish().map(|_| None),
        }
    }
}

/// A playback stream: frames to an ALSA device.
#[derive(Debug)]
pub struct Playback {
    tx: Option<mpsc::Sender<Frame>>,
    worker: Worker,
}

impl Playback {
    /// Opens `config.device` for playback and starts its thread.
    pub fn open(config: &AlsaConfig, pacer: impl Pacer) -> Result<Self, AudioError> {
        let device = AlsaDevice::open(config, Direction::Playback)?;
        Self::start(&config.device, config.queue_frames, device, pacer)
    }

    fn start(
        name: &str,
        queue_frames: usize,
        device: impl Device + 'static,
        mut pacer: impl Pacer,
    ) -> Result<Self, AudioError> {
        let (tx, mut rx) = mpsc::channel(queue_frames.max(1));
        let (mut stream, counters) = Stream::new(device, name, "playback");
        let worker = Worker::spawn(name, "playback", counters, move |stop| {
            let result = stream.playback(&mut pacer, stop, &mut rx);
            stream.device.finish();
            result
        })?;
        Ok(Self {
            tx: Some(tx),
            worker,
        })
    }

    fn stopped(&mut self) -> AudioError {
        match self.worker.ended() {
            Err(e) => e,
            Ok(()) => AudioError::Stopped {
                device: self.worker.device.clone(),
                reason: "playback was stopped".into(),
            },
        }
    }

    /// Queues a frame, waiting while the queue is full.
    pub async fn send(&mut self, frame: Frame) -> Result<(), AudioError> {
        let sent = match &self.tx {
            Some(tx) => tx.send(frame).await.is_ok(),
            None => false,
        };
        if sent { Ok(()) } else { Err(self.stopped()) }
    }

    /// Counters so far.
    pub fn stats(&self) -> StreamStats {
        self.worker.stats()
    }

    /// Stops the stream at once (frames still queued are not played) and
    /// waits for its thread; the final counters, or the error that ended
    /// the stream.
    pub fn stop(mut self) -> Result<StreamStats, AudioError> {
        self.tx = None;
        self.worker.finish()
    }
}

impl PcmSink for Playback {
    /// Queues a frame, blocking while the queue is full: for plain threads
    /// and `spawn_blocking`; in async code use [`Playback::send`].
    fn write_frame(&mut self, frame: &Frame) -> Result<(), AudioError> {
        let sent = match &self.tx {
            Some(tx) => block_on(tx.send(*frame)).is_ok(),
            None => false,
        };
        if sent { Ok(()) } else { Err(self.stopped()) }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;
    use std::collections::VecDeque;
    use std::sync::Mutex;

    /// What the fake device does on its next calls.
    #[derive(Debug, Clone, Copy, PartialEq)]
    enum Step {
        Ok,
        /// Returns half a period, then the rest on the next call.
        Short,
        Fail(i32),
    }

    #[derive(Default)]
    struct Log {
        written: Vec<i16>,
        prepares: u32,
        resumes: u32,
        finished: bool,
    }

    struct Fake {
        script: VecDeque<Step>,
        resume_answers: VecDeque<i32>,
        next_sample: i16,
        log: Arc<Mutex<Log>>,
    }

    impl Fake {
        fn new(script: &[Step]) -> (Self, Arc<Mutex<Log>>) {
            let log = Arc::new(Mutex::new(Log::default()));
            let fake = Self {
                script: script.iter().copied().collect(),
                resume_answers: VecDeque::new(),
                next_sample: 0,
                log: Arc::clone(&log),
            };
            (fake, log)
        }

        fn step(&mut self, len: usize) -> Result<usize, alsa::Error> {
            match self.script.pop_front().unwrap_or(Step::Ok) {
                Step::Ok => Ok(len),
                Step::Short => Ok(len.min(FRAME_SAMPLES / 2)),
                Step::Fail(errno) => Err(alsa::Error::new("fake", errno)),
            }
        }
    }

    impl Device for Fake {
        fn read(&mut self, buf: &mut [i16]) -> Result<usize, alsa::Error> {
            let n = self.step(buf.len())?;
            for s in &mut buf[..n] {
                *s = self.next_sample;
                self.next_sample = self.next_sample.wrapping_add(1);
            }
            Ok(n)
        }

        fn write(&mut self, buf: &[i16]) -> Result<usize, alsa::Error> {
            let n = self.step(buf.len())?;
            self.log
                .lock()
                .unwrap()
                .written
                .extend_from_slice(&buf[..n]);
            Ok(n)
        }

        fn prepare(&mut self) -> Result<(), alsa::Error> {
            self.log.lock().unwrap().prepares += 1;
            Ok(())
        }

        fn resume(&mut self) -> Result<(), alsa::Error> {
            self.log.lock().unwrap().resumes += 1;
            match self.resume_answers.pop_front() {
                None => Ok(()),
                Some(errno) => Err(alsa::Error::new("fake resume", errno)),
            }
        }

        fn finish(&mut self) {
            self.log.lock().unwrap().finished = true;
        }
    }

    fn recv_within(capture: &mut Capture, deadline: Duration) -> Frame {
        let until = Instant::now() + deadline;
        loop {
            if let Some(frame) = capture.try_recv() {
                return frame;
            }
            assert!(Instant::now() < until, "no frame within {deadline:?}");
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
        let until = Instant::now() + Duration::from_secs(10);
        while !cond() {
            assert!(Instant::now() < until, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    #[test]
    fn capture_recovers_from_xruns_and_suspends_counting_each_and_loses_no_sample_it_was_given() {
        let (mut fake, log) = Fake::new(&[
            Step::Ok,
            Step::Fail(EPIPE),
            Step::Short,
            Step::Ok,
            Step::Fail(ESTRPIPE),
            Step::Ok,
        ]);
        // The first resume finds the device still asleep, the second works.
        fake.resume_answers = [EAGAIN].into();
        let (pacer, ticks) = ManualPacing::new();
        let mut capture = Capture::start("fake", 10, fake, pacer).unwrap();
        ticks.tick(4);
        let frames: Vec<Frame> = (0..4)
            .map(|_| recv_within(&mut capture, Duration::from_secs(10)))
            .collect();
        let samples: Vec<i16> = frames.concat();
        let expected: Vec<i16> = (0..4 * FRAME_SAMPLES as i16).collect();
        assert_eq!(samples, expected, "a short read is completed, not padded");
        let stats = capture.stats();
        assert_eq!((stats.periods, stats.xruns, stats.suspends), (4, 1, 1));
        assert_eq!(stats.queue_overflows, 0);
        let done = capture.stop().unwrap();
        assert_eq!(done.periods, 4);
        let log = log.lock().unwrap();
        assert_eq!(log.prepares, 1, "only the xrun needs a prepare");
        assert_eq!(log.resumes, 2);
        assert!(log.finished);
    }

    #[test]
    fn a_suspend_that_cannot_resume_is_prepared_afresh() {
        let (mut fake, log) = Fake::new(&[Step::Fail(ESTRPIPE)]);
        fake.resume_answers = [38].into(); // ENOSYS: the driver cannot resume
        let (pacer, ticks) = ManualPacing::new();
        let mut capture = Capture::start("fake", 10, fake, pacer).unwrap();
        ticks.tick(1);
        recv_within(&mut capture, Duration::from_secs(10));
        assert_eq!(capture.stop().unwrap().suspends, 1);
        assert_eq!(log.lock().unwrap().prepares, 1);
    }

    #[test]
    fn a_device_that_xruns_forever_ends_the_stream_with_an_error_naming_it() {
        let (fake, _log) = Fake::new(&[Step::Fail(EPIPE); 200]);
        let (pacer, ticks) = ManualPacing::new();
        let mut capture = Capture::start("hw:9", 10, fake, pacer).unwrap();
        ticks.tick(1);
        wait_for("the stream to give up", || {
            capture
                .worker
                .thread
                .as_ref()
                .is_some_and(|t| t.is_finished())
        });
        assert_eq!(capture.try_recv(), None);
        let err = capture.stop().unwrap_err().to_string();
        assert!(err.contains("hw:9") && err.contains("read"), "{err}");
    }

    #[test]
    fn other_device_errors_end_the_stream_and_reach_the_reader() {
        let (fake, _log) = Fake::new(&[Step::Fail(19)]); // ENODEV: unplugged
        let (pacer, ticks) = ManualPacing::new();
        let mut capture = Capture::start("usb", 10, fake, pacer).unwrap();
        ticks.tick(1);
        let err = capture.read_frame().unwrap_err().to_string();
        assert!(err.contains("usb"), "{err}");
    }

    #[test]
    fn a_slow_reader_loses_the_newest_frames_counted_and_the_device_keeps_running() {
        let (fake, _log) = Fake::new(&[]);
        let (pacer, ticks) = ManualPacing::new();
        let mut capture = Capture::start("fake", 2, fake, pacer).unwrap();
        ticks.tick(5);
        wait_for("five periods", || capture.stats().periods == 5);
        assert_eq!(capture.stats().queue_overflows, 3);
        let first = capture.read_frame().unwrap().unwrap();
        assert_eq!(first[0], 0, "the oldest frames are kept");
    }

    #[test]
    fn playback_recovers_from_an_xrun_and_plays_silence_when_nothing_is_queued() {
        let (fake, log) = Fake::new(&[Step::Ok, Step::Fail(EPIPE), Step::Short, Step::Ok]);
        let (pacer, ticks) = ManualPacing::new();
        let mut playback = Playback::start("fake", 10, fake, pacer).unwrap();
        playback.write_frame(&[1; FRAME_SAMPLES]).unwrap();
        playback.write_frame(&[2; FRAME_SAMPLES]).unwrap();
        ticks.tick(3);
        wait_for("three periods", || playback.stats().periods == 3);
        let stats = playback.stop().unwrap();
        assert_eq!((stats.xruns, stats.queue_underruns), (1, 1));
        let log = log.lock().unwrap();
        let mut expected = vec![1; FRAME_SAMPLES];
        expected.extend([2; FRAME_SAMPLES]);
        expected.extend([0; FRAME_SAMPLES]);
        assert_eq!(log.written, expected);
        assert!(log.finished);
    }

    #[test]
    fn writing_after_the_stream_failed_says_why() {
        let (fake, _log) = Fake::new(&[Step::Fail(19)]);
        let (pacer, ticks) = ManualPacing::new();
        let mut playback = Playback::start("usb-out", 1, fake, pacer).unwrap();
        ticks.tick(1);
        wait_for("the stream to fail", || {
            playback
                .worker
                .thread
                .as_ref()
                .is_some_and(|t| t.is_finished())
        });
        let err = playback.write_frame(&SILENCE).unwrap_err().to_string();
        assert!(err.contains("usb-out") && err.contains("write"), "{err}");
    }

    #[test]
    fn the_blocking_sides_work_in_spawn_blocking_and_the_async_sides_in_tasks() {
        let (fake, log) = Fake::new(&[]);
        let (pacer, ticks) = ManualPacing::new();
        let mut capture = Capture::start("fake-in", 4, fake, pacer).unwrap();
        let (fake_out, log_out) = Fake::new(&[]);
        let (pacer_out, ticks_out) = ManualPacing::new();
        let mut playback = Playback::start("fake-out", 4, fake_out, pacer_out).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        ticks.tick(2);
        let (first, capture) = rt.block_on(async {
            tokio::task::spawn_blocking(move || (capture.read_frame(), capture))
                .await
                .unwrap()
        });
        assert_eq!(first.unwrap().unwrap()[0], 0);
        let mut capture = capture;
        let second = rt.block_on(capture.recv()).unwrap();
        assert_eq!(second[0], FRAME_SAMPLES as i16);

        let playback = rt.block_on(async {
            playback.send([3; FRAME_SAMPLES]).await.unwrap();
            tokio::task::spawn_blocking(move || {
                playback.write_frame(&[4; FRAME_SAMPLES]).unwrap();
                playback
            })
            .await
            .unwrap()
        });
        ticks_out.tick(2);
        wait_for("two periods played", || playback.stats().periods == 2);
        playback.stop().unwrap();
        let mut expected = vec![3; FRAME_SAMPLES];
        expected.extend([4; FRAME_SAMPLES]);
        assert_eq!(log_out.lock().unwrap().written, expected);
        capture.stop().unwrap();
        assert!(log.lock().unwrap().finished);
    }

    #[test]
    fn interval_pacing_runs_periods_20_ms_apart_and_stops_when_asked() {
        let stop = AtomicBool::new(false);
        let mut pacer = IntervalPacing::default();
        let start = Instant::now();
        for _ in 0..6 {
            assert!(pacer.wait_period(&stop));
        }
        // Six periods: the first at once, five more 20 ms apart.
        assert!(start.elapsed() >= PERIOD * 5, "{:?}", start.elapsed());
        stop.store(true, Ordering::Release);
        assert!(!pacer.wait_period(&stop));
    }
}
