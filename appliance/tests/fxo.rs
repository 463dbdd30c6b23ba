//! An analog (FXO) call through the IVR, with real parts: the simulated
//! analog line (crossline-sim) served on a Unix socket (the line link), the
//! appliance's fleet agent with its analog line's real FXO driver
//! (`crossline_line::open`), the voice service and its IVR session, the
//! local event log and the recordings spool. The uplink is down the whole
//! time (all of it is local).
//!
//! The test is the exchange and the caller: the line rings with the EU
//! cadence and an ETSI (V.23 FSK) caller ID between the first and second
//! ring; the appliance decodes it and answers; the test, as the far end,
//! measures the menu prompt's marker tone (frequency and level), presses 2
//! (DTMF generated into the line audio), hears the voicemail prompt, leaves
//! a tone as voicemail and hangs up (the exchange drops loop current). The
//! local log then holds the call from ringing (with the number from the FSK
//! caller ID) to its end, and the voicemail is in the spool with the
//! caller's tone in it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{
    BLOCK, Log, MARKER_DBM0, MARKER_HZ, VOICE_DBM0, VOICE_HZ, WAIT, assert_caller_message,
    assert_no_prompt, assert_tone, blocks_with, ended_call, ended_calls, kinds, spooled_voicemail,
    tone_part, voicemail_call, wait_until, write_wav,
};
use crossline_appliance::config::{FxoEntry, MqttConfig};
use crossline_appliance::lines::{FxoService, FxoState};
use crossline_appliance::log::LocalLog;
use crossline_appliance::uplink::LinkState;
use crossline_appliance::{Config, fleet, sms};
use crossline_audio::cid::CallerId;
use crossline_audio::tones::mix;
use crossline_core::{CallEndCause, EventBody, NodeId};
use crossline_line::{Country, LineConfig, Port, Supervision};
use crossline_proto::IvrSettings;
use crossline_sim::line::{IncomingCall, SharedSimLine, SimLine, SimLineConfig, SimLineEvent};
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// The caller ID the exchange sends (ETSI, between the first rings).
const NUMBER: &str = "0501234567";
/// The voicemail prompt.
const PROMPT_HZ: f64 = 450.0;
fn ivr_settings() -> IvrSettings {
    serde_json::from_value(serde_json::json!({
        "languages": ["en"],
        "default_language": "en",
        "prompts": ["main", "voicemail", "thanks"],
        "entry": "main",
        "menus": {
            "main": {
                "prompt": "main",
                "options": {"2": {"type": "voicemail"}},
                "timeout_s": 5,
                "retries": 0
            }
        },
        "voicemail": {"prompt": "voicemail", "thanks_prompt": "thanks", "max_s": 60, "silence_s": 30}
    }))
    .unwrap()
}

/// Waits until `cond` holds on the simulated line (checked every 20 ms),
/// failing after [`WAIT`].
async fn wait_line(line: &SharedSimLine, what: &str, cond: impl Fn(&SimLine) -> bool) {
    wait_until(
        what,
        || std::future::ready(line.with(|l, _| cond(l)).then_some(())),
        || format!("line log: {:?}", line.with(|l, _| l.log().to_vec())),
    )
    .await;
}

/// The appliance's fleet agent (its analog line, voice service and IVR)
/// on one simulated analog line served on a line link, the uplink down.
struct Rig {
    _tmp: tempfile::TempDir,
    sim: SharedSimLine,
    log: Log,
    data_dir: std::path::PathBuf,
    /// The menu prompt's samples.
    marker: Vec<i16>,
    shutdown: CancellationToken,
    agent: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Rig {
    /// `line`: the line's settings (the simulated exchange matches them);
    /// `ivr`: the appliance has the IVR (else calls ring out).
    async fn start(line: LineConfig, ivr: bool) -> Rig {
        let exchange = SimLineConfig::matching(&line);
        Self::start_with(line, exchange, ivr).await
    }

    /// [`Rig::start`] with an exchange that may not match the line's
    /// settings.
    async fn start_with(line: LineConfig, exchange: SimLineConfig, ivr: bool) -> Rig {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
        let tmp = tempfile::tempdir().unwrap();
        let data_dir = tmp.path().join("data");
        std::fs::create_dir_all(&data_dir).unwrap();

        let socket = tmp.path().join("fxo0.sock");
        let (sim, _pins) = SimLine::new(exchange, Instant::now().into_std());
        let sim = sim.serve(&socket, Duration::from_millis(2)).unwrap();

        let node = NodeId::new("branch-fxo").unwrap();
        let mut base = Config::new(
            node.clone(),
            data_dir.clone(),
            MqttConfig {
                // Never reached: the uplink is not started.
                url: "mqtt://127.0.0.1:9".into(),
                ca_file: None,
                secret: Some("unused".into()),
                secret_file: None,
                keep_alive_s: 2,
            },
        );
        let mut entry = FxoEntry::new("fxo0", Port::Link { path: socket });
        entry.line = line;
        entry.language = Some("en".into());
        base.fxo = vec![entry];
        let prompts = base.prompts_dir().join("en");
        let marker = mix(&[(MARKER_HZ, MARKER_DBM0)], 12_000); // 1.5 s
        write_wav(&prompts.join("main.wav"), &marker);
        write_wav(
            &prompts.join("voicemail.wav"),
            &mix(&[(PROMPT_HZ, -10.0)], 4000),
        );
        write_wav(
            &prompts.join("thanks.wav"),
            &mix(&[(PROMPT_HZ, -10.0)], 4000),
        );
        if ivr {
            base.ivr = Some(ivr_settings());
        }
        base.validate().unwrap();

        let store = sms::db::open_store(&base.db_path(), node.clone()).unwrap();
        let log = LocalLog::new(store.clone()).await.unwrap();
        let (_acked_tx, acked) = watch::channel(0u64);
        let (_link_tx, link) = watch::channel(LinkState::down_now());
        let (telemetry, _telemetry_rx) = mpsc::channel(64);
        let (_commands_tx, commands) = mpsc::channel(8);
        let (_config_tx, config) = mpsc::channel(8);
        let (outbound, _out_rx) = mpsc::channel(64);
        let shutdown = CancellationToken::new();
        let agent = tokio::spawn(fleet::run(
            fleet::FleetIo {
                base,
                log: log.clone(),
                acked,
                link,
                telemetry,
                commands,
                config,
                outbound,
            },
            shutdown.clone(),
        ));
        // The appliance's FXO driver connects to the line.
        wait_line(
            &sim,
            "the appliance's driver on the line link",
            SimLine::linked,
        )
        .await;
        Rig {
            _tmp: tmp,
            sim,
            log,
            data_dir,
            marker,
            shutdown,
            agent,
        }
    }

    /// Rings the line with `caller_id` (none: no caller ID) until answered,
    /// or until `give_up_after`.
    fn ring(&self, caller_id: Option<CallerId>, give_up_after: Option<Duration>) {
        self.sim.with(|l, now| {
            l.place_call(
                now,
                IncomingCall {
                    caller_id,
                    give_up_after,
                    script: Vec::new(),
                },
            );
        });
    }

    /// Waits until the menu prompt's marker is heard; checks its frequency
    /// and level.
    async fn hear_the_menu(&self) {
        wait_line(&self.sim, "the menu prompt's marker tone heard", |l| {
            blocks_with(l.heard(), MARKER_HZ, -16.0)
                .iter()
                .filter(|on| **on)
                .count()
                >= 8
        })
        .await;
        self.sim.with(|l, _| {
            let tone = tone_part(l.heard(), MARKER_HZ, -16.0);
            assert_tone(
                "the menu prompt at the caller",
                &tone[BLOCK..tone.len() - BLOCK],
                MARKER_HZ,
                MARKER_DBM0,
            );
        });
    }

    async fn stop(self) {
        self.shutdown.cancel();
        tokio::time::timeout(WAIT, self.agent)
            .await
            .expect("the fleet agent stops")
            .unwrap()
            .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_analog_call_with_fsk_caller_id_reaches_the_ivr_and_leaves_a_voicemail() {
    // The exchange: an EU line (1 s ring, 4 s pause), loop-current
    // disconnect, ETSI V.23 FSK caller ID.
    let rig = Rig::start(LineConfig::default(), true).await;
    let (sim, data_dir, marker) = (&rig.sim, &rig.data_dir, &rig.marker);
    rig.ring(Some(CallerId::number(NUMBER)), None);

    // The appliance answers after the caller ID (before the second ring)
    // and the caller hears the menu prompt.
    rig.hear_the_menu().await;
    sim.with(|l, _| {
        assert!(l.saw(&SimLineEvent::CallerIdSent), "{:?}", l.log());
        let answered = l.log().iter().find(|(_, e)| *e == SimLineEvent::Answered);
        let (at, _) = answered.expect("the line was answered");
        // Rang at ~0 s for 1 s; the second ring would start at 5 s.
        assert!(*at < Duration::from_secs(5), "answered at {at:?}");
    });

    // The caller presses 2 (DTMF into the line audio) while the prompt
    // plays; the voicemail prompt plays, then the recording starts: wait
    // until the prompt was heard and has ended.
    sim.with(|l, _| l.far_end_play(crossline_audio::dtmf::generate("2", 120, 80, -8.0)));
    wait_line(sim, "the voicemail prompt, then quiet", |l| {
        let on = blocks_with(l.heard(), PROMPT_HZ, -16.0);
        on.iter().filter(|b| **b).count() >= 8
            && on
                .iter()
                .rposition(|b| *b)
                .is_some_and(|last| on.len() - last > 5)
    })
    .await;
    let menu_heard = sim.with(|l, _| tone_part(l.heard(), MARKER_HZ, -16.0).len());
    assert!(
        menu_heard < marker.len(),
        "the key stopped the menu prompt (barge-in): {menu_heard} of {} samples heard",
        marker.len()
    );

    // The caller leaves a message: 1.5 s of tone, a little quiet, and hangs
    // up once all of it went down the line.
    let mut message = mix(&[(VOICE_HZ, VOICE_DBM0)], 12_000);
    message.extend(std::iter::repeat_n(0, 4000));
    sim.with(|l, _| l.far_end_play(message));
    wait_line(sim, "the message sent", |l| l.far_end_queued() == 0).await;
    sim.with(|l, now| l.far_end_hang_up(now));

    // The call in the local log, from ringing to its end (the number from
    // the FSK caller ID; the loop-current drop is the caller hanging up).
    let events = ended_call(&rig.log).await;
    let vm = voicemail_call(&events, "fxo0", Some(NUMBER), CallEndCause::CallerHungUp);
    assert!(
        (1_500..10_000).contains(&vm.duration_ms),
        "voicemail of {} ms",
        vm.duration_ms
    );

    // The voicemail waits in the spool for mgmt, as declared, with the
    // caller's message in it.
    let samples = spooled_voicemail(data_dir, &vm);
    assert_caller_message(&samples, 9_600);
    assert_no_prompt(&samples);

    // The line is back on-hook, ready for the next call.
    wait_line(sim, "the line on-hook", |l| !l.is_off_hook()).await;
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_tone_only_line_a_call_without_caller_id_ends_on_the_disconnect_tone() {
    // No answer or disconnect signalling on this exchange: the caller's
    // hang-up is only heard as the busy tone that follows it.
    let line = LineConfig {
        supervision: Supervision::ToneOnly,
        ..LineConfig::default()
    };
    let rig = Rig::start(line, true).await;
    rig.ring(None, None);
    // Without caller ID the call is reported at the end of the window
    // (the second ring), then answered.
    rig.hear_the_menu().await;
    rig.sim.with(|l, now| l.far_end_hang_up(now));

    let events = ended_call(&rig.log).await;
    assert_eq!(
        kinds(&events),
        ["call_ringing", "call_answered", "call_ended"],
        "{events:?}"
    );
    let EventBody::CallRinging { from, line, .. } = &events[0] else {
        unreachable!()
    };
    assert_eq!(
        (from, line.as_str()),
        (&None, "fxo0"),
        "no caller ID, no number"
    );
    let EventBody::CallEnded { cause, .. } = &events[2] else {
        unreachable!()
    };
    assert_eq!(
        *cause,
        CallEndCause::CallerHungUp,
        "the busy tone after the caller hung up ends the call"
    );
    wait_line(&rig.sim, "the line on-hook", |l| !l.is_off_hook()).await;
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_who_presses_nothing_is_hung_up_on_by_the_ivr_and_a_dead_line_is_line_lost() {
    let rig = Rig::start(LineConfig::default(), true).await;
    // No key: after the menu's timeout its default hangs up; the line goes
    // on-hook and the call ends `ivr_hung_up`.
    rig.ring(Some(CallerId::number(NUMBER)), None);
    rig.hear_the_menu().await;
    wait_line(&rig.sim, "the IVR to hang up", |l| {
        l.saw(&SimLineEvent::OnHook) && !l.is_off_hook()
    })
    .await;
    let events = ended_call(&rig.log).await;
    assert_eq!(
        kinds(&events),
        ["call_ringing", "call_answered", "ivr_choice", "call_ended"],
        "{events:?}"
    );
    let EventBody::CallEnded { cause, .. } = &events[3] else {
        unreachable!()
    };
    assert_eq!(*cause, CallEndCause::IvrHungUp);

    // The line goes dead (no loop current) and the next call rings at
    // once (its first burst may be cut short by the ring guard after the
    // hang-up and ignored: then the next cycle qualifies, without the
    // caller ID). The answer finds no loop current, the driver goes back
    // on-hook and the call ends `line_lost`.
    rig.sim.with(|l, now| {
        l.set_cut(true);
        l.place_call(now, IncomingCall::from_number("0441112233"));
    });
    let all = ended_calls(&rig.log, 2).await;
    let second = all[4..].to_vec();
    // The off-hook never drew loop current: the call was never answered
    // (no call_answered, no IVR session), and `loop_settle_ms` after the
    // off-hook it ends `line_lost`, with no connected time.
    assert_eq!(kinds(&second), ["call_ringing", "call_ended"], "{second:?}");
    let EventBody::CallEnded {
        cause,
        duration_ms,
        ring_ms,
        ..
    } = &second[1]
    else {
        unreachable!()
    };
    assert_eq!(
        (*cause, *duration_ms),
        (CallEndCause::LineLost, 0),
        "{second:?}"
    );
    assert!(
        (600..15_000).contains(ring_ms),
        "rang, then the answer waited loop_settle_ms: {ring_ms} ms"
    );
    wait_line(&rig.sim, "the line on-hook", |l| !l.is_off_hook()).await;
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_an_ivr_a_us_call_with_bell_202_caller_id_rings_out_as_missed() {
    // A US line: 2 s ring, 4 s pause, Bell 202 FSK caller ID.
    let line = LineConfig {
        country: Country::Us,
        ..LineConfig::default()
    };
    let rig = Rig::start(line, false).await;
    rig.ring(
        Some(CallerId::number("2125551234")),
        Some(Duration::from_millis(8_500)),
    );
    let events = ended_call(&rig.log).await;
    assert_eq!(kinds(&events), ["call_ringing", "call_ended"], "{events:?}");
    let EventBody::CallRinging { from, .. } = &events[0] else {
        unreachable!()
    };
    assert_eq!(
        from.as_deref(),
        Some("2125551234"),
        "the Bell 202 caller ID"
    );
    let EventBody::CallEnded {
        cause,
        duration_ms,
        ring_ms,
        ..
    } = &events[1]
    else {
        unreachable!()
    };
    assert_eq!((*cause, *duration_ms), (CallEndCause::Missed, 0));
    assert!(*ring_ms >= 4_000, "rang {ring_ms} ms");
    rig.sim.with(|l, _| {
        assert!(
            !l.saw(&SimLineEvent::Answered),
            "nobody answers without an IVR: {:?}",
            l.log()
        );
    });
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn caller_id_in_another_standard_than_the_lines_gives_no_number() {
    // The exchange sends Bell 202 where the line expects ETSI V.23: the
    // decoder finds no message it can read (the warning or debug line says
    // why) and the call has no number.
    let line = LineConfig::default();
    let exchange = SimLineConfig {
        cid_standard: crossline_audio::cid::Standard::Bell202,
        ..SimLineConfig::matching(&line)
    };
    let rig = Rig::start_with(line, exchange, false).await;
    rig.ring(
        Some(CallerId::number(NUMBER)),
        Some(Duration::from_millis(6_500)),
    );
    let events = ended_call(&rig.log).await;
    assert_eq!(kinds(&events), ["call_ringing", "call_ended"], "{events:?}");
    let EventBody::CallRinging { from, .. } = &events[0] else {
        unreachable!()
    };
    assert_eq!(*from, None, "no number from a caller ID it cannot read");
    rig.sim
        .with(|l, _| assert!(l.saw(&SimLineEvent::CallerIdSent), "{:?}", l.log()));
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_analog_line_is_restarted_alone_and_a_removed_one_stopped() {
    let tmp = tempfile::tempdir().unwrap();
    let mut sims = Vec::new();
    let mut entries = Vec::new();
    for name in ["fxo0", "fxo1"] {
        let line = LineConfig {
            name: name.into(),
            ..LineConfig::default()
        };
        let socket = tmp.path().join(format!("{name}.sock"));
        let (sim, _pins) = SimLine::new(SimLineConfig::matching(&line), Instant::now().into_std());
        sims.push(sim.serve(&socket, Duration::from_millis(2)).unwrap());
        let mut e = FxoEntry::new(name, Port::Link { path: socket });
        e.line = line;
        entries.push(e);
    }
    let shutdown = CancellationToken::new();
    let mut svc = FxoService::start(&entries, None, shutdown.clone());
    for sim in &sims {
        wait_line(sim, "the driver on the line link", SimLine::linked).await;
    }
    wait_until(
        "every line up",
        || {
            std::future::ready(
                svc.lines()
                    .states()
                    .values()
                    .all(|s| *s == FxoState::Up)
                    .then_some(()),
            )
        },
        || format!("{:?}", svc.lines().states()),
    )
    .await;

    // Only fxo1's entry changes (its language): only it restarts.
    let mut changed = entries.clone();
    changed[1].language = Some("uk".into());
    assert_eq!(svc.reconfigure(&changed).await, ["fxo1"]);
    wait_line(&sims[1], "fxo1's driver back", |l| {
        l.linked() && l.connections() == 2
    })
    .await;
    assert_eq!(sims[0].with(|l, _| l.connections()), 1, "fxo0 kept running");
    // The same entries again: nothing restarts.
    assert!(svc.reconfigure(&changed).await.is_empty());

    // fxo0 removed: its driver stops and lets go of the line.
    assert!(svc.reconfigure(&changed[1..]).await.is_empty());
    wait_line(&sims[0], "fxo0's driver gone", |l| !l.linked()).await;
    assert_eq!(svc.lines().states().keys().collect::<Vec<_>>(), ["fxo1"]);
    svc.stop().await;
    wait_line(&sims[1], "fxo1's driver gone", |l| !l.linked()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_line_nobody_serves_is_down_with_why_until_its_simulator_comes() {
    let tmp = tempfile::tempdir().unwrap();
    let socket = tmp.path().join("fxo0.sock");
    let entry = FxoEntry::new(
        "fxo0",
        Port::Link {
            path: socket.clone(),
        },
    );
    let shutdown = CancellationToken::new();
    let svc = FxoService::start(&[entry], None, shutdown.clone());
    let state = |svc: &FxoService| svc.lines().states().get("fxo0").cloned();
    let reason = wait_until(
        "the line down",
        || {
            std::future::ready(match state(&svc) {
                Some(FxoState::Down(reason)) => Some(reason),
                _ => None,
            })
        },
        || format!("{:?}", state(&svc)),
    )
    .await;
    assert!(reason.contains("fxo0.sock"), "{reason}");
    // The simulator comes: the line's task reopens it (with its backoff).
    let (sim, _pins) = SimLine::new(
        SimLineConfig::matching(&LineConfig::default()),
        Instant::now().into_std(),
    );
    let sim = sim.serve(&socket, Duration::from_millis(2)).unwrap();
    wait_line(&sim, "the driver on the line link", SimLine::linked).await;
    wait_until(
        "the line up",
        || std::future::ready((state(&svc) == Some(FxoState::Up)).then_some(())),
        || format!("{:?}", state(&svc)),
    )
    .await;
    svc.stop().await;
    wait_line(&sim, "the driver gone", |l| !l.linked()).await;
}
