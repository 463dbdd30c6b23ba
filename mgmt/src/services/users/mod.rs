//! Users: accounts, roles, sessions and the audit log.

pub mod audit;
pub mod auth;
pub mod repo;
