//! Which language an offline auto-reply goes out in.
//!
//! The rule (docs/APPLIANCE.md): the language the letters of the customer's
//! text suggest ([`crossline_core::lang::detect`], the same rule mgmt's
//! routing uses for entry rules on `language`).
//!
//! The first of these that has a configured text wins: the detected
//! language, then the line's `language`, then `offline.default_language`,
//! then the first configured text.

use crossline_core::lang::detect;
use std::collections::BTreeMap;

/// Picks the reply text for a customer's `text` on a line with `line_lang`.
pub fn pick<'a>(
    texts: &'a BTreeMap<String, String>,
    text: &str,
    line_lang: Option<&str>,
    default_lang: &str,
) -> Option<(&'a str, &'a str)> {
    let candidates = [detect(text), line_lang, Some(default_lang)];
    candidates
        .into_iter()
        .flatten()
        .find_map(|l| texts.get_key_value(l))
        .or_else(|| texts.iter().next())
        .map(|(k, v)| (k.as_str(), v.as_str()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn falls_back_to_line_then_default() {
        let texts: BTreeMap<String, String> = [("uk", "Дякуємо"), ("en", "Thanks")]
            .into_iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
        assert_eq!(pick(&texts, "Привіт", None, "en"), Some(("uk", "Дякуємо")));
        // Russian has no text: the line's language.
        assert_eq!(
            pick(&texts, "Привет", Some("uk"), "en"),
            Some(("uk", "Дякуємо"))
        );
        assert_eq!(pick(&texts, "Привет", None, "en"), Some(("en", "Thanks")));
        assert_eq!(
            pick(&texts, "42", Some("uk"), "en"),
            Some(("uk", "Дякуємо"))
        );
        assert_eq!(pick(&texts, "42", Some("de"), "fr"), Some(("en", "Thanks")));
    }
}
