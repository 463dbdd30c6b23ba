//! What the IVR call tests (ivr.rs on a GSM line, fxo.rs on an analog
//! line) check the same way: the tones the caller hears and the recording
//! holds, the call's events in the local log (waited for with a deadline),
//! the five events of a call that leaves a voicemail, and the voicemail in
//! the recordings spool.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crossline_appliance::log::LocalLog;
use crossline_appliance::recordings::Spool;
use crossline_audio::goertzel::{level_dbm0, peak_frequency};
use crossline_audio::wav::{Recorder, read_wav_8k_mono};
use crossline_core::{CallEndCause, CallId, EventBody};
use sha2::{Digest, Sha256};
use std::path::Path;
use std::time::Duration;
use tokio::time::Instant;

/// How long any wait of these tests may take.
pub const WAIT: Duration = Duration::from_secs(30);
/// 40 ms, the block tones are measured in.
pub const BLOCK: usize = 320;
/// The menu prompt's marker tone, as `MARKER_HZ=1400 scripts/ivr-prompts`
/// puts before each prompt.
pub const MARKER_HZ: f64 = 1400.0;
pub const MARKER_DBM0: f64 = -10.0;
/// The caller's message.
pub const VOICE_HZ: f64 = 700.0;
pub const VOICE_DBM0: f64 = -12.0;

pub type Log = LocalLog<crossline_store::SqliteStore>;

pub fn write_wav(path: &Path, samples: &[i16]) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let mut r = Recorder::create(path).unwrap();
    r.write(samples).unwrap();
    r.finish().unwrap();
}

/// For each 40 ms block of `samples`: whether `hz` sounds in it.
pub fn blocks_with(samples: &[i16], hz: f64, min_dbm0: f64) -> Vec<bool> {
    samples
        .chunks_exact(BLOCK)
        .map(|b| f64::from(level_dbm0(b, hz as f32)) >= min_dbm0)
        .collect()
}

/// The blocks of `samples` in which `hz` sounds, joined.
pub fn tone_part(samples: &[i16], hz: f64, min_dbm0: f64) -> Vec<i16> {
    samples
        .chunks_exact(BLOCK)
        .zip(blocks_with(samples, hz, min_dbm0))
        .filter(|(_, on)| *on)
        .flat_map(|(b, _)| b.iter().copied())
        .collect()
}

pub fn assert_tone(what: &str, samples: &[i16], hz: f64, dbm0: f64) {
    let (f, level) = peak_frequency(samples, 200.0, 3400.0)
        .unwrap_or_else(|| panic!("{what}: no tone in {} samples", samples.len()));
    assert!(
        (f64::from(f) - hz).abs() < 10.0,
        "{what}: peak at {f} Hz, expected {hz} Hz"
    );
    assert!(
        (f64::from(level) - dbm0).abs() < 1.5,
        "{what}: {level} dBm0, expected {dbm0} dBm0"
    );
}

/// Asserts that `recorded` holds at least `min_samples` of the caller's
/// message, at its frequency and level.
pub fn assert_caller_message(recorded: &[i16], min_samples: usize) {
    let voice = tone_part(recorded, VOICE_HZ, -20.0);
    assert!(
        voice.len() >= min_samples,
        "at least {min_samples} samples of the caller's message recorded, got {}",
        voice.len()
    );
    assert_tone(
        "the voicemail",
        &voice[BLOCK..voice.len() - BLOCK],
        VOICE_HZ,
        VOICE_DBM0,
    );
}

/// Asserts that the menu prompt is not in the caller's recording.
pub fn assert_no_prompt(recorded: &[i16]) {
    assert!(
        tone_part(recorded, MARKER_HZ, -30.0).is_empty(),
        "the prompt is not in the caller's recording"
    );
}

/// Waits until `cond` gives a value (checked every 20 ms), failing after
/// [`WAIT`] with `what` and what `seen` says then.
pub async fn wait_until<T, F: std::future::Future<Output = Option<T>>>(
    what: &str,
    mut cond: impl FnMut() -> F,
    seen: impl Fn() -> String,
) -> T {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(v) = cond().await {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for: {what} ({})",
            seen()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Call events in the local log, in order.
pub async fn call_events(log: &Log) -> Vec<EventBody> {
    use crossline_store::EventLog;
    let me = log.store().local_node().clone();
    log.store()
        .read_from(&me, 1, 10_000)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.body)
        .filter(|b| b.call_of().is_some())
        .collect()
}

/// The call events in the local log once `calls` calls have ended.
pub async fn ended_calls(log: &Log, calls: usize) -> Vec<EventBody> {
    let deadline = Instant::now() + WAIT;
    loop {
        let evs = call_events(log).await;
        let ended = evs
            .iter()
            .filter(|e| matches!(e, EventBody::CallEnded { .. }))
            .count();
        if ended >= calls {
            return evs;
        }
        assert!(
            Instant::now() < deadline,
            "{ended} of {calls} call_ended in the log: {evs:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The call's events in the local log, once it has ended.
pub async fn ended_call(log: &Log) -> Vec<EventBody> {
    ended_calls(log, 1).await
}

/// The kinds of `events`, in order.
pub fn kinds(events: &[EventBody]) -> Vec<&'static str> {
    events.iter().map(EventBody::kind).collect()
}

/// The voicemail a call left, as its events declared it.
#[derive(Debug, Clone)]
pub struct Voicemail {
    pub call: CallId,
    pub recording: crossline_core::RecordingId,
    /// The recording's length.
    pub duration_ms: u64,
    pub bytes: u64,
    pub sha256: String,
}

/// Checks the five events of a call that rang on `line` from `from`,
/// was answered by the IVR, where the caller pressed 2 in the main menu
/// and left a voicemail, and that ended with `cause`: each names the call,
/// the voicemail is within the connected time. Returns the voicemail.
pub fn voicemail_call(
    events: &[EventBody],
    line: &str,
    from: Option<&str>,
    cause: CallEndCause,
) -> Voicemail {
    assert_eq!(
        kinds(events),
        [
            "call_ringing",
            "call_answered",
            "ivr_choice",
            "voicemail_recorded",
            "call_ended"
        ],
        "{events:?}"
    );
    let EventBody::CallRinging {
        call,
        from: rang_from,
        line: rang_on,
        ..
    } = &events[0]
    else {
        unreachable!()
    };
    let call = *call;
    assert_eq!(
        (rang_from.as_deref(), rang_on.as_str()),
        (from, line),
        "the caller ID and the line: {events:?}"
    );
    assert_eq!(
        events[1],
        EventBody::CallAnswered {
            call,
            by: "ivr".into()
        }
    );
    assert_eq!(
        events[2],
        EventBody::IvrChoice {
            call,
            menu: "main".into(),
            digit: "2".into(),
            action: "voicemail".into()
        }
    );
    let EventBody::VoicemailRecorded {
        call: vm_call,
        recording,
        duration_ms,
        bytes,
        sha256,
    } = &events[3]
    else {
        unreachable!()
    };
    assert_eq!(*vm_call, call);
    let EventBody::CallEnded {
        call: end_call,
        cause: ended_by,
        duration_ms: connected_ms,
        ..
    } = &events[4]
    else {
        unreachable!()
    };
    assert_eq!((*end_call, *ended_by), (call, cause), "{events:?}");
    assert!(*connected_ms >= *duration_ms, "{events:?}");
    Voicemail {
        call,
        recording: *recording,
        duration_ms: *duration_ms,
        bytes: *bytes,
        sha256: sha256.clone(),
    }
}

/// Checks that the voicemail waits in `data_dir`'s spool for mgmt, alone
/// and as declared (size and sha256 of the file); returns its samples.
pub fn spooled_voicemail(data_dir: &Path, vm: &Voicemail) -> Vec<i16> {
    let pending = Spool::open(data_dir).unwrap().pending();
    assert_eq!(pending.len(), 1, "{pending:?}");
    assert_eq!(pending[0].0, vm.recording);
    assert_eq!(
        (pending[0].1.bytes, pending[0].1.sha256.as_str()),
        (vm.bytes, vm.sha256.as_str())
    );
    let wav = data_dir
        .join("recordings")
        .join(format!("{}.wav", vm.recording));
    let file = std::fs::read(&wav).unwrap();
    assert_eq!(file.len() as u64, vm.bytes);
    let digest: String = Sha256::digest(&file)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(digest, vm.sha256);
    read_wav_8k_mono(&wav).unwrap()
}
