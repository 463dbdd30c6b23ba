//! Call-progress tones: synthesis.

use crate::SAMPLE_RATE;
use crate::goertzel::dbm0_to_amplitude;

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
