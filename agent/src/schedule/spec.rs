//! `--schedule SPEC`: the kinds of schedule and their one-word syntax.
//!
//! ```text
//! manual                 only when asked (its retain applies to manual runs)
//! hourly[:N]             every N hours (1-24, default 1) from the job's time each day
//! daily[:mon,wed,fri]    every day, or on the days named
//! weekly:sun             once a week
//! monthly:1,15           on these days of the month (31 = the month's last day)
//! after:JOB[+2h]         when JOB's run ends with a snapshot, after the delay (m, h, d)
//! ```
//!
//! A spec prints back in one canonical form, which is also the tag its runs
//! give their snapshots.

use std::fmt;

use jiff::SignedDuration;
use jiff::civil::Weekday;

use super::span;

/// A parsed schedule spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Spec {
    /// Runs only when asked.
    Manual,
    /// Every N hours.
    Hourly(u8),
    /// Every day, or on these weekdays (sorted, Monday first).
    Daily(Vec<Weekday>),
    /// Once a week.
    Weekly(Weekday),
    /// On these days of the month (sorted, 1-31).
    Monthly(Vec<u8>),
    /// When another job's run made a snapshot, after a delay.
    After {
        /// The job waited for.
        job: String,
        /// Delay after its end.
        delay: SignedDuration,
    },
}

const DAYS: [(&str, Weekday); 7] = [
    ("mon", Weekday::Monday),
    ("tue", Weekday::Tuesday),
    ("wed", Weekday::Wednesday),
    ("thu", Weekday::Thursday),
    ("fri", Weekday::Friday),
    ("sat", Weekday::Saturday),
    ("sun", Weekday::Sunday),
];

/// Accepts `mon` and `monday`, in any case.
fn weekday(s: &str) -> Result<Weekday, String> {
    const FULL: [&str; 7] = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"];
    let lower = s.trim().to_ascii_lowercase();
    DAYS.iter()
        .zip(FULL)
        .find(|((short, _), full)| lower == *short || lower == *full)
        .map(|((_, d), _)| *d)
        .ok_or_else(|| format!("unknown weekday {s:?}: use mon, tue, wed, thu, fri, sat or sun"))
}

fn short(d: Weekday) -> &'static str {
    DAYS.iter().find(|(_, w)| *w == d).map_or("?", |(n, _)| n)
}

impl Spec {
    /// Parses a spec; the error says what is wrong and what is accepted.
    pub fn parse(s: &str) -> Result<Spec, String> {
        let s = s.trim();
        let (kind, arg) = match s.split_once(':') {
            Some((k, a)) => (k.to_ascii_lowercase(), Some(a.trim())),
            None => (s.to_ascii_lowercase(), None),
        };
        let need = |what: &str| arg.filter(|a| !a.is_empty()).ok_or_else(|| format!("schedule {s:?} needs {what}"));
        match kind.as_str() {
            "manual" if arg.is_none() => Ok(Spec::Manual),
            "hourly" => {
                let n = match arg {
                    None => 1,
                    Some(a) => a.parse::<u8>().ok().filter(|n| (1..=24).contains(n)).ok_or_else(|| {
                        format!("schedule {s:?}: every {a:?} hours is out of range: use hourly:N with N 1-24")
                    })?,
                };
                Ok(Spec::Hourly(n))
            }
            "daily" => {
                let mut days = match arg {
                    None => Vec::new(),
                    Some(a) => a
                        .split(',')
                        .map(weekday)
                        .collect::<Result<Vec<_>, _>>()
                        .map_err(|e| format!("schedule {s:?}: {e}"))?,
                };
                days.sort_by_key(|d| d.to_monday_zero_offset());
                days.dedup();
                if days.len() == 7 {
                    days.clear();
                }
                Ok(Spec::Daily(days))
            }
            "weekly" => {
                Ok(Spec::Weekly(weekday(need("a weekday (weekly:sun)")?).map_err(|e| format!("schedule {s:?}: {e}"))?))
            }
            "monthly" => {
                let mut days = Vec::new();
                for d in need("days of the month (monthly:1,15)")?.split(',') {
                    let n =
                        d.trim().parse::<u8>().ok().filter(|n| (1..=31).contains(n)).ok_or_else(|| {
                            format!("schedule {s:?}: day {:?} is out of range: use days 1-31", d.trim())
                        })?;
                    days.push(n);
                }
                days.sort_unstable();
                days.dedup();
                Ok(Spec::Monthly(days))
            }
            "after" => {
                let a = need("a job name (after:JOB or after:JOB+2h)")?;
                let (job, delay) = match a.split_once('+') {
                    Some((j, d)) => (j, span::parse(d, 'h').map_err(|e| format!("schedule {s:?}: delay {e}"))?),
                    None => (a, SignedDuration::ZERO),
                };
                hindsight_fs::check_name("job", job).map_err(|e| format!("schedule {s:?}: {e}"))?;
                Ok(Spec::After { job: job.to_string(), delay })
            }
            _ => Err(format!(
                "cannot parse schedule {s:?}: use manual, hourly[:N], daily[:mon,...], weekly:DAY, monthly:1,15 or after:JOB[+2h]"
            )),
        }
    }

    /// True for schedules that fire at times of the clock.
    pub fn is_timed(&self) -> bool {
        !matches!(self, Spec::Manual | Spec::After { .. })
    }
}

impl fmt::Display for Spec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let list = |v: Vec<String>| v.join(",");
        match self {
            Spec::Manual => write!(f, "manual"),
            Spec::Hourly(n) => write!(f, "hourly:{n}"),
            Spec::Daily(d) if d.is_empty() => write!(f, "daily"),
            Spec::Daily(d) => write!(f, "daily:{}", list(d.iter().map(|d| short(*d).to_string()).collect())),
            Spec::Weekly(d) => write!(f, "weekly:{}", short(*d)),
            Spec::Monthly(d) => write!(f, "monthly:{}", list(d.iter().map(u8::to_string).collect())),
            Spec::After { job, delay } if delay.is_zero() => write!(f, "after:{job}"),
            Spec::After { job, delay } => write!(f, "after:{job}+{}", span::format(*delay)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canon(s: &str) -> String {
        Spec::parse(s).unwrap_or_else(|e| panic!("{s}: {e}")).to_string()
    }

    #[test]
    fn parses_and_prints_canonically() {
        assert_eq!(canon("manual"), "manual");
        assert_eq!(canon("hourly"), "hourly:1");
        assert_eq!(canon("hourly:6"), "hourly:6");
        assert_eq!(canon("daily"), "daily");
        assert_eq!(canon("daily:fri,Mon,wednesday"), "daily:mon,wed,fri");
        assert_eq!(canon("daily:mon,tue,wed,thu,fri,sat,sun"), "daily");
        assert_eq!(canon("weekly:Sun"), "weekly:sun");
        assert_eq!(canon("monthly:15,1,15"), "monthly:1,15");
        assert_eq!(canon("after:db"), "after:db");
        assert_eq!(canon("after:db+120m"), "after:db+2h");
        assert_eq!(canon("after:db+1d"), "after:db+1d");
        assert_eq!(canon("after:db+30m"), "after:db+30m");
    }

    #[test]
    fn refuses_bad_specs_with_the_reason() {
        for (bad, words) in [
            ("yearly", "cannot parse"),
            ("hourly:0", "1-24"),
            ("hourly:25", "1-24"),
            ("daily:funday", "weekday"),
            ("daily:monxyz", "weekday"),
            ("weekly", "needs"),
            ("weekly:mon,tue", "weekday"),
            ("monthly:0", "1-31"),
            ("monthly:32", "1-31"),
            ("monthly:", "needs"),
            ("after:", "needs"),
            ("after:db+2w", "unit"),
            ("after:a/b", "job"),
            ("manual:1", "cannot parse"),
        ] {
            let e = Spec::parse(bad).expect_err(bad);
            assert!(e.contains(words), "{bad}: {e}");
        }
    }
}
