//! The demo: mgmt with its embedded broker and database, a
//! simulated branch appliance with two simulated GSM modems on real PTYs
//! and one simulated analog line on a line link, simulated customers who
//! text the branch and answer replies, and simulated callers on gsm0 and
//! fxo0 who reach the IVR — in one process, so one command shows the whole
//! loop.

use anyhow::{Context, Result};
use crossline_appliance::config::{
    FxoEntry, ModemEntry, MqttConfig, OfflineConfig, SyntheticConfig,
};
use crossline_core::NodeId;
use crossline_mgmt::config::Config;
use crossline_mgmt::server;
use crossline_mgmt::services::fleet::credentials::{hash_secret, new_secret};
use crossline_sim::{SimConfig, SimModem};
use crossline_store::DeviceRegistry;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

pub struct DemoOptions {
    pub data_dir: PathBuf,
    pub http: SocketAddr,
    pub mqtt: SocketAddr,
    /// HTTPS (development certificate).
    pub https: SocketAddr,
    /// MQTT over TLS: the demo appliance connects here, pinning the CA.
    pub mqtts: SocketAddr,
    /// A simulated customer texts the branch this often.
    pub pace: Duration,
    /// Extra synthetic events per second (load), 0 for none.
    pub synthetic_rate: f64,
}

/// The branch's two lines: label, own number.
const LINES: [(&str, &str); 2] = [("gsm0", "+380670000001"), ("gsm1", "+380670000002")];
/// The branch's analog line: label, own number (a Kyiv landline).
const ANALOG: (&str, &str) = ("fxo0", "+380442000001");

/// When the simulated callers ring: gsm0 15 s after the start and every
/// two minutes; fxo0 30 s after the start (so a short visit sees both),
/// then on the other minute (75 s, 195 s, ...).
const GSM_CALLS: crossline_sim::callers::Schedule = crossline_sim::callers::Schedule {
    first: Duration::from_secs(15),
    second: Duration::from_secs(135),
    every: Duration::from_secs(120),
};
const ANALOG_CALLS: crossline_sim::callers::Schedule = crossline_sim::callers::Schedule {
    first: Duration::from_secs(30),
    second: Duration::from_secs(75),
    every: Duration::from_secs(120),
};

pub async fn run(opts: DemoOptions, stop: CancellationToken) -> Result<()> {
    let mut cfg: Config = toml::from_str("")?;
    cfg.data_dir = opts.data_dir.clone();
    cfg.http.listen = opts.http;
    cfg.mqtt.listen = opts.mqtt;
    cfg.http.tls_listen = opts.https;
    cfg.mqtt.tls_listen = opts.mqtts;
    let running = server::start(cfg).await?;
    let logins = demo_desk(&running).await?;

    let (Some(mqtts), Some(https), Some(ca_file)) = (
        running.mqtts_addr,
        running.https_addr,
        running.ca_file.clone(),
    ) else {
        anyhow::bail!("the demo runs with TLS; remove `[tls] enabled = false`");
    };
    let fingerprint = crossline_tls::read_certs(&ca_file, "run the demo again")
        .ok()
        .and_then(|c| c.first().map(|c| crossline_tls::fingerprint_sha256(c)))
        .unwrap_or_default();
    let id = NodeId::new("demo-branch-1")?;
    let secret = new_secret();
    running
        .store
        .put_device(&id, &hash_secret(&secret)?)
        .await?;
    let branch_dir = opts.data_dir.join(id.as_str());
    crossline_store::files::create_private_dir(&branch_dir)
        .with_context(|| format!("creating {}", branch_dir.display()))?;

    // Two simulated modems, reachable through symlinks like /dev/ttyUSB2.
    let mut modems = Vec::new();
    let mut entries = Vec::new();
    for (i, (label, number)) in LINES.iter().enumerate() {
        let link = branch_dir.join(format!("tty{}", label.to_uppercase()));
        let sim = SimModem::spawn(SimConfig {
            link: Some(link.clone()),
            own_number: (*number).to_string(),
            imei: format!("86000000000000{i}"),
            ..SimConfig::default()
        })
        .await
        .with_context(|| format!("starting simulated modem {label}"))?;
        let mut entry = ModemEntry::new(*label, link.to_string_lossy());
        entry.number = Some((*number).to_string());
        if i == 0 {
            // gsm0 carries call audio too: its calls reach the IVR.
            entry.voice_port = sim.voice_link().map(|p| p.to_string_lossy().into_owned());
        }
        entries.push(entry);
        modems.push(sim);
    }

    // One simulated analog line: the exchange and its callers, served on a
    // Unix socket in the branch's directory that the appliance's FXO driver
    // connects to (a line link: docs/LINES.md). Ukrainian exchange: ring
    // cadence 1 s / 4 s, ETSI FSK caller ID after the first ring.
    let mut line_cfg = crossline_line::LineConfig {
        country: crossline_line::Country::Ua,
        ..crossline_line::LineConfig::default()
    };
    line_cfg.name = ANALOG.0.to_string();
    let socket = branch_dir.join(format!("{}.sock", ANALOG.0));
    // A socket left by an earlier run would refuse the bind.
    let _ = std::fs::remove_file(&socket);
    let (sim_line, _pins) = crossline_sim::line::SimLine::new(
        crossline_sim::line::SimLineConfig::matching(&line_cfg),
        tokio::time::Instant::now().into_std(),
    );
    let analog = sim_line
        .serve(&socket, Duration::from_millis(2))
        .with_context(|| {
            format!(
                "serving the simulated analog line on {} (a Unix socket's path holds at most 107 bytes: a shorter --data-dir helps)",
                socket.display()
            )
        })?;
    let mut fxo = FxoEntry::new(
        ANALOG.0,
        crossline_line::Port::Link {
            path: socket.clone(),
        },
    );
    fxo.number = Some(ANALOG.1.to_string());
    fxo.language = Some("uk".into());
    fxo.line = line_cfg;

    let mut app_cfg = crossline_appliance::Config::new(
        id.clone(),
        branch_dir.clone(),
        MqttConfig {
            url: format!("mqtts://127.0.0.1:{}", mqtts.port()),
            ca_file: Some(ca_file.clone()),
            secret: Some(secret),
            secret_file: None,
            keep_alive_s: 10,
        },
    );
    app_cfg.modems = entries;
    app_cfg.fxo = vec![fxo];
    // The demo IVR (menu, voicemail, callback, business hours): calls on
    // gsm0 are answered by it. Its prompts are spoken by espeak-ng
    // (scripts/ivr-prompts) when that is installed; without them the IVR
    // plays a short beep where a prompt would be.
    app_cfg.ivr = Some(
        serde_json::from_str(include_str!("../../../docs/ivr-demo.json"))
            .context("the demo IVR (docs/ivr-demo.json)")?,
    );
    let prompts = app_cfg.prompts_dir();
    if !prompts.exists()
        && let Some(ivr) = &app_cfg.ivr
    {
        // The appliance refuses an IVR whose prompt files are missing.
        let (dir, languages, ids) = (prompts.clone(), ivr.languages.clone(), ivr.prompts.clone());
        tokio::task::spawn_blocking(move || write_prompts(&dir, &languages, &ids))
            .await
            .context("writing the IVR's prompts")??;
    }
    app_cfg.offline = Some(OfflineConfig {
        after_s: 60,
        window_s: 3600,
        default_language: "uk".into(),
        texts: [
            (
                "uk",
                "Дякуємо! Ми отримали ваше повідомлення і відповімо, щойно відновиться зв'язок.",
            ),
            (
                "ru",
                "Спасибо! Мы получили ваше сообщение и ответим, как только восстановится связь.",
            ),
            (
                "ro",
                "Mulțumim! Am primit mesajul și vă răspundem imediat ce revine conexiunea.",
            ),
            (
                "en",
                "Thank you! We got your message and will answer as soon as we are back online.",
            ),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect(),
    });
    if opts.synthetic_rate > 0.0 {
        app_cfg.synthetic = Some(SyntheticConfig {
            rate: opts.synthetic_rate,
            total: 0,
            text_len: 0,
        });
    }
    let app_stop = CancellationToken::new();
    let mut tasks = tokio::task::JoinSet::new();
    tasks.spawn(crossline_appliance::run(app_cfg, app_stop.clone()));
    let customers_stop = app_stop.clone();
    let cust_modems = modems.clone();
    let pace = opts.pace;
    tasks.spawn(async move {
        crossline_sim::customers::run(
            cust_modems,
            crossline_sim::customers::demo_customers(),
            pace,
            Duration::from_secs(3),
            customers_stop,
        )
        .await;
        Ok(())
    });

    // Simulated customers call gsm0 and fxo0 now and then: menu, 2,
    // voicemail.
    let customers = crossline_sim::customers::demo_customers();
    let gsm_callers: Vec<String> = customers.iter().take(3).map(|c| c.number.clone()).collect();
    let analog_callers: Vec<String> = customers.iter().skip(3).map(|c| c.number.clone()).collect();
    let callers_stop = app_stop.clone();
    let gsm0 = modems[0].clone();
    tasks.spawn(async move {
        crossline_sim::callers::run(gsm0, gsm_callers, GSM_CALLS, callers_stop).await;
        Ok(())
    });
    let callers_stop = app_stop.clone();
    let analog_line = analog.clone();
    tasks.spawn(async move {
        crossline_sim::callers::run(analog_line, analog_callers, ANALOG_CALLS, callers_stop).await;
        Ok(())
    });

    let base = format!("http://{}", running.http_addr);
    let logins = logins
        .iter()
        .map(|(l, p, what)| format!("\n    {l:<8} password {p:<14} {what}"))
        .collect::<String>();
    let token = &running.api_token;
    println!(
        "\nCrossline demo is running.\
         \n\n  mgmt HTTP     {base}   (loopback only)\
         \n  mgmt HTTPS    https://{https}\
         \n  MQTT broker   mqtts://{mqtts} (TLS; the branch pins the CA)   mqtt://{mqtt} (loopback only)\
         \n  CA            {ca}\
         \n                SHA-256 {fingerprint}\
         \n                trust it: curl --cacert {ca} https://{https}/healthz\
         \n                (browsers: import it as an authority, or accept the warning)\
         \n  data          {data}\
         \n  API token     {token}\
         \n  branch        demo-branch-1 with two simulated modems: gsm0 {l0}, gsm1 {l1}; one simulated analog line: fxo0 {a0}\
         \n  customers     five simulated customers text the branch every {pace:?} and answer replies\
         \n  callers       every 2 minutes one of them calls gsm0, and on the other minute fxo0: the IVR answers, they press 2 and leave a voicemail\
         \n\nWeb UI: open {base}/ and log in as{logins}\
         \n\nTry (export T={token}):\
         \n  curl -s -H \"Authorization: Bearer $T\" {base}/api/v1/conversations\
         \n  curl -s -H \"Authorization: Bearer $T\" {base}/api/v1/conversations/<id>\
         \n  curl -s -H \"Authorization: Bearer $T\" -H 'Content-Type: application/json' \\\
         \n       -d '{{\"text\":\"Добрий день! Так, працюємо з 9 до 15.\"}}' {base}/api/v1/conversations/<id>/replies\
         \n  curl -sN -H \"Authorization: Bearer $T\" {base}/api/v1/stream        # live updates (SSE)\
         \n  curl -s {base}/api/v1/openapi.json                                  # the API description\
         \n  curl -s -H \"Authorization: Bearer $T\" {base}/api/v1/devices\
         \n  curl -s {base}/metrics | grep crossline_\
         \n\nCtrl-C stops it.\n",
        mqtt = running.mqtt_addr,
        ca = ca_file.display(),
        data = opts.data_dir.display(),
        l0 = LINES[0].1,
        l1 = LINES[1].1,
        a0 = ANALOG.1,
        pace = opts.pace,
    );
    let result = tokio::select! {
        _ = stop.cancelled() => Ok(()),
        r = tasks.join_next() => match r {
            Some(Ok(Err(e))) => Err(e),
            Some(Err(e)) => Err(anyhow::anyhow!("demo task failed: {e}")),
            _ => Ok(()),
        },
    };
    app_stop.cancel();
    while tasks.join_next().await.is_some() {}
    for m in modems {
        m.shutdown().await;
    }
    drop(analog);
    let _ = std::fs::remove_file(&socket);
    running.stop().await;
    result
}

/// Demo users: (login, password, what they do).
const DEMO_USERS: [(
    &str,
    &str,
    &str,
    crossline_mgmt::services::users::auth::Role,
    &str,
); 4] = [
    (
        "ana",
        "ana-demo-1",
        "Ana Kovalenko",
        crossline_mgmt::services::users::auth::Role::Agent,
        "north",
    ),
    (
        "ivan",
        "ivan-demo-1",
        "Ivan Rusu",
        crossline_mgmt::services::users::auth::Role::Agent,
        "south",
    ),
    (
        "sofia",
        "sofia-demo-1",
        "Sofia Petrenko",
        crossline_mgmt::services::users::auth::Role::Supervisor,
        "",
    ),
    (
        "admin",
        "admin-demo-1",
        "Admin",
        crossline_mgmt::services::users::auth::Role::Admin,
        "",
    ),
];

/// Sets up the desk for the demo (once per data dir): users, a routing
/// configuration (line gsm0 to queue north, gsm1 to south; ana serves
/// north, ivan south), both agents available, canned responses. Returns
/// the logins to print.
async fn demo_desk(running: &server::Running) -> Result<Vec<(String, String, String)>> {
    use crossline_core::routing::{
        AgentConfig, Command, EntryRule, Members, Presence, QueueConfig, RoutingConfig, RuleMatch,
        SlaConfig,
    };
    use crossline_mgmt::services::users::auth::{self, NewUser, Role};
    let store = &running.store;
    let mut out = Vec::new();
    for (login, password, name, role, team) in DEMO_USERS {
        let exists = auth::user_by_login(store, login).await?.is_some();
        if !exists {
            let hash = auth::hash_password(password)?;
            let u = NewUser {
                login: login.into(),
                name: name.into(),
                role,
                agent_id: None,
                sites: Vec::new(),
                teams: if team.is_empty() {
                    Vec::new()
                } else {
                    vec![team.into()]
                },
                locale: None,
                time_zone: Some("Europe/Kyiv".into()),
            };
            auth::insert_user(store, &u, &hash).await?;
        }
        let what = match role {
            Role::Agent => format!("agent, team {team}"),
            Role::Supervisor => "supervisor (queues, reports)".into(),
            Role::Admin => "admin (users, audit log)".into(),
        };
        out.push((login.to_string(), password.to_string(), what));
    }
    // Installed by an admin (or an earlier demo), not the default routing.
    let configured = running
        .routing
        .query(|r| r.is_some_and(|(_, i)| !i.default))
        .await
        .unwrap_or(true);
    if !configured {
        let agent = |id: &str, team: &str| {
            let mut a = AgentConfig::new(id);
            a.team = Some(team.into());
            a
        };
        let queue = |id: &str| {
            let mut q = QueueConfig::new(id);
            q.members = Members {
                teams: vec![id.into()],
                ..Default::default()
            };
            q.sla = SlaConfig {
                first_response_ms: Some(5 * 60_000),
                next_response_ms: Some(10 * 60_000),
                ..Default::default()
            };
            q
        };
        let mut cfg = RoutingConfig::new(
            vec![agent("ana", "north"), agent("ivan", "south")],
            vec![queue("north"), queue("south")],
        );
        cfg.rules = vec![
            EntryRule {
                when: RuleMatch {
                    line: Some(LINES[0].0.into()),
                    ..Default::default()
                },
                queue: "north".to_string().into(),
                priority: None,
            },
            EntryRule {
                when: RuleMatch {
                    line: Some(LINES[1].0.into()),
                    ..Default::default()
                },
                queue: "south".to_string().into(),
                priority: None,
            },
        ];
        cfg.default_queue = Some("north".to_string().into());
        running
            .routing
            .set_config(cfg, false)
            .await
            .context("configuring demo routing")?;
        for a in ["ana", "ivan"] {
            running
                .routing
                .command(Command::SetPresence {
                    agent: crossline_core::routing::AgentId::new(a),
                    presence: Presence::Available,
                })
                .await
                .context("setting demo agents available")?;
        }
        store
            .write(|tx| {
                for (title, text) in [
                    ("Hours", "We are open Monday to Friday, 9:00 to 18:00."),
                    (
                        "Thanks",
                        "Thank you for writing to us! Anything else we can help with?",
                    ),
                    (
                        "Години роботи",
                        "Ми працюємо з понеділка по п'ятницю, з 9:00 до 18:00.",
                    ),
                    ("Спасибо", "Спасибо за обращение! Чем ещё можем помочь?"),
                ] {
                    tx.execute(
                        "INSERT INTO canned_response (title, text) VALUES (?1, ?2)",
                        rusqlite::params![title, text],
                    )?;
                }
                Ok(())
            })
            .await?;
    }
    Ok(out)
}

/// Writes the IVR's prompts into `dir` with scripts/ivr-prompts (espeak-ng
/// and sox) when the demo runs from the source tree and they are there;
/// else (and says why) a short beep per prompt, so the IVR still runs.
fn write_prompts(dir: &std::path::Path, languages: &[String], ids: &[String]) -> Result<()> {
    let script = std::path::Path::new("scripts/ivr-prompts");
    let why = if script.exists() {
        match std::process::Command::new("bash")
            .arg(script)
            .arg(dir)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
        {
            Ok(s) if s.success() => return Ok(()),
            Ok(s) => format!(
                "scripts/ivr-prompts failed ({s}; scripts/setup installs espeak-ng and sox)"
            ),
            Err(e) => format!("cannot run scripts/ivr-prompts: {e}"),
        }
    } else {
        "no scripts/ivr-prompts here (run the demo from the source tree)".to_string()
    };
    eprintln!("demo: {why}; the IVR's prompts are beeps instead of speech");
    crossline_sim::callers::beep_prompts(dir, languages, ids)
        .with_context(|| format!("writing beep prompts into {}", dir.display()))
}
