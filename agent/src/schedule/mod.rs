//! Schedules: what a SPEC means and when it is next due.
//!
//! - [`spec`]: parsing and printing of `--schedule SPEC` (`daily:mon,fri`, `after:db+2h`, ...);
//! - [`due`]: pure time arithmetic: the next due instant after a given one, in a time zone;
//! - [`span`]: the `30m` / `12h` / `2d` durations used by `after:` and job monitors;
//! - [`clock`]: the clock the scheduler reads, injectable for tests.

pub mod clock;
pub mod due;
pub mod span;
pub mod spec;

pub use clock::{Clock, SystemClock};
pub use due::{next_after, parse_time};
pub use spec::Spec;
