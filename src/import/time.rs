//! Times as other systems write them, read into milliseconds since the epoch (UTC). Pure.
//!
//! Accepted: `YYYY-MM-DD HH:MM[:SS[.fraction]]` or the same with `T`, optionally followed by
//! `Z` or an offset (`+08:00`, `+0800`, `-05`); a time without an offset is in the zone the
//! caller names (a dump's `SET TIME_ZONE`, or UTC). MySQL's zero date (`0000-00-00 ...`) and
//! impossible dates (month 13, February 30) are `None`, never a made-up time.

/// Milliseconds since the epoch of `text`, read in `offset_minutes` east of UTC unless it
/// names its own offset.
pub fn parse_time(text: &str, offset_minutes: i32) -> Option<i64> {
    let t = text.trim().as_bytes();
    let year = digits(t, 0, 4)?;
    let month = digits(t, 5, 2)?;
    let day = digits(t, 8, 2)?;
    if t.get(4) != Some(&b'-') || t.get(7) != Some(&b'-') {
        return None;
    }
    if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return None;
    }
    let mut at = 10;
    let (mut hour, mut minute, mut second, mut millis) = (0, 0, 0, 0);
    if matches!(t.get(at), Some(b' ' | b'T' | b't')) {
        hour = digits(t, at + 1, 2)?;
        if t.get(at + 3) != Some(&b':') {
            return None;
        }
        minute = digits(t, at + 4, 2)?;
        at += 6;
        if t.get(at) == Some(&b':') {
            second = digits(t, at + 1, 2)?;
            at += 3;
            if t.get(at) == Some(&b'.') {
                at += 1;
                let start = at;
                while t.get(at).is_some_and(u8::is_ascii_digit) {
                    if at - start < 3 {
                        millis = millis * 10 + i64::from(t[at] - b'0');
                    }
                    at += 1;
                }
                if at == start {
                    return None;
                }
                for _ in (at - start)..3 {
                    millis *= 10;
                }
            }
        }
    }
    if hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let offset = match &t[at.min(t.len())..] {
        [] => i64::from(offset_minutes),
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), rest @ ..] => {
            let (h, m) = match rest {
                [a, b] => (two(*a, *b)?, 0),
                [a, b, b':', c, d] | [a, b, c, d] => (two(*a, *b)?, two(*c, *d)?),
                _ => return None,
            };
            let minutes = h * 60 + m;
            if *sign == b'-' {
                -minutes
            } else {
                minutes
            }
        }
        _ => return None,
    };
    let days = days_from_civil(year, month, day);
    let seconds = days * 86_400 + hour * 3_600 + minute * 60 + second - offset * 60;
    Some(seconds * 1_000 + millis)
}

/// A whole number of seconds or milliseconds since the epoch: values past 10^11 (the year
/// 5138 in seconds) are milliseconds.
pub fn from_epoch_number(n: f64) -> Option<i64> {
    if !n.is_finite() || n < 0.0 {
        return None;
    }
    Some(if n >= 1e11 {
        n as i64
    } else {
        (n * 1_000.0) as i64
    })
}

fn digits(t: &[u8], at: usize, len: usize) -> Option<i64> {
    let slice = t.get(at..at + len)?;
    slice.iter().try_fold(0i64, |acc, b| {
        b.is_ascii_digit().then(|| acc * 10 + i64::from(b - b'0'))
    })
}

fn two(a: u8, b: u8) -> Option<i64> {
    digits(&[a, b], 0, 2)
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mysql_and_rfc3339_times_read_the_same_instant() {
        let utc = 1_593_286_361_000; // 2020-06-27 19:32:41 UTC
        assert_eq!(parse_time("2020-06-27 19:32:41", 0), Some(utc));
        assert_eq!(parse_time("2020-06-27T19:32:41Z", 480), Some(utc));
        assert_eq!(parse_time("2020-06-28 03:32:41", 480), Some(utc));
        assert_eq!(parse_time("2020-06-28T03:32:41+08:00", 0), Some(utc));
        assert_eq!(parse_time("2020-06-28T03:32:41+0800", 0), Some(utc));
        assert_eq!(parse_time("2020-06-27T14:32:41-05", 0), Some(utc));
        assert_eq!(parse_time("2020-06-27 19:32:41.5", 0), Some(utc + 500));
        assert_eq!(parse_time("2020-06-27 19:32:41.123456", 0), Some(utc + 123));
        assert_eq!(parse_time("2020-06-27 19:32", 0), Some(utc - 41_000));
        assert_eq!(parse_time("2020-06-27", 0), Some(utc - 70_361_000));
        assert_eq!(parse_time("1970-01-01 00:00:00", 0), Some(0));
        assert_eq!(parse_time("2000-02-29 00:00:00", 0), Some(951_782_400_000));
    }

    #[test]
    fn leap_days_before_the_epoch_and_the_32_bit_limit() {
        assert_eq!(parse_time("2020-02-29", 0), Some(1_582_934_400_000));
        assert_eq!(
            parse_time("2020-02-29T00:00:00", 0),
            Some(1_582_934_400_000)
        );
        assert_eq!(parse_time("1969-12-31 23:59:59", 0), Some(-1_000));
        assert_eq!(
            parse_time("2038-01-19 03:14:07", 0),
            Some(2_147_483_647_000)
        );
    }

    #[test]
    fn zero_dates_impossible_dates_and_garbage_are_refused() {
        for bad in [
            "0000-00-00 00:00:00",
            "0000-00-00",
            "2020-04-31 00:00:00",
            "2020-01-01 00:60:00",
            "2020/01/01 00:00:00",
            "2020-1-01",
            "今天",
            "2021-02-29 00:00:00",
            "2020-13-01",
            "2020-06-27 24:00:00",
            "2020-06-27 19:32:41.",
            "2020-06-27 19:32:41 UTC",
            "27/06/2020",
            "",
            "2020-06-27 19:32:41+8",
        ] {
            assert_eq!(parse_time(bad, 0), None, "{bad}");
        }
    }

    #[test]
    fn epoch_numbers_in_seconds_or_milliseconds() {
        assert_eq!(from_epoch_number(1_593_286_361.0), Some(1_593_286_361_000));
        assert_eq!(
            from_epoch_number(1_593_286_361_250.0),
            Some(1_593_286_361_250)
        );
        assert_eq!(from_epoch_number(-1.0), None);
        assert_eq!(from_epoch_number(f64::NAN), None);
    }
}
