//! GSM 7-bit default alphabet and its extension table (TS 23.038 §6.2.1 and
//! §6.2.1.1), and septet packing (TS 23.038 §6.1.2.1.1).
//!
//! Septets are kept one per byte (values `0x00..=0x7F`); an extension
//! character is the escape septet `0x1B` followed by its code.

/// The escape septet that introduces an extension-table character.
pub const ESCAPE: u8 = 0x1B;

/// The default alphabet, indexed by septet value. `0x1B` (escape) maps to a
/// non-breaking space, which is what a lone escape is displayed as.
const DEFAULT: [char; 128] = [
    '@', '£', '$', '¥', 'è', 'é', 'ù', 'ì', 'ò', 'Ç', '\n', 'Ø', 'ø', '\r', 'Å', 'å', //
    'Δ', '_', 'Φ', 'Γ', 'Λ', 'Ω', 'Π', 'Ψ', 'Σ', 'Θ', 'Ξ', '\u{A0}', 'Æ', 'æ', 'ß', 'É', //
    ' ', '!', '"', '#', '¤', '%', '&', '\'', '(', ')', '*', '+', ',', '-', '.', '/', //
    '0', '1', '2', '3', '4', '5', '6', '7', '8', '9', ':', ';', '<', '=', '>', '?', //
    '¡', 'A', 'B', 'C', 'D', 'E', 'F', 'G', 'H', 'I', 'J', 'K', 'L', 'M', 'N', 'O', //
    'P', 'Q', 'R', 'S', 'T', 'U', 'V', 'W', 'X', 'Y', 'Z', 'Ä', 'Ö', 'Ñ', 'Ü', '§', //
    '¿', 'a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i', 'j', 'k', 'l', 'm', 'n', 'o', //
    'p', 'q', 'r', 's', 't', 'u', 'v', 'w', 'x', 'y', 'z', 'ä', 'ö', 'ñ', 'ü', 'à', //
];

/// The extension table: (code after the escape, character).
const EXTENSION: [(u8, char); 10] = [
    (0x0A, '\u{0C}'), // form feed (page break)
    (0x14, '^'),
    (0x28, '{'),
    (0x29, '}'),
    (0x2F, '\\'),
    (0x3C, '['),
    (0x3D, '~'),
    (0x3E, ']'),
    (0x40, '|'),
    (0x65, '€'),
];

/// The septet of a default-alphabet character, if it has one.
fn default_septet(c: char) -> Option<u8> {
    if c == '\u{A0}' {
        // Displayed for a lone escape, but not encodable as such.
        return None;
    }
    DEFAULT
        .iter()
        .position(|&d| d == c)
        .and_then(|i| u8::try_from(i).ok())
}

/// The extension code of a character, if it is in the extension table.
fn extension_code(c: char) -> Option<u8> {
    EXTENSION
        .iter()
        .find(|&&(_, e)| e == c)
        .map(|&(code, _)| code)
}

/// Number of septets `c` needs: 1 (default alphabet), 2 (extension table),
/// or `None` if it cannot be written in GSM 7-bit.
pub fn char_septets(c: char) -> Option<usize> {
    if default_septet(c).is_some() {
        Some(1)
    } else if extension_code(c).is_some() {
        Some(2)
    } else {
        None
    }
}

/// Converts text to septets (extension characters become `0x1B` + code);
/// `None` if a character is in neither table.
pub fn encode(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len());
    for c in text.chars() {
        push_char(&mut out, c)?;
    }
    Some(out)
}

/// Appends the septet(s) of one character; `None` if it has none.
pub(crate) fn push_char(out: &mut Vec<u8>, c: char) -> Option<()> {
    if let Some(s) = default_septet(c) {
        out.push(s);
    } else {
        let code = extension_code(c)?;
        out.push(ESCAPE);
        out.push(code);
    }
    Some(())
}

/// The default-alphabet character of a septet (the top bit is ignored).
fn default_char(septet: u8) -> char {
    DEFAULT
        .get(usize::from(septet & 0x7F))
        .copied()
        .unwrap_or(' ')
}

/// Converts septets to text. An escape followed by a code that the extension
/// table does not define shows the default-alphabet character of that code,
/// as TS 23.038 requires; a trailing lone escape shows as a space.
pub fn decode(septets: &[u8]) -> String {
    let mut out = String::with_capacity(septets.len());
    let mut iter = septets.iter().map(|s| s & 0x7F);
    while let Some(s) = iter.next() {
        if s == ESCAPE {
            match iter.next() {
                Some(code) => match EXTENSION.iter().find(|&&(k, _)| k == code) {
                    Some(&(_, c)) => out.push(c),
                    None if code == ESCAPE => out.push(' '),
                    None => out.push(default_char(code)),
                },
                None => out.push(' '),
            }
        } else {
            out.push(default_char(s));
        }
    }
    out
}

/// Packs septets into octets, starting after `fill_bits` zero bits (used to
/// align text after a user data header to a septet boundary). Only the low 7
/// bits of each septet are used; `fill_bits` above 7 is taken modulo 8.
pub fn pack(septets: &[u8], fill_bits: u8) -> Vec<u8> {
    let fill = usize::from(fill_bits % 8);
    let total_bits = fill.saturating_add(septets.len().saturating_mul(7));
    let mut out = vec![0u8; total_bits.div_ceil(8)];
    for (i, &s) in septets.iter().enumerate() {
        let bit = fill + i * 7;
        let byte = bit / 8;
        let shift = bit % 8;
        let value = u16::from(s & 0x7F) << shift;
        let [lo, hi] = value.to_le_bytes();
        if let Some(b) = out.get_mut(byte) {
            *b |= lo;
        }
        if let Some(b) = out.get_mut(byte + 1) {
            *b |= hi;
        }
    }
    out
}

/// Unpacks up to `count` septets from octets, skipping `fill_bits` leading
/// bits. Returns fewer than `count` septets if `bytes` is too short to hold
/// them (never allocates more than the input can hold).
pub fn unpack(bytes: &[u8], fill_bits: u8, count: usize) -> Vec<u8> {
    let fill = usize::from(fill_bits % 8);
    let available = bytes.len().saturating_mul(8).saturating_sub(fill) / 7;
    let count = count.min(available);
    let mut out = Vec::with_capacity(count);
    for i in 0..count {
        let bit = fill + i * 7;
        let byte = bit / 8;
        let shift = bit % 8;
        let lo = u16::from(bytes.get(byte).copied().unwrap_or(0));
        let hi = u16::from(bytes.get(byte + 1).copied().unwrap_or(0));
        let word = lo | (hi << 8);
        out.push(((word >> shift) & 0x7F) as u8);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hello_packs_to_the_spec_example() {
        // "hellohello" is the classic example: E8329BFD4697D9EC37
        let septets = encode("hellohello").unwrap();
        assert_eq!(crate::to_hex(&pack(&septets, 0)), "E8329BFD4697D9EC37");
        assert_eq!(decode(&unpack(&pack(&septets, 0), 0, 10)), "hellohello");
    }

    #[test]
    fn extension_characters_take_two_septets_and_round_trip() {
        let text = "€[]{}\\~^|\u{0C}";
        let septets = encode(text).unwrap();
        assert_eq!(septets.len(), 20);
        assert_eq!(septets.first(), Some(&ESCAPE));
        assert_eq!(decode(&septets), text);
        for c in text.chars() {
            assert_eq!(char_septets(c), Some(2));
        }
    }

    #[test]
    fn whole_default_alphabet_round_trips() {
        let all: String = DEFAULT.iter().filter(|&&c| c != '\u{A0}').collect();
        let septets = encode(&all).unwrap();
        assert_eq!(septets.len(), 127);
        assert_eq!(decode(&septets), all);
    }

    #[test]
    fn unknown_extension_code_shows_default_character() {
        assert_eq!(decode(&[ESCAPE, 0x41]), "A");
        assert_eq!(decode(&[0x41, ESCAPE]), "A ");
    }

    #[test]
    fn non_gsm_characters_are_refused() {
        assert_eq!(encode("Привіт"), None);
        assert_eq!(encode("👍"), None);
        assert_eq!(char_septets('`'), None);
    }

    #[test]
    fn fill_bits_shift_the_packing() {
        let septets = encode("abc").unwrap();
        let packed = pack(&septets, 1);
        assert_eq!(unpack(&packed, 1, 3), septets);
        // the first bit is the fill bit and must be zero
        assert_eq!(packed.first().map(|b| b & 1), Some(0));
    }

    #[test]
    fn unpack_is_bounded_by_the_input() {
        assert_eq!(unpack(&[0xFF], 0, usize::MAX).len(), 1);
        assert!(unpack(&[], 3, 1000).is_empty());
    }
}
