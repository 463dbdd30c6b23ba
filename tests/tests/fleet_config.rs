//! Fleet configuration and remote commands against the real binaries
//! (docs/FLEET.md): a configuration pushed to a tag reaches each tagged
//! appliance and its applied version comes back; an invalid one is refused
//! with the reason and the old one stays (also across a restart); fleet
//! commands (USSD on a simulated modem, test SMS, logs, modem restart,
//! rescan, reboot) have their results recorded, also when queued while the
//! appliance was away.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crossline_sim::{SimConfig, SimModem};
use crossline_tests::proc::{Appliance, Mgmt};
use crossline_tests::{http, wait_for};
use serde_json::{Value, json};
use std::path::Path;
use std::time::Duration;

const LONG: Duration = Duration::from_secs(30);

fn get_json(mgmt: &Mgmt, token: &str, path: &str) -> Option<Value> {
    let (status, body) = http("GET", mgmt.http_port, path, Some(token), None).ok()?;
    (status == 200).then(|| serde_json::from_str(&body).ok())?
}

fn post(mgmt: &Mgmt, token: &str, path: &str, body: &Value) -> (u16, Value) {
    let (status, body) = http(
        "POST",
        mgmt.http_port,
        path,
        Some(token),
        Some(&body.to_string()),
    )
    .unwrap();
    (status, serde_json::from_str(&body).unwrap_or(Value::Null))
}

fn device(mgmt: &Mgmt, token: &str, id: &str) -> Option<Value> {
    let list = get_json(mgmt, token, "/api/v1/fleet/devices")?;
    list.as_array()?.iter().find(|d| d["id"] == id).cloned()
}

/// A simulated modem on a PTY and an appliance driving it as `gsm0`.
async fn appliance_with_modem(
    dir: &Path,
    mgmt: &Mgmt,
    id: &str,
    secret: &str,
) -> (Appliance, SimModem) {
    let link = dir.join(format!("tty-{id}"));
    let sim = SimModem::spawn(SimConfig {
        link: Some(link.clone()),
        own_number: "+380670000009".into(),
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let extra = format!(
        "[[modems]]\nlabel = \"gsm0\"\nport = \"{}\"\nprofile = \"quectel_ec25\"\n\
         [offline]\nafter_s = 600\ntexts = {{ en = \"Local text\" }}\n\
         [commands]\nlog_file = \"{}\"\n",
        link.display(),
        dir.join(id).join("appliance.log").display()
    );
    let mut app = Appliance::with_config(dir, id, secret, mgmt.mqtt_port, &extra);
    app.start();
    (app, sim)
}

fn applied_version(app: &Appliance) -> Option<u64> {
    let text = std::fs::read_to_string(app.data.join("desired.json")).ok()?;
    serde_json::from_str::<Value>(&text).ok()?["version"].as_u64()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_to_a_tag_applied_and_invalid_config_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let mut mgmt = Mgmt::new(tmp.path().join("mgmt"), None);
    mgmt.set_config("[fleet]\ntick_ms = 200\n");
    let ids = ["cfg-a", "cfg-b", "cfg-c"];
    let secrets: Vec<String> = ids.iter().map(|id| mgmt.add_device(id)).collect();
    mgmt.start();
    let api = mgmt.api_token();
    let mut apps = Vec::new();
    for (id, secret) in ids.iter().zip(&secrets) {
        apps.push(appliance_with_modem(tmp.path(), &mgmt, id, secret).await);
    }
    for (id, tag) in [("cfg-a", "pilot"), ("cfg-b", "pilot"), ("cfg-c", "other")] {
        let (s, b) = post(
            &mgmt,
            &api,
            &format!("/api/v1/fleet/devices/{id}/meta"),
            &json!({"tags": [tag], "site": "kyiv"}),
        );
        assert_eq!(s, 200, "{b}");
    }
    for id in ids {
        wait_for("appliances online", LONG, || {
            device(&mgmt, &api, id).filter(|d| d["online"] == true)
        });
    }

    // Pushed to the tag: each tagged appliance applies it and reports back.
    let settings = json!({
        "lines": [{"label": "gsm0", "language": "ro", "number": "+380670000019"}],
        "offline": {"after_s": 120, "texts": {"en": "Closed today", "uk": "Сьогодні зачинено"}}
    });
    let (s, pushed) = post(
        &mgmt,
        &api,
        "/api/v1/fleet/config",
        &json!({"tag": "pilot", "settings": settings}),
    );
    assert_eq!(s, 200, "{pushed}");
    let v1 = pushed["version"].as_u64().unwrap();
    assert_eq!(pushed["devices"], json!(["cfg-a", "cfg-b"]));
    for id in ["cfg-a", "cfg-b"] {
        let d = wait_for("applied version reported", LONG, || {
            device(&mgmt, &api, id).filter(|d| d["applied_version"] == v1)
        });
        assert_eq!(d["drift"], false);
        assert_eq!(d["desired_version"], v1);
    }
    assert_eq!(applied_version(&apps[0].0), Some(v1));
    assert_eq!(applied_version(&apps[1].0), Some(v1));
    let c = device(&mgmt, &api, "cfg-c").unwrap();
    assert!(
        c["desired_version"].is_null(),
        "untagged device got it: {c}"
    );
    assert_eq!(applied_version(&apps[2].0), None);
    let cfg = get_json(&mgmt, &api, "/api/v1/fleet/devices/cfg-a/config").unwrap();
    assert_eq!(
        cfg["desired"]["settings"]["offline"]["texts"]["en"],
        "Closed today"
    );

    // An invalid configuration for one device: refused with the reason,
    // the old one keeps running; mgmt shows the drift.
    let (s, pushed) = post(
        &mgmt,
        &api,
        "/api/v1/fleet/config",
        &json!({"device": "cfg-a", "settings": {"lines": [{"label": "gsm9", "language": "en"}]}}),
    );
    assert_eq!(s, 200, "{pushed}");
    let v2 = pushed["version"].as_u64().unwrap();
    let d = wait_for("the refusal reported", LONG, || {
        device(&mgmt, &api, "cfg-a").filter(|d| !d["config_error"].is_null())
    });
    assert!(d["config_error"].as_str().unwrap().contains("gsm9"), "{d}");
    assert_eq!(d["applied_version"], v1);
    assert_eq!(d["desired_version"], v2);
    assert_eq!(d["drift"], true);
    let cfg = get_json(&mgmt, &api, "/api/v1/fleet/devices/cfg-a/config").unwrap();
    assert_eq!(cfg["rejected_version"], v2);
    assert_eq!(applied_version(&apps[0].0), Some(v1));

    // After a restart the appliance still runs v1 and refuses v2 again.
    assert!(apps[0].0.sigterm());
    apps[0].0.start();
    wait_for("cfg-a back with v1", LONG, || {
        device(&mgmt, &api, "cfg-a")
            .filter(|d| d["online"] == true && d["applied_version"] == v1 && d["drift"] == true)
    });
    assert_eq!(applied_version(&apps[0].0), Some(v1));

    // A valid one for the device fixes the drift.
    let (_, pushed) = post(
        &mgmt,
        &api,
        "/api/v1/fleet/config",
        &json!({"device": "cfg-a", "settings": {"offline": {"texts": {"en": "Back soon"}}}}),
    );
    let v3 = pushed["version"].as_u64().unwrap();
    wait_for("v3 applied", LONG, || {
        device(&mgmt, &api, "cfg-a").filter(|d| {
            d["applied_version"] == v3 && d["drift"] == false && d["config_error"].is_null()
        })
    });
    // Nobody in a tag: a clear error.
    let (s, _) = post(
        &mgmt,
        &api,
        "/api/v1/fleet/config",
        &json!({"tag": "nobody", "settings": {}}),
    );
    assert_eq!(s, 400);
    for (mut app, _sim) in apps {
        assert!(app.sigterm());
    }
    assert!(mgmt.sigterm());
}

fn wait_result(mgmt: &Mgmt, api: &str, id: &str) -> Value {
    wait_for(&format!("result of command {id}"), LONG, || {
        get_json(mgmt, api, &format!("/api/v1/fleet/commands/{id}"))
            .filter(|c| !c["result_ms"].is_null())
    })
}

fn command(mgmt: &Mgmt, api: &str, device: &str, body: Value) -> String {
    let (s, b) = post(
        mgmt,
        api,
        &format!("/api/v1/fleet/devices/{device}/commands"),
        &body,
    );
    assert_eq!(s, 202, "{b}");
    b["id"].as_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn command_results_are_recorded() {
    let tmp = tempfile::tempdir().unwrap();
    let mut mgmt = Mgmt::new(tmp.path().join("mgmt"), None);
    mgmt.set_config("[fleet]\ntick_ms = 200\n");
    let secret = mgmt.add_device("cmd-a");
    mgmt.start();
    let api = mgmt.api_token();
    let (mut app, sim) = appliance_with_modem(tmp.path(), &mgmt, "cmd-a", &secret).await;
    wait_for("cmd-a online with gsm0 registered", LONG, || {
        device(&mgmt, &api, "cmd-a")
            .filter(|d| d["online"] == true && d["telemetry"]["modems"][0]["registered"] == true)
    });

    // USSD balance check on the simulated modem.
    let id = command(
        &mgmt,
        &api,
        "cmd-a",
        json!({"type": "ussd", "line": "gsm0", "code": "*111#"}),
    );
    let r = wait_result(&mgmt, &api, &id);
    assert_eq!(r["ok"], true, "{r}");
    assert!(
        r["output"]
            .as_str()
            .unwrap()
            .contains("Balance: 100.00 UAH"),
        "{r}"
    );
    assert_eq!(sim.ussd_requests(), vec!["*111#".to_string()]);

    // A test SMS goes out on the line.
    let id = command(
        &mgmt,
        &api,
        "cmd-a",
        json!({"type": "test_sms", "line": "gsm0", "to": "+380501112233", "text": "fleet test"}),
    );
    let r = wait_result(&mgmt, &api, &id);
    assert_eq!(r["ok"], true, "{r}");
    let sent = sim.wait_sent(1, LONG).await.unwrap();
    assert_eq!(sent[0].text, "fleet test");

    // A line that does not exist: recorded as failed, with the reason.
    let id = command(
        &mgmt,
        &api,
        "cmd-a",
        json!({"type": "ussd", "line": "gsm7", "code": "*111#"}),
    );
    let r = wait_result(&mgmt, &api, &id);
    assert_eq!(r["ok"], false);
    assert!(r["output"].as_str().unwrap().contains("gsm7"), "{r}");

    // Restart the modem, rescan, collect logs (downloadable).
    let id = command(
        &mgmt,
        &api,
        "cmd-a",
        json!({"type": "restart_modem", "line": "gsm0"}),
    );
    assert_eq!(wait_result(&mgmt, &api, &id)["ok"], true);
    let id = command(&mgmt, &api, "cmd-a", json!({"type": "rescan_modems"}));
    let r = wait_result(&mgmt, &api, &id);
    assert_eq!(r["ok"], true, "{r}");
    assert!(r["output"].as_str().unwrap().contains("gsm0"), "{r}");
    let id = command(&mgmt, &api, "cmd-a", json!({"type": "collect_logs"}));
    let r = wait_result(&mgmt, &api, &id);
    assert_eq!(r["ok"], true, "{r}");
    let (status, text) = http(
        "GET",
        mgmt.http_port,
        &format!("/api/v1/fleet/commands/{id}/output"),
        Some(&api),
        None,
    )
    .unwrap();
    assert_eq!(status, 200);
    assert!(text.contains("fleet command"), "log tail: {text}");

    // Queued while the appliance is away: delivered and answered on return.
    app.sigkill();
    wait_for("cmd-a offline", LONG, || {
        device(&mgmt, &api, "cmd-a").filter(|d| d["online"] == false)
    });
    let id = command(
        &mgmt,
        &api,
        "cmd-a",
        json!({"type": "ussd", "line": "gsm0", "code": "*100#"}),
    );
    app.start();
    let r = wait_result(&mgmt, &api, &id);
    assert_eq!(r["ok"], true, "{r}");

    // Reboot: the result is recorded and the daemon exits cleanly for its
    // supervisor (here: the test) to start it again.
    let id = command(&mgmt, &api, "cmd-a", json!({"type": "reboot"}));
    let r = wait_result(&mgmt, &api, &id);
    assert_eq!(r["ok"], true, "{r}");
    wait_for("the daemon to exit", LONG, || {
        (!app.is_running()).then_some(())
    });
    app.start();
    wait_for("cmd-a online again", LONG, || {
        device(&mgmt, &api, "cmd-a").filter(|d| d["online"] == true)
    });
    let list = get_json(&mgmt, &api, "/api/v1/fleet/devices/cmd-a/commands").unwrap();
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 8);
    assert!(list.iter().all(|c| !c["result_ms"].is_null()), "{list:?}");
    assert_eq!(sim.ussd_requests().len(), 2, "each USSD ran once");
    assert!(app.sigterm());
    assert!(mgmt.sigterm());
}
