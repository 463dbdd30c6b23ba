//! crossline-mgmt: command line entry point.

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use crossline_core::NodeId;
use crossline_daemon::{init_tracing, wait_for_signal};
use crossline_mgmt::config::{Config, Secret};
use crossline_mgmt::server;
use crossline_mgmt::services::fleet::credentials::{hash_secret, new_secret};
use crossline_mgmt::services::users::audit;
use crossline_mgmt::services::users::auth::{self, Actor, NewUser, Role};
use crossline_store::DeviceRegistry;
use std::net::SocketAddr;
use std::path::PathBuf;
use tokio_util::sync::CancellationToken;

#[derive(Parser)]
#[command(
    name = "crossline-mgmt",
    version,
    about = "Crossline management server"
)]
struct Cli {
    /// Configuration file (TOML).
    #[arg(long, short, global = true, env = "CROSSLINE_CONFIG")]
    config: Option<PathBuf>,
    /// Override data_dir.
    #[arg(long, global = true, env = "CROSSLINE_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Override node_id (this mgmt instance's node id).
    #[arg(long, global = true, env = "CROSSLINE_NODE_ID")]
    node_id: Option<NodeId>,
    /// Log as JSON lines.
    #[arg(long, global = true, env = "CROSSLINE_LOG_JSON")]
    log_json: bool,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the server.
    Run {
        /// Override http.listen.
        #[arg(long, env = "CROSSLINE_HTTP_LISTEN")]
        http: Option<SocketAddr>,
        /// Override http.tls_listen (HTTPS).
        #[arg(long, env = "CROSSLINE_HTTPS_LISTEN")]
        https: Option<SocketAddr>,
        /// Override mqtt.listen (the embedded broker's plain listener).
        #[arg(long, env = "CROSSLINE_MQTT_LISTEN")]
        mqtt_listen: Option<SocketAddr>,
        /// Override mqtt.tls_listen (the embedded broker's TLS listener).
        #[arg(long, env = "CROSSLINE_MQTTS_LISTEN")]
        mqtts_listen: Option<SocketAddr>,
        /// Use this external broker instead of the embedded one.
        #[arg(long, env = "CROSSLINE_MQTT_URL")]
        mqtt_url: Option<String>,
    },
    /// Manage device credentials.
    #[command(subcommand)]
    Device(DeviceCmd),
    /// External broker helpers.
    #[command(subcommand)]
    Broker(BrokerCmd),
    /// Appliance enrollment: the bootstrap token and the queue of pending
    /// appliances (see docs/FLEET.md).
    #[command(subcommand)]
    Enroll(EnrollCmd),
    /// Manage web UI users (agents, supervisors, admins).
    #[command(subcommand)]
    User(UserCmd),
    /// TLS: mgmt's CA (what appliances pin).
    #[command(subcommand)]
    Tls(TlsCmd),
    /// Drop every projection (conversations, contacts, timelines, notes,
    /// tags, merges, routing configs, ...) and build it again from the
    /// event log alone. Stop mgmt first (see docs/ARCHITECTURE.md, "Rebuilding the projections").
    Rebuild,
}

#[derive(Subcommand)]
enum TlsCmd {
    /// Print the CA certificate (PEM) appliances pin on standard output and
    /// its SHA-256 fingerprint on standard error (generates the development
    /// CA if there is none yet).
    Ca {
        /// Print only the fingerprint, on standard output.
        #[arg(long)]
        fingerprint: bool,
    },
}

#[derive(Subcommand)]
enum EnrollCmd {
    /// Print the bootstrap token appliances enroll with (created if missing).
    Token,
    /// List enrollments (pending first).
    List {
        /// Only this state: pending, approved or rejected.
        #[arg(long)]
        state: Option<String>,
    },
    /// Approve a pending appliance: it gets its own device id and secret.
    Approve {
        /// The enrollment id (from `enroll list`).
        id: String,
        /// Device id to assign.
        #[arg(long)]
        device: String,
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        site: Option<String>,
        #[arg(long)]
        group: Option<String>,
        /// A tag (repeat for several).
        #[arg(long = "tag")]
        tags: Vec<String>,
    },
    /// Reject a pending appliance.
    Reject { id: String },
}

#[derive(Subcommand)]
enum UserCmd {
    /// Add a user. The password is read from standard input (one line) with
    /// --password-stdin; otherwise one is generated and printed once.
    Add {
        login: String,
        /// agent, supervisor or admin.
        #[arg(long, default_value = "agent")]
        role: Role,
        /// Display name (default: the login).
        #[arg(long)]
        name: Option<String>,
        /// Routing agent id this user works as (default: the login).
        #[arg(long)]
        agent: Option<String>,
        /// Sites the user may see (comma-separated; none: all).
        #[arg(long, value_delimiter = ',')]
        sites: Vec<String>,
        /// Teams the user may see (comma-separated; none: all).
        #[arg(long, value_delimiter = ',')]
        teams: Vec<String>,
        /// UI language: en, ru, uk, ro (default: the browser's).
        #[arg(long)]
        locale: Option<String>,
        /// IANA time zone for dates, e.g. Europe/Kyiv (default UTC).
        #[arg(long)]
        time_zone: Option<String>,
        #[arg(long)]
        password_stdin: bool,
    },
    /// Set a user's password (ends their sessions).
    Passwd {
        login: String,
        #[arg(long)]
        password_stdin: bool,
    },
    /// List users.
    List,
}

#[derive(Subcommand)]
enum DeviceCmd {
    /// Register a device (or re-key it) and print its new secret once.
    Add { id: NodeId },
    /// Revoke a device: its credential is refused from now on.
    Revoke { id: NodeId },
    /// List devices.
    List,
}

#[derive(Subcommand)]
enum BrokerCmd {
    /// Write mosquitto.conf, password and ACL files equivalent to the embedded broker.
    MosquittoConfig {
        #[arg(long)]
        out: PathBuf,
        /// The plain listener's port (on 127.0.0.1).
        #[arg(long, default_value_t = 1883)]
        port: u16,
        /// The MQTT-over-TLS listener's port (all interfaces), serving mgmt's
        /// certificate ([tls]); 0 for none.
        #[arg(long, default_value_t = 8883)]
        tls_port: u16,
    },
}

#[tokio::main]
async fn main() -> Result<()> {
    let cli = Cli::parse();
    init_tracing(cli.log_json);
    let mut cfg = Config::load(cli.config.as_deref())?;
    if let Some(d) = cli.data_dir {
        cfg.data_dir = d;
    }
    if let Some(n) = cli.node_id {
        cfg.node_id = n;
    }
    match cli.cmd {
        Cmd::Run {
            http,
            https,
            mqtt_listen,
            mqtts_listen,
            mqtt_url,
        } => {
            if let Some(h) = http {
                cfg.http.listen = h;
            }
            if let Some(h) = https {
                cfg.http.tls_listen = h;
            }
            if let Some(m) = mqtt_listen {
                cfg.mqtt.listen = m;
            }
            if let Some(m) = mqtts_listen {
                cfg.mqtt.tls_listen = m;
            }
            if mqtt_url.is_some() {
                cfg.mqtt.url = mqtt_url;
            }
            let running = server::start(cfg).await?;
            // Caught from here on: a SIGTERM right after "ready" is a graceful stop.
            let signal = wait_for_signal();
            // One line on stdout that scripts and tests can wait for.
            let opt =
                |a: Option<SocketAddr>| a.map(|a| a.to_string()).unwrap_or_else(|| "-".into());
            println!(
                "crossline-mgmt ready http={} mqtt={} https={} mqtts={}",
                running.http_addr,
                running.mqtt_addr,
                opt(running.https_addr),
                opt(running.mqtts_addr)
            );
            let stop = CancellationToken::new();
            let s = stop.clone();
            tokio::spawn(async move {
                signal.await;
                s.cancel();
            });
            running.serve_until(stop).await
        }
        Cmd::Device(d) => {
            let store = server::open_store(&cfg)?;
            match d {
                DeviceCmd::Add { id } => {
                    crossline_mgmt::services::fleet::check_device_id(
                        id.as_str(),
                        &cfg.mqtt.username,
                        &cfg.node_id,
                    )?;
                    let secret = new_secret();
                    store.put_device(&id, &hash_secret(&secret)?).await?;
                    audit::record(
                        &store,
                        Actor::Cli.name(),
                        "fleet.device.add",
                        id.as_str(),
                        "",
                    )
                    .await;
                    println!("{secret}");
                    eprintln!(
                        "device {id} registered; put the secret above in its mqtt.secret_file (shown only once)"
                    );
                }
                DeviceCmd::Revoke { id } => {
                    if store.revoke_device(&id).await? {
                        audit::record(
                            &store,
                            Actor::Cli.name(),
                            "fleet.device.revoke",
                            id.as_str(),
                            "",
                        )
                        .await;
                        eprintln!("device {id} revoked");
                    } else {
                        anyhow::bail!("no device {id}");
                    }
                }
                DeviceCmd::List => {
                    let devices = store.devices().await?;
                    if devices.is_empty() {
                        eprintln!(
                            "no devices yet; register one with `crossline-mgmt device add ID`"
                        );
                    } else {
                        println!("DEVICE\tSTATUS\tLAST SEEN (UTC)");
                    }
                    for d in devices {
                        println!(
                            "{}\t{}\t{}",
                            d.id,
                            crossline_mgmt::services::fleet::status_code(d.revoked, d.online),
                            d.last_seen_ms
                                .map(utc_time)
                                .unwrap_or_else(|| "never".into())
                        );
                    }
                }
            }
            store.close()?;
            Ok(())
        }
        Cmd::Enroll(e) => {
            if let EnrollCmd::Token = e {
                println!("{}", cfg.secret(Secret::Bootstrap)?);
                return Ok(());
            }
            let store = server::open_store(&cfg)?;
            match e {
                EnrollCmd::Token => {}
                EnrollCmd::List { state } => {
                    let state_filter = state.clone();
                    let list = crossline_mgmt::services::fleet::repo::FleetRepo::enrollments(
                        &store, state,
                    )
                    .await?;
                    if list.is_empty() {
                        eprintln!(
                            "no enrollments{}; an appliance enrolls with the bootstrap token (`crossline-mgmt enroll token`) in its [enroll] section (docs/FLEET.md)",
                            state_filter
                                .as_deref()
                                .map(|s| format!(" in state {s}"))
                                .unwrap_or_default()
                        );
                    } else {
                        println!("ID\tSTATE\tDEVICE\tIDENTITY");
                    }
                    for en in list {
                        println!(
                            "{}\t{}\t{}\tserial={}\tmacs={}\timeis={}\thost={}",
                            en.id,
                            en.state,
                            en.device.as_deref().unwrap_or("-"),
                            en.serial.as_deref().unwrap_or("-"),
                            en.macs.join(","),
                            en.imeis.join(","),
                            en.hostname.as_deref().unwrap_or("-"),
                        );
                    }
                }
                EnrollCmd::Approve {
                    id,
                    device,
                    name,
                    site,
                    group,
                    tags,
                } => {
                    crossline_mgmt::services::fleet::approve_in(
                        &store,
                        &Actor::Cli,
                        &id,
                        crossline_mgmt::services::fleet::db::Approval {
                            device: device.clone(),
                            name,
                            site,
                            group,
                            tags,
                        },
                        &cfg.mqtt.username,
                    )
                    .await?;
                    eprintln!(
                        "enrollment {id} approved as device {device}; the running mgmt hands the appliance its credential"
                    );
                }
                EnrollCmd::Reject { id } => {
                    crossline_mgmt::services::fleet::reject_in(&store, &Actor::Cli, &id).await?;
                    eprintln!("enrollment {id} rejected");
                }
            }
            store.close()?;
            Ok(())
        }
        Cmd::Tls(TlsCmd::Ca { fingerprint }) => {
            crossline_store::files::create_private_dir(&cfg.data_dir)
                .with_context(|| format!("creating data dir {}", cfg.data_dir.display()))?;
            let id = cfg.tls.identity(&cfg.data_dir)?;
            let fp = crossline_tls::fingerprint_sha256(id.ca());
            if fingerprint {
                println!("{fp}");
            } else {
                let pem = std::fs::read_to_string(&id.ca_file)
                    .with_context(|| format!("reading {}", id.ca_file.display()))?;
                print!("{pem}");
                eprintln!("CA file: {}", id.ca_file.display());
                eprintln!("SHA-256 fingerprint: {fp}");
                eprintln!(
                    "install it on appliances as [mqtt] ca_file with url = \"{}\" (docs/FLEET.md, \"TLS\")",
                    appliance_mqtt_url(&cfg)
                );
            }
            Ok(())
        }
        Cmd::Rebuild => {
            let store = server::open_store(&cfg)?;
            let started = std::time::Instant::now();
            let r = crossline_mgmt::storage::sqlite::rebuild::rebuild(&store).await;
            store.close()?;
            let n = r.with_context(|| {
                format!(
                    "rebuilding the projections of {} from its log (nothing was changed)",
                    cfg.db_path().display()
                )
            })?;
            eprintln!(
                "rebuilt every projection of {} from {n} events in {:.1} s",
                cfg.db_path().display(),
                started.elapsed().as_secs_f64()
            );
            Ok(())
        }
        Cmd::User(u) => {
            let store = server::open_store(&cfg)?;
            let r = user_cmd(&store, u).await;
            store.close()?;
            r
        }
        Cmd::Broker(BrokerCmd::MosquittoConfig {
            out,
            port,
            tls_port,
        }) => {
            let store = server::open_store(&cfg)?;
            let mgmt_secret = cfg.secret(Secret::Mgmt)?;
            let devices: Vec<(String, String)> = store
                .devices()
                .await?
                .into_iter()
                .filter(|d| !d.revoked)
                .map(|d| (d.id.to_string(), d.secret_hash))
                .collect();
            std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
            let mut users = devices;
            let service_users = cfg.mqtt.service_users();
            let service_hash = hash_secret(&mgmt_secret)?;
            for u in &service_users {
                users.push((u.clone(), service_hash.clone()));
            }
            let service_names: Vec<&str> = service_users.iter().map(String::as_str).collect();
            let files = crossline_broker::mosquitto_conf::render_hashed(
                &out,
                port,
                &users,
                &service_names,
            )?;
            let mut owned = vec![
                out.clone(),
                files.conf.clone(),
                files.password_file.clone(),
                files.acl_file.clone(),
            ];
            if cfg.tls.enabled && tls_port != 0 {
                let id = cfg.tls.identity(&cfg.data_dir)?;
                let t = crossline_broker::mosquitto_conf::add_tls_listener(
                    &files,
                    tls_port,
                    &id.cert_file,
                    &id.key_file,
                    &id.ca_file,
                )?;
                owned.extend([t.cert, t.key, t.ca]);
                eprintln!(
                    "MQTT over TLS on port {tls_port} with mgmt's certificate; appliances: url = \"mqtts://<this host>:{tls_port}\", ca_file = mgmt's CA (`crossline-mgmt tls ca`)"
                );
            }
            hand_over_to_mosquitto(&out, &owned)?;
            eprintln!("wrote {}", files.conf.display());
            eprintln!(
                "run: mosquitto -c {}; then start mgmt with --mqtt-url mqtt://127.0.0.1:{port} (re-run this after device add/revoke and send mosquitto SIGHUP)",
                files.conf.display()
            );
            store.close()?;
            Ok(())
        }
    }
}

/// Where appliances connect, as this configuration says: the external
/// broker's URL, or the embedded broker's TLS listener on this host.
fn appliance_mqtt_url(cfg: &Config) -> String {
    match &cfg.mqtt.url {
        Some(url) => url.clone(),
        None => format!("mqtts://<this host>:{}", cfg.mqtt.tls_listen.port()),
    }
}

/// Milliseconds since the epoch as an RFC 3339 UTC time (to the second).
fn utc_time(ms: u64) -> String {
    jiff::Timestamp::from_millisecond(ms as i64)
        .map(|t| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_else(|_| ms.to_string())
}

/// Started as root, Debian's mosquitto drops to the `mosquitto` user before it
/// reads the password and ACL files (mode 0600): give them to that user, as
/// an installation would. Not root, or no such user: nothing to do.
fn hand_over_to_mosquitto(dir: &std::path::Path, files: &[PathBuf]) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    if std::fs::metadata(dir)?.uid() != 0 {
        return Ok(());
    }
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    let Some((uid, gid)) = passwd.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.first() == Some(&"mosquitto"))
            .then(|| Some((f.get(2)?.parse().ok()?, f.get(3)?.parse().ok()?)))?
    }) else {
        return Ok(());
    };
    for p in files {
        std::os::unix::fs::chown(p, Some(uid), Some(gid))
            .with_context(|| format!("giving {} to the mosquitto user", p.display()))?;
    }
    Ok(())
}

/// The new password: one line of standard input, or a generated one
/// (printed once).
fn read_or_generate_password(from_stdin: bool) -> Result<String> {
    if from_stdin {
        let mut line = String::new();
        std::io::stdin()
            .read_line(&mut line)
            .context("reading the password from standard input")?;
        let pw = line.trim_end_matches(['\r', '\n']).to_string();
        if pw.chars().count() < 8 {
            anyhow::bail!("the password must have at least 8 characters");
        }
        Ok(pw)
    } else {
        let pw = new_secret().chars().take(16).collect::<String>();
        println!("{pw}");
        eprintln!("generated password printed above (shown only once)");
        Ok(pw)
    }
}

async fn user_cmd(store: &crossline_store::SqliteStore, cmd: UserCmd) -> Result<()> {
    match cmd {
        UserCmd::Add {
            login,
            role,
            name,
            agent,
            sites,
            teams,
            locale,
            time_zone,
            password_stdin,
        } => {
            let login = auth::normalize_login(&login);
            if !auth::valid_login(&login) {
                anyhow::bail!(
                    "login {login:?} must be 1 to 64 letters, digits, '.', '_', '-' or '@'"
                );
            }
            if let Some(tz) = &time_zone {
                jiff::tz::TimeZone::get(tz).with_context(|| {
                    format!("unknown time zone {tz:?} (use an IANA name like Europe/Kyiv)")
                })?;
            }
            if let Some(l) = &locale
                && crossline_mgmt::http::i18n::Locale::parse(l).is_none()
            {
                anyhow::bail!("locale {l:?} is not one of en, ru, uk, ro");
            }
            let password = read_or_generate_password(password_stdin)?;
            let hash = auth::hash_password(&password)?;
            let u = NewUser {
                name: name.unwrap_or_else(|| login.clone()),
                login: login.clone(),
                role,
                agent_id: agent,
                sites,
                teams,
                locale,
                time_zone,
            };
            auth::insert_user(store, &u, &hash).await.with_context(|| {
                format!("adding user {login} (is the login taken? see `crossline-mgmt user list`)")
            })?;
            audit::record(store, Actor::Cli.name(), "user.add", &login, role.as_str()).await;
            eprintln!("user {login} added as {}", role.as_str());
        }
        UserCmd::Passwd {
            login,
            password_stdin,
        } => {
            let login = auth::normalize_login(&login);
            let password = read_or_generate_password(password_stdin)?;
            let hash = auth::hash_password(&password)?;
            if !auth::set_password(store, &login, &hash).await? {
                anyhow::bail!("no user {login}; see `crossline-mgmt user list`");
            }
            audit::record(store, Actor::Cli.name(), "user.passwd", &login, "").await;
            eprintln!("password of {login} changed; their sessions ended");
        }
        UserCmd::List => {
            for u in auth::list_users(store).await? {
                println!(
                    "{}\t{}\t{}\tagent={}\tsites={}\tteams={}{}",
                    u.login,
                    u.role.as_str(),
                    u.name,
                    u.agent_id,
                    if u.sites.is_empty() {
                        "all".into()
                    } else {
                        u.sites.join(",")
                    },
                    if u.teams.is_empty() {
                        "all".into()
                    } else {
                        u.teams.join(",")
                    },
                    if u.disabled { "\tdisabled" } else { "" }
                );
            }
        }
    }
    Ok(())
}
