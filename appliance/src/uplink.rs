//! Replication of the local log to mgmt over MQTT.
//!
//! The protocol (docs/PROTOCOL.md, "Sync") in short:
//! * every local event is already durable in the log before it is sent;
//! * on every (re)connect the appliance says [`Hello`] (its head and last ack)
//!   and streams from `acked + 1`, in batches, QoS 1, at most `window` events
//!   beyond the last ack;
//! * mgmt stores, then publishes [`Ack`] with its highest contiguous seq; the
//!   appliance persists that cursor — only acknowledged events leave the outbox;
//! * `Ack.resend_from` (mgmt saw a hole) or no ack progress for
//!   `resend_after` rewinds the stream to the last ack (go-back-N); the
//!   timeout doubles after each such rewind (up to 8×) until the next
//!   reconnect. The broker session is never trusted to hold anything.
//! * the appliance persists the ack off the critical path (coalesced: one
//!   write at a time, always the newest ack); the window follows the ack as
//!   received, since mgmt holds those events durably already.

use crate::config::{MqttConfig, SyncConfig};
use crate::log::LocalLog;
use crossline_core::NodeId;
use crossline_proto::{
    Ack, Command, DesiredConfig, DeviceTopic, EventBatch, Hello, Kind, Presence, PresenceState,
    Rekey, Rekeyed, Telemetry, decode, encode,
};
use crossline_store::{EventLog, Outbox};
use rumqttc::{AsyncClient, Event as MqttEvent, EventLoop, LastWill, Packet, QoS};
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

/// The outbox cursor's peer name for mgmt.
pub const PEER: &str = "mgmt";

/// The resend timeout grows at most to this many times `resend_after`.
const MAX_RTO_BACKOFF: u32 = 8;

/// Batches read from the log at once (when the window has room for them).
const READ_AHEAD: usize = 4;

/// What the MQTT event-loop task tells the sync task.
#[derive(Debug)]
enum Link {
    Up,
    Down(String),
    Ack(Ack),
    Command(Command),
    Config(DesiredConfig),
    RecState(crossline_proto::recording::RecordingState),
}

/// A message for mgmt from another part of the appliance (fleet results,
/// reported configuration): published QoS 1 while connected, dropped (and
/// logged) while not: the sender repeats it when mgmt asks again.
#[derive(Debug, Clone)]
pub struct Outbound {
    pub kind: Kind,
    pub payload: Vec<u8>,
}

/// Counters the uplink exposes (for logs and tests).
#[derive(Debug, Default, Clone, Copy)]
pub struct UplinkStats {
    pub batches_sent: u64,
    pub events_sent: u64,
    pub rewinds: u64,
}

/// Whether the uplink is connected, and since when (for the offline branch).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkState {
    Up { since: Instant },
    Down { since: Instant },
}

impl LinkState {
    /// Down since now (the state before the first connect).
    pub fn down_now() -> Self {
        LinkState::Down {
            since: Instant::now(),
        }
    }

    /// How long the uplink has been down, `None` while it is up.
    pub fn down_for(&self) -> Option<Duration> {
        match self {
            LinkState::Up { .. } => None,
            LinkState::Down { since } => Some(since.elapsed()),
        }
    }
}

/// What the uplink shares with the rest of the appliance.
pub struct UplinkIo {
    /// Commands from mgmt, decoded.
    pub commands: mpsc::Sender<Command>,
    /// Telemetry samples to publish (QoS 0, only while connected; others dropped).
    pub telemetry: Option<mpsc::Receiver<Telemetry>>,
    /// The acknowledged seq, updated once the ack is persisted.
    pub acked: watch::Sender<u64>,
    /// Connected / disconnected, and since when.
    pub link: watch::Sender<LinkState>,
    /// Desired configuration from mgmt (the `config` topic is subscribed
    /// only when this is set).
    pub config: Option<mpsc::Sender<DesiredConfig>>,
    /// Messages to publish for other parts of the appliance.
    pub outbound: Option<mpsc::Receiver<Outbound>>,
    /// mgmt's answers to recording chunks, for the recordings uploader
    /// (the `rec_state` topic is subscribed only when this is set).
    pub recordings: Option<mpsc::Sender<crossline_proto::recording::RecordingState>>,
    /// Where a new secret from mgmt is stored (the `rekey` topic is
    /// subscribed only when this is set).
    pub credential: Option<crate::enroll::CredentialFile>,
    /// What to tell the operator when the broker refuses the credential
    /// ([`crate::Config::credential_hint`]).
    pub refusal_hint: Option<String>,
}

/// Runs the uplink until `shutdown`; returns the last ack seen.
pub async fn run<S>(
    log: LocalLog<S>,
    mqtt: MqttConfig,
    sync: SyncConfig,
    commands: mpsc::Sender<Command>,
    shutdown: CancellationToken,
) -> anyhow::Result<u64>
where
    S: EventLog + Outbox + Clone,
{
    let io = UplinkIo {
        commands,
        telemetry: None,
        acked: watch::channel(0).0,
        link: watch::channel(LinkState::down_now()).0,
        config: None,
        outbound: None,
        recordings: None,
        credential: None,
        refusal_hint: None,
    };
    run_with(log, mqtt, sync, io, shutdown).await
}

/// [`run`], also publishing telemetry and exposing the ack and link state.
pub async fn run_with<S>(
    log: LocalLog<S>,
    mqtt: MqttConfig,
    sync: SyncConfig,
    io: UplinkIo,
    shutdown: CancellationToken,
) -> anyhow::Result<u64>
where
    S: EventLog + Outbox + Clone,
{
    let UplinkIo {
        commands,
        mut telemetry,
        acked: acked_tx,
        link: link_state,
        config: config_tx,
        mut outbound,
        recordings: rec_tx,
        credential,
        refusal_hint,
    } = io;
    let want_config = config_tx.is_some();
    let want_recordings = rec_tx.is_some();
    let want_rekey = credential.is_some();
    let me = log.store().local_node().clone();
    let secret = mqtt.load_secret()?;
    let (mut opts, broker) = mqtt.options(me.as_str())?;
    opts.set_credentials(me.as_str(), secret);
    opts.set_keep_alive(Duration::from_secs(mqtt.keep_alive_s.clamp(2, 600)));
    opts.set_clean_session(false);
    opts.set_max_packet_size(
        crossline_proto::MAX_PAYLOAD + 1024,
        crossline_proto::MAX_PAYLOAD + 1024,
    );
    opts.set_last_will(LastWill::new(
        DeviceTopic::new(&me, Kind::Presence).to_string(),
        encode(&Presence::new(PresenceState::Offline)),
        QoS::AtLeastOnce,
        true,
    ));
    let (client, mut eventloop) = AsyncClient::new(opts, 64);
    // Hellos, presence and small batches go out at once (no Nagle delay).
    let mut net = rumqttc::NetworkOptions::new();
    net.set_tcp_nodelay(true);
    eventloop.set_network_options(net);
    let (link_tx, mut link_rx) = mpsc::channel(256);
    let poller = tokio::spawn(poll_loop(
        eventloop,
        me.clone(),
        (
            mqtt.clone(),
            refusal_hint.unwrap_or_else(|| {
                "check the device id and its secret against what mgmt issued, or re-enroll".into()
            }),
        ),
        link_tx,
        (want_config, want_recordings),
        credential.map(|c| (client.clone(), c)),
        shutdown.clone(),
    ));
    info!(device = %me, broker = %broker, "uplink starting");

    let store = log.store().clone();
    let mut acked = store.acked(PEER).await?;
    acked_tx.send_replace(acked);
    // `acked` is what mgmt has durably stored (it drives the window); the
    // cursor on disk follows it off the critical path, one write at a time,
    // coalescing the acks that arrive meanwhile. `acked_tx` only ever shows a
    // persisted value.
    let mut persisted = acked;
    let mut persisting: Option<Persist> = None;
    let telemetry_topic = DeviceTopic::new(&me, Kind::Telemetry).to_string();
    let mut next = acked + 1;
    let mut connected = false;
    let mut head_rx = log.subscribe();
    let mut last_progress = Instant::now();
    let mut last_rewind: Option<(u64, Instant)> = None;
    let mut stats = UplinkStats::default();
    let rto = sync.resend_after();
    // The timeout in force: doubled after each timeout that found nothing
    // acknowledged (mgmt may just be slow: a backlog, a loaded machine, and
    // resending a whole window then only adds to its load), back to `rto` on
    // every (re)connect. Losses are also repaired by mgmt's `resend_from` and
    // by the resend on reconnect; this timeout is the last resort.
    let mut rto_now = rto;
    let events_topic = DeviceTopic::new(&me, Kind::Events).to_string();

    loop {
        let head = *head_rx.borrow_and_update();
        // Publish while there is something to send and room in the window.
        if connected && next <= head && next.saturating_sub(acked + 1) < sync.window {
            let room = sync.window - next.saturating_sub(acked + 1);
            // Several batches per read: one trip to the blocking pool and one
            // query for up to READ_AHEAD batches.
            let batch = sync.batch.max(1);
            let n = ((batch * READ_AHEAD) as u64).min(room).min(head - next + 1) as usize;
            let mut events = store.read_from(&me, next, n).await?;
            if !events.is_empty() {
                if next == acked + 1 {
                    // Nothing was in flight: the resend timeout counts from
                    // now, not from the last ack (maybe minutes ago).
                    last_progress = Instant::now();
                }
                while !events.is_empty() {
                    let rest = events.split_off(batch.min(events.len()));
                    let chunk = std::mem::replace(&mut events, rest);
                    // Cap by bytes too: long multipart texts can make a batch
                    // of `batch` events exceed the payload limit mgmt enforces
                    // (it would refuse it on every resend: a stuck stream).
                    let (chunk, payload) = fit_payload(chunk, &mut events);
                    let (from, to) = match (chunk.first(), chunk.last()) {
                        (Some(f), Some(l)) => (f.seq, l.seq),
                        _ => break,
                    };
                    client
                        .publish(&events_topic, QoS::AtLeastOnce, false, payload)
                        .await?;
                    stats.batches_sent += 1;
                    stats.events_sent += to + 1 - from;
                    debug!(device = %me, from, to, "published batch");
                    next = to + 1;
                }
                continue;
            }
        }
        let outstanding = next > acked + 1 || (connected && acked < head);
        let rto_at = last_progress + rto_now;
        tokio::select! {
            _ = shutdown.cancelled() => break,
            t = next_telemetry(&mut telemetry) => match t {
                Some(t) if connected => {
                    // QoS 0, latest wins: never wait on a full request queue.
                    if let Err(e) = client.try_publish(&telemetry_topic, QoS::AtMostOnce, false, encode(&t)) {
                        debug!(device = %me, error = %e, "telemetry sample dropped");
                    }
                }
                Some(_) => {}
                None => telemetry = None,
            },
            o = next_outbound(&mut outbound) => match o {
                Some(o) if connected => {
                    let topic = DeviceTopic::new(&me, o.kind).to_string();
                    client.publish(topic, QoS::AtLeastOnce, false, o.payload).await?;
                }
                Some(o) => debug!(device = %me, kind = o.kind.as_str(), "not connected; message for mgmt dropped (repeated when asked again)"),
                None => outbound = None,
            },
            changed = head_rx.changed() => {
                if changed.is_err() { break; }
            }
            _ = tokio::time::sleep_until(rto_at), if outstanding && connected => {
                // No ack progress: the broker or mgmt may have lost what we sent.
                warn!(device = %me, acked, next, timeout_ms = rto_now.as_millis() as u64, "no ack progress; resending from last ack");
                next = acked + 1;
                stats.rewinds += 1;
                last_progress = Instant::now();
                rto_now = (rto_now * 2).min(rto * MAX_RTO_BACKOFF);
                say_hello(&client, &me, head, acked).await?;
            }
            r = persist_done(&mut persisting) => {
                persisting = None;
                persisted = persisted.max(r?);
                acked_tx.send_replace(persisted);
                if acked > persisted {
                    persisting = Some(persist(&store, acked));
                }
            }
            msg = link_rx.recv() => {
                let Some(msg) = msg else { break };
                match msg {
                    Link::Up => {
                        connected = true;
                        link_state.send_replace(LinkState::Up { since: Instant::now() });
                        next = acked + 1;
                        rto_now = rto;
                        last_progress = Instant::now();
                        let sub = |k| DeviceTopic::new(&me, k).to_string();
                        client.subscribe(sub(Kind::Ack), QoS::AtLeastOnce).await?;
                        client.subscribe(sub(Kind::Cmd), QoS::AtLeastOnce).await?;
                        if want_config {
                            client.subscribe(sub(Kind::Config), QoS::AtLeastOnce).await?;
                        }
                        if want_rekey {
                            client.subscribe(sub(Kind::Rekey), QoS::AtLeastOnce).await?;
                        }
                        if want_recordings {
                            client.subscribe(sub(Kind::RecState), QoS::AtLeastOnce).await?;
                        }
                        client
                            .publish(
                                sub(Kind::Presence),
                                QoS::AtLeastOnce,
                                true,
                                encode(&Presence::new(PresenceState::Online)),
                            )
                            .await?;
                        say_hello(&client, &me, head, acked).await?;
                        info!(device = %me, acked, head, "connected to broker; streaming from {}", acked + 1);
                    }
                    Link::Down(why) => {
                        if connected {
                            warn!(device = %me, reason = %why, acked, head, "uplink down; events stay in the outbox");
                            link_state.send_replace(LinkState::Down { since: Instant::now() });
                        }
                        connected = false;
                    }
                    Link::Ack(ack) => {
                        if ack.acked > acked {
                            // Never beyond what we have: a confused peer must not
                            // make us drop unsent events.
                            acked = ack.acked.min(head);
                            if persisting.is_none() {
                                persisting = Some(persist(&store, acked));
                            }
                            last_progress = Instant::now();
                            if next <= acked {
                                next = acked + 1;
                            }
                        } else if ack.acked == acked && next == acked + 1 {
                            last_progress = Instant::now();
                        }
                        if let Some(from) = ack.resend_from {
                            let from = from.max(acked + 1);
                            let recent = last_rewind
                                .is_some_and(|(s, t)| s == from && t.elapsed() < rto);
                            if from < next && !recent {
                                debug!(device = %me, from, "mgmt asked for a resend");
                                next = from;
                                stats.rewinds += 1;
                                last_rewind = Some((from, Instant::now()));
                            }
                        }
                    }
                    Link::Command(cmd) => {
                        if commands.send(cmd).await.is_err() {
                            debug!(device = %me, "no command handler; command dropped");
                        }
                    }
                    Link::Config(c) => {
                        if let Some(tx) = &config_tx
                            && tx.send(c).await.is_err()
                        {
                            debug!(device = %me, "no configuration handler; desired config dropped");
                        }
                    }
                    Link::RecState(st) => {
                        // The uploader asks again when an answer is lost.
                        if let Some(tx) = &rec_tx {
                            let _ = tx.try_send(st);
                        }
                    }
                }
            }
        }
    }
    // Record the last ack before leaving, so a restart resends as little as
    // possible (what is not recorded is resent and dropped by mgmt as a duplicate).
    if let Some(p) = persisting.take() {
        match p.await {
            Ok(v) => persisted = persisted.max(v),
            Err(e) => warn!(device = %me, error = %e, "could not record the last ack"),
        }
    }
    if acked > persisted {
        match persist(&store, acked).await {
            Ok(v) => persisted = v,
            Err(e) => warn!(device = %me, error = %e, "could not record the last ack"),
        }
    }
    acked_tx.send_replace(persisted);
    // Results queued just before the stop (a reboot's) still go out.
    if let Some(rx) = &mut outbound {
        while let Ok(o) = rx.try_recv() {
            let topic = DeviceTopic::new(&me, o.kind).to_string();
            let _ = client
                .publish(topic, QoS::AtLeastOnce, false, o.payload)
                .await;
        }
    }
    // Graceful: say goodbye so mgmt shows us offline at once.
    let _ = client
        .publish(
            DeviceTopic::new(&me, Kind::Presence).to_string(),
            QoS::AtLeastOnce,
            true,
            encode(&Presence::new(PresenceState::Offline)),
        )
        .await;
    let _ = tokio::time::timeout(Duration::from_secs(1), client.disconnect()).await;
    let _ = tokio::time::timeout(Duration::from_secs(2), poller).await;
    info!(device = %me, acked, sent = stats.events_sent, rewinds = stats.rewinds, "uplink stopped");
    Ok(acked)
}

/// An acknowledgement being written to the outbox cursor; yields the seq.
type Persist = Pin<Box<dyn Future<Output = crossline_store::Result<u64>> + Send>>;

/// Writes `seq` as mgmt's acknowledgement (the store never moves it back).
fn persist<S: Outbox + Clone>(store: &S, seq: u64) -> Persist {
    let store = store.clone();
    Box::pin(async move { store.set_acked(PEER, seq).await.map(|()| seq) })
}

/// The outcome of the ack write under way; pends for ever without one.
async fn persist_done(p: &mut Option<Persist>) -> crossline_store::Result<u64> {
    match p {
        Some(f) => f.await,
        None => std::future::pending().await,
    }
}

/// The next telemetry sample; pends for ever without a receiver.
async fn next_telemetry(rx: &mut Option<mpsc::Receiver<Telemetry>>) -> Option<Telemetry> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// The next outbound message; pends for ever without a receiver.
async fn next_outbound(rx: &mut Option<mpsc::Receiver<Outbound>>) -> Option<Outbound> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// Encodes `chunk` as one batch, halving it (and putting the rest back in
/// front of `rest`) until the payload fits [`crossline_proto::MAX_PAYLOAD`].
/// A single event always goes alone, whatever its size (the codec bounds an
/// SMS far below the limit).
fn fit_payload(
    mut chunk: Vec<crossline_core::Event>,
    rest: &mut Vec<crossline_core::Event>,
) -> (Vec<crossline_core::Event>, Vec<u8>) {
    loop {
        let batch = EventBatch::new(chunk);
        let payload = encode(&batch);
        chunk = batch.events;
        if payload.len() <= crossline_proto::MAX_PAYLOAD || chunk.len() <= 1 {
            return (chunk, payload);
        }
        let mut tail = chunk.split_off(chunk.len() / 2);
        tail.append(rest);
        *rest = tail;
    }
}

async fn say_hello(client: &AsyncClient, me: &NodeId, head: u64, acked: u64) -> anyhow::Result<()> {
    let hello = Hello {
        v: crossline_proto::VERSION,
        head,
        acked,
        software: env!("CARGO_PKG_VERSION").to_string(),
    };
    client
        .publish(
            DeviceTopic::new(me, Kind::Hello).to_string(),
            QoS::AtLeastOnce,
            false,
            encode(&hello),
        )
        .await?;
    Ok(())
}

/// A re-key from mgmt: store the new secret durably, answer, and ask for a
/// clean disconnect (after the answer); true when the poll loop must then
/// reconnect with the new credential. A repeat of a re-key already applied
/// is answered again without reconnecting.
async fn rekey(
    eventloop: &mut EventLoop,
    client: &AsyncClient,
    cred: &crate::enroll::CredentialFile,
    me: &NodeId,
    payload: &[u8],
) -> bool {
    let r = match decode::<Rekey>(payload) {
        Ok(r) => r,
        Err(e) => {
            warn!(device = %me, error = %e, "rejected re-key from mgmt");
            return false;
        }
    };
    let current = eventloop.mqtt_options.credentials().map(|l| l.password);
    let changed = current.as_deref() != Some(r.secret.as_str());
    let stored = if changed {
        let (cred, me, secret) = (cred.clone(), me.clone(), r.secret.clone());
        tokio::task::spawn_blocking(move || cred.store(&me, &secret))
            .await
            .unwrap_or_else(|e| Err(anyhow::anyhow!("storing the new secret: {e}")))
    } else {
        Ok(())
    };
    let answer = Rekeyed {
        v: crossline_proto::VERSION,
        id: r.id,
        ok: stored.is_ok(),
        error: stored
            .as_ref()
            .err()
            .map(|e| format!("{e:#}").chars().take(1000).collect()),
    };
    if let Err(e) = &stored {
        warn!(device = %me, rekey = %r.id, error = %format!("{e:#}"), "could not store the new secret from mgmt; keeping the old one");
    }
    let topic = DeviceTopic::new(me, Kind::Rekeyed).to_string();
    if let Err(e) = client
        .publish(topic, QoS::AtLeastOnce, false, encode(&answer))
        .await
    {
        warn!(device = %me, error = %e, "could not answer the re-key");
    }
    if stored.is_ok() && changed {
        info!(device = %me, rekey = %r.id, "new secret from mgmt stored; reconnecting with it");
        eventloop
            .mqtt_options
            .set_credentials(me.as_str(), r.secret);
        return client.disconnect().await.is_ok();
    }
    false
}

/// How often a lasting refusal of the credential is logged again.
const REFUSAL_REMINDER: Duration = Duration::from_secs(600);

/// What a CONNACK refusal means for an appliance.
fn refusal_reason(code: rumqttc::ConnectReturnCode) -> &'static str {
    use rumqttc::ConnectReturnCode as C;
    match code {
        C::BadUserNamePassword => {
            "wrong secret, or a device id mgmt does not know (or has revoked)"
        }
        C::NotAuthorized => "this device id is not allowed to connect as configured",
        C::BadClientId => "the broker refused the client id (the device id)",
        C::RefusedProtocolVersion => "the broker does not speak MQTT 3.1.1",
        C::ServiceUnavailable => "the broker is unavailable (overloaded or starting)",
        C::Success => "no refusal",
    }
}

async fn poll_loop(
    mut eventloop: EventLoop,
    me: NodeId,
    // The broker's settings, and what to say when it refuses the credential.
    (mqtt, refusal_hint): (MqttConfig, String),
    tx: mpsc::Sender<Link>,
    (want_config, want_recordings): (bool, bool),
    rekeying: Option<(AsyncClient, crate::enroll::CredentialFile)>,
    shutdown: CancellationToken,
) {
    let mut backoff = Duration::from_millis(200);
    // The broker's refusal is logged at once, then again only when it
    // changes or every REFUSAL_REMINDER while it lasts.
    let mut last_refusal: Option<(rumqttc::ConnectReturnCode, Instant)> = None;
    // A clean disconnect was asked for after a re-key.
    let mut reconnect = false;
    // A TLS refusal is logged when it first happens (and when it changes),
    // not on every retry.
    let mut last_tls_problem: Option<String> = None;
    loop {
        let ev = tokio::select! {
            _ = shutdown.cancelled() => {
                // Let the final presence + disconnect go out.
                let _ = tokio::time::timeout(Duration::from_secs(2), async {
                    while eventloop.poll().await.is_ok() {}
                }).await;
                return;
            }
            ev = eventloop.poll() => ev,
        };
        match ev {
            Ok(MqttEvent::Incoming(Packet::ConnAck(ack))) => {
                backoff = Duration::from_millis(200);
                if last_refusal.take().is_some() {
                    info!(device = %me, "mgmt's broker accepts this appliance's credential again");
                }
                debug!(device = %me, session_present = ack.session_present, "connack");
                if tx.send(Link::Up).await.is_err() {
                    return;
                }
            }
            Ok(MqttEvent::Incoming(Packet::Publish(p))) => {
                if let Some((client, cred)) = &rekeying
                    && DeviceTopic::parse(&p.topic)
                        .is_ok_and(|t| t.device == me && t.kind == Kind::Rekey)
                {
                    reconnect |= rekey(&mut eventloop, client, cred, &me, &p.payload).await;
                    continue;
                }
                let msg = match DeviceTopic::parse(&p.topic) {
                    Ok(t) if t.device == me && t.kind == Kind::Ack => {
                        decode::<Ack>(&p.payload).map(Link::Ack)
                    }
                    Ok(t) if t.device == me && t.kind == Kind::Cmd => {
                        decode::<Command>(&p.payload).map(Link::Command)
                    }
                    // An empty retained message clears the desired config.
                    Ok(t) if t.device == me && t.kind == Kind::Config && want_config => {
                        if p.payload.is_empty() {
                            continue;
                        }
                        decode::<DesiredConfig>(&p.payload).map(Link::Config)
                    }
                    Ok(t) if t.device == me && t.kind == Kind::RecState && want_recordings => {
                        decode::<crossline_proto::recording::RecordingState>(&p.payload)
                            .map(Link::RecState)
                    }
                    _ => {
                        warn!(device = %me, topic = %p.topic, "ignoring message on unexpected topic");
                        continue;
                    }
                };
                match msg {
                    Ok(m) => {
                        if tx.send(m).await.is_err() {
                            return;
                        }
                    }
                    Err(e) => {
                        warn!(device = %me, topic = %p.topic, error = %e, "rejected message from mgmt")
                    }
                }
            }
            // The answer and the DISCONNECT are out (no last will): drop
            // the connection; the next poll connects with the new secret.
            Ok(MqttEvent::Outgoing(rumqttc::Outgoing::Disconnect)) if reconnect => {
                reconnect = false;
                eventloop.clean();
                if tx
                    .send(Link::Down("reconnecting with the new secret".into()))
                    .await
                    .is_err()
                {
                    return;
                }
            }
            Ok(_) => {}
            Err(e) => {
                if let rumqttc::ConnectionError::ConnectionRefused(code) = &e {
                    let repeat = last_refusal
                        .is_some_and(|(c, at)| c == *code && at.elapsed() < REFUSAL_REMINDER);
                    if !repeat {
                        tracing::error!(
                            device = %me,
                            broker = %mqtt.url,
                            code = ?code,
                            "mgmt's broker refused this appliance: {}; {refusal_hint}",
                            refusal_reason(*code)
                        );
                        last_refusal = Some((*code, Instant::now()));
                    }
                }
                match mqtt.tls_problem(&e) {
                    Some(p) if last_tls_problem.as_ref() != Some(&p) => {
                        tracing::error!(device = %me, "{p}");
                        last_tls_problem = Some(p);
                    }
                    Some(_) => {}
                    None => last_tls_problem = None,
                }
                if tx.send(Link::Down(e.to_string())).await.is_err() {
                    return;
                }
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
}
