//! Device identity against a running mgmt (embedded broker, registry-backed
//! authentication): unknown, wrong and revoked credentials are refused, and a
//! real third-party client (Debian's mosquitto_sub/mosquitto_pub) holding one
//! device's credential cannot read or write another device's topics.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crossline_tests::mqtt_cli::{Sub, publish_as};
use crossline_tests::proc::{Mgmt, which};
use std::process::{Command, Stdio};

/// `mosquitto_pub` once as device `user` (client id = username).
fn publish(port: u16, user: &str, secret: &str, topic: &str, msg: &str) -> bool {
    publish_as(port, user, user, secret, topic, msg)
}

#[test]
fn credentials_and_topic_isolation_with_a_third_party_client() {
    let tmp = tempfile::tempdir().unwrap();
    let mut mgmt = Mgmt::new(tmp.path().join("mgmt"), None);
    let a = mgmt.add_device("dev-a");
    let b = mgmt.add_device("dev-b");
    mgmt.start();
    let port = mgmt.mqtt_port;
    let svc = std::fs::read_to_string(mgmt.data.join("mgmt.secret"))
        .unwrap()
        .trim()
        .to_string();
    // mgmt's service user may use any client id: it plays the trusted side.
    let service_pub = |topic: &str, msg: &str| {
        let ok = Command::new(which("mosquitto_pub"))
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &port.to_string(),
                "-i",
                "test-ctl",
                "-u",
                "mgmt",
                "-P",
                &svc,
            ])
            .args(["-t", topic, "-m", msg, "-q", "1"])
            .status()
            .unwrap()
            .success();
        assert!(ok, "service publish refused");
    };

    // Right credentials work; wrong, unknown, borrowed-id ones do not.
    assert!(publish(
        port,
        "dev-a",
        &a,
        "crossline/v1/d/dev-a/telemetry",
        "{}"
    ));
    assert!(
        !publish(port, "dev-a", &b, "crossline/v1/d/dev-a/telemetry", "{}"),
        "wrong secret accepted"
    );
    assert!(
        !publish(port, "dev-x", &a, "crossline/v1/d/dev-x/telemetry", "{}"),
        "unknown device accepted"
    );
    let borrowed = Command::new(which("mosquitto_pub"))
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-i",
            "dev-b",
            "-u",
            "dev-a",
            "-P",
            &a,
        ])
        .args([
            "-t",
            "crossline/v1/d/dev-a/telemetry",
            "-m",
            "{}",
            "-q",
            "1",
        ])
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(
        !borrowed.success(),
        "dev-a's credential used with dev-b's client id was accepted"
    );

    // Reading: dev-a subscribes to its own events (allowed, the control), to
    // dev-b's topics and to every device's events; a service-side watcher
    // subscribes to dev-b's topics (the positive control for dev-b's traffic).
    let mut watcher = Sub::start(port, "watcher", "mgmt", &svc, &["crossline/v1/d/dev-b/#"]);
    let mut spy = Sub::start(
        port,
        "dev-a",
        "dev-a",
        &a,
        &[
            "crossline/v1/d/dev-a/events",
            "crossline/v1/d/dev-b/#",
            "crossline/v1/d/+/events",
        ],
    );
    watcher.wait_for("w-ready", || {
        service_pub("crossline/v1/d/dev-b/events", "w-ready")
    });
    spy.wait_for("s-ready", || {
        service_pub("crossline/v1/d/dev-a/events", "s-ready")
    });
    service_pub("crossline/v1/d/dev-b/events", "secret-of-b");
    service_pub("crossline/v1/d/dev-a/events", "after");
    watcher.wait_for("secret-of-b", || {});
    spy.wait_for("after", || {});
    assert!(
        !spy.saw("secret-of-b") && !spy.saw("w-ready"),
        "dev-a read dev-b's topic: {:?}",
        spy.seen
    );
    drop(spy);

    // Writing: dev-a publishes into dev-b's command topic; the watcher sees the
    // later control message but never the forgery.
    let _ = publish(port, "dev-a", &a, "crossline/v1/d/dev-b/cmd", "forged");
    service_pub("crossline/v1/d/dev-b/events", "after-forgery");
    watcher.wait_for("after-forgery", || {});
    assert!(
        !watcher.saw("forged"),
        "dev-a wrote into dev-b's topic: {:?}",
        watcher.seen
    );

    // Revoked: refused from the next connect on; others unaffected.
    mgmt.revoke_device("dev-a");
    assert!(
        !publish(port, "dev-a", &a, "crossline/v1/d/dev-a/telemetry", "{}"),
        "revoked device accepted"
    );
    assert!(publish(
        port,
        "dev-b",
        &b,
        "crossline/v1/d/dev-b/telemetry",
        "{}"
    ));
    drop(watcher);
    assert!(mgmt.sigterm());
}
