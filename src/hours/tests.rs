//! Business hours: validation, is_open and opened_between, and the calendar.

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
