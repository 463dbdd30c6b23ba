//! Fuzz target: the jitter buffer must never panic on any arrival pattern
//! (sequence numbers, timestamps, timing), must play each frame with its own
//! audio and keep its memory bounded. Input: see
//! `crossline_audio::fuzz_input::jitter_steps`.
#![no_main]

use crossline_audio::fuzz_input;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = fuzz_input::run_jitter(&fuzz_input::jitter_steps(data));
});
