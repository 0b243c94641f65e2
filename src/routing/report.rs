//! The reports' pure cores: the window a report covers, the response-time report (per day,
//! how long customers waited for a person, for a first answer from one, and for a
//! resolution: median and 90th percentile) and messages per hour of the day.
//!
//! Days and hours are local to the caller's UTC offset (`offset_ms`, minutes east of UTC ×
//! 60 000; 0 is UTC): the console passes its browser's, so a shop sees its own day. A report
//! of N days covers today and the N − 1 local calendar days before it. In the response-time
//! report a conversation belongs to the day of its first customer message and counts in a
//! column only once that event happened (one not yet assigned has no time to assignment).

use std::collections::BTreeMap;

use serde::Serialize;

/// One conversation's milestones, epoch milliseconds.
#[derive(Debug, Clone, Copy)]
pub struct Milestones {
    pub first_customer_message: i64,
    pub first_assigned: Option<i64>,
    pub first_agent_reply: Option<i64>,
    pub first_resolved: Option<i64>,
}

#[derive(Debug, Serialize, PartialEq)]
pub struct Percentiles {
    pub count: usize,
    pub median_secs: f64,
    pub p90_secs: f64,
}

#[derive(Debug, Serialize, PartialEq)]
pub struct DayReport {
    /// `YYYY-MM-DD` (local to the report's offset).
    pub day: String,
    pub conversations: usize,
    pub time_to_assignment: Option<Percentiles>,
    pub first_response: Option<Percentiles>,
    pub resolution: Option<Percentiles>,
}

const DAY_MS: i64 = 86_400_000;
const HOUR_MS: i64 = 3_600_000;

/// The most days a report covers.
pub const MAX_DAYS: u32 = 366;
/// UTC offsets in minutes: from UTC−12:00 to UTC+14:00.
pub const OFFSET_MINUTES: std::ops::RangeInclusive<i32> = -720..=840;

/// What a report covers: `days` local calendar days up to today, at a UTC offset.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Window {
    pub days: u32,
    pub offset_ms: i64,
    /// The first millisecond covered (local midnight, `days − 1` days before today).
    pub since_ms: i64,
    /// Local today, days since 1970-01-01.
    pub today: i64,
}

/// Why report parameters were refused.
#[derive(Debug, PartialEq, thiserror::Error)]
pub enum WindowError {
    #[error("days must be 1 to {MAX_DAYS}")]
    Days,
    #[error("utc_offset must be minutes east of UTC, -720 to 840")]
    Offset,
}

impl Window {
    /// # Errors
    /// [`WindowError`] for days outside 1..=[`MAX_DAYS`] or an offset outside [`OFFSET_MINUTES`].
    pub fn new(now_ms: i64, days: u32, offset_minutes: i32) -> Result<Window, WindowError> {
        if !(1..=MAX_DAYS).contains(&days) {
            return Err(WindowError::Days);
        }
        if !OFFSET_MINUTES.contains(&offset_minutes) {
            return Err(WindowError::Offset);
        }
        let offset_ms = i64::from(offset_minutes) * 60_000;
        let today = (now_ms + offset_ms).div_euclid(DAY_MS);
        Ok(Window {
            days,
            offset_ms,
            since_ms: (today - i64::from(days) + 1) * DAY_MS - offset_ms,
            today,
        })
    }

    /// Local today as `YYYY-MM-DD` (for a download's file name).
    pub fn today_date(&self) -> String {
        civil_date(self.today)
    }

    /// The first day covered as `YYYY-MM-DD`.
    pub fn since_date(&self) -> String {
        civil_date(self.today - i64::from(self.days) + 1)
    }
}

/// Customer and agent messages in one local hour of the day.
#[derive(Debug, Serialize, PartialEq, Default, Clone, Copy)]
pub struct HourCount {
    pub hour: u8,
    pub customer: u64,
    pub agent: u64,
}

/// Who wrote the messages counted in an hour.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Writer {
    Customer,
    Agent,
}

/// All 24 hours, 0 to 23, from `(hour, writer, count)` rows (hours outside 0..24 are a
/// caller's bug and are ignored).
pub fn hourly(rows: &[(i64, Writer, u64)]) -> Vec<HourCount> {
    let mut hours: Vec<HourCount> = (0..24)
        .map(|hour| HourCount {
            hour,
            ..HourCount::default()
        })
        .collect();
    for &(hour, writer, n) in rows {
        let Some(h) = usize::try_from(hour).ok().and_then(|i| hours.get_mut(i)) else {
            continue;
        };
        match writer {
            Writer::Customer => h.customer += n,
            Writer::Agent => h.agent += n,
        }
    }
    hours
}

/// The local hour of the day (0..24) of an instant. Pure; the store's query computes the same.
pub fn local_hour(at_ms: i64, offset_ms: i64) -> i64 {
    (at_ms + offset_ms).rem_euclid(DAY_MS) / HOUR_MS
}

pub fn daily(rows: &[Milestones], offset_ms: i64) -> Vec<DayReport> {
    let mut days: BTreeMap<i64, Vec<&Milestones>> = BTreeMap::new();
    for m in rows {
        days.entry((m.first_customer_message + offset_ms).div_euclid(DAY_MS))
            .or_default()
            .push(m);
    }
    days.into_iter()
        .map(|(day, ms)| {
            let column = |pick: fn(&Milestones) -> Option<i64>| {
                percentiles(
                    ms.iter()
                        .filter_map(|m| pick(m).map(|t| (t - m.first_customer_message).max(0)))
                        .collect(),
                )
            };
            DayReport {
                day: civil_date(day),
                conversations: ms.len(),
                time_to_assignment: column(|m| m.first_assigned),
                first_response: column(|m| m.first_agent_reply),
                resolution: column(|m| m.first_resolved),
            }
        })
        .collect()
}

/// Nearest-rank percentiles of durations in milliseconds.
fn percentiles(mut ms: Vec<i64>) -> Option<Percentiles> {
    if ms.is_empty() {
        return None;
    }
    ms.sort_unstable();
    let rank =
        |p: f64| ms[((p * ms.len() as f64).ceil() as usize).clamp(1, ms.len()) - 1] as f64 / 1000.0;
    Some(Percentiles {
        count: ms.len(),
        median_secs: rank(0.5),
        p90_secs: rank(0.9),
    })
}

/// Days since 1970-01-01 → `YYYY-MM-DD` (Howard Hinnant's civil-from-days).
fn civil_date(days: i64) -> String {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_civil() {
        assert_eq!(civil_date(0), "1970-01-01");
        assert_eq!(civil_date(20_419), "2025-11-27");
        assert_eq!(civil_date(11_016), "2000-02-29");
    }

    #[test]
    fn per_day_median_and_p90() {
        let day = 20_419 * 86_400_000;
        let rows: Vec<Milestones> = (1..=10)
            .map(|i| Milestones {
                first_customer_message: day + i,
                first_assigned: Some(day + i + i * 1000),
                first_agent_reply: (i % 2 == 0).then_some(day + i + 60_000),
                first_resolved: None,
            })
            .chain([Milestones {
                first_customer_message: day + 86_400_000,
                first_assigned: None,
                first_agent_reply: None,
                first_resolved: Some(day + 86_400_000 + 5_000),
            }])
            .collect();
        let r = daily(&rows, 0);
        assert_eq!(r.len(), 2);
        assert_eq!(r[0].day, "2025-11-27");
        assert_eq!(r[0].conversations, 10);
        let a = r[0].time_to_assignment.as_ref().unwrap();
        assert_eq!((a.count, a.median_secs, a.p90_secs), (10, 5.0, 9.0));
        assert_eq!(r[0].first_response.as_ref().unwrap().median_secs, 60.0);
        assert!(r[0].resolution.is_none());
        assert_eq!(r[1].resolution.as_ref().unwrap().median_secs, 5.0);
        assert!(r[1].time_to_assignment.is_none());
        // Two hours east of UTC, the first ten fall on the same local day, the last on the next.
        let east = daily(&rows, 2 * HOUR_MS);
        assert_eq!(east[0].day, "2025-11-27");
        // Ten hours west, they are the evening of the day before.
        assert_eq!(daily(&rows, -10 * HOUR_MS)[0].day, "2025-11-26");
    }

    #[test]
    fn a_window_is_local_calendar_days_up_to_today() {
        // 2025-11-27 23:30 UTC: already 2025-11-28 at UTC+8.
        let now = 20_419 * DAY_MS + 23 * HOUR_MS + 30 * 60_000;
        let utc = Window::new(now, 1, 0).unwrap();
        assert_eq!(utc.since_ms, 20_419 * DAY_MS);
        assert_eq!(utc.today_date(), "2025-11-27");
        let china = Window::new(now, 7, 480).unwrap();
        assert_eq!(china.today_date(), "2025-11-28");
        assert_eq!(china.since_date(), "2025-11-22");
        // Local midnight of 2025-11-22 at UTC+8 is 16:00 UTC the day before.
        assert_eq!(china.since_ms, (20_420 - 6) * DAY_MS - 8 * HOUR_MS);
        assert_eq!(Window::new(now, 0, 0), Err(WindowError::Days));
        assert_eq!(Window::new(now, MAX_DAYS + 1, 0), Err(WindowError::Days));
        assert_eq!(Window::new(now, 7, 841), Err(WindowError::Offset));
        assert_eq!(Window::new(now, 7, -721), Err(WindowError::Offset));
        assert!(Window::new(now, MAX_DAYS, -720).is_ok());
    }

    #[test]
    fn hours_are_all_24_and_local() {
        assert_eq!(local_hour(20_419 * DAY_MS + 23 * HOUR_MS, 0), 23);
        assert_eq!(local_hour(20_419 * DAY_MS + 23 * HOUR_MS, 8 * HOUR_MS), 7);
        assert_eq!(local_hour(20_419 * DAY_MS + HOUR_MS, -5 * HOUR_MS), 20);
        // India, UTC+5:30: 00:45 UTC is 06:15 local.
        assert_eq!(local_hour(20_419 * DAY_MS + 45 * 60_000, 330 * 60_000), 6);
        let h = hourly(&[
            (9, Writer::Customer, 3),
            (9, Writer::Agent, 2),
            (23, Writer::Customer, 1),
            (24, Writer::Agent, 7),
            (-1, Writer::Agent, 7),
        ]);
        assert_eq!(h.len(), 24);
        assert!(h.iter().enumerate().all(|(i, c)| usize::from(c.hour) == i));
        assert_eq!((h[9].customer, h[9].agent), (3, 2));
        assert_eq!((h[23].customer, h[23].agent), (1, 0));
        assert_eq!(h.iter().map(|c| c.customer + c.agent).sum::<u64>(), 6);
    }
}
