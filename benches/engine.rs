//! Storage benchmarks: durable group commit under concurrency, and the in-memory engine's
//! single-core put+get rate. Run with `cargo bench --bench engine`.
#![allow(clippy::unwrap_used, missing_docs)]

use std::time::{Duration, Instant};

use cloudlet::engine::{Engine, MemoryEngine, WriteBatch};
use cloudlet::{Bytes, Durability, Error, ReadView, Store};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};

fn durable_commits(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let value = Bytes::from(vec![7u8; 1024]);
    let mut group = c.benchmark_group("durable_commit");
    group
        .sample_size(20)
        .measurement_time(Duration::from_secs(10));
    for writers in [1u64, 8, 64] {
        group.throughput(Throughput::Elements(writers));
        group.bench_with_input(
            BenchmarkId::new("writers", writers),
            &writers,
            |b, &writers| {
                let mut next = 0u64;
                b.to_async(&runtime).iter(|| {
                    let base = next;
                    next += writers;
                    let (store, value) = (store.clone(), value.clone());
                    async move {
                        let puts = (0..writers).map(|w| {
                            let (store, value) = (store.clone(), value.clone());
                            tokio::spawn(async move {
                                store
                                    .write(Durability::Durable, move |t| {
                                        t.put("bench", (base + w).to_be_bytes().to_vec(), value);
                                        Ok::<_, Error>(())
                                    })
                                    .await
                                    .unwrap()
                            })
                        });
                        for put in futures::future::join_all(puts).await {
                            put.unwrap();
                        }
                    }
                });
            },
        );
    }
    group.finish();
    let stats = store.stats();
    println!(
        "durable_commit: {} transactions in {} commits ({:.1} per fsync)",
        stats.transactions,
        stats.commits,
        stats.transactions as f64 / stats.commits.max(1) as f64
    );
}

fn memory_put_get(c: &mut Criterion) {
    let mut group = c.benchmark_group("memory_put_get");
    group.throughput(Throughput::Elements(1));

    // Through the Store: a one-put transaction (run inline, no thread hop) and a snapshot read.
    let store = Store::memory();
    group.bench_function("store", |b| {
        let mut i = 0u64;
        b.iter_custom(|iters| {
            let start = Instant::now();
            for _ in 0..iters {
                let key = (i % 100_000).to_be_bytes();
                i += 1;
                futures::executor::block_on(store.write(Durability::Durable, move |t| {
                    t.put("bench", key.to_vec(), Bytes::from_static(b"value"));
                    Ok::<_, Error>(())
                }))
                .unwrap();
                let got = store.snapshot().unwrap().get("bench", &key).unwrap();
                assert!(got.is_some());
            }
            start.elapsed()
        });
    });

    // The engine alone: a one-put batch commit and a snapshot read.
    let engine = MemoryEngine::new();
    group.bench_function("engine", |b| {
        let mut i = 0u64;
        b.iter_custom(|iters| {
            let start = Instant::now();
            for _ in 0..iters {
                let key = Bytes::copy_from_slice(&(i % 100_000).to_be_bytes());
                i += 1;
                let mut batch = WriteBatch::new();
                batch.put("bench", key.clone(), Bytes::from_static(b"value"));
                engine.commit(batch, Durability::Durable).unwrap();
                assert!(
                    engine
                        .snapshot()
                        .unwrap()
                        .get("bench", &key)
                        .unwrap()
                        .is_some()
                );
            }
            start.elapsed()
        });
    });
    group.finish();
}

criterion_group!(benches, durable_commits, memory_put_get);
criterion_main!(benches);
