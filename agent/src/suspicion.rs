//! A bad run must not rotate good history away: a snapshot much smaller
//! than the one before it (a data disk that did not mount leaves an empty
//! mount point, and the walk of it "completes"), or one in which most files
//! changed at once (what ransomware does to a tree), is suspicious. Its run
//! raises a warning naming the change, and retention is skipped for it, so
//! the older snapshots stay until a person looks.

use hindsight_fs::SnapshotStats;

use crate::model::{Settings, Snapshot};

/// Why the snapshot with `stats` is suspicious next to `previous` (the
/// newest snapshot of the job on the same destination before it), if it is.
pub(crate) fn suspicion(stats: &SnapshotStats, previous: Option<&Snapshot>, settings: &Settings) -> Option<String> {
    let prev = previous?;
    let drop = settings.suspicious_drop;
    if drop > 0 {
        for (what, now, before) in [("files", stats.files, prev.files), ("bytes of file data", stats.bytes, prev.bytes)]
        {
            if dropped_more_than(now, before, drop) {
                return Some(format!(
                    "{now} {what} against {before} in the previous snapshot {} (-{}%, over the suspicious_drop of {drop}%)",
                    prev.name,
                    percent(before - now, before)
                ));
            }
        }
    }
    let change = settings.suspicious_change;
    // Only among files the previous snapshot had: a first backup adds everything.
    if change > 0 && prev.files > 0 && stats.files_added.saturating_mul(100) > u64::from(change) * prev.files {
        return Some(format!(
            "{} of {} files changed since the previous snapshot {} ({}%, over the suspicious_change of {change}%)",
            stats.files_added,
            stats.files,
            prev.name,
            percent(stats.files_added, prev.files)
        ));
    }
    None
}

/// True when `now` is more than `threshold` percent below `before`. An
/// empty source after a non-empty one always is.
fn dropped_more_than(now: u64, before: u64, threshold: u32) -> bool {
    before > 0 && now < before && (before - now).saturating_mul(100) > u64::from(threshold) * before
}

fn percent(part: u64, whole: u64) -> u64 {
    part.saturating_mul(100).checked_div(whole).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats(files: u64, bytes: u64, files_added: u64) -> SnapshotStats {
        SnapshotStats { files, bytes, files_added, ..Default::default() }
    }

    fn snap(files: u64, bytes: u64) -> Snapshot {
        Snapshot {
            id: crate::model::SnapshotId(1),
            destination: "d".into(),
            job: "j".into(),
            name: "2026-12-07T10-00-00".into(),
            structure: crate::model::Structure::Incremental,
            started: jiff::Timestamp::UNIX_EPOCH,
            finished: jiff::Timestamp::UNIX_EPOCH,
            files,
            bytes,
            files_added: 0,
            bytes_added: 0,
            partial: false,
            tags: Vec::new(),
            locked: false,
            sequence: 1,
            path: None,
            error: None,
        }
    }

    fn settings(drop: u32, change: u32) -> Settings {
        let mut s = crate::settings::from_stored(&Default::default());
        s.suspicious_drop = drop;
        s.suspicious_change = change;
        s
    }

    #[test]
    fn drops_beyond_the_threshold_are_suspicious() {
        let s = settings(50, 0);
        let prev = snap(1000, 1 << 30);
        assert_eq!(suspicion(&stats(1000, 1 << 30, 5), Some(&prev), &s), None);
        assert_eq!(suspicion(&stats(500, 1 << 29, 0), Some(&prev), &s), None, "exactly 50% is not over 50%");
        let empty = suspicion(&stats(0, 0, 0), Some(&prev), &s).expect("an empty source");
        assert!(empty.contains("0 files against 1000") && empty.contains("-100%"), "{empty}");
        let bytes = suspicion(&stats(1000, 1 << 20, 0), Some(&prev), &s).expect("bytes dropped");
        assert!(bytes.contains("bytes of file data") && bytes.contains("-99%"), "{bytes}");
        assert_eq!(suspicion(&stats(0, 0, 0), None, &s), None, "a first backup has nothing to compare with");
        assert_eq!(suspicion(&stats(0, 0, 0), Some(&snap(0, 0)), &s), None, "empty before, empty now");
        assert_eq!(suspicion(&stats(0, 0, 0), Some(&prev), &settings(0, 0)), None, "0 turns the check off");
    }

    #[test]
    fn mass_changes_are_suspicious_when_asked_for() {
        let prev = snap(200, 1 << 20);
        assert_eq!(suspicion(&stats(200, 1 << 20, 200), Some(&prev), &settings(50, 0)), None, "off by default");
        let s = settings(50, 80);
        assert_eq!(suspicion(&stats(200, 1 << 20, 160), Some(&prev), &s), None);
        let why = suspicion(&stats(200, 1 << 20, 190), Some(&prev), &s).expect("95% changed");
        assert!(why.contains("190 of 200 files changed") && why.contains("95%"), "{why}");
    }
}
