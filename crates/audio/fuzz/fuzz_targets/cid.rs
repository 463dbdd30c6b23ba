//! Fuzz target: the caller ID decoders must return Ok or Err, never panic:
//! the streaming `cid::Decoder` of each standard on any audio in any slice
//! sizes (input: see `crossline_audio::fuzz_input::samples`), and the
//! message parsers (`parse_message`, `parse_dtmf`) on the raw bytes.
#![no_main]

use crossline_audio::cid::{self, Decoder, Standard};
use crossline_audio::fuzz_input;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = cid::parse_message(data);
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = cid::parse_dtmf(text);
    }
    let Some((chunk, samples)) = fuzz_input::samples(data) else {
        return;
    };
    for standard in [Standard::Bell202, Standard::Etsi, Standard::Dtmf] {
        let mut decoder = Decoder::new(standard);
        for part in samples.chunks(chunk) {
            let _ = decoder.push(part);
        }
        let _ = decoder.finish();
    }
});
