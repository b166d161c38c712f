//! Exclude patterns of a job.
//!
//! Patterns are globs matched against the absolute source path: `*` and `?`
//! stay within one path component, `**` spans components, `[...]` is a class,
//! `\` escapes. A pattern that does not start with `/` or `**` matches at any
//! depth (`*.tmp` is `**/*.tmp`). A trailing `/` restricts the pattern to
//! directories. An excluded directory is not descended into.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};

/// A compiled set of exclude patterns.
#[derive(Debug, Clone)]
pub(crate) struct Excludes {
    any: GlobSet,
    dirs_only: GlobSet,
}

impl Excludes {
    /// Compiles patterns; the error names the pattern that does not parse.
    pub(crate) fn new(patterns: &[String]) -> Result<Self, String> {
        let mut any = GlobSetBuilder::new();
        let mut dirs_only = GlobSetBuilder::new();
        for p in patterns {
            let (body, dir_only) = match p.strip_suffix('/') {
                Some(b) if !b.is_empty() => (b, true),
                _ => (p.as_str(), false),
            };
            if body.is_empty() {
                return Err(format!("empty exclude pattern {p:?}"));
            }
            let anchored =
                if body.starts_with('/') || body.starts_with("**") { body.to_string() } else { format!("**/{body}") };
            let glob = GlobBuilder::new(&anchored)
                .literal_separator(true)
                .backslash_escape(true)
                .build()
                .map_err(|e| format!("invalid exclude pattern {p:?}: {e}"))?;
            if dir_only {
                dirs_only.add(glob);
            } else {
                any.add(glob);
            }
        }
        let build = |b: GlobSetBuilder| b.build().map_err(|e| format!("invalid exclude patterns: {e}"));
        Ok(Excludes { any: build(any)?, dirs_only: build(dirs_only)? })
    }

    /// True when the entry at absolute path `path` is excluded.
    pub(crate) fn is_excluded(&self, path: &[u8], is_dir: bool) -> bool {
        let p = OsStr::from_bytes(path);
        self.any.is_match(p) || (is_dir && self.dirs_only.is_match(p))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ex(p: &[&str]) -> Excludes {
        Excludes::new(&p.iter().map(|s| s.to_string()).collect::<Vec<_>>()).expect("patterns")
    }

    #[test]
    fn star_stays_in_component() {
        let e = ex(&["/src/*.log"]);
        assert!(e.is_excluded(b"/src/a.log", false));
        assert!(!e.is_excluded(b"/src/sub/a.log", false));
    }

    #[test]
    fn double_star_crosses() {
        let e = ex(&["/src/**/cache"]);
        assert!(e.is_excluded(b"/src/cache", true));
        assert!(e.is_excluded(b"/src/a/b/cache", false));
        assert!(!e.is_excluded(b"/other/cache", false));
    }

    #[test]
    fn unanchored_matches_anywhere() {
        let e = ex(&["*.tmp"]);
        assert!(e.is_excluded(b"/a/b/c.tmp", false));
        assert!(!e.is_excluded(b"/a/b/c.tmpx", false));
    }

    #[test]
    fn trailing_slash_is_dirs_only() {
        let e = ex(&["build/"]);
        assert!(e.is_excluded(b"/p/build", true));
        assert!(!e.is_excluded(b"/p/build", false));
    }

    #[test]
    fn non_utf8_paths_match() {
        let e = ex(&["*.bin"]);
        assert!(e.is_excluded(b"/x/\xff\xfe.bin", false));
    }

    #[test]
    fn bad_pattern_is_an_error() {
        assert!(Excludes::new(&["/a/[".to_string()]).is_err());
    }
}
