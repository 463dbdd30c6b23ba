//! The FXO driver (crossline-line) against the simulated analog line: every
//! ring / answer / hang-up race, on simulated pins and an injected clock.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use crossline_audio::{cid, dtmf};
use crossline_line::{
    Country, DisconnectCause, Fxo, LineConfig, LineError, LineEvent, PinRole, Supervision,
};
use crossline_sim::line::{FarEndStep, IncomingCall, SimLine, SimLineConfig, SimLineEvent, SimPin};

fn ms(v: u64) -> Duration {
    Duration::from_millis(v)
}

/// The driver and the simulated line, stepped together every `tick`.
struct Rig {
    t0: Instant,
    now: Instant,
    tick: Duration,
    sim: SimLine,
    fxo: Fxo<SimPin, SimPin, SimPin>,
    /// Every event with its time since t0, in ms.
    events: Vec<(u64, LineEvent)>,
    /// Audio the line carried (what the appliance's codec would hear).
    audio: Vec<i16>,
}

impl Rig {
    fn new(line: LineConfig) -> Self {
        let sim = SimLineConfig::matching(&line);
        Self::with_sim(line, sim)
    }

    fn with_sim(line: LineConfig, sim: SimLineConfig) -> Self {
        let t0 = Instant::now();
        let (sim, pins) = SimLine::new(sim, t0);
        let fxo = Fxo::new(line, pins.hook, pins.ring, pins.sense).unwrap();
        Self {
            t0,
            now: t0,
            tick: ms(10),
            sim,
            fxo,
            events: Vec::new(),
            audio: Vec::new(),
        }
    }

    fn at(&self) -> u64 {
        self.now.duration_since(self.t0).as_millis() as u64
    }

    fn step(&mut self) -> Vec<LineEvent> {
        self.now += self.tick;
        self.sim.step(self.now);
        let new = self.fxo.poll(self.now).unwrap();
        let at = self.at();
        self.events.extend(new.iter().map(|e| (at, *e)));
        let audio = self.sim.read_audio(self.now);
        self.audio.extend(audio);
        new
    }

    fn run_for(&mut self, d: Duration) {
        let end = self.now + d;
        while self.now < end {
            self.step();
        }
    }

    /// Steps until `pred` holds for an event; returns its time (ms since t0).
    fn run_until_event(&mut self, pred: impl Fn(&LineEvent) -> bool, limit: Duration) -> u64 {
        let end = self.now + limit;
        while self.now < end {
            if self.step().iter().any(&pred) {
                return self.at();
            }
        }
        panic!(
            "no such event within {limit:?}; events: {:?}; line: {:?}",
            self.events,
            self.sim.log()
        );
    }

    /// Steps until `pred` holds for the simulated line.
    fn run_until(&mut self, pred: impl Fn(&SimLine) -> bool, limit: Duration) {
        let end = self.now + limit;
        while self.now < end {
            self.step();
            if pred(&self.sim) {
                return;
            }
        }
        panic!(
            "condition not met within {limit:?}; line: {:?}",
            self.sim.log()
        );
    }

    fn kinds(&self) -> Vec<LineEvent> {
        self.events.iter().map(|(_, e)| *e).collect()
    }

    fn ends(&self) -> usize {
        self.events.iter().filter(|(_, e)| e.ends_call()).count()
    }

    fn last(&self) -> LineEvent {
        self.events.last().expect("no line event").1
    }

    fn place(&mut self, call: IncomingCall) {
        self.sim.place_call(self.now, call);
    }
}

fn config(country: Country, supervision: Supervision) -> LineConfig {
    LineConfig {
        name: "fxo-test".into(),
        country,
        supervision,
        ..LineConfig::default()
    }
}

/// A call whose caller hangs up after `after_ms` of ringing.
fn giving_up_after(after_ms: u64) -> IncomingCall {
    IncomingCall {
        give_up_after: Some(ms(after_ms)),
        ..IncomingCall::from_number("1")
    }
}

fn is_ring(n: u32) -> impl Fn(&LineEvent) -> bool {
    move |e| *e == LineEvent::Ring { count: n }
}

#[test]
fn a_us_call_rings_gives_its_caller_id_window_is_answered_and_ends_by_loop_drop() {
    let mut rig = Rig::new(config(Country::Us, Supervision::LoopCurrent));
    rig.place(IncomingCall::from_number("5551234"));
    let first = rig.run_until_event(is_ring(1), ms(3000));
    // The first 2 s burst must be heard out before it counts.
    assert!((1900..=2300).contains(&first), "first ring at {first} ms");
    assert_eq!(
        rig.kinds(),
        vec![
            LineEvent::RingStarted,
            LineEvent::Ring { count: 1 },
            LineEvent::CallerIdWindow { listen_ms: 4000 }
        ]
    );
    let second = rig.run_until_event(is_ring(2), ms(7000));
    assert!(
        (7900..=8300).contains(&second),
        "second ring at {second} ms"
    );
    rig.fxo.answer().unwrap();
    // Answered once loop current held the debounce time.
    rig.run_until_event(|e| *e == LineEvent::Answered, ms(200));
    rig.run_until(|s| s.saw(&SimLineEvent::Answered), ms(20));
    rig.run_for(ms(3000));
    assert!(
        !rig.kinds().iter().any(LineEvent::ends_call),
        "{:?}",
        rig.events
    );
    rig.sim.far_end_hang_up(rig.now);
    let gone = rig.run_until_event(|e| e.ends_call(), ms(1000));
    assert_eq!(
        rig.last(),
        LineEvent::FarEndDisconnect {
            cause: DisconnectCause::LoopCurrentDrop
        }
    );
    // Debounced (50 ms), not instant, and not slow.
    let hung = rig.sim.log().last().unwrap().0.as_millis() as u64;
    assert!(
        gone >= hung + 50 && gone <= hung + 100,
        "hang-up at {hung}, seen at {gone}"
    );
    // The driver released the line by itself; a late hang_up is a no-op.
    rig.run_until(|s| !s.is_off_hook(), ms(20));
    rig.fxo.hang_up().unwrap();
    rig.run_for(ms(500));
    assert_eq!(rig.ends(), 1, "{:?}", rig.events);
}

#[test]
fn the_uk_double_ring_is_one_ring() {
    let mut rig = Rig::new(config(Country::Uk, Supervision::LoopCurrent));
    rig.place(IncomingCall::from_number("02071234567"));
    let first = rig.run_until_event(is_ring(1), ms(2000));
    // 0.4 on, 0.2 off, 0.4 on: the ring counts at the end of the pair.
    assert!((900..=1200).contains(&first), "first ring at {first} ms");
    let second = rig.run_until_event(is_ring(2), ms(4000));
    assert!(
        (3900..=4200).contains(&second),
        "second ring at {second} ms"
    );
    rig.run_until_event(is_ring(3), ms(4000));
    let rings = rig
        .kinds()
        .into_iter()
        .filter(|e| matches!(e, LineEvent::Ring { .. }))
        .count();
    assert_eq!(rings, 3);
}

#[test]
fn every_country_rings_with_its_own_cadence() {
    for country in Country::ALL {
        let mut rig = Rig::new(config(country, Supervision::LoopCurrent));
        rig.place(IncomingCall::from_number("123"));
        rig.run_until_event(is_ring(2), ms(15_000));
    }
}

#[test]
fn a_cadence_of_the_wrong_country_is_not_a_call() {
    for (line, exchange) in [
        (Country::Uk, Country::Us),
        (Country::Us, Country::Uk),
        (Country::Us, Country::Eu),
        (Country::Eu, Country::Us),
        (Country::Ro, Country::Ru),
    ] {
        let line_cfg = config(line, Supervision::LoopCurrent);
        let mut sim_cfg = SimLineConfig::matching(&line_cfg);
        sim_cfg.cadence = crossline_line::ring_cadence(exchange);
        let mut rig = Rig::with_sim(line_cfg, sim_cfg);
        rig.place(IncomingCall::from_number("123"));
        rig.run_for(ms(20_000));
        assert!(
            rig.events.is_empty(),
            "{exchange:?} ringing on a {line:?} line: {:?}",
            rig.events
        );
        assert!(matches!(
            rig.fxo.answer(),
            Err(LineError::NotRinging { .. })
        ));
    }
}

#[test]
fn the_same_cadence_under_another_name_rings() {
    // Russia, Ukraine and CEPT share 1 s / 4 s.
    let line_cfg = config(Country::Ru, Supervision::LoopCurrent);
    let mut sim_cfg = SimLineConfig::matching(&line_cfg);
    sim_cfg.cadence = crossline_line::ring_cadence(Country::Eu);
    let mut rig = Rig::with_sim(line_cfg, sim_cfg);
    rig.place(IncomingCall::from_number("123"));
    rig.run_until_event(is_ring(1), ms(2000));
}

#[test]
fn ring_glitches_and_noise_on_an_idle_line_are_ignored() {
    let mut rig = Rig::new(config(Country::Eu, Supervision::LoopCurrent));
    for i in 0..20 {
        // 100 ms of ring-like pulses every 700 ms: shorter than min_ring_ms.
        rig.sim.ring_noise(rig.now + ms(i * 700), ms(100));
    }
    rig.run_for(ms(15_000));
    assert!(rig.events.is_empty(), "{:?}", rig.events);
    // A lone burst of a ring's length is a call whose caller gave up after
    // one ring (it must be reported: caller ID comes after the first ring).
    rig.sim.ring_noise(rig.now, ms(1000));
    rig.run_for(ms(10_000));
    assert_eq!(
        rig.kinds(),
        vec![
            LineEvent::RingStarted,
            LineEvent::Ring { count: 1 },
            LineEvent::CallerIdWindow { listen_ms: 4000 },
            LineEvent::RingingStopped { rings: 1 },
        ]
    );
}

#[test]
fn glitches_between_the_rings_do_not_break_the_cadence() {
    let mut rig = Rig::new(config(Country::Eu, Supervision::LoopCurrent));
    rig.place(IncomingCall::from_number("123"));
    // Short spikes in the first pause and the second.
    rig.sim.ring_noise(rig.now + ms(2500), ms(60));
    rig.sim.ring_noise(rig.now + ms(7000), ms(80));
    rig.run_until_event(is_ring(2), ms(7000));
    rig.run_until_event(is_ring(3), ms(5500));
    assert_eq!(rig.ends(), 0);
}

#[test]
fn caller_id_comes_inside_the_window_and_decodes() {
    let mut rig = Rig::new(config(Country::Eu, Supervision::LoopCurrent));
    rig.place(IncomingCall::from_number("380501234567"));
    let window = rig.run_until_event(|e| matches!(e, LineEvent::CallerIdWindow { .. }), ms(2000));
    let ring2 = rig.run_until_event(is_ring(2), ms(6000));
    // The exchange sends CID after the window opens and finishes it before
    // the second ring starts (ring 2 is counted 1 s after its burst starts).
    let audio = &rig.audio;
    let first_sound = audio.iter().position(|&s| s != 0).unwrap() as u64 / 8;
    let last_sound = audio.iter().rposition(|&s| s != 0).unwrap() as u64 / 8;
    assert!(
        first_sound >= window,
        "CID at {first_sound} ms, window at {window} ms"
    );
    assert!(
        last_sound + 200 <= ring2 - 1000,
        "CID ends at {last_sound} ms, second ring starts at {} ms",
        ring2 - 1000
    );
    let from = (window * 8) as usize;
    let got = cid::decode(&audio[from..], cid::Standard::Etsi).unwrap();
    assert_eq!(got.number.as_deref(), Some("380501234567"));
}

#[test]
fn the_caller_gives_up_during_a_ring_burst() {
    let mut rig = Rig::new(config(Country::Us, Supervision::LoopCurrent));
    // Mid second burst (6 s .. 8 s).
    rig.place(giving_up_after(6700));
    let stopped = rig.run_until_event(|e| e.ends_call(), ms(20_000));
    assert_eq!(
        rig.kinds(),
        vec![
            LineEvent::RingStarted,
            LineEvent::Ring { count: 1 },
            LineEvent::CallerIdWindow { listen_ms: 4000 },
            LineEvent::RingingStopped { rings: 1 },
        ]
    );
    // Not before a whole pause (with tolerance) has passed with no ring.
    assert!(stopped >= 6700 + 4800, "stopped at {stopped} ms");
    assert!(matches!(
        rig.fxo.answer(),
        Err(LineError::NotRinging { .. })
    ));
}

#[test]
fn the_caller_gives_up_between_bursts() {
    let mut rig = Rig::new(config(Country::Eu, Supervision::LoopCurrent));
    rig.place(giving_up_after(7500));
    let stopped = rig.run_until_event(|e| e.ends_call(), ms(20_000));
    assert_eq!(rig.last(), LineEvent::RingingStopped { rings: 2 });
    // The second burst ended at 6 s; the ringing is over ~5.4 s after.
    assert!(
        (6000 + 4800..=6000 + 6000).contains(&stopped),
        "stopped at {stopped} ms"
    );
}

#[test]
fn the_caller_gives_up_during_the_first_burst_and_nothing_is_reported() {
    let mut rig = Rig::new(config(Country::Us, Supervision::LoopCurrent));
    rig.place(giving_up_after(900));
    rig.run_for(ms(10_000));
    assert!(rig.events.is_empty(), "{:?}", rig.events);
}

#[test]
fn ringing_resumes_after_the_caller_gave_up_as_a_new_call() {
    let mut rig = Rig::new(config(Country::Eu, Supervision::LoopCurrent));
    rig.place(giving_up_after(5500));
    rig.run_until_event(|e| e.ends_call(), ms(20_000));
    rig.place(IncomingCall::from_number("2"));
    rig.run_until_event(is_ring(1), ms(2000));
    let starts = rig
        .kinds()
        .iter()
        .filter(|e| **e == LineEvent::RingStarted)
        .count();
    assert_eq!(starts, 2);
    rig.fxo.answer().unwrap();
    // Answered once loop current held the debounce time.
    rig.run_until_event(|e| *e == LineEvent::Answered, ms(200));
}

#[test]
fn a_late_burst_within_the_timeout_keeps_the_call() {
    // The exchange's pause is 30 % long: outside the cadence, but ringing
    // does not stop for it once the call is established.
    let line_cfg = config(Country::Eu, Supervision::LoopCurrent);
    let mut sim_cfg = SimLineConfig::matching(&line_cfg);
    sim_cfg.cadence.segments[0].off_ms = 5200;
    let mut rig = Rig::with_sim(line_cfg, sim_cfg);
    rig.place(IncomingCall::from_number("1"));
    rig.run_until_event(is_ring(3), ms(20_000));
    assert_eq!(rig.ends(), 0, "{:?}", rig.events);
}

#[test]
fn answering_during_a_ring_burst_stops_the_ringing() {
    let mut rig = Rig::new(config(Country::Eu, Supervision::LoopCurrent));
    rig.place(IncomingCall::from_number("1"));
    rig.run_until_event(is_ring(1), ms(2000));
    // Into the second burst (5 s .. 6 s).
    rig.run_until(|s| s.ring_active(), ms(5000));
    rig.run_for(ms(300));
    rig.fxo.answer().unwrap();
    rig.run_until(|s| s.saw(&SimLineEvent::Answered), ms(20));
    rig.run_for(ms(15_000));
    assert_eq!(
        rig.kinds(),
        vec![
            LineEvent::RingStarted,
            LineEvent::Ring { count: 1 },
            LineEvent::CallerIdWindow { listen_ms: 4000 },
            LineEvent::Answered,
        ]
    );
    assert!(rig.sim.is_off_hook());
}

#[test]
fn the_caller_hangs_up_exactly_as_the_line_answers() {
    // The answer wins the race at the driver (it saw the ringing), the
    // exchange gives dial tone then busy tone: only the tone says the caller
    // is gone; exactly one end.
    let mut rig = Rig::new(config(Country::Eu, Supervision::LoopCurrent));
    rig.place(IncomingCall::from_number("1"));
    rig.run_until_event(is_ring(2), ms(8000));
    rig.sim.give_up(rig.now);
    rig.fxo.answer().unwrap();
    rig.run_for(ms(2000));
    assert!(rig.sim.saw(&SimLineEvent::Seized), "{:?}", rig.sim.log());
    assert_eq!(rig.ends(), 0, "{:?}", rig.events);
    rig.fxo.tone_disconnect().unwrap();
    rig.run_until_event(|e| e.ends_call(), ms(20));
    rig.fxo.hang_up().unwrap();
    rig.run_for(ms(1000));
    assert_eq!(
        rig.last(),
        LineEvent::FarEndDisconnect {
            cause: DisconnectCause::DisconnectTone
        }
    );
    assert_eq!(rig.ends(), 1);
    assert!(!rig.sim.is_off_hook());
}

#[test]
fn the_caller_gives_up_just_before_the_answer_and_the_answer_is_refused() {
    let mut rig = Rig::new(config(Country::Eu, Supervision::LoopCurrent));
    rig.place(giving_up_after(5200));
    rig.run_until_event(|e| e.ends_call(), ms(20_000));
    assert!(matches!(
        rig.fxo.answer(),
        Err(LineError::NotRinging { ref line }) if line == "fxo-test"
    ));
    assert!(!rig.sim.is_off_hook());
}

#[test]
fn sense_glitches_shorter_than_the_debounce_do_not_end_the_call() {
    let mut rig = Rig::new(config(Country::Eu, Supervision::PolarityReversal));
    rig.place(IncomingCall::from_number("1"));
    rig.run_until_event(is_ring(1), ms(2000));
    rig.fxo.answer().unwrap();
    rig.run_for(ms(1000));
    for i in 0..10 {
        rig.sim.sense_glitch(rig.now + ms(i * 300), ms(30));
    }
    rig.run_for(ms(4000));
    assert_eq!(rig.ends(), 0, "{:?}", rig.events);
    // A 60 ms one does (above the 50 ms debounce).
    rig.sim.sense_glitch(rig.now, ms(70));
    rig.run_until_event(|e| e.ends_call(), ms(200));
}

#[test]
fn polarity_reversal_at_answer_is_the_far_end_answering_and_at_disconnect_the_end() {
    let mut rig = Rig::new(config(Country::Eu, Supervision::PolarityReversal));
    rig.fxo.seize().unwrap();
    rig.run_until_event(|e| *e == LineEvent::Seized, ms(20));
    rig.run_for(ms(2000));
    rig.sim.far_end_answer(rig.now, vec![]);
    rig.run_until_event(|e| *e == LineEvent::FarEndAnswered, ms(200));
    rig.run_for(ms(3000));
    assert_eq!(rig.ends(), 0);
    rig.sim.far_end_hang_up(rig.now);
    rig.run_until_event(|e| e.ends_call(), ms(200));
    assert_eq!(
        rig.kinds(),
        vec![
            LineEvent::Seized,
            LineEvent::FarEndAnswered,
            LineEvent::FarEndDisconnect {
                cause: DisconnectCause::PolarityReversal
            }
        ]
    );
    // Incoming: the one reversal is the disconnect.
    let mut rig = Rig::new(config(Country::Eu, Supervision::PolarityReversal));
    rig.place(IncomingCall::from_number("1"));
    rig.run_until_event(is_ring(1), ms(2000));
    rig.fxo.answer().unwrap();
    rig.run_for(ms(1000));
    rig.sim.far_end_hang_up(rig.now);
    rig.run_until_event(|e| e.ends_call(), ms(200));
    assert!(!rig.kinds().contains(&LineEvent::FarEndAnswered));
    assert_eq!(
        rig.last(),
        LineEvent::FarEndDisconnect {
            cause: DisconnectCause::PolarityReversal
        }
    );
}

#[test]
fn without_reversal_an_outgoing_call_has_no_answer_supervision() {
    let mut rig = Rig::new(config(Country::Eu, Supervision::LoopCurrent));
    rig.fxo.seize().unwrap();
    rig.run_for(ms(1000));
    rig.sim.far_end_answer(rig.now, vec![]);
    rig.run_for(ms(2000));
    assert_eq!(rig.kinds(), vec![LineEvent::Seized]);
    rig.fxo.hang_up().unwrap();
    rig.run_until_event(|e| *e == LineEvent::OnHook, ms(20));
    rig.run_until(|s| s.saw(&SimLineEvent::OnHook), ms(20));
}

#[test]
fn an_outgoing_call_dials_by_dtmf_after_the_settle_time() {
    let mut rig = Rig::new(config(Country::Uk, Supervision::PolarityReversal));
    rig.fxo.seize().unwrap();
    rig.run_for(ms(700));
    assert_eq!(rig.kinds(), vec![LineEvent::Seized]);
    for frame in dtmf::generate("07700900123", 80, 80, -10.0).chunks(160) {
        rig.sim.write_audio(frame);
        rig.run_for(ms(20));
    }
    rig.run_for(ms(200));
    assert_eq!(rig.sim.dialled(), "07700900123");
    rig.sim.far_end_answer(
        rig.now,
        vec![FarEndStep::Silence(ms(1000)), FarEndStep::HangUp],
    );
    rig.run_until_event(|e| e.ends_call(), ms(1500));
    assert_eq!(
        rig.kinds(),
        vec![
            LineEvent::Seized,
            LineEvent::FarEndAnswered,
            LineEvent::FarEndDisconnect {
                cause: DisconnectCause::PolarityReversal
            }
        ]
    );
}

#[test]
fn ringing_resumes_after_an_answer_the_exchange_never_saw() {
    // The relay's contacts are broken: answer() goes unnoticed, no loop
    // current comes, the driver gives up after the settle time and goes
    // on-hook, the ringing goes on and is a new call, answered for real
    // once the relay works.
    let mut rig = Rig::new(config(Country::Eu, Supervision::LoopCurrent));
    rig.place(IncomingCall::from_number("1"));
    rig.run_until_event(is_ring(1), ms(2000));
    rig.sim.set_relay_broken(true);
    rig.fxo.answer().unwrap();
    rig.run_until_event(|e| e.ends_call(), ms(1000));
    assert_eq!(
        rig.last(),
        LineEvent::FarEndDisconnect {
            cause: DisconnectCause::NoLoopCurrent
        }
    );
    assert!(rig.sim.is_ringing());
    rig.sim.set_relay_broken(false);
    rig.run_until_event(|e| *e == LineEvent::RingStarted, ms(6000));
    rig.fxo.answer().unwrap();
    rig.run_for(ms(2000));
    assert!(rig.sim.saw(&SimLineEvent::Answered));
    assert_eq!(
        rig.kinds(),
        vec![
            LineEvent::RingStarted,
            LineEvent::Ring { count: 1 },
            LineEvent::CallerIdWindow { listen_ms: 4000 },
            // The exchange never saw the off-hook: never answered.
            LineEvent::FarEndDisconnect {
                cause: DisconnectCause::NoLoopCurrent
            },
            LineEvent::RingStarted,
            LineEvent::Ring { count: 1 },
            LineEvent::CallerIdWindow { listen_ms: 4000 },
            LineEvent::Answered,
        ]
    );
}

#[test]
fn a_dead_line_is_reported_after_the_settle_time() {
    let mut rig = Rig::new(config(Country::Eu, Supervision::LoopCurrent));
    rig.sim.set_cut(true);
    rig.fxo.seize().unwrap();
    let t = rig.run_until_event(|e| e.ends_call(), ms(2000));
    assert!((600..=700).contains(&t), "seen at {t} ms");
    assert_eq!(
        rig.last(),
        LineEvent::FarEndDisconnect {
            cause: DisconnectCause::NoLoopCurrent
        }
    );
}

#[test]
fn an_answer_on_a_dead_line_is_never_answered() {
    // The caller rings, the line dies (cut cable), the driver answers: no
    // loop current ever comes, so no Answered, and the call ends
    // loop_settle_ms after the off-hook.
    let mut rig = Rig::new(config(Country::Eu, Supervision::LoopCurrent));
    rig.place(IncomingCall::from_number("1"));
    rig.run_until_event(is_ring(1), ms(2000));
    rig.sim.set_cut(true);
    rig.fxo.answer().unwrap();
    let answered_at = rig.at();
    let t = rig.run_until_event(|e| e.ends_call(), ms(2000));
    assert!(
        (600..=700).contains(&(t - answered_at)),
        "ended {} ms after the answer",
        t - answered_at
    );
    assert_eq!(
        rig.last(),
        LineEvent::FarEndDisconnect {
            cause: DisconnectCause::NoLoopCurrent
        }
    );
    assert!(
        !rig.kinds().contains(&LineEvent::Answered),
        "{:?}",
        rig.events
    );
}

#[test]
fn with_tone_only_supervision_the_loop_pin_is_not_read() {
    let mut rig = Rig::new(config(Country::Eu, Supervision::ToneOnly));
    rig.place(IncomingCall {
        script: vec![FarEndStep::Silence(ms(500)), FarEndStep::HangUp],
        ..IncomingCall::from_number("1")
    });
    rig.run_until_event(is_ring(1), ms(2000));
    rig.fxo.answer().unwrap();
    rig.run_until(|s| s.saw(&SimLineEvent::FarEndHungUp), ms(2000));
    rig.run_for(ms(2000));
    assert_eq!(rig.ends(), 0);
    // The busy tone is in the line for the tone detector.
    let tail = &rig.audio[rig.audio.len() - 8000..];
    assert!(tail.iter().any(|&s| s.unsigned_abs() > 1000));
}

#[test]
fn the_far_end_script_plays_dtmf_into_the_line_and_hears_the_appliance() {
    let mut rig = Rig::new(config(Country::Eu, Supervision::LoopCurrent));
    rig.place(IncomingCall {
        script: vec![
            FarEndStep::Silence(ms(1000)),
            FarEndStep::Dtmf {
                digits: "2".into(),
                on_ms: 100,
                off_ms: 100,
            },
            FarEndStep::Silence(ms(500)),
            FarEndStep::HangUp,
        ],
        ..IncomingCall::from_number("1")
    });
    rig.run_until_event(is_ring(1), ms(2000));
    rig.fxo.answer().unwrap();
    rig.step();
    let answered_at = rig.audio.len();
    // The appliance plays a prompt while the caller listens.
    let prompt: Vec<i16> = (0..8000).map(|i| ((i % 16) as i16 - 8) * 500).collect();
    for frame in prompt.chunks(160) {
        rig.sim.write_audio(frame);
        rig.run_for(ms(20));
    }
    rig.run_until_event(|e| e.ends_call(), ms(3000));
    assert_eq!(rig.sim.heard(), &prompt[..]);
    let mut detector = dtmf::Detector::new();
    let keys: String = detector
        .push(&rig.audio[answered_at..])
        .into_iter()
        .map(|d| d.key)
        .chain(detector.finish().map(|d| d.key))
        .collect();
    assert_eq!(keys, "2");
}

#[test]
fn a_failing_pin_is_a_typed_error_naming_the_line_and_no_event_is_lost() {
    let line_cfg = config(Country::Eu, Supervision::LoopCurrent);
    let t0 = Instant::now();
    let (mut sim, pins) = SimLine::new(SimLineConfig::matching(&line_cfg), t0);
    let ring = pins.ring.clone();
    let hook = pins.hook.clone();
    let mut fxo = Fxo::new(line_cfg, pins.hook, pins.ring, pins.sense).unwrap();
    sim.place_call(t0, IncomingCall::from_number("1"));
    let mut now = t0;
    let mut events = Vec::new();
    while !events.contains(&LineEvent::Ring { count: 1 }) {
        now += ms(10);
        sim.step(now);
        events.extend(fxo.poll(now).unwrap());
    }
    // The ring detector fails: a typed error naming the pin and the line.
    ring.set_fault(true);
    now += ms(10);
    sim.step(now);
    let e = fxo.poll(now).unwrap_err();
    assert!(
        matches!(
            e,
            LineError::Pin {
                pin: PinRole::Ring,
                ..
            }
        ),
        "{e}"
    );
    assert!(
        e.to_string().contains("fxo-test") && e.to_string().contains("ring detect"),
        "{e}"
    );
    ring.set_fault(false);
    // The relay fails on answer: still ringing, the answer can be retried.
    hook.set_fault(true);
    let e = fxo.answer().unwrap_err();
    assert!(
        matches!(
            e,
            LineError::Pin {
                pin: PinRole::Hook,
                ..
            }
        ),
        "{e}"
    );
    assert!(fxo.is_ringing() && !sim.is_off_hook());
    hook.set_fault(false);
    fxo.answer().unwrap();
    // The relay fails on hang-up: the error now, the OnHook at the next poll.
    hook.set_fault(true);
    assert!(fxo.hang_up().is_err());
    hook.set_fault(false);
    now += ms(10);
    sim.step(now);
    // Hung up before loop current was seen: never answered.
    assert_eq!(fxo.poll(now).unwrap(), vec![LineEvent::OnHook]);
}

/// A scenario with shuffled timings, for the invariants below.
#[derive(Debug, Clone)]
struct Scenario {
    country: Country,
    supervision: Supervision,
    /// Poll intervals, cycled (5..15 ms: a loaded scheduler).
    jitter: Vec<u64>,
    outgoing: bool,
    give_up_after: Option<u64>,
    /// Incoming: answer once this ring has been counted, after a delay.
    answer_at_ring: Option<u32>,
    answer_delay: u64,
    /// Outgoing: the far end answers this long after the seizure.
    far_answer_after: u64,
    far_hang_up_after: Option<u64>,
    local_hang_up_after: Option<u64>,
    ring_noise: Vec<(u64, u64)>,
    sense_glitches: Vec<(u64, u64)>,
}

fn scenario() -> impl proptest::strategy::Strategy<Value = Scenario> {
    use proptest::prelude::*;
    let timings = (
        proptest::option::of(0u64..20_000),
        proptest::option::of(1u32..4),
        0u64..3000,
        0u64..5000,
        proptest::option::of(0u64..8000),
        proptest::option::of(0u64..8000),
    );
    (
        proptest::sample::select(Country::ALL.to_vec()),
        proptest::sample::select(vec![
            Supervision::PolarityReversal,
            Supervision::LoopCurrent,
            Supervision::ToneOnly,
        ]),
        proptest::collection::vec(5u64..=15, 1..8),
        any::<bool>(),
        timings,
        proptest::collection::vec((0u64..25_000, 0u64..400), 0..6),
        proptest::collection::vec((0u64..25_000, 0u64..120), 0..6),
    )
        .prop_map(
            |(country, supervision, jitter, outgoing, t, ring_noise, sense_glitches)| Scenario {
                country,
                supervision,
                jitter,
                outgoing,
                give_up_after: t.0,
                answer_at_ring: t.1,
                answer_delay: t.2,
                far_answer_after: t.3,
                far_hang_up_after: t.4,
                local_hang_up_after: t.5,
                ring_noise,
                sense_glitches,
            },
        )
}

/// Runs a scenario; checks the call bracket as events come: a call starts
/// (RingStarted / Seized) only when none is open, ends exactly once, and
/// Answered follows only a successful answer().
fn run_scenario(s: &Scenario) -> Result<(), String> {
    let mut rig = Rig::new(config(s.country, s.supervision));
    let t0 = rig.now;
    let at = |v: u64| t0 + ms(v);
    for &(from, len) in &s.ring_noise {
        rig.sim.ring_noise(at(from), ms(len));
    }
    for &(from, len) in &s.sense_glitches {
        rig.sim.sense_glitch(at(from), ms(len));
    }
    if s.outgoing {
        rig.fxo.seize().map_err(|e| e.to_string())?;
    } else {
        rig.place(IncomingCall {
            give_up_after: s.give_up_after.map(ms),
            ..IncomingCall::from_number("1")
        });
    }
    let mut in_call = false;
    let mut answers_ok = 0u32;
    let mut answered = 0u32;
    let mut answer_due: Option<Instant> = None;
    let mut connected_at: Option<Instant> = None;
    let mut far_answered = false;
    let mut i = 0usize;
    let end = at(40_000);
    let mut cleanup_from: Option<Instant> = None;
    while rig.now < end {
        rig.tick = ms(s.jitter[i % s.jitter.len()]);
        i += 1;
        for e in rig.step() {
            match e {
                LineEvent::RingStarted | LineEvent::Seized => {
                    if in_call {
                        return Err(format!("{e:?} inside a call: {:?}", rig.events));
                    }
                    in_call = true;
                }
                LineEvent::Answered => {
                    answered += 1;
                    if !in_call || answered > answers_ok {
                        return Err(format!("Answered without answer(): {:?}", rig.events));
                    }
                }
                LineEvent::FarEndAnswered if !s.outgoing => {
                    return Err(format!(
                        "FarEndAnswered on an incoming call: {:?}",
                        rig.events
                    ));
                }
                LineEvent::Ring { count } => {
                    if !in_call {
                        return Err(format!("a ring outside a call: {:?}", rig.events));
                    }
                    if Some(count) == s.answer_at_ring && answer_due.is_none() {
                        answer_due = Some(rig.now + ms(s.answer_delay));
                    }
                }
                e if e.ends_call() => {
                    if !in_call {
                        return Err(format!("{e:?} ends no call: {:?}", rig.events));
                    }
                    in_call = false;
                }
                _ => {}
            }
        }
        if answer_due.is_some_and(|t| rig.now >= t) {
            answer_due = None;
            match rig.fxo.answer() {
                Ok(()) => {
                    answers_ok += 1;
                    connected_at = Some(rig.now);
                }
                Err(LineError::NotRinging { .. } | LineError::OffHook { .. }) => {}
                Err(e) => return Err(e.to_string()),
            }
        }
        if s.outgoing && !far_answered && rig.now >= at(s.far_answer_after) {
            far_answered = true;
            rig.sim.far_end_answer(rig.now, vec![]);
            connected_at = Some(rig.now);
        }
        if let Some(c) = connected_at {
            if s.far_hang_up_after.is_some_and(|d| rig.now >= c + ms(d)) {
                rig.sim.far_end_hang_up(rig.now);
            }
            if s.local_hang_up_after.is_some_and(|d| rig.now >= c + ms(d)) {
                rig.fxo.hang_up().map_err(|e| e.to_string())?;
            }
        }
        // The last 10 s: the caller stops, the appliance hangs up.
        if cleanup_from.is_none() && rig.now >= at(30_000) {
            cleanup_from = Some(rig.now);
            rig.sim.give_up(rig.now);
            rig.fxo.hang_up().map_err(|e| e.to_string())?;
        }
    }
    if in_call {
        return Err(format!("a call never ended: {:?}", rig.events));
    }
    if rig.sim.is_off_hook() {
        return Err("the line was left off-hook".into());
    }
    Ok(())
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig {
        cases: 96,
        rng_seed: proptest::test_runner::RngSeed::Fixed(0x00F0_0F0F),
        ..proptest::prelude::ProptestConfig::default()
    })]

    #[test]
    fn no_answer_without_answer_and_exactly_one_end_per_call(s in scenario()) {
        if let Err(e) = run_scenario(&s) {
            return Err(proptest::test_runner::TestCaseError::fail(e));
        }
    }
}

async fn next_event(
    events: &mut tokio::sync::mpsc::Receiver<crossline_line::DriverEvent>,
) -> LineEvent {
    tokio::time::timeout(ms(15_000), events.recv())
        .await
        .expect("no line event within 15 s")
        .expect("the driver task stopped")
        .expect("the line failed")
}

#[tokio::test(start_paused = true)]
async fn the_driver_task_polls_the_line_and_takes_commands_on_tokio_time() {
    use crossline_line::LineDriver;
    let cfg = config(Country::Uk, Supervision::PolarityReversal);
    let start = tokio::time::Instant::now().into_std();
    let (sim, pins) = SimLine::new(SimLineConfig::matching(&cfg), start);
    let fxo = Fxo::new(cfg, pins.hook, pins.ring, pins.sense).unwrap();
    let sim = sim.spawn(ms(2));
    let (line, mut events) = LineDriver::spawn(fxo, LineDriver::PERIOD);
    assert_eq!(line.config().caller_id_standard(), cid::Standard::Etsi);
    sim.with(|s, now| s.place_call(now, IncomingCall::from_number("1")));
    assert_eq!(next_event(&mut events).await, LineEvent::RingStarted);
    assert_eq!(next_event(&mut events).await, LineEvent::Ring { count: 1 });
    assert!(matches!(
        next_event(&mut events).await,
        LineEvent::CallerIdWindow { .. }
    ));
    assert_eq!(next_event(&mut events).await, LineEvent::Ring { count: 2 });
    line.answer().unwrap();
    assert_eq!(next_event(&mut events).await, LineEvent::Answered);
    assert!(line.is_off_hook());
    tokio::time::sleep(ms(1000)).await;
    sim.with(|s, now| s.far_end_hang_up(now));
    assert_eq!(
        next_event(&mut events).await,
        LineEvent::FarEndDisconnect {
            cause: DisconnectCause::PolarityReversal
        }
    );
    assert!(!line.is_off_hook());
    assert!(sim.with(|s, _| {
        s.log()
            .iter()
            .any(|(_, e)| *e == SimLineEvent::FarEndHungUp)
    }));
}

#[derive(Debug, Clone, Copy)]
enum Command {
    None,
    Answer,
    Seize,
    HangUp,
    ToneDisconnect,
}

#[derive(Debug, Clone, Copy)]
enum RingInput {
    Quiet,
    Pulsing,
    Stuck,
}

/// A stretch of raw pin levels, and a command at its start.
#[derive(Debug, Clone, Copy)]
struct Stretch {
    len_ms: u64,
    ring: RingInput,
    sense: bool,
    command: Command,
}

fn stretches() -> impl proptest::strategy::Strategy<Value = Vec<Stretch>> {
    use proptest::prelude::*;
    let stretch = (
        0u64..3000,
        proptest::sample::select(vec![RingInput::Quiet, RingInput::Pulsing, RingInput::Stuck]),
        any::<bool>(),
        proptest::sample::select(vec![
            Command::None,
            Command::None,
            Command::None,
            Command::Answer,
            Command::Seize,
            Command::HangUp,
            Command::ToneDisconnect,
        ]),
    )
        .prop_map(|(len_ms, ring, sense, command)| Stretch {
            len_ms,
            ring,
            sense,
            command,
        });
    proptest::collection::vec(stretch, 1..40)
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig {
        cases: 128,
        rng_seed: proptest::test_runner::RngSeed::Fixed(0x0000_F0F0),
        ..proptest::prelude::ProptestConfig::default()
    })]

    /// Arbitrary levels on the input pins (no exchange behind them) and
    /// arbitrary commands: no panic, no error, the call bracket holds.
    #[test]
    fn arbitrary_pin_levels_and_commands_keep_the_call_bracket(
        plan in stretches(),
        country in proptest::sample::select(Country::ALL.to_vec()),
        reversal in proptest::prelude::any::<bool>(),
    ) {
        let supervision = if reversal { Supervision::PolarityReversal } else { Supervision::LoopCurrent };
        let cfg = config(country, supervision);
        let levels = cfg.levels;
        let (hook, ring, sense) = (SimPin::new(false), SimPin::new(true), SimPin::new(true));
        let mut fxo = Fxo::new(cfg, hook.clone(), ring.clone(), sense.clone()).unwrap();
        let t0 = Instant::now();
        let mut now = t0;
        let mut in_call = false;
        let mut answers = 0u32;
        let mut answered = 0u32;
        let mut log = Vec::new();
        for s in &plan {
            let ok = match s.command {
                Command::None => Ok(()),
                Command::Answer => fxo.answer().map(|()| answers += 1),
                Command::Seize => fxo.seize(),
                Command::HangUp => fxo.hang_up(),
                Command::ToneDisconnect => fxo.tone_disconnect(),
            };
            match ok {
                Ok(()) | Err(LineError::NotRinging { .. } | LineError::Ringing { .. } | LineError::OffHook { .. }) => {}
                Err(e) => proptest::prop_assert!(false, "{e}"),
            }
            let end = now + ms(s.len_ms);
            let start = now;
            while now < end {
                now += ms(10);
                let into = now.duration_since(start).as_millis() as u64;
                let active = match s.ring {
                    RingInput::Quiet => false,
                    RingInput::Pulsing => into % 40 < 20,
                    RingInput::Stuck => true,
                };
                ring.set(active != levels.ring_active_low);
                sense.set(s.sense != levels.loop_active_low);
                for e in fxo.poll(now).unwrap() {
                    log.push(e);
                    match e {
                        LineEvent::RingStarted | LineEvent::Seized => {
                            proptest::prop_assert!(!in_call, "{log:?}");
                            in_call = true;
                        }
                        LineEvent::Answered => {
                            answered += 1;
                            proptest::prop_assert!(in_call && answered <= answers, "{log:?}");
                        }
                        e if e.ends_call() => {
                            proptest::prop_assert!(in_call, "{log:?}");
                            in_call = false;
                        }
                        _ => proptest::prop_assert!(in_call, "{log:?}"),
                    }
                }
            }
            // The relay follows the calls.
            let off_hook = hook.level() == levels.hook_off_high;
            proptest::prop_assert_eq!(off_hook, fxo.is_off_hook());
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_driver_runs_the_simulated_line_over_the_link_with_caller_id_and_audio() {
    use std::sync::{Arc, Mutex};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fxo0.sock");
    let cfg = config(Country::Eu, Supervision::LoopCurrent);
    let (sim, _pins) = SimLine::new(
        SimLineConfig::matching(&cfg),
        tokio::time::Instant::now().into_std(),
    );
    let sim = sim.serve(&path, ms(2)).unwrap();

    // The appliance's side: pins and audio from the link only.
    let opened = crossline_line::open(cfg, &crossline_line::Port::Link { path })
        .await
        .unwrap();
    let (line, mut events) = (opened.driver, opened.events);
    let (mut from_line, to_line) = opened.audio.unwrap().split();
    let heard: Arc<Mutex<Vec<i16>>> = Arc::default();
    let collector = Arc::clone(&heard);
    tokio::spawn(async move {
        while let Some(frame) = from_line.recv_frame().await {
            collector.lock().unwrap().extend_from_slice(&frame[..]);
        }
    });

    sim.with(|s, now| {
        s.place_call(
            now,
            IncomingCall {
                script: vec![
                    FarEndStep::Silence(ms(500)),
                    FarEndStep::Dtmf {
                        digits: "2".into(),
                        on_ms: 100,
                        off_ms: 100,
                    },
                    FarEndStep::Silence(ms(1500)),
                    FarEndStep::HangUp,
                ],
                ..IncomingCall::from_number("380501234567")
            },
        )
    });
    assert_eq!(next_event(&mut events).await, LineEvent::RingStarted);
    assert_eq!(next_event(&mut events).await, LineEvent::Ring { count: 1 });
    assert!(matches!(
        next_event(&mut events).await,
        LineEvent::CallerIdWindow { .. }
    ));
    let window_from = heard.lock().unwrap().len();
    // Caller ID arrives in the pause: decode it as it comes (deadline 3 s).
    let deadline = tokio::time::Instant::now() + ms(3000);
    let caller = loop {
        let samples = heard.lock().unwrap()[window_from..].to_vec();
        if let Ok(id) = cid::decode(&samples, cid::Standard::Etsi) {
            break id;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no caller ID in the pause"
        );
        tokio::time::sleep(ms(50)).await;
    };
    assert_eq!(caller.number.as_deref(), Some("380501234567"));

    line.answer().unwrap();
    assert_eq!(next_event(&mut events).await, LineEvent::Answered);
    let answered_from = heard.lock().unwrap().len();
    let prompt: Vec<i16> = (0..1600).map(|i| ((i % 20) as i16 - 10) * 800).collect();
    // The appliance's prompt player, paced at 20 ms, in its own task.
    let frames: Vec<[i16; 160]> = prompt
        .chunks(160)
        .map(|c| <[i16; 160]>::try_from(c).unwrap())
        .collect();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(ms(20));
        for f in &frames {
            tick.tick().await;
            to_line.send_frame(f).unwrap();
        }
    });
    // The caller pressed 2 and hung up: the loop opens.
    assert_eq!(
        next_event(&mut events).await,
        LineEvent::FarEndDisconnect {
            cause: DisconnectCause::LoopCurrentDrop
        }
    );
    let after = heard.lock().unwrap()[answered_from..].to_vec();
    let keys: String = dtmf::detect_all(&after)
        .into_iter()
        .map(|d| d.key)
        .collect();
    assert_eq!(keys, "2");
    let far_heard = sim.with(|s, _| s.heard().to_vec());
    assert!(
        far_heard == prompt,
        "the far end hears the appliance's frames in order: heard {} samples, first {:?}",
        far_heard.len(),
        far_heard.get(..12)
    );
    // The driver went on-hook by itself; the exchange sees it shortly.
    let deadline = tokio::time::Instant::now() + ms(2000);
    while sim.with(|s, _| s.is_off_hook()) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the line stayed off-hook"
        );
        tokio::time::sleep(ms(10)).await;
    }
}
