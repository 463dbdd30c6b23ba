//! `crossline-bench soak`: the demo's setup over time. One mgmt process
//! (embedded broker, SQLite) and one appliance process whose synthetic
//! traffic sends `rate` inbound SMS a second from 10,000 customers (so
//! 10,000 open conversations after the first half minute, the load constant
//! from then on), for `minutes`. Every `sample` it reads mgmt's RSS and CPU
//! time from /proc, the events mgmt holds, and the time of one
//! `GET /api/v1/conversations`. After `warmup`, RSS and CPU per event
//! should stay flat; the section says whether they did (within 10 %), and
//! at the end that mgmt holds every event the appliance sent, once.

use crate::fleet::{cpu_ticks, status_kb};
use anyhow::{Context, Result, bail};
use crossline_tests::mgmt_counts;
use crossline_tests::proc::{Appliance, Mgmt};
use std::time::{Duration, Instant};

pub struct Options {
    pub minutes: f64,
    /// Synthetic inbound SMS per second.
    pub rate: f64,
    pub sample: Duration,
    pub warmup: Duration,
}

/// One reading at the end of an interval.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    /// Since the traffic started.
    pub at: Duration,
    pub events: u64,
    pub rss_mib: f64,
    /// mgmt's CPU time per event over the interval ending here, µs.
    pub cpu_us_per_event: f64,
    pub events_per_s: f64,
    pub api_ms: f64,
}

pub struct Figures {
    pub opts_rate: f64,
    pub minutes: f64,
    pub warmup: Duration,
    pub sample: Duration,
    /// After the warm-up, in order.
    pub samples: Vec<Sample>,
    pub total_sent: u64,
    pub total_at_mgmt: u64,
    pub db_mib: f64,
    pub load_before: String,
    pub load_after: String,
}

const CUSTOMERS: u64 = 10_000;

pub async fn run(o: &Options) -> Result<Figures> {
    let tmp = tempfile::tempdir()?;
    let load_before = crate::load_average();
    let mut mgmt = Mgmt::new(tmp.path().join("mgmt"), None);
    let secret = mgmt.add_device("soak-branch");
    mgmt.start();
    let pid = mgmt.pid().context("mgmt pid")?;
    let token = mgmt.api_token();
    let total = (o.rate * o.minutes * 60.0).round() as u64;
    let mut app = Appliance::with_config(
        tmp.path(),
        "soak-branch",
        &secret,
        mgmt.mqtt_port,
        &format!("[synthetic]\nrate = {}\ntotal = {total}\n", o.rate),
    );
    let counted = |m: &Mgmt| {
        mgmt_counts(m.http_port, &token)
            .and_then(|c| c.get("soak-branch").copied())
            .unwrap_or(0)
    };
    let api = format!("127.0.0.1:{}", mgmt.http_port);
    let auth = format!("Authorization: Bearer {token}");
    app.start();
    let t0 = Instant::now();
    let end = t0 + Duration::from_secs_f64(o.minutes * 60.0);
    let mut samples = Vec::new();
    let (mut ticks, mut events, mut at) = (cpu_ticks(pid)?, counted(&mgmt), Instant::now());
    eprintln!(
        "soak: {:.1} minutes at {} events/s from {CUSTOMERS} customers, sampling every {:?}",
        o.minutes, o.rate, o.sample
    );
    while Instant::now() < end {
        tokio::time::sleep(o.sample).await;
        let now = Instant::now();
        let (t, e) = (cpu_ticks(pid)?, counted(&mgmt));
        let q = Instant::now();
        let (status, _) = crate::http::get(&api, "/api/v1/conversations?limit=50", &auth).await?;
        if status != 200 {
            bail!("GET /api/v1/conversations answered {status}");
        }
        let api_ms = q.elapsed().as_secs_f64() * 1000.0;
        let de = e.saturating_sub(events);
        // USER_HZ on Linux: 100 ticks a second.
        let cpu_us = (t.saturating_sub(ticks)) as f64 * 10_000.0;
        let s = Sample {
            at: now - t0,
            events: e,
            rss_mib: status_kb(pid, "VmRSS:") / 1024.0,
            cpu_us_per_event: if de > 0 { cpu_us / de as f64 } else { f64::NAN },
            events_per_s: de as f64 / (now - at).as_secs_f64(),
            api_ms,
        };
        eprintln!(
            "  {:>6.0} s  {:>8} events  {:>6.1} events/s  RSS {:>6.1} MiB  CPU {:>6.1} µs/event  API {:>5.1} ms",
            s.at.as_secs_f64(),
            s.events,
            s.events_per_s,
            s.rss_mib,
            s.cpu_us_per_event,
            s.api_ms
        );
        if s.at >= o.warmup {
            samples.push(s);
        }
        (ticks, events, at) = (t, e, now);
    }
    // Lost and doubled nothing: every event the appliance logged is at mgmt,
    // once ((origin, seq) is unique there; the count is of stored events).
    let drain = Instant::now() + Duration::from_secs(120);
    let mut at_mgmt = counted(&mgmt);
    while at_mgmt < total && Instant::now() < drain {
        tokio::time::sleep(Duration::from_millis(500)).await;
        at_mgmt = counted(&mgmt);
    }
    let load_after = crate::load_average();
    let db_mib = ["mgmt.db", "mgmt.db-wal"]
        .iter()
        .filter_map(|f| std::fs::metadata(mgmt.data.join(f)).ok())
        .map(|m| m.len() as f64 / (1024.0 * 1024.0))
        .sum();
    app.sigterm();
    mgmt.sigterm();
    Ok(Figures {
        opts_rate: o.rate,
        minutes: o.minutes,
        warmup: o.warmup,
        sample: o.sample,
        samples,
        total_sent: total,
        total_at_mgmt: at_mgmt,
        db_mib,
        load_before,
        load_after,
    })
}

/// Least-squares slope of `y` over `x`; 0 for fewer than two points.
fn slope(points: &[(f64, f64)]) -> f64 {
    let n = points.len() as f64;
    if points.len() < 2 {
        return 0.0;
    }
    let (sx, sy) = points
        .iter()
        .fold((0.0, 0.0), |(a, b), (x, y)| (a + x, b + y));
    let (mx, my) = (sx / n, sy / n);
    let (num, den) = points.iter().fold((0.0, 0.0), |(a, b), (x, y)| {
        (a + (x - mx) * (y - my), b + (x - mx) * (x - mx))
    });
    if den == 0.0 { 0.0 } else { num / den }
}

/// The median of the first and of the last quarter of `v` (at least one
/// value each): a drift that one noisy interval cannot fake.
fn quarters(v: &[f64]) -> (f64, f64) {
    let q = (v.len() / 4).max(1).min(v.len());
    let first = crate::spread(v.get(..q).unwrap_or_default()).1;
    let last = crate::spread(v.get(v.len() - q..).unwrap_or_default()).1;
    (first, last)
}

fn change_pct(first: f64, last: f64) -> f64 {
    if first > 0.0 {
        (last - first) / first * 100.0
    } else {
        0.0
    }
}

fn flat(first: f64, last: f64) -> &'static str {
    if change_pct(first, last).abs() <= 10.0 {
        "flat (within 10 %)"
    } else {
        "**not flat** (beyond 10 %)"
    }
}

pub fn section(f: &Figures) -> String {
    let rss: Vec<f64> = f.samples.iter().map(|s| s.rss_mib).collect();
    let cpu: Vec<f64> = f.samples.iter().map(|s| s.cpu_us_per_event).collect();
    let api: Vec<f64> = f.samples.iter().map(|s| s.api_ms).collect();
    let eps: Vec<f64> = f.samples.iter().map(|s| s.events_per_s).collect();
    let (rmin, rmed, rmax) = crate::spread(&rss);
    let (cmin, cmed, cmax) = crate::spread(&cpu);
    let (amin, amed, amax) = crate::spread(&api);
    let (_, emed, _) = crate::spread(&eps);
    let first = f.samples.first();
    let last = f.samples.last();
    let (r0, r1) = (
        first.map_or(0.0, |s| s.rss_mib),
        last.map_or(0.0, |s| s.rss_mib),
    );
    let (c0, c1) = (
        first.map_or(0.0, |s| s.cpu_us_per_event),
        last.map_or(0.0, |s| s.cpu_us_per_event),
    );
    let (cq0, cq1) = quarters(&cpu);
    let (rq0, rq1) = quarters(&rss);
    let rss_per_h = slope(
        &f.samples
            .iter()
            .map(|s| (s.at.as_secs_f64() / 3600.0, s.rss_mib))
            .collect::<Vec<_>>(),
    );
    let cpu_per_h = slope(
        &f.samples
            .iter()
            .filter(|s| s.cpu_us_per_event.is_finite())
            .map(|s| (s.at.as_secs_f64() / 3600.0, s.cpu_us_per_event))
            .collect::<Vec<_>>(),
    );
    // Up to 12 rows, evenly spread over the run.
    let step = f.samples.len().div_ceil(12).max(1);
    let mut rows = String::new();
    for s in f.samples.iter().step_by(step).chain(
        f.samples
            .last()
            .filter(|_| !(f.samples.len() - 1).is_multiple_of(step)),
    ) {
        rows.push_str(&format!(
            "| {:.0} | {} | {:.0} | {:.1} | {:.1} | {:.1} |\n",
            s.at.as_secs_f64(),
            s.events,
            s.events_per_s,
            s.rss_mib,
            s.cpu_us_per_event,
            s.api_ms
        ));
    }
    let lost = f.total_sent.saturating_sub(f.total_at_mgmt);
    format!(
        "## soak\n\n\
`scripts/bench soak` (default {default} minutes; `--minutes 120` for two hours): one mgmt process (embedded broker, SQLite) and one appliance process whose synthetic traffic sends {rate} inbound SMS a second from {CUSTOMERS} customers, so {CUSTOMERS} open conversations from the first half minute on and a constant load after it. {profile}. mgmt's RSS (VmRSS) and CPU time (utime + stime) are read from /proc every {sample} s, with the events it holds and the time of one `GET /api/v1/conversations?limit=50`; figures below are after a {warmup} s warm-up. Load average {lb} before, {la} after.\n\n\
This run: {minutes:.1} minutes, {sent} events sent, {held} held by mgmt at the end ({lost} missing; `(origin, seq)` is unique, so none twice), {emed:.0} events/s median, database {db:.0} MiB at the end.\n\n\
| after warm-up | first interval | last interval | min / median / max | trend |\n\
|---|---|---|---|---|\n\
| RSS, MiB | {r0:.1} | {r1:.1} | {rmin:.1} / {rmed:.1} / {rmax:.1} | {rss_per_h:+.1} MiB/h; first vs last quarter {rq0:.1} → {rq1:.1}: {rflat} |\n\
| CPU per event, µs | {c0:.1} | {c1:.1} | {cmin:.1} / {cmed:.1} / {cmax:.1} | {cpu_per_h:+.1} µs/h; first vs last quarter {cq0:.1} → {cq1:.1} ({cchange:+.0} %): {cflat} |\n\
| API list, ms | {a0:.1} | {a1:.1} | {amin:.1} / {amed:.1} / {amax:.1} | |\n\n\
| s | events | events/s | RSS MiB | CPU µs/event | API ms |\n\
|---|---|---|---|---|---|\n\
{rows}",
        default = DEFAULT_MINUTES,
        profile = if cfg!(debug_assertions) {
            "Debug build (`crossline-bench` and the binaries beside it; `scripts/bench soak` uses release builds)"
        } else {
            "Release build"
        },
        rate = f.opts_rate,
        sample = f.sample.as_secs(),
        warmup = f.warmup.as_secs(),
        lb = f.load_before,
        la = f.load_after,
        minutes = f.minutes,
        sent = f.total_sent,
        held = f.total_at_mgmt,
        db = f.db_mib,
        rflat = flat(rq0, rq1),
        cflat = flat(cq0, cq1),
        cchange = change_pct(cq0, cq1),
        a0 = first.map_or(0.0, |s| s.api_ms),
        a1 = last.map_or(0.0, |s| s.api_ms),
    )
}

/// `scripts/bench soak` without `--minutes`.
pub const DEFAULT_MINUTES: f64 = 3.0;
