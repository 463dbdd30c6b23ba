//! Helpers shared by the broker tests: real third-party MQTT clients
//! (Debian's mosquitto_sub / mosquitto_pub) driven as child processes.

// Test helpers: failing loudly is their job.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod client;

use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;
use tokio::time::{Instant, timeout_at};

/// Upper bound for anything we wait for; generous for a loaded 2-core machine.
pub const WAIT: Duration = Duration::from_secs(15);

/// A credential as an MQTT client presents it.
#[derive(Debug, Clone)]
pub struct Cred {
    pub client_id: String,
    pub user: String,
    pub pass: String,
}

impl Cred {
    pub fn new(client_id: &str, user: &str, pass: &str) -> Self {
        Self {
            client_id: client_id.into(),
            user: user.into(),
            pass: pass.into(),
        }
    }
}

/// Fails loudly when a Debian program the test needs is missing.
pub fn require_program(name: &str, package: &str) {
    match std::process::Command::new(name)
        .arg("--help")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
    {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!(
            "{name} not found: install the Debian package {package} (scripts/test installs it)"
        ),
        Err(e) => panic!("cannot run {name}: {e}"),
    }
}

pub fn require_mosquitto_clients() {
    require_program("mosquitto_sub", "mosquitto-clients");
    require_program("mosquitto_pub", "mosquitto-clients");
    require_program("stdbuf", "coreutils");
}

/// What a running mosquitto_sub printed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Line {
    /// A message: topic and payload.
    Msg(String, String),
    /// The SUBACK return codes ("Subscribed (mid: 1): 1, 128").
    Granted(Vec<u8>),
    /// Anything else (debug lines, errors).
    Other(String),
    /// The process ended (stdout closed).
    Closed,
}

/// A `mosquitto_sub` process subscribed to some filters.
pub struct Sub {
    name: String,
    child: Child,
    rx: mpsc::UnboundedReceiver<Line>,
    messages: Vec<(String, String)>,
    log: Vec<String>,
    closed: bool,
}

impl Sub {
    /// Starts `mosquitto_sub` (QoS 1, line-buffered, debug on so that the SUBACK
    /// is visible) and waits for its SUBACK; returns the granted codes too.
    pub async fn start(port: u16, cred: &Cred, filters: &[&str]) -> (Sub, Vec<u8>) {
        Self::start_with(port, cred, filters, &[]).await
    }

    /// Like [`Sub::start`] with extra mosquitto_sub arguments (e.g. `-V 5`).
    pub async fn start_with(
        port: u16,
        cred: &Cred,
        filters: &[&str],
        extra: &[&str],
    ) -> (Sub, Vec<u8>) {
        let mut cmd = Command::new("stdbuf");
        cmd.args(["-oL", "-eL", "mosquitto_sub"]).args(extra);
        cmd.args(["-d", "-h", "127.0.0.1", "-p"])
            .arg(port.to_string())
            .args(["-i", &cred.client_id])
            .args(credential_args(cred))
            .args(["-q", "1", "-F", "MSG %t %p", "-k", "5"]);
        for f in filters {
            cmd.args(["-t", f]);
        }
        cmd.stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .stdin(Stdio::null())
            .kill_on_drop(true);
        let mut child = cmd.spawn().expect("spawn mosquitto_sub");
        let (tx, rx) = mpsc::unbounded_channel();
        let stdout = child.stdout.take().expect("stdout");
        let stderr = child.stderr.take().expect("stderr");
        let tx2 = tx.clone();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                let _ = tx.send(parse_line(&line));
            }
            let _ = tx.send(Line::Closed);
        });
        tokio::spawn(async move {
            let mut lines = BufReader::new(stderr).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                let _ = tx2.send(Line::Other(format!("stderr: {line}")));
            }
        });
        let mut sub = Sub {
            name: format!("mosquitto_sub {} {:?}", cred.client_id, filters),
            child,
            rx,
            messages: Vec::new(),
            log: Vec::new(),
            closed: false,
        };
        let granted = sub.wait_granted().await;
        (sub, granted)
    }

    async fn next(&mut self, deadline: Instant) -> Option<Line> {
        if self.closed {
            return None;
        }
        match timeout_at(deadline, self.rx.recv()).await {
            Ok(Some(line)) => {
                match &line {
                    Line::Msg(t, p) => self.messages.push((t.clone(), p.clone())),
                    Line::Closed => self.closed = true,
                    _ => {}
                }
                self.log.push(format!("{line:?}"));
                Some(line)
            }
            Ok(None) => {
                self.closed = true;
                None
            }
            Err(_) => None,
        }
    }

    async fn wait_granted(&mut self) -> Vec<u8> {
        let deadline = Instant::now() + WAIT;
        loop {
            match self.next(deadline).await {
                Some(Line::Granted(codes)) => return codes,
                Some(_) => {}
                None => panic!(
                    "{}: no SUBACK within {WAIT:?}; output: {:#?}",
                    self.name, self.log
                ),
            }
        }
    }

    /// Waits until `topic` with `payload` has arrived (maybe already).
    pub async fn wait_for(&mut self, topic: &str, payload: &str) {
        let deadline = Instant::now() + WAIT;
        while !self.has(topic, payload) {
            if self.next(deadline).await.is_none() {
                panic!(
                    "{}: {topic} {payload:?} did not arrive within {WAIT:?}; output: {:#?}",
                    self.name, self.log
                );
            }
        }
    }

    /// Reads whatever is already printed without waiting.
    pub fn drain(&mut self) {
        while let Ok(line) = self.rx.try_recv() {
            match &line {
                Line::Msg(t, p) => self.messages.push((t.clone(), p.clone())),
                Line::Closed => self.closed = true,
                _ => {}
            }
            self.log.push(format!("{line:?}"));
        }
    }

    pub fn has(&self, topic: &str, payload: &str) -> bool {
        self.messages
            .iter()
            .any(|(t, p)| t == topic && p == payload)
    }

    pub fn has_payload(&self, payload: &str) -> bool {
        self.messages.iter().any(|(_, p)| p == payload)
    }

    pub fn messages(&self) -> &[(String, String)] {
        &self.messages
    }

    pub fn log(&self) -> &[String] {
        &self.log
    }

    /// Waits until the process ends by itself (e.g. the broker closed it).
    pub async fn wait_closed(&mut self) {
        let deadline = Instant::now() + WAIT;
        while !self.closed {
            if self.next(deadline).await.is_none() && !self.closed {
                panic!(
                    "{}: still connected after {WAIT:?}; output: {:#?}",
                    self.name, self.log
                );
            }
        }
    }

    pub async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}

fn parse_line(line: &str) -> Line {
    if let Some(rest) = line.strip_prefix("MSG ") {
        let (topic, payload) = rest.split_once(' ').unwrap_or((rest, ""));
        return Line::Msg(topic.to_owned(), payload.to_owned());
    }
    if let Some(rest) = line.strip_prefix("Subscribed (mid: ")
        && let Some((_, codes)) = rest.split_once("): ")
    {
        let codes = codes
            .split(", ")
            .filter_map(|c| c.trim().parse().ok())
            .collect();
        return Line::Granted(codes);
    }
    Line::Other(line.to_owned())
}

/// `-u user -P pass`, or nothing for an anonymous client.
fn credential_args(cred: &Cred) -> Vec<String> {
    if cred.user.is_empty() {
        Vec::new()
    } else {
        vec![
            "-u".into(),
            cred.user.clone(),
            "-P".into(),
            cred.pass.clone(),
        ]
    }
}

/// Outcome of one `mosquitto_pub` run.
#[derive(Debug)]
pub struct PubOutcome {
    pub success: bool,
    pub output: String,
}

/// Publishes one QoS 1 message with `mosquitto_pub` and waits for it to exit.
pub async fn publish(port: u16, cred: &Cred, topic: &str, payload: &str) -> PubOutcome {
    publish_with(port, cred, topic, payload, &[]).await
}

/// Like [`publish`] with extra mosquitto_pub arguments (e.g. `-V 5`).
pub async fn publish_with(
    port: u16,
    cred: &Cred,
    topic: &str,
    payload: &str,
    extra: &[&str],
) -> PubOutcome {
    let out = tokio::time::timeout(
        WAIT,
        Command::new("mosquitto_pub")
            .args(extra)
            .args(["-d", "-h", "127.0.0.1", "-p"])
            .arg(port.to_string())
            .args(["-i", &cred.client_id])
            .args(credential_args(cred))
            .args(["-q", "1", "-t", topic, "-m", payload])
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("mosquitto_pub did not finish in time")
    .expect("run mosquitto_pub");
    PubOutcome {
        success: out.status.success(),
        output: format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    }
}

/// Publishes and insists it worked.
pub async fn publish_ok(port: u16, cred: &Cred, topic: &str, payload: &str) {
    let outcome = publish(port, cred, topic, payload).await;
    assert!(
        outcome.success,
        "mosquitto_pub {topic} failed: {}",
        outcome.output
    );
}

/// Which broker the cross-device checks run against (their refusals differ).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavour {
    /// Ours: SUBACK failure (128) for a foreign filter, disconnect on a foreign publish.
    Embedded,
    /// Mosquitto: grants the filter but delivers nothing, drops the publish silently.
    Mosquitto,
}

/// The cross-device checks. Devices A and C are driven by the real third-party
/// clients (`mosquitto_sub`, `mosquitto_pub`) and try to read and write device
/// B's topics; B and the service user (one rumqttc connection each, publishing and
/// subscribing like the appliance and mgmt do) are the positive controls.
/// Returns the outcome of A's forbidden publish.
pub async fn cross_device_checks(
    port: u16,
    flavour: Flavour,
    a: &Cred,
    b: &Cred,
    c: &Cred,
    service: &Cred,
) -> PubOutcome {
    use client::connect;

    let mut b_client = connect(port, &b.client_id, &b.user, &b.pass).await;
    b_client.subscribe("crossline/v1/d/b/#").await;
    let mut svc = connect(port, &service.client_id, &service.user, &service.pass).await;
    svc.subscribe("crossline/v1/#").await;

    // Device C tries everything ("#"), with its own topics as the control.
    let (mut hash, granted) = Sub::start(port, c, &["#", "crossline/v1/d/c/#"]).await;
    match flavour {
        Flavour::Embedded => assert_eq!(granted, vec![128, 1], "SUBACK of C subscribing to #"),
        Flavour::Mosquitto => assert_eq!(granted.len(), 2, "SUBACK of C subscribing to #"),
    }
    // Device A tries B's events, with its own topics as the control.
    let (mut spy, granted) = Sub::start(
        port,
        a,
        &[
            "crossline/v1/d/a/#",
            "crossline/v1/d/+/events",
            "crossline/v1/d/b/#",
        ],
    )
    .await;
    match flavour {
        Flavour::Embedded => assert_eq!(granted, vec![1, 128, 128], "SUBACK of A's subscriptions"),
        Flavour::Mosquitto => assert_eq!(granted.len(), 3, "SUBACK of A's subscriptions"),
    }
    // Prove the subscriptions are live before the forbidden traffic.
    svc.publish("crossline/v1/d/a/cmd", "control-a-1", false)
        .await;
    svc.publish("crossline/v1/d/c/cmd", "control-c-1", false)
        .await;
    spy.wait_for("crossline/v1/d/a/cmd", "control-a-1").await;
    hash.wait_for("crossline/v1/d/c/cmd", "control-c-1").await;

    // B publishes its events: B itself and the service see them...
    b_client
        .publish("crossline/v1/d/b/events", "secret-of-b", false)
        .await;
    b_client
        .expect("crossline/v1/d/b/events", "secret-of-b")
        .await;
    svc.expect("crossline/v1/d/b/events", "secret-of-b").await;
    // ...and once a later control message has reached A and C, B's would have too.
    svc.publish("crossline/v1/d/a/cmd", "control-a-2", false)
        .await;
    svc.publish("crossline/v1/d/c/cmd", "control-c-2", false)
        .await;
    spy.wait_for("crossline/v1/d/a/cmd", "control-a-2").await;
    hash.wait_for("crossline/v1/d/c/cmd", "control-c-2").await;
    spy.drain();
    hash.drain();
    assert!(
        !spy.has_payload("secret-of-b"),
        "A read B's events: {:?}",
        spy.messages()
    );
    assert!(
        !hash.has_payload("secret-of-b"),
        "C read B's events: {:?}",
        hash.messages()
    );
    spy.stop().await;
    hash.stop().await;

    // --- A tries to write into B's topics, as itself...
    let forged = publish(port, a, "crossline/v1/d/b/cmd", "forged-by-a").await;
    // ...and as a third-party client pretending to be B: A's credential, client id "b".
    let impostor = Cred {
        client_id: b.client_id.clone(),
        ..a.clone()
    };
    let impostor_pub = publish(port, &impostor, "crossline/v1/d/b/events", "forged-as-b").await;
    if flavour == Flavour::Embedded {
        assert!(
            !impostor_pub.success,
            "client id b with a's credential was accepted"
        );
        assert!(
            impostor_pub.output.contains("not authorised"),
            "refusal reason: {}",
            impostor_pub.output
        );
    }
    // Positive control after the forbidden traffic; it also proves B's session
    // was not taken over by the impostor.
    svc.publish("crossline/v1/d/b/cmd", "control-b-2", false)
        .await;
    b_client.expect("crossline/v1/d/b/cmd", "control-b-2").await;
    svc.expect("crossline/v1/d/b/cmd", "control-b-2").await;
    for (who, c) in [("B", &b_client), ("the service", &svc)] {
        assert!(
            !c.saw_payload("forged-by-a"),
            "A wrote into B's topics, {who} saw it: {:?}",
            c.seen
        );
        assert!(
            !c.saw_payload("forged-as-b"),
            "A posed as B, {who} saw it: {:?}",
            c.seen
        );
        assert!(
            !c.seen.iter().any(|ev| matches!(ev, client::Ev::Closed(_))),
            "{who} lost its connection: {:?}",
            c.seen
        );
    }
    forged
}
