//! Retention: which snapshots of a job a destination keeps after a completed run.
//!
//! Each schedule keeps the newest `retain` snapshots tagged with it; manual
//! snapshots (tag `manual`) keep the newest `manual_retain` (or the retain of
//! the job's `manual` schedule) and, with `manual_ttl`, none older than that
//! many days. A snapshot is deleted only when nothing keeps it; the newest
//! complete snapshot and locked snapshots are never deleted. Snapshots with
//! no tag, or only tags of schedules the job no longer has, are left alone:
//! retention never guesses about history it did not make.

use jiff::{SignedDuration, Timestamp};

use crate::catalog::{Catalog, SnapshotRecord};
use crate::deleter::Deleter;
use crate::model::{Job, Settings, SnapshotId};

/// The tag of manual runs.
pub(crate) const MANUAL: &str = "manual";

/// The rules for one job.
#[derive(Debug, Clone)]
pub(crate) struct Policy {
    /// (tag, retain) of each schedule; `manual` included.
    pub keep: Vec<(String, u32)>,
    /// Manual snapshots older than this are not kept by `manual` (none = no limit).
    pub manual_ttl: Option<SignedDuration>,
}

impl Policy {
    /// The policy of `job` under `settings`.
    pub(crate) fn of(job: &Job, settings: &Settings) -> Policy {
        let mut keep: Vec<(String, u32)> = job.schedules.iter().map(|s| (s.spec.clone(), s.retain)).collect();
        if !keep.iter().any(|(t, _)| t == MANUAL) {
            keep.push((MANUAL.into(), settings.manual_retain));
        }
        let manual_ttl =
            (settings.manual_ttl > 0).then(|| SignedDuration::from_hours(i64::from(settings.manual_ttl) * 24));
        Policy { keep, manual_ttl }
    }
}

/// A snapshot as retention sees it.
#[derive(Debug, Clone)]
pub(crate) struct Candidate {
    /// Catalog id.
    pub id: SnapshotId,
    /// When it finished.
    pub finished: Option<Timestamp>,
    /// Its tags.
    pub tags: Vec<String>,
    /// Locked by the user.
    pub locked: bool,
    /// Some files are missing from it.
    pub partial: bool,
    /// Its place in the job's completion order.
    pub sequence: u64,
}

/// How far the clock may be behind a snapshot's end before TTL expiry stops trusting it.
const CLOCK_SLACK: SignedDuration = SignedDuration::from_mins(1);

/// Why manual TTL expiry must not run now over `snaps` (newest first), if it
/// must not: the clock is earlier than a snapshot's end (it stepped back, or
/// the snapshot was made under a clock set ahead), or it is later than the
/// newest snapshot before the current one by more than the TTL, which would
/// expire all of them at once (a clock stepped forward, or a long gap). The
/// count limits (`retain`) still apply.
pub(crate) fn ttl_refusal(snaps: &[Candidate], ttl: SignedDuration, now: Timestamp) -> Option<String> {
    if let Some(ahead) = snaps.iter().filter_map(|s| s.finished).filter(|f| *f > now + CLOCK_SLACK).max() {
        return Some(format!(
            "the clock ({now}) is earlier than the end of a snapshot ({ahead}): manual_ttl expiry is suspended until it is not"
        ));
    }
    let before = snaps.get(1).and_then(|s| s.finished)?;
    (now.duration_since(before) > ttl).then(|| {
        format!(
            "the newest snapshot before this one ended at {before}, longer than manual_ttl ago: expiring now would delete every earlier manual snapshot at once (a clock stepped forward, or a long pause), so manual_ttl waits for the next run"
        )
    })
}

/// The ids to delete among `snaps` (newest first).
pub(crate) fn select(snaps: &[Candidate], policy: &Policy, now: Timestamp) -> Vec<SnapshotId> {
    let mut kept = vec![false; snaps.len()];
    let ttl = policy.manual_ttl.filter(|ttl| ttl_refusal(snaps, *ttl, now).is_none());
    for (tag, retain) in &policy.keep {
        let expired = |s: &Candidate| {
            tag == MANUAL && ttl.is_some_and(|ttl| s.finished.is_some_and(|f| now.duration_since(f) > ttl))
        };
        let mut n = 0;
        for (i, s) in snaps.iter().enumerate() {
            if n < *retain as usize && s.tags.contains(tag) && !expired(s) {
                kept[i] = true;
                n += 1;
            }
        }
    }
    let known = |t: &String| policy.keep.iter().any(|(k, _)| k == t);
    let newest_complete = snaps.iter().position(|s| !s.partial);
    snaps
        .iter()
        .enumerate()
        .filter(|(i, s)| {
            !kept[*i] && !s.locked && Some(*i) != newest_complete && !s.tags.is_empty() && s.tags.iter().any(known)
        })
        .map(|(_, s)| s.id)
        .collect()
}

fn candidate(r: &SnapshotRecord) -> Candidate {
    Candidate {
        id: r.snapshot.id,
        finished: Some(r.snapshot.finished),
        tags: r.snapshot.tags.clone(),
        locked: r.snapshot.locked,
        partial: r.snapshot.partial,
        sequence: r.snapshot.sequence,
    }
}

/// Applies the job's retention to its snapshots in job directory `dir` (the
/// job's name, or one account's `<job>@<user>`) on each of its destinations;
/// returns how many snapshots began deletion. Destinations in `skip` (where
/// the run's snapshot is suspicious) are left alone.
pub(crate) fn apply(
    catalog: &std::sync::Arc<Catalog>,
    deleter: &Deleter,
    job: &Job,
    dir: &str,
    now: Timestamp,
    skip: &[&str],
) -> usize {
    let settings = match catalog.settings() {
        Ok(s) => s,
        Err(e) => {
            tracing::error!("retention of {}: {e}", job.name);
            return 0;
        }
    };
    let policy = Policy::of(job, &settings);
    let mut deleted = 0;
    for dest_name in job.destinations.iter().filter(|d| !skip.contains(&d.as_str())) {
        let Ok(dest) = catalog.destination(dest_name) else { continue };
        if dest.readonly {
            continue;
        }
        let snaps = match catalog.job_snapshots(&dest.id, dir) {
            Ok(s) => s,
            Err(e) => {
                tracing::error!("retention of {dir} on {dest_name}: {e}");
                continue;
            }
        };
        let mut cands: Vec<Candidate> = snaps.iter().map(candidate).collect();
        // Newest first in completion order, then by end time, never by name: names
        // and times come from a clock that can step, and a name freed by a deletion
        // can be reused by a later snapshot made within the same second.
        cands.sort_by_key(|c| std::cmp::Reverse((c.sequence, c.finished, c.id)));
        if let Some(why) = policy.manual_ttl.and_then(|ttl| ttl_refusal(&cands, ttl, now)) {
            tracing::warn!(job = %dir, destination = %dest_name, "retention: {why}");
        }
        for id in select(&cands, &policy, now) {
            match crate::snapshots::delete(catalog, deleter, id) {
                Ok(_) => {
                    deleted += 1;
                    tracing::info!(job = %dir, destination = %dest_name, "retention: deleting snapshot {id}");
                }
                Err(e) => tracing::error!("retention: deleting snapshot {id}: {}", e.message),
            }
        }
    }
    deleted
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(id: i64, tags: &[&str]) -> Candidate {
        Candidate {
            id: SnapshotId(id),
            finished: None,
            tags: tags.iter().map(|t| t.to_string()).collect(),
            locked: false,
            partial: false,
            sequence: id as u64,
        }
    }

    /// The ids [`select`] picks, as numbers.
    fn sel(snaps: &[Candidate], policy: &Policy, now: Timestamp) -> Vec<i64> {
        select(snaps, policy, now).into_iter().map(|id| id.0).collect()
    }

    fn policy(keep: &[(&str, u32)]) -> Policy {
        Policy { keep: keep.iter().map(|(t, n)| (t.to_string(), *n)).collect(), manual_ttl: None }
    }

    #[test]
    fn each_schedule_keeps_its_newest_and_shared_snapshots_survive() {
        // Newest first: ids 6..1; 6 and 3 are daily+weekly.
        let snaps = [
            c(6, &["daily", "weekly:sun"]),
            c(5, &["daily"]),
            c(4, &["daily"]),
            c(3, &["daily", "weekly:sun"]),
            c(2, &["daily"]),
            c(1, &["weekly:sun"]),
        ];
        let p = policy(&[("daily", 2), ("weekly:sun", 2), ("manual", 14)]);
        assert_eq!(sel(&snaps, &p, Timestamp::UNIX_EPOCH), vec![4, 2, 1]);
    }

    #[test]
    fn locked_newest_complete_and_untagged_are_never_deleted() {
        let mut snaps = vec![c(5, &["daily"]), c(4, &["daily"]), c(3, &["daily"]), c(2, &[]), c(1, &["gone"])];
        snaps[0].partial = true;
        snaps[2].locked = true;
        let p = policy(&[("daily", 1), ("manual", 14)]);
        // 5 is kept by daily; 4 is the newest complete; 3 locked; 2 untagged; 1's schedule is gone.
        assert_eq!(sel(&snaps, &p, Timestamp::UNIX_EPOCH), Vec::<i64>::new());
    }

    #[test]
    fn manual_retain_and_ttl() {
        let day = SignedDuration::from_hours(24);
        let now: Timestamp = "2026-06-10T00:00:00Z".parse().expect("ts");
        let mut snaps: Vec<Candidate> = (1..=5).rev().map(|i| c(i, &["manual"])).collect();
        for (k, s) in snaps.iter_mut().enumerate() {
            s.finished = Some(now - day * (k as i32 * 10));
        }
        let mut p = policy(&[("manual", 3)]);
        assert_eq!(sel(&snaps, &p, now), vec![2, 1]);
        // Ages 0, 10, 20, 30, 40 days; a 15-day TTL keeps the two youngest.
        p.manual_ttl = Some(day * 15);
        assert_eq!(sel(&snaps, &p, now), vec![3, 2, 1]);
    }

    #[test]
    fn ttl_expiry_never_follows_a_stepped_clock() {
        let day = SignedDuration::from_hours(24);
        let real: Timestamp = "2026-06-10T00:00:00Z".parse().expect("ts");
        let mut p = policy(&[("manual", 14)]);
        p.manual_ttl = Some(day * 15);
        // One snapshot a day for five days.
        let mut snaps: Vec<Candidate> = (1..=5).rev().map(|i| c(i, &["manual"])).collect();
        for (k, s) in snaps.iter_mut().enumerate() {
            s.finished = Some(real - day * k as i32);
        }
        assert_eq!(sel(&snaps, &p, real), Vec::<i64>::new(), "nothing is 15 days old");
        // The clock steps five years ahead and a run completes: every earlier
        // snapshot looks expired, none is deleted.
        let ahead = real + day * (5 * 365);
        let mut stepped = vec![Candidate { finished: Some(ahead), ..c(6, &["manual"]) }];
        stepped.extend(snaps.iter().cloned());
        assert!(ttl_refusal(&stepped, day * 15, ahead).is_some_and(|w| w.contains("longer than manual_ttl ago")));
        assert_eq!(sel(&stepped, &p, ahead), Vec::<i64>::new());
        // The clock is set right again: the snapshot from the future is not
        // a reason to expire anything either.
        let back = real + day;
        let mut after = vec![Candidate { finished: Some(back), ..c(7, &["manual"]) }];
        after.extend(stepped.iter().cloned());
        assert!(ttl_refusal(&after, day * 15, back).is_some_and(|w| w.contains("earlier than the end")));
        assert_eq!(sel(&after, &p, back), Vec::<i64>::new());
        // Normal life, 20 days of daily snapshots: the TTL applies.
        let mut daily: Vec<Candidate> = (1..=20).rev().map(|i| c(i, &["manual"])).collect();
        for (k, s) in daily.iter_mut().enumerate() {
            s.finished = Some(real - day * k as i32);
        }
        p.keep = vec![("manual".into(), 99)];
        assert_eq!(sel(&daily, &p, real), vec![4, 3, 2, 1]);
    }
}
