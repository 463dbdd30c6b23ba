//! Ingestion: mgmt's MQTT client that receives what appliances publish.
//!
//! Event batches are stored (deduplicated on `(origin, seq)`, only contiguous
//! prefixes, see [`crossline_store::EventLog::ingest`]) and only then
//! acknowledged with the origin's highest contiguous seq. A batch that skips
//! ahead (a hole: the broker lost something) is refused and the origin is
//! asked to resend from the first missing seq. Malformed, oversized,
//! wrong-version or spoofed payloads are logged with their reason and counted;
//! they never stop ingestion of anything else. A well-formed event its device
//! may not send (see `crate::storage::sqlite::projection::trust`) is stored as a refusal in its slot, and
//! one stamped beyond the allowed clock skew with mgmt's time; both are
//! logged with the device and counted here.

use crate::bus::{BrokerLink, IngestSignal, Update};
use crate::clock::now_ms;
use crate::metrics::Metrics;
use crossline_core::{Event, NodeId};
use crossline_proto::{
    Ack, DeviceTopic, EventBatch, Hello, Kind, Presence, PresenceState, Telemetry, decode, encode,
};
use crossline_store::{Amendment, DeviceRegistry, EventLog};
use rumqttc::{AsyncClient, Event as MqttEvent, Packet, QoS};
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{broadcast, mpsc};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

enum Work {
    Batch(NodeId, EventBatch),
    Hello(NodeId, Hello),
}

/// Runs the ingestion client until `shutdown`.
pub async fn run<S>(
    store: S,
    link: BrokerLink,
    metrics: Arc<Metrics>,
    updates: broadcast::Sender<Update>,
    shutdown: CancellationToken,
) -> anyhow::Result<()>
where
    S: EventLog + DeviceRegistry + Clone,
{
    run_with_signals(store, link, metrics, updates, None, shutdown).await
}

/// [`run`], also telling `signals` when the connection comes up and when a
/// device says Hello (the command dispatcher re-publishes pending commands).
pub async fn run_with_signals<S>(
    store: S,
    link: BrokerLink,
    metrics: Arc<Metrics>,
    updates: broadcast::Sender<Update>,
    signals: Option<mpsc::UnboundedSender<IngestSignal>>,
    shutdown: CancellationToken,
) -> anyhow::Result<()>
where
    S: EventLog + DeviceRegistry + Clone,
{
    let mut opts = link.options(&link.username);
    opts.set_keep_alive(Duration::from_secs(10));
    // Keep our subscriptions and queued messages across a short mgmt restart
    // when the broker survives it (an external broker). Not relied upon.
    opts.set_clean_session(false);
    // Accept whatever the broker lets through, so an oversized payload is
    // refused by the decoder with a logged reason instead of breaking our
    // connection (and being redelivered for ever). The broker caps packets.
    opts.set_max_packet_size(16 << 20, crossline_proto::MAX_PAYLOAD + 1024);
    opts.set_inflight(1000);
    let (client, mut eventloop) = AsyncClient::new(opts, 1024);
    // Acks and commands are small: send them at once (no Nagle delay).
    let mut net = rumqttc::NetworkOptions::new();
    net.set_tcp_nodelay(true);
    eventloop.set_network_options(net);
    let (work_tx, work_rx) = mpsc::channel::<Work>(4096);
    let worker = tokio::spawn(worker(
        store.clone(),
        client.clone(),
        work_rx,
        metrics.clone(),
        updates.clone(),
        signals.clone(),
    ));
    let mut backoff = Duration::from_millis(100);
    // When each device's last seen was last written from its telemetry.
    let mut seen_written: HashMap<NodeId, Instant> = HashMap::new();
    info!(broker = %format!("{}:{}", link.host, link.port), user = %link.username, "ingestion connecting");
    loop {
        let ev = tokio::select! {
            _ = shutdown.cancelled() => break,
            ev = eventloop.poll() => ev,
        };
        match ev {
            Ok(MqttEvent::Incoming(Packet::ConnAck(_))) => {
                backoff = Duration::from_millis(100);
                for k in [Kind::Events, Kind::Hello, Kind::Presence, Kind::Telemetry] {
                    client.subscribe(k.filter_all(), QoS::AtLeastOnce).await?;
                }
                info!("ingestion connected and subscribed");
                if let Some(s) = &signals {
                    let _ = s.send(IngestSignal::Connected(client.clone()));
                }
            }
            Ok(MqttEvent::Incoming(Packet::Publish(p))) => {
                metrics.mqtt_messages.inc();
                let topic = match DeviceTopic::parse(&p.topic) {
                    Ok(t) => t,
                    Err(e) => {
                        reject(&metrics, None, &p.topic, &e.to_string());
                        continue;
                    }
                };
                let dev = topic.device.clone();
                match topic.kind {
                    Kind::Events => match decode::<EventBatch>(&p.payload)
                        .and_then(|b| b.check_origin(&dev).map(|()| b))
                    {
                        Ok(b) => {
                            if work_tx.send(Work::Batch(dev, b)).await.is_err() {
                                break;
                            }
                        }
                        Err(e) => reject(&metrics, Some(&dev), &p.topic, &e.to_string()),
                    },
                    Kind::Hello => match decode::<Hello>(&p.payload) {
                        Ok(h) => {
                            if work_tx.send(Work::Hello(dev, h)).await.is_err() {
                                break;
                            }
                        }
                        Err(e) => reject(&metrics, Some(&dev), &p.topic, &e.to_string()),
                    },
                    Kind::Presence => match decode::<Presence>(&p.payload) {
                        Ok(pr) => {
                            let online = pr.state == PresenceState::Online;
                            info!(device = %dev, online, "presence");
                            if let Err(e) = store.set_presence(&dev, online, now_ms()).await {
                                warn!(device = %dev, error = %e, "could not record presence");
                            }
                            let _ = updates.send(Update::Presence {
                                device: dev,
                                online,
                            });
                        }
                        Err(e) => reject(&metrics, Some(&dev), &p.topic, &e.to_string()),
                    },
                    Kind::Telemetry => match decode::<Telemetry>(&p.payload) {
                        Ok(t) => {
                            // A flood of telemetry is not a flood of writes
                            // (the fleet service drops what is over the
                            // device's rate): last seen at most once a
                            // PRESENCE_REFRESH per device.
                            let due = seen_written
                                .get(&dev)
                                .is_none_or(|at| at.elapsed() >= PRESENCE_REFRESH);
                            if due {
                                seen_written.insert(dev.clone(), Instant::now());
                                let _ = store.set_presence(&dev, true, now_ms()).await;
                            }
                            let _ = updates.send(Update::Telemetry {
                                device: dev,
                                telemetry: Box::new(t),
                            });
                        }
                        Err(e) => reject(&metrics, Some(&dev), &p.topic, &e.to_string()),
                    },
                    // Fleet topics: handled by crate::services::fleet's own connection.
                    Kind::Ack
                    | Kind::Cmd
                    | Kind::Config
                    | Kind::Reported
                    | Kind::Result
                    | Kind::Rekey
                    | Kind::Rekeyed => {}
                    // Recordings: crate::services::recordings's own connection.
                    Kind::Rec | Kind::RecState => {}
                    // Update progress: not handled by mgmt yet (its rollout
                    // service is to come, docs/OTA.md).
                    Kind::Update => {}
                }
            }
            Ok(_) => {}
            Err(e) => {
                warn!(error = %e, "broker connection lost; reconnecting");
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(3));
            }
        }
    }
    drop(work_tx);
    let _ = tokio::time::timeout(Duration::from_secs(5), worker).await;
    let _ = tokio::time::timeout(Duration::from_secs(1), client.disconnect()).await;
    Ok(())
}

fn reject(metrics: &Metrics, dev: Option<&NodeId>, topic: &str, why: &str) {
    metrics.rejected.inc();
    let topic: String = topic.chars().take(200).collect();
    match dev {
        Some(d) => warn!(device = %d, topic = %topic, reason = %why, "rejected payload"),
        None => warn!(topic = %topic, reason = %why, "rejected payload"),
    }
}

/// Events one group commit of mgmt's store may hold (the store's default
/// is 4096). Under a backlog from many appliances, every group rewrites the
/// pages of the projection's indexes it touches, and most touches land on
/// pages kept in random order (a conversation's timeline, the conversation
/// row, its place in the activity index): bigger groups write each such
/// page once for more events. A lone request still commits alone.
pub const MAX_GROUP_EVENTS: usize = 16_384;

/// A device's last seen is written from its telemetry at most this often
/// (its presence messages are always written).
const PRESENCE_REFRESH: Duration = Duration::from_secs(1);

/// WAL pages (4 KiB) after which mgmt's store copies the WAL back into the
/// database file (the store's default is 4096, 16 MiB): a page rewritten by
/// many groups is copied back once. The WAL grows to about 64 MiB.
pub const CHECKPOINT_PAGES: u32 = 16_384;

/// Rounds handed to the store and not yet acknowledged, at most. While round
/// k commits, round k+1 is already queued at the store's writer, so the writer
/// never waits for this worker between commits.
const PIPELINE: usize = 4;

/// Work received in one go: one ingest request per origin (already queued at
/// the store), and the Hellos that arrived with it.
struct Round {
    stored: tokio::task::JoinHandle<Vec<Ingested>>,
    hellos: Vec<(NodeId, Hello)>,
}

/// One origin's part of a round, once the store answered.
struct Ingested {
    origin: NodeId,
    /// The events handed to the store (kept only when someone listens to
    /// [`Update`]s).
    events: Vec<Event>,
    n: usize,
    started: Instant,
    out: crossline_store::Result<crossline_store::IngestOutcome>,
}

/// Stores batches in groups and acknowledges after commit, with up to
/// [`PIPELINE`] rounds in flight.
///
/// Order: the store orders requests when they are made ([`EventLog::ingest`]),
/// rounds are submitted in the order their messages arrived, and they are
/// answered (acks, [`Update::Stored`], Hellos) strictly in that order too. An
/// ack therefore never claims more than is committed, and acks per origin
/// never go backwards.
async fn worker<S>(
    store: S,
    client: AsyncClient,
    mut rx: mpsc::Receiver<Work>,
    metrics: Arc<Metrics>,
    updates: broadcast::Sender<Update>,
    signals: Option<mpsc::UnboundedSender<IngestSignal>>,
) where
    S: EventLog + DeviceRegistry + Clone,
{
    // Last resend request per origin, so a burst of out-of-order batches
    // after a hole asks once, not once per batch.
    let mut asked: HashMap<NodeId, (u64, Instant)> = HashMap::new();
    let mut buf = Vec::with_capacity(256);
    let mut inflight: VecDeque<Round> = VecDeque::new();
    let mut open = true;
    loop {
        let can_take = open && inflight.len() < PIPELINE;
        if !can_take && inflight.is_empty() {
            break;
        }
        tokio::select! {
            // Answer finished rounds first: acks free the appliances' windows.
            biased;
            done = oldest(&mut inflight), if !inflight.is_empty() => {
                let hellos = inflight.pop_front().map(|r| r.hellos).unwrap_or_default();
                let results = done.unwrap_or_else(|e| {
                    warn!(error = %e, "an ingest round failed; its events are not acknowledged and will be resent");
                    Vec::new()
                });
                for r in results {
                    answer(&client, &metrics, &updates, &mut asked, r).await;
                }
                for (origin, hello) in hellos {
                    answer_hello(&store, &client, signals.as_ref(), origin, hello).await;
                }
            }
            n = rx.recv_many(&mut buf, 256), if can_take => {
                if n == 0 {
                    open = false;
                } else {
                    inflight.push_back(submit(&store, &metrics, &updates, buf.drain(..)));
                }
            }
        }
    }
}

/// The oldest round's results (pending for ever when there is none; the
/// caller only polls this while a round is in flight).
async fn oldest(inflight: &mut VecDeque<Round>) -> Result<Vec<Ingested>, tokio::task::JoinError> {
    match inflight.front_mut() {
        Some(r) => (&mut r.stored).await,
        None => std::future::pending().await,
    }
}

/// Hands one round to the store. Consecutive batches of an origin become one
/// ingest request; every request is made here, before this returns, so the
/// store queues them in arrival order (origins of a round commit as one
/// group).
fn submit<S>(
    store: &S,
    metrics: &Metrics,
    updates: &broadcast::Sender<Update>,
    work: impl Iterator<Item = Work>,
) -> Round
where
    S: EventLog,
{
    let mut per_origin: Vec<(NodeId, Vec<Event>)> = Vec::new();
    let mut hellos = Vec::new();
    for w in work {
        match w {
            Work::Batch(o, b) => match per_origin.iter_mut().find(|(k, _)| *k == o) {
                Some((_, evs)) => evs.extend(b.events),
                None => per_origin.push((o, b.events)),
            },
            Work::Hello(o, h) => hellos.push((o, h)),
        }
    }
    let listening = updates.receiver_count() > 0;
    let mut requests = Vec::with_capacity(per_origin.len());
    for (origin, mut events) in per_origin {
        events.sort_by_key(|e| e.seq);
        let before = events.len();
        events.dedup_by_key(|e| e.seq);
        // The same batch received twice in one drain (a redelivery).
        metrics.duplicates.add((before - events.len()) as u64);
        let keep = if listening {
            events.clone()
        } else {
            Vec::new()
        };
        let n = events.len();
        let started = Instant::now();
        let fut = store.ingest(&origin, events);
        requests.push(async move {
            let out = fut.await;
            Ingested {
                origin,
                events: keep,
                n,
                started,
                out,
            }
        });
    }
    Round {
        stored: tokio::spawn(futures_util::future::join_all(requests)),
        hellos,
    }
}

/// Acknowledges what one ingest request stored (or asks for a resend) and
/// tells live subscribers.
async fn answer(
    client: &AsyncClient,
    metrics: &Metrics,
    updates: &broadcast::Sender<Update>,
    asked: &mut HashMap<NodeId, (u64, Instant)>,
    r: Ingested,
) {
    let Ingested {
        origin,
        events,
        n,
        started,
        out,
    } = r;
    match out {
        Ok(o) => {
            metrics.events_stored.add(o.stored as u64);
            metrics.duplicates.add(o.duplicates as u64);
            metrics
                .commit_seconds
                .observe(started.elapsed().as_secs_f64());
            let resend = o.missing_from.filter(|&m| {
                let fresh = asked
                    .get(&origin)
                    .is_none_or(|(s, t)| *s != m || t.elapsed() > Duration::from_secs(1));
                if fresh {
                    asked.insert(origin.clone(), (m, Instant::now()));
                }
                fresh
            });
            if let Some(m) = o.missing_from {
                metrics.holes.inc();
                debug!(device = %origin, contiguous = o.contiguous, missing_from = m, "hole in stream");
            }
            debug!(device = %origin, n, stored = o.stored, dup = o.duplicates, contiguous = o.contiguous, "ingested");
            report_amended(metrics, &origin, &o.amended);
            send_ack(client, &origin, Ack::new(o.contiguous, resend)).await;
            if o.stored > 0 && !events.is_empty() {
                let first_new = o.contiguous + 1 - o.stored as u64;
                let mut fresh: Vec<Event> = events
                    .into_iter()
                    .filter(|e| e.seq >= first_new && e.seq <= o.contiguous)
                    .collect();
                // Listeners see what was stored, never a refused event as sent.
                for a in &o.amended {
                    fresh.iter_mut().for_each(|e| a.apply(e));
                }
                let _ = updates.send(Update::Stored {
                    origin,
                    contiguous: o.contiguous,
                    events: fresh,
                });
            }
        }
        Err(e) => {
            // Not acknowledged: the appliance keeps the events and resends.
            warn!(device = %origin, error = %e, "could not store events; the appliance will resend");
        }
    }
}

/// Logs and counts the events of `origin` stored otherwise than sent: a
/// refusal names the device, seq, kind and reason (docs/PROTOCOL.md, "Trust").
fn report_amended(metrics: &Metrics, origin: &NodeId, amended: &[Amendment]) {
    for a in amended {
        match a {
            Amendment::Refused { seq, kind, reason } => {
                metrics.refused.inc();
                warn!(device = %origin, seq, kind, reason = %reason, "refused event: a device may only speak for itself; stored as a refusal");
            }
            Amendment::Restamped {
                seq,
                claimed,
                stored,
            } => {
                metrics.restamped.inc();
                warn!(device = %origin, seq, claimed_ms = claimed.ms, stored_ms = stored.ms, "event stamped beyond the allowed clock skew; stored with mgmt's time (check the device's clock)");
            }
        }
    }
}

/// Answers a device's Hello with what mgmt holds of its log (after every
/// round received before the Hello was answered).
async fn answer_hello<S>(
    store: &S,
    client: &AsyncClient,
    signals: Option<&mpsc::UnboundedSender<IngestSignal>>,
    origin: NodeId,
    hello: Hello,
) where
    S: EventLog,
{
    match store.contiguous(&origin).await {
        Ok(c) => {
            info!(device = %origin, head = hello.head, their_ack = hello.acked, ours = c, software = %hello.software, "hello");
            // The appliance streams from its own ack on connect; this
            // ack moves it forward if an earlier ack of ours was lost.
            send_ack(client, &origin, Ack::new(c, None)).await;
            if let Some(s) = signals {
                let _ = s.send(IngestSignal::Hello(origin.clone()));
            }
        }
        Err(e) => warn!(device = %origin, error = %e, "could not answer hello"),
    }
}

async fn send_ack(client: &AsyncClient, origin: &NodeId, ack: Ack) {
    let topic = DeviceTopic::new(origin, Kind::Ack).to_string();
    if let Err(e) = client
        .publish(topic, QoS::AtLeastOnce, false, encode(&ack))
        .await
    {
        warn!(device = %origin, error = %e, "could not publish ack");
    }
}
