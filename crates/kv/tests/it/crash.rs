//! Crash test: a child process runs TransactWriteItems durably and reports each
//! acknowledgement; the parent kills it with SIGKILL at random moments. After reopening, every
//! acknowledged transaction is wholly present, every transaction is all or nothing, and the
//! change stream holds exactly one record per change: none lost, none duplicated.

use std::collections::{BTreeMap, HashSet};
use std::time::SystemTime;

use cloudlet_testkit::crash::{report, run_rounds};

use cloudlet_core::{ManualClock, Store, SystemClock, Timestamp};
use cloudlet_kv::stream::EventName;
use cloudlet_kv::{
    CreateTable, Error, KeyAttribute, KvService, PutItem, Scan, ShardIteratorType, StreamViewType,
    Tables, TransactWriteItem, TransactWriteItems, UpdateItem, item,
};

const CHILD_DIR: &str = "CLOUDLET_KV_CRASH_DIR";
const ROUNDS: usize = 10;
const WORKERS: u64 = 4;

#[test]
#[ignore = "the child process of acknowledged_transactions_survive_sigkill"]
fn child_entry() {
    let Some((dir, runtime)) = cloudlet_testkit::crash::child(CHILD_DIR) else {
        return;
    };
    runtime.block_on(async move {
        let kv = KvService::new(Store::open(&dir).unwrap(), SystemClock::shared());
        let created = kv
            .create_table(
                CreateTable::new("crash", KeyAttribute::s("pk"))
                    .with_stream(StreamViewType::NEW_IMAGE),
            )
            .await;
        assert!(matches!(created, Ok(_) | Err(Error::ResourceInUse { .. })));
        let start = u64::from(std::process::id()) * 1_000_000;
        let mut tasks = Vec::new();
        for worker in 0..WORKERS {
            let kv = kv.clone();
            tasks.push(tokio::spawn(async move {
                for n in 0..100_000u64 {
                    let id = start + n * WORKERS + worker;
                    let mut actions: Vec<TransactWriteItem> = (0..3)
                        .map(|part| {
                            TransactWriteItem::Put(PutItem::new(
                                "crash",
                                item([
                                    ("pk", format!("t{id}-{part}").into()),
                                    ("txn", id.into()),
                                    ("worker", worker.into()),
                                ]),
                            ))
                        })
                        .collect();
                    actions.push(TransactWriteItem::Update(
                        UpdateItem::new(
                            "crash",
                            item([("pk", format!("counter{worker}").into())]),
                            "ADD done :one",
                        )
                        .with_value(":one", 1),
                    ));
                    kv.transact_write_items(TransactWriteItems {
                        transact_items: actions,
                        client_request_token: None,
                    })
                    .await
                    .unwrap();
                    report(&format!("acked {id}"));
                }
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_transactions_survive_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let mut acked = HashSet::new();
    run_rounds(
        "kv crash test",
        ROUNDS,
        (10, 200),
        CHILD_DIR,
        dir.path(),
        |line| {
            let Some(id) = line.strip_prefix("acked ") else {
                return false;
            };
            acked.insert(id.parse::<u64>().unwrap());
            true
        },
    );

    let clock = ManualClock::new(Timestamp::from_system_time(SystemTime::now()));
    let kv = KvService::new(Store::open(dir.path()).unwrap(), clock.shared());
    // Every item, by transaction.
    let mut parts: BTreeMap<u64, usize> = BTreeMap::new();
    let mut per_worker: BTreeMap<u64, u64> = BTreeMap::new();
    let mut counters: BTreeMap<u64, u64> = BTreeMap::new();
    let mut items = HashSet::new();
    let mut start = None;
    loop {
        let page = kv
            .scan(Scan::new("crash").with_exclusive_start_key(start))
            .await
            .unwrap();
        for found in &page.items {
            let pk = found["pk"].as_s().unwrap().to_owned();
            if let Some(worker) = pk.strip_prefix("counter") {
                let done = found["done"].as_n().unwrap().to_string().parse().unwrap();
                counters.insert(worker.parse().unwrap(), done);
            } else {
                let id: u64 = found["txn"].as_n().unwrap().to_string().parse().unwrap();
                *parts.entry(id).or_default() += 1;
                if pk.ends_with("-0") {
                    *per_worker.entry(id % WORKERS).or_default() += 1;
                }
            }
            items.insert(pk);
        }
        if page.last_evaluated_key.is_none() {
            break;
        }
        start = page.last_evaluated_key;
    }
    for id in &acked {
        assert_eq!(
            parts.get(id),
            Some(&3),
            "acknowledged transaction {id} is not wholly present"
        );
    }
    for (id, count) in &parts {
        assert_eq!(*count, 3, "transaction {id} is partly present");
    }
    assert_eq!(
        counters, per_worker,
        "each counter counts its worker's committed transactions"
    );
    // The stream: one record per change, none lost, none duplicated.
    let mut iterator = kv
        .get_shard_iterator("crash", ShardIteratorType::TRIM_HORIZON)
        .unwrap();
    let mut inserts: BTreeMap<String, usize> = BTreeMap::new();
    let mut counter_records: BTreeMap<String, usize> = BTreeMap::new();
    loop {
        let got = kv.get_records(&iterator, None).unwrap();
        if got.records.is_empty() {
            break;
        }
        for record in got.records {
            let pk = record.keys["pk"].as_s().unwrap().to_owned();
            if pk.starts_with("counter") {
                *counter_records.entry(pk).or_default() += 1;
            } else {
                assert_eq!(record.event_name, EventName::INSERT);
                *inserts.entry(pk).or_default() += 1;
            }
        }
        iterator = got.next_shard_iterator.unwrap();
    }
    let expected_inserts: BTreeMap<String, usize> = items
        .iter()
        .filter(|pk| !pk.starts_with("counter"))
        .map(|pk| (pk.clone(), 1))
        .collect();
    assert_eq!(inserts, expected_inserts);
    for (worker, done) in &counters {
        assert_eq!(
            counter_records.get(&format!("counter{worker}")).copied(),
            Some(*done as usize)
        );
    }
    assert!(!acked.is_empty());
}
