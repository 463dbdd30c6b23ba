//! The voice service: calls on the branch's lines become call events in
//! the appliance's log (docs/PROTOCOL.md, "Calls"), synced to mgmt like
//! SMS (exactly once, in order, also after the uplink was down).
//!
//! The lines' drivers report call signalling (a GSM modem's RING, +CLIP,
//! +CLCC, NO CARRIER: `crossline_modem::CallEvent`); [`Calls`] turns it into
//! `call_ringing`, `call_answered` and `call_ended`, with the caller ID
//! from CLIP, the time it rang, the time it was connected and why it ended.
//! When an IVR is configured the service answers the call (the IVR then
//! speaks on the line); otherwise the call rings out and is logged as
//! missed.
//!
//! [`Calls`] is pure (the caller passes the time), so its timing is tested
//! without waiting; [`run`] drives it from the lines' events.

use crate::log::LocalLog;
use crate::modems::LineEvent;
use crossline_core::{CallEndCause, CallId, EventBody};
use crossline_modem::{CallEnd, CallEvent, ModemEvent};
use crossline_store::{NewEvent, SqliteStore};
use std::collections::HashMap;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// Who answers calls on the appliance.
pub const BY_IVR: &str = "ivr";

/// One call in progress on a line.
#[derive(Debug, Clone)]
struct Active {
    id: CallId,
    rang_at: Instant,
    answered_at: Option<Instant>,
}

/// What to do on a line, besides logging.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Take the call (the IVR answers).
    Answer,
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

    /// The call in progress on `line`, if any.
    pub fn active(&self, line: &str) -> Option<CallId> {
        self.active.get(line).map(|a| a.id)
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
            CallEvent::Incoming { number } | CallEvent::Ringing { number } => {
                if self.active.contains_key(line) {
                    return (Vec::new(), None);
                }
                let id = CallId::new();
                self.active.insert(
                    line.to_string(),
                    Active {
                        id,
                        rang_at: now,
                        answered_at: None,
                    },
                );
                let from = number
                    .as_deref()
                    .map(str::trim)
                    .filter(|n| !n.is_empty())
                    .map(|n| n.chars().take(64).collect::<String>());
                info!(line, call = %id, from = from.as_deref().unwrap_or("(none)"), "incoming call");
                let ringing = EventBody::CallRinging {
                    call: id,
                    line: line.to_string(),
                    from,
                    name: None,
                    // The driver's CLIP does not say whether a missing number
                    // was withheld or not sent: it is "no caller ID".
                    withheld: false,
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
                        None,
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
            // dial); keys pressed are the IVR's to interpret (it logs
            // `ivr_choice`).
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

/// Runs the voice service until `shutdown` or until `events` closes: logs
/// the call events of every line's signalling, answers calls when
/// `answer` (an IVR is configured).
pub async fn run(
    log: LocalLog<SqliteStore>,
    mut events: mpsc::Receiver<LineEvent>,
    answer: bool,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let mut calls = Calls::new(answer);
    loop {
        let ev = tokio::select! {
            _ = shutdown.cancelled() => break,
            ev = events.recv() => ev,
        };
        let Some(LineEvent { line, modem, event }) = ev else {
            break;
        };
        let now = Instant::now();
        let (bodies, action) = match &event {
            ModemEvent::Call(c) => calls.on_event(&line, c, now),
            ModemEvent::Disconnected { .. } => {
                (calls.line_lost(&line, now).into_iter().collect(), None)
            }
            _ => (Vec::new(), None),
        };
        if !bodies.is_empty() {
            let n = bodies.len();
            let batch = bodies
                .into_iter()
                .map(|body| NewEvent {
                    conversation: None,
                    body,
                })
                .collect();
            // The log is the one place a call is kept: a failed append is
            // the appliance failing (the daemon restarts), not a lost call
            // quietly.
            log.append(batch).await.map_err(|e| {
                anyhow::anyhow!("cannot log {n} call event(s) of line {line} in the local log: {e}")
            })?;
        }
        if action == Some(Action::Answer) {
            let modem = modem.clone();
            let line = line.clone();
            tokio::spawn(async move {
                if let Err(e) = modem.answer().await {
                    warn!(line = %line, error = %e, "could not answer the call; it rings out");
                }
            });
        }
    }
    // Calls still up when the service stops end with it (the lines stop too).
    let now = Instant::now();
    let lines: Vec<String> = calls.active.keys().cloned().collect();
    let ended: Vec<NewEvent> = lines
        .iter()
        .filter_map(|l| calls.line_lost(l, now))
        .map(|body| NewEvent {
            conversation: None,
            body,
        })
        .collect();
    if !ended.is_empty()
        && let Err(e) = log.append(ended).await
    {
        warn!(error = %e, "could not log the end of the calls in progress at shutdown");
    }
    Ok(())
}

#[cfg(test)]
mod tests;
