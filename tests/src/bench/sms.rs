//! `crossline-bench sms`: how long an incoming SMS takes from the modem's
//! `+CMTI` to being visible in mgmt's API and on its SSE stream (mgmt and
//! one appliance in this process, one simulated modem on a real PTY that
//! answers instantly), side by side with Debian's gammu-smsd storing the same
//! kind of message from the same kind of simulated modem in its inbox folder.

use anyhow::{Context, Result, bail};
use crossline_appliance::config::{ModemEntry, MqttConfig};
use crossline_core::NodeId;
use crossline_sim::{SimConfig, SimModem};
use crossline_store::DeviceRegistry;
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

/// The customer who texts the branch in every message.
const FROM: &str = "+380501234567";
/// Every message's text carries `MARK` and a six-digit index.
const MARK: &str = "smsbench";
/// Warm-up messages get indices from here (not measured).
const WARMUP_BASE: usize = 900_000;
/// How often the API poller and the inbox poller look.
const POLL: Duration = Duration::from_millis(1);
/// Longest line or chunk accepted from mgmt's stream.
const MAX_LINE: usize = 1 << 20;
const GAMMU_SMSD: &str = "/usr/bin/gammu-smsd";

pub struct Options {
    /// Messages through Crossline.
    pub messages: usize,
    /// Messages through gammu-smsd.
    pub gammu_messages: usize,
}

/// Sorted latencies of one series.
pub struct Stats(Vec<Duration>);

impl Stats {
    fn new(mut v: Vec<Duration>) -> Self {
        v.sort_unstable();
        Self(v)
    }

    /// Nearest-rank percentile (`p` in 0..=1).
    pub fn pct(&self, p: f64) -> Duration {
        let n = self.0.len();
        if n == 0 {
            return Duration::ZERO;
        }
        let rank = ((p * n as f64).ceil() as usize).clamp(1, n);
        self.0.get(rank - 1).copied().unwrap_or_default()
    }

    pub fn count(&self) -> usize {
        self.0.len()
    }
}

pub struct Figures {
    pub sse: Stats,
    pub api: Stats,
    pub gammu: Stats,
    pub gammu_version: String,
}

fn text_for(i: usize) -> String {
    format!("Bench {MARK}{i:06} — коли ви відчинені?")
}

/// The index in a line that carries `MARK` followed by six digits.
fn index_in(line: &str) -> Option<usize> {
    let at = line.find(MARK)? + MARK.len();
    line.get(at..at + 6)?.parse().ok()
}

pub async fn run(opts: &Options) -> Result<Figures> {
    if opts.messages == 0 || opts.gammu_messages == 0 {
        bail!("--messages and --gammu-messages must be at least 1");
    }
    let gammu_version = gammu_version()?;
    let (sse, api) = crossline(opts.messages).await?;
    let gammu = gammu(opts.gammu_messages).await?;
    Ok(Figures {
        sse,
        api,
        gammu,
        gammu_version,
    })
}

/// The `## sms` section of docs/BENCHMARKS.md.
pub fn section(f: &Figures) -> String {
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let ours_p50 = f.sse.pct(0.5).max(f.api.pct(0.5));
    let ratio = |ours: Duration| ms(f.gammu.pct(0.5)) / ms(ours).max(0.001);
    format!(
        "## sms\n\n\
         `scripts/bench sms` — an incoming SMS from the simulated modem's `+CMTI` until it is\n\
         visible, the simulated modem (Quectel EC25 profile, real PTY) answering instantly\n\
         (timed from just before the simulator is handed the message; it writes `+CMTI` at once).\n\
         Crossline: mgmt (HTTP, embedded broker, SQLite) and one appliance with one modem in\n\
         one process; {n} messages one at a time, each with a unique text; the time to the\n\
         first SSE line on `/api/v1/stream` that carries it (one real HTTP client), and to\n\
         the first `GET /api/v1/conversations?limit=1` answer that shows it (polled every\n\
         {poll} ms, so the API figure includes up to one poll interval and the request).\n\
         gammu-smsd {gv} (Debian) against a second simulated modem of the same kind\n\
         (`loopsleep = 1`, `receivefrequency = 1`, `commtimeout = 1`, files service): {g}\n\
         messages, the time until the message's file in its inbox folder holds the text\n\
         (polled every {poll} ms); messages are spaced by a varying 0–1 s pause so they do\n\
         not fall in step with its polling loop.\n\n\
         {build}, {cores} cores, a shared machine (other builds may run), figures from one run.\n\n\
         | measure | p50 | p99 | messages |\n|---|---|---|---|\n\
         | Crossline: `+CMTI` → SSE event | {sse50:.1} ms | {sse99:.1} ms | {n} |\n\
         | Crossline: `+CMTI` → visible in the API | {api50:.1} ms | {api99:.1} ms | {n} |\n\
         | gammu-smsd: `+CMTI` → file in its inbox | {g50:.1} ms | {g99:.1} ms | {g} |\n\
         | **gammu-smsd p50 / Crossline p50** (slower of SSE and API) | **{r:.0}×** | | |\n\n\
         Against SSE alone the ratio is {rs:.0}×, against the API alone {ra:.0}×. With {g}\n\
         messages gammu-smsd's p99 is its slowest message. Crossline's path includes the\n\
         driver's `AT+CMGR`, the appliance's durable append (fsync), the MQTT hop, mgmt's\n\
         durable commit with the conversation projection, and the live fan-out; gammu-smsd\n\
         ignores `+CMTI` and finds the message on its next `AT+CMGL` poll.\n",
        n = f.sse.count(),
        g = f.gammu.count(),
        poll = POLL.as_millis(),
        gv = f.gammu_version,
        build = if cfg!(debug_assertions) {
            "debug build"
        } else {
            "release build"
        },
        cores = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0),
        sse50 = ms(f.sse.pct(0.5)),
        sse99 = ms(f.sse.pct(0.99)),
        api50 = ms(f.api.pct(0.5)),
        api99 = ms(f.api.pct(0.99)),
        g50 = ms(f.gammu.pct(0.5)),
        g99 = ms(f.gammu.pct(0.99)),
        r = ratio(ours_p50),
        rs = ratio(f.sse.pct(0.5)),
        ra = ratio(f.api.pct(0.5)),
    )
}

/// Crossline's path: (SSE latencies, API latencies).
async fn crossline(n: usize) -> Result<(Stats, Stats)> {
    let tmp = tempfile::tempdir()?;
    let mut cfg: crossline_mgmt::config::Config = toml::from_str("")?;
    cfg.data_dir = tmp.path().join("mgmt");
    cfg.listen_on_free_loopback_ports();
    let running = crossline_mgmt::server::start(cfg).await?;
    let http = running.http_addr;
    let token = running.api_token.clone();

    let id = NodeId::new("bench-branch")?;
    let secret = crossline_mgmt::services::fleet::credentials::new_secret();
    running
        .store
        .put_device(
            &id,
            &crossline_mgmt::services::fleet::credentials::hash_secret(&secret)?,
        )
        .await?;
    let branch = tmp.path().join(id.as_str());
    std::fs::create_dir_all(&branch).with_context(|| format!("creating {}", branch.display()))?;
    let link = branch.join("ttyGSM0");
    let sim = SimModem::spawn(SimConfig {
        link: Some(link.clone()),
        own_number: "+380670000001".into(),
        ..SimConfig::default()
    })
    .await
    .context("starting the simulated modem")?;
    let mut entry = ModemEntry::new("gsm0", link.to_string_lossy());
    entry.number = Some("+380670000001".into());
    let mut app = crossline_appliance::Config::new(
        id,
        branch,
        MqttConfig {
            url: format!("mqtt://127.0.0.1:{}", running.mqtt_addr.port()),
            ca_file: None,
            secret: Some(secret),
            secret_file: None,
            keep_alive_s: 10,
        },
    );
    app.modems = vec![entry];
    let stop = CancellationToken::new();
    let appliance = tokio::spawn(crossline_appliance::run(app, stop.clone()));

    let sse = SseClient::connect(http, &token)?;
    let result = measure(n, &sim, &sse, http, &token).await;
    sse.close();
    stop.cancel();
    match appliance.await {
        Ok(Err(e)) => eprintln!("appliance stopped with an error: {e:#}"),
        Err(e) => eprintln!("appliance task failed: {e}"),
        Ok(Ok(())) => {}
    }
    sim.shutdown().await;
    running.stop().await;
    result
}

async fn measure(
    n: usize,
    sim: &SimModem,
    sse: &SseClient,
    http: SocketAddr,
    token: &str,
) -> Result<(Stats, Stats)> {
    // Warm-up: the driver opens and sets up the modem, the appliance
    // connects; three messages go through before anything is timed.
    eprintln!("sms: waiting for the appliance and its modem (warm-up)");
    for k in 0..3 {
        let within = if k == 0 { 60 } else { 10 };
        one(
            WARMUP_BASE + k,
            sim,
            sse,
            http,
            token,
            Duration::from_secs(within),
        )
        .await
        .context("warm-up message")?;
    }
    let mut sse_lat = Vec::with_capacity(n);
    let mut api_lat = Vec::with_capacity(n);
    let mut last_print = Instant::now();
    for i in 0..n {
        let (s, a) = one(i, sim, sse, http, token, Duration::from_secs(30)).await?;
        sse_lat.push(s);
        api_lat.push(a);
        if last_print.elapsed() > Duration::from_secs(1) {
            eprintln!("  {}/{n} messages", i + 1);
            last_print = Instant::now();
        }
    }
    Ok((Stats::new(sse_lat), Stats::new(api_lat)))
}

/// One message: inject, poll the API until it shows, then look up when the
/// SSE client saw it. Waits until the driver deleted it from the modem.
async fn one(
    i: usize,
    sim: &SimModem,
    sse: &SseClient,
    http: SocketAddr,
    token: &str,
    within: Duration,
) -> Result<(Duration, Duration)> {
    let text = text_for(i);
    let t0 = Instant::now();
    sim.inject_sms(FROM, &text)?;
    let deadline = t0 + within;
    let api = loop {
        let body = get(http, "/api/v1/conversations?limit=1", token).await?;
        if body.contains(&text) {
            break t0.elapsed();
        }
        if Instant::now() > deadline {
            bail!(
                "message {i} did not show in GET /api/v1/conversations within {within:?}; last answer: {}",
                body.chars().take(500).collect::<String>()
            );
        }
        tokio::time::sleep(POLL).await;
    };
    let seen = loop {
        if let Some(t) = sse.seen(i)? {
            break t;
        }
        if Instant::now() > deadline {
            bail!("message {i} is in the API but never came on /api/v1/stream within {within:?}");
        }
        tokio::time::sleep(POLL).await;
    };
    sim.wait_until(
        "the driver to delete the message from the modem",
        within,
        |m| m.stored().is_empty(),
    )
    .await?;
    Ok((seen.saturating_duration_since(t0), api))
}

/// `GET path` with the bearer token; the whole answer (headers and body)
/// as text. Errors on a status other than 200.
async fn get(addr: SocketAddr, path: &str, token: &str) -> Result<String> {
    let mut s = tokio::net::TcpStream::connect(addr)
        .await
        .with_context(|| format!("connecting to mgmt's HTTP API at {addr}"))?;
    s.set_nodelay(true)?;
    s.write_all(
        format!(
            "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
        )
        .as_bytes(),
    )
    .await?;
    let mut buf = Vec::new();
    (&mut s)
        .take(MAX_LINE as u64 * 4)
        .read_to_end(&mut buf)
        .await
        .with_context(|| format!("reading mgmt's answer to GET {path}"))?;
    let text = String::from_utf8_lossy(&buf).into_owned();
    if !text.starts_with("HTTP/1.1 200") {
        bail!(
            "GET {path} answered {}",
            text.lines().next().unwrap_or("nothing")
        );
    }
    Ok(text)
}

/// A real SSE client on `/api/v1/stream`, on its own thread so that the
/// moment a line arrives is taken as soon as the read returns.
struct SseClient {
    seen: Arc<Mutex<HashMap<usize, Instant>>>,
    error: Arc<Mutex<Option<String>>>,
    stream: TcpStream,
    thread: std::thread::JoinHandle<()>,
}

impl SseClient {
    fn connect(addr: SocketAddr, token: &str) -> Result<Self> {
        let mut stream = TcpStream::connect(addr)
            .with_context(|| format!("connecting to mgmt's stream at {addr}"))?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        write!(
            stream,
            "GET /api/v1/stream HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\nAccept: text/event-stream\r\n\r\n"
        )?;
        let mut r = BufReader::new(stream.try_clone()?);
        let status = read_line(&mut r)?.unwrap_or_default();
        if !status.starts_with("HTTP/1.1 200") {
            bail!("GET /api/v1/stream answered {status:?}");
        }
        let mut chunked = false;
        loop {
            let h = read_line(&mut r)?.context("the stream ended inside its headers")?;
            if h.is_empty() {
                break;
            }
            let h = h.to_ascii_lowercase();
            if h.starts_with("transfer-encoding:") && h.contains("chunked") {
                chunked = true;
            }
        }
        stream.set_read_timeout(None)?;
        let seen = Arc::new(Mutex::new(HashMap::new()));
        let error = Arc::new(Mutex::new(None));
        let (s2, e2) = (seen.clone(), error.clone());
        let thread = std::thread::spawn(move || {
            let mut lines = Lines::default();
            let r = if chunked {
                read_chunked(&mut r, &mut lines, &s2)
            } else {
                read_plain(&mut r, &mut lines, &s2)
            };
            if let Err(e) = r
                && let Ok(mut g) = e2.lock()
            {
                *g = Some(format!("{e:#}"));
            }
        });
        Ok(Self {
            seen,
            error,
            stream,
            thread,
        })
    }

    /// When message `i` first showed on the stream; an error if the
    /// stream broke.
    fn seen(&self, i: usize) -> Result<Option<Instant>> {
        if let Some(t) = self.seen.lock().ok().and_then(|g| g.get(&i).copied()) {
            return Ok(Some(t));
        }
        if let Some(e) = self.error.lock().ok().and_then(|g| g.clone()) {
            bail!("mgmt's SSE stream broke: {e}");
        }
        if self.thread.is_finished() {
            bail!("mgmt's SSE stream ended");
        }
        Ok(None)
    }

    fn close(self) {
        let _ = self.stream.shutdown(Shutdown::Both);
        let _ = self.thread.join();
    }
}

/// One line (without CR LF) of at most `MAX_LINE` bytes; `None` at the end.
fn read_line(r: &mut impl BufRead) -> Result<Option<String>> {
    let mut line = Vec::new();
    let n = r
        .by_ref()
        .take(MAX_LINE as u64)
        .read_until(b'\n', &mut line)?;
    if n == 0 {
        return Ok(None);
    }
    if line.last() != Some(&b'\n') && n >= MAX_LINE {
        bail!("a line of mgmt's stream is longer than {MAX_LINE} bytes");
    }
    while matches!(line.last(), Some(b'\n' | b'\r')) {
        line.pop();
    }
    Ok(Some(String::from_utf8_lossy(&line).into_owned()))
}

/// Splits the stream's bytes into lines and records the messages seen.
#[derive(Default)]
struct Lines {
    pending: Vec<u8>,
}

impl Lines {
    fn feed(
        &mut self,
        bytes: &[u8],
        at: Instant,
        seen: &Mutex<HashMap<usize, Instant>>,
    ) -> Result<()> {
        for &b in bytes {
            if b == b'\n' {
                let index = {
                    let line = String::from_utf8_lossy(&self.pending);
                    if line.starts_with("data:") {
                        index_in(&line)
                    } else {
                        None
                    }
                };
                if let Some(i) = index
                    && let Ok(mut g) = seen.lock()
                {
                    g.entry(i).or_insert(at);
                }
                self.pending.clear();
            } else {
                if self.pending.len() >= MAX_LINE {
                    bail!("an SSE line is longer than {MAX_LINE} bytes");
                }
                self.pending.push(b);
            }
        }
        Ok(())
    }
}

fn read_plain(
    r: &mut impl BufRead,
    lines: &mut Lines,
    seen: &Mutex<HashMap<usize, Instant>>,
) -> Result<()> {
    let mut buf = [0u8; 8192];
    loop {
        let n = r.read(&mut buf)?;
        let at = Instant::now();
        if n == 0 {
            return Ok(());
        }
        lines.feed(buf.get(..n).unwrap_or_default(), at, seen)?;
    }
}

fn read_chunked(
    r: &mut impl BufRead,
    lines: &mut Lines,
    seen: &Mutex<HashMap<usize, Instant>>,
) -> Result<()> {
    let mut buf = Vec::new();
    loop {
        let Some(size) = read_line(r)? else {
            return Ok(());
        };
        let at = Instant::now();
        let hex = size.split(';').next().unwrap_or("").trim();
        let n = usize::from_str_radix(hex, 16)
            .with_context(|| format!("bad chunk size {size:?} on mgmt's stream"))?;
        if n == 0 {
            return Ok(());
        }
        if n > MAX_LINE {
            bail!("a chunk of {n} bytes on mgmt's stream (at most {MAX_LINE} accepted)");
        }
        buf.resize(n, 0);
        r.read_exact(&mut buf)?;
        read_line(r)?;
        lines.feed(&buf, at, seen)?;
    }
}

fn gammu_version() -> Result<String> {
    if !Path::new(GAMMU_SMSD).exists() {
        bail!(
            "{GAMMU_SMSD} is missing: install Debian's gammu-smsd (apt-get install gammu-smsd, as scripts/test does)"
        );
    }
    let out = std::process::Command::new(GAMMU_SMSD)
        .arg("--version")
        .output()
        .with_context(|| format!("running {GAMMU_SMSD} --version"))?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    Ok(text
        .lines()
        .next()
        .and_then(|l| l.rsplit(' ').next())
        .unwrap_or("?")
        .to_string())
}

/// gammu-smsd, killed when dropped.
struct Smsd {
    child: std::process::Child,
    log: PathBuf,
}

impl Smsd {
    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(15)..].join("\n")
    }
}

impl Drop for Smsd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// gammu-smsd's path: latencies to the inbox file.
async fn gammu(n: usize) -> Result<Stats> {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path();
    let link = dir.join("ttyMODEM");
    let sim = SimModem::spawn(SimConfig {
        link: Some(link.clone()),
        own_number: "+380670000002".into(),
        ..SimConfig::default()
    })
    .await
    .context("starting the simulated modem for gammu-smsd")?;
    let sub = |name: &str| -> Result<PathBuf> {
        let p = dir.join(name);
        std::fs::create_dir_all(&p).with_context(|| format!("creating {}", p.display()))?;
        Ok(p)
    };
    let (inbox, outbox, sent, errors) =
        (sub("inbox")?, sub("outbox")?, sub("sent")?, sub("error")?);
    let cfg = dir.join("smsdrc");
    let pidfile = dir.join("smsd.pid");
    let log = dir.join("smsd.log");
    std::fs::write(
        &cfg,
        format!(
            "[gammu]\ndevice = {}\nconnection = at\n\n[smsd]\nservice = files\n\
             checksecurity = 0\ncheckbattery = 0\nloopsleep = 1\ncommtimeout = 1\n\
             receivefrequency = 1\ninboxpath = {}/\noutboxpath = {}/\nsentsmspath = {}/\n\
             errorsmspath = {}/\nlogfile = {}\ndebuglevel = 0\n",
            link.display(),
            inbox.display(),
            outbox.display(),
            sent.display(),
            errors.display(),
            log.display()
        ),
    )?;
    let child = std::process::Command::new(GAMMU_SMSD)
        .arg("-c")
        .arg(&cfg)
        .arg("-p")
        .arg(&pidfile)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .with_context(|| format!("starting {GAMMU_SMSD}"))?;
    let smsd = Smsd { child, log };
    let result = gammu_measure(n, &sim, &smsd, &inbox, &pidfile).await;
    drop(smsd);
    sim.shutdown().await;
    result
}

async fn gammu_measure(
    n: usize,
    sim: &SimModem,
    smsd: &Smsd,
    inbox: &Path,
    pidfile: &Path,
) -> Result<Stats> {
    eprintln!("sms: waiting for gammu-smsd (warm-up)");
    inbox_one(WARMUP_BASE, sim, smsd, inbox, Duration::from_secs(60))
        .await
        .context("gammu-smsd's warm-up message")?;
    let pid = std::fs::read_to_string(pidfile).unwrap_or_default();
    if pid.trim().parse::<u32>().ok() != Some(smsd.child.id()) {
        bail!(
            "gammu-smsd's pidfile {} says {:?}, not the process this benchmark started ({})",
            pidfile.display(),
            pid.trim(),
            smsd.child.id()
        );
    }
    let mut lat = Vec::with_capacity(n);
    for i in 0..n {
        // A different phase of gammu-smsd's one-second loop for each message.
        tokio::time::sleep(Duration::from_millis((i as u64 * 379) % 1000)).await;
        lat.push(inbox_one(i, sim, smsd, inbox, Duration::from_secs(60)).await?);
        eprintln!("  gammu-smsd {}/{n} messages", i + 1);
    }
    Ok(Stats::new(lat))
}

/// One message through gammu-smsd: inject, poll the inbox folder until a
/// file holds the text, empty the folder, wait until gammu-smsd deleted
/// the message from the modem.
async fn inbox_one(
    i: usize,
    sim: &SimModem,
    smsd: &Smsd,
    inbox: &Path,
    within: Duration,
) -> Result<Duration> {
    let text = text_for(i);
    let t0 = Instant::now();
    sim.inject_sms(FROM, &text)?;
    let deadline = t0 + within;
    let took = loop {
        if inbox_holds(inbox, &text)? {
            break t0.elapsed();
        }
        if Instant::now() > deadline {
            bail!(
                "gammu-smsd did not store message {i} in {} within {within:?}; its log ends:\n{}",
                inbox.display(),
                smsd.log_tail()
            );
        }
        tokio::time::sleep(POLL).await;
    };
    for e in std::fs::read_dir(inbox)? {
        let p = e?.path();
        std::fs::remove_file(&p).with_context(|| format!("removing {}", p.display()))?;
    }
    sim.wait_until(
        "gammu-smsd to delete the message from the modem",
        within,
        |m| m.stored().is_empty(),
    )
    .await?;
    Ok(took)
}

fn inbox_holds(inbox: &Path, text: &str) -> Result<bool> {
    for e in std::fs::read_dir(inbox).with_context(|| format!("reading {}", inbox.display()))? {
        let p = e?.path();
        // A file being written may be short or absent a moment later.
        let Ok(f) = std::fs::File::open(&p) else {
            continue;
        };
        let mut body = String::new();
        if f.take(64 * 1024).read_to_string(&mut body).is_ok() && body.contains(text) {
            return Ok(true);
        }
    }
    Ok(false)
}
