//! Ring detection: ring-detect pulses grouped into bursts, bursts qualified
//! against the line's cadence.
//!
//! The opto-coupler pulses at the ringing frequency (15..68 Hz) during a
//! burst; sampled every ~10 ms, a burst is a run of active samples with no
//! gap longer than `ring_release_ms`. A burst shorter than `min_ring_ms` is a
//! glitch and ignored everywhere. The first ring cycle must match the
//! cadence (each burst and pause within tolerance) before anything is
//! reported; once ringing, a burst that matches one of the cadence's bursts
//! counts, and the ringing stops when no burst comes within the longest pause
//! (plus tolerance and a margin).

use std::time::{Duration, Instant};

use crate::LineEvent;
use crate::config::{LineConfig, RingSegment, SLOP};

/// After the longest pause (with tolerance) the caller has given up once
/// this much more has passed without a burst.
const RING_STOP_MARGIN: Duration = Duration::from_millis(500);

#[derive(Debug, Clone, Copy)]
pub(crate) struct Burst {
    pub start: Instant,
    /// The last active sample.
    pub end: Instant,
}

impl Burst {
    fn len(&self) -> Duration {
        self.end.saturating_duration_since(self.start)
    }
}

/// Groups active ring-detect samples into bursts.
#[derive(Debug, Default)]
pub(crate) struct BurstDetector {
    start: Option<Instant>,
    last_active: Option<Instant>,
}

impl BurstDetector {
    /// Feeds one sample; returns the burst that this sample ended.
    pub fn sample(&mut self, now: Instant, active: bool, release: Duration) -> Option<Burst> {
        if active {
            if self.start.is_none() {
                self.start = Some(now);
            }
            self.last_active = Some(now);
            return None;
        }
        match (self.start, self.last_active) {
            (Some(start), Some(end)) if now.saturating_duration_since(end) >= release => {
                self.reset();
                Some(Burst { start, end })
            }
            _ => None,
        }
    }

    /// The start of the burst being heard, if any.
    pub fn in_progress(&self) -> Option<Instant> {
        self.start
    }

    pub fn reset(&mut self) {
        self.start = None;
        self.last_active = None;
    }
}

#[derive(Debug, Clone, Copy)]
enum Phase {
    Idle,
    /// Bursts `0..=idx` of the first cycle matched; the last ended at `last_end`.
    Qualifying {
        idx: usize,
        last_end: Instant,
    },
    Ringing {
        count: u32,
        last_end: Instant,
    },
}

/// Qualifies bursts against the cadence and counts rings.
#[derive(Debug)]
pub(crate) struct RingTracker {
    line: String,
    segments: Vec<RingSegment>,
    longest_off_ms: u32,
    longest_on_ms: u32,
    tolerance_pct: u64,
    min_ring: Duration,
    phase: Phase,
}

impl RingTracker {
    pub fn new(config: &LineConfig) -> Self {
        let cadence = config.effective_cadence();
        Self {
            line: config.name.clone(),
            longest_off_ms: cadence.longest_off_ms(),
            longest_on_ms: cadence.longest_on_ms(),
            segments: cadence.segments,
            tolerance_pct: u64::from(config.tolerance_pct),
            min_ring: Duration::from_millis(u64::from(config.min_ring_ms)),
            phase: Phase::Idle,
        }
    }

    pub fn is_ringing(&self) -> bool {
        matches!(self.phase, Phase::Ringing { .. })
    }

    pub fn reset(&mut self) {
        self.phase = Phase::Idle;
    }

    fn lower(&self, nominal_ms: u32) -> Duration {
        Duration::from_millis(u64::from(nominal_ms) * (100 - self.tolerance_pct) / 100)
            .saturating_sub(SLOP)
    }

    fn upper(&self, nominal_ms: u32) -> Duration {
        Duration::from_millis(u64::from(nominal_ms) * (100 + self.tolerance_pct) / 100) + SLOP
    }

    fn within(&self, measured: Duration, nominal_ms: u32) -> bool {
        self.lower(nominal_ms) <= measured && measured <= self.upper(nominal_ms)
    }

    fn segment(&self, idx: usize) -> RingSegment {
        // The config is validated non-empty; the fallback only keeps this total.
        self.segments
            .get(idx % self.segments.len().max(1))
            .copied()
            .unwrap_or(RingSegment {
                on_ms: 1,
                off_ms: 1,
            })
    }

    fn last_idx(&self) -> usize {
        self.segments.len().saturating_sub(1)
    }

    pub fn on_burst(&mut self, b: Burst, out: &mut Vec<LineEvent>) {
        if b.len() < self.min_ring {
            tracing::trace!(line = %self.line, burst_ms = b.len().as_millis() as u64, "ring-detect glitch ignored");
            return;
        }
        match self.phase {
            Phase::Idle => self.first_burst(b, out),
            Phase::Qualifying { idx, last_end } => {
                let next = idx + 1;
                let gap = b.start.saturating_duration_since(last_end);
                if self.within(gap, self.segment(idx).off_ms)
                    && self.within(b.len(), self.segment(next).on_ms)
                {
                    if next >= self.last_idx() {
                        self.qualified(b.end, out);
                    } else {
                        self.phase = Phase::Qualifying {
                            idx: next,
                            last_end: b.end,
                        };
                    }
                } else {
                    tracing::debug!(line = %self.line, gap_ms = gap.as_millis() as u64, burst_ms = b.len().as_millis() as u64,
                        "ring burst out of cadence; starting over");
                    self.phase = Phase::Idle;
                    self.first_burst(b, out);
                }
            }
            Phase::Ringing { count, last_end } => {
                let gap = b.start.saturating_duration_since(last_end);
                let n = self.segments.len().max(1);
                // The burst's place in the cycle: the one whose preceding
                // pause is nearest the pause just heard (resynchronises after
                // a missed burst).
                let pos = (0..n)
                    .min_by_key(|&s| {
                        let before = self.segment(s + n - 1).off_ms;
                        gap.abs_diff(Duration::from_millis(u64::from(before)))
                    })
                    .unwrap_or(0);
                let mut count = count;
                if self.within(b.len(), self.segment(pos).on_ms) {
                    if pos == self.last_idx() {
                        count += 1;
                        out.push(LineEvent::Ring { count });
                    }
                } else {
                    tracing::debug!(line = %self.line, burst_ms = b.len().as_millis() as u64, "short or long ring burst not counted");
                }
                self.phase = Phase::Ringing {
                    count,
                    last_end: b.end,
                };
            }
        }
    }

    fn first_burst(&mut self, b: Burst, out: &mut Vec<LineEvent>) {
        let first = self.segment(0);
        if self.within(b.len(), first.on_ms) {
            if self.last_idx() == 0 {
                self.qualified(b.end, out);
            } else {
                self.phase = Phase::Qualifying {
                    idx: 0,
                    last_end: b.end,
                };
            }
        } else {
            tracing::warn!(
                line = %self.line,
                burst_ms = b.len().as_millis() as u64,
                expected_ms = first.on_ms,
                "ring burst does not match the line's cadence; ignored (check the line's country or cadence)"
            );
        }
    }

    fn qualified(&mut self, end: Instant, out: &mut Vec<LineEvent>) {
        self.phase = Phase::Ringing {
            count: 1,
            last_end: end,
        };
        out.push(LineEvent::RingStarted);
        out.push(LineEvent::Ring { count: 1 });
        out.push(LineEvent::CallerIdWindow {
            listen_ms: self.segment(self.last_idx()).off_ms,
        });
    }

    /// Timeouts: a lone burst that no second burst followed; ringing that stopped.
    pub fn on_tick(
        &mut self,
        now: Instant,
        in_progress: Option<Instant>,
        out: &mut Vec<LineEvent>,
    ) {
        match self.phase {
            Phase::Idle => {}
            Phase::Qualifying { idx, last_end } => {
                let pause = self.upper(self.segment(idx).off_ms);
                if in_progress.is_none() && now.saturating_duration_since(last_end) > pause {
                    tracing::debug!(line = %self.line, "a lone ring burst; no call");
                    self.phase = Phase::Idle;
                }
            }
            Phase::Ringing { count, last_end } => {
                let (longest_off, longest_on) = (self.longest_off_ms, self.longest_on_ms);
                let stopped = match in_progress {
                    None => {
                        now.saturating_duration_since(last_end)
                            > self.upper(longest_off) + RING_STOP_MARGIN
                    }
                    Some(start) => now.saturating_duration_since(start) > self.upper(longest_on),
                };
                if stopped {
                    self.phase = Phase::Idle;
                    out.push(LineEvent::RingingStopped { rings: count });
                }
            }
        }
    }
}
