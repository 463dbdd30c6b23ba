//! SMS PDU codec after 3GPP TS 23.040 (transfer layer) and TS 23.038 (alphabets).
//!
//! Decodes SMS-DELIVER, SMS-SUBMIT and SMS-STATUS-REPORT TPDUs (optionally with
//! the leading SMSC information block that `AT+CMGR`, `+CMT`, `AT+CMGL` return),
//! encodes SMS-SUBMIT (split into concatenated parts as needed) and, for the
//! modem simulator, SMS-DELIVER and SMS-STATUS-REPORT. Includes the GSM 7-bit
//! default alphabet with its extension table, UCS2/UTF-16, USSD payload
//! decoding and a pure, serialisable reassembler for concatenated messages.
//!
//! Parsing never panics and never indexes out of bounds: every malformed input
//! is a [`PduError`] naming the field and the octet offset at fault.
//!
//! ```
//! use crossline_pdu::{Address, Direction, Pdu, SubmitOptions, decode, decode_hex, encode_submit};
//!
//! // +CMT / AT+CMGR give the PDU with the SMSC block
//! let pdu = decode_hex(
//!     "07917283010010F5040BC87238880900F10000993092516195800AE8329BFD4697D9EC37",
//!     Direction::MobileTerminated,
//!     true,
//! )?;
//! let Pdu::Deliver(d) = pdu else { unreachable!() };
//! assert_eq!(d.text, "hellohello");
//! assert_eq!(d.timestamp.to_rfc3339(), "1999-03-29T15:16:59+02:00");
//!
//! // AT+CMGS=<tpdu_len>, then part.hex() and Ctrl-Z after the "> " prompt
//! let to = Address::parse("+380501234567")?;
//! let parts = encode_submit(&to, "Привіт, як справи?", &SubmitOptions::default())?;
//! assert_eq!(parts.len(), 1);
//! let Pdu::Submit(s) = decode(&parts[0].bytes, Direction::MobileOriginated, true)? else {
//!     unreachable!()
//! };
//! assert_eq!(s.text, "Привіт, як справи?");
//! # Ok::<(), crossline_pdu::PduError>(())
//! ```
#![deny(clippy::indexing_slicing)]
#![deny(missing_docs)]

use serde::{Deserialize, Serialize};

mod codec;
pub mod gsm7;
mod reader;
pub mod ussd;

/// Which way a TPDU travels; needed because TP-MTI values overlap between directions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Direction {
    /// Network to phone: SMS-DELIVER and SMS-STATUS-REPORT.
    MobileTerminated,
    /// Phone to network: SMS-SUBMIT.
    MobileOriginated,
}

/// The type of number of an [`Address`] (TS 23.040 §9.1.2.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum AddressKind {
    /// TON 1: international number; the value starts with `+`.
    International,
    /// TON 2 or TON 0 with ISDN numbering: national/unknown number, digits only.
    National,
    /// TON 5: alphanumeric sender name, GSM 7-bit packed on the air.
    Alphanumeric,
    /// Any other type of number / numbering plan combination, kept as-is.
    Other {
        /// Type of number (3 bits).
        ton: u8,
        /// Numbering plan identification (4 bits).
        npi: u8,
    },
}

/// An originating, destination, recipient or SMSC address.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Address {
    /// Type of number.
    pub kind: AddressKind,
    /// `"+380501234567"` for international numbers, digits (and `*#abc`) for
    /// national ones, the text for alphanumeric ones.
    pub value: String,
}

/// A service-centre time stamp (TS 23.040 §9.2.3.11): local time plus offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Timestamp {
    /// Full year (the PDU carries two digits; 00-89 map to 2000-2089, 90-99 to 1990-1999).
    pub year: u16,
    /// Month 1-12.
    pub month: u8,
    /// Day 1-31.
    pub day: u8,
    /// Hour 0-23.
    pub hour: u8,
    /// Minute 0-59.
    pub minute: u8,
    /// Second 0-59.
    pub second: u8,
    /// Offset from UTC in quarters of an hour (signed; +8 = UTC+02:00). The
    /// encoders accept ±79; decoding gives up to ±85 when a network writes a
    /// non-decimal digit there.
    pub tz_quarter_hours: i8,
}

/// The character set of the user data, from the DCS (TS 23.038 §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Alphabet {
    /// GSM 7-bit default alphabet (packed septets).
    Gsm7,
    /// 8-bit binary data.
    Data8,
    /// UCS2, decoded as UTF-16 big-endian (surrogate pairs allowed).
    Ucs2,
}

/// Concatenation information from the user data header (IEI 0x00 or 0x08).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Concat {
    /// Reference number shared by all parts (8-bit references are widened).
    pub reference: u16,
    /// Total number of parts.
    pub total: u8,
    /// This part's sequence number, starting at 1.
    pub seq: u8,
}

/// A decoded SMS-DELIVER (incoming message).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Deliver {
    /// SMSC address from the information block, if present and non-empty.
    pub smsc: Option<Address>,
    /// TP-OA: who sent the message.
    pub sender: Address,
    /// TP-SCTS: when the service centre received it.
    pub timestamp: Timestamp,
    /// TP-PID protocol identifier.
    pub pid: u8,
    /// TP-DCS data coding scheme as received.
    pub dcs: u8,
    /// Alphabet derived from the DCS.
    pub alphabet: Alphabet,
    /// Message class 0-3 if the DCS gives one.
    pub class: Option<u8>,
    /// Concatenation info if this is one part of a longer message.
    pub concat: Option<Concat>,
    /// Decoded text (empty for 8-bit data); unpaired UTF-16 surrogates become U+FFFD.
    pub text: String,
    /// Raw user data after the header: the octets for [`Alphabet::Data8`]
    /// (and compressed data) and [`Alphabet::Ucs2`], the unpacked septets
    /// (one per byte) for [`Alphabet::Gsm7`]. Lets parts be joined below the
    /// character level when a sender split a character across parts.
    pub data: Vec<u8>,
    /// TP-SRI: the sender asked for a status report.
    pub status_report_indication: bool,
    /// Octets after the user data that TP-UDL does not cover (some networks
    /// deliver them): the message is decoded by TP-UDL and these are kept
    /// here to be reported (see [`Pdu::warnings`]). Empty for a well-formed
    /// PDU; `FF` filler of a SIM record does not count.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extra_octets: Vec<u8>,
}

/// A decoded or to-be-encoded SMS-SUBMIT (outgoing message).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Submit {
    /// SMSC address from the information block, if present and non-empty
    /// (`00` means "use the SIM's SMSC" and gives `None`).
    #[serde(default)]
    pub smsc: Option<Address>,
    /// TP-MR message reference.
    pub reference: u8,
    /// TP-DA: where the message goes.
    pub destination: Address,
    /// TP-SRR: a status report is requested.
    pub status_report_request: bool,
    /// TP-DCS data coding scheme.
    pub dcs: u8,
    /// Alphabet derived from the DCS.
    pub alphabet: Alphabet,
    /// Concatenation info if this is one part of a longer message.
    pub concat: Option<Concat>,
    /// Decoded text (empty for 8-bit data); unpaired UTF-16 surrogates become U+FFFD.
    pub text: String,
    /// Raw user data after the header: the octets for [`Alphabet::Data8`]
    /// (and compressed data) and [`Alphabet::Ucs2`], the unpacked septets
    /// (one per byte) for [`Alphabet::Gsm7`]. Lets parts be joined below the
    /// character level when a sender split a character across parts.
    pub data: Vec<u8>,
    /// Validity period in minutes, for the relative TP-VP format (decoded back
    /// to the period the octet really encodes).
    pub validity_minutes: Option<u32>,
    /// Octets after the user data that TP-UDL does not cover, as for
    /// [`Deliver::extra_octets`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extra_octets: Vec<u8>,
}

/// A decoded SMS-STATUS-REPORT.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatusReport {
    /// SMSC address from the information block, if present and non-empty.
    pub smsc: Option<Address>,
    /// TP-MR of the SMS-SUBMIT this report is about.
    pub reference: u8,
    /// TP-RA: the recipient of the original message.
    pub recipient: Address,
    /// TP-SCTS: when the SMSC received the original message.
    pub service_centre_time: Timestamp,
    /// TP-DT: when the status was reached (delivery or failure).
    pub discharge_time: Timestamp,
    /// TP-ST status octet.
    pub status: u8,
}

/// What a status report says happened to a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum DeliveryOutcome {
    /// TP-ST 0x00-0x1F: delivered (or replaced).
    Delivered,
    /// TP-ST 0x20-0x3F: temporary error, the SMSC is still trying.
    Pending,
    /// TP-ST 0x40 and above: the SMSC gave up.
    Failed,
}

/// Any decoded TPDU.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Pdu {
    /// SMS-DELIVER.
    Deliver(Deliver),
    /// SMS-SUBMIT.
    Submit(Submit),
    /// SMS-STATUS-REPORT.
    StatusReport(StatusReport),
}

/// Options for [`encode_submit`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubmitOptions {
    /// Request a status report (TP-SRR) for every part.
    pub status_report: bool,
    /// TP-MR of the first part; later parts count up (wrapping).
    pub first_reference: u8,
    /// Concatenation reference; values above 255 use the 16-bit IEI 0x08.
    pub concat_reference: u16,
    /// Always use UCS2 even if GSM 7-bit would do.
    pub force_ucs2: bool,
    /// Relative validity period in minutes (rounded up to what TP-VP can express).
    pub validity_minutes: Option<u32>,
    /// The relative TP-VP octet itself (TS 23.040 §9.2.3.12.1), written as
    /// given; takes precedence over `validity_minutes`.
    #[serde(default)]
    pub validity_octet: Option<u8>,
    /// SMSC address to write in the information block; `None` writes `00`
    /// (use the SIM's SMSC). [`EncodedPart::tpdu_len`] never counts it.
    #[serde(default)]
    pub smsc: Option<Address>,
}

/// One encoded PDU, ready for `AT+CMGS`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EncodedPart {
    /// Full PDU including the leading SMSC block (`00` = use the SIM's SMSC).
    pub bytes: Vec<u8>,
    /// TPDU length: the `n` of `AT+CMGS=n`, octets without the SMSC block.
    pub tpdu_len: usize,
}

/// Everything that can be wrong with a PDU or an encode request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PduError {
    /// The PDU ended before a field was complete.
    #[error("PDU truncated: {field} needs octet {offset} but the PDU has only {len} octets")]
    Truncated {
        /// The field being read.
        field: &'static str,
        /// The offset of the first missing octet.
        offset: usize,
        /// Total PDU length.
        len: usize,
    },
    /// A field holds a value the specification does not allow.
    #[error("invalid {field} at octet {offset}: {reason}")]
    Invalid {
        /// The field being read.
        field: &'static str,
        /// Offset of the offending octet.
        offset: usize,
        /// What is wrong with it.
        reason: String,
    },
    /// The hex text is not valid hex.
    #[error("invalid hex at character {position}: {reason}")]
    Hex {
        /// Character position in the input.
        position: usize,
        /// What is wrong.
        reason: &'static str,
    },
    /// An address string cannot be encoded.
    #[error("invalid address {value:?}: {reason}")]
    Address {
        /// The address given.
        value: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The text does not fit in 255 concatenated parts.
    #[error("message too long: needs {parts} parts, at most 255 are possible")]
    TooLong {
        /// Parts it would need.
        parts: usize,
    },
    /// A timestamp field is out of range for encoding.
    #[error("invalid timestamp: {0}")]
    Timestamp(String),
    /// A USSD payload could not be decoded.
    #[error("invalid USSD payload: {0}")]
    Ussd(String),
}

impl Address {
    /// Parses `"+380501234567"` (international), `"0501234567"` (national, also
    /// `*#` and `a-c`), or any other text up to 11 characters of the GSM 7-bit
    /// alphabet (alphanumeric).
    pub fn parse(s: &str) -> Result<Address, PduError> {
        codec::parse_address(s)
    }
}

impl std::fmt::Display for Address {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.value)
    }
}

impl Timestamp {
    /// Seconds since 1970-01-01T00:00:00Z of this local time and offset;
    /// `None` for a date that does not exist (say 31 February).
    pub fn to_unix(&self) -> Option<i64> {
        let days_in_month = match self.month {
            1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
            4 | 6 | 9 | 11 => 30,
            2 if is_leap(self.year) => 29,
            2 => 28,
            _ => return None,
        };
        if self.day == 0
            || self.day > days_in_month
            || self.hour > 23
            || self.minute > 59
            || self.second > 59
        {
            return None;
        }
        let days = days_from_civil(
            i64::from(self.year),
            i64::from(self.month),
            i64::from(self.day),
        );
        let local = days * 86_400
            + i64::from(self.hour) * 3600
            + i64::from(self.minute) * 60
            + i64::from(self.second);
        Some(local - i64::from(self.tz_quarter_hours) * 15 * 60)
    }

    /// The local time at offset `tz_quarter_hours` (±79) of a Unix time, as a
    /// service centre would stamp it; `None` outside the years 1990-2089 that
    /// a PDU can carry.
    pub fn from_unix(unix_secs: i64, tz_quarter_hours: i8) -> Option<Timestamp> {
        if !(-79..=79).contains(&tz_quarter_hours) {
            return None;
        }
        let local = unix_secs.checked_add(i64::from(tz_quarter_hours) * 15 * 60)?;
        let days = local.div_euclid(86_400);
        let secs = local.rem_euclid(86_400);
        let (year, month, day) = civil_from_days(days);
        let year = u16::try_from(year)
            .ok()
            .filter(|y| (1990..=2089).contains(y))?;
        Some(Timestamp {
            year,
            month: u8::try_from(month).ok()?,
            day: u8::try_from(day).ok()?,
            hour: u8::try_from(secs / 3600).ok()?,
            minute: u8::try_from(secs % 3600 / 60).ok()?,
            second: u8::try_from(secs % 60).ok()?,
            tz_quarter_hours,
        })
    }

    /// RFC 3339 text, e.g. `2026-11-23T13:15:32+02:00`.
    pub fn to_rfc3339(&self) -> String {
        let q = i32::from(self.tz_quarter_hours);
        let sign = if q < 0 { '-' } else { '+' };
        let mins = q.unsigned_abs() * 15;
        format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}{}{:02}:{:02}",
            self.year,
            self.month,
            self.day,
            self.hour,
            self.minute,
            self.second,
            sign,
            mins / 60,
            mins % 60
        )
    }
}

fn is_leap(year: u16) -> bool {
    (year.is_multiple_of(4) && !year.is_multiple_of(100)) || year.is_multiple_of(400)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The proleptic Gregorian date of a day count since 1970-01-01.
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

impl Pdu {
    /// Octets after the user data that TP-UDL does not cover (empty for a
    /// well-formed PDU and for status reports, whose optional tail is not
    /// interpreted).
    pub fn extra_octets(&self) -> &[u8] {
        match self {
            Pdu::Deliver(d) => &d.extra_octets,
            Pdu::Submit(s) => &s.extra_octets,
            Pdu::StatusReport(_) => &[],
        }
    }

    /// What a field engineer should know about a PDU that decoded anyway:
    /// octets past TP-UDL. Empty for a well-formed PDU.
    pub fn warnings(&self) -> Vec<String> {
        extra_octets_warning(self.extra_octets())
            .into_iter()
            .collect()
    }
}

/// The warning for octets found after the user data, `None` when there are none.
pub fn extra_octets_warning(extra: &[u8]) -> Option<String> {
    (!extra.is_empty()).then(|| {
        format!(
            "{} octet(s) after the user data that TP-UDL does not cover ({}); \
             decoded by TP-UDL, the extra octets are ignored",
            extra.len(),
            to_hex(extra)
        )
    })
}

impl StatusReport {
    /// Classifies TP-ST: 0x00-0x1F delivered, 0x20-0x3F pending, else failed.
    pub fn outcome(&self) -> DeliveryOutcome {
        match self.status {
            0x00..=0x1F => DeliveryOutcome::Delivered,
            0x20..=0x3F => DeliveryOutcome::Pending,
            _ => DeliveryOutcome::Failed,
        }
    }
}

impl EncodedPart {
    /// Uppercase hex of [`EncodedPart::bytes`]: what is typed after the `> ` prompt.
    pub fn hex(&self) -> String {
        to_hex(&self.bytes)
    }
}

/// Uppercase hex of any bytes.
pub fn to_hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len().saturating_mul(2));
    for b in bytes {
        s.push(hex_digit(b >> 4));
        s.push(hex_digit(b & 0x0F));
    }
    s
}

fn hex_digit(n: u8) -> char {
    char::from_digit(u32::from(n & 0x0F), 16)
        .unwrap_or('0')
        .to_ascii_uppercase()
}

/// Decodes a TPDU, optionally preceded by the SMSC information block.
///
/// `direction` picks the meaning of TP-MTI: mobile terminated gives
/// [`Pdu::Deliver`] or [`Pdu::StatusReport`], mobile originated gives
/// [`Pdu::Submit`] (also for SUBMITs stored on the SIM, listed by `AT+CMGL` as
/// sent or unsent). `with_smsc` is true for what `+CMT`, `AT+CMGR` and
/// `AT+CMGL` return in PDU mode. Every malformed input is a [`PduError`]
/// naming the field and the octet offset (counted from `bytes[0]`).
pub fn decode(bytes: &[u8], direction: Direction, with_smsc: bool) -> Result<Pdu, PduError> {
    codec::decode(bytes, direction, with_smsc)
}

/// Decodes hex text (whitespace around it ignored, either case) as [`decode`] does.
pub fn decode_hex(hex: &str, direction: Direction, with_smsc: bool) -> Result<Pdu, PduError> {
    decode(&codec::parse_hex(hex)?, direction, with_smsc)
}

/// Encodes an SMS-SUBMIT, split into concatenated parts as needed.
///
/// GSM 7-bit is used when every character is in the default alphabet or its
/// extension table (unless `opts.force_ucs2`), else UCS2 (UTF-16). A message
/// that fits one SMS (160 septets, 70 UTF-16 units) is one part without a
/// header; longer ones are split at 153 septets or 67 units per part (152 /
/// 66 when `opts.concat_reference` is above 255 and needs the 16-bit
/// reference element), never inside an extension character or a surrogate
/// pair. Part `i` gets TP-MR `opts.first_reference + i` (wrapping). Each part
/// starts with the SMSC block (`00`, use the SIM's SMSC, unless `opts.smsc`
/// names one); send it with `AT+CMGS=<tpdu_len>`.
/// Errors: an address that cannot be encoded, or more than 255 parts.
pub fn encode_submit(
    to: &Address,
    text: &str,
    opts: &SubmitOptions,
) -> Result<Vec<EncodedPart>, PduError> {
    codec::encode_submit(to, text, opts)
}

/// Encodes SMS-DELIVER PDUs for the simulator, split and coded as
/// [`encode_submit`] does, each starting with an empty SMSC block (`00`), as
/// a modem would show them in `+CMT` or `AT+CMGR`. TP-MMS says no more
/// messages are waiting; TP-PID is 0. Errors: an address that cannot be
/// encoded, a time stamp outside what the PDU can carry (years 1990-2089,
/// zone within ±79 quarter hours), or more than 255 parts.
pub fn encode_deliver(
    from: &Address,
    text: &str,
    ts: &Timestamp,
    concat_reference: u16,
    status_report_indication: bool,
) -> Result<Vec<EncodedPart>, PduError> {
    codec::encode_deliver(from, text, ts, concat_reference, status_report_indication)
}

/// Encodes an SMS-STATUS-REPORT for the simulator, with an empty SMSC block
/// (`00`): `reference` is the TP-MR of the SUBMIT it reports on, `status`
/// the TP-ST octet (see [`StatusReport::outcome`]).
pub fn encode_status_report(
    reference: u8,
    recipient: &Address,
    sct: &Timestamp,
    discharge: &Timestamp,
    status: u8,
) -> Result<EncodedPart, PduError> {
    codec::encode_status_report(reference, recipient, sct, discharge, status)
}

mod reassembly;
pub use reassembly::{DEFAULT_MAX_PENDING, Message, PendingInfo, Reassembler};

/// The validity period in minutes a relative TP-VP octet encodes
/// (TS 23.040 §9.2.3.12.1: 5-minute, 30-minute, day and week steps).
pub fn validity_octet_minutes(vp: u8) -> u32 {
    codec::vp_to_minutes(vp)
}

/// Parses hex text (whitespace around it ignored, either case) into octets.
pub fn from_hex(hex: &str) -> Result<Vec<u8>, PduError> {
    codec::parse_hex(hex)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(year: u16, month: u8, day: u8, hour: u8, minute: u8, second: u8, tz: i8) -> Timestamp {
        Timestamp {
            year,
            month,
            day,
            hour,
            minute,
            second,
            tz_quarter_hours: tz,
        }
    }

    #[test]
    fn unix_time_round_trips_through_local_time_and_zone() {
        for (t, unix) in [
            (ts(2026, 11, 23, 13, 15, 32, 8), 1_795_432_532),
            (ts(1999, 3, 29, 15, 16, 59, 8), 922_713_419),
            (ts(2026, 1, 2, 3, 4, 5, -20), 1_767_341_045),
        ] {
            assert_eq!(t.to_unix(), Some(unix), "{}", t.to_rfc3339());
            assert_eq!(Timestamp::from_unix(unix, t.tz_quarter_hours), Some(t));
        }
        assert_eq!(ts(2024, 2, 29, 0, 0, 0, 0).to_unix(), Some(1_709_164_800));
        assert_eq!(ts(2026, 2, 29, 0, 0, 0, 0).to_unix(), None);
        assert_eq!(ts(2026, 13, 1, 0, 0, 0, 0).to_unix(), None);
        assert_eq!(Timestamp::from_unix(0, 0), None); // 1970 cannot be sent
        assert_eq!(Timestamp::from_unix(i64::MAX, 8), None);
        assert_eq!(Timestamp::from_unix(1_795_432_532, 80), None);
    }
}
