//! The SMS loop of the appliance: incoming messages into the log without
//! loss or duplicates, mgmt's send commands executed exactly once (or
//! reported unknown), delivery reports, and the offline auto-reply.
//!
//! Receive order (never changes): the driver offers a message with a stable
//! key → it is appended to the log as `MessageReceived` (the key recorded in
//! the same transaction; a key already recorded is not appended again) → the
//! uplink replicates it and mgmt acknowledges its seq → only then is it
//! confirmed to the driver, which deletes it from the SIM. A crash anywhere
//! before the confirm means the driver offers it again after the restart and
//! the recorded key stops a second append.

pub mod db;
pub mod lang;

use crate::config::{DEFAULT_REPORT_WINDOW, ModemEntry, OfflineConfig};
use crate::log::LocalLog;
use crate::modems::{self, LineEvent, Lines};
use crate::uplink::LinkState;
use crossline_core::{Channel, DeliveryState, EventBody, EventId};
use crossline_modem::{
    DeliveryReport, HandoverReceipt, IncomingSms, ModemEvent, ModemHandle, SendError, SendOptions,
};
use crossline_pdu::DeliveryOutcome;
use crossline_proto::{Command, CommandKind, Telemetry};
use crossline_store::{EventLog, NewEvent, SqliteStore, StoreError};
use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Notify, mpsc, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

/// Everything the SMS loop needs. Build it and pass it to [`run`].
pub struct SmsContext {
    /// The appliance's log; its store must be opened with
    /// [`db::open_store`] (the SMS projector).
    pub log: LocalLog<SqliteStore>,
    /// The configured lines.
    pub modems: Vec<ModemEntry>,
    /// Offline auto-reply, if configured.
    pub offline: Option<OfflineConfig>,
    /// The seq mgmt has acknowledged (from [`crate::uplink::UplinkIo::acked`]).
    pub acked: watch::Receiver<u64>,
    /// The uplink's state (from [`crate::uplink::UplinkIo::link`]).
    pub link: watch::Receiver<LinkState>,
    /// Telemetry samples for the uplink to publish.
    pub telemetry: mpsc::Sender<Telemetry>,
    /// A telemetry sample goes out at least this often.
    pub telemetry_every: Duration,
    /// The lines to drive, when the caller keeps a handle on them (fleet
    /// commands); `None` makes them from `modems`.
    pub lines: Option<Lines>,
    /// Where the drivers keep their direct-delivery state files (the
    /// appliance's data dir); `None` keeps them in memory only.
    pub data_dir: Option<PathBuf>,
    /// Calls on the lines: logged by the voice service ([`crate::voice`]);
    /// with an IVR (`Config::ivr`, see [`crate::voice::IvrSetup`]) they are
    /// answered and run through it, else they ring out (missed). Only when
    /// the loop starts the lines itself (`line_events` is `None`); under
    /// fleet control the voice service is the fleet agent's.
    pub ivr: Option<std::sync::Arc<crate::voice::IvrSetup>>,
    /// The lines' SMS events, when a [`crate::lines::LinesService`] runs the
    /// lines (with `lines` its [`Lines`]) and outlives this loop; `None`:
    /// the loop starts the lines' drivers and the voice service itself,
    /// and stops them when it ends.
    pub line_events: Option<crate::lines::SmsEvents>,
}

/// Shared by the receive loop and the send tasks.
#[derive(Clone)]
struct Shared {
    log: LocalLog<SqliteStore>,
    lines: Lines,
    offline: Option<Arc<OfflineConfig>>,
    link: watch::Receiver<LinkState>,
    device: String,
    /// Rung after a `MessageSent` is logged (its parts can now be matched).
    refs_logged: Arc<Notify>,
    /// Held while parts that will get no report are logged `no_report`
    /// (the receive loop and the send tasks both do it).
    expiring: Arc<tokio::sync::Mutex<()>>,
    shutdown: CancellationToken,
    /// Held by every task using this; closed when the last one ends.
    _alive: mpsc::Sender<()>,
}

/// Runs the SMS loop until `shutdown`: the modem supervisor, the receive
/// loop and the command handler. First, every command a crash left without
/// an outcome is reported `Unknown` (never sent again), and every command
/// queued when the appliance last stopped (nothing of it sent) is sent.
/// On shutdown it waits (at most 10 s) for sends in flight to record their
/// outcome or go back to the queue.
pub async fn run(
    ctx: SmsContext,
    commands: mpsc::Receiver<Command>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let SmsContext {
        log,
        modems,
        offline,
        acked,
        link,
        telemetry,
        telemetry_every,
        lines,
        data_dir,
        ivr,
        line_events,
    } = ctx;
    let lines = lines.unwrap_or_else(|| Lines::new(&modems).with_disk(data_dir.as_deref()));
    let (alive, mut all_done) = mpsc::channel::<()>(1);
    let shared = Shared {
        _alive: alive,
        device: log.store().local_node().to_string(),
        log,
        lines: lines.clone(),
        offline: offline.map(Arc::new),
        link,
        refs_logged: Arc::new(Notify::new()),
        expiring: Arc::new(tokio::sync::Mutex::new(())),
        shutdown: shutdown.clone(),
    };
    let resume = recover_unfinished(&shared).await?;

    let mut tasks: JoinSet<anyhow::Result<()>> = JoinSet::new();
    let ev_rx = match line_events {
        Some(events) => events,
        None => {
            let (ev_tx, ev_rx) = mpsc::channel(256);
            let (call_tx, call_rx) = mpsc::channel(64);
            tasks.spawn(crate::voice::run(
                shared.log.clone(),
                call_rx,
                crate::voice::fixed_ivr(ivr),
                shutdown.clone(),
            ));
            modems::spawn_all(
                &mut tasks,
                &lines,
                data_dir.as_deref(),
                modems::Sinks {
                    sms: ev_tx,
                    calls: Some(call_tx),
                },
                telemetry,
                telemetry_every,
                shutdown.clone(),
            );
            Arc::new(tokio::sync::Mutex::new(ev_rx))
        }
    };
    tasks.spawn(receive_loop(shared.clone(), ev_rx, acked));
    tasks.spawn(command_loop(shared.clone(), commands));
    for (id, kind, auto_reply) in resume {
        let CommandKind::SendSms { line, to, text } = kind else {
            continue;
        };
        if db::set_command_state(&shared.log, id, "queued", "sending").await? {
            spawn_send(&shared, id, line, to, text, auto_reply);
        }
    }
    let mut result = Ok(());
    while let Some(r) = tasks.join_next().await {
        let r = match r {
            Ok(r) => r,
            Err(e) => Err(anyhow::anyhow!("an SMS task failed: {e}")),
        };
        if let Err(e) = r {
            error!(error = %e, "SMS loop failed; stopping the appliance");
            shutdown.cancel();
            if result.is_ok() {
                result = Err(e);
            }
        }
    }
    // Let sends in flight record their outcome (or go back to the queue).
    drop(shared);
    if tokio::time::timeout(Duration::from_secs(10), all_done.recv())
        .await
        .is_err()
    {
        warn!("sends still in flight after 10 s; they are reported unknown after the restart");
    }
    result
}

/// Commands left without an outcome by the last run. `sending`: a crash
/// mid-send, the SMS may or may not have gone out: report `Unknown`, never
/// send again. `queued`: the appliance stopped before the modem took any of
/// it: returned for sending now.
async fn recover_unfinished(s: &Shared) -> anyhow::Result<Vec<(EventId, CommandKind, bool)>> {
    let mut resume = Vec::new();
    for u in db::unfinished_commands(&s.log).await? {
        let Ok(command) = u.id.parse::<EventId>() else {
            warn!(command = %u.id, "unreadable command id in appl_command; left alone");
            continue;
        };
        let kind = serde_json::from_str::<CommandKind>(&u.kind);
        let line = kind
            .as_ref()
            .ok()
            .and_then(|k| match k {
                CommandKind::SendSms { line, .. } => Some(line.clone()),
                _ => None,
            })
            .unwrap_or_default();
        if u.state == "queued"
            && let Ok(kind) = kind
        {
            info!(command = %command, line = %line, "command queued before the last stop; sending it now");
            resume.push((command, kind, u.auto_reply));
            continue;
        }
        warn!(command = %command, line = %line, "command interrupted by a restart; outcome unknown, not sent again");
        append(
            s,
            EventBody::DeliveryStatus {
                command,
                part: None,
                state: DeliveryState::Unknown,
                detail: Some(format!(
                    "the appliance {} restarted while sending on {line}; the SMS may or may not \
                     have gone out and is not sent again",
                    s.device
                )),
            },
        )
        .await?;
    }
    Ok(resume)
}

async fn append(s: &Shared, body: EventBody) -> Result<u64, StoreError> {
    let evs = s
        .log
        .append(vec![NewEvent {
            conversation: None,
            body,
        }])
        .await?;
    Ok(evs.first().map_or(0, |e| e.seq))
}

// ------------------------------------------------------------------ receive

/// A report whose part is not known yet (it overtook its `MessageSent`).
struct Unmatched {
    report: DeliveryReport,
    at: Instant,
}

const UNMATCHED_MAX: usize = 256;
const UNMATCHED_TTL: Duration = Duration::from_secs(600);

async fn receive_loop(
    s: Shared,
    events: crate::lines::SmsEvents,
    mut acked: watch::Receiver<u64>,
) -> anyhow::Result<()> {
    // One run of the loop at a time reads the lines' events.
    let mut events = events.lock().await;
    // Receipts of logged messages waiting for mgmt's ack, by seq.
    let mut pending: BTreeMap<u64, Vec<(ModemHandle, HandoverReceipt)>> = BTreeMap::new();
    let mut unmatched: VecDeque<Unmatched> = VecDeque::new();
    let mut expiry = tokio::time::interval(expiry_period(&s));
    expiry.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = s.shutdown.cancelled() => return Ok(()),
            _ = expiry.tick() => expire_reports(&s, db::Scope::All).await,
            changed = acked.changed() => {
                if changed.is_err() {
                    // The uplink is gone (shutting down): nothing more gets acked.
                    s.shutdown.cancelled().await;
                    return Ok(());
                }
                let upto = *acked.borrow_and_update();
                let later = pending.split_off(&(upto + 1));
                let due = std::mem::replace(&mut pending, later);
                for (seq, receipts) in due {
                    for (modem, receipt) in receipts {
                        confirm(modem, receipt, seq);
                    }
                }
            }
            _ = s.refs_logged.notified(), if !unmatched.is_empty() => {
                let waiting = std::mem::take(&mut unmatched);
                for u in waiting {
                    if u.at.elapsed() < UNMATCHED_TTL
                        && let Some(back) = on_report(&s, u.report).await
                    {
                        unmatched.push_back(Unmatched { report: back, at: u.at });
                    }
                }
            }
            ev = events.recv() => {
                let Some(LineEvent { line, modem, event }) = ev else { return Ok(()) };
                match event {
                    ModemEvent::Sms(sms) => {
                        let receipt = sms.receipt.clone();
                        if let Some(seq) = on_sms(&s, &line, sms).await {
                            hand_over(&mut pending, *acked.borrow(), seq, modem, receipt);
                        }
                    }
                    ModemEvent::UndecodableSms { pdu, error, receipt, .. } => {
                        warn!(line = %line, %error, %pdu, "undecodable SMS; logged with its PDU");
                        let sms = IncomingSms {
                            key: format!("undecodable:{}", receipt.key),
                            line: line.clone(),
                            sender: "unknown".into(),
                            text: format!("[undecodable SMS ({error}); PDU {pdu}]"),
                            sent_at: String::new(),
                            parts: 1,
                            incomplete: true,
                            class: None,
                            receipt: receipt.clone(),
                        };
                        if let Some(seq) = on_sms(&s, &line, sms).await {
                            hand_over(&mut pending, *acked.borrow(), seq, modem, receipt);
                        }
                    }
                    ModemEvent::DeliveryReport(r) => {
                        if let Some(back) = on_report(&s, r).await {
                            if unmatched.len() >= UNMATCHED_MAX {
                                unmatched.pop_front();
                            }
                            unmatched.push_back(Unmatched { report: back, at: Instant::now() });
                        }
                    }
                    _ => {}
                }
            }
        }
    }
}

/// Confirms a logged message now if mgmt has acknowledged it, else once it
/// does. A message offered again (a restarted driver) replaces its older
/// receipt: only the newest driver's view of the SIM may delete anything.
fn hand_over(
    pending: &mut BTreeMap<u64, Vec<(ModemHandle, HandoverReceipt)>>,
    acked: u64,
    seq: u64,
    modem: ModemHandle,
    receipt: HandoverReceipt,
) {
    if seq <= acked {
        confirm(modem, receipt, seq);
    } else {
        let waiting = pending.entry(seq).or_default();
        waiting.retain(|(m, r)| !(r.key == receipt.key && m.line() == modem.line()));
        waiting.push((modem, receipt));
    }
}

/// Deletes a message from the modem, in the background (the driver may be
/// busy sending). A failure is harmless: the message is offered again at the
/// next sweep or restart, found logged, and confirmed then.
fn confirm(modem: ModemHandle, receipt: HandoverReceipt, seq: u64) {
    tokio::spawn(async move {
        let key = receipt.key.clone();
        match modem.confirm(receipt).await {
            Ok(()) => {
                debug!(line = %modem.line(), seq, %key, "acknowledged by mgmt; deleted from the modem")
            }
            Err(e) => {
                warn!(line = %modem.line(), seq, %key, error = %e, "confirm failed; the message will be offered again")
            }
        }
    });
}

/// Logs an incoming message unless its key is already logged; returns its
/// seq. While the database refuses, it retries with backoff: the receive
/// loop stalls, the driver's queue fills up and the messages wait on the
/// modem, so nothing is lost. `None` only when shutting down.
async fn on_sms(s: &Shared, line: &str, sms: IncomingSms) -> Option<u64> {
    // Offline is judged when the message arrives, before it is logged.
    let offline = s.offline.as_ref().filter(|off| {
        let down = s.link.borrow().down_for();
        down.is_some_and(|d| d >= Duration::from_secs(off.after_s))
    });
    let mut delay = Duration::from_millis(500);
    let (seq, new) = loop {
        match log_sms(s, line, &sms).await {
            Ok(r) => break r,
            Err(e) => {
                error!(line = %line, key = %sms.key, error = %e, retry_in = ?delay, "cannot log an incoming SMS; it stays on the modem");
                tokio::select! {
                    _ = s.shutdown.cancelled() => return None,
                    _ = tokio::time::sleep(delay) => {}
                }
                delay = (delay * 2).min(Duration::from_secs(30));
            }
        }
    };
    if !new {
        debug!(line = %line, seq, key = %sms.key, "message offered again; already logged");
        return Some(seq);
    }
    info!(line = %line, seq, from = %sms.sender, parts = sms.parts, incomplete = sms.incomplete, "SMS received and logged");
    if let Some(off) = offline {
        let lang = s.lines.entry(line).and_then(|e| e.language);
        auto_reply(s, off.clone(), line.to_string(), sms, lang, seq).await;
    }
    Some(seq)
}

/// The seq of the message's `MessageReceived`, and whether it was appended now.
async fn log_sms(s: &Shared, line: &str, sms: &IncomingSms) -> Result<(u64, bool), StoreError> {
    if let Some(seq) = db::received_seq(&s.log, line, &sms.key).await? {
        return Ok((seq, false));
    }
    let body = EventBody::MessageReceived {
        channel: Channel::Sms,
        line: line.to_string(),
        from: sms.sender.clone(),
        to: s.lines.entry(line).and_then(|e| e.number),
        text: sms.text.clone(),
        sent_at: (!sms.sent_at.is_empty()).then(|| sms.sent_at.clone()),
        parts: u16::from(sms.parts.max(1)),
        incomplete: sms.incomplete,
        key: Some(sms.key.clone()),
    };
    match append(s, body).await {
        Ok(seq) => Ok((seq, true)),
        Err(e) => match db::received_seq(&s.log, line, &sms.key).await? {
            // The key's primary key refused a second append: logged already.
            Some(seq) => Ok((seq, false)),
            None => Err(e),
        },
    }
}

/// Logs a delivery report for its part; gives it back if the part is not
/// known yet (its `MessageSent` may still be on its way to the log).
///
/// A report the driver tied to its send (the tag is the command id, the
/// part its index) goes to that part. Otherwise (the send is older than
/// this driver) it goes to the newest part still waiting with the report's
/// line, TP-MR and recipient within the line's report window: TP-MR is one
/// octet, reused after 256 parts or a modem reset.
async fn on_report(s: &Shared, r: DeliveryReport) -> Option<DeliveryReport> {
    let state = match r.outcome {
        DeliveryOutcome::Pending => {
            debug!(line = %r.line, mr = r.reference, status = r.status, "SMSC still trying");
            return None;
        }
        DeliveryOutcome::Delivered => DeliveryState::Delivered,
        DeliveryOutcome::Failed => DeliveryState::Failed,
    };
    let found = match (r.tag.clone(), r.part) {
        (Some(tag), Some(index)) => {
            let part = u16::try_from(index.saturating_add(1)).unwrap_or(u16::MAX);
            match db::is_waiting(&s.log, &tag, part).await {
                Ok(true) => Some((tag, part)),
                Ok(false) => {
                    let sending = match tag.parse::<EventId>() {
                        Ok(id) => db::command_state(&s.log, id)
                            .await
                            .ok()
                            .flatten()
                            .is_some_and(|st| st == "sending"),
                        Err(_) => false,
                    };
                    if sending {
                        // Its MessageSent is not logged yet: held until it is.
                        return Some(r);
                    }
                    debug!(line = %r.line, mr = r.reference, command = %tag, part, "delivery report for a part no longer waiting; ignored");
                    return None;
                }
                Err(e) => {
                    error!(line = %r.line, mr = r.reference, error = %e, "cannot look up a delivery report's message; report dropped");
                    return None;
                }
            }
        }
        _ => {
            let since = window_start(s, &r.line);
            match db::part_for_report(&s.log, &r.line, r.reference, &r.recipient, since).await {
                Ok(Some(p)) => Some((p.command, p.part)),
                Ok(None) => None,
                Err(e) => {
                    error!(line = %r.line, mr = r.reference, error = %e, "cannot look up a delivery report's message; report dropped");
                    return None;
                }
            }
        }
    };
    let Some((command, part)) = found else {
        debug!(line = %r.line, mr = r.reference, "delivery report for a part not (yet) known");
        return Some(r);
    };
    let Ok(command) = command.parse::<EventId>() else {
        return None;
    };
    let logged = append(
        s,
        EventBody::DeliveryStatus {
            command,
            part: Some(part),
            state,
            detail: (state == DeliveryState::Failed).then(|| {
                format!(
                    "the network gave up delivering part {part} to {} (TP-ST {})",
                    r.recipient, r.status
                )
            }),
        },
    )
    .await;
    match logged {
        Ok(seq) => info!(line = %r.line, command = %command, part, ?state, seq, "delivery report"),
        Err(e) => {
            error!(line = %r.line, command = %command, part, error = %e, "cannot log a delivery report; report dropped")
        }
    }
    None
}

/// Start of `line`'s report window, in milliseconds since the epoch.
fn window_start(s: &Shared, line: &str) -> i64 {
    let window = s
        .lines
        .entry(line)
        .map_or(DEFAULT_REPORT_WINDOW, |e| e.report_window());
    ms_ago(window)
}

/// Milliseconds since the epoch, `d` ago.
fn ms_ago(d: Duration) -> i64 {
    db::now_ms().saturating_sub(i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// How often waiting parts are checked against their report window: a
/// quarter of the shortest window, between 100 ms and a minute.
fn expiry_period(s: &Shared) -> Duration {
    s.lines
        .labels()
        .iter()
        .filter_map(|l| s.lines.entry(l))
        .map(|e| e.report_window() / 4)
        .min()
        .unwrap_or(Duration::from_secs(60))
        .clamp(Duration::from_millis(100), Duration::from_secs(60))
}

/// Logs `no_report` for every waiting part in `scope` that can no longer
/// get its delivery report: superseded by a newer part with the same line,
/// TP-MR and recipient, or past its line's report window.
async fn expire_reports(s: &Shared, scope: db::Scope) {
    let _one_at_a_time = s.expiring.lock().await;
    let starts: BTreeMap<String, i64> = s
        .lines
        .labels()
        .into_iter()
        .map(|l| {
            let start = window_start(s, &l);
            (l, start)
        })
        .collect();
    let default_start = ms_ago(DEFAULT_REPORT_WINDOW);
    let expired = match db::expired_parts(&s.log, scope, move |line| {
        starts.get(line).copied().unwrap_or(default_start)
    })
    .await
    {
        Ok(e) => e,
        Err(e) => {
            error!(error = %e, "cannot look for sent parts past their report window; retried later");
            return;
        }
    };
    for (p, why) in expired {
        let Ok(command) = p.command.parse::<EventId>() else {
            continue;
        };
        let detail = match &why {
            db::Expiry::Superseded { by_command } => format!(
                "no delivery report: message reference {} on {} was reused by a later message \
                 ({by_command}) to the same number before a report came",
                p.mr, p.line
            ),
            db::Expiry::TooOld => {
                let window = s
                    .lines
                    .entry(&p.line)
                    .map_or(DEFAULT_REPORT_WINDOW, |e| e.report_window());
                format!(
                    "no delivery report within {} on {}",
                    humantime_short(window),
                    p.line
                )
            }
        };
        match append(
            s,
            EventBody::DeliveryStatus {
                command,
                part: Some(p.part),
                state: DeliveryState::NoReport,
                detail: Some(detail),
            },
        )
        .await
        {
            Ok(seq) => {
                info!(line = %p.line, command = %command, part = p.part, mr = p.mr, ?why, seq, "no delivery report")
            }
            Err(e) => {
                error!(line = %p.line, command = %command, part = p.part, error = %e, "cannot log a missing delivery report; retried later")
            }
        }
    }
}

/// "3 days", "2 h", "90 s": a window as people say it.
fn humantime_short(d: Duration) -> String {
    let secs = d.as_secs();
    if secs >= 86_400 && secs.is_multiple_of(86_400) {
        format!("{} day(s)", secs / 86_400)
    } else if secs >= 3600 && secs.is_multiple_of(3600) {
        format!("{} h", secs / 3600)
    } else if secs >= 60 && secs.is_multiple_of(60) {
        format!("{} min", secs / 60)
    } else {
        format!("{:?}", d)
    }
}

// ------------------------------------------------------------------ send

async fn command_loop(s: Shared, mut commands: mpsc::Receiver<Command>) -> anyhow::Result<()> {
    loop {
        let cmd = tokio::select! {
            _ = s.shutdown.cancelled() => return Ok(()),
            c = commands.recv() => match c {
                Some(c) => c,
                None => {
                    s.shutdown.cancelled().await;
                    return Ok(());
                }
            },
        };
        if cmd.kind.is_fleet() {
            // Fleet commands are crate::fleet's (the appliance routes them there).
            warn!(command = %cmd.id, kind = cmd.kind.name(), "not an SMS command; ignored by the SMS loop");
            continue;
        }
        // Persist before acting; the same id twice acts once.
        if !db::claim_command(&s.log, cmd.id, &cmd.kind).await? {
            info!(command = %cmd.id, "duplicate command ignored (already received)");
            continue;
        }
        let (line, to, text) = match cmd.kind {
            CommandKind::SendSms { line, to, text } => (line, to, text),
            CommandKind::Unknown(u) => {
                let detail = crate::unknown_command_reason(&s.device, &u);
                warn!(command = %cmd.id, kind = u.kind(), "{detail}");
                append(
                    &s,
                    EventBody::DeliveryStatus {
                        command: cmd.id,
                        part: None,
                        state: DeliveryState::Failed,
                        detail: Some(detail),
                    },
                )
                .await?;
                continue;
            }
            _ => continue,
        };
        info!(command = %cmd.id, line = %line, to = %to, "send command received");
        spawn_send(&s, cmd.id, line, to, text, false);
    }
}

/// Claims the customer's auto-reply window (awaited, so messages are
/// decided in arrival order) and sends the reply in the background.
async fn auto_reply(
    s: &Shared,
    off: Arc<OfflineConfig>,
    line: String,
    sms: IncomingSms,
    line_lang: Option<String>,
    seq: u64,
) {
    let customer = sms.sender.clone();
    // Only a phone number can be answered (not "Kyivstar" or "unknown").
    let digits = customer.trim_start_matches('+');
    if digits.is_empty() || !digits.chars().all(|c| c.is_ascii_digit()) {
        debug!(line = %line, seq, from = %customer, "no auto-reply to a non-numeric sender");
        return;
    }
    let Some((lang, text)) = lang::pick(
        &off.texts,
        &sms.text,
        line_lang.as_deref(),
        &off.default_language,
    ) else {
        return;
    };
    let (lang, text) = (lang.to_string(), text.to_string());
    let id = EventId::new();
    let kind = CommandKind::SendSms {
        line: line.clone(),
        to: customer.clone(),
        text: text.clone(),
    };
    let window_ms = off.window_s.saturating_mul(1000);
    match db::claim_auto_reply(&s.log, id, &customer, &kind, window_ms).await {
        Ok(true) => {
            info!(line = %line, seq, command = %id, to = %customer, %lang, "uplink down: sending the offline auto-reply");
            spawn_send(s, id, line, customer, text, true);
        }
        Ok(false) => {
            debug!(line = %line, seq, to = %customer, "customer already auto-replied within the window")
        }
        Err(e) => error!(line = %line, seq, error = %e, "cannot record the auto-reply; none sent"),
    }
}

fn spawn_send(s: &Shared, id: EventId, line: String, to: String, text: String, auto_reply: bool) {
    let s = s.clone();
    tokio::spawn(async move {
        if let Err(e) = send(&s, id, line.clone(), to, text, auto_reply).await {
            error!(command = %id, line = %line, error = %e, "cannot log a send outcome; it is reported unknown after a restart");
        }
    });
}

/// Whether `text` fits one SMS (160 GSM septets or 70 UTF-16 units).
fn single_part(text: &str) -> bool {
    crossline_pdu::gsm7::encode(text).map_or(text.encode_utf16().count() <= 70, |s| s.len() <= 160)
}

/// Sends one persisted command's SMS and logs the outcome.
async fn send(
    s: &Shared,
    command: EventId,
    line: String,
    to: String,
    text: String,
    auto_reply: bool,
) -> anyhow::Result<()> {
    let Some(mut handle) = s.lines.handle(&line) else {
        let detail = format!(
            "unknown line {line} on {}; configured: {}",
            s.device,
            s.lines.labels().join(", ")
        );
        warn!(command = %command, line = %line, "{detail}");
        append(
            s,
            EventBody::DeliveryStatus {
                command,
                part: None,
                state: DeliveryState::Failed,
                detail: Some(detail),
            },
        )
        .await?;
        return Ok(());
    };
    let outcome = loop {
        // Wait for the line's driver (it may be restarting).
        let modem = tokio::select! {
            _ = s.shutdown.cancelled() => None,
            h = handle.wait_for(Option::is_some) => h.ok().and_then(|h| h.clone()),
        };
        let Some(modem) = modem else {
            break Err(SendError::Stopped { line: line.clone() });
        };
        let opts = SendOptions {
            tag: Some(command.to_string()),
            ..SendOptions::default()
        };
        match modem.send_sms(&to, &text, opts).await {
            // Nothing was sent; a restarted driver can take it.
            Err(SendError::Stopped { .. }) if !s.shutdown.is_cancelled() => {
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
            other => break other,
        }
    };
    let body = match outcome {
        Ok(sent) => {
            let refs = sent.refs.clone();
            let seq = append(
                s,
                EventBody::MessageSent {
                    channel: Channel::Sms,
                    line: line.clone(),
                    to: to.clone(),
                    text,
                    command,
                    refs: refs.clone(),
                    auto_reply,
                },
            )
            .await?;
            s.refs_logged.notify_one();
            info!(command = %command, line = %line, seq, to = %to, ?refs, auto_reply, "SMS sent");
            // Older parts whose message reference these took can no longer
            // get their report: say so now.
            expire_reports(
                s,
                db::Scope::Refs {
                    line: line.clone(),
                    mrs: refs,
                },
            )
            .await;
            return Ok(());
        }
        Err(
            ref e @ SendError::Failed {
                ref cause,
                ref sent_refs,
                ..
            },
        ) => {
            warn!(command = %command, line = %line, error = %e, "SMS not sent");
            // The part the modem refused, with the reason in words people
            // read; the parts before it went out but the message is failed.
            EventBody::DeliveryStatus {
                command,
                part: Some(u16::try_from(sent_refs.len() + 1).unwrap_or(u16::MAX)),
                state: DeliveryState::Failed,
                detail: Some(cause.clone()),
            }
        }
        Err(e @ SendError::Unknown { .. }) => {
            warn!(command = %command, line = %line, error = %e, "SMS outcome unknown; not resent");
            EventBody::DeliveryStatus {
                command,
                part: None,
                state: DeliveryState::Unknown,
                detail: Some(e.to_string()),
            }
        }
        Err(SendError::Stopped { .. }) if single_part(&text) => {
            // Nothing went out: back to the queue, sent after the next start.
            db::set_command_state(&s.log, command, "sending", "queued").await?;
            info!(command = %command, line = %line, "appliance stopping; SMS queued for the next start");
            return Ok(());
        }
        Err(SendError::Stopped { .. }) => {
            // The driver answers `Stopped` also for a multipart message whose
            // first parts already went out: it cannot be queued again.
            warn!(command = %command, line = %line, "appliance stopping during a multipart SMS; outcome unknown");
            EventBody::DeliveryStatus {
                command,
                part: None,
                state: DeliveryState::Unknown,
                detail: Some(format!(
                    "the appliance {} stopped while this multipart SMS was queued or partly sent \
                     on {line}; some parts may have gone out; not sent again",
                    s.device
                )),
            }
        }
    };
    let seq = append(s, body).await?;
    debug!(command = %command, line = %line, seq, "send outcome logged");
    Ok(())
}
