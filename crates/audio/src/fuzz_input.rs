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
