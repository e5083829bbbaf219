//! objectstore benchmarks: durable PUT then GET of 64 MiB objects; durable PUT of 4 KiB objects
//! from 32 writers; one 1,000-key ListObjectsV2 page from a bucket of 1,000,000 keys; and the
//! peak memory of putting and reading back a 1 GiB object (printed first, as VmHWM).
//! `cargo bench --bench objectstore`.
#![allow(clippy::unwrap_used, missing_docs)]

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use cloudlet::objectstore::{Body, Buckets, GetObject, ListObjects, ObjectService, PutObject};
use cloudlet::{Store, SystemClock};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use futures::StreamExt;
use support::{concurrently, runtime};

/// A durable service in a fresh directory (kept alive by the returned guard).
fn durable() -> (ObjectService, tempfile::TempDir) {
    let dir = tempfile::tempdir_in(".").unwrap();
    let store = Store::open(dir.path().join("db")).unwrap();
    let s3 = ObjectService::open(store, SystemClock::shared(), dir.path().join("objects")).unwrap();
    (s3, dir)
}

/// A body of `chunks` MiB streamed chunk by chunk, never whole in memory.
fn streamed(chunks: usize) -> Body {
    let chunk = Bytes::from(vec![0x5a; 1 << 20]);
    Body::from_stream(futures::stream::iter(
        (0..chunks).map(move |_| Ok(chunk.clone())),
    ))
}

fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Puts and reads back a 1 GiB object, streamed both ways, and prints the peak RSS. It runs
/// once, first, when its benchmark is selected; the benchmark itself measures nothing.
fn one_gib_peak_memory(c: &mut Criterion) {
    c.bench_function("objectstore_1gib_peak_memory", |b| {
        static DONE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
        if !DONE.swap(true, Ordering::Relaxed) {
            let rt = runtime();
            let (s3, _dir) = durable();
            let before = peak_rss_kib();
            let start = Instant::now();
            rt.block_on(async {
                s3.create_bucket("big").await.unwrap();
                s3.put_object(PutObject::new("big", "1gib", streamed(1024))).await.unwrap();
                let put = start.elapsed();
                let mut body = s3.get_object(GetObject::new("big", "1gib")).await.unwrap().body;
                let mut read = 0usize;
                while let Some(chunk) = body.next().await {
                    read += chunk.unwrap().len();
                }
                assert_eq!(read, 1 << 30);
                println!(
                    "objectstore 1 GiB: put {:.1} s, put+get {:.1} s, peak RSS {} MiB (before: {} MiB)",
                    put.as_secs_f64(),
                    start.elapsed().as_secs_f64(),
                    peak_rss_kib() / 1024,
                    before / 1024
                );
            });
        }
        b.iter(|| ());
    });
}

/// Durable PUT then GET of 64 MiB objects.
fn large_objects(c: &mut Criterion) {
    let rt = runtime();
    let (s3, _dir) = durable();
    rt.block_on(s3.create_bucket("large")).unwrap();
    let mut group = c.benchmark_group("objectstore_64mib");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(20));
    group.throughput(Throughput::Bytes(64 << 20));
    let n = AtomicU64::new(0);
    group.bench_function("durable_put", |b| {
        b.iter(|| {
            let key = format!("k{}", n.fetch_add(1, Ordering::Relaxed) % 4);
            rt.block_on(s3.put_object(PutObject::new("large", key, streamed(64))))
                .unwrap();
        })
    });
    group.bench_function("get", |b| {
        b.iter(|| {
            rt.block_on(async {
                let mut body = s3
                    .get_object(GetObject::new("large", "k0"))
                    .await
                    .unwrap()
                    .body;
                while let Some(chunk) = body.next().await {
                    chunk.unwrap();
                }
            })
        })
    });
    group.finish();
}

/// Durable PUT of 4 KiB objects from 32 concurrent writers.
fn small_objects(c: &mut Criterion) {
    let rt = runtime();
    let (s3, _dir) = durable();
    rt.block_on(s3.create_bucket("small")).unwrap();
    let body = Bytes::from(vec![7u8; 4096]);
    let counter = Arc::new(AtomicU64::new(0));
    let mut group = c.benchmark_group("objectstore_4kib");
    const PUTS: u64 = 3200;
    group.throughput(Throughput::Elements(PUTS));
    group.bench_function("durable_put_32_writers", |b| {
        b.iter_custom(|iters| {
            let (s3, counter, body) = (s3.clone(), counter.clone(), body.clone());
            rt.block_on(concurrently(32, iters * PUTS, move |_| {
                let (s3, body) = (s3.clone(), body.clone());
                let n = counter.fetch_add(1, Ordering::Relaxed);
                async move {
                    s3.put_object(PutObject::new("small", format!("obj/{n:010}"), body))
                        .await
                        .unwrap();
                }
            }))
        })
    });
    group.finish();
}

/// One 1,000-key page of ListObjectsV2 from a bucket of 1,000,000 keys.
fn list_page(c: &mut Criterion) {
    let rt = runtime();
    let (s3, _dir) = durable();
    let mut group = c.benchmark_group("objectstore_list");
    let n = AtomicU64::new(0);
    group.bench_function("list_objects_v2_1000_of_1m", |b| {
        static LOADED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
        if !LOADED.swap(true, Ordering::Relaxed) {
            let start = Instant::now();
            rt.block_on(async {
                s3.create_bucket("many").await.unwrap();
                let s3c = s3.clone();
                concurrently(64, 1_000_000, move |n| {
                    let s3 = s3c.clone();
                    async move {
                        s3.put_object(PutObject::new(
                            "many",
                            format!("logs/{n:07}"),
                            Bytes::from_static(b"x"),
                        ))
                        .await
                        .unwrap();
                    }
                })
                .await;
            });
            println!(
                "objectstore: loaded 1,000,000 keys in {:.0} s",
                start.elapsed().as_secs_f64()
            );
        }
        b.iter(|| {
            let at = n.fetch_add(7919, Ordering::Relaxed) % 999_000;
            let page = rt
                .block_on(s3.list_objects(
                    ListObjects::new("many").with_start_after(format!("logs/{at:07}")),
                ))
                .unwrap();
            assert_eq!(page.key_count, 1000);
        })
    });
    group.finish();
}

criterion_group!(
    benches,
    one_gib_peak_memory,
    large_objects,
    small_objects,
    list_page
);
criterion_main!(benches);
