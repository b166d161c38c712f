//! Short durations as users write them: `30m`, `12h`, `2d` (and a bare number
//! in a default unit, as the reference gives monitor values in days).

use jiff::SignedDuration;

/// Longest accepted span: a year.
const MAX_SECS: i64 = 366 * 86_400;

/// Parses `N[m|h|d]`; a bare `N` is in `default_unit` (`'m'`, `'h'` or `'d'`).
pub fn parse(s: &str, default_unit: char) -> Result<SignedDuration, String> {
    let s = s.trim();
    let (num, unit) = match s.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => (&s[..i], c.to_ascii_lowercase()),
        _ => (s, default_unit),
    };
    let n: i64 =
        num.parse().map_err(|_| format!("{s:?} is not a duration: use a number with m, h or d (30m, 12h, 2d)"))?;
    let unit_secs = match unit {
        'm' => 60,
        'h' => 3_600,
        'd' => 86_400,
        other => return Err(format!("unknown unit {other:?} in {s:?}: use m, h or d")),
    };
    let secs = n.checked_mul(unit_secs).filter(|v| (0..=MAX_SECS).contains(v));
    secs.map(SignedDuration::from_secs).ok_or_else(|| format!("{s:?} is out of range: use 0 to 366d"))
}

/// Prints a span in its largest exact unit (`2h`, `90m`, `1d`).
pub fn format(d: SignedDuration) -> String {
    let secs = d.as_secs();
    if secs % 86_400 == 0 && secs > 0 {
        format!("{}d", secs / 86_400)
    } else if secs % 3_600 == 0 && secs > 0 {
        format!("{}h", secs / 3_600)
    } else {
        format!("{}m", secs / 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_and_defaults() {
        assert_eq!(parse("30m", 'd'), Ok(SignedDuration::from_mins(30)));
        assert_eq!(parse("12h", 'd'), Ok(SignedDuration::from_hours(12)));
        assert_eq!(parse("2", 'd'), Ok(SignedDuration::from_hours(48)));
        assert_eq!(parse("2D", 'h'), Ok(SignedDuration::from_hours(48)));
        assert!(parse("x", 'd').is_err());
        assert!(parse("3w", 'd').is_err());
        assert!(parse("-1h", 'd').is_err());
        assert!(parse("400d", 'd').is_err());
        assert_eq!(format(SignedDuration::from_hours(48)), "2d");
        assert_eq!(format(SignedDuration::from_mins(90)), "90m");
        assert_eq!(format(SignedDuration::from_hours(2)), "2h");
    }
}
