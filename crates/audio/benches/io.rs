//! Benchmarks: the CPU one active call costs per second of call in the
//! audio I/O path: the jitter buffer (50 packets in, 50 frames out, with
//! jitter, a lost and a reordered packet) and WAV recording (50 frames
//! written, the once-a-second header fix-up included, a new file every
//! 10 minutes of call). Run with `cargo bench -p crossline-audio --bench io`
//! (quick: add `-- --quick`); after criterion's figures it prints one line
//! per stage in "µs per call-second (% of one core)" for docs/BENCHMARKS.md.

// Benchmark setup may unwrap: a failure here is a broken benchmark, not input.
#![allow(clippy::unwrap_used)]

use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, Instant};

use criterion::Criterion;
use crossline_audio::FRAME_SAMPLES;
use crossline_audio::jitter::{JitterBuffer, JitterConfig, Packet};
use crossline_audio::pcm::Frame;
use crossline_audio::wav::Recorder;

/// One second of packets with their arrival offsets (µs): 0–40 ms of
/// jitter, packet 17 lost, 30 and 31 swapped.
fn packets() -> Vec<(u64, u16, Frame)> {
    let mut out: Vec<(u64, u16, Frame)> = (0..50u16)
        .filter(|&n| n != 17)
        .map(|n| {
            let jitter = u64::from(n) * 7919 % 40_000;
            let mut frame = [0; FRAME_SAMPLES];
            for (i, s) in frame.iter_mut().enumerate() {
                *s = ((i as i32 * 97 + i32::from(n) * 13) % 16_000 - 8000) as i16;
            }
            (u64::from(n) * 20_000 + 30_000 + jitter, n, frame)
        })
        .collect();
    out.swap(29, 30);
    out.sort_by_key(|p| p.0);
    out
}

/// One call-second through the jitter buffer, continuing the call `second`:
/// each packet is pushed before the first pop at or after its arrival.
fn jitter_second(jb: &mut JitterBuffer, packets: &[(u64, u16, Frame)], second: u64) -> i64 {
    let base = second * 1_000_000;
    let push = |jb: &mut JitterBuffer, &(at, n, frame): &(u64, u16, Frame)| {
        let seq = ((second * 50) as u16).wrapping_add(n);
        let packet = Packet {
            seq,
            timestamp: u32::from(seq).wrapping_mul(160),
            frame,
        };
        jb.push(packet, Duration::from_micros(base + at));
    };
    let mut sum = 0i64;
    let mut arrivals = packets.iter().peekable();
    for k in 0..50u64 {
        let now = k * 20_000 + 7_000;
        while let Some(p) = arrivals.next_if(|p| p.0 <= now) {
            push(jb, p);
        }
        sum += i64::from(jb.pop(Duration::from_micros(base + now)).frame[0]);
    }
    // The last packets of this second arrive during the next one.
    for p in arrivals {
        push(jb, p);
    }
    sum
}

/// Writes one call-second to `rec`, starting a new file every 600 seconds.
fn wav_second(rec: &mut Option<Recorder>, dir: &Path, frame: &Frame, second: u64) {
    if rec.is_none() || second.is_multiple_of(600) {
        if let Some(done) = rec.take() {
            done.finish().unwrap();
        }
        *rec = Some(Recorder::create(dir.join("bench.wav")).unwrap());
    }
    let r = rec.as_mut().unwrap();
    for _ in 0..50 {
        r.write(frame).unwrap();
    }
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
    let packets = packets();
    let dir = tempfile::tempdir().unwrap();
    let frame: Frame = packets[0].2;
    let mut jb = JitterBuffer::new(JitterConfig::default());
    let mut rec = None;
    let mut jb_second = 0u64;
    let mut wav_seconds = 0u64;

    let mut c = Criterion::default().configure_from_args();
    c.bench_function("jitter buffer, 1 s (50 packets in, 50 frames out)", |b| {
        b.iter(|| {
            jb_second += 1;
            black_box(jitter_second(&mut jb, black_box(&packets), jb_second))
        })
    });
    c.bench_function("WAV recording, 1 s (50 frames, one header fix-up)", |b| {
        b.iter(|| {
            wav_seconds += 1;
            wav_second(&mut rec, dir.path(), black_box(&frame), wav_seconds)
        })
    });
    c.final_summary();

    println!("\nCPU per call-second (one core; `cargo bench -p crossline-audio --bench io`):");
    let rows = [
        (
            "jitter buffer (50 packets in, 50 frames out)",
            per_call(|| {
                jb_second += 1;
                black_box(jitter_second(&mut jb, black_box(&packets), jb_second));
            }),
        ),
        (
            "WAV recording (8000 samples, one header fix-up)",
            per_call(|| {
                wav_seconds += 1;
                wav_second(&mut rec, dir.path(), black_box(&frame), wav_seconds);
            }),
        ),
    ];
    let total: Duration = rows.iter().map(|(_, d)| *d).sum();
    for (name, d) in rows.iter().chain(std::iter::once(&("both", total))) {
        println!(
            "- {name}: {:.1} µs ({:.3} % of one core)",
            d.as_secs_f64() * 1e6,
            d.as_secs_f64() * 100.0
        );
    }
    let stats = jb.stats();
    println!(
        "  (jitter buffer over the run: {} played, {} concealed, {} late, target {:?})",
        stats.played, stats.concealed, stats.late, stats.target_delay
    );
}
