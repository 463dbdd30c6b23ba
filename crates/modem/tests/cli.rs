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
    let v: serde_json::Value = serde_json::from_str(&dec).unwrap();
    assert_eq!(v["type"], "submit");
    assert_eq!(v["to"], "+380501234567");
    assert_eq!(v["text"], "Привіт");
    assert_eq!(v["coding"], "ucs2");

    let bad = run(vec![
        "probe".into(),
        "--port".into(),
        "/nonexistent/ttyUSB9".into(),
    ])
    .await;
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("cannot open /nonexistent/ttyUSB9"));
}

fn args(a: &[&str]) -> Vec<String> {
    a.iter().map(|s| s.to_string()).collect()
}

fn json(o: &Output) -> serde_json::Value {
    let out = stdout(o);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"))
}

/// Every key `pdu decode` documents, present for every message type.
const DECODE_KEYS: [&str; 19] = [
    "type",
    "smsc",
    "from",
    "to",
    "text",
    "coding",
    "dcs",
    "class",
    "timestamp",
    "discharge_time",
    "concat",
    "data_hex",
    "message_reference",
    "status",
    "outcome",
    "status_report",
    "validity_minutes",
    "extra_hex",
    "warnings",
];

fn assert_flat(v: &serde_json::Value) {
    let obj = v
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {v}"));
    let mut keys: Vec<&str> = obj.keys().map(String::as_str).collect();
    keys.sort_unstable();
    let mut want = DECODE_KEYS.to_vec();
    want.sort_unstable();
    assert_eq!(keys, want, "{v}");
}

#[tokio::test]
async fn pdu_decode_prints_flat_documented_json() {
    // SMS-DELIVER with the SMSC block: flat keys, RFC 3339 with the offset
    let v = json(
        &run(args(&[
            "pdu",
            "decode",
            "07917283010010F5040BC87238880900F10000993092516195800AE8329BFD4697D9EC37",
        ]))
        .await,
    );
    assert_flat(&v);
    assert_eq!(v["type"], "deliver");
    assert_eq!(v["smsc"], "+27381000015");
    assert_eq!(v["from"], "27838890001");
    assert_eq!(v["to"], serde_json::Value::Null);
    assert_eq!(v["text"], "hellohello");
    assert_eq!(v["coding"], "gsm7");
    assert_eq!(v["timestamp"], "1999-03-29T15:16:59+02:00");
    assert_eq!(v["concat"], serde_json::Value::Null);
    assert_eq!(v["data_hex"], "68656C6C6F68656C6C6F");
    assert_eq!(v["warnings"], serde_json::json!([]));

    // one part of a concatenated message: concat {ref, part, total}
    let part = crossline_pdu::encode_deliver(
        &crossline_pdu::Address::parse("+380501234567").unwrap(),
        &"Привіт! ".repeat(20),
        &crossline_pdu::Timestamp {
            year: 2026,
            month: 12,
            day: 7,
            hour: 9,
            minute: 30,
            second: 0,
            tz_quarter_hours: 8,
        },
        77,
        false,
    )
    .unwrap()
    .remove(1);
    let v = json(&run(args(&["pdu", "decode", &part.hex()])).await);
    assert_flat(&v);
    assert_eq!(v["type"], "deliver");
    assert_eq!(v["from"], "+380501234567");
    assert_eq!(v["timestamp"], "2026-12-07T09:30:00+02:00");
    assert_eq!(
        v["concat"],
        serde_json::json!({"ref": 77, "part": 2, "total": 3})
    );

    // SMS-SUBMIT: its SMSC is decoded too, and the message reference
    let v = json(
        &run(args(&[
            "pdu",
            "decode",
            "079153485002020911000C915348870420140000A71154747A0E4ACF41F4F29C9E769F4121",
        ]))
        .await,
    );
    assert_flat(&v);
    assert_eq!(v["type"], "submit");
    assert_eq!(v["smsc"], "+358405202090");
    assert_eq!(v["to"], "+358478400241");
    assert_eq!(v["text"], "This is testing !");
    assert_eq!(v["message_reference"], 0);
    assert_eq!(v["validity_minutes"], 1440);

    // SMS-STATUS-REPORT: status, outcome, message reference
    let v = json(
        &run(args(&[
            "pdu",
            "decode",
            "0006040D91945152991136F00160124130340A0160124130940A00",
        ]))
        .await,
    );
    assert_flat(&v);
    assert_eq!(v["type"], "status-report");
    assert_eq!(v["to"], "+4915259911630");
    assert_eq!(v["message_reference"], 4);
    assert_eq!(v["status"], 0);
    assert_eq!(v["outcome"], "delivered");
    assert!(
        v["timestamp"].as_str().unwrap().starts_with("2010-06-21T"),
        "{v}"
    );

    // octets past TP-UDL: decoded by TP-UDL, reported as a field and a warning
    let o = run(args(&[
        "pdu",
        "decode",
        "07917283010010F5040BC87238880900F10000993092516195800AE8329BFD4697D9EC370A0B0C",
    ]))
    .await;
    let v = json(&o);
    assert_flat(&v);
    assert_eq!(v["text"], "hellohello");
    assert_eq!(v["extra_hex"], "0A0B0C");
    assert_eq!(v["warnings"].as_array().unwrap().len(), 1);
    assert!(String::from_utf8_lossy(&o.stderr).contains("warning: 3 octet(s)"));

    // what cannot be decoded at all is an error naming the field
    let bad = run(args(&["pdu", "decode", "0791"])).await;
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("cannot decode the PDU"),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
}

#[tokio::test]
async fn pdu_encode_takes_coding_validity_and_smsc() {
    let parts = json(
        &run(args(&[
            "pdu",
            "encode",
            "--to",
            "+358478400241",
            "--validity",
            "0xA7",
            "--smsc",
            "+358405202090",
            "This is testing !",
        ]))
        .await,
    );
    // byte for byte oFono's SUBMIT, SMSC block included
    assert_eq!(
        parts[0]["hex"],
        "079153485002020911000C915348870420140000A71154747A0E4ACF41F4F29C9E769F4121"
    );
    assert_eq!(parts[0]["tpdu_len"], 29);
    assert_eq!(parts[0]["at"], "AT+CMGS=29");
    assert_eq!(parts[0]["coding"], "gsm7");
    assert_eq!(parts[0]["validity_minutes"], 1440);

    // minutes, rounded up to what TP-VP can express; ucs2 forced
    let parts = json(
        &run(args(&[
            "pdu",
            "encode",
            "--to",
            "+380501234567",
            "--coding",
            "ucs2",
            "--validity",
            "61",
            "hello",
        ]))
        .await,
    );
    assert_eq!(parts[0]["coding"], "ucs2");
    assert_eq!(parts[0]["validity_minutes"], 65);
    let v = json(&run(args(&["pdu", "decode", parts[0]["hex"].as_str().unwrap()])).await);
    assert_eq!(v["text"], "hello");
    assert_eq!(v["smsc"], serde_json::Value::Null);

    // no validity by default; gsm7 refuses what it cannot carry
    let parts = json(&run(args(&["pdu", "encode", "--to", "+380501234567", "hi"])).await);
    assert_eq!(parts[0]["validity_minutes"], serde_json::Value::Null);
    let bad = run(args(&[
        "pdu",
        "encode",
        "--to",
        "+380501234567",
        "--coding",
        "gsm7",
        "Привіт",
    ]))
    .await;
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("use --coding ucs2 or auto"));
    let bad = run(args(&[
        "pdu",
        "encode",
        "--to",
        "+380501234567",
        "--validity",
        "tomorrow",
        "hi",
    ]))
    .await;
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--validity"));
}

#[tokio::test]
async fn pdu_ussd_decode_takes_the_dcs_and_the_data() {
    // Huawei: packed GSM 7-bit hex
    let v = json(&run(args(&["pdu", "ussd-decode", "--dcs", "15", "AA180C3602"])).await);
    assert_eq!(
        v,
        serde_json::json!({"dcs": 15, "coding": "gsm7", "format": "gsm7-packed", "text": "*100#"})
    );
    // UCS2 hex with a UCS2 DCS, given in hex
    let hex: String = "Баланс: 10 грн"
        .encode_utf16()
        .map(|u| format!("{u:04X}"))
        .collect();
    let v = json(&run(args(&["pdu", "ussd-decode", "--dcs", "0x48", &hex])).await);
    assert_eq!(v["text"], "Баланс: 10 грн");
    assert_eq!(v["coding"], "ucs2");
    assert_eq!(v["format"], "ucs2");
    // told the form: "1234" is text, not hex
    let v = json(
        &run(args(&[
            "pdu",
            "ussd-decode",
            "--dcs",
            "15",
            "--format",
            "text",
            "1234",
        ]))
        .await,
    );
    assert_eq!(v["text"], "1234");
    let bad = run(args(&["pdu", "ussd-decode", "--dcs", "300", "AA"])).await;
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--dcs"));
}
