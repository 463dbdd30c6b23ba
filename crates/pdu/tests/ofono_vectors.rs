//! PDUs from oFono's SMS unit tests (real network traces and hand-checked
//! specification examples published with that project), decoded here and
//! compared with what oFono's tests expect of them.

// Test helpers outside #[test] functions may unwrap and panic too.
#![allow(clippy::unwrap_used, clippy::panic)]

use crossline_pdu::*;

fn mt(hex: &str, with_smsc: bool) -> Pdu {
    decode_hex(hex, Direction::MobileTerminated, with_smsc).unwrap()
}

fn deliver(hex: &str, with_smsc: bool) -> Deliver {
    match mt(hex, with_smsc) {
        Pdu::Deliver(d) => d,
        other => panic!("expected a DELIVER, got {other:?}"),
    }
}

fn submit(hex: &str, with_smsc: bool) -> Submit {
    match decode_hex(hex, Direction::MobileOriginated, with_smsc).unwrap() {
        Pdu::Submit(s) => s,
        other => panic!("expected a SUBMIT, got {other:?}"),
    }
}

fn report(hex: &str) -> StatusReport {
    match mt(hex, false) {
        Pdu::StatusReport(r) => r,
        other => panic!("expected a STATUS-REPORT, got {other:?}"),
    }
}

#[test]
fn alphanumeric_sender_sipgate() {
    let d = deliver(
        "0791447758100650040DD0F334FC1CA6970100008080312170224008D4F29CDE0EA7D9",
        true,
    );
    assert_eq!(d.smsc.unwrap().value, "+447785016005");
    assert_eq!(
        d.sender,
        Address {
            kind: AddressKind::Alphanumeric,
            value: "sipgate".to_string()
        }
    );
    assert_eq!(d.timestamp.to_rfc3339(), "2008-08-13T12:07:22+01:00");
    assert_eq!(d.text, "Testmail");
}

#[test]
fn message_waiting_indication_with_empty_user_data() {
    let d = deliver(
        "07913366002020F8040B913366600600F100C83180706174148000",
        true,
    );
    assert_eq!(d.dcs, 0xC8);
    assert_eq!(d.alphabet, Alphabet::Gsm7);
    assert_eq!(d.sender.value, "+33660660001");
    assert_eq!(d.timestamp.to_rfc3339(), "2013-08-07T16:47:41+02:00");
    assert_eq!(d.text, "");
}

#[test]
fn whole_default_alphabet_in_128_septets() {
    let d = deliver(
        "0001000B915310101010100000808080604028180E888462C168381E9088644\
         2A9582E988C06C4E9783EA09068442A994EA8946AC56AB95EB0986C46ABD96EB89C\
         6EC7EBF97EC0A070482C1A8FC8A472C96C3A9FD0A8744AAD5AAFD8AC76CBED7ABFE0\
         B0784C2E9BCFE8B47ACD6EBBDFF0B87C4EAFDBEFF8BC7ECFEFFBFF",
        false,
    );
    // the escape position 0x1B carries a space in this PDU
    assert_eq!(
        d.text,
        "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞ ÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?\
         ¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
    );
}

#[test]
fn extension_table() {
    let d = deliver(
        "0001000B915310101010100000151BC58602DAA036A9CD6BC3DBF436BE0D705306",
        false,
    );
    assert_eq!(d.text, "\u{0C}^ {}\\[~]|€");
}

#[test]
fn ems_text_formatting_headers_are_skipped_with_their_fill_bits() {
    let s = submit(
        "0041000B915121551532F40000631A0A031906200A032104100A032705040A032E05\
         080A043807002B8ACD29A85D9ECFC3E7F21C340EBB41E3B79B1E4EBB41697A989D1E\
         B340E2379BCC02B1C3F27399059AB7C36C3628EC2683C66FF65B5E2683E8653C1D",
        true,
    );
    assert_eq!(
        s.text,
        "EMS messages can contain italic, bold, large, small and colored text"
    );
    assert_eq!(s.concat, None);
    let s = submit(
        "079194712272303351030B915121340195F60000FF80230A030F07230A031806130A\
         031E0A430A032E0D830A033D14020A035104F60A0355010600159D9E83D273501844\
         2FCFE98A243DCC4E97C92C90F8CD26B3407537B92C67A7DD65320B1476934173BA3C\
         BD2ED3D1F277FD8C76299CEF3B280C92A7CF683A28CC4E9FDD6532E8FE96935D",
        true,
    );
    assert_eq!(
        s.text,
        "This is a test\nItalied, bold, underlined, and strikethrough.\n\
         Now a right aligned word."
    );
    assert_eq!(s.reference, 3);
    assert_eq!(s.validity_minutes, Some(63 * 7 * 24 * 60));
}

#[test]
fn three_part_cyrillic_ucs2_class_1_reassembles() {
    let parts = [
        "038121F340048155550119906041001222048C0500031E0301041804420430043A00\
         2C00200410043B0435043A04410430043D04340440002000200441043B0443044804\
         30043B00200437043000200434043204350440044C044E0020002004380020002004\
         320441043500200431043E043B044C044804350020043F0440043504380441043F04\
         3E043B043D044F043B0441044F002000200433043D0435",
        "038121F340048155550119906041001222048C0500031E03020432043E043C002E00\
         0A041D0430043A043E043D04350446002C0020043D04350020043200200441043804\
         3B04300445002004340430043B043504350020044204350440043F04350442044C00\
         2C0020043E043D00200441044204400435043C043804420435043B044C043D043E00\
         2004320431043504360430043B002004320020043A043E",
        "038121F340048155550119906041001222044A0500031E0303043C043D0430044204\
         43002C0020043F043E043704300431044B0432000A0434043004360435002C002004\
         470442043E002000200431044B043B0020043D04300433002E",
    ];
    let decoded: Vec<Deliver> = parts.iter().map(|h| deliver(h, true)).collect();
    for (i, d) in decoded.iter().enumerate() {
        assert_eq!(d.alphabet, Alphabet::Ucs2);
        assert_eq!(d.class, Some(1));
        assert_eq!(d.pid, 0x01);
        assert_eq!(d.smsc.as_ref().unwrap().value, "123");
        assert_eq!(d.sender.value, "5555");
        assert_eq!(
            d.concat,
            Some(Concat {
                reference: 0x1E,
                total: 3,
                seq: i as u8 + 1
            })
        );
    }
    assert!(
        decoded[0]
            .text
            .starts_with("Итак, Александр  слушал за дверью")
    );
    // the word "гневом" is split across parts 1 and 2
    assert!(decoded[1].text.starts_with("вом.\nНаконец"));
    let mut r = Reassembler::new(60);
    assert_eq!(r.push(&decoded[2], 0), None);
    assert_eq!(r.push(&decoded[0], 1), None);
    let m = r.push(&decoded[1], 2).unwrap();
    assert_eq!(
        m.text,
        format!("{}{}{}", decoded[0].text, decoded[1].text, decoded[2].text)
    );
    assert!(m.text.contains("преисполнялся  гневом.\nНаконец"));
    assert!(m.text.ends_with("что  был наг."));
    assert_eq!(m.parts, 3);
}

#[test]
fn our_submit_matches_ofonos_byte_for_byte() {
    // oFono's "This is testing !" SUBMIT, validity 24 h (TP-VP A7), MR 0
    let expected_tpdu = "11000C915348870420140000A71154747A0E4ACF41F4F29C9E769F4121";
    let parts = encode_submit(
        &Address::parse("+358478400241").unwrap(),
        "This is testing !",
        &SubmitOptions {
            validity_minutes: Some(24 * 60),
            ..SubmitOptions::default()
        },
    )
    .unwrap();
    assert_eq!(parts.len(), 1);
    assert_eq!(parts[0].hex(), format!("00{expected_tpdu}"));
    let theirs = submit(&format!("0791534850020209{expected_tpdu}"), true);
    assert_eq!(theirs.text, "This is testing !");
    assert_eq!(parts[0].tpdu_len, expected_tpdu.len() / 2);
    assert_eq!(theirs.validity_minutes, Some(24 * 60));
    // the SUBMIT's SMSC block is decoded too
    assert_eq!(theirs.smsc, Some(Address::parse("+358405202090").unwrap()));

    // ... and written when asked, byte for byte as oFono has it, with the
    // raw TP-VP octet given instead of minutes
    let with_smsc = encode_submit(
        &Address::parse("+358478400241").unwrap(),
        "This is testing !",
        &SubmitOptions {
            validity_octet: Some(0xA7),
            smsc: Some(Address::parse("+358405202090").unwrap()),
            ..SubmitOptions::default()
        },
    )
    .unwrap();
    assert_eq!(
        with_smsc[0].hex(),
        format!("0791534850020209{expected_tpdu}")
    );
    assert_eq!(with_smsc[0].tpdu_len, expected_tpdu.len() / 2);
    // no validity at all: TP-VPF 00 and no TP-VP octet
    let none = encode_submit(
        &Address::parse("+358478400241").unwrap(),
        "This is testing !",
        &SubmitOptions::default(),
    )
    .unwrap();
    assert_eq!(
        none[0].hex(),
        "0001000C9153488704201400001154747A0E4ACF41F4F29C9E769F4121"
    );
    assert_eq!(
        submit(&none[0].hex(), true).smsc,
        None,
        "00 means the SIM's SMSC"
    );
}

#[test]
fn status_reports_international_and_national() {
    let r = report("06040D91945152991136F00160124130340A0160124130940A00");
    assert_eq!(r.reference, 4);
    assert_eq!(r.recipient.value, "+4915259911630");
    assert_eq!(
        r.service_centre_time.to_rfc3339(),
        "2010-06-21T14:03:43-05:00"
    );
    assert_eq!(r.discharge_time.second, 49);
    assert_eq!(r.outcome(), DeliveryOutcome::Delivered);
    assert_eq!(
        report("06050D91945152991136F00160124130640A0160124130450A00").reference,
        5
    );
    // a network writing A0 as the zone: taken as 10 quarter hours, not refused
    let r = report("0606098121436587F9019012413064A0019012413045A000");
    assert_eq!(r.reference, 6);
    assert_eq!(
        r.recipient,
        Address {
            kind: AddressKind::National,
            value: "123456789".to_string()
        }
    );
    assert_eq!(r.service_centre_time.tz_quarter_hours, 10);
}

#[test]
fn wap_push_is_8_bit_data_with_a_port_header() {
    let d = deliver(
        "0791947122725014440185F039F501801140311480720605040B8423F00106246170\
         706C69636174696F6E2F766E642E7761702E6D6D732D6D65737361676500AF84B486\
         8C82984F67514B4B42008D9089088045726F74696B009650696E2D557073008A808E\
         0240008805810303F48083687474703A2F2F657073332E64652F4F2F5A39495A4F00",
        true,
    );
    assert_eq!(d.alphabet, Alphabet::Data8);
    assert_eq!(d.class, Some(1));
    assert_eq!(d.concat, None);
    assert_eq!(d.text, "");
    assert_eq!(d.data.len(), 0x72 - 7);
    assert_eq!(d.data.first(), Some(&0x01));
    assert_eq!(
        d.sender,
        Address {
            kind: AddressKind::Other { ton: 0, npi: 5 },
            value: "0".to_string()
        }
    );
}
