//! Contacts: who the customer is, across channels.

pub mod address;
pub mod facts;
pub mod repo;
