//! Fuzz target: every PDU decoder (both directions, with and without the
//! SMSC block) must return Ok or Err, never panic, on any bytes. Whatever
//! decodes as a DELIVER is also fed to the reassembler.
#![no_main]

use crossline_pdu::{Direction, Pdu, Reassembler, decode};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut reassembler = Reassembler::with_max_pending(60, 4);
    for direction in [Direction::MobileTerminated, Direction::MobileOriginated] {
        for with_smsc in [true, false] {
            if let Ok(Pdu::Deliver(d)) = decode(data, direction, with_smsc) {
                let _ = reassembler.push(&d, 0);
            }
        }
    }
    let _ = reassembler.expire(1000);
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = crossline_pdu::decode_hex(text, Direction::MobileTerminated, true);
    }
});
