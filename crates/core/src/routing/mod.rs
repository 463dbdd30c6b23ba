//! Routing: which agent gets which conversation, when, and why.
//!
//! Pure and deterministic: the caller passes the time (ms since the epoch)
//! with every [`Command`]; the engine answers with [`Record`]s (who, why)
//! that mgmt appends to its event log; [`Router::replay`] rebuilds the same
//! state from them. See docs/ROUTING.md.
//!
//! ```
//! use crossline_core::routing::*;
//! use crossline_core::{Channel, ConversationId};
//!
//! let mut queue = QueueConfig::new("support");
//! queue.members.agents = vec![AgentId::new("ana")];
//! let mut config = RoutingConfig::new(vec![AgentConfig::new("ana")], vec![queue]);
//! config.default_queue = Some(QueueId::new("support"));
//! let mut router = Router::new(config.clone()).unwrap();
//!
//! let mut log = Vec::new();
//! let ana = AgentId::new("ana");
//! log.extend(router.handle(1_000, Command::SetPresence { agent: ana.clone(), presence: Presence::Available }).unwrap());
//! let chat = ConversationId::new();
//! let records = router
//!     .handle(2_000, Command::Inbound {
//!         conversation: chat,
//!         contact: None,
//!         channel: Channel::Chat,
//!         attributes: Attributes::default(),
//!         priority: None,
//!     })
//!     .unwrap();
//! assert!(records.iter().any(|r| matches!(&r.fact,
//!     Fact::Assigned { agent, reason: AssignReason::Queue { .. }, .. } if *agent == ana)));
//! log.extend(records);
//!
//! // After a restart: the same state from the log.
//! let rebuilt = Router::replay(config, &log).unwrap();
//! assert_eq!(rebuilt.snapshot(), router.snapshot());
//! ```

mod engine;
pub mod hours;
pub mod model;
pub mod record;

pub use engine::{
    AgentView, ConfigError, ConversationView, Rejected, ReplayError, RouteState, Router,
    RoutingError, Snapshot,
};
pub use hours::{BusinessHours, Calendar, HoursError, Interval, Week};
pub use model::{
    ALL_CHANNELS, AgentConfig, AgentId, Attributes, CHANNELS, Capacity, EntryRule, Members,
    OfflinePolicy, OutsideHoursAction, Overflow, Presence, QueueConfig, QueueId, RoutingConfig,
    RuleMatch, SiteConfig, SiteId, SkillReq, SkillStep, SlaConfig, Strategy, TransferTarget,
};
pub use record::{AssignReason, Command, Fact, QueueReason, Record, SlaKind, UnassignReason};

#[cfg(test)]
mod tests;
