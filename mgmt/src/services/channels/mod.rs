//! Channels: how mgmt's outbound messages reach the customer.

pub mod commands;
