//! Crossline's GSM/LTE modem driver: an AT engine over any tokio
//! `AsyncRead + AsyncWrite`, SMS in PDU mode (receive without loss, send
//! without silent duplicates), USSD, call signalling and health.
//!
//! # Starting a modem
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use crossline_modem::{Modem, ModemConfig, ModemEvent, Profile, SendOptions, serial_opener};
//!
//! let cfg = ModemConfig::new("gsm0", "/dev/ttyUSB2", Profile::Auto);
//! let (modem, mut events) = Modem::start(cfg, serial_opener("/dev/ttyUSB2", 115_200));
//! let sent = modem.send_sms("+380501234567", "Привіт", SendOptions::default()).await?;
//! while let Some(ev) = events.recv().await {
//!     if let ModemEvent::Sms(sms) = ev {
//!         // 1. store `sms` durably (dedup on `sms.key`), 2. then:
//!         modem.confirm(sms.receipt).await?;
//!     }
//! }
//! # let _ = sent; Ok(()) }
//! ```
//!
//! [`Modem::start`] spawns one task per modem and returns a cloneable
//! [`ModemHandle`] plus an `mpsc::Receiver<`[`ModemEvent`]`>` (bounded: a
//! caller that stops reading events eventually stalls the driver, it never
//! drops them). The `opener` closure is called at start and again, with
//! exponential backoff up to [`ModemConfig::reopen_backoff_max`], whenever
//! the port fails (USB modems re-enumerate: EIO or EOF on read).
//!
//! Handle calls (all `async`, answered in order by the driver task):
//!
//! | call | what it does |
//! |---|---|
//! | [`ModemHandle::send_sms`]`(to, text, SendOptions) -> Result<SentSms, SendError>` | queue, split, submit each part (AT+CMGS); [`SendError::Failed`] (definitely not sent), [`SendError::Unknown`] (ambiguous, never resent), [`SendError::Stopped`] |
//! | [`ModemHandle::confirm`]`(HandoverReceipt)` | delete the message's parts from the modem / state file |
//! | [`ModemHandle::probe`]`() -> ModemInfo` | identity, SIM, registration, operator, signal (serde `Serialize`) |
//! | [`ModemHandle::ussd`]`(code) -> String` | USSD request and the network's decoded answer |
//! | [`ModemHandle::dial`], [`answer`](ModemHandle::answer), [`hangup`](ModemHandle::hangup), [`dtmf`](ModemHandle::dtmf) | call control; progress arrives as [`ModemEvent::Call`] |
//! | [`ModemHandle::voice`]`() -> VoiceStream` | the connected call's audio as 20 ms frames (with `voice_port` configured; see [`voice`]) |
//! | [`ModemHandle::sweep`]`() -> usize` | read all stored messages now (AT+CMGL=4) |
//! | [`ModemHandle::at`]`(command) -> Vec<String>` | a raw command, for diagnostics |
//! | [`ModemHandle::shutdown`] | stop the driver |
//!
//! # The loss-free receive order
//!
//! 1. A message arrives (+CMTI → AT+CMGR, +CMT, or the sweep).
//! 2. The driver emits [`ModemEvent::Sms`] with a stable dedup
//!    [`IncomingSms::key`] and a [`HandoverReceipt`]. Nothing is deleted yet.
//! 3. The caller stores the message durably (deduplicating on `key`).
//! 4. The caller calls [`ModemHandle::confirm`]; only now are the SIM
//!    indices deleted (stored delivery) or the parts removed from
//!    [`ModemConfig::state_file`] (direct delivery).
//!
//! A crash anywhere before step 4 means the message is offered again after
//! the restart (the start-up sweep reads every stored message), with the same
//! key: the caller dedups and confirms again. Always confirm, duplicates too.
//! Concatenated parts stay on the SIM until the whole message is handed
//! over, so a restart mid-message loses nothing; direct (+CMT) parts are
//! kept in the state file, written before the AT+CNMA acknowledgement.
//!
//! # Layers
//!
//! * [`parser`]: bytes → lines/prompt/two-line URCs → classified lines (pure, fuzzed).
//! * [`engine`]: one command at a time with hard deadlines, echo stripping, URC
//!   queue, the `> ` prompt, resync (ESC + `AT`).
//! * [`driver`]: the per-modem task (init, SMS, USSD, calls, health, reopen).
//! * [`voice`]: call audio from the modem's voice port (frames, pump, stats).
//! * [`error`]: +CME/+CMS errors with meaning and [`ErrorClass`].
//!
//! * [`cli`] (feature `cli`, on by default): the `crossline-modem` diagnostics
//!   commands, embeddable as another program's subcommand.
//!
//! Logs carry tracing fields `line` and `port`. Vendor quirks and the error
//! classes are described in docs/MODEMS.md.

#[cfg(feature = "cli")]
pub mod cli;
pub mod config;
pub mod driver;
pub mod engine;
pub mod error;
pub mod parser;
pub mod store;
pub mod types;
pub mod voice;

pub use config::{Delivery, ModemConfig, Profile};
pub use driver::{Modem, ModemError, ModemHandle, same_number};
pub use engine::{AtEngine, Command, OpenFuture, Response, Transport, open_serial, serial_opener};
pub use error::{AtError, CmeError, CmsError, ErrorClass};
pub use types::*;
pub use voice::{
    OneWay, VoiceError, VoiceFrame, VoicePort, VoiceReceiver, VoiceSender, VoiceStats, VoiceStream,
};
