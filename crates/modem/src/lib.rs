//! (in progress)
pub mod engine;
pub mod error;
pub mod parser;
