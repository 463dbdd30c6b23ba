//! Hybrid logical clock (Kulkarni et al., 2014).
//!
//! A timestamp is the wall-clock millisecond plus a logical counter. It never
//! goes backwards on one node: not when the system clock steps back (NTP, a
//! Raspberry Pi without RTC booting in 1970) and not across restarts, because
//! the node resumes from the highest timestamp it persisted
//! ([`HlcClock::resume`]). Receiving a remote timestamp moves the clock past
//! it, so causality survives skewed clocks. [`HlcClock::observe`] trusts
//! what it is given: a receiver decides which remote stamps are believable
//! (the store observes only stamps within its `max_clock_skew` of the wall
//! clock, so one node whose clock says 2100 cannot drag the others there).

use serde::{Deserialize, Serialize};
use std::fmt;

/// One HLC timestamp. Orders by wall milliseconds, then the logical counter.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize, Deserialize)]
pub struct Hlc {
    /// Milliseconds since the Unix epoch.
    pub ms: u64,
    /// Logical counter within the same millisecond.
    pub c: u32,
}

impl Hlc {
    pub const ZERO: Hlc = Hlc { ms: 0, c: 0 };

    /// Packs into one sortable u64 (48 bits of ms, 16 of counter) for storage.
    /// Counters above 65535 saturate; use the struct where exactness matters.
    pub fn to_u64(self) -> u64 {
        (self.ms << 16) | u64::from(self.c.min(0xffff))
    }

    pub fn from_u64(v: u64) -> Self {
        Hlc {
            ms: v >> 16,
            c: (v & 0xffff) as u32,
        }
    }
}

impl fmt::Display for Hlc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.ms, self.c)
    }
}

impl fmt::Debug for Hlc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Hlc({self})")
    }
}

/// Source of physical time in milliseconds since the epoch. Injected so tests
/// (and the routing engine) can drive time.
pub trait WallClock: Send + Sync {
    fn now_ms(&self) -> u64;
}

/// The operating system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl WallClock for SystemClock {
    fn now_ms(&self) -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0)
    }
}

impl<F: Fn() -> u64 + Send + Sync> WallClock for F {
    fn now_ms(&self) -> u64 {
        self()
    }
}

/// A node's hybrid logical clock.
pub struct HlcClock<C: WallClock = SystemClock> {
    wall: C,
    last: Hlc,
}

impl HlcClock<SystemClock> {
    /// A clock on the system time, resuming after `last` (the highest
    /// timestamp this node ever persisted; [`Hlc::ZERO`] on first start).
    pub fn system(last: Hlc) -> Self {
        Self::resume(SystemClock, last)
    }
}

impl<C: WallClock> HlcClock<C> {
    pub fn resume(wall: C, last: Hlc) -> Self {
        Self { wall, last }
    }

    /// The highest timestamp handed out so far.
    pub fn last(&self) -> Hlc {
        self.last
    }

    /// A timestamp for a local event, strictly greater than every earlier one.
    pub fn now(&mut self) -> Hlc {
        let pt = self.wall.now_ms();
        self.last = if pt > self.last.ms {
            Hlc { ms: pt, c: 0 }
        } else {
            self.tick_same_ms(self.last)
        };
        self.last
    }

    /// Merges a timestamp received from another node; returns the new local
    /// time, strictly greater than both the old local time and `remote`.
    pub fn observe(&mut self, remote: Hlc) -> Hlc {
        let pt = self.wall.now_ms();
        let max_ms = pt.max(self.last.ms).max(remote.ms);
        self.last = if max_ms == self.last.ms && max_ms == remote.ms {
            self.tick_same_ms(Hlc {
                ms: max_ms,
                c: self.last.c.max(remote.c),
            })
        } else if max_ms == self.last.ms {
            self.tick_same_ms(self.last)
        } else if max_ms == remote.ms {
            self.tick_same_ms(remote)
        } else {
            Hlc { ms: max_ms, c: 0 }
        };
        self.last
    }

    fn tick_same_ms(&self, base: Hlc) -> Hlc {
        match base.c.checked_add(1) {
            Some(c) => Hlc { ms: base.ms, c },
            // Counter exhausted within one millisecond: borrow the next ms.
            None => Hlc {
                ms: base.ms.saturating_add(1),
                c: 0,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};

    fn manual(start: u64) -> (Arc<AtomicU64>, impl WallClock) {
        let t = Arc::new(AtomicU64::new(start));
        let t2 = t.clone();
        (t, move || t2.load(Ordering::SeqCst))
    }

    #[test]
    fn follows_wall_clock_when_it_advances() {
        let (t, wall) = manual(1_000);
        let mut c = HlcClock::resume(wall, Hlc::ZERO);
        assert_eq!(c.now(), Hlc { ms: 1_000, c: 0 });
        assert_eq!(c.now(), Hlc { ms: 1_000, c: 1 });
        t.store(2_000, Ordering::SeqCst);
        assert_eq!(c.now(), Hlc { ms: 2_000, c: 0 });
    }

    #[test]
    fn monotonic_when_clock_steps_backwards() {
        let (t, wall) = manual(10_000);
        let mut c = HlcClock::resume(wall, Hlc::ZERO);
        let a = c.now();
        t.store(5_000, Ordering::SeqCst); // NTP stepped us back five seconds
        let b = c.now();
        let d = c.now();
        assert!(a < b && b < d, "{a} {b} {d}");
        assert_eq!(b.ms, 10_000);
    }

    #[test]
    fn monotonic_across_restart_with_clock_behind() {
        let (t, wall) = manual(50_000);
        let mut c = HlcClock::resume(wall, Hlc::ZERO);
        let before = c.now();
        let persisted = c.last();
        drop(c);
        // The box reboots without RTC: the clock reads 1970.
        t.store(3, Ordering::SeqCst);
        let (_t2, wall2) = manual(3);
        let mut c2 = HlcClock::resume(wall2, persisted);
        assert!(c2.now() > before);
    }

    #[test]
    fn observe_moves_past_remote() {
        let (_t, wall) = manual(1_000);
        let mut c = HlcClock::resume(wall, Hlc::ZERO);
        let remote = Hlc { ms: 9_000, c: 7 };
        let got = c.observe(remote);
        assert!(got > remote);
        assert!(c.now() > got);
    }

    #[test]
    fn counter_overflow_borrows_next_millisecond() {
        let (_t, wall) = manual(1);
        let mut c = HlcClock::resume(wall, Hlc { ms: 5, c: u32::MAX });
        assert_eq!(c.now(), Hlc { ms: 6, c: 0 });
    }

    #[test]
    fn packed_roundtrip_and_order() {
        let a = Hlc {
            ms: 1_700_000_000_000,
            c: 3,
        };
        assert_eq!(Hlc::from_u64(a.to_u64()), a);
        assert!(Hlc { ms: 1, c: 9 }.to_u64() < Hlc { ms: 2, c: 0 }.to_u64());
    }

    proptest! {
        // A fixed seed: every run checks the same sequences.
        #![proptest_config(ProptestConfig {
            rng_seed: proptest::test_runner::RngSeed::Fixed(0x0000_0A1C),
            ..ProptestConfig::default()
        })]

        /// Whatever the wall clock does and whatever remote stamps arrive,
        /// every timestamp handed out is strictly greater than the previous.
        #[test]
        fn strictly_monotonic(steps in proptest::collection::vec((0u64..1_000_000, any::<bool>(), 0u64..1_000_000, 0u32..5), 1..200)) {
            let (t, wall) = manual(0);
            let mut c = HlcClock::resume(wall, Hlc::ZERO);
            let mut prev = Hlc::ZERO;
            for (wall_ms, remote, rms, rc) in steps {
                t.store(wall_ms, Ordering::SeqCst);
                let next = if remote { c.observe(Hlc { ms: rms, c: rc }) } else { c.now() };
                prop_assert!(next > prev);
                let r = Hlc { ms: rms, c: rc };
                if remote { prop_assert!(next > r); }
                prev = next;
            }
        }
    }
}
