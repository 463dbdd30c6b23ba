//! Fuzz target: the FSK demodulator (Bell 202 and V.23) must never panic on
//! any audio fed in any slice sizes, and cannot report more bytes than the
//! audio has room for (ten bits each) nor a mark frequency outside the band
//! it measures. Input: see `crossline_audio::fuzz_input::samples`.
#![no_main]

use crossline_audio::fsk::{Demodulator, FskEvent, FskStandard};
use crossline_audio::fuzz_input;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((chunk, samples)) = fuzz_input::samples(data) else {
        return;
    };
    for standard in [FskStandard::Bell202, FskStandard::V23] {
        let mut demod = Demodulator::new(standard);
        let mut events = Vec::new();
        for part in samples.chunks(chunk) {
            demod.push(part, &mut events);
        }
        let mut bytes = 0usize;
        for e in &events {
            if let FskEvent::Byte { mark_hz, .. } = e {
                bytes += 1;
                if let Some(hz) = mark_hz {
                    assert!((900.0..=1600.0).contains(hz), "{e:?}");
                }
            }
        }
        // A byte is 10 bits of 6⅔ samples.
        assert!(bytes * 66 <= samples.len() + 66, "{bytes} bytes in {} samples", samples.len());
    }
});
