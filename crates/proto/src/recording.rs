//! Recordings (voicemail now, whole calls later) from an appliance to mgmt
//! (docs/PROTOCOL.md, "Recordings").
//!
//! The appliance declares a recording in its event log first
//! (`voicemail_recorded {recording, bytes, sha256}`), then sends the file in
//! [`RecordingChunk`]s of at most [`CHUNK_BYTES`] on its `rec` topic; mgmt
//! answers every chunk with a [`RecordingState`] on `rec_state`: how many
//! bytes it holds, and whether the whole file is stored and verified. A
//! chunk with no data asks for the state (where to resume after a
//! reconnect or a restart of either side).

use crate::{ProtoError, VERSION, Wire};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use crossline_core::RecordingId;
use serde::{Deserialize, Serialize};

/// Most bytes of a recording one chunk carries (before base64).
pub const CHUNK_BYTES: usize = 64 * 1024;

/// Largest recording mgmt accepts, in bytes: 600 s of 8 kHz 16-bit mono
/// (the longest voicemail) is 9.6 MB; calls later are longer.
pub const MAX_RECORDING_BYTES: u64 = 64 * 1024 * 1024;

/// The sha256 a recording is declared with (lowercase hex): what the
/// appliance puts in `voicemail_recorded` and mgmt checks the stored file
/// against before it confirms `complete`. Reads the file in 64 KiB pieces.
pub fn sha256_file(path: &std::path::Path) -> std::io::Result<String> {
    use sha2::{Digest, Sha256};
    use std::io::Read;
    let mut f = std::fs::File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(buf.get(..n).unwrap_or_default());
    }
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

fn version() -> u32 {
    VERSION
}

/// appliance → mgmt on `rec`: `data` (base64) is the recording's bytes from
/// `offset`; empty data asks mgmt for its [`RecordingState`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordingChunk {
    #[serde(default = "version")]
    pub v: u32,
    pub id: RecordingId,
    pub offset: u64,
    /// Base64 (standard alphabet, padded).
    #[serde(default)]
    pub data: String,
}

impl RecordingChunk {
    pub fn new(id: RecordingId, offset: u64, bytes: &[u8]) -> Self {
        Self {
            v: VERSION,
            id,
            offset,
            data: STANDARD.encode(bytes),
        }
    }

    /// A question: "what do you have of `id`?"
    pub fn query(id: RecordingId) -> Self {
        Self::new(id, 0, &[])
    }

    /// The chunk's bytes (checked by [`Wire::validate`] on decode).
    pub fn bytes(&self) -> Result<Vec<u8>, ProtoError> {
        if self.data.len() > base64_len(CHUNK_BYTES) {
            return Err(too_big(self.data.len()));
        }
        STANDARD
            .decode(&self.data)
            .map_err(|e| ProtoError::Invalid {
                what: "recording chunk",
                detail: format!("data of recording {} is not base64: {e}", self.id),
            })
    }
}

fn base64_len(n: usize) -> usize {
    n.div_ceil(3) * 4
}

fn too_big(len: usize) -> ProtoError {
    ProtoError::Invalid {
        what: "recording chunk",
        detail: format!(
            "{len} characters of base64, more than a {CHUNK_BYTES}-byte chunk ({})",
            base64_len(CHUNK_BYTES)
        ),
    }
}

impl Wire for RecordingChunk {
    const NAME: &'static str = "recording chunk";
    fn validate(&self) -> Result<(), ProtoError> {
        let n = self.bytes()?.len() as u64;
        match self.offset.checked_add(n) {
            Some(end) if end <= MAX_RECORDING_BYTES => Ok(()),
            _ => Err(ProtoError::Invalid {
                what: "recording chunk",
                detail: format!(
                    "bytes {}..+{n} of recording {} lie beyond the {MAX_RECORDING_BYTES}-byte limit",
                    self.offset, self.id
                ),
            }),
        }
    }
}

/// mgmt → appliance on `rec_state`: what mgmt holds of a recording.
/// `complete`: the whole file is stored and its sha256 matched the declared
/// one; the appliance may delete its copy. `error`: why the last chunk was
/// refused (mgmt kept what it had, `have`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordingState {
    #[serde(default = "version")]
    pub v: u32,
    pub id: RecordingId,
    pub have: u64,
    #[serde(default)]
    pub complete: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl RecordingState {
    pub fn new(id: RecordingId, have: u64, complete: bool, error: Option<String>) -> Self {
        Self {
            v: VERSION,
            id,
            have,
            complete,
            error,
        }
    }
}

impl Wire for RecordingState {
    const NAME: &'static str = "recording state";
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::{decode, encode};
    use proptest::prelude::*;

    #[test]
    fn a_full_chunk_fits_the_payload_limit() {
        let c = RecordingChunk::new(RecordingId::new(), 0, &vec![0xAB; CHUNK_BYTES]);
        let bytes = encode(&c);
        assert!(bytes.len() < crate::MAX_PAYLOAD, "{}", bytes.len());
        assert_eq!(decode::<RecordingChunk>(&bytes).unwrap(), c);
    }

    #[test]
    fn oversized_or_garbled_chunks_are_refused() {
        let mut c = RecordingChunk::new(RecordingId::new(), 0, &vec![1; CHUNK_BYTES + 3]);
        let e = decode::<RecordingChunk>(&encode(&c))
            .unwrap_err()
            .to_string();
        assert!(e.contains("more than"), "{e}");
        c.data = "not base64!".into();
        assert!(decode::<RecordingChunk>(&encode(&c)).is_err());
        let c = RecordingChunk::new(RecordingId::new(), MAX_RECORDING_BYTES - 1, &[1, 2]);
        let e = decode::<RecordingChunk>(&encode(&c))
            .unwrap_err()
            .to_string();
        assert!(e.contains("limit"), "{e}");
        let c = RecordingChunk::new(RecordingId::new(), u64::MAX, &[1]);
        assert!(decode::<RecordingChunk>(&encode(&c)).is_err());
    }

    proptest! {
        #[test]
        fn chunks_round_trip(data in proptest::collection::vec(any::<u8>(), 0..2048), offset in 0u64..1_000_000) {
            let c = RecordingChunk::new(RecordingId::new(), offset, &data);
            let d = decode::<RecordingChunk>(&encode(&c)).unwrap();
            prop_assert_eq!(d.bytes().unwrap(), data);
            prop_assert_eq!(d.offset, offset);
        }

        #[test]
        fn any_chunk_payload_decodes_or_errs(s in "\\{\"v\":1,\"id\":\"[0-9a-f-]{36}\",\"offset\":[0-9]{1,20},\"data\":\"[ -~]{0,64}\"\\}") {
            let _ = decode::<RecordingChunk>(s.as_bytes());
        }
    }
}
