//! The `crossline-sim modem` and `line` commands run by hand: stdin commands
//! drive the modem and the analog line.

// Test helpers outside #[test] functions may unwrap and panic too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::process::Stdio;
use std::time::Duration;

use common::{Client, pdu_after};
use crossline_pdu::{Direction, Pdu};
use tokio::io::AsyncWriteExt;
use tokio::process::Command;
use tokio::time::Instant;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_modem_takes_stdin_commands() {
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("ttyMODEM");
    let mut child = Command::new(env!("CARGO_BIN_EXE_crossline-sim"))
        .args(["modem", "--profile", "sim7600", "--link"])
        .arg(&link)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !link.exists() {
        assert!(
            Instant::now() < deadline,
            "crossline-sim did not create {}",
            link.display()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut c = Client::open(&link);
    c.cmd("ATE0").await;
    assert!(c.cmd("AT+CGMM").await.contains("SIMCOM_SIM7600E"));
    let mut stdin = child.stdin.take().unwrap();
    stdin
        .write_all("sms +380501234567 Привіт з консолі\n".as_bytes())
        .await
        .unwrap();
    c.expect("+CMTI: \"SM\",1").await;
    let r = c.cmd("AT+CMGR=1").await;
    match crossline_pdu::decode_hex(&pdu_after(&r, "+CMGR:"), Direction::MobileTerminated, true)
        .unwrap()
    {
        Pdu::Deliver(d) => assert_eq!(d.text, "Привіт з консолі"),
        other => panic!("{other:?}"),
    }
    stdin.write_all(b"quit\n").await.unwrap();
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .expect("crossline-sim did not quit")
        .unwrap();
    assert!(status.success());
    assert!(
        std::fs::symlink_metadata(&link).is_err(),
        "link removed on quit"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_line_serves_an_analog_line_to_a_driver_in_another_process() {
    use crossline_line::{LineConfig, LineEvent, Port};
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("fxo0.sock");
    let mut child = Command::new(env!("CARGO_BIN_EXE_crossline-sim"))
        .args(["line", "--country", "uk", "--socket"])
        .arg(&socket)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !socket.exists() {
        assert!(
            Instant::now() < deadline,
            "crossline-sim did not create {}",
            socket.display()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let config = LineConfig {
        country: crossline_line::Country::Uk,
        ..LineConfig::default()
    };
    let mut opened = crossline_line::open(
        config,
        &Port::Link {
            path: socket.clone(),
        },
    )
    .await
    .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"call 02071234567\n").await.unwrap();
    let mut next = async || {
        tokio::time::timeout(Duration::from_secs(10), opened.events.recv())
            .await
            .expect("no line event within 10 s")
            .unwrap()
            .unwrap()
    };
    assert_eq!(next().await, LineEvent::RingStarted);
    assert_eq!(next().await, LineEvent::Ring { count: 1 });
    assert!(matches!(next().await, LineEvent::CallerIdWindow { .. }));
    opened.driver.answer().unwrap();
    assert_eq!(next().await, LineEvent::Answered);
    // A second of conversation (a hang-up before the driver has seen loop
    // current at all is only heard as the disconnect tone: docs/LINES.md).
    tokio::time::sleep(Duration::from_secs(1)).await;
    stdin.write_all(b"hangup\n").await.unwrap();
    assert!(matches!(next().await, LineEvent::FarEndDisconnect { .. }));
    stdin.write_all(b"quit\n").await.unwrap();
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .expect("crossline-sim did not quit")
        .unwrap();
    assert!(status.success());
    assert!(!socket.exists(), "the socket is removed on quit");
}
