//! Arbitrary bytes from the serial line through the AT line splitter and the
//! line classifier (every context): must never panic nor grow without bound.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = crossline_modem::parser::exercise(data);
    // The same bytes fed one at a time give the same frames.
    let mut a = crossline_modem::parser::Splitter::new();
    let mut b = crossline_modem::parser::Splitter::new();
    a.push(data);
    for byte in data {
        b.push(std::slice::from_ref(byte));
    }
    loop {
        let (x, y) = (a.next_frame(), b.next_frame());
        assert_eq!(x, y);
        if x.is_none() {
            break;
        }
    }
});
