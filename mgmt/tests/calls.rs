//! Calls on branch lines in mgmt (docs/ARCHITECTURE.md, "Calls";
//! docs/PROTOCOL.md, "Calls" and "Trust"): a call joins the conversation of
//! the SMS from the same number, with its IVR choices, voicemail and end;
//! a withheld caller gets a conversation of its own; a device speaks only
//! of its own calls.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{Mgmt, wait_for};
use crossline_core::{CallEndCause, CallId, EventBody, RecordingId};
use serde_json::Value;

fn ringing(call: CallId, from: Option<&str>) -> EventBody {
    ringing_on("gsm0", call, from)
}

fn ringing_on(line: &str, call: CallId, from: Option<&str>) -> EventBody {
    EventBody::CallRinging {
        call,
        line: line.into(),
        from: from.map(str::to_string),
        name: None,
        withheld: from.is_none(),
        to: None,
    }
}

fn ended(call: CallId, duration_ms: u64, cause: CallEndCause) -> EventBody {
    EventBody::CallEnded {
        call,
        duration_ms,
        ring_ms: 3_000,
        cause,
    }
}

/// The kind each stored event of `device` was stored as, in seq order.
async fn kinds(m: &Mgmt, device: &str) -> Vec<String> {
    let (_, v) = m
        .get(&format!("/api/v1/events?device={device}&limit=50"))
        .await;
    let mut evs = v.as_array().unwrap().clone();
    evs.sort_by_key(|e| e["seq"].as_u64());
    evs.iter()
        .map(|e| e["body"]["type"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_joins_the_conversation_of_the_sms_from_the_same_number() {
    let m = Mgmt::start().await;
    let mut branch = m.device("branch-1").await;
    // The SMS and the CLIP name one number: one contact.
    branch
        .sms("gsm0", "+380501234567", "Is my order ready?")
        .await;
    let cid = m.wait_list("", |l| l.len() == 1).await[0]["id"]
        .as_str()
        .unwrap()
        .to_string();

    let call = CallId::new();
    let recording = RecordingId::new();
    let evs = vec![
        branch.event(ringing(call, Some("+380501234567"))),
        branch.event(EventBody::CallAnswered {
            call,
            by: "ivr".into(),
        }),
        branch.event(EventBody::IvrChoice {
            call,
            menu: "main".into(),
            digit: "2".into(),
            action: "voicemail".into(),
        }),
        branch.event(EventBody::VoicemailRecorded {
            call,
            recording,
            duration_ms: 6_500,
            bytes: 104_044,
            sha256: "0f".repeat(32),
        }),
        branch.event(ended(call, 21_000, CallEndCause::CallerHungUp)),
    ];
    branch.publish(evs).await;

    let conv = m
        .wait_conversation(&cid, |v| v["calls"][0]["cause"] == "caller_hung_up")
        .await;
    let list = m.wait_list("", |l| !l.is_empty()).await;
    assert_eq!(list.len(), 1, "no second conversation: {list:?}");
    let c = &conv["calls"][0];
    assert_eq!(c["id"], call.to_string());
    assert_eq!(c["line"], "gsm0");
    assert_eq!(c["device"], "branch-1");
    assert_eq!(c["caller"], "+380501234567");
    assert_eq!(c["answered_by"], "ivr");
    assert_eq!(c["duration_ms"], 21_000);
    assert_eq!(c["ring_ms"], 3_000);
    let steps = c["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 2, "{steps:?}");
    assert_eq!(steps[0]["kind"], "ivr_choice");
    assert_eq!(steps[0]["digit"], "2");
    assert_eq!(steps[1]["kind"], "voicemail");
    assert_eq!(steps[1]["recording"], recording.to_string());
    assert_eq!(steps[1]["duration_ms"], 6_500);
    // The SMS is still there, beside the call.
    assert_eq!(conv["timeline"][0]["text"], "Is my order ready?");

    // A call on the analog line does not move where a written reply goes:
    // that stays the line the customer wrote to.
    let analog = CallId::new();
    let evs = vec![
        branch.event(ringing_on("fxo0", analog, Some("+380501234567"))),
        branch.event(ended(analog, 0, CallEndCause::Missed)),
    ];
    branch.publish(evs).await;
    let conv = m
        .wait_conversation(&cid, |v| {
            v["calls"].as_array().is_some_and(|c| c.len() == 2)
        })
        .await;
    assert_eq!(conv["calls"][1]["line"], "fxo0");
    assert_eq!(conv["channel"], "sms", "{conv}");
    assert_eq!(conv["line"], "gsm0", "{conv}");
    m.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missed_call_from_a_new_number_opens_a_voice_conversation_and_a_withheld_one_its_own() {
    let m = Mgmt::start().await;
    let mut branch = m.device("branch-1").await;
    let (known, withheld) = (CallId::new(), CallId::new());
    let evs = vec![
        branch.event(ringing(known, Some("+380671112233"))),
        branch.event(ended(known, 0, CallEndCause::Missed)),
        branch.event(ringing(withheld, None)),
        branch.event(ended(withheld, 0, CallEndCause::Missed)),
    ];
    branch.publish(evs).await;
    let list = m.wait_list("", |l| l.len() == 2).await;
    for c in &list {
        assert_eq!(c["channel"], "voice", "{c}");
        assert_eq!(c["line"], "gsm0", "{c}");
    }
    let addresses: Vec<&str> = list
        .iter()
        .map(|c| c["contact"]["address"].as_str().unwrap_or(""))
        .collect();
    assert!(addresses.contains(&"+380671112233"), "{addresses:?}");

    // A later SMS from the number that called joins the call's conversation
    // and is where a written reply goes from then on: its channel and line.
    branch.sms("gsm1", "+380671112233", "You called?").await;
    let id = list
        .iter()
        .find(|c| c["contact"]["address"] == "+380671112233")
        .map(|c| c["id"].as_str().unwrap().to_string())
        .unwrap();
    let conv = m
        .wait_conversation(&id, |v| {
            v["timeline"].as_array().is_some_and(|t| !t.is_empty())
        })
        .await;
    assert_eq!(conv["calls"][0]["cause"], "missed");
    assert_eq!(conv["calls"][0]["duration_ms"], 0);
    assert_eq!(conv["channel"], "sms", "{conv}");
    assert_eq!(conv["line"], "gsm1", "{conv}");
    let (s, v) = m
        .post(
            &format!("/api/v1/conversations/{id}/replies"),
            r#"{"text": "Yes, we called about your order"}"#,
        )
        .await;
    assert_eq!(s, 202, "{v}");
    assert_eq!(v["channel"], "sms");
    assert_eq!(v["line"], "gsm1");
    assert_eq!(m.wait_list("", |l| l.len() == 2).await.len(), 2);

    let other = list
        .iter()
        .find(|c| c["contact"]["address"] != "+380671112233")
        .unwrap();
    let conv = m
        .wait_conversation(other["id"].as_str().unwrap(), |v| {
            v["calls"][0]["cause"] == "missed"
        })
        .await;
    assert_eq!(conv["calls"][0]["withheld"], true);
    assert!(conv["calls"][0].get("caller").is_none(), "{conv}");
    m.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_speaks_only_of_its_own_calls() {
    let m = Mgmt::start().await;
    let mut good = m.device("branch-good").await;
    let mut rogue = m.device("branch-rogue").await;
    let call = CallId::new();
    let e = good.event(ringing(call, Some("+380501234567")));
    good.publish(vec![e]).await;
    wait_for(|| async { (kinds(&m, "branch-good").await.len() == 1).then_some(()) }).await;

    let never_rang = CallId::new();
    let forged = vec![
        // Another device's call: neither ended nor restarted by the rogue.
        rogue.event(ended(call, 1, CallEndCause::Failed)),
        rogue.event(ringing(call, Some("+380501234567"))),
        // A call that never rang.
        rogue.event(EventBody::CallbackRequested {
            call: never_rang,
            number: "+380501234567".into(),
        }),
    ];
    rogue.publish(forged).await;
    // Its own call, ringing and ended in one batch, is accepted.
    let own = CallId::new();
    let evs = vec![
        rogue.event(ringing(own, Some("+380931234567"))),
        rogue.event(ended(own, 0, CallEndCause::Missed)),
    ];
    rogue.publish(evs).await;
    let stored = wait_for(|| async {
        let k = kinds(&m, "branch-rogue").await;
        (k.len() == 5).then_some(k)
    })
    .await;
    assert_eq!(
        stored,
        [
            "refused",
            "refused",
            "refused",
            "call_ringing",
            "call_ended"
        ]
    );
    let (_, v) = m.get("/api/v1/events?device=branch-rogue&limit=50").await;
    let reasons: Vec<String> = v
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["body"]["reason"].as_str().map(str::to_string))
        .collect();
    assert!(
        reasons
            .iter()
            .any(|r| r.contains("rang on device branch-good")),
        "{reasons:?}"
    );
    assert!(
        reasons.iter().any(|r| r.contains("never rang")),
        "{reasons:?}"
    );

    // The good device's call is untouched and ends normally.
    let e = good.event(ended(call, 4_000, CallEndCause::CallerHungUp));
    good.publish(vec![e]).await;
    let list = m.wait_list("", |l: &Vec<Value>| l.len() == 2).await;
    let id = list
        .iter()
        .find(|c| c["device"] == "branch-good")
        .map(|c| c["id"].as_str().unwrap().to_string())
        .unwrap();
    let conv = m
        .wait_conversation(&id, |v| v["calls"][0]["cause"] == "caller_hung_up")
        .await;
    assert_eq!(conv["calls"][0]["duration_ms"], 4_000);
    m.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_desk_shows_the_call_card_with_its_voicemail_escaped() {
    let m = common::desk::setup().await;
    let mut branch = m.device("branch-1").await;
    branch
        .sms("gsm0", "+380501234567", "Is my order ready?")
        .await;
    let id = common::desk::routed(&m, "+380501234567").await;
    let call = CallId::new();
    let recording = RecordingId::new();
    let evs = vec![
        branch.event(EventBody::CallRinging {
            call,
            line: "gsm0".into(),
            from: Some("+380501234567".into()),
            name: Some("<script>alert(1)</script>".into()),
            withheld: false,
            to: None,
        }),
        branch.event(EventBody::CallAnswered {
            call,
            by: "ivr".into(),
        }),
        branch.event(EventBody::IvrChoice {
            call,
            menu: "main".into(),
            digit: "2".into(),
            action: "voicemail".into(),
        }),
        branch.event(EventBody::VoicemailRecorded {
            call,
            recording,
            duration_ms: 65_000,
            bytes: 1_040_044,
            sha256: "0f".repeat(32),
        }),
        branch.event(ended(call, 95_000, CallEndCause::CallerHungUp)),
    ];
    branch.publish(evs).await;
    m.wait_conversation(&id, |v| v["calls"][0]["cause"] == "caller_hung_up")
        .await;

    let sofia = common::desk::login(&m, "sofia", "sofia-password").await;
    let r = sofia.get(&format!("/desk/c/{id}/timeline")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let html = &r.body;
    assert!(
        html.contains(r#"data-testid="call-card" data-cause="caller_hung_up""#),
        "{html}"
    );
    assert!(html.contains("Incoming call"), "{html}");
    assert!(html.contains("+380501234567"), "{html}");
    assert!(
        html.contains("alert(1)") && html.contains("&#60;script&#62;")
            || html.contains("&lt;script&gt;"),
        "the caller's name is escaped: {html}"
    );
    assert!(!html.contains("<script>alert"), "{html}");
    assert!(html.contains("Menu main: pressed 2 (voicemail)"), "{html}");
    assert!(html.contains("Voicemail, 1:05"), "{html}");
    // The recording has not reached mgmt yet: no player that cannot play,
    // but word that it is on its way.
    assert!(html.contains("voicemail-arriving"), "{html}");
    assert!(
        !html.contains(&format!(r#"src="/recordings/{recording}""#)),
        "no player before the voicemail arrived: {html}"
    );
    assert!(html.contains("The caller hung up"), "{html}");
    assert!(
        html.contains(r#"data-testid="call-duration">1:35<"#),
        "{html}"
    );
    // The SMS is in the same timeline.
    assert!(html.contains("Is my order ready?"), "{html}");
    // It was written on SMS: the reply box is there.
    let page = sofia.get(&format!("/desk/c/{id}")).await.body;
    assert!(page.contains(r#"data-testid="reply-text""#), "{page}");

    // A caller who never wrote: nothing written to answer yet, and the desk
    // says so (not that SMS cannot reach a sender name).
    let only = CallId::new();
    let evs = vec![
        branch.event(ringing_on("gsm1", only, Some("+380671112233"))),
        branch.event(ended(only, 0, CallEndCause::Missed)),
    ];
    branch.publish(evs).await;
    // (routing does not route calls yet: read its id from the list)
    let voice = m
        .wait_list("?number=%2B380671112233", |l| l.len() == 1)
        .await[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let page = sofia.get(&format!("/desk/c/{voice}")).await.body;
    assert!(!page.contains(r#"data-testid="reply-text""#), "{page}");
    assert!(
        page.contains("This customer has only called so far"),
        "{page}"
    );
    m.stop().await;
}
