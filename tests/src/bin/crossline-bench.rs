//! `crossline-bench sync`: durable replication throughput and latency from N
//! appliances to mgmt through the embedded broker, against the raw broker
//! throughput for the same message size in the same run. Writes the figures
//! into docs/BENCHMARKS.md (section "sync").
//!
//! `crossline-bench sms`: an incoming SMS from the simulated modem's +CMTI
//! to mgmt's API and SSE stream, against Debian's gammu-smsd storing it in
//! its inbox (section "sms"; see src/bench/sms.rs).
//!
//! `crossline-bench web`: web UI render times with 100,000 conversations and
//! 1,000,000 messages, and live-update latency to 1,000 desk streams
//! (section "web"; see src/bench/web.rs).

#[path = "../bench/sms.rs"]
mod sms;
#[path = "../bench/web.rs"]
mod web;

use anyhow::{Context, Result};
use crossline_mgmt::ingest::Update;
use crossline_store::DeviceRegistry;
use rumqttc::{AsyncClient, Event as MqttEvent, MqttOptions, Packet, QoS};
use std::path::PathBuf;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

struct Figures {
    appliances: usize,
    per: u64,
    durable_eps: f64,
    p50_ms: u64,
    p99_ms: u64,
    batch_bytes: usize,
    raw_eps: f64,
    raw_msgs: f64,
}

#[tokio::main]
async fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let what = args.get(1).map(String::as_str).unwrap_or("sync");
    let out: PathBuf = arg(&args, "--out").unwrap_or_else(|| PathBuf::from("docs/BENCHMARKS.md"));
    match what {
        "sync" => run_sync(&args, &out).await,
        "sms" => {
            let opts = sms::Options {
                messages: arg(&args, "--messages").unwrap_or(100),
                gammu_messages: arg(&args, "--gammu-messages").unwrap_or(20),
            };
            let f = sms::run(&opts).await?;
            let section = sms::section(&f);
            println!("{section}");
            write_section(&out, "sms", &section)?;
            eprintln!("wrote {}", out.display());
            Ok(())
        }
        "web" => {
            let opts = web::Options {
                conversations: arg(&args, "--conversations").unwrap_or(100_000),
                per: arg(&args, "--messages-per").unwrap_or(10),
                agents: arg(&args, "--agents").unwrap_or(1000),
                samples: arg(&args, "--samples").unwrap_or(200),
                live: arg(&args, "--live").unwrap_or(30),
            };
            let f = web::run(&opts).await?;
            let section = web::section(&f);
            println!("{section}");
            write_section(&out, "web", &section)?;
            eprintln!("wrote {}", out.display());
            Ok(())
        }
        _ => anyhow::bail!("unknown benchmark {what:?} (known: sync, sms, web)"),
    }
}

async fn run_sync(args: &[String], out: &std::path::Path) -> Result<()> {
    let appliances: usize = arg(args, "--appliances").unwrap_or(5);
    let per: u64 = arg(args, "--events").unwrap_or(20_000);
    let f = sync(appliances, per).await?;
    let ratio = f.durable_eps / f.raw_eps;
    let section = format!(
        "## sync\n\n`scripts/bench sync` ({} appliances × {} events, one run, {} cores, {}):\n\n\
         | figure | value |\n|---|---|\n\
         | durable events/s ingested by mgmt (appended, published, stored, acked) | {:.0} |\n\
         | latency append → mgmt commit, p50 | {} ms |\n\
         | latency append → mgmt commit, p99 | {} ms |\n\
         | raw broker throughput, same {}-byte messages, QoS 1, no persistence | {:.0} msg/s = {:.0} events/s |\n\
         | **durable / raw** | **{:.0}%** |\n\n\
         The raw figure publishes the same batch payload from {} clients through the same embedded broker to one\n\
         subscriber; the durable figure includes the appliance's fsync, JSON, the broker, mgmt's group-committed\n\
         fsync and the ack round trip. Goal: ≥ 50%.\n",
        f.appliances,
        f.per,
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0),
        if cfg!(debug_assertions) {
            "debug build"
        } else {
            "release build"
        },
        f.durable_eps,
        f.p50_ms,
        f.p99_ms,
        f.batch_bytes,
        f.raw_msgs,
        f.raw_eps,
        ratio * 100.0,
        f.appliances,
    );
    println!("{section}");
    write_section(out, "sync", &section)?;
    eprintln!("wrote {}", out.display());
    Ok(())
}

fn arg<T: std::str::FromStr>(args: &[String], name: &str) -> Option<T> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
}

/// Replaces (or appends) the `## name` section of a markdown file.
fn write_section(path: &std::path::Path, name: &str, section: &str) -> Result<()> {
    let old = std::fs::read_to_string(path).unwrap_or_else(|_| "# Benchmarks\n\nFigures measured on this project's 2-core machine; ratios are from one run.\n\n".into());
    let head = format!("## {name}\n");
    let new = match old.find(&head) {
        Some(start) => {
            let rest = &old[start + head.len()..];
            let end = rest
                .find("\n## ")
                .map(|i| start + head.len() + i + 1)
                .unwrap_or(old.len());
            format!("{}{}{}", &old[..start], section, &old[end..])
        }
        None => format!("{}\n\n{section}", old.trim_end()),
    };
    std::fs::write(path, new).with_context(|| format!("writing {}", path.display()))
}

async fn sync(appliances: usize, per: u64) -> Result<Figures> {
    let tmp = tempfile::tempdir()?;
    let mut cfg: crossline_mgmt::config::Config = toml::from_str("")?;
    cfg.data_dir = tmp.path().join("mgmt");
    cfg.http.listen = "127.0.0.1:0".parse()?;
    cfg.mqtt.listen = "127.0.0.1:0".parse()?;
    let running = crossline_mgmt::server::start(cfg.clone()).await?;
    let port = running.mqtt_addr.port();
    let mut updates = running.updates.subscribe();
    // The appliances' sync settings: the defaults, or `--batch N --window N`.
    let args: Vec<String> = std::env::args().collect();
    let mut sync_cfg = crossline_appliance::config::SyncConfig::default();
    sync_cfg.batch = arg(&args, "--batch").unwrap_or(sync_cfg.batch);
    sync_cfg.window = arg(&args, "--window").unwrap_or(sync_cfg.window);
    let batch = (sync_cfg.batch as u64).max(1);
    let stop = CancellationToken::new();
    let mut tasks = tokio::task::JoinSet::new();
    let total = appliances as u64 * per;
    eprintln!("sync: {appliances} appliances × {per} events");
    let started = Instant::now();
    for i in 0..appliances {
        let id = crossline_core::NodeId::new(format!("bench-{i}"))?;
        let secret = crossline_mgmt::credentials::new_secret();
        running
            .store
            .put_device(&id, &crossline_mgmt::credentials::hash_secret(&secret)?)
            .await?;
        let app = crossline_appliance::Config {
            node_id: Some(id.clone()),
            data_dir: tmp.path().join(id.as_str()),
            mqtt: crossline_appliance::config::MqttConfig {
                url: format!("mqtt://127.0.0.1:{port}"),
                secret: Some(secret),
                secret_file: None,
                keep_alive_s: 10,
            },
            sync: sync_cfg.clone(),
            modems: Vec::new(),
            offline: None,
            enroll: None,
            telemetry: Default::default(),
            commands: Default::default(),
            synthetic: Some(crossline_appliance::config::SyntheticConfig {
                rate: 1_000_000.0,
                total: per,
                text_len: 0,
            }),
        };
        tasks.spawn(crossline_appliance::run(app, stop.clone()));
    }
    let mut lat = Vec::with_capacity(total as usize);
    let mut seen = 0u64;
    let mut last_print = Instant::now();
    while seen < total {
        match tokio::time::timeout(Duration::from_secs(60), updates.recv()).await {
            Ok(Ok(Update::Stored { events, .. })) => {
                let now = now_ms();
                for e in &events {
                    lat.push(now.saturating_sub(e.at.ms));
                }
                seen += events.len() as u64;
            }
            Ok(Ok(_)) => {}
            Ok(Err(tokio::sync::broadcast::error::RecvError::Lagged(n))) => {
                anyhow::bail!("benchmark fell behind mgmt's update stream by {n} messages")
            }
            Ok(Err(e)) => anyhow::bail!("update stream closed: {e}"),
            Err(_) => anyhow::bail!("no progress for 60 s at {seen}/{total} events"),
        }
        if last_print.elapsed() > Duration::from_secs(1) {
            eprintln!("  {seen}/{total} events stored");
            last_print = Instant::now();
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    // Resends show as duplicates at mgmt: wasted work worth knowing about.
    if let Ok(m) = http_get(running.http_addr, "/metrics").await {
        for l in m.lines().filter(|l| {
            l.starts_with("crossline_events_duplicate_total")
                || l.starts_with("crossline_mqtt_messages_total")
        }) {
            eprintln!("  mgmt: {l}");
        }
    }
    stop.cancel();
    while tasks.join_next().await.is_some() {}
    lat.sort_unstable();
    let pct = |p: f64| {
        lat.get(((lat.len() as f64 - 1.0) * p) as usize)
            .copied()
            .unwrap_or(0)
    };
    let durable_eps = total as f64 / elapsed;

    // Raw broker throughput with the same payload size (one batch as the
    // appliances sent it).
    let sample = crossline_proto::encode(&crossline_proto::EventBatch::new(
        crossline_appliance::synthetic::sample_events(batch),
    ));
    let secret = std::fs::read_to_string(cfg.data_dir.join("mgmt.secret"))?
        .trim()
        .to_string();
    let msgs = (total / batch).max(50);
    let raw_msgs = raw_broker(port, &secret, &sample, appliances, msgs).await?;
    running.stop().await;
    Ok(Figures {
        appliances,
        per,
        durable_eps,
        p50_ms: pct(0.50),
        p99_ms: pct(0.99),
        batch_bytes: sample.len(),
        raw_eps: raw_msgs * batch as f64,
        raw_msgs,
    })
}

/// A plain HTTP/1.0 GET on mgmt (diagnostics only).
async fn http_get(addr: std::net::SocketAddr, path: &str) -> Result<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await?;
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").as_bytes())
        .await?;
    let mut out = String::new();
    s.take(1 << 20).read_to_string(&mut out).await?;
    Ok(out)
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

async fn client(port: u16, id: &str, secret: &str) -> (AsyncClient, rumqttc::EventLoop) {
    let mut o = MqttOptions::new(id, "127.0.0.1", port);
    o.set_credentials("mgmt", secret);
    o.set_max_packet_size(1 << 20, 1 << 20);
    o.set_inflight(100);
    o.set_keep_alive(Duration::from_secs(30));
    AsyncClient::new(o, 1000)
}

/// Messages per second through the broker: `pubs` publishers, one subscriber.
async fn raw_broker(
    port: u16,
    secret: &str,
    payload: &[u8],
    pubs: usize,
    msgs: u64,
) -> Result<f64> {
    let topic = "crossline/v1/bench/raw";
    let (sub, mut sub_loop) = client(port, "bench-sub", secret).await;
    sub.subscribe(topic, QoS::AtLeastOnce).await?;
    // Wait for the SUBACK before publishing.
    loop {
        if let MqttEvent::Incoming(Packet::SubAck(_)) = sub_loop.poll().await? {
            break;
        }
    }
    let per_pub = msgs / pubs as u64;
    let expected = per_pub * pubs as u64;
    let started = Instant::now();
    let mut handles = Vec::new();
    for i in 0..pubs {
        let (c, mut l) = client(port, &format!("bench-pub-{i}"), secret).await;
        let p = payload.to_vec();
        handles.push(tokio::spawn(async move {
            let pub_task = tokio::spawn(async move {
                for _ in 0..per_pub {
                    if c.publish(topic, QoS::AtLeastOnce, false, p.clone())
                        .await
                        .is_err()
                    {
                        break;
                    }
                }
                c
            });
            let mut acked = 0;
            while acked < per_pub {
                match l.poll().await {
                    Ok(MqttEvent::Incoming(Packet::PubAck(_))) => acked += 1,
                    Ok(_) => {}
                    Err(_) => break,
                }
            }
            let _ = pub_task.await;
        }));
    }
    let mut got = 0;
    while got < expected {
        match tokio::time::timeout(Duration::from_secs(30), sub_loop.poll()).await {
            Ok(Ok(MqttEvent::Incoming(Packet::Publish(_)))) => got += 1,
            Ok(Ok(_)) => {}
            Ok(Err(e)) => anyhow::bail!("raw subscriber: {e}"),
            Err(_) => anyhow::bail!("raw benchmark stalled at {got}/{expected}"),
        }
    }
    let secs = started.elapsed().as_secs_f64();
    for h in handles {
        let _ = h.await;
    }
    Ok(got as f64 / secs)
}
