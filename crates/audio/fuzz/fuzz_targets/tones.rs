//! Fuzz target: the call-progress cadence detector of every country must
//! never panic on any audio fed in any slice sizes, and what it reports lies
//! within the audio. Input: see `crossline_audio::fuzz_input::samples`.
#![no_main]

use crossline_audio::fuzz_input;
use crossline_audio::tones::{CadenceDetector, Country};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((chunk, samples)) = fuzz_input::samples(data) else {
        return;
    };
    for country in Country::ALL {
        let mut detector = CadenceDetector::new(country);
        for part in samples.chunks(chunk) {
            for found in detector.push(part) {
                assert!(found.started_at <= found.at_sample, "{found:?}");
                assert!(found.at_sample <= samples.len() as u64, "{found:?}");
            }
        }
    }
});
