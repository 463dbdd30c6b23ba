//! Configuration and vocabulary of the routing engine: agents, queues, rules,
//! capacities, strategies, presence.

use crate::event::Channel;
use crate::routing::hours::BusinessHours;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

macro_rules! string_id {
    ($(#[$m:meta])* $name:ident) => {
        $(#[$m])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub String);

        impl $name {
            pub fn new(s: impl Into<String>) -> Self {
                Self(s.into())
            }
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.0)
            }
        }

        impl From<&str> for $name {
            fn from(s: &str) -> Self {
                Self(s.to_owned())
            }
        }
    };
}

string_id!(
    /// An agent (a user of the agent desk), as mgmt names it.
    AgentId
);
string_id!(
    /// A queue.
    QueueId
);
string_id!(
    /// A site (branch office): owns business hours in its time zone.
    SiteId
);

/// Number of channels ([`Channel`] variants).
pub const CHANNELS: usize = 5;

/// Every channel, in index order.
pub const ALL_CHANNELS: [Channel; CHANNELS] = [
    Channel::Voice,
    Channel::Chat,
    Channel::Messenger,
    Channel::Email,
    Channel::Sms,
];

/// Dense index of a channel (0..CHANNELS).
pub(crate) fn ch_idx(c: Channel) -> usize {
    match c {
        Channel::Voice => 0,
        Channel::Chat => 1,
        Channel::Messenger => 2,
        Channel::Email => 3,
        Channel::Sms => 4,
    }
}

pub(crate) fn ch_bit(c: Channel) -> u8 {
    1 << ch_idx(c)
}

/// How many conversations an agent handles at once, per channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Capacity {
    pub voice: u8,
    pub chat: u8,
    pub messenger: u8,
    pub email: u8,
    pub sms: u8,
}

impl Default for Capacity {
    /// 1 call, 4 chats, 4 messenger threads, 2 emails, 4 SMS threads.
    fn default() -> Self {
        Self {
            voice: 1,
            chat: 4,
            messenger: 4,
            email: 2,
            sms: 4,
        }
    }
}

impl Capacity {
    pub fn get(&self, c: Channel) -> u8 {
        match c {
            Channel::Voice => self.voice,
            Channel::Chat => self.chat,
            Channel::Messenger => self.messenger,
            Channel::Email => self.email,
            Channel::Sms => self.sms,
        }
    }

    /// Sets the capacity of channel `c` to `v`.
    pub fn set(&mut self, c: Channel, v: u8) {
        let slot = match c {
            Channel::Voice => &mut self.voice,
            Channel::Chat => &mut self.chat,
            Channel::Messenger => &mut self.messenger,
            Channel::Email => &mut self.email,
            Channel::Sms => &mut self.sms,
        };
        *slot = v;
    }

    /// The capacities in [`ALL_CHANNELS`] order (what the engine's load
    /// arrays hold), back into a [`Capacity`].
    pub fn from_array(a: &[u8; CHANNELS]) -> Capacity {
        let mut c = Capacity {
            voice: 0,
            chat: 0,
            messenger: 0,
            email: 0,
            sms: 0,
        };
        for (ch, v) in ALL_CHANNELS.into_iter().zip(a) {
            c.set(ch, *v);
        }
        c
    }

    pub(crate) fn as_array(&self) -> [u8; CHANNELS] {
        let mut a = [0u8; CHANNELS];
        for c in ALL_CHANNELS {
            a[ch_idx(c)] = self.get(c);
        }
        a
    }
}

/// Agent presence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Presence {
    /// Routable.
    Available,
    /// Logged in, keeps their conversations, gets no new ones.
    Busy,
    /// Away from the desk: like busy.
    Away,
    /// Logged out: conversations are kept or requeued per queue policy.
    Offline,
    /// After-call work until `until` (ms), then back to available.
    WrapUp { until: u64 },
}

/// Which agent gets a conversation when several can take it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    /// The agent whose last routing activity (became available, got or
    /// finished a conversation) is the oldest.
    #[default]
    LongestIdle,
    /// Members take turns: the one whose last turn in this queue is oldest.
    RoundRobin,
    /// The agent with the lowest share of their total capacity in use.
    LeastOccupied,
}

/// What happens to an agent's conversations from a queue when they go offline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OfflinePolicy {
    /// Put them back in the queue, keeping their original age.
    #[default]
    Requeue,
    /// They stay with the agent.
    Keep,
}

/// What to do with a conversation that arrives outside business hours. The
/// conversation still enters the queue (agents see it when the site opens);
/// mgmt carries out the action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case", deny_unknown_fields)]
pub enum OutsideHoursAction {
    AutoReply { text: String },
    Voicemail,
    CallbackOffer,
}

/// A skill requirement: the agent has `skill` at `min_level` or more.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SkillReq {
    pub skill: String,
    pub min_level: u8,
}

/// One step of a queue's widening skill requirements: from `after_ms` of
/// waiting in the queue, agents meeting every requirement may take it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SkillStep {
    pub after_ms: u64,
    #[serde(default)]
    pub require: Vec<SkillReq>,
}

/// Move a conversation to another queue after waiting `after_ms` in this one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Overflow {
    pub after_ms: u64,
    pub to: QueueId,
}

/// Service-level agreement timers of a queue.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SlaConfig {
    pub first_response_ms: Option<u64>,
    pub next_response_ms: Option<u64>,
    pub resolution_ms: Option<u64>,
    /// Count only the queue site's business hours.
    pub business_hours: bool,
}

/// Which agents are members of a queue: everyone listed in `agents`, plus,
/// when any of `teams`, `sites`, `skills` is given, every agent matching all
/// the given criteria (team in `teams`, site in `sites`, every skill).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Members {
    pub agents: Vec<AgentId>,
    pub teams: Vec<String>,
    pub sites: Vec<SiteId>,
    pub skills: Vec<SkillReq>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueueConfig {
    pub id: QueueId,
    #[serde(default)]
    pub members: Members,
    /// Site whose business hours and time zone apply.
    #[serde(default)]
    pub site: Option<SiteId>,
    #[serde(default)]
    pub strategy: Strategy,
    /// Widening skill steps; empty means one step: any member.
    #[serde(default)]
    pub steps: Vec<SkillStep>,
    #[serde(default)]
    pub overflow: Option<Overflow>,
    /// A returning customer waits this long for the agent who last served
    /// them (0: no sticky routing).
    #[serde(default)]
    pub sticky_wait_ms: u64,
    #[serde(default)]
    pub offline_policy: OfflinePolicy,
    #[serde(default)]
    pub outside_hours: Option<OutsideHoursAction>,
    #[serde(default)]
    pub sla: SlaConfig,
}

impl QueueConfig {
    /// A queue with every option at its default and no members.
    pub fn new(id: impl Into<QueueId>) -> Self {
        Self {
            id: id.into(),
            members: Members::default(),
            site: None,
            strategy: Strategy::default(),
            steps: Vec::new(),
            overflow: None,
            sticky_wait_ms: 0,
            offline_policy: OfflinePolicy::default(),
            outside_hours: None,
            sla: SlaConfig::default(),
        }
    }
}

impl From<String> for QueueId {
    fn from(s: String) -> Self {
        Self(s)
    }
}

impl From<String> for AgentId {
    fn from(s: String) -> Self {
        Self(s)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    pub id: AgentId,
    #[serde(default)]
    pub team: Option<String>,
    #[serde(default)]
    pub site: Option<SiteId>,
    /// Skill name -> level.
    #[serde(default)]
    pub skills: BTreeMap<String, u8>,
    /// Overrides [`RoutingConfig::default_capacity`].
    #[serde(default)]
    pub capacity: Option<Capacity>,
}

impl AgentConfig {
    pub fn new(id: impl Into<AgentId>) -> Self {
        Self {
            id: id.into(),
            team: None,
            site: None,
            skills: BTreeMap::new(),
            capacity: None,
        }
    }
}

/// Conditions of an entry rule; every given condition must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RuleMatch {
    pub channel: Option<Channel>,
    /// Branch line (label or number) called or texted.
    pub line: Option<String>,
    pub language: Option<String>,
    /// Case-insensitive substring of the customer's first message.
    pub keyword: Option<String>,
    /// The contact carries this tag.
    pub customer_tag: Option<String>,
}

/// Entry rule: the first rule whose conditions match picks the queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EntryRule {
    #[serde(default)]
    pub when: RuleMatch,
    pub queue: QueueId,
    /// Priority given to the conversation (higher first); default 0.
    #[serde(default)]
    pub priority: Option<i32>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SiteConfig {
    pub id: SiteId,
    pub hours: BusinessHours,
}

/// Everything the engine needs to know up front.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoutingConfig {
    pub agents: Vec<AgentConfig>,
    pub queues: Vec<QueueConfig>,
    #[serde(default)]
    pub rules: Vec<EntryRule>,
    /// Where a conversation no rule matched goes.
    #[serde(default)]
    pub default_queue: Option<QueueId>,
    #[serde(default)]
    pub sites: Vec<SiteConfig>,
    #[serde(default)]
    pub default_capacity: Capacity,
    /// After-call work after a voice leg ends (0: none).
    #[serde(default)]
    pub wrap_up_ms: u64,
    /// A voice call puts the agent's chats/messenger threads on hold and stops
    /// new ones while it lasts.
    #[serde(default = "yes")]
    pub voice_preempts: bool,
    /// How long a conversation waits for a specific agent (transfer to an
    /// agent, customer answering a held conversation while the agent is full)
    /// before it goes to its queue.
    #[serde(default = "default_agent_wait")]
    pub agent_wait_ms: u64,
    /// A resolved or abandoned conversation is closed after this long
    /// without news (default 4 days; 0: never): the engine then forgets
    /// it, so its memory stays bounded.
    #[serde(default = "default_close_after")]
    pub close_after_ms: u64,
}

fn yes() -> bool {
    true
}

fn default_agent_wait() -> u64 {
    60_000
}

/// 4 days.
pub const DEFAULT_CLOSE_AFTER_MS: u64 = 4 * 24 * 3_600_000;

fn default_close_after() -> u64 {
    DEFAULT_CLOSE_AFTER_MS
}

impl RoutingConfig {
    /// A config with the given agents and queues and defaults for the rest.
    pub fn new(agents: Vec<AgentConfig>, queues: Vec<QueueConfig>) -> Self {
        Self {
            agents,
            queues,
            rules: Vec::new(),
            default_queue: None,
            sites: Vec::new(),
            default_capacity: Capacity::default(),
            wrap_up_ms: 0,
            voice_preempts: true,
            agent_wait_ms: default_agent_wait(),
            close_after_ms: DEFAULT_CLOSE_AFTER_MS,
        }
    }
}

/// What the engine knows about an inbound contact when routing it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Attributes {
    pub line: Option<String>,
    pub language: Option<String>,
    pub text: Option<String>,
    /// Tags of the contact.
    pub customer_tags: Vec<String>,
}

/// Where a transfer goes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "to", rename_all = "snake_case", deny_unknown_fields)]
pub enum TransferTarget {
    Agent { agent: AgentId },
    Queue { queue: QueueId },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capacity_set_and_from_array_agree_with_get_for_every_channel() {
        let mut c = Capacity::default();
        for (i, ch) in ALL_CHANNELS.into_iter().enumerate() {
            c.set(ch, 10 + i as u8);
        }
        for (i, ch) in ALL_CHANNELS.into_iter().enumerate() {
            assert_eq!(c.get(ch), 10 + i as u8, "{ch}");
        }
        assert_eq!(Capacity::from_array(&c.as_array()), c);
    }
}
