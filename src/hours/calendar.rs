//! The shop's calendar: dates (parsed, counted in days since 1970, weekdays) and moments on
//! the box's own clock ([`LocalTime`]: a date and a minute of the day), read from the C
//! library ([`local_time`]: `TZ`, else `/etc/localtime`) or computed in UTC ([`utc_time`]).
//! Pure but for `local_time`, which asks the C library.

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
    pub(crate) fn minutes(self) -> i64 {
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
