//! Calls across real processes (issue 14): simulated modems on PTYs (in
//! this test process), the real `crossline-appliance` binary driving them,
//! the real `crossline-mgmt` binary with its embedded broker and HTTP API.
//! A call (RING + CLIP, then the caller hangs up) reaches mgmt as a call in
//! the same conversation as an earlier SMS from that number, with its
//! duration and end cause; with the uplink down it is synced after it
//! returns.
//!
//! With an IVR on the appliance (its `[ivr]` and call audio on gsm0's
//! voice port), a call is answered, the caller hears the menu, presses 2
//! in the call audio and leaves a voicemail: mgmt shows the call with the
//! choice and the voicemail in the SMS's conversation, and serves the
//! recording (ranges) to a signed-in supervisor; the same with the uplink
//! down, synced after it returns.
//!
//! An analog line (`[[fxo]]`) on the appliance, the simulated line served
//! on a line link from this process: it rings with the EU cadence and an
//! ETSI FSK caller ID between the rings; the IVR answers, the caller hears
//! the menu, presses 2 in the line audio, leaves a voicemail and hangs up:
//! mgmt shows the call on `fxo0`, with the choice and the voicemail, in the
//! conversation of the caller's earlier SMS.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crossline_tests::branch::Branch;
use crossline_tests::wait_for_async;
use serde_json::Value;
use std::time::Duration;

/// The conversation (with its calls) holding an inbound SMS `text`.
fn conversation_with(b: &Branch, text: &str) -> Option<Value> {
    b.conversations().into_iter().find_map(|c| {
        let d = b.get(&format!(
            "/api/v1/conversations/{}",
            c["id"].as_str().unwrap()
        ));
        d["timeline"]
            .as_array()?
            .iter()
            .any(|e| e["text"] == text)
            .then_some(d)
    })
}

/// Rings the branch from `number` on its first line until the appliance
/// has seen the call, then the caller hangs up (the line rang out:
/// nobody answers without an IVR).
async fn missed_call(b: &Branch, number: &str) {
    b.sims[0].inject_call(number);
    b.sims[0]
        .wait_until(
            "the call to ring on the simulated modem",
            Duration::from_secs(10),
            |s| !s.calls().is_empty(),
        )
        .await
        .unwrap();
    // The appliance announces a call after its first RING and CLIP; the
    // caller gives up after a few rings (part of the scenario, not a
    // synchronisation: the call's ring time is what it measures).
    tokio::time::sleep(Duration::from_secs(3)).await;
    b.sims[0].remote_hangup();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missed_call_joins_the_conversation_of_an_earlier_sms_also_when_synced_late() {
    let tmp = tempfile::tempdir().unwrap();
    let mut b = Branch::start(tmp.path(), 3600).await;
    b.sims[0]
        .inject_sms("+380501234567", "Чи готове замовлення?")
        .unwrap();
    wait_for_async("the SMS at mgmt", Duration::from_secs(60), || async {
        conversation_with(&b, "Чи готове замовлення?")
    })
    .await;

    missed_call(&b, "+380501234567").await;
    let conv = wait_for_async(
        "the call in the SMS's conversation",
        Duration::from_secs(60),
        || async {
            conversation_with(&b, "Чи готове замовлення?")
                .filter(|d| d["calls"][0]["cause"] == "missed")
        },
    )
    .await;
    let call = &conv["calls"][0];
    assert_eq!(call["caller"], "+380501234567");
    assert_eq!(call["device"], "branch-1");
    assert_eq!(call["line"], "gsm0");
    assert_eq!(call["duration_ms"], 0, "never answered");
    let ring = call["ring_ms"].as_i64().unwrap();
    assert!((1_000..30_000).contains(&ring), "rang {ring} ms");
    assert_eq!(
        b.conversations().len(),
        1,
        "one conversation for SMS and call"
    );

    // The uplink goes down; a second call is logged on the branch and
    // reaches mgmt when the uplink is back.
    b.proxy.set_up(false);
    missed_call(&b, "+380501234567").await;
    // Give the appliance the chance to log it while mgmt cannot hear.
    b.sims[0]
        .wait_until("the call to end", Duration::from_secs(10), |s| {
            s.calls().is_empty()
        })
        .await
        .unwrap();
    b.proxy.set_up(true);
    let conv = wait_for_async(
        "the second call, synced after the uplink returned",
        Duration::from_secs(90),
        || async {
            conversation_with(&b, "Чи готове замовлення?")
                .filter(|d| d["calls"].as_array().is_some_and(|c| c.len() == 2))
        },
    )
    .await;
    let calls = conv["calls"].as_array().unwrap();
    assert_eq!(calls[1]["cause"], "missed");
    assert_eq!(calls[1]["caller"], "+380501234567");
    assert_ne!(calls[0]["id"], calls[1]["id"]);
    assert_eq!(b.conversations().len(), 1);
    assert!(b.app.sigterm());
    assert!(b.mgmt.sigterm());
}

// ---------------------------------------------------------------------------
// A call through the branch's IVR (issue 14), across the real processes.

/// The caller's number and their SMS before the call.
const CALLER: &str = "+380671234567";
const SMS: &str = "Я вам зателефоную щодо доставки";

/// The appliance's own IVR (its configuration file's `[ivr]`): 2 in the
/// main menu leaves a voicemail.
const IVR_TOML: &str = r#"
[ivr]
languages = ["en"]
default_language = "en"
prompts = ["main", "voicemail", "thanks"]
entry = "main"

[ivr.menus.main]
prompt = "main"
timeout_s = 30
retries = 0

[ivr.menus.main.options]
"2" = { type = "voicemail" }

[ivr.voicemail]
prompt = "voicemail"
thanks_prompt = "thanks"
max_s = 60
silence_s = 30
"#;

/// The voicemail prompt is a square wave of exactly this amplitude: the
/// caller can tell when it has played (the path carries samples as they
/// are).
const VOICEMAIL_PROMPT_AMP: i16 = 1234;

/// `ms` of the sum of sines at `hz`, each of peak `amp`.
fn tone(hz: &[f64], ms: usize, amp: f64) -> Vec<i16> {
    (0..ms * 8)
        .map(|i| {
            let t = i as f64 / 8000.0;
            hz.iter()
                .map(|f| amp * (std::f64::consts::TAU * f * t).sin())
                .sum::<f64>() as i16
        })
        .collect()
}

/// An 8 kHz mono 16-bit PCM WAV file.
fn wav(samples: &[i16]) -> Vec<u8> {
    let data = u32::try_from(samples.len() * 2).unwrap();
    let mut w = Vec::with_capacity(44 + samples.len() * 2);
    w.extend_from_slice(b"RIFF");
    w.extend_from_slice(&(36 + data).to_le_bytes());
    w.extend_from_slice(b"WAVEfmt ");
    w.extend_from_slice(&16u32.to_le_bytes());
    w.extend_from_slice(&1u16.to_le_bytes()); // PCM
    w.extend_from_slice(&1u16.to_le_bytes()); // mono
    w.extend_from_slice(&8000u32.to_le_bytes());
    w.extend_from_slice(&16000u32.to_le_bytes()); // bytes a second
    w.extend_from_slice(&2u16.to_le_bytes()); // block align
    w.extend_from_slice(&16u16.to_le_bytes());
    w.extend_from_slice(b"data");
    w.extend_from_slice(&data.to_le_bytes());
    for s in samples {
        w.extend_from_slice(&s.to_le_bytes());
    }
    w
}

/// Gives the appliance call audio on gsm0 and the IVR (its prompts in its
/// data dir), and restarts it with them.
async fn with_ivr(b: &mut Branch) {
    with_ivr_and(b, "").await;
}

/// [`with_ivr`], with `extra` configuration (more lines) too.
async fn with_ivr_and(b: &mut Branch, extra: &str) {
    // Once it runs (it has initialised the modem), it stops cleanly.
    b.sims[0]
        .wait_until("the appliance up", Duration::from_secs(30), |s| {
            s.commands().iter().any(|c| c == "AT+CLIP=1")
        })
        .await
        .unwrap();
    assert!(b.app.sigterm(), "the appliance stops");
    let port = format!("port = \"{}\"\n", b.sims[0].link().display());
    let voice = b.sims[0].voice_link().unwrap().display().to_string();
    let mut cfg = std::fs::read_to_string(&b.app.config).unwrap();
    assert!(cfg.contains(&port), "{cfg}");
    cfg = cfg.replacen(&port, &format!("{port}voice_port = \"{voice}\"\n"), 1);
    cfg.push_str(IVR_TOML);
    cfg.push_str(extra);
    std::fs::write(&b.app.config, cfg).unwrap();
    let prompts = b.app.data.join("prompts").join("en");
    std::fs::create_dir_all(&prompts).unwrap();
    // The menu: 3 s of 1400 Hz (the caller presses 2 while it plays).
    std::fs::write(
        prompts.join("main.wav"),
        wav(&tone(&[1400.0], 3000, 7000.0)),
    )
    .unwrap();
    let square: Vec<i16> = (0..3200)
        .map(|i| {
            if i % 16 < 8 {
                VOICEMAIL_PROMPT_AMP
            } else {
                -VOICEMAIL_PROMPT_AMP
            }
        })
        .collect();
    std::fs::write(prompts.join("voicemail.wav"), wav(&square)).unwrap();
    std::fs::write(
        prompts.join("thanks.wav"),
        wav(&tone(&[600.0], 300, 5000.0)),
    )
    .unwrap();
    b.app.start();
}

/// `CALLER` calls gsm0: hears the menu, presses 2 (DTMF in the call
/// audio), hears the voicemail prompt out, speaks for 1.5 s and hangs up.
async fn voicemail_call(b: &Branch) {
    let sim = &b.sims[0];
    let before = sim.far_end_heard().len();
    sim.inject_call(CALLER);
    sim.wait_until("the menu prompt heard", Duration::from_secs(30), |s| {
        s.far_end_heard()
            .get(before..)
            .is_some_and(|h| h.iter().filter(|x| x.abs() > 3000).count() > 800)
    })
    .await
    .unwrap();
    // 2: 697 Hz + 1336 Hz for 120 ms, then a pause.
    let mut key = tone(&[697.0, 1336.0], 120, 5000.0);
    key.extend(std::iter::repeat_n(0, 640));
    sim.far_end_play(key);
    sim.wait_until(
        "the voicemail prompt heard to its end",
        Duration::from_secs(30),
        |s| {
            let h = s.far_end_heard();
            let h = h.get(before..).unwrap_or_default();
            h.iter()
                .rposition(|x| x.abs() == VOICEMAIL_PROMPT_AMP)
                .is_some_and(|last| h.len() - last > 2400)
        },
    )
    .await
    .unwrap();
    let mut message = tone(&[700.0], 1500, 8000.0);
    message.extend(std::iter::repeat_n(0, 4000));
    sim.far_end_play(message);
    sim.wait_until("the message spoken", Duration::from_secs(30), |s| {
        s.far_end_queued() == 0
    })
    .await
    .unwrap();
    sim.remote_hangup();
    sim.wait_until("the call to end", Duration::from_secs(10), |s| {
        s.calls().is_empty()
    })
    .await
    .unwrap();
}

/// The conversation of `SMS` once it shows `n` calls, all ended.
async fn with_calls(b: &Branch, n: usize) -> Value {
    wait_for_async(
        &format!("{n} ended call(s) in the SMS's conversation"),
        Duration::from_secs(90),
        || async {
            conversation_with(b, SMS).filter(|d| {
                d["calls"]
                    .as_array()
                    .is_some_and(|c| c.len() == n && c.iter().all(|c| c["cause"].is_string()))
            })
        },
    )
    .await
}

/// A call on `line` as mgmt shows it: answered by the IVR, 2 chosen, a
/// voicemail; returns the recording's id and size.
fn check_ivr_call(call: &Value, line: &str) -> (String, i64) {
    assert_eq!(call["caller"], CALLER);
    assert_eq!(call["line"], line);
    assert_eq!(call["answered_by"], "ivr");
    assert_eq!(call["cause"], "caller_hung_up");
    let steps = call["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 2, "{steps:?}");
    assert_eq!(
        (
            &steps[0]["kind"],
            &steps[0]["menu"],
            &steps[0]["digit"],
            &steps[0]["action"]
        ),
        (
            &Value::from("ivr_choice"),
            &Value::from("main"),
            &Value::from("2"),
            &Value::from("voicemail")
        )
    );
    assert_eq!(steps[1]["kind"], "voicemail");
    let ms = steps[1]["duration_ms"].as_i64().unwrap();
    assert!((1_500..10_000).contains(&ms), "voicemail of {ms} ms");
    let bytes = steps[1]["bytes"].as_i64().unwrap();
    assert!(
        bytes > 8_000 * 2,
        "{bytes} bytes: more than a second of audio"
    );
    (steps[1]["recording"].as_str().unwrap().to_string(), bytes)
}

/// The agent's session cookie (a supervisor sees every conversation).
fn login(b: &Branch, password: &str) -> String {
    let (s, head, body) = crossline_tests::https_with(
        "POST",
        b.mgmt.https_port,
        "/login",
        &[
            ("Content-Type", "application/x-www-form-urlencoded"),
            ("Sec-Fetch-Site", "same-origin"),
        ],
        Some(&format!("login=sofia&password={password}&next=%2Fdesk")),
        &b.mgmt.ca_file(),
    )
    .unwrap();
    assert_eq!(s, 303, "login: {head}\n{body}");
    let cookie = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case("set-cookie")
                .then(|| v.trim().to_string())
        })
        .expect("a session cookie");
    cookie.split(';').next().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_through_the_ivr_leaves_a_playable_voicemail_in_the_conversation_of_an_earlier_sms()
{
    let tmp = tempfile::tempdir().unwrap();
    let mut password = String::new();
    let mut b = Branch::start_with(tmp.path(), 3600, |m| {
        let data = m.data.to_string_lossy().into_owned();
        password = crossline_tests::proc::run_ok(
            "crossline-mgmt",
            &[
                "--data-dir",
                &data,
                "user",
                "add",
                "sofia",
                "--role",
                "supervisor",
            ],
        )
        .trim()
        .to_string();
    })
    .await;
    with_ivr(&mut b).await;
    b.sims[0].inject_sms(CALLER, SMS).unwrap();
    wait_for_async("the SMS at mgmt", Duration::from_secs(60), || async {
        conversation_with(&b, SMS)
    })
    .await;

    voicemail_call(&b).await;
    let conv = with_calls(&b, 1).await;
    let (recording, bytes) = check_ivr_call(&conv["calls"][0], "gsm0");
    assert_eq!(
        b.conversations().len(),
        1,
        "one conversation for SMS and call"
    );

    // The voicemail reaches mgmt whole (the appliance deletes its copy only
    // then) and plays from the conversation's recording link, with ranges.
    let spool = b
        .app
        .data
        .join("recordings")
        .join(format!("{recording}.wav"));
    crossline_tests::wait_for(
        "the voicemail confirmed by mgmt",
        Duration::from_secs(60),
        || (!spool.exists()).then_some(()),
    );
    let cookie = login(&b, &password);
    let (s, head, body) = crossline_tests::https_with(
        "GET",
        b.mgmt.https_port,
        &format!("/recordings/{recording}"),
        &[("Cookie", &cookie), ("Range", "bytes=0-3")],
        None,
        &b.mgmt.ca_file(),
    )
    .unwrap();
    assert_eq!((s, body.as_str()), (206, "RIFF"), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains(&format!("content-range: bytes 0-3/{bytes}")),
        "{head}"
    );

    // With the uplink down the IVR takes a second call the same way; it
    // and its voicemail reach mgmt once the uplink is back.
    b.proxy.set_up(false);
    voicemail_call(&b).await;
    b.proxy.set_up(true);
    let conv = with_calls(&b, 2).await;
    let (second, _) = check_ivr_call(&conv["calls"][1], "gsm0");
    assert_ne!(second, recording);
    let spool = b.app.data.join("recordings").join(format!("{second}.wav"));
    crossline_tests::wait_for(
        "the second voicemail confirmed by mgmt",
        Duration::from_secs(90),
        || (!spool.exists()).then_some(()),
    );
    assert_eq!(b.conversations().len(), 1);
    assert!(b.app.sigterm());
    assert!(b.mgmt.sigterm());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_analog_call_with_fsk_caller_id_through_the_ivr_joins_the_conversation_of_an_earlier_sms()
 {
    use crossline_sim::line::{IncomingCall, SimLine, SimLineConfig};
    let tmp = tempfile::tempdir().unwrap();
    let mut b = Branch::start(tmp.path(), 3600).await;
    // The exchange's side of the analog line, served on a socket the
    // appliance's FXO driver connects to.
    let socket = tmp.path().join("fxo0.sock");
    let (line, _pins) = SimLine::new(
        SimLineConfig::matching(&crossline_line::LineConfig::default()),
        tokio::time::Instant::now().into_std(),
    );
    let line = line.serve(&socket, Duration::from_millis(2)).unwrap();
    with_ivr_and(
        &mut b,
        &format!(
            "\n[[fxo]]\nlabel = \"fxo0\"\nport = {{ kind = \"link\", path = \"{}\" }}\nline = {{ country = \"eu\" }}\n",
            socket.display()
        ),
    )
    .await;
    wait_for_async(
        "the appliance's analog line on its link",
        Duration::from_secs(30),
        || async { line.with(|l, _| l.linked()).then_some(()) },
    )
    .await;
    b.sims[0].inject_sms(CALLER, SMS).unwrap();
    wait_for_async("the SMS at mgmt", Duration::from_secs(60), || async {
        conversation_with(&b, SMS)
    })
    .await;

    line.with(|l, now| l.place_call(now, IncomingCall::from_number(CALLER)));
    wait_for_async("the menu prompt heard", Duration::from_secs(30), || async {
        line.with(|l, _| l.heard().iter().filter(|x| x.abs() > 3000).count() > 800)
            .then_some(())
    })
    .await;
    // 2: 697 Hz + 1336 Hz for 120 ms, then a pause.
    let mut key = tone(&[697.0, 1336.0], 120, 5000.0);
    key.extend(std::iter::repeat_n(0, 640));
    line.with(|l, _| l.far_end_play(key));
    wait_for_async(
        "the voicemail prompt heard to its end",
        Duration::from_secs(30),
        || async {
            line.with(|l, _| {
                let h = l.heard();
                h.iter()
                    .rposition(|x| x.abs() == VOICEMAIL_PROMPT_AMP)
                    .is_some_and(|last| h.len() - last > 2400)
            })
            .then_some(())
        },
    )
    .await;
    let mut message = tone(&[700.0], 1500, 8000.0);
    message.extend(std::iter::repeat_n(0, 4000));
    line.with(|l, _| l.far_end_play(message));
    wait_for_async("the message spoken", Duration::from_secs(30), || async {
        line.with(|l, _| l.far_end_queued() == 0).then_some(())
    })
    .await;
    line.with(|l, now| l.far_end_hang_up(now));
    wait_for_async("the line back on-hook", Duration::from_secs(10), || async {
        line.with(|l, _| !l.is_off_hook()).then_some(())
    })
    .await;

    let conv = with_calls(&b, 1).await;
    check_ivr_call(&conv["calls"][0], "fxo0");
    assert_eq!(
        b.conversations().len(),
        1,
        "one conversation for the SMS and the analog call"
    );
    assert!(b.app.sigterm());
    assert!(b.mgmt.sigterm());
}
