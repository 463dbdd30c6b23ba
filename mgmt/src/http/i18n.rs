//! UI languages: message catalogs (`i18n/*.txt`, one `key = text` a line),
//! the language of a request (the user's setting, else Accept-Language),
//! and dates, durations and numbers in the user's locale and time zone.
//!
//! Every UI string comes from a catalog; English is complete and the
//! fallback, and a unit test keeps the other catalogs complete too. Text
//! placeholders are `{name}`, filled by [`Tr::f`].

use axum::http::{HeaderMap, header};
use std::collections::HashMap;
use std::sync::LazyLock;

/// A UI language.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Locale {
    En,
    Ru,
    Uk,
    Ro,
}

pub const ALL: [Locale; 4] = [Locale::En, Locale::Ru, Locale::Uk, Locale::Ro];

impl Locale {
    pub fn code(self) -> &'static str {
        match self {
            Locale::En => "en",
            Locale::Ru => "ru",
            Locale::Uk => "uk",
            Locale::Ro => "ro",
        }
    }

    /// The language's own name (for the language menu).
    pub fn native_name(self) -> &'static str {
        match self {
            Locale::En => "English",
            Locale::Ru => "Русский",
            Locale::Uk => "Українська",
            Locale::Ro => "Română",
        }
    }

    /// `ru`, `ru-RU`, `uk_UA`... (case-insensitive).
    pub fn parse(s: &str) -> Option<Self> {
        let primary = s
            .trim()
            .split(['-', '_'])
            .next()
            .unwrap_or("")
            .to_ascii_lowercase();
        match primary.as_str() {
            "en" => Some(Locale::En),
            "ru" => Some(Locale::Ru),
            "uk" => Some(Locale::Uk),
            "ro" | "mo" => Some(Locale::Ro),
            _ => None,
        }
    }

    /// The best language of `Accept-Language` (by q, then order); English
    /// when none is supported.
    pub fn from_accept_language(v: &str) -> Self {
        let mut best: Option<(f32, usize, Locale)> = None;
        for (i, item) in v.split(',').enumerate().take(32) {
            let mut it = item.split(';');
            let tag = it.next().unwrap_or("");
            let q = it
                .find_map(|p| p.trim().strip_prefix("q="))
                .and_then(|q| q.parse::<f32>().ok())
                .unwrap_or(1.0);
            if let Some(l) = Locale::parse(tag)
                && q > 0.0
                && best.is_none_or(|(bq, _, _)| q > bq)
            {
                best = Some((q, i, l));
            }
        }
        best.map_or(Locale::En, |(_, _, l)| l)
    }

    pub fn from_headers(h: &HeaderMap) -> Self {
        h.get(header::ACCEPT_LANGUAGE)
            .and_then(|v| v.to_str().ok())
            .map_or(Locale::En, Self::from_accept_language)
    }

    fn index(self) -> usize {
        match self {
            Locale::En => 0,
            Locale::Ru => 1,
            Locale::Uk => 2,
            Locale::Ro => 3,
        }
    }
}

const SOURCES: [&str; 4] = [
    include_str!("i18n/en.txt"),
    include_str!("i18n/ru.txt"),
    include_str!("i18n/uk.txt"),
    include_str!("i18n/ro.txt"),
];

type Catalog = HashMap<&'static str, &'static str>;

fn parse(src: &'static str) -> Catalog {
    src.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split_once(" = "))
        .map(|(k, v)| (k.trim(), v.trim()))
        .collect()
}

static CATALOGS: LazyLock<Vec<Catalog>> =
    LazyLock::new(|| SOURCES.iter().map(|s| parse(s)).collect());

/// Translations and formats for one request.
#[derive(Debug, Clone)]
pub struct Tr {
    pub locale: Locale,
    pub tz: jiff::tz::TimeZone,
}

impl Tr {
    pub fn new(locale: Locale, time_zone: &str) -> Self {
        Self {
            locale,
            tz: jiff::tz::TimeZone::get(time_zone).unwrap_or(jiff::tz::TimeZone::UTC),
        }
    }

    /// The text of `key` (English if this catalog lacks it, the key itself
    /// if English does too).
    pub fn t<'a>(&self, key: &'a str) -> &'a str {
        let cats = &*CATALOGS;
        cats.get(self.locale.index())
            .and_then(|c| c.get(key))
            .or_else(|| cats.first().and_then(|c| c.get(key)))
            .copied()
            .unwrap_or(key)
    }

    /// The text of `key` with `{name}` placeholders filled.
    pub fn f(&self, key: &str, args: &[(&str, &str)]) -> String {
        let mut s = self.t(key).to_string();
        for (k, v) in args {
            s = s.replace(&format!("{{{k}}}"), v);
        }
        s
    }

    /// A moment (ms since the epoch) as local date and time.
    pub fn datetime(&self, ms: i64) -> String {
        let Ok(ts) = jiff::Timestamp::from_millisecond(ms) else {
            return String::new();
        };
        let z = ts.to_zoned(self.tz.clone());
        let fmt = match self.locale {
            Locale::En => "%Y-%m-%d %H:%M",
            _ => "%d.%m.%Y %H:%M",
        };
        z.strftime(fmt).to_string()
    }

    /// Only the time of day (today's messages).
    pub fn time(&self, ms: i64) -> String {
        jiff::Timestamp::from_millisecond(ms)
            .map(|ts| ts.to_zoned(self.tz.clone()).strftime("%H:%M").to_string())
            .unwrap_or_default()
    }

    /// A duration, compactly: `45 s`, `3 min`, `2 h 5 min`, `3 d`.
    pub fn duration(&self, ms: i64) -> String {
        let s = ms.max(0) / 1000;
        let (m, h, d) = (s / 60, s / 3600, s / 86400);
        if s < 60 {
            format!("{s} {}", self.t("unit.s"))
        } else if m < 60 {
            format!("{m} {}", self.t("unit.min"))
        } else if h < 24 {
            format!("{h} {} {} {}", self.t("unit.h"), m % 60, self.t("unit.min"))
        } else {
            format!("{d} {}", self.t("unit.d"))
        }
    }

    /// A number with `decimals` places in the locale's notation
    /// (en `1,234.5`, ru/uk `1 234,5`, ro `1.234,5`).
    pub fn num(&self, v: f64, decimals: usize) -> String {
        let s = format!("{:.*}", decimals, v.abs());
        let (int, frac) = s.split_once('.').unwrap_or((&s, ""));
        let (group, point) = match self.locale {
            Locale::En => (',', '.'),
            Locale::Ru | Locale::Uk => ('\u{a0}', ','),
            Locale::Ro => ('.', ','),
        };
        let mut out = String::new();
        let digits: Vec<char> = int.chars().collect();
        for (i, c) in digits.iter().enumerate() {
            if i > 0 && (digits.len() - i).is_multiple_of(3) {
                out.push(group);
            }
            out.push(*c);
        }
        if !frac.is_empty() {
            out.push(point);
            out.push_str(frac);
        }
        if v < 0.0 && out.chars().any(|c| c != '0' && c.is_ascii_digit()) {
            out.insert(0, '-');
        }
        out
    }

    /// A share (0..1) as a percentage.
    pub fn pct(&self, v: f64) -> String {
        format!("{}\u{a0}%", self.num(v * 100.0, 1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_catalog_has_every_english_key() {
        let cats = &*CATALOGS;
        let en = &cats[0];
        assert!(en.len() > 50, "English catalog parsed ({} keys)", en.len());
        for (i, l) in ALL.iter().enumerate().skip(1) {
            let missing: Vec<_> = en.keys().filter(|k| !cats[i].contains_key(*k)).collect();
            assert!(missing.is_empty(), "{} lacks {missing:?}", l.code());
            let extra: Vec<_> = cats[i].keys().filter(|k| !en.contains_key(*k)).collect();
            assert!(extra.is_empty(), "{} has unknown keys {extra:?}", l.code());
        }
    }

    #[test]
    fn no_catalog_defines_a_key_twice() {
        for src in SOURCES {
            let mut seen = std::collections::HashSet::new();
            for line in src.lines() {
                if let Some((k, _)) = line.split_once(" = ") {
                    assert!(seen.insert(k.trim()), "key {k:?} defined twice");
                }
            }
        }
    }

    /// Where askama's block, expression or comment at the start of `s`
    /// ends (its length), if one starts there.
    fn askama_len(s: &str) -> Option<usize> {
        let end = ["{{", "{%", "{#"]
            .iter()
            .zip(["}}", "%}", "#}"])
            .find(|(open, _)| s.starts_with(**open))?
            .1;
        Some(s.find(end).expect("closed") + end.len())
    }

    /// The text a template shows by itself: what is left once askama's
    /// blocks and expressions, tags (with their attributes), `<code>`
    /// (commands and paths) and entities are taken out.
    fn template_text(src: &str) -> String {
        let mut out = String::new();
        let mut rest = src;
        while let Some(c) = rest.chars().next() {
            let skip = if let Some(n) = askama_len(rest) {
                n
            } else if rest.starts_with("<code>") {
                rest.find("</code>").expect("closed") + "</code>".len()
            } else if c == '<' {
                // A tag, whose attributes may hold askama (`{% if a > 0 %}`).
                let mut i = 1;
                while let Some(ch) = rest[i..].chars().next() {
                    match askama_len(&rest[i..]) {
                        Some(n) => i += n,
                        None if ch == '>' => break,
                        None => i += ch.len_utf8(),
                    }
                }
                i + 1
            } else if c == '&' && rest.find(';').is_some_and(|i| i < 10) {
                rest.find(';').expect("found") + 1
            } else {
                out.push(c);
                rest = &rest[c.len_utf8()..];
                continue;
            };
            rest = rest.get(skip..).unwrap_or("");
            out.push(' ');
        }
        out
    }

    #[test]
    fn templates_show_no_words_of_their_own() {
        // Names that read the same in every language.
        const SAME_EVERYWHERE: &[&str] = &[
            "SIM",
            "ICCID",
            "IMEI",
            "MAC",
            "dBm",
            "USSD",
            "OK",
            "Crossline",
            "v",
        ];
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("templates");
        let mut found = Vec::new();
        for entry in std::fs::read_dir(&dir).expect("templates") {
            let path = entry.expect("entry").path();
            let src = std::fs::read_to_string(&path).expect("template");
            for w in template_text(&src).split(|c: char| !c.is_alphanumeric()) {
                if w.chars().any(char::is_alphabetic) && !SAME_EVERYWHERE.contains(&w) {
                    found.push(format!("{}: {w}", path.display()));
                }
            }
        }
        assert!(found.is_empty(), "words outside the catalogs: {found:?}");
    }

    #[test]
    fn russian_and_ukrainian_any_agrees_with_its_noun() {
        let ru = Tr::new(Locale::Ru, "UTC");
        let uk = Tr::new(Locale::Uk, "UTC");
        assert_eq!(ru.t("filter.any_queue"), "Любая очередь");
        assert_eq!(ru.t("filter.any_tag"), "Любая метка");
        assert_eq!(ru.t("filter.any_channel"), "Любой канал");
        assert_eq!(uk.t("filter.any_queue"), "Будь-яка черга");
        assert_eq!(uk.t("filter.any_tag"), "Будь-яка мітка");
        assert_eq!(uk.t("filter.any_status"), "Будь-який статус");
    }

    #[test]
    fn accept_language_picks_the_best_supported() {
        assert_eq!(
            Locale::from_accept_language("ru-RU,ru;q=0.9,en;q=0.8"),
            Locale::Ru
        );
        assert_eq!(
            Locale::from_accept_language("de-DE, uk;q=0.5, ro;q=0.7"),
            Locale::Ro
        );
        assert_eq!(Locale::from_accept_language("de, fr"), Locale::En);
        assert_eq!(Locale::from_accept_language(""), Locale::En);
    }

    #[test]
    fn numbers_and_dates_follow_the_locale() {
        let en = Tr::new(Locale::En, "UTC");
        let ru = Tr::new(Locale::Ru, "Europe/Kyiv");
        let ro = Tr::new(Locale::Ro, "Europe/Chisinau");
        assert_eq!(en.num(1234567.891, 2), "1,234,567.89");
        assert_eq!(ru.num(1234.5, 1), "1\u{a0}234,5");
        assert_eq!(ro.num(1234.5, 1), "1.234,5");
        assert_eq!(en.num(-5.0, 0), "-5");
        // 2026-01-15 10:00 UTC is 12:00 in Kyiv (EET).
        let ms = 1_768_471_200_000;
        assert_eq!(en.datetime(ms), "2026-01-15 10:00");
        assert_eq!(ru.datetime(ms), "15.01.2026 12:00");
        assert_eq!(ru.t("nav.inbox"), "Входящие");
    }
}
