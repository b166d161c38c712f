//! Which file bodies a check reads and hashes: none, all, or a share picked
//! at random for each check, as restic's `--read-data-subset` does, so that a
//! scheduled check reading 10% a week reads every file within months at a
//! tenth of the cost.

/// A check's choice of the bodies to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadData {
    percent: u8,
    seed: u64,
}

impl ReadData {
    /// No body is read: sizes, kinds and the index are checked.
    pub const NONE: ReadData = ReadData { percent: 0, seed: 0 };
    /// Every body is read.
    pub const ALL: ReadData = ReadData { percent: 100, seed: 0 };

    /// About `percent` % of the bodies (1-100), a new random share each time.
    pub fn share(percent: u8) -> ReadData {
        use std::hash::BuildHasher;
        let seed = std::collections::hash_map::RandomState::new().hash_one(std::time::SystemTime::now());
        ReadData { percent: percent.min(100), seed }
    }

    /// The share read, 0-100.
    pub fn percent(&self) -> u8 {
        self.percent
    }

    /// Whether the body known by `key` (its blake3, its stored object, its
    /// path) is read: the same key always gets the same answer in one check.
    pub fn wants(&self, key: &[u8]) -> bool {
        match self.percent {
            0 => false,
            100.. => true,
            p => {
                let h = blake3::Hasher::new().update(&self.seed.to_le_bytes()).update(key).finalize();
                let n = u64::from_le_bytes(h.as_bytes()[..8].try_into().unwrap_or_default());
                n % 100 < u64::from(p)
            }
        }
    }
}

impl From<bool> for ReadData {
    fn from(all: bool) -> Self {
        if all { ReadData::ALL } else { ReadData::NONE }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_share_reads_about_that_share_and_another_check_another_one() {
        let keys: Vec<[u8; 8]> = (0u64..10_000).map(|i| i.to_le_bytes()).collect();
        let (a, b) = (ReadData::share(10), ReadData::share(10));
        let picked = |r: &ReadData| keys.iter().filter(|k| r.wants(&k[..])).count();
        assert!((800..1200).contains(&picked(&a)), "{}", picked(&a));
        let both = keys.iter().filter(|k| a.wants(&k[..]) && b.wants(&k[..])).count();
        assert!(both < 300, "two checks read the same files: {both}");
        assert_eq!(picked(&ReadData::ALL), 10_000);
        assert_eq!(picked(&ReadData::NONE), 0);
        assert!(keys.iter().all(|k| a.wants(&k[..]) == a.wants(&k[..])));
    }
}
