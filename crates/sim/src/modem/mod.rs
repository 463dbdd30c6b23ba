//! A simulated GSM/LTE modem on a real pseudo-terminal.
//!
//! [`SimModem::spawn`] opens a PTY, points a symlink at its slave side and
//! answers AT commands there like a Quectel EC25 (or another [`Profile`]).
//! Tests script the network side through the handle: incoming SMS and calls,
//! USSD answers, registration and signal, and faults (delays, errors, hangs,
//! garbage, unplugging the device).

mod core;
mod profile;
mod pty;
mod task;
mod types;
mod util;
mod voice;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;

pub use profile::{Profile, UnknownProfile};
pub use types::{
    CallInfo, CallState, DialOutcome, Registration, SentMessage, SentPart, SimConfig, StoredSms,
    StoredStatus,
};

pub use self::core::CallerDisplay;
use self::core::Core;
use crate::Error;
use task::{Control, Link, Task, lock};

/// Handle to a running simulated modem. Cheap to clone; the modem stops (PTY
/// closed, symlink removed) when the last handle is dropped or on
/// [`SimModem::shutdown`].
#[derive(Clone)]
pub struct SimModem {
    inner: Arc<Inner>,
}

struct Inner {
    core: Arc<Mutex<Core>>,
    ctl: mpsc::UnboundedSender<Control>,
    changed: watch::Receiver<u64>,
    link: PathBuf,
    voice_link: Option<PathBuf>,
}

impl std::fmt::Debug for SimModem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimModem")
            .field("link", &self.inner.link)
            .field("profile", &self.profile())
            .finish()
    }
}

impl SimModem {
    /// Opens the PTY, creates the link, writes the boot URCs and starts
    /// serving AT commands in a tokio task. Needs a tokio runtime.
    pub async fn spawn(config: SimConfig) -> Result<SimModem, Error> {
        let (path, dir) = match &config.link {
            Some(p) => (p.clone(), None),
            None => {
                let dir = tempfile::Builder::new()
                    .prefix("crossline-sim-")
                    .tempdir()
                    .map_err(|source| Error::Link {
                        path: std::env::temp_dir(),
                        source,
                    })?;
                (dir.path().join("ttyMODEM"), Some(dir))
            }
        };
        let mut link = Link {
            path,
            target: None,
            _dir: dir,
        };
        let pty = pty::Pty::open()?;
        link.point(pty.slave_path())?;
        let mut voice_link = Some(Link {
            path: task::voice_link_path(&link.path),
            target: None,
            _dir: None,
        });
        let voice = task::open_voice(config.profile, &mut voice_link)?;
        let voice_path = voice
            .as_ref()
            .and(voice_link.as_ref())
            .map(|l| l.path.clone());
        let mut core = Core::new(config);
        core.power_on(Instant::now());
        let core = Arc::new(Mutex::new(core));
        let (ctl_tx, ctl_rx) = mpsc::unbounded_channel();
        let (changed_tx, changed_rx) = watch::channel(0u64);
        let link_path = link.path.clone();
        tracing::debug!(link = %link_path.display(), slave = %pty.slave_path().display(), "simulated modem up");
        let task = Task {
            core: core.clone(),
            ctl: ctl_rx,
            pty: Some(pty),
            link,
            changed: changed_tx,
            voice,
            voice_link,
            voice_backlog: Vec::new(),
        };
        tokio::spawn(task.run());
        // flush the boot URCs
        let _ = ctl_tx.send(Control::Wake);
        Ok(SimModem {
            inner: Arc::new(Inner {
                core,
                ctl: ctl_tx,
                changed: changed_rx,
                link: link_path,
                voice_link: voice_path,
            }),
        })
    }

    /// The path the driver opens (a symlink to the current PTY slave).
    pub fn link(&self) -> &Path {
        &self.inner.link
    }

    /// The voice port's path, `<link>.voice` (a symlink to a second PTY,
    /// like the modem's audio USB interface): PCM 8 kHz s16le mono in
    /// 320-byte (20 ms) frames, flowing only while a call is active and the
    /// profile's audio command was given (Quectel `AT+QPCMV=1,0`, SIM7600
    /// `AT+CPCMREG=1`, Huawei `AT^DDSETEX=2`). `None` for the SIM800, whose
    /// audio is analog only.
    pub fn voice_link(&self) -> Option<&Path> {
        self.inner.voice_link.as_deref()
    }

    /// The vendor profile in use.
    pub fn profile(&self) -> Profile {
        lock(&self.inner.core).config().profile
    }

    fn with_core<R>(&self, f: impl FnOnce(&mut Core, Instant) -> R) -> R {
        let r = f(&mut lock(&self.inner.core), Instant::now());
        let _ = self.inner.ctl.send(Control::Wake);
        r
    }

    fn read_core<R>(&self, f: impl FnOnce(&Core) -> R) -> R {
        f(&lock(&self.inner.core))
    }

    // ------------------------------------------------------------ network side

    /// A text message arrives from `from` (`+380...` or national digits or an
    /// alphanumeric name). It is encoded as one or more SMS-DELIVER parts
    /// (UCS2 when the text needs it) and, per the driver's `AT+CNMI`, stored
    /// with `+CMTI` or routed as `+CMT`. When the storage is full or the modem
    /// is unplugged the network keeps it and retries after space is freed or
    /// the modem comes back. Returns the number of parts.
    pub fn inject_sms(&self, from: &str, text: &str) -> Result<usize, Error> {
        self.with_core(|c, now| c.inject_sms(from, text, now))
    }

    /// Delivers a raw PDU (hex, with the SMSC block) as [`SimModem::inject_sms`]
    /// does; for malformed or unusual messages.
    pub fn inject_pdu(&self, hex: &str) -> Result<(), Error> {
        self.with_core(|c, now| c.inject_pdu(hex, now))
    }

    /// An incoming call from `number`: `RING` (+`+CLIP` after `AT+CLIP=1`)
    /// repeated every `ring_interval` until answered, hung up, or `max_rings`.
    pub fn inject_call(&self, number: &str) {
        self.with_core(|c, now| c.inject_call(number, CallerDisplay::default(), now));
    }

    /// An incoming call like [`inject_call`](Self::inject_call) whose
    /// `+CLIP` also carries `display`: the caller's name (the alpha field,
    /// as the modem would print it: text, or UCS2 hex in `AT+CSCS="UCS2"`)
    /// and the CLI validity (1 withheld, 2 not available: the number field
    /// is then empty).
    pub fn inject_call_with(&self, number: &str, display: CallerDisplay) {
        self.with_core(|c, now| c.inject_call(number, display, now));
    }

    /// The other party hangs up every call: `NO CARRIER`.
    pub fn remote_hangup(&self) {
        self.with_core(|c, _| c.remote_hangup());
    }

    /// The callee answers an outgoing call (with [`DialOutcome::Manual`]).
    pub fn remote_answer(&self) {
        self.with_core(|c, _| c.remote_answer());
    }

    /// The other party presses keys during an active call: SIMCom
    /// `+RXDTMF: <d>` (ending `\r\r\n`), Quectel `+QTONEDET: <ascii>` after
    /// `AT+QTONEDET=1`, Huawei `^DDTMF: <d>`.
    pub fn remote_dtmf(&self, digits: &str) {
        self.with_core(|c, _| c.remote_dtmf(digits));
    }

    /// The caller says `pcm` (8 kHz mono samples, e.g. DTMF from
    /// `crossline_audio::dtmf::generate`): queued after what is still
    /// queued, sent in 20 ms frames while audio flows (silence frames when
    /// the queue is empty). Kept across calls until played.
    pub fn far_end_play(&self, pcm: Vec<i16>) {
        self.with_core(|c, _| c.voice.far_end_play(&pcm));
    }

    /// Everything the caller heard: the samples the driver wrote on the
    /// voice port while audio flowed (what it wrote while the path was off
    /// is lost, as on a real modem). Capped at ten minutes.
    pub fn far_end_heard(&self) -> Vec<i16> {
        self.read_core(|c| c.voice.far_end_heard())
    }

    /// Far-end samples still waiting to be sent.
    pub fn far_end_queued(&self) -> usize {
        self.read_core(|c| c.voice.queued())
    }

    /// Whether PCM flows on the voice port right now.
    pub fn voice_flowing(&self) -> bool {
        self.read_core(Core::pcm_flowing)
    }

    /// When each of the last 256 frames went out whole on the voice port
    /// (the time just before it was written to the PTY), with the frame's
    /// first sample: a latency
    /// measurement plays frames it can tell apart by that sample and looks
    /// up when each left.
    pub fn far_end_sent_log(&self) -> Vec<(Instant, i16)> {
        self.read_core(|c| c.voice.sent_log.iter().copied().collect())
    }

    /// Frames sent on the voice port so far (all calls).
    pub fn voice_frames_sent(&self) -> u64 {
        self.read_core(|c| c.voice.frames_out)
    }

    /// What happens to later `ATD` calls.
    pub fn set_dial_outcome(&self, outcome: DialOutcome) {
        self.with_core(|c, _| c.set_dial_outcome(outcome));
    }

    /// The network's answer to the next USSD requests.
    pub fn set_ussd_reply(&self, text: &str) {
        self.with_core(|c, _| c.set_ussd_reply(text));
    }

    /// Network registration changes; `+CREG`/`+CEREG` URCs per `AT+CREG=n`.
    pub fn set_registration(&self, state: Registration) {
        self.with_core(|c, _| c.set_registration(state));
    }

    /// Signal strength for `AT+CSQ` (0-31, 99 unknown); Huawei also says `^RSSI`.
    pub fn set_signal(&self, rssi: u8) {
        self.with_core(|c, _| c.set_signal(rssi));
    }

    // ------------------------------------------------------------ faults

    /// Delays every command response (not echo or URCs) by `delay`.
    pub fn set_delay(&self, delay: Duration) {
        self.with_core(|c, _| c.set_delay(delay));
    }

    /// The next command starting with `cmd_prefix` (e.g. `"AT+CMGS"`, case
    /// ignored) is answered with `final_line` (e.g. `"+CMS ERROR: 500"`). For
    /// `AT+CMGS` the prompt still comes and the failure follows the PDU.
    pub fn fail_next(&self, cmd_prefix: &str, final_line: &str) {
        self.with_core(|c, _| c.fail_next(cmd_prefix, final_line));
    }

    /// The next command starting with `cmd_prefix` gets no answer at all.
    pub fn hang_next(&self, cmd_prefix: &str) {
        self.with_core(|c, _| c.hang_next(cmd_prefix));
    }

    /// Writes raw bytes to the line now (line noise, a half URC...).
    pub fn inject_garbage(&self, bytes: &[u8]) {
        self.with_core(|c, _| c.garbage(bytes));
    }

    /// Sends an unsolicited line now, framed `\r\n<urc>\r\n`.
    pub fn inject_urc(&self, urc: &str) {
        self.with_core(|c, _| c.inject_urc(urc));
    }

    /// The next response with information lines gets `urc` after its first
    /// information line, before the final result.
    pub fn inject_urc_mid_response(&self, urc: &str) {
        self.with_core(|c, _| c.urc_mid_response(urc));
    }

    /// Pulls the plug: the master side closes (the driver's open port reads
    /// EIO / sees a hang-up) and the link disappears. URCs are lost; SMS for
    /// the modem wait in the network.
    pub async fn unplug(&self) -> Result<(), Error> {
        let (tx, rx) = oneshot::channel();
        self.inner
            .ctl
            .send(Control::Unplug(tx))
            .map_err(|_| Error::Stopped)?;
        rx.await.map_err(|_| Error::Stopped)
    }

    /// Plugs the modem back in: a new PTY, the link re-pointed, boot URCs,
    /// settings back to power-on defaults (SIM storage and the sent log survive).
    pub async fn replug(&self) -> Result<(), Error> {
        let (tx, rx) = oneshot::channel();
        self.inner
            .ctl
            .send(Control::Replug(tx))
            .map_err(|_| Error::Stopped)?;
        rx.await.map_err(|_| Error::Stopped)?
    }

    /// The voice port alone drops off the bus and comes back (USB
    /// re-enumeration of the audio interface): the driver's open voice port
    /// reads EIO, the link points at a new PTY; calls and the audio route
    /// stay as they were.
    pub async fn replug_voice(&self) -> Result<(), Error> {
        let (tx, rx) = oneshot::channel();
        self.inner
            .ctl
            .send(Control::ReplugVoice(tx))
            .map_err(|_| Error::Stopped)?;
        rx.await.map_err(|_| Error::Stopped)?
    }

    /// Raw bytes on the voice port: stale audio before a call, or (during
    /// a call) a stray byte between two frames that shifts every later
    /// sample by one byte, as a glitching USB audio endpoint does.
    pub async fn inject_voice_bytes(&self, bytes: &[u8]) -> Result<(), Error> {
        let (tx, rx) = oneshot::channel();
        self.inner
            .ctl
            .send(Control::VoiceRaw(bytes.to_vec(), tx))
            .map_err(|_| Error::Stopped)?;
        rx.await.map_err(|_| Error::Stopped)
    }

    /// The TP-MR the next `AT+CMGS` gets (`+CMGS: <mr>`); later ones count
    /// up from it, wrapping after 255 as on a real modem.
    pub fn set_next_mr(&self, mr: u8) {
        self.with_core(|c, _| c.set_next_mr(mr));
    }

    /// The network sends no status report for the next `submits` parts
    /// that ask for one (a report lost in the network).
    pub fn withhold_reports(&self, submits: u32) {
        self.with_core(|c, _| c.withhold_reports(submits));
    }

    /// The modem dies right after it has received the next `AT+CMGS` PDU and
    /// passed it to the network, before answering `+CMGS` (the "ambiguous
    /// submit"): the message does appear in [`SimModem::sent`].
    pub fn unplug_after_next_submit(&self) {
        self.with_core(|c, _| c.die_after_next_submit());
    }

    // ------------------------------------------------------------ observation

    /// Every message in SIM/modem/status-report storage.
    pub fn stored(&self) -> Vec<StoredSms> {
        self.read_core(Core::stored)
    }

    /// Messages the driver sent, parts reassembled, in order of their first part.
    pub fn sent(&self) -> Vec<SentMessage> {
        self.read_core(Core::sent_messages)
    }

    /// Every SMS-SUBMIT part the driver sent, in order.
    pub fn sent_parts(&self) -> Vec<SentPart> {
        self.read_core(Core::sent_parts)
    }

    /// DTMF digits sent with `AT+VTS`, concatenated.
    pub fn dtmf_sent(&self) -> String {
        self.read_core(Core::dtmf_sent)
    }

    /// USSD codes requested (decoded from packed hex on Huawei).
    pub fn ussd_requests(&self) -> Vec<String> {
        self.read_core(Core::ussd_requests)
    }

    /// Current calls.
    pub fn calls(&self) -> Vec<CallInfo> {
        self.read_core(Core::calls)
    }

    /// Every command line received, from `AT` on, in order.
    pub fn commands(&self) -> Vec<String> {
        self.read_core(Core::commands)
    }

    /// Waits until at least `n` complete messages were sent; returns them all.
    pub async fn wait_sent(&self, n: usize, within: Duration) -> Result<Vec<SentMessage>, Error> {
        let what = format!("{n} sent message(s)");
        self.wait_until(&what, within, |m| {
            m.sent().iter().filter(|s| s.complete).count() >= n
        })
        .await?;
        Ok(self.sent())
    }

    /// Waits until `cond` holds (checked after every event the modem handles).
    pub async fn wait_until(
        &self,
        what: &str,
        within: Duration,
        mut cond: impl FnMut(&SimModem) -> bool,
    ) -> Result<(), Error> {
        let deadline = Instant::now() + within;
        let mut rx = self.inner.changed.clone();
        loop {
            rx.borrow_and_update();
            if cond(self) {
                return Ok(());
            }
            match tokio::time::timeout_at(deadline, rx.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => return Err(Error::Stopped),
                Err(_) => {
                    let cmds = self.commands();
                    let tail = cmds.len().saturating_sub(8);
                    return Err(Error::Timeout {
                        what: what.to_string(),
                        waited: within,
                        seen: format!(
                            "last commands {:?}, {} sent part(s), {} stored",
                            cmds.get(tail..).unwrap_or_default(),
                            self.sent_parts().len(),
                            self.stored().len()
                        ),
                    });
                }
            }
        }
    }

    /// Stops the modem: closes the PTY and removes the link.
    pub async fn shutdown(&self) {
        let (tx, rx) = oneshot::channel();
        if self.inner.ctl.send(Control::Shutdown(tx)).is_ok() {
            let _ = rx.await;
        }
    }
}
