//! pubsub benchmarks: matching a message against a topic's filter policies, 10 subscriptions
//! with mixed policies and 1,000 with distinct exact-match ones (each message matching one).
//! Topics and delivery are not built yet. `cargo bench --bench pubsub`.
#![allow(clippy::unwrap_used, missing_docs)]

use std::collections::BTreeMap;

use cloudlet::MessageAttribute;
use cloudlet::pubsub::{FilterPolicy, FilterPolicyScope, PolicySet};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

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

criterion_group!(benches, matching);
criterion_main!(benches);
