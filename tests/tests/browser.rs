//! Browser scenarios in real Chromium (tests/browser/*.mjs, playwright-core
//! driving Debian's chromium) against real processes: mgmt with its embedded
//! broker and SQLite, a simulated branch appliance with modems on PTYs.
//! Screenshots stay in target/browser-artifacts/<scenario>/.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crossline_tests::browser::run_scenario;
use crossline_tests::proc::Mgmt;
use std::time::Duration;

/// The harness itself: Chromium starts, loads a page from mgmt, and the
/// screenshot lands in the artifacts folder.
#[test]
fn harness_smoke() {
    let tmp = tempfile::tempdir().unwrap();
    let mut mgmt = Mgmt::new(tmp.path().join("mgmt"), None);
    mgmt.start();
    let url = format!("http://127.0.0.1:{}", mgmt.http_port);
    let artifacts = run_scenario("smoke.mjs", &url, &[], Duration::from_secs(90));
    let png = std::fs::read(artifacts.join("healthz.png")).expect("screenshot written");
    assert!(
        png.starts_with(b"\x89PNG"),
        "healthz.png is not a PNG ({} bytes)",
        png.len()
    );
}
