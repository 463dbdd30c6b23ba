//! The branch IVR's configuration, pushed by mgmt as part of
//! [`ApplianceSettings`](crate::ApplianceSettings) (docs/IVR.md).
//!
//! Menus are named; each plays a prompt (by id), waits for one DTMF key and
//! acts on it. Prompts are WAV files (8 kHz mono) on the appliance, one per
//! prompt id and language (`<prompts dir>/<language>/<prompt id>.wav`).
//! [`IvrSettings::check`] refuses what the appliance could not run: a menu
//! naming a menu that does not exist, a prompt that was not declared, a key
//! that a telephone does not have. Loops between menus are allowed (a "back"
//! key); the caller ends them by hanging up, or the retry limit does.

use crossline_core::routing::{BusinessHours, Calendar};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Most menus one IVR may have.
pub const MAX_MENUS: usize = 64;
/// Most prompts one IVR may declare.
pub const MAX_PROMPTS: usize = 256;
/// Longest voicemail, in seconds.
pub const MAX_VOICEMAIL_S: u32 = 600;
/// Longest wait for a key after a prompt, in seconds.
pub const MAX_TIMEOUT_S: u32 = 60;
/// Most re-prompts of one menu.
pub const MAX_RETRIES: u32 = 10;

/// The IVR a device runs on its incoming calls.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IvrSettings {
    /// Languages the prompts exist in (`en`, `ru`, `uk`, `ro`).
    pub languages: Vec<String>,
    /// Language of a call whose line has none of `languages`.
    pub default_language: String,
    /// Declared prompt ids (file names without `.wav`: `a-z`, `0-9`, `_`, `-`).
    pub prompts: Vec<String>,
    /// The menu a call starts in (within business hours, when they are set).
    pub entry: String,
    /// Business hours in the branch's time zone; outside them a call starts
    /// in `closed_entry`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hours: Option<BusinessHours>,
    /// The menu a call starts in outside business hours (required with `hours`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub closed_entry: Option<String>,
    pub menus: BTreeMap<String, Menu>,
    #[serde(default)]
    pub voicemail: VoicemailSettings,
    #[serde(default)]
    pub callback: CallbackSettings,
}

/// One menu: a prompt, then one key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Menu {
    pub prompt: String,
    /// Key (`0`-`9`, `*`, `#`) → what it does.
    #[serde(default)]
    pub options: BTreeMap<char, Action>,
    /// Seconds to wait for a key once the prompt has played.
    #[serde(default = "default_timeout_s")]
    pub timeout_s: u32,
    /// How many times the prompt is played again after no key or a wrong
    /// key, before `default` is taken.
    #[serde(default = "default_retries")]
    pub retries: u32,
    /// Played before the menu's prompt after a key the menu does not have.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invalid_prompt: Option<String>,
    /// Played before the menu's prompt after no key within `timeout_s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub no_input_prompt: Option<String>,
    /// Taken when the retries are exhausted (default: hang up).
    #[serde(default = "default_action")]
    pub default: Action,
}

fn default_timeout_s() -> u32 {
    5
}
fn default_retries() -> u32 {
    2
}
fn default_action() -> Action {
    Action::HangUp { prompt: None }
}

/// What a key (or a menu's default) does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Action {
    /// Go to another menu.
    Menu { menu: String },
    /// Record a voicemail (see [`VoicemailSettings`]).
    Voicemail,
    /// Record a callback request for the caller's number, confirm, hang up.
    Callback,
    /// Play `prompt` (if any) and hang up.
    HangUp {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        prompt: Option<String>,
    },
}

/// How voicemail is recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct VoicemailSettings {
    /// Played before recording starts ("leave a message after the tone").
    pub prompt: Option<String>,
    /// Played after recording ended by `#` or silence, before hanging up.
    pub thanks_prompt: Option<String>,
    /// Longest message, in seconds.
    pub max_s: u32,
    /// The recording ends after this many seconds without voice.
    pub silence_s: u32,
}

impl Default for VoicemailSettings {
    fn default() -> Self {
        Self {
            prompt: None,
            thanks_prompt: None,
            max_s: 120,
            silence_s: 5,
        }
    }
}

/// How a callback request is confirmed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CallbackSettings {
    /// Played after the request is recorded ("we will call you back").
    pub prompt: Option<String>,
    /// Played instead when the caller's number is unknown (no caller ID).
    pub no_number_prompt: Option<String>,
}

fn valid_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

fn valid_language(s: &str) -> bool {
    (2..=3).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_lowercase())
}

impl IvrSettings {
    /// Checks that the appliance can run this IVR; the error names the menu,
    /// key or prompt at fault and says what to fix.
    pub fn check(&self) -> Result<(), String> {
        if self.languages.is_empty() {
            return Err("ivr: no languages: list the languages the prompts exist in".into());
        }
        for l in &self.languages {
            if !valid_language(l) {
                return Err(format!(
                    "ivr: language {l:?} is not a language code (two or three lower-case letters, e.g. \"uk\")"
                ));
            }
        }
        if !self.languages.contains(&self.default_language) {
            return Err(format!(
                "ivr: default_language {:?} is not among the languages ({})",
                self.default_language,
                self.languages.join(", ")
            ));
        }
        if self.prompts.len() > MAX_PROMPTS {
            return Err(format!(
                "ivr: {} prompts, more than {MAX_PROMPTS}",
                self.prompts.len()
            ));
        }
        for p in &self.prompts {
            if !valid_id(p) {
                return Err(format!(
                    "ivr: prompt id {p:?} is not a file name of a-z, 0-9, '_' and '-' (at most 64)"
                ));
            }
        }
        if self.menus.is_empty() {
            return Err("ivr: no menus".into());
        }
        if self.menus.len() > MAX_MENUS {
            return Err(format!(
                "ivr: {} menus, more than {MAX_MENUS}",
                self.menus.len()
            ));
        }
        let prompt = |where_: &str, p: &str| -> Result<(), String> {
            if self.prompts.iter().any(|q| q == p) {
                Ok(())
            } else {
                Err(format!(
                    "ivr: {where_} plays prompt {p:?}, which is not declared in prompts ({})",
                    self.prompts.join(", ")
                ))
            }
        };
        let menu = |where_: &str, m: &str| -> Result<(), String> {
            if self.menus.contains_key(m) {
                Ok(())
            } else {
                Err(format!(
                    "ivr: {where_} goes to menu {m:?}, which does not exist (menus: {})",
                    self.menus.keys().cloned().collect::<Vec<_>>().join(", ")
                ))
            }
        };
        let action = |where_: &str, a: &Action| -> Result<(), String> {
            match a {
                Action::Menu { menu: m } => menu(where_, m),
                Action::HangUp { prompt: Some(p) } => prompt(where_, p),
                Action::HangUp { prompt: None } | Action::Voicemail | Action::Callback => Ok(()),
            }
        };
        menu("entry", &self.entry)?;
        match (&self.hours, &self.closed_entry) {
            (Some(h), Some(c)) => {
                Calendar::new(h).map_err(|e| format!("ivr: hours: {e}"))?;
                menu("closed_entry", c)?;
            }
            (Some(_), None) => {
                return Err(
                    "ivr: hours are set but closed_entry is not: name the menu for calls outside business hours"
                        .into(),
                );
            }
            (None, Some(_)) => {
                return Err(
                    "ivr: closed_entry is set but hours are not: set the business hours it applies outside"
                        .into(),
                );
            }
            (None, None) => {}
        }
        for (name, m) in &self.menus {
            if !valid_id(name) {
                return Err(format!(
                    "ivr: menu name {name:?} is not made of a-z, 0-9, '_' and '-' (at most 64)"
                ));
            }
            let at = format!("menu {name:?}");
            prompt(&at, &m.prompt)?;
            for p in [&m.invalid_prompt, &m.no_input_prompt]
                .into_iter()
                .flatten()
            {
                prompt(&at, p)?;
            }
            if !(1..=MAX_TIMEOUT_S).contains(&m.timeout_s) {
                return Err(format!(
                    "ivr: {at}: timeout_s {} is not between 1 and {MAX_TIMEOUT_S}",
                    m.timeout_s
                ));
            }
            if m.retries > MAX_RETRIES {
                return Err(format!(
                    "ivr: {at}: retries {} is more than {MAX_RETRIES}",
                    m.retries
                ));
            }
            for (key, a) in &m.options {
                if !matches!(key, '0'..='9' | '*' | '#') {
                    return Err(format!(
                        "ivr: {at}: key {key:?} is not on a telephone keypad (0-9, *, #)"
                    ));
                }
                action(&format!("{at} key {key:?}"), a)?;
            }
            action(&format!("{at} default"), &m.default)?;
        }
        let v = &self.voicemail;
        for p in [&v.prompt, &v.thanks_prompt].into_iter().flatten() {
            prompt("voicemail", p)?;
        }
        if !(1..=MAX_VOICEMAIL_S).contains(&v.max_s) {
            return Err(format!(
                "ivr: voicemail max_s {} is not between 1 and {MAX_VOICEMAIL_S}",
                v.max_s
            ));
        }
        if !(1..=MAX_TIMEOUT_S).contains(&v.silence_s) {
            return Err(format!(
                "ivr: voicemail silence_s {} is not between 1 and {MAX_TIMEOUT_S}",
                v.silence_s
            ));
        }
        for p in [&self.callback.prompt, &self.callback.no_number_prompt]
            .into_iter()
            .flatten()
        {
            prompt("callback", p)?;
        }
        Ok(())
    }

    /// Every (language, prompt id) pair the appliance needs a WAV file for.
    pub fn prompt_files(&self) -> impl Iterator<Item = (&str, &str)> {
        self.languages
            .iter()
            .flat_map(move |l| self.prompts.iter().map(move |p| (l.as_str(), p.as_str())))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// The demo's IVR as documented in docs/IVR.md.
    pub(crate) fn demo() -> IvrSettings {
        serde_json::from_str(include_str!("../../../docs/ivr-demo.json")).unwrap()
    }

    #[test]
    fn the_documented_demo_is_valid() {
        let d = demo();
        d.check().unwrap();
        assert_eq!(
            d.prompt_files().count(),
            d.languages.len() * d.prompts.len()
        );
    }

    #[test]
    fn a_loop_between_menus_is_allowed() {
        let mut d = demo();
        let first = d.entry.clone();
        for m in d.menus.values_mut() {
            m.options.insert(
                '*',
                Action::Menu {
                    menu: first.clone(),
                },
            );
        }
        d.check().unwrap();
    }

    #[test]
    fn a_missing_menu_is_refused_naming_it() {
        let mut d = demo();
        let entry = d.entry.clone();
        d.menus.get_mut(&entry).unwrap().options.insert(
            '9',
            Action::Menu {
                menu: "nowhere".into(),
            },
        );
        let e = d.check().unwrap_err();
        assert!(e.contains("key '9'") && e.contains("\"nowhere\""), "{e}");
    }

    #[test]
    fn an_unknown_prompt_is_refused_naming_it() {
        let mut d = demo();
        d.voicemail.thanks_prompt = Some("thank_you_very_much".into());
        let e = d.check().unwrap_err();
        assert!(
            e.contains("voicemail") && e.contains("thank_you_very_much"),
            "{e}"
        );
        let mut d = demo();
        let entry = d.entry.clone();
        d.menus.get_mut(&entry).unwrap().prompt = "nope".into();
        assert!(d.check().unwrap_err().contains("\"nope\""));
    }

    #[test]
    fn bad_keys_hours_and_limits_are_refused() {
        let mut d = demo();
        let entry = d.entry.clone();
        d.menus
            .get_mut(&entry)
            .unwrap()
            .options
            .insert('A', Action::Voicemail);
        assert!(d.check().unwrap_err().contains("keypad"));

        let mut d = demo();
        d.closed_entry = None;
        assert!(d.check().unwrap_err().contains("closed_entry"));

        let mut d = demo();
        if let Some(h) = d.hours.as_mut() {
            h.time_zone = "Europe/Atlantis".into();
        }
        assert!(d.check().unwrap_err().contains("Atlantis"));

        let mut d = demo();
        d.voicemail.max_s = 0;
        assert!(d.check().unwrap_err().contains("max_s"));

        let mut d = demo();
        d.prompts.push("../etc/passwd".into());
        assert!(d.check().unwrap_err().contains("file name"));

        let mut d = demo();
        d.default_language = "de".into();
        assert!(d.check().unwrap_err().contains("default_language"));
    }

    #[test]
    fn unknown_fields_and_actions_are_refused() {
        let j = r#"{"type":"dial","number":"+1"}"#;
        assert!(serde_json::from_str::<Action>(j).is_err());
        let j = r#"{"prompt":"a","colour":"red"}"#;
        assert!(serde_json::from_str::<Menu>(j).is_err());
    }
}
