//! `crossline-sim`: run simulated hardware by hand.
//!
//! `crossline-sim modem --link ./ttyMODEM` serves a simulated modem on a PTY
//! and reads simple commands from stdin (`help` lists them). It runs until
//! `quit`, SIGINT or SIGTERM: a closed stdin (a script, a service) only
//! stops the commands, not the modem. `crossline-sim line --socket
//! ./fxo0.sock` serves a simulated analog line the same way (docs/LINES.md,
//! "The line link").

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use crossline_sim::{DialOutcome, Profile, Registration, SimConfig, SimModem};
use tokio::io::{AsyncBufReadExt, BufReader};

#[derive(Parser)]
#[command(
    name = "crossline-sim",
    version,
    about = "Simulated hardware for Crossline tests and demos"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a simulated GSM modem on a pseudo-terminal.
    Modem {
        /// Symlink to create for the PTY slave (open this path as the serial device).
        #[arg(long, default_value = "./ttyMODEM")]
        link: PathBuf,
        /// quectel-ec25, sim7600, sim800 or huawei-e173.
        #[arg(long, default_value = "quectel-ec25")]
        profile: Profile,
        /// Lock the SIM with this PIN.
        #[arg(long)]
        pin: Option<String>,
        /// Print every AT command the driver sends.
        #[arg(long)]
        show_commands: bool,
    },
    /// Serve a simulated analog (FXO) line on a Unix socket (the line link).
    Line {
        /// The socket to serve (the line's `port = { kind = "link", path = ... }`).
        #[arg(long, default_value = "./fxo0.sock")]
        socket: PathBuf,
        /// Ring cadence and tones: us, uk, eu, ru, ua, ro.
        #[arg(long, default_value = "eu")]
        country: String,
        /// How the exchange signals answer and hang-up: loop_current,
        /// polarity_reversal or tone_only.
        #[arg(long, default_value = "loop_current")]
        supervision: String,
    },
}

const HELP: &str = "\
commands:
  sms <from> <text...>     an SMS arrives (e.g. sms +380501234567 Привіт)
  pdu <hex>                a raw PDU arrives (with SMSC block)
  call <from>              an incoming call rings
  hangup                   the other party hangs up
  answer                   the callee answers an outgoing call (dial manual)
  dtmf <digits>            the other party presses keys during a call (the modem's URCs)
  keys <digits>            the caller presses keys in the call audio (in-band DTMF)
  say <hz> [ms]            the caller says a tone (-10 dBm0, default 1000 ms) in the call audio
  heard                    what the caller heard so far (samples, strongest frequency)
  dial answer|busy|noanswer|nocarrier|manual   outcome of later ATD calls
  ussd <text>              the network's answer to USSD requests
  reg home|roaming|searching|denied|none       network registration
  signal <0-31|99>         signal strength
  delay <ms>               delay every response
  fail <AT prefix> <final line>   next matching command fails
  hang <AT prefix>         next matching command gets no answer
  garbage <text>           write raw text to the line
  urc <line>               send an unsolicited line
  unplug | replug          pull / reinsert the modem
  replug-voice             the voice port alone re-enumerates
  sent | stored | calls | commands   show what happened
  quit";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let cli = Cli::parse();
    match cli.command {
        Command::Modem {
            link,
            profile,
            pin,
            show_commands,
        } => run_modem(link, profile, pin, show_commands).await,
        Command::Line {
            socket,
            country,
            supervision,
        } => run_line(socket, &country, &supervision).await,
    }
}

async fn run_modem(
    link: PathBuf,
    profile: Profile,
    pin: Option<String>,
    show_commands: bool,
) -> anyhow::Result<()> {
    let modem = SimModem::spawn(SimConfig {
        profile,
        link: Some(link.clone()),
        pin,
        ..SimConfig::default()
    })
    .await
    .with_context(|| format!("starting the simulated modem at {}", link.display()))?;
    println!(
        "simulated {profile} modem at {} (type `help`)",
        modem.link().display()
    );
    match modem.voice_link() {
        Some(v) => println!(
            "call audio (PCM 8 kHz s16le, 320-byte frames) at {}",
            v.display()
        ),
        None => println!("no voice port ({profile} has analog audio only)"),
    }
    if show_commands {
        let m = modem.clone();
        tokio::spawn(async move {
            let mut seen = 0;
            loop {
                let r = m
                    .wait_until("a command", Duration::from_secs(3600), |m| {
                        m.commands().len() > seen
                    })
                    .await;
                if matches!(r, Err(crossline_sim::Error::Stopped)) {
                    return;
                }
                let cmds = m.commands();
                for c in cmds.get(seen..).unwrap_or_default() {
                    println!("<< {c}");
                }
                seen = cmds.len();
            }
        });
    }
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("installing the SIGTERM handler")?;
    let mut stdin_open = true;
    loop {
        let line = tokio::select! {
            l = lines.next_line(), if stdin_open => l.context("reading stdin")?,
            _ = tokio::signal::ctrl_c() => break,
            _ = term.recv() => break,
        };
        let Some(line) = line else {
            // No more commands; the modem keeps serving until a signal.
            stdin_open = false;
            continue;
        };
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        if line == "quit" || line == "exit" {
            break;
        }
        if let Err(e) = execute(&modem, line).await {
            println!("error: {e:#}");
        }
    }
    modem.shutdown().await;
    Ok(())
}

async fn execute(modem: &SimModem, line: &str) -> anyhow::Result<()> {
    let (word, rest) = line.split_once(' ').unwrap_or((line, ""));
    let rest = rest.trim();
    match word {
        "help" | "?" => println!("{HELP}"),
        "sms" => {
            let (from, text) = rest
                .split_once(' ')
                .context("usage: sms <from> <text...>")?;
            let n = modem.inject_sms(from, text)?;
            println!("delivered in {n} part(s)");
        }
        "pdu" => modem.inject_pdu(rest)?,
        "call" => modem.inject_call(rest),
        "hangup" => modem.remote_hangup(),
        "answer" => modem.remote_answer(),
        "dtmf" => modem.remote_dtmf(rest),
        "keys" => modem.far_end_play(crossline_audio::dtmf::generate(rest, 100, 100, -10.0)),
        "say" => {
            let mut args = rest.split_whitespace();
            let hz: f64 = args
                .next()
                .and_then(|a| a.parse().ok())
                .context("usage: say <hz> [ms]")?;
            let ms: usize = match args.next() {
                Some(a) => a.parse().context("usage: say <hz> [ms]")?,
                None => 1000,
            };
            let samples = ms.min(600_000).saturating_mul(8);
            modem.far_end_play(crossline_audio::tones::mix(&[(hz, -10.0)], samples));
        }
        "heard" => {
            let heard = modem.far_end_heard();
            let peak = crossline_audio::goertzel::peak_frequency(&heard, 200.0, 3400.0);
            match peak {
                Some((hz, dbm0)) => println!(
                    "{} samples ({} ms); strongest {hz:.0} Hz at {dbm0:.1} dBm0",
                    heard.len(),
                    heard.len() / 8
                ),
                None => println!("nothing heard"),
            }
        }
        "replug-voice" => modem.replug_voice().await?,
        "dial" => modem.set_dial_outcome(match rest {
            "answer" => DialOutcome::Answer,
            "busy" => DialOutcome::Busy,
            "noanswer" => DialOutcome::NoAnswer,
            "nocarrier" => DialOutcome::NoCarrier,
            "manual" => DialOutcome::Manual,
            _ => anyhow::bail!("usage: dial answer|busy|noanswer|nocarrier|manual"),
        }),
        "ussd" => modem.set_ussd_reply(rest),
        "reg" => modem.set_registration(match rest {
            "home" => Registration::Home,
            "roaming" => Registration::Roaming,
            "searching" => Registration::Searching,
            "denied" => Registration::Denied,
            "none" => Registration::NotRegistered,
            _ => anyhow::bail!("usage: reg home|roaming|searching|denied|none"),
        }),
        "signal" => modem.set_signal(rest.parse().context("usage: signal <0-31|99>")?),
        "delay" => modem.set_delay(Duration::from_millis(
            rest.parse().context("usage: delay <ms>")?,
        )),
        "fail" => {
            let (prefix, fin) = rest
                .split_once(' ')
                .context("usage: fail <AT prefix> <final line>")?;
            modem.fail_next(prefix, fin);
        }
        "hang" => modem.hang_next(rest),
        "garbage" => modem.inject_garbage(rest.as_bytes()),
        "urc" => modem.inject_urc(rest),
        "unplug" => modem.unplug().await?,
        "replug" => modem.replug().await?,
        "sent" => {
            for m in modem.sent() {
                let state = if m.complete { "" } else { " (incomplete)" };
                println!("to {}{state}: {}", m.to, m.text);
            }
        }
        "stored" => {
            for s in modem.stored() {
                println!("{} {} {:?} {}", s.mem, s.index, s.status, s.pdu);
            }
        }
        "calls" => {
            for c in modem.calls() {
                println!("{c:?}");
            }
        }
        "commands" => {
            for c in modem.commands() {
                println!("{c}");
            }
        }
        other => anyhow::bail!("unknown command {other:?}; type `help`"),
    }
    Ok(())
}

const LINE_HELP: &str = "\
commands:
  call <number> [giveup ms]  the line rings with this caller ID
  giveup                   the caller stops ringing
  hangup                   the far end hangs up
  answer                   the far end answers the driver's outgoing call
  keys <digits>            the far end presses keys (DTMF into the line)
  say <hz> [ms]            the far end plays a tone
  heard                    what the far end heard (strongest frequency)
  dialled                  the digits the driver dialled
  log                      what happened on the line
  quit";

async fn run_line(socket: PathBuf, country: &str, supervision: &str) -> anyhow::Result<()> {
    use crossline_line::{LineConfig, Supervision};
    use crossline_sim::line::{SimLine, SimLineConfig};
    use std::os::unix::fs::FileTypeExt;
    let config = LineConfig {
        country: country.parse().map_err(|e| anyhow::anyhow!("{e}"))?,
        supervision: match supervision {
            "loop_current" => Supervision::LoopCurrent,
            "polarity_reversal" => Supervision::PolarityReversal,
            "tone_only" => Supervision::ToneOnly,
            other => anyhow::bail!(
                "unknown supervision {other:?}: loop_current, polarity_reversal or tone_only"
            ),
        },
        ..LineConfig::default()
    };
    // A socket left by an earlier run is in the way of bind: remove it (only a socket).
    if std::fs::symlink_metadata(&socket).is_ok_and(|m| m.file_type().is_socket()) {
        std::fs::remove_file(&socket)
            .with_context(|| format!("removing the stale socket {}", socket.display()))?;
    }
    let (line, _pins) = SimLine::new(
        SimLineConfig::matching(&config),
        tokio::time::Instant::now().into_std(),
    );
    let line = line
        .serve(&socket, Duration::from_millis(2))
        .with_context(|| format!("serving the simulated line at {}", socket.display()))?;
    println!(
        "simulated {country} analog line at {} (type `help`)",
        socket.display()
    );
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("installing the SIGTERM handler")?;
    let mut stdin_open = true;
    loop {
        let input = tokio::select! {
            l = lines.next_line(), if stdin_open => l.context("reading stdin")?,
            _ = tokio::signal::ctrl_c() => break,
            _ = term.recv() => break,
        };
        let Some(input) = input else {
            stdin_open = false;
            continue;
        };
        let input = input.trim();
        if input.is_empty() {
            continue;
        }
        if input == "quit" || input == "exit" {
            break;
        }
        if let Err(e) = execute_line(&line, input) {
            println!("error: {e:#}");
        }
    }
    let _ = std::fs::remove_file(&socket);
    Ok(())
}

fn execute_line(line: &crossline_sim::line::SharedSimLine, input: &str) -> anyhow::Result<()> {
    use crossline_sim::line::IncomingCall;
    let (word, rest) = input.split_once(' ').unwrap_or((input, ""));
    let rest = rest.trim();
    match word {
        "help" | "?" => println!("{LINE_HELP}"),
        "call" => {
            let mut args = rest.split_whitespace();
            let number = args.next().context("usage: call <number> [giveup ms]")?;
            let give_up_after = match args.next() {
                Some(ms) => Some(Duration::from_millis(
                    ms.parse().context("usage: call <number> [giveup ms]")?,
                )),
                None => None,
            };
            let call = IncomingCall {
                give_up_after,
                ..IncomingCall::from_number(number)
            };
            line.with(|l, now| l.place_call(now, call));
        }
        "giveup" => line.with(|l, now| l.give_up(now)),
        "hangup" => line.with(|l, now| l.far_end_hang_up(now)),
        "answer" => line.with(|l, now| l.far_end_answer(now, Vec::new())),
        "keys" => {
            let audio = crossline_audio::dtmf::generate(rest, 100, 100, -10.0);
            line.with(|l, _| l.far_end_play(audio));
        }
        "say" => {
            let mut args = rest.split_whitespace();
            let hz: f64 = args
                .next()
                .and_then(|a| a.parse().ok())
                .context("usage: say <hz> [ms]")?;
            let ms: usize = match args.next() {
                Some(a) => a.parse().context("usage: say <hz> [ms]")?,
                None => 1000,
            };
            let samples = ms.min(600_000).saturating_mul(8);
            let audio = crossline_audio::tones::mix(&[(hz, -10.0)], samples);
            line.with(|l, _| l.far_end_play(audio));
        }
        "heard" => {
            let heard = line.with(|l, _| l.heard().to_vec());
            match crossline_audio::goertzel::peak_frequency(&heard, 200.0, 3400.0) {
                Some((hz, dbm0)) => println!(
                    "{} samples ({} ms); strongest {hz:.0} Hz at {dbm0:.1} dBm0",
                    heard.len(),
                    heard.len() / 8
                ),
                None => println!("nothing heard"),
            }
        }
        "dialled" => println!("{}", line.with(|l, _| l.dialled().to_owned())),
        "log" => {
            for (at, event) in line.with(|l, _| l.log().to_vec()) {
                println!("{:>8} ms  {event:?}", at.as_millis());
            }
        }
        other => anyhow::bail!("unknown command {other:?} (type `help`)"),
    }
    Ok(())
}
