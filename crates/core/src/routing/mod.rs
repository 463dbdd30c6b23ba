//! Routing: which agent gets which conversation, when, and why.
//!
//! Pure and deterministic: the caller passes the time (ms since the epoch)
//! with every [`Command`]; the engine answers with [`Record`]s (who, why)
//! that mgmt appends to its event log; [`Router::replay`] rebuilds the same
//! state from them. See docs/ROUTING.md.

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
