//! Helpers for mgmt's in-process tests: a running mgmt on free ports, a
//! device played by a rumqttc client, and a tiny HTTP/1.1 client.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod desk;

use crossline_core::{Channel, DeliveryState, Event, EventBody, EventId, Hlc, NodeId};
use crossline_mgmt::config::Config;
use crossline_mgmt::server::{self, Running};
use crossline_mgmt::services::channels::Channels;
use crossline_mgmt::services::fleet::credentials::hash_secret;
use crossline_proto::{Command, DeviceTopic, EventBatch, Hello, Kind, decode, encode};
use crossline_store::DeviceRegistry;
use rumqttc::{AsyncClient, Event as MqttEvent, MqttOptions, Packet, QoS};
use serde_json::Value;
use std::future::Future;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

pub const DEADLINE: Duration = Duration::from_secs(15);

pub struct Mgmt {
    pub running: Option<Running>,
    pub http: String,
    pub token: String,
    pub mqtt_port: u16,
    _dir: tempfile::TempDir,
}

impl Mgmt {
    pub async fn start() -> Self {
        Self::start_with("").await
    }

    /// Starts mgmt with `toml` as its configuration (ports and data dir are set here).
    pub async fn start_with(toml: &str) -> Self {
        Self::start_in(tempfile::tempdir().unwrap(), toml).await
    }

    /// Starts mgmt with the channel adapters `channels`.
    pub async fn start_with_channels(channels: Channels) -> Self {
        Self::start_in_with(tempfile::tempdir().unwrap(), "", channels).await
    }

    /// Stops mgmt and starts it again on the same data directory (new ports).
    pub async fn restart(mut self) -> Self {
        if let Some(r) = self.running.take() {
            r.stop().await;
        }
        Self::start_in(self._dir, "").await
    }

    async fn start_in(dir: tempfile::TempDir, toml: &str) -> Self {
        Self::start_in_with(dir, toml, Channels::standard()).await
    }

    async fn start_in_with(dir: tempfile::TempDir, toml: &str, channels: Channels) -> Self {
        let mut cfg: Config = toml::from_str(toml).unwrap();
        cfg.data_dir = dir.path().to_path_buf();
        cfg.listen_on_free_loopback_ports();
        let running = server::start_with_channels(cfg, channels).await.unwrap();
        Self {
            http: running.http_addr.to_string(),
            token: running.api_token.clone(),
            mqtt_port: running.mqtt_addr.port(),
            running: Some(running),
            _dir: dir,
        }
    }

    /// Stops mgmt and hands over its data directory, kept.
    pub async fn stop_keeping_data(mut self) -> tempfile::TempDir {
        if let Some(r) = self.running.take() {
            r.stop().await;
        }
        self._dir
    }

    /// Starts mgmt on the data directory of an earlier one.
    pub async fn start_on(dir: tempfile::TempDir) -> Self {
        Self::start_in(dir, "").await
    }

    pub fn running(&self) -> &Running {
        self.running.as_ref().unwrap()
    }

    /// mgmt's data directory (its secrets, the bootstrap token, the database).
    pub fn data_dir(&self) -> &std::path::Path {
        self._dir.path()
    }

    /// Registers `id` and connects a device client as it.
    pub async fn device(&self, id: &str) -> Device {
        let node = NodeId::new(id).unwrap();
        let secret = crossline_mgmt::services::fleet::credentials::new_secret();
        self.running()
            .store
            .put_device(&node, &hash_secret(&secret).unwrap())
            .await
            .unwrap();
        Device::connect(node, &secret, self.mqtt_port).await
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        self.request("GET", path, None).await
    }

    pub async fn post(&self, path: &str, body: &str) -> (u16, Value) {
        self.request("POST", path, Some(body)).await
    }

    pub async fn request(&self, method: &str, path: &str, body: Option<&str>) -> (u16, Value) {
        let (status, body) = http(&self.http, method, path, Some(&self.token), body).await;
        let v = serde_json::from_slice(&body).unwrap_or(Value::Null);
        (status, v)
    }

    /// Waits until the conversation list (with `query`) satisfies `pred`.
    pub async fn wait_list(&self, query: &str, pred: impl Fn(&Vec<Value>) -> bool) -> Vec<Value> {
        let path = format!("/api/v1/conversations{query}");
        wait_for(|| async {
            let (s, v) = self.get(&path).await;
            assert_eq!(s, 200, "{v}");
            let list = v["conversations"].as_array().cloned().unwrap_or_default();
            pred(&list).then_some(list)
        })
        .await
    }

    pub async fn wait_conversation(&self, id: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let path = format!("/api/v1/conversations/{id}");
        wait_for(|| async {
            let (s, v) = self.get(&path).await;
            assert_eq!(s, 200, "{v}");
            pred(&v).then_some(v)
        })
        .await
    }

    pub async fn stop(mut self) {
        if let Some(r) = self.running.take() {
            r.stop().await;
        }
    }
}

/// Polls `f` until it returns Some, at most [`DEADLINE`].
pub async fn wait_for<T, F, Fut>(mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            start.elapsed() < DEADLINE,
            "condition not met within {DEADLINE:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// One HTTP/1.1 request with `Connection: close`; returns status and body.
pub async fn http(
    addr: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> (u16, Vec<u8>) {
    let (status, _, body) = http_with_head(addr, method, path, token, body).await;
    (status, body)
}

/// Like [`http`], also returning the response head (status line and
/// headers) in lower case.
pub async fn http_with_head(
    addr: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> (u16, String, Vec<u8>) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    if let Some(t) = token {
        req += &format!("Authorization: Bearer {t}\r\n");
    }
    if let Some(b) = body {
        req += &format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            b.len()
        );
    }
    req += "\r\n";
    s.write_all(req.as_bytes()).await.unwrap();
    if let Some(b) = body {
        // The server may answer (413) and close before reading it all.
        let _ = s.write_all(b.as_bytes()).await;
    }
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf).await;
    let text = String::from_utf8_lossy(&buf);
    let status: u16 = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no HTTP status in {text:?}"));
    let at = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|p| p + 4)
        .unwrap_or(buf.len());
    let head = text[..at.min(text.len())].to_ascii_lowercase();
    let mut body = buf[at..].to_vec();
    if head.contains("transfer-encoding: chunked") {
        body = unchunk(&body);
    }
    (status, head, body)
}

fn unchunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let Some(p) = b.windows(2).position(|w| w == b"\r\n") else {
            return out;
        };
        let n = usize::from_str_radix(std::str::from_utf8(&b[..p]).unwrap().trim(), 16).unwrap();
        if n == 0 {
            return out;
        }
        out.extend_from_slice(&b[p + 2..p + 2 + n]);
        b = &b[p + 2 + n + 2..];
    }
}

/// A device played by a rumqttc client: publishes events and hellos,
/// collects the commands it receives.
pub struct Device {
    pub id: NodeId,
    client: AsyncClient,
    seq: u64,
    pub commands: mpsc::UnboundedReceiver<Command>,
}

impl Device {
    async fn connect(id: NodeId, secret: &str, port: u16) -> Self {
        let mut opts = MqttOptions::new(id.as_str(), "127.0.0.1", port);
        opts.set_credentials(id.as_str(), secret);
        opts.set_keep_alive(Duration::from_secs(10));
        let (client, mut el) = AsyncClient::new(opts, 100);
        let (tx, rx) = mpsc::unbounded_channel();
        let (ready_tx, mut ready_rx) = mpsc::unbounded_channel();
        let cmd_topic = DeviceTopic::new(&id, Kind::Cmd).to_string();
        let ack_topic = DeviceTopic::new(&id, Kind::Ack).to_string();
        let c2 = client.clone();
        tokio::spawn(async move {
            loop {
                match el.poll().await {
                    Ok(MqttEvent::Incoming(Packet::ConnAck(_))) => {
                        c2.subscribe(cmd_topic.clone(), QoS::AtLeastOnce)
                            .await
                            .unwrap();
                        c2.subscribe(ack_topic.clone(), QoS::AtLeastOnce)
                            .await
                            .unwrap();
                    }
                    Ok(MqttEvent::Incoming(Packet::Publish(p))) if p.topic == ack_topic => {
                        let _ = ready_tx.send(());
                    }
                    Ok(MqttEvent::Incoming(Packet::Publish(p))) if p.topic == cmd_topic => {
                        let c: Command = decode(&p.payload).unwrap();
                        let _ = tx.send(c);
                    }
                    Ok(_) => {}
                    Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                }
            }
        });
        let dev = Self {
            id,
            client,
            seq: 0,
            commands: rx,
        };
        // mgmt answers Hello with an Ack once its ingestion is subscribed;
        // before that a published event would reach nobody (a real appliance
        // resends until acked; this test device does not).
        let start = Instant::now();
        loop {
            dev.hello().await;
            if let Ok(Some(())) =
                tokio::time::timeout(Duration::from_millis(300), ready_rx.recv()).await
            {
                break;
            }
            assert!(
                start.elapsed() < DEADLINE,
                "mgmt never answered the device's Hello"
            );
        }
        dev
    }

    pub fn event(&mut self, body: EventBody) -> Event {
        self.seq += 1;
        Event {
            id: EventId::new(),
            origin: self.id.clone(),
            seq: self.seq,
            at: Hlc {
                ms: crossline_mgmt::clock::now_ms(),
                c: 0,
            },
            conversation: None,
            body,
        }
    }

    pub async fn publish(&self, events: Vec<Event>) {
        self.publish_payload(encode(&EventBatch::new(events))).await;
    }

    /// Publishes `payload` as is on the device's events topic.
    pub async fn publish_payload(&self, payload: Vec<u8>) {
        let topic = DeviceTopic::new(&self.id, Kind::Events).to_string();
        self.client
            .publish(topic, QoS::AtLeastOnce, false, payload)
            .await
            .unwrap();
    }

    /// Publishes one inbound SMS on `line` from `from`.
    pub async fn sms(&mut self, line: &str, from: &str, text: &str) -> Event {
        let e = self.event(sms(line, from, text));
        self.publish(vec![e.clone()]).await;
        e
    }

    pub async fn hello(&self) {
        let topic = DeviceTopic::new(&self.id, Kind::Hello).to_string();
        let h = Hello {
            v: 1,
            head: self.seq,
            acked: 0,
            software: "test".into(),
        };
        self.client
            .publish(topic, QoS::AtLeastOnce, false, encode(&h))
            .await
            .unwrap();
    }

    pub async fn next_command(&mut self) -> Command {
        tokio::time::timeout(DEADLINE, self.commands.recv())
            .await
            .expect("no command within the deadline")
            .expect("device task ended")
    }
}

pub fn sms(line: &str, from: &str, text: &str) -> EventBody {
    EventBody::MessageReceived {
        channel: Channel::Sms,
        line: line.into(),
        from: from.into(),
        to: None,
        text: text.into(),
        sent_at: None,
        parts: 1,
        incomplete: false,
        key: None,
    }
}

pub fn sent(cmd: &Command, refs: Vec<u8>) -> EventBody {
    let crossline_proto::CommandKind::SendSms { line, to, text } = &cmd.kind else {
        panic!("not an SMS command: {cmd:?}")
    };
    EventBody::MessageSent {
        channel: Channel::Sms,
        line: line.clone(),
        to: to.clone(),
        text: text.clone(),
        command: cmd.id,
        refs,
        auto_reply: false,
    }
}

pub fn status(cmd: &Command, part: Option<u16>, state: DeliveryState) -> EventBody {
    EventBody::DeliveryStatus {
        command: cmd.id,
        part,
        state,
        detail: None,
    }
}
