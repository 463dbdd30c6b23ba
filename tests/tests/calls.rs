//! Calls across real processes (issue 14): simulated modems on PTYs (in
//! this test process), the real `crossline-appliance` binary driving them,
//! the real `crossline-mgmt` binary with its embedded broker and HTTP API.
//! A call (RING + CLIP, then the caller hangs up) reaches mgmt as a call in
//! the same conversation as an earlier SMS from that number, with its
//! duration and end cause; with the uplink down it is synced after it
//! returns.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crossline_tests::branch::Branch;
use crossline_tests::wait_for_async;
use serde_json::Value;
use std::time::Duration;

/// The conversation (with its calls) holding an inbound SMS `text`.
fn conversation_with(b: &Branch, text: &str) -> Option<Value> {
    b.conversations().into_iter().find_map(|c| {
        let d = b.get(&format!(
            "/api/v1/conversations/{}",
            c["id"].as_str().unwrap()
        ));
        d["timeline"]
            .as_array()?
            .iter()
            .any(|e| e["text"] == text)
            .then_some(d)
    })
}

/// Rings the branch from `number` on its first line until the appliance
/// has seen the call, then the caller hangs up (the line rang out:
/// nobody answers without an IVR).
async fn missed_call(b: &Branch, number: &str) {
    b.sims[0].inject_call(number);
    b.sims[0]
        .wait_until(
            "the call to ring on the simulated modem",
            Duration::from_secs(10),
            |s| !s.calls().is_empty(),
        )
        .await
        .unwrap();
    // The appliance announces a call after its first RING and CLIP; the
    // caller gives up after a few rings (part of the scenario, not a
    // synchronisation: the call's ring time is what it measures).
    tokio::time::sleep(Duration::from_secs(3)).await;
    b.sims[0].remote_hangup();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missed_call_joins_the_conversation_of_an_earlier_sms_also_when_synced_late() {
    let tmp = tempfile::tempdir().unwrap();
    let mut b = Branch::start(tmp.path(), 3600).await;
    b.sims[0]
        .inject_sms("+380501234567", "Чи готове замовлення?")
        .unwrap();
    wait_for_async("the SMS at mgmt", Duration::from_secs(60), || async {
        conversation_with(&b, "Чи готове замовлення?")
    })
    .await;

    missed_call(&b, "+380501234567").await;
    let conv = wait_for_async(
        "the call in the SMS's conversation",
        Duration::from_secs(60),
        || async {
            conversation_with(&b, "Чи готове замовлення?")
                .filter(|d| d["calls"][0]["cause"] == "missed")
        },
    )
    .await;
    let call = &conv["calls"][0];
    assert_eq!(call["caller"], "+380501234567");
    assert_eq!(call["device"], "branch-1");
    assert_eq!(call["line"], "gsm0");
    assert_eq!(call["duration_ms"], 0, "never answered");
    let ring = call["ring_ms"].as_i64().unwrap();
    assert!((1_000..30_000).contains(&ring), "rang {ring} ms");
    assert_eq!(
        b.conversations().len(),
        1,
        "one conversation for SMS and call"
    );

    // The uplink goes down; a second call is logged on the branch and
    // reaches mgmt when the uplink is back.
    b.proxy.set_up(false);
    missed_call(&b, "+380501234567").await;
    // Give the appliance the chance to log it while mgmt cannot hear.
    b.sims[0]
        .wait_until("the call to end", Duration::from_secs(10), |s| {
            s.calls().is_empty()
        })
        .await
        .unwrap();
    b.proxy.set_up(true);
    let conv = wait_for_async(
        "the second call, synced after the uplink returned",
        Duration::from_secs(90),
        || async {
            conversation_with(&b, "Чи готове замовлення?")
                .filter(|d| d["calls"].as_array().is_some_and(|c| c.len() == 2))
        },
    )
    .await;
    let calls = conv["calls"].as_array().unwrap();
    assert_eq!(calls[1]["cause"], "missed");
    assert_eq!(calls[1]["caller"], "+380501234567");
    assert_ne!(calls[0]["id"], calls[1]["id"]);
    assert_eq!(b.conversations().len(), 1);
    assert!(b.app.sigterm());
    assert!(b.mgmt.sigterm());
}
