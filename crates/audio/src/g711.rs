//! ITU-T G.711 A-law and µ-law companding of 16-bit linear PCM.
//!
//! G.711 quantises a 13-bit (A-law) or 14-bit (µ-law) signed magnitude into
//! 8 segments of 16 steps each; every segment doubles the step of the one
//! below. Here the linear side is the crate's `i16`: A-law uses its top 13
//! bits, µ-law its top 14 bits, and decoding returns the reconstruction value
//! (the middle of the quantisation interval) scaled back to 16 bits, as the
//! ITU-T G.191 reference software does. Negative inputs are taken in one's
//! complement (`!x`), which makes both laws exactly symmetric: `x` and
//! `-1 - x` encode to the same code with the opposite sign bit.
//!
//! Transmitted A-law codes have their even bits inverted (`^ 0x55`);
//! transmitted µ-law codes are inverted entirely (`^ 0xFF`), so silence is
//! `0xD5`/`0x55` in A-law and `0xFF`/`0x7F` in µ-law.

/// A-law code with its even bits inverted (ITU-T G.711 §2).
const ALAW_EVEN_BITS: u8 = 0x55;
/// µ-law bias added to the 14-bit magnitude so segments start on powers of two.
const ULAW_BIAS: u16 = 33;
/// Largest biased µ-law magnitude that still fits segment 7 (8158 + 33).
const ULAW_MAX_BIASED: u16 = 0x1FFF;

/// Encodes one linear sample to A-law.
#[must_use]
pub fn alaw_encode(sample: i16) -> u8 {
    // 12-bit magnitude (0..=4095) in one's complement for negatives.
    let (sign, magnitude) = if sample >= 0 {
        (0x80u8, (sample >> 3) as u16)
    } else {
        (0x00u8, ((!sample) >> 3) as u16)
    };
    // Segment 0 and 1 share the step of 2 (in 13-bit units); from segment 2 on
    // the segment number is the position of the top set bit above bit 4.
    let code = if magnitude < 32 {
        (magnitude >> 1) as u8
    } else {
        let top = 15 - magnitude.leading_zeros() as u16; // 5..=11
        let segment = top - 4; // 1..=7
        let mantissa = (magnitude >> (top - 4)) & 0x0F;
        ((segment << 4) | mantissa) as u8
    };
    (sign | code) ^ ALAW_EVEN_BITS
}

/// Decodes one A-law code to a linear sample.
#[must_use]
pub fn alaw_decode(code: u8) -> i16 {
    let code = code ^ ALAW_EVEN_BITS;
    let segment = i32::from((code >> 4) & 0x07);
    let mantissa = i32::from(code & 0x0F);
    // Middle of the interval on the 12-bit magnitude scale: 2m + 1 in
    // segment 0, (2m + 33) * 2^(s-1) above it.
    let magnitude = if segment == 0 {
        (mantissa << 1) | 1
    } else {
        ((mantissa << 1) | 0x21) << (segment - 1)
    };
    // Back to 16 bits.
    let linear = magnitude << 3;
    if code & 0x80 != 0 {
        linear as i16
    } else {
        (-linear) as i16
    }
}

/// Encodes one linear sample to µ-law.
#[must_use]
pub fn ulaw_encode(sample: i16) -> u8 {
    // 13-bit magnitude (0..=8191) in one's complement for negatives; before
    // the final inversion, bit 7 set means negative.
    let (sign, magnitude) = if sample >= 0 {
        (0x00u8, (sample >> 2) as u16)
    } else {
        (0x80u8, ((!sample) >> 2) as u16)
    };
    let biased = (magnitude + ULAW_BIAS).min(ULAW_MAX_BIASED);
    let top = 15 - biased.leading_zeros() as u16; // 5..=12
    let segment = top - 5;
    let mantissa = (biased >> (top - 4)) & 0x0F;
    !(sign | ((segment << 4) | mantissa) as u8)
}

/// Decodes one µ-law code to a linear sample.
#[must_use]
pub fn ulaw_decode(code: u8) -> i16 {
    let code = !code;
    let segment = i32::from((code >> 4) & 0x07);
    let mantissa = i32::from(code & 0x0F);
    // Middle of the interval in 14-bit units: ((2m + 33) << e) - 33.
    let magnitude = (((mantissa << 1) + i32::from(ULAW_BIAS)) << segment) - i32::from(ULAW_BIAS);
    let linear = magnitude << 2;
    if code & 0x80 != 0 {
        (-linear) as i16
    } else {
        linear as i16
    }
}

/// Encodes `samples` to A-law into `out` (cleared first).
pub fn alaw_encode_into(samples: &[i16], out: &mut Vec<u8>) {
    out.clear();
    out.extend(samples.iter().map(|&s| alaw_encode(s)));
}

/// Decodes A-law `codes` into `out` (cleared first).
pub fn alaw_decode_into(codes: &[u8], out: &mut Vec<i16>) {
    out.clear();
    out.extend(codes.iter().map(|&c| alaw_decode(c)));
}

/// Encodes `samples` to µ-law into `out` (cleared first).
pub fn ulaw_encode_into(samples: &[i16], out: &mut Vec<u8>) {
    out.clear();
    out.extend(samples.iter().map(|&s| ulaw_encode(s)));
}

/// Decodes µ-law `codes` into `out` (cleared first).
pub fn ulaw_decode_into(codes: &[u8], out: &mut Vec<i16>) {
    out.clear();
    out.extend(codes.iter().map(|&c| ulaw_decode(c)));
}

/// A-law encoding of a slice.
#[must_use]
pub fn alaw_encode_slice(samples: &[i16]) -> Vec<u8> {
    samples.iter().map(|&s| alaw_encode(s)).collect()
}

/// A-law decoding of a slice.
#[must_use]
pub fn alaw_decode_slice(codes: &[u8]) -> Vec<i16> {
    codes.iter().map(|&c| alaw_decode(c)).collect()
}

/// µ-law encoding of a slice.
#[must_use]
pub fn ulaw_encode_slice(samples: &[i16]) -> Vec<u8> {
    samples.iter().map(|&s| ulaw_encode(s)).collect()
}

/// µ-law decoding of a slice.
#[must_use]
pub fn ulaw_decode_slice(codes: &[u8]) -> Vec<i16> {
    codes.iter().map(|&c| ulaw_decode(c)).collect()
}

/// Which G.711 law a channel carries (A-law in Europe and most of the world,
/// µ-law in North America and Japan).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Law {
    /// G.711 A-law (PCMA, RTP payload type 8).
    Alaw,
    /// G.711 µ-law (PCMU, RTP payload type 0).
    Ulaw,
}

impl Law {
    /// Encodes one sample with this law.
    #[must_use]
    pub fn encode(self, sample: i16) -> u8 {
        match self {
            Law::Alaw => alaw_encode(sample),
            Law::Ulaw => ulaw_encode(sample),
        }
    }

    /// Decodes one code with this law.
    #[must_use]
    pub fn decode(self, code: u8) -> i16 {
        match self {
            Law::Alaw => alaw_decode(code),
            Law::Ulaw => ulaw_decode(code),
        }
    }

    /// The code for digital silence (positive zero).
    #[must_use]
    pub fn silence(self) -> u8 {
        self.encode(0)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;
    use proptest::prelude::*;

    // The reference below is built from G.711's tables, not from the bit
    // arithmetic above: each law is a list of segments given by where they
    // start and how wide their 16 steps are (in the standard's own units:
    // 4096 for A-law, 8159 for µ-law), the decision values are the step
    // edges, the reconstruction value is the middle of each step (µ-law's
    // first step [0, 1) reconstructs to 0), and a code is the step's index
    // counted upwards from zero.

    struct Law711 {
        /// Lower decision value of each of the 128 steps, then the top.
        edges: Vec<i32>,
        /// Reconstruction value of each step.
        values: Vec<i32>,
        /// Linear-16 units per unit of the standard's scale.
        scale: i32,
    }

    fn alaw_reference() -> Law711 {
        // (start, step) of segments 0..=7 on the 4096 scale.
        let segments = [
            (0, 2),
            (32, 2),
            (64, 4),
            (128, 8),
            (256, 16),
            (512, 32),
            (1024, 64),
            (2048, 128),
        ];
        let mut edges = Vec::new();
        let mut values = Vec::new();
        for (start, step) in segments {
            for i in 0..16 {
                let lo = start + i * step;
                edges.push(lo);
                values.push(lo + step / 2);
            }
        }
        edges.push(4096);
        Law711 {
            edges,
            values,
            scale: 8,
        }
    }

    fn ulaw_reference() -> Law711 {
        // Segment 0 has a first step [0, 1) and 15 steps of 2, then each
        // segment's 16 steps double.
        let mut edges = vec![0];
        let mut values = vec![0];
        let mut lo = 1;
        for i in 0..15 {
            edges.push(lo + 2 * i);
            values.push(lo + 2 * i + 1);
        }
        lo = 31;
        let mut step = 4;
        for _segment in 1..8 {
            for _ in 0..16 {
                edges.push(lo);
                values.push(lo + step / 2);
                lo += step;
            }
            step *= 2;
        }
        edges.push(lo); // 8159
        assert_eq!(lo, 8159);
        Law711 {
            edges,
            values,
            scale: 4,
        }
    }

    impl Law711 {
        /// Step index for a magnitude on the standard's scale (clipped).
        fn step_of(&self, magnitude: i32) -> usize {
            let top = self.edges.len() - 2;
            (0..=top)
                .rev()
                .find(|&i| magnitude >= self.edges[i])
                .unwrap_or(0)
        }
    }

    fn reference_alaw_encode(x: i16) -> u8 {
        let law = alaw_reference();
        let negative = x < 0;
        // One's complement for negatives, then the 13-bit scale (4096 steps of 8).
        let magnitude = if negative {
            -(i32::from(x)) - 1
        } else {
            i32::from(x)
        } / law.scale;
        let index = law.step_of(magnitude) as u8;
        let sign = if negative { 0 } else { 0x80 };
        (sign | index) ^ 0x55
    }

    fn reference_alaw_decode(code: u8) -> i16 {
        let law = alaw_reference();
        let raw = code ^ 0x55;
        let value = law.values[usize::from(raw & 0x7F)] * law.scale;
        (if raw & 0x80 != 0 { value } else { -value }) as i16
    }

    fn reference_ulaw_encode(x: i16) -> u8 {
        let law = ulaw_reference();
        let negative = x < 0;
        let magnitude = if negative {
            -(i32::from(x)) - 1
        } else {
            i32::from(x)
        } / law.scale;
        let index = law.step_of(magnitude) as u8;
        // µ-law: a set sign bit on the line means positive, and the whole code is inverted.
        let line_sign = if negative { 0 } else { 0x80 };
        (line_sign | index) ^ 0x7F
    }

    fn reference_ulaw_decode(code: u8) -> i16 {
        let law = ulaw_reference();
        let value = law.values[usize::from((code ^ 0x7F) & 0x7F)] * law.scale;
        (if code & 0x80 != 0 { value } else { -value }) as i16
    }

    #[test]
    fn alaw_encode_matches_the_standard_for_every_sample() {
        for x in i16::MIN..=i16::MAX {
            assert_eq!(
                alaw_encode(x),
                reference_alaw_encode(x),
                "A-law encode of {x}"
            );
        }
    }

    #[test]
    fn alaw_decode_matches_the_standard_for_every_code() {
        for c in 0..=255u8 {
            assert_eq!(
                alaw_decode(c),
                reference_alaw_decode(c),
                "A-law decode of {c:#04x}"
            );
        }
    }

    #[test]
    fn ulaw_encode_matches_the_standard_for_every_sample() {
        for x in i16::MIN..=i16::MAX {
            assert_eq!(
                ulaw_encode(x),
                reference_ulaw_encode(x),
                "µ-law encode of {x}"
            );
        }
    }

    #[test]
    fn ulaw_decode_matches_the_standard_for_every_code() {
        for c in 0..=255u8 {
            assert_eq!(
                ulaw_decode(c),
                reference_ulaw_decode(c),
                "µ-law decode of {c:#04x}"
            );
        }
    }

    #[test]
    fn known_codes_from_the_standard() {
        // Silence.
        assert_eq!(alaw_encode(0), 0xD5);
        assert_eq!(alaw_encode(-1), 0x55);
        assert_eq!(ulaw_encode(0), 0xFF);
        assert_eq!(ulaw_encode(-1), 0x7F);
        assert_eq!(ulaw_decode(0xFF), 0);
        assert_eq!(ulaw_decode(0x7F), 0);
        // Extremes: the largest reconstruction values of each law.
        assert_eq!(alaw_decode(0xAA), 32256);
        assert_eq!(alaw_decode(0x2A), -32256);
        assert_eq!(ulaw_decode(0x80), 32124);
        assert_eq!(ulaw_decode(0x00), -32124);
        assert_eq!(alaw_encode(i16::MAX), 0xAA);
        assert_eq!(ulaw_encode(i16::MIN), 0x00);
    }

    #[test]
    fn decode_then_encode_gives_the_same_code() {
        for c in 0..=255u8 {
            assert_eq!(alaw_encode(alaw_decode(c)), c, "A-law {c:#04x}");
            // µ-law has two zeros (0x7F and 0xFF); both decode to 0, which encodes to 0xFF.
            let expected = if c == 0x7F { 0xFF } else { c };
            assert_eq!(ulaw_encode(ulaw_decode(c)), expected, "µ-law {c:#04x}");
        }
    }

    #[test]
    fn both_laws_are_symmetric_and_monotonic() {
        let mut previous_a = i16::MIN;
        let mut previous_u = i16::MIN;
        for x in i16::MIN..=i16::MAX {
            let a = alaw_decode(alaw_encode(x));
            let u = ulaw_decode(ulaw_encode(x));
            assert!(a >= previous_a && u >= previous_u, "not monotonic at {x}");
            previous_a = a;
            previous_u = u;
            let mirror = -1 - x;
            assert_eq!(
                alaw_encode(x) ^ 0x80,
                alaw_encode(mirror),
                "A-law symmetry at {x}"
            );
            assert_eq!(
                ulaw_encode(x) ^ 0x80,
                ulaw_encode(mirror),
                "µ-law symmetry at {x}"
            );
        }
    }

    #[test]
    fn slice_helpers_agree_with_the_sample_functions() {
        let samples: Vec<i16> = (-300..300).map(|i| (i * 109) as i16).collect();
        let a = alaw_encode_slice(&samples);
        let u = ulaw_encode_slice(&samples);
        let mut buf = Vec::new();
        alaw_encode_into(&samples, &mut buf);
        assert_eq!(buf, a);
        ulaw_encode_into(&samples, &mut buf);
        assert_eq!(buf, u);
        let mut lin = Vec::new();
        alaw_decode_into(&a, &mut lin);
        assert_eq!(lin, alaw_decode_slice(&a));
        ulaw_decode_into(&u, &mut lin);
        assert_eq!(lin, ulaw_decode_slice(&u));
        assert_eq!(Law::Alaw.silence(), 0xD5);
        assert_eq!(Law::Ulaw.silence(), 0xFF);
    }

    proptest! {
        /// The round trip error stays within half a quantisation step of the
        /// segment the sample falls in (G.711's whole promise).
        #[test]
        fn round_trip_error_is_within_half_a_step(x in any::<i16>()) {
            let a = i32::from(alaw_decode(alaw_encode(x)));
            let magnitude = i32::from(x).abs();
            // A-law step in 16-bit units: 16 below 512, then doubling per segment.
            let a_step = if magnitude < 512 { 16 } else { 16 << (31 - (magnitude as u32).leading_zeros() - 8) };
            prop_assert!((a - i32::from(x)).abs() <= a_step / 2 + 8, "A-law {} -> {}", x, a);
            let u = i32::from(ulaw_decode(ulaw_encode(x)));
            prop_assert!((u - i32::from(x)).abs() <= (magnitude / 16).max(8) + 4, "µ-law {} -> {}", x, u);
        }

        #[test]
        fn re_encoding_a_decoded_sample_is_stable(x in any::<i16>()) {
            let a = alaw_encode(x);
            prop_assert_eq!(alaw_encode(alaw_decode(a)), a);
            let u = ulaw_encode(x);
            let back = ulaw_encode(ulaw_decode(u));
            prop_assert!(back == u || (u == 0x7F && back == 0xFF));
        }
    }
}
