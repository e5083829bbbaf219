//! kv benchmarks: in-memory GetItem and PutItem, durable PutItem with 32 writers, durable
//! TransactWriteItems of 10 items, and the latency of a 100-item Query on a 1,000,000-item
//! table. Items are about 1 KiB. `cargo bench --bench kv`.
#![allow(clippy::unwrap_used, missing_docs)]

mod support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use cloudlet::kv::{
    AttributeValue, CreateTable, GetItem, Item, KeyAttribute, KvService, PutItem, Query, Tables,
    TransactWriteItem, TransactWriteItems, WriteRequest, item,
};
use cloudlet::{Store, SystemClock};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use support::{concurrently, runtime};

/// An item of about 1 KiB.
fn payload_item(pk: u64, sk: u64) -> Item {
    item([
        ("pk", format!("user#{pk:08}").into()),
        ("sk", sk.into()),
        ("name", format!("name {pk}").into()),
        ("score", (pk * 7 % 1000).into()),
        ("active", true.into()),
        ("body", AttributeValue::s("x".repeat(960))),
    ])
}

fn key(pk: u64, sk: u64) -> Item {
    item([("pk", format!("user#{pk:08}").into()), ("sk", sk.into())])
}

async fn table(kv: &KvService) {
    kv.create_table(
        CreateTable::new("bench", KeyAttribute::s("pk")).with_sort_key(KeyAttribute::n("sk")),
    )
    .await
    .unwrap();
}

async fn load(kv: &KvService, partitions: u64, per_partition: u64) {
    let mut batch = Vec::new();
    for pk in 0..partitions {
        for sk in 0..per_partition {
            batch.push(WriteRequest::Put {
                item: payload_item(pk, sk),
            });
            if batch.len() == 25 {
                kv.batch_write_item(BTreeMap::from([(
                    "bench".to_owned(),
                    std::mem::take(&mut batch),
                )]))
                .await
                .unwrap();
            }
        }
    }
    if !batch.is_empty() {
        kv.batch_write_item(BTreeMap::from([("bench".to_owned(), batch)]))
            .await
            .unwrap();
    }
}

/// GetItem on 100,000 items in memory, from two tasks (the two cores), 1,000 gets each per
/// iteration.
fn memory_get(c: &mut Criterion) {
    let rt = runtime();
    let kv = KvService::new(Store::memory(), SystemClock::shared());
    rt.block_on(async {
        table(&kv).await;
        load(&kv, 10_000, 10).await;
    });
    let mut group = c.benchmark_group("kv_memory");
    group.throughput(Throughput::Elements(2_000));
    group.bench_function("get_item_2_tasks", |b| {
        b.to_async(&rt).iter(|| {
            let kv = kv.clone();
            async move {
                let tasks: Vec<_> = (0..2u64)
                    .map(|t| {
                        let kv = kv.clone();
                        tokio::spawn(async move {
                            for i in 0..1_000u64 {
                                let n = (i * 7_919 + t * 104_729) % 100_000;
                                let got = kv
                                    .get_item(GetItem::new("bench", key(n / 10, n % 10)))
                                    .await
                                    .unwrap();
                                assert!(got.is_some());
                            }
                        })
                    })
                    .collect();
                for task in tasks {
                    task.await.unwrap();
                }
            }
        });
    });
    group.throughput(Throughput::Elements(2_000));
    group.bench_function("put_item_2_tasks", |b| {
        let counter = AtomicU64::new(0);
        b.to_async(&rt).iter(|| {
            let kv = kv.clone();
            let base = counter.fetch_add(2_000, Ordering::Relaxed);
            async move {
                let tasks: Vec<_> = (0..2u64)
                    .map(|t| {
                        let kv = kv.clone();
                        tokio::spawn(async move {
                            for i in 0..1_000u64 {
                                let n = (base + t * 1_000 + i) % 200_000;
                                kv.put_item(PutItem::new("bench", payload_item(n / 10, n % 10)))
                                    .await
                                    .unwrap();
                            }
                        })
                    })
                    .collect();
                for task in tasks {
                    task.await.unwrap();
                }
            }
        });
    });
    group.finish();
}

/// Durable PutItem from 32 concurrent writers; durable TransactWriteItems of 10 puts from 32.
fn durable_writes(c: &mut Criterion) {
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    let kv = KvService::new(Store::open(dir.path()).unwrap(), SystemClock::shared());
    rt.block_on(table(&kv));
    let counter = Arc::new(AtomicU64::new(0));
    let mut group = c.benchmark_group("kv_durable");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(15));
    const PUTS: u64 = 3_200;
    group.throughput(Throughput::Elements(PUTS));
    group.bench_function("put_item_32_writers", |b| {
        b.iter_custom(|iters| {
            let (kv, counter) = (kv.clone(), counter.clone());
            rt.block_on(concurrently(32, iters * PUTS, move |_| {
                let kv = kv.clone();
                let n = counter.fetch_add(1, Ordering::Relaxed);
                async move {
                    kv.put_item(PutItem::new("bench", payload_item(n / 10, n % 10)))
                        .await
                        .unwrap();
                }
            }))
        });
    });
    const TRANSACTIONS: u64 = 640;
    group.throughput(Throughput::Elements(TRANSACTIONS));
    group.bench_function("transact_write_10_items_32_writers", |b| {
        b.iter_custom(|iters| {
            let (kv, counter) = (kv.clone(), counter.clone());
            rt.block_on(concurrently(32, iters * TRANSACTIONS, move |_| {
                let kv = kv.clone();
                let n = counter.fetch_add(10, Ordering::Relaxed);
                async move {
                    let actions = (0..10)
                        .map(|i| {
                            TransactWriteItem::Put(PutItem::new(
                                "bench",
                                payload_item((n + i) / 10, (n + i) % 10),
                            ))
                        })
                        .collect();
                    kv.transact_write_items(TransactWriteItems {
                        transact_items: actions,
                        client_request_token: None,
                    })
                    .await
                    .unwrap();
                }
            }))
        });
    });
    group.finish();
}

/// A 100-item Query (one partition) on a 1,000,000-item table in memory: p50 and p99.
fn query_latency(c: &mut Criterion) {
    let rt = runtime();
    let kv = KvService::new(Store::memory(), SystemClock::shared());
    rt.block_on(async {
        table(&kv).await;
        load(&kv, 10_000, 100).await;
    });
    let mut samples = Vec::new();
    let mut group = c.benchmark_group("kv_query");
    group.throughput(Throughput::Elements(100));
    let mut n = 0u64;
    group.bench_function("query_100_of_1m_items", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                n = (n + 7_919) % 10_000;
                let query = Query::new("bench", "pk = :p").with_value(":p", format!("user#{n:08}"));
                let start = Instant::now();
                let page = rt.block_on(kv.query(query)).unwrap();
                let took = start.elapsed();
                assert_eq!(page.count, 100);
                samples.push(took);
                total += took;
            }
            total
        });
    });
    group.finish();
    samples.sort();
    if !samples.is_empty() {
        let at = |p: f64| samples[((samples.len() - 1) as f64 * p) as usize];
        println!(
            "kv_query: {} samples, p50 {:?}, p99 {:?}",
            samples.len(),
            at(0.50),
            at(0.99)
        );
    }
}

criterion_group!(benches, memory_get, durable_writes, query_latency);
criterion_main!(benches);
