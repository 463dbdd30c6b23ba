//! Inputs to the engine ([`Command`]) and the facts it decides ([`Record`]).
//! Records are what mgmt appends to the event log; [`super::Router::replay`]
//! rebuilds the engine from them.

use crate::contact::ContactId;
use crate::event::Channel;
use crate::id::ConversationId;
use crate::routing::model::{
    AgentId, Attributes, OutsideHoursAction, Presence, QueueId, TransferTarget,
};
use serde::{Deserialize, Serialize};

/// Something that happened outside the engine, or that a user asked for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case", deny_unknown_fields)]
pub enum Command {
    /// The agent set their presence (wrap-up is set by the engine).
    SetPresence {
        agent: AgentId,
        presence: Presence,
    },
    /// A customer message or call arrived. Creates the conversation, reopens a
    /// resolved one, resumes a pending/snoozed one, or just restarts the
    /// next-response timer.
    Inbound {
        conversation: ConversationId,
        #[serde(default)]
        contact: Option<ContactId>,
        channel: Channel,
        #[serde(default)]
        attributes: Attributes,
        /// Overrides the rule's priority.
        #[serde(default)]
        priority: Option<i32>,
    },
    /// The customer hung up or left while waiting.
    Abandon {
        conversation: ConversationId,
    },
    /// The assigned agent answered the customer (any channel).
    AgentReply {
        conversation: ConversationId,
    },
    /// Pending: waiting on the customer; frees the agent's capacity.
    Hold {
        conversation: ConversationId,
    },
    /// The agent takes a pending or snoozed conversation back.
    Resume {
        conversation: ConversationId,
    },
    /// Set aside until `until` (ms); frees capacity.
    Snooze {
        conversation: ConversationId,
        until: u64,
    },
    /// The agent opens another channel in the same conversation (e.g. calls
    /// the customer from a chat).
    StartLeg {
        conversation: ConversationId,
        channel: Channel,
    },
    /// That channel's leg is over (call hung up).
    EndLeg {
        conversation: ConversationId,
        channel: Channel,
    },
    Transfer {
        conversation: ConversationId,
        target: TransferTarget,
    },
    SetPriority {
        conversation: ConversationId,
        priority: i32,
    },
    Resolve {
        conversation: ConversationId,
    },
    /// Final: the engine forgets the conversation; mgmt starts a new one
    /// for a later message.
    Close {
        conversation: ConversationId,
    },
    /// Only time passes: fires due timers.
    Tick,
}

/// One decided fact, stamped with the engine time it took effect.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Record {
    /// Milliseconds since the epoch.
    pub at: u64,
    pub fact: Fact,
}

/// Why a conversation entered a queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "why", rename_all = "snake_case", deny_unknown_fields)]
pub enum QueueReason {
    /// Entry rule number `rule` (0-based) matched.
    Rule {
        rule: u32,
    },
    /// No rule matched: the default queue.
    Default,
    /// Waited too long in `from`.
    Overflow {
        from: QueueId,
    },
    /// The reserved agent did not become free in time.
    AgentWaitExpired {
        agent: AgentId,
    },
    /// The agent went offline and the queue's policy is requeue.
    AgentOffline {
        agent: AgentId,
    },
    Transfer,
}

/// Why an agent got a conversation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "why", rename_all = "snake_case", deny_unknown_fields)]
pub enum AssignReason {
    /// Chosen from `queue` by its strategy; `step` is the skill step reached.
    Queue {
        queue: QueueId,
        step: u8,
    },
    /// Returning customer, last served by this agent.
    Sticky,
    /// The customer answered a conversation this agent had on hold.
    Resumed,
    Transfer,
}

/// Why an agent lost a conversation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "why", rename_all = "snake_case", deny_unknown_fields)]
pub enum UnassignReason {
    Transfer,
    AgentOffline,
    /// The customer answered but the agent is full: the conversation waits
    /// for them (then the queue).
    WaitingForAgent,
}

/// Which SLA timer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SlaKind {
    FirstResponse,
    NextResponse,
    Resolution,
}

/// A fact decided by the engine. Each is small, self-describing (who, why)
/// and enough, with the config, to rebuild the engine state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Fact {
    PresenceChanged {
        agent: AgentId,
        presence: Presence,
    },
    /// A conversation entered routing: new, or reopened after resolution.
    Arrived {
        conversation: ConversationId,
        #[serde(default)]
        contact: Option<ContactId>,
        channel: Channel,
        queue: QueueId,
        priority: i32,
        reopened: bool,
    },
    /// The customer wrote while the conversation was already open.
    CustomerMessage {
        conversation: ConversationId,
        channel: Channel,
    },
    /// Outside the queue site's business hours; mgmt carries out `action`.
    OutsideHours {
        conversation: ConversationId,
        queue: QueueId,
        action: OutsideHoursAction,
    },
    /// Waiting in `queue`. `age` is the ordering time (priority, then age).
    Queued {
        conversation: ConversationId,
        queue: QueueId,
        age: u64,
        reason: QueueReason,
    },
    /// The conversation's skill requirement widened to `step`.
    StepWidened {
        conversation: ConversationId,
        step: u8,
    },
    /// Waiting for one agent until `until`, then its queue.
    Reserved {
        conversation: ConversationId,
        agent: AgentId,
        until: u64,
        /// The reason the assignment will carry if the agent takes it.
        reason: AssignReason,
    },
    Assigned {
        conversation: ConversationId,
        agent: AgentId,
        reason: AssignReason,
        /// Time since the conversation started waiting (0 when direct).
        waited_ms: u64,
    },
    Unassigned {
        conversation: ConversationId,
        agent: AgentId,
        reason: UnassignReason,
    },
    /// Pending: waiting on the customer (frees capacity).
    Held {
        conversation: ConversationId,
    },
    /// Active again with its agent.
    Resumed {
        conversation: ConversationId,
    },
    Snoozed {
        conversation: ConversationId,
        until: u64,
    },
    LegStarted {
        conversation: ConversationId,
        channel: Channel,
    },
    LegEnded {
        conversation: ConversationId,
        channel: Channel,
    },
    /// A voice call put these conversations of the agent on hold (they stay
    /// with the agent).
    Preempted {
        agent: AgentId,
        conversations: Vec<ConversationId>,
    },
    /// The call ended: these conversations are active again.
    PreemptionEnded {
        agent: AgentId,
        conversations: Vec<ConversationId>,
    },
    /// The agent answered; `first` for the first response.
    Responded {
        conversation: ConversationId,
        agent: AgentId,
        first: bool,
    },
    SlaBreached {
        conversation: ConversationId,
        kind: SlaKind,
        due: u64,
    },
    PriorityChanged {
        conversation: ConversationId,
        priority: i32,
    },
    /// The customer left while waiting.
    Abandoned {
        conversation: ConversationId,
    },
    Resolved {
        conversation: ConversationId,
    },
    Closed {
        conversation: ConversationId,
    },
}

impl Fact {
    /// The conversation concerned, if one.
    pub fn conversation(&self) -> Option<ConversationId> {
        use Fact::*;
        match self {
            PresenceChanged { .. } | Preempted { .. } | PreemptionEnded { .. } => None,
            Arrived { conversation, .. }
            | CustomerMessage { conversation, .. }
            | OutsideHours { conversation, .. }
            | Queued { conversation, .. }
            | StepWidened { conversation, .. }
            | Reserved { conversation, .. }
            | Assigned { conversation, .. }
            | Unassigned { conversation, .. }
            | Held { conversation }
            | Resumed { conversation }
            | Snoozed { conversation, .. }
            | LegStarted { conversation, .. }
            | LegEnded { conversation, .. }
            | Responded { conversation, .. }
            | SlaBreached { conversation, .. }
            | PriorityChanged { conversation, .. }
            | Abandoned { conversation }
            | Resolved { conversation }
            | Closed { conversation } => Some(*conversation),
        }
    }
}
