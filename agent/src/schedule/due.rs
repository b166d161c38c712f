//! When a schedule is next due: pure functions of a spec, the job's run time
//! `HH:MM`, a time zone and an instant.
//!
//! Daylight saving: a run time that does not exist on a day (the spring
//! forward gap) runs at the first valid instant after it, the end of the gap;
//! a run time that occurs twice (fall back) runs once, at the earlier one.
//! `hourly:N` counts elapsed hours from the job's time each day, so the clock
//! jumping neither skips nor doubles a run.

use jiff::civil::{Date, Time};
use jiff::tz::{AmbiguousOffset, TimeZone};
use jiff::{SignedDuration, Timestamp};

use super::Spec;

/// How many days ahead a match is looked for (a monthly `31` matches every month).
const HORIZON_DAYS: usize = 400;

/// Parses a run time `HH:MM` (24 h).
pub fn parse_time(s: &str) -> Result<Time, String> {
    let bad = || format!("time {s:?} is not HH:MM (00:00-23:59)");
    let (h, m) = s.trim().split_once(':').ok_or_else(bad)?;
    let digits =
        |p: &str, len: std::ops::RangeInclusive<usize>| len.contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit());
    if !digits(h, 1..=2) || !digits(m, 2..=2) {
        return Err(bad());
    }
    let (h, m): (i8, i8) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
    if h > 23 || m > 59 {
        return Err(bad());
    }
    Time::new(h, m, 0, 0).map_err(|_| bad())
}

/// The instant `time` on `date` in `tz`, resolved as described in the module doc.
pub fn resolve(date: Date, time: Time, tz: &TimeZone) -> Option<Timestamp> {
    let amb = tz.to_ambiguous_timestamp(date.to_datetime(time));
    match amb.offset() {
        AmbiguousOffset::Unambiguous { .. } | AmbiguousOffset::Fold { .. } => amb.earlier().ok(),
        AmbiguousOffset::Gap { .. } => {
            // The earlier reading (with the offset after the gap) lands before the
            // transition; the transition itself is the end of the gap.
            let before_gap = amb.earlier().ok()?;
            tz.following(before_gap).next().map(|t| t.timestamp())
        }
    }
}

/// The first instant strictly after `after` at which `spec` is due, or none
/// for schedules that do not follow the clock (`manual`, `after:`).
pub fn next_after(spec: &Spec, time: Time, tz: &TimeZone, after: Timestamp) -> Option<Timestamp> {
    let today = after.to_zoned(tz.clone()).date();
    match spec {
        Spec::Manual | Spec::After { .. } => None,
        Spec::Hourly(n) => next_hourly(*n, time, tz, today, after),
        _ => {
            let mut day = today;
            for _ in 0..HORIZON_DAYS {
                if on_day(spec, day)
                    && let Some(t) = resolve(day, time, tz).filter(|t| *t > after)
                {
                    return Some(t);
                }
                day = day.tomorrow().ok()?;
            }
            None
        }
    }
}

/// Whether a daily, weekly or monthly spec runs on `day`.
fn on_day(spec: &Spec, day: Date) -> bool {
    match spec {
        Spec::Daily(days) => days.is_empty() || days.contains(&day.weekday()),
        Spec::Weekly(d) => day.weekday() == *d,
        Spec::Monthly(days) => {
            let last = day.days_in_month();
            // A day past the month's end (31 in April) runs on its last day.
            days.iter().any(|d| i8::try_from(*d).is_ok_and(|d| d == day.day() || (day.day() == last && d > last)))
        }
        _ => false,
    }
}

/// Every `n` hours of elapsed time from the job's time on each day, until the next day's.
fn next_hourly(n: u8, time: Time, tz: &TimeZone, today: Date, after: Timestamp) -> Option<Timestamp> {
    let step = SignedDuration::from_hours(i64::from(n));
    let mut day = today.yesterday().ok()?;
    for _ in 0..3 {
        let start = resolve(day, time, tz)?;
        let end = resolve(day.tomorrow().ok()?, time, tz)?;
        let mut t = start;
        while t < end {
            if t > after {
                return Some(t);
            }
            t = t.checked_add(step).ok()?;
        }
        day = day.tomorrow().ok()?;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ny() -> TimeZone {
        TimeZone::get("America/New_York").expect("the tz database has America/New_York")
    }

    /// A local time in New York, as `2026-03-08T02:30` (earlier of a fold).
    fn at(s: &str) -> Timestamp {
        let dt: jiff::civil::DateTime = s.parse().expect("a civil datetime");
        ny().to_ambiguous_timestamp(dt).earlier().expect("a valid time")
    }

    /// The instant as a New York local time with its offset.
    fn show(t: Timestamp) -> String {
        t.to_zoned(ny()).strftime("%Y-%m-%dT%H:%M%:z").to_string()
    }

    fn next(spec: &str, time: &str, after: Timestamp) -> String {
        let spec = Spec::parse(spec).expect("spec");
        show(next_after(&spec, parse_time(time).expect("time"), &ny(), after).expect("a next run"))
    }

    /// The first `k` due times of a spec after `from`.
    fn series(spec: &str, time: &str, from: Timestamp, k: usize) -> Vec<String> {
        let spec = Spec::parse(spec).expect("spec");
        let time = parse_time(time).expect("time");
        let mut out = Vec::new();
        let mut t = from;
        for _ in 0..k {
            t = next_after(&spec, time, &ny(), t).expect("a next run");
            out.push(show(t));
        }
        out
    }

    #[test]
    fn times_parse() {
        assert!(parse_time("00:00").is_ok());
        assert!(parse_time("23:59").is_ok());
        for bad in ["24:00", "12:60", "12", "ab:cd", "1:2:3", "-1:00", "12:005"] {
            assert!(parse_time(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn daily_is_strictly_after_and_on_the_named_days() {
        assert_eq!(next("daily", "02:00", at("2026-06-10T01:59")), "2026-06-10T02:00-04:00");
        assert_eq!(next("daily", "02:00", at("2026-06-10T02:00")), "2026-06-11T02:00-04:00");
        // 2026-06-10 is a Wednesday.
        assert_eq!(next("daily:mon,fri", "02:00", at("2026-06-10T03:00")), "2026-06-12T02:00-04:00");
        assert_eq!(next("weekly:sun", "23:30", at("2026-06-10T03:00")), "2026-06-14T23:30-04:00");
    }

    #[test]
    fn spring_forward_gap_runs_at_the_end_of_the_gap_once() {
        // 2026-03-08 02:00 EST -> 03:00 EDT: 02:30 does not exist that day.
        assert_eq!(
            series("daily", "02:30", at("2026-03-07T12:00"), 3),
            ["2026-03-08T03:00-04:00", "2026-03-09T02:30-04:00", "2026-03-10T02:30-04:00"]
        );
        // Times outside the gap are unaffected.
        assert_eq!(
            series("daily", "03:30", at("2026-03-07T12:00"), 2),
            ["2026-03-08T03:30-04:00", "2026-03-09T03:30-04:00"]
        );
    }

    #[test]
    fn fall_back_fold_runs_once_at_the_earlier_time() {
        // 2026-11-01 02:00 EDT -> 01:00 EST: 01:30 happens twice.
        assert_eq!(
            series("daily", "01:30", at("2026-10-31T12:00"), 3),
            ["2026-11-01T01:30-04:00", "2026-11-02T01:30-05:00", "2026-11-03T01:30-05:00"]
        );
        // Asked right after the first 01:30, the second one is not a new run.
        assert_eq!(
            next("daily", "01:30", at("2026-11-01T01:30") + SignedDuration::from_mins(1)),
            "2026-11-02T01:30-05:00"
        );
        let second = at("2026-11-01T01:30") + SignedDuration::from_hours(1);
        assert_eq!(next("daily", "01:30", second), "2026-11-02T01:30-05:00");
    }

    #[test]
    fn hourly_counts_elapsed_hours_across_both_changes() {
        let spring = series("hourly", "00:00", at("2026-03-08T00:30"), 4);
        assert_eq!(
            spring,
            ["2026-03-08T01:00-05:00", "2026-03-08T03:00-04:00", "2026-03-08T04:00-04:00", "2026-03-08T05:00-04:00"]
        );
        let fall = series("hourly", "00:00", at("2026-11-01T00:30"), 4);
        assert_eq!(
            fall,
            ["2026-11-01T01:00-04:00", "2026-11-01T01:00-05:00", "2026-11-01T02:00-05:00", "2026-11-01T03:00-05:00"]
        );
        // Every run is exactly one hour after the one before: nothing skipped, nothing doubled.
        let spec = Spec::Hourly(1);
        let mut t = at("2026-03-07T00:00");
        for _ in 0..(24 * 300) {
            let n = next_after(&spec, Time::midnight(), &ny(), t).expect("next");
            assert_eq!(n.duration_since(t), SignedDuration::from_hours(1), "after {}", show(t));
            t = n;
        }
    }

    #[test]
    fn hourly_n_restarts_from_the_time_each_day() {
        assert_eq!(
            series("hourly:6", "03:00", at("2026-06-10T02:00"), 5),
            [
                "2026-06-10T03:00-04:00",
                "2026-06-10T09:00-04:00",
                "2026-06-10T15:00-04:00",
                "2026-06-10T21:00-04:00",
                "2026-06-11T03:00-04:00"
            ]
        );
        // hourly:5 from 00:00: 00, 05, 10, 15, 20, then the next day's 00:00.
        assert_eq!(
            series("hourly:5", "00:00", at("2026-06-10T19:00"), 2),
            ["2026-06-10T20:00-04:00", "2026-06-11T00:00-04:00"]
        );
    }

    #[test]
    fn monthly_days_past_the_end_run_on_the_last_day() {
        assert_eq!(
            series("monthly:31", "04:00", at("2026-01-31T05:00"), 4),
            ["2026-02-28T04:00-05:00", "2026-03-31T04:00-04:00", "2026-04-30T04:00-04:00", "2026-05-31T04:00-04:00"]
        );
        assert_eq!(
            series("monthly:1,15", "04:00", at("2026-01-31T05:00"), 3),
            ["2026-02-01T04:00-05:00", "2026-02-15T04:00-05:00", "2026-03-01T04:00-05:00"]
        );
        // 30 and 31 both fall on February's last day: one run.
        assert_eq!(
            series("monthly:30,31", "04:00", at("2026-02-01T00:00"), 2),
            ["2026-02-28T04:00-05:00", "2026-03-30T04:00-04:00"]
        );
    }

    #[test]
    fn leap_day() {
        assert_eq!(
            series("monthly:29", "04:00", at("2028-01-30T00:00"), 2),
            ["2028-02-29T04:00-05:00", "2028-03-29T04:00-04:00"]
        );
        assert_eq!(series("monthly:31", "04:00", at("2028-02-01T00:00"), 1), ["2028-02-29T04:00-05:00"]);
        assert_eq!(series("monthly:29", "04:00", at("2027-02-01T00:00"), 1), ["2027-02-28T04:00-05:00"]);
        // 2028-02-29 is a Tuesday.
        assert_eq!(next("weekly:tue", "04:00", at("2028-02-28T12:00")), "2028-02-29T04:00-05:00");
    }

    #[test]
    fn manual_and_after_never_fall_due_by_themselves() {
        let t = at("2026-06-10T00:00");
        assert_eq!(next_after(&Spec::Manual, Time::midnight(), &ny(), t), None);
        let after = Spec::parse("after:x+1h").expect("spec");
        assert_eq!(next_after(&after, Time::midnight(), &ny(), t), None);
    }
}
