//! PCM sources and sinks: where 20 ms frames come from and go to.
//!
//! A line driver, the IVR and the recorder move audio as [`Frame`]s (160
//! samples, 20 ms at 8 kHz) through two small traits, so the same code runs
//! on ALSA (`alsa` module, feature `alsa`), on a modem's serial PCM, and on
//! the in-memory implementations here ([`VecSource`], [`CollectSink`]) in
//! tests and simulators.

use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};

use crate::FRAME_SAMPLES;
use crate::error::AudioError;

/// One 20 ms frame: [`FRAME_SAMPLES`] samples of 8 kHz mono 16-bit PCM.
pub type Frame = [i16; FRAME_SAMPLES];

/// A frame of digital silence.
pub const SILENCE: Frame = [0; FRAME_SAMPLES];

/// Something that produces audio one 20 ms frame at a time.
pub trait PcmSource {
    /// The next frame, `Ok(None)` once the stream has ended.
    ///
    /// A live source (a capture device) blocks until the frame has been
    /// captured; an in-memory one returns at once.
    fn read_frame(&mut self) -> Result<Option<Frame>, AudioError>;
}

/// Something that consumes audio one 20 ms frame at a time.
pub trait PcmSink {
    /// Takes one frame. A live sink (a playback device) may block while its
    /// queue is full.
    fn write_frame(&mut self, frame: &Frame) -> Result<(), AudioError>;
}

impl<S: PcmSource + ?Sized> PcmSource for &mut S {
    fn read_frame(&mut self) -> Result<Option<Frame>, AudioError> {
        (**self).read_frame()
    }
}

impl<S: PcmSource + ?Sized> PcmSource for Box<S> {
    fn read_frame(&mut self) -> Result<Option<Frame>, AudioError> {
        (**self).read_frame()
    }
}

impl<S: PcmSink + ?Sized> PcmSink for &mut S {
    fn write_frame(&mut self, frame: &Frame) -> Result<(), AudioError> {
        (**self).write_frame(frame)
    }
}

impl<S: PcmSink + ?Sized> PcmSink for Box<S> {
    fn write_frame(&mut self, frame: &Frame) -> Result<(), AudioError> {
        (**self).write_frame(frame)
    }
}

/// Splits samples into frames; a last partial frame is padded with silence.
pub fn frames(samples: &[i16]) -> impl Iterator<Item = Frame> + '_ {
    samples.chunks(FRAME_SAMPLES).map(|chunk| {
        let mut frame = SILENCE;
        for (out, &s) in frame.iter_mut().zip(chunk) {
            *out = s;
        }
        frame
    })
}

/// A source that plays out samples held in memory, then ends.
///
/// The last partial frame is padded with silence.
#[derive(Debug, Clone, Default)]
pub struct VecSource {
    samples: Vec<i16>,
    pos: usize,
}

impl VecSource {
    /// A source over `samples`.
    pub fn new(samples: Vec<i16>) -> Self {
        Self { samples, pos: 0 }
    }

    /// A source over an 8 kHz mono 16-bit WAV file (see
    /// [`crate::wav::read_wav_8k_mono`]).
    pub fn from_wav(path: impl AsRef<Path>) -> Result<Self, AudioError> {
        crate::wav::read_wav_8k_mono(path).map(Self::new)
    }

    /// Samples not yet read.
    pub fn remaining(&self) -> usize {
        self.samples.len().saturating_sub(self.pos)
    }
}

impl PcmSource for VecSource {
    fn read_frame(&mut self) -> Result<Option<Frame>, AudioError> {
        let rest = self.samples.get(self.pos..).unwrap_or_default();
        let Some(frame) = frames(rest).next() else {
            return Ok(None);
        };
        self.pos = self.pos.saturating_add(FRAME_SAMPLES);
        Ok(Some(frame))
    }
}

/// A sink that keeps every sample written to it.
///
/// Clones share the same buffer, so a test or simulator can hand one clone
/// to the code under test and read what arrived through another.
#[derive(Debug, Clone, Default)]
pub struct CollectSink {
    samples: Arc<Mutex<Vec<i16>>>,
}

impl CollectSink {
    /// An empty sink.
    pub fn new() -> Self {
        Self::default()
    }

    /// A copy of every sample written so far.
    pub fn samples(&self) -> Vec<i16> {
        self.samples
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Number of samples written so far.
    pub fn len(&self) -> usize {
        self.samples
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// Whether nothing has been written yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Takes the samples written so far, leaving the sink empty.
    pub fn take(&self) -> Vec<i16> {
        std::mem::take(&mut *self.samples.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

impl PcmSink for CollectSink {
    fn write_frame(&mut self, frame: &Frame) -> Result<(), AudioError> {
        self.samples
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend_from_slice(frame);
        Ok(())
    }
}

/// Copies frames from `source` to `sink` until the source ends; returns the
/// number of frames copied.
pub fn copy(
    source: &mut (impl PcmSource + ?Sized),
    sink: &mut (impl PcmSink + ?Sized),
) -> Result<u64, AudioError> {
    let mut n = 0u64;
    while let Some(frame) = source.read_frame()? {
        sink.write_frame(&frame)?;
        n += 1;
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    #[test]
    fn a_vec_source_through_a_collect_sink_keeps_every_sample_and_pads_the_last_frame() {
        let samples: Vec<i16> = (0..1000).map(|i| i as i16 - 500).collect();
        let mut source = VecSource::new(samples.clone());
        let sink = CollectSink::new();
        let mut writer = sink.clone();
        let n = copy(&mut source, &mut writer).unwrap();
        assert_eq!(n, 7, "1000 samples are 6 full frames and one partial");
        let got = sink.samples();
        assert_eq!(got.len(), 7 * FRAME_SAMPLES);
        assert_eq!(&got[..1000], &samples[..]);
        assert!(got[1000..].iter().all(|&s| s == 0), "padding is silence");
        assert_eq!(source.read_frame().unwrap(), None, "the source stays ended");
    }

    #[test]
    fn an_empty_source_ends_at_once_and_take_empties_the_sink() {
        assert_eq!(VecSource::default().read_frame().unwrap(), None);
        let mut sink = CollectSink::new();
        sink.write_frame(&[7; FRAME_SAMPLES]).unwrap();
        assert_eq!(sink.take(), vec![7; FRAME_SAMPLES]);
        assert!(sink.is_empty());
    }

    #[test]
    fn a_source_reads_a_wav_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.wav");
        let spec = hound::WavSpec {
            channels: 1,
            sample_rate: 8000,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let mut w = hound::WavWriter::create(&path, spec).unwrap();
        for i in 0..320 {
            w.write_sample(i as i16).unwrap();
        }
        w.finalize().unwrap();
        let mut source = VecSource::from_wav(&path).unwrap();
        assert_eq!(source.remaining(), 320);
        assert_eq!(source.read_frame().unwrap().unwrap()[159], 159);
        assert_eq!(source.read_frame().unwrap().unwrap()[0], 160);
        assert_eq!(source.read_frame().unwrap(), None);
    }
}
