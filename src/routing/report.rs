//! The response-time report: per day, how long customers waited for a person, for a first
//! answer from one, and for a resolution (median and 90th percentile).
//!
//! Days are UTC calendar days of the conversation's first customer message. A conversation
//! counts in a column only once that event happened (one not yet assigned has no time to
//! assignment).

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
    /// `YYYY-MM-DD` (UTC).
    pub day: String,
    pub conversations: usize,
    pub time_to_assignment: Option<Percentiles>,
    pub first_response: Option<Percentiles>,
    pub resolution: Option<Percentiles>,
}

pub fn daily(rows: &[Milestones]) -> Vec<DayReport> {
    let mut days: BTreeMap<i64, Vec<&Milestones>> = BTreeMap::new();
    for m in rows {
        days.entry(m.first_customer_message.div_euclid(86_400_000))
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
        let r = daily(&rows);
        assert_eq!(r.len(), 2);
        assert_eq!(r[0].day, "2025-11-27");
        assert_eq!(r[0].conversations, 10);
        let a = r[0].time_to_assignment.as_ref().unwrap();
        assert_eq!((a.count, a.median_secs, a.p90_secs), (10, 5.0, 9.0));
        assert_eq!(r[0].first_response.as_ref().unwrap().median_secs, 60.0);
        assert!(r[0].resolution.is_none());
        assert_eq!(r[1].resolution.as_ref().unwrap().median_secs, 5.0);
        assert!(r[1].time_to_assignment.is_none());
    }
}
