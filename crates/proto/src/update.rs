//! Firmware updates (docs/OTA.md): the `install_update` command's checks,
//! the appliance's [`UpdateStatus`] on its `update` topic, and the version
//! order both sides use to tell an upgrade from a downgrade.

use crate::{ProtoError, VERSION, Wire};
use crossline_core::EventId;
use serde::{Deserialize, Serialize};
use std::cmp::Ordering;

fn version() -> u32 {
    VERSION
}

/// Longest bundle path (`install_update.bundle`), in bytes.
pub const MAX_BUNDLE_PATH: usize = 512;
/// Largest bundle an appliance is asked to download (8 GiB).
pub const MAX_BUNDLE_BYTES: u64 = 8 << 30;
/// Longest firmware version string, in bytes.
pub const MAX_UPDATE_VERSION: usize = 64;
/// Longest reason in an [`UpdateStatus`], in bytes.
pub const MAX_UPDATE_REASON: usize = 1024;
/// Longest slot name (RAUC bootname) in an [`UpdateStatus`], in bytes.
pub const MAX_SLOT_NAME: usize = 32;

/// Checks an `install_update` command's fields (mgmt before it sends one,
/// the appliance when it decodes one): the bundle is an absolute URL path
/// on mgmt's HTTPS server (no scheme, host, query, `..`), the sha256 is 64
/// lowercase hex digits, the size is 1 byte to [`MAX_BUNDLE_BYTES`], the
/// version is a plain version string.
pub fn check_install_update(
    bundle: &str,
    sha256: &str,
    bytes: u64,
    version: &str,
) -> Result<(), String> {
    if bundle.len() > MAX_BUNDLE_PATH
        || !bundle.starts_with('/')
        || bundle.starts_with("//")
        || bundle.split('/').any(|seg| seg == "..")
        || !bundle
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/._-~%+".contains(&b))
    {
        return Err(format!(
            "bundle must be an absolute path on mgmt's HTTPS server (at most {MAX_BUNDLE_PATH} bytes of letters, digits and /._-~%+, no \"..\")"
        ));
    }
    if sha256.len() != 64
        || !sha256
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    {
        return Err("sha256 must be 64 lowercase hex digits".into());
    }
    if bytes == 0 || bytes > MAX_BUNDLE_BYTES {
        return Err(format!("bytes must be 1 to {MAX_BUNDLE_BYTES}"));
    }
    check_version(version)
}

/// A firmware version: 1 to [`MAX_UPDATE_VERSION`] bytes of letters, digits
/// and `.+-_~`.
pub fn check_version(version: &str) -> Result<(), String> {
    if version.is_empty()
        || version.len() > MAX_UPDATE_VERSION
        || !version
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".+-_~".contains(&b))
    {
        return Err(format!(
            "version must be 1 to {MAX_UPDATE_VERSION} bytes of letters, digits and .+-_~"
        ));
    }
    Ok(())
}

/// Orders firmware versions the way semantic versions sort: the release
/// part (before the first `-` or `+`) compared field by field on `.`
/// (numbers as numbers, text as text, a number before text), a missing
/// field as 0; then a pre-release (`1.2.0-rc1`) before its release; the
/// build part (`+...`) is ignored.
pub fn compare_versions(a: &str, b: &str) -> Ordering {
    fn split(v: &str) -> (&str, Option<&str>) {
        let v = v.split('+').next().unwrap_or(v);
        match v.split_once('-') {
            Some((r, p)) => (r, Some(p)),
            None => (v, None),
        }
    }
    fn field(a: &str, b: &str) -> Ordering {
        match (a.parse::<u64>(), b.parse::<u64>()) {
            (Ok(x), Ok(y)) => x.cmp(&y),
            (Ok(_), Err(_)) => Ordering::Less,
            (Err(_), Ok(_)) => Ordering::Greater,
            (Err(_), Err(_)) => a.cmp(b),
        }
    }
    fn dotted(a: &str, b: &str) -> Ordering {
        let (fa, fb): (Vec<&str>, Vec<&str>) = (a.split('.').collect(), b.split('.').collect());
        for i in 0..fa.len().max(fb.len()) {
            let x = fa.get(i).copied().unwrap_or("0");
            let y = fb.get(i).copied().unwrap_or("0");
            match field(x, y) {
                Ordering::Equal => {}
                o => return o,
            }
        }
        Ordering::Equal
    }
    let ((ra, pa), (rb, pb)) = (split(a), split(b));
    match dotted(ra, rb) {
        Ordering::Equal => match (pa, pb) {
            (None, None) => Ordering::Equal,
            (None, Some(_)) => Ordering::Greater,
            (Some(_), None) => Ordering::Less,
            (Some(x), Some(y)) => dotted(x, y),
        },
        o => o,
    }
}

/// Where an appliance's update stands (docs/OTA.md has the state table).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UpdateState {
    /// No update under way (the last one, if any, ended).
    Idle,
    /// Fetching the bundle (`downloaded` of `bytes`).
    Downloading,
    /// The bundle is on disk, its sha256 and signature checked.
    Verified,
    /// `rauc install` writing the other slot.
    Installing,
    /// Written and made primary; the appliance reboots into it.
    Installed,
    /// Running the new slot, not yet marked good: the health check runs.
    Booted,
    /// The health check failed: the new slot is marked bad and the
    /// appliance reboots into the old one.
    RollingBack,
    /// The new slot is marked good: done.
    Committed,
    /// Back on the old slot (`reason` says why).
    RolledBack,
    /// Refused or failed before anything was installed (`reason`).
    Failed,
}

impl UpdateState {
    /// Whether the update has ended (the command's result is final).
    pub fn is_final(self) -> bool {
        matches!(
            self,
            UpdateState::Idle
                | UpdateState::Committed
                | UpdateState::RolledBack
                | UpdateState::Failed
        )
    }

    pub fn as_str(self) -> &'static str {
        match self {
            UpdateState::Idle => "idle",
            UpdateState::Downloading => "downloading",
            UpdateState::Verified => "verified",
            UpdateState::Installing => "installing",
            UpdateState::Installed => "installed",
            UpdateState::Booted => "booted",
            UpdateState::RollingBack => "rolling_back",
            UpdateState::Committed => "committed",
            UpdateState::RolledBack => "rolled_back",
            UpdateState::Failed => "failed",
        }
    }
}

/// appliance → mgmt on `crossline/v1/d/{id}/update` (QoS 1): the update
/// agent's state, published on every change, after every connect, and
/// while downloading (at most every few seconds). The final outcome of an
/// `install_update` command is also its [`crate::CommandResult`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateStatus {
    #[serde(default = "version")]
    pub v: u32,
    /// The firmware version running now.
    pub running: String,
    /// The slot booted now (RAUC bootname, e.g. `A`), when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub booted_slot: Option<String>,
    pub state: UpdateState,
    /// The `install_update` command this is about (none when idle from the
    /// start).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<EventId>,
    /// The version being (or last) installed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// Bytes of the bundle on disk, while downloading.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub downloaded: Option<u64>,
    /// The bundle's size.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes: Option<u64>,
    /// Why it failed or rolled back, for a person.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl Wire for UpdateStatus {
    const NAME: &'static str = "update status";
    fn validate(&self) -> Result<(), ProtoError> {
        let invalid = |detail: String| ProtoError::Invalid {
            what: "update status",
            detail,
        };
        check_version(&self.running).map_err(|e| invalid(format!("running: {e}")))?;
        if let Some(t) = &self.target {
            check_version(t).map_err(|e| invalid(format!("target: {e}")))?;
        }
        if let Some(s) = &self.booted_slot
            && (s.is_empty()
                || s.len() > MAX_SLOT_NAME
                || !s
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b)))
        {
            return Err(invalid(format!(
                "booted_slot must be 1 to {MAX_SLOT_NAME} letters, digits or ._-"
            )));
        }
        if let Some(r) = &self.reason
            && (r.len() > MAX_UPDATE_REASON || r.chars().any(|c| c.is_control() && c != '\n'))
        {
            return Err(invalid(format!(
                "reason longer than {MAX_UPDATE_REASON} bytes or holds control characters"
            )));
        }
        if let (Some(d), Some(b)) = (self.downloaded, self.bytes)
            && (d > b || b > MAX_BUNDLE_BYTES)
        {
            return Err(invalid(format!("downloaded {d} of {b} bytes")));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{decode, encode};

    const SHA: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

    #[test]
    fn install_update_fields_are_checked() {
        check_install_update("/fw/crossline-1.2.0.raucb", SHA, 1000, "1.2.0").unwrap();
        for (bundle, sha, bytes, version) in [
            ("fw/x.raucb", SHA, 1, "1"),
            ("https://evil/x.raucb", SHA, 1, "1"),
            ("//evil/x.raucb", SHA, 1, "1"),
            ("/fw/../../etc/shadow", SHA, 1, "1"),
            ("/fw/x.raucb?a=b", SHA, 1, "1"),
            ("/fw/x y", SHA, 1, "1"),
            ("/fw/x", &SHA[1..], 1, "1"),
            ("/fw/x", &SHA.to_uppercase(), 1, "1"),
            ("/fw/x", SHA, 0, "1"),
            ("/fw/x", SHA, MAX_BUNDLE_BYTES + 1, "1"),
            ("/fw/x", SHA, 1, ""),
            ("/fw/x", SHA, 1, "1.0 beta"),
        ] {
            assert!(
                check_install_update(bundle, sha, bytes, version).is_err(),
                "{bundle} {sha} {bytes} {version}"
            );
        }
        let long = format!("/{}", "a".repeat(MAX_BUNDLE_PATH));
        assert!(check_install_update(&long, SHA, 1, "1").is_err());
    }

    #[test]
    fn versions_sort_like_semver() {
        use Ordering::*;
        for (a, b, o) in [
            ("1.2.0", "1.2.0", Equal),
            ("1.2", "1.2.0", Equal),
            ("1.10.0", "1.9.9", Greater),
            ("1.2.0-rc1", "1.2.0", Less),
            ("1.2.0-rc2", "1.2.0-rc10", Greater),
            ("1.2.0-2", "1.2.0-10", Less),
            ("2.0.0+build5", "2.0.0+build4", Equal),
            ("0.9", "1.0", Less),
        ] {
            assert_eq!(compare_versions(a, b), o, "{a} vs {b}");
            assert_eq!(compare_versions(b, a), o.reverse(), "{b} vs {a}");
        }
    }

    #[test]
    fn status_roundtrip_and_limits() {
        let s = UpdateStatus {
            v: VERSION,
            running: "1.0.0".into(),
            booted_slot: Some("A".into()),
            state: UpdateState::Downloading,
            command: Some(EventId::new()),
            target: Some("1.1.0".into()),
            downloaded: Some(10),
            bytes: Some(100),
            reason: None,
        };
        assert_eq!(decode::<UpdateStatus>(&encode(&s)).unwrap(), s);
        let mut bad = s.clone();
        bad.downloaded = Some(101);
        assert!(decode::<UpdateStatus>(&encode(&bad)).is_err());
        let mut bad = s.clone();
        bad.reason = Some("x".repeat(MAX_UPDATE_REASON + 1));
        assert!(decode::<UpdateStatus>(&encode(&bad)).is_err());
        let mut bad = s.clone();
        bad.booted_slot = Some("A\u{1b}".into());
        assert!(decode::<UpdateStatus>(&encode(&bad)).is_err());
        let mut bad = s;
        bad.running = String::new();
        assert!(decode::<UpdateStatus>(&encode(&bad)).is_err());
        assert!(
            decode::<UpdateStatus>(br#"{"v":1,"running":"1","state":"exploded"}"#).is_err(),
            "an unknown state is refused"
        );
    }
}
