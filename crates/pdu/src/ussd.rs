//! USSD payload decoding and request encoding.
//!
//! The data coding scheme of a USSD string follows the cell broadcast coding
//! groups of TS 23.038 §5. Modems differ in how they put the payload in
//! `+CUSD: <m>,"<str>",<dcs>`: Huawei sticks to the hex of the packed GSM
//! 7-bit octets, modems in `AT+CSCS="UCS2"` give the hex of UTF-16 units, and
//! others give the text itself. [`decode`] guesses; [`decode_as`] is told.

use crate::{Alphabet, PduError, gsm7};

/// How the payload string of a `+CUSD` line is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum PayloadFormat {
    /// Guess from the DCS and the look of the payload (what [`decode`] does).
    Auto,
    /// Hex of the packed GSM 7-bit octets (Huawei).
    PackedGsm7Hex,
    /// Hex of UTF-16 big-endian units (`AT+CSCS="UCS2"`).
    Ucs2Hex,
    /// Hex of the octets of 8-bit data (shown as Latin-1).
    Data8Hex,
    /// The text itself, already in the terminal character set.
    Text,
}

/// The alphabet of a USSD / cell broadcast data coding scheme (TS 23.038 §5).
pub fn alphabet(dcs: u8) -> Alphabet {
    match dcs >> 4 {
        // 0x11: UCS2 preceded by a language indication
        0x1 if dcs & 0x0F == 0x01 => Alphabet::Ucs2,
        // general data coding and messages with a user data header
        0x4..=0x7 | 0x9 => match (dcs >> 2) & 0x03 {
            1 => Alphabet::Data8,
            2 => Alphabet::Ucs2,
            _ => Alphabet::Gsm7,
        },
        0xF if dcs & 0x04 != 0 => Alphabet::Data8,
        _ => Alphabet::Gsm7,
    }
}

fn hex_digits_only(s: &str) -> bool {
    !s.is_empty() && s.len().is_multiple_of(2) && s.chars().all(|c| c.is_ascii_hexdigit())
}

/// Decodes a `+CUSD` payload: hex of packed GSM 7-bit (Huawei), hex UCS2, or
/// plain text, guessing the form from the DCS and the payload itself.
///
/// With a GSM 7-bit DCS, a payload of hex digits is taken as UCS2 hex when its
/// length is a multiple of four and every unit is below U+0500 without
/// control characters (what modems in UCS2 mode send), else as packed GSM
/// 7-bit. A payload that is not hex is plain text. A plain-text reply made
/// only of an even number of hex digits (say `"1234"`) is ambiguous: use
/// [`decode_as`] when the modem's mode is known.
pub fn decode(dcs: u8, payload: &str) -> Result<String, PduError> {
    decode_as(dcs, payload, PayloadFormat::Auto)
}

/// Decodes a `+CUSD` payload written in the given form.
pub fn decode_as(dcs: u8, payload: &str, format: PayloadFormat) -> Result<String, PduError> {
    let p = payload.trim();
    let format = match format {
        PayloadFormat::Auto => guess(dcs, p),
        other => other,
    };
    match format {
        PayloadFormat::Text | PayloadFormat::Auto => Ok(p.to_string()),
        PayloadFormat::PackedGsm7Hex => Ok(unpack_ussd(&hex(p)?)),
        PayloadFormat::Ucs2Hex => {
            let mut bytes = hex(p)?;
            if dcs == 0x11 && bytes.len() >= 2 {
                // two GSM 7-bit characters of language indication come first
                bytes.drain(..2);
            }
            if !bytes.len().is_multiple_of(2) {
                return Err(PduError::Ussd(format!(
                    "UCS2 payload of {} octets is not a whole number of UTF-16 units",
                    bytes.len()
                )));
            }
            Ok(crate::codec::utf16_lossy(&bytes))
        }
        PayloadFormat::Data8Hex => Ok(hex(p)?.into_iter().map(char::from).collect()),
    }
}

/// The form [`decode`] takes a payload to be in: what `Auto` resolves to.
pub fn detect(dcs: u8, payload: &str) -> PayloadFormat {
    guess(dcs, payload.trim())
}

fn guess(dcs: u8, p: &str) -> PayloadFormat {
    if !hex_digits_only(p) {
        return PayloadFormat::Text;
    }
    match alphabet(dcs) {
        Alphabet::Ucs2 => PayloadFormat::Ucs2Hex,
        Alphabet::Data8 => PayloadFormat::Data8Hex,
        Alphabet::Gsm7 => {
            if p.len().is_multiple_of(4) && looks_like_ucs2_text(p) {
                PayloadFormat::Ucs2Hex
            } else {
                PayloadFormat::PackedGsm7Hex
            }
        }
    }
}

fn looks_like_ucs2_text(p: &str) -> bool {
    let Ok(bytes) = hex(p) else { return false };
    bytes.chunks_exact(2).all(|u| {
        let unit = u16::from_be_bytes([
            u.first().copied().unwrap_or(0xFF),
            u.get(1).copied().unwrap_or(0),
        ]);
        unit < 0x0500 && (unit >= 0x20 || unit == 0x0A || unit == 0x0D) && unit != 0x7F
    })
}

fn hex(p: &str) -> Result<Vec<u8>, PduError> {
    crate::codec::parse_hex(p).map_err(|e| PduError::Ussd(format!("payload {p:?}: {e}")))
}

/// Unpacks a USSD string: as many septets as the octets hold, less a final
/// CR or `@` that only pads 7 spare bits (TS 23.038 §6.1.2.3.1).
fn unpack_ussd(bytes: &[u8]) -> String {
    let count = bytes.len() * 8 / 7;
    let mut septets = gsm7::unpack(bytes, 0, count);
    if bytes.len().is_multiple_of(7) && matches!(septets.last(), Some(0x0D) | Some(0x00)) {
        septets.pop();
    }
    gsm7::decode(&septets)
}

/// Builds the string for `AT+CUSD=1,"<here>",15`: the hex of the packed GSM
/// 7-bit code when `packed_hex` (Huawei), else the code itself. When packing,
/// 7 spare bits at the end are filled with CR as TS 23.038 requires, and
/// characters outside the GSM alphabet become `?`.
pub fn encode_request(code: &str, packed_hex: bool) -> String {
    if packed_hex {
        encode_request_as(code, PayloadFormat::PackedGsm7Hex)
    } else {
        code.to_string()
    }
}

/// Builds the string for `AT+CUSD=1,"<here>",<dcs>` in the given form:
/// packed GSM 7-bit hex (Huawei, DCS 15), UTF-16 hex (a modem in
/// `AT+CSCS="UCS2"`, DCS 15 or 72), 8-bit hex of the UTF-8 bytes, or the
/// text itself ([`PayloadFormat::Text`] and [`PayloadFormat::Auto`]).
pub fn encode_request_as(code: &str, format: PayloadFormat) -> String {
    match format {
        PayloadFormat::PackedGsm7Hex => pack_request(code),
        PayloadFormat::Ucs2Hex => {
            let bytes: Vec<u8> = code.encode_utf16().flat_map(u16::to_be_bytes).collect();
            crate::to_hex(&bytes)
        }
        PayloadFormat::Data8Hex => crate::to_hex(code.as_bytes()),
        PayloadFormat::Text | PayloadFormat::Auto => code.to_string(),
    }
}

fn pack_request(code: &str) -> String {
    let mut septets = Vec::with_capacity(code.len());
    for c in code.chars() {
        if gsm7::push_char(&mut septets, c).is_none() {
            septets.push(0x3F);
        }
    }
    if septets.len() % 8 == 7 {
        septets.push(0x0D);
    }
    crate::to_hex(&gsm7::pack(&septets, 0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn huawei_balance_request_is_packed_hex() {
        // *100# packed: the well-known "AA180C3602" Huawei request
        assert_eq!(encode_request("*100#", true), "AA180C3602");
        assert_eq!(encode_request("*100#", false), "*100#");
        assert_eq!(
            encode_request_as("*100#", PayloadFormat::Ucs2Hex),
            "002A0031003000300023"
        );
        assert_eq!(
            decode_as(15, "002A0031003000300023", PayloadFormat::Ucs2Hex).unwrap(),
            "*100#"
        );
        assert_eq!(decode(15, "AA180C3602").unwrap(), "*100#");
    }

    #[test]
    fn seven_septets_are_padded_with_cr_and_the_pad_is_dropped() {
        let hex = encode_request("*101*1#", true);
        // 7 septets leave 7 spare bits in 7 octets: filled with CR, not '@'
        assert_eq!(hex.len(), 14);
        let packed = crate::codec::parse_hex(&hex).unwrap();
        assert_eq!(gsm7::unpack(&packed, 0, 8).last(), Some(&0x0D));
        assert_eq!(decode(15, &hex).unwrap(), "*101*1#");
    }

    #[test]
    fn ucs2_dcs_payload_is_utf16_hex() {
        // "Баланс: 10 грн" in UTF-16BE
        let text = "Баланс: 10 грн";
        let hex: String = text.encode_utf16().map(|u| format!("{u:04X}")).collect();
        assert_eq!(decode(0x48, &hex).unwrap(), text);
        // a modem in UCS2 mode with a GSM 7-bit DCS
        assert_eq!(decode(15, &hex).unwrap(), text);
    }

    #[test]
    fn plain_text_passes_through() {
        assert_eq!(
            decode(15, "Your balance is 12.50 UAH").unwrap(),
            "Your balance is 12.50 UAH"
        );
        assert_eq!(decode_as(15, "1234", PayloadFormat::Text).unwrap(), "1234");
    }

    #[test]
    fn bad_hex_is_an_error_when_told_it_is_hex() {
        let err = decode_as(15, "ZZ", PayloadFormat::PackedGsm7Hex).unwrap_err();
        assert!(err.to_string().contains("not a hex digit"), "{err}");
        assert!(decode_as(0x48, "0041AA", PayloadFormat::Ucs2Hex).is_err());
    }
}
