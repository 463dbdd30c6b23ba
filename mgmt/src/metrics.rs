//! Prometheus metrics, hand-rolled (a few counters need no dependency).

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Default)]
pub struct Counter(AtomicU64);

impl Counter {
    pub fn inc(&self) {
        self.add(1);
    }
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A fixed-bucket histogram of seconds.
pub struct Histogram {
    bounds: &'static [f64],
    buckets: Vec<AtomicU64>,
    sum_us: AtomicU64,
    count: AtomicU64,
}

impl Histogram {
    fn new(bounds: &'static [f64]) -> Self {
        Self {
            bounds,
            buckets: bounds.iter().map(|_| AtomicU64::new(0)).collect(),
            sum_us: AtomicU64::new(0),
            count: AtomicU64::new(0),
        }
    }

    pub fn observe(&self, secs: f64) {
        for (b, c) in self.bounds.iter().zip(&self.buckets) {
            if secs <= *b {
                c.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.sum_us
            .fetch_add((secs * 1e6) as u64, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }
}

pub struct Metrics {
    pub mqtt_messages: Counter,
    pub events_stored: Counter,
    pub duplicates: Counter,
    pub rejected: Counter,
    /// Device events refused by the trust gate (stored as refusals).
    pub refused: Counter,
    /// Device events stamped beyond the allowed clock skew (stored with
    /// mgmt's time).
    pub restamped: Counter,
    pub holes: Counter,
    pub commit_seconds: Histogram,
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            mqtt_messages: Counter::default(),
            events_stored: Counter::default(),
            duplicates: Counter::default(),
            rejected: Counter::default(),
            refused: Counter::default(),
            restamped: Counter::default(),
            holes: Counter::default(),
            commit_seconds: Histogram::new(&[0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0]),
        }
    }
}

impl Metrics {
    /// Prometheus text exposition format.
    pub fn render(&self, devices_online: u64, devices_total: u64) -> String {
        let mut s = String::new();
        let mut counter = |name: &str, help: &str, v: u64| {
            let _ = writeln!(s, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}");
        };
        counter(
            "crossline_mqtt_messages_total",
            "MQTT messages received from devices.",
            self.mqtt_messages.get(),
        );
        counter(
            "crossline_events_stored_total",
            "Events durably stored from devices.",
            self.events_stored.get(),
        );
        counter(
            "crossline_events_duplicate_total",
            "Replicated events ignored as duplicates.",
            self.duplicates.get(),
        );
        counter(
            "crossline_payloads_rejected_total",
            "Device payloads refused (malformed, oversized, wrong version, spoofed).",
            self.rejected.get(),
        );
        counter(
            "crossline_events_refused_total",
            "Device events refused because the device may not say them (another device's command, mgmt's kind, a conversation named); stored as refusals.",
            self.refused.get(),
        );
        counter(
            "crossline_events_restamped_total",
            "Device events stamped beyond the allowed clock skew; stored with mgmt's time.",
            self.restamped.get(),
        );
        counter(
            "crossline_stream_holes_total",
            "Batches refused because earlier events were missing.",
            self.holes.get(),
        );
        let _ = writeln!(
            s,
            "# HELP crossline_devices_online Devices currently online.\n# TYPE crossline_devices_online gauge\ncrossline_devices_online {devices_online}"
        );
        let _ = writeln!(
            s,
            "# HELP crossline_devices Devices registered.\n# TYPE crossline_devices gauge\ncrossline_devices {devices_total}"
        );
        let h = &self.commit_seconds;
        let _ = writeln!(
            s,
            "# HELP crossline_ingest_commit_seconds Time to store one ingested batch.\n# TYPE crossline_ingest_commit_seconds histogram"
        );
        for (b, c) in h.bounds.iter().zip(&h.buckets) {
            let _ = writeln!(
                s,
                "crossline_ingest_commit_seconds_bucket{{le=\"{b}\"}} {}",
                c.load(Ordering::Relaxed)
            );
        }
        let count = h.count.load(Ordering::Relaxed);
        let _ = writeln!(
            s,
            "crossline_ingest_commit_seconds_bucket{{le=\"+Inf\"}} {count}"
        );
        let _ = writeln!(
            s,
            "crossline_ingest_commit_seconds_sum {}",
            h.sum_us.load(Ordering::Relaxed) as f64 / 1e6
        );
        let _ = writeln!(s, "crossline_ingest_commit_seconds_count {count}");
        s
    }
}
