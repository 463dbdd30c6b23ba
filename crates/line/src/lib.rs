//! Analog FXO line: the hook relay is an embedded-hal 1.0 `OutputPin`, ring
//! detect an `InputPin`; ring cadences are qualified per country, answer and
//! far-end disconnect are seen as loop-current / polarity reversal on a
//! second `InputPin` (docs/LINES.md).
//!
//! [`Fxo`] is a state machine polled with an injected monotonic clock;
//! [`LineDriver`] runs it on a tokio task and sends [`LineEvent`]s through a
//! channel. Simulated pins and a simulated analog line for tests are in
//! `crossline-sim` (`crossline_sim::line`), which can also serve a line to
//! another process over the [`link`]; the Raspberry Pi backend is the `rpi`
//! feature.

mod config;
pub mod driver;
mod error;
mod fxo;
pub mod link;
mod port;
mod ring;
#[cfg(feature = "rpi")]
pub mod rpi;

pub use config::{Cadence, Country, LineConfig, PinLevels, RingSegment, Supervision, ring_cadence};
pub use driver::{DriverEvent, LineDriver};
pub use error::{LineError, PinRole};
pub use fxo::{DisconnectCause, Fxo, LineEvent};
pub use port::{GpioPins, OpenedLine, Port, open};
