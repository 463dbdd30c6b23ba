//! GSM 7-bit default alphabet and extension table (TS 23.038 §6.2.1), septet packing.

/// Converts text to septets (extension characters become `0x1B` + code);
/// `None` if a character is in neither table.
pub fn encode(text: &str) -> Option<Vec<u8>> {
    let _ = text;
    None
}

/// Converts septets to text.
pub fn decode(septets: &[u8]) -> String {
    let _ = septets;
    String::new()
}

/// Packs septets into octets, starting after `fill_bits` zero bits.
pub fn pack(septets: &[u8], fill_bits: u8) -> Vec<u8> {
    let _ = (septets, fill_bits);
    Vec::new()
}

/// Unpacks `count` septets from octets, skipping `fill_bits` leading bits.
pub fn unpack(bytes: &[u8], fill_bits: u8, count: usize) -> Vec<u8> {
    let _ = (bytes, fill_bits, count);
    Vec::new()
}
