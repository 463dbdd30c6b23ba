//! Telemetry at mgmt: the latest sample per device, and history as numeric
//! series (raw samples for [`RAW_KEEP`], 5-minute aggregates for
//! [`AGG_KEEP`]). Samples are buffered and written in one transaction per
//! sweep, not one per message.

use crossline_proto::Telemetry;
use serde::Serialize;

/// Raw samples are kept this long.
pub const RAW_KEEP_MS: i64 = 24 * 3600 * 1000;
/// 5-minute aggregates are kept this long.
pub const AGG_KEEP_MS: i64 = 30 * 24 * 3600 * 1000;
/// Aggregate bucket width.
pub const BUCKET_MS: i64 = 5 * 60 * 1000;

/// How much telemetry one device may send (`[fleet] telemetry_per_min`,
/// `telemetry_burst`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    /// Messages kept per minute, on average (0: only the burst, ever).
    pub per_min: u32,
    /// Messages a device may send at once above that rate.
    pub burst: u32,
}

/// What [`RateLimit::check`] decided about one telemetry message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Within the device's budget: store it.
    Keep,
    /// Over budget: drop it. `report` carries how many were dropped since
    /// the last report, once a minute per device (log that, not each drop).
    Drop { report: Option<u64> },
}

/// Per-device token buckets: each device may send `burst` messages at once
/// and `per_min` a minute on average. Bounded by the number of devices
/// (only authenticated devices publish telemetry).
#[derive(Debug)]
pub struct RateLimit {
    rate: Rate,
    devices: std::collections::HashMap<String, Bucket>,
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    at_ms: i64,
    dropped: u64,
    reported_ms: Option<i64>,
}

impl RateLimit {
    pub fn new(rate: Rate) -> Self {
        Self {
            rate,
            devices: Default::default(),
        }
    }

    /// Decides about a message from `device` arriving at `now_ms`.
    pub fn check(&mut self, device: &str, now_ms: i64) -> Verdict {
        let burst = f64::from(self.rate.burst.max(1));
        let per_ms = f64::from(self.rate.per_min) / 60_000.0;
        let b = self
            .devices
            .entry(device.to_string())
            .or_insert_with(|| Bucket {
                tokens: burst,
                at_ms: now_ms,
                dropped: 0,
                reported_ms: None,
            });
        let elapsed = (now_ms - b.at_ms).max(0) as f64;
        b.tokens = (b.tokens + elapsed * per_ms).min(burst);
        b.at_ms = now_ms;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            return Verdict::Keep;
        }
        b.dropped += 1;
        let due = b.reported_ms.is_none_or(|t| now_ms - t >= 60_000);
        if due {
            b.reported_ms = Some(now_ms);
            let n = std::mem::take(&mut b.dropped);
            Verdict::Drop { report: Some(n) }
        } else {
            Verdict::Drop { report: None }
        }
    }
}

/// One telemetry message, ready to store.
#[derive(Debug, Clone)]
pub struct Sample {
    pub device: String,
    pub at_ms: i64,
    pub json: String,
    pub series: Vec<(String, f64)>,
    /// (line, operator, IMEI) of each modem: what the fleet list filters on.
    pub lines: Vec<(String, Option<String>, Option<String>)>,
}

/// Flattens a telemetry message into named numeric series.
pub fn sample(device: &str, t: &Telemetry, at_ms: i64) -> Sample {
    let mut series = Vec::new();
    let s = &t.system;
    for (name, v) in [
        ("cpu_temp_c", s.cpu_temp_c),
        ("load1", s.load1),
        ("mem_used_pct", s.mem_used_pct),
        ("disk_used_pct", s.disk_used_pct),
    ] {
        if let Some(v) = v
            && v.is_finite()
        {
            series.push((name.to_string(), f64::from(v)));
        }
    }
    for m in &t.modems {
        if let Some(dbm) = m.signal_dbm {
            series.push((format!("signal_dbm:{}", m.line), f64::from(dbm)));
        }
    }
    Sample {
        device: device.to_string(),
        at_ms,
        json: serde_json::to_string(t).unwrap_or_default(),
        series,
        lines: t
            .modems
            .iter()
            .map(|m| (m.line.clone(), m.operator.clone(), m.imei.clone()))
            .collect(),
    }
}

/// A point of a series (for charts).
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct Point {
    pub at_ms: i64,
    pub value: f64,
    /// With aggregates: the bucket's min and max.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
}
