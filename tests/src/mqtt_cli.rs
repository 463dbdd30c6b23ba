//! Debian's mosquitto_pub / mosquitto_sub as a third-party MQTT client in
//! tests (they hold one credential and try to reach what it must not).

use crate::proc::which;
use std::process::{Command, Stdio};
use std::time::Duration;

/// `program` (`mosquitto_pub` or `mosquitto_sub`) connecting to 127.0.0.1:`port`
/// with client id `client`, user `user` and password `secret`; the caller
/// adds the rest (topics, `--cafile`, ...).
pub fn client_command(program: &str, port: u16, client: &str, user: &str, secret: &str) -> Command {
    let mut cmd = Command::new(which(program));
    cmd.args([
        "-h",
        "127.0.0.1",
        "-p",
        &port.to_string(),
        "-i",
        client,
        "-u",
        user,
        "-P",
        secret,
    ]);
    cmd
}

/// `mosquitto_pub` once with client id `client`, user `user`; returns
/// whether the broker accepted the connection (and the QoS 1 publish).
pub fn publish_as(
    port: u16,
    client: &str,
    user: &str,
    secret: &str,
    topic: &str,
    msg: &str,
) -> bool {
    client_command("mosquitto_pub", port, client, user, secret)
        .args(["-t", topic, "-m", msg, "-q", "1"])
        .stderr(Stdio::null())
        .status()
        .unwrap()
        .success()
}

/// A `mosquitto_sub` whose output lines arrive on a channel as they come.
pub struct Sub {
    child: std::process::Child,
    lines: std::sync::mpsc::Receiver<String>,
    pub seen: Vec<String>,
}

impl Sub {
    pub fn start(port: u16, client: &str, user: &str, secret: &str, filters: &[&str]) -> Sub {
        let mut cmd = client_command("mosquitto_sub", port, client, user, secret);
        cmd.args(["-v", "-q", "1"]);
        for f in filters {
            cmd.args(["-t", f]);
        }
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let out = child.stdout.take().unwrap();
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for l in std::io::BufRead::lines(std::io::BufReader::new(out)).map_while(Result::ok) {
                if tx.send(l).is_err() {
                    break;
                }
            }
        });
        Sub {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Waits until a line containing `needle` arrives; while waiting, calls
    /// `poke` every 300 ms (e.g. to publish the message again).
    pub fn wait_for(&mut self, needle: &str, mut poke: impl FnMut()) {
        let end = std::time::Instant::now() + Duration::from_secs(20);
        poke();
        loop {
            match self.lines.recv_timeout(Duration::from_millis(300)) {
                Ok(l) => {
                    let hit = l.contains(needle);
                    self.seen.push(l);
                    if hit {
                        return;
                    }
                }
                Err(_) => {
                    assert!(
                        std::time::Instant::now() < end,
                        "no {needle:?} within 20 s; saw {:?}",
                        self.seen
                    );
                    poke();
                }
            }
        }
    }

    pub fn saw(&self, needle: &str) -> bool {
        self.seen.iter().any(|l| l.contains(needle))
    }
}

impl Drop for Sub {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
