//! ManualClock: due timers fire in deadline order on advance; nothing fires early.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use cloudlet_core::clock::Sleep;
use cloudlet_core::{Clock, ManualClock, SystemClock, Timestamp};

/// A waker that records its id when woken, so wake order is observable without a runtime.
struct Recorder {
    id: usize,
    log: Arc<Mutex<Vec<usize>>>,
}

impl Wake for Recorder {
    fn wake(self: Arc<Self>) {
        self.log.lock().unwrap().push(self.id);
    }
}

fn poll(sleep: &mut Sleep, id: usize, log: &Arc<Mutex<Vec<usize>>>) -> Poll<()> {
    let waker = Waker::from(Arc::new(Recorder {
        id,
        log: Arc::clone(log),
    }));
    Pin::new(sleep).poll(&mut Context::from_waker(&waker))
}

#[test]
fn due_timers_fire_in_deadline_order_and_none_early() {
    let clock = ManualClock::new(Timestamp::from_secs(1_000));
    let log = Arc::new(Mutex::new(Vec::new()));
    // Made out of order; two share a deadline and keep their creation order.
    let deadlines = [30, 10, 20, 10, 50];
    let mut sleeps: Vec<Sleep> = deadlines
        .iter()
        .map(|s| clock.sleep(Duration::from_secs(*s)))
        .collect();
    for (id, sleep) in sleeps.iter_mut().enumerate() {
        assert_eq!(poll(sleep, id, &log), Poll::Pending);
    }
    assert_eq!(clock.pending_timers(), 5);

    clock.advance(Duration::from_secs(9));
    assert!(log.lock().unwrap().is_empty(), "nothing is due at 9 s");
    assert_eq!(poll(&mut sleeps[1], 1, &log), Poll::Pending);

    clock.advance(Duration::from_secs(21)); // now at 30 s: ids 1, 3 (10 s), 2 (20 s), 0 (30 s)
    assert_eq!(*log.lock().unwrap(), vec![1, 3, 2, 0]);
    for id in [1, 3, 2, 0] {
        assert_eq!(poll(&mut sleeps[id], id, &log), Poll::Ready(()));
    }
    assert_eq!(poll(&mut sleeps[4], 4, &log), Poll::Pending);
    assert_eq!(clock.now(), Timestamp::from_secs(1_030));
    assert_eq!(clock.next_deadline(), Some(Timestamp::from_secs(1_050)));

    assert_eq!(clock.advance_to_next(), Some(Timestamp::from_secs(1_050)));
    assert_eq!(*log.lock().unwrap(), vec![1, 3, 2, 0, 4]);
    assert_eq!(clock.pending_timers(), 0);
    assert_eq!(clock.advance_to_next(), None);
}

#[test]
fn a_timer_exactly_at_the_deadline_fires_and_past_deadlines_are_ready() {
    let clock = ManualClock::default();
    let log = Arc::new(Mutex::new(Vec::new()));
    let mut sleep = clock.sleep(Duration::from_millis(1500));
    assert_eq!(poll(&mut sleep, 0, &log), Poll::Pending);
    clock.advance(Duration::from_millis(1499));
    assert_eq!(poll(&mut sleep, 0, &log), Poll::Pending);
    clock.advance(Duration::from_millis(1));
    assert_eq!(poll(&mut sleep, 0, &log), Poll::Ready(()));
    let mut past = clock.sleep_until(Timestamp::EPOCH);
    assert_eq!(poll(&mut past, 1, &log), Poll::Ready(()));
    assert_eq!(clock.pending_timers(), 0);
}

#[test]
fn dropping_a_sleep_cancels_its_timer_and_time_never_goes_back() {
    let clock = ManualClock::default();
    let start = clock.now();
    let sleep = clock.sleep(Duration::from_secs(5));
    assert_eq!(clock.pending_timers(), 1);
    drop(sleep);
    assert_eq!(clock.pending_timers(), 0);
    clock.advance_to(start - Duration::from_secs(10));
    assert_eq!(clock.now(), start);
}

#[tokio::test]
async fn a_task_waiting_on_the_clock_wakes_on_advance() {
    let clock = ManualClock::default();
    let shared = clock.shared();
    let start = clock.now();
    let task = tokio::spawn(async move {
        shared.sleep(Duration::from_secs(12 * 3600)).await;
        shared.now()
    });
    clock.wait_for_timers(1).await;
    clock.advance(Duration::from_secs(12 * 3600));
    assert_eq!(task.await.unwrap(), start + Duration::from_secs(12 * 3600));
}

#[test]
fn timestamps_convert() {
    let t = Timestamp::from_millis(1_700_000_000_123);
    assert_eq!(t.as_millis(), 1_700_000_000_123);
    assert_eq!(t.as_secs(), 1_700_000_000);
    assert_eq!(Timestamp::from_system_time(t.to_system_time()), t);
    assert_eq!(Timestamp::MAX + Duration::from_secs(1), Timestamp::MAX);
    assert_eq!(Timestamp::EPOCH - Duration::from_secs(1), Timestamp::EPOCH);
    assert_eq!(
        t.saturating_duration_since(t + Duration::from_secs(3)),
        Duration::ZERO
    );
}

#[tokio::test]
async fn system_clock_reads_real_time_and_zero_sleeps_complete() {
    let before = Timestamp::from_system_time(std::time::SystemTime::now());
    let clock = SystemClock;
    assert!(clock.now() >= before);
    clock.sleep(Duration::ZERO).await;
    clock.sleep_until(Timestamp::EPOCH).await;
}
