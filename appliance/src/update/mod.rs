//! The update agent (docs/OTA.md): `install_update` from mgmt → download
//! (HTTPS, pinned CA, resumable) → sha256 → signature (`rauc info
//! --keyring`) → `rauc install` into the other slot → reboot → health check
//! → mark good (committed) or mark bad and fall back (rolled back).
//!
//! Every step is a state persisted in `<data_dir>/update.json` (written
//! atomically: tmp, fsync, rename) before it is acted on, so a power loss in
//! any state resumes where it stopped: the download from the bytes on disk,
//! verification and install again from the bundle on disk, the health
//! check after the next boot. Progress goes to mgmt as
//! [`UpdateStatus`] on the `update` topic; the command's
//! [`CommandResult`] when the update has ended, again for every repeat.

pub mod download;
pub mod rauc;

use crate::config::{CommandsConfig, UpdateConfig};
use crate::enroll::write_durably;
use crate::fleet::truncate_utf8;
use crate::uplink::{LinkState, Outbound};
use anyhow::{Context, Result};
use crossline_core::{EventId, ModemHealth};
use crossline_proto::recording::sha256_file;
use crossline_proto::{
    Command, CommandKind, CommandResult, Kind, UpdateState, UpdateStatus, compare_versions, encode,
};
use rauc::{Installer, SlotStatus};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// The update a command asked for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Job {
    pub command: EventId,
    pub bundle: String,
    pub sha256: String,
    pub bytes: u64,
    pub version: String,
    pub allow_downgrade: bool,
    /// The version and slot running when it was accepted.
    pub from_version: String,
    pub from_slot: String,
    /// The slot it is installed into (the other one).
    pub target_slot: String,
}

/// `<data_dir>/update.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    pub state: UpdateState,
    #[serde(default)]
    pub job: Option<Job>,
    /// Why it failed or rolled back.
    #[serde(default)]
    pub reason: Option<String>,
    /// The command's result, once the update has ended.
    #[serde(default)]
    pub result: Option<(bool, String)>,
}

impl Default for Record {
    fn default() -> Self {
        Record {
            state: UpdateState::Idle,
            job: None,
            reason: None,
            result: None,
        }
    }
}

pub fn record_path(data_dir: &Path) -> PathBuf {
    data_dir.join("update.json")
}

/// The record on disk (the default when there is none; an unreadable one
/// is kept aside as `update.json.bad` and treated as none).
pub fn load_record(data_dir: &Path) -> Record {
    let path = record_path(data_dir);
    match std::fs::read(&path) {
        Ok(b) => match serde_json::from_slice(&b) {
            Ok(r) => r,
            Err(e) => {
                warn!(error = %e, "unreadable update.json; kept as update.json.bad, starting idle");
                let _ = std::fs::rename(&path, path.with_extension("json.bad"));
                Record::default()
            }
        },
        Err(_) => Record::default(),
    }
}

/// What the agent shares with the rest of the appliance.
pub struct UpdateIo {
    /// `install_update` commands.
    pub commands: mpsc::Receiver<Command>,
    pub outbound: mpsc::Sender<Outbound>,
    pub link: watch::Receiver<LinkState>,
    /// The modems' latest health (from telemetry).
    pub modems: watch::Receiver<Vec<ModemHealth>>,
}

/// Everything the agent needs, cheap to clone into its tasks.
#[derive(Clone)]
struct Agent {
    cfg: UpdateConfig,
    reboot: CommandsConfig,
    data_dir: PathBuf,
    device: String,
    /// Lines that must be registered for the health check.
    lines: Vec<String>,
    source: Option<download::Source>,
    rauc: rauc::Rauc,
    out: mpsc::Sender<Outbound>,
    rec: Arc<Mutex<Record>>,
    /// Running version and booted slot (learned at start).
    running: Arc<Mutex<(String, Option<String>)>>,
    /// Bytes on disk while downloading.
    downloaded: Arc<Mutex<Option<u64>>>,
    shutdown: CancellationToken,
}

fn bundle_path(data_dir: &Path) -> PathBuf {
    data_dir.join("update").join("bundle.raucb")
}

/// Runs the update agent until `shutdown` (or until it reboots the
/// appliance, which cancels `shutdown`).
#[allow(clippy::too_many_arguments)]
pub async fn run(
    cfg: UpdateConfig,
    reboot: CommandsConfig,
    mqtt: crate::config::MqttConfig,
    data_dir: PathBuf,
    device: String,
    lines: Vec<String>,
    io: UpdateIo,
    shutdown: CancellationToken,
) -> Result<()> {
    let UpdateIo {
        mut commands,
        outbound,
        mut link,
        modems,
    } = io;
    std::fs::create_dir_all(data_dir.join("update"))
        .with_context(|| format!("creating {}", data_dir.join("update").display()))?;
    let ca = cfg.ca_file.clone().or(mqtt.ca_file.clone());
    let auth = mqtt.load_secret().ok().map(|s| {
        use base64::Engine;
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{device}:{s}"))
        )
    });
    let source = match ca
        .as_deref()
        .map(|ca| download::Source::new(&cfg.server, ca, auth))
    {
        Some(Ok(s)) => Some(s),
        Some(Err(e)) => {
            warn!(error = %format!("{e:#}"), "updates: cannot set up HTTPS to mgmt; install_update will fail");
            None
        }
        None => None,
    };
    let agent = Agent {
        rauc: rauc::Rauc {
            program: cfg.rauc.clone(),
        },
        cfg,
        reboot,
        data_dir: data_dir.clone(),
        device,
        lines,
        source,
        out: outbound,
        rec: Arc::new(Mutex::new(load_record(&data_dir))),
        running: Arc::new(Mutex::new((factory_version(None), None))),
        downloaded: Arc::new(Mutex::new(None)),
        shutdown: shutdown.clone(),
    };
    // What is running: RAUC knows (the booted slot, and the version it
    // installed there). Its service may still be starting: ask a while.
    let status = agent.wait_status().await;
    if let Some(s) = &status {
        let version = s
            .slot(&s.booted)
            .and_then(|sl| sl.version.clone())
            .filter(|v| crossline_proto::update::check_version(v).is_ok())
            .unwrap_or_else(|| factory_version(agent.cfg.version_file.as_deref()));
        *lock(&agent.running) = (version, Some(s.booted.clone()));
    } else {
        *lock(&agent.running) = (factory_version(agent.cfg.version_file.as_deref()), None);
    }
    {
        let (v, slot) = lock(&agent.running).clone();
        info!(running = %v, booted_slot = ?slot, state = lock(&agent.rec).state.as_str(), "update agent starting");
    }
    let mut drive = tokio::spawn(
        agent
            .clone()
            .drive(true, status, modems.clone(), link.clone()),
    );
    let mut driving = true;
    agent.publish();
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            r = &mut drive, if driving => {
                driving = false;
                if let Err(e) = r {
                    warn!(error = %e, "update agent task failed");
                }
            }
            changed = link.changed() => {
                if changed.is_err() {
                    break;
                }
                if matches!(*link.borrow_and_update(), LinkState::Up { .. }) {
                    agent.publish();
                }
            }
            c = commands.recv() => {
                let Some(c) = c else { break };
                if agent.accept(&c).await {
                    // The last update had ended, so its run has returned
                    // (or is returning): wait for it, start the new one.
                    if driving {
                        let _ = (&mut drive).await;
                    }
                    drive = tokio::spawn(agent.clone().drive(false, None, modems.clone(), link.clone()));
                    driving = true;
                }
            }
        }
    }
    drive.abort();
    Ok(())
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The version of a slot RAUC did not install: `version_file`
/// (`VERSION_ID=` of an os-release file, or the version alone), else this
/// daemon's version.
fn factory_version(file: Option<&Path>) -> String {
    let from_file = file
        .and_then(|f| std::fs::read_to_string(f).ok())
        .and_then(|text| {
            let line = text
                .lines()
                .find_map(|l| l.strip_prefix("VERSION_ID="))
                .or_else(|| text.lines().next())?;
            let v = line.trim().trim_matches('"').to_string();
            crossline_proto::update::check_version(&v).ok().map(|_| v)
        });
    from_file.unwrap_or_else(|| env!("CARGO_PKG_VERSION").to_string())
}

/// Free bytes on the file system holding `dir`.
fn free_bytes(dir: &Path) -> Option<u64> {
    let s = nix::sys::statvfs::statvfs(dir).ok()?;
    Some((s.blocks_available() as u64).saturating_mul(s.fragment_size() as u64))
}

impl Agent {
    async fn wait_status(&self) -> Option<SlotStatus> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            match self.rauc.status().await {
                Ok(s) => return Some(s),
                Err(e) if tokio::time::Instant::now() >= deadline => {
                    warn!(error = %e, "updates: rauc does not answer; slot state unknown");
                    return None;
                }
                Err(_) => {}
            }
            tokio::select! {
                _ = self.shutdown.cancelled() => return None,
                _ = tokio::time::sleep(Duration::from_millis(500)) => {}
            }
        }
    }

    fn status_msg(&self) -> UpdateStatus {
        let rec = lock(&self.rec).clone();
        let (running, booted) = lock(&self.running).clone();
        let downloaded = if rec.state == UpdateState::Downloading {
            *lock(&self.downloaded)
        } else {
            None
        };
        let mut reason = rec.reason.clone();
        if let Some(r) = &mut reason {
            truncate_utf8(r, crossline_proto::update::MAX_UPDATE_REASON);
        }
        UpdateStatus {
            v: crossline_proto::VERSION,
            running,
            booted_slot: booted,
            state: rec.state,
            command: rec.job.as_ref().map(|j| j.command),
            target: rec.job.as_ref().map(|j| j.version.clone()),
            downloaded: downloaded.map(|d| d.min(rec.job.as_ref().map_or(d, |j| j.bytes))),
            bytes: rec.job.as_ref().map(|j| j.bytes),
            reason,
        }
    }

    /// Publishes the current status (dropped while offline: sent again on
    /// connect).
    fn publish(&self) {
        let _ = self.out.try_send(Outbound {
            kind: Kind::Update,
            payload: encode(&self.status_msg()),
        });
    }

    async fn send_result(&self, id: EventId, ok: bool, output: &str) {
        let mut output = output.to_string();
        truncate_utf8(&mut output, crossline_proto::msg::MAX_OUTPUT);
        let r = CommandResult {
            v: crossline_proto::VERSION,
            id,
            ok,
            output,
        };
        let _ = self
            .out
            .send(Outbound {
                kind: Kind::Result,
                payload: encode(&r),
            })
            .await;
    }

    /// Persists `rec` (tmp + fsync + rename) and publishes it.
    fn set(&self, f: impl FnOnce(&mut Record)) -> Result<()> {
        let snapshot = {
            let mut rec = lock(&self.rec);
            f(&mut rec);
            rec.clone()
        };
        write_durably(
            &record_path(&self.data_dir),
            &serde_json::to_vec_pretty(&snapshot)?,
        )?;
        info!(state = snapshot.state.as_str(), reason = ?snapshot.reason, "update state");
        self.publish();
        Ok(())
    }

    /// Ends the update with a result (published, and kept for repeats).
    async fn finish(&self, state: UpdateState, ok: bool, output: String) {
        let bundle = bundle_path(&self.data_dir);
        let _ = std::fs::remove_file(&bundle);
        let _ = std::fs::remove_file(bundle.with_extension("part"));
        let reason = (!ok).then(|| output.clone());
        if let Err(e) = self.set(|r| {
            r.state = state;
            r.reason = reason;
            r.result = Some((ok, output.clone()));
        }) {
            warn!(error = %format!("{e:#}"), "cannot keep the update's result");
        }
        let id = lock(&self.rec).job.as_ref().map(|j| j.command);
        if let Some(id) = id {
            self.send_result(id, ok, &output).await;
        }
    }

    /// Handles an `install_update`: a repeat gets the kept result (or the
    /// status while it runs), another one while one runs is refused, a new
    /// one is checked and started. Whether the update should be driven.
    async fn accept(&self, c: &Command) -> bool {
        let CommandKind::InstallUpdate {
            bundle,
            sha256,
            bytes,
            version,
            allow_downgrade,
        } = &c.kind
        else {
            return false;
        };
        let rec = lock(&self.rec).clone();
        if let Some(job) = &rec.job
            && job.command == c.id
        {
            match &rec.result {
                Some((ok, out)) => self.send_result(c.id, *ok, out).await,
                None => self.publish(),
            }
            return false;
        }
        if !rec.state.is_final() {
            let (cur, ver) = rec
                .job
                .as_ref()
                .map(|j| (j.command.to_string(), j.version.clone()))
                .unwrap_or_default();
            self.send_result(
                c.id,
                false,
                &format!(
                    "refused: update {cur} to {ver} is under way ({}); nothing was done",
                    rec.state.as_str()
                ),
            )
            .await;
            return false;
        }
        let (running, booted) = lock(&self.running).clone();
        let checked: Result<Job, String> = (|| {
            let Some(booted) = booted.clone() else {
                return Err(
                    "refused: rauc does not answer (is the RAUC service running?); nothing was done"
                        .to_string(),
                );
            };
            if self.source.is_none() {
                return Err(
                    "refused: no HTTPS connection to mgmt can be set up ([update] server, ca_file); nothing was done".to_string(),
                );
            }
            match compare_versions(version, &running) {
                std::cmp::Ordering::Less if !allow_downgrade => {
                    return Err(format!(
                        "refused: {version} is older than the running {running} and the command does not allow a downgrade; nothing was done"
                    ));
                }
                std::cmp::Ordering::Equal => {
                    return Err(format!("already running {running}; nothing to do"));
                }
                _ => {}
            }
            let dir = self.data_dir.join("update");
            if let Some(free) = free_bytes(&dir)
                && free < bytes.saturating_add(16 << 20)
            {
                return Err(format!(
                    "refused: the bundle needs {bytes} bytes, {} has {free} free; nothing was done",
                    dir.display()
                ));
            }
            Ok(Job {
                command: c.id,
                bundle: bundle.clone(),
                sha256: sha256.clone(),
                bytes: *bytes,
                version: version.clone(),
                allow_downgrade: *allow_downgrade,
                from_version: running.clone(),
                from_slot: booted,
                // Known once the status is read at install time.
                target_slot: String::new(),
            })
        })();
        match checked {
            Ok(job) => {
                info!(command = %c.id, version = %job.version, bundle = %job.bundle, bytes = job.bytes, "install_update accepted");
                let bundle = bundle_path(&self.data_dir);
                let _ = std::fs::remove_file(&bundle);
                let _ = std::fs::remove_file(bundle.with_extension("part"));
                *lock(&self.downloaded) = Some(0);
                if let Err(e) = self.set(|r| {
                    *r = Record {
                        state: UpdateState::Downloading,
                        job: Some(job),
                        reason: None,
                        result: None,
                    }
                }) {
                    self.send_result(
                        c.id,
                        false,
                        &format!("refused: cannot record the update: {e:#}"),
                    )
                    .await;
                    return false;
                }
                true
            }
            Err(why) => {
                let ok = why.starts_with("already running");
                info!(command = %c.id, ok, reason = %why, "install_update not started");
                self.send_result(c.id, ok, &why).await;
                false
            }
        }
    }

    /// Test hook (debug builds only): `CROSSLINE_TEST_UPDATE_HOLD=<state>`
    /// stops the agent right after it has persisted that state, so a test
    /// can kill the process there.
    async fn hold(&self, state: UpdateState) {
        self.hold_at(state.as_str()).await;
    }

    /// [`Self::hold`] at a named point (`installing_done`: `rauc install`
    /// has finished, `installed` is not yet written).
    async fn hold_at(&self, point: &str) {
        #[cfg(debug_assertions)]
        if std::env::var("CROSSLINE_TEST_UPDATE_HOLD").is_ok_and(|s| s == point) {
            warn!(point, "CROSSLINE_TEST_UPDATE_HOLD: holding here");
            self.shutdown.cancelled().await;
            std::future::pending::<()>().await;
        }
        let _ = point;
    }

    /// Drives the update from its persisted state to its end (or to a
    /// reboot). `at_boot`: this run starts with the daemon, and `boot` is
    /// the slot status read then (what the bootloader did).
    async fn drive(
        self,
        at_boot: bool,
        boot: Option<SlotStatus>,
        modems: watch::Receiver<Vec<ModemHealth>>,
        link: watch::Receiver<LinkState>,
    ) {
        let mut fresh = at_boot;
        loop {
            let rec = lock(&self.rec).clone();
            let Some(job) = rec.job.clone() else { return };
            self.hold(rec.state).await;
            let found_at_boot = std::mem::replace(&mut fresh, false);
            if found_at_boot
                && boot.is_none()
                && !matches!(rec.state, UpdateState::Downloading)
                && !rec.state.is_final()
            {
                warn!(
                    state = rec.state.as_str(),
                    "rauc does not answer: the update waits for the next start"
                );
                return;
            }
            let rolled_back = |s: &SlotStatus, why: String| {
                format!(
                    "rolled back to {} on slot {}: {why}",
                    job.from_version, s.booted
                )
            };
            let step = match rec.state {
                UpdateState::Idle
                | UpdateState::Committed
                | UpdateState::RolledBack
                | UpdateState::Failed => return,
                UpdateState::Downloading => self.download(&job).await,
                UpdateState::Verified => self.install(&job).await,
                UpdateState::Installing => match &boot {
                    // Power lost while installing, and RAUC had finished:
                    // the bootloader started the new slot.
                    Some(s)
                        if found_at_boot
                            && s.booted == job.target_slot
                            && s.slot(&s.booted).and_then(|x| x.version.as_deref())
                                == Some(job.version.as_str()) =>
                    {
                        self.set(|r| r.state = UpdateState::Booted)
                            .map_err(|e| format!("failed: {e:#}"))
                    }
                    _ => self.install(&job).await,
                },
                UpdateState::Installed if !found_at_boot => {
                    // Installed in this run: reboot into it.
                    self.reboot().await;
                    return;
                }
                UpdateState::Installed => match &boot {
                    Some(s) if s.booted == job.target_slot => self
                        .set(|r| r.state = UpdateState::Booted)
                        .map_err(|e| format!("failed: {e:#}")),
                    Some(s) => {
                        let why = format!(
                            "the new slot {} did not boot; the bootloader started slot {} again",
                            job.target_slot, s.booted
                        );
                        self.finish(UpdateState::RolledBack, false, rolled_back(s, why))
                            .await;
                        return;
                    }
                    None => return,
                },
                UpdateState::Booted => match &boot {
                    Some(s) if s.booted == job.target_slot => {
                        if let Err(why) = self.health(&job, modems.clone(), link.clone()).await {
                            self.finish(UpdateState::Failed, false, why).await;
                        }
                        return;
                    }
                    Some(s) => {
                        let why = rec.reason.clone().unwrap_or_else(|| {
                            "the new slot was not confirmed in time and the bootloader fell back"
                                .into()
                        });
                        self.finish(UpdateState::RolledBack, false, rolled_back(s, why))
                            .await;
                        return;
                    }
                    None => return,
                },
                UpdateState::RollingBack if !found_at_boot => return,
                UpdateState::RollingBack => match &boot {
                    Some(s) if s.booted != job.target_slot => {
                        let why = rec.reason.clone().unwrap_or_default();
                        self.finish(UpdateState::RolledBack, false, rolled_back(s, why))
                            .await;
                        return;
                    }
                    // Still on the bad slot (power lost before the reboot):
                    // mark it bad again, reboot.
                    _ => {
                        if let Err(e) = self.rauc.mark_bad().await {
                            warn!(error = %e, "cannot mark the booted slot bad");
                        }
                        self.reboot().await;
                        return;
                    }
                },
            };
            if let Err(why) = step {
                self.finish(UpdateState::Failed, false, why).await;
                return;
            }
            if self.shutdown.is_cancelled() {
                return;
            }
        }
    }

    async fn download(&self, job: &Job) -> Result<(), String> {
        let Some(src) = &self.source else {
            return Err("failed: no HTTPS connection to mgmt can be set up".into());
        };
        let part = bundle_path(&self.data_dir).with_extension("part");
        let last = Arc::new(Mutex::new(std::time::Instant::now()));
        let total = job.bytes;
        let me = self.clone();
        let progress = move |n: u64| {
            *lock(&me.downloaded) = Some(n);
            let mut l = lock(&last);
            if l.elapsed() >= Duration::from_secs(1) || n == total {
                *l = std::time::Instant::now();
                info!(downloaded = n, total, "downloading the update");
                me.publish();
            }
        };
        let mut resumed = std::fs::metadata(&part)
            .map(|m| m.len() > 0)
            .unwrap_or(false);
        loop {
            download::fetch(
                src,
                &job.bundle,
                &part,
                job.bytes,
                &progress,
                &self.shutdown,
            )
            .await
            .map_err(|e| format!("failed: download: {e:#}"))?;
            let got = sha256_file(&part).map_err(|e| format!("failed: reading the bundle: {e}"))?;
            if got == job.sha256 {
                break;
            }
            // A resumed file may hold a torn tail from a power loss:
            // one full download more before giving up.
            if resumed {
                warn!("sha256 mismatch after a resumed download; downloading it whole once more");
                let _ = std::fs::remove_file(&part);
                resumed = false;
                continue;
            }
            let _ = std::fs::remove_file(&part);
            return Err(format!(
                "refused: the bundle's sha256 is {got}, the command says {}; nothing was installed",
                job.sha256
            ));
        }
        let bundle = bundle_path(&self.data_dir);
        std::fs::rename(&part, &bundle).map_err(|e| format!("failed: {e}"))?;
        self.verify(job).await?;
        self.set(|r| r.state = UpdateState::Verified)
            .map_err(|e| format!("failed: {e:#}"))
    }

    /// Size, sha256 and signature of the bundle on disk, and that it is
    /// the version the command named.
    async fn verify(&self, job: &Job) -> Result<(), String> {
        let bundle = bundle_path(&self.data_dir);
        let size = std::fs::metadata(&bundle)
            .map_err(|e| format!("failed: the bundle is gone: {e}"))?
            .len();
        if size != job.bytes {
            return Err(format!(
                "refused: the bundle has {size} bytes, the command says {}",
                job.bytes
            ));
        }
        let got = sha256_file(&bundle).map_err(|e| format!("failed: reading the bundle: {e}"))?;
        if got != job.sha256 {
            return Err(format!(
                "refused: the bundle's sha256 is {got}, the command says {}; nothing was installed",
                job.sha256
            ));
        }
        let info = self
            .rauc
            .verify(&bundle, &self.cfg.keyring)
            .await
            .map_err(|e| {
                format!(
                    "refused: the bundle's signature does not verify against the keyring {}: {e}; nothing was installed",
                    self.cfg.keyring.display()
                )
            })?;
        if info.version != job.version {
            return Err(format!(
                "refused: the bundle is version {:?}, the command says {}; nothing was installed",
                info.version, job.version
            ));
        }
        if compare_versions(&info.version, &job.from_version) == std::cmp::Ordering::Less
            && !job.allow_downgrade
        {
            return Err(format!(
                "refused: {} is older than the running {}; nothing was installed",
                info.version, job.from_version
            ));
        }
        info!(version = %info.version, compatible = %info.compatible, "bundle verified (sha256, signature)");
        Ok(())
    }

    async fn install(&self, job: &Job) -> Result<(), String> {
        // Again: the bundle on disk may not be the one verified before a
        // power loss.
        self.verify(job).await?;
        let status = self
            .rauc
            .status()
            .await
            .map_err(|e| format!("failed: rauc status: {e}"))?;
        let Some(target) = status.other() else {
            return Err("failed: rauc shows no single other slot to install into".into());
        };
        self.set(|r| {
            r.state = UpdateState::Installing;
            if let Some(j) = &mut r.job {
                j.target_slot = target.clone();
            }
        })
        .map_err(|e| format!("failed: {e:#}"))?;
        self.hold(UpdateState::Installing).await;
        info!(slot = %target, "installing the update");
        self.rauc
            .install(&bundle_path(&self.data_dir))
            .await
            .map_err(|e| format!("failed: rauc install: {e}"))?;
        self.hold_at("installing_done").await;
        let _ = std::fs::remove_file(bundle_path(&self.data_dir));
        self.set(|r| r.state = UpdateState::Installed)
            .map_err(|e| format!("failed: {e:#}"))
    }

    /// After booting the new slot: the uplink and every configured line up
    /// within `health_timeout_s`: mark good; else mark bad and fall back.
    async fn health(
        &self,
        job: &Job,
        mut modems: watch::Receiver<Vec<ModemHealth>>,
        mut link: watch::Receiver<LinkState>,
    ) -> Result<(), String> {
        let limit = Duration::from_secs(self.cfg.health_timeout_s);
        info!(
            timeout_s = limit.as_secs(),
            lines = ?self.lines,
            "new slot booted: health check"
        );
        let missing = |modems: &[ModemHealth], link: &LinkState| {
            let mut m = Vec::new();
            if !matches!(link, LinkState::Up { .. }) {
                m.push("the uplink to mgmt is not connected".to_string());
            }
            for l in &self.lines {
                if !modems.iter().any(|h| &h.line == l && h.registered) {
                    m.push(format!("line {l} is not registered"));
                }
            }
            m
        };
        let deadline = tokio::time::Instant::now() + limit;
        let verdict = loop {
            let m = missing(&modems.borrow_and_update(), &link.borrow_and_update());
            if m.is_empty() {
                break Ok(());
            }
            tokio::select! {
                _ = self.shutdown.cancelled() => return Ok(()),
                _ = tokio::time::sleep_until(deadline) => break Err(m),
                _ = modems.changed() => {}
                _ = link.changed() => {}
            }
        };
        match verdict {
            Ok(()) => {
                self.rauc
                    .mark_good()
                    .await
                    .map_err(|e| format!("failed: rauc mark-good: {e}"))?;
                let (_, slot) = lock(&self.running).clone();
                self.finish(
                    UpdateState::Committed,
                    true,
                    format!(
                        "committed: {} runs on slot {} (was {} on slot {})",
                        job.version,
                        slot.unwrap_or_default(),
                        job.from_version,
                        job.from_slot
                    ),
                )
                .await;
                Ok(())
            }
            Err(m) => {
                let why = format!(
                    "health check failed after {} s: {}",
                    limit.as_secs(),
                    m.join("; ")
                );
                warn!(reason = %why, "the new slot is unhealthy: marking it bad, falling back");
                if let Err(e) = self.rauc.mark_bad().await {
                    warn!(error = %e, "rauc mark-bad failed");
                }
                self.set(|r| {
                    r.state = UpdateState::RollingBack;
                    r.reason = Some(why.clone());
                })
                .map_err(|e| format!("failed: {e:#}"))?;
                self.hold(UpdateState::RollingBack).await;
                self.reboot().await;
                Ok(())
            }
        }
    }

    async fn reboot(&self) {
        // Give the status a moment to leave before the uplink stops.
        tokio::time::sleep(Duration::from_millis(300)).await;
        crate::fleet::reboot(&self.reboot, &self.shutdown, "update").await;
    }
}

impl std::fmt::Debug for Agent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Agent")
            .field("device", &self.device)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn factory_version_from_os_release_or_plain() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("os-release");
        std::fs::write(&f, "NAME=\"Crossline\"\nVERSION_ID=\"1.4.2\"\n").unwrap();
        assert_eq!(factory_version(Some(&f)), "1.4.2");
        std::fs::write(&f, "2.0.0\n").unwrap();
        assert_eq!(factory_version(Some(&f)), "2.0.0");
        assert_eq!(
            factory_version(Some(&dir.path().join("none"))),
            env!("CARGO_PKG_VERSION")
        );
    }

    #[test]
    fn record_roundtrip_and_bad_file() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(load_record(dir.path()), Record::default());
        std::fs::write(record_path(dir.path()), b"{garbage").unwrap();
        assert_eq!(load_record(dir.path()), Record::default());
        assert!(dir.path().join("update.json.bad").exists());
    }
}
