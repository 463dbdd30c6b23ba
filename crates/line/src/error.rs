//! Typed line errors; pin errors keep embedded-hal's `ErrorKind` and the
//! backend's own description.

use std::fmt;

/// Which of the line's pins failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PinRole {
    /// The hook relay output.
    Hook,
    /// The ring-detect input.
    Ring,
    /// The loop-current / polarity sense input.
    LoopSense,
}

impl fmt::Display for PinRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PinRole::Hook => "hook relay",
            PinRole::Ring => "ring detect",
            PinRole::LoopSense => "loop sense",
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LineError {
    #[error(
        "line {line}: the {pin} pin failed ({kind:?}: {detail}); check the GPIO wiring and that no other program holds the pin"
    )]
    Pin {
        line: String,
        pin: PinRole,
        kind: embedded_hal::digital::ErrorKind,
        detail: String,
    },
    #[error("line {line}: cannot open the {pin} pin (GPIO {gpio}): {detail}")]
    Open {
        line: String,
        pin: PinRole,
        gpio: u8,
        detail: String,
    },
    #[error("line {line}: the line link {path} failed: {detail}")]
    Link {
        line: String,
        path: String,
        detail: String,
    },
    #[error("line {line}: configuration: {reason}")]
    Config { line: String, reason: String },
    #[error("line {line}: cannot answer, the line is not ringing (the caller may have given up)")]
    NotRinging { line: String },
    #[error("line {line}: cannot seize, the line is ringing (answer the incoming call instead)")]
    Ringing { line: String },
    #[error("line {line}: already off-hook (hang up first)")]
    OffHook { line: String },
}

impl LineError {
    pub(crate) fn pin<E: embedded_hal::digital::Error>(line: &str, pin: PinRole, e: E) -> Self {
        LineError::Pin {
            line: line.to_owned(),
            pin,
            kind: e.kind(),
            detail: format!("{e:?}"),
        }
    }
}
