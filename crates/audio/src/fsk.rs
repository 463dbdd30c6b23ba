//! 1200 baud FSK as caller ID uses it: Bell 202 (Telcordia GR-30) and
//! ITU-T V.23 (ETSI EN 300 659-1), with asynchronous framing (a start bit,
//! eight data bits least significant first, a stop bit).
//!
//! The [`Modulator`] is phase-continuous (the sine never jumps at a bit
//! change) and keeps the 6⅔-samples bit clock exact over any length. The
//! [`Demodulator`] correlates each sample window of one bit length with the
//! mark and the space frequency and compares the two energies, which makes
//! the decision independent of the level; a UART on top resynchronises on
//! every start bit, so small frequency and bit-rate offsets do not
//! accumulate. It also counts the mark bits before each byte (the "mark
//! signal" that precedes a caller ID message) and measures the frequency of
//! that mark tone, so a caller of the wrong standard is told rather than
//! misread.

use std::f64::consts::TAU;

use crate::SAMPLE_RATE;
use crate::goertzel::{dbm0_to_amplitude, peak_frequency};

/// Bits per second of both standards.
pub const BAUD: u32 = 1200;

/// Samples per bit at 8 kHz (6⅔).
const SAMPLES_PER_BIT: f64 = SAMPLE_RATE as f64 / BAUD as f64;

/// Correlation window: one bit, rounded up.
const WINDOW: usize = 7;

/// The middle of a start bit is half a bit, less this many samples, after
/// the smoothed decision first says space (the window and the smoothing
/// both lag; 2 is the middle of the range that reads noisy signals and the
/// 0x55 seizure right, found by measurement).
const EDGE_LAG: f64 = 2.0;

/// Recent samples kept for measuring the mark frequency (32 ms). Together
/// with the window this is just under 40 bits, the shortest mark signal
/// the caller ID decoder accepts, so every message's mark is measured.
const MARK_MEASURE: usize = 256;

/// Carrier detection thresholds (dBm0, average power over a few bits), with
/// hysteresis. EN 300 659-1 and GR-30 receivers must work down to about
/// -40 dBm0; a few dB below that is taken as the end of the signal.
const CARRIER_ON_DBM0: f64 = -46.0;
const CARRIER_OFF_DBM0: f64 = -52.0;

/// Amplitude (16-bit scale) of a sine at `level_dbm0`, capped at full scale.
fn sine_amplitude(level_dbm0: f32) -> f64 {
    dbm0_to_amplitude(f64::from(level_dbm0)).min(32_767.0)
}

/// Mean power (of samples scaled to ±1.0) of a 0 dBm0 sine.
fn dbm0_power() -> f64 {
    let a = dbm0_to_amplitude(0.0) / 32_768.0;
    a * a / 2.0
}

/// The two FSK flavours of caller ID.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FskStandard {
    /// Bell 202: mark 1200 Hz, space 2200 Hz (North America, Telcordia GR-30).
    Bell202,
    /// ITU-T V.23 forward channel: mark 1300 Hz, space 2100 Hz (ETSI EN 300 659-1, BT SIN 227).
    V23,
}

impl FskStandard {
    /// Frequency of a 1 bit.
    pub const fn mark_hz(self) -> f64 {
        match self {
            FskStandard::Bell202 => 1200.0,
            FskStandard::V23 => 1300.0,
        }
    }

    /// Frequency of a 0 bit.
    pub const fn space_hz(self) -> f64 {
        match self {
            FskStandard::Bell202 => 2200.0,
            FskStandard::V23 => 2100.0,
        }
    }

    /// The other standard (the one a misconfigured line most likely has).
    pub const fn other(self) -> FskStandard {
        match self {
            FskStandard::Bell202 => FskStandard::V23,
            FskStandard::V23 => FskStandard::Bell202,
        }
    }

    /// Name for messages: "Bell 202" or "V.23".
    pub const fn name(self) -> &'static str {
        match self {
            FskStandard::Bell202 => "Bell 202",
            FskStandard::V23 => "V.23",
        }
    }
}

/// Phase-continuous FSK modulator with an exact 1200 baud bit clock.
#[derive(Debug, Clone)]
pub struct Modulator {
    samples_per_bit: f64,
    mark_step: f64,
    space_step: f64,
    phase: f64,
    amplitude: f64,
    /// Amplitude of the space tone relative to the mark tone.
    space_gain: f64,
    /// Samples owed to the bit clock (fractional part carried between bits).
    owed: f64,
}

impl Modulator {
    /// A modulator for `standard` sending at `level_dbm0` (caller ID is sent
    /// at about -13.5 dBm0; the amplitude is capped at full scale).
    pub fn new(standard: FskStandard, level_dbm0: f32) -> Modulator {
        Modulator::with_frequencies(
            standard.mark_hz(),
            standard.space_hz(),
            f64::from(BAUD),
            level_dbm0,
        )
    }

    /// A modulator with explicit tone frequencies and bit rate (tests use
    /// it to send off-nominal signals, as a drifting exchange would).
    pub fn with_frequencies(mark_hz: f64, space_hz: f64, baud: f64, level_dbm0: f32) -> Modulator {
        let rate = f64::from(SAMPLE_RATE);
        Modulator {
            samples_per_bit: rate / baud.max(1.0),
            mark_step: TAU * mark_hz / rate,
            space_step: TAU * space_hz / rate,
            phase: 0.0,
            amplitude: sine_amplitude(level_dbm0),
            space_gain: 1.0,
            owed: 0.0,
        }
    }

    /// Sends the space tone `db` louder (negative: quieter) than the mark
    /// tone, as a line whose loss differs between the two frequencies
    /// delivers them ("twist").
    pub fn with_twist(mut self, db: f64) -> Modulator {
        self.space_gain = 10f64.powf(db / 20.0);
        self
    }

    /// Appends one bit (`true` = mark) to `out`.
    pub fn bit(&mut self, mark: bool, out: &mut Vec<i16>) {
        self.owed += self.samples_per_bit;
        let step = if mark {
            self.mark_step
        } else {
            self.space_step
        };
        while self.owed >= 0.5 {
            self.owed -= 1.0;
            // `as` saturates; the amplitude is capped at full scale anyway.
            let gain = if mark { 1.0 } else { self.space_gain };
            out.push((self.amplitude * gain * self.phase.sin()).round() as i16);
            self.phase = (self.phase + step) % TAU;
        }
    }

    /// Appends bits in order.
    pub fn bits(&mut self, bits: impl IntoIterator<Item = bool>, out: &mut Vec<i16>) {
        for b in bits {
            self.bit(b, out);
        }
    }

    /// Appends one byte in asynchronous framing: start bit (space), eight
    /// data bits least significant first, stop bit (mark).
    pub fn byte(&mut self, value: u8, out: &mut Vec<i16>) {
        self.bit(false, out);
        for i in 0..8 {
            self.bit(value >> i & 1 == 1, out);
        }
        self.bit(true, out);
    }

    /// Appends a channel seizure signal: `bits` alternating bits, the first
    /// a 0 (EN 300 659-1 and GR-30 send 300).
    pub fn seizure(&mut self, bits: usize, out: &mut Vec<i16>) {
        self.bits((0..bits).map(|i| i % 2 == 1), out);
    }

    /// Appends a mark signal of `bits` mark bits (GR-30 sends 180,
    /// EN 300 659-1 180 ± 25 or 80 ± 25).
    pub fn mark(&mut self, bits: usize, out: &mut Vec<i16>) {
        self.bits(std::iter::repeat_n(true, bits), out);
    }
}

/// What the demodulator heard.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum FskEvent {
    /// Signal above the carrier threshold began.
    CarrierOn,
    /// A byte with a valid stop bit.
    Byte {
        /// The data bits.
        value: u8,
        /// Whole mark bits received (while the carrier was on) between the
        /// previous stop bit, or the start of the carrier, and this start bit.
        mark_bits_before: u32,
        /// When at least 40 mark bits came before the byte: the frequency
        /// of that mark tone, measured over its last 23 ms (Hz).
        mark_hz: Option<f64>,
    },
    /// A start bit whose stop bit was a space: noise, or not FSK at this rate.
    FramingError,
    /// The signal dropped below the carrier threshold.
    CarrierOff,
}

#[derive(Debug, Clone, Copy)]
enum Uart {
    /// Between bytes: counting mark samples.
    Idle { mark_samples: u32 },
    /// Inside a byte: `bit` 0 is the start bit, 1..=8 data, 9 the stop bit;
    /// `next` is the sample index at which the next bit is read.
    Byte {
        bit: u8,
        value: u8,
        next: f64,
        started: u64,
        mark_samples: u32,
    },
}

/// Streaming FSK demodulator and UART. Feed it any number of samples at a
/// time; it never allocates beyond the events it returns.
#[derive(Debug, Clone)]
pub struct Demodulator {
    standard: FskStandard,
    mark_ref: [(f64, f64); WINDOW],
    space_ref: [(f64, f64); WINDOW],
    history: [f64; WINDOW],
    pos: usize,
    /// Recent samples for measuring the mark frequency.
    recent: [i16; MARK_MEASURE],
    recent_pos: usize,
    power: f64,
    /// CARRIER_ON_DBM0 and CARRIER_OFF_DBM0 as power ratios to 0 dBm0.
    carrier_on: f64,
    carrier_off: f64,
    carrier: bool,
    last_mark: bool,
    soft: [f64; 3],
    uart: Uart,
    n: u64,
}

fn reference(hz: f64) -> [(f64, f64); WINDOW] {
    let w = TAU * hz / f64::from(SAMPLE_RATE);
    std::array::from_fn(|k| {
        let a = w * k as f64;
        (a.cos(), a.sin())
    })
}

impl Demodulator {
    /// A demodulator for `standard`.
    pub fn new(standard: FskStandard) -> Demodulator {
        Demodulator {
            standard,
            mark_ref: reference(standard.mark_hz()),
            space_ref: reference(standard.space_hz()),
            history: [0.0; WINDOW],
            pos: 0,
            recent: [0; MARK_MEASURE],
            recent_pos: 0,
            power: 0.0,
            carrier_on: 10f64.powf(CARRIER_ON_DBM0 / 10.0),
            carrier_off: 10f64.powf(CARRIER_OFF_DBM0 / 10.0),
            carrier: false,
            last_mark: true,
            soft: [0.0; 3],
            uart: Uart::Idle { mark_samples: 0 },
            n: 0,
        }
    }

    /// The standard this demodulator listens for.
    pub fn standard(&self) -> FskStandard {
        self.standard
    }

    /// Whether a signal above the carrier threshold is present now.
    pub fn carrier(&self) -> bool {
        self.carrier
    }

    /// Forgets everything heard so far.
    pub fn reset(&mut self) {
        *self = Demodulator::new(self.standard);
    }

    /// Demodulates `samples`, appending what was heard to `events`.
    pub fn push(&mut self, samples: &[i16], events: &mut Vec<FskEvent>) {
        for &s in samples {
            self.recent[self.recent_pos] = s;
            self.recent_pos = (self.recent_pos + 1) % MARK_MEASURE;
            self.sample(f64::from(s) / 32_768.0, events);
        }
    }

    fn sample(&mut self, x: f64, events: &mut Vec<FskEvent>) {
        self.n += 1;
        self.history[self.pos] = x;
        self.pos = (self.pos + 1) % WINDOW;

        // Correlate the last WINDOW samples (newest first) with both tones.
        let (mut mr, mut mi, mut sr, mut si, mut e) = (0.0, 0.0, 0.0, 0.0, 0.0);
        for (k, (m, s)) in self.mark_ref.iter().zip(&self.space_ref).enumerate() {
            let v = self.history[(self.pos + WINDOW - 1 - k) % WINDOW];
            mr += v * m.0;
            mi += v * m.1;
            sr += v * s.0;
            si += v * s.1;
            e += v * v;
        }
        let (em, es) = (mr * mr + mi * mi, sr * sr + si * si);
        // Edges and bits are read from the sum of the soft decisions of the
        // last three samples, which halves the errors in noise.
        self.soft[(self.n % 3) as usize] = (em - es) / (em + es + f64::MIN_POSITIVE);
        let mark = self.soft.iter().sum::<f64>() > 0.0;

        // Average power over about 3 bits.
        self.power += (e / WINDOW as f64 - self.power) / 20.0;
        let level = self.power / dbm0_power();
        if !self.carrier && level > self.carrier_on {
            self.carrier = true;
            self.last_mark = true;
            self.uart = Uart::Idle { mark_samples: 0 };
            events.push(FskEvent::CarrierOn);
        } else if self.carrier && level < self.carrier_off {
            self.carrier = false;
            self.uart = Uart::Idle { mark_samples: 0 };
            events.push(FskEvent::CarrierOff);
        }
        if !self.carrier {
            return;
        }

        let now = self.n;
        self.uart = match self.uart {
            Uart::Idle { mark_samples } => {
                if !mark && self.last_mark {
                    // A mark-to-space edge of the smoothed decision: the
                    // window is about half into the start bit, so its
                    // middle is half a bit later.
                    Uart::Byte {
                        bit: 0,
                        value: 0,
                        next: now as f64 + SAMPLES_PER_BIT / 2.0 - EDGE_LAG,
                        started: now,
                        mark_samples,
                    }
                } else if mark {
                    Uart::Idle {
                        mark_samples: mark_samples.saturating_add(1),
                    }
                } else {
                    Uart::Idle { mark_samples }
                }
            }
            Uart::Byte {
                bit,
                value,
                next,
                started,
                mark_samples,
            } if now as f64 >= next.round() + 1.0 => match bit {
                0 if mark => Uart::Idle {
                    // A glitch, not a start bit: the mark continues.
                    mark_samples: mark_samples
                        .saturating_add(u32::try_from(now - started).unwrap_or(u32::MAX)),
                },
                0..=8 => Uart::Byte {
                    bit: bit + 1,
                    value: if bit >= 1 && mark {
                        value | 1 << (bit - 1)
                    } else {
                        value
                    },
                    next: next + SAMPLES_PER_BIT,
                    started,
                    mark_samples,
                },
                _ => {
                    if mark {
                        let mark_bits_before = (f64::from(mark_samples) / SAMPLES_PER_BIT) as u32;
                        let mark_hz = if mark_samples as usize >= MARK_MEASURE + WINDOW {
                            self.mark_frequency(now - started)
                        } else {
                            None
                        };
                        events.push(FskEvent::Byte {
                            value,
                            mark_bits_before,
                            mark_hz,
                        });
                    } else {
                        events.push(FskEvent::FramingError);
                    }
                    Uart::Idle { mark_samples: 0 }
                }
            },
            busy @ Uart::Byte { .. } => busy,
        };
        self.last_mark = mark;
    }

    /// Frequency of the strongest tone between 900 and 1600 Hz in the
    /// recent samples before the start bit that began `ago` samples ago
    /// (and the correlation window before it): the mark tone.
    fn mark_frequency(&self, ago: u64) -> Option<f64> {
        let skip = usize::try_from(ago)
            .unwrap_or(MARK_MEASURE)
            .min(MARK_MEASURE / 2)
            + WINDOW;
        let len = MARK_MEASURE.saturating_sub(skip);
        // Oldest first.
        let mut block = [0i16; MARK_MEASURE];
        for (i, b) in block.iter_mut().enumerate() {
            *b = self.recent[(self.recent_pos + i) % MARK_MEASURE];
        }
        let (hz, _level) = peak_frequency(block.get(..len)?, 900.0, 1600.0)?;
        Some(f64::from(hz))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    fn bytes_of(events: &[FskEvent]) -> Vec<u8> {
        events
            .iter()
            .filter_map(|e| match e {
                FskEvent::Byte { value, .. } => Some(*value),
                _ => None,
            })
            .collect()
    }

    fn signal(standard: FskStandard, level: f32, payload: &[u8]) -> Vec<i16> {
        let mut m = Modulator::new(standard, level);
        let mut out = vec![0; 400];
        m.mark(100, &mut out);
        for &b in payload {
            m.byte(b, &mut out);
        }
        m.mark(10, &mut out);
        out.extend(std::iter::repeat_n(0, 400));
        out
    }

    #[test]
    fn bit_clock_is_exact_over_a_second() {
        let mut m = Modulator::new(FskStandard::Bell202, -10.0);
        let mut out = Vec::new();
        m.mark(1200, &mut out);
        assert_eq!(out.len(), 8000);
    }

    #[test]
    fn phase_is_continuous_across_bit_changes() {
        let mut m = Modulator::new(FskStandard::V23, 0.0);
        let mut out = Vec::new();
        m.seizure(60, &mut out);
        let amp = sine_amplitude(0.0);
        // The largest step of a 2100 Hz sine between samples is below
        // 2·amp·sin(π·2100/8000); a phase jump would exceed it.
        let max_step = 2.0 * amp * (std::f64::consts::PI * 2100.0 / 8000.0).sin() + 2.0;
        for w in out.windows(2) {
            assert!(
                f64::from((i32::from(w[1]) - i32::from(w[0])).abs()) <= max_step,
                "{w:?}"
            );
        }
    }

    #[test]
    fn round_trip_both_standards_and_levels() {
        let payload: Vec<u8> = (0..=255).collect();
        for standard in [FskStandard::Bell202, FskStandard::V23] {
            for level in [0.0, -13.5, -30.0, -40.0] {
                let mut d = Demodulator::new(standard);
                let mut ev = Vec::new();
                d.push(&signal(standard, level, &payload), &mut ev);
                assert_eq!(bytes_of(&ev), payload, "{standard:?} at {level} dBm0");
                assert_eq!(ev.first(), Some(&FskEvent::CarrierOn));
                assert_eq!(ev.last(), Some(&FskEvent::CarrierOff));
            }
        }
    }

    #[test]
    fn mark_signal_is_counted_and_measured() {
        let mut d = Demodulator::new(FskStandard::V23);
        let mut ev = Vec::new();
        d.push(&signal(FskStandard::V23, -20.0, &[0x80, 0x01]), &mut ev);
        let Some(FskEvent::Byte {
            value: 0x80,
            mark_bits_before,
            mark_hz: Some(hz),
        }) = ev.get(1).copied()
        else {
            panic!("{ev:?}")
        };
        assert!((95..=101).contains(&mark_bits_before), "{mark_bits_before}");
        assert!((hz - 1300.0).abs() < 5.0, "{hz}");
        // The second byte follows at once.
        assert!(matches!(
            ev.get(2),
            Some(FskEvent::Byte {
                value: 0x01,
                mark_bits_before: 0,
                mark_hz: None
            })
        ));
    }

    #[test]
    fn seizure_reads_as_0x55() {
        let mut m = Modulator::new(FskStandard::Bell202, -13.5);
        let mut out = Vec::new();
        m.seizure(300, &mut out);
        m.mark(20, &mut out);
        let mut d = Demodulator::new(FskStandard::Bell202);
        let mut ev = Vec::new();
        d.push(&out, &mut ev);
        let bytes = bytes_of(&ev);
        assert!(bytes.len() >= 28, "{ev:?}");
        assert!(bytes.iter().all(|&b| b == 0x55), "{bytes:?}");
    }
}
