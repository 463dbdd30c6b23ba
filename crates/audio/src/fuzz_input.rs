//! How the fuzz targets (crates/audio/fuzz) and their corpus replay test
//! turn arbitrary bytes into audio, so both read a corpus file the same way.
//!
//! The first byte chooses the encoding of the rest (its low two bits: 0 or 3
//! 16-bit little-endian samples, 1 A-law, 2 µ-law; G.711 reaches realistic
//! levels with few bytes) and the slice size the audio is fed in (its upper
//! six bits: 1 + 7·n samples, 1 to 442).

use crate::g711;

/// (slice size, samples) for a fuzz input; `None` for an empty input.
#[must_use]
pub fn samples(data: &[u8]) -> Option<(usize, Vec<i16>)> {
    let (&mode, rest) = data.split_first()?;
    let chunk = 1 + usize::from(mode >> 2) * 7;
    let samples = match mode & 3 {
        1 => g711::alaw_decode_slice(rest),
        2 => g711::ulaw_decode_slice(rest),
        _ => rest
            .chunks_exact(2)
            .map(|b| match b {
                [lo, hi] => i16::from_le_bytes([*lo, *hi]),
                _ => 0,
            })
            .collect(),
    };
    Some((chunk, samples))
}

/// The inverse for seeds: `samples` as A-law with the given slice size
/// (rounded down to the nearest 1 + 7·n).
#[must_use]
pub fn alaw_seed(samples: &[i16], chunk: usize) -> Vec<u8> {
    let n = (chunk.saturating_sub(1) / 7).min(63) as u8;
    let mut out = vec![(n << 2) | 1];
    out.extend(g711::alaw_encode_slice(samples));
    out
}

/// One step of a jitter-buffer fuzz input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JitterStep {
    /// A packet arrives `after_us` after the previous step.
    Push {
        /// Microseconds since the previous step.
        after_us: u64,
        /// RTP sequence number.
        seq: u16,
        /// RTP timestamp.
        timestamp: u32,
    },
    /// A playout period `after_us` after the previous step.
    Pop {
        /// Microseconds since the previous step.
        after_us: u64,
    },
}

/// Jitter-buffer steps from arbitrary bytes, 8 bytes a step: byte 0's low
/// bit chooses pop (1) or push (0), byte 1 is the time since the previous
/// step in 0.5 ms units, bytes 2–3 the sequence number and 4–7 the
/// timestamp (little-endian). A trailing partial step is ignored.
#[must_use]
pub fn jitter_steps(data: &[u8]) -> Vec<JitterStep> {
    data.chunks_exact(8)
        .map(|b| match *b {
            [op, dt, s0, s1, t0, t1, t2, t3] => {
                let after_us = u64::from(dt) * 500;
                if op & 1 == 1 {
                    JitterStep::Pop { after_us }
                } else {
                    JitterStep::Push {
                        after_us,
                        seq: u16::from_le_bytes([s0, s1]),
                        timestamp: u32::from_le_bytes([t0, t1, t2, t3]),
                    }
                }
            }
            _ => JitterStep::Pop { after_us: 0 },
        })
        .collect()
}

/// The inverse for seeds.
#[must_use]
pub fn jitter_seed(steps: &[JitterStep]) -> Vec<u8> {
    let mut out = Vec::with_capacity(steps.len() * 8);
    for step in steps {
        match *step {
            JitterStep::Pop { after_us } => {
                out.extend([1, (after_us / 500).min(255) as u8, 0, 0, 0, 0, 0, 0]);
            }
            JitterStep::Push {
                after_us,
                seq,
                timestamp,
            } => {
                out.extend([0, (after_us / 500).min(255) as u8]);
                out.extend(seq.to_le_bytes());
                out.extend(timestamp.to_le_bytes());
            }
        }
    }
    out
}

/// Runs jitter-buffer steps and checks what a listener would notice: each
/// frame carries the audio pushed with its number, no frame plays twice in a
/// row, and the buffer holds at most twice its maximum delay (30 frames).
/// (Order in the buffer's unwrapped sequence space is checked by its own
/// property test; from outside, a skip ahead may look like a step back.) Returns the sequence
/// numbers played. Panics (for the fuzzer) when an invariant breaks.
#[allow(clippy::panic)]
#[must_use]
pub fn run_jitter(steps: &[JitterStep]) -> Vec<u16> {
    use crate::jitter::{JitterBuffer, JitterConfig, Packet, PlayoutKind};
    use std::time::Duration;

    let frame_of = |seq: u16| {
        let mut f = crate::pcm::SILENCE;
        f[0] = seq as i16;
        f
    };
    let mut jb = JitterBuffer::new(JitterConfig::default());
    let mut now = 0u64;
    let mut played: Vec<u16> = Vec::new();
    for step in steps {
        match *step {
            JitterStep::Push {
                after_us,
                seq,
                timestamp,
            } => {
                now += after_us;
                let packet = Packet {
                    seq,
                    timestamp,
                    frame: frame_of(seq),
                };
                jb.push(packet, Duration::from_micros(now));
            }
            JitterStep::Pop { after_us } => {
                now += after_us;
                let out = jb.pop(Duration::from_micros(now));
                if let PlayoutKind::Frame { seq } = out.kind {
                    if out.frame != frame_of(seq) {
                        panic!("frame {seq} carries another packet's audio");
                    }
                    if played.last() == Some(&seq) {
                        panic!("{seq} played twice in a row");
                    }
                    played.push(seq);
                }
            }
        }
        if jb.stats().buffered > 30 {
            panic!("{} frames buffered", jb.stats().buffered);
        }
    }
    played
}
