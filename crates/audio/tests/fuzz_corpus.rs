//! Runs every file of the checked-in fuzz seed corpus (crates/audio/fuzz/
//! corpus) through the detectors exactly as the fuzz targets do, so CI
//! exercises them on stable Rust. Curated seeds say what they must give:
//! `dtmf-<keys>` those keys, `tones-<kind>-<country>` that tone in that
//! country's plan; `found-*` files (inputs the fuzzer found) only must not
//! panic.

// Test helpers outside #[test] functions may unwrap and panic too.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::path::PathBuf;

use crossline_audio::dtmf::Detector;
use crossline_audio::fuzz_input;
use crossline_audio::tones::{CadenceDetector, Country, Kind};

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
        let mut keys = String::new();
        for part in samples.chunks(chunk) {
            keys.extend(detector.push(part).iter().map(|d| d.key));
        }
        keys.extend(detector.finish().map(|d| d.key));
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
