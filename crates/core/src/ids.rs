//! Unique, time-ordered ids taken from a [`Clock`](crate::Clock).

use std::fmt;
use std::sync::{Mutex, PoisonError};

use uuid::ContextV7;
pub use uuid::Uuid;

use crate::clock::SharedClock;

/// Makes UUIDv7 ids from a clock's time: unique, and increasing in the order they are made
/// even within one millisecond (RFC 9562's counter method), so sorting ids sorts by creation.
pub struct IdGenerator {
    clock: SharedClock,
    context: Mutex<ContextV7>,
}

impl IdGenerator {
    /// A generator reading time from `clock`.
    pub fn new(clock: SharedClock) -> Self {
        Self {
            clock,
            context: Mutex::new(ContextV7::new()),
        }
    }

    /// The next id.
    pub fn next_id(&self) -> Uuid {
        let now = self.clock.now();
        let context = self.context.lock().unwrap_or_else(PoisonError::into_inner);
        let secs = now.as_secs();
        let nanos = (now.as_nanos() % 1_000_000_000) as u32;
        Uuid::new_v7(uuid::Timestamp::from_unix(&*context, secs, nanos))
    }
}

impl fmt::Debug for IdGenerator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IdGenerator")
            .field("clock", &self.clock)
            .finish_non_exhaustive()
    }
}
