//! Ids come from the clock, are unique, and sort in the order they were made.

use std::time::Duration;

use cloudlet_core::{Clock, IdGenerator, ManualClock};

#[test]
fn ids_are_unique_and_increase_within_one_millisecond() {
    let clock = ManualClock::default();
    let ids = IdGenerator::new(clock.shared());
    let made: Vec<_> = (0..10_000).map(|_| ids.next_id()).collect();
    assert!(made.windows(2).all(|w| w[0] < w[1]), "ids must increase");
    assert!(made.iter().all(|id| id.get_version_num() == 7));
}

#[test]
fn ids_carry_the_clock_time() {
    let clock = ManualClock::default();
    let ids = IdGenerator::new(clock.shared());
    let first = ids.next_id();
    clock.advance(Duration::from_secs(3600));
    let later = ids.next_id();
    assert!(first < later);
    let millis = |id: uuid::Uuid| {
        let (secs, nanos) = id.get_timestamp().unwrap().to_unix();
        secs * 1000 + u64::from(nanos) / 1_000_000
    };
    assert_eq!(millis(first), clock.now().as_millis() - 3_600_000);
    assert_eq!(millis(later), clock.now().as_millis());
}
