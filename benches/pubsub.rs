//! pubsub benchmarks: matching a message against a topic's filter policies (10 mixed, 1,000
//! distinct exact-match ones), publishes per second in memory with 10 and with 1,000 filtered
//! subscriptions, and the fan-out latency from publish to an in-process subscriber.
//! `cargo bench --bench pubsub`.
#![allow(clippy::unwrap_used, missing_docs)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cloudlet::message::sink_fn;
use cloudlet::pubsub::{FilterPolicy, FilterPolicyScope, PolicySet, Publish, TopicService};
use cloudlet::{MessageAttribute, Store, SystemClock};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// A topic with `subscriptions` subscribers, subscriber `i` filtering on `store = store-i`
/// (the first 10 of a 10-subscriber topic match everything else by prefix).
fn topic(rt: &tokio::runtime::Runtime, subscriptions: usize) -> (TopicService, String) {
    let sns = TopicService::new(Store::memory(), SystemClock::shared());
    let arn = rt.block_on(async {
        let arn = sns.create_topic("bench", BTreeMap::new()).await.unwrap();
        for i in 0..subscriptions {
            sns.register_sink(&format!("s{i}"), Arc::new(sink_fn(|_m| async { Ok(()) })))
                .await
                .unwrap();
            let policy = format!(r#"{{"store": ["store-{i}"]}}"#);
            let attributes = BTreeMap::from([("FilterPolicy".to_owned(), policy)]);
            sns.subscribe(&arn, "sink", &format!("s{i}"), attributes)
                .await
                .unwrap();
        }
        arn
    });
    (sns, arn)
}

/// Publishes of 1 KiB messages, each matching one subscription.
fn publishes(c: &mut Criterion) {
    let rt = runtime();
    let body = "x".repeat(1024);
    let mut group = c.benchmark_group("pubsub_publish");
    group.throughput(Throughput::Elements(1));
    for subscriptions in [10usize, 1000] {
        let (sns, arn) = topic(&rt, subscriptions);
        let mut i = 0usize;
        group.bench_function(
            format!("publish_1KiB_{subscriptions}_filtered_subscriptions"),
            |b| {
                b.to_async(&rt).iter(|| {
                    i = (i + 1) % subscriptions;
                    let publish = Publish::new(body.clone())
                        .with_attribute("store", MessageAttribute::string(format!("store-{i}")));
                    let (sns, arn) = (sns.clone(), arn.clone());
                    async move {
                        sns.publish(&arn, publish).await.unwrap();
                    }
                });
            },
        );
        rt.block_on(sns.shutdown());
    }
    group.finish();
}

/// From publish to the subscriber's sink being called.
fn fan_out_latency(c: &mut Criterion) {
    let rt = runtime();
    let sns = TopicService::new(Store::memory(), SystemClock::shared());
    let (sender, receiver) = std::sync::mpsc::channel::<Instant>();
    let sender = std::sync::Mutex::new(sender);
    let arn = rt.block_on(async {
        let arn = sns.create_topic("latency", BTreeMap::new()).await.unwrap();
        let sink = sink_fn(move |_m| {
            let _ = sender.lock().unwrap().send(Instant::now());
            async { Ok(()) }
        });
        sns.register_sink("s", Arc::new(sink)).await.unwrap();
        sns.subscribe(&arn, "sink", "s", BTreeMap::new())
            .await
            .unwrap();
        arn
    });
    let mut samples = Vec::new();
    let mut group = c.benchmark_group("pubsub_fan_out");
    group.bench_function("publish_to_subscriber", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let start = Instant::now();
                rt.block_on(sns.publish(&arn, Publish::new("ping")))
                    .unwrap();
                let delivered = receiver.recv().unwrap();
                let latency = delivered - start;
                samples.push(latency);
                total += latency;
            }
            total
        });
    });
    group.finish();
    rt.block_on(sns.shutdown());
    samples.sort();
    if !samples.is_empty() {
        let at = |p: f64| samples[((samples.len() - 1) as f64 * p) as usize];
        println!(
            "pubsub_fan_out: {} samples, p50 {:?}, p99 {:?}",
            samples.len(),
            at(0.5),
            at(0.99)
        );
    }
}

fn attributes(store: &str) -> BTreeMap<String, MessageAttribute> {
    BTreeMap::from([
        ("store".to_owned(), MessageAttribute::string(store)),
        ("event".to_owned(), MessageAttribute::string("order_placed")),
        ("price".to_owned(), MessageAttribute::number("120.5")),
    ])
}

fn matching(c: &mut Criterion) {
    let body = "x".repeat(1024);
    let mixed = [
        r#"{"store": ["store-1"]}"#,
        r#"{"event": [{"prefix": "order_"}]}"#,
        r#"{"price": [{"numeric": [">", 100]}]}"#,
        r#"{"event": [{"anything-but": ["order_cancelled"]}], "store": [{"exists": true}]}"#,
        r#"{"store": ["store-2", "store-3"], "price": [{"numeric": ["<", 50]}]}"#,
        r#"{"event": [{"equals-ignore-case": "ORDER_PLACED"}]}"#,
        r#"{"source_ip": [{"cidr": "10.0.0.0/8"}]}"#,
        r#"{"store": [{"suffix": "-1"}]}"#,
        r#"{"$or": [{"store": ["store-9"]}, {"event": ["order_placed"]}]}"#,
        r#"{"price": [120.5]}"#,
    ];
    let ten = PolicySet::from_entries(mixed.iter().enumerate().map(|(i, p)| {
        (
            i,
            Some(FilterPolicy::parse(p, FilterPolicyScope::MessageAttributes).unwrap()),
        )
    }));
    let thousand = PolicySet::from_entries((0..1000).map(|i| {
        let policy = format!(r#"{{"store": ["store-{i}"], "event": ["order_placed"]}}"#);
        (
            i,
            Some(FilterPolicy::parse(&policy, FilterPolicyScope::MessageAttributes).unwrap()),
        )
    }));
    let mut group = c.benchmark_group("pubsub_filter");
    group.throughput(Throughput::Elements(1));
    let message = attributes("store-1");
    group.bench_function("match_10_mixed_policies", |b| {
        b.iter(|| ten.matching(&body, &message));
    });
    let mut i = 0;
    group.bench_function("match_1000_exact_policies", |b| {
        b.iter(|| {
            i = (i + 1) % 1000;
            let found = thousand.matching(&body, &attributes(&format!("store-{i}")));
            assert_eq!(found.len(), 1);
        });
    });
    group.finish();
}

criterion_group!(benches, matching, publishes, fan_out_latency);
criterion_main!(benches);
