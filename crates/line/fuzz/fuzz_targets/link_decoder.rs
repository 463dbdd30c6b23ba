//! Fuzz target: the line link's decoder (bytes from another process) must
//! return messages or an error, never panic, whatever the bytes and however
//! they are split; what it decodes encodes back to the bytes it consumed.
#![no_main]

use crossline_line::link::Decoder;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&split, bytes)) = data.split_first() else {
        return;
    };
    let cut = usize::from(split).min(bytes.len());
    let (a, b) = bytes.split_at(cut);
    let mut decoder = Decoder::new();
    let mut msgs = Vec::new();
    match decoder.push(a) {
        Ok(m) => msgs.extend(m),
        Err(_) => return,
    }
    match decoder.push(b) {
        Ok(m) => msgs.extend(m),
        Err(_) => return,
    }
    let mut again = Vec::new();
    for m in &msgs {
        m.encode(&mut again);
    }
    assert!(bytes.starts_with(&again), "decoded messages re-encode to a prefix of the input");
});
