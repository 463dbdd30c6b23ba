//! WAV files: recording calls and reading 8 kHz mono line recordings.
//!
//! [`Recorder`] writes 8 kHz mono 16-bit WAV and fixes its header up after
//! every second of audio, so a crash (even `kill -9`) loses at most the last
//! second. [`read_wav_8k_mono`] is what the diagnostics CLI and the tests use
//! to load a recording; anything that is not 8000 Hz mono 16-bit PCM is
//! refused with a message that says how to convert it.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read};
use std::path::{Path, PathBuf};

use crate::SAMPLE_RATE;
use crate::error::AudioError;
use crate::pcm::{Frame, PcmSink};

/// The WAV header the [`Recorder`] writes: 8000 Hz, mono, 16-bit PCM.
pub const SPEC_8K_MONO: hound::WavSpec = hound::WavSpec {
    channels: 1,
    sample_rate: SAMPLE_RATE,
    bits_per_sample: 16,
    sample_format: hound::SampleFormat::Int,
};

/// Samples between header fix-ups: one second of audio.
const FLUSH_EVERY: u64 = SAMPLE_RATE as u64;

/// The most samples a WAV file can hold (its data size is a 32-bit byte
/// count; hound's header takes 44 bytes of the RIFF size).
const MAX_SAMPLES: u64 = (u32::MAX as u64 - 44) / 2;

/// Records 8 kHz mono 16-bit audio into a WAV file.
///
/// The header (sample count) is rewritten and the buffer written out after
/// every second of audio, so if the process dies the file still opens and
/// holds everything up to the last whole second. [`Recorder::finish`] writes
/// the rest; dropping a recorder without it finishes too but cannot report
/// an error.
pub struct Recorder {
    writer: hound::WavWriter<BufWriter<File>>,
    /// The same open file, to sync it to storage once finished.
    file: File,
    path: PathBuf,
    samples: u64,
    since_flush: u64,
}

impl std::fmt::Debug for Recorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recorder")
            .field("path", &self.path)
            .field("samples", &self.samples)
            .finish_non_exhaustive()
    }
}

impl Recorder {
    /// Creates (or truncates) `path` and writes its header.
    pub fn create(path: impl AsRef<Path>) -> Result<Self, AudioError> {
        let path = path.as_ref().to_owned();
        let file = File::create(&path).map_err(|source| AudioError::Io {
            action: "cannot create",
            path: path.clone(),
            source,
        })?;
        let handle = file.try_clone().map_err(|source| AudioError::Io {
            action: "cannot open a second handle to",
            path: path.clone(),
            source,
        })?;
        let writer =
            hound::WavWriter::new(BufWriter::new(file), SPEC_8K_MONO).map_err(|source| {
                AudioError::WavWrite {
                    path: path.clone(),
                    source,
                }
            })?;
        let mut recorder = Self {
            writer,
            file: handle,
            path,
            samples: 0,
            since_flush: 0,
        };
        // From the start the file on disk is a valid (empty) recording.
        recorder.flush()?;
        Ok(recorder)
    }

    /// The file being written.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Samples recorded so far.
    pub fn samples(&self) -> u64 {
        self.samples
    }

    /// Audio recorded so far.
    pub fn duration(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.samples * 1000 / u64::from(SAMPLE_RATE))
    }

    /// Appends samples; the header is fixed up each time another second of
    /// audio has been written.
    pub fn write(&mut self, samples: &[i16]) -> Result<(), AudioError> {
        let n = samples.len() as u64;
        if self.samples.saturating_add(n) > MAX_SAMPLES {
            return Err(AudioError::WavFull {
                path: self.path.clone(),
            });
        }
        // Split at second boundaries so a flush covers every whole second.
        let mut rest = samples;
        while !rest.is_empty() {
            let room = usize::try_from(FLUSH_EVERY - self.since_flush).unwrap_or(usize::MAX);
            let (now, later) = rest.split_at(room.min(rest.len()));
            let mut w = self.writer.get_i16_writer(now.len() as u32);
            for &s in now {
                w.write_sample(s);
            }
            w.flush().map_err(|e| self.write_error(e))?;
            self.samples += now.len() as u64;
            self.since_flush += now.len() as u64;
            if self.since_flush >= FLUSH_EVERY {
                self.flush()?;
            }
            rest = later;
        }
        Ok(())
    }

    /// Fixes the header up and writes out the buffer now.
    pub fn flush(&mut self) -> Result<(), AudioError> {
        self.writer.flush().map_err(|e| self.write_error(e))?;
        self.since_flush = 0;
        Ok(())
    }

    /// Writes the rest and the final header, and syncs the file and its
    /// directory entry to storage, so a finished recording survives a power
    /// cut; the number of samples recorded.
    pub fn finish(self) -> Result<u64, AudioError> {
        let Self {
            writer,
            file,
            path,
            samples,
            ..
        } = self;
        writer.finalize().map_err(|source| AudioError::WavWrite {
            path: path.clone(),
            source,
        })?;
        let sync_error = |source| AudioError::Io {
            action: "cannot sync to storage",
            path: path.clone(),
            source,
        };
        file.sync_all().map_err(sync_error)?;
        let dir = match path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir,
            _ => Path::new("."),
        };
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(sync_error)?;
        Ok(samples)
    }

    fn write_error(&self, source: hound::Error) -> AudioError {
        AudioError::WavWrite {
            path: self.path.clone(),
            source,
        }
    }
}

impl PcmSink for Recorder {
    fn write_frame(&mut self, frame: &Frame) -> Result<(), AudioError> {
        self.write(frame)
    }
}

/// Reads a WAV file that must be 8000 Hz, mono, 16-bit signed PCM.
///
/// The header's sample count is not trusted for allocation: at most what the
/// file's size can hold is reserved. A file shorter than its header says is
/// an error ([`AudioError::WavTruncated`]), as is any other format
/// ([`AudioError::WavFormat`]).
pub fn read_wav_8k_mono(path: impl AsRef<Path>) -> Result<Vec<i16>, AudioError> {
    let path = path.as_ref();
    let file = File::open(path).map_err(|source| AudioError::Io {
        action: "cannot open",
        path: path.to_owned(),
        source,
    })?;
    let file_len = file.metadata().map(|m| m.len()).unwrap_or(0);
    read_wav_8k_mono_from(BufReader::new(file), file_len, path)
}

/// Reads 8000 Hz mono 16-bit PCM WAV data from `reader` (`len` bytes long,
/// used only to bound the allocation; `name` names the source in errors).
pub fn read_wav_8k_mono_from(
    reader: impl Read,
    len: u64,
    name: &Path,
) -> Result<Vec<i16>, AudioError> {
    let wav_error = |source| AudioError::Wav {
        path: name.to_owned(),
        source,
    };
    let mut reader = hound::WavReader::new(reader).map_err(wav_error)?;
    let spec = reader.spec();
    if spec.sample_rate != SAMPLE_RATE
        || spec.channels != 1
        || spec.bits_per_sample != 16
        || spec.sample_format != hound::SampleFormat::Int
    {
        let format = match spec.sample_format {
            hound::SampleFormat::Int => "integer",
            hound::SampleFormat::Float => "float",
        };
        return Err(AudioError::WavFormat {
            path: name.to_owned(),
            found: format!(
                "{} Hz, {} channel(s), {}-bit {format}",
                spec.sample_rate, spec.channels, spec.bits_per_sample
            ),
        });
    }
    let declared = u64::from(reader.len());
    let room = usize::try_from(declared.min(len / 2)).unwrap_or(0);
    let mut samples = Vec::with_capacity(room);
    for sample in reader.samples::<i16>() {
        match sample {
            Ok(sample) => samples.push(sample),
            // hound reports running out of data as `Other` ("Failed to read
            // enough bytes") or `UnexpectedEof`, depending on where it stops.
            Err(hound::Error::IoError(e))
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::UnexpectedEof | std::io::ErrorKind::Other
                ) =>
            {
                return Err(AudioError::WavTruncated {
                    path: name.to_owned(),
                    declared,
                    read: samples.len() as u64,
                });
            }
            Err(source) => return Err(wav_error(source)),
        }
    }
    Ok(samples)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    fn write(path: &Path, spec: hound::WavSpec, samples: &[i16]) {
        let mut w = hound::WavWriter::create(path, spec).unwrap();
        for &s in samples {
            if spec.sample_format == hound::SampleFormat::Float {
                w.write_sample(f32::from(s) / 32768.0).unwrap();
            } else if spec.bits_per_sample == 8 {
                w.write_sample((s >> 8) as i8).unwrap();
            } else {
                w.write_sample(s).unwrap();
            }
        }
        w.finalize().unwrap();
    }

    fn spec(rate: u32, channels: u16, bits: u16, format: hound::SampleFormat) -> hound::WavSpec {
        hound::WavSpec {
            channels,
            sample_rate: rate,
            bits_per_sample: bits,
            sample_format: format,
        }
    }

    #[test]
    fn a_finished_recording_reads_back_exactly() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("call.wav");
        let samples: Vec<i16> = (0..12_345)
            .map(|i| (i * 31 % 65_536 - 32_768) as i16)
            .collect();
        let mut rec = Recorder::create(&path).unwrap();
        rec.write(&samples[..100]).unwrap();
        rec.write_frame(&samples[100..260].try_into().unwrap())
            .unwrap();
        rec.write(&samples[260..]).unwrap();
        assert_eq!(rec.duration(), std::time::Duration::from_millis(1543));
        assert_eq!(rec.finish().unwrap(), 12_345);
        assert_eq!(read_wav_8k_mono(&path).unwrap(), samples);
    }

    #[test]
    fn the_header_is_fixed_up_at_every_whole_second_while_recording() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("live.wav");
        let mut rec = Recorder::create(&path).unwrap();
        let readable = || read_wav_8k_mono(&path).unwrap().len();
        assert_eq!(readable(), 0, "a fresh recording is already a valid file");
        // 1.5 s in 20 ms frames, then 1.6 s in one write across two boundaries.
        for _ in 0..75 {
            rec.write_frame(&[5; 160]).unwrap();
        }
        assert_eq!(readable(), 8000);
        rec.write(&[6; 12_800]).unwrap();
        assert_eq!(readable(), 24_000);
        rec.flush().unwrap();
        assert_eq!(readable(), 24_800);
        rec.finish().unwrap();
    }

    #[test]
    fn a_recording_in_a_missing_directory_says_which_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("no/such/dir/vm.wav");
        let msg = Recorder::create(&path).unwrap_err().to_string();
        assert!(
            msg.contains("cannot create") && msg.contains("vm.wav"),
            "{msg}"
        );
    }

    #[test]
    fn reads_back_every_sample_of_an_8k_mono_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("line.wav");
        let samples: Vec<i16> = (0..20_000)
            .map(|i| (i * 7919 % 65_536 - 32_768) as i16)
            .collect();
        write(&path, spec(8000, 1, 16, hound::SampleFormat::Int), &samples);
        assert_eq!(read_wav_8k_mono(&path).unwrap(), samples);
    }

    #[test]
    fn refuses_other_rates_channels_and_formats_saying_what_the_file_is() {
        let dir = tempfile::tempdir().unwrap();
        let cases = [
            (
                spec(44_100, 1, 16, hound::SampleFormat::Int),
                "44100 Hz, 1 channel(s), 16-bit integer",
            ),
            (
                spec(8000, 2, 16, hound::SampleFormat::Int),
                "8000 Hz, 2 channel(s), 16-bit integer",
            ),
            (
                spec(8000, 1, 8, hound::SampleFormat::Int),
                "8000 Hz, 1 channel(s), 8-bit integer",
            ),
            (
                spec(8000, 1, 32, hound::SampleFormat::Float),
                "8000 Hz, 1 channel(s), 32-bit float",
            ),
        ];
        for (i, (spec, found)) in cases.into_iter().enumerate() {
            let path = dir.path().join(format!("{i}.wav"));
            write(&path, spec, &[0, 100, -100, 0]);
            let err = read_wav_8k_mono(&path).unwrap_err();
            let msg = err.to_string();
            assert!(matches!(err, AudioError::WavFormat { .. }), "{msg}");
            assert!(msg.contains(found), "{msg}");
            assert!(msg.contains(&path.display().to_string()), "{msg}");
            assert!(msg.contains("sox"), "{msg}");
        }
    }

    #[test]
    fn a_missing_file_says_which_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nope.wav");
        let msg = read_wav_8k_mono(&path).unwrap_err().to_string();
        assert!(
            msg.contains("cannot open") && msg.contains("nope.wav"),
            "{msg}"
        );
    }

    #[test]
    fn not_a_wav_file_is_an_error_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("text.wav");
        std::fs::write(&path, b"RIFF\x04\x00\x00\x00WAVEjunk").unwrap();
        let err = read_wav_8k_mono(&path).unwrap_err();
        assert!(matches!(err, AudioError::Wav { .. }), "{err}");
    }

    #[test]
    fn a_header_promising_more_than_the_file_holds_is_truncated_without_a_huge_allocation() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cut.wav");
        write(
            &path,
            spec(8000, 1, 16, hound::SampleFormat::Int),
            &[1; 800],
        );
        let mut bytes = std::fs::read(&path).unwrap();
        // The data chunk's size field (offset 40 in hound's 44-byte header)
        // now claims almost 4 GiB.
        bytes[40..44].copy_from_slice(&0xFFFF_FFF0u32.to_le_bytes());
        std::fs::write(&path, &bytes).unwrap();
        match read_wav_8k_mono(&path).unwrap_err() {
            AudioError::WavTruncated { declared, read, .. } => {
                assert_eq!(declared, 0xFFFF_FFF0 / 2);
                assert_eq!(read, 800);
            }
            other => panic!("{other}"),
        }
    }
}
