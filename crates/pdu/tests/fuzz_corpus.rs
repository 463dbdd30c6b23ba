//! Runs every file of the checked-in fuzz seed corpus (crates/pdu/fuzz/corpus)
//! through the decoders, as the fuzz targets do, so CI exercises them on
//! stable Rust. Curated seeds named after a message type must also decode to
//! it; `found-*` files are inputs the fuzzer found to reach new code (merged
//! with `-merge=1`), which may be valid or not.

// Test helpers outside #[test] functions may unwrap and panic too.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::path::PathBuf;

use crossline_pdu::*;

fn corpus(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz")
        .join("corpus")
        .join(target);
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot read the seed corpus {}: {e}", dir.display()))
        .map(|entry| {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read(&path).unwrap())
        })
        .collect();
    files.sort();
    assert!(!files.is_empty(), "empty seed corpus {}", dir.display());
    files
}

#[test]
fn decode_corpus_runs_through_every_decoder() {
    for (name, bytes) in corpus("decode") {
        let mut reassembler = Reassembler::with_max_pending(60, 4);
        for direction in [Direction::MobileTerminated, Direction::MobileOriginated] {
            for with_smsc in [true, false] {
                if let Ok(Pdu::Deliver(d)) = decode(&bytes, direction, with_smsc) {
                    let _ = reassembler.push(&d, 0);
                }
            }
        }
        let _ = reassembler.expire(1000);
        if let Ok(text) = std::str::from_utf8(&bytes) {
            let _ = decode_hex(text, Direction::MobileTerminated, true);
        }
        let with_smsc = !name.contains("no-smsc");
        let expect = |direction| decode(&bytes, direction, with_smsc);
        if name.starts_with("deliver-") {
            assert!(
                matches!(expect(Direction::MobileTerminated), Ok(Pdu::Deliver(_))),
                "{name}: {:?}",
                expect(Direction::MobileTerminated)
            );
        } else if name.starts_with("status-report-") {
            assert!(
                matches!(
                    expect(Direction::MobileTerminated),
                    Ok(Pdu::StatusReport(_))
                ),
                "{name}: {:?}",
                expect(Direction::MobileTerminated)
            );
        } else if name.starts_with("submit-") {
            assert!(
                matches!(expect(Direction::MobileOriginated), Ok(Pdu::Submit(_))),
                "{name}: {:?}",
                expect(Direction::MobileOriginated)
            );
        } else if name.starts_with("hex-text-") {
            let text = std::str::from_utf8(&bytes).unwrap();
            assert!(
                decode_hex(text, Direction::MobileTerminated, true).is_ok(),
                "{name}"
            );
        }
    }
}

#[test]
fn ussd_corpus_runs_through_every_decoder() {
    for (name, bytes) in corpus("ussd") {
        let Some((&dcs, rest)) = bytes.split_first() else {
            continue;
        };
        let payload = String::from_utf8_lossy(rest);
        let decoded = ussd::decode(dcs, &payload);
        for format in [
            ussd::PayloadFormat::PackedGsm7Hex,
            ussd::PayloadFormat::Ucs2Hex,
            ussd::PayloadFormat::Data8Hex,
            ussd::PayloadFormat::Text,
        ] {
            let _ = ussd::decode_as(dcs, &payload, format);
        }
        if !name.starts_with("found-") {
            assert!(decoded.is_ok(), "{name}: {decoded:?}");
        }
    }
}
