//! Fuzz target: the DTMF detector must never panic on any audio, fed in any
//! slice sizes, and the digits it reports must lie within the audio it was
//! given, in order. Input: see `crossline_audio::fuzz_input::samples`.
#![no_main]

use crossline_audio::dtmf::Detector;
use crossline_audio::fuzz_input;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((chunk, samples)) = fuzz_input::samples(data) else {
        return;
    };
    let mut detector = Detector::new();
    let mut digits = Vec::new();
    for part in samples.chunks(chunk) {
        digits.extend(detector.push(part));
    }
    digits.extend(detector.finish());
    let total = samples.len() as u64;
    let mut previous_end = 0;
    for d in digits {
        assert!(
            d.at_sample >= previous_end,
            "{d:?} overlaps the digit before"
        );
        let end = d.at_sample + u64::from(d.duration_ms) * 8;
        assert!(
            end <= total + 160,
            "{d:?} ends after the audio ({total} samples)"
        );
        previous_end = end;
    }
});
