//! The fleet console in real Chromium (tests/browser/fleet.mjs): approve an
//! enrolling appliance, change its configuration, run a command and see its
//! result (live), see its row turn offline and the offline alert appear
//! without a reload when the appliance dies, page and filter a list longer
//! than one page.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crossline_sim::{SimConfig, SimModem};
use crossline_tests::browser::run_scenario;
use crossline_tests::proc::{Appliance, Mgmt, run_ok};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fleet_console() {
    let tmp = tempfile::tempdir().unwrap();
    let mut mgmt = Mgmt::new(tmp.path().join("mgmt"), None);
    mgmt.set_config(
        "[fleet]\ntick_ms = 200\n[fleet.alerts]\neval_s = 0.2\noffline_after_s = 1\nheartbeat_timeout_s = 5\n",
    );
    let data = mgmt.data.to_string_lossy().into_owned();
    let password = run_ok(
        "crossline-mgmt",
        &[
            "--data-dir",
            &data,
            "user",
            "add",
            "root",
            "--role",
            "admin",
        ],
    )
    .trim()
    .to_string();
    // More devices than one page of the list.
    crossline_tests::fleet::seed_devices(&mgmt.data, "bulk", 60, Some("bulk"))
        .await
        .unwrap();
    mgmt.start();
    let token = run_ok("crossline-mgmt", &["--data-dir", &data, "enroll", "token"])
        .trim()
        .to_string();
    let link = tmp.path().join("tty-web");
    let _sim = SimModem::spawn(SimConfig {
        link: Some(link.clone()),
        own_number: "+380670000031".into(),
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let mut app = Appliance::from_toml(
        tmp.path(),
        "web-app",
        &format!(
            "data_dir = \"{{data}}\"\n[mqtt]\nurl = \"mqtt://127.0.0.1:{}\"\nkeep_alive_s = 5\n\
             [enroll]\nbootstrap_token = \"{token}\"\nserial = \"serial-web-1\"\nretry_s = 1\nmodem_probe_s = 5\n\
             [telemetry]\ninterval_s = 1\n\
             [[modems]]\nlabel = \"gsm0\"\nport = \"{}\"\nprofile = \"quectel_ec25\"\n",
            mgmt.mqtt_port,
            link.display()
        ),
    );
    app.start();

    let control = tmp.path().join("control");
    std::fs::create_dir_all(&control).unwrap();
    let url = format!("http://127.0.0.1:{}", mgmt.http_port);
    let users = format!("{{\"root\": \"{password}\"}}");
    let ctl = control.to_string_lossy().into_owned();
    let scenario = tokio::task::spawn_blocking(move || {
        run_scenario(
            "fleet.mjs",
            &url,
            &[("CROSSLINE_CONTROL", &ctl), ("CROSSLINE_USERS", &users)],
            Duration::from_secs(240),
        )
    });
    // Kill the appliance when the scenario asks.
    while !scenario.is_finished() {
        if control.join("kill").exists() && !control.join("killed").exists() {
            app.sigkill();
            std::fs::write(control.join("killed"), "").unwrap();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let artifacts = scenario.await.unwrap();
    for shot in [
        "01-enrollment-queue",
        "02-approved-device",
        "03-config-applied",
        "04-command-result",
        "05-offline-alert",
        "06-second-page",
    ] {
        assert!(artifacts.join(format!("{shot}.png")).exists(), "{shot}.png");
    }
    assert!(mgmt.sigterm());
}
