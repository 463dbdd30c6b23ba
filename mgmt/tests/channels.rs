//! The channel contract: a second channel, written here in the test, goes
//! through the same conversation path as SMS (inbound threading, the
//! replies API with its capability checks, per-part outcomes on the
//! timeline), so the contract is not SMS-shaped.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{Mgmt, wait_for};
use crossline_core::{Channel, DeliveryState, EventBody};
use crossline_mgmt::services::channels::{
    Capabilities, ChannelAdapter, Channels, Dispatch, Measure, PartOutcome, Reply, Unreachable,
};
use crossline_mgmt::services::contacts::address::{Address, AddressKind, Region};
use crossline_store::{EventLog, NewEvent};
use futures_util::future::BoxFuture;
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};

/// A web chat, as a test double: visitors are handles, replies are
/// "delivered" by the adapter itself from mgmt (no device), at most 40
/// characters, one segment, attachments allowed, a 24-hour window.
struct WebChat {
    /// (to, text) of every reply the adapter sent.
    sent: Arc<Mutex<Vec<(String, String)>>>,
    /// Reply window, in seconds.
    window_s: u64,
}

impl Default for WebChat {
    fn default() -> Self {
        Self {
            sent: Arc::default(),
            window_s: 24 * 3600,
        }
    }
}

impl ChannelAdapter for WebChat {
    fn channel(&self) -> Channel {
        Channel::Chat
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            channel: "chat",
            max_chars: 40,
            max_segments: None,
            attachments: true,
            reply_window_s: Some(self.window_s),
        }
    }

    fn measure(&self, text: &str) -> Measure {
        let units = text.chars().count();
        Measure {
            encoding: "utf8",
            units,
            max_units: 40,
            segments: 1,
            fits: units <= 40,
        }
    }

    fn identity(&self, from: &str, _region: Region) -> Address {
        Address {
            kind: AddressKind::Handle,
            value: format!("chat:{}", from.trim()),
        }
    }

    fn reachable(&self, _to: &Address) -> Result<(), Unreachable> {
        Ok(())
    }

    fn dispatch(&self, _reply: &Reply) -> Dispatch {
        Dispatch::Direct
    }

    fn send(&self, reply: Reply) -> BoxFuture<'static, Vec<PartOutcome>> {
        let sent = self.sent.clone();
        Box::pin(async move {
            sent.lock().unwrap().push((reply.to, reply.text));
            vec![PartOutcome {
                part: 1,
                state: DeliveryState::Delivered,
                reason: None,
            }]
        })
    }
}

/// A customer's message on `channel`, as a channel surface (a webhook, the
/// chat widget) would store it in mgmt's log.
async fn inbound(m: &Mgmt, channel: Channel, line: &str, from: &str, text: &str) {
    m.running()
        .store
        .append(vec![NewEvent {
            conversation: None,
            body: EventBody::MessageReceived {
                channel,
                line: line.into(),
                from: from.into(),
                to: None,
                text: text.into(),
                sent_at: None,
                parts: 1,
                incomplete: false,
                key: None,
            },
        }])
        .await
        .unwrap();
}

fn on(list: &[Value], channel: &str) -> Option<Value> {
    list.iter().find(|c| c["channel"] == channel).cloned()
}

#[tokio::test]
async fn a_second_channel_goes_through_the_same_conversation_path() {
    let chat = WebChat::default();
    let sent = chat.sent.clone();
    let m = Mgmt::start_with_channels(Channels::standard().with(Arc::new(chat))).await;

    // The API lists both channels with what each can carry.
    let (s, caps) = m.get("/api/v1/channels").await;
    assert_eq!(s, 200, "{caps}");
    assert_eq!(
        caps,
        json!([
            {"channel": "sms", "max_chars": 1530, "max_segments": 10, "attachments": false},
            {"channel": "chat", "max_chars": 40, "attachments": true, "reply_window_s": 86400}
        ])
    );

    // Inbound: the chat adapter says who wrote; two messages of one visitor
    // thread into one conversation, beside an SMS customer's.
    let mut dev = m.device("branch-1").await;
    dev.sms("gsm0", "+380501234567", "SMS customer").await;
    inbound(
        &m,
        Channel::Chat,
        "widget",
        "visitor-42",
        "Hi, is my order ready?",
    )
    .await;
    inbound(&m, Channel::Chat, "widget", "visitor-42", "Order 1234").await;
    let list = m
        .wait_list("", |l| {
            on(l, "sms").is_some() && on(l, "chat").is_some_and(|c| c["messages"] == 2)
        })
        .await;
    assert_eq!(list.len(), 2, "{list:?}");
    let c = on(&list, "chat").unwrap();
    assert_eq!(c["contact"]["kind"], "handle");
    assert_eq!(c["contact"]["address"], "chat:visitor-42");
    assert_eq!(c["line"], "widget");
    assert_eq!(c["unread"], 2);
    let id = c["id"].as_str().unwrap().to_string();
    let replies = format!("/api/v1/conversations/{id}/replies");

    // The chat's own capabilities limit the reply (40 characters), not SMS's.
    let (s, v) = m
        .post(&replies, &json!({"text": "x".repeat(41)}).to_string())
        .await;
    assert_eq!(s, 422, "{v}");
    assert_eq!(v["error"], "text_too_long");
    assert!(v["message"].as_str().unwrap().contains("chat"), "{v}");

    // A reply goes to the conversation's channel and endpoint; the adapter
    // sends it and its per-part outcome lands on the timeline.
    let (s, v) = m
        .post(
            &replies,
            &json!({"text": "Yes, it ships today"}).to_string(),
        )
        .await;
    assert_eq!(s, 202, "{v}");
    assert_eq!(v["channel"], "chat");
    assert_eq!(v["to"], "chat:visitor-42");
    assert_eq!(v["line"], "widget");
    assert_eq!(v["segments"], 1);
    let detail = m
        .wait_conversation(&id, |c| {
            c["timeline"]
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e["kind"] == "reply" && e["state"] == "delivered")
        })
        .await;
    let reply = detail["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "reply")
        .unwrap()
        .clone();
    assert_eq!(reply["text"], "Yes, it ships today");
    assert_eq!(reply["part_states"][0]["state"], "delivered", "{reply}");
    assert_eq!(detail["unread"], 0);
    wait_for(|| async { (sent.lock().unwrap().len() == 1).then_some(()) }).await;
    assert_eq!(
        sent.lock().unwrap().clone(),
        vec![(
            "chat:visitor-42".to_string(),
            "Yes, it ships today".to_string()
        )]
    );
    // No device command was queued for it: nothing goes to an appliance.
    let pending: i64 = m
        .running()
        .store
        .read(|conn| conn.query_row("SELECT count(*) FROM pending_command", [], |r| r.get(0)))
        .await
        .unwrap();
    assert_eq!(pending, 0);
    m.stop().await;
}

#[tokio::test]
async fn a_conversation_on_a_channel_without_an_adapter_cannot_be_replied_to() {
    let m = Mgmt::start().await;
    let (s, caps) = m.get("/api/v1/channels").await;
    assert_eq!(s, 200, "{caps}");
    assert_eq!(caps.as_array().unwrap().len(), 1, "only SMS: {caps}");
    inbound(&m, Channel::Email, "mailbox", "ann@example.com", "Invoice?").await;
    let list = m.wait_list("", |l| on(l, "email").is_some()).await;
    let id = list[0]["id"].as_str().unwrap();
    let (s, v) = m
        .post(
            &format!("/api/v1/conversations/{id}/replies"),
            &json!({"text": "Attached"}).to_string(),
        )
        .await;
    assert_eq!(s, 422, "{v}");
    assert_eq!(v["error"], "no_channel");
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .contains("no adapter for the email channel"),
        "{v}"
    );
    m.stop().await;
}

#[tokio::test]
async fn a_reply_outside_the_channels_reply_window_is_refused() {
    // A chat whose window is 0 s: closed as soon as the customer wrote.
    let chat = WebChat {
        window_s: 0,
        ..WebChat::default()
    };
    let sent = chat.sent.clone();
    let m = Mgmt::start_with_channels(Channels::standard().with(Arc::new(chat))).await;
    inbound(&m, Channel::Chat, "widget", "visitor-7", "Hello?").await;
    let list = m.wait_list("", |l| on(l, "chat").is_some()).await;
    let id = list[0]["id"].as_str().unwrap();
    let (s, v) = m
        .post(
            &format!("/api/v1/conversations/{id}/replies"),
            &json!({"text": "Hi"}).to_string(),
        )
        .await;
    assert_eq!(s, 422, "{v}");
    assert_eq!(v["error"], "reply_window_closed");
    assert!(v["message"].as_str().unwrap().contains("within 0 s"), "{v}");
    assert!(sent.lock().unwrap().is_empty());
    m.stop().await;
}

#[tokio::test]
async fn routing_takes_a_conversation_on_its_own_channel() {
    let m =
        Mgmt::start_with_channels(Channels::standard().with(Arc::new(WebChat::default()))).await;
    inbound(&m, Channel::Chat, "widget", "visitor-9", "Do you deliver?").await;
    let list = m.wait_list("", |l| on(l, "chat").is_some()).await;
    let id = list[0]["id"].as_str().unwrap().to_string();
    // Routing picks open conversations up (at the latest when it starts
    // again) and queues each on its own channel: chat capacity, not SMS's.
    let m = m.restart().await;
    let path = format!("/api/v1/routing/conversations/{id}");
    let v = wait_for(|| async {
        let (s, v) = m.get(&path).await;
        (s == 200).then_some(v)
    })
    .await;
    assert_eq!(v["channel"], "chat", "{v}");
    m.stop().await;
}
