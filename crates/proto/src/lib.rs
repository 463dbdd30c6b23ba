//! The wire contract between Crossline appliances and mgmt.
//!
//! Everything that crosses MQTT is defined here and only here: topic names
//! ([`topic`]), payload types ([`msg`]), the version rule and the size limits,
//! and the broker URL syntax both sides configure ([`url`]).
//! See docs/PROTOCOL.md for the prose version.
//!
//! Encoding is JSON (serde_json): payloads are small, readable with
//! `mosquitto_sub`, and debuggable in the field; decoding is strict (unknown
//! fields and unknown versions are refused with a clear error), except that
//! an event or command kind a newer build added decodes as an unknown kind,
//! kept raw (see docs/PROTOCOL.md, "Versions and strictness").

pub mod ivr;
pub mod msg;
pub mod recording;
pub mod topic;
pub mod update;
pub mod url;

pub use ivr::IvrSettings;
pub use msg::{
    Ack, ApplianceSettings, Command, CommandKind, CommandResult, DesiredConfig, EnrollRequest,
    EnrollResponse, EnrollState, EventBatch, Hello, LineSettings, OfflineSettings, Presence,
    PresenceState, Rekey, Rekeyed, ReportedConfig, Telemetry,
};
pub use msg::{MAX_CONFIG_VERSION, MAX_TELEMETRY_FIELD, MAX_TELEMETRY_MODEMS};
pub use topic::{DeviceTopic, ENROLL_USER, EnrollKind, EnrollTopic, Kind};
pub use update::{UpdateState, UpdateStatus, compare_versions};
pub use url::{BrokerUrl, UrlError, parse_mqtt_url};

use serde::{Serialize, de::DeserializeOwned};

/// The protocol version this build speaks. Carried as `"v"` in every payload.
pub const VERSION: u32 = 1;

/// Largest payload accepted on any topic, in bytes. Bigger ones are refused
/// before parsing (a rogue device cannot make mgmt allocate without bound).
pub const MAX_PAYLOAD: usize = 256 * 1024;

/// Most events one [`EventBatch`] may carry.
pub const MAX_BATCH: usize = 512;

/// Why a payload or topic was refused.
#[derive(Debug, thiserror::Error)]
pub enum ProtoError {
    #[error("payload of {size} bytes exceeds the {max}-byte limit")]
    TooLarge { size: usize, max: usize },
    #[error("payload is not a JSON object with a numeric \"v\" field: {0}")]
    NoVersion(String),
    #[error(
        "protocol version {got} is not supported (this build speaks v{supported}); upgrade the older side"
    )]
    UnsupportedVersion { got: u64, supported: u32 },
    #[error("malformed {what} payload: {source}")]
    Malformed {
        what: &'static str,
        #[source]
        source: serde_json::Error,
    },
    #[error("invalid {what}: {detail}")]
    Invalid { what: &'static str, detail: String },
    #[error("topic {0:?} is not a crossline/v1 device topic")]
    BadTopic(String),
}

/// A payload type with a fixed name, version-checked on decode.
pub trait Wire: Serialize + DeserializeOwned {
    /// Name used in error messages and logs.
    const NAME: &'static str;
    /// Checks invariants serde cannot express.
    fn validate(&self) -> Result<(), ProtoError> {
        Ok(())
    }
}

/// Encodes a message (with `"v"` set by the type itself).
pub fn encode<T: Wire>(msg: &T) -> Vec<u8> {
    // Serialising our own plain structs cannot fail (no maps with non-string
    // keys, no custom serialisers that error).
    serde_json::to_vec(msg).unwrap_or_default()
}

/// Decodes and validates a payload: size limit, then version, then shape.
///
/// The payload is parsed once when `"v"` is its first member (as [`encode`]
/// writes it); otherwise the version is looked up in a first pass.
pub fn decode<T: Wire>(bytes: &[u8]) -> Result<T, ProtoError> {
    if bytes.len() > MAX_PAYLOAD {
        return Err(ProtoError::TooLarge {
            size: bytes.len(),
            max: MAX_PAYLOAD,
        });
    }
    let v = match leading_version(bytes) {
        Some(v) => v,
        None => {
            #[derive(serde::Deserialize)]
            struct Peek {
                v: Option<serde_json::Value>,
            }
            let peek: Peek =
                serde_json::from_slice(bytes).map_err(|e| ProtoError::NoVersion(e.to_string()))?;
            peek.v
                .as_ref()
                .and_then(serde_json::Value::as_u64)
                .ok_or_else(|| ProtoError::NoVersion("missing or non-numeric \"v\"".into()))?
        }
    };
    if v != u64::from(VERSION) {
        return Err(ProtoError::UnsupportedVersion {
            got: v,
            supported: VERSION,
        });
    }
    let msg: T = serde_json::from_slice(bytes).map_err(|source| ProtoError::Malformed {
        what: T::NAME,
        source,
    })?;
    msg.validate()?;
    Ok(msg)
}

/// The version when the payload starts with `{"v": <integer>` (JSON
/// whitespace allowed) followed by `,` or `}`; `None` for anything else,
/// which [`decode`] then reads the slow way.
fn leading_version(bytes: &[u8]) -> Option<u64> {
    fn ws(s: &[u8]) -> &[u8] {
        let n = s
            .iter()
            .take_while(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
            .count();
        s.get(n..).unwrap_or_default()
    }
    let s = ws(bytes).strip_prefix(b"{")?;
    let s = ws(s).strip_prefix(b"\"v\"")?;
    let s = ws(s).strip_prefix(b":")?;
    let s = ws(s);
    let digits = s.iter().take_while(|b| b.is_ascii_digit()).count();
    // JSON allows no leading zero ("01"); such a number is left to serde.
    if digits == 0 || (digits > 1 && s.first() == Some(&b'0')) {
        return None;
    }
    let (num, rest) = s.split_at(digits);
    if !matches!(ws(rest).first(), Some(b',' | b'}')) {
        return None;
    }
    std::str::from_utf8(num).ok()?.parse().ok()
}
