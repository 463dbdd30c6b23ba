//! README.md, "Running it for real", followed as a new user would: the
//! commands of its code block are read from the README and run as written
//! (only the paths move into a temporary directory and mgmt's listeners onto
//! free loopback ports), the appliance's configuration is the example TOML
//! with the edits the README lists, the modem is `crossline-sim modem` on a
//! PTY, and the agent answers the customer's SMS from her desk over HTTPS,
//! with the form posts the desk's pages send.
//!
//! Also the command line's answers for people (`device list`, `enroll
//! list`, `tls ca`) and the simulated modem outliving its stdin.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crossline_tests::proc::Proc;
use crossline_tests::{bin, free_port, http, https_with, wait_for};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const LONG: Duration = Duration::from_secs(60);

/// The command lines of the README's "Running it for real" block (the one
/// that runs mgmt), comments and blank lines dropped.
fn readme_commands() -> Vec<String> {
    let readme = include_str!("../../README.md");
    let section = readme
        .split("## Running it for real")
        .nth(1)
        .expect("README has \"Running it for real\"")
        .split("\n## ")
        .next()
        .unwrap();
    let block = section
        .split("```sh\n")
        .skip(1)
        .map(|b| b.split("```").next().unwrap())
        .find(|b| b.contains("crossline-mgmt") && b.contains(" run"))
        .expect("a code block that runs mgmt");
    block
        .lines()
        .map(|l| l.split(" #").next().unwrap().trim().to_string())
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect()
}

/// `s` percent-encoded for a form body.
fn form(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A header of a response head, case-insensitively.
fn header(head: &str, name: &str) -> Option<String> {
    head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim()
            .eq_ignore_ascii_case(name)
            .then(|| v.trim().to_string())
    })
}

/// The agent's browser: HTTPS pinned to mgmt's CA, her session cookie, and
/// the same-origin marker a browser sends with the desk's forms.
struct Desk {
    port: u16,
    ca: PathBuf,
    cookie: String,
}

impl Desk {
    fn login(port: u16, ca: &Path, login: &str, password: &str) -> Desk {
        let (s, head, body) = https_with(
            "POST",
            port,
            "/login",
            &[
                ("Content-Type", "application/x-www-form-urlencoded"),
                ("Sec-Fetch-Site", "same-origin"),
            ],
            Some(&format!(
                "login={}&password={}&next=%2Fdesk",
                form(login),
                form(password)
            )),
            ca,
        )
        .unwrap();
        assert_eq!(s, 303, "login of {login}: {head}\n{body}");
        let cookie = header(&head, "set-cookie").expect("a session cookie");
        Desk {
            port,
            ca: ca.to_path_buf(),
            cookie: cookie.split(';').next().unwrap().to_string(),
        }
    }

    fn get(&self, path: &str) -> String {
        let (s, _, body) = https_with(
            "GET",
            self.port,
            path,
            &[("Cookie", &self.cookie)],
            None,
            &self.ca,
        )
        .unwrap();
        assert_eq!(s, 200, "GET {path}: {body}");
        body
    }

    fn post(&self, path: &str, body: &str) {
        let (s, head, b) = https_with(
            "POST",
            self.port,
            path,
            &[
                ("Cookie", &self.cookie),
                ("Content-Type", "application/x-www-form-urlencoded"),
                ("Sec-Fetch-Site", "same-origin"),
            ],
            Some(body),
            &self.ca,
        )
        .unwrap();
        assert_eq!(s, 303, "POST {path}: {head}\n{b}");
        let to = header(&head, "location").unwrap_or_default();
        assert!(!to.contains("err="), "POST {path} failed: {to}");
    }
}

/// Runs a CLI line to completion in `cwd` (`> file` honoured); its stdout.
fn run_line(words: &[&str], cwd: &Path) -> String {
    let (words, out) = match words.iter().position(|w| *w == ">") {
        Some(i) => (&words[..i], words.get(i + 1).copied()),
        None => (words, None),
    };
    let r = Command::new(bin(words[0]))
        .args(&words[1..])
        .current_dir(cwd)
        .output()
        .expect("run");
    assert!(
        r.status.success(),
        "{words:?} failed: {}",
        String::from_utf8_lossy(&r.stderr)
    );
    let stdout = String::from_utf8_lossy(&r.stdout).into_owned();
    if let Some(f) = out {
        std::fs::write(cwd.join(f), &stdout).unwrap();
    }
    stdout
}

/// The example appliance configuration with the README's edits for this
/// branch, made on its text as a person would: node_id, data_dir, [mqtt]
/// url / ca_file / secret_file, one [[modems]] table (the others deleted)
/// with its port, and no pin.
fn appliance_config(device: &str, data: &Path, mqtts: u16, etc: &Path, modem: &Path) -> String {
    let example = include_str!("../../appliance/crossline-appliance.example.toml");
    // Only the first [[modems]] table stays.
    let first = example.find("\n[[modems]]\n").unwrap();
    let second = first + 1 + example[first + 1..].find("\n[[modems]]\n").unwrap();
    let next_table = second + example[second..].find("\n[offline]").unwrap();
    let mut text = format!("{}{}", &example[..second], &example[next_table + 1..]);
    let mut set = |key: &str, value: String| {
        let at = text
            .find(&format!("\n{key} = "))
            .unwrap_or_else(|| panic!("the example has no {key}"));
        let end = at + 1 + text[at + 1..].find('\n').unwrap();
        text.replace_range(at + 1..end, &format!("{key} = {value:?}"));
    };
    let p = |p: &Path| p.to_string_lossy().into_owned();
    set("node_id", device.to_string());
    set("data_dir", p(data));
    set("url", format!("mqtts://127.0.0.1:{mqtts}"));
    set("ca_file", p(&etc.join("mgmt-ca.pem")));
    set("secret_file", p(&etc.join("device.secret")));
    set("port", p(modem));
    let pin = text.find("\npin = ").unwrap();
    let end = pin + 1 + text[pin + 1..].find('\n').unwrap();
    text.replace_range(pin + 1..end + 1, "");
    let cfg: toml::Table = toml::from_str(&text).unwrap();
    let modems = cfg["modems"].as_array().unwrap();
    assert_eq!(modems.len(), 1, "{text}");
    assert_eq!(
        modems[0]["profile"].as_str(),
        Some("quectel_ec25"),
        "what crossline-sim plays"
    );
    text
}

#[test]
fn the_readme_path_ends_with_an_agent_answering_an_sms() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let server = root.join("server");
    let etc = root.join("etc");
    for d in [&server, &etc] {
        std::fs::create_dir_all(d).unwrap();
    }
    let mgmt_data = root.join("mgmt-data");
    let app_data = root.join("appliance-data");
    let link = root.join("ttyCROSSLINE0");
    let (http_port, https_port, mqtt_port, mqtts_port) =
        (free_port(), free_port(), free_port(), free_port());
    let ports = [
        ("CROSSLINE_HTTP_LISTEN", format!("127.0.0.1:{http_port}")),
        ("CROSSLINE_HTTPS_LISTEN", format!("127.0.0.1:{https_port}")),
        ("CROSSLINE_MQTT_LISTEN", format!("127.0.0.1:{mqtt_port}")),
        ("CROSSLINE_MQTTS_LISTEN", format!("127.0.0.1:{mqtts_port}")),
    ];
    let ports: Vec<(&str, &str)> = ports.iter().map(|(k, v)| (*k, v.as_str())).collect();

    let mut mgmt: Option<Proc> = None;
    let mut sim: Option<Proc> = None;
    let mut appliance: Option<Proc> = None;
    let mut passwords: Vec<(String, String)> = Vec::new();
    let mut device = String::new();
    let commands = readme_commands();
    assert!(commands.len() >= 7, "{commands:?}");
    for line in &commands {
        let line = line
            .replace("/var/lib/crossline-mgmt", &mgmt_data.to_string_lossy())
            .replace("/etc/crossline/", &format!("{}/", etc.display()))
            .replace("/tmp/ttyCROSSLINE0", &link.to_string_lossy());
        let words: Vec<&str> = line.split_whitespace().collect();
        match (words[0], words.get(1..)) {
            ("crossline-mgmt", Some(rest)) if rest.last() == Some(&"run") => {
                let mut p = Proc::spawn(
                    "crossline-mgmt",
                    "crossline-mgmt",
                    rest,
                    &root.join("mgmt.log"),
                    &ports,
                );
                p.wait_line("crossline-mgmt ready", LONG);
                mgmt = Some(p);
                // The first-run hint: what routes SMS without a configuration.
                let log = root.join("mgmt.log");
                wait_for("the default routing announced", LONG, || {
                    std::fs::read_to_string(&log)
                        .unwrap()
                        .contains("no routing configuration installed")
                        .then_some(())
                });
            }
            ("crossline-sim", Some(rest)) => {
                let mut p = Proc::spawn_with_stdin(
                    "crossline-sim",
                    "crossline-sim",
                    rest,
                    &root.join("sim.log"),
                    &[],
                );
                p.wait_line("simulated", LONG);
                sim = Some(p);
            }
            ("crossline-appliance", Some(rest)) => {
                // "device.secret and mgmt-ca.pem copied to /etc/crossline/,
                // the example configuration copied and edited".
                for f in ["device.secret", "mgmt-ca.pem"] {
                    std::fs::copy(server.join(f), etc.join(f)).unwrap();
                }
                std::fs::write(
                    etc.join("appliance.toml"),
                    appliance_config(&device, &app_data, mqtts_port, &etc, &link),
                )
                .unwrap();
                appliance = Some(Proc::spawn(
                    "crossline-appliance",
                    "crossline-appliance",
                    rest,
                    &root.join("appliance.log"),
                    &[],
                ));
            }
            ("crossline-mgmt", Some(_)) => {
                let out = run_line(&words, &server);
                if let Some(i) = words.iter().position(|w| *w == "user") {
                    assert_eq!(words[i + 1], "add", "{line}");
                    passwords.push((words[i + 2].to_string(), out.trim().to_string()));
                }
                if let Some(i) = words.iter().position(|w| *w == "device") {
                    device = words[i + 2].to_string();
                }
            }
            _ => panic!("a README command this test does not know: {line}"),
        }
    }
    let (Some(mut mgmt), Some(mut sim), Some(mut appliance)) = (mgmt, sim, appliance) else {
        panic!("the README starts mgmt, the simulated modem and the appliance: {commands:?}")
    };
    let (agent, password) = passwords
        .iter()
        .find(|(l, _)| l != "admin")
        .cloned()
        .expect("the README adds an agent");
    assert!(passwords.iter().any(|(l, _)| l == "admin"), "and an admin");

    // The branch is online (as `device list` tells).
    let data = mgmt_data.to_string_lossy().into_owned();
    wait_for("the appliance online at mgmt", LONG, || {
        let out = run_line(
            &["crossline-mgmt", "--data-dir", &data, "device", "list"],
            &server,
        );
        out.contains(&format!("{device}\tonline")).then_some(())
    });

    // A customer texts the branch.
    let customer = "+380501234567";
    sim.send_line(&format!(
        "sms {customer} Добрий день! Ви працюєте в суботу?"
    ));
    sim.wait_line("delivered in 1 part", LONG);
    let token = std::fs::read_to_string(mgmt_data.join("api.token")).unwrap();
    let conversation = wait_for("the SMS at mgmt", LONG, || {
        let (s, body) = http(
            "GET",
            http_port,
            "/api/v1/conversations?number=%2B380501234567",
            Some(token.trim()),
            None,
        )
        .ok()?;
        let v: serde_json::Value = serde_json::from_str(&body).ok()?;
        (s == 200)
            .then(|| v["conversations"][0]["id"].as_str().map(str::to_string))
            .flatten()
    });

    // The agent signs in over HTTPS; offline, her inbox says why it is empty.
    let ca = mgmt_data.join("tls").join("ca.pem");
    let desk = Desk::login(https_port, &ca, &agent, &password);
    let inbox = desk.get("/desk?tab=mine");
    assert!(
        inbox.contains("data-testid=\"inbox-not-available\""),
        "{inbox}"
    );
    // She sets herself available: the default routing gives her the SMS.
    desk.post("/desk/presence", "state=available&next=%2Fdesk");
    wait_for("the conversation in her inbox", LONG, || {
        desk.get("/desk/list?tab=mine")
            .contains(&format!("data-id=\"{conversation}\""))
            .then_some(())
    });
    // She answers from the conversation.
    let answer = "Так, у суботу з 10:00 до 14:00.";
    desk.post(
        &format!("/desk/c/{conversation}/reply"),
        &format!("text={}", form(answer)),
    );
    // The reply reaches the customer through the simulated modem.
    wait_for("the reply sent by the modem", LONG, || {
        sim.send_line("sent");
        sim.try_line(&format!("to {customer}: {answer}"), Duration::from_secs(1))
    });

    // Logs written to files carry no terminal colour codes.
    for log in ["mgmt.log", "appliance.log"] {
        let text = std::fs::read_to_string(root.join(log)).unwrap();
        assert!(!text.is_empty(), "{log} is empty");
        assert!(!text.contains('\u{1b}'), "{log} has ANSI escape codes");
    }
    assert!(appliance.is_running() && mgmt.is_running());
}

#[test]
fn the_command_line_speaks_to_people() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let d = data.to_string_lossy().into_owned();
    let cli = |args: &[&str]| {
        let out = Command::new(bin("crossline-mgmt"))
            .args(["--data-dir", &d])
            .args(args)
            .env_remove("RUST_LOG")
            .output()
            .unwrap();
        assert!(out.status.success(), "{args:?}: {out:?}");
        (
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    // Empty lists say so (and how to fill them) instead of printing nothing.
    let (out, err) = cli(&["device", "list"]);
    assert_eq!(out, "");
    assert!(
        err.contains("no devices yet") && err.contains("device add"),
        "{err}"
    );
    let (out, err) = cli(&["enroll", "list"]);
    assert_eq!(out, "");
    assert!(
        err.contains("no enrollments") && err.contains("enroll token"),
        "{err}"
    );
    // A device list has a header and says "never" rather than an epoch.
    cli(&["device", "add", "branch-1"]);
    let (out, _) = cli(&["device", "list"]);
    assert_eq!(
        out,
        "DEVICE\tSTATUS\tLAST SEEN (UTC)\nbranch-1\toffline\tnever\n"
    );

    // `tls ca` names the port this mgmt listens on, or the external broker.
    let cfg = tmp.path().join("mgmt.toml");
    let c = cfg.to_string_lossy().into_owned();
    std::fs::write(&cfg, "[mqtt]\ntls_listen = \"0.0.0.0:9883\"\n").unwrap();
    let (pem, err) = cli(&["--config", &c, "tls", "ca"]);
    assert!(pem.starts_with("-----BEGIN CERTIFICATE-----"), "{pem}");
    assert!(err.contains("url = \"mqtts://<this host>:9883\""), "{err}");
    std::fs::write(&cfg, "[mqtt]\nurl = \"mqtts://broker.example.org:8884\"\n").unwrap();
    let (_, err) = cli(&["--config", &c, "tls", "ca"]);
    assert!(
        err.contains("url = \"mqtts://broker.example.org:8884\""),
        "{err}"
    );
}

/// A scripted setup starts the simulated modem with no one typing: it keeps
/// serving the PTY after its stdin closes, until SIGTERM.
#[test]
fn the_simulated_modem_outlives_its_stdin() {
    let tmp = tempfile::tempdir().unwrap();
    let link = tmp.path().join("ttyMODEM");
    let l = link.to_string_lossy().into_owned();
    let mut sim = Proc::spawn_with_stdin(
        "crossline-sim",
        "crossline-sim",
        &["modem", "--link", &l],
        &tmp.path().join("sim.log"),
        &[],
    );
    sim.wait_line("simulated", LONG);
    sim.send_line("help");
    sim.close_stdin();
    sim.wait_line("quit", LONG);
    // A real AT conversation over the PTY after stdin's end of file.
    let probe = Command::new(bin("crossline-modem"))
        .args(["probe", "--port", &l])
        .output()
        .unwrap();
    assert!(
        probe.status.success(),
        "probe after stdin closed: {}",
        String::from_utf8_lossy(&probe.stderr)
    );
    assert!(sim.is_running(), "the simulated modem exited");
    assert!(sim.sigterm(LONG), "SIGTERM ends it cleanly");
}
