//! The tokio task that owns the PTY: moves bytes between the line and [`Core`],
//! fires timers, and carries out plug/unplug.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;

use super::core::{Core, Out};
use super::pty::Pty;
use super::voice::{FRAME_BYTES, has_voice_port};
use crate::Error;

/// How long a write may wait for the driver to drain the line before the
/// bytes are dropped (nobody has the port open).
const WRITE_PATIENCE: Duration = Duration::from_millis(500);
/// One voice frame every 20 ms while audio flows.
const FRAME_PERIOD: Duration = Duration::from_millis(20);
/// Voice bytes kept for a driver that reads slowly (1 s); beyond that whole
/// frames are dropped, as a USB endpoint nobody drains drops them.
const MAX_VOICE_BACKLOG: usize = 50 * FRAME_BYTES;

pub(crate) enum Control {
    /// The handle changed the core; flush its output.
    Wake,
    Unplug(oneshot::Sender<()>),
    Replug(oneshot::Sender<Result<(), Error>>),
    /// The voice port alone re-enumerates (a new PTY behind the same link).
    ReplugVoice(oneshot::Sender<Result<(), Error>>),
    /// Raw bytes on the voice port: between frames while audio flows,
    /// at once otherwise.
    VoiceRaw(Vec<u8>, oneshot::Sender<()>),
    Shutdown(oneshot::Sender<()>),
}

pub(crate) fn lock(core: &Mutex<Core>) -> MutexGuard<'_, Core> {
    core.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The symlink the driver opens; removed (with its temp dir) when dropped.
pub(crate) struct Link {
    pub(crate) path: PathBuf,
    /// The slave device the link points at while plugged in.
    pub(crate) target: Option<PathBuf>,
    pub(crate) _dir: Option<tempfile::TempDir>,
}

impl Link {
    /// Points the link at `target`, atomically replacing an old link.
    pub(crate) fn point(&mut self, target: &Path) -> Result<(), Error> {
        let mut tmp = self.path.clone().into_os_string();
        tmp.push(format!(".tmp{}", std::process::id()));
        let tmp = PathBuf::from(tmp);
        let _ = std::fs::remove_file(&tmp);
        std::os::unix::fs::symlink(target, &tmp).map_err(|source| Error::Link {
            path: tmp.clone(),
            source,
        })?;
        std::fs::rename(&tmp, &self.path).map_err(|source| Error::Link {
            path: self.path.clone(),
            source,
        })?;
        self.target = Some(target.to_path_buf());
        Ok(())
    }

    /// Removes the link, unless someone else (another simulator) has
    /// re-pointed it meanwhile.
    pub(crate) fn remove(&mut self) {
        if let Some(target) = self.target.take()
            && std::fs::read_link(&self.path).is_ok_and(|t| t == target)
        {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        self.remove();
    }
}

pub(crate) struct Task {
    pub(crate) core: Arc<Mutex<Core>>,
    pub(crate) ctl: mpsc::UnboundedReceiver<Control>,
    pub(crate) pty: Option<Pty>,
    pub(crate) link: Link,
    pub(crate) changed: watch::Sender<u64>,
    /// The voice port (PCM) and its link `<link>.voice`, when the profile has one.
    pub(crate) voice: Option<Pty>,
    pub(crate) voice_link: Option<Link>,
    /// Voice bytes not yet taken by the driver (whole frames, minus what
    /// a short write already sent).
    pub(crate) voice_backlog: Vec<u8>,
}

/// The voice port's link for an AT port link: `<link>.voice`.
pub(crate) fn voice_link_path(link: &Path) -> PathBuf {
    let mut p = link.as_os_str().to_owned();
    p.push(".voice");
    PathBuf::from(p)
}

/// Opens the voice PTY and points its link, for profiles with a voice port.
pub(crate) fn open_voice(
    profile: super::Profile,
    link: &mut Option<Link>,
) -> Result<Option<Pty>, Error> {
    if !has_voice_port(profile) {
        return Ok(None);
    }
    let Some(link) = link.as_mut() else {
        return Ok(None);
    };
    let pty = Pty::open()?;
    link.point(pty.slave_path())?;
    Ok(Some(pty))
}

async fn read_some(pty: Option<&Pty>, buf: &mut [u8]) -> std::io::Result<usize> {
    match pty {
        Some(p) => p.read(buf).await,
        None => std::future::pending().await,
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

impl Task {
    pub(crate) async fn run(mut self) {
        let mut buf = [0u8; 512];
        let mut vbuf = [0u8; 1024];
        let mut tick = tokio::time::interval(FRAME_PERIOD);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut was_flowing = false;
        loop {
            let (deadline, flowing) = {
                let core = lock(&self.core);
                (core.next_deadline(), core.pcm_flowing())
            };
            if flowing && !was_flowing {
                tick.reset_immediately();
            }
            if !flowing {
                self.voice_backlog.clear();
            }
            was_flowing = flowing;
            tokio::select! {
                r = read_some(self.voice.as_ref(), &mut vbuf) => match r {
                    Ok(n) if n > 0 => {
                        let data = vbuf.get(..n).unwrap_or_default();
                        let mut core = lock(&self.core);
                        let flowing = core.pcm_flowing();
                        core.voice.input(data, flowing);
                    }
                    Ok(_) | Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
                },
                _ = tick.tick(), if flowing => self.voice_frame(),
                r = read_some(self.pty.as_ref(), &mut buf) => match r {
                    Ok(n) if n > 0 => {
                        let data = buf.get(..n).unwrap_or_default();
                        lock(&self.core).on_input(data, Instant::now());
                    }
                    Ok(_) | Err(_) => {
                        // Cannot happen while we hold the slave open; do not spin.
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                },
                c = self.ctl.recv() => match c {
                    None => break,
                    Some(Control::Wake) => {}
                    Some(Control::Unplug(done)) => {
                        self.unplug();
                        let _ = done.send(());
                    }
                    Some(Control::Replug(done)) => {
                        let r = self.replug();
                        let _ = done.send(r);
                    }
                    Some(Control::ReplugVoice(done)) => {
                        let r = self.replug_voice();
                        let _ = done.send(r);
                    }
                    Some(Control::VoiceRaw(bytes, done)) => {
                        if lock(&self.core).pcm_flowing() {
                            self.voice_backlog.extend_from_slice(&bytes);
                        } else if let Some(pty) = &self.voice {
                            let _ = pty.try_write(&bytes);
                        }
                        let _ = done.send(());
                    }
                    Some(Control::Shutdown(done)) => {
                        self.unplug();
                        let _ = done.send(());
                        break;
                    }
                },
                () = sleep_until(deadline) => lock(&self.core).fire_timers(Instant::now()),
            }
            self.flush().await;
            self.changed.send_modify(|v| *v = v.wrapping_add(1));
        }
        self.unplug();
        tracing::debug!(link = %self.link.path.display(), "simulated modem stopped");
    }

    fn unplug(&mut self) {
        self.pty = None;
        self.link.remove();
        self.voice = None;
        self.voice_backlog.clear();
        if let Some(l) = self.voice_link.as_mut() {
            l.remove();
        }
        lock(&self.core).power_off();
    }

    fn replug(&mut self) -> Result<(), Error> {
        self.unplug();
        let pty = Pty::open()?;
        self.link.point(pty.slave_path())?;
        self.pty = Some(pty);
        let profile = lock(&self.core).config().profile;
        self.voice = open_voice(profile, &mut self.voice_link)?;
        lock(&self.core).power_on(Instant::now());
        Ok(())
    }

    fn replug_voice(&mut self) -> Result<(), Error> {
        self.voice = None;
        self.voice_backlog.clear();
        if let Some(l) = self.voice_link.as_mut() {
            l.remove();
        }
        let profile = lock(&self.core).config().profile;
        self.voice = open_voice(profile, &mut self.voice_link)?;
        Ok(())
    }

    /// One 20 ms tick while audio flows: the next far-end frame goes out.
    fn voice_frame(&mut self) {
        let frame = lock(&self.core).voice.next_frame();
        if self.voice_backlog.len() + frame.len() <= MAX_VOICE_BACKLOG {
            self.voice_backlog.extend_from_slice(&frame);
        }
        let Some(pty) = &self.voice else {
            self.voice_backlog.clear();
            return;
        };
        // Taken before the write: a reader on another thread may have the
        // frame before the write call returns.
        let at = Instant::now();
        match pty.try_write(&self.voice_backlog) {
            Ok(n) => {
                let whole = n == self.voice_backlog.len();
                self.voice_backlog.drain(..n.min(self.voice_backlog.len()));
                if whole && let [lo, hi, ..] = frame[..] {
                    lock(&self.core)
                        .voice
                        .log_sent(at, i16::from_le_bytes([lo, hi]));
                }
            }
            Err(e) => {
                tracing::warn!(link = %self.link.path.display(), error = %e, "write to the simulated voice port failed");
                self.voice_backlog.clear();
            }
        }
    }

    async fn flush(&mut self) {
        loop {
            let (outs, delay) = {
                let mut core = lock(&self.core);
                (core.take_output(), core.delay())
            };
            if outs.is_empty() {
                return;
            }
            // Echo and URCs go out together at once; a response waits for the
            // configured delay first.
            let mut pending: Vec<u8> = Vec::new();
            for out in outs {
                match out {
                    Out::Echo(b) | Out::Urc(b) => pending.extend_from_slice(&b),
                    Out::Response(b) => {
                        if !delay.is_zero() {
                            self.write(&std::mem::take(&mut pending)).await;
                            tokio::time::sleep(delay).await;
                        }
                        pending.extend_from_slice(&b);
                    }
                    Out::Unplug => {
                        self.write(&pending).await;
                        self.unplug();
                        return;
                    }
                }
            }
            self.write(&pending).await;
        }
    }

    async fn write(&self, bytes: &[u8]) {
        let Some(pty) = &self.pty else { return };
        if bytes.is_empty() {
            return;
        }
        match pty.write_all(bytes, WRITE_PATIENCE).await {
            Ok(true) => {}
            Ok(false) => tracing::debug!(
                link = %self.link.path.display(),
                dropped = bytes.len(),
                "nobody reads the simulated modem; output dropped"
            ),
            Err(e) => tracing::warn!(
                link = %self.link.path.display(),
                error = %e,
                "write to the simulated modem's PTY failed"
            ),
        }
    }
}
