//! Telephone audio for the branch appliance.
//!
//! Everything here works on 8 kHz mono signed 16-bit linear PCM in 20 ms
//! frames ([`SAMPLE_RATE`], [`FRAME_SAMPLES`]), the format GSM modems
//! (Quectel `AT+QPCMV`, SIMCom `AT+CPCMREG`, Huawei `AT^DDSETEX`) and FXO
//! audio codecs deliver and G.711 carries.

/// Samples per second of every signal in this crate.
pub const SAMPLE_RATE: u32 = 8_000;
/// Samples in one 20 ms frame (one ALSA period, one RTP packet).
pub const FRAME_SAMPLES: usize = 160;

#[cfg(feature = "alsa")]
pub mod alsa;
pub mod cid;
#[cfg(feature = "cli")]
pub mod cli;
pub mod dtmf;
mod error;
pub mod fsk;
pub mod fuzz_input;
pub mod g711;
pub mod goertzel;
pub mod jitter;
pub mod pcm;
pub mod tones;
pub mod wav;

pub use error::{AudioError, Result};
