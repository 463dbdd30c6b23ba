//! The routing engine: deterministic, no I/O, time passed in by the caller.
//!
//! Every state change goes through [`Router::apply`] of one [`Fact`]; deciding
//! (what [`Router::handle`] does) only chooses which facts to apply. Replaying
//! the facts therefore rebuilds exactly the same state.
//!
//! Data structures (sized for 10 000 agents, 500 queues, 100 000 waiting):
//! * a *slot* is `(queue, skill step, channel)`;
//! * `waiting[slot]`: ordered set of waiting conversations keyed by
//!   (priority desc, age asc, id): the best is the first;
//! * `avail[slot]`: ordered set of agents that can take one more conversation
//!   of that channel right now and meet that step's skills, keyed by the
//!   queue's strategy: the chosen agent is the first;
//! * per agent: load and capacity per channel, its slots, its reservations;
//! * timers: an ordered set of (due, timer), validated lazily when they fire.
//!
//! A decision is then O(log n) set operations, times the (small) number of
//! slots of one agent.

use crate::contact::ContactId;
use crate::event::Channel;
use crate::id::ConversationId;
use crate::routing::hours::{Calendar, HoursError};
use crate::routing::model::*;
use crate::routing::record::*;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap};

const VOICE: usize = 0;
/// Channels a voice call preempts: chat and messenger.
const PREEMPTABLE: u8 = 0b0000_0110;
/// Most entries scanned when a multi-leg conversation needs an agent with
/// room on every leg.
const FIT_SCAN: usize = 64;

/// Why a configuration cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("agent {0} is configured twice: agent ids must be unique")]
    DuplicateAgent(AgentId),
    #[error("queue {0} is configured twice: queue ids must be unique")]
    DuplicateQueue(QueueId),
    #[error("{what} names queue {queue}, which is not configured")]
    UnknownQueue { what: String, queue: QueueId },
    #[error("{what} names site {site}, which is not configured")]
    UnknownSite { what: String, site: SiteId },
    #[error("queue {queue} lists agent {agent}, who is not configured")]
    UnknownMember { queue: QueueId, agent: AgentId },
    #[error("site {site}: {source}")]
    Hours {
        site: SiteId,
        #[source]
        source: HoursError,
    },
    #[error("queue {0} has more than 32 skill steps")]
    TooManySteps(QueueId),
}

/// Why a command was refused. Nothing in the state changed because of it.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RoutingError {
    #[error("unknown agent {0}")]
    UnknownAgent(AgentId),
    #[error("unknown queue {0}")]
    UnknownQueue(QueueId),
    #[error("unknown conversation {0}")]
    UnknownConversation(ConversationId),
    #[error("conversation {0}: no entry rule matched and no default queue is configured")]
    NoQueue(ConversationId),
    #[error("conversation {conversation} is {state}; cannot {action}")]
    InvalidState {
        conversation: ConversationId,
        state: &'static str,
        action: &'static str,
    },
    #[error("agent {agent} has no free {channel:?} capacity")]
    CapacityExceeded { agent: AgentId, channel: Channel },
    #[error("conversation {conversation} has no open {channel:?} leg")]
    NoSuchLeg {
        conversation: ConversationId,
        channel: Channel,
    },
    #[error("conversation {conversation} already has an open {channel:?} leg")]
    LegAlreadyOpen {
        conversation: ConversationId,
        channel: Channel,
    },
    /// A record does not fit the state (replay of a foreign or corrupted log,
    /// or a different config).
    #[error("record {index} does not fit the routing state: {reason}")]
    Inconsistent { index: usize, reason: String },
}

/// A refused command, with the records that timers due before it produced
/// (they happened regardless and must be appended to the log).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{error}")]
pub struct Rejected {
    pub error: RoutingError,
    pub records: Vec<Record>,
}

/// Routing state of a conversation, as seen from outside.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum RouteState {
    /// Between two facts of one decision; never visible after `handle`.
    New,
    Waiting {
        step: u8,
        entered_at: u64,
    },
    Reserved {
        until: u64,
    },
    Active,
    Held,
    Snoozed {
        until: u64,
    },
    Resolved,
    Abandoned,
}

impl RouteState {
    fn name(&self) -> &'static str {
        match self {
            RouteState::New => "new",
            RouteState::Waiting { .. } => "waiting",
            RouteState::Reserved { .. } => "reserved",
            RouteState::Active => "active",
            RouteState::Held => "held",
            RouteState::Snoozed { .. } => "snoozed",
            RouteState::Resolved => "resolved",
            RouteState::Abandoned => "abandoned",
        }
    }
}

/// A conversation's routing view.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConversationView {
    pub id: ConversationId,
    pub state: RouteState,
    /// Assigned (active/held/snoozed) or reserved agent.
    pub agent: Option<AgentId>,
    pub queue: QueueId,
    pub channel: Channel,
    /// Open legs (channels using the agent's capacity while active).
    pub legs: Vec<Channel>,
    pub priority: i32,
    pub age: u64,
    pub preempted: bool,
}

/// An agent's routing view.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentView {
    pub id: AgentId,
    pub presence: Presence,
    /// Active conversations per channel, in [`ALL_CHANNELS`] order.
    pub load: [u8; CHANNELS],
    pub capacity: [u8; CHANNELS],
    /// Assigned conversations (active, held, snoozed).
    pub conversations: Vec<ConversationId>,
    pub idle_since: u64,
}

/// Everything routing-relevant, in a deterministic order: two engines with
/// equal snapshots route the same way.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    pub conversations: Vec<ConversationView>,
    pub agents: Vec<AgentView>,
    /// Waiting conversations per queue, best first.
    pub waiting: BTreeMap<QueueId, Vec<ConversationId>>,
    pub round_robin_turns: Vec<(QueueId, AgentId, u64)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
struct WaitKey {
    neg_priority: i64,
    age: u64,
    id: ConversationId,
}

type AKey = (u64, u64, u32);

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Timer {
    Step {
        conv: ConversationId,
        epoch: u64,
        step: u8,
    },
    Overflow {
        conv: ConversationId,
        epoch: u64,
    },
    ReserveEnd {
        conv: ConversationId,
        epoch: u64,
    },
    SnoozeEnd {
        conv: ConversationId,
        epoch: u64,
    },
    /// A resolved or abandoned conversation stayed quiet for
    /// [`RoutingConfig::close_after_ms`]: close it.
    CloseQuiet {
        conv: ConversationId,
        epoch: u64,
    },
    WrapEnd {
        agent: u32,
        until: u64,
    },
    Sla {
        conv: ConversationId,
        kind: SlaKind,
        due: u64,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum St {
    New,
    Waiting { step: u8, entered: u64 },
    Reserved { agent: u32, until: u64 },
    Active { agent: u32 },
    Held { agent: u32 },
    Snoozed { agent: u32, until: u64 },
    Resolved,
    Abandoned,
}

#[derive(Debug, Clone)]
struct Conv {
    contact: Option<ContactId>,
    channel: Channel,
    legs: u8,
    priority: i32,
    age: u64,
    queue: u32,
    state: St,
    epoch: u64,
    wait_since: u64,
    preempted: bool,
    reserve_reason: Option<AssignReason>,
    responded: bool,
    awaiting_since: Option<u64>,
    sla_due: [Option<u64>; 3],
}

impl Conv {
    fn key(&self, id: ConversationId) -> WaitKey {
        WaitKey {
            neg_priority: -i64::from(self.priority),
            age: self.age,
            id,
        }
    }

    /// Channel used to look for an agent: voice when a call is open.
    /// Always one of the legs it will need, so an agent with room for all
    /// of them is in that channel's availability index.
    fn route_channel(&self) -> Channel {
        if self.legs == 0 || self.legs & ch_bit(self.channel) != 0 && self.legs & 1 == 0 {
            self.channel
        } else {
            ALL_CHANNELS
                .into_iter()
                .find(|c| self.legs & ch_bit(*c) != 0)
                .unwrap_or(self.channel)
        }
    }

    /// Legs using the agent's capacity now: every leg while active; only
    /// the call while held (a held call still occupies the line).
    fn load_legs(&self) -> u8 {
        match self.state {
            St::Active { .. } => self.legs,
            St::Held { .. } => self.legs & 1,
            _ => 0,
        }
    }

    /// Legs that will use capacity once assigned.
    fn needed_legs(&self) -> u8 {
        if self.legs == 0 {
            ch_bit(self.channel)
        } else {
            self.legs
        }
    }

    fn agent(&self) -> Option<u32> {
        match self.state {
            St::Reserved { agent, .. }
            | St::Active { agent }
            | St::Held { agent }
            | St::Snoozed { agent, .. } => Some(agent),
            _ => None,
        }
    }
}

#[derive(Debug, Clone)]
struct Membership {
    queue: u32,
    /// Bit s set: the agent meets skill step s.
    steps: u32,
    rr_last: u64,
}

#[derive(Debug, Clone)]
struct Agent {
    id: AgentId,
    cap: [u8; CHANNELS],
    presence: Presence,
    load: [u8; CHANNELS],
    idle_since: u64,
    memberships: Vec<Membership>,
    indexed: Vec<(u32, AKey)>,
    convs: BTreeSet<ConversationId>,
    reserved: BTreeSet<WaitKey>,
}

#[derive(Debug, Clone)]
struct Queue {
    cfg: QueueConfig,
    /// Normalised: at least one step, sorted by `after_ms`, first at 0.
    steps: Vec<SkillStep>,
    slot_base: u32,
    overflow_to: Option<u32>,
    calendar: Option<usize>,
    rr_turn: u64,
}

/// The routing engine. See the module docs.
#[derive(Debug, Clone)]
pub struct Router {
    cfg: RoutingConfig,
    now: u64,
    agents: Vec<Agent>,
    agent_ix: HashMap<AgentId, u32>,
    queues: Vec<Queue>,
    queue_ix: HashMap<QueueId, u32>,
    calendars: Vec<Calendar>,
    rules: Vec<(EntryRule, u32)>,
    default_queue: Option<u32>,
    convs: HashMap<ConversationId, Conv>,
    avail: Vec<BTreeSet<AKey>>,
    waiting: Vec<BTreeSet<WaitKey>>,
    timers: BTreeSet<(u64, Timer)>,
    dirty_agents: BTreeSet<u32>,
    dirty_convs: Vec<ConversationId>,
    last_agent: HashMap<ContactId, u32>,
    /// Source of conversation epochs: a timer is valid only while its
    /// conversation keeps the epoch it was set with. Global, so a
    /// conversation id used again never revives an old timer.
    epochs: u64,
}

fn meets(agent: &AgentConfig, reqs: &[SkillReq]) -> bool {
    reqs.iter().all(|r| {
        agent
            .skills
            .get(&r.skill)
            .is_some_and(|l| *l >= r.min_level)
    })
}

fn legs_list(legs: u8) -> Vec<Channel> {
    ALL_CHANNELS
        .iter()
        .copied()
        .filter(|c| legs & ch_bit(*c) != 0)
        .collect()
}

fn inconsistent(reason: impl Into<String>) -> RoutingError {
    RoutingError::Inconsistent {
        index: 0,
        reason: reason.into(),
    }
}

impl Router {
    /// Builds an engine from its configuration. Every agent starts offline.
    pub fn new(cfg: RoutingConfig) -> Result<Self, ConfigError> {
        let mut calendars = Vec::new();
        let mut site_ix = HashMap::new();
        for s in &cfg.sites {
            let c = Calendar::new(&s.hours).map_err(|source| ConfigError::Hours {
                site: s.id.clone(),
                source,
            })?;
            site_ix.insert(s.id.clone(), calendars.len());
            calendars.push(c);
        }
        let mut queue_ix = HashMap::new();
        for (i, q) in cfg.queues.iter().enumerate() {
            if queue_ix.insert(q.id.clone(), i as u32).is_some() {
                return Err(ConfigError::DuplicateQueue(q.id.clone()));
            }
        }
        let find_q = |what: String, id: &QueueId| {
            queue_ix
                .get(id)
                .copied()
                .ok_or_else(|| ConfigError::UnknownQueue {
                    what,
                    queue: id.clone(),
                })
        };
        let mut queues = Vec::new();
        let mut slots = 0u32;
        for q in &cfg.queues {
            let mut steps = q.steps.clone();
            steps.sort_by_key(|s| s.after_ms);
            if steps.len() > 32 {
                return Err(ConfigError::TooManySteps(q.id.clone()));
            }
            match steps.first_mut() {
                Some(s) => s.after_ms = 0,
                None => steps.push(SkillStep {
                    after_ms: 0,
                    require: Vec::new(),
                }),
            }
            let overflow_to = match &q.overflow {
                Some(o) => Some(find_q(format!("overflow of queue {}", q.id), &o.to)?),
                None => None,
            };
            let calendar = q.site.as_ref().and_then(|s| site_ix.get(s).copied());
            let base = slots;
            slots += steps.len() as u32 * CHANNELS as u32;
            queues.push(Queue {
                cfg: q.clone(),
                steps,
                slot_base: base,
                overflow_to,
                calendar,
                rr_turn: 0,
            });
        }
        let mut rules = Vec::new();
        for (i, r) in cfg.rules.iter().enumerate() {
            rules.push((r.clone(), find_q(format!("entry rule {i}"), &r.queue)?));
        }
        let default_queue = match &cfg.default_queue {
            Some(q) => Some(find_q("default_queue".into(), q)?),
            None => None,
        };
        let mut agent_ix = HashMap::new();
        for (i, a) in cfg.agents.iter().enumerate() {
            if agent_ix.insert(a.id.clone(), i as u32).is_some() {
                return Err(ConfigError::DuplicateAgent(a.id.clone()));
            }
        }
        for q in &cfg.queues {
            for m in &q.members.agents {
                if !agent_ix.contains_key(m) {
                    return Err(ConfigError::UnknownMember {
                        queue: q.id.clone(),
                        agent: m.clone(),
                    });
                }
            }
        }
        let mut agents = Vec::new();
        for a in &cfg.agents {
            let mut memberships = Vec::new();
            for (qi, q) in queues.iter().enumerate() {
                let m = &q.cfg.members;
                let listed = m.agents.contains(&a.id);
                let by_attr = (!m.teams.is_empty() || !m.sites.is_empty() || !m.skills.is_empty())
                    && (m.teams.is_empty() || a.team.as_ref().is_some_and(|t| m.teams.contains(t)))
                    && (m.sites.is_empty() || a.site.as_ref().is_some_and(|s| m.sites.contains(s)))
                    && meets(a, &m.skills);
                if !(listed || by_attr) {
                    continue;
                }
                let mut steps = 0u32;
                for (si, s) in q.steps.iter().enumerate() {
                    if meets(a, &s.require) {
                        steps |= 1 << si;
                    }
                }
                memberships.push(Membership {
                    queue: qi as u32,
                    steps,
                    rr_last: 0,
                });
            }
            agents.push(Agent {
                id: a.id.clone(),
                cap: a.capacity.unwrap_or(cfg.default_capacity).as_array(),
                presence: Presence::Offline,
                load: [0; CHANNELS],
                idle_since: 0,
                memberships,
                indexed: Vec::new(),
                convs: BTreeSet::new(),
                reserved: BTreeSet::new(),
            });
        }
        for q in &cfg.queues {
            if let Some(site) = &q.site
                && !site_ix.contains_key(site)
            {
                return Err(ConfigError::UnknownSite {
                    what: format!("queue {}", q.id),
                    site: site.clone(),
                });
            }
        }
        Ok(Self {
            cfg,
            now: 0,
            agents,
            agent_ix,
            queues,
            queue_ix,
            calendars,
            rules,
            default_queue,
            convs: HashMap::new(),
            avail: vec![BTreeSet::new(); slots as usize],
            waiting: vec![BTreeSet::new(); slots as usize],
            timers: BTreeSet::new(),
            dirty_agents: BTreeSet::new(),
            dirty_convs: Vec::new(),
            last_agent: HashMap::new(),
            epochs: 0,
        })
    }

    /// Rebuilds the engine from its records (in log order) with the same
    /// configuration. No decision is taken while replaying.
    pub fn replay<'a>(
        cfg: RoutingConfig,
        records: impl IntoIterator<Item = &'a Record>,
    ) -> Result<Self, ReplayError> {
        let mut r = Self::new(cfg).map_err(ReplayError::Config)?;
        for (index, rec) in records.into_iter().enumerate() {
            r.now = r.now.max(rec.at);
            r.apply(rec.at, &rec.fact).map_err(|e| {
                ReplayError::Record(match e {
                    RoutingError::Inconsistent { reason, .. } => {
                        RoutingError::Inconsistent { index, reason }
                    }
                    other => RoutingError::Inconsistent {
                        index,
                        reason: other.to_string(),
                    },
                })
            })?;
        }
        r.dirty_agents.clear();
        r.dirty_convs.clear();
        Ok(r)
    }

    pub fn config(&self) -> &RoutingConfig {
        &self.cfg
    }

    /// Engine time: the latest time seen.
    pub fn now(&self) -> u64 {
        self.now
    }

    /// When the next timer is due: call [`Router::tick`] then.
    pub fn next_deadline(&mut self) -> Option<u64> {
        while let Some(&(due, t)) = self.timers.first() {
            if self.timer_valid(&t) {
                return Some(due);
            }
            self.timers.pop_first();
        }
        None
    }

    /// Fires the timers due at or before `now` and routes what they freed
    /// (the same as `handle(now, Command::Tick)`).
    pub fn tick(&mut self, now: u64) -> Result<Vec<Record>, Rejected> {
        self.handle(now, Command::Tick)
    }

    /// Handles one command at time `now` (ms; earlier than [`Router::now`]
    /// counts as now). Returns the records to append, in order.
    pub fn handle(&mut self, now: u64, cmd: Command) -> Result<Vec<Record>, Rejected> {
        let mut out = Vec::new();
        if let Err(error) = self.fire_timers(now, &mut out) {
            return Err(Rejected {
                error,
                records: out,
            });
        }
        let now = self.now;
        let res = self
            .command(now, cmd, &mut out)
            .and_then(|()| self.dispatch(now, &mut out));
        match res {
            Ok(()) => Ok(out),
            Err(error) => Err(Rejected {
                error,
                records: out,
            }),
        }
    }

    // ----- queries -------------------------------------------------------

    pub fn conversation(&self, id: &ConversationId) -> Option<ConversationView> {
        self.convs.get(id).map(|c| self.view(*id, c))
    }

    pub fn agent(&self, id: &AgentId) -> Option<AgentView> {
        self.agent_ix
            .get(id)
            .map(|&a| self.agent_view(&self.agents[a as usize]))
    }

    /// Every conversation routing knows (waiting, reserved, assigned, held,
    /// snoozed, resolved but not closed), in no particular order.
    pub fn conversations(&self) -> impl Iterator<Item = ConversationView> + '_ {
        self.convs.iter().map(|(id, c)| self.view(*id, c))
    }

    /// Whether `agent` is a member of `queue` (may be offered its work).
    pub fn is_member(&self, agent: &AgentId, queue: &QueueId) -> bool {
        let (Some(&a), Some(&q)) = (self.agent_ix.get(agent), self.queue_ix.get(queue)) else {
            return false;
        };
        self.agents[a as usize]
            .memberships
            .iter()
            .any(|m| m.queue == q)
    }

    /// Waiting conversations of a queue, best first (all skill steps and
    /// channels merged by priority, then age).
    pub fn waiting(&self, queue: &QueueId) -> Vec<ConversationId> {
        let Some(&q) = self.queue_ix.get(queue) else {
            return Vec::new();
        };
        let q = &self.queues[q as usize];
        let n = q.steps.len() * CHANNELS;
        let mut keys: Vec<WaitKey> = (0..n)
            .flat_map(|i| self.waiting[q.slot_base as usize + i].iter().copied())
            .collect();
        keys.sort_unstable();
        keys.into_iter().map(|k| k.id).collect()
    }

    /// Number of conversations waiting in queues (not counting reservations).
    pub fn waiting_count(&self) -> usize {
        self.waiting.iter().map(BTreeSet::len).sum()
    }

    pub fn snapshot(&self) -> Snapshot {
        let mut conversations: Vec<_> =
            self.convs.iter().map(|(id, c)| self.view(*id, c)).collect();
        conversations.sort_by_key(|v| v.id);
        let agents = self.agents.iter().map(|a| self.agent_view(a)).collect();
        let waiting = self
            .queues
            .iter()
            .map(|q| (q.cfg.id.clone(), self.waiting(&q.cfg.id)))
            .collect();
        let mut round_robin_turns = Vec::new();
        for a in &self.agents {
            for m in &a.memberships {
                if m.rr_last > 0 {
                    round_robin_turns.push((
                        self.queues[m.queue as usize].cfg.id.clone(),
                        a.id.clone(),
                        m.rr_last,
                    ));
                }
            }
        }
        Snapshot {
            conversations,
            agents,
            waiting,
            round_robin_turns,
        }
    }

    fn view(&self, id: ConversationId, c: &Conv) -> ConversationView {
        let state = match c.state {
            St::New => RouteState::New,
            St::Waiting { step, entered } => RouteState::Waiting {
                step,
                entered_at: entered,
            },
            St::Reserved { until, .. } => RouteState::Reserved { until },
            St::Active { .. } => RouteState::Active,
            St::Held { .. } => RouteState::Held,
            St::Snoozed { until, .. } => RouteState::Snoozed { until },
            St::Resolved => RouteState::Resolved,
            St::Abandoned => RouteState::Abandoned,
        };
        ConversationView {
            id,
            state,
            agent: c.agent().map(|a| self.agents[a as usize].id.clone()),
            queue: self.queues[c.queue as usize].cfg.id.clone(),
            channel: c.channel,
            legs: legs_list(c.legs),
            priority: c.priority,
            age: c.age,
            preempted: c.preempted,
        }
    }

    fn agent_view(&self, a: &Agent) -> AgentView {
        AgentView {
            id: a.id.clone(),
            presence: a.presence,
            load: a.load,
            capacity: a.cap,
            conversations: a.convs.iter().copied().collect(),
            idle_since: a.idle_since,
        }
    }

    // ----- capacity and indexes -------------------------------------------

    fn fits(&self, a: u32, legs: u8) -> bool {
        let ag = &self.agents[a as usize];
        ALL_CHANNELS.iter().all(|&c| {
            let i = ch_idx(c);
            legs & (1 << i) == 0 || ag.load[i] < ag.cap[i]
        })
    }

    fn blocked(&self, ag: &Agent, legs: u8) -> bool {
        self.cfg.voice_preempts && ag.load[VOICE] > 0 && legs & PREEMPTABLE != 0 && legs & 1 == 0
    }

    /// Can the agent be given (routed) a conversation needing these legs now?
    fn can_take(&self, a: u32, legs: u8) -> bool {
        let ag = &self.agents[a as usize];
        ag.presence == Presence::Available && self.fits(a, legs) && !self.blocked(ag, legs)
    }

    fn akey(&self, a: u32, m: &Membership) -> AKey {
        let ag = &self.agents[a as usize];
        match self.queues[m.queue as usize].cfg.strategy {
            Strategy::LongestIdle => (ag.idle_since, 0, a),
            Strategy::RoundRobin => (m.rr_last, 0, a),
            Strategy::LeastOccupied => {
                let load: u64 = ag.load.iter().map(|&l| u64::from(l)).sum();
                let cap: u64 = ag.cap.iter().map(|&l| u64::from(l)).sum::<u64>().max(1);
                (load * 1_000_000 / cap, ag.idle_since, a)
            }
        }
    }

    fn unindex(&mut self, a: u32) {
        let entries = std::mem::take(&mut self.agents[a as usize].indexed);
        for (slot, key) in &entries {
            self.avail[*slot as usize].remove(key);
        }
        let mut entries = entries;
        entries.clear();
        self.agents[a as usize].indexed = entries;
    }

    fn reindex(&mut self, a: u32) {
        let mut entries = std::mem::take(&mut self.agents[a as usize].indexed);
        let ag = &self.agents[a as usize];
        if ag.presence == Presence::Available {
            for m in &ag.memberships {
                let key = self.akey(a, m);
                let q = &self.queues[m.queue as usize];
                for c in ALL_CHANNELS {
                    if !self.can_take(a, ch_bit(c)) {
                        continue;
                    }
                    for s in 0..q.steps.len() {
                        if m.steps & (1 << s) != 0 {
                            let slot = q.slot_base + (s * CHANNELS + ch_idx(c)) as u32;
                            entries.push((slot, key));
                        }
                    }
                }
            }
        }
        for (slot, key) in &entries {
            self.avail[*slot as usize].insert(*key);
        }
        self.agents[a as usize].indexed = entries;
    }

    fn change_load(&mut self, a: u32, legs: u8, add: bool, at: u64) -> Result<(), RoutingError> {
        if legs == 0 {
            return Ok(());
        }
        self.unindex(a);
        let ag = &mut self.agents[a as usize];
        for i in 0..CHANNELS {
            if legs & (1 << i) != 0 {
                if add {
                    ag.load[i] = ag.load[i].saturating_add(1);
                } else {
                    ag.load[i] = ag.load[i].saturating_sub(1);
                }
            }
        }
        ag.idle_since = at;
        self.reindex(a);
        if !add {
            self.dirty_agents.insert(a);
        }
        Ok(())
    }

    fn wslot(&self, c: &Conv, step: u8) -> usize {
        let q = &self.queues[c.queue as usize];
        q.slot_base as usize + usize::from(step) * CHANNELS + ch_idx(c.route_channel())
    }

    // ----- applying facts ------------------------------------------------

    fn agent_idx(&self, id: &AgentId) -> Result<u32, RoutingError> {
        self.agent_ix
            .get(id)
            .copied()
            .ok_or_else(|| RoutingError::UnknownAgent(id.clone()))
    }

    fn queue_idx(&self, id: &QueueId) -> Result<u32, RoutingError> {
        self.queue_ix
            .get(id)
            .copied()
            .ok_or_else(|| RoutingError::UnknownQueue(id.clone()))
    }

    fn conv(&self, id: &ConversationId) -> Result<&Conv, RoutingError> {
        self.convs
            .get(id)
            .ok_or(RoutingError::UnknownConversation(*id))
    }

    fn conv_mut(&mut self, id: &ConversationId) -> Result<&mut Conv, RoutingError> {
        self.convs
            .get_mut(id)
            .ok_or(RoutingError::UnknownConversation(*id))
    }

    fn next_epoch(&mut self) -> u64 {
        self.epochs += 1;
        self.epochs
    }

    /// Takes a conversation out of wherever it is indexed; state becomes New.
    fn detach(&mut self, id: ConversationId, at: u64) -> Result<(), RoutingError> {
        let c = self.conv(&id)?.clone();
        let key = c.key(id);
        match c.state {
            St::Waiting { step, .. } => {
                let slot = self.wslot(&c, step);
                self.waiting[slot].remove(&key);
            }
            St::Reserved { agent, .. } => {
                self.agents[agent as usize].reserved.remove(&key);
            }
            St::Active { agent } | St::Held { agent } | St::Snoozed { agent, .. } => {
                self.agents[agent as usize].convs.remove(&id);
                self.change_load(agent, c.load_legs(), false, at)?;
                self.conv_mut(&id)?.wait_since = at;
            }
            St::New | St::Resolved | St::Abandoned => {}
        }
        let epoch = self.next_epoch();
        let c = self.conv_mut(&id)?;
        c.state = St::New;
        c.preempted = false;
        c.reserve_reason = None;
        c.epoch = epoch;
        Ok(())
    }

    fn schedule_sla(
        &mut self,
        id: ConversationId,
        kind: SlaKind,
        from: u64,
    ) -> Result<(), RoutingError> {
        let c = self.conv(&id)?;
        let q = &self.queues[c.queue as usize];
        let dur = match kind {
            SlaKind::FirstResponse => q.cfg.sla.first_response_ms,
            SlaKind::NextResponse => q.cfg.sla.next_response_ms,
            SlaKind::Resolution => q.cfg.sla.resolution_ms,
        };
        let due = match (dur, q.cfg.sla.business_hours, q.calendar) {
            (None, _, _) => None,
            (Some(d), true, Some(cal)) => self.calendars[cal].add_business_ms(from, d),
            (Some(d), _, _) => Some(from.saturating_add(d)),
        };
        let c = self.conv_mut(&id)?;
        c.sla_due[kind as usize] = due;
        if let Some(due) = due {
            self.timers.insert((
                due,
                Timer::Sla {
                    conv: id,
                    kind,
                    due,
                },
            ));
        }
        Ok(())
    }

    /// Applies one fact. The only place state changes.
    fn apply(&mut self, at: u64, fact: &Fact) -> Result<(), RoutingError> {
        match fact {
            Fact::PresenceChanged { agent, presence } => {
                let a = self.agent_idx(agent)?;
                self.unindex(a);
                let ag = &mut self.agents[a as usize];
                ag.presence = *presence;
                if *presence == Presence::Available {
                    ag.idle_since = at;
                    self.dirty_agents.insert(a);
                }
                if let Presence::WrapUp { until } = presence {
                    self.timers.insert((
                        *until,
                        Timer::WrapEnd {
                            agent: a,
                            until: *until,
                        },
                    ));
                }
                self.reindex(a);
            }
            Fact::Arrived {
                conversation,
                contact,
                channel,
                queue,
                priority,
                reopened,
            } => {
                let q = self.queue_idx(queue)?;
                if let Some(c) = self.convs.get(conversation)
                    && !matches!(c.state, St::Resolved | St::Abandoned)
                {
                    return Err(inconsistent(format!(
                        "conversation {conversation} arrived while {:?}",
                        c.state
                    )));
                }
                let prev = self.convs.get(conversation);
                let responded = prev.is_some_and(|c| c.responded);
                let epoch = self.next_epoch();
                let prev = self.convs.get(conversation);
                let contact = contact.or(prev.and_then(|c| c.contact));
                self.convs.insert(
                    *conversation,
                    Conv {
                        contact,
                        channel: *channel,
                        legs: 0,
                        priority: *priority,
                        age: at,
                        queue: q,
                        state: St::New,
                        epoch,
                        wait_since: at,
                        preempted: false,
                        reserve_reason: None,
                        responded,
                        awaiting_since: Some(at),
                        sla_due: [None; 3],
                    },
                );
                let _ = reopened;
                let kind = if responded {
                    SlaKind::NextResponse
                } else {
                    SlaKind::FirstResponse
                };
                self.schedule_sla(*conversation, kind, at)?;
                self.schedule_sla(*conversation, SlaKind::Resolution, at)?;
            }
            Fact::CustomerMessage { conversation, .. } => {
                let c = self.conv(conversation)?;
                if c.awaiting_since.is_none() {
                    let responded = c.responded;
                    self.conv_mut(conversation)?.awaiting_since = Some(at);
                    if responded {
                        self.schedule_sla(*conversation, SlaKind::NextResponse, at)?;
                    }
                }
            }
            Fact::OutsideHours { .. } => {}
            Fact::Queued {
                conversation,
                queue,
                age,
                ..
            } => {
                let q = self.queue_idx(queue)?;
                let id = *conversation;
                self.detach(id, at)?;
                let c = self.conv_mut(&id)?;
                c.queue = q;
                c.age = *age;
                c.state = St::Waiting {
                    step: 0,
                    entered: at,
                };
                let epoch = c.epoch;
                let c = self.conv(&id)?.clone();
                let slot = self.wslot(&c, 0);
                self.waiting[slot].insert(c.key(id));
                let qq = &self.queues[q as usize];
                if let Some(s) = qq.steps.get(1) {
                    self.timers.insert((
                        at.saturating_add(s.after_ms),
                        Timer::Step {
                            conv: id,
                            epoch,
                            step: 1,
                        },
                    ));
                }
                if let (Some(o), Some(_)) = (&qq.cfg.overflow, qq.overflow_to) {
                    self.timers.insert((
                        at.saturating_add(o.after_ms),
                        Timer::Overflow { conv: id, epoch },
                    ));
                }
                self.dirty_convs.push(id);
            }
            Fact::StepWidened { conversation, step } => {
                let id = *conversation;
                let c = self.conv(&id)?.clone();
                let St::Waiting { step: old, entered } = c.state else {
                    return Err(inconsistent(format!("{id} widened while not waiting")));
                };
                let q = &self.queues[c.queue as usize];
                if usize::from(*step) >= q.steps.len() {
                    return Err(inconsistent(format!("{id}: no skill step {step}")));
                }
                let next = q.steps.get(usize::from(*step) + 1).map(|s| s.after_ms);
                let from = self.wslot(&c, old);
                let to = self.wslot(&c, *step);
                self.waiting[from].remove(&c.key(id));
                self.waiting[to].insert(c.key(id));
                self.conv_mut(&id)?.state = St::Waiting {
                    step: *step,
                    entered,
                };
                if let Some(after) = next {
                    self.timers.insert((
                        entered.saturating_add(after),
                        Timer::Step {
                            conv: id,
                            epoch: c.epoch,
                            step: step.saturating_add(1),
                        },
                    ));
                }
                self.dirty_convs.push(id);
            }
            Fact::Reserved {
                conversation,
                agent,
                until,
                reason,
            } => {
                let a = self.agent_idx(agent)?;
                let id = *conversation;
                self.detach(id, at)?;
                let c = self.conv_mut(&id)?;
                c.state = St::Reserved {
                    agent: a,
                    until: *until,
                };
                c.reserve_reason = Some(reason.clone());
                let (key, epoch) = (c.key(id), c.epoch);
                self.agents[a as usize].reserved.insert(key);
                self.timers
                    .insert((*until, Timer::ReserveEnd { conv: id, epoch }));
                self.dirty_convs.push(id);
            }
            Fact::Assigned {
                conversation,
                agent,
                reason,
                ..
            } => {
                let a = self.agent_idx(agent)?;
                let id = *conversation;
                self.detach(id, at)?;
                let c = self.conv_mut(&id)?;
                if c.legs == 0 {
                    c.legs = ch_bit(c.channel);
                }
                c.state = St::Active { agent: a };
                let (legs, contact, q) = (c.legs, c.contact, c.queue);
                self.agents[a as usize].convs.insert(id);
                if let AssignReason::Queue { .. } = reason
                    && self.queues[q as usize].cfg.strategy == Strategy::RoundRobin
                {
                    let qq = &mut self.queues[q as usize];
                    qq.rr_turn += 1;
                    let turn = qq.rr_turn;
                    self.unindex(a);
                    if let Some(m) = self.agents[a as usize]
                        .memberships
                        .iter_mut()
                        .find(|m| m.queue == q)
                    {
                        m.rr_last = turn;
                    }
                }
                self.change_load(a, legs, true, at)?;
                if let Some(ct) = contact {
                    self.last_agent.insert(ct, a);
                }
            }
            Fact::Unassigned {
                conversation,
                agent,
                ..
            } => {
                let a = self.agent_idx(agent)?;
                let c = self.conv(conversation)?;
                if c.agent() != Some(a) {
                    return Err(inconsistent(format!(
                        "{conversation} is not assigned to {agent}"
                    )));
                }
                self.detach(*conversation, at)?;
            }
            Fact::Held { conversation } => {
                let c = self.conv(conversation)?;
                let St::Active { agent } = c.state else {
                    return Err(inconsistent(format!(
                        "{conversation} held while not active"
                    )));
                };
                let before = c.load_legs();
                let c = self.conv_mut(conversation)?;
                c.state = St::Held { agent };
                c.preempted = false;
                let after = c.load_legs();
                self.change_load(agent, before & !after, false, at)?;
            }
            Fact::Resumed { conversation } => {
                let c = self.conv(conversation)?;
                let (St::Held { agent } | St::Snoozed { agent, .. }) = c.state else {
                    return Err(inconsistent(format!(
                        "{conversation} resumed while not held"
                    )));
                };
                let before = c.load_legs();
                let epoch = self.next_epoch();
                let c = self.conv_mut(conversation)?;
                c.state = St::Active { agent };
                c.epoch = epoch;
                let after = c.load_legs();
                self.change_load(agent, after & !before, true, at)?;
            }
            Fact::Snoozed {
                conversation,
                until,
            } => {
                let c = self.conv(conversation)?;
                let release = c.load_legs();
                let agent = match c.state {
                    St::Active { agent } | St::Held { agent } | St::Snoozed { agent, .. } => agent,
                    _ => {
                        return Err(inconsistent(format!(
                            "{conversation} snoozed while not assigned"
                        )));
                    }
                };
                let epoch = self.next_epoch();
                let c = self.conv_mut(conversation)?;
                c.state = St::Snoozed {
                    agent,
                    until: *until,
                };
                c.preempted = false;
                c.epoch = epoch;
                self.change_load(agent, release, false, at)?;
                self.timers.insert((
                    *until,
                    Timer::SnoozeEnd {
                        conv: *conversation,
                        epoch,
                    },
                ));
            }
            Fact::LegStarted {
                conversation,
                channel,
            } => self.change_legs(at, *conversation, *channel, true)?,
            Fact::LegEnded {
                conversation,
                channel,
            } => self.change_legs(at, *conversation, *channel, false)?,
            Fact::Preempted { conversations, .. } => {
                for id in conversations {
                    self.conv_mut(id)?.preempted = true;
                }
            }
            Fact::PreemptionEnded { conversations, .. } => {
                for id in conversations {
                    self.conv_mut(id)?.preempted = false;
                }
            }
            Fact::Responded { conversation, .. } => {
                let c = self.conv_mut(conversation)?;
                c.responded = true;
                c.awaiting_since = None;
                c.sla_due[SlaKind::FirstResponse as usize] = None;
                c.sla_due[SlaKind::NextResponse as usize] = None;
            }
            Fact::SlaBreached {
                conversation, kind, ..
            } => {
                self.conv_mut(conversation)?.sla_due[*kind as usize] = None;
            }
            Fact::PriorityChanged {
                conversation,
                priority,
            } => {
                let id = *conversation;
                let c = self.conv(&id)?.clone();
                let old = c.key(id);
                let mut nc = c.clone();
                nc.priority = *priority;
                let new = nc.key(id);
                match c.state {
                    St::Waiting { step, .. } => {
                        let slot = self.wslot(&c, step);
                        self.waiting[slot].remove(&old);
                        self.waiting[slot].insert(new);
                    }
                    St::Reserved { agent, .. } => {
                        let r = &mut self.agents[agent as usize].reserved;
                        r.remove(&old);
                        r.insert(new);
                    }
                    _ => {}
                }
                self.conv_mut(&id)?.priority = *priority;
            }
            Fact::Abandoned { conversation } => {
                self.detach(*conversation, at)?;
                let c = self.conv_mut(conversation)?;
                c.state = St::Abandoned;
                c.legs = 0;
                c.sla_due = [None; 3];
                c.awaiting_since = None;
                self.close_when_quiet(at, *conversation)?;
            }
            Fact::Resolved { conversation } => {
                self.detach(*conversation, at)?;
                let c = self.conv_mut(conversation)?;
                c.state = St::Resolved;
                c.legs = 0;
                c.sla_due = [None; 3];
                c.awaiting_since = None;
                self.close_when_quiet(at, *conversation)?;
            }
            Fact::Closed { conversation } => {
                // Final: the engine forgets it (bounded memory over months of
                // traffic); its pending timers die with it.
                self.detach(*conversation, at)?;
                self.convs.remove(conversation);
            }
        }
        Ok(())
    }

    /// Opens or closes a leg; a waiting conversation moves to the slot of
    /// its new routing channel.
    fn change_legs(
        &mut self,
        at: u64,
        id: ConversationId,
        channel: Channel,
        open: bool,
    ) -> Result<(), RoutingError> {
        let c = self.conv(&id)?.clone();
        let bit = ch_bit(channel);
        if open == (c.legs & bit != 0) {
            return Err(inconsistent(format!(
                "{id}: {channel:?} leg already {}",
                if open { "open" } else { "closed" }
            )));
        }
        let waiting_step = match c.state {
            St::Waiting { step, .. } => Some(step),
            _ => None,
        };
        if let Some(step) = waiting_step {
            let slot = self.wslot(&c, step);
            self.waiting[slot].remove(&c.key(id));
        }
        let before = c.load_legs();
        let cm = self.conv_mut(&id)?;
        if open {
            cm.legs |= bit;
        } else {
            cm.legs &= !bit;
        }
        let c = cm.clone();
        if let Some(step) = waiting_step {
            let slot = self.wslot(&c, step);
            self.waiting[slot].insert(c.key(id));
        }
        if matches!(c.state, St::Waiting { .. } | St::Reserved { .. }) {
            // Needing other channels, it may fit an agent now.
            self.dirty_convs.push(id);
        }
        if let Some(agent) = c.agent() {
            let after = c.load_legs();
            self.change_load(agent, before & !after, false, at)?;
            self.change_load(agent, after & !before, true, at)?;
        }
        Ok(())
    }

    /// A resolved or abandoned conversation is closed (and forgotten) after
    /// [`RoutingConfig::close_after_ms`] without news; a new epoch, so a
    /// reopening cancels the timer.
    fn close_when_quiet(&mut self, at: u64, id: ConversationId) -> Result<(), RoutingError> {
        let after = self.cfg.close_after_ms;
        if after == 0 {
            return Ok(());
        }
        let epoch = self.next_epoch();
        self.conv_mut(&id)?.epoch = epoch;
        self.timers.insert((
            at.saturating_add(after),
            Timer::CloseQuiet { conv: id, epoch },
        ));
        Ok(())
    }

    fn emit(&mut self, at: u64, fact: Fact, out: &mut Vec<Record>) -> Result<(), RoutingError> {
        self.apply(at, &fact)?;
        out.push(Record { at, fact });
        Ok(())
    }

    // ----- timers ------------------------------------------------------

    fn timer_valid(&self, t: &Timer) -> bool {
        match *t {
            Timer::Step { conv, epoch, step } => self.convs.get(&conv).is_some_and(|c| {
                c.epoch == epoch
                    && matches!(c.state, St::Waiting { step: s, .. } if s.saturating_add(1) == step)
            }),
            Timer::Overflow { conv, epoch } => self
                .convs
                .get(&conv)
                .is_some_and(|c| c.epoch == epoch && matches!(c.state, St::Waiting { .. })),
            Timer::ReserveEnd { conv, epoch } => self
                .convs
                .get(&conv)
                .is_some_and(|c| c.epoch == epoch && matches!(c.state, St::Reserved { .. })),
            Timer::SnoozeEnd { conv, epoch } => self
                .convs
                .get(&conv)
                .is_some_and(|c| c.epoch == epoch && matches!(c.state, St::Snoozed { .. })),
            Timer::CloseQuiet { conv, epoch } => self.convs.get(&conv).is_some_and(|c| {
                c.epoch == epoch && matches!(c.state, St::Resolved | St::Abandoned)
            }),
            Timer::WrapEnd { agent, until } => {
                self.agents[agent as usize].presence == Presence::WrapUp { until }
            }
            Timer::Sla { conv, kind, due } => self
                .convs
                .get(&conv)
                .is_some_and(|c| c.sla_due[kind as usize] == Some(due)),
        }
    }

    fn fire_timers(&mut self, now: u64, out: &mut Vec<Record>) -> Result<(), RoutingError> {
        while let Some(&(due, t)) = self.timers.first() {
            if due > now {
                break;
            }
            self.timers.pop_first();
            if !self.timer_valid(&t) {
                continue;
            }
            let at = due.max(self.now);
            self.now = at;
            self.fire(at, t, out)?;
            self.dispatch(at, out)?;
        }
        self.now = self.now.max(now);
        Ok(())
    }

    fn fire(&mut self, at: u64, t: Timer, out: &mut Vec<Record>) -> Result<(), RoutingError> {
        match t {
            Timer::Step { conv, step, .. } => self.emit(
                at,
                Fact::StepWidened {
                    conversation: conv,
                    step,
                },
                out,
            ),
            Timer::Overflow { conv, .. } => {
                let c = self.conv(&conv)?;
                let q = &self.queues[c.queue as usize];
                let (Some(to), from) = (q.overflow_to, q.cfg.id.clone()) else {
                    return Ok(());
                };
                let queue = self.queues[to as usize].cfg.id.clone();
                let age = c.age;
                self.enter_queue(at, conv, queue, age, QueueReason::Overflow { from }, out)
            }
            Timer::ReserveEnd { conv, .. } => {
                let c = self.conv(&conv)?;
                let agent = c.agent().map(|a| self.agents[a as usize].id.clone());
                let queue = self.queues[c.queue as usize].cfg.id.clone();
                let age = c.age;
                let reason = QueueReason::AgentWaitExpired {
                    agent: agent.unwrap_or_else(|| AgentId::new("")),
                };
                self.enter_queue(at, conv, queue, age, reason, out)
            }
            Timer::SnoozeEnd { conv, .. } => self.wake(at, conv, out),
            Timer::CloseQuiet { conv, .. } => {
                self.emit(at, Fact::Closed { conversation: conv }, out)
            }
            Timer::WrapEnd { agent, .. } => {
                let id = self.agents[agent as usize].id.clone();
                self.emit(
                    at,
                    Fact::PresenceChanged {
                        agent: id,
                        presence: Presence::Available,
                    },
                    out,
                )
            }
            Timer::Sla { conv, kind, due } => self.emit(
                at,
                Fact::SlaBreached {
                    conversation: conv,
                    kind,
                    due,
                },
                out,
            ),
        }
    }

    // ----- decisions -------------------------------------------------

    fn enter_queue(
        &mut self,
        at: u64,
        conv: ConversationId,
        queue: QueueId,
        age: u64,
        reason: QueueReason,
        out: &mut Vec<Record>,
    ) -> Result<(), RoutingError> {
        self.emit(
            at,
            Fact::Queued {
                conversation: conv,
                queue,
                age,
                reason,
            },
            out,
        )
    }

    /// Puts conversations of an agent that has a call on hold, or takes them
    /// off hold when the call is over.
    fn check_preemption(
        &mut self,
        at: u64,
        a: u32,
        out: &mut Vec<Record>,
    ) -> Result<(), RoutingError> {
        if !self.cfg.voice_preempts {
            return Ok(());
        }
        let ag = &self.agents[a as usize];
        let on_call = ag.load[VOICE] > 0;
        let mut hold = Vec::new();
        let mut free = Vec::new();
        for id in &ag.convs {
            let Some(c) = self.convs.get(id) else {
                continue;
            };
            if !matches!(c.state, St::Active { .. }) {
                continue;
            }
            let preemptable = c.legs & PREEMPTABLE != 0 && c.legs & 1 == 0;
            if on_call && preemptable && !c.preempted {
                hold.push(*id);
            } else if c.preempted && (!on_call || !preemptable) {
                free.push(*id);
            }
        }
        let agent = ag.id.clone();
        if !hold.is_empty() {
            self.emit(
                at,
                Fact::Preempted {
                    agent: agent.clone(),
                    conversations: hold,
                },
                out,
            )?;
        }
        if !free.is_empty() {
            self.emit(
                at,
                Fact::PreemptionEnded {
                    agent,
                    conversations: free,
                },
                out,
            )?;
        }
        Ok(())
    }

    fn assign(
        &mut self,
        at: u64,
        conv: ConversationId,
        a: u32,
        reason: AssignReason,
        out: &mut Vec<Record>,
    ) -> Result<(), RoutingError> {
        let waited_ms = at.saturating_sub(self.conv(&conv)?.wait_since);
        let agent = self.agents[a as usize].id.clone();
        self.emit(
            at,
            Fact::Assigned {
                conversation: conv,
                agent,
                reason,
                waited_ms,
            },
            out,
        )?;
        self.check_preemption(at, a, out)
    }

    /// Route a new or reopened conversation.
    #[allow(clippy::too_many_arguments)]
    fn route(
        &mut self,
        at: u64,
        conversation: ConversationId,
        contact: Option<ContactId>,
        channel: Channel,
        attrs: &Attributes,
        priority: Option<i32>,
        reopened: bool,
        out: &mut Vec<Record>,
    ) -> Result<(), RoutingError> {
        let text = attrs.text.as_deref().unwrap_or("").to_lowercase();
        let mut picked = None;
        for (i, (r, q)) in self.rules.iter().enumerate() {
            let w = &r.when;
            let ok = w.channel.is_none_or(|c| c == channel)
                && w.line
                    .as_ref()
                    .is_none_or(|l| attrs.line.as_ref() == Some(l))
                && w.language.as_ref().is_none_or(|l| {
                    attrs
                        .language
                        .as_ref()
                        .is_some_and(|x| x.eq_ignore_ascii_case(l))
                })
                && w.keyword
                    .as_ref()
                    .is_none_or(|k| text.contains(&k.to_lowercase()))
                && w.customer_tag
                    .as_ref()
                    .is_none_or(|t| attrs.customer_tags.contains(t));
            if ok {
                picked = Some((*q, QueueReason::Rule { rule: i as u32 }, r.priority));
                break;
            }
        }
        let (q, reason, rule_prio) = match picked {
            Some(p) => p,
            None => match self.default_queue {
                Some(q) => (q, QueueReason::Default, None),
                None => return Err(RoutingError::NoQueue(conversation)),
            },
        };
        let qc = self.queues[q as usize].cfg.clone();
        self.emit(
            at,
            Fact::Arrived {
                conversation,
                contact,
                channel,
                queue: qc.id.clone(),
                priority: priority.or(rule_prio).unwrap_or(0),
                reopened,
            },
            out,
        )?;
        if let (Some(action), Some(cal)) = (&qc.outside_hours, self.queues[q as usize].calendar)
            && !self.calendars[cal].is_open(at)
        {
            self.emit(
                at,
                Fact::OutsideHours {
                    conversation,
                    queue: qc.id.clone(),
                    action: action.clone(),
                },
                out,
            )?;
        }
        // Sticky agent for a returning customer.
        let contact = self.conv(&conversation)?.contact;
        if qc.sticky_wait_ms > 0
            && let Some(ct) = contact
            && let Some(&a) = self.last_agent.get(&ct)
            && self.agents[a as usize]
                .memberships
                .iter()
                .any(|m| m.queue == q)
            && self.agents[a as usize].presence != Presence::Offline
        {
            if self.can_take(a, ch_bit(channel)) {
                return self.assign(at, conversation, a, AssignReason::Sticky, out);
            }
            let agent = self.agents[a as usize].id.clone();
            return self.emit(
                at,
                Fact::Reserved {
                    conversation,
                    agent,
                    until: at.saturating_add(qc.sticky_wait_ms),
                    reason: AssignReason::Sticky,
                },
                out,
            );
        }
        self.enter_queue(at, conversation, qc.id, at, reason, out)
    }

    /// A held or snoozed conversation comes back (customer answered, snooze
    /// over): to its agent if they have room, else it waits for them, then
    /// the queue.
    fn wake(
        &mut self,
        at: u64,
        conv: ConversationId,
        out: &mut Vec<Record>,
    ) -> Result<(), RoutingError> {
        let c = self.conv(&conv)?;
        let Some(a) = c.agent() else { return Ok(()) };
        let legs = c.legs & !c.load_legs();
        let queue = self.queues[c.queue as usize].cfg.id.clone();
        let agent = self.agents[a as usize].id.clone();
        let ag = &self.agents[a as usize];
        if ag.presence == Presence::Offline {
            self.emit(
                at,
                Fact::Unassigned {
                    conversation: conv,
                    agent: agent.clone(),
                    reason: UnassignReason::AgentOffline,
                },
                out,
            )?;
            return self.enter_queue(
                at,
                conv,
                queue,
                at,
                QueueReason::AgentOffline { agent },
                out,
            );
        }
        if self.fits(a, legs) {
            self.emit(at, Fact::Resumed { conversation: conv }, out)?;
            return self.check_preemption(at, a, out);
        }
        self.emit(
            at,
            Fact::Unassigned {
                conversation: conv,
                agent: agent.clone(),
                reason: UnassignReason::WaitingForAgent,
            },
            out,
        )?;
        self.emit(
            at,
            Fact::Reserved {
                conversation: conv,
                agent,
                until: at.saturating_add(self.cfg.agent_wait_ms),
                reason: AssignReason::Resumed,
            },
            out,
        )
    }

    /// The customer calls while their conversation is open: the call is a
    /// voice leg of it. It goes to the conversation's agent if they have
    /// room (a held conversation comes back with it), else it waits for
    /// that agent, then the queue; a waiting conversation is now routed as
    /// a call.
    fn incoming_call(
        &mut self,
        at: u64,
        conversation: ConversationId,
        out: &mut Vec<Record>,
    ) -> Result<(), RoutingError> {
        let voice = Channel::Voice;
        self.emit(
            at,
            Fact::CustomerMessage {
                conversation,
                channel: voice,
            },
            out,
        )?;
        let c = self.conv(&conversation)?;
        let (agent, resume) = match c.state {
            St::Active { agent } => (agent, false),
            St::Held { agent } | St::Snoozed { agent, .. } => (agent, true),
            _ => {
                return self.emit(
                    at,
                    Fact::LegStarted {
                        conversation,
                        channel: voice,
                    },
                    out,
                );
            }
        };
        let rest = if resume { c.legs & !c.load_legs() } else { 0 };
        let queue = self.queues[c.queue as usize].cfg.id.clone();
        let offline = self.agents[agent as usize].presence == Presence::Offline;
        if !offline && self.fits(agent, rest | ch_bit(voice)) {
            self.emit(
                at,
                Fact::LegStarted {
                    conversation,
                    channel: voice,
                },
                out,
            )?;
            if resume {
                self.emit(at, Fact::Resumed { conversation }, out)?;
            }
            return self.check_preemption(at, agent, out);
        }
        let id = self.agents[agent as usize].id.clone();
        self.emit(
            at,
            Fact::Unassigned {
                conversation,
                agent: id.clone(),
                reason: if offline {
                    UnassignReason::AgentOffline
                } else {
                    UnassignReason::WaitingForAgent
                },
            },
            out,
        )?;
        self.check_preemption(at, agent, out)?;
        self.emit(
            at,
            Fact::LegStarted {
                conversation,
                channel: voice,
            },
            out,
        )?;
        if offline {
            return self.enter_queue(
                at,
                conversation,
                queue,
                at,
                QueueReason::AgentOffline { agent: id },
                out,
            );
        }
        self.emit(
            at,
            Fact::Reserved {
                conversation,
                agent: id,
                until: at.saturating_add(self.cfg.agent_wait_ms),
                reason: AssignReason::Sticky,
            },
            out,
        )
    }

    fn assigned_agent(
        &self,
        conv: ConversationId,
        action: &'static str,
    ) -> Result<u32, RoutingError> {
        let c = self.conv(&conv)?;
        match c.state {
            St::Active { agent } | St::Held { agent } | St::Snoozed { agent, .. } => Ok(agent),
            _ => Err(self.invalid(conv, action)),
        }
    }

    fn invalid(&self, conv: ConversationId, action: &'static str) -> RoutingError {
        match self.convs.get(&conv) {
            None => RoutingError::UnknownConversation(conv),
            Some(c) => RoutingError::InvalidState {
                conversation: conv,
                state: self.view(conv, c).state.name(),
                action,
            },
        }
    }

    fn release_voice_after(
        &mut self,
        at: u64,
        a: u32,
        out: &mut Vec<Record>,
    ) -> Result<(), RoutingError> {
        let ag = &self.agents[a as usize];
        if ag.load[VOICE] == 0 && self.cfg.wrap_up_ms > 0 && ag.presence == Presence::Available {
            let agent = ag.id.clone();
            self.emit(
                at,
                Fact::PresenceChanged {
                    agent,
                    presence: Presence::WrapUp {
                        until: at.saturating_add(self.cfg.wrap_up_ms),
                    },
                },
                out,
            )?;
        }
        self.check_preemption(at, a, out)
    }

    fn command(
        &mut self,
        at: u64,
        cmd: Command,
        out: &mut Vec<Record>,
    ) -> Result<(), RoutingError> {
        match cmd {
            Command::Tick => Ok(()),
            Command::SetPresence { agent, presence } => {
                let a = self.agent_idx(&agent)?;
                if self.agents[a as usize].presence == presence {
                    return Ok(());
                }
                self.emit(
                    at,
                    Fact::PresenceChanged {
                        agent: agent.clone(),
                        presence,
                    },
                    out,
                )?;
                if presence != Presence::Offline {
                    return Ok(());
                }
                // Reservations waiting on this agent go to their queue now.
                let reserved: Vec<WaitKey> =
                    self.agents[a as usize].reserved.iter().copied().collect();
                for k in reserved {
                    let c = self.conv(&k.id)?;
                    let queue = self.queues[c.queue as usize].cfg.id.clone();
                    self.enter_queue(
                        at,
                        k.id,
                        queue,
                        c.age,
                        QueueReason::AgentWaitExpired {
                            agent: agent.clone(),
                        },
                        out,
                    )?;
                }
                // Active conversations from requeue-policy queues go back.
                // Held and snoozed ones wait on the customer: they stay and
                // go to the queue when the customer answers (see `wake`).
                let convs: Vec<ConversationId> =
                    self.agents[a as usize].convs.iter().copied().collect();
                for id in convs {
                    let c = self.conv(&id)?;
                    let q = &self.queues[c.queue as usize];
                    if q.cfg.offline_policy != OfflinePolicy::Requeue
                        || !matches!(c.state, St::Active { .. })
                    {
                        continue;
                    }
                    let (queue, age) = (q.cfg.id.clone(), c.age);
                    self.emit(
                        at,
                        Fact::Unassigned {
                            conversation: id,
                            agent: agent.clone(),
                            reason: UnassignReason::AgentOffline,
                        },
                        out,
                    )?;
                    self.enter_queue(
                        at,
                        id,
                        queue,
                        age,
                        QueueReason::AgentOffline {
                            agent: agent.clone(),
                        },
                        out,
                    )?;
                }
                Ok(())
            }
            Command::Inbound {
                conversation,
                contact,
                channel,
                attributes,
                priority,
            } => {
                let state = self.convs.get(&conversation).map(|c| (c.state, c.legs));
                if channel == Channel::Voice
                    && let Some((st, legs)) = state
                    && legs & 1 == 0
                    && !matches!(st, St::New | St::Resolved | St::Abandoned)
                {
                    return self.incoming_call(at, conversation, out);
                }
                let state = state.map(|(st, _)| st);
                match state {
                    None => self.route(
                        at,
                        conversation,
                        contact,
                        channel,
                        &attributes,
                        priority,
                        false,
                        out,
                    ),
                    Some(St::Resolved | St::Abandoned) => self.route(
                        at,
                        conversation,
                        contact,
                        channel,
                        &attributes,
                        priority,
                        true,
                        out,
                    ),
                    Some(St::Held { .. } | St::Snoozed { .. }) => {
                        self.emit(
                            at,
                            Fact::CustomerMessage {
                                conversation,
                                channel,
                            },
                            out,
                        )?;
                        self.wake(at, conversation, out)
                    }
                    Some(_) => self.emit(
                        at,
                        Fact::CustomerMessage {
                            conversation,
                            channel,
                        },
                        out,
                    ),
                }
            }
            Command::Abandon { conversation } => match self.conv(&conversation)?.state {
                St::Waiting { .. } | St::Reserved { .. } => {
                    self.emit(at, Fact::Abandoned { conversation }, out)
                }
                _ => Err(self.invalid(
                    conversation,
                    "abandon (only a waiting conversation can be abandoned)",
                )),
            },
            Command::AgentReply { conversation } => {
                let a = self.assigned_agent(conversation, "reply")?;
                let c = self.conv(&conversation)?;
                if c.awaiting_since.is_none() {
                    return Ok(());
                }
                let first = !c.responded;
                let agent = self.agents[a as usize].id.clone();
                self.emit(
                    at,
                    Fact::Responded {
                        conversation,
                        agent,
                        first,
                    },
                    out,
                )
            }
            Command::Hold { conversation } => match self.conv(&conversation)?.state {
                St::Active { agent } => {
                    self.emit(at, Fact::Held { conversation }, out)?;
                    self.check_preemption(at, agent, out)
                }
                _ => Err(self.invalid(conversation, "hold")),
            },
            Command::Resume { conversation } => {
                let c = self.conv(&conversation)?;
                match c.state {
                    St::Held { agent } | St::Snoozed { agent, .. } => {
                        let legs = c.legs & !c.load_legs();
                        if let Some(ch) = ALL_CHANNELS
                            .iter()
                            .find(|&&ch| legs & ch_bit(ch) != 0 && !self.fits(agent, ch_bit(ch)))
                        {
                            return Err(RoutingError::CapacityExceeded {
                                agent: self.agents[agent as usize].id.clone(),
                                channel: *ch,
                            });
                        }
                        self.emit(at, Fact::Resumed { conversation }, out)?;
                        self.check_preemption(at, agent, out)
                    }
                    _ => Err(self.invalid(conversation, "resume")),
                }
            }
            Command::Snooze {
                conversation,
                until,
            } => match self.conv(&conversation)?.state {
                _ if self.conv(&conversation)?.legs & 1 != 0 => Err(self.invalid(
                    conversation,
                    "snooze while a call is open (end the call first)",
                )),
                St::Active { agent } | St::Held { agent } | St::Snoozed { agent, .. } => {
                    self.emit(
                        at,
                        Fact::Snoozed {
                            conversation,
                            until,
                        },
                        out,
                    )?;
                    self.check_preemption(at, agent, out)
                }
                _ => Err(self.invalid(conversation, "snooze")),
            },
            Command::StartLeg {
                conversation,
                channel,
            } => {
                let c = self.conv(&conversation)?;
                let St::Active { agent } = c.state else {
                    return Err(self.invalid(conversation, "open a leg (resume it first)"));
                };
                if c.legs & ch_bit(channel) != 0 {
                    return Err(RoutingError::LegAlreadyOpen {
                        conversation,
                        channel,
                    });
                }
                if !self.fits(agent, ch_bit(channel)) {
                    return Err(RoutingError::CapacityExceeded {
                        agent: self.agents[agent as usize].id.clone(),
                        channel,
                    });
                }
                self.emit(
                    at,
                    Fact::LegStarted {
                        conversation,
                        channel,
                    },
                    out,
                )?;
                self.check_preemption(at, agent, out)
            }
            Command::EndLeg {
                conversation,
                channel,
            } => {
                let c = self.conv(&conversation)?;
                if c.legs & ch_bit(channel) == 0 {
                    return Err(RoutingError::NoSuchLeg {
                        conversation,
                        channel,
                    });
                }
                let agent = match c.state {
                    St::Active { agent } | St::Held { agent } => Some(agent),
                    _ => None,
                };
                self.emit(
                    at,
                    Fact::LegEnded {
                        conversation,
                        channel,
                    },
                    out,
                )?;
                match agent {
                    Some(a) if channel == Channel::Voice => self.release_voice_after(at, a, out),
                    _ => Ok(()),
                }
            }
            Command::Transfer {
                conversation,
                target,
            } => {
                let c = self.conv(&conversation)?;
                let prev = match c.state {
                    St::Active { agent } | St::Held { agent } | St::Snoozed { agent, .. } => {
                        Some(agent)
                    }
                    St::Waiting { .. } | St::Reserved { .. } => None,
                    _ => return Err(self.invalid(conversation, "transfer")),
                };
                let had_voice =
                    c.legs & 1 != 0 && matches!(c.state, St::Active { .. } | St::Held { .. });
                let target_idx = match &target {
                    TransferTarget::Agent { agent } => Some(self.agent_idx(agent)?),
                    TransferTarget::Queue { queue } => {
                        self.queue_idx(queue)?;
                        None
                    }
                };
                if let Some(p) = prev {
                    let agent = self.agents[p as usize].id.clone();
                    self.emit(
                        at,
                        Fact::Unassigned {
                            conversation,
                            agent,
                            reason: UnassignReason::Transfer,
                        },
                        out,
                    )?;
                    if had_voice {
                        self.release_voice_after(at, p, out)?;
                    } else {
                        self.check_preemption(at, p, out)?;
                    }
                }
                match target {
                    TransferTarget::Queue { queue } => {
                        self.enter_queue(at, conversation, queue, at, QueueReason::Transfer, out)
                    }
                    TransferTarget::Agent { agent } => {
                        let Some(t) = target_idx else { return Ok(()) };
                        let legs = self.conv(&conversation)?.needed_legs();
                        if self.can_take(t, legs) {
                            self.assign(at, conversation, t, AssignReason::Transfer, out)
                        } else {
                            self.emit(
                                at,
                                Fact::Reserved {
                                    conversation,
                                    agent,
                                    until: at.saturating_add(self.cfg.agent_wait_ms),
                                    reason: AssignReason::Transfer,
                                },
                                out,
                            )
                        }
                    }
                }
            }
            Command::SetPriority {
                conversation,
                priority,
            } => {
                let c = self.conv(&conversation)?;
                if c.priority == priority {
                    return Ok(());
                }
                self.emit(
                    at,
                    Fact::PriorityChanged {
                        conversation,
                        priority,
                    },
                    out,
                )
            }
            Command::Resolve { conversation } => {
                let c = self.conv(&conversation)?;
                let voice_agent = match c.state {
                    St::Active { agent } | St::Held { agent } if c.legs & 1 != 0 => Some(agent),
                    _ => None,
                };
                let agent = c.agent();
                if c.state == St::Resolved {
                    return Ok(());
                }
                self.emit(at, Fact::Resolved { conversation }, out)?;
                match (voice_agent, agent) {
                    (Some(a), _) => self.release_voice_after(at, a, out),
                    (None, Some(a)) => self.check_preemption(at, a, out),
                    _ => Ok(()),
                }
            }
            Command::Close { conversation } => {
                let st = self.conv(&conversation)?.state;
                match st {
                    St::Resolved | St::Abandoned => {
                        self.emit(at, Fact::Closed { conversation }, out)
                    }
                    _ => {
                        self.command(at, Command::Resolve { conversation }, out)?;
                        self.emit(at, Fact::Closed { conversation }, out)
                    }
                }
            }
        }
    }

    /// Routes whatever can be routed now: first agents that gained room
    /// (each takes the best conversation it may take, repeatedly), then
    /// conversations that started waiting (best first, each to the first
    /// agent of its slot). Afterwards no waiting conversation has an eligible
    /// agent with room.
    fn dispatch(&mut self, at: u64, out: &mut Vec<Record>) -> Result<(), RoutingError> {
        loop {
            while let Some(a) = self.dirty_agents.pop_first() {
                while let Some((conv, reason)) = self.best_for_agent(a) {
                    self.assign(at, conv, a, reason, out)?;
                }
            }
            if self.dirty_convs.is_empty() {
                break;
            }
            let mut convs = std::mem::take(&mut self.dirty_convs);
            convs.sort_by_cached_key(|id| self.convs.get(id).map(|c| c.key(*id)));
            convs.dedup();
            for id in convs {
                if let Some((a, reason)) = self.best_agent_for(id) {
                    self.assign(at, id, a, reason, out)?;
                }
            }
            if self.dirty_agents.is_empty() && self.dirty_convs.is_empty() {
                break;
            }
        }
        Ok(())
    }

    fn best_for_agent(&self, a: u32) -> Option<(ConversationId, AssignReason)> {
        let ag = &self.agents[a as usize];
        if ag.presence != Presence::Available {
            return None;
        }
        // Reservations first: this customer waits for this agent only.
        for k in &ag.reserved {
            let c = self.convs.get(&k.id)?;
            if self.can_take(a, c.needed_legs()) {
                return Some((
                    k.id,
                    c.reserve_reason.clone().unwrap_or(AssignReason::Sticky),
                ));
            }
        }
        let mut best: Option<(WaitKey, u32, u8)> = None;
        for m in &ag.memberships {
            let q = &self.queues[m.queue as usize];
            for c in ALL_CHANNELS {
                if !self.can_take(a, ch_bit(c)) {
                    continue;
                }
                for s in 0..q.steps.len() {
                    if m.steps & (1 << s) == 0 {
                        continue;
                    }
                    let slot = q.slot_base as usize + s * CHANNELS + ch_idx(c);
                    let found = self.waiting[slot].iter().take(FIT_SCAN).find(|k| {
                        self.convs
                            .get(&k.id)
                            .is_some_and(|cv| self.can_take(a, cv.needed_legs()))
                    });
                    if let Some(k) = found
                        && best.is_none_or(|(b, _, _)| *k < b)
                    {
                        best = Some((*k, m.queue, s as u8));
                    }
                }
            }
        }
        best.map(|(k, q, s)| {
            (
                k.id,
                AssignReason::Queue {
                    queue: self.queues[q as usize].cfg.id.clone(),
                    step: s,
                },
            )
        })
    }

    fn best_agent_for(&self, id: ConversationId) -> Option<(u32, AssignReason)> {
        let c = self.convs.get(&id)?;
        let legs = c.needed_legs();
        match c.state {
            St::Waiting { step, .. } => {
                let slot = self.wslot(c, step);
                let (_, _, a) = self.avail[slot]
                    .iter()
                    .take(FIT_SCAN)
                    .find(|(_, _, a)| self.can_take(*a, legs))?;
                Some((
                    *a,
                    AssignReason::Queue {
                        queue: self.queues[c.queue as usize].cfg.id.clone(),
                        step,
                    },
                ))
            }
            St::Reserved { agent, .. } if self.can_take(agent, legs) => Some((
                agent,
                c.reserve_reason.clone().unwrap_or(AssignReason::Sticky),
            )),
            _ => None,
        }
    }

    /// Applies one record as replay does (tests and tools).
    #[doc(hidden)]
    pub fn apply_record(&mut self, rec: &Record) -> Result<(), RoutingError> {
        self.now = self.now.max(rec.at);
        let r = self.apply(rec.at, &rec.fact);
        self.dirty_agents.clear();
        self.dirty_convs.clear();
        r
    }

    fn brute_eligible(&self, a: u32, c: &Conv, step: u8) -> bool {
        self.agents[a as usize]
            .memberships
            .iter()
            .any(|m| m.queue == c.queue && m.steps & (1 << step) != 0)
    }

    /// Brute force, independent of the indexes: an agent that could take a
    /// waiting or reserved conversation right now (tests: must be none after
    /// every `handle`).
    #[doc(hidden)]
    pub fn brute_idle_match(&self) -> Option<(ConversationId, AgentId)> {
        let mut ids: Vec<_> = self.convs.keys().copied().collect();
        ids.sort_unstable();
        for id in ids {
            let Some(c) = self.convs.get(&id) else {
                continue;
            };
            match c.state {
                St::Waiting { step, .. } => {
                    for a in 0..self.agents.len() as u32 {
                        if self.brute_eligible(a, c, step) && self.can_take(a, c.needed_legs()) {
                            return Some((id, self.agents[a as usize].id.clone()));
                        }
                    }
                }
                St::Reserved { agent, .. } if self.can_take(agent, c.needed_legs()) => {
                    return Some((id, self.agents[agent as usize].id.clone()));
                }
                _ => {}
            }
        }
        None
    }

    /// Brute force: a waiting conversation that `agent` could take instead of
    /// `conv` and that comes before it (priority, then age). Tests call it
    /// right before applying an `Assigned` from a queue.
    #[doc(hidden)]
    pub fn brute_better_waiting(
        &self,
        conv: &ConversationId,
        agent: &AgentId,
    ) -> Option<ConversationId> {
        let a = *self.agent_ix.get(agent)?;
        let c = self.convs.get(conv)?;
        // Spelled out here, independent of `Conv::key`.
        let order = |d: &Conv, id: ConversationId| (std::cmp::Reverse(d.priority), d.age, id);
        let mine = order(c, *conv);
        let mut better: Vec<ConversationId> = self
            .convs
            .iter()
            .filter(|(id, d)| {
                *id != conv
                    && matches!(d.state, St::Waiting { step, .. } if self.brute_eligible(a, d, step))
                    && self.can_take(a, d.needed_legs())
                    && order(d, **id) < mine
            })
            .map(|(id, _)| *id)
            .collect();
        better.sort_unstable();
        better.first().copied()
    }

    /// Internal consistency check (tests): loads equal the active legs and
    /// never exceed capacity, indexes agree with the state.
    #[doc(hidden)]
    pub fn check_invariants(&self) -> Result<(), String> {
        let mut load = vec![[0u8; CHANNELS]; self.agents.len()];
        for (id, c) in &self.convs {
            if let Some(agent) = c
                .agent()
                .filter(|_| !matches!(c.state, St::Reserved { .. }))
            {
                for (i, l) in load[agent as usize].iter_mut().enumerate() {
                    if c.load_legs() & (1 << i) != 0 {
                        *l += 1;
                    }
                }
                if !self.agents[agent as usize].convs.contains(id) {
                    return Err(format!("{id} active but not in agent's set"));
                }
            }
        }
        for (i, ag) in self.agents.iter().enumerate() {
            if load[i] != ag.load {
                return Err(format!(
                    "agent {} load {:?} != {:?}",
                    ag.id, ag.load, load[i]
                ));
            }
            for ch in 0..CHANNELS {
                if ag.load[ch] > ag.cap[ch] {
                    return Err(format!("agent {} over capacity on channel {ch}", ag.id));
                }
            }
            for cid in &ag.convs {
                if self.convs.get(cid).and_then(Conv::agent) != Some(i as u32) {
                    return Err(format!("agent {} lists {cid} not assigned to them", ag.id));
                }
            }
        }
        let waiting: usize = self.waiting.iter().map(BTreeSet::len).sum();
        let n = self
            .convs
            .values()
            .filter(|c| matches!(c.state, St::Waiting { .. }))
            .count();
        if waiting != n {
            return Err(format!("{waiting} indexed waiting, {n} in state"));
        }
        Ok(())
    }
}

/// Why a log could not be replayed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ReplayError {
    #[error("routing config: {0}")]
    Config(ConfigError),
    #[error("{0}")]
    Record(RoutingError),
}
