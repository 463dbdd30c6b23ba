//! Simulated callers for the demo: now and then a customer calls a branch
//! line, listens to the IVR's menu, presses 2 (DTMF in the call audio, as a
//! phone sends it), leaves a short voicemail and hangs up. The call, the
//! choice and the voicemail then show in that customer's conversation in the
//! desk, beside their texts.
//!
//! The caller is the far end of the simulated modem's call audio
//! ([`SimModem::far_end_play`], [`SimModem::far_end_heard`]); it waits for
//! what it hears with deadlines, and hangs up when the branch does not
//! answer or play anything (the next caller tries again later).

use crate::modem::SimModem;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

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

/// One call from `number` to `modem`: menu, 2, voicemail, hang up.
pub async fn call(modem: &SimModem, number: &str) -> Outcome {
    let before = modem.far_end_heard().len();
    modem.inject_call(number);
    let heard = modem
        .wait_until("the IVR's menu", Duration::from_secs(30), |s| {
            s.far_end_heard()
                .get(before..)
                .is_some_and(|h| h.iter().filter(|x| x.abs() > HEARD).count() > HEARD_SAMPLES)
        })
        .await;
    if let Err(e) = heard {
        modem.remote_hangup();
        return Outcome::NoAnswer(e.to_string());
    }
    // 2, as a phone's keypad sends it: 120 ms of tone, then a pause.
    modem.far_end_play(crossline_audio::dtmf::generate("2", 120, 80, -10.0));
    // The voicemail prompt plays; speak once it has ended (1 s quiet).
    let after_key = modem.far_end_heard().len();
    let quiet = modem
        .wait_until("the voicemail prompt", Duration::from_secs(30), |s| {
            let h = s.far_end_heard();
            let h = h.get(after_key..).unwrap_or_default();
            let played = h.iter().filter(|x| x.abs() > HEARD).count() > HEARD_SAMPLES;
            played
                && h.iter()
                    .rposition(|x| x.abs() > HEARD)
                    .is_some_and(|last| h.len() - last > 8000)
        })
        .await;
    if let Err(e) = quiet {
        modem.remote_hangup();
        return Outcome::NoAnswer(e.to_string());
    }
    modem.far_end_play(message());
    let _ = modem
        .wait_until("the message spoken", Duration::from_secs(30), |s| {
            s.far_end_queued() == 0
        })
        .await;
    modem.remote_hangup();
    Outcome::Voicemail
}

/// Calls `modem` from each of `numbers` in turn: the first call after
/// `first`, then one every `every`, until `stop`.
pub async fn run(
    modem: SimModem,
    numbers: Vec<String>,
    first: Duration,
    every: Duration,
    stop: CancellationToken,
) {
    if numbers.is_empty() {
        return;
    }
    let mut wait = first;
    for number in numbers.iter().cycle() {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
        }
        wait = every;
        let outcome = tokio::select! {
            _ = stop.cancelled() => return,
            o = call(&modem, number) => o,
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
