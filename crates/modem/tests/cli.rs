//! The `crossline-modem` binary against the simulated modem.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Output;

use crossline_sim::{SimConfig, SimModem};

async fn run(args: Vec<String>) -> Output {
    tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_crossline-modem"))
            .args(&args)
            .env("RUST_LOG", "warn")
            .output()
            .unwrap()
    })
    .await
    .unwrap()
}

fn stdout(o: &Output) -> String {
    assert!(
        o.status.success(),
        "status {:?}, stderr {}",
        o.status,
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout.clone()).unwrap()
}

#[tokio::test]
async fn probe_send_and_pdu_commands() {
    let sim = SimModem::spawn(SimConfig::default()).await.unwrap();
    let port = sim.link().to_string_lossy().to_string();

    let out = stdout(
        &run(vec![
            "probe".into(),
            "--port".into(),
            port.clone(),
            "--json".into(),
        ])
        .await,
    );
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["model"], "EC25");
    assert_eq!(v["profile"], "quectel_ec25");
    assert_eq!(v["imsi"], "255031234567890");
    assert_eq!(v["registration"], "home");
    assert_eq!(v["operator"], "Kyivstar");

    let table = stdout(&run(vec!["probe".into(), "--port".into(), port.clone()]).await);
    assert!(
        table.contains("operator                Kyivstar"),
        "{table}"
    );

    let out = stdout(
        &run(vec![
            "send".into(),
            "--port".into(),
            port.clone(),
            "--to".into(),
            "+380501234567".into(),
            "Привіт".into(),
        ])
        .await,
    );
    assert!(out.contains("\"refs\""), "{out}");
    assert_eq!(sim.sent()[0].text, "Привіт");

    let enc = stdout(
        &run(vec![
            "pdu".into(),
            "encode".into(),
            "--to".into(),
            "+380501234567".into(),
            "Привіт".into(),
        ])
        .await,
    );
    let parts: serde_json::Value = serde_json::from_str(&enc).unwrap();
    let hex = parts[0]["hex"].as_str().unwrap().to_string();
    assert_eq!(parts[0]["at"], format!("AT+CMGS={}", parts[0]["tpdu_len"]));
    let dec = stdout(&run(vec!["pdu".into(), "decode".into(), hex]).await);
    assert!(dec.contains("Привіт"), "{dec}");

    let bad = run(vec![
        "probe".into(),
        "--port".into(),
        "/nonexistent/ttyUSB9".into(),
    ])
    .await;
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("cannot open /nonexistent/ttyUSB9"));
}
