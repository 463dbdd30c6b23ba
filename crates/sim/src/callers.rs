//! Simulated callers for the demo: now and then a customer calls a branch
//! line, listens to the IVR's menu, presses 2 (DTMF in the call audio, as a
//! phone sends it), leaves a short voicemail and hangs up. The call, the
//! choice and the voicemail then show in that customer's conversation in the
//! desk, beside their texts.
//!
//! The caller is the far end of a branch line's call audio: a simulated GSM
//! modem's ([`SimModem::far_end_play`], [`SimModem::far_end_heard`]) or a
//! simulated analog line's ([`SharedSimLine`]: ring cadence, caller ID
//! between the rings, loop-current drop at the hang-up), both behind
//! [`FarEnd`]. It waits for what it hears with deadlines, and hangs up when
//! the branch does not answer or play anything (the next caller tries
//! again later).

use crate::line::{IncomingCall, SharedSimLine};
use crate::modem::SimModem;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// The caller's end of a branch line: what a simulated caller does and hears.
pub trait FarEnd {
    /// Rings the branch from `number` (with caller ID).
    fn ring(&self, number: &str);
    /// How many samples the far end has heard so far (all calls).
    fn heard_len(&self) -> usize;
    /// `f` over what the far end heard from sample `from` on.
    fn heard_since(&self, from: usize, f: &mut dyn FnMut(&[i16]) -> bool) -> bool;
    /// Says `pcm` into the call (8 kHz mono), after what is still queued.
    fn play(&self, pcm: Vec<i16>);
    /// Samples still waiting to be said.
    fn queued(&self) -> usize;
    /// Hangs up (or gives up ringing).
    fn hang_up(&self);
}

impl FarEnd for SimModem {
    fn ring(&self, number: &str) {
        self.inject_call(number);
    }
    fn heard_len(&self) -> usize {
        self.far_end_heard().len()
    }
    fn heard_since(&self, from: usize, f: &mut dyn FnMut(&[i16]) -> bool) -> bool {
        f(self.far_end_heard().get(from..).unwrap_or_default())
    }
    fn play(&self, pcm: Vec<i16>) {
        self.far_end_play(pcm);
    }
    fn queued(&self) -> usize {
        self.far_end_queued()
    }
    fn hang_up(&self) {
        self.remote_hangup();
    }
}

/// The exchange rings the analog line with the caller's number as caller
/// ID (in the standard the simulated exchange was made with); the caller
/// gives up after a minute of ringing.
impl FarEnd for SharedSimLine {
    fn ring(&self, number: &str) {
        let mut call = IncomingCall::from_number(number);
        call.give_up_after = Some(Duration::from_secs(60));
        self.with(|l, now| l.place_call(now, call));
    }
    fn heard_len(&self) -> usize {
        self.with(|l, _| l.heard().len())
    }
    fn heard_since(&self, from: usize, f: &mut dyn FnMut(&[i16]) -> bool) -> bool {
        self.with(|l, _| f(l.heard().get(from..).unwrap_or_default()))
    }
    fn play(&self, pcm: Vec<i16>) {
        self.with(|l, _| l.far_end_play(pcm));
    }
    fn queued(&self) -> usize {
        self.with(|l, _| l.far_end_queued())
    }
    fn hang_up(&self) {
        self.with(|l, now| {
            l.give_up(now);
            l.far_end_hang_up(now);
        });
    }
}

/// Waits until `cond` holds, checking every 20 ms (one audio frame), for at
/// most `within`.
async fn wait_until(
    what: &str,
    within: Duration,
    mut cond: impl FnMut() -> bool,
) -> Result<(), String> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if cond() {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(format!("{what}: not within {within:?}"));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Louder than this in the far end's audio counts as hearing a prompt.
const HEARD: i16 = 1000;
/// Samples over [`HEARD`] that make "the menu is playing" (50 ms at 8 kHz).
const HEARD_SAMPLES: usize = 400;

/// What one simulated call did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Menu heard, 2 pressed, a voicemail left.
    Voicemail,
    /// Nobody answered or no prompt was heard in time: hung up.
    NoAnswer(String),
}

/// The voicemail a simulated caller leaves: a short rising and falling hum
/// (tones stand in for a voice), then a breath of silence.
fn message() -> Vec<i16> {
    let mut out = Vec::new();
    for (hz, ms) in [(440.0, 400), (550.0, 400), (660.0, 600), (550.0, 400)] {
        // -12 dBm0: clearly audible, far from clipping.
        out.extend(crossline_audio::tones::mix(&[(hz, -12.0)], 8 * ms));
    }
    out.extend(std::iter::repeat_n(0, 4000));
    out
}

/// Writes a short beep (300 ms of 1 kHz) as every prompt of an IVR,
/// `<dir>/<language>/<id>.wav` (8 kHz mono), for a demo without espeak-ng.
pub fn beep_prompts(
    dir: &std::path::Path,
    languages: &[String],
    ids: &[String],
) -> Result<(), crossline_audio::AudioError> {
    let beep = crossline_audio::tones::mix(&[(1000.0, -12.0)], 2400);
    for lang in languages {
        let d = dir.join(lang);
        std::fs::create_dir_all(&d).map_err(|source| crossline_audio::AudioError::Io {
            action: "cannot create",
            path: d.clone(),
            source,
        })?;
        for id in ids {
            let mut w = crossline_audio::wav::Recorder::create(d.join(format!("{id}.wav")))?;
            w.write(&beep)?;
            w.finish()?;
        }
    }
    Ok(())
}

/// One call from `number` to the branch line behind `phone`: menu, 2,
/// voicemail, hang up.
pub async fn call(phone: &(impl FarEnd + ?Sized), number: &str) -> Outcome {
    let loud = |h: &[i16]| h.iter().filter(|x| x.abs() > HEARD).count() > HEARD_SAMPLES;
    let before = phone.heard_len();
    phone.ring(number);
    let heard = wait_until("the IVR's menu", Duration::from_secs(40), || {
        phone.heard_since(before, &mut |h| loud(h))
    })
    .await;
    if let Err(e) = heard {
        phone.hang_up();
        return Outcome::NoAnswer(e);
    }
    // 2, as a phone's keypad sends it: 120 ms of tone, then a pause.
    phone.play(crossline_audio::dtmf::generate("2", 120, 80, -10.0));
    // The voicemail prompt plays; speak once it has ended (1 s quiet).
    let after_key = phone.heard_len();
    let quiet = wait_until("the voicemail prompt", Duration::from_secs(30), || {
        phone.heard_since(after_key, &mut |h| {
            loud(h)
                && h.iter()
                    .rposition(|x| x.abs() > HEARD)
                    .is_some_and(|last| h.len() - last > 8000)
        })
    })
    .await;
    if let Err(e) = quiet {
        phone.hang_up();
        return Outcome::NoAnswer(e);
    }
    phone.play(message());
    let _ = wait_until("the message spoken", Duration::from_secs(30), || {
        phone.queued() == 0
    })
    .await;
    phone.hang_up();
    Outcome::Voicemail
}

/// When a caller rings: the first call `first` after the start, the second
/// `second` after the start, then one every `every` (each counted from the
/// start, so two callers with the same `every` keep their distance; a call
/// that runs past its successor's time delays it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schedule {
    pub first: Duration,
    pub second: Duration,
    pub every: Duration,
}

impl Schedule {
    /// The `n`th call's time after the start (0-based).
    pub fn at(&self, n: u32) -> Duration {
        match n {
            0 => self.first,
            n => self.second + self.every * (n - 1),
        }
    }
}

/// Calls the line behind `phone` from each of `numbers` in turn, at the
/// times of `schedule`, until `stop`.
pub async fn run<P: FarEnd + Send + Sync>(
    phone: P,
    numbers: Vec<String>,
    schedule: Schedule,
    stop: CancellationToken,
) {
    if numbers.is_empty() {
        return;
    }
    let start = tokio::time::Instant::now();
    for (n, number) in (0u32..).zip(numbers.iter().cycle()) {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep_until(start + schedule.at(n)) => {}
        }
        let outcome = tokio::select! {
            _ = stop.cancelled() => return,
            o = call(&phone, number) => o,
        };
        match outcome {
            Outcome::Voicemail => {
                tracing::info!(caller = %number, "simulated caller left a voicemail")
            }
            Outcome::NoAnswer(why) => {
                tracing::warn!(caller = %number, reason = %why, "simulated caller hung up without a voicemail")
            }
        }
    }
}
