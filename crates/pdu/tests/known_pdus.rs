//! Known PDUs: examples from the specification literature, PDUs written by an
//! independent encoder (Gammu 1.42, `python3-gammu`'s `EncodePDU`) and PDUs
//! this crate writes that Gammu decodes to the same message.

// Test helpers outside #[test] functions may unwrap and panic too.
#![allow(clippy::unwrap_used, clippy::panic)]

use crossline_pdu::*;

fn mt(hex: &str) -> Pdu {
    decode_hex(hex, Direction::MobileTerminated, true).unwrap()
}

fn deliver(hex: &str) -> Deliver {
    match mt(hex) {
        Pdu::Deliver(d) => d,
        other => panic!("expected a DELIVER, got {other:?}"),
    }
}

fn submit(hex: &str) -> Submit {
    match decode_hex(hex, Direction::MobileOriginated, true).unwrap() {
        Pdu::Submit(s) => s,
        other => panic!("expected a SUBMIT, got {other:?}"),
    }
}

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

fn intl(v: &str) -> Address {
    Address {
        kind: AddressKind::International,
        value: v.to_string(),
    }
}

#[test]
fn classic_hellohello_deliver() {
    // The SMS-DELIVER example of the widely used "SMS and the PDU format" tutorial.
    let d = deliver("07917283010010F5040BC87238880900F10000993092516195800AE8329BFD4697D9EC37");
    assert_eq!(d.smsc, Some(intl("+27381000015")));
    assert_eq!(
        d.sender,
        Address {
            kind: AddressKind::Other { ton: 4, npi: 8 },
            value: "27838890001".to_string()
        }
    );
    assert_eq!(d.timestamp, ts(1999, 3, 29, 15, 16, 59, 8));
    assert_eq!(d.timestamp.to_rfc3339(), "1999-03-29T15:16:59+02:00");
    assert_eq!(d.text, "hellohello");
    assert_eq!(d.alphabet, Alphabet::Gsm7);
    assert_eq!(d.class, None);
    assert_eq!(d.concat, None);
    assert!(!d.status_report_indication);
}

#[test]
fn classic_hellohello_submit_with_relative_validity() {
    // Same tutorial's SMS-SUBMIT: TP-VP 0xAA = 4 days.
    let s = match decode_hex(
        "0011000B916407281553F80000AA0AE8329BFD4697D9EC37",
        Direction::MobileOriginated,
        true,
    )
    .unwrap()
    {
        Pdu::Submit(s) => s,
        other => panic!("{other:?}"),
    };
    assert_eq!(s.destination, intl("+46708251358"));
    assert_eq!(s.validity_minutes, Some(4 * 24 * 60));
    assert_eq!(s.text, "hellohello");
    assert_eq!(s.reference, 0);
    assert!(!s.status_report_request);
}

#[test]
fn how_are_you_deliver_with_negative_zero_time_zone() {
    let d = deliver("07911326040000F0040B911346610089F60000208062917314080CC8F71D14969741F977FD07");
    assert_eq!(d.smsc, Some(intl("+31624000000")));
    assert_eq!(d.sender, intl("+31641600986"));
    assert_eq!(d.timestamp, ts(2002, 8, 26, 19, 37, 41, 0));
    assert_eq!(d.text, "How are you?");
}

#[test]
fn status_report_delivered() {
    let Pdu::StatusReport(r) =
        mt("07917238010010F206D50B911326880736F4111011719551401110117195714000")
    else {
        panic!("not a status report")
    };
    assert_eq!(r.smsc, Some(intl("+27831000012")));
    assert_eq!(r.reference, 0xD5);
    assert_eq!(r.recipient, intl("+31628870634"));
    assert_eq!(r.service_centre_time, ts(2011, 1, 11, 17, 59, 15, 4));
    assert_eq!(r.discharge_time, ts(2011, 1, 11, 17, 59, 17, 4));
    assert_eq!(r.status, 0);
    assert_eq!(r.outcome(), DeliveryOutcome::Delivered);
}

#[test]
fn status_report_outcomes() {
    let sct = ts(2026, 11, 23, 13, 15, 32, 8);
    for (status, outcome) in [
        (0x00, DeliveryOutcome::Delivered),
        (0x1F, DeliveryOutcome::Delivered),
        (0x20, DeliveryOutcome::Pending),
        (0x30, DeliveryOutcome::Pending),
        (0x40, DeliveryOutcome::Failed),
        (0x46, DeliveryOutcome::Failed),
        (0x7F, DeliveryOutcome::Failed),
    ] {
        let part = encode_status_report(9, &intl("+380501234567"), &sct, &sct, status).unwrap();
        let Pdu::StatusReport(r) = decode(&part.bytes, Direction::MobileTerminated, true).unwrap()
        else {
            panic!("not a status report")
        };
        assert_eq!(r.status, status);
        assert_eq!(r.outcome(), outcome, "status {status:#04x}");
        assert_eq!(r.reference, 9);
        assert_eq!(r.smsc, None);
    }
}

#[test]
fn gammu_encoded_deliver_with_extension_characters() {
    let d = deliver(
        "0791836027000001000C918350103254760000621132315123002250797A5CD6816A9B3268C30B6F7CA00D4ABC4981362FD0A607DA50401B20",
    );
    assert_eq!(d.smsc, Some(intl("+380672000010")));
    assert_eq!(d.text, "Price: 5€ [a] {b} \\ ~ ^ |");
    // and ours is byte-identical to Gammu's for the same message
    let ours = encode_deliver(
        &intl("+380501234567"),
        "Price: 5€ [a] {b} \\ ~ ^ |",
        &ts(2026, 11, 23, 13, 15, 32, 0),
        0,
        false,
    )
    .unwrap();
    assert_eq!(
        ours.first().unwrap().hex(),
        "00000C918350103254760000621132315123002250797A5CD6816A9B3268C30B6F7CA00D4ABC4981362FD0A607DA50401B20"
            .replacen("000C", "040C", 1)
    );
}

#[test]
fn gammu_encoded_ucs2_with_emoji_and_cyrillic() {
    let d = deliver(
        "0791836027000001000C9183501032547600086211323151230016D83DDC4DD83CDFFD0020041F04400438043204560442",
    );
    assert_eq!(d.alphabet, Alphabet::Ucs2);
    assert_eq!(d.dcs, 0x08);
    assert_eq!(d.text, "👍🏽 Привіт");
}

#[test]
fn gammu_encoded_alphanumeric_sender() {
    let d = deliver("0791836027000001000ED0CB7CDA3EA787E500006211323151230002E834");
    assert_eq!(
        d.sender,
        Address {
            kind: AddressKind::Alphanumeric,
            value: "Kyivstar".to_string()
        }
    );
    assert_eq!(d.text, "hi");
}

#[test]
fn gammu_encoded_submits() {
    let s = submit("079183602700000111000A8150103254760000000FC8329BFD06014001016800221400");
    assert_eq!(
        s.destination,
        Address {
            kind: AddressKind::National,
            value: "0501234567".to_string()
        }
    );
    assert_eq!(s.text, "Hello @ £$ ¥ èé");
    assert_eq!(s.validity_minutes, Some(5));
    let s = submit("079183602700000111000C9183501032547600F000056676788E06");
    assert_eq!(s.dcs, 0xF0);
    assert_eq!(s.text, "flash");
}

#[test]
fn smsc_block_with_only_a_type_octet_is_no_smsc() {
    let d = deliver("0191040B916407281553F80000993092516195800AE8329BFD4697D9EC37");
    assert_eq!(d.smsc, None);
    assert_eq!(d.sender, intl("+46708251358"));
    assert_eq!(d.text, "hellohello");
}

#[test]
fn class_and_alphabet_from_dcs() {
    let with_dcs = |dcs: &str, ud: &str| {
        format!("0791836027000001000C9183501032547600{dcs}62113231512300{ud}")
    };
    // DCS 0x10: GSM 7-bit class 0 (flash); 0xF3: GSM 7-bit class 3
    let d = deliver(&with_dcs("10", "02E834"));
    assert_eq!(
        (d.alphabet, d.class, d.text.as_str()),
        (Alphabet::Gsm7, Some(0), "hi")
    );
    assert_eq!(deliver(&with_dcs("F3", "02E834")).class, Some(3));
    // 0x18: UCS2 class 0
    let d = deliver(&with_dcs("18", "0400680069"));
    assert_eq!(
        (d.alphabet, d.class, d.text.as_str()),
        (Alphabet::Ucs2, Some(0), "hi")
    );
    // 0xF5: 8-bit data class 1, kept raw
    let d = deliver(&with_dcs("F5", "03010203"));
    assert_eq!((d.alphabet, d.class), (Alphabet::Data8, Some(1)));
    assert_eq!(d.data, vec![1, 2, 3]);
    assert_eq!(d.text, "");
    // 0x00 with no class; reserved alphabet 0x0C is taken as GSM 7-bit
    assert_eq!(deliver(&with_dcs("0C", "02E834")).text, "hi");
}

// ---------------------------------------------------------------------------
// Our own encodings, each checked against Gammu's decoder when it was written.

const CYRILLIC_DELIVER: &str = "00040C9183501032547600086211323151238024041F04400438043204560442002C0020044F043A00200441043F0440043004320438003F";

#[test]
fn cyrillic_deliver() {
    let parts = encode_deliver(
        &intl("+380501234567"),
        "Привіт, як справи?",
        &ts(2026, 11, 23, 13, 15, 32, 8),
        0,
        false,
    )
    .unwrap();
    assert_eq!(parts.len(), 1);
    assert_eq!(parts[0].hex(), CYRILLIC_DELIVER);
    assert_eq!(parts[0].tpdu_len, 55);
    let d = deliver(CYRILLIC_DELIVER);
    assert_eq!(d.text, "Привіт, як справи?");
    assert_eq!(d.timestamp.to_rfc3339(), "2026-11-23T13:15:32+02:00");
}

#[test]
fn emoji_deliver_with_national_sender_and_negative_zone() {
    let hex = "00240A81501032547600086210203040500A08D83DDC4DD83CDFFD";
    let d = deliver(hex);
    assert_eq!(d.text, "👍🏽");
    assert_eq!(d.sender.kind, AddressKind::National);
    assert_eq!(d.sender.to_string(), "0501234567");
    assert_eq!(d.timestamp.tz_quarter_hours, -20);
    assert_eq!(d.timestamp.to_rfc3339(), "2026-01-02T03:04:05-05:00");
    assert!(d.status_report_indication);
    let ours = encode_deliver(
        &Address::parse("0501234567").unwrap(),
        "👍🏽",
        &d.timestamp,
        0,
        true,
    )
    .unwrap();
    assert_eq!(ours[0].hex(), hex);
}

#[test]
fn alphanumeric_senders_of_seven_and_eight_characters() {
    let d = deliver("00040DD0CDBC30EC5EC70000006211323151238002C834");
    assert_eq!(d.sender.value, "MyBank1");
    assert_eq!(d.sender.kind, AddressKind::Alphanumeric);
    let d = deliver("00040ED0CB7CDA3EA787E50000621132315123800FD9775D0E1ABFC9651D28269BD100");
    assert_eq!(d.sender.value, "Kyivstar");
    assert_eq!(d.text, "Your code: 1234");
    // a network that gives 14 semi-octets for a 7-character name: the padding is not an '@'
    let d = deliver("00040ED0CDBC30EC5EC70000006211323151238002C834");
    assert_eq!(d.sender.value, "MyBank1");
}

#[test]
fn three_part_cyrillic_submit_with_16_bit_reference() {
    let text = "Привіт, як справи? ".repeat(9);
    let opts = SubmitOptions {
        status_report: true,
        first_reference: 7,
        concat_reference: 0x1234,
        force_ucs2: false,
        validity_minutes: Some(1440),
        ..SubmitOptions::default()
    };
    let parts = encode_submit(&intl("+380501234567"), &text, &opts).unwrap();
    assert_eq!(parts.len(), 3);
    assert_eq!(
        parts[2].hex(),
        "0071090C918350103254760008A755060804123403030020041F04400438043204560442002C0020044F043A00200441043F0440043004320438003F0020041F04400438043204560442002C0020044F043A00200441043F0440043004320438003F0020"
    );
    let mut joined = String::new();
    for (i, p) in parts.iter().enumerate() {
        assert_eq!(p.bytes.len(), p.tpdu_len + 1);
        assert!(p.tpdu_len <= 164);
        let s = submit(&p.hex());
        assert_eq!(s.reference, 7 + i as u8);
        assert!(s.status_report_request);
        assert_eq!(s.validity_minutes, Some(1440));
        assert_eq!(
            s.concat,
            Some(Concat {
                reference: 0x1234,
                total: 3,
                seq: i as u8 + 1
            })
        );
        joined.push_str(&s.text);
    }
    assert_eq!(joined, text);
}

#[test]
fn short_submit_is_one_part_without_header() {
    let parts = encode_submit(
        &Address::parse("+380501234567").unwrap(),
        "hello",
        &SubmitOptions::default(),
    )
    .unwrap();
    assert_eq!(parts.len(), 1);
    assert_eq!(parts[0].hex(), "0001000C91835010325476000005E8329BFD06");
    assert_eq!(parts[0].tpdu_len, 18);
}

#[test]
fn status_report_written_for_the_simulator() {
    let part = encode_status_report(
        7,
        &intl("+380501234567"),
        &ts(2026, 11, 23, 13, 15, 32, 8),
        &ts(2026, 1, 2, 3, 4, 5, -20),
        0,
    )
    .unwrap();
    assert_eq!(
        part.hex(),
        "0006070C91835010325476621132315123806210203040500A00"
    );
    assert_eq!(part.tpdu_len, 25);
}

#[test]
fn eight_bit_reference_concatenation_from_the_wild_layout() {
    // Two parts with UDH 05 00 03 42 02 0n, GSM 7-bit with one fill bit.
    let text = "Lorem ipsum dolor sit amet. ".repeat(7);
    let parts = encode_deliver(
        &intl("+380501234567"),
        &text,
        &ts(2026, 11, 23, 13, 15, 32, 8),
        0x42,
        false,
    )
    .unwrap();
    assert_eq!(parts.len(), 2);
    assert!(parts[0].hex().contains("A0050003420201"));
    let d1 = deliver(&parts[0].hex());
    let d2 = deliver(&parts[1].hex());
    assert_eq!(d1.text.chars().count(), 153);
    assert_eq!(format!("{}{}", d1.text, d2.text), text);
    let mut r = Reassembler::new(60);
    assert_eq!(r.push(&d2, 0), None);
    let m = r.push(&d1, 1).unwrap();
    assert_eq!(m.text, text);
    assert_eq!(m.parts, 2);
    assert!(!m.incomplete);
}
