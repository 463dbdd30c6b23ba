//! The simulated modem's voice channel through real PTYs: PCM flows on
//! `<link>.voice` only during a call and only after the profile's command.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::{Client, WAIT};
use crossline_sim::{Profile, SimConfig, SimModem};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;
use tokio_serial::SerialPortBuilderExt;

async fn modem(profile: Profile) -> (SimModem, Client, tokio_serial::SerialStream) {
    let m = SimModem::spawn(SimConfig {
        profile,
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let mut c = Client::open(m.link());
    c.cmd("ATE0").await;
    c.cmd("AT+CMEE=1").await;
    let v = tokio_serial::new(m.voice_link().unwrap().to_string_lossy(), 115_200)
        .open_native_async()
        .unwrap();
    (m, c, v)
}

/// Reads at least `n` bytes from the voice port, or what came within `within`.
async fn read_voice(v: &mut tokio_serial::SerialStream, n: usize, within: Duration) -> Vec<u8> {
    let deadline = Instant::now() + within;
    let mut out = Vec::new();
    let mut b = [0u8; 4096];
    while out.len() < n {
        match tokio::time::timeout_at(deadline, v.read(&mut b)).await {
            Ok(Ok(k)) if k > 0 => out.extend_from_slice(&b[..k]),
            _ => break,
        }
    }
    out
}

async fn answer(m: &SimModem, c: &mut Client) {
    m.inject_call("+380501112233");
    c.expect("RING").await;
    assert!(c.cmd("ATA").await.contains("OK"));
}

#[tokio::test]
async fn each_profile_carries_pcm_only_after_its_own_command() {
    for (profile, wrong, right, off) in [
        (
            Profile::QuectelEc25,
            "AT+CPCMREG=1",
            "AT+QPCMV=1,0",
            Some("AT+QPCMV=0"),
        ),
        (
            Profile::Sim7600,
            "AT^DDSETEX=2",
            "AT+CPCMREG=1",
            Some("AT+CPCMREG=0"),
        ),
        (Profile::HuaweiE173, "AT+QPCMV=1,0", "AT^DDSETEX=2", None),
    ] {
        let (m, mut c, mut v) = modem(profile).await;
        answer(&m, &mut c).await;
        tokio::time::sleep(Duration::from_millis(150)).await; // SIM7600 settles after 100 ms
        assert!(c.cmd(wrong).await.contains("ERROR"), "{profile}: {wrong}");
        assert!(
            read_voice(&mut v, 1, Duration::from_millis(300))
                .await
                .is_empty(),
            "{profile}: audio without the right command"
        );
        m.far_end_play(vec![1234; 160 * 3]);
        assert!(c.cmd(right).await.contains("OK"), "{profile}: {right}");
        let got = read_voice(&mut v, 320 * 4, WAIT).await;
        assert!(got.len() >= 320 * 4, "{profile}: {} bytes", got.len());
        let first = i16::from_le_bytes([got[0], got[1]]);
        assert_eq!(first, 1234, "{profile}");
        // what the driver writes reaches the caller, odd writes included
        let mine: Vec<u8> = (0..200i16).flat_map(|s| s.to_le_bytes()).collect();
        for chunk in mine.chunks(7) {
            v.write_all(chunk).await.unwrap();
        }
        m.wait_until("the far end hears 200 samples", WAIT, |m| {
            m.far_end_heard().len() >= 200
        })
        .await
        .unwrap();
        assert_eq!(m.far_end_heard(), (0..200i16).collect::<Vec<_>>());
        match off {
            Some(off) => assert!(c.cmd(off).await.contains("OK")),
            None => assert!(c.cmd("AT+CHUP").await.contains("OK")),
        }
        assert!(!m.voice_flowing(), "{profile}");
        m.shutdown().await;
    }
}

#[tokio::test]
async fn simcom_rejects_cpcmreg_right_at_connect_and_sim800_has_no_voice_port() {
    let (m, mut c, _v) = modem(Profile::Sim7600).await;
    assert!(c.cmd("AT+CPCMREG=1").await.contains("ERROR"), "no call yet");
    answer(&m, &mut c).await;
    // within 100 ms of the call starting the real SIM7600 refuses too
    let r = c.cmd("AT+CPCMREG=1").await;
    if !r.contains("ERROR") {
        // the machine was slow: 100 ms passed already; nothing to check
        assert!(m.voice_flowing());
    }
    let sim800 = SimModem::spawn(SimConfig {
        profile: Profile::Sim800,
        ..SimConfig::default()
    })
    .await
    .unwrap();
    assert!(sim800.voice_link().is_none());
}

#[tokio::test]
async fn quectel_usb_audio_route_leaves_the_serial_port_silent() {
    let (m, mut c, mut v) = modem(Profile::QuectelEc25).await;
    answer(&m, &mut c).await;
    assert!(c.cmd("AT+QPCMV=1,2").await.contains("OK"));
    assert!(c.cmd("AT+QPCMV?").await.contains("+QPCMV: 1,2"));
    assert!(
        read_voice(&mut v, 1, Duration::from_millis(300))
            .await
            .is_empty()
    );
    assert!(!m.voice_flowing());
}
