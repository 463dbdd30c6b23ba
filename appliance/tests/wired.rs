//! `crossline_appliance::run` wired end to end against Debian's Mosquitto
//! (the test plays mgmt over MQTT) and a simulated modem on a real PTY: the
//! uplink exposes the ack and publishes telemetry, an SMS leaves the SIM only
//! after mgmt's ack, a command from mgmt goes out on the line, and the uplink
//! state drives the offline auto-reply.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crossline_appliance::Config;
use crossline_appliance::config::{ModemEntry, MqttConfig, OfflineConfig};
use crossline_core::{EventBody, EventId, NodeId};
use crossline_proto::{
    Ack, Command, CommandKind, DeviceTopic, EventBatch, Kind, Telemetry, VERSION, decode, encode,
};
use crossline_sim::{SimConfig, SimModem};
use crossline_testkit::free_port;
use rumqttc::{AsyncClient, Event as MqttEvent, MqttOptions, Packet, QoS};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

const WAIT: Duration = Duration::from_secs(30);

fn mosquitto_path() -> PathBuf {
    ["/usr/sbin/mosquitto", "/usr/bin/mosquitto"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .unwrap_or_else(|| {
            panic!("mosquitto not found: run scripts/setup (installs the Debian packages the tests need)")
        })
}

struct Broker {
    child: Child,
}

impl Broker {
    fn start(dir: &Path, port: u16) -> Broker {
        let conf = dir.join(format!("mosquitto-{port}.conf"));
        std::fs::write(
            &conf,
            format!("listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"),
        )
        .unwrap();
        let child = std::process::Command::new(mosquitto_path())
            .arg("-c")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = std::time::Instant::now() + WAIT;
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "mosquitto did not listen on {port}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Broker { child }
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Waits until no TCP connection to `port` is open or half-closed on this
/// machine: the uplink has seen the broker go and dropped its connection
/// (so it has reported the link down).
async fn wait_connections_gone(port: u16) {
    let deadline = Instant::now() + WAIT;
    let port_hex = format!(":{port:04X}");
    loop {
        let table = std::fs::read_to_string("/proc/net/tcp").unwrap();
        let open = table.lines().skip(1).any(|l| {
            let cols: Vec<&str> = l.split_whitespace().collect();
            // remote address, state: 01 ESTABLISHED, 08 CLOSE_WAIT
            cols.get(2).is_some_and(|r| r.ends_with(&port_hex))
                && cols.get(3).is_some_and(|st| *st == "01" || *st == "08")
        });
        if !open {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "connections to {port} still open"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The test's side of MQTT: what mgmt would see and say.
struct FakeMgmt {
    client: AsyncClient,
    rx: mpsc::UnboundedReceiver<(String, Vec<u8>)>,
    device: NodeId,
}

impl FakeMgmt {
    async fn connect(port: u16, device: &NodeId) -> FakeMgmt {
        let id = format!("fake-mgmt-{}", EventId::new());
        let mut opts = MqttOptions::new(id, "127.0.0.1", port);
        opts.set_keep_alive(Duration::from_secs(5));
        let (client, mut el) = AsyncClient::new(opts, 64);
        client
            .subscribe(format!("crossline/v1/d/{device}/#"), QoS::AtLeastOnce)
            .await
            .unwrap();
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            loop {
                match el.poll().await {
                    Ok(MqttEvent::Incoming(Packet::Publish(p))) => {
                        if tx.send((p.topic.clone(), p.payload.to_vec())).is_err() {
                            return;
                        }
                    }
                    Ok(_) => {}
                    Err(_) if tx.is_closed() => return,
                    Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                }
            }
        });
        FakeMgmt {
            client,
            rx,
            device: device.clone(),
        }
    }

    fn topic(&self, kind: Kind) -> String {
        DeviceTopic::new(&self.device, kind).to_string()
    }

    /// Waits for a payload on `kind` for which `f` returns something.
    async fn wait<T>(
        &mut self,
        what: &str,
        kind: Kind,
        mut f: impl FnMut(&[u8]) -> Option<T>,
    ) -> T {
        let topic = self.topic(kind);
        self.wait_on_any(
            what,
            |t, payload| if t == topic { f(payload) } else { None },
        )
        .await
    }

    /// Waits for a payload on any topic for which `f` (given the topic)
    /// returns something: for what may arrive on two topics in either order.
    async fn wait_on_any<T>(
        &mut self,
        what: &str,
        mut f: impl FnMut(&str, &[u8]) -> Option<T>,
    ) -> T {
        let deadline = Instant::now() + WAIT;
        loop {
            let (t, payload) = tokio::time::timeout_at(deadline, self.rx.recv())
                .await
                .unwrap_or_else(|_| panic!("no {what} within {WAIT:?}"))
                .unwrap();
            if let Some(v) = f(&t, &payload) {
                return v;
            }
        }
    }

    async fn publish(&self, kind: Kind, payload: Vec<u8>) {
        self.client
            .publish(self.topic(kind), QoS::AtLeastOnce, false, payload)
            .await
            .unwrap();
    }
}

fn config(dir: &Path, port: u16, sim: &SimModem, offline: Option<OfflineConfig>) -> Config {
    let mut cfg = Config::new(
        NodeId::new("branch-wired").unwrap(),
        dir.join("data"),
        MqttConfig {
            url: format!("mqtt://127.0.0.1:{port}"),
            ca_file: None,
            secret: Some("not-checked-by-this-broker".into()),
            secret_file: None,
            keep_alive_s: 2,
        },
    );
    let mut m = ModemEntry::new("gsm0", sim.link().to_string_lossy());
    m.profile = crossline_modem::Profile::QuectelEc25;
    m.number = Some("+380670000001".into());
    m.command_timeout = Some(Duration::from_secs(2));
    m.send_timeout = Some(Duration::from_secs(4));
    m.rate_limit = Some(0);
    // See tests/sms.rs: a URC behind a final result waits for the next command.
    m.health_interval = Some(Duration::from_secs(1));
    cfg.modems = vec![m];
    cfg.offline = offline;
    cfg
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sms_round_trip_over_mqtt() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let _broker = Broker::start(dir.path(), port);
    let sim = SimModem::spawn(SimConfig {
        noise_interval: None,
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let cfg = config(dir.path(), port, &sim, None);
    let device = cfg.node_id.clone().unwrap();
    let mut mgmt = FakeMgmt::connect(port, &device).await;
    let stop = CancellationToken::new();
    let app = tokio::spawn(crossline_appliance::run(cfg, stop.clone()));

    // Telemetry with the line's health arrives on its topic.
    let health = mgmt
        .wait("telemetry with gsm0 registered", Kind::Telemetry, |p| {
            decode::<Telemetry>(p).ok().and_then(|t| {
                t.modems
                    .into_iter()
                    .find(|m| m.line == "gsm0" && m.registered)
            })
        })
        .await;
    assert_eq!(health.operator.as_deref(), Some("Kyivstar"));

    // An SMS: replicated as an event, kept on the SIM until mgmt acks it.
    sim.inject_sms("+380501234567", "Добрий день! Коли працює відділення?")
        .unwrap();
    let seq = mgmt
        .wait("the MessageReceived event", Kind::Events, |p| {
            decode::<EventBatch>(p).ok().and_then(|b| {
                b.events.into_iter().find_map(|e| match e.body {
                    EventBody::MessageReceived { from, .. } if from == "+380501234567" => {
                        Some(e.seq)
                    }
                    _ => None,
                })
            })
        })
        .await;
    assert_eq!(
        sim.stored().len(),
        1,
        "not acknowledged yet: still on the SIM"
    );
    mgmt.publish(Kind::Ack, encode(&Ack::new(seq, None))).await;
    sim.wait_until("the SIM emptied after the ack", WAIT, |m| {
        m.stored().is_empty()
    })
    .await
    .unwrap();

    // A command from mgmt goes out on the line and is reported as MessageSent.
    let id = EventId::new();
    mgmt.publish(
        Kind::Cmd,
        encode(&Command {
            v: VERSION,
            id,
            kind: CommandKind::SendSms {
                line: "gsm0".into(),
                to: "+380501234567".into(),
                text: "Працюємо з 9 до 18.".into(),
            },
        }),
    )
    .await;
    let sent = sim.wait_sent(1, WAIT).await.unwrap();
    assert_eq!(sent[0].text, "Працюємо з 9 до 18.");
    mgmt.wait("the MessageSent event", Kind::Events, |p| {
        decode::<EventBatch>(p).ok().and_then(|b| {
            b.events.into_iter().find(|e| {
                matches!(&e.body, EventBody::MessageSent { command, auto_reply: false, .. } if *command == id)
            })
        })
    })
    .await;

    stop.cancel();
    tokio::time::timeout(WAIT, app)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uplink_down_triggers_the_auto_reply_and_the_log_catches_up() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut broker = Broker::start(dir.path(), port);
    let sim = SimModem::spawn(SimConfig {
        noise_interval: None,
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let offline = OfflineConfig {
        after_s: 0,
        window_s: 3600,
        default_language: "en".into(),
        texts: [("uk".to_string(), "Ми офлайн, відповімо згодом.".to_string())]
            .into_iter()
            .collect(),
    };
    let cfg = config(dir.path(), port, &sim, Some(offline));
    let device = cfg.node_id.clone().unwrap();
    let stop = CancellationToken::new();
    let mut mgmt = FakeMgmt::connect(port, &device).await;
    let app = tokio::spawn(crossline_appliance::run(cfg, stop.clone()));
    mgmt.wait("presence", Kind::Presence, |_| Some(())).await;

    // Connected: no auto-reply.
    sim.inject_sms("+380501111111", "Привіт, ви на зв'язку?")
        .unwrap();
    mgmt.wait("the online message", Kind::Events, |p| {
        decode::<EventBatch>(p).ok().and_then(|b| {
            b.events
                .iter()
                .any(|e| matches!(&e.body, EventBody::MessageReceived { from, .. } if from == "+380501111111"))
                .then_some(())
        })
    })
    .await;

    // The broker dies: the uplink goes down, the next customer gets the auto-reply.
    broker.kill();
    drop(mgmt);
    wait_connections_gone(port).await;
    sim.inject_sms("+380502222222", "Добрий день, є хто?")
        .unwrap();
    let replies = sim.wait_sent(1, WAIT).await.unwrap();
    assert_eq!(
        replies.len(),
        1,
        "only the offline customer is answered: {replies:?}"
    );
    assert_eq!(replies[0].to, "+380502222222");
    assert_eq!(replies[0].text, "Ми офлайн, відповімо згодом.");

    // The broker comes back: everything reaches mgmt, the auto-reply included.
    let _broker = Broker::start(dir.path(), port);
    let mut mgmt = FakeMgmt::connect(port, &device).await;
    mgmt.wait("the auto-reply event after reconnect", Kind::Events, |p| {
        decode::<EventBatch>(p).ok().and_then(|b| {
            b.events
                .iter()
                .any(|e| matches!(&e.body, EventBody::MessageSent { auto_reply: true, to, .. } if to == "+380502222222"))
                .then_some(())
        })
    })
    .await;
    stop.cancel();
    tokio::time::timeout(WAIT, app)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}

/// The seqs of a `MessageReceived` from `from` in an events payload.
fn received_from(payload: &[u8], from: &str) -> Vec<u64> {
    decode::<EventBatch>(payload)
        .map(|b| {
            b.events
                .into_iter()
                .filter(
                    |e| matches!(&e.body, EventBody::MessageReceived { from: f, .. } if f == from),
                )
                .map(|e| e.seq)
                .collect()
        })
        .unwrap_or_default()
}

/// After a quiet spell the next event is sent once: the resend timeout
/// counts from when something is outstanding, not from the last ack (which
/// made every first event after an idle minute look lost at once: a warning,
/// a resend of the window and a doubled timeout).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_event_after_a_quiet_link_is_sent_once() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let _broker = Broker::start(dir.path(), port);
    let sim = SimModem::spawn(SimConfig {
        noise_interval: None,
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let mut cfg = config(dir.path(), port, &sim, None);
    let rto = Duration::from_millis(300);
    cfg.sync.resend_after_ms = rto.as_millis() as u64;
    let device = cfg.node_id.clone().unwrap();
    let stop = CancellationToken::new();
    let mut mgmt = FakeMgmt::connect(port, &device).await;
    let app = tokio::spawn(crossline_appliance::run(cfg, stop.clone()));
    mgmt.wait("presence", Kind::Presence, |_| Some(())).await;

    sim.inject_sms("+380501111111", "Перше").unwrap();
    let first = mgmt
        .wait("the first message", Kind::Events, |p| {
            received_from(p, "+380501111111").first().copied()
        })
        .await;
    mgmt.publish(Kind::Ack, encode(&Ack::new(first, None)))
        .await;
    // The scenario: the link stays quiet for several resend timeouts.
    tokio::time::sleep(rto * 4).await;

    sim.inject_sms("+380502222222", "Друге").unwrap();
    let second = mgmt
        .wait("the second message", Kind::Events, |p| {
            received_from(p, "+380502222222").first().copied()
        })
        .await;
    mgmt.publish(Kind::Ack, encode(&Ack::new(second, None)))
        .await;
    // A third message marks the end: a resend of the second would have been
    // published before it, on the same connection (QoS 1 keeps the order).
    sim.inject_sms("+380503333333", "Третє").unwrap();
    let events = mgmt.topic(Kind::Events);
    let deadline = Instant::now() + WAIT;
    let mut copies_of_second = 0;
    loop {
        let (t, p) = tokio::time::timeout_at(deadline, mgmt.rx.recv())
            .await
            .expect("the third message within the deadline")
            .unwrap();
        if t != events {
            continue;
        }
        copies_of_second += received_from(&p, "+380502222222").len();
        if !received_from(&p, "+380503333333").is_empty() {
            break;
        }
    }
    assert_eq!(copies_of_second, 0, "the second message was sent again");

    stop.cancel();
    tokio::time::timeout(WAIT, app)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}

/// A newer mgmt's command of a kind this appliance does not know is refused
/// by id with a reason, both ways an older mgmt could be waiting for it: an
/// outcome event (`delivery_status` failed, in the conversation's reply) and
/// a fleet command result. Nothing is done, and the appliance goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_of_a_kind_this_appliance_does_not_know_is_refused_with_a_reason() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let _broker = Broker::start(dir.path(), port);
    let sim = SimModem::spawn(SimConfig {
        noise_interval: None,
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let cfg = config(dir.path(), port, &sim, None);
    let device = cfg.node_id.clone().unwrap();
    let stop = CancellationToken::new();
    let mut mgmt = FakeMgmt::connect(port, &device).await;
    let app = tokio::spawn(crossline_appliance::run(cfg, stop.clone()));
    mgmt.wait("presence", Kind::Presence, |_| Some(())).await;

    let id = EventId::new();
    let newer = format!(
        r#"{{"v":1,"id":"{id}","kind":{{"type":"dial","line":"gsm0","to":"+380501234567"}}}}"#
    );
    mgmt.publish(Kind::Cmd, newer.into_bytes()).await;
    // The outcome event and the command result go out on two topics, in
    // either order: wait for both at once (waiting for one drops the other).
    let (events, results) = (mgmt.topic(Kind::Events), mgmt.topic(Kind::Result));
    let (mut detail, mut result) = (None, None);
    mgmt.wait_on_any(
        "the refusal as an outcome event and as a command result",
        |t, p| {
            if t == events && detail.is_none() {
                detail = decode::<EventBatch>(p).ok().and_then(|b| {
                    b.events.into_iter().find_map(|e| match e.body {
                        EventBody::DeliveryStatus {
                            command,
                            part: None,
                            state: crossline_core::DeliveryState::Failed,
                            detail,
                        } if command == id => detail,
                        _ => None,
                    })
                });
            } else if t == results && result.is_none() {
                result = decode::<crossline_proto::CommandResult>(p)
                    .ok()
                    .filter(|r| r.id == id);
            }
            (detail.is_some() && result.is_some()).then_some(())
        },
    )
    .await;
    let (detail, result) = (detail.unwrap(), result.unwrap());
    assert!(
        detail.contains("does not know the command \"dial\"") && detail.contains("upgrade"),
        "{detail}"
    );
    assert!(!result.ok);
    assert_eq!(result.output, detail);
    assert!(sim.sent().is_empty(), "nothing was dialled or sent");

    // The appliance goes on: a known command after it is carried out.
    let next = EventId::new();
    mgmt.publish(
        Kind::Cmd,
        encode(&Command {
            v: VERSION,
            id: next,
            kind: CommandKind::SendSms {
                line: "gsm0".into(),
                to: "+380501234567".into(),
                text: "Ми передзвонимо.".into(),
            },
        }),
    )
    .await;
    let sent = sim.wait_sent(1, WAIT).await.unwrap();
    assert_eq!(sent[0].text, "Ми передзвонимо.");

    stop.cancel();
    tokio::time::timeout(WAIT, app)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}
