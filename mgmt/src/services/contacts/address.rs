//! Contact addresses: phone numbers normalised to E.164 (through the
//! `phonenumber` crate, national numbers read in the site's default region),
//! short codes and alphanumeric sender names kept as received.

use phonenumber::country;
use serde::Serialize;
use std::str::FromStr;

/// Longest address kept (anything longer is cut: a sender field is at most
/// 20 digits or 11 characters on the air; this only bounds stored bytes).
pub const MAX_ADDRESS: usize = 64;

/// The site's default region (ISO 3166 alpha-2, e.g. "UA") for national numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Region(country::Id);

/// A region code that `phonenumber` does not know.
#[derive(Debug, thiserror::Error)]
#[error(
    "unknown region {0:?} in [site] default_region; use an ISO 3166 alpha-2 code such as \"UA\" or \"RO\""
)]
pub struct RegionError(String);

impl FromStr for Region {
    type Err = RegionError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        country::Id::from_str(&s.trim().to_ascii_uppercase())
            .map(Region)
            .map_err(|_| RegionError(s.to_string()))
    }
}

impl Default for Region {
    fn default() -> Self {
        Region(country::Id::UA)
    }
}

/// How a contact is reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AddressKind {
    /// A valid phone number, normalised to E.164 (`+380501234567`).
    Phone,
    /// Digits that are not a valid E.164 number (a short code), kept as received.
    Short,
    /// A sender name (letters), kept as received; SMS cannot be sent to it.
    Alphanumeric,
    /// An account on a channel that is not the phone network (a web chat
    /// visitor, a messenger user), kept as its channel's adapter gives it.
    Handle,
}

impl AddressKind {
    pub fn as_str(self) -> &'static str {
        match self {
            AddressKind::Phone => "phone",
            AddressKind::Short => "short",
            AddressKind::Alphanumeric => "alphanumeric",
            AddressKind::Handle => "handle",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "phone" => Some(AddressKind::Phone),
            "short" => Some(AddressKind::Short),
            "alphanumeric" => Some(AddressKind::Alphanumeric),
            "handle" => Some(AddressKind::Handle),
            _ => None,
        }
    }

    /// Whether a reply can be sent to such an address (not to a sender
    /// name: it has no number).
    pub fn replyable(self) -> bool {
        !matches!(self, AddressKind::Alphanumeric)
    }
}

/// A normalised address.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Address {
    pub kind: AddressKind,
    pub value: String,
}

fn is_dialable(s: &str) -> bool {
    let s = s.strip_prefix('+').unwrap_or(s);
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_digit() || matches!(c, ' ' | '-' | '(' | ')' | '.'))
}

impl Address {
    /// The identity `raw` names in `region` ([`normalise`]).
    pub fn normalised(raw: &str, region: Region) -> Address {
        normalise(raw, region)
    }
}

/// Normalises a sender or destination as received. Total: anything that is
/// not a phone number is kept (trimmed, at most [`MAX_ADDRESS`] characters).
pub fn normalise(raw: &str, region: Region) -> Address {
    let raw: String = raw.trim().chars().take(MAX_ADDRESS).collect();
    if !is_dialable(&raw) {
        return Address {
            kind: AddressKind::Alphanumeric,
            value: raw,
        };
    }
    match phone(&raw, region) {
        Some(e164) => Address {
            kind: AddressKind::Phone,
            value: e164,
        },
        None => Address {
            kind: AddressKind::Short,
            value: raw
                .chars()
                .filter(|c| *c == '+' || c.is_ascii_digit())
                .collect(),
        },
    }
}

/// Digits an international number has at least and at most (E.164: country
/// code and national number, up to 15; short codes have 3 to 6).
const INTERNATIONAL_DIGITS: std::ops::RangeInclusive<usize> = 8..=15;

/// The E.164 form of `raw` if it is a phone number: a valid number of its
/// country's numbering plan (national numbers read in `region`), or a
/// number written internationally (`+` and a country code the plan knows)
/// of a phone number's length. The plan's metadata lags the ranges
/// operators actually hand out (and leaves out the ones reserved for
/// fiction, such as the UK's +44 7700 900xxx), and such a sender is still a
/// phone that can be answered, never a short code.
pub fn phone(raw: &str, region: Region) -> Option<String> {
    let raw = raw.trim();
    if raw.len() > MAX_ADDRESS || !is_dialable(raw) {
        return None;
    }
    let n = phonenumber::parse(Some(region.0), raw).ok()?;
    let e164 = n.format().mode(phonenumber::Mode::E164).to_string();
    let international = raw.starts_with('+')
        && phonenumber::metadata::DATABASE
            .by_code(&n.country().code())
            .is_some()
        && INTERNATIONAL_DIGITS.contains(&e164.chars().filter(char::is_ascii_digit).count());
    (phonenumber::is_valid(&n) || international).then_some(e164)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn national_and_international_are_one_number() {
        let ua: Region = "ua".parse().unwrap();
        let a = normalise("0501234567", ua);
        let b = normalise("+380501234567", ua);
        let c = normalise(" +380 (50) 123-45-67 ", ua);
        assert_eq!(a.kind, AddressKind::Phone);
        assert_eq!(a.value, "+380501234567");
        assert_eq!(a, b);
        assert_eq!(a, c);
        let ro: Region = "RO".parse().unwrap();
        assert_eq!(normalise("0721234567", ro).value, "+40721234567");
    }

    #[test]
    fn alphanumeric_and_short_codes_are_kept() {
        let r = Region::default();
        let a = normalise("Kyivstar", r);
        assert_eq!(a.kind, AddressKind::Alphanumeric);
        assert_eq!(a.value, "Kyivstar");
        assert!(!a.kind.replyable());
        let s = normalise("7710", r);
        assert_eq!(s.kind, AddressKind::Short);
        assert_eq!(s.value, "7710");
        let long = "x".repeat(500);
        assert_eq!(normalise(&long, r).value.len(), MAX_ADDRESS);
    }

    #[test]
    fn international_numbers_outside_the_plans_metadata_are_phones() {
        // A UK mobile in the range Ofcom keeps for drama: not in
        // libphonenumber's list of valid ranges, still a mobile number.
        let ua = Region::default();
        let uk = normalise("+447700900123", ua);
        assert_eq!(uk.kind, AddressKind::Phone, "{uk:?}");
        assert_eq!(uk.value, "+447700900123");
        assert_eq!(normalise("+44 7700 900123", ua), uk);
        // Short codes stay short codes, with or without a plus.
        assert_eq!(normalise("+7710", ua).kind, AddressKind::Short);
        assert_eq!(normalise("112", ua).kind, AddressKind::Short);
        // An unknown country code is no phone number.
        assert_eq!(normalise("+99912345678", ua).kind, AddressKind::Short);
    }

    #[test]
    fn unknown_region_is_refused() {
        let e = "Narnia".parse::<Region>().unwrap_err();
        assert!(e.to_string().contains("default_region"), "{e}");
    }
}
