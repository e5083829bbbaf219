//! Queue benchmarks: in-memory cycles with batches of 10, durable cycles with 32 producers
//! and 32 consumers, and the wake-up latency of a long poll. `cargo bench --bench queue`.
#![allow(clippy::unwrap_used, missing_docs)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use cloudlet::queue::{QueueService, Queues, ReceiveMessage, SendMessage, SendMessageBatchEntry};
use cloudlet::{Bytes, Store, SystemClock};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Send 10, receive 10, delete 10: ten full cycles per iteration, one task, memory engine.
fn memory_cycles(c: &mut Criterion) {
    let rt = runtime();
    let sqs = QueueService::new(Store::memory(), SystemClock::shared());
    let url = rt
        .block_on(sqs.create_queue("bench", BTreeMap::new(), BTreeMap::new()))
        .unwrap();
    let body = Bytes::from(vec![b'x'; 1024]);
    let mut group = c.benchmark_group("queue_memory");
    group.throughput(Throughput::Elements(10));
    group.bench_function("cycle_batches_of_10", |b| {
        b.to_async(&rt).iter(|| async {
            let entries = (0..10)
                .map(|i| {
                    SendMessageBatchEntry::new(format!("e{i}"), SendMessage::new(body.clone()))
                })
                .collect();
            sqs.send_message_batch(&url, entries).await.unwrap();
            let got = sqs
                .receive_message(&url, ReceiveMessage::max(10))
                .await
                .unwrap();
            let handles = got
                .into_iter()
                .enumerate()
                .map(|(i, m)| (format!("d{i}"), m.receipt_handle))
                .collect();
            sqs.delete_message_batch(&url, handles).await.unwrap();
        });
    });
    group.finish();
}

/// 32 producers send single 1 KiB messages; 32 consumers receive up to 10 and delete them in
/// a batch; every write is durable. Throughput is full cycles (sent, received, deleted).
fn durable_cycles(c: &mut Criterion) {
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    let sqs = Arc::new(QueueService::new(
        Store::open(dir.path()).unwrap(),
        SystemClock::shared(),
    ));
    let url = rt
        .block_on(sqs.create_queue("bench", BTreeMap::new(), BTreeMap::new()))
        .unwrap();
    let body = Bytes::from(vec![b'x'; 1024]);
    let mut group = c.benchmark_group("queue_durable");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(15));
    // An iteration is 3,200 cycles, so the fixed cost of starting 64 tasks is amortised.
    const CYCLES: u64 = 3_200;
    group.throughput(Throughput::Elements(CYCLES));
    group.bench_function("cycles_32_producers_32_consumers", |b| {
        b.iter_custom(|iters| {
            let deleted = Arc::new(AtomicU64::new(0));
            let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
            rt.block_on(async {
                let start = Instant::now();
                let per_producer = iters * CYCLES / 32;
                let total = per_producer * 32;
                let done = Arc::new(tokio::sync::Notify::new());
                let mut producers = Vec::new();
                for _ in 0..32 {
                    let (sqs, url, body) = (sqs.clone(), url.clone(), body.clone());
                    producers.push(tokio::spawn(async move {
                        for _ in 0..per_producer {
                            sqs.send_message(&url, SendMessage::new(body.clone()))
                                .await
                                .unwrap();
                        }
                    }));
                }
                let mut consumers = Vec::new();
                for _ in 0..32 {
                    let (sqs, url, deleted, done, stop) = (
                        sqs.clone(),
                        url.clone(),
                        deleted.clone(),
                        done.clone(),
                        stop.clone(),
                    );
                    consumers.push(tokio::spawn(async move {
                        while !stop.load(Ordering::Relaxed) {
                            // Long polling, as consumers should: a waiting receive costs nothing.
                            // (Short waits, so consumers stop soon after the measurement; a
                            // consumer aborted mid-receive would strand what it took.)
                            let got = sqs
                                .receive_message(
                                    &url,
                                    ReceiveMessage::max(10).with_wait_time_seconds(1),
                                )
                                .await
                                .unwrap();
                            if got.is_empty() {
                                continue;
                            }
                            let n = got.len() as u64;
                            let handles = got
                                .into_iter()
                                .enumerate()
                                .map(|(i, m)| (format!("d{i}"), m.receipt_handle))
                                .collect();
                            sqs.delete_message_batch(&url, handles).await.unwrap();
                            if deleted.fetch_add(n, Ordering::Relaxed) + n >= total {
                                done.notify_one();
                            }
                        }
                    }));
                }
                for producer in producers {
                    producer.await.unwrap();
                }
                while deleted.load(Ordering::Relaxed) < total {
                    done.notified().await;
                }
                let elapsed = start.elapsed();
                stop.store(true, Ordering::Relaxed);
                for consumer in consumers {
                    consumer.await.unwrap();
                }
                elapsed
            })
        });
    });
    group.finish();
}

/// From a send to the return of a receive already waiting on the queue (memory engine).
fn long_poll_latency(c: &mut Criterion) {
    let rt = runtime();
    let sqs = Arc::new(QueueService::new(Store::memory(), SystemClock::shared()));
    let url = rt
        .block_on(sqs.create_queue("bench", BTreeMap::new(), BTreeMap::new()))
        .unwrap();
    let mut samples = Vec::new();
    let mut group = c.benchmark_group("queue_long_poll");
    group.bench_function("send_to_waiting_receive", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let latency = rt.block_on(async {
                    let (s, u) = (sqs.clone(), url.clone());
                    let waiting = tokio::spawn(async move {
                        let got = s
                            .receive_message(&u, ReceiveMessage::max(1).with_wait_time_seconds(20))
                            .await
                            .unwrap();
                        (Instant::now(), got)
                    });
                    // Let the receive reach its wait.
                    tokio::time::sleep(Duration::from_millis(1)).await;
                    let sent = Instant::now();
                    sqs.send_message(&url, SendMessage::new("ping"))
                        .await
                        .unwrap();
                    let (woke, got) = waiting.await.unwrap();
                    sqs.delete_message(&url, &got[0].receipt_handle)
                        .await
                        .unwrap();
                    woke - sent
                });
                samples.push(latency);
                total += latency;
            }
            total
        });
    });
    group.finish();
    samples.sort();
    if !samples.is_empty() {
        let at = |p: f64| samples[((samples.len() - 1) as f64 * p) as usize];
        println!(
            "queue_long_poll: {} samples, p50 {:?}, p99 {:?}",
            samples.len(),
            at(0.50),
            at(0.99)
        );
    }
}

criterion_group!(benches, memory_cycles, durable_cycles, long_poll_latency);
criterion_main!(benches);
