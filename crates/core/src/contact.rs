//! The contact id.
//!
//! A contact is one customer with several identities (phone numbers, and
//! later email addresses, chat visitors, messenger ids). The contact model
//! itself (identities, merges, un-merges, tags, notes) is mgmt's projection
//! of its event log: the events are in [`crate::event`]
//! ([`EventBody::ContactsMerged`](crate::EventBody::ContactsMerged),
//! [`EventBody::ContactUnmerged`](crate::EventBody::ContactUnmerged), ...),
//! the rules in docs/ARCHITECTURE.md ("Contacts and conversations").

use serde::{Deserialize, Serialize};
use std::fmt;
use uuid::Uuid;

/// A contact (customer).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ContactId(pub Uuid);

impl ContactId {
    /// A new time-ordered (UUIDv7) id.
    pub fn new() -> Self {
        Self(Uuid::now_v7())
    }
}

impl Default for ContactId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for ContactId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl fmt::Debug for ContactId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ContactId({})", self.0)
    }
}

impl std::str::FromStr for ContactId {
    type Err = uuid::Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Uuid::parse_str(s).map(Self)
    }
}
