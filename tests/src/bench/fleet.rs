//! `crossline-bench fleet`: `appliances` simulated appliances (lightweight
//! MQTT 3.1.1 clients written by hand, all in this process: one TCP
//! connection and one task each) against one mgmt process, each publishing
//! its presence and a telemetry sample (two modems) every `interval`. Reports
//! mgmt's CPU and RSS over a steady window, the heartbeat processing latency
//! (client send → mgmt's last-seen stamp, and → the fleet service's stored
//! sample), and the render time of the console's fleet list and the fleet
//! JSON API with that many devices.

use crate::http::{pct, time_get};
use anyhow::{Context, Result, bail};
use crossline_core::{ModemHealth, NodeId, SystemHealth};
use crossline_mgmt::clock::now_ms;
use crossline_mgmt::services::users::auth::{self, NewUser, Role};
use crossline_proto::{DeviceTopic, Kind, Presence, PresenceState, Telemetry, encode};
use crossline_tests::proc::Mgmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub struct Options {
    pub appliances: usize,
    pub interval: Duration,
    /// Steady-state measurement window.
    pub window: Duration,
    /// New connections per second while ramping up.
    pub ramp: usize,
    pub renders: usize,
}

pub struct Figures {
    pub appliances: usize,
    pub interval: Duration,
    pub window: Duration,
    pub connect_time: Duration,
    pub cpu_pct: f64,
    pub rss_mb: f64,
    pub hwm_mb: f64,
    pub msgs_per_s: f64,
    /// The machine's 1-minute load average at the end of the window.
    pub load: f64,
    /// (p50, p99, samples) send → last_seen (ingest).
    pub seen: (Duration, Duration, usize),
    /// (p50, p99, samples) send → fleet telemetry sample.
    pub stored: (Duration, Duration, usize),
    pub missing: usize,
    pub list_html: (Duration, Duration, usize),
    /// The list searched by IMEI (a scan of every device's lines).
    pub list_search: (Duration, Duration, usize),
    /// Filtered by operator, sorted by last seen (newest first), page 10.
    pub list_filter: (Duration, Duration, usize),
    pub list_json: (Duration, Duration, usize),
}

fn varint(mut n: usize, out: &mut Vec<u8>) {
    loop {
        let mut b = (n % 128) as u8;
        n /= 128;
        if n > 0 {
            b |= 0x80;
        }
        out.push(b);
        if n == 0 {
            break;
        }
    }
}

fn str16(s: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(&(s.len() as u16).to_be_bytes());
    out.extend_from_slice(s);
}

fn connect_packet(
    id: &str,
    secret: &str,
    will_topic: &str,
    will: &[u8],
    keep_alive: u16,
) -> Vec<u8> {
    let mut body = Vec::new();
    str16(b"MQTT", &mut body);
    body.push(4);
    // user, password, will retain, will QoS 1, will flag, clean session
    body.push(0x80 | 0x40 | 0x20 | 0x08 | 0x04 | 0x02);
    body.extend_from_slice(&keep_alive.to_be_bytes());
    str16(id.as_bytes(), &mut body);
    str16(will_topic.as_bytes(), &mut body);
    str16(will, &mut body);
    str16(id.as_bytes(), &mut body);
    str16(secret.as_bytes(), &mut body);
    let mut p = vec![0x10];
    varint(body.len(), &mut p);
    p.extend_from_slice(&body);
    p
}

fn publish_packet(topic: &str, payload: &[u8], retain: bool) -> Vec<u8> {
    let mut body = Vec::new();
    str16(topic.as_bytes(), &mut body);
    body.extend_from_slice(payload);
    let mut p = vec![0x30 | u8::from(retain)];
    varint(body.len(), &mut p);
    p.extend_from_slice(&body);
    p
}

fn telemetry(i: usize, uptime: u64) -> Vec<u8> {
    let modem = |line: &str, dbm| ModemHealth {
        line: line.into(),
        signal_dbm: Some(dbm),
        registered: true,
        operator: Some(
            if i.is_multiple_of(3) {
                "Kyivstar"
            } else {
                "lifecell"
            }
            .into(),
        ),
        iccid: Some(format!("8938003{i:013}")),
        model: Some("EC25".into()),
        firmware: Some("EC25EFAR06A06M4G".into()),
        imei: Some(format!("86123405{i:07}")),
        sim: Some("ready".into()),
        restarts: 0,
        disconnected: None,
    };
    encode(&Telemetry {
        v: crossline_proto::VERSION,
        system: SystemHealth {
            uptime_s: uptime,
            version: "0.1.0".into(),
            cpu_temp_c: Some(48.5),
            load1: Some(0.3),
            mem_used_pct: Some(41.0),
            disk_used_pct: Some(37.0),
            host_uptime_s: Some(86_400 + uptime),
        },
        modems: vec![modem("gsm0", -71 - (i % 20) as i32), modem("gsm1", -85)],
    })
}

struct Shared {
    connected: AtomicUsize,
    sent: AtomicU64,
    stop_sending: AtomicBool,
    last_sent: Vec<AtomicU64>,
}

async fn client(
    i: usize,
    port: u16,
    secret: String,
    opts_interval: Duration,
    offset: Duration,
    sh: Arc<Shared>,
) -> Result<()> {
    let id = format!("fb-{i:05}");
    let node = NodeId::new(id.as_str())?;
    let presence_topic = DeviceTopic::new(&node, Kind::Presence).to_string();
    let telemetry_topic = DeviceTopic::new(&node, Kind::Telemetry).to_string();
    let offline = encode(&Presence::new(PresenceState::Offline));
    let mut backoff = Duration::from_millis(200);
    let mut s = loop {
        let attempt = async {
            let mut s = TcpStream::connect(("127.0.0.1", port)).await?;
            s.set_nodelay(true)?;
            s.write_all(&connect_packet(
                &id,
                &secret,
                &presence_topic,
                &offline,
                120,
            ))
            .await?;
            let mut ack = [0u8; 4];
            tokio::time::timeout(Duration::from_secs(30), s.read_exact(&mut ack)).await??;
            if ack[0] != 0x20 || ack[3] != 0 {
                bail!("CONNACK {ack:?}");
            }
            Ok::<_, anyhow::Error>(s)
        };
        match attempt.await {
            Ok(s) => break s,
            Err(e) => {
                if backoff > Duration::from_secs(20) {
                    return Err(e).context(format!("{id} could not connect"));
                }
                tokio::time::sleep(backoff).await;
                backoff *= 2;
            }
        }
    };
    s.write_all(&publish_packet(
        &presence_topic,
        &encode(&Presence::new(PresenceState::Online)),
        true,
    ))
    .await?;
    sh.connected.fetch_add(1, Ordering::Relaxed);
    let started = Instant::now();
    tokio::time::sleep(offset).await;
    let mut tick = tokio::time::interval(opts_interval);
    let (mut rd, mut wr) = s.into_split();
    // Drain whatever the broker sends (nothing is subscribed: nothing).
    tokio::spawn(async move {
        let mut buf = [0u8; 256];
        while matches!(rd.read(&mut buf).await, Ok(n) if n > 0) {}
    });
    loop {
        tick.tick().await;
        if sh.stop_sending.load(Ordering::Relaxed) {
            // Stay connected (the broker's keep-alive is 1.5 × 120 s).
            tokio::time::sleep(Duration::from_secs(3600)).await;
            continue;
        }
        let payload = telemetry(i, started.elapsed().as_secs());
        let at = now_ms();
        wr.write_all(&publish_packet(&telemetry_topic, &payload, false))
            .await?;
        if let Some(slot) = sh.last_sent.get(i) {
            slot.store(at, Ordering::Relaxed);
        }
        sh.sent.fetch_add(1, Ordering::Relaxed);
    }
}

/// utime + stime of a process, in clock ticks.
pub fn cpu_ticks(pid: u32) -> Result<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or_default();
    let f: Vec<&str> = after.split_whitespace().collect();
    let ut: u64 = f.get(11).and_then(|v| v.parse().ok()).unwrap_or(0);
    let st: u64 = f.get(12).and_then(|v| v.parse().ok()).unwrap_or(0);
    Ok(ut + st)
}

/// A `kB` field of /proc/`pid`/status (`VmRSS:`, `VmHWM:`); 0 if unreadable.
pub fn status_kb(pid: u32, field: &str) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0.0)
}

pub async fn run(o: &Options) -> Result<Figures> {
    let tmp = tempfile::tempdir()?;
    let mut mgmt = Mgmt::new(tmp.path().join("mgmt"), None);
    mgmt.set_config(&format!(
        "[mqtt]\nmax_connections = {}\n[fleet]\ntick_ms = 1000\n[fleet.alerts]\neval_s = 10\n",
        o.appliances + 100
    ));
    // Devices and an admin session, written before mgmt starts.
    let n = o.appliances;
    let secret = crossline_tests::fleet::seed_devices(&mgmt.data, "fb", n, None).await?;
    let mut cfg: crossline_mgmt::config::Config = toml::from_str("")?;
    cfg.data_dir = mgmt.data.clone();
    let store = crossline_mgmt::server::open_store(&cfg)?;
    let pw = auth::hash_password("bench-password-1")?;
    let admin = auth::insert_user(
        &store,
        &NewUser {
            login: "bench".into(),
            name: "bench".into(),
            role: Role::Admin,
            agent_id: None,
            sites: vec![],
            teams: vec![],
            locale: None,
            time_zone: None,
        },
        &pw,
    )
    .await?;
    let cookie = format!(
        "Cookie: {}={}",
        crossline_mgmt::http::auth::SESSION_COOKIE,
        auth::create_session(&store, admin, None).await?
    );
    store.close()?;
    mgmt.start();
    let pid = mgmt.pid().context("mgmt pid")?;
    let port = mgmt.mqtt_port;
    let http_port = mgmt.http_port;

    let sh = Arc::new(Shared {
        connected: AtomicUsize::new(0),
        sent: AtomicU64::new(0),
        stop_sending: AtomicBool::new(false),
        last_sent: (0..n).map(|_| AtomicU64::new(0)).collect(),
    });
    eprintln!("connecting {n} appliances ({} per second)", o.ramp);
    let t0 = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    let pause = Duration::from_secs_f64(1.0 / o.ramp.max(1) as f64);
    for i in 0..n {
        let offset = o.interval.mul_f64(i as f64 / n as f64);
        tasks.spawn(client(
            i,
            port,
            secret.clone(),
            o.interval,
            offset,
            sh.clone(),
        ));
        tokio::time::sleep(pause).await;
    }
    while sh.connected.load(Ordering::Relaxed) < n {
        if let Some(Ok(Err(e))) = tasks.try_join_next() {
            return Err(e);
        }
        if t0.elapsed() > Duration::from_secs(600) {
            bail!(
                "only {} of {n} connected after 10 minutes",
                sh.connected.load(Ordering::Relaxed)
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let connect_time = t0.elapsed();
    eprintln!("all {n} connected in {connect_time:?}; settling for one interval");
    tokio::time::sleep(o.interval).await;

    let hz = 100.0; // USER_HZ on Linux
    let (c0, s0, w0) = (
        cpu_ticks(pid)?,
        sh.sent.load(Ordering::Relaxed),
        Instant::now(),
    );
    eprintln!("measuring for {:?}", o.window);
    tokio::time::sleep(o.window).await;
    let (c1, s1, wall) = (
        cpu_ticks(pid)?,
        sh.sent.load(Ordering::Relaxed),
        w0.elapsed(),
    );
    let cpu_pct = (c1 - c0) as f64 / hz / wall.as_secs_f64() * 100.0;
    let rss_mb = status_kb(pid, "VmRSS:") / 1024.0;
    let hwm_mb = status_kb(pid, "VmHWM:") / 1024.0;
    let msgs_per_s = (s1 - s0) as f64 / wall.as_secs_f64();
    let load = std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().and_then(|v| v.parse().ok()))
        .unwrap_or(0.0);

    // Render times with the fleet connected.
    let addr = format!("127.0.0.1:{http_port}");
    let list_html = time_get(&addr, &cookie, 0, o.renders, |_| "/admin/fleet".into()).await?;
    let list_search = time_get(&addr, &cookie, 0, o.renders, |i| {
        format!("/admin/fleet?q=86123405{:07}", (i * 7919) % n)
    })
    .await?;
    let list_filter = time_get(&addr, &cookie, 0, o.renders, |_| {
        "/admin/fleet/list?operator=Kyivstar&sort=last_seen&dir=desc&page=10".into()
    })
    .await?;
    let token = mgmt.api_token();
    let list_json = time_get(
        &addr,
        &format!("Authorization: Bearer {token}"),
        0,
        o.renders,
        |_| "/api/v1/fleet/devices".into(), // its first page (100)
    )
    .await?;

    // Latency of each appliance's last heartbeat.
    sh.stop_sending.store(true, Ordering::Relaxed);
    tokio::time::sleep(Duration::from_secs(5)).await;
    let conn = rusqlite::Connection::open_with_flags(
        mgmt.db(),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )?;
    let mut seen = Vec::new();
    let mut stored = Vec::new();
    let mut missing = 0;
    {
        let mut st = conn.prepare(
            "SELECT d.id, d.last_seen_ms, f.telemetry_ms FROM device d LEFT JOIN fleet_device f ON f.id = d.id",
        )?;
        let rows = st.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, Option<i64>>(1)?,
                r.get::<_, Option<i64>>(2)?,
            ))
        })?;
        for row in rows {
            let (id, last_seen, tel) = row?;
            let Some(i) = id.strip_prefix("fb-").and_then(|v| v.parse::<usize>().ok()) else {
                continue;
            };
            let sent = sh.last_sent.get(i).map_or(0, |a| a.load(Ordering::Relaxed)) as i64;
            if sent == 0 {
                continue;
            }
            match last_seen {
                Some(s) if s >= sent => seen.push(Duration::from_millis((s - sent) as u64)),
                _ => missing += 1,
            }
            if let Some(t) = tel
                && t >= sent
            {
                stored.push(Duration::from_millis((t - sent) as u64));
            }
        }
    }
    seen.sort();
    stored.sort();
    tasks.abort_all();
    drop(conn);
    mgmt.sigterm();
    Ok(Figures {
        appliances: n,
        interval: o.interval,
        window: wall,
        connect_time,
        cpu_pct,
        rss_mb,
        hwm_mb,
        msgs_per_s,
        load,
        seen: (pct(&seen, 0.5), pct(&seen, 0.99), seen.len()),
        stored: (pct(&stored, 0.5), pct(&stored, 0.99), stored.len()),
        missing,
        list_html,
        list_search,
        list_filter,
        list_json,
    })
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

pub fn section(f: &Figures) -> String {
    format!(
        "## fleet\n\n\
`scripts/bench fleet`: {n} simulated appliances (hand-written MQTT 3.1.1 clients, one TCP connection and one task each, all in the bench process) against one mgmt process with its embedded broker; each publishes its presence and then a telemetry sample (system + two modems, {bytes} bytes) every {iv} s, staggered. mgmt's CPU and RSS are read from /proc over a steady window of {win:.0} s; latency is each appliance's last heartbeat, from the client's send to mgmt's stamps (same clock).\n\n\
| figure | value |\n|---|---|\n\
| appliances connected | {n} in {ct:.1} s |\n\
| heartbeats/telemetry sent by the appliances | {mps:.0} msg/s |\n\
| mgmt CPU (steady) | {cpu:.1} % of one core |\n\
| mgmt RSS at the end / peak | {rss:.0} MiB / {hwm:.0} MiB |\n\
| heartbeat → last seen (ingest), p50 / p99 | {s50} / {s99} ({sn} samples, {miss} not seen) |\n\
| heartbeat → stored fleet sample, p50 / p99 | {t50} / {t99} ({tn} samples) |\n\
| console fleet list `/admin/fleet` (first page of 50, {n} devices), p50 / p99 | {h50} / {h99} ({hb} KiB) |\n\
| the same searched by IMEI `?q=86123405…`, p50 / p99 | {q50} / {q99} ({qb} KiB) |\n\
| its live part `/admin/fleet/list?operator=Kyivstar&sort=last_seen&dir=desc&page=10`, p50 / p99 | {f50} / {f99} ({fb} KiB) |\n\
| fleet JSON `/api/v1/fleet/devices` (first page of 100), p50 / p99 | {j50} / {j99} ({jb} KiB) |\n\n\
The console's fleet list is paged in SQL (50 rows, with the total count); the site, tag and operator filters and the sort columns are indexed, the free-text search (id, name, serial, IMEI) scans. The JSON API pages the same query (100 by default, `Link` to the next page). Figures are from one run on the shared 2-core machine (load average {load:.1} at the end of the window; other work on the machine makes CPU and latency tails pessimistic). Telemetry history is written once per second in one transaction (buffered samples); presence/last-seen is written by ingestion per message.\n",
        n = f.appliances,
        bytes = telemetry(1, 1).len(),
        iv = f.interval.as_secs(),
        win = f.window.as_secs_f64(),
        ct = f.connect_time.as_secs_f64(),
        mps = f.msgs_per_s,
        load = f.load,
        cpu = f.cpu_pct,
        rss = f.rss_mb,
        hwm = f.hwm_mb,
        s50 = ms(f.seen.0),
        s99 = ms(f.seen.1),
        sn = f.seen.2,
        miss = f.missing,
        t50 = ms(f.stored.0),
        t99 = ms(f.stored.1),
        tn = f.stored.2,
        h50 = ms(f.list_html.0),
        h99 = ms(f.list_html.1),
        hb = f.list_html.2 / 1024,
        q50 = ms(f.list_search.0),
        q99 = ms(f.list_search.1),
        qb = f.list_search.2 / 1024,
        f50 = ms(f.list_filter.0),
        f99 = ms(f.list_filter.1),
        fb = f.list_filter.2 / 1024,
        j50 = ms(f.list_json.0),
        j99 = ms(f.list_json.1),
        jb = f.list_json.2 / 1024,
    )
}
