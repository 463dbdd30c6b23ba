//! Benchmarks: the CPU one active call's audio costs per second of call,
//! for the DSP in crossline-audio: G.711 (one second encoded and one
//! decoded, both directions of a leg), DTMF detection (one second of the
//! caller's audio) and call-progress tone detection (one second of an FXO
//! line). Run with `cargo bench -p crossline-audio --bench audio` (quick:
//! add `-- --quick`); after criterion's figures it prints one line per stage
//! in "µs per call-second (% of one core)" for docs/BENCHMARKS.md.

// Benchmark setup may unwrap: a failure here is a broken benchmark, not input.
#![allow(clippy::unwrap_used)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::Criterion;
use crossline_audio::dtmf::{self, Detector};
use crossline_audio::g711;
use crossline_audio::tones::{self, CadenceDetector, Country, Kind};

/// One second of a caller's audio: keys, then a busy tone, over a
/// harmonic-rich voice-like signal (deterministic).
fn call_second() -> Vec<i16> {
    let mut audio = dtmf::generate("12#", 80, 80, -15.0);
    audio.extend(tones::generate(Country::Eu, Kind::Busy, 520, -20.0));
    audio.resize(8000, 0);
    for (n, s) in audio.iter_mut().enumerate() {
        let t = n as f64 / 8000.0;
        let voice: f64 = (1..6)
            .map(|h| 600.0 / h as f64 * (std::f64::consts::TAU * 140.0 * h as f64 * t).sin())
            .sum();
        *s = s.saturating_add(voice as i16);
    }
    audio
}

fn g711_second(audio: &[i16], codes: &mut Vec<u8>, pcm: &mut Vec<i16>) {
    g711::alaw_encode_into(audio, codes);
    g711::alaw_decode_into(codes, pcm);
}

fn dtmf_second(audio: &[i16]) -> usize {
    let mut d = Detector::new();
    audio.chunks(160).map(|f| d.push(f).len()).sum()
}

fn tones_second(audio: &[i16]) -> usize {
    let mut d = CadenceDetector::new(Country::Eu);
    audio.chunks(160).map(|f| d.push(f).len()).sum()
}

/// Mean wall time of `f` over at least half a second of repetitions.
fn per_call(mut f: impl FnMut()) -> Duration {
    let start = Instant::now();
    let mut runs = 0u32;
    while start.elapsed() < Duration::from_millis(500) {
        f();
        runs += 1;
    }
    start.elapsed() / runs.max(1)
}

fn main() {
    let audio = call_second();
    let mut codes = Vec::with_capacity(8000);
    let mut pcm = Vec::with_capacity(8000);
    let mut c = Criterion::default().configure_from_args();
    c.bench_function("G.711 A-law encode+decode, 1 s", |b| {
        b.iter(|| g711_second(black_box(&audio), &mut codes, &mut pcm))
    });
    c.bench_function("DTMF detection, 1 s in 20 ms frames", |b| {
        b.iter(|| dtmf_second(black_box(&audio)))
    });
    c.bench_function("call-progress tone detection, 1 s in 20 ms frames", |b| {
        b.iter(|| tones_second(black_box(&audio)))
    });
    c.final_summary();

    println!("\nCPU per call-second (one core; `cargo bench -p crossline-audio --bench audio`):");
    let rows = [
        (
            "G.711 A-law encode + decode (8000 + 8000 samples)",
            per_call(|| g711_second(black_box(&audio), &mut codes, &mut pcm)),
        ),
        (
            "DTMF detection (8000 samples)",
            per_call(|| {
                black_box(dtmf_second(black_box(&audio)));
            }),
        ),
        (
            "call-progress tone detection (8000 samples)",
            per_call(|| {
                black_box(tones_second(black_box(&audio)));
            }),
        ),
    ];
    let total: Duration = rows.iter().map(|(_, d)| *d).sum();
    for (name, d) in rows.iter().chain(std::iter::once(&("all three", total))) {
        println!(
            "- {name}: {:.1} µs ({:.3} % of one core)",
            d.as_secs_f64() * 1e6,
            d.as_secs_f64() * 100.0
        );
    }
}
