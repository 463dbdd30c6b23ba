//! Fuzz target: USSD payload decoding in every form must not panic. The
//! first byte is the DCS, the rest the payload text.
#![no_main]

use crossline_pdu::ussd::{PayloadFormat, decode, decode_as};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&dcs, rest)) = data.split_first() else {
        return;
    };
    let payload = String::from_utf8_lossy(rest);
    let _ = decode(dcs, &payload);
    for format in [
        PayloadFormat::PackedGsm7Hex,
        PayloadFormat::Ucs2Hex,
        PayloadFormat::Data8Hex,
        PayloadFormat::Text,
    ] {
        let _ = decode_as(dcs, &payload, format);
    }
});
