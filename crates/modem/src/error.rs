//! Typed modem errors: +CME ERROR / +CMS ERROR with their meaning and class,
//! and the errors of the AT engine and the driver.

use std::time::Duration;

/// How the driver reacts to an error (see docs/MODEMS.md "Error classes").
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorClass {
    /// The modem or SIM is not ready (booting, SIM busy, no PIN yet, no
    /// network): wait, re-initialise, retry later.
    NotReady,
    /// A transient network condition: retry with backoff.
    Temporary,
    /// Retrying will not help (bad number, barred, invalid PDU): fail this
    /// operation only and move on.
    Permanent,
}

/// `+CME ERROR: <n>|<text>` (3GPP TS 27.007 §9.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CmeError {
    /// Numeric code, also when the modem sent the verbose text (looked up).
    pub code: Option<u16>,
    /// Text the modem sent, or the standard meaning of the code.
    pub text: String,
}

/// `+CMS ERROR: <n>|<text>` (3GPP TS 27.005 §3.2.5, RP/TP causes of 24.011/23.040).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CmsError {
    pub code: Option<u16>,
    pub text: String,
}

const CME: &[(u16, &str, ErrorClass)] = {
    use ErrorClass::*;
    &[
        (0, "phone failure", Temporary),
        (1, "no connection to phone", NotReady),
        (3, "operation not allowed", Permanent),
        (4, "operation not supported", Permanent),
        (5, "PH-SIM PIN required", NotReady),
        (10, "SIM not inserted", NotReady),
        (11, "SIM PIN required", NotReady),
        (12, "SIM PUK required", NotReady),
        (13, "SIM failure", NotReady),
        (14, "SIM busy", NotReady),
        (15, "SIM wrong", NotReady),
        (16, "incorrect password", Permanent),
        (17, "SIM PIN2 required", Permanent),
        (18, "SIM PUK2 required", Permanent),
        (20, "memory full", Permanent),
        (21, "invalid index", Permanent),
        (22, "not found", Permanent),
        (23, "memory failure", Temporary),
        (24, "text string too long", Permanent),
        (25, "invalid characters in text string", Permanent),
        (26, "dial string too long", Permanent),
        (27, "invalid characters in dial string", Permanent),
        (30, "no network service", NotReady),
        (31, "network timeout", Temporary),
        (32, "network not allowed - emergency calls only", NotReady),
        (100, "unknown", Temporary),
        (103, "illegal MS", Permanent),
        (106, "illegal ME", Permanent),
        (107, "GPRS services not allowed", Permanent),
        (111, "PLMN not allowed", Permanent),
        (112, "location area not allowed", Permanent),
        (113, "roaming not allowed in this location area", Permanent),
        (132, "service option not supported", Permanent),
        (133, "requested service option not subscribed", Permanent),
        (134, "service option temporarily out of order", Temporary),
        (148, "unspecified GPRS error", Temporary),
        (
            515,
            "please wait, init or command processing in progress",
            NotReady,
        ),
    ]
};

/// `+CMS ERROR` codes: the standard meaning, the class, and a readable
/// cause for people who are not modem engineers (an agent reading why a
/// reply failed, a field engineer in the logs). One table: a code's three
/// columns are kept together.
const CMS_CAUSES: &[(u16, &str, ErrorClass, &str)] = {
    use ErrorClass::*;
    &[
        (
            1,
            "unassigned (unallocated) number",
            Permanent,
            "the number does not exist",
        ),
        (
            8,
            "operator determined barring",
            Permanent,
            "the operator has barred this SIM from sending",
        ),
        (
            10,
            "call barred",
            Permanent,
            "sending is barred on this SIM",
        ),
        (
            21,
            "short message transfer rejected",
            Permanent,
            "the network refused the message",
        ),
        (
            22,
            "memory capacity exceeded",
            Temporary,
            "the recipient's phone memory is full",
        ),
        (
            27,
            "destination out of service",
            Temporary,
            "the recipient's phone is out of service",
        ),
        (
            28,
            "unidentified subscriber",
            Permanent,
            "the network does not know the recipient",
        ),
        (
            29,
            "facility rejected",
            Permanent,
            "the network rejected the request",
        ),
        (
            30,
            "unknown subscriber",
            Permanent,
            "the recipient is not a known subscriber",
        ),
        (
            38,
            "network out of order",
            Temporary,
            "the operator's network is out of order",
        ),
        (
            41,
            "temporary failure",
            Temporary,
            "a temporary network failure",
        ),
        (42, "congestion", Temporary, "the network is congested"),
        (
            47,
            "resources unavailable, unspecified",
            Temporary,
            "the network has no resources for it right now",
        ),
        (
            50,
            "requested facility not subscribed",
            Permanent,
            "the SIM's plan does not include sending SMS",
        ),
        (
            69,
            "requested facility not implemented",
            Permanent,
            "the network does not offer this service",
        ),
        (
            81,
            "invalid short message transfer reference value",
            Permanent,
            "the network refused the message reference",
        ),
        (
            95,
            "invalid message, unspecified",
            Permanent,
            "the network found the message invalid",
        ),
        (
            96,
            "invalid mandatory information",
            Permanent,
            "the network found the message invalid",
        ),
        (
            97,
            "message type non-existent or not implemented",
            Permanent,
            "the network found the message invalid",
        ),
        (
            98,
            "message not compatible with short message protocol state",
            Permanent,
            "the network found the message invalid",
        ),
        (
            99,
            "information element non-existent or not implemented",
            Permanent,
            "the network found the message invalid",
        ),
        (
            111,
            "protocol error, unspecified",
            Permanent,
            "a network protocol error",
        ),
        (
            127,
            "interworking, unspecified",
            Permanent,
            "a failure between two operators' networks",
        ),
        (300, "ME failure", Temporary, "the modem failed"),
        (
            301,
            "SMS service of ME reserved",
            NotReady,
            "the modem's SMS service is busy",
        ),
        (
            302,
            "operation not allowed",
            NotReady,
            "the modem does not allow this now (still starting?)",
        ),
        (
            303,
            "operation not supported",
            Permanent,
            "the modem does not support this",
        ),
        (
            304,
            "invalid PDU mode parameter",
            Permanent,
            "the modem refused the message as malformed",
        ),
        (
            305,
            "invalid text mode parameter",
            Permanent,
            "the modem refused a text-mode parameter",
        ),
        (
            310,
            "SIM not inserted",
            NotReady,
            "there is no SIM card in the modem",
        ),
        (
            311,
            "SIM PIN required",
            NotReady,
            "the SIM card is locked with a PIN",
        ),
        (
            312,
            "PH-SIM PIN required",
            NotReady,
            "the modem is locked to another SIM",
        ),
        (313, "SIM failure", NotReady, "the SIM card failed"),
        (314, "SIM busy", NotReady, "the SIM card is busy"),
        (315, "SIM wrong", NotReady, "the SIM card is not accepted"),
        (
            316,
            "SIM PUK required",
            NotReady,
            "the SIM card is locked (PUK needed)",
        ),
        (
            317,
            "SIM PIN2 required",
            Permanent,
            "the SIM card wants its PIN2",
        ),
        (
            318,
            "SIM PUK2 required",
            Permanent,
            "the SIM card wants its PUK2",
        ),
        (
            320,
            "memory failure",
            Temporary,
            "the modem's message memory failed",
        ),
        (
            321,
            "invalid memory index",
            Permanent,
            "no message in that memory slot",
        ),
        (
            322,
            "memory full",
            Temporary,
            "the modem's message memory is full",
        ),
        (
            330,
            "SMSC address unknown",
            NotReady,
            "the SIM has no SMS centre number (set it with AT+CSCA)",
        ),
        (
            331,
            "no network service",
            NotReady,
            "no network: no coverage or not registered",
        ),
        (
            332,
            "network timeout",
            NotReady,
            "the network did not answer in time",
        ),
        (
            340,
            "no +CNMA acknowledgement expected",
            Permanent,
            "an unexpected acknowledgement",
        ),
        (
            500,
            "unknown error",
            Temporary,
            "the modem or network failed without giving a reason",
        ),
        (512, "user abort", Temporary, "the send was aborted"),
    ]
};

/// The (code, meaning, class) view of [`CMS_CAUSES`] the lookups share with [`CME`].
const CMS: &[(u16, &str, ErrorClass)] = &{
    let mut out = [(0u16, "", ErrorClass::Permanent); CMS_CAUSES.len()];
    let mut i = 0;
    while i < CMS_CAUSES.len() {
        let (code, text, class, _) = CMS_CAUSES[i];
        out[i] = (code, text, class);
        i += 1;
    }
    out
};

fn parse_code(table: &[(u16, &str, ErrorClass)], s: &str) -> (Option<u16>, String) {
    if let Ok(n) = s.parse::<u16>() {
        let text = table
            .iter()
            .find(|(c, _, _)| *c == n)
            .map_or_else(|| format!("error {n}"), |(_, t, _)| (*t).to_string());
        return (Some(n), text);
    }
    let code = table
        .iter()
        .find(|(_, t, _)| t.eq_ignore_ascii_case(s))
        .map(|(c, _, _)| *c);
    (code, s.to_string())
}

fn class_of(
    table: &[(u16, &str, ErrorClass)],
    code: Option<u16>,
    default: ErrorClass,
) -> ErrorClass {
    code.and_then(|n| table.iter().find(|(c, _, _)| *c == n))
        .map_or(default, |(_, _, k)| *k)
}

impl CmeError {
    /// Parses the part after `+CME ERROR:` (numeric or verbose).
    pub fn parse(s: &str) -> Self {
        let (code, text) = parse_code(CME, s);
        Self { code, text }
    }
    pub fn class(&self) -> ErrorClass {
        class_of(CME, self.code, ErrorClass::Permanent)
    }
}

impl CmsError {
    /// Parses the part after `+CMS ERROR:` (numeric or verbose).
    pub fn parse(s: &str) -> Self {
        let (code, text) = parse_code(CMS, s);
        Self { code, text }
    }
    /// Network causes 0–127 not in the table are permanent; 128–511 not in
    /// the table are permanent too (a retry cannot fix a PDU the SMSC refused).
    pub fn class(&self) -> ErrorClass {
        class_of(CMS, self.code, ErrorClass::Permanent)
    }

    /// A readable cause with the code, for people: `+CMS ERROR: 42` →
    /// "the network is congested (+CMS ERROR 42: congestion)". Codes not in
    /// the table keep the modem's own words.
    pub fn cause(&self) -> String {
        let readable = self
            .code
            .and_then(|n| CMS_CAUSES.iter().find(|(c, ..)| *c == n))
            .map(|(_, _, _, cause)| *cause);
        match (readable, self.code) {
            (Some(cause), Some(n)) => format!("{cause} (+CMS ERROR {n}: {})", self.text),
            (_, Some(n)) => format!("the modem refused it (+CMS ERROR {n}: {})", self.text),
            (_, None) => format!("the modem refused it (+CMS ERROR: {})", self.text),
        }
    }
}

impl std::fmt::Display for CmeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.code {
            Some(c) => write!(f, "+CME ERROR {c} ({})", self.text),
            None => write!(f, "+CME ERROR ({})", self.text),
        }
    }
}

impl std::fmt::Display for CmsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.code {
            Some(c) => write!(f, "+CMS ERROR {c} ({})", self.text),
            None => write!(f, "+CMS ERROR ({})", self.text),
        }
    }
}

/// Errors of one AT command.
#[derive(Debug, thiserror::Error)]
pub enum AtError {
    #[error(
        "{port}: {command} got no final result within {after:?}; the modem is hung or busy (the driver resyncs with ESC + AT)"
    )]
    Timeout {
        port: String,
        command: String,
        after: Duration,
    },
    #[error("{port}: {command} failed: {error}")]
    Cme {
        port: String,
        command: String,
        error: CmeError,
    },
    #[error("{port}: {command} failed: {error}")]
    Cms {
        port: String,
        command: String,
        error: CmsError,
    },
    #[error("{port}: {command} answered ERROR (command unsupported or bad arguments)")]
    Error { port: String, command: String },
    #[error("{port}: {command} answered {result}")]
    CallResult {
        port: String,
        command: String,
        result: String,
    },
    #[error(
        "{port}: the serial port failed ({source}); the modem was unplugged or re-enumerated — the driver reopens it"
    )]
    Io {
        port: String,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "{port}: the serial port closed (end of file); the modem was unplugged or re-enumerated — the driver reopens it"
    )]
    Closed { port: String },
    #[error(
        "{port}: {command}: the PDU was handed to the modem but no +CMGS result came back ({reason}); the message may or may not have been sent"
    )]
    Ambiguous {
        port: String,
        command: String,
        reason: String,
    },
    #[error("{port}: {command}: the modem never showed the '> ' prompt")]
    NoPrompt { port: String, command: String },
}

impl AtError {
    /// How to react to this error.
    pub fn class(&self) -> ErrorClass {
        match self {
            AtError::Cme { error, .. } => error.class(),
            AtError::Cms { error, .. } => error.class(),
            AtError::Error { .. } | AtError::CallResult { .. } => ErrorClass::Permanent,
            AtError::Timeout { .. }
            | AtError::Io { .. }
            | AtError::Closed { .. }
            | AtError::NoPrompt { .. } => ErrorClass::Temporary,
            AtError::Ambiguous { .. } => ErrorClass::Permanent,
        }
    }

    /// True when the transport is gone and must be reopened.
    pub fn is_transport(&self) -> bool {
        matches!(self, AtError::Io { .. } | AtError::Closed { .. })
    }

    /// The same error with the command text replaced (it held a secret).
    pub fn redacted(self) -> Self {
        let r = || "<redacted>".to_string();
        match self {
            AtError::Timeout { port, after, .. } => AtError::Timeout {
                port,
                command: r(),
                after,
            },
            AtError::Cme { port, error, .. } => AtError::Cme {
                port,
                command: r(),
                error,
            },
            AtError::Cms { port, error, .. } => AtError::Cms {
                port,
                command: r(),
                error,
            },
            AtError::Error { port, .. } => AtError::Error { port, command: r() },
            AtError::CallResult { port, result, .. } => AtError::CallResult {
                port,
                command: r(),
                result,
            },
            AtError::Ambiguous { port, reason, .. } => AtError::Ambiguous {
                port,
                command: r(),
                reason,
            },
            AtError::NoPrompt { port, .. } => AtError::NoPrompt { port, command: r() },
            other => other,
        }
    }

    /// A readable cause for people (an agent reading why a reply failed):
    /// the [`CmsError::cause`] of a `+CMS ERROR`, else a short sentence.
    pub fn cause(&self) -> String {
        match self {
            AtError::Cms { error, .. } => error.cause(),
            AtError::Cme { error, .. } => match error.code {
                Some(n) => format!("the modem refused it (+CME ERROR {n}: {})", error.text),
                None => format!("the modem refused it (+CME ERROR: {})", error.text),
            },
            AtError::Error { .. } => "the modem refused it (ERROR)".to_string(),
            AtError::CallResult { result, .. } => format!("the modem answered {result}"),
            AtError::Timeout { after, .. } => {
                format!("the modem did not answer within {after:?}")
            }
            AtError::Io { .. } | AtError::Closed { .. } => "the modem was disconnected".to_string(),
            AtError::Ambiguous { .. } => {
                "the modem stopped answering after taking the message".to_string()
            }
            AtError::NoPrompt { .. } => "the modem did not ask for the message".to_string(),
        }
    }

    /// The +CMS ERROR code, if this is one.
    pub fn cms_code(&self) -> Option<u16> {
        match self {
            AtError::Cms { error, .. } => error.code,
            _ => None,
        }
    }

    /// The +CME ERROR code, if this is one.
    pub fn cme_code(&self) -> Option<u16> {
        match self {
            AtError::Cme { error, .. } => error.code,
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meanings_and_classes() {
        let e = CmeError::parse("10");
        assert_eq!(e.text, "SIM not inserted");
        assert_eq!(e.class(), ErrorClass::NotReady);
        assert_eq!(CmeError::parse("incorrect password").code, Some(16));
        assert_eq!(CmeError::parse("16").class(), ErrorClass::Permanent);
        assert_eq!(CmeError::parse("SIM PIN required").code, Some(11));
        for n in ["38", "41", "42", "47"] {
            assert_eq!(CmsError::parse(n).class(), ErrorClass::Temporary, "{n}");
        }
        for n in ["1", "8", "21", "29", "50", "96", "304"] {
            assert_eq!(CmsError::parse(n).class(), ErrorClass::Permanent, "{n}");
        }
        for n in ["302", "310", "311", "330", "331", "332"] {
            assert_eq!(CmsError::parse(n).class(), ErrorClass::NotReady, "{n}");
        }
        assert_eq!(CmsError::parse("321").text, "invalid memory index");
        assert_eq!(CmsError::parse("322").text, "memory full");
        assert_eq!(CmsError::parse("500").text, "unknown error");
        assert_eq!(CmsError::parse("Invalid memory index").code, Some(321));
        let odd = CmsError::parse("weird vendor text");
        assert_eq!(odd.code, None);
        assert_eq!(odd.class(), ErrorClass::Permanent);
        assert_eq!(
            CmsError::parse("42").to_string(),
            "+CMS ERROR 42 (congestion)"
        );
    }

    #[test]
    fn every_cms_code_has_a_readable_cause() {
        for (code, text, _, cause) in CMS_CAUSES {
            let e = CmsError::parse(&code.to_string());
            assert_eq!(e.text, *text);
            // a sentence of its own, not the 3GPP name again
            assert!(!cause.is_empty() && cause != text, "{code}: {cause}");
            assert_eq!(e.cause(), format!("{cause} (+CMS ERROR {code}: {text})"));
        }
        assert_eq!(
            CmsError::parse("500").cause(),
            "the modem or network failed without giving a reason (+CMS ERROR 500: unknown error)"
        );
        assert_eq!(
            CmsError::parse("330").cause(),
            "the SIM has no SMS centre number (set it with AT+CSCA) (+CMS ERROR 330: SMSC address unknown)"
        );
        // a code or text outside the table keeps the modem's words
        assert_eq!(
            CmsError::parse("777").cause(),
            "the modem refused it (+CMS ERROR 777: error 777)"
        );
        assert_eq!(
            CmsError::parse("weird vendor text").cause(),
            "the modem refused it (+CMS ERROR: weird vendor text)"
        );
    }
}
