//! Latency from an incoming SMS announced with +CMTI by the simulated modem
//! (over a real PTY) to the decoded message handed to the caller, and on to
//! the confirm that deletes it. A command, not a test:
//!
//! ```text
//! cargo bench -p crossline-modem --bench cmti [-- ROUNDS]
//! ```
//!
//! Prints p50/p99/max over ROUNDS (default 200) single-part messages and a
//! few 3-part Cyrillic ones, then a 20-message incoming burst and 20
//! outgoing messages (the FIELD-NOTES baseline for gammu-smsd/smstools3).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use crossline_modem::{Modem, ModemConfig, ModemEvent, Profile, serial_opener};
use crossline_sim::{SimConfig, SimModem};

fn pct(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn report(what: &str, mut v: Vec<Duration>) {
    v.sort();
    println!(
        "{what}: n={} p50={:.2?} p99={:.2?} max={:.2?}",
        v.len(),
        pct(&v, 0.5),
        pct(&v, 0.99),
        v.last().copied().unwrap_or_default()
    );
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let rounds: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(200);
    let sim = SimModem::spawn(SimConfig {
        noise_interval: None,
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let path = sim.link().to_string_lossy().to_string();
    let mut cfg = ModemConfig::new("bench", path.clone(), Profile::QuectelEc25);
    cfg.rate_limit = 0;
    let (modem, mut events) = Modem::start(cfg, serial_opener(path, 115_200));
    loop {
        if let Some(ModemEvent::Health(_)) = events.recv().await {
            break;
        }
    }
    let wait = async |events: &mut tokio::sync::mpsc::Receiver<ModemEvent>| loop {
        match tokio::time::timeout(Duration::from_secs(10), events.recv()).await {
            Ok(Some(ModemEvent::Sms(m))) => return m,
            Ok(Some(_)) => {}
            other => panic!("no SMS: {other:?}"),
        }
    };
    let mut handover = Vec::new();
    let mut confirm = Vec::new();
    for i in 0..rounds {
        let t0 = Instant::now();
        sim.inject_sms("+380501234567", &format!("message {i}"))
            .unwrap();
        let m = wait(&mut events).await;
        handover.push(t0.elapsed());
        let t1 = Instant::now();
        modem.confirm(m.receipt).await.unwrap();
        confirm.push(t1.elapsed());
    }
    report("+CMTI -> handed over (1 part)", handover);
    report("confirm -> deleted (1 part)", confirm);
    let text = "Добрый день! Ваш заказ №4521 готов к выдаче в отделении на Крещатике. ".repeat(2);
    let mut multi = Vec::new();
    for _ in 0..(rounds / 10).max(5) {
        let t0 = Instant::now();
        sim.inject_sms("+380501234567", &text).unwrap();
        let m = wait(&mut events).await;
        multi.push(t0.elapsed());
        modem.confirm(m.receipt).await.unwrap();
    }
    report("+CMTI x3 -> handed over (3-part Cyrillic)", multi);

    // Figures comparable with FIELD-NOTES' gammu-smsd / smstools3 baseline.
    let t0 = Instant::now();
    for i in 0..20 {
        sim.inject_sms("+380501234567", &format!("burst {i}"))
            .unwrap();
    }
    for _ in 0..20 {
        let m = wait(&mut events).await;
        modem.confirm(m.receipt).await.unwrap();
    }
    println!(
        "burst of 20 incoming SMS handed over and deleted: {:.2?}",
        t0.elapsed()
    );
    let t0 = Instant::now();
    for i in 0..20 {
        modem
            .send_sms(
                "+380509876543",
                &format!("out {i}"),
                crossline_modem::SendOptions::default(),
            )
            .await
            .unwrap();
    }
    println!(
        "20 outgoing SMS (rate limit off): {:.2?} per SMS",
        t0.elapsed() / 20
    );
    modem.shutdown().await;
    sim.shutdown().await;
}
