//! A line's audio through an ALSA device (`voice_alsa` of a `[[modems]]`
//! or `[[fxo]]` line): crossline-audio's capture and playback streams, each
//! on its own thread, 20 ms frames, seen by the rest of the appliance as
//! the same source and sink as a modem's voice port or a line link
//! ([`super::AudioIn`], [`super::AudioOut`]).
//!
//! Opening (alsa-lib's open and hardware parameters) and stopping (the
//! playback drains, the thread is joined) block, so both run in
//! `spawn_blocking`: never on the runtime's threads.

use crossline_audio::alsa::{AlsaConfig, Capture, DevicePacing, IntervalPacing, Playback};
use crossline_audio::pcm::Frame;
use serde::Deserialize;
use std::sync::Arc;
use tokio::sync::Mutex;
use tracing::{debug, warn};

/// How long opening a device may take.
const OPEN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Captured frames queued for a reader that is behind (1 s).
const CAPTURE_QUEUE_FRAMES: usize = 50;

/// What paces a line's ALSA streams (`voice_alsa_pacing`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlsaPacing {
    /// The device (real hardware: a USB modem's audio, a codec): the
    /// default.
    #[default]
    Device,
    /// The monotonic clock, one period every 20 ms: for devices that do not
    /// pace themselves (ALSA's `null` and `file` plugins in a simulator or
    /// a test).
    Clock,
}

/// The ALSA device of one line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlsaLine {
    /// The line's label (for messages).
    pub line: String,
    /// The ALSA PCM name, e.g. `plughw:CARD=Android,DEV=0`.
    pub device: String,
    pub pacing: AlsaPacing,
}

impl AlsaLine {
    /// Opens the device for capture and playback (on a blocking thread).
    /// The error names the line and the device and says what to check.
    pub async fn open(&self) -> Result<(AlsaIn, AlsaOut), String> {
        let me = self.clone();
        let opened = tokio::task::spawn_blocking(move || {
            let config = AlsaConfig::new(me.device.clone());
            // The caller's audio waits up to 1 s for a reader that is
            // behind (a loaded machine) before frames are dropped; it adds
            // no delay otherwise. Playback keeps the default 200 ms (what
            // is queued there is heard that much later).
            let capture_config = AlsaConfig {
                queue_frames: CAPTURE_QUEUE_FRAMES,
                ..config.clone()
            };
            let capture = match me.pacing {
                AlsaPacing::Device => Capture::open(&capture_config, DevicePacing),
                AlsaPacing::Clock => Capture::open(&capture_config, IntervalPacing::default()),
            };
            let capture = capture.map_err(|e| me.cannot_open(&e.to_string()))?;
            let playback = match me.pacing {
                AlsaPacing::Device => Playback::open(&config, DevicePacing),
                AlsaPacing::Clock => Playback::open(&config, IntervalPacing::default()),
            };
            match playback {
                Ok(playback) => Ok((capture, playback)),
                Err(e) => {
                    // The capture side opened: stop it here, off the runtime.
                    let _ = capture.stop();
                    Err(me.cannot_open(&e.to_string()))
                }
            }
        });
        // alsa-lib's open waits while another program holds a hardware
        // device: give up on it here (the thread ends, and drops what it
        // opened, when the open returns).
        let opened = tokio::time::timeout(OPEN_TIMEOUT, opened)
            .await
            .map_err(|_| {
                self.cannot_open(&format!(
                    "it did not open within {OPEN_TIMEOUT:?} (held by another program? `fuser -v /dev/snd/*`)"
                ))
            })?
            .map_err(|e| self.cannot_open(&format!("the opening thread failed: {e}")))?;
        let (capture, playback) = opened?;
        let label = format!("{} ({})", self.line, self.device);
        Ok((
            AlsaIn {
                capture: Some(capture),
                label: label.clone(),
            },
            AlsaOut(Arc::new(OutInner {
                playback: Mutex::new(Some(playback)),
                label,
            })),
        ))
    }

    fn cannot_open(&self, why: &str) -> String {
        format!(
            "line {}: cannot open the ALSA device {:?} for its audio: {why}; check `voice_alsa` against `aplay -L` / `arecord -L` (a plughw: device lets alsa-lib convert to 8 kHz mono), that the card is there (`aplay -l`: USB modem plugged in, audio enabled) and that no other program holds it",
            self.line, self.device
        )
    }
}

/// Stops a stream on a blocking thread when there is a runtime (its drain
/// and join would block one of its threads), else here.
fn stop_off_runtime<T: Send + 'static>(
    label: &str,
    stream: T,
    stop: impl FnOnce(T) -> Result<crossline_audio::alsa::StreamStats, crossline_audio::AudioError>
    + Send
    + 'static,
) {
    let label = label.to_string();
    let run = move || match stop(stream) {
        Ok(stats) => debug!(device = %label, ?stats, "ALSA stream stopped"),
        Err(e) => warn!(device = %label, error = %e, "ALSA stream ended with an error"),
    };
    match tokio::runtime::Handle::try_current() {
        Ok(rt) => {
            rt.spawn_blocking(run);
        }
        Err(_) => run(),
    }
}

/// The captured audio of a line's ALSA device: what the caller says.
#[derive(Debug)]
pub struct AlsaIn {
    capture: Option<Capture>,
    label: String,
}

impl AlsaIn {
    /// The next 20 ms frame; `None` once the stream ended (the device
    /// failed: its error is logged when the stream is stopped).
    pub async fn recv_frame(&mut self) -> Option<Frame> {
        self.capture.as_mut()?.recv().await
    }
}

impl Drop for AlsaIn {
    fn drop(&mut self) {
        if let Some(c) = self.capture.take() {
            stop_off_runtime(&self.label, c, Capture::stop);
        }
    }
}

#[derive(Debug)]
struct OutInner {
    playback: Mutex<Option<Playback>>,
    label: String,
}

impl Drop for OutInner {
    fn drop(&mut self) {
        if let Some(p) = self.playback.get_mut().take() {
            stop_off_runtime(&self.label, p, Playback::stop);
        }
    }
}

/// The playback side of a line's ALSA device: what the caller hears. Its
/// clones share the stream, which stops when the last one is dropped.
#[derive(Debug, Clone)]
pub struct AlsaOut(Arc<OutInner>);

impl AlsaOut {
    /// Queues one frame (waits while 200 ms are queued: the device's pace).
    pub async fn send_frame(&self, frame: Frame) -> Result<(), String> {
        let mut guard = self.0.playback.lock().await;
        match guard.as_mut() {
            Some(p) => p.send(frame).await.map_err(|e| e.to_string()),
            None => Err(format!("the ALSA playback of {} is closed", self.0.label)),
        }
    }
}
