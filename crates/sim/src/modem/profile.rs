//! Vendor differences the simulator reproduces.

use std::fmt;
use std::str::FromStr;

/// Which real modem the simulator behaves like.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Profile {
    /// Quectel EC25 (the default): boot URCs `RDY`, `+QUSIM`, `+QIND: SMS DONE`;
    /// status reports stored in "SR" but announced as `+CDSI: "SM",n`;
    /// `AT+QCCID`, `AT+QURCCFG`.
    #[default]
    QuectelEc25,
    /// SIMCom SIM7600: `VOICE CALL: BEGIN/END`, `+CLCC` URCs after `AT+CLCC=1`,
    /// `+CRING` framed with `\r\r\n`, `SMS DONE`/`PB DONE` at boot.
    Sim7600,
    /// SIMCom SIM800: like the SIM7600, with `Call Ready`/`SMS Ready` at boot.
    Sim800,
    /// Huawei E173: `^RSSI`/`^BOOT`/`^MODE` noise URCs, USSD answered as packed
    /// GSM 7-bit hex, `^SMMEMFULL` when storage fills up.
    HuaweiE173,
}

impl Profile {
    /// All profiles, for help texts and loops in tests.
    pub const ALL: [Profile; 4] = [
        Profile::QuectelEc25,
        Profile::Sim7600,
        Profile::Sim800,
        Profile::HuaweiE173,
    ];

    /// The name used on the command line (`quectel-ec25`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Profile::QuectelEc25 => "quectel-ec25",
            Profile::Sim7600 => "sim7600",
            Profile::Sim800 => "sim800",
            Profile::HuaweiE173 => "huawei-e173",
        }
    }

    /// `AT+CGMI` answer.
    pub fn manufacturer(self) -> &'static str {
        match self {
            Profile::QuectelEc25 => "Quectel",
            Profile::Sim7600 => "SIMCOM INCORPORATED",
            Profile::Sim800 => "SIMCOM_Ltd",
            Profile::HuaweiE173 => "huawei",
        }
    }

    /// `AT+CGMM` answer.
    pub fn model(self) -> &'static str {
        match self {
            Profile::QuectelEc25 => "EC25",
            Profile::Sim7600 => "SIMCOM_SIM7600E",
            Profile::Sim800 => "SIMCOM_SIM800L",
            Profile::HuaweiE173 => "E173",
        }
    }

    /// `AT+CGMR` answer (firmware revision).
    pub fn revision(self) -> &'static str {
        match self {
            Profile::QuectelEc25 => "EC25EFAR06A06M4G",
            Profile::Sim7600 => "LE20B04SIM7600M22",
            Profile::Sim800 => "1418B05SIM800L24",
            Profile::HuaweiE173 => "11.126.85.00.209",
        }
    }

    pub(crate) fn is_simcom(self) -> bool {
        matches!(self, Profile::Sim7600 | Profile::Sim800)
    }

    /// First storage index the modem hands out (Quectel counts from 0).
    pub(crate) fn first_index(self) -> u32 {
        match self {
            Profile::QuectelEc25 => 0,
            _ => 1,
        }
    }

    /// Unsolicited lines after power-on; `pin_locked` when the SIM wants a PIN.
    pub(crate) fn boot_urcs(self, pin_locked: bool) -> Vec<String> {
        let cpin = if pin_locked {
            "+CPIN: SIM PIN"
        } else {
            "+CPIN: READY"
        };
        let mut v: Vec<String> = Vec::new();
        match self {
            Profile::QuectelEc25 => {
                v.extend(["RDY", "+CFUN: 1", cpin].map(String::from));
                v.push("+QUSIM: 1".into());
                if !pin_locked {
                    v.push("+QIND: SMS DONE".into());
                    v.push("+QIND: PB DONE".into());
                }
            }
            Profile::Sim7600 => {
                v.extend(["RDY", "+CPIN: READY"].map(String::from));
                if pin_locked {
                    v.truncate(1);
                    v.push(cpin.into());
                } else {
                    v.push("SMS DONE".into());
                    v.push("PB DONE".into());
                }
            }
            Profile::Sim800 => {
                v.extend(["RDY", "+CFUN: 1", cpin].map(String::from));
                if !pin_locked {
                    v.push("Call Ready".into());
                    v.push("SMS Ready".into());
                }
            }
            Profile::HuaweiE173 => {
                v.push("^BOOT:20952923,0,0,0,75".into());
                v.push("^RSSI:17".into());
                v.push("^MODE:5,4".into());
            }
        }
        v
    }
}

impl fmt::Display for Profile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The profile name was not one of [`Profile::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown modem profile {0:?}: use quectel-ec25, sim7600, sim800 or huawei-e173")]
pub struct UnknownProfile(pub String);

impl FromStr for Profile {
    type Err = UnknownProfile;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let lower = s.to_ascii_lowercase();
        Profile::ALL
            .into_iter()
            .find(|p| p.name() == lower || p.name().replace('-', "") == lower)
            .ok_or_else(|| UnknownProfile(s.to_string()))
    }
}
