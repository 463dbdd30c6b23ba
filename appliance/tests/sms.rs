//! The SMS loop end to end on the appliance side: real SQLite files, real
//! PTY modems (crossline-sim) driven by the real driver. No MQTT: the tests
//! play mgmt by moving the `acked` watch and sending commands.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crossline_appliance::config::{ModemEntry, OfflineConfig};
use crossline_appliance::log::LocalLog;
use crossline_appliance::sms::{self, SmsContext, db};
use crossline_appliance::uplink::LinkState;
use crossline_core::{DeliveryState, Event, EventBody, EventId, NodeId};
use crossline_proto::{Command, CommandKind, Telemetry, VERSION};
use crossline_sim::{SimConfig, SimModem};
use crossline_store::{EventLog, SqliteStore};
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

const WAIT: Duration = Duration::from_secs(20);

fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

async fn sim(own: &str) -> SimModem {
    init_tracing();
    SimModem::spawn(SimConfig {
        own_number: own.into(),
        noise_interval: None,
        status_report_delay: Duration::from_millis(300),
        ..SimConfig::default()
    })
    .await
    .unwrap()
}

fn entry(label: &str, sim: &SimModem, number: &str) -> ModemEntry {
    let mut e = ModemEntry::new(label, sim.link().to_string_lossy());
    e.profile = crossline_modem::Profile::QuectelEc25;
    e.number = Some(number.into());
    e.command_timeout = Some(Duration::from_secs(2));
    e.send_timeout = Some(Duration::from_secs(4));
    e.retry_backoff = Some(Duration::from_millis(200));
    e.reopen_backoff_max = Some(Duration::from_millis(500));
    e.rate_limit = Some(0);
    // Short health checks: a URC that arrives in the same read as a
    // command's final result waits in crossline-modem's buffer until the
    // next command (reported to the driver's maintainer).
    e.health_interval = Some(Duration::from_secs(1));
    e
}

/// The SMS loop of one appliance "process" on a database file.
struct App {
    store: SqliteStore,
    log: LocalLog<SqliteStore>,
    acked: watch::Sender<u64>,
    link: watch::Sender<LinkState>,
    commands: mpsc::Sender<Command>,
    telemetry: mpsc::Receiver<Telemetry>,
    shutdown: CancellationToken,
    task: JoinHandle<anyhow::Result<()>>,
}

struct Opts {
    acked: u64,
    link: LinkState,
    offline: Option<OfflineConfig>,
}

impl Default for Opts {
    fn default() -> Self {
        Opts {
            acked: 0,
            link: LinkState::Up {
                since: Instant::now(),
            },
            offline: None,
        }
    }
}

impl App {
    async fn start(db: &Path, modems: Vec<ModemEntry>, opts: Opts) -> App {
        let store = db::open_store(db, NodeId::new("branch-test").unwrap()).unwrap();
        let log = LocalLog::new(store.clone()).await.unwrap();
        let (acked, acked_rx) = watch::channel(opts.acked);
        let (link, link_rx) = watch::channel(opts.link);
        let (commands, cmd_rx) = mpsc::channel(16);
        let (tel_tx, telemetry) = mpsc::channel(64);
        let shutdown = CancellationToken::new();
        let ctx = SmsContext {
            log: log.clone(),
            modems,
            offline: opts.offline,
            acked: acked_rx,
            link: link_rx,
            telemetry: tel_tx,
            telemetry_every: crossline_appliance::modems::TELEMETRY_EVERY,
            lines: None,
            data_dir: db.parent().map(Path::to_path_buf),
            ivr: None,
            line_events: None,
        };
        let task = tokio::spawn(sms::run(ctx, cmd_rx, shutdown.clone()));
        App {
            store,
            log,
            acked,
            link,
            commands,
            telemetry,
            shutdown,
            task,
        }
    }

    /// Stops everything as a restart would (nothing confirmed on the way out).
    async fn stop(self) {
        self.shutdown.cancel();
        tokio::time::timeout(WAIT, self.task)
            .await
            .expect("the SMS loop stops")
            .unwrap()
            .unwrap();
        drop(self.log);
        self.store.close().unwrap();
    }

    async fn events(&self) -> Vec<Event> {
        let me = self.store.local_node().clone();
        self.store.read_from(&me, 1, 10_000).await.unwrap()
    }

    /// Waits until the log holds an event matching `pred`; returns it.
    async fn wait_event(&self, what: &str, pred: impl Fn(&Event) -> bool) -> Event {
        let deadline = Instant::now() + WAIT;
        let mut head = self.log.subscribe();
        loop {
            head.borrow_and_update();
            let evs = self.events().await;
            if let Some(e) = evs.iter().find(|e| pred(e)) {
                return e.clone();
            }
            if tokio::time::timeout_at(deadline, head.changed())
                .await
                .is_err()
            {
                panic!(
                    "no {what} within {WAIT:?}; log: {:#?}",
                    evs.iter().map(|e| &e.body).collect::<Vec<_>>()
                );
            }
        }
    }

    async fn send(&self, id: EventId, line: &str, to: &str, text: &str) {
        self.commands
            .send(Command {
                v: VERSION,
                id,
                kind: CommandKind::SendSms {
                    line: line.into(),
                    to: to.into(),
                    text: text.into(),
                },
            })
            .await
            .unwrap();
    }
}

fn received_from<'a>(evs: &'a [Event], from: &str) -> Vec<&'a Event> {
    evs.iter()
        .filter(|e| matches!(&e.body, EventBody::MessageReceived { from: f, .. } if f == from))
        .collect()
}

fn is_received(e: &Event, from: &str) -> bool {
    matches!(&e.body, EventBody::MessageReceived { from: f, .. } if f == from)
}

fn sent_for(e: &Event, cmd: EventId) -> bool {
    matches!(&e.body, EventBody::MessageSent { command, .. } if *command == cmd)
}

fn status_for(e: &Event, cmd: EventId, want: DeliveryState) -> bool {
    matches!(&e.body, EventBody::DeliveryStatus { command, state, .. } if *command == cmd && *state == want)
}

fn on_sim(sim: &SimModem) -> usize {
    sim.stored().iter().filter(|s| s.mem != "SR").count()
}

fn db_path(dir: &tempfile::TempDir) -> PathBuf {
    dir.path().join("appliance.db")
}

const LONG_UK: &str = "Добрий день! Я хотіла б дізнатися, чи готове моє замовлення номер 4821 \
    у вашому відділенні на Хрещатику, і до котрої години ви сьогодні працюєте. \
    Дякую, чекаю на відповідь якнайшвидше!";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multipart_cyrillic_sms_is_logged_once_and_deleted_only_after_the_ack() {
    let dir = tempfile::tempdir().unwrap();
    let sim = sim("+380670000001").await;
    let mut app = App::start(
        &db_path(&dir),
        vec![entry("gsm0", &sim, "+380670000001")],
        Opts::default(),
    )
    .await;

    let parts = sim.inject_sms("+380501234567", LONG_UK).unwrap();
    assert!(parts >= 3, "{parts} parts");
    let ev = app
        .wait_event("the received message", |e| is_received(e, "+380501234567"))
        .await;
    match &ev.body {
        EventBody::MessageReceived {
            line,
            to,
            text,
            parts: p,
            incomplete,
            key,
            ..
        } => {
            assert_eq!(line, "gsm0");
            assert_eq!(to.as_deref(), Some("+380670000001"));
            assert_eq!(text, LONG_UK);
            assert_eq!(usize::from(*p), parts);
            assert!(!incomplete);
            assert!(key.is_some());
        }
        other => panic!("{other:?}"),
    }
    // Logged, not yet acknowledged: still on the SIM.
    assert_eq!(on_sim(&sim), parts);

    // A second message, logged after the first.
    sim.inject_sms("+380631112233", "Ще одне питання").unwrap();
    let second = app
        .wait_event("the second message", |e| is_received(e, "+380631112233"))
        .await;
    assert!(second.seq > ev.seq);

    // mgmt acknowledges the first only: the first leaves the SIM, the second stays.
    app.acked.send_replace(ev.seq);
    sim.wait_until("only the second message on the SIM", WAIT, |m| {
        on_sim(m) == 1
    })
    .await
    .unwrap();
    app.acked.send_replace(second.seq);
    sim.wait_until("the SIM emptied", WAIT, |m| on_sim(m) == 0)
        .await
        .unwrap();

    let evs = app.events().await;
    assert_eq!(received_from(&evs, "+380501234567").len(), 1);
    assert_eq!(received_from(&evs, "+380631112233").len(), 1);

    // Health reaches the telemetry channel.
    let deadline = Instant::now() + WAIT;
    loop {
        let t = tokio::time::timeout_at(deadline, app.telemetry.recv())
            .await
            .expect("a telemetry sample")
            .unwrap();
        if let Some(m) = t.modems.iter().find(|m| m.line == "gsm0" && m.registered) {
            assert!(m.signal_dbm.is_some(), "{m:?}");
            assert!(m.iccid.is_some(), "{m:?}");
            assert_eq!(m.operator.as_deref(), Some("Kyivstar"));
            break;
        }
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_before_the_ack_does_not_log_twice_and_confirms_after_the_ack() {
    let dir = tempfile::tempdir().unwrap();
    let sim = sim("+380670000001").await;
    let modems = || vec![entry("gsm0", &sim, "+380670000001")];

    let app = App::start(&db_path(&dir), modems(), Opts::default()).await;
    sim.inject_sms("+380501234567", LONG_UK).unwrap();
    let first = app
        .wait_event("the message", |e| is_received(e, "+380501234567"))
        .await;
    app.stop().await;
    assert!(
        on_sim(&sim) > 0,
        "unacknowledged message must stay on the SIM"
    );

    // Restart, still not acknowledged: offered again by the start-up sweep,
    // found logged, confirmed once the ack covers it.
    let app = App::start(&db_path(&dir), modems(), Opts::default()).await;
    app.acked.send_replace(first.seq);
    sim.wait_until("the SIM emptied", WAIT, |m| on_sim(m) == 0)
        .await
        .unwrap();
    let evs = app.events().await;
    assert_eq!(received_from(&evs, "+380501234567").len(), 1, "{evs:#?}");

    // A message acknowledged before a crash that came before its confirm:
    // after the restart it is confirmed at once.
    sim.inject_sms("+380631112233", "Привіт ще раз").unwrap();
    let second = app
        .wait_event("the second message", |e| is_received(e, "+380631112233"))
        .await;
    app.stop().await;
    assert_eq!(on_sim(&sim), 1);
    let app = App::start(
        &db_path(&dir),
        modems(),
        Opts {
            acked: second.seq,
            ..Opts::default()
        },
    )
    .await;
    sim.wait_until("the SIM emptied", WAIT, |m| on_sim(m) == 0)
        .await
        .unwrap();
    let evs = app.events().await;
    assert_eq!(received_from(&evs, "+380631112233").len(), 1, "{evs:#?}");
    assert_eq!(evs.len(), 2, "{evs:#?}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_commands_go_out_once_on_the_right_line_with_delivery_reports() {
    let dir = tempfile::tempdir().unwrap();
    let sim0 = sim("+380670000001").await;
    let sim1 = sim("+380930000002").await;
    let app = App::start(
        &db_path(&dir),
        vec![
            entry("gsm0", &sim0, "+380670000001"),
            entry("gsm1", &sim1, "+380930000002"),
        ],
        Opts::default(),
    )
    .await;

    // A two-part reply on gsm1, delivered twice by mgmt.
    let a = EventId::new();
    app.send(a, "gsm1", "+380501234567", LONG_UK).await;
    app.send(a, "gsm1", "+380501234567", LONG_UK).await;
    let sent = app
        .wait_event("MessageSent for A", |e| sent_for(e, a))
        .await;
    let EventBody::MessageSent {
        line,
        to,
        text,
        refs,
        auto_reply,
        ..
    } = &sent.body
    else {
        panic!()
    };
    assert_eq!(
        (line.as_str(), to.as_str(), text.as_str()),
        ("gsm1", "+380501234567", LONG_UK)
    );
    assert!(refs.len() >= 3, "{refs:?}");
    assert!(!auto_reply);

    // A short one on gsm0, after the duplicate: the duplicate was handled first.
    let b = EventId::new();
    app.send(b, "gsm0", "+380631112233", "Дякуємо!").await;
    app.wait_event("MessageSent for B", |e| sent_for(e, b))
        .await;
    let s1 = sim1.sent();
    assert_eq!(
        s1.len(),
        1,
        "the duplicate command must not send again: {s1:?}"
    );
    assert_eq!(s1[0].to, "+380501234567");
    assert_eq!(s1[0].text, LONG_UK);
    let s0 = sim0.sent();
    assert_eq!(s0.len(), 1);
    assert_eq!(
        (s0[0].to.as_str(), s0[0].text.as_str()),
        ("+380631112233", "Дякуємо!")
    );

    // Every part of A is reported delivered.
    for part in 1..=refs.len() as u16 {
        app.wait_event(&format!("delivery of part {part}"), |e| {
            matches!(&e.body, EventBody::DeliveryStatus { command, part: Some(p), state: DeliveryState::Delivered, .. }
                if *command == a && *p == part)
        })
        .await;
    }
    assert_eq!(
        db::command_state(&app.log, a).await.unwrap().as_deref(),
        Some("sent")
    );

    // An unknown line fails clearly, and sends nothing.
    let c = EventId::new();
    app.send(c, "gsm9", "+380501234567", "x").await;
    let failed = app
        .wait_event("Failed for the unknown line", |e| {
            status_for(e, c, DeliveryState::Failed)
        })
        .await;
    let EventBody::DeliveryStatus { detail, part, .. } = &failed.body else {
        panic!()
    };
    assert_eq!(*part, None);
    let detail = detail.clone().unwrap();
    assert!(
        detail.contains("unknown line gsm9 on branch-test"),
        "{detail}"
    );
    assert_eq!(sim0.sent().len() + sim1.sent().len(), 2);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ambiguous_or_interrupted_sends_are_unknown_and_never_resent() {
    let dir = tempfile::tempdir().unwrap();
    let sim = sim("+380670000001").await;
    let modems = || vec![entry("gsm0", &sim, "+380670000001")];

    // A command persisted before a crash, its outcome never logged.
    let crashed = EventId::new();
    {
        let store = db::open_store(&db_path(&dir), NodeId::new("branch-test").unwrap()).unwrap();
        let log = LocalLog::new(store.clone()).await.unwrap();
        let kind = CommandKind::SendSms {
            line: "gsm0".into(),
            to: "+380501234567".into(),
            text: "lost in the crash".into(),
        };
        assert!(db::claim_command(&log, crashed, &kind).await.unwrap());
        drop(log);
        store.close().unwrap();
    }

    let app = App::start(&db_path(&dir), modems(), Opts::default()).await;
    let ev = app
        .wait_event("Unknown for the interrupted command", |e| {
            status_for(e, crashed, DeliveryState::Unknown)
        })
        .await;
    assert!(
        matches!(&ev.body, EventBody::DeliveryStatus { detail: Some(d), .. } if d.contains("restarted"))
    );

    // The modem dies after taking the PDU, before answering +CMGS.
    sim.unplug_after_next_submit();
    let d = EventId::new();
    app.send(d, "gsm0", "+380501234567", "Ваше замовлення готове")
        .await;
    app.wait_event("Unknown for the ambiguous submit", |e| {
        status_for(e, d, DeliveryState::Unknown)
    })
    .await;
    assert_eq!(
        db::command_state(&app.log, d).await.unwrap().as_deref(),
        Some("unknown")
    );
    sim.replug().await.unwrap();
    app.stop().await;

    // After a restart, mgmt redelivers the same command: nothing is sent again.
    let app = App::start(&db_path(&dir), modems(), Opts::default()).await;
    app.send(d, "gsm0", "+380501234567", "Ваше замовлення готове")
        .await;
    app.send(crashed, "gsm0", "+380501234567", "lost in the crash")
        .await;
    let e = EventId::new();
    app.send(e, "gsm0", "+380501234567", "Наступне повідомлення")
        .await;
    app.wait_event("MessageSent for E", |ev| sent_for(ev, e))
        .await;
    let sent = sim.sent();
    let texts: Vec<&str> = sent.iter().map(|s| s.text.as_str()).collect();
    assert_eq!(
        texts,
        ["Ваше замовлення готове", "Наступне повідомлення"],
        "{sent:?}"
    );
    let evs = app.events().await;
    let outcomes = evs
        .iter()
        .filter(|ev| matches!(&ev.body, EventBody::DeliveryStatus { command, part: None, .. } | EventBody::MessageSent { command, .. } if *command == d || *command == crashed))
        .count();
    assert_eq!(outcomes, 2, "one outcome per command: {evs:#?}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_auto_reply_once_per_customer_per_window() {
    let dir = tempfile::tempdir().unwrap();
    let sim = sim("+380670000001").await;
    let offline = OfflineConfig {
        after_s: 60,
        window_s: 86_400,
        default_language: "en".into(),
        texts: [
            ("uk", "Дякуємо! Відповімо, щойно зʼявиться звʼязок."),
            ("en", "Thanks! We will answer when we are back online."),
        ]
        .into_iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect(),
    };
    let app = App::start(
        &db_path(&dir),
        vec![entry("gsm0", &sim, "+380670000001")],
        Opts {
            // Up: no auto-reply yet.
            offline: Some(offline),
            ..Opts::default()
        },
    )
    .await;
    sim.inject_sms("+380500000009", "Hello while online")
        .unwrap();
    app.wait_event("the online message", |e| is_received(e, "+380500000009"))
        .await;

    // Down, but not for long enough.
    app.link.send_replace(LinkState::down_now());
    sim.inject_sms("+380500000008", "Hello, just went down")
        .unwrap();
    app.wait_event("the early-offline message", |e| {
        is_received(e, "+380500000008")
    })
    .await;

    // Down for longer than after_s.
    let long_ago = Instant::now()
        .checked_sub(Duration::from_secs(120))
        .unwrap();
    app.link.send_replace(LinkState::Down { since: long_ago });
    sim.inject_sms("+380501234567", "Добрий день! Коли працює відділення?")
        .unwrap();
    app.wait_event("the first auto-reply", |e| {
        matches!(&e.body, EventBody::MessageSent { to, auto_reply: true, .. } if to == "+380501234567")
    })
    .await;
    sim.inject_sms("+380501234567", "Ви тут?").unwrap();
    app.wait_event(
        "the second message",
        |e| matches!(&e.body, EventBody::MessageReceived { text, .. } if text == "Ви тут?"),
    )
    .await;
    sim.inject_sms("+380631112233", "Hello, is my order ready?")
        .unwrap();
    app.wait_event("the other customer's auto-reply", |e| {
        matches!(&e.body, EventBody::MessageSent { to, auto_reply: true, .. } if to == "+380631112233")
    })
    .await;

    let evs = app.events().await;
    let replies: Vec<(&str, &str)> = evs
        .iter()
        .filter_map(|e| match &e.body {
            EventBody::MessageSent {
                to,
                text,
                auto_reply: true,
                line,
                ..
            } => {
                assert_eq!(line, "gsm0");
                Some((to.as_str(), text.as_str()))
            }
            _ => None,
        })
        .collect();
    assert_eq!(
        replies,
        [
            (
                "+380501234567",
                "Дякуємо! Відповімо, щойно зʼявиться звʼязок."
            ),
            (
                "+380631112233",
                "Thanks! We will answer when we are back online."
            ),
        ]
    );
    let sent = sim.wait_sent(2, WAIT).await.unwrap();
    assert_eq!(sent.len(), 2, "{sent:?}");
    assert_eq!(received_from(&evs, "+380501234567").len(), 2);
    app.stop().await;
}

/// Polls a command's state until it is `want`.
async fn wait_state(log: &LocalLog<SqliteStore>, id: EventId, want: &str) {
    let deadline = Instant::now() + WAIT;
    loop {
        let state = db::command_state(log, id).await.unwrap();
        if state.as_deref() == Some(want) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "command {id} is {state:?}, not {want}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_waiting_for_the_modem_at_shutdown_is_sent_after_the_restart() {
    let dir = tempfile::tempdir().unwrap();
    let sim = sim("+380670000001").await;
    let modems = || vec![entry("gsm0", &sim, "+380670000001")];
    let app = App::start(&db_path(&dir), modems(), Opts::default()).await;
    // Wait until the line is up, then pull the modem: the send has to wait.
    sim.wait_until("the driver's init", WAIT, |m| {
        m.commands().iter().any(|c| c.starts_with("AT+CNMI="))
    })
    .await
    .unwrap();
    sim.unplug().await.unwrap();
    let id = EventId::new();
    app.send(id, "gsm0", "+380501234567", "Ваша картка готова")
        .await;
    wait_state(&app.log, id, "sending").await;
    app.stop().await;

    sim.replug().await.unwrap();
    let app = App::start(&db_path(&dir), modems(), Opts::default()).await;
    app.wait_event("MessageSent after the restart", |e| sent_for(e, id))
        .await;
    let sent = sim.sent();
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent[0].text, "Ваша картка готова");
    let evs = app.events().await;
    assert!(
        !evs.iter().any(
            |e| matches!(&e.body, EventBody::DeliveryStatus { command, .. } if *command == id)
        ),
        "no unknown/failed status for a queued command: {evs:#?}"
    );
    app.stop().await;
}

// ------------------------------------------------ delivery reports and TP-MR

/// A modem whose status reports come 20 ms after each submit, and whose
/// TP-MR counter restarts at 0 at every power-on.
async fn sim_fast_reports(own: &str) -> SimModem {
    init_tracing();
    SimModem::spawn(SimConfig {
        own_number: own.into(),
        noise_interval: None,
        status_report_delay: Duration::from_millis(20),
        mr_restarts_at_boot: true,
        ..SimConfig::default()
    })
    .await
    .unwrap()
}

fn part_status(e: &Event, cmd: EventId, part: u16, want: DeliveryState) -> bool {
    matches!(&e.body, EventBody::DeliveryStatus { command, part: Some(p), state, .. }
        if *command == cmd && *p == part && *state == want)
}

fn delivered_ever(evs: &[Event], cmd: EventId) -> bool {
    evs.iter().any(|e| {
        matches!(&e.body, EventBody::DeliveryStatus { command, state: DeliveryState::Delivered, .. } if *command == cmd)
    })
}

fn refs_of(e: &Event) -> Vec<u8> {
    match &e.body {
        EventBody::MessageSent { refs, .. } => refs.clone(),
        other => panic!("not a MessageSent: {other:?}"),
    }
}

/// Sends `text` to `to` slowly (300 ms per modem answer), so that the report
/// of an early part arrives while later parts are still being submitted:
/// before the message's MessageSent can be logged.
async fn send_slowly(app: &App, sim: &SimModem, id: EventId, to: &str, text: &str) -> Event {
    sim.set_delay(Duration::from_millis(300));
    app.send(id, "gsm0", to, text).await;
    let sent = app
        .wait_event("MessageSent of the slow send", |e| sent_for(e, id))
        .await;
    sim.set_delay(Duration::ZERO);
    sent
}

/// Sends a message whose report the network never sends; returns its refs.
async fn send_unreported(app: &App, sim: &SimModem, id: EventId, to: &str) -> Vec<u8> {
    sim.withhold_reports(1);
    app.send(id, "gsm0", to, "Ваше замовлення готове").await;
    refs_of(&app.wait_event("MessageSent", |e| sent_for(e, id)).await)
}

/// One appliance driving `sim` as line gsm0.
async fn app_on_gsm0(dir: &tempfile::TempDir, sim: &SimModem) -> App {
    App::start(
        &db_path(dir),
        vec![entry("gsm0", sim, "+380670000001")],
        Opts::default(),
    )
    .await
}

/// Every part of `newer` is reported delivered; `older`, whose TP-MR it
/// reused, is `no_report` and never delivered. Returns the `no_report` detail.
async fn reports_went_to_the_newest(
    app: &App,
    newer: EventId,
    parts: u16,
    older: EventId,
) -> String {
    for part in 1..=parts {
        app.wait_event(&format!("delivery of part {part} of the newer send"), |e| {
            part_status(e, newer, part, DeliveryState::Delivered)
        })
        .await;
    }
    let ev = app
        .wait_event("no_report for the older send", |e| {
            part_status(e, older, 1, DeliveryState::NoReport)
        })
        .await;
    let evs = app.events().await;
    assert!(
        !delivered_ever(&evs, older),
        "the newer send's report went to the older one: {evs:#?}"
    );
    assert_eq!(
        db::command_state(&app.log, newer).await.unwrap().as_deref(),
        Some("sent")
    );
    match ev.body {
        EventBody::DeliveryStatus { detail, .. } => detail.unwrap(),
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delivery_report_goes_to_the_newest_send_across_a_reference_wrap() {
    let dir = tempfile::tempdir().unwrap();
    let sim = sim_fast_reports("+380670000001").await;
    let app = app_on_gsm0(&dir, &sim).await;
    let to = "+380501234567";

    // Send #1 takes TP-MR 0 and never gets a report.
    let first = EventId::new();
    assert_eq!(send_unreported(&app, &sim, first, to).await, vec![0]);

    // 254 sends later the counter wraps: the three parts of the next
    // message take 255, 0 and 1. The report of its part 2 (TP-MR 0) comes
    // while part 3 is still being submitted.
    sim.set_next_mr(255);
    let wrapped = EventId::new();
    let sent = send_slowly(&app, &sim, wrapped, to, LONG_UK).await;
    assert_eq!(refs_of(&sent), vec![255, 0, 1]);
    let detail = reports_went_to_the_newest(&app, wrapped, 3, first).await;
    assert!(
        detail.contains("message reference 0 on gsm0 was reused"),
        "{detail}"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delivery_report_goes_to_the_newest_send_across_a_modem_restart() {
    let dir = tempfile::tempdir().unwrap();
    let sim = sim_fast_reports("+380670000001").await;
    let app = app_on_gsm0(&dir, &sim).await;
    let to = "+380501234567";
    let before = EventId::new();
    assert_eq!(send_unreported(&app, &sim, before, to).await, vec![0]);
    let other = EventId::new();
    app.send(other, "gsm0", to, "Дякуємо!").await;
    let refs = refs_of(&app.wait_event("MessageSent", |e| sent_for(e, other)).await);
    assert_eq!(refs, vec![1]);
    app.wait_event("delivery of the second send", |e| {
        part_status(e, other, 1, DeliveryState::Delivered)
    })
    .await;

    // The modem restarts: its TP-MR counter starts again at 0.
    let inits = |m: &SimModem| {
        m.commands()
            .iter()
            .filter(|c| c.starts_with("AT+CNMI="))
            .count()
    };
    let inits_before = inits(&sim);
    sim.unplug().await.unwrap();
    sim.replug().await.unwrap();
    sim.wait_until("the driver's init after the restart", WAIT, |m| {
        inits(m) > inits_before
    })
    .await
    .unwrap();
    let after = EventId::new();
    let sent = send_slowly(&app, &sim, after, to, LONG_UK).await;
    assert_eq!(refs_of(&sent), vec![0, 1, 2]);
    reports_went_to_the_newest(&app, after, 3, before).await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_part_without_a_report_expires_to_no_report_and_reports_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let sim = SimModem::spawn(SimConfig {
        own_number: "+380670000001".into(),
        noise_interval: None,
        status_report_delay: Duration::from_secs(2),
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let modems = || {
        let mut e = entry("gsm0", &sim, "+380670000001");
        e.report_window = Some(Duration::from_secs(10));
        vec![e]
    };
    let app = App::start(&db_path(&dir), modems(), Opts::default()).await;

    // No report within the line's report window: `no_report`.
    let lost = EventId::new();
    send_unreported(&app, &sim, lost, "+380501234567").await;
    // A report that comes after the appliance restarted: the new driver
    // does not know the send, the log does.
    let late = EventId::new();
    app.send(late, "gsm0", "+380631112233", "Дякуємо!").await;
    app.wait_event("MessageSent", |e| sent_for(e, late)).await;
    app.stop().await;

    let app = App::start(&db_path(&dir), modems(), Opts::default()).await;
    app.wait_event("the late report after the restart", |e| {
        part_status(e, late, 1, DeliveryState::Delivered)
    })
    .await;
    let ev = app
        .wait_event("no_report past the window", |e| {
            part_status(e, lost, 1, DeliveryState::NoReport)
        })
        .await;
    let EventBody::DeliveryStatus { detail, .. } = &ev.body else {
        panic!()
    };
    let detail = detail.clone().unwrap();
    assert_eq!(detail, "no delivery report within 10s on gsm0");
    assert_eq!(
        db::command_state(&app.log, lost).await.unwrap().as_deref(),
        Some("sent")
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_part_is_failed_with_the_modems_reason_in_words() {
    let dir = tempfile::tempdir().unwrap();
    let sim = sim("+380670000001").await;
    let app = app_on_gsm0(&dir, &sim).await;
    // +CMS ERROR: 500 is temporary: retried until the 4 attempts run out.
    for _ in 0..4 {
        sim.fail_next("AT+CMGS", "+CMS ERROR: 500");
    }
    let id = EventId::new();
    app.send(id, "gsm0", "+380501234567", "Ваше замовлення готове")
        .await;
    let ev = app
        .wait_event("the failed part", |e| {
            part_status(e, id, 1, DeliveryState::Failed)
        })
        .await;
    let EventBody::DeliveryStatus { detail, .. } = &ev.body else {
        panic!()
    };
    assert_eq!(
        detail.as_deref(),
        Some("the modem or network failed without giving a reason (+CMS ERROR 500: unknown error)")
    );
    wait_state(&app.log, id, "failed").await;
    assert!(sim.sent().is_empty());
    app.stop().await;
}
