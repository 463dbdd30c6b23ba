//! Line configuration: country ring cadence, tolerances, pin levels and how
//! the exchange signals answer and disconnect. Serde-friendly (TOML in the
//! appliance config), every field defaulted.

use serde::{Deserialize, Serialize};
use std::time::Duration;

use crate::LineError;
use crossline_audio::cid::Standard;

/// One ring burst and the silence after it, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RingSegment {
    pub on_ms: u32,
    pub off_ms: u32,
}

/// A ring cadence: the segments of one ring cycle, repeated by the exchange
/// until the call is answered or the caller gives up. A "ring" is one cycle
/// (the UK's double ring is one ring of two bursts).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cadence {
    pub segments: Vec<RingSegment>,
}

impl Cadence {
    fn of(pairs: &[(u32, u32)]) -> Self {
        Self {
            segments: pairs
                .iter()
                .map(|&(on_ms, off_ms)| RingSegment { on_ms, off_ms })
                .collect(),
        }
    }

    /// The longest silence of the cycle (the pause in which caller ID comes).
    pub fn longest_off_ms(&self) -> u32 {
        self.segments.iter().map(|s| s.off_ms).max().unwrap_or(0)
    }

    /// The longest burst of the cycle.
    pub fn longest_on_ms(&self) -> u32 {
        self.segments.iter().map(|s| s.on_ms).max().unwrap_or(0)
    }

    fn shortest_off_ms(&self) -> u32 {
        self.segments.iter().map(|s| s.off_ms).min().unwrap_or(0)
    }
}

/// The line's country: its ring cadence here, its call-progress tones in
/// `crossline_audio::tones` (one country setting for both).
pub use crossline_audio::tones::Country;

/// The country's normal ring cadence (table and sources in docs/LINES.md).
pub fn ring_cadence(country: Country) -> Cadence {
    match country {
        // Telcordia GR-506: 2 s on, 4 s off.
        Country::Us => Cadence::of(&[(2000, 4000)]),
        // BT SIN 351: the double ring, 0.4 on, 0.2 off, 0.4 on, 2.0 off.
        Country::Uk => Cadence::of(&[(400, 200), (400, 2000)]),
        // CEPT (ETSI ES 201 970), Russia, Ukraine: 1 s on, 4 s off.
        Country::Eu | Country::Ru | Country::Ua => Cadence::of(&[(1000, 4000)]),
        // Romania: 1.5 s on, 3.5 s off.
        Country::Ro => Cadence::of(&[(1500, 3500)]),
    }
}

/// How the exchange tells the line that the far end answered (outgoing
/// calls) or hung up, as seen on the loop-sense pin.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Supervision {
    /// The exchange reverses the line's polarity when the far end answers an
    /// outgoing call and at disconnect; the sense pin reads loop current in
    /// the normal polarity.
    PolarityReversal,
    /// The exchange drops loop current for a moment at disconnect (calling
    /// party control); no answer supervision.
    #[default]
    LoopCurrent,
    /// Neither: the sense pin is not read; disconnect only from the
    /// disconnect/busy tone heard in the audio ([`crate::Fxo::tone_disconnect`]).
    ToneOnly,
}

/// Which electrical level means "active" on each pin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PinLevels {
    /// The hook relay output is high when off-hook.
    pub hook_off_high: bool,
    /// The ring-detect opto-coupler pulls its pin low while ringing current flows.
    pub ring_active_low: bool,
    /// The loop-sense opto-coupler pulls its pin low while loop current flows
    /// (in the normal polarity).
    pub loop_active_low: bool,
}

impl Default for PinLevels {
    fn default() -> Self {
        Self {
            hook_off_high: true,
            ring_active_low: true,
            loop_active_low: true,
        }
    }
}

/// Configuration of one FXO line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LineConfig {
    /// The line's name in logs, events and errors (`fxo0`).
    pub name: String,
    /// Selects the ring cadence unless `cadence` is set.
    pub country: Country,
    /// A cadence that overrides the country's (a PBX's, a distinctive ring).
    pub cadence: Option<Cadence>,
    /// Tolerance on every burst and pause of the cadence, in percent.
    pub tolerance_pct: u8,
    /// Ring-detect activity shorter than this is a glitch and ignored.
    pub min_ring_ms: u32,
    /// No ring-detect pulse for this long ends a burst (longer than one
    /// period of the slowest ringing frequency, 15 Hz: 67 ms).
    pub ring_release_ms: u32,
    /// After going on-hook the ring detector is ignored this long (relay
    /// and line transients).
    pub ring_guard_ms: u32,
    /// The caller ID the exchange sends after the first ring; unset: Bell 202
    /// in the US, ETSI V.23 elsewhere ([`LineConfig::caller_id_standard`]).
    pub caller_id: Option<Standard>,
    /// A change on the loop-sense pin must last this long to count.
    pub debounce_ms: u32,
    /// After going off-hook, loop current must appear within this time.
    pub loop_settle_ms: u32,
    /// How answer and disconnect are signalled.
    pub supervision: Supervision,
    /// Whether the voice side listens for the disconnect/busy tone and
    /// reports it through `tone_disconnect()` (needed where the exchange
    /// neither reverses polarity nor drops loop current).
    pub disconnect_tone: bool,
    pub levels: PinLevels,
}

impl Default for LineConfig {
    fn default() -> Self {
        Self {
            name: "fxo0".to_owned(),
            country: Country::Eu,
            cadence: None,
            tolerance_pct: 20,
            min_ring_ms: 150,
            ring_release_ms: 120,
            ring_guard_ms: 400,
            caller_id: None,
            debounce_ms: 50,
            loop_settle_ms: 600,
            supervision: Supervision::default(),
            disconnect_tone: true,
            levels: PinLevels::default(),
        }
    }
}

/// Timing slop added to every cadence bound on top of the tolerance: one
/// period of the ring frequency (a burst is measured from its first to its
/// last detected pulse) plus a poll interval.
pub(crate) const SLOP: Duration = Duration::from_millis(100);

/// Longest accepted burst or pause in a configured cadence.
const MAX_SEGMENT_MS: u32 = 10_000;

impl LineConfig {
    /// The cadence in effect.
    pub fn effective_cadence(&self) -> Cadence {
        self.cadence
            .clone()
            .unwrap_or_else(|| ring_cadence(self.country))
    }

    /// The caller ID standard to decode in the `CallerIdWindow`.
    pub fn caller_id_standard(&self) -> Standard {
        self.caller_id.unwrap_or(match self.country {
            Country::Us => Standard::Bell202,
            _ => Standard::Etsi,
        })
    }

    /// Checks the values make a working detector.
    pub fn validate(&self) -> Result<(), LineError> {
        let bad = |reason: String| LineError::Config {
            line: self.name.clone(),
            reason,
        };
        let cadence = self.effective_cadence();
        if cadence.segments.is_empty() || cadence.segments.len() > 8 {
            return Err(bad(
                "the ring cadence needs 1 to 8 segments (on_ms, off_ms)".into(),
            ));
        }
        for s in &cadence.segments {
            if s.on_ms == 0
                || s.off_ms == 0
                || s.on_ms > MAX_SEGMENT_MS
                || s.off_ms > MAX_SEGMENT_MS
            {
                return Err(bad(format!(
                    "ring cadence segment {}/{} ms: bursts and pauses must be 1..={MAX_SEGMENT_MS} ms",
                    s.on_ms, s.off_ms
                )));
            }
        }
        if self.tolerance_pct > 50 {
            return Err(bad(format!(
                "tolerance_pct {} is above 50: the cadence would match anything",
                self.tolerance_pct
            )));
        }
        let shortest_off = cadence.shortest_off_ms() * (100 - u32::from(self.tolerance_pct)) / 100;
        if self.ring_release_ms == 0 || self.ring_release_ms >= shortest_off {
            return Err(bad(format!(
                "ring_release_ms {} must be above 0 and below the cadence's shortest pause less tolerance ({shortest_off} ms)",
                self.ring_release_ms
            )));
        }
        if self.min_ring_ms == 0 {
            return Err(bad("min_ring_ms must be above 0".into()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_config_naming_only_a_country_takes_the_defaults() {
        let c: LineConfig = serde_json::from_str(
            r#"{"name":"fxo1","country":"uk","supervision":"polarity_reversal"}"#,
        )
        .unwrap();
        assert_eq!(c.country, Country::Uk);
        assert_eq!(c.supervision, Supervision::PolarityReversal);
        assert_eq!(c.tolerance_pct, 20);
        assert_eq!(c.effective_cadence().segments.len(), 2);
        assert_eq!(c.caller_id_standard(), Standard::Etsi);
        let us: LineConfig = serde_json::from_str(r#"{"country":"us"}"#).unwrap();
        assert_eq!(us.caller_id_standard(), Standard::Bell202);
        let dk: LineConfig = serde_json::from_str(r#"{"caller_id":"dtmf"}"#).unwrap();
        assert_eq!(dk.caller_id_standard(), Standard::Dtmf);
        c.validate().unwrap();
    }

    #[test]
    fn every_country_validates() {
        for country in Country::ALL {
            let c = LineConfig {
                country,
                ..LineConfig::default()
            };
            c.validate().unwrap();
        }
    }

    #[test]
    fn a_release_longer_than_the_uk_pause_is_refused_with_the_line_named() {
        let c = LineConfig {
            name: "fxo3".into(),
            country: Country::Uk,
            ring_release_ms: 300,
            ..LineConfig::default()
        };
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("fxo3") && e.contains("ring_release_ms"), "{e}");
    }

    #[test]
    fn an_empty_custom_cadence_is_refused() {
        let c = LineConfig {
            cadence: Some(Cadence { segments: vec![] }),
            ..LineConfig::default()
        };
        assert!(c.validate().is_err());
    }
}
