//! The simulator's error type.

use std::path::PathBuf;
use std::time::Duration;

/// Everything that can go wrong while running or scripting the simulator.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The pseudo-terminal could not be created or configured.
    #[error("cannot set up the simulated modem's pseudo-terminal: {0} (is /dev/ptmx available?)")]
    Pty(String),
    /// The symlink to the slave device could not be created.
    #[error("cannot create the modem link {path}: {source} (is the directory writable?)")]
    Link {
        /// Where the link was to go.
        path: PathBuf,
        /// Why it failed.
        source: std::io::Error,
    },
    /// The socket a simulated analog line is served on could not be made.
    #[error(
        "cannot serve the simulated line on {path}: {source} (is the directory writable, is a stale socket in the way?)"
    )]
    LineSocket {
        /// Where the socket was to go.
        path: PathBuf,
        /// Why it failed.
        source: std::io::Error,
    },
    /// A phone number given to an injection is not a valid SMS address.
    #[error("invalid phone number {value:?}: {reason}")]
    Address {
        /// The number given.
        value: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A message could not be encoded as SMS-DELIVER PDUs.
    #[error("cannot encode the simulated SMS: {0}")]
    Encode(String),
    /// `inject_pdu` was given text that is not hex octets.
    #[error("not a hex PDU: {0:?}")]
    Hex(String),
    /// The simulator task is not running any more (shut down or its runtime ended).
    #[error("the simulated modem has stopped")]
    Stopped,
    /// A wait for something the driver should have done timed out.
    #[error("timed out after {waited:?} waiting for {what}; the simulator saw: {seen}")]
    Timeout {
        /// What was awaited.
        what: String,
        /// How long.
        waited: Duration,
        /// What the simulator observed meanwhile (for the test's failure message).
        seen: String,
    },
}
