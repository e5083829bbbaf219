//! The outbox: delivery after commit, retries with backoff on the clock, dead letters, and
//! delivery of what was pending before a restart.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use cloudlet_core::outbox::{Outbox, OutboxPolicy};
use cloudlet_core::{
    ChannelSink, DeliveryError, Durability, Error, ManualClock, Message, Sink, Store,
};
use tokio::sync::mpsc;

use crate::support::Harness;

/// A sink that answers from a script (then succeeds) and reports every attempt.
#[derive(Debug)]
struct ScriptedSink {
    script: Mutex<VecDeque<Result<(), DeliveryError>>>,
    attempts: mpsc::UnboundedSender<String>,
}

impl ScriptedSink {
    fn new(script: Vec<Result<(), DeliveryError>>) -> (Arc<Self>, mpsc::UnboundedReceiver<String>) {
        let (attempts, rx) = mpsc::unbounded_channel();
        (
            Arc::new(Self {
                script: Mutex::new(script.into()),
                attempts,
            }),
            rx,
        )
    }
}

#[async_trait]
impl Sink for ScriptedSink {
    async fn deliver(&self, message: Message) -> Result<(), DeliveryError> {
        self.attempts
            .send(String::from_utf8(message.body.to_vec()).unwrap())
            .unwrap();
        self.script.lock().unwrap().pop_front().unwrap_or(Ok(()))
    }
}

async fn push(store: &Store, outbox: &Outbox, bodies: &[&str]) {
    let (outbox, bodies): (Outbox, Vec<String>) = (
        outbox.clone(),
        bodies.iter().map(|s| s.to_string()).collect(),
    );
    store
        .write(Durability::Durable, move |t| {
            for body in bodies {
                t.put("data", body.clone(), "x");
                outbox.push(t, &Message::new(body))?;
            }
            Ok::<_, Error>(())
        })
        .await
        .unwrap();
}

fn body(m: Message) -> String {
    String::from_utf8(m.body.to_vec()).unwrap()
}

#[tokio::test]
async fn delivers_in_order_and_removes_after_acceptance() {
    let h = Harness::memory();
    let clock = ManualClock::default();
    let outbox = Outbox::new("events");
    let (sink, mut rx) = ChannelSink::new();
    let task = outbox.start(
        h.store.clone(),
        clock.shared(),
        Arc::new(sink),
        OutboxPolicy::default().with_batch_size(3),
    );
    push(&h.store, &outbox, &["1", "2", "3", "4", "5"]).await;
    push(&h.store, &outbox, &["6"]).await;
    let mut got = Vec::new();
    for _ in 0..6 {
        got.push(body(rx.recv().await.unwrap()));
    }
    assert_eq!(got, ["1", "2", "3", "4", "5", "6"]);
    task.shutdown().await;
    assert_eq!(outbox.pending(&h.store.snapshot().unwrap()).unwrap(), 0);
    assert!(
        rx.try_recv().is_err(),
        "each message is delivered once when all goes well"
    );
}

#[tokio::test]
async fn a_failed_transaction_emits_nothing() {
    let h = Harness::memory();
    let outbox = Outbox::new("events");
    let o = outbox.clone();
    let _ = h
        .store
        .write(Durability::Durable, move |t| {
            o.push(t, &Message::new("never"))?;
            Err::<(), _>(Error::invalid("x", "rolled back"))
        })
        .await;
    assert_eq!(outbox.pending(&h.store.snapshot().unwrap()).unwrap(), 0);
}

#[tokio::test]
async fn retries_with_backoff_on_the_clock() {
    let h = Harness::memory();
    let clock = ManualClock::default();
    let outbox = Outbox::new("events");
    let fail = || Err(DeliveryError::unavailable("down"));
    let (sink, mut attempts) = ScriptedSink::new(vec![fail(), fail(), fail()]);
    let policy =
        OutboxPolicy::default().with_backoff(Duration::from_secs(1), Duration::from_secs(3), 2);
    let task = outbox.start(h.store.clone(), clock.shared(), sink, policy);
    push(&h.store, &outbox, &["m"]).await;
    assert_eq!(attempts.recv().await.unwrap(), "m"); // attempt 1 fails: wait 1 s

    for wait in [1u64, 2, 3] {
        // Capped at 3 s: waits are 1 s, 2 s, then 3 s rather than 4 s.
        clock.wait_for_timers(1).await;
        clock.advance(Duration::from_millis(wait * 1000 - 1));
        clock.wait_for_timers(1).await;
        assert!(
            attempts.try_recv().is_err(),
            "no attempt before the backoff of {wait} s is over"
        );
        clock.advance(Duration::from_millis(1));
        assert_eq!(attempts.recv().await.unwrap(), "m");
    }
    // The fourth attempt succeeded: nothing is left and no timer is set.
    clock.wait_for_timers(0).await;
    task.shutdown().await;
    assert_eq!(outbox.pending(&h.store.snapshot().unwrap()).unwrap(), 0);
    assert!(attempts.try_recv().is_err());
}

#[tokio::test]
async fn dead_letters_after_max_attempts_and_rejections_at_once() {
    let h = Harness::memory();
    let clock = ManualClock::default();
    let outbox = Outbox::new("events");
    let down = || Err(DeliveryError::unavailable("down"));
    let (sink, mut attempts) = ScriptedSink::new(vec![
        Err(DeliveryError::rejected("too big")),
        down(),
        down(),
        down(),
    ]);
    let (dead, mut dead_rx) = ChannelSink::new();
    let policy = OutboxPolicy::default()
        .with_max_attempts(3)
        .with_batch_size(1)
        .with_dead_letter(Arc::new(dead));
    let task = outbox.start(h.store.clone(), clock.shared(), sink, policy);
    push(&h.store, &outbox, &["rejected", "flaky"]).await;
    assert_eq!(attempts.recv().await.unwrap(), "rejected");
    assert_eq!(body(dead_rx.recv().await.unwrap()), "rejected");
    assert_eq!(attempts.recv().await.unwrap(), "flaky");
    for _ in 0..2 {
        clock.wait_for_timers(1).await;
        clock.advance_to_next();
        assert_eq!(attempts.recv().await.unwrap(), "flaky");
    }
    assert_eq!(body(dead_rx.recv().await.unwrap()), "flaky");
    task.shutdown().await;
    assert_eq!(outbox.pending(&h.store.snapshot().unwrap()).unwrap(), 0);
}

#[tokio::test]
async fn ordered_delivery_holds_back_later_messages() {
    let h = Harness::memory();
    let clock = ManualClock::default();
    let outbox = Outbox::new("fifo");
    let (sink, mut attempts) = ScriptedSink::new(vec![Err(DeliveryError::unavailable("down"))]);
    let task = outbox.start(
        h.store.clone(),
        clock.shared(),
        sink,
        OutboxPolicy::default().ordered(),
    );
    push(&h.store, &outbox, &["first", "second"]).await;
    assert_eq!(attempts.recv().await.unwrap(), "first");
    clock.wait_for_timers(1).await;
    assert!(attempts.try_recv().is_err(), "second waits behind first");
    clock.advance_to_next();
    assert_eq!(attempts.recv().await.unwrap(), "first");
    assert_eq!(attempts.recv().await.unwrap(), "second");
    task.shutdown().await;
}

#[tokio::test]
async fn ordered_delivery_holds_back_only_the_failing_group() {
    let h = Harness::memory();
    let clock = ManualClock::default();
    let outbox = Outbox::new("fifo-groups");
    // The first delivery (a1) fails; everything after succeeds.
    let (sink, mut attempts) = ScriptedSink::new(vec![Err(DeliveryError::unavailable("down"))]);
    let task = outbox.start(
        h.store.clone(),
        clock.shared(),
        sink,
        OutboxPolicy::default().ordered().with_batch_size(1),
    );
    let pushed = outbox.clone();
    h.store
        .write(Durability::Durable, move |t| {
            for (group, body) in [("a", "a1"), ("a", "a2"), ("b", "b1"), ("b", "b2")] {
                pushed.push(t, &Message::new(body).with_group_id(group))?;
            }
            Ok::<_, Error>(())
        })
        .await
        .unwrap();
    // a1 fails and waits for its retry; group b goes on meanwhile, in order; a2 waits.
    assert_eq!(attempts.recv().await.unwrap(), "a1");
    assert_eq!(attempts.recv().await.unwrap(), "b1");
    assert_eq!(attempts.recv().await.unwrap(), "b2");
    clock.wait_for_timers(1).await;
    assert!(attempts.try_recv().is_err(), "a2 waits behind a1");
    clock.advance_to_next();
    assert_eq!(attempts.recv().await.unwrap(), "a1");
    assert_eq!(attempts.recv().await.unwrap(), "a2");
    task.shutdown().await;
    assert_eq!(outbox.pending(&h.store.snapshot().unwrap()).unwrap(), 0);
}

#[tokio::test]
async fn pending_messages_are_delivered_after_a_restart() {
    let h = Harness::redb();
    let path = h.path().unwrap();
    let outbox = Outbox::new("events");
    push(&h.store, &outbox, &["a", "b"]).await;
    drop(h.store);

    let store = Store::open(&path).unwrap();
    assert_eq!(outbox.pending(&store.snapshot().unwrap()).unwrap(), 2);
    let (sink, mut rx) = ChannelSink::new();
    let task = outbox.start(
        store.clone(),
        ManualClock::default().shared(),
        Arc::new(sink),
        OutboxPolicy::default(),
    );
    assert_eq!(body(rx.recv().await.unwrap()), "a");
    assert_eq!(body(rx.recv().await.unwrap()), "b");
    task.shutdown().await;
    assert_eq!(outbox.pending(&store.snapshot().unwrap()).unwrap(), 0);
}

/// A sink whose batch answer is missing results for some messages.
#[derive(Debug)]
struct ForgetfulSink {
    first: std::sync::atomic::AtomicBool,
    attempts: mpsc::UnboundedSender<String>,
}

#[async_trait]
impl Sink for ForgetfulSink {
    async fn deliver(&self, message: Message) -> Result<(), DeliveryError> {
        self.attempts.send(body(message)).unwrap();
        Ok(())
    }

    async fn deliver_batch(&self, messages: Vec<Message>) -> Vec<Result<(), DeliveryError>> {
        if self.first.swap(false, std::sync::atomic::Ordering::SeqCst) {
            for m in messages {
                self.attempts.send(format!("forgot {}", body(m))).unwrap();
            }
            return Vec::new();
        }
        let mut results = Vec::new();
        for m in messages {
            results.push(self.deliver(m).await);
        }
        results
    }
}

#[tokio::test]
async fn a_missing_result_counts_as_a_failure_and_is_retried_after_backoff() {
    let h = Harness::memory();
    let clock = ManualClock::default();
    let outbox = Outbox::new("events");
    let (attempts, mut rx) = mpsc::unbounded_channel();
    let sink = Arc::new(ForgetfulSink {
        first: true.into(),
        attempts,
    });
    let task = outbox.start(
        h.store.clone(),
        clock.shared(),
        sink,
        OutboxPolicy::default(),
    );
    push(&h.store, &outbox, &["m"]).await;
    assert_eq!(rx.recv().await.unwrap(), "forgot m");
    clock.wait_for_timers(1).await;
    assert!(rx.try_recv().is_err(), "no redelivery before the backoff");
    clock.advance_to_next();
    assert_eq!(rx.recv().await.unwrap(), "m");
    task.shutdown().await;
    assert_eq!(outbox.pending(&h.store.snapshot().unwrap()).unwrap(), 0);
}

#[tokio::test]
async fn the_worker_stops_when_the_store_is_poisoned() {
    use cloudlet_core::engine::{FaultyEngine, MemoryEngine};
    let engine = FaultyEngine::new(MemoryEngine::new());
    let store = Store::new(engine.clone());
    let clock = ManualClock::default();
    let outbox = Outbox::new("events");
    let (sink, mut attempts) = ScriptedSink::new(vec![]);
    push(&store, &outbox, &["m"]).await;
    engine.fail_after(0);
    let task = outbox.start(store.clone(), clock.shared(), sink, OutboxPolicy::default());
    assert_eq!(attempts.recv().await.unwrap(), "m");
    // Recording the delivery fails and poisons the store: the worker stops rather than
    // delivering the same message again and again.
    while !task.is_finished() {
        tokio::task::yield_now().await;
    }
    assert!(store.is_poisoned());
    clock.advance(Duration::from_secs(3600));
    assert!(attempts.try_recv().is_err());
}

#[tokio::test]
async fn backlog_in_backoff_does_not_hold_back_new_messages() {
    let h = Harness::memory();
    let clock = ManualClock::default();
    let outbox = Outbox::new("events");
    // The first 1,500 deliveries fail; they all wait in backoff while a new message goes through.
    let script = (0..1500)
        .map(|_| Err(DeliveryError::unavailable("down")))
        .collect();
    let (sink, mut attempts) = ScriptedSink::new(script);
    let bodies: Vec<String> = (0..1500).map(|i| format!("old-{i}")).collect();
    let refs: Vec<&str> = bodies.iter().map(String::as_str).collect();
    push(&h.store, &outbox, &refs).await;
    let task = outbox.start(
        h.store.clone(),
        clock.shared(),
        sink,
        OutboxPolicy::default().with_batch_size(100),
    );
    for _ in 0..1500 {
        attempts.recv().await.unwrap();
    }
    clock.wait_for_timers(1).await;
    push(&h.store, &outbox, &["new"]).await;
    assert_eq!(attempts.recv().await.unwrap(), "new");
    task.shutdown().await;
    assert_eq!(outbox.pending(&h.store.snapshot().unwrap()).unwrap(), 1500);
}

/// A sink that fails the attempts its script says to, and logs every attempt.
#[derive(Debug, Default)]
struct LoggingSink {
    script: Mutex<VecDeque<bool>>,
    log: Mutex<Vec<(String, bool)>>,
}

#[async_trait]
impl Sink for LoggingSink {
    async fn deliver(&self, message: Message) -> Result<(), DeliveryError> {
        let ok = self.script.lock().unwrap().pop_front().unwrap_or(true);
        self.log
            .lock()
            .unwrap()
            .push((String::from_utf8(message.body.to_vec()).unwrap(), ok));
        if ok {
            Ok(())
        } else {
            Err(DeliveryError::unavailable("scripted failure"))
        }
    }
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(32),
        ..proptest::prelude::ProptestConfig::default()
    })]

    /// An ordered outbox, whatever the groups, failures and batch size: every message is
    /// delivered once, each group in push order, and no message of a group is tried while an
    /// earlier one of its group is still pending.
    #[test]
    fn ordered_delivery_keeps_each_group_in_order(
        groups in proptest::collection::vec(proptest::option::of(0u8..3), 1..12),
        failures in proptest::collection::vec(proptest::bool::weighted(0.3), 0..30),
        batch in 1usize..4,
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let log = runtime.block_on(async {
            let store = Store::memory();
            let clock = ManualClock::default();
            let outbox = Outbox::new("prop");
            let sink = Arc::new(LoggingSink {
                script: Mutex::new(failures.iter().map(|fail| !fail).collect()),
                log: Mutex::default(),
            });
            let task = outbox.start(
                store.clone(),
                clock.shared(),
                sink.clone(),
                OutboxPolicy::default()
                    .ordered()
                    .with_batch_size(batch)
                    .with_backoff(Duration::from_secs(1), Duration::from_secs(1), 1),
            );
            let pushed = outbox.clone();
            let messages = groups.clone();
            store
                .write(Durability::Durable, move |t| {
                    for (i, group) in messages.iter().enumerate() {
                        let mut message = Message::new(format!("{i}"));
                        if let Some(g) = group {
                            message = message.with_group_id(format!("g{g}"));
                        }
                        pushed.push(t, &message)?;
                    }
                    Ok::<_, Error>(())
                })
                .await
                .unwrap();
            let delivered = || sink.log.lock().unwrap().iter().filter(|(_, ok)| *ok).count();
            let mut spins = 0u32;
            while delivered() < groups.len() {
                tokio::task::yield_now().await;
                spins += 1;
                if spins.is_multiple_of(32) {
                    clock.advance_to_next();
                }
                assert!(spins < 1_000_000, "deliveries stalled: {:?}", sink.log.lock().unwrap());
            }
            task.shutdown().await;
            sink.log.lock().unwrap().clone()
        });
        let group_of = |body: &str| groups[body.parse::<usize>().unwrap()];
        let mut done = vec![false; groups.len()];
        for (body, ok) in &log {
            let i: usize = body.parse().unwrap();
            // Every earlier message of its group was delivered before this attempt.
            for earlier in 0..i {
                if groups[earlier] == group_of(body) {
                    proptest::prop_assert!(done[earlier], "{body} tried before {earlier}: {log:?}");
                }
            }
            if *ok {
                proptest::prop_assert!(!done[i], "{body} delivered twice: {log:?}");
                done[i] = true;
            }
        }
        proptest::prop_assert!(done.iter().all(|d| *d));
    }
}

/// A sink that clears its own outbox while a delivery is under way, then rejects it.
#[derive(Debug)]
struct ClearingSink {
    store: Store,
    outbox: Outbox,
    called: tokio::sync::Notify,
}

#[async_trait]
impl Sink for ClearingSink {
    async fn deliver(&self, _message: Message) -> Result<(), DeliveryError> {
        self.outbox.clear(&self.store).await.unwrap();
        self.called.notify_one();
        Err(DeliveryError::rejected("gone"))
    }
}

#[tokio::test]
async fn a_message_cleared_during_its_delivery_is_not_dead_lettered() {
    let h = Harness::memory();
    let outbox = Outbox::new("cleared");
    let (dead, mut dead_rx) = ChannelSink::new();
    let sink = Arc::new(ClearingSink {
        store: h.store.clone(),
        outbox: outbox.clone(),
        called: tokio::sync::Notify::new(),
    });
    let task = outbox.start(
        h.store.clone(),
        ManualClock::default().shared(),
        sink.clone(),
        OutboxPolicy::default().with_dead_letter(Arc::new(dead)),
    );
    push(&h.store, &outbox, &["doomed", "later"]).await;
    // Both were cleared by the first delivery; neither reaches the dead-letter sink, and
    // nothing of the outbox is left. Shutting down lets the step under way finish.
    sink.called.notified().await;
    task.shutdown().await;
    assert!(dead_rx.try_recv().is_err(), "nothing was dead-lettered");
    assert_eq!(outbox.pending(&h.store.snapshot().unwrap()).unwrap(), 0);
}
