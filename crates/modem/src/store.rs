//! Small helpers for the receive path: the stable dedup key and the state
//! file that keeps directly delivered (+CMT) parts until they are confirmed.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// 128-bit FNV-1a (two 64-bit lanes with different offsets) over the fields,
/// each followed by a 0x1f separator. Stable across builds and platforms
/// (unlike `std::hash`), so a message re-offered after a restart gets the
/// same key.
pub fn stable_key(fields: &[&str]) -> String {
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut a: u64 = 0xcbf2_9ce4_8422_2325;
    let mut b: u64 = 0x6c62_272e_07bb_0142;
    for f in fields {
        for &byte in f.as_bytes().iter().chain(std::iter::once(&0x1f)) {
            a = (a ^ u64::from(byte)).wrapping_mul(PRIME);
            b = (b ^ u64::from(byte.rotate_left(3))).wrapping_mul(PRIME);
        }
    }
    format!("{a:016x}{b:016x}")
}

/// A directly delivered part kept until confirmed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirectPart {
    pub id: u64,
    /// PDU hex as received in +CMT (with the SMSC block).
    pub pdu: String,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct StateFile {
    next_id: u64,
    parts: Vec<DirectPart>,
}

/// Most parts kept; beyond that the oldest are dropped with a warning
/// (bounded memory and file size even if nobody ever confirms).
const MAX_PARTS: usize = 4096;
/// Largest state file read.
const MAX_FILE: u64 = 8 * 1024 * 1024;

/// Directly delivered parts not yet confirmed, optionally mirrored in a file.
#[derive(Debug, Default)]
pub struct DirectStore {
    path: Option<PathBuf>,
    state: StateFile,
}

/// A state file problem: says which file and what to do.
#[derive(Debug, thiserror::Error)]
#[error("state file {path}: {what}")]
pub struct StoreError {
    pub path: String,
    pub what: String,
}

impl DirectStore {
    /// Loads `path` if given (a missing file is an empty store).
    pub fn open(path: Option<&Path>) -> Result<Self, StoreError> {
        let Some(path) = path else {
            return Ok(Self::default());
        };
        let err = |what: String| StoreError {
            path: path.display().to_string(),
            what,
        };
        let state = match std::fs::metadata(path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => StateFile::default(),
            Err(e) => return Err(err(format!("cannot read it: {e}"))),
            Ok(m) if m.len() > MAX_FILE => {
                return Err(err(format!(
                    "is {} bytes, more than the {MAX_FILE} allowed; move it away",
                    m.len()
                )));
            }
            Ok(_) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| err(format!("cannot read it: {e}")))?;
                serde_json::from_str(&text)
                    .map_err(|e| err(format!("is not valid ({e}); move it away to start afresh")))?
            }
        };
        Ok(Self {
            path: Some(path.to_path_buf()),
            state,
        })
    }

    /// Parts waiting for confirmation.
    pub fn parts(&self) -> &[DirectPart] {
        &self.state.parts
    }

    /// Adds a part and writes the file; returns its id.
    pub fn add(&mut self, pdu: String) -> Result<u64, StoreError> {
        let id = self.state.next_id;
        self.state.next_id = self.state.next_id.wrapping_add(1);
        if self.state.parts.len() >= MAX_PARTS {
            self.state.parts.remove(0);
        }
        self.state.parts.push(DirectPart { id, pdu });
        self.save()?;
        Ok(id)
    }

    /// Removes confirmed parts and writes the file.
    pub fn remove(&mut self, ids: &[u64]) -> Result<(), StoreError> {
        if ids.is_empty() {
            return Ok(());
        }
        self.state.parts.retain(|p| !ids.contains(&p.id));
        self.save()
    }

    fn save(&self) -> Result<(), StoreError> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        let err = |what: String| StoreError {
            path: path.display().to_string(),
            what,
        };
        let text = serde_json::to_vec(&self.state).map_err(|e| err(e.to_string()))?;
        let tmp = path.with_extension("tmp");
        let write = || -> std::io::Result<()> {
            use std::io::Write;
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(&text)?;
            f.sync_all()?;
            std::fs::rename(&tmp, path)
        };
        write().map_err(|e| {
            err(format!(
                "cannot write it ({e}); check the directory exists and is writable"
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_is_stable_and_separated() {
        assert_eq!(stable_key(&["a", "b"]), stable_key(&["a", "b"]));
        assert_ne!(stable_key(&["ab", ""]), stable_key(&["a", "b"]));
        assert_eq!(stable_key(&["+79161234567", "hi"]).len(), 32);
    }

    #[test]
    fn store_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("gsm0.json");
        let mut s = DirectStore::open(Some(&p)).unwrap();
        let a = s.add("00AA".into()).unwrap();
        let b = s.add("00BB".into()).unwrap();
        s.remove(&[a]).unwrap();
        let s2 = DirectStore::open(Some(&p)).unwrap();
        assert_eq!(
            s2.parts(),
            &[DirectPart {
                id: b,
                pdu: "00BB".into()
            }]
        );
        std::fs::write(&p, "{not json").unwrap();
        let e = DirectStore::open(Some(&p)).unwrap_err();
        assert!(e.to_string().contains("move it away"), "{e}");
    }
}
