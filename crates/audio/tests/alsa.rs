//! The ALSA backend against the real alsa-lib, with no sound card: playback
//! into ALSA's `file` plugin, capture from its `infile`, both over the `null`
//! PCM. Those devices are not paced, so the tests pace the streams with
//! [`ManualPacing`] (one period per tick).
//!
//! alsa-lib reads its configuration once per process from
//! `ALSA_CONFIG_PATH`, so each parent test writes a configuration naming its
//! own files and runs its `child_*` twin (ignored when run directly) in a
//! child process of this test binary with that variable set: tests never
//! share or race on the environment.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crossline_testkit::alsa;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crossline_audio::FRAME_SAMPLES;
use crossline_audio::alsa::{AlsaConfig, Capture, ManualPacing, Playback};
use crossline_audio::pcm::{Frame, PcmSink, PcmSource};

const DIR_ENV: &str = "CROSSLINE_ALSA_TEST_DIR";

/// Samples no device would make up: a deterministic pseudo-random walk.
fn signal(frames: usize, seed: u32) -> Vec<i16> {
    let mut x = seed;
    (0..frames * FRAME_SAMPLES)
        .map(|_| {
            x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (x >> 16) as i16
        })
        .collect()
}

fn to_bytes(samples: &[i16]) -> Vec<u8> {
    samples.iter().flat_map(|s| s.to_le_bytes()).collect()
}

fn from_bytes(bytes: &[u8]) -> Vec<i16> {
    bytes
        .chunks_exact(2)
        .map(|b| i16::from_le_bytes([b[0], b[1]]))
        .collect()
}

/// Runs the ignored test `name` of this binary in a child process with the
/// ALSA configuration for `dir` (`crossline_play`, `crossline_capture`).
fn run_child(name: &str, dir: &Path) {
    let conf = alsa::write_conf(dir, "");
    alsa::run_ignored_child(name, &conf, &[(DIR_ENV, dir)]);
}

fn child_dir() -> PathBuf {
    PathBuf::from(std::env::var_os(DIR_ENV).expect("run by its parent test"))
}

fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let until = Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(Instant::now() < until, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn played_frames_land_in_the_file_byte_exact() {
    let dir = tempfile::tempdir().unwrap();
    run_child("child_plays_frames_into_the_file", dir.path());
    let played = std::fs::read(dir.path().join("played.raw")).unwrap();
    assert_eq!(
        played.len(),
        50 * FRAME_SAMPLES * 2,
        "exactly the 50 frames"
    );
    assert_eq!(from_bytes(&played), signal(50, 7), "byte-exact");
}

#[test]
#[ignore = "run by played_frames_land_in_the_file_byte_exact in a child process"]
fn child_plays_frames_into_the_file() {
    let frames = signal(50, 7);
    let (pacer, ticks) = ManualPacing::new();
    let mut playback = Playback::open(&AlsaConfig::new("crossline_play"), pacer).unwrap();
    for frame in frames.chunks_exact(FRAME_SAMPLES) {
        let frame: &Frame = frame.try_into().unwrap();
        playback.write_frame(frame).unwrap();
        ticks.tick(1);
    }
    wait_for("50 periods played", || playback.stats().periods == 50);
    let stats = playback.stop().unwrap();
    assert_eq!(stats.periods, 50);
    assert_eq!((stats.xruns, stats.queue_underruns), (0, 0), "{stats:?}");
    let _ = child_dir();
}

#[test]
fn captured_frames_come_from_the_infile_one_per_tick() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("line-in.raw"), to_bytes(&signal(40, 3))).unwrap();
    run_child("child_captures_from_the_infile", dir.path());
}

#[test]
#[ignore = "run by captured_frames_come_from_the_infile_one_per_tick in a child process"]
fn child_captures_from_the_infile() {
    let line_in = signal(40, 3);
    assert_eq!(
        std::fs::read(child_dir().join("line-in.raw")).unwrap(),
        to_bytes(&line_in)
    );
    let (pacer, ticks) = ManualPacing::new();
    let mut config = AlsaConfig::new("crossline_capture");
    config.queue_frames = 32;
    let mut capture = Capture::open(&config, pacer).unwrap();

    // Five ticks, five frames, and no more: the device would give 40 at once.
    ticks.tick(5);
    let mut got = Vec::new();
    for _ in 0..5 {
        got.extend(capture.read_frame().unwrap().unwrap());
    }
    assert_eq!(capture.stats().periods, 5);
    assert_eq!(capture.try_recv(), None, "no frame runs ahead of the clock");

    // The async side, on the appliance's kind of runtime.
    ticks.tick(20);
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(async {
        for _ in 0..20 {
            got.extend(capture.recv().await.unwrap());
        }
    });
    assert_eq!(
        got,
        line_in[..25 * FRAME_SAMPLES],
        "the infile's samples, in order"
    );
    let stats = capture.stop().unwrap();
    assert_eq!(
        (stats.periods, stats.xruns, stats.queue_overflows),
        (25, 0, 0)
    );
}

#[test]
fn a_device_that_does_not_exist_is_an_error_naming_it() {
    let err = Capture::open(
        &AlsaConfig::new("crossline_no_such_pcm"),
        ManualPacing::new().0,
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("crossline_no_such_pcm") && err.contains("open"),
        "{err}"
    );
}
