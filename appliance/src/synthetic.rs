//! Synthetic traffic for the demo and the sync tests: customer SMS events at a
//! steady rate, as if a modem had received them.

use crate::config::SyntheticConfig;
use crate::log::LocalLog;
use crossline_core::{Channel, EventBody};
use crossline_store::{EventLog, NewEvent};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

const TEXTS: &[&str] = &[
    "Добрий день! Коли працює відділення?",
    "Здравствуйте, хочу уточнить баланс.",
    "Bună ziua, aș dori o programare.",
    "Hello, is my order ready?",
];

/// Appends `cfg.total` (or endless) synthetic received messages at `cfg.rate`/s.
pub async fn run<S: EventLog + Clone>(
    log: LocalLog<S>,
    cfg: SyntheticConfig,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let rate = cfg.rate.clamp(0.1, 1_000_000.0);
    // Emit in small bursts so high rates don't need a timer per event.
    let per_tick = (rate / 100.0).ceil().max(1.0) as u64;
    let tick = Duration::from_secs_f64(per_tick as f64 / rate);
    let mut interval = tokio::time::interval(tick);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut n = log.head();
    loop {
        if cfg.total > 0 && n >= cfg.total {
            tracing::info!(events = n, "synthetic traffic done");
            return Ok(());
        }
        tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            _ = interval.tick() => {}
        }
        let k = if cfg.total > 0 {
            per_tick.min(cfg.total - n)
        } else {
            per_tick
        };
        let batch = (0..k)
            .map(|i| {
                let idx = (n + i) as usize;
                NewEvent {
                    conversation: None,
                    body: EventBody::MessageReceived {
                        channel: Channel::Sms,
                        line: "gsm0".into(),
                        from: format!("+38050{:07}", idx % 10_000),
                        to: None,
                        text: sample_text(idx, cfg.text_len),
                        sent_at: None,
                        parts: 1,
                        incomplete: false,
                        key: None,
                    },
                }
            })
            .collect();
        match log.append(batch).await {
            Ok(evs) => n += evs.len() as u64,
            Err(e) => {
                tracing::error!(error = %e, "synthetic append failed");
                return Err(e.into());
            }
        }
    }
}

/// The text of synthetic message `idx`: a sample, or `len` characters of it
/// repeated when `len` > 0.
fn sample_text(idx: usize, len: usize) -> String {
    let base = TEXTS.get(idx % TEXTS.len()).copied().unwrap_or("?");
    if len == 0 {
        return base.to_string();
    }
    base.chars().cycle().take(len).collect()
}

/// `n` events shaped like the synthetic traffic (for benchmarks).
pub fn sample_events(n: u64) -> Vec<crossline_core::Event> {
    (1..=n)
        .map(|seq| crossline_core::Event {
            id: crossline_core::EventId::new(),
            origin: crossline_core::NodeId::new("bench-sample")
                .unwrap_or_else(|_| unreachable_id()),
            seq,
            at: crossline_core::Hlc {
                ms: 1_763_900_000_000 + seq,
                c: 0,
            },
            conversation: None,
            body: EventBody::MessageReceived {
                channel: Channel::Sms,
                line: "gsm0".into(),
                from: format!("+38050{:07}", seq % 10_000),
                to: None,
                text: TEXTS
                    .get(seq as usize % TEXTS.len())
                    .copied()
                    .unwrap_or("")
                    .to_string(),
                sent_at: None,
                parts: 1,
                incomplete: false,
                key: None,
            },
        })
        .collect()
}

#[allow(clippy::panic)]
fn unreachable_id() -> crossline_core::NodeId {
    panic!("\"bench-sample\" is a valid node id")
}
