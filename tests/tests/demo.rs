//! The demo is not in the product: `crossline-mgmt` links neither the
//! appliance, the modem driver nor the simulator (its own `cargo tree`),
//! and the README's demo command is one command that runs `crossline-demo`:
//! mgmt, a simulated branch and simulated customers whose texts reach the
//! conversation API.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crossline_tests::proc::Proc;
use crossline_tests::{free_port, http, wait_for};
use std::path::Path;
use std::time::Duration;

/// The workspace's packages `package` depends on when built (no dev or
/// build dependencies), as `cargo tree` resolves them.
fn normal_dependencies(package: &str) -> Vec<String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let out = std::process::Command::new(cargo)
        .current_dir(root)
        .args([
            "tree",
            "--offline",
            "--locked",
            "-p",
            package,
            "-e",
            "normal",
            "--prefix",
            "none",
            "--format",
            "{p}",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "cargo tree -p {package}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut names: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| n.starts_with("crossline-"))
        .map(str::to_string)
        .collect();
    names.sort();
    names.dedup();
    names
}

#[test]
fn mgmt_links_neither_the_appliance_nor_the_modem_driver_nor_the_simulator() {
    let mgmt = normal_dependencies("crossline-mgmt");
    assert!(
        mgmt.contains(&"crossline-store".to_string()),
        "cargo tree lists mgmt's own crates: {mgmt:?}"
    );
    for not_in_the_product in ["crossline-appliance", "crossline-modem", "crossline-sim"] {
        assert!(
            !mgmt.iter().any(|n| n == not_in_the_product),
            "crossline-mgmt links {not_in_the_product}: {mgmt:?}"
        );
    }
    // The demo is where they meet.
    let demo = normal_dependencies("crossline-demo");
    for needed in ["crossline-mgmt", "crossline-appliance", "crossline-sim"] {
        assert!(demo.iter().any(|n| n == needed), "{needed}: {demo:?}");
    }
}

/// The demo command of the README's quick start: one line.
fn readme_demo_command() -> String {
    let readme = include_str!("../../README.md");
    let quick = readme
        .split("## Quick start")
        .nth(1)
        .expect("README has a quick start")
        .split("```sh\n")
        .nth(1)
        .expect("a code block")
        .split("```")
        .next()
        .unwrap();
    quick
        .lines()
        .find(|l| l.contains("# the demo"))
        .expect("the demo's line")
        .split(" #")
        .next()
        .unwrap()
        .trim()
        .to_string()
}

#[test]
fn the_readme_s_one_demo_command_shows_customers_texts_and_calls_in_the_api() {
    let command = readme_demo_command();
    assert_eq!(command, "cargo run --release -p crossline-demo");
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("crossline-demo");
    let addr = |p: u16| format!("127.0.0.1:{p}");
    let (http_port, mqtt, https, mqtts) = (free_port(), free_port(), free_port(), free_port());
    let (http_a, mqtt_a, https_a, mqtts_a) =
        (addr(http_port), addr(mqtt), addr(https), addr(mqtts));
    let data_s = data.to_string_lossy().into_owned();
    // The binary `cargo run -p crossline-demo` runs, on free ports.
    let mut demo = Proc::spawn(
        "demo",
        "crossline-demo",
        &[
            "--data-dir",
            &data_s,
            "--http",
            &http_a,
            "--mqtt",
            &mqtt_a,
            "--https",
            &https_a,
            "--mqtts",
            &mqtts_a,
            "--pace",
            "0.5",
        ],
        &tmp.path().join("demo.log"),
        &[],
    );
    demo.wait_line("Crossline demo is running", Duration::from_secs(60));
    let token = std::fs::read_to_string(data.join("api.token"))
        .unwrap()
        .trim()
        .to_string();
    wait_for(
        "a simulated customer's text in the conversation API",
        Duration::from_secs(60),
        || {
            let (status, body) = http(
                "GET",
                http_port,
                "/api/v1/conversations",
                Some(&token),
                None,
            )
            .ok()?;
            let v: serde_json::Value = serde_json::from_str(&body).ok()?;
            let list = v["conversations"].as_array()?;
            (status == 200 && !list.is_empty()).then_some(())
        },
    );
    // A call on `line` answered by the IVR with a voicemail, in some
    // customer's conversation.
    let ivr_call_with_voicemail = |line: &str| {
        let (_, body) = http(
            "GET",
            http_port,
            "/api/v1/conversations",
            Some(&token),
            None,
        )
        .ok()?;
        let v: serde_json::Value = serde_json::from_str(&body).ok()?;
        v["conversations"].as_array()?.iter().find_map(|c| {
            let id = c["id"].as_str()?;
            let (status, body) = http(
                "GET",
                http_port,
                &format!("/api/v1/conversations/{id}"),
                Some(&token),
                None,
            )
            .ok()?;
            let d: serde_json::Value = serde_json::from_str(&body).ok()?;
            let voicemail = d["calls"].as_array()?.iter().any(|call| {
                call["line"] == line
                    && call["answered_by"] == "ivr"
                    && call["steps"]
                        .as_array()
                        .is_some_and(|st| st.iter().any(|s| s["kind"] == "voicemail"))
            });
            (status == 200 && voicemail).then_some(())
        })
    };
    // A simulated caller rings gsm0, the IVR answers, 2 is pressed and a
    // voicemail is left: the call shows in that customer's conversation.
    wait_for(
        "a simulated call on gsm0 with a voicemail in a conversation",
        Duration::from_secs(120),
        || ivr_call_with_voicemail("gsm0"),
    );
    // The same on the analog line (ring cadence, FSK caller ID), whose
    // first caller rings 30 s after the start.
    wait_for(
        "a simulated analog call on fxo0 with a voicemail in a conversation",
        Duration::from_secs(120),
        || ivr_call_with_voicemail("fxo0"),
    );
    assert!(
        demo.sigterm(Duration::from_secs(30)),
        "the demo did not stop cleanly on SIGTERM"
    );
}
