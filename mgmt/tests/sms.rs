//! SMS end to end inside one process: a real mgmt (embedded broker, SQLite,
//! HTTP on free ports) and a device played by a rumqttc client.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{Mgmt, http, sent, status};
use crossline_core::{ConversationId, DeliveryState, EventBody, NodeId};
use crossline_mgmt::services::contacts::address::Region;
use crossline_mgmt::storage::sqlite::projection as conversations;
use crossline_proto::CommandKind;
use crossline_store::{EventLog, NewEvent, Schema, SqliteStore, StoreOptions};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn id_of(v: &Value) -> String {
    v["id"].as_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inbound_cyrillic_sms_national_number_and_alphanumeric_sender() {
    let m = Mgmt::start().await;
    let mut dev = m.device("branch-kyiv").await;
    dev.sms("gsm0", "+380501234567", "Добрий день, коли ви відчинені?")
        .await;
    let list = m.wait_list("", |l| l.len() == 1).await;
    let c = &list[0];
    assert_eq!(c["status"], "open");
    assert_eq!(c["device"], "branch-kyiv");
    assert_eq!(c["line"], "gsm0");
    assert_eq!(c["contact"]["kind"], "phone");
    assert_eq!(c["contact"]["address"], "+380501234567");
    assert_eq!(c["last_message_preview"], "Добрий день, коли ви відчинені?");
    assert_eq!(c["unread"], 1);

    // The same customer writing as a national number (region UA) joins it.
    dev.sms("gsm1", "0501234567", "Ще питання").await;
    let conv = m
        .wait_conversation(&id_of(c), |v| v["timeline"].as_array().unwrap().len() == 2)
        .await;
    assert_eq!(conv["timeline"][0]["kind"], "inbound");
    assert_eq!(
        conv["timeline"][0]["text"],
        "Добрий день, коли ви відчинені?"
    );
    assert_eq!(conv["timeline"][1]["text"], "Ще питання");
    assert_eq!(conv["timeline"][1]["address"], "0501234567");
    // Replies go back on the line the customer last wrote to.
    assert_eq!(conv["line"], "gsm1");
    assert_eq!(conv["unread"], 2);

    // An alphanumeric sender is its own contact, kept as received, and
    // cannot be replied to.
    dev.sms("gsm0", "Kyivstar", "Ваш баланс 10 грн").await;
    let list = m.wait_list("", |l| l.len() == 2).await;
    let alpha = list
        .iter()
        .find(|c| c["contact"]["kind"] == "alphanumeric")
        .unwrap();
    assert_eq!(alpha["contact"]["address"], "Kyivstar");
    // Newest activity first.
    assert_eq!(list[0]["id"], alpha["id"]);
    let (s, e) = m
        .post(
            &format!("/api/v1/conversations/{}/replies", id_of(alpha)),
            r#"{"text":"hi"}"#,
        )
        .await;
    assert_eq!(s, 422, "{e}");
    assert_eq!(e["error"], "not_replyable");

    // Filters.
    let (_, by_number) = m.get("/api/v1/conversations?number=0501234567").await;
    assert_eq!(by_number["conversations"].as_array().unwrap().len(), 1);
    assert_eq!(by_number["conversations"][0]["id"], c["id"]);
    let (_, by_sender) = m.get("/api/v1/conversations?sender=Kyivstar").await;
    assert_eq!(by_sender["conversations"][0]["id"], alpha["id"]);
    let (_, other_dev) = m.get("/api/v1/conversations?device=elsewhere").await;
    assert!(other_dev["conversations"].as_array().unwrap().is_empty());
    // Paging with a cursor walks both, newest first, once each.
    let (_, p1) = m.get("/api/v1/conversations?limit=1").await;
    let cur = p1["next_cursor"].as_str().unwrap().to_string();
    let (_, p2) = m
        .get(&format!("/api/v1/conversations?limit=1&cursor={cur}"))
        .await;
    assert_eq!(p1["conversations"][0]["id"], alpha["id"]);
    assert_eq!(p2["conversations"][0]["id"], c["id"]);
    assert!(p2.get("next_cursor").is_none());
    m.stop().await;
}

/// Two devices deliver an SMS from the same number at the same instant:
/// their batches are ingested concurrently (one group commit), and the
/// projector, serialised on the writer, opens one conversation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simultaneous_sms_from_one_number_open_one_conversation() {
    let m = Mgmt::start().await;
    let mut a = m.device("branch-a").await;
    let mut b = m.device("branch-b").await;
    let ea = a.event(common::sms("gsm0", "+380671112233", "перше"));
    let eb = b.event(common::sms("gsm0", "0671112233", "друге"));
    tokio::join!(a.publish(vec![ea]), b.publish(vec![eb]));
    let list = m
        .wait_list("", |l| l.first().is_some_and(|c| c["messages"] == 2))
        .await;
    assert_eq!(list.len(), 1, "{list:?}");
    m.stop().await;
}

/// The same race straight at the store, many times over: concurrent ingests
/// from many origins, one contact, exactly one conversation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_ingests_never_open_two_conversations() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open_with(
        &dir.path().join("m.db"),
        NodeId::new("mgmt").unwrap(),
        StoreOptions {
            schema: Schema::Mgmt,
            projector: Some(conversations::projector(Region::default())),
            ..Default::default()
        },
    )
    .unwrap();
    let mut jobs = tokio::task::JoinSet::new();
    for i in 0..40 {
        let st = store.clone();
        jobs.spawn(async move {
            let origin = NodeId::new(format!("dev-{i}")).unwrap();
            let ev = crossline_core::Event {
                id: crossline_core::EventId::new(),
                origin: origin.clone(),
                seq: 1,
                at: crossline_core::Hlc { ms: 1, c: 0 },
                conversation: None,
                body: common::sms(
                    "gsm0",
                    if i % 2 == 0 {
                        "+380931234567"
                    } else {
                        "0931234567"
                    },
                    "x",
                ),
            };
            st.ingest(&origin, vec![ev]).await.unwrap()
        });
    }
    while let Some(r) = jobs.join_next().await {
        assert_eq!(r.unwrap().stored, 1);
    }
    let (convs, msgs): (i64, i64) = store
        .read(|c| {
            c.query_row(
                "SELECT count(*), sum(messages) FROM conversation",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
        })
        .await
        .unwrap();
    assert_eq!((convs, msgs), (1, 40));
    store.close().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reply_reaches_device_is_resent_on_hello_and_shows_delivery() {
    let m = Mgmt::start().await;
    let mut dev = m.device("branch-lviv").await;
    dev.sms("gsm1", "0501234567", "Доброго ранку").await;
    let list = m.wait_list("", |l| l.len() == 1).await;
    let cid = id_of(&list[0]);
    let text = "Дякуємо! Ми відкриті з 9:00 до 18:00. ".repeat(2);
    let (s, r) = m
        .post(
            &format!("/api/v1/conversations/{cid}/replies"),
            &json!({ "text": text }).to_string(),
        )
        .await;
    assert_eq!(s, 202, "{r}");
    assert_eq!(r["line"], "gsm1");
    assert_eq!(r["to"], "+380501234567");
    assert_eq!(r["parts"], 2);
    assert_eq!(r["state"], "pending");

    let cmd = dev.next_command().await;
    assert_eq!(cmd.id.to_string(), r["id"].as_str().unwrap());
    let CommandKind::SendSms { line, to, text: t } = &cmd.kind else {
        panic!("not an SMS command: {cmd:?}")
    };
    assert_eq!(
        (line.as_str(), to.as_str(), t.as_str()),
        ("gsm1", "+380501234567", text.as_str())
    );

    // The device reconnects (Hello) before confirming: the command comes again.
    dev.hello().await;
    let again = dev.next_command().await;
    assert_eq!(again.id, cmd.id);

    let conv = m.wait_conversation(&cid, |_| true).await;
    let reply = &conv["timeline"][1];
    assert_eq!(reply["kind"], "reply");
    assert_eq!(reply["state"], "pending");
    assert_eq!(conv["unread"], 0);

    // Sent in two parts, then both delivered.
    let e1 = dev.event(sent(&cmd, vec![7, 8]));
    dev.publish(vec![e1]).await;
    let conv = m
        .wait_conversation(&cid, |v| v["timeline"][1]["state"] == "sent")
        .await;
    assert_eq!(
        conv["timeline"][1]["part_states"].as_array().unwrap().len(),
        2
    );
    let e2 = dev.event(status(&cmd, Some(1), DeliveryState::Delivered));
    let e3 = dev.event(status(&cmd, Some(2), DeliveryState::Delivered));
    dev.publish(vec![e2, e3]).await;
    let conv = m
        .wait_conversation(&cid, |v| v["timeline"][1]["state"] == "delivered")
        .await;
    let parts = conv["timeline"][1]["part_states"].as_array().unwrap();
    assert!(parts.iter().all(|p| p["state"] == "delivered"), "{parts:?}");
    assert_eq!(parts[0]["reference"], 7);

    // No longer pending: nothing is re-sent.
    let pending: i64 = m
        .running()
        .store
        .read(|c| c.query_row("SELECT count(*) FROM pending_command", [], |r| r.get(0)))
        .await
        .unwrap();
    assert_eq!(pending, 0);
    m.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_outcome_and_failure_are_shown() {
    let m = Mgmt::start().await;
    let mut dev = m.device("branch-x").await;
    dev.sms("gsm0", "+380501234567", "?").await;
    let cid = id_of(&m.wait_list("", |l| l.len() == 1).await[0]);
    let (s, _) = m
        .post(
            &format!("/api/v1/conversations/{cid}/replies"),
            r#"{"text":"a"}"#,
        )
        .await;
    assert_eq!(s, 202);
    let c1 = dev.next_command().await;
    let e = dev.event(EventBody::DeliveryStatus {
        command: c1.id,
        part: None,
        state: DeliveryState::Unknown,
        detail: Some("the appliance restarted while sending on gsm0".into()),
    });
    dev.publish(vec![e]).await;
    let conv = m
        .wait_conversation(&cid, |v| v["timeline"][1]["state"] == "unknown")
        .await;
    // no part is named: the whole message's reason is the reply's reason
    assert_eq!(
        conv["timeline"][1]["reason"],
        "the appliance restarted while sending on gsm0"
    );
    m.stop().await;
}

/// The readable cause the appliance logs for `+CMS ERROR: 500` (crossline-modem's table).
const CMS_500: &str =
    "the modem or network failed without giving a reason (+CMS ERROR 500: unknown error)";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_reply_says_why_per_part() {
    let m = Mgmt::start().await;
    let mut dev = m.device("branch-x").await;
    dev.sms("gsm0", "+380501234567", "?").await;
    let cid = id_of(&m.wait_list("", |l| l.len() == 1).await[0]);
    let reply = |text: &str| {
        let (m, cid) = (&m, &cid);
        let body = json!({ "text": text }).to_string();
        async move {
            let (s, r) = m
                .post(&format!("/api/v1/conversations/{cid}/replies"), &body)
                .await;
            assert_eq!(s, 202, "{r}");
        }
    };

    // The modem refused the only part: failed, with the modem's reason.
    reply("a").await;
    let c1 = dev.next_command().await;
    let e = dev.event(EventBody::DeliveryStatus {
        command: c1.id,
        part: Some(1),
        state: DeliveryState::Failed,
        detail: Some(CMS_500.into()),
    });
    dev.publish(vec![e]).await;
    let conv = m
        .wait_conversation(&cid, |v| v["timeline"][1]["state"] == "failed")
        .await;
    let r = &conv["timeline"][1];
    assert_eq!(r["reason"], CMS_500);
    assert_eq!(
        r["part_states"],
        json!([{ "part": 1, "state": "failed", "detail": CMS_500 }])
    );

    // Two parts went out; the network delivered one, the other never got a
    // report: each part says so, the reply is `no_report` with the reason.
    reply("b").await;
    let c2 = dev.next_command().await;
    let no_report = "no delivery report: message reference 8 on gsm0 was reused by a later \
                     message to the same number before a report came";
    let evs = vec![
        dev.event(sent(&c2, vec![7, 8])),
        dev.event(status(&c2, Some(1), DeliveryState::Delivered)),
        dev.event(EventBody::DeliveryStatus {
            command: c2.id,
            part: Some(2),
            state: DeliveryState::NoReport,
            detail: Some(no_report.into()),
        }),
    ];
    dev.publish(evs).await;
    let conv = m
        .wait_conversation(&cid, |v| v["timeline"][2]["state"] == "no_report")
        .await;
    let r = &conv["timeline"][2];
    assert_eq!(r["reason"], no_report);
    assert_eq!(
        r["part_states"],
        json!([
            { "part": 1, "state": "delivered", "reference": 7 },
            { "part": 2, "state": "no_report", "reference": 8, "detail": no_report }
        ])
    );
    // a delivered reply has no reason
    reply("c").await;
    let c3 = dev.next_command().await;
    let evs = vec![
        dev.event(sent(&c3, vec![9])),
        dev.event(status(&c3, Some(1), DeliveryState::Delivered)),
    ];
    dev.publish(evs).await;
    let conv = m
        .wait_conversation(&cid, |v| v["timeline"][3]["state"] == "delivered")
        .await;
    assert!(conv["timeline"][3].get("reason").is_none(), "{conv}");
    m.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resolved_conversation_stays_resolved_and_a_new_one_opens() {
    let m = Mgmt::start().await;
    let mut dev = m.device("branch-r").await;
    dev.sms("gsm0", "+380501234567", "перше").await;
    let first = id_of(&m.wait_list("", |l| l.len() == 1).await[0]);
    let (s, v) = m
        .post(&format!("/api/v1/conversations/{first}/resolve"), "")
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["status"], "resolved");
    // Resolving twice is harmless.
    let (s, _) = m
        .post(&format!("/api/v1/conversations/{first}/resolve"), "")
        .await;
    assert_eq!(s, 200);

    dev.sms("gsm0", "+380501234567", "знову я").await;
    let list = m.wait_list("", |l| l.len() == 2).await;
    let second = id_of(&list[0]);
    assert_ne!(second, first);
    assert_eq!(list[0]["status"], "open");
    let (_, open) = m.get("/api/v1/conversations?status=open").await;
    assert_eq!(open["conversations"].as_array().unwrap().len(), 1);
    let old = m.wait_conversation(&first, |_| true).await;
    assert_eq!(old["status"], "resolved");
    assert_eq!(old["timeline"][1]["kind"], "resolved");

    // Reopening the old one while the new one is open is refused.
    let (s, e) = m
        .post(&format!("/api/v1/conversations/{first}/reopen"), "")
        .await;
    assert_eq!(s, 409, "{e}");
    assert_eq!(e["error"], "conflict");
    // After resolving the new one, the old one can be reopened.
    let (s, _) = m
        .post(&format!("/api/v1/conversations/{second}/resolve"), "")
        .await;
    assert_eq!(s, 200);
    let (s, v) = m
        .post(&format!("/api/v1/conversations/{first}/reopen"), "")
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["status"], "open");
    m.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_clear_errors() {
    let m = Mgmt::start().await;
    let mut dev = m.device("branch-e").await;
    dev.sms("gsm0", "+380501234567", "hi").await;
    let cid = id_of(&m.wait_list("", |l| l.len() == 1).await[0]);
    let replies = format!("/api/v1/conversations/{cid}/replies");

    let (s, body) = http(&m.http, "GET", "/api/v1/conversations", None, None).await;
    assert_eq!(s, 401);
    assert!(String::from_utf8_lossy(&body).contains("unauthorized"));
    let (s, _) = http(&m.http, "GET", "/api/v1/conversations", Some("wrong"), None).await;
    assert_eq!(s, 401);

    let (s, e) = m
        .get("/api/v1/conversations/0193a000-0000-7000-8000-000000000000")
        .await;
    assert_eq!((s, e["error"].as_str()), (404, Some("not_found")));
    let (s, _) = m.get("/api/v1/conversations/not-a-uuid").await;
    assert_eq!(s, 404);
    let (s, _) = m
        .post(
            "/api/v1/conversations/0193a000-0000-7000-8000-000000000000/replies",
            r#"{"text":"x"}"#,
        )
        .await;
    assert_eq!(s, 404);

    let (s, e) = m.post(&replies, r#"{"text":"   "}"#).await;
    assert_eq!((s, e["error"].as_str()), (422, Some("empty_text")));
    let long = "a".repeat(1531);
    let (s, e) = m.post(&replies, &json!({ "text": long }).to_string()).await;
    assert_eq!(
        (s, e["error"].as_str()),
        (422, Some("text_too_long")),
        "{e}"
    );
    let ok = "a".repeat(1530);
    let (s, e) = m.post(&replies, &json!({ "text": ok }).to_string()).await;
    assert_eq!(s, 202, "1530 GSM characters are 10 parts: {e}");
    let cyr = "ж".repeat(671);
    let (s, e) = m.post(&replies, &json!({ "text": cyr }).to_string()).await;
    assert_eq!((s, e["error"].as_str()), (422, Some("text_too_long")));

    let (s, e) = m.post(&replies, r#"{"text":"x","line":"gsm9"}"#).await;
    assert_eq!((s, e["error"].as_str()), (422, Some("unknown_line")));
    assert!(e["message"].as_str().unwrap().contains("gsm0"), "{e}");
    let (s, _) = m.post(&replies, r#"{"text":"x","line":"gsm0"}"#).await;
    assert_eq!(s, 202);

    let (s, e) = m.post(&replies, r#"{"text":"#).await;
    assert_eq!((s, e["error"].as_str()), (400, Some("bad_request")), "{e}");
    let (s, e) = m.post(&replies, r#"{"txt":"x"}"#).await;
    assert_eq!((s, e["error"].as_str()), (422, Some("invalid_body")), "{e}");
    let big = json!({ "text": "a".repeat(100 * 1024) }).to_string();
    let (s, e) = m.post(&replies, &big).await;
    assert_eq!(
        (s, e["error"].as_str()),
        (413, Some("payload_too_large")),
        "{e}"
    );

    let (s, e) = m.get("/api/v1/conversations?number=hello").await;
    assert_eq!((s, e["error"].as_str()), (400, Some("invalid_number")));
    let (s, _) = m.get("/api/v1/conversations?cursor=zzz").await;
    assert_eq!(s, 400);
    let (s, _) = m.get("/api/v1/conversations?status=maybe").await;
    assert_eq!(s, 400);
    m.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_document_is_public_and_lists_the_paths() {
    let m = Mgmt::start().await;
    // As the README and the demo banner show it: no token.
    let (s, body) = http(&m.http, "GET", "/api/v1/openapi.json", None, None).await;
    assert_eq!(s, 200, "{}", String::from_utf8_lossy(&body));
    let doc: serde_json::Value = serde_json::from_slice(&body).unwrap();
    // It grants nothing: the API it describes still needs the token.
    let (s, _) = http(&m.http, "GET", "/api/v1/conversations", None, None).await;
    assert_eq!(s, 401);
    assert!(doc["openapi"].as_str().unwrap().starts_with('3'));
    for p in [
        "/api/v1/conversations",
        "/api/v1/conversations/{id}",
        "/api/v1/conversations/{id}/replies",
        "/api/v1/conversations/{id}/resolve",
        "/api/v1/conversations/{id}/reopen",
        "/api/v1/stream",
        "/api/v1/openapi.json",
        "/api/v1/devices",
        "/api/v1/events",
        "/api/v1/fleet/devices",
        "/api/v1/fleet/enrollments",
        "/api/v1/fleet/devices/{id}/commands",
    ] {
        assert!(doc["paths"].get(p).is_some(), "{p} missing");
    }
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
    assert!(doc["components"]["schemas"]["ReplyRequest"].is_object());
    m.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_announces_a_new_conversation() {
    let m = Mgmt::start().await;
    let mut dev = m.device("branch-s").await;
    let (mut s, mut got) = open_stream(&m).await;
    let e = dev.sms("gsm0", "+380501234567", "Привіт").await;
    let text = read_until(&mut s, &mut got, "event: conversation").await;
    assert!(text.contains("event: message"), "{text}");
    assert!(text.contains(&e.id.to_string()), "{text}");
    assert!(
        text.contains("\"last_message_preview\":\"Привіт\""),
        "{text}"
    );
    m.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_far_beyond_live_updates_is_one_lagged_notice_then_live_again() {
    // A branch's backlog arrives at once (a day offline): far more events
    // than live updates should read one by one. The stream says `lagged`
    // (pages refetch) instead of announcing each, and a message after the
    // burst is announced at once, not behind it.
    let m = Mgmt::start().await;
    let mut dev = m.device("branch-burst").await;
    let (mut s, mut got) = open_stream(&m).await;
    let n = 3 * crossline_mgmt::live::SKIP_BEHIND;
    let burst: Vec<crossline_core::Event> = (0..n)
        .map(|i| {
            dev.event(common::sms(
                "gsm0",
                &format!("+38050{:07}", i % 2_000),
                "backlog",
            ))
        })
        .collect();
    let first = burst[0].id.to_string();
    let last = burst[burst.len() - 1].id.to_string();
    let out = m.running().store.ingest(&dev.id, burst).await.unwrap();
    assert_eq!(out.contiguous, n);
    read_until(&mut s, &mut got, "event: lagged").await;
    let e = dev.event(common::sms("gsm0", "+380501234567", "after the burst"));
    m.running()
        .store
        .ingest(&dev.id, vec![e.clone()])
        .await
        .unwrap();
    let text = read_until(&mut s, &mut got, &e.id.to_string()).await;
    let lagged = text.find("event: lagged").expect("a lagged notice");
    assert!(
        text[lagged..].contains("\"missed\":"),
        "the notice says how much was skipped: {text}"
    );
    assert!(
        !text.contains(&first) && !text.contains(&last),
        "the burst's messages are not announced one by one"
    );
    let messages = text.matches("event: message").count();
    assert!(
        messages <= 2,
        "only the message after the burst is announced ({messages} messages): {text}"
    );
    m.stop().await;
}

/// Opens `GET /api/v1/stream` and waits for the response head (the
/// subscription exists from then on); what was read so far is returned.
async fn open_stream(m: &Mgmt) -> (tokio::net::TcpStream, Vec<u8>) {
    let mut s = tokio::net::TcpStream::connect(&m.http).await.unwrap();
    s.write_all(
        format!(
            "GET /api/v1/stream HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n\r\n",
            m.token
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    let mut got = Vec::new();
    let head = read_until(&mut s, &mut got, "\r\n\r\n").await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(head.contains("text/event-stream"), "{head}");
    (s, got)
}

/// Reads from `s` into `got` until it contains `needle`, within the deadline.
async fn read_until(s: &mut tokio::net::TcpStream, got: &mut Vec<u8>, needle: &str) -> String {
    let deadline = tokio::time::Instant::now() + common::DEADLINE;
    loop {
        let t = String::from_utf8_lossy(got).to_string();
        if t.contains(needle) {
            return t;
        }
        let mut buf = [0u8; 4096];
        match tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
            Ok(Ok(0)) => panic!("stream closed before {needle:?}: {t}"),
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
            Ok(Err(e)) => panic!("reading the stream: {e}"),
            Err(_) => panic!("no {needle:?} within the deadline: {t}"),
        }
    }
}

/// mgmt's own events (replies, resolve) carry the conversation; rebuilding
/// the projections from the log gives the same conversations and ids.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn projections_are_rebuilt_identically_from_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let open = |p: &std::path::Path| {
        SqliteStore::open_with(
            p,
            NodeId::new("mgmt").unwrap(),
            StoreOptions {
                schema: Schema::Mgmt,
                projector: Some(conversations::projector(Region::default())),
                ..Default::default()
            },
        )
        .unwrap()
    };
    let a = open(&dir.path().join("a.db"));
    let dev = NodeId::new("dev").unwrap();
    let mk = |seq: u64, body: EventBody| crossline_core::Event {
        id: crossline_core::EventId::new(),
        origin: dev.clone(),
        seq,
        at: crossline_core::Hlc { ms: seq, c: 0 },
        conversation: None,
        body,
    };
    let evs = vec![
        mk(1, common::sms("gsm0", "+380501234567", "a")),
        mk(2, common::sms("gsm0", "Bank", "b")),
    ];
    a.ingest(&dev, evs.clone()).await.unwrap();
    let conv = evs[0].id.0;
    a.append(vec![NewEvent {
        conversation: Some(ConversationId(conv)),
        body: EventBody::ConversationResolved { by: None },
    }])
    .await
    .unwrap();
    let snapshot = |s: &SqliteStore| {
        s.read(|c| {
            let mut st = c.prepare("SELECT id, status, messages FROM conversation ORDER BY id")?;
            st.query_map([], |r| {
                Ok(format!(
                    "{}/{}/{}",
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, i64>(2)?
                ))
            })?
            .collect::<rusqlite::Result<Vec<_>>>()
        })
    };
    let before = snapshot(&a).await.unwrap();
    assert_eq!(before.len(), 2);
    // Replay the log into a fresh database.
    let b = open(&dir.path().join("b.db"));
    b.ingest(&dev, a.read_from(&dev, 1, 100).await.unwrap())
        .await
        .unwrap();
    let mine = a
        .read_from(&NodeId::new("mgmt").unwrap(), 1, 100)
        .await
        .unwrap();
    // mgmt's own events are re-applied through the projector directly.
    let region = Region::default();
    b.write(move |tx| {
        for e in &mine {
            conversations::project(tx, e, region)?;
        }
        Ok(())
    })
    .await
    .unwrap();
    assert_eq!(snapshot(&b).await.unwrap(), before);
    a.close().unwrap();
    b.close().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appliance_auto_reply_shows_in_the_conversation() {
    let m = Mgmt::start().await;
    let mut dev = m.device("branch-off").await;
    dev.sms("gsm0", "0501234567", "ви працюєте?").await;
    let cid = id_of(&m.wait_list("", |l| l.len() == 1).await[0]);
    let e = dev.event(EventBody::MessageSent {
        channel: crossline_core::Channel::Sms,
        line: "gsm0".into(),
        to: "0501234567".into(),
        text: "Ми зараз офлайн, відповімо пізніше".into(),
        command: crossline_core::EventId::new(),
        refs: vec![3],
        auto_reply: true,
    });
    dev.publish(vec![e]).await;
    let conv = m
        .wait_conversation(&cid, |v| v["timeline"].as_array().unwrap().len() == 2)
        .await;
    let r = &conv["timeline"][1];
    assert_eq!(r["kind"], "reply");
    assert_eq!(r["author"], "auto-reply");
    assert_eq!(r["state"], "sent");
    assert_eq!(
        conv["last_message_preview"],
        "Ми зараз офлайн, відповімо пізніше"
    );
    m.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unconfirmed_command_is_published_again_periodically() {
    let m = Mgmt::start_with("[mqtt]\ncommand_resend_s = 1\n").await;
    let mut dev = m.device("branch-p").await;
    dev.sms("gsm0", "+380501234567", "?").await;
    let cid = id_of(&m.wait_list("", |l| l.len() == 1).await[0]);
    let (s, _) = m
        .post(
            &format!("/api/v1/conversations/{cid}/replies"),
            r#"{"text":"ok"}"#,
        )
        .await;
    assert_eq!(s, 202);
    let first = dev.next_command().await;
    // No Hello, no confirmation: the timer publishes it again.
    let again = dev.next_command().await;
    assert_eq!(again.id, first.id);
    // Once the appliance reports it sent, it is no longer pending.
    let e = dev.event(sent(&first, vec![1]));
    dev.publish(vec![e]).await;
    m.wait_conversation(&cid, |v| v["timeline"][1]["state"] == "sent")
        .await;
    let pending: i64 = m
        .running()
        .store
        .read(|c| c.query_row("SELECT count(*) FROM pending_command", [], |r| r.get(0)))
        .await
        .unwrap();
    assert_eq!(pending, 0);
    m.stop().await;
}

/// A command is kept in the database until the appliance confirms it: after
/// an mgmt restart the device's Hello brings it again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pending_command_survives_an_mgmt_restart() {
    let m = Mgmt::start().await;
    let mut dev = m.device("branch-z").await;
    dev.sms("gsm0", "+380501234567", "?").await;
    let cid = id_of(&m.wait_list("", |l| l.len() == 1).await[0]);
    let (s, r) = m
        .post(
            &format!("/api/v1/conversations/{cid}/replies"),
            r#"{"text":"так"}"#,
        )
        .await;
    assert_eq!(s, 202, "{r}");
    let first = dev.next_command().await;
    drop(dev);
    let m = m.restart().await;
    let mut dev = m.device("branch-z").await;
    let again = dev.next_command().await;
    assert_eq!(again.id, first.id);
    let conv = m.wait_conversation(&cid, |_| true).await;
    assert_eq!(conv["timeline"][1]["state"], "pending");
    m.stop().await;
}
