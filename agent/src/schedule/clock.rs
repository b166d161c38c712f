//! The scheduler's clock. The daemon reads the system clock; tests drive a
//! fake one so that days pass in milliseconds.

use jiff::Timestamp;

/// Where the scheduler reads "now".
pub trait Clock: Send + Sync {
    /// The current instant.
    fn now(&self) -> Timestamp;
}

/// The system clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }
}
