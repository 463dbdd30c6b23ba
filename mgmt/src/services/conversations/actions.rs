//! The conversation use cases the JSON API and the desk share: a reply, and
//! a status change (resolve, reopen). Each returns a typed [`ActionError`];
//! the API maps it to its JSON error (`http::api`), the desk to a message in
//! the agent's language (`http::web::desk`). Both are audited here; live
//! updates follow the log (`crate::live`).

use super::repo::{ConversationRepo, ReplyLine};
use super::{ConversationSummary, Status};
use crate::services::channels::{Outbound, Outgoing, SendError};
use crate::services::contacts::address::Address;
use crate::services::users::auth::Actor;
use crossline_core::{Channel, ConversationId, EventBody, NodeId};
use crossline_store::{EventLog, NewEvent, SqliteStore, StoreError};

/// Why a conversation action was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum ActionError {
    #[error("no conversation {0}; list them with GET /api/v1/conversations")]
    NotFound(String),
    #[error("`text` is empty")]
    EmptyText,
    #[error("{0}")]
    NoChannel(String),
    #[error("{0}")]
    TextTooLong(String),
    #[error("{0}")]
    NotReplyable(String),
    #[error("{0}")]
    ReplyWindowClosed(String),
    #[error("the conversation has no device to send from")]
    NoDevice,
    #[error("{0}")]
    UnknownLine(String),
    #[error("the contact already has an open conversation {0}; resolve it first or reply there")]
    OtherOpen(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl ActionError {
    /// The stable code the API answers with (docs/API.md, "Errors").
    pub fn code(&self) -> &'static str {
        match self {
            ActionError::NotFound(_) => "not_found",
            ActionError::EmptyText => "empty_text",
            ActionError::NoChannel(_) => "no_channel",
            ActionError::TextTooLong(_) => "text_too_long",
            ActionError::NotReplyable(_) => "not_replyable",
            ActionError::ReplyWindowClosed(_) => "reply_window_closed",
            ActionError::NoDevice => "no_device",
            ActionError::UnknownLine(_) => "unknown_line",
            ActionError::OtherOpen(_) => "conflict",
            ActionError::Store(_) => "internal",
        }
    }
}

/// What a conversation action needs.
pub struct Actions<'a> {
    pub store: &'a SqliteStore,
    pub outbound: &'a Outbound,
}

/// A reply to send: its text, and the line to send it from (the
/// conversation's own when None).
pub struct Reply {
    pub text: String,
    pub line: Option<String>,
}

/// A reply accepted for sending.
pub struct ReplySent {
    pub command: String,
    pub conversation_id: String,
    pub channel: Channel,
    pub device: NodeId,
    pub line: String,
    pub to: String,
    pub segments: usize,
}

/// A path id that is not a UUID cannot name a conversation.
fn conversation_id(id: &str) -> Result<ConversationId, ActionError> {
    id.parse::<ConversationId>()
        .map_err(|_| ActionError::NotFound(id.to_string()))
}

/// The conversation `id`, or [`ActionError::NotFound`].
pub async fn load(store: &SqliteStore, id: &str) -> Result<ConversationSummary, ActionError> {
    let cid = conversation_id(id)?.to_string();
    store
        .summary(cid)
        .await?
        .ok_or_else(|| ActionError::NotFound(id.to_string()))
}

impl Actions<'_> {
    /// Sends `req` on conversation `id`'s channel, by `by`; audited.
    pub async fn reply(&self, id: &str, req: Reply, by: &Actor) -> Result<ReplySent, ActionError> {
        let store = self.store;
        let author = by.login();
        let conv = load(store, id).await?;
        if req.text.trim().is_empty() {
            return Err(ActionError::EmptyText);
        }
        let channel =
            Channel::parse(&conv.channel).map_err(|e| ActionError::NoChannel(e.to_string()))?;
        let adapter = self.outbound.channels.get(channel).ok_or_else(|| {
            ActionError::NoChannel(format!(
                "mgmt has no adapter for the {channel} channel, so replies on it cannot be sent; answer the customer on a channel mgmt carries"
            ))
        })?;
        let caps = adapter.capabilities();
        let measure = adapter.measure(&req.text);
        if !measure.fits {
            let segments = caps
                .max_segments
                .map(|n| format!(" in at most {n} segments"))
                .unwrap_or_default();
            return Err(ActionError::TextTooLong(format!(
                "`text` is too long for {channel}: {} {} units in {} segments; at most {} {} units{segments} fit (on SMS: 1530 GSM 7-bit characters, or 670 when it needs UCS-2, e.g. Cyrillic)",
                measure.units,
                measure.encoding,
                measure.segments,
                measure.max_units,
                measure.encoding
            )));
        }
        let to = Address {
            kind: conv.contact.kind,
            value: conv.contact.address.clone(),
        };
        adapter
            .reachable(&to)
            .map_err(|e| ActionError::NotReplyable(e.to_string()))?;
        if let Some(window) = caps.reply_window_s {
            let cid = conv.id.clone();
            let last = store.last_inbound_ms(cid).await?;
            let now = i64::try_from(crate::clock::now_ms()).unwrap_or(i64::MAX);
            if !caps.window_open(last, now) {
                return Err(ActionError::ReplyWindowClosed(format!(
                    "the {channel} channel accepts a reply only within {window} s of the customer's last message; it can be answered again once the customer writes"
                )));
            }
        }
        let device = conv
            .device
            .as_deref()
            .and_then(|d| NodeId::new(d).ok())
            .ok_or(ActionError::NoDevice)?;
        let line = match req.line {
            Some(l) => {
                let (d, l2) = (device.to_string(), l.clone());
                if let ReplyLine::Unknown(lines) = store.reply_line(d, l2).await? {
                    return Err(ActionError::UnknownLine(format!(
                        "device {device} has no line {l:?}; known lines: {}",
                        lines.join(", ")
                    )));
                }
                l
            }
            None => conv.line.clone().ok_or_else(|| {
                ActionError::UnknownLine("the conversation has no line; give `line`".into())
            })?,
        };
        let to = to.value;
        let command = self
            .outbound
            .send(Outgoing {
                conversation: conversation_id(id)?,
                channel,
                device: device.clone(),
                line: line.clone(),
                to: to.clone(),
                text: req.text,
                author,
            })
            .await
            .map_err(|e| match e {
                SendError::NoAdapter(_) => ActionError::NoChannel(e.to_string()),
                SendError::Store(e) => ActionError::Store(e),
            })?;
        let parts = measure.segments;
        tracing::info!(conversation = %conv.id, device = %device, line = %line, command = %command, parts, by = by.name(), "reply accepted");
        crate::services::users::audit::record(
            store,
            by.name(),
            "conversation.reply",
            &conv.id,
            &format!("reply {command} on {line}"),
        )
        .await;
        Ok(ReplySent {
            command: command.to_string(),
            conversation_id: conv.id,
            channel,
            device,
            line,
            to,
            segments: parts,
        })
    }

    /// Resolves or reopens conversation `id` (no-op if it already is so);
    /// audited. A reopen is refused while the contact has
    /// another open conversation.
    pub async fn set_status(
        &self,
        id: &str,
        to: Status,
        actor: &Actor,
    ) -> Result<ConversationSummary, ActionError> {
        let store = self.store;
        let by = actor.login();
        let conv = load(store, id).await?;
        if conv.status == to {
            return Ok(conv);
        }
        if to == Status::Open {
            let (contact, me) = (conv.contact.id.clone(), conv.id.clone());
            if let Some(other) = store.other_open(contact, me).await? {
                return Err(ActionError::OtherOpen(other.to_string()));
            }
        }
        let (body, action) = match to {
            Status::Resolved => (
                EventBody::ConversationResolved { by },
                "conversation.resolve",
            ),
            Status::Open => (
                EventBody::ConversationReopened { by },
                "conversation.reopen",
            ),
        };
        store
            .append(vec![NewEvent {
                conversation: Some(conversation_id(id)?),
                body,
            }])
            .await?;
        crate::services::users::audit::record(store, actor.name(), action, &conv.id, "").await;
        load(store, id).await
    }
}
