//! What a projection decided about newly stored events: the change set.
//!
//! mgmt's projector turns events into tables (contacts, conversations,
//! timelines). While it does, it records here what it decided, so the
//! consumers that follow the log (live updates, routing, webhooks) learn it
//! from the projection itself instead of each re-deriving it from SQL: which
//! conversation an inbound message joined (a device never names one),
//! whether that opened a conversation or created a contact, a reply's new
//! delivery state, a resolve or a reopen.
//!
//! A [`ChangeSet`] belongs to one batch of events handed to the projector
//! and attributes every change to the event (by its index in the batch)
//! that caused it. The store keeps it with the events, so a consumer reading
//! the log from any position gets each event with its changes (see
//! `crossline_store::Feed`).

use crate::event::{Channel, DeliveryState};
use crate::id::{ConversationId, EventId};
use serde::{Deserialize, Serialize};

/// One thing a projection decided.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "change", rename_all = "snake_case")]
pub enum Change {
    /// A contact was created (a first message from an address no contact
    /// has). Its id is the id of that message's event.
    ContactCreated { contact: String },
    /// A conversation was opened with `contact`.
    ConversationOpened {
        conversation: ConversationId,
        contact: String,
        channel: Channel,
    },
    /// A message joined the conversation's timeline: the customer's
    /// (`inbound`) or one sent to them (an agent's reply, an auto-reply).
    MessageAdded {
        conversation: ConversationId,
        /// The conversation's contact when the message was added.
        contact: String,
        /// The event that is the timeline entry.
        event: EventId,
        direction: Direction,
        /// The reply's command (outgoing messages only).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        command: Option<EventId>,
        /// Who wrote an outgoing message (an agent's name, `outside-hours`,
        /// `auto-reply`, `appliance`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        author: Option<String>,
    },
    /// The overall delivery state of a reply changed (or its parts did).
    ReplyState {
        conversation: ConversationId,
        command: EventId,
        state: DeliveryState,
    },
    /// The conversation was resolved.
    ConversationResolved { conversation: ConversationId },
    /// The conversation was reopened.
    ConversationReopened { conversation: ConversationId },
    /// Something else shown of the conversation changed (a note, its
    /// preview, unread count, last activity).
    ConversationChanged { conversation: ConversationId },
    /// What is known of a contact changed: a note, a tag, a merge or an
    /// unmerge (both contacts of one).
    ContactChanged { contact: String },
}

/// Direction of a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    Inbound,
    Outbound,
}

impl Change {
    /// The conversation it concerns, if any.
    pub fn conversation(&self) -> Option<ConversationId> {
        match self {
            Change::ContactCreated { .. } | Change::ContactChanged { .. } => None,
            Change::ConversationOpened { conversation, .. }
            | Change::MessageAdded { conversation, .. }
            | Change::ReplyState { conversation, .. }
            | Change::ConversationResolved { conversation }
            | Change::ConversationReopened { conversation }
            | Change::ConversationChanged { conversation } => Some(*conversation),
        }
    }
}

/// The changes of one batch of events, each attributed to its event by
/// index in the batch (0-based).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChangeSet {
    changes: Vec<(usize, Change)>,
}

impl ChangeSet {
    pub fn new() -> Self {
        Self::default()
    }

    /// Records `change`, caused by the batch's event number `event`.
    pub fn push(&mut self, event: usize, change: Change) {
        self.changes.push((event, change));
    }

    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }

    pub fn len(&self) -> usize {
        self.changes.len()
    }

    /// Every change with the index of its event, in the order recorded.
    pub fn iter(&self) -> impl Iterator<Item = &(usize, Change)> {
        self.changes.iter()
    }

    /// Takes the changes out.
    pub fn into_inner(self) -> Vec<(usize, Change)> {
        self.changes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_change_round_trips_through_json() {
        let c = Change::MessageAdded {
            conversation: ConversationId::new(),
            contact: "k".into(),
            event: EventId::new(),
            direction: Direction::Inbound,
            command: None,
            author: None,
        };
        let json = serde_json::to_string(&c).unwrap();
        assert!(json.contains("\"change\":\"message_added\""), "{json}");
        assert_eq!(serde_json::from_str::<Change>(&json).unwrap(), c);
    }

    #[test]
    fn changes_keep_their_event_and_order() {
        let conv = ConversationId::new();
        let mut s = ChangeSet::new();
        s.push(1, Change::ConversationResolved { conversation: conv });
        s.push(
            0,
            Change::ContactCreated {
                contact: "a".into(),
            },
        );
        assert_eq!(s.len(), 2);
        let v = s.into_inner();
        assert_eq!(v[0].0, 1);
        assert_eq!(v[0].1.conversation(), Some(conv));
        assert_eq!(v[1].1.conversation(), None);
    }
}
