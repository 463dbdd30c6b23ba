//! Reassembly of concatenated messages as a user of the inbox would see it.

// Test helpers outside #[test] functions may unwrap and panic too.
#![allow(clippy::unwrap_used, clippy::panic)]

use crossline_pdu::*;

fn ts() -> Timestamp {
    Timestamp {
        year: 2026,
        month: 11,
        day: 23,
        hour: 13,
        minute: 15,
        second: 32,
        tz_quarter_hours: 8,
    }
}

fn parts(from: &str, text: &str, reference: u16) -> Vec<Deliver> {
    encode_deliver(
        &Address::parse(from).unwrap(),
        text,
        &ts(),
        reference,
        false,
    )
    .unwrap()
    .iter()
    .map(
        |p| match decode(&p.bytes, Direction::MobileTerminated, true).unwrap() {
            Pdu::Deliver(d) => d,
            other => panic!("{other:?}"),
        },
    )
    .collect()
}

#[test]
fn single_part_message_comes_back_at_once() {
    let mut r = Reassembler::new(60);
    let p = parts("+380501234567", "Привіт, як справи?", 0);
    let m = r.push(&p[0], 0).unwrap();
    assert_eq!(m.text, "Привіт, як справи?");
    assert_eq!(m.parts, 1);
    assert!(!m.incomplete);
    assert_eq!(r.pending(), 0);
}

#[test]
fn missing_middle_part_is_marked_after_the_timeout() {
    let text = "a".repeat(153) + &"b".repeat(153) + &"c".repeat(10);
    let p = parts("+380501234567", &text, 5);
    assert_eq!(p.len(), 3);
    let mut r = Reassembler::new(60);
    assert_eq!(r.push(&p[2], 100), None);
    assert_eq!(r.push(&p[0], 110), None);
    assert_eq!(r.pending(), 1);
    assert_eq!(
        r.waiting(),
        vec![PendingInfo {
            sender: Address::parse("+380501234567").unwrap(),
            reference: 5,
            total: 3,
            received: vec![1, 3],
            first_seen: 100,
        }]
    );
    assert!(r.expire(159).is_empty(), "expired before the timeout");
    let done = r.expire(160);
    assert_eq!(done.len(), 1);
    let m = &done[0];
    assert!(m.incomplete);
    assert_eq!(m.parts, 3);
    assert_eq!(
        m.text,
        format!(
            "{}[…part 2 of 3 missing…]{}",
            "a".repeat(153),
            "c".repeat(10)
        )
    );
    assert_eq!(r.pending(), 0);
}

#[test]
fn runs_of_missing_parts_get_one_marker() {
    let text = "x".repeat(153 * 4 + 1);
    let p = parts("+380501234567", &text, 6);
    assert_eq!(p.len(), 5);
    let mut r = Reassembler::new(10);
    r.push(&p[4], 0);
    let m = r.expire(10).pop().unwrap();
    assert_eq!(m.text, "[…parts 1–4 of 5 missing…]x");
}

#[test]
fn duplicates_are_ignored_and_senders_are_kept_apart() {
    let text = "z".repeat(200);
    let a = parts("+380501234567", &text, 9);
    let b = parts("+380507654321", &"y".repeat(200), 9);
    let mut r = Reassembler::new(60);
    assert_eq!(r.push(&a[0], 0), None);
    assert_eq!(r.push(&a[0], 1), None);
    assert_eq!(r.push(&b[1], 2), None);
    assert_eq!(r.pending(), 2);
    let m = r.push(&a[1], 3).unwrap();
    assert_eq!(m.text, text);
    assert_eq!(m.sender.value, "+380501234567");
    assert_eq!(r.pending(), 1);
    let m = r.push(&b[0], 4).unwrap();
    assert_eq!(m.text, "y".repeat(200));
}

#[test]
fn reference_reused_after_the_timeout_starts_a_new_message() {
    let old = parts("+380501234567", &"o".repeat(200), 3);
    let new = parts("+380501234567", &"n".repeat(200), 3);
    let mut r = Reassembler::new(60);
    r.push(&old[0], 0);
    assert_eq!(r.push(&new[0], 100), None);
    assert_eq!(r.push(&new[1], 101).unwrap().text, "n".repeat(200));
    let given_up = r.expire(102);
    assert_eq!(given_up.len(), 1);
    assert!(given_up[0].incomplete);
    assert!(given_up[0].text.starts_with("ooo"));
}

#[test]
fn pending_messages_are_bounded() {
    let mut r = Reassembler::with_max_pending(3600, 4);
    for reference in 0..10u16 {
        let p = parts("+380501234567", &"q".repeat(200), reference);
        assert_eq!(r.push(&p[0], u64::from(reference)), None);
        assert!(r.pending() <= 4);
    }
    let given_up = r.expire(20);
    assert_eq!(given_up.len(), 6);
    assert!(given_up.iter().all(|m| m.incomplete));
    assert_eq!(r.pending(), 4);
}

#[test]
fn emoji_split_across_parts_by_a_sender_is_repaired() {
    // Some phones cut UCS2 text at 67 units even inside a surrogate pair.
    let text = format!("{}👍🏽 end", "ж".repeat(66));
    let units: Vec<u16> = text.encode_utf16().collect();
    let (first, second) = units.split_at(67);
    let hex = |units: &[u16], seq: u8| {
        let body: String = units.iter().map(|u| format!("{u:04X}")).collect();
        format!(
            "00440C91835010325476000862113231512380{:02X}0500031102{:02X}{body}",
            6 + units.len() * 2,
            seq
        )
    };
    let decode_part = |h: String| match decode_hex(&h, Direction::MobileTerminated, true).unwrap() {
        Pdu::Deliver(d) => d,
        other => panic!("{other:?}"),
    };
    let p1 = decode_part(hex(first, 1));
    let p2 = decode_part(hex(second, 2));
    assert!(p1.text.ends_with('\u{FFFD}'));
    let mut r = Reassembler::new(60);
    assert_eq!(r.push(&p2, 0), None);
    assert_eq!(r.push(&p1, 0).unwrap().text, text);
}
