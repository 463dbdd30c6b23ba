//! Which language an offline auto-reply goes out in.
//!
//! The rule (docs/APPLIANCE.md): look at the letters of the customer's text.
//! * any of `і ї є ґ` → Ukrainian (`uk`);
//! * other Cyrillic → Russian (`ru`);
//! * any of `ă â î ș ş ț ţ` → Romanian (`ro`);
//! * other Latin letters → English (`en`);
//! * no letters at all → no opinion.
//!
//! The first of these that has a configured text wins: the detected
//! language, then the line's `language`, then `offline.default_language`,
//! then the first configured text.

use std::collections::BTreeMap;

/// The language the letters of `text` suggest, if any.
pub fn detect(text: &str) -> Option<&'static str> {
    let mut cyrillic = false;
    let mut latin = false;
    for c in text.chars().flat_map(char::to_lowercase) {
        match c {
            'і' | 'ї' | 'є' | 'ґ' => return Some("uk"),
            'ă' | 'â' | 'î' | 'ș' | 'ş' | 'ț' | 'ţ' => return Some("ro"),
            '\u{0400}'..='\u{04FF}' => cyrillic = true,
            c if c.is_ascii_alphabetic() => latin = true,
            _ => {}
        }
    }
    if cyrillic {
        Some("ru")
    } else if latin {
        Some("en")
    } else {
        None
    }
}

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
    fn detects_by_letters() {
        assert_eq!(detect("Добрий день! Коли працює відділення?"), Some("uk"));
        assert_eq!(detect("Здравствуйте, хочу уточнить баланс."), Some("ru"));
        assert_eq!(detect("Bună ziua, aș dori o programare."), Some("ro"));
        assert_eq!(detect("Hello, is my order ready?"), Some("en"));
        assert_eq!(detect("123 ?!"), None);
    }

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
