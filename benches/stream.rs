//! stream benchmarks, 1 KiB records: durable PutRecords of 100 from 16 producers; in-memory
//! appends and reads; and the latency from a put to a subscribed consumer at a steady load.
//! `cargo bench --bench stream`.
#![allow(clippy::unwrap_used, missing_docs)]

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use cloudlet::stream::{PutRecordsEntry, StartingPosition, StreamService, Streams};
use cloudlet::{Store, SystemClock};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use futures::StreamExt;
use support::{concurrently, runtime};

/// The 1,000 partition keys the producers cycle through, made once: formatting them in
/// the measured loop would be measured too.
fn keys() -> &'static [String] {
    static KEYS: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    KEYS.get_or_init(|| (0..1000).map(|i| format!("key-{i}")).collect())
}

fn batch(n: u64, payload: &Bytes) -> Vec<PutRecordsEntry> {
    let keys = keys();
    (0..100)
        .map(|i| {
            PutRecordsEntry::new(
                keys[((n * 100 + i) % 1000) as usize].clone(),
                payload.clone(),
            )
        })
        .collect()
}

/// Measures PutRecords of 100 from `producers` concurrent tasks, `batches` per iteration.
fn bench_appends(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    name: &str,
    rt: &tokio::runtime::Runtime,
    kinesis: &StreamService,
    (producers, batches): (u64, u64),
) {
    let payload = Bytes::from(vec![7u8; 1024]);
    let counter = Arc::new(AtomicU64::new(0));
    group.throughput(Throughput::Elements(batches * 100));
    group.bench_function(name, |b| {
        b.iter_custom(|iters| {
            let (kinesis, counter, payload) = (kinesis.clone(), counter.clone(), payload.clone());
            rt.block_on(concurrently(producers, iters * batches, move |_| {
                let (kinesis, payload) = (kinesis.clone(), payload.clone());
                let n = counter.fetch_add(1, Ordering::Relaxed);
                async move {
                    kinesis
                        .put_records("bench", batch(n, &payload))
                        .await
                        .unwrap();
                }
            }))
        })
    });
}

fn durable_append(c: &mut Criterion) {
    let rt = runtime();
    let dir = tempfile::tempdir_in(".").unwrap();
    let kinesis = StreamService::new(Store::open(dir.path()).unwrap(), SystemClock::shared());
    rt.block_on(kinesis.create_stream("bench", 8)).unwrap();
    let mut group = c.benchmark_group("stream_durable");
    bench_appends(
        &mut group,
        "put_records_100_x_16_producers",
        &rt,
        &kinesis,
        (16, 160),
    );
    group.finish();
}

fn memory(c: &mut Criterion) {
    let rt = runtime();
    let kinesis = StreamService::new(Store::memory(), SystemClock::shared());
    rt.block_on(kinesis.create_stream("bench", 4)).unwrap();
    let mut group = c.benchmark_group("stream_memory");
    bench_appends(
        &mut group,
        "append_put_records_100",
        &rt,
        &kinesis,
        (4, 200),
    );
    // Reads: 10,000-record GetRecords pages over a shard.
    let shard = "shardId-000000000000";
    group.throughput(Throughput::Elements(10_000));
    group.bench_function("read_get_records_10000", |b| {
        b.iter(|| {
            rt.block_on(async {
                let it = kinesis
                    .get_shard_iterator("bench", shard, StartingPosition::TrimHorizon)
                    .await
                    .unwrap();
                let got = kinesis.get_records(&it, Some(10_000)).await.unwrap();
                assert_eq!(got.records.len(), 10_000);
            })
        })
    });
    group.finish();
}

/// Put-to-subscriber latency at a steady 2,000 records/s, printed as p50 and p99.
fn latency(_: &mut Criterion) {
    let rt = runtime();
    let dir = tempfile::tempdir_in(".").unwrap();
    let kinesis = StreamService::new(Store::open(dir.path()).unwrap(), SystemClock::shared());
    rt.block_on(async {
        kinesis.create_stream("lat", 1).await.unwrap();
        let mut sub = kinesis
            .subscribe_to_shard("lat", "shardId-000000000000", StartingPosition::Latest)
            .unwrap();
        let sent = Arc::new(std::sync::Mutex::new(Vec::<Instant>::new()));
        let producer = {
            let (kinesis, sent) = (kinesis.clone(), sent.clone());
            tokio::spawn(async move {
                for i in 0..4000u32 {
                    sent.lock().unwrap().push(Instant::now());
                    kinesis
                        .put_record(
                            "lat",
                            PutRecordsEntry::new("k", i.to_be_bytes().to_vec()),
                            None,
                        )
                        .await
                        .unwrap();
                    tokio::time::sleep(Duration::from_micros(500)).await;
                }
            })
        };
        let mut latencies = Vec::new();
        while latencies.len() < 4000 {
            let batch = sub.next().await.unwrap().unwrap();
            let now = Instant::now();
            for r in batch.records {
                let i = u32::from_be_bytes(r.data[..4].try_into().unwrap()) as usize;
                latencies.push(now - sent.lock().unwrap()[i]);
            }
        }
        producer.await.unwrap();
        latencies.sort();
        println!(
            "stream put-to-subscriber latency (durable, ~2k records/s): p50 {:?}, p99 {:?}",
            latencies[latencies.len() / 2],
            latencies[latencies.len() * 99 / 100]
        );
    });
}

criterion_group!(benches, latency, durable_append, memory);
criterion_main!(benches);
