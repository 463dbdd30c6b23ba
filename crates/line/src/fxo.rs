//! The FXO state machine: on-hook (ring detection) and off-hook (answer and
//! disconnect supervision on the loop-sense pin), driven by `poll(now)` with
//! an injected monotonic clock.

use std::time::{Duration, Instant};

use embedded_hal::digital::{InputPin, OutputPin};
use serde::Serialize;

use crate::config::{LineConfig, Supervision};
use crate::error::{LineError, PinRole};
use crate::ring::{BurstDetector, RingTracker};

/// Why the far end's side of the call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DisconnectCause {
    /// The exchange reversed the line's polarity.
    PolarityReversal,
    /// The exchange dropped loop current (calling party control).
    LoopCurrentDrop,
    /// Off-hook, but loop current never came (dead line, unplugged cable).
    NoLoopCurrent,
    /// The voice side heard the disconnect/busy tone (`tone_disconnect()`).
    DisconnectTone,
}

/// What the line reports. Each call starts with `RingStarted` (incoming) or
/// `Seized` (outgoing) and ends with exactly one of `RingingStopped`,
/// `FarEndDisconnect` or `OnHook`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum LineEvent {
    /// The first ring cycle matched the cadence: an incoming call.
    RingStarted,
    /// A ring cycle was heard (the first comes with `RingStarted`).
    Ring { count: u32 },
    /// The pause after the first ring has begun: listen now for FSK or DTMF
    /// caller ID (for about `listen_ms`).
    CallerIdWindow { listen_ms: u32 },
    /// The caller gave up before the call was answered.
    RingingStopped { rings: u32 },
    /// `answer()` took the line off-hook on a ringing call and loop
    /// current confirmed it (held `debounce_ms`); with
    /// `Supervision::ToneOnly` (no sense pin) at once. Without loop current
    /// within `loop_settle_ms` the call ends
    /// `FarEndDisconnect { NoLoopCurrent }` instead, never answered.
    Answered,
    /// `seize()` took the line off-hook for an outgoing call.
    Seized,
    /// The far end answered an outgoing call (polarity reversal; only with
    /// `Supervision::PolarityReversal`).
    FarEndAnswered,
    /// The far end hung up; the line went back on-hook by itself.
    FarEndDisconnect { cause: DisconnectCause },
    /// `hang_up()` put the line back on-hook.
    OnHook,
}

impl LineEvent {
    /// Whether this event ends a call.
    pub fn ends_call(&self) -> bool {
        matches!(
            self,
            LineEvent::RingingStopped { .. }
                | LineEvent::FarEndDisconnect { .. }
                | LineEvent::OnHook
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Direction {
    Incoming,
    Outgoing,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Loop {
    /// Off-hook, waiting for loop current.
    Settling,
    /// Loop current in the normal polarity.
    Normal,
    /// Polarity reversed after the far end answered an outgoing call.
    Reversed,
}

/// A sense-pin level that must hold `debounce` before it counts.
#[derive(Debug, Clone, Copy)]
struct Debouncer {
    stable: bool,
    changing_since: Option<Instant>,
}

impl Debouncer {
    fn sample(&mut self, now: Instant, raw: bool, debounce: Duration) -> bool {
        if raw == self.stable {
            self.changing_since = None;
        } else {
            let since = *self.changing_since.get_or_insert(now);
            if now.saturating_duration_since(since) >= debounce {
                self.stable = raw;
                self.changing_since = None;
            }
        }
        self.stable
    }
}

#[derive(Debug, Clone, Copy)]
struct Call {
    direction: Direction,
    /// Set by the first poll after going off-hook.
    since: Option<Instant>,
    supervision: Loop,
    sense: Debouncer,
}

#[derive(Debug, Clone, Copy)]
enum Guard {
    None,
    /// Just went on-hook: the guard starts at the next poll.
    Pending,
    Until(Instant),
}

#[derive(Debug, Clone, Copy)]
enum State {
    OnHook { guard: Guard },
    OffHook(Call),
}

/// One FXO line over three embedded-hal 1.0 pins: the hook relay, the
/// ring-detect input and the loop-current / polarity sense input.
///
/// Nothing here sleeps or reads a clock: call [`Fxo::poll`] every ~10 ms
/// with a monotonic `now` (see [`crate::driver`] for a tokio task that does).
/// Commands take effect on the pins at once; their events come out of the
/// next `poll`.
pub struct Fxo<H, R, L> {
    config: LineConfig,
    hook: H,
    ring: R,
    sense: L,
    state: State,
    bursts: BurstDetector,
    rings: RingTracker,
    pending: Vec<LineEvent>,
}

impl<H, R, L> std::fmt::Debug for Fxo<H, R, L> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fxo")
            .field("line", &self.config.name)
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

impl<H: OutputPin, R: InputPin, L: InputPin> Fxo<H, R, L> {
    /// Validates the config and puts the hook relay on-hook.
    pub fn new(config: LineConfig, hook: H, ring: R, sense: L) -> Result<Self, LineError> {
        config.validate()?;
        let mut line = Self {
            rings: RingTracker::new(&config),
            config,
            hook,
            ring,
            sense,
            // No ring guard at start: a call already ringing is heard whole.
            state: State::OnHook { guard: Guard::None },
            bursts: BurstDetector::default(),
            pending: Vec::new(),
        };
        line.set_hook(false)?;
        Ok(line)
    }

    pub fn config(&self) -> &LineConfig {
        &self.config
    }

    pub fn name(&self) -> &str {
        &self.config.name
    }

    pub fn is_off_hook(&self) -> bool {
        matches!(self.state, State::OffHook(_))
    }

    /// Whether a qualified incoming call is ringing (so `answer()` will work).
    pub fn is_ringing(&self) -> bool {
        matches!(self.state, State::OnHook { .. }) && self.rings.is_ringing()
    }

    fn set_hook(&mut self, off_hook: bool) -> Result<(), LineError> {
        let high = off_hook == self.config.levels.hook_off_high;
        let r = if high {
            self.hook.set_high()
        } else {
            self.hook.set_low()
        };
        r.map_err(|e| LineError::pin(&self.config.name, PinRole::Hook, e))
    }

    fn go_off_hook(&mut self, direction: Direction) -> Result<(), LineError> {
        self.set_hook(true)?;
        self.bursts.reset();
        self.rings.reset();
        self.state = State::OffHook(Call {
            direction,
            since: None,
            supervision: Loop::Settling,
            sense: Debouncer {
                stable: false,
                changing_since: None,
            },
        });
        Ok(())
    }

    fn go_on_hook(&mut self) -> Result<(), LineError> {
        // The state changes even when the relay fails: the call is over for
        // us either way, and the error says the relay needs looking at.
        self.state = State::OnHook {
            guard: Guard::Pending,
        };
        self.bursts.reset();
        self.rings.reset();
        self.set_hook(false)
    }

    /// Answers the ringing call: off-hook.
    pub fn answer(&mut self) -> Result<(), LineError> {
        match self.state {
            State::OffHook(_) => Err(LineError::OffHook {
                line: self.config.name.clone(),
            }),
            State::OnHook { .. } if !self.rings.is_ringing() => Err(LineError::NotRinging {
                line: self.config.name.clone(),
            }),
            State::OnHook { .. } => {
                self.go_off_hook(Direction::Incoming)?;
                // Answered once loop current confirms the exchange saw the
                // off-hook (a dead line or a broken relay never answers);
                // a tone-only line has no sense pin to wait for.
                if self.config.supervision == Supervision::ToneOnly {
                    self.pending.push(LineEvent::Answered);
                }
                Ok(())
            }
        }
    }

    /// Seizes the line for an outgoing call: off-hook (dial with DTMF once
    /// loop current has come, i.e. after `loop_settle_ms` without a
    /// `FarEndDisconnect`).
    pub fn seize(&mut self) -> Result<(), LineError> {
        match self.state {
            State::OffHook(_) => Err(LineError::OffHook {
                line: self.config.name.clone(),
            }),
            State::OnHook { .. } if self.rings.is_ringing() => Err(LineError::Ringing {
                line: self.config.name.clone(),
            }),
            State::OnHook { .. } => {
                self.go_off_hook(Direction::Outgoing)?;
                self.pending.push(LineEvent::Seized);
                Ok(())
            }
        }
    }

    /// Hangs up: on-hook. Does nothing when already on-hook (after a
    /// `FarEndDisconnect` the line is already on-hook).
    pub fn hang_up(&mut self) -> Result<(), LineError> {
        match self.state {
            State::OnHook { .. } => Ok(()),
            State::OffHook(_) => {
                self.pending.push(LineEvent::OnHook);
                self.go_on_hook()
            }
        }
    }

    /// The voice side heard the disconnect (busy/congestion) tone: the far
    /// end is gone; the line goes on-hook. Does nothing when on-hook.
    pub fn tone_disconnect(&mut self) -> Result<(), LineError> {
        match self.state {
            State::OnHook { .. } => Ok(()),
            State::OffHook(_) => self.far_end_gone(DisconnectCause::DisconnectTone),
        }
    }

    fn far_end_gone(&mut self, cause: DisconnectCause) -> Result<(), LineError> {
        self.pending.push(LineEvent::FarEndDisconnect { cause });
        self.go_on_hook()
    }

    /// Samples the pins at `now` (monotonic, never earlier than the last
    /// call's) and returns what happened since the last poll.
    pub fn poll(&mut self, now: Instant) -> Result<Vec<LineEvent>, LineError> {
        let result = self.step(now);
        let events = std::mem::take(&mut self.pending);
        for event in &events {
            tracing::info!(line = %self.config.name, ?event, "line event");
        }
        match result {
            Ok(()) => Ok(events),
            Err(e) => {
                // Keep the events for the next poll; report the error now.
                self.pending = events;
                Err(e)
            }
        }
    }

    fn step(&mut self, now: Instant) -> Result<(), LineError> {
        match self.state {
            State::OnHook { guard } => {
                let until = match guard {
                    Guard::None => None,
                    Guard::Pending => {
                        let until = now + ms(self.config.ring_guard_ms);
                        self.state = State::OnHook {
                            guard: Guard::Until(until),
                        };
                        Some(until)
                    }
                    Guard::Until(until) => Some(until),
                };
                if let Some(until) = until {
                    if now < until {
                        return Ok(());
                    }
                    self.state = State::OnHook { guard: Guard::None };
                }
                let level = self
                    .ring
                    .is_high()
                    .map_err(|e| LineError::pin(&self.config.name, PinRole::Ring, e))?;
                let active = level != self.config.levels.ring_active_low;
                let release = ms(self.config.ring_release_ms);
                let mut out = Vec::new();
                if let Some(burst) = self.bursts.sample(now, active, release) {
                    self.rings.on_burst(burst, &mut out);
                }
                self.rings.on_tick(now, self.bursts.in_progress(), &mut out);
                self.pending.extend(out);
                Ok(())
            }
            State::OffHook(mut call) => {
                let since = *call.since.get_or_insert(now);
                let supervision = self.config.supervision;
                if supervision == Supervision::ToneOnly {
                    self.state = State::OffHook(call);
                    return Ok(());
                }
                let level = self
                    .sense
                    .is_high()
                    .map_err(|e| LineError::pin(&self.config.name, PinRole::LoopSense, e))?;
                let raw = level != self.config.levels.loop_active_low;
                let current = call.sense.sample(now, raw, ms(self.config.debounce_ms));
                let reversal = supervision == Supervision::PolarityReversal;
                let mut gone = None;
                match call.supervision {
                    Loop::Settling => {
                        if current {
                            call.supervision = Loop::Normal;
                            if call.direction == Direction::Incoming {
                                self.pending.push(LineEvent::Answered);
                            }
                        } else if now.saturating_duration_since(since)
                            > ms(self.config.loop_settle_ms)
                        {
                            gone = Some(DisconnectCause::NoLoopCurrent);
                        }
                    }
                    Loop::Normal if !current => {
                        if reversal && call.direction == Direction::Outgoing {
                            call.supervision = Loop::Reversed;
                            self.pending.push(LineEvent::FarEndAnswered);
                        } else if reversal {
                            gone = Some(DisconnectCause::PolarityReversal);
                        } else {
                            gone = Some(DisconnectCause::LoopCurrentDrop);
                        }
                    }
                    Loop::Reversed if current => gone = Some(DisconnectCause::PolarityReversal),
                    Loop::Normal | Loop::Reversed => {}
                }
                self.state = State::OffHook(call);
                match gone {
                    Some(cause) => self.far_end_gone(cause),
                    None => Ok(()),
                }
            }
        }
    }
}

fn ms(v: u32) -> Duration {
    Duration::from_millis(u64::from(v))
}
