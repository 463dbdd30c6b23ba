//! What the voice service and an IVR session need of a call's line,
//! whatever kind it is: answer, hang up, and the call's audio as a source
//! and a sink of 20 ms frames. A GSM line is its modem driver's handle (the
//! audio is the modem's voice port, or its ALSA device with `voice_alsa`);
//! an analog line is its FXO driver (the audio is the line's PCM: the
//! simulated line's over its link, or the line's ALSA device with
//! `voice_alsa`). The IVR session (`session.rs`) runs the same on all.

use super::alsa::{AlsaIn, AlsaLine, AlsaOut};
use crate::lines::FxoCall;
use crossline_audio::pcm::Frame;
use crossline_line::link::LinkAudioSender;
use crossline_modem::{ModemHandle, VoiceReceiver, VoiceSender};
use tokio::sync::mpsc;

/// The call control of a line.
#[derive(Debug, Clone)]
pub enum LineCtl {
    /// A GSM modem (its driver's handle).
    Modem(ModemHandle),
    /// An analog line (its FXO driver and audio).
    Fxo(FxoCall),
}

impl LineCtl {
    /// Takes the ringing call (the modem's `ATA`, the FXO line off-hook).
    pub async fn answer(&self) -> Result<(), String> {
        match self {
            LineCtl::Modem(m) => m.answer().await.map_err(|e| e.to_string()),
            LineCtl::Fxo(f) => f.answer().map_err(|e| e.to_string()),
        }
    }

    /// Ends the call from this side (`ATH`, the FXO line on-hook).
    pub async fn hang_up(&self) -> Result<(), String> {
        match self {
            LineCtl::Modem(m) => m.hangup().await.map_err(|e| e.to_string()),
            LineCtl::Fxo(f) => f.hang_up().map_err(|e| e.to_string()),
        }
    }

    /// The connected call's audio: what the caller says and where what
    /// the caller hears goes. `alsa`: the modem's `voice_alsa` device (an
    /// analog line's is opened by its own task, for caller ID too). An
    /// error says why the line has none.
    pub async fn audio(&self, alsa: Option<&AlsaLine>) -> Result<(AudioIn, AudioOut), String> {
        match (self, alsa) {
            (LineCtl::Modem(_), Some(alsa)) => {
                let (rx, tx) = alsa.open().await?;
                Ok((AudioIn::Alsa(rx), AudioOut::Alsa(tx)))
            }
            (LineCtl::Modem(m), None) => {
                let stream = m.voice().await.map_err(|e| e.to_string())?;
                let (rx, tx) = stream.split();
                Ok((AudioIn::Modem(rx), AudioOut::Modem(tx)))
            }
            (LineCtl::Fxo(f), _) => {
                let (rx, tx) = f.audio()?;
                Ok((AudioIn::Fxo(rx), tx))
            }
        }
    }
}

/// The caller's audio, 20 ms at a time (a PCM source).
#[derive(Debug)]
pub enum AudioIn {
    Modem(VoiceReceiver),
    /// Frames the FXO line's task hands over while the call lasts.
    Fxo(mpsc::Receiver<Frame>),
    /// A modem's `voice_alsa` device, opened for the call.
    Alsa(AlsaIn),
}

impl AudioIn {
    /// The next frame; `None` once the call's audio has ended (the call is
    /// over).
    pub async fn recv_frame(&mut self) -> Option<Frame> {
        match self {
            AudioIn::Modem(rx) => rx.recv_frame().await,
            AudioIn::Fxo(rx) => rx.recv().await,
            AudioIn::Alsa(rx) => rx.recv_frame().await,
        }
    }
}

/// What the caller hears, 20 ms at a time (a PCM sink; the caller paces
/// it: one frame every 20 ms).
#[derive(Debug, Clone)]
pub enum AudioOut {
    Modem(VoiceSender),
    /// An analog line's link.
    Fxo(LinkAudioSender),
    /// A line's `voice_alsa` device (a modem's or an analog line's).
    Alsa(AlsaOut),
}

impl AudioOut {
    /// Sends one frame; an error once the call's audio is gone.
    pub async fn send_frame(&self, frame: Frame) -> Result<(), String> {
        match self {
            AudioOut::Modem(tx) => tx.send_frame(frame).await.map_err(|e| e.to_string()),
            AudioOut::Fxo(tx) => tx
                .send_frame(&frame)
                .map_err(|_| "the analog line's link is closed".to_string()),
            AudioOut::Alsa(tx) => tx.send_frame(frame).await,
        }
    }
}
