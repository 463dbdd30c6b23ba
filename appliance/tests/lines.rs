//! The lines service (appliance/src/lines.rs) with real PTY modems
//! (crossline-sim) and the real driver: a configuration push changing one
//! line's entry restarts that line's driver only; the other keeps its
//! driver (same generation) and its modem sees no initialisation again.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crossline_appliance::config::ModemEntry;
use crossline_appliance::lines::LinesService;
use crossline_sim::{SimConfig, SimModem};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

const WAIT: Duration = Duration::from_secs(20);
const EVERY: Duration = Duration::from_secs(60);

async fn sim() -> SimModem {
    SimModem::spawn(SimConfig {
        noise_interval: None,
        ..SimConfig::default()
    })
    .await
    .unwrap()
}

fn entry(label: &str, sim: &SimModem) -> ModemEntry {
    let mut e = ModemEntry::new(label, sim.link().to_string_lossy());
    e.profile = crossline_modem::Profile::QuectelEc25;
    e.command_timeout = Some(Duration::from_secs(2));
    e.reopen_backoff_max = Some(Duration::from_millis(500));
    e
}

/// How many times the modem was told how to announce new messages (part
/// of the driver's initialisation, once per driver start).
fn inits(sim: &SimModem) -> usize {
    sim.commands()
        .iter()
        .filter(|c| c.starts_with("AT+CNMI="))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_changing_one_line_restarts_only_that_line() {
    let (sim0, sim1) = (sim().await, sim().await);
    let (e0, e1) = (entry("gsm0", &sim0), entry("gsm1", &sim1));
    let (tel, _tel_rx) = mpsc::channel(64);
    let shutdown = CancellationToken::new();
    let (mut svc, _sms) = LinesService::start(
        &[e0.clone(), e1.clone()],
        None,
        None,
        tel,
        EVERY,
        shutdown.clone(),
    );
    // Both drivers initialised their modems (their first health report
    // follows the initialisation).
    let deadline = tokio::time::Instant::now() + WAIT;
    while !svc.lines().health().iter().all(|h| h.registered) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "lines not up: {:?}",
            svc.lines().health()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(svc.lines().generation("gsm0"), Some(1));
    assert_eq!(svc.lines().generation("gsm1"), Some(1));
    let before0 = inits(&sim0);
    let before1 = inits(&sim1);

    // gsm1's entry changes (its number); gsm0's stays as it was.
    let mut e1b = e1.clone();
    e1b.number = Some("+380670000009".into());
    let restarted = svc.reconfigure(&[e0.clone(), e1b.clone()], EVERY).await;
    assert_eq!(restarted, ["gsm1"]);
    sim1.wait_until("gsm1 initialised again", WAIT, |s| inits(s) > before1)
        .await
        .unwrap();
    assert_eq!(svc.lines().generation("gsm1"), Some(2));
    assert_eq!(svc.lines().entry("gsm1"), Some(e1b.clone()));
    assert_eq!(
        svc.lines().generation("gsm0"),
        Some(1),
        "gsm0 kept its driver"
    );
    assert_eq!(
        inits(&sim0),
        before0,
        "gsm0's modem was not initialised again"
    );
    assert!(svc.lines().handle("gsm0").unwrap().borrow().is_some());

    // The same configuration again restarts nothing.
    let restarted = svc.reconfigure(&[e0, e1b], EVERY).await;
    assert!(restarted.is_empty(), "{restarted:?}");
    assert_eq!(svc.lines().generation("gsm1"), Some(2));
    svc.stop().await;
}
