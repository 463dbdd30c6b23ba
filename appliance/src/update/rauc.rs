//! The slots, through the real `rauc` program (which talks to the RAUC
//! service over D-Bus), behind the [`Installer`] trait.

use anyhow::{Context, Result, anyhow, bail};
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// One slot as the installer sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Slot {
    /// RAUC's slot name (`rootfs.0`).
    pub name: String,
    /// The bootloader's name for it (`A`).
    pub bootname: String,
    /// Its boot status is `good`.
    pub good: bool,
    /// The version of the bundle RAUC installed into it, if it did.
    pub version: Option<String>,
}

/// Where the slots stand.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotStatus {
    /// Bootname of the slot running now.
    pub booted: String,
    /// Bootname of the slot the bootloader starts next, if it says.
    pub primary: Option<String>,
    pub slots: Vec<Slot>,
}

impl SlotStatus {
    pub fn slot(&self, bootname: &str) -> Option<&Slot> {
        self.slots.iter().find(|s| s.bootname == bootname)
    }

    /// The bootname of the (one) other bootable slot: where an update goes.
    pub fn other(&self) -> Option<String> {
        let mut others = self.slots.iter().filter(|s| s.bootname != self.booted);
        match (others.next(), others.next()) {
            (Some(o), None) => Some(o.bootname.clone()),
            _ => None,
        }
    }
}

/// A bundle's manifest as the signature check read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BundleInfo {
    pub compatible: String,
    pub version: String,
}

/// What installs bundles and keeps the slots' boot states (RAUC's
/// install, `status mark-good|mark-bad`, `status`).
#[allow(async_fn_in_trait)]
pub trait Installer {
    /// Checks the bundle's signature against `keyring`; its manifest.
    async fn verify(&self, bundle: &Path, keyring: &Path) -> Result<BundleInfo, String>;
    /// Writes the bundle into the other slot and makes it primary.
    async fn install(&self, bundle: &Path) -> Result<(), String>;
    /// Marks the booted slot good (the update is kept).
    async fn mark_good(&self) -> Result<(), String>;
    /// Marks the booted slot bad (the bootloader falls back to the other).
    async fn mark_bad(&self) -> Result<(), String>;
    async fn status(&self) -> Result<SlotStatus, String>;
}

/// The real `rauc` command line.
#[derive(Debug, Clone)]
pub struct Rauc {
    pub program: PathBuf,
}

/// Longest stderr kept in a reason.
const MAX_REASON: usize = 600;

impl Rauc {
    async fn run(&self, args: &[&str], timeout: Duration) -> Result<String, String> {
        let out = tokio::time::timeout(
            timeout,
            tokio::process::Command::new(&self.program)
                .args(args)
                .stdin(std::process::Stdio::null())
                .kill_on_drop(true)
                .output(),
        )
        .await
        .map_err(|_| format!("rauc {} took longer than {timeout:?}", args.join(" ")))?
        .map_err(|e| format!("cannot run {}: {e}", self.program.display()))?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(clean(&String::from_utf8_lossy(&out.stderr)))
        }
    }
}

/// RAUC's stderr without its `rauc-Message:` chatter and colours, cut.
fn clean(stderr: &str) -> String {
    let mut lines: Vec<String> = stderr
        .lines()
        .filter(|l| !l.contains("rauc-Message:") && !l.trim().is_empty())
        .map(|l| {
            l.chars()
                .filter(|c| !c.is_control())
                .collect::<String>()
                .trim()
                .to_string()
        })
        .collect();
    if lines.is_empty() {
        lines.push("rauc failed without a message".into());
    }
    let mut s = lines.join("; ");
    if s.len() > MAX_REASON {
        let mut cut = MAX_REASON;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
    }
    s
}

#[derive(Deserialize)]
struct InfoJson {
    compatible: Option<String>,
    version: Option<String>,
}

#[derive(Deserialize)]
struct StatusJson {
    booted: Option<String>,
    boot_primary: Option<String>,
    #[serde(default)]
    slots: Vec<std::collections::BTreeMap<String, SlotJson>>,
}

#[derive(Deserialize)]
struct SlotJson {
    bootname: Option<String>,
    boot_status: Option<String>,
    #[serde(default)]
    slot_status: Option<SlotStatusJson>,
}

#[derive(Deserialize)]
struct SlotStatusJson {
    #[serde(default)]
    bundle: Option<BundleJson>,
}

#[derive(Deserialize)]
struct BundleJson {
    #[serde(default)]
    version: Option<String>,
}

/// `rauc status --detailed --output-format=json` read into a [`SlotStatus`]
/// (only slots with a bootname: the bootable ones).
pub fn parse_status(json: &str) -> Result<SlotStatus> {
    let s: StatusJson = serde_json::from_str(json).context("rauc status output")?;
    let mut slots = Vec::new();
    let mut primary = None;
    for m in s.slots {
        for (name, slot) in m {
            let Some(bootname) = slot.bootname else {
                continue;
            };
            if s.boot_primary.as_deref() == Some(name.as_str()) {
                primary = Some(bootname.clone());
            }
            slots.push(Slot {
                name,
                bootname,
                good: slot.boot_status.as_deref() == Some("good"),
                version: slot
                    .slot_status
                    .and_then(|st| st.bundle)
                    .and_then(|b| b.version),
            });
        }
    }
    let booted = s
        .booted
        .ok_or_else(|| anyhow!("rauc does not say which slot is booted"))?;
    if slots.iter().all(|x| x.bootname != booted) {
        bail!("rauc says slot {booted:?} is booted, which is not a bootable slot");
    }
    slots.sort_by(|a, b| a.bootname.cmp(&b.bootname));
    Ok(SlotStatus {
        booted,
        primary,
        slots,
    })
}

impl Installer for Rauc {
    async fn verify(&self, bundle: &Path, keyring: &Path) -> Result<BundleInfo, String> {
        let keyring = format!("--keyring={}", keyring.display());
        let path = bundle.display().to_string();
        let out = self
            .run(
                &["info", &keyring, "--output-format=json", &path],
                Duration::from_secs(120),
            )
            .await?;
        let info: InfoJson =
            serde_json::from_str(&out).map_err(|e| format!("unreadable rauc info output: {e}"))?;
        Ok(BundleInfo {
            compatible: info.compatible.unwrap_or_default(),
            version: info.version.unwrap_or_default(),
        })
    }

    async fn install(&self, bundle: &Path) -> Result<(), String> {
        let path = bundle.display().to_string();
        self.run(&["install", &path], Duration::from_secs(3600))
            .await
            .map(|_| ())
    }

    async fn mark_good(&self) -> Result<(), String> {
        self.run(&["status", "mark-good", "booted"], Duration::from_secs(60))
            .await
            .map(|_| ())
    }

    async fn mark_bad(&self) -> Result<(), String> {
        self.run(&["status", "mark-bad", "booted"], Duration::from_secs(60))
            .await
            .map(|_| ())
    }

    async fn status(&self) -> Result<SlotStatus, String> {
        let out = self
            .run(
                &["status", "--detailed", "--output-format=json"],
                Duration::from_secs(60),
            )
            .await?;
        parse_status(&out).map_err(|e| format!("{e:#}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_of_rauc_1_8() {
        // As rauc 1.8 printed it after installing 1.2.3 into slot B.
        let json = r#"{"compatible":"crossline-test","variant":"","booted":"A","boot_primary":"rootfs.1","slots":[{"rootfs.1":{"class":"rootfs","device":"/x/slotB.img","type":"raw","bootname":"B","state":"inactive","parent":null,"mountpoint":null,"boot_status":"good","slot_status":{"bundle":{"compatible":"crossline-test","version":"1.2.3"},"status":"ok"}}},{"rootfs.0":{"class":"rootfs","device":"/x/slotA.img","type":"raw","bootname":"A","state":"booted","parent":null,"mountpoint":null,"boot_status":"good","slot_status":{"bundle":{"compatible":null}}}}]}"#;
        let s = parse_status(json).unwrap();
        assert_eq!(s.booted, "A");
        assert_eq!(s.primary.as_deref(), Some("B"));
        assert_eq!(s.other().as_deref(), Some("B"));
        assert_eq!(s.slot("B").unwrap().version.as_deref(), Some("1.2.3"));
        assert_eq!(s.slot("A").unwrap().version, None);
        assert!(s.slot("A").unwrap().good);
        assert!(parse_status(r#"{"booted":"C","slots":[]}"#).is_err());
        assert!(parse_status("garbage").is_err());
    }

    #[test]
    fn stderr_is_cleaned() {
        let e = "rauc-Message: 23:49:51.650: Verifying bundle signature... \nsignature verification failed: Verify error: self-signed certificate\n";
        assert_eq!(
            clean(e),
            "signature verification failed: Verify error: self-signed certificate"
        );
    }
}
