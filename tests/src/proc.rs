//! Child processes of the real binaries: start, wait until ready, SIGKILL.

use crate::{bin, wait_for};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// A running child that is SIGKILLed when dropped.
pub struct Proc {
    pub name: String,
    child: Child,
    ready: Option<mpsc::Receiver<String>>,
    /// The child's standard input, for [`Proc::spawn_with_stdin`].
    stdin: Option<std::process::ChildStdin>,
}

impl Proc {
    /// Spawns `binary args...`, stderr to `log` (appended), stdout lines
    /// available through [`Proc::wait_line`].
    pub fn spawn(
        name: &str,
        binary: &str,
        args: &[&str],
        log: &Path,
        env: &[(&str, &str)],
    ) -> Proc {
        Self::spawn_path(name, &bin(binary), args, log, env)
    }

    /// Like [`Proc::spawn`] with standard input kept open: type lines into
    /// it with [`Proc::send_line`], close it with [`Proc::close_stdin`].
    pub fn spawn_with_stdin(
        name: &str,
        binary: &str,
        args: &[&str],
        log: &Path,
        env: &[(&str, &str)],
    ) -> Proc {
        Self::spawn_inner(name, &bin(binary), args, log, env, true)
    }

    /// Writes `line` and a newline to the child's standard input.
    pub fn send_line(&mut self, line: &str) {
        use std::io::Write;
        let stdin = self.stdin.as_mut().expect("spawned with stdin");
        writeln!(stdin, "{line}").expect("write to the child's stdin");
        stdin.flush().expect("flush the child's stdin");
    }

    /// Closes the child's standard input (it reads end of file).
    pub fn close_stdin(&mut self) {
        self.stdin = None;
    }

    /// Like [`Proc::spawn`] for a program outside the workspace.
    pub fn spawn_path(
        name: &str,
        program: &Path,
        args: &[&str],
        log: &Path,
        env: &[(&str, &str)],
    ) -> Proc {
        Self::spawn_inner(name, program, args, log, env, false)
    }

    fn spawn_inner(
        name: &str,
        program: &Path,
        args: &[&str],
        log: &Path,
        env: &[(&str, &str)],
        with_stdin: bool,
    ) -> Proc {
        let logf = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .expect("open log");
        let mut cmd = Command::new(program);
        cmd.args(args)
            .stdin(if with_stdin {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(logf);
        if std::env::var_os("RUST_LOG").is_none() {
            cmd.env("RUST_LOG", "info");
        }
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn");
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Proc {
            name: name.to_string(),
            child,
            ready: Some(rx),
            stdin,
        }
    }

    /// A stdout line containing `needle` within `deadline`, if one comes
    /// (other lines are consumed).
    pub fn try_line(&mut self, needle: &str, deadline: Duration) -> Option<String> {
        let rx = self.ready.as_ref().expect("stdout reader");
        let end = std::time::Instant::now() + deadline;
        loop {
            let left = end.saturating_duration_since(std::time::Instant::now());
            match rx.recv_timeout(left) {
                Ok(l) if l.contains(needle) => return Some(l),
                Ok(_) => continue,
                Err(_) => return None,
            }
        }
    }

    /// Waits for a stdout line containing `needle`; returns it.
    pub fn wait_line(&mut self, needle: &str, deadline: Duration) -> String {
        let rx = self.ready.as_ref().expect("stdout reader");
        let end = std::time::Instant::now() + deadline;
        loop {
            let left = end.saturating_duration_since(std::time::Instant::now());
            match rx.recv_timeout(left) {
                Ok(l) if l.contains(needle) => return l,
                Ok(_) => continue,
                Err(_) => {
                    let status = self.child.try_wait().ok().flatten();
                    panic!(
                        "{}: no stdout line with {needle:?} within {deadline:?} (exit status: {status:?}); see its log",
                        self.name
                    )
                }
            }
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL: no chance to flush or say goodbye.
    pub fn sigkill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM and wait for a graceful exit; returns whether it exited 0.
    pub fn sigterm(mut self, deadline: Duration) -> bool {
        let _ = kill(Pid::from_raw(self.child.id() as i32), Signal::SIGTERM);
        let child = &mut self.child;
        let status = wait_for("graceful exit", deadline, || {
            child.try_wait().ok().flatten()
        });
        status.success()
    }

    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs a binary to completion; returns stdout, panics with stderr on failure.
pub fn run_ok(binary: &str, args: &[&str]) -> String {
    let out = Command::new(bin(binary)).args(args).output().expect("run");
    assert!(
        out.status.success(),
        "{binary} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A mgmt instance on fixed ports (so it can be SIGKILLed and restarted).
pub struct Mgmt {
    pub data: PathBuf,
    pub http_port: u16,
    /// HTTPS (development certificate from `<data>/tls/`).
    pub https_port: u16,
    /// The embedded broker's plain listener (loopback).
    pub mqtt_port: u16,
    /// The embedded broker's MQTT-over-TLS listener.
    pub mqtts_port: u16,
    pub mqtt_url: Option<String>,
    pub log: PathBuf,
    /// A configuration file to start with (`--config`), if any.
    pub config: Option<PathBuf>,
    proc: Option<Proc>,
}

impl Mgmt {
    pub fn new(data: PathBuf, mqtt_url: Option<String>) -> Mgmt {
        std::fs::create_dir_all(&data).expect("mgmt data dir");
        Mgmt {
            log: data.join("mgmt.log"),
            data,
            http_port: crate::free_port(),
            https_port: crate::free_port(),
            mqtt_port: crate::free_port(),
            mqtts_port: crate::free_port(),
            mqtt_url,
            config: None,
            proc: None,
        }
    }

    /// Writes `toml` as mgmt's configuration file (used from the next start).
    pub fn set_config(&mut self, toml: &str) {
        let path = self.data.join("mgmt.toml");
        std::fs::write(&path, toml).expect("write mgmt config");
        self.config = Some(path);
    }

    pub fn start(&mut self) {
        let data = self.data.to_string_lossy().into_owned();
        let http = format!("127.0.0.1:{}", self.http_port);
        let https = format!("127.0.0.1:{}", self.https_port);
        let mqtt = format!("127.0.0.1:{}", self.mqtt_port);
        let mqtts = format!("127.0.0.1:{}", self.mqtts_port);
        let config = self
            .config
            .as_ref()
            .map(|c| c.to_string_lossy().into_owned());
        let mut args = vec!["--data-dir", &data];
        if let Some(c) = &config {
            args.push("--config");
            args.push(c);
        }
        args.extend(["run", "--http", &http, "--https", &https]);
        match &self.mqtt_url {
            Some(u) => {
                args.push("--mqtt-url");
                args.push(u);
            }
            None => {
                args.extend(["--mqtt-listen", &mqtt, "--mqtts-listen", &mqtts]);
            }
        }
        let mut p = Proc::spawn("crossline-mgmt", "crossline-mgmt", &args, &self.log, &[]);
        p.wait_line("crossline-mgmt ready", Duration::from_secs(30));
        self.proc = Some(p);
    }

    pub fn sigkill(&mut self) {
        if let Some(p) = self.proc.take() {
            p.sigkill();
        }
    }

    pub fn sigterm(&mut self) -> bool {
        self.proc
            .take()
            .is_some_and(|p| p.sigterm(Duration::from_secs(20)))
    }

    /// The running process's id.
    pub fn pid(&self) -> Option<u32> {
        self.proc.as_ref().map(Proc::pid)
    }

    /// `crossline-mgmt device add ID`: returns the new secret.
    pub fn add_device(&self, id: &str) -> String {
        let data = self.data.to_string_lossy().into_owned();
        run_ok(
            "crossline-mgmt",
            &["--data-dir", &data, "device", "add", id],
        )
        .trim()
        .to_string()
    }

    pub fn revoke_device(&self, id: &str) {
        let data = self.data.to_string_lossy().into_owned();
        run_ok(
            "crossline-mgmt",
            &["--data-dir", &data, "device", "revoke", id],
        );
    }

    pub fn api_token(&self) -> String {
        std::fs::read_to_string(self.data.join("api.token"))
            .expect("api token")
            .trim()
            .to_string()
    }

    pub fn db(&self) -> PathBuf {
        self.data.join("mgmt.db")
    }

    /// mgmt's development CA (what appliances pin), made on first start.
    pub fn ca_file(&self) -> PathBuf {
        self.data.join("tls").join("ca.pem")
    }

    /// `https://127.0.0.1:<https_port>`.
    pub fn https_url(&self) -> String {
        format!("https://127.0.0.1:{}", self.https_port)
    }

    /// An appliance's `[mqtt]` url and CA lines for MQTT over TLS to `port`
    /// (the broker's TLS port, or a proxy in front of it), pinning mgmt's CA.
    pub fn mqtts_toml(&self, port: u16) -> String {
        format!(
            "url = \"mqtts://127.0.0.1:{port}\"\nca_file = \"{}\"\n",
            self.ca_file().display()
        )
    }

    /// Chromium's pin for mgmt's HTTPS certificate:
    /// `--ignore-certificate-errors-spki-list=<base64 SHA-256 of its key>`.
    /// Chromium then accepts exactly this key (the server proves it holds
    /// it in the handshake), and no other certificate.
    pub fn chromium_pin_arg(&self) -> String {
        let chain = crossline_tls::read_certs(&self.data.join("tls").join("server.pem"), "")
            .expect("mgmt's server certificate");
        format!(
            "--ignore-certificate-errors-spki-list={}",
            crossline_tls::spki_sha256_base64(&chain[0]).expect("SPKI")
        )
    }
}

/// A simulated appliance emitting `total` synthetic events at `rate`/s.
pub struct Appliance {
    pub id: String,
    pub data: PathBuf,
    pub config: PathBuf,
    pub log: PathBuf,
    proc: Option<Proc>,
}

impl Appliance {
    /// An appliance with synthetic traffic: `total` events at `rate`/s.
    pub fn new(
        dir: &Path,
        id: &str,
        secret: &str,
        mqtt_port: u16,
        rate: f64,
        total: u64,
    ) -> Appliance {
        Self::with_config(
            dir,
            id,
            secret,
            mqtt_port,
            &format!("[synthetic]\nrate = {rate}\ntotal = {total}\n"),
        )
    }

    /// An appliance whose config ends with `extra` (TOML tables such as
    /// `[[modems]]` and `[offline]`).
    pub fn with_config(
        dir: &Path,
        id: &str,
        secret: &str,
        mqtt_port: u16,
        extra: &str,
    ) -> Appliance {
        Self::with_mqtt(
            dir,
            id,
            secret,
            &format!("url = \"mqtt://127.0.0.1:{mqtt_port}\"\n"),
            extra,
        )
    }

    /// Like [`Appliance::with_config`] with the `[mqtt]` url (and CA) lines
    /// given, e.g. [`Mgmt::mqtts_toml`].
    pub fn with_mqtt(dir: &Path, id: &str, secret: &str, mqtt: &str, extra: &str) -> Appliance {
        let data = dir.join(id);
        std::fs::create_dir_all(&data).expect("appliance dir");
        let config = data.join("appliance.toml");
        std::fs::write(
            &config,
            format!(
                "node_id = \"{id}\"\ndata_dir = \"{}\"\n[mqtt]\n{mqtt}secret = \"{secret}\"\nkeep_alive_s = 5\n[sync]\nresend_after_ms = 1500\n{extra}",
                data.display()
            ),
        )
        .expect("write appliance config");
        Appliance {
            id: id.to_string(),
            log: data.join("appliance.log"),
            data,
            config,
            proc: None,
        }
    }

    /// An appliance named `name` (its directory under `dir`) whose whole
    /// config is `toml`; `{data}` in it is replaced by its data dir.
    pub fn from_toml(dir: &Path, name: &str, toml: &str) -> Appliance {
        let data = dir.join(name);
        std::fs::create_dir_all(&data).expect("appliance dir");
        let config = data.join("appliance.toml");
        std::fs::write(&config, toml.replace("{data}", &data.to_string_lossy()))
            .expect("write appliance config");
        Appliance {
            id: name.to_string(),
            log: data.join("appliance.log"),
            data,
            config,
            proc: None,
        }
    }

    pub fn start(&mut self) {
        let cfg = self.config.to_string_lossy().into_owned();
        self.proc = Some(Proc::spawn(
            &self.id,
            "crossline-appliance",
            &["run", "--config", &cfg],
            &self.log,
            &[],
        ));
    }

    pub fn sigkill(&mut self) {
        if let Some(p) = self.proc.take() {
            p.sigkill();
        }
    }

    pub fn sigterm(&mut self) -> bool {
        self.proc
            .take()
            .is_some_and(|p| p.sigterm(Duration::from_secs(20)))
    }

    pub fn is_running(&mut self) -> bool {
        self.proc.as_mut().is_some_and(Proc::is_running)
    }

    pub fn db(&self) -> PathBuf {
        self.data.join("appliance.db")
    }
}

/// Debian's Mosquitto, configured by `crossline-mgmt broker mosquitto-config`.
pub struct Mosquitto {
    pub dir: PathBuf,
    pub port: u16,
    /// Its MQTT-over-TLS listener (mgmt's certificate).
    pub tls_port: u16,
    proc: Option<Proc>,
}

impl Mosquitto {
    /// Writes the configuration from mgmt's registry (devices must exist).
    pub fn configure(mgmt: &Mgmt, dir: PathBuf) -> Mosquitto {
        let port = crate::free_port();
        let tls_port = crate::free_port();
        let data = mgmt.data.to_string_lossy().into_owned();
        let out = dir.to_string_lossy().into_owned();
        run_ok(
            "crossline-mgmt",
            &[
                "--data-dir",
                &data,
                "broker",
                "mosquitto-config",
                "--out",
                &out,
                "--port",
                &port.to_string(),
                "--tls-port",
                &tls_port.to_string(),
            ],
        );
        Mosquitto {
            dir,
            port,
            tls_port,
            proc: None,
        }
    }

    pub fn start(&mut self) {
        let program = which("mosquitto");
        let conf = self
            .dir
            .join("mosquitto.conf")
            .to_string_lossy()
            .into_owned();
        let p = Proc::spawn_path(
            "mosquitto",
            &program,
            &["-c", &conf],
            &self.dir.join("mosquitto.log"),
            &[],
        );
        self.proc = Some(p);
        let port = self.port;
        wait_for("mosquitto to listen", Duration::from_secs(20), || {
            std::net::TcpStream::connect(("127.0.0.1", port)).ok()
        });
    }

    pub fn sigkill(&mut self) {
        if let Some(p) = self.proc.take() {
            p.sigkill();
        }
    }

    pub fn url(&self) -> String {
        format!("mqtt://127.0.0.1:{}", self.port)
    }
}

/// Absolute path of a program on PATH (or in /usr/sbin, where Debian puts mosquitto).
pub fn which(program: &str) -> PathBuf {
    let path = std::env::var("PATH").unwrap_or_default();
    path.split(':')
        .chain(["/usr/sbin", "/usr/bin", "/sbin"])
        .map(|d| Path::new(d).join(program))
        .find(|p| p.exists())
        .unwrap_or_else(|| panic!("{program} not found: run scripts/setup (installs the Debian packages the tests need)"))
}

/// Prints the end of a log file (used when a test fails, so CI shows why).
pub fn dump_tail(name: &str, log: &Path, lines: usize) {
    let Ok(text) = std::fs::read_to_string(log) else {
        return;
    };
    let all: Vec<&str> = text.lines().collect();
    let start = all.len().saturating_sub(lines);
    eprintln!(
        "----- last {} lines of {name} ({}) -----",
        all.len() - start,
        log.display()
    );
    for l in &all[start..] {
        eprintln!("{l}");
    }
}

impl Drop for Mgmt {
    fn drop(&mut self) {
        if std::thread::panicking() {
            dump_tail("crossline-mgmt", &self.log, 40);
        }
    }
}

impl Drop for Appliance {
    fn drop(&mut self) {
        if std::thread::panicking() {
            dump_tail(&self.id, &self.log, 60);
        }
    }
}
