//! Debian's real gammu and gammu-smsd accept the simulator as a modem: they
//! identify it, store an incoming Cyrillic multipart SMS in their inbox and
//! send an SMS from their outbox through it.

// Test helpers outside #[test] functions may unwrap and panic too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use crossline_sim::{SimConfig, SimModem};
use tokio::process::Command;
use tokio::time::Instant;

fn require(program: &str) -> PathBuf {
    let path = PathBuf::from(program);
    assert!(
        path.exists(),
        "{program} is missing: install Debian's gammu and gammu-smsd (scripts/test does: apt-get install gammu gammu-smsd)"
    );
    path
}

/// Waits for a condition on the file system, polling with a deadline.
async fn wait_for<T>(what: &str, within: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {within:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn files_in(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gammu_identifies_the_simulated_modem() {
    let gammu = require("/usr/bin/gammu");
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("ttyMODEM");
    let modem = SimModem::spawn(SimConfig {
        link: Some(link.clone()),
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let cfg = dir.path().join("gammurc");
    std::fs::write(
        &cfg,
        format!("[gammu]\ndevice = {}\nconnection = at\n", link.display()),
    )
    .unwrap();
    let out = tokio::time::timeout(
        Duration::from_secs(60),
        Command::new(gammu)
            .arg("-c")
            .arg(&cfg)
            .arg("identify")
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("gammu identify timed out")
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "gammu identify failed: {stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("Quectel"), "{stdout}");
    assert!(stdout.contains("EC25"), "{stdout}");
    assert!(stdout.contains("861234051234567"), "{stdout}");
    assert!(stdout.contains("255031234567890"), "{stdout}");
    modem.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gammu_smsd_receives_and_sends_through_the_simulator() {
    let smsd = require("/usr/bin/gammu-smsd");
    let inject = require("/usr/bin/gammu-smsd-inject");
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("ttyMODEM");
    let modem = SimModem::spawn(SimConfig {
        link: Some(link.clone()),
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let sub = |name: &str| {
        let p = dir.path().join(name);
        std::fs::create_dir_all(&p).unwrap();
        p
    };
    let (inbox, outbox, sent, errors) = (sub("inbox"), sub("outbox"), sub("sent"), sub("error"));
    let cfg = dir.path().join("smsdrc");
    let pidfile = dir.path().join("smsd.pid");
    let log = dir.path().join("smsd.log");
    std::fs::write(
        &cfg,
        format!(
            "[gammu]\ndevice = {}\nconnection = at\n\n[smsd]\nservice = files\n\
             checksecurity = 0\ncheckbattery = 0\nloopsleep = 1\ncommtimeout = 1\n\
             receivefrequency = 1\ninboxpath = {}/\noutboxpath = {}/\nsentsmspath = {}/\n\
             errorsmspath = {}/\nlogfile = {}\ndebuglevel = 1\n",
            link.display(),
            inbox.display(),
            outbox.display(),
            sent.display(),
            errors.display(),
            log.display()
        ),
    )
    .unwrap();
    let mut child = Command::new(smsd)
        .arg("-c")
        .arg(&cfg)
        .arg("-p")
        .arg(&pidfile)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let smsd_log = || std::fs::read_to_string(&log).unwrap_or_default();

    // incoming: a Cyrillic message long enough for three UCS2 parts
    let text = "Привіт! Це перевірка довгого повідомлення українською мовою. ".repeat(3);
    let parts = modem.inject_sms("+380501234567", &text).unwrap();
    assert!(parts >= 2, "multipart: {parts}");
    let files = wait_for(
        "gammu-smsd to store every part",
        Duration::from_secs(60),
        || {
            let f = files_in(&inbox);
            (f.len() == parts).then_some(f)
        },
    )
    .await;
    let received: String = files
        .iter()
        .map(|f| std::fs::read_to_string(f).unwrap())
        .collect();
    assert_eq!(received, text, "inbox text; smsd log:\n{}", smsd_log());
    modem
        .wait_until(
            "gammu-smsd to delete the stored parts",
            Duration::from_secs(30),
            |m| m.stored().is_empty(),
        )
        .await
        .unwrap();

    // outgoing: through gammu-smsd-inject into the outbox
    let out = Command::new(&inject)
        .arg("-c")
        .arg(&cfg)
        .args(["TEXT", "+380671112233", "-text", "Hello from gammu-smsd"])
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let sent_msgs = modem
        .wait_sent(1, Duration::from_secs(60))
        .await
        .unwrap_or_else(|e| panic!("{e}; smsd log:\n{}", smsd_log()));
    assert_eq!(sent_msgs[0].to, "+380671112233");
    assert_eq!(sent_msgs[0].text, "Hello from gammu-smsd");

    // and a Cyrillic one, which gammu sends as UCS2
    let out = Command::new(&inject)
        .arg("-c")
        .arg(&cfg)
        .args([
            "TEXT",
            "+380671112233",
            "-unicode",
            "-text",
            "Дякуємо за звернення",
        ])
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let sent_msgs = modem
        .wait_sent(2, Duration::from_secs(60))
        .await
        .unwrap_or_else(|e| panic!("{e}; smsd log:\n{}", smsd_log()));
    assert_eq!(sent_msgs[1].text, "Дякуємо за звернення");
    wait_for(
        "gammu-smsd to move both messages to sent",
        Duration::from_secs(30),
        || (files_in(&sent).len() == 2).then_some(()),
    )
    .await;
    assert!(files_in(&errors).is_empty());

    let pid = std::fs::read_to_string(&pidfile).unwrap_or_default();
    assert_eq!(
        pid.trim().parse::<u32>().ok(),
        child.id(),
        "pidfile names our child"
    );
    child.kill().await.unwrap();
    modem.shutdown().await;
}
