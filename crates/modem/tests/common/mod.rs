//! Shared helpers: a simulated modem on a real PTY and the driver on it.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use crossline_modem::{
    CallEvent, Modem, ModemConfig, ModemEvent, ModemHandle, Profile, serial_opener,
};
use crossline_sim::{SimConfig, SimModem};
use tokio::sync::mpsc::Receiver;
use tokio::time::Instant;

pub const WAIT: Duration = Duration::from_secs(15);

pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

pub fn driver_profile(p: crossline_sim::Profile) -> Profile {
    match p {
        crossline_sim::Profile::QuectelEc25 => Profile::QuectelEc25,
        crossline_sim::Profile::Sim7600 => Profile::SimcomSim7600,
        crossline_sim::Profile::Sim800 => Profile::SimcomSim800,
        crossline_sim::Profile::HuaweiE173 => Profile::HuaweiE173,
    }
}

/// A config with short timeouts for tests.
pub fn test_config(sim: &SimModem) -> ModemConfig {
    let path = sim.link().to_string_lossy().to_string();
    let mut cfg = ModemConfig::new("gsm0", path, driver_profile(sim.profile()));
    cfg.command_timeout = Duration::from_secs(2);
    cfg.send_timeout = Duration::from_secs(4);
    cfg.list_timeout = Duration::from_secs(3);
    cfg.retry_backoff = Duration::from_millis(200);
    cfg.rate_limit = 0;
    cfg.reopen_backoff_max = Duration::from_millis(500);
    cfg
}

pub struct Rig {
    pub sim: SimModem,
    pub modem: ModemHandle,
    pub events: Receiver<ModemEvent>,
    pub seen: Vec<ModemEvent>,
}

pub async fn sim(cfg: SimConfig) -> SimModem {
    init_tracing();
    SimModem::spawn(cfg).await.unwrap()
}

pub fn start(sim: &SimModem, cfg: ModemConfig) -> (ModemHandle, Receiver<ModemEvent>) {
    let path = sim.link().to_string_lossy().to_string();
    Modem::start(cfg, serial_opener(path, 115_200))
}

impl Rig {
    /// Starts the driver on `sim` without waiting for anything.
    pub fn start(sim: SimModem, cfg: ModemConfig) -> Rig {
        let (modem, events) = start(&sim, cfg);
        Rig {
            sim,
            modem,
            events,
            seen: Vec::new(),
        }
    }

    /// Stops the driver (as a crash would, without confirming anything)
    /// and starts a new one on the same modem.
    pub async fn restart(&mut self, cfg: ModemConfig) {
        self.modem.shutdown().await;
        let (modem, events) = start(&self.sim, cfg);
        self.modem = modem;
        self.events = events;
    }

    pub async fn new(sim_cfg: SimConfig, tweak: impl FnOnce(&mut ModemConfig)) -> Rig {
        let sim = sim(sim_cfg).await;
        let mut cfg = test_config(&sim);
        tweak(&mut cfg);
        let (modem, events) = start(&sim, cfg);
        let mut rig = Rig {
            sim,
            modem,
            events,
            seen: Vec::new(),
        };
        rig.wait_for(
            "the first health report",
            |e| matches!(e, ModemEvent::Health(i) if i.sim == crossline_modem::SimState::Ready),
        )
        .await;
        rig
    }

    /// Waits for the first event matching `pred` (events before it are kept
    /// in `seen`); panics with everything seen on timeout.
    pub async fn wait_for(
        &mut self,
        what: &str,
        mut pred: impl FnMut(&ModemEvent) -> bool,
    ) -> ModemEvent {
        let deadline = Instant::now() + WAIT;
        loop {
            match tokio::time::timeout_at(deadline, self.events.recv()).await {
                Ok(Some(e)) => {
                    if pred(&e) {
                        return e;
                    }
                    self.seen.push(e);
                }
                Ok(None) => panic!(
                    "event stream ended while waiting for {what}; seen {:#?}",
                    self.seen
                ),
                Err(_) => panic!(
                    "no {what} within {WAIT:?}; seen {:#?}; modem commands {:?}",
                    self.seen,
                    self.sim
                        .commands()
                        .iter()
                        .rev()
                        .take(15)
                        .collect::<Vec<_>>()
                ),
            }
        }
    }

    /// The first `Warning` whose text contains `needle`.
    pub async fn wait_warning(&mut self, needle: &str) -> String {
        match self
            .wait_for(
                &format!("a warning about {needle:?}"),
                |e| matches!(e, ModemEvent::Warning(w) if w.contains(needle)),
            )
            .await
        {
            ModemEvent::Warning(w) => w,
            other => panic!("not a warning: {other:?}"),
        }
    }

    /// An incoming call from `number` rings (with caller ID), is answered,
    /// and connects.
    pub async fn answer_incoming(&mut self, number: &str) {
        self.sim.inject_call(number);
        let e = self
            .wait_for("incoming call", |e| {
                matches!(e, ModemEvent::Call(CallEvent::Incoming { .. }))
            })
            .await;
        assert_eq!(
            e,
            ModemEvent::Call(CallEvent::Incoming {
                number: Some(number.into()),
                name: None,
                absence: None,
            })
        );
        self.modem.answer().await.unwrap();
        self.wait_for("connected", |e| {
            matches!(e, ModemEvent::Call(CallEvent::Connected))
        })
        .await;
    }

    /// Collects events for `d` (for "nothing else happens" checks).
    pub async fn drain_for(&mut self, d: Duration) -> Vec<ModemEvent> {
        let deadline = Instant::now() + d;
        let mut out = Vec::new();
        while let Ok(Some(e)) = tokio::time::timeout_at(deadline, self.events.recv()).await {
            out.push(e);
        }
        out
    }
}

/// A Cyrillic text long enough for three UCS2 parts (67 characters each).
pub fn long_cyrillic() -> String {
    let s = "Добрый день! Ваш заказ №4521 готов к выдаче в отделении на Крещатике. ";
    s.repeat(3)
}

/// The SMS-DELIVER parts of [`long_cyrillic`] (4 parts) with the given
/// concatenation reference, to inject one by one.
pub fn long_cyrillic_parts(reference: u16) -> Vec<crossline_pdu::EncodedPart> {
    let ts = crossline_pdu::Timestamp {
        year: 2026,
        month: 11,
        day: 23,
        hour: 10,
        minute: 0,
        second: 0,
        tz_quarter_hours: 8,
    };
    let from = crossline_pdu::Address::parse("+380501234567").unwrap();
    crossline_pdu::encode_deliver(&from, &long_cyrillic(), &ts, reference, false).unwrap()
}
