//! (in progress)
pub mod config;
pub mod driver;
pub mod engine;
pub mod error;
pub mod parser;
pub mod store;
pub mod types;

pub use config::{Delivery, ModemConfig, Profile};
pub use driver::{Modem, ModemError, ModemHandle};
pub use engine::{AtEngine, Command, OpenFuture, Response, Transport, open_serial, serial_opener};
pub use error::{AtError, CmeError, CmsError, ErrorClass};
pub use types::*;
