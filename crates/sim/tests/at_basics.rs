//! Basic AT behaviour through the real PTY.

// Test helpers outside #[test] functions may unwrap and panic too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::Client;
use crossline_sim::{Profile, Registration, SimConfig, SimModem};

async fn modem(cfg: SimConfig) -> (SimModem, Client) {
    let m = SimModem::spawn(cfg).await.unwrap();
    let c = Client::open(m.link());
    (m, c)
}

#[tokio::test]
async fn boots_echoes_until_ate0_and_identifies() {
    let (m, mut c) = modem(SimConfig::default()).await;
    c.expect("RDY").await;
    c.expect("+QIND: PB DONE\r\n").await;
    let r = c.cmd("AT").await;
    assert_eq!(r, "AT\r\r\nOK\r\n", "echo then OK");
    let r = c.cmd("ATE0").await;
    assert_eq!(r, "ATE0\r\r\nOK\r\n");
    let r = c.cmd("AT+CGMI").await;
    assert_eq!(r, "\r\nQuectel\r\n\r\nOK\r\n", "no echo after ATE0");
    assert!(c.cmd("AT+CGSN").await.contains("861234051234567"));
    assert!(c.cmd("ATI").await.contains("EC25"));
    assert!(c.cmd("AT+NOSUCH").await.ends_with("\r\nERROR\r\n"));
    assert!(c.cmd("AT+CPROT=?").await.ends_with("\r\nERROR\r\n"));
    assert!(c.cmd("AT+CMEE=2;+CSQ").await.contains("+CSQ: 20,99"));
    assert_eq!(m.commands().last().unwrap(), "AT+CMEE=2;+CSQ");
    m.shutdown().await;
    assert!(!m.link().exists(), "link removed at shutdown");
}

#[tokio::test]
async fn pin_state_machine() {
    let cfg = SimConfig {
        pin: Some("1234".into()),
        ..SimConfig::default()
    };
    let (_m, mut c) = modem(cfg).await;
    c.cmd("ATE0").await;
    c.cmd("AT+CMEE=1").await;
    assert!(c.cmd("AT+CPIN?").await.contains("+CPIN: SIM PIN"));
    assert!(c.cmd("AT+CIMI").await.contains("+CME ERROR: 11"));
    assert!(c.cmd("AT+CPIN=\"0000\"").await.contains("+CME ERROR: 16"));
    c.cmd("AT+CMEE=2").await;
    assert!(
        c.cmd("AT+CPIN=\"0000\"")
            .await
            .contains("+CME ERROR: incorrect password")
    );
    assert!(c.cmd("AT+CPIN=\"1234\"").await.ends_with("\r\nOK\r\n"));
    assert!(c.cmd("AT+CPIN?").await.contains("+CPIN: READY"));
    assert!(c.cmd("AT+CIMI").await.contains("255031234567890"));
}

#[tokio::test]
async fn three_wrong_pins_need_the_puk() {
    let cfg = SimConfig {
        pin: Some("1234".into()),
        ..SimConfig::default()
    };
    let (_m, mut c) = modem(cfg).await;
    c.cmd("ATE0;+CMEE=1").await;
    for _ in 0..3 {
        assert!(c.cmd("AT+CPIN=\"1111\"").await.contains("+CME ERROR: 16"));
    }
    assert!(c.cmd("AT+CPIN?").await.contains("SIM PUK"));
    assert!(c.cmd("AT+CPIN=\"1234\"").await.contains("+CME ERROR: 16"));
    assert!(
        c.cmd("AT+CPIN=\"12345678\",\"4321\"")
            .await
            .ends_with("OK\r\n")
    );
    assert!(c.cmd("AT+CPIN?").await.contains("READY"));
}

#[tokio::test]
async fn registration_urc_and_signal() {
    let (m, mut c) = modem(SimConfig::default()).await;
    c.cmd("ATE0").await;
    assert!(c.cmd("AT+CREG?").await.contains("+CREG: 0,1"));
    c.cmd("AT+CREG=2").await;
    assert!(c.cmd("AT+COPS?").await.contains("\"Kyivstar\""));
    m.set_registration(Registration::Searching);
    c.expect("+CREG: 2\r\n").await;
    assert!(c.cmd("AT+COPS?").await.contains("+COPS: 0\r\n"));
    m.set_registration(Registration::Roaming);
    c.expect("+CREG: 5,\"1A2B\"").await;
    m.set_signal(7);
    assert!(c.cmd("AT+CSQ").await.contains("+CSQ: 7,99"));
}

#[tokio::test]
async fn faults_delay_fail_hang_garbage_mid_response_urc() {
    let (m, mut c) = modem(SimConfig::default()).await;
    c.cmd("ATE0").await;
    m.fail_next("AT+CSQ", "+CME ERROR: 100");
    assert!(c.cmd("AT+CSQ").await.contains("+CME ERROR: 100"));
    assert!(
        c.cmd("AT+CSQ").await.contains("+CSQ:"),
        "only the next one fails"
    );

    m.hang_next("AT+CGMM");
    c.send("AT+CGMM\r").await;
    assert!(
        c.try_expect("OK", Duration::from_millis(500))
            .await
            .is_none(),
        "a hung command gets no answer"
    );
    assert!(c.cmd("AT").await.ends_with("OK\r\n"));

    m.inject_garbage(b"\xff\x00garbage\r\n");
    c.expect("garbage").await;
    assert!(c.cmd("AT").await.ends_with("OK\r\n"));

    m.inject_urc_mid_response("+CMTI: \"SM\",3");
    let r = c.cmd("AT+CPMS?").await;
    let urc = r.find("+CMTI").unwrap();
    assert!(
        r.find("+CPMS:").unwrap() < urc && urc < r.find("OK").unwrap(),
        "{r:?}"
    );

    m.set_delay(Duration::from_millis(300));
    let t = tokio::time::Instant::now();
    c.cmd("AT").await;
    assert!(t.elapsed() >= Duration::from_millis(300));
}

#[tokio::test]
async fn unplug_gives_eio_and_replug_reboots() {
    let (m, mut c) = modem(SimConfig::default()).await;
    c.cmd("ATE0").await;
    m.unplug().await.unwrap();
    assert!(!m.link().exists(), "link gone while unplugged");
    let err = c.read_error(Duration::from_secs(2)).await;
    assert!(err.is_some(), "the open port sees an error after unplug");
    m.replug().await.unwrap();
    assert!(m.link().exists());
    let mut c = Client::open(m.link());
    c.expect("RDY").await;
    c.expect("+QIND: PB DONE\r\n").await;
    assert_eq!(
        c.cmd("AT").await,
        "AT\r\r\nOK\r\n",
        "echo is back on after power-on"
    );
}

#[tokio::test]
async fn profiles_differ() {
    for p in Profile::ALL {
        let (_m, mut c) = modem(SimConfig {
            profile: p,
            ..SimConfig::default()
        })
        .await;
        c.cmd("ATE0").await;
        assert!(c.cmd("AT+CGMI").await.contains(p.manufacturer()), "{p}");
    }
}

#[tokio::test]
async fn dropping_the_last_handle_removes_the_link() {
    fn assert_clone_send<T: Clone + Send + Sync + 'static>() {}
    assert_clone_send::<SimModem>();
    let m = SimModem::spawn(SimConfig::default()).await.unwrap();
    let link = m.link().to_path_buf();
    let copy = m.clone();
    drop(m);
    assert!(link.exists(), "a clone keeps it alive");
    drop(copy);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while std::fs::symlink_metadata(&link).is_ok() {
        assert!(tokio::time::Instant::now() < deadline, "link still there");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn quectel_urcs_need_the_urc_port_when_configured() {
    let (m, mut c) = modem(SimConfig {
        urc_port_needs_setup: true,
        ..SimConfig::default()
    })
    .await;
    c.cmd("ATE0").await;
    m.inject_sms("+380501234567", "first").unwrap();
    assert!(
        c.try_expect("+CMTI", Duration::from_millis(300))
            .await
            .is_none(),
        "URC went to another port"
    );
    assert_eq!(m.stored().len(), 1, "stored anyway");
    c.cmd("AT+QURCCFG=\"urcport\",\"usbat\"").await;
    m.inject_sms("+380501234567", "second").unwrap();
    c.expect("+CMTI: \"SM\",1").await;
}

#[tokio::test]
async fn huawei_noise_urcs() {
    let (_m, mut c) = modem(SimConfig {
        profile: Profile::HuaweiE173,
        noise_interval: Some(Duration::from_millis(50)),
        ..SimConfig::default()
    })
    .await;
    c.expect("^RSSI:").await;
    c.expect("^BOOT:").await;
    assert!(c.cmd("ATE0").await.ends_with("OK\r\n"));
}

#[tokio::test]
async fn cnmi_ds1_quirk() {
    let (_m, mut c) = modem(SimConfig {
        cnmi_rejects_ds1: true,
        ..SimConfig::default()
    })
    .await;
    c.cmd("ATE0").await;
    assert!(c.cmd("AT+CNMI=?").await.contains("(0-2),(0-3),(0,2),(0-2)"));
    assert!(c.cmd("AT+CNMI=2,1,2,1,0").await.contains("+CMS ERROR: 303"));
    assert!(c.cmd("AT+CNMI=2,1,2,2,0").await.ends_with("OK\r\n"));
    assert!(c.cmd("AT+CNMI?").await.contains("+CNMI: 2,1,2,2,0"));
}

#[tokio::test]
async fn the_driver_may_close_and_reopen_the_port() {
    let (m, mut c) = modem(SimConfig::default()).await;
    c.cmd("ATE0").await;
    drop(c);
    m.inject_sms("+380501234567", "while closed").unwrap();
    let mut c = Client::open(m.link());
    c.expect("+CMTI: \"SM\",0\r\n").await;
    assert_eq!(c.cmd("AT").await, "\r\nOK\r\n", "settings survive a reopen");
    assert!(c.cmd("AT+CMGL=4").await.contains("+CMGL: 0,0,,"));
}

#[tokio::test]
async fn huawei_curc_0_silences_the_noise() {
    let (_m, mut c) = modem(SimConfig {
        profile: Profile::HuaweiE173,
        noise_interval: Some(Duration::from_millis(50)),
        ..SimConfig::default()
    })
    .await;
    c.cmd("ATE0").await;
    c.cmd("AT^CURC=0").await;
    c.buf.clear();
    assert!(
        c.try_expect("^RSSI", Duration::from_millis(300))
            .await
            .is_none()
    );
}

#[tokio::test]
async fn iccid_in_every_dialect() {
    let (_m, mut c) = modem(SimConfig::default()).await;
    c.cmd("ATE0").await;
    assert!(
        c.cmd("AT+QCCID")
            .await
            .contains("+QCCID: 89380031234567890123")
    );
    assert!(
        c.cmd("AT+CCID")
            .await
            .contains("+CCID: 89380031234567890123")
    );
    assert!(
        c.cmd("AT+CICCID")
            .await
            .contains("ICCID: 89380031234567890123")
    );
    assert!(
        c.cmd("AT^ICCID?")
            .await
            .contains("^ICCID: 89380031234567890123")
    );
    assert!(
        c.cmd("AT+CRSM=176,12258,0,0,10")
            .await
            .contains("+CRSM: 144,0,\"98830013325476981032\"")
    );
}
