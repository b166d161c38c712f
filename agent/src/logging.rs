//! The agent's log on stderr: human lines with a timestamp on a terminal or
//! in a file, and under systemd (stderr connected to the journal, which
//! `JOURNAL_STREAM` says) lines prefixed with their syslog priority (`<3>`
//! error, `<4>` warning, `<6>` info, `<7>` debug), without a timestamp
//! (journald keeps its own), so that `journalctl -p warning` shows what it
//! should.

use std::fmt;

use tracing::{Event, Level, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// Sets up the log (level from `RUST_LOG`, default info).
pub fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    if stderr_is_journal() {
        builder.with_ansi(false).event_format(Journal).init();
    } else {
        builder.with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr())).init();
    }
}

/// Prints the error that stops the agent, with the error priority under systemd.
pub fn fatal(message: &str) {
    if stderr_is_journal() {
        eprintln!("<3>hindsightd: error: {message}");
    } else {
        eprintln!("hindsightd: error: {message}");
    }
}

/// True when stderr is the stream systemd connected to the journal
/// (`JOURNAL_STREAM=DEV:INODE` matches stderr's device and inode).
fn stderr_is_journal() -> bool {
    let Ok(stream) = std::env::var("JOURNAL_STREAM") else { return false };
    let Some((dev, ino)) = stream.split_once(':') else { return false };
    let Ok(st) = rustix::fs::fstat(std::io::stderr()) else { return false };
    dev.parse::<u64>().ok() == Some(st.st_dev) && ino.parse::<u64>().ok() == Some(st.st_ino)
}

/// The syslog priority of a level.
fn priority(level: Level) -> u8 {
    match level {
        Level::ERROR => 3,
        Level::WARN => 4,
        Level::INFO => 6,
        Level::DEBUG | Level::TRACE => 7,
    }
}

/// One line per event: `<PRIORITY>target: message fields`.
struct Journal;

impl<S, N> FormatEvent<S, N> for Journal
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(&self, ctx: &FmtContext<'_, S, N>, mut writer: Writer<'_>, event: &Event<'_>) -> fmt::Result {
        let meta = event.metadata();
        write!(writer, "<{}>{}: ", priority(*meta.level()), meta.target())?;
        ctx.field_format().format_fields(writer.by_ref(), event)?;
        writeln!(writer)
    }
}
