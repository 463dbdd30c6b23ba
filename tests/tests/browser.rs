//! Browser scenarios in real Chromium (tests/browser/*.mjs, playwright-core
//! driving Debian's chromium) against real processes: mgmt with its embedded
//! broker and SQLite, a simulated branch appliance with modems on PTYs.
//! Screenshots stay in target/browser-artifacts/<scenario>/.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crossline_tests::browser::run_scenario;
use crossline_tests::proc::Mgmt;
use std::time::Duration;

/// The harness itself: Chromium starts, loads a page from mgmt over HTTPS,
/// and the screenshot lands in the artifacts folder.
#[test]
fn harness_smoke() {
    let tmp = tempfile::tempdir().unwrap();
    let mut mgmt = Mgmt::new(tmp.path().join("mgmt"), None);
    mgmt.start();
    // Over HTTPS: Chromium pins mgmt's key (the development certificate).
    let pin = mgmt.chromium_pin_arg();
    let artifacts = run_scenario(
        "smoke.mjs",
        &mgmt.https_url(),
        &[("CROSSLINE_CHROMIUM_ARGS", &pin)],
        Duration::from_secs(90),
    );
    let png = std::fs::read(artifacts.join("healthz.png")).expect("screenshot written");
    assert!(
        png.starts_with(b"\x89PNG"),
        "healthz.png is not a PNG ({} bytes)",
        png.len()
    );
}

/// The agent desk and supervisor board (tests/browser/desk.mjs): a wrong
/// password says so in each language; log in; a simulated customer's SMS
/// appears live (SMS icon, capacity only for SMS); reply and see it
/// delivered; hold and resume; the board's Reassign preselects nobody;
/// another team's agent cannot see it; resolve (only Reopen left); after a
/// transfer the previous agent has no controls; the board updates when a
/// conversation waits; the UI in Russian; a long conversation opens at its
/// newest message; an SMS with HTML renders as text; a refused merge says
/// why; the customer panel fits in every language and width, with
/// screenshots of the conversation, board and reports in each. The
/// scenario asks for customer SMS through files in a control folder; this
/// test injects them into the simulated modems.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn desk_scenarios() {
    use crossline_tests::branch::Branch;
    use crossline_tests::http;
    use crossline_tests::proc::run_ok;

    let tmp = tempfile::tempdir().unwrap();
    let mut users: Vec<(String, String)> = Vec::new();
    let b = Branch::start_with(tmp.path(), 3600, |m| {
        let data = m.data.to_string_lossy().into_owned();
        for (login, role, teams) in [
            ("ivan", "agent", "south"),
            ("ana", "agent", "north"),
            ("sofia", "supervisor", ""),
        ] {
            let mut args = vec!["--data-dir", &data, "user", "add", login, "--role", role];
            if !teams.is_empty() {
                args.extend(["--teams", teams]);
            }
            let password = run_ok("crossline-mgmt", &args).trim().to_string();
            assert!(password.len() >= 12, "generated password printed");
            users.push((login.to_string(), password));
        }
    })
    .await;
    let port = b.mgmt.http_port;
    let api = |method: &str, path: &str, body: &str| {
        let (s, v) = http(method, port, path, Some(&b.token), Some(body)).unwrap();
        assert_eq!(s, 200, "{method} {path}: {v}");
    };
    api(
        "PUT",
        "/api/v1/routing/config",
        r#"{"default_queue": "north",
            "agents": [{"id": "ana", "team": "north"}, {"id": "ivan", "team": "south"}],
            "queues": [{"id": "north", "members": {"teams": ["north"]}},
                       {"id": "south", "members": {"teams": ["south"]}}],
            "rules": [{"when": {"line": "gsm0"}, "queue": "north"},
                      {"when": {"line": "gsm1"}, "queue": "south"}]}"#,
    );
    for a in ["ana", "ivan"] {
        api(
            "PUT",
            &format!("/api/v1/agents/{a}/presence"),
            r#"{"state": "available"}"#,
        );
    }

    let control = tmp.path().join("control");
    std::fs::create_dir_all(&control).unwrap();
    let users_json = serde_json::to_string(
        &users
            .iter()
            .cloned()
            .collect::<std::collections::BTreeMap<_, _>>(),
    )
    .unwrap();
    // The desk over HTTPS (Secure session cookie), Chromium pinning mgmt's key.
    let url = b.mgmt.https_url();
    let pin = b.mgmt.chromium_pin_arg();
    let ctl = control.to_string_lossy().into_owned();
    let scenario = tokio::task::spawn_blocking(move || {
        run_scenario(
            "desk.mjs",
            &url,
            &[
                ("CROSSLINE_CONTROL", &ctl),
                ("CROSSLINE_USERS", &users_json),
                ("CROSSLINE_CHROMIUM_ARGS", &pin),
            ],
            Duration::from_secs(480),
        )
    });
    // Serve the scenario's SMS requests until it ends.
    let mut next = 1;
    while !scenario.is_finished() {
        let req = control.join(format!("req-{next}.json"));
        if let Ok(text) = std::fs::read_to_string(&req) {
            let v: serde_json::Value = serde_json::from_str(&text).unwrap();
            let line = v["line"].as_u64().unwrap() as usize;
            b.sims[line]
                .inject_sms(v["from"].as_str().unwrap(), v["text"].as_str().unwrap())
                .unwrap();
            std::fs::write(control.join(format!("done-{next}")), "").unwrap();
            next += 1;
            continue;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let artifacts = scenario.await.unwrap();
    for shot in [
        "00-wrong-password-ru-RU",
        "02-live-sms",
        "03-delivered",
        "04c-board-reassign",
        "06b-transferred",
        "07-board-waiting",
        "08-russian",
        "08b-long-conversation",
        "09-html-as-text",
        "09b-merge-refused",
        "11-conversation-en",
        "11-conversation-ru",
        "11-conversation-uk",
        "11-conversation-ro",
        "12-board-uk",
        "13-reports-ro",
    ] {
        assert!(artifacts.join(format!("{shot}.png")).exists(), "{shot}.png");
    }
}
