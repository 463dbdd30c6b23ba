//! Call audio through real PTYs: the simulated modem's voice port carries
//! PCM only after the profile's own command, the driver's VoiceStream gets
//! the caller's tone and the caller hears the driver's tone, hang-up stops
//! the audio, and the wrong command is reported.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::{Rig, WAIT};
use crossline_audio::goertzel::{level_dbm0, peak_frequency, rms_dbm0};
use crossline_audio::tones::mix;
use crossline_modem::voice::FRAME_SAMPLES;
use crossline_modem::{CallEvent, ModemEvent, VoiceFrame, VoiceStats, VoiceStream};
use crossline_sim::{Profile, SimConfig};
use tokio::time::Instant;

fn with_voice(cfg: &mut crossline_modem::ModemConfig) {
    cfg.voice_port = Some(format!("{}.voice", cfg.port));
    cfg.voice_start_timeout = Duration::from_millis(800);
}

async fn rig(profile: Profile, tweak: impl FnOnce(&mut crossline_modem::ModemConfig)) -> Rig {
    Rig::new(
        SimConfig {
            profile,
            ..SimConfig::default()
        },
        |c| {
            with_voice(c);
            tweak(c);
        },
    )
    .await
}

/// Collects the caller's voice until `n` samples with sound in them came.
async fn receive_sound(stream: &mut VoiceStream, n: usize) -> Vec<i16> {
    let deadline = Instant::now() + WAIT;
    let mut got = Vec::new();
    while got.len() < n {
        let f = tokio::time::timeout_at(deadline, stream.recv_frame())
            .await
            .unwrap_or_else(|_| panic!("only {} samples of sound within {WAIT:?}", got.len()))
            .expect("the stream ended during the call");
        if f.iter().any(|s| *s != 0) {
            got.extend_from_slice(&f);
        }
    }
    got
}

/// Sends `pcm` in frames, one every 20 ms (as a prompt player would).
async fn send_paced(stream: &VoiceStream, pcm: &[i16]) {
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    for chunk in pcm.chunks(FRAME_SAMPLES) {
        tick.tick().await;
        let mut f: VoiceFrame = [0; FRAME_SAMPLES];
        f[..chunk.len()].copy_from_slice(chunk);
        stream.send_frame(f).await.unwrap();
    }
}

fn assert_tone(what: &str, samples: &[i16], hz: f32, dbm0: f32) {
    let (f, level) = peak_frequency(samples, 200.0, 3400.0).unwrap();
    assert!(
        (f - hz).abs() < 10.0,
        "{what}: peak at {f} Hz, expected {hz}"
    );
    assert!(
        (level - dbm0).abs() < 1.5,
        "{what}: {level} dBm0, expected {dbm0}"
    );
    assert!(
        level_dbm0(samples, hz * 1.5) < dbm0 - 20.0,
        "{what}: not a clean tone"
    );
}

async fn two_way_call(profile: Profile, on: &str, off: Option<&str>) {
    let mut rig = rig(profile, |_| {}).await;
    rig.answer_incoming("+380501112233").await;
    let mut stream = rig.modem.voice().await.unwrap();
    assert!(rig.sim.voice_flowing(), "{profile}: audio not flowing");
    assert!(
        rig.sim.commands().iter().any(|c| c == on),
        "{profile}: {on} not given; commands {:?}",
        rig.sim.commands()
    );
    // the caller speaks: 1 kHz at -10 dBm0 for 600 ms
    rig.sim.far_end_play(mix(&[(1000.0, -10.0)], 4800));
    let heard_here = receive_sound(&mut stream, 3200).await;
    assert_tone(&format!("{profile} downlink"), &heard_here, 1000.0, -10.0);
    // we speak: 440 Hz at -15 dBm0 for 600 ms
    send_paced(&stream, &mix(&[(440.0, -15.0)], 4800)).await;
    rig.sim
        .wait_until("the caller heard our tone", WAIT, |m| {
            // a loaded machine may drop a frame or two (counted): most is enough
            m.far_end_heard().len() >= 3200
        })
        .await
        .unwrap();
    let heard_there = rig.sim.far_end_heard();
    assert_tone(
        &format!("{profile} uplink"),
        heard_there.get(160..3040).unwrap(),
        440.0,
        -15.0,
    );
    let live = stream.stats();
    assert!(
        live.frames_from_modem >= 20 && live.frames_to_modem >= 20,
        "{live:?}"
    );
    rig.modem.hangup().await.unwrap();
    let stats = rig
        .wait_for("voice stats", |e| matches!(e, ModemEvent::VoiceStats(_)))
        .await;
    let ModemEvent::VoiceStats(stats) = stats else {
        unreachable!()
    };
    check_stats(&stats, on);
    rig.wait_for("ended", |e| {
        matches!(e, ModemEvent::Call(CallEvent::Ended { .. }))
    })
    .await;
    // frames already queued are still handed over, then the stream ends
    let ends = async { while stream.recv_frame().await.is_some() {} };
    tokio::time::timeout(Duration::from_secs(2), ends)
        .await
        .unwrap_or_else(|_| panic!("{profile}: the stream outlived the call"));
    assert!(stream.send_frame([0; FRAME_SAMPLES]).await.is_err());
    if let Some(off) = off {
        assert!(
            rig.sim.commands().iter().any(|c| c == off),
            "{profile}: {off} not given at hang-up"
        );
    }
    assert!(!rig.sim.voice_flowing());
    assert!(
        !rig.seen
            .iter()
            .any(|e| matches!(e, ModemEvent::Warning(w) if w.contains("no audio"))),
        "{profile}: {:?}",
        rig.seen
    );
}

fn check_stats(s: &VoiceStats, command: &str) {
    assert_eq!(s.command, command);
    assert_eq!(s.line, "gsm0");
    assert!(s.frames_from_modem >= 20, "{s:?}");
    assert!(s.frames_to_modem >= 20, "{s:?}");
    assert_eq!(s.bytes_to_modem, s.frames_to_modem * 320);
    // within voice_start_timeout (else the silence warning would be due)
    assert!(s.first_audio_ms.is_some_and(|ms| ms < 800), "{s:?}");
    assert_eq!(s.one_way(), None);
    assert_eq!(s.reopens, 0);
}

#[tokio::test]
async fn quectel_call_audio_both_ways_over_qpcmv() {
    two_way_call(Profile::QuectelEc25, "AT+QPCMV=1,0", Some("AT+QPCMV=0")).await;
}

#[tokio::test]
async fn simcom_call_audio_both_ways_over_cpcmreg() {
    two_way_call(Profile::Sim7600, "AT+CPCMREG=1", Some("AT+CPCMREG=0")).await;
}

#[tokio::test]
async fn huawei_call_audio_both_ways_over_ddsetex() {
    two_way_call(Profile::HuaweiE173, "AT^DDSETEX=2", None).await;
}

#[tokio::test]
async fn outgoing_simcom_call_gets_audio_and_a_remote_hang_up_stops_it() {
    let mut rig = rig(Profile::Sim7600, |_| {}).await;
    rig.modem.dial("+380501112233").await.unwrap();
    rig.wait_for("connected", |e| {
        matches!(e, ModemEvent::Call(CallEvent::Connected))
    })
    .await;
    // a prompt player and a listener in two tasks
    let (mut rx, tx) = rig.modem.voice().await.unwrap().split();
    let player = tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(20));
        for chunk in mix(&[(600.0, -12.0)], 4000).chunks(FRAME_SAMPLES) {
            tick.tick().await;
            let mut f: VoiceFrame = [0; FRAME_SAMPLES];
            f[..chunk.len()].copy_from_slice(chunk);
            tx.send_frame(f).await.unwrap();
        }
    });
    rig.sim.far_end_play(mix(&[(1500.0, -12.0)], 2400));
    let deadline = Instant::now() + WAIT;
    let mut heard = Vec::new();
    while heard.len() < 1600 {
        let f = tokio::time::timeout_at(deadline, rx.recv_frame())
            .await
            .unwrap()
            .unwrap();
        if f.iter().any(|s| *s != 0) {
            heard.extend_from_slice(&f);
        }
    }
    assert_tone("SIM7600 outgoing downlink", &heard, 1500.0, -12.0);
    player.await.unwrap();
    rig.sim
        .wait_until("the callee heard the prompt", WAIT, |m| {
            m.far_end_heard().len() >= 3200
        })
        .await
        .unwrap();
    assert_tone(
        "SIM7600 outgoing uplink",
        rig.sim.far_end_heard().get(..3040).unwrap(),
        600.0,
        -12.0,
    );
    rig.sim.remote_hangup();
    let ModemEvent::VoiceStats(s) = rig
        .wait_for("voice stats", |e| matches!(e, ModemEvent::VoiceStats(_)))
        .await
    else {
        unreachable!()
    };
    assert!(s.frames_from_modem >= 10, "{s:?}");
    rig.wait_for("ended", |e| {
        matches!(e, ModemEvent::Call(CallEvent::Ended { .. }))
    })
    .await;
    assert!(rig.sim.commands().iter().any(|c| c == "AT+CPCMREG=0"));
}

#[tokio::test]
async fn keys_the_modem_detects_become_call_events() {
    for profile in [Profile::QuectelEc25, Profile::Sim7600, Profile::HuaweiE173] {
        let mut rig = Rig::new(
            SimConfig {
                profile,
                ..SimConfig::default()
            },
            |_| {},
        )
        .await;
        rig.answer_incoming("+380501112233").await;
        rig.sim.remote_dtmf("4#");
        let mut keys = String::new();
        while keys.len() < 2 {
            if let ModemEvent::Call(CallEvent::Dtmf { digit }) = rig
                .wait_for("a key", |e| {
                    matches!(e, ModemEvent::Call(CallEvent::Dtmf { .. }))
                })
                .await
            {
                keys.push(digit);
            }
        }
        assert_eq!(keys, "4#", "{profile}");
    }
}

#[tokio::test]
async fn the_voice_port_re_enumerating_mid_call_is_reopened() {
    let mut rig = rig(Profile::QuectelEc25, |_| {}).await;
    rig.answer_incoming("+380501112233").await;
    let mut stream = rig.modem.voice().await.unwrap();
    rig.sim.far_end_play(mix(&[(700.0, -10.0)], 1600));
    receive_sound(&mut stream, 800).await;
    rig.sim.replug_voice().await.unwrap();
    // the pump reads EIO, reopens by path, and audio comes again
    while rig.sim.far_end_queued() > 0 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    rig.sim.far_end_play(mix(&[(1200.0, -10.0)], 4000));
    // skip what was still on its way (the end of the first tone, silence)
    // up to the first whole frame of the new tone
    let deadline = Instant::now() + WAIT;
    loop {
        let f = tokio::time::timeout_at(deadline, stream.recv_frame())
            .await
            .expect("no 1200 Hz after the reopen")
            .unwrap();
        if level_dbm0(&f, 1200.0) > -10.5 {
            break;
        }
    }
    let after = receive_sound(&mut stream, 1600).await;
    assert_tone("after reopen", &after, 1200.0, -10.0);
    assert!(stream.stats().reopens >= 1, "{:?}", stream.stats());
    rig.modem.hangup().await.unwrap();
}

#[tokio::test]
async fn stale_bytes_before_the_call_and_a_stray_byte_mid_call_leave_the_audio_aligned() {
    let mut rig = rig(Profile::QuectelEc25, |_| {}).await;
    // an earlier call's leftovers, an odd count: dropped before the command
    rig.sim.inject_voice_bytes(&[0x11; 161]).await.unwrap();
    // the driver only opens the port at connect: keep the bytes waiting
    rig.answer_incoming("+380501112233").await;
    let mut stream = rig.modem.voice().await.unwrap();
    rig.sim.far_end_play(mix(&[(500.0, -20.0)], 16000));
    let first = receive_sound(&mut stream, 1600).await;
    assert_tone("before the glitch", &first, 500.0, -20.0);
    // one stray byte between frames: every later sample is off by one
    rig.sim.inject_voice_bytes(&[0x7f]).await.unwrap();
    let deadline = Instant::now() + WAIT;
    while stream.stats().realigned == 0 {
        assert!(
            Instant::now() < deadline,
            "never realigned: {:?}",
            stream.stats()
        );
        let _ = tokio::time::timeout_at(deadline, stream.recv_frame()).await;
    }
    // frames rebuilt before the boundary moved may still be queued: skip
    // to the first clean one (a misaligned frame is loud noise)
    loop {
        let f = tokio::time::timeout_at(deadline, stream.recv_frame())
            .await
            .expect("no clean frame after realignment")
            .unwrap();
        if (rms_dbm0(&f) + 20.0).abs() < 1.0 {
            break;
        }
    }
    let after = receive_sound(&mut stream, 1600).await;
    assert_tone("after realignment", &after, 500.0, -20.0);
    assert_eq!(stream.stats().realigned, 1, "{:?}", stream.stats());
    rig.modem.hangup().await.unwrap();
}

#[tokio::test]
async fn caller_dtmf_arrives_in_band() {
    let mut rig = rig(Profile::QuectelEc25, |_| {}).await;
    rig.answer_incoming("+380501112233").await;
    let mut stream = rig.modem.voice().await.unwrap();
    rig.sim
        .far_end_play(crossline_audio::dtmf::generate("2", 100, 100, -10.0));
    let mut det = crossline_audio::dtmf::Detector::new();
    let deadline = Instant::now() + WAIT;
    let mut keys = String::new();
    while keys.is_empty() {
        let f = tokio::time::timeout_at(deadline, stream.recv_frame())
            .await
            .expect("no DTMF detected")
            .unwrap();
        keys.extend(det.push(&f).iter().map(|d| d.key));
    }
    assert_eq!(keys, "2");
}

#[tokio::test]
async fn a_command_that_routes_audio_elsewhere_raises_the_silence_warning() {
    // AT+QPCMV=1,2 sends the audio to USB audio class: OK, but the serial
    // voice port stays silent (the classic "answered, no sound").
    let mut rig = rig(Profile::QuectelEc25, |c| {
        c.voice_enable = Some("AT+QPCMV=1,2".into());
    })
    .await;
    rig.answer_incoming("+380501112233").await;
    let w = rig.wait_warning("no audio").await;
    assert!(w.contains("AT+QPCMV=1,2"), "{w}");
    assert!(w.contains("QuectelEc25"), "{w}");
    assert!(w.contains(".voice"), "{w}");
    rig.modem.hangup().await.unwrap();
    let ModemEvent::VoiceStats(s) = rig
        .wait_for("voice stats", |e| matches!(e, ModemEvent::VoiceStats(_)))
        .await
    else {
        unreachable!()
    };
    assert_eq!(s.frames_from_modem, 0);
    assert_eq!(s.one_way(), Some(crossline_modem::OneWay::NothingFromModem));
}

#[tokio::test]
async fn the_wrong_vendor_command_is_reported_and_the_call_has_no_stream() {
    // A SIM7600 profile configured for a Quectel modem: AT+CPCMREG=1 is ERROR.
    let mut rig = rig(Profile::QuectelEc25, |c| {
        c.profile = crossline_modem::Profile::SimcomSim7600;
    })
    .await;
    rig.answer_incoming("+380501112233").await;
    let w = rig.wait_warning("AT+CPCMREG=1").await;
    assert!(w.contains("SimcomSim7600"), "{w}");
    let err = rig.modem.voice().await.unwrap_err().to_string();
    assert!(err.contains("AT+CPCMREG=1"), "{err}");
    assert!(!rig.sim.voice_flowing());
}

#[tokio::test]
async fn without_a_voice_port_calls_are_signalling_only() {
    let mut rig = Rig::new(SimConfig::default(), |_| {}).await;
    rig.answer_incoming("+380501112233").await;
    let err = rig.modem.voice().await.unwrap_err().to_string();
    assert!(err.contains("voice_port"), "{err}");
    assert!(
        !rig.sim.commands().iter().any(|c| c.contains("QPCMV")),
        "{:?}",
        rig.sim.commands()
    );
    rig.modem.hangup().await.unwrap();
}

#[tokio::test]
async fn quectel_usb_audio_is_switched_on_and_left_to_the_application() {
    let mut rig = Rig::new(SimConfig::default(), |c| {
        c.voice_alsa = Some("hw:Android".into());
    })
    .await;
    rig.answer_incoming("+380501112233").await;
    let err = rig.modem.voice().await.unwrap_err().to_string();
    assert!(err.contains("hw:Android"), "{err}");
    assert!(rig.sim.commands().iter().any(|c| c == "AT+QPCMV=1,2"));
    rig.modem.hangup().await.unwrap();
    rig.wait_for("ended", |e| {
        matches!(e, ModemEvent::Call(CallEvent::Ended { .. }))
    })
    .await;
    assert!(rig.sim.commands().iter().any(|c| c == "AT+QPCMV=0"));
}

#[tokio::test]
async fn a_sim800_with_a_voice_port_configured_says_it_has_none() {
    let mut rig = rig(Profile::Sim800, |_| {}).await;
    rig.answer_incoming("+380501112233").await;
    let w = rig.wait_warning("SimcomSim800").await;
    assert!(w.contains("analog audio only"), "{w}");
    assert!(!rig.sim.commands().iter().any(|c| c.contains("CPCMREG")));
}

#[tokio::test]
async fn a_huawei_firmware_without_voice_is_named() {
    let mut rig = rig(Profile::HuaweiE173, |_| {}).await;
    rig.sim.fail_next("AT^CVOICE", "ERROR");
    rig.answer_incoming("+380501112233").await;
    let w = rig.wait_warning("AT^CVOICE?").await;
    assert!(w.contains("voice disabled"), "{w}");
    assert!(!rig.sim.commands().iter().any(|c| c.contains("DDSETEX")));
    let err = rig.modem.voice().await.unwrap_err().to_string();
    assert!(err.contains("voice disabled"), "{err}");
}
