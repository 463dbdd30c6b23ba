//! `crossline-bench sync`: durable replication throughput and latency from N
//! appliances to mgmt through the embedded broker, against the raw broker
//! throughput for the same message size in the same run, `--runs N` times
//! (default 5) in one invocation; every figure and ratio is written as
//! min / median / max into docs/BENCHMARKS.md (section "sync").
//!
//! Every benchmark rewrites only the part of its section between the
//! section's `generated` markers, so notes written around them stay.
//!
//! `crossline-bench sms`: an incoming SMS from the simulated modem's +CMTI
//! to mgmt's API and SSE stream, against Debian's gammu-smsd storing it in
//! its inbox (section "sms"; see src/bench/sms.rs).
//!
//! `crossline-bench fleet`: 10,000 simulated appliances' heartbeats and
//! telemetry against one mgmt process: its CPU and RSS, heartbeat latency,
//! fleet list render time (section "fleet"; see src/bench/fleet.rs).
//!
//! `crossline-bench soak`: the demo's setup (one mgmt, one appliance
//! sending 300 synthetic SMS a second from 10,000 customers) for
//! `--minutes` (default 3): mgmt's RSS and CPU per event over time after a
//! warm-up (section "soak"; see src/bench/soak.rs).
//!
//! `crossline-bench compare --base-bin PATH --head-bin PATH`: sync, sms and
//! web of two builds run alternately in one invocation, min / median / max
//! per build and the HEAD / BASE ratio (section "compare"; see
//! src/bench/compare.rs; `scripts/bench compare [BASE_REV]` builds both).
//!
//! `crossline-bench voice`: what a call costs the branch appliance: CPU per
//! active call-second (G.711, jitter buffer, DTMF, WAV), the audio path
//! latency from a simulated line's PCM to the IVR session's detector and
//! recorder, and the RSS of the real `crossline-appliance` with 4 modems
//! and 2 analog lines, idle and with calls (section "voice"; see
//! src/bench/voice.rs).
//!
//! `crossline-bench web`: web UI render times with 100,000 conversations and
//! 1,000,000 messages, and live-update latency to 1,000 desk streams
//! (section "web"; see src/bench/web.rs).

#[path = "../bench/compare.rs"]
mod compare;
#[path = "../bench/fleet.rs"]
mod fleet;
#[path = "../bench/http.rs"]
mod http;
#[path = "../bench/sms.rs"]
mod sms;
#[path = "../bench/soak.rs"]
mod soak;
#[path = "../bench/voice.rs"]
mod voice;
#[path = "../bench/web.rs"]
mod web;

use anyhow::{Context, Result};
use crossline_mgmt::bus::Update;
use crossline_store::DeviceRegistry;
use rumqttc::{AsyncClient, Event as MqttEvent, MqttOptions, Packet, QoS};
use std::path::PathBuf;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

struct Figures {
    durable_eps: f64,
    p50_ms: u64,
    p99_ms: u64,
    batch_bytes: usize,
    batch: u64,
    raw_eps: f64,
    /// One event per MQTT message: its size and messages (= events) per second.
    single_bytes: usize,
    single_eps: f64,
    /// mgmt's store alone (no broker, no appliances): the same events ingested
    /// directly, with mgmt's conversation projector and without any.
    store_eps: f64,
    bare_eps: f64,
}

#[tokio::main]
async fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let what = args.get(1).map(String::as_str).unwrap_or("sync");
    let out: PathBuf = arg(&args, "--out").unwrap_or_else(|| PathBuf::from("docs/BENCHMARKS.md"));
    match what {
        "sync" => run_sync(&args, &out).await,
        // Only mgmt's store (for profiling the writer); prints, writes nothing.
        "store" => {
            let tmp = tempfile::tempdir()?;
            let appliances: usize = arg(&args, "--appliances").unwrap_or(5);
            let per: u64 = arg(&args, "--events").unwrap_or(20_000);
            let sync = crossline_appliance::config::SyncConfig::default();
            let with = store_alone(&tmp.path().join("store"), true, appliances, per, &sync).await?;
            let bare = store_alone(&tmp.path().join("bare"), false, appliances, per, &sync).await?;
            println!(
                "mgmt's store alone: {with:.0} events/s with the projection, {bare:.0} without"
            );
            Ok(())
        }
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
        "fleet" => {
            let opts = fleet::Options {
                appliances: arg(&args, "--appliances").unwrap_or(10_000),
                interval: Duration::from_secs(arg(&args, "--interval").unwrap_or(30)),
                window: Duration::from_secs(arg(&args, "--window").unwrap_or(60)),
                ramp: arg(&args, "--ramp").unwrap_or(500),
                renders: arg(&args, "--renders").unwrap_or(20),
            };
            let f = fleet::run(&opts).await?;
            let section = fleet::section(&f);
            println!("{section}");
            write_section(&out, "fleet", &section)?;
            eprintln!("wrote {}", out.display());
            Ok(())
        }
        "compare" => {
            let bin = |name: &str| -> Result<PathBuf> {
                arg::<PathBuf>(&args, name).with_context(|| format!("compare needs {name} PATH"))
            };
            let label = |name: &str, bin: &std::path::Path| {
                arg::<String>(&args, name).unwrap_or_else(|| bin.display().to_string())
            };
            let (base, head) = (bin("--base-bin")?, bin("--head-bin")?);
            let opts = compare::Options {
                base: (base.clone(), label("--base-label", &base)),
                head: (head.clone(), label("--head-label", &head)),
                runs: arg(&args, "--runs").unwrap_or(3).max(1),
                only: arg::<String>(&args, "--only")
                    .unwrap_or_else(|| "sync,sms,web".into())
                    .split(',')
                    .map(str::to_string)
                    .collect(),
                web_conversations: arg(&args, "--web-conversations").unwrap_or(100_000),
            };
            let section = compare::run(&opts).await?;
            println!("{section}");
            write_section(&out, "compare", &section)?;
            eprintln!("wrote {}", out.display());
            Ok(())
        }
        "soak" => {
            let opts = soak::Options {
                minutes: arg(&args, "--minutes").unwrap_or(soak::DEFAULT_MINUTES),
                rate: arg(&args, "--rate").unwrap_or(300.0),
                sample: Duration::from_secs(arg(&args, "--sample-s").unwrap_or(10)),
                warmup: Duration::from_secs(arg(&args, "--warmup-s").unwrap_or(60)),
            };
            let f = soak::run(&opts).await?;
            let section = soak::section(&f);
            println!("{section}");
            write_section(&out, "soak", &section)?;
            eprintln!("wrote {}", out.display());
            Ok(())
        }
        "voice" => {
            let opts = voice::Options {
                runs: arg(&args, "--runs").unwrap_or(5),
                call_seconds: arg(&args, "--call-seconds").unwrap_or(600),
                latency_frames: arg(&args, "--latency-frames").unwrap_or(120),
            };
            let f = voice::run(&opts).await?;
            let section = voice::section(&f);
            println!("{section}");
            write_section(&out, "voice", &section)?;
            eprintln!("wrote {}", out.display());
            Ok(())
        }
        _ => {
            anyhow::bail!(
                "unknown benchmark {what:?} (known: sync, sms, web, store, fleet, soak, voice, compare)"
            )
        }
    }
}

/// Runs the sync benchmark `--runs` times (default 5) in this one
/// invocation and writes every figure, and every ratio (computed within
/// each run), as min / median / max over the runs.
async fn run_sync(args: &[String], out: &std::path::Path) -> Result<()> {
    let appliances: usize = arg(args, "--appliances").unwrap_or(5);
    let per: u64 = arg(args, "--events").unwrap_or(20_000);
    let runs: usize = arg(args, "--runs").unwrap_or(5).max(1);
    let load_before = load_average();
    let mut all = Vec::with_capacity(runs);
    for i in 0..runs {
        eprintln!("sync run {}/{runs}", i + 1);
        all.push(sync(appliances, per).await?);
    }
    let mut section = sync_section(&all, appliances, per);
    section += &format!(
        "The machine's 1-minute load average was {load_before} before the runs and {} after \
         (other work on it shares the 2 cores).\n",
        load_average()
    );
    println!("{section}");
    write_section(out, "sync", &section)?;
    eprintln!("wrote {}", out.display());
    Ok(())
}

/// The 1-minute load average (`/proc/loadavg`), or "unknown".
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "unknown".into())
}

/// Smallest, median (the mean of the middle two for an even count) and
/// largest of `v`; zeros for none.
fn spread(v: &[f64]) -> (f64, f64, f64) {
    let mut v: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
    v.sort_by(f64::total_cmp);
    let (Some(&min), Some(&max)) = (v.first(), v.last()) else {
        return (0.0, 0.0, 0.0);
    };
    let n = v.len();
    let median = if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    };
    (min, median, max)
}

/// The sync section: each figure and ratio as min / median / max over the runs.
fn sync_section(all: &[Figures], appliances: usize, per: u64) -> String {
    let Some(first) = all.first() else {
        return String::new();
    };
    let of = |f: &dyn Fn(&Figures) -> f64| spread(&all.iter().map(f).collect::<Vec<_>>());
    let row = |what: &str, f: &dyn Fn(&Figures) -> f64, unit: &str, decimals: usize| {
        let (lo, mid, hi) = of(f);
        format!(
            "| {what} | {lo:.decimals$}{unit} | {mid:.decimals$}{unit} | {hi:.decimals$}{unit} |\n"
        )
    };
    let bold = |what: &str, f: &dyn Fn(&Figures) -> f64, decimals: usize| {
        let (lo, mid, hi) = of(f);
        format!("| **{what}** | {lo:.decimals$}% | **{mid:.decimals$}%** | {hi:.decimals$}% |\n")
    };
    let mut s = format!(
        "## sync\n\n`scripts/bench sync` ({} appliances × {} events; {} runs in one invocation, each \
         a fresh mgmt; {} cores, {}). Every figure and every ratio is given as min / median / max \
         over the runs; a ratio is computed within each run (both of its sides measured in that \
         run, on the same machine), then summarised.\n\n\
         | figure | min | median | max |\n|---|---|---|---|\n",
        appliances,
        per,
        all.len(),
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0),
        if cfg!(debug_assertions) {
            "debug build"
        } else {
            "release build"
        },
    );
    s += &row(
        "durable events/s ingested by mgmt (appended, published, stored, acked)",
        &|f| f.durable_eps,
        "",
        0,
    );
    s += &row(
        "latency append → mgmt commit, p50",
        &|f| f.p50_ms as f64,
        " ms",
        0,
    );
    s += &row(
        "latency append → mgmt commit, p99",
        &|f| f.p99_ms as f64,
        " ms",
        0,
    );
    s += &row(
        &format!(
            "raw broker, the same {}-byte batches of {} events, QoS 1, no persistence (events/s)",
            first.batch_bytes, first.batch
        ),
        &|f| f.raw_eps,
        "",
        0,
    );
    s += &row(
        &format!(
            "raw broker, one event per message ({} bytes), QoS 1, no persistence (events/s)",
            first.single_bytes
        ),
        &|f| f.single_eps,
        "",
        0,
    );
    s += &row(
        "mgmt's store alone: the same events ingested directly, with the conversation projection (events/s)",
        &|f| f.store_eps,
        "",
        0,
    );
    s += &row(
        "mgmt's store alone, event log only, no projection (events/s)",
        &|f| f.bare_eps,
        "",
        0,
    );
    s += &bold(
        "durable / raw broker with the same batches",
        &|f| 100.0 * f.durable_eps / f.raw_eps,
        1,
    );
    s += &bold(
        "durable / raw broker with one event per message",
        &|f| 100.0 * f.durable_eps / f.single_eps,
        0,
    );
    s += &row(
        "durable / mgmt's store alone (with projection)",
        &|f| 100.0 * f.durable_eps / f.store_eps,
        "%",
        0,
    );
    s += "\n";
    s += SYNC_NOTES;
    s += &sync_targets(all);
    s
}

/// What the sync figures mean (written under the table).
const SYNC_NOTES: &str = "\
The durable figure is end to end: the appliances (in this process) append to their own SQLite logs \
(fsync), publish batches QoS 1 through mgmt's embedded broker, mgmt stores them with the conversation \
projection in one group-committed transaction (`synchronous=FULL`, the WAL fsynced) and only then acks; \
the run ends when every event is stored. The raw broker figures publish the same payloads from as many \
clients through the same broker to one subscriber, with nothing stored (publishers stay at most 500 \
messages ahead of the subscriber: the broker queues 1000 per client and drops the rest). The \
store-alone figures ingest the same events straight into a fresh mgmt database on the same disk \
(batches of the appliances' size, a window's worth in flight per origin), once as mgmt opens it and \
once as a bare event log (the store's default options).\n\n\
How to read it. With batches of 256 the raw broker forwards one opaque 73 KB blob per 256 events; \
mgmt's store alone, with nothing in front of it, stores only a few percent of that rate, so the \
issue's batch-to-batch ratio is bounded by the store and is reported as measured, not redefined. \
What bounds the store is its single writer's work per inbound SMS: the event row and its three \
indexes, then the projection (contact lookup, a timeline row indexed by conversation, the \
conversation row and its place in the activity index, the line seen). The synthetic traffic comes \
from 10,000 senders in turn, so every message of a batch lands in a different conversation: the \
timeline-by-conversation index, the conversation rows and the activity index are written in random \
order, and each group commit rewrites (and the WAL checkpoint copies back) most of their pages. The \
batched projector writes each conversation and each line once per run of messages, which pays when \
a customer writes several times within a batch, not here. Also on mgmt's path, after each commit: \
the live fan-out (SSE, desk) looks every stored message and its conversation up (cached statements). The comparisons that say something: \
against a broker carrying one event per message (what an uplink without batching costs), and against \
mgmt's own store with nothing in front of it (how much of its ceiling the pipeline uses). All parts \
share the machine's cores (appliances, broker and mgmt run in one process, other builds may run), so \
figures move with whatever else runs; compare ratios within one run.\n\n";

/// The figures of the run before the ingest work (batched projector,
/// single-pass decode, bigger groups, cached live lookups), for the
/// targets that work was given.
const BEFORE_STORE_EPS: f64 = 29_713.0;
const BEFORE_DURABLE_SHARE: f64 = 0.43;

/// Whether the runs met the ingest targets, in words.
fn sync_targets(all: &[Figures]) -> String {
    let shares: Vec<f64> = all.iter().map(|f| f.durable_eps / f.single_eps).collect();
    let stores: Vec<f64> = all.iter().map(|f| f.store_eps / BEFORE_STORE_EPS).collect();
    let (share_lo, share, share_hi) = spread(&shares);
    let (store_lo, store, store_hi) = spread(&stores);
    let met = |v: &[f64], goal: f64| v.iter().filter(|x| **x >= goal).count();
    format!(
        "Targets of the ingest work, judged on these {n} runs: durable ≥ 50% of the raw broker \
         with one event per message (was {:.0}%): {:.0}% / {:.0}% / {:.0}% (min / median / max), \
         met in {} of {n} runs; mgmt's store alone with the projection several times the {:.0} \
         events/s measured before: {:.1}× / {:.1}× / {:.1}×, at least 3× in {} of {n} runs.\n\n",
        BEFORE_DURABLE_SHARE * 100.0,
        share_lo * 100.0,
        share * 100.0,
        share_hi * 100.0,
        met(&shares, 0.5),
        BEFORE_STORE_EPS,
        store_lo,
        store,
        store_hi,
        met(&stores, 3.0),
        n = all.len(),
    )
}

fn arg<T: std::str::FromStr>(args: &[String], name: &str) -> Option<T> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
}

/// The markers around the generated part of section `name`.
fn markers(name: &str) -> (String, String) {
    (
        format!("<!-- scripts/bench {name}: generated from here -->\n"),
        format!("<!-- scripts/bench {name}: generated up to here -->\n"),
    )
}

/// Writes `section` (generated, starting with its `## name` heading) into
/// the markdown file. Only the part between the section's markers is
/// replaced: what people wrote around it (before or after the markers,
/// under the same heading) stays. A section without markers is replaced
/// whole, and gets them; a missing one is appended.
fn write_section(path: &std::path::Path, name: &str, section: &str) -> Result<()> {
    let old = std::fs::read_to_string(path).unwrap_or_else(|_| {
        "# Benchmarks\n\nFigures measured on this project's 2-core machine.\n\n".into()
    });
    std::fs::write(path, with_section(&old, name, section))
        .with_context(|| format!("writing {}", path.display()))
}

fn with_section(old: &str, name: &str, section: &str) -> String {
    let head = format!("## {name}\n");
    let (begin, end) = markers(name);
    let body = section
        .strip_prefix(&head)
        .unwrap_or(section)
        .trim_start_matches('\n')
        .trim_end();
    let generated = format!("{begin}{body}\n{end}");
    let Some(start) = old.find(&head) else {
        return format!("{}\n\n{head}\n{generated}", old.trim_end());
    };
    let from = start + head.len();
    let stop = old[from..]
        .find("\n## ")
        .map(|i| from + i + 1)
        .unwrap_or(old.len());
    let current = &old[from..stop];
    match (current.find(&begin), current.find(&end)) {
        (Some(b), Some(e)) if b < e => format!(
            "{}{generated}{}",
            &old[..from + b],
            &old[from + e + end.len()..]
        ),
        _ => format!("{}{head}\n{generated}\n{}", &old[..start], &old[stop..]),
    }
}

async fn sync(appliances: usize, per: u64) -> Result<Figures> {
    let tmp = tempfile::tempdir()?;
    let mut cfg: crossline_mgmt::config::Config = toml::from_str("")?;
    cfg.data_dir = tmp.path().join("mgmt");
    cfg.listen_on_free_loopback_ports();
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
        let secret = crossline_mgmt::services::fleet::credentials::new_secret();
        running
            .store
            .put_device(
                &id,
                &crossline_mgmt::services::fleet::credentials::hash_secret(&secret)?,
            )
            .await?;
        let app = crossline_appliance::Config {
            node_id: Some(id.clone()),
            data_dir: tmp.path().join(id.as_str()),
            mqtt: crossline_appliance::config::MqttConfig {
                url: format!("mqtt://127.0.0.1:{port}"),
                ca_file: None,
                secret: Some(secret),
                secret_file: None,
                keep_alive_s: 10,
            },
            sync: sync_cfg.clone(),
            modems: Vec::new(),
            fxo: Vec::new(),
            offline: None,
            enroll: None,
            telemetry: Default::default(),
            commands: Default::default(),
            ivr: None,
            prompts_dir: None,
            source: None,
            update: None,
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
    eprintln!("raw broker: {msgs} messages of {batch} events");
    let raw_msgs = raw_broker(port, &secret, &sample, appliances, msgs).await?;
    // What an uplink without batching would cost the broker: one event per
    // message, as many messages as the durable run had events.
    let single = crossline_proto::encode(&crossline_proto::EventBatch::new(
        crossline_appliance::synthetic::sample_events(1),
    ));
    eprintln!("raw broker: {total} messages of 1 event");
    let single_eps = raw_broker(port, &secret, &single, appliances, total).await?;
    running.stop().await;

    eprintln!("mgmt's store alone: {total} events, with and without projection");
    let store_eps =
        store_alone(&tmp.path().join("store"), true, appliances, per, &sync_cfg).await?;
    let bare_eps = store_alone(&tmp.path().join("bare"), false, appliances, per, &sync_cfg).await?;
    Ok(Figures {
        durable_eps,
        p50_ms: pct(0.50),
        p99_ms: pct(0.99),
        batch_bytes: sample.len(),
        batch,
        raw_eps: raw_msgs * batch as f64,
        single_bytes: single.len(),
        single_eps,
        store_eps,
        bare_eps,
    })
}

/// Events per second into mgmt's database with nothing in front of it: per
/// origin, batches of the appliances' size with at most a window's worth
/// in flight (as the uplink would have), every request durable before it
/// returns. `projection`: mgmt's store as `crossline-mgmt` opens it (with
/// the conversation projector) or a bare event log.
async fn store_alone(
    dir: &std::path::Path,
    projection: bool,
    appliances: usize,
    per: u64,
    sync: &crossline_appliance::config::SyncConfig,
) -> Result<f64> {
    use crossline_store::EventLog;
    std::fs::create_dir_all(dir)?;
    let store = if projection {
        let mut cfg: crossline_mgmt::config::Config = toml::from_str("")?;
        cfg.data_dir = dir.to_path_buf();
        crossline_mgmt::server::open_store(&cfg)?
    } else {
        crossline_store::SqliteStore::open(
            &dir.join("bare.db"),
            crossline_core::NodeId::new("mgmt")?,
        )?
    };
    let batch = sync.batch.max(1);
    let in_flight = (sync.window as usize / batch).max(1);
    let mut origins = Vec::new();
    for i in 0..appliances {
        let origin = crossline_core::NodeId::new(format!("bench-{i}"))?;
        let events: Vec<crossline_core::Event> = crossline_appliance::synthetic::sample_events(per)
            .into_iter()
            .map(|mut e| {
                e.origin = origin.clone();
                e
            })
            .collect();
        origins.push((origin, events));
    }
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for (origin, events) in origins {
        let store = store.clone();
        tasks.spawn(async move {
            let mut pending = std::collections::VecDeque::new();
            let mut events = events.into_iter().peekable();
            while events.peek().is_some() {
                let chunk: Vec<_> = events.by_ref().take(batch).collect();
                pending.push_back(store.ingest(&origin, chunk));
                if pending.len() >= in_flight
                    && let Some(f) = pending.pop_front()
                {
                    f.await?;
                }
            }
            for f in pending {
                f.await?;
            }
            anyhow::Ok(())
        });
    }
    while let Some(r) = tasks.join_next().await {
        r??;
    }
    let eps = (appliances as u64 * per) as f64 / started.elapsed().as_secs_f64();
    store.close()?;
    Ok(eps)
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

/// Messages the publishers may have sent beyond what the subscriber received
/// (the broker queues at most 1000 per client and drops the rest).
const RAW_WINDOW: u64 = 500;

/// Messages per second through the broker: `pubs` publishers, one subscriber
/// that must receive every message (publishers keep at most [`RAW_WINDOW`]
/// messages ahead of it, so the broker's per-client queue never overflows).
async fn raw_broker(
    port: u16,
    secret: &str,
    payload: &[u8],
    pubs: usize,
    msgs: u64,
) -> Result<f64> {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};
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
    let sent = Arc::new(AtomicU64::new(0));
    let received = Arc::new(AtomicU64::new(0));
    let progress = Arc::new(tokio::sync::Notify::new());
    let started = Instant::now();
    let mut handles = Vec::new();
    for i in 0..pubs {
        let (c, mut l) = client(port, &format!("bench-pub-{i}"), secret).await;
        let p = payload.to_vec();
        let (sent, received, progress) = (sent.clone(), received.clone(), progress.clone());
        handles.push(tokio::spawn(async move {
            let pub_task = tokio::spawn(async move {
                for _ in 0..per_pub {
                    loop {
                        let wake = progress.notified();
                        if sent.load(Ordering::Acquire)
                            < received.load(Ordering::Acquire) + RAW_WINDOW
                        {
                            break;
                        }
                        wake.await;
                    }
                    sent.fetch_add(1, Ordering::AcqRel);
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
    let mut last = Instant::now();
    while got < expected {
        if last.elapsed() > Duration::from_secs(30) {
            anyhow::bail!("raw benchmark stalled at {got}/{expected} (a message was dropped?)");
        }
        match tokio::time::timeout(Duration::from_secs(30), sub_loop.poll()).await {
            Ok(Ok(MqttEvent::Incoming(Packet::Publish(_)))) => {
                got += 1;
                last = Instant::now();
                received.store(got, Ordering::Release);
                progress.notify_waiters();
            }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rewriting_a_section_keeps_what_people_wrote_around_its_figures() {
        let (begin, end) = markers("web");
        let doc = format!(
            "# Benchmarks\n\n## web\n\n{begin}old figures\n{end}\nA paragraph written by hand.\n\n## fleet\n\nfleet figures\n"
        );
        let once = with_section(&doc, "web", "## web\n\nnew figures\n");
        let twice = with_section(&once, "web", "## web\n\nnewer figures\n");
        for d in [&once, &twice] {
            assert!(d.contains("A paragraph written by hand."), "{d}");
            assert!(d.contains("## fleet\n\nfleet figures\n"), "{d}");
            assert!(!d.contains("old figures"), "{d}");
        }
        assert!(
            twice.contains(&format!("{begin}newer figures\n{end}")),
            "{twice}"
        );
        assert!(!twice.contains("new figures"), "{twice}");
        // A section without markers yet gets them; a missing one is appended.
        let bare = with_section("# B\n\n## sms\n\nold\n", "sms", "## sms\n\nfresh\n");
        let (b, e) = markers("sms");
        assert_eq!(bare, format!("# B\n\n## sms\n\n{b}fresh\n{e}\n"));
        let added = with_section("# B\n", "web", "## web\n\nx\n");
        assert!(
            added.ends_with(&format!("## web\n\n{begin}x\n{end}")),
            "{added}"
        );
    }

    #[test]
    fn spread_is_min_median_max() {
        assert_eq!(spread(&[4.0, 1.0, 8.0, 2.0]), (1.0, 3.0, 8.0));
        assert_eq!(spread(&[3.0, 1.0, 2.0]), (1.0, 2.0, 3.0));
        assert_eq!(spread(&[]), (0.0, 0.0, 0.0));
    }
}
