//! Crossline domain model: pure logic, no I/O.
//!
//! * [`event`]: the immutable facts every node appends and replicates.
//! * [`change`]: what a projection decided about them (the change set
//!   consumers of the log read).
//! * [`hlc`]: the hybrid logical clock that stamps them.
//! * [`id`]: typed identifiers (nodes, events, conversations, calls,
//!   recordings).

pub mod change;
pub mod contact;
pub mod distinct;
pub mod event;
pub mod hlc;
pub mod id;
pub mod lang;
pub mod metrics;
pub mod routing;
pub mod tagged;

pub use change::{Change, ChangeSet, Direction};
pub use event::{
    CallEndCause, CallStep, Channel, DeliveryState, Event, EventBody, ModemHealth, Originator,
    Refusal, SystemHealth, UnknownBody, UnknownChannel, known_kinds,
};
pub use hlc::{Hlc, HlcClock, WallClock};
pub use id::{CallId, ConversationId, EventId, IdError, NodeId, RecordingId};
