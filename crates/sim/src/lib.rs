//! Simulated hardware that stands in for radio and copper in tests and in the
//! demo.
//!
//! The main piece is [`SimModem`]: a GSM/LTE modem answering AT commands on a
//! real pseudo-terminal, reachable through a symlink exactly like a USB
//! modem's `/dev/ttyUSB2`. The driver under test opens it with tokio-serial;
//! the test scripts the network (SMS, calls, USSD, registration) and faults
//! (delays, errors, hangs, garbage, unplugging) through the handle.
//!
//! [`line`] simulates an analog (FXO) line: embedded-hal pins shared with
//! the crossline-line driver, and the exchange and caller behind them.
//!
//! ```no_run
//! # async fn demo() -> Result<(), crossline_sim::Error> {
//! use crossline_sim::{SimConfig, SimModem};
//! let modem = SimModem::spawn(SimConfig::default()).await?;
//! // point the driver at modem.link(), then:
//! modem.inject_sms("+380501234567", "Привіт")?;
//! let sent = modem.wait_sent(1, std::time::Duration::from_secs(5)).await?;
//! # let _ = sent; Ok(()) }
//! ```

pub mod callers;
pub mod customers;
mod error;
pub mod line;
pub mod modem;

pub use error::Error;
pub use modem::{
    CallInfo, CallState, CallerDisplay, DialOutcome, Profile, Registration, SentMessage, SentPart,
    SimConfig, SimModem, StoredSms, StoredStatus, UnknownProfile,
};
