//! Business hours of a site in its own time zone, with holidays.
//!
//! The tz database is bundled into the binary (jiff `tzdb-bundle-always`), so
//! a minimal appliance image without `/usr/share/zoneinfo` gets the same
//! answers as a server.

use jiff::Timestamp;
use jiff::civil::{Date, Time};
use jiff::tz::TimeZone;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// Days scanned at most when measuring or adding business time (about ten
/// years): bounds the work on absurd inputs.
const MAX_DAYS: u32 = 3700;

/// One opening interval of a day. `close <= open` means it ends the next day
/// (`22:00`-`06:00`; `09:00`-`00:00` is "until midnight").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Interval {
    pub open: Time,
    pub close: Time,
}

/// Opening intervals per weekday.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Week {
    pub monday: Vec<Interval>,
    pub tuesday: Vec<Interval>,
    pub wednesday: Vec<Interval>,
    pub thursday: Vec<Interval>,
    pub friday: Vec<Interval>,
    pub saturday: Vec<Interval>,
    pub sunday: Vec<Interval>,
}

/// Business hours as configured.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BusinessHours {
    /// IANA name, e.g. `Europe/Kyiv`.
    pub time_zone: String,
    pub week: Week,
    /// Dates (in the site's time zone) on which no interval starts.
    #[serde(default)]
    pub holidays: Vec<Date>,
}

impl BusinessHours {
    /// The same intervals Monday to Friday, closed at the weekend.
    pub fn weekdays(time_zone: &str, open: Time, close: Time) -> Self {
        let day = vec![Interval { open, close }];
        Self {
            time_zone: time_zone.to_owned(),
            week: Week {
                monday: day.clone(),
                tuesday: day.clone(),
                wednesday: day.clone(),
                thursday: day.clone(),
                friday: day,
                saturday: Vec::new(),
                sunday: Vec::new(),
            },
            holidays: Vec::new(),
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum HoursError {
    #[error("unknown time zone {0:?} in business hours: use an IANA name such as \"Europe/Kyiv\"")]
    UnknownTimeZone(String),
}

/// Compiled business hours: answers "open at t?" and measures business time.
#[derive(Debug, Clone)]
pub struct Calendar {
    tz: TimeZone,
    week: [Vec<Interval>; 7],
    holidays: BTreeSet<Date>,
}

fn to_ms(ts: Timestamp) -> u64 {
    u64::try_from(ts.as_millisecond()).unwrap_or(0)
}

fn from_ms(ms: u64) -> Option<Timestamp> {
    Timestamp::from_millisecond(i64::try_from(ms).ok()?).ok()
}

impl Calendar {
    pub fn new(hours: &BusinessHours) -> Result<Self, HoursError> {
        let tz = TimeZone::get(&hours.time_zone)
            .map_err(|_| HoursError::UnknownTimeZone(hours.time_zone.clone()))?;
        let w = &hours.week;
        Ok(Self {
            tz,
            week: [
                w.monday.clone(),
                w.tuesday.clone(),
                w.wednesday.clone(),
                w.thursday.clone(),
                w.friday.clone(),
                w.saturday.clone(),
                w.sunday.clone(),
            ],
            holidays: hours.holidays.iter().copied().collect(),
        })
    }

    fn local_date(&self, ms: u64) -> Option<Date> {
        Some(self.tz.to_datetime(from_ms(ms)?).date())
    }

    /// Opening intervals (epoch ms, half-open) that start on `date`.
    fn intervals_on(&self, date: Date, out: &mut Vec<(u64, u64)>) {
        out.clear();
        if self.holidays.contains(&date) {
            return;
        }
        let wd = usize::try_from(date.weekday().to_monday_zero_offset()).unwrap_or(0);
        let Some(day) = self.week.get(wd) else { return };
        for iv in day {
            let end_date = if iv.close <= iv.open {
                match date.tomorrow() {
                    Ok(d) => d,
                    Err(_) => continue,
                }
            } else {
                date
            };
            let start = self
                .tz
                .to_ambiguous_timestamp(date.to_datetime(iv.open))
                .compatible();
            let end = self
                .tz
                .to_ambiguous_timestamp(end_date.to_datetime(iv.close))
                .compatible();
            if let (Ok(s), Ok(e)) = (start, end) {
                let (s, e) = (to_ms(s), to_ms(e));
                if e > s {
                    out.push((s, e));
                }
            }
        }
    }

    /// Is the site open at `ms`?
    pub fn is_open(&self, ms: u64) -> bool {
        let Some(d) = self.local_date(ms) else {
            return false;
        };
        let mut buf = Vec::new();
        for date in [d.yesterday().ok(), Some(d)].into_iter().flatten() {
            self.intervals_on(date, &mut buf);
            if buf.iter().any(|&(s, e)| s <= ms && ms < e) {
                return true;
            }
        }
        false
    }

    /// Business milliseconds in `[a, b)`.
    pub fn business_ms_between(&self, a: u64, b: u64) -> u64 {
        if b <= a {
            return 0;
        }
        let (Some(da), Some(db)) = (self.local_date(a), self.local_date(b)) else {
            return 0;
        };
        let mut date = da.yesterday().unwrap_or(da);
        let mut total = 0u64;
        let mut buf = Vec::new();
        for _ in 0..MAX_DAYS {
            if date > db {
                break;
            }
            self.intervals_on(date, &mut buf);
            for &(s, e) in &buf {
                let (s, e) = (s.max(a), e.min(b));
                if e > s {
                    total = total.saturating_add(e - s);
                }
            }
            match date.tomorrow() {
                Ok(d) => date = d,
                Err(_) => break,
            }
        }
        total
    }

    /// The instant at which `dur` business milliseconds have passed since
    /// `start`; `None` when the site is never open within about ten years.
    pub fn add_business_ms(&self, start: u64, dur: u64) -> Option<u64> {
        let d0 = self.local_date(start)?;
        let mut date = d0.yesterday().unwrap_or(d0);
        let mut left = dur;
        let mut buf = Vec::new();
        for _ in 0..MAX_DAYS {
            self.intervals_on(date, &mut buf);
            buf.sort_unstable();
            for &(s, e) in &buf {
                let s = s.max(start);
                if e <= s {
                    continue;
                }
                if e - s >= left {
                    return Some(s + left);
                }
                left -= e - s;
            }
            date = date.tomorrow().ok()?;
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::{date, time};

    fn ms(s: &str) -> u64 {
        to_ms(s.parse::<Timestamp>().unwrap())
    }

    fn kyiv() -> Calendar {
        let mut h = BusinessHours::weekdays("Europe/Kyiv", time(9, 0, 0, 0), time(18, 0, 0, 0));
        h.holidays.push(date(2026, 12, 25));
        Calendar::new(&h).unwrap()
    }

    #[test]
    fn open_in_local_time_not_utc() {
        let c = kyiv();
        // Monday 23 Nov 2026, Kyiv is UTC+2: 09:00 local = 07:00Z.
        assert!(!c.is_open(ms("2026-11-23T06:59:59Z")));
        assert!(c.is_open(ms("2026-11-23T07:00:00Z")));
        assert!(c.is_open(ms("2026-11-23T15:59:59Z")));
        assert!(!c.is_open(ms("2026-11-23T16:00:00Z")));
        // Saturday, and a holiday (Friday 25 Dec).
        assert!(!c.is_open(ms("2026-11-28T10:00:00Z")));
        assert!(!c.is_open(ms("2026-12-25T10:00:00Z")));
    }

    #[test]
    fn business_time_skips_nights_weekends_and_holidays() {
        let c = kyiv();
        // Friday 17:00 local to Monday 10:00 local: 1 h + 1 h.
        let a = ms("2026-11-27T15:00:00Z");
        let b = ms("2026-11-30T08:00:00Z");
        assert_eq!(c.business_ms_between(a, b), 2 * 3_600_000);
        // 2 business hours after Friday 17:00 is Monday 10:00.
        assert_eq!(c.add_business_ms(a, 2 * 3_600_000), Some(b));
        // Thursday 24 Dec 17:00 + 2 h: Friday is a holiday -> Monday 28 Dec 10:00.
        let a = ms("2026-12-24T15:00:00Z");
        assert_eq!(
            c.add_business_ms(a, 2 * 3_600_000),
            Some(ms("2026-12-28T08:00:00Z"))
        );
    }

    #[test]
    fn dst_change_is_respected() {
        // Kyiv switches to summer time on 29 March 2026: 09:00 is 07:00Z before, 06:00Z after.
        let c = kyiv();
        assert!(c.is_open(ms("2026-03-27T07:00:00Z")));
        assert!(!c.is_open(ms("2026-03-30T05:59:00Z")));
        assert!(c.is_open(ms("2026-03-30T06:00:00Z")));
    }

    proptest::proptest! {
        #![proptest_config(proptest::test_runner::Config {
            failure_persistence: Some(Box::new(
                proptest::test_runner::FileFailurePersistence::SourceParallel("proptest-regressions"),
            )),
            rng_seed: proptest::test_runner::RngSeed::Fixed(0x0000_4085),
            ..proptest::test_runner::Config::default()
        })]

        /// Business time is additive and `add_business_ms` inverts it.
        #[test]
        fn business_time_is_consistent(a in 1_767_225_600_000u64..1_830_297_600_000, d1 in 0u64..20_000_000_000, d2 in 0u64..20_000_000_000) {
            let c = kyiv();
            let (b, e) = (a + d1, a + d1 + d2);
            let ab = c.business_ms_between(a, b);
            let be = c.business_ms_between(b, e);
            proptest::prop_assert_eq!(ab + be, c.business_ms_between(a, e));
            proptest::prop_assert!(ab <= d1);
            if ab > 0 {
                let t = c.add_business_ms(a, ab).unwrap();
                proptest::prop_assert!(t <= b);
                proptest::prop_assert_eq!(c.business_ms_between(a, t), ab);
                proptest::prop_assert!(c.is_open(t - 1));
            }
        }
    }

    #[test]
    fn overnight_interval_and_unknown_zone() {
        let mut h = BusinessHours::weekdays("UTC", time(22, 0, 0, 0), time(6, 0, 0, 0));
        h.week.monday.clear();
        let c = Calendar::new(&h).unwrap();
        // Tuesday 22:00 to Wednesday 06:00 UTC.
        assert!(c.is_open(ms("2026-11-25T05:00:00Z")));
        assert!(!c.is_open(ms("2026-11-24T05:00:00Z")));
        h.time_zone = "Mars/Olympus".into();
        assert_eq!(
            Calendar::new(&h).unwrap_err(),
            HoursError::UnknownTimeZone("Mars/Olympus".into())
        );
        let never = Calendar::new(&BusinessHours {
            time_zone: "UTC".into(),
            week: Week::default(),
            holidays: vec![],
        })
        .unwrap();
        assert_eq!(never.add_business_ms(0, 1), None);
    }
}
