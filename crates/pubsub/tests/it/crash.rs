//! Crash test: a child process publishes durably and reports each acknowledged publish; the
//! parent kills it with SIGKILL at random moments. After reopening, every acknowledged publish
//! is delivered to the subscription at least once.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use cloudlet_core::{ChannelSink, ManualClock, Store, SystemClock};
use cloudlet_pubsub::{Publish, TopicService};
use cloudlet_testkit::crash::{report, run_rounds};

const CHILD_DIR: &str = "CLOUDLET_PUBSUB_CRASH_DIR";
const ROUNDS: usize = 8;

#[test]
#[ignore = "the child process of acknowledged_publishes_are_delivered_after_sigkill"]
fn child_entry() {
    let Some((dir, runtime)) = cloudlet_testkit::crash::child(CHILD_DIR) else {
        return;
    };
    runtime.block_on(async move {
        let sns = TopicService::new(Store::open(&dir).unwrap(), SystemClock::shared());
        let topic = sns.create_topic("crash", BTreeMap::new()).await.unwrap();
        // The subscriber's sink lives in the parent: publishes wait in its outbox.
        sns.subscribe(&topic, "sink", "parent", BTreeMap::new())
            .await
            .unwrap();
        let start = u64::from(std::process::id()) * 1_000_000;
        let mut tasks = Vec::new();
        for worker in 0..4u64 {
            let (sns, topic) = (sns.clone(), topic.clone());
            tasks.push(tokio::spawn(async move {
                for n in 0..100_000u64 {
                    let id = start + n * 4 + worker;
                    sns.publish(&topic, Publish::new(format!("m{id}")))
                        .await
                        .unwrap();
                    report(&format!("acked m{id}"));
                }
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_publishes_are_delivered_after_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let mut acked = HashSet::new();
    run_rounds(
        "pubsub crash test",
        ROUNDS,
        (10, 150),
        CHILD_DIR,
        dir.path(),
        |line| {
            let Some(body) = line.strip_prefix("acked ") else {
                return false;
            };
            acked.insert(body.to_owned());
            true
        },
    );
    let sns = TopicService::new(
        Store::open(dir.path()).unwrap(),
        ManualClock::default().shared(),
    );
    let topic = "arn:aws:sns:us-east-1:000000000000:crash";
    let subscription = sns.list_subscriptions_by_topic(topic).unwrap()[0]
        .subscription_arn
        .clone();
    let (sink, mut received) = ChannelSink::new();
    sns.register_sink("parent", Arc::new(sink)).await.unwrap();
    let mut delivered = HashSet::new();
    loop {
        while let Ok(message) = received.try_recv() {
            let envelope: serde_json::Value = serde_json::from_slice(&message.body).unwrap();
            delivered.insert(envelope["Message"].as_str().unwrap().to_owned());
        }
        // A record leaves the outbox only after the sink took it: once none is pending,
        // everything is in the channel.
        if sns.pending_deliveries(&subscription).unwrap() == 0 {
            while let Ok(message) = received.try_recv() {
                let envelope: serde_json::Value = serde_json::from_slice(&message.body).unwrap();
                delivered.insert(envelope["Message"].as_str().unwrap().to_owned());
            }
            break;
        }
        tokio::task::yield_now().await;
    }
    sns.shutdown().await;
    let lost: Vec<&String> = acked.difference(&delivered).collect();
    assert!(
        lost.is_empty(),
        "{} acknowledged publishes were not delivered: {lost:?}",
        lost.len()
    );
    assert!(!acked.is_empty());
}
