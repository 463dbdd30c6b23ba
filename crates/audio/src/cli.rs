//! The diagnostics commands behind the `crossline-audio` binary, as a
//! library module so another program (the appliance) can offer them as its
//! own subcommand: embed [`Cmd`] in a clap parser and call [`run`].
//!
//! Each command reads an 8 kHz mono 16-bit WAV file (a line recording,
//! `wav::read_wav_8k_mono`) and prints one JSON object on stdout; on failure
//! it prints nothing there, and the error (what is wrong with the file or
//! the signal, and what to try) goes to stderr with exit status 1.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Subcommand;
use serde::Serialize;

use crate::cid::{self, CallerId, Standard};
use crate::dtmf::{self, Digit};
use crate::wav::read_wav_8k_mono;

/// The diagnostics commands.
#[derive(Subcommand)]
pub enum Cmd {
    /// Detect DTMF keys in a WAV file; prints {"digits": "...", "keys": [...]}.
    Dtmf {
        /// 8 kHz mono 16-bit PCM WAV.
        file: PathBuf,
    },
    /// Decode caller ID from a WAV file (the audio before or between the
    /// first rings); prints {"number", "name", "time", "number_absence",
    /// "name_absence"}.
    Cid {
        /// 8 kHz mono 16-bit PCM WAV.
        file: PathBuf,
        /// etsi (V.23 FSK, EN 300 659), bell202 (Bell 202 FSK, GR-30) or dtmf.
        #[arg(long, value_parser = parse_standard)]
        standard: Standard,
    },
}

fn parse_standard(s: &str) -> Result<Standard, String> {
    s.parse()
}

/// What `dtmf` prints.
#[derive(Debug, Serialize)]
pub struct DtmfJson {
    /// The keys in order.
    pub digits: String,
    /// Each key with where it began (sample from the file's start) and how
    /// long it lasted.
    pub keys: Vec<Digit>,
}

/// The keys in `samples`.
pub fn detect_dtmf(samples: &[i16]) -> DtmfJson {
    let mut detector = dtmf::Detector::new();
    let mut keys = Vec::new();
    for frame in samples.chunks(crate::FRAME_SAMPLES) {
        keys.extend(detector.push(frame));
    }
    keys.extend(detector.finish());
    DtmfJson {
        digits: keys.iter().map(|d| d.key).collect(),
        keys,
    }
}

fn read(file: &Path) -> anyhow::Result<Vec<i16>> {
    Ok(read_wav_8k_mono(file)?)
}

/// Runs one command, printing its JSON to stdout.
pub fn run(cmd: Cmd) -> anyhow::Result<()> {
    match cmd {
        Cmd::Dtmf { file } => {
            let samples = read(&file)?;
            println!("{}", serde_json::to_string_pretty(&detect_dtmf(&samples))?);
        }
        Cmd::Cid { file, standard } => {
            let samples = read(&file)?;
            let cid: CallerId = cid::decode(&samples, standard).with_context(|| {
                format!(
                    "no {standard} caller ID in {} ({:.1} s of audio)",
                    file.display(),
                    samples.len() as f64 / f64::from(crate::SAMPLE_RATE)
                )
            })?;
            println!("{}", serde_json::to_string_pretty(&cid)?);
        }
    }
    Ok(())
}
