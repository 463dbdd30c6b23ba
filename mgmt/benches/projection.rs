//! What mgmt's own per-event work costs: phone-number normalisation, and the
//! conversation projector inside the store's write transaction (the same
//! 20,000 synthetic events ingested with and without it; the difference is
//! the projector's share of durable ingest).
//!
//! `cargo bench -p crossline-mgmt --bench projection`

// A benchmark is a developer tool: stopping loudly on a setup failure is right.
#![allow(clippy::expect_used)]

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use crossline_core::NodeId;
use crossline_mgmt::services::contacts::address::{Region, normalise};
use crossline_mgmt::storage::sqlite::projection as conversations;
use crossline_store::{EventLog, Schema, SqliteStore, StoreOptions};
use std::time::{Duration, Instant};

fn bench_normalise(c: &mut Criterion) {
    let region = Region::default();
    let numbers: Vec<String> = (0..1000).map(|i| format!("+38050{i:07}")).collect();
    let mut group = c.benchmark_group("address");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(2))
        .throughput(Throughput::Elements(numbers.len() as u64));
    group.bench_function("normalise_1000_ua_numbers", |b| {
        b.iter(|| {
            for n in &numbers {
                std::hint::black_box(normalise(n, region));
            }
        })
    });
    group.finish();
}

fn bench_projector(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let dir = tempfile::tempdir().expect("temp dir");
    const EVENTS: u64 = 20_000;
    let evs = crossline_appliance::synthetic::sample_events(EVENTS);
    let origin = evs[0].origin.clone();
    let mut group = c.benchmark_group("ingest_20000_synthetic_sms");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(100))
        .measurement_time(Duration::from_secs(10))
        .throughput(Throughput::Elements(EVENTS));
    for with in [false, true] {
        let name = if with { "with_projector" } else { "log_only" };
        let mut round = 0u32;
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    round += 1;
                    // A fresh database each time: the events are deduplicated
                    // on (origin, seq), so a second ingest would store nothing.
                    let store = SqliteStore::open_with(
                        &dir.path().join(format!("{name}-{round}.db")),
                        NodeId::new("mgmt").expect("node id"),
                        StoreOptions {
                            schema: Schema::Mgmt,
                            projector: with.then(|| conversations::projector(Region::default())),
                            ..Default::default()
                        },
                    )
                    .expect("open store");
                    let start = Instant::now();
                    rt.block_on(async {
                        for chunk in evs.chunks(500) {
                            store.ingest(&origin, chunk.to_vec()).await.expect("ingest");
                        }
                    });
                    total += start.elapsed();
                    store.close().expect("close store");
                }
                total
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench_normalise, bench_projector);
criterion_main!(benches);
