//! Public data types: events, health information, receipts, send results.

use serde::{Deserialize, Serialize};

use crate::parser::RegDomain;

/// State of the SIM card.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "snake_case", tag = "state", content = "detail")]
pub enum SimState {
    #[default]
    Unknown,
    Ready,
    /// The SIM wants a PIN and none is configured.
    PinRequired,
    /// The configured PIN was rejected; the driver will not try it again.
    PinRejected,
    /// Locked with a PUK: unlock it in a phone.
    PukRequired,
    /// No SIM in the slot (or not seated).
    NotInserted,
    /// Anything else the modem said.
    Error(String),
}

/// Network registration status (27.007 `+CREG` `<stat>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RegStatus {
    NotRegistered,
    Home,
    Searching,
    Denied,
    #[default]
    Unknown,
    Roaming,
    EmergencyOnly,
}

impl RegStatus {
    pub fn from_code(n: u8) -> Self {
        match n {
            0 => RegStatus::NotRegistered,
            1 | 6 | 9 => RegStatus::Home,
            2 => RegStatus::Searching,
            3 => RegStatus::Denied,
            5 | 7 | 10 => RegStatus::Roaming,
            8 => RegStatus::EmergencyOnly,
            _ => RegStatus::Unknown,
        }
    }
    pub fn is_registered(self) -> bool {
        matches!(self, RegStatus::Home | RegStatus::Roaming)
    }
}

/// A registration change (from a +CREG/+CGREG/+CEREG URC or a query).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Registration {
    pub domain: RegDomain,
    pub status: RegStatus,
    pub lac: Option<String>,
    pub cell: Option<String>,
}

/// What `probe()` and the periodic health check report.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ModemInfo {
    pub line: String,
    pub port: String,
    /// Vendor profile in use (detected when configured as `auto`).
    pub profile: crate::config::Profile,
    pub manufacturer: Option<String>,
    pub model: Option<String>,
    pub firmware: Option<String>,
    pub imei: Option<String>,
    pub iccid: Option<String>,
    pub imsi: Option<String>,
    pub own_number: Option<String>,
    pub sim: SimState,
    /// Best of CS (+CREG) and EPS (+CEREG) registration.
    pub registration: RegStatus,
    pub operator: Option<String>,
    /// Received signal strength in dBm (from AT+CSQ), None when unknown.
    pub signal_dbm: Option<i32>,
    /// 0–4 bars (see docs/MODEMS.md).
    pub signal_bars: u8,
    /// Messages in the read memory / its capacity.
    pub storage_used: Option<u32>,
    pub storage_total: Option<u32>,
    /// The new-message indication in use (AT+CNMI=...), None if none worked.
    pub cnmi: Option<String>,
}

/// AT+CSQ rssi (0–31, 99 unknown) → dBm.
pub fn csq_to_dbm(rssi: u8) -> Option<i32> {
    (rssi <= 31).then(|| -113 + 2 * i32::from(rssi))
}

/// dBm → 0–4 bars: < -107 → 0, < -97 → 1, < -87 → 2, < -77 → 3, else 4.
pub fn dbm_to_bars(dbm: Option<i32>) -> u8 {
    match dbm {
        None => 0,
        Some(d) if d < -107 => 0,
        Some(d) if d < -97 => 1,
        Some(d) if d < -87 => 2,
        Some(d) if d < -77 => 3,
        Some(_) => 4,
    }
}

/// A place a message part occupies in the modem: memory and index.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Location {
    pub mem: String,
    pub index: u32,
}

/// Proof that a message was handed to the caller. Pass it to
/// [`crate::ModemHandle::confirm`] once the message is durably stored on
/// your side: only then are its parts deleted from the modem (stored
/// delivery) or from the state file (direct delivery). Serialisable, so it
/// can travel with the message through your own persistence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HandoverReceipt {
    /// The message's stable dedup key (same as [`IncomingSms::key`]).
    pub key: String,
    /// Where its parts sit in the modem.
    pub locations: Vec<Location>,
    /// Ids of directly delivered parts kept in the state file.
    pub direct_parts: Vec<u64>,
}

/// An incoming SMS (complete, or incomplete after the reassembly timeout).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IncomingSms {
    /// Stable dedup key: a hash of sender, SMSC time stamp, concatenation
    /// reference and count, and text. The same message re-offered after a
    /// restart has the same key. Always confirm, duplicates too.
    pub key: String,
    /// The line it came in on.
    pub line: String,
    pub sender: String,
    pub text: String,
    /// SMSC time stamp (RFC 3339, with the SMSC's offset).
    pub sent_at: String,
    /// Number of parts announced.
    pub parts: u8,
    /// Some parts never arrived; the text carries a visible marker instead.
    pub incomplete: bool,
    /// Message class (0 = flash) if given.
    pub class: Option<u8>,
    #[serde(skip)]
    pub receipt: HandoverReceipt,
}

/// Outcome reported by the network for one sent part.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeliveryReport {
    pub line: String,
    /// The send this belongs to (from [`SentSms::id`]), if it was sent by
    /// this driver since it started.
    pub id: Option<u64>,
    /// Part number (0-based) within that send.
    pub part: Option<usize>,
    /// [`SendOptions::tag`] of that send, if it was sent by this driver.
    pub tag: Option<String>,
    /// TP-MR.
    pub reference: u8,
    pub recipient: String,
    pub outcome: crossline_pdu::DeliveryOutcome,
    /// TP-ST as received.
    pub status: u8,
    pub discharge_time: String,
}

/// Options for [`crate::ModemHandle::send_sms`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SendOptions {
    /// Request delivery reports (default from the config when None).
    pub status_report: Option<bool>,
    /// Validity period in minutes.
    pub validity_minutes: Option<u32>,
    /// Always UCS2.
    pub force_ucs2: bool,
    /// The caller's name for this send (the appliance gives its command
    /// id), repeated in every [`DeliveryReport::tag`] of its parts: a
    /// report is tied to its send at the moment the modem takes each part,
    /// before the caller has even heard back from `send_sms`.
    #[serde(default)]
    pub tag: Option<String>,
}

/// A message accepted by the network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SentSms {
    /// Driver-local id, quoted in [`DeliveryReport::id`].
    pub id: u64,
    /// TP-MR of each part, in order (from `+CMGS: <mr>`).
    pub refs: Vec<u8>,
}

/// Why a send did not end in [`SentSms`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum SendError {
    /// Definitely not (completely) sent: bad number, barred, too long, gave
    /// up after retries. Parts listed in `sent_refs` did go out.
    #[error("{line}: SMS to {to} failed: {reason}")]
    Failed {
        line: String,
        to: String,
        reason: String,
        /// The same, readable by people who are not modem engineers, e.g.
        /// "the network is congested (+CMS ERROR 42: congestion)".
        cause: String,
        code: Option<u16>,
        sent_refs: Vec<u8>,
    },
    /// The modem died or timed out after taking a part's PDU and before
    /// answering +CMGS: that part may or may not have been sent. The driver
    /// never resends it by itself; decide (and tell the customer) upstream.
    #[error("{line}: SMS to {to}: outcome unknown ({reason}); not resent automatically")]
    Unknown {
        line: String,
        to: String,
        reason: String,
        sent_refs: Vec<u8>,
        ambiguous_part: usize,
    },
    /// The driver has stopped; nothing was sent.
    #[error("{line}: the modem driver has stopped; the SMS was not sent")]
    Stopped { line: String },
}

/// Why a call ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CallEnd {
    /// We hung up.
    Local,
    /// The other side hung up or the network ended the call (NO CARRIER).
    Remote,
    Busy,
    NoAnswer,
    /// An incoming call stopped ringing before it was answered.
    Missed,
    /// Dialling failed.
    Failed(String),
}

/// Why an incoming call has no number (`+CLIP`'s CLI validity, 3GPP TS
/// 27.007).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NumberAbsence {
    /// CLI validity 1: the caller withheld the number (CLIR).
    Withheld,
    /// CLI validity 2 (interworking: another network, abroad) or 4 (other
    /// reasons): the network could not give it.
    Unavailable,
}

/// Call signalling events.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "event")]
pub enum CallEvent {
    /// A new incoming call (first RING or +CLIP), with caller ID if known:
    /// the number (none when withheld or unavailable: `absence` says
    /// which), and the name the network sent (`+CLIP`'s alpha field).
    Incoming {
        number: Option<String>,
        name: Option<String>,
        absence: Option<NumberAbsence>,
    },
    /// Each further RING, with the caller ID known so far.
    Ringing {
        number: Option<String>,
        name: Option<String>,
        absence: Option<NumberAbsence>,
    },
    /// ATD was accepted.
    Dialing {
        number: String,
    },
    /// The remote side is ringing.
    Alerting,
    /// The call is up.
    Connected,
    /// The other party pressed a key, as the modem detected it (SIMCom
    /// `+RXDTMF`, Quectel `+QTONEDET`, Huawei `^DDTMF`). In-band detection
    /// of the call audio is the main path; this one needs no audio at all.
    Dtmf {
        digit: char,
    },
    Ended {
        reason: CallEnd,
    },
}

/// Everything the driver reports.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case", tag = "type")]
pub enum ModemEvent {
    Sms(IncomingSms),
    /// A stored PDU that cannot be decoded. Keep `pdu` for inspection and
    /// confirm the receipt, or it will be offered again after every restart.
    UndecodableSms {
        line: String,
        pdu: String,
        error: String,
        #[serde(skip)]
        receipt: HandoverReceipt,
    },
    DeliveryReport(DeliveryReport),
    Call(CallEvent),
    Registration(Registration),
    /// A network-initiated USSD message (not an answer to `ussd()`).
    UssdNotice(String),
    /// Initialised (again) or periodic health check.
    Health(ModemInfo),
    /// The port failed; the driver is reopening it.
    Disconnected {
        reason: String,
    },
    /// The port is back and the modem is initialised again.
    Reconnected,
    /// Something a field engineer should see (SIM locked, storage full,
    /// under-voltage, no new-message indication, no call audio...).
    Warning(String),
    /// A call with audio ended: its audio counts each way (sent just before
    /// [`CallEvent::Ended`]).
    VoiceStats(crate::voice::VoiceStats),
}
