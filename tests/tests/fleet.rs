//! Fleet enrollment against the real binaries (docs/FLEET.md): an appliance
//! with only a bootstrap token enrolls, waits as pending, is approved (HTTP
//! API, and the CLI for a second one), stores its own credential, reconnects
//! with it and syncs; a wrong bootstrap token is refused; an enrolling client
//! cannot reach other enrollments or devices; a revoked device is
//! disconnected at once and refused after.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crossline_sim::{SimConfig, SimModem};
use crossline_tests::mqtt_cli::publish_as;
use crossline_tests::proc::{Appliance, Mgmt, run_ok};
use crossline_tests::{http, wait_for};
use serde_json::Value;
use std::time::Duration;

const LONG: Duration = Duration::from_secs(30);

/// An enrolling MQTT client in this process (user `enroll`, the bootstrap
/// token as password) that subscribes to `filters` again after every
/// (re)connect and keeps every message it receives as `topic payload`.
struct Spy {
    client: rumqttc::Client,
    lines: std::sync::mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Spy {
    fn start(port: u16, id: &str, token: &str, filters: &[&str]) -> Spy {
        use rumqttc::{Event, MqttOptions, Packet, QoS};
        let mut opts = MqttOptions::new(id, "127.0.0.1", port);
        opts.set_credentials("enroll", token);
        opts.set_keep_alive(Duration::from_secs(5));
        let (client, mut conn) = rumqttc::Client::new(opts, 64);
        let (tx, lines) = std::sync::mpsc::channel();
        let sub = client.clone();
        let filters: Vec<String> = filters.iter().map(|f| f.to_string()).collect();
        std::thread::spawn(move || {
            for n in conn.iter() {
                match n {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        for f in &filters {
                            let _ = sub.try_subscribe(f.as_str(), QoS::AtLeastOnce);
                        }
                    }
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        let line = format!("{} {}", p.topic, String::from_utf8_lossy(&p.payload));
                        if tx.send(line).is_err() {
                            return;
                        }
                    }
                    Ok(_) => {}
                    // Refused or cut: rumqttc reconnects on the next poll.
                    Err(_) => std::thread::sleep(Duration::from_millis(200)),
                }
            }
        });
        Spy {
            client,
            lines,
            seen: Vec::new(),
        }
    }

    /// Publishes `payload` to `topic` (again every 500 ms) until a message
    /// containing `needle` arrives; panics after 20 s.
    fn wait_for(&mut self, needle: &str, topic: &str, payload: &str) {
        let end = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            let _ = self
                .client
                .try_publish(topic, rumqttc::QoS::AtLeastOnce, false, payload);
            let round = std::time::Instant::now() + Duration::from_millis(500);
            while let Some(left) = round.checked_duration_since(std::time::Instant::now()) {
                match self.lines.recv_timeout(left) {
                    Ok(l) => {
                        let hit = l.contains(needle);
                        self.seen.push(l);
                        if hit {
                            return;
                        }
                    }
                    Err(_) => break,
                }
            }
            assert!(
                std::time::Instant::now() < end,
                "no {needle:?} within 20 s; saw {:?}",
                self.seen
            );
        }
    }

    /// Everything received so far into `seen`.
    fn drain(&mut self) {
        while let Ok(l) = self.lines.try_recv() {
            self.seen.push(l);
        }
    }
}

impl Drop for Spy {
    fn drop(&mut self) {
        let _ = self.client.try_disconnect();
    }
}

fn get_json(mgmt: &Mgmt, token: &str, path: &str) -> Option<Value> {
    let (status, body) = http("GET", mgmt.http_port, path, Some(token), None).ok()?;
    (status == 200).then(|| serde_json::from_str(&body).ok())?
}

fn post(mgmt: &Mgmt, token: &str, path: &str, body: &str) -> (u16, String) {
    http("POST", mgmt.http_port, path, Some(token), Some(body)).unwrap()
}

/// The pending enrollment whose serial is `serial`: its id.
fn pending_with_serial(mgmt: &Mgmt, token: &str, serial: &str) -> Option<String> {
    let list = get_json(mgmt, token, "/api/v1/fleet/enrollments?state=pending")?;
    list.as_array()?
        .iter()
        .find(|e| e["serial"] == serial)
        .and_then(|e| e["id"].as_str().map(str::to_string))
}

fn device<'a>(devices: &'a Value, id: &str) -> Option<&'a Value> {
    devices.as_array()?.iter().find(|d| d["id"] == id)
}

fn enrolling_appliance(dir: &std::path::Path, name: &str, port: u16, token: &str) -> Appliance {
    enrolling_appliance_with(dir, name, port, token, "")
}

/// An enrolling appliance with `extra` TOML (modems) appended.
fn enrolling_appliance_with(
    dir: &std::path::Path,
    name: &str,
    port: u16,
    token: &str,
    extra: &str,
) -> Appliance {
    Appliance::from_toml(
        dir,
        name,
        &format!(
            "data_dir = \"{{data}}\"\n[mqtt]\nurl = \"mqtt://127.0.0.1:{port}\"\nkeep_alive_s = 5\n\
             [enroll]\nbootstrap_token = \"{token}\"\nserial = \"serial-{name}\"\nretry_s = 1\nmodem_probe_s = 10\n\
             [sync]\nresend_after_ms = 1500\n[synthetic]\nrate = 50\ntotal = 40\n{extra}"
        ),
    )
}

/// The MAC addresses the appliance reports: every interface but `lo`.
fn host_macs() -> Vec<String> {
    let mut macs: Vec<String> = std::fs::read_dir("/sys/class/net")
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name() != "lo")
        .filter_map(|e| std::fs::read_to_string(e.path().join("address")).ok())
        .map(|m| m.trim().to_string())
        .filter(|m| m.len() == 17 && m != "00:00:00:00:00:00")
        .collect();
    macs.sort();
    macs.dedup();
    macs
}

#[test]
fn enrollment_approval_revocation() {
    let tmp = tempfile::tempdir().unwrap();
    let mut mgmt = Mgmt::new(tmp.path().join("mgmt"), None);
    mgmt.start();
    let api = mgmt.api_token();
    let port = mgmt.mqtt_port;
    let data = mgmt.data.to_string_lossy().into_owned();
    let bootstrap = run_ok("crossline-mgmt", &["--data-dir", &data, "enroll", "token"])
        .trim()
        .to_string();
    assert_eq!(bootstrap.len(), 64);

    // A wrong bootstrap token is refused at CONNECT; the appliance keeps
    // trying and never shows up as pending.
    let mut wrong = enrolling_appliance(tmp.path(), "wrong", port, "not-the-token");
    wrong.start();

    // shop-a has a modem (simulated, on a real PTY) whose IMEI it reports.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let link = tmp.path().join("tty-shop-a");
    let imei = "861234059876543";
    let _sim = rt
        .block_on(SimModem::spawn(SimConfig {
            link: Some(link.clone()),
            own_number: "+380670000041".into(),
            imei: imei.into(),
            ..SimConfig::default()
        }))
        .unwrap();
    let mut app = enrolling_appliance_with(
        tmp.path(),
        "shop-a",
        port,
        &bootstrap,
        &format!(
            "[[modems]]\nlabel = \"gsm0\"\nport = \"{}\"\nprofile = \"quectel_ec25\"\n",
            link.display()
        ),
    );
    app.start();
    let eid = wait_for("shop-a pending at mgmt", LONG, || {
        pending_with_serial(&mgmt, &api, "serial-shop-a")
    });
    let cli_list = run_ok("crossline-mgmt", &["--data-dir", &data, "enroll", "list"]);
    assert!(
        cli_list.contains(&eid) && cli_list.contains("pending"),
        "{cli_list}"
    );
    let enrollment = get_json(&mgmt, &api, "/api/v1/fleet/enrollments").unwrap();
    let e = enrollment
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["id"] == eid.as_str())
        .unwrap();
    assert!(!e["software"].as_str().unwrap().is_empty());
    // Its hardware identity: the modem's IMEI, this host's MACs, the serial.
    assert_eq!(e["imeis"], serde_json::json!([imei]), "{e}");
    assert_eq!(e["serial"], "serial-shop-a");
    let macs = host_macs();
    assert!(
        !macs.is_empty(),
        "this host has no network interface but lo"
    );
    assert_eq!(e["macs"], serde_json::json!(macs), "{e}");
    assert!(
        cli_list.contains(imei) && cli_list.contains("serial-shop-a"),
        "{cli_list}"
    );

    // The wrong-token appliance was refused (its log says so) and is not queued.
    wait_for("the wrong token refused", LONG, || {
        std::fs::read_to_string(&wrong.log)
            .ok()
            .filter(|l| l.contains("refused the bootstrap token"))
    });
    assert!(pending_with_serial(&mgmt, &api, "serial-wrong").is_none());
    assert!(!publish_as(
        port,
        "0123456789abcdef0123456789abcdef",
        "enroll",
        "not-the-token",
        "crossline/v1/enroll/0123456789abcdef0123456789abcdef/req",
        "{}"
    ));

    // An enrolling client (right token, its own enrollment id) cannot read
    // shop-a's answer (which carries the secret) nor any device topic.
    let spy_id = "fedcba9876543210fedcba9876543210";
    let own = format!("crossline/v1/enroll/{spy_id}/resp");
    let others = format!("crossline/v1/enroll/{eid}/resp");
    // One MQTT connection that both subscribes and publishes: the broker
    // ties an enrolling session to its client id, so a second client with
    // the same id (mosquitto_pub next to a mosquitto_sub) would take the
    // session over and the answer could arrive while the subscriber is away.
    let mut spy = Spy::start(
        port,
        spy_id,
        &bootstrap,
        &[
            &own,
            &others,
            "crossline/v1/enroll/+/resp",
            "crossline/v1/d/+/events",
        ],
    );
    // The spy's own request is answered (pending): the positive control.
    spy.wait_for(
        "pending",
        &format!("crossline/v1/enroll/{spy_id}/req"),
        r#"{"v":1,"software":"spy"}"#,
    );
    // Writing outside its enrollment topics gets it disconnected.
    assert!(!publish_as(
        port,
        spy_id,
        "enroll",
        &bootstrap,
        "crossline/v1/d/shop-a/events",
        "{}"
    ));

    // Approve through the HTTP API: the appliance gets its own credential,
    // stores it, reconnects with it and syncs its log.
    let (status, body) = post(
        &mgmt,
        &api,
        &format!("/api/v1/fleet/enrollments/{eid}/approve"),
        r#"{"device":"shop-a","name":"Shop A","site":"kyiv","tags":["pilot"]}"#,
    );
    assert_eq!(status, 200, "{body}");
    let (status, _) = post(
        &mgmt,
        &api,
        &format!("/api/v1/fleet/enrollments/{eid}/approve"),
        r#"{"device":"shop-a2"}"#,
    );
    assert_eq!(status, 409, "approving twice");
    wait_for("shop-a's 40 events at mgmt", LONG, || {
        crossline_tests::mgmt_counts(mgmt.http_port, &api).filter(|c| c.get("shop-a") == Some(&40))
    });
    let identity: Value =
        serde_json::from_str(&std::fs::read_to_string(app.data.join("identity.json")).unwrap())
            .unwrap();
    assert_eq!(identity["device"], "shop-a");
    let secret = identity["secret"].as_str().unwrap().to_string();
    let devices = get_json(&mgmt, &api, "/api/v1/fleet/devices").unwrap();
    let d = device(&devices, "shop-a").unwrap();
    assert_eq!(d["site"], "kyiv");
    assert_eq!(d["name"], "Shop A");
    assert_eq!(d["tags"], serde_json::json!(["pilot"]));
    assert_eq!(d["serial"], "serial-shop-a");
    // The spy never saw shop-a's answer with its secret.
    spy.drain();
    assert!(
        !spy.seen
            .iter()
            .any(|l| l.contains(&secret) || l.contains("shop-a")),
        "an enrolling client read another appliance's credential: {:?}",
        spy.seen
    );
    drop(spy);
    // mgmt forgot the clear secret once the device connected with it.
    wait_for("the clear secret dropped", LONG, || {
        let conn = rusqlite::Connection::open(mgmt.db()).ok()?;
        let n: i64 = conn
            .query_row(
                "SELECT count(*) FROM fleet_enrollment WHERE issued_secret IS NOT NULL",
                [],
                |r| r.get(0),
            )
            .ok()?;
        (n == 0).then_some(())
    });

    // A restart uses the stored credential (no second enrollment).
    assert!(app.sigterm());
    app.start();
    wait_for("shop-a online again", LONG, || {
        let devices = get_json(&mgmt, &api, "/api/v1/fleet/devices")?;
        device(&devices, "shop-a")
            .filter(|d| d["online"] == true)
            .map(|_| ())
    });
    let enrollments = get_json(&mgmt, &api, "/api/v1/fleet/enrollments").unwrap();
    assert_eq!(
        enrollments
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["serial"] == "serial-shop-a")
            .count(),
        1
    );

    // A second appliance approved with the CLI (the running mgmt delivers).
    let mut app_b = enrolling_appliance(tmp.path(), "shop-b", port, &bootstrap);
    app_b.start();
    let eid_b = wait_for("shop-b pending", LONG, || {
        pending_with_serial(&mgmt, &api, "serial-shop-b")
    });
    run_ok(
        "crossline-mgmt",
        &[
            "--data-dir",
            &data,
            "enroll",
            "approve",
            &eid_b,
            "--device",
            "shop-b",
            "--site",
            "lviv",
            "--tag",
            "pilot",
        ],
    );
    wait_for("shop-b's events at mgmt", LONG, || {
        crossline_tests::mgmt_counts(mgmt.http_port, &api).filter(|c| c.get("shop-b") == Some(&40))
    });

    // Re-key shop-a: mgmt sends the new secret over the device's session;
    // the appliance stores it (identity.json), reconnects with it and keeps
    // working; then the old secret is refused.
    let (status, body) = post(&mgmt, &api, "/api/v1/fleet/devices/shop-a/rekey", "");
    assert_eq!(status, 202, "{body}");
    let asked: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(asked["rekey"]["state"], "pending", "{body}");
    assert!(
        asked.get("secret").is_none(),
        "the API does not show the secret"
    );
    let rekey = wait_for("shop-a re-keyed", LONG, || {
        let d = get_json(&mgmt, &api, "/api/v1/fleet/devices/shop-a")?;
        (d["rekey"]["state"] == "done").then(|| d["rekey"].clone())
    });
    assert_eq!(rekey["id"], asked["rekey"]["id"]);
    let identity: Value =
        serde_json::from_str(&std::fs::read_to_string(app.data.join("identity.json")).unwrap())
            .unwrap();
    assert_eq!(identity["device"], "shop-a");
    let fresh = identity["secret"].as_str().unwrap().to_string();
    assert_ne!(fresh, secret, "identity.json holds the new secret");
    let topic = "crossline/v1/d/shop-a/telemetry";
    assert!(
        !publish_as(port, "shop-a", "shop-a", &secret, topic, "{}"),
        "the old secret still works after the re-key"
    );
    // The appliance works on with the new secret: a command round trip, and
    // a restart reconnects with the stored secret.
    let (status, body) = post(
        &mgmt,
        &api,
        "/api/v1/fleet/devices/shop-a/commands",
        r#"{"type":"rescan_modems"}"#,
    );
    assert_eq!(status, 202, "{body}");
    let cmd: Value = serde_json::from_str(&body).unwrap();
    let cmd_id = cmd["id"].as_str().unwrap().to_string();
    wait_for("the command after the re-key answered", LONG, || {
        let c = get_json(&mgmt, &api, &format!("/api/v1/fleet/commands/{cmd_id}"))?;
        (c["ok"] == true).then_some(())
    });
    let log = std::fs::read_to_string(&app.log).unwrap();
    assert!(log.contains("new secret from mgmt stored"), "{log}");
    assert!(app.sigterm());
    app.start();
    wait_for(
        "shop-a online with its new secret after a restart",
        LONG,
        || {
            let devices = get_json(&mgmt, &api, "/api/v1/fleet/devices")?;
            device(&devices, "shop-a")
                .filter(|d| d["online"] == true)
                .map(|_| ())
        },
    );
    {
        let conn = rusqlite::Connection::open(mgmt.db()).unwrap();
        let (actor, detail): (String, String) = conn
            .query_row(
                "SELECT actor, detail FROM audit_log WHERE action = 'fleet.device.rekey' AND target = 'shop-a'",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert_eq!(
            (actor.as_str(), detail.as_str()),
            ("api-token", rekey["id"].as_str().unwrap())
        );
    }
    let secret = fresh;

    // Revoke shop-a through the API: disconnected at once (mgmt sees it
    // offline), refused from then on; shop-b is unaffected.
    let (status, body) = post(&mgmt, &api, "/api/v1/fleet/devices/shop-a/revoke", "");
    assert_eq!(status, 200, "{body}");
    wait_for("shop-a offline after revoke", LONG, || {
        let devices = get_json(&mgmt, &api, "/api/v1/fleet/devices")?;
        device(&devices, "shop-a")
            .filter(|d| d["online"] == false && d["revoked"] == true)
            .map(|_| ())
    });
    assert!(
        !publish_as(
            port,
            "shop-a",
            "shop-a",
            &secret,
            "crossline/v1/d/shop-a/telemetry",
            "{}"
        ),
        "a revoked device was accepted"
    );
    let devices = get_json(&mgmt, &api, "/api/v1/fleet/devices").unwrap();
    assert_eq!(device(&devices, "shop-b").unwrap()["online"], true);

    // A revoked device cannot be re-keyed (it could not receive the secret).
    let (status, body) = post(&mgmt, &api, "/api/v1/fleet/devices/shop-a/rekey", "");
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("revoked"), "{body}");
    assert!(
        app.is_running(),
        "a refused appliance keeps running (and its log)"
    );
    wrong.sigkill();
    assert!(mgmt.sigterm());
}

/// A tiny HTTP receiver: every request body arrives on the channel.
fn webhook_receiver() -> (u16, std::sync::mpsc::Receiver<String>) {
    use std::io::{BufRead, BufReader, Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let mut reader = BufReader::new(conn.try_clone().unwrap());
            let mut len = 0usize;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0u8; len];
            let _ = reader.read_exact(&mut body);
            let _ = conn.write_all(b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n");
            if tx
                .send(String::from_utf8_lossy(&body).into_owned())
                .is_err()
            {
                break;
            }
        }
    });
    (port, rx)
}

/// Waits for a webhook body matching `pred`; returns it.
fn next_hook(
    rx: &std::sync::mpsc::Receiver<String>,
    what: &str,
    pred: impl Fn(&Value) -> bool,
) -> Value {
    let end = std::time::Instant::now() + LONG;
    loop {
        let left = end.saturating_duration_since(std::time::Instant::now());
        let body = rx
            .recv_timeout(left)
            .unwrap_or_else(|_| panic!("no webhook call: {what}"));
        let v: Value = serde_json::from_str(&body).unwrap();
        if pred(&v) {
            return v;
        }
    }
}

#[test]
fn telemetry_history_and_offline_alert() {
    let tmp = tempfile::tempdir().unwrap();
    let (hook_port, hooks) = webhook_receiver();
    let mut mgmt = Mgmt::new(tmp.path().join("mgmt"), None);
    mgmt.set_config(&format!(
        "[fleet]\ntick_ms = 200\n[fleet.alerts]\neval_s = 0.2\noffline_after_s = 1\n\
         heartbeat_timeout_s = 4\nwebhook_url = \"http://127.0.0.1:{hook_port}/alerts\"\n"
    ));
    let secret = mgmt.add_device("branch-t");
    mgmt.start();
    let api = mgmt.api_token();
    let mut app = Appliance::with_config(
        tmp.path(),
        "branch-t",
        &secret,
        mgmt.mqtt_port,
        "[telemetry]\ninterval_s = 0.3\n",
    );
    app.start();

    // Telemetry arrives, is kept as the latest sample and as history.
    let detail = wait_for("telemetry history at mgmt", LONG, || {
        let d = get_json(&mgmt, &api, "/api/v1/fleet/devices/branch-t")?;
        let has = d["series"].as_array()?.iter().any(|s| s == "disk_used_pct");
        has.then_some(d)
    });
    let t = &detail["device"]["telemetry"]["system"];
    assert!(!t["version"].as_str().unwrap().is_empty());
    assert!(t["disk_used_pct"].as_f64().unwrap() > 0.0);
    assert!(t["host_uptime_s"].as_u64().unwrap() > 0);
    let points = wait_for("several disk samples", LONG, || {
        let p = get_json(
            &mgmt,
            &api,
            "/api/v1/fleet/devices/branch-t/telemetry?series=disk_used_pct&since_s=600",
        )?;
        (p.as_array()?.len() >= 3).then_some(p)
    });
    assert!(points[0]["value"].as_f64().unwrap() > 0.0);

    // Killed: the broker's keep-alive expires, the last will says offline,
    // and after offline_after_s the alert is raised (stored and POSTed).
    app.sigkill();
    let raised = next_hook(&hooks, "offline raised", |v| {
        v["event"] == "raised" && v["kind"] == "offline" && v["device"] == "branch-t"
    });
    let open = get_json(&mgmt, &api, "/api/v1/fleet/alerts?open=true").unwrap();
    assert!(
        open.as_array()
            .unwrap()
            .iter()
            .any(|a| a["id"] == raised["id"] && a["cleared_ms"].is_null()),
        "{open}"
    );

    // Back: the alert clears (stored with its cleared time, POSTed).
    app.start();
    let cleared = next_hook(&hooks, "offline cleared", |v| {
        v["event"] == "cleared" && v["kind"] == "offline" && v["device"] == "branch-t"
    });
    assert_eq!(cleared["id"], raised["id"]);
    assert!(cleared["cleared_ms"].as_i64().unwrap() >= raised["raised_ms"].as_i64().unwrap());
    let all = get_json(&mgmt, &api, "/api/v1/fleet/alerts?device=branch-t").unwrap();
    let stored = all
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["id"] == raised["id"])
        .unwrap();
    assert!(stored["cleared_ms"].is_i64());
    assert!(app.sigterm());
    assert!(mgmt.sigterm());
}

/// An appliance with a wrong secret, or a device id mgmt does not know,
/// logged nothing for 25 s. The broker's refusal is logged at once, with
/// what to check, and not again on every retry.
#[test]
fn a_refused_appliance_says_why_at_once() {
    let tmp = tempfile::tempdir().unwrap();
    let mut mgmt = Mgmt::new(tmp.path().join("mgmt"), None);
    mgmt.add_device("branch-w");
    mgmt.start();
    let port = mgmt.mqtt_port;
    let mut wrong = Appliance::with_config(tmp.path(), "branch-w", "not-the-secret", port, "");
    let mut unknown = Appliance::with_config(tmp.path(), "branch-u", "any-secret", port, "");
    wrong.start();
    unknown.start();
    for app in [&wrong, &unknown] {
        let line = wait_for(
            "the broker's refusal in the appliance's log",
            Duration::from_secs(10),
            || {
                std::fs::read_to_string(&app.log).ok().and_then(|l| {
                    l.lines()
                        .find(|l| l.contains("refused this appliance"))
                        .map(str::to_string)
                })
            },
        );
        assert!(line.contains("ERROR"), "{line}");
        assert!(line.contains("wrong secret"), "{line}");
        assert!(
            line.contains("node_id") && line.contains(&app.config.display().to_string()),
            "{line}"
        );
    }
    // It keeps retrying (the credential may be fixed at mgmt) without
    // repeating itself: wait for a few more refusals at the broker.
    wait_for("more refused attempts", LONG, || {
        let log = std::fs::read_to_string(&mgmt.log).ok()?;
        (log.matches("MQTT CONNECT refused").count() >= 8).then_some(())
    });
    let log = std::fs::read_to_string(&wrong.log).unwrap();
    assert_eq!(log.matches("refused this appliance").count(), 1, "{log}");
    assert!(wrong.sigterm() && unknown.sigterm());
    assert!(mgmt.sigterm());
}

/// A modem port that does not exist: one clear error at start (not a
/// warning on every retry), the reason in telemetry, and an alert that says
/// "modem disconnected" (not "not registered").
#[test]
fn a_missing_modem_port_is_one_clear_error_and_a_modem_disconnected_alert() {
    let tmp = tempfile::tempdir().unwrap();
    let mut mgmt = Mgmt::new(tmp.path().join("mgmt"), None);
    mgmt.set_config("[fleet]\ntick_ms = 200\n[fleet.alerts]\neval_s = 0.2\n");
    let secret = mgmt.add_device("branch-m");
    mgmt.start();
    let api = mgmt.api_token();
    let port = "/dev/crossline-no-such-modem";
    let mut app = Appliance::with_config(
        tmp.path(),
        "branch-m",
        &secret,
        mgmt.mqtt_port,
        &format!(
            "[telemetry]\ninterval_s = 0.3\n\
             [[modems]]\nlabel = \"gsm0\"\nport = \"{port}\"\nreopen_backoff_max = \"200ms\"\n"
        ),
    );
    app.start();
    let alert = wait_for("the modem_disconnected alert", LONG, || {
        let d = get_json(&mgmt, &api, "/api/v1/fleet/devices/branch-m")?;
        d["alerts"]
            .as_array()?
            .iter()
            .find(|a| a["kind"] == "modem_disconnected" && a["cleared_ms"].is_null())
            .cloned()
    });
    assert_eq!(alert["subject"], "gsm0");
    let detail = alert["detail"].as_str().unwrap();
    assert!(detail.starts_with("modem disconnected: "), "{detail}");
    assert!(
        detail.contains(&format!("{port} does not exist")),
        "{detail}"
    );
    let d = get_json(&mgmt, &api, "/api/v1/fleet/devices/branch-m").unwrap();
    let reason = d["device"]["telemetry"]["modems"][0]["disconnected"]
        .as_str()
        .unwrap_or_else(|| panic!("no reason in telemetry: {d}"));
    assert!(reason.contains("does not exist"), "{reason}");
    assert!(
        !d["alerts"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["kind"] == "not_registered"),
        "{d}"
    );

    // Seconds pass (many retries at 200 ms): still one error, no warning per retry.
    wait_for("a dozen telemetry samples", LONG, || {
        let p = get_json(
            &mgmt,
            &api,
            "/api/v1/fleet/devices/branch-m/telemetry?series=load1&since_s=600",
        )?;
        (p.as_array()?.len() >= 12).then_some(())
    });
    let log = std::fs::read_to_string(&app.log).unwrap();
    let errors: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("modem not reachable"))
        .collect();
    assert_eq!(errors.len(), 1, "{log}");
    assert!(
        errors[0].contains("ERROR") && errors[0].contains(port),
        "{log}"
    );
    assert!(
        log.matches("cannot open the port").count() <= 1,
        "a warning per retry: {log}"
    );
    assert!(app.sigterm());
    assert!(mgmt.sigterm());
}

/// An unplugged modem's alert said "not registered" (its SIM was last seen
/// ready): it says "modem disconnected", and clears when it is back.
#[test]
fn an_unplugged_modem_raises_modem_disconnected_until_it_is_back() {
    let tmp = tempfile::tempdir().unwrap();
    let mut mgmt = Mgmt::new(tmp.path().join("mgmt"), None);
    mgmt.set_config("[fleet]\ntick_ms = 200\n[fleet.alerts]\neval_s = 0.2\n");
    let secret = mgmt.add_device("branch-p");
    mgmt.start();
    let api = mgmt.api_token();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let link = tmp.path().join("tty-branch-p");
    let sim = rt
        .block_on(SimModem::spawn(SimConfig {
            link: Some(link.clone()),
            ..SimConfig::default()
        }))
        .unwrap();
    let mut app = Appliance::with_config(
        tmp.path(),
        "branch-p",
        &secret,
        mgmt.mqtt_port,
        &format!(
            "[telemetry]\ninterval_s = 0.3\n\
             [[modems]]\nlabel = \"gsm0\"\nport = \"{}\"\nreopen_backoff_max = \"200ms\"\n\
             health_interval = \"1s\"\ncommand_timeout = \"1s\"\n",
            link.display()
        ),
    );
    app.start();
    let modem = |d: &Value| d["device"]["telemetry"]["modems"][0].clone();
    wait_for("the modem registered, in telemetry", LONG, || {
        let d = get_json(&mgmt, &api, "/api/v1/fleet/devices/branch-p")?;
        (modem(&d)["registered"] == true).then_some(())
    });

    rt.block_on(sim.unplug()).unwrap();
    let open = |d: &Value, kind: &str| {
        d["alerts"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|a| a["kind"] == kind && a["cleared_ms"].is_null())
            .cloned()
    };
    let (alert, d) = wait_for("the modem_disconnected alert", LONG, || {
        let d = get_json(&mgmt, &api, "/api/v1/fleet/devices/branch-p")?;
        open(&d, "modem_disconnected").map(|a| (a, d))
    });
    let detail = alert["detail"].as_str().unwrap();
    assert!(detail.starts_with("modem disconnected: "), "{detail}");
    assert!(modem(&d)["disconnected"].is_string(), "{d}");
    assert!(open(&d, "not_registered").is_none(), "{d}");

    rt.block_on(sim.replug()).unwrap();
    wait_for("the alert cleared once the modem answers", LONG, || {
        let d = get_json(&mgmt, &api, "/api/v1/fleet/devices/branch-p")?;
        (open(&d, "modem_disconnected").is_none() && modem(&d)["disconnected"].is_null())
            .then_some(())
    });
    assert!(app.sigterm());
    assert!(mgmt.sigterm());
}
