//! `crossline-bench voice`: what a call costs the branch appliance.
//!
//! * **CPU per active call**: the per-call audio work fed in 20 ms frames,
//!   one call-second at a time: G.711 A-law encode of what the caller hears
//!   and decode of what the caller says, the caller's frames through the
//!   jitter buffer (jitter, a loss and a reordering), DTMF detection and
//!   WAV recording of what comes out. `--runs` runs of `--call-seconds`
//!   each, in this process, one thread; min / median / max of the µs one
//!   call-second costs, and that as % of one core.
//! * **Audio path latency**: frames a simulated line sends, each told apart
//!   by its first sample, timed from the moment the simulator wrote the
//!   frame (just before its write: 320 bytes of PCM on the modem's voice
//!   PTY; one link message on the analog line's socket) until the same frame has gone
//!   through the DTMF detector and the WAV recorder the way the IVR session
//!   feeds them, through the appliance's own reading code: crossline-modem's
//!   driver and voice port (`ModemHandle::voice`, what the session reads
//!   for a GSM call), and for the analog line `crossline_line::open`'s link
//!   audio handed over through one bounded channel, as the lines service
//!   hands it to the session.
//! * **RSS**: the real `crossline-appliance` process (release build, beside
//!   this binary) with 4 simulated modems on PTYs (Quectel, with voice
//!   ports) and 2 simulated FXO lines on line links, an IVR in its file and
//!   no uplink (the broker's port is closed: it works offline); VmRSS idle,
//!   then while 6 simulated callers (one per line) go through the menu and
//!   leave voicemails at once, sampled every 100 ms, and VmHWM at the end.

use crate::fleet::status_kb;
use anyhow::{Context, Result, bail};
use crossline_audio::FRAME_SAMPLES;
use crossline_audio::dtmf::Detector;
use crossline_audio::g711;
use crossline_audio::jitter::{JitterBuffer, JitterConfig, Packet};
use crossline_audio::pcm::Frame;
use crossline_audio::wav::Recorder;
use crossline_sim::callers::{self, Outcome};
use crossline_sim::line::{SharedSimLine, SimLine, SimLineConfig};
use crossline_sim::{SimConfig, SimModem};
use crossline_tests::proc::Proc;
use std::path::Path;
use std::time::{Duration, Instant};

pub struct Options {
    pub runs: usize,
    pub call_seconds: u64,
    /// Frames timed per line kind.
    pub latency_frames: usize,
}

pub struct Figures {
    pub runs: usize,
    pub call_seconds: u64,
    /// µs of one core per call-second, per run.
    pub cpu_us: Vec<f64>,
    pub gsm_ms: Vec<f64>,
    pub fxo_ms: Vec<f64>,
    pub rss: Rss,
    pub load_before: String,
    pub load_after: String,
}

pub struct Rss {
    pub idle_mib: f64,
    pub calls_peak_mib: f64,
    pub hwm_mib: f64,
    pub voicemails: usize,
    pub calls: usize,
    pub failures: Vec<String>,
}

pub async fn run(o: &Options) -> Result<Figures> {
    let load_before = crate::load_average();
    let tmp = tempfile::tempdir()?;
    let mut cpu_us = Vec::new();
    for i in 0..o.runs.max(1) {
        eprintln!("voice: CPU run {}/{}", i + 1, o.runs);
        cpu_us.push(cpu_run(tmp.path(), o.call_seconds.max(1))?);
    }
    eprintln!("voice: GSM audio path latency");
    let gsm_ms = gsm_latency(o.latency_frames).await?;
    eprintln!("voice: analog audio path latency");
    let fxo_ms = fxo_latency(tmp.path(), o.latency_frames).await?;
    eprintln!("voice: RSS of crossline-appliance with 4 modems and 2 analog lines");
    let rss = rss(tmp.path()).await?;
    Ok(Figures {
        runs: o.runs.max(1),
        call_seconds: o.call_seconds.max(1),
        cpu_us,
        gsm_ms,
        fxo_ms,
        rss,
        load_before,
        load_after: crate::load_average(),
    })
}

// ---------------------------------------------------------------- CPU

/// One second of what a caller says: speech-like tones gliding under a
/// little noise, with a key (DTMF 5) in every fifth second.
fn caller_second(second: u64) -> Vec<i16> {
    let mut out = Vec::with_capacity(8000);
    let mut seed = 0x2545_F491_u32.wrapping_add(second as u32);
    for i in 0..8000u32 {
        let t = f64::from(i) / 8000.0;
        let f1 = 180.0 + 60.0 * (t * 3.0).sin();
        let f2 = 900.0 + 300.0 * (t * 2.0).cos();
        seed ^= seed << 13;
        seed ^= seed >> 17;
        seed ^= seed << 5;
        let noise = f64::from((seed >> 20) as i32 - 2048) * 0.5;
        let s = 4000.0 * (std::f64::consts::TAU * f1 * t).sin()
            + 2000.0 * (std::f64::consts::TAU * f2 * t).sin()
            + noise;
        out.push(s as i16);
    }
    if second.is_multiple_of(5) {
        let key = crossline_audio::dtmf::generate("5", 100, 60, -10.0);
        for (o, k) in out.iter_mut().skip(800).zip(key) {
            *o = k;
        }
    }
    out
}

/// Runs `seconds` call-seconds through the per-call audio work; returns
/// the µs one call-second took (wall time of this one thread).
fn cpu_run(dir: &Path, seconds: u64) -> Result<f64> {
    // Prepared before the clock starts: what the caller says (as A-law
    // codes, what a G.711 leg carries) and what the caller hears.
    let said: Vec<Vec<u8>> = (0..5)
        .map(|s| g711::alaw_encode_slice(&caller_second(s)))
        .collect();
    let prompt = crossline_audio::tones::mix(&[(1000.0, -12.0)], 160);
    // Arrival offsets within a second (µs) of its 50 packets: 0-40 ms of
    // jitter, packet 17 lost, 30 and 31 swapped.
    let mut arrivals: Vec<(u64, u16)> = (0..50u16)
        .filter(|&n| n != 17)
        .map(|n| {
            (
                u64::from(n) * 20_000 + 30_000 + u64::from(n) * 7919 % 40_000,
                n,
            )
        })
        .collect();
    arrivals.swap(29, 30);
    arrivals.sort_by_key(|a| a.0);
    let mut jb = JitterBuffer::new(JitterConfig::default());
    let mut detector = Detector::new();
    let path = dir.join("cpu.wav");
    let mut rec = Recorder::create(&path)?;
    let mut codes_out = Vec::with_capacity(FRAME_SAMPLES);
    let mut pcm_in = Vec::with_capacity(FRAME_SAMPLES);
    let mut digits = 0usize;
    let mut checksum = 0i64;
    let start = Instant::now();
    for second in 0..seconds {
        let base = second * 1_000_000;
        let codes = &said[(second % 5) as usize];
        let push = |jb: &mut JitterBuffer, pcm_in: &mut Vec<i16>, &(at, n): &(u64, u16)| {
            let seq = ((second * 50) as u16).wrapping_add(n);
            let from = usize::from(n) * FRAME_SAMPLES;
            let slice = codes.get(from..from + FRAME_SAMPLES).unwrap_or_default();
            pcm_in.clear();
            g711::alaw_decode_into(slice, pcm_in);
            let mut frame: Frame = [0; FRAME_SAMPLES];
            for (f, s) in frame.iter_mut().zip(pcm_in.iter()) {
                *f = *s;
            }
            jb.push(
                Packet {
                    seq,
                    timestamp: u32::from(seq).wrapping_mul(160),
                    frame,
                },
                Duration::from_micros(base + at),
            );
        };
        let mut pending = arrivals.iter().peekable();
        for k in 0..50u64 {
            let now = k * 20_000 + 7_000;
            // What the caller hears goes out as A-law.
            codes_out.clear();
            g711::alaw_encode_into(&prompt, &mut codes_out);
            checksum += i64::from(codes_out.first().copied().unwrap_or(0));
            // What the caller says arrives: decoded, into the jitter buffer.
            while let Some(p) = pending.next_if(|p| p.0 <= now) {
                push(&mut jb, &mut pcm_in, p);
            }
            // One frame every 20 ms out of the buffer: the recorder and the
            // detector, in the session's order.
            let out = jb.pop(Duration::from_micros(base + now));
            rec.write(&out.frame)?;
            digits += detector.push(&out.frame).len();
        }
        // The last packets of this second arrive during the next one.
        for p in pending {
            push(&mut jb, &mut pcm_in, p);
        }
    }
    let elapsed = start.elapsed();
    rec.finish()?;
    let _ = std::fs::remove_file(&path);
    std::hint::black_box((digits, checksum));
    if digits == 0 {
        bail!("the DTMF detector heard none of the keys: the benchmark's audio is wrong");
    }
    Ok(elapsed.as_secs_f64() * 1e6 / seconds as f64)
}

// ---------------------------------------------------------------- latency

/// Most frames timed per line kind: [`marker`] has this many values.
const MAX_MARKERS: usize = 120;

/// The value of marker frame `i` (< [`MAX_MARKERS`]): both bytes alike
/// (`0x0101 * (i + 1)`), so the frame reads the same a byte later and the
/// driver's alignment guard (which moves the frame boundary when a frame
/// read one byte later is much quieter) never takes it for a misaligned
/// stream, as it would a plain step of DC.
fn marker(i: usize) -> i16 {
    i16::try_from(0x0101 * (i + 1)).unwrap_or(i16::MAX)
}

/// `n` frames, frame `i` all [`marker`]`(i)`: whichever sample a
/// simulator's frame starts at tells which marker it carries.
fn marker_audio(n: usize) -> Vec<i16> {
    let mut out = Vec::with_capacity(n * FRAME_SAMPLES);
    for i in 0..n {
        out.extend(std::iter::repeat_n(marker(i), FRAME_SAMPLES));
    }
    out
}

/// The session's per-frame work on a received frame; returns the marker
/// index of the frame's first sample, if it is one. A simulator logs each
/// frame it writes by its first sample, so that names the same frame even
/// where the simulator's frames do not start where the markers do (the
/// analog line cuts its audio into frames on its own clock).
fn consume(frame: &Frame, rec: &mut Recorder, detector: &mut Detector, n: usize) -> Option<usize> {
    let _ = rec.write(frame);
    let _ = detector.push(frame);
    let k = usize::try_from(*frame.first()?).ok()?;
    let i = (k % 0x0101 == 0).then_some(k / 0x0101)?.checked_sub(1)?;
    (i < n).then_some(i)
}

/// Keeps the first time each marker's write was logged (the simulators
/// remember the last 256 writes only: read their logs as frames come).
fn note_sent(sent: &mut std::collections::HashMap<i16, Instant>, log: Vec<(Instant, i16)>) {
    for (at, first) in log {
        sent.entry(first).or_insert(at);
    }
}

fn latencies(sent: &std::collections::HashMap<i16, Instant>, got: &[(usize, Instant)]) -> Vec<f64> {
    got.iter()
        .filter_map(|&(i, at)| {
            let t0 = sent.get(&marker(i))?;
            Some(at.saturating_duration_since(*t0).as_secs_f64() * 1000.0)
        })
        .collect()
}

async fn wait<T>(what: &str, within: Duration, mut f: impl FnMut() -> Option<T>) -> Result<T> {
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = f() {
            return Ok(v);
        }
        if Instant::now() > deadline {
            bail!("{what}: not within {within:?}");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn gsm_latency(n: usize) -> Result<Vec<f64>> {
    use crossline_modem::{CallEvent, Modem, ModemConfig, ModemEvent, Profile, serial_opener};
    let n = n.clamp(1, MAX_MARKERS);
    let sim = SimModem::spawn(SimConfig::default()).await?;
    let path = sim.link().to_string_lossy().into_owned();
    let mut cfg = ModemConfig::new("gsm0", path.clone(), Profile::QuectelEc25);
    cfg.voice_port = sim.voice_link().map(|p| p.to_string_lossy().into_owned());
    let (modem, mut events) = Modem::start(cfg, serial_opener(path, 115_200));
    sim.wait_until("the driver set up", Duration::from_secs(30), |s| {
        s.commands().iter().any(|c| c == "AT+CLIP=1")
    })
    .await?;
    sim.inject_call("+380501112233");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        match tokio::time::timeout_at(deadline, events.recv()).await {
            Ok(Some(ModemEvent::Call(CallEvent::Incoming { .. }))) => break,
            Ok(Some(_)) => {}
            _ => bail!("the simulated call did not ring"),
        }
    }
    modem.answer().await.context("answering")?;
    let mut stream = modem.voice().await.context("the call's audio")?;
    let tmp = tempfile::tempdir()?;
    let mut rec = Recorder::create(tmp.path().join("gsm.wav"))?;
    let mut detector = Detector::new();
    sim.far_end_play(marker_audio(n));
    let mut got = Vec::new();
    let deadline = tokio::time::Instant::now()
        + Duration::from_secs(10)
        + n as u32 * Duration::from_millis(20);
    let mut sent = std::collections::HashMap::new();
    let gsm_log = |sim: &SimModem| -> Vec<(Instant, i16)> {
        sim.far_end_sent_log()
            .into_iter()
            .map(|(t, s)| (t.into_std(), s))
            .collect()
    };
    while got.len() < n {
        let Ok(Some(frame)) = tokio::time::timeout_at(deadline, stream.recv_frame()).await else {
            break;
        };
        if let Some(i) = consume(&frame, &mut rec, &mut detector, n) {
            got.push((i, Instant::now()));
            note_sent(&mut sent, gsm_log(&sim));
        }
    }
    let _ = modem.hangup().await;
    modem.shutdown().await;
    sim.shutdown().await;
    let ms = latencies(&sent, &got);
    if ms.len() < n / 2 {
        bail!(
            "GSM latency: {} of {n} frames timed ({} received, {} writes noted, e.g. {:?})",
            ms.len(),
            got.len(),
            sent.len(),
            sent.keys().take(12).collect::<Vec<_>>()
        );
    }
    Ok(ms)
}

async fn fxo_latency(dir: &Path, n: usize) -> Result<Vec<f64>> {
    use crossline_line::{LineConfig, LineEvent, Port};
    let n = n.clamp(1, MAX_MARKERS);
    let socket = dir.join("fxo-latency.sock");
    let cfg = LineConfig {
        name: "fxo0".into(),
        ..LineConfig::default()
    };
    let (line, _pins) = SimLine::new(
        SimLineConfig::matching(&cfg),
        tokio::time::Instant::now().into_std(),
    );
    let line = line.serve(&socket, Duration::from_millis(2))?;
    let opened = crossline_line::open(
        cfg,
        &Port::Link {
            path: socket.clone(),
        },
    )
    .await?;
    let mut events = opened.events;
    let driver = opened.driver;
    let Some(audio) = opened.audio else {
        bail!("a line link without audio");
    };
    let (mut from_line, _to_line) = audio.split();
    wait("the line linked", Duration::from_secs(10), || {
        line.with(|l, _| l.linked()).then_some(())
    })
    .await?;
    line.with(|l, now| {
        l.place_call(
            now,
            crossline_sim::line::IncomingCall::from_number("+380501112233"),
        )
    });
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        match tokio::time::timeout_at(deadline, events.recv()).await {
            Ok(Some(Ok(LineEvent::RingStarted))) => break,
            Ok(Some(_)) => {}
            _ => bail!("the simulated analog line did not ring"),
        }
    }
    driver.answer().context("answering the analog line")?;
    // The lines service hands the call's frames to the session through a
    // bounded channel; the same here, from a task of its own.
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Frame>(50);
    let forward = tokio::spawn(async move {
        while let Some(f) = from_line.recv_frame().await {
            let _ = tx.try_send(*f);
        }
    });
    wait("the line off-hook", Duration::from_secs(5), || {
        line.with(|l, _| l.is_off_hook()).then_some(())
    })
    .await?;
    let tmp = tempfile::tempdir()?;
    let mut rec = Recorder::create(tmp.path().join("fxo.wav"))?;
    let mut detector = Detector::new();
    line.with(|l, _| l.far_end_play(marker_audio(n)));
    let mut got = Vec::new();
    let deadline = tokio::time::Instant::now()
        + Duration::from_secs(10)
        + n as u32 * Duration::from_millis(20);
    let mut sent = std::collections::HashMap::new();
    while got.len() < n {
        let Ok(Some(frame)) = tokio::time::timeout_at(deadline, rx.recv()).await else {
            break;
        };
        if let Some(i) = consume(&frame, &mut rec, &mut detector, n) {
            got.push((i, Instant::now()));
            note_sent(&mut sent, line.with(|l, _| l.link_sent_log()));
        }
    }
    let _ = driver.hang_up();
    forward.abort();
    drop(line);
    let ms = latencies(&sent, &got);
    if ms.len() < n / 2 {
        bail!(
            "analog latency: {} of {n} frames timed ({} received, {} writes logged)",
            ms.len(),
            got.len(),
            sent.len()
        );
    }
    Ok(ms)
}

// ---------------------------------------------------------------- RSS

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

async fn rss(dir: &Path) -> Result<Rss> {
    let data = dir.join("appliance");
    std::fs::create_dir_all(&data)?;
    callers::beep_prompts(
        &data.join("prompts"),
        &["en".to_string()],
        &["main", "voicemail", "thanks"].map(String::from),
    )?;
    let mut toml = format!(
        "node_id = \"bench-voice\"\ndata_dir = \"{}\"\n[mqtt]\nurl = \"mqtt://127.0.0.1:{}\"\nsecret = \"not-used\"\n",
        data.display(),
        crossline_tests::free_port()
    );
    let mut modems = Vec::new();
    for i in 0..4 {
        let link = dir.join(format!("ttyGSM{i}"));
        let sim = SimModem::spawn(SimConfig {
            link: Some(link.clone()),
            own_number: format!("+38067000000{i}"),
            imei: format!("86000000000000{i}"),
            ..SimConfig::default()
        })
        .await?;
        let voice = sim
            .voice_link()
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        toml.push_str(&format!(
            "[[modems]]\nlabel = \"gsm{i}\"\nport = \"{}\"\nvoice_port = \"{voice}\"\nprofile = \"quectel_ec25\"\n",
            link.display()
        ));
        modems.push(sim);
    }
    let mut lines: Vec<SharedSimLine> = Vec::new();
    for i in 0..2 {
        let socket = dir.join(format!("fxo{i}.sock"));
        let (line, _pins) = SimLine::new(
            SimLineConfig::matching(&crossline_line::LineConfig::default()),
            tokio::time::Instant::now().into_std(),
        );
        lines.push(line.serve(&socket, Duration::from_millis(2))?);
        toml.push_str(&format!(
            "[[fxo]]\nlabel = \"fxo{i}\"\nport = {{ kind = \"link\", path = \"{}\" }}\nline = {{ country = \"eu\" }}\n",
            socket.display()
        ));
    }
    toml.push_str(IVR_TOML);
    let config = data.join("appliance.toml");
    std::fs::write(&config, toml)?;
    let cfg = config.to_string_lossy().into_owned();
    let app = Proc::spawn(
        "appliance",
        "crossline-appliance",
        &["run", "--config", &cfg],
        &data.join("appliance.log"),
        &[],
    );
    let pid = app.pid();
    for m in &modems {
        m.wait_until("the appliance's driver", Duration::from_secs(60), |s| {
            s.commands().iter().any(|c| c == "AT+CLIP=1")
        })
        .await?;
    }
    for l in &lines {
        wait(
            "the appliance's analog line",
            Duration::from_secs(60),
            || l.with(|l, _| l.linked()).then_some(()),
        )
        .await?;
    }
    // Idle: settled, then the highest of 10 s of samples.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let mut idle = 0f64;
    for _ in 0..20 {
        idle = idle.max(status_kb(pid, "VmRSS:") / 1024.0);
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // Six callers at once, one per line.
    let numbers: Vec<String> = (0..6).map(|i| format!("+38050111220{i}")).collect();
    let mut calls = tokio::task::JoinSet::new();
    for (m, number) in modems.iter().cloned().zip(numbers.iter().cloned()) {
        calls.spawn(async move { callers::call(&m, &number).await });
    }
    for (l, number) in lines.iter().cloned().zip(numbers.iter().skip(4).cloned()) {
        calls.spawn(async move { callers::call(&l, &number).await });
    }
    let mut peak = 0f64;
    let mut outcomes = Vec::new();
    loop {
        tokio::select! {
            r = calls.join_next() => match r {
                Some(r) => outcomes.push(r.context("a simulated caller")?),
                None => break,
            },
            _ = tokio::time::sleep(Duration::from_millis(100)) => {
                peak = peak.max(status_kb(pid, "VmRSS:") / 1024.0);
            }
        }
    }
    // The voicemails kept and logged.
    tokio::time::sleep(Duration::from_secs(2)).await;
    peak = peak.max(status_kb(pid, "VmRSS:") / 1024.0);
    let hwm = status_kb(pid, "VmHWM:") / 1024.0;
    let _ = app.sigterm(Duration::from_secs(20));
    for m in modems {
        m.shutdown().await;
    }
    let voicemails = outcomes
        .iter()
        .filter(|o| **o == Outcome::Voicemail)
        .count();
    let failures = outcomes
        .iter()
        .filter_map(|o| match o {
            Outcome::NoAnswer(why) => Some(why.clone()),
            Outcome::Voicemail => None,
        })
        .collect();
    Ok(Rss {
        idle_mib: idle,
        calls_peak_mib: peak,
        hwm_mib: hwm,
        voicemails,
        calls: outcomes.len(),
        failures,
    })
}

// ---------------------------------------------------------------- section

fn ms3(v: &[f64]) -> String {
    let (min, med, max) = crate::spread(v);
    format!("{min:.2} / **{med:.2}** / {max:.2} ms")
}

fn p99(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    let i = ((v.len() as f64) * 0.99).ceil() as usize;
    v.get(i.saturating_sub(1).min(v.len().saturating_sub(1)))
        .copied()
        .unwrap_or(0.0)
}

pub fn section(f: &Figures) -> String {
    let (cmin, cmed, cmax) = crate::spread(&f.cpu_us);
    let pct = |us: f64| us / 1e6 * 100.0;
    let calls = |us: f64| if us > 0.0 { 1e6 / us } else { 0.0 };
    let r = &f.rss;
    let verdict = if r.idle_mib < 20.0 && r.calls_peak_mib < 20.0 && r.hwm_mib < 20.0 {
        "under 20 MiB idle and with calls"
    } else {
        "**over 20 MiB**"
    };
    let failures = if r.failures.is_empty() {
        String::new()
    } else {
        format!(" Callers without a voicemail: {}.", r.failures.join("; "))
    };
    format!(
        "## voice\n\n\
`scripts/bench voice` ({profile} build, 2 cores shared with other work). \
CPU: {runs} run(s) of {secs} call-seconds each, one thread, fed in 20 ms frames; latency: {gsm_n} GSM and {fxo_n} analog frames; \
RSS: the real `crossline-appliance` process.\n\n\
| figure | min | median | max |\n|---|---|---|---|\n\
| CPU per call-second: G.711 A-law encode (what the caller hears) + decode (what the caller says) + jitter buffer + DTMF detection + WAV recording | {cmin:.0} µs | **{cmed:.0} µs** | {cmax:.0} µs |\n\
| the same as % of one core per active call | {pmin:.3} % | **{pmed:.3} %** | {pmax:.3} % |\n\
| calls one core could carry at that cost | {kmax:.0} | **{kmed:.0}** | {kmin:.0} |\n\n\
| audio path latency, one frame | min / median / max | p99 |\n|---|---|---|\n\
| GSM: simulated modem writes 320 bytes on the voice PTY (timed just before the write) → crossline-modem's voice port and driver → `VoiceStream::recv_frame` → WAV recorder + DTMF detector done | {gsm} | {gp99:.2} ms |\n\
| analog: simulated line writes the frame on the line link's socket (timed just before the write) → `crossline_line` link decoder → a bounded channel (as the lines service hands frames to the session) → WAV recorder + DTMF detector done | {fxo} | {fp99:.2} ms |\n\n\
| `crossline-appliance` RSS, 4 simulated modems (PTYs, voice ports) + 2 simulated FXO lines (line links), IVR configured, uplink down | MiB |\n|---|---|\n\
| idle (highest of 10 s of samples) | {idle:.1} |\n\
| 6 calls at once (one per line) through the IVR menu into voicemail: highest VmRSS sampled every 100 ms | {peak:.1} |\n\
| VmHWM (the process's peak) at the end | {hwm:.1} |\n\n\
RSS: {verdict}. {vm} of {nc} callers left a voicemail.{failures} \
What the latency is not: the simulator's own 20 ms pacing (each frame is timed from its own write), the modem's and the network's audio delay on real hardware, the ALSA buffering of a wired analog line (4 periods: up to 80 ms), and the lines service's busy-tone detector on the analog path (≈ 0.14 ms of CPU per call-second, docs/BENCHMARKS.md \"audio DSP\"). \
The machine's 1-minute load average was {lb} before and {la} after.\n",
        profile = if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        },
        runs = f.runs,
        secs = f.call_seconds,
        gsm_n = f.gsm_ms.len(),
        fxo_n = f.fxo_ms.len(),
        pmin = pct(cmin),
        pmed = pct(cmed),
        pmax = pct(cmax),
        kmax = calls(cmin),
        kmed = calls(cmed),
        kmin = calls(cmax),
        gsm = ms3(&f.gsm_ms),
        gp99 = p99(&f.gsm_ms),
        fxo = ms3(&f.fxo_ms),
        fp99 = p99(&f.fxo_ms),
        idle = r.idle_mib,
        peak = r.calls_peak_mib,
        hwm = r.hwm_mib,
        vm = r.voicemails,
        nc = r.calls,
        lb = f.load_before,
        la = f.load_after,
    )
}
