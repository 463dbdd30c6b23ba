//! The crate's one error type.

use std::path::PathBuf;

/// What went wrong with audio: a file, a device or a stream.
///
/// Every message names the file or device and says what to do about it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AudioError {
    /// A file could not be opened, created or written.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done ("cannot open", "cannot create", ...).
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The operating system's reason.
        #[source]
        source: std::io::Error,
    },
    /// A WAV file could not be read or written (bad header, truncated data,
    /// encoding hound does not know).
    #[error(
        "WAV file {path}: {source}; expected an uncompressed PCM WAV file (convert with `sox IN -r 8000 -c 1 -b 16 -e signed-integer OUT.wav`)"
    )]
    Wav {
        /// The file.
        path: PathBuf,
        /// hound's reason.
        #[source]
        source: hound::Error,
    },
    /// A WAV recording could not be written.
    #[error(
        "cannot write WAV recording {path}: {source}; check free space and permissions of its directory"
    )]
    WavWrite {
        /// The file.
        path: PathBuf,
        /// hound's reason.
        #[source]
        source: hound::Error,
    },
    /// A WAV recording reached the format's 4 GiB limit (about 74 hours at
    /// 8 kHz 16-bit); start a new file.
    #[error("WAV recording {path} is full (a WAV file holds at most 4 GiB); start a new file")]
    WavFull {
        /// The file.
        path: PathBuf,
    },
    /// A WAV file ends before the number of samples its header declares.
    #[error(
        "WAV file {path} is cut short: its header declares {declared} samples but the file holds {read}; the recording was interrupted or the copy is incomplete"
    )]
    WavTruncated {
        /// The file.
        path: PathBuf,
        /// Samples the header declares.
        declared: u64,
        /// Samples actually present.
        read: u64,
    },
    /// A WAV file is readable but not 8 kHz mono 16-bit PCM.
    #[error(
        "WAV file {path} is {found}; expected 8000 Hz mono 16-bit PCM (convert with `sox {path} -r 8000 -c 1 -b 16 -e signed-integer OUT.wav`)"
    )]
    WavFormat {
        /// The file.
        path: PathBuf,
        /// What the header says, e.g. "44100 Hz, 2 channels, 16-bit integer".
        found: String,
    },
    /// An ALSA call failed on a device.
    #[cfg(feature = "alsa")]
    #[error(
        "ALSA device {device:?}: {action} failed: {source}; check the device name (`aplay -L` / `arecord -L`) and that no other program holds it"
    )]
    Alsa {
        /// The ALSA PCM name, e.g. `plughw:CARD=EC25,DEV=0`.
        device: String,
        /// The call that failed ("open", "set hardware parameters", ...).
        action: &'static str,
        /// alsa-lib's reason.
        #[source]
        source: alsa::Error,
    },
    /// An ALSA device cannot run at 8000 Hz.
    #[cfg(feature = "alsa")]
    #[error(
        "ALSA device {device:?} runs at {found}, not 8000 Hz; use a `plughw:` or `plug:` device so alsa-lib resamples"
    )]
    AlsaFormat {
        /// The ALSA PCM name.
        device: String,
        /// What the device settled on.
        found: String,
    },
    /// A received RTP payload is not one 20 ms G.711 frame.
    #[error(
        "RTP payload of {got} bytes; a 20 ms G.711 frame is 160 bytes (set the far end's packetisation time to 20 ms)"
    )]
    Payload {
        /// Its length.
        got: usize,
    },
    /// The audio thread of a device has stopped (closed, or failed: its
    /// error was logged); open the device again.
    #[error("audio stream of {device:?} has stopped: {reason}")]
    Stopped {
        /// The device (ALSA name or a description).
        device: String,
        /// Why, as far as known.
        reason: String,
    },
}

/// `Result` with [`AudioError`].
pub type Result<T, E = AudioError> = std::result::Result<T, E>;
