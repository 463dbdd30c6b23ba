//! Forward-compatible decoding of enums tagged by `type` (event bodies,
//! commands): a `type` this build does not know at all is kept raw as
//! [`Unrecognized`] instead of failing the whole message, so a newer node's
//! new kind is stored and answered, never a stall. A `type` this build knows
//! is decoded strictly as that kind: a malformed one is an error, never
//! "unrecognized" (a sender cannot disguise a known kind as an unknown one).
//!
//! The known names are read from serde's own list of the enum's variants
//! ([`known_tags`]), so a kind added to the enum is known without a second
//! list to keep in step.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// A tagged message of a kind this build does not know: its JSON as
/// received (`type` included). Built only by [`decode`], and only when the
/// `type` names no kind this build knows.
#[derive(Debug, Clone, PartialEq)]
pub struct Unrecognized {
    raw: Map<String, Value>,
}

impl Unrecognized {
    /// The `type` the sender gave it.
    pub fn kind(&self) -> &str {
        self.raw
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or_default()
    }

    /// The message as received.
    pub fn raw(&self) -> &Map<String, Value> {
        &self.raw
    }
}

impl Serialize for Unrecognized {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.raw.serialize(s)
    }
}

/// The error type of the probe in [`known_tags`]: keeps the variant list
/// the derived decoder names when it meets a tag it has no variant for.
#[derive(Debug)]
pub struct Variants(&'static [&'static str]);

impl std::fmt::Display for Variants {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("variant list probe")
    }
}

impl std::error::Error for Variants {}

impl serde::de::Error for Variants {
    fn custom<T: std::fmt::Display>(_: T) -> Self {
        Variants(&[])
    }
    fn unknown_variant(_: &str, expected: &'static [&'static str]) -> Self {
        Variants(expected)
    }
}

/// What [`known_tags`] hands the derived decoder: `{"type": <no such kind>}`.
pub type Probe = serde::de::value::MapDeserializer<
    'static,
    std::iter::Once<(&'static str, &'static str)>,
    Variants,
>;

/// The tag names a derived (`#[serde(tag = "type")]`) decoder knows, read by
/// decoding `{"type": <a name no variant has>}` with `strict`: the decoder
/// answers with its list of variants (skipped variants are not in it).
/// Cache the answer (it does not change while the program runs).
pub fn known_tags<T>(strict: fn(Probe) -> Result<T, Variants>) -> &'static [&'static str] {
    let probe = Probe::new(std::iter::once(("type", "\u{0}no such kind")));
    match strict(probe) {
        Err(Variants(names)) => names,
        Ok(_) => &[],
    }
}

/// Decodes a `type`-tagged object: strictly with `strict` when its `type` is
/// in `known`, else kept raw with `unknown`. A body without a string `type`
/// is an error.
pub fn decode<'de, D, T>(
    d: D,
    known: &[&str],
    strict: impl FnOnce(Value) -> Result<T, serde_json::Error>,
    unknown: impl FnOnce(Unrecognized) -> T,
) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
{
    use serde::de::Error;
    let raw = Map::<String, Value>::deserialize(d)?;
    let kind = match raw.get("type") {
        Some(Value::String(k)) => k.as_str(),
        Some(_) => return Err(D::Error::custom("\"type\" is not a string")),
        None => return Err(D::Error::missing_field("type")),
    };
    if !known.contains(&kind) {
        return Ok(unknown(Unrecognized { raw }));
    }
    strict(Value::Object(raw)).map_err(D::Error::custom)
}
