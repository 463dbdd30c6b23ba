//! A conversation: one customer thread across every channel, with one
//! timeline, a status, a priority, tags and private notes.
//!
//! This is the projection mgmt shows in the agent desk. Routing (who has it)
//! lives in [`crate::routing`]; [`Conversation::apply_routing`] folds routing
//! records into the status so both agree.

use crate::contact::ContactId;
use crate::event::Channel;
use crate::id::{ConversationId, EventId};
use crate::routing::{AgentId, Fact, QueueId};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// Status of a conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Status {
    /// Waiting for or being handled by an agent.
    Open,
    /// On hold, waiting on the customer; the agent's capacity is free.
    Pending,
    /// Set aside until `until` (ms).
    Snoozed { until: u64 },
    /// Done; a new customer message reopens it.
    Resolved,
    /// Final.
    Closed,
}

/// What a user or the customer does to a conversation's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    CustomerMessage,
    Hold,
    Resume,
    Snooze { until: u64 },
    SnoozeOver,
    Resolve,
    Close,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("a {from:?} conversation cannot {action:?}")]
pub struct TransitionError {
    pub from: Status,
    pub action: Action,
}

/// The status machine, in one place.
pub fn next_status(from: Status, action: Action) -> Result<Status, TransitionError> {
    use Action as A;
    use Status as S;
    let to = match (from, action) {
        (S::Closed, _) => None,
        // A customer message reopens anything but a closed conversation.
        (_, A::CustomerMessage) => Some(S::Open),
        (S::Open, A::Hold) => Some(S::Pending),
        (S::Pending | S::Snoozed { .. }, A::Resume | A::SnoozeOver) => Some(S::Open),
        (S::Open | S::Pending | S::Snoozed { .. }, A::Snooze { until }) => {
            Some(S::Snoozed { until })
        }
        (S::Open | S::Pending | S::Snoozed { .. }, A::Resolve) => Some(S::Resolved),
        (_, A::Close) => Some(S::Closed),
        _ => None,
    };
    to.ok_or(TransitionError { from, action })
}

/// Direction of a timeline entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    Inbound,
    Outbound,
    Internal,
}

/// One item of the single timeline: a message or call on any channel, or a
/// status/routing change, pointing at the event that holds the details.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimelineEntry {
    pub at: u64,
    pub event: EventId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<Channel>,
    pub direction: Direction,
    /// Short kind, e.g. "message_received", "call_answered", "assigned".
    pub kind: String,
}

/// A private note (agents only, never sent to the customer).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Note {
    pub at: u64,
    pub author: AgentId,
    pub text: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Conversation {
    pub id: ConversationId,
    pub contact: Option<ContactId>,
    pub status: Status,
    pub priority: i32,
    pub tags: BTreeSet<String>,
    pub notes: Vec<Note>,
    /// Every channel the conversation used.
    pub channels: BTreeSet<ChannelKey>,
    pub timeline: Vec<TimelineEntry>,
    pub assignee: Option<AgentId>,
    pub queue: Option<QueueId>,
}

/// [`Channel`] with an order, for sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ChannelKey(u8);

impl From<Channel> for ChannelKey {
    fn from(c: Channel) -> Self {
        ChannelKey(crate::routing::model::ch_bit(c))
    }
}

impl Conversation {
    pub fn new(id: ConversationId, contact: Option<ContactId>) -> Self {
        Self {
            id,
            contact,
            status: Status::Open,
            priority: 0,
            tags: BTreeSet::new(),
            notes: Vec::new(),
            channels: BTreeSet::new(),
            timeline: Vec::new(),
            assignee: None,
            queue: None,
        }
    }

    /// Applies a status action.
    pub fn act(&mut self, action: Action) -> Result<(), TransitionError> {
        self.status = next_status(self.status, action)?;
        Ok(())
    }

    /// Adds a timeline entry, keeping the timeline in time order (entries
    /// from several nodes may arrive out of order); a repeated event is
    /// ignored.
    pub fn record(&mut self, entry: TimelineEntry) {
        if self.timeline.iter().any(|e| e.event == entry.event) {
            return;
        }
        if let Some(c) = entry.channel {
            self.channels.insert(c.into());
        }
        let pos = self
            .timeline
            .partition_point(|e| (e.at, e.event) <= (entry.at, entry.event));
        self.timeline.insert(pos, entry);
    }

    pub fn uses(&self, c: Channel) -> bool {
        self.channels.contains(&c.into())
    }

    pub fn tag(&mut self, tag: &str) {
        self.tags.insert(tag.trim().to_lowercase());
    }

    pub fn untag(&mut self, tag: &str) {
        self.tags.remove(&tag.trim().to_lowercase());
    }

    pub fn add_note(&mut self, at: u64, author: AgentId, text: impl Into<String>) {
        self.notes.push(Note {
            at,
            author,
            text: text.into(),
        });
    }

    /// Folds a routing record of this conversation into the projection.
    pub fn apply_routing(&mut self, fact: &Fact) {
        if fact.conversation() != Some(self.id) {
            return;
        }
        match fact {
            Fact::Arrived {
                queue,
                priority,
                contact,
                ..
            } => {
                self.status = Status::Open;
                self.queue = Some(queue.clone());
                self.priority = *priority;
                self.assignee = None;
                if contact.is_some() {
                    self.contact = *contact;
                }
            }
            Fact::Queued { queue, .. } => {
                self.queue = Some(queue.clone());
                self.assignee = None;
                self.status = Status::Open;
            }
            Fact::Assigned { agent, .. } => {
                self.assignee = Some(agent.clone());
                self.status = Status::Open;
            }
            Fact::Unassigned { .. } => self.assignee = None,
            // Waiting for one agent: open, nobody has it yet.
            Fact::Reserved { .. } => {
                self.assignee = None;
                self.status = Status::Open;
            }
            Fact::Held { .. } => self.status = Status::Pending,
            Fact::Resumed { .. } => self.status = Status::Open,
            Fact::Snoozed { until, .. } => self.status = Status::Snoozed { until: *until },
            Fact::PriorityChanged { priority, .. } => self.priority = *priority,
            Fact::Resolved { .. } | Fact::Abandoned { .. } => self.status = Status::Resolved,
            Fact::Closed { .. } => self.status = Status::Closed,
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    #[test]
    fn status_machine() {
        use Action as A;
        use Status as S;
        assert_eq!(next_status(S::Open, A::Hold), Ok(S::Pending));
        assert_eq!(next_status(S::Pending, A::CustomerMessage), Ok(S::Open));
        assert_eq!(next_status(S::Resolved, A::CustomerMessage), Ok(S::Open));
        assert_eq!(
            next_status(S::Snoozed { until: 5 }, A::SnoozeOver),
            Ok(S::Open)
        );
        assert_eq!(next_status(S::Open, A::Resolve), Ok(S::Resolved));
        assert!(next_status(S::Closed, A::CustomerMessage).is_err());
        assert!(next_status(S::Resolved, A::Hold).is_err());
        assert_eq!(next_status(S::Resolved, A::Close), Ok(S::Closed));
    }

    #[test]
    fn one_timeline_across_channels() {
        let mut c = Conversation::new(ConversationId(Uuid::from_u128(1)), None);
        let e = |n: u128| EventId(Uuid::from_u128(n));
        c.record(TimelineEntry {
            at: 20,
            event: e(2),
            channel: Some(Channel::Voice),
            direction: Direction::Outbound,
            kind: "call_answered".into(),
        });
        c.record(TimelineEntry {
            at: 10,
            event: e(1),
            channel: Some(Channel::Chat),
            direction: Direction::Inbound,
            kind: "message_received".into(),
        });
        c.record(TimelineEntry {
            at: 10,
            event: e(1),
            channel: Some(Channel::Chat),
            direction: Direction::Inbound,
            kind: "message_received".into(),
        });
        assert_eq!(
            c.timeline.iter().map(|t| t.at).collect::<Vec<_>>(),
            [10, 20]
        );
        assert!(c.uses(Channel::Chat) && c.uses(Channel::Voice) && !c.uses(Channel::Email));
        c.tag(" VIP ");
        assert!(c.tags.contains("vip"));
        c.add_note(30, AgentId::new("ana"), "called back, see recording");
        assert_eq!(c.notes.len(), 1);
    }
}
