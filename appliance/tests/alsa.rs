//! A line's audio through a real ALSA device (`voice_alsa`), with no sound
//! card: ALSA's `file` plugin over the `null` PCM, as in
//! crates/audio/tests/alsa.rs. The device the line uses is an `asym` PCM:
//! its capture side reads the caller's audio from an `infile` (written by
//! the test with crossline_audio: quiet while the menu prompt plays, DTMF
//! "2", a spoken tone, quiet), its playback side writes what the caller
//! hears to a file the test measures. These devices are not paced, so the
//! line says `voice_alsa_pacing = "clock"` (one period every 20 ms).
//!
//! alsa-lib reads its configuration once per process from
//! `ALSA_CONFIG_PATH`, so each parent test writes a configuration naming its
//! own files and runs its `child_*` twin (ignored when run directly) in a
//! child process of this test binary with that variable set.
//!
//! The GSM test runs the whole appliance (fleet agent, lines service with
//! the real modem driver on the simulated Quectel modem, voice service and
//! IVR session). Analog lines on GPIO pins cannot be driven here (no pins):
//! the FXO test uses a line link for the signalling and `voice_alsa` for
//! the audio, which is the path a GPIO line's audio takes too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{
    BLOCK, Log, MARKER_DBM0, MARKER_HZ, VOICE_DBM0, VOICE_HZ, WAIT, assert_caller_message,
    assert_no_prompt, assert_tone, spooled_voicemail, tone_part, voicemail_call,
};
use crossline_appliance::config::{FxoEntry, ModemEntry, MqttConfig};
use crossline_appliance::log::LocalLog;
use crossline_appliance::uplink::LinkState;
use crossline_appliance::voice::{AlsaLine, AlsaPacing};
use crossline_appliance::{Config, fleet, sms};
use crossline_audio::cid::CallerId;
use crossline_audio::tones::mix;
use crossline_core::{CallEndCause, NodeId};
use crossline_line::Port;
use crossline_proto::IvrSettings;
use crossline_sim::line::{IncomingCall, SharedSimLine, SimLine, SimLineConfig, SimLineEvent};
use crossline_sim::{SimConfig, SimModem};
use crossline_testkit::alsa;
use std::collections::VecDeque;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

const DIR_ENV: &str = "CROSSLINE_ALSA_TEST_DIR";
/// The line's device in the test configuration.
const DEVICE: &str = "crossline_voice";

/// The menu prompt: 1.5 s of its marker tone.
const MARKER_SAMPLES: usize = 12_000;
/// The voicemail prompt: 300 ms.
const VM_PROMPT_HZ: f64 = 450.0;
const SAMPLES_PER_MS: usize = 8;

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
                "timeout_s": 5,
                "retries": 0
            }
        },
        "voicemail": {"prompt": "voicemail", "thanks_prompt": "thanks", "max_s": 20, "silence_s": 2},
        "callback": {"prompt": "callback"}
    }))
    .unwrap()
}

/// What the caller says, from the moment the line's device is opened for
/// the call: quiet while the 1.5 s menu prompt plays, "2" at 1.8 s, quiet
/// while the 300 ms voicemail prompt plays (with slack for a loaded
/// machine), 2 s of tone from 3 s, then quiet
/// (the voicemail ends on 2 s of silence and the IVR hangs up) long past
/// the call's end (the file plugin ends the stream at the end of its file).
fn caller_audio() -> Vec<i16> {
    let mut a = vec![0; 1800 * SAMPLES_PER_MS];
    a.extend(crossline_audio::dtmf::generate("2", 120, 80, -8.0));
    a.resize(3000 * SAMPLES_PER_MS, 0);
    a.extend(mix(&[(VOICE_HZ, VOICE_DBM0)], 2000 * SAMPLES_PER_MS));
    a.resize(a.len() + 30_000 * SAMPLES_PER_MS, 0);
    a
}

fn to_bytes(samples: &[i16]) -> Vec<u8> {
    samples.iter().flat_map(|s| s.to_le_bytes()).collect()
}

fn from_bytes(bytes: &[u8]) -> Vec<i16> {
    bytes
        .chunks_exact(2)
        .map(|b| i16::from_le_bytes([b[0], b[1]]))
        .collect()
}

/// Runs the ignored test `name` of this binary in a child process with the
/// ALSA configuration for `dir`: `crossline_voice` captures from
/// `line-in.raw` and plays into `played.raw`.
fn run_child(name: &str, dir: &Path) {
    let conf = alsa::write_conf(
        dir,
        &format!(
            "pcm.{DEVICE} {{\n  type asym\n  playback.pcm \"crossline_play\"\n  capture.pcm \"crossline_capture\"\n}}\n"
        ),
    );
    alsa::run_ignored_child(name, &conf, &[(DIR_ENV, dir)]);
}

fn child_dir() -> PathBuf {
    PathBuf::from(std::env::var_os(DIR_ENV).expect("run by its parent test"))
}

/// The appliance's fleet agent with its IVR (from the local configuration)
/// on `base`'s lines, the uplink down; returns the log and the agent.
async fn start_appliance(
    mut base: Config,
    shutdown: &CancellationToken,
) -> (Log, tokio::task::JoinHandle<anyhow::Result<()>>) {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    base.ivr = Some(ivr_settings());
    let prompts = base.prompts_dir().join("en");
    common::write_wav(
        &prompts.join("main.wav"),
        &mix(&[(MARKER_HZ, MARKER_DBM0)], MARKER_SAMPLES),
    );
    common::write_wav(
        &prompts.join("voicemail.wav"),
        &mix(&[(VM_PROMPT_HZ, -10.0)], 300 * SAMPLES_PER_MS),
    );
    common::write_wav(
        &prompts.join("thanks.wav"),
        &mix(&[(VM_PROMPT_HZ, -10.0)], 300 * SAMPLES_PER_MS),
    );
    common::write_wav(
        &prompts.join("callback.wav"),
        &mix(&[(600.0, -10.0)], 300 * SAMPLES_PER_MS),
    );
    let node = base.node_id.clone().unwrap();
    let store = sms::db::open_store(&base.db_path(), node).unwrap();
    let log = LocalLog::new(store).await.unwrap();
    let (_acked_tx, acked) = watch::channel(0u64);
    let (_link_tx, link) = watch::channel(LinkState::down_now());
    let (telemetry, _telemetry_rx) = mpsc::channel(64);
    let (_commands_tx, commands) = mpsc::channel(8);
    let (_config_tx, config) = mpsc::channel(8);
    let (outbound, _out_rx) = mpsc::channel(64);
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
    (log, agent)
}

fn base_config(data_dir: &Path) -> Config {
    std::fs::create_dir_all(data_dir).unwrap();
    Config::new(
        NodeId::new("branch-alsa").unwrap(),
        data_dir.to_path_buf(),
        MqttConfig {
            // Never reached: the uplink is not started.
            url: "mqtt://127.0.0.1:9".into(),
            ca_file: None,
            secret: Some("unused".into()),
            secret_file: None,
            keep_alive_s: 2,
        },
    )
}

/// Checks what the caller heard (the playback file): the menu prompt's
/// marker at its level, then the voicemail prompt. (On a loaded machine a
/// late session leaves gaps of silence in a prompt, so most of it is
/// asked for, not all.)
fn check_played(dir: &Path) {
    let played = from_bytes(&std::fs::read(dir.join("played.raw")).unwrap());
    let marker = tone_part(&played, MARKER_HZ, -16.0);
    assert!(
        marker.len() >= MARKER_SAMPLES / 2 && marker.len() <= MARKER_SAMPLES + 2 * BLOCK,
        "the menu prompt heard once: {} of {MARKER_SAMPLES} samples ({} played in all)",
        marker.len(),
        played.len()
    );
    assert_tone(
        "the menu prompt played on the ALSA device",
        &marker[BLOCK..marker.len() - BLOCK],
        MARKER_HZ,
        MARKER_DBM0,
    );
    let first = |hz: f64| {
        common::blocks_with(&played, hz, -16.0)
            .iter()
            .position(|on| *on)
    };
    let (menu_at, vm_at) = (first(MARKER_HZ).unwrap(), first(VM_PROMPT_HZ));
    assert!(
        vm_at.is_some_and(|vm| vm > menu_at),
        "the voicemail prompt after the menu: menu at block {menu_at}, voicemail prompt at {vm_at:?}"
    );
}

#[test]
fn a_gsm_call_with_voice_alsa_takes_the_key_and_the_voicemail_from_the_device_and_plays_the_prompts_on_it()
 {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("line-in.raw"), to_bytes(&caller_audio())).unwrap();
    run_child("child_gsm_call_through_alsa", dir.path());
    check_played(dir.path());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "run by a_gsm_call_with_voice_alsa_takes_the_key_and_the_voicemail_from_the_device_and_plays_the_prompts_on_it in a child process"]
async fn child_gsm_call_through_alsa() {
    let dir = child_dir();
    let data_dir = dir.join("data");
    let sim = SimModem::spawn(SimConfig {
        noise_interval: None,
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let mut line = ModemEntry::new("gsm0", sim.link().to_string_lossy());
    line.profile = crossline_modem::Profile::QuectelEc25;
    line.voice_alsa = Some(DEVICE.into());
    line.voice_alsa_pacing = AlsaPacing::Clock;
    let mut base = base_config(&data_dir);
    base.modems = vec![line];
    let shutdown = CancellationToken::new();
    let (log, agent) = start_appliance(base, &shutdown).await;
    sim.wait_until("the modem initialised", WAIT, |s| {
        s.commands().iter().any(|c| c == "AT+CLIP=1")
    })
    .await
    .unwrap();

    sim.inject_call("+380501234567");
    // The IVR takes the key and the message from the device, ends the
    // voicemail on silence and hangs up.
    let events = common::ended_call(&log).await;
    let vm = voicemail_call(
        &events,
        "gsm0",
        Some("+380501234567"),
        CallEndCause::IvrHungUp,
    );
    assert!(
        sim.commands().iter().any(|c| c == "AT+QPCMV=1,2"),
        "the modem's audio was sent to USB audio: {:?}",
        sim.commands()
    );
    let recorded = spooled_voicemail(&data_dir, &vm);
    assert_caller_message(&recorded, 8_000);
    assert_no_prompt(&recorded);
    shutdown.cancel();
    tokio::time::timeout(WAIT, agent)
        .await
        .expect("the fleet agent stops")
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn a_device_that_does_not_open_is_an_error_naming_the_line_the_device_and_what_to_check() {
    let alsa = AlsaLine {
        line: "gsm7".into(),
        device: "crossline_no_such_pcm".into(),
        pacing: AlsaPacing::Device,
    };
    let err = alsa.open().await.unwrap_err();
    for part in ["gsm7", "crossline_no_such_pcm", "aplay -L", "voice_alsa"] {
        assert!(err.contains(part), "{part:?} missing from: {err}");
    }
}

/// The caller ID the exchange sends, on the line's ALSA device only (the
/// simulated line sends none over the link).
const FXO_NUMBER: &str = "0501234567";

/// Feeds the FIFO the line's ALSA device captures from: 20 ms frames, the
/// queued samples or silence, as fast as the device reads them (the pipe
/// holds 4 KiB, about 250 ms: what is queued is heard that soon whatever
/// the load), until the device closes (or two minutes passed). Returns the
/// queue.
fn feed_line_in(fifo: PathBuf) -> Arc<Mutex<VecDeque<i16>>> {
    let queue = Arc::new(Mutex::new(VecDeque::new()));
    let q = Arc::clone(&queue);
    std::thread::spawn(move || {
        // Waits until the device opens its infile.
        let mut f = std::fs::OpenOptions::new().write(true).open(fifo).unwrap();
        nix::fcntl::fcntl(&f, nix::fcntl::FcntlArg::F_SETPIPE_SZ(4096)).unwrap();
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(120) {
            let frame: Vec<i16> = {
                let mut q = q.lock().unwrap();
                (0..crossline_audio::FRAME_SAMPLES)
                    .map(|_| q.pop_front().unwrap_or(0))
                    .collect()
            };
            // Blocks while the pipe is full: the device's pace.
            if f.write_all(&to_bytes(&frame)).is_err() {
                return; // the device closed
            }
        }
    });
    queue
}

async fn wait_line(line: &SharedSimLine, what: &str, cond: impl Fn(&SimLine) -> bool) {
    common::wait_until(
        what,
        || std::future::ready(line.with(|l, _| cond(l)).then_some(())),
        || format!("line log: {:?}", line.with(|l, _| l.log().to_vec())),
    )
    .await;
}

#[test]
fn an_analog_line_with_voice_alsa_gets_caller_id_key_and_voicemail_from_the_device_and_plays_the_prompts_on_it()
 {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("line-in.raw");
    let made = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(made.success(), "mkfifo {}", fifo.display());
    run_child("child_fxo_call_through_alsa", dir.path());
    check_played(dir.path());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "run by an_analog_line_with_voice_alsa_gets_caller_id_key_and_voicemail_from_the_device_and_plays_the_prompts_on_it in a child process"]
async fn child_fxo_call_through_alsa() {
    let dir = child_dir();
    let data_dir = dir.join("data");
    let line_in = feed_line_in(dir.join("line-in.raw"));
    let push = |samples: Vec<i16>| line_in.lock().unwrap().extend(samples);

    let line = crossline_line::LineConfig::default(); // EU, ETSI FSK caller ID
    let standard = line.caller_id_standard();
    let socket = dir.join("fxo0.sock");
    let (sim, _pins) = SimLine::new(
        SimLineConfig::matching(&line),
        tokio::time::Instant::now().into_std(),
    );
    let sim = sim.serve(&socket, Duration::from_millis(2)).unwrap();
    let mut entry = FxoEntry::new("fxo0", Port::Link { path: socket });
    entry.line = line;
    entry.voice_alsa = Some(DEVICE.into());
    entry.voice_alsa_pacing = AlsaPacing::Clock;
    let mut base = base_config(&data_dir);
    base.fxo = vec![entry];
    base.validate().unwrap();
    let shutdown = CancellationToken::new();
    let (log, agent) = start_appliance(base, &shutdown).await;
    wait_line(
        &sim,
        "the appliance's driver on the line link",
        SimLine::linked,
    )
    .await;

    // The exchange rings (1 s ring, 4 s pause) with no caller ID on the
    // link; the caller ID comes on the device, in the pause after the
    // first ring.
    sim.with(|l, now| {
        l.place_call(
            now,
            IncomingCall {
                caller_id: None,
                give_up_after: None,
                script: Vec::new(),
            },
        );
    });
    wait_line(&sim, "ringing", |l| l.saw(&SimLineEvent::RingingStarted)).await;
    let mut cid = vec![0; 1300 * SAMPLES_PER_MS];
    cid.extend(crossline_audio::cid::encode(
        &CallerId::number(FXO_NUMBER),
        standard,
    ));
    push(cid);
    wait_line(&sim, "the line answered", |l| {
        l.saw(&SimLineEvent::Answered)
    })
    .await;
    // From the answer: what caller_audio() says after its start.
    push(
        caller_audio()
            .into_iter()
            .take(12_000 * SAMPLES_PER_MS)
            .collect(),
    );

    let events = common::ended_call(&log).await;
    let vm = voicemail_call(&events, "fxo0", Some(FXO_NUMBER), CallEndCause::IvrHungUp);
    let recorded = spooled_voicemail(&data_dir, &vm);
    assert_caller_message(&recorded, 8_000);
    assert!(
        sim.with(|l, _| l.heard().iter().all(|s| *s == 0)),
        "nothing was played over the link: the prompts went to the device"
    );
    shutdown.cancel();
    tokio::time::timeout(WAIT, agent)
        .await
        .expect("the fleet agent stops")
        .unwrap()
        .unwrap();
}

/// An analog line whose device does not open keeps running without audio:
/// the call rings through (without a number: the caller ID on the link is
/// not its audio) and the IVR answers it. Runs in this process: alsa-lib's
/// own configuration has no such device.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_analog_line_whose_device_does_not_open_still_reports_and_answers_its_calls() {
    let dir = tempfile::tempdir().unwrap();
    let line = crossline_line::LineConfig::default();
    let socket = dir.path().join("fxo0.sock");
    let (sim, _pins) = SimLine::new(
        SimLineConfig::matching(&line),
        tokio::time::Instant::now().into_std(),
    );
    let sim = sim.serve(&socket, Duration::from_millis(2)).unwrap();
    let mut entry = FxoEntry::new("fxo0", Port::Link { path: socket });
    entry.line = line;
    entry.voice_alsa = Some("crossline_no_such_pcm".into());
    let mut base = base_config(&dir.path().join("data"));
    base.fxo = vec![entry];
    let shutdown = CancellationToken::new();
    let (log, agent) = start_appliance(base, &shutdown).await;
    wait_line(
        &sim,
        "the appliance's driver on the line link",
        SimLine::linked,
    )
    .await;
    sim.with(|l, now| {
        l.place_call(
            now,
            IncomingCall {
                caller_id: Some(CallerId::number(FXO_NUMBER)),
                give_up_after: None,
                script: Vec::new(),
            },
        );
    });
    let events = common::wait_until(
        "the call rung through and answered",
        || async {
            let evs = common::call_events(&log).await;
            (evs.len() >= 2).then_some(evs)
        },
        String::new,
    )
    .await;
    assert_eq!(
        common::kinds(&events[..2]),
        ["call_ringing", "call_answered"]
    );
    assert!(
        matches!(&events[0], crossline_core::EventBody::CallRinging { from: None, line, .. } if line == "fxo0"),
        "{events:?}"
    );
    wait_line(&sim, "the line answered", |l| {
        l.saw(&SimLineEvent::Answered)
    })
    .await;
    shutdown.cancel();
    tokio::time::timeout(WAIT, agent)
        .await
        .expect("the fleet agent stops")
        .unwrap()
        .unwrap();
}
