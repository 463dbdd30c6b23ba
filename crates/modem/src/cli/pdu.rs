//! `crossline-modem pdu ...`: the codec from the command line, for people
//! and for other tools. Decoding prints one flat JSON object whose keys are
//! always present (`null` when a field does not apply to the message type);
//! docs/MODEMS.md "The CLI" lists them.

use anyhow::{Context, bail};
use clap::{Subcommand, ValueEnum};
use crossline_pdu::{
    Address, Alphabet, DeliveryOutcome, Direction, Pdu, SubmitOptions, to_hex, ussd,
};
use serde::Serialize;

/// PDU codec commands.
#[derive(Subcommand)]
pub enum PduCmd {
    /// Decode a PDU (hex, with or without the SMSC block) to flat JSON.
    Decode {
        /// mt: SMS-DELIVER / SMS-STATUS-REPORT; mo: SMS-SUBMIT; auto tries both.
        #[arg(long, value_enum, default_value_t = DirectionArg::Auto)]
        direction: DirectionArg,
        /// Whether the hex starts with the SMSC information block (`+CMT`,
        /// `AT+CMGR`, `AT+CMGL` and `AT+CMGS` have one); auto tries both.
        #[arg(long, value_enum, default_value_t = SmscBlockArg::Auto)]
        smsc_block: SmscBlockArg,
        hex: String,
    },
    /// Encode an SMS-SUBMIT to JSON: one entry per part with hex and AT+CMGS length.
    Encode {
        #[arg(long)]
        to: String,
        /// Request a status report.
        #[arg(long)]
        status_report: bool,
        /// gsm7 (fails if a character is outside the GSM 7-bit alphabet),
        /// ucs2, or auto (GSM 7-bit when it can, else UCS2).
        #[arg(long, value_enum, default_value_t = CodingArg::Auto)]
        coding: CodingArg,
        /// none, minutes (e.g. 1440, rounded up to what TP-VP can express),
        /// or the raw relative TP-VP octet as 0xA7 or vp:167.
        #[arg(long, default_value = "none")]
        validity: String,
        /// SMSC number to write in the SMSC block (default: 00, the SIM's SMSC).
        #[arg(long)]
        smsc: Option<String>,
        text: String,
    },
    /// Decode a USSD payload (as in `+CUSD: <m>,"<data>",<dcs>`) to JSON.
    UssdDecode {
        /// The data coding scheme: decimal (15) or hex (0x0F).
        #[arg(long)]
        dcs: String,
        /// How the data is written; auto guesses from the DCS and the data.
        #[arg(long, value_enum, default_value_t = UssdFormatArg::Auto)]
        format: UssdFormatArg,
        data: String,
    },
}

/// `--direction` of `pdu decode`.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DirectionArg {
    Auto,
    Mt,
    Mo,
}

/// `--smsc-block` of `pdu decode`.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SmscBlockArg {
    Auto,
    Yes,
    No,
}

/// `--coding` of `pdu encode`.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CodingArg {
    Auto,
    Gsm7,
    Ucs2,
}

/// `--format` of `pdu ussd-decode`.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum UssdFormatArg {
    Auto,
    /// Hex of packed GSM 7-bit octets (Huawei).
    Gsm7Packed,
    /// Hex of UTF-16 units (a modem in AT+CSCS="UCS2").
    Ucs2,
    /// Hex of 8-bit data.
    Data8,
    /// The text itself.
    Text,
}

/// A concatenation header, flat.
#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct ConcatJson {
    /// Reference shared by all parts.
    #[serde(rename = "ref")]
    pub reference: u16,
    /// This part, from 1.
    pub part: u8,
    /// Number of parts.
    pub total: u8,
}

/// What `pdu decode` prints. Every key is always there; `null` when it does
/// not apply to the message type.
#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct PduJson {
    /// `deliver`, `submit` or `status-report`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// SMSC from the information block (`null` when absent or `00`).
    pub smsc: Option<String>,
    /// DELIVER: the sender.
    pub from: Option<String>,
    /// SUBMIT: the destination; STATUS-REPORT: the recipient of the original message.
    pub to: Option<String>,
    /// DELIVER, SUBMIT: the decoded text (empty for 8-bit data).
    pub text: Option<String>,
    /// `gsm7`, `ucs2` or `data8`.
    pub coding: Option<&'static str>,
    /// TP-DCS as received.
    pub dcs: Option<u8>,
    /// Message class 0-3 if the DCS gives one.
    pub class: Option<u8>,
    /// DELIVER, STATUS-REPORT: the service-centre time stamp, RFC 3339 with
    /// the offset the network gave.
    pub timestamp: Option<String>,
    /// STATUS-REPORT: when the final status was reached (TP-DT), RFC 3339.
    pub discharge_time: Option<String>,
    pub concat: Option<ConcatJson>,
    /// The user data after the header: the octets for 8-bit data and UCS2,
    /// one octet per septet for GSM 7-bit.
    pub data_hex: Option<String>,
    /// SUBMIT, STATUS-REPORT: TP-MR.
    pub message_reference: Option<u8>,
    /// STATUS-REPORT: TP-ST.
    pub status: Option<u8>,
    /// STATUS-REPORT: `delivered` (TP-ST 0x00-0x1F), `pending` (0x20-0x3F) or `failed`.
    pub outcome: Option<&'static str>,
    /// DELIVER: TP-SRI; SUBMIT: TP-SRR.
    pub status_report: Option<bool>,
    /// SUBMIT: relative validity period in minutes.
    pub validity_minutes: Option<u32>,
    /// Octets after the user data that TP-UDL does not cover (decoded by
    /// TP-UDL anyway).
    pub extra_hex: Option<String>,
    /// What a field engineer should know (octets past TP-UDL).
    pub warnings: Vec<String>,
}

fn coding(a: Alphabet) -> &'static str {
    match a {
        Alphabet::Gsm7 => "gsm7",
        Alphabet::Ucs2 => "ucs2",
        Alphabet::Data8 => "data8",
    }
}

fn hex_or_none(bytes: &[u8]) -> Option<String> {
    (!bytes.is_empty()).then(|| to_hex(bytes))
}

impl PduJson {
    /// The flat view of a decoded PDU.
    pub fn new(pdu: &Pdu) -> PduJson {
        let empty = PduJson {
            kind: "",
            smsc: None,
            from: None,
            to: None,
            text: None,
            coding: None,
            dcs: None,
            class: None,
            timestamp: None,
            discharge_time: None,
            concat: None,
            data_hex: None,
            message_reference: None,
            status: None,
            outcome: None,
            status_report: None,
            validity_minutes: None,
            extra_hex: hex_or_none(pdu.extra_octets()),
            warnings: pdu.warnings(),
        };
        let concat = |c: Option<crossline_pdu::Concat>| {
            c.map(|c| ConcatJson {
                reference: c.reference,
                part: c.seq,
                total: c.total,
            })
        };
        match pdu {
            Pdu::Deliver(d) => PduJson {
                kind: "deliver",
                smsc: d.smsc.as_ref().map(|a| a.value.clone()),
                from: Some(d.sender.value.clone()),
                text: Some(d.text.clone()),
                coding: Some(coding(d.alphabet)),
                dcs: Some(d.dcs),
                class: d.class,
                timestamp: Some(d.timestamp.to_rfc3339()),
                concat: concat(d.concat),
                data_hex: Some(to_hex(&d.data)),
                status_report: Some(d.status_report_indication),
                ..empty
            },
            Pdu::Submit(s) => PduJson {
                kind: "submit",
                smsc: s.smsc.as_ref().map(|a| a.value.clone()),
                to: Some(s.destination.value.clone()),
                text: Some(s.text.clone()),
                coding: Some(coding(s.alphabet)),
                dcs: Some(s.dcs),
                concat: concat(s.concat),
                data_hex: Some(to_hex(&s.data)),
                message_reference: Some(s.reference),
                status_report: Some(s.status_report_request),
                validity_minutes: s.validity_minutes,
                ..empty
            },
            Pdu::StatusReport(r) => PduJson {
                kind: "status-report",
                smsc: r.smsc.as_ref().map(|a| a.value.clone()),
                to: Some(r.recipient.value.clone()),
                timestamp: Some(r.service_centre_time.to_rfc3339()),
                discharge_time: Some(r.discharge_time.to_rfc3339()),
                message_reference: Some(r.reference),
                status: Some(r.status),
                outcome: Some(match r.outcome() {
                    DeliveryOutcome::Delivered => "delivered",
                    DeliveryOutcome::Pending => "pending",
                    DeliveryOutcome::Failed => "failed",
                }),
                ..empty
            },
        }
    }
}

/// Decodes `hex` the ways the arguments allow; the first reading that uses
/// every octet wins, else the first that decodes at all (its extra octets
/// are reported).
pub fn decode(
    hex: &str,
    direction: DirectionArg,
    smsc_block: SmscBlockArg,
) -> anyhow::Result<PduJson> {
    let dirs: &[Direction] = match direction {
        DirectionArg::Auto => &[Direction::MobileTerminated, Direction::MobileOriginated],
        DirectionArg::Mt => &[Direction::MobileTerminated],
        DirectionArg::Mo => &[Direction::MobileOriginated],
    };
    let blocks: &[bool] = match smsc_block {
        SmscBlockArg::Auto => &[true, false],
        SmscBlockArg::Yes => &[true],
        SmscBlockArg::No => &[false],
    };
    let mut first_ok = None;
    let mut first_err = None;
    for &with_smsc in blocks {
        for &dir in dirs {
            match crossline_pdu::decode_hex(hex, dir, with_smsc) {
                Ok(p) if p.extra_octets().is_empty() => return Ok(PduJson::new(&p)),
                Ok(p) => {
                    first_ok.get_or_insert(p);
                }
                Err(e) => {
                    first_err.get_or_insert(e);
                }
            }
        }
    }
    match (first_ok, first_err) {
        (Some(p), _) => Ok(PduJson::new(&p)),
        (None, Some(e)) => bail!("cannot decode the PDU: {e}"),
        (None, None) => bail!("cannot decode the PDU"),
    }
}

/// `--validity`: none, minutes, or the raw TP-VP octet (`0xA7`, `vp:167`).
fn parse_validity(s: &str) -> anyhow::Result<(Option<u32>, Option<u8>)> {
    let t = s.trim();
    let bad = || {
        format!(
            "--validity {s:?}: use none, a number of minutes (1440), or the raw TP-VP octet (0xA7 or vp:167)"
        )
    };
    if t.eq_ignore_ascii_case("none") {
        return Ok((None, None));
    }
    if let Some(h) = t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        let vp = u8::from_str_radix(h, 16).with_context(bad)?;
        return Ok((None, Some(vp)));
    }
    if let Some(d) = t.strip_prefix("vp:") {
        let vp = d.parse::<u8>().with_context(bad)?;
        return Ok((None, Some(vp)));
    }
    let minutes = t.parse::<u32>().with_context(bad)?;
    if minutes == 0 {
        bail!("{}", bad());
    }
    Ok((Some(minutes), None))
}

/// `pdu encode`: the parts as JSON values.
pub fn encode(
    to: &str,
    text: &str,
    status_report: bool,
    coding_arg: CodingArg,
    validity: &str,
    smsc: Option<&str>,
) -> anyhow::Result<Vec<serde_json::Value>> {
    let addr = Address::parse(to).with_context(|| format!("bad recipient {to:?}"))?;
    let smsc = smsc
        .map(|s| Address::parse(s).with_context(|| format!("bad --smsc {s:?}")))
        .transpose()?;
    if coding_arg == CodingArg::Gsm7 && crossline_pdu::gsm7::encode(text).is_none() {
        bail!(
            "--coding gsm7: the text has characters outside the GSM 7-bit alphabet; use --coding ucs2 or auto"
        );
    }
    let (validity_minutes, validity_octet) = parse_validity(validity)?;
    let opts = SubmitOptions {
        status_report,
        concat_reference: 1,
        force_ucs2: coding_arg == CodingArg::Ucs2,
        validity_minutes,
        validity_octet,
        smsc,
        ..SubmitOptions::default()
    };
    let parts = crossline_pdu::encode_submit(&addr, text, &opts)?;
    let out = parts
        .iter()
        .map(|p| {
            let decoded = crossline_pdu::decode(&p.bytes, Direction::MobileOriginated, true)
                .ok()
                .map(|d| PduJson::new(&d));
            serde_json::json!({
                "hex": p.hex(),
                "tpdu_len": p.tpdu_len,
                "at": format!("AT+CMGS={}", p.tpdu_len),
                "coding": decoded.as_ref().and_then(|d| d.coding),
                "validity_minutes": decoded.as_ref().and_then(|d| d.validity_minutes),
            })
        })
        .collect();
    Ok(out)
}

/// `pdu ussd-decode`: the decoded payload as a JSON value.
pub fn ussd_decode(
    dcs: &str,
    format: UssdFormatArg,
    data: &str,
) -> anyhow::Result<serde_json::Value> {
    let t = dcs.trim();
    let dcs_value = match t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        Some(h) => u8::from_str_radix(h, 16),
        None => t.parse::<u8>(),
    }
    .with_context(|| format!("--dcs {dcs:?}: give a number 0-255 (15) or hex (0x0F)"))?;
    let format = match format {
        UssdFormatArg::Auto => ussd::detect(dcs_value, data),
        UssdFormatArg::Gsm7Packed => ussd::PayloadFormat::PackedGsm7Hex,
        UssdFormatArg::Ucs2 => ussd::PayloadFormat::Ucs2Hex,
        UssdFormatArg::Data8 => ussd::PayloadFormat::Data8Hex,
        UssdFormatArg::Text => ussd::PayloadFormat::Text,
    };
    let text = ussd::decode_as(dcs_value, data, format)
        .with_context(|| format!("cannot decode the USSD data with DCS {dcs_value}"))?;
    let format_name = match format {
        ussd::PayloadFormat::PackedGsm7Hex => "gsm7-packed",
        ussd::PayloadFormat::Ucs2Hex => "ucs2",
        ussd::PayloadFormat::Data8Hex => "data8",
        ussd::PayloadFormat::Text | ussd::PayloadFormat::Auto => "text",
    };
    Ok(serde_json::json!({
        "dcs": dcs_value,
        "coding": coding(ussd::alphabet(dcs_value)),
        "format": format_name,
        "text": text,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validity_forms() {
        assert_eq!(parse_validity("none").unwrap(), (None, None));
        assert_eq!(parse_validity("1440").unwrap(), (Some(1440), None));
        assert_eq!(parse_validity("0xA7").unwrap(), (None, Some(0xA7)));
        assert_eq!(parse_validity("vp:167").unwrap(), (None, Some(167)));
        for bad in ["0", "-5", "0x1FF", "vp:300", "a day"] {
            let e = parse_validity(bad).unwrap_err().to_string();
            assert!(e.contains("use none"), "{bad}: {e}");
        }
    }
}
