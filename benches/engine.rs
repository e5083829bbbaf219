//! Storage benchmarks: durable group commit under concurrency, and the in-memory engine's
//! single-core put+get rate, with the raw fsync rate and the bare redb commit rate as
//! baselines. Run with `cargo bench --bench engine`.
#![allow(clippy::unwrap_used, missing_docs)]

use std::io::Write;
use std::time::{Duration, Instant};

use cloudlet::engine::{Engine, MemoryEngine, RedbEngine, WriteBatch};
use cloudlet::{Bytes, Durability, Error, Store};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};

/// What the disk can do: 1 KiB appended and fsync'd (fdatasync) per operation.
fn raw_fsync(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let mut file = std::fs::File::create(dir.path().join("fsync")).unwrap();
    let block = [7u8; 1024];
    let mut group = c.benchmark_group("baseline");
    group.throughput(Throughput::Elements(1)).sample_size(20);
    group.bench_function("fsync_1KiB", |b| {
        b.iter(|| {
            file.write_all(&block).unwrap();
            file.sync_data().unwrap();
        });
    });
    // The engine alone, one durable one-put commit at a time: the single-writer ceiling.
    let engine = RedbEngine::open(dir.path().join("redb")).unwrap();
    let value = Bytes::from(vec![7u8; 1024]);
    let mut i = 0u64;
    group.bench_function("redb_durable_commit", |b| {
        b.iter(|| {
            i += 1;
            let mut batch = WriteBatch::new();
            batch.put(
                "bench",
                Bytes::copy_from_slice(&i.to_be_bytes()),
                value.clone(),
            );
            engine.commit(batch, Durability::Durable).unwrap();
        });
    });
    group.finish();
}

/// `writers` tasks each put one 1 KiB value per durable transaction, back to back, until the
/// iteration count is reached; throughput is transactions per second.
fn durable_commits(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let value = Bytes::from(vec![7u8; 1024]);
    let mut group = c.benchmark_group("durable_commit");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(10));
    group.throughput(Throughput::Elements(1));
    for writers in [1u64, 8, 64] {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        group.bench_with_input(
            BenchmarkId::new("writers", writers),
            &writers,
            |b, &writers| {
                let mut next = 0u64;
                b.iter_custom(|iters| {
                    let per_writer = iters.div_ceil(writers);
                    let base = next;
                    next += per_writer * writers;
                    let start = Instant::now();
                    runtime.block_on(async {
                        let tasks: Vec<_> = (0..writers)
                            .map(|w| {
                                let (store, value) = (store.clone(), value.clone());
                                tokio::spawn(async move {
                                    for n in 0..per_writer {
                                        let key = (base + n * writers + w).to_be_bytes().to_vec();
                                        let value = value.clone();
                                        store
                                            .write(Durability::Durable, move |t| {
                                                t.put("bench", key, value);
                                                Ok::<_, Error>(())
                                            })
                                            .await
                                            .unwrap();
                                    }
                                })
                            })
                            .collect();
                        for task in tasks {
                            task.await.unwrap();
                        }
                    });
                    // Scale to the requested count: each writer did `per_writer` puts.
                    start
                        .elapsed()
                        .mul_f64(iters as f64 / (per_writer * writers) as f64)
                });
            },
        );
        let stats = store.stats();
        println!(
            "durable_commit/writers/{writers}: {} transactions in {} commits ({:.1} per fsync)",
            stats.transactions,
            stats.commits,
            stats.transactions as f64 / stats.commits.max(1) as f64
        );
    }
    group.finish();
}

/// One put (a one-key transaction) and one point read of that key, repeated over `keys`
/// distinct keys: 1,000 keys stay in cache, 100,000 do not.
fn memory_put_get(c: &mut Criterion) {
    let mut group = c.benchmark_group("memory_put_get");
    group.throughput(Throughput::Elements(1));
    for keys in [1_000u64, 100_000] {
        // Through the Store: the transaction runs inline on the caller, no thread hop.
        let store = Store::memory();
        group.bench_with_input(BenchmarkId::new("store", keys), &keys, |b, &keys| {
            let mut i = 0u64;
            b.iter_custom(|iters| {
                let start = Instant::now();
                for _ in 0..iters {
                    let key = (i % keys).to_be_bytes();
                    i += 1;
                    futures::executor::block_on(store.write(Durability::Durable, move |t| {
                        t.put("bench", key.to_vec(), Bytes::from_static(b"value"));
                        Ok::<_, Error>(())
                    }))
                    .unwrap();
                    assert!(store.get("bench", &key).unwrap().is_some());
                }
                start.elapsed()
            });
        });

        // The engine alone: a one-put batch commit and a point read.
        let engine = MemoryEngine::new();
        group.bench_with_input(BenchmarkId::new("engine", keys), &keys, |b, &keys| {
            let mut i = 0u64;
            b.iter_custom(|iters| {
                let start = Instant::now();
                for _ in 0..iters {
                    let key = Bytes::copy_from_slice(&(i % keys).to_be_bytes());
                    i += 1;
                    let mut batch = WriteBatch::new();
                    batch.put("bench", key.clone(), Bytes::from_static(b"value"));
                    engine.commit(batch, Durability::Durable).unwrap();
                    assert!(engine.get_latest("bench", &key).unwrap().is_some());
                }
                start.elapsed()
            });
        });
    }
    group.finish();
}

criterion_group!(benches, raw_fsync, durable_commits, memory_put_get);
criterion_main!(benches);
