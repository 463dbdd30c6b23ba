//! Test support shared by the workspace's integration tests.
//!
//! [`free_port`] hands out a TCP port for a server a test starts in another
//! process. Binding `127.0.0.1:0` and closing the socket again (the usual
//! trick) races twice: the kernel may give the same port to another test
//! process a moment later, and any outgoing connection — an appliance
//! reconnecting to a broker that is being restarted — may take it as its
//! source port before the server binds it. So ports come from below the
//! kernel's ephemeral range (outgoing connections never use those), and each
//! one is reserved across processes with a lock file held until this process
//! exits.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::fs::{File, OpenOptions};
use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::Mutex;

/// Lock files of the ports this process holds; dropped (unlocked) at exit.
static HELD: Mutex<Vec<File>> = Mutex::new(Vec::new());

/// A TCP port on 127.0.0.1 that is free now and that no other test process
/// (using this function) and no outgoing connection will take while this
/// process runs.
pub fn free_port() -> u16 {
    reserve(seed())
}

/// The first port, from offset `start` in the range on (wrapping), that is
/// neither reserved nor listened on.
fn reserve(start: u32) -> u16 {
    let (low, high) = port_range();
    let span = u32::from(high - low);
    let dir = lock_dir();
    let start = start % span;
    for i in 0..span {
        let port = low + u16::try_from((start + i) % span).expect("port in range");
        let Ok(file) = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join(port.to_string()))
        else {
            continue;
        };
        if file.try_lock().is_err() {
            continue; // another test process holds it
        }
        if TcpListener::bind(("127.0.0.1", port)).is_err() {
            continue; // something else (not a test) listens there
        }
        HELD.lock().unwrap_or_else(|e| e.into_inner()).push(file);
        return port;
    }
    panic!("no free TCP port in {low}..{high} on 127.0.0.1");
}

/// Ports below the ephemeral range (`net.ipv4.ip_local_port_range`), where
/// the kernel never picks a source port for an outgoing connection.
fn port_range() -> (u16, u16) {
    let ephemeral_low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|p| p.parse().ok()))
        .unwrap_or(32768u16);
    let high = ephemeral_low.min(32768);
    assert!(
        high > 12000,
        "the ephemeral port range starts at {ephemeral_low}: no room below it for test servers"
    );
    (10000, high)
}

fn lock_dir() -> PathBuf {
    let dir = std::env::temp_dir().join("crossline-test-ports");
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("creating {}: {e}", dir.display()));
    dir
}

/// Where to start looking: differs between processes, so concurrent test
/// processes rarely contend for the same lock files.
fn seed() -> u32 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    std::process::id().wrapping_mul(2_654_435_761) ^ nanos
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_distinct_bindable_and_below_the_ephemeral_range() {
        let (_, high) = port_range();
        let ports: Vec<u16> = (0..50).map(|_| free_port()).collect();
        let mut unique = ports.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), ports.len(), "a port was handed out twice");
        for p in ports {
            assert!(p < high);
            TcpListener::bind(("127.0.0.1", p)).expect("handed-out port is bindable");
        }
    }

    #[test]
    fn a_port_held_by_another_process_is_skipped() {
        // The lock is per open file description: a second open of the same
        // lock file in this process behaves like another process's.
        let port = free_port();
        let other = OpenOptions::new()
            .write(true)
            .open(lock_dir().join(port.to_string()))
            .unwrap();
        assert!(other.try_lock().is_err(), "the reservation is not held");
    }

    #[test]
    fn a_port_someone_listens_on_is_skipped() {
        let (low, _) = port_range();
        // A listener that is not a test's: the port must be passed over.
        let busy = (0u16..1000)
            .find_map(|off| TcpListener::bind(("127.0.0.1", low + 5000 + off)).ok())
            .unwrap();
        let busy_port = busy.local_addr().unwrap().port();
        let got = reserve(u32::from(busy_port - low));
        assert_ne!(got, busy_port);
        assert!(
            got > busy_port,
            "the search goes on upwards from the busy port"
        );
    }
}

/// Real ALSA without a sound card, for tests that open a PCM: the `file`
/// plugin over the `null` device, configured per test and passed to a child
/// process (alsa-lib reads its configuration once per process).
pub mod alsa {
    use std::path::{Path, PathBuf};
    use std::process::Command;

    /// Debian's ALSA configuration, which a test's own is appended to.
    pub const SYSTEM_CONF: &str = "/usr/share/alsa/alsa.conf";

    /// Writes `dir/alsa-test.conf`: `crossline_play` plays into
    /// `dir/played.raw` and `crossline_capture` captures from
    /// `dir/line-in.raw` (raw samples, both over `null`), then `extra`.
    pub fn write_conf(dir: &Path, extra: &str) -> PathBuf {
        let path = dir.join("alsa-test.conf");
        let text = format!(
            "pcm.crossline_play {{\n  type file\n  slave.pcm null\n  file \"{out}\"\n  format raw\n}}\n\
             pcm.crossline_capture {{\n  type file\n  slave.pcm null\n  file \"/dev/null\"\n  infile \"{inp}\"\n  format raw\n}}\n{extra}",
            out = dir.join("played.raw").display(),
            inp = dir.join("line-in.raw").display(),
        );
        std::fs::write(&path, text).unwrap();
        path
    }

    /// Runs this test binary's ignored test `name`, alone, in a child
    /// process whose ALSA configuration is the system's plus `conf`, with
    /// `env` set; fails with the child's output unless it passed.
    pub fn run_ignored_child(name: &str, conf: &Path, env: &[(&str, &Path)]) {
        let mut cmd = Command::new(std::env::current_exe().unwrap());
        cmd.args([
            name,
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(
            "ALSA_CONFIG_PATH",
            format!("{SYSTEM_CONF}:{}", conf.display()),
        );
        for (k, v) in env {
            cmd.env(k, v);
        }
        let out = cmd.output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() && stdout.contains("1 passed"),
            "child {name} failed ({}):\n{stdout}\n{stderr}",
            out.status
        );
    }
}
