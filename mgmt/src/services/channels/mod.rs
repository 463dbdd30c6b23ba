//! Channels: how a customer's messages come in and mgmt's replies go out.
//! [`commands`] delivers device commands reliably; the rest of this module
//! is the channel contract: what every channel (SMS, voice, email, web chat,
//! messengers) does for the conversations service, behind one trait.
//!
//! An adapter ([`ChannelAdapter`]) owns what differs between channels:
//!
//! * **inbound normalisation**: who wrote ([`ChannelAdapter::identity`]: an
//!   E.164 number for SMS, a handle for a chat), so messages from one
//!   customer thread into one conversation whatever the channel;
//! * **outbound send**: how a reply leaves ([`ChannelAdapter::dispatch`]):
//!   a command for the device that hosts the channel (SMS: proto's
//!   `send_sms`), or sent by the adapter itself from mgmt
//!   ([`ChannelAdapter::send`]), with per-part outcomes
//!   ([`PartOutcome`]: a [`DeliveryState`] and a reason) either way;
//! * **capabilities** ([`Capabilities`], [`Measure`]): segment counting,
//!   the longest text, attachments, the reply window. The API refuses a
//!   reply that does not fit; the desk's composer shows the count.
//!
//! Everything else (threading, timelines, routing, the desk) is the same
//! code for every channel. [`Channels`] is the registry mgmt is built
//! with: [`Channels::standard`] holds the adapters this build has (SMS
//! today); a conversation on a channel without an adapter is shown but
//! cannot be replied to.
//!
//! Adapters are pure where the projector calls them ([`identity`],
//! [`dispatch`]): the projector runs them again when projections are
//! rebuilt from the log, and must get the same answer.
//!
//! [`identity`]: ChannelAdapter::identity
//! [`dispatch`]: ChannelAdapter::dispatch

pub mod commands;
pub mod repo;
pub mod sms;

use crate::services::contacts::address::{Address, Region};
use crossline_core::{Channel, ConversationId, DeliveryState, EventBody, EventId, NodeId};
use crossline_proto::CommandKind;
use crossline_store::{EventLog, NewEvent, SqliteStore};
use futures_util::future::BoxFuture;
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::Arc;
use utoipa::ToSchema;

/// What a channel can carry: drives the API's checks and the composer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Capabilities {
    /// The channel's name (`sms`, `chat`, ...).
    pub channel: &'static str,
    /// Most characters a reply may have (in the cheapest encoding, for a
    /// channel that has several: [`Measure::max_units`] says it for a
    /// given text).
    pub max_chars: usize,
    /// Most segments (SMS parts) a reply may take; absent when the channel
    /// does not split messages.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_segments: Option<usize>,
    /// Whether a message may carry attachments.
    pub attachments: bool,
    /// How long after the customer's last message a reply may still go
    /// out, in seconds (messenger platforms close a 24-hour window);
    /// absent when a reply may go out at any time.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reply_window_s: Option<u64>,
}

impl Capabilities {
    /// Whether a reply may go out at `now_ms` (ms since the epoch) when the
    /// customer last wrote at `last_inbound_ms`: always on a channel
    /// without a reply window; on one with a window of W seconds, while
    /// less than W seconds have passed since the customer's last message
    /// (never when the customer has not written).
    pub fn window_open(&self, last_inbound_ms: Option<i64>, now_ms: i64) -> bool {
        match (self.reply_window_s, last_inbound_ms) {
            (None, _) => true,
            (Some(_), None) => false,
            (Some(w), Some(last)) => {
                let w = i64::try_from(w.saturating_mul(1000)).unwrap_or(i64::MAX);
                now_ms < last.saturating_add(w)
            }
        }
    }
}

/// How an outgoing text fits its channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Measure {
    /// Encoding the channel would send the text in: `gsm7` or `ucs2` for
    /// SMS, `utf8` where the channel does not care.
    pub encoding: &'static str,
    /// Length in the encoding's units (GSM 7-bit septets, UTF-16 units,
    /// characters).
    pub units: usize,
    /// Most units a text in this encoding may have.
    pub max_units: usize,
    /// Segments (SMS parts) the text takes; 1 for a channel that does not
    /// split.
    pub segments: usize,
    /// Whether it may be sent: within the units and the segments.
    pub fits: bool,
}

/// A reply on its way out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The reply's id: the command id, the idempotency key.
    pub command: crossline_core::EventId,
    /// The line (endpoint of the branch or of mgmt) it leaves from.
    pub line: String,
    /// The customer's address on the channel.
    pub to: String,
    pub text: String,
}

/// How a reply leaves.
#[derive(Debug, Clone, PartialEq)]
pub enum Dispatch {
    /// mgmt queues this command for the device the conversation is on; the
    /// device reports the outcome per part (`message_sent`,
    /// `delivery_status` events).
    Device(CommandKind),
    /// The adapter sends it itself, from mgmt ([`ChannelAdapter::send`]);
    /// mgmt stores what it reports as `delivery_status` events.
    Direct,
}

/// The outcome of one part of a reply the adapter sent itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartOutcome {
    /// 1-based.
    pub part: u16,
    pub state: DeliveryState,
    /// Why, for a person, when it failed or its fate is unknown.
    pub reason: Option<String>,
}

/// Why a reply cannot go to an address on a channel.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Unreachable(pub String);

/// One channel's behaviour. See the module documentation.
pub trait ChannelAdapter: Send + Sync + 'static {
    /// The channel this adapter serves.
    fn channel(&self) -> Channel;

    /// What the channel can carry.
    fn capabilities(&self) -> Capabilities;

    /// How `text` fits the channel (segments, length, whether it may go).
    fn measure(&self, text: &str) -> Measure;

    /// Inbound normalisation: the sender's identity, from the address the
    /// message arrived from (`region` reads national phone numbers). The
    /// contact book keys customers by it: one identity, one contact.
    fn identity(&self, from: &str, region: Region) -> Address;

    /// Whether a reply can reach `to` (an SMS cannot reach an alphanumeric
    /// sender name); the reason says why not, for the agent.
    fn reachable(&self, to: &Address) -> Result<(), Unreachable>;

    /// How `reply` leaves: pure, as the projector asks again on a rebuild.
    fn dispatch(&self, reply: &Reply) -> Dispatch;

    /// Sends a reply [`Dispatch::Direct`] said the adapter sends itself;
    /// the outcome of each part. Adapters whose replies go through a
    /// device never get here (the default says so, as a failure).
    fn send(&self, reply: Reply) -> BoxFuture<'static, Vec<PartOutcome>> {
        let channel = self.channel();
        Box::pin(async move {
            vec![PartOutcome {
                part: 1,
                state: DeliveryState::Failed,
                reason: Some(format!(
                    "the {channel} adapter sends through a device, not from mgmt; reply {} was not sent",
                    reply.command
                )),
            }]
        })
    }
}

/// The adapters mgmt was built with, one per channel.
#[derive(Clone)]
pub struct Channels {
    adapters: BTreeMap<Channel, Arc<dyn ChannelAdapter>>,
}

impl std::fmt::Debug for Channels {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.adapters.keys()).finish()
    }
}

impl Default for Channels {
    fn default() -> Self {
        Self::standard()
    }
}

impl Channels {
    /// No channel at all (add them with [`Channels::with`]).
    pub fn empty() -> Self {
        Self {
            adapters: BTreeMap::new(),
        }
    }

    /// The channels this build carries: SMS, through the appliances'
    /// modems.
    pub fn standard() -> Self {
        Self::empty().with(Arc::new(sms::Sms))
    }

    /// These channels and `adapter` (replacing one for the same channel).
    pub fn with(mut self, adapter: Arc<dyn ChannelAdapter>) -> Self {
        self.adapters.insert(adapter.channel(), adapter);
        self
    }

    /// The adapter of `channel`, if this build carries it.
    pub fn get(&self, channel: Channel) -> Option<&Arc<dyn ChannelAdapter>> {
        self.adapters.get(&channel)
    }

    /// The adapter of the channel named `name` (as stored in a
    /// conversation), if this build carries it.
    pub fn named(&self, name: &str) -> Option<&Arc<dyn ChannelAdapter>> {
        Channel::parse(name).ok().and_then(|c| self.get(c))
    }

    /// The channels that have an adapter, in [`Channel`] order: the ones
    /// the desk and the board show counters and filters for.
    pub fn live(&self) -> Vec<Channel> {
        self.adapters.keys().copied().collect()
    }

    /// Every adapter's capabilities, in [`Channel`] order.
    pub fn capabilities(&self) -> Vec<Capabilities> {
        self.adapters.values().map(|a| a.capabilities()).collect()
    }
}

/// A reply to store and send on a conversation's channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    pub conversation: ConversationId,
    pub channel: Channel,
    /// The node that hosts the line: an appliance for SMS.
    pub device: NodeId,
    pub line: String,
    /// The customer's address on the channel.
    pub to: String,
    pub text: String,
    /// The agent (or automation, e.g. `outside-hours`) who wrote it.
    pub author: Option<String>,
}

/// Why a reply was not stored.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error(
        "mgmt has no adapter for the {0} channel, so replies on it cannot be sent; answer the customer on a channel mgmt carries"
    )]
    NoAdapter(Channel),
    #[error("storing the reply: {0}")]
    Store(#[from] crossline_store::StoreError),
}

/// The outbound use case every reply goes through (agents' replies from
/// the API and the desk, routing's outside-hours auto-reply).
#[derive(Clone)]
pub struct Outbound {
    pub channels: Channels,
    pub store: SqliteStore,
    pub dispatcher: commands::Dispatcher,
}

impl Outbound {
    /// Stores `out` as a `reply_requested` event and sends it the way its
    /// channel's adapter says: the device command is published (the
    /// projector queued it in the event's transaction), or the adapter
    /// sends it from mgmt and each part's outcome is stored as a
    /// `delivery_status` event. Returns the reply's command id.
    pub async fn send(&self, out: Outgoing) -> Result<EventId, SendError> {
        let adapter = self
            .channels
            .get(out.channel)
            .cloned()
            .ok_or(SendError::NoAdapter(out.channel))?;
        let command = EventId::new();
        let reply = Reply {
            command,
            line: out.line.clone(),
            to: out.to.clone(),
            text: out.text.clone(),
        };
        self.store
            .append(vec![NewEvent {
                conversation: Some(out.conversation),
                body: EventBody::ReplyRequested {
                    command,
                    channel: out.channel,
                    device: out.device.clone(),
                    line: out.line,
                    to: out.to,
                    text: out.text,
                    author: out.author,
                },
            }])
            .await?;
        match adapter.dispatch(&reply) {
            Dispatch::Device(_) => self.dispatcher.created(&out.device),
            Dispatch::Direct => {
                let this = self.clone();
                let conversation = out.conversation;
                tokio::spawn(async move {
                    let outcomes = adapter.send(reply).await;
                    this.record(conversation, command, outcomes).await;
                });
            }
        }
        // Live updates come from the log (crate::live::run).
        Ok(command)
    }

    /// Stores the outcomes an adapter reported for reply `command`.
    async fn record(
        &self,
        conversation: ConversationId,
        command: EventId,
        outcomes: Vec<PartOutcome>,
    ) {
        let events = outcomes
            .into_iter()
            .map(|o| NewEvent {
                conversation: Some(conversation),
                body: EventBody::DeliveryStatus {
                    command,
                    part: Some(o.part),
                    state: o.state,
                    detail: o.reason,
                },
            })
            .collect::<Vec<_>>();
        if events.is_empty() {
            return;
        }
        if let Err(e) = self.store.append(events).await {
            tracing::warn!(%conversation, %command, error = %e, "the channel's outcome of a reply could not be stored; it stays pending");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caps(window: Option<u64>) -> Capabilities {
        Capabilities {
            channel: "chat",
            max_chars: 10,
            max_segments: None,
            attachments: false,
            reply_window_s: window,
        }
    }

    #[test]
    fn a_reply_window_runs_from_the_customers_last_message() {
        let day = caps(Some(86_400));
        let last = 1_000_000;
        assert!(day.window_open(Some(last), last));
        assert!(day.window_open(Some(last), last + 86_399_999));
        assert!(!day.window_open(Some(last), last + 86_400_000));
        // The customer never wrote: a windowed channel may not start.
        assert!(!day.window_open(None, last));
        // No window (SMS): any time.
        assert!(caps(None).window_open(None, i64::MAX));
        assert!(caps(None).window_open(Some(0), i64::MAX));
        // A window of 0 is always closed.
        assert!(!caps(Some(0)).window_open(Some(last), last));
        // No overflow at the ends.
        assert!(caps(Some(u64::MAX)).window_open(Some(i64::MAX), i64::MAX - 1));
    }

    #[test]
    fn the_standard_channels_are_sms_only() {
        let c = Channels::standard();
        assert_eq!(c.live(), vec![Channel::Sms]);
        assert!(c.named("sms").is_some());
        assert!(c.named("chat").is_none());
        assert!(c.named("fax").is_none());
        assert_eq!(c.capabilities().len(), 1);
    }
}
