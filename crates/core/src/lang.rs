//! The language a customer's text is written in, guessed from its letters.
//!
//! * any of `і ї є ґ` → Ukrainian (`uk`);
//! * other Cyrillic → Russian (`ru`);
//! * any of `ă â î ș ş ț ţ` → Romanian (`ro`);
//! * other Latin letters → English (`en`);
//! * no letters at all → no opinion.
//!
//! The appliance picks its offline auto-reply with it; mgmt gives it to
//! routing as the conversation's `language` (entry rules on `language`).

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
}
