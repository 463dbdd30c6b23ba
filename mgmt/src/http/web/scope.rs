//! Who may see a conversation: its routing state (assigned agent, queue,
//! the queue's teams and site) against the user's role, sites and teams.
//!
//! * An unrestricted supervisor or admin (no sites, no teams) sees all,
//!   including conversations routing does not know.
//! * Anyone sees conversations assigned or reserved to their agent.
//! * An agent also sees the work of queues they are a member of.
//! * A user with teams sees conversations whose queue serves one of those
//!   teams or whose agent is in one; with sites, those whose queue or agent
//!   belongs to one of those sites. An agent without teams of their own
//!   counts the routing agent's team.
//! * Nothing else: a conversation routing does not know is visible only to
//!   unrestricted supervisors and admins.

use crate::services::users::auth::{Role, User};
use crossline_core::ConversationId;
use crossline_core::routing::{AgentId, Fact, QueueId, Record, Router};
use std::collections::HashSet;

/// What decides who may see one conversation (computed from routing).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Visibility {
    pub agent: Option<String>,
    pub agent_team: Option<String>,
    pub agent_site: Option<String>,
    pub queue: String,
    pub queue_site: Option<String>,
    /// Teams the queue serves: its member teams and its member agents' teams.
    pub queue_teams: Vec<String>,
    /// Agents who are members of the queue.
    pub queue_agents: Vec<String>,
}

/// A user as the visibility rules need them (built once per request or
/// stream, with the routing config at hand).
#[derive(Debug, Clone)]
pub struct Viewer {
    pub role: Role,
    pub agent: String,
    pub sites: Vec<String>,
    pub teams: Vec<String>,
    /// No sites and no teams given.
    pub unrestricted: bool,
}

impl Viewer {
    pub fn new(u: &User, router: Option<&Router>) -> Self {
        let mut teams = u.teams.clone();
        if teams.is_empty()
            && u.role == Role::Agent
            && let Some(r) = router
            && let Some(t) = r
                .config()
                .agents
                .iter()
                .find(|a| a.id.as_str() == u.agent_id)
                .and_then(|a| a.team.clone())
        {
            teams.push(t);
        }
        Self {
            role: u.role,
            agent: u.agent_id.clone(),
            sites: u.sites.clone(),
            teams,
            unrestricted: u.unrestricted(),
        }
    }

    /// Sees everything (the "all" view without filtering).
    pub fn sees_all(&self) -> bool {
        self.unrestricted && self.role >= Role::Supervisor
    }

    pub fn can_see(&self, v: Option<&Visibility>) -> bool {
        if self.sees_all() {
            return true;
        }
        let Some(v) = v else { return false };
        if v.agent.as_deref() == Some(self.agent.as_str()) {
            return true;
        }
        if self.role == Role::Agent && v.queue_agents.contains(&self.agent) {
            return true;
        }
        let team = |t: &Option<String>| t.as_ref().is_some_and(|t| self.teams.contains(t));
        if v.queue_teams.iter().any(|t| self.teams.contains(t)) || team(&v.agent_team) {
            return true;
        }
        let site = |s: &Option<String>| s.as_ref().is_some_and(|s| self.sites.contains(s));
        site(&v.queue_site) || site(&v.agent_site)
    }
}

impl Viewer {
    /// The part of [`Viewer::can_see`] that depends only on the queue
    /// (`can_see` is this or [`Viewer::sees_agent`]).
    pub fn sees_queue(&self, r: &Router, queue: &QueueId) -> bool {
        self.sees_all() || self.can_see(Some(&of_view(r, None, queue)))
    }

    /// The part of [`Viewer::can_see`] that depends only on the assigned agent.
    pub fn sees_agent(&self, r: &Router, agent: &AgentId) -> bool {
        if self.sees_all() || agent.as_str() == self.agent {
            return true;
        }
        let Some(a) = r.config().agents.iter().find(|a| &a.id == agent) else {
            return false;
        };
        a.team.as_ref().is_some_and(|t| self.teams.contains(t))
            || a.site
                .as_ref()
                .is_some_and(|s| self.sites.iter().any(|x| x == s.as_str()))
    }
}

/// The visibility facts of a conversation routing knows.
pub fn visibility(r: &Router, id: &ConversationId) -> Option<Visibility> {
    let c = r.conversation(id)?;
    Some(of_view(r, c.agent.as_ref(), &c.queue))
}

/// The visibility facts for a conversation of `queue` with `agent`.
pub fn of_view(r: &Router, agent: Option<&AgentId>, queue: &QueueId) -> Visibility {
    let cfg = r.config();
    let a = agent.and_then(|a| cfg.agents.iter().find(|x| &x.id == a));
    let q = cfg.queues.iter().find(|x| &x.id == queue);
    let queue_agents: Vec<String> = cfg
        .agents
        .iter()
        .filter(|x| r.is_member(&x.id, queue))
        .map(|x| x.id.to_string())
        .collect();
    let mut queue_teams: Vec<String> = q.map(|q| q.members.teams.clone()).unwrap_or_default();
    for x in &cfg.agents {
        if let Some(t) = &x.team
            && queue_agents.iter().any(|m| m == x.id.as_str())
            && !queue_teams.contains(t)
        {
            queue_teams.push(t.clone());
        }
    }
    Visibility {
        agent: agent.map(|a| a.to_string()),
        agent_team: a.and_then(|a| a.team.clone()),
        agent_site: a.and_then(|a| a.site.as_ref().map(|s| s.to_string())),
        queue: queue.to_string(),
        queue_site: q.and_then(|q| q.site.as_ref().map(|s| s.to_string())),
        queue_teams,
        queue_agents,
    }
}

/// Whose figures a restricted user may see in reports (and their CSV): the
/// queues and agents [`Viewer::sees_queue`] and [`Viewer::sees_agent`]
/// allow. A conversation counts when one of the queues it entered is one of
/// them; an agent's own facts (presence) when the agent is. None from
/// [`FigureScope::of`] means everything (an unrestricted supervisor or admin).
#[derive(Debug, Clone, Default)]
pub struct FigureScope {
    queues: HashSet<String>,
    agents: HashSet<String>,
}

impl FigureScope {
    /// The scope of `viewer` under routing `r` (None: routing not configured,
    /// so nothing is visible to a restricted viewer).
    pub fn of(viewer: &Viewer, r: Option<&Router>) -> Option<Self> {
        if viewer.sees_all() {
            return None;
        }
        let Some(r) = r else {
            return Some(Self::default());
        };
        let cfg = r.config();
        Some(Self {
            queues: cfg
                .queues
                .iter()
                .filter(|q| viewer.sees_queue(r, &q.id))
                .map(|q| q.id.to_string())
                .collect(),
            agents: cfg
                .agents
                .iter()
                .filter(|a| viewer.sees_agent(r, &a.id))
                .map(|a| a.id.to_string())
                .collect(),
        })
    }

    pub fn sees_queue(&self, queue: &str) -> bool {
        self.queues.contains(queue)
    }

    /// The records of conversations and agents in this scope.
    pub fn filter(&self, records: Vec<Record>) -> Vec<Record> {
        let mut visible: HashSet<ConversationId> = HashSet::new();
        for r in &records {
            if let Fact::Arrived {
                conversation,
                queue,
                ..
            }
            | Fact::Queued {
                conversation,
                queue,
                ..
            }
            | Fact::OutsideHours {
                conversation,
                queue,
                ..
            } = &r.fact
                && self.queues.contains(queue.as_str())
            {
                visible.insert(*conversation);
            }
        }
        records
            .into_iter()
            .filter(|r| match (&r.fact, r.fact.conversation()) {
                (_, Some(c)) => visible.contains(&c),
                (
                    Fact::PresenceChanged { agent, .. }
                    | Fact::Preempted { agent, .. }
                    | Fact::PreemptionEnded { agent, .. },
                    None,
                ) => self.agents.contains(agent.as_str()),
                _ => false,
            })
            .collect()
    }
}
