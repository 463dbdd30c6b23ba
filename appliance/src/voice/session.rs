//! One call in the IVR: the driver between the pure engine
//! (`crossline_ivr::Session`) and the call's line.
//!
//! It opens the line's call audio (`LineCtl::audio`: a GSM modem's voice
//! port, an analog line's PCM; the same source and sink of 20 ms frames to
//! the session), plays the
//! prompts the engine asks for (WAV files, 8 kHz mono, one 20 ms frame per
//! 20 ms), feeds the caller's audio to a DTMF detector and the keys to the
//! engine (a key held while a prompt plays stops it at once: barge-in),
//! calls `poll` at the engine's deadline, records voicemail into the
//! recordings spool, logs what the engine reports as call events
//! (`ivr_choice`, `voicemail_recorded`, `callback_requested`) and hangs up
//! when the engine is done. The voice service hands it the call's
//! `call_ended`, which it logs last (after a voicemail cut short by the
//! caller hanging up is kept). All of it is local: the uplink may be down.

use super::line::{AudioIn, AudioOut, LineCtl};
use crate::config::{Config, ModemEntry};
use crate::log::LocalLog;
use crate::recordings::Spool;
use crossline_audio::dtmf::Detector;
use crossline_audio::goertzel::rms_dbm0;
use crossline_audio::pcm::{Frame, SILENCE};
use crossline_audio::wav::{Recorder, read_wav_8k_mono};
use crossline_core::{CallId, EventBody, RecordingId};
use crossline_ivr::{Action, Call, Input, Ivr, IvrEvent, Output, Session};
use crossline_proto::ivr::Action as Step;
use crossline_store::{NewEvent, SqliteStore};
use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::{Instant, MissedTickBehavior};
use tracing::{info, warn};

/// Samples in one 20 ms frame.
const FRAME: usize = crossline_audio::FRAME_SAMPLES;
/// The caller's audio above this level counts as voice (it keeps a
/// voicemail from ending on silence). Line noise is well below it.
const VOICE_DBM0: f32 = -40.0;
/// Played instead of a prompt whose file is missing or unreadable: 200 ms
/// of 1 kHz at -20 dBm0, so the caller hears that something is there.
const MISSING_PROMPT_HZ: f64 = 1000.0;
const MISSING_PROMPT_SAMPLES: usize = 1600;
const MISSING_PROMPT_DBM0: f64 = -20.0;
/// After the IVR's last prompt was handed to the driver, what the driver
/// still queues (at most 200 ms) plays before the hang-up.
const DRAIN_BEFORE_HANGUP: Duration = Duration::from_millis(250);
/// After the IVR hung up (or the caller's audio ended), how long the
/// session waits for the call's end from the voice service.
const WAIT_FOR_END: Duration = Duration::from_secs(10);

/// What an appliance needs to run its IVR on calls: the checked IVR, where
/// its prompts are, the line's languages and where voicemail goes.
#[derive(Debug)]
pub struct IvrSetup {
    pub ivr: Ivr,
    /// `<prompts_dir>/<language>/<prompt>.wav`.
    pub prompts_dir: PathBuf,
    /// Kept voicemail (uploaded to mgmt from there).
    pub spool: Spool,
    /// Where a voicemail is written while it is recorded: the spool's
    /// directory (the same file system, so keeping it is a rename).
    pub recording_dir: PathBuf,
    /// Each line's language (lines without one use the IVR's default).
    pub languages: HashMap<String, String>,
    /// The GSM lines whose call audio is on an ALSA device (`voice_alsa`):
    /// the session opens it for the call.
    pub alsa: HashMap<String, super::AlsaLine>,
}

impl IvrSetup {
    /// The IVR of `cfg` (none when it has none), ready to run.
    pub fn from_config(cfg: &Config) -> anyhow::Result<Option<Arc<Self>>> {
        let Some(settings) = &cfg.ivr else {
            return Ok(None);
        };
        let ivr = Ivr::new(settings.clone())?;
        let mut setup = Self::new(ivr, cfg.prompts_dir(), &cfg.data_dir, &cfg.modems)?;
        setup.languages.extend(
            cfg.fxo
                .iter()
                .filter_map(|f| Some((f.label.clone(), f.language.clone()?))),
        );
        Ok(Some(Arc::new(setup)))
    }

    /// `ivr` with its prompts in `prompts_dir`, voicemail kept in
    /// `<data_dir>/recordings` (the spool), for `lines`.
    pub fn new(
        ivr: Ivr,
        prompts_dir: PathBuf,
        data_dir: &Path,
        lines: &[ModemEntry],
    ) -> anyhow::Result<Self> {
        let spool = Spool::open(data_dir)?;
        Ok(Self {
            ivr,
            prompts_dir,
            spool,
            // Spool::open's directory.
            recording_dir: data_dir.join("recordings"),
            languages: lines
                .iter()
                .filter_map(|m| Some((m.label.clone(), m.language.clone()?)))
                .collect(),
            alsa: lines
                .iter()
                .filter(|m| m.voice_port.is_none())
                .filter_map(|m| Some((m.label.clone(), m.alsa_line()?)))
                .collect(),
        })
    }

    fn prompt_path(&self, language: &str, prompt: &str) -> PathBuf {
        self.prompts_dir
            .join(language)
            .join(format!("{prompt}.wav"))
    }
}

/// What the voice service tells a session.
#[derive(Debug)]
pub(super) enum ToSession {
    /// A key the modem detected (used when the line has no call audio).
    Key(char),
    /// The call ended: its `call_ended`, to log last.
    Ended(EventBody),
}

/// The call a session runs on.
pub(super) struct CallCtx {
    pub line: String,
    pub call: CallId,
    pub caller: Option<String>,
    pub line_ctl: LineCtl,
    pub setup: Arc<IvrSetup>,
    pub log: LocalLog<SqliteStore>,
}

/// A prompt being played.
struct Playing {
    samples: Vec<i16>,
    pos: usize,
}

/// A voicemail being recorded.
struct Recording {
    id: RecordingId,
    path: PathBuf,
    recorder: Recorder,
}

struct Driver {
    ctx: CallCtx,
    session: Session,
    /// The call audio, while it lasts (`None` on a line without audio).
    rx: Option<AudioIn>,
    tx: Option<AudioOut>,
    playing: VecDeque<Playing>,
    detector: Detector,
    /// A key acted on while still held (barge-in): its digit, reported by
    /// the detector when released, is not acted on again.
    fed_early: Option<char>,
    recording: Option<Recording>,
    /// The IVR asked to hang up (and did).
    hung_up: bool,
    /// The call's end, from the voice service.
    ended: Option<EventBody>,
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The `action` of an `ivr_choice` event.
fn action_name(step: &Step) -> String {
    match step {
        Step::Menu { menu } => format!("menu:{menu}"),
        Step::Voicemail => "voicemail".into(),
        Step::Callback => "callback".into(),
        Step::HangUp { .. } => "hangup".into(),
    }
}

/// Runs the IVR on an answered call until the call has ended and its end
/// is logged (or the voice service is gone). Fails only when the local log
/// cannot be written.
pub(super) async fn run(
    ctx: CallCtx,
    mut msgs: mpsc::UnboundedReceiver<ToSession>,
) -> anyhow::Result<()> {
    let (rx, tx) = match ctx.line_ctl.audio(ctx.setup.alsa.get(&ctx.line)).await {
        Ok((rx, tx)) => (Some(rx), Some(tx)),
        Err(e) => {
            warn!(line = %ctx.line, call = %ctx.call, error = %e,
                "no call audio on this line: the IVR runs without prompts, on the keys the line's driver detects (a GSM modem's; an analog line has none)");
            (None, None)
        }
    };
    let language = ctx.setup.languages.get(&ctx.line).cloned();
    let (session, first) = ctx.setup.ivr.start(
        Call {
            caller: ctx.caller.clone(),
            language,
        },
        now_ms(),
    );
    info!(line = %ctx.line, call = %ctx.call, language = session.language(), "call in the IVR");
    let mut d = Driver {
        ctx,
        session,
        rx,
        tx,
        playing: VecDeque::new(),
        detector: Detector::new(),
        fed_early: None,
        recording: None,
        hung_up: false,
        ended: None,
    };
    let r = d.drive(first, &mut msgs).await;
    // Whatever stopped the session, a voicemail being recorded is kept.
    let r2 = if d.session.is_done() {
        d.stop_recording().await
    } else {
        let out = d.session.input(Input::HangUp, now_ms());
        d.handle(out).await
    };
    // The end may be waiting: take it, or let the voice service log it.
    msgs.close();
    while let Ok(m) = msgs.try_recv() {
        if let ToSession::Ended(end) = m {
            d.ended = Some(end);
        }
    }
    if let Some(end) = d.ended.take() {
        d.log(end).await?;
    }
    r.and(r2)
}

impl Driver {
    async fn drive(
        &mut self,
        first: Vec<Output>,
        msgs: &mut mpsc::UnboundedReceiver<ToSession>,
    ) -> anyhow::Result<()> {
        self.handle(first).await?;
        let mut tick = tokio::time::interval(Duration::from_millis(20));
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        // Once the IVR is done or the caller's audio is gone: the call's
        // end should follow soon.
        let mut give_up: Option<Instant> = None;
        loop {
            if give_up.is_none() && (self.session.is_done() || self.hung_up) {
                give_up = Some(Instant::now() + WAIT_FOR_END);
            }
            let deadline = self
                .session
                .deadline()
                .map(|t| Instant::now() + Duration::from_millis(t.saturating_sub(now_ms())));
            let far = Instant::now() + Duration::from_secs(3600);
            tokio::select! {
                m = msgs.recv() => match m {
                    Some(ToSession::Key(k)) => {
                        if self.rx.is_none() {
                            let out = self.session.input(Input::Digit(k), now_ms());
                            self.handle(out).await?;
                        }
                    }
                    Some(ToSession::Ended(end)) => {
                        self.ended = Some(end);
                        return Ok(());
                    }
                    // The voice service stopped.
                    None => return Ok(()),
                },
                f = async { self.rx.as_mut()?.recv_frame().await }, if self.rx.is_some() => match f {
                    Some(frame) => self.on_frame(&frame).await?,
                    None => {
                        // The call's audio ended: the call is over (the
                        // caller hung up or the line went); its end
                        // follows from the voice service.
                        self.rx = None;
                        self.tx = None;
                        if !self.session.is_done() {
                            let out = self.session.input(Input::HangUp, now_ms());
                            self.handle(out).await?;
                        }
                        give_up.get_or_insert(Instant::now() + WAIT_FOR_END);
                    }
                },
                _ = tick.tick(), if self.tx.is_some() && !self.hung_up => self.send_frame().await?,
                _ = tokio::time::sleep_until(deadline.unwrap_or(far)), if deadline.is_some() => {
                    let out = self.session.poll(now_ms());
                    self.handle(out).await?;
                }
                _ = tokio::time::sleep_until(give_up.unwrap_or(far)), if give_up.is_some() => {
                    warn!(line = %self.ctx.line, call = %self.ctx.call,
                        "the IVR is done but the call's end did not come; the voice service logs it when it does");
                    return Ok(());
                }
            }
        }
    }

    /// One frame of the caller's audio.
    async fn on_frame(&mut self, frame: &Frame) -> anyhow::Result<()> {
        if let Some(r) = &mut self.recording
            && let Err(e) = r.recorder.write(frame)
        {
            warn!(line = %self.ctx.line, call = %self.ctx.call, recording = %r.id, error = %e,
                "cannot write the voicemail; what was recorded is kept");
            self.stop_recording().await?;
        }
        if self.recording.is_some() && rms_dbm0(frame) > VOICE_DBM0 {
            let out = self.session.input(Input::Voice, now_ms());
            self.handle(out).await?;
        }
        let mut keys = Vec::new();
        for digit in self.detector.push(frame) {
            if self.fed_early == Some(digit.key) {
                self.fed_early = None;
            } else {
                keys.push(digit.key);
            }
        }
        if self.fed_early.is_none()
            && let Some(k) = self.detector.pressed()
        {
            // Acted on while still held: a prompt stops at once.
            self.fed_early = Some(k);
            keys.push(k);
        }
        for k in keys {
            info!(line = %self.ctx.line, call = %self.ctx.call, key = %k, "DTMF key from the caller");
            let out = self.session.input(Input::Digit(k), now_ms());
            self.handle(out).await?;
        }
        Ok(())
    }

    /// The next 20 ms of what the caller hears: the prompt playing, or
    /// silence.
    async fn send_frame(&mut self) -> anyhow::Result<()> {
        let mut frame = SILENCE;
        let mut done = false;
        if let Some(p) = self.playing.front_mut() {
            let end = (p.pos + FRAME).min(p.samples.len());
            if let Some(chunk) = p.samples.get(p.pos..end) {
                frame[..chunk.len()].copy_from_slice(chunk);
            }
            p.pos = end;
            if p.pos >= p.samples.len() {
                self.playing.pop_front();
                done = true;
            }
        }
        if let Some(tx) = &self.tx
            && tx.send_frame(frame).await.is_err()
        {
            // The call is over; its end follows.
            self.tx = None;
        }
        if done {
            let out = self.session.input(Input::PromptDone, now_ms());
            self.handle(out).await?;
        }
        Ok(())
    }

    /// Acts on the engine's outputs, in order (and on those that follow
    /// from them on a line without audio).
    async fn handle(&mut self, out: Vec<Output>) -> anyhow::Result<()> {
        let mut queue: VecDeque<Output> = out.into();
        while let Some(o) = queue.pop_front() {
            match o {
                Output::Log(ev) => self.log_ivr(ev).await?,
                Output::Do(Action::Play { prompt, language }) => {
                    if self.tx.is_some() {
                        let samples = self.load_prompt(&language, &prompt);
                        self.playing.push_back(Playing { samples, pos: 0 });
                    } else {
                        // Nothing to play it on: it is done at once.
                        queue.extend(self.session.input(Input::PromptDone, now_ms()));
                    }
                }
                Output::Do(Action::StopPlayback) => self.playing.clear(),
                Output::Do(Action::StartRecording { max_ms }) => self.start_recording(max_ms),
                Output::Do(Action::StopRecording) => self.stop_recording().await?,
                Output::Do(Action::HangUp) => self.hang_up().await,
            }
        }
        Ok(())
    }

    /// The prompt's audio, or a short beep (with a warning) when its file
    /// is missing or unreadable: the call goes on either way.
    fn load_prompt(&self, language: &str, prompt: &str) -> Vec<i16> {
        let path = self.ctx.setup.prompt_path(language, prompt);
        match read_wav_8k_mono(&path) {
            Ok(samples) => samples,
            Err(e) => {
                warn!(line = %self.ctx.line, call = %self.ctx.call, prompt, language,
                    file = %path.display(), error = %e,
                    "IVR prompt missing or unreadable; a short beep instead");
                missing_prompt()
            }
        }
    }

    fn start_recording(&mut self, max_ms: u64) {
        let id = RecordingId::new();
        let path = self.ctx.setup.recording_dir.join(format!("{id}.wav.part"));
        match Recorder::create(&path) {
            Ok(recorder) => {
                info!(line = %self.ctx.line, call = %self.ctx.call, recording = %id, max_ms, "recording voicemail");
                self.recording = Some(Recording { id, path, recorder });
            }
            Err(e) => {
                warn!(line = %self.ctx.line, call = %self.ctx.call, file = %path.display(), error = %e,
                    "cannot record the voicemail; the call goes on without it");
            }
        }
    }

    /// Finishes the voicemail being recorded (if any), keeps it in the
    /// spool and logs `voicemail_recorded`.
    async fn stop_recording(&mut self) -> anyhow::Result<()> {
        let Some(Recording { id, path, recorder }) = self.recording.take() else {
            return Ok(());
        };
        let spool = self.ctx.setup.spool.clone();
        let kept = tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
            let samples = recorder.finish()?;
            let kept = spool.keep(id, &path)?;
            Ok((samples, kept))
        })
        .await
        .map_err(|e| anyhow::anyhow!("keeping the voicemail failed: {e}"))
        .and_then(|r| r);
        match kept {
            Ok((samples, kept)) => {
                let duration_ms = samples * 1000 / u64::from(crossline_audio::SAMPLE_RATE);
                info!(line = %self.ctx.line, call = %self.ctx.call, recording = %id, duration_ms, bytes = kept.bytes, "voicemail kept");
                self.log(EventBody::VoicemailRecorded {
                    call: self.ctx.call,
                    recording: id,
                    duration_ms,
                    bytes: kept.bytes,
                    sha256: kept.sha256,
                })
                .await
            }
            Err(e) => {
                warn!(line = %self.ctx.line, call = %self.ctx.call, recording = %id, error = %format!("{e:#}"),
                    "the voicemail could not be kept");
                Ok(())
            }
        }
    }

    async fn hang_up(&mut self) {
        if self.hung_up {
            return;
        }
        self.hung_up = true;
        if self.tx.is_some() {
            tokio::time::sleep(DRAIN_BEFORE_HANGUP).await;
        }
        info!(line = %self.ctx.line, call = %self.ctx.call, "the IVR hangs up");
        if let Err(e) = self.ctx.line_ctl.hang_up().await {
            warn!(line = %self.ctx.line, call = %self.ctx.call, error = %e, "could not hang up the call");
        }
    }

    /// Logs what the engine reports: choices and callback requests as call
    /// events, the rest in the appliance's own log.
    async fn log_ivr(&mut self, ev: IvrEvent) -> anyhow::Result<()> {
        let (line, call) = (&self.ctx.line, self.ctx.call);
        let settings = self.ctx.setup.ivr.settings();
        let body = match ev {
            IvrEvent::Choice { menu, key } => {
                let action = settings
                    .menus
                    .get(&menu)
                    .and_then(|m| m.options.get(&key))
                    .map_or_else(|| "unknown".into(), action_name);
                info!(%line, %call, menu, key = %key, action, "IVR choice");
                EventBody::IvrChoice {
                    call,
                    menu,
                    digit: key.to_string(),
                    action,
                }
            }
            IvrEvent::Default { menu } => {
                let action = settings
                    .menus
                    .get(&menu)
                    .map_or_else(|| "hangup".into(), |m| action_name(&m.default));
                info!(%line, %call, menu, action, "IVR: no choice, the menu's default");
                EventBody::IvrChoice {
                    call,
                    menu,
                    digit: String::new(),
                    action,
                }
            }
            IvrEvent::CallbackRequested { number } => {
                info!(%line, %call, number = number.as_deref().unwrap_or("(none)"), "callback requested");
                EventBody::CallbackRequested {
                    call,
                    number: number.unwrap_or_default(),
                }
            }
            other => {
                info!(%line, %call, event = ?other, "IVR");
                return Ok(());
            }
        };
        self.log(body).await
    }

    async fn log(&self, body: EventBody) -> anyhow::Result<()> {
        let kind = body.kind();
        self.ctx
            .log
            .append(vec![NewEvent {
                conversation: None,
                body,
            }])
            .await
            .map_err(|e| {
                anyhow::anyhow!(
                    "cannot log {kind} of call {} on line {} in the local log: {e}",
                    self.ctx.call,
                    self.ctx.line
                )
            })?;
        Ok(())
    }
}

/// What plays instead of a missing prompt.
fn missing_prompt() -> Vec<i16> {
    crossline_audio::tones::mix(
        &[(MISSING_PROMPT_HZ, MISSING_PROMPT_DBM0)],
        MISSING_PROMPT_SAMPLES,
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crossline_audio::goertzel::peak_frequency;

    #[test]
    fn a_missing_prompt_is_a_short_beep() {
        let beep = missing_prompt();
        assert_eq!(beep.len(), 1600, "200 ms");
        let (hz, level) = peak_frequency(&beep, 200.0, 3400.0).unwrap();
        assert!(
            (hz - 1000.0).abs() < 10.0 && (level + 20.0).abs() < 1.0,
            "{hz} Hz {level} dBm0"
        );
    }

    #[test]
    fn choices_name_what_they_do() {
        assert_eq!(action_name(&Step::Voicemail), "voicemail");
        assert_eq!(action_name(&Step::Callback), "callback");
        assert_eq!(
            action_name(&Step::Menu {
                menu: "sales".into()
            }),
            "menu:sales"
        );
        assert_eq!(action_name(&Step::HangUp { prompt: None }), "hangup");
    }
}
