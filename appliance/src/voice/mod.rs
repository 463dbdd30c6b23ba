//! The voice service: calls on the branch's lines become call events in
//! the appliance's log (docs/PROTOCOL.md, "Calls"), synced to mgmt like
//! SMS (exactly once, in order, also after the uplink was down).
//!
//! The lines' drivers report call signalling (a GSM modem's RING, +CLIP,
//! +CLCC, NO CARRIER: `crossline_modem::CallEvent`; an analog line's ring
//! cadence, caller ID, off-hook and disconnect, put in the same terms by
//! its task in `crate::lines`); [`Calls`] turns it into
//! `call_ringing`, `call_answered` and `call_ended`, with the caller ID
//! from CLIP, the time it rang, the time it was connected and why it ended.
//! When an IVR is configured ([`IvrSetup`], from `Config::ivr`) the service
//! answers the call and runs an IVR session on it (`voice/session.rs`: prompts
//! played on the line's audio, the caller's DTMF keys, voicemail recorded
//! into the recordings spool), which logs `ivr_choice`,
//! `voicemail_recorded` and `callback_requested`; otherwise the call rings
//! out and is logged as missed.
//!
//! [`Calls`] is pure (the caller passes the time), so its timing is tested
//! without waiting; [`run`] drives it from the lines' events.

mod alsa;
mod line;
mod session;

pub use alsa::{AlsaIn, AlsaLine, AlsaOut, AlsaPacing};
pub use line::{AudioIn, AudioOut, LineCtl};
pub use session::IvrSetup;

use crate::lines::FxoSignal;
use crate::log::LocalLog;
use crate::modems::LineEvent;
use crossline_core::{CallEndCause, CallId, EventBody};
use crossline_modem::{CallEnd, CallEvent, ModemEvent, NumberAbsence};
use crossline_store::{NewEvent, SqliteStore};
use session::ToSession;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// Who answers calls on the appliance.
pub const BY_IVR: &str = "ivr";

/// One call in progress on a line.
#[derive(Debug, Clone)]
struct Active {
    id: CallId,
    /// The caller ID, as logged in `call_ringing`.
    from: Option<String>,
    rang_at: Instant,
    answered_at: Option<Instant>,
    /// The appliance answers it (an IVR was configured when it rang).
    by_ivr: bool,
}

/// What to do on a line, besides logging.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Take the call (the IVR answers).
    Answer,
    /// The call the appliance answered is connected: run the IVR on it.
    RunIvr,
}

/// The calls in progress, per line, and the call events their signalling
/// makes.
#[derive(Debug, Default)]
pub struct Calls {
    active: HashMap<String, Active>,
    /// Answer incoming calls (an IVR is configured).
    answer: bool,
}

impl Calls {
    /// `answer`: an IVR is configured, so incoming calls are taken; else
    /// they ring out (missed calls).
    pub fn new(answer: bool) -> Self {
        Self {
            active: HashMap::new(),
            answer,
        }
    }

    /// Whether calls that start ringing from now on are answered (the IVR
    /// was configured or removed by a configuration push).
    pub fn set_answer(&mut self, answer: bool) {
        self.answer = answer;
    }

    /// The call in progress on `line`, if any.
    pub fn active(&self, line: &str) -> Option<CallId> {
        self.active.get(line).map(|a| a.id)
    }

    /// The caller ID of the call in progress on `line`, if it had one.
    pub fn caller(&self, line: &str) -> Option<String> {
        self.active.get(line).and_then(|a| a.from.clone())
    }

    /// What `ev` on `line` at `now` means: the events to log, and whether
    /// to answer.
    pub fn on_event(
        &mut self,
        line: &str,
        ev: &CallEvent,
        now: Instant,
    ) -> (Vec<EventBody>, Option<Action>) {
        match ev {
            CallEvent::Incoming {
                number,
                name,
                absence,
            }
            | CallEvent::Ringing {
                number,
                name,
                absence,
            } => {
                if self.active.contains_key(line) {
                    return (Vec::new(), None);
                }
                let id = CallId::new();
                let from = number
                    .as_deref()
                    .map(str::trim)
                    .filter(|n| !n.is_empty())
                    .map(|n| n.chars().take(64).collect::<String>());
                self.active.insert(
                    line.to_string(),
                    Active {
                        id,
                        from: from.clone(),
                        rang_at: now,
                        answered_at: None,
                        by_ivr: self.answer,
                    },
                );
                let name = name
                    .as_deref()
                    .map(str::trim)
                    .filter(|n| !n.is_empty())
                    .map(|n| n.chars().take(64).collect::<String>());
                // Withheld (CLIP validity 1, FSK "private") is said so;
                // unavailable, or no caller ID at all, is just no number.
                let withheld = from.is_none() && *absence == Some(NumberAbsence::Withheld);
                info!(line, call = %id, from = from.as_deref().unwrap_or("(none)"),
                    name = name.as_deref().unwrap_or(""), absence = ?absence, "incoming call");
                let ringing = EventBody::CallRinging {
                    call: id,
                    line: line.to_string(),
                    from,
                    name,
                    withheld,
                    to: None,
                };
                (vec![ringing], self.answer.then_some(Action::Answer))
            }
            CallEvent::Connected => match self.active.get_mut(line) {
                Some(a) if a.answered_at.is_none() => {
                    a.answered_at = Some(now);
                    (
                        vec![EventBody::CallAnswered {
                            call: a.id,
                            by: BY_IVR.to_string(),
                        }],
                        a.by_ivr.then_some(Action::RunIvr),
                    )
                }
                _ => (Vec::new(), None),
            },
            CallEvent::Ended { reason } => {
                let cause = match reason {
                    CallEnd::Local => CallEndCause::IvrHungUp,
                    CallEnd::Remote => CallEndCause::CallerHungUp,
                    CallEnd::Busy => CallEndCause::Busy,
                    CallEnd::NoAnswer | CallEnd::Missed => CallEndCause::Missed,
                    CallEnd::Failed(_) => CallEndCause::Failed,
                };
                (self.end(line, cause, now).into_iter().collect(), None)
            }
            // Outgoing calls are not logged yet (the appliance does not
            // dial); keys pressed are the IVR session's to interpret (it
            // logs `ivr_choice`; [`run`] hands them over).
            CallEvent::Dialing { .. } | CallEvent::Alerting | CallEvent::Dtmf { .. } => {
                (Vec::new(), None)
            }
        }
    }

    /// The line went away (its driver stopped or lost the modem): a call in
    /// progress on it ended with the line.
    pub fn line_lost(&mut self, line: &str, now: Instant) -> Option<EventBody> {
        self.end(line, CallEndCause::LineLost, now)
    }

    fn end(&mut self, line: &str, cause: CallEndCause, now: Instant) -> Option<EventBody> {
        let a = self.active.remove(line)?;
        let ms = |d: std::time::Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        let (duration_ms, ring_ms, cause) = match a.answered_at {
            Some(t) => (
                ms(now.saturating_duration_since(t)),
                ms(t.saturating_duration_since(a.rang_at)),
                cause,
            ),
            // Never connected: whoever ended it, it is a missed call
            // (unless the network said busy or failed).
            None => (
                0,
                ms(now.saturating_duration_since(a.rang_at)),
                match cause {
                    CallEndCause::CallerHungUp | CallEndCause::IvrHungUp => CallEndCause::Missed,
                    other => other,
                },
            ),
        };
        info!(line, call = %a.id, duration_ms, ring_ms, cause = cause.as_str(), "call ended");
        Some(EventBody::CallEnded {
            call: a.id,
            duration_ms,
            ring_ms,
            cause,
        })
    }
}

/// The IVR the voice service runs on incoming calls, or none (they ring
/// out). The fleet agent sends a new one when a configuration push changes
/// it ([`IvrSetup::from_config`]); calls already in the IVR finish with the
/// one they started with.
pub type IvrWatch = watch::Receiver<Option<Arc<IvrSetup>>>;

/// An [`IvrWatch`] that never changes.
pub fn fixed_ivr(setup: Option<Arc<IvrSetup>>) -> IvrWatch {
    watch::channel(setup).1
}

/// How long the service waits, when it stops, for the IVR sessions of the
/// calls still up to keep their voicemail and log the calls' end.
const SESSION_STOP: Duration = Duration::from_secs(10);

/// The IVR session of a call on a line.
struct Running {
    call: CallId,
    tx: mpsc::UnboundedSender<ToSession>,
}

fn new_events(bodies: Vec<EventBody>) -> Vec<NewEvent> {
    bodies
        .into_iter()
        .map(|body| NewEvent {
            conversation: None,
            body,
        })
        .collect()
}

/// Hands the end of `line`'s call to its IVR session, if it has one: the
/// session logs it after what it still has to log (a voicemail being
/// recorded), so `call_ended` stays the call's last event. Returns the end
/// when there is no session to take it (the caller logs it).
fn end_through_session(
    sessions: &mut HashMap<String, Running>,
    line: &str,
    end: EventBody,
) -> Option<EventBody> {
    let EventBody::CallEnded { call, .. } = &end else {
        return Some(end);
    };
    match sessions.remove(line) {
        Some(s) if s.call == *call => match s.tx.send(ToSession::Ended(end)) {
            Ok(()) => None,
            // The session is gone already: log the end here.
            Err(mpsc::error::SendError(ToSession::Ended(end))) => Some(end),
            Err(_) => None,
        },
        _ => Some(end),
    }
}

/// Runs the voice service on the GSM lines' events alone; see
/// [`run_lines`].
pub async fn run(
    log: LocalLog<SqliteStore>,
    events: mpsc::Receiver<LineEvent>,
    ivr: IvrWatch,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    run_lines(log, events, None, ivr, shutdown).await
}

/// Runs the voice service until `shutdown` or until `events` closes: logs
/// the call events of every line's signalling (GSM modems' `events`,
/// analog lines' `fxo`); while `ivr` holds an IVR, answers incoming calls
/// and runs an IVR session on each.
pub async fn run_lines(
    log: LocalLog<SqliteStore>,
    mut events: mpsc::Receiver<LineEvent>,
    mut fxo: Option<mpsc::Receiver<FxoSignal>>,
    ivr: IvrWatch,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let mut calls = Calls::new(ivr.borrow().is_some());
    let mut sessions: HashMap<String, Running> = HashMap::new();
    let mut tasks: JoinSet<anyhow::Result<()>> = JoinSet::new();
    let result = loop {
        let ev = tokio::select! {
            _ = shutdown.cancelled() => break Ok(()),
            Some(r) = tasks.join_next() => match r {
                Ok(Ok(())) => continue,
                Ok(Err(e)) => break Err(e),
                Err(e) => break Err(anyhow::anyhow!("an IVR session failed: {e}")),
            },
            ev = events.recv() => ev.map(|LineEvent { line, modem, event }| (line, LineCtl::Modem(modem), event)),
            s = async { fxo.as_mut()?.recv().await }, if fxo.is_some() => match s {
                Some(FxoSignal { line, fxo, event }) => Some((line, LineCtl::Fxo(fxo), event)),
                None => {
                    // The analog lines' service is gone (shutting down).
                    fxo = None;
                    continue;
                }
            },
        };
        let Some((line, ctl, event)) = ev else {
            break Ok(());
        };
        calls.set_answer(ivr.borrow().is_some());
        let now = Instant::now();
        let (bodies, action) = match &event {
            ModemEvent::Call(CallEvent::Dtmf { digit }) => {
                // Keys the modem itself detected: the session uses them when
                // the line has no call audio.
                if let Some(s) = sessions.get(&line) {
                    let _ = s.tx.send(ToSession::Key(*digit));
                }
                (Vec::new(), None)
            }
            ModemEvent::Call(c) => calls.on_event(&line, c, now),
            ModemEvent::Disconnected { .. } => {
                (calls.line_lost(&line, now).into_iter().collect(), None)
            }
            _ => (Vec::new(), None),
        };
        let bodies: Vec<EventBody> = bodies
            .into_iter()
            .filter_map(|b| end_through_session(&mut sessions, &line, b))
            .collect();
        if !bodies.is_empty() {
            let n = bodies.len();
            // The log is the one place a call is kept: a failed append is
            // the appliance failing (the daemon restarts), not a lost call
            // quietly.
            if let Err(e) = log.append(new_events(bodies)).await {
                break Err(anyhow::anyhow!(
                    "cannot log {n} call event(s) of line {line} in the local log: {e}"
                ));
            }
        }
        match action {
            Some(Action::Answer) => {
                let ctl = ctl.clone();
                let line = line.clone();
                tokio::spawn(async move {
                    if let Err(e) = ctl.answer().await {
                        warn!(line = %line, error = %e, "could not answer the call; it rings out");
                    }
                });
            }
            Some(Action::RunIvr) => {
                let setup = ivr.borrow().clone();
                match (setup, calls.active(&line)) {
                    (Some(setup), Some(call)) => {
                        let (tx, rx) = mpsc::unbounded_channel();
                        sessions.insert(line.clone(), Running { call, tx });
                        tasks.spawn(session::run(
                            session::CallCtx {
                                line: line.clone(),
                                call,
                                caller: calls.caller(&line),
                                line_ctl: ctl.clone(),
                                setup,
                                log: log.clone(),
                            },
                            rx,
                        ));
                    }
                    _ => {
                        // The IVR was removed between the ring and the
                        // answer: nobody is there to speak to the caller.
                        warn!(line = %line, "call answered but the IVR was removed meanwhile; hanging up");
                        let ctl = ctl.clone();
                        tokio::spawn(async move {
                            let _ = ctl.hang_up().await;
                        });
                    }
                }
            }
            None => {}
        }
    };
    // Calls still up when the service stops end with it (the lines stop
    // too); those in the IVR end through their session (a voicemail being
    // recorded is kept and logged first).
    let now = Instant::now();
    let lines: Vec<String> = calls.active.keys().cloned().collect();
    let ended: Vec<EventBody> = lines
        .iter()
        .filter_map(|l| {
            let end = calls.line_lost(l, now)?;
            end_through_session(&mut sessions, l, end)
        })
        .collect();
    if !ended.is_empty()
        && let Err(e) = log.append(new_events(ended)).await
    {
        warn!(error = %e, "could not log the end of the calls in progress at shutdown");
    }
    drop(sessions);
    let wait_sessions = async {
        while let Some(r) = tasks.join_next().await {
            if let Ok(Err(e)) = r {
                warn!(error = %e, "an IVR session failed while the voice service stopped");
            }
        }
    };
    if tokio::time::timeout(SESSION_STOP, wait_sessions)
        .await
        .is_err()
    {
        warn!(
            "IVR sessions still running {SESSION_STOP:?} after the voice service stopped; left behind"
        );
    }
    result
}

#[cfg(test)]
mod tests;
