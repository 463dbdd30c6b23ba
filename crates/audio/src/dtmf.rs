//! DTMF (ITU-T Q.23 keys, Q.24 reception) detection and generation.
//!
//! # Detection
//!
//! The detector looks at a 20 ms window (160 samples) every 5 ms. For each
//! half of the window (10 ms) it runs a [`Goertzel`] filter on the eight
//! Q.23 frequencies, and a window counts as a *hit* for a key when all of:
//!
//! - one row and one column stand out: each is at least
//!   [`MIN_LEVEL_DBM0`] and at least 6 dB above every other frequency of its
//!   group (over the whole window, for resolution);
//! - twist: the column may be up to [`NORMAL_TWIST_DB`] above the row
//!   ("normal" twist, high group stronger) and the row up to
//!   [`REVERSE_TWIST_DB`] above the column;
//! - in each half, the two tones carry at least [`MIN_TONE_FRACTION`] of the
//!   energy (speech, music and noise spread theirs; a pure pair does not),
//!   and the column's 2nd harmonic is at least 15 dB below the column (a
//!   voice's harmonics are not);
//! - frequency: the phase each tone advances between the two halves gives its
//!   actual frequency; it must lie within [`FREQ_TOLERANCE`] of nominal.
//!   Q.24 asks for acceptance within ±1.5 % and rejection beyond ±3.5 %; the
//!   limit sits between them.
//!
//! A key is reported once its hits span at least [`MIN_DURATION_MS`] and it
//! has then been absent (or replaced) for [`MIN_PAUSE_MS`] beyond the
//! window. Measured with the tests' tones: a tone of 37 ms or more is heard at
//! any alignment and one of 31 ms or less never (Q.24: accept 40 ms, reject
//! 23 ms); a gap of 35 ms or more separates two digits and one of 30 ms or
//! less is bridged (Q.24: 40 ms pause; a 10 ms interruption bridged). The
//! digit is reported when it ends, with its start sample and its duration
//! (both within about 5 ms).

use crate::SAMPLE_RATE;
use crate::goertzel::{Goertzel, amplitude_to_dbm0, dft_bank, energy};

/// Row (low group) frequencies, Hz (ITU-T Q.23).
pub const ROWS: [f64; 4] = [697.0, 770.0, 852.0, 941.0];
/// Column (high group) frequencies, Hz (ITU-T Q.23).
pub const COLUMNS: [f64; 4] = [1209.0, 1336.0, 1477.0, 1633.0];
/// Keys by row, then column.
pub const KEYS: [[char; 4]; 4] = [
    ['1', '2', '3', 'A'],
    ['4', '5', '6', 'B'],
    ['7', '8', '9', 'C'],
    ['*', '0', '#', 'D'],
];

/// Weakest tone (each of the pair) accepted, dBm0.
pub const MIN_LEVEL_DBM0: f64 = -32.0;
/// How much stronger the column may be than the row, dB.
pub const NORMAL_TWIST_DB: f64 = 8.0;
/// How much stronger the row may be than the column, dB.
pub const REVERSE_TWIST_DB: f64 = 4.0;
/// Largest accepted deviation from a nominal frequency (fraction).
pub const FREQ_TOLERANCE: f64 = 0.023;
/// Share of the signal energy the two tones must carry in each half window.
pub const MIN_TONE_FRACTION: f64 = 0.6;
/// Shortest tone reported, as measured from the hit windows, ms.
pub const MIN_DURATION_MS: u32 = 35;
/// Absence (beyond one window) that ends a digit, ms.
pub const MIN_PAUSE_MS: u32 = 25;

/// Longest tone or pause [`generate`] makes per key, ms (a held key is
/// rarely longer than a few seconds; this bounds what a configured duration
/// can allocate).
pub const MAX_GENERATE_MS: u32 = 10_000;

/// Samples in the analysis window (20 ms).
const WINDOW: usize = 160;
/// Samples in half a window.
const HALF: usize = WINDOW / 2;
/// Samples the window advances by (5 ms).
const HOP: usize = 40;
/// Relative-peak margin within a group (power ratio, 6 dB).
const GROUP_MARGIN: f64 = 4.0;
/// The column's 2nd harmonic must be this far below the column (power ratio, 15 dB).
const HARMONIC_MARGIN: f64 = 31.6;
/// Samples per millisecond.
const PER_MS: u64 = SAMPLE_RATE as u64 / 1000;

/// A detected key press.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Digit {
    /// `0`-`9`, `*`, `#` or `A`-`D`.
    pub key: char,
    /// Sample (counted from the detector's first sample) at which the tone began.
    pub at_sample: u64,
    /// How long the tone lasted.
    pub duration_ms: u32,
}

/// The two frequencies of a key, (row, column) in Hz.
#[must_use]
pub fn frequencies(key: char) -> Option<(f64, f64)> {
    let key = key.to_ascii_uppercase();
    KEYS.iter().zip(ROWS).find_map(|(keys, row)| {
        keys.iter()
            .zip(COLUMNS)
            .find(|(k, _)| **k == key)
            .map(|(_, col)| (row, col))
    })
}

/// DTMF audio for `digits`: each key's pair at `level_dbm0` per tone for
/// `on_ms`, then `off_ms` of silence (each at most [`MAX_GENERATE_MS`]).
/// Characters that are not DTMF keys are skipped.
#[must_use]
pub fn generate(digits: &str, on_ms: u32, off_ms: u32, level_dbm0: f32) -> Vec<i16> {
    let on = (u64::from(on_ms.min(MAX_GENERATE_MS)) * PER_MS) as usize;
    let off = (u64::from(off_ms.min(MAX_GENERATE_MS)) * PER_MS) as usize;
    let level = f64::from(level_dbm0);
    let mut out = Vec::new();
    for (row, col) in digits.chars().filter_map(frequencies) {
        out.extend(crate::tones::mix(&[(row, level), (col, level)], on));
        out.resize(out.len() + off, 0);
    }
    out
}

/// Every digit in a whole recording (a [`Detector`] fed `samples`, then
/// finished).
#[must_use]
pub fn detect_all(samples: &[i16]) -> Vec<Digit> {
    let mut detector = Detector::new();
    let mut digits = detector.push(samples);
    digits.extend(detector.finish());
    digits
}

/// Streaming DTMF detector; feed it audio in any slice sizes.
#[derive(Debug, Clone)]
pub struct Detector {
    rows: [Goertzel; 4],
    cols: [Goertzel; 4],
    col_harmonics: [Goertzel; 4],
    /// Samples not yet consumed by a hop; `pending[0]` is sample `base`.
    pending: Vec<i16>,
    base: u64,
    current: Option<Run>,
}

/// A key seen in consecutive windows.
#[derive(Debug, Clone, Copy)]
struct Run {
    key: char,
    first_hit: u64,
    last_hit: u64,
}

impl Default for Detector {
    fn default() -> Self {
        Self::new()
    }
}

impl Detector {
    /// A detector with the Q.24 limits documented at the module.
    #[must_use]
    pub fn new() -> Self {
        Self {
            rows: ROWS.map(Goertzel::new),
            cols: COLUMNS.map(Goertzel::new),
            col_harmonics: COLUMNS.map(|f| Goertzel::new(2.0 * f)),
            pending: Vec::with_capacity(WINDOW + HOP),
            base: 0,
            current: None,
        }
    }

    /// Feeds `samples`; returns the digits that ended within them.
    pub fn push(&mut self, samples: &[i16]) -> Vec<Digit> {
        let mut digits = Vec::new();
        for chunk in samples.chunks(HOP) {
            self.pending.extend_from_slice(chunk);
            while let Some(window) = self.pending.get(..WINDOW) {
                let hit = self.analyse(window);
                let start = self.base;
                if let Some(digit) = self.track(hit, start) {
                    digits.push(digit);
                }
                self.pending.drain(..HOP);
                self.base += HOP as u64;
            }
        }
        digits
    }

    /// The key held right now, once it has sounded for [`MIN_DURATION_MS`]
    /// (before it is reported as a [`Digit`] on release): lets an IVR stop
    /// its prompt as soon as the caller presses a key.
    #[must_use]
    pub fn pressed(&self) -> Option<char> {
        let run = self.current?;
        let (start, end) = run.span();
        let held_ms = (end - start) / PER_MS;
        // Only while the key is still heard (not in a gap being bridged).
        let recent = self.base.saturating_sub(run.last_hit) <= HOP as u64;
        (recent && held_ms >= u64::from(MIN_DURATION_MS)).then_some(run.key)
    }

    /// Ends the stream: reports a digit still sounding (or not yet followed
    /// by a pause) if it lasted long enough.
    pub fn finish(&mut self) -> Option<Digit> {
        self.current.take().and_then(finished)
    }

    /// Updates the current run with one window's verdict; returns a digit
    /// that has just ended.
    fn track(&mut self, hit: Option<char>, window_start: u64) -> Option<Digit> {
        let max_gap = u64::from(MIN_PAUSE_MS) * PER_MS;
        match (self.current, hit) {
            (Some(run), Some(key)) if run.key == key => {
                self.current = Some(Run {
                    last_hit: window_start,
                    ..run
                });
                None
            }
            (current, Some(key)) => {
                let next = Run {
                    key,
                    first_hit: window_start,
                    last_hit: window_start,
                };
                self.current = Some(next);
                // A key replaced without a pause ends where the next begins
                // (their windows overlap).
                current.and_then(|run| finished_before(run, next.span().0))
            }
            (Some(run), None)
                if window_start.saturating_sub(run.last_hit) > max_gap + WINDOW as u64 =>
            {
                self.current = None;
                finished(run)
            }
            (_, None) => None,
        }
    }

    /// The key one window holds, if it qualifies.
    fn analyse(&self, window: &[i16]) -> Option<char> {
        let (first, second) = window.split_at(HALF);
        let (e1, e2) = (energy(first), energy(second));
        // Cheap exit on near silence: below the weakest acceptable pair.
        let floor =
            (crate::goertzel::dbm0_to_amplitude(MIN_LEVEL_DBM0)).powi(2) * HALF as f64 / 2.0;
        if e1 < floor || e2 < floor {
            return None;
        }
        let row = Group::measure(&self.rows, &ROWS, first, second)?;
        let col = Group::measure(&self.cols, &COLUMNS, first, second)?;
        let (row_db, col_db) = (row.level_dbm0(), col.level_dbm0());
        if row_db < MIN_LEVEL_DBM0 || col_db < MIN_LEVEL_DBM0 {
            return None;
        }
        if col_db - row_db > NORMAL_TWIST_DB || row_db - col_db > REVERSE_TWIST_DB {
            return None;
        }
        // Tone energy share in each half: |X|²·2/N is a sine's energy over N samples.
        let share = |p_row: f64, p_col: f64, e: f64| (p_row + p_col) * 2.0 / HALF as f64 / e;
        if share(row.half_powers.0, col.half_powers.0, e1) < MIN_TONE_FRACTION
            || share(row.half_powers.1, col.half_powers.1, e2) < MIN_TONE_FRACTION
        {
            return None;
        }
        if row.deviation.abs() > FREQ_TOLERANCE || col.deviation.abs() > FREQ_TOLERANCE {
            return None;
        }
        let harmonic = self.col_harmonics.get(col.index)?.power(window);
        if harmonic * HARMONIC_MARGIN > col.window_power {
            return None;
        }
        KEYS.get(row.index)?.get(col.index).copied()
    }
}

/// A run that qualifies as a digit.
fn finished(run: Run) -> Option<Digit> {
    finished_before(run, u64::MAX)
}

/// A run that qualifies as a digit when it ends at `limit` at the latest.
fn finished_before(run: Run, limit: u64) -> Option<Digit> {
    let (start, end) = run.span();
    let end = end.min(limit).max(start);
    let duration_ms = u32::try_from((end - start) / PER_MS).unwrap_or(u32::MAX);
    (duration_ms >= MIN_DURATION_MS).then_some(Digit {
        key: run.key,
        at_sample: start,
        duration_ms,
    })
}

impl Run {
    /// Where the tone began and ended, estimated from the hit windows. A
    /// window is a hit once the tone fills MIN_TONE_FRACTION of each half,
    /// so the first hit starts up to `lead` samples before the tone (hops
    /// make it up to a hop later) and the last hit's window ends up to
    /// `lead` samples after it; centring on the hop halves the error.
    fn span(&self) -> (u64, u64) {
        let lead = ((1.0 - MIN_TONE_FRACTION) * HALF as f64) as u64;
        let shift = lead.saturating_sub(HOP as u64 / 2);
        let start = self.first_hit + shift;
        let end = (self.last_hit + WINDOW as u64)
            .saturating_sub(shift)
            .max(start);
        (start, end)
    }
}

/// The strongest frequency of one group (rows or columns) in a window.
struct Group {
    index: usize,
    /// |X|² over the whole window.
    window_power: f64,
    /// |X|² over each half.
    half_powers: (f64, f64),
    /// Measured frequency relative to nominal, minus one.
    deviation: f64,
}

impl Group {
    fn measure(
        filters: &[Goertzel; 4],
        freqs: &[f64; 4],
        first: &[i16],
        second: &[i16],
    ) -> Option<Self> {
        let first_half = dft_bank(filters, first, 0);
        // The second half in the first half's time reference.
        let second_half = dft_bank(filters, second, HALF);
        let mut whole = [0.0f64; 4];
        let mut halves = [((0.0, 0.0), (0.0, 0.0)); 4];
        for (i, (a, b)) in first_half.into_iter().zip(second_half).enumerate() {
            let w = (a.0 + b.0, a.1 + b.1);
            if let (Some(slot), Some(h)) = (whole.get_mut(i), halves.get_mut(i)) {
                *slot = w.0 * w.0 + w.1 * w.1;
                *h = (a, b);
            }
        }
        let (index, &best) = whole.iter().enumerate().max_by(|x, y| x.1.total_cmp(y.1))?;
        if whole
            .iter()
            .enumerate()
            .any(|(i, &p)| i != index && p * GROUP_MARGIN > best)
        {
            return None;
        }
        let (a, b_rot) = *halves.get(index)?;
        let freq = *freqs.get(index)?;
        // b_rot · conj(a): its angle is the phase the tone gained over HALF
        // samples beyond what the nominal frequency gains.
        let re = b_rot.0 * a.0 + b_rot.1 * a.1;
        let im = b_rot.1 * a.0 - b_rot.0 * a.1;
        let offset_hz =
            im.atan2(re) * f64::from(SAMPLE_RATE) / (std::f64::consts::TAU * HALF as f64);
        Some(Self {
            index,
            window_power: best,
            half_powers: (a.0 * a.0 + a.1 * a.1, b_rot.0 * b_rot.0 + b_rot.1 * b_rot.1),
            deviation: offset_hz / freq,
        })
    }

    /// The tone's level from the mean of the halves' powers (less sensitive
    /// to a frequency offset than the whole window).
    fn level_dbm0(&self) -> f64 {
        let power = (self.half_powers.0 + self.half_powers.1) / 2.0;
        amplitude_to_dbm0(Goertzel::amplitude(power, HALF))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;
    use crate::{g711, goertzel, tones};
    use proptest::prelude::*;

    const ALL_KEYS: &str = "123A456B789C*0#D";

    fn detect(samples: &[i16]) -> Vec<Digit> {
        detect_all(samples)
    }

    fn keys(samples: &[i16]) -> String {
        detect(samples).iter().map(|d| d.key).collect()
    }

    fn silence(ms: usize) -> Vec<i16> {
        vec![0; ms * 8]
    }

    /// A tone pair with its own frequencies and levels, framed by silence.
    fn pair(row: (f64, f64), col: (f64, f64), ms: usize) -> Vec<i16> {
        let mut s = silence(30);
        s.extend(tones::mix(&[row, col], ms * 8));
        s.extend(silence(60));
        s
    }

    /// Seeded white Gaussian noise with the given RMS level (xorshift64 and
    /// the sum of 12 uniforms; deterministic).
    fn noise(samples: usize, dbm0: f64, seed: u64) -> Vec<i16> {
        let rms = goertzel::dbm0_to_amplitude(dbm0) / std::f64::consts::SQRT_2;
        let mut state = seed.max(1);
        let mut uniform = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 11) as f64 / (1u64 << 53) as f64
        };
        (0..samples)
            .map(|_| {
                let g: f64 = (0..12).map(|_| uniform()).sum::<f64>() - 6.0;
                (g * rms).round().clamp(-32768.0, 32767.0) as i16
            })
            .collect()
    }

    fn add(a: &[i16], b: &[i16]) -> Vec<i16> {
        a.iter()
            .zip(b.iter().chain(std::iter::repeat(&0)))
            .map(|(&x, &y)| x.saturating_add(y))
            .collect()
    }

    #[test]
    fn every_key_is_detected_with_its_time_and_duration() {
        let audio = generate(ALL_KEYS, 70, 60, -10.0);
        let digits = detect(&audio);
        let got: String = digits.iter().map(|d| d.key).collect();
        assert_eq!(got, ALL_KEYS);
        for (i, d) in digits.iter().enumerate() {
            let expected_start = i as u64 * 130 * 8;
            assert!(
                d.at_sample.abs_diff(expected_start) <= 40,
                "{} starts at {} (expected {expected_start})",
                d.key,
                d.at_sample
            );
            assert!(
                d.duration_ms.abs_diff(70) <= 5,
                "{} lasted {} ms",
                d.key,
                d.duration_ms
            );
        }
    }

    #[test]
    fn repeated_keys_at_the_shortest_timing_and_loudest_level() {
        assert_eq!(keys(&generate("#AA", 45, 45, -3.0)), "#AA");
    }

    #[test]
    fn lower_case_letters_and_other_characters() {
        assert_eq!(frequencies('a'), Some((697.0, 1633.0)));
        assert_eq!(frequencies('x'), None);
        assert_eq!(keys(&generate("1-2 x3", 60, 60, -10.0)), "123");
        assert!(generate("", 60, 60, -10.0).is_empty());
    }

    #[test]
    fn weak_tones_down_to_minus_26_dbm0_are_heard_and_very_weak_ones_are_not() {
        assert_eq!(keys(&generate(ALL_KEYS, 60, 60, -26.0)), ALL_KEYS);
        assert_eq!(keys(&generate(ALL_KEYS, 60, 60, -40.0)), "");
        // Loud, up to the point where the pair clips.
        assert_eq!(keys(&generate(ALL_KEYS, 60, 60, -3.0)), ALL_KEYS);
    }

    #[test]
    fn frequency_within_q24_tolerance_is_accepted_and_outside_rejected() {
        for key in ALL_KEYS.chars() {
            let (row, col) = frequencies(key).unwrap();
            for accept in [-0.015, 0.015] {
                for (r, c) in [
                    (1.0 + accept, 1.0),
                    (1.0, 1.0 + accept),
                    (1.0 + accept, 1.0 + accept),
                ] {
                    let s = pair((row * r, -12.0), (col * c, -12.0), 60);
                    assert_eq!(keys(&s), key.to_string(), "{key} at row×{r} col×{c}");
                }
            }
            for reject in [-0.035, 0.035, -0.06, 0.06] {
                for (r, c) in [(1.0 + reject, 1.0), (1.0, 1.0 + reject)] {
                    let s = pair((row * r, -12.0), (col * c, -12.0), 60);
                    assert_eq!(keys(&s), "", "{key} at row×{r} col×{c}");
                }
            }
        }
    }

    #[test]
    fn twist_within_limits_is_accepted_and_beyond_rejected() {
        for key in ALL_KEYS.chars() {
            let (row, col) = frequencies(key).unwrap();
            // Normal twist: column stronger.
            assert_eq!(
                keys(&pair((row, -18.0), (col, -11.0), 60)),
                key.to_string(),
                "{key} +7 dB"
            );
            assert_eq!(
                keys(&pair((row, -20.0), (col, -10.0), 60)),
                "",
                "{key} +10 dB"
            );
            // Reverse twist: row stronger.
            assert_eq!(
                keys(&pair((row, -11.0), (col, -14.0), 60)),
                key.to_string(),
                "{key} -3 dB"
            );
            assert_eq!(
                keys(&pair((row, -10.0), (col, -16.0), 60)),
                "",
                "{key} -6 dB"
            );
        }
    }

    #[test]
    fn weak_twisted_keys_through_g711_at_the_shortest_duration() {
        // The corners at once: the weaker tone at -26 dBm0, twist near its
        // limit, 40 ms, through A-law and µ-law.
        for key in ALL_KEYS.chars() {
            let (row, col) = frequencies(key).unwrap();
            for (row_db, col_db) in [(-26.0, -19.0), (-23.0, -26.0)] {
                let s = pair((row, row_db), (col, col_db), 40);
                let alaw = g711::alaw_decode_slice(&g711::alaw_encode_slice(&s));
                let ulaw = g711::ulaw_decode_slice(&g711::ulaw_encode_slice(&s));
                for (law, audio) in [("A-law", alaw), ("µ-law", ulaw)] {
                    assert_eq!(
                        keys(&audio),
                        key.to_string(),
                        "{key} row {row_db} col {col_db} {law}"
                    );
                }
            }
        }
    }

    #[test]
    fn forty_ms_tones_are_heard_at_every_alignment_and_short_ones_never() {
        for offset in 0..HOP {
            let mut s = vec![0; offset];
            s.extend(generate("5", 40, 60, -15.0));
            assert_eq!(keys(&s), "5", "40 ms tone after {offset} samples");
            let mut s = vec![0; offset];
            s.extend(generate("5", 30, 60, -15.0));
            assert_eq!(keys(&s), "", "30 ms tone after {offset} samples");
        }
        assert_eq!(keys(&generate("5", 15, 60, -15.0)), "");
    }

    #[test]
    fn forty_ms_pauses_separate_digits_and_ten_ms_drop_outs_do_not() {
        assert_eq!(keys(&generate("1111", 50, 40, -15.0)), "1111");
        let tone = generate("9", 60, 0, -15.0);
        let mut s = tone.clone();
        s.extend(silence(10));
        s.extend(&tone);
        s.extend(silence(60));
        let digits = detect(&s);
        assert_eq!(digits.len(), 1, "{digits:?}");
        assert!(digits[0].duration_ms.abs_diff(130) <= 5, "{digits:?}");
    }

    #[test]
    fn a_held_key_is_one_digit_reported_when_it_ends() {
        let s = generate("#", 2000, 0, -15.0);
        let mut d = Detector::new();
        assert!(
            d.push(&s).is_empty(),
            "reported before the key was released"
        );
        let end = d.push(&silence(60));
        assert_eq!(end.len(), 1);
        assert_eq!(end[0].key, '#');
        assert!(end[0].duration_ms.abs_diff(2000) <= 5);
        assert!(d.finish().is_none());
    }

    #[test]
    fn a_pressed_key_is_known_while_it_sounds() {
        let mut d = Detector::new();
        let tone = generate("8", 200, 0, -15.0);
        d.push(&tone[..8 * 20]);
        assert_eq!(d.pressed(), None, "after 20 ms");
        d.push(&tone[8 * 20..8 * 60]);
        assert_eq!(d.pressed(), Some('8'), "after 60 ms");
        d.push(&tone[8 * 60..]);
        assert_eq!(d.pressed(), Some('8'), "after 200 ms");
        let released = d.push(&silence(15));
        assert!(released.is_empty());
        assert_eq!(d.pressed(), None, "15 ms after release");
        let released = d.push(&silence(60));
        assert_eq!(released.iter().map(|d| d.key).collect::<String>(), "8");
        assert_eq!(d.pressed(), None);
    }

    #[test]
    fn a_key_change_without_pause_gives_both_keys_one_after_the_other() {
        let mut s = generate("4", 60, 0, -12.0);
        s.extend(generate("7", 60, 60, -12.0));
        let digits = detect(&s);
        assert_eq!(digits.iter().map(|d| d.key).collect::<String>(), "47");
        let first_end = digits[0].at_sample + u64::from(digits[0].duration_ms) * 8;
        assert!(first_end <= digits[1].at_sample, "{digits:?}");
        assert!(digits[1].at_sample.abs_diff(480) <= 40, "{digits:?}");
    }

    #[test]
    fn digits_survive_noise_and_noise_alone_gives_none() {
        let audio = generate(ALL_KEYS, 60, 60, -20.0);
        for seed in 1..=5 {
            let noisy = add(&audio, &noise(audio.len(), -40.0, seed));
            assert_eq!(keys(&noisy), ALL_KEYS, "seed {seed}");
        }
        for (seed, level) in [(7, -10.0), (8, -25.0), (9, -40.0)] {
            assert_eq!(
                keys(&noise(8000 * 20, level, seed)),
                "",
                "noise at {level} dBm0"
            );
        }
    }

    #[test]
    fn digits_survive_g711() {
        let audio = generate(ALL_KEYS, 60, 60, -20.0);
        let alaw = g711::alaw_decode_slice(&g711::alaw_encode_slice(&audio));
        assert_eq!(keys(&alaw), ALL_KEYS);
        let ulaw = g711::ulaw_decode_slice(&g711::ulaw_encode_slice(&audio));
        assert_eq!(keys(&ulaw), ALL_KEYS);
    }

    #[test]
    fn chunk_size_does_not_change_the_result() {
        let audio = add(&generate("159#", 55, 45, -18.0), &noise(4000, -45.0, 3));
        let whole = detect(&audio);
        for size in [1, 7, 40, 160, 333] {
            let mut d = Detector::new();
            let mut got = Vec::new();
            for chunk in audio.chunks(size) {
                got.extend(d.push(chunk));
            }
            got.extend(d.finish());
            assert_eq!(got, whole, "chunks of {size}");
        }
    }

    /// Speech is where DTMF receivers go wrong (talk-off): minutes of it
    /// must give no digit. The speech is made at test time with espeak-ng in
    /// the four languages the demo uses, converted to 8 kHz mono with sox.
    #[test]
    fn speech_gives_no_digits() {
        if std::process::Command::new("espeak-ng")
            .arg("--version")
            .output()
            .is_err()
        {
            eprintln!(
                "SKIPPED: espeak-ng is not installed (scripts/setup installs it); talk-off not checked"
            );
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let texts = [
            (
                "en",
                "Thank you for calling. For sales press one, for support press two. Please hold while we connect you to the next available agent. Your call is important to us.",
            ),
            (
                "en-us",
                "Hello, I would like to check the status of my order number four five six seven, placed last Tuesday, and the delivery address in Springfield.",
            ),
            (
                "ru",
                "Здравствуйте, вы позвонили в службу поддержки. Пожалуйста, оставайтесь на линии, оператор ответит вам в ближайшее время.",
            ),
            (
                "uk",
                "Добрий день. Дякуємо за дзвінок. Натисніть один для продажу або два для підтримки. Залиште повідомлення після сигналу.",
            ),
            (
                "ro",
                "Bună ziua, ați sunat la serviciul clienți. Vă rugăm să așteptați, un operator vă va răspunde în cel mai scurt timp.",
            ),
        ];
        let mut total = 0usize;
        for (voice, text) in texts {
            for (variant, pitch, speed) in [("low", "20", "150"), ("high", "80", "190")] {
                let wav = dir.path().join(format!("{voice}-{variant}.wav"));
                let raw = dir.path().join(format!("{voice}-{variant}.raw"));
                let status = std::process::Command::new("espeak-ng")
                    .args(["-v", voice, "-p", pitch, "-s", speed, "-w"])
                    .arg(&wav)
                    .arg(text)
                    .status()
                    .unwrap();
                assert!(status.success(), "espeak-ng {voice}");
                let status = std::process::Command::new("sox")
                    .arg(&wav)
                    .args([
                        "-t",
                        "raw",
                        "-r",
                        "8000",
                        "-c",
                        "1",
                        "-b",
                        "16",
                        "-e",
                        "signed-integer",
                        "-L",
                    ])
                    .arg(&raw)
                    .status()
                    .unwrap();
                assert!(status.success(), "sox {voice}");
                let bytes = std::fs::read(&raw).unwrap();
                let speech: Vec<i16> = bytes
                    .chunks_exact(2)
                    .map(|b| i16::from_le_bytes([b[0], b[1]]))
                    .collect();
                assert!(
                    speech.len() > 8000,
                    "{voice}: only {} samples of speech",
                    speech.len()
                );
                total += speech.len();
                // As it comes and 10 dB hotter (a loud caller).
                let hot: Vec<i16> = speech.iter().map(|&s| s.saturating_mul(3)).collect();
                for audio in [&speech, &hot] {
                    let digits = detect(audio);
                    assert!(
                        digits.is_empty(),
                        "{voice} {variant} speech detected as {digits:?}"
                    );
                }
                // Keys pressed while the caller (or the prompt's echo) speaks,
                // the pair 6 dB above the speech's RMS: every key is heard.
                let keys_level = goertzel::rms_dbm0(&speech) + 9.0;
                let pressed: String = ALL_KEYS.chars().cycle().take(speech.len() / 1600).collect();
                let over_speech = add(&speech, &generate(&pressed, 100, 100, keys_level - 3.0));
                assert_eq!(
                    keys(&over_speech),
                    pressed,
                    "{voice} {variant}: keys at {keys_level:.1} dBm0 over speech"
                );
            }
        }
        assert!(total > 8000 * 60, "only {} s of speech", total / 8000);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        #[test]
        fn generated_digits_are_decoded_exactly(
            digits in "[0-9A-D*#]{1,8}",
            on_ms in 45u32..150,
            off_ms in 45u32..150,
            level in -26.0f32..-3.0,
        ) {
            let audio = generate(&digits, on_ms, off_ms, level);
            let got: Vec<Digit> = detect(&audio);
            prop_assert_eq!(got.iter().map(|d| d.key).collect::<String>(), digits);
            for d in got {
                prop_assert!(d.duration_ms.abs_diff(on_ms) <= 6, "{:?} for {} ms", d, on_ms);
            }
        }

        #[test]
        fn arbitrary_samples_never_panic(samples in proptest::collection::vec(any::<i16>(), 0..2000)) {
            let _ = detect(&samples);
        }
    }
}
