//! Firmware updates end to end (docs/OTA.md), with real processes: the
//! `crossline-appliance` binary, Debian's Mosquitto (the test plays mgmt
//! over MQTT), an HTTPS server on 127.0.0.1 with a development CA, and the
//! real RAUC 1.8: `rauc bundle` signs test bundles with an openssl key, a
//! `rauc service` on a private D-Bus installs them into file-backed A/B
//! slots through a custom bootloader backend (a script keeping the boot
//! state in files). The test is the bootloader: a "boot" picks the slot
//! the way RAUC's bootchooser would (primary unless bad or out of
//! attempts), restarts the RAUC service as booted from it and starts the
//! appliance; the appliance "reboots" by exiting (no reboot_command).
//!
//! Needs root (RAUC mounts the bundle through a loop device), `rauc`,
//! `mksquashfs`, `dbus-daemon`, `openssl` and `mosquitto`: scripts/setup.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crossline_core::{EventId, NodeId};
use crossline_proto::{
    Command, CommandKind, CommandResult, DeviceTopic, Kind, UpdateState, UpdateStatus, VERSION,
    decode, encode,
};
use rumqttc::{AsyncClient, Event as MqttEvent, MqttOptions, Packet, QoS};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;

/// How long any wait of these tests may take.
const WAIT: Duration = Duration::from_secs(60);
const DEVICE: &str = "branch-ota";
const FACTORY: &str = "1.0.0";

fn need(prog: &str) -> PathBuf {
    for dir in ["/usr/bin", "/usr/sbin", "/bin", "/sbin"] {
        let p = Path::new(dir).join(prog);
        if p.exists() {
            return p;
        }
    }
    panic!("{prog} not found: run scripts/setup (installs the Debian packages the tests need)")
}

fn run_ok(cmd: &mut std::process::Command) -> String {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Waits until `cond` holds (checked every 50 ms), failing after [`WAIT`].
async fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn kill(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

// ---------------------------------------------------------------- RAUC

/// The custom bootloader backend RAUC calls: boot state in files next to it.
const BACKEND: &str = r#"#!/bin/sh
# rauc custom bootloader backend for the tests: state.<slot> is good,
# pending (made primary, not yet confirmed: counts attempts) or bad.
D="$(dirname "$0")/boot"
mkdir -p "$D"
case "$1" in
  get-primary) cat "$D/primary" 2>/dev/null || echo A ;;
  set-primary) echo "$2" > "$D/primary"; echo pending > "$D/state.$2"; echo 3 > "$D/attempts.$2" ;;
  get-state) s=$(cat "$D/state.$2" 2>/dev/null || echo good); [ "$s" = bad ] && echo bad || echo good ;;
  set-state) echo "$3" > "$D/state.$2" ;;
  get-current) cat "$D/booted" 2>/dev/null || echo A ;;
  *) exit 1 ;;
esac
"#;

/// A signing identity for bundles.
struct Signer {
    cert: PathBuf,
    key: PathBuf,
}

fn signer(dir: &Path, name: &str) -> Signer {
    let cert = dir.join(format!("{name}.cert.pem"));
    let key = dir.join(format!("{name}.key.pem"));
    run_ok(
        std::process::Command::new(need("openssl"))
            .args([
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "30",
            ])
            .arg("-subj")
            .arg(format!("/CN=crossline test {name}"))
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&cert),
    );
    Signer { cert, key }
}

/// A bundle file, what the command says about it.
#[derive(Clone)]
struct Bundle {
    bytes: Vec<u8>,
    sha256: String,
    version: String,
}

fn sha_hex(b: &[u8]) -> String {
    Sha256::digest(b)
        .iter()
        .map(|x| format!("{x:02x}"))
        .collect()
}

/// `rauc bundle` of a plain-format bundle for `crossline-test` holding a
/// 256 KiB rootfs image (dm-verity bundles need device-mapper, which this
/// machine lacks).
fn make_bundle(dir: &Path, version: &str, by: &Signer) -> Bundle {
    let name = format!("bundle-{}", EventId::new());
    let content = dir.join(&name);
    std::fs::create_dir_all(&content).unwrap();
    std::fs::write(
        content.join("manifest.raucm"),
        format!(
            "[update]\ncompatible=crossline-test\nversion={version}\n\n[bundle]\nformat=plain\n\n[image.rootfs]\nfilename=rootfs.img\n"
        ),
    )
    .unwrap();
    let mut img = Vec::with_capacity(256 * 1024);
    let mut x: u32 = 0x1234_5678 ^ version.len() as u32;
    for b in version.bytes() {
        x = x.wrapping_mul(31).wrapping_add(u32::from(b));
    }
    while img.len() < 256 * 1024 {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        img.extend_from_slice(&x.to_le_bytes());
    }
    std::fs::write(content.join("rootfs.img"), &img).unwrap();
    let out = dir.join(format!("{name}.raucb"));
    run_ok(
        std::process::Command::new(need("rauc"))
            .arg("bundle")
            .arg(format!("--cert={}", by.cert.display()))
            .arg(format!("--key={}", by.key.display()))
            .arg(&content)
            .arg(&out),
    );
    let bytes = std::fs::read(&out).unwrap();
    Bundle {
        sha256: sha_hex(&bytes),
        bytes,
        version: version.into(),
    }
}

/// The slots, RAUC's service on a private bus, and the "bootloader".
struct Slots {
    dir: PathBuf,
    bus_addr: String,
    /// The dbus-daemon's pid.
    bus: i32,
    service: Option<Child>,
}

impl Slots {
    fn new(dir: &Path, keyring: &Path) -> Slots {
        let dir = dir.join("rauc");
        std::fs::create_dir_all(dir.join("mnt")).unwrap();
        for s in ["A", "B"] {
            std::fs::write(dir.join(format!("slot{s}.img")), vec![0u8; 512 * 1024]).unwrap();
        }
        let backend = dir.join("bootloader.sh");
        std::fs::write(&backend, BACKEND).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&backend, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::write(
            dir.join("system.conf"),
            format!(
                "[system]\ncompatible=crossline-test\nbootloader=custom\ndata-directory={d}/data\n\n\
                 [handlers]\nbootloader-custom-backend={d}/bootloader.sh\n\n\
                 [keyring]\npath={k}\n\n\
                 [slot.rootfs.0]\ndevice={d}/slotA.img\ntype=raw\nbootname=A\n\n\
                 [slot.rootfs.1]\ndevice={d}/slotB.img\ntype=raw\nbootname=B\n",
                d = dir.display(),
                k = keyring.display()
            ),
        )
        .unwrap();
        let sock = dir.join("bus");
        std::fs::write(
            dir.join("dbus.conf"),
            format!(
                r#"<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN" "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig><type>system</type><listen>unix:path={}</listen><auth>EXTERNAL</auth>
<policy context="default"><allow user="*"/><allow own="*"/><allow send_destination="*" eavesdrop="true"/><allow eavesdrop="true"/></policy></busconfig>"#,
                sock.display()
            ),
        )
        .unwrap();
        // Forked (it daemonises): its pid comes on stdout.
        let out = run_ok(
            std::process::Command::new(need("dbus-daemon"))
                .arg(format!("--config-file={}", dir.join("dbus.conf").display()))
                .arg("--fork")
                .arg("--print-pid")
                .stdin(Stdio::null())
                .stderr(Stdio::null()),
        );
        let bus: i32 = out.trim().parse().unwrap();
        let deadline = std::time::Instant::now() + WAIT;
        while !sock.exists() {
            assert!(
                std::time::Instant::now() < deadline,
                "dbus-daemon did not start"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Slots {
            bus_addr: format!("unix:path={}", sock.display()),
            dir,
            bus,
            service: None,
        }
    }

    fn boot_file(&self, name: &str) -> Option<String> {
        std::fs::read_to_string(self.dir.join("boot").join(name))
            .ok()
            .map(|s| s.trim().to_string())
    }

    fn set_boot_file(&self, name: &str, v: &str) {
        std::fs::create_dir_all(self.dir.join("boot")).unwrap();
        std::fs::write(self.dir.join("boot").join(name), format!("{v}\n")).unwrap();
    }

    /// The bootloader: the primary slot unless it is bad or out of
    /// attempts (then the other); a pending slot uses one attempt per
    /// boot. Restarts the RAUC service as booted from that slot.
    fn boot(&mut self) -> String {
        if let Some(mut s) = self.service.take() {
            kill(&mut s);
        }
        let primary = self.boot_file("primary").unwrap_or_else(|| "A".into());
        let bootable = |slot: &str| match self.boot_file(&format!("state.{slot}")).as_deref() {
            Some("bad") => false,
            Some("pending") => {
                self.boot_file(&format!("attempts.{slot}"))
                    .and_then(|a| a.parse::<u32>().ok())
                    .unwrap_or(0)
                    > 0
            }
            _ => true,
        };
        let other = if primary == "A" { "B" } else { "A" };
        let slot = if bootable(&primary) {
            primary.clone()
        } else {
            other.to_string()
        };
        if self.boot_file(&format!("state.{slot}")).as_deref() == Some("pending") {
            let a: u32 = self
                .boot_file(&format!("attempts.{slot}"))
                .and_then(|a| a.parse().ok())
                .unwrap_or(1);
            self.set_boot_file(
                &format!("attempts.{slot}"),
                &a.saturating_sub(1).to_string(),
            );
        }
        self.set_boot_file("booted", &slot);
        // Like systemd ordering the appliance after rauc.service: the boot
        // is done when RAUC answers (started again if it could not yet
        // reach the bus).
        let deadline = std::time::Instant::now() + WAIT;
        loop {
            if self.service.is_none() {
                let log = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(self.dir.join("service.log"))
                    .unwrap();
                self.service = Some(
                    std::process::Command::new(need("rauc"))
                        .arg("service")
                        .arg(format!("--conf={}", self.dir.join("system.conf").display()))
                        .arg(format!("--mount={}", self.dir.join("mnt").display()))
                        .arg(format!("--override-boot-slot={slot}"))
                        .env("DBUS_SYSTEM_BUS_ADDRESS", &self.bus_addr)
                        .stdin(Stdio::null())
                        .stdout(log.try_clone().unwrap())
                        .stderr(log)
                        .spawn()
                        .unwrap(),
                );
            }
            let answers = std::process::Command::new(need("rauc"))
                .arg("status")
                .env("DBUS_SYSTEM_BUS_ADDRESS", &self.bus_addr)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if answers {
                return slot;
            }
            if let Some(s) = self.service.as_mut()
                && s.try_wait().unwrap().is_some()
            {
                self.service = None;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "rauc service does not answer: {}",
                std::fs::read_to_string(self.dir.join("service.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// `rauc status` as JSON.
    fn status(&self) -> serde_json::Value {
        let out = run_ok(
            std::process::Command::new(need("rauc"))
                .args(["status", "--detailed", "--output-format=json"])
                .env("DBUS_SYSTEM_BUS_ADDRESS", &self.bus_addr),
        );
        serde_json::from_str(&out).unwrap()
    }

    /// Slot `bootname`'s boot status and the version RAUC installed there.
    fn slot(&self, bootname: &str) -> (String, Option<String>) {
        let st = self.status();
        for m in st["slots"].as_array().unwrap() {
            for (_, s) in m.as_object().unwrap() {
                if s["bootname"] == bootname {
                    return (
                        s["boot_status"].as_str().unwrap_or_default().to_string(),
                        s["slot_status"]["bundle"]["version"]
                            .as_str()
                            .map(str::to_string),
                    );
                }
            }
        }
        panic!("no slot {bootname} in {st}")
    }
}

impl Drop for Slots {
    fn drop(&mut self) {
        if let Some(mut s) = self.service.take() {
            kill(&mut s);
        }
        let _ = std::process::Command::new("kill")
            .arg(self.bus.to_string())
            .status();
    }
}

// ---------------------------------------------------------------- HTTPS

/// How the bundle server misbehaves.
#[derive(Clone, Copy, Default)]
struct Mode {
    /// The first response for a path stops after this many body bytes.
    cut_first_at: Option<usize>,
    /// Answer every request with the whole file (200), Range or not.
    ignore_range: bool,
    /// Send the body slowly (16 KiB every 100 ms).
    slow: bool,
}

#[derive(Default)]
struct Served {
    files: BTreeMap<String, Vec<u8>>,
    /// Every request: path and its Range header.
    requests: Vec<(String, Option<String>)>,
    mode: Mode,
}

struct Https {
    port: u16,
    ca: PathBuf,
    state: Arc<Mutex<Served>>,
}

impl Https {
    async fn start(dir: &Path) -> Https {
        let dev = crossline_tls::dev::ensure(&dir.join("tls"), &[]).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut incoming = crossline_tls::accept::TlsIncoming::start(
            listener,
            dev.identity.server_config(&[]).unwrap(),
            Duration::from_secs(5),
            16,
            "HTTPS",
        )
        .unwrap();
        let port = incoming.local_addr().port();
        let state: Arc<Mutex<Served>> = Arc::default();
        let st = state.clone();
        tokio::spawn(async move {
            while let Some((tls, _)) = incoming.next().await {
                let st = st.clone();
                tokio::spawn(async move {
                    let _ = serve(tls, st).await;
                });
            }
        });
        Https {
            port,
            ca: dev.identity.ca_file.clone(),
            state,
        }
    }

    fn put(&self, path: &str, bytes: Vec<u8>) {
        self.state.lock().unwrap().files.insert(path.into(), bytes);
    }

    fn set_mode(&self, mode: Mode) {
        self.state.lock().unwrap().mode = mode;
    }

    fn requests(&self, path: &str) -> Vec<Option<String>> {
        self.state
            .lock()
            .unwrap()
            .requests
            .iter()
            .filter(|(p, _)| p == path)
            .map(|(_, r)| r.clone())
            .collect()
    }
}

async fn serve(
    mut tls: crossline_tls::accept::TlsStream<tokio::net::TcpStream>,
    st: Arc<Mutex<Served>>,
) -> std::io::Result<()> {
    let mut buf = Vec::new();
    let (path, range) = loop {
        let mut chunk = [0u8; 2048];
        let n = tls.read(&mut chunk).await?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
        let mut hs = [httparse::EMPTY_HEADER; 32];
        let mut req = httparse::Request::new(&mut hs);
        if let Ok(httparse::Status::Complete(_)) = req.parse(&buf) {
            let range = req
                .headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case("range"))
                .map(|h| String::from_utf8_lossy(h.value).to_string());
            break (req.path.unwrap_or_default().to_string(), range);
        }
    };
    let (file, mode, first) = {
        let mut s = st.lock().unwrap();
        let first = !s.requests.iter().any(|(p, _)| *p == path);
        s.requests.push((path.clone(), range.clone()));
        (s.files.get(&path).cloned(), s.mode, first)
    };
    let Some(file) = file else {
        tls.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            .await?;
        return tls.shutdown().await;
    };
    let start = range
        .as_deref()
        .filter(|_| !mode.ignore_range)
        .and_then(|r| r.strip_prefix("bytes="))
        .and_then(|r| r.strip_suffix('-'))
        .and_then(|r| r.parse::<usize>().ok());
    let head = match start {
        Some(s) => format!(
            "HTTP/1.1 206 Partial Content\r\nContent-Length: {}\r\nContent-Range: bytes {s}-{}/{}\r\nConnection: close\r\n\r\n",
            file.len() - s,
            file.len() - 1,
            file.len()
        ),
        None => format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            file.len()
        ),
    };
    tls.write_all(head.as_bytes()).await?;
    let mut body = &file[start.unwrap_or(0)..];
    if first && let Some(cut) = mode.cut_first_at {
        body = &body[..cut.min(body.len())];
    }
    for part in body.chunks(16 * 1024) {
        tls.write_all(part).await?;
        if mode.slow {
            tls.flush().await?;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    tls.flush().await?;
    // A cut response: close without the rest (the client sees EOF early).
    tls.shutdown().await
}

// ---------------------------------------------------------------- MQTT

struct Broker {
    child: Child,
    port: u16,
}

impl Broker {
    fn start(dir: &Path) -> Broker {
        let port = crossline_testkit::free_port();
        let conf = dir.join("mosquitto.conf");
        std::fs::write(
            &conf,
            format!("listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"),
        )
        .unwrap();
        let child = std::process::Command::new(need("mosquitto"))
            .arg("-c")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = std::time::Instant::now() + WAIT;
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "mosquitto did not listen"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Broker { child, port }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        kill(&mut self.child);
    }
}

/// Every publish mgmt saw: topic, payload.
type Seen = Arc<Mutex<Vec<(String, Vec<u8>)>>>;

/// The test's mgmt: what the appliance publishes, and commands to it.
struct Mgmt {
    client: AsyncClient,
    seen: Seen,
}

impl Mgmt {
    async fn connect(port: u16) -> Mgmt {
        let mut opts = MqttOptions::new(format!("mgmt-{}", EventId::new()), "127.0.0.1", port);
        opts.set_keep_alive(Duration::from_secs(5));
        let (client, mut el) = AsyncClient::new(opts, 64);
        client
            .subscribe(format!("crossline/v1/d/{DEVICE}/#"), QoS::AtLeastOnce)
            .await
            .unwrap();
        let seen: Seen = Arc::default();
        let s = seen.clone();
        tokio::spawn(async move {
            loop {
                match el.poll().await {
                    Ok(MqttEvent::Incoming(Packet::Publish(p))) => {
                        s.lock()
                            .unwrap()
                            .push((p.topic.clone(), p.payload.to_vec()));
                    }
                    Ok(_) => {}
                    Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                }
            }
        });
        Mgmt { client, seen }
    }

    fn topic(kind: Kind) -> String {
        DeviceTopic::new(&NodeId::new(DEVICE).unwrap(), kind).to_string()
    }

    async fn send(&self, c: &Command) {
        self.client
            .publish(Mgmt::topic(Kind::Cmd), QoS::AtLeastOnce, false, encode(c))
            .await
            .unwrap();
    }

    fn result(&self, id: EventId) -> Option<CommandResult> {
        let t = Mgmt::topic(Kind::Result);
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|(topic, _)| *topic == t)
            .filter_map(|(_, p)| decode::<CommandResult>(p).ok())
            .find(|r| r.id == id)
    }

    fn statuses(&self) -> Vec<UpdateStatus> {
        let t = Mgmt::topic(Kind::Update);
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|(topic, _)| *topic == t)
            .map(|(_, p)| decode::<UpdateStatus>(p).unwrap())
            .collect()
    }
}

// ---------------------------------------------------------------- the box

/// One appliance: its slots, its daemon, and everything around it.
struct Machine {
    dir: PathBuf,
    slots: Slots,
    https: Https,
    mgmt: Mgmt,
    _broker: Broker,
    app: Option<Child>,
    /// `CROSSLINE_TEST_UPDATE_HOLD` for the next starts, until a kill.
    hold: Option<&'static str>,
    good: Signer,
    boots: u32,
}

impl Machine {
    /// With `line`: a modem line that never registers (its port does not
    /// exist), so a health check fails.
    async fn new(dir: &Path, failing_line: bool) -> Machine {
        let keys = dir.join("keys");
        std::fs::create_dir_all(&keys).unwrap();
        let good = signer(&keys, "release");
        let slots = Slots::new(dir, &good.cert);
        let broker = Broker::start(dir);
        let https = Https::start(dir).await;
        let mgmt = Mgmt::connect(broker.port).await;
        std::fs::write(dir.join("factory-version"), format!("{FACTORY}\n")).unwrap();
        let mut cfg = format!(
            r#"node_id = "{DEVICE}"
data_dir = "{data}"

[mqtt]
url = "mqtt://127.0.0.1:{port}"
secret = "not-checked-by-this-broker"
keep_alive_s = 2

[telemetry]
interval_s = 0.5

[update]
server = "https://127.0.0.1:{https}"
ca_file = "{ca}"
keyring = "{keyring}"
health_timeout_s = {health}
version_file = "{factory}"
"#,
            data = dir.join("data").display(),
            port = broker.port,
            https = https.port,
            ca = https.ca.display(),
            keyring = good.cert.display(),
            factory = dir.join("factory-version").display(),
            // Short where it must fail; where it passes it ends as soon as
            // the uplink is up, and a loaded machine must not fail it.
            health = if failing_line { 4 } else { 30 },
        );
        if failing_line {
            cfg.push_str(
                "\n[[modems]]\nlabel = \"gsm0\"\nport = \"/dev/crossline-test-no-such-modem\"\n",
            );
        }
        std::fs::write(dir.join("appliance.toml"), cfg).unwrap();
        Machine {
            dir: dir.to_path_buf(),
            slots,
            https,
            mgmt,
            _broker: broker,
            app: None,
            hold: None,
            good,
            boots: 0,
        }
    }

    /// Boots: the bootloader picks the slot, RAUC's service and the
    /// appliance start.
    fn power_on(&mut self) -> String {
        let slot = self.slots.boot();
        self.boots += 1;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("appliance.log"))
            .unwrap();
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_crossline-appliance"));
        cmd.arg("run")
            .arg("--config")
            .arg(self.dir.join("appliance.toml"))
            .env("DBUS_SYSTEM_BUS_ADDRESS", &self.slots.bus_addr)
            .env("RUST_LOG", "info")
            .env_remove("CROSSLINE_TEST_UPDATE_HOLD")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        if let Some(h) = self.hold {
            cmd.env("CROSSLINE_TEST_UPDATE_HOLD", h);
        }
        self.app = Some(cmd.spawn().unwrap());
        slot
    }

    /// SIGKILL: the power goes.
    fn power_loss(&mut self) {
        if let Some(mut a) = self.app.take() {
            kill(&mut a);
        }
        self.hold = None;
    }

    /// When the appliance has exited (a reboot), boots again.
    fn reboot_if_exited(&mut self) -> bool {
        let exited = match self.app.as_mut().map(|a| a.try_wait().unwrap()) {
            Some(Some(status)) => {
                assert!(
                    status.success(),
                    "the appliance failed: {status}; {}",
                    self.log_tail()
                );
                true
            }
            _ => false,
        };
        if exited {
            self.app = None;
            self.power_on();
        }
        exited
    }

    /// The last lines of the appliance's and RAUC's logs, for failures.
    fn log_tail(&self) -> String {
        let tail = |f: &Path, n: usize| {
            let log = std::fs::read_to_string(f).unwrap_or_default();
            let lines: Vec<&str> = log.lines().collect();
            lines[lines.len().saturating_sub(n)..].join("\n")
        };
        format!(
            "appliance:\n{}\nrauc service:\n{}",
            tail(&self.dir.join("appliance.log"), 40),
            tail(&self.slots.dir.join("service.log"), 15)
        )
    }

    fn record(&self) -> serde_json::Value {
        std::fs::read(self.dir.join("data/update.json"))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or(serde_json::Value::Null)
    }

    fn state(&self) -> String {
        self.record()["state"].as_str().unwrap_or("").to_string()
    }

    /// Offers `b` at `path` and returns the command installing it.
    fn offer(&self, path: &str, b: &Bundle) -> Command {
        self.https.put(path, b.bytes.clone());
        Command {
            v: VERSION,
            id: EventId::new(),
            kind: CommandKind::InstallUpdate {
                bundle: path.into(),
                sha256: b.sha256.clone(),
                bytes: b.bytes.len() as u64,
                version: b.version.clone(),
                allow_downgrade: false,
            },
        }
    }

    /// Plays mgmt: sends `c` every 2 s (as mgmt repeats a command until its
    /// result) and boots the appliance again whenever it exits, until the
    /// result comes. `until` may stop earlier (returns `None` then).
    async fn drive(
        &mut self,
        c: &Command,
        mut until: impl FnMut(&Machine) -> bool,
    ) -> Option<CommandResult> {
        let deadline = Instant::now() + WAIT * 2;
        let mut next_send = Instant::now();
        loop {
            if let Some(r) = self.mgmt.result(c.id) {
                return Some(r);
            }
            if until(self) {
                return None;
            }
            self.reboot_if_exited();
            if Instant::now() >= next_send {
                self.mgmt.send(c).await;
                next_send = Instant::now() + Duration::from_secs(2);
            }
            assert!(
                Instant::now() < deadline,
                "no result for {} (state {:?}); appliance log:\n{}",
                c.id,
                self.state(),
                self.log_tail()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Nothing was installed: slot A runs and is primary, B holds nothing,
    /// the appliance never rebooted.
    fn assert_nothing_installed(&self) {
        assert_eq!(
            self.slots.boot_file("primary"),
            None,
            "no slot was made primary"
        );
        assert_eq!(self.slots.slot("B").1, None, "slot B holds no bundle");
        assert_eq!(self.boots, 1, "the appliance did not reboot");
        assert!(
            !self.dir.join("data/update/bundle.raucb").exists()
                && !self.dir.join("data/update/bundle.part").exists(),
            "the refused bundle is not kept"
        );
    }

    /// The update has ended consistently: `update.json` says `state`, the
    /// last status mgmt got says so too and names the running version, the
    /// booted slot is good, no bundle is left on disk.
    async fn assert_ended(&self, state: UpdateState, running: &str, slot: &str) {
        wait_for("the final status published", || {
            self.mgmt
                .statuses()
                .last()
                .is_some_and(|s| s.state == state && s.running == running)
        })
        .await;
        let last = self.mgmt.statuses().last().cloned().unwrap();
        assert_eq!(last.booted_slot.as_deref(), Some(slot), "{last:?}");
        assert_eq!(self.state(), state.as_str());
        assert_eq!(self.slots.boot_file("booted").as_deref(), Some(slot));
        assert_eq!(self.slots.slot(slot).0, "good", "the running slot is good");
        assert!(!self.dir.join("data/update/bundle.raucb").exists());
        assert!(!self.dir.join("data/update/bundle.part").exists());
    }
}

impl Drop for Machine {
    fn drop(&mut self) {
        if let Some(mut a) = self.app.take() {
            kill(&mut a);
        }
    }
}

// ---------------------------------------------------------------- tests

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tampered_unsigned_wrong_key_and_older_bundles_are_refused_and_nothing_is_installed() {
    let dir = tempfile::tempdir().unwrap();
    let mut m = Machine::new(dir.path(), false).await;
    m.power_on();
    let good = make_bundle(dir.path(), "1.1.0", &m.good);

    // Tampered: a byte of the served bundle changed; the command has the
    // signed bundle's sha256.
    let c = m.offer("/fw/tampered.raucb", &good);
    let mut tampered = good.bytes.clone();
    tampered[1000] ^= 0xff;
    m.https.put("/fw/tampered.raucb", tampered);
    let r = m.drive(&c, |_| false).await.unwrap();
    assert!(!r.ok, "{r:?}");
    assert!(
        r.output.contains("sha256") && r.output.contains("nothing was installed"),
        "{}\n{}",
        r.output,
        m.log_tail()
    );
    m.assert_nothing_installed();

    // Signed by a key the keyring does not hold (its sha256 matches).
    let other = signer(&dir.path().join("keys"), "intruder");
    let wrong = make_bundle(dir.path(), "1.1.0", &other);
    let c = m.offer("/fw/wrong-key.raucb", &wrong);
    let r = m.drive(&c, |_| false).await.unwrap();
    assert!(!r.ok, "{r:?}");
    assert!(
        r.output.contains("signature does not verify")
            && r.output.contains("nothing was installed"),
        "{}",
        r.output
    );
    m.assert_nothing_installed();

    // Not a signed bundle at all.
    let unsigned = Bundle {
        bytes: good.bytes[..good.bytes.len() / 2].to_vec(),
        sha256: sha_hex(&good.bytes[..good.bytes.len() / 2]),
        version: "1.1.0".into(),
    };
    let c = m.offer("/fw/unsigned.raucb", &unsigned);
    let r = m.drive(&c, |_| false).await.unwrap();
    assert!(
        !r.ok && r.output.contains("signature does not verify"),
        "{}",
        r.output
    );
    m.assert_nothing_installed();

    // Older than the running one, no downgrade allowed: refused before any
    // download.
    let old = make_bundle(dir.path(), "0.9.0", &m.good);
    let c = m.offer("/fw/old.raucb", &old);
    let r = m.drive(&c, |_| false).await.unwrap();
    assert!(
        !r.ok && r.output.contains("older than the running 1.0.0"),
        "{}",
        r.output
    );
    assert!(
        m.https.requests("/fw/old.raucb").is_empty(),
        "not downloaded"
    );
    m.assert_nothing_installed();

    // A repeat of a refused command gets the same answer, nothing more.
    let n = m.https.requests("/fw/unsigned.raucb").len();
    let statuses = m.mgmt.statuses();
    assert_eq!(
        statuses.last().unwrap().state,
        UpdateState::Failed,
        "{statuses:?}"
    );
    assert_eq!(statuses.last().unwrap().running, FACTORY);
    assert_eq!(m.https.requests("/fw/unsigned.raucb").len(), n);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_download_resumes_and_a_healthy_update_commits() {
    let dir = tempfile::tempdir().unwrap();
    let mut m = Machine::new(dir.path(), false).await;
    m.power_on();

    // The server cuts the first response 100,000 bytes into the body.
    let b = make_bundle(dir.path(), "1.1.0", &m.good);
    m.https.set_mode(Mode {
        cut_first_at: Some(100_000),
        ..Mode::default()
    });
    let c = m.offer("/fw/crossline-1.1.0.raucb", &b);
    let r = m.drive(&c, |_| false).await.unwrap();
    assert!(r.ok, "{r:?}\n{}", m.log_tail());
    assert!(
        r.output.contains("committed: 1.1.0 runs on slot B"),
        "{}",
        r.output
    );
    let reqs = m.https.requests("/fw/crossline-1.1.0.raucb");
    assert_eq!(reqs.len(), 2, "{reqs:?}");
    assert_eq!(reqs[0], None, "the first request asks for everything");
    // The second asks for the rest: from the bytes on disk (all 100,000
    // the server sent arrive before its close).
    assert_eq!(reqs[1].as_deref(), Some("bytes=100000-"), "{reqs:?}");
    m.assert_ended(UpdateState::Committed, "1.1.0", "B").await;
    assert_eq!(m.slots.slot("B").1.as_deref(), Some("1.1.0"));
    assert_eq!(m.boots, 2, "one reboot");

    // A server that ignores Range: the download starts again from byte 0.
    let b2 = make_bundle(dir.path(), "1.2.0", &m.good);
    m.https.set_mode(Mode {
        cut_first_at: Some(70_000),
        ignore_range: true,
        ..Mode::default()
    });
    let c2 = m.offer("/fw/crossline-1.2.0.raucb", &b2);
    let r = m.drive(&c2, |_| false).await.unwrap();
    assert!(r.ok, "{r:?}\n{}", m.log_tail());
    assert!(
        r.output
            .contains("committed: 1.2.0 runs on slot A (was 1.1.0 on slot B)"),
        "{}",
        r.output
    );
    let reqs = m.https.requests("/fw/crossline-1.2.0.raucb");
    assert_eq!(reqs.len(), 2, "{reqs:?}");
    assert_eq!(reqs[1].as_deref(), Some("bytes=70000-"));
    m.assert_ended(UpdateState::Committed, "1.2.0", "A").await;

    // The kept result answers a repeat; nothing runs again.
    let before = m.mgmt.seen.lock().unwrap().len();
    m.mgmt.send(&c2).await;
    wait_for("the repeat answered", || {
        let seen = m.mgmt.seen.lock().unwrap();
        seen[before..].iter().any(|(t, p)| {
            *t == Mgmt::topic(Kind::Result)
                && decode::<CommandResult>(p).is_ok_and(|r| r.id == c2.id && r.ok)
        })
    })
    .await;
    assert_eq!(m.https.requests("/fw/crossline-1.2.0.raucb").len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_health_check_rolls_back_and_reports_why() {
    let dir = tempfile::tempdir().unwrap();
    let mut m = Machine::new(dir.path(), true).await;
    m.power_on();
    let b = make_bundle(dir.path(), "1.1.0", &m.good);
    let c = m.offer("/fw/crossline-1.1.0.raucb", &b);
    let r = m.drive(&c, |_| false).await.unwrap();
    assert!(!r.ok, "{r:?}");
    assert!(
        r.output.contains("rolled back to 1.0.0 on slot A")
            && r.output.contains("health check failed")
            && r.output.contains("line gsm0 is not registered"),
        "{}",
        r.output
    );
    m.assert_ended(UpdateState::RolledBack, FACTORY, "A").await;
    assert_eq!(m.slots.slot("B").0, "bad", "the new slot is marked bad");
    assert_eq!(m.boots, 3, "into the new slot, then back");
    // mgmt saw the way there: booted (on B, running 1.1.0), rolling back.
    let st = m.mgmt.statuses();
    assert!(
        st.iter().any(|s| s.state == UpdateState::Booted
            && s.booted_slot.as_deref() == Some("B")
            && s.running == "1.1.0"),
        "{st:?}"
    );
    assert!(
        st.iter().any(|s| s.state == UpdateState::RollingBack),
        "{st:?}"
    );
}

/// A power loss (SIGKILL of the daemon, then a boot) in every state of an
/// update: the appliance starts again, reports, and ends the update in a
/// consistent state. One row per state (docs/OTA.md, "States").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_power_loss_in_every_update_state_leaves_the_appliance_consistent_and_reporting() {
    struct Row {
        /// The state `update.json` says when the power goes.
        state: UpdateState,
        /// How to stop there: the test hook, or (downloading) a slow server
        /// and some bytes on disk.
        hold: Option<&'static str>,
        failing_line: bool,
        ends: UpdateState,
        running: &'static str,
        slot: &'static str,
    }
    let rows = [
        Row {
            state: UpdateState::Downloading,
            hold: None,
            failing_line: false,
            ends: UpdateState::Committed,
            running: "1.1.0",
            slot: "B",
        },
        Row {
            state: UpdateState::Verified,
            hold: Some("verified"),
            failing_line: false,
            ends: UpdateState::Committed,
            running: "1.1.0",
            slot: "B",
        },
        Row {
            state: UpdateState::Installing,
            hold: Some("installing"),
            failing_line: false,
            ends: UpdateState::Committed,
            running: "1.1.0",
            slot: "B",
        },
        // rauc install has finished (slot B written and primary), the agent
        // has not yet written `installed`: the next boot starts slot B.
        Row {
            state: UpdateState::Installing,
            hold: Some("installing_done"),
            failing_line: false,
            ends: UpdateState::Committed,
            running: "1.1.0",
            slot: "B",
        },
        Row {
            state: UpdateState::Installed,
            hold: Some("installed"),
            failing_line: false,
            ends: UpdateState::Committed,
            running: "1.1.0",
            slot: "B",
        },
        Row {
            state: UpdateState::Booted,
            hold: Some("booted"),
            failing_line: false,
            ends: UpdateState::Committed,
            running: "1.1.0",
            slot: "B",
        },
        Row {
            state: UpdateState::RollingBack,
            hold: Some("rolling_back"),
            failing_line: true,
            ends: UpdateState::RolledBack,
            running: FACTORY,
            slot: "A",
        },
    ];
    for row in rows {
        let name = row.hold.unwrap_or(row.state.as_str());
        let dir = tempfile::tempdir().unwrap();
        let mut m = Machine::new(dir.path(), row.failing_line).await;
        m.hold = row.hold;
        if row.hold.is_none() {
            m.https.set_mode(Mode {
                slow: true,
                ..Mode::default()
            });
        }
        m.power_on();
        let b = make_bundle(dir.path(), "1.1.0", &m.good);
        let c = m.offer("/fw/crossline-1.1.0.raucb", &b);
        let part = dir.path().join("data/update/bundle.part");
        let stopped = m
            .drive(&c, |m| {
                m.state() == row.state.as_str()
                    && match row.hold {
                        // The agent says it holds there.
                        Some(_) => std::fs::read_to_string(m.dir.join("appliance.log"))
                            .is_ok_and(|l| l.contains("CROSSLINE_TEST_UPDATE_HOLD: holding here")),
                        None => std::fs::metadata(&part).is_ok_and(|p| p.len() > 0),
                    }
            })
            .await;
        assert!(
            stopped.is_none(),
            "{name}: ended before the power loss: {stopped:?}"
        );
        m.power_loss();
        m.https.set_mode(Mode::default());
        m.power_on();
        let r = m.drive(&c, |_| false).await.unwrap();
        assert_eq!(
            r.ok,
            row.ends == UpdateState::Committed,
            "{name}: {r:?}\n{}",
            m.log_tail()
        );
        m.assert_ended(row.ends, row.running, row.slot).await;
        if row.state == UpdateState::Downloading {
            let reqs = m.https.requests("/fw/crossline-1.1.0.raucb");
            assert!(
                reqs.last()
                    .unwrap()
                    .as_deref()
                    .is_some_and(|r| r != "bytes=0-"),
                "{name}: the download resumed with a Range: {reqs:?}"
            );
        }
        eprintln!(
            "row {name}: power loss → {} after {} boots",
            row.ends.as_str(),
            m.boots
        );
    }
}
