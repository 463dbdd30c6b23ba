//! Goertzel filters and level measurement in dBm0.
//!
//! # Level convention
//!
//! Levels are in dBm0 on the G.711 A-law reference (ITU-T G.711 and G.168):
//! a full-scale sine (peak 32768 on the `i16` scale) is **+3.14 dBm0**, so a
//! 0 dBm0 sine has a peak of 22 827 and an RMS of 16 141. The µ-law digital
//! milliwatt reads within 0.1 dB of 0 dBm0 on this scale. A level is the RMS
//! of the signal relative to the RMS of that 0 dBm0 sine.

use crate::SAMPLE_RATE;

/// Level of a full-scale sine (peak 32768), in dBm0 (G.711 A-law overload point).
#[allow(clippy::approx_constant)] // 3.14 dB, not π
pub const FULL_SCALE_SINE_DBM0: f64 = 3.14;

/// Peak amplitude (on the `i16` scale) of a sine at `dbm0`.
#[must_use]
pub fn dbm0_to_amplitude(dbm0: f64) -> f64 {
    32768.0 * 10f64.powf((dbm0 - FULL_SCALE_SINE_DBM0) / 20.0)
}

/// Level in dBm0 of a sine with this peak amplitude.
#[must_use]
pub fn amplitude_to_dbm0(amplitude: f64) -> f64 {
    if amplitude <= 0.0 {
        return f64::NEG_INFINITY;
    }
    20.0 * (amplitude / 32768.0).log10() + FULL_SCALE_SINE_DBM0
}

/// Level in dBm0 of a signal with this RMS value.
#[must_use]
pub fn rms_to_dbm0(rms: f64) -> f64 {
    amplitude_to_dbm0(rms * std::f64::consts::SQRT_2)
}

/// RMS level of `samples` in dBm0 (`-inf` for silence or no samples).
#[must_use]
pub fn rms_dbm0(samples: &[i16]) -> f32 {
    if samples.is_empty() {
        return f32::NEG_INFINITY;
    }
    rms_to_dbm0((energy(samples) / samples.len() as f64).sqrt()) as f32
}

/// Sum of squares of `samples`.
#[must_use]
pub fn energy(samples: &[i16]) -> f64 {
    samples.iter().map(|&s| f64::from(s) * f64::from(s)).sum()
}

/// One Goertzel filter: the DFT of a block at one frequency (which need not
/// fall on a DFT bin).
#[derive(Debug, Clone, Copy)]
pub struct Goertzel {
    /// ω, radians per sample.
    omega: f64,
    /// 2·cos(ω).
    coeff: f64,
    cos: f64,
    sin: f64,
}

impl Goertzel {
    /// A filter for `freq_hz` at [`SAMPLE_RATE`].
    #[must_use]
    pub fn new(freq_hz: f64) -> Self {
        let omega = std::f64::consts::TAU * freq_hz / f64::from(SAMPLE_RATE);
        Self {
            omega,
            coeff: 2.0 * omega.cos(),
            cos: omega.cos(),
            sin: omega.sin(),
        }
    }

    /// Runs the recurrence over `samples`, returning the last two states.
    fn run(&self, samples: &[i16]) -> (f64, f64) {
        let (mut s1, mut s2) = (0.0f64, 0.0f64);
        for &x in samples {
            let s0 = f64::from(x) + self.coeff * s1 - s2;
            s2 = s1;
            s1 = s0;
        }
        (s1, s2)
    }

    /// |X(ω)|² of the block: Σ x[n]·e^(−jωn) squared in magnitude.
    #[must_use]
    pub fn power(&self, samples: &[i16]) -> f64 {
        let (s1, s2) = self.run(samples);
        (s1 * s1 + s2 * s2 - self.coeff * s1 * s2).max(0.0)
    }

    /// X(ω) = Σ x[n]·e^(−jωn) with n counted from the block's first sample,
    /// as (re, im). Consecutive blocks can be joined by rotating the later
    /// one by e^(−jω·len) of the earlier (or use [`dft_bank`]'s offset).
    #[must_use]
    pub fn dft(&self, samples: &[i16]) -> (f64, f64) {
        let (s1, s2) = self.run(samples);
        self.complex(s1, s2, samples.len(), 0)
    }

    /// X(ω) from the recurrence's last two states over `len` samples whose
    /// first is sample number `offset`.
    fn complex(&self, s1: f64, s2: f64, len: usize, offset: usize) -> (f64, f64) {
        // y = s1 − e^(−jω)·s2, then X = e^(−jω(offset + N − 1))·y.
        let y_re = s1 - self.cos * s2;
        let y_im = self.sin * s2;
        let turns = (offset + len.saturating_sub(1)) as f64;
        let (rs, rc) = (-self.omega * turns).sin_cos();
        (y_re * rc - y_im * rs, y_re * rs + y_im * rc)
    }

    /// Peak amplitude of a sine at this frequency in a block of `len`
    /// samples whose DFT power is `power`.
    #[must_use]
    pub fn amplitude(power: f64, len: usize) -> f64 {
        if len == 0 {
            return 0.0;
        }
        2.0 * power.sqrt() / len as f64
    }
}

/// Several filters' [`Goertzel::dft`] over the same block in one pass (their
/// recurrences are independent, so the CPU overlaps them), with n counted
/// from `offset`: the block is samples `offset..` of a longer one.
#[must_use]
pub fn dft_bank<const N: usize>(
    filters: &[Goertzel; N],
    samples: &[i16],
    offset: usize,
) -> [(f64, f64); N] {
    let mut s1 = [0.0f64; N];
    let mut s2 = [0.0f64; N];
    let coeffs = filters.map(|g| g.coeff);
    for &x in samples {
        let x = f64::from(x);
        for ((a, b), c) in s1.iter_mut().zip(s2.iter_mut()).zip(coeffs) {
            let s0 = x + c * *a - *b;
            *b = *a;
            *a = s0;
        }
    }
    let mut out = [(0.0, 0.0); N];
    for (((slot, g), a), b) in out.iter_mut().zip(filters).zip(s1).zip(s2) {
        *slot = g.complex(a, b, samples.len(), offset);
    }
    out
}

/// Level in dBm0 of the component of `samples` at `freq_hz` (a tone at that
/// frequency reads its own level; one off by more than about
/// `SAMPLE_RATE / samples.len()` reads much lower). Use a block of whole
/// periods, or at least a few hundred samples, for a precise reading.
#[must_use]
pub fn level_dbm0(samples: &[i16], freq_hz: f32) -> f32 {
    let g = Goertzel::new(f64::from(freq_hz));
    amplitude_to_dbm0(Goertzel::amplitude(g.power(samples), samples.len())) as f32
}

/// The strongest frequency in `samples` between `min_hz` and `max_hz` and its
/// level in dBm0, to a small fraction of `SAMPLE_RATE / samples.len()`. Meant for tests and
/// diagnostics (measuring a marker tone), not for per-frame use.
#[must_use]
pub fn peak_frequency(samples: &[i16], min_hz: f32, max_hz: f32) -> Option<(f32, f32)> {
    if samples.is_empty() || min_hz.is_nan() || max_hz.is_nan() || min_hz >= max_hz || min_hz < 0.0
    {
        return None;
    }
    let (lo, hi) = (f64::from(min_hz), f64::from(max_hz));
    let scan = |block: &[i16], from: f64, to: f64, step: f64| {
        let mut best = (from, Goertzel::new(from).power(block));
        let mut f = from;
        while f <= to {
            let p = Goertzel::new(f).power(block);
            if p > best.1 {
                best = (f, p);
            }
            f += step;
        }
        best.0
    };
    // Coarse: 40 ms (25 Hz resolution) scanned every 5 Hz; then the whole
    // signal scanned around it at a quarter of its resolution; then a
    // golden-section search within one step.
    let coarse = scan(samples.get(..320).unwrap_or(samples), lo, hi, 5.0);
    let step = (f64::from(SAMPLE_RATE) / 4.0 / samples.len() as f64).min(5.0);
    let fine = scan(
        samples,
        (coarse - 15.0).max(lo),
        (coarse + 15.0).min(hi),
        step,
    );
    let measure = |f: f64| Goertzel::new(f).power(samples);
    let (mut a, mut b) = ((fine - step).max(lo), (fine + step).min(hi));
    let ratio = (5f64.sqrt() - 1.0) / 2.0;
    while b - a > 0.01 {
        let c = b - ratio * (b - a);
        let d = a + ratio * (b - a);
        if measure(c) > measure(d) {
            b = d;
        } else {
            a = c;
        }
    }
    let freq = (a + b) / 2.0;
    let level = amplitude_to_dbm0(Goertzel::amplitude(measure(freq), samples.len()));
    Some((freq as f32, level as f32))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;
    use crate::g711;

    fn sine(freq: f64, dbm0: f64, len: usize) -> Vec<i16> {
        let a = dbm0_to_amplitude(dbm0);
        (0..len)
            .map(|n| (a * (std::f64::consts::TAU * freq * n as f64 / 8000.0).sin()).round() as i16)
            .collect()
    }

    #[test]
    fn the_digital_milliwatt_is_zero_dbm0() {
        // ITU-T G.711 Tables 5 and 6: the 8-code sequences that decode to a
        // 1 kHz sine at 0 dBm0.
        let ulaw = [0x1E, 0x0B, 0x0B, 0x1E, 0x9E, 0x8B, 0x8B, 0x9E];
        let alaw = [0x34, 0x21, 0x21, 0x34, 0xB4, 0xA1, 0xA1, 0xB4];
        for (name, pcm) in [
            ("µ-law", g711::ulaw_decode_slice(&ulaw.repeat(100))),
            ("A-law", g711::alaw_decode_slice(&alaw.repeat(100))),
        ] {
            let rms = rms_dbm0(&pcm);
            assert!(rms.abs() < 0.2, "{name} digital milliwatt reads {rms} dBm0");
            let tone = level_dbm0(&pcm, 1000.0);
            assert!(
                tone.abs() < 0.2,
                "{name} digital milliwatt's 1 kHz reads {tone} dBm0"
            );
        }
    }

    #[test]
    fn a_tone_reads_its_level_and_frequency() {
        for (freq, dbm0) in [
            (425.0, -10.0),
            (1000.0, 0.0),
            (1633.0, -26.0),
            (3100.0, -40.0),
        ] {
            let s = sine(freq, dbm0, 8000);
            let level = level_dbm0(&s, freq as f32);
            assert!(
                (f64::from(level) - dbm0).abs() < 0.1,
                "{freq} Hz at {dbm0}: {level}"
            );
            assert!((f64::from(rms_dbm0(&s)) - dbm0).abs() < 0.1);
            let (f, l) = peak_frequency(&s, 300.0, 3400.0).unwrap();
            assert!(
                (f64::from(f) - freq).abs() < 0.5,
                "{freq} Hz measured as {f}"
            );
            assert!((f64::from(l) - dbm0).abs() < 0.1);
        }
    }

    #[test]
    fn a_tone_elsewhere_reads_low() {
        let s = sine(1000.0, 0.0, 1600);
        assert!(level_dbm0(&s, 1200.0) < -40.0);
    }

    #[test]
    fn dft_of_two_halves_joins_into_the_whole() {
        let s = sine(697.0, -6.0, 160);
        let g = Goertzel::new(697.0);
        let (a_re, a_im) = g.dft(&s[..80]);
        let (b_re, b_im) = g.dft(&s[80..]);
        let omega = std::f64::consts::TAU * 697.0 / 8000.0;
        let (rs, rc) = (-omega * 80.0).sin_cos();
        let joined = (a_re + b_re * rc - b_im * rs, a_im + b_re * rs + b_im * rc);
        let whole = g.dft(&s);
        assert!((joined.0 - whole.0).abs() < 1e-6 * whole.0.abs().max(1.0));
        assert!((joined.1 - whole.1).abs() < 1e-6 * whole.1.abs().max(1.0));
        let power = g.power(&s);
        assert!((whole.0 * whole.0 + whole.1 * whole.1 - power).abs() < 1e-6 * power);
    }

    #[test]
    fn a_bank_with_an_offset_equals_single_filters_joined() {
        let s = sine(941.0, -6.0, 160);
        let filters = [
            Goertzel::new(697.0),
            Goertzel::new(941.0),
            Goertzel::new(1633.0),
        ];
        let first = dft_bank(&filters, &s[..80], 0);
        let second = dft_bank(&filters, &s[80..], 80);
        for (i, g) in filters.iter().enumerate() {
            let whole = g.dft(&s);
            let joined = (first[i].0 + second[i].0, first[i].1 + second[i].1);
            assert!(
                (joined.0 - whole.0).abs() < 1e-6 * whole.0.abs().max(1.0),
                "filter {i}"
            );
            assert!(
                (joined.1 - whole.1).abs() < 1e-6 * whole.1.abs().max(1.0),
                "filter {i}"
            );
            assert_eq!(first[i], g.dft(&s[..80]));
        }
    }

    #[test]
    fn silence_and_empty_input() {
        assert_eq!(rms_dbm0(&[]), f32::NEG_INFINITY);
        assert_eq!(rms_dbm0(&[0; 160]), f32::NEG_INFINITY);
        assert_eq!(level_dbm0(&[], 1000.0), f32::NEG_INFINITY);
        assert!(peak_frequency(&[], 300.0, 3400.0).is_none());
        assert!(peak_frequency(&[1, 2, 3], 3400.0, 300.0).is_none());
    }
}
