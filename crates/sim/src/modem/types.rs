//! Public value types of the modem simulator.

use std::path::PathBuf;
use std::time::Duration;

use super::Profile;

/// How the simulated modem is set up. Build it with struct update syntax:
/// `SimConfig { pin: Some("1234".into()), ..SimConfig::default() }`.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Vendor behaviour to reproduce.
    pub profile: Profile,
    /// Where the symlink to the PTY slave goes (like socat's `link=`); a
    /// fresh temporary directory when `None`.
    pub link: Option<PathBuf>,
    /// SIM PIN; `None` means the SIM is not PIN-locked.
    pub pin: Option<String>,
    /// PUK that unlocks the SIM after three wrong PINs.
    pub puk: String,
    /// `AT+CGSN`.
    pub imei: String,
    /// `AT+CIMI`.
    pub imsi: String,
    /// `AT+CCID` / `AT+QCCID`.
    pub iccid: String,
    /// Network name in `AT+COPS?`.
    pub operator: String,
    /// Numeric operator id (MCC+MNC) in `AT+COPS=?`.
    pub operator_id: String,
    /// The SIM's own number (`AT+CNUM`).
    pub own_number: String,
    /// Service centre address (`AT+CSCA?`).
    pub smsc: String,
    /// Capacity of SIM storage "SM".
    pub sm_capacity: usize,
    /// Capacity of modem storage "ME".
    pub me_capacity: usize,
    /// Capacity of status-report storage "SR".
    pub sr_capacity: usize,
    /// Time between `RING`s of an incoming call.
    pub ring_interval: Duration,
    /// Rings before an unanswered incoming call is given up (missed call).
    pub max_rings: u32,
    /// Time between the states of an outgoing call (dialing, alerting, outcome).
    pub call_step: Duration,
    /// Time from `+CMGS` to the status report, when one was requested.
    pub status_report_delay: Duration,
    /// How long a `+CMT` waits for `AT+CNMA` (with `AT+CSMS=1`) before the
    /// network redelivers it.
    pub cnma_timeout: Duration,
    /// Time from `AT+CUSD=1,...` to the `+CUSD:` answer.
    pub ussd_delay: Duration,
    /// Period of the Huawei `^RSSI`/`^BOOT` noise URCs (Huawei profile only; `None` = off).
    pub noise_interval: Option<Duration>,
    /// Quectel: URCs go nowhere until `AT+QURCCFG="urcport","usbat"` (as on a
    /// real EC25 whose URC port is another USB interface).
    pub urc_port_needs_setup: bool,
    /// Qualcomm quirk: `AT+CNMI=?` advertises ds=1 but `AT+CNMI=...,1,...` fails.
    pub cnmi_rejects_ds1: bool,
    /// The TP-MR counter starts again at 0 at every power-on (many modems
    /// do after a reset); otherwise it keeps counting across a replug.
    pub mr_restarts_at_boot: bool,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            profile: Profile::QuectelEc25,
            link: None,
            pin: None,
            puk: "12345678".into(),
            imei: "861234051234567".into(),
            imsi: "255031234567890".into(),
            iccid: "89380031234567890123".into(),
            operator: "Kyivstar".into(),
            operator_id: "25503".into(),
            own_number: "+380670000001".into(),
            smsc: "+380672021111".into(),
            sm_capacity: 30,
            me_capacity: 100,
            sr_capacity: 20,
            ring_interval: Duration::from_secs(3),
            max_rings: 10,
            call_step: Duration::from_millis(500),
            status_report_delay: Duration::from_secs(1),
            cnma_timeout: Duration::from_secs(10),
            ussd_delay: Duration::from_millis(300),
            noise_interval: Some(Duration::from_secs(30)),
            urc_port_needs_setup: false,
            cnmi_rejects_ds1: false,
            mr_restarts_at_boot: false,
        }
    }
}

/// Network registration state (`<stat>` of `+CREG`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Registration {
    /// 0: not registered, not searching.
    NotRegistered,
    /// 1: registered, home network.
    Home,
    /// 2: not registered, searching.
    Searching,
    /// 3: registration denied.
    Denied,
    /// 4: unknown.
    Unknown,
    /// 5: registered, roaming.
    Roaming,
}

impl Registration {
    /// The numeric `<stat>`.
    pub fn code(self) -> u8 {
        match self {
            Registration::NotRegistered => 0,
            Registration::Home => 1,
            Registration::Searching => 2,
            Registration::Denied => 3,
            Registration::Unknown => 4,
            Registration::Roaming => 5,
        }
    }

    /// True for home and roaming.
    pub fn is_registered(self) -> bool {
        matches!(self, Registration::Home | Registration::Roaming)
    }
}

/// What happens to the next outgoing call (`ATD`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum DialOutcome {
    /// The callee answers: the call becomes active.
    #[default]
    Answer,
    /// `BUSY`.
    Busy,
    /// `NO ANSWER`.
    NoAnswer,
    /// `NO CARRIER` (network failure, call rejected).
    NoCarrier,
    /// Stays alerting until [`crate::SimModem::remote_answer`] or a hang-up.
    Manual,
}

/// Status of a stored message (`<stat>` of `+CMGL`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StoredStatus {
    /// 0: received, not yet read by the driver.
    ReceivedUnread,
    /// 1: received and read (`AT+CMGR`/`AT+CMGL` mark it so).
    ReceivedRead,
    /// 2: stored, unsent.
    StoredUnsent,
    /// 3: stored, sent.
    StoredSent,
}

impl StoredStatus {
    /// The numeric `<stat>`.
    pub fn code(self) -> u8 {
        match self {
            StoredStatus::ReceivedUnread => 0,
            StoredStatus::ReceivedRead => 1,
            StoredStatus::StoredUnsent => 2,
            StoredStatus::StoredSent => 3,
        }
    }
}

/// One message in the simulated storage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredSms {
    /// Memory: `"SM"`, `"ME"` or `"SR"`.
    pub mem: String,
    /// Storage index, as in `+CMTI` and `AT+CMGR`.
    pub index: u32,
    /// Read status.
    pub status: StoredStatus,
    /// The PDU as hex, with the SMSC block, exactly as `AT+CMGR` shows it.
    pub pdu: String,
}

/// One SMS-SUBMIT the driver sent with `AT+CMGS`.
#[derive(Debug, Clone, PartialEq)]
pub struct SentPart {
    /// TP-MR the simulator assigned (answered as `+CMGS: <mr>`).
    pub mr: u8,
    /// The destination number.
    pub to: String,
    /// Decoded text of this part.
    pub text: String,
    /// Concatenation info (reference, total, seq) when this is one part of several.
    pub concat: Option<(u16, u8, u8)>,
    /// The submit asked for a status report.
    pub status_report: bool,
    /// The PDU as typed after the prompt (hex, with the SMSC block).
    pub pdu: String,
}

/// A message the driver sent, reassembled from its parts.
#[derive(Debug, Clone, PartialEq)]
pub struct SentMessage {
    /// The destination number.
    pub to: String,
    /// The text of all parts received so far, in order.
    pub text: String,
    /// True when every announced part arrived.
    pub complete: bool,
    /// The parts, in sequence order.
    pub parts: Vec<SentPart>,
}

/// State of a call as `+CLCC` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CallState {
    /// 0: active.
    Active,
    /// 1: held.
    Held,
    /// 2: dialing (outgoing).
    Dialing,
    /// 3: alerting (outgoing, the callee's phone rings).
    Alerting,
    /// 4: incoming (ringing here).
    Incoming,
    /// 5: waiting.
    Waiting,
}

impl CallState {
    /// The numeric `<stat>` of `+CLCC`.
    pub fn code(self) -> u8 {
        match self {
            CallState::Active => 0,
            CallState::Held => 1,
            CallState::Dialing => 2,
            CallState::Alerting => 3,
            CallState::Incoming => 4,
            CallState::Waiting => 5,
        }
    }
}

/// A call the simulated modem knows about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallInfo {
    /// Call id (`<idx>` of `+CLCC`).
    pub id: u8,
    /// True for calls the driver dialled.
    pub outgoing: bool,
    /// Current state.
    pub state: CallState,
    /// The other party.
    pub number: String,
}
