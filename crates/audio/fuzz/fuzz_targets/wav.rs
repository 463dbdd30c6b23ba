//! Fuzz target: reading a WAV file must never panic (nor allocate more than
//! the input can hold) on any bytes; what it returns fits in the input.
#![no_main]

use std::io::Cursor;
use std::path::Path;

use crossline_audio::wav::read_wav_8k_mono_from;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let len = data.len() as u64;
    if let Ok(samples) = read_wav_8k_mono_from(Cursor::new(data), len, Path::new("fuzz.wav")) {
        assert!(samples.len() * 2 <= data.len(), "{} samples from {} bytes", samples.len(), data.len());
    }
});
