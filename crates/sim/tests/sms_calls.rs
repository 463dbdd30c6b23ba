//! SMS, calls and USSD through the real PTY.

// Test helpers outside #[test] functions may unwrap and panic too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::{Client, WAIT, pdu_after};
use crossline_pdu::{Address, Direction, Pdu, SubmitOptions};
use crossline_sim::{CallState, DialOutcome, Profile, SimConfig, SimModem, StoredStatus};

async fn modem(cfg: SimConfig) -> (SimModem, Client) {
    let m = SimModem::spawn(cfg).await.unwrap();
    let mut c = Client::open(m.link());
    c.cmd("ATE0").await;
    c.cmd("AT+CMEE=1").await;
    (m, c)
}

fn deliver_text(hex: &str) -> (String, String) {
    match crossline_pdu::decode_hex(hex, Direction::MobileTerminated, true).unwrap() {
        Pdu::Deliver(d) => (d.sender.value, d.text),
        other => panic!("not a DELIVER: {other:?}"),
    }
}

#[tokio::test]
async fn cmti_then_cmgr_then_cmgd() {
    let (m, mut c) = modem(SimConfig::default()).await;
    c.cmd("AT+CMGF=0").await;
    assert!(
        c.cmd("AT+CPMS=\"SM\",\"SM\",\"SM\"")
            .await
            .contains("+CPMS: 0,30,0,30,0,30")
    );
    assert_eq!(m.inject_sms("+380501234567", "Hello there").unwrap(), 1);
    let urc = c.expect("\r\n+CMTI: \"SM\",0\r\n").await;
    assert!(!urc.contains("ERROR"));
    let r = c.cmd("AT+CMGR=0").await;
    assert!(r.contains("+CMGR: 0,,"), "unread at first read: {r:?}");
    let (from, text) = deliver_text(&pdu_after(&r, "+CMGR:"));
    assert_eq!(
        (from.as_str(), text.as_str()),
        ("+380501234567", "Hello there")
    );
    assert_eq!(m.stored()[0].status, StoredStatus::ReceivedRead);
    assert!(c.cmd("AT+CMGR=0").await.contains("+CMGR: 1,,"));
    assert!(c.cmd("AT+CMGR=5").await.contains("+CMS ERROR: 321"));
    c.cmd("AT+CMGD=0").await;
    assert!(m.stored().is_empty(), "deleted only on AT+CMGD");
}

#[tokio::test]
async fn multipart_cyrillic_listed_with_cmgl_and_deleted_with_flag_4() {
    let (m, mut c) = modem(SimConfig::default()).await;
    let text = "Привіт! ".repeat(20);
    let parts = m.inject_sms("+380501234567", &text).unwrap();
    assert!(parts >= 3, "UCS2 multipart: {parts}");
    c.expect(&format!("+CMTI: \"SM\",{}", parts - 1)).await;
    let r = c.cmd("AT+CMGL=4").await;
    let mut joined = String::new();
    let mut lines = r.lines();
    while let Some(l) = lines.next() {
        if l.starts_with("+CMGL:") {
            joined.push_str(&deliver_text(lines.next().unwrap()).1);
        }
    }
    assert_eq!(joined, text);
    c.cmd("AT+CMGD=0,4").await;
    assert!(m.stored().is_empty());
}

#[tokio::test]
async fn storage_full_holds_messages_in_the_network_until_space() {
    let (m, mut c) = modem(SimConfig {
        sm_capacity: 2,
        ..SimConfig::default()
    })
    .await;
    for i in 0..3 {
        m.inject_sms("+380501234567", &format!("msg {i}")).unwrap();
    }
    c.expect("+CMTI: \"SM\",1").await;
    assert!(
        c.try_expect("+CMTI", Duration::from_millis(300))
            .await
            .is_none()
    );
    assert_eq!(m.stored().len(), 2);
    c.cmd("AT+CMGD=0").await;
    c.expect("+CMTI: \"SM\",0").await;
    let r = c.cmd("AT+CMGR=0").await;
    assert_eq!(deliver_text(&pdu_after(&r, "+CMGR:")).1, "msg 2");
}

#[tokio::test]
async fn cmt_direct_delivery_needs_cnma_with_csms_1() {
    let (m, mut c) = modem(SimConfig {
        cnma_timeout: Duration::from_millis(300),
        ..SimConfig::default()
    })
    .await;
    assert!(c.cmd("AT+CNMI=?").await.contains("+CNMI: (0-2),(0-3)"));
    c.cmd("AT+CSMS=1").await;
    c.cmd("AT+CNMI=2,2,0,0,0").await;
    m.inject_sms("+380501234567", "direct").unwrap();
    let head = c.expect("+CMT: ,").await;
    assert!(!head.contains("CMTI"));
    let rest = c.expect("\r\n").await;
    let len: usize = rest.trim().parse().unwrap();
    let pdu = c.expect("\r\n").await;
    assert_eq!(deliver_text(pdu.trim()).1, "direct");
    assert_eq!(
        pdu.trim().len() / 2 - 1 - usize::from(u8::from_str_radix(&pdu.trim()[..2], 16).unwrap()),
        len
    );
    // no ack: the network redelivers
    c.expect("+CMT: ,").await;
    c.expect("\r\n").await;
    c.expect("\r\n").await;
    assert!(c.cmd("AT+CNMA").await.ends_with("OK\r\n"));
    assert!(
        c.try_expect("+CMT", Duration::from_millis(600))
            .await
            .is_none()
    );
    assert!(c.cmd("AT+CNMA").await.contains("+CMS ERROR: 340"));
    assert!(m.stored().is_empty(), "routed messages are not stored");
}

async fn submit(c: &mut Client, to: &str, text: &str, srr: bool) -> Vec<String> {
    let parts = crossline_pdu::encode_submit(
        &Address::parse(to).unwrap(),
        text,
        &SubmitOptions {
            status_report: srr,
            concat_reference: 7,
            ..SubmitOptions::default()
        },
    )
    .unwrap();
    let mut answers = Vec::new();
    for p in parts {
        c.send(&format!("AT+CMGS={}\r", p.tpdu_len)).await;
        c.expect("\r\n> ").await;
        c.send(&format!("{}\x1a", p.hex())).await;
        answers.push(c.expect("OK\r\n").await);
    }
    answers
}

#[tokio::test]
async fn cmgs_prompt_pdu_and_sent_log() {
    let (m, mut c) = modem(SimConfig::default()).await;
    let answers = submit(&mut c, "+380671112233", "Hi", false).await;
    assert!(answers[0].contains("+CMGS: 0"), "{answers:?}");
    let text =
        "Ваше замовлення готове до видачі у відділенні на вулиці Хрещатик. Дякуємо, що обрали нас!";
    let answers = submit(&mut c, "+380671112233", text, false).await;
    assert_eq!(answers.len(), 2);
    assert!(answers[1].contains("+CMGS: 2"));
    let sent = m.wait_sent(2, WAIT).await.unwrap();
    assert_eq!(sent[0].text, "Hi");
    assert_eq!(sent[1].text, text);
    assert_eq!(sent[1].to, "+380671112233");
    assert_eq!(sent[1].parts.len(), 2);

    // ESC aborts, a bad length is refused, a scripted network failure follows the PDU
    c.send("AT+CMGS=10\r").await;
    c.expect("> ").await;
    c.send("0011\x1b").await;
    c.expect("OK\r\n").await;
    c.send("AT+CMGS=3\r").await;
    c.expect("> ").await;
    c.send("0011000B\x1a").await;
    c.expect("+CMS ERROR: 304").await;
    m.fail_next("AT+CMGS", "+CMS ERROR: 500");
    let p = &crossline_pdu::encode_submit(
        &Address::parse("+380671112233").unwrap(),
        "x",
        &SubmitOptions::default(),
    )
    .unwrap()[0];
    c.send(&format!("AT+CMGS={}\r", p.tpdu_len)).await;
    c.expect("> ").await;
    c.send(&format!("{}\x1a", p.hex())).await;
    c.expect("+CMS ERROR: 500").await;
    assert_eq!(m.sent().len(), 2, "failed submits are not sent");
}

#[tokio::test]
async fn status_reports_direct_and_stored_quectel_style() {
    let (m, mut c) = modem(SimConfig {
        status_report_delay: Duration::from_millis(50),
        ..SimConfig::default()
    })
    .await;
    c.cmd("AT+CNMI=2,1,0,1,0").await;
    submit(&mut c, "+380671112233", "report me", true).await;
    c.expect("+CDS: ").await;
    let _len = c.expect("\r\n").await;
    let pdu = c.expect("\r\n").await;
    match crossline_pdu::decode_hex(pdu.trim(), Direction::MobileTerminated, true).unwrap() {
        Pdu::StatusReport(r) => {
            assert_eq!(r.reference, 0);
            assert_eq!(r.recipient.value, "+380671112233");
        }
        other => panic!("{other:?}"),
    }
    c.cmd("AT+CNMI=2,1,0,2,0").await;
    submit(&mut c, "+380671112233", "again", true).await;
    // Quectel: stored in SR but announced as "SM"
    c.expect("+CDSI: \"SM\",0").await;
    assert_eq!(m.stored()[0].mem, "SR");
    assert!(
        c.cmd("AT+CMGR=0").await.contains("+CMS ERROR: 321"),
        "not in SM"
    );
    c.cmd("AT+CPMS=\"SR\"").await;
    assert!(c.cmd("AT+CMGR=0").await.contains("+CMGR:"));
}

#[tokio::test]
async fn ambiguous_submit_unplugs_before_answering() {
    let (m, mut c) = modem(SimConfig::default()).await;
    m.unplug_after_next_submit();
    let p = &crossline_pdu::encode_submit(
        &Address::parse("+380671112233").unwrap(),
        "maybe",
        &SubmitOptions::default(),
    )
    .unwrap()[0];
    c.send(&format!("AT+CMGS={}\r", p.tpdu_len)).await;
    c.expect("> ").await;
    c.send(&format!("{}\x1a", p.hex())).await;
    assert!(c.read_error(Duration::from_secs(2)).await.is_some());
    assert!(!c.buf.contains("+CMGS"), "no answer: {:?}", c.buf);
    assert_eq!(m.sent()[0].text, "maybe", "the network got it anyway");
    m.replug().await.unwrap();
}

#[tokio::test]
async fn incoming_call_rings_with_clip_until_answered_then_hangup() {
    let (m, mut c) = modem(SimConfig {
        ring_interval: Duration::from_millis(100),
        ..SimConfig::default()
    })
    .await;
    c.cmd("AT+CLIP=1").await;
    m.inject_call("+380501234567");
    c.expect("RING").await;
    c.expect("+CLIP: \"+380501234567\",145").await;
    c.expect("RING").await;
    assert!(
        c.cmd("AT+CLCC")
            .await
            .contains("+CLCC: 1,1,4,0,0,\"+380501234567\",145")
    );
    c.cmd("ATA").await;
    assert_eq!(m.calls()[0].state, CallState::Active);
    c.cmd("AT+VTS=1").await;
    c.cmd("AT+VTS=\"#\"").await;
    assert_eq!(m.dtmf_sent(), "1#");
    m.remote_hangup();
    c.expect("NO CARRIER").await;
    assert!(m.calls().is_empty());
    assert!(c.cmd("AT+VTS=1").await.contains("+CME ERROR: 3"));
}

#[tokio::test]
async fn outgoing_call_outcomes_and_simcom_urcs() {
    let (m, mut c) = modem(SimConfig {
        profile: Profile::Sim7600,
        call_step: Duration::from_millis(50),
        ..SimConfig::default()
    })
    .await;
    c.cmd("AT+CLCC=1").await;
    assert!(c.cmd("ATD+380501234567;").await.ends_with("OK\r\n"));
    c.expect("+CLCC: 1,0,3,0,0").await;
    c.expect("VOICE CALL: BEGIN").await;
    c.cmd("AT+CHUP").await;
    c.expect("VOICE CALL: END: 0000").await;
    c.expect("+CLCC: 1,0,6,0,0,\"+380501234567\",145").await;
    m.set_dial_outcome(DialOutcome::Busy);
    c.cmd("ATD+380501234567;").await;
    c.expect("BUSY").await;
    m.set_dial_outcome(DialOutcome::NoAnswer);
    c.cmd("ATD0501234567;").await;
    c.expect("NO ANSWER").await;
    c.cmd("AT+CRC=1").await;
    m.inject_call("+380501234567");
    c.expect("+CRING: VOICE\r\r\n").await;
}

#[tokio::test]
async fn ussd_plain_and_huawei_packed() {
    let (m, mut c) = modem(SimConfig {
        ussd_delay: Duration::from_millis(10),
        ..SimConfig::default()
    })
    .await;
    m.set_ussd_reply("Balance 42.00");
    c.cmd("AT+CUSD=1,\"*100#\",15").await;
    c.expect("+CUSD: 0,\"Balance 42.00\",15").await;
    m.set_ussd_reply("Баланс 42");
    c.cmd("AT+CUSD=1,\"*100#\",15").await;
    c.expect("+CUSD: 0,\"04110430043B").await;

    let (m, mut c) = modem(SimConfig {
        profile: Profile::HuaweiE173,
        ussd_delay: Duration::from_millis(10),
        ..SimConfig::default()
    })
    .await;
    m.set_ussd_reply("Balance 42.00");
    c.cmd("AT+CUSD=1,\"AA180C3602\",15").await;
    let line = c.expect(",15\r\n").await;
    let payload = line.split('"').nth(1).unwrap();
    assert_eq!(
        crossline_pdu::ussd::decode(15, payload).unwrap(),
        "Balance 42.00"
    );
    assert_eq!(m.ussd_requests(), vec!["*100#"]);
}

#[tokio::test]
async fn sms_for_an_unregistered_or_unplugged_modem_waits_in_the_network() {
    let (m, mut c) = modem(SimConfig::default()).await;
    m.set_registration(crossline_sim::Registration::Searching);
    m.inject_sms("+380501234567", "while searching").unwrap();
    assert!(
        c.try_expect("+CMTI", Duration::from_millis(300))
            .await
            .is_none()
    );
    assert!(m.stored().is_empty());
    m.set_registration(crossline_sim::Registration::Home);
    c.expect("+CMTI: \"SM\",0").await;

    m.unplug().await.unwrap();
    m.inject_sms("+380501234567", "while unplugged").unwrap();
    assert_eq!(m.stored().len(), 1);
    m.replug().await.unwrap();
    let mut c = Client::open(m.link());
    c.expect("+CMTI: \"SM\",1").await;
    let r = c.cmd("AT+CMGR=1").await;
    assert_eq!(deliver_text(&pdu_after(&r, "+CMGR:")).1, "while unplugged");
}

#[tokio::test]
async fn sms_waits_for_the_pin() {
    let (m, mut c) = modem(SimConfig {
        pin: Some("1234".into()),
        ..SimConfig::default()
    })
    .await;
    m.inject_sms("+380501234567", "locked").unwrap();
    assert!(c.cmd("AT+CMGL=4").await.contains("+CMS ERROR: 311"));
    c.cmd("AT+CPIN=\"1234\"").await;
    c.expect("+CMTI: \"SM\",0").await;
}

#[tokio::test]
async fn cmgw_stores_until_memory_full() {
    let (m, mut c) = modem(SimConfig {
        sm_capacity: 1,
        ..SimConfig::default()
    })
    .await;
    let p = &crossline_pdu::encode_submit(
        &Address::parse("+380671112233").unwrap(),
        "draft",
        &SubmitOptions::default(),
    )
    .unwrap()[0];
    for expected in ["+CMGW: 0", "+CMS ERROR: 322"] {
        c.send(&format!("AT+CMGW={}\r", p.tpdu_len)).await;
        c.expect("> ").await;
        c.send(&format!("{}\x1a", p.hex())).await;
        c.expect(expected).await;
    }
    assert_eq!(m.stored()[0].status, StoredStatus::StoredUnsent);
    // a full SIM: incoming messages get no +CMTI
    m.inject_sms("+380501234567", "no room").unwrap();
    assert!(
        c.try_expect("+CMTI", Duration::from_millis(300))
            .await
            .is_none()
    );
}

#[tokio::test]
async fn remote_dtmf_per_profile() {
    let (m, mut c) = modem(SimConfig {
        profile: Profile::Sim7600,
        ..SimConfig::default()
    })
    .await;
    m.inject_call("+380501234567");
    c.expect("RING").await;
    c.cmd("ATA").await;
    m.remote_dtmf("5#");
    c.expect("+RXDTMF: 5\r\r\n").await;
    c.expect("+RXDTMF: #\r\r\n").await;

    let (m, mut c) = modem(SimConfig::default()).await;
    c.cmd("AT+QTONEDET=1").await;
    m.inject_call("+380501234567");
    c.expect("RING").await;
    c.cmd("ATA").await;
    m.remote_dtmf("1");
    c.expect("+QTONEDET: 49").await;
}
