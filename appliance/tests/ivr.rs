//! The IVR on a GSM call, through real parts: the simulated modem on real
//! PTYs (AT port and voice port), the real modem driver and lines service,
//! the fleet agent applying an IVR pushed as configuration, the voice
//! service and its IVR session, the local event log and the recordings
//! spool. The uplink is down the whole time (nothing here needs mgmt).
//!
//! The test is the caller, on the sim's voice channel: it rings with CLIP,
//! measures the menu prompt's marker tone it hears (frequency by Goertzel
//! and level), presses 2 (DTMF generated into the line audio), hears a
//! beep where the voicemail prompt would be (its file was removed after the
//! configuration was applied: the call goes on), speaks a tone and hangs
//! up. The appliance's log then holds the call from ringing to its end,
//! with the choice and the voicemail, and the voicemail is in the spool
//! with the caller's tone in it. A caller who presses 3 asks for a
//! callback: the confirmation is heard to its end, the IVR hangs up, and
//! the log holds the request with the caller's number. A modem lost in the
//! middle of a voicemail ends the call `line_lost`, after the voicemail
//! recorded so far was kept and logged. A caller who presses nothing gets
//! the menu's default after its timeout (the IVR hangs up). On a line
//! without call audio the IVR goes by the keys the modem detects.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{
    BLOCK, Log, MARKER_DBM0, MARKER_HZ, VOICE_DBM0, VOICE_HZ, WAIT, assert_caller_message,
    assert_no_prompt, assert_tone, blocks_with, ended_call, kinds, spooled_voicemail, tone_part,
    voicemail_call, write_wav,
};
use crossline_appliance::config::{ModemEntry, MqttConfig};
use crossline_appliance::log::LocalLog;
use crossline_appliance::recordings::Spool;
use crossline_appliance::uplink::LinkState;
use crossline_appliance::{Config, fleet, sms};
use crossline_audio::tones::mix;
use crossline_core::{CallEndCause, EventBody, NodeId};
use crossline_proto::{
    ApplianceSettings, DesiredConfig, IvrSettings, Kind, ReportedConfig, VERSION, decode,
};
use crossline_sim::{SimConfig, SimModem};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// What the appliance plays for a prompt whose file is missing.
const BEEP_HZ: f64 = 1000.0;
/// The callback confirmation: 500 ms of 600 Hz.
const CALLBACK_HZ: f64 = 600.0;
const CALLBACK_SAMPLES: usize = 4000;
fn ivr_settings() -> IvrSettings {
    serde_json::from_value(serde_json::json!({
        "languages": ["en"],
        "default_language": "en",
        "prompts": ["main", "voicemail", "thanks", "callback"],
        "entry": "main",
        "menus": {
            "main": {
                "prompt": "main",
                "options": {"2": {"type": "voicemail"}, "3": {"type": "callback"}},
                "timeout_s": 2,
                "retries": 0
            }
        },
        "voicemail": {"prompt": "voicemail", "thanks_prompt": "thanks", "max_s": 60, "silence_s": 30},
        "callback": {"prompt": "callback"}
    }))
    .unwrap()
}

/// The appliance's fleet agent (with its lines and voice service) on one
/// simulated modem with call audio, an IVR pushed and applied, the uplink
/// down.
struct Rig {
    _tmp: tempfile::TempDir,
    sim: SimModem,
    log: Log,
    data_dir: std::path::PathBuf,
    /// `<prompts dir>/en`.
    prompts: std::path::PathBuf,
    /// The menu prompt's samples.
    marker: Vec<i16>,
    shutdown: CancellationToken,
    agent: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Rig {
    async fn start() -> Rig {
        Self::start_with(true).await
    }

    /// `audio`: the line has its voice port configured (else signalling
    /// only).
    async fn start_with(audio: bool) -> Rig {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
        let tmp = tempfile::tempdir().unwrap();
        let data_dir = tmp.path().join("data");
        std::fs::create_dir_all(&data_dir).unwrap();
        let sim = SimModem::spawn(SimConfig {
            noise_interval: None,
            ..SimConfig::default()
        })
        .await
        .unwrap();
        let mut line = ModemEntry::new("gsm0", sim.link().to_string_lossy());
        line.profile = crossline_modem::Profile::QuectelEc25;
        if audio {
            line.voice_port = Some(sim.voice_link().unwrap().to_string_lossy().into_owned());
        }
        let node = NodeId::new("branch-ivr").unwrap();
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
        base.modems = vec![line];

        // The prompts, where the appliance looks for them by default.
        let prompts = base.prompts_dir().join("en");
        let marker = mix(&[(MARKER_HZ, MARKER_DBM0)], 12_000); // 1.5 s
        write_wav(&prompts.join("main.wav"), &marker);
        write_wav(
            &prompts.join("voicemail.wav"),
            &mix(&[(450.0, -10.0)], 4000),
        );
        write_wav(&prompts.join("thanks.wav"), &mix(&[(450.0, -10.0)], 4000));
        write_wav(
            &prompts.join("callback.wav"),
            &mix(&[(CALLBACK_HZ, -10.0)], CALLBACK_SAMPLES),
        );

        let store = sms::db::open_store(&base.db_path(), node.clone()).unwrap();
        let log = LocalLog::new(store.clone()).await.unwrap();
        let (_acked_tx, acked) = watch::channel(0u64);
        let (_link_tx, link) = watch::channel(LinkState::down_now());
        let (telemetry, _telemetry_rx) = mpsc::channel(64);
        let (_commands_tx, commands) = mpsc::channel(8);
        let (config_tx, config) = mpsc::channel(8);
        let (outbound, mut out_rx) = mpsc::channel(64);
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

        // mgmt's push of the IVR, applied (the uplink being down only
        // delays the report, which the test reads straight from the agent).
        config_tx
            .send(DesiredConfig {
                v: VERSION,
                version: 1,
                settings: ApplianceSettings {
                    ivr: Some(Box::new(ivr_settings())),
                    ..Default::default()
                },
            })
            .await
            .unwrap();
        let deadline = Instant::now() + WAIT;
        loop {
            let o = tokio::time::timeout_at(deadline, out_rx.recv())
                .await
                .expect("no report of the pushed configuration")
                .unwrap();
            if o.kind != Kind::Reported {
                continue;
            }
            let r: ReportedConfig = decode(&o.payload).unwrap();
            assert_eq!(r.error, None, "the IVR configuration was refused");
            if r.applied == 1 {
                break;
            }
        }
        sim.wait_until("the modem initialised", WAIT, |s| {
            s.commands().iter().any(|c| c == "AT+CLIP=1")
        })
        .await
        .unwrap();
        Rig {
            _tmp: tmp,
            sim,
            log,
            data_dir,
            prompts,
            marker,
            shutdown,
            agent,
        }
    }

    /// Rings from `number` and waits until the menu prompt's marker is
    /// heard; checks its frequency and level.
    async fn call_and_hear_the_menu(&self, number: &str) {
        self.sim.inject_call(number);
        self.sim
            .wait_until("the menu prompt's marker tone heard", WAIT, |s| {
                blocks_with(&s.far_end_heard(), MARKER_HZ, -16.0)
                    .iter()
                    .filter(|on| **on)
                    .count()
                    >= 8
            })
            .await
            .unwrap();
        let heard = self.sim.far_end_heard();
        let tone = tone_part(&heard, MARKER_HZ, -16.0);
        // Leave out the blocks at the tone's edges.
        assert_tone(
            "the menu prompt at the caller",
            &tone[BLOCK..tone.len() - BLOCK],
            MARKER_HZ,
            MARKER_DBM0,
        );
    }

    /// The call's events in the local log, once it has ended.
    async fn ended_call(&self) -> Vec<EventBody> {
        ended_call(&self.log).await
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
async fn a_gsm_call_reaches_the_ivr_the_caller_presses_2_and_leaves_a_voicemail() {
    let rig = Rig::start().await;
    let (sim, prompts, data_dir, marker) = (&rig.sim, &rig.prompts, &rig.data_dir, &rig.marker);
    // The voicemail prompt's file goes away after the IVR was applied (a
    // botched prompt update): the caller gets a beep there, not a hang.
    std::fs::remove_file(prompts.join("voicemail.wav")).unwrap();

    rig.call_and_hear_the_menu("+380501234567").await;

    // The caller presses 2 while the prompt plays.
    sim.far_end_play(crossline_audio::dtmf::generate("2", 120, 80, -8.0));
    // The voicemail prompt (a beep: its file is missing) plays, then the
    // recording starts: wait until the beep was heard and has ended.
    sim.wait_until(
        "the beep instead of the voicemail prompt, then quiet",
        WAIT,
        |s| {
            let on = blocks_with(&s.far_end_heard(), BEEP_HZ, -26.0);
            on.iter()
                .rposition(|b| *b)
                .is_some_and(|last| on.len() - last > 5)
        },
    )
    .await
    .unwrap();
    let heard = sim.far_end_heard();
    let beep = tone_part(&heard, BEEP_HZ, -26.0);
    assert!(
        (960..=2240).contains(&beep.len()),
        "a short beep, heard for {} samples",
        beep.len()
    );
    let menu_heard = tone_part(&heard, MARKER_HZ, -16.0).len();
    assert!(
        menu_heard < marker.len(),
        "the key stopped the menu prompt (barge-in): {menu_heard} of {} samples heard",
        marker.len()
    );

    // The caller leaves a message: 1.5 s of tone, then a little quiet, and
    // hangs up once all of it went down the line.
    let mut message = mix(&[(VOICE_HZ, VOICE_DBM0)], 12_000);
    message.extend(std::iter::repeat_n(0, 4000));
    sim.far_end_play(message);
    sim.wait_until("the message sent", WAIT, |s| s.far_end_queued() == 0)
        .await
        .unwrap();
    sim.remote_hangup();

    // The call in the local log, from ringing to its end.
    let events = rig.ended_call().await;
    let vm = voicemail_call(
        &events,
        "gsm0",
        Some("+380501234567"),
        CallEndCause::CallerHungUp,
    );
    assert!(
        (1_500..10_000).contains(&vm.duration_ms),
        "voicemail of {} ms",
        vm.duration_ms
    );

    // The voicemail waits in the spool for mgmt, as declared, with the
    // caller's message in it.
    let recorded = spooled_voicemail(data_dir, &vm);
    assert_caller_message(&recorded, 8_000);
    assert_no_prompt(&recorded);

    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_asking_for_a_callback_hears_the_confirmation_out_and_the_ivr_hangs_up() {
    let rig = Rig::start().await;
    rig.call_and_hear_the_menu("+380671112233").await;
    rig.sim
        .far_end_play(crossline_audio::dtmf::generate("3", 120, 80, -8.0));
    // The IVR confirms and hangs up by itself.
    rig.sim
        .wait_until("the IVR to hang up", WAIT, |s| s.calls().is_empty())
        .await
        .unwrap();
    // The whole confirmation went down the line before the hang-up.
    let confirmation = tone_part(&rig.sim.far_end_heard(), CALLBACK_HZ, -16.0);
    assert!(
        confirmation.len() + 2 * BLOCK >= CALLBACK_SAMPLES,
        "{} of {CALLBACK_SAMPLES} samples of the confirmation heard",
        confirmation.len()
    );
    assert_tone(
        "the confirmation at the caller",
        &confirmation[BLOCK..confirmation.len() - BLOCK],
        CALLBACK_HZ,
        -10.0,
    );
    let events = rig.ended_call().await;
    assert_eq!(
        kinds(&events),
        [
            "call_ringing",
            "call_answered",
            "ivr_choice",
            "callback_requested",
            "call_ended"
        ],
        "{events:?}"
    );
    let call = events[0].call_of().unwrap().0;
    assert_eq!(
        events[2],
        EventBody::IvrChoice {
            call,
            menu: "main".into(),
            digit: "3".into(),
            action: "callback".into()
        }
    );
    assert_eq!(
        events[3],
        EventBody::CallbackRequested {
            call,
            number: "+380671112233".into()
        }
    );
    let EventBody::CallEnded { cause, .. } = &events[4] else {
        unreachable!()
    };
    assert_eq!(*cause, CallEndCause::IvrHungUp);
    assert!(Spool::open(&rig.data_dir).unwrap().pending().is_empty());
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_modem_lost_mid_voicemail_keeps_the_voicemail_and_ends_the_call_line_lost() {
    let rig = Rig::start().await;
    rig.call_and_hear_the_menu("+380501234567").await;
    rig.sim
        .far_end_play(crossline_audio::dtmf::generate("2", 120, 80, -8.0));
    // The voicemail prompt (450 Hz) plays out, then the recording starts.
    rig.sim
        .wait_until("the voicemail prompt heard, then quiet", WAIT, |s| {
            let on = blocks_with(&s.far_end_heard(), 450.0, -16.0);
            on.iter()
                .rposition(|b| *b)
                .is_some_and(|last| on.len() - last > 5)
        })
        .await
        .unwrap();
    rig.sim.far_end_play(mix(&[(VOICE_HZ, VOICE_DBM0)], 8_000));
    rig.sim
        .wait_until("the message spoken", WAIT, |s| s.far_end_queued() == 0)
        .await
        .unwrap();
    // The modem drops off the USB bus mid-message.
    rig.sim.unplug().await.unwrap();
    let events = rig.ended_call().await;
    let vm = voicemail_call(
        &events,
        "gsm0",
        Some("+380501234567"),
        CallEndCause::LineLost,
    );
    let recorded = spooled_voicemail(&rig.data_dir, &vm);
    let voice = tone_part(&recorded, VOICE_HZ, -20.0);
    assert!(
        voice.len() >= 4_000,
        "the message up to the loss is kept: {} samples of it",
        voice.len()
    );
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_who_presses_nothing_gets_the_menus_default_and_the_ivr_hangs_up() {
    let rig = Rig::start().await;
    rig.call_and_hear_the_menu("+380501234567").await;
    // No key: 2 s after the prompt the menu's default (hang up) is taken.
    rig.sim
        .wait_until("the IVR to hang up", WAIT, |s| s.calls().is_empty())
        .await
        .unwrap();
    let heard = rig.sim.far_end_heard();
    let menu_heard = tone_part(&heard, MARKER_HZ, -16.0).len();
    assert!(
        menu_heard + 2 * BLOCK >= rig.marker.len(),
        "the whole menu prompt was heard: {menu_heard} of {} samples",
        rig.marker.len()
    );
    let events = rig.ended_call().await;
    let call = events[0].call_of().unwrap().0;
    assert_eq!(
        kinds(&events),
        ["call_ringing", "call_answered", "ivr_choice", "call_ended"],
        "{events:?}"
    );
    assert_eq!(
        events[2],
        EventBody::IvrChoice {
            call,
            menu: "main".into(),
            digit: String::new(),
            action: "hangup".into()
        }
    );
    let EventBody::CallEnded {
        cause, duration_ms, ..
    } = &events[3]
    else {
        unreachable!()
    };
    assert_eq!(*cause, CallEndCause::IvrHungUp);
    // The prompt (1.5 s) and the wait for a key (2 s).
    assert!((3_400..10_000).contains(duration_ms), "{duration_ms} ms");
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_line_without_call_audio_the_ivr_goes_by_the_keys_the_modem_detects() {
    let rig = Rig::start_with(false).await;
    rig.sim.inject_call("+380671112233");
    rig.sim
        .wait_until("the call answered", WAIT, |s| {
            s.calls()
                .iter()
                .any(|c| c.state == crossline_sim::CallState::Active)
        })
        .await
        .unwrap();
    // The caller presses 3 (Quectel: +QTONEDET) within the menu's 2 s.
    rig.sim.remote_dtmf("3");
    rig.sim
        .wait_until("the IVR to hang up", WAIT, |s| s.calls().is_empty())
        .await
        .unwrap();
    let events = rig.ended_call().await;
    assert_eq!(
        kinds(&events),
        [
            "call_ringing",
            "call_answered",
            "ivr_choice",
            "callback_requested",
            "call_ended"
        ],
        "{events:?}"
    );
    let call = events[0].call_of().unwrap().0;
    assert_eq!(
        events[3],
        EventBody::CallbackRequested {
            call,
            number: "+380671112233".into()
        }
    );
    assert!(
        rig.sim.far_end_heard().is_empty(),
        "no audio was sent on the line"
    );
    rig.stop().await;
}
