//! Human output: tables, sizes, times.

use serde::Serialize;

/// Prints `value` as pretty JSON.
pub fn print_json<T: Serialize>(value: &T) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// One JSON Lines message of a followed run or task: `value` (an object)
/// with `message_type` (`status` while it works, `summary` at its end),
/// compact, on one line.
pub fn json_line<T: Serialize>(message_type: &str, value: &T) -> anyhow::Result<()> {
    let mut v = serde_json::to_value(value)?;
    if let Some(o) = v.as_object_mut() {
        o.insert("message_type".into(), message_type.into());
    }
    println!("{}", serde_json::to_string(&v)?);
    Ok(())
}

/// Says that `what` `name` was removed: one line, or with `json`
/// `{"removed": {"kind": what, "name": name}}` (scripts get JSON from every command).
pub fn removed(json: bool, what: &str, name: &str, text: &str) -> anyhow::Result<()> {
    if json {
        return print_json(&serde_json::json!({"removed": {"kind": what, "name": name}}));
    }
    println!("{text}");
    Ok(())
}

/// Prints rows as columns aligned under a header.
pub fn table(header: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(cell.chars().count());
            }
        }
    }
    let line = |cells: Vec<&str>| {
        let mut s = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                s.push_str(c);
            } else {
                s.push_str(&format!("{:<w$}  ", c, w = widths[i]));
            }
        }
        println!("{}", s.trim_end());
    };
    line(header.to_vec());
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
}

/// Prints `key: value` lines aligned.
pub fn fields(rows: &[(&str, String)]) {
    let w = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    for (k, v) in rows {
        println!("{:<w$}  {}", format!("{k}:"), v, w = w + 1);
    }
}

/// Bytes in binary units (`1.5 GiB`).
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 { format!("{n} B") } else { format!("{v:.1} {}", UNITS[u]) }
}

/// A time shown to the second in local time.
pub fn time(t: &jiff::Timestamp) -> String {
    t.to_zoned(jiff::tz::TimeZone::system()).strftime("%Y-%m-%d %H:%M:%S").to_string()
}

/// An optional time, `-` when absent.
pub fn opt_time(t: Option<&jiff::Timestamp>) -> String {
    t.map(time).unwrap_or_else(|| "-".into())
}

/// The time between two times, `-` unless both are known.
pub fn duration(start: Option<&jiff::Timestamp>, end: Option<&jiff::Timestamp>) -> String {
    let (Some(s), Some(e)) = (start, end) else { return "-".into() };
    let secs = (e.as_millisecond() - s.as_millisecond()) as f64 / 1000.0;
    if secs < 60.0 { format!("{secs:.1}s") } else { format!("{}m{:02}s", secs as u64 / 60, secs as u64 % 60) }
}

/// "yes"/"no".
pub fn yes_no(b: bool) -> String {
    if b { "yes".into() } else { "no".into() }
}

/// A spinner on stderr for following a run or a task, when stderr is a
/// terminal and the output is not JSON.
pub fn spinner(json: bool) -> Option<indicatif::ProgressBar> {
    use std::io::IsTerminal;
    (std::io::stderr().is_terminal() && !json).then(|| {
        let b = indicatif::ProgressBar::new_spinner();
        b.set_style(
            indicatif::ProgressStyle::with_template("{spinner} {elapsed_precise} {msg}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
        );
        b.enable_steady_tick(std::time::Duration::from_millis(120));
        b
    })
}
