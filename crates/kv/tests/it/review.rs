//! Regression tests from a code review: partitions beside NUL-extended keys, crash-interrupted
//! jobs, deleting a re-created table, stream delivery retries, long builder chains, local
//! index fetches.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use cloudlet_core::engine::{FaultyEngine, MemoryEngine};
use cloudlet_core::keys::Tuple;
use cloudlet_core::outbox::OutboxPolicy;
use cloudlet_core::{
    ChannelSink, DeliveryError, Durability, ManualClock, Message, ReadView, Sink, Store,
};
use cloudlet_kv::expr::builder::{Expressions, attr, value};
use cloudlet_kv::{
    AttributeValue, CreateTable, DeleteItem, KeyAttribute, KvService, PutItem, Query,
    SecondaryIndex, StartingPosition, Tables, item,
};

fn kv() -> KvService {
    KvService::new(Store::memory(), ManualClock::default().shared())
}

// ---------------------------------------------------------------- 1. partition prefix leak

#[tokio::test]
async fn query_stays_in_its_partition_beside_nul_extended_keys_s() {
    let kv = kv();
    kv.create_table(CreateTable::new("tbl", KeyAttribute::s("pk")))
        .await
        .unwrap();
    for pk in ["ab", "ab\u{0}x"] {
        kv.put_item(PutItem::new("tbl", item([("pk", pk.into())])))
            .await
            .unwrap();
    }
    let page = kv
        .query(Query::new("tbl", "pk = :p").with_value(":p", "ab"))
        .await
        .unwrap();
    let pks: Vec<_> = page.items.iter().map(|i| i["pk"].clone()).collect();
    assert_eq!(
        pks,
        vec![AttributeValue::from("ab")],
        "query pk = \"ab\" returned {pks:?}"
    );
}

#[tokio::test]
async fn query_stays_in_its_partition_beside_nul_extended_keys_b_with_sort_ge() {
    let kv = kv();
    kv.create_table(
        CreateTable::new("tbl", KeyAttribute::b("pk")).with_sort_key(KeyAttribute::s("sk")),
    )
    .await
    .unwrap();
    for pk in [vec![1u8, 2], vec![1u8, 2, 0, 9]] {
        kv.put_item(PutItem::new(
            "tbl",
            item([("pk", AttributeValue::b(pk)), ("sk", "m".into())]),
        ))
        .await
        .unwrap();
    }
    let page = kv
        .query(
            Query::new("tbl", "pk = :p AND sk >= :s")
                .with_value(":p", AttributeValue::b(vec![1u8, 2]))
                .with_value(":s", "a"),
        )
        .await
        .unwrap();
    assert_eq!(page.count, 1, "got {:?}", page.items);
}

#[tokio::test]
async fn gsi_query_stays_in_its_partition_beside_nul_extended_keys() {
    let kv = kv();
    kv.create_table(
        CreateTable::new("tbl", KeyAttribute::s("pk"))
            .with_global_index(SecondaryIndex::new("byG", KeyAttribute::s("g"))),
    )
    .await
    .unwrap();
    for (pk, g) in [("1", "ab"), ("2", "ab\u{0}zz")] {
        kv.put_item(PutItem::new(
            "tbl",
            item([("pk", pk.into()), ("g", g.into())]),
        ))
        .await
        .unwrap();
    }
    let page = kv
        .query(
            Query::new("tbl", "g = :g")
                .with_index("byG")
                .with_value(":g", "ab"),
        )
        .await
        .unwrap();
    assert_eq!(page.count, 1, "got {:?}", page.items);
}

// ---------------------------------------------------------------- 2. crash/restart paths

/// A crash in the middle of delete_table's item removal, then a restart inside a runtime.
#[tokio::test]
async fn restart_after_an_interrupted_delete_resumes_it_from_async_code() {
    let faulty = FaultyEngine::new(MemoryEngine::new());
    let store = Store::new(faulty.clone());
    let kv = KvService::new(store.clone(), ManualClock::default().shared());
    kv.create_table(CreateTable::new("tbl", KeyAttribute::s("pk")))
        .await
        .unwrap();
    kv.put_item(PutItem::new("tbl", item([("pk", "a".into())])))
        .await
        .unwrap();
    // The deletion commits, the first removal chunk "fails its fsync": the deletion stands
    // (it is reported done) and the removal resumes at the next start.
    faulty.fail_after(1);
    kv.delete_table("tbl").await.unwrap();
    drop(kv);
    drop(store);
    faulty.heal();
    // "Restart": a new store over the same data, from async code (as #[tokio::main] would).
    let store = Store::new(faulty.clone());
    let restarted = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        KvService::new(store.clone(), ManualClock::default().shared())
    }));
    assert!(
        restarted.is_ok(),
        "KvService::new panicked in an async context"
    );
    let kv = restarted.unwrap();
    kv.finish_pending_work().await.unwrap();
    let left = store
        .snapshot()
        .unwrap()
        .prefix("kv.items", b"", cloudlet_core::Direction::Forward)
        .unwrap()
        .count();
    assert_eq!(
        left, 0,
        "the deleted table's items are removed after the restart"
    );
}

/// Writes the drop marker directly, the state a crash after delete_table's first commit leaves.
#[tokio::test]
async fn new_does_not_panic_in_async_code_with_a_job_pending() {
    let store = Store::memory();
    store
        .write(Durability::Durable, |txn| {
            txn.put(
                "kv.jobs",
                Tuple::new().u64(7).u64(1).build(),
                serde_json::to_vec(&serde_json::json!("RemoveTable")).unwrap(),
            );
            Ok::<_, cloudlet_core::Error>(())
        })
        .await
        .unwrap();
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        KvService::new(store.clone(), ManualClock::default().shared())
    }));
    assert!(result.is_ok(), "KvService::new panicked");
}

async fn indexed_table(kv: &KvService, items: usize) {
    kv.create_table(CreateTable::new("tbl", KeyAttribute::s("pk")))
        .await
        .unwrap();
    for n in 0..items {
        kv.put_item(PutItem::new(
            "tbl",
            item([("pk", format!("p{n:04}").into()), ("g", "G".into())]),
        ))
        .await
        .unwrap();
    }
}

async fn count_by_g(kv: &KvService) -> usize {
    let mut total = 0;
    let mut start = None;
    loop {
        let page = kv
            .query(
                Query::new("tbl", "g = :g")
                    .with_index("byG")
                    .with_value(":g", "G")
                    .with_exclusive_start_key(start),
            )
            .await
            .unwrap();
        total += page.count;
        match page.last_evaluated_key {
            Some(k) => start = Some(k),
            None => return total,
        }
    }
}

/// A crash during a GSI backfill leaves the index (published as ACTIVE) missing items forever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_backfill_completes_after_a_restart() {
    let faulty = FaultyEngine::new(MemoryEngine::new());
    let store = Store::new(faulty.clone());
    let kv = KvService::new(store.clone(), ManualClock::default().shared());
    indexed_table(&kv, 600).await;
    // Publish commits; the first chunk's commit fails (it is applied, then reported failed).
    // The index exists from the publish on: the call succeeds, the backfill stays pending.
    faulty.fail_after(1);
    kv.create_global_index("tbl", SecondaryIndex::new("byG", KeyAttribute::s("g")))
        .await
        .unwrap();
    drop(kv);
    drop(store);
    faulty.heal();
    let kv = tokio::task::spawn_blocking({
        let faulty = faulty.clone();
        move || KvService::new(Store::new(faulty), ManualClock::default().shared())
    })
    .await
    .unwrap();
    kv.finish_pending_work().await.unwrap();
    assert_eq!(
        count_by_g(&kv).await,
        600,
        "the index misses items after a restart"
    );
}

/// A crash during DeleteGlobalSecondaryIndex leaves entries behind; an index re-created with
/// the same name then returns items that no longer exist.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_index_drop_leaves_no_phantoms_in_a_recreated_index() {
    let faulty = FaultyEngine::new(MemoryEngine::new());
    let store = Store::new(faulty.clone());
    let kv = KvService::new(store.clone(), ManualClock::default().shared());
    indexed_table(&kv, 600).await;
    kv.create_global_index("tbl", SecondaryIndex::new("byG", KeyAttribute::s("g")))
        .await
        .unwrap();
    faulty.fail_after(1);
    kv.delete_global_index("tbl", "byG").await.unwrap();
    drop(kv);
    drop(store);
    faulty.heal();
    let kv = tokio::task::spawn_blocking({
        let faulty = faulty.clone();
        move || KvService::new(Store::new(faulty), ManualClock::default().shared())
    })
    .await
    .unwrap();
    for n in 0..600 {
        kv.delete_item(DeleteItem::new(
            "tbl",
            item([("pk", format!("p{n:04}").into())]),
        ))
        .await
        .unwrap();
    }
    kv.create_global_index("tbl", SecondaryIndex::new("byG", KeyAttribute::s("g")))
        .await
        .unwrap();
    assert_eq!(count_by_g(&kv).await, 0, "the table is empty");
}

// ---------------------------------------------------------------- 3. builder output

#[tokio::test]
async fn builder_chain_of_70_conditions_parses() {
    let kv = kv();
    kv.create_table(CreateTable::new("tbl", KeyAttribute::s("pk")))
        .await
        .unwrap();
    let mut condition = attr("a0").ne(value(0));
    for n in 1..70 {
        condition = condition.and(attr(format!("a{n}")).ne(value(n)));
    }
    let built = Expressions::new().condition(condition).build();
    let text = built.condition.clone().unwrap();
    assert!(text.len() < 4096, "{}", text.len());
    let result = kv
        .put_item(PutItem::new("tbl", item([("pk", "x".into())])).with_expressions(built))
        .await;
    assert!(result.is_ok(), "{result:?}");
}

// ---------------------------------------------------------------- 4. stream delivery

/// A sink whose batch API answers for fewer messages than it was given (here: none, once).
#[derive(Debug)]
struct ShortSink {
    calls: AtomicUsize,
    seen: Mutex<Vec<String>>,
}

#[async_trait]
impl Sink for ShortSink {
    async fn deliver(&self, _message: Message) -> Result<(), DeliveryError> {
        unreachable!()
    }
    async fn deliver_batch(&self, messages: Vec<Message>) -> Vec<Result<(), DeliveryError>> {
        if self.calls.fetch_add(1, Ordering::SeqCst) == 0 {
            return Vec::new();
        }
        let mut seen = self.seen.lock().unwrap();
        for m in &messages {
            let event: serde_json::Value = serde_json::from_slice(&m.body).unwrap();
            seen.push(
                event["dynamodb"]["Keys"]["pk"]["S"]
                    .as_str()
                    .unwrap()
                    .to_owned(),
            );
        }
        messages.iter().map(|_| Ok(())).collect()
    }
}

#[tokio::test]
async fn delivery_retries_records_the_sink_gave_no_answer_for() {
    let clock = ManualClock::default();
    let kv = KvService::new(Store::memory(), clock.shared());
    kv.create_table(
        CreateTable::new("tbl", KeyAttribute::s("pk"))
            .with_stream(cloudlet_kv::StreamViewType::KEYS_ONLY),
    )
    .await
    .unwrap();
    for pk in ["a", "b"] {
        kv.put_item(PutItem::new("tbl", item([("pk", pk.into())])))
            .await
            .unwrap();
    }
    let sink = Arc::new(ShortSink {
        calls: AtomicUsize::new(0),
        seen: Mutex::new(Vec::new()),
    });
    let task = kv
        .subscribe_stream(
            "tbl",
            "s",
            StartingPosition::TRIM_HORIZON,
            sink.clone(),
            OutboxPolicy::default(),
        )
        .await
        .unwrap();
    for _ in 0..50 {
        tokio::task::yield_now().await;
    }
    kv.put_item(PutItem::new("tbl", item([("pk", "c".into())])))
        .await
        .unwrap();
    for _ in 0..200 {
        if !sink.seen.lock().unwrap().is_empty() && sink.calls.load(Ordering::SeqCst) >= 2 {
            break;
        }
        tokio::select! {
            () = clock.wait_for_timers(1) => { clock.advance_to_next(); }
            () = tokio::time::sleep(Duration::from_millis(5)) => {}
        }
    }
    task.shutdown().await;
    let seen = sink.seen.lock().unwrap().clone();
    assert_eq!(
        seen,
        vec!["a", "b", "c"],
        "records a and b were never delivered"
    );
}

/// Fails a on the first call; on the second, a succeeds and b fails once.
#[derive(Debug)]
struct Scripted {
    calls: AtomicUsize,
}

#[async_trait]
impl Sink for Scripted {
    async fn deliver(&self, _message: Message) -> Result<(), DeliveryError> {
        unreachable!()
    }
    async fn deliver_batch(&self, messages: Vec<Message>) -> Vec<Result<(), DeliveryError>> {
        let call = self.calls.fetch_add(1, Ordering::SeqCst);
        messages
            .iter()
            .enumerate()
            .map(|(i, _)| match (call, i) {
                (0, _) => Err(DeliveryError::unavailable("a down")),
                (1, 0) => Ok(()),
                (1, _) => Err(DeliveryError::unavailable("b down once")),
                _ => Ok(()),
            })
            .collect()
    }
}

#[tokio::test]
async fn delivery_attempts_restart_for_each_record() {
    let clock = ManualClock::default();
    let kv = KvService::new(Store::memory(), clock.shared());
    kv.create_table(
        CreateTable::new("tbl", KeyAttribute::s("pk"))
            .with_stream(cloudlet_kv::StreamViewType::KEYS_ONLY),
    )
    .await
    .unwrap();
    for pk in ["a", "b"] {
        kv.put_item(PutItem::new("tbl", item([("pk", pk.into())])))
            .await
            .unwrap();
    }
    let (dead, mut dead_letters) = ChannelSink::new();
    let sink = Arc::new(Scripted {
        calls: AtomicUsize::new(0),
    });
    let task = kv
        .subscribe_stream(
            "tbl",
            "s",
            StartingPosition::TRIM_HORIZON,
            sink.clone(),
            OutboxPolicy::default()
                .with_max_attempts(2)
                .with_dead_letter(Arc::new(dead)),
        )
        .await
        .unwrap();
    for _ in 0..20 {
        if sink.calls.load(Ordering::SeqCst) >= 3 {
            break;
        }
        tokio::select! {
            () = clock.wait_for_timers(1) => { clock.advance_to_next(); }
            () = tokio::time::sleep(Duration::from_millis(20)) => {}
        }
    }
    task.shutdown().await;
    assert!(
        dead_letters.try_recv().is_err(),
        "b was dead-lettered after failing once (max_attempts = 2)"
    );
}

// ---------------------------------------------------------------- 5. delete_table by name only

/// delete_table looks the table up (id 1), then deletes whatever table has that name when its
/// transaction runs. Two services stand in for two concurrent requests on one service (the
/// window is the full-table describe() between the lookup and the transaction).
#[tokio::test]
async fn delete_table_does_not_delete_a_recreated_table() {
    use cloudlet_core::ReadView;
    let store = Store::memory();
    let a = KvService::new(store.clone(), ManualClock::default().shared());
    let b = KvService::new(store.clone(), ManualClock::default().shared());
    a.create_table(CreateTable::new("tbl", KeyAttribute::s("pk")))
        .await
        .unwrap();
    a.describe_table("tbl").await.unwrap(); // a now holds table id 1
    b.delete_table("tbl").await.unwrap();
    b.create_table(CreateTable::new("tbl", KeyAttribute::s("pk")))
        .await
        .unwrap(); // id 2
    b.put_item(PutItem::new("tbl", item([("pk", "x".into())])))
        .await
        .unwrap();
    // a's stale request: meant for table 1, which is already gone.
    let deleted = a.delete_table("tbl").await;
    let snapshot = store.snapshot().unwrap();
    let live = snapshot
        .prefix("kv.live", b"", cloudlet_core::Direction::Forward)
        .unwrap()
        .count();
    let tables = snapshot
        .prefix("kv.tables", b"", cloudlet_core::Direction::Forward)
        .unwrap()
        .count();
    let items = snapshot
        .prefix("kv.items", b"", cloudlet_core::Direction::Forward)
        .unwrap()
        .count();
    // b still writes to the table nobody can see.
    let put = b
        .put_item(PutItem::new("tbl", item([("pk", "y".into())])))
        .await;
    assert!(
        deleted.is_err() && live == tables,
        "delete_table({deleted:?}) left {live} live ids for {tables} tables, {items} orphaned items; later put: {put:?}"
    );
}

#[tokio::test]
async fn lsi_filter_and_projection_fetch_unprojected_attributes() {
    use cloudlet_kv::Projection;
    let kv = kv();
    kv.create_table(
        CreateTable::new("tbl", KeyAttribute::s("pk"))
            .with_sort_key(KeyAttribute::s("sk"))
            .with_local_index(
                SecondaryIndex::new("byL", KeyAttribute::s("pk"))
                    .with_sort_key(KeyAttribute::s("l"))
                    .with_projection(Projection::KeysOnly),
            ),
    )
    .await
    .unwrap();
    kv.put_item(PutItem::new(
        "tbl",
        item([
            ("pk", "p".into()),
            ("sk", "s".into()),
            ("l", "l".into()),
            ("x", 1.into()),
        ]),
    ))
    .await
    .unwrap();
    let filtered = kv
        .query(
            Query::new("tbl", "pk = :p")
                .with_index("byL")
                .with_filter("x = :one")
                .with_value(":p", "p")
                .with_value(":one", 1),
        )
        .await
        .unwrap();
    let projected = kv
        .query(
            Query::new("tbl", "pk = :p")
                .with_index("byL")
                .with_projection("x")
                .with_value(":p", "p"),
        )
        .await
        .unwrap();
    assert!(
        filtered.count == 1 && projected.items.first().is_some_and(|i| i.contains_key("x")),
        "filter count {}, projection {:?}",
        filtered.count,
        projected.items
    );
}

#[derive(Debug)]
struct AlwaysDown {
    calls: AtomicUsize,
}

#[async_trait]
impl Sink for AlwaysDown {
    async fn deliver(&self, _message: Message) -> Result<(), DeliveryError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        Err(DeliveryError::unavailable("down"))
    }
}

/// New writes to the table must not cut a retry's backoff short (and use up its attempts).
#[tokio::test]
async fn writes_do_not_cut_a_delivery_backoff_short() {
    let clock = ManualClock::default();
    let kv = KvService::new(Store::memory(), clock.shared());
    kv.create_table(
        CreateTable::new("tbl", KeyAttribute::s("pk"))
            .with_stream(cloudlet_kv::StreamViewType::KEYS_ONLY),
    )
    .await
    .unwrap();
    kv.put_item(PutItem::new("tbl", item([("pk", "a".into())])))
        .await
        .unwrap();
    let (dead, mut dead_letters) = ChannelSink::new();
    let sink = Arc::new(AlwaysDown {
        calls: AtomicUsize::new(0),
    });
    let task = kv
        .subscribe_stream(
            "tbl",
            "s",
            StartingPosition::TRIM_HORIZON,
            sink.clone(),
            OutboxPolicy::default()
                .with_max_attempts(3)
                .with_backoff(Duration::from_secs(3600), Duration::from_secs(3600), 1)
                .with_batch_size(1)
                .with_dead_letter(Arc::new(dead)),
        )
        .await
        .unwrap();
    // The first attempt fails and the worker sleeps for its backoff.
    clock.wait_for_timers(1).await;
    for i in 0..5 {
        kv.put_item(PutItem::new("tbl", item([("pk", format!("w{i}").into())])))
            .await
            .unwrap();
        for _ in 0..20 {
            tokio::task::yield_now().await;
        }
    }
    assert_eq!(
        sink.calls.load(Ordering::SeqCst),
        1,
        "retried before the backoff passed"
    );
    assert!(
        dead_letters.try_recv().is_err(),
        "dead-lettered without the clock moving"
    );
    // After the backoff, it is retried.
    clock.advance(Duration::from_secs(3600));
    clock.wait_for_timers(1).await;
    assert_eq!(sink.calls.load(Ordering::SeqCst), 2);
    task.shutdown().await;
}
