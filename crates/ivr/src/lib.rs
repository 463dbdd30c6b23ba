//! The branch IVR: menus, DTMF navigation, timeouts and retries,
//! business-hours branches, voicemail and callback requests.
//!
//! Pure and deterministic, like the routing engine: the call driver passes
//! the time (ms since the epoch) with every [`Input`] and calls
//! [`Session::poll`] when [`Session::deadline`] has passed; the session
//! answers with [`Output`]s: [`Do`](Output::Do) an [`Action`] (play a prompt,
//! start or stop recording, hang up) and [`Log`](Output::Log) an [`IvrEvent`]
//! (for the appliance's event log, which syncs to mgmt whenever the uplink
//! is up). Nothing here touches audio, lines or the network, so the IVR
//! works the same with the uplink down. See docs/IVR.md.
//!
//! ```
//! use crossline_ivr::{Action, Call, Input, Ivr, Output};
//! let settings = serde_json::from_str(include_str!("../../../docs/ivr-demo.json")).unwrap();
//! let ivr = Ivr::new(settings).unwrap();
//! // Monday 2026-12-07 10:00 in Kyiv: open.
//! let t0 = 1_796_630_400_000;
//! let (mut call, out) = ivr.start(Call { caller: Some("+380501234567".into()), language: Some("uk".into()) }, t0);
//! assert!(out.contains(&Output::Do(Action::Play { prompt: "main".into(), language: "uk".into() })));
//! let out = call.input(Input::Digit('2'), t0 + 1_000);
//! assert!(out.contains(&Output::Do(Action::Play { prompt: "voicemail".into(), language: "uk".into() })));
//! ```

use crossline_core::routing::Calendar;
use crossline_proto::ivr::{Action as Step, IvrSettings, Menu};
use std::sync::Arc;

/// Why an IVR configuration cannot run.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct IvrError(String);

/// A checked IVR configuration; [`Ivr::start`] runs it for one call.
#[derive(Debug, Clone)]
pub struct Ivr {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    settings: IvrSettings,
    calendar: Option<Calendar>,
}

/// What the driver knows of a call when it reaches the IVR.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Call {
    /// The caller's number (caller ID), if the line gave one.
    pub caller: Option<String>,
    /// The line's language (or the customer's); prompts fall back to the
    /// IVR's default language.
    pub language: Option<String>,
}

/// What the driver tells the session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Input {
    /// A DTMF key detected in the caller's audio.
    Digit(char),
    /// One [`Action::Play`] finished playing (once per play, in order).
    PromptDone,
    /// The caller's audio had voice in it (sent while recording, at most
    /// once a frame): it keeps a voicemail from ending on silence.
    Voice,
    /// The caller hung up (or the line dropped).
    HangUp,
}

/// What the driver does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Play the prompt's WAV in this language after what is already queued;
    /// answer [`Input::PromptDone`] when it has played.
    Play { prompt: String, language: String },
    /// Stop playing and drop the queued prompts (a key barged in); no
    /// [`Input::PromptDone`] for them.
    StopPlayback,
    /// Start recording the caller (voicemail) for at most `max_ms`.
    StartRecording { max_ms: u64 },
    /// Stop recording and keep the file (the driver fixes its header, hashes
    /// it and logs the voicemail with its size and sha256).
    StopRecording,
    /// Hang up the call.
    HangUp,
}

/// Why a voicemail ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VoicemailEnd {
    /// The caller pressed `#`.
    Key,
    /// No voice for the configured `silence_s`.
    Silence,
    /// The configured `max_s` was reached.
    MaxLength,
    /// The caller hung up.
    HangUp,
}

impl VoicemailEnd {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Key => "key",
            Self::Silence => "silence",
            Self::MaxLength => "max_length",
            Self::HangUp => "hang_up",
        }
    }
}

/// What happened, for the event log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IvrEvent {
    /// The call entered a menu (`out_of_hours` for the first menu of a call
    /// outside business hours).
    Entered {
        menu: String,
        out_of_hours: bool,
    },
    /// The caller pressed a key the menu has.
    Choice {
        menu: String,
        key: char,
    },
    /// A key the menu does not have.
    Invalid {
        menu: String,
        key: char,
    },
    /// No key within the menu's timeout.
    NoInput {
        menu: String,
    },
    /// Retries exhausted: the menu's default was taken.
    Default {
        menu: String,
    },
    VoicemailStarted,
    VoicemailEnded {
        duration_ms: u64,
        by: VoicemailEnd,
    },
    /// A callback was requested (`number` is `None` without caller ID).
    CallbackRequested {
        number: Option<String>,
    },
    /// The caller hung up before the IVR was done.
    CallerHungUp,
}

/// One output of the session, in the order the driver must act on them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    Do(Action),
    Log(IvrEvent),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    /// Playing a menu's prompts; then waiting for a key.
    Menu {
        menu: String,
        retries: u32,
        /// Set once the prompts have played: when the wait ends.
        wait_until: Option<u64>,
    },
    /// Playing the voicemail prompt; recording starts after it.
    VoicemailIntro,
    Recording {
        started: u64,
        last_voice: u64,
    },
    /// Playing a last prompt; hang up after it.
    Closing,
    Done,
}

/// One call in the IVR.
#[derive(Debug, Clone)]
pub struct Session {
    ivr: Ivr,
    call: Call,
    language: String,
    state: State,
    /// Plays sent and not yet answered by [`Input::PromptDone`].
    playing: u32,
}

impl Ivr {
    /// Checks `settings` (as mgmt and the appliance do before applying them).
    pub fn new(settings: IvrSettings) -> Result<Self, IvrError> {
        settings.check().map_err(IvrError)?;
        let calendar = match &settings.hours {
            Some(h) => Some(Calendar::new(h).map_err(|e| IvrError(format!("ivr: hours: {e}")))?),
            None => None,
        };
        Ok(Self {
            inner: Arc::new(Inner { settings, calendar }),
        })
    }

    pub fn settings(&self) -> &IvrSettings {
        &self.inner.settings
    }

    /// Whether `now_ms` is within business hours (always, without hours).
    pub fn is_open(&self, now_ms: u64) -> bool {
        self.inner
            .calendar
            .as_ref()
            .is_none_or(|c| c.is_open(now_ms))
    }

    /// A call reaches the IVR (answered): it starts in the entry menu, or in
    /// the closed one outside business hours.
    pub fn start(&self, call: Call, now_ms: u64) -> (Session, Vec<Output>) {
        let s = &self.inner.settings;
        let language = call
            .language
            .as_ref()
            .filter(|l| s.languages.contains(l))
            .cloned()
            .unwrap_or_else(|| s.default_language.clone());
        let (menu, out_of_hours) = match &s.closed_entry {
            Some(c) if !self.is_open(now_ms) => (c.clone(), true),
            _ => (s.entry.clone(), false),
        };
        let mut session = Session {
            ivr: self.clone(),
            call,
            language,
            state: State::Done,
            playing: 0,
        };
        let mut out = Vec::new();
        session.enter(menu, out_of_hours, &mut out);
        (session, out)
    }
}

impl Session {
    /// The language the prompts are played in.
    pub fn language(&self) -> &str {
        &self.language
    }

    /// The IVR is done with the call (it hung up, or the caller did).
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// When [`Session::poll`] must be called next, if the session waits for
    /// time to pass.
    pub fn deadline(&self) -> Option<u64> {
        match &self.state {
            State::Menu { wait_until, .. } => *wait_until,
            State::Recording {
                started,
                last_voice,
            } => Some(self.recording_deadline(*started, *last_voice).0),
            _ => None,
        }
    }

    /// Acts on the passing of time (a key not pressed, silence, the longest
    /// voicemail reached). Calling it early does nothing.
    pub fn poll(&mut self, now_ms: u64) -> Vec<Output> {
        let mut out = Vec::new();
        match self.state.clone() {
            State::Menu {
                menu,
                retries,
                wait_until: Some(t),
            } if now_ms >= t => {
                out.push(Output::Log(IvrEvent::NoInput { menu: menu.clone() }));
                let m = self.menu(&menu);
                let again = m.and_then(|m| m.no_input_prompt.clone());
                self.retry_or_default(menu, retries, again, now_ms, &mut out);
            }
            State::Recording {
                started,
                last_voice,
            } => {
                let (t, by) = self.recording_deadline(started, last_voice);
                if now_ms >= t {
                    self.end_recording(started, now_ms, by, &mut out);
                }
            }
            _ => {}
        }
        out
    }

    /// Acts on what the driver saw or heard.
    pub fn input(&mut self, input: Input, now_ms: u64) -> Vec<Output> {
        let mut out = Vec::new();
        match input {
            Input::HangUp => self.caller_hung_up(now_ms, &mut out),
            Input::PromptDone => {
                self.playing = self.playing.saturating_sub(1);
                if self.playing == 0 {
                    self.prompts_played(now_ms, &mut out);
                }
            }
            Input::Voice => {
                if let State::Recording { last_voice, .. } = &mut self.state {
                    *last_voice = now_ms;
                }
            }
            Input::Digit(key) => self.key(key, now_ms, &mut out),
        }
        out
    }

    fn menu(&self, name: &str) -> Option<&Menu> {
        self.ivr.inner.settings.menus.get(name)
    }

    fn play(&mut self, prompt: &str, out: &mut Vec<Output>) {
        self.playing += 1;
        out.push(Output::Do(Action::Play {
            prompt: prompt.to_owned(),
            language: self.language.clone(),
        }));
    }

    fn stop_playback(&mut self, out: &mut Vec<Output>) {
        if self.playing > 0 {
            self.playing = 0;
            out.push(Output::Do(Action::StopPlayback));
        }
    }

    fn enter(&mut self, menu: String, out_of_hours: bool, out: &mut Vec<Output>) {
        out.push(Output::Log(IvrEvent::Entered {
            menu: menu.clone(),
            out_of_hours,
        }));
        self.show(menu, 0, None, out);
    }

    /// Plays `before` (if any) and the menu's prompt, then waits for a key.
    fn show(&mut self, menu: String, retries: u32, before: Option<String>, out: &mut Vec<Output>) {
        let Some(prompt) = self.menu(&menu).map(|m| m.prompt.clone()) else {
            // Checked configurations name existing menus only.
            self.hang_up(out);
            return;
        };
        if let Some(b) = before {
            self.play(&b, out);
        }
        self.play(&prompt, out);
        self.state = State::Menu {
            menu,
            retries,
            wait_until: None,
        };
    }

    fn retry_or_default(
        &mut self,
        menu: String,
        retries: u32,
        before: Option<String>,
        now_ms: u64,
        out: &mut Vec<Output>,
    ) {
        let Some(m) = self.menu(&menu) else {
            self.hang_up(out);
            return;
        };
        if retries < m.retries {
            self.show(menu, retries + 1, before, out);
        } else {
            let default = m.default.clone();
            out.push(Output::Log(IvrEvent::Default { menu }));
            self.act(default, now_ms, out);
        }
    }

    fn prompts_played(&mut self, now_ms: u64, out: &mut Vec<Output>) {
        match &mut self.state {
            State::Menu {
                menu, wait_until, ..
            } => {
                let timeout_s = self
                    .ivr
                    .inner
                    .settings
                    .menus
                    .get(menu.as_str())
                    .map_or(5, |m| m.timeout_s);
                *wait_until = Some(now_ms.saturating_add(u64::from(timeout_s) * 1000));
            }
            State::VoicemailIntro => self.start_recording(now_ms, out),
            State::Closing => self.hang_up(out),
            State::Recording { .. } | State::Done => {}
        }
    }

    fn key(&mut self, key: char, now_ms: u64, out: &mut Vec<Output>) {
        match self.state.clone() {
            State::Menu { menu, retries, .. } => {
                self.stop_playback(out);
                let chosen = self.menu(&menu).and_then(|m| m.options.get(&key).cloned());
                match chosen {
                    Some(step) => {
                        out.push(Output::Log(IvrEvent::Choice { menu, key }));
                        self.act(step, now_ms, out);
                    }
                    None => {
                        out.push(Output::Log(IvrEvent::Invalid {
                            menu: menu.clone(),
                            key,
                        }));
                        let again = self.menu(&menu).and_then(|m| m.invalid_prompt.clone());
                        self.retry_or_default(menu, retries, again, now_ms, out);
                    }
                }
            }
            State::Recording { started, .. } if key == '#' => {
                self.end_recording(started, now_ms, VoicemailEnd::Key, out);
            }
            // Keys during the voicemail prompt, the recording (but `#`) and
            // the last prompt are part of what the caller says, not choices.
            _ => {}
        }
    }

    fn act(&mut self, step: Step, now_ms: u64, out: &mut Vec<Output>) {
        let ivr = self.ivr.clone();
        let s = &ivr.inner.settings;
        match step {
            Step::Menu { menu } => self.enter(menu, false, out),
            Step::Voicemail => {
                let prompt = s.voicemail.prompt.clone();
                self.state = State::VoicemailIntro;
                match prompt {
                    Some(p) => self.play(&p, out),
                    None => self.start_recording(now_ms, out),
                }
            }
            Step::Callback => {
                let number = self.call.caller.clone();
                let prompt = if number.is_some() {
                    s.callback.prompt.clone()
                } else {
                    s.callback.no_number_prompt.clone()
                };
                out.push(Output::Log(IvrEvent::CallbackRequested { number }));
                self.close_with(prompt, out);
            }
            Step::HangUp { prompt } => self.close_with(prompt, out),
        }
    }

    fn close_with(&mut self, prompt: Option<String>, out: &mut Vec<Output>) {
        match prompt {
            Some(p) => {
                self.play(&p, out);
                self.state = State::Closing;
            }
            None => self.hang_up(out),
        }
    }

    fn start_recording(&mut self, now_ms: u64, out: &mut Vec<Output>) {
        out.push(Output::Log(IvrEvent::VoicemailStarted));
        out.push(Output::Do(Action::StartRecording {
            max_ms: u64::from(self.ivr.inner.settings.voicemail.max_s) * 1000,
        }));
        self.state = State::Recording {
            started: now_ms,
            last_voice: now_ms,
        };
    }

    /// When the recording ends by itself, and why.
    fn recording_deadline(&self, started: u64, last_voice: u64) -> (u64, VoicemailEnd) {
        let v = &self.ivr.inner.settings.voicemail;
        let max = started.saturating_add(u64::from(v.max_s) * 1000);
        let silent = last_voice.saturating_add(u64::from(v.silence_s) * 1000);
        if silent < max {
            (silent, VoicemailEnd::Silence)
        } else {
            (max, VoicemailEnd::MaxLength)
        }
    }

    fn end_recording(
        &mut self,
        started: u64,
        now_ms: u64,
        by: VoicemailEnd,
        out: &mut Vec<Output>,
    ) {
        out.push(Output::Do(Action::StopRecording));
        out.push(Output::Log(IvrEvent::VoicemailEnded {
            duration_ms: now_ms.saturating_sub(started),
            by,
        }));
        if by == VoicemailEnd::HangUp {
            self.state = State::Done;
        } else {
            let thanks = self.ivr.inner.settings.voicemail.thanks_prompt.clone();
            self.close_with(thanks, out);
        }
    }

    fn caller_hung_up(&mut self, now_ms: u64, out: &mut Vec<Output>) {
        match self.state.clone() {
            State::Done => return,
            State::Recording { started, .. } => {
                self.end_recording(started, now_ms, VoicemailEnd::HangUp, out);
            }
            _ => {
                self.stop_playback(out);
                self.state = State::Done;
            }
        }
        self.playing = 0;
        out.push(Output::Log(IvrEvent::CallerHungUp));
    }

    fn hang_up(&mut self, out: &mut Vec<Output>) {
        self.state = State::Done;
        self.playing = 0;
        out.push(Output::Do(Action::HangUp));
    }
}

#[cfg(test)]
mod tests;
