//! The SMS loop across real processes: simulated modems on PTYs (in this
//! test process), the real `crossline-appliance` binary driving them, the
//! real `crossline-mgmt` binary with its embedded broker, its HTTP API.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crossline_tests::branch::Branch;
use crossline_tests::{http, wait_for_async};
use serde_json::Value;
use std::path::Path;
use std::time::Duration;

const LONG_UK: &str = "Добрий день! Мені не прийшла посилка 4711, чекаю вже тиждень. \
    Перевірте, будь ласка, де вона зараз і коли її можна забрати у вашому відділенні.";

fn conversations(b: &Branch) -> Vec<Value> {
    b.conversations()
}

fn get(b: &Branch, path: &str) -> Value {
    b.get(path)
}

async fn branch(dir: &Path, offline_after_s: u64) -> Branch {
    Branch::start(dir, offline_after_s).await
}

fn inbound_texts(b: &Branch) -> Vec<String> {
    let mut out = Vec::new();
    for c in conversations(b) {
        let d = get(
            b,
            &format!("/api/v1/conversations/{}", c["id"].as_str().unwrap()),
        );
        for e in d["timeline"].as_array().unwrap() {
            if e["kind"] == "inbound" {
                out.push(e["text"].as_str().unwrap().to_string());
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cyrillic_multipart_in_reply_out_delivered() {
    let tmp = tempfile::tempdir().unwrap();
    let mut b = branch(tmp.path(), 3600).await;
    let parts = b.sims[1].inject_sms("+380501234567", LONG_UK).unwrap();
    assert!(
        parts >= 2,
        "the test text must be multipart, got {parts} part(s)"
    );

    let conv = wait_for_async("the SMS in mgmt's API", Duration::from_secs(30), || async {
        conversations(&b)
            .into_iter()
            .find(|c| c["contact"]["address"] == "+380501234567")
    })
    .await;
    let id = conv["id"].as_str().unwrap().to_string();
    assert_eq!(conv["line"], "gsm1");
    let detail = get(&b, &format!("/api/v1/conversations/{id}"));
    let first = &detail["timeline"][0];
    assert_eq!(first["text"], LONG_UK, "reassembled text");
    assert_eq!(first["parts"], parts as u64);
    // Handed over and synced: deleted from the SIM.
    b.sims[1]
        .wait_until("the SIM to be empty", Duration::from_secs(20), |s| {
            s.stored().is_empty()
        })
        .await
        .unwrap();

    // The agent answers through the API; it goes out on the customer's line.
    let reply = "Дякуємо! Посилка 4711 вже у відділенні, чекаємо вас до 18:00. 📦";
    let body = serde_json::json!({ "text": reply }).to_string();
    let (status, resp) = http(
        "POST",
        b.mgmt.http_port,
        &format!("/api/v1/conversations/{id}/replies"),
        Some(&b.token),
        Some(&body),
    )
    .unwrap();
    assert_eq!(status, 202, "{resp}");
    let sent = b.sims[1]
        .wait_sent(1, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(sent[0].to, "+380501234567");
    assert_eq!(
        sent[0].text, reply,
        "decoded from the PDUs the modem received"
    );
    assert!(
        sent[0].parts.iter().all(|p| p.status_report),
        "delivery reports requested"
    );
    assert!(b.sims[0].sent().is_empty(), "nothing on the other line");

    // The simulated network's status report turns the reply to delivered.
    wait_for_async(
        "the reply to be delivered",
        Duration::from_secs(30),
        || async {
            let d = get(&b, &format!("/api/v1/conversations/{id}"));
            d["timeline"]
                .as_array()
                .unwrap()
                .iter()
                .find(|e| e["kind"] == "reply" && e["state"] == "delivered")
                .cloned()
        },
    )
    .await;
    assert!(b.app.sigterm());
    assert!(b.mgmt.sigterm());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_sms_at_the_same_instant_open_one_conversation() {
    let tmp = tempfile::tempdir().unwrap();
    let mut b = branch(tmp.path(), 3600).await;
    // Same customer, same instant, on both lines.
    b.sims[0].inject_sms("+380931112233", "Перше").unwrap();
    b.sims[1].inject_sms("0931112233", "Друге").unwrap();
    wait_for_async("both messages in mgmt", Duration::from_secs(30), || async {
        let t = inbound_texts(&b);
        (t.len() == 2).then_some(())
    })
    .await;
    let convs = conversations(&b);
    assert_eq!(
        convs.len(),
        1,
        "one conversation for one customer: {convs:?}"
    );
    assert_eq!(convs[0]["messages"], 2);
    assert!(b.app.sigterm());
    assert!(b.mgmt.sigterm());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_branch_auto_replies_once_and_a_killed_appliance_loses_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let mut b = branch(tmp.path(), 1).await;
    wait_for_async("the branch online", Duration::from_secs(30), || async {
        get(&b, "/api/v1/devices")
            .as_array()?
            .iter()
            .find(|d| d["id"] == "branch-1" && d["online"] == true)
            .cloned()
    })
    .await;

    // The uplink goes down until mgmt itself sees the branch offline.
    b.proxy.set_up(false);
    wait_for_async(
        "mgmt to see the branch offline",
        Duration::from_secs(30),
        || async {
            get(&b, "/api/v1/devices")
                .as_array()?
                .iter()
                .find(|d| d["id"] == "branch-1" && d["online"] == false)
                .cloned()
        },
    )
    .await;

    // The scenario needs the uplink down for longer than `offline.after_s`
    // (1 s): this wait is part of what is tested, not a synchronisation.
    tokio::time::sleep(Duration::from_secs(3)).await;

    // Two messages from one customer, one from another: two auto-replies.
    b.sims[0]
        .inject_sms("+380501110000", "Доброго дня, ви працюєте?")
        .unwrap();
    let first = b.sims[0]
        .wait_sent(1, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(first[0].to, "+380501110000");
    assert!(
        first[0].text.starts_with("Дякуємо"),
        "Ukrainian auto-reply: {}",
        first[0].text
    );
    b.sims[0].inject_sms("+380501110000", "Алло?").unwrap();
    b.sims[0]
        .inject_sms("+447700900555", "Hello, anyone there?")
        .unwrap();
    let sent = b.sims[0]
        .wait_sent(2, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(sent[1].to, "+447700900555");
    assert!(sent[1].text.starts_with("Thanks"), "{}", sent[1].text);

    // SIGKILL between receiving and syncing: the messages are in the
    // appliance's log (and still on the SIM), not yet at mgmt.
    b.sims[0]
        .wait_until(
            "the SIM to hold the unsynced messages",
            Duration::from_secs(10),
            |s| s.stored().len() == 3,
        )
        .await
        .unwrap();
    b.app.sigkill();
    b.app.start();
    b.proxy.set_up(true);

    wait_for_async(
        "all three messages at mgmt",
        Duration::from_secs(60),
        || async { (inbound_texts(&b).len() >= 3).then_some(()) },
    )
    .await;
    // Settle: the SIM is emptied only after the sync, then nothing more arrives.
    b.sims[0]
        .wait_until(
            "the SIM to be empty after the sync",
            Duration::from_secs(30),
            |s| s.stored().is_empty(),
        )
        .await
        .unwrap();
    let mut texts = inbound_texts(&b);
    texts.sort();
    assert_eq!(
        texts,
        vec!["Hello, anyone there?", "Алло?", "Доброго дня, ви працюєте?"],
        "nothing lost, nothing twice"
    );
    assert_eq!(
        b.sims[0].sent().len(),
        2,
        "auto-replies not repeated after the restart"
    );
    // The auto-replies reached mgmt as part of the conversations.
    let convs = conversations(&b);
    assert_eq!(convs.len(), 2);
    assert!(b.app.sigterm());
    assert!(b.mgmt.sigterm());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_command_delivered_twice_sends_one_sms() {
    use rumqttc::{AsyncClient, MqttOptions, QoS};
    let tmp = tempfile::tempdir().unwrap();
    let mut b = branch(tmp.path(), 3600).await;
    wait_for_async("the branch online", Duration::from_secs(30), || async {
        get(&b, "/api/v1/devices")
            .as_array()?
            .iter()
            .find(|d| d["id"] == "branch-1" && d["online"] == true)
            .cloned()
    })
    .await;
    // Play mgmt's dispatcher: publish one command twice, then another.
    let svc = std::fs::read_to_string(b.mgmt.data.join("mgmt.secret")).unwrap();
    let mut o = MqttOptions::new("test-dispatcher", "127.0.0.1", b.mgmt.mqtt_port);
    o.set_credentials("mgmt", svc.trim());
    let (client, mut ev) = AsyncClient::new(o, 16);
    tokio::spawn(async move { while ev.poll().await.is_ok() {} });
    let cmd = |id: &str, text: &str| {
        serde_json::json!({"v":1,"id":id,"kind":{"type":"send_sms","line":"gsm0","to":"+380501234567","text":text}}).to_string()
    };
    let topic = "crossline/v1/d/branch-1/cmd";
    let once = "01936a5e-0000-7000-8000-000000000001";
    let control = "01936a5e-0000-7000-8000-000000000002";
    client
        .publish(topic, QoS::AtLeastOnce, false, cmd(once, "Один раз"))
        .await
        .unwrap();
    client
        .publish(topic, QoS::AtLeastOnce, false, cmd(once, "Один раз"))
        .await
        .unwrap();
    client
        .publish(topic, QoS::AtLeastOnce, false, cmd(control, "Контроль"))
        .await
        .unwrap();
    let sent = b.sims[0]
        .wait_sent(2, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(sent[0].text, "Один раз");
    assert_eq!(sent[1].text, "Контроль");
    // The control came after the duplicate: had the duplicate been sent, it
    // would be here by now.
    assert_eq!(b.sims[0].sent().len(), 2, "{:?}", b.sims[0].sent());
    assert!(b.app.sigterm());
    assert!(b.mgmt.sigterm());
}
