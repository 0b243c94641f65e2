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

mod calendar;

pub use calendar::{local_time, utc_time, Date, LocalTime};

const DAY_NAMES: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

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
mod tests;
