//! The generated Mosquitto configuration, run by Debian's real `mosquitto` on a
//! free port, enforces the same rules as the embedded broker.

// Helpers outside #[test] functions fail loudly too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::Read;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{Cred, Flavour, WAIT};
use crossline_broker::mosquitto_conf::{self, MosquittoFiles};
use crossline_testkit::free_port;

/// A running `mosquitto`, killed when dropped (also when a test fails).
struct Mosquitto {
    child: Child,
    log: PathBuf,
    port: u16,
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Mosquitto {
    fn log(&self) -> String {
        let mut text = String::new();
        if let Ok(mut f) = std::fs::File::open(&self.log) {
            let _ = f.read_to_string(&mut text);
        }
        text
    }

    /// Renders the configuration for a free port and starts mosquitto on it.
    fn start(dir: &Path, users: &[(&str, &str)], services: &[&str]) -> (Mosquitto, MosquittoFiles) {
        common::require_program("mosquitto", "mosquitto");
        let mut last_log = String::new();
        for _attempt in 0..3 {
            let port = free_port();
            let files = mosquitto_conf::render(dir, port, users, services).expect("render");
            readable_by_mosquitto(dir, &files);
            let log = dir.join("mosquitto.log");
            let log_file = std::fs::File::create(&log).unwrap();
            let child = Command::new("mosquitto")
                .arg("-c")
                .arg(&files.conf)
                .stdin(Stdio::null())
                .stdout(log_file.try_clone().unwrap())
                .stderr(log_file)
                .spawn()
                .expect("spawn mosquitto");
            let mut m = Mosquitto { child, log, port };
            let deadline = Instant::now() + WAIT;
            loop {
                if let Some(status) = m.child.try_wait().unwrap() {
                    last_log = m.log();
                    assert!(
                        last_log.contains("Address already in use"),
                        "mosquitto exited ({status}): {last_log}"
                    );
                    break; // the port was taken meanwhile: try another one
                }
                if TcpStream::connect(("127.0.0.1", port)).is_ok() && m.log().contains("running") {
                    return (m, files);
                }
                assert!(
                    Instant::now() < deadline,
                    "mosquitto not listening: {}",
                    m.log()
                );
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        panic!("mosquitto could not get a free port: {last_log}");
    }
}

/// Started as root, mosquitto switches to the `mosquitto` user before it reads
/// the password and ACL files: hand the directory over to that user, as an
/// installation would.
fn readable_by_mosquitto(dir: &Path, files: &MosquittoFiles) {
    use std::os::unix::fs::MetadataExt;
    if std::fs::metadata(dir).unwrap().uid() != 0 {
        return;
    }
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap();
    let entry = passwd
        .lines()
        .find(|l| l.starts_with("mosquitto:"))
        .expect("running as root, but there is no mosquitto user to run the broker as");
    let fields: Vec<&str> = entry.split(':').collect();
    let (uid, gid): (u32, u32) = (fields[2].parse().unwrap(), fields[3].parse().unwrap());
    for path in [dir, &files.conf, &files.password_file, &files.acl_file] {
        std::os::unix::fs::chown(path, Some(uid), Some(gid)).unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generated_config_enforces_the_same_rules_in_real_mosquitto() {
    common::require_mosquitto_clients();
    let dir = tempfile::tempdir().unwrap();
    let (mosquitto, _files) = Mosquitto::start(
        dir.path(),
        &[
            ("a", "secret-a"),
            ("b", "secret-b"),
            ("c", "secret-c"),
            ("mgmt", "secret-mgmt"),
        ],
        &["mgmt"],
    );
    let port = mosquitto.port;

    // Only the listener we asked for (an option placed above it would make
    // mosquitto open 0.0.0.0:1883 too).
    let log = mosquitto.log();
    let opened: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("listen socket on port"))
        .collect();
    assert!(
        !opened.is_empty() && opened.iter().all(|l| l.contains(&format!("port {port}."))),
        "{log}"
    );

    // Unknown, wrong and missing credentials are refused.
    for (cred, what) in [
        (Cred::new("a", "a", "secret-b"), "wrong password"),
        (Cred::new("z", "z", "secret-a"), "unknown user"),
        (Cred::new("a", "", ""), "no credential"),
    ] {
        let out = common::publish(port, &cred, "crossline/v1/d/a/events", "x").await;
        assert!(!out.success, "{what} accepted: {}", out.output);
        assert!(
            out.output.contains("not authorised"),
            "{what}: {}",
            out.output
        );
    }

    let forged = common::cross_device_checks(
        port,
        Flavour::Mosquitto,
        &Cred::new("a", "a", "secret-a"),
        &Cred::new("b", "b", "secret-b"),
        &Cred::new("c", "c", "secret-c"),
        &Cred::new("mgmt-test", "mgmt", "secret-mgmt"),
    )
    .await;
    // Mosquitto drops a forbidden publish silently (PUBACK, no delivery).
    assert!(forged.success, "{}", forged.output);
    drop(mosquitto);
}
