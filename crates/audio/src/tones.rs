//! Call-progress tones per country: synthesis, and a cadence detector that
//! recognises busy, congestion and a continuous (dial / disconnect) tone.
//!
//! The FXO line uses the detector to see a far-end hang-up on lines that
//! give no polarity reversal: after the far end hangs up, the exchange plays
//! busy or congestion tone (or, on some PBXs, dial tone) into the line.
//!
//! # Detection
//!
//! Every 20 ms frame is classified as carrying one of the plan's tones (the
//! tone's frequencies hold at least [`MIN_TONE_SHARE`] of the frame's energy
//! and at least [`MIN_LEVEL_DBM0`] of level) or nothing. A state must hold
//! for two frames to count (a single odd frame is ignored), so on and off
//! segments are measured to about 20 ms. A cadenced tone is recognised when
//! the last [`SEGMENTS_TO_MATCH`] segments (three bursts and the two pauses
//! between them) match its cadence, each within 20 % or 60 ms (whichever is
//! larger), starting anywhere in the cadence. A tone of the plan's dial
//! frequencies lasting [`CONTINUOUS_MS`] is reported as [`Kind::Dial`]
//! (what some PBXs play after a disconnect). Each recognised tone is
//! reported once until the line goes quiet or the tone changes.

use std::collections::VecDeque;

use crate::goertzel::{Goertzel, dbm0_to_amplitude, energy};
use crate::{FRAME_SAMPLES, SAMPLE_RATE};

/// Share of a frame's energy a tone's frequencies must hold.
pub const MIN_TONE_SHARE: f64 = 0.6;
/// Longest audio [`Tone::generate`] and [`generate`] make (10 minutes, 9.6 MB),
/// so a duration from a configuration cannot ask for gigabytes.
pub const MAX_GENERATE_MS: u32 = 600_000;

/// Share of a multi-frequency tone's energy each of its frequencies must hold.
const MIN_COMPONENT_SHARE: f64 = 0.14;
/// Weakest tone (all its frequencies together) counted, dBm0.
pub const MIN_LEVEL_DBM0: f64 = -42.0;
/// Segments (on, off, on, off, on) a cadence must match.
pub const SEGMENTS_TO_MATCH: usize = 5;
/// How long a dial-frequency tone must last to be reported, ms.
pub const CONTINUOUS_MS: u32 = 3000;

/// A country's (or standard's) tone plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Country {
    /// CEPT / ETSI harmonised plan (ES 201 970): 425 Hz; most of Europe.
    Eu,
    /// United Kingdom (BT SIN 350).
    Uk,
    /// United States / NANP (precise tone plan).
    Us,
    /// Russia (ex-USSR plan, 425 Hz).
    Ru,
    /// Ukraine (ex-USSR plan, 425 Hz).
    Ua,
    /// Romania (425 Hz, CEPT plan).
    Ro,
}

impl Country {
    /// All countries with a plan.
    pub const ALL: [Country; 6] = [
        Country::Eu,
        Country::Uk,
        Country::Us,
        Country::Ru,
        Country::Ua,
        Country::Ro,
    ];

    /// The country's tone plan.
    #[must_use]
    pub fn plan(self) -> &'static Plan {
        match self {
            Country::Eu | Country::Ro => &CEPT,
            Country::Uk => &UK,
            Country::Us => &NANP,
            Country::Ru | Country::Ua => &EX_USSR,
        }
    }
}

impl std::str::FromStr for Country {
    type Err = UnknownCountry;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "eu" | "cept" => Ok(Country::Eu),
            "uk" | "gb" => Ok(Country::Uk),
            "us" | "nanp" | "ca" => Ok(Country::Us),
            "ru" => Ok(Country::Ru),
            "ua" => Ok(Country::Ua),
            "ro" => Ok(Country::Ro),
            _ => Err(UnknownCountry(s.to_owned())),
        }
    }
}

/// A country code without a tone plan.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("no call-progress tone plan for country {0:?}; known: eu (CEPT), uk, us, ru, ua, ro")]
pub struct UnknownCountry(pub String);

/// Which call-progress tone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// Dial tone (continuous); also what some PBXs play after a disconnect.
    Dial,
    /// Ringback (the far end is being alerted).
    Ringback,
    /// Busy (the far end is engaged, or has hung up).
    Busy,
    /// Congestion / reorder (no route, or the far end has hung up).
    Congestion,
}

/// One tone: its frequencies and its cadence.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Tone {
    /// Frequencies sounded together, Hz.
    pub freqs: &'static [f64],
    /// (on ms, off ms) pairs repeated; empty for a continuous tone.
    pub cadence: &'static [(u32, u32)],
}

impl Tone {
    /// `duration_ms` (at most [`MAX_GENERATE_MS`]) of this tone at
    /// `level_dbm0` per frequency, its cadence starting with the first burst.
    /// A cadence whose durations are all zero sounds continuously.
    #[must_use]
    pub fn generate(&self, duration_ms: u32, level_dbm0: f32) -> Vec<i16> {
        let total = ms_to_samples(duration_ms.min(MAX_GENERATE_MS));
        let parts: Vec<(f64, f64)> = self
            .freqs
            .iter()
            .map(|&f| (f, f64::from(level_dbm0)))
            .collect();
        if self.cadence.iter().all(|&(on, off)| on == 0 && off == 0) {
            return mix(&parts, total);
        }
        let mut out = Vec::with_capacity(total);
        'outer: loop {
            for &(on, off) in self.cadence {
                let left = total - out.len();
                if left == 0 {
                    break 'outer;
                }
                out.extend(mix(&parts, ms_to_samples(on).min(left)));
                let left = total - out.len();
                out.resize(out.len() + ms_to_samples(off).min(left), 0);
            }
        }
        out
    }
}

/// A plan: the four tones of one country.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Plan {
    /// Dial tone.
    pub dial: Tone,
    /// Ringback tone.
    pub ringback: Tone,
    /// Busy tone.
    pub busy: Tone,
    /// Congestion (reorder) tone.
    pub congestion: Tone,
}

impl Plan {
    /// The tone of `kind`.
    #[must_use]
    pub fn tone(&self, kind: Kind) -> &Tone {
        match kind {
            Kind::Dial => &self.dial,
            Kind::Ringback => &self.ringback,
            Kind::Busy => &self.busy,
            Kind::Congestion => &self.congestion,
        }
    }
}

const F425: &[f64] = &[425.0];

/// CEPT / ETSI ES 201 970 (and Romania).
const CEPT: Plan = Plan {
    dial: Tone {
        freqs: F425,
        cadence: &[],
    },
    ringback: Tone {
        freqs: F425,
        cadence: &[(1000, 4000)],
    },
    busy: Tone {
        freqs: F425,
        cadence: &[(500, 500)],
    },
    congestion: Tone {
        freqs: F425,
        cadence: &[(250, 250)],
    },
};

/// United Kingdom.
const UK: Plan = Plan {
    dial: Tone {
        freqs: &[350.0, 440.0],
        cadence: &[],
    },
    ringback: Tone {
        freqs: &[400.0, 450.0],
        cadence: &[(400, 200), (400, 2000)],
    },
    busy: Tone {
        freqs: &[400.0],
        cadence: &[(375, 375)],
    },
    congestion: Tone {
        freqs: &[400.0],
        cadence: &[(400, 350), (225, 525)],
    },
};

/// United States / NANP precise tones.
const NANP: Plan = Plan {
    dial: Tone {
        freqs: &[350.0, 440.0],
        cadence: &[],
    },
    ringback: Tone {
        freqs: &[440.0, 480.0],
        cadence: &[(2000, 4000)],
    },
    busy: Tone {
        freqs: &[480.0, 620.0],
        cadence: &[(500, 500)],
    },
    congestion: Tone {
        freqs: &[480.0, 620.0],
        cadence: &[(250, 250)],
    },
};

/// Russia and Ukraine (the ex-USSR plan).
const EX_USSR: Plan = Plan {
    dial: Tone {
        freqs: F425,
        cadence: &[],
    },
    ringback: Tone {
        freqs: F425,
        cadence: &[(1000, 4000)],
    },
    busy: Tone {
        freqs: F425,
        cadence: &[(350, 350)],
    },
    congestion: Tone {
        freqs: F425,
        cadence: &[(175, 175)],
    },
};

/// `duration_ms` of `kind` in `country`'s plan at `level_dbm0` per frequency.
#[must_use]
pub fn generate(country: Country, kind: Kind, duration_ms: u32, level_dbm0: f32) -> Vec<i16> {
    country.plan().tone(kind).generate(duration_ms, level_dbm0)
}

/// `samples` of the sum of sines given as (frequency Hz, level dBm0 each),
/// all starting at phase 0, rounded and saturated to `i16`.
#[must_use]
pub fn mix(components: &[(f64, f64)], samples: usize) -> Vec<i16> {
    let parts: Vec<(f64, f64)> = components
        .iter()
        .map(|&(freq, dbm0)| {
            (
                std::f64::consts::TAU * freq / f64::from(SAMPLE_RATE),
                dbm0_to_amplitude(dbm0),
            )
        })
        .collect();
    (0..samples)
        .map(|n| {
            let v: f64 = parts.iter().map(|&(w, a)| a * (w * n as f64).sin()).sum();
            v.round().clamp(f64::from(i16::MIN), f64::from(i16::MAX)) as i16
        })
        .collect()
}

fn ms_to_samples(ms: u32) -> usize {
    (u64::from(ms) * u64::from(SAMPLE_RATE) / 1000) as usize
}

/// A call-progress tone recognised by [`CadenceDetector`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Detected {
    /// Which tone.
    pub kind: Kind,
    /// Sample (from the detector's first) where the matched tone began.
    pub started_at: u64,
    /// Sample at which it was recognised.
    pub at_sample: u64,
}

/// What a frame (or a segment of frames) carries: a tone of the plan (index
/// into the detector's distinct frequency sets) or nothing.
type State = Option<usize>;

/// A finished run of frames in one state.
#[derive(Debug, Clone, Copy)]
struct Segment {
    state: State,
    start: u64,
    ms: u32,
}

/// Recognises busy, congestion and continuous dial tone in a line's audio.
#[derive(Debug, Clone)]
pub struct CadenceDetector {
    plan: Plan,
    /// Distinct frequency sets of the plan and their filters.
    sets: Vec<(&'static [f64], Vec<Goertzel>)>,
    frame: Vec<i16>,
    /// Sample index of the next sample pushed.
    position: u64,
    /// The state being accumulated and where it began.
    state: State,
    state_start: u64,
    /// A different state seen in the last frame (not yet confirmed).
    pending: Option<(State, u64)>,
    history: VecDeque<Segment>,
    reported: Option<Kind>,
}

impl CadenceDetector {
    /// A detector for `country`'s plan.
    #[must_use]
    pub fn new(country: Country) -> Self {
        Self::with_plan(*country.plan())
    }

    /// A detector for any plan (an exchange with its own tones).
    #[must_use]
    pub fn with_plan(plan: Plan) -> Self {
        let mut sets: Vec<(&'static [f64], Vec<Goertzel>)> = Vec::new();
        for kind in [Kind::Dial, Kind::Ringback, Kind::Busy, Kind::Congestion] {
            let freqs = plan.tone(kind).freqs;
            if !sets.iter().any(|(f, _)| *f == freqs) {
                sets.push((freqs, freqs.iter().map(|&f| Goertzel::new(f)).collect()));
            }
        }
        Self {
            plan,
            sets,
            frame: Vec::with_capacity(FRAME_SAMPLES),
            position: 0,
            state: None,
            state_start: 0,
            pending: None,
            history: VecDeque::with_capacity(SEGMENTS_TO_MATCH + 1),
            reported: None,
        }
    }

    /// Feeds `samples`; returns the tones recognised within them.
    pub fn push(&mut self, samples: &[i16]) -> Vec<Detected> {
        let mut found = Vec::new();
        for &s in samples {
            self.frame.push(s);
            self.position += 1;
            if self.frame.len() == FRAME_SAMPLES {
                let state = self.classify();
                self.frame.clear();
                let frame_start = self.position - FRAME_SAMPLES as u64;
                found.extend(self.step(state, frame_start));
            }
        }
        found
    }

    /// Which of the plan's frequency sets the current frame carries.
    fn classify(&self) -> State {
        let e = energy(&self.frame);
        let n = self.frame.len() as f64;
        // A sine of amplitude A carries A²·N/2 over N samples.
        let floor = dbm0_to_amplitude(MIN_LEVEL_DBM0).powi(2) * n / 2.0;
        if e < floor {
            return None;
        }
        let mut best: State = None;
        let mut best_share = MIN_TONE_SHARE;
        for (i, (_, filters)) in self.sets.iter().enumerate() {
            // |X|²·2/N is a sine's energy over the frame.
            let parts: Vec<f64> = filters
                .iter()
                .map(|g| g.power(&self.frame) * 2.0 / n)
                .collect();
            let tone: f64 = parts.iter().sum();
            // Every frequency of a dual tone must be there (within 8 dB of
            // the other), or 400 Hz alone would pass for 400+450 Hz.
            if parts.iter().any(|&p| p < tone * MIN_COMPONENT_SHARE) {
                continue;
            }
            let share = tone / e;
            if share >= best_share && tone >= floor {
                best = Some(i);
                best_share = share;
            }
        }
        best
    }

    /// Advances by one classified frame.
    fn step(&mut self, state: State, frame_start: u64) -> Option<Detected> {
        if state == self.state {
            self.pending = None;
        } else {
            match self.pending {
                Some((p, since)) if p == state => {
                    // Confirmed: the old state ended where the new one began.
                    let ms = samples_to_ms(since - self.state_start);
                    let ended = Segment {
                        state: self.state,
                        start: self.state_start,
                        ms,
                    };
                    self.state = state;
                    self.state_start = since;
                    self.pending = None;
                    if let Some(found) = self.segment_ended(ended, frame_start) {
                        return Some(found);
                    }
                }
                _ => self.pending = Some((state, frame_start)),
            }
        }
        self.continuous(frame_start + FRAME_SAMPLES as u64)
    }

    /// A continuous dial-frequency tone long enough to report.
    fn continuous(&mut self, now: u64) -> Option<Detected> {
        let dial = self
            .sets
            .iter()
            .position(|(f, _)| *f == self.plan.dial.freqs)?;
        if self.state != Some(dial) || self.reported == Some(Kind::Dial) {
            return None;
        }
        if samples_to_ms(now - self.state_start) < CONTINUOUS_MS {
            return None;
        }
        self.reported = Some(Kind::Dial);
        Some(Detected {
            kind: Kind::Dial,
            started_at: self.state_start,
            at_sample: now,
        })
    }

    fn segment_ended(&mut self, ended: Segment, now: u64) -> Option<Detected> {
        self.history.push_back(ended);
        while self.history.len() > SEGMENTS_TO_MATCH {
            self.history.pop_front();
        }
        // A long silence or a long tone ends whatever was recognised.
        if ended.ms >= CONTINUOUS_MS {
            self.reported = None;
        }
        let matched = [Kind::Busy, Kind::Congestion]
            .into_iter()
            .find(|&kind| self.matches(kind))?;
        if self.reported == Some(matched) {
            return None;
        }
        self.reported = Some(matched);
        Some(Detected {
            kind: matched,
            started_at: self.history.front().map_or(now, |s| s.start),
            at_sample: now,
        })
    }

    /// Whether the history (on, off, on, off, on) fits `kind`'s cadence at
    /// some starting point.
    fn matches(&self, kind: Kind) -> bool {
        let tone = self.plan.tone(kind);
        let Some(set) = self.sets.iter().position(|(f, _)| *f == tone.freqs) else {
            return false;
        };
        if self.history.len() < SEGMENTS_TO_MATCH || tone.cadence.is_empty() {
            return false;
        }
        // The cadence as alternating on/off durations.
        let pattern: Vec<(bool, u32)> = tone
            .cadence
            .iter()
            .flat_map(|&(on, off)| [(true, on), (false, off)])
            .collect();
        (0..pattern.len()).step_by(2).any(|rotation| {
            self.history.iter().enumerate().all(|(i, seg)| {
                let Some(&(on, ms)) = pattern.get((rotation + i) % pattern.len()) else {
                    return false;
                };
                let state_ok = if on {
                    seg.state == Some(set)
                } else {
                    seg.state.is_none()
                };
                state_ok && seg.ms.abs_diff(ms) <= (ms / 5).max(60)
            })
        })
    }
}

fn samples_to_ms(samples: u64) -> u32 {
    u32::try_from(samples * 1000 / u64::from(SAMPLE_RATE)).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;
    use crate::goertzel::peak_frequency;
    use proptest::prelude::*;

    fn detect(country: Country, samples: &[i16]) -> Vec<Detected> {
        let mut d = CadenceDetector::new(country);
        d.push(samples)
    }

    fn kinds(country: Country, samples: &[i16]) -> Vec<Kind> {
        detect(country, samples).iter().map(|d| d.kind).collect()
    }

    #[test]
    fn generated_tones_have_the_plan_frequency_level_and_cadence() {
        let busy = generate(Country::Eu, Kind::Busy, 2000, -10.0);
        assert_eq!(busy.len(), 16000);
        let (f, level) = peak_frequency(&busy[..4000], 300.0, 700.0).unwrap();
        assert!((f - 425.0).abs() < 0.5, "{f}");
        assert!((level + 10.0).abs() < 0.2, "{level}");
        // 500 ms on, 500 ms off.
        assert!(busy[4000..8000].iter().all(|&s| s == 0));
        assert!(busy[8000..8100].iter().any(|&s| s != 0));
        let us_dial = generate(Country::Us, Kind::Dial, 1000, -13.0);
        for freq in [350.0, 440.0] {
            let l = crate::goertzel::level_dbm0(&us_dial, freq);
            assert!((l + 13.0).abs() < 0.2, "{freq} Hz at {l}");
        }
        // The UK's double ring: 400 on, 200 off, 400 on, 2000 off.
        let ring = generate(Country::Uk, Kind::Ringback, 3000, -10.0);
        assert!(ring[3200..4800].iter().all(|&s| s == 0));
        assert!(ring[4800..8000].iter().filter(|&&s| s != 0).count() > 3000);
        assert!(ring[8000..24000].iter().all(|&s| s == 0));
    }

    #[test]
    fn busy_and_congestion_are_recognised_in_every_country() {
        for country in Country::ALL {
            for kind in [Kind::Busy, Kind::Congestion] {
                let mut audio = vec![0; 4000];
                audio.extend(generate(country, kind, 6000, -20.0));
                let found = detect(country, &audio);
                assert_eq!(found.len(), 1, "{country:?} {kind:?}: {found:?}");
                assert_eq!(found[0].kind, kind, "{country:?}");
                // Three bursts and two pauses after the tone began.
                let tone = country.plan().tone(kind);
                let period: u32 = tone.cadence.iter().map(|(on, off)| on + off).sum::<u32>()
                    / tone.cadence.len() as u32;
                let expected = 4000 + u64::from(period * 5 / 2) * 8;
                assert!(
                    found[0].at_sample.abs_diff(expected) <= 2 * 160 + u64::from(period) * 4,
                    "{country:?} {kind:?} at {} (expected about {expected})",
                    found[0].at_sample
                );
                assert!(found[0].started_at.abs_diff(4000) <= 320, "{found:?}");
            }
        }
    }

    #[test]
    fn the_other_countries_cadence_or_frequency_is_not_taken_for_busy() {
        // EU busy (500/500) is not RU busy (350/350) or congestion.
        assert_eq!(
            kinds(Country::Ru, &generate(Country::Eu, Kind::Busy, 6000, -20.0)),
            []
        );
        // US busy is 480+620 Hz: nothing in a 425 Hz plan.
        assert_eq!(
            kinds(Country::Eu, &generate(Country::Us, Kind::Busy, 6000, -20.0)),
            []
        );
        // UK busy (375/375 at 400 Hz) is not UK congestion.
        assert_eq!(
            kinds(Country::Uk, &generate(Country::Uk, Kind::Busy, 6000, -20.0)),
            [Kind::Busy]
        );
        // Ringback is neither busy nor congestion.
        for country in Country::ALL {
            assert_eq!(
                kinds(country, &generate(country, Kind::Ringback, 20_000, -20.0)),
                [],
                "{country:?}"
            );
        }
    }

    #[test]
    fn continuous_dial_tone_is_reported_once_after_three_seconds() {
        for country in Country::ALL {
            let found = detect(country, &generate(country, Kind::Dial, 10_000, -15.0));
            assert_eq!(found.len(), 1, "{country:?}: {found:?}");
            assert_eq!(found[0].kind, Kind::Dial);
            assert!(
                found[0].at_sample.abs_diff(3000 * 8) <= 2 * 160,
                "{found:?}"
            );
        }
        // Two seconds of it is not enough.
        assert_eq!(
            kinds(Country::Eu, &generate(Country::Eu, Kind::Dial, 2000, -15.0)),
            []
        );
    }

    #[test]
    fn a_busy_tone_after_speech_and_in_noise_is_still_recognised() {
        // Far end speaks (a sweep of harmonics), hangs up, exchange plays busy with line noise.
        let mut audio: Vec<i16> = (0..16000)
            .map(|n| {
                let t = n as f64 / 8000.0;
                let f0 = 120.0 + 40.0 * (t * 3.0).sin();
                (1..8)
                    .map(|h| 2000.0 / h as f64 * (std::f64::consts::TAU * f0 * h as f64 * t).sin())
                    .sum::<f64>() as i16
            })
            .collect();
        let start = audio.len() as u64;
        audio.extend(generate(Country::Eu, Kind::Busy, 5000, -25.0));
        let mut state = 0x2545F4914F6CDD1Du64;
        for s in &mut audio {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            *s = s.saturating_add(((state >> 54) as i16) - 512); // about -40 dBm0 of noise
        }
        let found = detect(Country::Eu, &audio);
        assert_eq!(
            found.iter().map(|d| d.kind).collect::<Vec<_>>(),
            [Kind::Busy],
            "{found:?}"
        );
        assert!(found[0].started_at.abs_diff(start) <= 320);
    }

    #[test]
    fn an_exchange_slightly_off_frequency_and_through_g711_is_recognised() {
        for (country, nominal) in [
            (Country::Eu, 425.0),
            (Country::Us, 0.0),
            (Country::Uk, 400.0),
        ] {
            for factor in [0.98, 1.02] {
                let tone = country.plan().busy;
                // Off-frequency: shift every frequency of the tone by 2 %.
                let parts: Vec<(f64, f64)> =
                    tone.freqs.iter().map(|&f| (f * factor, -30.0)).collect();
                let mut audio = Vec::new();
                for _ in 0..5 {
                    for &(on, off) in tone.cadence {
                        audio.extend(mix(&parts, ms_to_samples(on)));
                        audio.resize(audio.len() + ms_to_samples(off), 0);
                    }
                }
                let alaw = crate::g711::alaw_decode_slice(&crate::g711::alaw_encode_slice(&audio));
                assert_eq!(
                    kinds(country, &alaw),
                    [Kind::Busy],
                    "{country:?} busy ×{factor} ({nominal} Hz)"
                );
            }
        }
    }

    #[test]
    fn generation_is_bounded_and_a_zero_cadence_is_continuous() {
        let odd = Tone {
            freqs: F425,
            cadence: &[(0, 0)],
        };
        assert_eq!(odd.generate(100, -10.0).len(), 800);
        // A sine through its zero crossings: only a handful of zero samples.
        assert!(odd.generate(100, -10.0).iter().filter(|&&s| s == 0).count() < 10);
        let limit = ms_to_samples(MAX_GENERATE_MS);
        assert_eq!(
            generate(Country::Eu, Kind::Congestion, u32::MAX, -10.0).len(),
            limit
        );
    }

    #[test]
    fn quiet_tones_and_silence_give_nothing() {
        assert_eq!(
            kinds(Country::Eu, &generate(Country::Eu, Kind::Busy, 6000, -50.0)),
            []
        );
        assert_eq!(kinds(Country::Eu, &vec![0; 80_000]), []);
    }

    #[test]
    fn country_names_parse() {
        assert_eq!("RO".parse::<Country>().unwrap(), Country::Ro);
        assert_eq!("gb".parse::<Country>().unwrap(), Country::Uk);
        let err = "xx".parse::<Country>().unwrap_err();
        assert!(err.to_string().contains("known: eu"), "{err}");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn arbitrary_samples_never_panic(samples in proptest::collection::vec(any::<i16>(), 0..4000)) {
            for country in Country::ALL {
                let _ = detect(country, &samples);
            }
        }
    }
}
