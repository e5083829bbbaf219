//! Unique, time-ordered ids taken from a [`Clock`](crate::Clock).

use std::fmt;
use std::sync::{Mutex, PoisonError};

pub use uuid::Uuid;

use crate::clock::SharedClock;

/// Makes UUIDv7 ids from a clock's time: unique, and increasing in the order they are made
/// even within one millisecond (RFC 9562's counter method), so sorting ids sorts by creation.
///
/// Randomness is drawn from the system once, to seed a generator; each id then costs no
/// system call.
pub struct IdGenerator {
    clock: SharedClock,
    state: Mutex<State>,
}

struct State {
    /// The millisecond of the last id.
    millis: u64,
    /// The counter within that millisecond (62 bits used, started at a random point).
    counter: u64,
    /// 12 random bits for the millisecond, above the counter.
    prefix: u16,
    /// xorshift64* state.
    random: u64,
}

impl State {
    fn next_random(&mut self) -> u64 {
        self.random ^= self.random >> 12;
        self.random ^= self.random << 25;
        self.random ^= self.random >> 27;
        self.random.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

impl IdGenerator {
    /// A generator reading time from `clock`.
    pub fn new(clock: SharedClock) -> Self {
        let seed = Uuid::now_v7().as_u128();
        let random = (seed as u64) ^ ((seed >> 64) as u64) | 1;
        Self {
            clock,
            state: Mutex::new(State {
                millis: 0,
                counter: 0,
                prefix: 0,
                random,
            }),
        }
    }

    /// The next id.
    pub fn next_id(&self) -> Uuid {
        let millis = self.clock.now().as_millis();
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if millis > state.millis {
            // A new millisecond: a fresh random prefix, and a counter started low enough in
            // its 62 bits that it cannot run out within the millisecond.
            let random = state.next_random();
            state.millis = millis;
            state.prefix = (random >> 52) as u16 & 0x0FFF;
            state.counter = (random & ((1 << 40) - 1)) << 8;
        } else {
            // The same millisecond (or a clock that went back): keep counting, so ids still
            // increase.
            state.counter += 1;
        }
        let mut bytes = [0u8; 10];
        bytes[..2].copy_from_slice(&state.prefix.to_be_bytes());
        bytes[2..].copy_from_slice(&state.counter.to_be_bytes());
        uuid::Builder::from_unix_timestamp_millis(state.millis, &bytes).into_uuid()
    }
}

impl fmt::Debug for IdGenerator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IdGenerator")
            .field("clock", &self.clock)
            .finish_non_exhaustive()
    }
}
