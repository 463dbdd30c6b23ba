//! TPDU field codecs (TS 23.040 §9.1.2 and §9.2.3) and the three TPDU types.

use crate::reader::Reader;
use crate::{
    Address, AddressKind, Alphabet, Concat, Deliver, Direction, EncodedPart, Pdu, PduError,
    StatusReport, Submit, SubmitOptions, Timestamp, gsm7,
};

/// Longest address value in semi-octets (TS 23.040 §9.1.2.5: 2-12 octets).
const MAX_ADDRESS_DIGITS: usize = 20;
/// Longest alphanumeric address in septets (10 octets).
const MAX_ALPHA_SEPTETS: usize = 11;
/// Longest user data: 140 octets, or 160 septets.
const MAX_UD_OCTETS: usize = 140;
const MAX_UD_SEPTETS: usize = 160;

// ---------------------------------------------------------------- addresses

fn digit_of(nibble: u8) -> Option<char> {
    match nibble {
        0..=9 => Some(char::from(b'0' + nibble)),
        0x0A => Some('*'),
        0x0B => Some('#'),
        0x0C => Some('a'),
        0x0D => Some('b'),
        0x0E => Some('c'),
        _ => None,
    }
}

fn nibble_of(c: char) -> Option<u8> {
    match c {
        '0'..='9' => u8::try_from(u32::from(c) - u32::from('0')).ok(),
        '*' => Some(0x0A),
        '#' => Some(0x0B),
        'a' | 'A' => Some(0x0C),
        'b' | 'B' => Some(0x0D),
        'c' | 'C' => Some(0x0E),
        _ => None,
    }
}

/// Semi-octet digits, low nibble first; stops at `count` digits or an `F` filler.
fn decode_digits(bytes: &[u8], count: usize) -> String {
    let mut out = String::with_capacity(count.min(bytes.len() * 2));
    'outer: for b in bytes {
        for nibble in [b & 0x0F, b >> 4] {
            if out.len() >= count {
                break 'outer;
            }
            match digit_of(nibble) {
                Some(d) => out.push(d),
                None => break 'outer,
            }
        }
    }
    out
}

fn address_kind(toa: u8) -> AddressKind {
    let ton = (toa >> 4) & 0x07;
    let npi = toa & 0x0F;
    match (ton, npi) {
        (1, _) => AddressKind::International,
        (2, _) | (0, 1) => AddressKind::National,
        (5, _) => AddressKind::Alphanumeric,
        _ => AddressKind::Other { ton, npi },
    }
}

fn address_value(kind: AddressKind, value_bytes: &[u8], semi_octets: usize) -> String {
    match kind {
        AddressKind::Alphanumeric | AddressKind::Other { ton: 5, .. } => {
            let count = semi_octets * 4 / 7;
            let mut septets = gsm7::unpack(value_bytes, 0, count);
            // A length that covers 7 spare bits makes a trailing '@' out of padding.
            if count > 0
                && septets.last() == Some(&0)
                && (7 * (count - 1)).div_ceil(8) == value_bytes.len()
            {
                septets.pop();
            }
            gsm7::decode(&septets)
        }
        AddressKind::International => {
            let digits = decode_digits(value_bytes, semi_octets);
            if digits.is_empty() {
                digits
            } else {
                format!("+{digits}")
            }
        }
        _ => decode_digits(value_bytes, semi_octets),
    }
}

/// Reads TP-OA / TP-DA / TP-RA: length in semi-octets, type of address, value.
fn read_address(r: &mut Reader<'_>, field: &'static str) -> Result<Address, PduError> {
    let semi_octets = usize::from(r.u8(field)?);
    let toa = r.u8(field)?;
    let value_bytes = r.take(semi_octets.div_ceil(2), field)?;
    let kind = address_kind(toa);
    let value = address_value(kind, value_bytes, semi_octets);
    Ok(Address { kind, value })
}

/// Reads the SMSC information block: length in octets (0 = none), type, digits.
fn read_smsc(r: &mut Reader<'_>) -> Result<Option<Address>, PduError> {
    let len = usize::from(r.u8("SMSC length")?);
    if len == 0 {
        return Ok(None);
    }
    let toa = r.u8("SMSC type of address")?;
    let value_bytes = r.take(len - 1, "SMSC address")?;
    let kind = address_kind(toa);
    let value = address_value(kind, value_bytes, value_bytes.len() * 2);
    Ok((!value.is_empty()).then_some(Address { kind, value }))
}

fn type_of_address(kind: AddressKind) -> u8 {
    match kind {
        AddressKind::International => 0x91,
        AddressKind::National => 0x81,
        AddressKind::Alphanumeric => 0xD0,
        AddressKind::Other { ton, npi } => 0x80 | ((ton & 0x07) << 4) | (npi & 0x0F),
    }
}

fn address_error(value: &str, reason: &'static str) -> PduError {
    PduError::Address {
        value: value.to_string(),
        reason,
    }
}

/// Encodes an address field: length in semi-octets, type of address, value.
pub(crate) fn encode_address(addr: &Address) -> Result<Vec<u8>, PduError> {
    let toa = type_of_address(addr.kind);
    if (toa >> 4) & 0x07 == 5 {
        let septets = gsm7::encode(&addr.value).ok_or_else(|| {
            address_error(
                &addr.value,
                "alphanumeric address has characters outside GSM 7-bit",
            )
        })?;
        if septets.len() > MAX_ALPHA_SEPTETS {
            return Err(address_error(
                &addr.value,
                "alphanumeric address longer than 11 GSM 7-bit characters",
            ));
        }
        let packed = gsm7::pack(&septets, 0);
        let semi_octets = (septets.len() * 7).div_ceil(4);
        let mut out = Vec::with_capacity(2 + packed.len());
        out.push(u8::try_from(semi_octets).unwrap_or(0));
        out.push(toa);
        out.extend_from_slice(&packed);
        return Ok(out);
    }
    let digits = addr.value.strip_prefix('+').unwrap_or(&addr.value);
    let nibbles = digits
        .chars()
        .map(nibble_of)
        .collect::<Option<Vec<u8>>>()
        .ok_or_else(|| {
            address_error(
                &addr.value,
                "number has characters other than 0-9 * # a b c",
            )
        })?;
    if nibbles.len() > MAX_ADDRESS_DIGITS {
        return Err(address_error(&addr.value, "number longer than 20 digits"));
    }
    let mut out = Vec::with_capacity(2 + nibbles.len().div_ceil(2));
    out.push(u8::try_from(nibbles.len()).unwrap_or(0));
    out.push(toa);
    for pair in nibbles.chunks(2) {
        let lo = pair.first().copied().unwrap_or(0x0F);
        let hi = pair.get(1).copied().unwrap_or(0x0F);
        out.push(lo | (hi << 4));
    }
    Ok(out)
}

/// See [`Address::parse`].
pub(crate) fn parse_address(s: &str) -> Result<Address, PduError> {
    let t = s.trim();
    if t.is_empty() {
        return Err(address_error(s, "empty address"));
    }
    let is_separator = |c: char| matches!(c, ' ' | '-' | '(' | ')' | '.');
    let (plus, rest) = match t.strip_prefix('+') {
        Some(rest) => (true, rest),
        None => (false, t),
    };
    let compact: String = rest.chars().filter(|&c| !is_separator(c)).collect();
    let numeric = !compact.is_empty()
        && compact.chars().any(|c| c.is_ascii_digit())
        && compact
            .chars()
            .all(|c| c.is_ascii_digit() || (!plus && matches!(c, '*' | '#')));
    if numeric {
        if compact.len() > MAX_ADDRESS_DIGITS {
            return Err(address_error(s, "number longer than 20 digits"));
        }
        return Ok(if plus {
            Address {
                kind: AddressKind::International,
                value: format!("+{compact}"),
            }
        } else {
            Address {
                kind: AddressKind::National,
                value: compact,
            }
        });
    }
    if plus {
        return Err(address_error(s, "'+' must be followed by digits only"));
    }
    let septets = gsm7::encode(t)
        .ok_or_else(|| address_error(s, "alphanumeric address has characters outside GSM 7-bit"))?;
    if septets.len() > MAX_ALPHA_SEPTETS {
        return Err(address_error(
            s,
            "alphanumeric address longer than 11 GSM 7-bit characters",
        ));
    }
    Ok(Address {
        kind: AddressKind::Alphanumeric,
        value: t.to_string(),
    })
}

// --------------------------------------------------------------- timestamps

fn bcd(r_offset: usize, b: u8, field: &'static str) -> Result<u8, PduError> {
    let (lo, hi) = (b & 0x0F, b >> 4);
    if lo > 9 || hi > 9 {
        return Err(PduError::Invalid {
            field,
            offset: r_offset,
            reason: format!("octet {b:02X} is not two decimal semi-octets"),
        });
    }
    Ok(lo * 10 + hi)
}

fn read_timestamp(r: &mut Reader<'_>, field: &'static str) -> Result<Timestamp, PduError> {
    let start = r.offset();
    let raw = r.take(7, field)?;
    let mut v = [0u8; 6];
    for (i, (slot, &b)) in v.iter_mut().zip(raw.iter()).enumerate() {
        *slot = bcd(start + i, b, field)?;
    }
    let [yy, month, day, hour, minute, second] = v;
    let tz_raw = raw.get(6).copied().unwrap_or(0);
    // Networks do send non-decimal units here (oFono's status report traces
    // have `A0`); like Gammu and oFono, read them as the value they weigh
    // rather than dropping the message. The result stays within ±85.
    let (tens, units) = (tz_raw & 0x07, tz_raw >> 4);
    let magnitude = i8::try_from(tens * 10 + units).unwrap_or(0);
    let tz_quarter_hours = if tz_raw & 0x08 != 0 {
        -magnitude
    } else {
        magnitude
    };
    let checks: [(u8, std::ops::RangeInclusive<u8>, usize, &str); 5] = [
        (month, 1..=12, 1, "month"),
        (day, 1..=31, 2, "day"),
        (hour, 0..=23, 3, "hour"),
        (minute, 0..=59, 4, "minute"),
        (second, 0..=59, 5, "second"),
    ];
    for (value, range, idx, name) in checks {
        if !range.contains(&value) {
            return Err(PduError::Invalid {
                field,
                offset: start + idx,
                reason: format!("{name} {value} out of range"),
            });
        }
    }
    let year = if yy < 90 {
        2000 + u16::from(yy)
    } else {
        1900 + u16::from(yy)
    };
    Ok(Timestamp {
        year,
        month,
        day,
        hour,
        minute,
        second,
        tz_quarter_hours,
    })
}

fn swapped(v: u8) -> u8 {
    ((v % 10) << 4) | (v / 10)
}

pub(crate) fn encode_timestamp(ts: &Timestamp) -> Result<[u8; 7], PduError> {
    let bad = |what: &str| PduError::Timestamp(format!("{what} in {}", ts.to_rfc3339()));
    if !(1990..=2089).contains(&ts.year) {
        return Err(bad("year outside 1990-2089"));
    }
    if !(1..=12).contains(&ts.month) {
        return Err(bad("month out of range"));
    }
    if !(1..=31).contains(&ts.day) {
        return Err(bad("day out of range"));
    }
    if ts.hour > 23 || ts.minute > 59 || ts.second > 59 {
        return Err(bad("time of day out of range"));
    }
    if !(-79..=79).contains(&ts.tz_quarter_hours) {
        return Err(bad("time zone beyond ±79 quarter hours"));
    }
    let yy = u8::try_from(ts.year % 100).unwrap_or(0);
    let q = ts.tz_quarter_hours.unsigned_abs();
    let mut tz = swapped(q);
    if ts.tz_quarter_hours < 0 {
        tz |= 0x08;
    }
    Ok([
        swapped(yy),
        swapped(ts.month),
        swapped(ts.day),
        swapped(ts.hour),
        swapped(ts.minute),
        swapped(ts.second),
        tz,
    ])
}

// ---------------------------------------------------------------------- DCS

/// What a TP-DCS octet means (TS 23.038 §4).
pub(crate) struct DcsInfo {
    pub(crate) alphabet: Alphabet,
    pub(crate) class: Option<u8>,
    pub(crate) compressed: bool,
}

pub(crate) fn dcs_info(dcs: u8) -> DcsInfo {
    let from_bits = |bits: u8| match bits & 0x03 {
        1 => Alphabet::Data8,
        2 => Alphabet::Ucs2,
        // 0, and the reserved 3 which shall be taken as the default alphabet
        _ => Alphabet::Gsm7,
    };
    match dcs >> 4 {
        // general data coding (00xx) and automatic deletion (01xx)
        0x0..=0x7 => DcsInfo {
            alphabet: from_bits(dcs >> 2),
            class: (dcs & 0x10 != 0).then_some(dcs & 0x03),
            compressed: dcs & 0x20 != 0,
        },
        // message waiting indication, UCS2
        0xE => DcsInfo {
            alphabet: Alphabet::Ucs2,
            class: None,
            compressed: false,
        },
        // data coding / message class
        0xF => DcsInfo {
            alphabet: if dcs & 0x04 != 0 {
                Alphabet::Data8
            } else {
                Alphabet::Gsm7
            },
            class: Some(dcs & 0x03),
            compressed: false,
        },
        // reserved groups and message waiting indication (GSM 7-bit)
        _ => DcsInfo {
            alphabet: Alphabet::Gsm7,
            class: None,
            compressed: false,
        },
    }
}

// ----------------------------------------------------------------- user data

/// Decoded TP-UD.
struct UserData {
    concat: Option<Concat>,
    text: String,
    data: Vec<u8>,
}

fn parse_udh(header: &[u8], offset: usize) -> Result<Option<Concat>, PduError> {
    let mut concat = None;
    let mut i = 0usize;
    while i < header.len() {
        let iei = header.get(i).copied().unwrap_or(0);
        let iel = header
            .get(i + 1)
            .copied()
            .ok_or_else(|| PduError::Invalid {
                field: "TP-UDH",
                offset: offset + i,
                reason: format!("information element {iei:02X} has no length octet"),
            })?;
        let start = i + 2;
        let end = start + usize::from(iel);
        let data = header.get(start..end).ok_or_else(|| PduError::Invalid {
            field: "TP-UDH",
            offset: offset + i,
            reason: format!(
                "information element {iei:02X} of {iel} octets runs past the header end"
            ),
        })?;
        let candidate = match (iei, data) {
            (0x00, &[reference, total, seq]) => Some(Concat {
                reference: u16::from(reference),
                total,
                seq,
            }),
            (0x08, &[hi, lo, total, seq]) => Some(Concat {
                reference: u16::from_be_bytes([hi, lo]),
                total,
                seq,
            }),
            _ => None,
        };
        // TS 23.040 §9.2.3.24.1: an element with seq 0 or seq > total is ignored.
        if let Some(c) = candidate.filter(|c| c.seq >= 1 && c.seq <= c.total) {
            concat = Some(c);
        }
        i = end;
    }
    Ok(concat)
}

fn decode_ucs2(bytes: &[u8], offset: usize) -> Result<String, PduError> {
    if !bytes.len().is_multiple_of(2) {
        return Err(PduError::Invalid {
            field: "TP-UD",
            offset: offset + bytes.len() - 1,
            reason: "UCS2 text has an odd number of octets".to_string(),
        });
    }
    Ok(utf16_lossy(bytes))
}

/// UTF-16BE to text; unpaired surrogates become U+FFFD.
pub(crate) fn utf16_lossy(bytes: &[u8]) -> String {
    let units = bytes.chunks_exact(2).map(|p| {
        u16::from_be_bytes([
            p.first().copied().unwrap_or(0),
            p.get(1).copied().unwrap_or(0),
        ])
    });
    char::decode_utf16(units)
        .map(|r| r.unwrap_or(char::REPLACEMENT_CHARACTER))
        .collect()
}

fn read_user_data(
    r: &mut Reader<'_>,
    udhi: bool,
    alphabet: Alphabet,
) -> Result<UserData, PduError> {
    let udl_offset = r.offset();
    let udl = usize::from(r.u8("TP-UDL")?);
    let octets = match alphabet {
        Alphabet::Gsm7 => {
            if udl > MAX_UD_SEPTETS {
                return Err(PduError::Invalid {
                    field: "TP-UDL",
                    offset: udl_offset,
                    reason: format!("{udl} septets, at most {MAX_UD_SEPTETS} fit in an SMS"),
                });
            }
            (udl * 7).div_ceil(8)
        }
        Alphabet::Data8 | Alphabet::Ucs2 => {
            if udl > MAX_UD_OCTETS {
                return Err(PduError::Invalid {
                    field: "TP-UDL",
                    offset: udl_offset,
                    reason: format!("{udl} octets, at most {MAX_UD_OCTETS} fit in an SMS"),
                });
            }
            udl
        }
    };
    let ud_offset = r.offset();
    let ud = r.take(octets, "TP-UD")?;
    let (concat, header_octets) = if udhi {
        let udhl = usize::from(ud.first().copied().ok_or_else(|| PduError::Invalid {
            field: "TP-UDHL",
            offset: ud_offset,
            reason: "TP-UDHI is set but the user data is empty".to_string(),
        })?);
        let header = ud.get(1..1 + udhl).ok_or_else(|| PduError::Invalid {
            field: "TP-UDHL",
            offset: ud_offset,
            reason: format!(
                "header of {udhl} octets does not fit in {} octets of user data",
                ud.len()
            ),
        })?;
        (parse_udh(header, ud_offset + 1)?, 1 + udhl)
    } else {
        (None, 0)
    };
    let body_offset = ud_offset + header_octets;
    let body = ud.get(header_octets..).unwrap_or(&[]);
    let (text, data) = match alphabet {
        Alphabet::Gsm7 => {
            let header_bits = header_octets * 8;
            let header_septets = header_bits.div_ceil(7);
            let fill = u8::try_from(header_septets * 7 - header_bits).unwrap_or(0);
            let count = udl
                .checked_sub(header_septets)
                .ok_or_else(|| PduError::Invalid {
                    field: "TP-UDL",
                    offset: udl_offset,
                    reason: format!(
                        "{udl} septets cannot hold a {header_octets}-octet user data header"
                    ),
                })?;
            let septets = gsm7::unpack(body, fill, count);
            (gsm7::decode(&septets), septets)
        }
        Alphabet::Ucs2 => (decode_ucs2(body, body_offset)?, body.to_vec()),
        Alphabet::Data8 => (String::new(), body.to_vec()),
    };
    Ok(UserData { concat, text, data })
}

/// The octets after the user data TP-UDL declares. Real networks and modems
/// deliver PDUs that run past TP-UDL (the modem's declared length is longer
/// than the user data); like Gammu and ModemManager the message is decoded
/// by TP-UDL and the extra octets are handed back to be reported, never a
/// reason to drop it. `FF` filler alone is no extra: a SIM record (EF_SMS,
/// TS 31.102 §4.2.25) pads the TPDU with `FF` up to 175 octets, and some
/// modems hand the whole record out.
fn rest_after_user_data(r: &mut Reader<'_>) -> Vec<u8> {
    let rest = r.take(r.remaining(), "trailing octets").unwrap_or(&[]);
    if rest.iter().all(|&b| b == 0xFF) {
        Vec::new()
    } else {
        rest.to_vec()
    }
}

// ------------------------------------------------------------ validity period

/// TP-VP relative format (TS 23.040 §9.2.3.12.1) to minutes.
pub(crate) fn vp_to_minutes(vp: u8) -> u32 {
    let v = u32::from(vp);
    match vp {
        0..=143 => (v + 1) * 5,
        144..=167 => 12 * 60 + (v - 143) * 30,
        168..=196 => (v - 166) * 24 * 60,
        _ => (v - 192) * 7 * 24 * 60,
    }
}

/// Minutes to the smallest TP-VP relative value covering them (capped at 63 weeks).
pub(crate) fn minutes_to_vp(minutes: u32) -> u8 {
    let v = if minutes <= 720 {
        minutes.div_ceil(5).saturating_sub(1)
    } else if minutes <= 1440 {
        143 + (minutes - 720).div_ceil(30)
    } else if minutes <= 30 * 1440 {
        166 + minutes.div_ceil(1440)
    } else {
        192 + minutes.div_ceil(7 * 1440)
    };
    u8::try_from(v).unwrap_or(255)
}

// ----------------------------------------------------------------- decoding

pub(crate) fn decode(bytes: &[u8], direction: Direction, with_smsc: bool) -> Result<Pdu, PduError> {
    let mut r = Reader::new(bytes);
    let smsc = if with_smsc { read_smsc(&mut r)? } else { None };
    let fo_offset = r.offset();
    let fo = r.u8("first octet")?;
    match (direction, fo & 0x03) {
        // 0b11 is reserved and shall be processed as SMS-DELIVER (TS 23.040 §9.2.3.1)
        (Direction::MobileTerminated, 0b00 | 0b11) => {
            decode_deliver(&mut r, smsc, fo).map(Pdu::Deliver)
        }
        (Direction::MobileTerminated, 0b10) => {
            decode_status_report(&mut r, smsc).map(Pdu::StatusReport)
        }
        (Direction::MobileOriginated, 0b01) => decode_submit(&mut r, smsc, fo).map(Pdu::Submit),
        (dir, mti) => Err(PduError::Invalid {
            field: "TP-MTI",
            offset: fo_offset,
            reason: format!(
                "message type {mti} ({}) is not supported for {dir:?}",
                match (dir, mti) {
                    (Direction::MobileTerminated, 1) =>
                        "SMS-SUBMIT-REPORT, or an SMS-SUBMIT stored in the SIM: \
                         decode messages listed as sent/unsent as MobileOriginated",
                    (Direction::MobileOriginated, 0) => "SMS-DELIVER-REPORT",
                    (Direction::MobileOriginated, 2) => "SMS-COMMAND",
                    _ => "reserved",
                }
            ),
        }),
    }
}

fn decode_deliver(r: &mut Reader<'_>, smsc: Option<Address>, fo: u8) -> Result<Deliver, PduError> {
    let sender = read_address(r, "TP-OA")?;
    let pid = r.u8("TP-PID")?;
    let dcs = r.u8("TP-DCS")?;
    let timestamp = read_timestamp(r, "TP-SCTS")?;
    let info = dcs_info(dcs);
    let alphabet = if info.compressed {
        Alphabet::Data8
    } else {
        info.alphabet
    };
    let ud = read_user_data(r, fo & 0x40 != 0, alphabet)?;
    let extra_octets = rest_after_user_data(r);
    Ok(Deliver {
        smsc,
        sender,
        timestamp,
        pid,
        dcs,
        alphabet,
        class: info.class,
        concat: ud.concat,
        text: ud.text,
        data: ud.data,
        status_report_indication: fo & 0x20 != 0,
        extra_octets,
    })
}

fn decode_submit(r: &mut Reader<'_>, smsc: Option<Address>, fo: u8) -> Result<Submit, PduError> {
    let reference = r.u8("TP-MR")?;
    let destination = read_address(r, "TP-DA")?;
    let _pid = r.u8("TP-PID")?;
    let dcs = r.u8("TP-DCS")?;
    let validity_minutes = match (fo >> 3) & 0x03 {
        0b10 => Some(vp_to_minutes(r.u8("TP-VP")?)),
        0b00 => None,
        // enhanced (01) and absolute (11) formats: 7 octets, not interpreted
        _ => {
            r.take(7, "TP-VP")?;
            None
        }
    };
    let info = dcs_info(dcs);
    let alphabet = if info.compressed {
        Alphabet::Data8
    } else {
        info.alphabet
    };
    let ud = read_user_data(r, fo & 0x40 != 0, alphabet)?;
    let extra_octets = rest_after_user_data(r);
    Ok(Submit {
        smsc,
        reference,
        destination,
        status_report_request: fo & 0x20 != 0,
        dcs,
        alphabet,
        concat: ud.concat,
        text: ud.text,
        data: ud.data,
        validity_minutes,
        extra_octets,
    })
}

fn decode_status_report(
    r: &mut Reader<'_>,
    smsc: Option<Address>,
) -> Result<StatusReport, PduError> {
    let reference = r.u8("TP-MR")?;
    let recipient = read_address(r, "TP-RA")?;
    let service_centre_time = read_timestamp(r, "TP-SCTS")?;
    let discharge_time = read_timestamp(r, "TP-DT")?;
    let status = r.u8("TP-ST")?;
    // Optional TP-PI, TP-PID, TP-DCS, TP-UD may follow; they are not interpreted.
    Ok(StatusReport {
        smsc,
        reference,
        recipient,
        service_centre_time,
        discharge_time,
        status,
    })
}

// ----------------------------------------------------------------- encoding

/// The text of one part, already in its alphabet's units.
enum PartBody {
    Septets(Vec<u8>),
    Ucs2(Vec<u8>),
}

/// Splits text into part bodies: one part if it fits in a single SMS, else
/// parts that leave room for the concatenation header, never splitting a
/// character (an escape sequence or a surrogate pair).
fn split(text: &str, force_ucs2: bool, reference: u16) -> Result<Vec<PartBody>, PduError> {
    let wide_ref = reference > 255;
    // Every character takes at least one septet or UTF-16 unit, and a part
    // holds at most 160 of either: refuse hopeless texts before converting.
    let max_chars = 255 * MAX_UD_SEPTETS;
    if text.len() / 4 > max_chars {
        return Err(PduError::TooLong {
            parts: estimate_parts(text.len() / 4, MAX_UD_SEPTETS),
        });
    }
    let septets = if force_ucs2 { None } else { gsm7::encode(text) };
    let mut parts = Vec::new();
    if let Some(all) = septets {
        if all.len() <= MAX_UD_SEPTETS {
            return Ok(vec![PartBody::Septets(all)]);
        }
        let limit = if wide_ref { 152 } else { 153 };
        let mut current = Vec::with_capacity(limit);
        for c in text.chars() {
            let need = gsm7::char_septets(c).unwrap_or(1);
            if current.len() + need > limit {
                parts.push(PartBody::Septets(std::mem::take(&mut current)));
                if parts.len() > 255 {
                    return Err(PduError::TooLong {
                        parts: estimate_parts(all.len(), limit),
                    });
                }
            }
            let _ = gsm7::push_char(&mut current, c);
        }
        if !current.is_empty() {
            parts.push(PartBody::Septets(current));
        }
    } else {
        let units = text.encode_utf16().count();
        if units <= MAX_UD_OCTETS / 2 {
            let bytes = text.encode_utf16().flat_map(u16::to_be_bytes).collect();
            return Ok(vec![PartBody::Ucs2(bytes)]);
        }
        let limit_units = if wide_ref { 66 } else { 67 };
        let mut current: Vec<u8> = Vec::with_capacity(limit_units * 2);
        let mut buf = [0u16; 2];
        for c in text.chars() {
            let encoded = c.encode_utf16(&mut buf);
            if current.len() / 2 + encoded.len() > limit_units {
                parts.push(PartBody::Ucs2(std::mem::take(&mut current)));
                if parts.len() > 255 {
                    return Err(PduError::TooLong {
                        parts: estimate_parts(units, limit_units),
                    });
                }
            }
            for u in encoded.iter() {
                current.extend_from_slice(&u.to_be_bytes());
            }
        }
        if !current.is_empty() {
            parts.push(PartBody::Ucs2(current));
        }
    }
    if parts.len() > 255 {
        return Err(PduError::TooLong { parts: parts.len() });
    }
    Ok(parts)
}

fn estimate_parts(units: usize, limit: usize) -> usize {
    units.div_ceil(limit.max(1))
}

/// Builds TP-UDL and TP-UD for one part; returns (udhi, dcs, udl + ud octets).
fn user_data(body: &PartBody, concat: Option<Concat>) -> (bool, u8, Vec<u8>) {
    let header: Vec<u8> = match concat {
        None => Vec::new(),
        Some(c) => match u8::try_from(c.reference) {
            Ok(r8) => vec![0x05, 0x00, 0x03, r8, c.total, c.seq],
            Err(_) => {
                let [hi, lo] = c.reference.to_be_bytes();
                vec![0x06, 0x08, 0x04, hi, lo, c.total, c.seq]
            }
        },
    };
    let udhi = !header.is_empty();
    match body {
        PartBody::Septets(septets) => {
            let header_bits = header.len() * 8;
            let header_septets = header_bits.div_ceil(7);
            let fill = u8::try_from(header_septets * 7 - header_bits).unwrap_or(0);
            let udl = header_septets + septets.len();
            let mut out = Vec::with_capacity(1 + MAX_UD_OCTETS);
            out.push(u8::try_from(udl).unwrap_or(0));
            out.extend_from_slice(&header);
            out.extend_from_slice(&gsm7::pack(septets, fill));
            (udhi, 0x00, out)
        }
        PartBody::Ucs2(bytes) => {
            let udl = header.len() + bytes.len();
            let mut out = Vec::with_capacity(1 + udl);
            out.push(u8::try_from(udl).unwrap_or(0));
            out.extend_from_slice(&header);
            out.extend_from_slice(bytes);
            (udhi, 0x08, out)
        }
    }
}

fn concat_for(reference: u16, total: usize, index: usize) -> Option<Concat> {
    (total > 1).then(|| Concat {
        reference,
        total: u8::try_from(total).unwrap_or(255),
        seq: u8::try_from(index + 1).unwrap_or(255),
    })
}

fn with_empty_smsc(tpdu: Vec<u8>) -> EncodedPart {
    with_smsc_block(&[0x00], tpdu)
}

fn with_smsc_block(block: &[u8], tpdu: Vec<u8>) -> EncodedPart {
    let tpdu_len = tpdu.len();
    let mut bytes = Vec::with_capacity(block.len() + tpdu_len);
    bytes.extend_from_slice(block);
    bytes.extend_from_slice(&tpdu);
    EncodedPart { bytes, tpdu_len }
}

/// The SMSC information block: length in octets (type + digits), type, digits.
fn smsc_block(smsc: Option<&Address>) -> Result<Vec<u8>, PduError> {
    let Some(addr) = smsc else {
        return Ok(vec![0x00]);
    };
    if matches!(addr.kind, AddressKind::Alphanumeric) {
        return Err(address_error(
            &addr.value,
            "an SMSC address must be a number",
        ));
    }
    let field = encode_address(addr)?;
    // encode_address gives [semi-octets, type, digits...]; the SMSC block
    // counts octets instead (type + digits).
    let rest = field.get(1..).unwrap_or(&[]);
    let mut out = Vec::with_capacity(1 + rest.len());
    out.push(u8::try_from(rest.len()).unwrap_or(0));
    out.extend_from_slice(rest);
    Ok(out)
}

pub(crate) fn encode_submit(
    to: &Address,
    text: &str,
    opts: &SubmitOptions,
) -> Result<Vec<EncodedPart>, PduError> {
    let da = encode_address(to)?;
    let smsc = smsc_block(opts.smsc.as_ref())?;
    let vp = opts
        .validity_octet
        .or(opts.validity_minutes.map(minutes_to_vp));
    let bodies = split(text, opts.force_ucs2, opts.concat_reference)?;
    let total = bodies.len();
    let mut out = Vec::with_capacity(total);
    for (i, body) in bodies.iter().enumerate() {
        let (udhi, dcs, ud) = user_data(body, concat_for(opts.concat_reference, total, i));
        let mut fo = 0x01;
        if vp.is_some() {
            fo |= 0x10;
        }
        if opts.status_report {
            fo |= 0x20;
        }
        if udhi {
            fo |= 0x40;
        }
        let mut tpdu = Vec::with_capacity(4 + da.len() + ud.len());
        tpdu.push(fo);
        tpdu.push(
            opts.first_reference
                .wrapping_add(u8::try_from(i).unwrap_or(0)),
        );
        tpdu.extend_from_slice(&da);
        tpdu.push(0x00); // TP-PID: plain short message
        tpdu.push(dcs);
        if let Some(vp) = vp {
            tpdu.push(vp);
        }
        tpdu.extend_from_slice(&ud);
        out.push(with_smsc_block(&smsc, tpdu));
    }
    Ok(out)
}

pub(crate) fn encode_deliver(
    from: &Address,
    text: &str,
    ts: &Timestamp,
    concat_reference: u16,
    status_report_indication: bool,
) -> Result<Vec<EncodedPart>, PduError> {
    let oa = encode_address(from)?;
    let scts = encode_timestamp(ts)?;
    let bodies = split(text, false, concat_reference)?;
    let total = bodies.len();
    let mut out = Vec::with_capacity(total);
    for (i, body) in bodies.iter().enumerate() {
        let (udhi, dcs, ud) = user_data(body, concat_for(concat_reference, total, i));
        let mut fo = 0x04; // SMS-DELIVER, TP-MMS: no more messages waiting
        if status_report_indication {
            fo |= 0x20;
        }
        if udhi {
            fo |= 0x40;
        }
        let mut tpdu = Vec::with_capacity(10 + oa.len() + ud.len());
        tpdu.push(fo);
        tpdu.extend_from_slice(&oa);
        tpdu.push(0x00);
        tpdu.push(dcs);
        tpdu.extend_from_slice(&scts);
        tpdu.extend_from_slice(&ud);
        out.push(with_empty_smsc(tpdu));
    }
    Ok(out)
}

pub(crate) fn encode_status_report(
    reference: u8,
    recipient: &Address,
    sct: &Timestamp,
    discharge: &Timestamp,
    status: u8,
) -> Result<EncodedPart, PduError> {
    let ra = encode_address(recipient)?;
    let mut tpdu = Vec::with_capacity(17 + ra.len());
    tpdu.push(0x06); // SMS-STATUS-REPORT, TP-MMS: no more messages waiting
    tpdu.push(reference);
    tpdu.extend_from_slice(&ra);
    tpdu.extend_from_slice(&encode_timestamp(sct)?);
    tpdu.extend_from_slice(&encode_timestamp(discharge)?);
    tpdu.push(status);
    Ok(with_empty_smsc(tpdu))
}

/// Parses hex text (surrounding whitespace ignored).
pub(crate) fn parse_hex(hex: &str) -> Result<Vec<u8>, PduError> {
    let t = hex.trim();
    let lead = hex.len() - hex.trim_start().len();
    if !t.len().is_multiple_of(2) {
        return Err(PduError::Hex {
            position: lead + t.len(),
            reason: "odd number of hex digits",
        });
    }
    let mut out = Vec::with_capacity(t.len() / 2);
    let mut high = 0u8;
    for (i, c) in t.chars().enumerate() {
        let v = c.to_digit(16).ok_or_else(|| PduError::Hex {
            position: lead + i,
            reason: "not a hex digit",
        })?;
        let v = u8::try_from(v).unwrap_or(0);
        if i % 2 == 0 {
            high = v;
        } else {
            out.push((high << 4) | v);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_validity_period_steps() {
        // TS 23.040 §9.2.3.12.1: 5-minute, 30-minute, day and week steps
        for (vp, minutes) in [
            (0u8, 5u32),
            (11, 60),
            (143, 720),
            (144, 750),
            (167, 1440),
            (168, 2 * 1440),
            (196, 30 * 1440),
            (197, 5 * 7 * 1440),
            (255, 63 * 7 * 1440),
        ] {
            assert_eq!(vp_to_minutes(vp), minutes, "vp {vp}");
            assert_eq!(minutes_to_vp(minutes), vp, "{minutes} minutes");
        }
        // in-between values round up to the next step
        assert_eq!(minutes_to_vp(0), 0);
        assert_eq!(minutes_to_vp(6), 1);
        assert_eq!(minutes_to_vp(721), 144);
        assert_eq!(minutes_to_vp(1441), 168);
        assert_eq!(minutes_to_vp(u32::MAX), 255);
    }

    #[test]
    fn time_zone_sign_bit() {
        let mut ts = Timestamp {
            year: 2026,
            month: 11,
            day: 23,
            hour: 13,
            minute: 15,
            second: 32,
            tz_quarter_hours: -14,
        };
        let raw = encode_timestamp(&ts).unwrap();
        assert_eq!(raw[6], 0x49); // "41" swapped, sign bit 0x08
        let mut r = Reader::new(&raw);
        assert_eq!(read_timestamp(&mut r, "TP-SCTS").unwrap(), ts);
        assert_eq!(ts.to_rfc3339(), "2026-11-23T13:15:32-03:30");
        ts.tz_quarter_hours = 79;
        assert_eq!(encode_timestamp(&ts).unwrap()[6], 0x97);
        ts.tz_quarter_hours = 80;
        assert!(encode_timestamp(&ts).is_err());
    }

    #[test]
    fn digits_with_filler_and_special_nibbles() {
        assert_eq!(decode_digits(&[0x21, 0xF3], 3), "123");
        assert_eq!(decode_digits(&[0xBA, 0xDC, 0xFE], 6), "*#abc");
        let addr = Address {
            kind: AddressKind::National,
            value: "*100#".to_string(),
        };
        assert_eq!(
            encode_address(&addr).unwrap(),
            vec![5, 0x81, 0x1A, 0x00, 0xFB]
        );
    }
}
