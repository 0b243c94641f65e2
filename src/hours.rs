//! Business hours: when the shop answers, per weekday, with holidays, and the away message
//! the bot sends outside them.
//!
//! What it owns: the shape of the shop's hours as stored (one JSON value in the `settings`
//! table under [`SETTING_KEY`]) and as the API takes it, their validation (one rule, one
//! function: [`Hours::checked`]), and the pure decisions [`is_open`] and [`opened_between`],
//! which take a [`LocalTime`] so they are tested without a clock or a time zone.
//!
//! Times are the box's local time (the shop's clock): [`local_time`] asks the C library
//! (`localtime_r`, which honours `TZ` and `/etc/localtime`); callers pass it in, so tests
//! decide what "now" is.
//!
//! Invariants of a checked [`Hours`]: every interval has `start < end` within one day
//! (`00:00`..`24:00`), a day's intervals are sorted and do not overlap, at most
//! [`MAX_INTERVALS`] per day, at most [`MAX_HOLIDAYS`] holidays (sorted, distinct, real dates),
//! and an enabled schedule has an away message of 1 to `max_text_chars` characters. Disabled
//! hours (the default) mean "always open": the box behaves as it did without them.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

/// The `settings` row the hours are kept in, as JSON.
pub const SETTING_KEY: &str = "business_hours";
/// Intervals a weekday may have (a morning and an afternoon, an evening: a few).
pub const MAX_INTERVALS: usize = 4;
/// Holidays kept at most: a year's worth of days.
pub const MAX_HOLIDAYS: usize = 366;

const DAY_NAMES: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

/// A calendar date.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Date {
    pub year: i32,
    pub month: u8,
    pub day: u8,
}

impl Date {
    /// `YYYY-MM-DD`, a date that exists.
    pub fn parse(s: &str) -> Option<Date> {
        let b = s.as_bytes();
        if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
            return None;
        }
        let num = |r: std::ops::Range<usize>| -> Option<u32> {
            let part = &s[r];
            part.bytes()
                .all(|c| c.is_ascii_digit())
                .then(|| part.parse().ok())?
        };
        let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
        let date = Date {
            year: i32::try_from(year).ok()?,
            month: u8::try_from(month).ok()?,
            day: u8::try_from(day).ok()?,
        };
        (year >= 1970
            && (1..=12).contains(&month)
            && day >= 1
            && day <= u32::from(days_in_month(date)))
        .then_some(date)
    }

    /// Days since 1970-01-01 (Howard Hinnant's days_from_civil).
    pub fn days(self) -> i64 {
        let y = i64::from(self.year) - i64::from(self.month <= 2);
        let era = y.div_euclid(400);
        let yoe = y - era * 400;
        let m = i64::from(self.month);
        let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + i64::from(self.day) - 1;
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        era * 146_097 + doe - 719_468
    }

    /// The date `days` days after 1970-01-01 (civil_from_days).
    pub fn from_days(days: i64) -> Date {
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = (doy - (153 * mp + 2) / 5 + 1) as u8;
        let month = if mp < 10 { mp + 3 } else { mp - 9 } as u8;
        let year = (yoe + era * 400 + i64::from(month <= 2)) as i32;
        Date { year, month, day }
    }

    /// 0 for Monday .. 6 for Sunday.
    pub fn weekday(self) -> usize {
        // 1970-01-01 was a Thursday.
        (self.days() + 3).rem_euclid(7) as usize
    }
}

impl std::fmt::Display for Date {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:04}-{:02}-{:02}", self.year, self.month, self.day)
    }
}

fn days_in_month(d: Date) -> u8 {
    match d.month {
        2 if d.year % 4 == 0 && (d.year % 100 != 0 || d.year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// A moment on the shop's clock: the date and the minute of the day.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct LocalTime {
    pub date: Date,
    /// 0 ..= 1439.
    pub minute: u16,
}

impl LocalTime {
    /// Minutes since 1970-01-01 00:00 on the same clock, for ordering and spans.
    fn minutes(self) -> i64 {
        self.date.days() * 1440 + i64::from(self.minute)
    }
}

/// The box's local time at `wall_ms` (ms since the epoch), as the C library has it: `TZ` if
/// set, else `/etc/localtime`.
pub fn local_time(wall_ms: i64) -> LocalTime {
    let secs = wall_ms.div_euclid(1000) as libc::time_t;
    // SAFETY: localtime_r writes only into `tm`, which we own; all-zero is a valid `tm`.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    let ok = unsafe { !libc::localtime_r(&secs, &mut tm).is_null() };
    if !ok {
        return utc_time(wall_ms);
    }
    LocalTime {
        date: Date {
            year: tm.tm_year + 1900,
            month: (tm.tm_mon + 1) as u8,
            day: tm.tm_mday as u8,
        },
        minute: (tm.tm_hour * 60 + tm.tm_min) as u16,
    }
}

/// The UTC time at `wall_ms`: pure, for tests and when the C library cannot say.
pub fn utc_time(wall_ms: i64) -> LocalTime {
    let minutes = wall_ms.div_euclid(60_000);
    LocalTime {
        date: Date::from_days(minutes.div_euclid(1440)),
        minute: minutes.rem_euclid(1440) as u16,
    }
}

/// One opening interval of a day, in minutes since midnight: `[start, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Interval {
    pub start: u16,
    pub end: u16,
}

/// The shop's hours, checked (see the module's invariants).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Hours {
    pub enabled: bool,
    /// Monday first.
    pub week: [Vec<Interval>; 7],
    pub holidays: BTreeSet<Date>,
    pub away_message: String,
}

/// Why hours were refused; `code()` is the API's error code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HoursError {
    #[error("{0:?} is not a time of day as HH:MM (00:00 to 24:00)")]
    BadTime(String),
    #[error("{day}: an interval must start before it ends and not overlap another")]
    BadInterval { day: &'static str },
    #[error("{day}: at most {MAX_INTERVALS} intervals a day")]
    TooManyIntervals { day: &'static str },
    #[error("{0:?} is not a date as YYYY-MM-DD")]
    BadHoliday(String),
    #[error("at most {MAX_HOLIDAYS} holidays")]
    TooManyHolidays,
    #[error("the away message must be 1 to {max} characters while hours are enabled")]
    BadAwayMessage { max: usize },
}

impl HoursError {
    pub fn code(&self) -> &'static str {
        match self {
            HoursError::BadTime(_) => "bad_hours_time",
            HoursError::BadInterval { .. } => "bad_hours_interval",
            HoursError::TooManyIntervals { .. } => "too_many_intervals",
            HoursError::BadHoliday(_) => "bad_holiday",
            HoursError::TooManyHolidays => "too_many_holidays",
            HoursError::BadAwayMessage { .. } => "bad_away_message",
        }
    }
}

/// The hours as JSON (the API's body and the stored setting).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HoursJson {
    #[serde(default)]
    pub enabled: bool,
    /// `{"mon": [{"start": "09:00", "end": "18:00"}], ...}`; a day left out is closed.
    #[serde(default)]
    pub weekly: Week,
    #[serde(default)]
    pub holidays: Vec<String>,
    #[serde(default)]
    pub away_message: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Week {
    #[serde(default)]
    pub mon: Vec<IntervalJson>,
    #[serde(default)]
    pub tue: Vec<IntervalJson>,
    #[serde(default)]
    pub wed: Vec<IntervalJson>,
    #[serde(default)]
    pub thu: Vec<IntervalJson>,
    #[serde(default)]
    pub fri: Vec<IntervalJson>,
    #[serde(default)]
    pub sat: Vec<IntervalJson>,
    #[serde(default)]
    pub sun: Vec<IntervalJson>,
}

impl Week {
    fn days(&self) -> [&Vec<IntervalJson>; 7] {
        [
            &self.mon, &self.tue, &self.wed, &self.thu, &self.fri, &self.sat, &self.sun,
        ]
    }

    fn days_mut(&mut self) -> [&mut Vec<IntervalJson>; 7] {
        [
            &mut self.mon,
            &mut self.tue,
            &mut self.wed,
            &mut self.thu,
            &mut self.fri,
            &mut self.sat,
            &mut self.sun,
        ]
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IntervalJson {
    pub start: String,
    pub end: String,
}

/// `HH:MM` as minutes since midnight; `24:00` is the end of the day.
fn parse_hhmm(s: &str) -> Option<u16> {
    let (h, m) = s.split_once(':')?;
    if h.len() != 2 || m.len() != 2 || !(h.bytes().chain(m.bytes())).all(|c| c.is_ascii_digit()) {
        return None;
    }
    let (h, m): (u16, u16) = (h.parse().ok()?, m.parse().ok()?);
    (m < 60 && (h < 24 || (h == 24 && m == 0))).then_some(h * 60 + m)
}

fn hhmm(minutes: u16) -> String {
    format!("{:02}:{:02}", minutes / 60, minutes % 60)
}

impl Hours {
    /// The hours `json` describes, checked against the module's invariants (the away
    /// message against `max_text_chars`). Holidays are sorted and deduplicated, a day's
    /// intervals sorted, texts trimmed.
    ///
    /// # Errors
    /// The first problem found, as a [`HoursError`].
    pub fn checked(json: &HoursJson, max_text_chars: usize) -> Result<Hours, HoursError> {
        let mut week: [Vec<Interval>; 7] = Default::default();
        for (i, day) in json.weekly.days().into_iter().enumerate() {
            let name = DAY_NAMES[i];
            if day.len() > MAX_INTERVALS {
                return Err(HoursError::TooManyIntervals { day: name });
            }
            let mut intervals = Vec::with_capacity(day.len());
            for iv in day {
                let time = |s: &str| parse_hhmm(s.trim()).ok_or(HoursError::BadTime(s.into()));
                let (start, end) = (time(&iv.start)?, time(&iv.end)?);
                if start >= end {
                    return Err(HoursError::BadInterval { day: name });
                }
                intervals.push(Interval { start, end });
            }
            intervals.sort_by_key(|iv| iv.start);
            if intervals.windows(2).any(|w| w[1].start < w[0].end) {
                return Err(HoursError::BadInterval { day: name });
            }
            week[i] = intervals;
        }
        let mut holidays = BTreeSet::new();
        for h in &json.holidays {
            holidays.insert(Date::parse(h.trim()).ok_or(HoursError::BadHoliday(h.clone()))?);
        }
        if holidays.len() > MAX_HOLIDAYS {
            return Err(HoursError::TooManyHolidays);
        }
        let away_message = json.away_message.trim().to_string();
        let chars = away_message.chars().count();
        if chars > max_text_chars || (json.enabled && chars == 0) {
            return Err(HoursError::BadAwayMessage {
                max: max_text_chars,
            });
        }
        Ok(Hours {
            enabled: json.enabled,
            week,
            holidays,
            away_message,
        })
    }

    /// The hours as the API shows them and the store keeps them.
    pub fn to_json(&self) -> HoursJson {
        let mut weekly = Week::default();
        for (i, day) in weekly.days_mut().into_iter().enumerate() {
            *day = self.week[i]
                .iter()
                .map(|iv| IntervalJson {
                    start: hhmm(iv.start),
                    end: hhmm(iv.end),
                })
                .collect();
        }
        HoursJson {
            enabled: self.enabled,
            weekly,
            holidays: self.holidays.iter().map(Date::to_string).collect(),
            away_message: self.away_message.clone(),
        }
    }

    /// The hours kept under [`SETTING_KEY`]; none kept (or, which a checked write never
    /// leaves, a value that does not read back) is the default: disabled, always open.
    pub fn from_setting(value: Option<&str>) -> Hours {
        let Some(value) = value else {
            return Hours::default();
        };
        serde_json::from_str::<HoursJson>(value)
            .ok()
            .and_then(|json| Hours::checked(&json, usize::MAX).ok())
            .unwrap_or_else(|| {
                tracing::warn!("the stored business hours do not read back; treated as disabled");
                Hours::default()
            })
    }

    fn open_on(&self, date: Date) -> &[Interval] {
        if self.holidays.contains(&date) {
            &[]
        } else {
            &self.week[date.weekday()]
        }
    }
}

/// Whether the shop is open at `at`: always while the hours are disabled; never on a
/// holiday; otherwise when `at` falls in one of its weekday's intervals (start included, end
/// excluded).
pub fn is_open(hours: &Hours, at: LocalTime) -> bool {
    !hours.enabled
        || hours
            .open_on(at.date)
            .iter()
            .any(|iv| iv.start <= at.minute && at.minute < iv.end)
}

/// Whether the shop was open at some minute after `from` up to and including `to` (both on
/// the shop's clock): a closed period between them ended, so the away message is due again.
pub fn opened_between(hours: &Hours, from: LocalTime, to: LocalTime) -> bool {
    if !hours.enabled {
        return true;
    }
    let (lo, hi) = (from.minutes() + 1, to.minutes());
    if lo > hi {
        return false;
    }
    let (first, last) = (from.date.days(), to.date.days());
    // Holidays cover at most MAX_HOLIDAYS days: past that many days (and a week), any weekday
    // interval has come round on a day that is not a holiday.
    if last - first > (MAX_HOLIDAYS + 7) as i64 {
        return hours.week.iter().any(|d| !d.is_empty());
    }
    (first..=last).any(|day| {
        let base = day * 1440;
        hours
            .open_on(Date::from_days(day))
            .iter()
            .any(|iv| base + i64::from(iv.start) <= hi && lo < base + i64::from(iv.end))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn iv(start: &str, end: &str) -> IntervalJson {
        IntervalJson {
            start: start.into(),
            end: end.into(),
        }
    }

    /// Mon–Fri 09:00–12:00 and 13:00–18:00, Sat 10:00–14:00, Sunday closed; 2026-12-25 off.
    fn shop() -> Hours {
        let weekday = || vec![iv("13:00", "18:00"), iv("09:00", "12:00")];
        let json = HoursJson {
            enabled: true,
            weekly: Week {
                mon: weekday(),
                tue: weekday(),
                wed: weekday(),
                thu: weekday(),
                fri: weekday(),
                sat: vec![iv("10:00", "14:00")],
                sun: vec![],
            },
            holidays: vec!["2026-12-25".into(), "2026-12-25".into()],
            away_message: "  We are closed; leave a message.  ".into(),
        };
        Hours::checked(&json, 100).unwrap()
    }

    fn at(date: &str, time: &str) -> LocalTime {
        LocalTime {
            date: Date::parse(date).unwrap(),
            minute: parse_hhmm(time).unwrap(),
        }
    }

    #[test]
    fn dates_round_trip_and_know_their_weekday() {
        for s in [
            "1970-01-01",
            "2000-02-29",
            "2026-12-06",
            "2026-12-31",
            "2100-03-01",
        ] {
            let d = Date::parse(s).unwrap();
            assert_eq!(d.to_string(), s);
            assert_eq!(Date::from_days(d.days()), d);
        }
        assert_eq!(
            Date::parse("1970-01-01").unwrap().weekday(),
            3,
            "a Thursday"
        );
        assert_eq!(Date::parse("2026-12-07").unwrap().weekday(), 0, "a Monday");
        assert_eq!(Date::parse("2026-12-06").unwrap().weekday(), 6, "a Sunday");
        for bad in [
            "2026-02-29",
            "2026-13-01",
            "2026-1-01",
            "26-01-01",
            "2026-01-0x",
            "",
            "2026-04-31",
        ] {
            assert_eq!(Date::parse(bad), None, "{bad}");
        }
        assert_eq!(utc_time(0), at("1970-01-01", "00:00"));
        assert_eq!(utc_time(1_800_000_000_000), at("2027-01-15", "08:00"));
    }

    #[test]
    fn open_inside_intervals_start_included_end_excluded() {
        let h = shop();
        // 2026-12-07 is a Monday.
        assert!(!is_open(&h, at("2026-12-07", "08:59")));
        assert!(is_open(&h, at("2026-12-07", "09:00")));
        assert!(is_open(&h, at("2026-12-07", "11:59")));
        assert!(!is_open(&h, at("2026-12-07", "12:00")), "lunch");
        assert!(!is_open(&h, at("2026-12-07", "12:59")));
        assert!(is_open(&h, at("2026-12-07", "13:00")));
        assert!(is_open(&h, at("2026-12-07", "17:59")));
        assert!(!is_open(&h, at("2026-12-07", "18:00")));
    }

    #[test]
    fn each_weekday_has_its_own_hours() {
        let h = shop();
        assert!(is_open(&h, at("2026-12-12", "13:30")), "Saturday afternoon");
        assert!(
            !is_open(&h, at("2026-12-12", "15:00")),
            "Saturday closes at two"
        );
        assert!(!is_open(&h, at("2026-12-13", "10:00")), "Sunday is closed");
        assert!(is_open(&h, at("2026-12-11", "15:00")), "Friday");
    }

    #[test]
    fn holidays_are_closed_all_day_and_only_that_day() {
        let h = shop();
        assert_eq!(h.holidays.len(), 1, "deduplicated");
        // 2026-12-25 is a Friday.
        assert!(!is_open(&h, at("2026-12-25", "10:00")));
        assert!(is_open(&h, at("2026-12-24", "10:00")));
        assert!(is_open(&h, at("2026-12-28", "10:00")));
    }

    #[test]
    fn disabled_hours_are_always_open() {
        let mut h = shop();
        h.enabled = false;
        assert!(is_open(&h, at("2026-12-13", "03:00")));
        assert!(is_open(&Hours::default(), at("2026-12-25", "03:00")));
    }

    #[test]
    fn an_interval_may_run_to_midnight() {
        let json = HoursJson {
            enabled: true,
            weekly: Week {
                sun: vec![iv("20:00", "24:00")],
                ..Week::default()
            },
            away_message: "closed".into(),
            ..HoursJson::default()
        };
        let h = Hours::checked(&json, 100).unwrap();
        assert!(is_open(&h, at("2026-12-13", "23:59")));
        assert!(!is_open(&h, at("2026-12-14", "00:00")), "Monday is closed");
        assert_eq!(h.to_json().weekly.sun[0].end, "24:00");
    }

    #[test]
    fn opened_between_sees_an_open_minute_after_from_up_to_to() {
        let h = shop();
        // Monday evening to Monday night: still the same closed period.
        assert!(!opened_between(
            &h,
            at("2026-12-07", "18:00"),
            at("2026-12-07", "23:00")
        ));
        // Across the night into Tuesday before nine: still closed.
        assert!(!opened_between(
            &h,
            at("2026-12-07", "18:00"),
            at("2026-12-08", "08:59")
        ));
        // Tuesday at nine the shop opened.
        assert!(opened_between(
            &h,
            at("2026-12-07", "18:00"),
            at("2026-12-08", "09:00")
        ));
        // Lunch to evening: opened at one in between.
        assert!(opened_between(
            &h,
            at("2026-12-07", "12:30"),
            at("2026-12-07", "19:00")
        ));
        // Saturday after two to Monday morning early: Sunday is closed.
        assert!(!opened_between(
            &h,
            at("2026-12-12", "14:00"),
            at("2026-12-14", "08:00")
        ));
        // Christmas Eve evening to the Saturday morning after: the holiday stays closed.
        assert!(!opened_between(
            &h,
            at("2026-12-24", "18:00"),
            at("2026-12-26", "09:59")
        ));
        assert!(opened_between(
            &h,
            at("2026-12-24", "18:00"),
            at("2026-12-26", "10:00")
        ));
        // Nothing after `to`, and a backwards span is empty.
        assert!(!opened_between(
            &h,
            at("2026-12-07", "11:00"),
            at("2026-12-07", "10:00")
        ));
        // Years apart: opened.
        assert!(opened_between(
            &h,
            at("2026-12-07", "18:00"),
            at("2029-12-07", "08:00")
        ));
    }

    #[test]
    fn bad_hours_are_refused_with_a_code() {
        let with = |f: &dyn Fn(&mut HoursJson)| {
            let mut json = shop().to_json();
            f(&mut json);
            Hours::checked(&json, 100).map(|_| ()).map_err(|e| e.code())
        };
        assert_eq!(with(&|_| ()), Ok(()));
        assert_eq!(
            with(&|j| j.weekly.mon = vec![iv("9:00", "18:00")]),
            Err("bad_hours_time")
        );
        assert_eq!(
            with(&|j| j.weekly.mon = vec![iv("09:60", "18:00")]),
            Err("bad_hours_time")
        );
        assert_eq!(
            with(&|j| j.weekly.mon = vec![iv("09:00", "24:01")]),
            Err("bad_hours_time")
        );
        assert_eq!(
            with(&|j| j.weekly.tue = vec![iv("18:00", "09:00")]),
            Err("bad_hours_interval")
        );
        assert_eq!(
            with(&|j| j.weekly.tue = vec![iv("09:00", "09:00")]),
            Err("bad_hours_interval")
        );
        assert_eq!(
            with(&|j| j.weekly.wed = vec![iv("09:00", "13:00"), iv("12:00", "18:00")]),
            Err("bad_hours_interval")
        );
        assert_eq!(
            with(&|j| j.weekly.thu = vec![iv("01:00", "02:00"); 5]),
            Err("too_many_intervals")
        );
        assert_eq!(
            with(&|j| j.holidays = vec!["2026-02-30".into()]),
            Err("bad_holiday")
        );
        assert_eq!(
            with(&|j| j.holidays = (0..367)
                .map(|d| Date::from_days(20_000 + d).to_string())
                .collect()),
            Err("too_many_holidays")
        );
        assert_eq!(
            with(&|j| j.away_message = " ".into()),
            Err("bad_away_message")
        );
        assert_eq!(
            with(&|j| j.away_message = "x".repeat(101)),
            Err("bad_away_message")
        );
        // Disabled hours need no away message.
        assert_eq!(
            with(&|j| {
                j.enabled = false;
                j.away_message.clear();
            }),
            Ok(())
        );
    }

    #[test]
    fn the_stored_form_reads_back_the_same() {
        let h = shop();
        assert_eq!(h.away_message, "We are closed; leave a message.");
        let stored = serde_json::to_string(&h.to_json()).unwrap();
        assert_eq!(Hours::from_setting(Some(&stored)), h);
        assert_eq!(h.to_json().weekly.mon[0].start, "09:00", "sorted");
        assert_eq!(Hours::from_setting(None), Hours::default());
        assert_eq!(Hours::from_setting(Some("{not json")), Hours::default());
    }
}
