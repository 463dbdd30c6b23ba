//! The simulated modem's voice channel: PCM (8 kHz, signed 16-bit
//! little-endian, mono, 20 ms = 320-byte frames) on a second PTY, flowing
//! only while a call is active *and* the vendor's audio command for that
//! port was given — as on the real modems, where the wrong command (or none)
//! leaves the audio port silent.
//!
//! | profile | voice port | command that starts PCM on it | stops it |
//! |---|---|---|---|
//! | Quectel EC25 | USB serial (`<link>.voice`) | `AT+QPCMV=1,0` (`=1,2` sends it to USB audio instead: nothing here) | `AT+QPCMV=0` |
//! | SIMCom SIM7600 | USB audio serial port | `AT+CPCMREG=1` during a call, not within 100 ms of it starting (`ERROR` then, as the real one) | `AT+CPCMREG=0` |
//! | SIMCom SIM800 | none (analog audio only) | — | — |
//! | Huawei E173 | voice serial port | `AT^DDSETEX=2` during a call (per call) | the call's end |

use std::collections::VecDeque;
use std::time::Duration;

use tokio::time::Instant;

use super::Profile;

/// Samples in one 20 ms frame at 8 kHz.
pub(crate) const FRAME_SAMPLES: usize = 160;
/// Bytes in one frame on the wire (s16le).
pub(crate) const FRAME_BYTES: usize = 2 * FRAME_SAMPLES;
/// Most far-end audio kept for [`crate::SimModem::far_end_heard`]: 10 minutes.
const MAX_HEARD: usize = 8_000 * 600;
/// Most far-end audio queued to play: 10 minutes.
const MAX_PLAY: usize = 8_000 * 600;
/// SIM7600: `AT+CPCMREG=1` this soon after the call became active fails.
pub(crate) const SIMCOM_PCM_SETTLE: Duration = Duration::from_millis(100);

/// Where the modem sends call audio.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum Route {
    /// No PCM anywhere (the modem's own codec/analog pins, or nothing).
    #[default]
    Off,
    /// PCM on the voice serial port (the second PTY).
    Serial,
    /// PCM elsewhere (Quectel UART pins or USB audio class): the serial
    /// voice port stays silent.
    Elsewhere,
}

/// Voice state inside the simulated modem's core.
#[derive(Debug, Default)]
pub(crate) struct Voice {
    pub(crate) route: Route,
    /// What the far end will say, in order.
    play: VecDeque<i16>,
    /// What reached the far end.
    heard: Vec<i16>,
    /// An odd byte from the driver, waiting for its partner.
    carry: Option<u8>,
    /// Frames written to / read from the voice port while flowing.
    pub(crate) frames_out: u64,
    pub(crate) bytes_in: u64,
    /// When the last frames went out whole on the voice port, with their
    /// first sample (latency measurements tell frames apart by it).
    pub(crate) sent_log: VecDeque<(Instant, i16)>,
}

/// Frames [`Voice::sent_log`] remembers.
pub(crate) const SENT_LOG: usize = 256;

impl Voice {
    /// Power-on: routes and half-samples forgotten; far-end audio kept.
    pub(crate) fn reset(&mut self) {
        self.route = Route::Off;
        self.carry = None;
    }

    pub(crate) fn far_end_play(&mut self, pcm: &[i16]) {
        let room = MAX_PLAY.saturating_sub(self.play.len());
        self.play.extend(pcm.iter().take(room).copied());
    }

    pub(crate) fn far_end_heard(&self) -> Vec<i16> {
        self.heard.clone()
    }

    pub(crate) fn queued(&self) -> usize {
        self.play.len()
    }

    /// The next frame for the voice port: queued far-end audio, padded with
    /// silence (the network never stops sending frames during a call).
    pub(crate) fn log_sent(&mut self, at: Instant, first: i16) {
        if self.sent_log.len() >= SENT_LOG {
            self.sent_log.pop_front();
        }
        self.sent_log.push_back((at, first));
    }

    pub(crate) fn next_frame(&mut self) -> Vec<u8> {
        let mut out = Vec::with_capacity(FRAME_BYTES);
        for _ in 0..FRAME_SAMPLES {
            let s = self.play.pop_front().unwrap_or(0);
            out.extend_from_slice(&s.to_le_bytes());
        }
        self.frames_out = self.frames_out.saturating_add(1);
        out
    }

    /// Bytes the driver wrote on the voice port. Kept (as samples) only while
    /// `flowing`; a real modem discards uplink PCM when the path is off.
    pub(crate) fn input(&mut self, data: &[u8], flowing: bool) {
        if !flowing {
            self.carry = None;
            return;
        }
        self.bytes_in = self
            .bytes_in
            .saturating_add(u64::try_from(data.len()).unwrap_or(u64::MAX));
        let mut rest = data;
        if let Some(lo) = self.carry.take() {
            let Some((&hi, tail)) = rest.split_first() else {
                self.carry = Some(lo);
                return;
            };
            self.push_heard(i16::from_le_bytes([lo, hi]));
            rest = tail;
        }
        let mut pairs = rest.chunks_exact(2);
        for p in pairs.by_ref() {
            if let [lo, hi] = *p {
                self.push_heard(i16::from_le_bytes([lo, hi]));
            }
        }
        self.carry = pairs.remainder().first().copied();
    }

    fn push_heard(&mut self, s: i16) {
        if self.heard.len() < MAX_HEARD {
            self.heard.push(s);
        }
    }
}

/// Whether `profile` has a serial voice port at all.
pub(crate) fn has_voice_port(profile: Profile) -> bool {
    !matches!(profile, Profile::Sim800)
}

/// SIM7600: is the call old enough for `AT+CPCMREG=1`?
pub(crate) fn simcom_settled(started: Option<Instant>, now: Instant) -> bool {
    started.is_some_and(|t| now.saturating_duration_since(t) >= SIMCOM_PCM_SETTLE)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn odd_byte_counts_are_reassembled_into_samples() {
        let samples: Vec<i16> = vec![1, -2, 300, -32768, 32767];
        let bytes: Vec<u8> = samples.iter().flat_map(|s| s.to_le_bytes()).collect();
        let mut v = Voice::default();
        for chunk in bytes.chunks(3) {
            v.input(chunk, true);
        }
        assert_eq!(v.far_end_heard(), samples);
    }

    #[test]
    fn nothing_is_heard_while_the_path_is_off() {
        let mut v = Voice::default();
        v.input(&[1, 0, 2, 0], false);
        assert!(v.far_end_heard().is_empty());
    }

    #[test]
    fn frames_carry_queued_audio_then_silence() {
        let mut v = Voice::default();
        v.far_end_play(&[5; 100]);
        let f = v.next_frame();
        assert_eq!(f.len(), FRAME_BYTES);
        assert_eq!(f.get(..2), Some(&[5u8, 0][..]));
        assert_eq!(f.get(200..202), Some(&[0u8, 0][..]));
        assert_eq!(v.queued(), 0);
    }
}
