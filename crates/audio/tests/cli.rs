//! The `crossline-audio` binary on WAV files the test writes (hound), as a
//! field engineer runs it on line recordings.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::Output;

use crossline_audio::cid::{self, Absence, CallerId, Standard};
use crossline_audio::dtmf;

fn write_wav(dir: &Path, name: &str, rate: u32, samples: &[i16]) -> PathBuf {
    let path = dir.join(name);
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: rate,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(&path, spec).unwrap();
    for &s in samples {
        w.write_sample(s).unwrap();
    }
    w.finalize().unwrap();
    path
}

fn run(args: &[&str]) -> Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_crossline-audio"))
        .args(args)
        .env_remove("RUST_BACKTRACE")
        .output()
        .unwrap()
}

fn json(o: &Output) -> serde_json::Value {
    assert!(
        o.status.success(),
        "status {:?}, stderr {}",
        o.status,
        String::from_utf8_lossy(&o.stderr)
    );
    serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&o.stdout)))
}

/// Fails with status 1, nothing on stdout, and one line on stderr.
fn error(o: &Output) -> String {
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    assert!(o.stdout.is_empty(), "{o:?}");
    let err = String::from_utf8(o.stderr.clone()).unwrap();
    assert_eq!(err.lines().count(), 1, "{err}");
    err
}

/// A line recording: a second of quiet line noise, the signal, another second.
fn recording(signal: &[i16]) -> Vec<i16> {
    let hiss = |i: usize| ((i * 7919 % 61) as i16) - 30;
    let mut out: Vec<i16> = (0..8000).map(hiss).collect();
    out.extend_from_slice(signal);
    out.extend((0..8000).map(hiss));
    out
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn dtmf_prints_the_digits() {
    let dir = tempfile::tempdir().unwrap();
    let f = write_wav(
        dir.path(),
        "menu.wav",
        8000,
        &recording(&dtmf::generate("2#09", 80, 80, -10.0)),
    );
    let v = json(&run(&["dtmf", s(&f)]));
    assert_eq!(v["digits"], "2#09");
    assert_eq!(v["keys"].as_array().unwrap().len(), 4);
    assert_eq!(v["keys"][0]["key"], "2");

    let quiet = write_wav(dir.path(), "quiet.wav", 8000, &recording(&[]));
    assert_eq!(json(&run(&["dtmf", s(&quiet)]))["digits"], "");
}

#[test]
fn cid_prints_the_caller_in_each_standard() {
    let dir = tempfile::tempdir().unwrap();
    let caller = CallerId {
        number: Some("380441234567".into()),
        name: Some("Olena Bondar".into()),
        time: Some("12-07 14:58".parse().unwrap()),
        ..CallerId::default()
    };
    for (standard, arg) in [(Standard::Etsi, "etsi"), (Standard::Bell202, "bell202")] {
        let f = write_wav(
            dir.path(),
            &format!("{arg}.wav"),
            8000,
            &recording(&cid::encode(&caller, standard)),
        );
        let v = json(&run(&["cid", s(&f), "--standard", arg]));
        assert_eq!(
            v,
            serde_json::json!({"number": "380441234567", "name": "Olena Bondar",
                "time": "12-07 14:58", "number_absence": null, "name_absence": null}),
            "{arg}"
        );
    }

    let f = write_wav(
        dir.path(),
        "dtmf-cid.wav",
        8000,
        &recording(&cid::encode(
            &CallerId::number("0501234567"),
            Standard::Dtmf,
        )),
    );
    let v = json(&run(&["cid", s(&f), "--standard", "dtmf"]));
    assert_eq!(v["number"], "0501234567");
    assert_eq!(v["name"], serde_json::Value::Null);

    let private = CallerId {
        number_absence: Some(Absence::Private),
        ..CallerId::default()
    };
    let f = write_wav(
        dir.path(),
        "private.wav",
        8000,
        &recording(&cid::encode(&private, Standard::Etsi)),
    );
    let v = json(&run(&["cid", s(&f), "--standard", "etsi"]));
    assert_eq!(v["number"], serde_json::Value::Null);
    assert_eq!(v["number_absence"], "private");
}

#[test]
fn cid_errors_say_what_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let bell = write_wav(
        dir.path(),
        "bell.wav",
        8000,
        &recording(&cid::encode(
            &CallerId::number("6175551234"),
            Standard::Bell202,
        )),
    );
    let err = error(&run(&["cid", s(&bell), "--standard", "etsi"]));
    assert!(err.contains("Bell 202"), "{err}");
    assert!(err.contains("--standard bell202"), "{err}");
    assert!(err.contains("bell.wav"), "{err}");

    let quiet = write_wav(dir.path(), "quiet.wav", 8000, &recording(&[]));
    let err = error(&run(&["cid", s(&quiet), "--standard", "bell202"]));
    assert!(err.contains("no Bell 202 FSK carrier"), "{err}");
    let err = error(&run(&["cid", s(&quiet), "--standard", "dtmf"]));
    assert!(err.contains("no DTMF caller ID"), "{err}");

    // One bit of one byte flipped in the audio: a checksum error, not a
    // wrong number.
    let mut bytes = cid::message(&CallerId::number("6175551234"), cid::Format::Sdmf);
    bytes[12] ^= 0x02;
    let mut m =
        crossline_audio::fsk::Modulator::new(crossline_audio::fsk::FskStandard::Bell202, -13.5);
    let mut audio = Vec::new();
    m.seizure(300, &mut audio);
    m.mark(180, &mut audio);
    for b in bytes {
        m.byte(b, &mut audio);
    }
    m.mark(4, &mut audio);
    let bad = write_wav(dir.path(), "bad.wav", 8000, &recording(&audio));
    let err = error(&run(&["cid", s(&bad), "--standard", "bell202"]));
    assert!(err.contains("checksum"), "{err}");

    let cd = write_wav(dir.path(), "cd.wav", 44_100, &[0; 4410]);
    let err = error(&run(&["cid", s(&cd), "--standard", "etsi"]));
    assert!(err.contains("44100 Hz") && err.contains("sox"), "{err}");

    let err = error(&run(&["dtmf", s(&dir.path().join("missing.wav"))]));
    assert!(err.contains("missing.wav"), "{err}");

    let o = run(&["cid", s(&bell), "--standard", "v22"]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("use etsi, bell202 or dtmf"));
}
