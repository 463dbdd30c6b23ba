//! Runs every file of the checked-in fuzz seed corpus (crates/audio/fuzz/
//! corpus) through the detectors, the WAV reader and the jitter buffer
//! exactly as the fuzz targets do, so CI exercises them on stable Rust.
//! Curated seeds say what they must give: `dtmf-<keys>` those keys,
//! `tones-<kind>-<country>` that tone in that country's plan,
//! `fsk-<standard>-<hex>` those bytes after the mark signal,
//! `cid-<standard>-<number or "private">` that caller, `wav-<n>` n samples,
//! `wav-err-*` an error, `jitter-wrap` and `jitter-reorder-dup-loss` the
//! frames listed below; `found-*` files (inputs the fuzzer found) only must
//! not panic.

// Test helpers outside #[test] functions may unwrap and panic too.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::io::Cursor;
use std::path::{Path, PathBuf};

use crossline_audio::cid::{self, Absence, Decoder, Standard};
use crossline_audio::dtmf::Detector;
use crossline_audio::fsk::{Demodulator, FskEvent, FskStandard};
use crossline_audio::fuzz_input;
use crossline_audio::tones::{CadenceDetector, Country, Kind};
use crossline_audio::wav::read_wav_8k_mono_from;

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
fn dtmf_corpus() {
    for (name, bytes) in corpus("dtmf") {
        let Some((chunk, samples)) = fuzz_input::samples(&bytes) else {
            continue;
        };
        let mut detector = Detector::new();
        let mut digits = Vec::new();
        for part in samples.chunks(chunk) {
            digits.extend(detector.push(part));
        }
        digits.extend(detector.finish());
        // What the fuzz target checks: digits in order, none overlapping,
        // all within the audio.
        let mut previous_end = 0;
        for d in &digits {
            assert!(
                d.at_sample >= previous_end,
                "{name}: {d:?} overlaps the digit before"
            );
            let end = d.at_sample + u64::from(d.duration_ms) * 8;
            assert!(
                end <= samples.len() as u64 + 160,
                "{name}: {d:?} ends after the audio"
            );
            previous_end = end;
        }
        let keys: String = digits.iter().map(|d| d.key).collect();
        if let Some(expected) = name.strip_prefix("dtmf-") {
            assert_eq!(keys, expected, "{name}");
        }
    }
}

#[test]
fn tones_corpus() {
    for (name, bytes) in corpus("tones") {
        let Some((chunk, samples)) = fuzz_input::samples(&bytes) else {
            continue;
        };
        let expected = name.strip_prefix("tones-").map(|rest| {
            let (kind, country) = rest.split_once('-').unwrap();
            let kind = match kind {
                "busy" => Kind::Busy,
                "congestion" => Kind::Congestion,
                "dial" => Kind::Dial,
                other => panic!("{name}: unknown tone {other}"),
            };
            (kind, country.parse::<Country>().unwrap())
        });
        for country in Country::ALL {
            let mut detector = CadenceDetector::new(country);
            let mut found = Vec::new();
            for part in samples.chunks(chunk) {
                found.extend(detector.push(part).iter().map(|d| d.kind));
            }
            if let Some((kind, c)) = expected
                && c == country
            {
                assert_eq!(found, [kind], "{name} in {country:?}'s plan");
            }
        }
    }
}

#[test]
fn fsk_corpus() {
    for (name, bytes) in corpus("fsk") {
        let Some((chunk, samples)) = fuzz_input::samples(&bytes) else {
            continue;
        };
        let expected = name.strip_prefix("fsk-").map(|rest| {
            let (standard, hex) = rest.split_once('-').unwrap();
            let standard = match standard {
                "bell202" => FskStandard::Bell202,
                "v23" => FskStandard::V23,
                other => panic!("{name}: unknown FSK standard {other}"),
            };
            let bytes: Vec<u8> = (0..hex.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
                .collect();
            (standard, bytes)
        });
        for standard in [FskStandard::Bell202, FskStandard::V23] {
            let mut demod = Demodulator::new(standard);
            let mut events = Vec::new();
            for part in samples.chunks(chunk) {
                demod.push(part, &mut events);
            }
            if let Some((s, want)) = &expected
                && *s == standard
            {
                let got: Vec<u8> = events
                    .iter()
                    .filter_map(|e| match e {
                        FskEvent::Byte { value, .. } => Some(*value),
                        _ => None,
                    })
                    .collect();
                assert_eq!(&got, want, "{name}");
            }
        }
    }
}

#[test]
fn cid_corpus() {
    for (name, bytes) in corpus("cid") {
        let _ = cid::parse_message(&bytes);
        let Some((chunk, samples)) = fuzz_input::samples(&bytes) else {
            continue;
        };
        let expected = name.strip_prefix("cid-").map(|rest| {
            let (standard, who) = rest.split_once('-').unwrap();
            (standard.parse::<Standard>().unwrap(), who.to_string())
        });
        for standard in [Standard::Bell202, Standard::Etsi, Standard::Dtmf] {
            let mut decoder = Decoder::new(standard);
            let mut found = Vec::new();
            for part in samples.chunks(chunk) {
                found.extend(decoder.push(part));
            }
            if let Some((s, who)) = &expected
                && *s == standard
            {
                let cid = found
                    .into_iter()
                    .next()
                    .unwrap_or_else(|| decoder.finish())
                    .unwrap_or_else(|e| panic!("{name}: {e}"));
                match who.as_str() {
                    "private" => assert_eq!(cid.number_absence, Some(Absence::Private), "{name}"),
                    number => assert_eq!(cid.number.as_deref(), Some(number), "{name}"),
                }
            }
        }
    }
}

#[test]
fn wav_corpus() {
    for (name, bytes) in corpus("wav") {
        let got = read_wav_8k_mono_from(Cursor::new(&bytes), bytes.len() as u64, Path::new(&name));
        if let Ok(samples) = &got {
            assert!(samples.len() * 2 <= bytes.len(), "{name}");
        }
        if name.starts_with("wav-err-") {
            assert!(got.is_err(), "{name} must be refused");
        } else if let Some(n) = name.strip_prefix("wav-") {
            assert_eq!(got.unwrap().len(), n.parse::<usize>().unwrap(), "{name}");
        }
    }
}

#[test]
fn jitter_corpus() {
    for (name, bytes) in corpus("jitter") {
        let played = fuzz_input::run_jitter(&fuzz_input::jitter_steps(&bytes));
        let expected: Option<Vec<u16>> = match name.as_str() {
            // 40 packets in order across the sequence number wrap.
            "jitter-wrap" => Some((0..40u16).map(|k| 65_516u16.wrapping_add(k)).collect()),
            // 30 packets, 10 and 11 swapped, 5 twice, 20 lost.
            "jitter-reorder-dup-loss" => Some((1000..1030).filter(|&s| s != 1020).collect()),
            _ => None,
        };
        if let Some(expected) = expected {
            assert_eq!(played, expected, "{name}");
        }
    }
}
