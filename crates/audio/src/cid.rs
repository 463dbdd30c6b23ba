//! Caller ID on analog lines: what the exchange sends between the first and
//! second ring (or before the first), decoded from line audio and encoded
//! for the simulated line.
//!
//! - [`Standard::Etsi`]: ETSI EN 300 659-1 physical layer (V.23 FSK),
//!   EN 300 659-3 messages (Call Set-up, MDMF 0x80; SDMF 0x04 also read).
//! - [`Standard::Bell202`]: Telcordia GR-30 (Bell 202 FSK), SDMF 0x04 and
//!   MDMF 0x80.
//! - [`Standard::Dtmf`]: DTMF caller ID (EN 300 659-1 annex C and the
//!   Nordic/Dutch variants): `A<number>C` or `A<number>#`, `D<number>C`,
//!   absence codes `B00C`/`B10C` and `D1#`/`D2#`/`D3#`.
//!
//! An FSK message is: channel seizure (alternating bits, optional), a mark
//! signal (at least 40 mark bits are required here), then bytes in
//! asynchronous framing: message type, message length, the message, and a
//! checksum that makes the sum of all bytes 0 modulo 256.

use std::collections::VecDeque;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::dtmf;
use crate::fsk::{Demodulator, FskEvent, FskStandard, Modulator};

/// Mark bits that must precede a message's first byte (EN 300 659-1 allows
/// a mark signal as short as 80 − 25 = 55 bits; GR-30 sends 180).
const MIN_MARK_BITS: u32 = 40;

/// Mark bits tolerated between the bytes of one message (GR-30 allows a
/// gap of up to 16.7 ms, 20 bits; a few more are accepted).
const MAX_GAP_BITS: u32 = 24;

/// Message type: Call Set-up, multiple data message format.
pub const MDMF_CALL_SETUP: u8 = 0x80;
/// Message type: single data message format (date/time and number only).
pub const SDMF_CALL_SETUP: u8 = 0x04;

/// MDMF parameter: date and time, `MMDDHHMM`.
pub const PARAM_TIME: u8 = 0x01;
/// MDMF parameter: calling line identity (the number).
pub const PARAM_NUMBER: u8 = 0x02;
/// MDMF parameter: reason for absence of the number (`O` or `P`).
pub const PARAM_NUMBER_ABSENCE: u8 = 0x04;
/// MDMF parameter: calling party name.
pub const PARAM_NAME: u8 = 0x07;
/// MDMF parameter: reason for absence of the name (`O` or `P`).
pub const PARAM_NAME_ABSENCE: u8 = 0x08;

/// Which caller ID the line carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Standard {
    /// Telcordia GR-30: Bell 202 FSK (North America).
    Bell202,
    /// ETSI EN 300 659: V.23 FSK (most of Europe, BT SIN 227 in the UK).
    Etsi,
    /// DTMF caller ID (Denmark, Sweden, Finland, the Netherlands, Brazil, India, ...).
    Dtmf,
}

impl Standard {
    /// The FSK flavour, for the FSK standards.
    pub fn fsk(self) -> Option<FskStandard> {
        match self {
            Standard::Bell202 => Some(FskStandard::Bell202),
            Standard::Etsi => Some(FskStandard::V23),
            Standard::Dtmf => None,
        }
    }

    /// The name used on the command line and in configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            Standard::Bell202 => "bell202",
            Standard::Etsi => "etsi",
            Standard::Dtmf => "dtmf",
        }
    }

    fn of_fsk(fsk: FskStandard) -> Standard {
        match fsk {
            FskStandard::Bell202 => Standard::Bell202,
            FskStandard::V23 => Standard::Etsi,
        }
    }
}

impl fmt::Display for Standard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Standard {
    type Err = String;

    fn from_str(s: &str) -> Result<Standard, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "etsi" | "v23" | "v.23" => Ok(Standard::Etsi),
            "bell202" | "bell" | "bell-202" | "gr30" => Ok(Standard::Bell202),
            "dtmf" => Ok(Standard::Dtmf),
            _ => Err(format!(
                "unknown caller ID standard {s:?}: use etsi, bell202 or dtmf"
            )),
        }
    }
}

/// Why the number or the name is missing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Absence {
    /// Withheld by the caller (`P`; DTMF `B10`, `D1`).
    Private,
    /// Not available: international, another network, technical reasons
    /// (`O`; DTMF `B00`, `D2`, `D3`).
    Unavailable,
}

impl Absence {
    fn from_code(b: u8) -> Absence {
        if b == b'P' {
            Absence::Private
        } else {
            Absence::Unavailable
        }
    }

    fn code(self) -> u8 {
        match self {
            Absence::Private => b'P',
            Absence::Unavailable => b'O',
        }
    }
}

/// Date and time of the call as the exchange sends it (no year, local time
/// of the exchange).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CidTime {
    /// 1-12.
    pub month: u8,
    /// 1-31.
    pub day: u8,
    /// 0-23.
    pub hour: u8,
    /// 0-59.
    pub minute: u8,
}

impl CidTime {
    /// From the 8 ASCII digits `MMDDHHMM`; `None` when they are not digits
    /// or out of range.
    pub fn from_digits(b: &[u8]) -> Option<CidTime> {
        let two = |i: usize| -> Option<u8> {
            let hi = b.get(i).copied().filter(u8::is_ascii_digit)?;
            let lo = b.get(i + 1).copied().filter(u8::is_ascii_digit)?;
            Some((hi - b'0') * 10 + (lo - b'0'))
        };
        if b.len() != 8 {
            return None;
        }
        let t = CidTime {
            month: two(0)?,
            day: two(2)?,
            hour: two(4)?,
            minute: two(6)?,
        };
        ((1..=12).contains(&t.month) && (1..=31).contains(&t.day) && t.hour < 24 && t.minute < 60)
            .then_some(t)
    }

    /// The 8 ASCII digits `MMDDHHMM`.
    pub fn digits(&self) -> [u8; 8] {
        let mut out = [b'0'; 8];
        for (i, v) in [self.month, self.day, self.hour, self.minute]
            .into_iter()
            .enumerate()
        {
            out[2 * i] = b'0' + (v / 10) % 10;
            out[2 * i + 1] = b'0' + v % 10;
        }
        out
    }
}

/// `MM-DD HH:MM`.
impl fmt::Display for CidTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:02}-{:02} {:02}:{:02}",
            self.month, self.day, self.hour, self.minute
        )
    }
}

impl FromStr for CidTime {
    type Err = String;

    /// `MM-DD HH:MM` or `MMDDHHMM`.
    fn from_str(s: &str) -> Result<CidTime, String> {
        let digits: Vec<u8> = s.bytes().filter(u8::is_ascii_digit).collect();
        CidTime::from_digits(&digits)
            .ok_or_else(|| format!("bad caller ID time {s:?}: expected MM-DD HH:MM"))
    }
}

impl Serialize for CidTime {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for CidTime {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<CidTime, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// What caller ID told about a call. Every field may be missing; when the
/// number is missing, `number_absence` usually says why.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct CallerId {
    /// The calling number as sent (digits, sometimes a leading `+`).
    pub number: Option<String>,
    /// The calling party's name (FSK MDMF only).
    pub name: Option<String>,
    /// Date and time of the call (FSK only).
    pub time: Option<CidTime>,
    /// Why there is no number.
    pub number_absence: Option<Absence>,
    /// Why there is no name.
    pub name_absence: Option<Absence>,
}

impl CallerId {
    /// Caller ID carrying just a number.
    pub fn number(number: impl Into<String>) -> CallerId {
        CallerId {
            number: Some(number.into()),
            ..CallerId::default()
        }
    }
}

/// Why caller ID could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CidError {
    /// Nothing loud enough in the FSK band.
    #[error("no {fsk} FSK carrier found (mark {mark} Hz, space {space} Hz, above -46 dBm0); check that the recording covers the time before or between the first rings and that the line carries {standard} caller ID", fsk = .standard.fsk().map_or("", FskStandard::name), mark = .standard.fsk().map_or(0.0, FskStandard::mark_hz), space = .standard.fsk().map_or(0.0, FskStandard::space_hz))]
    NoCarrier {
        /// The standard asked for.
        standard: Standard,
    },
    /// A signal was there but no message started (no mark signal followed
    /// by a byte).
    #[error("{heard} but no {standard} caller ID message began (no mark signal of at least {MIN_MARK_BITS} bits followed by data){hint}", heard = if *.seizure_bits > 0 { format!("a channel seizure of {} bits was heard", .seizure_bits) } else { "a signal was heard".to_string() }, hint = if *.seizure_bits > 0 { "; the message was lost in noise or cut off" } else { "; it may be speech, a tone, or another standard" })]
    NoMessage {
        /// The standard asked for.
        standard: Standard,
        /// The longest channel seizure heard (alternating bits), 0 if none.
        seizure_bits: u32,
    },
    /// The mark tone belongs to the other FSK standard.
    #[error("the caller ID carrier is {heard_name} (mark tone measured at {mark_hz:.0} Hz), not {asked_name}; decode with --standard {heard}", heard_name = .heard.fsk().map_or("", FskStandard::name), asked_name = .asked.fsk().map_or("", FskStandard::name))]
    WrongStandard {
        /// The standard asked for.
        asked: Standard,
        /// The standard the mark frequency belongs to.
        heard: Standard,
        /// The measured mark frequency.
        mark_hz: u32,
    },
    /// The message ended early.
    #[error(
        "caller ID message truncated: got {got} of {expected} bytes (the signal stopped or a byte was lost)"
    )]
    Truncated {
        /// Bytes received (type, length, message, checksum).
        got: usize,
        /// Bytes the length byte announced, plus type, length and checksum.
        expected: usize,
    },
    /// A byte's stop bit was missing.
    #[error(
        "caller ID byte {index} has no stop bit (noise on the line, or the signal is not 1200 baud FSK)"
    )]
    Framing {
        /// Position in the message, from 0 (the type byte).
        index: usize,
    },
    /// The checksum does not match: at least one byte is wrong.
    #[error(
        "caller ID checksum mismatch: the message sums to 0x{sum:02X} instead of 0x00 (a corrupted byte; the line is noisy or too weak)"
    )]
    BadChecksum {
        /// Sum of all bytes including the checksum, modulo 256.
        sum: u8,
    },
    /// A message type other than call set-up (message waiting, advice of
    /// charge, ...).
    #[error("caller ID message type 0x{kind:02X} is not a call set-up (0x80 MDMF or 0x04 SDMF){hint}", hint = message_hint(*.kind))]
    UnsupportedMessage {
        /// The type byte.
        kind: u8,
    },
    /// The message's layout is inconsistent.
    #[error("caller ID message malformed: {what}")]
    Malformed {
        /// What is wrong.
        what: String,
    },
    /// No DTMF caller ID digits were heard.
    #[error(
        "no DTMF caller ID found (expected A<number>C, D<number>C or an information code B..C / D.#)"
    )]
    NoDtmf,
    /// DTMF digits were heard but do not form a caller ID.
    #[error(
        "DTMF digits {digits:?} are not a caller ID (expected A<number>C, D<number>C or an information code B..C / D.#)"
    )]
    DtmfFormat {
        /// The digits heard.
        digits: String,
    },
}

fn message_hint(kind: u8) -> &'static str {
    match kind {
        0x82 | 0x06 => " (message waiting indication)",
        0x86 => " (advice of charge)",
        0x89 => " (short message service)",
        _ => "",
    }
}

/// Checksum byte for `bytes` (type, length and message): the two's
/// complement of their sum modulo 256.
pub fn checksum(bytes: &[u8]) -> u8 {
    bytes
        .iter()
        .fold(0u8, |a, &b| a.wrapping_add(b))
        .wrapping_neg()
}

/// Layout of an encoded FSK message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Multiple data message format (0x80): time, number or its absence,
    /// name or its absence.
    Mdmf,
    /// Single data message format (0x04): time and number (or `O`/`P`) only.
    Sdmf,
}

/// How [`encode_with`] shapes the signal.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EncodeOptions {
    /// Level of the FSK or of each DTMF tone (dBm0).
    pub level_dbm0: f32,
    /// Channel seizure bits (FSK; 300 in both standards, 0 to leave it out).
    pub seizure_bits: usize,
    /// Mark signal bits before the message (FSK; 180).
    pub mark_bits: usize,
    /// Message layout (FSK).
    pub format: Format,
}

impl Default for EncodeOptions {
    fn default() -> EncodeOptions {
        EncodeOptions {
            level_dbm0: -13.5,
            seizure_bits: 300,
            mark_bits: 180,
            format: Format::Mdmf,
        }
    }
}

fn text_bytes(s: &str) -> impl Iterator<Item = u8> + '_ {
    // Caller ID text is 8-bit; characters beyond Latin-1 become '?'.
    s.chars()
        .map(|c| u8::try_from(u32::from(c)).unwrap_or(b'?'))
}

/// The message bytes (type, length, parameters, checksum) for `cid`.
/// Texts are cut to the standards' limits (number 20, name 50 bytes).
pub fn message(cid: &CallerId, format: Format) -> Vec<u8> {
    let number: Vec<u8> = cid
        .number
        .as_deref()
        .map(|n| text_bytes(n).take(20).collect())
        .unwrap_or_default();
    let mut body = Vec::new();
    let kind = match format {
        Format::Sdmf => {
            body.extend(cid.time.map_or([b'0'; 8], |t| t.digits()));
            if number.is_empty() {
                body.push(cid.number_absence.unwrap_or(Absence::Unavailable).code());
            } else {
                body.extend(&number);
            }
            SDMF_CALL_SETUP
        }
        Format::Mdmf => {
            let mut param = |kind: u8, value: &[u8]| {
                body.push(kind);
                body.push(value.len() as u8);
                body.extend(value);
            };
            if let Some(t) = cid.time {
                param(PARAM_TIME, &t.digits());
            }
            if !number.is_empty() {
                param(PARAM_NUMBER, &number);
            } else if let Some(a) = cid.number_absence {
                param(PARAM_NUMBER_ABSENCE, &[a.code()]);
            }
            let name: Vec<u8> = cid
                .name
                .as_deref()
                .map(|n| text_bytes(n).take(50).collect())
                .unwrap_or_default();
            if !name.is_empty() {
                param(PARAM_NAME, &name);
            } else if let Some(a) = cid.name_absence {
                param(PARAM_NAME_ABSENCE, &[a.code()]);
            }
            MDMF_CALL_SETUP
        }
    };
    let mut out = Vec::with_capacity(body.len() + 3);
    out.push(kind);
    out.push(body.len() as u8);
    out.extend(body);
    out.push(checksum(&out));
    out
}

/// Caller ID audio for `cid` in `standard` with the usual timing and level
/// (-13.5 dBm0, 300 seizure bits, 180 mark bits, MDMF).
pub fn encode(cid: &CallerId, standard: Standard) -> Vec<i16> {
    encode_with(cid, standard, &EncodeOptions::default())
}

/// Caller ID audio for `cid` in `standard`, shaped by `opts`.
pub fn encode_with(cid: &CallerId, standard: Standard, opts: &EncodeOptions) -> Vec<i16> {
    let Some(fsk) = standard.fsk() else {
        return encode_dtmf(cid, opts.level_dbm0);
    };
    let mut m = Modulator::new(fsk, opts.level_dbm0);
    let mut out = Vec::new();
    m.seizure(opts.seizure_bits, &mut out);
    m.mark(opts.mark_bits, &mut out);
    for b in message(cid, opts.format) {
        m.byte(b, &mut out);
    }
    // A few mark bits so the last stop bit is whole at the receiver.
    m.mark(4, &mut out);
    out
}

/// The DTMF caller ID string for `cid`: `A<number>C`, or the Swedish
/// information codes `B10C` (private) / `B00C` (unavailable).
pub fn dtmf_string(cid: &CallerId) -> String {
    let digits: String = cid
        .number
        .as_deref()
        .unwrap_or_default()
        .chars()
        .filter(char::is_ascii_digit)
        .collect();
    if !digits.is_empty() {
        format!("A{digits}C")
    } else if cid.number_absence == Some(Absence::Private) {
        "B10C".into()
    } else {
        "B00C".into()
    }
}

/// DTMF caller ID audio: [`dtmf_string`], 70 ms tones and 70 ms pauses
/// (the Swedish timing; Denmark asks for at least 50 ms).
fn encode_dtmf(cid: &CallerId, level_dbm0: f32) -> Vec<i16> {
    dtmf::generate(&dtmf_string(cid), 70, 70, level_dbm0)
}

/// Reads a DTMF caller ID string (start code, digits, end code `C` or `#`):
/// `A<number>C`, `D<number>C` (a number), `A<number>D<redirecting>C` (the
/// redirecting number is dropped), `B<code>C` (`00` unavailable, `10`
/// private, as in Sweden), `D1#` (private), `D2#` / `D3#` (unavailable, as
/// in Denmark), `D0000000000C` (unknown, as in the Netherlands).
pub fn parse_dtmf(keys: &str) -> Result<CallerId, CidError> {
    let bad = || CidError::DtmfFormat {
        digits: keys.to_string(),
    };
    let body = keys.strip_suffix(['C', '#']).ok_or_else(bad)?;
    let mut cid = CallerId::default();
    let mut segments: Vec<(char, String)> = Vec::new();
    for k in body.chars() {
        match k {
            'A' | 'B' | 'D' => segments.push((k, String::new())),
            '0'..='9' => segments.last_mut().ok_or_else(bad)?.1.push(k),
            _ => return Err(bad()),
        }
    }
    for (start, digits) in segments {
        match (start, digits.as_str()) {
            (_, "") => return Err(bad()),
            ('A', n) if cid.number.is_none() => cid.number = Some(n.to_string()),
            ('D', _) if cid.number.is_some() => {} // redirecting number
            ('D', "1") => cid.number_absence = Some(Absence::Private),
            ('D', "2" | "3") => cid.number_absence = Some(Absence::Unavailable),
            ('D', n) if n.bytes().all(|b| b == b'0') => {
                cid.number_absence = Some(Absence::Unavailable)
            }
            ('D', n) => cid.number = Some(n.to_string()),
            ('B', "10") => cid.number_absence = Some(Absence::Private),
            ('B', _) => cid.number_absence = Some(Absence::Unavailable),
            _ => return Err(bad()),
        }
    }
    if cid.number.is_some() {
        cid.number_absence = None;
    }
    if cid.number.is_none() && cid.number_absence.is_none() {
        return Err(bad());
    }
    Ok(cid)
}

/// Longest DTMF caller ID string accepted (start, 20 digits, a redirecting
/// number, an information code, end).
const MAX_DTMF_KEYS: usize = 48;

/// Silence after the last key after which an unfinished DTMF caller ID is
/// given up (1 s; keys come every 140 ms).
const DTMF_TIMEOUT_SAMPLES: u64 = crate::SAMPLE_RATE as u64;

/// Streaming DTMF caller ID receiver.
#[derive(Debug, Clone)]
struct DtmfReceiver {
    detector: dtmf::Detector,
    keys: String,
    /// Sample at which the last key ended.
    last_end: u64,
    n: u64,
}

impl DtmfReceiver {
    fn new() -> DtmfReceiver {
        DtmfReceiver {
            detector: dtmf::Detector::new(),
            keys: String::new(),
            last_end: 0,
            n: 0,
        }
    }

    fn key(&mut self, d: dtmf::Digit, out: &mut VecDeque<Result<CallerId, CidError>>) {
        self.last_end =
            d.at_sample + u64::from(d.duration_ms) * u64::from(crate::SAMPLE_RATE) / 1000;
        // Keys before a start code are not caller ID (a stray tone).
        if self.keys.is_empty() && !matches!(d.key, 'A' | 'B' | 'D') {
            return;
        }
        self.keys.push(d.key);
        if matches!(d.key, 'C' | '#') {
            out.push_back(parse_dtmf(&std::mem::take(&mut self.keys)));
        } else if self.keys.len() > MAX_DTMF_KEYS {
            out.push_back(Err(CidError::DtmfFormat {
                digits: std::mem::take(&mut self.keys),
            }));
        }
    }

    fn push(&mut self, samples: &[i16], out: &mut VecDeque<Result<CallerId, CidError>>) {
        for d in self.detector.push(samples) {
            self.key(d, out);
        }
        self.n += samples.len() as u64;
        if !self.keys.is_empty() && self.n.saturating_sub(self.last_end) > DTMF_TIMEOUT_SAMPLES {
            out.push_back(Err(CidError::DtmfFormat {
                digits: std::mem::take(&mut self.keys),
            }));
        }
    }

    fn finish(&mut self) -> Result<CallerId, CidError> {
        let mut out = VecDeque::new();
        if let Some(d) = self.detector.finish() {
            self.key(d, &mut out);
        }
        if let Some(r) = out.pop_front() {
            return r;
        }
        if self.keys.is_empty() {
            Err(CidError::NoDtmf)
        } else {
            Err(CidError::DtmfFormat {
                digits: std::mem::take(&mut self.keys),
            })
        }
    }
}

/// Reads a call set-up message from its bytes: type, length, message,
/// checksum (bytes after the checksum are ignored). Checks the length and
/// the checksum before reading the parameters.
pub fn parse_message(bytes: &[u8]) -> Result<CallerId, CidError> {
    let len = bytes.get(1).map_or(0, |&l| usize::from(l));
    let whole = bytes.get(..len + 3).ok_or(CidError::Truncated {
        got: bytes.len(),
        expected: len + 3,
    })?;
    let sum = whole.iter().fold(0u8, |a, &b| a.wrapping_add(b));
    if sum != 0 {
        return Err(CidError::BadChecksum { sum });
    }
    let (kind, body) = match whole {
        [kind, _, body @ .., _checksum] => (*kind, body),
        _ => {
            return Err(CidError::Truncated {
                got: bytes.len(),
                expected: 3,
            });
        }
    };
    match kind {
        SDMF_CALL_SETUP => parse_sdmf(body),
        MDMF_CALL_SETUP => parse_mdmf(body),
        other => Err(CidError::UnsupportedMessage { kind: other }),
    }
}

fn text(b: &[u8]) -> Option<String> {
    // 8-bit characters, read as Latin-1; control characters dropped.
    let s: String = b
        .iter()
        .map(|&c| char::from(c))
        .filter(|c| !c.is_control())
        .collect();
    let s = s.trim();
    (!s.is_empty()).then(|| s.to_string())
}

fn parse_sdmf(body: &[u8]) -> Result<CallerId, CidError> {
    let (time, number) = body
        .split_at_checked(8)
        .ok_or_else(|| CidError::Malformed {
            what: format!(
                "SDMF message of {} bytes is shorter than its 8-byte date and time",
                body.len()
            ),
        })?;
    let mut cid = CallerId {
        time: CidTime::from_digits(time),
        ..CallerId::default()
    };
    match number {
        [c @ (b'O' | b'P')] => cid.number_absence = Some(Absence::from_code(*c)),
        n => cid.number = text(n),
    }
    Ok(cid)
}

fn parse_mdmf(body: &[u8]) -> Result<CallerId, CidError> {
    let mut cid = CallerId::default();
    let mut rest = body;
    while let [kind, len, tail @ ..] = rest {
        let value = tail
            .get(..usize::from(*len))
            .ok_or_else(|| CidError::Malformed {
                what: format!(
                    "parameter 0x{kind:02X} claims {len} bytes but only {} remain",
                    tail.len()
                ),
            })?;
        match *kind {
            PARAM_TIME => cid.time = CidTime::from_digits(value),
            PARAM_NUMBER => cid.number = text(value),
            PARAM_NUMBER_ABSENCE => {
                cid.number_absence = value.first().map(|&c| Absence::from_code(c))
            }
            PARAM_NAME => cid.name = text(value),
            PARAM_NAME_ABSENCE => cid.name_absence = value.first().map(|&c| Absence::from_code(c)),
            // Called number, call type, redirecting number, ...: not needed.
            _ => {}
        }
        rest = tail.get(usize::from(*len)..).unwrap_or_default();
    }
    if let [odd] = rest {
        return Err(CidError::Malformed {
            what: format!("a lone byte 0x{odd:02X} after the last parameter"),
        });
    }
    Ok(cid)
}

/// Streaming FSK caller ID receiver.
#[derive(Debug, Clone)]
struct FskReceiver {
    standard: Standard,
    demod: Demodulator,
    events: Vec<FskEvent>,
    /// The message being received (type, length, ...), if one began.
    message: Option<Vec<u8>>,
    heard_carrier: bool,
    /// Consecutive `0x55` bytes (channel seizure) now, and the most seen.
    seizure_run: u32,
    seizure_max: u32,
}

impl FskReceiver {
    fn new(standard: Standard, fsk: FskStandard) -> FskReceiver {
        FskReceiver {
            standard,
            demod: Demodulator::new(fsk),
            events: Vec::new(),
            message: None,
            heard_carrier: false,
            seizure_run: 0,
            seizure_max: 0,
        }
    }

    fn expected(msg: &[u8]) -> Option<usize> {
        msg.get(1).map(|&len| usize::from(len) + 3)
    }

    fn push(&mut self, samples: &[i16], out: &mut VecDeque<Result<CallerId, CidError>>) {
        self.events.clear();
        self.demod.push(samples, &mut self.events);
        for ev in std::mem::take(&mut self.events) {
            match ev {
                FskEvent::CarrierOn => self.heard_carrier = true,
                FskEvent::CarrierOff => {
                    if let Some(msg) = self.message.take() {
                        out.push_back(Err(CidError::Truncated {
                            got: msg.len(),
                            expected: FskReceiver::expected(&msg).unwrap_or(3),
                        }));
                    }
                }
                FskEvent::FramingError => {
                    if let Some(msg) = self.message.take() {
                        out.push_back(Err(CidError::Framing { index: msg.len() }));
                    }
                }
                FskEvent::Byte {
                    value,
                    mark_bits_before,
                    mark_hz,
                } => self.byte(value, mark_bits_before, mark_hz, out),
            }
        }
    }

    fn byte(
        &mut self,
        value: u8,
        mark_bits_before: u32,
        mark_hz: Option<f64>,
        out: &mut VecDeque<Result<CallerId, CidError>>,
    ) {
        // A channel seizure reads as back-to-back 0x55 bytes.
        if value == 0x55 && mark_bits_before == 0 {
            self.seizure_run = self.seizure_run.saturating_add(1);
            self.seizure_max = self.seizure_max.max(self.seizure_run);
        } else {
            self.seizure_run = u32::from(value == 0x55);
        }
        if mark_bits_before >= MIN_MARK_BITS {
            if let Some(msg) = self.message.take() {
                out.push_back(Err(CidError::Truncated {
                    got: msg.len(),
                    expected: FskReceiver::expected(&msg).unwrap_or(3),
                }));
            }
            let fsk = self.demod.standard();
            if let Some(hz) = mark_hz {
                // Nearer the other standard's mark than ours: say so rather
                // than decode a signal that only resembles ours.
                if (hz - fsk.other().mark_hz()).abs() < (hz - fsk.mark_hz()).abs() {
                    out.push_back(Err(CidError::WrongStandard {
                        asked: self.standard,
                        heard: Standard::of_fsk(fsk.other()),
                        mark_hz: hz.round().clamp(0.0, 10_000.0) as u32,
                    }));
                    return;
                }
            }
            self.message = Some(vec![value]);
        } else if let Some(msg) = self.message.as_mut() {
            if mark_bits_before > MAX_GAP_BITS {
                let got = msg.len();
                let expected = FskReceiver::expected(msg).unwrap_or(3);
                self.message = None;
                out.push_back(Err(CidError::Truncated { got, expected }));
                return;
            }
            msg.push(value);
        }
        if let Some(msg) = &self.message
            && FskReceiver::expected(msg) == Some(msg.len())
        {
            out.push_back(parse_message(msg));
            self.message = None;
        }
    }

    fn finish(&mut self) -> Result<CallerId, CidError> {
        if let Some(msg) = self.message.take() {
            return Err(CidError::Truncated {
                got: msg.len(),
                expected: FskReceiver::expected(&msg).unwrap_or(3),
            });
        }
        if self.heard_carrier {
            Err(CidError::NoMessage {
                standard: self.standard,
                seizure_bits: self.seizure_max * 10,
            })
        } else {
            Err(CidError::NoCarrier {
                standard: self.standard,
            })
        }
    }
}

#[derive(Debug, Clone)]
enum Receiver {
    Fsk(Box<FskReceiver>),
    Dtmf(Box<DtmfReceiver>),
}

/// Streaming caller ID decoder: the line service feeds it the line audio
/// (20 ms frames, say) between rings; each complete message comes out as
/// `Ok`, each broken one as `Err` saying what is wrong.
#[derive(Debug, Clone)]
pub struct Decoder {
    standard: Standard,
    receiver: Receiver,
    ready: VecDeque<Result<CallerId, CidError>>,
}

impl Decoder {
    /// A decoder for `standard`.
    pub fn new(standard: Standard) -> Decoder {
        let receiver = match standard.fsk() {
            Some(fsk) => Receiver::Fsk(Box::new(FskReceiver::new(standard, fsk))),
            None => Receiver::Dtmf(Box::new(DtmfReceiver::new())),
        };
        Decoder {
            standard,
            receiver,
            ready: VecDeque::new(),
        }
    }

    /// The standard this decoder listens for.
    pub fn standard(&self) -> Standard {
        self.standard
    }

    /// Feeds `samples`; returns the next message decoded so far (the rest,
    /// if several ended in these samples, come out of later calls).
    pub fn push(&mut self, samples: &[i16]) -> Option<Result<CallerId, CidError>> {
        match &mut self.receiver {
            Receiver::Fsk(r) => r.push(samples, &mut self.ready),
            Receiver::Dtmf(r) => r.push(samples, &mut self.ready),
        }
        // Bounded: a pathological signal cannot pile up results.
        while self.ready.len() > 8 {
            self.ready.pop_front();
        }
        self.ready.pop_front()
    }

    /// The end of the audio: a message still pending, or why none was
    /// found.
    pub fn finish(&mut self) -> Result<CallerId, CidError> {
        if let Some(r) = self.ready.pop_front() {
            return r;
        }
        match &mut self.receiver {
            Receiver::Fsk(r) => r.finish(),
            Receiver::Dtmf(r) => r.finish(),
        }
    }

    /// Starts over (the line service calls it when a new call rings).
    pub fn reset(&mut self) {
        *self = Decoder::new(self.standard);
    }
}

/// Decodes the first caller ID in `samples`. When the audio holds only
/// broken messages, the error says what was wrong with the first.
pub fn decode(samples: &[i16], standard: Standard) -> Result<CallerId, CidError> {
    let mut d = Decoder::new(standard);
    let mut first_err = None;
    let mut results = Vec::new();
    for chunk in samples.chunks(crate::FRAME_SAMPLES) {
        results.extend(d.push(chunk));
        results.extend(d.ready.drain(..));
        for r in results.drain(..) {
            match r {
                Ok(cid) => return Ok(cid),
                Err(e) => {
                    first_err.get_or_insert(e);
                }
            }
        }
    }
    match (d.finish(), first_err) {
        (Ok(cid), _) => Ok(cid),
        (Err(_), Some(e)) | (Err(e), None) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    /// Type, length, body, checksum, built by hand from the field layout.
    fn framed(kind: u8, body: &[u8]) -> Vec<u8> {
        let mut m = vec![kind, body.len() as u8];
        m.extend_from_slice(body);
        let sum: u32 = m.iter().map(|&b| u32::from(b)).sum();
        m.push(((256 - sum % 256) % 256) as u8);
        m
    }

    fn fsk_audio(fsk: FskStandard, bytes: &[u8]) -> Vec<i16> {
        let mut m = Modulator::new(fsk, -13.5);
        let mut out = vec![0; 800];
        m.seizure(300, &mut out);
        m.mark(180, &mut out);
        for &b in bytes {
            m.byte(b, &mut out);
        }
        m.mark(4, &mut out);
        out.extend(std::iter::repeat_n(0, 800));
        out
    }

    #[test]
    fn gr30_sdmf_vector() {
        // SDMF: 0x04, length, "12071458" (Dec 7 14:58), "6175551234".
        let msg = framed(0x04, b"120714586175551234");
        assert_eq!(msg.len(), 21);
        assert_eq!(msg.iter().fold(0u8, |a, &b| a.wrapping_add(b)), 0);
        let cid = decode(&fsk_audio(FskStandard::Bell202, &msg), Standard::Bell202).unwrap();
        assert_eq!(cid.number.as_deref(), Some("6175551234"));
        assert_eq!(cid.time.unwrap().to_string(), "12-07 14:58");
        assert_eq!(cid.name, None);
    }

    #[test]
    fn etsi_mdmf_vector_with_name_and_private_name() {
        let mut body = Vec::new();
        body.extend([0x01, 8]);
        body.extend(b"03150905");
        body.extend([0x02, 12]);
        body.extend(b"380441234567");
        body.extend([0x07, 12]);
        body.extend(b"Olena Bondar");
        let msg = framed(0x80, &body);
        let cid = decode(&fsk_audio(FskStandard::V23, &msg), Standard::Etsi).unwrap();
        assert_eq!(cid.number.as_deref(), Some("380441234567"));
        assert_eq!(cid.name.as_deref(), Some("Olena Bondar"));
        assert_eq!(
            cid.time,
            Some(CidTime {
                month: 3,
                day: 15,
                hour: 9,
                minute: 5
            })
        );

        // Number withheld, name unavailable, an unknown parameter (call type
        // 0x11) that must be skipped.
        let body = [0x11, 1, 0x01, 0x04, 1, b'P', 0x08, 1, b'O'];
        let cid = decode(
            &fsk_audio(FskStandard::V23, &framed(0x80, &body)),
            Standard::Etsi,
        )
        .unwrap();
        assert_eq!(cid.number, None);
        assert_eq!(cid.number_absence, Some(Absence::Private));
        assert_eq!(cid.name_absence, Some(Absence::Unavailable));
    }

    #[test]
    fn corrupted_byte_is_a_checksum_error_not_a_wrong_number() {
        let mut msg = framed(0x04, b"120714586175551234");
        msg[12] ^= 0x01; // '5' becomes '4'
        let err = decode(&fsk_audio(FskStandard::Bell202, &msg), Standard::Bell202).unwrap_err();
        assert!(matches!(err, CidError::BadChecksum { sum: 0xFF }), "{err}");
        assert!(err.to_string().contains("checksum"), "{err}");
    }

    #[test]
    fn message_waiting_is_reported_as_such() {
        let msg = framed(0x82, &[0x0B, 1, 0xFF]);
        let err = decode(&fsk_audio(FskStandard::V23, &msg), Standard::Etsi).unwrap_err();
        assert_eq!(err, CidError::UnsupportedMessage { kind: 0x82 });
        assert!(err.to_string().contains("message waiting"), "{err}");
    }

    #[test]
    fn parameter_overrunning_the_message_is_malformed() {
        let msg = framed(0x80, &[0x02, 9, b'1', b'2']);
        let err = parse_message(&msg).unwrap_err();
        assert!(matches!(err, CidError::Malformed { .. }), "{err}");
    }

    #[test]
    fn cut_signal_is_truncated() {
        let msg = framed(0x04, b"120714586175551234");
        let audio = fsk_audio(FskStandard::Bell202, &msg);
        // Cut in the middle of the message (800 silence + 480 bits + ~10 bytes).
        let cut = 800 + (480 + 100) * 20 / 3;
        let err = decode(&audio[..cut], Standard::Bell202).unwrap_err();
        assert!(
            matches!(err, CidError::Truncated { expected: 21, .. }),
            "{err}"
        );
    }

    #[test]
    fn seizure_without_a_message_is_named() {
        let mut m = Modulator::new(FskStandard::V23, -13.5);
        let mut audio = vec![0; 800];
        m.seizure(300, &mut audio);
        m.mark(20, &mut audio);
        audio.extend(vec![0; 800]);
        let err = decode(&audio, Standard::Etsi).unwrap_err();
        let CidError::NoMessage { seizure_bits, .. } = err else {
            panic!("{err}")
        };
        assert!((270..=300).contains(&seizure_bits), "{seizure_bits}");
        assert!(err.to_string().contains("channel seizure"), "{err}");
    }

    #[test]
    fn wrong_standard_is_seen_on_the_shortest_mark_signal() {
        let opts = EncodeOptions {
            seizure_bits: 0,
            mark_bits: 45,
            ..EncodeOptions::default()
        };
        let cid = CallerId::number("5551234");
        let mut audio = vec![0; 800];
        audio.extend(encode_with(&cid, Standard::Etsi, &opts));
        assert_eq!(decode(&audio, Standard::Etsi), Ok(cid.clone()));
        assert!(matches!(
            decode(&audio, Standard::Bell202),
            Err(CidError::WrongStandard {
                heard: Standard::Etsi,
                ..
            })
        ));
    }

    #[test]
    fn silence_and_wrong_standard_say_so() {
        let err = decode(&[0; 8000], Standard::Etsi).unwrap_err();
        assert_eq!(
            err,
            CidError::NoCarrier {
                standard: Standard::Etsi
            }
        );
        let cid = CallerId::number("5551234");
        let bell = encode(&cid, Standard::Bell202);
        let err = decode(&bell, Standard::Etsi).unwrap_err();
        assert!(
            matches!(
                err,
                CidError::WrongStandard {
                    heard: Standard::Bell202,
                    ..
                }
            ),
            "{err}"
        );
        assert!(err.to_string().contains("--standard bell202"), "{err}");
        let etsi = encode(&cid, Standard::Etsi);
        let err = decode(&etsi, Standard::Bell202).unwrap_err();
        assert!(
            matches!(
                err,
                CidError::WrongStandard {
                    heard: Standard::Etsi,
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn encode_sdmf_and_mdmf_round_trip() {
        let cid = CallerId {
            number: Some("0501234567".into()),
            name: Some("Ivan".into()),
            time: Some("12-31 23:59".parse().unwrap()),
            ..CallerId::default()
        };
        for standard in [Standard::Bell202, Standard::Etsi] {
            assert_eq!(decode(&encode(&cid, standard), standard).unwrap(), cid);
            let sdmf = EncodeOptions {
                format: Format::Sdmf,
                seizure_bits: 0,
                mark_bits: 80,
                ..EncodeOptions::default()
            };
            let got = decode(&encode_with(&cid, standard, &sdmf), standard).unwrap();
            assert_eq!(
                got,
                CallerId {
                    name: None,
                    ..cid.clone()
                }
            );
        }
    }

    #[test]
    fn streaming_decoder_in_20ms_frames() {
        let cid = CallerId::number("5551234");
        let mut audio = vec![0; 1600];
        audio.extend(encode(&cid, Standard::Etsi));
        audio.extend(vec![0; 1600]);
        let mut d = Decoder::new(Standard::Etsi);
        let got: Vec<_> = audio.chunks(160).filter_map(|f| d.push(f)).collect();
        assert_eq!(got, vec![Ok(cid)]);
    }

    #[test]
    fn json_shape() {
        let cid = CallerId {
            number: Some("5551234".into()),
            time: Some("0102 0304".parse().unwrap()),
            ..CallerId::default()
        };
        let v = serde_json::to_value(&cid).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"number": "5551234", "name": null, "time": "01-02 03:04",
                "number_absence": null, "name_absence": null})
        );
        assert_eq!(serde_json::from_value::<CallerId>(v).unwrap(), cid);
    }

    #[test]
    fn dtmf_framings() {
        let number = |s: &str| parse_dtmf(s).unwrap().number;
        let absence = |s: &str| parse_dtmf(s).unwrap().number_absence;
        assert_eq!(number("A0501234567C").as_deref(), Some("0501234567"));
        assert_eq!(number("A0501234567#").as_deref(), Some("0501234567"));
        assert_eq!(number("D0501234567C").as_deref(), Some("0501234567"));
        assert_eq!(number("A12345D67890C").as_deref(), Some("12345"));
        assert_eq!(absence("B10C"), Some(Absence::Private));
        assert_eq!(absence("B00C"), Some(Absence::Unavailable));
        assert_eq!(absence("D1#"), Some(Absence::Private));
        assert_eq!(absence("D3#"), Some(Absence::Unavailable));
        assert_eq!(absence("D0000000000C"), Some(Absence::Unavailable));
        for bad in ["A123", "123C", "AC", "A12*3C", "C"] {
            assert!(
                matches!(parse_dtmf(bad), Err(CidError::DtmfFormat { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn dtmf_caller_id_from_audio() {
        let cid = CallerId::number("0501234567");
        let mut audio = vec![0; 800];
        audio.extend(encode(&cid, Standard::Dtmf));
        audio.extend(vec![0; 800]);
        let mut d = Decoder::new(Standard::Dtmf);
        let got: Vec<_> = audio.chunks(160).filter_map(|f| d.push(f)).collect();
        assert_eq!(got, vec![Ok(cid.clone())]);

        let private = CallerId {
            number_absence: Some(Absence::Private),
            ..CallerId::default()
        };
        assert_eq!(
            decode(&encode(&private, Standard::Dtmf), Standard::Dtmf),
            Ok(private)
        );

        // No end code: given up after a second of silence, saying what was heard.
        let mut audio = dtmf::generate("A5551234", 70, 70, -10.0);
        audio.extend(vec![0; 12_000]);
        assert_eq!(
            decode(&audio, Standard::Dtmf),
            Err(CidError::DtmfFormat {
                digits: "A5551234".into()
            })
        );
        assert_eq!(decode(&[0; 8000], Standard::Dtmf), Err(CidError::NoDtmf));
        // FSK is not DTMF.
        let fsk = encode(&cid, Standard::Etsi);
        assert_eq!(decode(&fsk, Standard::Dtmf), Err(CidError::NoDtmf));
    }
}
