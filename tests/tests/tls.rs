//! TLS across real processes: mgmt's development CA made on first start and
//! kept across restarts; an appliance enrolls and syncs over MQTT over TLS
//! pinning that CA; one pinned to another CA refuses to connect and says
//! why; a plaintext client gets nothing from the TLS port; Debian's
//! mosquitto_pub/sub with and without the CA (against the embedded broker
//! and against Mosquitto configured by `broker mosquitto-config`); the HTTPS
//! API with and without the CA.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crossline_tests::mqtt_cli::client_command;
use crossline_tests::proc::{Appliance, Mgmt, Mosquitto, run_ok};
use crossline_tests::{http, https, wait_for};
use serde_json::Value;
use std::path::Path;
use std::process::Output;
use std::time::Duration;

const LONG: Duration = Duration::from_secs(60);

fn enrolling(dir: &Path, name: &str, mqtt: &str, token: &str, total: u32) -> Appliance {
    Appliance::from_toml(
        dir,
        name,
        &format!(
            "data_dir = \"{{data}}\"\n[mqtt]\n{mqtt}keep_alive_s = 5\n\
             [enroll]\nbootstrap_token = \"{token}\"\nserial = \"serial-{name}\"\nretry_s = 1\n\
             [sync]\nresend_after_ms = 1500\n[synthetic]\nrate = 50\ntotal = {total}\n"
        ),
    )
}

fn api_get(mgmt: &Mgmt, token: &str, path: &str) -> Option<Value> {
    let (status, body) = https(
        "GET",
        mgmt.https_port,
        path,
        Some(token),
        None,
        &mgmt.ca_file(),
    )
    .ok()?;
    (status == 200).then(|| serde_json::from_str(&body).ok())?
}

/// Waits until mgmt has stored `n` events of `device` (its API over HTTPS).
fn wait_events(mgmt: &Mgmt, token: &str, device: &str, n: u64, deadline: Duration) {
    wait_for(&format!("{n} events of {device} at mgmt"), deadline, || {
        let devices = api_get(mgmt, token, "/api/v1/devices")?;
        devices
            .as_array()?
            .iter()
            .find(|d| d["id"] == device && d["events"] == n)
            .map(|_| ())
    });
}

fn pending(mgmt: &Mgmt, token: &str, serial: &str) -> Option<String> {
    let list = api_get(mgmt, token, "/api/v1/fleet/enrollments?state=pending")?;
    list.as_array()?
        .iter()
        .find(|e| e["serial"] == serial)
        .and_then(|e| e["id"].as_str().map(str::to_string))
}

/// mosquitto_pub / mosquitto_sub over TLS (`--cafile` when given).
fn mosquitto(
    program: &str,
    port: u16,
    ca: Option<&Path>,
    user: &str,
    secret: &str,
    args: &[&str],
) -> Output {
    let mut cmd = client_command(program, port, user, user, secret);
    if let Some(ca) = ca {
        cmd.arg("--cafile").arg(ca);
    }
    cmd.args(args).output().unwrap()
}

#[test]
fn enrollment_sync_and_https_over_tls_with_the_pinned_ca() {
    let tmp = tempfile::tempdir().unwrap();
    let mut mgmt = Mgmt::new(tmp.path().join("mgmt"), None);
    mgmt.start();
    let api = mgmt.api_token();
    let data = mgmt.data.to_string_lossy().into_owned();
    let ca = mgmt.ca_file();
    let ca_pem = std::fs::read(&ca).expect("mgmt made its development CA on first start");
    let server_pem = std::fs::read(mgmt.data.join("tls/server.pem")).unwrap();
    let bootstrap = run_ok("crossline-mgmt", &["--data-dir", &data, "enroll", "token"])
        .trim()
        .to_string();

    // `tls ca` prints the PEM appliances pin and its fingerprint.
    let printed = run_ok("crossline-mgmt", &["--data-dir", &data, "tls", "ca"]);
    assert_eq!(printed.as_bytes(), ca_pem.as_slice());
    let fp = run_ok(
        "crossline-mgmt",
        &["--data-dir", &data, "tls", "ca", "--fingerprint"],
    );
    let der = crossline_tls::read_certs(&ca, "").unwrap();
    assert_eq!(fp.trim(), crossline_tls::fingerprint_sha256(&der[0]));

    // Another CA (another mgmt's development CA): what a man in the middle has.
    let other = crossline_tls::dev::ensure(&tmp.path().join("other-ca"), &[]).unwrap();
    let other_ca = other.identity.ca_file.clone();

    // An appliance pinned to the other CA refuses mgmt and says why.
    let wrong_mqtt = format!(
        "url = \"mqtts://127.0.0.1:{}\"\nca_file = \"{}\"\n",
        mgmt.mqtts_port,
        other_ca.display()
    );
    let mut wrong = enrolling(tmp.path(), "wrong-ca", &wrong_mqtt, &bootstrap, 5);
    wrong.start();

    // The real one enrolls over TLS, pinning mgmt's CA.
    let mut app = enrolling(
        tmp.path(),
        "shop-tls",
        &mgmt.mqtts_toml(mgmt.mqtts_port),
        &bootstrap,
        40,
    );
    app.start();
    let eid = wait_for("shop-tls pending (enrolled over TLS)", LONG, || {
        pending(&mgmt, &api, "serial-shop-tls")
    });
    let (status, body) = https(
        "POST",
        mgmt.https_port,
        &format!("/api/v1/fleet/enrollments/{eid}/approve"),
        Some(&api),
        Some(r#"{"device":"branch-tls-1"}"#),
        &ca,
    )
    .unwrap();
    assert_eq!(status, 200, "{body}");
    // It reconnects as the device (over TLS) and its whole log arrives.
    wait_events(&mgmt, &api, "branch-tls-1", 40, LONG);

    let log = wait_for("the wrong-CA appliance's TLS error", LONG, || {
        std::fs::read_to_string(&wrong.log)
            .ok()
            .filter(|l| l.contains("not issued by the CA pinned in"))
    });
    assert!(log.contains(&*other_ca.to_string_lossy()), "{log}");
    assert!(log.contains("refusing to connect"), "{log}");
    assert!(pending(&mgmt, &api, "serial-wrong-ca").is_none());
    assert!(
        wrong.is_running(),
        "it keeps trying, without falling back to plaintext"
    );

    // A plaintext MQTT client on the TLS port gets no CONNACK.
    let plain = mosquitto(
        "mosquitto_pub",
        mgmt.mqtts_port,
        None,
        "enroll",
        &bootstrap,
        &["-t", "x", "-m", "x"],
    );
    assert!(
        !plain.status.success(),
        "plaintext CONNECT accepted on the TLS port"
    );
    // Debian's mosquitto_pub with mgmt's CA talks to the embedded broker
    // (the broker then refuses this token as a device: bad user name or
    // password, i.e. after TLS); with the other CA, TLS itself fails.
    let ok = mosquitto(
        "mosquitto_pub",
        mgmt.mqtts_port,
        Some(&ca),
        "branch-x",
        "nope",
        &["-t", "x", "-m", "x"],
    );
    let ok_err = String::from_utf8_lossy(&ok.stderr);
    assert!(
        ok_err.contains("not authorised") || ok_err.contains("bad user name"),
        "{ok_err}"
    );
    let bad = mosquitto(
        "mosquitto_pub",
        mgmt.mqtts_port,
        Some(&other_ca),
        "branch-x",
        "nope",
        &["-t", "x", "-m", "x"],
    );
    let bad_err = String::from_utf8_lossy(&bad.stderr);
    assert!(!bad.status.success());
    assert!(
        !bad_err.contains("not authorised") && !bad_err.contains("bad user name"),
        "{bad_err}"
    );

    // HTTPS: the API with the CA; refused by a client pinning another CA.
    let (status, _) = https("GET", mgmt.https_port, "/healthz", None, None, &ca).unwrap();
    assert_eq!(status, 200);
    let e = https(
        "GET",
        mgmt.https_port,
        "/api/v1/devices",
        Some(&api),
        None,
        &other_ca,
    )
    .unwrap_err();
    assert!(e.to_string().contains("UnknownIssuer"), "{e}");
    // Plain HTTP still answers on loopback (local tools); a login there sets
    // a cookie without `Secure`, over HTTPS with it.
    let (status, _) = http("GET", mgmt.http_port, "/healthz", None, None).unwrap();
    assert_eq!(status, 200);

    // A restart reuses the certificates (no new CA: appliances stay pinned)
    // and the device reconnects over TLS.
    assert!(mgmt.sigterm());
    mgmt.start();
    assert_eq!(
        std::fs::read(&ca).unwrap(),
        ca_pem,
        "CA regenerated on restart"
    );
    assert_eq!(
        std::fs::read(mgmt.data.join("tls/server.pem")).unwrap(),
        server_pem,
        "server certificate regenerated on restart"
    );
    wait_for(
        "branch-tls-1 online again after mgmt's restart",
        LONG,
        || {
            let devices = api_get(&mgmt, &api, "/api/v1/fleet/devices")?;
            devices
                .as_array()?
                .iter()
                .find(|d| d["id"] == "branch-tls-1" && d["online"] == true)
                .map(|_| ())
        },
    );
}

#[test]
fn mosquitto_tls_listener_with_mgmts_certificate() {
    let tmp = tempfile::tempdir().unwrap();
    let mut mgmt = Mgmt::new(tmp.path().join("mgmt"), None);
    let secret = mgmt.add_device("branch-m1");
    // mosquitto-config generates mgmt's development CA when there is none.
    let mut mosq = Mosquitto::configure(&mgmt, tmp.path().join("mosquitto"));
    mosq.start();
    let tls_port = mosq.tls_port;
    wait_for("mosquitto's TLS listener", Duration::from_secs(20), || {
        std::net::TcpStream::connect(("127.0.0.1", tls_port)).ok()
    });
    let ca = mgmt.ca_file();
    let topic = "crossline/v1/d/branch-m1/presence";
    let pubd = mosquitto(
        "mosquitto_pub",
        tls_port,
        Some(&ca),
        "branch-m1",
        &secret,
        &["-t", topic, "-m", "tls-ok", "-q", "1", "-r"],
    );
    assert!(
        pubd.status.success(),
        "{}",
        String::from_utf8_lossy(&pubd.stderr)
    );
    let sub = mosquitto(
        "mosquitto_sub",
        tls_port,
        Some(&ca),
        "branch-m1",
        &secret,
        &["-t", topic, "-C", "1", "-W", "10"],
    );
    assert_eq!(String::from_utf8_lossy(&sub.stdout).trim(), "tls-ok");
    // Another CA: no TLS session, nothing read.
    let other = crossline_tls::dev::ensure(&tmp.path().join("other-ca"), &[]).unwrap();
    let sub = mosquitto(
        "mosquitto_sub",
        tls_port,
        Some(&other.identity.ca_file),
        "branch-m1",
        &secret,
        &["-t", topic, "-C", "1", "-W", "5"],
    );
    assert!(!sub.status.success());
    assert!(sub.stdout.is_empty());
    // mgmt itself connects to Mosquitto over TLS (mqtts://, pinning its CA).
    mgmt.mqtt_url = Some(format!("mqtts://127.0.0.1:{tls_port}"));
    mgmt.start();
    let api = mgmt.api_token();
    let mut app = Appliance::with_mqtt(
        tmp.path(),
        "branch-m1",
        &secret,
        &mgmt.mqtts_toml(tls_port),
        "[synthetic]\nrate = 50\ntotal = 20\n",
    );
    app.start();
    // As in sync.rs's Mosquitto test, a long deadline: with Mosquitto,
    // mgmt's two service connections (ingestion, fleet) share the user
    // `mgmt` and so one client id (use_username_as_clientid), and keep
    // replacing each other; slow under load, but nothing is lost.
    wait_events(&mgmt, &api, "branch-m1", 20, Duration::from_secs(180));
    mosq.sigkill();
}
