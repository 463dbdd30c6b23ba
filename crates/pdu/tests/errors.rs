//! Malformed input gives errors that say what was wrong and at which octet.

// Test helpers outside #[test] functions may unwrap and panic too.
#![allow(clippy::unwrap_used, clippy::panic)]

use crossline_pdu::*;

const GOOD: &str = "07917283010010F5040BC87238880900F10000993092516195800AE8329BFD4697D9EC37";

fn err(hex: &str) -> PduError {
    decode_hex(hex, Direction::MobileTerminated, true).unwrap_err()
}

#[test]
fn every_truncation_of_a_good_pdu_is_a_truncation_error() {
    let bytes = {
        let Pdu::Deliver(_) = decode_hex(GOOD, Direction::MobileTerminated, true).unwrap() else {
            panic!()
        };
        (0..GOOD.len() / 2)
            .map(|i| u8::from_str_radix(&GOOD[2 * i..2 * i + 2], 16).unwrap())
            .collect::<Vec<u8>>()
    };
    for cut in 0..bytes.len() {
        let e = decode(&bytes[..cut], Direction::MobileTerminated, true).unwrap_err();
        match e {
            PduError::Truncated { offset, len, .. } => {
                assert_eq!(len, cut);
                assert!(offset >= cut, "cut {cut}: {e}");
            }
            other => panic!("cut at {cut}: unexpected {other}"),
        }
    }
}

#[test]
fn truncated_user_data_names_the_field_and_offset() {
    let e = err(&GOOD[..GOOD.len() - 4]);
    assert_eq!(
        e.to_string(),
        "PDU truncated: TP-UD needs octet 35 but the PDU has only 34 octets"
    );
}

#[test]
fn octets_past_tp_udl_are_decoded_by_tp_udl_and_reported() {
    // A network that delivers more octets than TP-UDL declares: gammu and
    // ModemManager read the message by TP-UDL; so does the codec, and it
    // says what was left over instead of refusing the message.
    let Pdu::Deliver(d) =
        decode_hex(&format!("{GOOD}0000"), Direction::MobileTerminated, true).unwrap()
    else {
        panic!("not a DELIVER")
    };
    assert_eq!(d.text, "hellohello");
    assert_eq!(d.extra_octets, vec![0, 0]);
    let pdu = Pdu::Deliver(d);
    assert_eq!(
        pdu.warnings(),
        vec![
            "2 octet(s) after the user data that TP-UDL does not cover (0000); \
             decoded by TP-UDL, the extra octets are ignored"
                .to_string()
        ]
    );
    let json = serde_json::to_value(&pdu).unwrap();
    assert_eq!(json["Deliver"]["extra_octets"], serde_json::json!([0, 0]));
    // a well-formed PDU has none, and says nothing
    let clean = decode_hex(GOOD, Direction::MobileTerminated, true).unwrap();
    assert!(clean.extra_octets().is_empty());
    assert!(clean.warnings().is_empty());
}

#[test]
fn sim_record_ff_filler_after_the_user_data_is_accepted() {
    // Some modems return the whole 176-octet EF_SMS record, padded with FF.
    let padded = format!("{GOOD}{}", "FF".repeat(175 - GOOD.len() / 2));
    let Pdu::Deliver(d) = decode_hex(&padded, Direction::MobileTerminated, true).unwrap() else {
        panic!("not a DELIVER")
    };
    assert_eq!(d.text, "hellohello");
    assert!(d.extra_octets.is_empty(), "filler is no extra");
    // filler mixed with anything else is reported, the message still decodes
    let Pdu::Deliver(d) =
        decode_hex(&format!("{GOOD}FF00FF"), Direction::MobileTerminated, true).unwrap()
    else {
        panic!("not a DELIVER")
    };
    assert_eq!(d.text, "hellohello");
    assert_eq!(d.extra_octets, vec![0xFF, 0x00, 0xFF]);
}

#[test]
fn bad_timestamp_digit_is_invalid_at_its_octet() {
    // month octet 0x30 -> "03" is fine; 0x3A is not decimal
    let bad = GOOD.replacen("99309251619580", "993A9251619580", 1);
    let e = err(&bad);
    assert_eq!(
        e,
        PduError::Invalid {
            field: "TP-SCTS",
            offset: 20,
            reason: "octet 3A is not two decimal semi-octets".to_string()
        }
    );
    // month 13
    let e = err(&GOOD.replacen("99309251619580", "99319251619580", 1));
    assert!(e.to_string().contains("month 13 out of range"), "{e}");
}

#[test]
fn user_data_length_beyond_an_sms_is_invalid() {
    let bad = GOOD.replacen("800AE832", "80A1E832", 1);
    let e = err(&bad);
    assert!(
        e.to_string()
            .starts_with("invalid TP-UDL at octet 26: 161 septets"),
        "{e}"
    );
}

#[test]
fn header_longer_than_user_data_is_invalid() {
    // UDHI set, UDL 2, UDHL 5
    let e = err("0040048121430000621132315123800205000000");
    assert!(e.to_string().contains("TP-UDHL"), "{e}");
    assert!(e.to_string().contains("does not fit"), "{e}");
}

#[test]
fn wrong_direction_names_the_message_type() {
    let e = decode_hex(GOOD, Direction::MobileOriginated, true).unwrap_err();
    assert!(e.to_string().contains("SMS-DELIVER-REPORT"), "{e}");
    let e = decode_hex(
        "0001000C91835010325476000005E8329BFD06",
        Direction::MobileTerminated,
        true,
    )
    .unwrap_err();
    assert!(e.to_string().contains("SMS-SUBMIT-REPORT"), "{e}");
    assert!(e.to_string().contains("as MobileOriginated"), "{e}");
}

#[test]
fn bad_hex_is_reported_with_its_position() {
    assert_eq!(
        err("07917G"),
        PduError::Hex {
            position: 5,
            reason: "not a hex digit"
        }
    );
    assert!(matches!(err("079"), PduError::Hex { .. }));
    assert!(matches!(err(""), PduError::Truncated { .. }));
    // surrounding whitespace and a trailing CR/LF from the serial line are fine
    assert!(decode_hex(&format!("  {GOOD}\r\n"), Direction::MobileTerminated, true).is_ok());
}

#[test]
fn ucs2_with_odd_length_is_invalid() {
    let e = err("0004048121430008621132315123800300410041");
    assert!(e.to_string().contains("odd number of octets"), "{e}");
}

#[test]
fn address_parsing() {
    let a = Address::parse("+380 50 123-45-67").unwrap();
    assert_eq!(a.kind, AddressKind::International);
    assert_eq!(a.to_string(), "+380501234567");
    let a = Address::parse("0501234567").unwrap();
    assert_eq!(
        (a.kind, a.value.as_str()),
        (AddressKind::National, "0501234567")
    );
    let a = Address::parse("My Bank").unwrap();
    assert_eq!(
        (a.kind, a.value.as_str()),
        (AddressKind::Alphanumeric, "My Bank")
    );
    assert!(matches!(Address::parse(""), Err(PduError::Address { .. })));
    assert!(Address::parse("+38050abc").is_err());
    assert!(Address::parse("+123456789012345678901").is_err());
    assert!(Address::parse("TwelveChars!").is_err());
    assert!(Address::parse("Банк").is_err());
    let e = Address::parse("Банк").unwrap_err();
    assert!(e.to_string().contains("outside GSM 7-bit"), "{e}");
}

#[test]
fn encoding_refuses_what_cannot_be_sent() {
    let to = Address::parse("+380501234567").unwrap();
    let huge = "x".repeat(153 * 255 + 1);
    assert!(matches!(
        encode_submit(&to, &huge, &SubmitOptions::default()),
        Err(PduError::TooLong { .. })
    ));
    assert_eq!(
        encode_submit(&to, &"x".repeat(153 * 255), &SubmitOptions::default())
            .unwrap()
            .len(),
        255
    );
    // refused before any conversion, whatever its size
    let e = encode_submit(&to, &"я".repeat(10_000_000), &SubmitOptions::default()).unwrap_err();
    assert!(e.to_string().starts_with("message too long"), "{e}");
    let bad_ts = Timestamp {
        year: 2026,
        month: 13,
        day: 1,
        hour: 0,
        minute: 0,
        second: 0,
        tz_quarter_hours: 0,
    };
    assert!(matches!(
        encode_deliver(&to, "x", &bad_ts, 0, false),
        Err(PduError::Timestamp(_))
    ));
    let bad_number = Address {
        kind: AddressKind::International,
        value: "+38x".to_string(),
    };
    assert!(encode_submit(&bad_number, "x", &SubmitOptions::default()).is_err());
}
