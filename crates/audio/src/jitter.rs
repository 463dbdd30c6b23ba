//! An adaptive jitter buffer for 20 ms G.711 frames.
//!
//! Packets ([`Packet`]: RTP-style 16-bit sequence number, 32-bit timestamp
//! in samples, one decoded 20 ms frame) go in as they arrive
//! ([`JitterBuffer::push`]); the playout clock takes one frame out every
//! 20 ms ([`JitterBuffer::pop`]). Both take the current time as an argument
//! (time since any fixed start), so the buffer is driven by whatever clock
//! drives playout and tests run it on a simulated one.
//!
//! - Order: frames come out by sequence number; a duplicate is dropped, a
//!   packet whose slot has already been played (or concealed) is late,
//!   dropped and counted. Sequence numbers and timestamps wrap.
//! - Delay: the target is the 95th percentile of the packets' transit-time
//!   variation over the last `window` packets, rounded up to whole frames,
//!   plus one frame, within `min_delay..=max_delay`. Below target the buffer
//!   grows (a missing frame is held for: concealed without giving up its
//!   slot); when for a whole second it never ran below target + 1 frame it
//!   drops one frame; beyond `max_delay` it skips ahead at once.
//! - Loss: a frame missing while later ones are buffered is lost: the last
//!   frame is repeated at 3/4, 1/2, 1/4 of its level, then silence.

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use crate::FRAME_SAMPLES;
use crate::error::AudioError;
use crate::g711::Law;
use crate::pcm::{Frame, SILENCE};

/// One frame's duration.
const FRAME: Duration = Duration::from_millis(20);
const FRAME_US: i64 = 20_000;
/// Microseconds per sample at 8 kHz.
const US_PER_SAMPLE: i64 = 125;
/// Playout periods over which the buffer's low water mark is watched before
/// it is shrunk by a frame (one second).
const SHRINK_PERIODS: u32 = 50;
/// Concealed frames (repeats of the last frame, fading) before silence.
const FADE_STEPS: u32 = 3;

/// Bounds and memory of the delay adaptation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JitterConfig {
    /// The least delay the buffer keeps (default 40 ms).
    pub min_delay: Duration,
    /// The most delay it may grow to (default 300 ms); more than this
    /// buffered and it skips ahead.
    pub max_delay: Duration,
    /// Packets over which jitter is measured (default 100: 2 s).
    pub window: usize,
}

impl Default for JitterConfig {
    fn default() -> Self {
        Self {
            min_delay: Duration::from_millis(40),
            max_delay: Duration::from_millis(300),
            window: 100,
        }
    }
}

/// One received packet: a 20 ms frame with its RTP sequence number and
/// timestamp (in samples).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet {
    /// RTP sequence number (wraps).
    pub seq: u16,
    /// RTP timestamp in 8 kHz samples (wraps).
    pub timestamp: u32,
    /// The decoded audio.
    pub frame: Frame,
}

impl Packet {
    /// A packet from a G.711 payload, which must be one 20 ms frame (160
    /// bytes).
    pub fn from_g711(
        seq: u16,
        timestamp: u32,
        payload: &[u8],
        law: Law,
    ) -> Result<Self, AudioError> {
        if payload.len() != FRAME_SAMPLES {
            return Err(AudioError::Payload { got: payload.len() });
        }
        let mut frame = SILENCE;
        for (s, &code) in frame.iter_mut().zip(payload) {
            *s = law.decode(code);
        }
        Ok(Self {
            seq,
            timestamp,
            frame,
        })
    }
}

/// What [`JitterBuffer::push`] did with a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pushed {
    /// Kept for playout.
    Buffered,
    /// The same sequence number is already buffered: dropped.
    Duplicate,
    /// Its slot has already been played or concealed: dropped.
    Late,
}

/// What one playout period produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlayoutKind {
    /// The frame with this sequence number.
    Frame {
        /// Its RTP sequence number.
        seq: u16,
    },
    /// A repeat of the last frame, faded (a frame was lost or is late).
    Concealed,
    /// Silence: nothing received yet, or concealment has faded out.
    Silence,
}

/// One frame of playout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Playout {
    /// The audio to play.
    pub frame: Frame,
    /// Where it came from.
    pub kind: PlayoutKind,
}

/// Counters and current figures.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct JitterStats {
    /// Packets pushed (all of them).
    pub received: u64,
    /// Frames played as received.
    pub played: u64,
    /// Periods filled by concealment or silence.
    pub concealed: u64,
    /// Frames given up as lost (a later frame had arrived).
    pub lost: u64,
    /// Packets that arrived after their slot: dropped.
    pub late: u64,
    /// Duplicate packets dropped.
    pub duplicates: u64,
    /// Frames dropped to bring the delay down.
    pub shrunk: u64,
    /// Times the buffer skipped ahead because it held more than
    /// `max_delay`, or a sequence number jumped.
    pub resyncs: u64,
    /// Interarrival jitter (RFC 3550 estimator), milliseconds.
    pub jitter_ms: f64,
    /// The delay the buffer currently aims for.
    pub target_delay: Duration,
    /// How long the last played frame waited in the buffer.
    pub last_delay: Duration,
    /// How long played frames wait in the buffer, smoothed over about the
    /// last 16 frames.
    pub mean_delay: Duration,
    /// Frames currently buffered.
    pub buffered: usize,
}

#[derive(Debug, Clone)]
struct Slot {
    frame: Frame,
    arrived: Duration,
}

/// The adaptive jitter buffer; see the module documentation.
#[derive(Debug, Clone)]
pub struct JitterBuffer {
    config: JitterConfig,
    min_frames: i64,
    max_frames: i64,
    frames: BTreeMap<i64, Slot>,
    /// Highest extended sequence number received, and its RTP value.
    highest: Option<(i64, u16)>,
    /// Extended timestamp of the last packet, and its RTP value.
    last_ts: Option<(i64, u32)>,
    /// Transit of the last packet (µs) for the RFC 3550 estimator.
    last_transit: Option<i64>,
    transits: VecDeque<i64>,
    /// Reused for the percentile, so a push allocates nothing.
    sorted: Vec<i64>,
    target_frames: i64,
    first_arrival: Option<Duration>,
    /// Next extended sequence number to play, once playout has started.
    next: Option<i64>,
    low_water: i64,
    periods_watched: u32,
    last_frame: Frame,
    concealed_run: u32,
    stats: JitterStats,
}

/// Whole frames covering `us` microseconds (rounded up; 0 for none).
fn frames_for_us(us: i64) -> i64 {
    us.max(0).saturating_add(FRAME_US - 1) / FRAME_US
}

fn frames_in(d: Duration) -> i64 {
    frames_for_us(us(d)).max(1)
}

fn us(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

fn frames_duration(frames: i64) -> Duration {
    FRAME * u32::try_from(frames.max(0)).unwrap_or(u32::MAX)
}

impl JitterBuffer {
    /// An empty buffer.
    pub fn new(config: JitterConfig) -> Self {
        let min_frames = frames_in(config.min_delay);
        let max_frames = frames_in(config.max_delay).max(min_frames);
        Self {
            config: JitterConfig {
                window: config.window.max(1),
                ..config
            },
            min_frames,
            max_frames,
            frames: BTreeMap::new(),
            highest: None,
            last_ts: None,
            last_transit: None,
            transits: VecDeque::new(),
            sorted: Vec::new(),
            target_frames: min_frames,
            first_arrival: None,
            next: None,
            low_water: i64::MAX,
            periods_watched: 0,
            last_frame: SILENCE,
            concealed_run: 0,
            stats: JitterStats::default(),
        }
    }

    /// Counters and current figures.
    pub fn stats(&self) -> JitterStats {
        JitterStats {
            target_delay: self.target_delay(),
            buffered: self.frames.len(),
            ..self.stats
        }
    }

    /// The delay the buffer currently aims for.
    pub fn target_delay(&self) -> Duration {
        frames_duration(self.target_frames)
    }

    /// Takes a packet that arrived at `now`.
    pub fn push(&mut self, packet: Packet, now: Duration) -> Pushed {
        self.stats.received += 1;
        let ext = match self.highest {
            None => i64::from(packet.seq),
            Some((high, high_seq)) => high + i64::from(packet.seq.wrapping_sub(high_seq) as i16),
        };
        if self.frames.contains_key(&ext) {
            self.stats.duplicates += 1;
            return Pushed::Duplicate;
        }
        self.measure(packet.timestamp, now);
        if self.next.is_some_and(|next| ext < next) {
            self.stats.late += 1;
            return Pushed::Late;
        }
        if self.highest.is_none_or(|(high, _)| ext > high) {
            self.highest = Some((ext, packet.seq));
        }
        self.first_arrival.get_or_insert(now);
        self.frames.insert(
            ext,
            Slot {
                frame: packet.frame,
                arrived: now,
            },
        );
        // Bounded memory whatever arrives: keep the newest frames.
        while self.frames.len() > usize::try_from(self.max_frames * 2).unwrap_or(usize::MAX) {
            self.frames.pop_first();
        }
        Pushed::Buffered
    }

    /// Updates the jitter figures with a packet's timestamp and arrival.
    fn measure(&mut self, timestamp: u32, now: Duration) {
        let ts = match self.last_ts {
            None => i64::from(timestamp),
            Some((last, last_raw)) => last + i64::from(timestamp.wrapping_sub(last_raw) as i32),
        };
        self.last_ts = Some((ts, timestamp));
        let transit = us(now).saturating_sub(ts.saturating_mul(US_PER_SAMPLE));
        if let Some(last) = self.last_transit {
            let d = transit.saturating_sub(last).unsigned_abs() as f64 / 1000.0;
            self.stats.jitter_ms += (d - self.stats.jitter_ms) / 16.0;
        }
        self.last_transit = Some(transit);
        self.transits.push_back(transit);
        while self.transits.len() > self.config.window {
            self.transits.pop_front();
        }
        self.sorted.clear();
        self.sorted.extend(self.transits.iter().copied());
        let rank = self.sorted.len().saturating_sub(1) * 95 / 100;
        let base = self.sorted.iter().copied().min().unwrap_or(0);
        let p95 = if rank < self.sorted.len() {
            *self.sorted.select_nth_unstable(rank).1
        } else {
            base
        };
        let spread = p95.saturating_sub(base);
        self.target_frames = (frames_for_us(spread) + 1).clamp(self.min_frames, self.max_frames);
    }

    /// The frame for the playout period at `now`.
    pub fn pop(&mut self, now: Duration) -> Playout {
        let Some(mut next) = self.next else {
            return self.start(now);
        };
        let highest = self.highest.map_or(next - 1, |(h, _)| h);
        let level = highest - next + 1;

        // Far behind (a burst after a stall, or a sequence jump): skip
        // ahead to the target delay at once.
        if level > self.max_frames {
            next = highest - self.target_frames + 1;
            self.frames = self.frames.split_off(&next);
            self.stats.resyncs += 1;
            tracing::debug!(
                next,
                target = self.target_frames,
                "jitter buffer skipped ahead"
            );
        } else {
            // Above target + 1 for a whole second: drop a frame.
            self.low_water = self.low_water.min(level);
            self.periods_watched += 1;
            if self.periods_watched >= SHRINK_PERIODS {
                if self.low_water > self.target_frames + 1 && self.frames.remove(&next).is_some() {
                    next += 1;
                    self.stats.shrunk += 1;
                }
                self.low_water = i64::MAX;
                self.periods_watched = 0;
            }
        }

        if let Some(slot) = self.frames.remove(&next) {
            self.next = Some(next + 1);
            self.stats.played += 1;
            let waited = now.saturating_sub(slot.arrived);
            self.stats.last_delay = waited;
            self.stats.mean_delay = if self.stats.played == 1 {
                waited
            } else {
                (self.stats.mean_delay * 15 + waited) / 16
            };
            self.last_frame = slot.frame;
            self.concealed_run = 0;
            let seq = self.highest.map_or(0, |(h, h_seq)| {
                h_seq.wrapping_sub(u16::try_from((h - next).rem_euclid(65_536)).unwrap_or(0))
            });
            return Playout {
                frame: slot.frame,
                kind: PlayoutKind::Frame { seq },
            };
        }

        // Missing. Given up if later frames are here and the buffer is at
        // its target; otherwise held for (the delay grows by a frame).
        let later_buffered = self.frames.range(next..).next().is_some();
        let level = highest - next + 1;
        if later_buffered && level >= self.target_frames {
            self.next = Some(next + 1);
            self.stats.lost += 1;
        } else {
            self.next = Some(next);
        }
        self.conceal()
    }

    /// Before playout has started: silence until the first packet has
    /// waited the target delay, then the first frame.
    fn start(&mut self, now: Duration) -> Playout {
        let ready = self
            .first_arrival
            .is_some_and(|first| now.saturating_sub(first) >= self.target_delay());
        match self.frames.first_key_value() {
            Some((&first, _)) if ready => {
                self.next = Some(first);
                self.pop(now)
            }
            _ => {
                self.stats.concealed += 1;
                Playout {
                    frame: SILENCE,
                    kind: PlayoutKind::Silence,
                }
            }
        }
    }

    fn conceal(&mut self) -> Playout {
        self.stats.concealed += 1;
        self.concealed_run = self.concealed_run.saturating_add(1);
        if self.concealed_run > FADE_STEPS {
            return Playout {
                frame: SILENCE,
                kind: PlayoutKind::Silence,
            };
        }
        // 3/4, 2/4, 1/4 of the last frame's level.
        let gain = i32::try_from(FADE_STEPS + 1 - self.concealed_run).unwrap_or(0);
        let mut frame = self.last_frame;
        for s in &mut frame {
            // |s * gain / 4| <= |s|: always fits.
            *s = i16::try_from(i32::from(*s) * gain / 4).unwrap_or(0);
        }
        Playout {
            frame,
            kind: PlayoutKind::Concealed,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;
    use proptest::prelude::*;

    /// A small seeded generator (splitmix64) for network conditions.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        }

        /// Uniform in [0, 1).
        fn unit(&mut self) -> f64 {
            (self.next() >> 11) as f64 / (1u64 << 53) as f64
        }
    }

    /// A phase of the network: packets, jitter (uniform 0..jitter_ms added
    /// to a 30 ms base), loss probability.
    #[derive(Clone, Copy)]
    struct Phase {
        packets: u32,
        jitter_ms: f64,
        loss: f64,
    }

    /// The frame that carries packet number `n` (so playout can be checked).
    fn frame_of(n: u32) -> Frame {
        let mut f = [0; FRAME_SAMPLES];
        f[0] = (n % 30_000) as i16;
        f[1] = 1000;
        f
    }

    struct Run {
        /// (pop time, packet number played) for frames played.
        played: Vec<(Duration, u32)>,
        /// Stats snapshots at the end of each phase.
        at_phase_end: Vec<JitterStats>,
        /// Packets sent (not lost) by the end of each phase.
        stats: JitterStats,
        periods: usize,
    }

    /// Sends `phases` of packets every 20 ms from sequence `seq0`, timestamp
    /// `ts0`, through the simulated network (each packet twice if
    /// `duplicate`), and pops every 20 ms on the receiver's clock (7 ms out
    /// of phase with the sender's) until 1 s after the last send.
    fn simulate(seed: u64, seq0: u16, ts0: u32, phases: &[Phase], duplicate: bool) -> Run {
        let mut rng = Rng(seed);
        let mut arrivals: Vec<(u64, u32)> = Vec::new(); // (arrival µs, packet number)
        let mut phase_ends = Vec::new();
        let mut n = 0u32;
        for phase in phases {
            for _ in 0..phase.packets {
                let sent = u64::from(n) * 20_000;
                let delay = 30_000 + (rng.unit() * phase.jitter_ms * 1000.0) as u64;
                if rng.unit() >= phase.loss {
                    arrivals.push((sent + delay, n));
                    if duplicate {
                        arrivals.push((sent + delay + 5_000, n));
                    }
                }
                n += 1;
            }
            phase_ends.push(u64::from(n) * 20_000);
        }
        arrivals.sort();
        let mut jb = JitterBuffer::new(JitterConfig::default());
        let mut played = Vec::new();
        let mut at_phase_end = Vec::new();
        let mut arrivals = arrivals.into_iter().peekable();
        let end = u64::from(n) * 20_000 + 1_000_000;
        let mut periods = 0;
        let mut t = 7_000u64;
        while t < end {
            while let Some(&(at, k)) = arrivals.peek() {
                if at > t {
                    break;
                }
                arrivals.next();
                let packet = Packet {
                    seq: seq0.wrapping_add(k as u16),
                    timestamp: ts0.wrapping_add(k * 160),
                    frame: frame_of(k),
                };
                jb.push(packet, Duration::from_micros(at));
            }
            let now = Duration::from_micros(t);
            let out = jb.pop(now);
            periods += 1;
            if let PlayoutKind::Frame { seq } = out.kind {
                let k = u32::from(seq.wrapping_sub(seq0));
                assert_eq!(out.frame, frame_of(k), "seq {seq} carries its own frame");
                played.push((now, k));
            } else {
                assert_eq!(
                    out.frame[1] % 250,
                    0,
                    "concealment is a faded repeat or silence"
                );
            }
            if phase_ends.first().is_some_and(|&e| t >= e) {
                phase_ends.remove(0);
                at_phase_end.push(jb.stats());
            }
            t += 20_000;
        }
        Run {
            played,
            at_phase_end,
            stats: jb.stats(),
            periods,
        }
    }

    fn in_order(run: &Run) {
        for pair in run.played.windows(2) {
            assert!(pair[0].1 < pair[1].1, "out of order: {:?}", pair);
        }
    }

    #[test]
    fn a_clean_network_plays_every_frame_in_order_at_the_minimum_delay() {
        let run = simulate(
            1,
            1000,
            0,
            &[Phase {
                packets: 500,
                jitter_ms: 0.0,
                loss: 0.0,
            }],
            false,
        );
        in_order(&run);
        assert_eq!(run.played.len(), 500);
        let s = run.stats;
        assert_eq!((s.lost, s.late, s.duplicates, s.resyncs), (0, 0, 0, 0));
        assert_eq!(s.target_delay, Duration::from_millis(40));
        assert!(
            s.last_delay <= Duration::from_millis(60),
            "{:?}",
            s.last_delay
        );
    }

    #[test]
    fn delay_adapts_up_under_jitter_and_back_down_when_it_calms() {
        let calm = Phase {
            packets: 250,
            jitter_ms: 0.0,
            loss: 0.0,
        };
        let rough = Phase {
            packets: 1500,
            jitter_ms: 120.0,
            loss: 0.0,
        };
        let run = simulate(
            7,
            0,
            0,
            &[
                calm,
                rough,
                calm,
                Phase {
                    packets: 750,
                    ..calm
                },
            ],
            false,
        );
        in_order(&run);
        let [before, jittery, calming, calmed] = run.at_phase_end[..] else {
            panic!("four phases");
        };
        assert_eq!(before.target_delay, Duration::from_millis(40));
        assert!(
            jittery.target_delay >= Duration::from_millis(120),
            "target under 120 ms jitter: {:?}",
            jittery.target_delay
        );
        // Once adapted, few frames come too late: under 2 % of the rough phase.
        assert!(jittery.late < 30, "{jittery:?}");
        assert!(calming.target_delay < jittery.target_delay);
        assert_eq!(calmed.target_delay, Duration::from_millis(40), "{calmed:?}");
        assert!(
            calmed.last_delay <= Duration::from_millis(80),
            "the delay came back down: {calmed:?}"
        );
        assert!(calmed.shrunk > 0);
        assert!(
            jittery.mean_delay >= Duration::from_millis(65),
            "frames wait longer under jitter: {jittery:?}"
        );
        assert!(
            calmed.mean_delay <= Duration::from_millis(60),
            "and less once calm: {calmed:?}"
        );
        assert_eq!(calmed.late, jittery.late, "no late frames once calm");
    }

    #[test]
    fn lost_frames_are_concealed_and_the_rest_played_in_order() {
        let run = simulate(
            3,
            40_000,
            7,
            &[Phase {
                packets: 2000,
                jitter_ms: 30.0,
                loss: 0.1,
            }],
            false,
        );
        in_order(&run);
        let s = run.stats;
        let sent = 2000.0;
        let received = s.received as f64;
        assert!(
            (received / sent - 0.9).abs() < 0.03,
            "about 10 % lost: {s:?}"
        );
        assert_eq!(
            s.played + s.late,
            s.received,
            "every received frame is played or late"
        );
        assert_eq!(s.played + s.concealed, run.periods as u64);
        assert!(s.lost > 150, "{s:?}");
    }

    #[test]
    fn duplicates_are_dropped_and_each_frame_plays_once() {
        let run = simulate(
            5,
            9,
            9,
            &[Phase {
                packets: 300,
                jitter_ms: 10.0,
                loss: 0.0,
            }],
            true,
        );
        in_order(&run);
        assert_eq!(run.played.len(), 300);
        // A copy arriving after its frame was played is late, not a duplicate.
        assert_eq!(
            run.stats.duplicates + run.stats.late,
            300,
            "{:?}",
            run.stats
        );
    }

    #[test]
    fn sequence_numbers_and_timestamps_wrap_without_a_hitch() {
        let run = simulate(
            11,
            65_400,
            u32::MAX - 40_000,
            &[Phase {
                packets: 1000,
                jitter_ms: 60.0,
                loss: 0.02,
            }],
            false,
        );
        in_order(&run);
        assert!(
            run.played.iter().any(|&(_, k)| k == 200),
            "played across the wrap"
        );
        assert_eq!(run.stats.resyncs, 0, "{:?}", run.stats);
        assert!(run.played.len() > 950, "{:?}", run.stats);
    }

    #[test]
    fn a_burst_after_a_stall_skips_ahead_instead_of_lagging() {
        let mut jb = JitterBuffer::new(JitterConfig::default());
        let mut t = Duration::ZERO;
        for seq in 0..10u16 {
            jb.push(
                Packet {
                    seq,
                    timestamp: u32::from(seq) * 160,
                    frame: frame_of(seq.into()),
                },
                t,
            );
            jb.pop(t);
            t += FRAME;
        }
        // 1 s of packets arrive at once.
        for seq in 10..60u16 {
            jb.push(
                Packet {
                    seq,
                    timestamp: u32::from(seq) * 160,
                    frame: frame_of(seq.into()),
                },
                t,
            );
        }
        let out = jb.pop(t);
        assert_eq!(jb.stats().resyncs, 1);
        let PlayoutKind::Frame { seq } = out.kind else {
            panic!("{:?}", out.kind)
        };
        // The burst is itself jitter: the target went to the maximum (300 ms,
        // 15 frames), and playout resumes that far behind the newest (59).
        assert_eq!(jb.target_delay(), Duration::from_millis(300));
        assert_eq!(seq, 59 - 15 + 1, "skipped ahead, not played from 10");
        assert!(
            jb.stats().buffered as i64 <= jb.target_frames,
            "{:?}",
            jb.stats()
        );
    }

    #[test]
    fn concealment_fades_the_last_frame_then_goes_silent() {
        let mut jb = JitterBuffer::new(JitterConfig::default());
        jb.push(
            Packet {
                seq: 1,
                timestamp: 0,
                frame: [800; FRAME_SAMPLES],
            },
            Duration::ZERO,
        );
        assert_eq!(
            jb.pop(Duration::ZERO).kind,
            PlayoutKind::Silence,
            "waits for the target delay"
        );
        let t = Duration::from_millis(40);
        assert_eq!(jb.pop(t).kind, PlayoutKind::Frame { seq: 1 });
        let levels: Vec<i16> = (0..5).map(|_| jb.pop(t).frame[0]).collect();
        assert_eq!(levels, [600, 400, 200, 0, 0]);
    }

    #[test]
    fn a_g711_payload_must_be_one_20_ms_frame() {
        let p = Packet::from_g711(1, 2, &[0xD5; 160], Law::Alaw).unwrap();
        assert!(p.frame.iter().all(|&s| s == Law::Alaw.decode(0xD5)));
        let err = Packet::from_g711(1, 2, &[0; 80], Law::Ulaw).unwrap_err();
        assert!(err.to_string().contains("80"), "{err}");
    }

    proptest! {
        #[test]
        fn any_arrival_pattern_is_played_in_order_within_bounded_memory(
            events in proptest::collection::vec((any::<bool>(), any::<u16>(), any::<u32>(), 0u64..50_000), 0..400),
        ) {
            let mut jb = JitterBuffer::new(JitterConfig::default());
            let mut t = 0u64;
            let mut last: Option<i64> = None;
            for (is_pop, seq, ts, dt) in events {
                t += dt;
                let now = Duration::from_micros(t);
                if is_pop {
                    let before = jb.next;
                    let out = jb.pop(now);
                    if let PlayoutKind::Frame { .. } = out.kind {
                        let played = jb.next.unwrap() - 1;
                        prop_assert!(last.is_none_or(|l| played > l), "{before:?} {last:?} {played}");
                        last = Some(played);
                    }
                } else {
                    jb.push(Packet { seq, timestamp: ts, frame: SILENCE }, now);
                }
                prop_assert!(jb.frames.len() as i64 <= jb.max_frames * 2);
            }
        }
    }
}
