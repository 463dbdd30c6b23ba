//! Durable appends per second: one caller vs many concurrent callers.
//!
//! Every append returns only after its transaction is committed with
//! `synchronous=FULL`, so one caller pays one fsync per event. Concurrent
//! callers share the writer's group commit: one fsync per group. The ratio of
//! the two figures is the group-commit gain on this disk.
//!
//! `cargo bench -p crossline-store --bench append` (a few seconds).

// A benchmark is a developer tool: stopping loudly on a setup failure is right.
#![allow(clippy::expect_used)]

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use crossline_core::{EventBody, NodeId};
use crossline_store::{EventLog, NewEvent, SqliteStore};
use std::time::{Duration, Instant};

fn event() -> NewEvent {
    NewEvent {
        conversation: None,
        body: EventBody::DeviceHeartbeat { uptime_s: 42 },
    }
}

fn bench_append(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let dir = tempfile::tempdir().expect("temp dir");
    let local = NodeId::new("bench").expect("node id");

    let mut group = c.benchmark_group("append_durable");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3))
        .throughput(Throughput::Elements(1));
    for callers in [1u64, 16] {
        let store = SqliteStore::open(
            &dir.path().join(format!("bench-{callers}.db")),
            local.clone(),
        )
        .expect("open store");
        group.bench_function(format!("{callers}_callers"), |b| {
            b.iter_custom(|iters| {
                let per_caller = iters.div_ceil(callers);
                rt.block_on(async {
                    let start = Instant::now();
                    let tasks: Vec<_> = (0..callers)
                        .map(|_| {
                            let s = store.clone();
                            tokio::spawn(async move {
                                for _ in 0..per_caller {
                                    s.append(vec![event()]).await.expect("append");
                                }
                            })
                        })
                        .collect();
                    for t in tasks {
                        t.await.expect("caller task");
                    }
                    // Time per event actually appended (per_caller * callers >= iters).
                    start
                        .elapsed()
                        .mul_f64(iters as f64 / (per_caller * callers) as f64)
                })
            });
        });
        let stats = store.stats();
        eprintln!(
            "{callers} caller(s): {} requests in {} commits ({:.1} requests per fsync)",
            stats.requests,
            stats.commits,
            stats.requests as f64 / stats.commits.max(1) as f64
        );
        store.close().expect("close store");
    }
    group.finish();
}

criterion_group!(benches, bench_append);
criterion_main!(benches);
